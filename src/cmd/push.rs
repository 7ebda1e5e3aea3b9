//! `ccsync push [SESSION_ID] [--all]`

use anyhow::Result;
use serde::Serialize;

use ccsync::claude::parts::PartFinder;
use ccsync::config::SecretsPolicy;
use ccsync::sync::scan::SecretScan;
use ccsync::sync::{Link, now_ms, push};

use super::{Env, Local, Outcome};
use crate::cli::PushArgs;
use crate::ui;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PushedJson {
    session_id: String,
    project_key: String,
    object: String,
    bytes: u64,
    lines: u64,
    partial_tail_bytes: u64,
    side_files: usize,
    side_files_left_behind: Vec<String>,
    /// What looked like credentials: where, and what kind (never the value).
    secrets: Vec<SecretJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SecretJson {
    file: String,
    line: u64,
    kind: &'static str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FailedJson {
    session_id: String,
    error: String,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct PushJson {
    location: String,
    pushed: Vec<PushedJson>,
    /// Sessions whose copy in the transport is already what is here.
    unchanged: Vec<String>,
    failed: Vec<FailedJson>,
    /// This machine's copies under a project a session has left (`/cd`).
    removed: Vec<String>,
    /// With `setup = true`: this machine's setup snapshot.
    #[serde(skip_serializing_if = "Option::is_none")]
    setup: Option<super::setup::PushedJson>,
}

pub fn run(env: &Env, args: &PushArgs) -> Result<Outcome> {
    let (config, machine, transport) = env.open_transport()?;
    let _lock = env.lock()?;
    let mut state = env.config_dir.load_state()?;
    let loaded = state.clone();
    let mut resolver = env.resolver();
    let (mut index, local) = Local::scan_loading_index(env, &mut resolver, &state)?;
    let chosen = if args.all {
        if !local.skipped.is_empty() {
            env.ui.status(format_args!(
                "skipping {} under {} that cannot be tied to a project (see `ccsync doctor`)",
                ui::plural(local.skipped.len(), "file", "files"),
                env.claude.projects_dir().display()
            ));
        }
        local.sessions.clone()
    } else if args.session.is_some() {
        let here = resolver.place(&env.cwd.to_string_lossy());
        vec![local.chosen(args.session.as_deref(), &here, env)?.clone()]
    } else {
        // Every session of this project: those unchanged since this machine
        // last pushed them cost nothing (the index vouches for them).
        let here = resolver.place(&env.cwd.to_string_lossy());
        let all = local.of_project(&here.key);
        // With the setup there is something to push even so.
        if all.is_empty() && !config.setup {
            local.chosen(None, &here, env)?;
        }
        all
    };

    let staging = env.config_dir.staging()?;
    let now = now_ms();
    let layers = env.layers(&config)?;
    let mut link = Link {
        transport: transport.as_ref(),
        layers: &layers,
        staging: &staging,
        machine: &machine,
        index: &mut index,
        progress: &env.ui.bar("pushing"),
        dry_run: args.dry_run,
    };
    let finder = PartFinder::new(&env.claude);
    let scan = match config.secrets {
        SecretsPolicy::Off => SecretScan::Off,
        SecretsPolicy::Refuse if !args.allow_secrets => SecretScan::Refuse,
        SecretsPolicy::Warn | SecretsPolicy::Refuse => SecretScan::Warn,
    };
    let report = push::push(&mut link, &finder, &chosen, now, args.force, scan)?;
    if args.dry_run {
        return dry_run(env, &report, &transport.location(), args.json);
    }
    let (setup, setup_ok) = if config.setup {
        let places = super::setup::places(env, &config, &state, &local)?;
        super::setup::push(env, &mut link, &places, scan)
    } else {
        (None, true)
    };

    env.save_index(&index);
    for (_, placement) in chosen
        .iter()
        .filter(|(s, _)| report.pushed.iter().any(|p| p.id == s.file.id))
    {
        if placement.root.is_dir() {
            state.remember(&placement.key, &placement.root, now);
        }
    }
    env.save_state(&loaded, &state);

    for p in &report.pushed {
        env.ui.status(format_args!(
            "pushed {} ({}, {}{}) for {}",
            p.id,
            ui::size(p.bytes),
            ui::plural(p.lines as usize, "line", "lines"),
            ui::side_files(p.parts),
            p.key
        ));
        ui::report_skipped_parts(&env.ui, &p.skipped_parts);
        ui::report_secrets(&env.ui, &p.id, &p.secrets, "was pushed");
        if p.partial_tail > 0 {
            env.ui.status(format_args!(
                "  left behind the last {} of {}: a line Claude Code is still writing; push again once it is done",
                ui::size(p.partial_tail),
                p.id
            ));
        }
    }
    for (id, e) in &report.failed {
        env.ui.warn(format_args!("not pushed {id}: {e}"));
    }
    env.activity.set(report.pushed.len());
    let total: u64 = report.pushed.iter().map(|p| p.bytes).sum();
    let mut summary = format!(
        "pushed {} ({}) to {}",
        ui::plural(report.pushed.len(), "session", "sessions"),
        ui::size(total),
        transport.location()
    );
    if !report.unchanged.is_empty() {
        summary.push_str(&format!("; {} unchanged", report.unchanged.len()));
    }
    env.ui.status(summary);
    for name in &report.moved {
        env.ui.status(format_args!(
            "removed {}/{name}: its session moved to another project here",
            transport.location()
        ));
    }
    if args.json {
        env.ui.json(&PushJson {
            location: transport.location(),
            pushed: report
                .pushed
                .iter()
                .map(|p| PushedJson {
                    session_id: p.id.to_string(),
                    project_key: p.key.to_string(),
                    object: p.object.to_string(),
                    bytes: p.bytes,
                    lines: p.lines,
                    partial_tail_bytes: p.partial_tail,
                    side_files: p.parts,
                    side_files_left_behind: p
                        .skipped_parts
                        .iter()
                        .map(|(path, _)| path.display().to_string())
                        .collect(),
                    secrets: p
                        .secrets
                        .found
                        .iter()
                        .map(|(path, f)| SecretJson {
                            file: path.display().to_string(),
                            line: f.line,
                            kind: f.kind,
                        })
                        .collect(),
                })
                .collect(),
            unchanged: report.unchanged.iter().map(ToString::to_string).collect(),
            failed: report
                .failed
                .iter()
                .map(|(id, e)| FailedJson {
                    session_id: id.to_string(),
                    error: e.to_string(),
                })
                .collect(),
            removed: report.moved.iter().map(ToString::to_string).collect(),
            setup,
        })?;
    }
    if report.failed.is_empty() && setup_ok {
        Ok(Outcome::Success)
    } else if !args.all && report.pushed.is_empty() && report.unchanged.is_empty() {
        let (_, e) = report.failed.into_iter().next().expect("one failure");
        Err(e.into())
    } else {
        Ok(Outcome::Partial)
    }
}

/// What `push --dry-run` says: per session what would go and why; nothing
/// was written.
fn dry_run(env: &Env, report: &push::PushReport, location: &str, json: bool) -> Result<Outcome> {
    for p in &report.pushed {
        env.ui.status(format_args!(
            "would push {} ({}{}): {}, {}",
            p.id,
            match p.segment {
                Some(seq) => format!("segment {seq}"),
                None => "whole".to_owned(),
            },
            ui::side_files(p.parts),
            p.why,
            ui::size(p.sent)
        ));
    }
    for (id, e) in &report.failed {
        env.ui.warn(format_args!("would not push {id}: {e}"));
    }
    let total: u64 = report.pushed.iter().map(|p| p.sent).sum();
    env.ui.status(format_args!(
        "dry run: would push {} ({}) to {location}; {} unchanged; nothing was written",
        ui::plural(report.pushed.len(), "session", "sessions"),
        ui::size(total),
        report.unchanged.len()
    ));
    if json {
        env.ui.json(&serde_json::json!({
            "dryRun": true,
            "location": location,
            "wouldPush": report.pushed.iter().map(|p| serde_json::json!({
                "sessionId": p.id.to_string(),
                "projectKey": p.key.to_string(),
                "object": p.object.to_string(),
                "segment": p.segment,
                "why": p.why,
                "bytes": p.sent,
            })).collect::<Vec<_>>(),
            "unchanged": report.unchanged.iter().map(ToString::to_string).collect::<Vec<_>>(),
            "failed": report.failed.iter().map(|(id, e)| serde_json::json!({
                "sessionId": id.to_string(),
                "error": e.to_string(),
            })).collect::<Vec<_>>(),
        }))?;
    }
    Ok(if report.failed.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}
