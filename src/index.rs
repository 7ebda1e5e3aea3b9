//! What ccsync already knows about files, so that a sync with nothing to do
//! reads no transcript and fetches nothing. Every fact is stored with the
//! size and modification time of the file it is about, and trusted only
//! while both still match.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

/// Size and modification time (ns since the epoch) of a file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Stamp {
    pub size: u64,
    pub mtime_ns: u64,
}

impl Stamp {
    pub fn new(size: u64, modified: Option<SystemTime>) -> Self {
        let mtime_ns = modified
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_nanos() as u64);
        Self { size, mtime_ns }
    }

    pub fn of_meta(meta: &std::fs::Metadata) -> Self {
        Self::new(meta.len(), meta.modified().ok())
    }

    /// The stamp of the file at `path`, or `None` if it is not there.
    pub fn of(path: &Path) -> Option<Self> {
        std::fs::metadata(path).ok().map(|m| Self::of_meta(&m))
    }
}

/// A local transcript and the directory it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SessionFacts {
    pub stamp: Stamp,
    pub cwd: Option<String>,
}

/// Where a copy in the sync dir stands: the whole bundle it starts from
/// (by its `exportedAt` and transcript SHA-256), the last segment after it
/// (0: none), and the transcript's length and chain hash there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainState {
    pub base_at: u64,
    pub base_sha256: String,
    pub seq: u32,
    pub len: u64,
    pub chain: String,
    /// Lines of the transcript there.
    #[serde(default)]
    pub lines: u64,
}

/// What this machine last pushed of a session, and where it went.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pushed {
    pub source: PathBuf,
    pub source_stamp: Stamp,
    /// Complete bytes pushed, and their SHA-256.
    pub len: u64,
    pub sha256: String,
    pub original_cwd: String,
    pub relative_cwd: String,
    /// Side files pushed with it: path in the bundle, and local stamp.
    #[serde(default)]
    pub parts: Vec<(String, Stamp)>,
    /// The object as the transport reported it after storing (the base).
    pub remote: Stamp,
    /// Where the copy's chain stands, and its segments as the transport
    /// reported them (by sequence number); `None` from builds before
    /// segments.
    #[serde(default)]
    pub chain: Option<ChainState>,
    #[serde(default)]
    pub segments: Vec<(u32, Stamp)>,
}

impl Pushed {
    /// The same, with where the copy's chain stands.
    pub fn with_chain(self, chain: Option<ChainState>, segments: Vec<(u32, Stamp)>) -> Self {
        Self {
            chain,
            segments,
            ..self
        }
    }
}

/// What a pull concluded about a copy, as the index keeps it (the same
/// names as the plan's verdicts, so older index files still read; the
/// index depends on nothing above it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Seen {
    Chosen,
    UpToDate,
    Contained,
    LocalAhead,
    Diverged,
}

/// What a pull last left for a session: the objects it read, the local
/// files it left, and what it concluded. While the objects and files are
/// unchanged, pulling again would conclude the same and write nothing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pulled {
    pub objects: Vec<(String, Stamp)>,
    pub files: Vec<(PathBuf, Option<Stamp>)>,
    pub cwd: PathBuf,
    pub transcript: PathBuf,
    pub bytes: u64,
    pub lines: u64,
    pub verdicts: Vec<(String, Seen)>,
    /// Forks kept beside it: machine, session id, transcript.
    pub forks: Vec<(String, String, PathBuf)>,
    /// Transcripts this pull left equal to another machine's copy, with
    /// the name of that copy's object.
    #[serde(default)]
    pub covers: Vec<(PathBuf, String)>,
    /// Where each copy read stood, by its base object's name.
    #[serde(default)]
    pub chains: Vec<(String, ChainState)>,
}

impl Pulled {
    /// Whether the local files are as the last pull left them.
    pub fn files_unchanged(&self) -> bool {
        self.files
            .iter()
            .all(|(path, stamp)| Stamp::of(path) == *stamp)
    }
}

/// What the setup was at the last sync, by path in the setup (see
/// `sync::setup`): the bases of its three-way merge. Hashes are of the
/// portable form (home paths in settings replaced).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SetupBase {
    /// This machine's files as the last pull left them.
    #[serde(default)]
    pub mine: BTreeMap<String, String>,
    /// Each other machine's files as the last pull read them.
    #[serde(default)]
    pub seen: BTreeMap<String, BTreeMap<String, String>>,
    /// The hash of the snapshot this machine last stored.
    #[serde(default)]
    pub pushed: Option<String>,
    /// The paths the last push carried: one gone from here since is a
    /// deletion to send.
    #[serde(default)]
    pub carried: BTreeSet<String>,
    /// Deletions this machine sends (tombstones), until the path is back.
    #[serde(default)]
    pub deleted: BTreeSet<String>,
    /// Conflicts this machine holds, by machine and path: the other
    /// machine's version it read and kept its own (`mine`) over.
    #[serde(default)]
    pub kept: BTreeMap<String, BTreeMap<String, Kept>>,
    /// The size of the snapshot object this machine last stored: another
    /// size there is an old copy put back (a sync service), stored again.
    #[serde(default)]
    pub stored_size: Option<u64>,
    /// The newest `createdAt` read of each other machine's snapshot: an
    /// older one is an old copy put back, and ignored.
    #[serde(default)]
    pub read_at: BTreeMap<String, u64>,
}

