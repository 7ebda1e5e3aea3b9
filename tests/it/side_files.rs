//! A session's side files (subagents, tool results, file history, todos,
//! tasks) travel with it and land in their places on the other machine.

use std::path::{Path, PathBuf};

use crate::env::*;

/// A session's side files as Claude Code lays them out: path under the
/// config dir (for a transcript in project folder `enc`), and bytes.
fn side_files(enc: &str, sid: &str, subagent: &[u8]) -> Vec<(String, Vec<u8>)> {
    let binary: Vec<u8> = (0..=255u8).chain(*b"\xff\xfe\x00 not UTF-8\r\n").collect();
    vec![
        (
            format!("projects/{enc}/{sid}/subagents/agent-a3f9c21.jsonl"),
            subagent.to_vec(),
        ),
        (
            format!("projects/{enc}/{sid}/subagents/agent-a3f9c21.meta.json"),
            br#"{"agentType":"Explore"}"#.to_vec(),
        ),
        (
            format!("projects/{enc}/{sid}/tool-results/toolu_01.txt"),
            "tool output \u{1b}[31m ü\n".repeat(500).into_bytes(),
        ),
        (format!("file-history/{sid}/5d41402abc4b2a76@v1"), binary),
        (
            format!("file-history/{sid}/5d41402abc4b2a76@v2"),
            b"fn main() {}\n".to_vec(),
        ),
        (
            format!("todos/{sid}-agent-{sid}.json"),
            br#"[{"content":"x","status":"pending"}]"#.to_vec(),
        ),
        (
            format!("tasks/{sid}/1.json"),
            br#"{"id":"1","status":"pending"}"#.to_vec(),
        ),
    ]
}

fn write_all(root: &Path, files: &[(String, Vec<u8>)]) {
    for (path, bytes) in files {
        let path = root.join(path);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, bytes).unwrap();
    }
}

fn assert_installed(root: &Path, files: &[(String, Vec<u8>)]) {
    for (path, bytes) in files {
        let got = std::fs::read(root.join(path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert!(got == *bytes, "{path} differs");
    }
}

/// A subagent transcript from the corpus when there is one, else made up.
fn a_subagent_transcript() -> Vec<u8> {
    let corpus = std::env::var_os("CCSYNC_CORPUS")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/corpus")));
    let found = std::fs::read_dir(&corpus).ok().and_then(|entries| {
        let mut agents: Vec<PathBuf> = entries
            .flatten()
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.contains("__agent-") && n.ends_with(".jsonl"))
            })
            .collect();
        agents.sort();
        agents.first().and_then(|p| std::fs::read(p).ok())
    });
    match found {
        Some(bytes) => {
            let complete = ccsync::claude::transcript::complete_len(&bytes);
            bytes[..complete].to_vec()
        }
        None => {
            skip_or_fail("no corpus: using a made-up subagent transcript");
            b"{\"isSidechain\":true,\"agentId\":\"a3f9c21\",\"t\":\"\\u00fc\"}\n".to_vec()
        }
    }
}

