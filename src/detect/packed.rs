//! A client's detector state between bins, packed into a few dozen bytes
//! (#12, memory per tracked client).
//!
//! Every tracked client has a baseline and a window of its last
//! `confirm_bins` bins, and most of them are quiet: their bins hold a
//! handful of counts among some fifty counters, their baselines a few
//! non-zero rates. So between bins the state is kept as bytes: LEB128
//! varints for counts and times (zigzag for signed), a bit mask saying
//! which counters and rates are non-zero, and the non-zero rates as their
//! exact 8-byte IEEE bits. Unpacking gives back exactly the values packed
//! (checked by a property test), so detection is the same to the bit.
//!
//! The structs are destructured field by field, without `..`: a counter
//! added to `DnsCounts`, `SmtpCounts`, `BinSummary` or `Baselines` does not
//! compile here until it is packed too.

use std::net::IpAddr;

use crate::classify::{DnsCounts, SUB_BINS, SmtpCounts};

use super::window::{Baselines, BinSummary};

/// What the detector keeps per client besides its open incidents.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct State {
    /// The last `confirm_bins` bins, oldest first.
    pub recent: Vec<BinSummary>,
    pub base: Baselines,
    pub server: Option<IpAddr>,
    /// Seen receiving SMTP sessions: a mail server.
    pub smtp_server: bool,
    /// Quiet bins (learnt from) with MX lookups.
    pub mx_quiet_bins: u32,
}

/// Counters of a bin, in packing order: 13 DNS fields (22 numbers), 9 SMTP,
/// 2 per sub-bin.
const NUMBERS: usize = 22 + 9 + 2 * SUB_BINS;
/// Mask bits after the numbers: which lists are not empty.
const LISTS: usize = 4;
const _: () = assert!(NUMBERS + LISTS <= 64);

impl State {
    pub fn pack(&self, out: &mut Vec<u8>) {
        let State {
            recent,
            base,
            server,
            smtp_server,
            mx_quiet_bins,
        } = self;
        out.clear();
        let Baselines {
            bins,
            qps,
            mx_qps,
            a_qps,
            ptr_qps,
            responses_ps,
            nxdomain_ps,
            unresolved_ps,
            user_unknown_ps,
            outbound_ps,
        } = base;
        varint(out, *bins);
        varint(out, u64::from(*mx_quiet_bins));
        let family = match server {
            None => 0,
            Some(IpAddr::V4(_)) => 1,
            Some(IpAddr::V6(_)) => 2,
        };
        out.push(u8::from(*smtp_server) | (family << 1));
        match server {
            Some(IpAddr::V4(a)) => out.extend(a.octets()),
            Some(IpAddr::V6(a)) => out.extend(a.octets()),
            None => {}
        }
        let rates = [
            qps,
            mx_qps,
            a_qps,
            ptr_qps,
            responses_ps,
            nxdomain_ps,
            unresolved_ps,
            user_unknown_ps,
            outbound_ps,
        ];
        let mask = rates
            .iter()
            .enumerate()
            .filter(|(_, r)| r.to_bits() != 0)
            .fold(0u64, |m, (i, _)| m | 1 << i);
        varint(out, mask);
        for r in rates.iter().filter(|r| r.to_bits() != 0) {
            out.extend(r.to_bits().to_le_bytes());
        }
        varint(out, recent.len() as u64);
        let mut prev_end = 0i64;
        for b in recent {
            pack_bin(out, b, prev_end);
            prev_end = b.end;
        }
    }

