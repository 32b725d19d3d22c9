//! `smtp_user_unknown_flood`: "550 User unknown" rejections spike against the
//! server's baseline (the backscatter paper's Figure 5).

use super::rule::{Family, Finding, Rule, RuleInfo, Signal, Window};
use super::window::BinSummary;

pub static INFO: RuleInfo = RuleInfo {
    name: "smtp_user_unknown_flood",
    id: "MXW-2002",
    severity: 60,
    family: Family::Own,
};

#[derive(Debug)]
pub struct SmtpUserUnknownFlood;

impl Rule for SmtpUserUnknownFlood {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn evaluate(&self, w: &Window<'_>) -> Option<Finding> {
        let (t, cfg) = (w.totals, &w.cfg.smtp);
        let rate = t.smtp.user_unknown as f64 / t.secs;
        let baseline = w.base.user_unknown_ps.max(cfg.min_baseline_ps);
        (t.smtp.user_unknown >= cfg.min_events
            && rate >= cfg.user_unknown_floor_ps
            && rate >= cfg.user_unknown_ratio * baseline)
            .then(|| Finding {
                rule: &INFO,
                rank: 0,
                signal: Signal::UserUnknown {
                    count: t.smtp.user_unknown,
                    rate,
                    ratio: rate / baseline,
                    clients: t.distinct_smtp_clients_max,
                },
            })
    }

    fn onset(&self, run: &[BinSummary]) -> usize {
        run.iter()
            .position(|b| b.smtp.user_unknown > 0)
            .unwrap_or(0)
    }
}
