//! The branch's tree as ccsync reads it (pure): which entries are objects,
//! which are refused by name (links, names that climb out of their
//! folder), which are passed over; and the times file that gives each
//! object the time it was stored.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use super::super::{Listing, ObjectName, RemoteObject};

/// The file at the top of the tree that records when each object was
/// stored (git keeps no time per file). Hidden: no listing takes it for an
/// object.
pub(super) const TIMES_FILE: &str = ".ccsync-times";
const TIMES_HEADER: &str = "ccsync-times 1";
/// The most of a times file that is read: a line per object (about 120
/// bytes), so room for over a hundred thousand objects.
pub(super) const TIMES_CAP: u64 = 16 << 20;

pub(super) const LINK: &str = "a symbolic link; ccsync never follows links in the sync dir";
const CLIMBS: &str = "a name that climbs out of its folder; ccsync never follows it";

/// One entry of `git ls-tree -r -t -l -z`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Entry {
    /// `100644`, `100755`, `120000` (a link), `040000` (a folder),
    /// `160000` (a submodule).
    pub mode: String,
    /// `blob`, `tree` or `commit`.
    pub kind: String,
    pub oid: String,
    /// `None` for a folder or submodule.
    pub size: Option<u64>,
}

impl Entry {
    pub fn is_tree(&self) -> bool {
        self.kind == "tree"
    }

    /// A plain file (executable or not), as ccsync writes objects.
    pub fn is_file(&self) -> bool {
        self.kind == "blob" && matches!(self.mode.as_str(), "100644" | "100755")
    }

    pub fn is_link(&self) -> bool {
        self.mode == "120000"
    }

    /// The line `git mktree` reads for it (without the name).
    pub fn mktree_head(&self) -> String {
        format!("{} {} {}", self.mode, self.kind, self.oid)
    }
}

/// The entries of `git ls-tree -r -t -l -z`: path → entry, and apart,
/// the entries whose path is not UTF-8 (no object has such a name, but a
/// commit keeps them as they are).
pub(super) type Raw = BTreeMap<Vec<u8>, Entry>;

/// Parses `git ls-tree -r -t -l -z` output into path → entry, and the
/// entries whose path is not UTF-8 by their bytes. Malformed records are
/// dropped (they cannot come from git).
pub(super) fn parse_ls_tree(out: &[u8]) -> (BTreeMap<String, Entry>, Raw) {
    let mut entries = BTreeMap::new();
    let mut raw = Raw::new();
    for record in out.split(|b| *b == 0).filter(|r| !r.is_empty()) {
        let Some(tab) = record.iter().position(|b| *b == b'\t') else {
            continue;
        };
        let Ok(head) = std::str::from_utf8(&record[..tab]) else {
            continue;
        };
        let mut words = head.split_whitespace();
        let (Some(mode), Some(kind), Some(oid), Some(size)) =
            (words.next(), words.next(), words.next(), words.next())
        else {
            continue;
        };
        let entry = Entry {
            mode: mode.to_owned(),
            kind: kind.to_owned(),
            oid: oid.to_owned(),
            size: size.parse().ok(),
        };
        let path = &record[tab + 1..];
        match std::str::from_utf8(path) {
            Ok(path) => {
                entries.insert(path.to_owned(), entry);
            }
            Err(_) => {
                raw.insert(path.to_vec(), entry);
            }
        }
    }
    (entries, raw)
}

fn climbs(component: &str) -> bool {
    component.is_empty() || component == "." || component == ".." || component.contains('\\')
}

