//! A directory on a host reached through the system `ssh`, so the user's
//! `~/.ssh/config`, agent, keys and known_hosts apply. The remote needs a
//! POSIX shell, `find`, `stat`, `tar`, `mktemp` and `mv`; never ccsync.
//!
//! Every operation is one ssh process whatever the number of files: `list`
//! runs `find`, `fetch` streams a tar archive out, `store` streams one in.
//! Connections are multiplexed (ControlMaster) so later calls skip the
//! handshake.

use std::io::{Read, Write};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use super::{Listing, ObjectName, Opener, PerObject, RemoteObject, Transport, TransportError, Visitor};
use crate::bundle::MAX_BUNDLE_BYTES;

/// `ssh://[user@]host[:port]/abs/path` or `[user@]host:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// Absolute, or relative to the remote home; empty for the home itself.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(String);

impl SshTarget {
    /// `ssh://[user@]host[:port]/absolute/path`.
    pub fn from_url(rest: &str) -> Result<Self, TargetError> {
        let (authority, path) = rest.split_once('/').ok_or_else(|| {
            TargetError(format!(
                "ssh://{rest} has no path; write ssh://host/absolute/path"
            ))
        })?;
        let (user, hostport) = split_user(authority);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                let port = p.parse().map_err(|_| {
                    TargetError(format!("port {p:?} in ssh://{rest} is not a number"))
                })?;
                (h, Some(port))
            }
            _ => (hostport, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Self::new(
            user,
            host,
            port,
            format!("/{}", path.trim_start_matches('/')),
        )
    }

    /// `[user@]host:path`.
    pub fn from_scp(s: &str) -> Result<Self, TargetError> {
        let (authority, path) = s.split_once(':').expect("scp form has a colon");
        let (user, host) = split_user(authority);
        let path = path
            .strip_prefix("~/")
            .unwrap_or(if path == "~" { "" } else { path });
        Self::new(user, host, None, path.to_owned())
    }

    fn new(
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
        path: String,
    ) -> Result<Self, TargetError> {
        let bad = |s: &str| {
            s.is_empty()
                || s.starts_with('-')
                || s.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if bad(host) || user.is_some_and(bad) {
            return Err(TargetError(format!(
                "{host:?} is not a host name ssh can be given safely (empty, starting with '-', or with spaces)"
            )));
        }
        if path.contains('\0') {
            return Err(TargetError("the remote path contains NUL".into()));
        }
        Ok(Self {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// `[user@]host`, as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(
                f,
                "ssh://{}:{port}/{}",
                self.destination(),
                self.path.trim_start_matches('/')
            ),
            None => write!(f, "{}:{}", self.destination(), self.path),
        }
    }
}

fn split_user(authority: &str) -> (Option<&str>, &str) {
    match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    }
}

/// Quotes a word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

// The scripts run under `sh -c`; paths and names arrive as positional
// parameters, never spliced into the script text. Exit codes 3 and 4 say the
// directory is missing or not writable.
const LIST: &str = r#"cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
if stat -c %s . >/dev/null 2>&1; then
  find . -mindepth 2 -maxdepth 2 ! -path './.*' -type f ! -name '.*' -exec stat -c '%s %Y %n' {} +
else
  find . -mindepth 2 -maxdepth 2 ! -path './.*' -type f ! -name '.*' -exec stat -f '%z %m %N' {} +
fi"#;
const FETCH: &str = r#"cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
shift
exec tar -cf - "$@""#;
const STORE: &str = r#"cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
shift
umask 077
find . -maxdepth 1 -name '.ccsync-*' -mmin +60 -exec rm -rf {} + 2>/dev/null
t=$(mktemp -d ./.ccsync-XXXXXXXX) || exit 4
trap 'rm -rf -- "$t"' EXIT
tar -xf - -C "$t" || exit 4
for f in "$@"; do
  mkdir -p -- "${f%/*}" && mv -f -- "$t/$f" "$f" || exit 4
done
if stat -c %s . >/dev/null 2>&1; then stat -c '%s %Y ./%n' -- "$@"; else stat -f '%z %m ./%N' -- "$@"; fi"#;
const PROBE: &str = r#"cd -- "$1" 2>/dev/null || { echo "no such directory" >&2; exit 3; }
t=$(mktemp ./.ccsync-probe-XXXXXXXX) || exit 4
rm -f -- "$t""#;
const CREATE: &str = r#"umask 077
mkdir -p -- "$1" || exit 4
cd -- "$1" && t=$(mktemp ./.ccsync-probe-XXXXXXXX) && rm -f -- "$t" || exit 4"#;

