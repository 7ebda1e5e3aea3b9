//! Pulled files keep the source's modification times (bundle version 4),
//! except where the client's cleanup would delete them for it.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::env::*;

const SID: &str = "3b0c9c52-2d3e-4f5a-8b6c-7d8e9f0a1b2c";
const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
const GOLDEN_SID: &str = "9f1c2b3a-4d5e-4f60-8a71-b82c93d4e5f6";

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .modified()
        .unwrap()
}

fn set_mtime(path: &Path, t: SystemTime) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(t)
        .unwrap();
}

/// To the millisecond: the bundle carries milliseconds.
fn ms(t: SystemTime) -> u128 {
    t.duration_since(UNIX_EPOCH).unwrap().as_millis()
}

fn near(a: SystemTime, b: SystemTime) -> bool {
    let d = a.duration_since(b).unwrap_or_else(|e| e.duration());
    d < Duration::from_secs(120)
}

#[test]
fn pulled_files_keep_the_source_times_and_the_receiver_sees_nothing_to_push() {
    let Pair {
        w: _w,
        a,
        a_repo,
        b,
        b_repo,
    } = pair();
    let path = a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 4, "times"));
    let part = a.project_dir(&a_repo).join(SID).join("tool-results/t.txt");
    std::fs::create_dir_all(part.parent().unwrap()).unwrap();
    std::fs::write(&part, b"result\n").unwrap();
    let (t_transcript, t_part) = (
        SystemTime::now() - 3 * DAY - Duration::from_millis(417),
        SystemTime::now() - 5 * DAY,
    );
    set_mtime(&path, t_transcript);
    set_mtime(&part, t_part);
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();

    let got = b.transcript(&b_repo, SID);
    assert_eq!(ms(mtime(&got)), ms(t_transcript));
    let got_part = b.project_dir(&b_repo).join(SID).join("tool-results/t.txt");
    assert_eq!(ms(mtime(&got_part)), ms(t_part));
    // Only received: nothing for B to send, nothing moves.
    let out = b.run(&b_repo, &["push", "--json"]).success();
    assert_eq!(stdout_json(&out)["pushed"].as_array().unwrap().len(), 0);

    // Going on with it on A moves the time forward on B too.
    a.append(&a_repo, SID, &transcript(SID, &a_repo, 1, "later"));
    let t_later = SystemTime::now() - DAY;
    set_mtime(&path, t_later);
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();
    assert_eq!(ms(mtime(&got)), ms(t_later));
    assert_eq!(std::fs::read(&got).unwrap(), std::fs::read(&path).unwrap());
}

#[test]
fn a_time_older_than_the_cleanup_period_here_is_clamped_and_said() {
    let Pair {
        w: _w,
        a,
        a_repo,
        b,
        b_repo,
    } = pair();
    let path = a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 3, "old"));
    set_mtime(&path, SystemTime::now() - 40 * DAY);
    a.run(&a_repo, &["push"]).success();
    std::fs::create_dir_all(&b.claude).unwrap();
    std::fs::write(
        b.claude.join("settings.json"),
        r#"{"cleanupPeriodDays": 7}"#,
    )
    .unwrap();
    let out = b.run(&b_repo, &["pull"]).success();
    let said = stderr(&out);
    assert!(said.contains("cleanupPeriodDays"), "{said}");
    assert!(said.contains(&format!("{SID}.jsonl")), "{said}");
    // A day inside the limit: the client keeps it at its next start.
    let got = mtime(&b.transcript(&b_repo, SID));
    assert!(near(got, SystemTime::now() - 6 * DAY), "{got:?}");
}

/// Written by an independent encoder (Python's json module) from the
/// format's description: version 3's fields plus `modifiedAt` and
/// `partsModifiedAt`.
#[test]
fn golden_v4_imports_forever_with_its_times() {
    let w = World::new();
    let b = w.machine("b");
    let repo = w.checkout("b/widget", Some("git@github.com:acme/widget.git"));
    // Its times are from 2025: keep them (the default would clamp them).
    std::fs::create_dir_all(&b.claude).unwrap();
    std::fs::write(
        b.claude.join("settings.json"),
        r#"{"cleanupPeriodDays": 100000}"#,
    )
    .unwrap();
    let out = b
        .run(
            &repo,
            &["import", &format!("{FIXTURES}/v4.ccsync"), "--json"],
        )
        .success();
    assert_eq!(stdout_json(&out)["sideFiles"]["written"], 6);
    let transcript = b.transcript(&repo.join("sub"), GOLDEN_SID);
    assert_eq!(
        std::fs::read(&transcript).unwrap(),
        std::fs::read(format!("{FIXTURES}/golden-transcript.jsonl")).unwrap()
    );
    assert_eq!(ms(mtime(&transcript)), 1_763_628_000_123);
    let enc = encode(repo.join("sub").to_str().unwrap());
    let s = GOLDEN_SID;
    let parts = [
        format!("projects/{enc}/{s}/subagents/agent-a3f9c21.jsonl"),
        format!("projects/{enc}/{s}/subagents/agent-a3f9c21.meta.json"),
        format!("projects/{enc}/{s}/tool-results/toolu_01ABC.txt"),
        format!("file-history/{s}/5d41402abc4b2a76@v1"),
        format!("todos/{s}-agent-{s}.json"),
        format!("tasks/{s}/1.json"),
    ];
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(
            ms(mtime(&b.claude.join(p))),
            1_763_620_000_000 + 1000 * i as u128,
            "{p}"
        );
    }
}

#[test]
fn a_v4_bundle_with_times_it_cannot_have_is_refused() {
    // Edited as text: the order of a part's fields matters.
    let text = std::fs::read_to_string(format!("{FIXTURES}/v4.ccsync")).unwrap();
    let edit = |from: &str, to: &str| {
        assert!(text.contains(from), "{from}");
        text.replacen(from, to, 1)
    };
    let cases = [
        (edit("\"modifiedAt\":1763628000123,", ""), "modifiedAt"),
        (
            edit(
                "\"partsModifiedAt\":{",
                "\"partsModifiedAt\":{\"tasks/2.json\":1,",
            ),
            "tasks/2.json",
        ),
        (
            edit("\"_schemaVersion\":4", "\"_schemaVersion\":3"),
            "not part of version 3",
        ),
        (
            edit(
                "\"modifiedAt\":1763628000123",
                "\"modifiedAt\":\"yesterday\"",
            ),
            "\"yesterday\", expected u64",
        ),
    ];
    let w = World::new();
    let b = w.machine("b");
    let repo = w.checkout("b/widget", Some("git@github.com:acme/widget.git"));
    for (i, (bundle, why)) in cases.into_iter().enumerate() {
        let file = w.root().join(format!("bad{i}.ccsync"));
        std::fs::write(&file, bundle).unwrap();
        let out = b.run(&repo, &["import", file.to_str().unwrap()]).failure();
        let said = stderr(&out);
        assert!(said.contains(why), "case {i}: {said}");
        assert!(said.contains(&format!("bad{i}.ccsync")), "case {i}: {said}");
        assert!(!b.claude.join("projects").exists(), "case {i} wrote");
    }
}