/// What the tree holds, as a listing: objects are plain files exactly one
/// folder deep with names ccsync writes; links and names that climb are
/// refused by name (`<branch>:<path>`, as git names a file on a branch);
/// anything else (deeper folders, files at the top, submodules, hidden
/// names) is passed over, as a directory sync dir passes over what is not
/// its own.
pub(super) fn listing(
    entries: &BTreeMap<String, Entry>,
    branch: &str,
    stamp: impl Fn(&str, &Entry) -> Option<SystemTime>,
) -> Listing {
    let mut listing = Listing::default();
    for (path, entry) in entries {
        let parts: Vec<&str> = path.split('/').collect();
        let refuse = |listing: &mut Listing, why: &str| {
            listing
                .refused
                .push((format!("{branch}:{path}"), why.to_owned()));
        };
        match parts.as_slice() {
            [top] => {
                if climbs(top) {
                    refuse(&mut listing, CLIMBS);
                } else if entry.is_link() {
                    refuse(&mut listing, LINK);
                }
            }
            [dir, file] => {
                // A folder that climbs was refused by its own name.
                if climbs(dir) {
                    continue;
                }
                if climbs(file) {
                    refuse(&mut listing, CLIMBS);
                } else if entry.is_link() {
                    refuse(&mut listing, LINK);
                } else if entry.is_file()
                    && let Some(name) = ObjectName::parse(dir, file)
                {
                    listing.objects.push(RemoteObject {
                        name,
                        size: entry.size.unwrap_or(0),
                        modified: stamp(path, entry),
                    });
                }
            }
            _ => {}
        }
    }
    listing.objects.sort_by(|a, b| a.name.cmp(&b.name));
    listing
}

/// When each object was stored, by path, with the blob it was then: a
/// time is trusted only while the object is still that blob.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Times(pub BTreeMap<String, (String, u64)>);

impl Times {
    /// Reads a times file; lines it cannot read are dropped (a time is
    /// advice: an object without one gets the commit's).
    pub fn parse(bytes: &[u8]) -> Self {
        let text = String::from_utf8_lossy(bytes);
        let mut lines = text.lines();
        if lines.next() != Some(TIMES_HEADER) {
            return Self::default();
        }
        Self(
            lines
                .filter_map(|l| {
                    let mut words = l.splitn(3, ' ');
                    let (oid, ns, path) = (words.next()?, words.next()?, words.next()?);
                    let ok = (oid.len() == 40 || oid.len() == 64)
                        && oid.bytes().all(|b| b.is_ascii_hexdigit());
                    let ns = ns.parse().ok().filter(|_| ok)?;
                    Some((path.to_owned(), (oid.to_owned(), ns)))
                })
                .collect(),
        )
    }

    pub fn render(&self) -> Vec<u8> {
        let mut out = format!("{TIMES_HEADER}\n");
        for (path, (oid, ns)) in &self.0 {
            out.push_str(&format!("{oid} {ns} {path}\n"));
        }
        out.into_bytes()
    }

    /// The time `path` was stored, if it is still the blob `oid`.
    pub fn get(&self, path: &str, oid: &str) -> Option<SystemTime> {
        let (at, ns) = self.0.get(path)?;
        (at == oid)
            .then(|| SystemTime::UNIX_EPOCH.checked_add(Duration::from_nanos(*ns)))
            .flatten()
    }
}

