//! Finds well-known credentials in what ccsync is about to send, so a push
//! or an export can say "line 812 holds a GitHub token" before the key
//! leaves the machine. It reports where and what kind, never the secret, and
//! never changes a byte.
//!
//! The rules (`RULES` below) are the publicly documented shapes of provider
//! tokens: a fixed prefix such as `sk-ant-api03-`, `ghp_` or `AKIA`, then a
//! fixed alphabet and length. Precision comes before recall: an ordinary
//! transcript must produce no findings, or people learn to ignore the
//! warning. So there is no entropy guessing and no `password=` heuristic; a
//! token must stand alone (not glued to other word bytes; JSON escapes such
//! as `\n` count as separators), must not sit in a long base64 run
//! (transcripts embed images and signatures), and obvious placeholders
//! (`EXAMPLE`, `xxxxxxxx`) are skipped.
//!
//! Speed: the scan's budget is a tenth of a push, which encodes a transcript
//! at about 1 GB/s (`benches/secrets.rs` measures one against the other), so
//! one Aho-Corasick search (SIMD Teddy) looks for the rules' literal anchors
//! only, and an anchored regex checks the few bytes around each hit, which
//! in ordinary text is almost never. Every anchor is
//! at least 4 bytes long: Teddy's false candidates grow steeply with
//! shorter ones, which is why SendGrid (`SG.`) and Hugging Face (`hf_`)
//! tokens are left out (they halve the speed), and why related prefixes
//! share one anchor where they can (`k_live_` for Stripe's `sk_`/`rk_`).
//! Input is scanned in pieces with an overlap kept between them, so memory
//! stays small whatever the size and a token across a boundary is found
//! exactly once; a caller that reads the bytes anyway can feed its own
//! pieces ([`Scanner::scan`]) instead of reading them twice.

use std::io::{self, Read};
use std::sync::LazyLock;

use aho_corasick::{AhoCorasick, Input, MatchKind};
use memchr::memmem;
use regex::bytes::Regex;

use crate::fsutil::read_full;

/// At most this many findings are kept per scan; the rest are only counted,
/// so a file holding a million keys does not grow memory.
pub const MAX_FINDINGS: usize = 100;

/// One credential found: where it starts and what kind it is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Finding {
    /// 1-based line of the token's first byte.
    pub line: u64,
    /// Offset of the token's first byte from the start of the input, for
    /// side files that are not text.
    pub offset: u64,
    /// What the token is, e.g. "GitHub token": safe to print.
    pub kind: &'static str,
}

/// What a scan found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Report {
    /// The first [`MAX_FINDINGS`] findings, in input order.
    pub findings: Vec<Finding>,
    /// How many were found in all, kept or not.
    pub total: u64,
}

impl Report {
    pub fn is_clean(&self) -> bool {
        self.total == 0
    }
}

mod rules;
#[cfg(test)]
mod tests;

use rules::{RULES, Start};

/// The longest match a rule may make; longer ones are cut here.
const WINDOW: usize = 768;
/// A token next to a run of base64 at least this long is part of the run
/// (an embedded image, a signature), not a credential.
const BASE64_RUN: usize = 24;
/// Bytes a check may read after an anchor's start: a whole window, the byte
/// after it, and a base64 run.
const LOOKAHEAD: usize = WINDOW + 1 + BASE64_RUN;
/// Bytes a check may read before an anchor: the farthest start before it,
/// then a `\uXXXX` escape or a base64 run (checked by a test).
const LOOKBEHIND: usize = 256;
/// The bytes a scan keeps between pieces: a check reads this far around
/// its anchor.
const TAIL: usize = LOOKBEHIND + LOOKAHEAD;
/// How much `scan_reader` reads at a time.
const CHUNK: usize = 256 << 10;

/// The compiled rules; build once (see [`Scanner::global`]) and share.
#[derive(Debug)]
pub struct Scanner {
    anchors: AhoCorasick,
    /// For each anchor, by pattern ID, the rules whose tokens it may start.
    rules_by_anchor: Vec<Vec<usize>>,
    /// Each rule's pattern, anchored at the token's first byte.
    patterns: Vec<Regex>,
}

static GLOBAL: LazyLock<Scanner> = LazyLock::new(Scanner::new);

impl Default for Scanner {
    fn default() -> Self {
        Self::new()
    }
}

impl Scanner {
    /// Compiles the rules: a few milliseconds, so callers share
    /// [`Scanner::global`] rather than build one per file.
    pub fn new() -> Self {
        let mut anchors: Vec<&str> = Vec::new();
        let mut rules_by_anchor: Vec<Vec<usize>> = Vec::new();
        for (r, rule) in RULES.iter().enumerate() {
            for &anchor in rule.anchors {
                let id = anchors
                    .iter()
                    .position(|&a| a == anchor)
                    .unwrap_or_else(|| {
                        anchors.push(anchor);
                        rules_by_anchor.push(Vec::new());
                        anchors.len() - 1
                    });
                rules_by_anchor[id].push(r);
            }
        }
        let anchors = AhoCorasick::builder()
            .match_kind(MatchKind::LeftmostFirst)
            .build(&anchors)
            .expect("the anchors are a few short literals");
        let patterns = RULES
            .iter()
            .map(|rule| {
                Regex::new(&format!("^(?:{})", rule.pattern)).expect("rule patterns compile")
            })
            .collect();
        Scanner {
            anchors,
            rules_by_anchor,
            patterns,
        }
    }

