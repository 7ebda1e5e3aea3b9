//! A real OpenSSH server on 127.0.0.1, started per test on a free port with
//! its own host and user keys, and a client config that reaches it as
//! `ccsync-test`. ccsync is pointed at it with `CCSYNC_SSH_COMMAND`.

use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::env::skip_or_fail;

pub const HOST: &str = "ccsync-test";

pub struct Sshd {
    pub dir: tempfile::TempDir,
    pub port: u16,
    child: Child,
}

fn keygen(path: &Path) {
    let ok = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .status()
        .unwrap()
        .success();
    assert!(ok, "ssh-keygen failed");
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

impl Sshd {
    /// Starts sshd, or says why it cannot (skipped, or failed in CI).
    pub fn start() -> Option<Self> {
        let sshd = ["/usr/sbin/sshd", "/usr/local/sbin/sshd"]
            .into_iter()
            .find(|p| Path::new(p).exists());
        let Some(sshd) = sshd else {
            skip_or_fail("ssh tests: no sshd (install openssh-server)");
            return None;
        };
        let dir = tempfile::Builder::new()
            .prefix("ccsync-sshd-")
            .tempdir()
            .unwrap();
        let d = dir.path();
        keygen(&d.join("host_key"));
        keygen(&d.join("id"));
        keygen(&d.join("stranger"));
        std::fs::copy(d.join("id.pub"), d.join("authorized_keys")).unwrap();
        // sshd insists on its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let port = free_port();
        std::fs::write(
            d.join("sshd_config"),
            format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {d}/host_key\nPidFile {d}/sshd.pid\n\
                 AuthorizedKeysFile {d}/authorized_keys\nStrictModes no\nUsePAM no\n\
                 PasswordAuthentication no\nKbdInteractiveAuthentication no\nPermitRootLogin yes\n\
                 MaxStartups 100\nMaxSessions 100\nLogLevel ERROR\n",
                d = d.display()
            ),
        )
        .unwrap();
        let host_key = std::fs::read_to_string(d.join("host_key.pub")).unwrap();
        std::fs::write(
            d.join("known_hosts"),
            format!("[127.0.0.1]:{port} {host_key}"),
        )
        .unwrap();
        let child = Command::new(sshd)
            .args(["-D", "-e", "-f"])
            .arg(d.join("sshd_config"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let server = Self { dir, port, child };
        server.write_config("ssh_config", port, "id", "known_hosts");
        // A counting wrapper: every ssh process ccsync starts leaves a line.
        let wrapper = server.path("ssh-wrap");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho ssh >> {}\nexec ssh \"$@\"\n",
                server.path("ssh-count").display()
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(10),
                "sshd did not start"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        Some(server)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// A client config reaching 127.0.0.1:`port` as `ccsync-test`.
    pub fn write_config(
        &self,
        name: &str,
        port: u16,
        identity: &str,
        known_hosts: &str,
    ) -> PathBuf {
        let path = self.path(name);
        std::fs::write(
            &path,
            format!(
                "Host {HOST}\n  HostName 127.0.0.1\n  Port {port}\n  User {user}\n  IdentityFile {d}/{identity}\n  \
                 IdentitiesOnly yes\n  UserKnownHostsFile {d}/{known_hosts}\n  GlobalKnownHostsFile /dev/null\n  \
                 StrictHostKeyChecking yes\n  PasswordAuthentication no\n",
                user = whoami(),
                d = self.dir.path().display()
            ),
        )
        .unwrap();
        path
    }

    /// `CCSYNC_SSH_COMMAND` for a client config, through the counting wrapper.
    pub fn command(&self, config: &Path) -> String {
        format!(
            "{} -F {}",
            self.path("ssh-wrap").display(),
            config.display()
        )
    }

    /// How many ssh processes have been started so far.
    pub fn ssh_count(&self) -> usize {
        std::fs::read_to_string(self.path("ssh-count")).map_or(0, |s| s.lines().count())
    }

    #[cfg(target_os = "linux")]
    /// Stops (SIGSTOP) every process this server started: the connection
    /// handlers and whatever they run, as if the host froze mid-call. The
    /// listener itself and the TCP connection stay up, so only ccsync's own
    /// watch can notice. Stopped processes cannot fork, so scanning until
    /// no new one appears catches a fork in flight.
    pub fn freeze(&self) -> Frozen {
        let mut frozen = Frozen(Vec::new());
        loop {
            let fresh: Vec<u32> = descendants(self.child.id())
                .into_iter()
                .filter(|p| !frozen.0.contains(p))
                .collect();
            if fresh.is_empty() {
                return frozen;
            }
            signal("-STOP", &fresh);
            frozen.0.extend(fresh);
        }
    }
}

#[cfg(target_os = "linux")]
impl Sshd {
    /// Bytes this server's processes have written so far (`wchar` in
    /// /proc/<pid>/io): what went over the wire, give or take the pipes.
    /// Only processes alive now count; the connection handler, which
    /// carries every byte, lives as long as ccsync's shared connection.
    pub fn bytes_written(&self) -> u64 {
        descendants(self.child.id())
            .into_iter()
            .filter_map(|pid| {
                let io = std::fs::read_to_string(format!("/proc/{pid}/io")).ok()?;
                io.lines()
                    .find_map(|l| l.strip_prefix("wchar:"))?
                    .trim()
                    .parse::<u64>()
                    .ok()
            })
            .sum()
    }
}

#[cfg(target_os = "linux")]
/// Processes stopped by [`Sshd::freeze`]; killed when dropped, so a failed
/// test leaves none behind.
pub struct Frozen(pub Vec<u32>);

#[cfg(target_os = "linux")]
impl Drop for Frozen {
    fn drop(&mut self) {
        signal("-KILL", &self.0);
    }
}

#[cfg(target_os = "linux")]
fn signal(which: &str, pids: &[u32]) {
    if !pids.is_empty() {
        let _ = Command::new("kill")
            .arg(which)
            .args(pids.iter().map(u32::to_string))
            .stderr(Stdio::null())
            .status();
    }
}

#[cfg(target_os = "linux")]
/// Every process below `root`, from the parent ids in /proc/<pid>/stat.
fn descendants(root: u32) -> Vec<u32> {
    let mut parents = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|s| s.parse::<u32>().ok())
        else {
            continue;
        };
        // `pid (comm) state ppid …`; comm may hold spaces and parentheses.
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        let ppid = stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().nth(1)?.parse::<u32>().ok());
        if let Some(ppid) = ppid {
            parents.push((pid, ppid));
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(
            parents
                .iter()
                .filter(|(_, pp)| *pp == parent)
                .map(|(p, _)| *p),
        );
        i += 1;
    }
    found.remove(0);
    found
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
