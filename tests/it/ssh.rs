//! The ssh transport against a real sshd on 127.0.0.1. No other address is
//! ever contacted.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use assert_cmd::assert::Assert;
use predicates::prelude::*;

use crate::env::*;
use crate::sshd::{HOST, Sshd, free_port};

pub fn run(m: &Machine, ssh: &str, cwd: &Path, args: &[&str]) -> Assert {
    m.cmd(cwd)
        .env("CCSYNC_SSH_COMMAND", ssh)
        .args(args)
        .assert()
}

pub struct Setup {
    pub w: World,
    pub server: Sshd,
    pub ssh: String,
    pub remote: PathBuf,
    pub a: Machine,
    pub a_repo: PathBuf,
    pub b: Machine,
    pub b_repo: PathBuf,
}

/// A and B both sync through `remote` on the ssh host, named in the two
/// location forms.
pub fn setup(remote_name: &str) -> Option<Setup> {
    let server = Sshd::start()?;
    let ssh = server.command(&server.path("ssh_config"));
    let w = World::new();
    let remote = w.root().join(remote_name);
    let a = w.machine("laptop");
    let b = w.machine("desktop");
    let a_repo = w.checkout("a/widget", Some("git@github.com:acme/widget.git"));
    let b_repo = w.checkout("b/widget", Some("https://github.com/acme/widget"));
    let url = format!("ssh://{HOST}{}", remote.display());
    run(&a, &ssh, &w.root(), &["init", &url, "--name", "laptop"]).success();
    let scp = format!("{HOST}:{}", remote.display());
    run(&b, &ssh, &w.root(), &["init", &scp, "--name", "desktop"]).success();
    Some(Setup {
        w,
        server,
        ssh,
        remote,
        a,
        a_repo,
        b,
        b_repo,
    })
}

#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn push_and_pull_over_ssh() {
    let Some(s) = setup("remote sync") else {
        return;
    };
    let bytes = transcript(SID, &s.a_repo, 6, "ssh");
    s.a.write_session(&s.a_repo, SID, &bytes);
    run(&s.a, &s.ssh, &s.a_repo, &["push"])
        .success()
        .stderr(predicate::str::contains(format!(
            "to {HOST}:{}",
            s.remote.display()
        )));
    let object = s
        .remote
        .join("git=github.com_acme_widget")
        .join(format!("{SID}-laptop.ccsync"));
    assert!(object.is_file());
    #[cfg(unix)]
    {
        assert_eq!(mode(&object), 0o600);
        assert_eq!(mode(object.parent().unwrap()), 0o700);
    }
    let out = run(&s.b, &s.ssh, &s.b_repo, &["pull", "--json"]).success();
    assert_eq!(stdout_json(&out)["sessions"][0]["action"], "installed");
    assert_eq!(
        std::fs::read(s.b.transcript(&s.b_repo, SID)).unwrap(),
        bytes
    );
    let out = run(&s.b, &s.ssh, &s.w.root(), &["list", "--remote", "--json"]).success();
    assert_eq!(stdout_json(&out)[0]["machine"], "laptop");
    // No temp files left on the remote.
    assert!(
        walk(&s.remote)
            .iter()
            .all(|p| !p.file_name().unwrap().to_string_lossy().starts_with('.'))
    );
}

#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn many_sessions_take_at_most_three_ssh_processes() {
    let Some(s) = setup("many") else { return };
    let ids: Vec<String> = (0..40)
        .map(|i| format!("{i:08x}-2222-4333-8444-555555555555"))
        .collect();
    for id in &ids {
        let tag = format!("many{}", &id[..8]);
        s.a.write_session(&s.a_repo, id, &transcript(id, &s.a_repo, 10, &tag));
    }
    let before = s.server.ssh_count();
    let out = run(&s.a, &s.ssh, &s.a_repo, &["push", "--all", "--json"]).success();
    assert_eq!(stdout_json(&out)["pushed"].as_array().unwrap().len(), 40);
    let push_count = s.server.ssh_count() - before;
    assert!(push_count <= 3, "push used {push_count} ssh processes");

    // Again, with everything already there and one session grown.
    s.a.append(&s.a_repo, &ids[7], b"{\"type\":\"user\",\"x\":1}\n");
    let before = s.server.ssh_count();
    let out = run(&s.a, &s.ssh, &s.a_repo, &["push", "--all", "--json"]).success();
    let json = stdout_json(&out);
    assert_eq!(
        (
            json["pushed"].as_array().unwrap().len(),
            json["unchanged"].as_array().unwrap().len()
        ),
        (1, 39)
    );
    assert!(s.server.ssh_count() - before <= 3);

    let before = s.server.ssh_count();
    let out = run(&s.b, &s.ssh, &s.b_repo, &["pull", "--json"]).success();
    assert_eq!(stdout_json(&out)["sessions"].as_array().unwrap().len(), 40);
    let pull_count = s.server.ssh_count() - before;
    assert!(pull_count <= 3, "pull used {pull_count} ssh processes");
    for id in &ids {
        assert_eq!(
            std::fs::read(s.b.transcript(&s.b_repo, id)).unwrap(),
            std::fs::read(s.a.transcript(&s.a_repo, id)).unwrap()
        );
    }
}

