//! From bundles to local transcripts, in the exact folder the local Claude
//! Code computes for the local checkout.

use std::collections::{BTreeMap, HashMap};
use std::io;
use std::path::{Path, PathBuf};

use super::SessionError;
use super::plan::{self, Action, Verdict};
use crate::bundle::Bundle;
use crate::claude::ClaudeHome;
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
    /// Size and lines of the transcript after the pull.
    pub bytes: u64,
    pub lines: u64,
}

#[derive(Debug, Default)]
pub struct PullReport {
    pub outcomes: Vec<Outcome>,
    pub failed: Vec<(SessionId, SessionError)>,
    /// Files in the transport that were not read, and why.
    pub bad_objects: Vec<(ObjectName, String)>,
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

/// Installs one session from the copies of it that arrived, under `root`.
/// Copies must be of one session; the longest come first, so ties are stable.
pub fn install(
    claude: &ClaudeHome,
    local: &LocalIndex,
    copies: &[Bundle],
    root: &Path,
) -> Result<Outcome, SessionError> {
    let first = &copies[0];
    let cwd = match &first.relative_cwd {
        Some(rel) => rel.under(root),
        None => root.to_path_buf(),
    };
    let cwd_str = cwd
        .to_str()
        .ok_or_else(|| SessionError::NotUtf8Path(cwd.clone()))?;
    let dir = claude
        .project_dir_for(cwd_str)
        .map_err(|source| SessionError::Read {
            path: claude.projects_dir(),
            source,
        })?;
    let dest = ClaudeHome::transcript_path(&dir, &first.session_id);
    if let Some(existing) = local
        .get(&first.session_id)
        .and_then(|paths| paths.iter().find(|p| **p != dest))
    {
        return Err(SessionError::Elsewhere {
            id: first.session_id.clone(),
            existing: existing.clone(),
            wanted: dest,
        });
    }
    let current = match std::fs::read(&dest) {
        Ok(bytes) => Some(bytes),
        Err(e) if e.kind() == io::ErrorKind::NotFound => None,
        Err(source) => return Err(SessionError::Read { path: dest, source }),
    };
    let incoming: Vec<&[u8]> = copies.iter().map(|b| b.transcript.as_slice()).collect();
    let plan = plan::decide(current.as_deref(), &incoming);
    let written = match plan.action {
        Action::Install { from } | Action::FastForward { from } => {
            let bytes = &copies[from].transcript;
            fsutil::write_atomic_bytes(&dest, bytes).map_err(|source| SessionError::Write {
                path: dest.clone(),
                source,
            })?;
            Some(from)
        }
        Action::Keep => None,
    };
    let result: &[u8] = written.map_or(current.as_deref().unwrap_or_default(), |i| {
        &copies[i].transcript
    });
    Ok(Outcome {
        id: first.session_id.clone(),
        key: first.project_key.clone(),
        cwd,
        transcript: dest,
        action: plan.action,
        from: written.map(|i| copies[i].machine.clone()),
        verdicts: copies
            .iter()
            .zip(plan.verdicts)
            .map(|(b, v)| (b.machine.clone(), v))
            .collect(),
        bytes: result.len() as u64,
        lines: crate::claude::transcript::count_lines(result),
    })
}

/// Pulls every session of `checkouts` that other machines put in the
/// transport (only `only`, if given). Bad files are reported and skipped.
pub fn pull(
    transport: &dyn Transport,
    claude: &ClaudeHome,
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

    let local = local_index(claude).map_err(|source| TransportError::Io {
        action: "read",
        path: claude.projects_dir(),
        source,
    })?;
    for ((dir, id), mut copies) in sessions {
        copies.sort_by(|a, b| {
            b.transcript
                .len()
                .cmp(&a.transcript.len())
                .then_with(|| a.machine.cmp(&b.machine))
        });
        match install(claude, &local, &copies, &roots[&dir].root) {
            Ok(outcome) => report.outcomes.push(outcome),
            Err(e) => report.failed.push((id, e)),
        }
    }
    Ok(report)
}
