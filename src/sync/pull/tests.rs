use super::*;
use std::time::Duration;

use crate::bundle::Bundle;
use crate::claude::ClaudeHome;
use crate::claude::transcript;
use crate::fsutil;
use crate::index::Index;
use crate::names::RelPath;
use crate::sync::plan::PartAction;
use crate::transport::memory::MemoryTransport;

const SID: &str = "5c0375b4-57a5-4f26-b12d-d022ee4e51b7";

struct Fixture {
    _tmp: tempfile::TempDir,
    claude: ClaudeHome,
    root: PathBuf,
    staging: crate::config::Staging,
    transport: MemoryTransport,
    key: ProjectKey,
}

fn fixture() -> Fixture {
    let tmp = tempfile::tempdir().unwrap();
    let claude = ClaudeHome::resolve(Some(tmp.path().join("claude").into()), None, None).unwrap();
    let root = tmp.path().join("checkout");
    let staging = crate::config::ConfigDir::new(tmp.path().join("cfg"))
        .staging()
        .unwrap();
    Fixture {
        claude,
        root,
        staging,
        transport: MemoryTransport::new(),
        key: ProjectKey::parse("git:example.org/acme/app").unwrap(),
        _tmp: tmp,
    }
}

fn lines(tags: &[&str]) -> Vec<u8> {
    tags.iter()
        .flat_map(|t| format!("{{\"sessionId\":\"{SID}\",\"t\":\"{t}\"}}\n").into_bytes())
        .collect()
}

impl Fixture {
    fn offer(&self, machine: &str, transcript: Vec<u8>) {
        self.offer_with(machine, transcript, Vec::new());
    }

    /// A copy under another session id: the same lines, that id in them.
    fn offer_as(&self, machine: &str, id: &str, transcript: Vec<u8>) {
        let transcript = crate::claude::transcript::with_session_id(&transcript, SID, id);
        self.offer_full(machine, id, transcript, Vec::new());
    }

    fn offer_with(
        &self,
        machine: &str,
        transcript: Vec<u8>,
        parts: Vec<(crate::names::PartPath, Vec<u8>)>,
    ) {
        self.offer_full(machine, SID, transcript, parts);
    }

    fn offer_full(
        &self,
        machine: &str,
        id: &str,
        transcript: Vec<u8>,
        parts: Vec<(crate::names::PartPath, Vec<u8>)>,
    ) {
        let b = Bundle {
            meta: crate::bundle::Meta {
                version: 2,
                session_id: SessionId::parse(id).unwrap(),
                project_key: self.key.clone(),
                original_cwd: "/elsewhere/app".into(),
                relative_cwd: Some(RelPath::default()),
                machine: MachineName::parse(machine).unwrap(),
                exported_at_ms: 0,
                modified_ms: None,
                parts_modified_ms: Default::default(),
                segment: None,
            },
            transcript,
            parts,
        };
        let name = ObjectName::for_session(&self.key, &b.meta.session_id, &b.meta.machine);
        self.transport.insert(name, b.to_bytes().unwrap());
    }

    fn pull(&self, force: bool) -> PullReport {
        self.pull_with(&Installer::new(&self.claude, force, Duration::ZERO).unwrap())
    }

    fn pull_with(&self, installer: &Installer) -> PullReport {
        let checkouts = [Checkout {
            key: self.key.clone(),
            root: self.root.clone(),
        }];
        let me = MachineName::parse("me").unwrap();
        let mut link = Link {
            transport: &self.transport,
            layers: &crate::bundle::layers::Layers::compressed(),
            staging: &self.staging,
            machine: &me,
            index: &mut Index::default(),
            progress: &crate::sync::Quiet,
            dry_run: false,
        };
        pull(
            &mut link,
            installer,
            &checkouts,
            &KeyMap::default(),
            None,
            None,
        )
        .unwrap()
    }

    fn dir(&self) -> PathBuf {
        self.claude
            .project_dir_for(self.root.to_str().unwrap())
            .unwrap()
    }

