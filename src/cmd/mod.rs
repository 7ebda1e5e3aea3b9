//! One module per subcommand, each with `run(&Env, &Args) -> Result<Outcome>`,
//! and what they share: the environment, the local sessions, the transport.
//! `completions` and `man` only print what cli.rs defines: they take no
//! `Env`, so they work where there is no home or config (a package build).

mod completions;
mod doctor;
mod export;
mod forget;
mod hooks;
mod import;
mod init;
mod list;
mod man;
mod notes;
mod presence;
mod pull;
mod push;
mod recipients;
mod resume;
mod setup;
mod status;
mod watch;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};

use ccsync::claude::ClaudeHome;
use ccsync::claude::sessions::{LocalSession, Skipped};
use ccsync::config::{Config, ConfigDir, Lock, State};
use ccsync::index::Index;
use ccsync::names::MachineName;
use ccsync::project::{Placement, ProjectKey, Resolver};
use ccsync::sync::append::Recovered;
use ccsync::sync::pull::Installer;
use ccsync::transport::{Location, Opener, Transport};

use crate::cli::{Cli, Command};
use crate::error::{HintExt, hinted};
use crate::ui::Ui;

/// How a command ended when it did not fail outright.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Exit 0.
    Success,
    /// Exit 1: the command ran but found problems (doctor).
    Problems,
    /// Exit 3: done, but some items were skipped or failed.
    Partial,
    /// Exit with another program's status (`resume`: the client's).
    Code(u8),
}

impl Outcome {
    pub fn exit_code(self) -> ExitCode {
        match self {
            Outcome::Success => ExitCode::SUCCESS,
            Outcome::Problems => ExitCode::FAILURE,
            Outcome::Partial => ExitCode::from(3),
            Outcome::Code(code) => ExitCode::from(code),
        }
    }
}

pub fn run(cli: Cli) -> Result<Outcome> {
    match &cli.command {
        Command::Completions(args) => return completions::run(args),
        Command::Man => return man::run(),
        _ => {}
    }
    let env = Env::from_process(cli.quiet)?;
    env.tidy_after_killed_runs();
    match &cli.command {
        Command::Init(args) => init::run(&env, args),
        Command::Push(args) => push::run(&env, args),
        Command::Pull(args) => pull::run(&env, args),
        Command::List(args) => list::run(&env, args),
        Command::Export(args) => export::run(&env, args),
        Command::Import(args) => import::run(&env, args),
        Command::Doctor(args) => doctor::run(&env, args),
        Command::Status(args) => status::run(&env, args),
        Command::Forget(args) => forget::run(&env, args),
        Command::Recipients(args) => recipients::run(&env, args),
        Command::Resume(args) => resume::run(&env, args),
        Command::Hooks(args) => hooks::run(&env, args),
        Command::Hook(args) => hooks::handle(&env, args),
        Command::Watch(args) => watch::run(&env, args),
        Command::Presence(args) => presence::run(&env, args),
        Command::Completions(_) | Command::Man => unreachable!("handled above"),
    }
}

/// Everything a command learns from the process environment.
pub struct Env {
    pub claude: ClaudeHome,
    pub config_dir: ConfigDir,
    /// The current directory, symlinks resolved, as Claude Code sees it.
    pub cwd: PathBuf,
    pub ui: Ui,
    /// How many sessions the last push or pull wrote (for `watch`'s log).
    pub activity: std::cell::Cell<usize>,
}

fn non_empty(var: &str) -> Option<OsString> {
    std::env::var_os(var).filter(|v| !v.is_empty())
}

impl Env {
    fn from_process(quiet: bool) -> Result<Self> {
        let home = directories::BaseDirs::new().map(|b| b.home_dir().to_path_buf());
        let claude = ClaudeHome::resolve(
            non_empty("CLAUDE_CONFIG_DIR"),
            home,
            std::env::var("CLAUDE_CODE_PROJECT_DIR_NAME").ok(),
        )
        .context("cannot find your home directory")
        .hint("set HOME or CLAUDE_CONFIG_DIR")?;
        let config_dir = match non_empty("CCSYNC_CONFIG_DIR") {
            Some(dir) => PathBuf::from(dir),
            None => directories::ProjectDirs::from("", "", "ccsync")
                .context("cannot find a config directory for ccsync")
                .hint("set CCSYNC_CONFIG_DIR")?
                .config_dir()
                .to_path_buf(),
        };
        let cwd = std::env::current_dir()
            .and_then(|d| d.canonicalize())
            .context("cannot read the current directory")
            .hint("cd somewhere that exists")?;
        Ok(Self {
            claude,
            config_dir: ConfigDir::new(config_dir),
            cwd,
            ui: Ui::new(quiet),
            activity: Default::default(),
        })
    }

