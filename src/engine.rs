//! The engine: every stage of mxwatch, single-threaded, on frames and ticks.
//!
//! ```text
//! frames, ticks -> Front: Decoder per source, bin clock -> events
//!               -> Stage: Classifier -> ClosedBin -> Detector -> Closed (bin + alerts)
//! ```
//!
//! No channels and no wall clock: time is packet time, and a quiet wire's
//! clock comes in as [`Front::clock`]. `pipeline` runs the same [`Front`]
//! (with a sharding back end) and the same [`Stage`] (one per shard thread),
//! and merges with the same [`merge`], so `read`, `live`, `report`, tests
//! and fuzzers run this code, threaded or not, with the same output.

use std::net::IpAddr;

use crate::classify::{Classifier, ClassifyConfig, ClosedBin, Downstream, ShardStats};
use crate::decode::link::LinkType;
use crate::decode::{DecodeLimits, DecodeStats, Decoder, DnsSighting, EventSink};
use crate::detect::flood::WarmupCap;
use crate::detect::{Alert, ClientOverride, Detector, DetectorConfig};
use crate::event::{Batch, Event, RawDns};
use crate::input::InputEvent;
use crate::smtp::SmtpEvent;
use crate::time::{Bins, Micros};

/// Everything the engine's stages need, validated (built by `config`).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub classify: ClassifyConfig,
    pub detect: DetectorConfig,
    pub overrides: Vec<ClientOverride>,
    pub decode: DecodeLimits,
}

/// One closed bin with the alerts its close produced.
#[derive(Debug, Clone, Default)]
pub struct Closed {
    pub bin: ClosedBin,
    pub alerts: Vec<Alert>,
}

/// Merges the closed bins of several shards (or of one), in bin order, with
/// every bin's alerts in line order: the output is the same whatever the sharding.
pub fn merge(parts: impl IntoIterator<Item = Closed>) -> Vec<Closed> {
    let mut bins: std::collections::BTreeMap<i64, Closed> = std::collections::BTreeMap::new();
    for c in parts {
        match bins.get_mut(&c.bin.start) {
            Some(b) => {
                b.bin.clients.extend(c.bin.clients);
                b.bin.idle.extend(c.bin.idle);
                b.alerts.extend(c.alerts);
            }
            None => {
                bins.insert(c.bin.start, c);
            }
        }
    }
    let mut out: Vec<Closed> = bins.into_values().collect();
    for c in &mut out {
        c.alerts.sort_by(Alert::order);
        c.bin.clients.sort_by_key(|r| r.ip);
        c.bin.idle.sort_by_key(|r| r.ip);
    }
    out
}

/// [`merge`], then the sensor-wide cap on alerts of warm-up clients
/// ([`crate::detect::flood`]): what the output thread (or the engine) writes.
pub struct Merger {
    cap: WarmupCap,
    last_end: Option<i64>,
}

impl Merger {
    pub fn new(cfg: &EngineConfig) -> Self {
        Merger {
            cap: WarmupCap::new(cfg.detect.max_warmup_alerts_per_bin),
            last_end: None,
        }
    }

    pub fn merge(&mut self, parts: impl IntoIterator<Item = Closed>) -> Vec<Closed> {
        let mut out = merge(parts);
        for c in &mut out {
            self.cap.apply(c.bin.start, c.bin.end, &mut c.alerts);
            self.last_end = Some(c.bin.end);
        }
        out
    }

    /// End of input: the aggregate alert, if open, ends (an empty bin with it).
    pub fn finish(&mut self) -> Option<Closed> {
        let end = self.last_end?;
        let a = self.cap.finish(end)?;
        Some(Closed {
            bin: ClosedBin {
                start: end,
                end,
                ..ClosedBin::default()
            },
            alerts: vec![a],
        })
    }
}

/// Classify, then detect, for the clients of one shard.
pub struct Stage {
    classifier: Classifier,
    detector: Detector,
    closed: Vec<Closed>,
}

/// The classifier's downstream: detection on each closed bin, as it closes.
struct Detect<'a> {
    detector: &'a mut Detector,
    closed: &'a mut Vec<Closed>,
}

impl Downstream for Detect<'_> {
    fn closed(&mut self, mut bin: ClosedBin) {
        let alerts = self.detector.on_bin(&bin);
        // Idle clients were there for the detector; output wants the active.
        bin.idle = Vec::new();
        self.closed.push(Closed { bin, alerts });
    }
    fn keep(&self, ip: &IpAddr) -> bool {
        self.detector.is_alerting(ip) || self.detector.is_configured(ip)
    }
    fn evicted(&mut self, ip: &IpAddr) {
        self.detector.forget(ip);
    }
}

