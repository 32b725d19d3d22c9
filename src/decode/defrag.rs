//! IPv4 and IPv6 reassembly of fragmented UDP datagrams, bounded.
//!
//! **Place in the pipeline.** `link` turns a UDP IP fragment into a
//! [`Fragment`] (addresses, identification, offset, more-fragments flag and
//! its bytes); the decoder hands it here, and gets back, through a callback,
//! each datagram this table lets go of as a [`Released`] view: the UDP header
//! and what follows, either whole (every byte from 0 to the end seen) or, for
//! a datagram that never completed, its first contiguous run of bytes from
//! offset 0 (the first fragment: UDP header, DNS header and usually the
//! question). Unfragmented packets never come here (the fast path takes them
//! and this table costs them nothing).
//!
//! **Invariants.** A datagram is released at most once, so it is counted once:
//! whole when complete, or from its first fragment when the table gives up on
//! it (timeout, eviction, a limit passed, or the end of the input); never both.
//! Every table is capped by [`DefragLimits`] and every datagram dropped or
//! given up on is counted in [`DefragStats`] by why.
//!
//! **Overlap policy: first wins** (Suricata's `first` policy, the BSD-like
//! ones keep older data too): bytes already held are never overwritten; the
//! new fragment's bytes that fall on them are discarded and the fragment is
//! counted in `overlaps`, an anomaly (an evasion attempt or a broken stack).
//! The same for a second "last fragment" that claims another end, and for
//! bytes beyond the end already known: the earlier claim wins, counted.
//!
//! **Eviction is O(1) amortized.** Datagrams sit in a hash map and their keys
//! in an insertion-ordered queue with a sequence number; a key whose datagram
//! is gone (completed) is skipped lazily when it reaches the front, and the
//! queue is compacted when stale keys outnumber live ones. The oldest datagram
//! is the first to time out (timeout counts from its first fragment, in packet
//! time) and the first to go when the table or the byte budget is full.

use std::collections::VecDeque;
use std::net::IpAddr;

use serde::Serialize;

use crate::FastMap;

/// Limits of the fragment table (named in `config::DefragSection`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DefragLimits {
    /// Datagrams in progress at once.
    pub max_datagrams: usize,
    /// Bytes of one reassembled datagram (UDP header included).
    pub max_datagram_bytes: usize,
    /// Bytes held by the whole table (buffers and bookkeeping).
    pub max_total_bytes: usize,
    /// Fragments received for one datagram (duplicates included).
    pub max_fragments_per_datagram: usize,
    /// Microseconds of packet time from a datagram's first fragment.
    pub timeout_micros: i64,
}

impl Default for DefragLimits {
    fn default() -> Self {
        DefragLimits {
            max_datagrams: 4096,
            max_datagram_bytes: 65_535,
            max_total_bytes: 32 << 20,
            max_fragments_per_datagram: 512,
            timeout_micros: 30_000_000,
        }
    }
}

/// The largest datagram IP can carry: the IPv4 total length and the IPv6
/// payload length are 16 bits (RFC 791, RFC 8200; jumbograms cannot fragment).
pub const MAX_IP_DATAGRAM: u32 = 65_535;

/// Bookkeeping bytes charged per datagram on top of its buffers (the map
/// entry, the queue key, the struct): so that a flood of tiny fragments is
/// also held to `max_total_bytes`.
const ENTRY_OVERHEAD: usize = 160;

/// One UDP fragment as `link` decoded it, borrowed from the frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fragment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    /// IPv4 identification (16 bits) or IPv6 fragment identification (32 bits).
    pub id: u32,
    /// Offset of these bytes in the datagram, in bytes.
    pub offset: u32,
    /// More fragments follow (MF / M flag).
    pub more: bool,
    /// The fragment's bytes (the UDP header is in the one at offset 0).
    pub data: &'a [u8],
}

/// A datagram the table lets go of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Released<'a> {
    /// Packet time of the frame that completed it or made the table give up.
    pub ts: i64,
    pub src: IpAddr,
    pub dst: IpAddr,
    /// UDP header and payload from offset 0.
    pub udp: &'a [u8],
    /// Every byte of the datagram (else: its first fragment's run only).
    pub whole: bool,
}