    /// The scanner every caller can share, compiled on first use.
    pub fn global() -> &'static Scanner {
        &GLOBAL
    }

    /// Scans at most `limit` bytes of `reader`, a chunk at a time.
    pub fn scan_reader(&self, reader: impl Read, limit: u64) -> io::Result<Report> {
        let mut reader = reader.take(limit);
        let mut buf = vec![0; CHUNK];
        let mut scan = self.scan();
        loop {
            match read_full(&mut reader, &mut buf)? {
                0 => return Ok(scan.finish()),
                n => scan.feed(&buf[..n]),
            }
        }
    }

    /// Scans bytes already in memory.
    pub fn scan_bytes(&self, bytes: &[u8]) -> Report {
        // All of the input at hand: newlines are counted only up to a
        // finding, so a clean input is read once.
        let mut progress = Progress::default();
        self.scan_buffer(bytes, bytes.len(), &mut progress);
        progress.report
    }

    /// A scan fed piece by piece, for bytes that pass by on their way
    /// elsewhere (read once, scanned and written): see [`Scan::feed`].
    pub fn scan(&self) -> Scan<'_> {
        Scan {
            scanner: self,
            tail: Vec::new(),
            progress: Progress::default(),
        }
    }

    /// Decides every anchor in `buf` that starts from `progress.decided` to
    /// `decide_to` (in `buf`). The caller makes sure that `buf` holds what
    /// the checks read around them: [`LOOKBEHIND`] bytes before unless
    /// `buf` begins the input, [`LOOKAHEAD`] bytes after unless it ends it.
    fn scan_buffer(&self, buf: &[u8], decide_to: usize, progress: &mut Progress) {
        let input_start = progress.base == 0;
        let mut at = (progress.decided - progress.base) as usize;
        while at < decide_to {
            let Some(hit) = self.anchors.find(Input::new(buf).range(at..)) else {
                break;
            };
            if hit.start() >= decide_to {
                break;
            }
            // Anchors may overlap (a token's tail may hold another's
            // prefix), so the search goes on from the next byte.
            at = hit.start() + 1;
            for &r in &self.rules_by_anchor[hit.pattern().as_usize()] {
                let found = self.token_around(r, buf, hit.start(), input_start);
                if let Some((start, end)) =
                    found.filter(|&(start, _)| progress.base + start as u64 >= progress.reported_to)
                {
                    progress.record(buf, start, end, RULES[r].kind);
                    break;
                }
            }
        }
        progress.decided = progress.decided.max(progress.base + decide_to as u64);
    }

    /// The token of rule `r` whose anchor starts at `anchor`, as its start
    /// and end, if there is one.
    fn token_around(
        &self,
        r: usize,
        buf: &[u8],
        anchor: usize,
        input_start: bool,
    ) -> Option<(usize, usize)> {
        let token_at = |start| Some((start, self.token_at(r, buf, start, input_start)?));
        match RULES[r].start {
            Start::Before(n) => token_at(anchor.checked_sub(n)?),
            Start::Prefix { prefix, within } => {
                let word = buf[..anchor]
                    .iter()
                    .rev()
                    .take(within)
                    .take_while(|&&b| is_word(b))
                    .count();
                let from = anchor - word;
                memmem::find_iter(&buf[from..anchor], prefix).find_map(|i| token_at(from + i))
            }
        }
    }

    /// Where the token of rule `r` starting at `start` ends, if there is one.
    /// A standalone token has no word byte on either side (`input_start`:
    /// `buf` begins the input, so nothing precedes it), is not part of a
    /// base64 run, and is not a placeholder.
    fn token_at(&self, r: usize, buf: &[u8], start: usize, input_start: bool) -> Option<usize> {
        let standalone = RULES[r].standalone;
        if standalone && !starts_word(buf, start, input_start) {
            return None;
        }
        let window = &buf[start..buf.len().min(start + WINDOW)];
        let end = start + self.patterns[r].find(window)?.end();
        if standalone
            && (buf.get(end).is_some_and(|&b| is_word(b))
                || base64_run_before(buf, start) >= BASE64_RUN
                || base64_run_after(buf, end) >= BASE64_RUN
                || is_placeholder(&buf[start..end]))
        {
            return None;
        }
        Some(end)
    }
}

/// A scan in progress, fed the input a piece at a time; pieces of any size
/// give the same report. Large pieces are scanned where they lie, so a
/// caller that reads the input anyway (to hash, encode or send it) can scan
/// it on the way without a second read or copy.
pub struct Scan<'s> {
    scanner: &'s Scanner,
    /// The last bytes fed, from [`LOOKBEHIND`] bytes before the first
    /// undecided anchor position on.
    tail: Vec<u8>,
    progress: Progress,
}

