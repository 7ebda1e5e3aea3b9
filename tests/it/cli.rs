//! The command line itself: version, completions, the man page, colour,
//! how errors read, and the human output of list, doctor and export.

use std::path::Path;
use std::process::Output;

use predicates::prelude::*;

use crate::env::*;

const ESC: char = '\u{1b}';

/// Runs ccsync under a pseudo-terminal (`script` from util-linux) with
/// `input` typed on it; `None` when `script` is not installed. Everything
/// the terminal showed, stdout and stderr alike, is in `stdout`.
pub fn on_terminal(
    m: &Machine,
    cwd: &Path,
    args: &[&str],
    envs: &[(&str, &str)],
    input: &str,
) -> Option<Output> {
    use std::io::Write;
    // BSD `script` (macOS) takes other arguments.
    let util_linux = std::process::Command::new("script")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !util_linux {
        skip_or_fail("terminal test: `script` from util-linux is not installed");
        return None;
    }
    let words: Vec<String> = std::iter::once(env!("CARGO_BIN_EXE_ccsync"))
        .chain(args.iter().copied())
        .map(|w| shlex::try_quote(w).unwrap().into_owned())
        .collect();
    let inner = m.std_cmd(cwd);
    let mut script = std::process::Command::new("script");
    script
        .args(["-qec", &words.join(" "), "/dev/null"])
        .current_dir(cwd)
        .env_clear()
        .env("TERM", "xterm")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in inner.get_envs() {
        if let Some(v) = v {
            script.env(k, v);
        }
    }
    script.envs(envs.iter().copied());
    let mut child = script.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    Some(child.wait_with_output().unwrap())
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[test]
fn version_names_the_commit_it_was_built_from() {
    let w = World::new();
    let a = w.machine("a");
    let out = a.run(&w.root(), &["--version"]).success();
    let said = text(&out.get_output().stdout);
    let commit = std::process::Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .ok()
        .filter(|o| o.status.success())
        .map_or("unknown".to_owned(), |o| text(&o.stdout).trim().to_owned());
    assert_eq!(
        said.trim(),
        format!("ccsync {} ({commit})", env!("CARGO_PKG_VERSION"))
    );
}

#[test]
fn completions_for_every_shell_come_from_the_one_definition() {
    let w = World::new();
    let a = w.machine("a");
    for shell in ["bash", "zsh", "fish", "powershell", "elvish"] {
        let out = a.run(&w.root(), &["completions", shell]).success();
        let script = text(&out.get_output().stdout);
        for word in ["push", "pull", "status", "completions", "color"] {
            assert!(script.contains(word), "{shell} completion lacks {word}");
        }
        assert!(out.get_output().stderr.is_empty(), "{shell}");
    }
    // Bash reads the script without a syntax error.
    #[cfg(unix)]
    {
        let out = a.run(&w.root(), &["completions", "bash"]).success();
        let file = w.root().join("ccsync.bash");
        std::fs::write(&file, &out.get_output().stdout).unwrap();
        let checked = std::process::Command::new("bash")
            .arg("-n")
            .arg(&file)
            .output()
            .unwrap();
        assert!(checked.status.success(), "{}", text(&checked.stderr));
    }
    a.run(&w.root(), &["completions", "tcsh"])
        .code(2)
        .stderr(predicate::str::contains("possible values"));
}

#[test]
fn the_man_page_is_roff_with_every_subcommand() {
    let w = World::new();
    let a = w.machine("a");
    let out = a.run(&w.root(), &["man"]).success();
    let page = text(&out.get_output().stdout);
    // After the standard definition of the apostrophe string, the title.
    let first = page
        .lines()
        .find(|l| !l.starts_with(".ie ") && !l.starts_with(".el "))
        .unwrap();
    assert!(first.starts_with(".TH ccsync 1 "), "{first}");
    for word in [".SH NAME", ".SH SYNOPSIS", "push", "pull", "status", "init"] {
        assert!(page.contains(word), "man page lacks {word}");
    }
}

#[test]
fn completions_and_man_need_no_home() {
    let w = World::new();
    let a = w.machine("a");
    for args in [&["man"][..], &["completions", "zsh"]] {
        a.cmd(&w.root())
            .env_remove("HOME")
            .env_remove("CLAUDE_CONFIG_DIR")
            .env_remove("CCSYNC_CONFIG_DIR")
            .args(args)
            .assert()
            .success();
    }
}

#[test]
fn errors_read_error_caused_by_hint() {
    let w = World::new();
    let a = w.machine("a");
    let repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    let out = a.run(&repo, &["export", "0123"]).code(1);
    assert_eq!(
        stderr(&out),
        "Error: no session \"0123\" on this machine\nHint: `ccsync list` shows the sessions here\n"
    );
    // One cause goes on the `Caused by:` line.
    let missing = w.root().join("missing.ccsync");
    let out = a.run(&repo, &["import", missing.to_str().unwrap()]).code(1);
    let said = stderr(&out);
    let lines: Vec<&str> = said.lines().collect();
    assert_eq!(
        lines[0],
        format!("Error: cannot read {}", missing.display())
    );
    assert!(lines[1].starts_with("Caused by: "), "{said}");
    assert_eq!(lines.len(), 2, "{said}");
}

#[test]
fn colour_only_on_a_terminal_and_never_with_no_color() {
    let w = World::new();
    let a = w.machine("a");
    let repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    a.init(&w);
    a.write_session(&repo, SID, &transcript(SID, &repo, 2, "c"));
    // A pipe: plain, whatever the command says.
    let out = a.run(&repo, &["push"]).success();
    assert!(!stderr(&out).contains(ESC), "{}", stderr(&out));
    let out = a.run(&repo, &["export", "0123"]).code(1);
    assert!(!stderr(&out).contains(ESC));
    // --color always colours even a pipe; never and NO_COLOR do not.
    let out = a.run(&repo, &["--color", "always", "export", "0123"]);
    let said = stderr(&out.code(1));
    assert!(
        said.contains(&format!("{ESC}[")) && said.contains("Error:"),
        "{said:?}"
    );

    let Some(out) = on_terminal(&a, &repo, &["list"], &[], "") else {
        return;
    };
    let shown = text(&out.stdout);
    assert!(shown.contains(SID) && shown.contains(ESC), "{shown:?}");
    for (args, envs) in [
        (&["list"][..], &[("NO_COLOR", "1")][..]),
        (&["--color", "never", "list"], &[]),
    ] {
        let out = on_terminal(&a, &repo, args, envs, "").unwrap();
        let shown = text(&out.stdout);
        assert!(shown.contains(SID) && !shown.contains(ESC), "{shown:?}");
    }
}

#[test]
fn list_has_a_header_row_and_its_json_has_none() {
    let w = World::new();
    let a = w.machine("a");
    let repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    a.write_session(&repo, SID, &transcript(SID, &repo, 4, "h"));
    let out = a.run(&repo, &["list"]).success();
    let shown = text(&out.get_output().stdout);
    let lines: Vec<&str> = shown.lines().collect();
    assert_eq!(lines.len(), 2, "{shown}");
    let header: Vec<&str> = lines[0].split_whitespace().collect();
    assert_eq!(
        header,
        [
            "SESSION", "MODIFIED", "SIZE", "LINES", "PROJECT", "CWD", "FIRST", "PROMPT"
        ]
    );
    assert!(lines[1].starts_with(SID), "{shown}");
    // The columns line up under their titles.
    let col = |line: &str, word: &str| line.find(word).unwrap();
    assert_eq!(
        col(lines[0], "PROJECT"),
        col(lines[1], "git:github.com/acme/widget")
    );
    assert_eq!(col(lines[0], "CWD"), col(lines[1], repo.to_str().unwrap()));
    let out = a.run(&repo, &["list", "--json"]).success();
    assert_eq!(stdout_json(&out)[0]["sessionId"], SID);
    // Nothing to list: no header either.
    let b = w.machine("b");
    b.run(&repo, &["list"]).success().stdout("");
}

#[test]
fn one_is_singular() {
    let w = World::new();
    let a = w.machine("a");
    let repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    a.init(&w);
    a.write_session(&repo, SID, &transcript(SID, &repo, 2, "one"));
    std::fs::write(a.project_dir(&repo).join("notes.jsonl"), "{}\n").unwrap();
    let out = a.run(&repo, &["doctor"]).success();
    let shown = text(&out.get_output().stdout);
    assert!(
        shown.contains("sessions: 1 session in 1 project"),
        "{shown}"
    );
    assert!(shown.contains("1 file under"), "{shown}");
    for plural in ["1 sessions", "1 projects", "1 files", "1 copies", "1 lines"] {
        assert!(!shown.contains(plural), "{shown}");
    }
    let out = a.run(&repo, &["push"]).success();
    assert!(!stderr(&out).contains("1 sessions"), "{}", stderr(&out));
}

#[test]
fn export_without_output_says_where_it_wrote_in_full() {
    let w = World::new();
    let a = w.machine("a");
    let repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    a.write_session(&repo, SID, &transcript(SID, &repo, 2, "x"));
    let sub = repo.join("sub");
    std::fs::create_dir(&sub).unwrap();
    let out = a.run(&sub, &["export", SID]).success();
    let file = sub.join(format!("{SID}.ccsync"));
    assert!(file.is_file());
    assert!(
        stderr(&out).contains(&format!(" to {}\n", file.display())),
        "{}",
        stderr(&out)
    );
}

/// One large session: the bar counts bytes (a count of one session says
/// nothing while it goes), on a terminal only, pushing and pulling.
#[test]
fn a_large_session_shows_progress_by_bytes() {
    let p = pair();
    // About 23 MB that compress to about half: more than the bar's
    // threshold both ways.
    let mut bytes = Vec::new();
    let mut x: u64 = 1;
    for i in 0..13000 {
        let words: String = (0..180)
            .map(|_| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                format!("{:08x} ", x >> 32)
            })
            .collect();
        bytes.extend(
            format!(
                "{{\"type\":\"user\",\"uuid\":\"{i:08x}-0000-4000-8000-000000000000\",\"sessionId\":\"{SID}\",\"cwd\":{:?},\"message\":{{\"content\":\"{words}\"}}}}\n",
                p.a_repo.to_str().unwrap()
            )
            .as_bytes(),
        );
    }
    p.a.write_session(&p.a_repo, SID, &bytes);
    let Some(out) = crate::cli::on_terminal(&p.a, &p.a_repo, &["push"], &[], "") else {
        return;
    };
    let all = text(&out.stdout);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("pushing") && all.contains("MiB"), "{all:?}");
    let Some(out) = crate::cli::on_terminal(&p.b, &p.b_repo, &["pull"], &[], "") else {
        return;
    };
    let all = text(&out.stdout);
    assert!(out.status.success(), "{all}");
    assert!(all.contains("pulling") && all.contains("MiB"), "{all:?}");
    assert_eq!(
        std::fs::read(p.b.transcript(&p.b_repo, SID)).unwrap(),
        bytes
    );
    // Not on a pipe.
    p.a.append(&p.a_repo, SID, &transcript(SID, &p.a_repo, 1, "more"));
    let out = p.a.run(&p.a_repo, &["push"]).success();
    assert!(!stderr(&out).contains("MiB/"), "{}", stderr(&out));
}