impl Stage {
    /// A stage for one shard: `shards` divides the client and pending caps.
    pub fn new(cfg: &EngineConfig, shards: usize) -> Self {
        let shards = shards.max(1);
        let detector = Detector::new(cfg.detect.clone(), cfg.overrides.clone());
        let mut classify = cfg.classify.clone();
        classify.max_clients = (classify.max_clients / shards).max(1);
        classify.max_pending = (classify.max_pending / shards).max(2);
        classify.idle_bins_closed = detector.useful_empty_bins();
        Stage {
            classifier: Classifier::new(classify),
            detector,
            closed: Vec::new(),
        }
    }

    fn down(&mut self) -> (&mut Classifier, Detect<'_>) {
        (
            &mut self.classifier,
            Detect {
                detector: &mut self.detector,
                closed: &mut self.closed,
            },
        )
    }

    pub fn on_batch(&mut self, batch: &Batch) {
        let (c, mut d) = self.down();
        c.on_batch(batch, &mut d);
    }

    pub fn tick(&mut self, bin: Micros) {
        let (c, mut d) = self.down();
        c.tick(bin, &mut d);
    }

    /// End of input: the open bin closes and every incident ends.
    pub fn finish(&mut self) {
        let (c, mut d) = self.down();
        if let Some(end) = c.finish(&mut d) {
            let alerts = self.detector.finish(end);
            if let Some(last) = self.closed.last_mut() {
                last.alerts.extend(alerts);
            }
        }
    }

    /// The bins closed since the last call.
    pub fn take(&mut self) -> Vec<Closed> {
        std::mem::take(&mut self.closed)
    }

    pub fn stats(&self) -> ShardStats {
        self.classifier.stats()
    }

    pub fn clients(&self) -> usize {
        self.classifier.clients()
    }
}

/// Where the front's events go: straight into a [`Stage`] (the engine) or
/// into sharded batches (the pipeline).
pub trait Back: EventSink {
    /// Packet time entered the bin starting at `bin`.
    fn tick(&mut self, bin: Micros);
    /// A frame's events are all out.
    fn end_of_frame(&mut self) {}
    /// (batches, events) dropped so far on the way to the classifiers.
    fn dropped(&self) -> (u64, u64) {
        (0, 0)
    }
}

/// The capture side: one decoder per source (an interface keeps its own TCP
/// and SMTP flows), the bin clock, and a back end.
pub struct Front<B: Back> {
    decoders: Vec<Decoder>,
    limits: DecodeLimits,
    pub back: B,
    bins: Bins,
    next_tick: Option<Micros>,
    pub first_ts: Option<Micros>,
    pub last_ts: Option<Micros>,
    /// Classifier-channel drops charged to each source.
    drops: Vec<(u64, u64)>,
    last_source: usize,
    /// Packet time went back by more than a bin (unmerged overlapping files).
    went_back: bool,
}

impl<B: Back> Front<B> {
    pub fn new(back: B, bins: Bins, limits: DecodeLimits) -> Self {
        Front {
            decoders: Vec::new(),
            limits,
            back,
            bins,
            next_tick: None,
            first_ts: None,
            last_ts: None,
            drops: Vec::new(),
            last_source: 0,
            went_back: false,
        }
    }

    /// Packet time went back by more than a bin at some point.
    pub fn went_back(&self) -> bool {
        self.went_back
    }

    fn source(&mut self, i: usize) {
        while self.decoders.len() <= i {
            if self.decoders.len() == 1 {
                // Until now one source had every drop.
                self.drops[0] = self.back.dropped();
            }
            self.decoders
                .push(Decoder::new(LinkType::Ethernet, self.limits.clone()));
            self.drops.push((0, 0));
        }
    }

    /// One frame of source `source` (a file, an interface) with its link type.
    pub fn frame(&mut self, source: usize, link: LinkType, ts: Micros, data: &[u8], wire_len: u32) {
        if source >= self.decoders.len() {
            self.source(source);
        }
        self.last_source = source;
        let before = self.back.dropped();
        self.clock(ts);
        let d = &mut self.decoders[source];
        d.set_link(link);
        d.on_frame(ts, data, wire_len, &mut self.back);
        self.back.end_of_frame();
        self.charge(source, before);
    }

    /// An event of a non-frame input (dnstap, a log; see `input`): its time
    /// drives the bin clock as a frame's does, then it goes to the back end
    /// as the decoder's events do (a DNS message's head bytes are copied).
    /// Its drops are charged to source 0.
    pub fn event(&mut self, ev: &InputEvent) {
        if self.decoders.is_empty() {
            self.source(0);
        }
        let before = self.back.dropped();
        self.clock(ev.ts());
        match ev {
            InputEvent::Dns(d) => self.back.dns(&DnsSighting {
                ts: d.ts,
                client: d.client,
                server: d.server,
                client_port: d.client_port,
                tcp: d.tcp,
                query_only: d.query_only,
                payload: &d.message,
            }),
            InputEvent::Smtp(e) => self.back.smtp(e.clone()),
        }
        self.back.end_of_frame();
        self.charge(0, before);
    }

