//! Daily back-and-forth: push and pull what a user means.

use crate::env::*;

/// Plain `push` sends every session of the project that changed since this
/// machine last pushed it, and says how many were unchanged.
#[test]
fn plain_push_sends_every_changed_session_of_the_project() {
    let w = World::new();
    let a = w.machine("a");
    a.init(&w);
    let repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    let other = w.checkout("a/o", Some("git@github.com:acme/other.git"));
    a.write_session(&repo, SID, &transcript(SID, &repo, 2, "one"));
    a.write_session(&repo, SID2, &transcript(SID2, &repo, 2, "two"));
    let third = "1d2c3b4a-0000-4000-8000-00000000000f";
    a.write_session(&other, third, &transcript(third, &other, 2, "three"));
    let json = stdout_json(&a.run(&repo, &["push", "--json"]).success());
    assert_eq!(json["pushed"].as_array().unwrap().len(), 2, "{json}");
    // One of them goes on: only it travels; the other project's never.
    a.append(&repo, SID2, &transcript(SID2, &repo, 1, "more"));
    let json = stdout_json(&a.run(&repo, &["push", "--json"]).success());
    assert_eq!(json["pushed"][0]["sessionId"], SID2);
    assert_eq!(json["pushed"].as_array().unwrap().len(), 1);
    assert_eq!(json["unchanged"], serde_json::json!([SID]));
    assert!(!w.sync_dir().join("git=github.com_acme_other").exists());
}

/// `pull` takes an id or a unique prefix, in any case, like push.
#[test]
fn pull_takes_a_prefix_in_any_case() {
    let w = World::new();
    let (a, b) = (w.machine("a"), w.machine("b"));
    a.init(&w);
    b.init(&w);
    let a_repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    let b_repo = w.checkout("b/w", Some("https://github.com/acme/widget"));
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "one"));
    a.write_session(&a_repo, SID2, &transcript(SID2, &a_repo, 2, "two"));
    let twin = "0b000000-0000-4000-8000-000000000001";
    a.write_session(&a_repo, twin, &transcript(twin, &a_repo, 2, "twin"));
    a.run(&a_repo, &["push"]).success();

    let prefix = SID[..6].to_ascii_uppercase();
    b.run(&b_repo, &["pull", &prefix]).success();
    assert!(b.transcript(&b_repo, SID).is_file());
    assert!(!b.transcript(&b_repo, SID2).exists());
    b.run(&b_repo, &["pull", &SID2.to_ascii_uppercase()]).success();
    assert!(b.transcript(&b_repo, SID2).is_file());
    // Ambiguous or unknown: say so, change nothing.
    let out = b.run(&b_repo, &["pull", "0B"]).failure();
    assert!(
        stderr(&out).contains("matches 2 sessions") && stderr(&out).contains(twin),
        "{}",
        stderr(&out)
    );
    assert!(!b.transcript(&b_repo, twin).exists());
    let out = b.run(&b_repo, &["pull", "ffff"]).failure();
    assert!(stderr(&out).contains("list --remote"), "{}", stderr(&out));
}

/// "`ccsync push` sends them" is said only while it would send something:
/// once this machine's own copy in the sync dir holds its lines, pull says
/// nothing about them.
#[test]
fn advice_to_push_only_while_pushing_would_send_something() {
    let w = World::new();
    let (a, b) = (w.machine("a"), w.machine("b"));
    a.init(&w);
    b.init(&w);
    let a_repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    let b_repo = w.checkout("b/w", Some("https://github.com/acme/widget"));
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "one"));
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();
    b.append(&b_repo, SID, &transcript(SID, &b_repo, 1, "b"));
    let said = stderr(&b.run(&b_repo, &["pull"]).success());
    assert!(said.contains("`ccsync push"), "{said}");
    b.run(&b_repo, &["push"]).success();
    let said = stderr(&b.run(&b_repo, &["pull"]).success());
    assert!(!said.contains("ccsync push"), "{said}");
    // It goes on here: the advice is back, once.
    b.append(&b_repo, SID, &transcript(SID, &b_repo, 1, "b2"));
    let said = stderr(&b.run(&b_repo, &["pull"]).success());
    assert!(said.contains("`ccsync push"), "{said}");
}
