//! Names of the temp files a store writes before it renames them into
//! place in a sync dir: `.ccsync-<machine>@<pid>-<nonce>.tmp`.
//!
//! A machine runs several ccsync processes at once (a hook starts a push
//! and a presence update together; a watch pushes while a hook does), so
//! "this machine's temp file" does not mean "a killed run's". The writer's
//! process id tells them apart: a temp file of this machine whose writer is
//! gone is removed at once; one whose writer still runs is another upload
//! in flight and stays. Machine names never hold `@`, so `laptop`'s names
//! are never `laptop-2`'s.

use crate::fsutil::{TEMP_PREFIX, TEMP_SUFFIX};

/// A new temp file name for `owner`'s upload from this process.
pub fn name(owner: &str) -> String {
    let nonce = uuid::Uuid::new_v4().as_u64_pair().0;
    format!(
        "{TEMP_PREFIX}{owner}@{:x}-{nonce:016x}{TEMP_SUFFIX}",
        std::process::id()
    )
}

/// Whether `file` is a temp file of machine `owner` whose writer is gone:
/// its process no longer runs here, or it was named by a ccsync from before
/// process ids were in the name (`.ccsync-<owner>-<16 hex>.tmp`). This
/// process's own are never taken: a failed write removes its own.
pub fn is_abandoned_own(file: &str, owner: &str) -> bool {
    let Some(rest) = file
        .strip_prefix(TEMP_PREFIX)
        .and_then(|n| n.strip_prefix(owner))
        .and_then(|n| n.strip_suffix(TEMP_SUFFIX))
    else {
        return false;
    };
    let hex16 = |s: &str| s.len() == 16 && s.bytes().all(|b| b.is_ascii_hexdigit());
    if let Some(old) = rest.strip_prefix('-') {
        return hex16(old);
    }
    let Some((pid, nonce)) = rest.strip_prefix('@').and_then(|r| r.split_once('-')) else {
        return false;
    };
    let Ok(pid) = u32::from_str_radix(pid, 16) else {
        return false;
    };
    hex16(nonce) && pid != std::process::id() && !crate::process::exists(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_name_is_a_temp_name_of_its_owner_only() {
        let n = name("laptop");
        assert!(crate::fsutil::is_temp_name(std::ffi::OsStr::new(&n)));
        assert!(n.starts_with(".ccsync-laptop@"), "{n}");
        // This process writes it: not abandoned, by anyone's reading.
        assert!(!is_abandoned_own(&n, "laptop"));
        assert!(!is_abandoned_own(&n, "laptop-2"));
        assert!(!is_abandoned_own(&n, "lap"));
    }

    #[cfg(unix)]
    #[test]
    fn a_running_writers_temp_stays_and_a_gone_ones_goes() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let running = format!(".ccsync-me@{:x}-00000000000000a1.tmp", child.id());
        assert!(!is_abandoned_own(&running, "me"));
        child.kill().unwrap();
        child.wait().unwrap();
        assert!(is_abandoned_own(&running, "me"));
        assert!(!is_abandoned_own(&running, "other"));
        // Named by an older ccsync: its writer cannot be told, so it goes.
        assert!(is_abandoned_own(".ccsync-me-00000000000000a1.tmp", "me"));
        assert!(!is_abandoned_own(".ccsync-me-2-00000000000000a1.tmp", "me"));
        for odd in [
            ".ccsync-me@zz-00000000000000a1.tmp",
            ".ccsync-me@1-short.tmp",
            ".ccsync-me@-00000000000000a1.tmp",
            ".ccsync-me.tmp",
        ] {
            assert!(!is_abandoned_own(odd, "me"), "{odd}");
        }
    }
}
