//! Fetching bundles and decoding them into staging, on more than one core.
//!
//! The transport hands over one object at a time. A small one (most
//! sessions) is read into memory and decoded by one of two workers while
//! the next is read; a large one streams through the calling thread as it
//! arrives (its own transcript then goes through the bundle's pipeline), so
//! memory stays at a few MB whatever the sizes: at most
//! `SMALL * (QUEUED + WORKERS + 1)` of bundle bytes at once.

use std::io::{self, Read};
use std::path::PathBuf;
use std::sync::{Mutex, mpsc};

use super::{Counting, Progress, Received, copies, receive_in};
use crate::bundle::BundleError;
use crate::bundle::layers::Layers;
use crate::transport::{ObjectName, PerObject, Transport, TransportError, fetch_each};

/// Objects up to this many bytes, as stored, go to a worker.
const SMALL: u64 = 1 << 20;
/// Decoding threads: this machine's two cores, with reading on the caller's.
const WORKERS: usize = 2;
/// Objects read and waiting for a worker.
const QUEUED: usize = 2;

/// What became of one object: as [`fetch_each`] says, then as decoding
/// into `into(i)` says.
pub type Arrived = PerObject<Result<Received, BundleError>>;

/// Fetches `names` and decodes each into staging at `into(i)`, as
/// [`super::receive`] would one after another; results in request order.
/// `progress` is told of the bytes as they are read.
pub fn receive_all(
    transport: &dyn Transport,
    layers: &Layers,
    names: &[ObjectName],
    into: impl Fn(usize) -> PathBuf + Sync,
    progress: &dyn Progress,
) -> Result<Vec<Arrived>, TransportError> {
    let (jobs, queue) = mpsc::sync_channel::<(usize, Vec<u8>)>(QUEUED);
    let queue = Mutex::new(queue);
    let (done_tx, done) = mpsc::channel();
    std::thread::scope(|s| {
        for _ in 0..WORKERS.min(names.len()) {
            let (queue, done_tx, into) = (&queue, done_tx.clone(), &into);
            s.spawn(move || {
                // One context per worker for all its objects.
                let mut context = zstd::zstd_safe::DCtx::try_create();
                loop {
                    let job = queue.lock().map_or(None, |q| q.recv().ok());
                    let Some((i, bytes)) = job else { break };
                    let got = receive_in(&bytes[..], &into(i), layers, context.as_mut());
                    if done_tx.send((i, got)).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let fetched = fetch_each(transport, names, |i, input| {
            let mut input = Counting {
                inner: input,
                progress,
            };
            let mut head = Vec::new();
            Ok(match (&mut input).take(SMALL + 1).read_to_end(&mut head) {
                Err(e) => Some(Err(BundleError::Io(e))),
                Ok(n) if n as u64 <= SMALL => match jobs.send((i, head)) {
                    Ok(()) => None,
                    Err(_) => Some(Err(BundleError::Io(io::Error::other(
                        "the decoding threads stopped",
                    )))),
                },
                Ok(_) => Some(receive_in(
                    io::Cursor::new(head).chain(input),
                    &into(i),
                    layers,
                    None,
                )),
            })
        });
        drop(jobs);
        let decoded: Vec<(usize, Result<Received, BundleError>)> = done.into_iter().collect();
        let mut fetched = match fetched {
            Ok(f) => f,
            Err(e) => {
                for (_, got) in &decoded {
                    if let Ok(r) = got {
                        copies::discard(r);
                    }
                }
                return Err(e);
            }
        };
        for (i, got) in decoded {
            match &mut fetched[i] {
                Ok(slot @ None) => *slot = Some(got),
                // The transport failed it after all: nothing of it stays.
                _ => {
                    if let Ok(r) = &got {
                        copies::discard(r);
                    }
                }
            }
        }
        Ok(fetched
            .into_iter()
            .map(|f| f.and_then(|got| got.ok_or_else(|| "it did not arrive".to_owned())))
            .collect())
    })
}
