//! What a pull does with one session, decided from bytes alone.
//!
//! A transcript only grows while Claude Code works on it, so a copy that
//! starts with everything the other has is simply further along. The plan
//! never chooses a copy that would drop a line this machine has.
//! [`place`] says which session here each incoming branch belongs to.

mod branches;
pub mod segments;
pub mod setup;
#[cfg(test)]
mod simulation;

pub use branches::{Home, Placement, Who, place, place_bytes, placing_order, rank_others};

/// What becomes of the local transcript.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// Absent here: write copy `from`.
    Install { from: usize },
    /// The local transcript is a prefix of copy `from`: replace it.
    FastForward { from: usize },
    /// Nothing to write.
    Keep,
}

/// What the plan concluded about each incoming copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// This copy is the one written.
    Chosen,
    /// Identical to what is here.
    UpToDate,
    /// Everything in it is in what this machine ends up with.
    Contained,
    /// This machine has more: the copy is a prefix of the local transcript.
    LocalAhead,
    /// Neither contains the other: both sides added different lines.
    Diverged,
}

impl From<Verdict> for crate::index::Seen {
    fn from(v: Verdict) -> Self {
        use crate::index::Seen;
        match v {
            Verdict::Chosen => Seen::Chosen,
            Verdict::UpToDate => Seen::UpToDate,
            Verdict::Contained => Seen::Contained,
            Verdict::LocalAhead => Seen::LocalAhead,
            Verdict::Diverged => Seen::Diverged,
        }
    }
}

impl From<crate::index::Seen> for Verdict {
    fn from(v: crate::index::Seen) -> Self {
        use crate::index::Seen;
        match v {
            Seen::Chosen => Verdict::Chosen,
            Seen::UpToDate => Verdict::UpToDate,
            Seen::Contained => Verdict::Contained,
            Seen::LocalAhead => Verdict::LocalAhead,
            Seen::Diverged => Verdict::Diverged,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    pub action: Action,
    /// One verdict per incoming copy, in order.
    pub verdicts: Vec<Verdict>,
}

/// One side of a comparison: the local transcript or incoming copy `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Local,
    Copy(usize),
}

/// Decides for one session from byte slices. `local` is `None` when the
/// session is not here. Ties go to the earlier copy, so callers order copies
/// deterministically.
pub fn decide(local: Option<&[u8]>, incoming: &[&[u8]]) -> Plan {
    let bytes = |s: Side| match s {
        Side::Local => local.unwrap_or_default(),
        Side::Copy(i) => incoming[i],
    };
    let lens: Vec<u64> = incoming.iter().map(|c| c.len() as u64).collect();
    decide_with(local.map(|l| l.len() as u64), &lens, |a, b| {
        bytes(a).starts_with(bytes(b))
    })
}

/// The same decision from lengths and an oracle saying whether side `a`
/// starts with side `b`, so that large transcripts can be compared on disk.
/// An absent local transcript counts as empty.
pub fn decide_with(
    local_len: Option<u64>,
    lens: &[u64],
    mut starts_with: impl FnMut(Side, Side) -> bool,
) -> Plan {
    let base_len = local_len.unwrap_or(0);
    let present = local_len.is_some();
    // The longest copy that extends what is here.
    let mut chosen: Option<usize> = None;
    for (i, &len) in lens.iter().enumerate() {
        let longer = chosen.is_none_or(|c| len > lens[c]);
        if len > base_len && longer && (!present || starts_with(Side::Copy(i), Side::Local)) {
            chosen = Some(i);
        }
    }
    let result = chosen.map_or(Side::Local, Side::Copy);
    let result_len = chosen.map_or(base_len, |c| lens[c]);
    let verdicts = lens
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let copy = Side::Copy(i);
            if chosen == Some(i) {
                Verdict::Chosen
            } else if present && len == base_len && starts_with(copy, Side::Local) {
                Verdict::UpToDate
            } else if present && len <= base_len && starts_with(Side::Local, copy) {
                Verdict::LocalAhead
            } else if len <= result_len
                && (len == 0 || (result != Side::Local || present) && starts_with(result, copy))
            {
                Verdict::Contained
            } else {
                Verdict::Diverged
            }
        })
        .collect();
    let action = match (present, chosen) {
        (_, None) => Action::Keep,
        (false, Some(from)) => Action::Install { from },
        (true, Some(from)) => Action::FastForward { from },
    };
    Plan { action, verdicts }
}

