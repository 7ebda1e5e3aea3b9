//! Version 5: a segment, the lines a session gained since a whole bundle
//! (its base) or the segment before.
//!
//! A segment is a version 4 bundle whose `jsonl` holds only the appended
//! bytes (`lineCount` and `sha256` are theirs) and whose `parts` hold only
//! the side files that changed, whole, plus a `segment` field:
//!
//! ```json
//! "segment":{"base":{"exportedAt":1763629200000,"sha256":"…"},"seq":1,
//!            "extends":{"len":4096,"chain":"…"}}
//! ```
//!
//! `base` names the whole bundle the chain starts from (its `exportedAt`
//! and transcript SHA-256): a segment left over from an earlier base names
//! another one. `seq` counts from 1 along the chain, and `extends` is the
//! state it continues: the transcript's length then, and the chain hash,
//! which starts as the base's transcript SHA-256 and takes in each segment
//! with [`chain_next`]. So a segment applied to anything but the state it
//! was written for is refused, and a chain cannot loop.

use serde::{Deserialize, Serialize};

use super::{BundleError, PartBody, field};

/// What a segment says of its place in a chain.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegmentHead {
    pub base: BaseId,
    pub seq: u32,
    pub extends: Point,
}

/// A whole bundle in the sync dir, as segments name it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BaseId {
    pub exported_at: u64,
    pub sha256: String,
}

/// A state along a chain: the transcript's length and the chain hash.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Point {
    pub len: u64,
    pub chain: String,
}

impl Point {
    /// Where a chain starts: the base's transcript.
    pub fn base(len: u64, sha256: &str) -> Self {
        Self {
            len,
            chain: sha256.to_owned(),
        }
    }

    /// The state after segment `seq`, which appended `appended` bytes
    /// hashing to `sha256` and carried `parts`.
    pub fn next(&self, seq: u32, appended: u64, sha256: &str, parts: &[PartBody]) -> Self {
        Self {
            len: self.len + appended,
            chain: chain_next(&self.chain, seq, sha256, parts),
        }
    }
}

/// The chain hash after one more segment: it takes in the one before, the
/// segment's place, its appended bytes' hash and each side file's.
pub fn chain_next(before: &str, seq: u32, sha256: &str, parts: &[PartBody]) -> String {
    let mut text = format!("ccsync-chain\n{before}\n{seq}\n{sha256}\n");
    for p in parts {
        text.push_str(&format!("{}\t{}\t{}\n", p.path, p.len, p.sha256));
    }
    super::sha256_hex(text.as_bytes())
}

pub(super) fn check(head: &SegmentHead) -> Result<(), BundleError> {
    let hex = |s: &str| s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if head.seq == 0 {
        return Err(field("segment", "`seq` counts from 1"));
    }
    if !hex(&head.base.sha256) || !hex(&head.extends.chain) {
        return Err(field("segment", "a hash is not 64 hex digits"));
    }
    Ok(())
}
