//! Where an object store sync dir is (pure parsing), and how OpenDAL is
//! told so.

use std::fmt;

use opendal::Operator;
use opendal::services::{S3, Webdav};

/// `s3://BUCKET[/PREFIX]` or `webdav[s]://HOST[:PORT]/PATH`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectTarget {
    S3 {
        bucket: String,
        /// Without leading or trailing slashes; empty for the whole bucket.
        prefix: String,
    },
    WebDav {
        tls: bool,
        /// `host[:port]`.
        authority: String,
        /// Absolute, without a trailing slash.
        path: String,
    },
}

/// A WebDAV login (from `CCSYNC_WEBDAV_USER`/`CCSYNC_WEBDAV_PASSWORD` or
/// `~/.netrc`, read by the command that opens the transport).
#[derive(Clone, PartialEq, Eq)]
pub struct WebDavAuth {
    pub user: String,
    pub password: String,
}

impl fmt::Debug for WebDavAuth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WebDavAuth({:?}, ***)", self.user)
    }
}

impl ObjectTarget {
    /// `rest` is what follows `scheme://`.
    pub fn parse(scheme: &str, rest: &str) -> Result<Self, String> {
        let bad = |why: &str| format!("{scheme}://{rest}: {why}");
        if rest.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(bad("spaces and control characters are not allowed"));
        }
        let (head, path) = rest.split_once('/').unwrap_or((rest, ""));
        let path = path.trim_matches('/');
        if path.split('/').any(|p| p == ".." || p == ".") {
            return Err(bad("`.` and `..` are not allowed in the path"));
        }
        match scheme {
            "s3" => {
                let ok = (3..=63).contains(&head.len())
                    && head.bytes().all(|b| {
                        b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.'
                    });
                if !ok {
                    return Err(bad(
                        "a bucket name is 3 to 63 lowercase letters, digits, `-` and `.`",
                    ));
                }
                Ok(Self::S3 {
                    bucket: head.to_owned(),
                    prefix: path.to_owned(),
                })
            }
            "webdav" | "webdavs" => {
                let host_ok = !head.is_empty()
                    && !head.contains('@')
                    && head.bytes().all(|b| {
                        b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b':' | b'[' | b']')
                    });
                if !host_ok {
                    return Err(bad(
                        "expected webdav[s]://HOST[:PORT]/PATH; put the login in ~/.netrc or CCSYNC_WEBDAV_USER and CCSYNC_WEBDAV_PASSWORD, not in the URL",
                    ));
                }
                Ok(Self::WebDav {
                    tls: scheme == "webdavs",
                    authority: head.to_owned(),
                    path: format!("/{path}").trim_end_matches('/').to_owned(),
                })
            }
            _ => Err(bad("not an object store scheme")),
        }
    }

    pub fn is_webdav(&self) -> bool {
        matches!(self, Self::WebDav { .. })
    }

    /// The host a netrc entry is looked up by.
    pub fn host(&self) -> Option<&str> {
        match self {
            Self::WebDav { authority, .. } => Some(authority.rsplit_once(':').map_or(
                authority.as_str(),
                |(h, port)| {
                    if port.bytes().all(|b| b.is_ascii_digit()) {
                        h
                    } else {
                        authority
                    }
                },
            )),
            Self::S3 { .. } => None,
        }
    }

    /// OpenDAL's operator. S3 takes its credentials, region and endpoint
    /// the way the AWS tools do (`AWS_*` variables, `AWS_PROFILE`,
    /// `~/.aws/config` and `credentials`, `AWS_ENDPOINT_URL`), read by
    /// OpenDAL; path-style addressing, which every S3-alike serves.
    pub fn operator(&self, auth: Option<&WebDavAuth>) -> Result<Operator, String> {
        let built = match self {
            Self::S3 { bucket, prefix } => {
                Operator::new(S3::default().bucket(bucket).root(&format!("/{prefix}")))
                    .map(|b| b.finish())
            }
            Self::WebDav {
                tls,
                authority,
                path,
            } => {
                let scheme = if *tls { "https" } else { "http" };
                // Folders are made by the transport, once per store, before
                // uploads run at once: OpenDAL's own check before each write
                // costs a request, and two racing MKCOLs fail on some servers.
                let mut b = Webdav::default()
                    .endpoint(&format!("{scheme}://{authority}"))
                    .root(&format!("{path}/"))
                    .disable_create_dir(true);
                if let Some(auth) = auth {
                    b = b.username(&auth.user).password(&auth.password);
                }
                Operator::new(b).map(|b| b.finish())
            }
        };
        built.map_err(|e| match self {
            Self::S3 { .. } if e.kind() == opendal::ErrorKind::ConfigInvalid => format!(
                "{}; set AWS_REGION (any value for R2, B2 and MinIO) and, for a store that is not AWS, AWS_ENDPOINT_URL",
                e.message()
            ),
            _ => e.message().to_owned(),
        })
    }
}

