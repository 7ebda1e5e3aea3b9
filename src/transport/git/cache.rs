//! The cache: a private bare repository per URL and branch, its lock, and
//! making it again when it is broken.

use std::time::{Duration, Instant};

use super::GitTransport;
use super::run::Failed;
use crate::transport::TransportError;

/// How long a run waits for another ccsync to finish with the cache.
const LOCK_WAIT: Duration = Duration::from_secs(120);
const LOCK_FILE: &str = "ccsync.lock";

/// Whether a failed fetch failed in the cache (its objects, refs or
/// format), not on the way to the server or at the server: then the cache
/// is made again. Matched on git's words (`LC_ALL=C`).
pub(super) fn local_failure(f: &Failed) -> bool {
    if f.spawn.is_some() {
        return false;
    }
    let text = String::from_utf8_lossy(&f.stderr).to_ascii_lowercase();
    [
        "mismatched algorithms",
        "object-format",
        "object format",
        "not a git repository:",
        "corrupt",
        "loose object",
        "unable to write",
        "cannot lock ref 'refs/ccsync",
        "bad object",
        "index-pack failed",
        "unable to read",
        "is not a valid",
    ]
    .iter()
    .any(|w| text.contains(w))
}

impl GitTransport {
    /// Makes the cache (a private bare repository) if it is not there, and
    /// holds its lock until dropped: two ccsync runs never move its refs
    /// at once. Another run holding it is waited for, up to `LOCK_WAIT`.
    pub(super) fn lock(&self) -> Result<std::fs::File, TransportError> {
        if let Some(why) = &self.cache_error {
            return Err(self.error(why.clone()));
        }
        let dir = self.git.dir();
        crate::fsutil::create_private_dir_all(dir).map_err(|e| TransportError::Io {
            action: "create the git cache",
            path: dir.to_path_buf(),
            source: e,
        })?;
        let path = dir.join(LOCK_FILE);
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| TransportError::Io {
                action: "lock",
                path: path.clone(),
                source: e,
            })?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(std::fs::TryLockError::WouldBlock) if started.elapsed() < LOCK_WAIT => {
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(std::fs::TryLockError::WouldBlock) => {
                    return Err(self.error(format!(
                        "another ccsync has been using the git cache {} for {} s; let it finish and run this again",
                        dir.display(),
                        LOCK_WAIT.as_secs()
                    )));
                }
                Err(std::fs::TryLockError::Error(e)) => {
                    return Err(TransportError::Io {
                        action: "lock",
                        path,
                        source: e,
                    });
                }
            }
        }
        if !dir.join("HEAD").exists() {
            self.init_cache()?;
        }
        Ok(file)
    }

    /// `git init` of the cache: sha1 whatever `GIT_DEFAULT_HASH` says
    /// (what servers hold), and files only this user can read.
    fn init_cache(&self) -> Result<(), TransportError> {
        self.git(
            "making the git cache",
            &[
                "init",
                "--bare",
                "--quiet",
                "--object-format=sha1",
                "--shared=0600",
            ],
            None,
        )
        .map(drop)
    }

    /// Moves a broken cache aside (to `<cache>.broken`, replacing an
    /// older one) and makes it afresh, once a run: whether it did.
    pub(super) fn repair(&self) -> Result<bool, TransportError> {
        if self.repaired.replace(true) {
            return Ok(false);
        }
        let dir = self.git.dir();
        let mut aside = dir.as_os_str().to_owned();
        aside.push(".broken");
        let aside = std::path::PathBuf::from(aside);
        let io = |action, path: &std::path::Path| {
            let path = path.to_path_buf();
            move |source| TransportError::Io {
                action,
                path,
                source,
            }
        };
        if aside.exists() {
            std::fs::remove_dir_all(&aside).map_err(io("remove", &aside))?;
        }
        crate::fsutil::create_private_dir_all(&aside).map_err(io("create", &aside))?;
        // The lock file stays: it is held, and others wait on it.
        for entry in std::fs::read_dir(dir).map_err(io("read", dir))? {
            let entry = entry.map_err(io("read", dir))?;
            if entry.file_name() != LOCK_FILE {
                let to = aside.join(entry.file_name());
                std::fs::rename(entry.path(), &to).map_err(io("move", &entry.path()))?;
            }
        }
        self.init_cache()?;
        Ok(true)
    }
}
