//! Writing one session's copies where the plan places them: the session
//! of their id, another session here holding their branch, or a fork.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use super::kin::{Keyed, LocalIndex, Oracle, local_index};
use super::{Fork, Outcome, PartsOutcome};
use crate::claude::ClaudeHome;
use crate::claude::live::{InUse, Writers};
use crate::claude::transcript;
use crate::fsutil;
use crate::names::SessionId;
use crate::sync::append::Journal;
use crate::sync::plan::{self, Action, Home, Placement, Verdict};
use crate::sync::{Received, SessionError};

/// Installs sessions into the local Claude Code config dir.
pub struct Installer<'a> {
    pub claude: &'a ClaudeHome,
    pub(super) local: RefCell<LocalIndex>,
    pub writers: Writers,
    /// Replace transcripts even when they look in use.
    pub force: bool,
    /// A transcript modified more recently than this counts as in use.
    pub recent: Duration,
    /// Where appends record their intent, so a killed one is undone.
    pub journal: Option<Journal>,
    skewed: RefCell<Vec<(PathBuf, Duration)>>,
    /// Per project folder, its sessions' first-line keys (read once).
    pub(super) keyed: RefCell<HashMap<PathBuf, Vec<Keyed>>>,
    /// The oldest modification time a written file may get: the client
    /// deletes transcripts older than its cleanup period.
    oldest: SystemTime,
    /// Files whose source time was older than that, and got `oldest`.
    clamped: RefCell<Vec<PathBuf>>,
    /// A session a client is starting (the SessionStart hook's): never
    /// written, whichever copy would go to it.
    pub hold: Option<SessionId>,
    /// Decide and report, write nothing (`pull --dry-run`).
    pub dry_run: bool,
    /// Folders files were moved into, to be made durable once at the end
    /// ([`Installer::sync_written`]).
    written_dirs: RefCell<std::collections::BTreeSet<PathBuf>>,
}

/// What became of one home's transcript and side files.
struct Settled {
    id: SessionId,
    transcript: PathBuf,
    action: Action,
    held: Option<InUse>,
    parts: PartsOutcome,
    /// The copy written, if one was.
    written: Option<usize>,
    /// The copy the transcript now equals, if any.
    cover: Option<usize>,
}

impl<'a> Installer<'a> {
    pub fn new(claude: &'a ClaudeHome, force: bool, recent: Duration) -> io::Result<Self> {
        Ok(Self {
            claude,
            local: RefCell::new(local_index(claude)?),
            writers: if force {
                Writers::default()
            } else {
                Writers::scan()
            },
            force,
            recent,
            journal: None,
            skewed: Default::default(),
            keyed: Default::default(),
            // A day's margin: a file at the limit would go at the next start.
            oldest: SystemTime::now()
                .checked_sub(claude.cleanup_period())
                .and_then(|t| t.checked_add(Duration::from_secs(24 * 60 * 60)))
                .unwrap_or(UNIX_EPOCH)
                .min(SystemTime::now()),
            clamped: Default::default(),
            hold: None,
            dry_run: false,
            written_dirs: Default::default(),
        })
    }

    /// Records each append's intent in `journal` first.
    pub fn with_journal(self, journal: Journal) -> Self {
        Self {
            journal: Some(journal),
            ..self
        }
    }

    pub(super) fn in_use(&self, path: &Path) -> Option<InUse> {
        if self.force {
            return None;
        }
        let id = path.file_stem().and_then(|s| s.to_str());
        if id.is_some_and(|id| self.hold.as_ref().is_some_and(|h| h.as_str() == id)) {
            return Some(InUse::Starting);
        }
        // The client's registry is read again before each write: a client
        // may have started since the pull began (a long one, over ssh).
        if let Some(pid) = id
            .and_then(|id| crate::claude::registry::Registry::scan(self.claude.root()).running(id))
        {
            return Some(InUse::Registered { pid });
        }
        let found = self.writers.check(path, self.recent);
        if found.is_none()
            && let Some(ahead) = crate::claude::live::modified_in_future(path, self.recent)
        {
            let mut skewed = self.skewed.borrow_mut();
            if !skewed.iter().any(|(p, _)| p == path) {
                skewed.push((path.to_path_buf(), ahead));
            }
        }
        found
    }

