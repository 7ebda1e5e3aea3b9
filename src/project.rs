//! Which project a working directory belongs to, named so that every checkout
//! of one repository on every machine gets the same key.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};

use crate::names::RelPath;

/// `git:<host>/<path>` from the repository's remote, or `name:<directory>`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ProjectKey(String);

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "project key {0:?} is not valid: it must be `git:<host>/<path>` or `name:<dir>` without control characters, at most 1024 bytes"
)]
pub struct KeyError(String);

impl ProjectKey {
    pub const MAX_LEN: usize = 1024;

    /// Checks a key that came from outside (a bundle).
    pub fn parse(s: &str) -> Result<Self, KeyError> {
        let rest = s.strip_prefix("git:").or_else(|| s.strip_prefix("name:"));
        // Keys only ever become escaped folder names, but one that reads like
        // a path trick is refused outright.
        let ok = rest
            .is_some_and(|r| !r.is_empty() && !r.split(['/', '\\']).any(|c| c == "." || c == ".."))
            && s.len() <= Self::MAX_LEN
            && !s.chars().any(char::is_control);
        if ok {
            Ok(Self(s.to_owned()))
        } else {
            Err(KeyError(s.chars().take(100).collect()))
        }
    }

    /// The key for a git remote URL; `None` when the URL has no path or
    /// would make a key that does not pass [`ProjectKey::parse`]. The path
    /// is lowercased on the forges in [`CASE_INSENSITIVE_HOSTS`].
    pub fn from_remote(url: &str) -> Option<Self> {
        Self::from_remote_with(url, &CaseFolding::default())
    }

    /// The same, with the user's list of case-insensitive hosts too.
    pub fn from_remote_with(url: &str, folding: &CaseFolding) -> Option<Self> {
        let key = Self::parse(&format!("git:{}", normalize_remote(url)?)).ok()?;
        Some(folding.fold(&key))
    }

    pub fn from_dir_name(name: &str) -> Self {
        Self::parse(&format!("name:{name}")).unwrap_or_else(|_| Self("name:unnamed".into()))
    }

    /// Keys written by other tools to the v1 format carry the raw remote
    /// (`git:https://github.com/you/app.git`); bring them to this form.
    pub fn normalize_foreign(s: &str) -> Result<Self, KeyError> {
        if let Some(url) = s.strip_prefix("git:")
            && (url.contains("://") || url.contains('@'))
            && let Some(key) = Self::from_remote(url)
        {
            return Ok(key);
        }
        Self::parse(s)
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ProjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Forges that treat owner and repository names case-insensitively:
/// `github.com/Acme/Widget` and `github.com/acme/widget` are one repository
/// there, so one project here.
pub const CASE_INSENSITIVE_HOSTS: [&str; 6] = [
    "github.com",
    "gitlab.com",
    "bitbucket.org",
    "codeberg.org",
    "dev.azure.com",
    "ssh.dev.azure.com",
];

/// Which hosts' paths are folded to lower case in project keys: the
/// well-known forges, and hosts the user lists (`case_insensitive_hosts`
/// in config.toml).
#[derive(Debug, Clone, Default)]
pub struct CaseFolding {
    extra: Vec<String>,
}

impl CaseFolding {
    pub fn with_hosts(hosts: &[String]) -> Self {
        Self {
            extra: hosts.iter().map(|h| h.to_ascii_lowercase()).collect(),
        }
    }

    fn folds(&self, host: &str) -> bool {
        CASE_INSENSITIVE_HOSTS.contains(&host) || self.extra.iter().any(|h| h == host)
    }

    /// `key` as this machine spells it: lowercased when it is a git key on
    /// a case-insensitive host. Keys from other machines (or older ccsync
    /// builds) go through this before they are compared.
    pub fn fold(&self, key: &ProjectKey) -> ProjectKey {
        match key.0.strip_prefix("git:").and_then(|r| r.split_once('/')) {
            Some((host, _)) if self.folds(host) => ProjectKey(key.0.to_ascii_lowercase()),
            _ => key.clone(),
        }
    }
}

/// How project keys from other machines map onto this machine's: folded as
/// this machine folds its own, then through the user's `[aliases]`.
#[derive(Debug, Clone, Default)]
pub struct KeyMap {
    pub folding: CaseFolding,
    pub aliases: HashMap<ProjectKey, ProjectKey>,
}

impl KeyMap {
    /// The key this machine knows `key` by.
    pub fn local(&self, key: &ProjectKey) -> ProjectKey {
        let folded = self.folding.fold(key);
        self.aliases.get(&folded).cloned().unwrap_or(folded)
    }

    /// Of `candidates`, the key most like `key`: the same repository name
    /// first, then the fewest edits.
    pub fn closest<'a>(key: &ProjectKey, candidates: &'a [ProjectKey]) -> Option<&'a ProjectKey> {
        let name = |k: &ProjectKey| last_component(k.as_str()).to_ascii_lowercase();
        candidates.iter().min_by_key(|c| {
            (
                name(c) != name(key),
                strsim::levenshtein(&c.as_str().to_lowercase(), &key.as_str().to_lowercase()),
            )
        })
    }
}

