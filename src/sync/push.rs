//! From local transcripts to bundles in a transport.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::plan::{self, Earlier, PushAction};
use super::scan::{SecretScan, Secrets};
use super::{Link, Received, SessionError, receive};
use crate::bundle::{self, Body, Meta, OutPart, PartData};
use crate::claude::parts::{PartFinder, Parts};
use crate::claude::sessions::LocalSession;
use crate::claude::transcript;
use crate::fsutil;
use crate::index::{self, Stamp};
use crate::names::{MachineName, SessionId};
use crate::project::{Placement, ProjectKey};
use crate::transport::{ObjectName, PerObject, Transport, TransportError};

/// A session ready to be packed: its complete lines, as found on disk.
#[derive(Debug)]
pub struct Outgoing {
    pub meta: Meta,
    pub source: PathBuf,
    /// Bytes up to the last `\n`: what travels.
    pub len: u64,
    /// Bytes of a line Claude Code was still writing, left behind.
    pub partial_tail: u64,
    /// The side files that travel with it.
    pub parts: Vec<OutPart>,
    /// Their paths and stamps, for the index.
    pub part_stamps: Vec<(String, Stamp)>,
    /// Side files left behind, and why.
    pub skipped_parts: Vec<(PathBuf, String)>,
}

/// Finds how much of a session's transcript and side files is complete,
/// reading only the ends of transcripts.
pub fn prepare(
    session: &LocalSession,
    parts: Parts,
    placement: &Placement,
    machine: &MachineName,
    now_ms: u64,
) -> Result<Outgoing, SessionError> {
    let path = &session.file.path;
    let read_err = |source| SessionError::Read {
        path: path.clone(),
        source,
    };
    let (len, total) =
        transcript::complete_len_of(&mut File::open(path).map_err(read_err)?).map_err(read_err)?;
    if len == 0 {
        return Err(SessionError::NoCompleteLine { path: path.clone() });
    }
    if len > bundle::MAX_BUNDLE_BYTES {
        return Err(SessionError::Bundle {
            path: path.clone(),
            source: bundle::BundleError::TooLarge,
        });
    }
    let part_stamps = parts.stamps();
    let mut skipped_parts = parts.skipped;
    // Each side file with the room it takes in the bundle, at most (base64
    // is 4/3 of the bytes).
    let mut sized = Vec::with_capacity(parts.found.len());
    for part in parts.found {
        // A subagent transcript travels up to its last complete line, like
        // the session's own; other side files are written whole.
        let len = if part.path.appended() {
            match File::open(&part.file).and_then(|mut f| transcript::complete_len_of(&mut f)) {
                Ok((len, _)) => Some(len),
                Err(e) => {
                    skipped_parts.push((part.file, e.to_string()));
                    continue;
                }
            }
        } else {
            None
        };
        let room = len.unwrap_or(part.stamp.size) / 3 * 4 + 512;
        sized.push((room, part.path, len, part.file));
    }
    // A bundle over the limit would be refused by every reader: the
    // largest side files stay behind instead, named (a transcript's
    // escaping rarely adds a quarter).
    sized.sort_by_key(|(room, ..)| *room);
    let mut planned = len + len / 4 + 4096;
    let mut out_parts = Vec::with_capacity(sized.len());
    for (room, path, len, file) in sized {
        planned += room;
        if planned > bundle::MAX_BUNDLE_BYTES {
            skipped_parts.push((
                file,
                format!(
                    "the bundle would pass the {} MiB limit",
                    bundle::MAX_BUNDLE_BYTES >> 20
                ),
            ));
            continue;
        }
        out_parts.push(OutPart {
            path,
            len,
            data: PartData::File(file),
        });
    }
    out_parts.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Outgoing {
        meta: Meta {
            version: bundle::CURRENT_VERSION,
            session_id: session.file.id.clone(),
            project_key: placement.key.clone(),
            original_cwd: session.cwd.clone(),
            relative_cwd: Some(placement.relative.clone()),
            machine: machine.clone(),
            exported_at_ms: now_ms,
        },
        source: path.clone(),
        len,
        partial_tail: total - len,
        parts: out_parts,
        part_stamps,
        skipped_parts,
    })
}

