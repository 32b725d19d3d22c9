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
    /// Run the detector (`--no-detect`: counters only, and no per-client
    /// detection work at each bin close).
    pub detection: bool,
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
    /// Several fronts (live capture threads) feed this stage: see [`LaneGate`].
    gate: Option<LaneGate>,
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

/// Events a [`LaneGate`] holds per stage at most (about 35 MB): beyond, it
/// stops waiting for the slowest front (see [`LaneGate`]). Normal lag
/// between fronts is a quiet front's clock lag (`CLOCK_LAG_MICROS`, 0.5 s)
/// plus a poll: this covers it beyond 400,000 events/s per stage.
pub const HELD_MAX_EVENTS: usize = 1 << 18;

/// Several fronts feeding one stage (`live --threads N`: N capture threads
/// of an AF_PACKET fanout group, each with its own decoder and bin clock).
///
/// The classifier closes its open bin on the first event past it. With one
/// front that is right: packets come in time order. With several, the
/// kernel's flow hash gives each front a share of the packets, and one front
/// may enter bin t+1 while another still has packets of bin t on their way;
/// closing bin t then would count the rest of bin t in bin t+1 (as "out of
/// order"). So the gate keeps the classifier on the bin that every front has
/// reached: a front's ticks say which bin its clock is in (it announces its
/// first bin too, [`Back::start`]); events at or past the bin after that are
/// held, in arrival order, and released bin by bin once every front has
/// passed. Every event lands in the bin of its own packet time, as with one
/// front, and the bin clock never goes back (the lowest of non-decreasing
/// clocks). A front that is quiet still ticks with the wall clock (less
/// `CLOCK_LAG_MICROS`), so bins close at most that much later than with one.
///
/// Bounded: past [`HELD_MAX_EVENTS`] held events the gate stops waiting and
/// closes up to the newest held event's bin; the slow front's late events
/// then count in the open bin and in `dns.out_of_order_events`, as a late
/// packet does with one front.
struct LaneGate {
    bins: Bins,
    /// The bin each front's clock is in; None until it is heard from.
    at: Vec<Option<Micros>>,
    /// Every front has reached this bin: the classifier's open bin.
    released: Option<Micros>,
    /// Events at or past `released + bin`, in arrival order.
    held: Batch,
    /// Buffers reused for splitting batches.
    spare: Batch,
    spare2: Batch,
    /// [`HELD_MAX_EVENTS`] (smaller in tests).
    max_held: usize,
}

fn event_ts(e: &Event) -> Micros {
    match e {
        Event::Dns(d) => d.ts,
        Event::Smtp(s) => s.ts_micros,
    }
}

/// Copies one event of `from` (with its DNS bytes) into `to`.
fn copy_event(to: &mut Batch, from: &Batch, e: &Event) {
    match e {
        Event::Dns(d) => {
            let (start, len) = to.push_dns_bytes(from.dns_bytes(d));
            to.events.push(Event::Dns(RawDns { start, len, ..*d }));
        }
        Event::Smtp(s) => to.events.push(Event::Smtp(s.clone())),
    }
}

impl LaneGate {
    fn new(lanes: usize, bins: Bins) -> Self {
        LaneGate {
            bins,
            at: vec![None; lanes],
            released: None,
            held: Batch::default(),
            spare: Batch::default(),
            spare2: Batch::default(),
            max_held: HELD_MAX_EVENTS,
        }
    }

    /// Events before this time go to the classifier now.
    fn limit(&self) -> Option<Micros> {
        self.released.map(|r| r + self.bins.micros)
    }

    /// Splits `batch`: what may go now into the returned batch (empty when
    /// nothing may), the rest onto `held`.
    fn split(&mut self, batch: &Batch) -> Batch {
        let limit = self.limit();
        let mut now = std::mem::take(&mut self.spare);
        now.clear();
        for e in &batch.events {
            if limit.is_some_and(|l| event_ts(e) < l) {
                copy_event(&mut now, batch, e);
            } else {
                copy_event(&mut self.held, batch, e);
            }
        }
        now
    }

