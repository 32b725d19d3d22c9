//! The fragment table as a specification: orders, duplicates, overlaps,
//! holes, floods, IPv6 identifications; and properties over arbitrary
//! fragment sequences (never a panic, never over a cap, any order of a
//! complete set gives the original datagram back).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;

use super::*;

const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 31));
const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53));

fn dns_only(s: u16, d: u16) -> bool {
    s == 53 || d == 53
}

fn any_port(_: u16, _: u16) -> bool {
    true
}

/// A UDP datagram to port 53 of `len` bytes (header included), each byte
/// after the header telling its offset.
fn datagram(len: usize) -> Vec<u8> {
    let mut d = vec![0xc0, 0x01, 0, 53];
    d.extend((len as u16).to_be_bytes());
    d.extend([0, 0]);
    d.extend((8..len).map(|i| (i % 251) as u8));
    d
}

/// Cuts a datagram into fragments of `size` bytes (a multiple of 8).
fn cut(d: &[u8], size: usize) -> Vec<(u32, bool, Vec<u8>)> {
    d.chunks(size)
        .enumerate()
        .map(|(i, c)| ((i * size) as u32, (i + 1) * size < d.len(), c.to_vec()))
        .collect()
}

#[derive(Default)]
struct Out {
    whole: Vec<Vec<u8>>,
    partial: Vec<Vec<u8>>,
}

fn feed(r: &mut Reassembler, ts: i64, id: u32, frags: &[(u32, bool, Vec<u8>)], out: &mut Out) {
    for (offset, more, data) in frags {
        let f = Fragment {
            src: CLIENT,
            dst: SERVER,
            id,
            offset: *offset,
            more: *more,
            data,
        };
        r.add(ts, &f, &mut |rel| {
            if rel.whole {
                out.whole.push(rel.udp.to_vec());
            } else {
                out.partial.push(rel.udp.to_vec());
            }
        });
    }
}

#[test]
fn in_order_reverse_and_shuffled_fragments_reassemble() {
    let d = datagram(1000);
    for order in [
        vec![0, 1, 2, 3, 4],
        vec![4, 3, 2, 1, 0],
        vec![2, 0, 4, 1, 3],
    ] {
        let frags = cut(&d, 200);
        let shuffled: Vec<_> = order.iter().map(|&i| frags[i].clone()).collect();
        let mut r = Reassembler::new(DefragLimits::default(), dns_only);
        let mut out = Out::default();
        feed(&mut r, 0, 7, &shuffled, &mut out);
        assert_eq!(out.whole, vec![d.clone()], "order {order:?}");
        assert!(out.partial.is_empty());
        let s = r.stats();
        assert_eq!(
            (s.completed, s.overlaps, s.datagrams_in_progress),
            (1, 0, 0)
        );
        assert_eq!(s.bytes_held, 0);
    }
}

#[test]
fn duplicates_and_overlaps_keep_the_first_bytes() {
    let d = datagram(48);
    let mut r = Reassembler::new(DefragLimits::default(), dns_only);
    let mut out = Out::default();
    // 0..24, then a forged 16..40 with other bytes, then 24..48 (last).
    feed(&mut r, 0, 1, &[(0, true, d[..24].to_vec())], &mut out);
    feed(&mut r, 0, 1, &[(0, true, d[..24].to_vec())], &mut out); // duplicate
    feed(&mut r, 0, 1, &[(16, true, vec![0xee; 24])], &mut out);
    feed(&mut r, 0, 1, &[(24, false, d[24..].to_vec())], &mut out);
    let mut expect = d.clone();
    expect[24..40].fill(0xee); // 24..40 came first from the forged fragment
    assert_eq!(out.whole, vec![expect]);
    let s = r.stats();
    assert_eq!((s.completed, s.overlaps), (1, 3), "{s:?}");
}

#[test]
fn a_second_end_and_bytes_past_the_end_lose_to_the_first_claim() {
    let d = datagram(40);
    let mut r = Reassembler::new(DefragLimits::default(), dns_only);
    let mut out = Out::default();
    feed(&mut r, 0, 3, &[(24, false, d[24..].to_vec())], &mut out);
    feed(&mut r, 0, 3, &[(32, false, vec![1; 16])], &mut out); // claims end 48
    feed(&mut r, 0, 3, &[(0, true, d[..24].to_vec())], &mut out);
    assert_eq!(out.whole, vec![d]);
    assert_eq!(r.stats().overlaps, 1);
}

