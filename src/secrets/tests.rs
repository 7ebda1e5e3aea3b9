use super::rules::Rule;
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
