//! A machine's life in a transport: taking a new name carries its copies
//! over, so none is left behind under the old one.

use std::io::{BufWriter, Write};
use std::path::Path;

use super::Received;
use super::copies::CopyObjects;
use crate::bundle::layers::Layers;
use crate::bundle::{self, OutPart, PartData};
use crate::names::MachineName;
use crate::transport::{ObjectName, Transport, TransportError};

/// What renaming did.
#[derive(Debug, Default)]
pub struct Renamed {
    /// Copies now under the new name.
    pub moved: Vec<ObjectName>,
    /// Copies left under the old name, and why (they are still whole).
    pub left: Vec<(ObjectName, String)>,
}

/// Rewrites every copy `old` has in the transport as `new`'s (the bundle
/// names its machine, so the bytes change), then removes the old ones. A
/// copy is removed only once its new one is stored: a failure leaves both.
pub fn rename(
    transport: &dyn Transport,
    layers: &Layers,
    staging: &Path,
    old: &MachineName,
    new: &MachineName,
) -> Result<Renamed, TransportError> {
    let mut renamed = Renamed::default();
    let (copies, _) = super::copies::group(&transport.list()?.objects);
    let mine: Vec<&CopyObjects> = copies
        .values()
        .filter(|c| c.base.session().is_some_and(|(_, m)| m == *old))
        .collect();
    // Each copy is read whole (base and segments) and stored whole again.
    let fetched = super::copies::fetch(transport, layers, staging, &mine, &super::Quiet)?;
    let mut batch = Vec::new();
    for (i, (copy, fetched)) in mine.iter().zip(fetched).enumerate() {
        let (id, _) = copy.base.session().expect("a base's name");
        let rewritten = fetched.into_result().and_then(|got| {
            let file = rewrite(&got, layers, staging, i, new).map_err(|e| e.to_string());
            super::copies::discard(&got);
            file
        });
        match rewritten {
            Ok(file) => {
                let to = ObjectName::parse(
                    copy.base.dir(),
                    &format!("{id}-{new}.{}", bundle::EXTENSION),
                )
                .expect("a session object name");
                batch.push((*copy, to, file));
            }
            Err(reason) => renamed.left.push((copy.base.clone(), reason)),
        }
    }
    let stores: Vec<(ObjectName, std::path::PathBuf)> = batch
        .iter()
        .map(|(_, to, f)| (to.clone(), f.clone()))
        .collect();
    let mut stored_old = Vec::new();
    for ((from, to, _), result) in batch.iter().zip(transport.store(&stores)?) {
        match result {
            Ok(_) => {
                // Segments first: a base without them is still whole.
                stored_old.extend(from.segments.iter().map(|(_, n, _)| n.clone()));
                stored_old.push(from.base.clone());
                renamed.moved.push(to.clone());
            }
            Err(reason) => renamed.left.push((from.base.clone(), reason)),
        }
    }
    for (name, result) in stored_old.iter().zip(transport.remove(&stored_old)?) {
        if let Err(reason) = result {
            renamed.left.push((name.clone(), reason));
        }
    }
    Ok(renamed)
}

/// Writes a copy again as `machine`'s, whole, in staging.
fn rewrite(
    got: &Received,
    layers: &Layers,
    staging: &Path,
    i: usize,
    machine: &MachineName,
) -> Result<std::path::PathBuf, bundle::BundleError> {
    let mut meta = got.meta.clone();
    meta.machine = machine.clone();
    let parts: Vec<OutPart> = got
        .parts
        .iter()
        .map(|p| OutPart {
            path: p.path.clone(),
            len: p.path.appended().then_some(p.len),
            data: PartData::File(p.file.clone()),
        })
        .collect();
    let out = staging.join(format!("rename-{i}.{}", bundle::EXTENSION));
    let mut writer = layers.writer(BufWriter::new(std::fs::File::create(&out)?))?;
    let mut transcript = std::fs::File::open(&got.transcript)?;
    bundle::write(&meta, &mut transcript, got.body.len, &parts, &mut writer)?;
    writer.finish()?.flush()?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bundle::Bundle;
    use crate::names::{PartPath, RelPath, SessionId};
    use crate::project::ProjectKey;
    use crate::transport::memory::MemoryTransport;

    #[test]
    fn copies_move_to_the_new_name_with_their_bytes() {
        let t = MemoryTransport::new();
        let key = ProjectKey::parse("git:example.org/a").unwrap();
        let id = SessionId::parse("5c0375b4-57a5-4f26-b12d-d022ee4e51b7").unwrap();
        let (old, new) = (
            MachineName::parse("old").unwrap(),
            MachineName::parse("new").unwrap(),
        );
        let bundle = Bundle {
            meta: bundle::Meta {
                version: 4,
                session_id: id.clone(),
                project_key: key.clone(),
                original_cwd: "/w".into(),
                relative_cwd: Some(RelPath::default()),
                machine: old.clone(),
                exported_at_ms: 7,
                modified_ms: Some(1_763_000_000_123),
                parts_modified_ms: [(PartPath::parse("tasks/1.json").unwrap(), 1_763_000_000_456)]
                    .into(),
                segment: None,
            },
            transcript: b"{\"a\":1}\n".to_vec(),
            parts: vec![(PartPath::parse("tasks/1.json").unwrap(), vec![0, 1, 2])],
        };
        t.insert(
            ObjectName::for_session(&key, &id, &old),
            bundle.to_bytes().unwrap(),
        );
        let staging = tempfile::tempdir().unwrap();
        let layers = Layers::compressed();
        let r = rename(&t, &layers, staging.path(), &old, &new).unwrap();
        assert!(r.left.is_empty(), "{:?}", r.left);
        assert_eq!(t.names(), [ObjectName::for_session(&key, &id, &new)]);
        let mut plain = Vec::new();
        std::io::Read::read_to_end(
            &mut layers.reader(&t.get(&r.moved[0]).unwrap()[..]).unwrap(),
            &mut plain,
        )
        .unwrap();
        let moved = Bundle::decode(&plain).unwrap();
        assert_eq!(moved.meta.machine, new);
        assert_eq!(
            (moved.meta.modified_ms, &moved.meta.parts_modified_ms),
            (bundle.meta.modified_ms, &bundle.meta.parts_modified_ms)
        );
        assert_eq!(moved.transcript, bundle.transcript);
        assert_eq!(moved.parts, bundle.parts);
    }
}
