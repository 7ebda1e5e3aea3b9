//! Streaming a large JSON string in and out without holding it: the
//! transcript travels as one JSON string that may be hundreds of MB.
//! Escaping is exactly serde_json's, so streamed and serde-written bundles
//! are the same bytes.

use std::io::{self, BufRead, Read, Write};

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

/// Writes the escaped body of a JSON string (no quotes) for `bytes`.
pub fn write_escaped(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let mut buf = Vec::with_capacity(bytes.len() + bytes.len() / 8 + 16);
    escape_into(&mut buf, bytes);
    out.write_all(&buf)
}

fn escape_into(buf: &mut Vec<u8>, bytes: &[u8]) {
    let mut start = 0;
    while let Some(off) = bytes[start..]
        .iter()
        .position(|&b| b < 0x20 || b == b'"' || b == b'\\')
    {
        let i = start + off;
        buf.extend_from_slice(&bytes[start..i]);
        buf.extend_from_slice(escape(bytes[i]).expect("needs escaping"));
        start = i + 1;
    }
    buf.extend_from_slice(&bytes[start..]);
}

/// Reads exactly `len` bytes of UTF-8 text from `input` and writes them as
/// an escaped JSON string body, handing each raw chunk to `seen`.
pub fn stream_escaped(
    input: &mut impl Read,
    len: u64,
    out: &mut impl Write,
    mut seen: impl FnMut(&[u8]),
) -> io::Result<Result<(), NotUtf8>> {
    let mut buf = vec![0u8; CHUNK + 4];
    let mut escaped = Vec::with_capacity(CHUNK + CHUNK / 4);
    let mut carry = 0; // bytes of a character split across chunks
    let mut left = len;
    while left > 0 || carry > 0 {
        let want = (CHUNK as u64).min(left) as usize;
        let n = if want > 0 {
            input.read(&mut buf[carry..carry + want])?
        } else {
            0
        };
        if n == 0 && left > 0 {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "the transcript shrank while being read",
            ));
        }
        left -= n as u64;
        let filled = carry + n;
        let valid = match std::str::from_utf8(&buf[..filled]) {
            Ok(_) => filled,
            Err(e) if e.error_len().is_none() && left > 0 => e.valid_up_to(),
            Err(_) => return Ok(Err(NotUtf8)),
        };
        seen(&buf[..valid]);
        escaped.clear();
        escape_into(&mut escaped, &buf[..valid]);
        out.write_all(&escaped)?;
        buf.copy_within(valid..filled, 0);
        carry = filled - valid;
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

    /// A string value, unescaped, written to `out` as it is read; each
    /// written piece goes to `seen` too. The opening quote must be next.
    /// Works on whole buffers: a transcript has an escape every few bytes.
    pub fn stream_string(
        &mut self,
        out: &mut impl Write,
        mut seen: impl FnMut(&[u8]),
    ) -> Result<(), Error> {
        self.expect(b'"')?;
        let mut pending = Vec::with_capacity(CHUNK * 2);
        let mut utf8 = Utf8Check::default();
        let mut flush =
            |pending: &mut Vec<u8>, utf8: &mut Utf8Check, last: bool| -> Result<(), Error> {
                if !utf8.push(pending) || (last && !utf8.finish()) {
                    return syntax("invalid UTF-8 in a string");
                }
                out.write_all(pending)?;
                seen(pending);
                pending.clear();
                Ok(())
            };
        loop {
            let buf = self.input.fill_buf()?;
            if buf.is_empty() {
                return syntax("EOF while parsing a string");
            }
            let mut i = 0;
            let mut closed = false;
            while i < buf.len() {
                let stop = memchr::memchr2(b'"', b'\\', &buf[i..]).map_or(buf.len(), |o| i + o);
                let run = &buf[i..stop];
                if run.iter().any(|&b| b < 0x20) {
                    return syntax("control character found while parsing a string");
                }
                pending.extend_from_slice(run);
                i = stop;
                if i == buf.len() {
                    break;
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
                return flush(&mut pending, &mut utf8, true);
            }
            if at_split {
                self.next()?; // the backslash
                let mut ch = [0u8; 4];
                let bytes = self.escape_sequence(&mut ch)?;
                pending.extend_from_slice(bytes);
            }
            if pending.len() >= CHUNK {
                flush(&mut pending, &mut utf8, false)?;
            }
        }
    }

    fn hex4(&mut self) -> Result<u16, Error> {
        let mut v = 0u16;
        for _ in 0..4 {
            let d = self.next()?;
            let d = (d as char)
                .to_digit(16)
                .ok_or(())
                .or_else(|_| syntax("invalid escape"))?;
            v = v * 16 + d as u16;
        }
        Ok(v)
    }

    fn escape_sequence<'a>(&mut self, ch: &'a mut [u8; 4]) -> Result<&'a [u8], Error> {
        let c = match self.next()? {
            b'"' => '"',
            b'\\' => '\\',
            b'/' => '/',
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let hi = self.hex4()?;
                let code = if (0xD800..0xDC00).contains(&hi) {
                    if self.next()? != b'\\' || self.next()? != b'u' {
                        return syntax("lone leading surrogate in hex escape");
                    }
                    let lo = self.hex4()?;
                    if !(0xDC00..0xE000).contains(&lo) {
                        return syntax("invalid surrogate pair in hex escape");
                    }
                    0x10000 + ((u32::from(hi) - 0xD800) << 10) + (u32::from(lo) - 0xDC00)
                } else if (0xDC00..0xE000).contains(&hi) {
                    return syntax("lone trailing surrogate in hex escape");
                } else {
                    u32::from(hi)
                };
                char::from_u32(code)
                    .ok_or(())
                    .or_else(|_| syntax("invalid escape"))?
            }
            _ => return syntax("invalid escape"),
        };
        Ok(c.encode_utf8(ch).as_bytes())
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
        self.stream_string(&mut out, |_| {})?;
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
struct Utf8Check {
    pending: Vec<u8>,
}

impl Utf8Check {
    fn push(&mut self, mut piece: &[u8]) -> bool {
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

    fn finish(&self) -> bool {
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
        write_escaped(&mut out, all.as_bytes()).unwrap();
        let serde = serde_json::to_string(&all).unwrap();
        assert_eq!(format!("\"{}\"", String::from_utf8(out).unwrap()), serde);
    }

    #[test]
    fn streamed_escaping_splits_characters_safely() {
        let text = "ä😀".repeat(40_000);
        let mut out = Vec::new();
        let mut seen = 0;
        stream_escaped(&mut text.as_bytes(), text.len() as u64, &mut out, |c| {
            seen += c.len()
        })
        .unwrap()
        .unwrap();
        assert_eq!(seen, text.len());
        assert_eq!(out, text.as_bytes());
        let bad = [b'a', 0xff, b'\n'];
        assert_eq!(
            stream_escaped(&mut bad.as_slice(), 3, &mut Vec::new(), |_| {}).unwrap(),
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
        match r.stream_string(&mut out, |_| {}) {
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
