//! Bundles that must be refused, and the golden files that must always import.

use predicates::prelude::*;
use sha2::{Digest, Sha256};

use crate::env::*;

const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures");
const GOLDEN_SID: &str = "9f1c2b3a-4d5e-4f60-8a71-b82c93d4e5f6";

fn golden_transcript() -> Vec<u8> {
    std::fs::read(format!("{FIXTURES}/golden-transcript.jsonl")).unwrap()
}

#[test]
fn golden_v1_imports_forever() {
    let w = World::new();
    let b = w.machine("b");
    let repo = w.checkout("b/widget", Some("https://github.com/acme/widget"));
    let out = b
        .run(
            &repo,
            &["import", &format!("{FIXTURES}/v1.ccsync"), "--json"],
        )
        .success();
    let json = stdout_json(&out);
    assert_eq!(json["projectKey"], "git:github.com/acme/widget");
    assert_eq!(json["action"], "installed");
    // v1 does not know the subdirectory: the session goes to --cwd itself.
    assert_eq!(
        std::fs::read(b.transcript(&repo, GOLDEN_SID)).unwrap(),
        golden_transcript()
    );
}

#[test]
fn golden_v2_imports_forever() {
    let w = World::new();
    let b = w.machine("b");
    let repo = w.checkout("b/widget", Some("git@github.com:acme/widget.git"));
    b.run(&repo, &["import", &format!("{FIXTURES}/v2.ccsync")])
        .success();
    let installed = std::fs::read(b.transcript(&repo.join("sub"), GOLDEN_SID)).unwrap();
    assert_eq!(installed, golden_transcript());
    assert_eq!(
        format!("{:x}", Sha256::digest(&installed)),
        "1a5a802e4b74a01d0f6fd4ea46819fff27c03c98200f39bec69e45795909b7bf"
    );
}

/// The side files in v3.ccsync: where each goes under the config dir (for
/// session GOLDEN_SID whose transcript is in folder `enc`), and its SHA-256.
fn golden_parts(enc: &str) -> Vec<(String, &'static str)> {
    let s = GOLDEN_SID;
    vec![
        (
            format!("projects/{enc}/{s}/subagents/agent-a3f9c21.jsonl"),
            "0dbb86c32afb8dbc0b598f6b3c6bbaec268428282e940f4a8394360e50d4cb15",
        ),
        (
            format!("projects/{enc}/{s}/subagents/agent-a3f9c21.meta.json"),
            "4a3df617c56bab0f98e5e8426d35dec92db8b8cf7913ec62d0c61a369e00e26b",
        ),
        (
            format!("projects/{enc}/{s}/tool-results/toolu_01ABC.txt"),
            "c25f8d41b8a6f5c7f71f3fe2600fe5dbc29ad54f0fd475882cca0cdf19b3b562",
        ),
        (
            format!("file-history/{s}/5d41402abc4b2a76@v1"),
            "9c4b92c4139cce26586b3b0a053b46759098bec1f27c96b3bfc7d11f3008088c",
        ),
        (
            format!("todos/{s}-agent-{s}.json"),
            "70c62f99340512e7be74e0dc7ba30f1b77374f12553c6cee3b341a5b9e4ff2c8",
        ),
        (
            format!("tasks/{s}/1.json"),
            "6818a7ee3732546a725700a43d154f02ab1300f8d1192381cff46a10405a138a",
        ),
    ]
}

/// Written by an independent encoder (Python's json module) from the
/// format's description: side files as text and as base64.
#[test]
fn golden_v3_imports_forever_with_its_side_files() {
    let w = World::new();
    let b = w.machine("b");
    let repo = w.checkout("b/widget", Some("git@github.com:acme/widget.git"));
    let out = b
        .run(
            &repo,
            &["import", &format!("{FIXTURES}/v3.ccsync"), "--json"],
        )
        .success();
    assert_eq!(stdout_json(&out)["sideFiles"]["written"], 6);
    let installed = std::fs::read(b.transcript(&repo.join("sub"), GOLDEN_SID)).unwrap();
    assert_eq!(installed, golden_transcript());
    let enc = encode(repo.join("sub").to_str().unwrap());
    for (path, sha256) in golden_parts(&enc) {
        let bytes = std::fs::read(b.claude.join(&path)).unwrap_or_else(|e| panic!("{path}: {e}"));
        assert_eq!(format!("{:x}", Sha256::digest(&bytes)), sha256, "{path}");
    }
    // Importing again writes nothing.
    let before = snapshot(&b.claude);
    let out = b
        .run(
            &repo,
            &["import", &format!("{FIXTURES}/v3.ccsync"), "--json"],
        )
        .success();
    assert_eq!(stdout_json(&out)["sideFiles"]["written"], 0);
    assert_eq!(snapshot(&b.claude), before);
}

