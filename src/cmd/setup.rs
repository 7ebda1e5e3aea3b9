//! The setup's part in `push`, `pull`, `list --setup` and `doctor`: where
//! it lives here, and how to say what became of it.

use std::path::PathBuf;

use anyhow::{Context, Result};
use serde::Serialize;

use ccsync::config::{Config, State};
use ccsync::project::KeyMap;
use ccsync::sync::Link;
use ccsync::sync::scan::SecretScan;
use ccsync::sync::setup::{self, Places, Pulled, Pushed};

use super::{Env, Local, Outcome, known_projects};
use crate::ui;

/// Where the setup lives on this machine: the config dir, the home, and
/// the memory folder of each project with a checkout here.
pub fn places(env: &Env, config: &Config, state: &State, local: &Local) -> Result<Places> {
    let home = directories::BaseDirs::new()
        .map(|b| b.home_dir().to_path_buf())
        .context("cannot find your home directory; set HOME")?;
    let keys = config.key_map()?;
    let mut memory = std::collections::BTreeMap::new();
    let mut projects = known_projects(state, local);
    let here = env.resolver().place(&env.cwd.to_string_lossy());
    if here.root.join(".git").exists() {
        projects.insert(here.key, here.root);
    }
    for (key, root) in projects {
        if let Some(cwd) = root.to_str()
            && let Ok(dir) = env.claude.project_dir_for(cwd)
        {
            memory.insert(keys.folding.fold(&key), dir);
        }
    }
    Ok(Places {
        root: env.claude.root().to_path_buf(),
        home,
        memory,
        exclude: config.setup_exclude.clone(),
        machines: {
            let base = env.load_index().setup;
            base.seen.into_keys().chain(base.kept.into_keys()).collect()
        },
    })
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct PushedJson {
    files: usize,
    /// Whether the snapshot was stored (false: unchanged since the last push).
    stored: bool,
}

/// Pushes the setup after the sessions; a failure is reported, not fatal.
/// Credentials found in it are named by file, line and kind (never the
/// value); with `SecretScan::Refuse` those files stay here.
pub fn push(
    env: &Env,
    link: &mut Link,
    places: &Places,
    scan: SecretScan,
) -> (Option<PushedJson>, bool) {
    let result = setup::push(link, places, ccsync::sync::now_ms(), scan);
    let mut clean = true;
    if let Ok((_, found)) = &result {
        const SHOWN: usize = 10;
        for (path, f) in found.iter().take(SHOWN) {
            env.ui.warn(format_args!(
                "setup: line {} of {path} holds what looks like a {}",
                f.line, f.kind
            ));
        }
        if found.len() > SHOWN {
            env.ui
                .warn(format_args!("setup: and {} more", found.len() - SHOWN));
        }
        if !found.is_empty() {
            clean = scan != SecretScan::Refuse;
            env.ui.warn(format_args!(
                "{}",
                if scan == SecretScan::Refuse {
                    "setup: kept those files here (`push --allow-secrets` sends them)"
                } else {
                    "setup: sent as it is; rotate keys that leave your machine. `secrets = \"refuse\"` in config.toml keeps such files here"
                }
            ));
        }
    }
    let (json, ok) = match result.map(|(p, _)| p) {
        Ok(Pushed::Stored { files, bytes }) => {
            env.ui.status(format_args!(
                "pushed your setup ({}, {})",
                ui::plural(files, "file", "files"),
                ui::size(bytes)
            ));
            (
                Some(PushedJson {
                    files,
                    stored: true,
                }),
                true,
            )
        }
        Ok(Pushed::Unchanged { files }) => (
            Some(PushedJson {
                files,
                stored: false,
            }),
            true,
        ),
        Err(e) => {
            env.ui.warn(format_args!("not pushed your setup: {e}"));
            (None, false)
        }
    };
    (json, ok && clean)
}

#[derive(Serialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct PulledJson {
    taken: Vec<FileJson>,
    deleted: Vec<FileJson>,
    conflicts: Vec<FileJson>,
    skipped: Vec<SkippedJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct FileJson {
    path: String,
    machine: String,
    /// For a conflict: where the other machine's version was saved.
    #[serde(skip_serializing_if = "Option::is_none")]
    saved_as: Option<String>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct SkippedJson {
    path: String,
    reason: String,
}

/// Pulls the other machines' setups after the sessions; a failure is
/// reported, not fatal.
pub fn pull(env: &Env, link: &mut Link, places: &Places, keys: &KeyMap) -> (PulledJson, bool) {
    let location = link.transport.location();
    let p: Pulled = match setup::pull(link, places, keys) {
        Ok(p) => p,
        Err(e) => {
            env.ui.warn(format_args!("not pulled the setup: {e}"));
            return (PulledJson::default(), false);
        }
    };
    let file = |(path, m): &(String, ccsync::names::MachineName)| FileJson {
        path: path.clone(),
        machine: m.to_string(),
        saved_as: None,
    };
    for (path, m) in &p.taken {
        env.ui.status(format_args!("setup: {path} from {m}"));
    }
    for (path, m) in &p.deleted {
        env.ui
            .status(format_args!("setup: removed {path} (deleted on {m})"));
    }
    for (path, m, beside) in &p.conflicts {
        env.ui.warn(format_args!(
            "setup: {path} changed here and on {m}: kept this machine's; {m}'s is at {} (merge them by hand, then delete it)",
            beside.display()
        ));
    }
    for (path, reason) in &p.skipped {
        env.ui
            .warn(format_args!("setup: left {path} alone: {reason}"));
    }
    for (name, reason) in &p.bad {
        env.ui
            .warn(format_args!("skipped {location}/{name}: {reason}"));
    }
    for m in &p.stale {
        env.ui.status(format_args!(
            "setup: ignored {m}'s snapshot: older than one already read (an old copy put back?); {m}'s next push replaces it"
        ));
    }
    if !p.withheld.is_empty() {
        env.ui.status(format_args!(
            "setup: left {} alone as this machine asks (excluded here, or a link here; `ccsync list --setup` says which)",
            ui::plural(p.withheld.len(), "file", "files")
        ));
    }
    if p.no_checkout > 0 {
        env.ui.status(format_args!(
            "setup: {} of projects with no checkout here left in the sync dir",
            ui::plural(p.no_checkout, "memory file", "memory files")
        ));
    }
    let ok = p.bad.is_empty() && p.skipped.is_empty();
    let json = PulledJson {
        taken: p.taken.iter().map(file).collect(),
        deleted: p.deleted.iter().map(file).collect(),
        conflicts: p
            .conflicts
            .iter()
            .map(|(path, m, beside)| FileJson {
                path: path.clone(),
                machine: m.to_string(),
                saved_as: Some(beside.display().to_string()),
            })
            .collect(),
        skipped: p
            .skipped
            .iter()
            .map(|(path, reason)| SkippedJson {
                path: path.clone(),
                reason: reason.clone(),
            })
            .chain(p.bad.iter().map(|(n, r)| SkippedJson {
                path: n.to_string(),
                reason: r.clone(),
            }))
            .collect(),
    };
    (json, ok)
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ListJson {
    enabled: bool,
    travels: Vec<TravelsJson>,
    excluded: Vec<SkippedJson>,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct TravelsJson {
    path: String,
    file: String,
    bytes: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    project_key: Option<String>,
}

/// `ccsync list --setup`: what would travel, what is excluded, and why.
pub fn list(env: &Env, json: bool) -> Result<Outcome> {
    let config = env.config_dir.require_config()?;
    let state = env.config_dir.load_state().unwrap_or_default();
    let local = Local::scan(env, &mut env.resolver(), &mut env.load_index(), &state)?;
    let places = places(env, &config, &state, &local)?;
    let inventory = places.scan();
    if json {
        env.ui.json(&ListJson {
            enabled: config.setup,
            travels: inventory
                .files
                .iter()
                .map(|f| TravelsJson {
                    path: f.path.clone(),
                    file: f.file.display().to_string(),
                    bytes: f.bytes.len() as u64,
                    project_key: f.project.as_ref().map(ToString::to_string),
                })
                .collect(),
            excluded: inventory
                .excluded
                .iter()
                .map(|e| SkippedJson {
                    path: e.path.clone(),
                    reason: e.reason.clone(),
                })
                .collect(),
        })?;
    } else {
        for f in &inventory.files {
            let project = f
                .project
                .as_ref()
                .map_or(String::new(), |k| format!("  ({k})"));
            env.ui.data(format_args!(
                "travels  {:>8}  {}{project}",
                ui::size(f.bytes.len() as u64),
                f.path
            ))?;
        }
        for e in &inventory.excluded {
            env.ui
                .data(format_args!("stays    {}: {}", e.path, e.reason))?;
        }
    }
    let total: u64 = inventory.files.iter().map(|f| f.bytes.len() as u64).sum();
    env.ui.status(format_args!(
        "{} ({}) would travel, {} stay{}",
        ui::plural(inventory.files.len(), "file", "files"),
        ui::size(total),
        inventory.excluded.len(),
        if config.setup {
            String::new()
        } else {
            format!(
                "; the setup does not travel yet: `ccsync init {} --setup` turns it on",
                config.location
            )
        }
    ));
    Ok(Outcome::Success)
}

/// Conflict copies a pull left (for `doctor`).
pub fn conflicts(env: &Env) -> Vec<PathBuf> {
    let Ok(config) = env.config_dir.require_config() else {
        return Vec::new();
    };
    let state = env.config_dir.load_state().unwrap_or_default();
    let Ok(local) = Local::scan(env, &mut env.resolver(), &mut env.load_index(), &state) else {
        return Vec::new();
    };
    match places(env, &config, &state, &local) {
        Ok(places) => setup::conflict_copies(&places),
        Err(_) => Vec::new(),
    }
}
