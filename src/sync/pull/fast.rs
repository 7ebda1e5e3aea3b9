//! Pulling only what was added: when the local transcript equals another
//! machine's copy as the last pull left it, and that copy has since only
//! gained segments (`plan::segments::only_appended`), those segments are
//! fetched and appended, and nothing else is read: the cost follows what
//! changed, not the session's size. Anything else is read whole.

use std::path::Path;

use super::bookkeeping::recorded_outcome;
use super::{Checkout, Installer, Outcome};
use crate::index::{ChainState, Index, Pulled, Stamp};
use crate::names::SessionId;
use crate::sync::copies::CopyObjects;
use crate::sync::plan::Action;
use crate::sync::plan::segments::{self, Listed};
use crate::sync::{Received, copies};
use crate::transport::ObjectName;

/// An object's name, stamp, and for a segment its base and number.
type Named = (String, Stamp, Option<(String, u32)>);

/// A session the last pull left equal to a copy that only grew since.
pub(super) struct Candidate {
    pub group: (String, SessionId),
    /// The copy's base, and where its chain stood.
    cover: String,
    state: ChainState,
    /// The new segments, in order.
    pub segments: Vec<ObjectName>,
}

/// Whether the session of `group` can be brought up to date by segments.
pub(super) fn candidate(
    index: &Index,
    group: (&str, &SessionId),
    copies: &[CopyObjects],
    checkout: &Checkout,
) -> Option<Candidate> {
    let (dir, id) = group;
    let last = index.pulled.get(&format!("{dir}/{id}"))?;
    // Only into the session of the copy's own id: lines that went into a
    // session of another id (a branch that came back to its origin) are
    // written with that id, which the whole path does.
    let own_id = last
        .transcript
        .file_stem()
        .is_some_and(|s| s.to_str() == Some(id.as_str()));
    if !own_id || !last.cwd.starts_with(&checkout.root) {
        return None;
    }
    let (_, cover) = last.covers.iter().find(|(t, _)| *t == last.transcript)?;
    let (_, state) = last.chains.iter().find(|(n, _)| n == cover)?;
    let names: Vec<Named> = copies
        .iter()
        .flat_map(|c| {
            let base = c.base.to_string();
            std::iter::once((base.clone(), c.base_stamp, None)).chain(
                c.segments
                    .iter()
                    .map(move |(q, n, s)| (n.to_string(), *s, Some((base.clone(), *q)))),
            )
        })
        .collect();
    let listed: Vec<Listed> = names
        .iter()
        .map(|(n, s, of)| Listed {
            name: n,
            stamp: *s,
            segment_of: of.as_ref().map(|(b, q)| (b.as_str(), *q)),
        })
        .collect();
    let new = segments::only_appended(&last.objects, &listed, cover, state.seq)?;
    // Only now look at the files: a stat each.
    if !last.files_unchanged() {
        return None;
    }
    let all: Vec<&ObjectName> = copies.iter().flat_map(|c| c.names()).collect();
    Some(Candidate {
        group: (dir.to_owned(), id.clone()),
        cover: cover.clone(),
        state: state.clone(),
        segments: new
            .iter()
            .map(|n| (*all.iter().find(|o| o.to_string() == *n).expect("listed")).clone())
            .collect(),
    })
}

impl Installer<'_> {
    /// Appends the segments that arrived for `c` to the transcript, and
    /// installs their side files. `Err` (with why) when they do not fit:
    /// the session is then read whole.
    pub(super) fn forward(
        &self,
        index: &Index,
        c: &Candidate,
        segs: &[Received],
        objects: &[(ObjectName, Stamp)],
        checkout: &Checkout,
    ) -> Result<(Outcome, Pulled), String> {
        let (dir, id) = &c.group;
        let last = index
            .pulled
            .get(&format!("{dir}/{id}"))
            .ok_or("no record")?;
        let machine = ObjectName::parse(
            c.cover.split('/').next().unwrap_or(""),
            c.cover.rsplit('/').next().unwrap_or(""),
        )
        .and_then(|n| n.session())
        .map(|(_, m)| m)
        .ok_or("not a copy")?;
        let sid = last
            .transcript
            .file_stem()
            .and_then(|s| SessionId::parse(&s.to_string_lossy()).ok())
            .ok_or("not a transcript")?;
        let mut listed = Vec::with_capacity(segs.len());
        for (name, s) in c.segments.iter().zip(segs) {
            if s.meta.session_id != *id || s.meta.machine != machine || sid != *id {
                return Err(format!("{name} is of another session or machine"));
            }
            listed.push((name.segment().map_or(0, |(_, _, q)| q), s));
        }
        let reached = copies::follow(&c.state, &listed)?;
        if reached.apply.len() != segs.len() {
            return Err("a segment of another base".into());
        }
        let dest = &last.transcript;
        if Stamp::of(dest).map(|s| s.size) != Some(c.state.len) {
            return Err("the transcript is not as the copy was".into());
        }
        if self.in_use(dest).is_some() {
            // Said properly by the whole path.
            return Err("in use".into());
        }
        let folder = dest.parent().unwrap_or(Path::new("."));
        let mut outcome = recorded_outcome(last, id, checkout).ok_or("an old record")?;
        let mut len = c.state.len;
        let mut lines = last.lines;
        for &i in &reached.apply {
            let s = &segs[i];
            if self.dry_run {
                len += s.body.len;
                lines += s.body.lines;
                outcome.parts.written += s.parts.len();
                continue;
            }
            crate::sync::append::append_tail(self.journal.as_ref(), &s.transcript, dest, len)
                .map_err(|e| format!("{}: {e}", dest.display()))?;
            len += s.body.len;
            lines += s.body.lines;
            self.install_parts(s, folder, &sid, true, &mut outcome.parts)
                .map_err(|e| e.to_string())?;
        }
        if let Some(s) = reached.apply.last().map(|&i| &segs[i]) {
            self.keep_time(dest, s.meta.modified_ms)
                .map_err(|e| e.to_string())?;
        }
        outcome.action = Action::FastForward { from: 0 };
        outcome.from = Some(machine);
        outcome.bytes = len;
        outcome.lines = lines;
        let mut pulled = last.clone();
        pulled.objects = objects.iter().map(|(n, s)| (n.to_string(), *s)).collect();
        for f in &outcome.parts.files {
            if !pulled.files.iter().any(|(p, _)| p == f) {
                pulled.files.push((f.clone(), None));
            }
        }
        for (path, stamp) in &mut pulled.files {
            *stamp = Stamp::of(path);
        }
        pulled.bytes = len;
        pulled.lines = lines;
        for (n, state) in &mut pulled.chains {
            if *n == c.cover {
                *state = ChainState {
                    seq: reached.seq,
                    len: reached.point.len,
                    chain: reached.point.chain.clone(),
                    lines: state.lines + segs.iter().map(|s| s.body.lines).sum::<u64>(),
                    ..state.clone()
                };
            }
        }
        Ok((outcome, pulled))
    }
}
