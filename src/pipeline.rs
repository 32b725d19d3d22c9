//! Threads and channels around the plain stages.
//!
//! ```text
//! capture thread: source -> Decoder -> Sharder --(bounded, batched)--> shard threads
//! shard thread:   Shard (classify + detect) --(reports per tick)--> output thread
//! output thread:  merge shards' reports per bin, in order -> Output (JSON lines)
//! ```
//!
//! The capture side sends a `Tick` to every shard whenever packet time enters
//! a new bin, so all shards close the same bins; the output thread waits for
//! every shard's answer to a tick before writing, and sorts, so a file gives
//! the same bytes whatever the number of shards. In lossless mode (files) a
//! full channel blocks the capture thread; otherwise (live) the batch is
//! dropped and counted, and the capture thread never waits.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, unbounded};
use serde::Serialize;

use crate::classify::{BinReport, ClassifyConfig, Shard, ShardStats};
use crate::decode::link::LinkType;
use crate::decode::{DecodeLimits, Decoder, DnsSighting, EventSink};
use crate::detect::Alert;
use crate::event::{Batch, Event, RawDns};
use crate::output::Output;
use crate::smtp::SmtpEvent;

#[derive(Debug, Clone)]
pub struct PipelineConfig {
    pub workers: usize,
    /// Events per batch handed to a shard (FACTS: one event per send doubles CPU).
    pub batch_events: usize,
    /// Batches queued per shard before the channel is full.
    pub channel_batches: usize,
    /// Files: block on a full channel. Live: drop the batch and count it.
    pub lossless: bool,
    pub classify: ClassifyConfig,
    pub decode: DecodeLimits,
}

enum ShardMsg {
    Batch(Batch),
    Tick(i64),
    Finish,
}

/// Writes a capture_stats line on the output thread, with the shards' numbers.
pub type HealthWriter = dyn Fn(&mut Output, &PipelineHealth) -> std::io::Result<()> + Send;

enum OutMsg {
    Reports {
        shard: usize,
        reports: Vec<BinReport>,
    },
    Done {
        stats: ShardStats,
        clients: usize,
    },
    /// Replace the output's writer (SIGHUP, log rotation): lines queued
    /// before go to the old writer, lines after to the new one.
    Reopen(Box<dyn std::io::Write + Send>),
    /// Health line from the capture side (periodic in live mode, final always).
    Health(Box<HealthWriter>),
}

