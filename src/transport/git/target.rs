//! Where a git sync dir is (pure parsing): `git+ssh://`, `git+https://`,
//! `git+http://` or `git+file://` and the URL git is given, with an
//! optional `#branch`.

use std::fmt;

/// The branch the sync dir lives on unless the location names another.
pub const DEFAULT_BRANCH: &str = "ccsync";

/// `git+URL[#BRANCH]`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GitTarget {
    /// What git is given: `ssh://…`, `https://…`, `http://…` or `file:///…`.
    pub url: String,
    pub branch: String,
    /// The host, for messages; `None` for `file://`.
    pub host: Option<String>,
}

impl GitTarget {
    /// `rest` is what follows `git+` (`ssh://host/path#branch`).
    pub fn parse(rest: &str) -> Result<Self, String> {
        let shown = without_user(rest);
        let bad = |why: &str| format!("git+{shown}: {why}");
        if rest.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("spaces and control characters are not allowed"));
        }
        let (url, branch) = match rest.split_once('#') {
            Some((url, branch)) => (url, branch),
            None => (rest, DEFAULT_BRANCH),
        };
        if !is_branch_name(branch) {
            return Err(bad(
                "the branch after `#` is letters, digits, `.`, `_`, `-` and `/` (not starting with `-`, `.` or `/`, no `..`)",
            ));
        }
        let (scheme, after) = url
            .split_once("://")
            .ok_or_else(|| bad("expected git+ssh://, git+https://, git+http:// or git+file://"))?;
        let scheme = scheme.to_ascii_lowercase();
        let host = match scheme.as_str() {
            "ssh" | "https" | "http" => {
                let (authority, path) = after.split_once('/').unwrap_or((after, ""));
                if path.is_empty() {
                    return Err(bad(&format!(
                        "no repository path; write git+{scheme}://HOST/PATH/TO/REPO.git"
                    )));
                }
                Some(check_authority(&scheme, authority).map_err(|why| bad(&why))?)
            }
            "file" => {
                if !after.starts_with('/') {
                    return Err(bad("write git+file:///absolute/path/to/repo.git"));
                }
                None
            }
            other => {
                return Err(format!(
                    "git+{other}:// is not a git transport ccsync has; use git+ssh://, git+https://, git+http:// or git+file://"
                ));
            }
        };
        Ok(Self {
            url: format!("{scheme}://{after}"),
            branch: branch.to_owned(),
            host,
        })
    }

    /// A `file://` URL: git runs the other side here, as this user.
    pub fn is_local(&self) -> bool {
        self.host.is_none()
    }

    /// `refs/heads/<branch>`.
    pub fn branch_ref(&self) -> String {
        format!("refs/heads/{}", self.branch)
    }
}

/// The location with any user info before the host cut to `…@`, for
/// messages about a location that is refused (it may hold a token).
fn without_user(rest: &str) -> String {
    let Some((scheme, after)) = rest.split_once("://") else {
        return rest.to_owned();
    };
    let end = after.find(['/', '#']).unwrap_or(after.len());
    match after[..end].rsplit_once('@') {
        Some((_, host)) => format!("{scheme}://…@{host}{}", &after[end..]),
        None => rest.to_owned(),
    }
}

