//! Every clap type, in one place: the help text, completions and the man
//! page all come from here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Move Claude Code sessions between machines.
///
/// `push` packs a session into a .ccsync bundle and puts it in your sync
/// dir; `pull` on another machine installs it, byte for byte, where that
/// machine's Claude Code looks for the same project, so `claude --resume <id>`
/// continues it.
#[derive(Debug, Parser)]
#[command(
    name = "ccsync",
    version = VERSION,
    propagate_version = true,
    max_term_width = 100
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,

    /// Print nothing but data and errors.
    #[arg(short, long, global = true)]
    pub quiet: bool,

    /// When to colour status, warnings and errors: `auto` colours on a
    /// terminal unless NO_COLOR is set.
    #[arg(long, global = true, value_name = "WHEN", default_value = "auto")]
    pub color: ColorWhen,
}

/// The version and the commit it was built from (build.rs), or "unknown"
/// when it was not built from a git checkout.
pub const VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), " (", env!("CCSYNC_COMMIT"), ")");

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Choose the sync dir and this machine's name.
    Init(InitArgs),
    /// Put sessions of this machine into the sync dir.
    Push(PushArgs),
    /// Install sessions from the sync dir for this machine's checkouts.
    Pull(PullArgs),
    /// List sessions on this machine, or in the sync dir.
    List(ListArgs),
    /// Write one session to a .ccsync file.
    Export(ExportArgs),
    /// Install a session from a .ccsync file.
    Import(ImportArgs),
    /// Check the setup and say what is wrong.
    Doctor(DoctorArgs),
    /// Show this project's sessions here and how syncing is set up (reads
    /// only; needs no setup and no network).
    Status(StatusArgs),
    /// Remove a machine's or a session's copies from the sync dir (never a
    /// local transcript).
    Forget(ForgetArgs),
    /// List or add the public keys an encrypted sync dir is encrypted to.
    Recipients(RecipientsArgs),
    /// Pull, continue a session in Claude Code where it belongs here, and
    /// push it when the client exits.
    Resume(ResumeArgs),
    /// Install, remove or show ccsync's hooks in Claude Code's settings: a
    /// session that ends is pushed, one that starts gets the project's other
    /// sessions pulled.
    Hooks(HooksArgs),
    /// What ccsync's hooks run (Claude Code calls it).
    #[command(hide = true)]
    Hook(HookArgs),
    /// Push sessions as they change and pull on an interval, in the
    /// foreground (or as a service with --install).
    Watch(WatchArgs),
    /// Say in the sync dir which sessions run here (the hooks call it).
    #[command(hide = true)]
    Presence(PresenceArgs),
    /// Print a completion script for a shell on stdout, e.g.
    /// `ccsync completions bash > ~/.local/share/bash-completion/completions/ccsync`.
    Completions(CompletionsArgs),
    /// Print the man page (roff) on stdout, e.g.
    /// `ccsync man > ~/.local/share/man/man1/ccsync.1`.
    Man,
}

#[derive(Debug, Args)]
pub struct CompletionsArgs {
    /// The shell to complete in.
    pub shell: clap_complete::Shell,
}

#[derive(Debug, Args)]
pub struct StatusArgs {}

#[derive(Debug, Args)]
pub struct PresenceArgs {
    /// A session whose client is exiting: not running any more.
    #[arg(long, value_name = "SESSION")]
    pub ended: Option<String>,
}

#[derive(Debug, Args)]
pub struct WatchArgs {
    /// Seconds between pulls.
    #[arg(long, value_name = "SECS", default_value_t = 60)]
    pub interval: u64,

    /// Write and enable a systemd user unit (Linux) or a launchd agent
    /// (macOS) that runs `ccsync watch` with this environment.
    #[arg(long, conflicts_with = "uninstall")]
    pub install: bool,

    /// Stop and remove that unit or agent.
    #[arg(long)]
    pub uninstall: bool,
}

#[derive(Debug, Args)]
pub struct HooksArgs {
    #[command(subcommand)]
    pub action: HooksAction,
}

#[derive(Debug, Clone, Copy, Subcommand)]
pub enum HooksAction {
    /// Add the hooks to $CLAUDE_CONFIG_DIR/settings.json (keeping the rest).
    Install,
    /// Remove exactly what install added.
    Uninstall,
    /// Say which hooks are installed.
    Status,
}

#[derive(Debug, Args)]
pub struct HookArgs {
    pub event: HookEvent,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum HookEvent {
    SessionEnd,
    SessionStart,
}

#[derive(Debug, Args)]
pub struct ResumeArgs {
    /// Session to continue (an id or a unique prefix) [default: the current
    /// project's most recent session, across all machines].
    pub session: Option<String>,

    /// Passed on to `claude --resume <id>` (after `--`).
    #[arg(last = true, value_name = "CLAUDE_ARGS")]
    pub claude_args: Vec<String>,
}

#[derive(Debug, Args)]
pub struct RecipientsArgs {
    #[command(subcommand)]
    pub action: Option<RecipientsAction>,
}

#[derive(Debug, Subcommand)]
pub enum RecipientsAction {
    /// Encrypt to KEY too (an age public key, an ssh public key line, or a
    /// file of them), and re-encrypt what is in the sync dir for it.
    Add {
        #[arg(value_name = "KEY")]
        key: String,
    },
    /// List the keys (the default).
    List,
}

#[derive(Debug, Args)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["session", "machine"]))]
pub struct ForgetArgs {
    /// Remove every machine's copy of this session (an id or a unique
    /// prefix, in any case).
    pub session: Option<String>,

