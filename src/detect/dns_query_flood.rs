//! `dns_query_flood`: a loud client with no mail-specific pattern. Opt-in
//! (`detect.query_flood`): a volume rule cannot tell a batch job, a
//! blocklist checker or a busy gateway from an attack, and mxwatch's other
//! rules name what a mail server in trouble does. Never for clients still in
//! warm-up.

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
        (w.cfg.query_flood && w.warm).then(|| Finding {
            rule: &INFO,
            rank: 3,
            signal: Signal::Loud {
                qps: w.totals.qps(),
                ratio: w.excess.total.ratio(),
            },
        })
    }
}
