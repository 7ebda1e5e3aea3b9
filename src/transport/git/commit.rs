//! A store or removal as one commit on the fetched tip, pushed with a lease
//! on that tip. A push that lost a race (another machine pushed first) is
//! rejected; the branch is fetched again and the same changes are made on
//! the new tip, so both machines' objects land. History stays bounded:
//! once the branch holds `HISTORY_LIMIT` commits, the next commit is a new
//! root holding the whole tree, pushed with the same lease, so a push that
//! came in between is never overwritten (the rewrite is rejected and made
//! again on top of it).

use std::collections::BTreeMap;
use std::time::{Duration, Instant, SystemTime};

use super::push::{Pushed, backoff};
use super::run::EMAIL;
use super::tree::{self, Times};
use super::{GitTransport, Snapshot, Tip};
use crate::transport::{ObjectName, PerObject, TransportError};

/// Commits the branch may hold before the next store starts it afresh.
pub const HISTORY_LIMIT: u32 = 100;
/// How long a store keeps trying on a branch others keep moving.
const PUSH_TIME_LIMIT: Duration = Duration::from_secs(60);
/// Times a push the server's side refused while the branch stayed where
/// it was (another push held its lock) is tried again.
const REMOTE_RETRIES: u32 = 2;
/// The most commits read to see whether the whole history is ccsync's.
const HISTORY_READ: u32 = 10 * HISTORY_LIMIT;

/// One change a commit makes.
pub(super) struct Change {
    name: ObjectName,
    /// The blob to put there and its size; `None` removes it.
    oid: Option<(String, u64)>,
}

impl Change {
    pub fn put(name: &ObjectName, oid: &str, size: u64) -> Self {
        Self {
            name: name.clone(),
            oid: Some((oid.to_owned(), size)),
        }
    }

    pub fn delete(name: &ObjectName) -> Self {
        Self {
            name: name.clone(),
            oid: None,
        }
    }
}

/// What a commit wrote, to bring the snapshot up to it without reading
/// the branch again.
struct Built {
    commit: String,
    root: String,
    secs: u64,
    /// Per changed folder, its new tree (`None`: it is empty, and went).
    folders: Vec<(String, Option<String>)>,
    times: (String, u64),
}

/// What the changes come to on one snapshot.
struct Plan {
    /// Per change: the stamp of what is there afterwards, or why not.
    results: Vec<PerObject<Option<SystemTime>>>,
    /// Per folder: file → the blob it gets and its size, or `None` to go.
    folders: BTreeMap<String, BTreeMap<String, Option<(String, u64)>>>,
    times: Times,
}

fn now_ns() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
}

/// The changes on `snapshot`, per object: a change whose folder is a link
/// (or not a folder) is refused alone; one that changes nothing is done.
fn plan(snapshot: &Snapshot, changes: &[Change], branch: &str, now: u64) -> Plan {
    let mut folders: BTreeMap<String, BTreeMap<String, Option<(String, u64)>>> = BTreeMap::new();
    let mut results = Vec::with_capacity(changes.len());
    let mut times = snapshot.times.clone();
    for change in changes {
        let (dir, file) = (change.name.dir(), change.name.file());
        let path = change.name.to_string();
        let existing = snapshot.entries.get(&path);
        match snapshot.entries.get(dir) {
            Some(e) if e.is_link() => {
                results.push(match change.oid {
                    Some(_) => Err(format!(
                        "cannot store {path}: {branch}:{dir} is {}",
                        tree::LINK
                    )),
                    // Nothing of ccsync's is there to remove.
                    None => Ok(None),
                });
                continue;
            }
            Some(e) if !e.is_tree() => {
                results.push(match change.oid {
                    Some(_) => Err(format!(
                        "cannot store {path}: {branch}:{dir} is not a folder"
                    )),
                    None => Ok(None),
                });
                continue;
            }
            _ => {}
        }
        match &change.oid {
            Some((oid, _)) if existing.is_some_and(|e| e.mode == "100644" && e.oid == *oid) => {
                let e = existing.expect("checked");
                results.push(Ok(snapshot.stamp(&path, e)));
            }
            Some((oid, size)) => {
                folders
                    .entry(dir.to_owned())
                    .or_default()
                    .insert(file.to_owned(), Some((oid.clone(), *size)));
                times.0.insert(path, (oid.clone(), now));
                results.push(Ok(Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(now))));
            }
            None if existing.is_none() => results.push(Ok(None)),
            None => {
                folders
                    .entry(dir.to_owned())
                    .or_default()
                    .insert(file.to_owned(), None);
                times.0.remove(&path);
                results.push(Ok(None));
            }
        }
    }
    // Times of objects that are gone, or are another blob now, go.
    times.0.retain(|path, (oid, _)| {
        let (dir, file) = path.split_once('/').unwrap_or((path, ""));
        match folders.get(dir).and_then(|f| f.get(file)) {
            Some(Some((new, _))) => new == oid,
            Some(None) => false,
            None => snapshot.entries.get(path).is_some_and(|e| e.oid == *oid),
        }
    });
    Plan {
        results,
        folders,
        times,
    }
}

