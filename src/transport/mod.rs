//! Where bundles travel: a small, synchronous, batch-first interface, so a
//! transport over a network can move many files in one round trip.

pub mod dir;
pub mod layout;
pub mod memory;

use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use layout::ObjectName;

#[derive(Debug, Clone)]
pub struct RemoteObject {
    pub name: ObjectName,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error(
        "sync dir {path} does not exist; if it is on a removable or network drive, mount it, or choose another with `ccsync init <dir>`"
    )]
    Missing { path: PathBuf },
    #[error("cannot {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{location}: {message}")]
    Other { location: String, message: String },
}

pub trait Transport {
    /// How to name this transport to the user.
    fn location(&self) -> String;

    /// Every object, in any order. Entries that are not objects (temp files,
    /// hidden files, links) are left out.
    fn list(&self) -> Result<Vec<RemoteObject>, TransportError>;

    /// Copies `names` into files in the local directory `into`, returning
    /// their paths in the same order.
    fn fetch(&self, names: &[ObjectName], into: &Path) -> Result<Vec<PathBuf>, TransportError>;

    /// Stores each local file under its name, atomically: a reader sees the
    /// old object or the new one, never a part.
    fn store(&self, objects: &[(ObjectName, PathBuf)]) -> Result<(), TransportError>;

    /// Checks that the transport is there and can be written, leaving nothing.
    fn check_writable(&self) -> Result<(), TransportError>;
}

/// Where a location string points.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
}

impl Location {
    /// Parses a location. Every location is a local directory for now; a
    /// relative one is taken from `base`.
    pub fn parse(s: &str, base: &Path) -> Self {
        let path = Path::new(s);
        Location::Dir(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        })
    }

    pub fn open(&self) -> Box<dyn Transport> {
        match self {
            Location::Dir(path) => Box::new(dir::DirTransport::new(path.clone())),
        }
    }
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(p) => write!(f, "{}", p.display()),
        }
    }
}