    /// The same environment, printing nothing but what `watch` logs itself.
    fn silent(&self) -> Result<Self> {
        let mut env = Self::from_process(true)?;
        env.ui = Ui::silent();
        Ok(env)
    }

    /// The config, the machine name and the transport it names.
    pub fn open_transport(&self) -> Result<(Config, MachineName, Box<dyn Transport>)> {
        let config = self.config_dir.require_config()?;
        let machine = config.machine_name()?;
        let opener = Opener {
            owner: Some(machine.clone()),
            ..self.opener()?
        };
        let transport = self.location(&config.location)?.open(&opener);
        Ok((config, machine, transport))
    }

    /// How this machine stores objects in its sync dir, its keys read.
    pub fn layers(&self, config: &Config) -> Result<ccsync::bundle::layers::Layers> {
        config
            .layers()
            .with_context(|| {
                format!(
                    "cannot use the keys in {}",
                    self.config_dir.config_file().display()
                )
            })
            .hint("fix them, or run `ccsync init` again")
    }

    pub fn location(&self, text: &str) -> Result<Location> {
        Location::parse(text, &self.cwd).with_context(|| {
            // A refused git+https:// location may hold a token: the reason
            // names it without.
            let shown = if text.starts_with("git+") {
                "this git location"
            } else {
                text
            };
            format!("{shown:?} is not a location ccsync can use")
        })
    }

    /// How to reach transports: `CCSYNC_SSH_COMMAND` (split like a shell
    /// would), a private folder for ssh's connection sockets, and one for
    /// git locations' clones.
    pub fn opener(&self) -> Result<Opener> {
        let ssh_command = match std::env::var("CCSYNC_SSH_COMMAND") {
            Ok(text) if !text.trim().is_empty() => shlex::split(&text)
                .filter(|words| !words.is_empty())
                .with_context(|| {
                    format!(
                        "CCSYNC_SSH_COMMAND {text:?} cannot be split into words; check its quotes"
                    )
                })?,
            _ => vec!["ssh".to_owned()],
        };
        // CCSYNC_SSH_COMMAND speaks for ccsync's ssh; without it, git
        // runs the user's GIT_SSH_COMMAND, else what git would run
        // (core.sshCommand, GIT_SSH, ssh: the transport looks it up).
        let git_ssh_command = match non_empty("CCSYNC_SSH_COMMAND") {
            Some(_) => Some(
                ssh_command
                    .iter()
                    .map(|w| ccsync::transport::ssh::shell_quote(w))
                    .collect::<Vec<_>>()
                    .join(" "),
            ),
            None => std::env::var("GIT_SSH_COMMAND")
                .ok()
                .filter(|c| !c.trim().is_empty()),
        };
        let ssh_idle_timeout = match non_empty("CCSYNC_SSH_TIMEOUT") {
            Some(v) => Some(
                v.to_str()
                    .and_then(|v| v.parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s > 0.0)
                    .map(Duration::from_secs_f64)
                    .with_context(|| {
                        format!("CCSYNC_SSH_TIMEOUT {v:?} is not a number of seconds above 0")
                    })?,
            ),
            None => None,
        };
        Ok(Opener {
            ssh_command,
            control_dir: self.control_dir(),
            owner: None,
            ssh_idle_timeout,
            webdav_auth: match (
                non_empty("CCSYNC_WEBDAV_USER"),
                non_empty("CCSYNC_WEBDAV_PASSWORD"),
            ) {
                (Some(user), Some(password)) => Some(ccsync::transport::object::WebDavAuth {
                    user: user.to_string_lossy().into_owned(),
                    password: password.to_string_lossy().into_owned(),
                }),
                _ => None,
            },
            netrc: std::env::var_os("NETRC")
                .map(PathBuf::from)
                .or_else(|| std::env::home_dir().map(|h| h.join(".netrc")))
                .and_then(|p| std::fs::read_to_string(p).ok()),
            git_cache: Some(self.config_dir.root().join("git")),
            git_ssh_command,
        })
    }

