//! One push of a commit to the branch, with a lease on the tip it was
//! built on, and how it ended; the pause between tries.

use std::time::Duration;

use super::GitTransport;
use super::run::remote_said;
use crate::transport::TransportError;

/// How a push ended.
pub(super) enum Pushed {
    Done,
    /// Rejected: the branch moved, or the server refused the update
    /// (`remote`: the server's side refused it, as when another push holds
    /// the branch's lock or a hook said no).
    Rejected {
        why: String,
        remote: bool,
    },
}

/// What a push said about the branch in `--porcelain`: done, rejected,
/// or nothing (the push failed before it got that far).
fn push_status(stdout: &[u8], branch_ref: &str) -> Option<Pushed> {
    let text = String::from_utf8_lossy(stdout);
    text.lines().find_map(|line| {
        let mut fields = line.splitn(3, '\t');
        let (flag, refs, summary) = (fields.next()?, fields.next()?, fields.next().unwrap_or(""));
        if !refs.ends_with(&format!(":{branch_ref}")) {
            return None;
        }
        Some(match flag {
            "!" => Pushed::Rejected {
                why: summary.trim_start_matches(['[', ' ']).replace(']', ""),
                remote: summary.starts_with("[remote rejected]"),
            },
            _ => Pushed::Done,
        })
    })
}

/// The pause before try `attempt` (from 0) after a lost race: doubling
/// from 25 ms up to 2 s, a random half of it, so machines that collided
/// come back at different times.
pub(super) fn backoff(attempt: u32) -> Duration {
    let full = 25u64.saturating_mul(1 << attempt.min(7)).min(2000);
    let jitter = uuid::Uuid::new_v4().as_u64_pair().0 % (full / 2 + 1);
    Duration::from_millis(full / 2 + jitter)
}

impl GitTransport {
    /// Pushes `commit` to the branch if the branch is still `expected`
    /// (`None`: if it does not exist yet). A rejection's reason carries
    /// what the server said (`remote:` lines).
    pub(super) fn push(
        &self,
        commit: &str,
        expected: Option<&str>,
    ) -> Result<Pushed, TransportError> {
        self.network.set(self.network.get() + 1);
        let branch_ref = self.target.branch_ref();
        let lease = format!("--force-with-lease={branch_ref}:{}", expected.unwrap_or(""));
        let refspec = format!("{commit}:{branch_ref}");
        let receive_pack;
        let mut args = vec!["push", "--porcelain", "--no-verify", "--no-signed"];
        if self.target.is_local() {
            receive_pack = format!("--receive-pack={}", self.git.local_pack("receive-pack"));
            args.push(&receive_pack);
        }
        args.extend([lease.as_str(), self.target.url.as_str(), &refspec]);
        let out = self.git.run_full(self.git.command(&args), None);
        let (stdout, stderr, failed) = match out {
            Ok((stdout, stderr)) => (stdout, stderr, None),
            Err(mut f) => (std::mem::take(&mut f.stdout), f.stderr.clone(), Some(f)),
        };
        match (push_status(&stdout, &branch_ref), failed) {
            (Some(Pushed::Rejected { mut why, remote }), _) => {
                if let Some(said) = remote_said(&stderr) {
                    why = format!("{why}; the server said: {said}");
                }
                Ok(Pushed::Rejected { why, remote })
            }
            (Some(status), _) => Ok(status),
            (None, None) => Ok(Pushed::Done),
            (None, Some(f)) => Err(self.unreachable("pushing to", &f)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn push_outcomes_are_read_from_porcelain() {
        let r = "refs/heads/ccsync";
        let ok = b"To file:///r\n*\tabc:refs/heads/ccsync\t[new branch]\nDone\n";
        assert!(matches!(push_status(ok, r), Some(Pushed::Done)));
        let stale = b"To file:///r\n!\tabc:refs/heads/ccsync\t[rejected] (stale info)\nDone\n";
        let Some(Pushed::Rejected { why, remote }) = push_status(stale, r) else {
            panic!()
        };
        assert_eq!(why, "rejected (stale info)");
        assert!(!remote);
        let locked = b"!\tabc:refs/heads/ccsync\t[remote rejected] (failed to update ref)\nDone\n";
        assert!(matches!(
            push_status(locked, r),
            Some(Pushed::Rejected { remote: true, .. })
        ));
        let other = b"To file:///r\n!\tabc:refs/heads/other\t[rejected] (stale info)\n";
        assert!(push_status(other, r).is_none());
    }

    #[test]
    fn backoff_grows_to_two_seconds_with_jitter() {
        assert!(backoff(0) <= Duration::from_millis(25));
        for _ in 0..20 {
            let d = backoff(30);
            assert!(d >= Duration::from_millis(1000) && d <= Duration::from_millis(2000));
        }
    }
}
