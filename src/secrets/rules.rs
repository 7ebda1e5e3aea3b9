//! The credential formats the scanner knows.

/// A credential format.
pub(super) struct Rule {
    pub(super) kind: &'static str,
    /// Literals the prefilter searches for; every token of the rule holds one.
    pub(super) anchors: &'static [&'static str],
    /// Where a token starts, given where its anchor was found.
    pub(super) start: Start,
    /// The whole token from its first byte. A match is cut at [`super::WINDOW`]
    /// bytes, and a cut standalone token is rejected, so repetitions are
    /// bounded well below that.
    pub(super) pattern: &'static str,
    /// Whether the token is a word of its own (see `Scanner::token_at`);
    /// only the private key block, which begins with dashes, is not.
    pub(super) standalone: bool,
}

pub(super) enum Start {
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
pub(super) const RULES: &[Rule] = &[
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