/// `<host>/<path>`: scheme, user, password or token, port, query and a
/// trailing `.git` or `/` removed; host lowercased.
fn normalize_remote(url: &str) -> Option<String> {
    let url = url.trim();
    let url = url.split(['?', '#']).next().unwrap_or(url);
    let (host, path) = if let Some((scheme, rest)) = url.split_once("://") {
        if scheme.eq_ignore_ascii_case("file") {
            ("", rest)
        } else {
            // Userinfo ends at the last '@' before the path; a password may
            // itself hold '@' or '/', so look for it in the whole string.
            let after_user = match rest.rfind('@') {
                Some(at) if !rest[..at].contains('/') || rest[..at].contains(':') => {
                    &rest[at + 1..]
                }
                _ => rest,
            };
            let (authority, path) = after_user.split_once('/').unwrap_or((after_user, ""));
            (authority, path)
        }
    } else if let Some((authority, path)) = scp_like(url) {
        (authority, path)
    } else {
        ("", url)
    };
    let host = strip_port(host.rsplit('@').next().unwrap_or(host)).to_ascii_lowercase();
    let mut path = path.trim_matches('/').to_owned();
    loop {
        let trimmed = path.trim_end_matches('/');
        let trimmed = trimmed.strip_suffix(".git").unwrap_or(trimmed);
        if trimmed.len() == path.len() {
            break;
        }
        path = trimmed.to_owned();
    }
    let path: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    if path.is_empty() {
        return None;
    }
    Some(if host.is_empty() {
        format!("/{}", path.join("/"))
    } else {
        format!("{host}/{}", path.join("/"))
    })
}

/// `[user@]host:path`, but not a Windows drive (`C:\x`) or a local path.
fn scp_like(url: &str) -> Option<(&str, &str)> {
    let colon = url.find(':')?;
    let slash = url.find('/').unwrap_or(usize::MAX);
    let authority = &url[..colon];
    (colon < slash && authority.len() > 1 && !authority.contains('\\'))
        .then(|| (authority, &url[colon + 1..]))
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_inclusive(']').next().unwrap_or(host);
    }
    host.split(':').next().unwrap_or(host)
}

/// Where a working directory sits within its project.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Placement {
    pub key: ProjectKey,
    /// The repository's work tree, or the directory itself outside git.
    pub root: PathBuf,
    pub relative: RelPath,
}

/// Resolves working directories to projects, opening each repository once.
#[derive(Default)]
pub struct Resolver {
    repos: HashMap<PathBuf, Option<(PathBuf, Option<ProjectKey>)>>,
    /// Each working directory placed so far: most sessions of a project
    /// share one, and looking again costs a stat per session.
    placed: HashMap<String, Placement>,
    folding: CaseFolding,
}

impl Resolver {
    pub fn new() -> Self {
        Self::default()
    }

    /// Folds the paths of `folding`'s hosts as well as the forges'.
    pub fn with_folding(folding: CaseFolding) -> Self {
        Self {
            folding,
            ..Self::default()
        }
    }