impl Scan<'_> {
    /// Scans the next piece of the input.
    pub fn feed(&mut self, piece: &[u8]) {
        let Scan {
            scanner,
            tail,
            progress,
        } = self;
        if piece.len() < 2 * TAIL {
            tail.extend_from_slice(piece);
            scanner.scan_buffer(tail, tail.len().saturating_sub(LOOKAHEAD), progress);
            // Dropped only once there is plenty to drop, so that tiny
            // pieces do not move the tail at every call.
            let keep_from =
                ((progress.decided - progress.base) as usize).saturating_sub(LOOKBEHIND);
            if keep_from >= TAIL {
                progress.count_to(tail, keep_from);
                tail.drain(..keep_from);
                progress.base += keep_from as u64;
            }
            return;
        }
        // Anchors near the seam, read across it...
        let seam = tail.len();
        tail.extend_from_slice(&piece[..TAIL]);
        scanner.scan_buffer(tail, seam + LOOKBEHIND, progress);
        progress.count_to(tail, seam);
        progress.base += seam as u64;
        // ...then the rest where it lies.
        scanner.scan_buffer(piece, piece.len() - LOOKAHEAD, progress);
        let keep_from = piece.len() - TAIL;
        progress.count_to(piece, keep_from);
        tail.clear();
        tail.extend_from_slice(&piece[keep_from..]);
        progress.base += keep_from as u64;
    }

    /// Scans what is left once the input has ended.
    pub fn finish(mut self) -> Report {
        let end = self.tail.len();
        self.scanner
            .scan_buffer(&self.tail, end, &mut self.progress);
        self.progress.report
    }
}

/// Where a scan stands. Offsets are from the start of the input; `base` is
/// the offset of the first byte of the buffer being scanned.
#[derive(Default)]
struct Progress {
    base: u64,
    /// Anchors starting before this offset have been decided.
    decided: u64,
    /// Where the last token reported ends, so no token is reported twice.
    reported_to: u64,
    /// Newlines are counted only as far as a finding or the bytes about
    /// to be dropped: there are `newlines` before offset `counted_to`.
    counted_to: u64,
    newlines: u64,
    report: Report,
}

impl Progress {
    fn record(&mut self, buf: &[u8], start: usize, end: usize, kind: &'static str) {
        self.reported_to = self.base + end as u64;
        self.report.total += 1;
        if self.report.findings.len() < MAX_FINDINGS {
            self.count_to(buf, start);
            self.report.findings.push(Finding {
                line: self.newlines + 1,
                offset: self.base + start as u64,
                kind,
            });
        }
    }

    /// Counts newlines up to `to` in `buf`, forward or back from where the
    /// count stands.
    fn count_to(&mut self, buf: &[u8], to: usize) {
        let here = (self.counted_to - self.base) as usize;
        if to >= here {
            self.newlines += count_newlines(&buf[here..to]);
        } else {
            self.newlines -= count_newlines(&buf[to..here]);
        }
        self.counted_to = self.base + to as u64;
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', bytes).count() as u64
}

/// Bytes that continue a token in every rule's alphabet.
fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_' || b == b'-'
}

fn is_base64(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'+' || b == b'/'
}

/// Whether a token may begin at `start`: at the input's start, after a
/// non-word byte, or after a JSON escape (`\n`, `\t`, `\u00a0`…), since in a
/// transcript a key on a line of its own follows the two bytes `\n`.
fn starts_word(buf: &[u8], start: usize, input_start: bool) -> bool {
    let before = &buf[..start];
    let Some(&prev) = before.last() else {
        return input_start;
    };
    if !is_word(prev) {
        return true;
    }
    match before {
        [.., b'\\', b'n' | b'r' | b't' | b'b' | b'f'] => true,
        [.., b'\\', b'u', a, b, c, d] => [a, b, c, d].iter().all(|h| h.is_ascii_hexdigit()),
        _ => false,
    }
}

/// The length of the base64 run ending just before `start`, up to
/// [`BASE64_RUN`].
fn base64_run_before(buf: &[u8], start: usize) -> usize {
    buf[..start]
        .iter()
        .rev()
        .take(BASE64_RUN)
        .take_while(|&&b| is_base64(b))
        .count()
}

/// The length of the base64 run starting at `end`, up to [`BASE64_RUN`].
fn base64_run_after(buf: &[u8], end: usize) -> usize {
    buf[end..]
        .iter()
        .take(BASE64_RUN)
        .take_while(|&&b| is_base64(b))
        .count()
}

/// Documentation's stand-ins: `AKIAIOSFODNN7EXAMPLE`, `ghp_xxxxxxxx…`,
/// `T00000000`. A real token of these alphabets almost never repeats a byte
/// eight times.
fn is_placeholder(token: &[u8]) -> bool {
    memmem::find(token, b"EXAMPLE").is_some()
        || memmem::find(token, b"example").is_some()
        || token.chunk_by(|a, b| a == b).any(|run| run.len() >= 8)
}
