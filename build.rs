//! Names the commit a binary was built from in `ccsync --version`.
//!
//! Only a git checkout of ccsync itself has one: a crate tarball (or a copy
//! vendored inside another repository) says "unknown" rather than naming
//! someone else's commit, and builds without git installed.

use std::path::{Path, PathBuf};
use std::process::Command;

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let commit = match checkout(&dir) {
        Some(git) => {
            // HEAD moves on checkout; the branch it names moves on commit,
            // as a loose ref or, after `git gc`, in packed-refs.
            let mut watched = vec![git.dir.join("HEAD"), git.common.join("packed-refs")];
            if let Some(branch) = &git.branch {
                watched.push(git.common.join(branch));
            }
            for path in watched.iter().filter(|p| p.exists()) {
                println!("cargo:rerun-if-changed={}", path.display());
            }
            git.commit
        }
        None => "unknown".to_owned(),
    };
    println!("cargo:rustc-env=CCSYNC_COMMIT={commit}");
}

struct Checkout {
    /// This worktree's git dir (`.git`, or `.git/worktrees/<name>`).
    dir: PathBuf,
    /// Where refs live, shared by every worktree.
    common: PathBuf,
    /// `refs/heads/<name>`, unless HEAD is detached.
    branch: Option<String>,
    commit: String,
}

/// The checkout whose top is `dir`, if git is installed and it is one.
fn checkout(dir: &Path) -> Option<Checkout> {
    let top = git(dir, &["rev-parse", "--show-toplevel"])?;
    if Path::new(&top).canonicalize().ok()? != dir.canonicalize().ok()? {
        return None;
    }
    let absolute = |p: String| {
        let p = PathBuf::from(p);
        if p.is_absolute() { p } else { dir.join(p) }
    };
    Some(Checkout {
        dir: absolute(git(dir, &["rev-parse", "--git-dir"])?),
        common: absolute(git(dir, &["rev-parse", "--git-common-dir"])?),
        branch: git(dir, &["symbolic-ref", "-q", "HEAD"]),
        commit: git(dir, &["rev-parse", "--short", "HEAD"])?,
    })
}

fn git(dir: &Path, args: &[&str]) -> Option<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .output()
        .ok()?;
    let text = String::from_utf8(out.stdout).ok()?;
    let text = text.trim();
    (out.status.success() && !text.is_empty()).then(|| text.to_owned())
}
