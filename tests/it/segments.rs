//! Move only what changed: an append travels as a segment beside the copy
//! stored whole, a pull that has the earlier state fetches only the new
//! segments, a long chain is stored whole again, and segments that do not
//! fit their chain are refused with nothing written.

use std::path::{Path, PathBuf};

use crate::env::*;

const FOLDER: &str = "git=github.com_acme_widget";

fn folder(p: &Pair) -> PathBuf {
    p.w.sync_dir().join(FOLDER)
}

/// The segment files of a machine's copy of `SID`, by sequence number.
fn segments(p: &Pair, machine: &str) -> Vec<(u32, PathBuf)> {
    let mut out: Vec<(u32, PathBuf)> = std::fs::read_dir(folder(p))
        .unwrap()
        .filter_map(|e| {
            let path = e.unwrap().path();
            let name = path.file_name()?.to_str()?.to_owned();
            let seq = name
                .strip_prefix(&format!("{SID}-{machine}."))?
                .strip_suffix(".ccseg")?
                .parse()
                .ok()?;
            Some((seq, path))
        })
        .collect();
    out.sort();
    out
}

/// Writes `plain` as the sync dir stores objects (compressed).
fn write_object(path: &Path, plain: &[u8]) {
    let layers = ccsync::bundle::layers::Layers::default();
    let mut w = layers.writer(Vec::new()).unwrap();
    std::io::Write::write_all(&mut w, plain).unwrap();
    std::fs::write(path, w.finish().unwrap()).unwrap();
}

/// Replaces a file's bytes with as many others, keeping its size and
/// modification time: to a listing it is the same object.
fn spoil_in_place(path: &Path) {
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    let len = std::fs::metadata(path).unwrap().len() as usize;
    std::fs::write(path, vec![b'x'; len]).unwrap();
    let f = std::fs::File::options().write(true).open(path).unwrap();
    f.set_modified(modified).unwrap();
}

fn big_session(p: &Pair) -> Vec<u8> {
    // About 200 KB.
    let bytes = transcript(SID, &p.a_repo, 600, "a fairly long line of conversation");
    p.a.write_session(&p.a_repo, SID, &bytes);
    bytes
}

#[test]
fn an_append_travels_as_a_segment_and_is_pulled_alone() {
    let p = pair();
    big_session(&p);
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    let base = folder(&p).join(format!("{SID}-a.ccsync"));
    let base_before = std::fs::read(&base).unwrap();
    let base_time = std::fs::metadata(&base).unwrap().modified().unwrap();

    // About 1 KB more: a segment of about that, the base untouched.
    p.a.append(&p.a_repo, SID, &transcript(SID, &p.a_repo, 3, "more"));
    let json = stdout_json(&p.a.run(&p.a_repo, &["push", "--json"]).success());
    assert_eq!(json["pushed"].as_array().unwrap().len(), 1, "{json}");
    let segs = segments(&p, "a");
    assert_eq!(segs.len(), 1, "{segs:?}");
    assert_eq!(segs[0].0, 1);
    let seg_size = std::fs::metadata(&segs[0].1).unwrap().len();
    assert!(seg_size < 4096, "a segment of {seg_size} bytes");
    assert_eq!(std::fs::read(&base).unwrap(), base_before);
    assert_eq!(
        std::fs::metadata(&base).unwrap().modified().unwrap(),
        base_time
    );

    // b has the state the segment extends: it reads the segment only. The
    // base is spoiled in place (same size and time): reading it would fail.
    spoil_in_place(&base);
    let out = p.b.run(&p.b_repo, &["pull", "--json"]).success();
    assert_eq!(
        std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap(),
        std::fs::read(p.a.transcript(&p.a_repo, SID)).unwrap(),
        "{}",
        stderr(&out)
    );
    // And again: nothing to do.
    let before = snapshot(&p.b.claude);
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(snapshot(&p.b.claude), before);

    // A machine that never pulled needs the base: spoiled, it is refused,
    // and nothing is written.
    let c = p.w.machine("c");
    let c_repo = p.w.checkout("c/w", Some("https://github.com/acme/widget"));
    c.init(&p.w);
    let out = c.run(&c_repo, &["pull"]).failure();
    assert!(
        stderr(&out).contains(&format!("{SID}-a.ccsync")),
        "{}",
        stderr(&out)
    );
    assert!(!c.transcript(&c_repo, SID).exists());
}

