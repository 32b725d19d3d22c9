//! The detector group's side (`mxwatch detect --from`): the bin messages of
//! one partition, from every sensor, merged per client and bin, closed when
//! every sensor has passed the bin (or after the lateness), and run through
//! the same [`Detector`] a sensor runs.
//!
//! One [`Partition`] per Kafka partition: its clients are its own (messages
//! are keyed by client), so a partition that moves to another process takes
//! nothing with it but what replaying its retained messages rebuilds.
//! Invariants: bins close in time order; a closed bin carries every client
//! the partition knows (idle ones with an empty bin), as the classifier's do,
//! so the detector sees the same sequence of bins as in one `read`; what is
//! dropped (late messages, bad messages, evicted clients, bins closed before
//! every sensor was in) is counted in [`AssembleStats`].

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::wire::{BinMsg, Mark, Message};
use crate::FastMap;
use crate::classify::{ClientBin, ClientRecord, ClosedBin, IdleClient};
use crate::detect::{Alert, ClientOverride, Detector, DetectorConfig};

/// How bins of the same client and time from several sensors combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MergeMode {
    /// Sensors see disjoint traffic (several resolvers, several links): add.
    Sum,
    /// Sensors see the same traffic (a redundant pair): keep the record with
    /// the most events, unite the sketches.
    Dedup,
}

#[derive(Debug, Clone)]
pub struct AssembleConfig {
    pub detect: DetectorConfig,
    pub overrides: Vec<ClientOverride>,
    pub merge: MergeMode,
    /// How long a bin that one sensor has closed waits for the others.
    pub lateness: Duration,
    /// Clients known per partition (each gets a bin every bin); beyond it the
    /// least recently active one without an open incident is evicted.
    pub max_clients: usize,
    /// Bins open at once per partition; beyond it the oldest closes.
    pub max_open_bins: usize,
    /// Sensors remembered per partition (each one holds bins open until its mark).
    pub max_sensors: usize,
    /// Sensors expected from the start (`--sensors`): each holds every bin
    /// open until its mark, even before its first message.
    pub sensors: Vec<String>,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct AssembleStats {
    pub messages: u64,
    /// Bin messages that parse but hold what no sensor sends (counted, skipped).
    pub bad_messages: u64,
    pub bins_closed: u64,
    /// Bin messages for a bin already closed (a sensor later than the lateness).
    pub late_messages: u64,
    /// Bins closed on the lateness or the open-bin cap, before every sensor's mark.
    pub bins_closed_early: u64,
    pub clients_evicted: u64,
    /// Marks of sensors beyond `max_sensors` (ignored).
    pub sensors_refused: u64,
    /// Messages read again to rebuild state after the partition moved here.
    pub replayed_messages: u64,
    /// Alerts those replayed bins produced: written before, by the last owner.
    pub replayed_alerts: u64,
}

impl AssembleStats {
    pub fn add(&mut self, o: &AssembleStats) {
        self.messages += o.messages;
        self.bad_messages += o.bad_messages;
        self.bins_closed += o.bins_closed;
        self.late_messages += o.late_messages;
        self.bins_closed_early += o.bins_closed_early;
        self.clients_evicted += o.clients_evicted;
        self.sensors_refused += o.sensors_refused;
        self.replayed_messages += o.replayed_messages;
        self.replayed_alerts += o.replayed_alerts;
    }
}

/// A closed, merged bin: its active clients and its alerts (to write).
#[derive(Debug, Default)]
pub struct Out {
    pub bin: ClosedBin,
    pub alerts: Vec<Alert>,
}

struct Merged {
    bin: ClientBin,
    local: Option<String>,
    /// Events in the kept record (dedup mode).
    events: u64,
}

struct OpenBin {
    end: i64,
    clients: BTreeMap<IpAddr, Merged>,
    /// Smallest offset of a message in this bin (nothing before it is needed again).
    min_offset: i64,
    /// When a sensor first passed this bin while another had not.
    waiting_since: Option<Instant>,
}

struct Known {
    last_active: i64,
    sensors: Vec<String>,
    /// The local domain its sensors last gave (for its idle bins).
    local: Option<std::sync::Arc<str>>,
}

struct SensorMark {
    end: i64,
    last: bool,
    /// Named in `--sensors`: its last mark does not release it (it may
    /// publish again: a restart, the next file); only the lateness does.
    expected: bool,
}

pub struct Partition {
    cfg: AssembleConfig,
    detector: Detector,
    known: FastMap<IpAddr, Known>,
    open: BTreeMap<i64, OpenBin>,
    sensors: BTreeMap<String, SensorMark>,
    closed_until: i64,
    /// Messages before this offset were handled by a previous owner.
    replay_until: i64,
    next_offset: i64,
    pub stats: AssembleStats,
}

/// Sensors a client's alerts name at most.
const MAX_SENSORS_PER_CLIENT: usize = 16;

impl Partition {
    /// A partition whose messages before `replay_until` were already
    /// handled (alerts written) by another process.
    pub fn new(cfg: AssembleConfig, replay_until: i64) -> Partition {
        let sensors = cfg
            .sensors
            .iter()
            .map(|n| {
                (
                    n.clone(),
                    SensorMark {
                        end: i64::MIN,
                        last: false,
                        expected: true,
                    },
                )
            })
            .collect();
        Partition {
            detector: Detector::new(cfg.detect.clone(), cfg.overrides.clone()),
            cfg,
            known: FastMap::default(),
            open: BTreeMap::new(),
            sensors,
            closed_until: i64::MIN,
            replay_until,
            next_offset: 0,
            stats: AssembleStats::default(),
        }
    }

