//! `ccsync hooks install|uninstall|status`: ccsync's hooks in Claude
//! Code's user settings; and `ccsync hook session-end|session-start`, what
//! those hooks run.

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use ccsync::claude::settings;
use ccsync::fsutil;
use ccsync::names::SessionId;

use super::{Env, Outcome};
use crate::cli::{HookArgs, HookEvent, HooksAction, HooksArgs};
use crate::error::{HintExt, hinted};

/// What the settings file was before `install` first changed it, so that
/// `uninstall` can put back its exact bytes.
#[derive(Serialize, Deserialize)]
struct Backup {
    path: PathBuf,
    /// `None` when there was no file.
    original: Option<String>,
}

fn backup_file(env: &Env) -> PathBuf {
    env.config_dir.root().join("hooks-backup.json")
}

pub fn run(env: &Env, args: &HooksArgs) -> Result<Outcome> {
    // A settings file kept elsewhere and linked (dotfiles) is edited where
    // it is: replacing the link would cut it off from its repository.
    let path = env.claude.root().join("settings.json");
    let path = match std::fs::symlink_metadata(&path) {
        Ok(m) if m.file_type().is_symlink() => std::fs::canonicalize(&path)
            .with_context(|| format!("{} is a link to nowhere", path.display()))?,
        _ => path,
    };
    let original = match std::fs::read_to_string(&path) {
        Ok(text) => Some(text),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", path.display())),
    };
    let mut value: Map<String, Value> = match original.as_deref() {
        None => Map::new(),
        Some(text) if text.trim().is_empty() => Map::new(),
        Some(text) => serde_json::from_str(text)
            .with_context(|| format!("{} is not a JSON object", path.display()))
            .hint("fix it (Claude Code would not read it either), then try again")?,
    };
    match args.action {
        HooksAction::Install => {
            let exe = std::env::current_exe()
                .and_then(|p| p.canonicalize())
                .context("cannot tell where this ccsync binary is")?;
            let exe = exe.to_string_lossy();
            let exe = shlex::try_quote(&exe).map_err(|_| {
                anyhow::anyhow!("{exe:?} cannot be written as a shell word for a hook command")
            })?;
            let changed = settings::install(&mut value, |arg| format!("{exe} hook {arg}"))
                .map_err(|e| {
                    hinted(format!("{}: {e}", path.display()), "fix it, then try again")
                })?;
            if !changed {
                env.ui.status(format_args!(
                    "hooks already installed in {}",
                    path.display()
                ));
                return Ok(Outcome::Success);
            }
            let backup = backup_file(env);
            if !backup.exists() {
                let record = Backup {
                    path: path.clone(),
                    original: original.clone(),
                };
                fsutil::write_atomic_bytes(&backup, &serde_json::to_vec(&record)?)?;
            }
            write_settings(&path, &value)?;
            env.ui.status(format_args!(
                "installed ccsync's SessionEnd (push) and SessionStart (pull) hooks in {}",
                path.display()
            ));
        }
        HooksAction::Uninstall => {
            if !settings::uninstall(&mut value) {
                env.ui
                    .status(format_args!("no ccsync hooks in {}", path.display()));
                return Ok(Outcome::Success);
            }
            let backup = backup_file(env);
            let before: Option<Backup> = std::fs::read(&backup)
                .ok()
                .and_then(|b| serde_json::from_slice(&b).ok())
                .filter(|b: &Backup| b.path == path);
            // Exactly the bytes that were there, when nothing else changed.
            match before {
                Some(Backup { original: None, .. }) if value.is_empty() => {
                    std::fs::remove_file(&path)
                        .with_context(|| format!("cannot remove {}", path.display()))?;
                }
                Some(Backup {
                    original: Some(text),
                    ..
                }) if parse(&text).is_some_and(|v| same_without_hooks_key(&v, &value)) => {
                    let mode = file_mode(&path);
                    fsutil::write_atomic_bytes(&path, text.as_bytes())
                        .with_context(|| format!("cannot write {}", path.display()))?;
                    set_mode(&path, mode);
                }
                _ => write_settings(&path, &value)?,
            }
            let _ = std::fs::remove_file(&backup);
            env.ui.status(format_args!(
                "removed ccsync's hooks from {}",
                path.display()
            ));
        }
        HooksAction::Status => {
            for (event, command) in settings::installed(&value) {
                match command {
                    Some(c) => env.ui.data(format_args!("{event}: {c}"))?,
                    None => env.ui.data(format_args!("{event}: not installed"))?,
                }
            }
        }
    }
    Ok(Outcome::Success)
}

fn parse(text: &str) -> Option<Map<String, Value>> {
    if text.trim().is_empty() {
        return Some(Map::new());
    }
    serde_json::from_str(text).ok()
}

/// Equal, counting an empty `hooks` object as absent (uninstall removes
/// the one install made).
fn same_without_hooks_key(a: &Map<String, Value>, b: &Map<String, Value>) -> bool {
    let strip = |m: &Map<String, Value>| {
        let mut m = m.clone();
        if m.get("hooks")
            .and_then(Value::as_object)
            .is_some_and(Map::is_empty)
        {
            m.remove("hooks");
        }
        m
    };
    strip(a) == strip(b)
}