    /// Gives a file written from a copy the source's modification time
    /// (`ms`, Unix milliseconds), so it sorts here as it did there and the
    /// next push sees it unchanged; never a time in the future, nor one
    /// the client's cleanup would delete it for (that is recorded).
    pub(super) fn keep_time(&self, path: &Path, ms: Option<u64>) -> Result<(), SessionError> {
        let Some(ms) = ms.filter(|_| !self.dry_run) else {
            return Ok(());
        };
        let mut t = (UNIX_EPOCH + Duration::from_millis(ms)).min(SystemTime::now());
        if t < self.oldest {
            t = self.oldest;
            self.clamped.borrow_mut().push(path.to_path_buf());
        }
        fsutil::set_modified(path, t).map_err(|source| SessionError::Write {
            path: path.to_path_buf(),
            source,
        })
    }

    /// Notes that a file was moved into `path`'s folder.
    pub(super) fn written(&self, path: &Path) {
        if let Some(dir) = path.parent() {
            self.written_dirs.borrow_mut().insert(dir.to_path_buf());
        }
    }

    /// Makes the names of every file moved into place durable: once, for
    /// all of them (`sync::sync_dirs`). Call before saying it is done.
    pub fn sync_written(&self) {
        let dirs = self.written_dirs.take();
        crate::sync::sync_dirs(dirs.iter().map(PathBuf::as_path));
    }

    /// Files whose source time the client's cleanup would have deleted
    /// them for, so they got a later one, and the limit.
    pub fn take_clamped(&self) -> (Vec<PathBuf>, SystemTime) {
        (self.clamped.take(), self.oldest)
    }

    /// Transcripts whose modification time was in the future when looked
    /// at, and by how much: not taken as being written, but worth saying.
    pub fn take_skewed(&self) -> Vec<(PathBuf, Duration)> {
        self.skewed.take()
    }

    /// Writes `staged` to `dest` as the plan said, unless Claude Code is
    /// writing `dest`: a new transcript is moved into place, one that is
    /// `local_len` bytes of a prefix is extended by appending the rest, so
    /// that a file Claude Code writes is only ever appended to. Returns what
    /// was done: the plan's action, or `Keep` and why when it is in use.
    fn apply(
        &self,
        action: Action,
        dest: &Path,
        staged: &Path,
        local_len: Option<u64>,
    ) -> Result<(Action, Option<InUse>), SessionError> {
        let write_err = |source| SessionError::Write {
            path: dest.to_path_buf(),
            source,
        };
        match (action, local_len) {
            (Action::Keep, _) => {}
            (Action::FastForward { .. }, Some(len)) => {
                if let Some(held) = self.in_use(dest) {
                    return Ok((Action::Keep, Some(held)));
                }
                if self.dry_run {
                    return Ok((action, None));
                }
                crate::sync::append::append_rest(self.journal.as_ref(), staged, dest, len)
                    .map_err(write_err)?;
            }
            _ if self.dry_run => {}
            _ => {
                crate::sync::place_unsynced(staged, dest).map_err(write_err)?;
                self.written(dest);
            }
        }
        Ok((action, None))
    }