    fn local(&self, id: &str) -> Option<Vec<u8>> {
        std::fs::read(self.dir().join(format!("{id}.jsonl"))).ok()
    }

    fn set_local(&self, bytes: &[u8]) {
        fsutil::write_atomic_bytes(&self.dir().join(format!("{SID}.jsonl")), bytes).unwrap();
    }
}

#[test]
fn side_files_are_added_extended_kept_and_superseded() {
    use crate::names::PartPath;
    let f = fixture();
    let id = SessionId::parse(SID).unwrap();
    let p = |s: &str| PartPath::parse(s).unwrap();
    let at = |s: &str| f.claude.part_file(&f.dir(), &id, &p(s));
    f.offer_with(
        "a",
        lines(&["1"]),
        vec![
            (p("subagents/agent-x.jsonl"), b"{\"a\":1}\n".to_vec()),
            (p("tasks/1.json"), b"{\"status\":\"open\"}".to_vec()),
            (p("file-history/h@v1"), vec![0, 255, 10, 13]),
        ],
    );
    let r = f.pull(false);
    assert_eq!(r.outcomes[0].parts.written, 3);
    assert_eq!(
        std::fs::read(at("file-history/h@v1")).unwrap(),
        [0, 255, 10, 13]
    );
    assert_eq!(
        at("subagents/agent-x.jsonl"),
        f.dir().join(SID).join("subagents/agent-x.jsonl")
    );

    // This machine works on: its task list changes, its subagent grows.
    f.set_local(&lines(&["1", "mine"]));
    std::fs::write(at("tasks/1.json"), b"{\"status\":\"done here\"}").unwrap();
    std::fs::write(at("subagents/agent-x.jsonl"), b"{\"a\":1}\n{\"b\":2}\n").unwrap();
    // The other machine's copy is not newer: nothing it has is taken
    // over what is here, but a new file is added.
    f.offer_with(
        "a",
        lines(&["1"]),
        vec![
            (p("subagents/agent-x.jsonl"), b"{\"a\":1}\n".to_vec()),
            (p("tasks/1.json"), b"{\"status\":\"open\"}".to_vec()),
            (p("tool-results/t.txt"), b"out".to_vec()),
        ],
    );
    let r = f.pull(false);
    let o = &r.outcomes[0];
    assert_eq!(o.action, Action::Keep);
    assert_eq!(o.parts.written, 1);
    assert_eq!(
        o.parts.kept,
        [
            (at("subagents/agent-x.jsonl"), PartAction::LocalAhead),
            (at("tasks/1.json"), PartAction::Differs)
        ]
    );
    assert_eq!(
        std::fs::read(at("tasks/1.json")).unwrap(),
        b"{\"status\":\"done here\"}"
    );

    // The other machine continued from here: its task list is newer, and
    // its subagent transcript extends this one; a diverged subagent
    // transcript is still never replaced.
    std::fs::write(at("subagents/agent-y.jsonl"), b"{\"mine\":1}\n").unwrap();
    f.offer_with(
        "a",
        lines(&["1", "mine", "2"]),
        vec![
            (
                p("subagents/agent-x.jsonl"),
                b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n".to_vec(),
            ),
            (p("subagents/agent-y.jsonl"), b"{\"theirs\":1}\n".to_vec()),
            (p("tasks/1.json"), b"{\"status\":\"closed\"}".to_vec()),
        ],
    );
    let r = f.pull(false);
    let o = &r.outcomes[0];
    assert_eq!(o.action, Action::FastForward { from: 0 });
    assert_eq!(o.parts.written, 2);
    assert_eq!(
        o.parts.kept,
        [(at("subagents/agent-y.jsonl"), PartAction::Differs)]
    );
    assert_eq!(
        std::fs::read(at("tasks/1.json")).unwrap(),
        b"{\"status\":\"closed\"}"
    );
    assert_eq!(
        std::fs::read(at("subagents/agent-y.jsonl")).unwrap(),
        b"{\"mine\":1}\n"
    );
    assert_eq!(
        std::fs::read(at("tool-results/t.txt")).unwrap(),
        b"out",
        "never deleted"
    );
}