    /// Takes the held events before `limit` (in arrival order) out of `held`.
    fn take_before(&mut self, limit: Micros) -> Option<Batch> {
        if self.held.events.iter().all(|e| event_ts(e) >= limit) {
            return None;
        }
        let mut go = std::mem::take(&mut self.spare);
        go.clear();
        let mut keep = std::mem::take(&mut self.spare2);
        keep.clear();
        for e in &self.held.events {
            if event_ts(e) < limit {
                copy_event(&mut go, &self.held, e);
            } else {
                copy_event(&mut keep, &self.held, e);
            }
        }
        self.spare2 = std::mem::replace(&mut self.held, keep);
        Some(go)
    }

    /// The bin of the earliest held event.
    fn earliest_bin(&self) -> Option<Micros> {
        self.held
            .events
            .iter()
            .map(event_ts)
            .min()
            .map(|t| self.bins.start_of(t))
    }
}

impl Stage {
    /// A stage for one shard: `shards` divides the client and pending caps.
    pub fn new(cfg: &EngineConfig, shards: usize) -> Self {
        let shards = shards.max(1);
        let mut detector = Detector::new(cfg.detect.clone(), cfg.overrides.clone());
        if !cfg.detection {
            detector.turn_off();
        }
        let mut classify = cfg.classify.clone();
        classify.max_clients = (classify.max_clients / shards).max(1);
        classify.max_pending = (classify.max_pending / shards).max(2);
        classify.idle_bins_closed = detector.useful_empty_bins();
        let bins = classify.bins;
        Stage {
            classifier: Classifier::new(classify),
            detector,
            closed: Vec::new(),
            gate: None,
        }
        .lanes(1, bins)
    }

    /// Fed by `lanes` fronts, each ticking with [`Self::lane_tick`] (more
    /// than one: a [`LaneGate`]).
    pub fn with_lanes(self, lanes: usize, cfg: &EngineConfig) -> Self {
        self.lanes(lanes, cfg.classify.bins)
    }

    fn lanes(mut self, lanes: usize, bins: Bins) -> Self {
        self.gate = (lanes > 1).then(|| LaneGate::new(lanes, bins));
        self
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
        let Some(g) = &mut self.gate else {
            let (c, mut d) = self.down();
            c.on_batch(batch, &mut d);
            return;
        };
        if let Some(l) = g.limit()
            && batch.events.iter().all(|e| event_ts(e) < l)
        {
            let (c, mut d) = self.down();
            c.on_batch(batch, &mut d);
            return;
        }
        let now = g.split(batch);
        let over = g.held.len() > g.max_held;
        let (c, mut d) = self.down();
        c.on_batch(&now, &mut d);
        if let Some(g) = &mut self.gate {
            g.spare = now;
        }
        if over {
            // A front lags far behind: stop waiting for it.
            if let Some(newest) = self.gate.as_ref().and_then(|g| {
                g.held
                    .events
                    .iter()
                    .map(event_ts)
                    .max()
                    .map(|t| g.bins.start_of(t))
            }) {
                self.advance(newest);
            }
        }
    }

    pub fn tick(&mut self, bin: Micros) {
        let (c, mut d) = self.down();
        c.tick(bin, &mut d);
    }

    /// Front `lane`'s clock entered the bin starting at `bin` (with one
    /// front: [`Self::tick`]).
    pub fn lane_tick(&mut self, lane: usize, bin: Micros) {
        let Some(g) = &mut self.gate else {
            self.tick(bin);
            return;
        };
        let Some(at) = g.at.get_mut(lane) else {
            return;
        };
        *at = Some(at.map_or(bin, |a| a.max(bin)));
        if g.at.iter().any(Option::is_none) {
            return;
        }
        let low = g.at.iter().flatten().copied().min().expect("lanes");
        if g.released.is_none_or(|r| low > r) {
            self.advance(low);
        }
    }

