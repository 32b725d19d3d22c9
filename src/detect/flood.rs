//! `spoofed_source_flood`: a detector-level aggregate, not a [`super::Rule`].
//!
//! A client in warm-up has no baseline, so any burst is loud against the
//! prior: spoofed sources sending a few MX queries each would each start a
//! severity-80 `spam_relay`. [`WarmupCap`] runs on the merged alerts of a bin
//! (after `engine::merge`, so the cap is global and the output is the same
//! for any number of shards): at most `max_warmup_alerts_per_bin` incidents
//! of warm-up clients start per bin (the lowest addresses, in line order);
//! the others are suppressed, and so are their later lines (info, end), and
//! one `spoofed_source_flood` alert stands for them, with counts by rule and
//! sample addresses. Its own lifecycle: `start` in the first bin with
//! suppressed alerts, `info` in each later bin with some, `end` in the first
//! bin without. Suppressed incidents are remembered until their end (at most
//! one per tracked client: the table caps them).

use std::collections::BTreeMap;
use std::net::{IpAddr, Ipv4Addr};

use crate::FastMap;

use super::{Alert, Evidence, Family, Phase, RuleInfo, Why};

pub static INFO: RuleInfo = RuleInfo {
    name: "spoofed_source_flood",
    id: "MXW-1010",
    severity: 50,
    family: Family::Own,
};

/// Sample addresses kept in the aggregate's evidence.
pub const SAMPLES: usize = 5;

/// What the aggregate alert says (its evidence).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct FloodEvidence {
    /// Warm-up incidents suppressed in this bin (starts).
    pub suppressed_starts: u64,
    /// Their lines of every phase suppressed in this bin.
    pub suppressed_lines: u64,
    /// Distinct warm-up clients whose incidents started in this bin, shown or not.
    pub warmup_clients: u64,
    /// Suppressed starts by rule name.
    pub by_rule: Vec<(&'static str, u64)>,
    /// The lowest suppressed addresses of the bin.
    pub sample_sources: Vec<IpAddr>,
    /// Suppressed since the aggregate started.
    pub suppressed_total: u64,
}

#[derive(Debug)]
pub struct WarmupCap {
    max_per_bin: usize,
    /// Incidents suppressed and not ended yet (by alert id).
    hidden: FastMap<String, ()>,
    /// The open aggregate: (id, start).
    open: Option<(String, i64)>,
    total: u64,
}

impl WarmupCap {
    pub fn new(max_per_bin: usize) -> Self {
        WarmupCap {
            max_per_bin,
            hidden: FastMap::default(),
            open: None,
            total: 0,
        }
    }

    /// Suppressed incidents still open (for tests and health).
    pub fn hidden(&self) -> usize {
        self.hidden.len()
    }

    /// End of input: the open aggregate ends at `end`.
    pub fn finish(&mut self, end: i64) -> Option<Alert> {
        self.open.as_ref()?;
        let mut alerts = Vec::new();
        self.apply(end, end, &mut alerts);
        alerts.pop()
    }

    /// Applies the cap to one merged bin's alerts (in line order) ending at
    /// `bin_end`, which started at `bin_start`.
    pub fn apply(&mut self, bin_start: i64, bin_end: i64, alerts: &mut Vec<Alert>) {
        let mut shown = 0usize;
        let mut ev = FloodEvidence::default();
        let mut by_rule: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut clients: Vec<IpAddr> = Vec::new();
        alerts.retain(|a| {
            if self.hidden.contains_key(&a.alert_id) {
                if a.phase == Phase::End {
                    self.hidden.remove(&a.alert_id);
                }
                ev.suppressed_lines += 1;
                return false;
            }
            if a.phase != Phase::Start || !a.evidence.warmup {
                return true;
            }
            if clients.last() != Some(&a.ip) {
                clients.push(a.ip);
            }
            if shown < self.max_per_bin {
                shown += 1;
                return true;
            }
            self.hidden.insert(a.alert_id.clone(), ());
            ev.suppressed_starts += 1;
            ev.suppressed_lines += 1;
            *by_rule.entry(a.rule.name).or_default() += 1;
            if ev.sample_sources.len() < SAMPLES && !ev.sample_sources.contains(&a.ip) {
                ev.sample_sources.push(a.ip);
            }
            false
        });
        clients.dedup();
        ev.warmup_clients = clients.len() as u64;
        ev.by_rule = by_rule.into_iter().collect();
        let phase = match (&self.open, ev.suppressed_starts > 0) {
            (None, true) => {
                let id = super::alert_id(IpAddr::V4(Ipv4Addr::UNSPECIFIED), &INFO, bin_start);
                self.open = Some((id, bin_start));
                self.total = 0;
                Phase::Start
            }
            (Some(_), true) => Phase::Info,
            (Some(_), false) => Phase::End,
            (None, false) => return,
        };
        self.total += ev.suppressed_starts;
        ev.suppressed_total = self.total;
        let (id, start) = self.open.clone().expect("open");
        if phase == Phase::End {
            self.open = None;
        }
        alerts.push(Alert {
            ts: bin_end,
            phase,
            rule: &INFO,
            alert_id: id,
            ip: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            server: None,
            start,
            end: bin_end,
            why: Why::SpoofedFlood {
                suppressed: ev.suppressed_starts,
                clients: ev.warmup_clients,
                cap: self.max_per_bin,
            },
            evidence: Evidence {
                warmup: true,
                flood: Some(ev),
                ..Evidence::default()
            },
            sensors: Vec::new(),
        });
        alerts.sort_by(Alert::order);
    }
}
