//! Push and pull between simulated machines with real git checkouts.

use predicates::prelude::*;

use crate::env::*;

/// Machine A has the repo over SSH, B over HTTPS at a path with a space and
/// non-ASCII characters.
fn two_machines() -> (
    World,
    Machine,
    std::path::PathBuf,
    Machine,
    std::path::PathBuf,
) {
    let w = World::new();
    let a = w.machine("laptop");
    let b = w.machine("desktop");
    let a_repo = w.checkout("a/code/widget", Some("git@github.com:acme/widget.git"));
    let b_repo = w.checkout("b/src/wid get ü", Some("https://github.com/acme/widget"));
    a.init(&w);
    b.init(&w);
    (w, a, a_repo, b, b_repo)
}

#[test]
fn push_then_pull_installs_byte_identical_in_the_exact_dir() {
    let (w, a, a_repo, b, b_repo) = two_machines();
    let bytes = transcript(SID, &a_repo, 6, "a");
    a.write_session(&a_repo, SID, &bytes);

    let out = a.run(&a_repo, &["push", "--json"]).success();
    let json = stdout_json(&out);
    assert_eq!(json["pushed"][0]["sessionId"], SID);
    assert_eq!(
        json["pushed"][0]["projectKey"],
        "git:github.com/acme/widget"
    );
    assert_eq!(json["pushed"][0]["lines"], 6);
    assert!(stderr(&out).contains("pushed 1 session"));
    let object = w
        .sync_dir()
        .join("git=github.com_acme_widget")
        .join(format!("{SID}-laptop.ccsync"));
    assert!(object.is_file());

    let out = b.run(&b_repo, &["pull", "--json"]).success();
    let json = stdout_json(&out);
    assert_eq!(json["sessions"][0]["action"], "installed");
    assert_eq!(json["sessions"][0]["fromMachine"], "laptop");
    let dest = b.transcript(&b_repo, SID);
    assert!(
        dest.to_str().unwrap().contains("-b-src-wid-get--/"),
        "{}",
        dest.display()
    );
    assert_eq!(std::fs::read(&dest).unwrap(), bytes);
    assert_eq!(json["sessions"][0]["transcript"], dest.to_str().unwrap());
    assert!(stderr(&out).contains(&format!("claude --resume {SID}")));
    #[cfg(unix)]
    {
        assert_eq!(mode(&dest), 0o600);
        assert_eq!(mode(dest.parent().unwrap()), 0o700);
        assert_eq!(mode(&object), 0o600);
    }

    // B lists it as its own before Claude Code has written a line there.
    let out = b.run(&b_repo, &["list", "--json"]).success();
    let row = &stdout_json(&out)[0];
    assert_eq!(row["sessionId"], SID);
    assert_eq!(row["cwd"], b_repo.to_str().unwrap());
    let out = b.run(&b_repo, &["doctor", "--json"]).success();
    assert_eq!(stdout_json(&out)["untied"], serde_json::json!([]));

    // Nothing new: nothing written.
    let out = b.run(&b_repo, &["pull", "--json"]).success();
    assert_eq!(stdout_json(&out)["sessions"][0]["action"], "unchanged");
    assert!(stderr(&out).contains("pulled 0 sessions"));
}

#[test]
fn a_pull_skips_this_machines_own_files() {
    let (_w, a, a_repo, _b, _) = two_machines();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "a"));
    a.run(&a_repo, &["push"]).success();
    let out = a.run(&a_repo, &["pull", "--json"]).success();
    assert_eq!(stdout_json(&out)["sessions"], serde_json::json!([]));
}

#[test]
fn a_session_started_in_a_subdirectory_lands_in_the_same_subdirectory() {
    let (_w, a, a_repo, b, b_repo) = two_machines();
    let a_sub = a_repo.join("crates/core");
    std::fs::create_dir_all(&a_sub).unwrap();
    std::fs::create_dir_all(b_repo.join("crates/core")).unwrap();
    let bytes = transcript(SID, &a_sub, 4, "sub");
    a.write_session(&a_sub, SID, &bytes);

    // Pushing from the checkout root finds the subdirectory's session.
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();
    let dest = b.transcript(&b_repo.join("crates/core"), SID);
    assert_eq!(std::fs::read(dest).unwrap(), bytes);
}