#[derive(Debug, Default, Clone, Copy, Serialize, PartialEq, Eq)]
pub struct DefragStats {
    /// Frames that were UDP IP fragments, all handed to this table.
    pub fragments: u64,
    /// Datagrams reassembled whole and handed on.
    pub completed: u64,
    /// Datagrams given up after `timeout_secs` without their last bytes.
    pub timed_out: u64,
    /// Datagrams given up to stay under `max_datagrams` or `max_total_bytes` (oldest first).
    pub evicted: u64,
    /// Datagrams given up for passing `max_datagram_bytes` or
    /// `max_fragments_per_datagram`, and fragments ignored for ending past
    /// 65,535 bytes.
    pub over_limit: u64,
    /// Datagrams still incomplete when the input ended.
    pub unfinished_at_end: u64,
    /// Fragments that overlapped bytes already held, or contradicted the end
    /// already known (first wins; an anomaly).
    pub overlaps: u64,
    /// Incomplete datagrams handed on from their first fragment (of those
    /// timed out, evicted, over the limit or unfinished).
    pub first_fragment_fallbacks: u64,
    /// Datagrams whose first fragment showed ports this sensor does not read:
    /// their bytes were dropped at once, only their extent tracked.
    pub other_ports: u64,
    /// Datagrams in progress when these numbers were taken.
    pub datagrams_in_progress: u64,
    /// Bytes the table held when these numbers were taken.
    pub bytes_held: u64,
}

impl DefragStats {
    /// Adds another table's numbers (its gauges too: the tables together).
    pub fn add(&mut self, o: &DefragStats) {
        let DefragStats {
            fragments,
            completed,
            timed_out,
            evicted,
            over_limit,
            unfinished_at_end,
            overlaps,
            first_fragment_fallbacks,
            other_ports,
            datagrams_in_progress,
            bytes_held,
        } = *o;
        self.fragments += fragments;
        self.completed += completed;
        self.timed_out += timed_out;
        self.evicted += evicted;
        self.over_limit += over_limit;
        self.unfinished_at_end += unfinished_at_end;
        self.overlaps += overlaps;
        self.first_fragment_fallbacks += first_fragment_fallbacks;
        self.other_ports += other_ports;
        self.datagrams_in_progress += datagrams_in_progress;
        self.bytes_held += bytes_held;
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    id: u32,
}

#[derive(Debug)]
struct Datagram {
    /// Sequence number of its key in the queue.
    seq: u64,
    first_ts: i64,
    /// Bytes from offset 0; holes read as zero until filled. Empty when `other_ports`.
    data: Vec<u8>,
    /// Byte ranges received, `[start, end)`, sorted, disjoint, merged.
    have: Vec<(u32, u32)>,
    /// The datagram's end, from the fragment with the more-fragments flag clear.
    total: Option<u32>,
    fragments: usize,
    other_ports: bool,
    /// What this datagram is charged in `bytes_held`.
    cost: usize,
}

impl Datagram {
    fn cost_now(&self) -> usize {
        ENTRY_OVERHEAD + self.data.capacity() + self.have.capacity() * 8
    }

    fn complete(&self) -> bool {
        self.total
            .is_some_and(|t| self.have.len() == 1 && self.have[0] == (0, t))
    }

    /// Bytes from offset 0 up to the first hole.
    fn first_run(&self) -> &[u8] {
        match self.have.first() {
            Some(&(0, end)) => &self.data[..(end as usize).min(self.data.len())],
            _ => &[],
        }
    }
}

/// Why the table gives up on a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GiveUp {
    TimedOut,
    Evicted,
    OverLimit,
    AtEnd,
}

pub struct Reassembler {
    limits: DefragLimits,
    /// Ports whose datagrams are kept (the sensor's: DNS); others are dropped
    /// as soon as their first fragment shows them.
    wanted: fn(u16, u16) -> bool,
    table: FastMap<Key, Datagram>,
    queue: VecDeque<(Key, u64)>,
    next_seq: u64,
    bytes_held: usize,
    /// Latest packet time seen.
    now: i64,
    stats: DefragStats,
}

impl Reassembler {
    pub fn new(limits: DefragLimits, wanted: fn(u16, u16) -> bool) -> Self {
        Reassembler {
            limits,
            wanted,
            table: FastMap::default(),
            queue: VecDeque::new(),
            next_seq: 0,
            bytes_held: 0,
            now: i64::MIN,
            stats: DefragStats::default(),
        }
    }

    pub fn stats(&self) -> DefragStats {
        DefragStats {
            datagrams_in_progress: self.table.len() as u64,
            bytes_held: self.bytes_held as u64,
            ..self.stats
        }
    }

    pub fn in_progress(&self) -> usize {
        self.table.len()
    }

    pub fn bytes_held(&self) -> usize {
        self.bytes_held
    }

    /// Packet time at or after which [`Reassembler::expire`] has work to do
    /// (`i64::MAX` when the table is empty): the decoder compares each
    /// frame's time with it, one comparison per frame.
    pub fn deadline(&mut self) -> i64 {
        while let Some((key, seq)) = self.queue.front() {
            match self.table.get(key) {
                Some(d) if d.seq == *seq => {
                    return d.first_ts.saturating_add(self.limits.timeout_micros);
                }
                // Stale: its datagram completed. Each key is popped once.
                _ => self.queue.pop_front(),
            };
        }
        i64::MAX
    }

