//! `smtp_alpha`: alpha = N_c / N_f (connections per accepted MAIL FROM) of a
//! mail server leaves its usual band (the relay paper: 0.35-0.70).

use super::rule::{Family, Finding, Rule, RuleInfo, Signal, Window};
use super::window::BinSummary;

pub static INFO: RuleInfo = RuleInfo {
    name: "smtp_alpha",
    id: "MXW-2001",
    severity: 40,
    family: Family::Own,
};

#[derive(Debug)]
pub struct SmtpAlpha;

impl Rule for SmtpAlpha {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn evaluate(&self, w: &Window<'_>) -> Option<Finding> {
        let (t, cfg) = (&w.totals.smtp, &w.cfg.smtp);
        if t.connections < cfg.alpha_min_sessions {
            return None;
        }
        let alpha = t.alpha().unwrap_or(f64::INFINITY);
        if (cfg.alpha_low..=cfg.alpha_high).contains(&alpha) {
            return None;
        }
        Some(Finding {
            rule: &INFO,
            rank: 0,
            signal: Signal::Alpha {
                alpha,
                sessions: t.connections,
                low: cfg.alpha_low,
                high: cfg.alpha_high,
            },
        })
    }

    fn onset(&self, run: &[BinSummary]) -> usize {
        run.iter().position(|b| b.smtp.connections > 0).unwrap_or(0)
    }
}
