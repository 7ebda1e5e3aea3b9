//! What the index learns from a pull, and what it tells the next one.

use std::collections::HashMap;

use super::{Checkout, Fork, Outcome, PartsOutcome};
use crate::claude::transcript;
use crate::index::{Index, Pulled, Stamp};
use crate::names::{MachineName, SessionId};
use crate::sync::Received;
use crate::sync::copies::CopyObjects;
use crate::sync::plan::{self, Action};
use crate::transport::ObjectName;

/// This machine's own objects for the sessions `o` wrote or found equal
/// to a copy, when that copy holds everything the object held: its
/// transcript (by the length and hash the index recorded at push) and
/// every side file it carried.
pub(super) fn superseded_own(
    index: &Index,
    own: &HashMap<ObjectName, CopyObjects>,
    o: &Outcome,
    copies: &[Received],
    me: &MachineName,
) -> Vec<ObjectName> {
    let homes = std::iter::once((&o.id, &o.transcript, o.cover, &o.held)).chain(
        o.forks
            .iter()
            .map(|f| (&f.id, &f.transcript, f.cover, &f.held)),
    );
    homes
        .filter(|(_, _, _, held)| held.is_none())
        .filter_map(|(id, transcript, cover, _)| {
            let cover = &copies[cover?];
            let name = ObjectName::for_session(&o.key, id, me);
            let pushed = index.pushed.get(&name.to_string())?;
            // Cheap checks first: hashing the prefix reads the transcript.
            if !own.get(&name).is_some_and(|c| c.vouched_by(pushed)) || pushed.len > cover.body.len
            {
                return None;
            }
            let cover_parts: Vec<String> = cover.parts.iter().map(|p| p.path.to_string()).collect();
            let facts = plan::OwnAndCover {
                own_len: pushed.len,
                own_is_prefix: transcript::sha256_of_prefix(transcript, pushed.len).ok()?
                    == pushed.sha256,
                own_parts: pushed.parts.iter().map(|(p, _)| p.as_str()).collect(),
                cover_len: cover.body.len,
                cover_parts: cover_parts.iter().map(String::as_str).collect(),
                me: me.as_str(),
                cover_machine: cover.meta.machine.as_str(),
            };
            plan::own_copy_superseded(&facts).then_some(name)
        })
        .collect()
}

/// Whether this machine's object for `o`'s session in the transport is the
/// one it last pushed, from the local transcript as it is now.
pub(super) fn already_pushed(
    index: &Index,
    own: &HashMap<ObjectName, CopyObjects>,
    o: &Outcome,
    me: &MachineName,
) -> bool {
    let name = ObjectName::for_session(&o.key, &o.id, me);
    index.pushed.get(&name.to_string()).is_some_and(|p| {
        own.get(&name).is_some_and(|c| c.vouched_by(p))
            && p.source == o.transcript
            && Stamp::of(&o.transcript) == Some(p.source_stamp)
    })
}

/// What to remember of a settled session.
pub(super) fn remember(
    o: &Outcome,
    objects: &[(ObjectName, Stamp)],
    copies: &[Received],
) -> Pulled {
    let mut files = vec![(o.transcript.clone(), Stamp::of(&o.transcript))];
    files.extend(
        o.forks
            .iter()
            .map(|f| (f.transcript.clone(), Stamp::of(&f.transcript))),
    );
    let parts = o
        .parts
        .files
        .iter()
        .chain(o.forks.iter().flat_map(|f| &f.parts.files));
    files.extend(parts.map(|p| (p.clone(), Stamp::of(p))));
    // Transcripts now equal to another machine's copy: pushing them would
    // only put a second copy of one conversation in the transport.
    let object_of = |i: usize| {
        let machine = &copies[i].meta.machine;
        objects
            .iter()
            .find(|(n, _)| n.session().is_some_and(|(_, m)| m == *machine))
            .map(|(n, _)| n.to_string())
    };
    let covers = std::iter::once((&o.transcript, o.cover))
        .chain(o.forks.iter().map(|f| (&f.transcript, f.cover)))
        .filter_map(|(t, cover)| Some((t.clone(), object_of(cover?)?)))
        .collect();
    let chains = copies
        .iter()
        .filter_map(|c| {
            let name = objects
                .iter()
                .find(|(n, _)| n.session().is_some_and(|(_, m)| m == c.meta.machine))?;
            Some((name.0.to_string(), c.chain.clone()?))
        })
        .collect();
    Pulled {
        objects: objects.iter().map(|(n, s)| (n.to_string(), *s)).collect(),
        chains,
        files,
        covers,
        cwd: o.cwd.clone(),
        transcript: o.transcript.clone(),
        bytes: o.bytes,
        lines: o.lines,
        verdicts: o
            .verdicts
            .iter()
            .map(|(m, v)| (m.to_string(), (*v).into()))
            .collect(),
        forks: o
            .forks
            .iter()
            .map(|f| {
                (
                    f.machine.to_string(),
                    f.id.to_string(),
                    f.transcript.clone(),
                )
            })
            .collect(),
    }
}

/// The outcome of the last pull of this session, if nothing it depended on
/// has changed since; pulling again would then write nothing.
pub(super) fn unchanged_since_last_pull(
    index: &Index,
    dir: &str,
    id: &SessionId,
    objects: &[(ObjectName, Stamp)],
    checkout: &Checkout,
) -> Option<Outcome> {
    let last = index.pulled.get(&format!("{dir}/{id}"))?;
    let same_objects = last.objects.len() == objects.len()
        && last
            .objects
            .iter()
            .zip(objects)
            .all(|((name, stamp), (n, s))| *name == n.to_string() && stamp == s);
    if !same_objects || !last.files_unchanged() || !last.cwd.starts_with(&checkout.root) {
        return None;
    }
    recorded_outcome(last, id, checkout)
}

/// The outcome a pull recorded, as a pull that writes nothing reports it.
pub(super) fn recorded_outcome(
    last: &Pulled,
    id: &SessionId,
    checkout: &Checkout,
) -> Option<Outcome> {
    let verdicts = last
        .verdicts
        .iter()
        .map(|(m, v)| Some((MachineName::parse(m).ok()?, (*v).into())))
        .collect::<Option<Vec<_>>>()?;
    let forks = last
        .forks
        .iter()
        .map(|(m, fid, path)| {
            Some(Fork {
                machine: MachineName::parse(m).ok()?,
                id: SessionId::parse(fid).ok()?,
                transcript: path.clone(),
                action: Action::Keep,
                held: None,
                parts: PartsOutcome::default(),
                cover: None,
            })
        })
        .collect::<Option<Vec<_>>>()?;
    Some(Outcome {
        // The session written may be another than the group's: a branch
        // that came back under a fork id went to its own session.
        id: last
            .transcript
            .file_stem()
            .and_then(|s| SessionId::parse(&s.to_string_lossy()).ok())
            .unwrap_or_else(|| id.clone()),
        key: checkout.key.clone(),
        cwd: last.cwd.clone(),
        transcript: last.transcript.clone(),
        action: Action::Keep,
        from: None,
        verdicts,
        held: None,
        forks,
        advise_push: false,
        bytes: last.bytes,
        lines: last.lines,
        parts: PartsOutcome::default(),
        cover: None,
        relocated_from: None,
    })
}
