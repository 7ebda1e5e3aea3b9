//! An encrypted sync dir (age), with keys the tests make: age identities
//! and ssh keys from `ssh-keygen`. Only ciphertext is stored; a machine
//! without a key for it is refused and writes nothing; altered and
//! plaintext objects are refused; a new machine's key can be added. And
//! every object is compressed: the real transcripts of the corpus shrink.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use crate::env::*;

/// An age identity file and its public key.
fn age_key(dir: &Path, name: &str) -> (String, PathBuf) {
    use age::secrecy::ExposeSecret;
    let id = age::x25519::Identity::generate();
    let path = dir.join(name);
    std::fs::write(&path, format!("{}\n", id.to_string().expose_secret())).unwrap();
    (id.to_public().to_string(), path)
}

/// An unencrypted ed25519 ssh key: (public key file, private key file).
fn ssh_key(dir: &Path, name: &str) -> Option<(PathBuf, PathBuf)> {
    let key = dir.join(name);
    let ok = StdCommand::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", name, "-f"])
        .arg(&key)
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        skip_or_fail("encryption with ssh keys: ssh-keygen is not installed");
        return None;
    }
    Some((key.with_extension("pub"), key))
}

/// Every byte stored in the sync dir.
fn stored(w: &World) -> Vec<u8> {
    walk(&w.sync_dir())
        .into_iter()
        .filter(|p| p.is_file())
        .flat_map(|p| std::fs::read(p).unwrap())
        .collect()
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

struct Setup {
    w: World,
    a: Machine,
    a_repo: PathBuf,
    b: Machine,
    b_repo: PathBuf,
    keys: PathBuf,
}

/// A with an age key, B with an ssh key; A encrypts the sync dir to both,
/// B joins with its identity alone.
fn encrypted_pair() -> Option<Setup> {
    let w = World::new();
    let keys = w.root().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (a_pub, a_key) = age_key(&keys, "a.age");
    let (b_pub, b_key) = ssh_key(&keys, "b_ed25519")?;
    let a = w.machine("a");
    let b = w.machine("b");
    let a_repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    let b_repo = w.checkout("b/w", Some("https://github.com/acme/widget"));
    let dir = w.sync_dir();
    let dir = dir.to_str().unwrap();
    a.run(
        &w.root(),
        &[
            "init",
            dir,
            "--create",
            "--name",
            "a",
            "--recipient",
            &a_pub,
            "--recipient",
            b_pub.to_str().unwrap(),
            "--identity",
            a_key.to_str().unwrap(),
        ],
    )
    .success();
    b.run(
        &w.root(),
        &[
            "init",
            dir,
            "--name",
            "b",
            "--identity",
            b_key.to_str().unwrap(),
        ],
    )
    .success();
    Some(Setup {
        w,
        a,
        a_repo,
        b,
        b_repo,
        keys,
    })
}

#[test]
fn an_encrypted_sync_dir_holds_only_ciphertext_and_round_trips() {
    let Some(Setup {
        w,
        a,
        a_repo,
        b,
        b_repo,
        ..
    }) = encrypted_pair()
    else {
        return;
    };
    let bytes = transcript(SID, &a_repo, 6, "TOP-SECRET-PROMPT");
    a.write_session(&a_repo, SID, &bytes);
    let side = a.project_dir(&a_repo).join(SID).join("tool-results/t.txt");
    std::fs::create_dir_all(side.parent().unwrap()).unwrap();
    std::fs::write(&side, b"SIDE-FILE-SECRET\n").unwrap();
    a.run(&a_repo, &["push"]).success();

    let all = stored(&w);
    for secret in [
        "TOP-SECRET-PROMPT",
        "SIDE-FILE-SECRET",
        a_repo.to_str().unwrap(),
        "2.1.330",
    ] {
        assert!(
            !contains(&all, secret),
            "{secret} is in the sync dir in plaintext"
        );
    }
    let record: serde_json::Value = serde_json::from_slice(
        &std::fs::read(w.sync_dir().join("ccsync/encryption.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(record["encryption"], "age");
    assert_eq!(record["recipients"].as_array().unwrap().len(), 2);
    assert!(!contains(&all, "AGE-SECRET-KEY"), "a private key travelled");

    b.run(&b_repo, &["pull"]).success();
    assert_eq!(std::fs::read(b.transcript(&b_repo, SID)).unwrap(), bytes);
    let b_side = b.project_dir(&b_repo).join(SID).join("tool-results/t.txt");
    assert_eq!(std::fs::read(b_side).unwrap(), b"SIDE-FILE-SECRET\n");

    // And back, with an ssh key this time encrypting.
    let more = transcript(SID, &b_repo, 8, "TOP-SECRET-PROMPT");
    b.append(&b_repo, SID, &more[bytes.len()..]);
    b.run(&b_repo, &["push"]).success();
    a.run(&a_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(a.transcript(&a_repo, SID)).unwrap(),
        std::fs::read(b.transcript(&b_repo, SID)).unwrap()
    );
}

#[test]
fn a_machine_without_a_key_for_it_is_refused_and_writes_nothing() {
    let Some(Setup {
        w, a, a_repo, keys, ..
    }) = encrypted_pair()
    else {
        return;
    };
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "x"));
    a.run(&a_repo, &["push"]).success();
    let before = snapshot(&w.sync_dir());
    let dir = w.sync_dir();
    let dir = dir.to_str().unwrap();

    let (_, c_key) = age_key(&keys, "c.age");
    let c = w.machine("c");
    let out = c
        .run(
            &w.root(),
            &[
                "init",
                dir,
                "--name",
                "c",
                "--identity",
                c_key.to_str().unwrap(),
            ],
        )
        .code(1);
    let said = stderr(&out);
    assert!(said.contains(c_key.to_str().unwrap()), "{said}");
    assert!(
        said.contains("age1") && said.contains("ssh-ed25519"),
        "names the recipients: {said}"
    );
    assert!(!c.cfg.join("config.toml").exists());

    let d = w.machine("d");
    let out = d.run(&w.root(), &["init", dir, "--name", "d"]).code(1);
    assert!(stderr(&out).contains("is encrypted"), "{}", stderr(&out));
    assert!(!d.cfg.join("config.toml").exists());
    assert_eq!(
        snapshot(&w.sync_dir()),
        before,
        "a refused machine wrote to the sync dir"
    );
}

#[test]
fn altered_and_plaintext_objects_in_an_encrypted_sync_dir_are_refused() {
    let Some(Setup {
        w,
        a,
        a_repo,
        b,
        b_repo,
        ..
    }) = encrypted_pair()
    else {
        return;
    };
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 4, "x"));
    a.write_session(&a_repo, SID2, &transcript(SID2, &a_repo, 4, "y"));
    a.run(&a_repo, &["push"]).success();
    let dir = w.sync_dir().join("git=github.com_acme_widget");
    // A flipped bit in the middle of the ciphertext.
    let object = dir.join(format!("{SID}-a.ccsync"));
    let mut bytes = std::fs::read(&object).unwrap();
    let mid = bytes.len() - 40;
    bytes[mid] ^= 0x10;
    std::fs::write(&object, bytes).unwrap();
    // A plain bundle planted by someone without the keys.
    let plain = w.root().join("plain.ccsync");
    a.run(&a_repo, &["export", SID2, "-o", plain.to_str().unwrap()])
        .success();
    std::fs::copy(&plain, dir.join(format!("{SID2}-evil.ccsync"))).unwrap();

    let out = b.run(&b_repo, &["pull"]).code(3);
    let said = stderr(&out);
    assert!(
        said.contains(&format!("{SID}-a.ccsync")) && said.contains("altered"),
        "{said}"
    );
    assert!(
        said.contains(&format!("{SID2}-evil.ccsync")) && said.contains("not encrypted"),
        "{said}"
    );
    assert!(
        !b.transcript(&b_repo, SID).exists(),
        "an altered object was installed"
    );
    // The good copy of the other session still arrives.
    assert!(b.transcript(&b_repo, SID2).is_file());
}