#[test]
fn a_long_chain_is_stored_whole_again_and_every_state_arrives() {
    let p = pair();
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 200, "start"));
    p.a.run(&p.a_repo, &["push"]).success();
    let mut most = 0;
    let mut compacted = false;
    for round in 0..24 {
        p.a.append(
            &p.a_repo,
            SID,
            &transcript(SID, &p.a_repo, 1, &format!("round {round}")),
        );
        p.a.run(&p.a_repo, &["push"]).success();
        let n = segments(&p, "a").len();
        compacted |= n < most;
        most = most.max(n);
        assert!(n <= 16, "{n} segments");
        if round % 5 == 0 {
            p.b.run(&p.b_repo, &["pull"]).success();
            assert_eq!(
                std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap(),
                std::fs::read(p.a.transcript(&p.a_repo, SID)).unwrap(),
                "round {round}"
            );
        }
    }
    assert!(compacted && most >= 2, "most {most}, compacted {compacted}");
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap(),
        std::fs::read(p.a.transcript(&p.a_repo, SID)).unwrap()
    );
    assert_eq!(
        read_copy(&folder(&p), SID, "a"),
        std::fs::read(p.a.transcript(&p.a_repo, SID)).unwrap()
    );
}

#[test]
fn side_files_that_change_travel_in_the_segment() {
    let p = pair();
    big_session(&p);
    let dir = p.a.project_dir(&p.a_repo).join(SID);
    std::fs::create_dir_all(dir.join("subagents")).unwrap();
    std::fs::write(dir.join("subagents/agent-1.jsonl"), b"{\"n\":1}\n").unwrap();
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();

    std::fs::write(
        dir.join("subagents/agent-1.jsonl"),
        b"{\"n\":1}\n{\"n\":2}\n",
    )
    .unwrap();
    std::fs::write(dir.join("subagents/agent-2.jsonl"), b"{\"m\":1}\n").unwrap();
    p.a.append(
        &p.a_repo,
        SID,
        &transcript(SID, &p.a_repo, 1, "after the agents"),
    );
    p.a.run(&p.a_repo, &["push"]).success();
    assert_eq!(segments(&p, "a").len(), 1);
    p.b.run(&p.b_repo, &["pull"]).success();
    let b_dir = p.b.project_dir(&p.b_repo).join(SID);
    for f in ["subagents/agent-1.jsonl", "subagents/agent-2.jsonl"] {
        assert_eq!(
            std::fs::read(b_dir.join(f)).unwrap(),
            std::fs::read(dir.join(f)).unwrap(),
            "{f}"
        );
    }
    assert_eq!(
        std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap(),
        std::fs::read(p.a.transcript(&p.a_repo, SID)).unwrap()
    );
}

