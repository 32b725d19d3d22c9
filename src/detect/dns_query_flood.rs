//! `dns_query_flood`: a loud client with no more specific explanation.
//! Not raised for clients still in warm-up (a busy resolver first seen
//! would otherwise alert on its normal rate).

use super::rule::{Finding, Rule};
use super::window::Totals;

pub fn evaluate(t: &Totals, baseline_qps: f64, warm: bool) -> Option<Finding> {
    warm.then(|| Finding {
        rule: Rule::DnsQueryFlood,
        reason: format!(
            "Query rate of {:.1} q/s is {:.0} times this client's baseline, with no mail-specific pattern.",
            t.qps(),
            t.qps() / baseline_qps
        ),
    })
}