#[test]
fn a_missing_fragment_times_out_and_the_first_fragment_is_read() {
    let d = datagram(600);
    let frags = cut(&d, 200);
    let limits = DefragLimits {
        timeout_micros: 1_000_000,
        ..DefragLimits::default()
    };
    let mut r = Reassembler::new(limits, dns_only);
    let mut out = Out::default();
    feed(
        &mut r,
        0,
        9,
        &[frags[0].clone(), frags[2].clone()],
        &mut out,
    );
    assert_eq!(r.deadline(), 1_000_000);
    r.expire(999_999, &mut |_| panic!("not yet"));
    r.expire(1_000_000, &mut |rel| out.partial.push(rel.udp.to_vec()));
    assert_eq!(out.partial, vec![d[..200].to_vec()]);
    assert!(out.whole.is_empty());
    let s = r.stats();
    assert_eq!((s.timed_out, s.first_fragment_fallbacks), (1, 1));
    assert_eq!(r.deadline(), i64::MAX);
    // Without the first fragment there is nothing to read.
    feed(&mut r, 2_000_000, 10, &[frags[1].clone()], &mut out);
    r.flush(&mut |_| panic!("no first fragment"));
    assert_eq!(r.stats().unfinished_at_end, 1);
}

#[test]
fn other_ports_are_not_buffered() {
    let mut d = datagram(400);
    d[2..4].copy_from_slice(&2049u16.to_be_bytes()); // NFS
    d[0..2].copy_from_slice(&700u16.to_be_bytes());
    let frags = cut(&d, 200);
    let mut r = Reassembler::new(DefragLimits::default(), dns_only);
    let mut out = Out::default();
    feed(&mut r, 0, 4, &frags[..1], &mut out);
    assert!(r.bytes_held() < 200 + ENTRY_OVERHEAD, "{}", r.bytes_held());
    feed(&mut r, 0, 4, &frags[1..], &mut out);
    assert!(out.whole.is_empty() && out.partial.is_empty());
    assert_eq!((r.stats().other_ports, r.in_progress()), (1, 0));
}

#[test]
fn ipv6_identifications_are_32_bits_and_keyed_by_address() {
    let a = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1));
    let b = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 0x53));
    let d = datagram(64);
    let mut r = Reassembler::new(DefragLimits::default(), dns_only);
    let mut n = 0;
    // Same low 16 bits, different 32-bit ids: two datagrams.
    for id in [0x0001_0007u32, 0x0002_0007] {
        let f = Fragment {
            src: a,
            dst: b,
            id,
            offset: 0,
            more: true,
            data: &d[..32],
        };
        r.add(0, &f, &mut |_| n += 1);
    }
    assert_eq!(r.in_progress(), 2);
    let f = Fragment {
        src: a,
        dst: b,
        id: 0x0002_0007,
        offset: 32,
        more: false,
        data: &d[32..],
    };
    let mut got = Vec::new();
    r.add(0, &f, &mut |rel| got.push((rel.whole, rel.udp.to_vec())));
    assert_eq!(got, vec![(true, d.clone())]);
    assert_eq!(n, 0);
}

/// Issue 13: a flood of a million first fragments that never complete keeps
/// the table within its caps, and every one given up is counted.
#[test]
fn a_million_fragment_starts_stay_within_the_caps() {
    let limits = DefragLimits {
        max_datagrams: 1000,
        max_total_bytes: 1 << 20,
        ..DefragLimits::default()
    };
    let mut r = Reassembler::new(limits, dns_only);
    let d = datagram(520);
    let mut fallbacks = 0u64;
    let mut peak = (0, 0);
    for i in 0..1_000_000u32 {
        let f = Fragment {
            src: IpAddr::V4(Ipv4Addr::from(0x0a00_0000 + (i >> 16))),
            dst: SERVER,
            id: i & 0xffff,
            offset: 0,
            more: true,
            data: &d[..512],
        };
        r.add(i64::from(i) * 10, &f, &mut |rel| {
            assert!(!rel.whole);
            fallbacks += 1;
        });
        peak = (peak.0.max(r.in_progress()), peak.1.max(r.bytes_held()));
    }
    let s = r.stats();
    assert!(peak.0 <= 1000 && peak.1 <= 1 << 20, "peak {peak:?}");
    assert_eq!(s.fragments, 1_000_000);
    assert_eq!(
        s.evicted + s.timed_out + s.datagrams_in_progress,
        1_000_000,
        "{s:?}"
    );
    assert_eq!(fallbacks, s.evicted + s.timed_out);
    assert!(r.queue.len() <= 2 * r.table.len() + 65);
}

