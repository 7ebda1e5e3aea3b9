//! No line is ever lost: forks for diverged sessions, live transcripts left
//! alone, no rewinding push, the lock, and pulls killed at any moment.

use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};

use predicates::prelude::*;

use crate::env::*;

struct Setup {
    w: World,
    a: Machine,
    a_repo: PathBuf,
    b: Machine,
    b_repo: PathBuf,
}

fn setup() -> Setup {
    let w = World::new();
    let a = w.machine("laptop");
    let b = w.machine("desktop");
    let a_repo = w.checkout("a/widget", Some("git@github.com:acme/widget.git"));
    let b_repo = w.checkout("b/widget", Some("https://github.com/acme/widget"));
    a.init(&w);
    b.init(&w);
    Setup {
        w,
        a,
        a_repo,
        b,
        b_repo,
    }
}

/// A line as the client appends it in `cwd`; its text mentions the id too.
fn line(id: &str, cwd: &Path, n: &str) -> Vec<u8> {
    let cwd = serde_json::to_string(cwd.to_str().unwrap()).unwrap();
    format!("{{\"type\":\"user\",\"sessionId\":\"{id}\",\"cwd\":{cwd},\"message\":{{\"content\":\"sessionId {id} {n}\"}},\"n\":\"{n}\"}}\n").into_bytes()
}

/// Every line of `fork` is the same line of `original` with only its
/// top-level sessionId changed.
fn assert_only_session_id_changed(original: &[u8], fork: &[u8], from: &str, to: &str) {
    let (o, f): (Vec<_>, Vec<_>) = (
        original.split(|&b| b == b'\n').collect(),
        fork.split(|&b| b == b'\n').collect(),
    );
    assert_eq!(o.len(), f.len());
    for (ol, fl) in o.iter().zip(&f) {
        if ol.is_empty() {
            assert!(fl.is_empty());
            continue;
        }
        let mut ov: serde_json::Value = serde_json::from_slice(ol).unwrap();
        let fv: serde_json::Value = serde_json::from_slice(fl).unwrap();
        if ov["sessionId"] == from {
            ov["sessionId"] = to.into();
        }
        assert_eq!(ov, fv);
        // Byte-level: the same length change as the id, nothing else moved.
        assert_eq!(ol.len(), fl.len());
    }
}

#[test]
fn a_session_continued_on_both_machines_is_forked_not_lost() {
    let Setup {
        w: _w,
        a,
        a_repo,
        b,
        b_repo,
    } = setup();
    let base = transcript(SID, &a_repo, 2, "base");
    a.write_session(&a_repo, SID, &base);
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();

    a.append(&a_repo, SID, &line(SID, &a_repo, "a3"));
    b.append(&b_repo, SID, &line(SID, &b_repo, "b3"));
    let b_before = std::fs::read(b.transcript(&b_repo, SID)).unwrap();
    a.run(&a_repo, &["push"]).success();

    let out = b.run(&b_repo, &["pull", "--json"]).success();
    let json = stdout_json(&out);
    let s = &json["sessions"][0];
    assert_eq!(s["copies"][0]["verdict"], "diverged");
    assert_eq!(s["action"], "unchanged");
    let fork = &s["forks"][0];
    assert_eq!(fork["machine"], "laptop");
    assert_eq!(fork["action"], "installed");
    let fork_id = fork["sessionId"].as_str().unwrap().to_owned();
    assert_ne!(fork_id, SID);
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "this machine's branch stays {SID}, laptop's is session {fork_id}"
        )),
        "{err}"
    );
    assert!(err.contains(&format!("claude --resume {fork_id}")));

    // This machine's branch is untouched; the other is whole, renamed.
    assert_eq!(std::fs::read(b.transcript(&b_repo, SID)).unwrap(), b_before);
    let a_now = std::fs::read(a.transcript(&a_repo, SID)).unwrap();
    let forked = std::fs::read(b.transcript(&b_repo, &fork_id)).unwrap();
    assert_only_session_id_changed(&a_now, &forked, SID, &fork_id);
    // Text that merely mentions the id is not touched.
    assert!(String::from_utf8_lossy(&forked).contains(&format!("sessionId {SID} a3")));

    // Pulling again makes nothing new.
    let files_before = walk(&b.claude);
    let out = b.run(&b_repo, &["pull", "--json"]).success();
    assert_eq!(
        stdout_json(&out)["sessions"][0]["forks"][0]["action"],
        "unchanged"
    );
    assert_eq!(walk(&b.claude), files_before);

    // The other machine goes on: its fork follows.
    a.append(&a_repo, SID, &line(SID, &a_repo, "a4"));
    a.run(&a_repo, &["push"]).success();
    let out = b.run(&b_repo, &["pull", "--json"]).success();
    let fork = &stdout_json(&out)["sessions"][0]["forks"][0];
    assert_eq!(fork["sessionId"], fork_id.as_str());
    assert_eq!(fork["action"], "updated");
    let a_now = std::fs::read(a.transcript(&a_repo, SID)).unwrap();
    assert_only_session_id_changed(
        &a_now,
        &std::fs::read(b.transcript(&b_repo, &fork_id)).unwrap(),
        SID,
        &fork_id,
    );
    assert_eq!(std::fs::read(b.transcript(&b_repo, SID)).unwrap(), b_before);
}

