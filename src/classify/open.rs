//! A client's counters for the open bin, allocated on its first event of
//! the bin and handed on whole at the close: an idle tracked client keeps
//! no counters at all (#12, memory per client).
//!
//! Most clients of a flood of spoofed sources do one or two things per bin
//! (a query: its count, qtype, transport and sub-bin, one server). So the
//! open bin starts with a few (counter, count) pairs and one server, about a
//! hundred bytes, and becomes the full [`ClientBin`] (470 bytes and more)
//! only when the client does more: a ninth counter, a second server, a
//! sample name, any SMTP. The close turns either into the same `ClientBin`,
//! so everything downstream sees exactly what it saw before.
//!
//! The distinct-name sketches of [`ClientBin`] are 512-byte bitmaps; most
//! such clients ask one or two names per bin. So the first few bitmap
//! positions are kept here, in a small array, and go into the bitmap only
//! when the array is full or at the close: the bitmap ends up with exactly
//! the bits it would have had (a position is a hash modulo the bitmap's
//! size, and setting a bit twice is setting it once), and the estimates are
//! the same.

use std::net::IpAddr;

use super::counters::{ClientBin, DISTINCT_BITS, SUB_BINS};
use crate::dns::{QtypeBucket, RcodeBucket};

/// Bitmap positions kept before the bitmap is used.
const SPARSE: usize = 7;

/// (counter, count) pairs kept before the full [`ClientBin`] is made.
const FEW: usize = 8;

/// Up to [`SPARSE`] distinct bitmap positions; `n == SPILLED` once they went
/// into the bitmap (every later one goes there directly).
#[derive(Debug, Default)]
struct Sparse {
    n: u8,
    pos: [u16; SPARSE],
}

const SPILLED: u8 = u8::MAX;

impl Sparse {
    /// Records the position of hash `h`; false when it must go to the bitmap
    /// (the array was full, or already spilled).
    fn insert(&mut self, h: u64) -> bool {
        if self.n == SPILLED {
            return false;
        }
        let p = (h % DISTINCT_BITS as u64) as u16;
        let n = usize::from(self.n);
        if self.pos[..n].contains(&p) {
            return true;
        }
        if n < SPARSE {
            self.pos[n] = p;
            self.n += 1;
            return true;
        }
        false
    }

    /// The positions kept so far, once: the array is spilled after this.
    fn spill(&mut self) -> impl Iterator<Item = u64> + use<> {
        let n = if self.n == SPILLED {
            0
        } else {
            usize::from(self.n)
        };
        self.n = SPILLED;
        let pos = self.pos;
        pos.into_iter().take(n).map(u64::from)
    }
}

/// The DNS counters of a bin the classifier bumps one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ctr {
    Queries,
    Responses,
    UnresolvedFqdn,
    UnresolvedNxdomain,
    Unanswered,
    QueryOnly,
    Udp,
    Tcp,
    Qtype(QtypeBucket),
    Rcode(RcodeBucket),
    /// Queries in sub-bin k.
    SubQueries(usize),
    /// Unresolved-FQDN queries in sub-bin k.
    SubUnresolved(usize),
}

const QTYPE0: u8 = 8;
const RCODE0: u8 = QTYPE0 + 6;
const SUB0: u8 = RCODE0 + 5;
const SUBU0: u8 = SUB0 + SUB_BINS as u8;

impl Ctr {
    fn id(self) -> u8 {
        match self {
            Ctr::Queries => 0,
            Ctr::Responses => 1,
            Ctr::UnresolvedFqdn => 2,
            Ctr::UnresolvedNxdomain => 3,
            Ctr::Unanswered => 4,
            Ctr::QueryOnly => 5,
            Ctr::Udp => 6,
            Ctr::Tcp => 7,
            Ctr::Qtype(b) => QTYPE0 + b as u8,
            Ctr::Rcode(b) => RCODE0 + b as u8,
            Ctr::SubQueries(k) => SUB0 + k as u8,
            Ctr::SubUnresolved(k) => SUBU0 + k as u8,
        }
    }
}

/// Adds `n` to counter `id` of `b`.
fn bump(b: &mut ClientBin, id: u8, n: u32) {
    let d = &mut b.dns;
    let n64 = u64::from(n);
    match id {
        0 => d.queries += n64,
        1 => d.responses += n64,
        2 => d.unresolved_fqdn += n64,
        3 => d.unresolved_nxdomain += n64,
        4 => d.unanswered += n64,
        5 => d.query_only += n64,
        6 => d.udp += n64,
        7 => d.tcp += n64,
        i if i < RCODE0 => d.qtype[usize::from(i - QTYPE0)] += n64,
        i if i < SUB0 => d.rcode[usize::from(i - RCODE0)] += n64,
        i if i < SUBU0 => b.sub_bins[usize::from(i - SUB0)].0 += n,
        i => b.sub_bins[usize::from(i - SUBU0)].1 += n,
    }
}

#[derive(Debug)]
enum Counts {
    /// Counters with a count, and the one server asked.
    Few {
        pairs: Vec<(u8, u32)>,
        server: Option<(IpAddr, u32)>,
    },
    Full(Box<ClientBin>),
}

