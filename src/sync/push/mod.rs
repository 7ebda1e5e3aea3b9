//! From local transcripts to bundles in a transport: [`outgoing`] packs a
//! session, `push` decides with the plan and stores the batch.

mod outgoing;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::plan::{self, Earlier, PushAction};
use super::scan::{SecretScan, Secrets};
use super::{Link, Received, SessionError, receive};
use crate::bundle::PartData;
use crate::claude::parts::{PartFinder, Parts};
use crate::claude::sessions::LocalSession;
use crate::claude::transcript;
use crate::fsutil;
use crate::index::{self, Stamp};
use crate::names::SessionId;
use crate::project::{Placement, ProjectKey};
use crate::transport::{ObjectName, PerObject, Transport, TransportError};

pub use outgoing::{Outgoing, prepare};

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
    /// This machine's copies of sessions it has since moved to another
    /// project (`/cd`), removed once the new copy holds all they held.
    pub moved: Vec<ObjectName>,
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
        layers,
        staging,
        machine,
        ref mut index,
        progress,
    } = *link;
    let names: Vec<ObjectName> = sessions
        .iter()
        .map(|(s, p)| ObjectName::for_session(&p.key, &s.file.id, machine))
        .collect();
    let listed = transport.list()?;
    let has_record = super::encryption::listed(&listed.objects);
    super::encryption::check_layers(transport, layers, has_record, false)?;
    if layers.is_encrypted() && !has_record {
        // Gone (or never written by an older build): say again that this
        // sync dir is encrypted, and to whom.
        let again = super::encryption::Record::new(
            layers
                .recipient_keys()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        );
        let _ = super::encryption::write_record(transport, staging, &again)?;
    }
    let listing: HashMap<ObjectName, Stamp> = listed
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
    // Only this transcript and the copy it equals need be as that pull
    // left them: the record's other files and objects may have changed
    // since (another group's pull wrote them, a machine removed a copy
    // this one's extends).
    let held_elsewhere = |session: &LocalSession| {
        let path = session.file.path.as_path();
        covered.get(path).is_some_and(|records| {
            records.iter().any(|(p, object)| {
                super::plan::held_elsewhere(
                    p.objects
                        .iter()
                        .any(|(n, s)| n == object && listed.get(n) == Some(s)),
                    p.files
                        .iter()
                        .any(|(f, stamp)| f == path && *stamp == Stamp::of(path)),
                )
            })
        })
    };
    let before: Vec<Before> = sessions
        .iter()
        .zip(&names)
        .zip(&parts)
        .map(|(((session, placement), object), parts)| {
            if held_elsewhere(session) {
                return Before::HeldElsewhere;
            }
            let Some(remote) = listing.get(object) else {
                return Before::Absent;
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
                    } else {
                        Before::Indexed(p.clone())
                    }
                }
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
    let mut fetched = fetch_earlier(transport, layers, staging, &unknown)?;

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
        let body = match out.write_file(&file, layers) {
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
    // A session moved to another project here (`/cd`) leaves this
    // machine's copy under the old project's key: once the copy just
    // stored holds all of it (by the length and hash recorded when it was
    // pushed), it is only a second copy of one session.
    let mut moved = Vec::new();
    for p in &report.pushed {
        let source = sessions
            .iter()
            .find(|(s, _)| s.file.id == p.id)
            .map(|(s, _)| &s.file.path);
        for stale in listing.keys().filter(|n| {
            n.dir() != p.object.dir()
                && n.session() == Some((p.id.clone(), machine.clone()))
                && !sessions.iter().any(|(s, pl)| {
                    s.file.id == p.id && crate::transport::layout::key_dir(&pl.key) == n.dir()
                })
        }) {
            let held = index.pushed.get(&stale.to_string()).is_some_and(|e| {
                source.is_some_and(|src| {
                    transcript::sha256_of_prefix(src, e.len).ok().as_deref()
                        == Some(e.sha256.as_str())
                })
            });
            if held {
                moved.push(stale.clone());
            }
        }
    }
    if !moved.is_empty()
        && let Ok(results) = transport.remove(&moved)
    {
        for (name, result) in moved.into_iter().zip(results) {
            if result.is_ok() {
                index.forget_pushed(&name.to_string());
                report.moved.push(name);
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
    layers: &crate::bundle::layers::Layers,
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
        decoded.insert(
            i,
            receive(input, &dir.join(format!("{i}.jsonl.tmp")), layers).ok(),
        );
    })?;
    Ok(wanted
        .iter()
        .cloned()
        .zip(delivered)
        .enumerate()
        .map(|(i, (name, delivered))| (name, delivered.map(|()| decoded.remove(&i).flatten())))
        .collect())
}
