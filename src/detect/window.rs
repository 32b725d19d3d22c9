//! What a rule sees: a client's recent bins, reduced to the numbers rules use,
//! and its baselines. Plain values, so rules are pure functions and tests
//! build windows by hand.

use crate::classify::{ClientBin, DnsCounts, SUB_BINS, SmtpCounts};
use crate::dns::{QtypeBucket, RcodeBucket};

/// One closed bin of one client, as the rules need it: the classifier's
/// counters (declared once, in `classify::counters`) without its sketches.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BinSummary {
    pub start: i64,
    pub end: i64,
    pub dns: DnsCounts,
    pub smtp: SmtpCounts,
    pub sub_bins: [(u32, u32); SUB_BINS],
    pub sample_unresolved: Vec<Box<str>>,
    pub sample_mx: Vec<Box<str>>,
    pub sample_rejected: Vec<Box<str>>,
    /// This server's SMTP clients with session counts (top-k of the bin).
    pub smtp_peers: Vec<(std::net::IpAddr, u64)>,
}

impl BinSummary {
    pub fn of(start: i64, end: i64, b: &ClientBin) -> Self {
        BinSummary {
            start,
            end,
            dns: b.dns.clone(),
            smtp: b.smtp.clone(),
            sub_bins: b.sub_bins,
            sample_unresolved: b.sample_unresolved.clone(),
            sample_mx: b.sample_mx.clone(),
            sample_rejected: b.sample_rejected.clone(),
            smtp_peers: b.smtp_peers.clone(),
        }
    }

    /// A bin with only query counts (tests and synthetic days).
    pub fn queries(start: i64, end: i64, a: u64, mx: u64, ptr: u64) -> Self {
        let mut dns = DnsCounts::default();
        dns.qtype[QtypeBucket::A as usize] = a;
        dns.qtype[QtypeBucket::Mx as usize] = mx;
        dns.qtype[QtypeBucket::Ptr as usize] = ptr;
        dns.queries = a + mx + ptr;
        BinSummary {
            start,
            end,
            dns,
            ..Default::default()
        }
    }

    pub fn secs(&self) -> f64 {
        (self.end - self.start) as f64 / 1e6
    }

    pub fn qps(&self) -> f64 {
        self.dns.queries as f64 / self.secs()
    }

    pub fn mx(&self) -> u64 {
        self.dns.qtype(QtypeBucket::Mx)
    }
}

/// Sums over a run of bins.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Totals {
    pub secs: f64,
    pub dns: DnsCounts,
    pub smtp: SmtpCounts,
    /// The most distinct SMTP clients in one bin of the run.
    pub distinct_smtp_clients_max: u64,
}

impl Totals {
    pub fn of(bins: &[BinSummary]) -> Self {
        let mut t = Totals::default();
        for b in bins {
            t.secs += b.secs();
            t.dns.add(&b.dns);
            t.smtp.add(&b.smtp);
            t.distinct_smtp_clients_max = t.distinct_smtp_clients_max.max(b.smtp.distinct_clients);
        }
        t
    }

    pub fn qps(&self) -> f64 {
        if self.secs > 0.0 {
            self.dns.queries as f64 / self.secs
        } else {
            0.0
        }
    }

    pub fn share(&self, part: u64, whole: u64) -> f64 {
        if whole == 0 {
            0.0
        } else {
            part as f64 / whole as f64
        }
    }

    pub fn mx(&self) -> u64 {
        self.dns.qtype(QtypeBucket::Mx)
    }

    pub fn nxdomain(&self) -> u64 {
        self.dns.rcode(RcodeBucket::NxDomain)
    }

    pub fn mx_share(&self) -> f64 {
        self.share(self.mx(), self.dns.queries)
    }

    pub fn unresolved_share(&self) -> f64 {
        self.share(self.dns.unresolved_fqdn, self.dns.queries)
    }

    pub fn nxdomain_share(&self) -> f64 {
        self.share(self.nxdomain(), self.dns.responses)
    }
}

/// Per-client baselines in events per second. They adapt only in quiet bins,
/// upwards at most by a bounded factor per bin (so a slow ramp cannot drag
/// them along), and stay frozen while an alert is active.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Baselines {
    /// Quiet bins learnt from; below the warm-up count the client is new.
    pub bins: u64,
    /// Queries, and by feature (A counts A and AAAA).
    pub qps: f64,
    pub mx_qps: f64,
    pub a_qps: f64,
    pub ptr_qps: f64,
    /// Answers, NXDOMAIN answers, unresolved FQDNs (normally none).
    pub responses_ps: f64,
    pub nxdomain_ps: f64,
    pub unresolved_ps: f64,
    pub user_unknown_ps: f64,
    pub outbound_ps: f64,
}

