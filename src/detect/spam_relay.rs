//! `spam_relay`: a loud client whose queries are driven by MX lookups (one
//! per new recipient domain: the relay paper's Table 1, 27 -> 35,801 MX a day).

use super::rule::{Family, Finding, Rule, RuleInfo, Signal, Window};

pub static INFO: RuleInfo = RuleInfo {
    name: "spam_relay",
    id: "MXW-1001",
    severity: 80,
    family: Family::Dns,
};

#[derive(Debug)]
pub struct SpamRelay;

impl Rule for SpamRelay {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    /// MX share dominant (rank 0: it outranks an NXDOMAIN share, a relay
    /// spamming dead domains is still a relay), or an MX surge against its
    /// own baseline (rank 2, below backscatter).
    fn evaluate(&self, w: &Window<'_>) -> Option<Finding> {
        let (t, cfg) = (w.totals, w.cfg);
        let share = t.mx_share();
        let finding = |dominant: bool| Finding {
            rule: &INFO,
            rank: if dominant { 0 } else { 2 },
            signal: Signal::MxDriven {
                qps: t.qps(),
                mx_share: share,
                mx: t.mx(),
                dominant,
            },
        };
        if share >= cfg.mx_share_dominant {
            return Some(finding(true));
        }
        // Without a local cache MX is only about a third of a relay's queries:
        // then the MX rate against its own baseline decides (not for new clients).
        let mx_qps = t.mx() as f64 / t.secs;
        let mx_base = w.base.mx_qps.max(cfg.min_baseline_qps);
        (w.warm && share >= cfg.mx_share_min && mx_qps >= cfg.mx_ratio * mx_base)
            .then(|| finding(false))
    }
}
