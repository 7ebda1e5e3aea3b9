//! A machine's copy of a session in a sync dir: a whole bundle (the base)
//! and the segments stored after it. [`group`] finds them in a listing;
//! [`fetch`] reads copies back whole, each checked along its chain (the
//! rules are the plan's: `plan::segments`).

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::path::Path;

use super::plan::segments::{self, Reached, SegmentFacts};
use super::{Received, ReceivedPart};
use crate::bundle::layers::Layers;
use crate::bundle::segment::{BaseId, Point};
use crate::index::{ChainState, Stamp};
use crate::transport::{ObjectName, PerObject, RemoteObject, Transport, TransportError};

/// The objects of one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyObjects {
    pub base: ObjectName,
    pub base_stamp: Stamp,
    /// Its segments, by sequence number.
    pub segments: Vec<(u32, ObjectName, Stamp)>,
}

impl CopyObjects {
    /// Every object, base first.
    pub fn names(&self) -> impl Iterator<Item = &ObjectName> {
        std::iter::once(&self.base).chain(self.segments.iter().map(|(_, n, _)| n))
    }

    /// Every object with its stamp, base first.
    pub fn stamps(&self) -> impl Iterator<Item = (&ObjectName, Stamp)> {
        std::iter::once((&self.base, self.base_stamp))
            .chain(self.segments.iter().map(|(_, n, s)| (n, *s)))
    }

    /// Its segments' sequence numbers and stamps.
    pub fn segment_stamps(&self) -> Vec<(u32, Stamp)> {
        self.segments.iter().map(|(seq, _, s)| (*seq, *s)).collect()
    }

    /// Whether the index's record of a push still describes this copy:
    /// its base and every segment as stored, and no other.
    pub fn vouched_by(&self, p: &crate::index::Pushed) -> bool {
        p.remote == self.base_stamp && p.segments == self.segment_stamps()
    }

    /// Stored bytes of the segments.
    pub fn segment_bytes(&self) -> u64 {
        self.segments.iter().map(|(_, _, s)| s.size).sum()
    }
}

/// The copies in `objects`, by base name, and the segments whose base is
/// not there (a copy being removed or renamed; never read).
pub fn group(objects: &[RemoteObject]) -> (BTreeMap<ObjectName, CopyObjects>, Vec<ObjectName>) {
    let mut copies: BTreeMap<ObjectName, CopyObjects> = objects
        .iter()
        .filter(|o| o.name.session().is_some())
        .map(|o| {
            let copy = CopyObjects {
                base: o.name.clone(),
                base_stamp: Stamp::new(o.size, o.modified),
                segments: Vec::new(),
            };
            (o.name.clone(), copy)
        })
        .collect();
    let mut orphans = Vec::new();
    for o in objects {
        let Some((_, _, seq)) = o.name.segment() else {
            continue;
        };
        let base = o.name.base_of_segment().expect("a segment name");
        match copies.get_mut(&base) {
            Some(c) => c
                .segments
                .push((seq, o.name.clone(), Stamp::new(o.size, o.modified))),
            None => orphans.push(o.name.clone()),
        }
    }
    for c in copies.values_mut() {
        c.segments.sort_by_key(|(seq, ..)| *seq);
    }
    (copies, orphans)
}

/// Where a whole bundle starts a chain.
pub fn base_state(r: &Received) -> ChainState {
    ChainState {
        base_at: r.meta.exported_at_ms,
        base_sha256: r.body.sha256.clone(),
        seq: 0,
        len: r.body.len,
        chain: r.body.sha256.clone(),
        lines: r.body.lines,
    }
}

/// What became of one copy fetched.
#[derive(Debug)]
pub enum Fetched {
    /// Read and rebuilt whole: the copy as a whole bundle would have
    /// brought it, with where its chain stands.
    Whole(Box<Received>),
    /// An object of it could not be read from the transport (gone,
    /// unreadable, over the size limit), and why.
    Unread(String),
    /// It was read, and does not decode or its segments do not make a
    /// chain, and why.
    Broken(String),
}

impl Fetched {
    pub fn into_result(self) -> PerObject<Received> {
        match self {
            Fetched::Whole(r) => Ok(*r),
            Fetched::Unread(e) | Fetched::Broken(e) => Err(e),
        }
    }
}

/// Fetches each copy and rebuilds it whole in `staging`: its base, then
/// its segments in order, each checked to extend exactly the state before
/// it.
pub fn fetch(
    transport: &dyn Transport,
    layers: &Layers,
    staging: &Path,
    copies: &[&CopyObjects],
    progress: &dyn super::Progress,
) -> Result<Vec<Fetched>, TransportError> {
    let names: Vec<ObjectName> = copies.iter().flat_map(|c| c.names().cloned()).collect();
    progress.bytes(
        copies
            .iter()
            .flat_map(|c| c.stamps())
            .map(|(_, s)| s.size)
            .sum(),
    );
    let mut arrived = super::receiving::receive_all(
        transport,
        layers,
        &names,
        |i| staging.join(format!("{i}.jsonl.tmp")),
        progress,
    )?
    .into_iter()
    .zip(&names);
    Ok(copies
        .iter()
        .map(|c| {
            let pieces: Vec<_> = arrived.by_ref().take(1 + c.segments.len()).collect();
            let mut unread = None;
            let mut broken = None;
            let mut got = Vec::with_capacity(pieces.len());
            for (piece, name) in pieces {
                match piece {
                    Ok(Ok(r)) => got.push(r),
                    Ok(Err(e)) => {
                        broken.get_or_insert_with(|| format!("{name}: {e}"));
                    }
                    Err(e) => {
                        unread.get_or_insert_with(|| format!("{name}: {e}"));
                    }
                }
            }
            if unread.is_some() || broken.is_some() {
                got.iter().for_each(discard);
                return match unread {
                    Some(e) => Fetched::Unread(e),
                    None => Fetched::Broken(broken.unwrap_or_default()),
                };
            }
            let mut got = got.into_iter();
            let base = got.next().expect("the base arrived");
            let segs = c.segments.iter().map(|(seq, ..)| *seq).zip(got).collect();
            match rebuild(base, segs) {
                Ok(r) => Fetched::Whole(Box::new(r)),
                Err(e) => Fetched::Broken(format!("{}: {e}", c.base)),
            }
        })
        .collect())
}

