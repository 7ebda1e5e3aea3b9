//! Writing what a pull decided: never through a link, a conflict saved
//! beside as `<name>.from-<machine>`; and finding those copies again.

use std::path::{Path, PathBuf};

use super::Places;
use super::{RemoteFile, reroot, scan};
use crate::fsutil;
use crate::names::MachineName;
use crate::sync::plan::setup::SetupAction;

/// Carries out one decision; returns where a conflict saved the other
/// machine's version.
pub(super) fn apply(
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
            let beside = beside(dest, machine);
            write(&beside, remote.expect("a conflict has a remote"))?;
            Ok(Some(beside))
        }
    }
}

/// Where a conflict saves `machine`'s version of `dest`.
pub(super) fn beside(dest: &Path, machine: &MachineName) -> PathBuf {
    let mut name = dest.file_name().unwrap_or_default().to_os_string();
    name.push(format!(".from-{machine}"));
    dest.with_file_name(name)
}

/// The first link on the way from `anchor` down to `path`, if any: a
/// file this machine keeps elsewhere (dotfiles) is not written over.
pub(super) fn linked(anchor: &Path, path: &Path) -> Option<PathBuf> {
    let rest = path.strip_prefix(anchor).ok()?;
    let mut at = anchor.to_path_buf();
    for c in rest.components() {
        at.push(c);
        match std::fs::symlink_metadata(&at) {
            Err(_) => return None,
            Ok(m) if m.file_type().is_symlink() => return Some(at),
            Ok(_) => {}
        }
    }
    None
}

/// Refuses to write through a link: every folder from `anchor` down to
/// `path` must be a real folder (or not there yet), and `path` a regular
/// file (or not there).
pub(super) fn no_links(anchor: &Path, path: &Path) -> Result<(), String> {
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
            } else if meta.is_file()
                && name
                    .to_str()
                    .and_then(|n| scan::conflict_copy(n, &places.machines))
                    .is_some()
            {
                out.push(entry.path());
            }
        }
    }
    out.sort();
    out
}
