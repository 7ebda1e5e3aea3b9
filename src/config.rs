//! ccsync's own files: `config.toml` (what the user chose) and `state.json`
//! (what ccsync learned), both in the ccsync config dir.

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

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
/// The file a live run holds locked inside its staging dir.
const STAGING_LOCK: &str = ".lock";

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
    /// What push does with a session that holds credentials.
    #[serde(default, skip_serializing_if = "SecretsPolicy::is_default")]
    pub secrets: SecretsPolicy,
    /// Git hosts besides the well-known forges whose owner and repository
    /// names ignore case (a self-hosted GitLab, say).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub case_insensitive_hosts: Vec<String>,
    /// Whether pull adds pulled sessions' prompts to the client's prompt
    /// recall (`history.jsonl`), under this machine's directories.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub recall: bool,
    /// The public keys (age or ssh) what this machine pushes is encrypted
    /// to; none for a sync dir that is not encrypted.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<String>,
    /// This machine's age identity file or unencrypted OpenSSH key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Project keys of other machines to pull as another key here: the same
    /// repository under another remote (a mirror, a fork, a moved repo).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub aliases: BTreeMap<String, String>,
    /// Whether push and pull carry the setup too: settings, CLAUDE.md,
    /// agents, commands, skills, output styles, keybindings, plugin
    /// configuration and project memory.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub setup: bool,
    /// Paths in the setup never to carry, as globs relative to the Claude
    /// Code config dir (`agents/private-*`, `skills/**/secret*`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub setup_exclude: Vec<String>,
}

/// `secrets` in config.toml.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecretsPolicy {
    /// Scan, warn, send anyway.
    #[default]
    Warn,
    /// Scan, and keep a session that holds credentials here unless
    /// `push --allow-secrets`.
    Refuse,
    /// Do not scan.
    Off,
}

impl SecretsPolicy {
    fn is_default(&self) -> bool {
        *self == Self::default()
    }
}

impl Config {
    /// How this machine stores objects in the sync dir: compressed, and
    /// encrypted when it has recipients.
    pub fn layers(&self) -> Result<crate::bundle::layers::Layers, crate::bundle::layers::KeyError> {
        use crate::bundle::layers::Layers;
        if self.recipients.is_empty() {
            return Ok(Layers::compressed());
        }
        Layers::encrypted(&self.recipients, self.identity.as_deref().map(Path::new))
    }

    pub fn machine_name(&self) -> Result<MachineName, NameError> {
        MachineName::parse(&self.machine)
    }

    pub fn folding(&self) -> crate::project::CaseFolding {
        crate::project::CaseFolding::with_hosts(&self.case_insensitive_hosts)
    }

    /// How other machines' project keys map onto this machine's.
    pub fn key_map(&self) -> Result<crate::project::KeyMap, ConfigError> {
        let folding = self.folding();
        let mut aliases = std::collections::HashMap::new();
        for (from, to) in &self.aliases {
            let parse = |k: &str| {
                ProjectKey::parse(k).map_err(|e| ConfigError::Invalid {
                    path: PathBuf::from("config.toml"),
                    message: format!("in [aliases]: {e}"),
                })
            };
            aliases.insert(folding.fold(&parse(from)?), folding.fold(&parse(to)?));
        }
        Ok(crate::project::KeyMap { folding, aliases })
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

    /// Remembers a project's checkout, and when it was used (to the day:
    /// a run that changes nothing else then writes no state).
    pub fn remember(&mut self, key: &ProjectKey, root: &Path, now_ms: u64) {
        const DAY_MS: u64 = 24 * 60 * 60 * 1000;
        if self.projects.get(key.as_str()).is_some_and(|p| {
            p.root == root && now_ms >= p.last_used_ms && now_ms - p.last_used_ms < DAY_MS
        }) {
            return;
        }
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

    /// Where appends to transcripts record their intent.
    pub fn journal(&self) -> crate::sync::append::Journal {
        crate::sync::append::Journal::new(self.root.join("journal"))
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

    /// Whether any staging dir is here, live or left by a killed run.
    pub fn has_staging(&self) -> bool {
        std::fs::read_dir(&self.root).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(STAGING_PREFIX))
        })
    }

