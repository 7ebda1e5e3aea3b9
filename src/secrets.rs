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

/// A credential format.
struct Rule {
    kind: &'static str,
    /// Literals the prefilter searches for; every token of the rule holds one.
    anchors: &'static [&'static str],
    /// Where a token starts, given where its anchor was found.
    start: Start,
    /// The whole token from its first byte. A match is cut at [`WINDOW`]
    /// bytes, and a cut standalone token is rejected, so repetitions are
    /// bounded well below that.
    pattern: &'static str,
    /// Whether the token is a word of its own (see [`Scanner::token_at`]);
    /// only the private key block, which begins with dashes, is not.
    standalone: bool,
}

enum Start {
    /// This many bytes before the anchor: 0 when the anchor is the prefix.
    Before(usize),
    /// At the first `prefix` among the word bytes up to `within` bytes
    /// before the anchor, for a marker in the middle of the token.
    Prefix { prefix: &'static str, within: usize },
}

/// Line breaks before a private key's body: raw or JSON-escaped, each maybe
/// followed by the line number that `cat -n` or Claude Code's Read tool puts
/// before every line.
macro_rules! key_line_breaks {
    () => {
        r"(?:(?:\\r|\\n|\r|\n)(?: {0,8}[0-9]{1,7}(?:→|\\t|\t))?)+"
    };
}

/// The formats, from each provider's documentation of its token prefixes.
/// Only formats with a distinctive literal of 4 bytes or more are here: that
/// is what makes them both fast to find and unlikely to be anything else.
const RULES: &[Rule] = &[
    Rule {
        kind: "Anthropic API key",
        anchors: &["sk-ant-"],
        start: Start::Before(0),
        pattern: r"sk-ant-(?:api|admin)[0-9]{2}-[A-Za-z0-9_-]{80,120}",
        standalone: true,
    },
    Rule {
        kind: "Anthropic OAuth token",
        anchors: &["sk-ant-"],
        start: Start::Before(0),
        pattern: r"sk-ant-o(?:at|rt)[0-9]{2}-[A-Za-z0-9_-]{60,200}",
        standalone: true,
    },
    // Every OpenAI key holds `T3BlbkFJ` ("OpenAI" in base64) and `sk-`
    // alone is far too common ("task-") to search for: project, service
    // account, admin and legacy keys are found from the marker.
    Rule {
        kind: "OpenAI API key",
        anchors: &["T3BlbkFJ"],
        start: Start::Prefix {
            prefix: "sk-",
            within: 216,
        },
        pattern: r"sk-(?:(?:proj|svcacct|admin)-[A-Za-z0-9_-]{20,200}T3BlbkFJ[A-Za-z0-9_-]{20,200}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20})",
        standalone: true,
    },
    // Long-term (AKIA) and temporary (ASIA) key IDs; the rest is base32.
    Rule {
        kind: "AWS access key ID",
        anchors: &["AKIA", "ASIA"],
        start: Start::Before(0),
        pattern: r"(?:AKIA|ASIA)[A-Z2-7]{16}",
        standalone: true,
    },
    Rule {
        kind: "GitHub token",
        anchors: &["ghp_", "gho_", "ghu_", "ghs_", "ghr_"],
        start: Start::Before(0),
        pattern: r"gh[pousr]_[A-Za-z0-9]{36,251}",
        standalone: true,
    },
    Rule {
        kind: "GitHub fine-grained token",
        anchors: &["github_pat_"],
        start: Start::Before(0),
        pattern: r"github_pat_[A-Za-z0-9]{22,40}_[A-Za-z0-9]{59,200}",
        standalone: true,
    },
    // Personal access tokens; GitLab's other prefixes are rarer, and each
    // anchor costs speed.
    Rule {
        kind: "GitLab token",
        anchors: &["glpat-"],
        start: Start::Before(0),
        pattern: r"glpat-[A-Za-z0-9_-]{20,200}",
        standalone: true,
    },
    // Bot and user tokens.
    Rule {
        kind: "Slack token",
        anchors: &["xoxb-", "xoxp-"],
        start: Start::Before(0),
        pattern: r"xox[bp]-[0-9]{6,15}-[A-Za-z0-9-]{20,250}",
        standalone: true,
    },
    // `\/` too: some JSON writers escape slashes.
    Rule {
        kind: "Slack webhook URL",
        anchors: &["hooks.slack.com"],
        start: Start::Before(0),
        pattern: r"hooks\.slack\.com\\?/services\\?/T[A-Z0-9]{8,12}\\?/B[A-Z0-9]{8,12}\\?/[A-Za-z0-9]{23,25}",
        standalone: true,
    },
    Rule {
        kind: "Stripe secret key",
        anchors: &["k_live_"],
        start: Start::Before(1),
        pattern: r"sk_live_[A-Za-z0-9]{24,247}",
        standalone: true,
    },
    Rule {
        kind: "Stripe restricted key",
        anchors: &["k_live_"],
        start: Start::Before(1),
        pattern: r"rk_live_[A-Za-z0-9]{24,247}",
        standalone: true,
    },
    Rule {
        kind: "Google API key",
        anchors: &["AIza"],
        start: Start::Before(0),
        pattern: r"AIza[A-Za-z0-9_-]{35}",
        standalone: true,
    },
    Rule {
        kind: "Google OAuth client secret",
        anchors: &["GOCSPX-"],
        start: Start::Before(0),
        pattern: r"GOCSPX-[A-Za-z0-9_-]{28}",
        standalone: true,
    },
    // Only with a body: code that merely names the header (a PEM parser,
    // a .gitignore discussion) is not a key.
    Rule {
        kind: "private key block",
        anchors: &["-----BEGIN "],
        start: Start::Before(0),
        pattern: concat!(
            r"-----BEGIN (?:RSA |EC |DSA |OPENSSH |PGP |ENCRYPTED )?PRIVATE KEY(?: BLOCK)?-----",
            key_line_breaks!(),
            r"(?:[A-Za-z-]{1,32}: [^\r\n\\]{0,128}",
            key_line_breaks!(),
            r"){0,4}",
            r"[A-Za-z0-9+/]{64}",
        ),
        standalone: false,
    },
    Rule {
        kind: "npm token",
        anchors: &["npm_"],
        start: Start::Before(0),
        pattern: r"npm_[A-Za-z0-9]{36}",
        standalone: true,
    },
    // A macaroon whose first bytes always encode "pypi.org".
    Rule {
        kind: "PyPI token",
        anchors: &["pypi-AgEIcHlwaS5vcmc"],
        start: Start::Before(0),
        pattern: r"pypi-AgEIcHlwaS5vcmc[A-Za-z0-9_-]{50,600}",
        standalone: true,
    },
    // Personal (dop), OAuth (doo) and refresh (dor) tokens.
    Rule {
        kind: "DigitalOcean token",
        anchors: &["_v1_"],
        start: Start::Before(3),
        pattern: r"do[opr]_v1_[a-f0-9]{64}",
        standalone: true,
    },
    Rule {
        kind: "Shopify access token",
        anchors: &["shpat_"],
        start: Start::Before(0),
        pattern: r"shpat_[a-fA-F0-9]{32}",
        standalone: true,
    },
    Rule {
        kind: "age secret key",
        anchors: &["AGE-SECRET-KEY-1"],
        start: Start::Before(0),
        pattern: r"AGE-SECRET-KEY-1[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}",
        standalone: true,
    },
];

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

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    const URL_SAFE: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-";
    const BASE64: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    const UPPER_ALNUM: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";
    const BASE32: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    const DIGITS: &[u8] = b"0123456789";
    const HEX: &[u8] = b"0123456789abcdef";
    const BECH32: &[u8] = b"QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L";

