//! What crosses the wire to and from the remote scripts: tar streams of
//! objects, `size mtime ./dir/file` listing lines on stdout, and on stderr
//! one line per object the script would not touch:
//!
//! ```text
//! ccsync-skip <TAB> <path> <TAB> <kind> <TAB> <detail>
//! ```
//!
//! `path` is the object as the script was given it (or, from LIST, the
//! entry refused); `kind` says why (`link`, `missing`, `not-file`,
//! `not-folder`, `too-large`, `unreadable`, `error`); `detail` is the path
//! of the link, the size, or the remote command's own words. Tabs and
//! newlines in `detail` arrive as spaces. Every other stderr line is ssh's
//! or the shell's, kept for errors about the whole call.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use super::super::{ObjectName, PerObject, RemoteObject, Visitor};
use crate::bundle::MAX_BUNDLE_BYTES;

const SKIP: &str = "ccsync-skip\t";

/// Why the remote script left one object alone.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Skip {
    pub path: String,
    pub kind: String,
    pub detail: String,
}

/// A script's stderr: its skip lines, and every other non-empty line.
pub(super) fn split_stderr(stderr: &[u8]) -> (Vec<Skip>, Vec<String>) {
    let mut skips = Vec::new();
    let mut other = Vec::new();
    for line in String::from_utf8_lossy(stderr).lines() {
        match parse_skip(line) {
            Some(skip) => skips.push(skip),
            None if !line.trim().is_empty() => other.push(line.trim().to_owned()),
            None => {}
        }
    }
    (skips, other)
}

fn parse_skip(line: &str) -> Option<Skip> {
    let mut fields = line.strip_prefix(SKIP)?.splitn(3, '\t');
    let path = fields.next().filter(|p| !p.is_empty())?;
    let kind = fields.next().filter(|k| !k.is_empty())?;
    Some(Skip {
        path: path.trim_start_matches("./").to_owned(),
        kind: kind.to_owned(),
        detail: fields.next().unwrap_or("").trim().to_owned(),
    })
}

impl Skip {
    /// Why, for the user, never empty. The caller names the object, so
    /// the object is "it"; anything else (its folder) is named in full,
    /// through `at`, which turns a path in the sync dir into one the user
    /// can look at (`host:/srv/sync/dir`).
    pub fn reason(&self, at: impl Fn(&str) -> String) -> String {
        let detail = self.detail.trim_start_matches("./");
        let what = if detail.is_empty() || detail == self.path {
            "it".to_owned()
        } else {
            at(detail)
        };
        let said = if self.detail.is_empty() {
            "the host gave no reason"
        } else {
            &self.detail
        };
        match self.kind.as_str() {
            "link" => format!(
                "{what} is a symbolic link; ccsync never reads or writes through links in the sync dir. Remove it (its target is not touched)"
            ),
            "missing" if what == "it" => "it is gone (removed since it was listed)".into(),
            "missing" => format!("{what} does not exist"),
            "not-file" => format!("{what} is not a regular file"),
            "not-folder" => format!("{what} is not a folder; move it out of the way"),
            "too-large" => match self.detail.parse::<u64>() {
                Ok(len) => crate::transport::dir::too_large("it", len),
                Err(_) => format!(
                    "it is over the {} MiB bundle limit; it was not read",
                    MAX_BUNDLE_BYTES >> 20
                ),
            },
            "unreadable" => format!("cannot read it: {said}"),
            "error" => format!("the host said: {said}"),
            other => format!("the host said {other}: {said}"),
        }
    }
}

/// What the remote said last, for an error about the whole call.
pub(super) fn last_words(other: &[String]) -> Option<&str> {
    other.last().map(String::as_str)
}

/// Why an object is missing from a batch that no skip line explains: the
/// remote's own line about it (`tar: ./x: Cannot open: …`), if any.
pub(super) fn unexplained(path: &str, other: &[String], otherwise: String) -> String {
    match other.iter().find(|l| l.contains(path)) {
        Some(line) => format!("{otherwise}: {line}"),
        None => otherwise,
    }
}

