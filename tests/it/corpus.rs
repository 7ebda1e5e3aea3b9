//! Real transcripts written by Claude Code for other people: every one must
//! travel byte for byte. Read from `$CCSYNC_CORPUS` (set by .ci/run).

use std::path::PathBuf;

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
