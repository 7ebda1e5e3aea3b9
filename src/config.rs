//! ccsync's own files: `config.toml` (what the user chose) and `state.json`
//! (what ccsync learned), both in the ccsync config dir.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::fsutil;
use crate::names::{MachineName, NameError};
use crate::project::ProjectKey;

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("ccsync is not set up on this machine (no {0}); run `ccsync init <sync-dir>` first")]
    NotInitialised(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: io::Error },
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: io::Error },
    #[error(
        "another ccsync is running for this config dir (it holds {0}); wait for it to finish and run this again"
    )]
    Busy(PathBuf),
    #[error("{path} is not valid: {message}; fix it or run `ccsync init` again")]
    Invalid { path: PathBuf, message: String },
}

const STAGING_PREFIX: &str = ".ccsync-staging-";

/// Held while a command that writes runs.
#[derive(Debug)]
pub struct Lock {
    _file: std::fs::File,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where bundles go: a directory.
    pub location: String,
    /// This machine's name in the sync dir.
    pub machine: String,
    /// Distinguishes this machine from another that took the same name.
    pub machine_id: String,
}

impl Config {
    pub fn machine_name(&self) -> Result<MachineName, NameError> {
        MachineName::parse(&self.machine)
    }
}

/// A checkout of a project on this machine.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KnownProject {
    pub root: PathBuf,
    pub last_used_ms: u64,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct State {
    #[serde(default)]
    pub projects: BTreeMap<String, KnownProject>,
    /// Where ccsync installed each session (id to working directory).
    #[serde(default)]
    pub placed: BTreeMap<String, String>,
}

impl State {
    pub fn placed_sessions(&self) -> std::collections::HashMap<crate::names::SessionId, String> {
        self.placed
            .iter()
            .filter_map(|(id, cwd)| Some((crate::names::SessionId::parse(id).ok()?, cwd.clone())))
            .collect()
    }

    pub fn record_placement(&mut self, id: &crate::names::SessionId, cwd: &Path) {
        if let Some(cwd) = cwd.to_str() {
            self.placed.insert(id.to_string(), cwd.to_owned());
        }
    }

    pub fn remember(&mut self, key: &ProjectKey, root: &Path, now_ms: u64) {
        self.projects.insert(
            key.as_str().to_owned(),
            KnownProject {
                root: root.to_path_buf(),
                last_used_ms: now_ms,
            },
        );
    }
}

/// The ccsync config dir (`$CCSYNC_CONFIG_DIR`, else the platform's).
#[derive(Debug, Clone)]
pub struct ConfigDir {
    root: PathBuf,
}

impl ConfigDir {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn config_file(&self) -> PathBuf {
        self.root.join("config.toml")
    }

    pub fn state_file(&self) -> PathBuf {
        self.root.join("state.json")
    }

    pub fn load_config(&self) -> Result<Option<Config>, ConfigError> {
        let path = self.config_file();
        let text = match std::fs::read_to_string(&path) {
            Ok(t) => t,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(source) => return Err(ConfigError::Read { path, source }),
        };
        let config: Config = toml::from_str(&text).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.message().to_owned(),
        })?;
        config.machine_name().map_err(|e| ConfigError::Invalid {
            path,
            message: e.to_string(),
        })?;
        Ok(Some(config))
    }

    pub fn require_config(&self) -> Result<Config, ConfigError> {
        self.load_config()?
            .ok_or_else(|| ConfigError::NotInitialised(self.config_file()))
    }

    pub fn save_config(&self, config: &Config) -> Result<(), ConfigError> {
        let path = self.config_file();
        let text = toml::to_string(config).map_err(|e| ConfigError::Invalid {
            path: path.clone(),
            message: e.to_string(),
        })?;
        fsutil::write_atomic_bytes(&path, text.as_bytes())
            .map_err(|source| ConfigError::Write { path, source })
    }

    pub fn load_state(&self) -> Result<State, ConfigError> {
        let path = self.state_file();
        match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| ConfigError::Invalid {
                path,
                message: e.to_string(),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(State::default()),
            Err(source) => Err(ConfigError::Read { path, source }),
        }
    }

    pub fn save_state(&self, state: &State) -> Result<(), ConfigError> {
        let path = self.state_file();
        let bytes = serde_json::to_vec_pretty(state).expect("state serialises");
        fsutil::write_atomic_bytes(&path, &bytes)
            .map_err(|source| ConfigError::Write { path, source })
    }

    /// Takes the lock that keeps two ccsync processes of this user from
    /// interleaving; it is released when the returned value is dropped, or
    /// when the process dies, however it dies.
    pub fn lock(&self) -> Result<Lock, ConfigError> {
        let path = self.root.join("ccsync.lock");
        let write_err = |source| ConfigError::Write {
            path: path.clone(),
            source,
        };
        fsutil::create_private_dir_all(&self.root).map_err(write_err)?;
        let mut options = std::fs::OpenOptions::new();
        options.create(true).truncate(false).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let file = options.open(&path).map_err(write_err)?;
        match file.try_lock() {
            Ok(()) => Ok(Lock { _file: file }),
            Err(std::fs::TryLockError::WouldBlock) => Err(ConfigError::Busy(path)),
            Err(std::fs::TryLockError::Error(source)) => Err(ConfigError::Write { path, source }),
        }
    }

    /// Removes staging dirs that a killed run left behind. Only old ones:
    /// a command that does not take the lock (doctor) may be using a new one.
    pub fn remove_stale_staging(&self) {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return;
        };
        let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
        for entry in entries.flatten() {
            let stale = entry
                .file_name()
                .to_string_lossy()
                .starts_with(STAGING_PREFIX)
                && entry
                    .metadata()
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < hour_ago);
            if stale {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
    }

    /// A private scratch directory for bundles on their way in or out,
    /// removed when dropped.
    pub fn staging(&self) -> Result<tempfile::TempDir, ConfigError> {
        let write_err = |source| ConfigError::Write {
            path: self.root.clone(),
            source,
        };
        fsutil::create_private_dir_all(&self.root).map_err(write_err)?;
        tempfile::Builder::new()
            .prefix(STAGING_PREFIX)
            .tempdir_in(&self.root)
            .map_err(write_err)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_round_trip_and_errors() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConfigDir::new(tmp.path().join("cfg"));
        assert!(dir.load_config().unwrap().is_none());
        assert!(matches!(
            dir.require_config(),
            Err(ConfigError::NotInitialised(_))
        ));
        let c = Config {
            location: "/sync".into(),
            machine: "laptop".into(),
            machine_id: "id".into(),
        };
        dir.save_config(&c).unwrap();
        assert_eq!(dir.load_config().unwrap(), Some(c));
        std::fs::write(dir.config_file(), "location = 1").unwrap();
        let err = dir.load_config().unwrap_err().to_string();
        assert!(err.contains("config.toml") && err.contains("init"), "{err}");
        std::fs::write(
            dir.config_file(),
            "location='x'\nmachine='a/b'\nmachine_id='i'",
        )
        .unwrap();
        assert!(
            dir.load_config()
                .unwrap_err()
                .to_string()
                .contains("machine name")
        );
    }
}
