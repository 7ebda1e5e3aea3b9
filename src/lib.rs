//! ccsync moves Claude Code sessions between machines.
//!
//! The library knows nothing of the command line or of printing: it reads
//! and writes Claude Code's files ([`claude`]), names projects ([`project`]),
//! encodes sessions ([`bundle`]), moves them ([`transport`]) and decides what
//! a pull does ([`sync`]).

pub mod bundle;
pub mod claude;
pub mod config;
pub mod fsutil;
pub mod index;
pub mod names;
pub mod process;
pub mod project;
pub mod secrets;
pub mod sync;
pub mod synced;
pub mod transport;