    /// Closes every bin before `to` (every front has passed them), releasing
    /// the held events bin by bin, then those of the bin `to` opens.
    fn advance(&mut self, to: Micros) {
        let Stage {
            classifier,
            detector,
            closed,
            gate: Some(g),
        } = self
        else {
            return;
        };
        let mut d = Detect { detector, closed };
        let micros = g.bins.micros;
        while let Some(b) = g.earliest_bin().filter(|&b| b < to) {
            classifier.tick(b, &mut d);
            if let Some(go) = g.take_before(b + micros) {
                classifier.on_batch(&go, &mut d);
                g.spare = go;
            }
        }
        if g.released.is_none_or(|r| to > r) {
            classifier.tick(to, &mut d);
            g.released = Some(to);
        }
        let limit = g.released.expect("set") + micros;
        if let Some(go) = g.take_before(limit) {
            classifier.on_batch(&go, &mut d);
            g.spare = go;
        }
    }

    /// End of input: the open bin closes and every incident ends.
    pub fn finish(&mut self) {
        // What the gate holds first, bin by bin (each `advance` releases at
        // least the earliest held bin).
        while let Some(b) = self.gate.as_ref().and_then(LaneGate::earliest_bin) {
            self.advance(b);
        }
        let (c, mut d) = self.down();
        if let Some(end) = c.finish(&mut d) {
            let alerts = self.detector.finish(end);
            if let Some(last) = self.closed.last_mut() {
                last.alerts.extend(alerts);
            }
        }
    }