#[test]
fn of_several_machines_the_copy_that_extends_the_others_wins() {
    let Setup {
        w,
        a,
        a_repo,
        b,
        b_repo,
    } = setup();
    let c = w.machine("tablet");
    let c_repo = w.checkout("c/widget", Some("git@github.com:acme/widget"));
    c.init(&w);
    let base = transcript(SID, &a_repo, 2, "base");
    a.write_session(&a_repo, SID, &base);
    a.run(&a_repo, &["push"]).success();
    c.run(&c_repo, &["pull"]).success();
    c.append(&c_repo, SID, &line(SID, &c_repo, "c3"));
    c.run(&c_repo, &["push"]).success();

    let out = b.run(&b_repo, &["pull", "--json"]).success();
    let s = &stdout_json(&out)["sessions"][0];
    assert_eq!(s["fromMachine"], "tablet");
    assert_eq!(
        std::fs::read(b.transcript(&b_repo, SID)).unwrap(),
        std::fs::read(c.transcript(&c_repo, SID)).unwrap()
    );
    let verdicts: Vec<_> = s["copies"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| (c["machine"].clone(), c["verdict"].clone()))
        .collect();
    assert!(
        verdicts.contains(&("laptop".into(), "contained".into())),
        "{verdicts:?}"
    );
}

#[test]
fn push_never_rewinds_this_machines_copy_without_force() {
    let Setup { w, a, a_repo, .. } = setup();
    let full = transcript(SID, &a_repo, 4, "full");
    a.write_session(&a_repo, SID, &full);
    a.run(&a_repo, &["push"]).success();
    let object = w
        .sync_dir()
        .join("git=github.com_acme_widget")
        .join(format!("{SID}-laptop.ccsync"));
    let pushed = std::fs::read(&object).unwrap();

    // Unchanged: nothing is rewritten.
    let out = a.run(&a_repo, &["push", "--json"]).success();
    assert_eq!(stdout_json(&out)["unchanged"][0], SID);
    assert_eq!(std::fs::read(&object).unwrap(), pushed);

    // Truncated here: refused, the pushed copy stays.
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "full"));
    a.run(&a_repo, &["push"]).code(1).stderr(
        predicate::str::contains("truncated or rewritten").and(predicate::str::contains("--force")),
    );
    assert_eq!(std::fs::read(&object).unwrap(), pushed);
    // --all reports it and goes on.
    a.run(&a_repo, &["push", "--all"]).code(3);
    assert_eq!(std::fs::read(&object).unwrap(), pushed);

    a.run(&a_repo, &["push", "--force"]).success();
    assert_ne!(std::fs::read(&object).unwrap(), pushed);
}

/// B pulled the session, then A added a line and pushed it.
fn b_is_one_line_behind(a: &Machine, a_repo: &Path, b: &Machine, b_repo: &Path) {
    a.write_session(a_repo, SID, &transcript(SID, a_repo, 2, "behind"));
    a.run(a_repo, &["push"]).success();
    b.run(b_repo, &["pull"]).success();
    a.append(a_repo, SID, &line(SID, a_repo, "more"));
    a.run(a_repo, &["push"]).success();
}

/// A process that holds `path` open for appending, as Claude Code does, and
/// appends through that descriptor each line it is given on stdin.
fn hold_open(path: &Path) -> Child {
    let mut child = std::process::Command::new("sh")
        .arg("-c")
        .arg("exec 3>>\"$0\"; echo ready; while read -r l; do printf '%s\\n' \"$l\" >&3; echo done; done")
        .arg(path)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut ready = [0u8; 6];
    std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
    child
}

