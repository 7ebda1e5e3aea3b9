//! Validated names that come from outside (bundles, the sync dir, the command
//! line) and end up in file names. Parsing is the only way to build one, so a
//! hostile value never reaches a path.

use std::fmt;
use std::path::{Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} {reason}")]
pub struct NameError {
    pub what: &'static str,
    pub value: String,
    pub reason: &'static str,
}

fn invalid(what: &'static str, value: &str, reason: &'static str) -> NameError {
    let mut value = value.to_owned();
    if value.len() > 80 {
        let cut = (0..=80)
            .rev()
            .find(|&i| value.is_char_boundary(i))
            .unwrap_or(0);
        value.truncate(cut);
        value.push('…');
    }
    NameError {
        what,
        value,
        reason,
    }
}

/// A Claude Code session id: a UUID in its canonical lowercase, hyphenated form.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct SessionId(String);

impl SessionId {
    pub fn parse(s: &str) -> Result<Self, NameError> {
        let ok = s.len() == 36
            && s.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_digit() || (b'a'..=b'f').contains(&b),
            });
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(invalid("session id", s, "is not a lowercase UUID"))
        }
    }

    pub fn new_random() -> Self {
        Self(uuid::Uuid::new_v4().hyphenated().to_string())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The transcript's file name, `<id>.jsonl`.
    pub fn file_name(&self) -> String {
        format!("{}.jsonl", self.0)
    }
}

impl fmt::Display for SessionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A machine's name in the sync dir: `[A-Za-z0-9._-]{1,64}`, not `.` or `..`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct MachineName(String);

impl MachineName {
    pub const MAX_LEN: usize = 64;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        const WHAT: &str = "machine name";
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return Err(invalid(WHAT, s, "must be 1 to 64 characters"));
        }
        if !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
        {
            return Err(invalid(
                WHAT,
                s,
                "may only contain A-Z, a-z, 0-9, '.', '_' and '-'",
            ));
        }
        if s == "." || s == ".." {
            return Err(invalid(WHAT, s, "is not a name"));
        }
        Ok(Self(s.to_owned()))
    }

    /// A valid name made from a host name: invalid characters become `-`.
    pub fn from_hostname(host: &str) -> Option<Self> {
        let cleaned: String = host
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                    c
                } else {
                    '-'
                }
            })
            .take(Self::MAX_LEN)
            .collect();
        let cleaned = cleaned.trim_matches('-');
        Self::parse(cleaned).ok()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for MachineName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A working directory relative to its project root, `/`-separated, with no
/// `.`, `..`, empty or absolute components. Empty means the root itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Default, Hash)]
pub struct RelPath(String);

impl RelPath {
    pub const MAX_LEN: usize = 4096;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        const WHAT: &str = "relative path";
        if s.is_empty() {
            return Ok(Self::default());
        }
        if s.len() > Self::MAX_LEN {
            return Err(invalid(WHAT, s, "is too long"));
        }
        if s.contains(['\\', '\0']) {
            return Err(invalid(WHAT, s, "contains a backslash or NUL"));
        }
        if s.split('/').any(|c| c.is_empty() || c == "." || c == "..") {
            return Err(invalid(
                WHAT,
                s,
                "must be a plain relative path without '.' or '..'",
            ));
        }
        if s.split('/')
            .next()
            .is_some_and(|c| c.len() == 2 && c.ends_with(':'))
        {
            return Err(invalid(WHAT, s, "starts with a drive letter"));
        }
        Ok(Self(s.to_owned()))
    }

    /// `path` relative to `root`, if it is inside it and every component is UTF-8.
    pub fn between(root: &Path, path: &Path) -> Option<Self> {
        let rest = path.strip_prefix(root).ok()?;
        let parts: Option<Vec<&str>> = rest.components().map(|c| c.as_os_str().to_str()).collect();
        Self::parse(&parts?.join("/")).ok()
    }

    pub fn is_root(&self) -> bool {
        self.0.is_empty()
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn under(&self, root: &Path) -> PathBuf {
        let mut p = root.to_path_buf();
        if !self.is_root() {
            p.extend(self.0.split('/'));
        }
        p
    }
}

