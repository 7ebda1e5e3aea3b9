//! The setup (opt-in, `setup = true`): settings, CLAUDE.md, agents,
//! commands, skills, output styles, keybindings, plugin configuration and
//! each project's memory. Each machine stores its whole setup as one
//! object, `setup/<machine>.ccsetup` (through the same layers as bundles:
//! compressed, encrypted when the sync dir is), and a pull merges the other
//! machines' into this one file by file ([`plan::setup::decide`]), machine
//! after machine, the oldest snapshot first.
//!
//! [`plan::setup::decide`]: crate::sync::plan::setup::decide

pub mod reroot;
pub mod scan;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};

use super::Link;
use super::plan::setup::{SetupAction, base_here, decide};
use crate::bundle::sha256_hex;
use crate::fsutil;
use crate::names::MachineName;
use crate::project::{KeyMap, ProjectKey};
use crate::transport::layout::key_dir;
use crate::transport::{ObjectName, TransportError, fetch_each};
use scan::{Inventory, LocalFile, MAX_TOTAL};

pub const VERSION: u32 = 1;
/// What a snapshot may take in the sync dir and once read: the files'
/// cap, plus base64 and JSON around them.
const MAX_OBJECT: u64 = MAX_TOTAL * 3 / 2 + (1 << 20);

#[derive(Debug, thiserror::Error)]
pub enum SetupError {
    #[error(transparent)]
    Transport(#[from] TransportError),
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot store {name}: {reason}")]
    Store { name: ObjectName, reason: String },
}

/// Where the setup lives on this machine.
#[derive(Debug, Clone)]
pub struct Places {
    /// The Claude Code config dir.
    pub root: PathBuf,
    /// The home directory, which paths in settings travel relative to.
    pub home: PathBuf,
    /// Each project with a checkout here, and its folder under `projects/`.
    pub memory: BTreeMap<ProjectKey, PathBuf>,
    /// `setup_exclude` from config.toml.
    pub exclude: Vec<String>,
}

impl Places {
    pub fn scan(&self) -> Inventory {
        let memory: Vec<_> = self
            .memory
            .iter()
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect();
        scan::scan(&self.root, &memory, &self.exclude)
    }

