//! What a snapshot carries and what it says beyond its files: the
//! deletions this machine sends (only those travel as deletions), the
//! conflicts it holds, and what it leaves out or must not write.

use std::collections::{BTreeMap, BTreeSet};

use super::scan::{self, Inventory};
use super::{Places, apply};
use crate::index::SetupBase;
use crate::names::MachineName;
use crate::project::ProjectKey;
use crate::transport::layout::key_dir;

/// The deletions this machine sends: each path it carried, or had as the
/// last pull left it, or sent as deleted before, that is gone from here
/// for no other reason than that it was deleted.
pub(super) fn deletions(
    base: &SetupBase,
    inventory: &Inventory,
    places: &Places,
    carried: &BTreeSet<String>,
) -> BTreeSet<String> {
    base.mine
        .keys()
        .chain(&base.carried)
        .chain(&base.deleted)
        .filter(|p| !carried.contains(*p) && withheld(p, inventory, places).is_none())
        .cloned()
        .collect()
}

/// Why a path is not carried from here though it may be here (excluded,
/// a link, unreadable, over a cap, a project with no checkout here), or
/// must not be written here: `None` when nothing holds it back.
pub(super) fn withheld(path: &str, inventory: &Inventory, places: &Places) -> Option<String> {
    if path.starts_with("memory/") && memory_key(path, places).is_none() {
        return Some("a project with no checkout here".into());
    }
    let name = path.rsplit('/').next().unwrap_or(path);
    if scan::conflict_copy(name, &places.machines).is_some() {
        return Some("a conflict copy".into());
    }
    if let Some(e) = inventory.excluded.iter().find(|e| covers(&e.path, path)) {
        return Some(e.reason.clone());
    }
    if let Some(glob) = places.exclude.iter().find(|g| scan::glob_match(g, path)) {
        return Some(format!("setup_exclude in config.toml ({glob:?})"));
    }
    None
}

/// The conflicts this machine still holds, as its snapshot tells them: a
/// conflict is held while the file here is the version kept and the
/// other's copy is still beside it (an edit here, or deleting the copy,
/// resolves it).
pub(super) fn held(
    base: &SetupBase,
    hashes: &BTreeMap<&str, &str>,
    places: &Places,
) -> BTreeMap<String, BTreeMap<String, String>> {
    let mut out: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    for (machine, paths) in &base.kept {
        let Ok(m) = MachineName::parse(machine) else {
            continue;
        };
        for (path, kept) in paths {
            let copy = places
                .local_path(path, memory_key(path, places).as_ref())
                .map(|(_, dest)| apply::beside(&dest, &m));
            if hashes.get(path.as_str()) == Some(&kept.mine.as_str())
                && copy.is_some_and(|c| c.is_file())
            {
                out.entry(machine.clone())
                    .or_default()
                    .insert(path.clone(), kept.theirs.clone());
            }
        }
    }
    out
}

/// Whether the excluded path `ex` is `path` or a folder holding it.
pub(super) fn covers(ex: &str, path: &str) -> bool {
    path == ex || path.strip_prefix(ex).is_some_and(|r| r.starts_with('/'))
}

/// The project a memory path here belongs to (for one only `seen` names).
pub(super) fn memory_key(path: &str, places: &Places) -> Option<ProjectKey> {
    let dir = path.strip_prefix("memory/")?.split('/').next()?;
    places.memory.keys().find(|k| key_dir(k) == dir).cloned()
}
