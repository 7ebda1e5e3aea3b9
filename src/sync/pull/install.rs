//! Writing one session: its plan on files, the transcript, forks.

use std::collections::HashMap;
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::{Fork, Outcome, PartsOutcome};
use crate::claude::ClaudeHome;
use crate::claude::live::{InUse, Writers};
use crate::claude::transcript;
use crate::fsutil;
use crate::names::{MachineName, SessionId};
use crate::sync::append::Journal;
use crate::sync::plan::{self, Action, Side, Verdict};
use crate::sync::{Received, SessionError};

/// Where each session id is on this machine.
pub type LocalIndex = HashMap<SessionId, Vec<PathBuf>>;

pub fn local_index(claude: &ClaudeHome) -> io::Result<LocalIndex> {
    let mut index = LocalIndex::new();
    for f in claude.session_files()?.0 {
        index.entry(f.id).or_default().push(f.path);
    }
    Ok(index)
}

/// The id of the `generation`-th fork of `id` holding `machine`'s branch.
/// Derived, not random, so pulling again finds the fork it made before.
pub fn fork_id(id: &SessionId, machine: &MachineName, generation: u32) -> SessionId {
    let digest = Sha256::digest(format!("ccsync fork\0{id}\0{machine}\0{generation}"));
    let bytes: [u8; 16] = digest[..16].try_into().expect("16 bytes");
    let uuid = uuid::Builder::from_random_bytes(bytes).into_uuid();
    SessionId::parse(&uuid.hyphenated().to_string()).expect("a v4 UUID is a session id")
}

/// For every local session and every machine, the ids its forks holding
/// that machine's branch would have: fork id to local session.
pub fn fork_origins(local: &LocalIndex, machines: &[MachineName]) -> HashMap<SessionId, SessionId> {
    let mut out = HashMap::new();
    for id in local.keys() {
        for m in machines {
            for g in 0..MAX_FORK_GENERATIONS {
                out.insert(fork_id(id, m, g), id.clone());
            }
        }
    }
    out
}

/// How many times one machine's branch may diverge again before ccsync
/// stops making forks of it.
const MAX_FORK_GENERATIONS: u32 = 64;

/// Installs sessions into the local Claude Code config dir.
pub struct Installer<'a> {
    pub claude: &'a ClaudeHome,
    pub local: LocalIndex,
    pub writers: Writers,
    /// Replace transcripts even when they look in use.
    pub force: bool,
    /// A transcript modified more recently than this counts as in use.
    pub recent: Duration,
    /// Where appends record their intent, so a killed one is undone.
    pub journal: Option<Journal>,
    skewed: std::cell::RefCell<Vec<(PathBuf, Duration)>>,
}

