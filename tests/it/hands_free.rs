//! Nobody has to remember to push: `resume` wraps the client, and hooks
//! in the client's settings push a session that ends (issue 13).

use crate::env::*;
use crate::real_client::clients;

/// The `uuid` and `parentUuid` of each line.
fn links(bytes: &[u8]) -> Vec<(String, String)> {
    bytes
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .map(|v| {
            (
                v["uuid"].as_str().unwrap_or_default().to_owned(),
                v["parentUuid"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

/// `ccsync resume` pulls before the client loads the session (the
/// client's new line follows the pulled last line), runs it where the
/// session belongs here, pushes after it exits (also when it fails), and
/// exits with the client's status.
#[test]
#[ignore = "needs the real Claude Code client: CCSYNC_TEST_CLAUDE, CCSYNC_TEST_CLAUDE_OLD (README: Tests)"]
fn resume_pulls_first_runs_the_client_and_pushes_after() {
    for (var, client) in clients() {
        let Pair {
            w: _w,
            a,
            a_repo,
            b,
            b_repo,
        } = pair();
        let full = transcript(SID, &a_repo, 6, "resumed");
        let half = ccsync::claude::transcript::complete_len(&full[..full.len() * 2 / 3]);
        a.write_session(&a_repo, SID, &full[..half]);
        a.run(&a_repo, &["push"]).success();
        b.run(&b_repo, &["pull"]).success();
        a.write_session(&a_repo, SID, &full);
        a.run(&a_repo, &["push"]).success();

        let marker = format!("continued-on-b-{var}");
        let out = b
            .cmd(&b_repo)
            .env("CCSYNC_CLAUDE", &client)
            .args(["resume", &SID[..8], "--", "-p", &marker])
            .assert();
        // The client stops for want of a login, after appending the prompt.
        let code = out.get_output().status.code();
        assert_eq!(code, Some(1), "{var}: {}", stderr(&out));
        let here = std::fs::read(b.transcript(&b_repo, SID)).unwrap();
        assert!(
            here.starts_with(&full),
            "{var}: not pulled before the client ran"
        );
        let text = String::from_utf8_lossy(&here);
        let line = text
            .lines()
            .find(|l| l.contains(&marker) && l.contains("\"type\":\"user\""))
            .unwrap_or_else(|| panic!("{var}: the client did not resume it: {}", stderr(&out)));
        let parent = serde_json::from_str::<serde_json::Value>(line).unwrap()["parentUuid"]
            .as_str()
            .unwrap()
            .to_owned();
        let last_pulled = links(&full).last().unwrap().0.clone();
        assert_eq!(
            parent, last_pulled,
            "{var}: the client continued from an older line"
        );

        // Pushed when the client exited: A gets the new line.
        a.run(&a_repo, &["pull"]).success();
        let there = std::fs::read(a.transcript(&a_repo, SID)).unwrap();
        assert!(
            String::from_utf8_lossy(&there).contains(&marker),
            "{var}: not pushed"
        );
    }
}

#[test]
fn resume_without_a_client_says_how_to_name_one() {
    let Pair {
        w: _w, a, a_repo, ..
    } = pair();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "x"));
    let out = a
        .cmd(&a_repo)
        .env("CCSYNC_CLAUDE", "/no/such/claude")
        .args(["resume"])
        .assert()
        .code(1);
    assert!(stderr(&out).contains("CCSYNC_CLAUDE"), "{}", stderr(&out));
}

/// `hooks install` merges into the user's settings (their keys, order and
/// own hooks stay), twice is once, and `uninstall` puts back the very bytes
/// that were there.
#[test]
fn hooks_install_keeps_the_users_settings_and_uninstall_restores_them_exactly() {
    let Pair {
        w: _w, a, a_repo, ..
    } = pair();
    let path = a.claude.join("settings.json");
    let users = "{\n    \"model\": \"opus\",\n    \"hooks\": {\n        \"SessionStart\": [\n            {\"matcher\": \"startup\", \"hooks\": [{\"type\": \"command\", \"command\": \"echo mine\"}]}\n        ]\n    },\n    \"permissions\": {\"allow\": [\"Bash(ls)\"]}\n}\n";
    std::fs::create_dir_all(&a.claude).unwrap();
    std::fs::write(&path, users).unwrap();
    a.run(&a_repo, &["hooks", "install"]).success();
    let once = std::fs::read(&path).unwrap();
    let out = a.run(&a_repo, &["hooks", "install"]).success();
    assert!(stderr(&out).contains("already installed"));
    assert_eq!(std::fs::read(&path).unwrap(), once, "twice is once");
    let v: serde_json::Value = serde_json::from_slice(&once).unwrap();
    let keys: Vec<&String> = v.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["model", "hooks", "permissions"]);
    assert_eq!(
        v["hooks"]["SessionStart"][0]["hooks"][0]["command"],
        "echo mine"
    );
    let ours = v["hooks"]["SessionEnd"][0]["hooks"][0]["command"]
        .as_str()
        .unwrap();
    assert!(
        ours.ends_with("hook session-end") && ours.contains("ccsync"),
        "{ours}"
    );
    let status = a.run(&a_repo, &["hooks", "status"]).success();
    let said = String::from_utf8_lossy(&status.get_output().stdout).into_owned();
    assert!(
        said.contains("SessionEnd: ") && said.contains("hook session-start"),
        "{said}"
    );

    a.run(&a_repo, &["hooks", "uninstall"]).success();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), users);

    // No settings before: none after.
    std::fs::remove_file(&path).unwrap();
    a.run(&a_repo, &["hooks", "install"]).success();
    assert!(path.is_file());
    a.run(&a_repo, &["hooks", "uninstall"]).success();
    assert!(!path.exists());
}

