//! `spam_relay`: a loud client whose excess queries are driven by MX lookups
//! (one per new recipient domain: the relay paper's Table 1, 27 -> 35,801 MX
//! a day). MX-driven wins over unresolved names: a relay whose spam sources
//! have PTR names without A records shows some FQDN+local names too.

use super::rule::{Family, Finding, Rule, RuleInfo, Signal, Window};

pub static INFO: RuleInfo = RuleInfo {
    name: "spam_relay",
    id: "MXW-1001",
    severity: 80,
    family: Family::Dns,
};

#[derive(Debug)]
pub struct SpamRelay;

/// Reverse lookups beyond the baseline that show a server resolving the
/// hosts that connect to it.
pub const MIN_PTR_EXCESS: f64 = 1.0;

impl Rule for SpamRelay {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn evaluate(&self, w: &Window<'_>) -> Option<Finding> {
        let (x, cfg) = (w.excess, w.cfg);
        // A relay is a mail server: seen serving SMTP, configured, looking
        // up MX records in quiet times, or resolving the sources that connect
        // to it (PTR lookups beyond the baseline). An MX surge from a client
        // with none of these is a host mailing direct-to-MX: spam_bot's (#17).
        if !w.smtp.mail_server() && x.ptr.excess() < MIN_PTR_EXCESS {
            return None;
        }
        let share = x.share(&x.mx);
        // The server's own outbound SMTP flood names a relay (unless it is
        // also bouncing a flood of unknown users: then backscatter decides).
        let needed = if w.smtp.outbound && !w.smtp.user_unknown {
            cfg.mx_excess_share / 2.0
        } else {
            cfg.mx_excess_share
        };
        // Many new domains: at least half of `min_excess` MX lookups beyond
        // the baseline (a mailing list's burst of 20 messages is not a relay).
        let min_mx = cfg.min_excess as f64 / 2.0;
        (x.mx.significant(cfg.log10_p, min_mx) && share >= needed).then(|| Finding {
            rule: &INFO,
            rank: 0,
            signal: Signal::MxExcess {
                qps: w.totals.qps(),
                ratio: x.total.ratio(),
                mx: x.mx.observed,
                mx_expected: x.mx.expected,
                share,
            },
        })
    }
}
