//! The test world: a temp dir holding a sync dir, machines and checkouts.

use std::path::{Path, PathBuf};
use std::process::Command as StdCommand;

use assert_cmd::Command;
use assert_cmd::assert::Assert;

pub const SID: &str = "5c0375b4-57a5-4f26-b12d-d022ee4e51b7";
pub const SID2: &str = "0b7a1c2d-3e4f-4a5b-8c6d-7e8f9a0b1c2d";

pub struct World {
    pub tmp: tempfile::TempDir,
}

impl World {
    pub fn new() -> Self {
        Self {
            tmp: tempfile::Builder::new()
                .prefix("ccsync-it-")
                .tempdir()
                .unwrap(),
        }
    }

    /// The temp root, symlinks resolved (macOS puts temp dirs behind one).
    pub fn root(&self) -> PathBuf {
        self.tmp.path().canonicalize().unwrap()
    }

    pub fn sync_dir(&self) -> PathBuf {
        self.root().join("sync")
    }

    pub fn machine(&self, name: &str) -> Machine {
        let base = self.root().join("machines").join(name);
        let m = Machine {
            name: name.to_owned(),
            home: base.join("home"),
            claude: base.join("home/.claude-custom"),
            cfg: base.join("ccsync-config"),
        };
        std::fs::create_dir_all(&m.home).unwrap();
        m
    }

    /// A real git checkout at `rel` under the world, with `origin` at `remote`.
    pub fn checkout(&self, rel: &str, remote: Option<&str>) -> PathBuf {
        let path = self.root().join(rel);
        std::fs::create_dir_all(&path).unwrap();
        git(&path, &["init", "-q"]);
        if let Some(url) = remote {
            git(&path, &["remote", "add", "origin", url]);
        }
        path.canonicalize().unwrap()
    }
}

/// Machines a and b, set up, each with a checkout of the same project
/// (cloned over SSH on a, over HTTPS on b).
pub struct Pair {
    pub w: World,
    pub a: Machine,
    pub a_repo: PathBuf,
    pub b: Machine,
    pub b_repo: PathBuf,
}

pub fn pair() -> Pair {
    let w = World::new();
    let a = w.machine("a");
    let b = w.machine("b");
    let a_repo = w.checkout("a/w", Some("git@github.com:acme/widget.git"));
    let b_repo = w.checkout("b/w", Some("https://github.com/acme/widget"));
    a.init(&w);
    b.init(&w);
    Pair {
        w,
        a,
        a_repo,
        b,
        b_repo,
    }
}

pub fn git(dir: &Path, args: &[&str]) {
    let status = StdCommand::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("HOME", dir)
        .status()
        .expect("git runs");
    assert!(status.success(), "git {args:?} failed in {}", dir.display());
}

pub struct Machine {
    pub name: String,
    pub home: PathBuf,
    pub claude: PathBuf,
    pub cfg: PathBuf,
}

impl Machine {
    pub fn cmd(&self, cwd: &Path) -> Command {
        Command::from_std(self.std_cmd(cwd))
    }

    /// The same, for tests that spawn and kill.
    pub fn std_cmd(&self, cwd: &Path) -> StdCommand {
        let mut cmd = StdCommand::new(env!("CARGO_BIN_EXE_ccsync"));
        cmd.env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_default())
            .env("HOME", &self.home)
            .env("CLAUDE_CONFIG_DIR", &self.claude)
            .env("CCSYNC_CONFIG_DIR", &self.cfg)
            // Tests write transcripts and pull at once; the in-use checks
            // by modification time have tests of their own.
            .env("CCSYNC_LIVE_WINDOW_MS", "0")
            .current_dir(cwd);
        cmd
    }

    pub fn run(&self, cwd: &Path, args: &[&str]) -> Assert {
        self.cmd(cwd).args(args).assert()
    }

    pub fn init(&self, world: &World) {
        self.run(
            &world.root(),
            &[
                "init",
                world.sync_dir().to_str().unwrap(),
                "--name",
                &self.name,
                "--create",
            ],
        )
        .success();
    }

    /// Where the local Claude Code keeps sessions of `cwd`.
    pub fn project_dir(&self, cwd: &Path) -> PathBuf {
        self.claude
            .join("projects")
            .join(encode(cwd.to_str().unwrap()))
    }

    pub fn transcript(&self, cwd: &Path, id: &str) -> PathBuf {
        self.project_dir(cwd).join(format!("{id}.jsonl"))
    }

    /// Writes a transcript as Claude Code would for a session in `cwd`.
    pub fn write_session(&self, cwd: &Path, id: &str, bytes: &[u8]) -> PathBuf {
        let path = self.transcript(cwd, id);
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(&path, bytes).unwrap();
        path
    }

    pub fn append(&self, cwd: &Path, id: &str, bytes: &[u8]) {
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.transcript(cwd, id))
            .unwrap();
        f.write_all(bytes).unwrap();
    }
}