/// A conflict kept here: the other machine's version, and this one's.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Kept {
    pub theirs: String,
    pub mine: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Index {
    #[serde(default)]
    pub sessions: HashMap<PathBuf, SessionFacts>,
    #[serde(default)]
    pub pushed: HashMap<String, Pushed>,
    #[serde(default)]
    pub pulled: HashMap<String, Pulled>,
    /// Transcripts a pull advised pushing, as they were then: the same
    /// advice is not given twice in a row.
    #[serde(default)]
    pub advised: HashMap<PathBuf, Stamp>,
    #[serde(default)]
    pub setup: SetupBase,
    #[serde(skip)]
    dirty: bool,
}

impl Index {
    /// Reads the index; a missing or unreadable one is simply empty (it is
    /// a cache: everything in it can be found again).
    pub fn load(path: &Path) -> Self {
        std::fs::read(path)
            .ok()
            .and_then(|bytes| serde_json::from_slice(&bytes).ok())
            .unwrap_or_default()
    }

    /// Writes the index if anything changed.
    pub fn save(&self, path: &Path) -> std::io::Result<()> {
        if !self.dirty {
            return Ok(());
        }
        let bytes = serde_json::to_vec(self).map_err(std::io::Error::other)?;
        crate::fsutil::write_atomic_bytes(path, &bytes)
    }

    pub fn session(&self, path: &Path, stamp: Stamp) -> Option<&SessionFacts> {
        self.sessions.get(path).filter(|f| f.stamp == stamp)
    }

    pub fn set_session(&mut self, path: PathBuf, facts: SessionFacts) {
        if self.sessions.get(&path) != Some(&facts) {
            self.sessions.insert(path, facts);
            self.dirty = true;
        }
    }

    pub fn set_pushed(&mut self, object: String, pushed: Pushed) {
        if self.pushed.get(&object) != Some(&pushed) {
            self.pushed.insert(object, pushed);
            self.dirty = true;
        }
    }

    pub fn set_pulled(&mut self, session: String, pulled: Pulled) {
        if self.pulled.get(&session) != Some(&pulled) {
            self.pulled.insert(session, pulled);
            self.dirty = true;
        }
    }

    /// For each transcript a pull left equal to another machine's copy,
    /// the records of those pulls with the name of the copy's object.
    pub fn covered(&self) -> HashMap<&Path, Vec<(&Pulled, &str)>> {
        let mut out: HashMap<&Path, Vec<(&Pulled, &str)>> = HashMap::new();
        for p in self.pulled.values() {
            for (path, object) in &p.covers {
                out.entry(path.as_path()).or_default().push((p, object));
            }
        }
        out
    }

    /// Whether advice about `path` as it is now is news; remembers it.
    pub fn advise_once(&mut self, path: &Path) -> bool {
        let Some(stamp) = Stamp::of(path) else {
            return false;
        };
        if self.advised.get(path) == Some(&stamp) {
            return false;
        }
        self.advised.insert(path.to_path_buf(), stamp);
        self.dirty = true;
        true
    }

    pub fn set_setup(&mut self, setup: SetupBase) {
        if self.setup != setup {
            self.setup = setup;
            self.dirty = true;
        }
    }

    /// For callers that changed the maps directly.
    pub fn mark_changed(&mut self) {
        self.dirty = true;
    }

    pub fn forget_pushed(&mut self, object: &str) {
        self.dirty |= self.pushed.remove(object).is_some();
    }

    pub fn forget_pulled(&mut self, session: &str) {
        self.dirty |= self.pulled.remove(session).is_some();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn saved_only_when_changed_and_trusted_only_while_stamps_match() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("index.json");
        let mut index = Index::load(&path);
        index.save(&path).unwrap();
        assert!(!path.exists(), "nothing changed, nothing written");
        let stamp = Stamp {
            size: 10,
            mtime_ns: 5,
        };
        index.set_session(
            "/t".into(),
            SessionFacts {
                stamp,
                cwd: Some("/w".into()),
            },
        );
        index.save(&path).unwrap();
        let loaded = Index::load(&path);
        assert_eq!(
            loaded
                .session(Path::new("/t"), stamp)
                .unwrap()
                .cwd
                .as_deref(),
            Some("/w")
        );
        assert!(
            loaded
                .session(
                    Path::new("/t"),
                    Stamp {
                        size: 11,
                        mtime_ns: 5
                    }
                )
                .is_none()
        );
        std::fs::write(&path, "not json").unwrap();
        assert_eq!(Index::load(&path), Index::default());
    }
}
