//! The setup (opt-in): settings, CLAUDE.md, agents, commands, skills,
//! output styles, keybindings, plugin configuration and project memory
//! travel with push and pull; credentials never do.

use std::path::{Path, PathBuf};

use crate::env::*;

fn with_setup(p: &Pair) {
    for m in [&p.a, &p.b] {
        m.run(
            &p.w.root(),
            &[
                "init",
                p.w.sync_dir().to_str().unwrap(),
                "--name",
                &m.name,
                "--setup",
            ],
        )
        .success();
    }
}

fn put(path: &Path, bytes: &[u8]) {
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
}

fn read(path: &Path) -> Vec<u8> {
    std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Every object in the sync dir, layers removed, as one haystack.
fn sync_dir_bytes(p: &Pair) -> Vec<u8> {
    let mut all = Vec::new();
    for path in walk(&p.w.sync_dir()) {
        if path.is_file() {
            all.extend(read_object(&path));
        }
    }
    all
}

fn contains(hay: &[u8], needle: &str) -> bool {
    hay.windows(needle.len()).any(|w| w == needle.as_bytes())
}

const SECRET: &str = "sk-ant-oat01-NEVER-LEAVES-THIS-MACHINE";

fn settings(home: &Path) -> Vec<u8> {
    format!(
        "{{\n  \"model\": \"opus\",\n  \"hooks\": {{\"Stop\": [{{\"hooks\": [{{\"type\": \"command\", \"command\": \"bash {h}/bin/done.sh\"}}]}}]}},\n  \"statusLine\": {{\"type\": \"command\", \"command\": \"{h}/.claude/status.sh\"}}\n}}\n",
        h = home.display()
    )
    .into_bytes()
}

/// The files that travel, by path under the config dir.
const PLAIN: &[(&str, &[u8])] = &[
    ("CLAUDE.md", b"# Me\n\nAlways answer in haiku.\n"),
    ("agents/reviewer.md", b"---\nname: reviewer\n---\nReview.\n"),
    ("commands/ship.md", b"Ship it: $ARGUMENTS\n"),
    ("skills/pdf/SKILL.md", b"---\nname: pdf\n---\n"),
    ("skills/pdf/bin/tool.bin", b"\x00\xff\xfe binary \x01"),
    ("output-styles/terse.md", b"Be terse.\n"),
    ("keybindings.json", b"{ \"ctrl+k\":   \"clear\" }"),
    ("plugins/config.json", b"{\"repositories\": {}}"),
];

#[test]
fn the_setup_arrives_byte_identical_with_settings_rerooted_and_credentials_stay_home() {
    let p = pair();
    with_setup(&p);
    put(&p.a.claude.join("settings.json"), &settings(&p.a.home));
    for (path, bytes) in PLAIN {
        put(&p.a.claude.join(path), bytes);
    }
    put(
        &p.a.claude.join("skills/pdf/run.sh"),
        b"#!/bin/sh\necho hi\n",
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let run = p.a.claude.join("skills/pdf/run.sh");
        std::fs::set_permissions(&run, std::fs::Permissions::from_mode(0o755)).unwrap();
    }
    let never = [
        ".credentials.json",
        ".claude.json",
        "sessions/123.json",
        "session-env/x/env",
        "shell-snapshots/snap.sh",
        "debug/log.txt",
        "statsig/cache",
        "plugins/cache/p/plugin.json",
        "plugins/marketplaces/m/x.json",
        "agents/.credentials.json",
        "history.jsonl",
    ];
    for path in never {
        put(
            &p.a.claude.join(path),
            format!("{{\"token\":\"{SECRET}\"}}").as_bytes(),
        );
    }
    let before = read(&p.a.claude.join("settings.json"));

    p.a.run(&p.a_repo, &["push"]).success();
    assert_eq!(read(&p.a.claude.join("settings.json")), before);
    assert!(p.w.sync_dir().join("setup/a.ccsetup").is_file());
    assert!(
        !contains(&sync_dir_bytes(&p), SECRET),
        "credentials reached the sync dir"
    );
    assert!(!contains(&sync_dir_bytes(&p), p.a.home.to_str().unwrap()));

    let out = p.b.run(&p.b_repo, &["pull", "--json"]).success();
    let json = stdout_json(&out);
    assert!(json["setup"]["taken"].as_array().unwrap().len() >= PLAIN.len());
    for (path, bytes) in PLAIN {
        assert_eq!(read(&p.b.claude.join(path)), *bytes, "{path}");
    }
    assert_eq!(
        read(&p.b.claude.join("settings.json")),
        settings(&p.b.home),
        "home paths land under this machine's home"
    );
    #[cfg(unix)]
    assert_eq!(mode(&p.b.claude.join("skills/pdf/run.sh")) & 0o100, 0o100);
    for path in never {
        assert!(!p.b.claude.join(path).exists(), "{path} travelled");
    }
    for file in walk(&p.b.home) {
        if file.is_file() {
            assert!(!contains(&read(&file), SECRET), "{}", file.display());
        }
    }

    // Pulling again writes nothing; pushing back stores the same files.
    let out = p.b.run(&p.b_repo, &["pull", "--json"]).success();
    assert_eq!(stdout_json(&out)["setup"]["taken"], serde_json::json!([]));
    p.b.run(&p.b_repo, &["push"]).success();
    let out = p.a.run(&p.a_repo, &["pull", "--json"]).success();
    let setup = &stdout_json(&out)["setup"];
    assert_eq!(setup["taken"], serde_json::json!([]), "{setup}");
    assert_eq!(setup["conflicts"], serde_json::json!([]), "{setup}");
    assert_eq!(read(&p.a.claude.join("settings.json")), before);
}

#[test]
fn the_setup_stays_home_unless_asked() {
    let p = pair();
    put(&p.a.claude.join("CLAUDE.md"), b"mine\n");
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 2, "a"));
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    assert!(!p.w.sync_dir().join("setup").exists());
    assert!(!p.b.claude.join("CLAUDE.md").exists());
    let out = p.a.run(&p.a_repo, &["list", "--setup", "--json"]).success();
    let json = stdout_json(&out);
    assert_eq!(json["enabled"], false);
    assert!(stderr(&out).contains("--setup"));
}

