//! A session's side files inside a version 3 bundle: the `parts` array.
//!
//! Each part is `{"path", "encoding", "data", "size", "sha256"}` in that
//! order. `data` is streamed both ways, so `path` and `encoding` must come
//! before it; `size` and `sha256` follow it, so the writer hashes as it goes.
//! Text travels as a JSON string (`"utf8"`), anything else as base64.

use std::collections::HashSet;
use std::io::{self, BufRead, Read, Seek, Write};
use std::path::PathBuf;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;

use super::json::{self, ObjectReader};
use super::{BundleError, Tally, field};
use crate::names::PartPath;

/// At most this many parts in one bundle.
pub const MAX_PARTS: usize = crate::claude::parts::MAX_PARTS;

/// A side file to pack.
#[derive(Debug, Clone)]
pub struct OutPart {
    pub path: PartPath,
    /// Its first `len` bytes (an appended file's complete lines), or, when
    /// `None`, the whole file as it is when opened: a file rewritten whole
    /// must not travel as a mix of two versions.
    pub len: Option<u64>,
    pub data: PartData,
}

#[derive(Debug, Clone)]
pub enum PartData {
    File(PathBuf),
    Bytes(Vec<u8>),
}

trait ReadSeek: Read + Seek {}
impl<T: Read + Seek> ReadSeek for T {}

impl PartData {
    /// The data and its length now.
    fn open(&self) -> io::Result<(Box<dyn ReadSeek + '_>, u64)> {
        Ok(match self {
            PartData::File(path) => {
                let file = std::fs::File::open(path).map_err(|e| name(path, e))?;
                let len = file.metadata()?.len();
                (Box::new(file), len)
            }
            PartData::Bytes(bytes) => (Box::new(io::Cursor::new(bytes)), bytes.len() as u64),
        })
    }

    fn describe(&self, e: io::Error) -> io::Error {
        match self {
            PartData::File(path) => name(path, e),
            PartData::Bytes(_) => e,
        }
    }
}

/// The error, naming the file it is about.
fn name(path: &std::path::Path, e: io::Error) -> io::Error {
    io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// What was learned of a part while it streamed past.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartBody {
    pub path: PartPath,
    pub len: u64,
    pub sha256: String,
}

/// Receives the parts of a bundle being read, one after another.
pub trait PartSink {
    fn begin(&mut self, path: &PartPath) -> io::Result<()>;
    fn write(&mut self, bytes: &[u8]) -> io::Result<()>;
    fn end(&mut self) -> io::Result<()>;
}

/// Collects parts in memory.
impl PartSink for Vec<(PartPath, Vec<u8>)> {
    fn begin(&mut self, path: &PartPath) -> io::Result<()> {
        self.push((path.clone(), Vec::new()));
        Ok(())
    }
    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.last_mut()
            .expect("begin comes first")
            .1
            .extend_from_slice(bytes);
        Ok(())
    }
    fn end(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Base64 is written and read in pieces of this many encoded bytes.
const B64_CHUNK: usize = 64 * 1024;

/// Writes the `parts` array's value.
pub(super) fn write_all(
    parts: &[OutPart],
    out: &mut impl Write,
) -> Result<Vec<PartBody>, BundleError> {
    let mut bodies = Vec::with_capacity(parts.len());
    out.write_all(b"[")?;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            out.write_all(b",")?;
        }
        bodies.push(write_one(part, out)?);
    }
    out.write_all(b"]")?;
    Ok(bodies)
}

