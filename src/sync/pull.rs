//! From bundles to local transcripts, in the exact folder the local Claude
//! Code computes for the local checkout.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::append::Journal;
use super::plan::{self, Action, PartAction, Side, Verdict};
use super::{Link, Received, SessionError};
use crate::claude::ClaudeHome;
use crate::claude::live::{InUse, Writers};
use crate::claude::transcript;
use crate::fsutil;
use crate::index::{Index, Pulled, Stamp};
use crate::names::{MachineName, SessionId};
use crate::project::{KeyMap, ProjectKey};
use crate::transport::{ObjectName, TransportError, layout};

/// A project's checkout on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkout {
    pub key: ProjectKey,
    pub root: PathBuf,
}

/// What became of one session.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub id: SessionId,
    pub key: ProjectKey,
    /// The directory to run `claude --resume` from.
    pub cwd: PathBuf,
    pub transcript: PathBuf,
    pub action: Action,
    /// Which machine's copy was written, if any.
    pub from: Option<MachineName>,
    /// Every copy considered, with the plan's verdict.
    pub verdicts: Vec<(MachineName, Verdict)>,
    /// Set when the plan said to replace the transcript but Claude Code is
    /// writing it, so it was left alone.
    pub held: Option<InUse>,
    /// Branches that diverged from this machine's, installed beside it.
    pub forks: Vec<Fork>,
    /// Whether to advise `ccsync push` for lines other machines lack: not
    /// when this machine's own copy in the transport already holds them,
    /// nor when the last pull said so about the transcript as it is now.
    pub advise_push: bool,
    /// Size and lines of the transcript after the pull.
    pub bytes: u64,
    pub lines: u64,
    pub parts: PartsOutcome,
}

/// What became of a session's side files.
#[derive(Debug, Clone, Default)]
pub struct PartsOutcome {
    /// How many were written: added, extended, or superseded by a newer state.
    pub written: usize,
    /// Kept as they are here although the incoming ones differ, and why.
    pub kept: Vec<(PathBuf, PartAction)>,
    /// Where every side file that arrived is on this machine.
    pub files: Vec<PathBuf>,
}

/// Another machine's branch of a session that was continued on both,
/// kept as a session of its own.
#[derive(Debug, Clone)]
pub struct Fork {
    pub machine: MachineName,
    pub id: SessionId,
    pub transcript: PathBuf,
    pub action: Action,
    pub held: Option<InUse>,
    pub parts: PartsOutcome,
    /// Whether the fork now holds exactly the other machine's branch.
    pub same_as_copy: bool,
}

#[derive(Debug, Default)]
pub struct PullReport {
    pub outcomes: Vec<Outcome>,
    pub failed: Vec<(SessionId, SessionError)>,
    /// Files in the transport that were not read, and why.
    pub bad_objects: Vec<(ObjectName, String)>,
    /// Entries of the transport that were not looked into (links), and why.
    pub refused: Vec<(String, String)>,
    /// Projects in the transport with no checkout here (or not asked
    /// for), with how many sessions each holds.
    pub other_projects: Vec<(ProjectKey, usize)>,
    /// This machine's own objects removed because another machine's copy
    /// of the same session extends them.
    pub superseded: Vec<ObjectName>,
    /// Such objects that could not be removed, and why (they do no harm).
    pub not_removed: Vec<(ObjectName, String)>,
}

