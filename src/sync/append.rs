//! Extending a transcript Claude Code may hold open, without ever leaving
//! half a line at its end.
//!
//! A transcript is only ever appended to (see `design.md`: a rename would
//! send the client's next lines to a deleted file). An append can stop
//! part-way: a full disk, or a kill in the middle of a write. Half a line at
//! the end is the one state that hurts: the client's next line is glued to
//! it and the file no longer parses. So:
//! - a failed append is cut back to the old length before anything else;
//! - before the first byte, the intent (file, identity, old and new length,
//!   where the new bytes come from) is written to a journal in ccsync's
//!   config dir; the record goes when the append is durable. The next ccsync
//!   command finds a record left by a killed run and cuts the file back
//!   ([`Journal::recover`]), before it does anything else.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::claude::live::{InUse, Writers};
use crate::fsutil;
use std::time::Duration;

/// Where intents are recorded: a folder in ccsync's config dir.
#[derive(Debug, Clone)]
pub struct Journal {
    dir: PathBuf,
}

/// One append under way.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Intent {
    dest: PathBuf,
    /// The file's identity when the append began: a record never acts on
    /// a file that was replaced since.
    dev: u64,
    ino: u64,
    from: u64,
    to: u64,
    /// Holds the bytes being appended, at `from - shift..to - shift`.
    staged: PathBuf,
    /// Where the staged copy starts in `dest`: 0 when it holds the whole
    /// new file, `from` when it holds only the bytes appended.
    #[serde(default)]
    shift: u64,
}

/// What recovery did with one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Recovered {
    /// The append had finished, or stopped between lines: nothing to do
    /// (whole lines are a prefix of the incoming copy; the next pull adds
    /// the rest).
    Complete(PathBuf),
    /// The half line at the end was cut off; the whole lines before it stay
    /// (the client may have read them already).
    RolledBack { path: PathBuf, removed: u64 },
    /// The file changed in a way the record cannot explain; left alone.
    Unexplained { path: PathBuf, why: String },
    /// Left for the next run: a process has the file open for writing, or
    /// it could not be read; the record stays.
    Later { path: PathBuf, why: String },
}

impl Journal {
    pub fn new(dir: PathBuf) -> Self {
        Self { dir }
    }

    /// Whether a killed run may have left something to recover.
    pub fn has_records(&self) -> bool {
        std::fs::read_dir(&self.dir).is_ok_and(|mut d| d.next().is_some())
    }

    fn record(&self, intent: &Intent) -> io::Result<PathBuf> {
        let path = self
            .dir
            .join(format!("{}.json", uuid::Uuid::new_v4().simple()));
        let bytes = serde_json::to_vec(intent).map_err(io::Error::other)?;
        fsutil::write_atomic_bytes(&path, &bytes)?;
        Ok(path)
    }

    /// Completes or rolls back what killed runs left, then forgets their
    /// records. Only a caller holding ccsync's lock may call this: a live
    /// run's record describes an append under way.
    pub fn recover(&self, writers: &Writers) -> Vec<Recovered> {
        let Ok(entries) = std::fs::read_dir(&self.dir) else {
            return Vec::new();
        };
        let mut done = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            if fsutil::is_temp_name(&entry.file_name()) {
                let _ = std::fs::remove_file(&path);
                continue;
            }
            let intent = std::fs::read(&path)
                .ok()
                .and_then(|b| serde_json::from_slice::<Intent>(&b).ok());
            if let Some(intent) = intent {
                let r = recover_one(&intent, writers).unwrap_or_else(|e| Recovered::Later {
                    path: intent.dest.clone(),
                    why: e.to_string(),
                });
                let keep = matches!(r, Recovered::Later { .. });
                done.push(r);
                if keep {
                    continue;
                }
            }
            let _ = std::fs::remove_file(&path);
        }
        done
    }
}

/// Extends `dest`, whose first `from` bytes are those of `staged`, with the
/// rest of `staged`, by appending: a process that has `dest` open keeps
/// writing to the same file, after the new lines. Each write holds whole
/// lines and goes through `O_APPEND`, so no other appender's line can land
/// inside one. If `dest` is no longer `from` bytes long, nothing is written.
/// If the append fails part-way, `dest` is cut back to `from` bytes before
/// this returns; if the process dies part-way, `journal` lets the next run
/// do it.
pub fn append_rest(
    journal: Option<&Journal>,
    staged: &Path,
    dest: &Path,
    from: u64,
) -> io::Result<()> {
    append_shifted(journal, staged, 0, dest, from)
}