/// `[user@]host[:port]`: the host, or why not. A password is refused: the
/// location is stored in config.toml, and git has credential helpers. Over
/// http(s) no user info at all (it is where tokens go), and no `%` (an
/// escape could hide anything).
fn check_authority(scheme: &str, authority: &str) -> Result<String, String> {
    if authority.contains('%') {
        return Err("`%` is not allowed before the path; write the host plainly".into());
    }
    let (user, hostport) = match authority.rsplit_once('@') {
        Some((user, hostport)) => (Some(user), hostport),
        None => (None, authority),
    };
    if user.is_some() && scheme != "ssh" {
        return Err(format!(
            "user info in a git+{scheme}:// URL would be stored in config.toml (and is where tokens go); write git+{scheme}://HOST/PATH and give the login to git: a credential helper (`git config --global credential.helper …`), or the user name with `git config --global credential.https://HOST.username NAME`"
        ));
    }
    if let Some(user) = user {
        if user.contains(':') {
            return Err(
                "a password in the URL would be stored in config.toml; use a git credential helper (or ~/.netrc) instead".into(),
            );
        }
        if user.is_empty() || user.starts_with('-') {
            return Err(format!(
                "{user:?} is not a user name git can be given safely"
            ));
        }
    }
    let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
        let (host, after) = v6
            .split_once(']')
            .ok_or("an IPv6 address needs its closing `]`")?;
        (host, after.strip_prefix(':'))
    } else {
        match hostport.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (hostport, None),
        }
    };
    if let Some(port) = port
        && port.parse::<u16>().is_err()
    {
        return Err(format!(
            "port {port:?} is not a number (git+{scheme}://HOST:PORT/PATH)"
        ));
    }
    let host_ok = !host.is_empty()
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'));
    if !host_ok {
        return Err(format!(
            "{host:?} is not a host name git can be given safely"
        ));
    }
    Ok(host.to_owned())
}

/// A branch name `git check-ref-format` takes, in a plainer alphabet.
fn is_branch_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 200
        && !s.starts_with(['-', '.', '/'])
        && !s.ends_with(['/', '.'])
        && !s.ends_with(".lock")
        && !s.contains("..")
        && !s.contains("//")
        && !s.contains("/.")
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-' | b'/'))
}

impl fmt::Display for GitTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "git+{}", self.url)?;
        if self.branch != DEFAULT_BRANCH {
            write!(f, "#{}", self.branch)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locations_parse_and_print_back() {
        let t = GitTarget::parse("ssh://git@host.example:2222/srv/ccsync.git").unwrap();
        assert_eq!(t.url, "ssh://git@host.example:2222/srv/ccsync.git");
        assert_eq!(
            (t.branch.as_str(), t.host.as_deref()),
            ("ccsync", Some("host.example"))
        );
        assert_eq!(
            t.to_string(),
            "git+ssh://git@host.example:2222/srv/ccsync.git"
        );
        let t = GitTarget::parse("https://github.com/me/sessions.git#sync/laptop").unwrap();
        assert_eq!(t.branch_ref(), "refs/heads/sync/laptop");
        assert_eq!(
            t.to_string(),
            "git+https://github.com/me/sessions.git#sync/laptop"
        );
        let t = GitTarget::parse("file:///srv/ccsync.git").unwrap();
        assert_eq!((t.url.as_str(), t.host), ("file:///srv/ccsync.git", None));
        let t = GitTarget::parse("SSH://[::1]:22/x.git").unwrap();
        assert_eq!(
            (t.url.as_str(), t.host.as_deref()),
            ("ssh://[::1]:22/x.git", Some("::1"))
        );
        let t = GitTarget::parse("ssh://host/srv/x.git#ccsync").unwrap();
        assert_eq!(t.to_string(), "git+ssh://host/srv/x.git");
    }

    #[test]
    fn what_git_could_misread_is_refused() {
        for (bad, why) in [
            ("ssh://-oProxyCommand=x/r", "safely"),
            ("ssh://host", "no repository path"),
            ("ssh://host:22x/r", "not a number"),
            ("https://me:secret@host/r.git", "credential helper"),
            ("https://ghp_TOKEN@host/r.git", "credential helper"),
            ("ssh://me:secret@host/r.git", "password"),
            ("https://host%2fx/r.git", "`%`"),
            ("ssh://u%40x@host/r.git", "`%`"),
            ("file://host/r.git", "git+file:///absolute"),
            ("ftp://host/r.git", "not a git transport"),
            ("ssh://host/r.git#-x", "branch"),
            ("ssh://host/r.git#a..b", "branch"),
            ("ssh://host/r.git#x.lock", "branch"),
            ("ssh://host/r .git", "spaces"),
            ("host:r.git", "expected git+ssh://"),
        ] {
            let e = GitTarget::parse(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
            assert!(!e.contains("secret") && !e.contains("TOKEN"), "{e}");
        }
    }
}
