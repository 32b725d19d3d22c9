//! `spam_relay`: a loud client whose queries are driven by MX lookups (one
//! per new recipient domain: the relay paper's Table 1, 27 -> 35,801 MX a day).

use super::config::DetectorConfig;
use super::rule::{Finding, Rule};
use super::window::{Baselines, Totals};

/// `dominant` = MX share alone decides (it outranks an NXDOMAIN share: a relay
/// spamming dead domains is still a relay).
pub fn evaluate(
    t: &Totals,
    base: &Baselines,
    warm: bool,
    cfg: &DetectorConfig,
) -> Option<(Finding, bool)> {
    let share = t.mx_share();
    if share >= cfg.mx_share_dominant {
        return Some((finding(t, share, "dominate"), true));
    }
    // Without a local cache MX is only about a third of a relay's queries:
    // then the MX rate against its own baseline decides (not for new clients).
    let mx_qps = t.mx() as f64 / t.secs;
    let mx_base = base.mx_qps.max(cfg.min_baseline_qps);
    if warm && share >= cfg.mx_share_min && mx_qps >= cfg.mx_ratio * mx_base {
        return Some((finding(t, share, "surge"), false));
    }
    None
}

fn finding(t: &Totals, share: f64, how: &str) -> Finding {
    Finding {
        rule: Rule::SpamRelay,
        reason: format!(
            "MX lookups {how} a query burst of {:.1} q/s ({:.0}% MX, {} MX queries): the mail server is sending mail to many new domains, as an abused relay does.",
            t.qps(),
            share * 100.0,
            t.mx()
        ),
    }
}