pub struct SshTransport {
    target: SshTarget,
    /// The ssh program and its leading arguments (`CCSYNC_SSH_COMMAND`).
    command: Vec<String>,
    /// Where multiplexing sockets go; `None` turns multiplexing off.
    control_dir: Option<PathBuf>,
    connect_timeout: u32,
}

/// Kills the ssh process if it is still running when dropped: a failed
/// fetch or store must not leave it behind.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        if let Ok(None) = self.0.try_wait() {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
}

impl SshTransport {
    /// `control_dir` holds the multiplexing sockets; it must be private.
    pub fn new(target: SshTarget, command: Vec<String>, control_dir: Option<PathBuf>) -> Self {
        Self {
            target,
            command: if command.is_empty() {
                vec!["ssh".into()]
            } else {
                command
            },
            control_dir,
            connect_timeout: 10,
        }
    }

    /// As `Location::open` makes it.
    pub fn from_opener(target: SshTarget, opener: &Opener) -> Self {
        Self::new(target, opener.ssh_command.clone(), opener.control_dir.clone())
    }

    pub fn target(&self) -> &SshTarget {
        &self.target
    }

    fn error(&self, message: impl Into<String>) -> TransportError {
        TransportError::Other {
            location: self.location(),
            message: message.into(),
        }
    }

    fn command(&self, script: &str, args: &[String]) -> Result<Command, TransportError> {
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..])
            .args(["-o", "BatchMode=yes"])
            .arg("-o")
            .arg(format!("ConnectTimeout={}", self.connect_timeout));
        match &self.control_dir {
            Some(dir) => cmd
                .args(["-o", "ControlMaster=auto", "-o", "ControlPersist=60"])
                .arg("-o")
                .arg(format!("ControlPath={}", dir.join("%C").display())),
            None => cmd.args(["-o", "ControlMaster=no", "-o", "ControlPath=none"]),
        };
        if let Some(port) = self.target.port {
            cmd.arg("-p").arg(port.to_string());
        }
        let mut remote = format!("sh -c {} ccsync", shell_quote(script));
        for a in args {
            remote.push(' ');
            remote.push_str(&shell_quote(a));
        }
        cmd.arg(self.target.destination()).arg(remote);
        Ok(cmd)
    }

    fn spawn(&self, mut cmd: Command, stdin: bool) -> Result<Running, TransportError> {
        cmd.stdin(if stdin { Stdio::piped() } else { Stdio::null() })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        cmd.spawn().map(Running).map_err(|e| {
            self.error(format!(
                "cannot run {:?}: {e}; install OpenSSH or set CCSYNC_SSH_COMMAND",
                self.command[0]
            ))
        })
    }

    /// Turns a failed exit into an error that names the host and quotes
    /// what ssh or the remote said.
    fn failure(&self, code: Option<i32>, stderr: &[u8]) -> TransportError {
        let said = String::from_utf8_lossy(stderr);
        let last = said
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim();
        let dir = if self.target.path.is_empty() {
            "the home directory"
        } else {
            &self.target.path
        };
        let host = &self.target.host;
        self.error(match code {
            Some(255) => format!(
                "ssh to {host} failed: {last}; check that `ssh {}` works without a password prompt",
                self.target.destination()
            ),
            Some(3) => format!(
                "{dir} does not exist on {host}; create it, or run `ccsync init` with this location"
            ),
            Some(4) => format!("cannot write to {dir} on {host}: {last}; check its permissions"),
            Some(c) => format!("the command on {host} failed (exit {c}): {last}"),
            None => format!("ssh to {host} was killed: {last}"),
        })
    }

    /// Runs a script that needs no input, returning its stdout.
    fn run(&self, script: &str, args: &[String]) -> Result<Vec<u8>, TransportError> {
        let child = self.spawn(self.command(script, args)?, false)?;
        let out = wait_output(child)?;
        if out.status.success() {
            Ok(out.stdout)
        } else {
            Err(self.failure(out.status.code(), &out.stderr))
        }
    }

    fn root_arg(&self) -> String {
        if self.target.path.is_empty() {
            ".".into()
        } else {
            self.target.path.clone()
        }
    }

    /// Makes the remote directory exist (for `init`).
    pub fn create(&self) -> Result<(), TransportError> {
        self.run(CREATE, &[self.root_arg()]).map(drop)
    }

    /// `ssh -V`: which ssh this is.
    pub fn version(&self) -> Result<String, TransportError> {
        let out = Command::new(&self.command[0])
            .args(&self.command[1..])
            .arg("-V")
            .output()
            .map_err(|e| self.error(format!("cannot run {:?}: {e}", self.command[0])))?;
        let text = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        Ok(if text.is_empty() {
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        } else {
            text
        })
    }

    /// Time of one command round trip over the (possibly new) connection.
    pub fn round_trip(&self) -> Result<Duration, TransportError> {
        let started = Instant::now();
        self.run("true", &[])?;
        Ok(started.elapsed())
    }
}

