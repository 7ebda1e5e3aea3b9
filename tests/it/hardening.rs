//! A full disk, a planted link, a killed run, a clock that ran ahead, an
//! oversized object: none of them may hurt a session or anything outside the
//! sync dir. (The ssh side of these is in `ssh_hardening.rs`.)

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::env::*;

/// `n` lines of about `width` bytes each, for session `id`.
fn lines(id: &str, cwd: &Path, n: usize, width: usize, tag: &str) -> Vec<u8> {
    transcript(id, cwd, n, &format!("{tag}{}", "x".repeat(width)))
}

/// Whether every line of `bytes` is complete JSON, as the client needs.
fn parses_as_jsonl(bytes: &[u8]) -> bool {
    bytes.ends_with(b"\n")
        && bytes
            .split(|b| *b == b'\n')
            .filter(|l| !l.is_empty())
            .all(|l| serde_json::from_slice::<serde_json::Value>(l).is_ok())
}

/// A small tmpfs, unmounted when dropped (CI runs as root).
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, size: &str) -> Option<Self> {
        std::fs::create_dir_all(at).unwrap();
        let ok = std::process::Command::new("mount")
            .args([
                "-t",
                "tmpfs",
                "-o",
                &format!("size={size},mode=0700"),
                "tmpfs",
            ])
            .arg(at)
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !ok {
            skip_or_fail("full-disk test: cannot mount a tmpfs (needs root)");
            return None;
        }
        Some(Self(at.to_path_buf()))
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// The disk fills up while pull extends a transcript by appending: the
/// append is cut back to the old length before pull returns, so the
/// client's next line still lands on a line of its own.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs root, to mount a tmpfs (README: Tests)"]
fn a_full_disk_during_an_append_leaves_the_transcript_as_it_was() {
    let p = pair();
    let Some(_disk) = Tmpfs::mount(&p.b.claude, "1m") else {
        return;
    };
    let first = lines(SID, &p.a_repo, 300, 1000, "one");
    p.a.write_session(&p.a_repo, SID, &first);
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    let before = std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap();
    assert!(before.len() > 300_000);

    // A goes on for another 1.2 MB: more than B's disk has left.
    p.a.append(&p.a_repo, SID, &lines(SID, &p.a_repo, 1200, 1000, "two"));
    p.a.run(&p.a_repo, &["push"]).success();
    let out = p.b.run(&p.b_repo, &["pull"]).code(3);
    let said = stderr(&out);
    assert!(said.contains("No space left"), "{said}");
    let after = std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap();
    assert_eq!(after.len(), before.len(), "{said}");
    assert_eq!(after, before);

    // Claude Code's next line is a line of its own.
    p.b.append(&p.b_repo, SID, b"{\"type\":\"user\",\"n\":1}\n");
    assert!(parses_as_jsonl(
        &std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap()
    ));
    assert!(!p.b.cfg.join("journal").read_dir().unwrap().any(|_| true));
}

/// Kills pulls with SIGKILL while they append (the journal's record tells
/// when that is), under umask 000: the next ccsync command, whatever it is,
/// leaves the transcript whole lines (as it was, or further on), removes the
/// killed run's staging at once, and staging was never readable by others.
#[cfg(target_os = "linux")]
#[test]
fn a_pull_killed_mid_append_is_rolled_back_by_the_next_command() {
    let p = pair();
    let base = lines(SID, &p.a_repo, 100, 1000, "base");
    p.a.write_session(&p.a_repo, SID, &base);
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    let base_here = std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap();
    // 12 MB more, in lines of 4 KB: the append takes a while.
    p.a.append(&p.a_repo, SID, &lines(SID, &p.a_repo, 3000, 4000, "more"));
    p.a.run(&p.a_repo, &["push"]).success();
    let full = std::fs::read(p.a.transcript(&p.a_repo, SID)).unwrap();

    let journal = p.b.cfg.join("journal");
    let dest = p.b.transcript(&p.b_repo, SID);
    let mut mid_append = 0;
    let mut half_lines = 0;
    let mut rounds = 0;
    while (mid_append < 4 || half_lines < 1) && rounds < 40 {
        rounds += 1;
        std::fs::write(&dest, &base_here).unwrap();
        let _ = std::fs::remove_file(p.b.cfg.join("index.json"));
        let mut child = p.b.std_cmd(&p.b_repo).spawn_via_sh(&["pull"]);
        // Wait for the record of an append under way, then kill at a
        // moment spread over the append.
        let started = Instant::now();
        let recorded = || {
            journal.read_dir().is_ok_and(|d| {
                d.flatten()
                    .any(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
        };
        while !recorded() {
            if child.try_wait().unwrap().is_some() || started.elapsed() > Duration::from_secs(60) {
                break;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
        std::thread::sleep(Duration::from_micros((rounds as u64 * 397) % 3000));
        let _ = child.kill();
        let _ = child.wait();
        let recorded = recorded();
        let now = std::fs::read(&dest).unwrap();
        if recorded && now.len() > base_here.len() {
            mid_append += 1;
            if !now.ends_with(b"\n") {
                half_lines += 1;
            }
        }
        // Staging left by the killed run is private, whatever the umask.
        for entry in std::fs::read_dir(&p.b.cfg).unwrap().flatten() {
            let path = entry.path();
            if path
                .file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".ccsync-staging-")
            {
                assert_eq!(mode(&path), 0o700, "{}", path.display());
                for file in walk(&path) {
                    let want = if file.is_dir() { 0o700 } else { 0o600 };
                    assert_eq!(mode(&file), want, "{}", file.display());
                }
            }
        }

        // The next command, even one that only reads, repairs first.
        p.b.run(&p.b_repo, &["list"]).success();
        let repaired = std::fs::read(&dest).unwrap();
        assert!(
            parses_as_jsonl(&repaired)
                && repaired.starts_with(&base_here)
                && full.starts_with(&repaired),
            "round {rounds}: {} bytes, not whole lines of what was pulled",
            repaired.len()
        );
        assert!(!journal.read_dir().is_ok_and(|mut d| d.next().is_some()));
        let staging_left = std::fs::read_dir(&p.b.cfg)
            .unwrap()
            .flatten()
            .filter(|e| {
                e.file_name()
                    .to_string_lossy()
                    .starts_with(".ccsync-staging-")
            })
            .count();
        assert_eq!(
            staging_left, 0,
            "round {rounds}: staging not removed at once"
        );
    }
    eprintln!("{rounds} rounds: {mid_append} kills mid-append, {half_lines} mid-line");
    assert!(
        mid_append >= 4 && half_lines >= 1,
        "only {mid_append} kills landed mid-append ({half_lines} mid-line) in {rounds} rounds"
    );
    // And the next pull completes the job.
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(std::fs::read(&dest).unwrap(), full);
}

/// Spawning through `sh -c 'umask 000; exec …'` with the machine's environment.
trait SpawnViaSh {
    fn spawn_via_sh(&mut self, args: &[&str]) -> std::process::Child;
}

impl SpawnViaSh for std::process::Command {
    fn spawn_via_sh(&mut self, args: &[&str]) -> std::process::Child {
        let me = self.get_program().to_owned();
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg("umask 000; exec \"$0\" \"$@\"")
            .arg(me)
            .args(args)
            .env_clear()
            .envs(self.get_envs().filter_map(|(k, v)| Some((k, v?))))
            .current_dir(self.get_current_dir().unwrap())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        cmd.spawn().unwrap()
    }
}

/// Someone who can write to the sync dir replaced a project folder and
/// `machines/` with links to folders of the victim's: push and init refuse
/// them by name, and nothing in the links' targets is written or deleted.
#[cfg(unix)]
#[test]
fn planted_links_in_a_sync_dir_are_refused_and_their_targets_untouched() {
    let p = pair();
    let outside = p.w.root().join("victim");
    std::fs::create_dir_all(&outside).unwrap();
    let old_temp = outside.join(".ccsync-a-0123.tmp");
    std::fs::write(&old_temp, b"not ccsync's").unwrap();
    std::fs::write(outside.join("notes.txt"), b"precious").unwrap();
    std::fs::File::options()
        .write(true)
        .open(&old_temp)
        .unwrap()
        .set_modified(std::time::SystemTime::now() - Duration::from_secs(7200))
        .unwrap();
    let before = snapshot(&outside);

    let project = p.w.sync_dir().join("git=github.com_acme_widget");
    let _ = std::fs::remove_dir_all(&project);
    std::os::unix::fs::symlink(&outside, &project).unwrap();
    // Another project, which is fine, moves in the same run.
    let other_repo =
        p.w.checkout("a/other", Some("git@github.com:acme/other.git"));
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 2, "w"));
    p.a.write_session(&other_repo, SID2, &transcript(SID2, &other_repo, 2, "o"));
    let out = p.a.run(&p.a_repo, &["push", "--all"]).code(3);
    let said = stderr(&out);
    assert!(
        said.contains("git=github.com_acme_widget") && said.contains("symbolic link"),
        "{said}"
    );
    assert!(
        p.w.sync_dir()
            .join("git=github.com_acme_other")
            .join(format!("{SID2}-a.ccsync"))
            .is_file()
    );
    assert_eq!(
        snapshot(&outside),
        before,
        "nothing written or deleted there"
    );

    // Pull says which entry it skipped, and why.
    let out = p.b.run(&p.b_repo, &["pull"]).code(3);
    assert!(
        stderr(&out).contains("git=github.com_acme_widget"),
        "{}",
        stderr(&out)
    );
    assert_eq!(snapshot(&outside), before);

    // `machines/` as a link: init refuses to claim a name through it.
    let machines = p.w.sync_dir().join("machines");
    std::fs::remove_dir_all(&machines).unwrap();
    std::os::unix::fs::symlink(&outside, &machines).unwrap();
    let c = p.w.machine("c");
    let out = c
        .run(
            &p.w.root(),
            &["init", p.w.sync_dir().to_str().unwrap(), "--name", "c"],
        )
        .failure();
    assert!(stderr(&out).contains("symbolic link"), "{}", stderr(&out));
    assert_eq!(snapshot(&outside), before);
}

/// One object over the size limit next to a good one: the good one arrives,
/// the big one is named with its reason and never read, exit 3.
#[test]
fn an_oversized_object_beside_a_good_one_does_not_block_the_pull() {
    let p = pair();
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 2, "ok"));
    p.a.run(&p.a_repo, &["push"]).success();
    let big =
        p.w.sync_dir()
            .join("git=github.com_acme_widget")
            .join(format!("{SID2}-c.ccsync"));
    std::fs::File::create(&big)
        .unwrap()
        .set_len(ccsync::bundle::MAX_BUNDLE_BYTES + 1)
        .unwrap();
    let out = p.b.run(&p.b_repo, &["pull", "--json"]).code(3);
    let json = stdout_json(&out);
    assert_eq!(json["sessions"].as_array().unwrap().len(), 1);
    let said = stderr(&out);
    assert!(
        said.contains(&format!("{SID2}-c.ccsync")) && said.contains("limit"),
        "{said}"
    );
    assert!(p.b.transcript(&p.b_repo, SID).is_file());
}

/// A transcript whose modification time is in the future (a clock that ran
/// ahead) is not taken as being written: pull brings it up to date and says
/// why the time looks odd.
#[test]
fn a_future_modification_time_does_not_hold_a_session_forever() {
    let p = pair();
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 2, "one"));
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    let here = p.b.transcript(&p.b_repo, SID);
    std::fs::File::options()
        .write(true)
        .open(&here)
        .unwrap()
        .set_modified(std::time::SystemTime::now() + Duration::from_secs(6 * 3600))
        .unwrap();
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 4, "one"));
    p.a.run(&p.a_repo, &["push"]).success();
    let out =
        p.b.cmd(&p.b_repo)
            .env("CCSYNC_LIVE_WINDOW_MS", "3000")
            .arg("pull")
            .assert()
            .success();
    let said = stderr(&out);
    assert!(
        said.contains("modified in the future (clock skew?)"),
        "{said}"
    );
    assert_eq!(
        std::fs::read(&here).unwrap(),
        std::fs::read(p.a.transcript(&p.a_repo, SID)).unwrap()
    );
}

