//! The numbers behind an alert: the bins of the incident so far (at most a
//! window), reduced for the SIEM. Plain values; `output` names the fields.

use std::net::IpAddr;

use super::config::DetectorConfig;
use super::excess::Excess;
use super::window::{Baselines, BinSummary, Totals, sub_bin_r_squared};

#[derive(Debug, Clone, Default, PartialEq)]
pub struct Evidence {
    pub window_seconds: f64,
    pub totals: Totals,
    /// The same bins against the baselines, feature by feature.
    pub excess: Excess,
    pub rate_qps: f64,
    pub baseline_qps: f64,
    pub r2_total_vs_unresolved: Option<f64>,
    pub local_domain: Option<String>,
    /// Unresolved names first, then MX names; newest bins first; at most 5.
    pub sample_names: Vec<String>,
    pub sample_recipients: Vec<String>,
    pub user_unknown_baseline_ps: f64,
    pub outbound_baseline_ps: f64,
    /// The incident's top SMTP peers of this server (sessions), most first:
    /// the relaying sources of a relay, the bounce sources of a backscatter.
    pub smtp_peers: Vec<(IpAddr, u64)>,
    pub warmup: bool,
    /// Other rules with an incident open for this client.
    pub related_alerts: Vec<&'static str>,
    /// The aggregate `spoofed_source_flood` alert's numbers.
    pub flood: Option<super::flood::FloodEvidence>,
}

/// Samples kept in an alert.
const SAMPLES: usize = 5;
/// SMTP peers kept in an alert (of each bin's top-k, summed over the incident).
pub const TOP_PEERS: usize = 10;

/// The top peers of a run of bins: each bin's counts summed, most sessions
/// first (then by address), at most `TOP_PEERS`.
pub fn top_peers(run: &[BinSummary]) -> Vec<(IpAddr, u64)> {
    let mut sum: Vec<(IpAddr, u64)> = Vec::new();
    for (ip, n) in run.iter().flat_map(|b| b.smtp_peers.iter()) {
        match sum.iter_mut().find(|(p, _)| p == ip) {
            Some(e) => e.1 += n,
            None => sum.push((*ip, *n)),
        }
    }
    sum.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    sum.truncate(TOP_PEERS);
    sum
}

pub fn evidence(
    run: &[BinSummary],
    base: &Baselines,
    cfg: &DetectorConfig,
    warm: bool,
    local: Option<&str>,
) -> Evidence {
    let t = Totals::of(run);
    let min_qps = cfg.min_baseline_qps;
    let mut names: Vec<String> = Vec::new();
    let unresolved = run.iter().rev().flat_map(|b| b.sample_unresolved.iter());
    let mx = run.iter().rev().flat_map(|b| b.sample_mx.iter());
    for s in unresolved.chain(mx) {
        if names.len() < SAMPLES && !names.iter().any(|n| n == &**s) {
            names.push(s.to_string());
        }
    }
    let mut recipients: Vec<String> = Vec::new();
    for s in run.iter().rev().flat_map(|b| b.sample_rejected.iter()) {
        if recipients.len() < SAMPLES && !recipients.iter().any(|n| n == &**s) {
            recipients.push(s.to_string());
        }
    }
    Evidence {
        window_seconds: t.secs,
        rate_qps: t.qps(),
        baseline_qps: base.qps.max(min_qps),
        r2_total_vs_unresolved: sub_bin_r_squared(run),
        local_domain: local.map(str::to_owned),
        sample_names: names,
        sample_recipients: recipients,
        user_unknown_baseline_ps: base.user_unknown_ps,
        outbound_baseline_ps: base.outbound_ps,
        smtp_peers: top_peers(run),
        warmup: !warm,
        related_alerts: Vec::new(),
        flood: None,
        excess: Excess::of(&t, base, cfg),
        totals: t,
    }
}
