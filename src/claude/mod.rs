//! Claude Code's own files: where its config dir is, which folder a working
//! directory maps to, and which sessions are on this machine.

pub mod dirname;
pub mod history;
pub mod live;
pub mod parts;
pub mod registry;
pub mod sessions;
pub mod settings;
pub mod transcript;

use std::ffi::OsString;
use std::io;
use std::path::{Path, PathBuf};

use unicode_normalization::UnicodeNormalization;

use crate::names::SessionId;

/// Claude Code's config dir (`$CLAUDE_CONFIG_DIR`, else `~/.claude`).
#[derive(Debug, Clone)]
pub struct ClaudeHome {
    root: PathBuf,
    dir_name_override: Option<String>,
}

impl ClaudeHome {
    /// Resolves the config dir exactly as the client does. `dir_name_override`
    /// is `CLAUDE_CODE_PROJECT_DIR_NAME`, which the client honours only when
    /// `CLAUDE_CONFIG_DIR` is set and the value is a plain name.
    pub fn resolve(
        config_dir: Option<OsString>,
        home: Option<PathBuf>,
        dir_name_override: Option<String>,
    ) -> Option<Self> {
        let config_dir = config_dir.filter(|d| !d.is_empty());
        let explicit = config_dir.is_some();
        let root = match config_dir {
            Some(dir) => PathBuf::from(dir),
            None => home?.join(".claude"),
        };
        // The client NFC-normalises the path; on Linux an NFD spelling is
        // another directory, so follow it.
        let root = match root.to_str() {
            Some(s) => PathBuf::from(s.nfc().collect::<String>()),
            None => root,
        };
        let dir_name_override = dir_name_override.filter(|name| {
            explicit
                && (1..=64).contains(&name.len())
                && name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
        });
        Some(Self {
            root,
            dir_name_override,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// How long the client keeps a transcript it has not modified:
    /// `cleanupPeriodDays` in `settings.json` (default 30 days). Older
    /// transcripts, with their side files, are deleted when it starts.
    pub fn cleanup_period(&self) -> std::time::Duration {
        const DAY: u64 = 24 * 60 * 60;
        let days = std::fs::read(self.root.join("settings.json"))
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|v| v.get("cleanupPeriodDays")?.as_f64())
            .filter(|d| d.is_finite() && *d >= 0.0)
            .unwrap_or(30.0);
        std::time::Duration::from_secs((days.min(1e6) * DAY as f64) as u64)
    }

    pub fn projects_dir(&self) -> PathBuf {
        self.root.join("projects")
    }

    pub fn dir_name_override(&self) -> Option<&str> {
        self.dir_name_override.as_deref()
    }

    /// The folder under `projects/` where the local client looks for the
    /// sessions of `cwd`. For a long path whose name was cut, an existing
    /// folder with the same prefix that the client already accepts for this
    /// cwd is reused, so one directory never ends up with two folders.
    pub fn project_dir_for(&self, cwd: &str) -> io::Result<PathBuf> {
        let projects = self.projects_dir();
        if let Some(name) = &self.dir_name_override {
            return Ok(projects.join(name));
        }
        let exact = projects.join(dirname::encode(cwd));
        let Some(prefix) = dirname::long_prefix(cwd) else {
            return Ok(exact);
        };
        if exact.is_dir() {
            return Ok(exact);
        }
        let entries = match std::fs::read_dir(&projects) {
            Ok(entries) => entries,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(exact),
            Err(e) => return Err(e),
        };
        for entry in entries {
            let entry = entry?;
            let name = entry.file_name();
            if !name.to_str().is_some_and(|n| n.starts_with(&prefix)) || !entry.path().is_dir() {
                continue;
            }
            for file in std::fs::read_dir(entry.path())? {
                let file = file?.path();
                if file.extension().is_some_and(|e| e == "jsonl")
                    && transcript::first_line_cwd(&file)?.as_deref() == Some(cwd)
                {
                    return Ok(entry.path());
                }
            }
        }
        Ok(exact)
    }

    /// Removes temp files a killed ccsync left in project folders. Call
    /// only while holding ccsync's lock: then none is being written.
    pub fn remove_leftovers(&self) -> io::Result<usize> {
        let mut removed = 0;
        let dirs = match std::fs::read_dir(self.projects_dir()) {
            Ok(d) => d,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(e),
        };
        for dir in dirs.flatten() {
            let Ok(files) = std::fs::read_dir(dir.path()) else {
                continue;
            };
            for file in files.flatten() {
                if crate::fsutil::is_temp_name(&file.file_name())
                    && std::fs::remove_file(file.path()).is_ok()
                {
                    removed += 1;
                }
            }
        }
        Ok(removed)
    }

    pub fn transcript_path(project_dir: &Path, id: &SessionId) -> PathBuf {
        project_dir.join(id.file_name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_dir_resolution() {
        let home = Some(PathBuf::from("/h"));
        let c = ClaudeHome::resolve(None, home.clone(), Some("x".into())).unwrap();
        assert_eq!(c.root(), Path::new("/h/.claude"));
        assert_eq!(
            c.dir_name_override(),
            None,
            "override needs CLAUDE_CONFIG_DIR"
        );
        let c = ClaudeHome::resolve(Some("".into()), home.clone(), None).unwrap();
        assert_eq!(c.root(), Path::new("/h/.claude"));
        let c = ClaudeHome::resolve(Some("/c".into()), None, Some("my_dir-1".into())).unwrap();
        assert_eq!(c.dir_name_override(), Some("my_dir-1"));
        assert_eq!(
            c.project_dir_for("/any").unwrap(),
            Path::new("/c/projects/my_dir-1")
        );
        let c = ClaudeHome::resolve(Some("/c".into()), None, Some("../x".into())).unwrap();
        assert_eq!(c.dir_name_override(), None);
        // NFD "é" becomes NFC.
        let c = ClaudeHome::resolve(Some("/caf\u{65}\u{301}".into()), None, None).unwrap();
        assert_eq!(c.root(), Path::new("/caf\u{e9}"));
        assert!(ClaudeHome::resolve(None, None, None).is_none());
    }

    #[test]
    fn long_paths_reuse_a_folder_the_client_accepts() {
        let tmp = tempfile::tempdir().unwrap();
        let home = ClaudeHome::resolve(Some(tmp.path().into()), None, None).unwrap();
        let cwd = format!("/home/u/{}", "y".repeat(250));
        let exact = home.projects_dir().join(dirname::encode(&cwd));
        assert_eq!(home.project_dir_for(&cwd).unwrap(), exact);

        let older = home
            .projects_dir()
            .join(format!("{}other", dirname::long_prefix(&cwd).unwrap()));
        std::fs::create_dir_all(&older).unwrap();
        let t = older.join("a.jsonl");
        std::fs::write(&t, "{\"cwd\":\"/somewhere/else\"}\n").unwrap();
        assert_eq!(home.project_dir_for(&cwd).unwrap(), exact);
        std::fs::write(&t, format!("{{\"cwd\":\"{cwd}\"}}\n")).unwrap();
        assert_eq!(home.project_dir_for(&cwd).unwrap(), older);
    }
}
