//! The ssh transport when the remote side misbehaves: links planted in the
//! sync dir, an object over the size limit, a host that stops answering.
//! Same real sshd on 127.0.0.1 as `ssh.rs`; the remote dir is local, so the
//! tests can plant things in it and watch it.

use std::path::Path;
use std::time::{Duration, SystemTime};

use crate::env::*;
use crate::ssh::{run, setup};
use crate::sshd::HOST;

const SID3: &str = "7d3e2f10-4b5a-4c6d-9e8f-0a1b2c3d4e5f";
const WIDGET: &str = "git=github.com_acme_widget";

/// No line of ccsync's stderr gives a reason that is empty (`…failed: ;`,
/// a line ending in a colon).
fn assert_no_empty_reason(err: &str) {
    for line in err.lines() {
        let line = line.trim_end();
        assert!(
            !line.ends_with(':') && !line.contains(": ;") && !line.contains(":  "),
            "empty reason in {line:?}"
        );
    }
}

fn set_mtime(path: &Path, ago: Duration) {
    std::fs::File::options()
        .write(true)
        .open(path)
        .unwrap()
        .set_modified(SystemTime::now() - ago)
        .unwrap();
}

/// Names (hidden ones included) directly in `dir`.
fn names(dir: &Path) -> Vec<String> {
    let mut out: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    out.sort();
    out
}

#[cfg(target_os = "linux")]
fn wait_for(child: &mut std::process::Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = std::time::Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().unwrap() {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[cfg(target_os = "linux")]
/// A transcript of about `mb` megabytes: long lines, so encoding it is
/// quick, of random text, so compressing it leaves most of it to send.
fn big_transcript(id: &str, cwd: &Path, mb: usize) -> Vec<u8> {
    let mut out = Vec::new();
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    while out.len() < mb * 1_000_000 {
        let tag: String = (0..250)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                format!("{:08x}", x as u32)
            })
            .collect();
        out.extend(transcript(id, cwd, 1, &tag));
    }
    out
}

#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn a_host_that_freezes_mid_push_ends_it_in_bounded_time() {
    use std::io::Read;
    use std::process::Stdio;
    use std::time::Instant;

    let Some(s) = setup("frozen") else { return };
    s.a.write_session(&s.a_repo, SID, &big_transcript(SID, &s.a_repo, 60));
    let mut push =
        s.a.std_cmd(&s.a_repo)
            .env("CCSYNC_SSH_COMMAND", &s.ssh)
            .env("CCSYNC_SSH_TIMEOUT", "5")
            .arg("push")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
    let mut stderr_pipe = push.stderr.take().unwrap();
    let stderr = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr_pipe.read_to_string(&mut text);
        text
    });

    // The store's temp dir appears as the upload starts: freeze then.
    let started = Instant::now();
    let uploading = || {
        names(&s.remote)
            .iter()
            .any(|n| n.starts_with(".ccsync-") && s.remote.join(n).is_dir())
    };
    while !uploading() {
        assert!(
            push.try_wait().unwrap().is_none(),
            "the push ended before the upload could be caught: {}",
            stderr.join().unwrap()
        );
        assert!(started.elapsed() < Duration::from_secs(120), "no upload");
        std::thread::sleep(Duration::from_millis(1));
    }
    let frozen = s.server.freeze();
    let froze_at = Instant::now();
    let status = wait_for(&mut push, Duration::from_secs(40));
    let took = froze_at.elapsed();
    if status.is_none() {
        let _ = push.kill();
    }
    let err = stderr.join().unwrap();
    eprintln!("frozen host, CCSYNC_SSH_TIMEOUT=5: the push ended after {took:?}");
    let status = status.unwrap_or_else(|| panic!("push still running 40 s after the freeze"));
    assert!(!status.success());
    assert!(err.contains(HOST), "{err}");
    assert!(err.contains("stopped answering"), "{err}");
    assert!(err.contains("CCSYNC_SSH_TIMEOUT"), "{err}");
    let object = s.remote.join(WIDGET).join(format!("{SID}-laptop.ccsync"));
    assert!(!object.exists(), "a half-sent object under its final name");

    // The host comes back (its frozen processes end): the next push works
    // and removes what the killed one left.
    drop(frozen);
    run(&s.a, &s.ssh, &s.a_repo, &["push"]).success();
    assert!(object.is_file());
    let left: Vec<String> = names(&s.remote)
        .into_iter()
        .filter(|n| n.starts_with(".ccsync-"))
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