/// Appends all of `tail` to `dest`, which must be `from` bytes long: the
/// same guarantees as [`append_rest`], for a staged file holding only the
/// bytes to add (a segment's).
pub fn append_tail(
    journal: Option<&Journal>,
    tail: &Path,
    dest: &Path,
    from: u64,
) -> io::Result<()> {
    append_shifted(journal, tail, from, dest, from)
}

fn append_shifted(
    journal: Option<&Journal>,
    staged: &Path,
    shift: u64,
    dest: &Path,
    from: u64,
) -> io::Result<()> {
    let mut out = std::fs::OpenOptions::new().append(true).open(dest)?;
    let meta = out.metadata()?;
    if meta.len() != from {
        return Err(io::Error::other(format!(
            "it changed while being pulled ({from} bytes, now {}); pull again",
            meta.len()
        )));
    }
    let mut src = File::open(staged)?;
    let to = src.metadata()?.len() + shift;
    if to <= from {
        return Ok(());
    }
    let record = match journal {
        Some(j) => {
            let (dev, ino) = identity(&meta);
            Some(j.record(&Intent {
                dest: dest.to_path_buf(),
                dev,
                ino,
                from,
                to,
                staged: staged.to_path_buf(),
                shift,
            })?)
        }
        None => None,
    };
    let mut written = 0u64;
    let appended =
        copy_lines(&mut src, from - shift, &mut out, &mut written).and_then(|()| out.sync_all());
    if let Err(e) = appended {
        return Err(match roll_back(&out, from, from + written) {
            Ok(()) => {
                if let Some(r) = &record {
                    let _ = std::fs::remove_file(r);
                }
                io::Error::new(
                    e.kind(),
                    format!("{e}; the {written} bytes already appended were removed again"),
                )
            }
            Err(why) => io::Error::new(
                e.kind(),
                format!("{e}; and it could not be cut back to {from} bytes: {why}"),
            ),
        });
    }
    if let Some(r) = record {
        let _ = std::fs::remove_file(r);
    }
    Ok(())
}

/// Appends `src` from `from` to its end, whole lines per write, counting
/// what reached the file in `written`.
fn copy_lines(src: &mut File, from: u64, out: &mut File, written: &mut u64) -> io::Result<()> {
    src.seek(SeekFrom::Start(from))?;
    let mut pending: Vec<u8> = Vec::with_capacity(1 << 20);
    let mut buf = vec![0u8; 1 << 20];
    let mut write = |bytes: &[u8]| -> io::Result<()> {
        let mut rest = bytes;
        while !rest.is_empty() {
            match out.write(rest) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    *written += n as u64;
                    rest = &rest[n..];
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    };
    loop {
        let n = src.read(&mut buf)?;
        if n == 0 {
            break;
        }
        pending.extend_from_slice(&buf[..n]);
        if let Some(end) = memchr::memrchr(b'\n', &pending) {
            write(&pending[..=end])?;
            pending.drain(..=end);
        }
    }
    write(&pending)
}

/// Cuts `out` back to `from` bytes, if it is `expected` bytes long: what is
/// past `from` is then exactly what this append wrote.
fn roll_back(out: &File, from: u64, expected: u64) -> io::Result<()> {
    let now = out.metadata()?.len();
    if now != expected {
        return Err(io::Error::other(format!(
            "another process wrote to it meanwhile ({now} bytes, expected {expected})"
        )));
    }
    out.set_len(from)?;
    out.sync_all()
}

fn recover_one(intent: &Intent, writers: &Writers) -> io::Result<Recovered> {
    let path = intent.dest.clone();
    let unexplained = |why: &str| {
        Ok(Recovered::Unexplained {
            path: path.clone(),
            why: why.to_owned(),
        })
    };
    let out = match std::fs::OpenOptions::new().write(true).open(&intent.dest) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Recovered::Complete(path)),
        Err(e) => return Err(e),
    };
    let meta = out.metadata()?;
    if identity(&meta) != (intent.dev, intent.ino) {
        return unexplained("it was replaced since");
    }
    let len = meta.len();
    if len <= intent.from || len >= intent.to {
        // Nothing appended, or all of it (and perhaps the client's lines
        // after it): whole lines either way.
        return Ok(Recovered::Complete(path));
    }
    // A process writing it may have read the lines already and be about
    // to add its own: never cut under it.
    if let Some(InUse::OpenForWriting { pid }) = writers.check(&intent.dest, Duration::ZERO) {
        return Ok(Recovered::Later {
            path,
            why: format!("process {pid} has it open for writing"),
        });
    }
    let cut = last_line_end(&intent.dest, intent.from, len)?;
    if cut == len {
        return Ok(Recovered::Complete(path));
    }
    // What is past the old end must be what was being appended; if the
    // staged copy is gone, a last line without its newline is the sign.
    match tail_matches(
        &intent.dest,
        &intent.staged,
        intent.from,
        intent.shift,
        len - intent.from,
    ) {
        Ok(true) | Err(_) => {}
        Ok(false) => {
            return unexplained("what follows the old end is not what ccsync was appending");
        }
    }
    // Once more, just before cutting: a line that arrived meanwhile stays.
    if out.metadata()?.len() != len {
        return unexplained("another process wrote to it meanwhile");
    }
    out.set_len(cut)?;
    out.sync_all()?;
    Ok(Recovered::RolledBack {
        path,
        removed: len - cut,
    })
}

