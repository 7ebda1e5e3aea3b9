//! Which sessions here may hold an incoming branch, and comparing them
//! with the copies with `sessionId` masked: the facts the plan's
//! [`place`](crate::sync::plan::place) decides from.

use std::collections::{HashMap, HashSet};
use std::io;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};

use super::install::{Installer, write_with_id};
use crate::claude::transcript;
use crate::names::{MachineName, SessionId};
use crate::sync::plan::Who;
use crate::sync::{Received, SessionError};

/// Where each session id is on this machine.
pub type LocalIndex = HashMap<SessionId, Vec<PathBuf>>;

pub fn local_index(claude: &crate::claude::ClaudeHome) -> io::Result<LocalIndex> {
    let mut index = LocalIndex::new();
    for f in claude.session_files()?.0 {
        index.entry(f.id).or_default().push(f.path);
    }
    Ok(index)
}

/// The id of the `generation`-th fork of `id` holding `machine`'s branch.
/// Derived, not random: two machines forking the same branch of the same
/// session choose the same id.
pub fn fork_id(id: &SessionId, machine: &MachineName, generation: u32) -> SessionId {
    let digest = Sha256::digest(format!("ccsync fork\0{id}\0{machine}\0{generation}"));
    let bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes");
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    SessionId::parse(&uuid.hyphenated().to_string()).expect("a v4 UUID is a session id")
}

/// How many fork ids of one session one pull tries before giving up.
const MAX_FORKS: u32 = 4096;

/// A session here that may hold the same conversation as incoming copies.
#[derive(Debug, Clone)]
pub(super) struct Kin {
    pub id: SessionId,
    pub path: PathBuf,
    pub len: u64,
}

/// A local session and its first-line key.
#[derive(Debug, Clone)]
pub(super) struct Keyed {
    id: SessionId,
    path: PathBuf,
    key: Option<[u8; 32]>,
}

impl Installer<'_> {
    /// Whether a session of this id is here (in any project folder).
    pub fn has(&self, id: &SessionId) -> bool {
        self.local.borrow().contains_key(id)
    }

    /// Where session `id` is here, other than `dest`.
    pub(super) fn elsewhere(&self, id: &SessionId, dest: &Path) -> Vec<PathBuf> {
        let local = self.local.borrow();
        let paths = local.get(id).map(Vec::as_slice).unwrap_or_default();
        paths.iter().filter(|p| **p != dest).cloned().collect()
    }

    /// Moves session `id`'s transcript from `old` to `new` in another
    /// project folder, its own folder `<id>/` first (a run killed between
    /// the two leaves the transcript, which identifies the session, where
    /// it was, and the next pull moves it). Never over anything.
    pub(super) fn relocate(
        &self,
        id: &SessionId,
        old: &Path,
        new: &Path,
    ) -> Result<(), SessionError> {
        let write_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| SessionError::Write { path, source }
        };
        let (Some(old_dir), Some(new_dir)) = (old.parent(), new.parent()) else {
            return Ok(());
        };
        crate::fsutil::create_private_dir_all(new_dir).map_err(write_err(new_dir))?;
        let (old_folder, new_folder) = (old_dir.join(id.as_str()), new_dir.join(id.as_str()));
        if new.exists() {
            return Err(SessionError::Elsewhere {
                id: id.clone(),
                existing: old.to_path_buf(),
                wanted: new.to_path_buf(),
            });
        }
        if old_folder.is_dir() {
            if new_folder.exists() {
                return Err(SessionError::Write {
                    path: new_folder,
                    source: io::Error::other(format!(
                        "session {id} moves here from {}, but this folder of it exists in both places; move one away",
                        old_dir.display()
                    )),
                });
            }
            std::fs::rename(&old_folder, &new_folder).map_err(write_err(&new_folder))?;
        }
        std::fs::rename(old, new).map_err(write_err(new))?;
        crate::fsutil::sync_dir(new_dir);
        crate::fsutil::sync_dir(old_dir);
        if let Some(paths) = self.local.borrow_mut().get_mut(id) {
            for p in paths.iter_mut().filter(|p| *p == old) {
                *p = new.to_path_buf();
            }
        }
        // It is kin in its new folder now, no longer in the old one.
        let mut keyed = self.keyed.borrow_mut();
        if let Some(list) = keyed.get_mut(old_dir) {
            list.retain(|k| k.path != old);
        }
        if let Some(list) = keyed.get_mut(new_dir) {
            list.push(Keyed {
                id: id.clone(),
                path: new.to_path_buf(),
                key: transcript::first_line_key(new, id.as_str()).ok().flatten(),
            });
        }
        Ok(())
    }

    /// Records a session written here by this pull.
    pub(super) fn note_new(&self, id: &SessionId, path: &Path, dir: &Path) {
        self.local
            .borrow_mut()
            .entry(id.clone())
            .or_default()
            .push(path.to_path_buf());
        if let Some(keyed) = self.keyed.borrow_mut().get_mut(dir) {
            keyed.push(Keyed {
                id: id.clone(),
                path: path.to_path_buf(),
                key: transcript::first_line_key(path, id.as_str()).ok().flatten(),
            });
        }
    }

    /// A fork id of `id` for `machine`'s branch that no session here has.
    pub(super) fn free_fork_id(
        &self,
        id: &SessionId,
        machine: &MachineName,
    ) -> Result<SessionId, SessionError> {
        (0..MAX_FORKS)
            .map(|g| fork_id(id, machine, g))
            .find(|f| !self.has(f))
            .ok_or_else(|| SessionError::Write {
                path: self.claude.projects_dir(),
                source: io::Error::other(format!(
                    "session {id} has {MAX_FORKS} forks of {machine}'s branch here; `ccsync forget` some in the sync dir"
                )),
            })
    }

    /// The sessions in `dir`, other than `id`, whose first line (masked) is
    /// that of one of `copies`: the only ones that can hold their branch.
    /// Longest first, then by id.
    pub(super) fn kin_of(&self, dir: &Path, id: &SessionId, copies: &[Received]) -> Vec<Kin> {
        let keys: HashSet<[u8; 32]> = copies
            .iter()
            .filter_map(|c| {
                transcript::first_line_key(&c.transcript, c.meta.session_id.as_str())
                    .ok()
                    .flatten()
            })
            .collect();
        if keys.is_empty() {
            return Vec::new();
        }
        let mut keyed = self.keyed.borrow_mut();
        let all = keyed.entry(dir.to_path_buf()).or_insert_with(|| {
            let local = self.local.borrow();
            local
                .iter()
                .flat_map(|(id, paths)| paths.iter().map(move |p| (id, p)))
                .filter(|(_, p)| p.parent() == Some(dir))
                .map(|(id, p)| Keyed {
                    id: id.clone(),
                    path: p.clone(),
                    key: transcript::first_line_key(p, id.as_str()).ok().flatten(),
                })
                .collect()
        });
        let mut ranked: Vec<((SessionId, PathBuf), u64)> = all
            .iter()
            .filter(|k| k.id != *id && k.key.is_some_and(|key| keys.contains(&key)))
            .filter_map(|k| {
                let len = std::fs::metadata(&k.path).ok()?.len();
                Some(((k.id.clone(), k.path.clone()), len))
            })
            .collect();
        crate::sync::plan::rank_others(&mut ranked);
        ranked
            .into_iter()
            .map(|((id, path), len)| Kin { id, path, len })
            .collect()
    }
}

