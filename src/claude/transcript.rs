//! Reading a transcript without changing it. Lines are bytes: only the few
//! fields ccsync needs are ever decoded, and nothing is re-serialised.

use std::fs::File;
use std::io::{self, BufRead, BufReader};
use std::path::Path;

use serde::Deserialize;
use serde_json::Value;

use super::dirname;

/// The length of the part that ends with the last `\n`: the lines that are
/// complete. Claude Code may be in the middle of writing the rest.
pub fn complete_len(bytes: &[u8]) -> usize {
    bytes.iter().rposition(|&b| b == b'\n').map_or(0, |i| i + 1)
}

/// What `list` shows of a transcript.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub lines: u64,
    /// Bytes after the last `\n`: a line still being written.
    pub partial_tail: u64,
    pub first_prompt: Option<String>,
}

#[derive(Deserialize)]
struct CwdProbe {
    cwd: Option<Value>,
    #[serde(rename = "relocatedCwd")]
    relocated_cwd: Option<Value>,
}

#[derive(Deserialize)]
struct PromptProbe {
    #[serde(rename = "type")]
    kind: Option<Value>,
    #[serde(rename = "isMeta")]
    is_meta: Option<Value>,
    #[serde(rename = "isSidechain")]
    is_sidechain: Option<Value>,
    message: Option<Value>,
    timestamp: Option<Value>,
}

/// Calls `f` with each complete line (without its `\n`) until it returns false.
fn for_each_line(path: &Path, mut f: impl FnMut(&[u8]) -> bool) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(path)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
            return Ok(());
        }
        if !f(&line[..line.len() - 1]) {
            return Ok(());
        }
    }
}

fn line_cwd(line: &[u8]) -> Option<String> {
    // Cheap filter first: most lines of a long session never need decoding.
    if !contains(line, b"\"cwd\"") && !contains(line, b"\"relocatedCwd\"") {
        return None;
    }
    let probe = serde_json::from_slice::<CwdProbe>(line).ok()?;
    // `/cd` moved the session: it belongs where the line says it went.
    match probe.relocated_cwd.or(probe.cwd)? {
        Value::String(s) => Some(s),
        _ => None,
    }
}

/// The working directory a transcript in the folder `dir_name` belongs to:
/// the first `cwd` recorded in its lines that the client would encode as
/// `dir_name`. `any_cwd` accepts the first cwd whatever it encodes to (for a
/// folder named by `CLAUDE_CODE_PROJECT_DIR_NAME`).
pub fn owning_cwd(path: &Path, dir_name: &str, any_cwd: bool) -> io::Result<Option<String>> {
    let mut found = None;
    for_each_line(path, |line| {
        if let Some(cwd) = line_cwd(line)
            && (any_cwd || dirname::matches(dir_name, &cwd))
        {
            found = Some(cwd);
            return false;
        }
        true
    })?;
    Ok(found)
}

/// The `cwd` of the first line, which is what the client checks when it
/// considers reusing a long-path folder.
pub fn first_line_cwd(path: &Path) -> io::Result<Option<String>> {
    let mut found = None;
    for_each_line(path, |line| {
        found = line_cwd(line);
        false
    })?;
    Ok(found)
}

pub fn summarize(path: &Path) -> io::Result<Summary> {
    let size = std::fs::metadata(path)?.len();
    let mut summary = Summary::default();
    let mut complete = 0u64;
    for_each_line(path, |line| {
        summary.lines += 1;
        complete += line.len() as u64 + 1;
        if summary.first_prompt.is_none() {
            summary.first_prompt = prompt_of(line);
        }
        true
    })?;
    summary.partial_tail = size.saturating_sub(complete);
    Ok(summary)
}