#[test]
fn list_setup_says_what_travels_and_what_stays_and_why() {
    let p = pair();
    with_setup(&p);
    put(&p.a.claude.join("CLAUDE.md"), b"x\n");
    put(&p.a.claude.join("agents/private-x.md"), b"x\n");
    put(&p.a.claude.join(".credentials.json"), b"{}");
    put(&p.a.claude.join("plugins/cache/p/x.json"), b"{}");
    let config = p.a.cfg.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str("setup_exclude = [\"agents/private-*\"]\n");
    std::fs::write(&config, text).unwrap();
    let out = p.a.run(&p.a_repo, &["list", "--setup", "--json"]).success();
    let json = stdout_json(&out);
    let travels: Vec<&str> = json["travels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["path"].as_str().unwrap())
        .collect();
    assert_eq!(travels, ["CLAUDE.md"]);
    let why = |path: &str| -> String {
        json["excluded"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["path"] == path)
            .unwrap_or_else(|| panic!("{path} not listed: {json}"))["reason"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    assert!(why(".credentials.json").contains("credentials"));
    assert!(why("agents/private-x.md").contains("setup_exclude"));
    assert!(why("plugins/cache").contains("cache"));
    let out = p.a.run(&p.a_repo, &["list", "--setup"]).success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.contains("travels") && text.contains("CLAUDE.md"),
        "{text}"
    );
    // The exclude holds on the way in too.
    put(&p.b.claude.join("agents/private-x.md"), b"b's own\n");
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(read(&p.b.claude.join("CLAUDE.md")), b"x\n");
}

#[test]
fn project_memory_lands_in_this_machine_s_folder_for_its_own_checkout() {
    let p = pair();
    with_setup(&p);
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 2, "a"));
    let memory = b"# Project memory\n- tests run with `make t`\n";
    put(&p.a.project_dir(&p.a_repo).join("memory/MEMORY.md"), memory);
    put(
        &p.a.project_dir(&p.a_repo).join("memory/notes/db.md"),
        b"db\n",
    );
    p.a.run(&p.a_repo, &["push"]).success();
    assert_ne!(p.a_repo, p.b_repo);
    p.b.run(&p.b_repo, &["pull"]).success();
    let here = p.b.project_dir(&p.b_repo).join("memory");
    assert_eq!(read(&here.join("MEMORY.md")), memory);
    assert_eq!(read(&here.join("notes/db.md")), b"db\n");
    // Not under a's path.
    assert!(!p.b.project_dir(&p.a_repo).join("memory").exists());
}

