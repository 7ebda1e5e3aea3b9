//! Pushing only what was added: when this machine's copy in the transport
//! is known (the index recorded where its chain stands) and the session
//! here extends it in place, a segment carries the new bytes; the plan
//! (`plan::segments::shape`) says when the copy is stored whole instead.

use super::{EarlierCopy, Outgoing};
use crate::bundle::segment::Point;
use crate::bundle::{Body, OutPart, PartBody, SegmentHead};
use crate::index::{self, ChainState, Stamp};
use crate::sync::copies::{self, CopyObjects};
use crate::sync::plan::{
    Earlier,
    segments::{Shape, ShapeFacts, shape},
};
use crate::transport::{ObjectName, Transport};

/// The segment to write, and the lines before it, when the plan says one.
pub(super) fn plan(
    out: &Outgoing,
    e: &EarlierCopy,
    copy: &CopyObjects,
) -> Option<(SegmentHead, u64)> {
    let chain = e.chain.as_ref()?;
    let facts = ShapeFacts {
        // The index's own record of the copy: its length is the chain's.
        extends_copy: e.relation == Earlier::Extended
            && e.in_place
            && e.new_sha256.is_some()
            && chain.len == e.len,
        part_gone: e
            .parts
            .iter()
            .any(|(path, _)| !out.part_stamps.iter().any(|(p, _)| p == path)),
        segments: copy.segments.len() as u32,
        segment_bytes: copy.segment_bytes(),
        base_bytes: copy.base_stamp.size,
    };
    (shape(facts) == Shape::Segment).then(|| {
        let head = SegmentHead {
            base: copies::base_id(chain),
            seq: chain.seq + 1,
            extends: copies::point(chain),
        };
        (head, chain.lines)
    })
}

/// Whether a side file changed since the copy took it (by its stamp
/// here then and now): only those travel in a segment.
pub(super) fn part_changed(
    pushed: &[(String, Stamp)],
    now: &[(String, Stamp)],
    part: &OutPart,
) -> bool {
    let path = part.path.to_string();
    let stamp = |list: &[(String, Stamp)]| list.iter().find(|(p, _)| *p == path).map(|(_, s)| *s);
    stamp(pushed).is_none() || stamp(pushed) != stamp(now)
}

/// What the index records once segment `seq` is stored.
#[allow(clippy::too_many_arguments)]
pub(super) fn after(
    out: &Outgoing,
    source_stamp: Stamp,
    seq: u32,
    from: &Point,
    body: &Body,
    part_bodies: &[PartBody],
    earlier: Box<EarlierCopy>,
    stored: Stamp,
) -> index::Pushed {
    let chain = earlier.chain.expect("a segment extends a known chain");
    let point = from.next(seq, body.len, &body.sha256, part_bodies);
    let mut segments = earlier.segments;
    segments.retain(|(q, _)| *q != seq);
    segments.push((seq, stored));
    segments.sort_by_key(|(q, _)| *q);
    super::record(
        out,
        source_stamp,
        out.len,
        earlier.new_sha256.expect("computed when comparing"),
        earlier.remote,
    )
    .with_chain(
        Some(ChainState {
            seq,
            len: point.len,
            chain: point.chain,
            lines: chain.lines + body.lines,
            ..chain
        }),
        segments,
    )
}

/// Removes the segments of copies just stored whole. Those that cannot be
/// removed stay in the index's record, so the copy is still known (they
/// name the old base: readers ignore them).
pub(super) fn remove_leftovers(
    transport: &dyn Transport,
    index: &mut index::Index,
    leftovers: Vec<(ObjectName, Vec<ObjectName>)>,
) {
    let all: Vec<ObjectName> = leftovers.iter().flat_map(|(_, s)| s.clone()).collect();
    if all.is_empty() {
        return;
    }
    let results = match transport.remove(&all) {
        Ok(r) => r,
        Err(e) => all.iter().map(|_| Err(e.to_string())).collect(),
    };
    let failed: Vec<&ObjectName> = all
        .iter()
        .zip(&results)
        .filter(|(_, r)| r.is_err())
        .map(|(n, _)| n)
        .collect();
    if failed.is_empty() {
        return;
    }
    for (base, segs) in &leftovers {
        let key = base.to_string();
        if let Some(mut p) = index.pushed.get(&key).cloned() {
            // Their stamps are unknown here: a listing tells next time.
            p.segments = segs
                .iter()
                .filter(|n| failed.contains(n))
                .filter_map(|n| n.segment().map(|(_, _, seq)| (seq, Stamp::new(0, None))))
                .collect();
            index.set_pushed(key, p);
        }
    }
}