    /// The offset of the next message in sequence (None before the first).
    pub fn next_offset(&self) -> Option<i64> {
        (self.stats.messages > 0 || self.next_offset > 0).then_some(self.next_offset)
    }

    /// A message at `offset` that is not for the detector (unreadable, counted by the caller).
    pub fn skip(&mut self, offset: i64) {
        self.next_offset = self.next_offset.max(offset + 1);
    }

    /// Replaying what a previous owner already handled.
    pub fn replaying(&self) -> bool {
        self.next_offset < self.replay_until
    }

    /// The offset to commit: every message before it is in a closed bin.
    pub fn committable(&self) -> i64 {
        self.open
            .values()
            .map(|b| b.min_offset)
            .min()
            .unwrap_or(self.next_offset)
            .min(self.next_offset)
    }

    /// One message at `offset`; returns the bins it closed.
    pub fn message(&mut self, offset: i64, m: Message, now: Instant) -> Vec<Out> {
        self.stats.messages += 1;
        let replay = offset < self.replay_until;
        if replay {
            self.stats.replayed_messages += 1;
        }
        self.next_offset = self.next_offset.max(offset + 1);
        match m {
            Message::Bin(b) => self.bin(offset, *b),
            Message::Mark(k) => self.mark(offset, k),
        }
        let out = self.close_ready(now);
        self.account(out, replay)
    }

    /// Time passes: bins that waited longer than the lateness close.
    pub fn tick(&mut self, now: Instant) -> Vec<Out> {
        let out = self.close_ready(now);
        self.account(out, false)
    }

    /// End of the run: every open bin closes and every incident ends.
    pub fn finish(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        while let Some((&start, _)) = self.open.iter().next() {
            out.push(self.close(start));
        }
        if self.closed_until > i64::MIN {
            let alerts = self.detector.finish(self.closed_until);
            let alerts = self.named(alerts);
            match out.last_mut() {
                Some(o) => o.alerts.extend(alerts),
                None if !alerts.is_empty() => out.push(Out {
                    bin: ClosedBin {
                        start: self.closed_until,
                        end: self.closed_until,
                        ..ClosedBin::default()
                    },
                    alerts,
                }),
                None => {}
            }
        }
        out
    }

    fn account(&mut self, mut out: Vec<Out>, replay: bool) -> Vec<Out> {
        if replay {
            for o in &mut out {
                self.stats.replayed_alerts += o.alerts.len() as u64;
                o.alerts.clear();
            }
        }
        out
    }

