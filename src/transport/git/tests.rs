//! The git transport against real bare repositories on this machine
//! (`file://`), through the system git.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::*;

struct Repo {
    tmp: tempfile::TempDir,
}

impl Repo {
    fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        plumb(&tmp.path().join("r.git"), &["init", "--bare", "-q"], None);
        Self { tmp }
    }

    fn bare(&self) -> PathBuf {
        self.tmp.path().join("r.git")
    }

    fn location(&self) -> GitTarget {
        GitTarget::parse(&format!("file://{}", self.bare().display())).unwrap()
    }

    /// A machine's transport, with its own cache.
    fn machine(&self, name: &str) -> GitTransport {
        let opener = Opener {
            owner: Some(MachineName::parse(name).unwrap()),
            git_cache: Some(self.tmp.path().join(format!("cache-{name}"))),
            ..Opener::default()
        };
        GitTransport::from_opener(self.location(), &opener)
    }

    fn staged(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let path = self.tmp.path().join(name);
        std::fs::write(&path, bytes).unwrap();
        path
    }
}

/// The committer address of ccsync's commits: another writer can use it
/// too (a commit's author is whatever it says).
const CCSYNC: &str = "ccsync@invalid";

/// git on the bare repository itself, as another writer would.
fn plumb(dir: &Path, args: &[&str], input: Option<&[u8]>) -> String {
    plumb_as(dir, "t@t", args, input)
}

/// `plumb`, committing as `email` (`ccsync@invalid`: as ccsync would).
fn plumb_as(dir: &Path, email: &str, args: &[&str], input: Option<&[u8]>) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .args(args)
        .env("GIT_DIR", dir)
        .env("GIT_AUTHOR_NAME", "t")
        .env("GIT_AUTHOR_EMAIL", email)
        .env("GIT_COMMITTER_NAME", "t")
        .env("GIT_COMMITTER_EMAIL", email)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdin = child.stdin.take().unwrap();
    if let Some(bytes) = input {
        stdin.write_all(bytes).unwrap();
    }
    drop(stdin);
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "git {args:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// What a store left in memory is what fetching the branch reads.
fn same_as_fetched(t: &GitTransport) {
    let kept = t.snapshot.borrow().clone().unwrap();
    let fetched = t.sync().unwrap();
    assert_eq!(kept.tip, fetched.tip);
    assert_eq!(kept.entries, fetched.entries);
    assert_eq!(kept.times, fetched.times);
}

fn name(dir: &str, file: &str) -> ObjectName {
    ObjectName::parse(dir, file).unwrap()
}

fn read_all(t: &GitTransport, names: &[ObjectName]) -> Vec<PerObject<Vec<u8>>> {
    let mut got: Vec<Option<Vec<u8>>> = vec![None; names.len()];
    let results = t
        .fetch(names, &mut |i, r| {
            let mut b = Vec::new();
            r.read_to_end(&mut b).unwrap();
            got[i] = Some(b);
        })
        .unwrap();
    results
        .into_iter()
        .zip(got)
        .map(|(r, g)| r.map(|()| g.unwrap()))
        .collect()
}

#[test]
fn objects_round_trip_with_stable_stamps() {
    let repo = Repo::new();
    let a = repo.machine("a");
    assert!(a.list().unwrap().objects.is_empty(), "no branch yet: empty");
    a.check_writable().unwrap();
    let x = name("git=x", "1-a.ccsync");
    let y = name("machines", "a.json");
    let stored = a
        .store(&[
            (x.clone(), repo.staged("x", b"bundle x")),
            (y.clone(), repo.staged("y", b"{}")),
        ])
        .unwrap();
    let stored: Vec<RemoteObject> = stored.into_iter().map(Result::unwrap).collect();
    assert_eq!(stored[0].size, 8);
    same_as_fetched(&a);

    // Another machine, another cache: what a listing shows is what the
    // store said, stamp and all.
    let b = repo.machine("b");
    let listing = b.list().unwrap();
    let names: Vec<&ObjectName> = listing.objects.iter().map(|o| &o.name).collect();
    assert_eq!(names, [&x, &y]);
    assert_eq!(listing.objects[0].modified, stored[0].modified);
    assert_eq!(listing.objects[1].modified, stored[1].modified);
    let got = read_all(&b, &[y.clone(), name("git=x", "gone.ccsync"), x.clone()]);
    assert_eq!(got[0].as_deref(), Ok(&b"{}"[..]));
    assert!(got[1].as_ref().unwrap_err().contains("does not exist"));
    assert_eq!(got[2].as_deref(), Ok(&b"bundle x"[..]));

    // Storing the same bytes again writes no commit; a removal does.
    let commits = || plumb(&repo.bare(), &["rev-list", "--count", "ccsync"], None);
    let before = commits();
    let again = a
        .store(&[(x.clone(), repo.staged("x2", b"bundle x"))])
        .unwrap();
    assert_eq!(again[0].as_ref().unwrap().modified, stored[0].modified);
    assert_eq!(commits(), before);
    assert_eq!(b.remove(std::slice::from_ref(&x)).unwrap(), [Ok(())]);
    same_as_fetched(&b);
    let listing = a.list().unwrap();
    assert_eq!(listing.objects.len(), 1);
    assert_eq!(
        listing.objects[0].modified, stored[1].modified,
        "others keep their time"
    );
    let tree = plumb(&repo.bare(), &["ls-tree", "--name-only", "ccsync"], None);
    assert!(!tree.contains("git=x"), "an emptied folder goes: {tree}");
}