/// The text a user typed, if this line is a real (not meta, not sidechain,
/// not tool-result) user prompt, with its whitespace folded.
fn prompt_of(line: &[u8]) -> Option<String> {
    let (text, _) = prompt_text(line)?;
    Some(text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// A prompt the user typed, as typed, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prompt {
    pub text: String,
    /// Unix milliseconds, from the line's `timestamp`.
    pub timestamp_ms: Option<u64>,
}

/// Every prompt the user typed in the transcript, in order.
pub fn prompts(path: &Path) -> io::Result<Vec<Prompt>> {
    let mut out = Vec::new();
    for_each_line(path, |line| {
        if let Some((text, timestamp_ms)) = prompt_text(line) {
            out.push(Prompt { text, timestamp_ms });
        }
        true
    })?;
    Ok(out)
}

/// The trimmed text and time of a real user prompt.
fn prompt_text(line: &[u8]) -> Option<(String, Option<u64>)> {
    if !contains(line, b"\"user\"") {
        return None;
    }
    let probe: PromptProbe = serde_json::from_slice(line).ok()?;
    let timestamp_ms = probe
        .timestamp
        .as_ref()
        .and_then(Value::as_str)
        .and_then(|t| {
            humantime::parse_rfc3339(t)
                .or_else(|_| humantime::parse_rfc3339_weak(t))
                .ok()
        })
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_millis() as u64);
    if probe.kind.as_ref()?.as_str()? != "user"
        || probe.is_meta.and_then(|v| v.as_bool()) == Some(true)
        || probe.is_sidechain.and_then(|v| v.as_bool()) == Some(true)
    {
        return None;
    }
    let content = probe.message?.get("content")?.clone();
    let text = match content {
        Value::String(s) => s,
        Value::Array(items) => items.into_iter().find_map(|item| {
            (item.get("type")?.as_str()? == "text")
                .then(|| item.get("text")?.as_str().map(str::to_owned))
                .flatten()
        })?,
        _ => return None,
    };
    let text = text.trim();
    // Slash commands and their output are wrapped in tags; they are not prompts.
    if text.is_empty() || text.starts_with('<') || text.starts_with("Caveat:") {
        return None;
    }
    Some((text.to_owned(), timestamp_ms))
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        f.write_all(content).unwrap();
        f
    }

    #[test]
    fn complete_prefix() {
        assert_eq!(complete_len(b""), 0);
        assert_eq!(complete_len(b"{\"a\":1}"), 0);
        assert_eq!(complete_len(b"{}\n{\"a"), 3);
        assert_eq!(complete_len(b"{}\n{}\n"), 6);
    }

    #[test]
    fn cwd_is_the_one_matching_the_folder() {
        let f = file(
            b"{\"type\":\"summary\"}\n\
              {\"type\":\"user\",\"cwd\":\"/a/b\"}\n\
              {\"type\":\"user\",\"cwd\":\"/a/b/c\"}\n",
        );
        assert_eq!(
            owning_cwd(f.path(), "-a-b-c", false).unwrap().as_deref(),
            Some("/a/b/c")
        );
        assert_eq!(
            owning_cwd(f.path(), "-a-b", false).unwrap().as_deref(),
            Some("/a/b")
        );
        assert_eq!(owning_cwd(f.path(), "-x", false).unwrap(), None);
        assert_eq!(
            owning_cwd(f.path(), "-x", true).unwrap().as_deref(),
            Some("/a/b")
        );
        assert_eq!(first_line_cwd(f.path()).unwrap(), None);
    }

    #[test]
    fn cwd_in_a_partial_line_is_ignored() {
        let f = file(b"{\"type\":\"user\",\"cwd\":\"/a\"}");
        assert_eq!(owning_cwd(f.path(), "-a", false).unwrap(), None);
    }

    #[test]
    fn summary_counts_and_finds_first_real_prompt() {
        let f = file(
            b"{\"type\":\"user\",\"isMeta\":true,\"message\":{\"content\":\"meta\"}}\n\
              {\"type\":\"user\",\"message\":{\"content\":\"<command-name>/clear</command-name>\"}}\n\
              {\"type\":\"user\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"fix the\\n  bug\"}]}}\n\
              {\"type\":\"user\",\"message\":{\"content\":\"second\"}}\n{\"half",
        );
        let s = summarize(f.path()).unwrap();
        assert_eq!(s.lines, 4);
        assert_eq!(s.partial_tail, 6);
        assert_eq!(s.first_prompt.as_deref(), Some("fix the bug"));
    }
}

/// The byte range of the top-level `"sessionId"` string value of a JSON
/// object line, found without decoding the rest of the line.
pub fn session_id_span(line: &[u8]) -> Option<std::ops::Range<usize>> {
    if line.trim_ascii_start().first() != Some(&b'{') {
        return None;
    }
    let mut depth = 0usize;
    let mut expect_key = false;
    let mut after_match = false;
    let mut i = 0;
    while i < line.len() {
        match line[i] {
            b'"' => {
                let start = i + 1;
                let end = string_end(line, start)?;
                if depth == 1 {
                    if expect_key {
                        after_match = &line[start..end] == b"sessionId";
                        expect_key = false;
                    } else if after_match {
                        return Some(start..end);
                    }
                }
                i = end + 1;
                continue;
            }
            b'{' | b'[' => {
                depth += 1;
                expect_key = depth == 1;
            }
            b'}' | b']' => depth = depth.checked_sub(1)?,
            b',' if depth == 1 => {
                expect_key = true;
                after_match = false;
            }
            _ => {}
        }
        i += 1;
    }
    None
}

/// Index of the quote that closes the string starting at `start`.
fn string_end(line: &[u8], mut i: usize) -> Option<usize> {
    while i < line.len() {
        match line[i] {
            b'\\' => i += 2,
            b'"' => return Some(i),
            _ => i += 1,
        }
    }
    None
}

