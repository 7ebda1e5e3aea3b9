//! `ccsync init [LOCATION] [--name MACHINE] [--create]`

use std::io::IsTerminal;
use std::path::Path;

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use ccsync::config::Config;
use ccsync::fsutil;
use ccsync::names::MachineName;
use ccsync::synced;
use ccsync::transport::ssh::SshTransport;
use ccsync::transport::{Location, ObjectName, Transport};

use super::{Env, Outcome};
use crate::cli::InitArgs;
use crate::error::{HintExt, hinted};
use crate::ui;

/// What `machines/<name>.json` in the sync dir holds.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Claim {
    pub machine: String,
    pub machine_id: String,
    pub claimed_at: u64,
}

/// The claim on `machine` in the transport, if any machine made one.
pub fn read_claim(transport: &dyn Transport, machine: &MachineName) -> Result<Option<Claim>> {
    let name = ObjectName::machine_claim(machine);
    if !transport.list()?.objects.iter().any(|o| o.name == name) {
        return Ok(None);
    }
    let bytes = ccsync::transport::fetch_small(transport, std::slice::from_ref(&name), 64 << 10)?
        .remove(0)
        .map_err(|reason| {
            anyhow::anyhow!("cannot read {name} in {}: {reason}", transport.location())
        })?;
    let claim = serde_json::from_slice(&bytes)
        .with_context(|| format!("{name} in {} is not a machine claim", transport.location()))?;
    Ok(Some(claim))
}

pub fn run(env: &Env, args: &InitArgs) -> Result<Outcome> {
    let machine = match &args.name {
        Some(name) => MachineName::parse(name)?,
        None => {
            let host = gethostname::gethostname();
            MachineName::from_hostname(&host.to_string_lossy())
                .with_context(|| format!("cannot make a machine name from the host name {host:?}"))
                .hint("pass --name")?
        }
    };
    let (text, chosen) = match &args.location {
        Some(text) => (text.clone(), false),
        None => choose_location()?,
    };
    let location = match env.location(&text)? {
        Location::Dir(dir) => {
            if !dir.exists() && !args.create && !chosen {
                confirm_create(&dir)?;
            }
            fsutil::create_private_dir_all(&dir)
                .with_context(|| format!("cannot create the sync dir {}", dir.display()))?;
            Location::Dir(dir.canonicalize()?)
        }
        other => other,
    };
    let _lock = env.lock()?;
    let opener = ccsync::transport::Opener {
        owner: Some(machine.clone()),
        ..env.opener()?
    };
    if let Location::Ssh(target) = &location {
        SshTransport::from_opener(target.clone(), &opener).create()?;
    }
    let transport = location.open(&opener);
    transport.check_writable()?;

    let previous = env.config_dir.load_config().unwrap_or(None);
    let machine_id = previous
        .as_ref()
        .map(|c| c.machine_id.clone())
        .filter(|id| !id.is_empty())
        .unwrap_or_else(|| uuid::Uuid::new_v4().to_string());

    // Encrypted or not is settled before anything is written: a machine
    // that cannot read an encrypted sync dir leaves no trace in it.
    let setup = super::recipients::decide(
        transport.as_ref(),
        &args.recipient,
        args.identity.as_deref(),
        previous.as_ref(),
    )?;
    let staging = env.config_dir.staging()?;
    let staging = staging.path()?;
    if let Some(claim) = read_claim(transport.as_ref(), &machine)?
        && claim.machine_id != machine_id
        && !args.force
    {
        return Err(hinted(
            format!(
                "machine name {machine} is already taken in {} by another machine",
                transport.location()
            ),
            "choose another with --name, or pass --force if that machine is gone",
        ));
    }
    let claim = Claim {
        machine: machine.to_string(),
        machine_id: machine_id.clone(),
        claimed_at: ccsync::sync::now_ms(),
    };
    let file = staging.join("claim.json");
    fsutil::write_atomic_bytes(&file, &serde_json::to_vec_pretty(&claim)?)?;
    let claim_name = ObjectName::machine_claim(&machine);
    if let Err(reason) = transport.store(&[(claim_name.clone(), file)])?.remove(0) {
        bail!(
            "cannot claim the name {machine} in {}: {reason}",
            transport.location()
        );
    }

    let carry_setup = match (args.setup, args.no_setup) {
        (true, _) => Some(true),
        (_, true) => Some(false),
        _ => None,
    };
    // What the user set by hand stays.
    let config = match previous.clone() {
        Some(previous) => Config {
            location: location.to_string(),
            machine: machine.to_string(),
            machine_id,
            recipients: setup.recipients.clone(),
            identity: setup.identity.clone(),
            setup: carry_setup.unwrap_or(previous.setup),
            ..previous
        },
        None => Config {
            location: location.to_string(),
            machine: machine.to_string(),
            machine_id,
            secrets: Default::default(),
            case_insensitive_hosts: Vec::new(),
            recall: false,
            recipients: setup.recipients.clone(),
            identity: setup.identity.clone(),
            aliases: Default::default(),
            setup: carry_setup.unwrap_or(false),
            setup_exclude: Vec::new(),
        },
    };
    let layers = env.layers(&config)?;
    if setup.turning_on {
        super::recipients::turn_on(env, transport.as_ref(), staging, &layers)?;
    }
    env.config_dir.save_config(&config)?;
    let mut outcome = Outcome::Success;
    // A new name for this machine in the same sync dir: its copies and
    // claim go with it, so nothing is left under the old name.
    if let Some(previous) = &previous
        && previous.location == config.location
        && let Ok(old) = previous.machine_name()
        && old != machine
    {
        outcome = carry_over(
            env,
            transport.as_ref(),
            &layers,
            staging,
            &old,
            &machine,
            &config,
        )?;
    }
    let verb = if previous.is_some() {
        "updated"
    } else {
        "initialised"
    };
    env.ui.status(format_args!(
        "{verb} ccsync: machine {machine}, sync dir {}{}{} (config {})",
        transport.location(),
        if config.setup {
            ", with your setup (`ccsync list --setup` shows what travels)"
        } else {
            ""
        },
        if config.recipients.is_empty() {
            String::new()
        } else {
            format!(
                ", encrypted to {}",
                crate::ui::plural(config.recipients.len(), "key", "keys")
            )
        },
        env.config_dir.config_file().display()
    ));
    Ok(outcome)
}

