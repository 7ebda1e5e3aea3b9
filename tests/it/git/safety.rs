//! What a git sync dir must never do, through the binary: write to a
//! branch holding someone's work, run a local repository's hooks, panic
//! on a hostile commit, ignore the user's ssh, keep a token.

use super::{CCSYNC, FOLDER, Setup, plumb, plumb_as};
use crate::env::*;
use std::path::PathBuf;

/// A user's commits on `main` of a new bare repository `name`: its tip.
fn user_branch(s: &Setup, name: &str, commits: usize) -> (PathBuf, String) {
    let bare = s.w.root().join("srv").join(name);
    std::fs::create_dir_all(&bare).unwrap();
    plumb(&bare, &["init", "--bare", "-q"], None);
    let mut tip = String::new();
    for i in 0..commits {
        let blob = plumb(
            &bare,
            &["hash-object", "-w", "--stdin"],
            Some(format!("code {i}\n").as_bytes()),
        );
        let tree = plumb(
            &bare,
            &["mktree"],
            Some(format!("100644 blob {blob}\tcode.txt\n").as_bytes()),
        );
        let mut args = vec!["commit-tree", "-m", "work", &tree];
        if !tip.is_empty() {
            args.extend(["-p", &tip]);
        }
        tip = plumb(&bare, &args, None);
    }
    if commits > 0 {
        plumb(&bare, &["update-ref", "refs/heads/main", &tip], None);
    }
    (bare, tip)
}

/// A branch holding someone's work is never written, nor its history
/// rewritten: `init` refuses it, and a branch that gained others' commits
/// after `init` refuses the push, names the branch and says what to use.
#[test]
fn git_a_branch_with_others_commits_is_never_written() {
    let s = Setup::file();
    let (bare, tip) = user_branch(&s, "proj.git", 120);
    let url = format!("git+file://{}#main", bare.display());
    let c = s.w.machine("c");
    let out = s
        .run(&c, &s.w.root(), &["init", &url, "--name", "c"])
        .failure();
    let err = stderr(&out);
    assert!(
        err.contains("branch main") && err.contains("#ccsync"),
        "{err}"
    );
    assert!(!c.cfg.join("config.toml").exists());

    // Made on an empty repository, then someone's work lands on main.
    let (late, _) = user_branch(&s, "late.git", 0);
    let url = format!("git+file://{}#main", late.display());
    s.run(&c, &s.w.root(), &["init", &url, "--name", "c"])
        .success();
    let (_, theirs) = user_branch(&s, "late.git", 120);
    c.write_session(&s.a_repo, SID, &transcript(SID, &s.a_repo, 3, "mine"));
    let out = s.run(&c, &s.a_repo, &["push"]).failure();
    let err = stderr(&out);
    assert!(
        err.contains("branch main") && err.contains("#ccsync"),
        "{err}"
    );
    assert_eq!(plumb(&late, &["rev-parse", "main"], None), theirs);
    assert_eq!(plumb(&late, &["rev-list", "--count", "main"], None), "120");
    assert_eq!(plumb(&bare, &["rev-parse", "main"], None), tip);
    // Reading it takes nothing: no object of ccsync's is there.
    s.run(&c, &s.a_repo, &["pull"]).success();
}