/// With the real clients: the SessionStart hook pulls the project's other
/// sessions but never writes the one being resumed (the client has read it
/// already: its next line follows this machine's last line), and the
/// SessionEnd hook pushes the session that ended.
#[test]
#[ignore = "needs the real Claude Code client: CCSYNC_TEST_CLAUDE, CCSYNC_TEST_CLAUDE_OLD (README: Tests)"]
fn hooks_push_a_session_that_ends_and_never_write_the_one_starting() {
    for (var, client) in clients() {
        let Pair {
            w,
            a,
            a_repo,
            b,
            b_repo,
        } = pair();
        let full = transcript(SID, &a_repo, 6, "hooked");
        let head = ccsync::claude::transcript::complete_len(&full[..full.len() * 2 / 3]);
        a.write_session(&a_repo, SID, &full[..head]);
        a.run(&a_repo, &["push"]).success();
        b.run(&b_repo, &["pull"]).success();
        a.write_session(&a_repo, SID, &full);
        a.write_session(&a_repo, SID2, &transcript(SID2, &a_repo, 2, "other"));
        a.run(&a_repo, &["push"]).success();
        b.run(&b_repo, &["hooks", "install"]).success();

        let marker = format!("under-hooks-{var}");
        let status = std::process::Command::new("timeout")
            .arg("120")
            .arg(&client)
            .args(["-p", "--resume", SID, &marker])
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &b.home)
            .env("CLAUDE_CONFIG_DIR", &b.claude)
            .env("CCSYNC_CONFIG_DIR", &b.cfg)
            .env("CCSYNC_LIVE_WINDOW_MS", "0")
            .current_dir(&b_repo)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        let here = std::fs::read(b.transcript(&b_repo, SID)).unwrap();
        let text = String::from_utf8_lossy(&here).into_owned();
        let line = text
            .lines()
            .find(|l| l.contains(&marker) && l.contains("\"type\":\"user\""))
            .unwrap_or_else(|| {
                panic!(
                    "{var}: not resumed: {}",
                    String::from_utf8_lossy(&status.stderr)
                )
            });
        let parent = serde_json::from_str::<serde_json::Value>(line).unwrap()["parentUuid"]
            .as_str()
            .unwrap()
            .to_owned();
        // The chain from the client's new line back: through this
        // machine's last line (the hook's own report may sit between), never
        // through the lines the hook left unpulled.
        let b_last = links(&full[..head]).last().unwrap().0.clone();
        let all = links(&here);
        let mut chain = vec![parent];
        while let Some((_, p)) = all.iter().find(|(u, _)| Some(u) == chain.last()) {
            if p.is_empty() || chain.len() > all.len() {
                break;
            }
            chain.push(p.clone());
        }
        assert!(
            chain.contains(&b_last),
            "{var}: the client continued from other lines: {text}"
        );
        assert!(
            !text.contains("hooked prompt 4"),
            "{var}: the SessionStart hook wrote the session being resumed"
        );
        assert!(
            b.transcript(&b_repo, SID2).is_file(),
            "{var}: the project's other session was not pulled"
        );
        // The SessionEnd hook pushed it (in the background, if slow).
        let folder = w.sync_dir().join("git=github.com_acme_widget");
        let pushed = || {
            folder.join(format!("{SID}-b.ccsync")).is_file()
                && String::from_utf8_lossy(&read_copy(&folder, SID, "b")).contains(&marker)
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline && !pushed() {
            std::thread::sleep(std::time::Duration::from_millis(100));
        }
        assert!(pushed(), "{var}: the session that ended was not pushed");
    }
}

