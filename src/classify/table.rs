//! The client table: a segmented LRU (2Q) that a spoofed flood cannot steer.
//!
//! Client addresses are attacker-controlled (UDP sources can be spoofed), so
//! the table is capped and split in two segments, as caches resist scans:
//!
//! - **probation** (whatever protected does not use, at least a quarter of
//!   the cap): every new client enters here, in FIFO order. When the table
//!   is full, the client admitted longest ago goes. A flood of sources seen
//!   once each (spoofed queries) cycles through probation and never touches
//!   the rest of the table.
//! - **protected** (at most three quarters of the cap): a client moves here when it shows history, a
//!   second query or any SMTP activity while in probation. When it is full, a
//!   promotion evicts the protected client idle longest, only if that client
//!   was idle for the whole current bin and the downstream does not keep it
//!   (an open incident, a configured client); otherwise the promotion waits.
//!
//! The cost of evicting a protected client (a mail server active every bin)
//! is therefore a flood of more than the protected capacity of distinct
//! sources, each seen at least twice while in probation, sustained through a
//! whole bin in which that client is silent. A flood of sources seen once
//! per bin, whatever its size, never evicts it.
//!
//! Both segments keep their order in queues with lazy deletion (an entry
//! whose stamp no longer matches its client's is skipped; a queue holding
//! twice its live entries is compacted), and at most [`CANDIDATES`] entries
//! are looked at per eviction: every operation is O(1) amortised. Order
//! depends only on the shard's own event order, so one shard is deterministic.

use std::collections::VecDeque;
use std::net::IpAddr;

use crate::FastMap;

use super::names::DomainLearner;
use super::open::OpenBin;

/// Entries looked at per eviction before giving up (kept clients are
/// re-queued): a table full of kept clients costs O(1) per attempt, not a scan.
pub const CANDIDATES: usize = 8;

/// One tracked client: a few words while it is idle (#12, memory per client).
#[derive(Debug)]
pub struct Client {
    /// Its counters for the open bin, from its first event in the bin.
    pub bin: Option<Box<OpenBin>>,
    /// Its search-domain learning, from its first candidate name.
    pub learner: Option<Box<DomainLearner>>,
    protected: bool,
    /// The stamp of this client's live entry in its segment's queue.
    stamp: u64,
    /// Protected: the bin of its latest queue entry.
    touch_bin: i64,
}

/// What a client did (queries and SMTP are history; responses are not: a DNS
/// server answers spoofed sources too).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Touch {
    Query,
    Response,
    Smtp,
}

#[derive(Debug, Default, Clone, Copy)]
pub struct TableStats {
    /// Clients evicted, both segments.
    pub evicted: u64,
    /// Of them, protected ones.
    pub protected_evicted: u64,
    pub promoted: u64,
    /// Events of new clients turned away (every eviction candidate was kept).
    pub overflow_events: u64,
}

#[derive(Debug)]
pub struct ClientTable {
    map: FastMap<IpAddr, Client>,
    probation: VecDeque<(IpAddr, u64)>,
    protected: VecDeque<(IpAddr, u64, i64)>,
    probation_len: usize,
    protected_len: usize,
    cap: usize,
    protected_cap: usize,
    next_stamp: u64,
    pub stats: TableStats,
}

impl Client {
    /// Its counters for the open bin (allocated on first use).
    pub fn open(&mut self) -> &mut OpenBin {
        self.bin.get_or_insert_with(Box::default)
    }

    /// Nothing counted in the open bin.
    pub fn is_idle(&self) -> bool {
        self.bin.as_ref().is_none_or(|b| b.is_empty())
    }

    /// The search domain it learnt, if any.
    pub fn learned(&self) -> Option<&str> {
        self.learner.as_ref().and_then(|l| l.learned.as_deref())
    }
}

