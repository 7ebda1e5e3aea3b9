//! Real transcripts written by Claude Code for other people: every one must
//! travel byte for byte. Read from `$CCSYNC_CORPUS` (set by .ci/run).

use std::path::{Path, PathBuf};

use predicates::prelude::*;

use crate::env::*;

pub fn corpus_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("CCSYNC_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")));
    dir.is_dir().then_some(dir)
}

/// The first `cwd` recorded in a complete line, as the test reads it.
fn first_cwd(bytes: &[u8]) -> Option<String> {
    bytes
        .split_inclusive(|&b| b == b'\n')
        .filter(|l| l.ends_with(b"\n"))
        .filter_map(|l| serde_json::from_slice::<serde_json::Value>(l).ok())
        .find_map(|v| v.get("cwd")?.as_str().map(str::to_owned))
}

/// A session id for the file: the one in its name, else a fixed one per index.
fn session_id(name: &str, i: usize) -> String {
    let stem = name.trim_end_matches(".jsonl");
    let tail = stem.rsplit("__").next().unwrap_or(stem);
    if ccsync::names::SessionId::parse(tail).is_ok() {
        tail.to_owned()
    } else {
        format!("00000000-0000-4000-8000-{i:012}")
    }
}

#[test]
#[ignore = "needs a transcript corpus: CCSYNC_CORPUS (README: Tests)"]
fn every_corpus_transcript_round_trips_byte_for_byte() {
    let Some(dir) = corpus_dir() else {
        return skip_or_fail("no corpus: set CCSYNC_CORPUS to the shared corpus folder");
    };
    let w = World::new();
    let a = w.machine("a");
    let b = w.machine("b");
    let target = w.root().join("b/checkout");
    std::fs::create_dir_all(&target).unwrap();

    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 20,
        "corpus at {} looks incomplete",
        dir.display()
    );

    let (mut moved, mut refused) = (0, 0);
    for (i, path) in files.iter().enumerate() {
        let name = path.file_name().unwrap().to_str().unwrap();
        let bytes = std::fs::read(path).unwrap();
        let sid = session_id(name, i);
        let complete = ccsync::claude::transcript::complete_len(&bytes);
        let Some(cwd) = first_cwd(&bytes) else {
            // Not a session (summaries only, or not a transcript at all):
            // reported as such, never fatal.
            let dest = a
                .claude
                .join("projects/-not-a-session")
                .join(format!("{sid}.jsonl"));
            std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
            std::fs::write(&dest, &bytes).unwrap();
            a.run(&w.root(), &["export", &sid, "-o", "-"])
                .code(1)
                .stderr(predicate::str::contains("cannot be moved"));
            refused += 1;
            continue;
        };
        let dest = a
            .claude
            .join("projects")
            .join(ccsync::claude::dirname::encode(&cwd))
            .join(format!("{sid}.jsonl"));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, &bytes).unwrap();

        let bundle = w.root().join(format!("{sid}.ccsync"));
        let out = a
            .run(&w.root(), &["export", &sid, "-o", bundle.to_str().unwrap()])
            .success();
        if complete < bytes.len() {
            assert!(stderr(&out).contains("left behind"), "{name}");
        }
        b.run(
            &w.root(),
            &[
                "import",
                bundle.to_str().unwrap(),
                "--cwd",
                target.to_str().unwrap(),
            ],
        )
        .success();
        let installed = std::fs::read(b.transcript(&target, &sid)).unwrap();
        assert!(installed == bytes[..complete], "{name} changed in transit");
        moved += 1;
    }
    eprintln!("corpus: {moved} transcripts moved byte for byte, {refused} non-sessions refused");
    assert!(moved >= 20);
}

/// Every corpus transcript through a sync dir in two steps: its first half
/// as a whole copy, then the rest as a segment, pulled onto the state the
/// other machine already has. Each arrives byte for byte.
#[test]
#[ignore = "needs a transcript corpus: CCSYNC_CORPUS (README: Tests)"]
fn every_corpus_transcript_travels_in_segments_byte_for_byte() {
    let Some(dir) = corpus_dir() else {
        return skip_or_fail("no corpus: set CCSYNC_CORPUS to the shared corpus folder");
    };
    let w = World::new();
    let a = w.machine("a");
    let b = w.machine("b");
    a.init(&w);
    b.init(&w);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
        .collect();
    files.sort();
    // (session, a's transcript, b's checkout, the rest to append)
    let mut sessions = Vec::new();
    for (i, path) in files.iter().enumerate() {
        let bytes = std::fs::read(path).unwrap();
        let Some(cwd) = first_cwd(&bytes) else {
            continue;
        };
        let complete = ccsync::claude::transcript::complete_len(&bytes);
        let lines: Vec<usize> = bytes[..complete]
            .iter()
            .enumerate()
            .filter(|(_, b)| **b == b'\n')
            .map(|(i, _)| i + 1)
            .collect();
        if lines.len() < 4 {
            continue;
        }
        let half = lines[lines.len() / 2];
        let sid = session_id(path.file_name().unwrap().to_str().unwrap(), i);
        let dest = a
            .claude
            .join("projects")
            .join(ccsync::claude::dirname::encode(&cwd))
            .join(format!("{sid}.jsonl"));
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::write(&dest, &bytes[..half]).unwrap();
        // b's checkout of the same project: its folder's name (no remote).
        let name = Path::new(&cwd)
            .file_name()
            .map_or("root".into(), |n| n.to_owned());
        let checkout = w.root().join("b").join(name);
        std::fs::create_dir_all(&checkout).unwrap();
        sessions.push((sid, dest, checkout, bytes[half..complete].to_vec()));
    }
    assert!(sessions.len() >= 20, "{} sessions", sessions.len());
    a.run(&w.root(), &["push", "--all"]).success();
    let checkouts: std::collections::BTreeSet<&PathBuf> = sessions.iter().map(|s| &s.2).collect();
    for c in &checkouts {
        b.run(c, &["pull"]).success();
    }
    for (_, dest, _, rest) in &sessions {
        let mut f = std::fs::OpenOptions::new().append(true).open(dest).unwrap();
        std::io::Write::write_all(&mut f, rest).unwrap();
    }
    a.run(&w.root(), &["push", "--all"]).success();
    let segments = walk(&w.sync_dir())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ccseg"))
        .count();
    for c in &checkouts {
        b.run(c, &["pull"]).success();
    }
    let mut moved = 0;
    for (sid, dest, checkout, _) in &sessions {
        let cwd = first_cwd(&std::fs::read(dest).unwrap()).unwrap();
        // Where b's client looks: the session's own directory relative to
        // its project root is unknown here, so find it by id.
        let found: Vec<PathBuf> = walk(&b.claude.join("projects"))
            .into_iter()
            .filter(|p| {
                p.file_name()
                    .is_some_and(|n| n == format!("{sid}.jsonl").as_str())
            })
            .collect();
        assert_eq!(found.len(), 1, "{sid} ({cwd}) under {}", checkout.display());
        assert!(
            std::fs::read(&found[0]).unwrap() == std::fs::read(dest).unwrap(),
            "{sid} changed in transit"
        );
        moved += 1;
    }
    eprintln!("corpus: {moved} transcripts moved in two steps, {segments} as segments");
    assert_eq!(segments, moved, "every session gained a segment");
}
