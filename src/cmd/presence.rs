//! `ccsync presence [--ended SESSION]` (hidden; the hooks run it): says in
//! the sync dir which sessions a client runs on this machine now.

use anyhow::Result;

use ccsync::claude::registry::Registry;
use ccsync::sync::presence::{self, Presence, Running};
use ccsync::transport::Transport;

use super::{Env, Outcome};
use crate::cli::PresenceArgs;

pub fn run(env: &Env, args: &PresenceArgs) -> Result<Outcome> {
    let (_config, machine, transport) = env.open_transport()?;
    let staging = env.config_dir.staging()?;
    publish(
        env,
        transport.as_ref(),
        staging.path()?,
        &machine,
        args.ended.as_deref(),
    )?;
    Ok(Outcome::Success)
}

/// What runs here now (by the client's registry), `ended` left out (a
/// session whose client is exiting). Returns what was said.
pub fn publish(
    env: &Env,
    transport: &dyn Transport,
    staging: &std::path::Path,
    machine: &ccsync::names::MachineName,
    ended: Option<&str>,
) -> Result<Vec<Running>> {
    let scanned_at = ccsync::sync::now_ms();
    let listing = transport.list()?;
    // Only sessions the sync dir names already: nothing new is told.
    let listed: std::collections::HashSet<String> = listing
        .objects
        .iter()
        .filter_map(|o| o.name.session().map(|(id, _)| id.to_string()))
        .collect();
    let running: Vec<Running> = Registry::scan(env.claude.root())
        .sessions()
        .into_iter()
        .filter(|(id, _)| Some(id.as_str()) != ended && listed.contains(id))
        .map(|(session_id, since)| Running { session_id, since })
        .collect();
    let said = Presence {
        machine: machine.to_string(),
        updated_at: scanned_at,
        running: running.clone(),
    };
    // Two hooks' updates may finish out of order: a newer word stays.
    let mine = presence::object_name(machine);
    if listing.objects.iter().any(|o| o.name == mine)
        && let Ok(mut got) = ccsync::transport::fetch_small(transport, &[mine], 1 << 20)
        && let Ok(bytes) = got.remove(0)
        && let Ok(there) = serde_json::from_slice::<Presence>(&bytes)
        && there.updated_at > said.updated_at
    {
        return Ok(running);
    }
    if let Err(reason) = presence::publish(transport, staging, &said)? {
        anyhow::bail!(
            "cannot say what runs here in {}: {reason}",
            transport.location()
        );
    }
    Ok(running)
}
