//! Where each incoming copy of a session goes on this machine.
//!
//! A branch is known by its content, not its id: two transcripts are the
//! same branch when one starts with the other once their `sessionId`
//! values are masked (a fork differs from its origin only there). So a
//! branch that comes back under another id — this machine's own session
//! under the fork id another machine gave it, a fork of a fork, the same
//! conversation pulled by two machines under two ids — lands in the
//! session here that holds it, and a new session is made only for lines
//! no session here has.

use super::{Action, Side, Verdict, decide_with};

/// One party to a comparison: the session of the copies' own id here,
/// another session here (by index), or incoming copy `i`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Who {
    Own,
    Other(usize),
    Copy(usize),
}

/// Where a group of copies goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Home {
    /// The session of the copies' own id (here, or new under that id).
    Own,
    /// Another session here that holds the same conversation.
    Other(usize),
    /// A new session beside the others (a fork): the `n`-th of this plan.
    Fork(usize),
}

/// What one home gets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub home: Home,
    /// What becomes of the home's transcript; `from` indexes the copies.
    pub action: Action,
    /// The copies this home takes, with the plan's verdict on each (never
    /// `Diverged`: every line of each is in the home afterwards).
    pub copies: Vec<(usize, Verdict)>,
}

/// Places every copy of one session (`copies`: their lengths, longest
/// first) given the session of that id here (`own`: its length, if here)
/// and the other sessions here that may hold the same conversation
/// (`others`: lengths, in the order to try them, longest first). Lengths
/// and `starts_with` are of transcripts with `sessionId` masked.
///
/// In order: the own session takes every copy it can (as [`decide_with`]
/// says); another session takes the copies left that are a prefix of it or
/// extend it (the longest such session first, so a copy goes where it is
/// already held rather than growing a second copy of a conversation); what
/// is left becomes new sessions, the first under the own id if that is
/// not here. Every copy is placed exactly once, in a home whose transcript
/// afterwards starts with it; no home loses a line.
pub fn place(
    own: Option<u64>,
    others: &[u64],
    copies: &[u64],
    mut starts_with: impl FnMut(Who, Who) -> bool,
) -> Vec<Placement> {
    let mut left: Vec<usize> = (0..copies.len()).collect();
    let mut out = Vec::new();
    // Decides for `home` (length `len`, if present) among the copies in
    // `pick`, and moves those it takes out of `left`.
    let settle = |home: Home,
                  home_who: Who,
                  len: Option<u64>,
                  pick: Vec<usize>,
                  left: &mut Vec<usize>,
                  starts_with: &mut dyn FnMut(Who, Who) -> bool| {
        let lens: Vec<u64> = pick.iter().map(|&c| copies[c]).collect();
        let who = |s: Side| match s {
            Side::Local => home_who,
            Side::Copy(k) => Who::Copy(pick[k]),
        };
        let plan = decide_with(len, &lens, |a, b| starts_with(who(a), who(b)));
        let taken: Vec<(usize, Verdict)> = pick
            .iter()
            .zip(&plan.verdicts)
            .filter(|(_, v)| **v != Verdict::Diverged)
            .map(|(&c, &v)| (c, v))
            .collect();
        left.retain(|c| !taken.iter().any(|(t, _)| t == c));
        let action = match plan.action {
            Action::Install { from } => Action::Install { from: pick[from] },
            Action::FastForward { from } => Action::FastForward { from: pick[from] },
            Action::Keep => Action::Keep,
        };
        Placement {
            home,
            action,
            copies: taken,
        }
    };
    if own.is_some() {
        let pick = left.clone();
        let p = settle(Home::Own, Who::Own, own, pick, &mut left, &mut starts_with);
        out.push(p);
    }
    for (j, &len) in others.iter().enumerate() {
        if left.is_empty() {
            break;
        }
        let other = Who::Other(j);
        let pick: Vec<usize> = left
            .iter()
            .copied()
            .filter(|&c| {
                let copy = Who::Copy(c);
                if copies[c] >= len {
                    starts_with(copy, other)
                } else {
                    starts_with(other, copy)
                }
            })
            .collect();
        if !pick.is_empty() {
            let p = settle(
                Home::Other(j),
                other,
                Some(len),
                pick,
                &mut left,
                &mut starts_with,
            );
            out.push(p);
        }
    }
    let mut forks = 0;
    while !left.is_empty() {
        let home = if own.is_none() && !out.iter().any(|p| p.home == Home::Own) {
            Home::Own
        } else {
            forks += 1;
            Home::Fork(forks - 1)
        };
        let pick = left.clone();
        // An absent home is never compared with.
        let p = settle(home, Who::Own, None, pick, &mut left, &mut starts_with);
        out.push(p);
    }
    out
}