/// Segments are layered like whole bundles: encrypted, and refused when
/// altered, plaintext, or encrypted to other keys, with nothing written.
#[test]
fn segments_in_an_encrypted_sync_dir_are_ciphertext_and_checked() {
    let Some(Setup {
        w,
        a,
        a_repo,
        b,
        b_repo,
        ..
    }) = encrypted_pair()
    else {
        return;
    };
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 400, "base"));
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();
    let marker = "a secret plan for the segment";
    a.append(&a_repo, SID, &transcript(SID, &a_repo, 2, marker));
    a.run(&a_repo, &["push"]).success();
    let dir = w.sync_dir().join("git=github.com_acme_widget");
    let segment = dir.join(format!("{SID}-a.1.ccseg"));
    let sealed = std::fs::read(&segment).unwrap();
    assert!(sealed.starts_with(b"age-encryption.org/"));
    assert!(!contains(&stored(&w), marker) && !contains(&stored(&w), SID));

    let fixture = concat!(env!("CARGO_MANIFEST_DIR"), "/fixtures/v5-segment-1.ccseg");
    let other = age::x25519::Identity::generate().to_public();
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("altered", {
            let mut bytes = sealed.clone();
            let mid = bytes.len() - 40;
            bytes[mid] ^= 0x10;
            bytes
        }),
        ("not encrypted", std::fs::read(fixture).unwrap()),
        (
            "other keys",
            age::encrypt(&other, &std::fs::read(fixture).unwrap()).unwrap(),
        ),
    ];
    let transcript_before = std::fs::read(b.transcript(&b_repo, SID)).unwrap();
    for (what, bytes) in cases {
        std::fs::write(&segment, &bytes).unwrap();
        let out = b.run(&b_repo, &["pull"]).failure();
        let said = stderr(&out);
        assert!(said.contains(&format!("{SID}-a.1.ccseg")), "{what}: {said}");
        assert!(said.contains(what), "{what}: {said}");
        assert_eq!(
            std::fs::read(b.transcript(&b_repo, SID)).unwrap(),
            transcript_before,
            "{what}"
        );
    }
    std::fs::write(&segment, &sealed).unwrap();
    b.run(&b_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(b.transcript(&b_repo, SID)).unwrap(),
        std::fs::read(a.transcript(&a_repo, SID)).unwrap()
    );
}

