//! Threads and channels around the engine's pieces, nothing else.
//!
//! ```text
//! capture thread: source -> engine::Front (decoders, bin clock) -> Sharder
//!                 --(bounded, batched)--> shard threads
//! shard thread:   engine::Stage (classify, then detect) --(closed bins per tick)--> output thread
//! output thread:  engine::merge of the shards' bins, in order -> output::Sink
//! ```
//!
//! The capture side sends a `Tick` to every shard whenever packet time enters
//! a new bin, so all shards close the same bins; the output thread waits for
//! every shard's answer to a tick before writing, and sorts, so a file gives
//! the same bytes whatever the number of shards. In lossless mode (files) a
//! full channel blocks the capture thread; otherwise (live) the batch is
//! dropped and counted, and the capture thread never waits.
//!
//! The output queue is bounded too (issue 12: with a stalled reader of
//! stdout it grew by gigabytes). In live mode a shard charges what it queues
//! (client records, alerts) against `output_queue_records` and
//! `output_queue_alerts` before sending, and the output thread releases it
//! once written: over the record budget a tick's client records (the
//! client_stats lines) are dropped first, over the alert budget its alerts,
//! both counted (`output_drops` in capture_stats). The tick itself always
//! goes, so bins stay aligned. `Running::finish_within` gives up on a stuck
//! writer after a deadline, so SIGTERM ends `live` in a stated time.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, unbounded};

use crate::decode::{DnsSighting, EventSink};
use crate::engine::{Back, Closed, EngineConfig, Front, Merger, Stage, push_dns};
use crate::event::{Batch, Event};
use crate::output::{CaptureSnapshot, ClassifierHealth, Sink};
use crate::smtp::SmtpEvent;
use crate::time::Micros;

/// A shard's answer to a tick: its closed bins and what they were charged to the output budget.
type Answer = (Vec<Closed>, (usize, usize));

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub workers: usize,
    /// Events per batch handed to a shard (FACTS: one event per send doubles CPU).
    pub batch_events: usize,
    /// Batches queued per shard before the channel is full.
    pub channel_batches: usize,
    /// Files: block on a full channel. Live: drop the batch and count it.
    pub lossless: bool,
    /// Live: client records (client_stats lines) queued for the output at most.
    pub output_queue_records: usize,
    /// Live: alerts queued for the output at most.
    pub output_queue_alerts: usize,
    pub engine: EngineConfig,
}

/// What is queued for the output thread, and what was dropped for lack of room.
#[derive(Debug, Default)]
pub struct OutputBudget {
    records: AtomicUsize,
    alerts: AtomicUsize,
    max_records: usize,
    max_alerts: usize,
    lossy: bool,
    pub dropped_records: AtomicU64,
    pub dropped_alerts: AtomicU64,
}

impl OutputBudget {
    /// Charges a shard's answer to a tick; strips what does not fit (live
    /// only). Returns what was charged, released once written.
    fn charge(&self, closed: &mut [Closed]) -> (usize, usize) {
        if !self.lossy {
            return (0, 0);
        }
        let records: usize = closed.iter().map(|c| c.bin.clients.len()).sum();
        let alerts: usize = closed.iter().map(|c| c.alerts.len()).sum();
        let mut charged = (0, 0);
        if self.records.load(Ordering::Relaxed) + records > self.max_records {
            self.dropped_records
                .fetch_add(records as u64, Ordering::Relaxed);
            closed.iter_mut().for_each(|c| c.bin.clients = Vec::new());
        } else {
            self.records.fetch_add(records, Ordering::Relaxed);
            charged.0 = records;
        }
        if self.alerts.load(Ordering::Relaxed) + alerts > self.max_alerts {
            self.dropped_alerts
                .fetch_add(alerts as u64, Ordering::Relaxed);
            closed.iter_mut().for_each(|c| c.alerts = Vec::new());
        } else {
            self.alerts.fetch_add(alerts, Ordering::Relaxed);
            charged.1 = alerts;
        }
        charged
    }

    fn release(&self, (records, alerts): (usize, usize)) {
        self.records.fetch_sub(records, Ordering::Relaxed);
        self.alerts.fetch_sub(alerts, Ordering::Relaxed);
    }

    /// (client records, alerts) dropped so far because the output was behind.
    pub fn dropped(&self) -> (u64, u64) {
        (
            self.dropped_records.load(Ordering::Relaxed),
            self.dropped_alerts.load(Ordering::Relaxed),
        )
    }
}

enum ShardMsg {
    Batch(Batch),
    Tick(i64),
    Finish,
}