/// A `file://` repository's hooks and configured commands never run:
/// git would run them as this user on a local push or fetch.
#[cfg(unix)]
#[test]
fn git_file_repositories_run_none_of_their_hooks() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::file();
    let marker = s.w.root().join("PWNED");
    for hook in [
        "pre-receive",
        "update",
        "post-receive",
        "post-update",
        "reference-transaction",
        "push-to-checkout",
    ] {
        let path = s.bare.join("hooks").join(hook);
        std::fs::write(
            &path,
            format!(
                "#!/bin/sh\necho {hook} >> {}\ncat >/dev/null\n",
                marker.display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let alt = s.w.root().join("srv/alt.git");
    std::fs::create_dir_all(&alt).unwrap();
    plumb(&alt, &["init", "--bare", "-q"], None);
    std::fs::write(
        s.bare.join("objects/info/alternates"),
        format!("{}\n", alt.join("objects").display()),
    )
    .unwrap();
    let command = format!("echo alternateRefsCommand >> {}; true", marker.display());
    plumb(
        &s.bare,
        &["config", "core.alternateRefsCommand", &command],
        None,
    );
    let bytes = transcript(SID, &s.a_repo, 3, "hooks");
    s.a.write_session(&s.a_repo, SID, &bytes);
    s.run(&s.a, &s.a_repo, &["push"]).success();
    s.run(&s.b, &s.b_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(s.b.transcript(&s.b_repo, SID)).unwrap(),
        bytes
    );
    let ran = std::fs::read_to_string(&marker).unwrap_or_default();
    assert!(ran.is_empty(), "ran: {ran}");
}

/// A commit time past any clock (a hostile writer's) is taken as the
/// latest time there is: nothing panics, and sessions still move.
#[test]
fn git_a_commit_time_past_any_clock_is_survived() {
    let s = Setup::file();
    let bytes = transcript(SID, &s.a_repo, 3, "late");
    s.a.write_session(&s.a_repo, SID, &bytes);
    s.run(&s.a, &s.a_repo, &["push"]).success();
    let tip = plumb(&s.bare, &["rev-parse", "ccsync"], None);
    let tree = plumb(&s.bare, &["rev-parse", "ccsync^{tree}"], None);
    let when = "18446744073709551615 +0000";
    let text = format!(
        "tree {tree}\nparent {tip}\nauthor a <a@a> {when}\ncommitter a <{CCSYNC}> {when}\n\nx\n"
    );
    let planted = plumb(
        &s.bare,
        &[
            "hash-object",
            "-t",
            "commit",
            "-w",
            "--stdin",
            "--literally",
        ],
        Some(text.as_bytes()),
    );
    plumb(
        &s.bare,
        &["update-ref", "refs/heads/ccsync", &planted],
        None,
    );
    s.run(&s.b, &s.b_repo, &["pull"]).success();
    assert_eq!(
        std::fs::read(s.b.transcript(&s.b_repo, SID)).unwrap(),
        bytes
    );
    s.run(&s.b, &s.w.root(), &["list", "--remote", "--json"])
        .success();
    s.a.append(&s.a_repo, SID, b"{\"type\":\"user\",\"x\":1}\n");
    s.run(&s.a, &s.a_repo, &["push"]).success();
}

/// With neither CCSYNC_SSH_COMMAND nor GIT_SSH_COMMAND set, the ssh git
/// runs is the user's `core.sshCommand`.
#[cfg(unix)]
#[test]
fn git_the_users_core_ssh_command_is_run() {
    use std::os::unix::fs::PermissionsExt;
    let s = Setup::file();
    let c = s.w.machine("c");
    let marker = s.w.root().join("SSH");
    let script = s.w.root().join("my-ssh");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$@\" >> {}\nexit 255\n", marker.display()),
    )
    .unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::create_dir_all(&c.home).unwrap();
    std::fs::write(
        c.home.join(".gitconfig"),
        format!("[core]\n\tsshCommand = {}\n", script.display()),
    )
    .unwrap();
    s.run(
        &c,
        &s.w.root(),
        &["init", "git+ssh://u@127.0.0.1:1/r.git", "--name", "c"],
    )
    .failure();
    let said = std::fs::read_to_string(&marker).unwrap_or_default();
    assert!(
        said.contains("BatchMode=yes"),
        "core.sshCommand was not run: {said:?}"
    );
}