/// Compares transcripts on disk for the plan, each pair once.
struct Oracle<'a> {
    local: Option<(&'a Path, u64)>,
    copies: Vec<(&'a Path, u64)>,
    seen: HashMap<(Side, Side), bool>,
    failure: Option<io::Error>,
}

impl<'a> Oracle<'a> {
    fn side(&self, s: Side) -> Option<(&'a Path, u64)> {
        match s {
            Side::Local => self.local,
            Side::Copy(i) => Some(self.copies[i]),
        }
    }

    fn starts_with(&mut self, a: Side, b: Side) -> bool {
        if let Some(&known) = self.seen.get(&(a, b)) {
            return known;
        }
        let answer = match (self.side(a), self.side(b)) {
            (_, None) => true,
            (None, Some((_, len))) => len == 0,
            (Some((pa, la)), Some((pb, lb))) => {
                la >= lb
                    && transcript::same_prefix(pa, pb, lb).unwrap_or_else(|e| {
                        self.failure.get_or_insert(e);
                        false
                    })
            }
        };
        self.seen.insert((a, b), answer);
        answer
    }
}

/// Plans on files: the local transcript (if any) and the copies.
fn plan_files(local: Option<(&Path, u64)>, copies: &[(&Path, u64)]) -> io::Result<plan::Plan> {
    let mut oracle = Oracle {
        local,
        copies: copies.to_vec(),
        seen: HashMap::new(),
        failure: None,
    };
    let lens: Vec<u64> = copies.iter().map(|c| c.1).collect();
    let plan = plan::decide_with(local.map(|l| l.1), &lens, |a, b| oracle.starts_with(a, b));
    match oracle.failure {
        Some(e) => Err(e),
        None => Ok(plan),
    }
}

impl<'a> Installer<'a> {
    pub fn new(claude: &'a ClaudeHome, force: bool, recent: Duration) -> io::Result<Self> {
        Ok(Self {
            claude,
            local: local_index(claude)?,
            writers: if force {
                Writers::default()
            } else {
                Writers::scan()
            },
            force,
            recent,
            journal: None,
            skewed: Default::default(),
        })
    }

    /// Records each append's intent in `journal` first.
    pub fn with_journal(self, journal: Journal) -> Self {
        Self {
            journal: Some(journal),
            ..self
        }
    }

    fn in_use(&self, path: &Path) -> Option<InUse> {
        if self.force {
            return None;
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
                crate::sync::append::append_rest(self.journal.as_ref(), staged, dest, len)
                    .map_err(write_err)?;
            }
            _ => crate::sync::place(staged, dest).map_err(write_err)?,
        }
        Ok((action, None))
    }

    /// Installs one session from the copies of it that arrived, under
    /// `root`. Copies must be of one session, longest first.
    /// `copies` rewritten as the local session they are a fork of (by
    /// their derived id, `origins`), when none of them diverged from it:
    /// then they hold that session's own line (the other machine pulled
    /// it as a fork, and perhaps went on with it), and installing them as a
    /// session of their own would hold one conversation twice here. Their
    /// lines differ from the local session's only in the `sessionId`
    /// value, which is set back to the local one.
    pub fn returning_branch(
        &self,
        copies: &[Received],
        origins: &HashMap<SessionId, SessionId>,
    ) -> Result<Option<Vec<Received>>, SessionError> {
        let id = &copies[0].meta.session_id;
        if self.local.contains_key(id) {
            return Ok(None);
        }
        let Some(origin) = origins.get(id) else {
            return Ok(None);
        };
        let Some(path) = self.local.get(origin).and_then(|p| p.first()) else {
            return Ok(None);
        };
        let Some(local_len) = file_len(path)? else {
            return Ok(None);
        };
        let mut rewritten = Vec::with_capacity(copies.len());
        for (i, copy) in copies.iter().enumerate() {
            let branch = copy.transcript.with_extension(format!("origin{i}"));
            write_with_id(&copy.transcript, &branch, id, origin)?;
            let mut r = copy.clone();
            r.meta.session_id = origin.clone();
            r.transcript = branch;
            rewritten.push(r);
        }
        let files: Vec<(&Path, u64)> = rewritten
            .iter()
            .map(|c| (c.transcript.as_path(), c.body.len))
            .collect();
        let plan =
            plan_files(Some((path, local_len)), &files).map_err(|source| SessionError::Read {
                path: path.clone(),
                source,
            })?;
        Ok((!plan.verdicts.contains(&Verdict::Diverged)).then_some(rewritten))
    }

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
        if let Some(existing) = self
            .local
            .get(id)
            .and_then(|paths| paths.iter().find(|p| **p != dest))
        {
            return Err(SessionError::Elsewhere {
                id: id.clone(),
                existing: existing.clone(),
                wanted: dest,
            });
        }
        let local_len = file_len(&dest)?;
        let files: Vec<(&Path, u64)> = copies
            .iter()
            .map(|c| (c.transcript.as_path(), c.body.len))
            .collect();
        let read_err = |source| SessionError::Read {
            path: dest.clone(),
            source,
        };
        let plan = plan_files(local_len.map(|l| (dest.as_path(), l)), &files).map_err(read_err)?;
        let chosen = match plan.action {
            Action::Install { from } | Action::FastForward { from } => Some(from),
            Action::Keep => None,
        };
        // The side files of every copy that is not a fork, the chosen one
        // first: it alone may supersede what is here. They go in before the
        // transcript that refers to them, and not at all while Claude Code
        // writes the session.
        let mut order: Vec<usize> = chosen.into_iter().collect();
        order.extend(
            (0..copies.len())
                .filter(|&i| Some(i) != chosen && plan.verdicts[i] != Verdict::Diverged),
        );
        let mut parts = PartsOutcome::default();
        // In use, and something to write: the transcript or a side file.
        let live = local_len.and_then(|_| self.in_use(&dest));
        let live = match live {
            Some(l)
                if chosen.is_some()
                    || self.parts_pending(order.iter().map(|&i| &copies[i]), &dir, id)? =>
            {
                Some(l)
            }
            _ => None,
        };
        let (action, held) = match live {
            Some(live) => (Action::Keep, Some(live)),
            None => {
                for &i in &order {
                    let supersedes = Some(i) == chosen;
                    self.install_parts(&copies[i], &dir, id, supersedes, &mut parts)?;
                }
                match chosen {
                    Some(from) => {
                        self.apply(plan.action, &dest, &copies[from].transcript, local_len)?
                    }
                    None => (Action::Keep, None),
                }
            }
        };
        let written = chosen.filter(|_| held.is_none());
        let mut forks = Vec::new();
        for (copy, verdict) in copies.iter().zip(&plan.verdicts) {
            if *verdict == Verdict::Diverged {
                forks.push(self.fork(copy, &dir)?);
            }
        }
        let (bytes, lines) = match (written, local_len) {
            (Some(i), _) => (copies[i].body.len, copies[i].body.lines),
            (None, Some(len)) => (
                len,
                transcript::count_lines_of(&dest, len).map_err(read_err)?,
            ),
            (None, None) => (0, 0),
        };
        Ok(Outcome {
            id: id.clone(),
            key: first.project_key.clone(),
            cwd,
            transcript: dest,
            action,
            from: written.map(|i| copies[i].meta.machine.clone()),
            verdicts: copies
                .iter()
                .zip(plan.verdicts)
                .map(|(c, v)| (c.meta.machine.clone(), v))
                .collect(),
            held,
            forks,
            advise_push: false,
            bytes,
            lines,
            parts,
        })
    }

    /// Keeps `copy`, a branch that diverged from the local transcript, as a
    /// session of its own: the same lines with their `sessionId` set to the
    /// fork's id. A fork that exists already is brought up to date the same
    /// way a session is; one that diverged again gets the next generation.
    fn fork(&self, copy: &Received, dir: &Path) -> Result<Fork, SessionError> {
        let from = &copy.meta.session_id;
        let mut generation = 0;
        loop {
            let id = fork_id(from, &copy.meta.machine, generation);
            let dest = ClaudeHome::transcript_path(dir, &id);
            let branch = copy.transcript.with_extension(format!("fork{generation}"));
            write_with_id(&copy.transcript, &branch, from, &id)?;
            let local_len = file_len(&dest)?;
            let branch_len = std::fs::metadata(&branch).map_err(|source| SessionError::Read {
                path: branch.clone(),
                source,
            })?;
            let plan = plan_files(
                local_len.map(|l| (dest.as_path(), l)),
                &[(&branch, branch_len.len())],
            )
            .map_err(|source| SessionError::Read {
                path: dest.clone(),
                source,
            })?;
            if plan.verdicts[0] != Verdict::Diverged || generation + 1 == MAX_FORK_GENERATIONS {
                // The fork's side files are the copy's, under the fork's id.
                let mut parts = PartsOutcome::default();
                let live = local_len.and_then(|_| self.in_use(&dest));
                let held = match live {
                    Some(l)
                        if matches!(plan.action, Action::FastForward { .. })
                            || self.parts_pending([copy], dir, &id)? =>
                    {
                        Some(l)
                    }
                    _ => None,
                };
                if held.is_some() {
                    return Ok(Fork {
                        machine: copy.meta.machine.clone(),
                        id,
                        transcript: dest,
                        action: Action::Keep,
                        held,
                        parts,
                        same_as_copy: false,
                    });
                }
                let supersedes = plan.action != Action::Keep;
                self.install_parts(copy, dir, &id, supersedes, &mut parts)?;
                let (action, held) = self.apply(plan.action, &dest, &branch, local_len)?;
                let same_as_copy = held.is_none()
                    && (action != Action::Keep || plan.verdicts[0] == Verdict::UpToDate);
                return Ok(Fork {
                    machine: copy.meta.machine.clone(),
                    id,
                    transcript: dest,
                    action,
                    held,
                    parts,
                    same_as_copy,
                });
            }
            generation += 1;
        }
    }
}

/// Writes `src`'s lines to `dest` with their `sessionId` value `from` set
/// to `to`, and nothing else changed.
fn write_with_id(
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
