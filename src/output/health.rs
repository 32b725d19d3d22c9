//! `mxwatch.capture_stats` lines: sensor health, per source, cumulative.

use serde::Serialize;

use super::lines::OutputStat;
use super::schema::{
    CaptureOut, CaptureStatsBody, CaptureStatsLine, ChannelDropsOut, DecodeErrorsOut, DnsHealthOut,
    Event, EvictionsOut, LibpcapOut, Observer, SCHEMA_VERSION, SkippedOut, ThreadOut,
};
use crate::classify::ShardStats;
use crate::decode::DecodeStats;
use crate::smtp::SmtpStats;
use crate::time::rfc3339_micros;

/// What the classifiers reported (summed over shards).
#[derive(Debug, Default, Clone, Copy, Serialize)]
pub struct ClassifierHealth {
    pub shards: ShardStats,
    pub clients_tracked: usize,
    /// Live: client records (client_stats lines) and alerts dropped because
    /// the output was behind (its queue is bounded).
    pub output_dropped_records: u64,
    pub output_dropped_alerts: u64,
}

impl ClassifierHealth {
    pub fn add(&mut self, o: &ClassifierHealth) {
        self.shards.add(&o.shards);
        self.clients_tracked += o.clients_tracked;
    }
}

/// Numbers of the capture side of one source at one moment.
#[derive(Debug, Clone)]
pub struct CaptureSnapshot {
    pub mode: &'static str,
    pub interface: Option<String>,
    pub files: Vec<String>,
    pub is_final: bool,
    pub first_ts: i64,
    pub ts: i64,
    pub decode: DecodeStats,
    pub smtp: SmtpStats,
    pub libpcap: Option<LibpcapOut>,
    pub dropped_batches: u64,
    pub dropped_events: u64,
    /// Live only: (batches, frames) dropped between capture and decoder.
    pub dropped_frames: Option<(u64, u64)>,
    /// Non-frame inputs (dnstap, logs): records, events, malformed by reason.
    pub inputs: Vec<crate::input::InputStats>,
    /// Live with several capture threads per interface: each thread's share.
    pub threads: Vec<ThreadOut>,
}

impl CaptureSnapshot {
    /// Adds the capture-side numbers of another front's view of the same
    /// source (a capture thread's decoder): decode and SMTP counters,
    /// classifier-channel drops. libpcap's and the frame queue's are the
    /// caller's (per handle).
    pub fn absorb(&mut self, o: &CaptureSnapshot) {
        self.decode.add(&o.decode);
        self.smtp.add(&o.smtp);
        self.dropped_batches += o.dropped_batches;
        self.dropped_events += o.dropped_events;
    }
}

pub fn line<'a>(
    snap: &'a CaptureSnapshot,
    h: &ClassifierHealth,
    observer: &'a Observer<'a>,
    outputs: &'a [OutputStat],
) -> CaptureStatsLine<'a> {
    let d = &snap.decode;
    let s = &h.shards;
    CaptureStatsLine {
        timestamp: rfc3339_micros(snap.ts),
        event: Event {
            kind: "metric",
            dataset: "mxwatch.capture_stats",
            kind_of: None,
            start: rfc3339_micros(snap.first_ts),
            end: rfc3339_micros(snap.ts),
            severity: None,
            reason: None,
        },
        observer,
        mxwatch: CaptureStatsBody {
            schema_version: SCHEMA_VERSION,
            capture: CaptureOut {
                mode: snap.mode,
                interface: snap.interface.as_deref(),
                files: snap.files.clone(),
                is_final: snap.is_final,
                packets_read: d.packets,
                packets_decoded: d.decoded,
                libpcap: snap.libpcap,
                truncated: d.truncated,
                decode_errors: DecodeErrorsOut {
                    link: d.decode_errors.link,
                    ip: d.decode_errors.ip,
                    transport: d.decode_errors.transport,
                    dns_short_header: s.dns_short_header,
                    dns_bad_name: s.dns_bad_name,
                },
                skipped: SkippedOut {
                    not_ip: d.not_ip,
                    other_transport: d.other_transport,
                    other_ports: d.other_ports,
                    later_fragments: d.later_fragments,
                },
                ip_fragments: d.ip_fragments,
                dns: DnsHealthOut {
                    messages: s.dns_messages,
                    partial: d.dns_partial,
                    no_question: s.dns_no_question,
                    unsolicited_responses: s.dns_unsolicited_responses,
                    tcp_gaps: d.tcp_dns_gaps,
                    out_of_order_events: s.out_of_order_events,
                },
                smtp: snap.smtp,
                channel_drops: ChannelDropsOut {
                    output_client_stats: h.output_dropped_records,
                    output_alerts: h.output_dropped_alerts,
                    batches: snap.dropped_batches,
                    events: snap.dropped_events,
                    frame_batches: snap.dropped_frames.map(|d| d.0),
                    frames: snap.dropped_frames.map(|d| d.1),
                },
                evictions: EvictionsOut {
                    clients: s.clients_evicted,
                    clients_protected: s.clients_protected_evicted,
                    clients_promoted: s.clients_promoted,
                    client_overflow_events: s.clients_overflow_events,
                    pending_queries: s.pending_evicted,
                    tcp_dns_flows: d.tcp_dns_flows_evicted,
                    smtp_flows: snap.smtp.flows_evicted,
                    learn_candidates: s.learn_candidates_dropped,
                },
                clients_tracked: h.clients_tracked,
                inputs: &snap.inputs,
                threads: &snap.threads,
            },
            outputs: outputs.iter().map(|o| (o.name.as_str(), o)).collect(),
        },
    }
}
