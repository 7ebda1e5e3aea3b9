//! Who is working where: each machine says in the sync dir which sessions
//! a client is running there (`ccsync/live-<machine>.json`), so that
//! another machine about to continue one can say so first. Only ids and
//! times: what the object names show already.

use serde::{Deserialize, Serialize};

use crate::names::MachineName;
use crate::transport::layout::SYNC_DIR_DIR;
use crate::transport::{ObjectName, RemoteObject, Transport, TransportError, fetch_small};

/// What a machine says is running there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Presence {
    pub machine: String,
    /// When this was said (Unix ms).
    pub updated_at: u64,
    pub running: Vec<Running>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Running {
    pub session_id: String,
    /// When the client started (Unix ms), if known.
    pub since: Option<u64>,
}

pub fn object_name(machine: &MachineName) -> ObjectName {
    ObjectName::parse(SYNC_DIR_DIR, &format!("live-{machine}.json")).expect("a safe name")
}

/// Says what runs on `machine` now.
pub fn publish(
    transport: &dyn Transport,
    staging: &std::path::Path,
    presence: &Presence,
) -> Result<Result<(), String>, TransportError> {
    let machine = MachineName::parse(&presence.machine).map_err(|e| TransportError::Other {
        location: transport.location(),
        message: e.to_string(),
    })?;
    let file = staging.join("live.json");
    let bytes = serde_json::to_vec(presence).expect("presence serialises");
    crate::fsutil::write_atomic_bytes(&file, &bytes).map_err(|source| TransportError::Io {
        action: "write",
        path: file.clone(),
        source,
    })?;
    Ok(transport
        .store(&[(object_name(&machine), file)])?
        .remove(0)
        .map(drop))
}

/// What the other machines in `listing` say runs there (unreadable or
/// malformed records are passed over: this is advice).
pub fn others(
    transport: &dyn Transport,
    listing: &[RemoteObject],
    me: &MachineName,
) -> Vec<Presence> {
    let mine = object_name(me);
    let names: Vec<ObjectName> = listing
        .iter()
        .map(|o| o.name.clone())
        .filter(|n| n.dir() == SYNC_DIR_DIR && n.file().starts_with("live-") && *n != mine)
        .collect();
    if names.is_empty() {
        return Vec::new();
    }
    let Ok(got) = fetch_small(transport, &names, 1 << 20) else {
        return Vec::new();
    };
    got.into_iter()
        .filter_map(|r| serde_json::from_slice::<Presence>(&r.ok()?).ok())
        .collect()
}

/// The machine running session `id`, and since when, if one says so.
pub fn running<'a>(others: &'a [Presence], id: &str) -> Option<(&'a str, Option<u64>)> {
    others.iter().find_map(|p| {
        p.running
            .iter()
            .find(|r| r.session_id == id)
            .map(|r| (p.machine.as_str(), r.since))
    })
}