/// Claude Code's folder name for a path; an independent spelling of the rule
/// for paths under 200 units (the library's own is unit-tested against
/// FACTS.md and checked against the real client).
pub fn encode(path: &str) -> String {
    let name: String = path
        .encode_utf16()
        .map(|u| {
            if u < 128 && (u as u8).is_ascii_alphanumeric() {
                u as u8 as char
            } else {
                '-'
            }
        })
        .collect();
    if name.len() > 200 {
        ccsync::claude::dirname::encode(path)
    } else {
        name
    }
}

/// A transcript of `n` user/assistant lines in `cwd`, as the client writes them.
pub fn transcript(id: &str, cwd: &Path, n: usize, tag: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let mut parent = "null".to_owned();
    for i in 0..n {
        let uuid = format!("{:08x}-0000-4000-8000-{:012x}", i, tag.len() * 1000 + i);
        let (kind, content) = if i % 2 == 0 {
            ("user", format!("\"{tag} prompt {i} with ü and 日本\""))
        } else {
            (
                "assistant",
                format!("[{{\"type\":\"text\",\"text\":\"{tag} answer {i}\"}}]"),
            )
        };
        out.extend_from_slice(
            format!(
                "{{\"parentUuid\":{parent},\"isSidechain\":false,\"type\":\"{kind}\",\"uuid\":\"{uuid}\",\"sessionId\":\"{id}\",\"cwd\":{cwd},\"version\":\"2.1.330\",\"timestamp\":\"2026-11-21T10:00:{:02}.000Z\",\"message\":{{\"role\":\"{kind}\",\"content\":{content}}}}}\n",
                i % 60,
                cwd = serde_json::to_string(cwd.to_str().unwrap()).unwrap(),
            )
            .as_bytes(),
        );
        parent = format!("\"{uuid}\"");
    }
    out
}

/// An object in a plain sync dir as the bundle it holds (uncompressed).
pub fn read_object(path: &Path) -> Vec<u8> {
    let stored = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let layers = ccsync::bundle::layers::Layers::default();
    let mut plain = Vec::new();
    std::io::Read::read_to_end(&mut layers.reader(&stored[..]).unwrap(), &mut plain).unwrap();
    plain
}

/// The transcript a machine's copy of a session holds in a sync dir
/// folder: its base, and the segments after it, in order (as a reader
/// rebuilds it; leftovers of an earlier base are skipped).
pub fn read_copy(folder: &Path, id: &str, machine: &str) -> Vec<u8> {
    let base = ccsync::bundle::Bundle::decode(&read_object(
        &folder.join(format!("{id}-{machine}.ccsync")),
    ))
    .unwrap();
    let mut transcript = base.transcript;
    let mut segments: Vec<(u32, ccsync::bundle::Bundle)> = std::fs::read_dir(folder)
        .unwrap()
        .filter_map(|e| {
            let name = e.unwrap().file_name().into_string().unwrap();
            let seq = name
                .strip_prefix(&format!("{id}-{machine}."))?
                .strip_suffix(".ccseg")?
                .parse()
                .ok()?;
            let seg = ccsync::bundle::Bundle::decode(&read_object(&folder.join(&name))).unwrap();
            Some((seq, seg))
        })
        .collect();
    segments.sort_by_key(|(seq, _)| *seq);
    for (_, seg) in segments {
        let head = seg.meta.segment.as_ref().unwrap();
        if head.base.exported_at == base.meta.exported_at_ms {
            assert_eq!(head.extends.len, transcript.len() as u64);
            transcript.extend(seg.transcript);
        }
    }
    transcript
}

pub fn stdout_json(assert: &Assert) -> serde_json::Value {
    serde_json::from_slice(&assert.get_output().stdout).expect("stdout is JSON")
}

pub fn stderr(assert: &Assert) -> String {
    String::from_utf8_lossy(&assert.get_output().stderr).into_owned()
}

/// Every file under `dir` with its bytes, for before/after comparisons.
pub fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut out = Vec::new();
    if dir.is_dir() {
        for entry in walk(dir) {
            let bytes = std::fs::read(&entry).unwrap_or_default();
            out.push((entry, bytes));
        }
    }
    out.sort();
    out
}

pub fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let p = entry.unwrap().path();
            if p.is_dir() {
                out.push(p.clone());
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[cfg(unix)]
pub fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// A test that needs what this machine lacks. Such tests are `#[ignore]`d,
/// so a plain `cargo test` counts them as ignored; run with
/// `-- --include-ignored`, they say SKIPPED, or fail when
/// CCSYNC_TEST_REQUIRE_ALL is set (CI). (The corpus is the one thing CI
/// cannot install; .ci/run says loudly when it is missing and sets
/// CCSYNC_TEST_CORPUS_OPTIONAL.)
pub fn skip_or_fail(what: &str) {
    let corpus_optional =
        what.starts_with("no corpus") && std::env::var_os("CCSYNC_TEST_CORPUS_OPTIONAL").is_some();
    if std::env::var_os("CCSYNC_TEST_REQUIRE_ALL").is_some() && !corpus_optional {
        panic!("{what} (CCSYNC_TEST_REQUIRE_ALL is set, so this cannot be skipped)");
    }
    eprintln!("SKIPPED: {what}");
}
