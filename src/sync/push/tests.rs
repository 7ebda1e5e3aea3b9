use super::*;
use std::fs::File;

use crate::bundle;
use crate::bundle::Bundle;
use crate::claude::sessions::SessionFile;
use crate::index::Index;
use crate::names::MachineName;
use crate::names::RelPath;
use crate::transport::memory::MemoryTransport;

fn session(dir: &Path, bytes: &[u8]) -> (LocalSession, Placement) {
    let path = dir.join("5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl");
    std::fs::write(&path, bytes).unwrap();
    let file = SessionFile {
        id: SessionId::parse("5c0375b4-57a5-4f26-b12d-d022ee4e51b7").unwrap(),
        dir_name: "-w".into(),
        path,
        size: bytes.len() as u64,
        modified: std::time::SystemTime::now(),
    };
    let placement = Placement {
        key: ProjectKey::parse("git:example.org/w").unwrap(),
        root: "/w".into(),
        relative: RelPath::default(),
    };
    (
        LocalSession {
            file,
            cwd: "/w".into(),
        },
        placement,
    )
}

fn run(
    t: &MemoryTransport,
    dir: &Path,
    s: &[(LocalSession, Placement)],
    m: &MachineName,
    force: bool,
    index: &mut Index,
) -> PushReport {
    let staging = crate::config::ConfigDir::new(dir.join("cfg"))
        .staging()
        .unwrap();
    let mut link = Link {
        transport: t,
        layers: &crate::bundle::layers::Layers::compressed(),
        staging: &staging,
        machine: m,
        index,
        progress: &crate::sync::Quiet,
        dry_run: false,
    };
    let home =
        crate::claude::ClaudeHome::resolve(Some(dir.join("claude").into()), None, None).unwrap();
    push(
        &mut link,
        &PartFinder::new(&home),
        s,
        1,
        force,
        SecretScan::Warn,
    )
    .unwrap()
}

#[test]
fn pushes_then_skips_unchanged_then_refuses_to_rewind() {
    let tmp = tempfile::tempdir().unwrap();
    let t = MemoryTransport::new();
    let m = MachineName::parse("me").unwrap();
    let s = [session(tmp.path(), b"{\"a\":1}\n{\"b\":2}\n{\"partial")];
    let r = run(&t, tmp.path(), &s, &m, false, &mut Index::default());
    assert_eq!(r.pushed[0].lines, 2);
    assert_eq!(r.pushed[0].partial_tail, 9);
    let stored = t.get(&r.pushed[0].object).unwrap();
    assert!(stored.starts_with(b"\x28\xb5\x2f\xfd"), "stored compressed");
    let plain = zstd::decode_all(&stored[..]).unwrap();
    assert_eq!(
        Bundle::decode(&plain).unwrap().transcript,
        b"{\"a\":1}\n{\"b\":2}\n"
    );

    let r = run(&t, tmp.path(), &s, &m, false, &mut Index::default());
    assert_eq!((r.pushed.len(), r.unchanged.len()), (0, 1));

    let s = [session(tmp.path(), b"{\"a\":1}\n")];
    let r = run(&t, tmp.path(), &s, &m, false, &mut Index::default());
    assert!(matches!(
        r.failed[0].1,
        SessionError::WouldRewind {
            pushed_bytes: 16,
            local_bytes: 8,
            ..
        }
    ));
    assert_eq!(
        t.get(&ObjectName::for_session(&s[0].1.key, &s[0].0.file.id, &m))
            .unwrap(),
        stored
    );
    let r = run(&t, tmp.path(), &s, &m, true, &mut Index::default());
    assert_eq!(r.pushed.len(), 1);
}

/// With an index, an unchanged session is not even opened, and a grown
/// or rewritten one is judged by the hash of what was pushed.
#[test]
fn the_index_spares_reading_and_fetching() {
    let tmp = tempfile::tempdir().unwrap();
    let t = MemoryTransport::new();
    let m = MachineName::parse("me").unwrap();
    let mut index = Index::default();
    let s = [session(tmp.path(), b"{\"a\":1}\n")];
    assert_eq!(
        run(&t, tmp.path(), &s, &m, false, &mut index).pushed.len(),
        1
    );
    // Unreadable now: only the index can say it is unchanged.
    let hidden = tmp.path().join("hidden");
    std::fs::rename(&s[0].0.file.path, &hidden).unwrap();
    let r = run(&t, tmp.path(), &s, &m, false, &mut index);
    assert_eq!((r.unchanged.len(), r.failed.len()), (1, 0));
    std::fs::rename(&hidden, &s[0].0.file.path).unwrap();

    let grown = [session(tmp.path(), b"{\"a\":1}\n{\"b\":2}\n")];
    assert_eq!(
        run(&t, tmp.path(), &grown, &m, false, &mut index)
            .pushed
            .len(),
        1
    );
    let rewritten = [session(tmp.path(), b"{\"a\":9}\n{\"b\":2}\n{\"c\":3}\n")];
    let r = run(&t, tmp.path(), &rewritten, &m, false, &mut index);
    assert!(matches!(r.failed[0].1, SessionError::WouldRewind { .. }));
}

/// Side files that would take the bundle past the limit stay behind,
/// largest first, and are named; the session still travels.
#[test]
fn side_files_past_the_bundle_limit_stay_behind() {
    use crate::claude::parts::LocalPart;
    use crate::names::PartPath;
    let tmp = tempfile::tempdir().unwrap();
    let (s, placement) = session(tmp.path(), b"{\"a\":1}\n");
    let small = tmp.path().join("small");
    std::fs::write(&small, b"x").unwrap();
    let huge = tmp.path().join("huge");
    let f = File::create(&huge).unwrap();
    f.set_len(bundle::MAX_BUNDLE_BYTES).unwrap(); // sparse
    let part = |path: &str, file: &Path| LocalPart {
        path: PartPath::parse(path).unwrap(),
        file: file.to_path_buf(),
        stamp: Stamp::of(file).unwrap(),
    };
    let parts = Parts {
        found: vec![
            part("file-history/huge@v1", &huge),
            part("file-history/small@v1", &small),
        ],
        skipped: Vec::new(),
    };
    let m = MachineName::parse("me").unwrap();
    let out = prepare(&s, parts, &placement, &m, 1).unwrap();
    assert_eq!(out.parts.len(), 1);
    assert_eq!(out.parts[0].path.to_string(), "file-history/small@v1");
    assert_eq!(out.skipped_parts.len(), 1);
    assert_eq!(out.skipped_parts[0].0, huge);
    assert!(out.skipped_parts[0].1.contains("limit"));
}

#[test]
fn nothing_complete_is_nothing_to_push() {
    let tmp = tempfile::tempdir().unwrap();
    let t = MemoryTransport::new();
    let m = MachineName::parse("me").unwrap();
    let r = run(
        &t,
        tmp.path(),
        &[session(tmp.path(), b"{\"half")],
        &m,
        false,
        &mut Index::default(),
    );
    assert!(matches!(r.failed[0].1, SessionError::NoCompleteLine { .. }));
    assert!(t.names().is_empty());
}