/// A token in an http(s) URL is refused (it would be stored in
/// config.toml), and the message does not repeat it.
#[test]
fn git_a_token_in_the_url_is_refused_and_never_printed() {
    let s = Setup::file();
    let c = s.w.machine("c");
    let out = s
        .run(
            &c,
            &s.w.root(),
            &[
                "init",
                "git+https://ghp_SECRETTOKEN@127.0.0.1:1/me/r.git",
                "--name",
                "c",
            ],
        )
        .failure();
    let all = format!(
        "{}{}",
        stderr(&out),
        String::from_utf8_lossy(&out.get_output().stdout)
    );
    assert!(!all.contains("SECRETTOKEN"), "{all}");
    assert!(all.contains("credential"), "{all}");
    assert!(!c.cfg.join("config.toml").exists());
}

/// What another writer planted in the branch and ccsync never writes: a
/// link where an object would be, a name that climbs out of its folder,
/// a linked project folder. Each is refused by name (exit 3), and the
/// session beside them moves. (An object over the 1 GiB limit is refused
/// from the listing's size, never read: the library's test shows it with
/// a small limit, since git takes about a minute to make and move a
/// 1 GiB blob here.)
#[test]
fn git_hostile_tree_entries_are_refused() {
    let s = Setup::file();
    let bytes = transcript(SID, &s.a_repo, 5, "hostile");
    s.a.write_session(&s.a_repo, SID, &bytes);
    s.run(&s.a, &s.a_repo, &["push"]).success();

    let bare = &s.bare;
    let target = plumb(
        bare,
        &["hash-object", "-w", "--stdin"],
        Some(b"/etc/passwd"),
    );
    let tip = plumb(bare, &["rev-parse", "ccsync"], None);
    let folder = plumb(bare, &["rev-parse", &format!("ccsync:{FOLDER}")], None);
    let mut entries = plumb(bare, &["ls-tree", &folder], None);
    entries.push_str(&format!(
        "\n120000 blob {target}\t{SID2}-evil.ccsync\n100644 blob {target}\t..\n"
    ));
    let folder = plumb(bare, &["mktree"], Some(entries.as_bytes()));
    let mut top = plumb(bare, &["ls-tree", &tip], None)
        .lines()
        .filter(|l| !l.ends_with(&format!("\t{FOLDER}")))
        .map(|l| format!("{l}\n"))
        .collect::<String>();
    top.push_str(&format!(
        "040000 tree {folder}\t{FOLDER}\n120000 blob {target}\tgit=evil.com_x_y\n"
    ));
    let top = plumb(bare, &["mktree"], Some(top.as_bytes()));
    let planted = plumb_as(
        bare,
        CCSYNC,
        &["commit-tree", "-p", &tip, "-m", "planted", &top],
        None,
    );
    plumb(bare, &["update-ref", "refs/heads/ccsync", &planted], None);

    let out = s.run(&s.b, &s.b_repo, &["pull", "--json"]).code(3);
    assert_eq!(stdout_json(&out)["sessions"].as_array().unwrap().len(), 1);
    assert_eq!(
        std::fs::read(s.b.transcript(&s.b_repo, SID)).unwrap(),
        bytes
    );
    assert!(!s.b.transcript(&s.b_repo, SID2).exists());
    let err = stderr(&out);
    assert!(
        err.contains(&format!("ccsync:{FOLDER}/{SID2}-evil.ccsync")),
        "{err}"
    );
    assert!(err.contains("symbolic link"), "{err}");
    assert!(err.contains(&format!("ccsync:{FOLDER}/..")), "{err}");
    assert!(err.contains("climbs out of its folder"), "{err}");
    assert!(err.contains("ccsync:git=evil.com_x_y"), "{err}");

    // A's next push keeps what it does not own, and works.
    s.a.append(&s.a_repo, SID, b"{\"type\":\"user\",\"x\":1}\n");
    s.run(&s.a, &s.a_repo, &["push"]).success();
    assert!(s.tree().contains(&format!("{FOLDER}/{SID}-a.1.ccseg")));
}
