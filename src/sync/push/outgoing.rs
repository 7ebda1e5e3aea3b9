//! A local session as it will travel: its complete lines and side files,
//! and the bundle they make.

use crate::bundle::layers::Layers;
use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::bundle::{self, Body, Meta, OutPart, PartBody, PartData};
use crate::claude::parts::Parts;
use crate::claude::sessions::LocalSession;
use crate::claude::transcript;
use crate::fsutil;
use crate::index::Stamp;
use crate::names::MachineName;
use crate::project::Placement;
use crate::sync::SessionError;

/// A session ready to be packed: its complete lines, as found on disk.
#[derive(Debug)]
pub struct Outgoing {
    pub meta: Meta,
    pub source: PathBuf,
    /// Bytes up to the last `\n`: what travels.
    pub len: u64,
    /// Where the bytes that travel start: 0 for a whole bundle, the end
    /// of the copy already stored for a segment.
    pub from: u64,
    /// Lines before `from`, so findings name their line in the file.
    pub lines_before: u64,
    /// Bytes of a line Claude Code was still writing, left behind.
    pub partial_tail: u64,
    /// The side files that travel with it.
    pub parts: Vec<OutPart>,
    /// Their paths and stamps, for the index.
    pub part_stamps: Vec<(String, Stamp)>,
    /// Side files left behind, and why.
    pub skipped_parts: Vec<(PathBuf, String)>,
}

/// Finds how much of a session's transcript and side files is complete,
/// reading only the ends of transcripts.
pub fn prepare(
    session: &LocalSession,
    parts: Parts,
    placement: &Placement,
    machine: &MachineName,
    now_ms: u64,
) -> Result<Outgoing, SessionError> {
    let path = &session.file.path;
    let read_err = |source| SessionError::Read {
        path: path.clone(),
        source,
    };
    let (len, total) =
        transcript::complete_len_of(&mut File::open(path).map_err(read_err)?).map_err(read_err)?;
    if len == 0 {
        return Err(SessionError::NoCompleteLine { path: path.clone() });
    }
    if len > bundle::MAX_BUNDLE_BYTES {
        return Err(SessionError::Bundle {
            path: path.clone(),
            source: bundle::BundleError::TooLarge,
        });
    }
    let part_stamps = parts.stamps();
    let mut skipped_parts = parts.skipped;
    // Each side file with the room it takes in the bundle, at most (base64
    // is 4/3 of the bytes).
    let mut sized = Vec::with_capacity(parts.found.len());
    for part in parts.found {
        // A subagent transcript travels up to its last complete line, like
        // the session's own; other side files are written whole.
        let len = if part.path.appended() {
            match File::open(&part.file).and_then(|mut f| transcript::complete_len_of(&mut f)) {
                Ok((len, _)) => Some(len),
                Err(e) => {
                    skipped_parts.push((part.file, e.to_string()));
                    continue;
                }
            }
        } else {
            None
        };
        let room = len.unwrap_or(part.stamp.size) / 3 * 4 + 512;
        sized.push((
            room,
            part.path,
            len,
            part.file,
            part.stamp.mtime_ns / 1_000_000,
        ));
    }
    // A bundle over the limit would be refused by every reader: the
    // largest side files stay behind instead, named (a transcript's
    // escaping rarely adds a quarter).
    sized.sort_by_key(|(room, ..)| *room);
    let mut planned = len + len / 4 + 4096;
    let mut out_parts = Vec::with_capacity(sized.len());
    let mut parts_modified_ms = std::collections::BTreeMap::new();
    for (room, path, len, file, modified_ms) in sized {
        planned += room;
        if planned > bundle::MAX_BUNDLE_BYTES {
            skipped_parts.push((
                file,
                format!(
                    "the bundle would pass the {} MiB limit",
                    bundle::MAX_BUNDLE_BYTES >> 20
                ),
            ));
            continue;
        }
        parts_modified_ms.insert(path.clone(), modified_ms);
        out_parts.push(OutPart {
            path,
            len,
            data: PartData::File(file),
        });
    }
    out_parts.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Outgoing {
        meta: Meta {
            version: bundle::CURRENT_VERSION,
            session_id: session.file.id.clone(),
            project_key: placement.key.clone(),
            original_cwd: session.cwd.clone(),
            relative_cwd: Some(placement.relative.clone()),
            machine: machine.clone(),
            exported_at_ms: now_ms,
            modified_ms: Some(crate::fsutil::unix_ms(session.file.modified)),
            parts_modified_ms,
            segment: None,
        },
        source: path.clone(),
        len,
        from: 0,
        lines_before: 0,
        partial_tail: total - len,
        parts: out_parts,
        part_stamps,
        skipped_parts,
    })
}

