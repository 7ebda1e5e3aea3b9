//! The scripts ccsync runs on the remote host under `sh -c`, kept as files
//! so shellcheck can read them. Paths and names reach them only as
//! positional parameters, never spliced into their text. They need a POSIX
//! shell, `find`, `stat` (GNU `-c` or BSD `-f`), `tar`, `mktemp` and `mv`.
//! Exit codes 3 and 4 say the sync dir is missing or cannot be written.

pub(super) const LIST: &str = include_str!("list.sh");
// `lib.sh` (the `skip` and `sweep` functions) goes before the scripts that
// use them.
pub(super) const FETCH: &str = concat!(include_str!("lib.sh"), include_str!("fetch.sh"));
pub(super) const STORE: &str = concat!(include_str!("lib.sh"), include_str!("store.sh"));
pub(super) const REMOVE: &str = concat!(include_str!("lib.sh"), include_str!("remove.sh"));
pub(super) const SWEEP: &str = concat!(include_str!("lib.sh"), include_str!("sweep.sh"));
pub(super) const PROBE: &str = include_str!("probe.sh");
pub(super) const CREATE: &str = include_str!("create.sh");

/// The scripts run here, on local folders, under each shell at hand and
/// with BSD's `stat` and `mv` standing in for GNU's.
#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use crate::transport::ObjectName;
    use crate::transport::ssh::protocol::{Skip, pack, parse_listing, split_stderr, unpack};
    use std::os::unix::fs::{PermissionsExt, symlink};
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};

    struct Shell {
        name: &'static str,
        program: Vec<String>,
        /// Put first in PATH.
        shims: Option<tempfile::TempDir>,
    }

    fn real(tool: &str) -> String {
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("command -v {tool}"))
            .output()
            .unwrap();
        String::from_utf8(out.stdout).unwrap().trim().to_owned()
    }

    /// BSD `stat` knows `-f` with `%z %m %N`, not `-c`; BSD `mv` knows
    /// `-h`, not `-T`.
    fn bsd_shims() -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: String| {
            let path = dir.path().join(name);
            std::fs::write(&path, text).unwrap();
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        };
        write(
            "stat",
            format!(
                "#!/bin/sh\n[ \"$1\" = -f ] || {{ echo \"stat: illegal option -- c\" >&2; exit 1; }}\n\
                 fmt=$(printf '%s' \"$2\" | sed 's/%z/%s/g; s/%m/%Y/g; s/%N/%n/g')\nshift 2\n\
                 exec {} -c \"$fmt\" \"$@\"\n",
                real("stat")
            ),
        );
        write(
            "mv",
            format!(
                "#!/bin/sh\n[ \"$1\" = -T ] && {{ echo \"mv: illegal option -- T\" >&2; exit 1; }}\n\
                 n=$#\nwhile [ \"$n\" -gt 0 ]; do a=$1; shift; n=$((n - 1)); [ \"$a\" = -h ] && a=-T; set -- \"$@\" \"$a\"; done\n\
                 exec {} \"$@\"\n",
                real("mv")
            ),
        );
        dir
    }

    fn shells() -> Vec<Shell> {
        let mut shells = vec![
            Shell {
                name: "sh",
                program: vec!["sh".into()],
                shims: None,
            },
            Shell {
                name: "sh with BSD stat and mv",
                program: vec!["sh".into()],
                shims: Some(bsd_shims()),
            },
        ];
        if !real("bash").is_empty() {
            shells.push(Shell {
                name: "bash --posix",
                program: vec!["bash".into(), "--posix".into()],
                shims: None,
            });
        }
        shells
    }

    struct Ran {
        code: Option<i32>,
        stdout: Vec<u8>,
        skips: Vec<Skip>,
        other: Vec<String>,
    }

    fn run(shell: &Shell, script: &str, args: &[&str], stdin: &[u8]) -> Ran {
        let mut cmd = Command::new(&shell.program[0]);
        cmd.args(&shell.program[1..])
            .arg("-c")
            .arg(script)
            .arg("ccsync")
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(shims) = &shell.shims {
            let path = std::env::var("PATH").unwrap_or_default();
            cmd.env("PATH", format!("{}:{path}", shims.path().display()));
        }
        let mut child = cmd.spawn().unwrap();
        let mut input = child.stdin.take().unwrap();
        let stdin = stdin.to_vec();
        let writer = std::thread::spawn(move || {
            use std::io::Write;
            let _ = input.write_all(&stdin);
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        let (skips, other) = split_stderr(&out.stderr);
        Ran {
            code: out.status.code(),
            stdout: out.stdout,
            skips,
            other,
        }
    }

    fn skip(path: &str, kind: &str, detail: &str) -> Skip {
        Skip {
            path: path.into(),
            kind: kind.into(),
            detail: detail.into(),
        }
    }

    /// The sync dir (with a name a shell would love to misread) and a
    /// folder outside it, holding a stale temp file and a file to protect.
    fn world() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let tmp = tempfile::tempdir().unwrap();
        let sync = tmp.path().join("it's $(touch x) `y` sync");
        let outside = tmp.path().join("outside");
        std::fs::create_dir_all(&sync).unwrap();
        std::fs::create_dir_all(&outside).unwrap();
        std::fs::write(outside.join("notes"), b"precious").unwrap();
        std::fs::write(outside.join(".ccsync-other-12345678"), b"victim").unwrap();
        set_old(&outside.join(".ccsync-other-12345678"));
        (tmp, sync, outside)
    }

    fn set_old(path: &Path) {
        let two_hours_ago = std::time::SystemTime::now() - std::time::Duration::from_secs(7200);
        std::fs::File::open(path)
            .unwrap()
            .set_modified(two_hours_ago)
            .unwrap();
    }

    fn contents(dir: &Path) -> Vec<(String, Vec<u8>)> {
        let mut out: Vec<(String, Vec<u8>)> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                (
                    e.file_name().to_string_lossy().into_owned(),
                    std::fs::read(e.path()).unwrap_or_default(),
                )
            })
            .collect();
        out.sort();
        out
    }

    fn hidden(dir: &Path) -> Vec<String> {
        let mut out: Vec<String> = contents(dir)
            .into_iter()
            .map(|(n, _)| n)
            .filter(|n| n.starts_with('.'))
            .collect();
        out.sort();
        out
    }

    #[test]
    fn remove_takes_files_and_never_anything_through_a_link() {
        for shell in shells() {
            let (_tmp, sync, outside) = world();
            std::fs::write(outside.join("y.ccsync"), b"not ours").unwrap();
            let before = contents(&outside);
            std::fs::create_dir_all(sync.join("git=a")).unwrap();
            std::fs::write(sync.join("git=a/x.ccsync"), b"ours").unwrap();
            symlink(&outside, sync.join("git=link")).unwrap();
            symlink(outside.join("y.ccsync"), sync.join("git=a/l.ccsync")).unwrap();
            let sync_arg = sync.to_str().unwrap();
            let ran = run(
                &shell,
                REMOVE,
                &[
                    sync_arg,
                    "git=a/x.ccsync",
                    "git=a/gone.ccsync",
                    "git=a/l.ccsync",
                    "git=link/y.ccsync",
                ],
                b"",
            );
            let what = shell.name;
            assert_eq!(ran.code, Some(0), "{what}: {:?}", ran.other);
            assert_eq!(
                String::from_utf8(ran.stdout).unwrap(),
                "./git=a/x.ccsync\n./git=a/gone.ccsync\n",
                "{what}"
            );
            assert_eq!(
                ran.skips,
                [
                    skip("git=a/l.ccsync", "link", "git=a/l.ccsync"),
                    skip("git=link/y.ccsync", "link", "git=link"),
                ],
                "{what}"
            );
            assert!(!sync.join("git=a/x.ccsync").exists());
            assert_eq!(contents(&outside), before, "{what}");
        }
    }

    #[test]
    fn store_moves_into_place_and_never_through_a_link() {
        for shell in shells() {
            let (tmp, sync, outside) = world();
            let before = contents(&outside);
            symlink(&outside, sync.join("git=link")).unwrap();
            std::fs::create_dir_all(sync.join("git=file")).unwrap();
            symlink(outside.join("notes"), sync.join("git=file/b.ccsync")).unwrap();
            std::fs::write(sync.join("git=notdir"), b"").unwrap();
            // Leftovers: this machine's (a folder, and a link), another
            // machine's whose name starts like this one's, a stale one.
            std::fs::create_dir_all(sync.join(".ccsync-me-abcdefgh/git=x")).unwrap();
            symlink(&outside, sync.join(".ccsync-me-zzzzzzzz")).unwrap();
            std::fs::create_dir_all(sync.join(".ccsync-me-2-abcdefgh")).unwrap();
            std::fs::create_dir_all(sync.join(".ccsync-old-11111111")).unwrap();
            set_old(&sync.join(".ccsync-old-11111111"));
            // This machine's other ccsync, storing right now (its shell
            // runs), and one killed mid-store (its shell is gone).
            let mut storing = std::process::Command::new("sleep")
                .arg("60")
                .spawn()
                .unwrap();
            let flying = format!(".ccsync-me@{}-abcdefgh", storing.id());
            std::fs::create_dir_all(sync.join(&flying).join("git=y")).unwrap();
            let mut killed = std::process::Command::new("true").spawn().unwrap();
            killed.wait().unwrap();
            let dead = format!(".ccsync-me@{}-abcdefgh", killed.id());
            std::fs::create_dir_all(sync.join(&dead).join("git=y")).unwrap();

            // A refused object last: the script still ends well (a loop
            // would otherwise return its last object's failure).
            let names = [
                "git=link/a.ccsync",
                "git=plain/c.ccsync",
                "git=notdir/d.ccsync",
                "machines/m.json",
                "git=file/b.ccsync",
            ];
            let staged = tmp.path().join("staged");
            std::fs::write(&staged, b"bundle").unwrap();
            let objects: Vec<(ObjectName, PathBuf)> = names
                .iter()
                .map(|n| {
                    let (d, f) = n.split_once('/').unwrap();
                    (ObjectName::parse(d, f).unwrap(), staged.clone())
                })
                .collect();
            let mut tar = Vec::new();
            pack(&mut tar, &objects).unwrap();
            let mut args = vec![sync.to_str().unwrap(), "me"];
            args.extend(names);
            let ran = run(&shell, STORE, &args, &tar);

            let what = shell.name;
            assert_eq!(ran.code, Some(0), "{what}: {:?}", ran.other);
            let stored: Vec<String> = parse_listing(&ran.stdout)
                .iter()
                .map(|o| format!("{} {}", o.name, o.size))
                .collect();
            assert_eq!(
                stored,
                ["git=plain/c.ccsync 6", "machines/m.json 6"],
                "{what}"
            );
            assert_eq!(
                ran.skips,
                [
                    skip("git=link/a.ccsync", "link", "git=link"),
                    skip("git=notdir/d.ccsync", "not-folder", "git=notdir"),
                    skip("git=file/b.ccsync", "link", "git=file/b.ccsync"),
                ],
                "{what}"
            );
            assert_eq!(contents(&outside), before, "{what}: written through a link");
            assert!(
                std::fs::symlink_metadata(sync.join("git=file/b.ccsync"))
                    .unwrap()
                    .is_symlink()
            );
            let mode = |p: &str| {
                std::fs::metadata(sync.join(p))
                    .unwrap()
                    .permissions()
                    .mode()
                    & 0o777
            };
            assert_eq!(
                (mode("git=plain"), mode("git=plain/c.ccsync")),
                (0o700, 0o600),
                "{what}"
            );
            assert_eq!(
                hidden(&sync),
                [".ccsync-me-2-abcdefgh", flying.as_str()],
                "{what}: leftovers"
            );
            storing.kill().unwrap();
            storing.wait().unwrap();
            assert!(!tmp.path().join("x").exists() && !sync.join("x").exists());
        }
    }

    #[test]
    fn fetch_sends_only_good_objects_and_says_why_not_the_others() {
        for shell in shells() {
            let (_tmp, sync, outside) = world();
            let a = sync.join("git=a");
            std::fs::create_dir_all(&a).unwrap();
            std::fs::write(a.join("ok.ccsync"), b"hello").unwrap();
            std::fs::write(a.join("big.ccsync"), b"0123456789").unwrap();
            symlink(outside.join("notes"), a.join("link.ccsync")).unwrap();
            std::fs::create_dir_all(a.join("dir.ccsync")).unwrap();
            symlink(&outside, sync.join("git=link")).unwrap();
            std::fs::write(outside.join("x.ccsync"), b"outside").unwrap();
            let asked = [
                "git=a/big.ccsync",
                "git=a/link.ccsync",
                "git=a/dir.ccsync",
                "git=a/gone.ccsync",
                "git=link/x.ccsync",
                "git=none/x.ccsync",
                "git=a/ok.ccsync",
            ];
            let mut args = vec![sync.to_str().unwrap().to_owned(), "5".to_owned()];
            args.extend(asked.iter().map(|n| format!("./{n}")));
            let args: Vec<&str> = args.iter().map(String::as_str).collect();
            let ran = run(&shell, FETCH, &args, b"");

            let what = shell.name;
            assert_eq!(ran.code, Some(0), "{what}: {:?}", ran.other);
            assert_eq!(
                ran.skips,
                [
                    skip("git=a/big.ccsync", "too-large", "10"),
                    skip("git=a/link.ccsync", "link", "./git=a/link.ccsync"),
                    skip("git=a/dir.ccsync", "not-file", "./git=a/dir.ccsync"),
                    skip("git=a/gone.ccsync", "missing", "./git=a/gone.ccsync"),
                    skip("git=link/x.ccsync", "link", "./git=link"),
                    skip("git=none/x.ccsync", "missing", "./git=none"),
                ],
                "{what}"
            );
            let names: Vec<ObjectName> = asked
                .iter()
                .map(|n| {
                    let (d, f) = n.split_once('/').unwrap();
                    ObjectName::parse(d, f).unwrap()
                })
                .collect();
            let mut found = vec![None; names.len()];
            let mut got = Vec::new();
            unpack(
                ran.stdout.as_slice(),
                &names,
                &mut |i, r| {
                    let mut b = Vec::new();
                    r.read_to_end(&mut b).unwrap();
                    got.push((i, b));
                },
                &mut found,
            )
            .unwrap();
            assert_eq!(got, [(6, b"hello".to_vec())], "{what}");
        }
    }

    #[test]
    fn list_names_links_instead_of_entering_them() {
        for shell in shells() {
            let (_tmp, sync, outside) = world();
            std::fs::create_dir_all(sync.join("git=a")).unwrap();
            std::fs::write(sync.join("git=a/ok.ccsync"), b"hello").unwrap();
            std::fs::write(sync.join("git=a/.half"), b"").unwrap();
            std::fs::create_dir_all(sync.join(".ccsync-me-abcdefgh/git=a")).unwrap();
            std::fs::write(sync.join(".ccsync-me-abcdefgh/git=a/t.ccsync"), b"").unwrap();
            symlink(outside.join("notes"), sync.join("git=a/link.ccsync")).unwrap();
            symlink(&outside, sync.join("git=link")).unwrap();
            symlink(&outside, sync.join(".ccsync-me-zzzzzzzz")).unwrap();
            let ran = run(&shell, LIST, &[sync.to_str().unwrap()], b"");

            let what = shell.name;
            assert_eq!(ran.code, Some(0), "{what}: {:?}", ran.other);
            let listed: Vec<String> = parse_listing(&ran.stdout)
                .iter()
                .map(|o| format!("{} {}", o.name, o.size))
                .collect();
            assert_eq!(listed, ["git=a/ok.ccsync 5"], "{what}");
            let mut refused: Vec<String> = ran.skips.iter().map(|s| s.path.clone()).collect();
            refused.sort();
            assert_eq!(refused, ["git=a/link.ccsync", "git=link"], "{what}");
            assert!(ran.skips.iter().all(|s| s.kind == "link"));
        }
    }

    #[test]
    fn a_missing_sync_dir_is_exit_3() {
        for shell in shells() {
            for script in [LIST, FETCH, STORE, PROBE] {
                let ran = run(&shell, script, &["/nonexistent/sync", "me"], b"");
                assert_eq!(ran.code, Some(3), "{}: {:?}", shell.name, ran.other);
            }
        }
    }
}
