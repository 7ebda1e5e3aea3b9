//! Daily back-and-forth: push and pull what a user means.

use crate::env::*;

/// Plain `push` sends every session of the project that changed since this
/// machine last pushed it, and says how many were unchanged.
#[test]
fn plain_push_sends_every_changed_session_of_the_project() {
    let w = World::new();
    let a = w.machine("a");
    a.init(&w);
    let repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    let other = w.checkout("a/o", Some("git@github.com:acme/other.git"));
    a.write_session(&repo, SID, &transcript(SID, &repo, 2, "one"));
    a.write_session(&repo, SID2, &transcript(SID2, &repo, 2, "two"));
    let third = "1d2c3b4a-0000-4000-8000-00000000000f";
    a.write_session(&other, third, &transcript(third, &other, 2, "three"));
    let json = stdout_json(&a.run(&repo, &["push", "--json"]).success());
    assert_eq!(json["pushed"].as_array().unwrap().len(), 2, "{json}");
    // One of them goes on: only it travels; the other project's never.
    a.append(&repo, SID2, &transcript(SID2, &repo, 1, "more"));
    let json = stdout_json(&a.run(&repo, &["push", "--json"]).success());
    assert_eq!(json["pushed"][0]["sessionId"], SID2);
    assert_eq!(json["pushed"].as_array().unwrap().len(), 1);
    assert_eq!(json["unchanged"], serde_json::json!([SID]));
    assert!(!w.sync_dir().join("git=github.com_acme_other").exists());
}

/// `pull` takes an id or a unique prefix, in any case, like push.
#[test]
fn pull_takes_a_prefix_in_any_case() {
    // `_w` keeps the world (its temp dir) to the end.
    let Pair {
        w: _w,
        a,
        a_repo,
        b,
        b_repo,
    } = pair();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "one"));
    a.write_session(&a_repo, SID2, &transcript(SID2, &a_repo, 2, "two"));
    let twin = "0b000000-0000-4000-8000-000000000001";
    a.write_session(&a_repo, twin, &transcript(twin, &a_repo, 2, "twin"));
    a.run(&a_repo, &["push"]).success();

    let prefix = SID[..6].to_ascii_uppercase();
    b.run(&b_repo, &["pull", &prefix]).success();
    assert!(b.transcript(&b_repo, SID).is_file());
    assert!(!b.transcript(&b_repo, SID2).exists());
    b.run(&b_repo, &["pull", &SID2.to_ascii_uppercase()])
        .success();
    assert!(b.transcript(&b_repo, SID2).is_file());
    // Ambiguous or unknown: say so, change nothing.
    let out = b.run(&b_repo, &["pull", "0B"]).failure();
    assert!(
        stderr(&out).contains("matches 2 sessions") && stderr(&out).contains(twin),
        "{}",
        stderr(&out)
    );
    assert!(!b.transcript(&b_repo, twin).exists());
    let out = b.run(&b_repo, &["pull", "ffff"]).failure();
    assert!(stderr(&out).contains("list --remote"), "{}", stderr(&out));
}

/// "`ccsync push` sends them" is said only while it would send something:
/// once this machine's own copy in the sync dir holds its lines, pull says
/// nothing about them.
#[test]
fn advice_to_push_only_while_pushing_would_send_something() {
    // `_w` keeps the world (its temp dir) to the end.
    let Pair {
        w: _w,
        a,
        a_repo,
        b,
        b_repo,
    } = pair();
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "one"));
    a.run(&a_repo, &["push"]).success();
    b.run(&b_repo, &["pull"]).success();
    b.append(&b_repo, SID, &transcript(SID, &b_repo, 1, "b"));
    let said = stderr(&b.run(&b_repo, &["pull"]).success());
    assert!(said.contains("`ccsync push"), "{said}");
    // Not twice in a row.
    let said = stderr(&b.run(&b_repo, &["pull"]).success());
    assert!(!said.contains("ccsync push"), "{said}");
    b.append(&b_repo, SID, &transcript(SID, &b_repo, 1, "b1"));
    let said = stderr(&b.run(&b_repo, &["pull"]).success());
    assert!(said.contains("`ccsync push"), "{said}");
    b.run(&b_repo, &["push"]).success();
    let said = stderr(&b.run(&b_repo, &["pull"]).success());
    assert!(!said.contains("ccsync push"), "{said}");
    // It goes on here: the advice is back, once.
    b.append(&b_repo, SID, &transcript(SID, &b_repo, 1, "b2"));
    let said = stderr(&b.run(&b_repo, &["pull"]).success());
    assert!(said.contains("`ccsync push"), "{said}");
}

