//! The real Claude Code client resumes a pulled session from the exact
//! folder. Paths to the clients come from `$CCSYNC_TEST_CLAUDE` (current)
//! and `$CCSYNC_TEST_CLAUDE_OLD` (2.1.112, which looks only in the exact
//! folder); .ci/run installs both from the npm registry and sets them.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use crate::env::*;

/// Runs `claude -p --resume <id> <marker>` offline from `cwd` with a cleared
/// environment. The client appends the marker as a user line when it found
/// the session, then stops for want of a login.
pub fn resume(
    client: &Path,
    m: &Machine,
    cwd: &Path,
    id: &str,
    marker: &str,
) -> std::process::Output {
    claude(client, m, cwd, &["-p", "--resume", id, marker])
}

pub fn claude(client: &Path, m: &Machine, cwd: &Path, args: &[&str]) -> std::process::Output {
    Command::new("timeout")
        .arg("120")
        .arg(client)
        .args(args)
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("HOME", &m.home)
        .env("CLAUDE_CONFIG_DIR", &m.claude)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("the client runs")
}

pub fn clients() -> Vec<(&'static str, PathBuf)> {
    ["CCSYNC_TEST_CLAUDE", "CCSYNC_TEST_CLAUDE_OLD"]
        .into_iter()
        .filter_map(|var| match std::env::var_os(var) {
            Some(p) => Some((var, PathBuf::from(p))),
            None => {
                skip_or_fail(&format!("real-client check: {var} is not set"));
                None
            }
        })
        .collect()
}