impl Outgoing {
    /// Streams the bundle to `out`, reading the transcript once.
    pub fn write(&self, out: &mut (impl Write + Send)) -> Result<Body, SessionError> {
        let read_err = |source| SessionError::Read {
            path: self.source.clone(),
            source,
        };
        let mut file = File::open(&self.source).map_err(read_err)?;
        bundle::write(&self.meta, &mut file, self.len, &self.parts, out)
            .map(|(body, _)| body)
            .map_err(|e| match e {
                bundle::BundleError::Io(source) => read_err(source),
                source => SessionError::Bundle {
                    path: self.source.clone(),
                    source,
                },
            })
    }

    /// Writes the bundle to a private file, atomically (not fsynced: it is
    /// a staging copy or an export, and the transcript is still here).
    pub fn write_file(&self, dest: &Path) -> Result<Body, SessionError> {
        let mut body = None;
        let mut failure = None;
        let written = fsutil::write_replace(dest, |f| {
            let mut out = BufWriter::with_capacity(1 << 16, f);
            match self.write(&mut out) {
                Ok(b) => body = Some(b),
                Err(e) => {
                    failure = Some(e);
                    return Err(std::io::Error::other("bundle not written"));
                }
            }
            out.flush()
        });
        if let Some(e) = failure {
            return Err(e);
        }
        written.map_err(|source| SessionError::Write {
            path: dest.to_path_buf(),
            source,
        })?;
        Ok(body.expect("written"))
    }
}

#[derive(Debug, Clone)]
pub struct Pushed {
    pub id: SessionId,
    pub key: ProjectKey,
    pub object: ObjectName,
    pub bytes: u64,
    pub lines: u64,
    pub partial_tail: u64,
    /// Side files carried, and those left behind with why.
    pub parts: usize,
    pub skipped_parts: Vec<(PathBuf, String)>,
    /// Credentials found in what was sent (it was sent all the same).
    pub secrets: Secrets,
}

#[derive(Debug, Default)]
pub struct PushReport {
    pub pushed: Vec<Pushed>,
    /// Already in the transport exactly as they are here.
    pub unchanged: Vec<SessionId>,
    pub failed: Vec<(SessionId, SessionError)>,
}

/// What is known of this machine's earlier copy of a session.
enum Before {
    /// None in the transport.
    Absent,
    /// The index vouches for the copy in the transport, and the source has
    /// not changed since: nothing to read, nothing to do.
    Unchanged,
    /// The index knows what was pushed (length and hash) and the copy in the
    /// transport is still that one; the source changed.
    Indexed(index::Pushed),
    /// Only fetching the copy can tell.
    Unknown,
    /// A pull made the transcript equal to another machine's copy, which is
    /// still in the transport, and nothing changed here since: that copy
    /// already holds it.
    HeldElsewhere,
}

