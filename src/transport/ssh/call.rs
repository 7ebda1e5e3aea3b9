//! One ssh process, watched, so that every call ends in bounded time
//! whatever the host or the network does.
//!
//! Threads move the bytes of its stdin, stdout and stderr; the calling
//! thread only ever waits on channels with a deadline. When no byte has
//! moved on stdin or stdout for the idle limit, the ssh process is killed,
//! and so is the shared connection's master (`-O exit`): a multiplexed ssh
//! hands its stdin, stdout and stderr to the master, which keeps stderr
//! open after the client is gone, so a read of it would wait for as long
//! as the host stays frozen. Time the consumer spends on what it was given
//! is not counted: only waiting for the host is.

use std::io::{self, Read, Write};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What a call writes to ssh's stdin, on a thread of its own.
pub(super) type Input = Box<dyn FnOnce(&mut dyn Write) -> io::Result<()> + Send>;

const CHUNK: usize = 64 * 1024;
/// Chunks read ahead of the consumer.
const AHEAD: usize = 8;
/// How long the stdin and stderr threads get to finish once ssh has ended,
/// and how long `ssh -O exit` gets.
const GRACE: Duration = Duration::from_secs(5);
/// Stderr kept; enough for a skip line for every object of a large batch.
const STDERR_CAP: usize = 16 << 20;

/// Below this average rate (after the first idle limit), a host that
/// trickles bytes to keep the idle watch quiet is given up on too: every
/// call ends in bounded time.
pub(super) const MIN_RATE: u64 = 4 << 10;

/// When a byte last moved, how many moved, and how long the caller spent
/// waiting for the host (time it spends on what it got is not the host's).
struct Clock {
    start: Instant,
    last_ms: AtomicU64,
    moved: AtomicU64,
    waited_ms: AtomicU64,
}

impl Clock {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    fn touch(&self) {
        self.touch_at(self.now_ms());
    }

    fn touch_at(&self, ms: u64) {
        self.last_ms.fetch_max(ms, Ordering::Relaxed);
    }

    fn moved(&self, n: usize) {
        self.moved.fetch_add(n as u64, Ordering::Relaxed);
    }

    fn waited(&self, d: Duration) {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.waited_ms.fetch_add(ms, Ordering::Relaxed);
    }

    /// Whether fewer bytes moved than [`MIN_RATE`] asks for over the time
    /// spent waiting for the host, once that passed the idle limit.
    fn too_slow(&self, limit: Duration) -> bool {
        let waited = Duration::from_millis(self.waited_ms.load(Ordering::Relaxed));
        let Some(over) = waited.checked_sub(limit) else {
            return false;
        };
        (self.moved.load(Ordering::Relaxed) as f64) < over.as_secs_f64() * MIN_RATE as f64
    }

    /// How long nothing has moved, counted from `since` at the earliest.
    fn quiet(&self, since: Instant) -> Duration {
        let last = self.start + Duration::from_millis(self.last_ms.load(Ordering::Relaxed));
        last.max(since).elapsed()
    }
}

/// A running ssh process. Dropped unfinished, it is killed.
pub(super) struct Call {
    child: Child,
    clock: Arc<Clock>,
    out: Output,
    err: Arc<Mutex<Vec<u8>>>,
    err_done: Receiver<()>,
    input: Option<Receiver<io::Result<()>>>,
    /// `ssh -O exit` for the master this call went through, if any.
    end_master: Option<Command>,
    grace: Duration,
    ended: bool,
}

/// How a call ended.
pub(super) struct Ended {
    /// `None` only if waiting for the process failed.
    pub status: Option<ExitStatus>,
    pub stderr: Vec<u8>,
    /// Ended by the watch: nothing moved for the idle limit.
    pub stalled: bool,
    /// Ended by the watch: bytes moved, but far too slowly.
    pub slow: bool,
    /// How long nothing had moved when it ended.
    pub quiet: Duration,
    /// What writing stdin came to, for a call with input.
    pub input: Option<io::Result<()>>,
}

/// The process's stdout, read through the watch.
pub(super) struct Output {
    chunks: Receiver<io::Result<Vec<u8>>>,
    chunk: Vec<u8>,
    pos: usize,
    clock: Arc<Clock>,
    limit: Duration,
    stalled: bool,
    slow: bool,
    eof: bool,
}