/// Where the last complete line of `path` ends, at or after `from`, looking
/// back from `len`: `from` when no newline follows it.
fn last_line_end(path: &Path, from: u64, len: u64) -> io::Result<u64> {
    let mut f = File::open(path)?;
    let mut buf = vec![0u8; 1 << 16];
    let mut end = len;
    while end > from {
        let start = end.saturating_sub(buf.len() as u64).max(from);
        let n = (end - start) as usize;
        f.seek(SeekFrom::Start(start))?;
        f.read_exact(&mut buf[..n])?;
        if let Some(i) = memchr::memrchr(b'\n', &buf[..n]) {
            return Ok(start + i as u64 + 1);
        }
        end = start;
    }
    Ok(from)
}

/// Whether `a` from `offset` and `b` from `offset - shift` hold the same
/// `len` bytes.
fn tail_matches(a: &Path, b: &Path, offset: u64, shift: u64, len: u64) -> io::Result<bool> {
    let (mut a, mut b) = (File::open(a)?, File::open(b)?);
    if b.metadata()?.len() + shift < offset + len {
        return Err(io::Error::other("the staged copy is shorter"));
    }
    a.seek(SeekFrom::Start(offset))?;
    b.seek(SeekFrom::Start(offset - shift))?;
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    let mut left = len;
    while left > 0 {
        let n = (1 << 16).min(left) as usize;
        a.read_exact(&mut x[..n])?;
        b.read_exact(&mut y[..n])?;
        if x[..n] != y[..n] {
            return Ok(false);
        }
        left -= n as u64;
    }
    Ok(true)
}

#[cfg(unix)]
fn identity(meta: &std::fs::Metadata) -> (u64, u64) {
    use std::os::unix::fs::MetadataExt;
    (meta.dev(), meta.ino())
}

