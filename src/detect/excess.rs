//! What the window holds beyond the client's baseline, feature by feature:
//! the count of each feature against its expected count (its baseline rate,
//! or for a client in warm-up a conservative prior, times the window). The
//! rules classify this excess, never the total.

use super::config::DetectorConfig;
use super::stats::Count;
use super::window::{Baselines, Totals};

/// A typical mail server's quiet mix (the relay paper's Table 1, quiet day:
/// 114 A / 27 MX / 36 PTR of 177), for the priors of a client in warm-up.
const PRIOR_SHARE_A: f64 = 0.64;
const PRIOR_SHARE_MX: f64 = 0.15;
const PRIOR_SHARE_PTR: f64 = 0.20;
/// Answers that are NXDOMAIN on a quiet day (a resolver's ordinary share).
const PRIOR_SHARE_NXDOMAIN: f64 = 0.1;

#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Excess {
    pub secs: f64,
    pub total: Count,
    pub mx: Count,
    pub a: Count,
    pub ptr: Count,
    pub responses: Count,
    pub nxdomain: Count,
    pub unresolved: Count,
    /// The client had no baseline yet: expected counts are priors.
    pub prior: bool,
}

impl Excess {
    /// The window's totals against the baselines. During warm-up each
    /// expected rate is the larger of what was learnt and a prior whose
    /// weight falls as quiet bins come in (all of it for a client first seen).
    pub fn of(t: &Totals, base: &Baselines, cfg: &DetectorConfig) -> Self {
        use crate::dns::QtypeBucket as Q;
        let secs = t.secs;
        let min = cfg.min_baseline_qps;
        let warmup = cfg.warmup_bins.max(1);
        let weight = warmup.saturating_sub(base.bins) as f64 / warmup as f64;
        let p = cfg.warmup_prior_qps * weight;
        let exp = |learnt: f64, prior: f64| learnt.max(prior).max(min) * secs;
        let (total, mx, a, ptr, responses, nx, unresolved) = (
            exp(base.qps, p),
            exp(base.mx_qps, p * PRIOR_SHARE_MX),
            exp(base.a_qps, p * PRIOR_SHARE_A),
            exp(base.ptr_qps, p * PRIOR_SHARE_PTR),
            exp(base.responses_ps, p),
            exp(base.nxdomain_ps, p * PRIOR_SHARE_NXDOMAIN),
            exp(base.unresolved_ps, 0.0),
        );
        Excess {
            secs,
            total: Count::new(t.dns.queries, total),
            mx: Count::new(t.dns.qtype(Q::Mx), mx),
            a: Count::new(t.dns.qtype(Q::A) + t.dns.qtype(Q::Aaaa), a),
            ptr: Count::new(t.dns.qtype(Q::Ptr), ptr),
            responses: Count::new(t.dns.responses, responses),
            nxdomain: Count::new(t.nxdomain(), nx),
            unresolved: Count::new(t.dns.unresolved_fqdn, unresolved),
            prior: base.bins < cfg.warmup_bins,
        }
    }

    /// Share of the excess queries that a feature's excess makes (0-1).
    pub fn share(&self, part: &Count) -> f64 {
        let whole = self.total.excess();
        if whole <= 0.0 {
            0.0
        } else {
            (part.excess() / whole).min(1.0)
        }
    }

    /// Share of the excess answers that are NXDOMAIN (0-1).
    pub fn nxdomain_share(&self) -> f64 {
        let whole = self.responses.excess().max(self.nxdomain.excess());
        if whole <= 0.0 {
            0.0
        } else {
            (self.nxdomain.excess() / whole).min(1.0)
        }
    }

    /// The window is loud: its queries are beyond what the baseline (or
    /// prior) explains by `ratio` times, by at least `min_excess` queries,
    /// at `floor_qps` or more, with a p-value of at most 10^log10_p. A client
    /// in warm-up must reach `warmup_ratio` unless `corroborated` (its own
    /// SMTP rules hold).
    pub fn loud(
        &self,
        cfg: &DetectorConfig,
        floor_qps: f64,
        ratio: f64,
        corroborated: bool,
    ) -> bool {
        let t = &self.total;
        let ratio = if self.prior && !corroborated {
            ratio.max(cfg.warmup_ratio)
        } else {
            ratio
        };
        t.ratio() >= ratio
            && t.excess() >= floor_qps * self.secs
            && t.significant(cfg.log10_p, cfg.min_excess as f64)
    }

    /// One bin holds more than `ratio` times its expected queries, at the
    /// floor rate (the latest bin of a loud window; an incident going on).
    pub fn bin_loud(&self, floor_qps: f64, ratio: f64) -> bool {
        self.total.ratio() >= ratio && self.total.excess() >= floor_qps * self.secs
    }
}
