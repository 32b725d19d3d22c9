//! A spoofed flood: a million queries from a million client addresses must
//! not grow memory without limit; what the capped tables turn away or evict
//! is counted in capture_stats. (#2)

mod common;

use std::io::Write;

use common::*;

/// Writes a classic pcap of `n` DNS queries (Ethernet/IPv4/UDP), each from
/// its own source address, 20 µs apart.
fn spoofed_flood(path: &std::path::Path, n: u32) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    w.write_all(&common::pcap_header()).unwrap();
    let qname = b"\x03www\x07example\x03com\x00";
    for i in 0..n {
        let mut dns = Vec::new();
        dns.extend(((i & 0xffff) as u16).to_be_bytes());
        dns.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        dns.extend(qname);
        dns.extend([0, 1, 0, 1]);
        let udp_len = 8 + dns.len() as u16;
        let ip_len = 20 + udp_len;
        let src = 0x0a00_0000u32 + i; // 10.0.0.0 + i: every query a new client
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        f.extend([0x45, 0]);
        f.extend(ip_len.to_be_bytes());
        f.extend([0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend(src.to_be_bytes());
        f.extend([192, 0, 2, 53]);
        f.extend((1024 + (i % 60000) as u16).to_be_bytes());
        f.extend(53u16.to_be_bytes());
        f.extend(udp_len.to_be_bytes());
        f.extend([0, 0]);
        f.extend(&dns);
        let ts_us = 1_768_471_200_000_000u64 + u64::from(i) * 20;
        let mut rec = Vec::new();
        rec.extend(((ts_us / 1_000_000) as u32).to_le_bytes());
        rec.extend(((ts_us % 1_000_000) as u32).to_le_bytes());
        rec.extend((f.len() as u32).to_le_bytes());
        rec.extend((f.len() as u32).to_le_bytes());
        w.write_all(&rec).unwrap();
        w.write_all(&f).unwrap();
    }
    w.flush().unwrap();
}

fn max_rss_of_children_kib() -> i64 {
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: getrusage fills the struct we own.
    unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    ru.ru_maxrss
}

#[test]
fn a_million_spoofed_clients_stay_within_the_caps() {
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flood.pcap");
    spoofed_flood(&pcap, 1_000_000);
    let cfg = dir.path().join("caps.toml");
    std::fs::write(
        &cfg,
        "[pipeline]\nmax_clients = 20000\nmax_pending_queries = 20000\n",
    )
    .unwrap();
    let lines = read_lines(&[
        "--config",
        cfg.to_str().unwrap(),
        "--workers",
        "2",
        pcap.to_str().unwrap(),
    ]);
    let c = &lines.last().unwrap()["mxwatch"]["capture"];
    assert_eq!(c["packets_read"], 1_000_000);
    assert!(c["clients_tracked"].as_u64().unwrap() <= 20_000, "{c}");
    let ev = &c["evictions"];
    let turned_away =
        ev["clients"].as_u64().unwrap() + ev["client_overflow_events"].as_u64().unwrap();
    assert!(turned_away > 900_000, "client table: {ev}");
    assert!(
        ev["pending_queries"].as_u64().unwrap() > 900_000,
        "pending table: {ev}"
    );
    // The flood spans 20 s: one bin. Memory stays that of the caps, far from
    // what a million clients would take (several hundred MiB).
    let rss_mib = max_rss_of_children_kib() / 1024;
    eprintln!(
        "flood: {ev}, clients_tracked {}, peak RSS {rss_mib} MiB",
        c["clients_tracked"]
    );
    assert!(rss_mib < 150, "peak RSS {rss_mib} MiB");
}