    /// Where a setup path lives here; `None` for the memory of a project
    /// with no checkout here.
    fn local_path(&self, path: &str, project: Option<&ProjectKey>) -> Option<(PathBuf, PathBuf)> {
        let (anchor, base, rest) = match project {
            Some(key) => {
                let rest = path.splitn(3, '/').nth(2)?;
                let dir = self.memory.get(key)?;
                (self.root.clone(), dir.join(scan::MEMORY), rest)
            }
            None => (self.root.clone(), self.root.clone(), path),
        };
        let mut full = base;
        full.extend(rest.split('/'));
        Some((anchor, full))
    }
}

/// A file as it travels: home paths replaced (for settings and plugin
/// configuration), hashed.
#[derive(Debug, Clone)]
struct Portable {
    bytes: Vec<u8>,
    sha256: String,
    rerooted: bool,
}

fn portable(file: &LocalFile, home: &Path) -> Portable {
    let rerootable = file.path == "settings.json"
        || (file.path.starts_with("plugins/") && file.project.is_none());
    let rerooted = rerootable
        .then(|| reroot::portable(&file.bytes, home))
        .flatten();
    let (bytes, rerooted) = match rerooted {
        Some(b) => (b, true),
        None => (file.bytes.clone(), false),
    };
    Portable {
        sha256: sha256_hex(&bytes),
        bytes,
        rerooted,
    }
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct SnapshotJson {
    #[serde(rename = "_setupVersion")]
    version: u32,
    machine: String,
    created_at: u64,
    files: Vec<FileJson>,
    /// What this machine last read of each other machine's files, by
    /// machine and path: tells the others which of their versions it has.
    #[serde(default)]
    seen: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct FileJson {
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    project: Option<String>,
    sha256: String,
    modified_at: u64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    executable: bool,
    /// Home paths in it are [`reroot::HOME_TOKEN`].
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    rerooted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    utf8: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    base64: Option<String>,
}

#[derive(Deserialize)]
struct VersionOnly {
    #[serde(rename = "_setupVersion")]
    version: Option<u32>,
}

/// A file of another machine's setup, checked.
#[derive(Debug, Clone)]
pub struct RemoteFile {
    pub project: Option<ProjectKey>,
    pub bytes: Vec<u8>,
    pub sha256: String,
    pub executable: bool,
    pub rerooted: bool,
    pub modified_ms: u64,
}

/// Another machine's setup, by path here (project memory under this
/// machine's key for the project).
#[derive(Debug, Clone)]
pub struct Snapshot {
    pub machine: MachineName,
    pub created_at: u64,
    pub files: BTreeMap<String, RemoteFile>,
    /// What that machine last read of this one's files, by path.
    pub seen_of_mine: BTreeMap<String, String>,
}

/// Reads a snapshot, refusing an unknown version, a path outside the
/// setup (links cannot travel: only paths and bytes do), a hash that does
/// not match, and more than the caps.
pub fn decode(bytes: &[u8], keys: &KeyMap, me: &MachineName) -> Result<Snapshot, String> {
    let version = serde_json::from_slice::<VersionOnly>(bytes)
        .map_err(|e| format!("not a setup snapshot: {e}"))?
        .version;
    if version != Some(VERSION) {
        return Err(format!(
            "setup snapshot version {version:?}; this ccsync reads version {VERSION} (update ccsync)"
        ));
    }
    let json: SnapshotJson =
        serde_json::from_slice(bytes).map_err(|e| format!("not a setup snapshot: {e}"))?;
    let machine = MachineName::parse(&json.machine).map_err(|e| e.to_string())?;
    let mut files = BTreeMap::new();
    let mut total = 0u64;
    for f in json.files {
        let project = match &f.project {
            Some(k) => Some(ProjectKey::parse(k).map_err(|e| format!("{}: {e}", f.path))?),
            None => None,
        };
        scan::allowed_path(&f.path, project.as_ref())?;
        let bytes = match (f.utf8, f.base64) {
            (Some(text), None) => text.into_bytes(),
            (None, Some(b)) => BASE64
                .decode(b)
                .map_err(|e| format!("{}: bad base64: {e}", f.path))?,
            _ => return Err(format!("{}: needs one of utf8 or base64", f.path)),
        };
        total += bytes.len() as u64;
        if total > MAX_TOTAL {
            return Err(format!("over the {} MiB cap", MAX_TOTAL >> 20));
        }
        if sha256_hex(&bytes) != f.sha256 {
            return Err(format!("{}: its bytes do not match its sha256", f.path));
        }
        // Memory lands under this machine's key for the project.
        let (path, project) = match project {
            Some(key) => {
                let here = keys.local(&key);
                let rest = f.path.splitn(3, '/').nth(2).unwrap_or_default();
                (
                    format!("{}/{}/{rest}", scan::MEMORY, key_dir(&here)),
                    Some(here),
                )
            }
            None => (f.path, None),
        };
        let file = RemoteFile {
            project,
            sha256: f.sha256,
            bytes,
            executable: f.executable,
            rerooted: f.rerooted,
            modified_ms: f.modified_at,
        };
        if files.insert(path.clone(), file).is_some() {
            return Err(format!("{path} is in it twice"));
        }
    }
    let mut seen = json.seen;
    Ok(Snapshot {
        machine,
        created_at: json.created_at,
        files,
        seen_of_mine: seen.remove(me.as_str()).unwrap_or_default(),
    })
}

/// What a push did with the setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Stored { files: usize, bytes: u64 },
    Unchanged { files: usize },
}

/// Stores this machine's setup as its snapshot, when it changed since the
/// last push (or the object is gone).
pub fn push(link: &mut Link, places: &Places, now_ms: u64) -> Result<Pushed, SetupError> {
    let inventory = places.scan();
    let transport = link.transport;
    let listed = transport.list()?;
    let has_record = super::encryption::listed(&listed.objects);
    super::encryption::check_layers(transport, link.layers, has_record, false)?;
    let name = ObjectName::setup(link.machine);
    let files: Vec<FileJson> = inventory
        .files
        .iter()
        .map(|f| {
            let p = portable(f, &places.home);
            let (utf8, base64) = match String::from_utf8(p.bytes) {
                Ok(text) => (Some(text), None),
                Err(e) => (None, Some(BASE64.encode(e.into_bytes()))),
            };
            FileJson {
                path: f.path.clone(),
                project: f.project.as_ref().map(|k| k.as_str().to_owned()),
                sha256: p.sha256,
                modified_at: f.modified_ms,
                executable: f.executable,
                rerooted: p.rerooted,
                utf8,
                base64,
            }
        })
        .collect();
    let count = files.len();
    let mut snapshot = SnapshotJson {
        version: VERSION,
        machine: link.machine.to_string(),
        created_at: 0,
        files,
        seen: link.index.setup.seen.clone(),
    };
    let content = sha256_hex(&serde_json::to_vec(&snapshot).expect("serialises"));
    let there = listed.objects.iter().any(|o| o.name == name);
    if there && link.index.setup.pushed.as_deref() == Some(content.as_str()) {
        return Ok(Pushed::Unchanged { files: count });
    }
    snapshot.created_at = now_ms;
    let bytes = serde_json::to_vec(&snapshot).expect("serialises");
    let file = link.staging.join("setup.ccsetup");
    let write_err = |source| SetupError::Write {
        path: file.clone(),
        source,
    };
    fsutil::write_replace(&file, |out| {
        let mut w = link.layers.writer(out)?;
        w.write_all(&bytes)?;
        w.finish()?;
        Ok(())
    })
    .map_err(write_err)?;
    transport
        .store(&[(name.clone(), file)])?
        .remove(0)
        .map_err(|reason| SetupError::Store {
            name: name.clone(),
            reason,
        })?;
    let mut base = link.index.setup.clone();
    base.pushed = Some(content);
    link.index.set_setup(base);
    Ok(Pushed::Stored {
        files: count,
        bytes: bytes.len() as u64,
    })
}

/// What a pull did with the setup, by path.
#[derive(Debug, Default)]
pub struct Pulled {
    /// Written here from another machine's (changed only there).
    pub taken: Vec<(String, MachineName)>,
    /// Removed here (deleted there, unchanged here).
    pub deleted: Vec<(String, MachineName)>,
    /// Changed on both: this machine's kept, the other's saved beside.
    pub conflicts: Vec<(String, MachineName, PathBuf)>,
    /// Files left alone, and why (a link in the way, excluded here).
    pub skipped: Vec<(String, String)>,
    /// Memory of projects with no checkout here.
    pub no_checkout: usize,
    /// Snapshots that could not be read.
    pub bad: Vec<(ObjectName, String)>,
    pub unchanged: usize,
}

/// Merges the other machines' setups into this one.
pub fn pull(link: &mut Link, places: &Places, keys: &KeyMap) -> Result<Pulled, SetupError> {
    let transport = link.transport;
    let listing = transport.list()?;
    super::encryption::check_layers(
        transport,
        link.layers,
        super::encryption::listed(&listing.objects),
        true,
    )?;
    let mut out = Pulled::default();
    let names: Vec<ObjectName> = listing
        .objects
        .iter()
        .filter(|o| o.name.setup_machine().is_some_and(|m| m != *link.machine))
        .filter(|o| {
            (o.size <= MAX_OBJECT)
                .then_some(())
                .ok_or_else(|| {
                    out.bad
                        .push((o.name.clone(), format!("over {} MiB", MAX_OBJECT >> 20)))
                })
                .is_ok()
        })
        .map(|o| o.name.clone())
        .collect();
    let layers = link.layers;
    let me = link.machine;
    let read = fetch_each(transport, &names, |_, input| {
        let mut bytes = Vec::new();
        layers
            .reader(input)
            .map_err(|e| e.to_string())?
            .take(MAX_OBJECT + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| e.to_string())?;
        if bytes.len() as u64 > MAX_OBJECT {
            return Err(format!("over {} MiB", MAX_OBJECT >> 20));
        }
        decode(&bytes, keys, me)
    })?;
    let mut snapshots = Vec::new();
    for (name, result) in names.into_iter().zip(read) {
        match result {
            Ok(s) if Some(&s.machine) == name.setup_machine().as_ref() => snapshots.push(s),
            Ok(s) => out
                .bad
                .push((name, format!("it says it is {}'s", s.machine))),
            Err(reason) => out.bad.push((name, reason)),
        }
    }
    snapshots.sort_by_key(|s| s.created_at);

    let inventory = places.scan();
    let excluded: BTreeSet<&str> = inventory.excluded.iter().map(|e| e.path.as_str()).collect();
    let mut local: BTreeMap<String, String> = inventory
        .files
        .iter()
        .map(|f| (f.path.clone(), portable(f, &places.home).sha256))
        .collect();
    let mut base = link.index.setup.clone();
    for snap in &snapshots {
        let seen = base.seen.entry(snap.machine.to_string()).or_default();
        let paths: BTreeSet<String> = snap.files.keys().chain(seen.keys()).cloned().collect();
        for path in paths {
            let remote = snap.files.get(&path);
            let project = remote
                .and_then(|r| r.project.clone())
                .or_else(|| memory_key(&path, places));
            if path.starts_with("memory/") && project.is_none() {
                out.no_checkout += 1;
                continue;
            }
            // The user's excludes and this machine's links hold both ways.
            if let Some(e) = inventory
                .excluded
                .iter()
                .find(|e| excluded.contains(e.path.as_str()) && covers(&e.path, &path))
            {
                out.skipped.push((path.clone(), e.reason.clone()));
                continue;
            }
            let Some((anchor, dest)) = places.local_path(&path, project.as_ref()) else {
                out.no_checkout += 1;
                continue;
            };
            let mine = base_here(
                base.mine.get(&path),
                local.get(&path),
                snap.seen_of_mine.get(&path),
            );
            let action = decide(
                mine,
                local.get(&path),
                seen.get(&path),
                remote.map(|r| &r.sha256),
            );
            let done = apply(action, remote, &snap.machine, &anchor, &dest, &places.home);
            match done {
                Err(reason) => {
                    out.skipped.push((path.clone(), reason));
                    continue;
                }
                Ok(beside) => match action {
                    SetupAction::Same => out.unchanged += 1,
                    SetupAction::Keep => {}
                    SetupAction::Take => out.taken.push((path.clone(), snap.machine.clone())),
                    SetupAction::Delete => out.deleted.push((path.clone(), snap.machine.clone())),
                    SetupAction::Conflict => out.conflicts.push((
                        path.clone(),
                        snap.machine.clone(),
                        beside.expect("a conflict saves a file"),
                    )),
                },
            }
            let remote_hash = remote.map(|r| r.sha256.clone());
            set(seen, &path, remote_hash.clone());
            // Only a state both sides hold becomes this machine's base:
            // an edit kept here stays an edit until the others have it.
            match action {
                SetupAction::Same => set(&mut base.mine, &path, local.get(&path).cloned()),
                SetupAction::Take | SetupAction::Delete => {
                    set(&mut base.mine, &path, remote_hash.clone());
                    set(&mut local, &path, remote_hash);
                }
                SetupAction::Keep | SetupAction::Conflict => {}
            }
        }
    }
    link.index.set_setup(base);
    Ok(out)
}

fn set(map: &mut BTreeMap<String, String>, path: &str, hash: Option<String>) {
    match hash {
        Some(h) => map.insert(path.to_owned(), h),
        None => map.remove(path),
    };
}

/// Whether the excluded path `ex` is `path` or a folder holding it.
fn covers(ex: &str, path: &str) -> bool {
    path == ex || path.strip_prefix(ex).is_some_and(|r| r.starts_with('/'))
}

/// The project a memory path here belongs to (for one only `seen` names).
fn memory_key(path: &str, places: &Places) -> Option<ProjectKey> {
    let dir = path.strip_prefix("memory/")?.split('/').next()?;
    places.memory.keys().find(|k| key_dir(k) == dir).cloned()
}

/// Carries out one decision; returns where a conflict saved the other
/// machine's version.
fn apply(
    action: SetupAction,
    remote: Option<&RemoteFile>,
    machine: &MachineName,
    anchor: &Path,
    dest: &Path,
    home: &Path,
) -> Result<Option<PathBuf>, String> {
    let write = |path: &Path, r: &RemoteFile| -> Result<(), String> {
        no_links(anchor, path)?;
        let bytes = if r.rerooted {
            reroot::localized(&r.bytes, home)
        } else {
            r.bytes.clone()
        };
        fsutil::write_atomic_bytes(path, &bytes).map_err(|e| e.to_string())?;
        #[cfg(unix)]
        if r.executable {
            use std::os::unix::fs::PermissionsExt;
            let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700));
        }
        let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(r.modified_ms);
        let _ = fsutil::set_modified(path, t);
        Ok(())
    };
    match action {
        SetupAction::Same | SetupAction::Keep => Ok(None),
        SetupAction::Take => write(dest, remote.expect("take has a remote")).map(|()| None),
        SetupAction::Delete => {
            no_links(anchor, dest)?;
            match std::fs::remove_file(dest) {
                Ok(()) => Ok(None),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
                Err(e) => Err(e.to_string()),
            }
        }
        SetupAction::Conflict => {
            let mut name = dest.file_name().unwrap_or_default().to_os_string();
            name.push(format!(".from-{machine}"));
            let beside = dest.with_file_name(name);
            write(&beside, remote.expect("a conflict has a remote"))?;
            Ok(Some(beside))
        }
    }
}