    /// Gives up on every datagram older than the timeout at packet time `now`.
    pub fn expire(&mut self, now: i64, release: &mut impl FnMut(Released<'_>)) {
        self.now = self.now.max(now);
        while let Some(&(key, seq)) = self.queue.front() {
            match self.table.get(&key) {
                Some(d) if d.seq == seq => {
                    if d.first_ts.saturating_add(self.limits.timeout_micros) > now {
                        break;
                    }
                    self.queue.pop_front();
                    self.give_up(key, GiveUp::TimedOut, release);
                }
                _ => {
                    self.queue.pop_front();
                }
            }
        }
    }

    /// Gives up on every datagram still in progress (the input ended).
    pub fn flush(&mut self, release: &mut impl FnMut(Released<'_>)) {
        while let Some((key, seq)) = self.queue.pop_front() {
            if self.table.get(&key).is_some_and(|d| d.seq == seq) {
                self.give_up(key, GiveUp::AtEnd, release);
            }
        }
    }

    /// Takes one fragment; releases the datagrams it completes or pushes out.
    pub fn add(&mut self, ts: i64, f: &Fragment<'_>, release: &mut impl FnMut(Released<'_>)) {
        self.stats.fragments += 1;
        self.expire(ts, release);
        let len = u32::try_from(f.data.len()).unwrap_or(u32::MAX);
        let end = f.offset.saturating_add(len);
        if end > MAX_IP_DATAGRAM {
            self.stats.over_limit += 1;
            return;
        }
        let key = Key {
            src: f.src,
            dst: f.dst,
            id: f.id,
        };
        if !self.table.contains_key(&key) {
            while self.table.len() >= self.limits.max_datagrams.max(1)
                || self.bytes_held + ENTRY_OVERHEAD > self.limits.max_total_bytes
            {
                if !self.give_up_oldest(None, release) {
                    break;
                }
            }
            let seq = self.next_seq;
            self.next_seq += 1;
            let d = Datagram {
                seq,
                first_ts: ts,
                data: Vec::new(),
                have: Vec::new(),
                total: None,
                fragments: 0,
                other_ports: false,
                cost: ENTRY_OVERHEAD,
            };
            self.bytes_held += d.cost;
            self.table.insert(key, d);
            self.queue.push_back((key, seq));
            self.compact_queue();
        }
        let limits = self.limits;
        let d = self.table.get_mut(&key).expect("just inserted");
        d.fragments += 1;
        if d.fragments > limits.max_fragments_per_datagram
            || end as usize > limits.max_datagram_bytes
        {
            self.give_up(key, GiveUp::OverLimit, release);
            return;
        }
        if f.offset == 0 && f.data.len() >= 4 && !d.other_ports {
            let sport = u16::from_be_bytes([f.data[0], f.data[1]]);
            let dport = u16::from_be_bytes([f.data[2], f.data[3]]);
            if !(self.wanted)(sport, dport) {
                d.other_ports = true;
                d.data = Vec::new();
            }
        }
        // The range this fragment may add: the earlier claims on the end win.
        let mut end = end;
        let mut anomaly = false;
        if let Some(t) = d.total {
            if end > t || (!f.more && end != t) {
                anomaly = true;
                end = end.min(t);
            }
        } else if !f.more {
            if d.have.last().is_some_and(|&(_, e)| e > end) {
                anomaly = true;
            } else {
                d.total = Some(end);
            }
        }
        let start = f.offset.min(end);
        let gaps = uncovered(&d.have, start, end);
        if gaps.iter().map(|&(s, e)| e - s).sum::<u32>() < end - start {
            anomaly = true;
        }
        if anomaly {
            self.stats.overlaps += 1;
        }
        let need = end as usize;
        let keep_data = !d.other_ports && !gaps.is_empty() && d.data.len() < need;
        // Exact once the end is known, else doubling within the cap.
        let want = match d.total {
            _ if !keep_data => d.data.capacity(),
            Some(t) => t as usize,
            None => need.max((d.data.capacity() * 2).min(limits.max_datagram_bytes)),
        };
        let data_grow = want.saturating_sub(d.data.capacity());
        let have_grow = (d.have.len() + gaps.len()).saturating_sub(d.have.capacity()) * 8;
        if data_grow + have_grow > 0 && !self.make_room(key, data_grow + have_grow, release) {
            return;
        }
        let d = self.table.get_mut(&key).expect("kept by make_room");
        d.have.reserve_exact(gaps.len());
        if keep_data {
            d.data.reserve_exact(want - d.data.len());
            d.data.resize(need, 0);
        }
        if !d.other_ports {
            for &(s, e) in &gaps {
                let from = (s - f.offset) as usize;
                let to = (e - f.offset) as usize;
                d.data[s as usize..e as usize].copy_from_slice(&f.data[from..to]);
            }
        }
        for (s, e) in gaps {
            insert_range(&mut d.have, s, e);
        }
        self.recharge(key);
        let d = &self.table[&key];
        if d.complete() {
            let d = self.table.remove(&key).expect("present");
            self.bytes_held -= d.cost;
            if d.other_ports {
                self.stats.other_ports += 1;
            } else {
                self.stats.completed += 1;
                let total = d.total.unwrap_or(0) as usize;
                release(Released {
                    ts,
                    src: key.src,
                    dst: key.dst,
                    udp: &d.data[..total],
                    whole: true,
                });
            }
        }
    }

    /// Re-charges a datagram's cost after its buffers changed.
    fn recharge(&mut self, key: Key) {
        if let Some(d) = self.table.get_mut(&key) {
            let now = d.cost_now();
            self.bytes_held = self.bytes_held - d.cost + now;
            d.cost = now;
        }
    }

    /// Evicts the oldest other datagrams until `grow` more bytes fit in the
    /// budget; if `key` is itself the oldest, gives it up and returns false.
    fn make_room(&mut self, key: Key, grow: usize, release: &mut impl FnMut(Released<'_>)) -> bool {
        while self.bytes_held + grow > self.limits.max_total_bytes {
            if !self.give_up_oldest(Some(key), release) {
                return false;
            }
        }
        true
    }

    /// Gives up on the oldest datagram (evicted). When that is `keep`, gives
    /// it up too and returns false; false also when the table is empty.
    fn give_up_oldest(
        &mut self,
        keep: Option<Key>,
        release: &mut impl FnMut(Released<'_>),
    ) -> bool {
        while let Some((key, seq)) = self.queue.pop_front() {
            if self.table.get(&key).is_some_and(|d| d.seq == seq) {
                self.give_up(key, GiveUp::Evicted, release);
                return Some(key) != keep;
            }
        }
        false
    }

    /// Drops stale keys when they outnumber live ones (amortized O(1)).
    fn compact_queue(&mut self) {
        if self.queue.len() > 2 * self.table.len() + 64 {
            let table = &self.table;
            self.queue
                .retain(|(k, seq)| table.get(k).is_some_and(|d| d.seq == *seq));
        }
    }

    fn give_up(&mut self, key: Key, why: GiveUp, release: &mut impl FnMut(Released<'_>)) {
        let Some(d) = self.table.remove(&key) else {
            return;
        };
        self.bytes_held -= d.cost;
        match why {
            GiveUp::TimedOut => self.stats.timed_out += 1,
            GiveUp::Evicted => self.stats.evicted += 1,
            GiveUp::OverLimit => self.stats.over_limit += 1,
            GiveUp::AtEnd => self.stats.unfinished_at_end += 1,
        }
        if d.other_ports {
            self.stats.other_ports += 1;
            return;
        }
        let run = d.first_run();
        // A UDP header at least: else there is nothing to read.
        if run.len() >= 8 {
            self.stats.first_fragment_fallbacks += 1;
            release(Released {
                ts: self.now,
                src: key.src,
                dst: key.dst,
                udp: run,
                whole: false,
            });
        }
    }
}

/// The parts of `[start, end)` not yet in `have` (sorted, disjoint).
fn uncovered(have: &[(u32, u32)], start: u32, end: u32) -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    let mut at = start;
    // First range that ends after `start`.
    let from = have.partition_point(|&(_, e)| e <= start);
    for &(s, e) in &have[from..] {
        if s >= end || at >= end {
            break;
        }
        if s > at {
            out.push((at, s));
        }
        at = at.max(e);
    }
    if at < end {
        out.push((at, end));
    }
    out
}

/// Adds `[s, e)` (not overlapping any range held) and merges neighbours.
fn insert_range(have: &mut Vec<(u32, u32)>, s: u32, e: u32) {
    if s >= e {
        return;
    }
    let i = have.partition_point(|&(hs, _)| hs < s);
    let joins_prev = i > 0 && have[i - 1].1 == s;
    let joins_next = i < have.len() && have[i].0 == e;
    match (joins_prev, joins_next) {
        (true, true) => {
            have[i - 1].1 = have[i].1;
            have.remove(i);
        }
        (true, false) => have[i - 1].1 = e,
        (false, true) => have[i].0 = s,
        (false, false) => have.insert(i, (s, e)),
    }
}

#[cfg(test)]
mod tests;