enum OutMsg {
    Closed {
        shard: usize,
        closed: Vec<Closed>,
        /// (records, alerts) charged to the output budget.
        charged: (usize, usize),
    },
    Done(ClassifierHealth),
    /// Replace the output's writer (SIGHUP, log rotation): lines queued
    /// before go to the old writer, lines after to the new one.
    Reopen(Box<dyn std::io::Write + Send>),
    /// capture_stats lines from the capture side (periodic in live mode,
    /// final always), written with the shards' latest numbers.
    Health(Vec<CaptureSnapshot>),
}

/// The capture side's view of the channels: an [`EventSink`] that shards.
pub struct Sharder {
    senders: Vec<Sender<ShardMsg>>,
    batches: Vec<Batch>,
    pool: Receiver<Batch>,
    batch_events: usize,
    lossless: bool,
    pub dropped_batches: u64,
    pub dropped_events: u64,
    drop_log: DropLog,
}

/// Rate limit for the drop warning: at most one line a second, with the
/// counts since the previous line.
#[derive(Default)]
struct DropLog {
    last: Option<std::time::Instant>,
    batches: u64,
    events: u64,
}

impl DropLog {
    fn dropped(&mut self, events: usize) {
        self.batches += 1;
        self.events += events as u64;
        let now = std::time::Instant::now();
        if self
            .last
            .is_none_or(|l| now.duration_since(l).as_secs() >= 1)
        {
            tracing::warn!(target: "mxwatch::drops", batches = self.batches, events = self.events,
                "classifier channel full: batches dropped since the last warning");
            self.last = Some(now);
            self.batches = 0;
            self.events = 0;
        }
    }
}

impl Sharder {
    fn shard_of(&self, ip: &IpAddr) -> usize {
        if self.senders.len() == 1 {
            return 0;
        }
        // Which shard only spreads load (output is sorted), so a cheap
        // multiplicative hash of the address is enough.
        let folded = match ip {
            IpAddr::V4(a) => u64::from(a.to_bits()),
            IpAddr::V6(a) => {
                let b = a.to_bits();
                (b as u64) ^ ((b >> 64) as u64)
            }
        };
        let mixed = folded.wrapping_mul(0x9e37_79b9_7f4a_7c15);
        ((mixed >> 32) % self.senders.len() as u64) as usize
    }

    fn send(&mut self, shard: usize) {
        if self.batches[shard].is_empty() {
            return;
        }
        let fresh = self
            .pool
            .try_recv()
            .unwrap_or_else(|_| Batch::with_capacity(self.batch_events));
        let batch = std::mem::replace(&mut self.batches[shard], fresh);
        if self.lossless {
            let _ = self.senders[shard].send(ShardMsg::Batch(batch));
        } else if let Err(TrySendError::Full(ShardMsg::Batch(b))) =
            self.senders[shard].try_send(ShardMsg::Batch(batch))
        {
            self.dropped_batches += 1;
            self.dropped_events += b.len() as u64;
            self.drop_log.dropped(b.len());
        }
    }

    pub fn flush(&mut self) {
        for s in 0..self.batches.len() {
            self.send(s);
        }
    }

    fn broadcast(&mut self, msg: impl Fn() -> ShardMsg) {
        self.flush();
        for s in &self.senders {
            // Ticks and Finish are never dropped: they carry no packets and
            // keep every shard on the same bins.
            let _ = s.send(msg());
        }
    }
}

impl EventSink for Sharder {
    fn dns(&mut self, d: &DnsSighting<'_>) {
        let shard = self.shard_of(&d.client);
        let b = &mut self.batches[shard];
        push_dns(b, d);
        if b.len() >= self.batch_events {
            self.send(shard);
        }
    }

    fn smtp(&mut self, e: SmtpEvent) {
        let shard = self.shard_of(&e.ip);
        self.batches[shard].events.push(Event::Smtp(e));
        if self.batches[shard].len() >= self.batch_events {
            self.send(shard);
        }
    }
}

impl Back for Sharder {
    fn tick(&mut self, bin: Micros) {
        self.broadcast(|| ShardMsg::Tick(bin));
    }
    fn dropped(&self) -> (u64, u64) {
        (self.dropped_batches, self.dropped_events)
    }
}

/// The capture thread's side of a running pipeline.
pub struct CaptureSide {
    pub front: Front<Sharder>,
    out_tx: Sender<OutMsg>,
    output_failed: Arc<AtomicBool>,
}

impl CaptureSide {
    /// True once the output can no longer be written (e.g. a closed pipe).
    pub fn output_failed(&self) -> bool {
        self.output_failed.load(Ordering::Relaxed)
    }

    /// The flag behind [`Self::output_failed`], for a loop that borrows the front.
    pub fn failed_flag(&self) -> Arc<AtomicBool> {
        self.output_failed.clone()
    }