/// What becomes of one side file that arrived with a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PartAction {
    /// Absent here, shorter here and extended by the incoming one, or
    /// superseded: write the incoming file.
    Write,
    /// The same here.
    Same,
    /// Kept: this machine's file is longer and starts with the incoming one.
    LocalAhead,
    /// Kept: the two differ, and nothing says which is newer.
    Differs,
}

/// Decides for one side file from its lengths and `same_prefix(n)`, whether
/// the first `n` bytes of both agree. `supersedes` says the incoming file is
/// the newer state of a file rewritten whole: the session's transcript here
/// is a strict prefix of the incoming one, so nothing was done here since.
/// Files the client only appends to (subagent transcripts) never supersede:
/// like transcripts, they are only ever extended.
pub fn decide_part(
    local_len: Option<u64>,
    incoming_len: u64,
    same_prefix: impl FnOnce(u64) -> bool,
    supersedes: bool,
) -> PartAction {
    let Some(local_len) = local_len else {
        return PartAction::Write;
    };
    let agree = same_prefix(local_len.min(incoming_len));
    match (agree, local_len.cmp(&incoming_len)) {
        (true, std::cmp::Ordering::Equal) => PartAction::Same,
        (true, std::cmp::Ordering::Less) => PartAction::Write,
        _ if supersedes => PartAction::Write,
        (true, std::cmp::Ordering::Greater) => PartAction::LocalAhead,
        (false, _) => PartAction::Differs,
    }
}

/// How the transcript here relates to this machine's earlier copy in the
/// transport.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Earlier {
    /// The same bytes, the same place and side files.
    Same,
    /// It starts with the earlier copy's bytes, and has more (or moved).
    Extended,
    /// It no longer starts with them: truncated or rewritten here.
    Rewound,
}

pub fn earlier(starts_with_it: bool, same: bool) -> Earlier {
    match (starts_with_it, same) {
        (true, true) => Earlier::Same,
        (true, false) => Earlier::Extended,
        (false, _) => Earlier::Rewound,
    }
}

/// What push does with a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PushAction {
    Send,
    /// Already there as it is here.
    Unchanged,
    /// Sending would take lines away from every other machine.
    Refuse,
}

/// Push never rewinds: this machine's earlier copy is only replaced by one
/// that extends it, unless forced.
pub fn push_action(earlier: Option<Earlier>, force: bool) -> PushAction {
    match earlier {
        None | Some(Earlier::Extended) => PushAction::Send,
        Some(Earlier::Same) => PushAction::Unchanged,
        Some(Earlier::Rewound) if force => PushAction::Send,
        Some(Earlier::Rewound) => PushAction::Refuse,
    }
}

/// What is known of this machine's own object of a session, and of the
/// other machine's copy the local transcript now equals.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnAndCover<'a> {
    /// Transcript bytes in this machine's object (recorded at push).
    pub own_len: u64,
    /// Whether the local transcript starts with exactly those bytes (by
    /// their recorded hash): then they are a prefix of the cover too.
    pub own_is_prefix: bool,
    /// Side files this machine's object carried, by path.
    pub own_parts: Vec<&'a str>,
    pub cover_len: u64,
    pub cover_parts: Vec<&'a str>,
    /// This machine's name and the cover's owner's.
    pub me: &'a str,
    pub cover_machine: &'a str,
}

/// Whether this machine's own object may go from the transport: the cover
/// holds all it held (transcript and every side file), and of two equal
/// copies only one side ever removes its own (the machine whose name sorts
/// after the other's), so two machines each seeing the other's equal copy
/// never both remove theirs.
pub fn own_copy_superseded(f: &OwnAndCover) -> bool {
    let extended = f.own_len < f.cover_len || (f.own_len == f.cover_len && f.me > f.cover_machine);
    extended && f.own_is_prefix && f.own_parts.iter().all(|p| f.cover_parts.contains(p))
}

