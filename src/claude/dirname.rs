//! The name Claude Code gives a working directory under `projects/`.
//!
//! This must match the client exactly (see FACTS.md): a session installed under
//! any other name is invisible to `claude --resume` on older clients.

/// Names longer than this are cut and given a hash suffix.
pub const MAX_NAME_LEN: usize = 200;

/// Encodes an absolute working directory the way Claude Code does.
///
/// Every UTF-16 code unit that is not an ASCII letter or digit becomes `-`, one
/// per unit (an emoji is two units, so `--`). Past 200 units the name is cut and
/// `-` plus the base-36 Java string hash of the whole path is appended.
pub fn encode(cwd: &str) -> String {
    let units: Vec<u16> = cwd.encode_utf16().collect();
    let mut name: String = units
        .iter()
        .map(|&u| match u8::try_from(u) {
            Ok(b) if b.is_ascii_alphanumeric() => char::from(b),
            _ => '-',
        })
        .collect();
    if name.len() > MAX_NAME_LEN {
        name.truncate(MAX_NAME_LEN);
        name.push('-');
        name.push_str(&to_base36(java_hash(&units).unsigned_abs()));
    }
    name
}

/// True when `name` is what the client would accept for `cwd`: the exact
/// encoding, or, for long paths, any name with the same 200-character prefix
/// (older clients used another hash for the suffix).
pub fn matches(name: &str, cwd: &str) -> bool {
    let exact = encode(cwd);
    if name == exact {
        return true;
    }
    exact.len() > MAX_NAME_LEN
        && name.len() > MAX_NAME_LEN + 1
        && name.as_bytes()[..=MAX_NAME_LEN] == exact.as_bytes()[..=MAX_NAME_LEN]
}

/// The 200-character prefix (plus the `-` separator) shared by every name a
/// long path may have been given, or `None` for a path that is not long.
pub fn long_prefix(cwd: &str) -> Option<String> {
    let exact = encode(cwd);
    (exact.len() > MAX_NAME_LEN).then(|| exact[..=MAX_NAME_LEN].to_owned())
}

/// Java's `String.hashCode` over UTF-16 code units, wrapping at 32 bits.
fn java_hash(units: &[u16]) -> i32 {
    units.iter().fold(0i32, |h, &u| {
        h.wrapping_shl(5).wrapping_sub(h).wrapping_add(i32::from(u))
    })
}

fn to_base36(mut n: u32) -> String {
    const DIGITS: &[u8; 36] = b"0123456789abcdefghijklmnopqrstuvwxyz";
    if n == 0 {
        return "0".to_owned();
    }
    let mut out = Vec::new();
    while n > 0 {
        out.push(DIGITS[(n % 36) as usize]);
        n /= 36;
    }
    out.reverse();
    String::from_utf8(out).expect("base-36 digits are ASCII")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_examples() {
        assert_eq!(
            encode("/Users/alice/code/my.app"),
            "-Users-alice-code-my-app"
        );
        assert_eq!(encode("/home/u/.config/x"), "-home-u--config-x");
        assert_eq!(
            encode(r"C:\Users\alice\code\myapp"),
            "C--Users-alice-code-myapp"
        );
        let long = format!("/home/u/{}", "x".repeat(250));
        assert_eq!(encode(&long), format!("-home-u-{}-47iwxx", "x".repeat(192)));
    }

    #[test]
    fn one_dash_per_utf16_unit_and_case_kept() {
        assert_eq!(encode("/a/ä"), "-a--");
        assert_eq!(encode("/a/😀"), "-a---");
        assert_eq!(encode("/A_b c"), "-A-b-c");
        assert_eq!(encode("/x//y"), "-x--y");
    }

    #[test]
    fn exactly_200_is_not_cut() {
        let p = format!("/{}", "a".repeat(199));
        assert_eq!(encode(&p).len(), 200);
        assert!(long_prefix(&p).is_none());
        let p = format!("/{}", "a".repeat(200));
        assert!(encode(&p).len() > 201);
    }

    #[test]
    fn hash_of_min_int_is_positive() {
        assert_eq!(to_base36(i32::MIN.unsigned_abs()), "zik0zk");
        assert_eq!(to_base36(0), "0");
    }

    #[test]
    fn long_names_match_on_prefix_only() {
        let long = format!("/home/u/{}", "x".repeat(250));
        let other_hash = format!("-home-u-{}-abc", "x".repeat(192));
        assert!(matches(&other_hash, &long));
        assert!(matches(&encode(&long), &long));
        assert!(!matches("-home-u-xxx", &long));
        assert!(!matches(&encode("/home/u/short"), "/home/u/shorter"));
    }
}
