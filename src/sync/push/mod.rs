//! From local transcripts to bundles in a transport: [`outgoing`] packs a
//! session, `push` decides with the plan and stores the batch.

mod outgoing;
mod segment;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use super::copies::{CopyObjects, Fetched};
use super::plan::{self, Earlier, PushAction};
use super::scan::{SecretScan, Secrets};
use super::{Link, Received, SessionError};
use crate::bundle::PartData;
use crate::bundle::segment::Point;
use crate::claude::parts::{PartFinder, Parts};
use crate::claude::sessions::LocalSession;
use crate::claude::transcript;
use crate::fsutil;
use crate::index::{self, Stamp};
use crate::names::SessionId;
use crate::project::{Placement, ProjectKey};
use crate::transport::{ObjectName, Transport, TransportError};

pub use outgoing::{Outgoing, prepare};

#[derive(Debug, Clone)]
pub struct Pushed {
    pub id: SessionId,
    pub key: ProjectKey,
    pub object: ObjectName,
    /// The session's size and lines now.
    pub bytes: u64,
    pub lines: u64,
    /// Transcript bytes sent: all of them, or only the new ones in a
    /// segment.
    pub sent: u64,
    /// The segment it went as; `None`: whole.
    pub segment: Option<u32>,
    /// Why it went so.
    pub why: &'static str,
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
    Indexed(Box<index::Pushed>),
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
        dry_run,
    } = *link;
    let names: Vec<ObjectName> = sessions
        .iter()
        .map(|(s, p)| ObjectName::for_session(&p.key, &s.file.id, machine))
        .collect();
    let asked: Vec<(&Path, &SessionId)> = sessions
        .iter()
        .map(|(s, _)| (s.file.path.parent().unwrap_or(Path::new(".")), &s.file.id))
        .collect();
    // Side files are looked for while the transport lists: neither needs
    // the other, and a push with nothing to send spends most of its time
    // on the two.
    let (listed, found) = std::thread::scope(|s| {
        let found = s.spawn(|| finder.find_all(&asked));
        let listed = transport.list();
        (
            listed,
            found.join().expect("finding side files does not panic"),
        )
    });
    let listed = listed?;
    let has_record = super::encryption::listed(&listed.objects);
    super::encryption::check_layers(transport, layers, has_record, false)?;
    if layers.is_encrypted() && !has_record && !dry_run {
        // Gone (or never written by an older build): say again that this
        // sync dir is encrypted, and to whom.
        let again = super::encryption::Record::new(
            layers
                .recipient_keys()
                .into_iter()
                .map(str::to_owned)
                .collect(),
        );
        let _ = super::encryption::write_record(transport, super::staging_dir(staging)?, &again)?;
    }
    let (copies, _) = super::copies::group(&listed.objects);
    let listing: HashMap<ObjectName, Stamp> = listed
        .objects
        .into_iter()
        .map(|o| (o.name, Stamp::new(o.size, o.modified)))
        .collect();
    let mut parts: Vec<Option<Parts>> = found.into_iter().map(Some).collect();
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
            let Some(copy) = copies.get(object) else {
                return Before::Absent;
            };
            match index.pushed.get(&object.to_string()) {
                Some(p) if copy.vouched_by(p) => {
                    let same_source = p.source == session.file.path
                        && p.source_stamp
                            == Stamp::new(session.file.size, Some(session.file.modified))
                        && p.original_cwd == session.cwd
                        && p.relative_cwd == placement.relative.as_str()
                        && parts.as_ref().is_some_and(|x| p.parts == x.stamps());
                    if same_source {
                        Before::Unchanged
                    } else {
                        Before::Indexed(Box::new(p.clone()))
                    }
                }
                _ => Before::Unknown,
            }
        })
        .collect();
    let unknown: Vec<&CopyObjects> = names
        .iter()
        .zip(&before)
        .filter(|(_, b)| matches!(b, Before::Unknown))
        .filter_map(|(n, _)| copies.get(n))
        .collect();
    let mut fetched = fetch_earlier(transport, layers, staging, &unknown)?;

    let mut report = PushReport::default();
    let mut batch = Vec::new();
    let mut pending = HashMap::new();
    // About what will be read to send: for a large session, progress by
    // bytes says more than a count of one.
    progress.bytes(
        sessions
            .iter()
            .zip(&before)
            .map(|((s, _), b)| match b {
                Before::Unchanged | Before::HeldElsewhere => 0,
                Before::Indexed(p) => s.file.size.saturating_sub(p.len),
                Before::Absent | Before::Unknown => s.file.size,
            })
            .sum(),
    );
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
        let copy = copies.get(&object);
        let listed_segments = || copy.map(CopyObjects::segment_stamps).unwrap_or_default();
        // How the source relates to the earlier copy, with what is known
        // of that copy.
        let earlier = match before {
            Before::Absent | Before::Unchanged | Before::HeldElsewhere => Ok(None),
            Before::Indexed(p) => compare_indexed(&out, &p).map(|c| {
                Some(EarlierCopy {
                    relation: c.relation,
                    in_place: c.in_place,
                    new_sha256: Some(c.new_sha256),
                    len: p.len,
                    sha256: p.sha256,
                    remote: p.remote,
                    chain: p.chain,
                    segments: p.segments,
                    parts: p.parts,
                })
            }),
            Before::Unknown => match fetched.remove(&object) {
                Some(Fetched::Whole(received)) => {
                    let compared = compare(&out, &received);
                    super::copies::discard(&received);
                    let received = *received;
                    compared.map(|relation| {
                        Some(EarlierCopy {
                            relation,
                            in_place: false,
                            new_sha256: None,
                            len: received.body.len,
                            sha256: received.body.sha256,
                            remote: copy.map_or(listing[&object], |c| c.base_stamp),
                            chain: received.chain,
                            segments: listed_segments(),
                            parts: Vec::new(),
                        })
                    })
                }
                // Unread, it cannot be shown that the new copy extends it.
                Some(Fetched::Unread(reason)) => Err(SessionError::Store {
                    object: format!("{}/{object}", transport.location()),
                    reason: format!(
                        "this machine's copy there cannot be read to check that the new one extends it ({reason}); it was left as it is"
                    ),
                }),
                // Ours, and its chain does not fit (a segment missing,
                // renamed, altered): what the index says was pushed still
                // guards against rewinding, and the copy goes whole.
                Some(Fetched::Broken(_)) if index.pushed.contains_key(&object.to_string()) => {
                    let p = index.pushed[&object.to_string()].clone();
                    compare_indexed(&out, &p).map(|c| {
                        Some(EarlierCopy {
                            // Unchanged here, it is stored again all the
                            // same: a copy no machine can read is repaired.
                            relation: match c.relation {
                                Earlier::Same => Earlier::Extended,
                                r => r,
                            },
                            in_place: false,
                            new_sha256: None,
                            len: p.len,
                            sha256: p.sha256,
                            remote: p.remote,
                            chain: None,
                            segments: Vec::new(),
                            parts: p.parts,
                        })
                    })
                }
                // Ours, it does not decode, and nothing says what it held:
                // it may be replaced.
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
        match plan::push_action(earlier.as_ref().map(|e| e.relation), force) {
            PushAction::Send => {}
            PushAction::Unchanged => {
                let e = earlier.expect("an earlier copy");
                let entry = record(&out, source_stamp, e.len, e.sha256, e.remote)
                    .with_chain(e.chain, e.segments);
                index.set_pushed(object.to_string(), entry);
                report.unchanged.push(id);
                continue;
            }
            PushAction::Refuse => {
                let len = earlier.expect("an earlier copy").len;
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
        // Only what was added, when the copy there is known and this
        // extends it in place; else the whole session again.
        let seg = earlier
            .as_ref()
            .and_then(|e| segment::plan(&out, e, copy?))
            .map(|(head, lines_before)| {
                let (seq, from) = (head.seq, head.extends.clone());
                let e = earlier.as_ref().expect("an earlier copy");
                let sending = out.segment(head, lines_before, |part| {
                    segment::part_changed(&e.parts, &out.part_stamps, part)
                });
                (seq, from, sending)
            });
        let sending = seg.as_ref().map_or(&out, |(_, _, s)| s);
        let why = match (&seg, &earlier) {
            (Some(_), _) => "only what was added since the copy there",
            (None, None) => "not in the sync dir yet",
            (None, Some(e)) if e.relation == Earlier::Rewound => {
                "rewritten here; replacing the copy there (--force)"
            }
            (None, Some(e)) if e.chain.is_none() => "whole again: the copy there was not known",
            (None, Some(_)) => "whole again: a long chain, a move, or a side file gone",
        };
        let secrets = match scan {
            SecretScan::Off => Secrets::default(),
            SecretScan::Warn | SecretScan::Refuse => match super::scan::outgoing(sending) {
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
        if dry_run {
            // What would go: the bytes after the copy there, and the side
            // files that changed.
            let parts: u64 = sending
                .parts
                .iter()
                .filter_map(|p| match &p.data {
                    crate::bundle::PartData::File(f) => {
                        p.len.or_else(|| Stamp::of(f).map(|s| s.size))
                    }
                    crate::bundle::PartData::Bytes(b) => Some(b.len() as u64),
                })
                .sum();
            report.pushed.push(Pushed {
                id,
                key: placement.key.clone(),
                object: object.clone(),
                bytes: out.len,
                lines: 0,
                sent: out.len - sending.from + parts,
                segment: seg.as_ref().map(|(seq, ..)| *seq),
                why,
                partial_tail: out.partial_tail,
                parts: sending.parts.len(),
                skipped_parts: out.skipped_parts.clone(),
                secrets,
            });
            continue;
        }
        let (name, file) = match &seg {
            Some((seq, ..)) => (
                ObjectName::for_segment(&placement.key, &id, machine, *seq),
                super::staging_dir(staging)?.join(format!("{id}.{seq}.ccseg")),
            ),
            None => (
                object.clone(),
                super::staging_dir(staging)?.join(format!("{id}.ccsync")),
            ),
        };
        let (body, part_bodies) = match sending.write_file(&file, layers, progress) {
            Ok(written) => written,
            Err(e) => {
                report.failed.push((id, e));
                continue;
            }
        };
        let pushed = Pushed {
            id,
            key: placement.key.clone(),
            object: object.clone(),
            bytes: out.len,
            lines: seg.as_ref().map_or(body.lines, |_| {
                earlier
                    .as_ref()
                    .and_then(|e| e.chain.as_ref())
                    .map_or(0, |c| c.lines)
                    + body.lines
            }),
            sent: body.len,
            segment: seg.as_ref().map(|(seq, ..)| *seq),
            why,
            partial_tail: out.partial_tail,
            parts: out.parts.len(),
            skipped_parts: out.skipped_parts.clone(),
            secrets,
        };
        let kind = match seg {
            Some((seq, from, _)) => Sending::Segment {
                seq,
                from,
                earlier: Box::new(earlier.expect("an earlier copy")),
            },
            None => Sending::Whole {
                old_segments: copy
                    .map(|c| c.segments.iter().map(|(_, n, _)| n.clone()).collect())
                    .unwrap_or_default(),
            },
        };
        pending.insert(
            name.clone(),
            (out, source_stamp, body, part_bodies, pushed, kind),
        );
        batch.push((name, file));
    }
    let mut leftovers = Vec::new();
    if !batch.is_empty() {
        for ((name, _), stored) in batch.iter().zip(transport.store(&batch)?) {
            let Some((out, source_stamp, body, part_bodies, pushed, kind)) = pending.remove(name)
            else {
                continue;
            };
            match stored {
                Ok(stored) => {
                    let remote = Stamp::new(stored.size, stored.modified);
                    let entry = match kind {
                        Sending::Whole { old_segments } => {
                            leftovers.push((pushed.object.clone(), old_segments));
                            record(&out, source_stamp, body.len, body.sha256.clone(), remote)
                                .with_chain(
                                    Some(index::ChainState {
                                        base_at: out.meta.exported_at_ms,
                                        base_sha256: body.sha256.clone(),
                                        seq: 0,
                                        len: body.len,
                                        chain: body.sha256,
                                        lines: body.lines,
                                    }),
                                    Vec::new(),
                                )
                        }
                        Sending::Segment { seq, from, earlier } => segment::after(
                            &out,
                            source_stamp,
                            seq,
                            &from,
                            &body,
                            &part_bodies,
                            earlier,
                            remote,
                        ),
                    };
                    index.set_pushed(pushed.object.to_string(), entry);
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
    // A copy stored whole again makes its segments leftovers: readers
    // ignore them (they name the old base), and they go now. One that
    // cannot be removed is remembered, so the copy is still known.
    segment::remove_leftovers(transport, index, leftovers);
    // A session moved to another project here (`/cd`) leaves this
    // machine's copy under the old project's key: once the copy just
    // stored holds all of it (by the length and hash recorded when it was
    // pushed), it is only a second copy of one session.
    let mut moved = Vec::new();
    for p in report.pushed.iter().filter(|_| !dry_run) {
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
    // Segments first: a base without them is a whole, older copy; they
    // without their base are never read.
    let moved_segments: Vec<ObjectName> = moved
        .iter()
        .filter_map(|n| copies.get(n))
        .flat_map(|c| c.segments.iter().map(|(_, n, _)| n.clone()))
        .collect();
    if !moved.is_empty()
        && transport
            .remove(&moved_segments)
            .is_ok_and(|r| r.iter().all(Result::is_ok))
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
    if !dry_run {
        let _ = transport.remove_own_temps();
    }
    Ok(report)
}

/// What is known of this machine's copy in the transport, compared with
/// the session here.
struct EarlierCopy {
    relation: Earlier,
    /// Same working directory.
    in_place: bool,
    /// The SHA-256 of what would go now, when already computed.
    new_sha256: Option<String>,
    len: u64,
    sha256: String,
    /// The base's stamp in the transport.
    remote: Stamp,
    chain: Option<index::ChainState>,
    segments: Vec<(u32, Stamp)>,
    /// Side files, with their stamps here when pushed.
    parts: Vec<(String, Stamp)>,
}

/// What a push is storing for a session.
enum Sending {
    /// The whole session, as a new base: the old chain's segments go.
    Whole { old_segments: Vec<ObjectName> },
    /// A segment after `from`, the state the copy reached.
    Segment {
        seq: u32,
        from: Point,
        earlier: Box<EarlierCopy>,
    },
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
        chain: None,
        segments: Vec::new(),
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

/// How the session here relates to what the index says was pushed.
struct Compared {
    relation: Earlier,
    /// Same working directory.
    in_place: bool,
    /// The SHA-256 of what would go now.
    new_sha256: String,
}

/// The same, from what the index recorded: the hash of the pushed prefix
/// (and, in the same read, of what would go now).
fn compare_indexed(out: &Outgoing, pushed: &index::Pushed) -> Result<Compared, SessionError> {
    let in_place = pushed.original_cwd == out.meta.original_cwd
        && out.meta.relative_cwd.as_ref().map_or("", |r| r.as_str()) == pushed.relative_cwd;
    let same_place = in_place && pushed.parts == out.part_stamps;
    let read_err = |source| SessionError::Read {
        path: out.source.clone(),
        source,
    };
    let (prefix, new_sha256) = if out.len >= pushed.len {
        let hashes = transcript::sha256_of_prefixes(&out.source, &[pushed.len, out.len])
            .map_err(read_err)?;
        (hashes[0] == pushed.sha256, hashes[1].clone())
    } else {
        (false, String::new())
    };
    Ok(Compared {
        relation: plan::earlier(prefix, out.len == pushed.len && same_place),
        in_place,
        new_sha256,
    })
}

/// This machine's copies already in the transport, rebuilt whole, by base
/// name.
fn fetch_earlier(
    transport: &dyn Transport,
    layers: &crate::bundle::layers::Layers,
    staging: &crate::config::Staging,
    wanted: &[&CopyObjects],
) -> Result<HashMap<ObjectName, Fetched>, TransportError> {
    if wanted.is_empty() {
        return Ok(HashMap::new());
    }
    let dir = super::staging_dir(staging)?.join("earlier");
    fsutil::create_private_dir_all(&dir).map_err(|source| TransportError::Io {
        action: "create",
        path: dir.clone(),
        source,
    })?;
    let fetched = super::copies::fetch(transport, layers, &dir, wanted, &super::Quiet)?;
    Ok(wanted.iter().map(|c| c.base.clone()).zip(fetched).collect())
}