/// Whether push may skip a transcript that a pull left equal to another
/// machine's copy: only while that copy is still there as it was, and the
/// transcript has not changed here since.
pub fn held_elsewhere(copy_unchanged: bool, unchanged_here: bool) -> bool {
    copy_unchanged && unchanged_here
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    fn plan(local: Option<&str>, incoming: &[&str]) -> (Action, Vec<Verdict>) {
        let copies: Vec<&[u8]> = incoming.iter().map(|s| s.as_bytes()).collect();
        let p = decide(local.map(str::as_bytes), &copies);
        (p.action, p.verdicts)
    }

    #[test]
    fn absent_installs() {
        assert_eq!(
            plan(None, &["a\n"]),
            (Action::Install { from: 0 }, vec![Chosen])
        );
    }

    #[test]
    fn identical_does_nothing() {
        assert_eq!(plan(Some("a\n"), &["a\n"]), (Action::Keep, vec![UpToDate]));
    }

    #[test]
    fn prefix_fast_forwards() {
        assert_eq!(
            plan(Some("a\n"), &["a\nb\n"]),
            (Action::FastForward { from: 0 }, vec![Chosen])
        );
    }

    #[test]
    fn local_ahead_keeps() {
        assert_eq!(
            plan(Some("a\nb\n"), &["a\n"]),
            (Action::Keep, vec![LocalAhead])
        );
    }

    #[test]
    fn diverged_keeps_local() {
        assert_eq!(
            plan(Some("a\nb\n"), &["a\nc\n"]),
            (Action::Keep, vec![Diverged])
        );
    }

    #[test]
    fn the_copy_that_extends_the_others_wins() {
        assert_eq!(
            plan(None, &["a\n", "a\nb\nc\n", "a\nb\n"]),
            (
                Action::Install { from: 1 },
                vec![Contained, Chosen, Contained]
            )
        );
        assert_eq!(
            plan(Some("a\n"), &["a\nb\n", "a\n", "a\nb\nc\n"]),
            (
                Action::FastForward { from: 2 },
                vec![Contained, UpToDate, Chosen]
            )
        );
    }

    #[test]
    fn copies_that_diverge_from_each_other() {
        // The longer extension is written; the other is reported, not lost.
        assert_eq!(
            plan(Some("a\n"), &["a\nb\n", "a\ncc\n"]),
            (Action::FastForward { from: 1 }, vec![Diverged, Chosen])
        );
        // Equal length: the first wins, deterministically.
        assert_eq!(
            plan(None, &["a\nb\n", "a\nc\n"]),
            (Action::Install { from: 0 }, vec![Chosen, Diverged])
        );
    }

    #[test]
    fn nothing_incoming() {
        assert_eq!(plan(Some("a\n"), &[]), (Action::Keep, vec![]));
        assert_eq!(plan(None, &[]), (Action::Keep, vec![]));
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    /// A shared history, then per side a choice of: stop somewhere in the
    /// history, or continue it with lines of its own.
    fn branch() -> impl Strategy<Value = (usize, Vec<String>)> {
        (0usize..6, prop::collection::vec("[a-c]{0,3}", 0..4))
    }

    fn build(base: &[String], (cut, extra): &(usize, Vec<String>)) -> Vec<u8> {
        let keep = (*cut).min(base.len());
        let lines = if extra.is_empty() {
            &base[..keep]
        } else {
            base
        };
        lines
            .iter()
            .chain(extra)
            .flat_map(|l| format!("{{\"l\":\"{l}\"}}\n").into_bytes())
            .collect()
    }

    proptest! {
        /// Whatever two machines know of each other's copies, they never
        /// both remove their own, and one removes its own only when the
        /// other's holds all of it.
        #[test]
        fn two_machines_never_both_remove_their_copies(
            a_len in 0u64..5, b_len in 0u64..5,
            a_parts in proptest::collection::vec(0u8..3, 0..3),
            b_parts in proptest::collection::vec(0u8..3, 0..3),
            same_history in any::<bool>(),
        ) {
            let name = |p: &u8| ["subagents/x.jsonl", "tasks/1.json", "todos/agent-a.json"][*p as usize];
            let (ap, bp): (Vec<&str>, Vec<&str>) =
                (a_parts.iter().map(name).collect(), b_parts.iter().map(name).collect());
            let a = OwnAndCover {
                own_len: a_len, own_is_prefix: same_history && a_len <= b_len,
                own_parts: ap.clone(), cover_len: b_len, cover_parts: bp.clone(),
                me: "a", cover_machine: "b",
            };
            let b = OwnAndCover {
                own_len: b_len, own_is_prefix: same_history && b_len <= a_len,
                own_parts: bp.clone(), cover_len: a_len, cover_parts: ap.clone(),
                me: "b", cover_machine: "a",
            };
            prop_assert!(!(own_copy_superseded(&a) && own_copy_superseded(&b)));
            for (f, own, cover) in [(&a, &ap, &bp), (&b, &bp, &ap)] {
                if own_copy_superseded(f) {
                    prop_assert!(f.own_len <= f.cover_len && f.own_is_prefix);
                    prop_assert!(own.iter().all(|p| cover.contains(p)));
                }
            }
        }

        /// Whatever the plan decides, every line of the local transcript and
        /// of every copy survives: in the result, or in a fork (Diverged).
        #[test]
        fn no_line_is_ever_lost(
            base in prop::collection::vec("[a-c]{0,3}", 0..6),
            local in prop::option::of(branch()),
            copies in prop::collection::vec(branch(), 0..4),
        ) {
            let local = local.map(|b| build(&base, &b));
            let copies: Vec<Vec<u8>> = copies.iter().map(|b| build(&base, b)).collect();
            let refs: Vec<&[u8]> = copies.iter().map(Vec::as_slice).collect();
            let plan = decide(local.as_deref(), &refs);
            let result: &[u8] = match plan.action {
                Action::Install { from } | Action::FastForward { from } => &copies[from],
                Action::Keep => local.as_deref().unwrap_or_default(),
            };
            if let Some(local) = &local {
                prop_assert!(result.starts_with(local), "local lines lost");
                prop_assert!(!matches!(plan.action, Action::Install { .. }), "installed over a local transcript");
            } else {
                prop_assert!(!matches!(plan.action, Action::FastForward { .. }), "fast-forwarded nothing");
            }
            for (copy, verdict) in copies.iter().zip(&plan.verdicts) {
                match verdict {
                    Verdict::Diverged => prop_assert!(!result.starts_with(copy)),
                    _ => prop_assert!(result.starts_with(copy), "{verdict:?} copy not kept"),
                }
            }
            prop_assert_eq!(plan.verdicts.len(), copies.len());
        }
    }

    #[test]
    fn side_files_are_added_or_extended_and_superseded_only_when_newer() {
        let part = |local: Option<&str>, incoming: &str, supersedes: bool| {
            decide_part(
                local.map(|l| l.len() as u64),
                incoming.len() as u64,
                |n| local.unwrap()[..n as usize] == incoming[..n as usize],
                supersedes,
            )
        };
        for supersedes in [false, true] {
            assert_eq!(part(None, "a", supersedes), PartAction::Write);
            assert_eq!(part(Some("ab"), "ab", supersedes), PartAction::Same);
            assert_eq!(part(Some("ab"), "abc", supersedes), PartAction::Write);
            assert_eq!(part(Some(""), "abc", supersedes), PartAction::Write);
        }
        assert_eq!(part(Some("abc"), "ab", false), PartAction::LocalAhead);
        assert_eq!(part(Some("xbc"), "abc", false), PartAction::Differs);
        assert_eq!(part(Some("abc"), "ab", true), PartAction::Write);
        assert_eq!(part(Some("xbc"), "abc", true), PartAction::Write);
    }
}