/// The transcript with every line's top-level `sessionId` that equals `from`
/// set to `to`; every other byte is kept.
pub fn with_session_id(bytes: &[u8], from: &str, to: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        match session_id_span(line) {
            Some(span) if &line[span.clone()] == from.as_bytes() => {
                out.extend_from_slice(&line[..span.start]);
                out.extend_from_slice(to.as_bytes());
                out.extend_from_slice(&line[span.end..]);
            }
            _ => out.extend_from_slice(line),
        }
    }
    out
}

#[cfg(test)]
mod rewrite_tests {
    use super::*;

    #[test]
    fn only_the_top_level_session_id_changes() {
        let line = br#"{"parentUuid":null,"message":{"sessionId":"old","content":"\"sessionId\":\"old\""},"sessionId":"old","x":["sessionId","old"]}"#;
        let span = session_id_span(line).unwrap();
        assert_eq!(&line[span], b"old");
        let t = [
            line.as_slice(),
            b"\n{\"sessionId\":\"other\"}\n{\"type\":\"summary\"}\n",
        ]
        .concat();
        let out = with_session_id(&t, "old", "new");
        let expected = String::from_utf8(t.clone()).unwrap().replacen(
            r#","sessionId":"old","x""#,
            r#","sessionId":"new","x""#,
            1,
        );
        assert_eq!(String::from_utf8(out).unwrap(), expected);
    }

    #[test]
    fn odd_lines_are_left_alone() {
        for line in [
            &b"[\"sessionId\",\"old\"]"[..],
            b"not json",
            b"{\"sessionId\":1}",
            b"{\"a\":\"unterminated",
        ] {
            assert_eq!(with_session_id(line, "old", "new"), line);
        }
        assert_eq!(
            with_session_id(b"{ \"sessionId\" : \"old\" }", "old", "n"),
            b"{ \"sessionId\" : \"n\" }"
        );
    }
}

#[cfg(test)]
mod rewrite_properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The only bytes that change are the top-level sessionId values.
        #[test]
        fn rewrite_changes_only_the_session_id(
            before in prop::collection::vec(("[a-z]{1,5}", "\\PC{0,12}"), 0..4),
            after in prop::collection::vec(("[a-z]{1,5}", "\\PC{0,12}"), 0..4),
            id in prop::sample::select(vec!["old", "other"]),
        ) {
            let mut obj = serde_json::Map::new();
            for (k, v) in &before { obj.insert(k.clone(), v.clone().into()); }
            obj.insert("sessionId".into(), id.into());
            obj.insert("nested".into(), serde_json::json!({"sessionId": "old", "t": "\"sessionId\":\"old\""}));
            for (k, v) in &after { if k != "sessionId" { obj.insert(k.clone(), v.clone().into()); } }
            let line = format!("{}\n", serde_json::Value::Object(obj.clone()));
            let out = with_session_id(line.as_bytes(), "old", "new");
            let parsed: serde_json::Value = serde_json::from_slice(&out).unwrap();
            if id == "old" { obj.insert("sessionId".into(), "new".into()); }
            prop_assert_eq!(parsed, serde_json::Value::Object(obj));
            prop_assert_eq!(out.len(), line.len());
        }
    }
}

/// `(complete, total)`: the length up to and including the last `\n`, and
/// the file's length, found by reading backwards from the end.
pub fn complete_len_of(file: &mut File) -> io::Result<(u64, u64)> {
    use std::io::{Read, Seek, SeekFrom};
    let total = file.metadata()?.len();
    let mut end = total;
    let mut buf = vec![0u8; 1 << 16];
    while end > 0 {
        let start = end.saturating_sub(buf.len() as u64);
        let chunk = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(chunk)?;
        if let Some(i) = memchr::memrchr(b'\n', chunk) {
            file.seek(SeekFrom::Start(0))?;
            return Ok((start + i as u64 + 1, total));
        }
        end = start;
    }
    file.seek(SeekFrom::Start(0))?;
    Ok((0, total))
}

/// What identifies a transcript's conversation cheaply: a hash of its lines
/// up to and including the first that carries this session's `sessionId`,
/// with that value masked (a fork differs from its origin only there).
/// Transcripts whose keys differ are never a prefix one of the other.
/// `None` when no such line is complete within the first MiB: such a
/// transcript (summaries only, say) is never taken for another session's
/// branch, since lines without an id may be shared by unrelated sessions.
pub fn first_line_key(path: &Path, id: &str) -> io::Result<Option<[u8; 32]>> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    const CAP: u64 = 1 << 20;
    let mut reader = BufReader::new(File::open(path)?.take(CAP));
    let mut hasher = Sha256::new();
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 || line.last() != Some(&b'\n') {
            return Ok(None);
        }
        let carries_id = session_id_span(&line).is_some_and(|span| &line[span] == id.as_bytes());
        hasher.update(with_session_id(&line, id, ""));
        if carries_id {
            return Ok(Some(hasher.finalize().into()));
        }
    }
}