#[test]
fn the_byte_budget_evicts_the_oldest() {
    let limits = DefragLimits {
        max_total_bytes: 4096,
        max_datagram_bytes: 2048,
        ..DefragLimits::default()
    };
    let mut r = Reassembler::new(limits, any_port);
    let d = datagram(2048);
    for id in 0..10 {
        feed(
            &mut r,
            0,
            id,
            &[(0, true, d[..1500].to_vec())],
            &mut Out::default(),
        );
        assert!(r.bytes_held() <= 4096, "{}", r.bytes_held());
    }
    assert!(r.stats().evicted >= 8, "{:?}", r.stats());
    // A datagram past its own cap is given up.
    feed(
        &mut r,
        0,
        99,
        &[(2048, false, vec![0; 8])],
        &mut Out::default(),
    );
    assert_eq!(r.stats().over_limit, 1);
}

/// One fragment of an arbitrary sequence.
fn arb_fragment() -> impl Strategy<Value = (u8, u16, bool, Vec<u8>, u8)> {
    (
        0u8..4,        // id
        0u16..1200,    // offset in 8-byte units... and odd ones
        any::<bool>(), // more
        prop::collection::vec(any::<u8>(), 0..300),
        0u8..20, // time step
    )
}

proptest! {
    /// Arbitrary fragments never panic, never exceed a cap, and everything
    /// given up is counted.
    #[test]
    fn arbitrary_fragments_stay_within_caps(frags in prop::collection::vec(arb_fragment(), 0..200),
                                            max_datagrams in 1usize..5,
                                            max_total in 1024usize..8192) {
        let limits = DefragLimits {
            max_datagrams,
            max_datagram_bytes: 1024.min(max_total),
            max_total_bytes: max_total,
            max_fragments_per_datagram: 16,
            timeout_micros: 50,
        };
        let mut r = Reassembler::new(limits, any_port);
        let mut ts = 0;
        let mut released = 0u64;
        for (id, offset, more, data, step) in frags {
            ts += i64::from(step);
            let f = Fragment { src: CLIENT, dst: SERVER, id: u32::from(id), offset: u32::from(offset) * 7, more, data: &data };
            r.add(ts, &f, &mut |rel| {
                // Whole datagrams may be tiny; one read from its first fragment has a UDP header.
                assert!(rel.udp.len() <= 1024 && (rel.whole || rel.udp.len() >= 8));
                released += 1;
            });
            prop_assert!(r.in_progress() <= max_datagrams);
            prop_assert!(r.bytes_held() <= max_total, "{} > {}", r.bytes_held(), max_total);
        }
        r.flush(&mut |_| released += 1);
        let s = r.stats();
        prop_assert_eq!(s.datagrams_in_progress, 0);
        prop_assert_eq!(s.bytes_held, 0);
        prop_assert_eq!(released, s.completed + s.first_fragment_fallbacks);
    }

    /// A complete set of fragments, in any order, with duplicates, gives the
    /// original datagram back, once.
    #[test]
    fn any_order_of_a_complete_set_reassembles(len in 9usize..4000, size8 in 1usize..200,
                                               perm in prop::collection::vec(any::<prop::sample::Index>(), 1..60),
                                               dups in prop::collection::vec(any::<prop::sample::Index>(), 0..5)) {
        let d = datagram(len);
        let frags = cut(&d, size8 * 8);
        let mut order: Vec<usize> = (0..frags.len()).collect();
        for (i, p) in perm.iter().enumerate() {
            let j = p.index(order.len());
            let n = order.len();
            order.swap(i % n, j);
        }
        let mut seq: Vec<_> = order.iter().map(|&i| frags[i].clone()).collect();
        // Duplicates before the last fragment in: they must not change a byte.
        let last = seq.pop().unwrap();
        for p in &dups {
            let dup = frags[p.index(frags.len())].clone();
            if dup != last {
                seq.push(dup);
            }
        }
        seq.push(last);
        let mut r = Reassembler::new(DefragLimits::default(), dns_only);
        let mut out = Out::default();
        feed(&mut r, 0, 1, &seq, &mut out);
        if frags.len() == 1 {
            // One "fragment" with offset 0 and no more: complete at once.
            prop_assert_eq!(out.whole.len(), 1);
        }
        prop_assert_eq!(out.whole, vec![d]);
        prop_assert!(out.partial.is_empty());
        prop_assert_eq!(r.in_progress(), 0);
    }
}
