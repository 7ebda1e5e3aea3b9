//! `ccsync list [--remote] [--json]`

use anyhow::Result;
use serde::Serialize;

use ccsync::claude::transcript;
use ccsync::project::Placement;
use ccsync::transport::layout;

use super::{Env, Local, Outcome};
use crate::cli::ListArgs;
use crate::ui;

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LocalJson {
    session_id: String,
    project_key: String,
    cwd: String,
    transcript: String,
    bytes: u64,
    lines: u64,
    modified: String,
    first_prompt: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct RemoteJson {
    session_id: String,
    machine: String,
    /// `null` when the folder name was shortened and cannot be read back.
    project_key: Option<String>,
    object: String,
    bytes: u64,
    modified: Option<String>,
}

pub fn run(env: &Env, args: &ListArgs) -> Result<Outcome> {
    if args.setup {
        super::setup::list(env, args.json)
    } else if args.remote {
        remote(env, args.json)
    } else {
        local(env, args.json)
    }
}

fn local(env: &Env, json: bool) -> Result<Outcome> {
    let local = Local::scan(
        env,
        &mut env.resolver(),
        &mut env.load_index(),
        &env.config_dir.load_state().unwrap_or_default(),
    )?;
    let rows = rows(&local, |_| true);
    if json {
        env.ui
            .json(&rows.iter().map(|(_, r)| r).collect::<Vec<_>>())?;
    } else {
        print(env, &rows)?;
    }
    env.ui.status(format_args!(
        "{} under {}",
        ui::plural(rows.len(), "session", "sessions"),
        env.claude.projects_dir().display()
    ));
    if !local.skipped.is_empty() {
        env.ui.status(format_args!(
            "{} skipped: not sessions ccsync can move (see `ccsync doctor`)",
            ui::plural(local.skipped.len(), "file", "files")
        ));
    }
    Ok(Outcome::Success)
}

/// The local sessions `keep` accepts, newest first.
pub fn rows(
    local: &Local,
    keep: impl Fn(&Placement) -> bool,
) -> Vec<(std::time::SystemTime, LocalJson)> {
    let mut rows = Vec::new();
    for (s, placement) in local.sessions.iter().filter(|(_, p)| keep(p)) {
        let summary = transcript::summarize(&s.file.path).unwrap_or_default();
        rows.push((
            s.file.modified,
            LocalJson {
                session_id: s.file.id.to_string(),
                project_key: placement.key.to_string(),
                cwd: s.cwd.clone(),
                transcript: s.file.path.display().to_string(),
                bytes: s.file.size,
                lines: summary.lines,
                modified: ui::rfc3339(s.file.modified),
                first_prompt: summary.first_prompt,
            },
        ));
    }
    rows.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
    rows
}

/// The rows as a table on stdout, under a header (none when empty).
pub fn print(env: &Env, rows: &[(std::time::SystemTime, LocalJson)]) -> Result<()> {
    if rows.is_empty() {
        return Ok(());
    }
    let width = |f: fn(&LocalJson) -> usize, title: &str| {
        rows.iter()
            .map(|(_, r)| f(r))
            .chain([title.chars().count()])
            .max()
            .unwrap_or(0)
    };
    let key_width = width(|r| r.project_key.chars().count(), "PROJECT");
    let cwd_width = width(|r| r.cwd.chars().count(), "CWD");
    let line = |id: &str,
                time: &str,
                size: &str,
                lines: &str,
                key: &str,
                cwd: &str,
                prompt: &str| {
        format!(
            "{id:<36}  {time:<16}  {size:>8}  {lines:>6}  {key:<key_width$}  {cwd:<cwd_width$}  {prompt}"
        )
        .trim_end()
        .to_owned()
    };
    let header = line(
        "SESSION",
        "MODIFIED",
        "SIZE",
        "LINES",
        "PROJECT",
        "CWD",
        "FIRST PROMPT",
    );
    let style = crate::color::HEADER;
    env.ui.data(format_args!("{style}{header}{style:#}"))?;
    for (modified, row) in rows {
        let prompt: String = row
            .first_prompt
            .as_deref()
            .unwrap_or("")
            .chars()
            .take(60)
            .collect();
        env.ui.data(line(
            &row.session_id,
            &ui::time(*modified),
            &ui::size(row.bytes),
            &row.lines.to_string(),
            &row.project_key,
            &row.cwd,
            &prompt,
        ))?;
    }
    Ok(())
}

fn remote(env: &Env, json: bool) -> Result<Outcome> {
    let (_, _, transport) = env.open_transport()?;
    let mut rows = Vec::new();
    // A copy is its base and the segments after it: their bytes, and the
    // time of the last.
    let (copies, _) = ccsync::sync::copies::group(&transport.list()?.objects);
    for (name, copy) in copies {
        let Some((id, machine)) = name.session() else {
            continue;
        };
        let modified = copy
            .stamps()
            .map(|(_, s)| s.mtime_ns)
            .max()
            .filter(|ns| *ns > 0)
            .map(|ns| std::time::UNIX_EPOCH + std::time::Duration::from_nanos(ns));
        rows.push((
            modified,
            RemoteJson {
                session_id: id.to_string(),
                machine: machine.to_string(),
                project_key: layout::key_of_dir(name.dir()).map(|k| k.to_string()),
                object: name.to_string(),
                bytes: copy.stamps().map(|(_, s)| s.size).sum(),
                modified: modified.map(ui::rfc3339),
            },
        ));
    }
    if json {
        env.ui
            .json(&rows.iter().map(|(_, r)| r).collect::<Vec<_>>())?;
    } else if !rows.is_empty() {
        let style = crate::color::HEADER;
        env.ui.data(format_args!(
            "{style}{:<36}  {:<16}  {:<16}  {:>8}  PROJECT{style:#}",
            "SESSION", "MACHINE", "MODIFIED", "SIZE"
        ))?;
        for (modified, row) in &rows {
            env.ui.data(format_args!(
                "{}  {:<16}  {:<16}  {:>8}  {}",
                row.session_id,
                row.machine,
                modified.map_or("-".to_owned(), ui::time),
                ui::size(row.bytes),
                row.project_key.as_deref().unwrap_or(row.object.as_str()),
            ))?;
        }
    }
    env.ui.status(format_args!(
        "{} in {}",
        ui::plural(rows.len(), "bundle", "bundles"),
        transport.location()
    ));
    Ok(Outcome::Success)
}