#[cfg(target_os = "linux")]
#[test]
fn a_transcript_held_open_for_writing_is_not_replaced() {
    let Setup {
        w: _w,
        a,
        a_repo,
        b,
        b_repo,
    } = setup();
    b_is_one_line_behind(&a, &a_repo, &b, &b_repo);

    let dest = b.transcript(&b_repo, SID);
    let before = std::fs::read(&dest).unwrap();
    let mut writer = hold_open(&dest);
    let out = b.run(&b_repo, &["pull", "--json"]).code(3);
    let json = stdout_json(&out);
    assert!(
        json["sessions"][0]["held"]
            .as_str()
            .unwrap()
            .contains(&format!("process {}", writer.id()))
    );
    assert!(stderr(&out).contains("Claude Code is writing it"));
    assert_eq!(std::fs::read(&dest).unwrap(), before);

    b.run(&b_repo, &["pull", "--force"]).success();
    let pulled = std::fs::read(a.transcript(&a_repo, SID)).unwrap();
    assert_eq!(std::fs::read(&dest).unwrap(), pulled);
    // The transcript was extended in place, not replaced: what the writer
    // appends next lands in the file Claude Code reads, after the new lines.
    let next = String::from_utf8(line(SID, &b_repo, "written-after")).unwrap();
    let stdin = writer.stdin.as_mut().unwrap();
    std::io::Write::write_all(stdin, next.as_bytes()).unwrap();
    let mut done = [0u8; 5];
    std::io::Read::read_exact(writer.stdout.as_mut().unwrap(), &mut done).unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        [pulled, next.into_bytes()].concat()
    );
    writer.kill().unwrap();
    writer.wait().unwrap();
}

#[test]
fn a_transcript_modified_moments_ago_is_not_replaced() {
    let Setup {
        w: _w,
        a,
        a_repo,
        b,
        b_repo,
    } = setup();
    b_is_one_line_behind(&a, &a_repo, &b, &b_repo);
    let dest = b.transcript(&b_repo, SID);
    let before = std::fs::read(&dest).unwrap();
    b.cmd(&b_repo)
        .env("CCSYNC_LIVE_WINDOW_MS", "600000")
        .args(["pull"])
        .assert()
        .code(3)
        .stderr(predicate::str::contains("modified"));
    assert_eq!(std::fs::read(&dest).unwrap(), before);
    // A session that is not here yet is installed whatever the window.
    a.write_session(&a_repo, SID2, &transcript(SID2, &a_repo, 2, "new"));
    a.run(&a_repo, &["push", SID2]).success();
    b.cmd(&b_repo)
        .env("CCSYNC_LIVE_WINDOW_MS", "600000")
        .args(["pull", SID2])
        .assert()
        .success();
    assert!(b.transcript(&b_repo, SID2).is_file());
}

#[test]
fn a_second_ccsync_waits_its_turn() {
    let Setup {
        w: _w, a, a_repo, ..
    } = setup();
    let lock = std::fs::OpenOptions::new()
        .write(true)
        .open(a.cfg.join("ccsync.lock"))
        .unwrap();
    lock.lock().unwrap();
    for cmd in [&["pull"][..], &["push"], &["import", "x.ccsync"]] {
        a.run(&a_repo, cmd)
            .code(4)
            .stderr(predicate::str::contains("another ccsync is running"));
    }
    // Reading commands do not wait.
    a.run(&a_repo, &["list"]).success();
    drop(lock);
    a.run(&a_repo, &["pull"]).success();
}

#[test]
fn leftovers_of_a_killed_run_are_cleaned() {
    let Setup {
        w: _w, b, b_repo, ..
    } = setup();
    let dir = b.project_dir(&b_repo);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join(".ccsync-AbC123.tmp"), b"half").unwrap();
    std::fs::write(dir.join("keep.txt"), b"not ours").unwrap();
    b.run(&b_repo, &["pull"])
        .success()
        .stderr(predicate::str::contains("removed 1 temp file"));
    assert!(!dir.join(".ccsync-AbC123.tmp").exists());
    assert!(dir.join("keep.txt").exists());
}