#[cfg(not(unix))]
fn identity(_meta: &std::fs::Metadata) -> (u64, u64) {
    (0, 0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (tempfile::TempDir, Journal, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let journal = Journal::new(tmp.path().join("journal"));
        let dest = tmp.path().join("t.jsonl");
        let staged = tmp.path().join("staged");
        std::fs::write(&dest, b"{\"a\":1}\n").unwrap();
        std::fs::write(&staged, b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n").unwrap();
        (tmp, journal, dest, staged)
    }

    /// The record an append of `staged`'s 16 bytes past 8 onto `dest` makes.
    fn intent(dest: &Path, staged: &Path) -> Intent {
        let (dev, ino) = identity(&std::fs::metadata(dest).unwrap());
        Intent {
            dest: dest.to_path_buf(),
            dev,
            ino,
            from: 8,
            to: 24,
            staged: staged.to_path_buf(),
            shift: 0,
        }
    }

    #[test]
    fn an_append_leaves_no_record() {
        let (_tmp, journal, dest, staged) = setup();
        append_rest(Some(&journal), &staged, &dest, 8).unwrap();
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            std::fs::read(&staged).unwrap()
        );
        assert!(!journal.has_records());
    }

    /// A run killed mid-append: the next run cuts the half line off, and
    /// keeps the whole line before it (the client may have read it).
    #[test]
    fn a_killed_append_is_rolled_back_by_the_next_run() {
        let (_tmp, journal, dest, staged) = setup();
        journal.record(&intent(&dest, &staged)).unwrap();
        // The kill came after one line and a half.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&dest)
            .unwrap()
            .write_all(b"{\"b\":2}\n{\"c")
            .unwrap();
        assert!(journal.has_records());
        let done = journal.recover(&Writers::default());
        assert_eq!(
            done,
            [Recovered::RolledBack {
                path: dest.clone(),
                removed: 3
            }]
        );
        assert_eq!(std::fs::read(&dest).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
        assert!(!journal.has_records());
    }

    /// A segment's bytes alone: appended whole; a killed append of them is
    /// rolled back like any other, and one whose bytes are not the
    /// segment's is left alone.
    #[test]
    fn a_tail_appends_and_a_killed_one_is_rolled_back() {
        let (tmp, journal, dest, _) = setup();
        let tail = tmp.path().join("tail");
        std::fs::write(&tail, b"{\"b\":2}\n{\"c\":3}\n").unwrap();
        append_tail(Some(&journal), &tail, &dest, 8).unwrap();
        assert_eq!(
            std::fs::read(&dest).unwrap(),
            b"{\"a\":1}\n{\"b\":2}\n{\"c\":3}\n"
        );
        assert!(!journal.has_records());
        assert!(
            append_tail(Some(&journal), &tail, &dest, 8).is_err(),
            "not 8 bytes now"
        );

        for (written, expect) in [
            (&b"{\"b\":2}\n{\"c"[..], Some(3)),
            (&b"{\"X\":2}\n{\"c"[..], None),
        ] {
            std::fs::write(&dest, b"{\"a\":1}\n").unwrap();
            let intent = Intent {
                staged: tail.clone(),
                shift: 8,
                ..intent(&dest, &tail)
            };
            journal.record(&intent).unwrap();
            std::fs::OpenOptions::new()
                .append(true)
                .open(&dest)
                .unwrap()
                .write_all(written)
                .unwrap();
            let done = journal.recover(&Writers::default());
            match expect {
                Some(removed) => {
                    assert_eq!(
                        done,
                        [Recovered::RolledBack {
                            path: dest.clone(),
                            removed
                        }]
                    );
                    assert_eq!(std::fs::read(&dest).unwrap(), b"{\"a\":1}\n{\"b\":2}\n");
                }
                None => assert!(
                    matches!(done[..], [Recovered::Unexplained { .. }]),
                    "{done:?}"
                ),
            }
        }
    }

    /// Never cut under a process that has the file open for writing: the
    /// record stays for a later run.
    #[cfg(target_os = "linux")]
    #[test]
    fn a_file_held_open_is_left_for_later() {
        let (_tmp, journal, dest, staged) = setup();
        journal.record(&intent(&dest, &staged)).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&dest)
            .unwrap()
            .write_all(b"{\"b")
            .unwrap();
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg("exec 3>>\"$0\"; echo ready; exec sleep 30")
            .arg(&dest)
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut ready = [0u8; 6];
        std::io::Read::read_exact(child.stdout.as_mut().unwrap(), &mut ready).unwrap();
        let done = journal.recover(&Writers::scan());
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(matches!(done[0], Recovered::Later { .. }), "{done:?}");
        assert!(journal.has_records());
        assert_eq!(std::fs::read(&dest).unwrap(), b"{\"a\":1}\n{\"b");
        assert!(matches!(
            journal.recover(&Writers::scan())[0],
            Recovered::RolledBack { removed: 3, .. }
        ));
    }

    /// The same with the staged copy gone: a missing final newline is enough.
    #[test]
    fn without_the_staged_copy_a_half_line_is_still_cut() {
        let (_tmp, journal, dest, staged) = setup();
        let intent = intent(&dest, &staged);
        journal.record(&intent).unwrap();
        std::fs::remove_file(&staged).unwrap();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&dest)
            .unwrap()
            .write_all(b"{\"b")
            .unwrap();
        assert!(matches!(
            journal.recover(&Writers::default())[0],
            Recovered::RolledBack { .. }
        ));
        assert_eq!(std::fs::read(&dest).unwrap(), b"{\"a\":1}\n");
        // Whole lines that are not ours (the client wrote after a finished
        // append) are never cut.
        journal.record(&intent).unwrap();
        std::fs::write(&dest, b"{\"a\":1}\n{\"x\":0}\n").unwrap();
        assert!(!matches!(
            journal.recover(&Writers::default())[0],
            Recovered::RolledBack { .. }
        ));
        assert_eq!(std::fs::read(&dest).unwrap(), b"{\"a\":1}\n{\"x\":0}\n");
    }

    #[test]
    fn a_finished_append_and_a_replaced_file_are_left_alone() {
        let (_tmp, journal, dest, staged) = setup();
        let intent = intent(&dest, &staged);
        journal.record(&intent).unwrap();
        std::fs::copy(&staged, &dest).unwrap();
        assert_eq!(
            journal.recover(&Writers::default()),
            [Recovered::Complete(dest.clone())]
        );
        #[cfg(unix)]
        {
            journal.record(&intent).unwrap();
            let other = dest.with_extension("new");
            std::fs::write(&other, b"{\"a\":1}\n{\"b").unwrap();
            std::fs::rename(&other, &dest).unwrap();
            assert!(matches!(
                journal.recover(&Writers::default())[0],
                Recovered::Unexplained { .. }
            ));
            assert_eq!(std::fs::read(&dest).unwrap(), b"{\"a\":1}\n{\"b");
        }
    }
}