    /// A private folder for ssh's multiplexing sockets. Socket paths are
    /// limited to about 104 bytes and ssh adds 58 (`%C` and a temp suffix),
    /// so a long config dir gives way to a short folder in the temp dir,
    /// used only if it is a real folder that only this user can enter.
    fn control_dir(&self) -> Option<PathBuf> {
        let own = self.config_dir.root().join("ssh");
        let dir = if own.as_os_str().len() <= 40 {
            own
        } else {
            let hash = ccsync::bundle::sha256_hex(own.as_os_str().as_encoded_bytes());
            std::env::temp_dir().join(format!("ccsync-ssh-{}", &hash[..12]))
        };
        ccsync::fsutil::create_private_dir_all(&dir).ok()?;
        ccsync::fsutil::is_private_dir_like(&dir, self.config_dir.root()).then_some(dir)
    }

    /// Takes ccsync's lock for a command that writes, then removes what an
    /// earlier, killed run may have left.
    /// The config dir's lock; another ccsync holding it (a `watch` mid-push)
    /// is waited for a few seconds, and said so.
    pub fn lock(&self) -> Result<Lock> {
        let start = std::time::Instant::now();
        let mut said = false;
        let lock = loop {
            match self.config_dir.lock() {
                Err(ccsync::config::ConfigError::Busy(_))
                    if start.elapsed() < std::time::Duration::from_secs(10) =>
                {
                    if !said {
                        self.ui
                            .status("waiting for another ccsync (a watch?) to finish…");
                        said = true;
                    }
                    std::thread::sleep(std::time::Duration::from_millis(100));
                }
                other => break other?,
            }
        };
        match self.claude.remove_leftovers() {
            Ok(0) | Err(_) => {}
            Ok(n) => self.ui.status(format_args!(
                "removed {n} temp files an interrupted run left"
            )),
        }
        Ok(lock)
    }

    /// Before anything else, whatever the command: a run killed while
    /// appending to a transcript may have left half a line at its end, which
    /// would glue the client's next line to it (its record in the journal
    /// says how to undo it), and a copy of what it was moving in staging.
    /// Needs the lock; if another ccsync holds it, that one did this.
    fn tidy_after_killed_runs(&self) {
        let journal = self.config_dir.journal();
        let records = journal.has_records();
        if !records && !self.config_dir.has_staging() {
            return;
        }
        let Ok(_lock) = self.config_dir.lock() else {
            return;
        };
        // Asked again under the lock: a run may have died in between.
        let writers = if journal.has_records() {
            ccsync::claude::live::Writers::scan()
        } else {
            Default::default()
        };
        for done in journal.recover(&writers) {
            match done {
                Recovered::Complete(_) => {}
                Recovered::RolledBack { path, removed } => self.ui.status(format_args!(
                    "an interrupted pull left half a line at the end of {}; removed those {} (pull again to bring it up to date)",
                    path.display(),
                    crate::ui::plural(removed as usize, "byte", "bytes"),
                )),
                Recovered::Later { path, why } => self.ui.warn(format_args!(
                    "an interrupted pull may have left half a line at the end of {}, not checked now: {why}; the next ccsync command looks again",
                    path.display()
                )),
                Recovered::Unexplained { path, why } => self.ui.warn(format_args!(
                    "an interrupted pull was appending to {}, which was left alone: {why}; check its last line",
                    path.display()
                )),
            }
        }
        // After recovery, and not while a record is left: recovery reads
        // the staged copies records name.
        if journal.has_records() {
            return;
        }
        match self.config_dir.remove_stale_staging() {
            0 => {}
            n => self.ui.status(format_args!(
                "removed {} an interrupted run left in {}",
                crate::ui::plural(n, "staging folder", "staging folders"),
                self.config_dir.root().display()
            )),
        }
    }