/// A chain of three segments, then each way of damaging it; a machine
/// that never pulled and one that has the base both refuse the copy and
/// write nothing.
#[test]
fn segments_that_do_not_fit_their_chain_are_refused() {
    let p = pair();
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 400, "base"));
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    for i in 0..3 {
        p.a.append(
            &p.a_repo,
            SID,
            &transcript(SID, &p.a_repo, 1, &format!("s{i}")),
        );
        p.a.run(&p.a_repo, &["push"]).success();
    }
    let segs = segments(&p, "a");
    assert_eq!(segs.len(), 3);
    let plain: Vec<String> = segs
        .iter()
        .map(|(_, f)| String::from_utf8(read_object(f)).unwrap())
        .collect();
    let extends = |s: &str| {
        let v: serde_json::Value = serde_json::from_str(s).unwrap();
        v["segment"]["extends"].to_string()
    };
    let first_len = {
        let v: serde_json::Value = serde_json::from_str(&plain[0]).unwrap();
        v["segment"]["extends"]["len"].as_u64().unwrap()
    };
    type Damage = Box<dyn Fn(&Pair)>;
    let cases: Vec<(&str, Damage)> = vec![
        (
            "truncated",
            Box::new(|p: &Pair| {
                let f = &segments(p, "a")[1].1;
                let bytes = std::fs::read(f).unwrap();
                std::fs::write(f, &bytes[..bytes.len() / 2]).unwrap();
            }),
        ),
        (
            "not extending its base",
            Box::new(move |p: &Pair| {
                let f = &segments(p, "a")[0].1;
                let text = String::from_utf8(read_object(f)).unwrap().replacen(
                    &format!("\"len\":{first_len}"),
                    &format!("\"len\":{}", first_len - 1),
                    1,
                );
                write_object(f, text.as_bytes());
            }),
        ),
        (
            "a loop",
            Box::new({
                let (one, three) = (extends(&plain[0]), extends(&plain[2]));
                move |p: &Pair| {
                    // The third claims to extend what the first did.
                    let f = &segments(p, "a")[2].1;
                    let text = String::from_utf8(read_object(f))
                        .unwrap()
                        .replacen(&three, &one, 1);
                    write_object(f, text.as_bytes());
                }
            }),
        ),
        (
            "a missing segment",
            Box::new(|p: &Pair| std::fs::remove_file(&segments(p, "a")[1].1).unwrap()),
        ),
        (
            "a renamed segment",
            Box::new(|p: &Pair| {
                let f = &segments(p, "a")[2].1;
                std::fs::rename(f, folder(p).join(format!("{SID}-a.4.ccseg"))).unwrap();
                std::fs::copy(&segments(p, "a")[1].1, f).unwrap();
            }),
        ),
        (
            "altered lines",
            Box::new(|p: &Pair| {
                let f = &segments(p, "a")[0].1;
                let text = String::from_utf8(read_object(f))
                    .unwrap()
                    .replacen("s0", "S0", 1);
                write_object(f, text.as_bytes());
            }),
        ),
    ];
    let pristine = snapshot(&folder(&p));
    for (case, (what, damage)) in cases.into_iter().enumerate() {
        for (path, bytes) in &pristine {
            std::fs::write(path, bytes).unwrap();
        }
        for (_, f) in segments(&p, "a") {
            if !pristine.iter().any(|(q, _)| *q == f) {
                std::fs::remove_file(f).unwrap();
            }
        }
        damage(&p);
        // b has the base (and perhaps segments from an earlier case).
        let before = snapshot(&p.b.claude);
        let out = p.b.run(&p.b_repo, &["pull"]).failure();
        assert!(
            stderr(&out).contains(&format!("{SID}-a")),
            "{what}: {}",
            stderr(&out)
        );
        let after = snapshot(&p.b.claude);
        let changed: Vec<_> = after
            .iter()
            .filter(|(path, bytes)| {
                path.extension().is_some_and(|e| e == "jsonl")
                    && before.iter().any(|(q, b)| q == path && b != bytes)
            })
            .collect();
        assert!(changed.is_empty(), "{what}: {changed:?}");
        // A machine that has nothing yet.
        let c = p.w.machine(&format!("c{case}"));
        let c_repo = p.w.checkout(
            &format!("c{case}/w"),
            Some("https://github.com/acme/widget"),
        );
        c.init(&p.w);
        c.run(&c_repo, &["pull"]).failure();
        assert!(!c.transcript(&c_repo, SID).exists(), "{what}");
    }
}