/// A fork keeps the other machine's side files under its own id; the
/// local session's are not touched.
#[test]
fn a_fork_gets_the_side_files_of_its_branch() {
    use crate::names::PartPath;
    let f = fixture();
    let id = SessionId::parse(SID).unwrap();
    let p = PartPath::parse("tasks/1.json").unwrap();
    f.set_local(&lines(&["1", "mine"]));
    let mine = f.claude.part_file(&f.dir(), &id, &p);
    std::fs::create_dir_all(mine.parent().unwrap()).unwrap();
    std::fs::write(&mine, b"mine").unwrap();
    f.offer_with(
        "a",
        lines(&["1", "theirs"]),
        vec![(p.clone(), b"theirs".to_vec())],
    );
    let r = f.pull(false);
    let o = &r.outcomes[0];
    assert_eq!(o.forks.len(), 1);
    assert_eq!(o.forks[0].parts.written, 1);
    assert_eq!(std::fs::read(&mine).unwrap(), b"mine");
    let theirs = f.claude.part_file(&f.dir(), &o.forks[0].id, &p);
    assert_eq!(std::fs::read(theirs).unwrap(), b"theirs");
}

/// A session Claude Code is writing gets no side files either.
#[test]
fn a_live_session_gets_no_side_files() {
    use crate::names::PartPath;
    let f = fixture();
    f.set_local(&lines(&["1"]));
    f.offer_with(
        "a",
        lines(&["1"]),
        vec![(
            PartPath::parse("tool-results/t.txt").unwrap(),
            b"x".to_vec(),
        )],
    );
    let installer = Installer::new(&f.claude, false, Duration::from_secs(3600)).unwrap();
    let r = f.pull_with(&installer);
    assert!(r.outcomes[0].held.is_some());
    assert_eq!(r.outcomes[0].parts.written, 0);
    assert!(!f.dir().join(SID).exists());
    assert!(r.incomplete());
}

#[test]
fn installs_then_fast_forwards_then_keeps() {
    let f = fixture();
    f.offer("a", lines(&["1"]));
    let r = f.pull(false);
    assert_eq!(r.outcomes[0].action, Action::Install { from: 0 });
    assert_eq!(f.local(SID), Some(lines(&["1"])));
    f.offer("a", lines(&["1", "2"]));
    assert_eq!(
        f.pull(false).outcomes[0].action,
        Action::FastForward { from: 0 }
    );
    assert_eq!(f.pull(false).outcomes[0].action, Action::Keep);
    assert!(!f.pull(false).incomplete());
}

#[test]
fn an_unchanged_session_is_not_fetched_again() {
    let f = fixture();
    let mut index = Index::default();
    let me = MachineName::parse("me").unwrap();
    let checkouts = [Checkout {
        key: f.key.clone(),
        root: f.root.clone(),
    }];
    let run = |index: &mut Index| {
        let installer = Installer::new(&f.claude, false, Duration::ZERO).unwrap();
        pull(
            &mut Link {
                transport: &f.transport,
                layers: &crate::bundle::layers::Layers::compressed(),
                staging: &f.staging,
                machine: &me,
                index,
                progress: &crate::sync::Quiet,
                dry_run: false,
            },
            &installer,
            &checkouts,
            &KeyMap::default(),
            None,
            None,
        )
        .unwrap()
    };
    f.offer("a", lines(&["1"]));
    f.offer("b", lines(&["1", "b"]));
    run(&mut index);
    assert_eq!(f.transport.fetched(), 2);
    let again = run(&mut index);
    assert_eq!(f.transport.fetched(), 2, "nothing fetched");
    assert_eq!(again.outcomes[0].action, Action::Keep);
    assert_eq!(again.outcomes[0].verdicts.len(), 2);
    // The local transcript changed: fetched and judged again.
    fsutil::write_atomic_bytes(
        &f.dir().join(format!("{SID}.jsonl")),
        &lines(&["1", "b", "mine"]),
    )
    .unwrap();
    let third = run(&mut index);
    assert_eq!(f.transport.fetched(), 4);
    assert_eq!(third.outcomes[0].verdicts[0].1, Verdict::LocalAhead);
    // A copy changed in the transport: fetched again.
    f.offer("a", lines(&["1", "b", "mine", "more"]));
    assert_eq!(
        run(&mut index).outcomes[0].action,
        Action::FastForward { from: 0 }
    );
    assert_eq!(f.transport.fetched(), 6);
}

