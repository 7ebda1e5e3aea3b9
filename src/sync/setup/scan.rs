//! Which files of the Claude Code config dir are the setup, and which are
//! not and why. An allowlist: only what is named here ever travels, and
//! inside it a denylist the user can extend (`setup_exclude`). Links are
//! never followed; names are checked the same way on the way in.

use std::collections::BTreeSet;
use std::fs;
use std::path::{Path, PathBuf};

use crate::names::{MachineName, RelPath};
use crate::project::ProjectKey;
use crate::transport::layout::key_dir;

/// Files at the top of the config dir that travel.
pub const FILES: &[&str] = &["settings.json", "CLAUDE.md", "keybindings.json"];
/// Folders at the top of the config dir that travel whole.
pub const DIRS: &[&str] = &["agents", "commands", "skills", "output-styles"];
/// Plugin configuration: the `.json` files directly in it; its folders
/// (caches, marketplace clones) never.
pub const PLUGINS: &str = "plugins";
/// Where a project's memory goes in the setup: `memory/<key dir>/<path>`.
pub const MEMORY: &str = "memory";
/// One file's cap, and the whole setup's.
pub const MAX_FILE: u64 = 16 << 20;
pub const MAX_TOTAL: u64 = 64 << 20;
const MAX_FILES: usize = 20_000;
const MAX_DEPTH: usize = 32;

/// A file of this machine's setup.
#[derive(Debug, Clone)]
pub struct LocalFile {
    /// Its path in the setup (`settings.json`, `agents/x.md`,
    /// `memory/<key dir>/MEMORY.md`).
    pub path: String,
    pub file: PathBuf,
    pub bytes: Vec<u8>,
    pub executable: bool,
    pub modified_ms: u64,
    /// For project memory, the project.
    pub project: Option<ProjectKey>,
}

/// Something in the config dir that does not travel, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Excluded {
    pub path: String,
    pub reason: String,
}

#[derive(Debug, Default)]
pub struct Inventory {
    pub files: Vec<LocalFile>,
    pub excluded: Vec<Excluded>,
}

/// Why something at the top of the config dir is not part of the setup.
fn why_not_top(name: &str) -> &'static str {
    match name {
        ".credentials.json" => "credentials: never copied anywhere",
        ".claude.json" | ".claude.json.backup" => {
            "account, OAuth and per-folder trust: never copied"
        }
        "projects" => "sessions travel with `ccsync push`; only each project's memory/ is setup",
        "sessions" => "the running clients of this machine",
        "session-env" | "shell-snapshots" | "ide" => "this machine's shell and editor state",
        "debug" | "statsig" | "telemetry" | "logs" => "logs and telemetry",
        "todos" | "tasks" | "file-history" | "plans" => "parts of sessions: they travel with them",
        "history.jsonl" => "prompt recall: `recall = true` in config.toml adds pulled prompts",
        "settings.local.json" => "this machine's own settings",
        n if n.contains("cache") => "a cache",
        _ => "not part of the setup",
    }
}

/// Why a name inside the setup never travels, whatever the user chose.
pub fn refused_name(name: &str) -> Option<&'static str> {
    if matches!(name, ".credentials.json" | ".claude.json") {
        return Some("credentials: never copied anywhere");
    }
    if name == ".git" {
        return Some("a git folder");
    }
    if crate::fsutil::is_temp_name(name.as_ref()) {
        return Some("a temp file");
    }
    None
}

const COPY: &str = "a conflict copy ccsync saved (`ccsync doctor` lists them)";

/// The machine a conflict copy `<name>.from-<machine>` came from: one of
/// `machines` (the others known here), so `import.from-github.md` is a
/// file like any other.
pub fn conflict_copy(name: &str, machines: &BTreeSet<String>) -> Option<MachineName> {
    let (stem, machine) = name.rsplit_once(".from-")?;
    (!stem.is_empty() && machines.contains(machine)).then_some(())?;
    MachineName::parse(machine).ok()
}

/// Whether `path` (a setup path) may be carried at all: its first
/// component is one the setup holds, and no component is refused. Checked
/// on what arrives from the sync dir as much as on what leaves.
pub fn allowed_path(path: &str, project: Option<&ProjectKey>) -> Result<RelPath, String> {
    let rel = RelPath::parse(path).map_err(|e| e.to_string())?;
    let parts: Vec<&str> = path.split('/').collect();
    if let Some(reason) = parts.iter().find_map(|p| refused_name(p)) {
        return Err(format!("{path}: {reason}"));
    }
    let ok = match (parts.as_slice(), project) {
        ([file], None) => FILES.contains(file),
        ([dir, _, ..], None) => DIRS.contains(dir),
        ([MEMORY, dir, _, ..], Some(key)) => *dir == key_dir(key),
        _ => false,
    } || matches!(parts.as_slice(), [PLUGINS, f] if f.ends_with(".json") && project.is_none());
    if ok {
        Ok(rel)
    } else {
        Err(format!("{path} is not a path of the setup"))
    }
}

