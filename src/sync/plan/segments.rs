//! Segments: which of them make a copy, and when a push writes one.
//!
//! A copy in the sync dir is a whole bundle (its base) and the segments
//! after it. [`chain`] says which segments continue a state, in order, and
//! refuses a copy whose segments do not fit; [`shape`] says whether a push
//! appends a segment or stores the copy whole again (compaction).

use crate::bundle::PartBody;
use crate::bundle::segment::{BaseId, Point};

/// A chain passing this many segments is stored whole again.
pub const MAX_SEGMENTS: u32 = 16;

/// What a segment says of itself, as far as its chain goes.
#[derive(Debug, Clone)]
pub struct SegmentFacts<'a> {
    /// The place its object's name gives it.
    pub name_seq: u32,
    pub base: &'a BaseId,
    pub seq: u32,
    pub extends: &'a Point,
    /// Transcript bytes it appends, and their SHA-256.
    pub appended: u64,
    pub sha256: &'a str,
    pub parts: &'a [PartBody],
}

/// Why the segments of a copy do not make a chain.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainError {
    #[error("segment {name_seq} says it is segment {seq}: it was renamed or altered")]
    Misnamed { name_seq: u32, seq: u32 },
    #[error("segment {0} is missing (a later one is there): the copy is incomplete")]
    Missing(u32),
    #[error(
        "segment {0} does not extend the state before it (a truncated, reordered or altered chain)"
    )]
    NotExtending(u32),
}

/// A chain's state: the base it starts from, the last segment taken in,
/// and where that left the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reached {
    /// Indexes into the segments given, in the order to apply them.
    pub apply: Vec<usize>,
    /// Segments that name another base: leftovers of a copy stored whole
    /// since, not part of this one.
    pub leftovers: Vec<usize>,
    pub seq: u32,
    pub point: Point,
}

/// The segments of `base` that continue `start` (reached at segment
/// `from_seq`, 0 for the base itself), in order. Every segment of this
/// base after `from_seq` must be there, in sequence, and each must extend
/// exactly the state the one before left; one that does not spoils the
/// copy. Segments of another base are left over and ignored.
pub fn chain(
    base: &BaseId,
    start: &Point,
    from_seq: u32,
    segments: &[SegmentFacts],
) -> Result<Reached, ChainError> {
    let mut mine = Vec::new();
    let mut leftovers = Vec::new();
    for (i, s) in segments.iter().enumerate() {
        if s.name_seq != s.seq {
            return Err(ChainError::Misnamed {
                name_seq: s.name_seq,
                seq: s.seq,
            });
        }
        if s.base != base {
            leftovers.push(i);
        } else if s.seq > from_seq {
            mine.push(i);
        }
    }
    mine.sort_by_key(|&i| segments[i].seq);
    let mut point = start.clone();
    let mut seq = from_seq;
    for &i in &mine {
        let s = &segments[i];
        if s.seq != seq + 1 {
            return Err(ChainError::Missing(seq + 1));
        }
        if *s.extends != point {
            return Err(ChainError::NotExtending(s.seq));
        }
        point = point.next(s.seq, s.appended, s.sha256, s.parts);
        seq = s.seq;
    }
    Ok(Reached {
        apply: mine,
        leftovers,
        seq,
        point,
    })
}

/// What a push stores for a session whose copy is already there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Only what was added since: a new segment.
    Segment,
    /// The whole session again, as a new base (the chain's segments go).
    Whole,
}

/// What is known when a push has something new for a copy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShapeFacts {
    /// The local transcript starts with every byte the copy holds, and the
    /// session is in the same place (working directory).
    pub extends_copy: bool,
    /// A side file the copy holds is gone here.
    pub part_gone: bool,
    /// Segments in the chain now, and their stored bytes.
    pub segments: u32,
    pub segment_bytes: u64,
    /// The base's stored bytes.
    pub base_bytes: u64,
}

/// A segment when the new bytes only extend the copy; the copy whole again
/// when they do not (a rewrite, a move, a side file gone: a segment can
/// only add), or when the chain is long (past [`MAX_SEGMENTS`], or
/// holding more than half the base's bytes), so a reader never has many
/// objects to fetch nor much more to read than the session's size.
pub fn shape(f: ShapeFacts) -> Shape {
    if !f.extends_copy || f.part_gone {
        return Shape::Whole;
    }
    if f.segments >= MAX_SEGMENTS || f.segment_bytes > f.base_bytes / 2 {
        return Shape::Whole;
    }
    Shape::Segment
}

/// An object of a session in the transport now, as a pull sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed<'a> {
    pub name: &'a str,
    pub stamp: crate::index::Stamp,
    /// For a segment: its base's name and its sequence number.
    pub segment_of: Option<(&'a str, u32)>,
}

