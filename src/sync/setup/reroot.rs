//! Home paths inside `settings.json` (hook commands, `statusLine`, …)
//! travel relative to the home: on the way out this machine's home becomes
//! a placeholder, on the way in the placeholder becomes this machine's
//! home. Only the bytes inside JSON string literals change, and only where
//! the home is a whole path prefix, so a file with no home path in it keeps
//! every byte, and the rest of a file that has one keeps its formatting.

use std::path::Path;

/// What stands for the home directory in a file that travels.
pub const HOME_TOKEN: &str = "{{CCSYNC_HOME}}";

/// `bytes` with this machine's home replaced by [`HOME_TOKEN`], or `None`
/// when nothing changes (no home path inside, not JSON, no usable home).
pub fn portable(bytes: &[u8], home: &Path) -> Option<Vec<u8>> {
    let home = escaped_home(home)?;
    serde_json::from_slice::<serde::de::IgnoredAny>(bytes).ok()?;
    let out = map_literals(bytes, |lit, out| replace_at_boundaries(lit, &home, out));
    (out != bytes).then_some(out)
}

/// The reverse: [`HOME_TOKEN`] replaced by this machine's home.
pub fn localized(bytes: &[u8], home: &Path) -> Vec<u8> {
    let Some(home) = escaped_home(home) else {
        return bytes.to_vec();
    };
    map_literals(bytes, |lit, out| {
        let mut rest = lit;
        while let Some(at) = find(rest, HOME_TOKEN.as_bytes()) {
            out.extend_from_slice(&rest[..at]);
            out.extend_from_slice(home.as_bytes());
            rest = &rest[at + HOME_TOKEN.len()..];
        }
        out.extend_from_slice(rest);
    })
}

/// The home as it is spelled inside a JSON string; `None` for a home that
/// would match too much (`/`) or is not UTF-8.
fn escaped_home(home: &Path) -> Option<String> {
    let text = home.to_str()?.trim_end_matches('/');
    if text.len() < 2 {
        return None;
    }
    let quoted = serde_json::to_string(text).ok()?;
    Some(quoted[1..quoted.len() - 1].to_owned())
}

/// Copies `bytes`, handing the inside of each string literal to `f`.
fn map_literals(bytes: &[u8], mut f: impl FnMut(&[u8], &mut Vec<u8>)) -> Vec<u8> {
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] != b'"' {
            out.push(bytes[i]);
            i += 1;
            continue;
        }
        let start = i + 1;
        let mut end = start;
        while end < bytes.len() && bytes[end] != b'"' {
            end += if bytes[end] == b'\\' { 2 } else { 1 };
        }
        let end = end.min(bytes.len());
        out.push(b'"');
        f(&bytes[start..end], &mut out);
        if end < bytes.len() {
            out.push(b'"');
        }
        i = end + 1;
    }
    out
}

/// Bytes a path goes on with: after the home, one of them means the match
/// was part of a longer name (`/home/u2` is not under `/home/u`).
fn is_path_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'~' | b'/') || b >= 0x80
}

fn replace_at_boundaries(lit: &[u8], home: &str, out: &mut Vec<u8>) {
    let home = home.as_bytes();
    let mut i = 0;
    while i < lit.len() {
        let before_ok = i == 0 || !is_path_byte(lit[i - 1]);
        if before_ok && lit[i..].starts_with(home) {
            let after = lit.get(i + home.len()).copied();
            if after.is_none_or(|b| b == b'/' || !is_path_byte(b)) {
                out.extend_from_slice(HOME_TOKEN.as_bytes());
                i += home.len();
                continue;
            }
        }
        out.push(lit[i]);
        i += 1;
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    const HOME: &str = "/home/alice";

    #[test]
    fn home_paths_travel_relative_and_land_under_this_home() {
        let text = br#"{
  "hooks": {"Stop": [{"hooks": [{"type": "command", "command": "bash /home/alice/bin/done.sh --log=/home/alice"}]}]},
  "statusLine": {"type": "command", "command": "/home/alice/.claude/status.sh"},
  "other": "/home/alice2/x /x/home/alice/y /home/alicex",
  "model": "opus"
}"#;
        let out = portable(text, Path::new(HOME)).expect("home paths inside");
        let out_text = String::from_utf8(out.clone()).unwrap();
        assert!(!out_text.contains("bash /home/alice/"), "{out_text}");
        assert!(out_text.contains("bash {{CCSYNC_HOME}}/bin/done.sh --log={{CCSYNC_HOME}}\""));
        assert!(out_text.contains("\"{{CCSYNC_HOME}}/.claude/status.sh\""));
        assert!(out_text.contains("\"/home/alice2/x /x/home/alice/y /home/alicex\""));
        let back = localized(&out, Path::new("/Users/bob"));
        let expected = String::from_utf8(text.to_vec())
            .unwrap()
            .replace("bash /home/alice/", "bash /Users/bob/")
            .replace("--log=/home/alice\"", "--log=/Users/bob\"")
            .replace("\"/home/alice/.claude", "\"/Users/bob/.claude");
        assert_eq!(String::from_utf8(back).unwrap(), expected);
        assert_eq!(localized(&out, Path::new(HOME)), text.to_vec());
    }

    #[test]
    fn a_file_without_home_paths_keeps_its_bytes() {
        for text in [
            &br#"{"model":"opus","env":{"A":"/opt/x"}}"#[..],
            b"not json /home/alice",
            b"{\"a\": \"/home/alicexyz\"}",
        ] {
            assert_eq!(portable(text, Path::new(HOME)), None);
        }
        assert_eq!(portable(b"{\"a\":\"/home/alice\"}", Path::new("/")), None);
    }

    #[test]
    fn escapes_inside_literals_are_kept() {
        let text = br#"{"a":"say \"/home/alice/x\" \\ done","b":"\u00e9"}"#;
        let out = portable(text, Path::new(HOME)).unwrap();
        assert_eq!(
            out,
            br#"{"a":"say \"{{CCSYNC_HOME}}/x\" \\ done","b":"\u00e9"}"#.to_vec()
        );
        serde_json::from_slice::<serde_json::Value>(&out).unwrap();
    }
}