    /// Installs one session from the copies of it that arrived, under
    /// `root`. Copies must be of one session, longest first. Where each
    /// goes is the plan's ([`plan::place`]): into the session of their id,
    /// into another session here that holds their branch (their lines are
    /// then written with that session's id), or into a new fork.
    pub fn install(&self, copies: &[Received], root: &Path) -> Result<Outcome, SessionError> {
        let first = &copies[0].meta;
        let id = &first.session_id;
        let cwd = match &first.relative_cwd {
            Some(rel) => rel.under(root),
            None => root.to_path_buf(),
        };
        let cwd_str = cwd
            .to_str()
            .ok_or_else(|| SessionError::NotUtf8Path(cwd.clone()))?;
        let dir = self
            .claude
            .project_dir_for(cwd_str)
            .map_err(|source| SessionError::Read {
                path: self.claude.projects_dir(),
                source,
            })?;
        let dest = ClaudeHome::transcript_path(&dir, id);
        // The session may be here in another project's folder: the other
        // machine moved it (`/cd`), and it follows if it holds nothing the
        // copies lack. Two copies here already is the user's to sort out.
        let elsewhere = self.elsewhere(id, &dest);
        let moved_from = match elsewhere.as_slice() {
            [] => None,
            [old] if file_len(&dest)?.is_none() => Some(old.clone()),
            [existing, ..] => {
                return Err(SessionError::Elsewhere {
                    id: id.clone(),
                    existing: existing.clone(),
                    wanted: dest,
                });
            }
        };
        let own_path = moved_from.clone().unwrap_or_else(|| dest.clone());
        let own_len = file_len(&own_path)?;
        let others = self.kin_of(&dir, id, copies);
        let lens: Vec<u64> = copies.iter().map(|c| c.body.len).collect();
        let other_lens: Vec<u64> = others.iter().map(|k| k.len).collect();
        let mut oracle = Oracle::new(
            id,
            own_len.map(|l| (own_path.as_path(), l)),
            &others,
            copies,
        );
        let placements = plan::place(own_len, &other_lens, &lens, |a, b| oracle.starts_with(a, b));
        if let Some(e) = oracle.failure.take() {
            return Err(e);
        }
        let follows = placements.iter().any(|p| {
            p.home == Home::Own
                && p.copies
                    .iter()
                    .any(|(_, v)| matches!(v, Verdict::Chosen | Verdict::UpToDate))
        });
        // Not moved while the client has it: the pull says so and the next
        // one moves it.
        let mut move_held = None;
        let (own_dest, own_dir, relocated_from) = match moved_from {
            Some(old) if follows && self.in_use(&old).is_none() => {
                if !self.dry_run {
                    self.relocate(id, &old, &dest)?;
                }
                (
                    dest.clone(),
                    dir.clone(),
                    old.parent().map(Path::to_path_buf),
                )
            }
            Some(old) => {
                if follows {
                    move_held = self.in_use(&old);
                }
                let old_dir = old.parent().map_or_else(|| dir.clone(), Path::to_path_buf);
                (old, old_dir, None)
            }
            None => (dest.clone(), dir.clone(), None),
        };
        let mut settled = Vec::with_capacity(placements.len());
        for p in &placements {
            let (target, path, local_len) = match p.home {
                Home::Own => (id.clone(), own_dest.clone(), own_len),
                Home::Other(j) => (
                    others[j].id.clone(),
                    others[j].path.clone(),
                    Some(others[j].len),
                ),
                Home::Fork(_) => {
                    let lead = match p.action {
                        Action::Install { from } | Action::FastForward { from } => from,
                        Action::Keep => p.copies[0].0,
                    };
                    let fid = self.free_fork_id(id, &copies[lead].meta.machine)?;
                    let path = ClaudeHome::transcript_path(&dir, &fid);
                    (fid, path, None)
                }
            };
            let mut sources = HashMap::new();
            for &(c, _) in &p.copies {
                sources.insert(c, oracle.as_session(c, &target)?);
            }
            let home_dir = if p.home == Home::Own { &own_dir } else { &dir };
            let s = self.settle(copies, p, &sources, target, path, local_len, home_dir)?;
            if local_len.is_none() && s.written.is_some() {
                self.note_new(&s.id, &s.transcript, home_dir);
            }
            settled.push((p, s));
        }
        // The session reported is the own id's; when every copy went to
        // another session here, that one.
        let main = settled
            .iter()
            .position(|(p, _)| p.home == Home::Own)
            .unwrap_or(0);
        let (main_plan, mut main) = settled.remove(main);
        let relocated_from = relocated_from.filter(|_| main.id == *id);
        if main.id == *id && main.held.is_none() {
            main.held = move_held;
        }
        let machine_of = |i: usize| copies[i].meta.machine.clone();
        let forks = settled
            .into_iter()
            .map(|(p, s)| Fork {
                machine: machine_of(s.written.or(s.cover).unwrap_or(p.copies[0].0)),
                id: s.id,
                transcript: s.transcript,
                action: s.action,
                held: s.held,
                parts: s.parts,
                cover: s.cover,
            })
            .collect();
        let verdicts = copies
            .iter()
            .enumerate()
            .map(|(i, c)| {
                let v = main_plan
                    .copies
                    .iter()
                    .find(|(k, _)| *k == i)
                    .map_or(Verdict::Diverged, |(_, v)| *v);
                (c.meta.machine.clone(), v)
            })
            .collect();
        let main_len = if main.id == *id {
            own_len
        } else {
            others.iter().find(|k| k.id == main.id).map(|k| k.len)
        };
        let (bytes, lines) = match (main.written, main_len) {
            (Some(i), _) => (copies[i].body.len, copies[i].body.lines),
            (None, Some(len)) => (
                len,
                transcript::count_lines_of(&main.transcript, len).map_err(|source| {
                    SessionError::Read {
                        path: main.transcript.clone(),
                        source,
                    }
                })?,
            ),
            (None, None) => (0, 0),
        };
        Ok(Outcome {
            id: main.id,
            key: first.project_key.clone(),
            cwd,
            transcript: main.transcript,
            action: main.action,
            from: main.written.map(machine_of),
            verdicts,
            held: main.held,
            forks,
            advise_push: false,
            bytes,
            lines,
            parts: main.parts,
            cover: main.cover,
            relocated_from,
        })
    }

