//! `smtp_outbound_flood`: a mail server's own outbound SMTP sessions spike
//! (a relay sends the spam out). Only for a client seen serving SMTP: a
//! workstation or partner MTA submitting mail is not a relay (a host that is
//! not a mail server sending direct-to-MX is another rule's matter).

use super::rule::{Family, Finding, Rule, RuleInfo, Signal, Window};
use super::window::BinSummary;

pub static INFO: RuleInfo = RuleInfo {
    name: "smtp_outbound_flood",
    id: "MXW-2003",
    severity: 70,
    family: Family::Own,
};

#[derive(Debug)]
pub struct SmtpOutboundFlood;

impl Rule for SmtpOutboundFlood {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn evaluate(&self, w: &Window<'_>) -> Option<Finding> {
        let (t, cfg) = (w.totals, &w.cfg.smtp);
        let rate = t.smtp.outbound as f64 / t.secs;
        let baseline = w.base.outbound_ps.max(cfg.min_baseline_ps);
        (w.smtp.server
            && t.smtp.outbound >= cfg.min_events
            && rate >= cfg.outbound_floor_ps
            && rate >= cfg.outbound_ratio * baseline)
            .then(|| Finding {
                rule: &INFO,
                rank: 0,
                signal: Signal::Outbound {
                    count: t.smtp.outbound,
                    rate,
                    ratio: rate / baseline,
                },
            })
    }

    fn onset(&self, run: &[BinSummary]) -> usize {
        run.iter().position(|b| b.smtp.outbound > 0).unwrap_or(0)
    }
}