fn write_one(part: &OutPart, out: &mut impl Write) -> Result<PartBody, BundleError> {
    let (mut input, now) = part.data.open()?;
    let len = part.len.unwrap_or(now);
    let text = is_utf8(&mut (&mut input).take(len)).map_err(|e| part.data.describe(e))?;
    input
        .seek(io::SeekFrom::Start(0))
        .map_err(|e| part.data.describe(e))?;
    out.write_all(b"{\"path\":")?;
    serde_json::to_writer(&mut *out, &part.path.to_string()).map_err(BundleError::Json)?;
    write!(
        out,
        ",\"encoding\":\"{}\",\"data\":\"",
        if text { "utf8" } else { "base64" }
    )?;
    let mut tally = Tally::new();
    if text {
        json::stream_escaped(&mut input, len, |raw, escaped| {
            tally.add(&raw);
            out.write_all(&escaped)
        })?
        .map_err(|_| field("parts", format!("{} changed while being read", part.path)))?;
    } else {
        let mut buf = vec![0u8; B64_CHUNK / 4 * 3];
        let mut input = input.take(len);
        loop {
            let n = crate::fsutil::read_full(&mut input, &mut buf)
                .map_err(|e| part.data.describe(e))?;
            if n == 0 {
                break;
            }
            tally.add(&buf[..n]);
            out.write_all(BASE64.encode(&buf[..n]).as_bytes())?;
        }
    }
    if tally.len != len {
        return Err(BundleError::Io(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("{} shrank while being read", part.path),
        )));
    }
    let body = tally.finish();
    write!(
        out,
        "\",\"size\":{},\"sha256\":\"{}\"}}",
        body.len, body.sha256
    )?;
    Ok(PartBody {
        path: part.path.clone(),
        len: body.len,
        sha256: body.sha256,
    })
}

fn is_utf8(input: &mut impl Read) -> io::Result<bool> {
    let mut check = json::Utf8Check::default();
    let mut buf = vec![0u8; 1 << 16];
    loop {
        let n = input.read(&mut buf)?;
        if n == 0 {
            return Ok(check.finish());
        }
        if !check.push(&buf[..n]) {
            return Ok(false);
        }
    }
}

/// Reads the `parts` array, streaming each part's bytes to `sink` and
/// checking each against its size and SHA-256.
pub(super) fn read_all<R: BufRead>(
    reader: &mut ObjectReader<R>,
    sink: &mut dyn PartSink,
) -> Result<Vec<PartBody>, BundleError> {
    let mut bodies = Vec::new();
    let mut seen = HashSet::new();
    reader.expect(b'[').map_err(json_error)?;
    if reader.peek_token().map_err(json_error)? == Some(b']') {
        reader.expect(b']').map_err(json_error)?;
        return Ok(bodies);
    }
    loop {
        if bodies.len() == MAX_PARTS {
            return Err(field("parts", format!("has more than {MAX_PARTS} entries")));
        }
        let body = read_one(reader, sink)?;
        if !seen.insert(body.path.clone()) {
            return Err(field("parts", format!("lists {} twice", body.path)));
        }
        bodies.push(body);
        match reader.peek_token().map_err(json_error)? {
            Some(b',') => reader.expect(b',').map_err(json_error)?,
            _ => {
                reader.expect(b']').map_err(json_error)?;
                return Ok(bodies);
            }
        }
    }
}

/// The `json::Error` as a `BundleError`.
pub(super) fn json_error(e: json::Error) -> BundleError {
    match e {
        json::Error::Io(e) => BundleError::Io(e),
        json::Error::TooLarge => BundleError::TooLarge,
        json::Error::Syntax(json::Syntax(m)) => BundleError::Syntax(m),
    }
}

fn small<T: serde::de::DeserializeOwned>(
    reader: &mut ObjectReader<impl BufRead>,
    name: &str,
) -> Result<T, BundleError> {
    let raw = reader.raw_value(8192).map_err(json_error)?;
    serde_json::from_slice(&raw).map_err(|e| field("parts", format!("`{name}`: {e}")))
}

