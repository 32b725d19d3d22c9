//! Queries waiting for their response, to count the unanswered ones.
//!
//! A response matches a query by (client, server, client port, DNS id). The
//! table is two generations of hash maps, rotated at every bin close (packet
//! time, the same ticks in every shard): what is left of the older generation
//! is declared unanswered, so a query sent in bin k is unanswered when no
//! response came by the end of bin k+1. Rotation depends only on ticks, never
//! on other clients' traffic, so the counts do not depend on the number of
//! shards. A generation that reaches its cap rotates early (a spoofed flood
//! cannot grow memory); queries pushed out that way are counted as evicted as
//! well as unanswered (only then can shard count matter).

use std::net::IpAddr;

use crate::FastMap;

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
    cap_per_generation: usize,
    pub evicted: u64,
}

impl Pending {
    pub fn new(cap: usize) -> Self {
        Pending {
            current: FastMap::default(),
            older: FastMap::default(),
            cap_per_generation: (cap / 2).max(1),
            evicted: 0,
        }
    }

    /// Records a query; calls `unanswered` for every query given up on.
    pub fn query(&mut self, key: QueryKey, mut unanswered: impl FnMut(IpAddr)) {
        if self.current.len() >= self.cap_per_generation {
            self.evicted += self.older.len() as u64;
            self.rotate(&mut unanswered);
        }
        // The same key again (a retry with the same id) leaves the first unanswered.
        if self.current.insert(key, ()).is_some()
            || (!self.older.is_empty() && self.older.remove(&key).is_some())
        {
            unanswered(key.client);
        }
    }

    /// Matches a response; false when no query was waiting for it.
    pub fn response(&mut self, key: &QueryKey) -> bool {
        self.current.remove(key).is_some() || self.older.remove(key).is_some()
    }

    /// Declares every waiting query unanswered (end of input).
    pub fn drain(&mut self, mut unanswered: impl FnMut(IpAddr)) {
        self.rotate(&mut unanswered);
        self.rotate(&mut unanswered);
    }

    pub fn len(&self) -> usize {
        self.current.len() + self.older.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Bin close: the older generation's leftovers are unanswered.
    pub fn rotate(&mut self, unanswered: &mut impl FnMut(IpAddr)) {
        for (k, _) in self.older.drain() {
            unanswered(k.client);
        }
        // The emptied map becomes the current generation: sized for about
        // what the last one held, so a flood's table does not stay allocated.
        if self.older.capacity() > 2 * self.current.len() + 1024 {
            self.older.shrink_to(self.current.len());
        }
        std::mem::swap(&mut self.current, &mut self.older);
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
        let mut p = Pending::new(100);
        let mut lost = 0;
        p.query(key(1), |_| lost += 1);
        p.query(key(2), |_| lost += 1);
        assert!(p.response(&key(1)));
        assert!(!p.response(&key(9)));
        // A response in the next bin still matches.
        p.rotate(&mut |_| lost += 1);
        p.query(key(3), |_| lost += 1);
        assert_eq!(lost, 0);
        // At the end of the next bin key(2) is given up; key(3) still waits.
        p.rotate(&mut |_| lost += 1);
        assert_eq!(lost, 1);
        assert!(p.response(&key(3)));
        p.drain(|_| lost += 1);
        assert_eq!(lost, 1);
    }

    #[test]
    fn capped_under_a_flood() {
        let mut p = Pending::new(10);
        let mut lost = 0;
        for id in 0..1000 {
            p.query(key(id), |_| lost += 1);
            assert!(p.len() <= 10);
        }
        assert!(p.evicted > 0);
        p.drain(|_| lost += 1);
        assert_eq!(lost, 1000);
    }
}
