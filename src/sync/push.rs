//! From local transcripts to bundles in a transport.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};

use super::SessionError;
use crate::bundle::{Bundle, MAX_BUNDLE_BYTES};
use crate::claude::sessions::LocalSession;
use crate::claude::transcript;
use crate::fsutil;
use crate::names::{MachineName, SessionId};
use crate::project::{Placement, ProjectKey};
use crate::transport::{ObjectName, Transport, TransportError};

/// A bundle made from a local transcript.
#[derive(Debug)]
pub struct Outgoing {
    pub bundle: Bundle,
    /// Bytes of a line Claude Code was still writing, left behind.
    pub partial_tail: u64,
    pub source: PathBuf,
}

/// Packs the complete lines of a session's transcript, as bytes.
pub fn make_bundle(
    session: &LocalSession,
    placement: &Placement,
    machine: &MachineName,
    now_ms: u64,
) -> Result<Outgoing, SessionError> {
    let path = &session.file.path;
    let mut bytes =
        fsutil::read_capped(path, MAX_BUNDLE_BYTES).map_err(|source| SessionError::Read {
            path: path.clone(),
            source,
        })?;
    let complete = transcript::complete_len(&bytes);
    if complete == 0 {
        return Err(SessionError::NoCompleteLine { path: path.clone() });
    }
    let partial_tail = (bytes.len() - complete) as u64;
    bytes.truncate(complete);
    if std::str::from_utf8(&bytes).is_err() {
        return Err(SessionError::Bundle {
            path: path.clone(),
            source: crate::bundle::BundleError::NotUtf8,
        });
    }
    Ok(Outgoing {
        bundle: Bundle {
            version: crate::bundle::CURRENT_VERSION,
            session_id: session.file.id.clone(),
            project_key: placement.key.clone(),
            original_cwd: session.cwd.clone(),
            relative_cwd: Some(placement.relative.clone()),
            machine: machine.clone(),
            exported_at_ms: now_ms,
            line_count: transcript::count_lines(&bytes),
            transcript: bytes,
        },
        partial_tail,
        source: path.clone(),
    })
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
        let out = match make_bundle(session, placement, machine, now_ms) {
            Ok(out) => out,
            Err(e) => {
                report.failed.push((id, e));
                continue;
            }
        };
        if let Some(Some(before)) = earlier.get(&object) {
            let same_place = before.original_cwd == out.bundle.original_cwd
                && before.relative_cwd == out.bundle.relative_cwd;
            if before.transcript == out.bundle.transcript && same_place {
                report.unchanged.push(id);
                continue;
            }
            if !out.bundle.transcript.starts_with(&before.transcript) && !force {
                report.failed.push((
                    id.clone(),
                    SessionError::WouldRewind {
                        id,
                        pushed_lines: before.line_count,
                        local_lines: out.bundle.line_count,
                    },
                ));
                continue;
            }
        }
        let file = staging.join(format!("{id}.ccsync"));
        let staged = out
            .bundle
            .to_bytes()
            .map_err(|source| SessionError::Bundle {
                path: out.source.clone(),
                source,
            })
            .and_then(|bytes| {
                fsutil::write_atomic_bytes(&file, &bytes).map_err(|source| SessionError::Write {
                    path: file.clone(),
                    source,
                })
            });
        if let Err(e) = staged {
            report.failed.push((id, e));
            continue;
        }
        report.pushed.push(Pushed {
            id,
            key: placement.key.clone(),
            object: object.clone(),
            bytes: out.bundle.transcript.len() as u64,
            lines: out.bundle.line_count,
            partial_tail: out.partial_tail,
        });
        batch.push((object, file));
    }
    if !batch.is_empty() {
        transport.store(&batch)?;
    }
    Ok(report)
}

/// This machine's copies already in the transport, decoded; `None` for one
/// that does not decode (it may then be replaced: it is ours, and broken).
fn fetch_earlier(
    transport: &dyn Transport,
    staging: &Path,
    names: &[ObjectName],
    present: &HashSet<ObjectName>,
) -> Result<HashMap<ObjectName, Option<Bundle>>, TransportError> {
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
        .map(|(name, file)| {
            let bundle = std::fs::read(&file)
                .ok()
                .and_then(|b| Bundle::decode(&b).ok());
            (name, bundle)
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
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