    /// Remove every copy this machine pushed and its claim on its name (a
    /// machine that is gone, or an old name).
    #[arg(long, value_name = "NAME")]
    pub machine: Option<String>,

    /// Do not ask.
    #[arg(long, short)]
    pub yes: bool,

    /// Allow forgetting this machine's own name.
    #[arg(long)]
    pub force: bool,
}

#[derive(Debug, Args)]
pub struct InitArgs {
    /// Sync dir: a directory, e.g. in a Dropbox or Syncthing folder or on a
    /// USB stick, an ssh location (`host:path`, `ssh://host/path`), an
    /// object store (`s3://bucket/prefix`, `webdavs://host/path`) or a git
    /// repository's branch (`git+ssh://host/repo.git[#branch]`,
    /// `git+https://…`, `git+file:///…`). Without it, init lists the synced
    /// folders it finds here.
    pub location: Option<String>,

    /// Create the sync dir if it does not exist (without a terminal to ask
    /// on, a missing directory is refused: it may be a typo).
    #[arg(long)]
    pub create: bool,

    /// This machine's name in the sync dir [default: the host name].
    #[arg(long, value_name = "MACHINE")]
    pub name: Option<String>,

    /// Take the name even if another machine claimed it in the sync dir.
    #[arg(long)]
    pub force: bool,

    /// Encrypt the sync dir (age) to KEY: an age public key (age1…), an ssh
    /// public key line, or a file of them (~/.ssh/id_ed25519.pub). Give
    /// every machine's key, this one's included. Joining a sync dir that is
    /// already encrypted needs only --identity.
    #[arg(long, value_name = "KEY")]
    pub recipient: Vec<String>,

    /// This machine's key for an encrypted sync dir: an age identity file
    /// or an unencrypted OpenSSH private key.
    #[arg(long, value_name = "FILE")]
    pub identity: Option<std::path::PathBuf>,

    /// Carry your setup too: settings.json, CLAUDE.md, agents, commands,
    /// skills, output styles, keybindings, plugin configuration and each
    /// project's memory (never credentials); `ccsync list --setup` shows
    /// what travels.
    #[arg(long, conflicts_with = "no_setup")]
    pub setup: bool,

    /// Stop carrying the setup.
    #[arg(long)]
    pub no_setup: bool,
}

#[derive(Debug, Args)]
pub struct PushArgs {
    /// Session to push (an id or a unique prefix, in any case) [default:
    /// every session of the current directory's project that changed since
    /// this machine last pushed it].
    pub session: Option<String>,

    /// Push every session on this machine that belongs to a project.
    #[arg(long, conflicts_with = "session")]
    pub all: bool,

    /// Replace this machine's earlier copy even when the local transcript
    /// no longer starts with it (it was truncated or rewritten here).
    #[arg(long)]
    pub force: bool,

    /// Push sessions that hold credentials even with `secrets = "refuse"`
    /// in config.toml.
    #[arg(long)]
    pub allow_secrets: bool,

    /// Print what would be sent (per session: whole or only what was
    /// added, why, and how many bytes) and change nothing anywhere.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct PullArgs {
    /// Session to pull (an id or a unique prefix, in any case) [default:
    /// every session of the current directory's project].
    pub session: Option<String>,

    /// Pull for every project this machine knows.
    #[arg(long, conflicts_with = "session")]
    pub all: bool,

    /// Replace transcripts even when Claude Code seems to be writing them.
    #[arg(long)]
    pub force: bool,

    /// Print what would be written (per session: install, update, fork,
    /// keep, and why; bytes) and change nothing anywhere.
    #[arg(long)]
    pub dry_run: bool,

    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,

    /// Leave this session alone (the one a client is starting).
    #[arg(long, hide = true, value_name = "SESSION")]
    pub except: Option<String>,
}

#[derive(Debug, Args)]
pub struct ListArgs {
    /// List what the sync dir holds instead.
    #[arg(long, conflicts_with = "setup")]
    pub remote: bool,

    /// List the files of your setup: what travels, what does not, and why.
    #[arg(long)]
    pub setup: bool,

    /// Print JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    /// Session to export (a unique prefix is enough) [default: the newest
    /// session of the current directory's project].
    pub session: Option<String>,

    /// File to write, `-` for stdout [default: <session-id>.ccsync].
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The .ccsync file.
    pub file: PathBuf,

    /// The checkout to install the session for [default: the current
    /// directory].
    #[arg(long, value_name = "DIR")]
    pub cwd: Option<PathBuf>,

    /// Replace the transcript even when Claude Code seems to be writing it.
    #[arg(long)]
    pub force: bool,

    /// Print the result as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[derive(Debug, Args)]
pub struct DoctorArgs {
    /// Print the checks as JSON on stdout.
    #[arg(long)]
    pub json: bool,
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn cli_is_well_formed() {
        super::Cli::command().debug_assert();
    }
}
