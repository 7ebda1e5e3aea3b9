//! The `.ccsync` bundle: one JSON object carrying one session.
//!
//! `_schemaVersion` comes first and is read before anything else; versions this
//! build does not know are refused, never guessed at. Version 1 is the format
//! published by the tool that named it (FACTS.md). Version 2, written here,
//! adds the transcript's SHA-256 and the working directory relative to the
//! project root. The transcript is the last field but for its line count and
//! checksum, so an encoder can stream it and hash as it goes. Version 3 is
//! version 2 plus the session's side files (`parts`, see [`parts`]); it is
//! written only for sessions that have side files, so a peer that reads
//! version 2 still reads every session without them. Version 4 is version
//! 3 (parts optional) plus the modification times of the transcript
//! (`modifiedAt`) and of each side file (`partsModifiedAt`, by path), in
//! Unix milliseconds, so a pull can give files the source's times.
//! Version 5 is a segment ([`segment`]): version 4 carrying only what a
//! session gained since the state it names, so a push after an append
//! stores the new bytes alone. Only sync dirs hold segments; a file that
//! stands alone (`export`) is always a whole bundle.
//!
//! Outer layers (compression, encryption) wrap the whole file; this module
//! recognises their magic bytes and says what the file is instead of failing
//! on it as bad JSON.

pub mod json;
pub mod layers;
pub mod parts;
pub mod segment;

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Read, Write};

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::names::{MachineName, NameError, PartPath, RelPath, SessionId};
use crate::project::ProjectKey;
pub use parts::{OutPart, PartBody, PartData, PartSink};
pub use segment::SegmentHead;

pub const CURRENT_VERSION: u32 = 4;
pub const SUPPORTED_VERSIONS: [u32; 5] = [1, 2, 3, 4, 5];
/// Segments' version.
pub const SEGMENT_VERSION: u32 = 5;
/// Bundles larger than this are refused before they are read.
pub const MAX_BUNDLE_BYTES: u64 = 1 << 30;
/// File name extension in the sync dir and for `export`.
pub const EXTENSION: &str = "ccsync";

/// A decoded, validated bundle held in memory (tests, small tools); the
/// commands stream with [`write`] and [`read`] instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    pub meta: Meta,
    /// The transcript, complete lines only, exactly as on disk.
    pub transcript: Vec<u8>,
    /// Side files, in bundle order.
    pub parts: Vec<(PartPath, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error)]
pub enum BundleError {
    #[error("the file is empty")]
    Empty,
    #[error("the file is {0}; this ccsync reads plain .ccsync JSON: unwrap it first")]
    Wrapped(&'static str),
    #[error("it is larger than the {} MiB limit for a bundle", MAX_BUNDLE_BYTES >> 20)]
    TooLarge,
    /// An encryption layer that cannot be opened here, and why.
    #[error("{0}")]
    Encrypted(String),
    #[error("it is not valid JSON ({0}); the file may be truncated or not a .ccsync bundle")]
    Json(#[source] serde_json::Error),
    #[error("it is not valid JSON ({0}); the file may be truncated or not a .ccsync bundle")]
    Syntax(String),
    #[error("{0}")]
    Io(#[from] io::Error),
    #[error("it is not a JSON object, so not a .ccsync bundle")]
    NotObject,
    #[error("it has no `_schemaVersion` field, so it is not a .ccsync bundle")]
    NoVersion,
    #[error(
        "it has schema version {0}, which this ccsync does not read (it reads versions 1 to 5); upgrade ccsync"
    )]
    UnknownVersion(String),
    #[error("its fields are not those of a version {version} bundle: {source}")]
    Shape {
        version: u32,
        source: serde_json::Error,
    },
    #[error("field `{field}` is wrong: {reason}")]
    Field { field: &'static str, reason: String },
    #[error(
        "the transcript does not match its SHA-256 (expected {expected}, found {actual}): the file is corrupt"
    )]
    Checksum { expected: String, actual: String },
    #[error("the transcript is not UTF-8 text, so it cannot be carried byte for byte in JSON")]
    NotUtf8,
    #[error(
        "it is a segment (version 5): a piece of a session's copy in a sync dir, not a whole session. `ccsync export` writes a file that stands alone"
    )]
    IsSegment,
}