    /// Charges drops to a source; with one source its drops are the back end's.
    fn charge(&mut self, source: usize, before: (u64, u64)) {
        if self.decoders.len() <= 1 {
            return;
        }
        let after = self.back.dropped();
        if let Some(d) = self.drops.get_mut(source) {
            d.0 += after.0 - before.0;
            d.1 += after.1 - before.1;
        }
    }

    /// Advances packet time (a frame, or a quiet wire's clock in live mode):
    /// entering a new bin ticks the back end and expires idle flows.
    pub fn clock(&mut self, ts: Micros) {
        self.first_ts.get_or_insert(ts);
        match self.last_ts {
            Some(l) if ts < l.saturating_sub(self.bins.micros) => self.went_back = true,
            Some(l) if ts <= l => {}
            _ => self.last_ts = Some(ts),
        }
        let next = *self
            .next_tick
            .get_or_insert_with(|| self.bins.next_after(ts));
        if ts >= next {
            let before = self.back.dropped();
            let bin = self.bins.start_of(ts);
            self.back.tick(bin);
            for d in &mut self.decoders {
                d.expire(ts);
            }
            self.next_tick = Some(bin + self.bins.micros);
            self.charge(self.last_source, before);
        }
    }

    /// End of input: what the decoders still hold (datagrams waiting for
    /// fragments) is handed on.
    pub fn flush(&mut self) {
        for d in &mut self.decoders {
            d.flush(&mut self.back);
        }
        self.back.end_of_frame();
    }

    /// The decoder of a source (its counters for capture_stats).
    pub fn decoder(&mut self, source: usize) -> &Decoder {
        self.source(source);
        &self.decoders[source]
    }

    /// Decode counters summed over every source.
    pub fn decode_stats(&self) -> Vec<DecodeStats> {
        self.decoders.iter().map(Decoder::stats).collect()
    }

    /// (batches, events) dropped on the way to the classifiers, charged to `source`.
    pub fn drops_of(&self, source: usize) -> (u64, u64) {
        if self.decoders.len() <= 1 {
            return self.back.dropped();
        }
        self.drops.get(source).copied().unwrap_or_default()
    }
}

/// The engine's back end: events go into a batch that a [`Stage`] reads at
/// the end of every frame.
pub struct Direct {
    pub stage: Stage,
    batch: Batch,
}

impl EventSink for Direct {
    fn dns(&mut self, d: &DnsSighting<'_>) {
        push_dns(&mut self.batch, d);
    }
    fn smtp(&mut self, e: SmtpEvent) {
        self.batch.events.push(Event::Smtp(e));
    }
}

impl Back for Direct {
    fn tick(&mut self, bin: Micros) {
        self.end_of_frame();
        self.stage.tick(bin);
    }
    fn end_of_frame(&mut self) {
        if !self.batch.is_empty() {
            self.stage.on_batch(&self.batch);
            self.batch.clear();
        }
    }
}

/// Copies a DNS sighting into a batch (its head bytes into the arena).
pub fn push_dns(b: &mut Batch, d: &DnsSighting<'_>) {
    let (start, len) = b.push_dns_bytes(d.payload);
    b.events.push(Event::Dns(RawDns {
        ts: d.ts,
        client: d.client,
        server: d.server,
        client_port: d.client_port,
        tcp: d.tcp,
        query_only: d.query_only,
        start,
        len,
    }));
}

/// Every stage on one thread.
pub struct Engine {
    pub front: Front<Direct>,
    merger: Merger,
}

impl Engine {
    pub fn new(cfg: &EngineConfig) -> Self {
        let back = Direct {
            stage: Stage::new(cfg, 1),
            batch: Batch::with_capacity(64),
        };
        Engine {
            front: Front::new(back, cfg.classify.bins, cfg.decode.clone()),
            merger: Merger::new(cfg),
        }
    }

    pub fn frame(&mut self, source: usize, link: LinkType, ts: Micros, data: &[u8], wire_len: u32) {
        self.front.frame(source, link, ts, data, wire_len);
    }

    pub fn clock(&mut self, ts: Micros) {
        self.front.clock(ts);
    }

    /// Bins closed (with their alerts) since the last call, merged.
    pub fn take(&mut self) -> Vec<Closed> {
        self.merger.merge(self.front.back.stage.take())
    }

    /// End of input: flushes every bin and ends every incident.
    pub fn finish(&mut self) -> Vec<Closed> {
        self.front.flush();
        self.front.back.stage.finish();
        let mut out = self.take();
        out.extend(self.merger.finish());
        out
    }

    pub fn shard_stats(&self) -> ShardStats {
        self.front.back.stage.stats()
    }

    pub fn clients(&self) -> usize {
        self.front.back.stage.clients()
    }
}
