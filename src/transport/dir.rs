//! A directory as transport: a Dropbox, iCloud or Syncthing folder, a USB
//! stick, a network share.

use std::io::{self, Read};
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::folder::{Folder, Kind};
use super::{Listing, ObjectName, PerObject, RemoteObject, Transport, TransportError, Visitor};
use crate::bundle::MAX_BUNDLE_BYTES;
use crate::names::MachineName;

/// Temp files of other machines older than this are taken as abandoned.
const STALE_TEMP: Duration = Duration::from_secs(3600);

pub struct DirTransport {
    root: PathBuf,
    /// This machine, whose leftover temp files a store removes at once.
    owner: Option<MachineName>,
}

impl DirTransport {
    pub fn new(root: PathBuf, owner: Option<MachineName>) -> Self {
        Self { root, owner }
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
    fn open_root(&self) -> Result<Folder, TransportError> {
        match std::fs::metadata(&self.root) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(TransportError::Io {
                    action: "use",
                    path: self.root.clone(),
                    source: io::Error::other("it is not a directory"),
                });
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                return Err(TransportError::Missing {
                    path: self.root.clone(),
                });
            }
            Err(e) => return Err(self.io("read", &self.root)(e)),
        }
        Folder::open_root(&self.root).map_err(self.io("open", &self.root))
    }

    fn owner(&self) -> &str {
        self.owner.as_ref().map_or("unknown", MachineName::as_str)
    }

    /// Opens one object for reading: a regular file within the size limit,
    /// in a real folder; never through a link.
    fn open_object(&self, root: &Folder, name: &ObjectName) -> PerObject<(std::fs::File, u64)> {
        let path = self.root.join(name.dir()).join(name.file());
        let dir = root
            .child(name.dir(), false)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| format!("{} does not exist", path.display()))?;
        let file = dir
            .open_file(name.file())
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .ok_or_else(|| format!("{} vanished while being read", path.display()))?;
        let len = file
            .metadata()
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?
            .len();
        if len > MAX_BUNDLE_BYTES {
            return Err(too_large("it", len));
        }
        Ok((file, len))
    }
}

/// Why an object over the bundle size limit is not read.
pub fn too_large(what: &str, len: u64) -> String {
    format!(
        "{what} is {len} bytes, over the {} MiB bundle limit; it was not read (remove it from the sync dir if it is not a bundle)",
        MAX_BUNDLE_BYTES >> 20
    )
}

impl Transport for DirTransport {
    fn location(&self) -> String {
        self.root.display().to_string()
    }

    fn list(&self) -> Result<Listing, TransportError> {
        let root = self.open_root()?;
        let mut listing = Listing::default();
        let refuse = |listing: &mut Listing, path: &Path| {
            listing.refused.push((
                path.display().to_string(),
                "a symbolic link; ccsync never follows links in the sync dir".into(),
            ));
        };
        for entry in root.entries().map_err(self.io("read", &self.root))? {
            let path = self.root.join(&entry.name);
            match entry.kind {
                Kind::Dir => {}
                Kind::Link => {
                    refuse(&mut listing, &path);
                    continue;
                }
                _ => continue,
            }
            let dir = match root.child(&entry.name, false) {
                Ok(Some(dir)) => dir,
                Ok(None) => continue,
                Err(e) => {
                    listing
                        .refused
                        .push((path.display().to_string(), e.to_string()));
                    continue;
                }
            };
            // One unreadable folder is named, not the end of the listing.
            let files = match dir.entries() {
                Ok(files) => files,
                Err(e) => {
                    listing
                        .refused
                        .push((path.display().to_string(), format!("cannot read it: {e}")));
                    continue;
                }
            };
            for file in files {
                match file.kind {
                    Kind::File => {}
                    Kind::Link => {
                        refuse(&mut listing, &path.join(&file.name));
                        continue;
                    }
                    _ => continue,
                }
                if let Some(name) = ObjectName::parse(&entry.name, &file.name) {
                    listing.objects.push(RemoteObject {
                        name,
                        size: file.len,
                        modified: file.modified,
                    });
                }
            }
        }
        listing.objects.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(listing)
    }

