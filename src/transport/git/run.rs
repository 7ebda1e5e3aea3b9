//! Running the system `git` on the local cache: the environment every call
//! shares (no prompts, no hooks, no user identity, ccsync's ssh options),
//! and what a failed call said, cut to the lines worth showing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// Variables that would point git at another repository, index or object
/// store than the cache (a ccsync run from inside a git hook inherits them).
const FOREIGN: &[&str] = &[
    "GIT_DIR",
    "GIT_WORK_TREE",
    "GIT_INDEX_FILE",
    "GIT_OBJECT_DIRECTORY",
    "GIT_ALTERNATE_OBJECT_DIRECTORIES",
    "GIT_COMMON_DIR",
    "GIT_NAMESPACE",
    "GIT_PREFIX",
    "GIT_QUARANTINE_PATH",
    "GIT_REPLACE_REF_BASE",
    "GIT_SHALLOW_FILE",
    "GIT_GRAFT_FILE",
];

/// The ssh options every git+ssh connection gets, as the ssh transport's
/// calls do: no prompt, a bounded connect, and keep-alives that drop a
/// dead connection in about 15 s.
const SSH_OPTIONS: &str =
    "-o BatchMode=yes -o ConnectTimeout=10 -o ServerAliveInterval=5 -o ServerAliveCountMax=3";

/// The committer (and author) address of every commit ccsync makes: how a
/// branch's tip is known for ccsync's.
pub(super) const EMAIL: &str = "ccsync@invalid";

/// How a git call that did not succeed ended.
#[derive(Debug)]
pub(super) struct Failed {
    pub code: Option<i32>,
    pub stdout: Vec<u8>,
    pub stderr: Vec<u8>,
    /// git could not be started at all.
    pub spawn: Option<std::io::Error>,
}

impl Failed {
    pub fn spawned(e: std::io::Error) -> Self {
        Self {
            code: None,
            stdout: Vec::new(),
            stderr: Vec::new(),
            spawn: Some(e),
        }
    }

    /// What git said, without its boilerplate: the lines that name the
    /// problem, joined, `fatal: `/`error: ` prefixes removed.
    pub fn said(&self) -> String {
        if let Some(e) = &self.spawn {
            return format!("cannot run git: {e}");
        }
        said(&self.stderr).unwrap_or_else(|| match self.code {
            Some(code) => format!("git failed (exit {code}) and gave no reason"),
            None => "git was ended by a signal".into(),
        })
    }

    /// Whether git was not there to run.
    pub fn no_git(&self) -> bool {
        self.spawn
            .as_ref()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::NotFound)
    }
}

/// The lines of git's stderr worth showing, at most three.
pub(super) fn said(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let generic = |l: &str| {
        l.starts_with("hint:")
            || l == "Please make sure you have the correct access rights"
            || l == "and the repository exists."
            || l.starts_with("error: failed to push some refs")
    };
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !generic(l))
        .collect();
    // "Could not read from remote repository" only says that what came
    // before it failed; it is the news only when nothing came before.
    let specific: Vec<&str> = lines
        .iter()
        .copied()
        .filter(|l| !l.ends_with("Could not read from remote repository."))
        .collect();
    let chosen = if specific.is_empty() { lines } else { specific };
    let cut: Vec<String> = chosen
        .iter()
        .take(3)
        .map(|l| {
            let l = l
                .strip_prefix("fatal: ")
                .or_else(|| l.strip_prefix("error: "))
                .unwrap_or(l);
            l.chars().take(300).collect()
        })
        .collect();
    (!cut.is_empty()).then(|| cut.join("; "))
}

/// git on one local repository (the cache), with the environment every
/// call shares.
pub(super) struct Git {
    dir: PathBuf,
    /// The ssh command ccsync was given, as a shell reads it; `None`: the
    /// user's own (`core.sshCommand`, `GIT_SSH`, or `ssh`), looked up at
    /// the first call.
    ssh_base: Option<String>,
    /// ssh's connection sharing options.
    mux: String,
    ssh_command: std::cell::OnceCell<String>,
    /// Seconds an HTTP transfer may stay under 1 KB/s before git gives up.
    low_speed_secs: u64,
    /// Whose commits these are (the machine's name).
    author: String,
}

