//! `mxwatch live` with a reader of stdout that never reads (#12): the output
//! queue is bounded (RSS stays under a cap while client_stats lines are
//! dropped and counted) and SIGTERM ends the process within the stated time
//! (`pipeline.stop_timeout_secs`, 5 s by default) although the writer is stuck.
//! Needs root and tcpreplay (CI runs as root; scripts/deps installs it);
//! without root it prints SKIPPED and returns.

mod common;

use std::io::Write;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_mxwatch");

fn bin() -> String {
    std::env::var("MXWATCH_BIN").unwrap_or_else(|_| BIN.to_owned())
}

/// 200,000 DNS queries on Ethernet, each from its own 127/8 address.
fn flood(path: &std::path::Path) {
    let mut w = std::io::BufWriter::new(std::fs::File::create(path).unwrap());
    w.write_all(&common::pcap_header()).unwrap();
    let qname = b"\x03www\x07example\x03com\x00";
    for i in 0..200_000u32 {
        let mut dns = Vec::new();
        dns.extend(((i & 0xffff) as u16).to_be_bytes());
        dns.extend([0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
        dns.extend(qname);
        dns.extend([0, 1, 0, 1]);
        let udp_len = 8 + dns.len() as u16;
        let mut f = vec![0u8; 12];
        f.extend([0x08, 0x00, 0x45, 0]);
        f.extend((20 + udp_len).to_be_bytes());
        f.extend([0, 0, 0, 0, 64, 17, 0, 0]);
        f.extend((0x7f00_0000u32 + 0x0001_0000 + i).to_be_bytes());
        f.extend([127, 0, 0, 1]);
        f.extend((1024 + (i % 60000) as u16).to_be_bytes());
        f.extend(53u16.to_be_bytes());
        f.extend(udp_len.to_be_bytes());
        f.extend([0, 0]);
        f.extend(&dns);
        let ts = 1_000_000u64 + u64::from(i) * 5;
        let mut rec = Vec::new();
        rec.extend(((ts / 1_000_000) as u32).to_le_bytes());
        rec.extend(((ts % 1_000_000) as u32).to_le_bytes());
        rec.extend((f.len() as u32).to_le_bytes());
        rec.extend((f.len() as u32).to_le_bytes());
        w.write_all(&rec).unwrap();
        w.write_all(&f).unwrap();
    }
    w.flush().unwrap();
}

fn rss_mib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .unwrap_or(0)
        / 1024
}

#[test]
fn a_stalled_reader_neither_bloats_nor_blocks_sigterm() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root");
        return;
    }
    assert!(
        Command::new("tcpreplay").arg("--version").output().is_ok(),
        "tcpreplay is missing (scripts/deps installs it)"
    );
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flood.pcap");
    flood(&pcap);
    // A small client table, so that what is measured is the output queue.
    let cfg = dir.path().join("caps.toml");
    std::fs::write(&cfg, "[pipeline]\nmax_clients = 20000\n").unwrap();
    // stdout is a pipe nobody reads: the writer blocks once 64 KiB are in it.
    // Reaped on every path: `try_wait` in the loops (the early-exit assertion
    // fires once it has reaped it), `kill` + `wait` when SIGTERM fails.
    #[allow(clippy::zombie_processes)]
    let mut mx = Command::new(bin())
        .args([
            "live",
            "-i",
            "lo",
            "--allow-root",
            "--stats",
            "--top",
            "1000000",
            "--bin",
            "1",
            "--filter",
            "udp port 53",
            "--config",
            cfg.to_str().unwrap(),
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let pid = mx.id();
    std::thread::sleep(Duration::from_millis(800));
    let t0 = Instant::now();
    let mut peak = 0;
    let mut at_half = 0;
    // About 15 s of spoofed queries (tcpreplay loops the 200k-query file).
    let mut replay = Command::new("tcpreplay")
        .args(["-i", "lo", "--mbps", "40", "--loop", "0"])
        .arg(&pcap)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    while t0.elapsed() < Duration::from_secs(15) {
        std::thread::sleep(Duration::from_millis(250));
        peak = peak.max(rss_mib(pid));
        if at_half == 0 && t0.elapsed() > Duration::from_secs(7) {
            at_half = peak;
        }
        assert!(mx.try_wait().unwrap().is_none(), "mxwatch exited early");
    }
    let _ = replay.kill();
    let _ = replay.wait();
    let stop = Instant::now();
    unsafe { libc::kill(pid as i32, libc::SIGTERM) };
    let mut exited = None;
    while stop.elapsed() < Duration::from_secs(20) {
        if let Some(st) = mx.try_wait().unwrap() {
            exited = Some(st);
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let took = stop.elapsed().as_secs_f64();
    // Killed if still running; reaped either way.
    let _ = mx.kill();
    let _ = mx.wait();
    eprintln!(
        "stalled output: RSS {at_half} MiB after 7 s, peak {peak} MiB after 15 s, SIGTERM to exit {took:.1} s"
    );
    assert!(exited.is_some(), "SIGTERM did not end live within 20 s");
    // The stated time: stop_timeout_secs (5 s) plus a second for the rest.
    assert!(took < 6.5, "SIGTERM took {took:.1} s");
    // The queue is bounded (100,000 records by default): RSS levels off
    // instead of growing with the stall (before: ~40 MB/s, 1.9 GB in 50 s).
    assert!(peak < 300, "peak RSS {peak} MiB");
    assert!(
        peak < at_half + at_half / 4 + 16,
        "RSS still growing: {at_half} -> {peak} MiB"
    );
}

/// A full disk never leaves half a JSON line (#12): `read -o` on a 1 MiB
/// tmpfs fails with one line on stderr, and the file ends with a newline,
/// every line whole JSON.
#[test]
fn a_full_disk_leaves_only_whole_lines() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let pcap = dir.path().join("flood.pcap");
    flood(&pcap);
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=1m", "tmpfs"])
        .arg(&mnt)
        .status()
        .unwrap();
    assert!(ok.success(), "mount tmpfs");
    let out = mnt.join("out.jsonl");
    let r = Command::new(bin())
        .args(["read", "--stats", "--top", "1000000", "--bin", "1", "-o"])
        .arg(&out)
        .arg(&pcap)
        .output()
        .unwrap();
    let bytes = std::fs::read(&out).unwrap();
    let _ = Command::new("umount").arg(&mnt).status();
    let stderr = String::from_utf8_lossy(&r.stderr);
    eprintln!(
        "full disk: exit {:?}, {} bytes kept, stderr {stderr}",
        r.status.code(),
        bytes.len()
    );
    assert_eq!(r.status.code(), Some(1), "{stderr}");
    assert_eq!(stderr.trim().lines().count(), 1, "{stderr}");
    assert!(
        !bytes.is_empty() && bytes.ends_with(b"\n"),
        "cut-off last line"
    );
    for l in String::from_utf8_lossy(&bytes).lines() {
        serde_json::from_str::<serde_json::Value>(l).expect("whole JSON line");
    }
}