impl PullReport {
    /// Whether anything asked for was left undone.
    pub fn incomplete(&self) -> bool {
        !self.failed.is_empty()
            || !self.bad_objects.is_empty()
            || !self.refused.is_empty()
            || self
                .outcomes
                .iter()
                .any(|o| o.held.is_some() || o.forks.iter().any(|f| f.held.is_some()))
    }
}

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
                super::append::append_rest(self.journal.as_ref(), staged, dest, len)
                    .map_err(write_err)?;
            }
            _ => super::place(staged, dest).map_err(write_err)?,
        }
        Ok((action, None))
    }

    /// Installs one session from the copies of it that arrived, under
    /// `root`. Copies must be of one session, longest first.
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

    /// Whether any side file of `copies` would be written for session `id`.
    fn parts_pending<'c>(
        &self,
        copies: impl IntoIterator<Item = &'c Received>,
        dir: &Path,
        id: &SessionId,
    ) -> Result<bool, SessionError> {
        for part in copies.into_iter().flat_map(|c| &c.parts) {
            let dest = self.claude.part_file(dir, id, &part.path);
            if decide_part(&dest, part, false)?.0 == PartAction::Write {
                return Ok(true);
            }
        }
        Ok(false)
    }

    /// Installs the side files of `copy` for session `id`, whose transcript
    /// is in `dir`, each atomically.
    fn install_parts(
        &self,
        copy: &Received,
        dir: &Path,
        id: &SessionId,
        supersedes: bool,
        out: &mut PartsOutcome,
    ) -> Result<(), SessionError> {
        let mut dirs = std::collections::BTreeSet::new();
        for part in &copy.parts {
            let dest = self.claude.part_file(dir, id, &part.path);
            let seen = out.files.contains(&dest);
            let (action, local_len) =
                decide_part(&dest, part, supersedes && !part.path.appended())?;
            match action {
                PartAction::Write => {
                    let write_err = |source| SessionError::Write {
                        path: dest.clone(),
                        source,
                    };
                    // A subagent transcript the client appends to is
                    // extended in place, like the session's own.
                    match local_len {
                        Some(len) if part.path.appended() && len < part.len => {
                            super::append::append_rest(
                                self.journal.as_ref(),
                                &part.file,
                                &dest,
                                len,
                            )
                            .map_err(write_err)?;
                        }
                        _ => {
                            super::place_unsynced(&part.file, &dest).map_err(write_err)?;
                            dirs.extend(dest.parent().map(Path::to_path_buf));
                        }
                    }
                    out.written += 1;
                }
                PartAction::Same => {}
                // What an earlier copy wrote in this pull is not news.
                kept if !seen => out.kept.push((dest.clone(), kept)),
                _ => {}
            }
            if !seen {
                out.files.push(dest);
            }
        }
        for dir in dirs {
            super::sync_dir(&dir);
        }
        Ok(())
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
            fsutil::write_atomic(&branch, |f| {
                let mut out = std::io::BufWriter::new(f);
                transcript::copy_with_session_id(
                    &copy.transcript,
                    &mut out,
                    from.as_str(),
                    id.as_str(),
                )?;
                std::io::Write::flush(&mut out)
            })
            .map_err(|source| SessionError::Write {
                path: branch.clone(),
                source,
            })?;
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

/// What to do with side file `part`, given what is at `dest`, and the
/// length of what is there.
fn decide_part(
    dest: &Path,
    part: &super::ReceivedPart,
    supersedes: bool,
) -> Result<(PartAction, Option<u64>), SessionError> {
    let local = file_len(dest)?;
    let mut failure = None;
    let action = plan::decide_part(
        local,
        part.len,
        |n| {
            transcript::same_prefix(dest, &part.file, n).unwrap_or_else(|e| {
                failure = Some(e);
                false
            })
        },
        supersedes,
    );
    match failure {
        Some(source) => Err(SessionError::Read {
            path: dest.to_path_buf(),
            source,
        }),
        None => Ok((action, local)),
    }
}

fn file_len(path: &Path) -> Result<Option<u64>, SessionError> {
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

/// Pulls every session of `checkouts` that other machines put in the
/// transport (only `only`, if given). Bad files are reported and skipped.
/// A session whose objects and local files are as the last pull left them
/// (by `index`) is neither fetched nor read.
pub fn pull(
    link: &mut Link,
    installer: &Installer,
    checkouts: &[Checkout],
    keys: &KeyMap,
    only: Option<&SessionId>,
) -> Result<PullReport, TransportError> {
    let Link {
        transport,
        staging,
        machine: me,
        ref mut index,
        progress,
    } = *link;
    let roots: HashMap<String, &Checkout> = checkouts
        .iter()
        .map(|c| (layout::key_dir(&c.key), c))
        .collect();
    // Which checkout a folder in the transport is for: its own key's, or
    // the one its key maps to here (case folded, aliased). Copies of one
    // session in two such folders are one session.
    let mut folder_of: HashMap<String, Option<String>> = HashMap::new();
    let mut root_of = |dir: &str| -> Option<String> {
        folder_of
            .entry(dir.to_owned())
            .or_insert_with(|| {
                if roots.contains_key(dir) {
                    return Some(dir.to_owned());
                }
                let local = keys.local(&layout::key_of_dir(dir)?);
                Some(layout::key_dir(&local)).filter(|d| roots.contains_key(d))
            })
            .clone()
    };
    let mut elsewhere: BTreeMap<ProjectKey, std::collections::BTreeSet<SessionId>> =
        BTreeMap::new();
    let mut groups: BTreeMap<(String, SessionId), Vec<(ObjectName, Stamp)>> = BTreeMap::new();
    let mut own: HashMap<ObjectName, Stamp> = HashMap::new();
    let listing = transport.list()?;
    let mut report = PullReport::default();
    for (path, reason) in &listing.refused {
        report.refused.push((path.clone(), reason.clone()));
    }
    for object in listing.objects {
        let Some((id, machine)) = object.name.session() else {
            continue;
        };
        if machine == *me {
            own.insert(
                object.name.clone(),
                Stamp::new(object.size, object.modified),
            );
            continue;
        }
        let Some(root) = root_of(object.name.dir()) else {
            if let Some(key) = layout::key_of_dir(object.name.dir()) {
                elsewhere.entry(keys.local(&key)).or_default().insert(id);
            }
            continue;
        };
        if only.is_none_or(|o| *o == id) {
            if object.size > crate::bundle::MAX_BUNDLE_BYTES {
                report.bad_objects.push((
                    object.name.clone(),
                    crate::transport::dir::too_large("it", object.size),
                ));
                continue;
            }
            let stamp = Stamp::new(object.size, object.modified);
            groups
                .entry((root, id))
                .or_default()
                .push((object.name, stamp));
        }
    }

    report.other_projects = elsewhere
        .into_iter()
        .map(|(key, ids)| (key, ids.len()))
        .collect();

    let mut wanted = Vec::new();
    for ((dir, id), objects) in &groups {
        match unchanged_since_last_pull(index, dir, id, objects, roots[dir]) {
            Some(outcome) => report.outcomes.push(outcome),
            None => wanted.extend(objects.iter().map(|(name, _)| (dir.clone(), name.clone()))),
        }
    }
    let (wanted_roots, wanted): (Vec<String>, Vec<ObjectName>) = wanted.into_iter().unzip();
    // Each bundle is decoded as it streams in: nothing holds a whole one.
    let mut arrived: Vec<Option<Result<Received, String>>> =
        (0..wanted.len()).map(|_| None).collect();
    let delivered = transport.fetch(&wanted, &mut |i, input| {
        let into = staging.join(format!("{i}.jsonl.tmp"));
        arrived[i] = Some(super::receive(input, &into).map_err(|e| e.to_string()));
    })?;

    let mut sessions: BTreeMap<(String, SessionId), Vec<Received>> = BTreeMap::new();
    let mut spoiled = std::collections::HashSet::new();
    for (((name, root), delivered), arrived) in wanted
        .into_iter()
        .zip(wanted_roots)
        .zip(delivered)
        .zip(arrived)
    {
        let (id, machine) = name.session().expect("filtered above");
        let checkout = roots[&root];
        let received = delivered
            .and_then(|()| arrived.unwrap_or_else(|| Err("it did not arrive".into())))
            .and_then(|r| {
                let m = &r.meta;
                if m.session_id != id
                    || m.machine != machine
                    || keys.local(&m.project_key) != checkout.key
                {
                    Err("its contents do not match its name and folder in the sync dir".to_owned())
                } else {
                    Ok(r)
                }
            });
        match received {
            Ok(r) => sessions.entry((root, id)).or_default().push(r),
            Err(reason) => {
                spoiled.insert((root, id));
                report.bad_objects.push((name, reason));
            }
        }
    }

    progress.start(sessions.len() as u64);
    let mut stale = Vec::new();
    for ((dir, id), mut copies) in sessions {
        progress.step();
        copies.sort_by(|a, b| {
            b.body
                .len
                .cmp(&a.body.len)
                .then_with(|| a.meta.machine.cmp(&b.meta.machine))
        });
        let key = format!("{dir}/{id}");
        let checkout = roots[&dir];
        match installer.install(&copies, &checkout.root) {
            Ok(mut outcome) => {
                // Known here by this machine's key, whatever the copies say.
                outcome.key = checkout.key.clone();
                if let Some(name) = superseded_own(index, &own, &outcome, &copies, me) {
                    stale.push(name);
                }
                let settled =
                    outcome.held.is_none() && outcome.forks.iter().all(|f| f.held.is_none());
                if settled && !spoiled.contains(&(dir.clone(), id.clone())) {
                    index.set_pulled(key, remember(&outcome, &groups[&(dir, id)]));
                } else {
                    index.forget_pulled(&key);
                }
                report.outcomes.push(outcome);
            }
            Err(e) => {
                index.forget_pulled(&key);
                report.failed.push((id, e));
            }
        }
    }
    // Once another machine's copy of a session holds all this machine's
    // copy held, this machine's is only a second copy of one conversation.
    match transport.remove(&stale) {
        Ok(results) => {
            for (name, result) in stale.into_iter().zip(results) {
                match result {
                    Ok(()) => {
                        index.forget_pushed(&name.to_string());
                        own.remove(&name);
                        report.superseded.push(name);
                    }
                    Err(reason) => report.not_removed.push((name, reason)),
                }
            }
        }
        Err(e) => report
            .not_removed
            .extend(stale.into_iter().map(|n| (n, e.to_string()))),
    }
    for o in &mut report.outcomes {
        o.advise_push = o.verdicts.iter().any(|(_, v)| *v == Verdict::LocalAhead)
            && !already_pushed(index, &own, o, me)
            && index.advise_once(&o.transcript);
    }
    Ok(report)
}

/// This machine's own object for `o`'s session, when the copy the local
/// transcript now equals holds everything that object held: its
/// transcript (by the length and hash the index recorded at push) and
/// every side file it carried.
fn superseded_own(
    index: &Index,
    own: &HashMap<ObjectName, Stamp>,
    o: &Outcome,
    copies: &[Received],
    me: &MachineName,
) -> Option<ObjectName> {
    if o.held.is_some() {
        return None;
    }
    let (cover, cover_machine) = copies
        .iter()
        .zip(&o.verdicts)
        .find(|(_, (_, v))| matches!(v, Verdict::Chosen | Verdict::UpToDate))
        .map(|(c, (m, _))| (c, m))?;
    let name = ObjectName::for_session(&o.key, &o.id, me);
    let pushed = index.pushed.get(&name.to_string())?;
    if own.get(&name) != Some(&pushed.remote) || pushed.len > cover.body.len {
        return None;
    }
    let cover_parts: Vec<String> = cover.parts.iter().map(|p| p.path.to_string()).collect();
    let facts = plan::OwnAndCover {
        own_len: pushed.len,
        own_is_prefix: transcript::sha256_of_prefix(&o.transcript, pushed.len).ok()?
            == pushed.sha256,
        own_parts: pushed.parts.iter().map(|(p, _)| p.as_str()).collect(),
        cover_len: cover.body.len,
        cover_parts: cover_parts.iter().map(String::as_str).collect(),
        me: me.as_str(),
        cover_machine: cover_machine.as_str(),
    };
    let held = plan::own_copy_superseded(&facts);
    held.then_some(name)
}

/// Whether this machine's object for `o`'s session in the transport is the
/// one it last pushed, from the local transcript as it is now.
fn already_pushed(
    index: &Index,
    own: &HashMap<ObjectName, Stamp>,
    o: &Outcome,
    me: &MachineName,
) -> bool {
    let name = ObjectName::for_session(&o.key, &o.id, me);
    index.pushed.get(&name.to_string()).is_some_and(|p| {
        own.get(&name) == Some(&p.remote)
            && p.source == o.transcript
            && Stamp::of(&o.transcript) == Some(p.source_stamp)
    })
}

/// What to remember of a settled session.
fn remember(o: &Outcome, objects: &[(ObjectName, Stamp)]) -> Pulled {
    let mut files = vec![(o.transcript.clone(), Stamp::of(&o.transcript))];
    files.extend(
        o.forks
            .iter()
            .map(|f| (f.transcript.clone(), Stamp::of(&f.transcript))),
    );
    let parts = o
        .parts
        .files
        .iter()
        .chain(o.forks.iter().flat_map(|f| &f.parts.files));
    files.extend(parts.map(|p| (p.clone(), Stamp::of(p))));
    // Transcripts now equal to another machine's copy: pushing them would
    // only put a second copy of one conversation in the transport.
    let mut covered = Vec::new();
    if o.verdicts
        .iter()
        .any(|(_, v)| matches!(v, Verdict::Chosen | Verdict::UpToDate))
    {
        covered.push(o.transcript.clone());
    }
    covered.extend(
        o.forks
            .iter()
            .filter(|f| f.same_as_copy)
            .map(|f| f.transcript.clone()),
    );
    Pulled {
        objects: objects.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
        files,
        covered,
        cwd: o.cwd.clone(),
        transcript: o.transcript.clone(),
        bytes: o.bytes,
        lines: o.lines,
        verdicts: o
            .verdicts
            .iter()
            .map(|(m, v)| (m.to_string(), *v))
            .collect(),
        forks: o
            .forks
            .iter()
            .map(|f| {
                (
                    f.machine.to_string(),
                    f.id.to_string(),
                    f.transcript.clone(),
                )
            })
            .collect(),
    }
}

/// The outcome of the last pull of this session, if nothing it depended on
/// has changed since; pulling again would then write nothing.
fn unchanged_since_last_pull(
    index: &Index,
    dir: &str,
    id: &SessionId,
    objects: &[(ObjectName, Stamp)],
    checkout: &Checkout,
) -> Option<Outcome> {
    let last = index.pulled.get(&format!("{dir}/{id}"))?;
    let same_objects = last.objects.len() == objects.len()
        && last
            .objects
            .iter()
            .zip(objects)
            .all(|((name, stamp), (n, s))| *name == n.to_string() && stamp == s);
    if !same_objects || !last.files_unchanged() || !last.cwd.starts_with(&checkout.root) {
        return None;
    }
    let verdicts = last
        .verdicts
        .iter()
        .map(|(m, v)| Some((MachineName::parse(m).ok()?, *v)))
        .collect::<Option<Vec<_>>>()?;
    let forks = last
        .forks
        .iter()
        .map(|(m, fid, path)| {
            Some(Fork {
                machine: MachineName::parse(m).ok()?,
                id: SessionId::parse(fid).ok()?,
                transcript: path.clone(),
                action: Action::Keep,
                held: None,
                parts: PartsOutcome::default(),
                same_as_copy: false,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Outcome {
        id: id.clone(),
        key: checkout.key.clone(),
        cwd: last.cwd.clone(),
        transcript: last.transcript.clone(),
        action: Action::Keep,
        from: None,
        verdicts,
        held: None,
        forks,
        advise_push: false,
        bytes: last.bytes,
        lines: last.lines,
        parts: PartsOutcome::default(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Bundle;
    use crate::names::RelPath;
    use crate::transport::memory::MemoryTransport;

    const SID: &str = "5c0375b4-57a5-4f26-b12d-d022ee4e51b7";

    struct Fixture {
        _tmp: tempfile::TempDir,
        claude: ClaudeHome,
        root: PathBuf,
        staging: PathBuf,
        transport: MemoryTransport,
        key: ProjectKey,
    }

    fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let claude =
            ClaudeHome::resolve(Some(tmp.path().join("claude").into()), None, None).unwrap();
        let root = tmp.path().join("checkout");
        let staging = tmp.path().join("staging");
        std::fs::create_dir_all(&staging).unwrap();
        Fixture {
            claude,
            root,
            staging,
            transport: MemoryTransport::new(),
            key: ProjectKey::parse("git:example.org/acme/app").unwrap(),
            _tmp: tmp,
        }
    }

    fn lines(tags: &[&str]) -> Vec<u8> {
        tags.iter()
            .flat_map(|t| format!("{{\"sessionId\":\"{SID}\",\"t\":\"{t}\"}}\n").into_bytes())
            .collect()
    }

    impl Fixture {
        fn offer(&self, machine: &str, transcript: Vec<u8>) {
            self.offer_with(machine, transcript, Vec::new());
        }

        fn offer_with(
            &self,
            machine: &str,
            transcript: Vec<u8>,
            parts: Vec<(crate::names::PartPath, Vec<u8>)>,
        ) {
            let b = Bundle {
                meta: crate::bundle::Meta {
                    version: 2,
                    session_id: SessionId::parse(SID).unwrap(),
                    project_key: self.key.clone(),
                    original_cwd: "/elsewhere/app".into(),
                    relative_cwd: Some(RelPath::default()),
                    machine: MachineName::parse(machine).unwrap(),
                    exported_at_ms: 0,
                },
                transcript,
                parts,
            };
            let name = ObjectName::for_session(&self.key, &b.meta.session_id, &b.meta.machine);
            self.transport.insert(name, b.to_bytes().unwrap());
        }

        fn pull(&self, force: bool) -> PullReport {
            self.pull_with(&Installer::new(&self.claude, force, Duration::ZERO).unwrap())
        }

        fn pull_with(&self, installer: &Installer) -> PullReport {
            let checkouts = [Checkout {
                key: self.key.clone(),
                root: self.root.clone(),
            }];
            let me = MachineName::parse("me").unwrap();
            let mut link = Link {
                transport: &self.transport,
                staging: &self.staging,
                machine: &me,
                index: &mut Index::default(),
                progress: &crate::sync::Quiet,
            };
            pull(&mut link, installer, &checkouts, &KeyMap::default(), None).unwrap()
        }

        fn dir(&self) -> PathBuf {
            self.claude
                .project_dir_for(self.root.to_str().unwrap())
                .unwrap()
        }

        fn local(&self, id: &str) -> Option<Vec<u8>> {
            std::fs::read(self.dir().join(format!("{id}.jsonl"))).ok()
        }

        fn set_local(&self, bytes: &[u8]) {
            fsutil::write_atomic_bytes(&self.dir().join(format!("{SID}.jsonl")), bytes).unwrap();
        }
    }

    #[test]
    fn side_files_are_added_extended_kept_and_superseded() {
        use crate::names::PartPath;
        let f = fixture();
        let id = SessionId::parse(SID).unwrap();
        let p = |s: &str| PartPath::parse(s).unwrap();
        let at = |s: &str| f.claude.part_file(&f.dir(), &id, &p(s));
        f.offer_with(
            "a",
            lines(&["1"]),
            vec![
                (p("subagents/agent-x.jsonl"), b"{\"a\":1}\n".to_vec()),
                (p("tasks/1.json"), b"{\"status\":\"open\"}".to_vec()),
                (p("file-history/h@v1"), vec![0, 255, 10, 13]),
            ],
        );
        let r = f.pull(false);
        assert_eq!(r.outcomes[0].parts.written, 3);
        assert_eq!(
            std::fs::read(at("file-history/h@v1")).unwrap(),
            [0, 255, 10, 13]
        );
        assert_eq!(
            at("subagents/agent-x.jsonl"),
            f.dir().join(SID).join("subagents/agent-x.jsonl")
        );

        // This machine works on: its task list changes, its subagent grows.
        f.set_local(&lines(&["1", "mine"]));
        std::fs::write(at("tasks/1.json"), b"{\"status\":\"done here\"}").unwrap();
        std::fs::write(at("subagents/agent-x.jsonl"), b"{\"a\":1}\n{\"b\":2}\n").unwrap();
        // The other machine's copy is not newer: nothing it has is taken
        // over what is here, but a new file is added.
        f.offer_with(
            "a",
            lines(&["1"]),
            vec![
                (p("subagents/agent-x.jsonl"), b"{\"a\":1}\n".to_vec()),
                (p("tasks/1.json"), b"{\"status\":\"open\"}".to_vec()),
                (p("tool-results/t.txt"), b"out".to_vec()),
            ],
        );
        let r = f.pull(false);
        let o = &r.outcomes[0];
        assert_eq!(o.action, Action::Keep);
        assert_eq!(o.parts.written, 1);
        assert_eq!(
            o.parts.kept,
            [
                (at("subagents/agent-x.jsonl"), PartAction::LocalAhead),
                (at("tasks/1.json"), PartAction::Differs)
            ]
        );
        assert_eq!(
            std::fs::read(at("tasks/1.json")).unwrap(),
            b"{\"status\":\"done here\"}"
        );

        // The other machine continued from here: its task list is newer, and
        // its subagent transcript extends this one; a diverged subagent
        // transcript is still never replaced.
        std::fs::write(at("subagents/agent-y.jsonl"), b"{\"mine\":1}\n").unwrap();
        f.offer_with(
            "a",
            lines(&["1", "mine", "2"]),
            vec![
                (
                    p("subagents/agent-x.jsonl"),
                    b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n".to_vec(),
                ),
                (p("subagents/agent-y.jsonl"), b"{\"theirs\":1}\n".to_vec()),
                (p("tasks/1.json"), b"{\"status\":\"closed\"}".to_vec()),
            ],
        );
        let r = f.pull(false);
        let o = &r.outcomes[0];
        assert_eq!(o.action, Action::FastForward { from: 0 });
        assert_eq!(o.parts.written, 2);
        assert_eq!(
            o.parts.kept,
            [(at("subagents/agent-y.jsonl"), PartAction::Differs)]
        );
        assert_eq!(
            std::fs::read(at("tasks/1.json")).unwrap(),
            b"{\"status\":\"closed\"}"
        );
        assert_eq!(
            std::fs::read(at("subagents/agent-y.jsonl")).unwrap(),
            b"{\"mine\":1}\n"
        );
        assert_eq!(
            std::fs::read(at("tool-results/t.txt")).unwrap(),
            b"out",
            "never deleted"
        );
    }

    /// A fork keeps the other machine's side files under its own id; the
    /// local session's are not touched.
    #[test]
    fn a_fork_gets_the_side_files_of_its_branch() {
        use crate::names::PartPath;
        let f = fixture();
        let id = SessionId::parse(SID).unwrap();
        let p = PartPath::parse("tasks/1.json").unwrap();
        f.set_local(&lines(&["1", "mine"]));
        let mine = f.claude.part_file(&f.dir(), &id, &p);
        std::fs::create_dir_all(mine.parent().unwrap()).unwrap();
        std::fs::write(&mine, b"mine").unwrap();
        f.offer_with(
            "a",
            lines(&["1", "theirs"]),
            vec![(p.clone(), b"theirs".to_vec())],
        );
        let r = f.pull(false);
        let o = &r.outcomes[0];
        assert_eq!(o.forks.len(), 1);
        assert_eq!(o.forks[0].parts.written, 1);
        assert_eq!(std::fs::read(&mine).unwrap(), b"mine");
        let theirs = f.claude.part_file(&f.dir(), &o.forks[0].id, &p);
        assert_eq!(std::fs::read(theirs).unwrap(), b"theirs");
    }

    /// A session Claude Code is writing gets no side files either.
    #[test]
    fn a_live_session_gets_no_side_files() {
        use crate::names::PartPath;
        let f = fixture();
        f.set_local(&lines(&["1"]));
        f.offer_with(
            "a",
            lines(&["1"]),
            vec![(
                PartPath::parse("tool-results/t.txt").unwrap(),
                b"x".to_vec(),
            )],
        );
        let installer = Installer::new(&f.claude, false, Duration::from_secs(3600)).unwrap();
        let r = f.pull_with(&installer);
        assert!(r.outcomes[0].held.is_some());
        assert_eq!(r.outcomes[0].parts.written, 0);
        assert!(!f.dir().join(SID).exists());
        assert!(r.incomplete());
    }

    #[test]
    fn installs_then_fast_forwards_then_keeps() {
        let f = fixture();
        f.offer("a", lines(&["1"]));
        let r = f.pull(false);
        assert_eq!(r.outcomes[0].action, Action::Install { from: 0 });
        assert_eq!(f.local(SID), Some(lines(&["1"])));
        f.offer("a", lines(&["1", "2"]));
        assert_eq!(
            f.pull(false).outcomes[0].action,
            Action::FastForward { from: 0 }
        );
        assert_eq!(f.pull(false).outcomes[0].action, Action::Keep);
        assert!(!f.pull(false).incomplete());
    }

    #[test]
    fn an_unchanged_session_is_not_fetched_again() {
        let f = fixture();
        let mut index = Index::default();
        let me = MachineName::parse("me").unwrap();
        let checkouts = [Checkout {
            key: f.key.clone(),
            root: f.root.clone(),
        }];
        let run = |index: &mut Index| {
            let installer = Installer::new(&f.claude, false, Duration::ZERO).unwrap();
            pull(
                &mut Link {
                    transport: &f.transport,
                    staging: &f.staging,
                    machine: &me,
                    index,
                    progress: &crate::sync::Quiet,
                },
                &installer,
                &checkouts,
                &KeyMap::default(),
                None,
            )
            .unwrap()
        };
        f.offer("a", lines(&["1"]));
        f.offer("b", lines(&["1", "b"]));
        run(&mut index);
        assert_eq!(f.transport.fetched(), 2);
        let again = run(&mut index);
        assert_eq!(f.transport.fetched(), 2, "nothing fetched");
        assert_eq!(again.outcomes[0].action, Action::Keep);
        assert_eq!(again.outcomes[0].verdicts.len(), 2);
        // The local transcript changed: fetched and judged again.
        fsutil::write_atomic_bytes(
            &f.dir().join(format!("{SID}.jsonl")),
            &lines(&["1", "b", "mine"]),
        )
        .unwrap();
        let third = run(&mut index);
        assert_eq!(f.transport.fetched(), 4);
        assert_eq!(third.outcomes[0].verdicts[0].1, Verdict::LocalAhead);
        // A copy changed in the transport: fetched again.
        f.offer("a", lines(&["1", "b", "mine", "more"]));
        assert_eq!(
            run(&mut index).outcomes[0].action,
            Action::FastForward { from: 0 }
        );
        assert_eq!(f.transport.fetched(), 6);
    }

    #[test]
    fn own_copies_are_not_pulled() {
        let f = fixture();
        f.offer("me", lines(&["1"]));
        assert!(f.pull(false).outcomes.is_empty());
    }

    #[test]
    fn diverged_copies_become_stable_forks() {
        let f = fixture();
        f.set_local(&lines(&["1", "here"]));
        f.offer("a", lines(&["1", "there"]));
        let r = f.pull(false);
        let o = &r.outcomes[0];
        assert_eq!(o.action, Action::Keep);
        assert_eq!(o.verdicts[0].1, Verdict::Diverged);
        let fork = &o.forks[0];
        assert_eq!(fork.action, Action::Install { from: 0 });
        let a = MachineName::parse("a").unwrap();
        let sid = SessionId::parse(SID).unwrap();
        assert_eq!(fork.id, fork_id(&sid, &a, 0));
        let forked = f.local(fork.id.as_str()).unwrap();
        assert_eq!(
            forked,
            transcript::with_session_id(&lines(&["1", "there"]), SID, fork.id.as_str())
        );
        assert_eq!(f.local(SID), Some(lines(&["1", "here"])));

        // Again: nothing new. Then the other side goes on: the fork follows.
        assert_eq!(f.pull(false).outcomes[0].forks[0].action, Action::Keep);
        f.offer("a", lines(&["1", "there", "more"]));
        let again = f.pull(false);
        assert_eq!(again.outcomes[0].forks[0].id, fork.id);
        assert_eq!(
            again.outcomes[0].forks[0].action,
            Action::FastForward { from: 0 }
        );

        // The other side rewrites its branch: a second-generation fork.
        f.offer("a", lines(&["1", "rewritten"]));
        let third = f.pull(false);
        assert_eq!(third.outcomes[0].forks[0].id, fork_id(&sid, &a, 1));
        assert_eq!(
            third.outcomes[0].forks[0].action,
            Action::Install { from: 0 }
        );
        assert!(
            f.local(fork_id(&sid, &a, 0).as_str())
                .unwrap()
                .ends_with(b"\"more\"}\n")
        );
    }

    #[test]
    fn fork_ids_are_stable_and_distinct() {
        let sid = SessionId::parse(SID).unwrap();
        let a = MachineName::parse("a").unwrap();
        let b = MachineName::parse("b").unwrap();
        assert_eq!(fork_id(&sid, &a, 0), fork_id(&sid, &a, 0));
        assert_ne!(fork_id(&sid, &a, 0), fork_id(&sid, &b, 0));
        assert_ne!(fork_id(&sid, &a, 0), fork_id(&sid, &a, 1));
        assert_ne!(fork_id(&sid, &a, 0), sid);
    }

    #[test]
    fn a_transcript_in_use_is_left_alone_unless_forced() {
        let f = fixture();
        f.set_local(&lines(&["1"]));
        f.offer("a", lines(&["1", "2"]));
        let installer = Installer::new(&f.claude, false, Duration::from_secs(600)).unwrap();
        let r = f.pull_with(&installer);
        assert!(matches!(
            r.outcomes[0].held,
            Some(InUse::RecentlyModified { .. })
        ));
        assert_eq!(r.outcomes[0].action, Action::Keep);
        assert!(r.incomplete());
        assert_eq!(f.local(SID), Some(lines(&["1"])));
        let forced = Installer::new(&f.claude, true, Duration::from_secs(600)).unwrap();
        let r = f.pull_with(&forced);
        assert_eq!(r.outcomes[0].action, Action::FastForward { from: 0 });
    }

    #[test]
    fn a_session_kept_elsewhere_is_not_copied_again() {
        let f = fixture();
        let other = f
            .claude
            .projects_dir()
            .join("-some-other-dir")
            .join(format!("{SID}.jsonl"));
        fsutil::write_atomic_bytes(&other, &lines(&["1"])).unwrap();
        f.offer("a", lines(&["1", "2"]));
        let r = f.pull(false);
        assert!(matches!(r.failed[0].1, SessionError::Elsewhere { .. }));
        assert_eq!(f.local(SID), None);
    }

    #[test]
    fn bad_objects_are_reported_and_the_rest_arrive() {
        let f = fixture();
        f.offer("a", lines(&["1"]));
        let dir = crate::transport::layout::key_dir(&f.key);
        let bad = ObjectName::parse(&dir, &format!("{SID}-b.ccsync")).unwrap();
        f.transport
            .insert(bad.clone(), b"{\"_schemaVersion\":7}".to_vec());
        let r = f.pull(false);
        assert_eq!(r.outcomes.len(), 1);
        assert_eq!(r.bad_objects[0].0, bad);
        assert!(r.bad_objects[0].1.contains("version 7"));
        assert!(r.incomplete());
    }
}
