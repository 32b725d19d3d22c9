//! Serialization-only types of the JSON lines (see `SCHEMA.md`).
//!
//! Field names follow ECS where one exists; ours live under `mxwatch.`.
//! Nothing here is state: `classify` and `detect` own the counters, these
//! types only borrow or copy them for writing. The alert line is in
//! `alert`, the capture_stats line assembled in `health`.

use std::collections::BTreeMap;

use serde::Serialize;

use crate::classify::{ClientRecord, DnsCounts, SmtpCounts};
use crate::dns::{QtypeBucket, RcodeBucket};

/// Bumped on any incompatible change of a field's name, type or meaning.
pub const SCHEMA_VERSION: &str = "1.1";

#[derive(Debug, Serialize)]
pub struct Observer<'a> {
    pub name: &'a str,
    pub product: &'static str,
    pub vendor: &'static str,
    pub version: &'static str,
    #[serde(rename = "type")]
    pub kind: &'static str,
}

impl<'a> Observer<'a> {
    pub fn new(name: &'a str) -> Self {
        Observer {
            name,
            product: "mxwatch",
            vendor: "mxwatch",
            version: env!("CARGO_PKG_VERSION"),
            kind: "sensor",
        }
    }
}

#[derive(Debug, Serialize)]
pub struct Event<'a> {
    pub kind: &'static str,
    pub dataset: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[serde(rename = "type")]
    pub kind_of: Option<[&'static str; 1]>,
    pub start: String,
    pub end: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub severity: Option<u8>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<std::borrow::Cow<'a, str>>,
}

#[derive(Debug, Serialize)]
pub struct Ip {
    pub ip: String,
}

#[derive(Debug, Serialize)]
pub struct ClientStatsLine<'a> {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub event: Event<'a>,
    pub observer: &'a Observer<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<Ip>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub destination: Option<Ip>,
    pub mxwatch: ClientStatsBody,
}

#[derive(Debug, Serialize)]
pub struct ClientStatsBody {
    pub schema_version: &'static str,
    pub bin_seconds: f64,
    pub dns: DnsOut,
    pub smtp: SmtpOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub local_domain: Option<String>,
    /// Only on the folded line: how many clients it sums.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub folded_clients: Option<u64>,
}

#[derive(Debug, Serialize)]
pub struct DnsOut {
    pub queries: u64,
    pub qtype: BTreeMap<&'static str, u64>,
    /// `null` (absent) when every query came from an input without
    /// responses (BIND's query log); so are `rcode`, `unresolved_nxdomain`
    /// and `unanswered`.
    pub responses: Option<u64>,
    pub rcode: Option<BTreeMap<&'static str, u64>>,
    pub unresolved_fqdn: u64,
    pub unresolved_nxdomain: Option<u64>,
    pub unanswered: Option<u64>,
    pub udp: u64,
    pub tcp: u64,
    pub distinct_names: u64,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub distinct_names_capped: bool,
    /// Distinct MX query names (recipient domains); absent when none.
    #[serde(skip_serializing_if = "is_zero")]
    pub distinct_mx_names: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl From<&DnsCounts> for DnsOut {
    fn from(c: &DnsCounts) -> Self {
        let have = !c.responses_absent();
        DnsOut {
            queries: c.queries,
            qtype: QtypeBucket::ALL
                .iter()
                .map(|b| (b.name(), c.qtype(*b)))
                .collect(),
            responses: have.then_some(c.responses),
            rcode: have.then(|| {
                RcodeBucket::ALL
                    .iter()
                    .map(|b| (b.name(), c.rcode(*b)))
                    .collect()
            }),
            unresolved_fqdn: c.unresolved_fqdn,
            unresolved_nxdomain: have.then_some(c.unresolved_nxdomain),
            unanswered: have.then_some(c.unanswered),
            udp: c.udp,
            tcp: c.tcp,
            distinct_names: c.distinct_names,
            distinct_names_capped: c.distinct_names_capped,
            distinct_mx_names: c.distinct_mx_names,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct SmtpOut {
    pub connections: u64,
    pub mail_from: u64,
    pub null_sender: u64,
    pub rcpt: u64,
    pub rcpt_rejected: u64,
    pub user_unknown: u64,
    pub outbound: u64,
    pub distinct_clients: u64,
    pub encrypted: u64,
    /// connections / mail_from; absent without MAIL FROM.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alpha: Option<f64>,
}

impl From<&SmtpCounts> for SmtpOut {
    fn from(c: &SmtpCounts) -> Self {
        SmtpOut {
            connections: c.connections,
            mail_from: c.mail_from,
            null_sender: c.null_sender,
            rcpt: c.rcpt,
            rcpt_rejected: c.rcpt_rejected,
            user_unknown: c.user_unknown,
            outbound: c.outbound,
            distinct_clients: c.distinct_clients,
            encrypted: c.encrypted,
            alpha: c.alpha().map(round4),
        }
    }
}

pub fn round4(x: f64) -> f64 {
    (x * 10_000.0).round() / 10_000.0
}

impl ClientStatsBody {
    pub fn of(r: &ClientRecord, bin_seconds: f64) -> Self {
        ClientStatsBody {
            schema_version: SCHEMA_VERSION,
            bin_seconds,
            dns: (&r.bin.dns).into(),
            smtp: (&r.bin.smtp).into(),
            local_domain: r.local_domain.as_deref().map(str::to_owned),
            folded_clients: None,
        }
    }
}

/// `mxwatch.capture_stats`: sensor health, per source, cumulative.
#[derive(Debug, Serialize)]
pub struct CaptureStatsLine<'a> {
    #[serde(rename = "@timestamp")]
    pub timestamp: String,
    pub event: Event<'a>,
    pub observer: &'a Observer<'a>,
    pub mxwatch: CaptureStatsBody<'a>,
}

#[derive(Debug, Serialize)]
pub struct CaptureStatsBody<'a> {
    pub schema_version: &'static str,
    pub capture: CaptureOut<'a>,
    /// Per output (by name), when outputs are configured: lines, sent, dropped, queued.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub outputs: BTreeMap<&'a str, &'a super::lines::OutputStat>,
}

#[derive(Debug, Serialize)]
pub struct CaptureOut<'a> {
    /// "file" or "live".
    pub mode: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub interface: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<String>,
    /// true on the last line of a run.
    #[serde(rename = "final")]
    pub is_final: bool,
    pub packets_read: u64,
    pub packets_decoded: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub libpcap: Option<LibpcapOut>,
    pub truncated: crate::decode::ByLayer,
    pub decode_errors: DecodeErrorsOut,
    pub skipped: SkippedOut,
    /// IP reassembly of UDP datagrams (counters and the table's size now).
    pub ip_fragments: crate::decode::defrag::DefragStats,
    pub dns: DnsHealthOut,
    pub smtp: crate::smtp::SmtpStats,
    pub channel_drops: ChannelDropsOut,
    pub evictions: EvictionsOut,
    pub clients_tracked: usize,
    /// dnstap and log inputs, one entry each (absent when there are none).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub inputs: &'a [crate::input::InputStats],
    /// Live with `--threads N` > 1: each capture thread's share of this
    /// interface's numbers (absent with one thread).
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    pub threads: &'a [ThreadOut],
}

/// One capture thread of an interface (`live --threads N`): its libpcap
/// handle's counters and what its decoder read; the interface's own fields
/// are the sums over its threads.
#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct ThreadOut {
    pub thread: usize,
    pub packets_read: u64,
    pub packets_decoded: u64,
    pub libpcap: LibpcapOut,
    pub channel_drops: ThreadDropsOut,
}