/// What the setup holds on this machine. `memory` is each project with a
/// checkout here, and its folder under `projects/`.
pub fn scan(
    root: &Path,
    memory: &[(ProjectKey, PathBuf)],
    exclude: &[String],
    machines: &BTreeSet<String>,
) -> Inventory {
    let mut walk = Walk {
        inv: Inventory::default(),
        exclude,
        machines,
        total: 0,
    };
    let mut top: Vec<String> = match fs::read_dir(root) {
        Ok(entries) => entries
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect(),
        Err(_) => Vec::new(),
    };
    top.sort();
    for name in &top {
        let path = root.join(name);
        if FILES.contains(&name.as_str()) || DIRS.contains(&name.as_str()) {
            walk.visit(&path, name, None, 0);
        } else if name == PLUGINS {
            walk.plugins(&path);
        } else if !crate::fsutil::is_temp_name(name.as_ref()) {
            walk.exclude(name, why_not_top(name));
        }
    }
    for (key, dir) in memory {
        let path = dir.join(MEMORY);
        if fs::symlink_metadata(&path).is_ok() {
            let name = format!("{MEMORY}/{}", key_dir(key));
            walk.visit(&path, &name, Some(key), 0);
        }
    }
    walk.inv
}

struct Walk<'a> {
    inv: Inventory,
    exclude: &'a [String],
    machines: &'a BTreeSet<String>,
    total: u64,
}

impl Walk<'_> {
    fn exclude(&mut self, path: &str, reason: impl Into<String>) {
        self.inv.excluded.push(Excluded {
            path: path.to_owned(),
            reason: reason.into(),
        });
    }

    fn plugins(&mut self, dir: &Path) {
        if !is_real_dir(dir) {
            return self.exclude(PLUGINS, "a link: ccsync never follows links in your setup");
        }
        let mut names: Vec<String> = match fs::read_dir(dir) {
            Ok(e) => e
                .filter_map(|e| e.ok()?.file_name().into_string().ok())
                .collect(),
            Err(e) => return self.exclude(PLUGINS, format!("cannot read it: {e}")),
        };
        names.sort();
        for name in names {
            let setup_path = format!("{PLUGINS}/{name}");
            let path = dir.join(&name);
            if name.ends_with(".json") && !is_real_dir(&path) {
                self.visit(&path, &setup_path, None, 1);
            } else if !crate::fsutil::is_temp_name(name.as_ref()) {
                self.exclude(
                    &setup_path,
                    "plugin caches and marketplace copies stay here",
                );
            }
        }
    }

    fn visit(&mut self, path: &Path, setup_path: &str, project: Option<&ProjectKey>, depth: usize) {
        let name = setup_path.rsplit('/').next().unwrap_or(setup_path);
        if let Some(reason) = refused_name(name) {
            return self.exclude(setup_path, reason);
        }
        if conflict_copy(name, self.machines).is_some() {
            return self.exclude(setup_path, COPY);
        }
        if let Some(glob) = self.exclude.iter().find(|g| glob_match(g, setup_path)) {
            return self.exclude(
                setup_path,
                format!("setup_exclude in config.toml ({glob:?})"),
            );
        }
        let meta = match fs::symlink_metadata(path) {
            Ok(m) => m,
            Err(e) => return self.exclude(setup_path, format!("cannot read it: {e}")),
        };
        if meta.file_type().is_symlink() {
            return self.exclude(
                setup_path,
                "a link: ccsync never follows links in your setup",
            );
        }
        if meta.is_dir() {
            if depth >= MAX_DEPTH {
                return self.exclude(setup_path, "nested too deep");
            }
            let mut names: Vec<String> = Vec::new();
            let entries = match fs::read_dir(path) {
                Ok(e) => e,
                Err(e) => return self.exclude(setup_path, format!("cannot read it: {e}")),
            };
            for entry in entries.flatten() {
                match entry.file_name().into_string() {
                    Ok(n) => names.push(n),
                    Err(n) => self.exclude(
                        &format!("{setup_path}/{}", n.to_string_lossy()),
                        "a name that is not UTF-8",
                    ),
                }
            }
            names.sort();
            for n in names {
                self.visit(
                    &path.join(&n),
                    &format!("{setup_path}/{n}"),
                    project,
                    depth + 1,
                );
            }
            return;
        }
        if !meta.is_file() {
            return self.exclude(setup_path, "not a regular file");
        }
        if let Err(reason) = allowed_path(setup_path, project) {
            return self.exclude(setup_path, reason);
        }
        if meta.len() > MAX_FILE {
            return self.exclude(setup_path, format!("over {} MiB", MAX_FILE >> 20));
        }
        if self.inv.files.len() >= MAX_FILES || self.total + meta.len() > MAX_TOTAL {
            return self.exclude(
                setup_path,
                format!(
                    "the setup is capped at {} MiB and {MAX_FILES} files",
                    MAX_TOTAL >> 20
                ),
            );
        }
        let bytes = match crate::fsutil::read_capped(path, MAX_FILE) {
            Ok(b) => b,
            Err(e) => return self.exclude(setup_path, format!("cannot read it: {e}")),
        };
        self.total += bytes.len() as u64;
        self.inv.files.push(LocalFile {
            path: setup_path.to_owned(),
            file: path.to_path_buf(),
            bytes,
            executable: is_executable(&meta),
            modified_ms: meta.modified().map_or(0, crate::fsutil::unix_ms),
            project: project.cloned(),
        });
    }
}

