//! Machines simulated in memory, doing random appends, new sessions,
//! pushes and pulls through a shared sync dir, with every decision taken
//! by the plan's functions (what push sends, where each incoming copy
//! goes, which own copies go): once every machine has pushed and then
//! pulled, all must hold the same conversations, none twice, no line lost,
//! with about one copy per conversation in the sync dir; and one more round
//! must change nothing and advise nothing.
//!
//! A transcript is its lines with the `sessionId` masked (numbers here), so
//! writing a copy under another id changes nothing in the model.

use std::collections::{BTreeMap, BTreeSet};

use proptest::prelude::*;

use super::{
    Action, Home, OwnAndCover, PushAction, Verdict, earlier, held_elsewhere, own_copy_superseded,
    place, placing_order, push_action, rank_others,
};

type Lines = Vec<u32>;
type Id = u64;
/// A transcript as a pull left it, the object it then equalled, and that
/// object's version.
type Cover = (Lines, (Id, String), u64);

#[derive(Debug, Clone, PartialEq, Eq)]
struct Object {
    lines: Lines,
    version: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Machine {
    name: String,
    sessions: BTreeMap<Id, Lines>,
    /// Transcripts a pull left equal to a copy: as they were then, and
    /// which object (and its version) they equal.
    covers: BTreeMap<Id, Vec<Cover>>,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct SyncDir {
    objects: BTreeMap<(Id, String), Object>,
    version: u64,
}

fn fork_id(id: Id, machine: &str, generation: u32) -> Id {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    (id, machine, generation).hash(&mut h);
    h.finish() | 1 << 63
}

impl Machine {
    fn push(&mut self, dir: &mut SyncDir) {
        for (id, lines) in &self.sessions {
            let covered = self.covers.get(id).is_some_and(|covers| {
                covers.iter().any(|(then, object, version)| {
                    held_elsewhere(
                        dir.objects
                            .get(object)
                            .is_some_and(|o| o.version == *version),
                        then == lines,
                    )
                })
            });
            if covered {
                continue;
            }
            let key = (*id, self.name.clone());
            let before = dir
                .objects
                .get(&key)
                .map(|o| earlier(lines.starts_with(&o.lines), *lines == o.lines));
            match push_action(before, false) {
                PushAction::Send => {
                    dir.version += 1;
                    let object = Object {
                        lines: lines.clone(),
                        version: dir.version,
                    };
                    dir.objects.insert(key, object);
                }
                PushAction::Unchanged => {}
                PushAction::Refuse => panic!("{} would rewind {id}", self.name),
            }
        }
    }

    /// Pulls everything; returns whether it advised pushing.
    fn pull(&mut self, dir: &mut SyncDir) -> bool {
        let mut groups: BTreeMap<Id, Vec<(String, Object)>> = BTreeMap::new();
        for ((id, m), o) in &dir.objects {
            if *m != self.name {
                groups.entry(*id).or_default().push((m.clone(), o.clone()));
            }
        }
        let mut order: Vec<Id> = groups.keys().copied().collect();
        placing_order(&mut order, |id| self.sessions.contains_key(id));
        let mut advised = false;
        let mut stale = Vec::new();
        for id in order {
            let mut copies = groups.remove(&id).expect("grouped");
            copies.sort_by(|a, b| b.1.lines.len().cmp(&a.1.lines.len()).then(a.0.cmp(&b.0)));
            let own = self.sessions.get(&id).cloned();
            let first = copies[0].1.lines[0];
            let mut ranked: Vec<(Id, u64)> = self
                .sessions
                .iter()
                .filter(|(o, l)| **o != id && l.first() == Some(&first))
                .map(|(o, l)| (*o, l.len() as u64))
                .collect();
            rank_others(&mut ranked);
            let others: Vec<(Id, Lines)> = ranked
                .iter()
                .map(|(o, _)| (*o, self.sessions[o].clone()))
                .collect();
            let copy_lines: Vec<&Lines> = copies.iter().map(|(_, o)| &o.lines).collect();
            let side = |w: super::Who| -> &Lines {
                match w {
                    super::Who::Own => own.as_ref().expect("compared only when here"),
                    super::Who::Other(j) => &others[j].1,
                    super::Who::Copy(i) => copy_lines[i],
                }
            };
            let placements = place(
                own.as_ref().map(|l| l.len() as u64),
                &others.iter().map(|o| o.1.len() as u64).collect::<Vec<_>>(),
                &copy_lines
                    .iter()
                    .map(|l| l.len() as u64)
                    .collect::<Vec<_>>(),
                |a, b| side(a).starts_with(side(b)),
            );
            let mut seen = BTreeSet::new();
            for p in placements {
                for (c, _) in &p.copies {
                    assert!(seen.insert(*c), "copy {c} placed twice");
                }
                let target = match p.home {
                    Home::Own => id,
                    Home::Other(j) => others[j].0,
                    Home::Fork(_) => {
                        let lead = match p.action {
                            Action::Install { from } | Action::FastForward { from } => from,
                            Action::Keep => p.copies[0].0,
                        };
                        (0..)
                            .map(|g| fork_id(id, &copies[lead].0, g))
                            .find(|f| !self.sessions.contains_key(f))
                            .expect("a free fork id")
                    }
                };
                let before = self.sessions.get(&target).cloned();
                let written = match p.action {
                    Action::Install { from } | Action::FastForward { from } => {
                        let new = copy_lines[from].clone();
                        if let Some(old) = &before {
                            assert!(new.starts_with(old), "a pull dropped lines of {target}");
                        }
                        self.sessions.insert(target, new);
                        Some(from)
                    }
                    Action::Keep => None,
                };
                let now = &self.sessions[&target];
                for (c, v) in &p.copies {
                    assert!(now.starts_with(copy_lines[*c]), "{v:?} copy {c} not held");
                }
                let cover = p.cover(written);
                if let Some(c) = cover {
                    let (machine, object) = &copies[c];
                    let record = (now.clone(), (id, machine.clone()), object.version);
                    self.covers.entry(target).or_default().push(record);
                    // This machine's own copy, if the cover holds all of it.
                    let mine = (target, self.name.clone());
                    if let Some(o) = dir.objects.get(&mine) {
                        let facts = OwnAndCover {
                            own_len: o.lines.len() as u64,
                            own_is_prefix: now.starts_with(&o.lines),
                            own_parts: vec![],
                            cover_len: object.lines.len() as u64,
                            cover_parts: vec![],
                            me: &self.name,
                            cover_machine: machine,
                        };
                        if own_copy_superseded(&facts) {
                            stale.push(mine);
                        }
                    }
                }
                let mine = dir.objects.get(&(target, self.name.clone()));
                let ahead = p.copies.iter().any(|(_, v)| *v == Verdict::LocalAhead);
                if ahead && mine.is_none_or(|o| o.lines != *now) {
                    advised = true;
                }
            }
            assert_eq!(seen.len(), copies.len(), "a copy was not placed");
        }
        for key in stale {
            dir.objects.remove(&key);
        }
        advised
    }

    fn conversations(&self) -> Vec<Lines> {
        let mut out: Vec<Lines> = self.sessions.values().cloned().collect();
        out.sort();
        out
    }
}

#[derive(Debug, Clone)]
enum Step {
    /// Go on with the `n`-th session here (modulo how many there are).
    Append(usize, usize),
    /// Start a session of its own.
    Start(usize),
    Push(usize),
    Pull(usize),
}

fn step(machines: usize) -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (0..machines, 0usize..8).prop_map(|(m, n)| Step::Append(m, n)),
        1 => (0..machines).prop_map(Step::Start),
        2 => (0..machines).prop_map(Step::Push),
        2 => (0..machines).prop_map(Step::Pull),
    ]
}

