//! A network output behind a bounded queue and its own thread, so that a slow
//! or dead receiver never blocks the pipeline's output thread.
//!
//! The output thread encodes each line (framing, syslog header, Kafka key)
//! and `try_send`s it into a bounded crossbeam channel of `queue` items; a
//! full queue drops the line and counts it (`dropped`). The worker thread
//! connects, sends, and on an error reconnects with exponential backoff
//! ([`BACKOFF_MIN`] .. [`BACKOFF_MAX`]) while the queue fills. Offline
//! (`read`), a full queue first waits up to [`LOSSLESS_WAIT`] for a connected
//! receiver before it drops, and does not wait again until the queue has
//! drained to half (so a receiver that stops reading costs at most one wait).
//! At the end of a run [`Queued::close`] lets the worker drain until the
//! output's deadline; what is still queued then is counted as dropped.
//! Invariant at exit: `lines = sent + dropped`.

use std::io;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};

use super::lines::OutputStat;

/// First wait before reconnecting after a failure.
pub const BACKOFF_MIN: Duration = Duration::from_millis(100);
/// Longest wait between two connection attempts.
pub const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// `read` only: how long a full queue waits for a connected receiver.
pub const LOSSLESS_WAIT: Duration = Duration::from_secs(1);

/// One encoded line: the bytes to send and, for Kafka, the key.
#[derive(Debug, Clone)]
pub struct Item {
    pub key: Option<String>,
    pub payload: Vec<u8>,
}

/// The connection of one output, used by its worker thread only.
pub trait Transport: Send + 'static {
    fn connect(&mut self) -> io::Result<()>;
    /// Sends one item. `Ok(true)`: sent now; `Ok(false)`: accepted for
    /// asynchronous delivery, counted later by the transport ([`Counters`]).
    /// An error drops the connection (the worker reconnects and resends);
    /// `WouldBlock`: full for now, try again (no error); `InvalidData`: this
    /// line can never be sent (dropped and counted).
    fn send(&mut self, item: &Item) -> io::Result<bool>;
    /// The queue is empty for now: flush buffered bytes, serve callbacks.
    fn idle(&mut self) -> io::Result<()> {
        Ok(())
    }
    /// End of the run: deliver what is in flight until `deadline`; returns
    /// how many lines it had to give up (counted as dropped).
    fn finish(&mut self, deadline: Instant) -> u64 {
        let _ = deadline;
        0
    }
}

/// Shared numbers of one output (atomics: read by capture_stats and /metrics).
#[derive(Debug, Default)]
pub struct Counters {
    pub lines: AtomicU64,
    pub sent: AtomicU64,
    pub dropped: AtomicU64,
    pub reconnects: AtomicU64,
    pub errors: AtomicU64,
    pub connected: AtomicBool,
    /// Set at close: the worker gives up at this instant (micros since `epoch`).
    deadline_micros: AtomicU64,
}

pub struct Queued {
    pub name: String,
    pub kind: &'static str,
    tx: Option<Sender<Item>>,
    pub counters: Arc<Counters>,
    worker: Option<JoinHandle<()>>,
    capacity: usize,
    lossless: bool,
    /// `read`: a wait timed out; no more waiting until the queue is half empty.
    stalled: bool,
    drain: Duration,
    epoch: Instant,
}

impl Queued {
    /// Starts the worker thread of one output.
    pub fn start(
        name: String,
        kind: &'static str,
        transport: Box<dyn Transport>,
        counters: Arc<Counters>,
        capacity: usize,
        lossless: bool,
        drain: Duration,
    ) -> Queued {
        let (tx, rx) = bounded::<Item>(capacity.max(1));
        let epoch = Instant::now();
        counters.deadline_micros.store(u64::MAX, Ordering::Relaxed);
        let c = counters.clone();
        let worker = std::thread::Builder::new()
            .name(format!("mxwatch-out-{kind}"))
            .spawn(move || worker(transport, rx, c, epoch))
            .expect("spawn output thread");
        Queued {
            name,
            kind,
            tx: Some(tx),
            counters,
            worker: Some(worker),
            capacity: capacity.max(1),
            lossless,
            stalled: false,
            drain,
            epoch,
        }
    }

    /// Queues one item; never blocks live (a full queue drops and counts).
    pub fn push(&mut self, item: Item) {
        let Some(tx) = &self.tx else { return };
        self.counters.lines.fetch_add(1, Ordering::Relaxed);
        let item = match tx.try_send(item) {
            Ok(()) => return,
            Err(TrySendError::Full(item)) => item,
            Err(TrySendError::Disconnected(_)) => {
                self.counters.dropped.fetch_add(1, Ordering::Relaxed);
                return;
            }
        };
        if self.lossless && self.stalled && tx.len() <= self.capacity / 2 {
            self.stalled = false;
        }
        if self.lossless && !self.stalled && self.counters.connected.load(Ordering::Relaxed) {
            match tx.send_timeout(item, LOSSLESS_WAIT) {
                Ok(()) => return,
                Err(_) => self.stalled = true,
            }
        }
        self.counters.dropped.fetch_add(1, Ordering::Relaxed);
    }