/// Segments written by hand from the format's description
/// (fixtures/v5-segments.py), after the golden version 4 bundle, are
/// read forever: the transcript grows by their lines and the side file
/// one carries replaces the base's.
#[test]
fn golden_v5_segments_continue_the_golden_v4_bundle() {
    let w = World::new();
    let b = w.machine("b");
    let repo = w.checkout("b/widget", Some("git@github.com:acme/widget.git"));
    b.init(&w);
    let dir = w.sync_dir().join(FOLDER);
    std::fs::create_dir_all(&dir).unwrap();
    let fixtures = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
    let read = |f: &str| std::fs::read(format!("{fixtures}/{f}")).unwrap();
    write_object(
        &dir.join(format!("{GOLDEN_SID}-laptop.ccsync")),
        &read("v4.ccsync"),
    );
    for seq in [1, 2] {
        write_object(
            &dir.join(format!("{GOLDEN_SID}-laptop.{seq}.ccseg")),
            &read(&format!("v5-segment-{seq}.ccseg")),
        );
    }
    std::fs::create_dir_all(&b.claude).unwrap();
    std::fs::write(
        b.claude.join("settings.json"),
        r#"{"cleanupPeriodDays": 100000}"#,
    )
    .unwrap();
    let out = b.run(&repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(b.transcript(&repo.join("sub"), GOLDEN_SID)).unwrap(),
        read("v5-transcript.jsonl"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(b.claude.join(format!("tasks/{GOLDEN_SID}/1.json"))).unwrap(),
        br#"{"id":"1","subject":"Write the tests","status":"completed"}"#
    );
    // A segment is not a session that stands alone.
    let out = b
        .run(
            &repo,
            &["import", &format!("{fixtures}/v5-segment-1.ccseg")],
        )
        .failure();
    assert!(stderr(&out).contains("ccsync export"), "{}", stderr(&out));
}

const GOLDEN_SID: &str = "9f1c2b3a-4d5e-4f60-8a71-b82c93d4e5f6";

fn ids_in(bytes: &[u8]) -> std::collections::BTreeSet<String> {
    String::from_utf8(bytes.to_vec())
        .unwrap()
        .lines()
        .filter_map(|l| {
            let at = l.find("\"sessionId\":\"")? + "\"sessionId\":\"".len();
            Some(l[at..at + 36].to_owned())
        })
        .collect()
}

/// A branch that came back to its origin under another id (b's own
/// session took a's fork of it) goes on growing on a in segments: b writes
/// them with its session's id, never the fork's. (Found by review: the
/// fast path appended the segment's bytes as they were.)
#[test]
fn segments_of_a_branch_kept_under_another_id_get_that_id() {
    let w = World::new();
    let (a, b) = (w.machine("a"), w.machine("b"));
    a.init(&w);
    b.init(&w);
    let a_repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    let b_repo = w.checkout("b/w", Some("git@github.com:acme/widget.git"));
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 200, "common"));
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();
    a.append(&a_repo, SID, &transcript(SID, &a_repo, 2, "aye"));
    b.append(&b_repo, SID, &transcript(SID, &b_repo, 3, "bee"));
    let round = || {
        for _ in 0..2 {
            a.run(&a_repo, &["push"]).success();
            b.run(&b_repo, &["push"]).success();
            a.run(&a_repo, &["pull"]).success();
            b.run(&b_repo, &["pull"]).success();
        }
    };
    round();
    let fork = walk(&a.project_dir(&a_repo))
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "jsonl") && !p.ends_with(format!("{SID}.jsonl"))
        })
        .expect("a fork of b's branch on a");
    let fork_id = fork.file_stem().unwrap().to_str().unwrap().to_owned();
    a.append(&a_repo, &fork_id, &transcript(&fork_id, &a_repo, 2, "on a"));
    round();
    assert!(!b.transcript(&b_repo, &fork_id).exists());
    let before = std::fs::read(b.transcript(&b_repo, SID)).unwrap();
    assert_eq!(ids_in(&before), [SID.to_owned()].into());
    a.append(
        &a_repo,
        &fork_id,
        &transcript(&fork_id, &a_repo, 2, "more on a"),
    );
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();
    let after = std::fs::read(b.transcript(&b_repo, SID)).unwrap();
    assert!(after.len() > before.len(), "b got a's new lines");
    assert_eq!(
        ids_in(&after),
        [SID.to_owned()].into(),
        "lines under another id"
    );
}

/// A copy whose chain no longer fits (a segment lost by a sync service) is
/// still guarded: a transcript shorter than what was pushed is refused,
/// and one that is whole is stored whole again, repairing the copy.
#[test]
fn a_broken_own_chain_still_refuses_a_rewind_and_is_repaired() {
    let p = pair();
    let start = transcript(SID, &p.a_repo, 600, "a fairly long line");
    p.a.write_session(&p.a_repo, SID, &start);
    p.a.run(&p.a_repo, &["push"]).success();
    for i in 0..3 {
        p.a.append(
            &p.a_repo,
            SID,
            &transcript(SID, &p.a_repo, 2, &format!("s{i}")),
        );
        p.a.run(&p.a_repo, &["push"]).success();
    }
    let full = std::fs::read(p.a.transcript(&p.a_repo, SID)).unwrap();
    std::fs::remove_file(folder(&p).join(format!("{SID}-a.2.ccseg"))).unwrap();
    std::fs::write(p.a.transcript(&p.a_repo, SID), &start).unwrap();
    let out = p.a.run(&p.a_repo, &["push"]).failure();
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    // Whole again here: the next push stores it whole, and every machine
    // reads it.
    std::fs::write(p.a.transcript(&p.a_repo, SID), &full).unwrap();
    p.a.run(&p.a_repo, &["push"]).success();
    assert!(segments(&p, "a").is_empty());
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap(), full);
}