fn v3_text() -> String {
    std::fs::read_to_string(format!("{FIXTURES}/v3.ccsync")).unwrap()
}

fn v2_text() -> String {
    std::fs::read_to_string(format!("{FIXTURES}/v2.ccsync")).unwrap()
}

/// Each case: a name and the bundle's bytes.
fn hostile_bundles() -> Vec<(&'static str, Vec<u8>)> {
    let good = v2_text();
    let mut obj: serde_json::Value = serde_json::from_str(&good).unwrap();
    let with = |field: &str, value: serde_json::Value| {
        let mut o = obj.clone();
        o[field] = value;
        serde_json::to_vec(&o).unwrap()
    };
    let cases = vec![
        ("empty", Vec::new()),
        ("blank", b" \n\t".to_vec()),
        ("truncated", good.as_bytes()[..good.len() - 40].to_vec()),
        ("not json", b"hello, world".to_vec()),
        ("array", b"[{\"_schemaVersion\":2}]".to_vec()),
        ("number", b"2".to_vec()),
        ("no version", b"{\"sessionId\":\"x\"}".to_vec()),
        ("unknown version", with("_schemaVersion", 99.into())),
        ("version as string", with("_schemaVersion", "2".into())),
        ("gzip", b"\x1f\x8b\x08\x00\x00\x00\x00\x00".to_vec()),
        ("wrong type", with("lineCount", "3".into())),
        ("sha mismatch", with("sha256", "0".repeat(64).into())),
        (
            "traversal id",
            with("sessionId", "../../../../etc/passwd".into()),
        ),
        ("absolute id", with("sessionId", "/tmp/evil".into())),
        (
            "nul id",
            with(
                "sessionId",
                "9f1c2b3a-4d5e-4f60-8a71-b82c93d4e5f\u{0}".into(),
            ),
        ),
        ("overlong id", with("sessionId", "9".repeat(5000).into())),
        ("machine with slash", with("machineName", "../evil".into())),
        (
            "machine overlong",
            with("machineName", "m".repeat(65).into()),
        ),
        ("key traversal", with("projectKey", "name:../../..".into())),
        (
            "relative escapes",
            with("relativeCwd", "../../../.ssh".into()),
        ),
        ("relative absolute", with("relativeCwd", "/etc".into())),
        ("cwd nul", with("originalCwd", "/a\u{0}b".into())),
    ];
    obj.as_object_mut().unwrap().remove("jsonl");
    let mut cases = cases;
    cases.push(("missing field", serde_json::to_vec(&obj).unwrap()));
    // Side files: edited as text, so that field order stays as written.
    let v3 = v3_text();
    let part = "subagents/agent-a3f9c21.meta.json";
    let edits: [(&'static str, &str, String); 9] = [
        (
            "part escapes",
            part,
            "../../../../.ssh/authorized_keys".into(),
        ),
        ("part absolute", part, "/etc/cron.d/x".into()),
        ("part escapes its root", part, "subagents/../../../x".into()),
        ("part outside the session", part, "memory/MEMORY.md".into()),
        ("part credentials", part, ".credentials.json".into()),
        ("part twice", part, "tasks/1.json".into()),
        ("part backslash", part, "subagents\\\\..\\\\x".into()),
        (
            "part sha mismatch",
            "4a3df617c56bab0f98e5e8426d35dec92db8b8cf7913ec62d0c61a369e00e26b",
            "0".repeat(64),
        ),
        ("part wrong size", "\"size\":52", "\"size\":51".into()),
    ];
    for (name, from, to) in edits {
        assert!(v3.contains(from), "{name}");
        cases.push((name, v3.replacen(from, &to, 1).into_bytes()));
    }
    cases.push((
        "part in a v2 bundle",
        v3.replacen("\"_schemaVersion\":3", "\"_schemaVersion\":2", 1)
            .into_bytes(),
    ));
    cases.push((
        "part truncated",
        v3.as_bytes()[..v3.find("tool-results").unwrap() + 100].to_vec(),
    ));
    cases
}

#[test]
fn hostile_and_malformed_bundles_change_nothing() {
    let w = World::new();
    let b = w.machine("b");
    let repo = w.checkout("b/widget", Some("git@github.com:acme/widget.git"));
    // An existing session must survive every attempt too.
    b.write_session(&repo, SID, &transcript(SID, &repo, 2, "keep"));
    let before = snapshot(&b.claude);
    for (name, bytes) in hostile_bundles() {
        let file = w.root().join(format!("{}.ccsync", name.replace(' ', "-")));
        std::fs::write(&file, &bytes).unwrap();
        let out = b
            .run(&repo, &["import", file.to_str().unwrap()])
            .code(1)
            .stderr(predicate::str::contains(file.to_str().unwrap()));
        let err = stderr(&out);
        assert!(err.starts_with("Error: "), "{name}: {err}");
        assert_eq!(snapshot(&b.claude), before, "{name} changed the config dir");
    }
}

#[test]
fn bundle_error_messages_say_what_is_wrong() {
    let w = World::new();
    let b = w.machine("b");
    let cases = [
        ("empty", "is empty"),
        ("truncated", "may be truncated"),
        ("unknown version", "reads versions 1 to 5"),
        ("part escapes", "side file path"),
        ("part sha mismatch", "SHA-256"),
        ("gzip", "gzip-compressed"),
        ("sha mismatch", "SHA-256"),
        ("traversal id", "sessionId"),
        ("missing field", "missing field `jsonl`"),
    ];
    let bundles = hostile_bundles();
    for (name, want) in cases {
        let bytes = &bundles.iter().find(|(n, _)| *n == name).unwrap().1;
        let file = w.root().join("bad.ccsync");
        std::fs::write(&file, bytes).unwrap();
        b.run(&w.root(), &["import", file.to_str().unwrap()])
            .code(1)
            .stderr(predicate::str::contains(want));
    }
}

#[test]
fn an_oversized_bundle_is_refused_unread() {
    let w = World::new();
    let b = w.machine("b");
    let file = w.root().join("huge.ccsync");
    let f = std::fs::File::create(&file).unwrap();
    f.set_len(ccsync::bundle::MAX_BUNDLE_BYTES + 1).unwrap(); // sparse
    b.run(&w.root(), &["import", file.to_str().unwrap()])
        .code(1)
        .stderr(predicate::str::contains("limit"));
    assert!(!b.claude.exists());
}

/// Machine A pushed one session; B has a checkout of the same project.
/// Returns the world, B, B's checkout and the project's folder in the sync dir.
fn one_session_pushed_by_a() -> (World, Machine, std::path::PathBuf, std::path::PathBuf) {
    let w = World::new();
    let a = w.machine("a");
    let b = w.machine("b");
    let a_repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    let b_repo = w.checkout("b/w", Some("git@github.com:acme/widget.git"));
    a.init(&w);
    b.init(&w);
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "ok"));
    a.run(&a_repo, &["push"]).success();
    let dir = w.sync_dir().join("git=github.com_acme_widget");
    (w, b, b_repo, dir)
}