impl Placement {
    /// The copy this home's transcript equals once the placement is done
    /// (`written`: the copy written, if the write happened): holding it here
    /// adds nothing to the sync dir, so push need not send it.
    pub fn cover(&self, written: Option<usize>) -> Option<usize> {
        written.or_else(|| {
            self.copies
                .iter()
                .find(|(_, v)| *v == Verdict::UpToDate)
                .map(|(c, _)| *c)
        })
    }
}

/// The order in which a pull places incoming sessions: those whose id is
/// here first, so a copy goes to the session of its own id before another
/// session's branch can claim it; otherwise as given.
pub fn placing_order<T>(groups: &mut [T], here: impl Fn(&T) -> bool) {
    groups.sort_by_key(|g| !here(g));
}

/// Orders the other sessions here for [`place`]: longest first (a copy
/// goes where it is already held), then by id.
pub fn rank_others<I: Ord>(others: &mut [(I, u64)]) {
    others.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
}

/// [`place`] on byte slices (already masked), for tests and simulations.
pub fn place_bytes(own: Option<&[u8]>, others: &[&[u8]], copies: &[&[u8]]) -> Vec<Placement> {
    let bytes = |w: Who| match w {
        Who::Own => own.unwrap_or_default(),
        Who::Other(j) => others[j],
        Who::Copy(i) => copies[i],
    };
    let len = |b: &[u8]| b.len() as u64;
    place(
        own.map(len),
        &others.iter().map(|o| len(o)).collect::<Vec<_>>(),
        &copies.iter().map(|c| len(c)).collect::<Vec<_>>(),
        |a, b| bytes(a).starts_with(bytes(b)),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use Verdict::*;

    fn homes(own: Option<&str>, others: &[&str], copies: &[&str]) -> Vec<Placement> {
        let o: Vec<&[u8]> = others.iter().map(|s| s.as_bytes()).collect();
        let c: Vec<&[u8]> = copies.iter().map(|s| s.as_bytes()).collect();
        place_bytes(own.map(str::as_bytes), &o, &c)
    }

    fn at(home: Home, action: Action, copies: Vec<(usize, Verdict)>) -> Placement {
        Placement {
            home,
            action,
            copies,
        }
    }

    #[test]
    fn a_copy_of_the_session_here_goes_to_it() {
        assert_eq!(
            homes(Some("a\n"), &[], &["a\nb\n"]),
            vec![at(
                Home::Own,
                Action::FastForward { from: 0 },
                vec![(0, Chosen)]
            )]
        );
    }

    #[test]
    fn a_diverged_copy_extends_the_fork_that_holds_its_branch() {
        assert_eq!(
            homes(Some("a\nb\n"), &["a\nc\n"], &["a\nc\nd\n"]),
            vec![
                at(Home::Own, Action::Keep, vec![]),
                at(
                    Home::Other(0),
                    Action::FastForward { from: 0 },
                    vec![(0, Chosen)]
                ),
            ]
        );
    }

    #[test]
    fn a_branch_back_under_another_id_is_the_session_that_holds_it() {
        // Not here by its id, but its lines are those of a session here.
        assert_eq!(
            homes(None, &["a\nb\n"], &["a\nb\nc\n"]),
            vec![at(
                Home::Other(0),
                Action::FastForward { from: 0 },
                vec![(0, Chosen)]
            )]
        );
        assert_eq!(
            homes(None, &["a\nb\nc\n"], &["a\nb\n"]),
            vec![at(Home::Other(0), Action::Keep, vec![(0, LocalAhead)])]
        );
    }

    #[test]
    fn new_lines_make_a_session_under_the_own_id_then_forks() {
        assert_eq!(
            homes(None, &["x\n"], &["a\nb\n", "a\nc\n"]),
            vec![
                at(Home::Own, Action::Install { from: 0 }, vec![(0, Chosen)]),
                at(
                    Home::Fork(0),
                    Action::Install { from: 1 },
                    vec![(1, Chosen)]
                ),
            ]
        );
        assert_eq!(
            homes(Some("a\nx\n"), &[], &["a\nb\n", "a\nc\n"]),
            vec![
                at(Home::Own, Action::Keep, vec![]),
                at(
                    Home::Fork(0),
                    Action::Install { from: 0 },
                    vec![(0, Chosen)]
                ),
                at(
                    Home::Fork(1),
                    Action::Install { from: 1 },
                    vec![(1, Chosen)]
                ),
            ]
        );
    }

    #[test]
    fn a_copy_goes_where_it_is_already_held() {
        // Both sessions here are its branch; the one holding it all wins.
        assert_eq!(
            homes(None, &["a\nb\nc\n", "a\n"], &["a\nb\n"]),
            vec![at(Home::Other(0), Action::Keep, vec![(0, LocalAhead)])]
        );
    }
}
