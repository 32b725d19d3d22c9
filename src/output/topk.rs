//! The busiest clients of a run in bounded memory, whatever the number of
//! (spoofable) addresses: Space-Saving (Metwally, Agrawal, El Abbadi, 2005).
//!
//! A table of at most `cap` clients; a client not in a full table takes the
//! place of the one with the smallest count and inherits that count as its
//! error. Any client with more than `total / cap` of the weight is always in
//! the table, and every count is at most `err` above the true one, so a
//! flood of a million one-query sources cannot push out a mail server that
//! sent thousands. Finding the smallest entry is a B-tree lookup, not a scan.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<V> {
    /// Weight counted for this client, over-estimated by at most `err`.
    pub count: u64,
    /// The count it inherited when it took a smaller client's place (0: exact).
    pub err: u64,
    /// The caller's side counters, since the client entered the table.
    pub extra: V,
}

#[derive(Debug)]
pub struct TopK<V> {
    cap: usize,
    map: HashMap<IpAddr, Entry<V>>,
    /// (count, address) of every entry: the first is the one to replace.
    order: BTreeSet<(u64, IpAddr)>,
    /// Clients that took the place of another.
    replaced: u64,
    total: u64,
}

impl<V: Default> TopK<V> {
    pub fn new(cap: usize) -> Self {
        TopK {
            cap: cap.max(1),
            map: HashMap::new(),
            order: BTreeSet::new(),
            replaced: 0,
            total: 0,
        }
    }

    /// Adds `weight` to `ip`; returns its side counters (fresh when the
    /// client just entered), or None for a weightless newcomer to a full
    /// table (it would only displace a client that did something).
    pub fn add(&mut self, ip: IpAddr, weight: u64) -> Option<&mut V> {
        self.total += weight;
        if let Some(e) = self.map.get(&ip) {
            let old = e.count;
            if weight > 0 {
                self.order.remove(&(old, ip));
                self.order.insert((old + weight, ip));
            }
        } else if self.map.len() < self.cap {
            self.order.insert((weight, ip));
            self.map.insert(
                ip,
                Entry {
                    count: 0,
                    err: 0,
                    extra: V::default(),
                },
            );
        } else if weight == 0 {
            return None;
        } else {
            let (min, victim) = self.order.pop_first().expect("a full table");
            self.map.remove(&victim);
            self.replaced += 1;
            self.order.insert((min + weight, ip));
            self.map.insert(
                ip,
                Entry {
                    count: min,
                    err: min,
                    extra: V::default(),
                },
            );
        }
        let e = self.map.get_mut(&ip).expect("just placed");
        e.count += weight;
        Some(&mut e.extra)
    }

    /// The `n` largest counts, ties by lower address first.
    pub fn top(&self, n: usize) -> Vec<(IpAddr, &Entry<V>)> {
        let mut all: Vec<(IpAddr, &Entry<V>)> = self.map.iter().map(|(ip, e)| (*ip, e)).collect();
        all.sort_by(|a, b| b.1.count.cmp(&a.1.count).then(a.0.cmp(&b.0)));
        all.truncate(n);
        all
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    /// Clients that took the place of another (0: every count is exact).
    pub fn replaced(&self) -> u64 {
        self.replaced
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    /// All weight added.
    pub fn total(&self) -> u64 {
        self.total
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
    fn exact_while_it_fits_and_ranked_by_count_then_address() {
        let mut t: TopK<u64> = TopK::new(10);
        for (i, w) in [(3, 5), (1, 7), (2, 5), (4, 1)] {
            *t.add(ip(i), w).unwrap() += 1;
        }
        *t.add(ip(4), 6).unwrap() += 1;
        let top: Vec<_> = t
            .top(10)
            .iter()
            .map(|(a, e)| (*a, e.count, e.err, e.extra))
            .collect();
        assert_eq!(
            top,
            vec![
                (ip(1), 7, 0, 1),
                (ip(4), 7, 0, 2),
                (ip(2), 5, 0, 1),
                (ip(3), 5, 0, 1)
            ]
        );
        assert_eq!((t.replaced(), t.total()), (0, 24));
    }

    #[test]
    fn a_heavy_client_survives_a_flood_of_one_shot_sources_before_and_after_it() {
        let mut t: TopK<()> = TopK::new(100);
        let mut next = 1000;
        let mut flood = |t: &mut TopK<()>, n: u32| {
            for _ in 0..n {
                t.add(ip(next), 1);
                next += 1;
            }
        };
        flood(&mut t, 5_000);
        for _ in 0..50 {
            t.add(ip(7), 10);
            flood(&mut t, 200);
        }
        let top = t.top(1);
        assert_eq!(top[0].0, ip(7), "{top:?}");
        // Space-Saving's bound: over-estimated by at most err <= total / cap.
        let e = top[0].1;
        assert!(e.count - e.err <= 500 && e.count >= 500, "{e:?}");
        assert!(e.err <= t.total() / 100, "{e:?}");
        assert_eq!(t.len(), 100);
        assert!(t.replaced() > 14_000);
    }

    #[test]
    fn weightless_newcomers_do_not_displace_anyone() {
        let mut t: TopK<()> = TopK::new(2);
        t.add(ip(1), 1);
        t.add(ip(2), 0);
        assert!(t.add(ip(3), 0).is_none());
        assert_eq!(t.replaced(), 0);
        t.add(ip(3), 1);
        assert_eq!(t.replaced(), 1);
        assert_eq!(
            t.top(5).iter().map(|x| x.0).collect::<Vec<_>>(),
            vec![ip(1), ip(3)]
        );
    }
}
