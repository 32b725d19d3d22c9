//! Queries waiting for their response, to count the unanswered ones.
//!
//! A response matches a query by (client, server, client port, DNS id). The
//! table is two generations of hash maps: every `timeout` of packet time the
//! older generation's leftovers are declared unanswered and it is recycled, so
//! a query is unanswered after between one and two timeouts. A generation
//! that reaches its cap rotates early (a spoofed flood cannot grow memory);
//! queries pushed out that way are counted as evicted as well as unanswered.

use crate::FastMap;
use std::net::IpAddr;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct QueryKey {
    pub client: IpAddr,
    pub server: IpAddr,
    pub client_port: u16,
    pub id: u16,
}

#[derive(Debug)]
pub struct Pending {
    current: FastMap<QueryKey, ()>,
    older: FastMap<QueryKey, ()>,
    generation_start: Option<i64>,
    timeout: i64,
    cap_per_generation: usize,
    pub evicted: u64,
}

impl Pending {
    pub fn new(timeout_micros: i64, cap: usize) -> Self {
        Pending {
            current: FastMap::default(),
            older: FastMap::default(),
            generation_start: None,
            timeout: timeout_micros.max(1),
            cap_per_generation: (cap / 2).max(1),
            evicted: 0,
        }
    }

    /// Records a query; calls `unanswered` for every query given up on.
    pub fn query(&mut self, ts: i64, key: QueryKey, mut unanswered: impl FnMut(IpAddr)) {
        self.advance(ts, &mut unanswered);
        if self.current.len() >= self.cap_per_generation {
            self.evicted += self.older.len() as u64;
            self.rotate(ts, &mut unanswered);
        }
        // The same key again (a retry with the same id) leaves the first unanswered.
        if self.current.insert(key, ()).is_some() || self.older.remove(&key).is_some() {
            unanswered(key.client);
        }
    }

    /// Matches a response; false when no query was waiting for it.
    pub fn response(
        &mut self,
        ts: i64,
        key: &QueryKey,
        mut unanswered: impl FnMut(IpAddr),
    ) -> bool {
        self.advance(ts, &mut unanswered);
        self.current.remove(key).is_some() || self.older.remove(key).is_some()
    }

    /// Declares every waiting query unanswered (end of input).
    pub fn drain(&mut self, mut unanswered: impl FnMut(IpAddr)) {
        let mut keys: Vec<QueryKey> = self
            .older
            .drain()
            .chain(self.current.drain())
            .map(|(k, _)| k)
            .collect();
        keys.sort_by_key(|k| (k.client, k.server, k.client_port, k.id));
        for k in keys {
            unanswered(k.client);
        }
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.older.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn advance(&mut self, ts: i64, unanswered: &mut impl FnMut(IpAddr)) {
        let start = *self.generation_start.get_or_insert(ts);
        if ts - start >= self.timeout {
            self.rotate(ts, unanswered);
            if ts - start >= 2 * self.timeout {
                // Long silence: everything waiting is stale.
                self.rotate(ts, unanswered);
            }
        }
    }

    fn rotate(&mut self, ts: i64, unanswered: &mut impl FnMut(IpAddr)) {
        let mut stale: Vec<IpAddr> = self.older.drain().map(|(k, _)| k.client).collect();
        stale.sort();
        for c in stale {
            unanswered(c);
        }
        std::mem::swap(&mut self.current, &mut self.older);
        self.generation_start = Some(ts);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn key(id: u16) -> QueryKey {
        QueryKey {
            client: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            server: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53)),
            client_port: 5000,
            id,
        }
    }

    #[test]
    fn matched_queries_are_not_unanswered_and_old_ones_are() {
        let mut p = Pending::new(5, 100);
        let mut lost = 0;
        p.query(0, key(1), |_| lost += 1);
        p.query(1, key(2), |_| lost += 1);
        assert!(p.response(2, &key(1), |_| lost += 1));
        assert!(!p.response(3, &key(9), |_| lost += 1));
        // Two timeouts later key(2) is given up.
        p.query(20, key(3), |_| lost += 1);
        assert_eq!(lost, 1);
        p.drain(|_| lost += 1);
        assert_eq!(lost, 2);
    }

    #[test]
    fn capped_under_a_flood() {
        let mut p = Pending::new(1_000_000, 10);
        let mut lost = 0;
        for id in 0..1000 {
            p.query(0, key(id), |_| lost += 1);
            assert!(p.len() <= 10);
        }
        assert!(p.evicted > 0);
        p.drain(|_| lost += 1);
        assert_eq!(lost, 1000);
    }
}