#[test]
fn own_copies_are_not_pulled() {
    let f = fixture();
    f.offer("me", lines(&["1"]));
    assert!(f.pull(false).outcomes.is_empty());
}

#[test]
fn diverged_copies_become_stable_forks() {
    let f = fixture();
    f.set_local(&lines(&["1", "here"]));
    f.offer("a", lines(&["1", "there"]));
    let r = f.pull(false);
    let o = &r.outcomes[0];
    assert_eq!(o.action, Action::Keep);
    assert_eq!(o.verdicts[0].1, Verdict::Diverged);
    let fork = &o.forks[0];
    assert_eq!(fork.action, Action::Install { from: 0 });
    let a = MachineName::parse("a").unwrap();
    let sid = SessionId::parse(SID).unwrap();
    assert_eq!(fork.id, fork_id(&sid, &a, 0));
    let forked = f.local(fork.id.as_str()).unwrap();
    assert_eq!(
        forked,
        transcript::with_session_id(&lines(&["1", "there"]), SID, fork.id.as_str())
    );
    assert_eq!(f.local(SID), Some(lines(&["1", "here"])));

    // Again: nothing new. Then the other side goes on: the fork follows.
    assert_eq!(f.pull(false).outcomes[0].forks[0].action, Action::Keep);
    f.offer("a", lines(&["1", "there", "more"]));
    let again = f.pull(false);
    assert_eq!(again.outcomes[0].forks[0].id, fork.id);
    assert_eq!(
        again.outcomes[0].forks[0].action,
        Action::FastForward { from: 0 }
    );

    // The other side rewrites its branch: a second-generation fork.
    f.offer("a", lines(&["1", "rewritten"]));
    let third = f.pull(false);
    assert_eq!(third.outcomes[0].forks[0].id, fork_id(&sid, &a, 1));
    assert_eq!(
        third.outcomes[0].forks[0].action,
        Action::Install { from: 0 }
    );
    assert!(
        f.local(fork_id(&sid, &a, 0).as_str())
            .unwrap()
            .ends_with(b"\"more\"}\n")
    );
}

#[test]
fn fork_ids_are_stable_and_distinct() {
    let sid = SessionId::parse(SID).unwrap();
    let a = MachineName::parse("a").unwrap();
    let b = MachineName::parse("b").unwrap();
    assert_eq!(fork_id(&sid, &a, 0), fork_id(&sid, &a, 0));
    assert_ne!(fork_id(&sid, &a, 0), fork_id(&sid, &b, 0));
    assert_ne!(fork_id(&sid, &a, 0), fork_id(&sid, &a, 1));
    assert_ne!(fork_id(&sid, &a, 0), sid);
}

/// The session a client is starting (`pull --except`, the SessionStart
/// hook's) is never written, whichever copy would go to it: here another
/// machine's copy under a fork id, which holds its branch.
#[test]
fn a_session_being_started_is_never_written() {
    let f = fixture();
    f.set_local(&lines(&["1"]));
    let sid = SessionId::parse(SID).unwrap();
    let other = fork_id(&sid, &MachineName::parse("b").unwrap(), 0);
    f.offer_as("a", other.as_str(), lines(&["1", "2"]));
    let mut installer = Installer::new(&f.claude, false, Duration::ZERO).unwrap();
    installer.hold = Some(sid);
    let r = f.pull_with(&installer);
    assert!(r.incomplete());
    assert_eq!(f.local(SID), Some(lines(&["1"])));
    assert_eq!(f.local(other.as_str()), None, "no second copy of it either");
}