    fn sensor(&mut self, name: &str, at: i64) -> bool {
        if let Some(s) = self.sensors.get_mut(name) {
            s.last = false;
            return true;
        }
        if self.sensors.len() >= self.cfg.max_sensors {
            self.stats.sensors_refused += 1;
            return false;
        }
        self.sensors.insert(
            name.to_owned(),
            SensorMark {
                end: at,
                last: false,
                expected: false,
            },
        );
        true
    }

    fn bin(&mut self, offset: i64, m: BinMsg) {
        if m.start < self.closed_until {
            self.stats.late_messages += 1;
            return;
        }
        if !self.sensor(&m.sensor, m.start) {
            return;
        }
        let Ok(bin) = m.to_bin() else {
            self.stats.bad_messages += 1;
            return;
        };
        self.know(m.client, m.start, &m.sensor);
        if let (Some(l), Some(k)) = (&m.local_domain, self.known.get_mut(&m.client)) {
            k.local = Some(l.as_str().into());
        }
        let mode = self.cfg.merge;
        let open = self.open_bin(m.start, m.end, offset);
        let events = bin.dns.queries + bin.smtp.connections + bin.smtp.outbound;
        match open.clients.get_mut(&m.client) {
            None => {
                open.clients.insert(
                    m.client,
                    Merged {
                        bin,
                        local: m.local_domain,
                        events,
                    },
                );
            }
            Some(have) => {
                match mode {
                    MergeMode::Sum => have.bin.merge(&bin),
                    MergeMode::Dedup if events > have.events => {
                        let mut keep = bin;
                        for w in crate::classify::Sketch::ALL {
                            if let Some(words) = have.bin.sketch(w).words() {
                                keep.sketch_mut(w).union_words(words);
                            }
                        }
                        have.bin = keep;
                        have.events = events;
                    }
                    MergeMode::Dedup => {
                        for w in crate::classify::Sketch::ALL {
                            if let Some(words) = bin.sketch(w).words() {
                                have.bin.sketch_mut(w).union_words(words);
                            }
                        }
                    }
                }
                if have.local.is_none() {
                    have.local = m.local_domain;
                }
            }
        }
    }

    fn mark(&mut self, offset: i64, k: Mark) {
        if !self.sensor(&k.sensor, k.start) {
            return;
        }
        if k.end > k.start && k.start >= self.closed_until {
            // An empty bin still closes (its idle clients learn the quiet).
            self.open_bin(k.start, k.end, offset);
        }
        let s = self.sensors.get_mut(&k.sensor).expect("sensor");
        s.end = s.end.max(k.end);
        s.last = k.last;
    }

    fn open_bin(&mut self, start: i64, end: i64, offset: i64) -> &mut OpenBin {
        let b = self.open.entry(start).or_insert_with(|| OpenBin {
            end,
            clients: BTreeMap::new(),
            min_offset: offset,
            waiting_since: None,
        });
        b.min_offset = b.min_offset.min(offset);
        b
    }

    fn know(&mut self, ip: IpAddr, start: i64, sensor: &str) {
        if !self.known.contains_key(&ip) && self.known.len() >= self.cfg.max_clients {
            self.evict();
        }
        let k = self.known.entry(ip).or_insert_with(|| Known {
            last_active: start,
            sensors: Vec::new(),
            local: None,
        });
        k.last_active = k.last_active.max(start);
        if !k.sensors.iter().any(|s| s == sensor) && k.sensors.len() < MAX_SENSORS_PER_CLIENT {
            k.sensors.push(sensor.to_owned());
            k.sensors.sort();
        }
    }

    /// Evicts the least recently active client without an open incident
    /// (lowest address on ties); one in sixteen of the table at once, so that
    /// a flood of new clients costs one scan per sixteenth.
    fn evict(&mut self) {
        let mut cands: Vec<(i64, IpAddr)> = self
            .known
            .iter()
            .filter(|(ip, _)| !self.detector.is_alerting(ip) && !self.detector.is_configured(ip))
            .map(|(ip, k)| (k.last_active, *ip))
            .collect();
        let n = (self.cfg.max_clients / 16).max(1).min(cands.len());
        if n == 0 {
            return;
        }
        cands.select_nth_unstable(n - 1);
        for (_, ip) in &cands[..n] {
            self.known.remove(ip);
            self.detector.forget(ip);
            // Its records in the open bins go too: they hold known clients only.
            for b in self.open.values_mut() {
                b.clients.remove(ip);
            }
            self.stats.clients_evicted += 1;
        }
    }

