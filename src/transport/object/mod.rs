//! Object stores as sync dirs: S3 (and what speaks it: R2, B2, MinIO) and
//! WebDAV, through Apache OpenDAL. OpenDAL is async; each transport owns a
//! current-thread tokio runtime and blocks on it, so the `Transport` trait
//! stays synchronous.

mod target;

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use futures_util::{StreamExt, TryStreamExt};
use opendal::Operator;
use opendal::raw::{HttpBody, HttpClient, HttpFetch};

pub use target::{ObjectTarget, WebDavAuth, netrc_login};

use super::dir::too_large;
use super::{Listing, ObjectName, PerObject, RemoteObject, Transport, TransportError, Visitor};
use crate::bundle::MAX_BUNDLE_BYTES;
use crate::names::MachineName;

/// Uploads in flight at once: many small bundles go faster than one by one,
/// without opening a connection per session.
const CONCURRENT_UPLOADS: usize = 8;
/// Objects up to this size go up in one PUT; bigger ones in parts of it
/// (S3 multipart: no part is visible before the upload completes).
const PART: usize = 8 << 20;

pub struct ObjectTransport {
    target: ObjectTarget,
    op: Result<Operator, String>,
    rt: tokio::runtime::Runtime,
    requests: Arc<AtomicU64>,
    owner: Option<MachineName>,
    /// This machine's temp uploads whose writer is gone that the last
    /// listing came across (a killed WebDAV store leaves one): removed
    /// without listing again.
    own_temps: std::sync::Mutex<Vec<String>>,
    /// WebDAV: whether to try listing in one request (until the server
    /// says no).
    deep: std::sync::atomic::AtomicBool,
}

/// Counts every HTTP request OpenDAL sends (signing and retries included),
/// so a test and `doctor` can say what a sync cost.
struct Counting {
    inner: HttpClient,
    count: Arc<AtomicU64>,
}

impl HttpFetch for Counting {
    async fn fetch(
        &self,
        req: http::Request<opendal::Buffer>,
    ) -> opendal::Result<http::Response<HttpBody>> {
        self.count.fetch_add(1, Ordering::Relaxed);
        self.inner.fetch(req).await
    }
}

impl ObjectTransport {
    pub fn new(target: ObjectTarget, auth: Option<WebDavAuth>, owner: Option<MachineName>) -> Self {
        // reqwest is built without a default crypto provider (no aws-lc
        // build): ring is ours. A second install is refused, harmlessly.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a current-thread runtime needs no resources");
        let requests = Arc::new(AtomicU64::new(0));
        let op = {
            let _guard = rt.enter();
            target.operator(auth.as_ref()).inspect(|op| {
                let count = requests.clone();
                op.inner()
                    .info_dyn()
                    .update_http_client(|inner| HttpClient::with(Counting { inner, count }));
            })
        };
        Self {
            target,
            op,
            rt,
            requests,
            owner,
            own_temps: Default::default(),
            deep: std::sync::atomic::AtomicBool::new(true),
        }
    }

    /// HTTP requests sent so far.
    pub fn requests(&self) -> u64 {
        self.requests.load(Ordering::Relaxed)
    }

    fn op(&self) -> Result<&Operator, TransportError> {
        self.op.as_ref().map_err(|message| self.error(message))
    }

    fn error(&self, message: impl std::fmt::Display) -> TransportError {
        TransportError::Other {
            location: self.target.to_string(),
            message: message.to_string(),
        }
    }

    fn owner(&self) -> &str {
        self.owner.as_ref().map_or("unknown", MachineName::as_str)
    }

