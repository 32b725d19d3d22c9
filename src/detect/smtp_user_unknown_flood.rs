//! `smtp_user_unknown_flood`: "550 User unknown" rejections spike against the
//! server's baseline (the backscatter paper's Figure 5).

use super::config::SmtpRulesConfig;
use super::rule::{Finding, Rule};
use super::window::{Baselines, Totals};

pub fn evaluate(t: &Totals, base: &Baselines, cfg: &SmtpRulesConfig) -> Option<Finding> {
    let rate = t.user_unknown as f64 / t.secs;
    let baseline = base.user_unknown_ps.max(cfg.min_baseline_ps);
    (rate >= cfg.user_unknown_floor_ps && rate >= cfg.user_unknown_ratio * baseline).then(|| Finding {
        rule: Rule::SmtpUserUnknownFlood,
        reason: format!(
            "{} \"user unknown\" rejections ({rate:.2}/s, {:.0} times the baseline) from up to {} client addresses per bin: a bounce flood to unknown users.",
            t.user_unknown,
            rate / baseline,
            t.distinct_smtp_clients_max
        ),
    })
}
