//! A directory as transport: a Dropbox, iCloud or Syncthing folder, a USB
//! stick, a network share.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};

use super::{ObjectName, RemoteObject, Transport, TransportError};
use crate::bundle::MAX_BUNDLE_BYTES;
use crate::fsutil;

pub struct DirTransport {
    root: PathBuf,
}

impl DirTransport {
    pub fn new(root: PathBuf) -> Self {
        Self { root }
    }

    fn io(&self, action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> TransportError {
        let path = path.to_path_buf();
        move |source| TransportError::Io {
            action,
            path,
            source,
        }
    }

    /// The root must already exist: a missing one is most often an unmounted
    /// drive, and writing into the empty mount point would hide the sessions.
    fn existing_root(&self) -> Result<&Path, TransportError> {
        match fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => Ok(&self.root),
            Ok(_) => Err(TransportError::Io {
                action: "use",
                path: self.root.clone(),
                source: io::Error::other("it is not a directory"),
            }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Err(TransportError::Missing {
                path: self.root.clone(),
            }),
            Err(e) => Err(self.io("read", &self.root)(e)),
        }
    }

    fn path_of(&self, name: &ObjectName) -> PathBuf {
        self.root.join(name.dir()).join(name.file())
    }
}

/// Removes temp files that a killed writer left in `dir`. Only old ones:
/// in a shared folder another machine may be writing one right now.
fn remove_stale_temps(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    let hour_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(3600);
    for entry in entries.flatten() {
        let stale = fsutil::is_temp_name(&entry.file_name())
            && entry
                .path()
                .symlink_metadata()
                .and_then(|m| m.modified())
                .is_ok_and(|t| t < hour_ago);
        if stale {
            let _ = fs::remove_file(entry.path());
        }
    }
}

/// Real directories and files only: a link could lead outside the sync dir.
/// Hidden entries (temp files being written) are passed over, and so is an
/// entry that vanishes while the folder is read: another machine may be
/// renaming its temp file into place right now.
fn plain_entries(dir: &Path) -> io::Result<Vec<(String, fs::Metadata)>> {
    plain_entries_with(dir, |p| p.symlink_metadata())
}

fn plain_entries_with(
    dir: &Path,
    stat: impl Fn(&Path) -> io::Result<fs::Metadata>,
) -> io::Result<Vec<(String, fs::Metadata)>> {
    let mut out = Vec::new();
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let Ok(name) = entry.file_name().into_string() else {
            continue;
        };
        if name.starts_with('.') {
            continue;
        }
        let meta = match stat(&entry.path()) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        if !meta.file_type().is_symlink() {
            out.push((name, meta));
        }
    }
    Ok(out)
}

impl Transport for DirTransport {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self) -> Result<Vec<RemoteObject>, TransportError> {
        let root = self.existing_root()?;
        let mut objects = Vec::new();
        for (dir, meta) in plain_entries(root).map_err(self.io("read", root))? {
            if !meta.is_dir() {
                continue;
            }
            let path = root.join(&dir);
            for (file, meta) in plain_entries(&path).map_err(self.io("read", &path))? {
                if !meta.is_file() {
                    continue;
                }
                if let Some(name) = ObjectName::parse(&dir, &file) {
                    objects.push(RemoteObject {
                        name,
                        size: meta.len(),
                        modified: meta.modified().ok(),
                    });
                }
            }
        }
        objects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(objects)
    }

    fn fetch(&self, names: &[ObjectName], into: &Path) -> Result<Vec<PathBuf>, TransportError> {
        self.existing_root()?;
        let mut paths = Vec::with_capacity(names.len());
        for (i, name) in names.iter().enumerate() {
            let src = self.path_of(name);
            let meta = src.symlink_metadata().map_err(self.io("read", &src))?;
            if !meta.is_file() {
                return Err(self.io("read", &src)(io::Error::other(
                    "it is not a regular file",
                )));
            }
            let bytes =
                fsutil::read_capped(&src, MAX_BUNDLE_BYTES).map_err(self.io("read", &src))?;
            let dest = into.join(format!("{i}.{}", crate::bundle::EXTENSION));
            fsutil::write_atomic_bytes(&dest, &bytes).map_err(self.io("write", &dest))?;
            paths.push(dest);
        }
        Ok(paths)
    }

    fn store(
        &self,
        objects: &[(ObjectName, PathBuf)],
    ) -> Result<Vec<RemoteObject>, TransportError> {
        self.existing_root()?;
        let dirs: std::collections::BTreeSet<&str> = objects.iter().map(|(n, _)| n.dir()).collect();
        for dir in dirs {
            remove_stale_temps(&self.root.join(dir));
        }
        let mut stored = Vec::with_capacity(objects.len());
        for (name, local) in objects {
            let dest = self.path_of(name);
            let mut src = fs::File::open(local).map_err(self.io("read", local))?;
            fsutil::write_atomic(&dest, |f| io::copy(&mut src, f).map(drop))
                .map_err(self.io("write", &dest))?;
            let meta = dest.symlink_metadata().map_err(self.io("read", &dest))?;
            stored.push(RemoteObject {
                name: name.clone(),
                size: meta.len(),
                modified: meta.modified().ok(),
            });
        }
        Ok(stored)
    }

    fn check_writable(&self) -> Result<(), TransportError> {
        let root = self.existing_root()?;
        tempfile::Builder::new()
            .prefix(fsutil::TEMP_PREFIX)
            .suffix(fsutil::TEMP_SUFFIX)
            .tempfile_in(root)
            .map(drop)
            .map_err(self.io("write to", root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Listing while another machine writes: an entry that vanishes between
    /// reading the folder and looking at the entry is passed over; any other
    /// error still fails the listing.
    #[test]
    fn entries_that_vanish_while_listing_are_passed_over() {
        let root = tempfile::tempdir().unwrap();
        for name in ["a.ccsync", "vanishing.ccsync", "c.ccsync", ".ccsync-x.tmp"] {
            fs::write(root.path().join(name), b"x").unwrap();
        }
        let stat = |kind: io::ErrorKind| {
            move |p: &Path| {
                if p.ends_with("vanishing.ccsync") {
                    Err(io::Error::from(kind))
                } else {
                    p.symlink_metadata()
                }
            }
        };
        let mut names: Vec<String> = plain_entries_with(root.path(), stat(io::ErrorKind::NotFound))
            .unwrap()
            .into_iter()
            .map(|(n, _)| n)
            .collect();
        names.sort();
        assert_eq!(names, ["a.ccsync", "c.ccsync"]);
        assert!(plain_entries_with(root.path(), stat(io::ErrorKind::PermissionDenied)).is_err());
    }

    #[test]
    fn stale_temp_files_are_removed_and_fresh_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("git=x_y");
        fs::create_dir_all(&dir).unwrap();
        let old = dir.join(".ccsync-old.tmp");
        let fresh = dir.join(".ccsync-fresh.tmp");
        fs::write(&old, b"half").unwrap();
        fs::write(&fresh, b"half").unwrap();
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        let staged = root.path().join("staged");
        fs::write(&staged, b"bundle").unwrap();
        let t = DirTransport::new(root.path().to_path_buf());
        let name = ObjectName::parse("git=x_y", "a.ccsync").unwrap();
        let stored = t.store(&[(name.clone(), staged)]).unwrap();
        assert_eq!((stored[0].name.clone(), stored[0].size), (name, 6));
        assert!(!old.exists());
        assert!(fresh.exists());
    }
}