fn is_real_dir(path: &Path) -> bool {
    fs::symlink_metadata(path).is_ok_and(|m| m.is_dir())
}

#[cfg(unix)]
fn is_executable(meta: &fs::Metadata) -> bool {
    std::os::unix::fs::PermissionsExt::mode(&meta.permissions()) & 0o100 != 0
}

#[cfg(not(unix))]
fn is_executable(_: &fs::Metadata) -> bool {
    false
}

/// A glob over setup paths: `*` and `?` within one component, `**` across
/// any number of them. A pattern naming a folder covers what is inside it.
pub fn glob_match(pattern: &str, path: &str) -> bool {
    fn parts(p: &[&str], s: &[&str]) -> bool {
        match (p.first(), s.first()) {
            (None, _) => true, // a folder's pattern covers what it holds
            (Some(&"**"), _) => (0..=s.len()).any(|i| parts(&p[1..], &s[i..])),
            (Some(_), None) => false,
            (Some(pc), Some(sc)) => {
                component(pc.as_bytes(), sc.as_bytes()) && parts(&p[1..], &s[1..])
            }
        }
    }
    fn component(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => (0..=s.len()).any(|i| component(&p[1..], &s[i..])),
            (Some(b'?'), Some(_)) => component(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => component(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let p: Vec<&str> = pattern.trim_matches('/').split('/').collect();
    let s: Vec<&str> = path.split('/').collect();
    !pattern.trim_matches('/').is_empty() && parts(&p, &s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(glob_match("agents/private-*", "agents/private-x.md"));
        assert!(!glob_match("agents/private-*", "agents/public.md"));
        assert!(glob_match("skills", "skills/a/SKILL.md"));
        assert!(glob_match("**/*.key", "skills/a/b/c.key"));
        assert!(glob_match("memory/**", "memory/git=x/MEMORY.md"));
        assert!(glob_match("CLAUDE.?d", "CLAUDE.md"));
        assert!(!glob_match("", "CLAUDE.md"));
        assert!(!glob_match("agents/x", "agents/xy"));
    }

    #[test]
    fn only_setup_paths_are_allowed() {
        let key = ProjectKey::parse("git:github.com/acme/widget").unwrap();
        let mem = format!("memory/{}/MEMORY.md", key_dir(&key));
        for ok in [
            "settings.json",
            "agents/x.md",
            "skills/a/b/SKILL.md",
            "plugins/config.json",
        ] {
            assert!(allowed_path(ok, None).is_ok(), "{ok}");
        }
        assert!(allowed_path(&mem, Some(&key)).is_ok());
        for bad in [
            ".credentials.json",
            "agents/.credentials.json",
            "../settings.json",
            "agents/../../x",
            "/etc/passwd",
            "projects/x/y.jsonl",
            "history.jsonl",
            "plugins/cache/x.json",
            "skills/.git/config",
            "agents\\x",
            "agents",
            "settings.json/x",
            &mem,
        ] {
            assert!(allowed_path(bad, None).is_err(), "{bad}");
        }
        let other = ProjectKey::parse("git:github.com/acme/other").unwrap();
        assert!(allowed_path(&mem, Some(&other)).is_err());
    }

    #[test]
    fn conflict_copies() {
        let known = BTreeSet::from(["b".to_owned()]);
        assert_eq!(
            conflict_copy("settings.json.from-b", &known)
                .unwrap()
                .as_str(),
            "b"
        );
        assert!(conflict_copy(".from-b", &known).is_none());
        assert!(conflict_copy("x.md", &known).is_none());
        assert!(conflict_copy("import.from-github.md", &known).is_none());
    }
}