#[test]
fn a_transcript_in_use_is_left_alone_unless_forced() {
    let f = fixture();
    f.set_local(&lines(&["1"]));
    f.offer("a", lines(&["1", "2"]));
    let installer = Installer::new(&f.claude, false, Duration::from_secs(600)).unwrap();
    let r = f.pull_with(&installer);
    assert!(matches!(
        r.outcomes[0].held,
        Some(InUse::RecentlyModified { .. })
    ));
    assert_eq!(r.outcomes[0].action, Action::Keep);
    assert!(r.incomplete());
    assert_eq!(f.local(SID), Some(lines(&["1"])));
    let forced = Installer::new(&f.claude, true, Duration::from_secs(600)).unwrap();
    let r = f.pull_with(&forced);
    assert_eq!(r.outcomes[0].action, Action::FastForward { from: 0 });
}

/// The other machine moved the session to another directory (`/cd`):
/// it follows, with its own folder, and is never here twice.
#[test]
fn a_session_moved_on_the_other_machine_follows_it_here() {
    let f = fixture();
    let old_dir = f.claude.projects_dir().join("-some-other-dir");
    let old = old_dir.join(format!("{SID}.jsonl"));
    fsutil::write_atomic_bytes(&old, &lines(&["1"])).unwrap();
    let title = old_dir.join(SID).join("custom-title.json");
    std::fs::create_dir_all(title.parent().unwrap()).unwrap();
    std::fs::write(&title, b"{}").unwrap();
    f.offer("a", lines(&["1", "2"]));
    let r = f.pull(false);
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(
        r.outcomes[0].relocated_from.as_deref(),
        Some(old_dir.as_path())
    );
    assert_eq!(f.local(SID), Some(lines(&["1", "2"])));
    assert!(!old.exists() && !title.exists());
    let moved = r.outcomes[0].transcript.with_extension("");
    assert_eq!(
        std::fs::read(moved.join("custom-title.json")).unwrap(),
        b"{}"
    );
}

/// A session here with lines the incoming copy lacks stays where it is;
/// two copies of one id here already are the user's to sort out.
#[test]
fn a_session_elsewhere_that_holds_more_stays_and_two_copies_are_refused() {
    let f = fixture();
    let old = f
        .claude
        .projects_dir()
        .join("-some-other-dir")
        .join(format!("{SID}.jsonl"));
    fsutil::write_atomic_bytes(&old, &lines(&["1", "2", "3"])).unwrap();
    f.offer("a", lines(&["1", "2"]));
    let r = f.pull(false);
    assert!(r.failed.is_empty(), "{:?}", r.failed);
    assert_eq!(r.outcomes[0].relocated_from, None);
    assert_eq!(f.local(SID), None);
    assert_eq!(std::fs::read(&old).unwrap(), lines(&["1", "2", "3"]));

    let second = f
        .claude
        .projects_dir()
        .join("-a-third-dir")
        .join(format!("{SID}.jsonl"));
    fsutil::write_atomic_bytes(&second, &lines(&["1"])).unwrap();
    let r = f.pull(false);
    assert!(matches!(r.failed[0].1, SessionError::Elsewhere { .. }));
    assert_eq!(f.local(SID), None);
}

#[test]
fn bad_objects_are_reported_and_the_rest_arrive() {
    let f = fixture();
    f.offer("a", lines(&["1"]));
    let dir = crate::transport::layout::key_dir(&f.key);
    let bad = ObjectName::parse(&dir, &format!("{SID}-b.ccsync")).unwrap();
    f.transport
        .insert(bad.clone(), b"{\"_schemaVersion\":7}".to_vec());
    let r = f.pull(false);
    assert_eq!(r.outcomes.len(), 1);
    assert_eq!(r.bad_objects[0].0, bad);
    assert!(r.bad_objects[0].1.contains("version 7"));
    assert!(r.incomplete());
}