    /// The mark every sensor has passed (sensors whose input ended hold
    /// nothing back, unless named in `--sensors`).
    fn watermark(&self) -> i64 {
        self.sensors
            .values()
            .filter(|s| !s.last || s.expected)
            .map(|s| s.end)
            .min()
            .unwrap_or(i64::MAX)
    }

    fn close_ready(&mut self, now: Instant) -> Vec<Out> {
        let mut out = Vec::new();
        let furthest = self
            .sensors
            .values()
            .map(|s| s.end)
            .max()
            .unwrap_or(i64::MIN);
        loop {
            let wm = self.watermark();
            let over_cap = self.open.len() > self.cfg.max_open_bins;
            let Some((&start, b)) = self.open.iter_mut().next() else {
                break;
            };
            let ready = b.end <= wm;
            let late = if b.end <= furthest {
                let since = *b.waiting_since.get_or_insert(now);
                now.duration_since(since) >= self.cfg.lateness
            } else {
                false
            };
            if !(ready || over_cap || late) {
                break;
            }
            if !ready {
                self.stats.bins_closed_early += 1;
            }
            out.push(self.close(start));
        }
        out
    }

    fn close(&mut self, start: i64) -> Out {
        let b = self.open.remove(&start).expect("open bin");
        self.stats.bins_closed += 1;
        self.closed_until = self.closed_until.max(b.end);
        let mut clients = Vec::with_capacity(b.clients.len());
        let mut idle = Vec::new();
        for (ip, mut m) in b.clients {
            m.bin.finalize();
            m.bin.release_sketches();
            if m.bin.is_empty() {
                continue;
            }
            clients.push(ClientRecord {
                ip,
                bin: Box::new(m.bin),
                local_domain: m.local.map(Into::into),
            });
        }
        for (ip, k) in &self.known {
            if clients.binary_search_by_key(ip, |c| c.ip).is_err() {
                idle.push(IdleClient {
                    ip: *ip,
                    local_domain: k.local.clone(),
                });
            }
        }
        idle.sort_by_key(|c| c.ip);
        let bin = ClosedBin {
            start,
            end: b.end,
            clients,
            idle,
        };
        let alerts = self.detector.on_bin(&bin);
        let alerts = self.named(alerts);
        Out { bin, alerts }
    }

    fn named(&self, mut alerts: Vec<Alert>) -> Vec<Alert> {
        for a in &mut alerts {
            if let Some(k) = self.known.get(&a.ip) {
                a.sensors = k.sensors.clone();
            }
        }
        alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::ClientBin;

    const BIN: i64 = 5_000_000;

    fn cfg() -> AssembleConfig {
        AssembleConfig {
            detect: DetectorConfig {
                warmup_bins: 2,
                confirm_bins: 2,
                floor_qps: 1.0,
                ..DetectorConfig::default()
            },
            overrides: Vec::new(),
            merge: MergeMode::Sum,
            lateness: Duration::from_secs(5),
            max_clients: 100,
            max_open_bins: 8,
            max_sensors: 4,
            sensors: Vec::new(),
        }
    }

    fn bin(sensor: &str, i: i64, ip: [u8; 4], mx: u64) -> Message {
        let mut b = ClientBin::default();
        b.dns.queries = mx + 1;
        b.dns.qtype[3] = mx;
        b.dns.qtype[0] = 1;
        b.dns.responses = mx + 1;
        b.dns.rcode[0] = mx + 1;
        Message::Bin(Box::new(BinMsg::of(
            sensor,
            i * BIN,
            (i + 1) * BIN,
            IpAddr::from(ip),
            None,
            &b,
        )))
    }

    fn mark(sensor: &str, i: i64) -> Message {
        Message::Mark(Mark {
            v: super::super::wire::VERSION,
            sensor: sensor.into(),
            start: i * BIN,
            end: (i + 1) * BIN,
            last: false,
        })
    }

    #[test]
    fn a_bin_closes_when_every_sensor_has_passed_it_and_sums_them() {
        let mut p = Partition::new(cfg(), 0);
        let now = Instant::now();
        let mut off = 0;
        let mut feed = |p: &mut Partition, m| {
            off += 1;
            p.message(off, m, now)
        };
        assert!(feed(&mut p, bin("a", 0, [10, 0, 0, 1], 3)).is_empty());
        // Only a is known yet: its mark closes bin 0.
        assert_eq!(feed(&mut p, mark("a", 0)).len(), 1);
        let _ = feed(&mut p, bin("b", 1, [10, 0, 0, 1], 4));
        let _ = feed(&mut p, bin("a", 1, [10, 0, 0, 1], 5));
        assert!(
            feed(&mut p, mark("a", 1)).is_empty(),
            "b has not passed bin 1"
        );
        let out = feed(&mut p, mark("b", 1));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].bin.start, BIN);
        assert_eq!(out[0].bin.clients[0].bin.dns.queries, 11);
        assert_eq!(p.committable(), off + 1);
    }

