//! Where bundles travel: a small, synchronous, batch-first interface, so a
//! transport over a network can move many files in one round trip.

pub mod dir;
pub mod folder;
pub mod git;
pub mod layout;
pub mod memory;
pub mod object;
pub mod ssh;
pub mod temps;

use std::io::Read;
use std::path::{Path, PathBuf};
use std::time::SystemTime;

pub use layout::ObjectName;

#[derive(Debug, Clone)]
pub struct RemoteObject {
    pub name: ObjectName,
    pub size: u64,
    pub modified: Option<SystemTime>,
}

/// What a transport holds.
#[derive(Debug, Clone, Default)]
pub struct Listing {
    pub objects: Vec<RemoteObject>,
    /// Entries that were not looked into, by path, with why: links, which
    /// ccsync never follows in a sync dir.
    pub refused: Vec<(String, String)>,
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

/// Called with each object a fetch delivers: its index in the request and
/// a reader of its bytes. The reader may be a network stream: read it
/// through, or stop early; either way the fetch goes on with the next one.
pub type Visitor<'a> = dyn FnMut(usize, &mut dyn Read) + 'a;

/// What became of one object of a batch: a reason when it alone failed.
pub type PerObject<T> = Result<T, String>;

pub trait Transport {
    /// How to name this transport to the user.
    fn location(&self) -> String;

    /// Every object, sorted by name. Temp and hidden files are left out;
    /// links are left out and named in `refused`.
    fn list(&self) -> Result<Listing, TransportError>;

    /// Streams each of `names` to `visit`, one at a time, so memory does not
    /// grow with their size. Returns, per name in request order, `Ok` when it
    /// was handed to `visit`, or why it could not be (gone, a link, over the
    /// size limit, unreadable): one bad object never fails the others.
    fn fetch(
        &self,
        names: &[ObjectName],
        visit: &mut Visitor,
    ) -> Result<Vec<PerObject<()>>, TransportError>;

    /// Stores each local file under its name, atomically: a reader sees the
    /// old object or the new one, never a part. Returns, per object in
    /// request order, the stored object as a listing would show it, or why
    /// it alone could not be stored (a link where its folder should be).
    fn store(
        &self,
        objects: &[(ObjectName, PathBuf)],
    ) -> Result<Vec<PerObject<RemoteObject>>, TransportError>;

    /// Removes each object (a regular file; never anything through a
    /// link); one already gone counts as removed. Per object, in request
    /// order.
    fn remove(&self, names: &[ObjectName]) -> Result<Vec<PerObject<()>>, TransportError>;

    /// Removes the temp files a killed run of this machine left (and other
    /// machines' once stale), wherever they are; a store does as much for
    /// the folders it writes to.
    fn remove_own_temps(&self) -> Result<(), TransportError> {
        Ok(())
    }

    /// Checks that the transport is there and can be written, leaving nothing.
    fn check_writable(&self) -> Result<(), TransportError>;
}

/// Fetches `names`, handing each to `visit` as it streams in, and returns
/// per name what `visit` made of it, or why it could not: the transport's
/// reason, `visit`'s, or that it never arrived.
pub fn fetch_each<T>(
    transport: &dyn Transport,
    names: &[ObjectName],
    mut visit: impl FnMut(usize, &mut dyn Read) -> PerObject<T>,
) -> Result<Vec<PerObject<T>>, TransportError> {
    let mut got: Vec<Option<PerObject<T>>> = (0..names.len()).map(|_| None).collect();
    let delivered = transport.fetch(names, &mut |i, r| got[i] = Some(visit(i, r)))?;
    Ok(delivered
        .into_iter()
        .zip(got)
        .map(|(d, g)| d.and_then(|()| g.unwrap_or_else(|| Err("it did not arrive".into()))))
        .collect())
}

/// Fetches `names` into memory, each at most `cap` bytes: for small objects
/// (machine claims), never bundles.
pub fn fetch_small(
    transport: &dyn Transport,
    names: &[ObjectName],
    cap: u64,
) -> Result<Vec<PerObject<Vec<u8>>>, TransportError> {
    fetch_each(transport, names, |_, r| {
        let mut bytes = Vec::new();
        match r.take(cap + 1).read_to_end(&mut bytes) {
            Ok(n) if n as u64 > cap => Err(format!("it is over {cap} bytes")),
            Ok(_) => Ok(bytes),
            Err(e) => Err(e.to_string()),
        }
    })
}

/// Where a location string points: no scheme means a local directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    Dir(PathBuf),
    Ssh(ssh::SshTarget),
    /// `s3://…`, `webdav://…`, `webdavs://…`.
    Object(object::ObjectTarget),
    /// `git+ssh://…`, `git+https://…`, `git+file://…`, with `#branch`.
    Git(git::GitTarget),
}

#[derive(Debug, thiserror::Error)]
pub enum LocationError {
    #[error(transparent)]
    Ssh(#[from] ssh::TargetError),
    #[error("{0}")]
    Object(String),
    #[error("{0}")]
    Git(String),
    #[error(
        "{scheme}:// is not a transport ccsync has; use a directory, ssh://HOST/PATH or HOST:PATH, s3://BUCKET[/PREFIX], webdav[s]://HOST[:PORT]/PATH, or git+ssh://HOST/PATH (git+https://, git+file://)"
    )]
    Unsupported { scheme: String },
}

