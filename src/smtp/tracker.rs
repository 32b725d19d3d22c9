//! Flow table: TCP segments on port 25 -> per-flow sessions -> events.
//!
//! Place: the entry point of the SMTP stage (see the module doc in
//! `smtp/mod.rs`). A flow is keyed by its two endpoints in a fixed order, so
//! both directions find it. Flows are created by a SYN to port 25, by a
//! SYN-ACK from port 25, or by the first payload of a flow never seen opening
//! (mid-stream pickup). The table is bounded: at `max_flows` the oldest flow
//! (by creation, preferring the most idle of the few oldest) is evicted,
//! counted; [`SmtpTracker::expire`] drops idle
//! flows. Eviction order is kept in a queue with lazy deletion, so inserting
//! is O(1) amortised and the result never depends on hash order.

use std::collections::VecDeque;

use crate::FastMap;
use std::net::IpAddr;

use super::session::{Ctx, Session};
use super::stream::{HalfStream, HoldCap};
use super::{SMTP_PORT, SmtpEvent, SmtpEventKind, SmtpLimits, SmtpStats, TcpSegment};

type Endpoint = (IpAddr, u16);

/// How many of the oldest flows are looked at when the table is full: the
/// most idle of them goes. Small enough to keep inserting O(1), large
/// enough that a long, busy session is rarely the one evicted.
const EVICTION_CANDIDATES: usize = 8;

/// Both endpoints, lower first: the same key for either direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct FlowKey {
    lo: Endpoint,
    hi: Endpoint,
}

impl FlowKey {
    fn of(seg: &TcpSegment<'_>) -> Self {
        let (a, b) = ((seg.src, seg.src_port), (seg.dst, seg.dst_port));
        if a <= b {
            Self { lo: a, hi: b }
        } else {
            Self { lo: b, hi: a }
        }
    }

    /// The server of a flow not seen opening: the end on port 25; when both
    /// ends use port 25, the lower endpoint (a fixed, documented choice).
    fn server_without_syn(&self) -> Endpoint {
        if self.lo.1 == SMTP_PORT {
            self.lo
        } else {
            self.hi
        }
    }
}

#[derive(Debug)]
struct Flow {
    server: Endpoint,
    client: Endpoint,
    /// ISN of the client's SYN, when seen (tells a retransmitted SYN from a
    /// new connection on the same 4-tuple).
    client_isn: Option<u32>,
    to_server: HalfStream,
    to_client: HalfStream,
    session: Session,
    last_seen_micros: i64,
    /// Creation number, to match entries of the eviction queue.
    generation: u64,
    fin_to_server: bool,
    fin_to_client: bool,
}

impl Flow {
    fn discard(&mut self, stats: &mut SmtpStats) {
        self.to_server.discard_held(stats);
        self.to_client.discard_held(stats);
    }

    /// An ACK from one side: gaps before it in the other direction are
    /// capture losses.
    fn on_ack(&mut self, to_server: bool, ack: u32, ctx: &mut Ctx<'_>, stats: &mut SmtpStats) {
        // A segment to the server acknowledges the server's data.
        let acked_is_to_server = !to_server;
        let stream = if acked_is_to_server {
            &mut self.to_server
        } else {
            &mut self.to_client
        };
        let session = &mut self.session;
        stream.acked(ack, stats, &mut |chunk, stats| {
            session.on_chunk(acked_is_to_server, chunk, ctx, stats);
        });
    }

    fn feed(
        &mut self,
        to_server: bool,
        seq: u32,
        payload: &[u8],
        limits: &SmtpLimits,
        ctx: &mut Ctx<'_>,
        stats: &mut SmtpStats,
    ) {
        let (stream, other) = if to_server {
            (&mut self.to_server, &self.to_client)
        } else {
            (&mut self.to_client, &self.to_server)
        };
        let cap = HoldCap {
            max_bytes: limits
                .max_ooo_bytes_per_flow
                .saturating_sub(other.held_bytes()),
            max_segments: limits.max_ooo_segments_per_direction,
        };
        if !stream.is_started() {
            self.session.pick_up(to_server, payload, stats);
        }
        let session = &mut self.session;
        stream.push(seq, payload, cap, stats, &mut |chunk, stats| {
            session.on_chunk(to_server, chunk, ctx, stats);
        });
    }
}

