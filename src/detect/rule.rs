//! What every rule is: a [`Rule`] (one file each, registered in
//! [`super::rules`]) looks at a [`Window`] of one client's recent bins and
//! baselines and returns a [`Finding`]: numbers, never prose. The sentence a
//! person reads is made from the [`Signal`] in `output`.

use std::fmt;

use super::config::DetectorConfig;
use super::excess::Excess;
use super::window::{Baselines, BinSummary, Totals};

/// What the same server's SMTP rules say right now (when SMTP is visible).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct SmtpHint {
    /// Its outbound sessions flood (a relay sends the spam out).
    pub outbound: bool,
    /// "User unknown" rejections flood (a bounce flood).
    pub user_unknown: bool,
    /// The client has been seen receiving SMTP sessions, or is configured as
    /// a mail server (`[[client]] mail_server = true`).
    pub server: bool,
    /// The client looked up MX records in quiet times (a mail server's
    /// daily routine; a workstation does not): evidence of a mail server on
    /// a DNS-only tap.
    pub mx_history: bool,
}

impl SmtpHint {
    /// Whatever says the client is a mail server (SMTP seen, configured, MX
    /// lookups in its quiet history).
    pub fn mail_server(&self) -> bool {
        self.server || self.mx_history
    }
}

/// How a rule's incidents are kept.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// One DNS incident per client, judged only while the client is loud;
    /// the most specific finding (lowest rank) names it.
    Dns,
    /// The rule has incidents of its own, started and held by the rule alone.
    Own,
}

/// A rule's identity: names and numbers are the contract with SIEM users.
#[derive(Debug, PartialEq, Eq)]
pub struct RuleInfo {
    /// `rule.name`
    pub name: &'static str,
    /// `rule.id`; also the order of a rule's lines within a bin.
    pub id: &'static str,
    /// ECS `event.severity` (0-100).
    pub severity: u8,
    pub family: Family,
}

impl fmt::Display for RuleInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name)
    }
}

/// What a rule sees of one client at one bin close.
#[derive(Debug, Clone, Copy)]
pub struct Window<'a> {
    /// The recent bins (at most `confirm_bins`, oldest first), or an
    /// incident's evidence bins when a reason is made.
    pub run: &'a [BinSummary],
    pub totals: &'a Totals,
    pub base: &'a Baselines,
    /// The client has a baseline (past its warm-up).
    pub warm: bool,
    pub cfg: &'a DetectorConfig,
    /// The window against the baselines, feature by feature.
    pub excess: &'a Excess,
    pub smtp: SmtpHint,
}

pub trait Rule: fmt::Debug + Send + Sync {
    fn info(&self) -> &'static RuleInfo;

    /// The finding, if the rule holds on this window.
    fn evaluate(&self, w: &Window<'_>) -> Option<Finding>;

    /// For [`Family::Own`]: index of the first bin of the run that shows the
    /// rule's signal (the incident's start).
    fn onset(&self, run: &[BinSummary]) -> usize {
        let _ = run;
        0
    }
}

/// A rule's verdict: which rule, how specific, and the numbers behind it.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: &'static RuleInfo,
    /// Within a family, the lowest rank names the incident.
    pub rank: u8,
    pub signal: Signal,
}

/// The numbers a finding rests on (`output::reason` turns them into a sentence).
#[derive(Debug, Clone, PartialEq)]
pub enum Signal {
    /// MX lookups make `share` of the excess queries: `mx` where
    /// `mx_expected` were expected.
    MxExcess {
        qps: f64,
        ratio: f64,
        mx: u64,
        mx_expected: f64,
        share: f64,
    },
    /// Qualified names with the local search domain appended, beyond their
    /// (normally zero) baseline; `share` of the excess queries.
    UnresolvedExcess {
        qps: f64,
        ratio: f64,
        count: u64,
        expected: f64,
        share: f64,
    },
    /// NXDOMAIN answers beyond their baseline, `share` of the excess answers.
    NxDomainExcess {
        qps: f64,
        ratio: f64,
        nxdomain: u64,
        expected: f64,
        share: f64,
    },
    /// Loud with no more specific explanation.
    Loud { qps: f64, ratio: f64 },
    /// alpha = connections / MAIL FROM out of its band.
    Alpha {
        alpha: f64,
        sessions: u64,
        low: f64,
        high: f64,
    },
    /// "User unknown" rejections against their baseline.
    UserUnknown {
        count: u64,
        rate: f64,
        ratio: f64,
        clients: u64,
    },
    /// Outbound SMTP sessions against their baseline.
    Outbound { count: u64, rate: f64, ratio: f64 },
    /// A client that is not a mail server looks up the MX of `domains`
    /// distinct domains: `mx` lookups where `mx_expected` were expected;
    /// `outbound` SMTP sessions of its own (when SMTP is visible).
    MxDomains {
        mx: u64,
        mx_expected: f64,
        mx_qps: f64,
        domains: u64,
        outbound: u64,
    },
}
