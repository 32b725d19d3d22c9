//! What a rule returns, and the evidence carried in an alert.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::dns::QtypeBucket;
use crate::output::schema::round4;

use super::window::{Baselines, BinSummary, Totals, sub_bin_r_squared};

/// The rules. Names are the contract with SIEM users.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Rule {
    SpamRelay,
    Backscatter,
    DnsQueryFlood,
    SmtpAlpha,
    SmtpUserUnknownFlood,
    SmtpOutboundFlood,
}

impl Rule {
    pub fn name(self) -> &'static str {
        match self {
            Rule::SpamRelay => "spam_relay",
            Rule::Backscatter => "backscatter",
            Rule::DnsQueryFlood => "dns_query_flood",
            Rule::SmtpAlpha => "smtp_alpha",
            Rule::SmtpUserUnknownFlood => "smtp_user_unknown_flood",
            Rule::SmtpOutboundFlood => "smtp_outbound_flood",
        }
    }

    pub fn id(self) -> &'static str {
        match self {
            Rule::SpamRelay => "MXW-1001",
            Rule::Backscatter => "MXW-1002",
            Rule::DnsQueryFlood => "MXW-1003",
            Rule::SmtpAlpha => "MXW-2001",
            Rule::SmtpUserUnknownFlood => "MXW-2002",
            Rule::SmtpOutboundFlood => "MXW-2003",
        }
    }

    /// ECS event.severity (0-100).
    pub fn severity(self) -> u8 {
        match self {
            Rule::SpamRelay => 80,
            Rule::Backscatter => 70,
            Rule::SmtpOutboundFlood => 70,
            Rule::SmtpUserUnknownFlood => 60,
            Rule::DnsQueryFlood => 50,
            Rule::SmtpAlpha => 40,
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub rule: Rule,
    pub reason: String,
}

/// Numbers behind an alert: the bins of the incident so far (at most a window).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Evidence {
    pub window_seconds: f64,
    pub queries: u64,
    pub rate_qps: f64,
    pub baseline_qps: f64,
    pub ratio: f64,
    pub qtype: BTreeMap<&'static str, u64>,
    pub mx_share: f64,
    pub nxdomain: u64,
    pub nxdomain_share: f64,
    pub unresolved_fqdn: u64,
    pub unresolved_share: f64,
    pub unresolved_nxdomain: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub r2_total_vs_unresolved: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_domain: Option<String>,
    pub sample_names: Vec<String>,
    pub smtp: SmtpEvidence,
    pub warmup: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub related_alerts: Vec<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SmtpEvidence {
    pub connections: u64,
    pub mail_from: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
    pub user_unknown: u64,
    pub rcpt_rejected: u64,
    pub outbound: u64,
    pub distinct_clients: u64,
    pub user_unknown_baseline_ps: f64,
    pub outbound_baseline_ps: f64,
    pub sample_recipients: Vec<String>,
}

pub fn evidence(
    run: &[BinSummary],
    base: &Baselines,
    min_qps: f64,
    warm: bool,
    local: Option<&str>,
) -> Evidence {
    let t = Totals::of(run);
    let baseline = base.qps.max(min_qps);
    // Unresolved names first (backscatter), then MX names (relay); newest bins first.
    let mut names: Vec<String> = Vec::new();
    let unresolved = run.iter().rev().flat_map(|b| b.sample_unresolved.iter());
    let mx = run.iter().rev().flat_map(|b| b.sample_mx.iter());
    for s in unresolved.chain(mx) {
        if names.len() < 5 && !names.iter().any(|n| n == &**s) {
            names.push(s.to_string());
        }
    }
    let mut recipients: Vec<String> = Vec::new();
    for s in run.iter().rev().flat_map(|b| b.sample_rejected.iter()) {
        if recipients.len() < 5 && !recipients.iter().any(|n| n == &**s) {
            recipients.push(s.to_string());
        }
    }
    Evidence {
        window_seconds: t.secs,
        queries: t.queries,
        rate_qps: round4(t.qps()),
        baseline_qps: round4(baseline),
        ratio: round4(t.qps() / baseline),
        qtype: QtypeBucket::ALL
            .iter()
            .map(|q| (q.name(), t.qtype[*q as usize]))
            .collect(),
        mx_share: round4(t.mx_share()),
        nxdomain: t.nxdomain,
        nxdomain_share: round4(t.nxdomain_share()),
        unresolved_fqdn: t.unresolved,
        unresolved_share: round4(t.unresolved_share()),
        unresolved_nxdomain: t.unresolved_nxdomain,
        r2_total_vs_unresolved: sub_bin_r_squared(run).map(round4),
        local_domain: local.map(str::to_owned),
        sample_names: names,
        smtp: SmtpEvidence {
            connections: t.connections,
            mail_from: t.mail_from,
            alpha: (t.mail_from > 0).then(|| round4(t.connections as f64 / t.mail_from as f64)),
            user_unknown: t.user_unknown,
            rcpt_rejected: t.rcpt_rejected,
            outbound: t.outbound,
            distinct_clients: t.distinct_smtp_clients_max,
            user_unknown_baseline_ps: round4(base.user_unknown_ps),
            outbound_baseline_ps: round4(base.outbound_ps),
            sample_recipients: recipients,
        },
        warmup: !warm,
        related_alerts: Vec::new(),
    }
}