/// The SessionStart hook says when another machine pushed newer lines of
/// the session being started (which it must not write), on stderr only:
/// a SessionStart hook's stdout becomes the model's context.
#[test]
fn the_start_hook_says_when_newer_lines_exist_elsewhere() {
    let Pair {
        w: _w,
        a,
        a_repo,
        b,
        b_repo,
    } = pair();
    let full = transcript(SID, &a_repo, 6, "newer");
    let head = ccsync::claude::transcript::complete_len(&full[..full.len() / 2]);
    a.write_session(&a_repo, SID, &full[..head]);
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();
    let input = serde_json::json!({
        "session_id": SID, "cwd": b_repo, "hook_event_name": "SessionStart", "source": "resume",
        "transcript_path": b.transcript(&b_repo, SID),
    })
    .to_string();
    let quiet = b
        .cmd(&b_repo)
        .args(["hook", "session-start"])
        .write_stdin(input.clone())
        .assert()
        .success();
    assert!(quiet.get_output().stdout.is_empty());
    assert!(stderr(&quiet).is_empty(), "{}", stderr(&quiet));

    a.write_session(&a_repo, SID, &full);
    a.run(&a_repo, &["push"]).success();
    let before = std::fs::read(b.transcript(&b_repo, SID)).unwrap();
    let out = b
        .cmd(&b_repo)
        .args(["hook", "session-start"])
        .write_stdin(input)
        .assert()
        .success();
    assert!(out.get_output().stdout.is_empty());
    let said = stderr(&out);
    assert!(
        said.contains("a pushed session") && said.contains("ccsync resume"),
        "{said}"
    );
    assert_eq!(std::fs::read(b.transcript(&b_repo, SID)).unwrap(), before);
}