/// A transcript line holding `token` inside a tool result, as Claude Code
/// writes one after `cat .env`.
fn line_with(id: &str, cwd: &Path, token: &str) -> Vec<u8> {
    format!(
        "{{\"type\":\"user\",\"uuid\":\"9\",\"sessionId\":\"{id}\",\"cwd\":{},\"message\":{{\"content\":\"AWS_ACCESS_KEY_ID={token}\\nDEBUG=1\"}}}}\n",
        serde_json::to_string(cwd.to_str().unwrap()).unwrap()
    )
    .into_bytes()
}

/// Credentials in a session are named by line and kind, never shown; the
/// bytes travel unaltered; `secrets = "refuse"` keeps the session here
/// unless `--allow-secrets`.
#[test]
fn credentials_in_a_session_are_named_and_can_be_kept_back() {
    let p = pair();
    // Built at run time, so no scanner flags this source file.
    let aws = format!("{}{}", "AKIA", "Q3TZ7WQ4RK2MN5XB");
    let github = format!("{}{}", "ghp_", "aB3dE5fG7hJ9kL1mN3pQ5rS7tU9vW1xY3z5A");
    let mut bytes = transcript(SID, &p.a_repo, 4, "ok");
    bytes.extend(line_with(SID, &p.a_repo, &aws));
    bytes.extend(transcript(SID, &p.a_repo, 2, "later"));
    bytes.extend(line_with(SID, &p.a_repo, &github));
    p.a.write_session(&p.a_repo, SID, &bytes);

    let out = p.a.run(&p.a_repo, &["push", "--json"]).success();
    let said = stderr(&out);
    assert!(
        said.contains("line 5 of") && said.contains("AWS access key ID"),
        "{said}"
    );
    assert!(
        said.contains("line 8 of") && said.contains("GitHub token"),
        "{said}"
    );
    assert!(
        !said.contains(&aws) && !said.contains(&github),
        "never the secret itself"
    );
    let json = stdout_json(&out);
    let found = &json["pushed"][0]["secrets"];
    assert_eq!(found.as_array().unwrap().len(), 2);
    assert_eq!(found[0]["line"], 5);
    assert!(!json.to_string().contains(&aws));
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap(),
        bytes
    );

    // Export says so too.
    let out =
        p.a.run(
            &p.a_repo,
            &[
                "export",
                SID,
                "-o",
                p.w.root().join("x.ccsync").to_str().unwrap(),
            ],
        )
        .success();
    assert!(stderr(&out).contains("AWS access key ID"));

    // With `secrets = "refuse"`, new lines holding a credential stay here
    // (only what was added is scanned and sent: what is there already went).
    let config = p.a.cfg.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("secrets = \"refuse\"\n");
    std::fs::write(&config, text).unwrap();
    p.a.append(&p.a_repo, SID, &transcript(SID, &p.a_repo, 2, "more"));
    p.a.append(&p.a_repo, SID, &line_with(SID, &p.a_repo, &aws));
    let folder = p.w.sync_dir().join("git=github.com_acme_widget");
    let contents = || {
        let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&folder)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap(),
                )
            })
            .collect();
        files.sort();
        files
    };
    let before = contents();
    let out = p.a.run(&p.a_repo, &["push"]).failure();
    let said = stderr(&out);
    assert!(
        said.contains("--allow-secrets")
            && said.contains("AWS access key ID")
            && said.contains("line 11 of"),
        "{said}"
    );
    assert_eq!(contents(), before, "nothing sent");
    p.a.run(&p.a_repo, &["push", "--allow-secrets"]).success();
    assert_ne!(contents(), before);
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap(),
        std::fs::read(p.a.transcript(&p.a_repo, SID)).unwrap()
    );
}