/// Refuses to write through a link: every folder from `anchor` down to
/// `path` must be a real folder (or not there yet), and `path` a regular
/// file (or not there).
fn no_links(anchor: &Path, path: &Path) -> Result<(), String> {
    let rest = path
        .strip_prefix(anchor)
        .map_err(|_| format!("{} is outside {}", path.display(), anchor.display()))?;
    let mut at = anchor.to_path_buf();
    let count = rest.components().count();
    for (i, c) in rest.components().enumerate() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Err(_) => return Ok(()),
            Ok(m) if m.file_type().is_symlink() => {
                return Err(format!(
                    "{} is a link; ccsync never writes through links",
                    at.display()
                ));
            }
            Ok(m) if i + 1 < count && !m.is_dir() => {
                return Err(format!("{} is not a folder", at.display()));
            }
            Ok(m) if i + 1 == count && !m.is_file() => {
                return Err(format!("{} is not a regular file", at.display()));
            }
            Ok(_) => {}
        }
    }
    Ok(())
}

/// Conflict copies (`<name>.from-<machine>`) a pull left in the setup.
pub fn conflict_copies(places: &Places) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut roots: Vec<PathBuf> = scan::DIRS.iter().map(|d| places.root.join(d)).collect();
    roots.push(places.root.join(scan::PLUGINS));
    roots.extend(places.memory.values().map(|d| d.join(scan::MEMORY)));
    // The top of the config dir is looked at, not into.
    let mut stack = roots;
    stack.push(places.root.clone());
    let top = places.root.clone();
    while let Some(dir) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            let name = entry.file_name();
            if meta.is_dir() && dir != top {
                stack.push(entry.path());
            } else if meta.is_file() && name.to_str().and_then(scan::conflict_copy).is_some() {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}