/// `Acme/Widget` and `acme/widget` on GitHub are one repository, so one
/// project; a copy an older ccsync filed under the unfolded key still
/// arrives. Another host keeps its case, and when nothing arrives, pull
/// names the keys the sync dir holds and how to map one with `[aliases]`.
#[test]
fn project_keys_fold_case_on_forges_and_aliases_map_the_rest() {
    let (w, [a, b, c], [a_repo, b_repo, c_repo]) = three_machines([
        "git@github.com:Acme/Widget.git",
        "https://github.com/acme/widget",
        "git@git.example.org:acme/widget.git",
    ]);
    a.write_session(&a_repo, SID, &transcript(SID, &a_repo, 2, "one"));
    a.run(&a_repo, &["push"]).success();
    let folded = w.sync_dir().join("git=github.com_acme_widget");
    assert!(folded.join(format!("{SID}-a.ccsync")).is_file());
    b.run(&b_repo, &["pull"]).success();
    assert!(b.transcript(&b_repo, SID).is_file());

    // A copy filed by an older build under the key as the remote spelled it.
    a.write_session(&a_repo, SID2, &transcript(SID2, &a_repo, 2, "two"));
    a.run(&a_repo, &["push", SID2]).success();
    let legacy = w.sync_dir().join("git=github.com_%41cme_%57idget");
    std::fs::create_dir_all(&legacy).unwrap();
    let pushed = folded.join(format!("{SID2}-a.ccsync"));
    let old = String::from_utf8(read_object(&pushed))
        .unwrap()
        .replace("git:github.com/acme/widget", "git:github.com/Acme/Widget")
        .replace("\"machineName\":\"a\"", "\"machineName\":\"old\"");
    std::fs::write(legacy.join(format!("{SID2}-old.ccsync")), old).unwrap();
    std::fs::remove_file(pushed).unwrap();
    b.run(&b_repo, &["pull"]).success();
    assert!(b.transcript(&b_repo, SID2).is_file());

    // Another host: nothing arrives, and pull says what is there.
    let out = c.run(&c_repo, &["pull"]).success();
    let said = stderr(&out);
    assert!(
        said.contains("git:github.com/acme/widget")
            && said.contains("[aliases]")
            && said
                .contains("\"git:github.com/acme/widget\" = \"git:git.example.org/acme/widget\""),
        "{said}"
    );
    let config = c.cfg.join("config.toml");
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(
        "\n[aliases]\n\"git:github.com/acme/widget\" = \"git:git.example.org/acme/widget\"\n",
    );
    std::fs::write(&config, text).unwrap();
    c.run(&c_repo, &["pull"]).success();
    assert!(c.transcript(&c_repo, SID).is_file());
    assert!(c.transcript(&c_repo, SID2).is_file());
}

/// Machines a, b and c, set up, each with a checkout of `remotes[i]`.
fn three_machines(remotes: [&str; 3]) -> (World, [Machine; 3], [std::path::PathBuf; 3]) {
    let w = World::new();
    let ms = [w.machine("a"), w.machine("b"), w.machine("c")];
    for m in &ms {
        m.init(&w);
    }
    let repos = [0, 1, 2].map(|i| w.checkout(&format!("{}/w", ms[i].name), Some(remotes[i])));
    (w, ms, repos)
}

/// The conversations a machine holds, each as its lines with the
/// `sessionId` value masked (a fork differs from its origin only there).
fn conversations(m: &Machine) -> Vec<Vec<u8>> {
    let mut out: Vec<Vec<u8>> = walk(&m.claude.join("projects"))
        .into_iter()
        .filter(|p| {
            p.extension().is_some_and(|e| e == "jsonl")
                && p.parent().unwrap().parent().unwrap().ends_with("projects")
        })
        .map(|p| mask(&std::fs::read(p).unwrap()))
        .collect();
    out.sort();
    out
}

