//! Capture-side decoding: frames -> events.
//!
//! Runs in the capture thread. [`link`] turns a frame into addresses, ports
//! and a payload (etherparse lives there only); this module picks DNS (UDP or
//! TCP port 53) and SMTP (TCP port 25), reassembles fragmented UDP datagrams
//! ([`defrag`]: a datagram is handed on once, whole, or from its first fragment
//! when it never completes) and DNS over TCP ([`tcp_dns`]), runs the SMTP tracker, and hands compact events to an
//! [`EventSink`]. DNS payloads are not parsed here: only their head is copied,
//! and the classifier shards parse them, which spreads the work over cores.
//! Every frame is counted once in [`DecodeStats`], by what happened to it.

pub mod defrag;
mod fast;
pub mod link;
pub mod tcp_dns;

use std::net::IpAddr;

use serde::Serialize;

use crate::smtp::{SmtpEvent, SmtpLimits, SmtpTracker};

use defrag::{DefragLimits, DefragStats, Reassembler, Released};
use link::{Decoded, Layer, LinkType, Skip, Transport};
use tcp_dns::TcpDnsReassembler;

pub use crate::packet::TcpSegment;

pub const DNS_PORT: u16 = 53;
pub const SMTP_PORT: u16 = 25;

/// A DNS message found on the wire, before parsing.
#[derive(Debug, Clone, Copy)]
pub struct DnsSighting<'a> {
    pub ts: i64,
    pub client: IpAddr,
    pub server: IpAddr,
    pub client_port: u16,
    pub tcp: bool,
    /// The input never shows responses (a query log): nothing waits for one.
    pub query_only: bool,
    pub payload: &'a [u8],
}

/// Where the decoder's output goes (the pipeline's sharded batches, or a Vec in tests).
pub trait EventSink {
    fn dns(&mut self, d: &DnsSighting<'_>);
    fn smtp(&mut self, e: SmtpEvent);
}

/// Per-layer counts of frames that stopped there.
#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct ByLayer {
    pub link: u64,
    pub ip: u64,
    pub transport: u64,
}

impl ByLayer {
    pub fn add(&mut self, o: &ByLayer) {
        let ByLayer {
            link,
            ip,
            transport,
        } = *o;
        self.link += link;
        self.ip += ip;
        self.transport += transport;
    }

