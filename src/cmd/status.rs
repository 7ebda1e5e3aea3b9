//! `ccsync status`: this project's sessions here and how syncing is set
//! up. Reads only, needs no `init`, and never touches the network: `doctor`
//! is the command that reaches the sync dir.

use anyhow::Result;
use serde_json::{Map, Value};

use ccsync::claude::settings;
use ccsync::synced;

use super::{Env, Local, Outcome};
use crate::cli::StatusArgs;
use crate::ui;

/// Sessions shown before `ccsync list` is suggested for the rest.
const SHOWN: usize = 5;

pub fn run(env: &Env, _args: &StatusArgs) -> Result<Outcome> {
    let mut resolver = env.resolver();
    let here = resolver.place(&env.cwd.to_string_lossy());
    let local = Local::scan(
        env,
        &mut resolver,
        &mut env.load_index(),
        &env.config_dir.load_state().unwrap_or_default(),
    )?;
    let rows = super::list::rows(&local, |p| p.key == here.key);
    env.ui.data(format_args!(
        "project {} at {}: {} here",
        here.key,
        here.root.display(),
        ui::plural(rows.len(), "session", "sessions")
    ))?;
    super::list::print(env, &rows[..rows.len().min(SHOWN)])?;
    if rows.len() > SHOWN {
        env.ui.data(format_args!(
            "… and {} more (`ccsync list`)",
            rows.len() - SHOWN
        ))?;
    }
    let others = local.sessions.len() - rows.len();
    if others > 0 {
        env.ui.data(format_args!(
            "{} of other projects under {} (`ccsync list`)",
            ui::plural(others, "session", "sessions"),
            env.claude.projects_dir().display()
        ))?;
    }

    match env.config_dir.load_config() {
        Ok(Some(config)) => {
            let encrypted = match config.recipients.len() {
                0 => String::new(),
                n => format!(", encrypted to {}", ui::plural(n, "key", "keys")),
            };
            env.ui.data(format_args!(
                "sync dir {} as machine {}{encrypted} (config {})",
                config.location,
                config.machine,
                env.config_dir.config_file().display()
            ))?;
        }
        Ok(None) => {
            let found = directories::BaseDirs::new()
                .map(|b| synced::find(b.home_dir()))
                .unwrap_or_default();
            let found = found
                .iter()
                .map(|f| format!("{} ({})", f.path.display(), f.service))
                .collect::<Vec<_>>();
            env.ui.data(format_args!(
                "not set up to sync: `ccsync init <dir>` chooses a sync dir{}",
                if found.is_empty() {
                    String::new()
                } else {
                    format!("; synced folders here: {}", found.join(", "))
                }
            ))?;
        }
        Err(e) => env.ui.warn(format_args!("{e}")),
    }

    let settings_file = env.claude.root().join("settings.json");
    let settings: Map<String, Value> = std::fs::read(&settings_file)
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .unwrap_or_default();
    let hooks = settings::installed(&settings);
    let installed = hooks.iter().filter(|(_, c)| c.is_some()).count();
    env.ui.data(if installed == hooks.len() {
        format!(
            "hooks installed in {}: sessions sync as they end and start",
            settings_file.display()
        )
    } else if installed == 0 {
        "hooks not installed (`ccsync hooks install` syncs sessions as they end and start)"
            .to_owned()
    } else {
        format!(
            "hooks partly installed in {} (`ccsync hooks install` completes them)",
            settings_file.display()
        )
    })?;
    Ok(Outcome::Success)
}