fn read_one<R: BufRead>(
    reader: &mut ObjectReader<R>,
    sink: &mut dyn PartSink,
) -> Result<PartBody, BundleError> {
    let mut path: Option<PartPath> = None;
    let mut base64: Option<bool> = None;
    let mut data: Option<super::Body> = None;
    let mut size: Option<u64> = None;
    let mut sha256: Option<String> = None;
    reader.expect(b'{').map_err(json_error)?;
    loop {
        let key = reader.key().map_err(json_error)?;
        reader.expect(b':').map_err(json_error)?;
        let fresh = match key.as_str() {
            "path" => {
                let p: String = small(reader, "path")?;
                let p = PartPath::parse(&p).map_err(|e| field("parts", e))?;
                path.replace(p).is_none()
            }
            "encoding" => {
                let e: String = small(reader, "encoding")?;
                let b = match e.as_str() {
                    "utf8" => false,
                    "base64" => true,
                    _ => return Err(field("parts", format!("unknown encoding {e:?}"))),
                };
                base64.replace(b).is_none()
            }
            "data" => {
                let (Some(p), Some(b64)) = (&path, base64) else {
                    return Err(field(
                        "parts",
                        "`path` and `encoding` must come before `data`",
                    ));
                };
                if data.is_some() {
                    return Err(field("parts", "a part has `data` twice"));
                }
                data = Some(stream_data(reader, sink, p, b64)?);
                true
            }
            "size" => size.replace(small(reader, "size")?).is_none(),
            "sha256" => sha256.replace(small(reader, "sha256")?).is_none(),
            other => return Err(field("parts", format!("unknown field `{other}` in a part"))),
        };
        if !fresh {
            return Err(field("parts", format!("a part has `{key}` twice")));
        }
        match reader.peek_token().map_err(json_error)? {
            Some(b',') => reader.expect(b',').map_err(json_error)?,
            _ => {
                reader.expect(b'}').map_err(json_error)?;
                break;
            }
        }
    }
    let (Some(path), Some(body), Some(size), Some(sha256)) = (path, data, size, sha256) else {
        return Err(field(
            "parts",
            "a part needs `path`, `encoding`, `data`, `size` and `sha256`",
        ));
    };
    if body.sha256 != sha256 {
        return Err(BundleError::Checksum {
            expected: format!("{path}: {}", sha256.chars().take(64).collect::<String>()),
            actual: body.sha256,
        });
    }
    if body.len != size {
        return Err(field(
            "parts",
            format!("{path} says {size} bytes but has {}", body.len),
        ));
    }
    Ok(PartBody {
        path,
        len: body.len,
        sha256,
    })
}

fn stream_data<R: BufRead>(
    reader: &mut ObjectReader<R>,
    sink: &mut dyn PartSink,
    path: &PartPath,
    base64: bool,
) -> Result<super::Body, BundleError> {
    sink.begin(path)?;
    let mut tally = Tally::new();
    let mut utf8 = json::Utf8Check::default();
    let mut carry: Vec<u8> = Vec::new();
    let mut bad: Option<BundleError> = None;
    let mut put = |bytes: &[u8], tally: &mut Tally| -> Result<(), json::Error> {
        tally.add(bytes);
        sink.write(bytes).map_err(json::Error::Io)
    };
    let streamed = reader.stream_string(|chunk| {
        if !base64 {
            if !utf8.push(&chunk) {
                bad = Some(field("parts", format!("{path} is not UTF-8 text")));
                return Err(json::Error::Syntax(json::Syntax("bad part".into())));
            }
            return put(&chunk, &mut tally);
        }
        carry.extend_from_slice(&chunk);
        let whole = carry.len() / 4 * 4;
        if whole >= B64_CHUNK {
            let decoded = decode_b64(&carry[..whole], path).map_err(|e| {
                bad = Some(e);
                json::Error::Syntax(json::Syntax("bad part".into()))
            })?;
            carry.drain(..whole);
            put(&decoded, &mut tally)?;
        }
        Ok(())
    });
    if let Some(e) = bad {
        return Err(e);
    }
    streamed.map_err(json_error)?;
    if base64 {
        let decoded = decode_b64(&carry, path)?;
        tally.add(&decoded);
        sink.write(&decoded)?;
    } else if !utf8.finish() {
        return Err(field("parts", format!("{path} is not UTF-8 text")));
    }
    sink.end()?;
    Ok(tally.finish())
}

fn decode_b64(text: &[u8], path: &PartPath) -> Result<Vec<u8>, BundleError> {
    BASE64
        .decode(text)
        .map_err(|e| field("parts", format!("{path} is not valid base64: {e}")))
}
