//! `ccsync watch`: pushes sessions soon after they change (file system
//! notifications, debounced) and pulls on an interval, until SIGINT or
//! SIGTERM. Logs one line per change of state, never one per try.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use notify::Watcher;

use super::{Env, Outcome};
use crate::cli::{PullArgs, PushArgs, WatchArgs};

/// Quiet this long after a change before pushing: the client writes a
/// turn as several lines in quick succession.
const DEBOUNCE: Duration = Duration::from_secs(2);
/// The longest wait between tries while the sync dir does not answer.
const MAX_BACKOFF: Duration = Duration::from_secs(300);

pub fn run(env: &Env, args: &WatchArgs) -> Result<Outcome> {
    if args.install || args.uninstall {
        return service(env, args.install);
    }
    let (_config, _machine, transport) = env.open_transport()?;
    let location = transport.location();
    drop(transport);
    let stop = Arc::new(AtomicBool::new(false));
    {
        let stop = stop.clone();
        ctrlc::set_handler(move || stop.store(true, Ordering::SeqCst))
            .context("cannot set up the signal handlers")?;
    }
    let projects = env.claude.projects_dir();
    std::fs::create_dir_all(&projects)
        .with_context(|| format!("cannot create {}", projects.display()))?;
    let (tx, rx) = mpsc::channel();
    let mut watcher = notify::recommended_watcher(move |event: notify::Result<notify::Event>| {
        if let Ok(event) = event
            && event.paths.iter().any(|p| counts(p))
            && !matches!(event.kind, notify::EventKind::Access(_))
        {
            let _ = tx.send(());
        }
    })
    .context("cannot watch for file changes")?;
    watcher
        .watch(&projects, notify::RecursiveMode::Recursive)
        .with_context(|| format!("cannot watch {}", projects.display()))?;
    let interval = Duration::from_secs(args.interval.max(1));
    env.ui.status(format_args!(
        "watching {} (push on change, pull every {}); Ctrl-C to stop",
        projects.display(),
        humantime::format_duration(interval)
    ));

    let inner = env.silent()?;
    let mut push = Task::new("push", &location);
    let mut pull = Task::new("pull", &location);
    // Whatever changed while nothing watched goes first.
    let mut changed_at = Some(Instant::now() - DEBOUNCE);
    let mut next_pull = Instant::now();
    let mut said: Option<Vec<(String, Option<u64>)>> = None;
    while !stop.load(Ordering::SeqCst) {
        match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(()) => changed_at = Some(Instant::now()),
            Err(mpsc::RecvTimeoutError::Timeout) => {}
            Err(mpsc::RecvTimeoutError::Disconnected) => bail!("the file watcher stopped"),
        }
        let now = Instant::now();
        if changed_at.is_some_and(|t| now >= t + DEBOUNCE) && push.due(now) {
            let result = super::push::run(
                &inner,
                &PushArgs {
                    dry_run: false,
                    session: None,
                    all: true,
                    force: false,
                    allow_secrets: false,
                    json: false,
                },
            );
            // A failed push is tried again (after the backoff).
            if result.is_ok() {
                changed_at = None;
            }
            push.done(env, result, inner.activity.take(), "pushed");
        }
        if now >= next_pull && pull.due(now) {
            let result = super::pull::run(
                &inner,
                &PullArgs {
                    dry_run: false,
                    session: None,
                    all: true,
                    force: false,
                    json: false,
                    except: None,
                },
            );
            pull.done(env, result, inner.activity.take(), "pulled");
            next_pull = Instant::now() + interval;
            // Who runs what here, said when it changes.
            let now_running =
                ccsync::claude::registry::Registry::scan(env.claude.root()).sessions();
            if said != Some(now_running.clone())
                && let Ok((_, machine, transport)) = inner.open_transport()
                && let Ok(staging) = inner.config_dir.staging()
                && let Ok(staging) = staging.path()
                && super::presence::publish(&inner, transport.as_ref(), staging, &machine, None)
                    .is_ok()
            {
                said = Some(now_running);
            }
            // What the pull wrote, or the client meanwhile: a push looks
            // (the index makes it cheap when nothing is new).
            let mut any = false;
            while rx.try_recv().is_ok() {
                any = true;
            }
            if any {
                changed_at.get_or_insert(Instant::now());
            }
        }
    }
    env.ui.status("stopped watching");
    Ok(Outcome::Success)
}

/// Whether a change to `path` may mean a session to push: a transcript or
/// a file in a session's folder, not a temp file.
fn counts(path: &Path) -> bool {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy())
        .unwrap_or_default();
    !name.starts_with(".ccsync-") && !name.ends_with(".tmp")
}

/// A push or a pull that repeats: whether it is failing, and when to try
/// again after a failure (doubling, up to [`MAX_BACKOFF`]).
struct Task {
    what: &'static str,
    location: String,
    failing: Option<String>,
    backoff: Duration,
    retry_at: Instant,
}

impl Task {
    fn new(what: &'static str, location: &str) -> Self {
        Self {
            what,
            location: location.to_owned(),
            failing: None,
            backoff: Duration::ZERO,
            retry_at: Instant::now(),
        }
    }

    fn due(&self, now: Instant) -> bool {
        now >= self.retry_at
    }

