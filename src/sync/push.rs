//! From local transcripts to bundles in a transport.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use super::{Received, SessionError, receive};
use crate::bundle::{self, Body, Meta};
use crate::claude::sessions::LocalSession;
use crate::claude::transcript;
use crate::fsutil;
use crate::names::{MachineName, SessionId};
use crate::project::{Placement, ProjectKey};
use crate::transport::{ObjectName, Transport, TransportError};

/// A session ready to be packed: its complete lines, as found on disk.
#[derive(Debug)]
pub struct Outgoing {
    pub meta: Meta,
    pub source: PathBuf,
    /// Bytes up to the last `\n`: what travels.
    pub len: u64,
    /// Bytes of a line Claude Code was still writing, left behind.
    pub partial_tail: u64,
}

/// Finds how much of a session's transcript is complete, without reading it.
pub fn prepare(
    session: &LocalSession,
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
    })
}

impl Outgoing {
    /// Streams the bundle to `out`, reading the transcript once.
    pub fn write(&self, out: &mut impl Write) -> Result<Body, SessionError> {
        let read_err = |source| SessionError::Read {
            path: self.source.clone(),
            source,
        };
        let mut file = File::open(&self.source).map_err(read_err)?;
        bundle::write(&self.meta, &mut file, self.len, out).map_err(|e| match e {
            bundle::BundleError::Io(source) => read_err(source),
            source => SessionError::Bundle {
                path: self.source.clone(),
                source,
            },
        })
    }

