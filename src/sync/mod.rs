//! Moving sessions: building bundles from local transcripts (push, export)
//! and installing bundles as local transcripts (pull, import). What to do
//! with each session is decided by the pure [`plan`].

pub mod plan;
pub mod pull;
pub mod push;

use std::path::PathBuf;

use crate::bundle::BundleError;
use crate::names::SessionId;

/// Why one session could not be moved. Batches report these and go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has no complete line yet; try again once Claude Code has written one")]
    NoCompleteLine { path: PathBuf },
    #[error("{path}: {source}")]
    Bundle { path: PathBuf, source: BundleError },
    #[error(
        "session {id} is already on this machine at {existing}; a second copy in {wanted} would make `claude --resume` ambiguous. Move or delete one copy, then pull again"
    )]
    Elsewhere {
        id: SessionId,
        existing: PathBuf,
        wanted: PathBuf,
    },
    #[error(
        "this machine pushed {pushed_lines} lines of {id} before, and its transcript here no longer starts with them ({local_lines} lines now): it was truncated or rewritten. Not replacing the pushed copy; `ccsync push --force {id}` replaces it"
    )]
    WouldRewind {
        id: SessionId,
        pushed_lines: u64,
        local_lines: u64,
    },
    #[error(
        "the checkout path {0} is not UTF-8, so Claude Code's folder name for it cannot be computed"
    )]
    NotUtf8Path(PathBuf),
}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}