    /// Installs into the Claude Code config dir. A transcript modified in
    /// the last `CCSYNC_LIVE_WINDOW_MS` milliseconds (default 3000) counts
    /// as being written, like one a process holds open.
    pub fn installer(&self, force: bool) -> Result<Installer<'_>> {
        let window = std::env::var("CCSYNC_LIVE_WINDOW_MS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(3000);
        Ok(
            Installer::new(&self.claude, force, Duration::from_millis(window))
                .with_context(|| format!("cannot read {}", self.claude.projects_dir().display()))?
                .with_journal(self.config_dir.journal()),
        )
    }

    /// Resolves directories to projects, folding the case of the hosts
    /// config.toml lists as well as the well-known forges'.
    pub fn resolver(&self) -> Resolver {
        match self.config_dir.load_config() {
            Ok(Some(config)) => Resolver::with_folding(config.folding()),
            _ => Resolver::new(),
        }
    }

    fn index_file(&self) -> PathBuf {
        self.config_dir.root().join("index.json")
    }

    /// What ccsync knows of files already; a cache, so never an error.
    pub fn load_index(&self) -> Index {
        Index::load(&self.index_file())
    }

    /// Saves the index; only commands that hold the lock call this.
    pub fn save_index(&self, index: &Index) {
        if let Err(e) = index.save(&self.index_file()) {
            self.ui.warn(format_args!("cannot save the index: {e}"));
        }
    }

    /// Saves the state if it is not as it was `loaded`: most runs change
    /// nothing, and a write costs a new file, two fsyncs and a rename.
    pub fn save_state(&self, loaded: &State, state: &State) {
        if state == loaded {
            return;
        }
        if let Err(e) = self.config_dir.save_state(state) {
            self.ui.warn(format_args!("{e}"));
        }
    }
}

/// This machine's sessions, each placed in its project.
pub struct Local {
    pub sessions: Vec<(LocalSession, Placement)>,
    pub skipped: Vec<Skipped>,
}

impl Local {
    /// `state` says where ccsync placed sessions it pulled.
    pub fn scan(
        env: &Env,
        resolver: &mut Resolver,
        index: &mut Index,
        state: &State,
    ) -> Result<Self> {
        let placed = state.placed_sessions();
        let inventory = env
            .claude
            .inventory(&placed, index)
            .with_context(|| format!("cannot read {}", env.claude.projects_dir().display()))?;
        Ok(Self::placed(inventory, resolver))
    }

    /// [`scan`](Self::scan) with the index loaded meanwhile: parsing a
    /// large index and listing the transcripts take about as long each,
    /// and need not wait for each other.
    pub fn scan_loading_index(
        env: &Env,
        resolver: &mut Resolver,
        state: &State,
    ) -> Result<(Index, Self)> {
        let path = env.index_file();
        let (mut index, listed) = std::thread::scope(|s| {
            let index = s.spawn(|| Index::load(&path));
            let listed = env.claude.session_files();
            (
                index.join().expect("loading the index does not panic"),
                listed,
            )
        });
        let listed = listed
            .with_context(|| format!("cannot read {}", env.claude.projects_dir().display()))?;
        let inventory = env
            .claude
            .inventory_of(listed, &state.placed_sessions(), &mut index);
        Ok((index, Self::placed(inventory, resolver)))
    }

    fn placed(inventory: ccsync::claude::sessions::Inventory, resolver: &mut Resolver) -> Self {
        let sessions = inventory
            .sessions
            .into_iter()
            .map(|s| {
                let placement = resolver.place(&s.cwd);
                (s, placement)
            })
            .collect();
        Self {
            sessions,
            skipped: inventory.skipped,
        }
    }