fn mask(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8(bytes.to_vec()).unwrap();
    let mut out = String::new();
    for line in text.split_inclusive('\n') {
        match line.find("\"sessionId\":\"") {
            Some(at) => {
                let start = at + "\"sessionId\":\"".len();
                out.push_str(&line[..start]);
                out.push_str("<id>");
                out.push_str(&line[start + 36..]);
            }
            None => out.push_str(line),
        }
    }
    out.into_bytes()
}

fn sync_bytes(w: &World) -> (usize, u64) {
    let files: Vec<_> = walk(&w.sync_dir())
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "ccsync"))
        .collect();
    let bytes = files
        .iter()
        .map(|p| std::fs::metadata(p).unwrap().len())
        .sum();
    (files.len(), bytes)
}

/// Three machines (one with the remote spelled in another case) continue
/// one session each its own way, then push and pull: every machine ends
/// with the same conversations, none twice; a fork pulled here is never
/// pushed back, so it is never installed again where it came from; one
/// more round writes nothing and advises nothing.
#[test]
fn three_machines_that_diverge_converge_without_duplicates() {
    let (w, [a, b, c], repos) = three_machines([
        "git@github.com:acme/widget.git",
        "https://github.com/Acme/Widget",
        "ssh://git@github.com/acme/widget",
    ]);
    let ms = [&a, &b, &c];
    a.write_session(&repos[0], SID, &transcript(SID, &repos[0], 40, "common"));
    a.run(&repos[0], &["push"]).success();
    for (m, r) in ms.iter().zip(&repos).skip(1) {
        m.run(r, &["pull"]).success();
    }
    b.append(&repos[1], SID, &transcript(SID, &repos[1], 3, "bee"));
    c.append(&repos[2], SID, &transcript(SID, &repos[2], 2, "sea"));
    let round = || {
        for (m, r) in ms.iter().zip(&repos) {
            m.run(r, &["push"]).success();
        }
        for (m, r) in ms.iter().zip(&repos) {
            m.run(r, &["pull"]).success();
        }
    };
    round();
    round();
    let want = conversations(&b);
    assert_eq!(want.len(), 2, "b's branch and c's");
    for m in ms {
        let have = conversations(m);
        assert_eq!(have, want, "machine {} differs", m.name);
    }
    // Nothing sent twice: one object per branch. a's first copy went once
    // b's extended it; no fork was pushed back.
    let (objects, bytes) = sync_bytes(&w);
    let distinct: u64 = want.iter().map(|c| c.len() as u64).sum();
    eprintln!(
        "sync dir: {objects} objects, {bytes} bytes for {distinct} bytes of conversations ({:.2}x)",
        bytes as f64 / distinct as f64
    );
    assert_eq!(objects, 2);
    assert!(bytes * 2 <= distinct * 3, "{bytes} > 1.5 x {distinct}");

    // One more round: nothing written anywhere, nothing advised.
    let before = snapshot(&w.sync_dir());
    for (m, r) in ms.iter().zip(&repos) {
        let out = m.run(r, &["push", "--json"]).success();
        assert_eq!(
            stdout_json(&out)["pushed"],
            serde_json::json!([]),
            "{}",
            m.name
        );
    }
    for (m, r) in ms.iter().zip(&repos) {
        let said = stderr(&m.run(r, &["pull"]).success());
        assert!(!said.contains("ccsync push"), "{}: {said}", m.name);
        assert!(said.contains("pulled 0 sessions"), "{}: {said}", m.name);
    }
    assert_eq!(snapshot(&w.sync_dir()), before);
}