    fn fetch(
        &self,
        names: &[ObjectName],
        visit: &mut Visitor,
    ) -> Result<Vec<PerObject<()>>, TransportError> {
        let root = self.open_root()?;
        Ok(names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let (file, len) = self.open_object(&root, name)?;
                // Never more than it said at open: a file growing meanwhile
                // is read as it was.
                visit(
                    i,
                    &mut io::BufReader::with_capacity(1 << 16, file).take(len),
                );
                Ok(())
            })
            .collect())
    }

    fn store(
        &self,
        objects: &[(ObjectName, PathBuf)],
    ) -> Result<Vec<PerObject<RemoteObject>>, TransportError> {
        let root = self.open_root()?;
        let mut folders: std::collections::BTreeMap<&str, Result<Folder, String>> =
            std::collections::BTreeMap::new();
        let mut stored = Vec::with_capacity(objects.len());
        for (name, local) in objects {
            let folder = folders.entry(name.dir()).or_insert_with(|| {
                let dir = root
                    .child(name.dir(), true)
                    .map_err(|e| {
                        format!("cannot use {}: {e}", self.root.join(name.dir()).display())
                    })?
                    .ok_or_else(|| "it vanished".to_owned())?;
                dir.remove_temps(self.owner(), STALE_TEMP);
                Ok(dir)
            });
            let dir = match folder {
                Ok(dir) => dir,
                Err(e) => {
                    stored.push(Err(e.clone()));
                    continue;
                }
            };
            let mut src = std::fs::File::open(local).map_err(self.io("read", local))?;
            let dest = dir.path().join(name.file());
            // A rename keeps the modification time: the stamp a listing
            // will show, for the index.
            stored.push(
                dir.write_atomic(name.file(), self.owner(), |f| {
                    io::copy(&mut src, f).map(drop)
                })
                .map(|meta| RemoteObject {
                    name: name.clone(),
                    size: meta.len(),
                    modified: meta.modified().ok(),
                })
                .map_err(|e| format!("cannot write {}: {e}", dest.display())),
            );
        }
        Ok(stored)
    }

    fn remove(&self, names: &[ObjectName]) -> Result<Vec<PerObject<()>>, TransportError> {
        let root = self.open_root()?;
        Ok(names
            .iter()
            .map(|name| {
                let path = self.root.join(name.dir()).join(name.file());
                let Some(dir) = root.child(name.dir(), false).map_err(|e| e.to_string())? else {
                    return Ok(());
                };
                dir.remove_file(name.file())
                    .map_err(|e| format!("cannot remove {}: {e}", path.display()))
            })
            .collect())
    }

    fn remove_own_temps(&self) -> Result<(), TransportError> {
        if self.owner.is_none() {
            return Ok(());
        }
        let root = self.open_root()?;
        root.remove_temps(self.owner(), STALE_TEMP);
        for entry in root.entries().map_err(self.io("read", &self.root))? {
            if entry.kind == Kind::Dir
                && let Ok(Some(dir)) = root.child(&entry.name, false)
            {
                dir.remove_temps(self.owner(), STALE_TEMP);
            }
        }
        Ok(())
    }

    fn check_writable(&self) -> Result<(), TransportError> {
        let root = self.open_root()?;
        root.remove_temps(self.owner(), STALE_TEMP);
        root.write_atomic(".ccsync-probe", self.owner(), |_| Ok(()))
            .and_then(|_| std::fs::remove_file(self.root.join(".ccsync-probe")))
            .map_err(self.io("write to", &self.root))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(dir: &str, file: &str) -> ObjectName {
        ObjectName::parse(dir, file).unwrap()
    }

    #[test]
    fn one_bad_object_does_not_stop_the_others() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("git=x_y");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("a.ccsync"), b"aaa").unwrap();
        let big = std::fs::File::create(dir.join("big.ccsync")).unwrap();
        big.set_len(MAX_BUNDLE_BYTES + 1).unwrap();
        let t = DirTransport::new(root.path().to_path_buf(), None);
        let listing = t.list().unwrap();
        assert_eq!(listing.objects.len(), 2);
        let mut got = Vec::new();
        let names = [
            name("git=x_y", "big.ccsync"),
            name("git=x_y", "gone.ccsync"),
            name("git=x_y", "a.ccsync"),
        ];
        let results = t
            .fetch(&names, &mut |i, r| {
                let mut b = Vec::new();
                r.read_to_end(&mut b).unwrap();
                got.push((i, b));
            })
            .unwrap();
        assert!(
            results[0]
                .as_ref()
                .unwrap_err()
                .contains("over the 1024 MiB")
        );
        assert!(results[1].is_err());
        assert!(results[2].is_ok());
        assert_eq!(got, [(2, b"aaa".to_vec())]);
    }

    #[cfg(unix)]
    #[test]
    fn a_planted_link_is_refused_by_name_and_its_target_untouched() {
        let root = tempfile::tempdir().unwrap();
        let outside = tempfile::tempdir().unwrap();
        let stale = outside.path().join(".ccsync-other-1.tmp");
        std::fs::write(&stale, b"victim").unwrap();
        let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&stale)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        std::os::unix::fs::symlink(outside.path(), root.path().join("git=x_y")).unwrap();
        std::fs::create_dir_all(root.path().join("git=ok")).unwrap();
        let staged = root.path().join(".staged");
        std::fs::write(&staged, b"bundle").unwrap();
        let t = DirTransport::new(root.path().to_path_buf(), None);
        let results = t
            .store(&[
                (name("git=x_y", "a.ccsync"), staged.clone()),
                (name("git=ok", "a.ccsync"), staged),
            ])
            .unwrap();
        let err = results[0].as_ref().unwrap_err();
        assert!(
            err.contains("git=x_y") && err.contains("symbolic link"),
            "{err}"
        );
        assert_eq!(results[1].as_ref().unwrap().size, 6);
        assert!(stale.exists(), "nothing deleted through the link");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 1);
        let listing = t.list().unwrap();
        assert_eq!(listing.objects.len(), 1);
        assert!(listing.refused[0].0.ends_with("git=x_y"));
    }

    #[test]
    fn stale_temp_files_are_removed_and_fresh_ones_kept() {
        let root = tempfile::tempdir().unwrap();
        let dir = root.path().join("git=x_y");
        std::fs::create_dir_all(&dir).unwrap();
        let old = dir.join(".ccsync-other-00000000000000a1.tmp");
        let fresh = dir.join(".ccsync-other-00000000000000a2.tmp");
        let mine = dir.join(".ccsync-me-00000000000000a3.tmp");
        for f in [&old, &fresh, &mine] {
            std::fs::write(f, b"half").unwrap();
        }
        let two_hours_ago = std::time::SystemTime::now() - Duration::from_secs(7200);
        std::fs::File::options()
            .write(true)
            .open(&old)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
        let staged = root.path().join("staged");
        std::fs::write(&staged, b"bundle").unwrap();
        let me = MachineName::parse("me").unwrap();
        let t = DirTransport::new(root.path().to_path_buf(), Some(me));
        let n = name("git=x_y", "a.ccsync");
        let stored = t.store(&[(n.clone(), staged)]).unwrap();
        let stored = stored[0].as_ref().unwrap();
        assert_eq!((stored.name.clone(), stored.size), (n, 6));
        assert!(!old.exists());
        assert!(!mine.exists(), "this machine's own leftovers go at once");
        assert!(fresh.exists());
    }
}