/// Bundles every session into `staging`, then stores them all in one batch.
///
/// This machine's earlier copy of a session is only ever replaced by one
/// that extends it, unless `force`: a transcript that shrank or was rewritten
/// here would otherwise take lines away from every other machine. The index
/// spares reading sessions that did not change and fetching copies it knows.
pub fn push(
    link: &mut Link,
    finder: &PartFinder,
    sessions: &[(LocalSession, Placement)],
    now_ms: u64,
    force: bool,
    scan: SecretScan,
) -> Result<PushReport, TransportError> {
    let Link {
        transport,
        staging,
        machine,
        ref mut index,
        progress,
    } = *link;
    let names: Vec<ObjectName> = sessions
        .iter()
        .map(|(s, p)| ObjectName::for_session(&p.key, &s.file.id, machine))
        .collect();
    let listing: HashMap<ObjectName, Stamp> = transport
        .list()?
        .objects
        .into_iter()
        .map(|o| (o.name, Stamp::new(o.size, o.modified)))
        .collect();
    let mut parts: Vec<Option<Parts>> = sessions
        .iter()
        .map(|(s, _)| {
            let dir = s.file.path.parent().unwrap_or(Path::new("."));
            Some(finder.find(dir, &s.file.id))
        })
        .collect();
    let covered = index.covered();
    let listed: HashMap<String, Stamp> = listing.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    // Only this transcript need be as that pull left it: the record's other
    // files may have changed since (another group's pull wrote them).
    let held_elsewhere = |session: &LocalSession| {
        let path = session.file.path.as_path();
        covered.get(path).is_some_and(|p| {
            super::plan::held_elsewhere(
                true,
                p.objects.iter().all(|(n, s)| listed.get(n) == Some(s)),
                p.files
                    .iter()
                    .any(|(f, stamp)| f == path && *stamp == Stamp::of(path)),
            )
        })
    };
    let before: Vec<Before> = sessions
        .iter()
        .zip(&names)
        .zip(&parts)
        .map(|(((session, placement), object), parts)| {
            let Some(remote) = listing.get(object) else {
                return if held_elsewhere(session) {
                    Before::HeldElsewhere
                } else {
                    Before::Absent
                };
            };
            match index.pushed.get(&object.to_string()) {
                Some(p) if p.remote == *remote => {
                    let same_source = p.source == session.file.path
                        && p.source_stamp
                            == Stamp::new(session.file.size, Some(session.file.modified))
                        && p.original_cwd == session.cwd
                        && p.relative_cwd == placement.relative.as_str()
                        && parts.as_ref().is_some_and(|x| p.parts == x.stamps());
                    if same_source {
                        Before::Unchanged
                    } else if held_elsewhere(session) {
                        Before::HeldElsewhere
                    } else {
                        Before::Indexed(p.clone())
                    }
                }
                _ if held_elsewhere(session) => Before::HeldElsewhere,
                _ => Before::Unknown,
            }
        })
        .collect();
    let unknown: Vec<ObjectName> = names
        .iter()
        .zip(&before)
        .filter(|(_, b)| matches!(b, Before::Unknown))
        .map(|(n, _)| n.clone())
        .collect();
    let mut fetched = fetch_earlier(transport, staging, &unknown)?;

    let mut report = PushReport::default();
    let mut batch = Vec::new();
    let mut pending = HashMap::new();
    progress.start(sessions.len() as u64);
    for ((((session, placement), object), before), parts) in
        sessions.iter().zip(names).zip(before).zip(&mut parts)
    {
        progress.step();
        let id = session.file.id.clone();
        if matches!(before, Before::Unchanged | Before::HeldElsewhere) {
            report.unchanged.push(id);
            continue;
        }
        let parts = parts.take().unwrap_or_default();
        let out = match prepare(session, parts, placement, machine, now_ms) {
            Ok(out) => out,
            Err(e) => {
                report.failed.push((id, e));
                continue;
            }
        };
        let source_stamp = Stamp::new(session.file.size, Some(session.file.modified));
        // How the source relates to the earlier copy, with that copy's
        // length and hash and the transport's stamp of it.
        let earlier = match before {
            Before::Absent | Before::Unchanged | Before::HeldElsewhere => Ok(None),
            Before::Indexed(p) => {
                compare_indexed(&out, &p).map(|r| Some((r, p.len, p.sha256, p.remote)))
            }
            Before::Unknown => match fetched.remove(&object) {
                Some(Ok(Some(received))) => compare(&out, &received)
                    .map(|r| Some((r, received.body.len, received.body.sha256, listing[&object]))),
                // Unread, it cannot be shown that the new copy extends it.
                Some(Err(reason)) => Err(SessionError::Store {
                    object: format!("{}/{object}", transport.location()),
                    reason: format!(
                        "this machine's copy there cannot be read to check that the new one extends it ({reason}); it was left as it is"
                    ),
                }),
                // Ours, and it does not decode: it may be replaced.
                _ => Ok(None),
            },
        };
        let earlier = match earlier {
            Ok(e) => e,
            Err(e) => {
                report.failed.push((id, e));
                continue;
            }
        };
        match plan::push_action(earlier.as_ref().map(|e| e.0), force) {
            PushAction::Send => {}
            PushAction::Unchanged => {
                let (_, len, sha256, remote) = earlier.expect("an earlier copy");
                index.set_pushed(
                    object.to_string(),
                    record(&out, source_stamp, len, sha256, remote),
                );
                report.unchanged.push(id);
                continue;
            }
            PushAction::Refuse => {
                let (_, len, ..) = earlier.expect("an earlier copy");
                report.failed.push((
                    id.clone(),
                    SessionError::WouldRewind {
                        id,
                        pushed_bytes: len,
                        local_bytes: out.len,
                    },
                ));
                continue;
            }
        }
        let secrets = match scan {
            SecretScan::Off => Secrets::default(),
            SecretScan::Warn | SecretScan::Refuse => match super::scan::outgoing(&out) {
                Ok(found) => found,
                Err(e) => {
                    report.failed.push((id, e));
                    continue;
                }
            },
        };
        if scan == SecretScan::Refuse && !secrets.is_empty() {
            report
                .failed
                .push((id.clone(), SessionError::HoldsSecrets { id, secrets }));
            continue;
        }
        let file = staging.join(format!("{id}.ccsync"));
        let body = match out.write_file(&file) {
            Ok(body) => body,
            Err(e) => {
                report.failed.push((id, e));
                continue;
            }
        };
        let pushed = Pushed {
            id,
            key: placement.key.clone(),
            object: object.clone(),
            bytes: body.len,
            lines: body.lines,
            partial_tail: out.partial_tail,
            parts: out.parts.len(),
            skipped_parts: out.skipped_parts.clone(),
            secrets,
        };
        pending.insert(object.clone(), (out, source_stamp, body, pushed));
        batch.push((object, file));
    }
    if !batch.is_empty() {
        for ((name, _), stored) in batch.iter().zip(transport.store(&batch)?) {
            let Some((out, source_stamp, body, pushed)) = pending.remove(name) else {
                continue;
            };
            match stored {
                Ok(stored) => {
                    let remote = Stamp::new(stored.size, stored.modified);
                    let entry = record(&out, source_stamp, body.len, body.sha256, remote);
                    index.set_pushed(stored.name.to_string(), entry);
                    report.pushed.push(pushed);
                }
                Err(reason) => report.failed.push((
                    pushed.id,
                    SessionError::Store {
                        object: format!("{}/{name}", transport.location()),
                        reason,
                    },
                )),
            }
        }
    }
    // Leftovers of a killed push of this machine's go now, wherever they
    // are (a store only looks in the folders it writes to); failing to is
    // harmless.
    let _ = transport.remove_own_temps();
    Ok(report)
}

