//! A directory on a host reached through the system `ssh`, so the user's
//! `~/.ssh/config`, agent, keys and known_hosts apply. The remote needs a
//! POSIX shell, `find`, `stat`, `tar`, `mktemp` and `mv`; never ccsync.
//!
//! Every operation is one ssh process whatever the number of files: `list`
//! runs `find`, `fetch` streams a tar archive out, `store` streams one in.
//! Connections are multiplexed (ControlMaster) so later calls skip the
//! handshake. Each call is watched (`call`): one that moves no byte for the
//! idle limit is ended, whatever the host does. The scripts (`scripts`)
//! never follow a link in the sync dir, and say per object, on stderr, what
//! they would not touch and why (`protocol`).

mod call;
mod protocol;
mod scripts;
mod target;

use std::io::Read;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

pub use target::{SshTarget, TargetError, shell_quote};

use super::{
    Listing, ObjectName, Opener, PerObject, RemoteObject, Transport, TransportError, Visitor,
};
use crate::bundle::MAX_BUNDLE_BYTES;
use crate::names::MachineName;
use call::{Call, Ended};
use protocol::{Skip, split_stderr};

/// How long a call may move no byte before it is ended, unless
/// `CCSYNC_SSH_TIMEOUT` says otherwise.
pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(30);

/// ssh's own keep-alive: a host that answers none of three, five seconds
/// apart, is given up on by ssh itself (with multiplexing, by the master,
/// which then says nothing to the client but exit code 255).
const KEEP_ALIVE: [&str; 4] = ["-o", "ServerAliveInterval=5", "-o", "ServerAliveCountMax=3"];

/// The most a script without input may print.
const RUN_OUTPUT_CAP: u64 = 256 << 20;