    /// WebDAV: the whole sync dir in one `PROPFIND` with `Depth: infinity`,
    /// where OpenDAL would send one per folder. Many servers refuse that
    /// depth (Nextcloud does by default), and a few answer it as depth 1:
    /// then `None`, and this transport lists folder by folder from then on.
    fn deep_listing(&self, op: &Operator) -> Option<Vec<opendal::Entry>> {
        if !self.target.is_webdav() || !self.deep.load(Ordering::Relaxed) {
            return None;
        }
        // OpenDAL sends the depth once the service says it can: said for
        // this one listing only.
        let info = op.inner().info_dyn();
        let (native, full) = (info.native_capability(), info.full_capability());
        info.set_native_capability(opendal::Capability {
            list_with_recursive: true,
            ..native
        });
        let got = self
            .rt
            .block_on(async { op.list_with("/").recursive(true).await });
        info.set_native_capability(native);
        info.update_full_capability(|_| full);
        let entries = got.ok().filter(|e| deep_enough(e));
        if entries.is_none() {
            self.deep.store(false, Ordering::Relaxed);
        }
        entries
    }

    /// A temp name beside `name` for stores that are not atomic (WebDAV):
    /// hidden, so no listing takes it for an object.
    fn temp_path(&self, name: &ObjectName) -> String {
        format!("{}/{}", name.dir(), super::temps::name(self.owner()))
    }

    /// A WebDAV folder (S3 has none): one at a time, since two racing
    /// MKCOLs of one folder fail on some servers.
    async fn make_folder(&self, op: &Operator, dir: &str) -> PerObject<()> {
        if !self.target.is_webdav() {
            return Ok(());
        }
        op.create_dir(&format!("{dir}/"))
            .await
            .map_err(|e| format!("cannot make the folder {dir}: {}", brief(&e)))
    }

    /// One object up: S3 PUTs are atomic; WebDAV goes to a temp name and
    /// is moved over the final one.
    async fn store_one(
        &self,
        op: &Operator,
        name: &ObjectName,
        local: &std::path::Path,
    ) -> PerObject<RemoteObject> {
        let path = path_of(name);
        let mut file = std::fs::File::open(local)
            .map_err(|e| format!("cannot read {}: {e}", local.display()))?;
        let len = file.metadata().map_err(|e| e.to_string())?.len();
        let upload = if self.target.is_webdav() {
            self.temp_path(name)
        } else {
            path.clone()
        };
        let failed = |e: opendal::Error| format!("cannot upload {name}: {}", brief(&e));
        if len as usize <= PART || self.target.is_webdav() {
            // One request. WebDAV has no parts: the object is read whole.
            let mut bytes = Vec::with_capacity(len as usize);
            file.read_to_end(&mut bytes).map_err(|e| e.to_string())?;
            op.write(&upload, bytes).await.map_err(failed)?;
        } else {
            let mut writer = op.writer_with(&upload).chunk(PART).await.map_err(failed)?;
            let mut buf = vec![0; PART];
            loop {
                let n = read_full(&mut file, &mut buf).map_err(|e| e.to_string())?;
                if n == 0 {
                    break;
                }
                if let Err(e) = writer.write(buf[..n].to_vec()).await {
                    let _ = writer.abort().await;
                    return Err(failed(e));
                }
            }
            writer.close().await.map_err(failed)?;
        }
        if upload != path
            && let Err(e) = op.rename(&upload, &path).await
        {
            let _ = op.delete(&upload).await;
            return Err(failed(e));
        }
        // What a listing will show, stamp included, for the index.
        let meta = op.stat(&path).await.map_err(failed)?;
        Ok(RemoteObject {
            name: name.clone(),
            size: meta.content_length(),
            modified: modified(&meta),
        })
    }
}