/// A base and the segments listed with it, as one whole copy.
fn rebuild(mut base: Received, segs: Vec<(u32, Received)>) -> PerObject<Received> {
    if base.meta.segment.is_some() {
        return Err("it is a segment under a whole bundle's name".into());
    }
    let start = base_state(&base);
    let listed: Vec<(u32, &Received)> = segs.iter().map(|(seq, s)| (*seq, s)).collect();
    let reached = follow(&start, &listed)?;
    for &i in &reached.leftovers {
        discard(&segs[i].1);
    }
    if reached.apply.is_empty() {
        base.chain = Some(start);
        return Ok(base);
    }
    let applied = (|| -> io::Result<()> {
        let mut out = std::fs::OpenOptions::new()
            .append(true)
            .open(&base.transcript)?;
        for &i in &reached.apply {
            let s = &segs[i].1;
            same_session(&base, s).map_err(io::Error::other)?;
            io::copy(&mut File::open(&s.transcript)?, &mut out)?;
            base.body.lines += s.body.lines;
            take_parts(&mut base, s)?;
            base.meta.modified_ms = s.meta.modified_ms;
            base.meta.exported_at_ms = s.meta.exported_at_ms;
        }
        out.sync_all()
    })();
    for (_, s) in &segs {
        discard(s);
    }
    if let Err(e) = applied {
        discard(&base);
        return Err(e.to_string());
    }
    base.body.len = reached.point.len;
    base.body.sha256 = crate::claude::transcript::sha256_of_prefix(&base.transcript, base.body.len)
        .map_err(|e| e.to_string())?;
    base.chain = Some(ChainState {
        seq: reached.seq,
        len: reached.point.len,
        chain: reached.point.chain,
        lines: base.body.lines,
        ..start
    });
    Ok(base)
}

/// The base a chain state starts from, as segments name it.
pub fn base_id(state: &ChainState) -> BaseId {
    BaseId {
        exported_at: state.base_at,
        sha256: state.base_sha256.clone(),
    }
}

/// Where a chain state stands, as segments name it.
pub fn point(state: &ChainState) -> Point {
    Point {
        len: state.len,
        chain: state.chain.clone(),
    }
}

/// Which of `segs` (each with the sequence number its object's name
/// gives) continue the chain from `state`, in order, and where they lead:
/// the plan's rule (`plan::segments::chain`) on what they say of
/// themselves.
pub fn follow(state: &ChainState, segs: &[(u32, &Received)]) -> Result<Reached, String> {
    let parts: Vec<Vec<crate::bundle::PartBody>> =
        segs.iter().map(|(_, s)| s.part_bodies()).collect();
    let facts = segs
        .iter()
        .zip(&parts)
        .map(|((seq, s), parts)| {
            let head = s
                .meta
                .segment
                .as_ref()
                .ok_or_else(|| format!("segment {seq} is a whole bundle, not a segment"))?;
            Ok(SegmentFacts {
                name_seq: *seq,
                base: &head.base,
                seq: head.seq,
                extends: &head.extends,
                appended: s.body.len,
                sha256: &s.body.sha256,
                parts,
            })
        })
        .collect::<Result<Vec<_>, String>>()?;
    segments::chain(&base_id(state), &point(state), state.seq, &facts).map_err(|e| e.to_string())
}

/// A segment must be of the same session, machine, project and place as
/// its base: a segment is written only for a session that stayed put.
fn same_session(base: &Received, s: &Received) -> Result<(), String> {
    let (a, b) = (&base.meta, &s.meta);
    if a.session_id != b.session_id
        || a.machine != b.machine
        || a.project_key != b.project_key
        || a.original_cwd != b.original_cwd
        || a.relative_cwd != b.relative_cwd
    {
        return Err("a segment is of another session or place than its base".into());
    }
    Ok(())
}

/// The segment's side files replace the base's of the same path (they
/// travel whole), or join them.
fn take_parts(base: &mut Received, s: &Received) -> io::Result<()> {
    for p in &s.parts {
        let dest = match base.parts.iter_mut().find(|b| b.path == p.path) {
            Some(b) => {
                b.len = p.len;
                b.sha256 = p.sha256.clone();
                b.file.clone()
            }
            None => {
                let mut name = base.transcript.as_os_str().to_owned();
                name.push(format!(".s{}", base.parts.len()));
                let file = std::path::PathBuf::from(name);
                base.parts.push(ReceivedPart {
                    path: p.path.clone(),
                    file: file.clone(),
                    len: p.len,
                    sha256: p.sha256.clone(),
                });
                file
            }
        };
        std::fs::rename(&p.file, &dest)?;
        if let Some(ms) = s.meta.parts_modified_ms.get(&p.path) {
            base.meta.parts_modified_ms.insert(p.path.clone(), *ms);
        }
    }
    base.parts.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(())
}

/// Removes what receiving a copy left in staging.
pub fn discard(r: &Received) {
    for file in r.files() {
        let _ = std::fs::remove_file(file);
    }
}