    fn bump(&mut self, l: Layer) {
        match l {
            Layer::Link => self.link += 1,
            Layer::Ip => self.ip += 1,
            Layer::Transport => self.transport += 1,
        }
    }
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct DecodeStats {
    /// Frames read from the source.
    pub packets: u64,
    /// Frames that carried DNS or SMTP and were handed on.
    pub decoded: u64,
    /// Frames cut short by the snaplen (caplen < wire length) that stopped
    /// before the transport payload, by layer.
    pub truncated: ByLayer,
    /// Malformed frames (not cut short), by layer.
    pub decode_errors: ByLayer,
    /// DNS messages handed on although cut short (snaplen or first fragment).
    pub dns_partial: u64,
    pub not_ip: u64,
    pub other_transport: u64,
    pub other_ports: u64,
    /// Non-first IP fragments not reassembled (not UDP, or cut by the snaplen).
    pub later_fragments: u64,
    /// UDP IP fragments and their reassembly (a fragment frame is counted
    /// here, not under `decoded` or `skipped`).
    pub ip_fragments: DefragStats,
    pub tcp_dns_gaps: u64,
    pub tcp_dns_flows_evicted: u64,
}

impl DecodeStats {
    /// Adds another decoder's counters (several capture threads on one
    /// interface). Every field, or this does not compile.
    pub fn add(&mut self, o: &DecodeStats) {
        let DecodeStats {
            packets,
            decoded,
            truncated,
            decode_errors,
            dns_partial,
            not_ip,
            other_transport,
            other_ports,
            later_fragments,
            ip_fragments,
            tcp_dns_gaps,
            tcp_dns_flows_evicted,
        } = o;
        self.packets += packets;
        self.decoded += decoded;
        self.truncated.add(truncated);
        self.decode_errors.add(decode_errors);
        self.dns_partial += dns_partial;
        self.not_ip += not_ip;
        self.other_transport += other_transport;
        self.other_ports += other_ports;
        self.later_fragments += later_fragments;
        self.ip_fragments.add(ip_fragments);
        self.tcp_dns_gaps += tcp_dns_gaps;
        self.tcp_dns_flows_evicted += tcp_dns_flows_evicted;
    }
}

/// Limits of the capture-side tables.
#[derive(Debug, Clone)]
pub struct DecodeLimits {
    /// DNS-over-TCP streams tracked at once (each holds at most one message head).
    pub max_tcp_dns_flows: usize,
    pub smtp: SmtpLimits,
    pub defrag: DefragLimits,
}

impl Default for DecodeLimits {
    fn default() -> Self {
        DecodeLimits {
            max_tcp_dns_flows: 10_000,
            smtp: SmtpLimits::default(),
            defrag: DefragLimits::default(),
        }
    }
}

pub struct Decoder {
    link: LinkType,
    tcp_dns: TcpDnsReassembler,
    smtp: SmtpTracker,
    smtp_out: Vec<SmtpEvent>,
    defrag: Reassembler,
    /// Packet time at which the fragment table has a datagram to time out
    /// (`i64::MAX` when empty): the one check a non-fragment frame pays.
    defrag_deadline: i64,
    stats: DecodeStats,
}

impl Decoder {
    pub fn new(link: LinkType, limits: DecodeLimits) -> Self {
        Decoder {
            link,
            tcp_dns: TcpDnsReassembler::new(limits.max_tcp_dns_flows),
            smtp: SmtpTracker::new(limits.smtp),
            smtp_out: Vec::new(),
            defrag: Reassembler::new(limits.defrag, |sport, dport| {
                sport == DNS_PORT || dport == DNS_PORT
            }),
            defrag_deadline: i64::MAX,
            stats: DecodeStats::default(),
        }
    }

    /// A new file may have another link type; flows carry over.
    pub fn set_link(&mut self, link: LinkType) {
        self.link = link;
    }

    pub fn stats(&self) -> DecodeStats {
        let mut s = self.stats;
        s.tcp_dns_gaps = self.tcp_dns.stats.gaps;
        s.tcp_dns_flows_evicted = self.tcp_dns.stats.flows_evicted;
        s.ip_fragments = self.defrag.stats();
        s
    }

    /// The input ended: hands on every datagram still being reassembled,
    /// from its first fragment (`ip_fragments.unfinished_at_end`).
    pub fn flush(&mut self, sink: &mut impl EventSink) {
        let stats = &mut self.stats;
        self.defrag.flush(&mut |r| release_datagram(stats, sink, r));
        self.defrag_deadline = i64::MAX;
    }

    pub fn smtp_tracker(&self) -> &SmtpTracker {
        &self.smtp
    }

    /// Drops idle TCP state (called on ticks, with packet time).
    pub fn expire(&mut self, now: i64) {
        self.tcp_dns.expire(now - 60_000_000);
        self.smtp.expire(now);
    }

