//! Streaming a large JSON string in and out without holding it: the
//! transcript travels as one JSON string that may be hundreds of MB.
//! Escaping is exactly serde_json's, so streamed and serde-written bundles
//! are the same bytes.

use std::io::{self, BufRead, Read};

const CHUNK: usize = 1 << 16;

/// Which bytes need escaping inside a JSON string, as serde_json does it.
fn escape(b: u8) -> Option<&'static [u8]> {
    Some(match b {
        b'"' => b"\\\"",
        b'\\' => b"\\\\",
        b'\n' => b"\\n",
        b'\r' => b"\\r",
        b'\t' => b"\\t",
        0x08 => b"\\b",
        0x0c => b"\\f",
        0x00..=0x1f => return Some(&CONTROL[b as usize]),
        _ => return None,
    })
}

/// `\u00XX` for every control byte, lowercase hex like serde_json.
static CONTROL: [[u8; 6]; 32] = {
    let mut table = [[0u8; 6]; 32];
    let hex = b"0123456789abcdef";
    let mut i = 0;
    while i < 32 {
        table[i] = [b'\\', b'u', b'0', b'0', hex[i >> 4], hex[i & 15]];
        i += 1;
    }
    table
};

fn escape_into(buf: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    while let Some(off) = find_special(&bytes[start..]) {
        let i = start + off;
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(escape(bytes[i]).expect("needs escaping"));
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// Whether a byte is special inside a JSON string: `"`, `\\` or control.
fn special(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// The first special byte, looked for eight bytes at a time: in a transcript
/// runs between escapes are short, too short for SIMD search to pay off.
fn find_special(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let v = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        // The lowest flagged byte of each test is exact; higher ones may not
        // be, so only the lowest is trusted and then checked.
        let hits = (v.wrapping_sub(ONES * 0x20) & !v & HIGHS)
            | zero_in(v ^ (ONES * u64::from(b'"')))
            | zero_in(v ^ (ONES * u64::from(b'\\')));
        if hits != 0 {
            let first = at + (hits.trailing_zeros() / 8) as usize;
            if let Some(i) = bytes[at..=first].iter().position(|&b| special(b)) {
                return Some(at + i);
            }
        }
        at += 8;
    }
    chunks
        .remainder()
        .iter()
        .position(|&b| special(b))
        .map(|i| at + i)
}

/// Reads exactly `len` bytes of UTF-8 text from `input` and hands each
/// chunk to `emit`, raw and escaped as a JSON string body. Chunks end on
/// character boundaries.
pub fn stream_escaped(
    input: &mut impl Read,
    len: u64,
    mut emit: impl FnMut(Vec<u8>, Vec<u8>) -> io::Result<()>,
) -> io::Result<Result<(), NotUtf8>> {
    let mut carry: Vec<u8> = Vec::new(); // a character split across chunks
    let mut left = len;
    while left > 0 || !carry.is_empty() {
        let want = (CHUNK as u64).min(left) as usize;
        let mut raw = Vec::with_capacity(carry.len() + want);
        raw.append(&mut carry);
        let before = raw.len();
        raw.resize(before + want, 0);
        let n = if want > 0 {
            input.read(&mut raw[before..])?
        } else {
            0
        };
        raw.truncate(before + n);
        if n == 0 && left > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the transcript shrank while being read",
            ));
        }
        left -= n as u64;
        let valid = match std::str::from_utf8(&raw) {
            Ok(_) => raw.len(),
            Err(e) if e.error_len().is_none() && left > 0 => e.valid_up_to(),
            Err(_) => return Ok(Err(NotUtf8)),
        };
        carry = raw.split_off(valid);
        let mut escaped = Vec::with_capacity(raw.len() + raw.len() / 4);
        escape_into(&mut escaped, &raw);
        emit(raw, escaped)?;
        if n == 0 {
            break;
        }
    }
    Ok(Ok(()))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotUtf8;

/// A syntax problem in the bundle's JSON.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Syntax(pub String);

pub enum Error {
    Io(io::Error),
    Syntax(Syntax),
    TooLarge,
}

impl From<io::Error> for Error {
    fn from(e: io::Error) -> Self {
        Error::Io(e)
    }
}

fn syntax<T>(msg: impl Into<String>) -> Result<T, Error> {
    Err(Error::Syntax(Syntax(msg.into())))
}

/// Reads one JSON object from a byte stream, value by value, counting what
/// it reads against a cap.
pub struct ObjectReader<R> {
    input: R,
    read: u64,
    cap: u64,
}