impl ClientTable {
    /// A table of `cap` clients: a quarter (at least one) on probation.
    pub fn new(cap: usize) -> Self {
        let cap = cap.max(1);
        let probation_cap = (cap / 4).max(1);
        ClientTable {
            map: FastMap::default(),
            probation: VecDeque::new(),
            protected: VecDeque::new(),
            probation_len: 0,
            protected_len: 0,
            cap,
            protected_cap: cap - probation_cap,
            next_stamp: 1,
            stats: TableStats::default(),
        }
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// (probation, protected) clients.
    pub fn segments(&self) -> (usize, usize) {
        (self.probation_len, self.protected_len)
    }

    pub fn get_mut(&mut self, ip: &IpAddr) -> Option<&mut Client> {
        self.map.get_mut(ip)
    }

    pub fn keys(&self) -> impl Iterator<Item = &IpAddr> {
        self.map.keys()
    }

    pub fn values(&self) -> impl Iterator<Item = &Client> {
        self.map.values()
    }

    fn stamp(&mut self) -> u64 {
        self.next_stamp += 1;
        self.next_stamp
    }

    /// The client of an event in bin `bin`, admitted (and promoted) as the
    /// policy says; `None` when it was turned away. Evicted clients are
    /// pushed on `evicted` (their state downstream can go).
    pub fn touch(
        &mut self,
        ip: IpAddr,
        what: Touch,
        bin: i64,
        keep: &dyn Fn(&IpAddr) -> bool,
        evicted: &mut Vec<IpAddr>,
    ) -> Option<&mut Client> {
        let state = self.map.get(&ip).map(|c| (c.protected, c.touch_bin));
        match state {
            None => {
                if self.map.len() >= self.cap && !self.evict_probation(keep, evicted) {
                    self.stats.overflow_events += 1;
                    return None;
                }
                let stamp = self.stamp();
                self.probation.push_back((ip, stamp));
                self.probation_len += 1;
                self.map.insert(
                    ip,
                    Client {
                        bin: None,
                        learner: None,
                        protected: false,
                        stamp,
                        touch_bin: bin,
                    },
                );
                // SMTP is history at once (a mail server's first session).
                if what == Touch::Smtp {
                    self.promote(ip, bin, keep, evicted);
                }
                self.maybe_compact();
            }
            Some((false, _)) if what != Touch::Response => {
                self.promote(ip, bin, keep, evicted);
                self.maybe_compact();
            }
            Some((true, touched)) if touched != bin => {
                let stamp = self.stamp();
                let c = self.map.get_mut(&ip).expect("present");
                c.stamp = stamp;
                c.touch_bin = bin;
                self.protected.push_back((ip, stamp, bin));
                self.maybe_compact();
            }
            Some(_) => {}
        }
        self.map.get_mut(&ip)
    }

    /// Moves a probation client to protected, evicting a protected one idle
    /// for the whole bin when full; false when the promotion has to wait.
    fn promote(
        &mut self,
        ip: IpAddr,
        bin: i64,
        keep: &dyn Fn(&IpAddr) -> bool,
        evicted: &mut Vec<IpAddr>,
    ) -> bool {
        if self.protected_cap == 0 {
            return false;
        }
        if self.protected_len >= self.protected_cap && !self.evict_protected(bin, keep, evicted) {
            return false;
        }
        let stamp = self.stamp();
        let c = self.map.get_mut(&ip).expect("present");
        c.protected = true;
        c.stamp = stamp;
        c.touch_bin = bin;
        self.protected.push_back((ip, stamp, bin));
        self.probation_len -= 1;
        self.protected_len += 1;
        self.stats.promoted += 1;
        true
    }

    fn live(&self, ip: &IpAddr, stamp: u64, protected: bool) -> bool {
        self.map
            .get(ip)
            .is_some_and(|c| c.stamp == stamp && c.protected == protected)
    }

    fn evict_probation(
        &mut self,
        keep: &dyn Fn(&IpAddr) -> bool,
        evicted: &mut Vec<IpAddr>,
    ) -> bool {
        let mut looked = 0;
        while looked < CANDIDATES {
            let Some((ip, stamp)) = self.probation.pop_front() else {
                return false;
            };
            if !self.live(&ip, stamp, false) {
                continue;
            }
            looked += 1;
            if keep(&ip) {
                self.probation.push_back((ip, stamp));
                continue;
            }
            self.map.remove(&ip);
            self.probation_len -= 1;
            self.stats.evicted += 1;
            evicted.push(ip);
            return true;
        }
        false
    }

    fn evict_protected(
        &mut self,
        bin: i64,
        keep: &dyn Fn(&IpAddr) -> bool,
        evicted: &mut Vec<IpAddr>,
    ) -> bool {
        let mut looked = 0;
        while looked < CANDIDATES {
            let Some(&(ip, stamp, touched)) = self.protected.front() else {
                return false;
            };
            if !self.live(&ip, stamp, true) {
                self.protected.pop_front();
                continue;
            }
            // Entries are in touch order: from here on, every client was
            // active in this bin, and none of them goes.
            if touched >= bin {
                return false;
            }
            self.protected.pop_front();
            looked += 1;
            if keep(&ip) {
                // Kept: looked at again next bin.
                let stamp = self.stamp();
                let c = self.map.get_mut(&ip).expect("live");
                c.stamp = stamp;
                c.touch_bin = bin;
                self.protected.push_back((ip, stamp, bin));
                continue;
            }
            self.map.remove(&ip);
            self.protected_len -= 1;
            self.stats.evicted += 1;
            self.stats.protected_evicted += 1;
            evicted.push(ip);
            return true;
        }
        false
    }

    /// Keeps each queue within twice its live entries (plus slack).
    fn maybe_compact(&mut self) {
        if self.probation.len() > 2 * self.probation_len + 64 {
            let map = &self.map;
            self.probation
                .retain(|(ip, s)| map.get(ip).is_some_and(|c| c.stamp == *s && !c.protected));
        }
        if self.protected.len() > 2 * self.protected_len + 64 {
            let map = &self.map;
            self.protected
                .retain(|(ip, s, _)| map.get(ip).is_some_and(|c| c.stamp == *s && c.protected));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(i: u32) -> IpAddr {
        IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + i))
    }

    #[test]
    fn a_flood_seen_once_per_bin_never_evicts_a_client_with_history() {
        let mut t = ClientTable::new(1000);
        let keep = |_: &IpAddr| false;
        let mut ev = Vec::new();
        let server = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25));
        for bin in 0..20i64 {
            for i in 0..5000u32 {
                t.touch(ip(i + bin as u32 * 5000), Touch::Query, bin, &keep, &mut ev);
                if i % 100 == 0 {
                    assert!(t.touch(server, Touch::Query, bin, &keep, &mut ev).is_some());
                }
                assert!(t.len() <= 1000);
            }
        }
        assert!(!ev.contains(&server));
        assert_eq!(t.stats.protected_evicted, 0);
        assert!(t.stats.evicted > 90_000);
        assert!(t.probation.len() <= 2 * 1000 + 64 + 1);
    }

    #[test]
    fn protected_clients_idle_for_a_bin_make_room_and_kept_ones_stay() {
        let mut t = ClientTable::new(8); // at least 2 probation, at most 6 protected
        let mut ev = Vec::new();
        let kept = ip(0);
        let keep = |a: &IpAddr| *a == kept;
        for i in 0..7 {
            t.touch(ip(i), Touch::Smtp, 0, &keep, &mut ev);
        }
        // The 7th could not be promoted (protected full, nobody idle).
        assert_eq!(t.segments(), (1, 6));
        t.touch(ip(6), Touch::Smtp, 0, &keep, &mut ev);
        t.touch(ip(7), Touch::Query, 0, &keep, &mut ev);
        assert_eq!(t.segments(), (2, 6));
        // Full: a new client pushes out the oldest on probation.
        t.touch(ip(8), Touch::Query, 0, &keep, &mut ev);
        assert_eq!(ev, vec![ip(6)]);
        ev.clear();
        // Same bin: nobody idle for a bin, the promotion waits.
        t.touch(ip(8), Touch::Query, 0, &keep, &mut ev);
        assert_eq!(t.segments(), (2, 6));
        // Next bin: the idle one that is not kept goes.
        t.touch(ip(8), Touch::Query, 1, &keep, &mut ev);
        assert_eq!(ev, vec![ip(1)]);
        assert_eq!(t.segments(), (1, 6));
        assert_eq!(t.stats.protected_evicted, 1);
    }
}