fn wait_output(child: Running) -> Result<std::process::Output, TransportError> {
    let mut child = child;
    let mut stdout = Vec::new();
    let mut stderr = Vec::new();
    let (mut out, mut err) = (
        child.0.stdout.take().expect("piped"),
        child.0.stderr.take().expect("piped"),
    );
    std::thread::scope(|s| {
        let e = s.spawn(|| err.read_to_end(&mut stderr));
        let _ = out.read_to_end(&mut stdout);
        let _ = e.join();
    });
    let status = child.0.wait().map_err(|e| TransportError::Other {
        location: "ssh".into(),
        message: e.to_string(),
    })?;
    Ok(std::process::Output {
        status,
        stdout,
        stderr,
    })
}

impl Transport for SshTransport {
    fn location(&self) -> String {
        self.target.to_string()
    }

    fn list(&self) -> Result<Listing, TransportError> {
        Ok(Listing {
            objects: parse_listing(&self.run(LIST, &[self.root_arg()])?),
            refused: Vec::new(),
        })
    }

    fn fetch(
        &self,
        names: &[ObjectName],
        visit: &mut Visitor,
    ) -> Result<Vec<PerObject<()>>, TransportError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![self.root_arg()];
        args.extend(names.iter().map(|n| format!("./{n}")));
        let mut child = self.spawn(self.command(FETCH, &args)?, false)?;
        let stdout = child.0.stdout.take().expect("piped");
        let mut stderr_pipe = child.0.stderr.take().expect("piped");
        let mut stderr = Vec::new();
        let mut found: Vec<Option<PerObject<()>>> = vec![None; names.len()];
        let unpacked = std::thread::scope(|s| {
            let e = s.spawn(|| stderr_pipe.read_to_end(&mut stderr));
            let result = unpack(stdout, names, visit, &mut found);
            let _ = e.join();
            result
        });
        let status = child.0.wait().map_err(|e| self.error(e.to_string()))?;
        if let Err(message) = unpacked {
            return Err(if status.success() {
                self.error(message)
            } else {
                self.failure(status.code(), &stderr)
            });
        }
        if !status.success() && status.code() != Some(2) {
            return Err(self.failure(status.code(), &stderr));
        }
        Ok(found
            .into_iter()
            .zip(names)
            .map(|(f, n)| f.unwrap_or_else(|| Err(format!("{n} vanished while being read"))))
            .collect())
    }

    fn store(
        &self,
        objects: &[(ObjectName, PathBuf)],
    ) -> Result<Vec<PerObject<RemoteObject>>, TransportError> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![self.root_arg()];
        args.extend(objects.iter().map(|(n, _)| n.to_string()));
        let mut child = self.spawn(self.command(STORE, &args)?, true)?;
        let stdin = child.0.stdin.take().expect("piped");
        let (mut out, mut err) = (
            child.0.stdout.take().expect("piped"),
            child.0.stderr.take().expect("piped"),
        );
        let mut stderr = Vec::new();
        let mut listing = Vec::new();
        let packed = std::thread::scope(|s| {
            let e = s.spawn(|| err.read_to_end(&mut stderr));
            let o = s.spawn(|| out.read_to_end(&mut listing));
            let result = pack(stdin, objects);
            let _ = (e.join(), o.join());
            result
        });
        let status = child.0.wait().map_err(|e| self.error(e.to_string()))?;
        if !status.success() {
            return Err(self.failure(status.code(), &stderr));
        }
        packed.map_err(|e| self.error(format!("sending files failed: {e}")))?;
        let listed = parse_listing(&listing);
        Ok(objects
            .iter()
            .map(|(name, _)| {
                listed
                    .iter()
                    .find(|o| o.name == *name)
                    .cloned()
                    .ok_or_else(|| format!("{name} was not stored"))
            })
            .collect())
    }

    fn check_writable(&self) -> Result<(), TransportError> {
        self.run(PROBE, &[self.root_arg()]).map(drop)
    }
}