#[test]
fn dotted_and_long_checkout_paths() {
    let w = World::new();
    let a = w.machine("a");
    let b = w.machine("b");
    let a_repo = w.checkout("a/my.app", Some("ssh://git@github.com:22/acme/my.app.git"));
    let long_rel = format!(
        "b/{}/my.app",
        "deep-directory-name/".repeat(12).trim_end_matches('/')
    );
    let b_repo = w.checkout(&long_rel, Some("https://github.com/acme/my.app"));
    assert!(b_repo.to_str().unwrap().len() > 200);
    a.init(&w);
    b.init(&w);
    assert!(
        a.project_dir(&a_repo)
            .to_str()
            .unwrap()
            .ends_with("-a-my-app")
    );

    let bytes = transcript(SID, &a_repo, 3, "long");
    a.write_session(&a_repo, SID, &bytes);
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();
    let name = ccsync::claude::dirname::encode(b_repo.to_str().unwrap());
    assert_eq!(name.len(), 200 + 1 + name.rsplit('-').next().unwrap().len());
    let dest = b
        .claude
        .join("projects")
        .join(&name)
        .join(format!("{SID}.jsonl"));
    assert_eq!(std::fs::read(dest).unwrap(), bytes);
}

#[test]
fn a_long_path_reuses_the_folder_an_older_client_made() {
    let w = World::new();
    let a = w.machine("a");
    let b = w.machine("b");
    let a_repo = w.checkout("a/app", Some("git@example.org:team/app.git"));
    let b_repo = w.checkout(
        &format!("b/{}", "x".repeat(230)),
        Some("git@example.org:team/app.git"),
    );
    a.init(&w);
    b.init(&w);
    // An older client gave this checkout's folder another hash suffix.
    let prefix = ccsync::claude::dirname::long_prefix(b_repo.to_str().unwrap()).unwrap();
    let older = b.claude.join("projects").join(format!("{prefix}oldhash"));
    std::fs::create_dir_all(&older).unwrap();
    std::fs::write(
        older.join(format!("{SID2}.jsonl")),
        transcript(SID2, &b_repo, 1, "old"),
    )
    .unwrap();

    let bytes = transcript(SID, &a_repo, 2, "a");
    a.write_session(&a_repo, SID, &bytes);
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(older.join(format!("{SID}.jsonl"))).unwrap(),
        bytes
    );
    assert_eq!(
        std::fs::read_dir(b.claude.join("projects"))
            .unwrap()
            .count(),
        1
    );
}

#[test]
fn only_complete_lines_travel() {
    let (_w, a, a_repo, b, b_repo) = two_machines();
    let complete = transcript(SID, &a_repo, 2, "a");
    let mut bytes = complete.clone();
    bytes.extend_from_slice(b"{\"type\":\"user\",\"mess");
    a.write_session(&a_repo, SID, &bytes);
    a.run(&a_repo, &["push"])
        .success()
        .stderr(predicate::str::contains("left behind the last 20 B"));
    b.run(&b_repo, &["pull"]).success();
    assert_eq!(std::fs::read(b.transcript(&b_repo, SID)).unwrap(), complete);
    // The source is untouched.
    assert_eq!(std::fs::read(a.transcript(&a_repo, SID)).unwrap(), bytes);
}

#[test]
fn pull_fast_forwards_a_prefix_and_leaves_a_continued_session_alone() {
    let (_w, a, a_repo, b, b_repo) = two_machines();
    let base = transcript(SID, &a_repo, 2, "a");
    a.write_session(&a_repo, SID, &base);
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();

    // A goes on; B follows.
    a.append(&a_repo, SID, b"{\"type\":\"user\",\"n\":3}\n");
    a.run(&a_repo, &["push"]).success();
    let out = b.run(&b_repo, &["pull", "--json"]).success();
    assert_eq!(stdout_json(&out)["sessions"][0]["action"], "updated");
    let after_ff = std::fs::read(a.transcript(&a_repo, SID)).unwrap();
    assert_eq!(std::fs::read(b.transcript(&b_repo, SID)).unwrap(), after_ff);

    // B goes on: A's copy is behind, B keeps its own.
    b.append(&b_repo, SID, b"{\"type\":\"user\",\"n\":\"b4\"}\n");
    let b_bytes = std::fs::read(b.transcript(&b_repo, SID)).unwrap();
    let out = b.run(&b_repo, &["pull", "--json"]).success();
    assert_eq!(
        stdout_json(&out)["sessions"][0]["copies"][0]["verdict"],
        "local-ahead"
    );
    assert!(stderr(&out).contains("ccsync push"));
    assert_eq!(std::fs::read(b.transcript(&b_repo, SID)).unwrap(), b_bytes);

    // Both went on: B's transcript is not replaced.
    a.append(&a_repo, SID, b"{\"type\":\"user\",\"n\":\"a4\"}\n");
    a.run(&a_repo, &["push"]).success();
    let out = b.run(&b_repo, &["pull", "--json"]).success();
    assert_eq!(
        stdout_json(&out)["sessions"][0]["copies"][0]["verdict"],
        "diverged"
    );
    assert!(stderr(&out).contains("continued both here and on laptop"));
    assert_eq!(std::fs::read(b.transcript(&b_repo, SID)).unwrap(), b_bytes);
}