    /// No more lines: the worker drains until the output's deadline
    /// (`drain` from now), then gives up what is left (counted as dropped).
    pub fn begin_close(&mut self) {
        if self.tx.is_none() {
            return;
        }
        let deadline = Instant::now() + self.drain;
        self.counters.deadline_micros.store(
            deadline.duration_since(self.epoch).as_micros() as u64,
            Ordering::Relaxed,
        );
        self.tx = None;
    }

    /// [`Self::begin_close`], then waits for the worker until the deadline
    /// (and a little more for Kafka's purge); a worker still stuck in a
    /// write then is left behind and everything it had not sent is counted
    /// as dropped, so a stuck receiver cannot hold the exit.
    pub fn close(&mut self) {
        self.begin_close();
        let Some(w) = self.worker.take() else { return };
        let give_up = Instant::now() + self.drain + Duration::from_secs(1);
        while !w.is_finished() && Instant::now() < give_up {
            std::thread::sleep(Duration::from_millis(10));
        }
        if w.is_finished() {
            let _ = w.join();
        } else {
            let c = &self.counters;
            let accounted = c.sent.load(Ordering::Relaxed) + c.dropped.load(Ordering::Relaxed);
            let lines = c.lines.load(Ordering::Relaxed);
            c.dropped
                .fetch_add(lines.saturating_sub(accounted), Ordering::Relaxed);
        }
    }

    pub fn stat(&self) -> OutputStat {
        let c = &self.counters;
        OutputStat {
            name: self.name.clone(),
            kind: self.kind,
            lines: c.lines.load(Ordering::Relaxed),
            sent: c.sent.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            queued: self.tx.as_ref().map_or(0, |t| t.len() as u64),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            errors: c.errors.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Queued {
    fn drop(&mut self) {
        self.close();
    }
}

fn worker(mut t: Box<dyn Transport>, rx: Receiver<Item>, c: Arc<Counters>, epoch: Instant) {
    let deadline = || {
        let d = c.deadline_micros.load(Ordering::Relaxed);
        (d != u64::MAX).then(|| epoch + Duration::from_micros(d))
    };
    let past_deadline = || deadline().is_some_and(|d| Instant::now() >= d);
    let mut backoff = BACKOFF_MIN;
    let mut next_attempt = Instant::now();
    let mut ever_connected = false;
    'items: loop {
        let item = match rx.recv_timeout(Duration::from_millis(200)) {
            Ok(i) => i,
            Err(RecvTimeoutError::Timeout) => {
                if c.connected.load(Ordering::Relaxed) && t.idle().is_err() {
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    c.connected.store(false, Ordering::Relaxed);
                }
                continue;
            }
            Err(RecvTimeoutError::Disconnected) => break,
        };
        loop {
            if past_deadline() {
                c.dropped.fetch_add(1, Ordering::Relaxed);
                continue 'items;
            }
            if !c.connected.load(Ordering::Relaxed) {
                let now = Instant::now();
                if now < next_attempt {
                    let until = deadline().map_or(next_attempt, |d| d.min(next_attempt));
                    std::thread::sleep(until.saturating_duration_since(now));
                    continue;
                }
                match t.connect() {
                    Ok(()) => {
                        if ever_connected {
                            c.reconnects.fetch_add(1, Ordering::Relaxed);
                        }
                        ever_connected = true;
                        backoff = BACKOFF_MIN;
                        c.connected.store(true, Ordering::Relaxed);
                    }
                    Err(e) => {
                        tracing::debug!("output connect: {e}");
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        next_attempt = Instant::now() + backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        continue;
                    }
                }
            }
            match t.send(&item) {
                Ok(sent_now) => {
                    if sent_now {
                        c.sent.fetch_add(1, Ordering::Relaxed);
                    }
                    if rx.is_empty() && t.idle().is_err() {
                        c.errors.fetch_add(1, Ordering::Relaxed);
                        c.connected.store(false, Ordering::Relaxed);
                    }
                    continue 'items;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::InvalidData => {
                    tracing::debug!("output refused a line: {e}");
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    c.dropped.fetch_add(1, Ordering::Relaxed);
                    continue 'items;
                }
                Err(e) => {
                    tracing::debug!("output send: {e}");
                    c.errors.fetch_add(1, Ordering::Relaxed);
                    c.connected.store(false, Ordering::Relaxed);
                    next_attempt = Instant::now() + backoff;
                    backoff = (backoff * 2).min(BACKOFF_MAX);
                }
            }
        }
    }
    let lost = t.finish(deadline().unwrap_or_else(Instant::now));
    c.dropped.fetch_add(lost, Ordering::Relaxed);
}
