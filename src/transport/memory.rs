//! An in-memory transport for unit tests of the sync logic.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use super::{Listing, ObjectName, PerObject, RemoteObject, Transport, TransportError, Visitor};

/// Objects with a counter standing in for modification times.
#[derive(Default)]
pub struct MemoryTransport {
    objects: RefCell<BTreeMap<ObjectName, (Vec<u8>, u64)>>,
    clock: std::cell::Cell<u64>,
    fetched: std::cell::Cell<usize>,
}

impl MemoryTransport {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn insert(&self, name: ObjectName, bytes: Vec<u8>) -> RemoteObject {
        self.clock.set(self.clock.get() + 1);
        let object = RemoteObject {
            name: name.clone(),
            size: bytes.len() as u64,
            modified: Some(
                std::time::UNIX_EPOCH + std::time::Duration::from_nanos(self.clock.get()),
            ),
        };
        self.objects
            .borrow_mut()
            .insert(name, (bytes, self.clock.get()));
        object
    }

    pub fn get(&self, name: &ObjectName) -> Option<Vec<u8>> {
        self.objects.borrow().get(name).map(|(b, _)| b.clone())
    }

    /// How many objects have been fetched so far.
    pub fn fetched(&self) -> usize {
        self.fetched.get()
    }

    pub fn names(&self) -> Vec<ObjectName> {
        self.objects.borrow().keys().cloned().collect()
    }
}

fn io_err(path: &Path, action: &'static str) -> impl FnOnce(std::io::Error) -> TransportError {
    let path = path.to_path_buf();
    move |source| TransportError::Io {
        action,
        path,
        source,
    }
}

impl Transport for MemoryTransport {
    fn location(&self) -> String {
        "memory".into()
    }

    fn list(&self) -> Result<Listing, TransportError> {
        let objects = self
            .objects
            .borrow()
            .iter()
            .map(|(name, (bytes, at))| RemoteObject {
                name: name.clone(),
                size: bytes.len() as u64,
                modified: Some(std::time::UNIX_EPOCH + std::time::Duration::from_nanos(*at)),
            })
            .collect();
        Ok(Listing {
            objects,
            refused: Vec::new(),
        })
    }

    fn fetch(
        &self,
        names: &[ObjectName],
        visit: &mut Visitor,
    ) -> Result<Vec<PerObject<()>>, TransportError> {
        Ok(names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let bytes = self
                    .get(name)
                    .ok_or_else(|| format!("{name} does not exist"))?;
                self.fetched.set(self.fetched.get() + 1);
                visit(i, &mut bytes.as_slice());
                Ok(())
            })
            .collect())
    }

    fn store(
        &self,
        objects: &[(ObjectName, PathBuf)],
    ) -> Result<Vec<PerObject<RemoteObject>>, TransportError> {
        let mut stored = Vec::new();
        for (name, path) in objects {
            let bytes = std::fs::read(path).map_err(io_err(path, "read"))?;
            stored.push(Ok(self.insert(name.clone(), bytes)));
        }
        Ok(stored)
    }

    fn remove(&self, names: &[ObjectName]) -> Result<Vec<PerObject<()>>, TransportError> {
        let mut objects = self.objects.borrow_mut();
        Ok(names
            .iter()
            .map(|n| {
                objects.remove(n);
                Ok(())
            })
            .collect())
    }

    fn check_writable(&self) -> Result<(), TransportError> {
        Ok(())
    }
}
