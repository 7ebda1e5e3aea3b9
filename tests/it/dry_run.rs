//! `push --dry-run` and `pull --dry-run` say what would happen, per
//! session and why, and change nothing anywhere: not the sync dir, not the
//! Claude Code folder, not ccsync's own state.

use crate::env::*;

/// Everything a dry run must leave alone.
fn everything(p: &Pair) -> Vec<(std::path::PathBuf, Vec<u8>)> {
    let mut all = snapshot(&p.w.sync_dir());
    for m in [&p.a, &p.b] {
        all.extend(snapshot(&m.claude));
        all.extend(snapshot(&m.cfg));
    }
    all
}

#[test]
fn dry_runs_say_what_would_move_and_change_nothing() {
    let p = pair();
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 300, "start"));

    let before = everything(&p);
    let out =
        p.a.run(&p.a_repo, &["push", "--dry-run", "--json"])
            .success();
    assert_eq!(everything(&p), before, "push --dry-run changed something");
    let said = stderr(&out);
    assert!(
        said.contains(&format!("would push {SID} (whole)"))
            && said.contains("not in the sync dir yet"),
        "{said}"
    );
    let json = stdout_json(&out);
    assert_eq!(json["dryRun"], true);
    assert_eq!(json["wouldPush"][0]["sessionId"], SID);

    p.a.run(&p.a_repo, &["push"]).success();
    let before = everything(&p);
    let out = p.b.run(&p.b_repo, &["pull", "--dry-run"]).success();
    assert_eq!(everything(&p), before, "pull --dry-run changed something");
    let said = stderr(&out);
    assert!(
        said.contains(&format!("would install {SID} from a")),
        "{said}"
    );
    assert!(!p.b.transcript(&p.b_repo, SID).exists());
    p.b.run(&p.b_repo, &["pull"]).success();

    // After an append: only what was added would go, and would be added.
    p.a.append(&p.a_repo, SID, &transcript(SID, &p.a_repo, 2, "more"));
    let before = everything(&p);
    let out =
        p.a.run(&p.a_repo, &["push", "--dry-run", "--json"])
            .success();
    assert_eq!(everything(&p), before);
    let json = stdout_json(&out);
    assert_eq!(json["wouldPush"][0]["segment"], 1, "{json}");
    assert!(
        json["wouldPush"][0]["bytes"].as_u64().unwrap() < 2000,
        "{json}"
    );
    p.a.run(&p.a_repo, &["push"]).success();
    let out = p.b.run(&p.b_repo, &["pull", "--dry-run"]).success();
    assert!(
        stderr(&out).contains(&format!("would update {SID} from a")),
        "{}",
        stderr(&out)
    );
    p.b.run(&p.b_repo, &["pull"]).success();

    // Both go on: b would keep its own and fork a's branch.
    p.a.append(&p.a_repo, SID, &transcript(SID, &p.a_repo, 1, "on a"));
    p.b.append(&p.b_repo, SID, &transcript(SID, &p.b_repo, 1, "on b"));
    p.a.run(&p.a_repo, &["push"]).success();
    let before = everything(&p);
    let out = p.b.run(&p.b_repo, &["pull", "--dry-run"]).success();
    assert_eq!(everything(&p), before);
    let said = stderr(&out);
    assert!(said.contains("would fork a's branch of"), "{said}");
    assert!(said.contains("nothing was written"), "{said}");
}