impl Git {
    /// `ssh_base` is the ssh command to run, as a shell would read it
    /// (`None`: the one git would run for the user); `control_dir` a
    /// private folder for shared connections.
    pub fn new(
        dir: PathBuf,
        ssh_base: Option<String>,
        control_dir: Option<&Path>,
        low_speed_secs: u64,
        author: String,
    ) -> Self {
        let mux = match control_dir {
            Some(dir) => format!(
                " -o ControlMaster=auto -o ControlPersist=60 -o ControlPath={}",
                crate::transport::ssh::shell_quote(&dir.join("%C").to_string_lossy())
            ),
            None => " -o ControlMaster=no -o ControlPath=none".to_owned(),
        };
        Self {
            dir,
            ssh_base,
            mux,
            ssh_command: std::cell::OnceCell::new(),
            low_speed_secs,
            author,
        }
    }

    /// The ssh command git runs: ccsync's options after the base.
    fn ssh_command(&self) -> &str {
        self.ssh_command.get_or_init(|| {
            let base = self.ssh_base.clone().unwrap_or_else(|| self.users_ssh());
            format!("{base} {SSH_OPTIONS}{}", self.mux)
        })
    }

    /// The ssh git runs for the user when nothing is set for ccsync:
    /// `core.sshCommand` from the user's (and the system's) git config,
    /// else `GIT_SSH` (a program), else `ssh`. Read with the cache as the
    /// repository, so no project's config takes part.
    fn users_ssh(&self) -> String {
        let mut cmd = Command::new("git");
        for var in FOREIGN {
            cmd.env_remove(var);
        }
        let configured = cmd
            .env("GIT_DIR", &self.dir)
            .args(["config", "--get", "core.sshCommand"])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
            .filter(|c| !c.is_empty());
        configured
            .or_else(|| {
                std::env::var("GIT_SSH")
                    .ok()
                    .filter(|p| !p.trim().is_empty())
                    .map(|p| crate::transport::ssh::shell_quote(&p))
            })
            .unwrap_or_else(|| "ssh".to_owned())
    }

    /// For `file://` URLs, the command git runs on the other repository
    /// (`receive-pack` or `upload-pack`), told to run none of its hooks or
    /// configured commands: git does not pass `-c` to a local transport's
    /// other side, which would otherwise run them as this user.
    pub fn local_pack(&self, which: &str) -> String {
        let no_hooks = self.dir.join("no-hooks");
        format!(
            "git -c core.hooksPath={} -c core.alternateRefsCommand=true -c core.fsmonitor=false {which}",
            crate::transport::ssh::shell_quote(&no_hooks.to_string_lossy())
        )
    }
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// `git <args>` on the cache, reading nothing from the terminal.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new("git");
        for var in FOREIGN {
            cmd.env_remove(var);
        }
        let no_hooks = self.dir.join("no-hooks");
        cmd.env("GIT_DIR", &self.dir)
            // Never a prompt: a hook or watch has no one to answer it.
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GCM_INTERACTIVE", "never")
            .env("GIT_SSH_COMMAND", self.ssh_command())
            // No password prompt through a graphical helper either (git
            // before 2.46 asks SSH_ASKPASS despite GIT_TERMINAL_PROMPT);
            // a GIT_ASKPASS the user set is theirs to keep.
            .env_remove("SSH_ASKPASS")
            .env("SSH_ASKPASS_REQUIRE", "never")
            // What ccsync passes is OpenSSH's syntax: no probing with `-G`.
            .env("GIT_SSH_VARIANT", "ssh")
            // git's words are matched below ("couldn't find remote ref").
            .env("LC_ALL", "C")
            .env("LANGUAGE", "C")
            .env("GIT_AUTHOR_NAME", &self.author)
            .env("GIT_AUTHOR_EMAIL", EMAIL)
            .env("GIT_COMMITTER_NAME", &self.author)
            .env("GIT_COMMITTER_EMAIL", EMAIL)
            .arg("-c")
            .arg(format!("core.hooksPath={}", no_hooks.display()))
            .args(["-c", "credential.interactive=false"])
            .args(["-c", "core.askPass="])
            .args(["-c", "http.lowSpeedLimit=1000"])
            .arg("-c")
            .arg(format!("http.lowSpeedTime={}", self.low_speed_secs))
            // Housekeeping runs in the call that needs it, never left
            // running behind a finished command.
            .args(["-c", "gc.autoDetach=false"])
            .args(["-c", "maintenance.autoDetach=false"])
            .args(["-c", "commit.gpgSign=false"])
            .args(args)
            .stdin(Stdio::null());
        cmd
    }

    /// Runs `git <args>` with `input` on stdin; its stdout, or how it failed.
    pub fn run(&self, args: &[&str], input: Option<&[u8]>) -> Result<Vec<u8>, Failed> {
        self.run_with(self.command(args), input)
    }

    /// Runs `cmd` (made by `command`) with `input` on stdin.
    pub fn run_with(&self, cmd: Command, input: Option<&[u8]>) -> Result<Vec<u8>, Failed> {
        self.run_full(cmd, input).map(|(stdout, _)| stdout)
    }

    /// `run_with`, keeping what git said on stderr when it succeeded.
    pub fn run_full(
        &self,
        mut cmd: Command,
        input: Option<&[u8]>,
    ) -> Result<(Vec<u8>, Vec<u8>), Failed> {
        cmd.stdout(Stdio::piped()).stderr(Stdio::piped());
        if input.is_some() {
            cmd.stdin(Stdio::piped());
        }
        let mut child = cmd.spawn().map_err(Failed::spawned)?;
        let writer = match (input, child.stdin.take()) {
            (Some(bytes), Some(mut stdin)) => {
                let bytes = bytes.to_vec();
                Some(std::thread::spawn(move || stdin.write_all(&bytes)))
            }
            _ => None,
        };
        let out: Output = child.wait_with_output().map_err(Failed::spawned)?;
        if let Some(writer) = writer {
            // A git that stopped reading failed, and says why below.
            let _ = writer.join();
        }
        if out.status.success() {
            Ok((out.stdout, out.stderr))
        } else {
            Err(Failed {
                code: out.status.code(),
                stdout: out.stdout,
                stderr: out.stderr,
                spawn: None,
            })
        }
    }

    /// `run`, its output as text without the final newline.
    pub fn text(&self, args: &[&str], input: Option<&[u8]>) -> Result<String, Failed> {
        let out = self.run(args, input)?;
        Ok(String::from_utf8_lossy(&out).trim_end().to_owned())
    }
}

