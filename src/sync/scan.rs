//! The secret scan of what a push or an export is about to send: the
//! transcript's complete lines and every side file, each as it will travel.

use std::fs::File;
use std::path::PathBuf;

use super::SessionError;
use super::push::Outgoing;
use crate::bundle::PartData;
use crate::secrets::{Finding, MAX_FINDINGS, Scanner};

/// Whether push scans what it sends for credentials, and what a finding does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretScan {
    Off,
    /// Say so, and send.
    Warn,
    /// Say so, and keep the session here.
    Refuse,
}

/// Credentials found in a session: where (file, line) and what kind.
#[derive(Debug, Clone, Default)]
pub struct Secrets {
    /// The first few, in file order.
    pub found: Vec<(PathBuf, Finding)>,
    /// How many in all.
    pub total: u64,
}

impl Secrets {
    pub fn is_empty(&self) -> bool {
        self.total == 0
    }
}

/// Scans exactly the bytes `out` will send.
pub fn outgoing(out: &Outgoing) -> Result<Secrets, SessionError> {
    let mut secrets = Secrets::default();
    let mut scan = |path: &PathBuf,
                    from: u64,
                    lines_before: u64,
                    len: Option<u64>|
     -> Result<(), SessionError> {
        let read_err = |source| SessionError::Read {
            path: path.clone(),
            source,
        };
        let mut file = File::open(path).map_err(read_err)?;
        let len = match len {
            Some(len) => len,
            None => file.metadata().map_err(read_err)?.len(),
        };
        std::io::Seek::seek(&mut file, std::io::SeekFrom::Start(from)).map_err(read_err)?;
        let mut report = Scanner::global()
            .scan_reader(file, len.saturating_sub(from))
            .map_err(read_err)?;
        for f in &mut report.findings {
            f.line += lines_before;
        }
        secrets.total += report.total;
        let room = MAX_FINDINGS.saturating_sub(secrets.found.len());
        secrets.found.extend(
            report
                .findings
                .into_iter()
                .take(room)
                .map(|f| (path.clone(), f)),
        );
        Ok(())
    };
    // A segment's bytes only: the rest was scanned when it was sent.
    scan(&out.source, out.from, out.lines_before, Some(out.len))?;
    for part in &out.parts {
        if let PartData::File(file) = &part.data {
            scan(file, 0, 0, part.len)?;
        }
    }
    Ok(secrets)
}