fn sync_both_ways(p: &Pair) {
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    p.b.run(&p.b_repo, &["push"]).success();
    p.a.run(&p.a_repo, &["pull"]).success();
}

#[test]
fn a_file_edited_on_both_machines_keeps_both_edits_on_both_machines() {
    let p = pair();
    with_setup(&p);
    let agent = |m: &Machine| m.claude.join("agents/reviewer.md");
    put(&agent(&p.a), b"v0\n");
    sync_both_ways(&p);
    assert_eq!(read(&agent(&p.b)), b"v0\n");

    put(&agent(&p.a), b"edited on a\n");
    put(&agent(&p.b), b"edited on b\n");
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["push"]).success();
    let out = p.b.run(&p.b_repo, &["pull"]).success();
    assert!(
        stderr(&out).contains("changed here and on a"),
        "{}",
        stderr(&out)
    );
    let out = p.a.run(&p.a_repo, &["pull", "--json"]).success();
    let conflicts = &stdout_json(&out)["setup"]["conflicts"];
    assert_eq!(conflicts[0]["path"], "agents/reviewer.md", "{conflicts}");
    assert_eq!(conflicts[0]["machine"], "b");

    let beside =
        |m: &Machine, other: &str| m.claude.join(format!("agents/reviewer.md.from-{other}"));
    assert_eq!(read(&agent(&p.a)), b"edited on a\n");
    assert_eq!(read(&beside(&p.a, "b")), b"edited on b\n");
    assert_eq!(read(&agent(&p.b)), b"edited on b\n");
    assert_eq!(read(&beside(&p.b, "a")), b"edited on a\n");

    let out = p.a.run(&p.a_repo, &["doctor"]);
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(text.contains("reviewer.md.from-b"), "{text}");
    // The copies stay here; the conflict is not reported again.
    sync_both_ways(&p);
    let out = p.a.run(&p.a_repo, &["pull", "--json"]).success();
    assert_eq!(
        stdout_json(&out)["setup"]["conflicts"],
        serde_json::json!([])
    );
    assert!(
        !p.w.sync_dir()
            .join("setup")
            .read_dir()
            .unwrap()
            .any(|e| { contains(&read_object(&e.unwrap().path()), "reviewer.md.from-") }),
        "conflict copies do not travel"
    );

    // Resolved on a: b takes the resolution.
    put(&agent(&p.a), b"merged\n");
    std::fs::remove_file(beside(&p.a, "b")).unwrap();
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(read(&agent(&p.b)), b"merged\n");
}

