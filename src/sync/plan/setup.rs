//! What a pull does with one file of the setup (settings, agents, project
//! memory…), decided from hashes alone: a three-way merge against what this
//! machine last synced.
//!
//! Two bases, because the two sides move at different times: `mine` is
//! the file here as the last pull left it, `seen` is the other machine's
//! version that pull read. A side "changed" when it differs from its base.
//! With one base for both, a conflict would come back on every pull (the
//! base would match neither side again) or silently flip to one side.

/// What becomes of one file here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SetupAction {
    /// Both sides hold the same (or both lack it): nothing to write.
    Same,
    /// Leave this machine's as it is (changed only here, or the other side
    /// did not change it); the next push sends it.
    Keep,
    /// Write the other machine's version (changed only there, or it
    /// changed a file deleted here: a deletion travels only over an
    /// unchanged file).
    Take,
    /// Remove the file here: deleted there, unchanged here.
    Delete,
    /// Changed on both sides: keep this machine's and save the other's
    /// beside it as `<name>.from-<machine>`.
    Conflict,
}

/// Decides one file. Each argument is a content hash, `None` for absent.
pub fn decide<H: PartialEq>(
    mine: Option<&H>,
    local: Option<&H>,
    seen: Option<&H>,
    remote: Option<&H>,
) -> SetupAction {
    if local == remote {
        return SetupAction::Same;
    }
    if remote == seen {
        return SetupAction::Keep;
    }
    let local_changed = local != mine;
    match (local_changed, remote) {
        (false, Some(_)) => SetupAction::Take,
        (false, None) => SetupAction::Delete,
        // Changed here, deleted there: the edit wins.
        (true, None) => SetupAction::Keep,
        // Deleted here, changed there: the edit wins.
        (true, Some(_)) if local.is_none() => SetupAction::Take,
        (true, Some(_)) => SetupAction::Conflict,
    }
}

/// This machine's base for a file, given what the other machine says it
/// last read of this machine's (`theirs_of_mine`) and the version of this
/// machine's it kept its own over in a conflict it still holds
/// (`kept_over_mine`). A version the other side has read and accepted is
/// in its history, so an edit it made since supersedes it, as after a
/// conflict it resolved. One it read and kept its own over is not: that
/// is still an edit here, and the other side's a conflict.
pub fn base_here<'a, H: PartialEq>(
    mine: Option<&'a H>,
    local: Option<&'a H>,
    theirs_of_mine: Option<&'a H>,
    kept_over_mine: Option<&'a H>,
) -> Option<&'a H> {
    match local {
        Some(_) if local == theirs_of_mine && local != kept_over_mine => local,
        _ => mine,
    }
}

impl SetupAction {
    /// Whether the file here ends up as the remote version.
    pub fn takes(self) -> bool {
        matches!(self, SetupAction::Take)
    }
}

#[cfg(test)]
mod tests {
    use super::SetupAction::*;
    use super::*;
    use proptest::prelude::*;

    fn d(mine: Option<u8>, local: Option<u8>, seen: Option<u8>, remote: Option<u8>) -> SetupAction {
        decide(
            mine.as_ref(),
            local.as_ref(),
            seen.as_ref(),
            remote.as_ref(),
        )
    }

    #[test]
    fn the_issue_s_rules() {
        let (a, b, c) = (Some(1), Some(2), Some(3));
        assert_eq!(d(a, a, a, b), Take, "changed only there");
        assert_eq!(d(a, b, a, a), Keep, "changed only here");
        assert_eq!(d(a, b, a, c), Conflict, "changed on both");
        assert_eq!(d(a, b, a, b), Same, "the same change on both");
        assert_eq!(d(a, a, a, None), Delete, "deleted there, unchanged here");
        assert_eq!(d(a, b, a, None), Keep, "deleted there, changed here");
        assert_eq!(d(a, None, a, a), Keep, "deleted here: the push sends that");
        assert_eq!(d(a, None, a, b), Take, "deleted here, changed there");
        assert_eq!(d(None, None, None, a), Take, "new there");
        assert_eq!(d(None, a, None, None), Keep, "new here");
        assert_eq!(d(None, a, None, b), Conflict, "new on both, different");
    }

