//! `ccsync recipients [list|add KEY]`, and what `init` decides about
//! encryption.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};

use ccsync::bundle::layers::{self, Layers};
use ccsync::config::Config;
use ccsync::sync::encryption::{self, Record};
use ccsync::transport::Transport;

use super::{Env, Outcome};
use crate::cli::{RecipientsAction, RecipientsArgs};

/// What `init` settles on for encryption: the recipients this machine
/// encrypts to and its identity file (both empty for a plain sync dir),
/// and whether the sync dir is being encrypted now.
pub struct Setup {
    pub recipients: Vec<String>,
    pub identity: Option<String>,
    pub turning_on: bool,
}

/// Decides before anything is written. Joining an encrypted sync dir needs
/// an identity that can read what is encrypted to its recipients; making
/// one needs recipients and such an identity too.
pub fn decide(
    transport: &dyn Transport,
    given: &[String],
    identity: Option<&Path>,
    previous: Option<&Config>,
) -> Result<Setup> {
    let mut keys = Vec::new();
    for g in given {
        for k in layers::recipient_keys(g)? {
            if !keys.contains(&k) {
                keys.push(k);
            }
        }
    }
    let identity: Option<PathBuf> = match identity {
        Some(p) => {
            Some(std::path::absolute(p).with_context(|| format!("{} is not a path", p.display()))?)
        }
        None => previous
            .and_then(|c| c.identity.as_ref())
            .map(PathBuf::from),
    };
    let listed = encryption::listed(&transport.list()?.objects);
    let record = encryption::read_record(transport, listed)?;
    let location = transport.location();
    let (recipients, turning_on) = match record {
        Some(record) => {
            let Some(id) = &identity else {
                bail!(
                    "{location} is encrypted (age) to:\n{}\nGive this machine's key with --identity FILE; its public key must be among these (`ccsync recipients add KEY` on a machine that has access)",
                    list(&record.recipients)
                );
            };
            if let Some(k) = keys.iter().find(|k| !record.recipients.contains(k)) {
                bail!(
                    "{k} is not among the recipients of {location}:\n{}\nOn a machine that has access, run `ccsync recipients add {k}`, then init here again",
                    list(&record.recipients)
                );
            }
            check_can_read(id, &record.recipients, &location)?;
            (record.recipients, false)
        }
        // Encrypted before, no record here (another location, or the
        // record went): stays encrypted, never plain without a word.
        None if keys.is_empty() && previous.is_some_and(|c| !c.recipients.is_empty()) => {
            let recipients = previous.map(|c| c.recipients.clone()).unwrap_or_default();
            let Some(id) = &identity else {
                return Err(crate::error::hinted(
                    format!(
                        "this machine encrypts to {} but has no identity",
                        crate::ui::plural(recipients.len(), "key", "keys")
                    ),
                    "give --identity FILE",
                ));
            };
            check_can_read(id, &recipients, &location)?;
            (recipients, true)
        }
        None if keys.is_empty() => {
            if identity.is_some() {
                bail!(
                    "--identity is for an encrypted sync dir, and {location} is not; to encrypt it, give every machine's public key with --recipient"
                );
            }
            (Vec::new(), false)
        }
        None => {
            let Some(id) = &identity else {
                bail!(
                    "encrypting {location} needs this machine's key too: --identity FILE (an age identity file or an unencrypted OpenSSH key)"
                );
            };
            check_can_read(id, &keys, &location)?;
            (keys, true)
        }
    };
    Ok(Setup {
        identity: identity
            .filter(|_| !recipients.is_empty())
            .map(|p| p.display().to_string()),
        recipients,
        turning_on,
    })
}