/// What the shards reported, for capture_stats lines.
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct PipelineHealth {
    pub shards: ShardStats,
    pub clients_tracked: usize,
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
        let (start, len) = b.push_dns_bytes(d.payload);
        b.events.push(Event::Dns(RawDns {
            ts: d.ts,
            client: d.client,
            server: d.server,
            client_port: d.client_port,
            tcp: d.tcp,
            start,
            len,
        }));
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

/// The capture thread's side of a running pipeline.
pub struct CaptureSide {
    pub decoder: Decoder,
    pub sharder: Sharder,
    bin_micros: i64,
    next_tick: Option<i64>,
    pub last_ts: Option<i64>,
    pub first_ts: Option<i64>,
    out_tx: Sender<OutMsg>,
    output_failed: Arc<AtomicBool>,
}

impl CaptureSide {
    pub fn frame(&mut self, ts: i64, data: &[u8], wire_len: u32) {
        self.clock(ts);
        self.decoder.on_frame(ts, data, wire_len, &mut self.sharder);
    }

    /// Advances packet time (a frame, or a quiet wire's clock in live mode):
    /// entering a new bin ticks every shard.
    pub fn clock(&mut self, ts: i64) {
        self.first_ts.get_or_insert(ts);
        if self.last_ts.is_none_or(|l| ts > l) {
            self.last_ts = Some(ts);
        }
        let next = *self
            .next_tick
            .get_or_insert_with(|| (ts.div_euclid(self.bin_micros) + 1) * self.bin_micros);
        if ts >= next {
            let bin = ts.div_euclid(self.bin_micros) * self.bin_micros;
            self.sharder.broadcast(|| ShardMsg::Tick(bin));
            self.decoder.expire(ts);
            self.next_tick = Some(bin + self.bin_micros);
        }
    }

    pub fn set_link(&mut self, link: LinkType) {
        self.decoder.set_link(link);
    }

    /// True once the output can no longer be written (e.g. a closed pipe).
    pub fn output_failed(&self) -> bool {
        self.output_failed.load(Ordering::Relaxed)
    }

    /// Queues a health line; the writer runs on the output thread with the
    /// shards' latest numbers.
    /// Queues a writer swap (log rotation) in line order: nothing lost or
    /// written twice.
    pub fn reopen_output(&self, w: Box<dyn std::io::Write + Send>) {
        let _ = self.out_tx.send(OutMsg::Reopen(w));
    }

    pub fn health(
        &self,
        write: impl Fn(&mut Output, &PipelineHealth) -> std::io::Result<()> + Send + 'static,
    ) {
        let _ = self.out_tx.send(OutMsg::Health(Box::new(write)));
    }
}

pub struct Running {
    pub capture: CaptureSide,
    shards: Vec<JoinHandle<()>>,
    output: JoinHandle<(Output, std::io::Result<()>)>,
}

/// Starts shard and output threads; the caller drives `capture`.
pub fn start(cfg: PipelineConfig, output: Output) -> Running {
    let workers = cfg.workers.max(1);
    let (out_tx, out_rx) = unbounded::<OutMsg>();
    let (pool_tx, pool_rx) = bounded::<Batch>(workers * cfg.channel_batches + workers);
    let mut senders = Vec::new();
    let mut shards = Vec::new();
    let mut classify = cfg.classify.clone();
    classify.max_clients = (classify.max_clients / workers).max(1);
    classify.max_pending = (classify.max_pending / workers).max(2);
    for i in 0..workers {
        let (tx, rx) = bounded::<ShardMsg>(cfg.channel_batches.max(1));
        senders.push(tx);
        let out = out_tx.clone();
        let pool = pool_tx.clone();
        let shard_cfg = classify.clone();
        shards.push(
            std::thread::Builder::new()
                .name(format!("mxwatch-shard-{i}"))
                .spawn(move || shard_loop(i, Shard::new(shard_cfg), rx, out, pool))
                .expect("spawn shard thread"),
        );
    }
    let output_failed = Arc::new(AtomicBool::new(false));
    let failed = output_failed.clone();
    let output = std::thread::Builder::new()
        .name("mxwatch-output".into())
        .spawn(move || output_loop(output, out_rx, workers, failed))
        .expect("spawn output thread");
    let capture = CaptureSide {
        decoder: Decoder::new(LinkType::Ethernet, cfg.decode.clone()),
        sharder: Sharder {
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
        },
        bin_micros: cfg.classify.bin_micros,
        next_tick: None,
        last_ts: None,
        first_ts: None,
        out_tx,
        output_failed,
    };
    Running {
        capture,
        shards,
        output,
    }
}

impl Running {
    /// Flushes every bin and alert, then runs `final_health` on the output
    /// thread after the shards are done; returns the output and any write error.
    pub fn finish(
        mut self,
        final_health: impl Fn(&mut Output, &PipelineHealth) -> std::io::Result<()> + Send + 'static,
    ) -> (Output, std::io::Result<()>) {
        self.capture.sharder.broadcast(|| ShardMsg::Finish);
        for s in self.shards.drain(..) {
            let _ = s.join();
        }
        self.capture.health(final_health);
        drop(self.capture);
        self.output.join().expect("output thread")
    }
}

fn shard_loop(
    id: usize,
    mut shard: Shard,
    rx: Receiver<ShardMsg>,
    out: Sender<OutMsg>,
    pool: Sender<Batch>,
) {
    let mut reports = Vec::new();
    for msg in rx {
        match msg {
            ShardMsg::Batch(mut b) => {
                shard.on_batch(&b, &mut reports);
                b.clear();
                let _ = pool.try_send(b);
            }
            ShardMsg::Tick(t) => {
                shard.tick(t, &mut reports);
                let _ = out.send(OutMsg::Reports {
                    shard: id,
                    reports: std::mem::take(&mut reports),
                });
            }
            ShardMsg::Finish => {
                shard.finish(&mut reports);
                let _ = out.send(OutMsg::Reports {
                    shard: id,
                    reports: std::mem::take(&mut reports),
                });
                break;
            }
        }
    }
    let _ = out.send(OutMsg::Done {
        stats: shard.stats(),
        clients: shard.clients(),
    });
}

fn output_loop(
    mut output: Output,
    rx: Receiver<OutMsg>,
    workers: usize,
    failed: Arc<AtomicBool>,
) -> (Output, std::io::Result<()>) {
    let mut result = Ok(());
    // Each shard's answers to ticks, oldest first; a tick is written once
    // every shard has answered it.
    let mut pending: Vec<std::collections::VecDeque<Vec<BinReport>>> =
        vec![Default::default(); workers];
    let mut health = PipelineHealth::default();
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
            OutMsg::Reports { shard, reports } => {
                pending[shard].push_back(reports);
                while pending.iter().all(|p| !p.is_empty()) {
                    let tick: Vec<Vec<BinReport>> =
                        pending.iter_mut().filter_map(|p| p.pop_front()).collect();
                    if result.is_ok() {
                        let r = write_tick(&mut output, tick);
                        record(r, &mut result);
                    }
                }
            }
            OutMsg::Done { stats, clients } => {
                health.shards.add(&stats);
                health.clients_tracked += clients;
            }
            OutMsg::Reopen(w) => {
                let r = output.reopen(w);
                record(r, &mut result);
            }
            OutMsg::Health(f) => {
                if result.is_ok() {
                    let r = f(&mut output, &health).and_then(|_| output.flush());
                    record(r, &mut result);
                }
            }
        }
    }
    if result.is_ok() {
        let r = output.flush();
        record(r, &mut result);
    }
    (output, result)
}

fn write_tick(output: &mut Output, tick: Vec<Vec<BinReport>>) -> std::io::Result<()> {
    let mut bins: std::collections::BTreeMap<i64, BinReport> = std::collections::BTreeMap::new();
    for r in tick.into_iter().flatten() {
        match bins.get_mut(&r.start) {
            Some(b) => {
                b.clients.extend(r.clients);
                b.alerts.extend(r.alerts);
            }
            None => {
                bins.insert(r.start, r);
            }
        }
    }
    for (_, mut b) in bins {
        b.alerts.sort_by(alert_order);
        output.write_bin(b.start, b.end, b.clients, &b.alerts)?;
    }
    Ok(())
}

fn alert_order(a: &Alert, b: &Alert) -> std::cmp::Ordering {
    (a.ts, a.ip, a.rule, a.phase).cmp(&(b.ts, b.ip, b.rule, b.phase))
}