    /// A session by id or unique id prefix, in any case.
    pub fn select(&self, wanted: &str) -> Result<&(LocalSession, Placement)> {
        let wanted = &wanted.to_ascii_lowercase();
        let hits: Vec<_> = self
            .sessions
            .iter()
            .filter(|(s, _)| s.file.id.as_str().starts_with(wanted))
            .collect();
        match hits.as_slice() {
            [one] => Ok(one),
            [] => {
                if let Some(skipped) = self.skipped.iter().find(|s| {
                    s.path
                        .file_stem()
                        .and_then(|f| f.to_str())
                        .is_some_and(|f| f.starts_with(wanted))
                }) {
                    bail!(
                        "session {wanted} at {} cannot be moved: {}",
                        skipped.path.display(),
                        skipped.reason
                    )
                }
                Err(hinted(
                    format!("no session {wanted:?} on this machine"),
                    "`ccsync list` shows the sessions here",
                ))
            }
            many => Err(hinted(
                format!(
                    "{wanted:?} matches {} sessions ({})",
                    many.len(),
                    many.iter()
                        .map(|(s, _)| s.file.id.as_str())
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
                "give more of the id",
            )),
        }
    }

    /// Every session of a project.
    pub fn of_project(&self, key: &ProjectKey) -> Vec<(LocalSession, Placement)> {
        self.sessions
            .iter()
            .filter(|(_, p)| &p.key == key)
            .cloned()
            .collect()
    }

    /// The most recently modified session of a project.
    pub fn newest_of(&self, key: &ProjectKey) -> Option<&(LocalSession, Placement)> {
        self.sessions
            .iter()
            .filter(|(_, p)| &p.key == key)
            .max_by_key(|(s, _)| s.file.modified)
    }

    /// The session named on the command line, or the newest of the current
    /// directory's project.
    pub fn chosen(
        &self,
        wanted: Option<&str>,
        here: &Placement,
        env: &Env,
    ) -> Result<&(LocalSession, Placement)> {
        match wanted {
            Some(w) => self.select(w),
            None => self.newest_of(&here.key).ok_or_else(|| {
                hinted(
                    format!(
                        "no session of project {} (the current directory) under {}",
                        here.key,
                        env.claude.projects_dir().display()
                    ),
                    "run Claude Code here first, or name a session (`ccsync list` shows them)",
                )
            }),
        }
    }
}

/// The session `wanted` names among a transport's `objects` (at
/// `location`): a whole id or a unique prefix, in any case. Copies of
/// `skip` do not count (a pull passes over this machine's own).
pub fn remote_session(
    objects: &[ccsync::transport::RemoteObject],
    location: &str,
    wanted: &str,
    skip: Option<&MachineName>,
) -> Result<ccsync::names::SessionId> {
    let wanted = wanted.to_ascii_lowercase();
    if wanted.is_empty() || !wanted.bytes().all(|b| b.is_ascii_hexdigit() || b == b'-') {
        bail!("{wanted:?} is not a session id or the start of one (hex digits and dashes)");
    }
    let mut ids: Vec<ccsync::names::SessionId> = objects
        .iter()
        .filter_map(|o| o.name.session())
        .filter(|(id, m)| Some(m) != skip && id.as_str().starts_with(&wanted))
        .map(|(id, _)| id)
        .collect();
    ids.sort();
    ids.dedup();
    let from = if skip.is_some() {
        " from another machine"
    } else {
        ""
    };
    match ids.as_slice() {
        [one] => Ok(one.clone()),
        [] => Err(hinted(
            format!("no session starting with {wanted} in {location}{from}"),
            "`ccsync list --remote` shows what is there",
        )),
        many => Err(hinted(
            format!(
                "{wanted:?} matches {} sessions in {location} ({})",
                many.len(),
                many.iter()
                    .map(|id| id.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            "give more of the id",
        )),
    }
}

/// Projects with a checkout on this machine: those ccsync has worked with,
/// and those a local transcript records a directory for inside a git
/// checkout that still exists.
pub fn known_projects(state: &State, local: &Local) -> BTreeMap<ProjectKey, PathBuf> {
    let mut known = BTreeMap::new();
    let mut newest = BTreeMap::new();
    for (session, placement) in &local.sessions {
        if placement.key.as_str().starts_with("git:") && placement.root.is_dir() {
            let seen = newest
                .entry(placement.key.clone())
                .or_insert(session.file.modified);
            if *seen <= session.file.modified {
                *seen = session.file.modified;
                known.insert(placement.key.clone(), placement.root.clone());
            }
        }
    }
    for (key, project) in &state.projects {
        if let Ok(key) = ProjectKey::parse(key)
            && project.root.is_dir()
        {
            known.insert(key, project.root.clone());
        }
    }
    known
}