    fn done(&mut self, env: &Env, result: Result<Outcome>, moved: usize, verb: &str) {
        match result {
            Ok(outcome) => {
                if self.failing.take().is_some() {
                    env.ui
                        .warn(format_args!("{}: {} works again", self.what, self.location));
                }
                self.backoff = Duration::ZERO;
                if moved > 0 {
                    env.ui.status(format_args!(
                        "{verb} {}",
                        crate::ui::plural(moved, "session", "sessions")
                    ));
                }
                if matches!(outcome, Outcome::Partial) {
                    env.ui.status(format_args!(
                        "{}: some sessions were skipped or left alone (in use?); `ccsync {}` says which",
                        self.what, self.what
                    ));
                }
            }
            Err(e) => {
                let message = format!("{e:#}");
                if self.failing.as_deref() != Some(message.as_str()) {
                    env.ui
                        .warn(format_args!("{}: {message}; retrying", self.what));
                    self.failing = Some(message);
                }
                self.backoff = (self.backoff * 2).clamp(Duration::from_secs(5), MAX_BACKOFF);
                self.retry_at = Instant::now() + self.backoff;
            }
        }
    }
}

/// Writes and enables (`install`) or stops and removes a user service that
/// runs `ccsync watch` with this process's environment for Claude Code and
/// ccsync.
fn service(env: &Env, install: bool) -> Result<Outcome> {
    let exe = std::env::current_exe()?.canonicalize()?;
    let vars: Vec<(&str, String)> = [
        "CLAUDE_CONFIG_DIR",
        "CCSYNC_CONFIG_DIR",
        "CCSYNC_SSH_COMMAND",
        "PATH",
        "HOME",
    ]
    .into_iter()
    .filter_map(|v| Some((v, std::env::var(v).ok().filter(|s| !s.is_empty())?)))
    .collect();
    let home = directories::BaseDirs::new()
        .map(|b| b.home_dir().to_path_buf())
        .context("cannot find your home directory")?;
    if cfg!(target_os = "macos") {
        let plist = home.join("Library/LaunchAgents/dev.ccsync.watch.plist");
        if install {
            let env_xml: String = vars
                .iter()
                .map(|(k, v)| format!("    <key>{k}</key><string>{}</string>\n", xml(v)))
                .collect();
            let text = format!(
                "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<!DOCTYPE plist PUBLIC \"-//Apple//DTD PLIST 1.0//EN\" \"http://www.apple.com/DTDs/PropertyList-1.0.dtd\">\n<plist version=\"1.0\"><dict>\n  <key>Label</key><string>dev.ccsync.watch</string>\n  <key>ProgramArguments</key><array><string>{}</string><string>watch</string></array>\n  <key>EnvironmentVariables</key><dict>\n{env_xml}  </dict>\n  <key>RunAtLoad</key><true/>\n  <key>KeepAlive</key><true/>\n</dict></plist>\n",
                xml(&exe.to_string_lossy())
            );
            write_unit(env, &plist, &text)?;
            run_tool(env, "launchctl", &["load", "-w", &plist.to_string_lossy()]);
        } else {
            run_tool(
                env,
                "launchctl",
                &["unload", "-w", &plist.to_string_lossy()],
            );
            remove_unit(env, &plist)?;
        }
        return Ok(Outcome::Success);
    }
    let config_home = std::env::var_os("XDG_CONFIG_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|| home.join(".config"));
    let unit = config_home.join("systemd/user/ccsync-watch.service");
    if install {
        let env_lines: String = vars
            .iter()
            .map(|(k, v)| {
                format!(
                    "Environment=\"{k}={}\"\n",
                    v.replace('\\', "\\\\").replace('"', "\\\"")
                )
            })
            .collect();
        let text = format!(
            "[Unit]\nDescription=ccsync watch: push Claude Code sessions as they change, pull on an interval\n\n[Service]\nExecStart={} watch\n{env_lines}Restart=on-failure\nRestartSec=30\n\n[Install]\nWantedBy=default.target\n",
            exe.display()
        );
        write_unit(env, &unit, &text)?;
        run_tool(env, "systemctl", &["--user", "daemon-reload"]);
        run_tool(
            env,
            "systemctl",
            &["--user", "enable", "--now", "ccsync-watch.service"],
        );
    } else {
        run_tool(
            env,
            "systemctl",
            &["--user", "disable", "--now", "ccsync-watch.service"],
        );
        remove_unit(env, &unit)?;
        run_tool(env, "systemctl", &["--user", "daemon-reload"]);
    }
    Ok(Outcome::Success)
}

fn xml(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

fn write_unit(env: &Env, path: &Path, text: &str) -> Result<()> {
    ccsync::fsutil::write_atomic_bytes(path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    env.ui.status(format_args!("wrote {}", path.display()));
    Ok(())
}

fn remove_unit(env: &Env, path: &Path) -> Result<()> {
    match std::fs::remove_file(path) {
        Ok(()) => env.ui.status(format_args!("removed {}", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => env
            .ui
            .status(format_args!("no {} to remove", path.display())),
        Err(e) => return Err(e).with_context(|| format!("cannot remove {}", path.display())),
    }
    Ok(())
}

/// Runs a service manager command; says so when it is missing or fails
/// (the unit file is there either way).
fn run_tool(env: &Env, tool: &str, args: &[&str]) {
    match std::process::Command::new(tool).args(args).status() {
        Ok(s) if s.success() => {}
        Ok(s) => env.ui.warn(format_args!(
            "`{tool} {}` failed ({s}); run it yourself",
            args.join(" ")
        )),
        Err(e) => env.ui.warn(format_args!(
            "cannot run {tool} ({e}); run `{tool} {}` yourself",
            args.join(" ")
        )),
    }
}