/// `snapshot` once `built` is the tip: the changed files, the changed
/// folders' new trees, the times file.
fn after(mut snapshot: Snapshot, plan: &Plan, built: Built) -> Snapshot {
    let drop_below = |entries: &mut BTreeMap<String, tree::Entry>, path: &str| {
        let prefix = format!("{path}/");
        entries.retain(|p, _| !p.starts_with(&prefix));
    };
    for (dir, files) in &plan.folders {
        for (file, put) in files {
            let path = format!("{dir}/{file}");
            drop_below(&mut snapshot.entries, &path);
            match put {
                Some((oid, size)) => snapshot.entries.insert(path, blob(oid, *size)),
                None => snapshot.entries.remove(&path),
            };
        }
    }
    for (dir, tree) in built.folders {
        match tree {
            Some(oid) => {
                snapshot.entries.insert(
                    dir,
                    tree::Entry {
                        mode: "040000".into(),
                        kind: "tree".into(),
                        oid,
                        size: None,
                    },
                );
            }
            None => {
                drop_below(&mut snapshot.entries, &dir);
                snapshot.entries.remove(&dir);
            }
        }
    }
    let (oid, size) = built.times;
    snapshot
        .entries
        .insert(tree::TIMES_FILE.to_owned(), blob(&oid, size));
    snapshot.times = plan.times.clone();
    snapshot.tip = Some(Tip {
        commit: built.commit,
        tree: built.root,
        secs: built.secs,
        ours: true,
    });
    snapshot
}

fn blob(oid: &str, size: u64) -> tree::Entry {
    tree::Entry {
        mode: "100644".into(),
        kind: "blob".into(),
        oid: oid.to_owned(),
        size: Some(size),
    }
}

/// The entries right inside the folder `prefix` (`dir/`, or `""` for the
/// top), name → `mode type oid`, names that are not UTF-8 included as
/// they are: a commit keeps every entry it does not change.
fn children(snapshot: &Snapshot, prefix: &str) -> BTreeMap<Vec<u8>, String> {
    let named = snapshot
        .entries
        .iter()
        .map(|(p, e)| (p.as_bytes(), e))
        .chain(snapshot.raw.iter().map(|(p, e)| (p.as_slice(), e)));
    named
        .filter_map(|(p, e)| {
            let name = p.strip_prefix(prefix.as_bytes())?;
            (!name.contains(&b'/')).then(|| (name.to_vec(), e.mktree_head()))
        })
        .collect()
}

/// `git mktree -z` input for one tree: `mode type oid\tname\0` per entry.
fn mktree_input(entries: &BTreeMap<Vec<u8>, String>) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, head) in entries {
        out.extend_from_slice(head.as_bytes());
        out.push(b'\t');
        out.extend_from_slice(name);
        out.push(0);
    }
    out
}

