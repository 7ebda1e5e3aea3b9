//! An embedder's own transport: every object is written to two directories
//! (a primary sync dir and a mirror), and read from the primary. It wraps
//! ccsync's directory transport, so links, temp files and size limits are
//! handled as ccsync does.
//!
//! Run with `cargo run --example custom_transport`.

use std::path::PathBuf;

use ccsync::transport::dir::DirTransport;
use ccsync::transport::{
    Listing, ObjectName, PerObject, RemoteObject, Transport, TransportError, Visitor, fetch_small,
};

struct Mirrored {
    primary: DirTransport,
    mirror: DirTransport,
}

impl Transport for Mirrored {
    fn location(&self) -> String {
        format!(
            "{} (mirrored to {})",
            self.primary.location(),
            self.mirror.location()
        )
    }

    fn list(&self) -> Result<Listing, TransportError> {
        self.primary.list()
    }

    fn fetch(
        &self,
        names: &[ObjectName],
        visit: &mut Visitor,
    ) -> Result<Vec<PerObject<()>>, TransportError> {
        self.primary.fetch(names, visit)
    }

    /// The primary decides what counts as stored; a mirror that fails is
    /// a warning, not a failed push.
    fn store(
        &self,
        objects: &[(ObjectName, PathBuf)],
    ) -> Result<Vec<PerObject<RemoteObject>>, TransportError> {
        let stored = self.primary.store(objects)?;
        if let Err(e) = self.mirror.store(objects) {
            eprintln!("mirror: {e}");
        }
        Ok(stored)
    }

    fn remove(&self, names: &[ObjectName]) -> Result<Vec<PerObject<()>>, TransportError> {
        let removed = self.primary.remove(names)?;
        let _ = self.mirror.remove(names);
        Ok(removed)
    }

    fn check_writable(&self) -> Result<(), TransportError> {
        self.primary.check_writable()?;
        self.mirror.check_writable()
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (a, b) = (tempfile::tempdir()?, tempfile::tempdir()?);
    let t = Mirrored {
        primary: DirTransport::new(a.path().to_path_buf(), None),
        mirror: DirTransport::new(b.path().to_path_buf(), None),
    };
    t.check_writable()?;

    let name = ObjectName::parse("machines", "example.json").ok_or("not an object name")?;
    let staged = a.path().join("staged");
    std::fs::write(&staged, br#"{"machine":"example"}"#)?;
    for stored in t.store(&[(name.clone(), staged.clone())])? {
        println!(
            "stored {} ({} bytes)",
            stored?.name,
            std::fs::metadata(&staged)?.len()
        );
    }
    std::fs::remove_file(&staged)?;

    let listing = t.list()?;
    println!("{} holds {} object(s)", t.location(), listing.objects.len());
    for bytes in fetch_small(&t, &[name], 1 << 20)? {
        println!("read back: {}", String::from_utf8_lossy(&bytes?));
    }
    Ok(())
}
