//! Moving sessions: building bundles from local transcripts (push, export)
//! and installing bundles as local transcripts (pull, import). What to do
//! with each session is decided by the pure [`plan`].

pub mod append;
pub mod copies;
pub mod encryption;
pub mod machine;
pub mod plan;
pub mod presence;
pub mod pull;
pub mod push;
pub mod receiving;
pub mod scan;
pub mod setup;

use crate::bundle::layers::Layers;
use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};

use crate::bundle::{self, Body, BundleError, Meta, PartSink};
use crate::fsutil;
use crate::names::{PartPath, SessionId};
use crate::transport::TransportError;

/// Why one session could not be moved. Batches report these and go on.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} has no complete line yet; try again once Claude Code has written one")]
    NoCompleteLine { path: PathBuf },
    #[error("{path}: {source}")]
    Bundle { path: PathBuf, source: BundleError },
    #[error(
        "session {id} is already on this machine at {existing}; a second copy in {wanted} would make `claude --resume` ambiguous. Move or delete one copy, then pull again"
    )]
    Elsewhere {
        id: SessionId,
        existing: PathBuf,
        wanted: PathBuf,
    },
    #[error(
        "this machine pushed {pushed_bytes} bytes of {id} before, and its transcript here ({local_bytes} bytes) no longer starts with them: it was truncated or rewritten. Not replacing the pushed copy; `ccsync push --force {id}` replaces it"
    )]
    WouldRewind {
        id: SessionId,
        pushed_bytes: u64,
        local_bytes: u64,
    },
    #[error("{}", holds_secrets(id, secrets))]
    HoldsSecrets {
        id: SessionId,
        secrets: scan::Secrets,
    },
    #[error("cannot store {object}: {reason}")]
    Store { object: String, reason: String },
    #[error(
        "the checkout path {0} is not UTF-8, so Claude Code's folder name for it cannot be computed"
    )]
    NotUtf8Path(PathBuf),
}

fn holds_secrets(id: &SessionId, secrets: &scan::Secrets) -> String {
    let first = secrets.found.first().map_or(String::new(), |(path, f)| {
        format!(
            " (first: {}, line {} of {})",
            f.kind,
            f.line,
            path.display()
        )
    });
    format!(
        "session {id} holds {} that look like credentials{first}, and config.toml says `secrets = \"refuse\"`: it stays here. Remove them, or `ccsync push --allow-secrets {id}` sends it anyway",
        if secrets.total == 1 {
            "1 string".to_owned()
        } else {
            format!("{} strings", secrets.total)
        }
    )
}

/// What a push or a pull works with.
pub struct Link<'a> {
    pub transport: &'a dyn crate::transport::Transport,
    /// How objects are stored there: compressed, perhaps encrypted.
    pub layers: &'a Layers,
    /// A private scratch directory for bundles on their way, made when
    /// first needed.
    pub staging: &'a crate::config::Staging,
    /// This machine.
    pub machine: &'a crate::names::MachineName,
    pub index: &'a mut crate::index::Index,
    pub progress: &'a dyn Progress,
    /// Decide and report what would move; change nothing anywhere.
    pub dry_run: bool,
}

/// The staging folder of a push or pull, made now if it is not yet: a
/// run cannot move anything without it.
pub(crate) fn staging_dir(staging: &crate::config::Staging) -> Result<&Path, TransportError> {
    staging.path().map_err(|e| match e {
        crate::config::ConfigError::Write { path, source } => TransportError::Io {
            action: "create a staging folder in",
            path,
            source,
        },
        other => TransportError::Io {
            action: "create a staging folder in",
            path: staging.parent().to_path_buf(),
            source: io::Error::other(other.to_string()),
        },
    })
}

/// Told how a long push or pull goes; the command line draws it.
pub trait Progress {
    /// `total` steps are coming.
    fn start(&self, _total: u64) {}
    /// One more step is done.
    fn step(&self) {}
    /// About `total` bytes are coming (a large session's, or a batch's).
    fn bytes(&self, _total: u64) {}
    /// `n` more of them went by.
    fn advance(&self, _n: u64) {}
}

/// Tells `progress` of the bytes read through it.
pub struct Counting<'a, R> {
    pub inner: R,
    pub progress: &'a dyn Progress,
}