pub struct SshTransport {
    target: SshTarget,
    /// The ssh program and its leading arguments (`CCSYNC_SSH_COMMAND`).
    command: Vec<String>,
    /// Where multiplexing sockets go; `None` turns multiplexing off.
    control_dir: Option<PathBuf>,
    connect_timeout: u32,
    /// Names this machine's temp dirs, so its next store removes those a
    /// killed run left at once.
    owner: Option<MachineName>,
    idle_timeout: Duration,
    /// Whether a store ran, which sweeps leftover temp dirs on its way.
    swept: std::cell::Cell<bool>,
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
            owner: None,
            idle_timeout: DEFAULT_IDLE_TIMEOUT,
            swept: std::cell::Cell::new(false),
        }
    }

    /// As `Location::open` makes it.
    pub fn from_opener(target: SshTarget, opener: &Opener) -> Self {
        Self::new(
            target,
            opener.ssh_command.clone(),
            opener.control_dir.clone(),
        )
        .with_owner(opener.owner.clone())
        .with_idle_timeout(opener.ssh_idle_timeout)
    }

    pub fn with_owner(self, owner: Option<MachineName>) -> Self {
        Self { owner, ..self }
    }

    /// `None`: the default, 30 s.
    pub fn with_idle_timeout(self, limit: Option<Duration>) -> Self {
        Self {
            idle_timeout: limit.unwrap_or(DEFAULT_IDLE_TIMEOUT),
            ..self
        }
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

    /// ssh with the leading arguments every call shares, up to the
    /// destination.
    fn ssh(&self) -> Command {
        let mut cmd = Command::new(&self.command[0]);
        cmd.args(&self.command[1..]).args(["-o", "BatchMode=yes"]);
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
        cmd
    }

    fn command(&self, script: &str, args: &[String]) -> Command {
        let mut cmd = self.ssh();
        cmd.arg("-o")
            .arg(format!("ConnectTimeout={}", self.connect_timeout))
            .args(KEEP_ALIVE);
        let mut remote = format!("sh -c {} ccsync", shell_quote(script));
        for a in args {
            remote.push(' ');
            remote.push_str(&shell_quote(a));
        }
        cmd.arg(self.target.destination()).arg(remote);
        cmd
    }

    /// `ssh -O exit`: ends the shared connection, closing every pipe its
    /// master holds for the calls that went through it.
    fn end_master(&self) -> Option<Command> {
        self.control_dir.as_ref()?;
        let mut cmd = self.ssh();
        cmd.args(["-O", "exit"]).arg(self.target.destination());
        Some(cmd)
    }

    fn start(
        &self,
        script: &str,
        args: &[String],
        input: Option<call::Input>,
    ) -> Result<Call, TransportError> {
        Call::start(
            self.command(script, args),
            input,
            self.idle_timeout,
            self.end_master(),
        )
        .map_err(|e| {
            self.error(format!(
                "cannot run {:?}: {e}; install OpenSSH or set CCSYNC_SSH_COMMAND",
                self.command[0]
            ))
        })
    }

    fn stalled(&self) -> TransportError {
        self.error(format!(
            "no data moved to or from {} for {}: the host or the network stopped answering; check that the host is up and reachable, then try again (if it is only slow, set CCSYNC_SSH_TIMEOUT to more seconds)",
            self.target.host,
            call::seconds(self.idle_timeout)
        ))
    }

    /// The error for a call that did not succeed: it names the host, quotes
    /// what ssh or the remote said last, and never leaves the reason empty.
    fn failure(&self, ended: &Ended) -> TransportError {
        if ended.slow {
            return self.error(format!(
                "{} sent and took less than {} KiB a second: the host or the network is failing; check them, then try again",
                self.target.host,
                call::MIN_RATE >> 10
            ));
        }
        if ended.stalled {
            return self.stalled();
        }
        let (_, other) = split_stderr(&ended.stderr);
        let said = protocol::last_words(&other);
        let dir = if self.target.path.is_empty() {
            "the home directory"
        } else {
            &self.target.path
        };
        let host = &self.target.host;
        let destination = self.target.destination();
        let code = ended.status.and_then(|s| s.code());
        self.error(match (code, said) {
            (Some(255), Some(said)) if said.contains("not responding") => format!(
                "{host} stopped answering ssh's keep-alives ({said}): the host or the network stopped answering; check that the host is up and reachable, then try again"
            ),
            // Multiplexed, ssh's own words went to the master, not here.
            (Some(255), None) if ended.quiet >= Duration::from_secs(10) => format!(
                "no data moved to or from {host} for {} and ssh dropped the connection: the host or the network stopped answering; check that the host is up and reachable, then try again",
                call::seconds(Duration::from_secs(ended.quiet.as_secs()))
            ),
            (Some(255), None) => format!(
                "the connection to {host} was lost, and ssh said nothing (exit 255): the host or the network may have stopped answering; check that `ssh {destination}` works, then try again"
            ),
            (Some(255), Some(said)) => format!(
                "ssh to {host} failed: {said}; check that `ssh {destination}` works without a password prompt"
            ),
            (Some(3), _) => format!(
                "{dir} does not exist on {host}; create it, or run `ccsync init` with this location"
            ),
            (Some(4), said) => format!(
                "cannot write to {dir} on {host}: {}; check its permissions and free space",
                said.unwrap_or("the host gave no reason")
            ),
            (Some(c), said) => format!(
                "the command on {host} failed (exit {c}): {}",
                said.unwrap_or("it gave no reason")
            ),
            (None, said) => format!(
                "ssh to {host} was ended by a signal: {}",
                said.unwrap_or("it gave no reason")
            ),
        })
    }

    /// Runs a script that needs no input: its stdout and stderr.
    fn run(&self, script: &str, args: &[String]) -> Result<(Vec<u8>, Vec<u8>), TransportError> {
        let mut call = self.start(script, args, None)?;
        let mut out = Vec::new();
        // A stall shows in how it ended. A listing of 100,000 objects is a
        // few MB: a host that sends more than this is not a sync dir.
        let _ = call.stdout().take(RUN_OUTPUT_CAP + 1).read_to_end(&mut out);
        if out.len() as u64 > RUN_OUTPUT_CAP {
            drop(call.abort());
            return Err(self.error(format!(
                "{} sent more than {} MiB in answer to a listing; it is not a ccsync sync dir as expected",
                self.target.host,
                RUN_OUTPUT_CAP >> 20
            )));
        }
        let ended = call.finish();
        if ended.stalled || !ended.status.is_some_and(|s| s.success()) {
            return Err(self.failure(&ended));
        }
        Ok((out, ended.stderr))
    }

    fn root_arg(&self) -> String {
        if self.target.path.is_empty() {
            ".".into()
        } else {
            self.target.path.clone()
        }
    }

    /// This machine's name for the scripts; empty when unknown.
    fn owner_arg(&self) -> String {
        self.owner
            .as_ref()
            .map_or_else(String::new, |o| o.as_str().to_owned())
    }

    /// For temp names: the owner, or `unknown`.
    fn owner_name(&self) -> String {
        self.owner
            .as_ref()
            .map_or_else(|| "unknown".into(), |o| o.as_str().to_owned())
    }

    /// Makes the remote directory exist (for `init`).
    pub fn create(&self) -> Result<(), TransportError> {
        self.run(scripts::CREATE, &[self.root_arg(), self.owner_name()])
            .map(drop)
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

    /// Why each object of a batch that neither arrived nor was refused
    /// by a skip line did not make it.
    fn per_object<T>(
        &self,
        names: impl Iterator<Item = String>,
        mut got: Vec<Option<PerObject<T>>>,
        stderr: &[u8],
        missing: &str,
    ) -> Vec<PerObject<T>> {
        let (skips, other) = split_stderr(stderr);
        let names: Vec<String> = names.collect();
        for skip in &skips {
            if let Some(i) = names.iter().position(|n| *n == skip.path)
                && !matches!(got[i], Some(Ok(_)))
            {
                got[i] = Some(Err(self.reason(skip)));
            }
        }
        got.into_iter()
            .zip(&names)
            .map(|(g, name)| {
                g.unwrap_or_else(|| {
                    let what = format!("{} {missing}", self.target.join(name));
                    Err(protocol::unexplained(name, &other, what))
                })
            })
            .collect()
    }

    fn reason(&self, skip: &Skip) -> String {
        skip.reason(|rel| self.target.join(rel))
    }
}

impl Transport for SshTransport {
    fn location(&self) -> String {
        self.target.to_string()
    }

    fn list(&self) -> Result<Listing, TransportError> {
        let (out, err) = self.run(scripts::LIST, &[self.root_arg()])?;
        let (skips, _) = split_stderr(&err);
        Ok(Listing {
            objects: protocol::parse_listing(&out),
            refused: skips
                .iter()
                .map(|s| {
                    (
                        self.target.join(&s.path),
                        "a symbolic link; ccsync never follows links in the sync dir".into(),
                    )
                })
                .collect(),
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
        let mut args = vec![self.root_arg(), MAX_BUNDLE_BYTES.to_string()];
        args.extend(names.iter().map(|n| format!("./{n}")));
        let mut call = self.start(scripts::FETCH, &args, None)?;
        let mut found: Vec<Option<PerObject<()>>> = vec![None; names.len()];
        let unpacked = protocol::unpack(call.stdout(), names, visit, &mut found);
        let ended = match unpacked {
            Ok(()) => call.finish(),
            Err(_) => call.abort(),
        };
        let code = ended.status.and_then(|s| s.code());
        // tar says 1 or 2 when a file changed or went while it read; that
        // file is missing from the archive and explained below.
        let whole_failure = ended.stalled || !matches!(code, Some(0..=2));
        if whole_failure {
            return Err(self.failure(&ended));
        }
        if let Err(message) = unpacked {
            return Err(self.error(format!(
                "the archive from {} broke off ({message}); try again",
                self.target.host
            )));
        }
        Ok(self.per_object(
            names.iter().map(ToString::to_string),
            found,
            &ended.stderr,
            "vanished while being read",
        ))
    }

    fn store(
        &self,
        objects: &[(ObjectName, PathBuf)],
    ) -> Result<Vec<PerObject<RemoteObject>>, TransportError> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![self.root_arg(), self.owner_arg()];
        args.extend(objects.iter().map(|(n, _)| n.to_string()));
        self.swept.set(true);
        let sending = objects.to_vec();
        let input: call::Input = Box::new(move |stdin| protocol::pack(stdin, &sending));
        let mut call = self.start(scripts::STORE, &args, Some(input))?;
        let mut listing = Vec::new();
        let _ = call.stdout().read_to_end(&mut listing);
        let ended = call.finish();
        // Other than a broken pipe (the remote went away, which `failure`
        // explains), a failed send is a staged file that could not be
        // read: the news, rather than the remote's complaint of a short
        // stream.
        if !ended.stalled
            && let Some(Err(e)) = &ended.input
            && e.kind() != std::io::ErrorKind::BrokenPipe
        {
            return Err(self.error(format!(
                "sending the files to {} failed: {e}",
                self.target.host
            )));
        }
        if ended.stalled || !ended.status.is_some_and(|s| s.success()) {
            return Err(self.failure(&ended));
        }
        if let Some(Err(e)) = &ended.input {
            return Err(self.error(format!(
                "sending the files to {} failed: {e}; try again",
                self.target.host
            )));
        }
        let listed = protocol::parse_listing(&listing);
        let got = objects
            .iter()
            .map(|(name, _)| listed.iter().find(|o| o.name == *name).cloned().map(Ok))
            .collect();
        Ok(self.per_object(
            objects.iter().map(|(n, _)| n.to_string()),
            got,
            &ended.stderr,
            "was not stored",
        ))
    }

    fn remove(&self, names: &[ObjectName]) -> Result<Vec<PerObject<()>>, TransportError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let mut args = vec![self.root_arg()];
        args.extend(names.iter().map(ToString::to_string));
        let (out, err) = self.run(scripts::REMOVE, &args)?;
        let gone: Vec<&str> = std::str::from_utf8(&out)
            .unwrap_or("")
            .lines()
            .filter_map(|l| l.strip_prefix("./"))
            .collect();
        let got = names
            .iter()
            .map(|n| gone.contains(&n.to_string().as_str()).then_some(Ok(())))
            .collect();
        Ok(self.per_object(
            names.iter().map(ToString::to_string),
            got,
            &err,
            "was not removed",
        ))
    }

    fn remove_own_temps(&self) -> Result<(), TransportError> {
        if self.swept.replace(true) || self.owner.is_none() {
            return Ok(());
        }
        self.run(scripts::SWEEP, &[self.root_arg(), self.owner_arg()])
            .map(drop)
    }

    fn check_writable(&self) -> Result<(), TransportError> {
        self.run(scripts::PROBE, &[self.root_arg(), self.owner_name()])
            .map(drop)
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::process::ExitStatusExt;
    use std::process::ExitStatus;

    fn ended(status: Option<i32>, stderr: &str, quiet: u64) -> Ended {
        Ended {
            // A wait status: the exit code in the second byte, or a signal.
            status: Some(ExitStatus::from_raw(status.map_or(9, |c| c << 8))),
            stderr: stderr.as_bytes().to_vec(),
            stalled: false,
            slow: false,
            quiet: Duration::from_secs(quiet),
            input: None,
        }
    }

    #[test]
    fn every_failure_names_the_host_and_says_why() {
        let target = SshTarget::from_scp("me@box:/srv/sync").unwrap();
        let t = SshTransport::new(target, Vec::new(), None).with_idle_timeout(None);
        let skip = "ccsync-skip\tgit=x/a\tlink\t\n";
        let cases = [
            (
                ended(Some(255), "Timeout, server box not responding.\r\n", 20),
                "box stopped answering ssh's keep-alives (Timeout, server box not responding.)",
            ),
            (
                ended(Some(255), skip, 19),
                "no data moved to or from box for 19 s and ssh dropped the connection",
            ),
            (ended(Some(255), "", 0), "the connection to box was lost"),
            (
                ended(
                    Some(255),
                    "ssh: connect to host box port 22: Connection refused\n",
                    0,
                ),
                "ssh to box failed: ssh: connect to host box port 22: Connection refused; check that `ssh me@box` works",
            ),
            (
                ended(Some(3), "no such directory\n", 0),
                "/srv/sync does not exist on box",
            ),
            (
                ended(Some(4), "", 0),
                "cannot write to /srv/sync on box: the host gave no reason",
            ),
            (
                ended(Some(4), "mktemp: Read-only file system\n", 0),
                "box: mktemp: Read-only",
            ),
            (
                ended(Some(7), skip, 0),
                "on box failed (exit 7): it gave no reason",
            ),
            (
                ended(None, "", 0),
                "ssh to box was ended by a signal: it gave no reason",
            ),
            (
                Ended {
                    stalled: true,
                    ..ended(None, "", 30)
                },
                "no data moved to or from box for 30 s: the host or the network stopped answering",
            ),
        ];
        for (ended, want) in cases {
            let message = t.failure(&ended).to_string();
            assert!(message.contains(want), "{want:?} not in {message:?}");
            assert!(message.starts_with("me@box:/srv/sync: "), "{message}");
            assert!(
                !message.contains(": ;") && !message.contains(":  "),
                "{message}"
            );
        }
        let stalled = t.failure(&Ended {
            stalled: true,
            ..ended(None, "", 30)
        });
        assert!(stalled.to_string().contains("CCSYNC_SSH_TIMEOUT"));
    }
}