    /// Random-looking fake tokens, built at run time so that this file
    /// holds nothing a secret scanner would flag.
    struct Gen(u64);

    impl Gen {
        fn pick(&mut self, alphabet: &[u8], len: usize) -> String {
            (0..len)
                .map(|_| {
                    // xorshift64*
                    self.0 ^= self.0 >> 12;
                    self.0 ^= self.0 << 25;
                    self.0 ^= self.0 >> 27;
                    let r = self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32;
                    alphabet[r as usize % alphabet.len()] as char
                })
                .collect()
        }
    }

    /// A fake of every rule: (kind, text, where in the text the token starts).
    fn fakes(seed: u64) -> Vec<(&'static str, String, usize)> {
        let mut g = Gen(seed | 1);
        let whole = |kind, text: String| (kind, text, 0);
        let pem = |kind: &str| format!("-----BEGIN {kind}PRIVATE KEY-----");
        vec![
            whole(
                "Anthropic API key",
                format!("sk-ant-api03-{}AA", g.pick(URL_SAFE, 93)),
            ),
            whole(
                "Anthropic API key",
                format!("sk-ant-admin01-{}AA", g.pick(URL_SAFE, 93)),
            ),
            whole(
                "Anthropic OAuth token",
                format!("sk-ant-oat01-{}AA", g.pick(URL_SAFE, 93)),
            ),
            whole(
                "OpenAI API key",
                format!(
                    "sk-proj-{}T3BlbkFJ{}",
                    g.pick(URL_SAFE, 74),
                    g.pick(URL_SAFE, 74)
                ),
            ),
            whole(
                "OpenAI API key",
                format!(
                    "sk-svcacct-{}T3BlbkFJ{}",
                    g.pick(URL_SAFE, 58),
                    g.pick(URL_SAFE, 58)
                ),
            ),
            whole(
                "OpenAI API key",
                format!(
                    "sk-admin-{}T3BlbkFJ{}",
                    g.pick(URL_SAFE, 58),
                    g.pick(URL_SAFE, 58)
                ),
            ),
            whole(
                "OpenAI API key",
                format!("sk-{}T3BlbkFJ{}", g.pick(ALNUM, 20), g.pick(ALNUM, 20)),
            ),
            whole("AWS access key ID", format!("AKIA{}", g.pick(BASE32, 16))),
            whole("AWS access key ID", format!("ASIA{}", g.pick(BASE32, 16))),
            whole("GitHub token", format!("ghp_{}", g.pick(ALNUM, 36))),
            whole("GitHub token", format!("ghs_{}", g.pick(ALNUM, 36))),
            whole(
                "GitHub fine-grained token",
                format!("github_pat_{}_{}", g.pick(ALNUM, 22), g.pick(ALNUM, 59)),
            ),
            whole("GitLab token", format!("glpat-{}", g.pick(URL_SAFE, 20))),
            whole(
                "Slack token",
                format!(
                    "xoxb-{}-{}-{}",
                    g.pick(DIGITS, 13),
                    g.pick(DIGITS, 13),
                    g.pick(ALNUM, 24)
                ),
            ),
            whole(
                "Slack token",
                format!(
                    "xoxp-{}-{}-{}-{}",
                    g.pick(DIGITS, 10),
                    g.pick(DIGITS, 10),
                    g.pick(DIGITS, 13),
                    g.pick(HEX, 32)
                ),
            ),
            (
                "Slack webhook URL",
                format!(
                    "https://hooks.slack.com/services/T{}/B{}/{}",
                    g.pick(UPPER_ALNUM, 8),
                    g.pick(UPPER_ALNUM, 10),
                    g.pick(ALNUM, 24)
                ),
                "https://".len(),
            ),
            (
                "Slack webhook URL",
                format!(
                    "https:\\/\\/hooks.slack.com\\/services\\/T{}\\/B{}\\/{}",
                    g.pick(UPPER_ALNUM, 10),
                    g.pick(UPPER_ALNUM, 10),
                    g.pick(ALNUM, 24)
                ),
                "https:\\/\\/".len(),
            ),
            whole(
                "Stripe secret key",
                format!("sk_live_{}", g.pick(ALNUM, 99)),
            ),
            whole(
                "Stripe restricted key",
                format!("rk_live_{}", g.pick(ALNUM, 99)),
            ),
            whole("Google API key", format!("AIza{}", g.pick(URL_SAFE, 35))),
            whole(
                "Google OAuth client secret",
                format!("GOCSPX-{}", g.pick(URL_SAFE, 28)),
            ),
            whole(
                "private key block",
                format!("{}\\n{}\\n", pem("RSA "), g.pick(BASE64, 64)),
            ),
            whole(
                "private key block",
                format!("{}\n{}\n", pem("OPENSSH "), g.pick(BASE64, 70)),
            ),
            whole(
                "private key block",
                format!("{}\\n     2→{}", pem(""), g.pick(BASE64, 64)),
            ),
            whole(
                "private key block",
                format!(
                    "{}\\r\\nProc-Type: 4,ENCRYPTED\\r\\nDEK-Info: AES-128-CBC,{}\\r\\n\\r\\n{}",
                    pem("RSA "),
                    g.pick(HEX, 32),
                    g.pick(BASE64, 64)
                ),
            ),
            whole(
                "private key block",
                format!(
                    "-----BEGIN PGP PRIVATE KEY BLOCK-----\\n\\n{}",
                    g.pick(BASE64, 64)
                ),
            ),
            whole("npm token", format!("npm_{}", g.pick(ALNUM, 36))),
            whole(
                "PyPI token",
                format!("pypi-AgEIcHlwaS5vcmc{}", g.pick(URL_SAFE, 150)),
            ),
            whole("DigitalOcean token", format!("dop_v1_{}", g.pick(HEX, 64))),
            whole("Shopify access token", format!("shpat_{}", g.pick(HEX, 32))),
            whole(
                "age secret key",
                format!("AGE-SECRET-KEY-1{}", g.pick(BECH32, 58)),
            ),
        ]
    }