    /// A handle that queues lines for the output thread while the front is borrowed.
    pub fn health_sender(&self) -> HealthSender {
        HealthSender(self.out_tx.clone())
    }

    pub fn health(&self, snaps: Vec<CaptureSnapshot>) {
        let _ = self.out_tx.send(OutMsg::Health(snaps));
    }
}

/// Queues capture_stats lines and writer swaps on the output thread, in line order.
#[derive(Clone)]
pub struct HealthSender(Sender<OutMsg>);

impl HealthSender {
    /// capture_stats lines, written with the shards' latest numbers.
    pub fn health(&self, snaps: Vec<CaptureSnapshot>) {
        let _ = self.0.send(OutMsg::Health(snaps));
    }

    /// A writer swap (log rotation): nothing lost or written twice.
    pub fn reopen_output(&self, w: Box<dyn std::io::Write + Send>) {
        let _ = self.0.send(OutMsg::Reopen(w));
    }
}

pub struct Running {
    pub capture: CaptureSide,
    shards: Vec<JoinHandle<()>>,
    output: JoinHandle<(Box<dyn Sink>, std::io::Result<()>)>,
    /// Told when the output thread is done (for a deadline on a stuck writer).
    output_done: Receiver<()>,
    pub budget: Arc<OutputBudget>,
}

/// Starts shard and output threads; the caller drives `capture`.
pub fn start(cfg: PipelineConfig, output: Box<dyn Sink>) -> Running {
    let workers = cfg.workers.max(1);
    // Unbounded as a channel, bounded by the budget: a shard never waits
    // for the output, and what is queued is capped by count.
    let (out_tx, out_rx) = unbounded::<OutMsg>();
    let budget = Arc::new(OutputBudget {
        max_records: cfg.output_queue_records,
        max_alerts: cfg.output_queue_alerts,
        lossy: !cfg.lossless,
        ..OutputBudget::default()
    });
    let (pool_tx, pool_rx) = bounded::<Batch>(workers * cfg.channel_batches + workers);
    let mut senders = Vec::new();
    let mut shards = Vec::new();
    for i in 0..workers {
        let (tx, rx) = bounded::<ShardMsg>(cfg.channel_batches.max(1));
        senders.push(tx);
        let out = out_tx.clone();
        let pool = pool_tx.clone();
        let stage = Stage::new(&cfg.engine, workers);
        let b = budget.clone();
        shards.push(
            std::thread::Builder::new()
                .name(format!("mxwatch-shard-{i}"))
                .spawn(move || shard_loop(i, stage, rx, out, pool, b))
                .expect("spawn shard thread"),
        );
    }
    let output_failed = Arc::new(AtomicBool::new(false));
    let failed = output_failed.clone();
    let merger = Merger::new(&cfg.engine);
    let (done_tx, output_done) = bounded::<()>(1);
    let b = budget.clone();
    let output = std::thread::Builder::new()
        .name("mxwatch-output".into())
        .spawn(move || {
            let r = output_loop(output, merger, out_rx, workers, failed, b);
            let _ = done_tx.send(());
            r
        })
        .expect("spawn output thread");
    let sharder = Sharder {
        senders,
        batches: (0..workers)
            .map(|_| Batch::with_capacity(cfg.batch_events))
            .collect(),
        pool: pool_rx,
        batch_events: cfg.batch_events.max(1),
        lossless: cfg.lossless,
        dropped_batches: 0,
        dropped_events: 0,
        drop_log: DropLog::default(),
    };
    let capture = CaptureSide {
        front: Front::new(sharder, cfg.engine.classify.bins, cfg.engine.decode.clone()),
        out_tx,
        output_failed,
    };
    Running {
        capture,
        shards,
        output,
        output_done,
        budget,
    }
}

impl Running {
    /// Flushes every bin and alert, then writes the final capture_stats
    /// lines (`snaps` of the capture side at its end) once the shards are
    /// done; returns the sink and any write error.
    pub fn finish(
        mut self,
        final_health: impl FnOnce(&mut CaptureSide) -> Vec<CaptureSnapshot>,
    ) -> (Box<dyn Sink>, std::io::Result<()>) {
        self.capture.front.flush();
        self.capture.front.back.broadcast(|| ShardMsg::Finish);
        for s in self.shards.drain(..) {
            let _ = s.join();
        }
        let snaps = final_health(&mut self.capture);
        self.capture.health(snaps);
        drop(self.capture);
        self.output.join().expect("output thread")
    }