/// A `ccsync watch` on each of two machines: a new session and a growing
/// one reach the other machine within seconds, both ways, and SIGTERM ends
/// each watch cleanly within a couple of seconds.
#[cfg(unix)]
#[test]
fn watch_on_two_machines_moves_sessions_within_seconds() {
    use std::time::{Duration, Instant};
    let Pair {
        w: _w,
        a,
        a_repo,
        b,
        b_repo,
    } = pair();
    // A session before the watch: it goes first.
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "early"));
    let spawn = |m: &Machine, repo: &std::path::Path| {
        m.std_cmd(repo)
            .args(["watch", "--interval", "1"])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap()
    };
    let mut wa = spawn(&a, &a_repo);
    let mut wb = spawn(&b, &b_repo);
    let arrives = |path: &std::path::Path, want: &[u8], what: &str| {
        let start = Instant::now();
        while start.elapsed() < Duration::from_secs(30) {
            if std::fs::read(path).is_ok_and(|b| b == want) {
                return start.elapsed();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("{what} did not arrive within 30 s");
    };
    let early = arrives(
        &b.transcript(&b_repo, SID),
        &transcript(SID, &a_repo, 2, "early"),
        "a session from before the watch",
    );
    // Grows on A.
    let grown = transcript(SID, &a_repo, 6, "early");
    a.write_session(&a_repo, SID, &grown);
    let growing = arrives(&b.transcript(&b_repo, SID), &grown, "a growing session");
    // New on B, to A.
    let fresh = transcript(SID2, &b_repo, 3, "fresh");
    b.write_session(&b_repo, SID2, &fresh);
    let new = arrives(&a.transcript(&a_repo, SID2), &fresh, "a new session");
    eprintln!("watch: first {early:?}, growing {growing:?}, new {new:?}");

    for (name, child) in [("a", &mut wa), ("b", &mut wb)] {
        let pid = rustix::process::Pid::from_raw(child.id() as i32).unwrap();
        rustix::process::kill_process(pid, rustix::process::Signal::TERM).unwrap();
        let start = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                start.elapsed() < Duration::from_secs(5),
                "watch {name} did not stop"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        assert!(status.success(), "watch {name} ended with {status}");
        let mut err = String::new();
        std::io::Read::read_to_string(child.stderr.as_mut().unwrap(), &mut err).unwrap();
        assert!(err.contains("stopped watching"), "{err}");
        // One line per state, not per try: no repeated lines.
        let lines: Vec<&str> = err.lines().collect();
        assert!(lines.len() < 20, "watch {name} is chatty: {err}");
    }
}

/// `watch --install` writes a user service running this binary's `watch`
/// with the environment it needs; `--uninstall` removes it. (Enabling it
/// needs a user session's service manager, absent here: said, not fatal.)
#[cfg(target_os = "linux")]
#[test]
fn watch_install_writes_a_user_unit_and_uninstall_removes_it() {
    let Pair {
        w: _w, a, a_repo, ..
    } = pair();
    let out = a.run(&a_repo, &["watch", "--install"]).success();
    let unit = a.home.join(".config/systemd/user/ccsync-watch.service");
    let text = std::fs::read_to_string(&unit).unwrap_or_else(|e| panic!("{e}: {}", stderr(&out)));
    let exe = std::fs::canonicalize(env!("CARGO_BIN_EXE_ccsync")).unwrap();
    assert!(
        text.contains(&format!("ExecStart={} watch", exe.display())),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Environment=\"CLAUDE_CONFIG_DIR={}\"",
            a.claude.display()
        )),
        "{text}"
    );
    assert!(
        text.contains(&format!(
            "Environment=\"CCSYNC_CONFIG_DIR={}\"",
            a.cfg.display()
        )),
        "{text}"
    );
    a.run(&a_repo, &["watch", "--uninstall"]).success();
    assert!(!unit.exists());
}

/// A sync dir that goes away (an unmounted drive) and comes back: the
/// watch says so once, backs off, and goes on.
#[cfg(unix)]
#[test]
fn watch_survives_a_sync_dir_that_goes_away_and_says_so_once() {
    use std::time::{Duration, Instant};
    let Pair {
        w,
        a,
        a_repo,
        b,
        b_repo,
    } = pair();
    let mut watch = a
        .std_cmd(&a_repo)
        .args(["watch", "--interval", "1"])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let away = w.root().join("unplugged");
    std::fs::rename(w.sync_dir(), &away).unwrap();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 4, "offline"));
    std::thread::sleep(Duration::from_secs(6));
    std::fs::rename(&away, w.sync_dir()).unwrap();
    // Backoff is at most 10 s by now; the session then goes out.
    let start = Instant::now();
    let object = w
        .sync_dir()
        .join(format!("git=github.com_acme_widget/{SID}-a.ccsync"));
    while !object.exists() && start.elapsed() < Duration::from_secs(30) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let pid = rustix::process::Pid::from_raw(watch.id() as i32).unwrap();
    rustix::process::kill_process(pid, rustix::process::Signal::INT).unwrap();
    assert!(watch.wait().unwrap().success());
    let mut err = String::new();
    std::io::Read::read_to_string(watch.stderr.as_mut().unwrap(), &mut err).unwrap();
    assert!(
        object.exists(),
        "not pushed once the sync dir was back: {err}"
    );
    for task in ["push", "pull"] {
        let down = err
            .lines()
            .filter(|l| l.contains(&format!("{task}: ")) && l.contains("retrying"))
            .count();
        assert!(down <= 1, "{task} said it failed {down} times: {err}");
    }
    assert!(err.contains("works again"), "{err}");
    b.run(&b_repo, &["pull"]).success();
    assert!(b.transcript(&b_repo, SID).is_file());
}

