//! An encrypted sync dir: the record `ccsync/encryption.json` that says so
//! and to whom (public keys only), so that no machine pushes plaintext into
//! it by mistake; and re-encrypting what is there for a new set of keys.
//!
//! Each machine encrypts to the recipients in its own config: the record is
//! what a joining machine learns them from, never something a machine
//! adopts later on its own (whoever can write the sync dir could otherwise
//! add their own key).

use std::io::{BufWriter, Write};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::bundle::layers::Layers;
use crate::fsutil;
use crate::transport::{ObjectName, PerObject, Transport, TransportError, fetch_each, fetch_small};

/// What `ccsync/encryption.json` holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct Record {
    /// Always `age`.
    pub encryption: String,
    /// Public keys (`age1…`, ssh public key lines).
    pub recipients: Vec<String>,
}

impl Record {
    pub fn new(recipients: Vec<String>) -> Self {
        Self {
            encryption: "age".into(),
            recipients,
        }
    }
}

/// The sync dir's record, if it has one (`listed`: whether the listing
/// names it, to spare a fetch).
pub fn read_record(
    transport: &dyn Transport,
    listed: bool,
) -> Result<Option<Record>, TransportError> {
    if !listed {
        return Ok(None);
    }
    let name = ObjectName::encryption_record();
    let other = |message: String| TransportError::Other {
        location: transport.location(),
        message,
    };
    let bytes = fetch_small(transport, std::slice::from_ref(&name), 64 << 10)?
        .remove(0)
        .map_err(|reason| other(format!("cannot read {name}: {reason}")))?;
    let record: Record = serde_json::from_slice(&bytes).map_err(|e| {
        other(format!(
            "{name} is not an encryption record ({e}); the sync dir may have been tampered with"
        ))
    })?;
    if record.encryption != "age" || record.recipients.is_empty() {
        return Err(other(format!(
            "{name} names no age recipients; the sync dir may have been tampered with"
        )));
    }
    Ok(Some(record))
}

/// Refuses to push plaintext into an encrypted sync dir (`record`: the
/// listing has the record), or to pull from one without an identity.
pub fn check_layers(
    transport: &dyn Transport,
    layers: &Layers,
    record: bool,
    reading: bool,
) -> Result<(), TransportError> {
    let missing = if reading {
        !layers.has_identity()
    } else {
        !layers.is_encrypted()
    };
    if record && missing {
        return Err(TransportError::Other {
            location: transport.location(),
            message: format!(
                "this sync dir is encrypted ({}), and this machine is not set up for it; run `ccsync init {} --identity FILE` with this machine's key (its public key must be among the recipients: `ccsync recipients add KEY` on a machine that has access)",
                ObjectName::encryption_record(),
                transport.location()
            ),
        });
    }
    Ok(())
}

/// Whether the listing has the record.
pub fn listed(objects: &[crate::transport::RemoteObject]) -> bool {
    let name = ObjectName::encryption_record();
    objects.iter().any(|o| o.name == name)
}

pub fn write_record(
    transport: &dyn Transport,
    staging: &Path,
    record: &Record,
) -> Result<PerObject<()>, TransportError> {
    let file = staging.join("encryption.json");
    let bytes = serde_json::to_vec_pretty(record).expect("a record serialises");
    fsutil::write_atomic_bytes(&file, &bytes).map_err(|source| TransportError::Io {
        action: "write",
        path: file.clone(),
        source,
    })?;
    let name = ObjectName::encryption_record();
    Ok(transport.store(&[(name, file)])?.remove(0).map(drop))
}

/// What re-encrypting did.
#[derive(Debug, Default)]
pub struct Reencrypted {
    pub done: Vec<ObjectName>,
    /// Objects left as they were, and why (unreadable here, a failed store).
    pub left: Vec<(ObjectName, String)>,
}

/// Reads every session object in the transport through `from` and stores
/// it again through `to`, under the same name (atomically: a reader sees
/// the old object or the new one). Streams: memory does not grow with size.
pub fn reencrypt(
    transport: &dyn Transport,
    staging: &Path,
    from: &Layers,
    to: &Layers,
) -> Result<Reencrypted, TransportError> {
    let names: Vec<ObjectName> = transport
        .list()?
        .objects
        .into_iter()
        .filter(|o| o.name.copy_of().is_some() || o.name.setup_machine().is_some())
        .map(|o| o.name)
        .collect();
    let mut out = Reencrypted::default();
    let written = fetch_each(transport, &names, |i, input| {
        let file = staging.join(format!("recrypt-{i}.ccsync"));
        rewrap(input, from, to, &file).map(|()| file)
    })?;
    let mut batch = Vec::new();
    for (name, written) in names.into_iter().zip(written) {
        match written {
            Ok(file) => batch.push((name, file)),
            Err(reason) => out.left.push((name, reason)),
        }
    }
    for ((name, _), stored) in batch.iter().zip(transport.store(&batch)?) {
        match stored {
            Ok(_) => out.done.push(name.clone()),
            Err(reason) => out.left.push((name.clone(), reason)),
        }
    }
    Ok(out)
}

fn rewrap(
    input: &mut dyn std::io::Read,
    from: &Layers,
    to: &Layers,
    dest: &Path,
) -> Result<(), String> {
    let mut plain = from.reader(input).map_err(|e| e.to_string())?;
    fsutil::write_atomic(dest, |f| {
        let mut w = to.writer(BufWriter::with_capacity(1 << 16, f))?;
        std::io::copy(&mut plain, &mut w)?;
        w.finish()?.flush()
    })
    .map_err(|e| e.to_string())
}
