//! Getting started: `init` refuses a sync dir that does not exist unless
//! told (or asked on a terminal), offers the synced folders it finds when
//! given none, and `status` works before any setup, without the network.

use std::path::PathBuf;

use predicates::prelude::*;

use crate::cli::on_terminal;
use crate::env::*;

#[test]
fn init_refuses_a_sync_dir_that_does_not_exist_unless_told_to_create_it() {
    let w = World::new();
    let a = w.machine("a");
    let typo = w.root().join("Dropbx/ccsync");
    let out = a
        .run(&w.root(), &["init", typo.to_str().unwrap(), "--name", "a"])
        .code(1);
    let said = stderr(&out);
    assert!(
        said.starts_with(&format!(
            "Error: the sync dir {} does not exist\nHint: ",
            typo.display()
        )) && said.contains("--create"),
        "{said}"
    );
    assert!(!typo.exists() && !w.root().join("Dropbx").exists());
    assert!(!a.cfg.join("config.toml").exists());

    a.run(
        &w.root(),
        &["init", typo.to_str().unwrap(), "--name", "a", "--create"],
    )
    .success();
    assert!(typo.is_dir());
    assert!(a.cfg.join("config.toml").is_file());
    // An existing directory needs no --create.
    let b = w.machine("b");
    b.run(&w.root(), &["init", typo.to_str().unwrap(), "--name", "b"])
        .success();
}

#[test]
fn init_on_a_terminal_asks_before_creating_the_sync_dir() {
    let w = World::new();
    let a = w.machine("a");
    let dir = w.root().join("new-sync");
    let args = ["init", dir.to_str().unwrap(), "--name", "a"];
    let Some(out) = on_terminal(&a, &w.root(), &args, &[], "n\n") else {
        return;
    };
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{shown}");
    assert!(
        shown.contains("does not exist; create it? [y/N]"),
        "{shown}"
    );
    assert!(!dir.exists());
    let out = on_terminal(&a, &w.root(), &args, &[], "y\n").unwrap();
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(dir.is_dir());
}

/// A home with a Dropbox folder and a Syncthing folder.
fn home_with_synced_folders(m: &Machine) -> (PathBuf, PathBuf) {
    let dropbox = m.home.join("Dropbox");
    let synced = m.home.join("Sync");
    std::fs::create_dir_all(&dropbox).unwrap();
    std::fs::create_dir_all(&synced).unwrap();
    let config = m.home.join(".local/state/syncthing/config.xml");
    std::fs::create_dir_all(config.parent().unwrap()).unwrap();
    std::fs::write(
        &config,
        "<configuration version=\"37\">\n    <folder id=\"default\" label=\"Default Folder\" path=\"~/Sync\" type=\"sendreceive\" rescanIntervalS=\"3600\">\n    </folder>\n</configuration>\n",
    )
    .unwrap();
    (dropbox, synced)
}

#[test]
fn init_without_a_location_lists_the_synced_folders_it_finds() {
    let w = World::new();
    let a = w.machine("a");
    let out = a.run(&w.root(), &["init"]).code(1);
    let said = stderr(&out);
    assert!(
        said.starts_with("Error: init needs a sync dir\nHint: ")
            && said.contains("ccsync init <dir>"),
        "{said}"
    );

    let (dropbox, synced) = home_with_synced_folders(&a);
    let out = a.run(&w.root(), &["init"]).code(1);
    let said = stderr(&out);
    assert!(
        said.contains(&format!("  {} (Dropbox)\n", dropbox.display())),
        "{said}"
    );
    assert!(
        said.contains(&format!("  {} (Syncthing)\n", synced.display())),
        "{said}"
    );
    assert!(
        said.contains(&format!(
            "`ccsync init {}`",
            dropbox.join("ccsync").display()
        )),
        "{said}"
    );
    assert!(!a.cfg.join("config.toml").exists());
    assert!(!dropbox.join("ccsync").exists());

    // On a terminal, picking one sets it up in a folder inside it.
    let Some(out) = on_terminal(&a, &w.root(), &["init", "--name", "a"], &[], "2\n") else {
        return;
    };
    let shown = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(shown.contains("2. "), "{shown}");
    assert!(synced.join("ccsync/machines").is_dir(), "{shown}");
    let config = std::fs::read_to_string(a.cfg.join("config.toml")).unwrap();
    assert!(config.contains(&*synced.join("ccsync").to_string_lossy()));
}

#[test]
fn status_before_any_setup_shows_the_sessions_here_and_what_to_do() {
    let w = World::new();
    let a = w.machine("a");
    let repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    let other = w.checkout("a/other", Some("git@github.com:acme/other.git"));
    a.write_session(&repo, SID, &transcript(SID, &repo, 2, "mine"));
    a.write_session(&other, SID2, &transcript(SID2, &other, 2, "theirs"));
    let (dropbox, _) = home_with_synced_folders(&a);
    let before = snapshot(&a.home);
    let out = a.run(&repo, &["status"]).success();
    let shown = String::from_utf8_lossy(&out.get_output().stdout).into_owned();
    assert!(
        shown.starts_with(&format!(
            "project git:github.com/acme/widget at {}: 1 session here\n",
            repo.display()
        )),
        "{shown}"
    );
    assert!(shown.contains(SID) && !shown.contains(SID2), "{shown}");
    assert!(shown.contains("1 session of other projects"), "{shown}");
    assert!(
        shown.contains("not set up to sync: `ccsync init <dir>`"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!("{} (Dropbox)", dropbox.display())),
        "{shown}"
    );
    assert!(shown.contains("hooks not installed"), "{shown}");
    assert_eq!(snapshot(&a.home), before, "status wrote something");
    assert!(!a.cfg.exists(), "status made a config dir");
}

#[test]
fn status_reads_the_config_and_never_reaches_the_sync_dir() {
    let w = World::new();
    let a = w.machine("a");
    let repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    std::fs::create_dir_all(&a.cfg).unwrap();
    std::fs::write(
        a.cfg.join("config.toml"),
        "location = \"ssh://sync.invalid/srv/ccsync\"\nmachine = \"a\"\nmachine_id = \"1\"\n",
    )
    .unwrap();
    // An ssh that leaves a mark, to prove it is never run.
    let mark = w.root().join("ssh-ran");
    let ssh = w.root().join("fake-ssh");
    std::fs::write(
        &ssh,
        format!("#!/bin/sh\ntouch '{}'\nexit 255\n", mark.display()),
    )
    .unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&ssh, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    a.cmd(&repo)
        .env("CCSYNC_SSH_COMMAND", &ssh)
        .arg("status")
        .assert()
        .success()
        .stdout(predicate::str::contains(
            "sync dir ssh://sync.invalid/srv/ccsync as machine a",
        ))
        .stdout(predicate::str::contains("0 sessions here"));
    assert!(!mark.exists(), "status ran ssh");
}