/// Temp files in the sync dir carry the machine's name and the writer's
/// process: a killed push's leftovers go with that machine's next push,
/// while another machine's fresh temp file, and one this machine's other
/// ccsync is writing right now (a hook's presence update beside its push),
/// stay.
#[cfg(unix)]
#[test]
fn a_machine_removes_its_own_leftover_temp_files_at_once() {
    let p = pair();
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 2, "one"));
    p.a.run(&p.a_repo, &["push"]).success();
    let dir = p.w.sync_dir().join("git=github.com_acme_widget");
    // From a ccsync before process ids were in the name.
    let older = dir.join(".ccsync-a-0000000000000001.tmp");
    let theirs = dir.join(".ccsync-a-2-0000000000000001.tmp");
    let mut killed = std::process::Command::new("true").spawn().unwrap();
    killed.wait().unwrap();
    let mine = dir.join(format!(".ccsync-a@{:x}-0000000000000002.tmp", killed.id()));
    let mut writer = std::process::Command::new("sleep")
        .arg("60")
        .spawn()
        .unwrap();
    let flying = [
        dir.join(format!(".ccsync-a@{:x}-0000000000000003.tmp", writer.id())),
        p.w.sync_dir().join(format!(
            "ccsync/.ccsync-a@{:x}-0000000000000004.tmp",
            writer.id()
        )),
    ];
    for f in [&older, &theirs, &mine].into_iter().chain(&flying) {
        std::fs::create_dir_all(f.parent().unwrap()).unwrap();
        std::fs::write(f, b"half a bundle").unwrap();
    }
    // Even a push with nothing to send.
    let json = stdout_json(&p.a.run(&p.a_repo, &["push", "--json"]).success());
    assert_eq!(json["pushed"], serde_json::json!([]));
    assert!(!older.exists());
    assert!(!mine.exists());
    assert!(theirs.exists());
    for f in &flying {
        assert!(f.exists(), "{} removed while its writer runs", f.display());
    }
    // Its writer gone, it is a leftover like the others.
    writer.kill().unwrap();
    writer.wait().unwrap();
    p.a.run(&p.a_repo, &["push"]).success();
    for f in &flying {
        assert!(!f.exists(), "{} kept after its writer died", f.display());
    }
}
