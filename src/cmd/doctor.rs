//! `ccsync doctor [--json]`: plain checks, each with what to do about it.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;

use ccsync::config::Config;
use ccsync::names::MachineName;
use ccsync::transport::git::GitTransport;
use ccsync::transport::ssh::SshTransport;
use ccsync::transport::{Location, Transport};

use super::{Env, Local, Outcome, known_projects};
use crate::cli::DoctorArgs;
use crate::ui::plural;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
enum Status {
    Ok,
    Warn,
    Fail,
}

#[derive(Serialize)]
struct Check {
    name: &'static str,
    status: Status,
    message: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ProjectJson {
    project_key: String,
    root: String,
    exists: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SkippedJson {
    path: String,
    reason: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct MachineJson {
    machine: String,
    /// Session copies it has in the sync dir.
    objects: usize,
    /// When it last wrote a copy (or its claim), RFC 3339.
    last_push: Option<String>,
    /// Whether it has been silent for more than 30 days.
    silent: bool,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Report {
    checks: Vec<Check>,
    projects: Vec<ProjectJson>,
    untied: Vec<SkippedJson>,
    machines: Vec<MachineJson>,
    /// Conflict copies (`<name>.from-<machine>`) pulls of the setup left.
    setup_conflicts: Vec<String>,
}

/// A machine that has not pushed for this long may be gone.
const SILENT: std::time::Duration = std::time::Duration::from_secs(30 * 24 * 3600);

struct Checks(Vec<Check>);

impl Checks {
    fn push(&mut self, name: &'static str, status: Status, message: impl Into<String>) {
        self.0.push(Check {
            name,
            status,
            message: message.into(),
        });
    }
}

pub fn run(env: &Env, args: &DoctorArgs) -> Result<Outcome> {
    let mut checks = Checks(Vec::new());
    let config = match env.config_dir.load_config() {
        Ok(Some(c)) => {
            checks.push(
                "config",
                Status::Ok,
                format!(
                    "{} (machine {})",
                    env.config_dir.config_file().display(),
                    c.machine
                ),
            );
            Some(c)
        }
        Ok(None) => {
            checks.push(
                "config",
                Status::Fail,
                format!(
                    "no {}; run `ccsync init <sync-dir> --name <machine>`",
                    env.config_dir.config_file().display()
                ),
            );
            None
        }
        Err(e) => {
            checks.push("config", Status::Fail, e.to_string());
            None
        }
    };
    let mut machines = Vec::new();
    if let Some(config) = &config {
        machines = check_transport(env, config, &mut checks);
    }

    let claude_root = env.claude.root();
    if claude_root.is_dir() {
        checks.push(
            "claude",
            Status::Ok,
            format!("Claude Code config dir {}", claude_root.display()),
        );
    } else {
        checks.push(
            "claude",
            Status::Warn,
            format!(
                "{} does not exist: no Claude Code sessions on this machine (set CLAUDE_CONFIG_DIR if they are elsewhere)",
                claude_root.display()
            ),
        );
    }

    let mut resolver = env.resolver();
    let state = env.config_dir.load_state().unwrap_or_default();
    let (projects, untied) = match Local::scan(env, &mut resolver, &mut env.load_index(), &state) {
        Ok(local) => {
            let mut projects: BTreeMap<String, (String, bool)> = known_projects(&state, &local)
                .into_iter()
                .map(|(k, root)| (k.to_string(), (root.display().to_string(), true)))
                .collect();
            for (key, p) in &state.projects {
                if !p.root.is_dir() {
                    projects.insert(key.clone(), (p.root.display().to_string(), false));
                    checks.push(
                        "paths",
                        Status::Warn,
                        format!(
                            "checkout {} of {key} is gone; pull from its new place to update it",
                            p.root.display()
                        ),
                    );
                }
            }
            checks.push(
                "sessions",
                Status::Ok,
                format!(
                    "{} in {}",
                    plural(local.sessions.len(), "session", "sessions"),
                    plural(projects.len(), "project", "projects")
                ),
            );
            if !local.skipped.is_empty() {
                checks.push(
                    "untied",
                    Status::Warn,
                    format!(
                        "{} under {} cannot be tied to a project; not synced (listed below)",
                        plural(local.skipped.len(), "file", "files"),
                        env.claude.projects_dir().display()
                    ),
                );
            }
            (projects, local.skipped)
        }
        Err(e) => {
            checks.push("sessions", Status::Fail, format!("{e:#}"));
            (BTreeMap::new(), Vec::new())
        }
    };

    let setup_conflicts = super::setup::conflicts(env);
    match &config {
        Some(c) if c.setup || !setup_conflicts.is_empty() => {
            if setup_conflicts.is_empty() {
                checks.push("setup", Status::Ok, "your setup travels; no conflicts");
            } else {
                checks.push(
                    "setup",
                    Status::Warn,
                    format!(
                        "{} changed here and on another machine; this machine's was kept, the other's is beside it: {}. Merge each by hand, then delete the copy",
                        crate::ui::plural(setup_conflicts.len(), "file", "files"),
                        setup_conflicts
                            .iter()
                            .map(|p| p.display().to_string())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                );
            }
        }
        _ => {}
    }
    let failed = checks.0.iter().any(|c| c.status == Status::Fail);
    if args.json {
        env.ui.json(&Report {
            checks: checks.0,
            projects: projects
                .into_iter()
                .map(|(k, (root, exists))| ProjectJson {
                    project_key: k,
                    root,
                    exists,
                })
                .collect(),
            untied: untied
                .iter()
                .map(|s| SkippedJson {
                    path: s.path.display().to_string(),
                    reason: s.reason.clone(),
                })
                .collect(),
            machines,
            setup_conflicts: setup_conflicts
                .iter()
                .map(|p| p.display().to_string())
                .collect(),
        })?;
    } else {
        for c in &checks.0 {
            let (mark, style) = match c.status {
                Status::Ok => ("ok  ", crate::color::DONE),
                Status::Warn => ("warn", crate::color::WARNING),
                Status::Fail => ("FAIL", crate::color::ERROR),
            };
            env.ui.data(format_args!(
                "[{style}{mark}{style:#}] {}: {}",
                c.name, c.message
            ))?;
        }
        for (key, (root, exists)) in &projects {
            let gone = if *exists { "" } else { "  (missing)" };
            env.ui.data(format_args!("project {key} -> {root}{gone}"))?;
        }
        for s in &untied {
            env.ui
                .data(format_args!("untied {}: {}", s.path.display(), s.reason))?;
        }
        for m in &machines {
            env.ui.data(format_args!(
                "machine {}: {}, last push {}{}",
                m.machine,
                crate::ui::plural(m.objects, "copy", "copies"),
                m.last_push.as_deref().unwrap_or("unknown"),
                if m.silent {
                    "  (silent for over 30 days)"
                } else {
                    ""
                }
            ))?;
        }
    }
    Ok(if failed {
        Outcome::Problems
    } else {
        Outcome::Success
    })
}

fn check_transport(env: &Env, config: &Config, checks: &mut Checks) -> Vec<MachineJson> {
    let (location, opener) = match env
        .location(&config.location)
        .and_then(|l| Ok((l, env.opener()?)))
    {
        Ok(found) => found,
        Err(e) => {
            checks.push("transport", Status::Fail, format!("{e:#}"));
            return Vec::new();
        }
    };
    if let Location::Ssh(target) = &location {
        let ssh = SshTransport::from_opener(target.clone(), &opener);
        match ssh.version() {
            Ok(v) => checks.push("ssh", Status::Ok, v),
            Err(e) => {
                checks.push("ssh", Status::Fail, e.to_string());
                return Vec::new();
            }
        }
        // The first command opens the shared connection; the second shows
        // what each later command costs.
        match ssh
            .round_trip()
            .and_then(|first| Ok((first, ssh.round_trip()?)))
        {
            Ok((first, then)) => checks.push(
                "connection",
                Status::Ok,
                format!(
                    "{} reached: {} ms to connect, {} ms a round trip",
                    target.host,
                    first.as_millis(),
                    then.as_millis()
                ),
            ),
            Err(e) => {
                checks.push("connection", Status::Fail, e.to_string());
                return Vec::new();
            }
        }
    }
    if let Location::Object(target) = &location {
        // Reached, the credentials accepted and writable, in one probe.
        let store = location.open_object(target, &opener);
        let start = std::time::Instant::now();
        match store.check_writable() {
            Ok(()) => checks.push(
                "object store",
                Status::Ok,
                format!(
                    "{target} reached, credentials accepted: {} ms for {} requests (a write and a delete)",
                    start.elapsed().as_millis(),
                    store.requests()
                ),
            ),
            Err(e) => {
                checks.push("object store", Status::Fail, e.to_string());
                return Vec::new();
            }
        }
    }
    if let Location::Git(target) = &location {
        let git = GitTransport::from_opener(target.clone(), &opener);
        match git.version() {
            Ok(v) => checks.push("git", Status::Ok, v),
            Err(e) => {
                checks.push("git", Status::Fail, e.to_string());
                return Vec::new();
            }
        }
        let branch = &target.branch;
        match git.reach() {
            Ok((took, None)) => checks.push(
                "connection",
                Status::Ok,
                format!(
                    "{} reached in {} ms; it has no branch {branch} yet (the first push makes it)",
                    target.url,
                    took.as_millis()
                ),
            ),
            Ok((took, Some((commits, objects)))) => {
                checks.push(
                    "connection",
                    Status::Ok,
                    format!(
                        "{} reached, credentials accepted: branch {branch} fetched in {} ms ({}, {})",
                        target.url,
                        took.as_millis(),
                        plural(commits as usize, "commit", "commits"),
                        plural(objects, "object", "objects")
                    ),
                );
                // Compaction keeps it under the limit unless the server
                // refuses a rewritten branch.
                if commits > 2 * u64::from(ccsync::transport::git::HISTORY_LIMIT) {
                    checks.push(
                        "history",
                        Status::Warn,
                        format!(
                            "branch {branch} holds {commits} commits: the server seems to refuse the force push that starts it afresh every {} commits; allow force pushes to {branch} (a protected branch, or receive.denyNonFastForwards)",
                            ccsync::transport::git::HISTORY_LIMIT
                        ),
                    );
                }
            }
            Err(e) => {
                checks.push("connection", Status::Fail, e.to_string());
                return Vec::new();
            }
        }
    }
    let transport = location.open(&opener);
    match transport.check_writable() {
        Ok(()) if matches!(location, Location::Git(_)) => checks.push(
            "transport",
            Status::Ok,
            format!(
                "{} takes a push from this machine (a dry run: nothing was written)",
                transport.location()
            ),
        ),
        Ok(()) => checks.push(
            "transport",
            Status::Ok,
            format!("{} is writable", transport.location()),
        ),
        Err(e) => {
            checks.push("transport", Status::Fail, e.to_string());
            return Vec::new();
        }
    }
    let Ok(machine) = config.machine_name() else {
        return Vec::new();
    };
    check_machine_name(config, &machine, transport.as_ref(), checks);
    match transport.list() {
        Ok(listing) => check_machines(&listing, checks),
        Err(_) => Vec::new(),
    }
}

/// Every machine with a claim or a copy in the sync dir, when it last
/// wrote, and a warning for those silent for over 30 days.
fn check_machines(listing: &ccsync::transport::Listing, checks: &mut Checks) -> Vec<MachineJson> {
    let mut seen: BTreeMap<MachineName, (usize, Option<std::time::SystemTime>)> = BTreeMap::new();
    for o in &listing.objects {
        // A segment is a write of that machine's too, but not a copy.
        let (machine, is_copy) = match (o.name.copy_of(), o.name.claimed_machine()) {
            (Some((_, m)), _) => (m, o.name.session().is_some()),
            (None, Some(m)) => (m, false),
            _ => continue,
        };
        let entry = seen.entry(machine).or_default();
        entry.0 += usize::from(is_copy);
        entry.1 = entry.1.max(o.modified);
    }
    let now = std::time::SystemTime::now();
    seen.into_iter()
        .map(|(machine, (objects, last))| {
            let silent = last.is_some_and(|t| now.duration_since(t).is_ok_and(|d| d > SILENT));
            if silent {
                checks.push(
                    "machines",
                    Status::Warn,
                    format!(
                        "{machine} has not pushed since {}; if it is gone, `ccsync forget --machine {machine}` removes its copies",
                        last.map_or_else(String::new, crate::ui::time)
                    ),
                );
            }
            MachineJson {
                machine: machine.to_string(),
                objects,
                last_push: last.map(crate::ui::rfc3339),
                silent,
            }
        })
        .collect()
}

/// A pull skips this machine's own files, so a name shared with another
/// machine makes that machine's sessions silently never arrive.
fn check_machine_name(
    config: &Config,
    machine: &MachineName,
    transport: &dyn Transport,
    checks: &mut Checks,
) {
    match super::init::read_claim(transport, machine) {
        Ok(Some(claim)) if claim.machine_id == config.machine_id => {
            checks.push("machine", Status::Ok, format!("name {machine} is claimed by this machine"))
        }
        Ok(Some(_)) => checks.push(
            "machine",
            Status::Fail,
            format!(
                "another machine also calls itself {machine} in {}: pulls here skip its sessions as this machine's own. Give one of them another name with `ccsync init <sync-dir> --name <other>`",
                transport.location()
            ),
        ),
        Ok(None) => checks.push(
            "machine",
            Status::Warn,
            format!("no claim for {machine} in {}; run `ccsync init` again to make one", transport.location()),
        ),
        Err(e) => checks.push("machine", Status::Fail, format!("{e:#}")),
    }
    if let Ok(objects) = transport.list() {
        let lower = machine.as_str().to_ascii_lowercase();
        let mut twins: Vec<String> = objects
            .objects
            .iter()
            .filter_map(|o| o.name.claimed_machine())
            .filter(|m| m != machine && m.as_str().to_ascii_lowercase() == lower)
            .map(|m| m.to_string())
            .collect();
        twins.dedup();
        if !twins.is_empty() {
            checks.push(
                "machine",
                Status::Warn,
                format!(
                    "names {} differ from {machine} only by case and collide on macOS and Windows file systems; rename one",
                    twins.join(", ")
                ),
            );
        }
    }
}