#[test]
fn machines_pushing_at_once_all_land() {
    let repo = Repo::new();
    let first = repo.machine("m0");
    first
        .store(&[(name("machines", "m0.json"), repo.staged("m0", b"0"))])
        .unwrap();
    let machines: Vec<GitTransport> = (1..5).map(|i| repo.machine(&format!("m{i}"))).collect();
    for m in &machines {
        m.list().unwrap();
    }
    // All four built on the same tip: three must fetch and rebuild.
    let calls: u32 = std::thread::scope(|s| {
        let threads: Vec<_> = machines
            .into_iter()
            .enumerate()
            .map(|(i, m)| {
                let file = repo.staged(&format!("f{i}"), format!("object {i}").as_bytes());
                s.spawn(move || {
                    let n = name("git=x", &format!("{i}-m.ccsync"));
                    m.store(&[(n, file)]).unwrap().remove(0).unwrap();
                    m.network_calls()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).sum()
    });
    let listing = first.list().unwrap();
    assert_eq!(listing.objects.len(), 5, "{:?}", listing.objects);
    assert!(calls > 4 * 2, "some pushes lost the race and were retried");
}

#[test]
fn links_climbing_names_and_oversized_objects_are_refused() {
    let repo = Repo::new();
    let a = repo.machine("a").with_object_limit(16);
    let good = name("git=x", "1-a.ccsync");
    a.store(&[(good.clone(), repo.staged("g", b"good"))])
        .unwrap();
    // Another writer plants what ccsync never writes.
    let bare = repo.bare();
    let blob = |bytes: &[u8]| plumb(&bare, &["hash-object", "-w", "--stdin"], Some(bytes));
    let small = blob(b"/etc/passwd");
    let big = blob(&[b'x'; 17]);
    let good_blob = blob(b"good");
    let times = plumb(&bare, &["rev-parse", "ccsync:.ccsync-times"], None);
    let folder = plumb(
        &bare,
        &["mktree"],
        Some(
            format!(
                "100644 blob {good_blob}\t1-a.ccsync\n120000 blob {small}\tevil.ccsync\n\
                 100644 blob {big}\tbig.ccsync\n100644 blob {small}\t..\n"
            )
            .as_bytes(),
        ),
    );
    let top = plumb(
        &bare,
        &["mktree"],
        Some(
            format!(
                "040000 tree {folder}\tgit=x\n120000 blob {small}\tgit=link\n100644 blob {times}\t.ccsync-times\n"
            )
            .as_bytes(),
        ),
    );
    let tip = plumb(&bare, &["rev-parse", "ccsync"], None);
    let commit = plumb_as(
        &bare,
        CCSYNC,
        &["commit-tree", "-p", &tip, "-m", "planted", &top],
        None,
    );
    plumb(&bare, &["update-ref", "refs/heads/ccsync", &commit], None);

    let listing = a.list().unwrap();
    let names: Vec<String> = listing.objects.iter().map(|o| o.name.to_string()).collect();
    assert_eq!(names, ["git=x/1-a.ccsync", "git=x/big.ccsync"]);
    let refused: Vec<&str> = listing.refused.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        refused,
        [
            "ccsync:git=link",
            "ccsync:git=x/..",
            "ccsync:git=x/evil.ccsync"
        ]
    );
    let got = read_all(
        &a,
        &[
            name("git=x", "big.ccsync"),
            name("git=x", "evil.ccsync"),
            good.clone(),
        ],
    );
    assert!(
        got[0]
            .as_ref()
            .unwrap_err()
            .contains("over the 16 byte limit")
    );
    assert!(got[1].as_ref().unwrap_err().contains("symbolic link"));
    assert_eq!(got[2].as_deref(), Ok(&b"good"[..]));
    // A store into the linked folder is refused alone; the rest lands,
    // and what was planted stays (it is not this machine's to drop).
    let results = a
        .store(&[
            (name("git=link", "a.ccsync"), repo.staged("l", b"l")),
            (name("git=x", "2-a.ccsync"), repo.staged("2", b"two")),
        ])
        .unwrap();
    assert!(results[0].as_ref().unwrap_err().contains("symbolic link"));
    assert_eq!(results[1].as_ref().unwrap().size, 3);
    assert_eq!(a.list().unwrap().refused.len(), 3);
}

#[test]
fn a_missing_repository_is_named_with_a_hint() {
    let repo = Repo::new();
    let target = GitTarget::parse(&format!(
        "file://{}",
        repo.tmp.path().join("nope.git").display()
    ))
    .unwrap();
    let opener = Opener {
        git_cache: Some(repo.tmp.path().join("cache")),
        ..Opener::default()
    };
    let t = GitTransport::from_opener(target, &opener);
    let e = t.list().unwrap_err().to_string();
    assert!(
        e.contains("nope.git") && e.contains("does not appear to be a git repository"),
        "{e}"
    );
    assert!(
        e.contains("git init --bare") && e.contains("git ls-remote"),
        "{e}"
    );
    let e = t.check_writable().unwrap_err().to_string();
    assert!(e.contains("nope.git"), "{e}");
}

/// The branch's tip tree, by path (names as git prints them).
fn branch_tree(repo: &Repo) -> Vec<String> {
    plumb(
        &repo.bare(),
        &["ls-tree", "-r", "--name-only", "ccsync"],
        None,
    )
    .lines()
    .map(str::to_owned)
    .collect()
}

/// A listing from before this lock is not trusted to say a store has
/// nothing to do: another machine may have removed the object since.
#[test]
fn a_store_that_looks_like_a_noop_on_a_stale_listing_fetches_again() {
    let repo = Repo::new();
    let (a, b) = (repo.machine("a"), repo.machine("b"));
    let x = name("git=x", "1-a.ccsync");
    a.store(&[(x.clone(), repo.staged("x", b"bundle x"))])
        .unwrap();
    assert_eq!(a.list().unwrap().objects.len(), 1);
    b.remove(std::slice::from_ref(&x)).unwrap();
    assert!(branch_tree(&repo).iter().all(|p| !p.contains("1-a")));
    let done = a
        .store(&[(x.clone(), repo.staged("x2", b"bundle x"))])
        .unwrap();
    assert!(done[0].is_ok());
    assert!(
        branch_tree(&repo).contains(&"git=x/1-a.ccsync".to_owned()),
        "the store said Ok: the object must be there"
    );
}

/// Another writer moves the branch every few milliseconds for seconds:
/// the store backs off and keeps trying, and lands once it stops.
#[test]
fn a_store_outlasts_a_branch_that_keeps_moving() {
    let repo = Repo::new();
    let a = repo.machine("a");
    a.store(&[(name("machines", "a.json"), repo.staged("m", b"{}"))])
        .unwrap();
    let bare = repo.bare();
    let stop = std::sync::atomic::AtomicBool::new(false);
    let x = name("git=x", "1-a.ccsync");
    std::thread::scope(|s| {
        let mover = s.spawn(|| {
            let started = std::time::Instant::now();
            let tree = plumb(&bare, &["rev-parse", "ccsync^{tree}"], None);
            let mut moves = 0;
            while started.elapsed() < Duration::from_secs(4) {
                let tip = plumb(&bare, &["rev-parse", "ccsync"], None);
                let next = plumb_as(
                    &bare,
                    CCSYNC,
                    &["commit-tree", "-p", &tip, "-m", "busy", &tree],
                    None,
                );
                plumb(&bare, &["update-ref", "refs/heads/ccsync", &next], None);
                moves += 1;
            }
            stop.store(true, std::sync::atomic::Ordering::SeqCst);
            moves
        });
        let done = a.store(&[(x.clone(), repo.staged("x", b"x"))]);
        assert!(done.is_ok(), "{done:?}");
        assert!(
            stop.load(std::sync::atomic::Ordering::SeqCst),
            "it landed only once the branch stood still"
        );
        assert!(mover.join().unwrap() > 10);
    });
    assert!(branch_tree(&repo).contains(&x.to_string()));
}

/// A push the server's side refused while the branch stayed where it was
/// (another push holds its lock) is tried again.
#[test]
fn a_push_refused_while_the_branch_is_locked_is_tried_again() {
    let repo = Repo::new();
    let a = repo.machine("a");
    a.store(&[(name("machines", "a.json"), repo.staged("m", b"{}"))])
        .unwrap();
    let lock = repo.bare().join("refs/heads/ccsync.lock");
    std::fs::write(&lock, "").unwrap();
    std::thread::scope(|s| {
        s.spawn(|| {
            std::thread::sleep(Duration::from_millis(150));
            std::fs::remove_file(&lock).unwrap();
        });
        let x = name("git=x", "1-a.ccsync");
        a.store(&[(x, repo.staged("x", b"x"))]).unwrap();
    });
    assert!(branch_tree(&repo).contains(&"git=x/1-a.ccsync".to_owned()));
}

/// Entries whose names are not UTF-8 (no object's name) stay through a
/// store into their folder and beside it.
#[test]
fn names_that_are_not_utf8_survive_a_store() {
    let repo = Repo::new();
    let a = repo.machine("a");
    a.store(&[(name("git=x", "1-a.ccsync"), repo.staged("1", b"1"))])
        .unwrap();
    let bare = repo.bare();
    let ls = |spec: &str| plumb(&bare, &["ls-tree", "-z", spec], None).into_bytes();
    let blob = plumb(&bare, &["hash-object", "-w", "--stdin"], Some(b"precious"));
    let mut folder = ls("ccsync:git=x");
    folder.extend_from_slice(format!("100644 blob {blob}\tbad").as_bytes());
    folder.extend_from_slice(b"\xff.txt\0");
    let folder = plumb(&bare, &["mktree", "-z"], Some(&folder));
    let mut top: Vec<u8> = Vec::new();
    for record in ls("ccsync").split(|b| *b == 0).filter(|r| !r.is_empty()) {
        if !record.ends_with(b"\tgit=x") {
            top.extend_from_slice(record);
            top.push(0);
        }
    }
    top.extend_from_slice(
        format!("040000 tree {folder}\tgit=x\0100644 blob {blob}\tnot-utf8-").as_bytes(),
    );
    top.extend_from_slice(b"\xfe\0");
    let top = plumb(&bare, &["mktree", "-z"], Some(&top));
    let tip = plumb(&bare, &["rev-parse", "ccsync"], None);
    let planted = plumb_as(
        &bare,
        CCSYNC,
        &["commit-tree", "-p", &tip, "-m", "p", &top],
        None,
    );
    plumb(&bare, &["update-ref", "refs/heads/ccsync", &planted], None);
    let before = branch_tree(&repo);

    a.store(&[(name("git=x", "2-a.ccsync"), repo.staged("2", b"2"))])
        .unwrap();
    let after = branch_tree(&repo);
    for path in &before {
        assert!(after.contains(path), "{path} went: {after:?}");
    }
    assert!(after.contains(&"git=x/2-a.ccsync".to_owned()));
    assert_eq!(after.len(), before.len() + 1, "{after:?}");
}

/// A history with someone else's commit in it is never cut, however long.
#[test]
fn a_history_with_others_commits_is_never_started_afresh() {
    let repo = Repo::new();
    let a = repo.machine("a");
    a.store(&[(name("git=x", "1-a.ccsync"), repo.staged("1", b"1"))])
        .unwrap();
    let bare = repo.bare();
    let tree = plumb(&bare, &["rev-parse", "ccsync^{tree}"], None);
    // The root is a user's; ccsync's commits follow, past the limit.
    let mut tip = plumb(&bare, &["commit-tree", "-m", "user's", &tree], None);
    for _ in 0..HISTORY_LIMIT + 1 {
        tip = plumb_as(
            &bare,
            CCSYNC,
            &["commit-tree", "-p", &tip, "-m", "c", &tree],
            None,
        );
    }
    plumb(&bare, &["update-ref", "refs/heads/ccsync", &tip], None);
    a.store(&[(name("git=x", "2-a.ccsync"), repo.staged("2", b"2"))])
        .unwrap();
    let count = plumb(&bare, &["rev-list", "--count", "ccsync"], None);
    assert_eq!(count, (HISTORY_LIMIT + 3).to_string());
}

/// A cache git cannot use (here made with another object format) is
/// moved aside and made again; a new cache is sha1 and private.
#[test]
fn a_broken_cache_is_made_again() {
    let repo = Repo::new();
    let b = repo.machine("b");
    b.store(&[(name("git=x", "1-b.ccsync"), repo.staged("1", b"1"))])
        .unwrap();
    let a = repo.machine("a");
    let dir = a.git.dir().to_path_buf();
    std::fs::create_dir_all(&dir).unwrap();
    plumb(
        &dir,
        &["init", "--bare", "-q", "--object-format=sha256"],
        None,
    );
    assert_eq!(a.list().unwrap().objects.len(), 1);
    a.store(&[(name("git=x", "2-a.ccsync"), repo.staged("2", b"2"))])
        .unwrap();
    // The cache's folder is named by hex digits: `<it>.broken`.
    assert!(dir.with_extension("broken").join("HEAD").exists());
    assert_eq!(
        plumb(&dir, &["rev-parse", "--show-object-format"], None),
        "sha1"
    );
    assert_eq!(
        plumb(&dir, &["config", "core.sharedRepository"], None),
        "0600"
    );
}
