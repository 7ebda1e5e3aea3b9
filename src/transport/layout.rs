//! Where things live inside a transport, whatever the transport:
//! `<encoded-project-key>/<session-id>-<machine>.ccsync`, one file per
//! machine so two machines never write the same file, and
//! `machines/<machine>.json`, each machine's claim on its name. What a
//! session gained since its copy was stored whole goes beside it, as
//! segments `<session-id>-<machine>.<seq>.ccseg` (see `bundle::segment`).

use std::fmt;

use crate::bundle::EXTENSION;
use crate::names::{MachineName, SessionId};
use crate::project::ProjectKey;

/// The folder holding the machines' name claims. Project folders always
/// contain `=`, so they never collide with it.
pub const MACHINES_DIR: &str = "machines";
/// The folder holding what the sync dir says of itself (whether it is
/// encrypted, and to whom); it has no `=` either.
pub const SYNC_DIR_DIR: &str = "ccsync";
/// The folder holding each machine's setup snapshot (settings, agents,
/// project memory…; see `sync::setup`); it has no `=` either.
pub const SETUP_DIR: &str = "setup";
/// File name extension of setup snapshots.
pub const SETUP_EXTENSION: &str = "ccsetup";
const MAX_DIR_LEN: usize = 180;
/// File name extension of segments.
pub const SEGMENT_EXTENSION: &str = "ccseg";

/// A file in a transport: one folder level, one file. Both parts are single,
/// safe path components, checked on construction.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ObjectName {
    dir: String,
    file: String,
}

impl ObjectName {
    pub fn parse(dir: &str, file: &str) -> Option<Self> {
        (is_safe_component(dir) && is_safe_component(file)).then(|| Self {
            dir: dir.to_owned(),
            file: file.to_owned(),
        })
    }

    pub fn for_session(key: &ProjectKey, id: &SessionId, machine: &MachineName) -> Self {
        Self {
            dir: key_dir(key),
            file: format!("{id}-{machine}.{EXTENSION}"),
        }
    }

    /// Segment `seq` of a machine's copy of a session.
    pub fn for_segment(key: &ProjectKey, id: &SessionId, machine: &MachineName, seq: u32) -> Self {
        Self {
            dir: key_dir(key),
            file: format!("{id}-{machine}.{seq}.{SEGMENT_EXTENSION}"),
        }
    }

    pub fn machine_claim(machine: &MachineName) -> Self {
        Self {
            dir: MACHINES_DIR.to_owned(),
            file: format!("{machine}.json"),
        }
    }

    /// `ccsync/encryption.json`: that the sync dir is encrypted, and to
    /// which public keys.
    pub fn encryption_record() -> Self {
        Self {
            dir: SYNC_DIR_DIR.to_owned(),
            file: "encryption.json".to_owned(),
        }
    }

    /// `setup/<machine>.ccsetup`: a machine's setup snapshot.
    pub fn setup(machine: &MachineName) -> Self {
        Self {
            dir: SETUP_DIR.to_owned(),
            file: format!("{machine}.{SETUP_EXTENSION}"),
        }
    }

    /// The machine whose setup snapshot this is.
    pub fn setup_machine(&self) -> Option<MachineName> {
        if self.dir != SETUP_DIR {
            return None;
        }
        MachineName::parse(self.file.strip_suffix(&format!(".{SETUP_EXTENSION}"))?).ok()
    }

    /// The session and machine a bundle's name says it holds.
    pub fn session(&self) -> Option<(SessionId, MachineName)> {
        let stem = self.file.strip_suffix(&format!(".{EXTENSION}"))?;
        let (id, machine) = (stem.get(..36)?, stem.get(36..)?.strip_prefix('-')?);
        Some((
            SessionId::parse(id).ok()?,
            MachineName::parse(machine).ok()?,
        ))
    }

    /// The session, machine and place in the chain a segment's name says
    /// it holds. Sequence numbers are written without leading zeros, so
    /// one segment has one name.
    pub fn segment(&self) -> Option<(SessionId, MachineName, u32)> {
        let stem = self.file.strip_suffix(&format!(".{SEGMENT_EXTENSION}"))?;
        let (copy, seq) = stem.rsplit_once('.')?;
        if seq.starts_with('0') || !seq.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        let seq: u32 = seq.parse().ok()?;
        let (id, machine) = (copy.get(..36)?, copy.get(36..)?.strip_prefix('-')?);
        Some((
            SessionId::parse(id).ok()?,
            MachineName::parse(machine).ok()?,
            seq,
        ))
    }

    /// The session and machine of a copy's base or segment.
    pub fn copy_of(&self) -> Option<(SessionId, MachineName)> {
        self.session()
            .or_else(|| self.segment().map(|(id, machine, _)| (id, machine)))
    }

    /// The base a segment belongs to (in the same folder).
    pub fn base_of_segment(&self) -> Option<Self> {
        let (id, machine, _) = self.segment()?;
        Some(Self {
            dir: self.dir.clone(),
            file: format!("{id}-{machine}.{EXTENSION}"),
        })
    }

    /// The machine a claim file is for.
    pub fn claimed_machine(&self) -> Option<MachineName> {
        if self.dir != MACHINES_DIR {
            return None;
        }
        MachineName::parse(self.file.strip_suffix(".json")?).ok()
    }

    pub fn dir(&self) -> &str {
        &self.dir
    }

    pub fn file(&self) -> &str {
        &self.file
    }
}

impl fmt::Display for ObjectName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.dir, self.file)
    }
}

/// A name that is one path component on Linux, macOS and Windows alike and
/// never hidden or special.
fn is_safe_component(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 255
        && !s.starts_with('.')
        && !s.ends_with(['.', ' '])
        && s.bytes().all(|b| {
            b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'=' | b'%' | b'+')
        })
}