#[test]
fn every_kind_of_side_file_travels_byte_for_byte_and_only_grows() {
    let w = World::new();
    let a = w.machine("laptop");
    let b = w.machine("desktop");
    let a_repo = w.checkout("a/code/widget", Some("git@github.com:acme/widget.git"));
    let b_repo = w.checkout("b/src/wid get", Some("https://github.com/acme/widget"));
    a.init(&w);
    b.init(&w);
    let subagent = a_subagent_transcript();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 4, "a"));
    let a_enc = encode(a_repo.to_str().unwrap());
    let b_enc = encode(b_repo.to_str().unwrap());
    write_all(&a.claude, &side_files(&a_enc, SID, &subagent));
    // The client's lock: this machine's, it stays.
    write_all(&a.claude, &[(format!("tasks/{SID}/.lock"), Vec::new())]);
    // Not this session's: another session's files, and project memory.
    write_all(
        &a.claude,
        &[
            (format!("file-history/{SID2}/x@v1"), b"other".to_vec()),
            (format!("todos/{SID2}-agent-{SID2}.json"), b"[]".to_vec()),
            (format!("projects/{a_enc}/memory/MEMORY.md"), b"m".to_vec()),
        ],
    );

    let out = a.run(&a_repo, &["push", "--json"]).success();
    assert_eq!(stdout_json(&out)["pushed"][0]["sideFiles"], 7);
    let out = b.run(&b_repo, &["pull", "--json"]).success();
    let json = stdout_json(&out);
    assert_eq!(json["sessions"][0]["sideFiles"]["written"], 7, "{json}");
    assert!(stderr(&out).contains("7 side files written"));
    assert_installed(&b.claude, &side_files(&b_enc, SID, &subagent));
    assert!(!b.claude.join(format!("tasks/{SID}/.lock")).exists());
    assert!(!b.claude.join(format!("file-history/{SID2}")).exists());
    assert!(
        !b.claude
            .join("projects")
            .join(&b_enc)
            .join("memory")
            .exists()
    );
    #[cfg(unix)]
    assert_eq!(
        mode(
            &b.claude
                .join(format!("file-history/{SID}/5d41402abc4b2a76@v1"))
        ),
        0o600
    );

    // Nothing new: nothing is written (nor even fetched).
    let before = snapshot(&b.claude);
    let out = b.run(&b_repo, &["pull", "--json"]).success();
    assert_eq!(stdout_json(&out)["sessions"][0]["sideFiles"]["written"], 0);
    assert_eq!(snapshot(&b.claude), before);

    // A goes on: the subagent grows, a new checkpoint, the task is done.
    let mut more = side_files(&a_enc, SID, &subagent);
    more[0]
        .1
        .extend_from_slice(b"{\"isSidechain\":true,\"more\":1}\n");
    more.push((
        format!("file-history/{SID}/5d41402abc4b2a76@v3"),
        b"v3".to_vec(),
    ));
    more[6].1 = br#"{"id":"1","status":"completed"}"#.to_vec();
    write_all(&a.claude, &more);
    a.append(
        &a_repo,
        SID,
        &transcript(SID, &a_repo, 5, "a")[before_len(&a, &a_repo)..],
    );
    let out = a.run(&a_repo, &["push", "--json"]).success();
    assert_eq!(stdout_json(&out)["pushed"][0]["sideFiles"], 8);
    let out = b.run(&b_repo, &["pull", "--json"]).success();
    let json = stdout_json(&out);
    assert_eq!(json["sessions"][0]["action"], "updated");
    assert_eq!(json["sessions"][0]["sideFiles"]["written"], 3, "{json}");
    let b_more: Vec<(String, Vec<u8>)> = more
        .iter()
        .map(|(p, bytes)| (p.replace(&a_enc, &b_enc), bytes.clone()))
        .collect();
    assert_installed(&b.claude, &b_more);

    // Pushing again with only a side file changed sends it.
    write_all(
        &a.claude,
        &[(
            format!("projects/{a_enc}/{SID}/tool-results/toolu_02.txt"),
            b"new".to_vec(),
        )],
    );
    let out = a.run(&a_repo, &["push", "--json"]).success();
    assert_eq!(stdout_json(&out)["pushed"][0]["sideFiles"], 9);
    b.run(&b_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(
            b.claude
                .join(format!("projects/{b_enc}/{SID}/tool-results/toolu_02.txt"))
        )
        .unwrap(),
        b"new"
    );
}

fn before_len(m: &Machine, repo: &Path) -> usize {
    std::fs::metadata(m.transcript(repo, SID)).unwrap().len() as usize
}

/// Sessions travel as version 4 (with file times), with `parts` only when
/// there are side files.
#[test]
fn a_bundle_carries_parts_only_when_there_are_side_files() {
    let w = World::new();
    let a = w.machine("a");
    let repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    a.write_session(&repo, SID, &transcript(SID, &repo, 2, "a"));
    let file = w.root().join("s.ccsync");
    a.run(&repo, &["export", SID, "-o", file.to_str().unwrap()])
        .success();
    let text = String::from_utf8(std::fs::read(&file).unwrap()).unwrap();
    assert!(text.starts_with("{\"_schemaVersion\":4,"));
    assert!(!text.contains("\"parts\":"));
    write_all(
        &a.claude,
        &[(format!("tasks/{SID}/1.json"), b"{}".to_vec())],
    );
    let out = a
        .run(&repo, &["export", SID, "-o", file.to_str().unwrap()])
        .success();
    assert!(stderr(&out).contains("1 side file"));
    let text = String::from_utf8(std::fs::read(&file).unwrap()).unwrap();
    assert!(text.starts_with("{\"_schemaVersion\":4,"));
    assert!(text.contains("\"parts\":[{\"path\":\"tasks/1.json\""));
}