    /// Start of the open bin: every bin before it is closed (and in
    /// [`Self::take`] or taken before).
    pub fn open_bin(&self) -> Option<Micros> {
        self.classifier.open_bin()
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
    /// The first packet time (or clock) is in the bin starting at `bin`: a
    /// front among several says where its clock starts ([`LaneGate`]).
    fn start(&mut self, _bin: Micros) {}
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
        if self.first_ts.is_none() {
            self.first_ts = Some(ts);
            self.back.start(self.bins.start_of(ts));
        }
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const S: Micros = 1_000_000;
    const T0: Micros = 1_700_000_000 * S;

    fn cfg() -> EngineConfig {
        EngineConfig {
            classify: ClassifyConfig {
                bins: Bins::new(S),
                max_clients: 1000,
                max_pending: 1000,
                local_domains: Vec::new(),
                idle_bins_closed: 0,
                keep_sketches: false,
            },
            detect: DetectorConfig::default(),
            detection: true,
            overrides: Vec::new(),
            decode: DecodeLimits::default(),
        }
    }

    /// A batch of A queries of client 10.0.0.`c` at the given offsets from T0.
    fn queries(c: u8, at: &[Micros]) -> Batch {
        let mut msg = vec![0, 1, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend_from_slice(b"\x01a\x04test\x00\x00\x01\x00\x01");
        let mut b = Batch::default();
        for &t in at {
            push_dns(
                &mut b,
                &DnsSighting {
                    ts: T0 + t,
                    client: Ipv4Addr::new(10, 0, 0, c).into(),
                    server: Ipv4Addr::new(10, 0, 1, 53).into(),
                    client_port: 4000,
                    tcp: false,
                    query_only: true,
                    payload: &msg,
                },
            );
        }
        b
    }

    /// (bin offset from T0 in s, client last octet, queries) of closed bins.
    fn counts(stage: &mut Stage) -> Vec<(i64, u8, u64)> {
        let mut out = Vec::new();
        for c in stage.take() {
            for r in &c.bin.clients {
                let IpAddr::V4(a) = r.ip else { panic!() };
                out.push(((c.bin.start - T0) / S, a.octets()[3], r.bin.dns.queries));
            }
        }
        out
    }

    #[test]
    fn one_front_closes_a_bin_on_the_first_event_past_it() {
        let mut st = Stage::new(&cfg(), 1);
        st.on_batch(&queries(1, &[S / 2]));
        st.on_batch(&queries(1, &[S + 1]));
        assert_eq!(counts(&mut st), vec![(0, 1, 1)]);
    }

    #[test]
    fn a_front_ahead_waits_for_the_others() {
        let mut st = Stage::new(&cfg(), 1).with_lanes(2, &cfg());
        st.lane_tick(0, T0);
        // Lane 1 is not heard from yet: nothing may go, all is held.
        st.on_batch(&queries(1, &[S / 2]));
        assert_eq!(st.open_bin(), None);
        st.lane_tick(1, T0);
        assert_eq!(st.open_bin(), Some(T0));
        // Lane 1 is in bin 1 already; lane 0 still sends bin 0.
        st.lane_tick(1, T0 + S);
        st.on_batch(&queries(1, &[S + 10, 2 * S + 5]));
        st.on_batch(&queries(1, &[S - 10]));
        assert_eq!(counts(&mut st), vec![], "bin 0 waits for lane 0");
        st.lane_tick(0, T0 + S);
        assert_eq!(
            counts(&mut st),
            vec![(0, 1, 2)],
            "both of bin 0, none later"
        );
        assert_eq!(st.open_bin(), Some(T0 + S));
        st.lane_tick(0, T0 + 3 * S);
        st.lane_tick(1, T0 + 3 * S);
        assert_eq!(counts(&mut st), vec![(1, 1, 1), (2, 1, 1)]);
        st.on_batch(&queries(1, &[3 * S + 1]));
        st.finish();
        assert_eq!(counts(&mut st), vec![(3, 1, 1)]);
        assert_eq!(st.stats().out_of_order_events, 0);
    }

    #[test]
    fn held_events_close_in_their_own_bins_at_the_end() {
        let mut st = Stage::new(&cfg(), 1).with_lanes(3, &cfg());
        st.lane_tick(0, T0);
        st.lane_tick(1, T0);
        st.on_batch(&queries(2, &[5 * S, S, 3 * S, S + 1]));
        st.finish();
        assert_eq!(
            counts(&mut st),
            vec![(1, 2, 2), (2, 2, 0), (3, 2, 1), (4, 2, 0), (5, 2, 1)]
                .into_iter()
                .filter(|c| c.2 > 0)
                .collect::<Vec<_>>()
        );
    }

    #[test]
    fn a_late_event_counts_in_the_open_bin_as_with_one_front() {
        let mut st = Stage::new(&cfg(), 1).with_lanes(2, &cfg());
        st.lane_tick(0, T0 + S);
        st.lane_tick(1, T0 + S);
        st.on_batch(&queries(1, &[S / 2]));
        st.finish();
        assert_eq!(counts(&mut st), vec![(1, 1, 1)]);
        assert_eq!(st.stats().out_of_order_events, 1);
    }

    #[test]
    fn a_stuck_front_is_not_waited_for_beyond_the_cap() {
        let mut st = Stage::new(&cfg(), 1).with_lanes(2, &cfg());
        st.gate.as_mut().unwrap().max_held = 10;
        st.lane_tick(0, T0);
        st.lane_tick(1, T0);
        // Lane 1 moves on; lane 0 is stuck in bin 0.
        for k in 1..=4 {
            st.lane_tick(1, T0 + k * S);
            st.on_batch(&queries(3, &[k * S, k * S + 1, k * S + 2]));
        }
        // 12 held > 10: bins up to the newest held one's close.
        assert_eq!(st.open_bin(), Some(T0 + 4 * S));
        assert_eq!(counts(&mut st), vec![(1, 3, 3), (2, 3, 3), (3, 3, 3)]);
        // Lane 0 wakes up with a packet of bin 0: late, counted, not lost.
        st.on_batch(&queries(3, &[S / 2]));
        st.finish();
        assert_eq!(counts(&mut st), vec![(4, 3, 4)]);
        assert_eq!(st.stats().out_of_order_events, 1);
    }
}