#[test]
fn push_all_and_pull_all_for_projects_known_from_transcripts() {
    let w = World::new();
    let a = w.machine("a");
    let b = w.machine("b");
    let a_widget = w.checkout("a/widget", Some("git@github.com:acme/widget.git"));
    let a_gadget = w.checkout("a/gadget", Some("git@github.com:acme/gadget.git"));
    let b_widget = w.checkout("b/w", Some("https://github.com/acme/widget.git"));
    let b_gadget = w.checkout("b/g", Some("https://github.com/acme/gadget.git"));
    a.init(&w);
    b.init(&w);
    a.write_session(&a_widget, SID, &transcript(SID, &a_widget, 2, "w"));
    a.write_session(&a_gadget, SID2, &transcript(SID2, &a_gadget, 2, "g"));
    let out = a.run(&w.root(), &["push", "--all", "--json"]).success();
    assert_eq!(stdout_json(&out)["pushed"].as_array().unwrap().len(), 2);

    // B used Claude Code in its widget checkout before, never in gadget.
    let earlier = "11111111-2222-4333-8444-555555555555";
    b.write_session(&b_widget, earlier, &transcript(earlier, &b_widget, 1, "b"));
    let out = b.run(&w.root(), &["pull", "--all", "--json"]).success();
    let sessions = stdout_json(&out)["sessions"].as_array().unwrap().clone();
    assert_eq!(sessions.len(), 1, "only the known project: {sessions:?}");
    assert!(b.transcript(&b_widget, SID).is_file());
    assert!(!b.transcript(&b_gadget, SID2).exists());

    // Pulling once in the gadget checkout makes it known.
    b.run(&b_gadget, &["pull"]).success();
    assert!(b.transcript(&b_gadget, SID2).is_file());
    b.run(&w.root(), &["pull", "--all"])
        .success()
        .stderr(predicate::str::contains("2 unchanged"));
}

#[test]
fn pull_one_session_by_id() {
    let (w, a, a_repo, b, b_repo) = two_machines();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "1"));
    a.write_session(&a_repo, SID2, &transcript(SID2, &a_repo, 2, "2"));
    a.run(&a_repo, &["push", "--all"]).success();
    b.run(&b_repo, &["pull", SID2]).success();
    assert!(b.transcript(&b_repo, SID2).is_file());
    assert!(!b.transcript(&b_repo, SID).exists());
    b.run(&w.root(), &["pull", "0b7a1c2d-0000-4000-8000-000000000000"])
        .failure()
        .stderr(predicate::str::contains("is not in"));
}

#[test]
fn push_takes_an_id_prefix_in_any_case() {
    let (w, a, a_repo, _b, _) = two_machines();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "old"));
    a.write_session(&a_repo, SID2, &transcript(SID2, &a_repo, 2, "new"));
    let out = a.run(&w.root(), &["push", "5C03", "--json"]).success();
    let json = stdout_json(&out);
    assert_eq!(json["pushed"][0]["sessionId"], SID);
    assert_eq!(json["pushed"].as_array().unwrap().len(), 1);
    a.run(&w.root(), &["push", "ffff"])
        .failure()
        .stderr(predicate::str::contains("no session \"ffff\""));
    a.run(&w.root(), &["push"])
        .failure()
        .stderr(predicate::str::contains("no session of project"));
}

#[test]
fn export_and_import_work_without_init() {
    let w = World::new();
    let a = w.machine("a");
    let b = w.machine("b");
    let a_repo = w.checkout("a/app", Some("git@github.com:acme/app.git"));
    let b_repo = w.checkout("b/app", Some("git@github.com:acme/app.git"));
    let bytes = transcript(SID, &a_repo, 5, "x");
    a.write_session(&a_repo, SID, &bytes);

    let out = a.run(&a_repo, &["export", "-o", "-"]).success();
    let bundle = out.get_output().stdout.clone();
    assert!(bundle.starts_with(b"{\"_schemaVersion\":4,"));
    let file = w.root().join("s.ccsync");
    std::fs::write(&file, &bundle).unwrap();
    b.run(
        &w.root(),
        &[
            "import",
            file.to_str().unwrap(),
            "--cwd",
            b_repo.to_str().unwrap(),
        ],
    )
    .success();
    assert_eq!(std::fs::read(b.transcript(&b_repo, SID)).unwrap(), bytes);

    // Default output file, and import from inside the checkout.
    a.run(&a_repo, &["export", SID]).success();
    let default = a_repo.join(format!("{SID}.ccsync"));
    assert!(default.is_file());
    b.run(&b_repo, &["import", default.to_str().unwrap()])
        .success()
        .stderr(predicate::str::contains("already up to date"));
}