#[test]
fn two_machines_pushing_at_once_do_not_damage_each_other() {
    let Setup {
        w,
        a,
        a_repo,
        b,
        b_repo,
    } = setup();
    let ids: Vec<String> = (0..20)
        .map(|i| format!("{i:08x}-1111-4222-8333-444444444444"))
        .collect();
    for id in &ids {
        a.write_session(&a_repo, id, &transcript(id, &a_repo, 40, "a"));
        b.write_session(&b_repo, id, &transcript(id, &b_repo, 40, "b"));
    }
    for _ in 0..5 {
        a.append(&a_repo, &ids[0], &line(&ids[0], &a_repo, "again"));
        let pa = a
            .std_cmd(&a_repo)
            .args(["push", "--all"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let pb = b
            .std_cmd(&b_repo)
            .args(["push", "--all", "--force"])
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        for push in [pa, pb] {
            let out = push.wait_with_output().unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
    }
    let dir = w.sync_dir().join("git=github.com_acme_widget");
    for (m, repo, id) in ids
        .iter()
        .flat_map(|id| [(&a, &a_repo, id), (&b, &b_repo, id)])
    {
        assert_eq!(
            read_copy(&dir, id, &m.name),
            std::fs::read(m.transcript(repo, id)).unwrap()
        );
    }
    assert!(
        std::fs::read_dir(&dir).unwrap().all(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            name.ends_with(".ccsync") || name.ends_with(".ccseg")
        }),
        "no temp files left"
    );
}

/// Kills pulls with SIGKILL at moments spread over a pull's run time: a new
/// transcript is always absent or whole; one being extended (by appending)
/// keeps every byte it had and holds nothing but a prefix of what the pull
/// leaves; the next pull finishes the job.
#[cfg(unix)]
#[test]
fn a_pull_killed_at_any_moment_loses_nothing() {
    let Setup {
        w,
        a,
        a_repo,
        b,
        b_repo,
    } = setup();
    let ids: Vec<String> = (0..12)
        .map(|i| format!("{i:08x}-aaaa-4bbb-8ccc-dddddddddddd"))
        .collect();
    let mut finals = Vec::new();
    for (i, id) in ids.iter().enumerate() {
        // Big enough that writes take a while: ~1.5 MB each.
        let bytes = transcript(id, &a_repo, 3000 + i, &format!("{i}{}", "x".repeat(400)));
        a.write_session(&a_repo, id, &bytes);
        finals.push(bytes);
    }
    a.run(&a_repo, &["push", "--all"]).success();
    // B has the first half already, shorter: pull fast-forwards those.
    let initial: Vec<Option<Vec<u8>>> = finals
        .iter()
        .enumerate()
        .map(|(i, f)| {
            (i % 2 == 0)
                .then(|| f[..ccsync::claude::transcript::complete_len(&f[..f.len() / 2])].to_vec())
        })
        .collect();
    let reset = || {
        let _ = std::fs::remove_dir_all(&b.claude);
        for (id, bytes) in ids.iter().zip(&initial) {
            if let Some(bytes) = bytes {
                b.write_session(&b_repo, id, bytes);
            }
        }
    };
    let check = |round: usize| {
        let dir = b.project_dir(&b_repo);
        for (i, id) in ids.iter().enumerate() {
            let now = std::fs::read(dir.join(format!("{id}.jsonl"))).ok();
            let between = match (&initial[i], &now) {
                (Some(was), Some(now)) => now.starts_with(was) && finals[i].starts_with(now),
                _ => false,
            };
            assert!(
                now == initial[i] || now.as_ref() == Some(&finals[i]) || between,
                "round {round}: {id} is neither as it was, nor as pulled, nor on its way"
            );
        }
        for entry in walk(&b.claude) {
            let name = entry.file_name().unwrap().to_string_lossy().into_owned();
            if name.ends_with(".jsonl") {
                assert!(
                    ids.iter().any(|id| name == format!("{id}.jsonl")),
                    "round {round}: stray {name}"
                );
            }
        }
    };

    reset();
    let started = std::time::Instant::now();
    b.run(&b_repo, &["pull"]).success();
    let full = started.elapsed();
    check(usize::MAX);

    let rounds = 25;
    let mut interrupted = 0;
    for round in 0..rounds {
        reset();
        let mut child = b
            .std_cmd(&b_repo)
            .arg("pull")
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(full * round as u32 / rounds as u32);
        let _ = child.kill(); // SIGKILL
        if !child.wait().unwrap().success() {
            interrupted += 1;
        }
        check(round);
    }
    assert!(
        interrupted >= rounds / 2,
        "only {interrupted} of {rounds} pulls were interrupted"
    );

    // The next run cleans up and finishes the job.
    b.run(&b_repo, &["pull"]).success();
    check(usize::MAX - 1);
    for (id, f) in ids.iter().zip(&finals) {
        assert_eq!(&std::fs::read(b.transcript(&b_repo, id)).unwrap(), f);
    }
    let leftovers: Vec<_> = walk(&b.claude)
        .into_iter()
        .chain(walk(&b.cfg))
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".ccsync-")
        })
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    let _ = w;
}