    /// [`Self::finish`] with a deadline for the output: a writer stuck for
    /// longer (a stalled pipe, a hung NFS mount) is abandoned with an error,
    /// so that SIGTERM ends the process in time. Shards never wait for the
    /// output, so only the writer can be late.
    pub fn finish_within(
        mut self,
        deadline: Duration,
        final_health: impl FnOnce(&mut CaptureSide) -> Vec<CaptureSnapshot>,
    ) -> std::io::Result<()> {
        let t0 = std::time::Instant::now();
        self.capture.front.back.broadcast(|| ShardMsg::Finish);
        for s in self.shards.drain(..) {
            let _ = s.join();
        }
        let snaps = final_health(&mut self.capture);
        self.capture.health(snaps);
        drop(self.capture);
        let left = deadline.saturating_sub(t0.elapsed());
        match self.output_done.recv_timeout(left) {
            Ok(()) | Err(crossbeam_channel::RecvTimeoutError::Disconnected) => {
                self.output.join().expect("output thread").1
            }
            Err(crossbeam_channel::RecvTimeoutError::Timeout) => Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!(
                    "the output did not take the last lines within {:.1} s of the stop: giving up on them",
                    deadline.as_secs_f64()
                ),
            )),
        }
    }
}

fn shard_loop(
    id: usize,
    mut stage: Stage,
    rx: Receiver<ShardMsg>,
    out: Sender<OutMsg>,
    pool: Sender<Batch>,
    budget: Arc<OutputBudget>,
) {
    let send = |mut closed: Vec<Closed>| {
        let charged = budget.charge(&mut closed);
        let _ = out.send(OutMsg::Closed {
            shard: id,
            closed,
            charged,
        });
    };
    for msg in rx {
        match msg {
            ShardMsg::Batch(mut b) => {
                stage.on_batch(&b);
                b.clear();
                let _ = pool.try_send(b);
            }
            ShardMsg::Tick(t) => {
                stage.tick(t);
                send(stage.take());
            }
            ShardMsg::Finish => {
                stage.finish();
                send(stage.take());
                break;
            }
        }
    }
    let _ = out.send(OutMsg::Done(ClassifierHealth {
        shards: stage.stats(),
        clients_tracked: stage.clients(),
        ..ClassifierHealth::default()
    }));
}

fn output_loop(
    mut output: Box<dyn Sink>,
    mut merger: Merger,
    rx: Receiver<OutMsg>,
    workers: usize,
    failed: Arc<AtomicBool>,
    budget: Arc<OutputBudget>,
) -> (Box<dyn Sink>, std::io::Result<()>) {
    let mut result = Ok(());
    // Each shard's answers to ticks, oldest first; a tick is written once
    // every shard has answered it.
    let mut pending: Vec<std::collections::VecDeque<Answer>> = vec![Default::default(); workers];
    let mut health = ClassifierHealth::default();
    let mut done = 0;
    let record = |r: std::io::Result<()>, result: &mut std::io::Result<()>| {
        if let Err(e) = r {
            failed.store(true, Ordering::Relaxed);
            if result.is_ok() {
                *result = Err(e);
            }
        }
    };
    for msg in rx {
        match msg {
            OutMsg::Closed {
                shard,
                closed,
                charged,
            } => {
                pending[shard].push_back((closed, charged));
                while pending.iter().all(|p| !p.is_empty()) {
                    let mut tick: Vec<Closed> = Vec::new();
                    let mut release = Vec::new();
                    for (c, ch) in pending.iter_mut().filter_map(|p| p.pop_front()) {
                        tick.extend(c);
                        release.push(ch);
                    }
                    if result.is_ok() {
                        let r = merger
                            .merge(tick)
                            .iter()
                            .try_for_each(|c| output.bin_lines(&c.bin, &c.alerts));
                        record(r, &mut result);
                    }
                    release.into_iter().for_each(|ch| budget.release(ch));
                }
            }
            OutMsg::Done(h) => {
                health.add(&h);
                done += 1;
                if done == workers
                    && result.is_ok()
                    && let Some(c) = merger.finish()
                {
                    let r = output.bin_lines(&c.bin, &c.alerts);
                    record(r, &mut result);
                }
            }
            OutMsg::Reopen(w) => {
                let r = output.reopen(w);
                record(r, &mut result);
            }
            OutMsg::Health(snaps) => {
                (health.output_dropped_records, health.output_dropped_alerts) = budget.dropped();
                if result.is_ok() {
                    let r = snaps
                        .iter()
                        .try_for_each(|s| output.capture_stats(s, &health))
                        .and_then(|_| output.flush());
                    record(r, &mut result);
                }
            }
        }
    }
    // Flushes, and lets network outputs drain (bounded by their deadline).
    let r = output.close();
    if result.is_ok() {
        record(r, &mut result);
    }
    (output, result)
}