#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct ThreadDropsOut {
    /// Frame batches / frames dropped between this thread and its decoder.
    pub frame_batches: u64,
    pub frames: u64,
    /// Event batches / events its decoder dropped on a full classifier queue.
    pub batches: u64,
    pub events: u64,
}

#[derive(Debug, Serialize, Default, Clone, Copy)]
pub struct LibpcapOut {
    pub received: u64,
    pub dropped: u64,
    pub if_dropped: u64,
    pub received_delta: u64,
    pub dropped_delta: u64,
    pub if_dropped_delta: u64,
}

#[derive(Debug, Serialize)]
pub struct DecodeErrorsOut {
    pub link: u64,
    pub ip: u64,
    pub transport: u64,
    pub dns_short_header: u64,
    pub dns_bad_name: u64,
}

#[derive(Debug, Serialize)]
pub struct SkippedOut {
    pub not_ip: u64,
    pub other_transport: u64,
    pub other_ports: u64,
    pub later_fragments: u64,
}

#[derive(Debug, Serialize)]
pub struct DnsHealthOut {
    pub messages: u64,
    pub partial: u64,
    pub no_question: u64,
    pub unsolicited_responses: u64,
    pub tcp_gaps: u64,
    pub out_of_order_events: u64,
}

#[derive(Debug, Serialize)]
pub struct ChannelDropsOut {
    /// Event batches the decoder dropped because a classifier's queue was full.
    pub batches: u64,
    pub events: u64,
    /// Live only: frame batches the capture thread dropped because the
    /// decoder's queue was full, and the frames in them.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frame_batches: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub frames: Option<u64>,
    /// Live: client records (client_stats lines, before `--top` folding) and
    /// alert lines dropped because the output queue was full (a stuck writer).
    pub output_client_stats: u64,
    pub output_alerts: u64,
}

#[derive(Debug, Serialize)]
pub struct EvictionsOut {
    pub clients: u64,
    /// Of `clients`, those with history (the client table's protected segment).
    pub clients_protected: u64,
    /// Clients promoted from probation to protected.
    pub clients_promoted: u64,
    pub client_overflow_events: u64,
    pub pending_queries: u64,
    pub tcp_dns_flows: u64,
    pub smtp_flows: u64,
    pub learn_candidates: u64,
}