/// The folder for a project key: readable, safe everywhere, and injective
/// even on case-insensitive file systems. Lowercase letters, digits, `.` and
/// `-` stay; `:` becomes `=` and `/` becomes `_`; every other byte (upper
/// case included) becomes `%XX`. A name too long for a path component is cut
/// and given a hash of the whole key.
pub fn key_dir(key: &ProjectKey) -> String {
    let mut out = String::new();
    for b in key.as_str().bytes() {
        match b {
            b'a'..=b'z' | b'0'..=b'9' | b'.' | b'-' => out.push(char::from(b)),
            b':' => out.push('='),
            b'/' => out.push('_'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    if out.ends_with('.') {
        out.pop();
        out.push_str("%2E");
    }
    if out.len() > MAX_DIR_LEN {
        let hash = crate::bundle::sha256_hex(key.as_str().as_bytes());
        out.truncate(MAX_DIR_LEN - 17);
        while out.ends_with('%') || out.as_bytes()[out.len().saturating_sub(2)] == b'%' {
            out.pop();
        }
        out.push('+');
        out.push_str(&hash[..16]);
    }
    out
}

/// The key a folder name stands for, when it was not cut.
pub fn key_of_dir(dir: &str) -> Option<ProjectKey> {
    if dir.contains('+') {
        return None;
    }
    let mut bytes = Vec::with_capacity(dir.len());
    let mut it = dir.bytes();
    while let Some(b) = it.next() {
        bytes.push(match b {
            b'=' => b':',
            b'_' => b'/',
            b'%' => {
                let hex = [it.next()?, it.next()?];
                u8::from_str_radix(std::str::from_utf8(&hex).ok()?, 16).ok()?
            }
            b => b,
        });
    }
    ProjectKey::parse(&String::from_utf8(bytes).ok()?).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k_dir(k: &ProjectKey) -> String {
        key_dir(k)
    }

    fn key(s: &str) -> ProjectKey {
        ProjectKey::parse(s).unwrap()
    }

    #[test]
    fn key_dirs_are_readable_and_reversible() {
        let k = key("git:github.com/acme/widget");
        assert_eq!(key_dir(&k), "git=github.com_acme_widget");
        assert_eq!(key_of_dir(&key_dir(&k)).unwrap(), k);
        for s in [
            "git:github.com/Acme/Widget",
            "name:my_app",
            "name:café ☕",
            "git:/srv/git/x",
            "name:dots.",
            "name:a%41",
        ] {
            let d = key_dir(&key(s));
            assert!(is_safe_component(&d), "{d}");
            assert_eq!(key_of_dir(&d).unwrap().as_str(), s);
        }
    }

    #[test]
    fn key_dirs_never_collide_even_ignoring_case() {
        let keys = [
            "git:github.com/acme/widget",
            "git:github.com/Acme/widget",
            "git:github.com/acme_widget",
            "git:github.com_acme/widget",
            "name:git=github.com",
            "name:a%2Fb",
            "name:a/b",
        ];
        let dirs: std::collections::HashSet<String> = keys
            .iter()
            .map(|k| key_dir(&key(k)).to_lowercase())
            .collect();
        assert_eq!(dirs.len(), keys.len());
    }

    #[test]
    fn long_keys_are_cut_with_a_hash() {
        let a = key(&format!("git:host/{}", "A".repeat(500)));
        let b = key(&format!("git:host/{}B", "A".repeat(500)));
        let (da, db) = (key_dir(&a), key_dir(&b));
        assert!(da.len() <= MAX_DIR_LEN && is_safe_component(&da));
        assert_ne!(da, db);
        assert!(key_of_dir(&da).is_none());
    }

    #[test]
    fn object_names() {
        let k = key("git:github.com/acme/widget");
        let id = SessionId::parse("5c0375b4-57a5-4f26-b12d-d022ee4e51b7").unwrap();
        let m = MachineName::parse("my-box.local").unwrap();
        let o = ObjectName::for_session(&k, &id, &m);
        assert_eq!(
            o.to_string(),
            "git=github.com_acme_widget/5c0375b4-57a5-4f26-b12d-d022ee4e51b7-my-box.local.ccsync"
        );
        assert_eq!(o.session(), Some((id.clone(), m.clone())));
        assert_eq!(o.segment(), None);
        let seg = ObjectName::for_segment(&k, &id, &m, 12);
        assert_eq!(
            seg.file(),
            "5c0375b4-57a5-4f26-b12d-d022ee4e51b7-my-box.local.12.ccseg"
        );
        assert_eq!(seg.segment(), Some((id.clone(), m.clone(), 12)));
        assert_eq!(seg.session(), None);
        assert_eq!(seg.copy_of(), Some((id.clone(), m.clone())));
        assert_eq!(seg.base_of_segment(), Some(o.clone()));
        for bad in ["012", "", "x", "1x"] {
            let f = format!("5c0375b4-57a5-4f26-b12d-d022ee4e51b7-my-box.{bad}.ccseg");
            let n = ObjectName::parse(k_dir(&k).as_str(), &f);
            assert!(n.is_none_or(|n| n.segment().is_none()), "{f}");
        }
        assert_eq!(ObjectName::machine_claim(&m).claimed_machine(), Some(m));
        for (d, f) in [
            ("..", "x"),
            ("a", "../x"),
            ("a/b", "x"),
            (".hidden", "x"),
            ("a", "x\\y"),
            ("", "x"),
        ] {
            assert!(ObjectName::parse(d, f).is_none(), "{d}/{f}");
        }
    }
}