    #[test]
    fn a_silent_sensor_holds_a_bin_for_the_lateness_only_and_late_data_is_counted() {
        let mut p = Partition::new(cfg(), 0);
        let t0 = Instant::now();
        p.message(0, mark("a", 0), t0);
        p.message(1, mark("b", 0), t0);
        p.message(2, bin("a", 1, [10, 0, 0, 1], 3), t0);
        assert!(p.message(3, mark("a", 1), t0).is_empty());
        assert_eq!(p.committable(), 2);
        assert!(p.tick(t0 + Duration::from_secs(1)).is_empty());
        let out = p.tick(t0 + Duration::from_secs(6));
        assert_eq!(out.len(), 1);
        assert_eq!(p.stats.bins_closed_early, 1);
        p.message(4, bin("b", 1, [10, 0, 0, 1], 3), t0);
        assert_eq!(p.stats.late_messages, 1);
    }

    #[test]
    fn replayed_bins_rebuild_state_without_writing_their_alerts_again() {
        // A surge: the first owner wrote its start; the next owner replays
        // up to the committed offset silently and goes on.
        let run = |replay_until: i64| {
            let mut p = Partition::new(cfg(), replay_until);
            let now = Instant::now();
            let mut starts = Vec::new();
            let mut off = 0;
            for i in 0..30 {
                let mx = if (12..20).contains(&i) { 200 } else { 1 };
                for m in [bin("a", i, [10, 0, 0, 25], mx), mark("a", i)] {
                    for o in p.message(off, m, now) {
                        starts.extend(o.alerts.iter().map(|a| (a.rule.name, a.start, off)));
                    }
                    off += 1;
                }
            }
            for o in p.finish() {
                starts.extend(o.alerts.iter().map(|a| (a.rule.name, a.start, off)));
            }
            (starts, p.stats)
        };
        let (all, _) = run(0);
        assert!(all.iter().any(|a| a.0 == "spam_relay"), "{all:?}");
        let first_at = all[0].2;
        let (after, stats) = run(first_at + 1);
        assert_eq!(after, all[1..].to_vec());
        assert_eq!(stats.replayed_alerts, 1);
        assert!(after.iter().all(|a| a.2 > first_at));
    }

    #[test]
    fn the_client_table_is_bounded() {
        let mut c = cfg();
        c.max_clients = 32;
        let mut p = Partition::new(c, 0);
        let now = Instant::now();
        for i in 0..10_000u32 {
            let ip = (0x0a00_0000u32 + i).to_be_bytes();
            p.message(i64::from(i), bin("a", 0, ip, 1), now);
        }
        assert!(p.known.len() <= 32);
        assert!(p.stats.clients_evicted >= 10_000 - 32);
        let out = p.message(10_000, mark("a", 0), now);
        assert!(out[0].bin.clients.len() <= 32);
    }
}