/// A machine that takes a new name carries its copies and claim along;
/// `forget` removes another machine's copies or a session's (asking, or
/// with --yes), never a local transcript; doctor lists the machines and
/// flags one silent for over 30 days.
#[test]
fn machines_are_renamed_forgotten_and_listed() {
    let (w, [a, b, c], repos) = three_machines(["git@github.com:acme/widget.git"; 3]);
    a.write_session(&repos[0], SID, &transcript(SID, &repos[0], 2, "a"));
    a.write_session(&repos[0], SID2, &transcript(SID2, &repos[0], 2, "a2"));
    a.run(&repos[0], &["push"]).success();
    let third = "1d2c3b4a-0000-4000-8000-00000000000f";
    c.write_session(&repos[2], third, &transcript(third, &repos[2], 2, "c"));
    c.run(&repos[2], &["push"]).success();
    let project = w.sync_dir().join("git=github.com_acme_widget");

    // a becomes laptop: copies and claim follow, the bytes of the
    // transcripts are the same.
    let out = a
        .run(
            &w.root(),
            &["init", w.sync_dir().to_str().unwrap(), "--name", "laptop"],
        )
        .success();
    assert!(
        stderr(&out).contains("carried 2 copies from a to laptop"),
        "{}",
        stderr(&out)
    );
    assert!(project.join(format!("{SID}-laptop.ccsync")).is_file());
    assert!(!project.join(format!("{SID}-a.ccsync")).exists());
    assert!(!w.sync_dir().join("machines/a.json").exists());
    assert!(w.sync_dir().join("machines/laptop.json").is_file());
    let json = stdout_json(&a.run(&repos[0], &["push", "--json"]).success());
    assert_eq!(
        json["pushed"],
        serde_json::json!([]),
        "nothing to send again"
    );
    b.run(&repos[1], &["pull"]).success();
    assert_eq!(
        std::fs::read(b.transcript(&repos[1], SID)).unwrap(),
        std::fs::read(a.transcript(&repos[0], SID)).unwrap()
    );

    // Doctor lists the machines; c is made silent for 40 days.
    let forty_days_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(40 * 86400);
    for f in [
        project.join(format!("{third}-c.ccsync")),
        w.sync_dir().join("machines/c.json"),
    ] {
        std::fs::File::options()
            .write(true)
            .open(f)
            .unwrap()
            .set_modified(forty_days_ago)
            .unwrap();
    }
    let json = stdout_json(&b.run(&repos[1], &["doctor", "--json"]).success());
    let machines = json["machines"].as_array().unwrap();
    let names: Vec<&str> = machines
        .iter()
        .map(|m| m["machine"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["b", "c", "laptop"]);
    assert_eq!(machines[1]["silent"], true);
    assert_eq!(machines[2]["objects"], 2);
    assert!(json.to_string().contains("forget --machine c"));

    // Forgetting asks; without a terminal it needs --yes.
    let out = b.run(&repos[1], &["forget", "--machine", "c"]).failure();
    assert!(stderr(&out).contains("--yes"), "{}", stderr(&out));
    assert!(project.join(format!("{third}-c.ccsync")).is_file());
    b.run(&repos[1], &["forget", "--machine", "b"]).failure();
    b.run(&repos[1], &["forget", "--machine", "c", "--yes"])
        .success();
    assert!(!project.join(format!("{third}-c.ccsync")).exists());
    assert!(!w.sync_dir().join("machines/c.json").exists());
    assert!(
        c.transcript(&repos[2], third).is_file(),
        "local transcripts stay"
    );

    // A session: every machine's copy goes; none here.
    b.run(&repos[1], &["push"]).success();
    b.run(
        &repos[1],
        &["forget", &SID2[..8].to_ascii_uppercase(), "--yes"],
    )
    .success();
    assert!(
        !walk(&w.sync_dir())
            .iter()
            .any(|p| p.to_string_lossy().contains(SID2))
    );
    assert!(b.transcript(&repos[1], SID2).is_file());
}

/// A fork this machine got of the other machine's branch, continued here
/// and pushed, goes back to that machine as the session it came from (its
/// lines extend it), not as a second copy of that conversation.
#[test]
fn a_fork_continued_elsewhere_comes_back_as_its_origin() {
    let (w, [a, b, _c], repos) = three_machines(["git@github.com:acme/widget.git"; 3]);
    a.write_session(&repos[0], SID, &transcript(SID, &repos[0], 20, "common"));
    a.run(&repos[0], &["push"]).success();
    b.run(&repos[1], &["pull"]).success();
    a.append(&repos[0], SID, &transcript(SID, &repos[0], 2, "aye"));
    b.append(&repos[1], SID, &transcript(SID, &repos[1], 3, "bee"));
    for _ in 0..2 {
        a.run(&repos[0], &["push"]).success();
        b.run(&repos[1], &["push"]).success();
        a.run(&repos[0], &["pull"]).success();
        b.run(&repos[1], &["pull"]).success();
    }
    assert_eq!(conversations(&a), conversations(&b));
    // On a, the fork holding b's branch goes on.
    let fork = walk(&a.project_dir(&repos[0]))
        .into_iter()
        .find(|p| {
            p.extension().is_some_and(|e| e == "jsonl") && !p.ends_with(format!("{SID}.jsonl"))
        })
        .expect("a fork of b's branch on a");
    let fork_id = fork.file_stem().unwrap().to_str().unwrap().to_owned();
    a.append(
        &repos[0],
        &fork_id,
        &transcript(&fork_id, &repos[0], 2, "on a"),
    );
    for _ in 0..2 {
        a.run(&repos[0], &["push"]).success();
        b.run(&repos[1], &["push"]).success();
        a.run(&repos[0], &["pull"]).success();
        b.run(&repos[1], &["pull"]).success();
    }
    let (ca, cb) = (conversations(&a), conversations(&b));
    assert_eq!(ca.len(), 2, "a's branch and b's, continued on a");
    assert_eq!(ca, cb);
    assert!(
        !b.transcript(&repos[1], &fork_id).exists(),
        "b's own session took it"
    );
    let (objects, bytes) = sync_bytes(&w);
    let distinct: u64 = ca.iter().map(|c| c.len() as u64).sum();
    assert!(
        objects <= 2 && bytes * 2 <= distinct * 3,
        "{objects} objects, {bytes} bytes for {distinct}"
    );
}

/// A tiny deterministic generator, so a failing sequence can be replayed.
struct Lcg(u64);

impl Lcg {
    fn below(&mut self, n: usize) -> usize {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((self.0 >> 33) as usize) % n
    }
}

/// `push`, on a machine that may have no session of the project yet.
fn push_any(m: &Machine, r: &std::path::Path) {
    let out = m.run(r, &["push"]);
    let code = out.get_output().status.code();
    assert!(
        code == Some(0) || (code == Some(1) && stderr(&out).contains("no session of project")),
        "{}: {}",
        m.name,
        stderr(&out)
    );
}

/// One line for `id` in `cwd`, unique by `tag`.
fn one_line(id: &str, cwd: &std::path::Path, tag: &str) -> Vec<u8> {
    transcript(id, cwd, 1, tag)
}

/// Random appends, pushes and pulls on three machines (forks, forks of
/// forks, branches coming back under other ids), then one round in which
/// every machine pushes and then pulls: all hold the same conversations,
/// none twice (nor one inside another), no line appended anywhere is lost,
/// the sync dir holds one object per conversation within 1.5x their bytes,
/// and one more round writes nothing anywhere and advises nothing.
#[test]
fn random_back_and_forth_converges() {
    for seed in [
        1u64, 7, 42, 2026, 3, 5, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43,
    ] {
        let mut rng = Lcg(seed);
        let (w, ms, repos) = three_machines([
            "git@github.com:acme/widget.git",
            "https://github.com/Acme/Widget",
            "ssh://git@github.com/acme/widget",
        ]);
        ms[0].write_session(&repos[0], SID, &transcript(SID, &repos[0], 3, "start"));
        let mut tags: Vec<String> = Vec::new();
        for step in 0..40 {
            let i = rng.below(3);
            let (m, r) = (&ms[i], &repos[i]);
            match rng.below(4) {
                0 | 1 => {
                    // Go on with one of the sessions here, a fork included.
                    let sessions: Vec<_> = std::fs::read_dir(m.project_dir(r))
                        .map(|d| d.flatten().map(|e| e.path()).collect::<Vec<_>>())
                        .unwrap_or_default()
                        .into_iter()
                        .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
                        .collect();
                    if sessions.is_empty() {
                        continue;
                    }
                    let path = &sessions[rng.below(sessions.len())];
                    let id = path.file_stem().unwrap().to_str().unwrap().to_owned();
                    let tag = format!("s{seed}-{step}-{}", m.name);
                    m.append(r, &id, &one_line(&id, r, &tag));
                    tags.push(tag);
                }
                2 => {
                    push_any(m, r);
                }
                _ => {
                    m.run(r, &["pull"]).success();
                }
            }
        }
        // One round: every machine pushes, then every machine pulls.
        for (m, r) in ms.iter().zip(&repos) {
            push_any(m, r);
        }
        for (m, r) in ms.iter().zip(&repos) {
            m.run(r, &["pull"]).success();
        }
        let want = conversations(&ms[0]);
        let show = || {
            for (m, r) in ms.iter().zip(&repos) {
                for p in std::fs::read_dir(m.project_dir(r)).unwrap().flatten() {
                    if p.path().is_file() {
                        let text = String::from_utf8(std::fs::read(p.path()).unwrap()).unwrap();
                        let tags: Vec<&str> = text
                            .lines()
                            .filter_map(|l| l.split("\"content\":").nth(1))
                            .map(|c| {
                                c.trim_start_matches(['"', '[', '{'])
                                    .split(' ')
                                    .next()
                                    .unwrap_or("")
                            })
                            .collect();
                        eprintln!(
                            "{} {}: {tags:?}",
                            m.name,
                            &p.file_name().to_string_lossy()[..8]
                        );
                    }
                }
            }
            for o in walk(&w.sync_dir()) {
                eprintln!("sync: {}", o.file_name().unwrap().to_string_lossy());
            }
        };
        for m in &ms {
            let have = conversations(m);
            if have != want {
                show();
            }
            assert_eq!(have, want, "seed {seed}: machine {} differs", m.name);
            for (x, a) in have.iter().enumerate() {
                for (y, b) in have.iter().enumerate() {
                    assert!(
                        x == y || !b.starts_with(a),
                        "seed {seed}: {} holds one conversation twice",
                        m.name
                    );
                }
            }
        }
        let all: Vec<u8> = want.concat();
        for tag in &tags {
            assert!(
                all.windows(tag.len()).any(|win| win == tag.as_bytes()),
                "seed {seed}: line {tag} was lost"
            );
        }
        // At rest: one more round writes nothing anywhere.
        let before = (
            snapshot(&w.sync_dir()),
            ms.iter()
                .map(|m| snapshot(&m.claude.join("projects")))
                .collect::<Vec<_>>(),
        );
        for (m, r) in ms.iter().zip(&repos) {
            push_any(m, r);
        }
        for (m, r) in ms.iter().zip(&repos) {
            let out = m.run(r, &["pull"]).success();
            let said = format!(
                "{}{}",
                String::from_utf8_lossy(&out.get_output().stdout),
                stderr(&out)
            );
            assert!(
                !said.contains("ccsync push"),
                "seed {seed}: {} advises at rest: {said}",
                m.name
            );
        }
        let after = (
            snapshot(&w.sync_dir()),
            ms.iter()
                .map(|m| snapshot(&m.claude.join("projects")))
                .collect::<Vec<_>>(),
        );
        assert!(
            before == after,
            "seed {seed}: another round changed something"
        );
        let (objects, bytes) = sync_bytes(&w);
        let distinct: u64 = want.iter().map(|c| c.len() as u64).sum();
        eprintln!(
            "seed {seed}: {} conversations, {objects} objects, {bytes} bytes for {distinct} ({:.2}x)",
            want.len(),
            bytes as f64 / distinct as f64
        );
        assert_eq!(
            objects,
            want.len(),
            "seed {seed}: one object per conversation"
        );
        assert!(
            bytes as f64 <= 1.5 * distinct as f64,
            "seed {seed}: the sync dir holds {bytes} bytes for {distinct} of conversations"
        );
    }
}
