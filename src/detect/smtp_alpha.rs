//! `smtp_alpha`: alpha = N_c / N_f (connections per accepted MAIL FROM) of a
//! mail server leaves its usual band (the relay paper: 0.35-0.70).

use super::config::SmtpRulesConfig;
use super::rule::{Finding, Rule};
use super::window::Totals;

pub fn evaluate(t: &Totals, cfg: &SmtpRulesConfig) -> Option<Finding> {
    if t.connections < cfg.alpha_min_sessions {
        return None;
    }
    let alpha = if t.mail_from == 0 {
        f64::INFINITY
    } else {
        t.connections as f64 / t.mail_from as f64
    };
    if (cfg.alpha_low..=cfg.alpha_high).contains(&alpha) {
        return None;
    }
    Some(Finding {
        rule: Rule::SmtpAlpha,
        reason: format!(
            "SMTP alpha (connections / MAIL FROM) is {alpha:.2} over {} sessions, outside its usual band {:.2}-{:.2}.",
            t.connections, cfg.alpha_low, cfg.alpha_high
        ),
    })
}