/// The stamp of an object the times file does not vouch for: the tip
/// commit's time (whole seconds), with the sub-second part taken from the
/// blob id, so that the stamp still changes whenever the content does.
/// A time past what this system can hold gives none.
pub(super) fn fallback_time(commit_secs: u64, oid: &str) -> Option<SystemTime> {
    let nanos = u32::from_str_radix(oid.get(..8).unwrap_or("0"), 16).unwrap_or(0) % 1_000_000_000;
    SystemTime::UNIX_EPOCH.checked_add(Duration::new(commit_secs, nanos))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(mode: &str, kind: &str, size: Option<u64>) -> Entry {
        Entry {
            mode: mode.into(),
            kind: kind.into(),
            oid: "a".repeat(40),
            size,
        }
    }

    #[test]
    fn ls_tree_records_are_read_exactly() {
        let out = b"040000 tree 1111111111111111111111111111111111111111       -\tgit=x\0\
100644 blob 2222222222222222222222222222222222222222      12\tgit=x/a b.ccsync\0\
120000 blob 3333333333333333333333333333333333333333       9\tgit=x/l\0";
        let (e, raw) = parse_ls_tree(out);
        assert_eq!(e.len(), 3);
        assert!(raw.is_empty());
        assert!(e["git=x"].is_tree());
        assert_eq!(e["git=x/a b.ccsync"].size, Some(12));
        assert!(e["git=x/l"].is_link());
    }

    #[test]
    fn names_that_are_not_utf8_are_kept_apart_as_bytes() {
        let out = b"100644 blob 2222222222222222222222222222222222222222      12\tgit=x/bad\xff\0\
100644 blob 2222222222222222222222222222222222222222      12\tgit=x/ok\0";
        let (e, raw) = parse_ls_tree(out);
        assert_eq!(e.keys().collect::<Vec<_>>(), ["git=x/ok"]);
        assert_eq!(raw.keys().collect::<Vec<_>>(), [&b"git=x/bad\xff"[..]]);
    }

    #[test]
    fn times_past_what_the_system_holds_give_none_and_never_panic() {
        assert_eq!(fallback_time(u64::MAX, &"f".repeat(40)), None);
        let oid = "b".repeat(40);
        let t = Times::parse(format!("{TIMES_HEADER}\n{oid} {} p\n", u64::MAX).as_bytes());
        // u64::MAX nanoseconds is in 2554: held, or none; never a panic.
        let _ = t.get("p", &oid);
    }

    #[test]
    fn links_and_climbing_names_are_refused_and_the_rest_passed_over() {
        let sid = "5c0375b4-57a5-4f26-b12d-d022ee4e51b7";
        let good = format!("git=x/{sid}-a.ccsync");
        let mut e = BTreeMap::new();
        e.insert("git=x".to_owned(), entry("040000", "tree", None));
        e.insert(good.clone(), entry("100644", "blob", Some(5)));
        e.insert("git=x/evil".to_owned(), entry("120000", "blob", Some(5)));
        e.insert("git=x/..".to_owned(), entry("100644", "blob", Some(5)));
        e.insert("..".to_owned(), entry("040000", "tree", None));
        e.insert("../x".to_owned(), entry("100644", "blob", Some(5)));
        e.insert("linked".to_owned(), entry("120000", "blob", Some(5)));
        e.insert("README".to_owned(), entry("100644", "blob", Some(5)));
        e.insert(".ccsync-times".to_owned(), entry("100644", "blob", Some(5)));
        e.insert("git=x/deeper".to_owned(), entry("040000", "tree", None));
        e.insert(
            "git=x/deeper/a.ccsync".to_owned(),
            entry("100644", "blob", Some(5)),
        );
        e.insert("git=x/sub".to_owned(), entry("160000", "commit", None));
        let l = listing(&e, "ccsync", |_, _| None);
        assert_eq!(l.objects.len(), 1);
        assert_eq!(l.objects[0].name.to_string(), good);
        let refused: Vec<&str> = l.refused.iter().map(|(p, _)| p.as_str()).collect();
        assert_eq!(
            refused,
            [
                "ccsync:..",
                "ccsync:git=x/..",
                "ccsync:git=x/evil",
                "ccsync:linked"
            ]
        );
        assert!(l.refused[0].1.contains("climbs"));
        assert!(l.refused[2].1.contains("symbolic link"));
    }

    #[test]
    fn times_round_trip_and_are_trusted_only_for_their_blob() {
        let oid = "b".repeat(40);
        let mut t = Times::default();
        t.0.insert(
            "git=x/a.ccsync".into(),
            (oid.clone(), 1_763_628_000_123_456_789),
        );
        let back = Times::parse(&t.render());
        assert_eq!(back, t);
        assert!(back.get("git=x/a.ccsync", &oid).is_some());
        assert!(back.get("git=x/a.ccsync", &"c".repeat(40)).is_none());
        assert_eq!(Times::parse(b"something else\nx y z\n"), Times::default());
        let junk = format!("{TIMES_HEADER}\nnot an oid 5 p\n{oid} x p\n");
        assert_eq!(Times::parse(junk.as_bytes()), Times::default());
        let a = fallback_time(100, &"0".repeat(40)).unwrap();
        let b = fallback_time(100, &"f".repeat(40)).unwrap();
        assert_ne!(a, b);
        assert_eq!(
            a.duration_since(SystemTime::UNIX_EPOCH).unwrap().as_secs(),
            100
        );
    }
}
