//! The git transport (`git+file://`, and `git+ssh://` through the test
//! sshd) against real bare repositories on this machine, through the
//! system git. Every git process ccsync starts is logged by a wrapper put
//! first on its PATH, so a test can count the network calls.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::env::*;
use crate::sshd::Sshd;

mod safety;

const FOLDER: &str = "git=github.com_acme_widget";
const LIMIT: usize = ccsync::transport::git::HISTORY_LIMIT as usize;

/// A bare repository, machines A and B with a checkout each, and how they
/// reach the repository.
struct Setup {
    w: World,
    bare: PathBuf,
    url: String,
    /// `CCSYNC_SSH_COMMAND`, for git+ssh.
    ssh: Option<String>,
    bin: PathBuf,
    a: Machine,
    a_repo: PathBuf,
    b: Machine,
    b_repo: PathBuf,
}

/// The committer address of ccsync's commits: another writer can use it
/// too (a commit's author is whatever it says).
const CCSYNC: &str = "ccsync@invalid";

/// git on the bare repository itself, as another writer (or the server)
/// would.
fn plumb(bare: &Path, args: &[&str], input: Option<&[u8]>) -> String {
    plumb_as(bare, "t@t", args, input)
}

/// `plumb`, committing as `email` (`ccsync@invalid`: as ccsync would).
fn plumb_as(bare: &Path, email: &str, args: &[&str], input: Option<&[u8]>) -> String {
    use std::io::Write;
    let mut child = Command::new("git")
        .args(args)
        .env("GIT_DIR", bare)
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

impl Setup {
    fn new(w: World, url_of: impl Fn(&Path) -> String, ssh: Option<String>) -> Self {
        let bare = w.root().join("srv/sync.git");
        std::fs::create_dir_all(&bare).unwrap();
        plumb(&bare, &["init", "--bare", "-q"], None);
        // Every git ccsync runs leaves a line: its arguments.
        let bin = w.root().join("bin");
        std::fs::create_dir_all(&bin).unwrap();
        let real = Command::new("sh")
            .args(["-c", "command -v git"])
            .output()
            .unwrap();
        let real = String::from_utf8(real.stdout).unwrap().trim().to_owned();
        let wrapper = bin.join("git");
        std::fs::write(
            &wrapper,
            format!(
                "#!/bin/sh\necho \"$*\" >> {}\nexec {real} \"$@\"\n",
                bin.join("log").display()
            ),
        )
        .unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let a = w.machine("a");
        let b = w.machine("b");
        let a_repo = w.checkout("a/widget", Some("git@github.com:acme/widget.git"));
        let b_repo = w.checkout("b/widget", Some("https://github.com/acme/widget"));
        let url = url_of(&bare);
        let s = Self {
            w,
            bare,
            url,
            ssh,
            bin,
            a,
            a_repo,
            b,
            b_repo,
        };
        let root = s.w.root();
        s.run(&s.a, &root, &["init", &s.url, "--name", "a"])
            .success();
        s.run(&s.b, &root, &["init", &s.url, "--name", "b"])
            .success();
        s
    }

    fn file() -> Self {
        Self::new(
            World::new(),
            |bare| format!("git+file://{}", bare.display()),
            None,
        )
    }

    fn cmd(&self, m: &Machine, cwd: &Path, args: &[&str]) -> Command {
        let mut cmd = m.std_cmd(cwd);
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut dirs = vec![self.bin.clone()];
        dirs.extend(std::env::split_paths(&path));
        cmd.env("PATH", std::env::join_paths(dirs).unwrap());
        if let Some(ssh) = &self.ssh {
            cmd.env("CCSYNC_SSH_COMMAND", ssh);
        }
        cmd.args(args);
        cmd
    }

    fn run(&self, m: &Machine, cwd: &Path, args: &[&str]) -> assert_cmd::assert::Assert {
        assert_cmd::Command::from_std(self.cmd(m, cwd, args)).assert()
    }

    /// The git calls ccsync made so far, as their arguments.
    fn git_calls(&self) -> Vec<String> {
        std::fs::read_to_string(self.bin.join("log"))
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    /// What the branch holds, by path.
    fn tree(&self) -> Vec<String> {
        plumb(
            &self.bare,
            &["ls-tree", "-r", "--name-only", "ccsync"],
            None,
        )
        .lines()
        .map(str::to_owned)
        .collect()
    }

    fn commits(&self) -> usize {
        plumb(&self.bare, &["rev-list", "--count", "ccsync"], None)
            .parse()
            .unwrap()
    }
}

/// Network calls among git calls: fetches (and ls-remote), pushes.
fn network(calls: &[String]) -> (usize, usize) {
    let has = |c: &String, word: &str| c.split_whitespace().any(|w| w == word);
    (
        calls
            .iter()
            .filter(|c| has(c, "fetch") || has(c, "ls-remote"))
            .count(),
        calls.iter().filter(|c| has(c, "push")).count(),
    )
}

fn sid(i: usize) -> String {
    format!("{i:08x}-2222-4333-8444-555555555555")
}

/// Every session moves byte for byte; a push with nothing changed is one
/// fetch and no push; an append goes up as a segment and comes down.
/// Over ssh, `server` counts the ssh processes.
fn sessions_move_byte_for_byte(s: &Setup, what: &str, server: Option<&Sshd>) {
    let n = 200;
    for i in 0..n {
        let id = sid(i);
        let tag = format!("git{i}");
        s.a.write_session(&s.a_repo, &id, &transcript(&id, &s.a_repo, 3 + i % 7, &tag));
    }
    let started = Instant::now();
    let out = s
        .run(&s.a, &s.a_repo, &["push", "--all", "--json"])
        .success();
    assert_eq!(stdout_json(&out)["pushed"].as_array().unwrap().len(), n);
    eprintln!("{what}: push of {n} sessions: {:?}", started.elapsed());

    let mut times = Vec::new();
    for _ in 0..3 {
        let before = s.git_calls().len();
        let ssh_before = server.map(Sshd::ssh_count);
        let started = Instant::now();
        let out = s
            .run(&s.a, &s.a_repo, &["push", "--all", "--json"])
            .success();
        times.push(started.elapsed());
        assert_eq!(stdout_json(&out)["unchanged"].as_array().unwrap().len(), n);
        let calls = s.git_calls()[before..].to_vec();
        assert_eq!(network(&calls), (1, 0), "{calls:#?}");
        let ssh = server.map(|server| server.ssh_count() - ssh_before.unwrap());
        assert!(ssh.is_none_or(|n| n == 1), "{ssh:?} ssh processes");
        eprintln!(
            "{what}: no-op push over {n} sessions: {} git processes, 1 fetch, no push{}",
            calls.len(),
            ssh.map_or_else(String::new, |n| format!(", {n} ssh process"))
        );
    }
    times.sort();
    eprintln!(
        "{what}: no-op push over {n} sessions: median {:?}",
        times[1]
    );

    let started = Instant::now();
    let out = s.run(&s.b, &s.b_repo, &["pull", "--json"]).success();
    assert_eq!(stdout_json(&out)["sessions"].as_array().unwrap().len(), n);
    eprintln!("{what}: pull of {n} sessions: {:?}", started.elapsed());
    for i in 0..n {
        let id = sid(i);
        assert_eq!(
            std::fs::read(s.b.transcript(&s.b_repo, &id)).unwrap(),
            std::fs::read(s.a.transcript(&s.a_repo, &id)).unwrap(),
            "{id}"
        );
    }

    // A new session goes up in one commit: one fetch, one push.
    let subcommands = |before: usize| -> Vec<String> {
        // From the subcommand on: past the leading `-c NAME=VALUE`s.
        s.git_calls()[before..]
            .iter()
            .map(|c| {
                let mut words = c.split(' ').peekable();
                while words.peek() == Some(&"-c") {
                    words.nth(1);
                }
                words.collect::<Vec<_>>().join(" ")
            })
            .collect()
    };
    let mut one = Vec::new();
    for round in 0..3 {
        let id = sid(n + round);
        let tag = format!("one more {round}");
        s.a.write_session(&s.a_repo, &id, &transcript(&id, &s.a_repo, 5, &tag));
        let before = s.git_calls().len();
        let started = Instant::now();
        s.run(&s.a, &s.a_repo, &["push", "--all"]).success();
        one.push(started.elapsed());
        let calls = subcommands(before);
        assert_eq!(network(&calls), (1, 1), "{calls:#?}");
    }
    one.sort();
    eprintln!("{what}: a 1-session push: median {:?}", one[1]);

    // A session grows: a segment goes up. (Once the segments outweigh
    // half the base, the copy goes up whole and they are removed: a
    // second commit, so a second push.)
    let id = sid(7);
    s.a.append(&s.a_repo, &id, b"{\"type\":\"user\",\"x\":1}\n");
    let before = s.git_calls().len();
    s.run(&s.a, &s.a_repo, &["push", "--all"]).success();
    let calls = subcommands(before);
    assert_eq!(network(&calls), (1, 1), "{calls:#?}");
    assert!(
        s.tree().contains(&format!("{FOLDER}/{id}-a.1.ccseg")),
        "the append went up as a segment"
    );
    s.run(&s.b, &s.b_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(s.b.transcript(&s.b_repo, &id)).unwrap(),
        std::fs::read(s.a.transcript(&s.a_repo, &id)).unwrap()
    );
    let out = s
        .run(&s.b, &s.w.root(), &["list", "--remote", "--json"])
        .success();
    let remote = stdout_json(&out);
    assert_eq!(remote.as_array().unwrap().len(), n + 3);
    assert_eq!(remote[0]["machine"], "a");
}

#[test]
fn git_file_sessions_move_byte_for_byte_and_a_noop_push_is_one_fetch() {
    let s = Setup::file();
    sessions_move_byte_for_byte(&s, "git+file", None);
    // Nothing in the branch but ccsync's: folders of objects, the claims
    // and the times file.
    for path in s.tree() {
        assert!(
            path.starts_with(&format!("{FOLDER}/"))
                || path.starts_with("machines/")
                || path == ".ccsync-times",
            "{path}"
        );
    }
}

/// Two machines push at the same moment, several times over: every
/// object of both lands, whoever lost a race fetched and pushed again.
#[test]
fn git_machines_pushing_at_once_both_land() {
    let s = Setup::file();
    let rounds = 4;
    for round in 0..rounds {
        let ids = [sid(2 * round), sid(2 * round + 1)];
        let (ta, tb) = (format!("a{round}"), format!("b{round}"));
        s.a.write_session(&s.a_repo, &ids[0], &transcript(&ids[0], &s.a_repo, 4, &ta));
        s.b.write_session(&s.b_repo, &ids[1], &transcript(&ids[1], &s.b_repo, 4, &tb));
        let mut a = s.cmd(&s.a, &s.a_repo, &["push"]).spawn().unwrap();
        let mut b = s.cmd(&s.b, &s.b_repo, &["push"]).spawn().unwrap();
        assert!(
            a.wait().unwrap().success(),
            "round {round}: a's push failed"
        );
        assert!(
            b.wait().unwrap().success(),
            "round {round}: b's push failed"
        );
        let tree = s.tree();
        for (id, m) in [(&ids[0], "a"), (&ids[1], "b")] {
            assert!(
                tree.contains(&format!("{FOLDER}/{id}-{m}.ccsync")),
                "round {round}: {id}-{m} is missing from {tree:#?}"
            );
        }
    }
    let (_, pushes) = network(&s.git_calls());
    // Two claims at init, then one push each per round, and the retries
    // of whoever lost.
    eprintln!(
        "pushes: {pushes} for {} stores (retries: {})",
        2 + 2 * rounds,
        pushes - 2 - 2 * rounds
    );
    s.run(&s.a, &s.a_repo, &["pull"]).success();
    s.run(&s.b, &s.b_repo, &["pull"]).success();
    for i in 0..2 * rounds {
        let id = sid(i);
        assert_eq!(
            std::fs::read(s.a.transcript(&s.a_repo, &id)).unwrap(),
            std::fs::read(s.b.transcript(&s.b_repo, &id)).unwrap(),
            "{id}"
        );
    }
}

/// Once the branch holds the history limit, the next push starts it
/// afresh (one root commit with the whole tree): every object stays, a
/// push made at the same moment lands too, and a pull on the other
/// machine gets every session byte for byte.
#[test]
fn git_compaction_keeps_history_bounded_and_loses_nothing() {
    let s = Setup::file();
    let ids: Vec<String> = (0..6).map(sid).collect();
    for (i, id) in ids.iter().enumerate() {
        let (m, repo) = if i % 2 == 0 {
            (&s.a, &s.a_repo)
        } else {
            (&s.b, &s.b_repo)
        };
        m.write_session(repo, id, &transcript(id, repo, 3, &format!("c{i}")));
    }
    s.run(&s.a, &s.a_repo, &["push", "--all"]).success();
    s.run(&s.b, &s.b_repo, &["push", "--all"]).success();
    // A long history, as a busy branch would have: commits that change
    // nothing, made on the server.
    let tree = plumb(&s.bare, &["rev-parse", "ccsync^{tree}"], None);
    let mut tip = plumb(&s.bare, &["rev-parse", "ccsync"], None);
    for i in 0..LIMIT {
        let m = format!("busy {i}");
        tip = plumb_as(
            &s.bare,
            CCSYNC,
            &["commit-tree", "-p", &tip, "-m", &m, &tree],
            None,
        );
    }
    plumb(&s.bare, &["update-ref", "refs/heads/ccsync", &tip], None);
    assert!(s.commits() > LIMIT);
    let before = s.tree();

    // Both push at once: one of them starts the history afresh.
    s.a.append(&s.a_repo, &ids[0], b"{\"type\":\"user\",\"x\":1}\n");
    s.b.append(&s.b_repo, &ids[1], b"{\"type\":\"user\",\"x\":2}\n");
    let mut a = s.cmd(&s.a, &s.a_repo, &["push"]).spawn().unwrap();
    let mut b = s.cmd(&s.b, &s.b_repo, &["push"]).spawn().unwrap();
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let commits = s.commits();
    assert!(commits <= 2, "history was not cut: {commits} commits");
    let after = s.tree();
    for path in &before {
        assert!(after.contains(path), "{path} was lost");
    }
    for (id, m) in [(&ids[0], "a"), (&ids[1], "b")] {
        assert!(
            after.contains(&format!("{FOLDER}/{id}-{m}.1.ccseg")),
            "{id}-{m}'s append is missing"
        );
    }
    s.run(&s.a, &s.a_repo, &["pull"]).success();
    s.run(&s.b, &s.b_repo, &["pull"]).success();
    for id in &ids {
        assert_eq!(
            std::fs::read(s.a.transcript(&s.a_repo, id)).unwrap(),
            std::fs::read(s.b.transcript(&s.b_repo, id)).unwrap(),
            "{id}"
        );
    }
    // From the new root it grows again, up to the limit.
    s.a.append(&s.a_repo, &ids[2], b"{\"type\":\"user\",\"x\":3}\n");
    s.run(&s.a, &s.a_repo, &["push"]).success();
    assert_eq!(s.commits(), commits + 1);
}

/// A repository that is not there: the error names the URL, quotes git and
/// says what to check; nothing is written.
#[test]
fn git_a_missing_repository_is_named_with_a_hint() {
    let s = Setup::file();
    let gone = s.w.root().join("srv/nope.git");
    let url = format!("git+file://{}", gone.display());
    let c = s.w.machine("c");
    let out = s
        .run(&c, &s.w.root(), &["init", &url, "--name", "c"])
        .code(1);
    let err = stderr(&out);
    assert!(err.contains(&format!("file://{}", gone.display())), "{err}");
    assert!(
        err.contains("does not appear to be a git repository"),
        "{err}"
    );
    assert!(err.contains("git init --bare"), "{err}");
    assert!(!c.cfg.join("config.toml").exists());
    assert!(!gone.exists());

    // Doctor says the same, and that the good one works.
    let out = s.run(&s.a, &s.w.root(), &["doctor", "--json"]).success();
    let checks = stdout_json(&out)["checks"].as_array().unwrap().clone();
    let get = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {checks:?}"))
            .clone()
    };
    assert!(
        get("git")["message"]
            .as_str()
            .unwrap()
            .starts_with("git version")
    );
    assert_eq!(get("connection")["status"], "ok", "{checks:?}");
    assert_eq!(get("transport")["status"], "ok", "{checks:?}");
}

fn whoami() -> String {
    let out = Command::new("id").arg("-un").output().unwrap();
    String::from_utf8(out.stdout).unwrap().trim().to_owned()
}

/// Over the test sshd, as `git+ssh://USER@127.0.0.1:PORT/path`: every
/// session moves byte for byte, a no-op push is one ssh connection, two
/// machines pushing at once both land, and a wrong path says so.
#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn git_over_ssh_sessions_move_and_concurrent_pushes_land() {
    let Some(server) = Sshd::start() else { return };
    // A client config for the address itself, as a user's might be.
    let d = server.dir.path();
    let config = server.path("git_ssh_config");
    std::fs::write(
        &config,
        format!(
            "Host 127.0.0.1\n  IdentityFile {d}/id\n  IdentitiesOnly yes\n  UserKnownHostsFile {d}/known_hosts\n  \
             GlobalKnownHostsFile /dev/null\n  StrictHostKeyChecking yes\n  PasswordAuthentication no\n",
            d = d.display()
        ),
    )
    .unwrap();
    let ssh = server.command(&config);
    let port = server.port;
    let s = Setup::new(
        World::new(),
        |bare| format!("git+ssh://{}@127.0.0.1:{port}{}", whoami(), bare.display()),
        Some(ssh),
    );
    // One ssh process per git network call: git is told it is OpenSSH,
    // so it does not probe it first.
    sessions_move_byte_for_byte(&s, "git+ssh", Some(&server));

    // Both at once, over ssh.
    let ids = [sid(900), sid(901)];
    s.a.write_session(
        &s.a_repo,
        &ids[0],
        &transcript(&ids[0], &s.a_repo, 4, "ssh a"),
    );
    s.b.write_session(
        &s.b_repo,
        &ids[1],
        &transcript(&ids[1], &s.b_repo, 4, "ssh b"),
    );
    let mut a = s.cmd(&s.a, &s.a_repo, &["push"]).spawn().unwrap();
    let mut b = s.cmd(&s.b, &s.b_repo, &["push"]).spawn().unwrap();
    assert!(a.wait().unwrap().success());
    assert!(b.wait().unwrap().success());
    let tree = s.tree();
    assert!(tree.contains(&format!("{FOLDER}/{}-a.ccsync", ids[0])));
    assert!(tree.contains(&format!("{FOLDER}/{}-b.ccsync", ids[1])));

    // A path with no repository: named, with what git (over ssh) said.
    let c = s.w.machine("c");
    let wrong = format!("git+ssh://{}@127.0.0.1:{port}/nowhere/sync.git", whoami());
    let started = Instant::now();
    let out = s
        .run(&c, &s.w.root(), &["init", &wrong, "--name", "c"])
        .code(1);
    assert!(started.elapsed() < Duration::from_secs(15));
    let err = stderr(&out);
    assert!(
        err.contains("/nowhere/sync.git") && err.contains("git ls-remote"),
        "{err}"
    );

    // A server hook that refuses a push: its words are in the error.
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let hook = s.bare.join("hooks/pre-receive");
        std::fs::write(
            &hook,
            "#!/bin/sh\necho 'File x is 123 MB; this exceeds the 100 MB limit' >&2\nexit 1\n",
        )
        .unwrap();
        std::fs::set_permissions(&hook, std::fs::Permissions::from_mode(0o755)).unwrap();
        s.a.append(&s.a_repo, &ids[0], b"{\"type\":\"user\",\"x\":9}\n");
        let out = s.run(&s.a, &s.a_repo, &["push"]).failure();
        let err = stderr(&out);
        assert!(err.contains("exceeds the 100 MB limit"), "{err}");
        std::fs::remove_file(&hook).unwrap();
    }
}
