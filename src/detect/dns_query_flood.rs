//! `dns_query_flood`: a loud client with no more specific explanation.
//! Not raised for clients still in warm-up (a busy resolver first seen
//! would otherwise alert on its normal rate).

use super::rule::{Family, Finding, Rule, RuleInfo, Signal, Window};

pub static INFO: RuleInfo = RuleInfo {
    name: "dns_query_flood",
    id: "MXW-1003",
    severity: 50,
    family: Family::Dns,
};

#[derive(Debug)]
pub struct DnsQueryFlood;

impl Rule for DnsQueryFlood {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn evaluate(&self, w: &Window<'_>) -> Option<Finding> {
        let baseline = w.base.qps.max(w.cfg.min_baseline_qps);
        w.warm.then(|| Finding {
            rule: &INFO,
            rank: 3,
            signal: Signal::Loud {
                qps: w.totals.qps(),
                ratio: w.totals.qps() / baseline,
            },
        })
    }
}