#[cfg(unix)]
#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn planted_links_are_refused_by_path_and_their_targets_untouched() {
    let Some(s) = setup("linked") else { return };
    let a_gizmo =
        s.w.checkout("a/gizmo", Some("git@github.com:acme/gizmo.git"));
    let a_gadget =
        s.w.checkout("a/gadget", Some("git@github.com:acme/gadget.git"));
    let b_gadget =
        s.w.checkout("b/gadget", Some("https://github.com/acme/gadget"));
    s.a.write_session(&s.a_repo, SID, &transcript(SID, &s.a_repo, 4, "w"));
    s.a.write_session(&a_gizmo, SID2, &transcript(SID2, &a_gizmo, 4, "g"));
    s.a.write_session(&a_gadget, SID3, &transcript(SID3, &a_gadget, 4, "ok"));

    // Outside the sync dir: an old temp file and a file someone cares about.
    let outside = s.w.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join(".ccsync-other-12345678"), b"victim").unwrap();
    set_mtime(
        &outside.join(".ccsync-other-12345678"),
        Duration::from_secs(7200),
    );
    std::fs::write(outside.join("notes.txt"), b"precious").unwrap();
    // The project folder is a link; in another, the object itself is; and
    // at the top, a link named like this machine's leftover temp dir.
    let linked_dir = s.remote.join(WIDGET);
    std::os::unix::fs::symlink(&outside, &linked_dir).unwrap();
    let gizmo = s.remote.join("git=github.com_acme_gizmo");
    std::fs::create_dir_all(&gizmo).unwrap();
    let linked_file = gizmo.join(format!("{SID2}-laptop.ccsync"));
    std::os::unix::fs::symlink(outside.join("notes.txt"), &linked_file).unwrap();
    std::os::unix::fs::symlink(&outside, s.remote.join(".ccsync-laptop-abcdefgh")).unwrap();
    let before = snapshot(&outside);
    let before_names = names(&outside);

    let out = run(&s.a, &s.ssh, &s.a_repo, &["push", "--all"]).code(3);
    let err = stderr(&out);
    assert_no_empty_reason(&err);
    for link in [&linked_dir, &linked_file] {
        assert!(
            err.contains(link.to_str().unwrap()),
            "{link:?} not named in {err}"
        );
    }
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(
        names(&outside),
        before_names,
        "written or deleted through a link"
    );
    assert_eq!(snapshot(&outside), before);
    assert!(
        std::fs::symlink_metadata(&linked_file)
            .unwrap()
            .is_symlink()
    );
    let good = s
        .remote
        .join("git=github.com_acme_gadget")
        .join(format!("{SID3}-laptop.ccsync"));
    assert!(
        good.is_file(),
        "the fine project was stored in the same run"
    );

    let out = run(&s.b, &s.ssh, &b_gadget, &["pull"]).code(3);
    let err = stderr(&out);
    assert_no_empty_reason(&err);
    for link in [&linked_dir, &linked_file] {
        assert!(
            err.contains(link.to_str().unwrap()),
            "{link:?} not named in {err}"
        );
    }
    assert_eq!(
        std::fs::read(s.b.transcript(&b_gadget, SID3)).unwrap(),
        std::fs::read(s.a.transcript(&a_gadget, SID3)).unwrap()
    );
    assert_eq!(snapshot(&outside), before);
}

/// Pull, and a push that must look at its own earlier copy (its index is
/// gone), both meet a sparse object just over the limit beside a good one.
#[cfg(target_os = "linux")]
#[test]
#[ignore = "needs sshd from openssh-server (README: Tests)"]
fn an_oversized_object_is_reported_never_sent_and_the_others_still_arrive() {
    let Some(s) = setup("oversized") else { return };
    s.a.write_session(&s.a_repo, SID, &transcript(SID, &s.a_repo, 4, "fine"));
    run(&s.a, &s.ssh, &s.a_repo, &["push"]).success();
    let big = s.remote.join(WIDGET).join(format!("{SID2}-laptop.ccsync"));
    std::fs::File::create(&big)
        .unwrap()
        .set_len(ccsync::bundle::MAX_BUNDLE_BYTES + 1)
        .unwrap();

    // Named by path, with why, and no reason left empty.
    let says_too_large = |out: &assert_cmd::assert::Assert| {
        let err = stderr(out);
        assert_no_empty_reason(&err);
        assert!(
            err.contains(&format!("{WIDGET}/{SID2}-laptop.ccsync")),
            "{err}"
        );
        assert!(err.contains("over the 1024 MiB bundle limit"), "{err}");
    };
    let out = run(&s.b, &s.ssh, &s.b_repo, &["pull"]).code(3);
    says_too_large(&out);
    assert!(s.b.transcript(&s.b_repo, SID).is_file());
    assert!(!s.b.transcript(&s.b_repo, SID2).exists());

    // A lost its index: to know whether its sessions still extend what it
    // pushed, it fetches its copies. The oversized one is refused on the
    // host, not streamed (a GiB over a real network takes hours), and is
    // reported and left alone; the good one is found unchanged.
    s.a.write_session(&s.a_repo, SID2, &transcript(SID2, &s.a_repo, 4, "new"));
    std::fs::remove_file(s.a.cfg.join("index.json")).unwrap();
    let sent = s.server.bytes_written();
    let out = run(&s.a, &s.ssh, &s.a_repo, &["push", "--all", "--json"]).code(3);
    let sent = s.server.bytes_written() - sent;
    assert!(sent < 64 << 20, "the host sent {sent} bytes");
    says_too_large(&out);
    let json = stdout_json(&out);
    assert_eq!(json["failed"][0]["sessionId"], SID2, "{json}");
    assert_eq!(json["unchanged"][0], SID, "{json}");
    assert_eq!(
        std::fs::metadata(&big).unwrap().len(),
        ccsync::bundle::MAX_BUNDLE_BYTES + 1
    );
}