fn record(
    out: &Outgoing,
    source_stamp: Stamp,
    len: u64,
    sha256: String,
    remote: Stamp,
) -> index::Pushed {
    index::Pushed {
        source: out.source.clone(),
        source_stamp,
        len,
        sha256,
        original_cwd: out.meta.original_cwd.clone(),
        relative_cwd: out
            .meta
            .relative_cwd
            .as_ref()
            .map_or("", |r| r.as_str())
            .to_owned(),
        parts: out.part_stamps.clone(),
        remote,
    }
}

/// How what is here relates to what this machine pushed before.
fn compare(out: &Outgoing, before: &Received) -> Result<Earlier, SessionError> {
    let same_place = before.meta.original_cwd == out.meta.original_cwd
        && before.meta.relative_cwd == out.meta.relative_cwd
        && same_parts(out, before)?;
    let prefix = out.len >= before.body.len
        && transcript::same_prefix(&out.source, &before.transcript, before.body.len).map_err(
            |source| SessionError::Read {
                path: out.source.clone(),
                source,
            },
        )?;
    Ok(plan::earlier(
        prefix,
        out.len == before.body.len && same_place,
    ))
}

/// Whether the earlier copy carries exactly the side files that would go now.
fn same_parts(out: &Outgoing, before: &Received) -> Result<bool, SessionError> {
    if out.parts.len() != before.parts.len() {
        return Ok(false);
    }
    for (mine, theirs) in out.parts.iter().zip(&before.parts) {
        let PartData::File(file) = &mine.data else {
            return Ok(false);
        };
        let read_err = |source| SessionError::Read {
            path: file.clone(),
            source,
        };
        let len = match mine.len {
            Some(len) => len,
            None => std::fs::metadata(file).map_err(read_err)?.len(),
        };
        if mine.path != theirs.path || len != theirs.len {
            return Ok(false);
        }
        let sha256 = transcript::sha256_of_prefix(file, len).map_err(read_err)?;
        if sha256 != theirs.sha256 {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The same, from what the index recorded: the hash of the pushed prefix.
fn compare_indexed(out: &Outgoing, pushed: &index::Pushed) -> Result<Earlier, SessionError> {
    let same_place = pushed.original_cwd == out.meta.original_cwd
        && out.meta.relative_cwd.as_ref().map_or("", |r| r.as_str()) == pushed.relative_cwd
        && pushed.parts == out.part_stamps;
    let prefix = out.len >= pushed.len
        && transcript::sha256_of_prefix(&out.source, pushed.len).map_err(|source| {
            SessionError::Read {
                path: out.source.clone(),
                source,
            }
        })? == pushed.sha256;
    Ok(plan::earlier(prefix, out.len == pushed.len && same_place))
}

/// This machine's copies already in the transport, unpacked; `None` for one
/// that does not decode (it may then be replaced: it is ours, and broken).
fn fetch_earlier(
    transport: &dyn Transport,
    staging: &Path,
    wanted: &[ObjectName],
) -> Result<HashMap<ObjectName, PerObject<Option<Received>>>, TransportError> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let dir = staging.join("earlier");
    fsutil::create_private_dir_all(&dir).map_err(|source| TransportError::Io {
        action: "create",
        path: dir.clone(),
        source,
    })?;
    let mut decoded: HashMap<usize, Option<Received>> = HashMap::new();
    let delivered = transport.fetch(wanted, &mut |i, input| {
        decoded.insert(i, receive(input, &dir.join(format!("{i}.jsonl.tmp"))).ok());
    })?;
    Ok(wanted
        .iter()
        .cloned()
        .zip(delivered)
        .enumerate()
        .map(|(i, (name, delivered))| (name, delivered.map(|()| decoded.remove(&i).flatten())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Bundle;
    use crate::claude::sessions::SessionFile;
    use crate::index::Index;
    use crate::names::RelPath;
    use crate::transport::memory::MemoryTransport;

    fn session(dir: &Path, bytes: &[u8]) -> (LocalSession, Placement) {
        let path = dir.join("5c0375b4-57a5-4f26-b12d-d022ee4e51b7.jsonl");
        std::fs::write(&path, bytes).unwrap();
        let file = SessionFile {
            id: SessionId::parse("5c0375b4-57a5-4f26-b12d-d022ee4e51b7").unwrap(),
            dir_name: "-w".into(),
            path,
            size: bytes.len() as u64,
            modified: std::time::SystemTime::now(),
        };
        let placement = Placement {
            key: ProjectKey::parse("git:example.org/w").unwrap(),
            root: "/w".into(),
            relative: RelPath::default(),
        };
        (
            LocalSession {
                file,
                cwd: "/w".into(),
            },
            placement,
        )
    }

    fn run(
        t: &MemoryTransport,
        dir: &Path,
        s: &[(LocalSession, Placement)],
        m: &MachineName,
        force: bool,
        index: &mut Index,
    ) -> PushReport {
        let mut link = Link {
            transport: t,
            staging: dir,
            machine: m,
            index,
            progress: &crate::sync::Quiet,
        };
        let home = crate::claude::ClaudeHome::resolve(Some(dir.join("claude").into()), None, None)
            .unwrap();
        push(
            &mut link,
            &PartFinder::new(&home),
            s,
            1,
            force,
            SecretScan::Warn,
        )
        .unwrap()
    }

    #[test]
    fn pushes_then_skips_unchanged_then_refuses_to_rewind() {
        let tmp = tempfile::tempdir().unwrap();
        let t = MemoryTransport::new();
        let m = MachineName::parse("me").unwrap();
        let s = [session(tmp.path(), b"{\"a\":1}\n{\"b\":2}\n{\"partial")];
        let r = run(&t, tmp.path(), &s, &m, false, &mut Index::default());
        assert_eq!(r.pushed[0].lines, 2);
        assert_eq!(r.pushed[0].partial_tail, 9);
        let stored = t.get(&r.pushed[0].object).unwrap();
        assert_eq!(
            Bundle::decode(&stored).unwrap().transcript,
            b"{\"a\":1}\n{\"b\":2}\n"
        );

        let r = run(&t, tmp.path(), &s, &m, false, &mut Index::default());
        assert_eq!((r.pushed.len(), r.unchanged.len()), (0, 1));

        let s = [session(tmp.path(), b"{\"a\":1}\n")];
        let r = run(&t, tmp.path(), &s, &m, false, &mut Index::default());
        assert!(matches!(
            r.failed[0].1,
            SessionError::WouldRewind {
                pushed_bytes: 16,
                local_bytes: 8,
                ..
            }
        ));
        assert_eq!(
            t.get(&ObjectName::for_session(&s[0].1.key, &s[0].0.file.id, &m))
                .unwrap(),
            stored
        );
        let r = run(&t, tmp.path(), &s, &m, true, &mut Index::default());
        assert_eq!(r.pushed.len(), 1);
    }

    /// With an index, an unchanged session is not even opened, and a grown
    /// or rewritten one is judged by the hash of what was pushed.
    #[test]
    fn the_index_spares_reading_and_fetching() {
        let tmp = tempfile::tempdir().unwrap();
        let t = MemoryTransport::new();
        let m = MachineName::parse("me").unwrap();
        let mut index = Index::default();
        let s = [session(tmp.path(), b"{\"a\":1}\n")];
        assert_eq!(
            run(&t, tmp.path(), &s, &m, false, &mut index).pushed.len(),
            1
        );
        // Unreadable now: only the index can say it is unchanged.
        let hidden = tmp.path().join("hidden");
        std::fs::rename(&s[0].0.file.path, &hidden).unwrap();
        let r = run(&t, tmp.path(), &s, &m, false, &mut index);
        assert_eq!((r.unchanged.len(), r.failed.len()), (1, 0));
        std::fs::rename(&hidden, &s[0].0.file.path).unwrap();

        let grown = [session(tmp.path(), b"{\"a\":1}\n{\"b\":2}\n")];
        assert_eq!(
            run(&t, tmp.path(), &grown, &m, false, &mut index)
                .pushed
                .len(),
            1
        );
        let rewritten = [session(tmp.path(), b"{\"a\":9}\n{\"b\":2}\n{\"c\":3}\n")];
        let r = run(&t, tmp.path(), &rewritten, &m, false, &mut index);
        assert!(matches!(r.failed[0].1, SessionError::WouldRewind { .. }));
    }

    /// Side files that would take the bundle past the limit stay behind,
    /// largest first, and are named; the session still travels.
    #[test]
    fn side_files_past_the_bundle_limit_stay_behind() {
        use crate::claude::parts::LocalPart;
        use crate::names::PartPath;
        let tmp = tempfile::tempdir().unwrap();
        let (s, placement) = session(tmp.path(), b"{\"a\":1}\n");
        let small = tmp.path().join("small");
        std::fs::write(&small, b"x").unwrap();
        let huge = tmp.path().join("huge");
        let f = File::create(&huge).unwrap();
        f.set_len(bundle::MAX_BUNDLE_BYTES).unwrap(); // sparse
        let part = |path: &str, file: &Path| LocalPart {
            path: PartPath::parse(path).unwrap(),
            file: file.to_path_buf(),
            stamp: Stamp::of(file).unwrap(),
        };
        let parts = Parts {
            found: vec![
                part("file-history/huge@v1", &huge),
                part("file-history/small@v1", &small),
            ],
            skipped: Vec::new(),
        };
        let m = MachineName::parse("me").unwrap();
        let out = prepare(&s, parts, &placement, &m, 1).unwrap();
        assert_eq!(out.parts.len(), 1);
        assert_eq!(out.parts[0].path.to_string(), "file-history/small@v1");
        assert_eq!(out.skipped_parts.len(), 1);
        assert_eq!(out.skipped_parts[0].0, huge);
        assert!(out.skipped_parts[0].1.contains("limit"));
    }

    #[test]
    fn nothing_complete_is_nothing_to_push() {
        let tmp = tempfile::tempdir().unwrap();
        let t = MemoryTransport::new();
        let m = MachineName::parse("me").unwrap();
        let r = run(
            &t,
            tmp.path(),
            &[session(tmp.path(), b"{\"half")],
            &m,
            false,
            &mut Index::default(),
        );
        assert!(matches!(r.failed[0].1, SessionError::NoCompleteLine { .. }));
        assert!(t.names().is_empty());
    }
}