fn field(field: &'static str, reason: impl ToString) -> BundleError {
    BundleError::Field {
        field,
        reason: reason.to_string(),
    }
}

fn name_field(name: &'static str) -> impl Fn(NameError) -> BundleError {
    move |e| field(name, e)
}

/// Everything in a bundle but the transcript.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Meta {
    pub version: u32,
    pub session_id: SessionId,
    pub project_key: ProjectKey,
    pub original_cwd: String,
    pub relative_cwd: Option<RelPath>,
    pub machine: MachineName,
    pub exported_at_ms: u64,
    /// When the transcript was last modified on the source (version 4).
    pub modified_ms: Option<u64>,
    /// When each side file was last modified on the source (version 4).
    pub parts_modified_ms: BTreeMap<PartPath, u64>,
    /// Set for a segment (version 5): its place in its chain.
    pub segment: Option<SegmentHead>,
}

/// What was learned of the transcript while it streamed past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Body {
    pub len: u64,
    pub lines: u64,
    pub sha256: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct V1 {
    session_id: String,
    project_key: String,
    original_cwd: String,
    machine_name: String,
    exported_at: f64,
    line_count: f64,
}

/// Versions 2 to 4 without the transcript and parts, in the order the
/// fields are written.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
struct V2Head {
    #[serde(rename = "_schemaVersion")]
    schema_version: u32,
    session_id: String,
    project_key: String,
    original_cwd: String,
    relative_cwd: String,
    machine_name: String,
    exported_at: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    segment: Option<SegmentHead>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    modified_at: Option<u64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    parts_modified_at: BTreeMap<String, u64>,
    #[serde(skip_serializing)]
    line_count: u64,
    #[serde(skip_serializing)]
    sha256: String,
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Hashes, counts lines and remembers the last byte of what streams past.
struct Tally {
    hasher: Sha256,
    len: u64,
    lines: u64,
    last: Option<u8>,
}

impl Tally {
    fn new() -> Self {
        Self {
            hasher: Sha256::new(),
            len: 0,
            lines: 0,
            last: None,
        }
    }

    fn add(&mut self, bytes: &[u8]) {
        self.hasher.update(bytes);
        self.len += bytes.len() as u64;
        self.lines += memchr::memchr_iter(b'\n', bytes).count() as u64;
        if let Some(&b) = bytes.last() {
            self.last = Some(b);
        }
    }

