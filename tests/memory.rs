//! Memory per tracked client (#12), counted exactly: a global allocator that
//! keeps the bytes live on the heap, around the single-threaded engine at the
//! default settings. 100,000 spoofed clients send one query each in one bin;
//! then a few bins pass with only one other client active. Printed (`cargo
//! test --release --test memory -- --nocapture`): heap bytes per client while
//! every client is active in the open bin, and per idle tracked client (the
//! classifier's table, the detector's state, the pending table) once the bin
//! has left every window. The bound on the idle figure keeps it from growing
//! back unnoticed (README, "Under attack").

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};

use clap::Parser;

use mxwatch::cli::{Cli, Command};
use mxwatch::config::Settings;
use mxwatch::decode::link::LinkType;
use mxwatch::engine::Engine;

struct Counting;

static LIVE: AtomicIsize = AtomicIsize::new(0);

// SAFETY: forwards to the system allocator; only counts.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, l: Layout) -> *mut u8 {
        LIVE.fetch_add(l.size() as isize, Ordering::Relaxed);
        unsafe { System.alloc(l) }
    }
    unsafe fn dealloc(&self, p: *mut u8, l: Layout) {
        LIVE.fetch_sub(l.size() as isize, Ordering::Relaxed);
        unsafe { System.dealloc(p, l) }
    }
    unsafe fn realloc(&self, p: *mut u8, l: Layout, new: usize) -> *mut u8 {
        LIVE.fetch_add(new as isize - l.size() as isize, Ordering::Relaxed);
        unsafe { System.realloc(p, l, new) }
    }
}

#[global_allocator]
static A: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// Ethernet/IPv4/UDP query for A www.example.com from `src`.
fn query(buf: &mut Vec<u8>, src: u32, id: u16) {
    let q = b"\x03www\x07example\x03com\x00\x00\x01\x00\x01";
    buf.clear();
    buf.extend([2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00]);
    let udp_len = 8 + 12 + q.len() as u16;
    buf.extend([0x45, 0]);
    buf.extend((20 + udp_len).to_be_bytes());
    buf.extend([0, 0, 0, 0, 64, 17, 0, 0]);
    buf.extend(src.to_be_bytes());
    buf.extend([192, 0, 2, 53]);
    buf.extend((1024 + (src % 60000) as u16).to_be_bytes());
    buf.extend(53u16.to_be_bytes());
    buf.extend(udp_len.to_be_bytes());
    buf.extend([0, 0]);
    buf.extend(id.to_be_bytes());
    buf.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    buf.extend(q);
}

#[test]
fn bytes_per_tracked_client() {
    const N: u32 = 99_999; // with the keeper: the default cap, 100,000
    const MIN: i64 = 60_000_000;
    let argv = ["mxwatch", "read", "unused.pcap"];
    let Command::Read(r) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    let s = Settings::build(&r.common).unwrap();
    let t0 = 1_768_471_200_000_000i64;
    let mut buf = Vec::with_capacity(128);
    let mut eng = Engine::new(&s.engine);
    let keeper = 0x0b00_0001u32;
    query(&mut buf, keeper, 0);
    eng.frame(0, LinkType::Ethernet, t0, &buf, buf.len() as u32);
    let base = live();
    for i in 0..N {
        query(&mut buf, 0x0a00_0000 + i, i as u16);
        eng.frame(
            0,
            LinkType::Ethernet,
            t0 + 1 + i64::from(i) * 20,
            &buf,
            buf.len() as u32,
        );
    }
    let active = live() - base;
    // Five more bins with only the keeper active: the flood's bin leaves
    // every window (confirm_bins 2) and the pending table.
    let mut closed = eng.take().len();
    for k in 1..=5 {
        query(&mut buf, keeper, k as u16);
        eng.frame(0, LinkType::Ethernet, t0 + k * MIN, &buf, buf.len() as u32);
        closed += eng.take().len();
    }
    let idle = live() - base;
    assert_eq!(eng.clients(), N as usize + 1);
    assert_eq!(closed, 5);
    let per_active = active as f64 / f64::from(N);
    let per_idle = idle as f64 / f64::from(N);
    eprintln!(
        "MEMORY {N} clients: heap per client active in the open bin {per_active:.0} B, \
         per idle tracked client {per_idle:.0} B"
    );
    drop(eng);
    assert!(per_idle <= 320.0, "{per_idle:.0} bytes per idle client");
    // 290 measured: a few (counter, count) pairs and one server until the
    // client does more (classify/open.rs), the table entry, the pending
    // query (722 with the full 470-byte ClientBin from the first event).
    assert!(
        per_active <= 320.0,
        "{per_active:.0} bytes per active client"
    );
}