    /// Writes the bundle to a private file, atomically.
    pub fn write_file(&self, dest: &Path) -> Result<Body, SessionError> {
        let mut body = None;
        let mut failure = None;
        let written = fsutil::write_atomic(dest, |f| {
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
}

#[derive(Debug, Default)]
pub struct PushReport {
    pub pushed: Vec<Pushed>,
    /// Already in the transport exactly as they are here.
    pub unchanged: Vec<SessionId>,
    pub failed: Vec<(SessionId, SessionError)>,
}

/// Bundles every session into `staging`, then stores them all in one batch.
///
/// This machine's earlier copy of a session is only ever replaced by one
/// that extends it, unless `force`: a transcript that shrank or was rewritten
/// here would otherwise take lines away from every other machine.
pub fn push(
    transport: &dyn Transport,
    staging: &Path,
    sessions: &[(LocalSession, Placement)],
    machine: &MachineName,
    now_ms: u64,
    force: bool,
) -> Result<PushReport, TransportError> {
    let names: Vec<ObjectName> = sessions
        .iter()
        .map(|(s, p)| ObjectName::for_session(&p.key, &s.file.id, machine))
        .collect();
    let present: HashSet<ObjectName> = transport.list()?.into_iter().map(|o| o.name).collect();
    let earlier = fetch_earlier(transport, staging, &names, &present)?;

    let mut report = PushReport::default();
    let mut batch = Vec::new();
    for ((session, placement), object) in sessions.iter().zip(names) {
        let id = session.file.id.clone();
        let out = match prepare(session, placement, machine, now_ms) {
            Ok(out) => out,
            Err(e) => {
                report.failed.push((id, e));
                continue;
            }
        };
        if let Some(Some(before)) = earlier.get(&object) {
            match compare(&out, before) {
                Ok(Earlier::Same) => {
                    report.unchanged.push(id);
                    continue;
                }
                Ok(Earlier::Extended) => {}
                Ok(Earlier::Rewound) if !force => {
                    report.failed.push((
                        id.clone(),
                        SessionError::WouldRewind {
                            id,
                            pushed_lines: before.body.lines,
                            local_lines: transcript::count_lines_of(&out.source, out.len)
                                .unwrap_or(0),
                        },
                    ));
                    continue;
                }
                Ok(Earlier::Rewound) => {}
                Err(e) => {
                    report.failed.push((id, e));
                    continue;
                }
            }
        }
        let file = staging.join(format!("{id}.ccsync"));
        let body = match out.write_file(&file) {
            Ok(body) => body,
            Err(e) => {
                report.failed.push((id, e));
                continue;
            }
        };
        report.pushed.push(Pushed {
            id,
            key: placement.key.clone(),
            object: object.clone(),
            bytes: body.len,
            lines: body.lines,
            partial_tail: out.partial_tail,
        });
        batch.push((object, file));
    }
    if !batch.is_empty() {
        transport.store(&batch)?;
    }
    Ok(report)
}

enum Earlier {
    Same,
    Extended,
    Rewound,
}

/// How what is here relates to what this machine pushed before.
fn compare(out: &Outgoing, before: &Received) -> Result<Earlier, SessionError> {
    let same_place = before.meta.original_cwd == out.meta.original_cwd
        && before.meta.relative_cwd == out.meta.relative_cwd;
    let prefix = out.len >= before.body.len
        && transcript::same_prefix(&out.source, &before.transcript, before.body.len).map_err(
            |source| SessionError::Read {
                path: out.source.clone(),
                source,
            },
        )?;
    Ok(match (prefix, out.len == before.body.len && same_place) {
        (true, true) => Earlier::Same,
        (true, false) => Earlier::Extended,
        (false, _) => Earlier::Rewound,
    })
}

/// This machine's copies already in the transport, unpacked; `None` for one
/// that does not decode (it may then be replaced: it is ours, and broken).
fn fetch_earlier(
    transport: &dyn Transport,
    staging: &Path,
    names: &[ObjectName],
    present: &HashSet<ObjectName>,
) -> Result<HashMap<ObjectName, Option<Received>>, TransportError> {
    let wanted: Vec<ObjectName> = names
        .iter()
        .filter(|n| present.contains(*n))
        .cloned()
        .collect();
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let dir = staging.join("earlier");
    fsutil::create_private_dir_all(&dir).map_err(|source| TransportError::Io {
        action: "create",
        path: dir.clone(),
        source,
    })?;
    let files = transport.fetch(&wanted, &dir)?;
    Ok(wanted
        .into_iter()
        .zip(files)
        .enumerate()
        .map(|(i, (name, file))| {
            let received = receive(&file, &dir.join(format!("{i}.jsonl.tmp"))).ok();
            (name, received)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Bundle;
    use crate::claude::sessions::SessionFile;
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

    #[test]
    fn pushes_then_skips_unchanged_then_refuses_to_rewind() {
        let tmp = tempfile::tempdir().unwrap();
        let t = MemoryTransport::new();
        let m = MachineName::parse("me").unwrap();
        let s = [session(tmp.path(), b"{\"a\":1}\n{\"b\":2}\n{\"partial")];
        let r = push(&t, tmp.path(), &s, &m, 1, false).unwrap();
        assert_eq!(r.pushed[0].lines, 2);
        assert_eq!(r.pushed[0].partial_tail, 9);
        let stored = t.get(&r.pushed[0].object).unwrap();
        assert_eq!(
            Bundle::decode(&stored).unwrap().transcript,
            b"{\"a\":1}\n{\"b\":2}\n"
        );

        let r = push(&t, tmp.path(), &s, &m, 2, false).unwrap();
        assert_eq!((r.pushed.len(), r.unchanged.len()), (0, 1));

        let s = [session(tmp.path(), b"{\"a\":1}\n")];
        let r = push(&t, tmp.path(), &s, &m, 3, false).unwrap();
        assert!(matches!(
            r.failed[0].1,
            SessionError::WouldRewind {
                pushed_lines: 2,
                local_lines: 1,
                ..
            }
        ));
        assert_eq!(
            t.get(&ObjectName::for_session(&s[0].1.key, &s[0].0.file.id, &m))
                .unwrap(),
            stored
        );
        let r = push(&t, tmp.path(), &s, &m, 4, true).unwrap();
        assert_eq!(r.pushed.len(), 1);
    }

    #[test]
    fn nothing_complete_is_nothing_to_push() {
        let tmp = tempfile::tempdir().unwrap();
        let t = MemoryTransport::new();
        let m = MachineName::parse("me").unwrap();
        let r = push(
            &t,
            tmp.path(),
            &[session(tmp.path(), b"{\"half")],
            &m,
            1,
            false,
        )
        .unwrap();
        assert!(matches!(r.failed[0].1, SessionError::NoCompleteLine { .. }));
        assert!(t.names().is_empty());
    }
}
