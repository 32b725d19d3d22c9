//! Events handed from the capture thread to the classifier shards.
//!
//! The capture thread decodes link, IP and transport layers and reassembles TCP
//! streams; it hands over compact owned events in batches. DNS payload bytes
//! (at most [`DNS_COPY_MAX`] of them: header and question live at the front) are
//! copied into the batch's byte arena, so a batch is two allocations reused over
//! and over, never one per packet.

use std::net::IpAddr;

use crate::smtp::SmtpEvent;

/// Bytes of a DNS message kept for the classifier: the 12-byte header plus a
/// question (name <= 255 octets, RFC 1035 §2.3.4, plus type and class) fits.
pub const DNS_COPY_MAX: usize = 12 + 255 + 4 + 1;

/// Packet time: microseconds since the Unix epoch.
pub type Micros = i64;

/// A DNS message seen on the wire, not yet parsed beyond its transport.
#[derive(Debug, Clone, Copy)]
pub struct RawDns {
    pub ts: Micros,
    /// The side that is not port 53 (or the querier when both are).
    pub client: IpAddr,
    pub server: IpAddr,
    pub client_port: u16,
    pub tcp: bool,
    /// From an input that never shows responses (BIND's query log).
    pub query_only: bool,
    /// Range of the copied bytes in the batch arena.
    pub start: u32,
    pub len: u16,
}

#[derive(Debug, Clone)]
pub enum Event {
    Dns(RawDns),
    Smtp(SmtpEvent),
}

/// A batch of events for one shard plus the bytes they refer to.
#[derive(Debug, Default)]
pub struct Batch {
    pub events: Vec<Event>,
    pub arena: Vec<u8>,
}

impl Batch {
    pub fn with_capacity(events: usize) -> Self {
        Batch {
            events: Vec::with_capacity(events),
            arena: Vec::with_capacity(events * 64),
        }
    }

    pub fn len(&self) -> usize {
        self.events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.events.is_empty()
    }

    /// Copies the head of a DNS payload into the arena and returns its range.
    pub fn push_dns_bytes(&mut self, payload: &[u8]) -> (u32, u16) {
        let keep = payload.len().min(DNS_COPY_MAX);
        let start = self.arena.len() as u32;
        self.arena.extend_from_slice(&payload[..keep]);
        (start, keep as u16)
    }

    pub fn dns_bytes(&self, d: &RawDns) -> &[u8] {
        &self.arena[d.start as usize..d.start as usize + d.len as usize]
    }

    pub fn clear(&mut self) {
        self.events.clear();
        self.arena.clear();
    }
}