/// The SMTP stage: one per pipeline shard, driven by packet time.
#[derive(Debug)]
pub struct SmtpTracker {
    limits: SmtpLimits,
    flows: FastMap<FlowKey, Flow>,
    /// Flows in creation order (lazily cleaned: an entry whose generation
    /// no longer matches is skipped).
    creation_order: VecDeque<(FlowKey, u64)>,
    next_generation: u64,
    stats: SmtpStats,
}

impl SmtpTracker {
    pub fn new(limits: SmtpLimits) -> Self {
        Self {
            limits,
            flows: FastMap::default(),
            creation_order: VecDeque::new(),
            next_generation: 0,
            stats: SmtpStats::default(),
        }
    }

    pub fn stats(&self) -> SmtpStats {
        self.stats
    }

    /// Flows currently tracked (never more than `max_flows`).
    pub fn flow_count(&self) -> usize {
        self.flows.len()
    }

    /// Take one segment (any segment; those without port 25 are ignored).
    /// `ts_micros` is the packet time in microseconds since the epoch.
    pub fn on_segment(&mut self, ts_micros: i64, seg: &TcpSegment<'_>, out: &mut Vec<SmtpEvent>) {
        if seg.src_port != SMTP_PORT && seg.dst_port != SMTP_PORT {
            return;
        }
        self.stats.segments += 1;
        let key = FlowKey::of(seg);
        if seg.syn && !seg.ack_flag {
            if seg.dst_port != SMTP_PORT {
                return;
            }
            self.on_syn(ts_micros, key, seg, out);
        } else if seg.syn && !self.flows.contains_key(&key) && seg.src_port == SMTP_PORT {
            // SYN-ACK of a flow whose SYN was not seen (server-side capture).
            let client = (seg.dst, seg.dst_port);
            self.insert_flow(key, (seg.src, seg.src_port), client, None, true);
        } else if !self.flows.contains_key(&key) {
            if seg.payload.is_empty() {
                return;
            }
            let server = key.server_without_syn();
            let client = if server == key.lo { key.hi } else { key.lo };
            self.insert_flow(key, server, client, None, false);
            self.stats.flows_midstream += 1;
        }
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        flow.last_seen_micros = ts_micros;
        let to_server = (seg.dst, seg.dst_port) == flow.server;
        let data_seq = if seg.syn {
            seg.seq.wrapping_add(1)
        } else {
            seg.seq
        };
        if seg.syn && seg.ack_flag && !to_server && !flow.to_client.is_started() {
            flow.to_client.start_at(data_seq, &mut self.stats);
        }
        if seg.fin {
            let fin_seq = data_seq.wrapping_add(seg.payload.len() as u32);
            if to_server {
                flow.to_server.saw_fin(fin_seq);
            } else {
                flow.to_client.saw_fin(fin_seq);
            }
        }
        if !flow.session.is_encrypted() {
            let mut ctx = Ctx {
                ts_micros,
                server: flow.server.0,
                client: flow.client.0,
                out,
            };
            // The ACK first: what the peer had received comes before its data.
            if seg.ack_flag {
                flow.on_ack(to_server, seg.ack, &mut ctx, &mut self.stats);
            }
            if !seg.payload.is_empty() {
                let limits = self.limits;
                flow.feed(
                    to_server,
                    data_seq,
                    seg.payload,
                    &limits,
                    &mut ctx,
                    &mut self.stats,
                );
            }
        }
        self.on_close_flags(key, seg, to_server);
    }

    /// Evict flows with no segment since `now_micros - idle_timeout_micros`.
    pub fn expire(&mut self, now_micros: i64) {
        let cutoff = now_micros.saturating_sub(self.limits.idle_timeout_micros);
        let stats = &mut self.stats;
        self.flows.retain(|_, flow| {
            let keep = flow.last_seen_micros >= cutoff;
            if !keep {
                stats.flows_expired += 1;
                flow.discard(stats);
            }
            keep
        });
        self.compact_order();
    }

