//! From bundles to local transcripts, in the exact folder the local Claude
//! Code computes for the local checkout: `pull` lists and fetches what
//! other machines put in the transport, `kin` finds the sessions here
//! that may hold a branch, `install` writes each copy where the plan
//! places it (with `parts` for side files), and `bookkeeping` keeps the
//! index.

mod bookkeeping;
mod fast;
mod install;
mod kin;
mod parts;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;

use super::copies::CopyObjects;
use super::plan::{Action, PartAction, Verdict};
use super::{Link, Received, SessionError};
use crate::claude::live::InUse;
use crate::index::Stamp;
use crate::names::{MachineName, SessionId};
use crate::project::{KeyMap, ProjectKey};
use crate::transport::{ObjectName, TransportError, layout};
use bookkeeping::{already_pushed, remember, superseded_own, unchanged_since_last_pull};

pub use install::Installer;
pub use kin::{LocalIndex, fork_id, local_index};

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
    /// The copy (by index among those that arrived) the transcript now
    /// equals, if any: holding it here adds nothing to the sync dir.
    pub cover: Option<usize>,
    /// The project folder the session was moved from, when the other
    /// machine had moved it to another directory (`/cd`).
    pub relocated_from: Option<PathBuf>,
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

/// Another machine's branch of a session, kept as a session of its own:
/// a fork made for it, or the session here that already held it.
#[derive(Debug, Clone)]
pub struct Fork {
    pub machine: MachineName,
    pub id: SessionId,
    pub transcript: PathBuf,
    pub action: Action,
    pub held: Option<InUse>,
    pub parts: PartsOutcome,
    /// The copy this session now equals, if any.
    pub cover: Option<usize>,
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
    /// Sessions of this pull another machine says a client runs there:
    /// the machine, and since when.
    pub running_elsewhere: Vec<(SessionId, String, Option<u64>)>,
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

/// Every object of a session's copies, with its stamp, in a fixed order.
fn object_stamps(group: &[CopyObjects]) -> Vec<(ObjectName, Stamp)> {
    group
        .iter()
        .flat_map(|c| c.stamps().map(|(n, s)| (n.clone(), s)))
        .collect()
}

/// Pulls every session of `checkouts` that other machines put in the
/// transport (only `only`, if given; never `except`, the session a client
/// is starting). Bad files are reported and skipped.
/// A session whose objects and local files are as the last pull left them
/// (by `index`) is neither fetched nor read.
pub fn pull(
    link: &mut Link,
    installer: &Installer,
    checkouts: &[Checkout],
    keys: &KeyMap,
    only: Option<&SessionId>,
    except: Option<&SessionId>,
) -> Result<PullReport, TransportError> {
    let Link {
        transport,
        layers,
        staging,
        machine: me,
        ref mut index,
        progress,
        dry_run,
    } = *link;
    debug_assert_eq!(
        dry_run, installer.dry_run,
        "the installer writes nothing either"
    );
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
    let mut groups: BTreeMap<(String, SessionId), Vec<CopyObjects>> = BTreeMap::new();
    let mut own: HashMap<ObjectName, CopyObjects> = HashMap::new();
    let listing = transport.list()?;
    super::encryption::check_layers(
        transport,
        layers,
        super::encryption::listed(&listing.objects),
        true,
    )?;
    let mut report = PullReport::default();
    let presences = super::presence::others(transport, &listing.objects, me);
    for (path, reason) in &listing.refused {
        report.refused.push((path.clone(), reason.clone()));
    }
    let (copies, _) = super::copies::group(&listing.objects);
    for (name, copy) in copies {
        let (id, machine) = name.session().expect("a base's name");
        if machine == *me {
            own.insert(name, copy);
            continue;
        }
        let Some(root) = root_of(name.dir()) else {
            if let Some(key) = layout::key_of_dir(name.dir()) {
                elsewhere.entry(keys.local(&key)).or_default().insert(id);
            }
            continue;
        };
        if only.is_none_or(|o| *o == id) && except != Some(&id) {
            if let Some((n, size)) = copy
                .stamps()
                .map(|(n, s)| (n, s.size))
                .find(|(_, size)| *size > crate::bundle::MAX_BUNDLE_BYTES)
            {
                report
                    .bad_objects
                    .push((n.clone(), crate::transport::dir::too_large("it", size)));
                continue;
            }
            groups.entry((root, id)).or_default().push(copy);
        }
    }

    report.other_projects = elsewhere
        .into_iter()
        .map(|(key, ids)| (key, ids.len()))
        .collect();

    let mut wanted: Vec<(String, &CopyObjects)> = Vec::new();
    let mut fast_forwards = Vec::new();
    for ((dir, id), group) in &groups {
        let objects = object_stamps(group);
        if let Some(outcome) = unchanged_since_last_pull(index, dir, id, &objects, roots[dir]) {
            report.outcomes.push(outcome);
        } else if let Some(c) = fast::candidate(index, (dir, id), group, roots[dir]) {
            fast_forwards.push(c);
        } else {
            wanted.extend(group.iter().map(|c| (dir.clone(), c)));
        }
    }
    // Sessions that only gained segments: those alone are fetched, in one
    // batch, and appended; any that do not fit are read whole below.
    let names: Vec<ObjectName> = fast_forwards
        .iter()
        .flat_map(|c| c.segments.iter().cloned())
        .collect();
    let arrived = match names.is_empty() {
        true => Vec::new(),
        false => {
            let dir = super::staging_dir(staging)?;
            super::receiving::receive_all(
                transport,
                layers,
                &names,
                |i| dir.join(format!("seg-{i}.jsonl.tmp")),
                &super::Quiet,
            )?
        }
    };
    let mut arrived = arrived
        .into_iter()
        .map(|a| a.and_then(|r| r.map_err(|e| e.to_string())));
    for c in fast_forwards {
        let segs: Vec<_> = arrived.by_ref().take(c.segments.len()).collect();
        let group = &groups[&c.group];
        let (dir, id) = &c.group;
        let done = if segs.iter().all(Result::is_ok) {
            let segs: Vec<Received> = segs.into_iter().flatten().collect();
            let objects = object_stamps(group);
            let done = super::make_durable(segs.iter().flat_map(Received::files))
                .map_err(|e| e.to_string())
                .and_then(|()| installer.forward(index, &c, &segs, &objects, roots[dir]));
            segs.iter().for_each(super::copies::discard);
            done
        } else {
            segs.iter().flatten().for_each(super::copies::discard);
            Err("a segment could not be read".into())
        };
        match done {
            Ok((outcome, pulled)) => {
                index.set_pulled(format!("{dir}/{id}"), pulled);
                report.outcomes.push(outcome);
            }
            Err(_) => wanted.extend(group.iter().map(|g| (dir.clone(), g))),
        }
    }
    // Each object is decoded as it streams in: nothing holds a whole one.
    let wanted_copies: Vec<&CopyObjects> = wanted.iter().map(|(_, c)| *c).collect();
    let arrived = match wanted_copies.is_empty() {
        true => Vec::new(),
        false => super::copies::fetch(
            transport,
            layers,
            super::staging_dir(staging)?,
            &wanted_copies,
            progress,
        )?,
    };

    let mut sessions: BTreeMap<(String, SessionId), Vec<Received>> = BTreeMap::new();
    let mut spoiled = std::collections::HashSet::new();
    for ((root, copy), arrived) in wanted.into_iter().zip(arrived) {
        let (id, machine) = copy.base.session().expect("a base's name");
        let checkout = roots[&root];
        let received = arrived.into_result().and_then(|r| {
            let m = &r.meta;
            if m.session_id != id
                || m.machine != machine
                || keys.local(&m.project_key) != checkout.key
            {
                super::copies::discard(&r);
                Err("its contents do not match its name and folder in the sync dir".to_owned())
            } else {
                Ok(r)
            }
        });
        match received {
            Ok(r) => sessions.entry((root, id)).or_default().push(r),
            Err(reason) => {
                spoiled.insert((root, id));
                report.bad_objects.push((copy.base.clone(), reason));
            }
        }
    }

    // Every staged file durable at once, before any is moved into place.
    if let Err(e) = super::make_durable(sessions.values().flatten().flat_map(Received::files)) {
        for ((_, id), copies) in std::mem::take(&mut sessions) {
            copies.iter().for_each(super::copies::discard);
            report.failed.push((
                id,
                SessionError::Write {
                    path: staging.parent().to_path_buf(),
                    source: std::io::Error::new(e.kind(), e.to_string()),
                },
            ));
        }
    }
    progress.start(sessions.len() as u64);
    let mut stale = Vec::new();
    let mut sessions: Vec<_> = sessions.into_iter().collect();
    super::plan::placing_order(&mut sessions, |((_, id), _)| installer.has(id));
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
                stale.extend(superseded_own(index, &own, &outcome, &copies, me));
                let settled =
                    outcome.held.is_none() && outcome.forks.iter().all(|f| f.held.is_none());
                if settled && !spoiled.contains(&(dir.clone(), id.clone())) {
                    let objects = object_stamps(&groups[&(dir, id)]);
                    index.set_pulled(key, remember(&outcome, &objects, &copies));
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
    installer.sync_written();
    if dry_run {
        stale.clear();
    }
    // Once another machine's copy of a session holds all this machine's
    // copy held, this machine's is only a second copy of one conversation.
    // Its segments go first: a base alone is a whole, older copy.
    let stale_segments: Vec<ObjectName> = stale
        .iter()
        .filter_map(|n| own.get(n))
        .flat_map(|c| c.segments.iter().map(|(_, n, _)| n.clone()))
        .collect();
    if !stale_segments.is_empty()
        && !transport
            .remove(&stale_segments)
            .is_ok_and(|r| r.iter().all(Result::is_ok))
    {
        stale.clear();
    }
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
    for o in &report.outcomes {
        if let Some((machine, since)) = super::presence::running(&presences, o.id.as_str()) {
            report
                .running_elsewhere
                .push((o.id.clone(), machine.to_owned(), since));
        }
    }
    for o in &mut report.outcomes {
        o.advise_push = o.verdicts.iter().any(|(_, v)| *v == Verdict::LocalAhead)
            && !already_pushed(index, &own, o, me)
            && index.advise_once(&o.transcript);
    }
    Ok(report)
}