#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn remote_paths_never_reach_a_shell_unquoted() {
    let Some(s) = setup("it's $(touch pwned) here; `touch pwned2` \"q\" $HOME") else {
        return;
    };
    s.a.write_session(&s.a_repo, SID, &transcript(SID, &s.a_repo, 2, "quote"));
    run(&s.a, &s.ssh, &s.a_repo, &["push"]).success();
    run(&s.b, &s.ssh, &s.b_repo, &["pull"]).success();
    assert!(s.b.transcript(&s.b_repo, SID).is_file());
    assert!(
        s.remote.join("git=github.com_acme_widget").is_dir(),
        "the literal directory was used"
    );
    let home = std::env::var_os("HOME")
        .map(PathBuf::from)
        .unwrap_or_default();
    for dir in [s.w.root(), s.a.home.clone(), s.b.home.clone(), home] {
        for name in ["pwned", "pwned2"] {
            assert!(
                !dir.join(name).exists(),
                "{} was created",
                dir.join(name).display()
            );
        }
    }
}

#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn one_folder_works_over_ssh_and_as_a_local_directory() {
    let Some(s) = setup("shared") else { return };
    // C lives on the ssh host: it uses the folder directly.
    let c = s.w.machine("server");
    let c_repo = s.w.checkout("c/widget", Some("git@github.com:acme/widget"));
    c.run(
        &s.w.root(),
        &["init", s.remote.to_str().unwrap(), "--name", "server"],
    )
    .success();

    s.a.write_session(&s.a_repo, SID, &transcript(SID, &s.a_repo, 2, "there"));
    run(&s.a, &s.ssh, &s.a_repo, &["push"]).success();
    c.run(&c_repo, &["pull"]).success();
    assert!(c.transcript(&c_repo, SID).is_file());

    c.write_session(&c_repo, SID2, &transcript(SID2, &c_repo, 2, "back"));
    c.run(&c_repo, &["push", SID2]).success();
    run(&s.a, &s.ssh, &s.a_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(s.a.transcript(&s.a_repo, SID2)).unwrap(),
        std::fs::read(c.transcript(&c_repo, SID2)).unwrap()
    );
}

#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn doctor_over_ssh() {
    let Some(s) = setup("doc") else { return };
    let out = run(&s.a, &s.ssh, &s.w.root(), &["doctor", "--json"]).success();
    let checks = stdout_json(&out)["checks"].as_array().unwrap().clone();
    let get = |name: &str| {
        checks
            .iter()
            .find(|c| c["name"] == name)
            .unwrap_or_else(|| panic!("{name}: {checks:?}"))
            .clone()
    };
    assert!(get("ssh")["message"].as_str().unwrap().contains("OpenSSH"));
    assert_eq!(get("connection")["status"], "ok");
    assert!(
        get("connection")["message"]
            .as_str()
            .unwrap()
            .contains("ms a round trip")
    );
    assert_eq!(get("transport")["status"], "ok");
    assert_eq!(get("machine")["status"], "ok");
}

/// Each failure is fast, names the host, quotes ssh, and writes nothing.
/// The machine has no open ssh connection to reuse (a fresh config dir).
fn assert_fails(s: &Setup, ssh: &str, want: &str) {
    let c = s.w.machine("fresh");
    std::fs::create_dir_all(&c.cfg).unwrap();
    std::fs::copy(s.b.cfg.join("config.toml"), c.cfg.join("config.toml")).unwrap();
    c.write_session(&s.b_repo, SID2, &transcript(SID2, &s.b_repo, 2, "mine"));
    let before = snapshot(&c.claude);
    let started = Instant::now();
    let out = run(&c, ssh, &s.b_repo, &["pull"]).code(1);
    let err = stderr(&out);
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "took {:?}",
        started.elapsed()
    );
    assert!(err.contains(HOST), "{err}");
    assert!(err.contains(want), "{want:?} not in {err}");
    assert_eq!(snapshot(&c.claude), before);
}

#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn failures_are_fast_and_clear() {
    let Some(s) = setup("fail") else { return };
    s.a.write_session(&s.a_repo, SID, &transcript(SID, &s.a_repo, 2, "f"));
    run(&s.a, &s.ssh, &s.a_repo, &["push"]).success();

    // Host down: nothing listens on the port.
    let down = s
        .server
        .write_config("down_config", free_port(), "id", "known_hosts");
    assert_fails(&s, &s.server.command(&down), "Connection refused");

    // Authentication refused: a key the server does not know.
    let stranger =
        s.server
            .write_config("stranger_config", s.server.port, "stranger", "known_hosts");
    assert_fails(&s, &s.server.command(&stranger), "Permission denied");

    // Host key mismatch: known_hosts has another key for the address.
    let other_key = std::fs::read_to_string(s.server.path("id.pub")).unwrap();
    std::fs::write(
        s.server.path("wrong_known_hosts"),
        format!("[127.0.0.1]:{} {other_key}", s.server.port),
    )
    .unwrap();
    let wrong = s
        .server
        .write_config("wrong_config", s.server.port, "id", "wrong_known_hosts");
    assert_fails(
        &s,
        &s.server.command(&wrong),
        "Host key verification failed",
    );

    // Not even an ssh binary.
    assert_fails(&s, "/nonexistent/ssh", "CCSYNC_SSH_COMMAND");
}

#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn remote_directory_missing_or_not_writable() {
    let Some(s) = setup("gone") else { return };
    std::fs::remove_dir_all(&s.remote).unwrap();
    run(&s.a, &s.ssh, &s.a_repo, &["pull"])
        .code(1)
        .stderr(predicate::str::contains("does not exist on ccsync-test"));
    assert!(!s.remote.exists(), "pull must not recreate the sync dir");
    // /proc cannot be written, even by root.
    run(
        &s.a,
        &s.ssh,
        &s.w.root(),
        &["init", &format!("{HOST}:/proc"), "--name", "laptop"],
    )
    .code(1)
    .stderr(predicate::str::contains(
        "cannot write to /proc on ccsync-test",
    ));
}
