//! `mxwatch.detection` lines: an [`Alert`] and its evidence, named for the SIEM.

use std::collections::BTreeMap;

use serde::Serialize;

use super::reason::reason;
use super::schema::{Event, Ip, Observer, SCHEMA_VERSION, round4};
use crate::detect::{Alert, Evidence, Phase};
use crate::dns::QtypeBucket;
use crate::time::rfc3339_micros;

#[derive(Debug, Serialize)]
pub struct AlertLine<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: Event<'a>,
    observer: &'a Observer<'a>,
    rule: RuleOut,
    source: Ip,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<Ip>,
    mxwatch: AlertBody<'a>,
}

#[derive(Debug, Serialize)]
struct RuleOut {
    name: &'static str,
    id: &'static str,
}

#[derive(Debug, Serialize)]
struct AlertBody<'a> {
    schema_version: &'static str,
    alert_id: &'a str,
    /// The sensors a detector group merged (`mxwatch detect`); absent otherwise.
    #[serde(skip_serializing_if = "<[String]>::is_empty")]
    sensors: &'a [String],
    evidence: EvidenceOut<'a>,
}

/// `mxwatch.evidence` (SCHEMA.md).
#[derive(Debug, Serialize)]
pub struct EvidenceOut<'a> {
    window_seconds: f64,
    queries: u64,
    rate_qps: f64,
    baseline_qps: f64,
    ratio: f64,
    qtype: BTreeMap<&'static str, u64>,
    mx_share: f64,
    nxdomain: u64,
    nxdomain_share: f64,
    unresolved_fqdn: u64,
    unresolved_share: f64,
    unresolved_nxdomain: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    r2_total_vs_unresolved: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    local_domain: Option<&'a str>,
    sample_names: &'a [String],
    /// Distinct MX query names (recipient domains) over the incident's bins.
    #[serde(skip_serializing_if = "is_zero")]
    distinct_mx_names: u64,
    smtp: SmtpEvidenceOut<'a>,
    /// What the baselines expected of the same bins (counts), the Poisson
    /// p-value of the queries (log10), and what each feature makes of the excess.
    expected: ExpectedOut,
    log10_p: f64,
    excess_share: ExcessShareOut,
    warmup: bool,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    related_alerts: &'a [&'static str],
    #[serde(skip_serializing_if = "Option::is_none")]
    spoofed_source_flood: Option<FloodOut>,
}

/// `mxwatch.evidence.spoofed_source_flood` (the aggregate alert only).
#[derive(Debug, Serialize)]
struct FloodOut {
    suppressed_starts: u64,
    suppressed_lines: u64,
    suppressed_total: u64,
    warmup_clients: u64,
    by_rule: BTreeMap<&'static str, u64>,
    sample_sources: Vec<String>,
}

#[derive(Debug, Serialize)]
struct ExpectedOut {
    queries: f64,
    #[serde(rename = "MX")]
    mx: f64,
    #[serde(rename = "A")]
    a: f64,
    #[serde(rename = "PTR")]
    ptr: f64,
    nxdomain: f64,
    unresolved_fqdn: f64,
}

#[derive(Debug, Serialize)]
struct ExcessShareOut {
    #[serde(rename = "MX")]
    mx: f64,
    #[serde(rename = "PTR")]
    ptr: f64,
    unresolved_fqdn: f64,
    /// Of the excess answers.
    nxdomain: f64,
}

#[derive(Debug, Serialize)]
struct SmtpEvidenceOut<'a> {
    connections: u64,
    mail_from: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    alpha: Option<f64>,
    user_unknown: u64,
    rcpt_rejected: u64,
    outbound: u64,
    distinct_clients: u64,
    user_unknown_baseline_ps: f64,
    outbound_baseline_ps: f64,
    sample_recipients: &'a [String],
    /// The incident's top SMTP clients of this server, most sessions first.
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    top_peers: Vec<PeerOut>,
}

