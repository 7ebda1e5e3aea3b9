//! A branch of a git repository as sync dir (`git+ssh://`, `git+https://`,
//! `git+file://`), through the system `git`, so the user's credential
//! helpers, `~/.ssh/config` and `url.*.insteadOf` apply.
//!
//! ccsync keeps a bare clone of the branch in a private cache and works on
//! it with plumbing: a listing is one `git fetch` of the branch and a read
//! of its tree (`ls-tree`, no checkout); objects are read with one `git
//! cat-file --batch`; a store writes the blobs (`hash-object`), the folders
//! it changed and the top (`mktree`), one commit on the fetched tip
//! (`commit-tree`) and pushes it with a lease on that tip, so a push that
//! lost a race is rejected, fetched again, rebuilt on the new tip and
//! retried (`commit`). A commit is atomic: a reader sees the branch before
//! a store or after it, never a part.

mod batch;
mod cache;
mod commit;
mod push;
mod run;
mod target;
mod tree;

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

pub use commit::HISTORY_LIMIT;
pub use target::{DEFAULT_BRANCH, GitTarget};

use super::dir::too_large;
use super::{
    Listing, ObjectName, Opener, PerObject, RemoteObject, Transport, TransportError, Visitor,
};
use crate::bundle::MAX_BUNDLE_BYTES;
use crate::names::MachineName;
use run::{Failed, Git};
use tree::{Entry, Times};

/// The ref in the cache that holds the branch as last fetched.
const TIP_REF: &str = "refs/ccsync/tip";

/// The branch as last fetched: its tip, every entry of its tree, and the
/// times file.
#[derive(Debug, Clone, Default)]
struct Snapshot {
    tip: Option<Tip>,
    entries: BTreeMap<String, Entry>,
    /// Entries whose path is not UTF-8, kept as they are.
    raw: tree::Raw,
    times: Times,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Tip {
    commit: String,
    tree: String,
    /// The commit's time, seconds since the epoch.
    secs: u64,
    /// ccsync made it (its committer is ccsync's).
    ours: bool,
}

impl Snapshot {
    fn stamp(&self, path: &str, entry: &Entry) -> Option<SystemTime> {
        self.times.get(path, &entry.oid).or_else(|| {
            self.tip
                .as_ref()
                .and_then(|t| tree::fallback_time(t.secs, &entry.oid))
        })
    }

    /// Whether ccsync may commit on this branch: it is not there yet, or
    /// its tip is ccsync's (made by ccsync, with the times file). Any
    /// other branch is someone's work, never built on or rewritten.
    fn writable(&self) -> bool {
        self.tip
            .as_ref()
            .is_none_or(|t| t.ours && self.entries.contains_key(tree::TIMES_FILE))
    }

    fn listing(&self, branch: &str) -> Listing {
        tree::listing(&self.entries, branch, |p, e| self.stamp(p, e))
    }
}

pub struct GitTransport {
    target: GitTarget,
    git: Git,
    owner: Option<MachineName>,
    /// The cache, when the opener named no folder for it.
    _temp: Option<tempfile::TempDir>,
    /// Why there is no cache folder: every call fails with it.
    cache_error: Option<String>,
    /// The cache was made again this run (it was broken): not twice.
    repaired: Cell<bool>,
    snapshot: RefCell<Option<Snapshot>>,
    /// Objects over this size are refused from the listing, never read.
    max_object: u64,
    /// The server refused a rewritten history once: stores stop trying.
    compaction_refused: Cell<bool>,
    /// fetch and push calls made so far.
    network: Cell<u32>,
}

impl GitTransport {
    /// As `Location::open` makes it: the cache goes in a folder named
    /// after the URL and branch under `opener.git_cache` (or a temp dir).
    pub fn from_opener(target: GitTarget, opener: &Opener) -> Self {
        let key = crate::bundle::sha256_hex(format!("{}#{}", target.url, target.branch).as_bytes());
        // Without a cache folder, a private temp one; failing that, an
        // error at the first call (never a folder others could guess).
        let (dir, temp, cache_error) = match &opener.git_cache {
            Some(root) => (root.join(&key[..16]), None, None),
            None => match tempfile::Builder::new().prefix("ccsync-git-").tempdir() {
                Ok(t) => (t.path().join("cache"), Some(t), None),
                Err(e) => (
                    PathBuf::new(),
                    None,
                    Some(format!("cannot make a temp folder for the git cache: {e}")),
                ),
            },
        };
        // CCSYNC_SSH_COMMAND, else GIT_SSH_COMMAND, else what git would
        // run for the user (looked up when first needed).
        let ssh_base = opener.git_ssh_command.clone();
        let idle = opener
            .ssh_idle_timeout
            .unwrap_or(super::ssh::DEFAULT_IDLE_TIMEOUT);
        let author = opener
            .owner
            .as_ref()
            .map_or_else(|| "ccsync".to_owned(), |m| m.to_string());
        Self {
            git: Git::new(
                dir,
                ssh_base,
                opener.control_dir.as_deref(),
                idle.as_secs().max(1),
                author,
            ),
            target,
            owner: opener.owner.clone(),
            _temp: temp,
            cache_error,
            snapshot: RefCell::new(None),
            max_object: MAX_BUNDLE_BYTES,
            compaction_refused: Cell::new(false),
            network: Cell::new(0),
            repaired: Cell::new(false),
        }
    }