#[test]
fn a_deletion_travels_only_over_an_unchanged_file() {
    let p = pair();
    with_setup(&p);
    let x = |m: &Machine| m.claude.join("commands/x.md");
    let y = |m: &Machine| m.claude.join("commands/y.md");
    put(&x(&p.a), b"x\n");
    put(&y(&p.a), b"y\n");
    sync_both_ways(&p);
    assert!(x(&p.b).exists() && y(&p.b).exists());

    std::fs::remove_file(x(&p.a)).unwrap();
    std::fs::remove_file(y(&p.a)).unwrap();
    put(&y(&p.b), b"y edited on b\n");
    p.a.run(&p.a_repo, &["push"]).success();
    let out = p.b.run(&p.b_repo, &["pull", "--json"]).success();
    assert_eq!(
        stdout_json(&out)["setup"]["deleted"][0]["path"],
        "commands/x.md"
    );
    assert!(!x(&p.b).exists(), "the deletion travels");
    assert_eq!(
        read(&y(&p.b)),
        b"y edited on b\n",
        "an edit beats a deletion"
    );
    p.b.run(&p.b_repo, &["push"]).success();
    p.a.run(&p.a_repo, &["pull"]).success();
    assert!(!x(&p.a).exists());
    assert_eq!(read(&y(&p.a)), b"y edited on b\n", "and comes back");
}