#[derive(Debug, Serialize)]
pub struct PeerOut {
    pub ip: String,
    pub sessions: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl<'a> EvidenceOut<'a> {
    pub fn of(e: &'a Evidence) -> Self {
        let t = &e.totals;
        let x = &e.excess;
        EvidenceOut {
            window_seconds: e.window_seconds,
            queries: t.dns.queries,
            rate_qps: round4(e.rate_qps),
            baseline_qps: round4(e.baseline_qps),
            ratio: round4(e.rate_qps / e.baseline_qps),
            qtype: QtypeBucket::ALL
                .iter()
                .map(|q| (q.name(), t.dns.qtype(*q)))
                .collect(),
            mx_share: round4(t.mx_share()),
            nxdomain: t.nxdomain(),
            nxdomain_share: round4(t.nxdomain_share()),
            unresolved_fqdn: t.dns.unresolved_fqdn,
            unresolved_share: round4(t.unresolved_share()),
            unresolved_nxdomain: t.dns.unresolved_nxdomain,
            r2_total_vs_unresolved: e.r2_total_vs_unresolved.map(round4),
            local_domain: e.local_domain.as_deref(),
            sample_names: &e.sample_names,
            distinct_mx_names: t.dns.distinct_mx_names,
            smtp: SmtpEvidenceOut {
                connections: t.smtp.connections,
                mail_from: t.smtp.mail_from,
                alpha: t.smtp.alpha().map(round4),
                user_unknown: t.smtp.user_unknown,
                rcpt_rejected: t.smtp.rcpt_rejected,
                outbound: t.smtp.outbound,
                distinct_clients: t.distinct_smtp_clients_max,
                user_unknown_baseline_ps: round4(e.user_unknown_baseline_ps),
                outbound_baseline_ps: round4(e.outbound_baseline_ps),
                sample_recipients: &e.sample_recipients,
                top_peers: e
                    .smtp_peers
                    .iter()
                    .map(|(ip, n)| PeerOut {
                        ip: ip.to_string(),
                        sessions: *n,
                    })
                    .collect(),
            },
            expected: ExpectedOut {
                queries: round4(x.total.expected),
                mx: round4(x.mx.expected),
                a: round4(x.a.expected),
                ptr: round4(x.ptr.expected),
                nxdomain: round4(x.nxdomain.expected),
                unresolved_fqdn: round4(x.unresolved.expected),
            },
            log10_p: (x.total.log10_p() * 100.0).round() / 100.0,
            excess_share: ExcessShareOut {
                mx: round4(x.share(&x.mx)),
                ptr: round4(x.share(&x.ptr)),
                unresolved_fqdn: round4(x.share(&x.unresolved)),
                nxdomain: round4(x.nxdomain_share()),
            },
            warmup: e.warmup,
            related_alerts: &e.related_alerts,
            spoofed_source_flood: e.flood.as_ref().map(|f| FloodOut {
                suppressed_starts: f.suppressed_starts,
                suppressed_lines: f.suppressed_lines,
                suppressed_total: f.suppressed_total,
                warmup_clients: f.warmup_clients,
                by_rule: f.by_rule.iter().copied().collect(),
                sample_sources: f.sample_sources.iter().map(|i| i.to_string()).collect(),
            }),
        }
    }
}

/// The `event.type` of a phase.
pub fn phase_name(p: Phase) -> &'static str {
    match p {
        Phase::Start => "start",
        Phase::Info => "info",
        Phase::End => "end",
    }
}

impl<'a> AlertLine<'a> {
    pub fn of(a: &'a Alert, observer: &'a Observer<'a>) -> Self {
        AlertLine {
            timestamp: rfc3339_micros(a.ts),
            event: Event {
                kind: "alert",
                dataset: "mxwatch.detection",
                kind_of: Some([phase_name(a.phase)]),
                start: rfc3339_micros(a.start),
                end: rfc3339_micros(a.end),
                severity: Some(a.rule.severity),
                reason: Some(reason(a).into()),
            },
            observer,
            rule: RuleOut {
                name: a.rule.name,
                id: a.rule.id,
            },
            source: Ip {
                ip: a.ip.to_string(),
            },
            destination: a.server.map(|s| Ip { ip: s.to_string() }),
            mxwatch: AlertBody {
                schema_version: SCHEMA_VERSION,
                alert_id: &a.alert_id,
                sensors: &a.sensors,
                evidence: EvidenceOut::of(&a.evidence),
            },
        }
    }
}