/// Where a session's side file belongs, relative to the session: one of
/// [`PartKind`]'s roots, then a plain relative path (`subagents/agent-a1.jsonl`,
/// `file-history/3f2a@v2`, `tasks/list/1.json`). The session id is not part
/// of it, so the same part can be installed under a fork's id.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PartPath {
    kind: PartKind,
    rest: RelPath,
}

/// The kinds of side file a session has (FACTS.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PartKind {
    /// `projects/<enc>/<sid>/subagents/…`
    Subagents,
    /// `projects/<enc>/<sid>/tool-results/…`
    ToolResults,
    /// `file-history/<sid>/…`
    FileHistory,
    /// `todos/<sid>-<name>` (a single file name starting `agent-`)
    Todos,
    /// `tasks/<sid>/…`
    Tasks,
    /// `projects/<enc>/<sid>/…`: everything else in the session's own
    /// folder (its title, archive flag, workflow and MCP-task state, and
    /// whatever later clients put there).
    Session,
}

impl PartKind {
    pub const ALL: [PartKind; 6] = [
        PartKind::Subagents,
        PartKind::ToolResults,
        PartKind::FileHistory,
        PartKind::Todos,
        PartKind::Tasks,
        PartKind::Session,
    ];

    pub fn root(self) -> &'static str {
        match self {
            PartKind::Subagents => "subagents",
            PartKind::ToolResults => "tool-results",
            PartKind::FileHistory => "file-history",
            PartKind::Todos => "todos",
            PartKind::Tasks => "tasks",
            PartKind::Session => "session",
        }
    }

    /// Whether the client only ever appends to these files (transcripts
    /// and journals, `*.jsonl` in the session's folder), rather than
    /// rewriting them whole.
    pub fn appended(self, rest: &str) -> bool {
        matches!(self, PartKind::Subagents | PartKind::Session) && rest.ends_with(".jsonl")
    }
}

impl PartPath {
    pub const MAX_DEPTH: usize = 8;
    pub const MAX_COMPONENT: usize = 255;

    pub fn parse(s: &str) -> Result<Self, NameError> {
        const WHAT: &str = "side file path";
        let (root, rest) = s.split_once('/').unwrap_or((s, ""));
        let kind = PartKind::ALL
            .into_iter()
            .find(|k| k.root() == root)
            .ok_or_else(|| {
                invalid(
                    WHAT,
                    s,
                    "must start with subagents/, tool-results/, file-history/, todos/, tasks/ or session/",
                )
            })?;
        let rest = RelPath::parse(rest).map_err(|e| invalid(WHAT, s, e.reason))?;
        let parts: Vec<&str> = rest.as_str().split('/').collect();
        if rest.is_root() || parts.len() > Self::MAX_DEPTH {
            return Err(invalid(WHAT, s, "must name a file at most 8 folders deep"));
        }
        if parts
            .iter()
            .any(|c| c.len() > Self::MAX_COMPONENT || c.chars().any(char::is_control))
        {
            return Err(invalid(
                WHAT,
                s,
                "has a name over 255 bytes or a control character",
            ));
        }
        if kind == PartKind::Todos && (parts.len() != 1 || !parts[0].starts_with("agent-")) {
            return Err(invalid(WHAT, s, "must be todos/agent-<id>.json"));
        }
        // Those two folders of the session's own have kinds of their own
        // (in any case: some file systems ignore it); and what belongs to a
        // machine's processes never travels.
        if kind == PartKind::Session {
            let first = parts[0].to_ascii_lowercase();
            if first == "subagents" || first == "tool-results" {
                return Err(invalid(
                    WHAT,
                    s,
                    "must not be subagents or tool-results, nor under them",
                ));
            }
            let last = parts[parts.len() - 1];
            if [".lock", ".pid", ".sock", ".socket", ".tmp"]
                .iter()
                .any(|ext| last.ends_with(ext))
                || last.contains(".tmp.")
            {
                return Err(invalid(
                    WHAT,
                    s,
                    "names a lock, pid, socket or temp file, which stay on their machine",
                ));
            }
        }
        Ok(Self { kind, rest })
    }

    pub fn new(kind: PartKind, rest: &RelPath) -> Result<Self, NameError> {
        Self::parse(&format!("{}/{}", kind.root(), rest.as_str()))
    }