    /// Writes one home as its placement says: side files of every copy it
    /// takes (the chosen one first: it alone may supersede what is here),
    /// then the transcript that refers to them; nothing while Claude Code
    /// writes the session.
    #[allow(clippy::too_many_arguments)]
    fn settle(
        &self,
        copies: &[Received],
        p: &Placement,
        sources: &HashMap<usize, PathBuf>,
        id: SessionId,
        dest: PathBuf,
        local_len: Option<u64>,
        dir: &Path,
    ) -> Result<Settled, SessionError> {
        let chosen = match p.action {
            Action::Install { from } | Action::FastForward { from } => Some(from),
            Action::Keep => None,
        };
        let mut order: Vec<usize> = chosen.into_iter().collect();
        order.extend(
            p.copies
                .iter()
                .map(|(c, _)| *c)
                .filter(|&c| Some(c) != chosen),
        );
        let mut parts = PartsOutcome::default();
        // In use, and something to write: the transcript or a side file.
        let live = match local_len.and_then(|_| self.in_use(&dest)) {
            Some(l)
                if chosen.is_some()
                    || self.parts_pending(order.iter().map(|&i| &copies[i]), dir, &id)? =>
            {
                Some(l)
            }
            _ => None,
        };
        let (action, held) = match live {
            Some(live) => (Action::Keep, Some(live)),
            None => {
                for &i in &order {
                    self.install_parts(&copies[i], dir, &id, Some(i) == chosen, &mut parts)?;
                }
                match chosen {
                    Some(from) => {
                        let done = self.apply(p.action, &dest, &sources[&from], local_len)?;
                        if done.1.is_none() {
                            self.keep_time(&dest, copies[from].meta.modified_ms)?;
                        }
                        done
                    }
                    None => (Action::Keep, None),
                }
            }
        };
        let written = chosen.filter(|_| held.is_none());
        let cover = p.cover(written).filter(|_| held.is_none());
        Ok(Settled {
            id,
            transcript: dest,
            action,
            held,
            parts,
            written,
            cover,
        })
    }
}

/// Writes `src`'s lines to `dest` with their `sessionId` value `from` set
/// to `to`, and nothing else changed.
pub(super) fn write_with_id(
    src: &Path,
    dest: &Path,
    from: &SessionId,
    to: &SessionId,
) -> Result<(), SessionError> {
    fsutil::write_atomic(dest, |f| {
        let mut out = std::io::BufWriter::new(f);
        transcript::copy_with_session_id(src, &mut out, from.as_str(), to.as_str())?;
        std::io::Write::flush(&mut out)
    })
    .map_err(|source| SessionError::Write {
        path: dest.to_path_buf(),
        source,
    })
}

pub(super) fn file_len(path: &Path) -> Result<Option<u64>, SessionError> {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => Err(SessionError::Write {
            path: path.to_path_buf(),
            source: io::Error::other("a folder is where this file belongs; move it away"),
        }),
        Ok(m) => Ok(Some(m.len())),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SessionError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}