impl GitTransport {
    /// Makes `changes` on the branch: one commit, pushed; on a push that
    /// lost a race, again on the new tip. Per change, the stamp of what
    /// is there afterwards (`None` for a removal), or why it alone failed.
    pub(super) fn apply(
        &self,
        changes: &[Change],
    ) -> Result<Vec<PerObject<Option<SystemTime>>>, TransportError> {
        // A snapshot from before this lock may be stale: it is fetched
        // again before it is trusted to say there is nothing to do.
        let mut fresh = self.snapshot.borrow().is_none();
        let mut snapshot = self.current()?;
        let started = Instant::now();
        let (mut raced, mut refused) = (0u32, 0u32);
        loop {
            if !snapshot.writable() {
                return Err(self.not_ours(&snapshot));
            }
            let plan = plan(&snapshot, changes, &self.target.branch, now_ns());
            if plan.folders.is_empty() {
                if fresh {
                    return Ok(plan.results);
                }
                snapshot = self.sync()?;
                *self.snapshot.borrow_mut() = Some(snapshot.clone());
                fresh = true;
                continue;
            }
            let compact = match &snapshot.tip {
                Some(tip) if !self.compaction_refused.get() => self.all_ours(&tip.commit)?,
                _ => false,
            };
            let built = self.commit(&snapshot, &plan, compact)?;
            let expected = snapshot.tip.as_ref().map(|t| t.commit.clone());
            match self.push(&built.commit, expected.as_deref())? {
                Pushed::Done => {
                    // The cache's ref follows at the next fetch; this run
                    // goes on from what it pushed.
                    *self.snapshot.borrow_mut() = Some(after(snapshot, &plan, built));
                    return Ok(plan.results);
                }
                Pushed::Rejected { why, remote } => {
                    snapshot = self.sync()?;
                    fresh = true;
                    let moved =
                        snapshot.tip.as_ref().map(|t| t.commit.as_str()) != expected.as_deref();
                    *self.snapshot.borrow_mut() = Some(snapshot.clone());
                    if moved {
                        // Another machine pushed first: after a pause that
                        // grows, and differs between machines, again.
                        if started.elapsed() > PUSH_TIME_LIMIT {
                            return Err(self.error(format!(
                                "other machines kept pushing to branch {} first for {} s, so this store did not land; push again",
                                self.target.branch,
                                PUSH_TIME_LIMIT.as_secs()
                            )));
                        }
                        std::thread::sleep(backoff(raced));
                        raced += 1;
                    } else if compact {
                        // The server keeps history (protected branch, or
                        // receive.denyNonFastForwards): commit on top.
                        self.compaction_refused.set(true);
                    } else if remote && refused < REMOTE_RETRIES {
                        // Another push may hold the branch's lock.
                        std::thread::sleep(backoff(3 + refused));
                        refused += 1;
                    } else {
                        return Err(self.error(format!(
                            "the server refused the push to branch {}: {why}; check that you may push to it",
                            self.target.branch
                        )));
                    }
                }
            }
        }
    }

    /// Whether the branch should start afresh: its history from `tip` to
    /// the root has reached `HISTORY_LIMIT` commits, every one ccsync's
    /// (a history with anyone else's commit in it is never rewritten).
    fn all_ours(&self, tip: &str) -> Result<bool, TransportError> {
        let most = format!("--max-count={HISTORY_READ}");
        let committers = self.git(
            "reading the branch's history",
            &["log", "--format=%ce", &most, tip],
            None,
        )?;
        let count = committers.lines().count();
        Ok(count >= HISTORY_LIMIT as usize
            && count < HISTORY_READ as usize
            && committers.lines().all(|c| c == EMAIL))
    }

    /// The error for a branch that is not ccsync's: it is never written.
    pub(super) fn not_ours(&self, snapshot: &Snapshot) -> TransportError {
        let tip = snapshot.tip.as_ref().map_or("", |t| t.commit.as_str());
        self.error(format!(
            "branch {} holds commits ccsync did not make (its tip, {}, is not a ccsync commit), so ccsync does not write to it: its history is someone's work. Use a branch of ccsync's own: `#ccsync` (the default) or another new branch name after `#`",
            self.target.branch,
            tip.get(..12).unwrap_or(tip)
        ))
    }

