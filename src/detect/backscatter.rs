//! `backscatter`: a loud client whose queries are names that cannot resolve:
//! qualified names with the local search domain appended (the backscatter
//! paper's "unresolved FQDNs", rising with the total, R² 0.999), or, without
//! a search domain, a high NXDOMAIN share.

use super::config::DetectorConfig;
use super::rule::{Finding, Rule};
use super::window::Totals;

pub fn evaluate(t: &Totals, cfg: &DetectorConfig) -> Option<Finding> {
    let unresolved =
        t.unresolved_share() >= cfg.unresolved_share_min && t.unresolved >= cfg.unresolved_min;
    let nxdomain = t.responses > 0 && t.nxdomain_share() >= cfg.nxdomain_share_min;
    if !(unresolved || nxdomain) {
        return None;
    }
    let why = if unresolved {
        format!(
            "{} queries ({:.0}%) are qualified names with the local search domain appended",
            t.unresolved,
            t.unresolved_share() * 100.0
        )
    } else {
        format!("{:.0}% of answers are NXDOMAIN", t.nxdomain_share() * 100.0)
    };
    Some(Finding {
        rule: Rule::Backscatter,
        reason: format!(
            "Query burst of {:.1} q/s where {why}: the mail server is checking forged senders of a bounce flood.",
            t.qps()
        ),
    })
}