    pub fn unpack(bytes: &[u8]) -> State {
        let mut r = Reader { b: bytes, at: 0 };
        let bins = r.varint();
        let mx_quiet_bins = r.varint() as u32;
        let flags = r.byte();
        let server = match flags >> 1 {
            1 => Some(IpAddr::from(r.array::<4>())),
            2 => Some(IpAddr::from(r.array::<16>())),
            _ => None,
        };
        let mask = r.varint();
        let mut rates = [0f64; 9];
        for (i, x) in rates.iter_mut().enumerate() {
            if mask & 1 << i != 0 {
                *x = f64::from_bits(u64::from_le_bytes(r.array::<8>()));
            }
        }
        let [
            qps,
            mx_qps,
            a_qps,
            ptr_qps,
            responses_ps,
            nxdomain_ps,
            unresolved_ps,
            user_unknown_ps,
            outbound_ps,
        ] = rates;
        let n = r.varint() as usize;
        let mut recent = Vec::with_capacity(n + 1);
        let mut prev_end = 0i64;
        for _ in 0..n {
            let b = unpack_bin(&mut r, prev_end);
            prev_end = b.end;
            recent.push(b);
        }
        debug_assert_eq!(r.at, bytes.len(), "unpacked every byte");
        State {
            recent,
            base: Baselines {
                bins,
                qps,
                mx_qps,
                a_qps,
                ptr_qps,
                responses_ps,
                nxdomain_ps,
                unresolved_ps,
                user_unknown_ps,
                outbound_ps,
            },
            server,
            smtp_server: flags & 1 != 0,
            mx_quiet_bins,
        }
    }
}

fn pack_bin(out: &mut Vec<u8>, b: &BinSummary, prev_end: i64) {
    let BinSummary {
        start,
        end,
        dns,
        smtp,
        sub_bins,
        sample_unresolved,
        sample_mx,
        sample_rejected,
        smtp_peers,
    } = b;
    zigzag(out, start.wrapping_sub(prev_end));
    zigzag(out, end.wrapping_sub(*start));
    let numbers = numbers(dns, smtp, sub_bins);
    let lists = [
        !sample_unresolved.is_empty(),
        !sample_mx.is_empty(),
        !sample_rejected.is_empty(),
        !smtp_peers.is_empty(),
    ];
    let mut mask = 0u64;
    for (i, n) in numbers.iter().enumerate() {
        if *n != 0 {
            mask |= 1 << i;
        }
    }
    for (i, l) in lists.iter().enumerate() {
        if *l {
            mask |= 1 << (NUMBERS + i);
        }
    }
    varint(out, mask);
    for n in numbers.iter().filter(|n| **n != 0) {
        varint(out, *n);
    }
    for list in [sample_unresolved, sample_mx, sample_rejected] {
        if !list.is_empty() {
            varint(out, list.len() as u64);
            for s in list {
                varint(out, s.len() as u64);
                out.extend(s.as_bytes());
            }
        }
    }
    if !smtp_peers.is_empty() {
        varint(out, smtp_peers.len() as u64);
        for (ip, n) in smtp_peers {
            match ip {
                IpAddr::V4(a) => {
                    out.push(4);
                    out.extend(a.octets());
                }
                IpAddr::V6(a) => {
                    out.push(6);
                    out.extend(a.octets());
                }
            }
            varint(out, *n);
        }
    }
}

fn unpack_bin(r: &mut Reader<'_>, prev_end: i64) -> BinSummary {
    let start = prev_end.wrapping_add(r.zigzag());
    let end = start.wrapping_add(r.zigzag());
    let mask = r.varint();
    let mut n = [0u64; NUMBERS];
    for (i, x) in n.iter_mut().enumerate() {
        if mask & 1 << i != 0 {
            *x = r.varint();
        }
    }
    let has = |i: usize| mask & 1 << (NUMBERS + i) != 0;
    let mut samples: [Vec<Box<str>>; 3] = Default::default();
    for (i, list) in samples.iter_mut().enumerate() {
        if has(i) {
            let k = r.varint() as usize;
            for _ in 0..k {
                let len = r.varint() as usize;
                let s = std::str::from_utf8(r.take(len)).expect("packed from a str");
                list.push(s.into());
            }
        }
    }
    let mut smtp_peers = Vec::new();
    if has(3) {
        let k = r.varint() as usize;
        for _ in 0..k {
            let ip = match r.byte() {
                4 => IpAddr::from(r.array::<4>()),
                _ => IpAddr::from(r.array::<16>()),
            };
            smtp_peers.push((ip, r.varint()));
        }
    }
    let (dns, smtp, sub_bins) = from_numbers(&n);
    let [sample_unresolved, sample_mx, sample_rejected] = samples;
    BinSummary {
        start,
        end,
        dns,
        smtp,
        sub_bins,
        sample_unresolved,
        sample_mx,
        sample_rejected,
        smtp_peers,
    }
}