impl<R: BufRead> ObjectReader<R> {
    pub fn new(input: R, cap: u64) -> Self {
        Self {
            input,
            read: 0,
            cap,
        }
    }

    /// How many bytes are buffered now.
    pub fn buffered(&mut self) -> usize {
        self.input.fill_buf().map_or(0, |b| b.len())
    }

    fn peek(&mut self) -> Result<Option<u8>, Error> {
        Ok(self.input.fill_buf()?.first().copied())
    }

    fn bump(&mut self, n: usize) -> Result<(), Error> {
        self.input.consume(n);
        self.read += n as u64;
        if self.read > self.cap {
            Err(Error::TooLarge)
        } else {
            Ok(())
        }
    }

    fn next(&mut self) -> Result<u8, Error> {
        match self.peek()? {
            Some(b) => {
                self.bump(1)?;
                Ok(b)
            }
            None => syntax("EOF while parsing"),
        }
    }

    /// The next byte that is not white space, not consumed.
    pub fn peek_token(&mut self) -> Result<Option<u8>, Error> {
        loop {
            match self.peek()? {
                Some(b' ' | b'\n' | b'\r' | b'\t') => self.bump(1)?,
                other => return Ok(other),
            }
        }
    }

    pub fn expect(&mut self, want: u8) -> Result<(), Error> {
        match self.peek_token()? {
            Some(b) if b == want => self.bump(1),
            Some(b) => syntax(format!(
                "expected {:?}, found {:?}",
                want as char, b as char
            )),
            None => syntax("EOF while parsing"),
        }
    }

    /// After the object: only white space may follow.
    pub fn end(&mut self) -> Result<(), Error> {
        match self.peek_token()? {
            None => Ok(()),
            Some(_) => syntax("trailing characters after the object"),
        }
    }

    /// A string value, unescaped and handed to `emit` in chunks as it is
    /// read. The opening quote must be next. Chunks may split characters:
    /// checking UTF-8 is the receiver's job ([`Utf8Check`]). Works on whole
    /// buffers: a transcript has an escape every few bytes.
    pub fn stream_string(
        &mut self,
        mut emit: impl FnMut(Vec<u8>) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.expect(b'"')?;
        let mut pending = Vec::with_capacity(CHUNK * 2);
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return syntax("EOF while parsing a string");
            }
            let mut i = 0;
            let mut closed = false;
            while i < buf.len() {
                let stop = find_special(&buf[i..]).map_or(buf.len(), |o| i + o);
                pending.extend_from_slice(&buf[i..stop]);
                i = stop;
                if i == buf.len() {
                    break;
                }
                if buf[i] < 0x20 {
                    return syntax("control character found while parsing a string");
                }
                if buf[i] == b'"' {
                    i += 1;
                    closed = true;
                    break;
                }
                // An escape: decoded here when it lies wholly in the buffer.
                match inline_escape(&buf[i..]) {
                    Some(Ok((used, ch))) => {
                        let mut tmp = [0u8; 4];
                        pending.extend_from_slice(ch.encode_utf8(&mut tmp).as_bytes());
                        i += used;
                    }
                    Some(Err(msg)) => return syntax(msg),
                    None => break, // split across buffers: the slow path below
                }
            }
            let at_split = !closed && i < buf.len();
            self.bump(i)?;
            if closed {
                return if pending.is_empty() {
                    Ok(())
                } else {
                    emit(pending)
                };
            }
            if at_split {
                let mut tmp = [0u8; 4];
                pending.extend_from_slice(self.split_escape()?.encode_utf8(&mut tmp).as_bytes());
            }
            if pending.len() >= CHUNK {
                emit(std::mem::replace(
                    &mut pending,
                    Vec::with_capacity(CHUNK * 2),
                ))?;
            }
        }
    }

    /// An escape split across buffer refills (its backslash is next):
    /// gathers its bytes, then decodes it like any other.
    fn split_escape(&mut self) -> Result<char, Error> {
        let mut bytes = vec![self.next()?, self.next()?];
        loop {
            match inline_escape(&bytes) {
                Some(Ok((_, ch))) => return Ok(ch),
                Some(Err(msg)) => return syntax(msg),
                None => bytes.push(self.next()?),
            }
        }
    }

    /// The raw text of the next value, at most `limit` bytes, for serde.
    pub fn raw_value(&mut self, limit: usize) -> Result<Vec<u8>, Error> {
        self.peek_token()?;
        let mut raw = Vec::new();
        let mut depth = 0usize;
        let mut in_string = false;
        loop {
            let b = match self.peek()? {
                Some(b) => b,
                None if depth == 0 && !in_string && !raw.is_empty() => return Ok(raw),
                None => return syntax("EOF while parsing a value"),
            };
            if in_string {
                raw.push(b);
                self.bump(1)?;
                match b {
                    b'\\' => {
                        let e = self.next()?;
                        raw.push(e);
                    }
                    b'"' => {
                        in_string = false;
                        if depth == 0 {
                            return Ok(raw);
                        }
                    }
                    _ => {}
                }
            } else {
                match b {
                    b'"' => in_string = true,
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' if depth == 0 => return Ok(raw),
                    b'}' | b']' => depth -= 1,
                    b',' if depth == 0 => return Ok(raw),
                    _ => {}
                }
                raw.push(b);
                self.bump(1)?;
                if depth == 0 && matches!(b, b'}' | b']') {
                    return Ok(raw);
                }
            }
            if raw.len() > limit {
                return syntax("a field is too long");
            }
        }
    }

    /// A key: a short string.
    pub fn key(&mut self) -> Result<String, Error> {
        let mut out = Vec::new();
        self.stream_string(|chunk| {
            out.extend_from_slice(&chunk);
            Ok(())
        })?;
        if out.len() > 256 {
            return syntax("a key is too long");
        }
        String::from_utf8(out).or_else(|_| syntax("invalid UTF-8 in a key"))
    }
}