    #[test]
    fn a_resolved_conflict_travels_and_does_not_come_back() {
        // Here: kept 2 over their 3; then they resolve to 4.
        assert_eq!(d(Some(2), Some(2), Some(3), Some(4)), Take);
        // Their 3 again (nothing new there): stays resolved.
        assert_eq!(d(Some(2), Some(2), Some(3), Some(3)), Keep);
    }

    #[test]
    fn an_edit_the_other_side_has_read_is_superseded_by_its_next() {
        // Here: 2 kept over their 3 (conflict); they read 2 and resolve to 4.
        let base = base_here(Some(&1), Some(&2), Some(&2), None);
        assert_eq!(decide(base, Some(&2), Some(&3), Some(&4)), Take);
        // They have not read 2: it stays, theirs goes beside.
        let base = base_here(Some(&1), Some(&2), Some(&1), None);
        assert_eq!(decide(base, Some(&2), Some(&3), Some(&4)), Conflict);
        // A deletion here is never taken as read.
        assert_eq!(base_here(Some(&1), None, None, None), Some(&1));
    }

    #[test]
    fn a_conflict_kept_there_is_not_a_resolution() {
        // Both edited 1: here 2, there 3. They read 2, kept their 3 and
        // saved 2 beside: here keeps 2 and saves their 3 beside.
        let base = base_here(Some(&1), Some(&2), Some(&2), Some(&2));
        assert_eq!(decide(base, Some(&2), Some(&1), Some(&3)), Conflict);
    }

    fn version() -> impl Strategy<Value = Option<u8>> {
        prop::option::of(0u8..4)
    }

    proptest! {
        /// Every version that differs from its base (an edit, on either
        /// side) ends up in place or beside the file: none is lost.
        #[test]
        fn no_edit_is_ever_lost(mine in version(), local in version(), seen in version(), remote in version()) {
            let action = d(mine, local, seen, remote);
            let in_place = match action {
                Same | Keep | Conflict => local,
                Take => remote,
                Delete => None,
            };
            let beside = (action == Conflict).then_some(remote).flatten();
            let kept = |v: Option<u8>| v.is_none() || in_place == v || beside == v;
            if local != mine {
                prop_assert!(kept(local), "{action:?} loses this machine's edit");
            }
            if remote != seen {
                prop_assert!(kept(remote), "{action:?} loses the other machine's edit");
            }
            // A deletion removes only an unchanged file.
            if action == Delete {
                prop_assert_eq!(local, mine);
            }
        }

        /// The same across two machines: whatever the other machine read
        /// of this one's, a version here it has not accepted (never read,
        /// or read and kept its own over) is never lost here, and a
        /// conflict leaves the other's beside.
        #[test]
        fn an_edit_survives_on_the_machine_that_made_it(
            mine in version(), local in version(), seen in version(), remote in version(),
            theirs_of_mine in version(), kept in version(),
        ) {
            let base = base_here(mine.as_ref(), local.as_ref(), theirs_of_mine.as_ref(), kept.as_ref());
            let action = decide(base, local.as_ref(), seen.as_ref(), remote.as_ref());
            let in_place = match action {
                Same | Keep | Conflict => local,
                Take => remote,
                Delete => None,
            };
            let accepted = local == theirs_of_mine && local != kept;
            if local.is_some() && local != mine && !accepted {
                prop_assert_eq!(in_place, local, "{:?} loses this machine's edit", action);
            }
            if action == Conflict {
                prop_assert!(remote.is_some() && remote != local);
            }
            if remote != seen && remote.is_some() {
                prop_assert!(in_place == remote || action == Conflict, "{:?} loses theirs", action);
            }
        }

        /// When only one side changed, the result is that side.
        #[test]
        fn one_sided_changes_win(base in version(), other in version()) {
            let action = d(base, base, base, other);
            let result = match action { Take => other, Delete => None, _ => base };
            prop_assert_eq!(result, other);
            let action = d(base, other, base, base);
            prop_assert!(matches!(action, Keep | Same));
        }
    }
}