/// `size mtime ./dir/file` lines, as `stat` prints them, into objects.
fn parse_listing(out: &[u8]) -> Vec<RemoteObject> {
    let mut objects: Vec<RemoteObject> = String::from_utf8_lossy(out)
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let size = parts.next()?.parse().ok()?;
            let mtime: u64 = parts.next()?.parse().ok()?;
            let (dir, file) = parts.next()?.strip_prefix("./")?.split_once('/')?;
            Some(RemoteObject {
                name: ObjectName::parse(dir, file)?,
                size,
                modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime)),
            })
        })
        .collect();
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    objects.dedup_by(|a, b| a.name == b.name);
    objects
}

/// Writes the files as a tar stream: regular files, mode 0600.
fn pack(stdin: impl Write, objects: &[(ObjectName, PathBuf)]) -> std::io::Result<()> {
    let mut builder = tar::Builder::new(stdin);
    for (name, path) in objects {
        let mut file = std::fs::File::open(path)?;
        let mut header = tar::Header::new_ustar();
        header.set_size(file.metadata()?.len());
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        builder.append_data(&mut header, name.to_string(), &mut file)?;
    }
    builder.into_inner()?.flush()
}

/// Reads the tar stream of a fetch, handing each regular file that was
/// asked for, within the bundle size cap, to `visit`.
fn unpack(
    stdout: impl Read,
    names: &[ObjectName],
    visit: &mut Visitor,
    found: &mut [Option<PerObject<()>>],
) -> Result<(), String> {
    let mut archive = tar::Archive::new(stdout);
    for entry in archive.entries().map_err(|e| e.to_string())? {
        let mut entry = entry.map_err(|e| format!("bad archive from the remote: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| e.to_string())?
            .to_string_lossy()
            .into_owned();
        let path = path.trim_start_matches("./");
        let Some(i) = names.iter().position(|n| n.to_string() == path) else {
            continue;
        };
        if entry.header().entry_type() != tar::EntryType::Regular {
            found[i] = Some(Err(format!("{path} is not a regular file; links are never followed")));
            continue;
        }
        if entry.size() > MAX_BUNDLE_BYTES {
            found[i] = Some(Err(super::dir::too_large(path, entry.size())));
            continue;
        }
        visit(i, &mut entry);
        found[i] = Some(Ok(()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        let t = SshTarget::from_url("alice@host.example:2222/srv/sync").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port, t.path.as_str()),
            (Some("alice"), "host.example", Some(2222), "/srv/sync")
        );
        let t = SshTarget::from_url("host/srv/it's $(x)").unwrap();
        assert_eq!((t.port, t.path.as_str()), (None, "/srv/it's $(x)"));
        let t = SshTarget::from_url("[::1]:22/x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(22)));
        let t = SshTarget::from_scp("bob@box:sync/ccsync").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.path.as_str()),
            (Some("bob"), "box", "sync/ccsync")
        );
        assert_eq!(SshTarget::from_scp("box:~/s").unwrap().path, "s");
        assert_eq!(SshTarget::from_scp("box:").unwrap().path, "");
        for bad in ["-oProxyCommand=x:/p", "a b:/p", ":/p"] {
            assert!(SshTarget::from_scp(bad).is_err(), "{bad}");
        }
        assert!(SshTarget::from_url("host").is_err());
        assert!(SshTarget::from_url("host:abc/x").is_err());
    }

    #[test]
    fn quoting_survives_a_shell() {
        for s in [
            "plain",
            "it's $(touch pwned) here",
            "a;b`c`\"d\"\\e",
            "",
            "'",
        ] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }

    #[test]
    fn pack_and_unpack() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ObjectName::parse("git=x", "a.ccsync").unwrap();
        let b = ObjectName::parse("machines", "m.json").unwrap();
        std::fs::write(tmp.path().join("a"), b"aaa").unwrap();
        std::fs::write(tmp.path().join("b"), b"").unwrap();
        let mut stream = Vec::new();
        pack(
            &mut stream,
            &[
                (a.clone(), tmp.path().join("a")),
                (b.clone(), tmp.path().join("b")),
            ],
        )
        .unwrap();
        let mut found = vec![None, None];
        let mut got = vec![Vec::new(), Vec::new()];
        unpack(stream.as_slice(), &[b, a], &mut |i, r| {
            r.read_to_end(&mut got[i]).unwrap();
        }, &mut found)
        .unwrap();
        assert_eq!(got[1], b"aaa");
        assert_eq!(got[0], b"");
        assert!(found.iter().all(|f| matches!(f, Some(Ok(())))));
    }
}
