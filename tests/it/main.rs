//! Integration tests: the built binary, run as several simulated machines,
//! each with its own HOME, Claude Code config dir and ccsync config dir, and
//! a cleared environment. Nothing here touches the developer's own files.

mod cli;
mod corpus;
mod daily;
mod dry_run;
mod encryption;
mod env;
mod errors;
mod fidelity;
mod fuzz_seeds;
mod getting_started;
mod git;
mod hands_free;
mod hardening;
mod objects;
pub mod real_client;
mod safety;
mod segments;
mod setup;
mod side_files;
mod ssh;
mod ssh_hardening;
mod sshd;
mod sync;
mod times;