#[test]
fn files_that_are_not_sessions_are_skipped_not_fatal() {
    let (w, a, a_repo, _b, _) = two_machines();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "ok"));
    let dir = a.project_dir(&a_repo);
    std::fs::write(dir.join("notes.jsonl"), "{\"hello\":1}").unwrap();
    std::fs::write(
        dir.join(format!("{SID2}.jsonl")),
        "{\"type\":\"summary\"}\n",
    )
    .unwrap();
    let out = a.run(&w.root(), &["list", "--json"]).success();
    assert_eq!(stdout_json(&out).as_array().unwrap().len(), 1);
    assert!(stderr(&out).contains("2 files skipped"));
    let out = a.run(&w.root(), &["push", "--all", "--json"]).success();
    assert_eq!(stdout_json(&out)["pushed"].as_array().unwrap().len(), 1);
    a.run(&w.root(), &["push", SID2])
        .failure()
        .stderr(predicate::str::contains("cannot be moved"));
    let out = a.run(&w.root(), &["doctor", "--json"]).success();
    assert_eq!(stdout_json(&out)["untied"].as_array().unwrap().len(), 2);
}

#[test]
fn credentials_in_remote_urls_never_leave_the_repo() {
    let w = World::new();
    let a = w.machine("a");
    let repo = w.checkout(
        "a/app",
        Some("https://user:ghp_SECRET123@github.com/acme/app.git"),
    );
    a.init(&w);
    a.write_session(&repo, SID, &transcript(SID, &repo, 2, "s"));
    let mut output = Vec::new();
    for args in [
        &["push", "--json"][..],
        &["list", "--json"],
        &["list", "--remote"],
        &["doctor", "--json"],
    ] {
        let out = a.run(&repo, args).success();
        output.extend_from_slice(&out.get_output().stdout);
        output.extend_from_slice(&out.get_output().stderr);
    }
    assert!(String::from_utf8_lossy(&output).contains("git:github.com/acme/app"));
    for (path, bytes) in snapshot(&w.sync_dir()).into_iter().chain(snapshot(&a.cfg)) {
        let text = String::from_utf8_lossy(&bytes);
        assert!(
            !text.contains("SECRET") && !path.to_string_lossy().contains("SECRET"),
            "{}",
            path.display()
        );
    }
    assert!(!String::from_utf8_lossy(&output).contains("SECRET"));
}

#[test]
fn list_shows_sessions_and_the_remote() {
    let (w, a, a_repo, b, _) = two_machines();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 4, "list"));
    let out = a.run(&w.root(), &["list", "--json"]).success();
    let row = &stdout_json(&out)[0];
    assert_eq!(row["sessionId"], SID);
    assert_eq!(row["projectKey"], "git:github.com/acme/widget");
    assert_eq!(row["cwd"], a_repo.to_str().unwrap());
    assert_eq!(row["lines"], 4);
    assert_eq!(row["firstPrompt"], "list prompt 0 with ü and 日本");
    a.run(&w.root(), &["list"])
        .success()
        .stdout(predicate::str::contains(SID));
    a.run(&a_repo, &["push"]).success();
    let out = b.run(&w.root(), &["list", "--remote", "--json"]).success();
    let row = &stdout_json(&out)[0];
    assert_eq!(row["machine"], "laptop");
    assert_eq!(row["projectKey"], "git:github.com/acme/widget");
}

