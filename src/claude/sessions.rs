//! Which sessions are on this machine, and which working directory each
//! belongs to.

use std::io;
use std::path::PathBuf;
use std::time::SystemTime;

use std::collections::HashMap;

use super::{ClaudeHome, dirname, transcript};
use crate::index::{Index, SessionFacts, Stamp};
use crate::names::SessionId;

/// A transcript file whose name is a session id.
#[derive(Debug, Clone)]
pub struct SessionFile {
    pub id: SessionId,
    /// The folder under `projects/` it sits in.
    pub dir_name: String,
    pub path: PathBuf,
    pub size: u64,
    pub modified: SystemTime,
}

/// A session tied to the working directory it belongs to.
#[derive(Debug, Clone)]
pub struct LocalSession {
    pub file: SessionFile,
    pub cwd: String,
}

/// A file under `projects/` that is not a session ccsync can move.
#[derive(Debug, Clone)]
pub struct Skipped {
    pub path: PathBuf,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Inventory {
    pub sessions: Vec<LocalSession>,
    pub skipped: Vec<Skipped>,
}

impl ClaudeHome {
    /// Every `projects/<dir>/<session-id>.jsonl`. Anything else there is
    /// reported as skipped: unreadable or odd files are never fatal.
    pub fn session_files(&self) -> io::Result<(Vec<SessionFile>, Vec<Skipped>)> {
        let mut files = Vec::new();
        let mut skipped = Vec::new();
        let dirs = match std::fs::read_dir(self.projects_dir()) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok((files, skipped)),
            Err(e) => return Err(e),
        };
        for dir in dirs {
            let dir = dir?;
            let Some(dir_name) = dir.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if !dir.path().is_dir() {
                continue;
            }
            let entries = match std::fs::read_dir(dir.path()) {
                Ok(e) => e,
                Err(e) => {
                    skipped.push(Skipped {
                        path: dir.path(),
                        reason: format!("cannot read folder: {e}"),
                    });
                    continue;
                }
            };
            for entry in entries.flatten() {
                let path = entry.path();
                let name = entry.file_name();
                let Some(stem) = name.to_str().and_then(|n| n.strip_suffix(".jsonl")) else {
                    continue;
                };
                // What the client sets aside when it moves a session
                // (`<sid>.orphaned-<ms>-….jsonl`) is not a session.
                if stem.contains(".orphaned-") {
                    continue;
                }
                let Ok(meta) = entry.metadata() else { continue };
                if !meta.is_file() {
                    continue;
                }
                match SessionId::parse(stem) {
                    Ok(id) => files.push(SessionFile {
                        id,
                        dir_name: dir_name.clone(),
                        path,
                        size: meta.len(),
                        modified: meta.modified().unwrap_or(SystemTime::UNIX_EPOCH),
                    }),
                    Err(_) => skipped.push(Skipped {
                        path,
                        reason: "file name is not a session id".into(),
                    }),
                }
            }
        }
        files.sort_by(|a, b| (&a.dir_name, &a.id).cmp(&(&b.dir_name, &b.id)));
        Ok((files, skipped))
    }

    /// All sessions, each tied to its working directory where a line records
    /// one. `placed` says where ccsync itself installed sessions: a pulled
    /// session records only the other machine's directories until Claude Code
    /// writes a line here, so it is tied by that instead, when it fits.
    ///
    /// A transcript is only read when `index` has nothing for it at its
    /// current size and modification time.
    pub fn inventory(
        &self,
        placed: &HashMap<SessionId, String>,
        index: &mut Index,
    ) -> io::Result<Inventory> {
        Ok(self.inventory_of(self.session_files()?, placed, index))
    }

    /// [`inventory`](Self::inventory) of what [`session_files`](Self::session_files)
    /// found.
    pub fn inventory_of(
        &self,
        (files, mut skipped): (Vec<SessionFile>, Vec<Skipped>),
        placed: &HashMap<SessionId, String>,
        index: &mut Index,
    ) -> Inventory {
        let mut sessions = Vec::with_capacity(files.len());
        let seen: std::collections::HashSet<PathBuf> =
            files.iter().map(|f| f.path.clone()).collect();
        index.sessions.retain(|path, _| seen.contains(path));
        for file in files {
            let stamp = Stamp::new(file.size, Some(file.modified));
            let recorded = match index.session(&file.path, stamp) {
                Some(facts) => Ok(facts.cwd.clone()),
                None => self.tie(&file).inspect(|cwd| {
                    index.set_session(
                        file.path.clone(),
                        SessionFacts {
                            stamp,
                            cwd: cwd.clone(),
                        },
                    );
                }),
            };
            let tied = recorded.map(|found| {
                found.or_else(|| {
                    placed
                        .get(&file.id)
                        .filter(|cwd| dirname::matches(&file.dir_name, cwd))
                        .cloned()
                })
            });
            match tied {
                Ok(Some(cwd)) => sessions.push(LocalSession { file, cwd }),
                Ok(None) => skipped.push(Skipped {
                    path: file.path,
                    reason: "no complete line records a working directory matching its folder"
                        .into(),
                }),
                Err(e) => skipped.push(Skipped {
                    path: file.path,
                    reason: format!("cannot read: {e}"),
                }),
            }
        }
        Inventory { sessions, skipped }
    }

    fn tie(&self, file: &SessionFile) -> io::Result<Option<String>> {
        let any = self.dir_name_override() == Some(file.dir_name.as_str());
        transcript::owning_cwd(&file.path, &file.dir_name, any)
    }
}