    fn on_syn(
        &mut self,
        ts_micros: i64,
        key: FlowKey,
        seg: &TcpSegment<'_>,
        out: &mut Vec<SmtpEvent>,
    ) {
        let client = (seg.src, seg.src_port);
        if let Some(flow) = self.flows.get_mut(&key) {
            if flow.client_isn == Some(seg.seq) && flow.client == client {
                self.stats.syn_retransmits += 1;
                return;
            }
            // A new connection on the same 4-tuple: the old one is over.
            self.remove_flow(key);
            self.stats.flows_closed += 1;
        }
        let server = (seg.dst, seg.dst_port);
        self.insert_flow(key, server, client, Some(seg.seq), true);
        self.stats.sessions += 1;
        for (kind, ip, peer) in [
            (SmtpEventKind::SessionStart, seg.dst, seg.src),
            (SmtpEventKind::OutboundSessionStart, seg.src, seg.dst),
        ] {
            out.push(SmtpEvent {
                ts_micros,
                ip,
                peer,
                kind,
            });
        }
    }

    fn on_close_flags(&mut self, key: FlowKey, seg: &TcpSegment<'_>, to_server: bool) {
        let Some(flow) = self.flows.get_mut(&key) else {
            return;
        };
        if seg.fin {
            if to_server {
                flow.fin_to_server = true;
            } else {
                flow.fin_to_client = true;
            }
        }
        let nothing_held = flow.to_server.held_bytes() == 0 && flow.to_client.held_bytes() == 0;
        if seg.rst || (flow.fin_to_server && flow.fin_to_client && nothing_held) {
            self.remove_flow(key);
            self.stats.flows_closed += 1;
        }
    }

    fn insert_flow(
        &mut self,
        key: FlowKey,
        server: Endpoint,
        client: Endpoint,
        client_isn: Option<u32>,
        expect_banner: bool,
    ) {
        while self.flows.len() >= self.limits.max_flows.max(1) {
            if !self.evict_oldest() {
                break;
            }
        }
        let mut to_server = HalfStream::default();
        if let Some(isn) = client_isn {
            to_server.start_at(isn.wrapping_add(1), &mut self.stats);
        }
        let generation = self.next_generation;
        self.next_generation += 1;
        let flow = Flow {
            server,
            client,
            client_isn,
            to_server,
            to_client: HalfStream::default(),
            session: Session::new(self.limits.max_line_len, expect_banner),
            last_seen_micros: i64::MIN,
            generation,
            fin_to_server: false,
            fin_to_client: false,
        };
        self.flows.insert(key, flow);
        self.creation_order.push_back((key, generation));
        self.stats.flows_created += 1;
        if self.creation_order.len() > 2 * self.flows.len() + 64 {
            self.compact_order();
        }
    }

    /// Evict one flow: among the [`EVICTION_CANDIDATES`] oldest, the one
    /// idle the longest (the oldest on a tie); false when there is none.
    fn evict_oldest(&mut self) -> bool {
        let flows = &self.flows;
        let is_live = |(key, generation): &(FlowKey, u64)| {
            flows.get(key).is_some_and(|f| f.generation == *generation)
        };
        while self
            .creation_order
            .front()
            .is_some_and(|entry| !is_live(entry))
        {
            self.creation_order.pop_front();
        }
        let victim = self
            .creation_order
            .iter()
            .take(EVICTION_CANDIDATES)
            .filter(|entry| is_live(entry))
            .min_by_key(|(key, _)| flows.get(key).map_or(i64::MIN, |f| f.last_seen_micros))
            .map(|(key, _)| *key);
        let Some(key) = victim else {
            return false;
        };
        self.remove_flow(key);
        self.stats.flows_evicted += 1;
        true
    }

    fn remove_flow(&mut self, key: FlowKey) {
        if let Some(mut flow) = self.flows.remove(&key) {
            flow.discard(&mut self.stats);
        }
    }

    fn compact_order(&mut self) {
        let flows = &self.flows;
        self.creation_order.retain(|(key, generation)| {
            flows.get(key).is_some_and(|f| f.generation == *generation)
        });
    }
}
