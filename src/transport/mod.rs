//! Where bundles travel: a small, synchronous, batch-first interface, so a
//! transport over a network can move many files in one round trip.

pub mod dir;
pub mod layout;
pub mod memory;
pub mod ssh;

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
    /// old object or the new one, never a part. Returns the stored objects as
    /// a listing would show them, where the transport can tell at no cost.
    fn store(&self, objects: &[(ObjectName, PathBuf)])
    -> Result<Vec<RemoteObject>, TransportError>;

    /// Checks that the transport is there and can be written, leaving nothing.
    fn check_writable(&self) -> Result<(), TransportError>;
}

/// Where a location string points: no scheme means a local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    Ssh(ssh::SshTarget),
}

/// What opening a transport needs from the environment.
#[derive(Debug, Clone, Default)]
pub struct Opener {
    /// The ssh program and leading arguments (`CCSYNC_SSH_COMMAND`).
    pub ssh_command: Vec<String>,
    /// Where ssh's multiplexing sockets live (private); `None`: no multiplexing.
    pub control_dir: Option<PathBuf>,
}

impl Location {
    /// `ssh://[user@]host[:port]/abs/path` and `[user@]host:path` are ssh;
    /// anything else, a Windows drive path (`C:\sync`) included, is a local
    /// directory, taken from `base` when relative.
    pub fn parse(s: &str, base: &Path) -> Result<Self, ssh::TargetError> {
        if let Some(rest) = s.strip_prefix("ssh://") {
            return ssh::SshTarget::from_url(rest).map(Location::Ssh);
        }
        if is_scp_like(s) {
            return ssh::SshTarget::from_scp(s).map(Location::Ssh);
        }
        let path = Path::new(s);
        Ok(Location::Dir(if path.is_absolute() {
            path.to_path_buf()
        } else {
            base.join(path)
        }))
    }

    pub fn open(&self, opener: &Opener) -> Box<dyn Transport> {
        match self {
            Location::Dir(path) => Box::new(dir::DirTransport::new(path.clone())),
            Location::Ssh(target) => Box::new(ssh::SshTransport::new(
                target.clone(),
                opener.ssh_command.clone(),
                opener.control_dir.clone(),
            )),
        }
    }
}

/// `host:path` (as scp and git read it): a colon before any slash, and not
/// a drive letter. `X:\\…` is a drive everywhere; `X:/…` only on Windows,
/// since elsewhere `x` is as good a host alias as any.
fn is_scp_like(s: &str) -> bool {
    let Some(colon) = s.find(':') else {
        return false;
    };
    let before = &s[..colon];
    let drive = before.len() == 1
        && before.as_bytes()[0].is_ascii_alphabetic()
        && (cfg!(windows) || s[colon + 1..].starts_with('\\') || colon + 1 == s.len());
    !before.is_empty() && !before.contains(['/', '\\']) && !drive
}

impl std::fmt::Display for Location {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Location::Dir(p) => write!(f, "{}", p.display()),
            Location::Ssh(t) => write!(f, "{t}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations() {
        let base = Path::new("/base");
        let dir = |s: &str| Location::Dir(PathBuf::from(s));
        assert_eq!(Location::parse("/sync", base).unwrap(), dir("/sync"));
        assert_eq!(
            Location::parse("rel/sync", base).unwrap(),
            dir("/base/rel/sync")
        );
        assert_eq!(Location::parse("./a:b", base).unwrap(), dir("/base/./a:b"));
        assert!(matches!(
            Location::parse(r"C:\sync", base).unwrap(),
            Location::Dir(_)
        ));
        assert!(matches!(
            Location::parse("C:", base).unwrap(),
            Location::Dir(_)
        ));
        let c_slash = Location::parse("C:/sync", base).unwrap();
        assert_eq!(matches!(c_slash, Location::Dir(_)), cfg!(windows));
        assert!(
            matches!(Location::parse("t:/sync", base).unwrap(), Location::Ssh(_)) || cfg!(windows)
        );
        let Location::Ssh(t) = Location::parse("me@box:sync", base).unwrap() else {
            panic!()
        };
        assert_eq!((t.host.as_str(), t.path.as_str()), ("box", "sync"));
        let Location::Ssh(t) = Location::parse("ssh://box:2200/srv/s", base).unwrap() else {
            panic!()
        };
        assert_eq!((t.port, t.path.as_str()), (Some(2200), "/srv/s"));
        assert!(Location::parse("-oProxyCommand=evil:x", base).is_err());
    }
}