    /// Objects over `bytes` are refused (tests use a small limit; the
    /// default is the bundle limit).
    pub fn with_object_limit(self, bytes: u64) -> Self {
        Self {
            max_object: bytes,
            ..self
        }
    }

    pub fn target(&self) -> &GitTarget {
        &self.target
    }

    /// The network calls (fetch, push) made so far.
    pub fn network_calls(&self) -> u32 {
        self.network.get()
    }

    fn error(&self, message: impl Into<String>) -> TransportError {
        TransportError::Other {
            location: self.target.to_string(),
            message: message.into(),
        }
    }

    /// A failed git call as an error that says what to do.
    fn failed(&self, doing: &str, f: &Failed) -> TransportError {
        if f.no_git() {
            return self.error(
                "cannot run git: it is not installed or not on PATH; install git (ccsync runs the system git for git+ locations)",
            );
        }
        self.error(format!("{doing} failed: {}", f.said()))
    }

    /// A failed network call: the URL, what git said, and how to check.
    fn unreachable(&self, doing: &str, f: &Failed) -> TransportError {
        if f.no_git() {
            return self.failed(doing, f);
        }
        self.error(format!(
            "{doing} {} failed: {}; check the URL, that the repository exists (make one with `git init --bare`), and that `git ls-remote {}` works from here without a prompt",
            self.target.url,
            f.said(),
            self.target.url
        ))
    }

    /// `git <args>` on the cache, its output as text; failures say `doing`.
    fn git(
        &self,
        doing: &str,
        args: &[&str],
        input: Option<&[u8]>,
    ) -> Result<String, TransportError> {
        self.git
            .text(args, input)
            .map_err(|f| self.failed(doing, &f))
    }

    /// Fetches the branch into the cache and reads it: one network call.
    fn sync(&self) -> Result<Snapshot, TransportError> {
        self.network.set(self.network.get() + 1);
        let refspec = format!("+{}:{TIP_REF}", self.target.branch_ref());
        let upload_pack;
        let mut args = vec![
            "fetch",
            "--quiet",
            "--no-tags",
            "--no-write-fetch-head",
            "--no-recurse-submodules",
        ];
        if self.target.is_local() {
            upload_pack = format!("--upload-pack={}", self.git.local_pack("upload-pack"));
            args.push(&upload_pack);
        }
        args.extend([self.target.url.as_str(), &refspec]);
        let mut fetched = self.git.run(&args, None);
        if let Err(f) = &fetched
            && cache::local_failure(f)
            && self.repair()?
        {
            fetched = self.git.run(&args, None);
        }
        match fetched {
            Ok(_) => {}
            // An empty repository, or one whose branch was deleted: an
            // empty sync dir, which the first store makes.
            Err(f) if String::from_utf8_lossy(&f.stderr).contains("couldn't find remote ref") => {
                self.git(
                    "forgetting the branch",
                    &["update-ref", "-d", TIP_REF],
                    None,
                )?;
            }
            Err(f) => {
                let doing = format!("fetching branch {} of", self.target.branch);
                return Err(self.unreachable(&doing, &f));
            }
        }
        self.read_snapshot()
    }