/// Whether the first `len` bytes of the two files are the same.
pub fn same_prefix(a: &Path, b: &Path, len: u64) -> io::Result<bool> {
    use std::io::Read;
    let (mut a, mut b) = (File::open(a)?.take(len), File::open(b)?.take(len));
    let (mut x, mut y) = (vec![0u8; 1 << 16], vec![0u8; 1 << 16]);
    loop {
        let n = crate::fsutil::read_full(&mut a, &mut x)?;
        let m = crate::fsutil::read_full(&mut b, &mut y)?;
        if n != m || x[..n] != y[..m] {
            return Ok(false);
        }
        if n == 0 {
            return Ok(true);
        }
    }
}

/// Newlines in the first `len` bytes of a file.
pub fn count_lines_of(path: &Path, len: u64) -> io::Result<u64> {
    use std::io::Read;
    let mut f = File::open(path)?.take(len);
    let mut buf = vec![0u8; 1 << 16];
    let mut lines = 0;
    loop {
        match f.read(&mut buf)? {
            0 => return Ok(lines),
            n => lines += memchr::memchr_iter(b'\n', &buf[..n]).count() as u64,
        }
    }
}

/// [`with_session_id`] from file to writer, one line at a time.
pub fn copy_with_session_id(
    src: &Path,
    out: &mut impl io::Write,
    from: &str,
    to: &str,
) -> io::Result<()> {
    let mut reader = BufReader::with_capacity(1 << 16, File::open(src)?);
    let mut line = Vec::new();
    loop {
        line.clear();
        if reader.read_until(b'\n', &mut line)? == 0 {
            return Ok(());
        }
        out.write_all(&with_session_id(&line, from, to))?;
    }
}

#[cfg(test)]
mod file_tests {
    use super::*;

    #[test]
    fn complete_length_from_the_end() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        for (content, want) in [
            (&b""[..], 0),
            (b"no newline", 0),
            (b"a\nb\n", 4),
            (b"a\npartial", 2),
        ] {
            std::fs::write(&p, content).unwrap();
            let mut f = File::open(&p).unwrap();
            assert_eq!(
                complete_len_of(&mut f).unwrap(),
                (want, content.len() as u64)
            );
        }
        let big = [b"x".repeat(200_000), b"\n".to_vec(), b"y".repeat(150_000)].concat();
        std::fs::write(&p, &big).unwrap();
        assert_eq!(
            complete_len_of(&mut File::open(&p).unwrap()).unwrap().0,
            200_001
        );
    }

    #[test]
    fn prefixes_and_counts() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        let long = b"line\n".repeat(30_000);
        std::fs::write(&a, &long).unwrap();
        std::fs::write(&b, &long[..100_000]).unwrap();
        assert!(same_prefix(&a, &b, 100_000).unwrap());
        let mut other = long[..100_000].to_vec();
        other[99_000] = b'X';
        std::fs::write(&b, &other).unwrap();
        assert!(!same_prefix(&a, &b, 100_000).unwrap());
        assert_eq!(count_lines_of(&a, 10).unwrap(), 2);
        let mut out = Vec::new();
        std::fs::write(&b, b"{\"sessionId\":\"s\",\"a\":1}\nx\n").unwrap();
        copy_with_session_id(&b, &mut out, "s", "t").unwrap();
        assert_eq!(out, b"{\"sessionId\":\"t\",\"a\":1}\nx\n");
    }
}

/// SHA-256 (hex) of the first `len` bytes of a file.
pub fn sha256_of_prefix(path: &Path, len: u64) -> io::Result<String> {
    Ok(sha256_of_prefixes(path, &[len])?.remove(0))
}

/// The SHA-256 of each of the first `lens` bytes of a file (ascending),
/// reading it once.
pub fn sha256_of_prefixes(path: &Path, lens: &[u64]) -> io::Result<Vec<String>> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let last = lens.iter().copied().max().unwrap_or(0);
    let mut f = File::open(path)?.take(last);
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 16];
    let mut read = 0u64;
    let mut out = Vec::with_capacity(lens.len());
    let mut wanted = lens.iter().copied().peekable();
    while let Some(&next) = wanted.peek() {
        if next == read {
            out.push(format!("{:x}", hasher.clone().finalize()));
            wanted.next();
            continue;
        }
        let room = (next - read).min(buf.len() as u64) as usize;
        match f.read(&mut buf[..room])? {
            0 => {
                return Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the file is shorter than expected",
                ));
            }
            n => {
                hasher.update(&buf[..n]);
                read += n as u64;
            }
        }
    }
    Ok(out)
}