fn numbers(
    dns: &DnsCounts,
    smtp: &SmtpCounts,
    sub_bins: &[(u32, u32); SUB_BINS],
) -> [u64; NUMBERS] {
    let DnsCounts {
        queries,
        qtype,
        responses,
        rcode,
        unresolved_fqdn,
        unresolved_nxdomain,
        unanswered,
        query_only,
        udp,
        tcp,
        distinct_names,
        distinct_names_capped,
        distinct_mx_names,
    } = dns;
    let SmtpCounts {
        connections,
        mail_from,
        null_sender,
        rcpt,
        rcpt_rejected,
        user_unknown,
        outbound,
        distinct_clients,
        encrypted,
    } = smtp;
    let mut n = [0u64; NUMBERS];
    let mut at = 0;
    let mut put = |x: u64| {
        n[at] = x;
        at += 1;
    };
    put(*queries);
    qtype.iter().for_each(|x| put(*x));
    put(*responses);
    rcode.iter().for_each(|x| put(*x));
    for x in [
        unresolved_fqdn,
        unresolved_nxdomain,
        unanswered,
        query_only,
        udp,
        tcp,
        distinct_names,
    ] {
        put(*x);
    }
    put(u64::from(*distinct_names_capped));
    put(*distinct_mx_names);
    for x in [
        connections,
        mail_from,
        null_sender,
        rcpt,
        rcpt_rejected,
        user_unknown,
        outbound,
        distinct_clients,
        encrypted,
    ] {
        put(*x);
    }
    for (t, u) in sub_bins {
        put(u64::from(*t));
        put(u64::from(*u));
    }
    debug_assert_eq!(at, NUMBERS);
    n
}

fn from_numbers(n: &[u64; NUMBERS]) -> (DnsCounts, SmtpCounts, [(u32, u32); SUB_BINS]) {
    let mut it = n.iter().copied();
    let mut next = || it.next().expect("NUMBERS numbers");
    let queries = next();
    let qtype = std::array::from_fn(|_| next());
    let responses = next();
    let rcode = std::array::from_fn(|_| next());
    let dns = DnsCounts {
        queries,
        qtype,
        responses,
        rcode,
        unresolved_fqdn: next(),
        unresolved_nxdomain: next(),
        unanswered: next(),
        query_only: next(),
        udp: next(),
        tcp: next(),
        distinct_names: next(),
        distinct_names_capped: next() != 0,
        distinct_mx_names: next(),
    };
    let smtp = SmtpCounts {
        connections: next(),
        mail_from: next(),
        null_sender: next(),
        rcpt: next(),
        rcpt_rejected: next(),
        user_unknown: next(),
        outbound: next(),
        distinct_clients: next(),
        encrypted: next(),
    };
    // Packed from u32s.
    let sub_bins = std::array::from_fn(|_| (next() as u32, next() as u32));
    (dns, smtp, sub_bins)
}

fn varint(out: &mut Vec<u8>, mut x: u64) {
    while x >= 0x80 {
        out.push(x as u8 | 0x80);
        x >>= 7;
    }
    out.push(x as u8);
}

fn zigzag(out: &mut Vec<u8>, x: i64) {
    varint(out, ((x << 1) ^ (x >> 63)) as u64);
}