/// `size mtime ./dir/file` lines, as `stat` prints them, into objects.
pub(super) fn parse_listing(out: &[u8]) -> Vec<RemoteObject> {
    let mut objects: Vec<RemoteObject> = String::from_utf8_lossy(out)
        .lines()
        .filter_map(|line| {
            let mut parts = line.splitn(3, ' ');
            let size = parts.next()?.parse().ok()?;
            let mtime: u64 = parts.next()?.parse().ok()?;
            let (dir, file) = parts.next()?.strip_prefix("./")?.split_once('/')?;
            Some(RemoteObject {
                name: ObjectName::parse(dir, file)?,
                size,
                modified: Some(SystemTime::UNIX_EPOCH + Duration::from_secs(mtime)),
            })
        })
        .collect();
    objects.sort_by(|a, b| a.name.cmp(&b.name));
    objects.dedup_by(|a, b| a.name == b.name);
    objects
}

/// Writes the files as a tar stream: regular files, mode 0600. A local file
/// that cannot be read is named in the error, whose kind is then never
/// `BrokenPipe`: that one means the remote end went away.
pub(super) fn pack(stdin: impl Write, objects: &[(ObjectName, PathBuf)]) -> std::io::Result<()> {
    let local = |path: &Path| {
        let path = path.to_path_buf();
        move |e: std::io::Error| {
            std::io::Error::other(format!("cannot read {}: {e}", path.display()))
        }
    };
    let mut builder = tar::Builder::new(stdin);
    for (name, path) in objects {
        let mut file = std::fs::File::open(path).map_err(local(path))?;
        let mut header = tar::Header::new_ustar();
        header.set_size(file.metadata().map_err(local(path))?.len());
        header.set_mode(0o600);
        header.set_entry_type(tar::EntryType::Regular);
        header.set_mtime(
            SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
        );
        builder.append_data(&mut header, name.to_string(), &mut file)?;
    }
    builder.into_inner()?.flush()
}