/// A plain sync dir in use, then encrypted: what is there is encrypted, and
/// a machine still set up for plaintext can neither push nor pull.
#[test]
fn turning_encryption_on_encrypts_what_is_there_and_stops_plain_machines() {
    let Pair {
        w,
        a,
        a_repo,
        b,
        b_repo,
    } = pair();
    a.write_session(
        &a_repo,
        SID,
        &transcript(SID, &a_repo, 4, "BEFORE-ENCRYPTION"),
    );
    a.run(&a_repo, &["push"]).success();
    assert!(
        !contains(&stored(&w), "BEFORE-ENCRYPTION"),
        "compressed, at least"
    );
    let keys = w.root().join("keys");
    std::fs::create_dir_all(&keys).unwrap();
    let (a_pub, a_key) = age_key(&keys, "a.age");
    let out = a
        .run(
            &w.root(),
            &[
                "init",
                w.sync_dir().to_str().unwrap(),
                "--name",
                "a",
                "--recipient",
                &a_pub,
                "--identity",
                a_key.to_str().unwrap(),
            ],
        )
        .success();
    assert!(
        stderr(&out).contains("encrypted 1 object"),
        "{}",
        stderr(&out)
    );
    let object = w
        .sync_dir()
        .join(format!("git=github.com_acme_widget/{SID}-a.ccsync"));
    assert!(
        std::fs::read(&object)
            .unwrap()
            .starts_with(b"age-encryption.org/")
    );

    let before = snapshot(&w.sync_dir());
    b.write_session(&b_repo, SID2, &transcript(SID2, &b_repo, 2, "PLAIN-B"));
    let out = b.run(&b_repo, &["push"]).code(1);
    assert!(stderr(&out).contains("encrypted"), "{}", stderr(&out));
    let out = b.run(&b_repo, &["pull"]).code(1);
    assert!(stderr(&out).contains("--identity"), "{}", stderr(&out));
    assert_eq!(snapshot(&w.sync_dir()), before);
    assert!(!b.transcript(&b_repo, SID).exists());
    a.run(&a_repo, &["pull"]).success();
}

#[test]
fn recipients_add_reencrypts_for_a_new_machine() {
    let Some(Setup {
        w, a, a_repo, keys, ..
    }) = encrypted_pair()
    else {
        return;
    };
    let bytes = transcript(SID, &a_repo, 4, "for-c");
    a.write_session(&a_repo, SID, &bytes);
    a.run(&a_repo, &["push"]).success();
    let (c_pub, c_key) = age_key(&keys, "c.age");
    let out = a.run(&a_repo, &["recipients", "add", &c_pub]).success();
    assert!(
        stderr(&out).contains("re-encrypted 1 object"),
        "{}",
        stderr(&out)
    );
    let listed = a.run(&a_repo, &["recipients"]).success();
    assert!(String::from_utf8_lossy(&listed.get_output().stdout).contains(&c_pub));

    let c = w.machine("c");
    let c_repo = w.checkout("c/w", Some("git@github.com:acme/widget.git"));
    let dir = w.sync_dir();
    c.run(
        &w.root(),
        &[
            "init",
            dir.to_str().unwrap(),
            "--name",
            "c",
            "--identity",
            c_key.to_str().unwrap(),
        ],
    )
    .success();
    c.run(&c_repo, &["pull"]).success();
    assert_eq!(std::fs::read(c.transcript(&c_repo, SID)).unwrap(), bytes);
}