fn read_full(file: &mut std::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

fn path_of(name: &ObjectName) -> String {
    format!("{}/{}", name.dir(), name.file())
}

/// Whole seconds: a HEAD says no more, and a listing must stamp an object
/// as the store that wrote it did.
fn modified(meta: &opendal::Metadata) -> Option<SystemTime> {
    let t: SystemTime = meta.last_modified()?.into();
    let secs = t.duration_since(SystemTime::UNIX_EPOCH).ok()?.as_secs();
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Whether a `Depth: infinity` answer went below the top: a server that
/// answers it as depth 1 names folders and nothing in them. (A sync dir
/// whose folders are all empty is listed again folder by folder: rare,
/// and costs only requests.)
fn deep_enough(entries: &[opendal::Entry]) -> bool {
    let nested = |e: &opendal::Entry| e.path().trim_matches('/').contains('/');
    let folders = entries
        .iter()
        .any(|e| e.metadata().is_dir() && !e.path().trim_matches('/').is_empty());
    !folders || entries.iter().any(nested)
}

/// OpenDAL's message without its context dump, which can hold a signed URL.
/// A server's HTML error page is cut to its first line.
fn brief(e: &opendal::Error) -> String {
    let message = e.message().lines().next().unwrap_or_default();
    let message: String = message.chars().take(200).collect();
    format!("{message} ({})", e.kind())
}

/// How a key that is not an object is treated: `None` to pass over it
/// quietly (a ccsync temp upload, a folder marker, a file that is not
/// ccsync's), or why it is refused by name: a key no directory could hold.
fn refusal(path: &str) -> Option<&'static str> {
    let parts: Vec<&str> = path.split('/').collect();
    if parts
        .iter()
        .any(|p| *p == ".." || *p == "." || p.contains('\\'))
    {
        Some("a key that climbs out of its folder; ccsync never follows it")
    } else if parts.len() > 2 || parts.iter().any(|p| p.is_empty()) {
        Some("a key nested deeper than ccsync writes; ccsync leaves it alone")
    } else {
        None
    }
}

impl Transport for ObjectTransport {
    fn location(&self) -> String {
        self.target.to_string()
    }

    fn list(&self) -> Result<Listing, TransportError> {
        let op = self.op()?;
        let entries = match self.deep_listing(op) {
            Some(entries) => entries,
            None => self
                .rt
                .block_on(async { op.list_with("/").recursive(true).await })
                .map_err(|e| self.error(format!("cannot list it: {}", brief(&e))))?,
        };
        let mut listing = Listing::default();
        let mut own_temps = Vec::new();
        for entry in entries {
            let (path, meta) = entry.into_parts();
            let path = path.trim_start_matches('/');
            if meta.is_dir() || path.is_empty() {
                continue;
            }
            let file = path.rsplit('/').next().unwrap_or_default();
            if self.owner.is_some() && super::temps::is_abandoned_own(file, self.owner()) {
                own_temps.push(path.to_owned());
            }
            if let Some(why) = refusal(path) {
                listing.refused.push((path.to_owned(), why.to_owned()));
                continue;
            }
            let Some((dir, file)) = path.split_once('/') else {
                continue;
            };
            if let Some(name) = ObjectName::parse(dir, file) {
                listing.objects.push(RemoteObject {
                    name,
                    size: meta.content_length(),
                    modified: modified(&meta),
                });
            }
        }
        listing.objects.sort_by(|a, b| a.name.cmp(&b.name));
        *self.own_temps.lock().unwrap_or_else(|e| e.into_inner()) = own_temps;
        Ok(listing)
    }

    fn fetch(
        &self,
        names: &[ObjectName],
        visit: &mut Visitor,
    ) -> Result<Vec<PerObject<()>>, TransportError> {
        let op = self.op()?;
        Ok(names
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let path = path_of(name);
                let stream = self.rt.block_on(async {
                    let meta = op.stat(&path).await.map_err(|e| {
                        if e.kind() == opendal::ErrorKind::NotFound {
                            format!("{name} does not exist")
                        } else {
                            format!("cannot read {name}: {}", brief(&e))
                        }
                    })?;
                    let len = meta.content_length();
                    if len > MAX_BUNDLE_BYTES {
                        return Err(too_large("it", len));
                    }
                    // Never more than the stat said: an object replaced
                    // meanwhile is cut, and its check fails, not the pull.
                    let reader = op.reader(&path).await.map_err(|e| brief(&e))?;
                    reader
                        .into_bytes_stream(0..len)
                        .await
                        .map_err(|e| brief(&e))
                })?;
                visit(
                    i,
                    &mut Streamed {
                        rt: &self.rt,
                        stream,
                        chunk: Vec::new(),
                        at: 0,
                    },
                );
                Ok(())
            })
            .collect())
    }

    fn store(
        &self,
        objects: &[(ObjectName, PathBuf)],
    ) -> Result<Vec<PerObject<RemoteObject>>, TransportError> {
        let op = self.op()?;
        let folders: std::collections::BTreeSet<&str> =
            objects.iter().map(|(name, _)| name.dir()).collect();
        let stored = self.rt.block_on(async {
            let mut made = std::collections::BTreeMap::new();
            for dir in folders {
                made.insert(dir, self.make_folder(op, dir).await);
            }
            futures_util::stream::iter(objects)
                .map(|(name, local)| {
                    let made = made[name.dir()].clone();
                    async move {
                        made?;
                        self.store_one(op, name, local).await
                    }
                })
                .buffered(CONCURRENT_UPLOADS)
                .collect::<Vec<_>>()
                .await
        });
        Ok(stored)
    }

    fn remove(&self, names: &[ObjectName]) -> Result<Vec<PerObject<()>>, TransportError> {
        let op = self.op()?;
        Ok(self.rt.block_on(
            futures_util::stream::iter(names)
                .map(|name| async move {
                    match op.delete(&path_of(name)).await {
                        Ok(()) => Ok(()),
                        Err(e) if e.kind() == opendal::ErrorKind::NotFound => Ok(()),
                        Err(e) => Err(format!("cannot remove {name}: {}", brief(&e))),
                    }
                })
                .buffered(CONCURRENT_UPLOADS)
                .collect::<Vec<_>>(),
        ))
    }

    /// Only what the last listing found: a push lists first, and listing
    /// a WebDAV share again would cost a request per folder.
    fn remove_own_temps(&self) -> Result<(), TransportError> {
        let temps = std::mem::take(&mut *self.own_temps.lock().unwrap_or_else(|e| e.into_inner()));
        if temps.is_empty() {
            return Ok(());
        }
        let op = self.op()?;
        self.rt
            .block_on(
                futures_util::stream::iter(&temps)
                    .map(|path| op.delete(path))
                    .buffered(CONCURRENT_UPLOADS)
                    .try_collect::<Vec<()>>(),
            )
            .map(drop)
            .map_err(|e| self.error(format!("cannot remove temp files: {}", brief(&e))))
    }

    fn check_writable(&self) -> Result<(), TransportError> {
        let op = self.op()?;
        let probe = format!("ccsync/.ccsync-probe-{}", self.owner());
        self.rt
            .block_on(async {
                if self.target.is_webdav() {
                    op.create_dir("ccsync/").await?;
                }
                op.write(&probe, Vec::<u8>::new()).await?;
                op.delete(&probe).await
            })
            .map_err(|e| self.error(format!("cannot write to it: {}", brief(&e))))
    }
}

/// A fetched object as a `Read`, pulled chunk by chunk from the network:
/// memory stays at one chunk, whatever the object's size.
struct Streamed<'a> {
    rt: &'a tokio::runtime::Runtime,
    stream: opendal::FuturesBytesStream,
    chunk: Vec<u8>,
    at: usize,
}

impl Read for Streamed<'_> {
    fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
        while self.at == self.chunk.len() {
            match self.rt.block_on(self.stream.next()) {
                None => return Ok(0),
                Some(chunk) => {
                    self.chunk = chunk?.to_vec();
                    self.at = 0;
                }
            }
        }
        let n = out.len().min(self.chunk.len() - self.at);
        out[..n].copy_from_slice(&self.chunk[self.at..self.at + n]);
        self.at += n;
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_climb_or_nest_are_refused_and_others_passed_over() {
        assert!(refusal("git=x/../../etc").is_some());
        assert!(refusal("../x").is_some());
        assert!(refusal("a/b/c.ccsync").is_some());
        assert!(refusal("a//b").is_some());
        assert!(refusal("git=x/a.ccsync").is_none());
        assert!(refusal("README").is_none());
    }
}