/// A machine whose client runs a session says so in the sync dir (through
/// its hooks, or its watch); another machine's pull and resume say so
/// before the session is continued there too.
#[cfg(target_os = "linux")]
#[test]
fn a_session_running_on_another_machine_is_said_before_continuing_it() {
    let Pair {
        w,
        a,
        a_repo,
        b,
        b_repo,
    } = pair();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 4, "busy"));
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();

    // A client runs it on A (its registry entry, as the real one writes it).
    let mut client = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let pid = client.id();
    let start = crate::fidelity::proc_start(pid);
    std::fs::create_dir_all(a.claude.join("sessions")).unwrap();
    std::fs::write(
        a.claude.join(format!("sessions/{pid}.json")),
        serde_json::json!({"pid": pid, "sessionId": SID, "cwd": a_repo, "startedAt": 1_795_255_200_000u64, "procStart": start, "kind": "interactive"}).to_string(),
    )
    .unwrap();
    let hook = |event: &str| {
        let input = serde_json::json!({"session_id": SID, "cwd": a_repo, "hook_event_name": event});
        a.cmd(&a_repo)
            .args([
                "hook",
                if event == "SessionStart" {
                    "session-start"
                } else {
                    "session-end"
                },
            ])
            .write_stdin(input.to_string())
            .assert()
            .success();
    };
    hook("SessionStart");
    let live = w.sync_dir().join("ccsync/live-a.json");
    let start = std::time::Instant::now();
    while !std::fs::read_to_string(&live).is_ok_and(|t| t.contains(SID))
        && start.elapsed() < std::time::Duration::from_secs(20)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(live.is_file());

    let out = b.run(&b_repo, &["pull"]).success();
    let said = stderr(&out);
    assert!(
        said.contains(&format!("session {SID} is running on a since")),
        "{said}"
    );
    let out = b
        .cmd(&b_repo)
        .env("CCSYNC_CLAUDE", "true")
        .args(["resume", SID])
        .assert()
        .success();
    let said = stderr(&out);
    let warned = said
        .find("is running on a")
        .unwrap_or_else(|| panic!("{said}"));
    assert!(
        warned < said.find("resuming").unwrap(),
        "said after starting: {said}"
    );

    // The client exits: its SessionEnd hook says so.
    client.kill().unwrap();
    client.wait().unwrap();
    hook("SessionEnd");
    // The hook leaves its work to finish on its own if slow: wait for it.
    let live = w.sync_dir().join("ccsync/live-a.json");
    let start = std::time::Instant::now();
    // (Generous: on a loaded machine the hook's push waits for the lock.)
    while std::fs::read_to_string(&live).is_ok_and(|t| t.contains(SID))
        && start.elapsed() < std::time::Duration::from_secs(60)
    {
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    assert!(
        !std::fs::read_to_string(&live).is_ok_and(|t| t.contains(SID)),
        "the SessionEnd hook did not update the presence in 60 s"
    );
    let out = b.run(&b_repo, &["pull"]).success();
    assert!(!stderr(&out).contains("is running on"), "{}", stderr(&out));
}

/// A settings file linked from elsewhere (dotfiles) is edited where it
/// is, and stays a link.
#[cfg(unix)]
#[test]
fn hooks_edit_a_linked_settings_file_in_place() {
    let Pair { w, a, a_repo, .. } = pair();
    let real = w.root().join("dotfiles/claude-settings.json");
    std::fs::create_dir_all(real.parent().unwrap()).unwrap();
    std::fs::write(&real, "{\"model\": \"opus\"}\n").unwrap();
    std::fs::create_dir_all(&a.claude).unwrap();
    let link = a.claude.join("settings.json");
    std::os::unix::fs::symlink(&real, &link).unwrap();
    a.run(&a_repo, &["hooks", "install"]).success();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert!(
        std::fs::read_to_string(&real)
            .unwrap()
            .contains("hook session-end")
    );
    a.run(&a_repo, &["hooks", "uninstall"]).success();
    assert!(
        std::fs::symlink_metadata(&link)
            .unwrap()
            .file_type()
            .is_symlink()
    );
    assert_eq!(
        std::fs::read_to_string(&real).unwrap(),
        "{\"model\": \"opus\"}\n"
    );
}