/// The real transcripts of the corpus, through the layers a sync dir
/// stores them with: compressed to at most 30% of their size (plain and
/// encrypted), and back byte for byte.
#[test]
#[ignore = "needs a transcript corpus: CCSYNC_CORPUS (README: Tests)"]
fn corpus_transcripts_shrink_and_come_back_byte_for_byte() {
    use ccsync::bundle::layers::Layers;
    use std::io::{Read, Write};
    let Some(dir) = crate::corpus::corpus_dir() else {
        return skip_or_fail("no corpus: set CCSYNC_CORPUS to the shared corpus folder");
    };
    let tmp = tempfile::tempdir().unwrap();
    let (a_pub, a_key) = age_key(tmp.path(), "k");
    let plain = Layers::compressed();
    let sealed = Layers::encrypted(std::slice::from_ref(&a_pub), Some(&a_key)).unwrap();
    let (mut total, mut zstd_total, mut age_total, mut n) = (0usize, 0usize, 0usize, 0);
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "jsonl") {
            continue;
        }
        let bytes = std::fs::read(&path).unwrap();
        let complete = &bytes[..ccsync::claude::transcript::complete_len(&bytes)];
        if complete.is_empty() || std::str::from_utf8(complete).is_err() {
            continue;
        }
        let bundle = ccsync::bundle::Bundle {
            meta: ccsync::bundle::Meta {
                version: ccsync::bundle::CURRENT_VERSION,
                session_id: ccsync::names::SessionId::parse(SID).unwrap(),
                project_key: ccsync::project::ProjectKey::parse("git:github.com/acme/w").unwrap(),
                original_cwd: "/w".into(),
                relative_cwd: Some(ccsync::names::RelPath::default()),
                machine: ccsync::names::MachineName::parse("a").unwrap(),
                exported_at_ms: 0,
                modified_ms: Some(0),
                parts_modified_ms: Default::default(),
                segment: None,
            },
            transcript: complete.to_vec(),
            parts: Vec::new(),
        };
        let json = bundle.to_bytes().unwrap();
        for (layers, sum) in [(&plain, &mut zstd_total), (&sealed, &mut age_total)] {
            let mut out = Vec::new();
            let mut w = layers.writer(&mut out).unwrap();
            w.write_all(&json).unwrap();
            w.finish().unwrap();
            *sum += out.len();
            let mut back = Vec::new();
            layers
                .reader(&out[..])
                .unwrap()
                .read_to_end(&mut back)
                .unwrap();
            let decoded = ccsync::bundle::Bundle::decode(&back).unwrap();
            assert!(decoded.transcript == complete, "{} changed", path.display());
        }
        total += complete.len();
        n += 1;
    }
    assert!(n >= 20, "corpus looks incomplete");
    let ratio = |x: usize| x as f64 / total as f64;
    eprintln!(
        "corpus: {n} transcripts, {total} bytes; zstd {:.1}%, zstd+age {:.1}%",
        100.0 * ratio(zstd_total),
        100.0 * ratio(age_total)
    );
    assert!(ratio(zstd_total) <= 0.30 && ratio(age_total) <= 0.30);
}

/// A machine set up for encryption that is pointed at another sync dir
/// (or finds the record gone) stays encrypted: it never turns to plaintext
/// without being told.
#[test]
fn init_again_keeps_a_machine_encrypted() {
    let Some(Setup { w, a, a_repo, .. }) = encrypted_pair() else {
        return;
    };
    let elsewhere = w.root().join("another-sync");
    std::fs::create_dir(&elsewhere).unwrap();
    a.run(
        &w.root(),
        &["init", elsewhere.to_str().unwrap(), "--name", "a"],
    )
    .success();
    let config = std::fs::read_to_string(a.cfg.join("config.toml")).unwrap();
    assert!(config.contains("recipients"), "{config}");
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "STILL-SECRET"));
    a.run(&a_repo, &["push"]).success();
    let object = elsewhere.join(format!("git=github.com_acme_widget/{SID}-a.ccsync"));
    assert!(
        std::fs::read(&object)
            .unwrap()
            .starts_with(b"age-encryption.org/")
    );
    assert!(elsewhere.join("ccsync/encryption.json").is_file());
}