/// Decodes the escape at the start of `bytes` (which starts with `\\`):
/// `None` when it runs past the end of `bytes`.
fn inline_escape(bytes: &[u8]) -> Option<Result<(usize, char), &'static str>> {
    let kind = *bytes.get(1)?;
    let simple = match kind {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hex = |at: usize| -> Option<Result<u16, &'static str>> {
                let digits = bytes.get(at..at + 4)?;
                let text = std::str::from_utf8(digits).ok();
                Some(
                    text.and_then(|t| u16::from_str_radix(t, 16).ok())
                        .ok_or("invalid escape"),
                )
            };
            let hi = match hex(2)? {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
            if (0xDC00..0xE000).contains(&hi) {
                return Some(Err("lone trailing surrogate in hex escape"));
            }
            if !(0xD800..0xDC00).contains(&hi) {
                return Some(
                    char::from_u32(u32::from(hi))
                        .map(|c| (6, c))
                        .ok_or("invalid escape"),
                );
            }
            if bytes.get(6..8)? != b"\\u" {
                return Some(Err("lone leading surrogate in hex escape"));
            }
            let lo = match hex(8)? {
                Ok(v) => v,
                Err(e) => return Some(Err(e)),
            };
            if !(0xDC00..0xE000).contains(&lo) {
                return Some(Err("invalid surrogate pair in hex escape"));
            }
            let code = 0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00);
            return Some(
                char::from_u32(code)
                    .map(|c| (12, c))
                    .ok_or("invalid escape"),
            );
        }
        _ => return Some(Err("invalid escape")),
    };
    Some(Ok((2, simple)))
}

/// Incremental UTF-8 validation over pieces that may split characters.
#[derive(Default)]
pub struct Utf8Check {
    pending: Vec<u8>,
}

impl Utf8Check {
    pub fn push(&mut self, mut piece: &[u8]) -> bool {
        // Finish a character split at the end of the last piece.
        while !self.pending.is_empty() {
            let Some((&b, rest)) = piece.split_first() else {
                return true;
            };
            self.pending.push(b);
            piece = rest;
            match std::str::from_utf8(&self.pending) {
                Ok(_) => self.pending.clear(),
                Err(e) if e.error_len().is_none() && self.pending.len() < 4 => {}
                Err(_) => return false,
            }
        }
        match std::str::from_utf8(piece) {
            Ok(_) => true,
            Err(e) if e.error_len().is_none() => {
                self.pending = piece[e.valid_up_to()..].to_vec();
                true
            }
            Err(_) => false,
        }
    }