/// Reads the tar stream of a fetch, handing each regular file that was
/// asked for, within the bundle size cap, to `visit`. (The script already
/// left out links and oversized files; this holds if one changed since.)
pub(super) fn unpack(
    stdout: impl Read,
    names: &[ObjectName],
    visit: &mut Visitor,
    found: &mut [Option<PerObject<()>>],
) -> Result<(), String> {
    let mut archive = tar::Archive::new(stdout);
    let entries = archive.entries().map_err(|e| format!("bad archive: {e}"))?;
    for entry in entries {
        let mut entry = entry.map_err(|e| format!("bad archive: {e}"))?;
        let path = entry
            .path()
            .map_err(|e| format!("bad archive: {e}"))?
            .to_string_lossy()
            .into_owned();
        let path = path.trim_start_matches("./");
        let Some(i) = names.iter().position(|n| n.to_string() == path) else {
            continue;
        };
        if entry.header().entry_type() != tar::EntryType::Regular {
            found[i] = Some(Err(format!(
                "{path} is not a regular file; links are never followed"
            )));
            continue;
        }
        if entry.size() > MAX_BUNDLE_BYTES {
            found[i] = Some(Err(crate::transport::dir::too_large(path, entry.size())));
            continue;
        }
        visit(i, &mut entry);
        found[i] = Some(Ok(()));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(rel: &str) -> String {
        format!("box:/srv/{rel}")
    }

    #[test]
    fn skip_lines_are_told_from_the_rest() {
        let stderr = b"ccsync-skip\t./git=x/a.ccsync\tlink\t./git=x\n\
            Warning: Permanently added 'box'\n\
            \n\
            ccsync-skip\tgit=y/b.ccsync\ttoo-large\t1073741825\n\
            ccsync-skip\t\tlink\t\n\
            ccsync-skip\tgit=z\tlink\t\n\
            tar: ./git=w/c.ccsync: Cannot open: Permission denied\n";
        let (skips, other) = split_stderr(stderr);
        assert_eq!(
            skips,
            [
                Skip {
                    path: "git=x/a.ccsync".into(),
                    kind: "link".into(),
                    detail: "./git=x".into()
                },
                Skip {
                    path: "git=y/b.ccsync".into(),
                    kind: "too-large".into(),
                    detail: "1073741825".into()
                },
                Skip {
                    path: "git=z".into(),
                    kind: "link".into(),
                    detail: String::new()
                },
            ]
        );
        assert_eq!(
            other,
            [
                "Warning: Permanently added 'box'",
                "ccsync-skip\t\tlink",
                "tar: ./git=w/c.ccsync: Cannot open: Permission denied"
            ]
        );
        assert_eq!(
            last_words(&other),
            Some("tar: ./git=w/c.ccsync: Cannot open: Permission denied")
        );
        assert_eq!(
            unexplained("git=w/c.ccsync", &other, "gone".into()),
            "gone: tar: ./git=w/c.ccsync: Cannot open: Permission denied"
        );
        assert_eq!(unexplained("git=v/d", &other, "gone".into()), "gone");
    }

    #[test]
    fn every_reason_says_what_and_is_never_empty() {
        let skip = |kind: &str, detail: &str| Skip {
            path: "git=x/a.ccsync".into(),
            kind: kind.into(),
            detail: detail.into(),
        };
        let link = skip("link", "./git=x").reason(at);
        assert!(
            link.starts_with("box:/srv/git=x is a symbolic link"),
            "{link}"
        );
        assert!(link.ends_with("its target is not touched)"), "{link}");
        for detail in ["", "./git=x/a.ccsync", "git=x/a.ccsync"] {
            let link = skip("link", detail).reason(at);
            assert!(link.starts_with("it is a symbolic link"), "{link}");
        }
        assert!(
            skip("too-large", "1073741825")
                .reason(at)
                .contains("1073741825 bytes, over the 1024 MiB")
        );
        assert!(skip("too-large", "?").reason(at).contains("1024 MiB"));
        assert_eq!(
            skip(
                "unreadable",
                "sh: 1: cannot open ./git=x/a.ccsync: Permission denied"
            )
            .reason(at),
            "cannot read it: sh: 1: cannot open ./git=x/a.ccsync: Permission denied"
        );
        assert_eq!(
            skip("missing", "./git=x").reason(at),
            "box:/srv/git=x does not exist"
        );
        assert_eq!(
            skip("not-folder", "git=x").reason(at),
            "box:/srv/git=x is not a folder; move it out of the way"
        );
        let kinds = ["link", "missing", "not-file", "not-folder", "too-large"];
        for kind in kinds.into_iter().chain(["unreadable", "error", "new"]) {
            let reason = skip(kind, "").reason(at);
            assert!(!reason.trim().is_empty(), "{kind}");
            assert!(!reason.trim_end().ends_with(':'), "{kind}: {reason}");
            assert!(
                !reason.contains(": :") && !reason.contains(":  "),
                "{reason}"
            );
        }
    }

    #[test]
    fn listing_lines() {
        let objects = parse_listing(
            b"12 1700000000 ./git=x/b.ccsync\n3 1 ./git=x/a.ccsync\n\
              9 9 ./git=x/.hidden\nnonsense\n4 4 ./toplevel\n",
        );
        let names: Vec<String> = objects.iter().map(|o| o.name.to_string()).collect();
        assert_eq!(names, ["git=x/a.ccsync", "git=x/b.ccsync"]);
        assert_eq!(objects[1].size, 12);
    }

    #[test]
    fn pack_and_unpack() {
        let tmp = tempfile::tempdir().unwrap();
        let a = ObjectName::parse("git=x", "a.ccsync").unwrap();
        let b = ObjectName::parse("machines", "m.json").unwrap();
        std::fs::write(tmp.path().join("a"), b"aaa").unwrap();
        std::fs::write(tmp.path().join("b"), b"").unwrap();
        let mut stream = Vec::new();
        pack(
            &mut stream,
            &[
                (a.clone(), tmp.path().join("a")),
                (b.clone(), tmp.path().join("b")),
            ],
        )
        .unwrap();
        let mut found = vec![None, None];
        let mut got = [Vec::new(), Vec::new()];
        unpack(
            stream.as_slice(),
            &[b, a.clone()],
            &mut |i, r| {
                r.read_to_end(&mut got[i]).unwrap();
            },
            &mut found,
        )
        .unwrap();
        assert_eq!(got[1], b"aaa");
        assert_eq!(got[0], b"");
        assert!(found.iter().all(|f| matches!(f, Some(Ok(())))));

        // Nothing to send: an empty stream is an empty archive.
        let mut found = vec![None];
        unpack(
            &b""[..],
            std::slice::from_ref(&a),
            &mut |_, _| {},
            &mut found,
        )
        .unwrap();
        assert!(found[0].is_none());

        let err = pack(&mut Vec::new(), &[(a, tmp.path().join("gone"))]).unwrap_err();
        assert!(err.to_string().contains("gone"), "{err}");
        assert_ne!(err.kind(), std::io::ErrorKind::BrokenPipe);
    }
}