    pub fn on_frame(&mut self, ts: i64, frame: &[u8], wire_len: u32, sink: &mut impl EventSink) {
        self.stats.packets += 1;
        if ts >= self.defrag_deadline {
            let stats = &mut self.stats;
            self.defrag
                .expire(ts, &mut |r| release_datagram(stats, sink, r));
            self.defrag_deadline = self.defrag.deadline();
        }
        let cut_short = (frame.len() as u64) < wire_len as u64;
        match link::decode(self.link, frame) {
            Decoded::Packet(Transport::Udp(u)) => {
                let Some(sighting) =
                    DnsSighting::new(ts, u.src, u.dst, u.src_port, u.dst_port, false, u.payload)
                else {
                    self.stats.other_ports += 1;
                    return;
                };
                self.stats.decoded += 1;
                if u.partial {
                    self.stats.dns_partial += 1;
                }
                sink.dns(&sighting);
            }
            Decoded::Packet(Transport::Tcp(seg, _partial)) => {
                if seg.src_port == SMTP_PORT || seg.dst_port == SMTP_PORT {
                    self.stats.decoded += 1;
                    self.smtp_out.clear();
                    self.smtp.on_segment(ts, &seg, &mut self.smtp_out);
                    for e in self.smtp_out.drain(..) {
                        sink.smtp(e);
                    }
                } else if seg.src_port == DNS_PORT || seg.dst_port == DNS_PORT {
                    self.stats.decoded += 1;
                    self.tcp_dns.on_segment(ts, &seg, |msg| {
                        let found = DnsSighting::new(
                            ts,
                            seg.src,
                            seg.dst,
                            seg.src_port,
                            seg.dst_port,
                            true,
                            msg,
                        );
                        if let Some(sighting) = found {
                            sink.dns(&sighting);
                        }
                    });
                } else {
                    self.stats.other_ports += 1;
                }
            }
            Decoded::Fragment(f) => {
                let stats = &mut self.stats;
                self.defrag
                    .add(ts, &f, &mut |r| release_datagram(stats, sink, r));
                self.defrag_deadline = self.defrag.deadline();
            }
            Decoded::Skip(Skip::NotIp) => self.stats.not_ip += 1,
            Decoded::Skip(Skip::OtherTransport) => self.stats.other_transport += 1,
            Decoded::Skip(Skip::LaterFragment) => self.stats.later_fragments += 1,
            Decoded::Stopped(layer) if cut_short => self.stats.truncated.bump(layer),
            Decoded::Stopped(layer) => self.stats.decode_errors.bump(layer),
        }
    }
}

/// A datagram the fragment table lets go of, as a DNS sighting: whole, or
/// its first fragment's bytes (then counted in `dns_partial`, like a first
/// fragment or a frame cut by the snaplen).
fn release_datagram(stats: &mut DecodeStats, sink: &mut impl EventSink, r: Released<'_>) {
    let Some(h) = r.udp.get(..8) else {
        stats.decode_errors.transport += 1;
        return;
    };
    let udp_len = usize::from(u16::from_be_bytes([h[4], h[5]]));
    if udp_len < 8 {
        stats.decode_errors.transport += 1;
        return;
    }
    let end = udp_len.min(r.udp.len());
    let sighting = DnsSighting::new(
        r.ts,
        r.src,
        r.dst,
        u16::from_be_bytes([h[0], h[1]]),
        u16::from_be_bytes([h[2], h[3]]),
        false,
        &r.udp[8..end],
    );
    if let Some(s) = sighting {
        if !r.whole || udp_len > r.udp.len() {
            stats.dns_partial += 1;
        }
        sink.dns(&s);
    }
}

impl<'a> DnsSighting<'a> {
    /// A DNS message between two endpoints, when one of them is port 53.
    /// The client is the side that is not port 53; when both are, the sender
    /// of a query (QR bit clear).
    #[allow(clippy::too_many_arguments)]
    fn new(
        ts: i64,
        src: IpAddr,
        dst: IpAddr,
        sport: u16,
        dport: u16,
        tcp: bool,
        payload: &'a [u8],
    ) -> Option<Self> {
        let response = payload.get(2).is_some_and(|b| b & 0x80 != 0);
        let to_server = match (sport == DNS_PORT, dport == DNS_PORT) {
            (false, true) => true,
            (true, false) => false,
            (true, true) => !response,
            (false, false) => return None,
        };
        let (client, server, client_port) = if to_server {
            (src, dst, sport)
        } else {
            (dst, src, dport)
        };
        Some(DnsSighting {
            ts,
            client,
            server,
            client_port,
            tcp,
            query_only: false,
            payload,
        })
    }
}