/// A sync dir that does not exist may be a typo (`~/Dropbx/ccsync`): made
/// only when the user says so, with --create or on the terminal.
fn confirm_create(dir: &Path) -> Result<()> {
    let shown = quoted(dir);
    match ui::ask(&format!("{shown} does not exist; create it?"))? {
        Some(true) => Ok(()),
        Some(false) => bail!("nothing was set up: {shown} does not exist"),
        None => Err(hinted(
            format!("the sync dir {shown} does not exist"),
            format!("check the path; if it is right, `ccsync init {shown} --create` creates it"),
        )),
    }
}

/// Without a location: the synced folders found here, offered on the
/// terminal (a `ccsync` folder inside the one picked), else listed in the
/// error with the command to run. Says whether the user picked one of
/// them (made without asking again) rather than typing a path.
fn choose_location() -> Result<(String, bool)> {
    let found = directories::BaseDirs::new()
        .map(|b| synced::find(b.home_dir()))
        .unwrap_or_default();
    let inside = |f: &synced::SyncedFolder| f.path.join("ccsync");
    if found.is_empty() {
        return Err(hinted(
            "init needs a sync dir",
            "give a folder every machine sees (in Dropbox, iCloud Drive, OneDrive, Google Drive or Syncthing, on a USB stick) or an ssh location (`host:path`): `ccsync init <dir>`",
        ));
    }
    if !std::io::stdin().is_terminal() {
        let folders = found
            .iter()
            .map(|f| format!("  {} ({})", quoted(&f.path), f.service))
            .collect::<Vec<_>>()
            .join("\n");
        return Err(hinted(
            "init needs a sync dir",
            format!(
                "synced folders found here:\n{folders}\nrun `ccsync init <dir>` with a folder in one of them, e.g. `ccsync init {}`",
                quoted(&inside(&found[0]))
            ),
        ));
    }
    let choices = found
        .iter()
        .enumerate()
        .map(|(i, f)| format!("  {}. {} ({})", i + 1, inside(f).display(), f.service))
        .collect::<Vec<_>>()
        .join("\n");
    let answer = ui::ask_line(&format!(
        "synced folders found here:\n{choices}\nsync dir [1-{}, or a path; Enter to cancel]:",
        found.len()
    ))?;
    match answer.trim() {
        "" => bail!("nothing was set up: no sync dir chosen"),
        n => Ok(match n.parse::<usize>() {
            Ok(i) if (1..=found.len()).contains(&i) => {
                (inside(&found[i - 1]).to_string_lossy().into_owned(), true)
            }
            _ => (n.to_owned(), false),
        }),
    }
}

/// A path as a shell word, for a command to copy.
fn quoted(path: &Path) -> String {
    ui::shell_word(&path.to_string_lossy())
}

/// Moves `old`'s copies to `new` and removes `old`'s claim, if it is this
/// machine's.
fn carry_over(
    env: &Env,
    transport: &dyn Transport,
    layers: &ccsync::bundle::layers::Layers,
    staging: &std::path::Path,
    old: &MachineName,
    new: &MachineName,
    config: &Config,
) -> Result<Outcome> {
    let renamed = ccsync::sync::machine::rename(transport, layers, staging, old, new)?;
    let mut index = env.load_index();
    index.pushed.retain(|object, _| {
        ObjectName::parse(
            object.split('/').next().unwrap_or(""),
            object.rsplit('/').next().unwrap_or(""),
        )
        .and_then(|n| n.session())
        .is_none_or(|(_, m)| m != *old)
    });
    index.mark_changed();
    env.save_index(&index);
    for (name, reason) in &renamed.left {
        env.ui.warn(format_args!(
            "left {name} under the old name {old}: {reason}; run `ccsync init` with --name {new} again to retry"
        ));
    }
    let ours =
        matches!(read_claim(transport, old), Ok(Some(c)) if c.machine_id == config.machine_id);
    if ours && renamed.left.is_empty() {
        let claim = ObjectName::machine_claim(old);
        if let Err(reason) = transport.remove(std::slice::from_ref(&claim))?.remove(0) {
            env.ui.warn(format_args!(
                "could not remove the claim on {old}: {reason}"
            ));
        }
    }
    env.ui.status(format_args!(
        "carried {} from {old} to {new}",
        crate::ui::plural(renamed.moved.len(), "copy", "copies")
    ));
    Ok(if renamed.left.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}