    pub fn kind(&self) -> PartKind {
        self.kind
    }

    /// The path below the kind's root.
    pub fn rest(&self) -> &RelPath {
        &self.rest
    }

    pub fn appended(&self) -> bool {
        self.kind.appended(self.rest.as_str())
    }
}

impl fmt::Display for PartPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.kind.root(), self.rest.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_ids() {
        assert!(SessionId::parse("5c0375b4-57a5-4f26-b12d-d022ee4e51b7").is_ok());
        for bad in [
            "",
            "../../etc/passwd",
            "5C0375B4-57A5-4F26-B12D-D022EE4E51B7",
            "5c0375b4-57a5-4f26-b12d-d022ee4e51b7/x",
            "5c0375b4x57a5-4f26-b12d-d022ee4e51b7",
            "5c0375b4-57a5-4f26-b12d-d022ee4e51b\0",
        ] {
            assert!(SessionId::parse(bad).is_err(), "{bad:?}");
        }
        let r = SessionId::new_random();
        assert_eq!(SessionId::parse(r.as_str()).unwrap(), r);
    }

    #[test]
    fn machine_names() {
        for good in ["laptop", "a", "my-box.local", "x_1", &"m".repeat(64)] {
            assert!(MachineName::parse(good).is_ok(), "{good:?}");
        }
        for bad in [
            "",
            ".",
            "..",
            "a/b",
            "a b",
            "a\\b",
            "é",
            &"m".repeat(65),
            "a\0",
        ] {
            assert!(MachineName::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            MachineName::from_hostname("Alice's MacBook Pro")
                .unwrap()
                .as_str(),
            "Alice-s-MacBook-Pro"
        );
        assert!(MachineName::from_hostname("").is_none());
    }

    #[test]
    fn relative_paths() {
        assert!(RelPath::parse("").unwrap().is_root());
        assert_eq!(
            RelPath::parse("sub/dir").unwrap().under(Path::new("/r")),
            Path::new("/r/sub/dir")
        );
        for bad in [
            "/abs", "a/../b", "..", "a//b", "a/", "./a", "a\\b", "C:", "C:/x", "a\0",
        ] {
            assert!(RelPath::parse(bad).is_err(), "{bad:?}");
        }
        assert_eq!(
            RelPath::between(Path::new("/r"), Path::new("/r/a/b"))
                .unwrap()
                .as_str(),
            "a/b"
        );
        assert!(
            RelPath::between(Path::new("/r"), Path::new("/r"))
                .unwrap()
                .is_root()
        );
        assert!(RelPath::between(Path::new("/r"), Path::new("/other")).is_none());
    }

    #[test]
    fn part_paths() {
        for good in [
            "subagents/agent-a1.jsonl",
            "subagents/agent-a1.meta.json",
            "tool-results/toolu_01.txt",
            "file-history/3f2a9c@v2",
            "todos/agent-5c0375b4.json",
            "tasks/5/1.json",
            "tasks/.lock",
            "session/custom-title.json",
            "session/workflows/run-1.json",
            "session/subagents.txt",
        ] {
            let p = PartPath::parse(good).unwrap();
            assert_eq!(p.to_string(), good);
        }
        assert!(PartPath::parse("subagents/a.jsonl").unwrap().appended());
        assert!(!PartPath::parse("subagents/a.meta.json").unwrap().appended());
        for bad in [
            "",
            "subagents",
            "subagents/",
            "subagents/../x",
            "subagents//x",
            "/subagents/x",
            "projects/x",
            "memory/x",
            "todos/x.json",
            "todos/agent-a/b.json",
            "session/subagents",
            "session/subagents/x.jsonl",
            "session/Tool-Results/x.txt",
            "session/workflows/run.lock",
            "session/agent.pid",
            "session/a.sock",
            "session/custom-title.json.tmp.1.2",
            "tasks/a\\b",
            "tasks/a\nb",
            "tasks/C:/x",
            &format!("tasks/{}", "a/".repeat(8) + "f"),
            &format!("tasks/{}", "n".repeat(256)),
        ] {
            assert!(PartPath::parse(bad).is_err(), "{bad:?}");
        }
    }
}