    /// The project of `cwd`. The directory need not exist any more: the
    /// nearest existing ancestor is asked for its repository, and outside a
    /// repository the directory's own name is the key. A path from another
    /// OS (`C:\x` recorded on Windows) is keyed by its last component.
    pub fn place(&mut self, cwd: &str) -> Placement {
        if let Some(hit) = self.placed.get(cwd) {
            return hit.clone();
        }
        let placement = self.place_anew(cwd);
        self.placed.insert(cwd.to_owned(), placement.clone());
        placement
    }

    fn place_anew(&mut self, cwd: &str) -> Placement {
        let path = Path::new(cwd);
        if path.is_absolute()
            && let Some(existing) = path.ancestors().find(|p| p.is_dir())
            && let Some((workdir, key)) = self.repo_of(existing)
            && let Some(relative) = RelPath::between(&workdir, path)
        {
            let key = key.unwrap_or_else(|| {
                ProjectKey::from_dir_name(&last_component(&workdir.to_string_lossy()))
            });
            return Placement {
                key,
                root: workdir,
                relative,
            };
        }
        Placement {
            key: ProjectKey::from_dir_name(&last_component(cwd)),
            root: path.to_path_buf(),
            relative: RelPath::default(),
        }
    }

    fn repo_of(&mut self, dir: &Path) -> Option<(PathBuf, Option<ProjectKey>)> {
        if let Some(hit) = self.repos.get(dir) {
            return hit.clone();
        }
        let found = git2::Repository::discover(dir).ok().and_then(|repo| {
            let workdir = repo.workdir()?;
            let workdir = workdir
                .canonicalize()
                .unwrap_or_else(|_| workdir.to_path_buf());
            Some((workdir, remote_key(&repo, &self.folding)))
        });
        self.repos.insert(dir.to_path_buf(), found.clone());
        found
    }
}

/// The key of `origin`, else of the only remote.
fn remote_key(repo: &git2::Repository, folding: &CaseFolding) -> Option<ProjectKey> {
    let remote = match repo.find_remote("origin") {
        Ok(r) => r,
        Err(_) => {
            let names = repo.remotes().ok()?;
            let mut names = names.iter().flatten();
            let only = names.next()?;
            if names.next().is_some() {
                return None;
            }
            repo.find_remote(only).ok()?
        }
    };
    ProjectKey::from_remote_with(remote.url()?, folding)
}