/// What opening a transport needs from the environment.
#[derive(Debug, Clone, Default)]
pub struct Opener {
    /// The ssh program and leading arguments (`CCSYNC_SSH_COMMAND`).
    pub ssh_command: Vec<String>,
    /// Where ssh's multiplexing sockets live (private); `None`: no multiplexing.
    pub control_dir: Option<PathBuf>,
    /// This machine, when known: its temp objects carry its name, so its
    /// next store removes those a killed run left.
    pub owner: Option<crate::names::MachineName>,
    /// How long an ssh call may move no byte before it is ended
    /// (`CCSYNC_SSH_TIMEOUT`); `None`: the default.
    pub ssh_idle_timeout: Option<std::time::Duration>,
    /// A WebDAV login from `CCSYNC_WEBDAV_USER`/`CCSYNC_WEBDAV_PASSWORD`.
    pub webdav_auth: Option<object::WebDavAuth>,
    /// The text of `~/.netrc`, where a WebDAV login is looked up by host
    /// when none is given.
    pub netrc: Option<String>,
    /// Where git locations keep their clones (private); `None`: a temp
    /// dir per transport, fetched whole each time.
    pub git_cache: Option<PathBuf>,
    /// The ssh command for git+ssh, as a shell reads it:
    /// `CCSYNC_SSH_COMMAND`, else the user's `GIT_SSH_COMMAND`; `None`:
    /// what git would run for the user (`core.sshCommand`, `GIT_SSH`,
    /// `ssh`), looked up when first needed.
    pub git_ssh_command: Option<String>,
}

impl Location {
    /// `ssh://[user@]host[:port]/abs/path` and `[user@]host:path` are ssh;
    /// anything else, a Windows drive path (`C:\sync`) included, is a local
    /// directory, taken from `base` when relative.
    pub fn parse(s: &str, base: &Path) -> Result<Self, LocationError> {
        if let Some(rest) = s.strip_prefix("ssh://") {
            return Ok(ssh::SshTarget::from_url(rest).map(Location::Ssh)?);
        }
        // A URL scheme picks the transport: `s3://b/x` is not host `s3`.
        if let Some((scheme, rest)) = s.split_once("://")
            && !scheme.is_empty()
            && scheme
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.'))
        {
            return match scheme.to_ascii_lowercase().as_str() {
                scheme @ ("s3" | "webdav" | "webdavs") => object::ObjectTarget::parse(scheme, rest)
                    .map(Location::Object)
                    .map_err(LocationError::Object),
                git if git.starts_with("git+") => git::GitTarget::parse(&s[4..])
                    .map(Location::Git)
                    .map_err(LocationError::Git),
                _ => Err(LocationError::Unsupported {
                    scheme: scheme.to_owned(),
                }),
            };
        }
        if is_scp_like(s) {
            return Ok(ssh::SshTarget::from_scp(s).map(Location::Ssh)?);
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
            Location::Dir(path) => {
                Box::new(dir::DirTransport::new(path.clone(), opener.owner.clone()))
            }
            Location::Ssh(target) => {
                Box::new(ssh::SshTransport::from_opener(target.clone(), opener))
            }
            Location::Object(target) => Box::new(self.open_object(target, opener)),
            Location::Git(target) => {
                Box::new(git::GitTransport::from_opener(target.clone(), opener))
            }
        }
    }

    /// An object store transport, with its request counter in reach. The
    /// WebDAV login: the one given, else `~/.netrc`'s for the host.
    pub fn open_object(
        &self,
        target: &object::ObjectTarget,
        opener: &Opener,
    ) -> object::ObjectTransport {
        let auth = opener
            .webdav_auth
            .clone()
            .or_else(|| object::netrc_login(opener.netrc.as_deref()?, target.host()?));
        object::ObjectTransport::new(target.clone(), auth, opener.owner.clone())
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
            Location::Object(t) => write!(f, "{t}"),
            Location::Git(t) => write!(f, "{t}"),
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

    #[test]
    fn a_url_scheme_picks_the_transport() {
        let base = Path::new("/base");
        let Location::Object(t) = Location::parse("s3://bucket/x", base).unwrap() else {
            panic!("s3://bucket/x is not ssh host s3")
        };
        assert_eq!(t.to_string(), "s3://bucket/x");
        assert!(matches!(
            Location::parse("webdavs://dav.example.com/ccsync", base).unwrap(),
            Location::Object(_)
        ));
        let Location::Git(t) = Location::parse("git+ssh://me@h:2222/srv/r.git#x", base).unwrap()
        else {
            panic!("git+ssh picks the git transport")
        };
        assert_eq!(
            (t.url.as_str(), t.branch.as_str()),
            ("ssh://me@h:2222/srv/r.git", "x")
        );
        assert_eq!(
            Location::parse(&t.to_string(), base).unwrap(),
            Location::Git(t)
        );
        assert!(matches!(
            Location::parse("GIT+FILE:///srv/r.git", base).unwrap(),
            Location::Git(_)
        ));
        let e = Location::parse("git+ftp://h/r", base)
            .unwrap_err()
            .to_string();
        assert!(e.contains("git+ssh://"), "{e}");
        for other in ["gs://b/x", "azblob://c/x", "ftp://h/x"] {
            let e = Location::parse(other, base).unwrap_err().to_string();
            assert!(
                e.contains("not a transport ccsync has") && e.contains("s3://"),
                "{e}"
            );
        }
        assert!(matches!(
            Location::parse("ssh://box/srv", base).unwrap(),
            Location::Ssh(_)
        ));
        assert!(matches!(
            Location::parse("box:/srv", base).unwrap(),
            Location::Ssh(_)
        ));
    }
}