impl Default for Counts {
    fn default() -> Self {
        Counts::Few {
            pairs: Vec::new(),
            server: None,
        }
    }
}

/// `counts` as the full [`ClientBin`], made from the few pairs on first use.
fn full(counts: &mut Counts) -> &mut ClientBin {
    if let Counts::Few { pairs, server } = counts {
        let mut b = Box::<ClientBin>::default();
        for &(id, n) in pairs.iter() {
            bump(&mut b, id, n);
        }
        if let Some((ip, n)) = *server {
            b.servers.reserve_exact(1);
            b.servers.push((ip, u64::from(n)));
        }
        *counts = Counts::Full(b);
    }
    match counts {
        Counts::Full(b) => b,
        Counts::Few { .. } => unreachable!("made full above"),
    }
}

/// Name hash `h` into the small array, or (when it is full) with the array's
/// positions into the full counters' bitmap by `set`.
fn see(sparse: &mut Sparse, counts: &mut Counts, h: u64, set: fn(&mut ClientBin, u64)) {
    if !sparse.insert(h) {
        let b = full(counts);
        for p in sparse.spill() {
            set(b, p);
        }
        set(b, h);
    }
}

/// The open bin of one client.
#[derive(Debug, Default)]
pub struct OpenBin {
    counts: Counts,
    names: Sparse,
    mx_names: Sparse,
}

impl OpenBin {
    /// One more query (the per-query counters at once; the hot path).
    #[inline]
    pub fn add_query(&mut self, qtype: QtypeBucket, tcp: bool, sub: usize, query_only: bool) {
        if let Counts::Full(b) = &mut self.counts {
            let d = &mut b.dns;
            d.queries += 1;
            d.query_only += u64::from(query_only);
            d.qtype[qtype as usize] += 1;
            if tcp {
                d.tcp += 1;
            } else {
                d.udp += 1;
            }
            b.sub_bins[sub].0 += 1;
            return;
        }
        self.add(Ctr::Queries);
        if query_only {
            self.add(Ctr::QueryOnly);
        }
        self.add(Ctr::Qtype(qtype));
        self.add(if tcp { Ctr::Tcp } else { Ctr::Udp });
        self.add(Ctr::SubQueries(sub));
    }

    /// One more response.
    #[inline]
    pub fn add_response(&mut self, rcode: RcodeBucket) {
        if let Counts::Full(b) = &mut self.counts {
            b.dns.responses += 1;
            b.dns.rcode[rcode as usize] += 1;
            return;
        }
        self.add(Ctr::Responses);
        self.add(Ctr::Rcode(rcode));
    }

    /// One more of `c`.
    pub fn add(&mut self, c: Ctr) {
        let id = c.id();
        if let Counts::Few { pairs, .. } = &mut self.counts {
            match pairs.iter().position(|(i, _)| *i == id) {
                Some(k) if pairs[k].1 < u32::MAX => {
                    pairs[k].1 += 1;
                    return;
                }
                None if pairs.len() < FEW => {
                    if pairs.len() == pairs.capacity() {
                        // Room for four, then for all eight: no Vec doubling.
                        let more = if pairs.is_empty() {
                            4
                        } else {
                            FEW - pairs.len()
                        };
                        pairs.reserve_exact(more);
                    }
                    pairs.push((id, 1));
                    return;
                }
                _ => {}
            }
        }
        bump(self.full(), id, 1);
    }

    /// One more query to upstream server `ip`.
    #[inline]
    pub fn see_server(&mut self, ip: IpAddr) {
        if let Counts::Few { server, .. } = &mut self.counts {
            match server {
                None => {
                    *server = Some((ip, 1));
                    return;
                }
                Some((s, n)) if *s == ip && *n < u32::MAX => {
                    *n += 1;
                    return;
                }
                _ => {}
            }
        }
        self.full().see_server(ip);
    }

    /// The full counters (made from the few on first use).
    pub fn full(&mut self) -> &mut ClientBin {
        full(&mut self.counts)
    }

    /// Nothing counted.
    pub fn is_empty(&self) -> bool {
        match &self.counts {
            // As ClientBin::is_empty: the DNS and SMTP counters (not sub-bins).
            Counts::Few { pairs, .. } => pairs.iter().all(|(id, _)| *id >= SUB0),
            Counts::Full(b) => b.is_empty(),
        }
    }

    pub fn see_name(&mut self, h: u64) {
        see(&mut self.names, &mut self.counts, h, ClientBin::see_name);
    }

    pub fn see_mx_name(&mut self, h: u64) {
        see(
            &mut self.mx_names,
            &mut self.counts,
            h,
            ClientBin::see_mx_name,
        );
    }

