//! The setup (opt-in, `setup = true`): settings, CLAUDE.md, agents,
//! commands, skills, output styles, keybindings, plugin configuration and
//! each project's memory. Each machine stores its whole setup as one
//! object, `setup/<machine>.ccsetup` (through the same layers as bundles:
//! compressed, encrypted when the sync dir is), and a pull merges the other
//! machines' into this one file by file ([`plan::setup::decide`]), machine
//! after machine, the oldest snapshot first.
//!
//! [`plan::setup::decide`]: crate::sync::plan::setup::decide

mod apply;
mod carry;
pub mod reroot;
pub mod scan;

use apply::apply;
pub use apply::conflict_copies;
use carry::{deletions, held, memory_key, withheld};

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
use crate::index::Kept;
use crate::names::MachineName;
use crate::project::{KeyMap, ProjectKey};
use crate::secrets::{Finding, Scanner};
use crate::sync::scan::SecretScan;
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
    /// The other machines this one has read setups of: only
    /// `<name>.from-<one of them>` is a conflict copy.
    pub machines: BTreeSet<String>,
}

impl Places {
    pub fn scan(&self) -> Inventory {
        let memory: Vec<_> = self
            .memory
            .iter()
            .map(|(k, d)| (k.clone(), d.clone()))
            .collect();
        scan::scan(&self.root, &memory, &self.exclude, &self.machines)
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
    /// Files this machine deleted (tombstones). Only these are deletions:
    /// a file a snapshot does not carry for any other reason (excluded
    /// there, a link, over a cap, a project with no checkout there) is
    /// simply not news.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    deleted: Vec<GoneJson>,
    /// Conflicts this machine holds, by machine and path: the version of
    /// that machine's it read and kept its own over (saved beside).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    kept: BTreeMap<String, BTreeMap<String, String>>,
}

#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct GoneJson {
    path: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    project: Option<String>,
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
    /// Files that machine deleted, by path here.
    pub deleted: BTreeSet<String>,
    /// Versions of this machine's files that machine kept its own over.
    pub kept_of_mine: BTreeMap<String, String>,
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
        let (path, project) = here(f.path, project, keys);
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
    let mut deleted = BTreeSet::new();
    for g in json.deleted {
        let project = match &g.project {
            Some(k) => Some(ProjectKey::parse(k).map_err(|e| format!("{}: {e}", g.path))?),
            None => None,
        };
        scan::allowed_path(&g.path, project.as_ref())?;
        deleted.insert(here(g.path, project, keys).0);
    }
    let (mut seen, mut kept) = (json.seen, json.kept);
    Ok(Snapshot {
        machine,
        created_at: json.created_at,
        files,
        seen_of_mine: seen.remove(me.as_str()).unwrap_or_default(),
        deleted,
        kept_of_mine: kept.remove(me.as_str()).unwrap_or_default(),
    })
}

/// A path as it is here: memory lands under this machine's key for the
/// project.
fn here(path: String, project: Option<ProjectKey>, keys: &KeyMap) -> (String, Option<ProjectKey>) {
    match project {
        Some(key) => {
            let here = keys.local(&key);
            let rest = path.splitn(3, '/').nth(2).unwrap_or_default();
            (
                format!("{}/{}/{rest}", scan::MEMORY, key_dir(&here)),
                Some(here),
            )
        }
        None => (path, None),
    }
}

/// What a push did with the setup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pushed {
    Stored { files: usize, bytes: u64 },
    Unchanged { files: usize },
}