impl<R: io::Read> io::Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.progress.advance(n as u64);
        Ok(n)
    }
}

/// Reports nothing.
pub struct Quiet;

impl Progress for Quiet {}

pub fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// A bundle that arrived, its transcript and side files unpacked into
/// private files.
#[derive(Debug, Clone)]
pub struct Received {
    pub meta: Meta,
    pub body: Body,
    pub transcript: PathBuf,
    pub parts: Vec<ReceivedPart>,
    /// Where the copy's chain stood, for a copy read from a sync dir.
    pub chain: Option<crate::index::ChainState>,
}

/// A side file that arrived.
#[derive(Debug, Clone)]
pub struct ReceivedPart {
    pub path: PartPath,
    pub file: PathBuf,
    pub len: u64,
    pub sha256: String,
}

/// Writes each part to a private file of its own in `dir` (not synced:
/// see [`make_durable`]).
struct StagedParts {
    /// Each part goes to `<prefix>.p<n>`, beside the transcript: no folder
    /// to make per bundle.
    prefix: PathBuf,
    files: Vec<(PartPath, PathBuf)>,
    current: Option<BufWriter<File>>,
}

impl PartSink for StagedParts {
    fn begin(&mut self, path: &PartPath) -> io::Result<()> {
        let file = part_file(&self.prefix, self.files.len());
        let mut options = std::fs::OpenOptions::new();
        // Staging is ccsync's own: a file there is from an earlier run.
        options.write(true).create(true).truncate(true);
        #[cfg(unix)]
        std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
        self.current = Some(BufWriter::with_capacity(1 << 16, options.open(&file)?));
        self.files.push((path.clone(), file));
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.current
            .as_mut()
            .ok_or_else(|| io::Error::other("part data before its start"))?
            .write_all(bytes)
    }

    fn end(&mut self) -> io::Result<()> {
        let out = self
            .current
            .take()
            .ok_or_else(|| io::Error::other("part end before its start"))?;
        out.into_inner().map_err(|e| e.into_error())?;
        Ok(())
    }
}

/// Where part `n` of the bundle received at `prefix` is staged.
pub(crate) fn part_file(prefix: &Path, n: usize) -> PathBuf {
    let mut name = prefix.as_os_str().to_owned();
    name.push(format!(".p{n}"));
    PathBuf::from(name)
}

/// Decodes the bundle at `bundle_path`; see [`receive`].
pub fn receive_file(bundle_path: &Path, into: &Path) -> Result<Received, BundleError> {
    let input = File::open(bundle_path)?;
    if input.metadata()?.len() > bundle::MAX_BUNDLE_BYTES {
        return Err(BundleError::TooLarge);
    }
    // A plain export, or a copy of a compressed object; not an encrypted one.
    let received = receive(input, into, &Layers::default())?;
    if received.meta.segment.is_some() {
        copies::discard(&received);
        return Err(BundleError::IsSegment);
    }
    Ok(received)
}

/// Decodes a bundle as it streams in (at most the bundle size limit),
/// through `layers` (decryption, decompression), streaming its transcript
/// into a new private file at `into` and its side files into a folder
/// beside it. Nothing is left at `into` on error. The files are not synced:
/// whoever moves them into place first calls [`make_durable`].
pub fn receive(
    input: impl io::Read,
    into: &Path,
    layers: &Layers,
) -> Result<Received, BundleError> {
    receive_in(input, into, layers, None)
}

/// [`receive`], decompressing with `context` when given (see
/// [`Layers::reader_in`]).
pub fn receive_in(
    input: impl io::Read,
    into: &Path,
    layers: &Layers,
    context: Option<&mut zstd::zstd_safe::DCtx<'static>>,
) -> Result<Received, BundleError> {
    let input = layers.reader_in(input, context)?;
    // Staging is this run's own, and `into` a name no other object of the
    // run has: written in place, no temp file and rename per bundle.
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(into)?;
    let mut staged = StagedParts {
        prefix: into.to_path_buf(),
        files: Vec::new(),
        current: None,
    };
    let decoded = (|| {
        let mut out = BufWriter::with_capacity(1 << 16, &mut file);
        let decoded = bundle::read(input, &mut out, &mut staged)?;
        out.flush()?;
        Ok(decoded)
    })();
    drop(file);
    let (meta, body, part_bodies) = match decoded {
        Ok(d) => d,
        Err(e) => {
            staged.current = None;
            let _ = std::fs::remove_file(into);
            for (_, file) in &staged.files {
                let _ = std::fs::remove_file(file);
            }
            return Err(e);
        }
    };
    let parts = part_bodies
        .into_iter()
        .zip(staged.files)
        .map(|(b, (path, file))| ReceivedPart {
            path,
            file,
            len: b.len,
            sha256: b.sha256,
        })
        .collect();
    Ok(Received {
        meta,
        body,
        transcript: into.to_path_buf(),
        parts,
        chain: None,
    })
}