    fn finish(self) -> Body {
        Body {
            len: self.len,
            lines: self.lines,
            sha256: format!("{:x}", self.hasher.finalize()),
        }
    }
}

/// Writes a bundle, streaming exactly `len` bytes (complete lines, UTF-8)
/// of the transcript from `transcript`, and each part, hashing them on the
/// way: memory stays small whatever their sizes. Version 4 when `meta` has
/// the transcript's modification time; else version 2 when there are no
/// parts, else version 3.
pub fn write(
    meta: &Meta,
    transcript: &mut impl Read,
    len: u64,
    parts: &[OutPart],
    out: &mut (impl Write + Send),
) -> Result<(Body, Vec<PartBody>), BundleError> {
    let head = V2Head {
        schema_version: match (meta.modified_ms, parts.is_empty()) {
            _ if meta.segment.is_some() => SEGMENT_VERSION,
            (Some(_), _) => 4,
            (None, true) => 2,
            (None, false) => 3,
        },
        session_id: meta.session_id.to_string(),
        project_key: meta.project_key.to_string(),
        original_cwd: meta.original_cwd.clone(),
        relative_cwd: meta
            .relative_cwd
            .as_ref()
            .map_or("", RelPath::as_str)
            .to_owned(),
        machine_name: meta.machine.to_string(),
        exported_at: meta.exported_at_ms,
        segment: meta.segment.clone(),
        modified_at: meta.modified_ms,
        parts_modified_at: meta
            .modified_ms
            .map(|_| {
                meta.parts_modified_ms
                    .iter()
                    .filter(|(p, _)| parts.iter().any(|o| o.path == **p))
                    .map(|(p, t)| (p.to_string(), *t))
                    .collect()
            })
            .unwrap_or_default(),
        line_count: 0,
        sha256: String::new(),
    };
    let mut head = serde_json::to_vec(&head).map_err(BundleError::Json)?;
    head.pop(); // the closing brace: the transcript follows
    out.write_all(&head)?;
    let mut part_bodies = Vec::new();
    if !parts.is_empty() {
        out.write_all(b",\"parts\":")?;
        part_bodies = parts::write_all(parts, out)?;
    }
    out.write_all(b",\"jsonl\":\"")?;
    // Reading and escaping here; hashing and writing on a second thread
    // when the transcript is big enough to pay for one.
    let mut tally = Tally::new();
    let (streamed, written) = pipeline(
        if len >= PIPELINE_MIN { 0 } else { u64::MAX },
        |(raw, _): &(Vec<u8>, Vec<u8>)| raw.len(),
        |(raw, escaped): (Vec<u8>, Vec<u8>)| {
            tally.add(&raw);
            out.write_all(&escaped)
        },
        |emit| json::stream_escaped(transcript, len, |raw, escaped| emit((raw, escaped))),
    );
    written?;
    streamed?.map_err(|_| BundleError::NotUtf8)?;
    let body = tally.finish();
    write!(
        out,
        "\",\"lineCount\":{},\"sha256\":\"{}\"}}",
        body.lines, body.sha256
    )?;
    Ok((body, part_bodies))
}

/// Reads a bundle of any supported version, streaming its transcript into
/// `transcript` and its parts into `parts`, and checking every field and
/// checksum. On error, everything written to either must be thrown away.
pub fn read(
    input: impl Read,
    transcript: &mut (impl Write + Send),
    parts: &mut dyn PartSink,
) -> Result<(Meta, Body, Vec<PartBody>), BundleError> {
    let mut input = BufReader::with_capacity(1 << 16, input);
    sniff(input.fill_buf()?)?;
    let mut reader = json::ObjectReader::new(input, MAX_BUNDLE_BYTES);
    let mut fields = serde_json::Map::new();
    // Parsing and unescaping here; checking UTF-8, hashing and writing the
    // transcript on a second thread once it is long enough to pay for one
    // (a thread per small bundle cost more than it saved: 1,000 of them in
    // a pull).
    let mut tally = Tally::new();
    let mut utf8 = json::Utf8Check::default();
    let mut valid = true;
    let mut part_bodies = None;
    let mut part_error = None;
    let (parsed, written) = pipeline(
        PIPELINE_MIN,
        Vec::len,
        |chunk: Vec<u8>| {
            valid = valid && utf8.push(&chunk);
            if !valid {
                return Ok(());
            }
            tally.add(&chunk);
            transcript.write_all(&chunk)
        },
        |emit| {
            parse_object(
                &mut reader,
                &mut fields,
                |chunk| emit(chunk).map_err(json::Error::Io),
                |reader| {
                    if part_bodies.is_some() {
                        return Err(json::Error::Syntax(json::Syntax(
                            "duplicate field `parts`".into(),
                        )));
                    }
                    match parts::read_all(reader, parts) {
                        Ok(bodies) => {
                            part_bodies = Some(bodies);
                            Ok(())
                        }
                        Err(e) => {
                            part_error = Some(e);
                            Err(json::Error::Syntax(json::Syntax("bad parts".into())))
                        }
                    }
                },
            )
        },
    );
    // The version comes first: a bundle of a version this build does not
    // read is said to be that, whatever fails to parse after it.
    if let Some(v) = fields.get("_schemaVersion")
        && !v
            .as_u64()
            .is_some_and(|n| SUPPORTED_VERSIONS.iter().any(|s| u64::from(*s) == n))
        && (parsed.is_err() || part_error.is_some())
    {
        return Err(BundleError::UnknownVersion(v.to_string()));
    }
    if let Some(e) = part_error {
        return Err(e);
    }
    let has_jsonl = match parsed {
        Ok(has) => has,
        Err(json::Error::Io(e)) => return Err(BundleError::Io(written.err().unwrap_or(e))),
        Err(json::Error::TooLarge) => return Err(BundleError::TooLarge),
        Err(json::Error::Syntax(json::Syntax(m))) => return Err(BundleError::Syntax(m)),
    };
    written?;
    if !(valid && utf8.finish()) {
        return Err(BundleError::Syntax("invalid UTF-8 in a string".into()));
    }
    let tally = has_jsonl.then_some(tally);
    let version = fields
        .remove("_schemaVersion")
        .ok_or(BundleError::NoVersion)?;
    let missing_jsonl = |version| BundleError::Shape {
        version,
        source: serde::de::Error::missing_field("jsonl"),
    };
    match version {
        serde_json::Value::Number(n) if n.as_u64() == Some(1) => {
            let mut tally = tally.ok_or_else(|| missing_jsonl(1))?;
            // Other writers may drop the final newline; without it the
            // client's next append would be glued to the last line.
            if part_bodies.is_some() {
                return Err(field("parts", "is not part of version 1"));
            }
            if tally.last.is_some_and(|b| b != b'\n') {
                transcript.write_all(b"\n")?;
                tally.add(b"\n");
            }
            Ok((decode_v1(fields)?, tally.finish(), Vec::new()))
        }
        serde_json::Value::Number(n) if matches!(n.as_u64(), Some(2..=5)) => {
            let version = n.as_u64().unwrap_or(2) as u32;
            let tally = tally.ok_or_else(|| missing_jsonl(version))?;
            let part_bodies = match (version, part_bodies) {
                (2, Some(_)) => return Err(field("parts", "is not part of version 2")),
                (3, None) => {
                    return Err(BundleError::Shape {
                        version,
                        source: serde::de::Error::missing_field("parts"),
                    });
                }
                (_, bodies) => bodies.unwrap_or_default(),
            };
            let last = tally.last;
            let body = tally.finish();
            let meta = decode_v2(version, fields, &body, &part_bodies)?;
            if last.is_some_and(|b| b != b'\n') {
                return Err(field("jsonl", "does not end with a complete line"));
            }
            Ok((meta, body, part_bodies))
        }
        other => Err(BundleError::UnknownVersion(other.to_string())),
    }
}

/// The most `partsModifiedAt` may take: an entry per side file.
const PARTS_MODIFIED_CAP: usize = 64 << 20;

/// Transcripts smaller than this are written on the calling thread.
const PIPELINE_MIN: u64 = 1 << 20;

/// Runs `produce`, which hands items to `emit`, and `consume` on each item:
/// inline for the first `inline_up_to` bytes (by `size`), then on a second
/// thread, so a large job uses two cores and a small one pays for no
/// thread. Returns what `produce` returned, and how `consume` ended on the
/// second thread; when it failed, its error is the one to report (inline,
/// `consume`'s error goes back through `emit`).
fn pipeline<T: Send, R>(
    inline_up_to: u64,
    size: impl Fn(&T) -> usize,
    consume: impl FnMut(T) -> io::Result<()> + Send,
    produce: impl FnOnce(&mut dyn FnMut(T) -> io::Result<()>) -> R,
) -> (R, io::Result<()>) {
    std::thread::scope(|s| {
        let mut consume = Some(consume);
        let mut inline = 0u64;
        let mut tx = None;
        let mut worker = None;
        let produced = produce(&mut |item| {
            if tx.is_none() && inline >= inline_up_to {
                let (sender, rx) = std::sync::mpsc::sync_channel::<T>(4);
                let mut consume = consume.take().expect("consumed inline until now");
                worker = Some(s.spawn(move || rx.into_iter().try_for_each(&mut consume)));
                tx = Some(sender);
            }
            match &tx {
                Some(tx) => tx
                    .send(item)
                    .map_err(|_| io::Error::other("the writer stopped")),
                None => {
                    inline += size(&item) as u64;
                    consume.as_mut().expect("not handed over")(item)
                }
            }
        });
        drop(tx);
        let written = worker.map_or(Ok(()), |w| w.join().expect("the writer does not panic"));
        (produced, written)
    })
}

/// Reads the object's fields: `jsonl` is streamed to `emit`, `parts` handed
/// to `on_parts`, the others (small) collected into `fields`. Returns
/// whether `jsonl` was there.
fn parse_object<R: BufRead>(
    reader: &mut json::ObjectReader<R>,
    fields: &mut serde_json::Map<String, serde_json::Value>,
    mut emit: impl FnMut(Vec<u8>) -> Result<(), json::Error>,
    mut on_parts: impl FnMut(&mut json::ObjectReader<R>) -> Result<(), json::Error>,
) -> Result<bool, json::Error> {
    let duplicate =
        |key: &str| json::Error::Syntax(json::Syntax(format!("duplicate field `{key}`")));
    let mut has_jsonl = false;
    reader.expect(b'{')?;
    if reader.peek_token()? == Some(b'}') {
        reader.expect(b'}')?;
        return reader.end().map(|()| false);
    }
    loop {
        let key = reader.key()?;
        reader.expect(b':')?;
        if key == "jsonl" {
            if has_jsonl {
                return Err(duplicate(&key));
            }
            reader.stream_string(&mut emit)?;
            has_jsonl = true;
        } else if key == "parts" {
            on_parts(reader)?;
        } else {
            // Small fields, but for the side files' times: one entry per
            // side file (at most MAX_PARTS of them).
            let cap = if key == "partsModifiedAt" {
                PARTS_MODIFIED_CAP
            } else {
                1 << 16
            };
            let raw = reader.raw_value(cap)?;
            let value = serde_json::from_slice(&raw)
                .map_err(|e| json::Error::Syntax(json::Syntax(e.to_string())))?;
            if fields.insert(key.clone(), value).is_some() {
                return Err(duplicate(&key));
            }
        }
        match reader.peek_token()? {
            Some(b',') => reader.expect(b',')?,
            _ => {
                reader.expect(b'}')?;
                return reader.end().map(|()| has_jsonl);
            }
        }
    }
}

/// Recognises what a file is when it is not a JSON object.
fn sniff(start_bytes: &[u8]) -> Result<(), BundleError> {
    let wrapped = [
        (&b"\x1f\x8b"[..], "gzip-compressed"),
        (&b"\x28\xb5\x2f\xfd"[..], "zstd-compressed"),
        (&b"BZh"[..], "bzip2-compressed"),
        (&b"\xfd7zXZ"[..], "xz-compressed"),
        (&b"PK\x03\x04"[..], "a zip archive"),
        (&b"age-encryption.org/"[..], "age-encrypted"),
        (&b"-----BEGIN AGE"[..], "age-encrypted"),
        (&b"-----BEGIN PGP"[..], "PGP-encrypted"),
    ];
    for (magic, what) in wrapped {
        if start_bytes.starts_with(magic) {
            return Err(BundleError::Wrapped(what));
        }
    }
    let start = start_bytes
        .strip_prefix(b"\xEF\xBB\xBF".as_slice())
        .unwrap_or(start_bytes)
        .trim_ascii_start();
    match start.first() {
        None if start_bytes.len() < (1 << 16) => Err(BundleError::Empty),
        Some(b'[' | b'"' | b'-' | b'0'..=b'9' | b't' | b'f' | b'n') => Err(BundleError::NotObject),
        _ => Ok(()),
    }
}

fn whole_number(name: &'static str, n: f64) -> Result<u64, BundleError> {
    if n.is_finite() && n >= 0.0 && n.fract() == 0.0 && n < 2f64.powi(53) {
        Ok(n as u64)
    } else {
        Err(field(name, "must be a whole, non-negative number"))
    }
}

fn check_cwd(cwd: &str) -> Result<(), BundleError> {
    if cwd.is_empty() || cwd.len() > 4096 || cwd.contains('\0') {
        return Err(field(
            "originalCwd",
            "must be a path of 1 to 4096 bytes without NUL",
        ));
    }
    Ok(())
}

fn shape(version: u32) -> impl Fn(serde_json::Error) -> BundleError {
    move |source| BundleError::Shape { version, source }
}

fn decode_v1(fields: serde_json::Map<String, serde_json::Value>) -> Result<Meta, BundleError> {
    let v: V1 = serde_json::from_value(fields.into()).map_err(shape(1))?;
    check_cwd(&v.original_cwd)?;
    // The declared line count is checked for shape only: other writers
    // count lines their own way, and the count comes from the transcript.
    whole_number("lineCount", v.line_count)?;
    Ok(Meta {
        version: 1,
        session_id: SessionId::parse(&v.session_id).map_err(name_field("sessionId"))?,
        project_key: ProjectKey::normalize_foreign(&v.project_key)
            .map_err(|e| field("projectKey", e))?,
        original_cwd: v.original_cwd,
        relative_cwd: None,
        machine: MachineName::parse(&v.machine_name).map_err(name_field("machineName"))?,
        exported_at_ms: whole_number("exportedAt", v.exported_at)?,
        modified_ms: None,
        parts_modified_ms: BTreeMap::new(),
        segment: None,
    })
}

fn decode_v2(
    version: u32,
    mut fields: serde_json::Map<String, serde_json::Value>,
    body: &Body,
    parts: &[PartBody],
) -> Result<Meta, BundleError> {
    fields.insert("_schemaVersion".into(), version.into());
    let v: V2Head = serde_json::from_value(fields.into()).map_err(shape(version))?;
    check_cwd(&v.original_cwd)?;
    let not_in = |name: &'static str| field(name, format!("is not part of version {version}"));
    match (version, v.modified_at) {
        (4 | 5, None) => {
            return Err(BundleError::Shape {
                version,
                source: serde::de::Error::missing_field("modifiedAt"),
            });
        }
        (2 | 3, Some(_)) => return Err(not_in("modifiedAt")),
        (2 | 3, None) if !v.parts_modified_at.is_empty() => return Err(not_in("partsModifiedAt")),
        _ => {}
    }
    match (version, &v.segment) {
        (5, None) => {
            return Err(BundleError::Shape {
                version,
                source: serde::de::Error::missing_field("segment"),
            });
        }
        (5, Some(head)) => segment::check(head)?,
        (_, Some(_)) => return Err(not_in("segment")),
        _ => {}
    }
    let mut parts_modified_ms = BTreeMap::new();
    for (path, ms) in v.parts_modified_at {
        let Some(part) = parts.iter().find(|p| p.path.to_string() == path) else {
            return Err(field(
                "partsModifiedAt",
                format!("names {path:?}, a side file the bundle does not carry"),
            ));
        };
        parts_modified_ms.insert(part.path.clone(), ms);
    }
    if body.sha256 != v.sha256 {
        return Err(BundleError::Checksum {
            expected: v.sha256.chars().take(64).collect(),
            actual: body.sha256.clone(),
        });
    }
    if body.lines != v.line_count {
        return Err(field(
            "lineCount",
            format!(
                "says {} but the transcript has {}",
                v.line_count, body.lines
            ),
        ));
    }
    Ok(Meta {
        version,
        session_id: SessionId::parse(&v.session_id).map_err(name_field("sessionId"))?,
        project_key: ProjectKey::parse(&v.project_key).map_err(|e| field("projectKey", e))?,
        original_cwd: v.original_cwd,
        relative_cwd: Some(RelPath::parse(&v.relative_cwd).map_err(name_field("relativeCwd"))?),
        machine: MachineName::parse(&v.machine_name).map_err(name_field("machineName"))?,
        exported_at_ms: v.exported_at,
        modified_ms: v.modified_at,
        parts_modified_ms,
        segment: v.segment,
    })
}

impl Bundle {
    /// Writes version 4 when the meta has modification times, else 3, or
    /// 2 when there are no parts.
    pub fn encode(&self, mut out: impl Write + Send) -> Result<(), BundleError> {
        let len = self.transcript.len() as u64;
        let parts: Vec<OutPart> = self
            .parts
            .iter()
            .map(|(path, bytes)| OutPart {
                path: path.clone(),
                len: None,
                data: PartData::Bytes(bytes.clone()),
            })
            .collect();
        write(
            &self.meta,
            &mut self.transcript.as_slice(),
            len,
            &parts,
            &mut out,
        )
        .map(drop)
    }

    pub fn to_bytes(&self) -> Result<Vec<u8>, BundleError> {
        let mut out = Vec::with_capacity(self.transcript.len() + self.transcript.len() / 8 + 512);
        self.encode(&mut out)?;
        Ok(out)
    }

    /// Reads any supported version from memory and checks every field.
    pub fn decode(bytes: &[u8]) -> Result<Self, BundleError> {
        if bytes.len() as u64 > MAX_BUNDLE_BYTES {
            return Err(BundleError::TooLarge);
        }
        let mut transcript = Vec::new();
        let mut parts = Vec::new();
        let (meta, _, _) = read(bytes, &mut transcript, &mut parts)?;
        Ok(Bundle {
            meta,
            transcript,
            parts,
        })
    }
}

#[cfg(test)]
mod tests;
