//! `ccsync pull [SESSION_ID] [--all]`

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use ccsync::config::State;
use ccsync::names::SessionId;
use ccsync::project::{KeyMap, ProjectKey};
use ccsync::sync::plan::{Action, PartAction, Verdict};
use ccsync::sync::pull::{self, Checkout, Outcome as SessionOutcome, PartsOutcome, PullReport};
use ccsync::sync::{Link, now_ms};

use super::{Env, Local, Outcome, known_projects};
use crate::cli::PullArgs;
use crate::ui;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct OutcomeJson {
    session_id: String,
    project_key: String,
    /// `installed`, `updated`, `unchanged`.
    action: &'static str,
    from_machine: Option<String>,
    transcript: String,
    cwd: String,
    bytes: u64,
    lines: u64,
    copies: Vec<CopyJson>,
    /// Why the transcript was not replaced although the plan said to.
    held: Option<String>,
    forks: Vec<ForkJson>,
    side_files: SideFilesJson,
    /// The project folder the session was moved from (the other machine
    /// moved it to another directory with `/cd`).
    #[serde(skip_serializing_if = "Option::is_none")]
    moved_from: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SideFilesJson {
    /// Added, extended or brought to a newer state.
    written: usize,
    /// Left as they are here although the incoming ones differ.
    kept: Vec<KeptJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct KeptJson {
    path: String,
    /// `local-ahead` or `differs`.
    reason: &'static str,
}

impl SideFilesJson {
    fn new(p: &PartsOutcome) -> Self {
        Self {
            written: p.written,
            kept: p
                .kept
                .iter()
                .map(|(path, why)| KeptJson {
                    path: path.display().to_string(),
                    reason: kept_reason(*why),
                })
                .collect(),
        }
    }
}

fn kept_reason(action: PartAction) -> &'static str {
    match action {
        PartAction::LocalAhead => "local-ahead",
        _ => "differs",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ForkJson {
    /// Whose branch the fork holds.
    machine: String,
    session_id: String,
    transcript: String,
    action: &'static str,
    held: Option<String>,
    side_files: SideFilesJson,
}

fn action_name(action: Action) -> &'static str {
    match action {
        Action::Install { .. } => "installed",
        Action::FastForward { .. } => "updated",
        Action::Keep => "unchanged",
    }
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct CopyJson {
    machine: String,
    /// `chosen`, `up-to-date`, `contained`, `local-ahead`, `diverged`.
    verdict: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProblemJson {
    what: String,
    error: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PullJson {
    location: String,
    sessions: Vec<OutcomeJson>,
    failed: Vec<ProblemJson>,
    /// This machine's objects removed because another machine's copy
    /// extends them.
    removed: Vec<String>,
    /// With `setup = true`: what became of the other machines' setups.
    #[serde(skip_serializing_if = "Option::is_none")]
    setup: Option<super::setup::PulledJson>,
}

impl OutcomeJson {
    pub fn new(o: &SessionOutcome) -> Self {
        Self {
            session_id: o.id.to_string(),
            project_key: o.key.to_string(),
            action: action_name(o.action),
            from_machine: o.from.as_ref().map(ToString::to_string),
            transcript: o.transcript.display().to_string(),
            cwd: o.cwd.display().to_string(),
            bytes: o.bytes,
            lines: o.lines,
            copies: o
                .verdicts
                .iter()
                .map(|(m, v)| CopyJson {
                    machine: m.to_string(),
                    verdict: match v {
                        Verdict::Chosen => "chosen",
                        Verdict::UpToDate => "up-to-date",
                        Verdict::Contained => "contained",
                        Verdict::LocalAhead => "local-ahead",
                        Verdict::Diverged => "diverged",
                    },
                })
                .collect(),
            held: o.held.as_ref().map(ToString::to_string),
            forks: o
                .forks
                .iter()
                .map(|f| ForkJson {
                    machine: f.machine.to_string(),
                    session_id: f.id.to_string(),
                    transcript: f.transcript.display().to_string(),
                    action: action_name(f.action),
                    held: f.held.as_ref().map(ToString::to_string),
                    side_files: SideFilesJson::new(&f.parts),
                })
                .collect(),
            side_files: SideFilesJson::new(&o.parts),
            moved_from: o.relocated_from.as_ref().map(|p| p.display().to_string()),
        }
    }
}

/// Tells the user what happened to one session and how to resume it.
pub fn describe(env: &Env, o: &SessionOutcome) {
    let from = o
        .from
        .as_ref()
        .map_or(String::new(), |m| format!(" from {m}"));
    match o.action {
        Action::Install { .. } => env.ui.status(format_args!(
            "installed {}{from} ({}) at {}",
            o.id,
            ui::size(o.bytes),
            o.transcript.display()
        )),
        Action::FastForward { .. } => env.ui.status(format_args!(
            "updated {}{from} to {} ({})",
            o.id,
            ui::plural(o.lines as usize, "line", "lines"),
            ui::size(o.bytes)
        )),
        Action::Keep => {}
    }
    if let Some(old) = &o.relocated_from {
        env.ui.status(format_args!(
            "moved {} here from {} (it was moved to another directory on the other machine)",
            o.id,
            old.display()
        ));
    }
    describe_parts(env, &o.parts);
    if o.from.is_some() {
        if !o.cwd.is_dir() {
            env.ui.warn(format_args!(
                "{} does not exist here yet; create it before resuming",
                o.cwd.display()
            ));
        }
        env.ui.status(format_args!(
            "  resume with: cd {} && claude --resume {}",
            ui::shell_word(&o.cwd.to_string_lossy()),
            o.id
        ));
    }
    if let Some(held) = &o.held {
        env.ui.warn(format_args!(
            "left {} alone: Claude Code is writing it ({held}); pull again when that session is closed, or use --force",
            o.id
        ));
    }
    // Advice only when it is actionable (lines this machine already pushed
    // reach the others when they pull), and not twice in a row.
    for (machine, verdict) in &o.verdicts {
        if *verdict == Verdict::LocalAhead && o.advise_push {
            env.ui.status(format_args!(
                "kept {}: this machine has lines that {machine}'s copy lacks; `ccsync push {}` sends them",
                o.id, o.id
            ));
        }
    }
    for fork in &o.forks {
        let cwd = ui::shell_word(&o.cwd.to_string_lossy());
        match (&fork.held, fork.action) {
            (Some(held), _) => env.ui.warn(format_args!(
                "left fork {} alone: Claude Code is writing it ({held})",
                fork.id
            )),
            (None, Action::Keep) => {}
            (None, _) => env.ui.status(format_args!(
                "{} was continued both here and on {m}: this machine's branch stays {}, {m}'s is session {}\n  resume it with: cd {cwd} && claude --resume {}",
                o.id,
                o.id,
                fork.id,
                fork.id,
                m = fork.machine,
            )),
        }
        if fork.held.is_none() {
            describe_parts(env, &fork.parts);
        }
    }
}

fn describe_parts(env: &Env, parts: &PartsOutcome) {
    if parts.written > 0 {
        env.ui.status(format_args!(
            "  {} written",
            ui::plural(parts.written, "side file", "side files")
        ));
    }
    for (path, why) in &parts.kept {
        env.ui.status(format_args!(
            "  kept {} as it is here: {}",
            path.display(),
            match why {
                PartAction::LocalAhead => "this machine's is longer",
                _ => "it differs from the incoming one, and this machine's session is not behind",
            }
        ));
    }
}

/// Remembers where sessions and forks were written, to tie them to their
/// directory before Claude Code has written a line of its own here.
pub fn record_placements(state: &mut State, outcomes: &[SessionOutcome]) {
    for o in outcomes {
        if o.from.is_some() {
            state.record_placement(&o.id, &o.cwd);
        }
        for fork in o.forks.iter().filter(|f| f.action != Action::Keep) {
            state.record_placement(&fork.id, &o.cwd);
        }
    }
}

/// The session `wanted` names in the sync dir: a whole id (no listing
/// needed) or a unique prefix. Only other machines' copies count: a pull
/// skips this machine's own.
fn remote_session(
    transport: &dyn ccsync::transport::Transport,
    me: &ccsync::names::MachineName,
    wanted: &str,
) -> Result<SessionId> {
    if let Ok(id) = SessionId::parse(&wanted.to_ascii_lowercase()) {
        return Ok(id);
    }
    super::remote_session(
        &transport.list()?.objects,
        &transport.location(),
        wanted,
        Some(me),
    )
}

pub fn run(env: &Env, args: &PullArgs) -> Result<Outcome> {
    let (config, machine, transport) = env.open_transport()?;
    let keys = config.key_map()?;
    let _lock = env.lock()?;
    let mut index = env.load_index();
    let only = match args.session.as_deref() {
        Some(wanted) => Some(remote_session(transport.as_ref(), &machine, wanted)?),
        None => None,
    };
    let mut resolver = env.resolver();
    let here = resolver.place(&env.cwd.to_string_lossy());
    let mut state = env.config_dir.load_state()?;
    let loaded = state.clone();

    let mut checkouts = BTreeMap::new();
    let mut local = None;
    if args.all || only.is_some() || config.setup {
        local = Some(Local::scan(env, &mut resolver, &mut index, &state)?);
    }
    if let Some(local) = local.as_ref().filter(|_| args.all || only.is_some()) {
        // Keys an older ccsync remembered unfolded are known by today's.
        checkouts = known_projects(&state, local)
            .into_iter()
            .map(|(key, root)| (keys.folding.fold(&key), root))
            .collect();
    }
    // With --all too: the checkout it runs in is known from now on.
    if !args.all || here.root.join(".git").exists() {
        checkouts.insert(here.key.clone(), here.root.clone());
    }
    let checkouts: Vec<Checkout> = checkouts
        .into_iter()
        .map(|(key, root)| Checkout { key, root })
        .collect();

    let staging = env.config_dir.staging()?;
    let except = match args.except.as_deref() {
        Some(id) => Some(SessionId::parse(&id.to_ascii_lowercase())?),
        None => None,
    };
    let mut installer = env.installer(args.force)?;
    installer.hold = except.clone();
    installer.dry_run = args.dry_run;
    let layers = env.layers(&config)?;
    let mut link = Link {
        transport: transport.as_ref(),
        layers: &layers,
        staging: &staging,
        machine: &machine,
        index: &mut index,
        progress: &env.ui.bar("pulling"),
        dry_run: args.dry_run,
    };
    let report = pull::pull(
        &mut link,
        &installer,
        &checkouts,
        &keys,
        only.as_ref(),
        except.as_ref(),
    )?;
    // A dry run says what sessions would do; the setup is left alone.
    let setup = match &local {
        Some(local) if config.setup && !args.dry_run => {
            let places = super::setup::places(env, &config, &state, local)?;
            Some(super::setup::pull(env, &mut link, &places, &keys))
        }
        _ => None,
    };
    super::notes::warn_skewed(env, installer.take_skewed());
    super::notes::note_clamped(env, &installer);
    if let Some(id) = &only
        && report.outcomes.is_empty()
        && report.failed.is_empty()
        && report.bad_objects.is_empty()
        && report.refused.is_empty()
    {
        return Err(crate::error::hinted(
            format!(
                "session {id} is not in {} for any project with a checkout here",
                transport.location()
            ),
            "cd into the checkout and pull again, or `ccsync list --remote` to see what is there",
        ));
    }

    if args.dry_run {
        return dry_run(env, &transport.location(), &report, args.json);
    }
    let now = now_ms();
    for o in &report.outcomes {
        if let Some(c) = checkouts.iter().find(|c| c.key == o.key) {
            state.remember(&c.key, &c.root, now);
        }
    }
    record_placements(&mut state, &report.outcomes);
    env.save_state(&loaded, &state);
    env.save_index(&index);
    if config.recall {
        super::notes::recall_prompts(env, &installer, &report);
    }
    if !args.all && report.outcomes.is_empty() && report.failed.is_empty() {
        hint_other_projects(env, &here.key, &transport.location(), &report);
    }
    env.activity.set(
        report
            .outcomes
            .iter()
            .filter(|o| {
                o.action != Action::Keep || o.forks.iter().any(|f| f.action != Action::Keep)
            })
            .count(),
    );
    let (setup, setup_ok) = match setup {
        Some((json, ok)) => (Some(json), ok),
        None => (None, true),
    };
    match print_report(env, &transport.location(), &report, args.json, setup)? {
        Outcome::Success if !setup_ok => Ok(Outcome::Partial),
        outcome => Ok(outcome),
    }
}

/// What `pull --dry-run` says: per session what would be written where,
/// and why; nothing was.
fn dry_run(env: &Env, location: &str, report: &PullReport, json: bool) -> Result<Outcome> {
    let why = |o: &SessionOutcome| -> String {
        let mut v: Vec<String> = o
            .verdicts
            .iter()
            .map(|(m, v)| {
                let said = match v {
                    Verdict::Chosen => "the longest copy, taken",
                    Verdict::UpToDate => "the same as here",
                    Verdict::Contained => "holds nothing new",
                    Verdict::LocalAhead => "this machine has more",
                    Verdict::Diverged => "a branch of its own",
                };
                format!("{m}'s {said}")
            })
            .collect();
        v.dedup();
        v.join("; ")
    };
    let mut rows = Vec::new();
    for o in &report.outcomes {
        let (what, bytes) = match (o.held.as_ref(), o.action) {
            (Some(held), _) => (format!("keep (Claude Code is writing it: {held})"), 0),
            (None, Action::Install { .. }) => ("install".to_owned(), o.bytes),
            (None, Action::FastForward { .. }) => ("update".to_owned(), o.bytes),
            (None, Action::Keep) => ("keep".to_owned(), 0),
        };
        env.ui.status(format_args!(
            "would {what} {}{} ({}): {}{}",
            o.id,
            o.from
                .as_ref()
                .map_or(String::new(), |m| format!(" from {m}")),
            ui::size(bytes),
            why(o),
            if o.parts.written > 0 {
                format!(
                    "; {}",
                    ui::plural(o.parts.written, "side file", "side files")
                )
            } else {
                String::new()
            }
        ));
        rows.push(serde_json::json!({
            "sessionId": o.id.to_string(),
            "action": what,
            "from": o.from.as_ref().map(ToString::to_string),
            "bytes": bytes,
            "transcript": o.transcript.display().to_string(),
            "why": why(o),
            "sideFiles": o.parts.written,
        }));
        for f in &o.forks {
            let fork_what = match (&f.held, f.action) {
                (Some(_), _) | (None, Action::Keep) => "keep",
                (None, _) => "fork",
            };
            env.ui.status(format_args!(
                "would {fork_what} {}'s branch of {} as session {}",
                f.machine, o.id, f.id
            ));
            rows.push(serde_json::json!({
                "sessionId": f.id.to_string(),
                "action": fork_what,
                "from": f.machine.to_string(),
                "branchOf": o.id.to_string(),
                "transcript": f.transcript.display().to_string(),
            }));
        }
    }
    for (name, reason) in &report.bad_objects {
        env.ui
            .warn(format_args!("would skip {location}/{name}: {reason}"));
    }
    for (id, e) in &report.failed {
        env.ui.warn(format_args!("would fail {id}: {e}"));
    }
    env.ui.status(format_args!(
        "dry run: {} from {location}; nothing was written",
        ui::plural(report.outcomes.len(), "session", "sessions")
    ));
    if json {
        env.ui.json(&serde_json::json!({
            "dryRun": true,
            "location": location,
            "sessions": rows,
            "skipped": report.bad_objects.iter().map(|(n, r)| serde_json::json!({
                "object": n.to_string(), "reason": r,
            })).collect::<Vec<_>>(),
        }))?;
    }
    Ok(if report.incomplete() {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}

/// Nothing for this checkout, but sessions of other projects: perhaps one
/// of them is this repository under another remote. Say which keys are
/// there, the closest, and how to map it.
fn hint_other_projects(env: &Env, here: &ProjectKey, location: &str, report: &PullReport) {
    if report.other_projects.is_empty() {
        return;
    }
    let keys: Vec<ProjectKey> = report
        .other_projects
        .iter()
        .map(|(k, _)| k.clone())
        .collect();
    let listed: Vec<String> = report
        .other_projects
        .iter()
        .take(8)
        .map(|(k, n)| format!("{k} ({})", ui::plural(*n, "session", "sessions")))
        .collect();
    let more = report.other_projects.len().saturating_sub(listed.len());
    let closest = KeyMap::closest(here, &keys).expect("not empty");
    env.ui.status(format_args!(
        "nothing in {location} for {here} (this checkout); it holds {}{}.\n  \
         Closest: {closest}. If that is this repository under another remote, add to {}:\n  \
         [aliases]\n  {:?} = {:?}\n  and pull again",
        listed.join(", "),
        if more > 0 {
            format!(" and {more} more")
        } else {
            String::new()
        },
        env.config_dir.config_file().display(),
        closest.as_str(),
        here.as_str()
    ));
}

fn print_report(
    env: &Env,
    location: &str,
    report: &PullReport,
    json: bool,
    setup: Option<super::setup::PulledJson>,
) -> Result<Outcome> {
    for (id, machine, since) in &report.running_elsewhere {
        let since = since
            .map(|ms| {
                let t = std::time::UNIX_EPOCH + std::time::Duration::from_millis(ms);
                format!(" since {}", ui::time(t))
            })
            .unwrap_or_default();
        env.ui.warn(format_args!(
            "session {id} is running on {machine}{since}; continuing it here too makes two branches of it"
        ));
    }
    for o in &report.outcomes {
        describe(env, o);
    }
    for (name, reason) in &report.bad_objects {
        env.ui
            .warn(format_args!("skipped {location}/{name}: {reason}"));
    }
    for (path, reason) in &report.refused {
        env.ui.warn(format_args!("skipped {path}: {reason}"));
    }
    for name in &report.superseded {
        env.ui.status(format_args!(
            "removed {location}/{name}: this machine's older copy, which another machine's copy now extends"
        ));
    }
    for (name, reason) in &report.not_removed {
        env.ui.warn(format_args!(
            "could not remove this machine's older copy {location}/{name} (another machine's extends it): {reason}"
        ));
    }
    for (id, e) in &report.failed {
        env.ui.warn(format_args!("not pulled {id}: {e}"));
    }
    let written: Vec<_> = report
        .outcomes
        .iter()
        .filter(|o| o.from.is_some())
        .collect();
    let unchanged = report.outcomes.len() - written.len();
    let total: u64 = written.iter().map(|o| o.bytes).sum();
    let mut summary = format!(
        "pulled {} ({}) from {location}",
        ui::plural(written.len(), "session", "sessions"),
        ui::size(total)
    );
    if unchanged > 0 {
        summary.push_str(&format!("; {unchanged} unchanged"));
    }
    let forks = report
        .outcomes
        .iter()
        .flat_map(|o| &o.forks)
        .filter(|f| f.action != Action::Keep)
        .count();
    if forks > 0 {
        summary.push_str(&format!(
            "; {} of diverged sessions",
            ui::plural(forks, "fork", "forks")
        ));
    }
    let held = report.outcomes.iter().filter(|o| o.held.is_some()).count();
    if held > 0 {
        summary.push_str(&format!("; {held} in use, left alone"));
    }
    let problems = report.bad_objects.len() + report.refused.len() + report.failed.len();
    if problems > 0 {
        summary.push_str(&format!("; {problems} skipped"));
    }
    env.ui.status(summary);
    if json {
        env.ui.json(&PullJson {
            location: location.to_owned(),
            removed: report.superseded.iter().map(ToString::to_string).collect(),
            setup,
            sessions: report.outcomes.iter().map(OutcomeJson::new).collect(),
            failed: report
                .bad_objects
                .iter()
                .map(|(n, r)| ProblemJson {
                    what: n.to_string(),
                    error: r.clone(),
                })
                .chain(report.refused.iter().map(|(p, r)| ProblemJson {
                    what: p.clone(),
                    error: r.clone(),
                }))
                .chain(report.failed.iter().map(|(id, e)| ProblemJson {
                    what: id.to_string(),
                    error: e.to_string(),
                }))
                .collect(),
        })?;
    }
    Ok(if report.incomplete() {
        Outcome::Partial
    } else {
        Outcome::Success
    })
}
