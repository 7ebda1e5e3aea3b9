//! Where an ssh sync dir is: `ssh://[user@]host[:port]/abs/path` or
//! `[user@]host:path`, checked so that nothing in it can reach ssh as an
//! option or a shell as code.

/// `ssh://[user@]host[:port]/abs/path` or `[user@]host:path`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SshTarget {
    pub user: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    /// Absolute, or relative to the remote home; empty for the home itself.
    pub path: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TargetError(String);

impl SshTarget {
    /// `ssh://[user@]host[:port]/absolute/path`.
    pub fn from_url(rest: &str) -> Result<Self, TargetError> {
        let (authority, path) = rest.split_once('/').ok_or_else(|| {
            TargetError(format!(
                "ssh://{rest} has no path; write ssh://host/absolute/path"
            ))
        })?;
        let (user, hostport) = split_user(authority);
        let (host, port) = match hostport.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || hostport.starts_with('[') => {
                let port = p.parse().map_err(|_| {
                    TargetError(format!("port {p:?} in ssh://{rest} is not a number"))
                })?;
                (h, Some(port))
            }
            _ => (hostport, None),
        };
        let host = host.trim_start_matches('[').trim_end_matches(']');
        Self::new(
            user,
            host,
            port,
            format!("/{}", path.trim_start_matches('/')),
        )
    }

    /// `[user@]host:path`.
    pub fn from_scp(s: &str) -> Result<Self, TargetError> {
        let (authority, path) = s.split_once(':').expect("scp form has a colon");
        let (user, host) = split_user(authority);
        let path = path
            .strip_prefix("~/")
            .unwrap_or(if path == "~" { "" } else { path });
        Self::new(user, host, None, path.to_owned())
    }

    fn new(
        user: Option<&str>,
        host: &str,
        port: Option<u16>,
        path: String,
    ) -> Result<Self, TargetError> {
        let bad = |s: &str| {
            s.is_empty()
                || s.starts_with('-')
                || s.chars().any(|c| c.is_whitespace() || c.is_control())
        };
        if bad(host) || user.is_some_and(bad) {
            return Err(TargetError(format!(
                "{host:?} is not a host name ssh can be given safely (empty, starting with '-', or with spaces)"
            )));
        }
        if path.contains('\0') {
            return Err(TargetError("the remote path contains NUL".into()));
        }
        Ok(Self {
            user: user.map(str::to_owned),
            host: host.to_owned(),
            port,
            path,
        })
    }

    /// `rel`, a path inside the sync dir, as the user would write it.
    pub fn join(&self, rel: &str) -> String {
        let rel = rel.trim_start_matches("./");
        if self.path.is_empty() {
            return format!("{}:{rel}", self.destination());
        }
        format!("{}/{rel}", self.to_string().trim_end_matches('/'))
    }

    /// `[user@]host`, as ssh takes it.
    pub fn destination(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{}", self.host),
            None => self.host.clone(),
        }
    }
}

impl std::fmt::Display for SshTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.port {
            Some(port) => write!(
                f,
                "ssh://{}:{port}/{}",
                self.destination(),
                self.path.trim_start_matches('/')
            ),
            None => write!(f, "{}:{}", self.destination(), self.path),
        }
    }
}

fn split_user(authority: &str) -> (Option<&str>, &str) {
    match authority.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, authority),
    }
}

/// Quotes a word for a POSIX shell.
pub fn shell_quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    #[test]
    fn targets() {
        let t = SshTarget::from_url("alice@host.example:2222/srv/sync").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.port, t.path.as_str()),
            (Some("alice"), "host.example", Some(2222), "/srv/sync")
        );
        let t = SshTarget::from_url("host/srv/it's $(x)").unwrap();
        assert_eq!((t.port, t.path.as_str()), (None, "/srv/it's $(x)"));
        let t = SshTarget::from_url("[::1]:22/x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", Some(22)));
        let t = SshTarget::from_scp("bob@box:sync/ccsync").unwrap();
        assert_eq!(
            (t.user.as_deref(), t.host.as_str(), t.path.as_str()),
            (Some("bob"), "box", "sync/ccsync")
        );
        assert_eq!(SshTarget::from_scp("box:~/s").unwrap().path, "s");
        assert_eq!(SshTarget::from_scp("box:").unwrap().path, "");
        for bad in ["-oProxyCommand=x:/p", "a b:/p", ":/p"] {
            assert!(SshTarget::from_scp(bad).is_err(), "{bad}");
        }
        assert!(SshTarget::from_url("host").is_err());
        assert!(SshTarget::from_url("host:abc/x").is_err());
    }

    #[test]
    fn paths_inside_read_as_written() {
        let at = |s: &str| SshTarget::from_scp(s).unwrap().join("./git=x/a.ccsync");
        assert_eq!(at("box:"), "box:git=x/a.ccsync");
        assert_eq!(at("me@box:/srv/s/"), "me@box:/srv/s/git=x/a.ccsync");
        assert_eq!(at("box:s"), "box:s/git=x/a.ccsync");
        let url = SshTarget::from_url("box:2222/srv").unwrap();
        assert_eq!(url.join("git=x"), "ssh://box:2222/srv/git=x");
    }

    #[test]
    fn quoting_survives_a_shell() {
        for s in [
            "plain",
            "it's $(touch pwned) here",
            "a;b`c`\"d\"\\e",
            "",
            "'",
        ] {
            let out = Command::new("sh")
                .arg("-c")
                .arg(format!("printf %s {}", shell_quote(s)))
                .output()
                .unwrap();
            assert_eq!(String::from_utf8(out.stdout).unwrap(), s);
        }
    }
}
