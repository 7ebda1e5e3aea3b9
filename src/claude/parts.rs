//! A session's side files (FACTS.md): subagent transcripts, oversized tool
//! results, file history behind checkpoints, todos and tasks. Where they are
//! for a session, and where one belongs on this machine.

use std::collections::{HashMap, HashSet};
use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

use super::ClaudeHome;
use crate::index::Stamp;
use crate::names::{PartKind, PartPath, RelPath, SessionId};

/// At most this many side files travel with one session.
pub const MAX_PARTS: usize = 100_000;

/// A side file found on this machine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalPart {
    pub path: PartPath,
    pub file: PathBuf,
    pub stamp: Stamp,
}

/// A session's side files, sorted by path, and what could not be taken.
#[derive(Debug, Default, Clone)]
pub struct Parts {
    pub found: Vec<LocalPart>,
    /// Files and folders left behind, and why.
    pub skipped: Vec<(PathBuf, String)>,
}

impl Parts {
    /// Path and stamp of each part: what the index compares.
    pub fn stamps(&self) -> Vec<(String, Stamp)> {
        self.found
            .iter()
            .map(|p| (p.path.to_string(), p.stamp))
            .collect()
    }
}

/// Finds side files, reading the shared `todos/`, `file-history/` and
/// `tasks/` folders once however many sessions are asked about.
pub struct PartFinder<'a> {
    home: &'a ClaudeHome,
    todos: OnceLock<HashMap<String, Vec<(String, Stamp)>>>,
    /// Names in `file-history/` and `tasks/`: the sessions that have one.
    history: OnceLock<HashSet<OsString>>,
    tasks: OnceLock<HashSet<OsString>>,
    /// Per project folder, the names in it that may be folders: one
    /// listing instead of a stat per session.
    folders: Mutex<HashMap<PathBuf, Arc<HashSet<OsString>>>>,
}