fn list(keys: &[String]) -> String {
    keys.iter()
        .map(|k| format!("  {k}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn check_can_read(identity: &Path, recipients: &[String], location: &str) -> Result<()> {
    let layers = Layers::encrypted(recipients, Some(identity))?;
    if !layers::can_read(&layers, recipients)? {
        bail!(
            "the key in {} cannot read what is encrypted for {location}: its public key is not among\n{}\nAdd it there (`ccsync recipients add KEY` on a machine that has access), or give another --identity",
            identity.display(),
            list(recipients)
        );
    }
    Ok(())
}

/// Turns encryption on for a sync dir that held plain objects: each is
/// encrypted, then the record says so.
pub fn turn_on(env: &Env, transport: &dyn Transport, staging: &Path, to: &Layers) -> Result<()> {
    let done = encryption::reencrypt(transport, staging, &Layers::default(), to)?;
    for (name, reason) in &done.left {
        env.ui.warn(format_args!(
            "left {name} unencrypted: {reason}; it will be refused until it is removed or pushed again"
        ));
    }
    let record = Record::new(to.recipient_keys().into_iter().map(str::to_owned).collect());
    if let Err(reason) = encryption::write_record(transport, staging, &record)? {
        bail!(
            "cannot write {} in {}: {reason}",
            ccsync::transport::ObjectName::encryption_record(),
            transport.location()
        );
    }
    if !done.done.is_empty() {
        env.ui.status(format_args!(
            "encrypted {} already in {}",
            crate::ui::plural(done.done.len(), "object", "objects"),
            transport.location()
        ));
    }
    Ok(())
}

pub fn run(env: &Env, args: &RecipientsArgs) -> Result<Outcome> {
    let (mut config, _machine, transport) = env.open_transport()?;
    let listed = encryption::listed(&transport.list()?.objects);
    let record = encryption::read_record(transport.as_ref(), listed)?;
    let key = match &args.action {
        None | Some(RecipientsAction::List) => {
            if config.recipients.is_empty() && record.is_none() {
                env.ui.status(format_args!(
                    "{} is not encrypted; `ccsync init {} --recipient KEY… --identity FILE` encrypts it",
                    transport.location(),
                    transport.location()
                ));
            }
            for k in &config.recipients {
                env.ui.data(k)?;
            }
            if let Some(r) = &record
                && let Some(k) = r.recipients.iter().find(|k| !config.recipients.contains(k))
            {
                env.ui.warn(format_args!(
                    "the sync dir also lists {k}, which this machine does not encrypt to; `ccsync recipients add` it here if it is one of yours"
                ));
            }
            return Ok(Outcome::Success);
        }
        Some(RecipientsAction::Add { key }) => key,
    };
    if config.recipients.is_empty() {
        bail!(
            "{} is not encrypted; `ccsync init {} --recipient KEY… --identity FILE` encrypts it",
            transport.location(),
            transport.location()
        );
    }
    let _lock = env.lock()?;
    let from = env.layers(&config)?;
    let mut added = Vec::new();
    for k in layers::recipient_keys(key)? {
        if !config.recipients.contains(&k) {
            config.recipients.push(k.clone());
            added.push(k);
        }
    }
    let to = env.layers(&config)?;
    let staging = env.config_dir.staging()?;
    let staging = staging.path()?;
    let done = encryption::reencrypt(transport.as_ref(), staging, &from, &to)?;
    let mut keys = record.map(|r| r.recipients).unwrap_or_default();
    for k in &config.recipients {
        if !keys.contains(k) {
            keys.push(k.clone());
        }
    }
    if let Err(reason) = encryption::write_record(transport.as_ref(), staging, &Record::new(keys))?
    {
        bail!("cannot update the sync dir's record: {reason}");
    }
    env.config_dir.save_config(&config)?;
    for (name, reason) in &done.left {
        env.ui.warn(format_args!("left {name} as it was: {reason}"));
    }
    env.ui.status(format_args!(
        "{} {}; re-encrypted {} in {}",
        if added.is_empty() {
            "already encrypting to"
        } else {
            "now encrypting to"
        },
        key,
        crate::ui::plural(done.done.len(), "object", "objects"),
        transport.location()
    ));
    Ok(if done.left.is_empty() {
        Outcome::Success
    } else {
        Outcome::Partial
    })
}