fn check(checkout_rel: &str, sub: Option<&str>) {
    for (var, client) in clients() {
        let w = World::new();
        let a = w.machine("laptop");
        let b = w.machine("desktop");
        let a_repo = w.checkout("a/code/widget", Some("git@github.com:acme/widget.git"));
        let b_repo = w.checkout(checkout_rel, Some("https://github.com/acme/widget"));
        let (a_cwd, b_cwd) = match sub {
            Some(s) => (a_repo.join(s), b_repo.join(s)),
            None => (a_repo.clone(), b_repo.clone()),
        };
        std::fs::create_dir_all(&a_cwd).unwrap();
        std::fs::create_dir_all(&b_cwd).unwrap();
        a.init(&w);
        b.init(&w);
        let bytes = transcript(SID, &a_cwd, 4, "real");
        let a_transcript = a.write_session(&a_cwd, SID, &bytes);
        // With side files, which the client finds beside the transcript.
        let subagent = a_transcript
            .with_extension("")
            .join("subagents/agent-a1.jsonl");
        std::fs::create_dir_all(subagent.parent().unwrap()).unwrap();
        std::fs::write(&subagent, transcript(SID, &a_cwd, 2, "sub")).unwrap();
        a.run(&a_repo, &["push"]).success();
        b.run(&b_repo, &["pull"]).success();

        let marker = format!("ccsync-marker-{var}");
        let out = resume(&client, &b, &b_cwd, SID, &marker);
        let installed =
            ccsync::claude::ClaudeHome::resolve(Some(b.claude.clone().into()), None, None)
                .unwrap()
                .project_dir_for(b_cwd.to_str().unwrap())
                .unwrap()
                .join(format!("{SID}.jsonl"));
        assert_eq!(
            std::fs::read(
                installed
                    .with_extension("")
                    .join("subagents/agent-a1.jsonl")
            )
            .unwrap(),
            transcript(SID, &a_cwd, 2, "sub")
        );
        let after = std::fs::read(&installed).unwrap();
        assert!(
            after.starts_with(&bytes)
                && String::from_utf8_lossy(&after[bytes.len()..]).contains(&marker),
            "{var} ({}) did not resume {SID} from {}: stderr {}",
            client.display(),
            installed.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        // One copy only.
        let sessions = |p: &PathBuf| {
            p.extension().is_some_and(|e| e == "jsonl")
                && p.parent().and_then(Path::parent) == Some(&b.claude.join("projects"))
        };
        let transcripts: Vec<PathBuf> = walk(&b.claude.join("projects"))
            .into_iter()
            .filter(sessions)
            .collect();
        assert_eq!(transcripts, vec![installed.clone()]);
        // The folder is the one the client itself makes for this directory:
        // a new session started there lands beside the pulled one. (Clients
        // from 2.1.223 on would also find a session in a wrong folder.)
        claude(&client, &b, &b_cwd, &["-p", "new session"]);
        let new: Vec<PathBuf> = walk(&b.claude.join("projects"))
            .into_iter()
            .filter(|p| sessions(p) && *p != installed)
            .collect();
        assert_eq!(new.len(), 1, "{var} started no new session: {new:?}");
        assert_eq!(
            new[0].parent(),
            installed.parent(),
            "{var} uses another folder for {}",
            b_cwd.display()
        );
    }
}

#[test]
#[ignore = "needs the real Claude Code client: CCSYNC_TEST_CLAUDE, CCSYNC_TEST_CLAUDE_OLD (README: Tests)"]
fn the_client_resumes_a_pulled_session_from_the_exact_folder() {
    check("b/src/wid get ü.v2", None);
}

#[test]
#[ignore = "needs the real Claude Code client: CCSYNC_TEST_CLAUDE, CCSYNC_TEST_CLAUDE_OLD (README: Tests)"]
fn the_client_resumes_in_a_subdirectory_and_past_200_characters() {
    let long = format!("b/{}/widget", "nested-folder-name".repeat(12));
    check(&long, Some("crates/core"));
}

/// The interactive `/resume` picker, run in B's checkout under a
/// pseudo-terminal, lists the pulled session (by its first prompt). The
/// client's first-run dialogs are answered in its config beforehand.
#[test]
#[ignore = "needs the real Claude Code client: CCSYNC_TEST_CLAUDE, CCSYNC_TEST_CLAUDE_OLD (README: Tests)"]
fn the_resume_picker_lists_a_pulled_session() {
    let clients = clients();
    if clients.is_empty() {
        return;
    }
    if Command::new("script").arg("--version").output().is_err() {
        return skip_or_fail("resume picker: `script` (util-linux) is not installed");
    }
    for (var, client) in clients {
        let w = World::new();
        let a = w.machine("laptop");
        let b = w.machine("desktop");
        let a_repo = w.checkout("a/widget", Some("git@github.com:acme/widget.git"));
        let b_repo = w.checkout("b/the widget", Some("https://github.com/acme/widget"));
        a.init(&w);
        b.init(&w);
        let bytes = transcript(SID, &a_repo, 4, "PICKME-distinctive");
        a.write_session(&a_repo, SID, &bytes);
        a.run(&a_repo, &["push"]).success();
        b.run(&b_repo, &["pull"]).success();

        let (found, screen) = picker_shows(&client, &b, &b_repo, "PICKME-distinctiveprompt0");
        assert!(
            found,
            "{var} ({}) did not list the pulled session: {screen:?}",
            client.display(),
        );
    }
}

/// Runs the interactive `/resume` picker (`claude --resume`) of `client`
/// on machine `m` from `cwd` under a pseudo-terminal, the client's
/// first-run dialogs answered beforehand, until `needle` is on screen
/// (white space and escape sequences removed) or a minute passed. Returns
/// whether it was, and the screen.
pub fn picker_shows(client: &Path, m: &Machine, cwd: &Path, needle: &str) -> (bool, String) {
    let config = serde_json::json!({
        "hasCompletedOnboarding": true,
        "theme": "dark",
        "projects": { cwd.to_str().unwrap(): {
            "hasTrustDialogAccepted": true,
            "hasCompletedProjectOnboarding": true,
        }},
    });
    std::fs::create_dir_all(&m.claude).unwrap();
    std::fs::write(m.claude.join(".claude.json"), config.to_string()).unwrap();
    let inner = format!("{} --resume", client.display());
    let mut child = Command::new("script")
        .args(["-qec", &inner, "/dev/null"])
        .env_clear()
        .env("PATH", "/usr/local/bin:/usr/bin:/bin")
        .env("TERM", "xterm")
        .env("HOME", &m.home)
        .env("CLAUDE_CONFIG_DIR", &m.claude)
        .current_dir(cwd)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kept open: end of input would end the session before it draws.
    let stdin = child.stdin.take();
    let screen = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut stdout = child.stdout.take().unwrap();
    let sink = screen.clone();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = std::io::Read::read(&mut stdout, &mut buf) {
            if n == 0 {
                break;
            }
            sink.lock().unwrap().extend_from_slice(&buf[..n]);
        }
    });
    // The picker positions words with cursor moves, not spaces.
    let text = || visible_text(&String::from_utf8_lossy(&screen.lock().unwrap()));
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    while !text().contains(needle) && std::time::Instant::now() < deadline {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    let found = text().contains(needle);
    let _ = child.kill();
    let _ = child.wait();
    drop(stdin);
    (found, text())
}

/// The characters a terminal would show, without escape sequences or white
/// space.
fn visible_text(raw: &str) -> String {
    let mut out = String::new();
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\u{1b}' => match chars.next() {
                // CSI: parameters up to a final byte in @..~
                Some('[') => {
                    for c in chars.by_ref() {
                        if ('@'..='~').contains(&c) {
                            break;
                        }
                    }
                }
                // OSC: up to BEL or ST
                Some(']') => {
                    while let Some(c) = chars.next() {
                        if c == '\u{7}' || (c == '\u{1b}' && chars.peek() == Some(&'\\')) {
                            break;
                        }
                    }
                }
                _ => {}
            },
            c if c.is_whitespace() || c.is_control() => {}
            c => out.push(c),
        }
    }
    out
}