fn names_in(dir: &Path) -> HashSet<OsString> {
    std::fs::read_dir(dir)
        .map(|entries| entries.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default()
}

/// Names in `dir` that are folders or links (which may lead to one), if
/// it can be listed.
fn folder_names(dir: &Path) -> Option<HashSet<OsString>> {
    let mut names = HashSet::new();
    for entry in std::fs::read_dir(dir).ok()? {
        let entry = entry.ok()?;
        // An entry whose type cannot be told is kept: `is_dir` decides.
        if entry
            .file_type()
            .map_or(true, |t| t.is_dir() || t.is_symlink())
        {
            names.insert(entry.file_name());
        }
    }
    Some(names)
}

impl<'a> PartFinder<'a> {
    pub fn new(home: &'a ClaudeHome) -> Self {
        Self {
            home,
            todos: OnceLock::new(),
            history: OnceLock::new(),
            tasks: OnceLock::new(),
            folders: Mutex::default(),
        }
    }

    /// Whether `project_dir` holds a folder `name` (following a link, as
    /// `is_dir` does): looked up in its listing when [`find_all`] made
    /// one, else asked of the file system.
    fn has_folder(&self, project_dir: &Path, name: &str) -> bool {
        let listed = self
            .folders
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(project_dir)
            .cloned();
        listed.is_none_or(|names| names.contains(std::ffi::OsStr::new(name)))
            && project_dir.join(name).is_dir()
    }

    /// Whether session `id` may have files of `kind` (a cheap first look).
    fn may_have(&self, project_dir: &Path, id: &SessionId, kind: PartKind) -> bool {
        let listed = |cell: &OnceLock<HashSet<OsString>>, root: &str| {
            cell.get_or_init(|| names_in(&self.home.root().join(root)))
                .contains(std::ffi::OsStr::new(id.as_str()))
        };
        match kind {
            PartKind::Subagents | PartKind::ToolResults | PartKind::Session => {
                self.has_folder(project_dir, id.as_str())
            }
            PartKind::FileHistory => listed(&self.history, "file-history"),
            PartKind::Tasks => listed(&self.tasks, "tasks"),
            PartKind::Todos => true,
        }
    }

    /// [`find`](Self::find) for many sessions (project folder, id), in
    /// order: on two threads when there are many, since looking costs a few
    /// system calls per session and this machine has cores to spare (a
    /// push with nothing to send spends most of its time here).
    pub fn find_all(&self, sessions: &[(&Path, &SessionId)]) -> Vec<Parts> {
        const PER_THREAD: usize = 256;
        {
            let mut folders = self.folders.lock().unwrap_or_else(|e| e.into_inner());
            for (dir, _) in sessions {
                if !folders.contains_key(*dir)
                    && let Some(names) = folder_names(dir)
                {
                    folders.insert(dir.to_path_buf(), Arc::new(names));
                }
            }
        }
        if sessions.len() < 2 * PER_THREAD {
            return sessions
                .iter()
                .map(|(dir, id)| self.find(dir, id))
                .collect();
        }
        let (first, second) = sessions.split_at(sessions.len() / 2);
        std::thread::scope(|s| {
            let other = s.spawn(|| {
                second
                    .iter()
                    .map(|(dir, id)| self.find(dir, id))
                    .collect::<Vec<_>>()
            });
            let mut found: Vec<Parts> = first.iter().map(|(dir, id)| self.find(dir, id)).collect();
            found.extend(other.join().expect("finding side files does not panic"));
            found
        })
    }

    /// The side files of session `id`, whose transcript is in `project_dir`.
    /// Links are not followed; only regular files count.
    pub fn find(&self, project_dir: &Path, id: &SessionId) -> Parts {
        let mut parts = Parts::default();
        // Most sessions have few kinds of side file: looking first spares
        // opening folders that are not there.
        let own_folder = self.may_have(project_dir, id, PartKind::Subagents);
        for kind in PartKind::ALL {
            let may = match kind {
                PartKind::Subagents | PartKind::ToolResults | PartKind::Session => own_folder,
                _ => self.may_have(project_dir, id, kind),
            };
            if !may {
                continue;
            }
            if kind == PartKind::Todos {
                let todos = self.todos.get_or_init(|| todo_index(self.home));
                for (rest, stamp) in todos.get(id.as_str()).into_iter().flatten() {
                    let file = self
                        .home
                        .part_root(project_dir, id, kind)
                        .join(format!("{id}-{rest}"));
                    match PartPath::parse(&format!("todos/{rest}")) {
                        Ok(path) => parts.found.push(LocalPart {
                            path,
                            file,
                            stamp: *stamp,
                        }),
                        Err(e) => parts.skipped.push((file, e.to_string())),
                    }
                }
                continue;
            }
            let root = self.home.part_root(project_dir, id, kind);
            walk(&root, &root, kind, 0, &mut parts);
        }
        if parts.found.len() > MAX_PARTS {
            for p in parts.found.drain(MAX_PARTS..) {
                parts
                    .skipped
                    .push((p.file, format!("more than {MAX_PARTS} side files")));
            }
        }
        parts.found.sort_by(|a, b| a.path.cmp(&b.path));
        parts
    }
}

fn walk(root: &Path, dir: &Path, kind: PartKind, depth: usize, parts: &mut Parts) {
    let entries = match std::fs::read_dir(dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound && depth == 0 => return,
        Err(e) => {
            parts
                .skipped
                .push((dir.to_path_buf(), format!("cannot read folder: {e}")));
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(file_type) = entry.file_type() else {
            continue;
        };
        let name = entry.file_name();
        if crate::fsutil::is_temp_name(&name) || machine_local(&name) {
            continue;
        }
        // The session folder's own kinds are walked as such.
        if kind == PartKind::Session
            && depth == 0
            && (name == PartKind::Subagents.root() || name == PartKind::ToolResults.root())
            && file_type.is_dir()
        {
            continue;
        }
        if file_type.is_dir() {
            if depth + 1 < PartPath::MAX_DEPTH {
                walk(root, &path, kind, depth + 1, parts);
            } else {
                parts
                    .skipped
                    .push((path, "nested too deep to travel".into()));
            }
            continue;
        }
        if !file_type.is_file() {
            continue;
        }
        let part = RelPath::between(root, &path)
            .ok_or_else(|| "its name is not UTF-8".to_owned())
            .and_then(|rest| PartPath::new(kind, &rest).map_err(|e| e.to_string()));
        match (part, entry.metadata()) {
            (Ok(part), Ok(meta)) => parts.found.push(LocalPart {
                path: part,
                file: path,
                stamp: Stamp::of_meta(&meta),
            }),
            (Err(reason), _) => parts.skipped.push((path, reason)),
            (_, Err(e)) => parts.skipped.push((path, e.to_string())),
        }
    }
}

/// Whether a file belongs to this machine's running processes (a lock, a
/// pid file, a socket's name) or is a writer's temp file (the client's
/// atomic writes leave `*.json.tmp.*` behind when killed): it must not
/// travel.
fn machine_local(name: &std::ffi::OsStr) -> bool {
    let name = name.to_string_lossy();
    [".lock", ".pid", ".sock", ".socket", ".tmp"]
        .iter()
        .any(|ext| name.ends_with(ext))
        || name.contains(".tmp.")
}

/// `todos/<sid>-agent-….json`, by session id.
fn todo_index(home: &ClaudeHome) -> HashMap<String, Vec<(String, Stamp)>> {
    let mut index: HashMap<String, Vec<(String, Stamp)>> = HashMap::new();
    let Ok(entries) = std::fs::read_dir(home.root().join("todos")) else {
        return index;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(name) = name.to_str() else { continue };
        // A session id is 36 characters, then `-`.
        let (Some(id), Some(rest)) = (name.get(..36), name.get(37..)) else {
            continue;
        };
        if SessionId::parse(id).is_err() || !rest.starts_with("agent-") {
            continue;
        }
        match entry.metadata() {
            Ok(meta) if meta.is_file() => index
                .entry(id.to_owned())
                .or_default()
                .push((rest.to_owned(), Stamp::of_meta(&meta))),
            _ => {}
        }
    }
    index
}

impl ClaudeHome {
    /// The folder a kind of side file of session `id` lives in.
    pub fn part_root(&self, project_dir: &Path, id: &SessionId, kind: PartKind) -> PathBuf {
        match kind {
            PartKind::Subagents => project_dir.join(id.as_str()).join("subagents"),
            PartKind::ToolResults => project_dir.join(id.as_str()).join("tool-results"),
            PartKind::FileHistory => self.root().join("file-history").join(id.as_str()),
            PartKind::Todos => self.root().join("todos"),
            PartKind::Tasks => self.root().join("tasks").join(id.as_str()),
            PartKind::Session => project_dir.join(id.as_str()),
        }
    }

    /// Where side file `part` of session `id` belongs on this machine.
    pub fn part_file(&self, project_dir: &Path, id: &SessionId, part: &PartPath) -> PathBuf {
        let root = self.part_root(project_dir, id, part.kind());
        match part.kind() {
            PartKind::Todos => root.join(format!("{id}-{}", part.rest().as_str())),
            _ => part.rest().under(&root),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_every_kind_and_maps_it_back() {
        let tmp = tempfile::tempdir().unwrap();
        let home = ClaudeHome::resolve(Some(tmp.path().into()), None, None).unwrap();
        let id = SessionId::parse("5c0375b4-57a5-4f26-b12d-d022ee4e51b7").unwrap();
        let other = SessionId::parse("5c0375b4-57a5-4f26-b12d-d022ee4e51b8").unwrap();
        let dir = home.projects_dir().join("-w");
        let files = [
            dir.join(format!("{id}/subagents/agent-a1.jsonl")),
            dir.join(format!("{id}/subagents/agent-a1.meta.json")),
            dir.join(format!("{id}/tool-results/t1.txt")),
            tmp.path().join(format!("file-history/{id}/abc@v1")),
            tmp.path().join(format!("todos/{id}-agent-{id}.json")),
            tmp.path().join(format!("tasks/{id}/list/1.json")),
            dir.join(format!("{id}/custom-title.json")),
            dir.join(format!("{id}/workflows/w1/state.json")),
            dir.join(format!("{id}/mcp-tasks/journal.jsonl")),
        ];
        let elsewhere = [
            dir.join(format!("{id}/workflows/w1/run.lock")),
            dir.join(format!("{id}/custom-title.json.tmp.123.456")),
            dir.join(format!("{id}/agent.pid")),
            tmp.path().join(format!("todos/{other}-agent-{id}.json")),
            tmp.path().join(format!("file-history/{other}/abc@v1")),
            dir.join(format!("{id}/subagents/.ccsync-x.tmp")),
        ];
        for f in files.iter().chain(&elsewhere) {
            std::fs::create_dir_all(f.parent().unwrap()).unwrap();
            std::fs::write(f, b"x").unwrap();
        }
        #[cfg(unix)]
        std::os::unix::fs::symlink("/etc/passwd", dir.join(format!("{id}/tool-results/l")))
            .unwrap();

        let parts = PartFinder::new(&home).find(&dir, &id);
        assert!(parts.skipped.is_empty(), "{:?}", parts.skipped);
        let names: Vec<String> = parts.found.iter().map(|p| p.path.to_string()).collect();
        assert_eq!(
            names,
            [
                "subagents/agent-a1.jsonl",
                "subagents/agent-a1.meta.json",
                "tool-results/t1.txt",
                "file-history/abc@v1",
                &format!("todos/agent-{id}.json"),
                "tasks/list/1.json",
                "session/custom-title.json",
                "session/mcp-tasks/journal.jsonl",
                "session/workflows/w1/state.json",
            ]
        );
        let appended: Vec<bool> = parts.found.iter().map(|p| p.path.appended()).collect();
        assert_eq!(
            appended,
            [true, false, false, false, false, false, false, true, false]
        );
        for p in &parts.found {
            assert!(files.contains(&p.file));
            assert_eq!(home.part_file(&dir, &id, &p.path), p.file);
        }
        let none = PartFinder::new(&home).find(&dir, &SessionId::new_random());
        assert!(none.found.is_empty() && none.skipped.is_empty());
    }
}