/// A snapshot as another machine would store it (plain JSON reads in a
/// sync dir that is not encrypted).
fn forged(machine: &str, files: &[(&str, &str)]) -> Vec<u8> {
    let files: Vec<serde_json::Value> = files
        .iter()
        .map(|(path, text)| {
            serde_json::json!({
                "path": path,
                "sha256": ccsync::bundle::sha256_hex(text.as_bytes()),
                "modifiedAt": 0,
                "utf8": text,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({
        "_setupVersion": 1, "machine": machine, "createdAt": 1, "files": files
    }))
    .unwrap()
}

#[test]
fn hostile_names_and_links_are_refused() {
    let p = pair();
    with_setup(&p);
    let setup_dir = p.w.sync_dir().join("setup");
    std::fs::create_dir_all(&setup_dir).unwrap();
    let outside = p.w.root().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    for (i, path) in [
        "../escape.md",
        "agents/../../escape.md",
        "/tmp/escape.md",
        ".credentials.json",
        "projects/-x/evil.jsonl",
        "agents\\..\\escape.md",
        "plugins/cache/x.json",
    ]
    .iter()
    .enumerate()
    {
        let bytes = forged(
            &format!("evil{i}"),
            &[(path, "pwned"), ("CLAUDE.md", "pwned")],
        );
        std::fs::write(setup_dir.join(format!("evil{i}.ccsetup")), bytes).unwrap();
    }
    let out = p.b.run(&p.b_repo, &["pull"]).code(3);
    assert!(stderr(&out).contains("evil0.ccsetup"), "{}", stderr(&out));
    for f in walk(&p.w.root()) {
        if f.is_file() && !f.starts_with(&setup_dir) {
            assert!(!contains(&read(&f), "pwned"), "{} written", f.display());
        }
    }
    assert!(!p.b.claude.join("CLAUDE.md").exists());
    for f in std::fs::read_dir(&setup_dir).unwrap() {
        std::fs::remove_file(f.unwrap().path()).unwrap();
    }

    // A link in the sync dir is not read.
    #[cfg(unix)]
    {
        let target = p.w.root().join("linked.ccsetup");
        std::fs::write(&target, forged("c", &[("CLAUDE.md", "via a link")])).unwrap();
        std::os::unix::fs::symlink(&target, setup_dir.join("c.ccsetup")).unwrap();
        p.b.run(&p.b_repo, &["pull"]);
        assert!(!p.b.claude.join("CLAUDE.md").exists());
        std::fs::remove_file(setup_dir.join("c.ccsetup")).unwrap();

        // A link here is never written through.
        put(&p.a.claude.join("agents/x.md"), b"from a\n");
        std::fs::create_dir_all(&p.b.claude).unwrap();
        std::os::unix::fs::symlink(&outside, p.b.claude.join("agents")).unwrap();
        p.a.run(&p.a_repo, &["push"]).success();
        let out = p.b.run(&p.b_repo, &["pull"]);
        assert!(stderr(&out).contains("link"), "{}", stderr(&out));
        assert!(!outside.join("x.md").exists());
        let listed = outside.read_dir().unwrap().count();
        assert_eq!(listed, 0);
    }
    let _: Option<PathBuf> = None;
}

fn exclude(m: &Machine, globs: &str) {
    let f = m.cfg.join("config.toml");
    let old = std::fs::read_to_string(&f).unwrap();
    std::fs::write(&f, format!("setup_exclude = {globs}\n{old}")).unwrap();
}

/// Pushes on a, pulls and pushes on b, pulls on a.
fn round_trip(p: &Pair) {
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    p.b.run(&p.b_repo, &["push"]).success();
    p.a.run(&p.a_repo, &["pull"]).success();
}

#[test]
fn a_conflict_kept_on_one_machine_never_overwrites_the_other_s_edit() {
    let p = pair();
    with_setup(&p);
    let agent = |m: &Machine| m.claude.join("agents/r.md");
    put(&agent(&p.a), b"v0\n");
    round_trip(&p);
    put(&agent(&p.a), b"edit on a\n");
    put(&agent(&p.b), b"edit on b\n");
    // b reads a's edit and keeps its own; then a reads b's.
    round_trip(&p);
    assert_eq!(read(&agent(&p.a)), b"edit on a\n");
    assert_eq!(read(&p.a.claude.join("agents/r.md.from-b")), b"edit on b\n");
    assert_eq!(read(&agent(&p.b)), b"edit on b\n");
    assert_eq!(read(&p.b.claude.join("agents/r.md.from-a")), b"edit on a\n");
    // It stays so, and quiet.
    round_trip(&p);
    let out = p.b.run(&p.b_repo, &["pull", "--json"]).success();
    assert_eq!(
        stdout_json(&out)["setup"]["conflicts"],
        serde_json::json!([])
    );
    assert_eq!(read(&agent(&p.a)), b"edit on a\n");
    assert_eq!(read(&agent(&p.b)), b"edit on b\n");
    // Resolved on b by an edit: a takes it.
    put(&agent(&p.b), b"merged\n");
    std::fs::remove_file(p.b.claude.join("agents/r.md.from-a")).unwrap();
    p.b.run(&p.b_repo, &["push"]).success();
    p.a.run(&p.a_repo, &["pull"]).success();
    assert_eq!(read(&agent(&p.a)), b"merged\n");
}

#[test]
fn three_machines_editing_one_file_lose_no_edit() {
    let p = pair();
    with_setup(&p);
    let c = p.w.machine("c");
    c.init(&p.w);
    c.run(
        &p.w.root(),
        &[
            "init",
            p.w.sync_dir().to_str().unwrap(),
            "--name",
            "c",
            "--setup",
        ],
    )
    .success();
    let c_repo = p.w.checkout("c/w", Some("https://github.com/acme/widget"));
    let agent = |m: &Machine| m.claude.join("agents/r.md");
    put(&agent(&p.a), b"v0\n");
    let all: [(&Machine, &Path); 3] = [(&p.a, &p.a_repo), (&p.b, &p.b_repo), (&c, &c_repo)];
    let round = || {
        for (m, r) in all {
            m.run(r, &["pull"]);
            m.run(r, &["push"]).success();
        }
    };
    round();
    round();
    for (m, _) in all {
        put(&agent(m), format!("edit on {}\n", m.name).as_bytes());
    }
    for _ in 0..4 {
        round();
    }
    for (m, _) in all {
        assert_eq!(read(&agent(m)), format!("edit on {}\n", m.name).as_bytes());
        for (o, _) in all.iter().filter(|(o, _)| o.name != m.name) {
            let beside = m.claude.join(format!("agents/r.md.from-{}", o.name));
            assert_eq!(read(&beside), format!("edit on {}\n", o.name).as_bytes());
        }
    }
}

#[test]
fn a_file_excluded_there_is_not_deleted_here() {
    let p = pair();
    with_setup(&p);
    let private = |m: &Machine| m.claude.join("agents/private.md");
    put(&private(&p.a), b"mine\n");
    round_trip(&p);
    assert_eq!(read(&private(&p.b)), b"mine\n");
    exclude(&p.b, r#"["agents/private.md"]"#);
    p.b.run(&p.b_repo, &["push"]).success();
    p.a.run(&p.a_repo, &["pull"]).success();
    assert_eq!(read(&private(&p.a)), b"mine\n");
    // An edit on a is not written on b, quietly.
    put(&private(&p.a), b"edited\n");
    p.a.run(&p.a_repo, &["push"]).success();
    let out = p.b.run(&p.b_repo, &["pull"]).success();
    assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    assert_eq!(read(&private(&p.b)), b"mine\n");
    // A real deletion still travels.
    std::fs::remove_file(p.a.claude.join("agents/private.md")).unwrap();
    put(&p.a.claude.join("commands/x.md"), b"x\n");
    round_trip(&p);
    std::fs::remove_file(p.a.claude.join("commands/x.md")).unwrap();
    round_trip(&p);
    assert!(!p.b.claude.join("commands/x.md").exists());
}

#[test]
fn a_file_that_became_a_link_there_is_not_deleted_here_nor_written_there() {
    let p = pair();
    with_setup(&p);
    let claude_md = |m: &Machine| m.claude.join("CLAUDE.md");
    put(&claude_md(&p.a), b"mine\n");
    round_trip(&p);
    let dot = p.b.home.join("dotfiles/CLAUDE.md");
    put(&dot, b"dotfiles\n");
    std::fs::remove_file(claude_md(&p.b)).unwrap();
    std::os::unix::fs::symlink(&dot, claude_md(&p.b)).unwrap();
    p.b.run(&p.b_repo, &["push"]).success();
    p.a.run(&p.a_repo, &["pull"]).success();
    assert_eq!(read(&claude_md(&p.a)), b"mine\n");
    put(&claude_md(&p.a), b"edited on a\n");
    p.a.run(&p.a_repo, &["push"]).success();
    for _ in 0..2 {
        let out = p.b.run(&p.b_repo, &["pull"]).success();
        assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    }
    assert_eq!(read(&dot), b"dotfiles\n");
}

#[test]
fn a_file_excluded_here_is_never_written_here() {
    let p = pair();
    with_setup(&p);
    exclude(&p.b, r#"["agents/work-*"]"#);
    put(&p.a.claude.join("agents/work-x.md"), b"work\n");
    p.a.run(&p.a_repo, &["push"]).success();
    for _ in 0..2 {
        let out = p.b.run(&p.b_repo, &["pull"]).success();
        assert!(!stderr(&out).contains("warning"), "{}", stderr(&out));
    }
    assert!(!p.b.claude.join("agents/work-x.md").exists());
}

#[test]
fn memory_of_a_project_whose_checkout_is_gone_there_is_not_deleted_here() {
    let p = pair();
    with_setup(&p);
    p.a.write_session(&p.a_repo, SID, &transcript(SID, &p.a_repo, 2, "a"));
    let mem = |m: &Machine, r: &Path| m.project_dir(r).join("memory/MEMORY.md");
    put(&mem(&p.a, &p.a_repo), b"memo\n");
    round_trip(&p);
    assert_eq!(read(&mem(&p.b, &p.b_repo)), b"memo\n");
    std::fs::remove_dir_all(&p.b_repo).unwrap();
    p.b.run(&p.w.root(), &["push"]).success();
    p.a.run(&p.a_repo, &["pull"]).success();
    assert_eq!(read(&mem(&p.a, &p.a_repo)), b"memo\n");
}

#[test]
fn credentials_in_the_setup_are_named_and_kept_here_when_refused() {
    let p = pair();
    with_setup(&p);
    let token = "ghp_abcdefghijklmnopqrstuvwxyz0123456789";
    let settings = format!("{{\n  \"env\": {{\n    \"GITHUB_TOKEN\": \"{token}\"\n  }}\n}}\n");
    put(&p.a.claude.join("settings.json"), settings.as_bytes());
    put(&p.a.claude.join("CLAUDE.md"), b"# Me\n");
    let secrets = |policy: &str| {
        let f = p.a.cfg.join("config.toml");
        let old = std::fs::read_to_string(&f).unwrap();
        let old: String = old
            .lines()
            .filter(|l| !l.starts_with("secrets"))
            .map(|l| format!("{l}\n"))
            .collect();
        std::fs::write(&f, format!("secrets = \"{policy}\"\n{old}")).unwrap();
    };

    secrets("refuse");
    let out = p.a.run(&p.a_repo, &["push"]);
    let err = stderr(&out);
    assert!(err.contains("line 3 of settings.json"), "{err}");
    assert!(err.contains("GitHub"), "{err}");
    assert!(!err.contains(token), "{err}");
    assert!(!contains(&sync_dir_bytes(&p), token));
    p.b.run(&p.b_repo, &["pull"]).success();
    assert!(!p.b.claude.join("settings.json").exists());
    assert_eq!(read(&p.b.claude.join("CLAUDE.md")), b"# Me\n");

    p.a.run(&p.a_repo, &["push", "--allow-secrets"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(read(&p.b.claude.join("settings.json")), settings.as_bytes());

    secrets("warn");
    put(&p.a.claude.join("CLAUDE.md"), b"# Me again\n");
    let out = p.a.run(&p.a_repo, &["push"]).success();
    assert!(
        stderr(&out).contains("line 3 of settings.json"),
        "{}",
        stderr(&out)
    );

    secrets("off");
    let out = p.a.run(&p.a_repo, &["push"]).success();
    assert!(!stderr(&out).contains("settings.json"), "{}", stderr(&out));
}

#[test]
fn only_a_known_machine_makes_a_conflict_copy() {
    let p = pair();
    with_setup(&p);
    put(&p.a.claude.join("commands/import.from-github.md"), b"x\n");
    put(&p.a.claude.join("agents/r.md"), b"a\n");
    put(&p.b.claude.join("agents/r.md"), b"b\n");
    p.b.run(&p.b_repo, &["push"]).success();
    p.a.run(&p.a_repo, &["pull"]).success();
    assert_eq!(read(&p.a.claude.join("agents/r.md.from-b")), b"b\n");
    let out = p.a.run(&p.a_repo, &["list", "--setup"]).success();
    let text = String::from_utf8(out.get_output().stdout.clone()).unwrap();
    assert!(
        text.lines()
            .any(|l| l.starts_with("travels") && l.ends_with("commands/import.from-github.md")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("stays") && l.contains("agents/r.md.from-b")),
        "{text}"
    );
    p.a.run(&p.a_repo, &["push"]).success();
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(
        read(&p.b.claude.join("commands/import.from-github.md")),
        b"x\n"
    );
}

#[test]
fn an_old_snapshot_put_back_rolls_nothing_back() {
    let p = pair();
    with_setup(&p);
    let claude_md = |m: &Machine| m.claude.join("CLAUDE.md");
    put(&claude_md(&p.a), b"v1\n");
    round_trip(&p);
    let object = p.w.sync_dir().join("setup/a.ccsetup");
    let old = read(&object);
    put(&claude_md(&p.a), b"v2 and longer\n");
    round_trip(&p);
    assert_eq!(read(&claude_md(&p.b)), b"v2 and longer\n");
    // A sync service brings back the old copy.
    std::fs::write(&object, &old).unwrap();
    p.b.run(&p.b_repo, &["pull"]).success();
    assert_eq!(read(&claude_md(&p.b)), b"v2 and longer\n");
    p.b.run(&p.b_repo, &["push"]).success();
    p.a.run(&p.a_repo, &["pull"]).success();
    assert_eq!(read(&claude_md(&p.a)), b"v2 and longer\n");
    // a's next push stores its snapshot again, though nothing changed.
    p.a.run(&p.a_repo, &["push"]).success();
    assert_ne!(read(&object), old);
    std::fs::write(&object, &old).unwrap();
    p.a.run(&p.a_repo, &["push"]).success();
    assert_ne!(read(&object), old);
}
