//! From local transcripts to bundles in a transport.

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
    pub failed: Vec<(SessionId, SessionError)>,
}

/// Bundles every session into `staging`, then stores them all in one batch.
pub fn push(
    transport: &dyn Transport,
    staging: &Path,
    sessions: &[(LocalSession, Placement)],
    machine: &MachineName,
    now_ms: u64,
) -> Result<PushReport, TransportError> {
    let mut report = PushReport::default();
    let mut batch = Vec::new();
    for (session, placement) in sessions {
        let id = session.file.id.clone();
        let staged = make_bundle(session, placement, machine, now_ms).and_then(|out| {
            let file = staging.join(format!("{id}.ccsync"));
            let write_err = |source| SessionError::Write {
                path: file.clone(),
                source,
            };
            let bytes = out
                .bundle
                .to_bytes()
                .map_err(|source| SessionError::Bundle {
                    path: out.source.clone(),
                    source,
                })?;
            fsutil::write_atomic_bytes(&file, &bytes).map_err(write_err)?;
            Ok((out, file))
        });
        match staged {
            Ok((out, file)) => {
                let object = ObjectName::for_session(&placement.key, &id, machine);
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
            Err(e) => report.failed.push((id, e)),
        }
    }
    transport.store(&batch)?;
    Ok(report)
}
