//! Arbitrary fragment sequences through the IP reassembler with small caps:
//! nothing may panic, the table never exceeds its caps, and every datagram
//! released is counted once (completed or from its first fragment).
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use mxwatch::decode::defrag::{DefragLimits, Fragment, Reassembler};

fuzz_target!(|data: &[u8]| {
    let limits = DefragLimits {
        max_datagrams: 4,
        max_datagram_bytes: 2048,
        max_total_bytes: 8192,
        max_fragments_per_datagram: 32,
        timeout_micros: 100,
    };
    let mut r = Reassembler::new(limits, |_, _| true);
    let mut released = 0u64;
    let mut ts = 0i64;
    // Each fragment: id (1 byte), offset (2 bytes, in bytes), flags (1 byte:
    // bit 0 more, bits 1-7 time step), length (1 byte), then its bytes.
    let mut rest = data;
    while rest.len() >= 5 {
        let (h, tail) = rest.split_at(5);
        let len = usize::from(h[4]).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        ts += i64::from(h[3] >> 1);
        let f = Fragment {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53)),
            id: u32::from(h[0] & 7),
            offset: u32::from(u16::from_be_bytes([h[1], h[2]])),
            more: h[3] & 1 != 0,
            data: bytes,
        };
        r.add(ts, &f, &mut |rel| {
            assert!(rel.udp.len() <= 2048 && (rel.whole || rel.udp.len() >= 8));
            released += 1;
        });
        assert!(r.in_progress() <= 4 && r.bytes_held() <= 8192);
    }
    r.flush(&mut |_| released += 1);
    let s = r.stats();
    assert_eq!(released, s.completed + s.first_fragment_fallbacks);
    assert_eq!((s.datagrams_in_progress, s.bytes_held), (0, 0));
});