#[test]
fn a_bad_file_in_the_sync_dir_is_skipped_and_the_rest_arrive() {
    let (_w, b, b_repo, dir) = one_session_pushed_by_a();
    std::fs::write(
        dir.join(format!("{SID2}-evil.ccsync")),
        b"{\"_schemaVersion\":2,",
    )
    .unwrap();
    // A bundle whose contents disagree with its name.
    let good = std::fs::read(dir.join(format!("{SID}-a.ccsync"))).unwrap();
    std::fs::write(dir.join(format!("{SID2}-liar.ccsync")), good).unwrap();

    let out = b.run(&b_repo, &["pull", "--json"]).code(3);
    let json = stdout_json(&out);
    assert_eq!(json["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(json["failed"].as_array().unwrap().len(), 2);
    assert!(stderr(&out).contains(&format!("{SID2}-evil.ccsync")));
    assert!(stderr(&out).contains("do not match its name"));
    assert!(b.transcript(&b_repo, SID).is_file());
    assert!(!b.transcript(&b_repo, SID2).exists());
}

#[cfg(unix)]
#[test]
fn links_in_the_sync_dir_are_not_followed() {
    let (w, b, b_repo, dir) = one_session_pushed_by_a();
    let outside = w.root().join("outside.ccsync");
    std::fs::rename(dir.join(format!("{SID}-a.ccsync")), &outside).unwrap();
    std::os::unix::fs::symlink(&outside, dir.join(format!("{SID}-a.ccsync"))).unwrap();
    let out = b.run(&b_repo, &["pull", "--json"]).code(3);
    assert_eq!(stdout_json(&out)["sessions"], serde_json::json!([]));
    let said = stderr(&out);
    assert!(
        said.contains(&format!("{SID}-a.ccsync")) && said.contains("symbolic link"),
        "{said}"
    );
    assert!(!b.transcript(&b_repo, SID).exists());
}