    /// The branch as the cache holds it (no network): the tip commit and
    /// the times file through one `cat-file --batch`, the tree through
    /// `ls-tree`.
    fn read_snapshot(&self) -> Result<Snapshot, TransportError> {
        let mut objects = batch::Blobs::start(&self.git)
            .map_err(|e| self.failed("reading the branch", &Failed::spawned(e)))?;
        let bad = |e: String| self.error(format!("cannot read the branch in the git cache: {e}"));
        let Some((commit, kind, size)) = objects.ask(TIP_REF).map_err(bad)? else {
            return Ok(Snapshot::default());
        };
        if kind != "commit" {
            return Err(self.error(format!(
                "branch {} points at a {kind}, not a commit, so it is not a sync dir; delete the branch (`git push {} :{}`) or name another with `#BRANCH`",
                self.target.branch, self.target.url, self.target.branch
            )));
        }
        let text = objects.small(size, 1 << 20).map_err(bad)?;
        let tip = parse_commit(&commit, &text).ok_or_else(|| bad("an unreadable commit".into()))?;
        let out = self
            .git
            .run(
                &[
                    "ls-tree",
                    "-r",
                    "-t",
                    "-l",
                    "-z",
                    "--full-tree",
                    &tip.commit,
                ],
                None,
            )
            .map_err(|f| self.failed("reading the branch's tree", &f))?;
        let (entries, raw) = tree::parse_ls_tree(&out);
        // Advice only: an unreadable or oversized times file leaves
        // commit times.
        let times = match entries.get(tree::TIMES_FILE) {
            Some(e) if e.is_file() => match objects.ask(&e.oid) {
                Ok(Some((_, _, size))) => objects
                    .small(size, tree::TIMES_CAP)
                    .map(|b| Times::parse(&b))
                    .unwrap_or_default(),
                _ => Times::default(),
            },
            _ => Times::default(),
        };
        Ok(Snapshot {
            tip: Some(tip),
            entries,
            raw,
            times,
        })
    }

    /// The snapshot of this run, fetched if there is none yet.
    fn current(&self) -> Result<Snapshot, TransportError> {
        if let Some(s) = self.snapshot.borrow().as_ref() {
            return Ok(s.clone());
        }
        let s = self.sync()?;
        *self.snapshot.borrow_mut() = Some(s.clone());
        Ok(s)
    }

    /// `git --version`.
    pub fn version(&self) -> Result<String, TransportError> {
        self.git
            .text(&["--version"], None)
            .map_err(|f| self.failed("git --version", &f))
    }

    /// Fetches the branch (for `doctor`): how long it took, and the number
    /// of commits since its root and of objects, or `None` for a branch
    /// not made yet.
    pub fn reach(&self) -> Result<(Duration, Option<(u64, usize)>), TransportError> {
        let _lock = self.lock()?;
        let started = Instant::now();
        let snapshot = self.sync()?;
        let took = started.elapsed();
        let found = match &snapshot.tip {
            Some(tip) => Some((
                self.history(&tip.commit, None)?,
                snapshot.listing(&self.target.branch).objects.len(),
            )),
            None => None,
        };
        *self.snapshot.borrow_mut() = Some(snapshot);
        Ok((took, found))
    }

    /// Commits from `commit` back to its root, counting at most `most`.
    fn history(&self, commit: &str, most: Option<u32>) -> Result<u64, TransportError> {
        let most = most.map(|n| format!("--max-count={n}"));
        let mut args = vec!["rev-list", "--count"];
        args.extend(most.as_deref());
        args.push(commit);
        self.git("counting commits", &args, None)
            .map(|n| n.parse().unwrap_or(0))
    }
}

impl Transport for GitTransport {
    fn location(&self) -> String {
        self.target.to_string()
    }

    fn list(&self) -> Result<Listing, TransportError> {
        let _lock = self.lock()?;
        let snapshot = self.sync()?;
        let listing = snapshot.listing(&self.target.branch);
        *self.snapshot.borrow_mut() = Some(snapshot);
        Ok(listing)
    }