fn last_component(path: &str) -> String {
    path.trim_end_matches(['/', '\\'])
        .rsplit(['/', '\\'])
        .next()
        .filter(|s| !s.is_empty())
        .unwrap_or("root")
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(url: &str) -> String {
        ProjectKey::from_remote(url)
            .map(|k| k.0)
            .unwrap_or_default()
    }

    #[test]
    fn forges_that_ignore_case_give_one_key() {
        assert_eq!(
            key("git@github.com:Acme/Widget.git"),
            key("https://github.com/acme/widget")
        );
        assert_eq!(
            key("https://GitLab.com/Group/Sub/Repo"),
            "git:gitlab.com/group/sub/repo"
        );
        // Elsewhere case is kept: a self-hosted server may tell them apart.
        assert_eq!(
            key("git@git.example.org:Acme/Widget"),
            "git:git.example.org/Acme/Widget"
        );
        let mine = CaseFolding::with_hosts(&["Git.Example.org".into()]);
        assert_eq!(
            ProjectKey::from_remote_with("git@git.example.org:Acme/Widget", &mine)
                .unwrap()
                .as_str(),
            "git:git.example.org/acme/widget"
        );
        // A key an older build wrote folds to today's.
        let old = ProjectKey::parse("git:github.com/Acme/Widget").unwrap();
        assert_eq!(
            CaseFolding::default().fold(&old).as_str(),
            "git:github.com/acme/widget"
        );
        let named = ProjectKey::parse("name:MyApp").unwrap();
        assert_eq!(CaseFolding::default().fold(&named), named);
    }

    #[test]
    fn remote_forms_agree() {
        let want = "git:github.com/acme/widget";
        for url in [
            "git@github.com:acme/widget.git",
            "ssh://git@github.com/acme/widget",
            "ssh://git@github.com:22/acme/widget.git/",
            "https://github.com/acme/widget",
            "https://github.com/acme/widget.git",
            "https://GitHub.COM/acme/widget/",
            "git+ssh://git@github.com/acme/widget.git",
            "git://github.com/acme/widget.git",
            "github.com:acme/widget",
        ] {
            assert_eq!(key(url), want, "{url}");
        }
    }

    #[test]
    fn credentials_never_reach_the_key() {
        for url in [
            "https://user:ghp_SECRETtoken123@github.com/acme/widget.git",
            "https://x-access-token:SECRET@github.com/acme/widget",
            "https://oauth2:SE/CR@ET@github.com/acme/widget",
            "https://SECRET@github.com/acme/widget?token=SECRET",
            "https://github.com/acme/widget#SECRET",
        ] {
            let k = key(url);
            assert_eq!(k, "git:github.com/acme/widget", "{url}");
            assert!(!k.contains("SECRET") && !k.contains("SE"), "{url}");
        }
    }

    #[test]
    fn other_remotes() {
        assert_eq!(key("/srv/git/widget.git"), "git:/srv/git/widget");
        assert_eq!(key("file:///srv/git/widget.git"), "git:/srv/git/widget");
        assert_eq!(key("ssh://git@[::1]:2222/r.git"), "git:[::1]/r");
        assert_eq!(
            key("https://gitlab.com/group/sub/proj.git"),
            "git:gitlab.com/group/sub/proj"
        );
        assert_eq!(key("https://github.com/"), "");
    }

    #[test]
    fn foreign_v1_keys_are_normalised() {
        let k = ProjectKey::normalize_foreign("git:https://github.com/you/myapp.git").unwrap();
        assert_eq!(k.as_str(), "git:github.com/you/myapp");
        let k = ProjectKey::normalize_foreign("git:github.com/you/myapp").unwrap();
        assert_eq!(k.as_str(), "git:github.com/you/myapp");
        assert!(ProjectKey::normalize_foreign("path:/x").is_err());
        assert!(ProjectKey::parse("name:").is_err());
        assert!(ProjectKey::parse("name:a\nb").is_err());
        for bad in [
            "name:..",
            "git:host/../../etc",
            "name:a\\..",
            "git:/./x",
            "other:x",
        ] {
            assert!(ProjectKey::parse(bad).is_err(), "{bad}");
        }
        assert!(ProjectKey::parse("name:my..app").is_ok());
        assert!(ProjectKey::parse("name:a\\b").is_ok());
        // Found by the fuzzer: normalising must not make an invalid key.
        assert!(ProjectKey::from_remote("git@host:../x.git").is_none());
        assert_eq!(ProjectKey::from_dir_name("..").as_str(), "name:unnamed");
    }

    #[test]
    fn names_of_foreign_and_missing_paths() {
        let mut r = Resolver::new();
        let p = r.place(r"C:\Users\eduar\.claude");
        assert_eq!(p.key.as_str(), "name:.claude");
        assert!(p.relative.is_root());
        let p = r.place("/definitely/not/here/myapp");
        assert_eq!(p.key.as_str(), "name:myapp");
    }

    #[test]
    fn git_checkout_and_subdirectory() {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().canonicalize().unwrap().join("w");
        let repo = git2::Repository::init(&root).unwrap();
        std::fs::create_dir_all(root.join("sub/dir")).unwrap();
        let mut r = Resolver::new();
        let cwd = root.join("sub/dir");
        let p = r.place(cwd.to_str().unwrap());
        assert_eq!(p.key.as_str(), "name:w", "no remote: directory name");
        assert_eq!(p.root, root);
        assert_eq!(p.relative.as_str(), "sub/dir");

        repo.remote("upstream", "git@github.com:acme/widget.git")
            .unwrap();
        let mut r = Resolver::new();
        assert_eq!(
            r.place(cwd.to_str().unwrap()).key.as_str(),
            "git:github.com/acme/widget"
        );
        repo.remote("origin", "https://example.org/other/repo")
            .unwrap();
        let mut r = Resolver::new();
        assert_eq!(
            r.place(cwd.to_str().unwrap()).key.as_str(),
            "git:example.org/other/repo"
        );
        // A deleted subdirectory still belongs to the checkout.
        let gone = root.join("sub/gone/deeper");
        let p = r.place(gone.to_str().unwrap());
        assert_eq!(p.relative.as_str(), "sub/gone/deeper");
    }
}