    /// The first fake of `kind`.
    fn fake(kind: &str, seed: u64) -> String {
        fakes(seed)
            .into_iter()
            .find(|(k, ..)| *k == kind)
            .map(|(_, text, _)| text)
            .unwrap()
    }

    fn scan(text: &str) -> Report {
        Scanner::global().scan_bytes(text.as_bytes())
    }

    fn kinds(report: &Report) -> Vec<&'static str> {
        report.findings.iter().map(|f| f.kind).collect()
    }

    #[test]
    fn every_rule_finds_its_fake_token_in_a_transcript_line() {
        for (kind, text, start) in fakes(7) {
            let prefix = "{\"type\":\"user\",\"message\":{\"content\":\"export KEY=";
            let line = format!("{prefix}{text}\"}}}}\n");
            let report = scan(&line);
            assert_eq!(
                report.findings,
                [Finding {
                    line: 1,
                    offset: (prefix.len() + start) as u64,
                    kind
                }],
                "{text}"
            );
            assert_eq!(report.total, 1);
        }
    }

    #[test]
    fn every_rule_has_a_fake_token() {
        let faked: Vec<&str> = fakes(1).into_iter().map(|(kind, ..)| kind).collect();
        for rule in RULES {
            assert!(faked.contains(&rule.kind), "no fake for {}", rule.kind);
        }
    }

    #[test]
    fn a_token_is_found_after_a_json_escape_or_alone_in_the_input() {
        for (kind, text, start) in fakes(11) {
            for before in ["\\n", "\\t", "\\u00a0", "\"", "'", "=", ":", "(", "`", " "] {
                let report = scan(&format!("{before}{text}"));
                assert_eq!(kinds(&report), [kind], "{before}{text}");
            }
            let report = scan(&text);
            assert_eq!(report.findings[0].offset, start as u64);
        }
    }

    #[test]
    fn a_token_glued_to_a_word_is_not_one() {
        for (kind, text, start) in fakes(13) {
            if kind == "private key block" {
                continue;
            }
            for glue in ["x", "7", "_", "-"] {
                let glued = format!("{}{glue}{}", &text[..start], &text[start..]);
                assert!(scan(&glued).is_clean(), "{glued}");
            }
        }
    }

    #[test]
    fn a_token_inside_a_base64_run_is_not_one() {
        let mut g = Gen(99);
        for (kind, text, start) in fakes(17) {
            if kind == "private key block" || start != 0 {
                continue;
            }
            let run = g.pick(BASE64, 200);
            for (before, after) in [
                (format!("{run}/"), format!("+{run}")),
                (format!("{run}+"), "\"".to_owned()),
                ("\"".to_owned(), format!("/{run}")),
            ] {
                let inside = format!("{before}{text}{after}");
                assert!(scan(&inside).is_clean(), "{inside}");
            }
        }
    }

    /// Lines of the kind every transcript is full of; none is a credential.
    fn ordinary_transcript() -> String {
        let mut g = Gen(3);
        let image = format!(
            "{}AKIA{}{}/AKIA{}+{}",
            g.pick(BASE64, 3000),
            g.pick(BASE32, 16),
            g.pick(BASE64, 500),
            g.pick(BASE32, 16),
            g.pick(BASE64, 3000)
        );
        let aws_docs_example = format!("AKIA{}", "IOSFODNN7EXAMPLE");
        let placeholder = format!("ghp_{}", "x".repeat(36));
        let slack_placeholder = format!(
            "https://hooks.slack.com/services/T{}/B{}/{}",
            "0".repeat(8),
            "0".repeat(8),
            "X".repeat(24)
        );
        let pem_parser = format!(
            "if line.starts_with(\\\"-----BEGIN {}PRIVATE KEY-----\\\") {{\\n    return parse_pem(rest);\\n}}",
            "RSA "
        );
        [
            r#"{"parentUuid":null,"isSidechain":false,"userType":"external","cwd":"/home/marco/projects/task-manager","sessionId":"55604662-cf2a-4331-851a-ec234028f8ca","version":"2.1.38","gitBranch":"master","type":"user","message":{"role":"user","content":"fix the risk-scoring in task-manager, and ask-me before touching disk-usage.sh"},"uuid":"7c676cb6-c0f4-4952-a21f-18df6af360c7","timestamp":"2026-02-10T21:11:52.481Z"}"#.to_owned(),
            r#"{"type":"assistant","message":{"role":"assistant","content":[{"type":"tool_use","id":"toolu_01AbCdEfGhIjKlMnOpQrStUv","name":"Bash","input":{"command":"grep -rn \"sk-\" src/ | head && npm_config_cache=/tmp/npm npm ci","description":"Find sk- prefixes"}}]}}"#.to_owned(),
            r#"{"type":"user","message":{"role":"user","content":[{"tool_use_id":"toolu_01AbCdEfGhIjKlMnOpQrStUv","type":"tool_result","content":"     1→from huggingface_hub import hf_hub_download\n     2→path = hf_hub_download(repo_id=\"gpt2\", filename=\"config.json\")\n     3→SG.1 = 4  # section 1\n     4→app.include_router(api_v1_users, prefix=\"/api_v1_\")\n     5→stripe.api_key = \"sk_live_YOUR_SECRET_KEY\"\n"}]}}"#.to_owned(),
            format!(r#"{{"type":"user","message":{{"role":"user","content":[{{"type":"image","source":{{"type":"base64","media_type":"image/png","data":"{image}"}}}}]}}}}"#),
            format!(r#"{{"type":"assistant","message":{{"content":[{{"type":"text","text":"Set `aws_access_key_id = {aws_docs_example}` as in the AWS docs, and `GITHUB_TOKEN={placeholder}`; the webhook looks like {slack_placeholder}."}}]}}}}"#),
            format!(r#"{{"type":"assistant","message":{{"content":[{{"type":"tool_use","name":"Edit","input":{{"file_path":"/home/a/src/pem.rs","new_string":"{pem_parser}"}}}}]}}}}"#),
            r#"{"type":"user","message":{"content":"-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIEAgAAuTANBgkqhkiG9w0BAQUFADBaMQswCQYDVQQGEwJJRTES\n-----END CERTIFICATE-----\n sk_test_4eC39HqLyjWDarjtT1zdp7dc"}}"#.to_owned(),
            format!(r#"{{"type":"assistant","message":{{"content":[{{"type":"thinking","thinking":"ok","signature":"{}"}}]}}}}"#, g.pick(BASE64, 1200)),
        ]
        .join("\n")
            + "\n"
    }

    #[test]
    fn an_ordinary_transcript_has_no_findings() {
        let text = ordinary_transcript();
        assert_eq!(scan(&text), Report::default());
    }

    #[test]
    fn findings_name_the_exact_line() {
        let github = fake("GitHub token", 5);
        let aws = fake("AWS access key ID", 5);
        let text = format!(
            "{github}\n{{\"a\":1}}\r\n\n{{\"b\":\"x {aws} y\"}}\n{{\"c\":\"{github}\\n{aws}\"}}"
        );
        let lines: Vec<u64> = scan(&text).findings.iter().map(|f| f.line).collect();
        assert_eq!(lines, [1, 4, 5, 5]);
        assert_eq!(scan(&text).findings[0].offset, 0);
    }

    /// Scans `input` fed in pieces of the given sizes, taken in turn.
    fn scan_in_pieces(input: &[u8], sizes: &[usize]) -> Report {
        let mut scan = Scanner::global().scan();
        let mut rest = input;
        for &size in sizes.iter().cycle() {
            if rest.is_empty() {
                break;
            }
            let (piece, after) = rest.split_at(size.min(rest.len()));
            scan.feed(piece);
            rest = after;
        }
        scan.finish()
    }

    #[test]
    fn a_token_across_a_piece_boundary_is_found_once() {
        let token = fake("Anthropic API key", 21);
        let text = format!("{}{token}\n{}", "a b\n".repeat(600), "c d\n".repeat(600));
        let expected = scan(&text);
        assert_eq!(expected.total, 1);
        assert_eq!(expected.findings[0].line, 601);
        // Small pieces pile up in the tail; large ones are scanned in place.
        let sizes = (1..=400).chain([2 * TAIL - 1, 2 * TAIL, 2 * TAIL + 1, 2400, 2500, CHUNK]);
        for size in sizes {
            assert_eq!(
                scan_in_pieces(text.as_bytes(), &[size]),
                expected,
                "pieces of {size} bytes"
            );
        }
        for mixed in [[1, 3000], [3000, 1], [2 * TAIL, 7], [2600, 2 * TAIL + 5]] {
            assert_eq!(
                scan_in_pieces(text.as_bytes(), &mixed),
                expected,
                "pieces of {mixed:?}"
            );
        }
        let read = Scanner::global().scan_reader(text.as_bytes(), u64::MAX);
        assert_eq!(read.unwrap(), expected);
    }

    #[test]
    fn findings_are_capped_and_all_counted() {
        let mut text = String::new();
        for i in 0..250 {
            text.push_str(&fake("GitHub token", i + 1));
            text.push('\n');
        }
        for size in [7, 300, 5000, CHUNK] {
            let report = scan_in_pieces(text.as_bytes(), &[size]);
            assert_eq!(report.total, 250);
            assert_eq!(report.findings.len(), MAX_FINDINGS);
            let lines: Vec<u64> = report.findings.iter().map(|f| f.line).collect();
            assert_eq!(lines, (1..=MAX_FINDINGS as u64).collect::<Vec<_>>());
        }
    }

    #[test]
    fn the_reader_is_read_no_further_than_the_limit() {
        let token = fake("GitHub token", 23);
        let text = format!("{{}}\n{token}\n");
        let found = |limit| {
            Scanner::global()
                .scan_reader(text.as_bytes(), limit)
                .unwrap()
                .total
        };
        assert_eq!(found(text.len() as u64), 1);
        assert_eq!(found(3 + token.len() as u64), 1);
        assert_eq!(found(2 + token.len() as u64), 0);
        assert_eq!(found(0), 0);
    }

    #[test]
    fn the_overlap_covers_what_a_check_reads() {
        let farthest = |rule: &Rule| match rule.start {
            Start::Before(n) => n,
            Start::Prefix { within, .. } => within,
        };
        let deepest = RULES.iter().map(farthest).max().unwrap();
        // `\uXXXX` before the token, and a base64 run before that.
        assert!(deepest + 6 + BASE64_RUN < LOOKBEHIND);
        for rule in RULES {
            for anchor in rule.anchors {
                assert!(farthest(rule) + anchor.len() + 200 < WINDOW);
            }
        }
    }

    #[test]
    fn no_anchor_hides_another() {
        // Leftmost-first reports one anchor per position, so none may be
        // a prefix of another.
        let anchors: Vec<&str> = RULES
            .iter()
            .flat_map(|r| r.anchors.iter().copied())
            .collect();
        for a in &anchors {
            for b in &anchors {
                assert!(a == b || !b.starts_with(a), "{a} hides {b}");
            }
        }
    }

    /// Real transcripts, when `CCSYNC_CORPUS` names a directory of them:
    /// prints what is found (some may hold real keys) rather than asserting.
    #[test]
    fn real_transcripts_scan_without_surprises() {
        let Some(dir) = std::env::var_os("CCSYNC_CORPUS") else {
            return;
        };
        let mut paths: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        paths.sort();
        for path in paths {
            let file = std::fs::File::open(&path).unwrap();
            let report = Scanner::global().scan_reader(file, u64::MAX).unwrap();
            println!("{}: {} finding(s)", path.display(), report.total);
            for f in &report.findings {
                println!("  line {}: {}", f.line, f.kind);
            }
        }
    }

    proptest! {
        #[test]
        fn an_inserted_token_is_found_once_at_its_line(
            text in "[ -~\n]{0,8000}",
            at in any::<prop::sample::Index>(),
            which in any::<prop::sample::Index>(),
            seed in any::<u64>(),
            sizes in prop::collection::vec(1usize..6000, 1..8),
        ) {
            let fakes = fakes(seed);
            let (kind, token, start) = &fakes[which.index(fakes.len())];
            let at = at.index(text.len() + 1);
            let input = format!("{} {token} {}", &text[..at], &text[at..]);
            let expected = Finding {
                line: 1 + text[..at].matches('\n').count() as u64,
                offset: (at + 1 + start) as u64,
                kind,
            };
            let report = scan_in_pieces(input.as_bytes(), &sizes);
            prop_assert_eq!(&report.findings, &vec![expected]);
            prop_assert_eq!(report.total, 1);
            prop_assert_eq!(Scanner::global().scan_bytes(input.as_bytes()), report);
        }
    }
}