impl fmt::Display for ObjectTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S3 { bucket, prefix } if prefix.is_empty() => write!(f, "s3://{bucket}"),
            Self::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            Self::WebDav {
                tls,
                authority,
                path,
            } => write!(
                f,
                "{}://{authority}{path}",
                if *tls { "webdavs" } else { "webdav" }
            ),
        }
    }
}

/// The login `netrc` (the text of a `.netrc` file) has for `host`, or its
/// `default` one. Tokens are whitespace-separated; `macdef` bodies (up to
/// a blank line) are skipped.
pub fn netrc_login(netrc: &str, host: &str) -> Option<WebDavAuth> {
    let mut tokens = Vec::new();
    let mut in_macro = false;
    for line in netrc.lines() {
        if in_macro {
            in_macro = !line.trim().is_empty();
            continue;
        }
        let mut words = line.split_whitespace();
        while let Some(w) = words.next() {
            if w == "macdef" {
                words.next();
                in_macro = true;
                break;
            }
            tokens.push(w);
        }
    }
    // Entries as (0: another machine, 1: the default, 2: this host),
    // login, password.
    let mut entries: Vec<(u8, Option<&str>, Option<&str>)> = Vec::new();
    let mut it = tokens.into_iter();
    while let Some(t) = it.next() {
        match (t, entries.last_mut()) {
            ("machine", _) => entries.push((2 * u8::from(it.next() == Some(host)), None, None)),
            ("default", _) => entries.push((1, None, None)),
            ("login", Some(e)) => e.1 = it.next(),
            ("password", Some(e)) => e.2 = it.next(),
            ("account", _) => drop(it.next()),
            _ => {}
        }
    }
    let login = |e: &(u8, Option<&str>, Option<&str>)| {
        Some(WebDavAuth {
            user: e.1?.to_owned(),
            password: e.2?.to_owned(),
        })
    };
    let first = |kind| entries.iter().find(|e| e.0 == kind);
    first(2).or_else(|| first(1)).and_then(login)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_and_webdav_targets() {
        assert_eq!(
            ObjectTarget::parse("s3", "my-bucket/team/sync/").unwrap(),
            ObjectTarget::S3 {
                bucket: "my-bucket".into(),
                prefix: "team/sync".into()
            }
        );
        let t = ObjectTarget::parse("s3", "my-bucket").unwrap();
        assert_eq!(t.to_string(), "s3://my-bucket");
        for bad in ["", "UPPER", "b", "bucket/../x", "bu cket"] {
            assert!(ObjectTarget::parse("s3", bad).is_err(), "{bad}");
        }
        let t = ObjectTarget::parse("webdavs", "dav.example.com:8443/remote.php/ccsync").unwrap();
        assert_eq!(t.host(), Some("dav.example.com"));
        assert_eq!(
            t.to_string(),
            "webdavs://dav.example.com:8443/remote.php/ccsync"
        );
        let t = ObjectTarget::parse("webdav", "127.0.0.1:8080").unwrap();
        assert_eq!(t.to_string(), "webdav://127.0.0.1:8080");
        assert!(ObjectTarget::parse("webdav", "me:pw@host/x").is_err());
    }

    #[test]
    fn netrc_logins_by_host_then_default() {
        let netrc = "machine other login a password b\n\
                     macdef init\nmachine dav login evil password evil\n\n\
                     machine dav.example.com\n  login me\n  password s3cret\n\
                     default login anon password x\n";
        let auth = netrc_login(netrc, "dav.example.com").unwrap();
        assert_eq!(
            (auth.user.as_str(), auth.password.as_str()),
            ("me", "s3cret")
        );
        assert_eq!(netrc_login(netrc, "dav").unwrap().user, "anon");
        assert_eq!(netrc_login("machine x login a", "x"), None);
    }
}