    fn fetch(
        &self,
        names: &[ObjectName],
        visit: &mut Visitor,
    ) -> Result<Vec<PerObject<()>>, TransportError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let snapshot = self.current()?;
        let mut blobs = None;
        let mut results = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let path = name.to_string();
            let entry = match snapshot.entries.get(&path) {
                Some(e) if e.is_file() => e,
                Some(e) if e.is_link() => {
                    results.push(Err(format!(
                        "{}:{path} is {}",
                        self.target.branch,
                        tree::LINK
                    )));
                    continue;
                }
                _ => {
                    results.push(Err(format!("{name} does not exist")));
                    continue;
                }
            };
            let size = entry.size.unwrap_or(0);
            if size > self.max_object {
                results.push(Err(too_large_for("it", size, self.max_object)));
                continue;
            }
            if blobs.is_none() {
                blobs = Some(
                    batch::Blobs::start(&self.git)
                        .map_err(|e| self.error(format!("cannot run git cat-file: {e}")))?,
                );
            }
            let reader = blobs.as_mut().expect("started above");
            results.push(reader.read(&entry.oid, size, |r| visit(i, r)));
        }
        Ok(results)
    }

    fn store(
        &self,
        objects: &[(ObjectName, PathBuf)],
    ) -> Result<Vec<PerObject<RemoteObject>>, TransportError> {
        if objects.is_empty() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let mut paths = String::new();
        let mut sizes = Vec::with_capacity(objects.len());
        for (_, local) in objects {
            let text = local
                .to_str()
                .filter(|t| !t.contains('\n'))
                .ok_or_else(|| {
                    self.error(format!(
                        "cannot store {}: its path is not plain text",
                        local.display()
                    ))
                })?;
            let size = std::fs::metadata(local)
                .map_err(|e| TransportError::Io {
                    action: "read",
                    path: local.clone(),
                    source: e,
                })?
                .len();
            paths.push_str(text);
            paths.push('\n');
            sizes.push(size);
        }
        let oids = self.git(
            "writing the objects into the git cache",
            &["hash-object", "-w", "--no-filters", "--stdin-paths"],
            Some(paths.as_bytes()),
        )?;
        let oids: Vec<&str> = oids.lines().collect();
        if oids.len() != objects.len() {
            return Err(self.error("git hash-object did not name every object"));
        }
        let changes: Vec<commit::Change> = objects
            .iter()
            .zip(oids)
            .zip(&sizes)
            .map(|(((name, _), oid), size)| commit::Change::put(name, oid, *size))
            .collect();
        let done = self.apply(&changes)?;
        Ok(objects
            .iter()
            .zip(sizes)
            .zip(done)
            .map(|(((name, _), size), done)| {
                done.map(|modified| RemoteObject {
                    name: name.clone(),
                    size,
                    modified,
                })
            })
            .collect())
    }

    fn remove(&self, names: &[ObjectName]) -> Result<Vec<PerObject<()>>, TransportError> {
        if names.is_empty() {
            return Ok(Vec::new());
        }
        let _lock = self.lock()?;
        let changes: Vec<commit::Change> = names.iter().map(commit::Change::delete).collect();
        Ok(self
            .apply(&changes)?
            .into_iter()
            .map(|r| r.map(drop))
            .collect())
    }

    /// A dry-run push: the repository is there, and the server takes this
    /// machine's credentials for a push. Nothing is written anywhere.
    fn check_writable(&self) -> Result<(), TransportError> {
        let _lock = self.lock()?;
        let snapshot = self.sync()?;
        if !snapshot.writable() {
            return Err(self.not_ours(&snapshot));
        }
        *self.snapshot.borrow_mut() = Some(snapshot);
        let commit = self.probe_commit()?;
        self.network.set(self.network.get() + 1);
        let refspec = format!("{commit}:refs/ccsync/probe");
        let receive_pack;
        let mut args = vec!["push", "--dry-run", "--porcelain", "--no-verify"];
        if self.target.is_local() {
            receive_pack = format!("--receive-pack={}", self.git.local_pack("receive-pack"));
            args.push(&receive_pack);
        }
        args.extend([self.target.url.as_str(), &refspec]);
        self.git
            .run(&args, None)
            .map(drop)
            .map_err(|f| self.unreachable("pushing to", &f))
    }
}

impl GitTransport {
    /// A commit for a dry-run push: the tip if the cache has one, else an
    /// empty one made here (never pushed).
    fn probe_commit(&self) -> Result<String, TransportError> {
        if let Some(tip) = self.read_snapshot()?.tip {
            return Ok(tip.commit);
        }
        let empty = self.git("making a probe", &["mktree"], Some(b""))?;
        self.git(
            "making a probe",
            &["commit-tree", "-m", "ccsync probe", &empty],
            None,
        )
    }
}

/// The latest commit time taken as it is: the end of year 9999. A
/// commit may say any number; past this it is taken as this.
const LATEST_SECS: u64 = 253_402_300_799;

/// The tree, committer time and committer of a commit object.
fn parse_commit(oid: &str, text: &[u8]) -> Option<Tip> {
    let text = String::from_utf8_lossy(text);
    let head = text.split("\n\n").next()?;
    let tree = head.lines().find_map(|l| l.strip_prefix("tree "))?;
    let committer = head.lines().find_map(|l| l.strip_prefix("committer "));
    let secs = committer
        .and_then(|l| l.rsplit(' ').nth(1)?.parse::<u64>().ok())
        .unwrap_or(0)
        .min(LATEST_SECS);
    let ours = committer.is_some_and(|l| l.contains(&format!("<{}>", run::EMAIL)));
    Some(Tip {
        commit: oid.to_owned(),
        tree: tree.to_owned(),
        secs,
        ours,
    })
}

/// `too_large` for a limit other than the bundle's.
fn too_large_for(what: &str, len: u64, limit: u64) -> String {
    if limit == MAX_BUNDLE_BYTES {
        too_large(what, len)
    } else {
        format!("{what} is {len} bytes, over the {limit} byte limit; it was not read")
    }
}

#[cfg(test)]
mod tests;