#[test]
fn init_validates_names_and_guards_a_claimed_name() {
    let w = World::new();
    let a = w.machine("twin");
    let b = w.machine("second-box");
    let b2 = w.machine("third-box");
    a.init(&w);
    a.init(&w); // again: updates, keeps its claim
    a.run(
        &w.root(),
        &["init", w.sync_dir().to_str().unwrap(), "--name", "a/b"],
    )
    .failure()
    .stderr(predicate::str::contains("machine name \"a/b\""));
    // Another machine may not take the name silently...
    b.run(
        &w.root(),
        &["init", w.sync_dir().to_str().unwrap(), "--name", "twin"],
    )
    .failure()
    .stderr(predicate::str::contains("already taken"));
    // ...and when forced, doctor on the first says why pulls would be empty.
    b.run(
        &w.root(),
        &[
            "init",
            w.sync_dir().to_str().unwrap(),
            "--name",
            "twin",
            "--force",
        ],
    )
    .success();
    let out = a.run(&w.root(), &["doctor", "--json"]).code(1);
    let checks = stdout_json(&out)["checks"].clone();
    let machine = checks
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == "machine")
        .unwrap();
    assert_eq!(machine["status"], "fail");
    assert!(
        machine["message"]
            .as_str()
            .unwrap()
            .contains("another machine also calls itself twin")
    );
    // A name differing only by case is flagged too.
    b2.run(
        &w.root(),
        &["init", w.sync_dir().to_str().unwrap(), "--name", "TWIN"],
    )
    .success();
    b2.run(&w.root(), &["doctor"])
        .success()
        .stdout(predicate::str::contains("only by case"));
}

#[test]
fn doctor_reports_setup_and_missing_paths() {
    let (w, a, a_repo, _b, _) = two_machines();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "d"));
    a.run(&a_repo, &["push"]).success();
    let out = a.run(&w.root(), &["doctor"]).success();
    let text = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(text.contains("[ok  ] transport"), "{text}");
    assert!(text.contains(&format!(
        "project git:github.com/acme/widget -> {}",
        a_repo.display()
    )));

    std::fs::rename(&a_repo, w.root().join("a/code/moved")).unwrap();
    let out = a.run(&w.root(), &["doctor", "--json"]).success();
    let json = stdout_json(&out);
    let project = &json["projects"][0];
    assert_eq!(project["exists"], false);
    assert!(
        json["checks"]
            .as_array()
            .unwrap()
            .iter()
            .any(|c| c["name"] == "paths" && c["status"] == "warn")
    );

    let fresh = w.machine("fresh");
    fresh
        .run(&w.root(), &["doctor"])
        .code(1)
        .stdout(predicate::str::contains("ccsync init"));
}

#[test]
fn a_missing_sync_dir_is_not_recreated() {
    let (w, a, a_repo, _b, _) = two_machines();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "m"));
    std::fs::rename(w.sync_dir(), w.root().join("unplugged")).unwrap();
    a.run(&a_repo, &["push"])
        .failure()
        .stderr(predicate::str::contains("does not exist").and(predicate::str::contains("mount")));
    assert!(!w.sync_dir().exists());
}

#[test]
fn not_initialised_says_what_to_do() {
    let w = World::new();
    let a = w.machine("a");
    a.run(&w.root(), &["push"])
        .code(1)
        .stderr(predicate::str::contains("ccsync init"));
    a.run(&w.root(), &["pull"])
        .code(1)
        .stderr(predicate::str::contains("ccsync init"));
    a.run(&w.root(), &["bogus"]).code(2);
}

#[test]
fn progress_only_on_a_terminal() {
    let (w, a, a_repo, _b, _) = two_machines();
    for i in 0..30 {
        let id = format!("{i:08x}-9999-4999-8999-999999999999");
        a.write_session(&a_repo, &id, &transcript(&id, &a_repo, 2, "p"));
    }
    // A pipe: status lines only, no bar, no control characters.
    let out = a.run(&a_repo, &["push", "--all"]).success();
    let err = stderr(&out);
    assert!(
        !err.contains('\r') && !err.contains('\u{1b}') && !err.contains("pushing"),
        "{err:?}"
    );

    // A terminal (a pseudo-terminal from `script`): a bar is drawn.
    if std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_err()
    {
        return skip_or_fail("progress on a terminal: `script` (util-linux) is not installed");
    }
    a.append(
        &a_repo,
        "00000000-9999-4999-8999-999999999999",
        b"{\"type\":\"user\",\"x\":2}\n",
    );
    let mut cmd = a.std_cmd(&a_repo);
    let inner = format!("{} push --all --force", env!("CARGO_BIN_EXE_ccsync"));
    cmd.args(["-qec", &inner, "/dev/null"]);
    let mut script = std::process::Command::new("script");
    script
        .args(cmd.get_args())
        .current_dir(&a_repo)
        .env_clear()
        .env("TERM", "xterm");
    for (k, v) in cmd.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    let out = script.output().unwrap();
    let all = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{all}");
    assert!(
        all.contains("pushing"),
        "no progress bar on a terminal: {all:?}"
    );
    let _ = w;
}