impl Outgoing {
    /// The segment that takes the copy stored at `head.extends` to this
    /// session: the bytes after it, and the side files `changed` says
    /// changed since, whole.
    pub fn segment(
        &self,
        head: bundle::SegmentHead,
        lines_before: u64,
        changed: impl Fn(&OutPart) -> bool,
    ) -> Outgoing {
        let parts: Vec<OutPart> = self.parts.iter().filter(|p| changed(p)).cloned().collect();
        let mut meta = self.meta.clone();
        meta.parts_modified_ms
            .retain(|path, _| parts.iter().any(|p| p.path == *path));
        let from = head.extends.len;
        meta.segment = Some(head);
        Outgoing {
            meta,
            source: self.source.clone(),
            len: self.len,
            from,
            lines_before,
            partial_tail: self.partial_tail,
            parts,
            part_stamps: self.part_stamps.clone(),
            skipped_parts: self.skipped_parts.clone(),
        }
    }

    /// Streams the bundle to `out`, reading the transcript once.
    pub fn write(&self, out: &mut (impl Write + Send)) -> Result<Body, SessionError> {
        self.write_with_parts(out, &crate::sync::Quiet)
            .map(|(body, _)| body)
    }

    /// The same, with what was learned of each side file.
    pub fn write_with_parts(
        &self,
        out: &mut (impl Write + Send),
        progress: &dyn crate::sync::Progress,
    ) -> Result<(Body, Vec<PartBody>), SessionError> {
        let read_err = |source| SessionError::Read {
            path: self.source.clone(),
            source,
        };
        let mut file = File::open(&self.source).map_err(read_err)?;
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(self.from)).map_err(read_err)?;
        let mut file = crate::sync::Counting {
            inner: file,
            progress,
        };
        bundle::write(
            &self.meta,
            &mut file,
            self.len - self.from,
            &self.parts,
            out,
        )
        .map_err(|e| match e {
            bundle::BundleError::Io(source) => read_err(source),
            source => SessionError::Bundle {
                path: self.source.clone(),
                source,
            },
        })
    }

    /// Writes the bundle to a private file, atomically (not fsynced: it is
    /// a staging copy or an export, and the transcript is still here).
    /// `layers` wrap it as the sync dir stores it (plain for an export).
    pub fn write_file(
        &self,
        dest: &Path,
        layers: &Layers,
        progress: &dyn crate::sync::Progress,
    ) -> Result<(Body, Vec<PartBody>), SessionError> {
        let mut body = None;
        let mut failure = None;
        let written = fsutil::write_replace(dest, |f| {
            let mut out = layers.writer(BufWriter::with_capacity(1 << 16, f))?;
            match self.write_with_parts(&mut out, progress) {
                Ok(b) => body = Some(b),
                Err(e) => {
                    failure = Some(e);
                    return Err(std::io::Error::other("bundle not written"));
                }
            }
            out.finish()?.flush()
        });
        if let Some(e) = failure {
            return Err(e);
        }
        written.map_err(|source| SessionError::Write {
            path: dest.to_path_buf(),
            source,
        })?;
        Ok(body.expect("written"))
    }
}