    pub fn finish(&self) -> bool {
        self.pending.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escaping_matches_serde_json() {
        let all: String = (0u32..0x300)
            .filter_map(char::from_u32)
            .chain("日本😀\"\\/".chars())
            .collect();
        let mut out = Vec::new();
        escape_into(&mut out, all.as_bytes());
        let serde = serde_json::to_string(&all).unwrap();
        assert_eq!(format!("\"{}\"", String::from_utf8(out).unwrap()), serde);
    }

    #[test]
    fn finding_special_bytes_agrees_with_a_plain_scan() {
        let mut bytes: Vec<u8> = (0u8..=255).collect();
        bytes.extend_from_slice("plain text ü 日本 \"q\" \\ end".as_bytes());
        for start in 0..bytes.len() {
            for len in 0..40.min(bytes.len() - start) {
                let s = &bytes[start..start + len];
                assert_eq!(find_special(s), s.iter().position(|&b| special(b)), "{s:?}");
            }
        }
        let long = [b"x".repeat(1000), b"\x1f".to_vec()].concat();
        assert_eq!(find_special(&long), Some(1000));
        let tricky = [0x21u8, 0x80, 0xa2, 0xdc, 0x5d, 0x23, 0x1f, 0x20];
        assert_eq!(find_special(&tricky), Some(6));
    }

    #[test]
    fn streamed_escaping_splits_characters_safely() {
        let text = "ä😀".repeat(40_000);
        let (mut raw, mut out) = (Vec::new(), Vec::new());
        stream_escaped(&mut text.as_bytes(), text.len() as u64, |r, e| {
            assert!(
                std::str::from_utf8(&r).is_ok(),
                "chunks end on character boundaries"
            );
            raw.extend(r);
            out.extend(e);
            Ok(())
        })
        .unwrap()
        .unwrap();
        assert_eq!(raw, text.as_bytes());
        assert_eq!(out, text.as_bytes());
        let bad = [b'a', 0xff, b'\n'];
        assert_eq!(
            stream_escaped(&mut bad.as_slice(), 3, |_, _| Ok(())).unwrap(),
            Err(NotUtf8)
        );
    }

    fn unescape(json: &str) -> Result<Vec<u8>, String> {
        let whole = unescape_with(json, json.len().max(1));
        // Every escape and character split across buffer refills too.
        for cap in [1, 2, 3, 5, 7] {
            assert_eq!(unescape_with(json, cap), whole, "buffer of {cap}: {json}");
        }
        whole
    }

    fn unescape_with(json: &str, cap: usize) -> Result<Vec<u8>, String> {
        let input = std::io::BufReader::with_capacity(cap, json.as_bytes());
        let mut r = ObjectReader::new(input, 1 << 20);
        let mut out = Vec::new();
        let mut utf8 = Utf8Check::default();
        let bad = || Error::Syntax(Syntax("invalid UTF-8".into()));
        let streamed = r.stream_string(|chunk| {
            if !utf8.push(&chunk) {
                return Err(bad());
            }
            out.extend(chunk);
            Ok(())
        });
        match streamed.and_then(|()| if utf8.finish() { Ok(()) } else { Err(bad()) }) {
            Ok(()) => Ok(out),
            Err(Error::Syntax(Syntax(m))) => Err(m),
            Err(_) => Err("other".into()),
        }
    }

    #[test]
    fn unescaping_matches_serde_json() {
        for s in [
            r#""plain""#,
            r#""a\"b\\c\/d\b\f\n\r\t""#,
            r#""\u00e4\ud83d\ude00\u0000""#,
            "\"日本ä😀x\\\"y\"",
            &format!("\"{}\"", "x\\\"ü".repeat(50_000)),
        ] {
            let want: String = serde_json::from_str(s).unwrap();
            assert_eq!(unescape(s).unwrap(), want.as_bytes(), "{s}");
        }
        for bad in [
            r#""\ud83d""#,
            r#""\ude00""#,
            r#""\x""#,
            "\"a\u{1}\"",
            r#""open"#,
            r#""\u12""#,
        ] {
            assert!(unescape(bad).is_err(), "{bad}");
            assert!(serde_json::from_str::<String>(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn raw_values() {
        let mut r = ObjectReader::new(
            br#" 12 , "a,}" , {"x":[1,{"y":"]"}]} ] "#.as_slice(),
            1 << 20,
        );
        assert_eq!(r.raw_value(100).ok().unwrap(), b"12 ");
        r.expect(b',').ok().unwrap();
        assert_eq!(r.raw_value(100).ok().unwrap(), br#""a,}""#);
        r.expect(b',').ok().unwrap();
        assert_eq!(r.raw_value(100).ok().unwrap(), br#"{"x":[1,{"y":"]"}]}"#);
    }
}