/// Compares transcripts on disk for the plan, each pair once, with the
/// `sessionId` values masked: a copy compared with another session here is
/// first written under that session's id (and kept, to be installed).
pub(super) struct Oracle<'a> {
    pub id: &'a SessionId,
    pub own: Option<(&'a Path, u64)>,
    pub others: &'a [Kin],
    pub copies: &'a [Received],
    rewritten: HashMap<(usize, SessionId), PathBuf>,
    seen: HashMap<(Who, Who), bool>,
    pub failure: Option<SessionError>,
}

impl<'a> Oracle<'a> {
    pub fn new(
        id: &'a SessionId,
        own: Option<(&'a Path, u64)>,
        others: &'a [Kin],
        copies: &'a [Received],
    ) -> Self {
        Self {
            id,
            own,
            others,
            copies,
            rewritten: HashMap::new(),
            seen: HashMap::new(),
            failure: None,
        }
    }

    /// Copy `i`'s transcript with its lines under session `to`.
    pub fn as_session(&mut self, i: usize, to: &SessionId) -> Result<PathBuf, SessionError> {
        let copy = &self.copies[i];
        if copy.meta.session_id == *to {
            return Ok(copy.transcript.clone());
        }
        if let Some(p) = self.rewritten.get(&(i, to.clone())) {
            return Ok(p.clone());
        }
        let dest = copy.transcript.with_extension(format!("as-{to}"));
        write_with_id(&copy.transcript, &dest, &copy.meta.session_id, to)?;
        self.rewritten.insert((i, to.clone()), dest.clone());
        Ok(dest)
    }

    /// The file and length of `w`, its lines under session `space`.
    fn file(&mut self, w: Who, space: &SessionId) -> Result<(PathBuf, u64), SessionError> {
        Ok(match w {
            Who::Own => {
                let (p, l) = self
                    .own
                    .expect("the plan compares only a session that is here");
                (p.to_path_buf(), l)
            }
            Who::Other(j) => (self.others[j].path.clone(), self.others[j].len),
            Who::Copy(i) => (self.as_session(i, space)?, self.copies[i].body.len),
        })
    }

    pub fn starts_with(&mut self, a: Who, b: Who) -> bool {
        if let Some(&known) = self.seen.get(&(a, b)) {
            return known;
        }
        let space = match (a, b) {
            (Who::Other(j), _) | (_, Who::Other(j)) => self.others[j].id.clone(),
            _ => self.id.clone(),
        };
        let mut compare = || -> Result<bool, SessionError> {
            let (pa, la) = self.file(a, &space)?;
            let (pb, lb) = self.file(b, &space)?;
            Ok(la >= lb
                && transcript::same_prefix(&pa, &pb, lb)
                    .map_err(|source| SessionError::Read { path: pa, source })?)
        };
        let answer = compare().unwrap_or_else(|e| {
            self.failure.get_or_insert(e);
            false
        });
        self.seen.insert((a, b), answer);
        answer
    }
}