fn world() -> impl Strategy<Value = (usize, Vec<Step>)> {
    (2usize..=4).prop_flat_map(|n| (Just(n), prop::collection::vec(step(n), 0..60)))
}

fn round(machines: &mut [Machine], dir: &mut SyncDir) -> bool {
    for m in machines.iter_mut() {
        m.push(dir);
    }
    let mut advised = false;
    for m in machines.iter_mut() {
        advised |= m.pull(dir);
    }
    advised
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn machines_converge((n, steps) in world()) {
        let mut dir = SyncDir::default();
        let mut machines: Vec<Machine> = (0..n)
            .map(|i| Machine {
                name: format!("m{i}"),
                sessions: BTreeMap::new(),
                covers: BTreeMap::new(),
            })
            .collect();
        machines[0].sessions.insert(1, vec![1]);
        let mut next_line = 2u32;
        let mut next_id = 2u64;
        let mut written = vec![1u32];
        for s in steps {
            match s {
                Step::Append(m, k) => {
                    let ids: Vec<Id> = machines[m].sessions.keys().copied().collect();
                    if let Some(id) = ids.get(k % ids.len().max(1)) {
                        machines[m].sessions.get_mut(id).expect("listed").push(next_line);
                        written.push(next_line);
                        next_line += 1;
                    }
                }
                Step::Start(m) => {
                    machines[m].sessions.insert(next_id, vec![next_line]);
                    written.push(next_line);
                    next_id += 1;
                    next_line += 1;
                }
                Step::Push(m) => machines[m].push(&mut dir),
                Step::Pull(m) => {
                    machines[m].pull(&mut dir);
                }
            }
        }
        round(&mut machines, &mut dir);

        let want = machines[0].conversations();
        for m in &machines {
            let have = m.conversations();
            prop_assert_eq!(&have, &want, "{} holds other conversations", m.name);
            for (x, a) in have.iter().enumerate() {
                for (y, b) in have.iter().enumerate() {
                    prop_assert!(x == y || !b.starts_with(a), "{} holds {:?} twice", m.name, a);
                }
            }
        }
        for line in &written {
            prop_assert!(want.iter().any(|c| c.contains(line)), "line {} lost", line);
        }
        let distinct: usize = want.iter().map(Vec::len).sum();
        let stored: usize = dir.objects.values().map(|o| o.lines.len()).sum();
        prop_assert!(
            stored * 2 <= distinct * 3,
            "{} lines stored for {} distinct", stored, distinct
        );

        let (before_dir, before_machines) = (dir.clone(), machines.clone());
        let advised = round(&mut machines, &mut dir);
        prop_assert!(!advised, "advice at rest");
        prop_assert_eq!(&dir.objects, &before_dir.objects, "another round wrote to the sync dir");
        for (a, b) in machines.iter().zip(&before_machines) {
            prop_assert_eq!(&a.sessions, &b.sessions, "another round wrote on {}", a.name);
        }
    }
}