/// The error a read gets once the watch has given up on the host.
pub(super) fn stalled_error(limit: Duration) -> io::Error {
    io::Error::new(
        io::ErrorKind::TimedOut,
        format!("no data moved for {}", seconds(limit)),
    )
}

/// `30 s`, `2.5 s`.
pub(super) fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{:.1} s", d.as_secs_f64())
    }
}

impl Call {
    pub fn start(
        mut cmd: Command,
        input: Option<Input>,
        limit: Duration,
        end_master: Option<Command>,
    ) -> io::Result<Self> {
        cmd.stdin(if input.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        let clock = Arc::new(Clock {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            moved: AtomicU64::new(0),
            waited_ms: AtomicU64::new(0),
        });
        let (out_tx, chunks) = mpsc::sync_channel(AHEAD);
        let (err_tx, err_done) = mpsc::channel();
        let err = Arc::new(Mutex::new(Vec::new()));
        let stdout = child.stdout.take().expect("piped");
        let stderr = child.stderr.take().expect("piped");
        let stdin = child.stdin.take();
        let mut call = Self {
            child,
            clock: clock.clone(),
            out: Output {
                chunks,
                chunk: Vec::new(),
                pos: 0,
                clock: clock.clone(),
                limit,
                stalled: false,
                slow: false,
                eof: false,
            },
            err: err.clone(),
            err_done,
            input: None,
            end_master,
            grace: GRACE,
            ended: false,
        };
        // On failure to start a thread, `call` is dropped: the process is killed.
        let c = clock.clone();
        spawn("ssh stdout", move || pump(stdout, &out_tx, &c))?;
        spawn("ssh stderr", move || {
            collect(stderr, &err);
            drop(err_tx);
        })?;
        if let (Some(fill), Some(stdin)) = (input, stdin) {
            let (tx, rx) = mpsc::channel();
            spawn("ssh stdin", move || {
                let mut w = Clocked {
                    inner: stdin,
                    clock,
                };
                let written = fill(&mut w).and_then(|()| w.flush());
                // Closed here, so the remote sees the end of its input.
                drop(w);
                let _ = tx.send(written);
            })?;
            call.input = Some(rx);
        }
        Ok(call)
    }

    #[cfg(test)]
    fn with_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    pub fn stdout(&mut self) -> &mut Output {
        &mut self.out
    }

    /// Reads what is left of stdout and waits for the process to end, for
    /// as long as bytes keep moving.
    pub fn finish(mut self) -> Ended {
        let status = self.wait(None);
        self.end(status)
    }

    /// Ends the call soon: the consumer stopped reading (what came made no
    /// sense). ssh gets a moment to end on its own, so its exit code and
    /// words are kept when it was ssh that failed.
    pub fn abort(mut self) -> Ended {
        let status = self.wait(Some(Duration::from_millis(500)));
        self.end(status)
    }

    fn wait(&mut self, patience: Option<Duration>) -> Option<ExitStatus> {
        let since = Instant::now();
        let mut tick = Duration::from_millis(1);
        loop {
            match self.child.try_wait() {
                Ok(Some(status)) => return Some(status),
                Ok(None) => {}
                Err(_) => return None,
            }
            let out_of_patience = patience.is_some_and(|p| since.elapsed() >= p);
            if self.clock.quiet(since) >= self.out.limit {
                self.out.stalled = true;
            } else if self.clock.too_slow(self.out.limit) {
                self.out.stalled = true;
                self.out.slow = true;
            }
            if self.out.stalled || out_of_patience {
                let _ = self.child.kill();
                return self.child.wait().ok();
            }
            let waiting = Instant::now();
            if self.out.eof {
                std::thread::sleep(tick);
            } else {
                // Drained, so a process with more to say is not held up.
                match self.out.chunks.recv_timeout(tick) {
                    Ok(Ok(_)) => self.clock.touch(),
                    Ok(Err(_)) | Err(RecvTimeoutError::Disconnected) => self.out.eof = true,
                    Err(RecvTimeoutError::Timeout) => {}
                }
            }
            self.clock.waited(waiting.elapsed());
            tick = (tick * 2).min(Duration::from_millis(20));
        }
    }

    fn end(&mut self, status: Option<ExitStatus>) -> Ended {
        self.ended = true;
        let quiet = self.clock.quiet(self.clock.start);
        if self.out.stalled {
            self.end_master();
        }
        let input = self.input.take().map(|rx| {
            rx.recv_timeout(self.grace).unwrap_or_else(|_| {
                Err(io::Error::new(
                    io::ErrorKind::BrokenPipe,
                    "the host stopped taking input",
                ))
            })
        });
        let _ = self.err_done.recv_timeout(self.grace);
        let stderr = self
            .err
            .lock()
            .map(|mut e| std::mem::take(&mut *e))
            .unwrap_or_default();
        Ended {
            status,
            stderr,
            stalled: self.out.stalled,
            slow: self.out.slow,
            quiet,
            input,
        }
    }

    /// Asks the master to end, which closes every pipe it holds.
    fn end_master(&mut self) {
        let Some(mut cmd) = self.end_master.take() else {
            return;
        };
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let Ok(mut exit) = cmd.spawn() else { return };
        let since = Instant::now();
        while since.elapsed() < self.grace {
            if !matches!(exit.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = exit.kill();
        let _ = exit.wait();
    }
}

impl Drop for Call {
    fn drop(&mut self) {
        if !self.ended && matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

impl Read for Output {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        loop {
            if self.pos < self.chunk.len() {
                let n = buf.len().min(self.chunk.len() - self.pos);
                buf[..n].copy_from_slice(&self.chunk[self.pos..self.pos + n]);
                self.pos += n;
                return Ok(n);
            }
            if self.stalled {
                return Err(stalled_error(self.limit));
            }
            if self.eof || buf.is_empty() {
                return Ok(0);
            }
            self.chunk = match self.next_chunk() {
                Ok(Some(chunk)) => chunk,
                Ok(None) => {
                    self.eof = true;
                    return Ok(0);
                }
                Err(e) => {
                    self.eof = true;
                    return Err(e);
                }
            };
            self.pos = 0;
        }
    }
}

impl Output {
    /// The next chunk; `None` at the end. Waits while something moves.
    fn next_chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let since = Instant::now();
        loop {
            // What already arrived is taken without a look at the clock.
            match self.chunks.try_recv() {
                Ok(Ok(chunk)) => {
                    self.clock.touch();
                    return Ok(Some(chunk));
                }
                Ok(Err(e)) => return Err(e),
                Err(mpsc::TryRecvError::Disconnected) => return Ok(None),
                Err(mpsc::TryRecvError::Empty) => {}
            }
            let quiet = self.clock.quiet(since);
            if quiet >= self.limit || self.clock.too_slow(self.limit) {
                self.slow = quiet < self.limit;
                self.stalled = true;
                return Err(stalled_error(self.limit));
            }
            let waiting = Instant::now();
            let got = self.chunks.recv_timeout(self.limit - quiet);
            self.clock.waited(waiting.elapsed());
            match got {
                Ok(Ok(chunk)) => {
                    self.clock.touch();
                    return Ok(Some(chunk));
                }
                Ok(Err(e)) => return Err(e),
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => return Ok(None),
            }
        }
    }
}

fn spawn(name: &str, f: impl FnOnce() + Send + 'static) -> io::Result<()> {
    std::thread::Builder::new()
        .name(name.into())
        .spawn(f)
        .map(drop)
}

fn pump(mut from: impl Read, to: &SyncSender<io::Result<Vec<u8>>>, clock: &Clock) {
    loop {
        let mut buf = vec![0; CHUNK];
        match from.read(&mut buf) {
            Ok(0) => return,
            Ok(n) => {
                clock.touch();
                clock.moved(n);
                buf.truncate(n);
                if to.send(Ok(buf)).is_err() {
                    return;
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                let _ = to.send(Err(e));
                return;
            }
        }
    }
}

fn collect(mut from: impl Read, into: &Mutex<Vec<u8>>) {
    let mut buf = [0; 8192];
    loop {
        match from.read(&mut buf) {
            Ok(0) => return,
            // Words on stderr are not progress: a host that only talks
            // would otherwise keep a call alive for ever.
            Ok(n) => {
                if let Ok(mut kept) = into.lock() {
                    let room = STDERR_CAP.saturating_sub(kept.len());
                    kept.extend_from_slice(&buf[..n.min(room)]);
                }
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return,
        }
    }
}

/// Stdin, marking the clock at every write that went through.
struct Clocked<W> {
    inner: W,
    clock: Arc<Clock>,
}

impl<W: Write> Write for Clocked<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let began = self.clock.now_ms();
        let n = self.inner.write(buf)?;
        // A write into a pipe returns short only when its readers went
        // away while it waited: the bytes went in when it began, and
        // nothing has moved since.
        self.clock.moved(n);
        if n == buf.len() {
            self.clock.touch();
        } else {
            self.clock.touch_at(began);
        }
        Ok(n)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    fn sh(script: &str) -> Command {
        let mut cmd = Command::new("sh");
        cmd.arg("-c").arg(script);
        cmd
    }

    #[test]
    fn output_and_words_arrive_whole() {
        let mut call = Call::start(
            sh("head -c 300000 /dev/zero; echo said >&2; exit 7"),
            None,
            Duration::from_secs(10),
            None,
        )
        .unwrap();
        let mut out = Vec::new();
        call.stdout().read_to_end(&mut out).unwrap();
        let ended = call.finish();
        assert_eq!(out.len(), 300_000);
        assert_eq!(ended.stderr, b"said\n");
        assert_eq!(ended.status.unwrap().code(), Some(7));
        assert!(!ended.stalled);
    }

    #[test]
    fn input_is_written_and_closed() {
        let input: Input = Box::new(|w| w.write_all(&[b'x'; 200_000]));
        let mut call =
            Call::start(sh("wc -c"), Some(input), Duration::from_secs(10), None).unwrap();
        let mut out = String::new();
        call.stdout().read_to_string(&mut out).unwrap();
        let ended = call.finish();
        assert_eq!(out.trim(), "200000");
        assert!(matches!(ended.input, Some(Ok(()))));
    }

    /// A process that goes quiet while a grandchild holds its pipes open,
    /// as an ssh master does: the call still ends, near the limit.
    #[test]
    fn silence_ends_the_call_even_when_others_hold_the_pipes() {
        let limit = Duration::from_millis(400);
        let started = Instant::now();
        let input: Input = Box::new(|w| {
            loop {
                w.write_all(&[0; 65536])?;
            }
        });
        let grace = Duration::from_millis(300);
        let mut call = Call::start(sh("echo hi; (sleep 5) & sleep 5"), Some(input), limit, None)
            .unwrap()
            .with_grace(grace);
        let mut out = Vec::new();
        let err = call.stdout().read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        assert_eq!(out, b"hi\n");
        let ended = call.finish();
        assert!(ended.stalled);
        assert!(ended.quiet >= limit);
        assert!(matches!(ended.input, Some(Err(_))));
        let took = started.elapsed();
        assert!(
            took < limit + grace * 2 + Duration::from_secs(1),
            "{took:?}"
        );
    }

    /// A host that trickles bytes to keep the idle watch quiet is given up
    /// on too: every call ends in bounded time.
    #[test]
    fn a_trickle_ends_the_call() {
        let limit = Duration::from_millis(400);
        let started = Instant::now();
        let mut call = Call::start(
            sh("while :; do printf x; sleep 0.1; done"),
            None,
            limit,
            None,
        )
        .unwrap()
        .with_grace(Duration::from_millis(300));
        let mut out = Vec::new();
        let err = call.stdout().read_to_end(&mut out).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::TimedOut);
        let ended = call.finish();
        assert!(ended.stalled && ended.slow);
        assert!(
            started.elapsed() < Duration::from_secs(3),
            "{:?}",
            started.elapsed()
        );
    }

    /// Time spent by the consumer on what it was given is not silence.
    #[test]
    fn a_slow_consumer_is_not_a_stall() {
        let limit = Duration::from_millis(200);
        let mut call = Call::start(sh("head -c 100 /dev/zero"), None, limit, None).unwrap();
        std::thread::sleep(limit * 3);
        let mut out = Vec::new();
        call.stdout().read_to_end(&mut out).unwrap();
        let ended = call.finish();
        assert_eq!(out.len(), 100);
        assert!(!ended.stalled);
    }

    #[test]
    fn durations_read_as_seconds() {
        assert_eq!(seconds(Duration::from_secs(30)), "30 s");
        assert_eq!(seconds(Duration::from_millis(2500)), "2.5 s");
    }
}