/// Writes the settings as the client does (two-space JSON), atomically,
/// keeping the file's permissions.
fn write_settings(path: &Path, value: &Map<String, Value>) -> Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    let mode = file_mode(path);
    fsutil::write_atomic_bytes(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    set_mode(path, mode);
    Ok(())
}

#[cfg(unix)]
fn file_mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .ok()
        .map(|m| m.permissions().mode() & 0o777)
}

#[cfg(not(unix))]
fn file_mode(_: &Path) -> Option<u32> {
    None
}

#[cfg(unix)]
fn set_mode(path: &Path, mode: Option<u32>) {
    use std::os::unix::fs::PermissionsExt;
    let mode = mode.unwrap_or(0o644);
    let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode));
}

#[cfg(not(unix))]
fn set_mode(_: &Path, _: Option<u32>) {}

/// What the client hands a hook on stdin.
#[derive(Deserialize)]
struct HookInput {
    session_id: String,
    cwd: Option<PathBuf>,
}

/// How long a hook waits for its push or pull before leaving it to finish
/// on its own.
fn patience() -> Duration {
    std::env::var("CCSYNC_HOOK_WAIT_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .map_or(Duration::from_secs(3), Duration::from_millis)
}

/// `ccsync hook session-end|session-start`: starts the push (of the session
/// that ended) or the pull (of the project's other sessions) as a process
/// of its own, waits a few seconds at most, and never fails the client.
/// Nothing goes to stdout: a SessionStart hook's output becomes context.
pub fn handle(env: &Env, args: &HookArgs) -> Result<Outcome> {
    // Whatever goes wrong, the client is not failed: said on stderr only.
    if let Err(e) = start(env, args) {
        eprintln!("ccsync: {e:#}");
    }
    Ok(Outcome::Success)
}

fn start(env: &Env, args: &HookArgs) -> Result<()> {
    let mut raw = Vec::new();
    std::io::stdin().take(1 << 20).read_to_end(&mut raw)?;
    let input: HookInput =
        serde_json::from_slice(&raw).context("the hook's input is not the client's JSON")?;
    let id = SessionId::parse(&input.session_id)?;
    let cwd = input.cwd.unwrap_or_else(|| env.cwd.clone());
    let exe = std::env::current_exe()?;
    let jobs: [&[&str]; 2] = match args.event {
        HookEvent::SessionEnd => [
            &["push", id.as_str()],
            &["presence", "--ended", id.as_str()],
        ],
        HookEvent::SessionStart => [&["pull", "--except", id.as_str()], &["presence"]],
    };
    let mut children = Vec::new();
    for job in jobs {
        let mut cmd = Command::new(&exe);
        cmd.arg("-q")
            .args(job)
            .current_dir(&cwd)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group: it outlives the client if it must.
        #[cfg(unix)]
        std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
        if let Ok(child) = cmd.spawn() {
            children.push(child);
        }
    }
    let deadline = Instant::now() + patience();
    while Instant::now() < deadline {
        if children
            .iter_mut()
            .all(|c| matches!(c.try_wait(), Ok(Some(_))))
        {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    if matches!(args.event, HookEvent::SessionStart)
        && let Some(machines) = newer_elsewhere(env, &id, deadline)
    {
        // On stderr: the client shows it; stdout would become context.
        eprintln!(
            "ccsync: {} pushed session {id} since this machine last pulled it; this conversation does not have those lines. To continue from them, exit and run `ccsync resume {id}`",
            machines.join(", ")
        );
    }
    Ok(())
}

/// Other machines whose copies of session `id` in the sync dir this
/// machine's last pull did not see (by the index), if any; `None` as well
/// when the sync dir does not answer by `deadline` (plus a second).
fn newer_elsewhere(env: &Env, id: &SessionId, deadline: Instant) -> Option<Vec<String>> {
    let config = env.config_dir.require_config().ok()?;
    let me = config.machine_name().ok()?;
    let location = env.location(&config.location).ok()?;
    let opener = ccsync::transport::Opener {
        owner: Some(me.clone()),
        ..env.opener().ok()?
    };
    let index = env.load_index();
    let seen: std::collections::HashSet<(String, ccsync::index::Stamp)> = index
        .pulled
        .iter()
        .filter(|(key, _)| key.ends_with(&format!("/{id}")))
        .flat_map(|(_, p)| p.objects.iter().cloned())
        .collect();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(location.open(&opener).list().ok());
    });
    let wait = deadline.saturating_duration_since(Instant::now()) + Duration::from_secs(1);
    let listing = rx.recv_timeout(wait).ok()??;
    let mut machines: Vec<String> = listing
        .objects
        .iter()
        .filter_map(|o| {
            let (sid, machine) = o.name.copy_of()?;
            let stamp = ccsync::index::Stamp::new(o.size, o.modified);
            (sid == *id && machine != me && !seen.contains(&(o.name.to_string(), stamp)))
                .then(|| machine.to_string())
        })
        .collect();
    machines.dedup();
    (!machines.is_empty()).then_some(machines)
}
