//! `backscatter`: a loud client whose queries are names that cannot resolve:
//! qualified names with the local search domain appended (the backscatter
//! paper's "unresolved FQDNs", rising with the total, R² 0.999), or, without
//! a search domain, a high NXDOMAIN share.

use super::rule::{Family, Finding, Rule, RuleInfo, Signal, Window};

pub static INFO: RuleInfo = RuleInfo {
    name: "backscatter",
    id: "MXW-1002",
    severity: 70,
    family: Family::Dns,
};

#[derive(Debug)]
pub struct Backscatter;

impl Rule for Backscatter {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn evaluate(&self, w: &Window<'_>) -> Option<Finding> {
        let (t, cfg) = (w.totals, w.cfg);
        let unresolved = t.unresolved_share() >= cfg.unresolved_share_min
            && t.dns.unresolved_fqdn >= cfg.unresolved_min;
        let nxdomain = t.dns.responses > 0 && t.nxdomain_share() >= cfg.nxdomain_share_min;
        let signal = if unresolved {
            Signal::Unresolved {
                qps: t.qps(),
                count: t.dns.unresolved_fqdn,
                share: t.unresolved_share(),
            }
        } else if nxdomain {
            Signal::NxDomain {
                qps: t.qps(),
                share: t.nxdomain_share(),
            }
        } else {
            return None;
        };
        Some(Finding {
            rule: &INFO,
            rank: 1,
            signal,
        })
    }
}