    /// Removes staging dirs that killed runs left behind, at once. The
    /// caller holds the config dir's lock, and every run that makes staging
    /// holds it too while it lives: so no live run owns any staging here,
    /// and each dir's own lock (a crash releases it) only confirms it.
    pub fn remove_stale_staging(&self) -> usize {
        let Ok(entries) = std::fs::read_dir(&self.root) else {
            return 0;
        };
        let mut removed = 0;
        for entry in entries.flatten() {
            let name = entry.file_name();
            if !name.to_string_lossy().starts_with(STAGING_PREFIX)
                || !entry.file_type().is_ok_and(|t| t.is_dir())
            {
                continue;
            }
            let dir = entry.path();
            let abandoned = match std::fs::File::open(dir.join(STAGING_LOCK)) {
                Ok(lock) => lock.try_lock().is_ok(),
                // Killed before it made its lock.
                Err(e) => e.kind() == io::ErrorKind::NotFound,
            };
            if abandoned && std::fs::remove_dir_all(&dir).is_ok() {
                removed += 1;
            }
        }
        removed
    }

    /// A private scratch directory (0700, whatever the umask) for bundles
    /// on their way in or out, removed when dropped. It holds a lock while
    /// it lives, so another run can tell a killed run's staging from a live
    /// one's. Made when first used ([`Staging::path`]): a run with nothing
    /// to stage (a push or pull with nothing to move) makes no folder.
    pub fn staging(&self) -> Result<Staging, ConfigError> {
        Ok(Staging {
            root: self.root.clone(),
            made: OnceLock::new(),
        })
    }

    fn make_staging(&self) -> Result<(tempfile::TempDir, std::fs::File), ConfigError> {
        let write_err = |source| ConfigError::Write {
            path: self.root.clone(),
            source,
        };
        fsutil::create_private_dir_all(&self.root).map_err(write_err)?;
        let mut builder = tempfile::Builder::new();
        builder.prefix(STAGING_PREFIX);
        #[cfg(unix)]
        builder.permissions(std::os::unix::fs::PermissionsExt::from_mode(0o700));
        let dir = builder.tempdir_in(&self.root).map_err(write_err)?;
        let lock_path = dir.path().join(STAGING_LOCK);
        let mut options = std::fs::OpenOptions::new();
        options.create_new(true).write(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        let lock = options.open(&lock_path).map_err(write_err)?;
        lock.try_lock().map_err(|e| {
            write_err(match e {
                std::fs::TryLockError::Error(e) => e,
                std::fs::TryLockError::WouldBlock => io::Error::other("staging lock is held"),
            })
        })?;
        Ok((dir, lock))
    }
}

/// See [`ConfigDir::staging`].
#[derive(Debug)]
pub struct Staging {
    /// The config dir it is made in.
    root: PathBuf,
    made: OnceLock<(tempfile::TempDir, std::fs::File)>,
}

impl Staging {
    /// The folder, made now if it is not yet.
    pub fn path(&self) -> Result<&Path, ConfigError> {
        if let Some((dir, _)) = self.made.get() {
            return Ok(dir.path());
        }
        let made = ConfigDir::new(self.root.clone()).make_staging()?;
        // Made twice at once, the second is dropped (and removed).
        Ok(self.made.get_or_init(|| made).0.path())
    }

    /// Where it is made: for messages about it.
    pub fn parent(&self) -> &Path {
        &self.root
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn staging_is_private_and_removed_once_its_run_is_gone() {
        let tmp = tempfile::tempdir().unwrap();
        let dir = ConfigDir::new(tmp.path().join("cfg"));
        let live = dir.staging().unwrap();
        assert!(!dir.has_staging(), "made when first used");
        let path = live.path().unwrap().to_path_buf();
        assert_eq!(live.path().unwrap(), path, "made once");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o700);
        }
        // A killed run's staging: its lock file is there, nobody holds it.
        let dead = dir.root().join(format!("{STAGING_PREFIX}dead"));
        std::fs::create_dir_all(&dead).unwrap();
        std::fs::write(dead.join(STAGING_LOCK), b"").unwrap();
        std::fs::write(dead.join("0.jsonl.tmp"), b"big").unwrap();
        // One killed before it made its lock.
        let early = dir.root().join(format!("{STAGING_PREFIX}early"));
        std::fs::create_dir_all(&early).unwrap();
        assert_eq!(dir.remove_stale_staging(), 2);
        assert!(!dead.exists());
        assert!(!early.exists());
        assert!(path.exists(), "a live run's staging stays");
        drop(live);
        assert!(!path.exists(), "and goes with its run");
    }

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
            secrets: SecretsPolicy::Refuse,
            case_insensitive_hosts: vec!["git.example.org".into()],
            recall: true,
            recipients: vec!["age1x".into()],
            identity: Some("/k".into()),
            aliases: [("git:old/x".to_owned(), "git:new/x".to_owned())].into(),
            setup: true,
            setup_exclude: vec!["agents/private-*".into()],
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