/// Whether a session changed since the last pull only by segments added
/// to the copy `cover` (whose state at segment `seq` the local transcript
/// equals): every object the last pull read is there unchanged, and every
/// new one is the next segment of that copy. Then those segments alone,
/// appended, bring the transcript to the copy's new state; their names
/// are returned in order. Anything else needs the whole session read.
pub fn only_appended<'a>(
    before: &[(String, crate::index::Stamp)],
    now: &[Listed<'a>],
    cover: &str,
    seq: u32,
) -> Option<Vec<&'a str>> {
    if !before
        .iter()
        .all(|(n, s)| now.iter().any(|l| l.name == n && l.stamp == *s))
    {
        return None;
    }
    let mut new: Vec<(u32, &str)> = Vec::new();
    for l in now
        .iter()
        .filter(|l| !before.iter().any(|(n, _)| n == l.name))
    {
        match l.segment_of {
            Some((base, q)) if base == cover && q > seq => new.push((q, l.name)),
            _ => return None,
        }
    }
    new.sort();
    let consecutive = new
        .iter()
        .enumerate()
        .all(|(i, (q, _))| *q == seq + 1 + i as u32);
    (consecutive && !new.is_empty()).then(|| new.into_iter().map(|(_, n)| n).collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn base() -> BaseId {
        BaseId {
            exported_at: 7,
            sha256: "a".repeat(64),
        }
    }

    struct Seg {
        base: BaseId,
        name_seq: u32,
        seq: u32,
        extends: Point,
        appended: u64,
        sha256: String,
    }

    fn honest(base: &BaseId, start: &Point, n: u32, sizes: &[u64]) -> Vec<Seg> {
        let mut point = start.clone();
        (1..=n)
            .map(|seq| {
                let appended = sizes[(seq as usize - 1) % sizes.len()];
                let sha256 = format!("{seq:064x}");
                let s = Seg {
                    base: base.clone(),
                    name_seq: seq,
                    seq,
                    extends: point.clone(),
                    appended,
                    sha256: sha256.clone(),
                };
                point = point.next(seq, appended, &sha256, &[]);
                s
            })
            .collect()
    }

    fn facts(segs: &[Seg]) -> Vec<SegmentFacts<'_>> {
        segs.iter()
            .map(|s| SegmentFacts {
                name_seq: s.name_seq,
                base: &s.base,
                seq: s.seq,
                extends: &s.extends,
                appended: s.appended,
                sha256: &s.sha256,
                parts: &[],
            })
            .collect()
    }

    proptest! {
        /// An honest chain, listed in any order, is taken in whole and in
        /// sequence, from the start or from any state along it.
        #[test]
        fn an_honest_chain_is_taken_in_order(
            n in 0u32..20,
            sizes in prop::collection::vec(0u64..5000, 1..5),
            shuffle in any::<u64>(),
            from in 0u32..20,
        ) {
            let b = base();
            let start = Point::base(100, &b.sha256);
            let segs = honest(&b, &start, n, &sizes);
            let mut listed = facts(&segs);
            // A deterministic shuffle.
            let len = listed.len();
            for i in 0..len {
                listed.swap(i, (shuffle.rotate_left(i as u32) as usize) % len);
            }
            let r = chain(&b, &start, 0, &listed).unwrap();
            prop_assert_eq!(r.seq, n);
            prop_assert_eq!(r.apply.len() as u32, n);
            let total: u64 = segs.iter().map(|s| s.appended).sum();
            prop_assert_eq!(r.point.len, 100 + total);
            for (k, &i) in r.apply.iter().enumerate() {
                prop_assert_eq!(listed[i].seq, k as u32 + 1);
            }
            // From a state reached earlier: the rest only, same end.
            let from = from.min(n);
            let mid = if from == 0 { start.clone() } else {
                let s = &segs[from as usize - 1];
                s.extends.next(s.seq, s.appended, &s.sha256, &[])
            };
            let r2 = chain(&b, &mid, from, &listed).unwrap();
            prop_assert_eq!(r2.point, r.point);
            prop_assert_eq!(r2.apply.len() as u32, n - from);
        }

        /// Any one segment dropped, altered, renamed or made to extend
        /// another state spoils the chain; one of another base is ignored.
        #[test]
        fn a_damaged_chain_is_refused(
            n in 2u32..12,
            victim in 0usize..12,
            how in 0u8..5,
        ) {
            let b = base();
            let start = Point::base(100, &b.sha256);
            let mut segs = honest(&b, &start, n, &[10, 300]);
            let v = victim % (n as usize - 1); // never the last when dropping
            match how {
                0 => { segs.remove(v); }
                1 => segs[v].sha256 = "f".repeat(64),
                2 => segs[v].name_seq += 100,
                3 => segs[v].extends = segs[v + 1].extends.clone(),
                _ => segs[v].appended += 1,
            }
            let listed = facts(&segs);
            let r = chain(&b, &start, 0, &listed);
            prop_assert!(r.is_err(), "{how} {v}: {r:?}");
            // A leftover of another base is no part of it.
            let other = BaseId { exported_at: 8, sha256: b.sha256.clone() };
            let mut with_leftover = honest(&b, &start, n, &[10]);
            with_leftover.extend(honest(&other, &start, 3, &[7]));
            let listed = facts(&with_leftover);
            let r = chain(&b, &start, 0, &listed).unwrap();
            prop_assert_eq!(r.seq, n);
            prop_assert_eq!(r.leftovers.len(), 3);
        }

        /// A chain stays short: after any history of appends, compaction
        /// keeps it under the cap and its bytes near the base's.
        #[test]
        fn chains_stay_short(appends in prop::collection::vec(1u64..100_000, 1..200)) {
            let (mut base, mut segments, mut seg_bytes) = (1000u64, 0u32, 0u64);
            for a in appends {
                match shape(ShapeFacts {
                    extends_copy: true,
                    part_gone: false,
                    segments,
                    segment_bytes: seg_bytes,
                    base_bytes: base,
                }) {
                    Shape::Segment => { segments += 1; seg_bytes += a; }
                    Shape::Whole => { base += seg_bytes + a; segments = 0; seg_bytes = 0; }
                }
                prop_assert!(segments <= MAX_SEGMENTS);
                prop_assert!(seg_bytes <= base / 2 + 100_000);
            }
        }
    }

    #[test]
    fn only_new_segments_of_the_covered_copy_are_a_fast_forward() {
        use crate::index::Stamp;
        let st = |n| Stamp {
            size: n,
            mtime_ns: 1,
        };
        let before = vec![
            ("c/x-a.ccsync".to_owned(), st(10)),
            ("c/x-b.ccsync".to_owned(), st(20)),
        ];
        let listed = |extra: Vec<Listed<'static>>| {
            let mut v = vec![
                Listed {
                    name: "c/x-a.ccsync",
                    stamp: st(10),
                    segment_of: None,
                },
                Listed {
                    name: "c/x-b.ccsync",
                    stamp: st(20),
                    segment_of: None,
                },
            ];
            v.extend(extra);
            v
        };
        let seg = |name, base, q| Listed {
            name,
            stamp: st(1),
            segment_of: Some((base, q)),
        };
        let now = listed(vec![
            seg("c/x-a.2.ccseg", "c/x-a.ccsync", 2),
            seg("c/x-a.1.ccseg", "c/x-a.ccsync", 1),
        ]);
        assert_eq!(
            only_appended(&before, &now, "c/x-a.ccsync", 0),
            Some(vec!["c/x-a.1.ccseg", "c/x-a.2.ccseg"])
        );
        // Nothing new, a gap, another copy's segment, a changed base.
        assert_eq!(
            only_appended(&before, &listed(vec![]), "c/x-a.ccsync", 0),
            None
        );
        let gap = listed(vec![seg("c/x-a.2.ccseg", "c/x-a.ccsync", 2)]);
        assert_eq!(only_appended(&before, &gap, "c/x-a.ccsync", 0), None);
        let other = listed(vec![seg("c/x-b.1.ccseg", "c/x-b.ccsync", 1)]);
        assert_eq!(only_appended(&before, &other, "c/x-a.ccsync", 0), None);
        let mut changed = listed(vec![seg("c/x-a.1.ccseg", "c/x-a.ccsync", 1)]);
        changed[1].stamp = st(21);
        assert_eq!(only_appended(&before, &changed, "c/x-a.ccsync", 0), None);
        let gone = vec![
            Listed {
                name: "c/x-a.ccsync",
                stamp: st(10),
                segment_of: None,
            },
            seg("c/x-a.1.ccseg", "c/x-a.ccsync", 1),
        ];
        assert_eq!(only_appended(&before, &gone, "c/x-a.ccsync", 0), None);
    }

    #[test]
    fn only_an_extension_in_place_is_a_segment() {
        let f = ShapeFacts {
            extends_copy: true,
            part_gone: false,
            segments: 0,
            segment_bytes: 0,
            base_bytes: 1 << 20,
        };
        assert_eq!(shape(f), Shape::Segment);
        for g in [
            ShapeFacts {
                extends_copy: false,
                ..f
            },
            ShapeFacts {
                part_gone: true,
                ..f
            },
            ShapeFacts {
                segments: MAX_SEGMENTS,
                ..f
            },
            ShapeFacts {
                segment_bytes: (1 << 19) + 1,
                ..f
            },
        ] {
            assert_eq!(shape(g), Shape::Whole, "{g:?}");
        }
    }
}