    /// The bin's counters, with the distinct counts filled in and the
    /// sketches freed (at the close), or kept (`keep_sketches`: to publish them).
    pub fn close(mut self, keep_sketches: bool) -> Box<ClientBin> {
        let b = full(&mut self.counts);
        for p in self.names.spill() {
            b.see_name(p);
        }
        for p in self.mx_names.spill() {
            b.see_mx_name(p);
        }
        let Counts::Full(mut bin) = self.counts else {
            unreachable!("made full above")
        };
        bin.finalize();
        if !keep_sketches {
            bin.release_sketches();
        }
        bin
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::names::fast_hash;

    /// The estimates are those of the plain bitmap, below, at and above the
    /// array's size, with repeats.
    #[test]
    fn the_small_array_gives_the_bitmaps_estimates() {
        for n in [0u64, 1, 2, 6, 7, 8, 9, 30, 1000] {
            let mut plain = ClientBin::default();
            let mut open = OpenBin::default();
            for i in 0..n {
                for _ in 0..2 {
                    let h = fast_hash(format!("host{i}.example.com").as_bytes());
                    plain.see_name(h);
                    open.see_name(h);
                    let m = fast_hash(format!("d{}.example", i % 5).as_bytes());
                    plain.see_mx_name(m);
                    open.see_mx_name(m);
                }
            }
            plain.finalize();
            let closed = open.close(false);
            assert_eq!(closed.dns, plain.dns, "{n} names");
        }
    }

    use proptest::prelude::*;

    /// One step of what the classifier does to a client's open bin.
    #[derive(Debug, Clone)]
    enum Op {
        Add(u8),
        Query(u8),
        Response(u8),
        Server(u8),
        Name(u16),
        MxName(u16),
        Sample,
        Smtp,
    }

    fn ctr(i: u8) -> Ctr {
        let q = QtypeBucket::ALL;
        let r = RcodeBucket::ALL;
        match i % 12 {
            0 => Ctr::Queries,
            1 => Ctr::Responses,
            2 => Ctr::UnresolvedFqdn,
            3 => Ctr::UnresolvedNxdomain,
            4 => Ctr::Unanswered,
            5 => Ctr::QueryOnly,
            6 => Ctr::Udp,
            7 => Ctr::Tcp,
            8 => Ctr::Qtype(q[usize::from(i / 12) % q.len()]),
            9 => Ctr::Rcode(r[usize::from(i / 12) % r.len()]),
            10 => Ctr::SubQueries(usize::from(i / 12) % SUB_BINS),
            _ => Ctr::SubUnresolved(usize::from(i / 12) % SUB_BINS),
        }
    }

    fn apply(o: &mut OpenBin, op: &Op) {
        match op {
            Op::Add(i) => o.add(ctr(*i)),
            Op::Query(i) => o.add_query(
                QtypeBucket::ALL[usize::from(*i) % 6],
                i & 0x40 != 0,
                usize::from(*i) % SUB_BINS,
                i & 0x80 != 0,
            ),
            Op::Response(i) => o.add_response(RcodeBucket::ALL[usize::from(*i) % 5]),
            Op::Server(i) => o.see_server(IpAddr::from([192, 0, 2, i % 3])),
            Op::Name(h) => o.see_name(u64::from(*h)),
            Op::MxName(h) => o.see_mx_name(u64::from(*h)),
            Op::Sample => ClientBin::sample(&mut o.full().sample_mx, "mx.example"),
            Op::Smtp => o.full().smtp.connections += 1,
        }
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            8 => any::<u8>().prop_map(Op::Add),
            4 => any::<u8>().prop_map(Op::Query),
            2 => any::<u8>().prop_map(Op::Response),
            3 => any::<u8>().prop_map(Op::Server),
            2 => (0u16..64).prop_map(Op::Name),
            1 => (0u16..64).prop_map(Op::MxName),
            1 => Just(Op::Sample),
            1 => Just(Op::Smtp),
        ]
    }

    proptest! {
        /// The few pairs close to the same bin as the full counters from the
        /// first event (every counter, the servers in order, samples,
        /// distinct counts), whenever the promotion happens.
        #[test]
        fn few_pairs_close_to_what_full_counters_close_to(ops in proptest::collection::vec(op(), 0..40)) {
            let mut compact = OpenBin::default();
            let mut full = OpenBin::default();
            full.full();
            for op in &ops {
                apply(&mut compact, op);
                apply(&mut full, op);
            }
            prop_assert_eq!(compact.is_empty(), full.is_empty());
            let (a, b) = (compact.close(false), full.close(false));
            prop_assert_eq!(format!("{a:?}"), format!("{b:?}"));
        }
    }

    #[test]
    fn a_one_query_client_stays_few() {
        let mut o = OpenBin::default();
        for c in [
            Ctr::Queries,
            Ctr::Qtype(QtypeBucket::A),
            Ctr::Udp,
            Ctr::SubQueries(3),
        ] {
            o.add(c);
        }
        o.see_server(IpAddr::from([192, 0, 2, 53]));
        o.see_name(fast_hash(b"www.example.com"));
        assert!(matches!(o.counts, Counts::Few { .. }), "{o:?}");
        let b = o.close(false);
        assert_eq!((b.dns.queries, b.dns.udp, b.sub_bins[3].0), (1, 1, 1));
        assert_eq!(b.dns.distinct_names, 1);
        assert_eq!(b.servers, vec![(IpAddr::from([192, 0, 2, 53]), 1)]);
    }
}