/// Moves a private file into its place atomically: a rename, or, across
/// file systems, a copy to a temp file beside `dest` and a rename. The
/// folder is synced, so the new name survives a crash.
pub fn place(staged: &Path, dest: &Path) -> io::Result<()> {
    place_unsynced(staged, dest)?;
    fsutil::sync_dir(dest.parent().unwrap_or(Path::new(".")));
    Ok(())
}

/// The same without syncing the folder: for many files into few folders,
/// whose folders the caller syncs once each with [`sync_dir`].
pub fn place_unsynced(staged: &Path, dest: &Path) -> io::Result<()> {
    let renamed = match std::fs::rename(staged, dest) {
        Err(e) if e.kind() == io::ErrorKind::NotFound && staged.exists() => {
            if let Some(dir) = dest.parent() {
                fsutil::create_private_dir_all(dir)?;
            }
            std::fs::rename(staged, dest)
        }
        other => other,
    };
    match renamed {
        Err(e) if e.kind() == io::ErrorKind::CrossesDevices => {
            let mut src = File::open(staged)?;
            fsutil::write_atomic(dest, |f| io::copy(&mut src, f).map(drop))
        }
        other => other,
    }
}

/// Makes received files durable before they are moved into place, so a
/// crash never leaves a name for bytes that were not written: on Linux one
/// `syncfs` per file system holding them (one journal commit for a whole
/// pull, where an fsync each would cost a commit each), elsewhere an fsync
/// of each file.
pub fn make_durable<'a>(files: impl IntoIterator<Item = &'a Path>) -> io::Result<()> {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let mut devices = std::collections::HashSet::new();
        // Files of one folder are on its file system: one look per folder
        // (a pull stages thousands of files in one).
        let mut folders = std::collections::HashSet::new();
        for file in files {
            if !folders.insert(file.parent()) {
                continue;
            }
            let meta = std::fs::metadata(file)?;
            if devices.insert(meta.dev()) {
                rustix::fs::syncfs(File::open(file)?)?;
            }
        }
        Ok(())
    }
    #[cfg(not(target_os = "linux"))]
    {
        for file in files {
            File::open(file)?.sync_all()?;
        }
        Ok(())
    }
}

impl Received {
    /// What arrived of each side file, as the bundle described it.
    pub fn part_bodies(&self) -> Vec<bundle::PartBody> {
        self.parts
            .iter()
            .map(|p| bundle::PartBody {
                path: p.path.clone(),
                len: p.len,
                sha256: p.sha256.clone(),
            })
            .collect()
    }

    /// Its transcript and side files, as staged.
    pub fn files(&self) -> impl Iterator<Item = &Path> {
        std::iter::once(self.transcript.as_path())
            .chain(self.parts.iter().map(|p| p.file.as_path()))
    }
}

/// Makes the names in many folders durable, after many files were moved
/// into them: on Linux one `syncfs` per file system, elsewhere an fsync of
/// each folder. Failures only cost durability.
pub fn sync_dirs<'a>(dirs: impl IntoIterator<Item = &'a Path>) {
    #[cfg(target_os = "linux")]
    {
        use std::os::unix::fs::MetadataExt;
        let mut devices = std::collections::HashSet::new();
        for dir in dirs {
            if let Ok(meta) = std::fs::metadata(dir)
                && devices.insert(meta.dev())
                && let Ok(d) = File::open(dir)
            {
                let _ = rustix::fs::syncfs(d);
            }
        }
    }
    #[cfg(not(target_os = "linux"))]
    for dir in dirs {
        fsutil::sync_dir(dir);
    }
}
