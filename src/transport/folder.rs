//! Folders inside a sync dir, used without ever following a link.
//!
//! Anyone who can write to a shared sync dir (a Dropbox folder, a USB stick)
//! can replace a project folder with a link to somewhere else. Every
//! operation here is relative to an open folder: a child folder is opened
//! with `O_NOFOLLOW`, files are created with `O_EXCL | O_NOFOLLOW`, renamed
//! and removed with `renameat` and `unlinkat`, which never follow the last
//! component. So a planted link is refused by name, not written through, and
//! nothing outside the sync dir is created, replaced or deleted. (Where there
//! are no such calls, every component is checked with `lstat` first.)

use std::fs::File;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::fsutil;

/// An entry of a folder, as `lstat` sees it.
#[derive(Debug)]
pub struct Entry {
    pub name: String,
    pub kind: Kind,
    pub len: u64,
    pub modified: Option<SystemTime>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    File,
    Dir,
    Link,
    Other,
}

impl Kind {
    /// As `lstat` tells it.
    pub fn of(t: std::fs::FileType) -> Self {
        if t.is_symlink() {
            Kind::Link
        } else if t.is_dir() {
            Kind::Dir
        } else if t.is_file() {
            Kind::File
        } else {
            Kind::Other
        }
    }
}

/// Why a folder or file inside the sync dir was not used.
pub fn link_refused(path: &Path) -> io::Error {
    io::Error::other(format!(
        "{} is a symbolic link; ccsync never reads or writes through links in the sync dir. Remove it (its target is not touched)",
        path.display()
    ))
}

/// An open folder: the root of a sync dir, or a folder directly inside it.
pub struct Folder {
    path: PathBuf,
    #[cfg(unix)]
    fd: rustix::fd::OwnedFd,
}

#[cfg(unix)]
mod sys {
    use super::*;
    use rustix::fs::{AtFlags, FileType, Mode, OFlags};
    use rustix::io::Errno;

    pub fn open_dir(path: &Path) -> io::Result<Folder> {
        let fd = rustix::fs::open(
            path,
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
            Mode::empty(),
        )?;
        Ok(Folder {
            path: path.to_path_buf(),
            fd,
        })
    }

    /// What `name` in `dir` is, without following it.
    pub fn kind_at(dir: &Folder, name: &str) -> io::Result<Kind> {
        let st = rustix::fs::statat(&dir.fd, name, AtFlags::SYMLINK_NOFOLLOW)?;
        Ok(match FileType::from_raw_mode(st.st_mode) {
            FileType::RegularFile => Kind::File,
            FileType::Directory => Kind::Dir,
            FileType::Symlink => Kind::Link,
            _ => Kind::Other,
        })
    }

    /// Opens `name` in `dir` without following a link; `None` if absent.
    fn open_at(dir: &Folder, name: &str, flags: OFlags) -> io::Result<Option<File>> {
        match rustix::fs::openat(
            &dir.fd,
            name,
            flags | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        ) {
            Ok(fd) => Ok(Some(File::from(fd))),
            Err(Errno::NOENT) => Ok(None),
            Err(e) => {
                if kind_at(dir, name).ok() == Some(Kind::Link) {
                    Err(link_refused(&dir.path.join(name)))
                } else {
                    Err(e.into())
                }
            }
        }
    }

    pub fn child(dir: &Folder, name: &str, create: bool) -> io::Result<Option<Folder>> {
        let open = || open_at(dir, name, OFlags::RDONLY | OFlags::DIRECTORY);
        let file = match open()? {
            Some(f) => f,
            None if create => {
                match rustix::fs::mkdirat(&dir.fd, name, Mode::from_raw_mode(0o700)) {
                    Ok(()) | Err(Errno::EXIST) => {}
                    Err(e) => return Err(e.into()),
                }
                open()?.ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))?
            }
            None => return Ok(None),
        };
        Ok(Some(Folder {
            path: dir.path.join(name),
            fd: file.into(),
        }))
    }

    pub fn open_file(dir: &Folder, name: &str) -> io::Result<Option<File>> {
        // Non-blocking, so a planted FIFO cannot hang the open.
        open_at(dir, name, OFlags::RDONLY | OFlags::NONBLOCK)
    }

    pub fn create_new(dir: &Folder, name: &str) -> io::Result<File> {
        let fd = rustix::fs::openat(
            &dir.fd,
            name,
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        )?;
        Ok(File::from(fd))
    }

    pub fn rename(dir: &Folder, from: &str, to: &str) -> io::Result<()> {
        Ok(rustix::fs::renameat(&dir.fd, from, &dir.fd, to)?)
    }

    pub fn remove(dir: &Folder, name: &str) -> io::Result<()> {
        Ok(rustix::fs::unlinkat(&dir.fd, name, AtFlags::empty())?)
    }

    pub fn names(dir: &Folder) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in rustix::fs::Dir::read_from(&dir.fd)? {
            let entry = entry?;
            if let Ok(name) = entry.file_name().to_str()
                && name != "."
                && name != ".."
            {
                out.push(name.to_owned());
            }
        }
        Ok(out)
    }

    pub fn sync(dir: &Folder) {
        let _ = rustix::fs::fsync(&dir.fd);
    }
}