/// Reads back what this module packed (a malformed buffer is a bug: panics).
struct Reader<'a> {
    b: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn byte(&mut self) -> u8 {
        let x = self.b[self.at];
        self.at += 1;
        x
    }

    fn take(&mut self, n: usize) -> &'a [u8] {
        let s = &self.b[self.at..self.at + n];
        self.at += n;
        s
    }

    fn array<const N: usize>(&mut self) -> [u8; N] {
        self.take(N).try_into().expect("N bytes")
    }

    fn varint(&mut self) -> u64 {
        let mut x = 0u64;
        let mut shift = 0;
        loop {
            let b = self.byte();
            x |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return x;
            }
            shift += 7;
        }
    }

    fn zigzag(&mut self) -> i64 {
        let z = self.varint();
        ((z >> 1) as i64) ^ -((z & 1) as i64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<[u8; 4]>().prop_map(IpAddr::from),
            any::<[u8; 16]>().prop_map(IpAddr::from),
        ]
    }

    /// Small numbers mostly (as in practice), any u64 sometimes.
    fn count() -> impl Strategy<Value = u64> {
        prop_oneof![4 => Just(0u64), 3 => 0u64..300, 1 => any::<u64>()]
    }

    fn rate() -> impl Strategy<Value = f64> {
        prop_oneof![
            3 => Just(0.0),
            3 => 0.0f64..1e4,
            1 => any::<f64>(),
            1 => Just(-0.0),
            1 => Just(f64::NAN),
        ]
    }

    fn samples() -> impl Strategy<Value = Vec<Box<str>>> {
        proptest::collection::vec(".{0,40}".prop_map(|s: String| s.into_boxed_str()), 0..4)
    }

    fn bin() -> impl Strategy<Value = BinSummary> {
        (
            (any::<i64>(), any::<i64>()),
            proptest::collection::vec(count(), 22 + 9),
            proptest::collection::vec((0u32..5, any::<u32>()), SUB_BINS),
            (samples(), samples(), samples()),
            proptest::collection::vec((any_ip(), count()), 0..5),
            any::<bool>(),
        )
            .prop_map(|((start, end), c, sub, (su, sm, sr), peers, capped)| {
                let mut n = [0u64; NUMBERS];
                n[..31].copy_from_slice(&c);
                n[20] = u64::from(capped); // distinct_names_capped is a bool
                let (dns, smtp, _) = from_numbers(&n);
                BinSummary {
                    start,
                    end,
                    dns,
                    smtp,
                    sub_bins: sub.try_into().unwrap(),
                    sample_unresolved: su,
                    sample_mx: sm,
                    sample_rejected: sr,
                    smtp_peers: peers,
                }
            })
    }

    fn state() -> impl Strategy<Value = State> {
        (
            proptest::collection::vec(bin(), 0..4),
            count(),
            proptest::collection::vec(rate(), 9),
            proptest::option::of(any_ip()),
            any::<bool>(),
            any::<u32>(),
        )
            .prop_map(
                |(recent, bins, r, server, smtp_server, mx_quiet_bins)| State {
                    recent,
                    base: Baselines {
                        bins,
                        qps: r[0],
                        mx_qps: r[1],
                        a_qps: r[2],
                        ptr_qps: r[3],
                        responses_ps: r[4],
                        nxdomain_ps: r[5],
                        unresolved_ps: r[6],
                        user_unknown_ps: r[7],
                        outbound_ps: r[8],
                    },
                    server,
                    smtp_server,
                    mx_quiet_bins,
                },
            )
    }

    /// Bit-exact equality (NaN rates included).
    fn same(a: &State, b: &State) -> bool {
        let bits = |s: &State| {
            let b = &s.base;
            [
                b.qps,
                b.mx_qps,
                b.a_qps,
                b.ptr_qps,
                b.responses_ps,
                b.nxdomain_ps,
                b.unresolved_ps,
                b.user_unknown_ps,
                b.outbound_ps,
            ]
            .map(f64::to_bits)
        };
        bits(a) == bits(b)
            && a.recent == b.recent
            && a.base.bins == b.base.bins
            && (a.server, a.smtp_server, a.mx_quiet_bins)
                == (b.server, b.smtp_server, b.mx_quiet_bins)
    }

    proptest! {
        #[test]
        fn unpack_gives_back_exactly_what_was_packed(s in state()) {
            let mut buf = Vec::new();
            s.pack(&mut buf);
            let back = State::unpack(&buf);
            prop_assert!(same(&s, &back), "{s:?}\n{back:?}");
        }
    }

    /// A quiet client (a few queries in its window) packs small.
    #[test]
    fn a_quiet_client_is_a_few_dozen_bytes() {
        let mut s = State {
            server: Some(IpAddr::from([192, 0, 2, 53])),
            ..State::default()
        };
        s.base.bins = 7;
        s.base.qps = 0.02;
        s.base.a_qps = 0.02;
        for k in 0..2i64 {
            let mut b = BinSummary::queries(k * 60_000_000, (k + 1) * 60_000_000, 1, 0, 0);
            b.dns.udp = 1;
            b.dns.distinct_names = 1;
            b.sub_bins[3].0 = 1;
            b.start += 1_768_471_200_000_000;
            b.end += 1_768_471_200_000_000;
            s.recent.push(b);
        }
        let mut buf = Vec::new();
        s.pack(&mut buf);
        assert!(buf.len() <= 64, "{} bytes", buf.len());
        assert_eq!(State::unpack(&buf), s);
    }
}
