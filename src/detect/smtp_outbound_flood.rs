//! `smtp_outbound_flood`: a mail server's own outbound SMTP sessions spike
//! (a relay sends the spam out).

use super::config::SmtpRulesConfig;
use super::rule::{Finding, Rule};
use super::window::{Baselines, Totals};

pub fn evaluate(t: &Totals, base: &Baselines, cfg: &SmtpRulesConfig) -> Option<Finding> {
    let rate = t.outbound as f64 / t.secs;
    let baseline = base.outbound_ps.max(cfg.min_baseline_ps);
    (rate >= cfg.outbound_floor_ps && rate >= cfg.outbound_ratio * baseline).then(|| Finding {
        rule: Rule::SmtpOutboundFlood,
        reason: format!(
            "{} outbound SMTP sessions ({rate:.2}/s, {:.0} times the baseline): the server is sending mail out in bulk.",
            t.outbound,
            rate / baseline
        ),
    })
}