#[cfg(not(unix))]
mod sys {
    //! Path-based, each component checked with `lstat` first: a race with
    //! whoever plants a link remains, which the Unix calls above close.
    use super::*;

    pub fn open_dir(path: &Path) -> io::Result<Folder> {
        if !std::fs::metadata(path)?.is_dir() {
            return Err(io::Error::other("it is not a directory"));
        }
        Ok(Folder {
            path: path.to_path_buf(),
        })
    }

    pub fn kind_at(dir: &Folder, name: &str) -> io::Result<Kind> {
        Ok(Kind::of(
            std::fs::symlink_metadata(dir.path.join(name))?.file_type(),
        ))
    }

    fn check(dir: &Folder, name: &str) -> io::Result<Option<Kind>> {
        match kind_at(dir, name) {
            Ok(Kind::Link) => Err(link_refused(&dir.path.join(name))),
            Ok(k) => Ok(Some(k)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub fn child(dir: &Folder, name: &str, create: bool) -> io::Result<Option<Folder>> {
        let path = dir.path.join(name);
        match check(dir, name)? {
            Some(Kind::Dir) => {}
            Some(_) => {
                return Err(io::Error::other(format!(
                    "{} is not a folder",
                    path.display()
                )));
            }
            None if create => fsutil::create_private_dir_all(&path)?,
            None => return Ok(None),
        }
        Ok(Some(Folder { path }))
    }

    pub fn open_file(dir: &Folder, name: &str) -> io::Result<Option<File>> {
        match check(dir, name)? {
            Some(_) => File::open(dir.path.join(name)).map(Some),
            None => Ok(None),
        }
    }

    pub fn create_new(dir: &Folder, name: &str) -> io::Result<File> {
        File::options()
            .write(true)
            .create_new(true)
            .open(dir.path.join(name))
    }

    pub fn rename(dir: &Folder, from: &str, to: &str) -> io::Result<()> {
        check(dir, to)?;
        std::fs::rename(dir.path.join(from), dir.path.join(to))
    }

    pub fn remove(dir: &Folder, name: &str) -> io::Result<()> {
        check(dir, name)?;
        std::fs::remove_file(dir.path.join(name))
    }

    pub fn names(dir: &Folder) -> io::Result<Vec<String>> {
        let mut out = Vec::new();
        for entry in std::fs::read_dir(&dir.path)? {
            if let Ok(name) = entry?.file_name().into_string() {
                out.push(name);
            }
        }
        Ok(out)
    }

    pub fn sync(_dir: &Folder) {}
}

impl Folder {
    /// Opens the sync dir itself; the user chose it, so it may be a link.
    pub fn open_root(path: &Path) -> io::Result<Self> {
        sys::open_dir(path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The folder `name` inside this one, never through a link; `None` if
    /// absent and not `create`d (0700).
    pub fn child(&self, name: &str, create: bool) -> io::Result<Option<Folder>> {
        sys::child(self, name, create)
    }

    /// Opens the regular file `name` for reading, never through a link;
    /// `None` if absent.
    pub fn open_file(&self, name: &str) -> io::Result<Option<File>> {
        let Some(file) = sys::open_file(self, name)? else {
            return Ok(None);
        };
        if !file.metadata()?.is_file() {
            return Err(io::Error::other(format!(
                "{} is not a regular file",
                self.path.join(name).display()
            )));
        }
        Ok(Some(file))
    }

    /// Removes the regular file `name` (a link or anything else is refused,
    /// never followed); one already gone is fine.
    pub fn remove_file(&self, name: &str) -> io::Result<()> {
        match sys::kind_at(self, name) {
            Ok(Kind::File) => match sys::remove(self, name) {
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
                other => other,
            },
            Ok(Kind::Link) => Err(link_refused(&self.path.join(name))),
            Ok(_) => Err(io::Error::other("it is not a regular file")),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Every entry but hidden ones (temp files being written), each as
    /// `lstat` sees it. One that vanishes while being looked at (another
    /// machine renaming its temp file into place) is passed over. No file is
    /// opened: on a cloud drive, opening a placeholder downloads it.
    pub fn entries(&self) -> io::Result<Vec<Entry>> {
        let mut out = Vec::new();
        for name in sys::names(self)? {
            if name.starts_with('.') {
                continue;
            }
            // Metadata only, so a path is good enough: the last component
            // is never followed, and nothing is read or written through it.
            let meta = match std::fs::symlink_metadata(self.path.join(&name)) {
                Ok(meta) => meta,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            out.push(Entry {
                name,
                kind: Kind::of(meta.file_type()),
                len: meta.len(),
                modified: meta.modified().ok(),
            });
        }
        Ok(out)
    }

    /// Writes `name` atomically: a new private temp file named after
    /// `owner` (so `owner`'s next write can remove it if this run is
    /// killed), fsynced, renamed over `name`. The temp file is removed on
    /// any error.
    pub fn write_atomic(
        &self,
        name: &str,
        owner: &str,
        fill: impl FnOnce(&mut File) -> io::Result<()>,
    ) -> io::Result<std::fs::Metadata> {
        let mut tries = 0;
        let (tmp, mut file) = loop {
            let tmp = super::temps::name(owner);
            match sys::create_new(self, &tmp) {
                Ok(f) => break (tmp, f),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists && tries < 8 => tries += 1,
                Err(e) => return Err(e),
            }
        };
        let written = (|| {
            fill(&mut file)?;
            file.flush()?;
            file.sync_all()?;
            let meta = file.metadata()?;
            sys::rename(self, &tmp, name)?;
            Ok(meta)
        })();
        if written.is_err() {
            let _ = sys::remove(self, &tmp);
        } else {
            sys::sync(self);
        }
        written
    }

    /// Removes ccsync temp files here: `owner`'s whose writer is gone (a
    /// killed run of this machine left them; see [`super::temps`]), and
    /// any once older than `stale` (another machine may be writing one
    /// right now). Links are removed as names, never followed.
    pub fn remove_temps(&self, owner: &str, stale: std::time::Duration) -> usize {
        let Ok(names) = sys::names(self) else {
            return 0;
        };
        let cutoff = SystemTime::now() - stale;
        let mut removed = 0;
        for name in names {
            if !fsutil::is_temp_name(std::ffi::OsStr::new(&name))
                || sys::kind_at(self, &name).ok() != Some(Kind::File)
            {
                continue;
            }
            // Metadata only: opening a cloud drive's placeholder downloads it.
            let old = || {
                std::fs::symlink_metadata(self.path.join(&name))
                    .and_then(|m| m.modified())
                    .is_ok_and(|t| t < cutoff)
            };
            if (super::temps::is_abandoned_own(&name, owner) || old())
                && sys::remove(self, &name).is_ok()
            {
                removed += 1;
            }
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    #[test]
    fn links_are_refused_and_their_targets_untouched() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().join("sync");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&root).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join(".ccsync-x-1.tmp"), b"victim").unwrap();
        std::os::unix::fs::symlink(&outside, root.join("git=x")).unwrap();
        std::os::unix::fs::symlink(outside.join(".ccsync-x-1.tmp"), root.join("f")).unwrap();
        let folder = Folder::open_root(&root).unwrap();
        let err = folder.child("git=x", true).err().unwrap();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let err = folder.open_file("f").err().unwrap();
        assert!(err.to_string().contains("symbolic link"), "{err}");
        // Writing over a link replaces the link, never its target.
        folder
            .write_atomic("f", "me", |f| f.write_all(b"new"))
            .unwrap();
        assert_eq!(
            std::fs::read(outside.join(".ccsync-x-1.tmp")).unwrap(),
            b"victim"
        );
        assert!(
            !std::fs::symlink_metadata(root.join("f"))
                .unwrap()
                .is_symlink()
        );
        let kinds: Vec<(String, Kind)> = folder
            .entries()
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.kind))
            .collect();
        assert!(kinds.contains(&("git=x".into(), Kind::Link)));
    }

    #[test]
    fn a_killed_runs_temps_go_at_once_and_others_when_stale() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = Folder::open_root(tmp.path()).unwrap();
        for name in [
            ".ccsync-me-00000000000000a1.tmp",
            ".ccsync-me-2-00000000000000a1.tmp",
            ".ccsync-other-00000000000000a1.tmp",
            "keep.ccsync",
        ] {
            std::fs::write(tmp.path().join(name), b"x").unwrap();
        }
        // Another upload of this machine's, in flight in a running process.
        let flying = crate::transport::temps::name("me");
        std::fs::write(tmp.path().join(&flying), b"x").unwrap();
        let hour = std::time::Duration::from_secs(3600);
        assert_eq!(folder.remove_temps("me", hour), 1);
        assert!(tmp.path().join(&flying).exists());
        assert!(
            tmp.path()
                .join(".ccsync-me-2-00000000000000a1.tmp")
                .exists()
        );
        assert!(
            tmp.path()
                .join(".ccsync-other-00000000000000a1.tmp")
                .exists()
        );
        assert_eq!(folder.remove_temps("me", std::time::Duration::ZERO), 3);
        assert!(tmp.path().join("keep.ccsync").exists());
    }

    #[test]
    fn atomic_writes_are_private() {
        let tmp = tempfile::tempdir().unwrap();
        let folder = Folder::open_root(tmp.path()).unwrap();
        let sub = folder.child("git=a", true).unwrap().unwrap();
        sub.write_atomic("o.ccsync", "me", |f| f.write_all(b"abc"))
            .unwrap();
        assert_eq!(
            std::fs::read(tmp.path().join("git=a/o.ccsync")).unwrap(),
            b"abc"
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
            assert_eq!(mode(&tmp.path().join("git=a")), 0o700);
            assert_eq!(mode(&tmp.path().join("git=a/o.ccsync")), 0o600);
        }
        assert_eq!(
            std::fs::read_dir(tmp.path().join("git=a")).unwrap().count(),
            1
        );
    }
}
