//! From bundles to local transcripts, in the exact folder the local Claude
//! Code computes for the local checkout.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use sha2::{Digest, Sha256};

use super::SessionError;
use super::plan::{self, Action, Verdict};
use crate::bundle::Bundle;
use crate::claude::ClaudeHome;
use crate::claude::live::{InUse, Writers};
use crate::claude::transcript;
use crate::fsutil;
use crate::names::{MachineName, SessionId};
use crate::project::ProjectKey;
use crate::transport::{ObjectName, Transport, TransportError, layout};

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
    /// Size and lines of the transcript after the pull.
    pub bytes: u64,
    pub lines: u64,
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
}

#[derive(Debug, Default)]
pub struct PullReport {
    pub outcomes: Vec<Outcome>,
    pub failed: Vec<(SessionId, SessionError)>,
    /// Files in the transport that were not read, and why.
    pub bad_objects: Vec<(ObjectName, String)>,
}

impl PullReport {
    /// Whether anything asked for was left undone.
    pub fn incomplete(&self) -> bool {
        !self.failed.is_empty()
            || !self.bad_objects.is_empty()
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
        })
    }

    fn in_use(&self, path: &Path) -> Option<InUse> {
        (!self.force)
            .then(|| self.writers.check(path, self.recent))
            .flatten()
    }

    /// Writes `bytes` to `dest` as the plan said, unless it would replace a
    /// transcript Claude Code is writing.
    fn apply(
        &self,
        action: Action,
        dest: &Path,
        bytes: &[u8],
    ) -> Result<Option<InUse>, SessionError> {
        match action {
            Action::Keep => return Ok(None),
            Action::FastForward { .. } => {
                if let Some(held) = self.in_use(dest) {
                    return Ok(Some(held));
                }
            }
            Action::Install { .. } => {}
        }
        fsutil::write_atomic_bytes(dest, bytes).map_err(|source| SessionError::Write {
            path: dest.to_path_buf(),
            source,
        })?;
        Ok(None)
    }

    /// Installs one session from the copies of it that arrived, under
    /// `root`. Copies must be of one session, longest first.
    pub fn install(&self, copies: &[Bundle], root: &Path) -> Result<Outcome, SessionError> {
        let first = &copies[0];
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
        let current = read_if_exists(&dest)?;
        let incoming: Vec<&[u8]> = copies.iter().map(|b| b.transcript.as_slice()).collect();
        let plan = plan::decide(current.as_deref(), &incoming);
        let chosen = match plan.action {
            Action::Install { from } | Action::FastForward { from } => Some(from),
            Action::Keep => None,
        };
        let held = match chosen {
            Some(from) => self.apply(plan.action, &dest, &copies[from].transcript)?,
            None => None,
        };
        let written = chosen.filter(|_| held.is_none());
        let mut forks = Vec::new();
        for (copy, verdict) in copies.iter().zip(&plan.verdicts) {
            if *verdict == Verdict::Diverged {
                forks.push(self.fork(copy, &dir)?);
            }
        }
        let result: &[u8] = written.map_or(current.as_deref().unwrap_or_default(), |i| {
            &copies[i].transcript
        });
        Ok(Outcome {
            id: id.clone(),
            key: first.project_key.clone(),
            cwd,
            transcript: dest,
            action: if held.is_some() {
                Action::Keep
            } else {
                plan.action
            },
            from: written.map(|i| copies[i].machine.clone()),
            verdicts: copies
                .iter()
                .zip(plan.verdicts)
                .map(|(b, v)| (b.machine.clone(), v))
                .collect(),
            held,
            forks,
            bytes: result.len() as u64,
            lines: crate::claude::transcript::count_lines(result),
        })
    }

    /// Keeps `copy`, a branch that diverged from the local transcript, as a
    /// session of its own: the same lines with their `sessionId` set to the
    /// fork's id. A fork that exists already is brought up to date the same
    /// way a session is; one that diverged again gets the next generation.
    fn fork(&self, copy: &Bundle, dir: &Path) -> Result<Fork, SessionError> {
        let mut generation = 0;
        loop {
            let id = fork_id(&copy.session_id, &copy.machine, generation);
            let dest = ClaudeHome::transcript_path(dir, &id);
            let branch = transcript::with_session_id(
                &copy.transcript,
                copy.session_id.as_str(),
                id.as_str(),
            );
            let current = read_if_exists(&dest)?;
            let plan = plan::decide(current.as_deref(), &[&branch]);
            if plan.verdicts[0] != Verdict::Diverged || generation + 1 == MAX_FORK_GENERATIONS {
                let held = self.apply(plan.action, &dest, &branch)?;
                return Ok(Fork {
                    machine: copy.machine.clone(),
                    id,
                    transcript: dest,
                    action: if held.is_some() {
                        Action::Keep
                    } else {
                        plan.action
                    },
                    held,
                });
            }
            generation += 1;
        }
    }
}

fn read_if_exists(path: &Path) -> Result<Option<Vec<u8>>, SessionError> {
    match std::fs::read(path) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SessionError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

/// Pulls every session of `checkouts` that other machines put in the
/// transport (only `only`, if given). Bad files are reported and skipped.
pub fn pull(
    transport: &dyn Transport,
    installer: &Installer,
    staging: &Path,
    checkouts: &[Checkout],
    only: Option<&SessionId>,
    me: &MachineName,
) -> Result<PullReport, TransportError> {
    let roots: HashMap<String, &Checkout> = checkouts
        .iter()
        .map(|c| (layout::key_dir(&c.key), c))
        .collect();
    let wanted: Vec<ObjectName> = transport
        .list()?
        .into_iter()
        .map(|o| o.name)
        .filter(|name| roots.contains_key(name.dir()))
        .filter(|name| {
            name.session()
                .is_some_and(|(id, machine)| &machine != me && only.is_none_or(|o| *o == id))
        })
        .collect();
    let files = transport.fetch(&wanted, staging)?;

    let mut report = PullReport::default();
    let mut sessions: BTreeMap<(String, SessionId), Vec<Bundle>> = BTreeMap::new();
    for (name, file) in wanted.into_iter().zip(files) {
        let (id, machine) = name.session().expect("filtered above");
        let checkout = roots[name.dir()];
        let decoded = std::fs::read(&file)
            .map_err(|e| e.to_string())
            .and_then(|bytes| Bundle::decode(&bytes).map_err(|e| e.to_string()))
            .and_then(|b| {
                if b.session_id != id || b.machine != machine || b.project_key != checkout.key {
                    Err("its contents do not match its name and folder in the sync dir".to_owned())
                } else {
                    Ok(b)
                }
            });
        match decoded {
            Ok(bundle) => sessions
                .entry((name.dir().to_owned(), id))
                .or_default()
                .push(bundle),
            Err(reason) => report.bad_objects.push((name, reason)),
        }
    }

    for ((dir, id), mut copies) in sessions {
        copies.sort_by(|a, b| {
            b.transcript
                .len()
                .cmp(&a.transcript.len())
                .then_with(|| a.machine.cmp(&b.machine))
        });
        match installer.install(&copies, &roots[&dir].root) {
            Ok(outcome) => report.outcomes.push(outcome),
            Err(e) => report.failed.push((id, e)),
        }
    }
    Ok(report)
}
