//! `backscatter`: a loud client whose excess is names that cannot resolve:
//! qualified names with the local search domain appended (the backscatter
//! paper's "unresolved FQDNs", normally none, rising with the total, R²
//! 0.999), or, without a search domain, NXDOMAIN answers on a mix of
//! reverse lookups of the connecting clients (a blocklist checker's
//! NXDOMAIN answers come without them) from a client seen serving SMTP. A
//! "user unknown" flood of the same server's SMTP names it too.

use super::rule::{Family, Finding, Rule, RuleInfo, Signal, Window};

pub static INFO: RuleInfo = RuleInfo {
    name: "backscatter",
    id: "MXW-1002",
    severity: 70,
    family: Family::Dns,
};

#[derive(Debug)]
pub struct Backscatter;

/// NXDOMAIN answers beyond the baseline that mean something.
const MIN_NXDOMAIN_EXCESS: f64 = 5.0;

impl Rule for Backscatter {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn evaluate(&self, w: &Window<'_>) -> Option<Finding> {
        let (x, cfg) = (w.excess, w.cfg);
        let qps = w.totals.qps();
        let ratio = x.total.ratio();
        if x.unresolved
            .significant(cfg.log10_p, cfg.unresolved_min as f64)
            && x.share(&x.unresolved) >= cfg.unresolved_excess_share
        {
            return Some(Finding {
                rule: &INFO,
                rank: 1,
                signal: Signal::UnresolvedExcess {
                    qps,
                    ratio,
                    count: x.unresolved.observed,
                    expected: x.unresolved.expected,
                    share: x.share(&x.unresolved),
                },
            });
        }
        let nx = x.nxdomain.significant(cfg.log10_p, MIN_NXDOMAIN_EXCESS);
        let nx_share = x.nxdomain_share();
        let by_mix =
            nx_share >= cfg.nxdomain_excess_share && x.share(&x.ptr) >= cfg.ptr_excess_share;
        // NXDOMAIN alone names backscatter only for a mail server: a batch
        // job resolving log addresses makes the same mix of PTR and A with
        // NXDOMAIN answers.
        let mail_server = w.smtp.mail_server() || w.smtp.user_unknown;
        (nx && mail_server && (by_mix || w.smtp.user_unknown)).then_some(Finding {
            rule: &INFO,
            rank: 1,
            signal: Signal::NxDomainExcess {
                qps,
                ratio,
                nxdomain: x.nxdomain.observed,
                expected: x.nxdomain.expected,
                share: nx_share,
            },
        })
    }
}