    /// Writes the trees and the commit for `plan` on `snapshot`'s tip (a
    /// new root when compacting).
    fn commit(
        &self,
        snapshot: &Snapshot,
        plan: &Plan,
        compact: bool,
    ) -> Result<Built, TransportError> {
        // Each changed folder: its entries, with the changes made.
        let mut built: Vec<(String, BTreeMap<Vec<u8>, String>)> = Vec::new();
        let mut emptied = Vec::new();
        for (dir, files) in &plan.folders {
            let mut entries = children(snapshot, &format!("{dir}/"));
            for (file, oid) in files {
                let file = file.as_bytes().to_vec();
                match oid {
                    Some((oid, _)) => entries.insert(file, format!("100644 blob {oid}")),
                    None => entries.remove(&file),
                };
            }
            if entries.is_empty() {
                emptied.push(dir.clone());
            } else {
                built.push((dir.clone(), entries));
            }
        }
        let mut input = Vec::new();
        for (_, entries) in &built {
            input.extend(mktree_input(entries));
            input.push(0);
        }
        let trees = if built.is_empty() {
            String::new()
        } else {
            self.git(
                "writing folders",
                &["mktree", "-z", "--batch"],
                Some(&input),
            )?
        };
        let trees: Vec<&str> = trees.lines().collect();
        if trees.len() != built.len() {
            return Err(self.error("git mktree did not write every folder"));
        }
        let rendered = plan.times.render();
        let times = self.git(
            "writing the times file",
            &["hash-object", "-w", "--stdin"],
            Some(&rendered),
        )?;
        // The top: every entry as it was (others' folders, and what is
        // not ccsync's, stay), changed folders replaced.
        let mut top = children(snapshot, "");
        for ((dir, _), oid) in built.iter().zip(&trees) {
            top.insert(dir.as_bytes().to_vec(), format!("040000 tree {oid}"));
        }
        for dir in &emptied {
            top.remove(dir.as_bytes());
        }
        top.insert(
            tree::TIMES_FILE.as_bytes().to_vec(),
            format!("100644 blob {times}"),
        );
        let root = self.git(
            "writing the tree",
            &["mktree", "-z"],
            Some(&mktree_input(&top)),
        )?;
        let who = self.owner.as_ref().map_or("ccsync", |m| m.as_str());
        let (stored, removed) =
            plan.folders
                .values()
                .flat_map(|f| f.values())
                .fold((0, 0), |(s, r), oid| {
                    if oid.is_some() {
                        (s + 1, r)
                    } else {
                        (s, r + 1)
                    }
                });
        let mut message = format!("{who}: {stored} stored, {removed} removed");
        let mut args = vec!["commit-tree", "--no-gpg-sign"];
        let parent;
        match (&snapshot.tip, compact) {
            (Some(tip), false) => {
                parent = tip.commit.clone();
                args.extend(["-p", &parent]);
            }
            (Some(_), true) => {
                message.push_str(&format!(
                    "\n\nA new root: the branch had reached {HISTORY_LIMIT} commits."
                ));
            }
            (None, _) => {}
        }
        args.extend(["-m", &message, &root]);
        // The commit's time, given, so the snapshot knows it.
        let secs = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        let date = format!("{secs} +0000");
        let mut cmd = self.git.command(&args);
        cmd.env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        let commit = self
            .git
            .run_with(cmd, None)
            .map_err(|f| self.failed("writing the commit", &f))?;
        let mut folders: Vec<(String, Option<String>)> = built
            .iter()
            .zip(&trees)
            .map(|((dir, _), oid)| (dir.clone(), Some((*oid).to_owned())))
            .collect();
        folders.extend(emptied.into_iter().map(|d| (d, None)));
        Ok(Built {
            commit: String::from_utf8_lossy(&commit).trim().to_owned(),
            root,
            secs,
            folders,
            times: (times, rendered.len() as u64),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transport::git::tree::Entry;

    fn file(oid: &str) -> Entry {
        Entry {
            mode: "100644".into(),
            kind: "blob".into(),
            oid: oid.repeat(40),
            size: Some(3),
        }
    }

    fn folder() -> Entry {
        Entry {
            mode: "040000".into(),
            kind: "tree".into(),
            oid: "f".repeat(40),
            size: None,
        }
    }

    fn name(dir: &str, file: &str) -> ObjectName {
        ObjectName::parse(dir, file).unwrap()
    }

    #[test]
    fn a_plan_changes_only_what_differs_and_refuses_links_alone() {
        let mut s = Snapshot::default();
        s.entries.insert("git=x".into(), folder());
        s.entries.insert("git=x/same.ccsync".into(), file("a"));
        s.entries.insert("git=x/old.ccsync".into(), file("b"));
        s.entries.insert("git=x/gone.ccsync".into(), file("c"));
        s.entries.insert(
            "linked".into(),
            Entry {
                mode: "120000".into(),
                ..file("d")
            },
        );
        s.times
            .0
            .insert("git=x/old.ccsync".into(), ("b".repeat(40), 5));
        s.times
            .0
            .insert("git=x/gone.ccsync".into(), ("c".repeat(40), 6));
        s.times
            .0
            .insert("git=x/same.ccsync".into(), ("a".repeat(40), 7));
        let changes = [
            Change::put(&name("git=x", "same.ccsync"), &"a".repeat(40), 3),
            Change::put(&name("git=x", "old.ccsync"), &"e".repeat(40), 3),
            Change::put(&name("linked", "a.ccsync"), &"e".repeat(40), 3),
            Change::delete(&name("git=x", "gone.ccsync")),
            Change::delete(&name("git=x", "never.ccsync")),
        ];
        let p = plan(&s, &changes, "ccsync", 99);
        assert_eq!(
            p.results[0],
            Ok(Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(7)))
        );
        assert_eq!(
            p.results[1],
            Ok(Some(SystemTime::UNIX_EPOCH + Duration::from_nanos(99)))
        );
        assert!(p.results[2].as_ref().unwrap_err().contains("symbolic link"));
        assert_eq!((&p.results[3], &p.results[4]), (&Ok(None), &Ok(None)));
        let x = &p.folders["git=x"];
        assert_eq!(x.len(), 2, "{x:?}");
        assert_eq!(x["gone.ccsync"], None);
        assert!(!p.folders.contains_key("linked"));
        assert_eq!(p.times.0["git=x/old.ccsync"], ("e".repeat(40), 99));
        assert!(!p.times.0.contains_key("git=x/gone.ccsync"));
        assert!(p.times.0.contains_key("git=x/same.ccsync"));
    }
}