/// Stores this machine's setup as its snapshot, when it changed since the
/// last push (or the object is gone).
///
/// With `scan` on, each file is scanned as it would travel; with
/// [`SecretScan::Refuse`] a file that holds credentials stays here (and is
/// not a deletion either). The findings come back by path.
pub fn push(
    link: &mut Link,
    places: &Places,
    now_ms: u64,
    scan: SecretScan,
) -> Result<(Pushed, Vec<(String, Finding)>), SetupError> {
    let inventory = places.scan();
    let transport = link.transport;
    let listed = transport.list()?;
    let has_record = super::encryption::listed(&listed.objects);
    super::encryption::check_layers(transport, link.layers, has_record, false)?;
    let name = ObjectName::setup(link.machine);
    let mut found = Vec::new();
    let files: Vec<FileJson> = inventory
        .files
        .iter()
        .filter_map(|f| {
            let p = portable(f, &places.home);
            if scan != SecretScan::Off {
                let report = Scanner::global().scan_bytes(&p.bytes);
                found.extend(report.findings.iter().map(|x| (f.path.clone(), *x)));
                if scan == SecretScan::Refuse && !report.is_clean() {
                    return None;
                }
            }
            let (utf8, base64) = match String::from_utf8(p.bytes) {
                Ok(text) => (Some(text), None),
                Err(e) => (None, Some(BASE64.encode(e.into_bytes()))),
            };
            Some(FileJson {
                path: f.path.clone(),
                project: f.project.as_ref().map(|k| k.as_str().to_owned()),
                sha256: p.sha256,
                modified_at: f.modified_ms,
                executable: f.executable,
                rerooted: p.rerooted,
                utf8,
                base64,
            })
        })
        .collect();
    let count = files.len();
    let mut base = link.index.setup.clone();
    let carried: BTreeSet<String> = inventory.files.iter().map(|f| f.path.clone()).collect();
    base.deleted = deletions(&base, &inventory, places, &carried);
    base.carried = carried;
    let deleted = base
        .deleted
        .iter()
        .map(|path| GoneJson {
            path: path.clone(),
            project: memory_key(path, places).map(|k| k.as_str().to_owned()),
        })
        .collect();
    let mut snapshot = SnapshotJson {
        version: VERSION,
        machine: link.machine.to_string(),
        created_at: 0,
        files,
        seen: base.seen.clone(),
        deleted,
        kept: BTreeMap::new(),
    };
    let hashes: BTreeMap<&str, &str> = snapshot
        .files
        .iter()
        .map(|f| (f.path.as_str(), f.sha256.as_str()))
        .collect();
    snapshot.kept = held(&base, &hashes, places);
    let content = sha256_hex(&serde_json::to_vec(&snapshot).expect("serialises"));
    // Ours as we stored it: an old copy a sync service put back is not.
    let there = listed
        .objects
        .iter()
        .any(|o| o.name == name && base.stored_size.is_none_or(|s| s == o.size));
    if there && base.pushed.as_deref() == Some(content.as_str()) {
        link.index.set_setup(base);
        return Ok((Pushed::Unchanged { files: count }, found));
    }
    snapshot.created_at = now_ms;
    let bytes = serde_json::to_vec(&snapshot).expect("serialises");
    let file = crate::sync::staging_dir(link.staging)?.join("setup.ccsetup");
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
    let size = std::fs::metadata(&file).map_err(write_err)?.len();
    transport
        .store(&[(name.clone(), file)])?
        .remove(0)
        .map_err(|reason| SetupError::Store {
            name: name.clone(),
            reason,
        })?;
    base.pushed = Some(content);
    base.stored_size = Some(size);
    link.index.set_setup(base);
    let stored = Pushed::Stored {
        files: count,
        bytes: bytes.len() as u64,
    };
    Ok((stored, found))
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
    /// Files that could not be written, and why.
    pub skipped: Vec<(String, String)>,
    /// Files left alone as this machine asks (excluded here, or a link
    /// here in their place), and why.
    pub withheld: Vec<(String, String)>,
    /// Memory of projects with no checkout here.
    pub no_checkout: usize,
    /// Snapshots that could not be read.
    pub bad: Vec<(ObjectName, String)>,
    /// Machines whose snapshot is older than one already read (ignored).
    pub stale: Vec<MachineName>,
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
    let mut local: BTreeMap<String, String> = inventory
        .files
        .iter()
        .map(|f| (f.path.clone(), portable(f, &places.home).sha256))
        .collect();
    let mut base = link.index.setup.clone();
    // An older snapshot than one already read is an old copy put back.
    snapshots.retain(|s| {
        let newest = base.read_at.get(s.machine.as_str()).copied();
        let stale = newest.is_some_and(|at| s.created_at < at);
        if stale {
            out.stale.push(s.machine.clone());
        } else {
            base.read_at.insert(s.machine.to_string(), s.created_at);
        }
        !stale
    });
    for snap in &snapshots {
        let seen = base.seen.entry(snap.machine.to_string()).or_default();
        let kept = base.kept.entry(snap.machine.to_string()).or_default();
        let paths: BTreeSet<String> = snap.files.keys().chain(seen.keys()).cloned().collect();
        for path in paths {
            let remote = snap.files.get(&path);
            // Not carried there, and not deleted there: no news.
            if remote.is_none() && !snap.deleted.contains(&path) {
                continue;
            }
            let project = remote
                .and_then(|r| r.project.clone())
                .or_else(|| memory_key(&path, places));
            if path.starts_with("memory/") && project.is_none() {
                out.no_checkout += 1;
                continue;
            }
            let Some((anchor, dest)) = places.local_path(&path, project.as_ref()) else {
                out.no_checkout += 1;
                continue;
            };
            // The user's excludes and this machine's links hold both ways.
            let shadow = withheld(&path, &inventory, places).or_else(|| {
                apply::linked(&anchor, &dest).map(|l| format!("{} is a link", l.display()))
            });
            if let Some(reason) = shadow {
                out.withheld.push((path.clone(), reason));
                continue;
            }
            let mine = base_here(
                base.mine.get(&path),
                local.get(&path),
                snap.seen_of_mine.get(&path),
                snap.kept_of_mine.get(&path),
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
            match (action, &remote_hash, local.get(&path)) {
                (SetupAction::Conflict, Some(theirs), Some(mine)) => {
                    let k = Kept {
                        theirs: theirs.clone(),
                        mine: mine.clone(),
                    };
                    kept.insert(path.clone(), k);
                }
                (SetupAction::Keep, ..) => {}
                _ => {
                    kept.remove(&path);
                }
            }
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
    base.kept.retain(|_, paths| !paths.is_empty());
    link.index.set_setup(base);
    Ok(out)
}

fn set(map: &mut BTreeMap<String, String>, path: &str, hash: Option<String>) {
    match hash {
        Some(h) => map.insert(path.to_owned(), h),
        None => map.remove(path),
    };
}