/// The `remote:` lines of git's stderr (what the server said, such as
/// why a hook refused a push), at most three.
pub(super) fn remote_said(stderr: &[u8]) -> Option<String> {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<String> = text
        .lines()
        .filter_map(|l| l.strip_prefix("remote:"))
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .take(3)
        .map(|l| l.chars().take(300).collect())
        .collect();
    (!lines.is_empty()).then(|| lines.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_askpass_helper_and_remote_lines_are_kept() {
        let tmp = tempfile::tempdir().unwrap();
        let git = Git::new(tmp.path().join("cache"), None, None, 30, "a".into());
        let cmd = git.command(&["--version"]);
        let envs: Vec<_> = cmd.get_envs().collect();
        assert!(envs.contains(&("SSH_ASKPASS".as_ref(), None)));
        let args: Vec<_> = cmd.get_args().collect();
        assert!(args.contains(&"core.askPass=".as_ref()), "{args:?}");
        assert_eq!(
            remote_said(b"remote: File x is 123 MB\nremote: \nerror: failed\n").as_deref(),
            Some("File x is 123 MB")
        );
    }

    #[test]
    fn what_git_said_is_cut_to_the_news() {
        let missing = b"fatal: '/x/y.git' does not appear to be a git repository\nfatal: Could not read from remote repository.\n\nPlease make sure you have the correct access rights\nand the repository exists.\n";
        assert_eq!(
            said(missing).unwrap(),
            "'/x/y.git' does not appear to be a git repository"
        );
        let denied = b"git@host: Permission denied (publickey).\r\nfatal: Could not read from remote repository.\n";
        assert_eq!(
            said(denied).unwrap(),
            "git@host: Permission denied (publickey)."
        );
        let alone = b"fatal: Could not read from remote repository.\n";
        assert_eq!(
            said(alone).unwrap(),
            "Could not read from remote repository."
        );
        assert_eq!(said(b"\n\n"), None);
        let push = b"error: failed to push some refs to 'x'\nhint: Updates were rejected\n";
        assert_eq!(said(push), None);
    }
}