/// Which baselines a bin may teach (each family: no incident open, and the
/// bin did not hold its rule).
#[derive(Debug, Clone, Copy)]
pub struct Quiet {
    pub dns: bool,
    pub user_unknown: bool,
    pub outbound: bool,
}

impl Baselines {
    /// Learns from one bin: a running mean during warm-up, then an EWMA whose
    /// rise per bin is capped (`baseline_max_growth`).
    pub fn learn(&mut self, b: &BinSummary, quiet: Quiet, cfg: &super::config::DetectorConfig) {
        let n = self.bins;
        let learn = |old: f64, x: f64, min: f64| -> f64 {
            if n < cfg.warmup_bins {
                old + (x - old) / (n + 1) as f64
            } else {
                let next = old + cfg.baseline_alpha * (x - old);
                next.min(old.max(min) * (1.0 + cfg.baseline_max_growth))
            }
        };
        let secs = b.secs();
        if quiet.dns {
            use crate::dns::QtypeBucket as Q;
            let min = cfg.min_baseline_qps;
            let rate = |n: u64| n as f64 / secs;
            let d = &b.dns;
            self.qps = learn(self.qps, b.qps(), min);
            self.mx_qps = learn(self.mx_qps, rate(b.mx()), min);
            self.a_qps = learn(self.a_qps, rate(d.qtype(Q::A) + d.qtype(Q::Aaaa)), min);
            self.ptr_qps = learn(self.ptr_qps, rate(d.qtype(Q::Ptr)), min);
            self.responses_ps = learn(self.responses_ps, rate(d.responses), min);
            self.nxdomain_ps = learn(self.nxdomain_ps, rate(d.rcode(RcodeBucket::NxDomain)), min);
            self.unresolved_ps = learn(self.unresolved_ps, rate(d.unresolved_fqdn), min);
            self.bins += 1;
        }
        let min_smtp = cfg.smtp.min_baseline_ps;
        if quiet.user_unknown {
            self.user_unknown_ps = learn(
                self.user_unknown_ps,
                b.smtp.user_unknown as f64 / secs,
                min_smtp,
            );
        }
        if quiet.outbound {
            self.outbound_ps = learn(self.outbound_ps, b.smtp.outbound as f64 / secs, min_smtp);
        }
    }
}

/// R² of the least-squares line of `y` on `x` (the paper's Figure 6:
/// unresolved vs total queries per sub-bin). None when x or y is constant.
pub fn r_squared(points: impl Iterator<Item = (f64, f64)>) -> Option<f64> {
    let (mut n, mut sx, mut sy, mut sxx, mut syy, mut sxy) = (0.0, 0.0, 0.0, 0.0, 0.0, 0.0);
    for (x, y) in points {
        n += 1.0;
        sx += x;
        sy += y;
        sxx += x * x;
        syy += y * y;
        sxy += x * y;
    }
    if n < 3.0 {
        return None;
    }
    let vx = n * sxx - sx * sx;
    let vy = n * syy - sy * sy;
    if vx <= 0.0 || vy <= 0.0 {
        return None;
    }
    let cov = n * sxy - sx * sy;
    Some((cov * cov) / (vx * vy))
}

/// R² over the sub-bins of a run of bins.
pub fn sub_bin_r_squared(bins: &[BinSummary]) -> Option<f64> {
    r_squared(
        bins.iter()
            .flat_map(|b| b.sub_bins.iter().map(|&(t, u)| (t as f64, u as f64))),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn r_squared_of_a_line_is_one_and_of_noise_is_low() {
        let line = (0..20).map(|i| (i as f64, 0.3 * i as f64 + 2.0));
        assert!((r_squared(line).unwrap() - 1.0).abs() < 1e-9);
        let noise = [(1.0, 5.0), (2.0, 1.0), (3.0, 4.0), (4.0, 1.0), (5.0, 5.0)];
        assert!(r_squared(noise.into_iter()).unwrap() < 0.2);
        assert_eq!(
            r_squared([(1.0, 1.0), (1.0, 2.0), (1.0, 3.0)].into_iter()),
            None
        );
    }
}
