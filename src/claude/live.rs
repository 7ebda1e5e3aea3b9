//! Is Claude Code writing this transcript right now?
//!
//! Claude Code appends through a file descriptor it keeps open. Renaming a new
//! file over the transcript would send every later line to the unlinked old
//! file, so a pull must leave such a transcript alone.

use std::collections::HashMap;
use std::path::Path;
use std::time::{Duration, SystemTime};

/// Why a transcript counts as in use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InUse {
    /// A running client registered the session (`sessions/<pid>.json`).
    Registered { pid: u32 },
    /// A client is starting it (its SessionStart hook asked to leave it).
    Starting,
    /// A process holds it open for writing.
    OpenForWriting { pid: u32 },
    /// It changed moments ago: a writer may be invisible from here (another
    /// container, another OS).
    RecentlyModified { ago: Duration },
}

impl std::fmt::Display for InUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InUse::Registered { pid } => {
                write!(
                    f,
                    "Claude Code process {pid} is running it (sessions/{pid}.json)"
                )
            }
            InUse::Starting => write!(f, "Claude Code is starting it"),
            InUse::OpenForWriting { pid } => write!(f, "process {pid} has it open for writing"),
            InUse::RecentlyModified { ago } => {
                write!(f, "it was modified {:.1}s ago", ago.as_secs_f64())
            }
        }
    }
}

/// Files open for writing by any process this user can see, by (device, inode).
#[derive(Debug, Default)]
pub struct Writers {
    open: HashMap<(u64, u64), u32>,
}

impl Writers {
    /// Reads `/proc/*/fd` once. Elsewhere (no `/proc`) it finds nothing and
    /// the modification-time check carries the load.
    pub fn scan() -> Self {
        let mut open = HashMap::new();
        #[cfg(target_os = "linux")]
        if let Ok(procs) = std::fs::read_dir("/proc") {
            use std::os::unix::fs::MetadataExt;
            let me = std::process::id();
            for proc_entry in procs.flatten() {
                let Some(pid) = proc_entry
                    .file_name()
                    .to_str()
                    .and_then(|s| s.parse::<u32>().ok())
                else {
                    continue;
                };
                if pid == me {
                    continue;
                }
                let Ok(fds) = std::fs::read_dir(proc_entry.path().join("fd")) else {
                    continue;
                };
                for fd in fds.flatten() {
                    let Ok(meta) = std::fs::metadata(fd.path()) else {
                        continue;
                    };
                    if !meta.is_file() {
                        continue;
                    }
                    let info = proc_entry.path().join("fdinfo").join(fd.file_name());
                    if opened_for_writing(&std::fs::read_to_string(info).unwrap_or_default()) {
                        open.insert((meta.dev(), meta.ino()), pid);
                    }
                }
            }
        }
        Self { open }
    }

    /// Whether `path` is in use: open for writing, or modified within
    /// `recent` of now, either way (a writer on another machine or in a
    /// container may run a clock a little ahead). A modification time
    /// further in the future is no evidence at all (a clock far off, a
    /// restored backup): only a process holding the file counts then;
    /// [`modified_in_future`] says by how much.
    pub fn check(&self, path: &Path, recent: Duration) -> Option<InUse> {
        let meta = std::fs::metadata(path).ok()?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::MetadataExt;
            if let Some(&pid) = self.open.get(&(meta.dev(), meta.ino())) {
                return Some(InUse::OpenForWriting { pid });
            }
        }
        let ago = match SystemTime::now().duration_since(meta.modified().ok()?) {
            Ok(ago) => ago,
            Err(ahead) if ahead.duration() < recent => Duration::ZERO,
            Err(_) => return None,
        };
        (ago < recent).then_some(InUse::RecentlyModified { ago })
    }
}

/// How far in the future `path`'s modification time is, when it is at
/// least `recent` (and a second) ahead of this machine's clock: too far to
/// be a writer's.
pub fn modified_in_future(path: &Path, recent: Duration) -> Option<Duration> {
    let modified = std::fs::metadata(path).ok()?.modified().ok()?;
    modified
        .duration_since(SystemTime::now())
        .ok()
        .filter(|ahead| *ahead >= recent.max(Duration::from_secs(1)))
}

/// `/proc/<pid>/fdinfo/<fd>` has a `flags:` line in octal; the access mode
/// is its low two bits (1 write-only, 2 read-write).
fn opened_for_writing(fdinfo: &str) -> bool {
    fdinfo
        .lines()
        .find_map(|l| l.strip_prefix("flags:"))
        .and_then(|f| u32::from_str_radix(f.trim(), 8).ok())
        .is_some_and(|flags| matches!(flags & 0o3, 1 | 2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fdinfo_flags() {
        assert!(opened_for_writing(
            "pos:\t0\nflags:\t02102001\nmnt_id:\t1\n"
        ));
        assert!(opened_for_writing("flags:\t0100002\n"));
        assert!(!opened_for_writing("flags:\t0100000\n"));
        assert!(!opened_for_writing(""));
    }

    #[test]
    fn recent_modification_counts() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let w = Writers::default();
        assert!(matches!(
            w.check(f.path(), Duration::from_secs(60)),
            Some(InUse::RecentlyModified { .. })
        ));
        assert_eq!(w.check(f.path(), Duration::ZERO), None);
    }

    /// A clock that ran ahead must not hold a session forever.
    #[test]
    fn a_future_modification_time_is_not_evidence_of_a_writer() {
        let f = tempfile::NamedTempFile::new().unwrap();
        let ahead = SystemTime::now() + Duration::from_secs(3600);
        f.as_file().set_modified(ahead).unwrap();
        let w = Writers::default();
        assert_eq!(w.check(f.path(), Duration::from_secs(60)), None);
        let by = modified_in_future(f.path(), Duration::from_secs(60)).unwrap();
        assert!(by > Duration::from_secs(3500), "{by:?}");
        // A little ahead is still a writer's, perhaps on another clock.
        f.as_file()
            .set_modified(SystemTime::now() + Duration::from_millis(500))
            .unwrap();
        assert!(w.check(f.path(), Duration::from_secs(3)).is_some());
        assert_eq!(modified_in_future(f.path(), Duration::from_secs(3)), None);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn a_writer_in_another_process_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.jsonl");
        std::fs::write(&path, b"{}\n").unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3>>\"$0\"; echo ready; exec sleep 30")
            .arg(&path)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = [0u8; 6];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
        let found = Writers::scan().check(&path, Duration::ZERO);
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(found, Some(InUse::OpenForWriting { pid: child.id() }));
        assert_eq!(Writers::scan().check(&path, Duration::ZERO), None);
    }
}
