//! Prompt recall: `history.jsonl`, the lines the client offers on the up
//! arrow, each `{display, pastedContents, timestamp, project, sessionId}`
//! (FACTS.md). The client appends to it under a lock of its own: a
//! `history.jsonl.lock` directory, taken by creating it and counted stale
//! once it is 10 seconds old. ccsync takes the same lock, appends in one
//! write, and never rewrites the file.

use std::collections::HashSet;
use std::io::{self, BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use serde::{Deserialize, Serialize};

/// One prompt to recall.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    pub display: String,
    /// Unix milliseconds.
    pub timestamp: u64,
    /// The directory the prompt counts as typed in: this machine's.
    pub project: String,
    pub session_id: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Line<'a> {
    display: &'a str,
    pasted_contents: serde_json::Map<String, serde_json::Value>,
    timestamp: u64,
    project: &'a str,
    session_id: &'a str,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Seen {
    display: Option<String>,
    timestamp: Option<u64>,
    session_id: Option<String>,
}

/// The prompts typed in `transcript` (session `session_id`), as recall
/// entries typed in `project`; prompts without a time are left out.
pub fn entries_of(transcript: &Path, project: &str, session_id: &str) -> io::Result<Vec<Entry>> {
    Ok(super::transcript::prompts(transcript)?
        .into_iter()
        .filter_map(|p| {
            Some(Entry {
                display: p.text,
                timestamp: p.timestamp_ms?,
                project: project.to_owned(),
                session_id: session_id.to_owned(),
            })
        })
        .collect())
}

/// A lock older than this was left by a process that died.
const STALE: Duration = Duration::from_secs(10);
/// How long to wait for a live lock before giving up.
const PATIENCE: Duration = Duration::from_secs(15);

/// Appends the entries `history.jsonl` in `config_dir` lacks (same session,
/// time and text); returns how many.
pub fn recall(config_dir: &Path, entries: &[Entry]) -> io::Result<usize> {
    if entries.is_empty() {
        return Ok(0);
    }
    let path = config_dir.join("history.jsonl");
    let _lock = HistoryLock::take(&config_dir.join("history.jsonl.lock"))?;
    let ids: HashSet<&str> = entries.iter().map(|e| e.session_id.as_str()).collect();
    let mut seen: HashSet<(String, u64, String)> = HashSet::new();
    let mut ends_with_newline = true;
    match std::fs::File::open(&path) {
        Ok(f) => {
            let mut reader = io::BufReader::with_capacity(1 << 16, f);
            let mut line = Vec::new();
            loop {
                line.clear();
                if reader.read_until(b'\n', &mut line)? == 0 {
                    break;
                }
                ends_with_newline = line.last() == Some(&b'\n');
                // Only lines of these sessions need decoding.
                if !ids
                    .iter()
                    .any(|id| line.windows(id.len()).any(|w| w == id.as_bytes()))
                {
                    continue;
                }
                if let Ok(Seen {
                    display: Some(d),
                    timestamp: Some(t),
                    session_id: Some(s),
                }) = serde_json::from_slice::<Seen>(&line)
                {
                    seen.insert((s, t, d));
                }
            }
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    let mut out = Vec::new();
    if !ends_with_newline {
        out.push(b'\n');
    }
    let mut added = 0;
    for e in entries {
        if !seen.insert((e.session_id.clone(), e.timestamp, e.display.clone())) {
            continue;
        }
        let line = Line {
            display: &e.display,
            pasted_contents: Default::default(),
            timestamp: e.timestamp,
            project: &e.project,
            session_id: &e.session_id,
        };
        serde_json::to_writer(&mut out, &line)?;
        out.push(b'\n');
        added += 1;
    }
    if added == 0 {
        return Ok(0);
    }
    let mut options = std::fs::OpenOptions::new();
    options.append(true).create(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path)?;
    file.write_all(&out)?;
    file.sync_data()?;
    Ok(added)
}

/// The client's lock on `history.jsonl`, held while this value lives.
struct HistoryLock {
    dir: PathBuf,
}

impl HistoryLock {
    fn take(dir: &Path) -> io::Result<Self> {
        let start = SystemTime::now();
        loop {
            match std::fs::create_dir(dir) {
                Ok(()) => return Ok(Self { dir: dir.into() }),
                Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                    let age = std::fs::metadata(dir)
                        .and_then(|m| m.modified())
                        .ok()
                        .and_then(|t| SystemTime::now().duration_since(t).ok());
                    if age.is_some_and(|a| a > STALE) {
                        // Left by a process that died: take it over.
                        let _ = std::fs::remove_dir(dir);
                        continue;
                    }
                    if start.elapsed().unwrap_or_default() > PATIENCE {
                        return Err(io::Error::other(format!(
                            "{} is held by another process (Claude Code writing its prompt history); try again in a moment",
                            dir.display()
                        )));
                    }
                    std::thread::sleep(Duration::from_millis(100));
                }
                Err(e) => return Err(e),
            }
        }
    }
}

impl Drop for HistoryLock {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(text: &str, t: u64) -> Entry {
        Entry {
            display: text.into(),
            timestamp: t,
            project: "/home/b/w".into(),
            session_id: "5c0375b4-57a5-4f26-b12d-d022ee4e51b7".into(),
        }
    }

    #[test]
    fn appends_once_and_keeps_what_was_there() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("history.jsonl");
        // The client's own line, cut short by a crash: ours start on a line of their own.
        std::fs::write(&path, b"{\"display\":\"mine\",\"timestamp\":1}\n{\"disp").unwrap();
        let e = [entry("fix the bug", 10), entry("and \"quote\" it", 20)];
        assert_eq!(recall(dir.path(), &e).unwrap(), 2);
        assert_eq!(recall(dir.path(), &e).unwrap(), 0);
        assert_eq!(recall(dir.path(), &[entry("fix the bug", 11)]).unwrap(), 1);
        let text = std::fs::read_to_string(&path).unwrap();
        assert!(text.starts_with("{\"display\":\"mine\",\"timestamp\":1}\n{\"disp\n{\"display\":\"fix the bug\",\"pastedContents\":{},\"timestamp\":10,\"project\":\"/home/b/w\",\"sessionId\":\"5c0375b4-57a5-4f26-b12d-d022ee4e51b7\"}\n"), "{text}");
        assert_eq!(text.lines().count(), 5);
        assert!(!dir.path().join("history.jsonl.lock").exists());
    }

    #[test]
    fn a_stale_lock_is_taken_over() {
        let dir = tempfile::tempdir().unwrap();
        let lock = dir.path().join("history.jsonl.lock");
        std::fs::create_dir(&lock).unwrap();
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::open(&lock)
            .unwrap()
            .set_modified(old)
            .unwrap();
        assert_eq!(recall(dir.path(), &[entry("x", 1)]).unwrap(), 1);
    }
}
