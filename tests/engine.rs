//! The threaded pipeline, with any number of workers, writes exactly what
//! the single-threaded engine writes (issue #10): on every committed capture
//! and on generated frame sequences.

mod common;

use std::io::Write;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use clap::Parser;
use proptest::prelude::*;

use mxwatch::capture::source::Pulled;
use mxwatch::cli::{Cli, Command};
use mxwatch::config::Settings;
use mxwatch::decode::link::LinkType;
use mxwatch::engine::Engine;
use mxwatch::output::{ClassifierHealth, Output, Sink};
use mxwatch::{pipeline, run};

#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn settings(flags: &[&str]) -> Settings {
    let mut argv = vec!["mxwatch", "read", "--sensor-name", "t"];
    argv.extend_from_slice(flags);
    argv.push("unused.pcap");
    let Command::Read(r) = Cli::try_parse_from(argv).unwrap().command else {
        unreachable!()
    };
    Settings::build(&r.common).unwrap()
}

fn output(s: &Settings, buf: &Shared) -> Output {
    run::output_for(Box::new(buf.clone()), s)
}

/// A frame sequence as a source: (link, ts, bytes).
type Frames = Vec<(LinkType, i64, Vec<u8>)>;

/// The single-threaded engine, fed from files or from frames.
fn engine_bytes(s: &Settings, files: &[PathBuf], frames: &Frames) -> Vec<u8> {
    let buf = Shared::default();
    let mut out = output(s, &buf);
    let mut eng = Engine::new(&s.engine);
    if files.is_empty() {
        for (link, ts, f) in frames {
            eng.frame(0, *link, *ts, f, f.len() as u32);
        }
    } else {
        let mut src = run::file_source(files, None, true).unwrap();
        run::drive(src.as_mut(), &mut eng.front, |_, _, _| false).unwrap();
    }
    for c in eng.finish() {
        out.bin_lines(&c.bin, &c.alerts).unwrap();
    }
    let health = ClassifierHealth {
        shards: eng.shard_stats(),
        clients_tracked: eng.clients(),
        ..ClassifierHealth::default()
    };
    let snap = run::file_snapshot(&mut eng.front, files);
    out.capture_stats(&snap, &health).unwrap();
    Sink::flush(&mut out).unwrap();
    buf.0.lock().unwrap().clone()
}

fn pipeline_bytes(s: &Settings, files: &[PathBuf], frames: &Frames, workers: usize) -> Vec<u8> {
    let buf = Shared::default();
    let mut cfg = s.pipeline(true);
    cfg.workers = workers;
    cfg.batch_events = 7; // small batches: many hand-offs
    let mut run = pipeline::start(cfg, Box::new(output(s, &buf)));
    if files.is_empty() {
        for (link, ts, f) in frames {
            run.capture.front.frame(0, *link, *ts, f, f.len() as u32);
        }
    } else {
        let mut src = run::file_source(files, None, true).unwrap();
        run::drive(src.as_mut(), &mut run.capture.front, |_, _, _| false).unwrap();
    }
    let files = files.to_vec();
    let (_, r) = run.finish(|c| vec![run::file_snapshot(&mut c.front, &files)]);
    r.unwrap();
    buf.0.lock().unwrap().clone()
}

#[test]
fn every_capture_gives_the_engines_bytes_with_any_number_of_workers() {
    let lab = common::repo().join("scripts/lab/mxwatch.toml");
    let lab = lab.to_str().unwrap();
    let mut cases: Vec<(Vec<&str>, Vec<PathBuf>)> = common::captures()
        .into_iter()
        .map(|p| (vec!["--stats", "--bin", "1"], vec![p]))
        .collect();
    for s in ["relay", "backscatter", "benign"] {
        let d = common::repo().join("pcaps/lab");
        cases.push((
            vec!["--stats", "--config", lab],
            vec![
                d.join(format!("{s}-dns.pcap")),
                d.join(format!("{s}-smtp.pcap")),
            ],
        ));
    }
    let mut alerts = 0;
    for (flags, files) in &cases {
        let s = settings(flags);
        let want = engine_bytes(&s, files, &Vec::new());
        assert!(!want.is_empty());
        alerts += String::from_utf8_lossy(&want)
            .matches("mxwatch.detection")
            .count();
        for w in [1, 2, 3, 4] {
            let got = pipeline_bytes(&s, files, &Vec::new(), w);
            assert!(
                got == want,
                "{files:?} {flags:?}: {w} workers differ from the engine"
            );
        }
    }
    // The comparison covers alert lines, not only counters.
    assert!(alerts > 10, "{alerts} alert lines");
}

/// Every frame of `files`, merged by time: (link, ts, bytes).
fn frames_of_files(files: &[PathBuf]) -> Frames {
    let mut src = run::file_source(files, None, true).unwrap();
    let mut out = Vec::new();
    loop {
        match src.pull().unwrap() {
            Pulled::Frame { link, frame, .. } => out.push((link, frame.ts, frame.data.to_vec())),
            Pulled::End => return out,
            _ => {}
        }
    }
}

/// The capture thread the kernel's fanout hash would pick, in spirit
/// (`__skb_get_hash_symmetric`): a hash of the two (address, port) ends in a
/// fixed order, no ports for an IP fragment. Other link types: thread 0.
fn lane_of(link: LinkType, frame: &[u8], lanes: usize) -> usize {
    use etherparse::{NetSlice, SlicedPacket, TransportSlice};
    use std::hash::{Hash, Hasher};
    if link != LinkType::Ethernet {
        return 0;
    }
    let Ok(p) = SlicedPacket::from_ethernet(frame) else {
        return 0;
    };
    let (a, b, frag): (std::net::IpAddr, std::net::IpAddr, bool) = match &p.net {
        Some(NetSlice::Ipv4(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
            ip.is_payload_fragmented(),
        ),
        Some(NetSlice::Ipv6(ip)) => (
            ip.header().source_addr().into(),
            ip.header().destination_addr().into(),
            ip.is_payload_fragmented(),
        ),
        _ => return 0,
    };
    let (pa, pb) = match (&p.transport, frag) {
        (Some(TransportSlice::Udp(u)), false) => (u.source_port(), u.destination_port()),
        (Some(TransportSlice::Tcp(t)), false) => (t.source_port(), t.destination_port()),
        _ => (0, 0),
    };
    let ends = if (a, pa) <= (b, pb) {
        ((a, pa), (b, pb))
    } else {
        ((b, pb), (a, pa))
    };
    let mut h = std::collections::hash_map::DefaultHasher::new();
    ends.hash(&mut h);
    (h.finish() % lanes as u64) as usize
}

/// How far a live front's quiet-wire clock runs behind the newest packet
/// (`capture::source::CLOCK_LAG_MICROS`: wall clock less 0.5 s).
const IDLE_LAG: i64 = 500_000;

/// The quiet-wire clocks `live` gives a front between a packet at `prev`
/// and one at `ts`: every 100 ms (`POLL_MS`), packet time less [`IDLE_LAG`]
/// (one jump over a gap of more than an hour).
fn idle_clocks(prev: Option<i64>, ts: i64) -> Vec<i64> {
    let Some(p) = prev else { return Vec::new() };
    let (from, to) = (p - IDLE_LAG, ts - IDLE_LAG);
    if to - from > 3_600_000_000 {
        return vec![to];
    }
    (1..)
        .map(|k| from + k * 100_000)
        .take_while(|&t| t <= to)
        .collect()
}

/// The lab's search domain.
const DOMAIN: &str = "sub.univ.test";

/// The single-threaded engine as `live` drives it (with the quiet-wire
/// clock); also whether it saw IP fragments, and whether the reassembler
/// gave a datagram up.
fn live_engine_bytes(s: &Settings, frames: &Frames) -> (Vec<u8>, bool, bool) {
    let buf = Shared::default();
    let mut out = output(s, &buf);
    let mut eng = Engine::new(&s.engine);
    let mut prev = None;
    for (link, ts, f) in frames {
        for t in idle_clocks(prev, *ts) {
            eng.clock(t);
        }
        eng.frame(0, *link, *ts, f, f.len() as u32);
        prev = Some(*ts);
    }
    for c in eng.finish() {
        out.bin_lines(&c.bin, &c.alerts).unwrap();
    }
    Sink::flush(&mut out).unwrap();
    let stats = eng.front.decode_stats();
    let fragments = stats.iter().any(|d| d.ip_fragments.fragments > 0);
    let given_up = stats.iter().any(|d| {
        let f = &d.ip_fragments;
        f.timed_out + f.evicted + f.over_limit + f.unfinished_at_end > 0
    });
    let v = buf.0.lock().unwrap().clone();
    (v, fragments, given_up)
}

/// Hands `front` its frames of packet time up to `upto` (read late).
fn read_due(
    behind: &mut std::collections::VecDeque<(LinkType, i64, &[u8])>,
    upto: i64,
    front: &mut mxwatch::engine::Front<pipeline::Sharder>,
) {
    while behind.front().is_some_and(|b| b.1 <= upto) {
        let (link, t, f) = behind.pop_front().unwrap();
        front.frame(0, link, t, f, f.len() as u32);
    }
}

/// The pipeline fed by two fronts as two capture threads of a fanout group
/// would: frames split by [`lane_of`]; front 1 reads each at once, front 0
/// `lag` microseconds of packet time late; both get the quiet-wire clock.
fn two_lane_bytes(s: &Settings, frames: &Frames, lag: i64) -> Vec<u8> {
    let buf = Shared::default();
    let mut cfg = s.pipeline(true);
    cfg.workers = 2;
    cfg.lanes = 2;
    cfg.batch_events = 7;
    let mut run = pipeline::start(cfg, Box::new(output(s, &buf)));
    let mut other = run.take_lanes().pop().unwrap();
    let mut behind = std::collections::VecDeque::new();
    let mut prev = None;
    for (link, ts, f) in frames {
        for t in idle_clocks(prev, *ts) {
            read_due(&mut behind, t + IDLE_LAG - lag, &mut run.capture.front);
            other.clock(t);
            run.capture.front.clock(t);
        }
        if lane_of(*link, f, 2) == 1 {
            other.frame(0, *link, *ts, f, f.len() as u32);
        } else {
            behind.push_back((*link, *ts, f.as_slice()));
        }
        read_due(&mut behind, ts - lag, &mut run.capture.front);
        prev = Some(*ts);
    }
    for (link, ts, f) in behind {
        run.capture.front.frame(0, link, ts, f, f.len() as u32);
    }
    other.flush();
    other.back.flush();
    let (_, r) = run.finish(|_| Vec::new());
    r.unwrap();
    buf.0.lock().unwrap().clone()
}

/// The lines but capture_stats, without what depends on the order of events
/// within a bin: the example names and recipients (the first seen), the top
/// SMTP peers (a Space-Saving sketch over more peers than it keeps); with
/// `fragments`, the unanswered queries (a fragmented answer hashes without
/// ports, so it may come from another thread than its query, and reach the
/// classifier first).
fn order_free(bytes: &[u8], fragments: bool) -> Vec<serde_json::Value> {
    common::parse_lines(bytes)
        .into_iter()
        .filter(|l| common::dataset(l) != "mxwatch.capture_stats")
        .map(|mut l| {
            if fragments && common::dataset(&l) == "mxwatch.client_stats" {
                l["mxwatch"]["dns"]["unanswered"] = serde_json::Value::Null;
            }
            if let Some(e) = l["mxwatch"].get_mut("evidence") {
                e["sample_names"] = serde_json::Value::Null;
                e["smtp"]["sample_recipients"] = serde_json::Value::Null;
                e["smtp"]["top_peers"] = serde_json::Value::Null;
            }
            l
        })
        .collect()
}

/// `live --threads 2` in the engine: two fronts, one reading late, write
/// what one front writes (every count of every client in every bin, every
/// alert), on every committed capture; and the frames did split. The search
/// domain is configured: learnt, the bin where it is learnt would count the
/// names queried before the third NXDOMAIN that teaches it, an order that
/// two threads do not keep within a bin.
#[test]
fn two_fronts_give_the_engines_bins_and_alerts() {
    let lab = common::repo().join("scripts/lab/mxwatch.toml");
    let lab = lab.to_str().unwrap();
    let mut cases: Vec<(Vec<&str>, Vec<PathBuf>)> = common::captures()
        .into_iter()
        .map(|p| {
            (
                vec!["--stats", "--bin", "1", "--local-domain", DOMAIN],
                vec![p],
            )
        })
        .collect();
    for s in ["relay", "backscatter", "benign", "spambot"] {
        let d = common::repo().join("pcaps/lab");
        cases.push((
            vec!["--stats", "--config", lab, "--local-domain", DOMAIN],
            vec![
                d.join(format!("{s}-dns.pcap")),
                d.join(format!("{s}-smtp.pcap")),
            ],
        ));
    }
    let (mut split, mut alerts) = (0, 0);
    for (flags, files) in &cases {
        let s = settings(flags);
        let frames = frames_of_files(files);
        let ones = frames
            .iter()
            .filter(|(l, _, f)| lane_of(*l, f, 2) == 1)
            .count();
        if ones > 0 && ones < frames.len() {
            split += 1;
        }
        let (want_bytes, fragments, given_up) = live_engine_bytes(&s, &frames);
        let want_lines = common::parse_lines(&want_bytes);
        let want = order_free(&want_bytes, fragments);
        alerts += want
            .iter()
            .filter(|l| common::dataset(l) == "mxwatch.detection")
            .count();
        for lag in [0, 300_000] {
            let bytes = two_lane_bytes(&s, &frames, lag);
            if given_up {
                // A datagram the reassembler gives up on is read when given
                // up, in the bin then open: with two fronts that can be the
                // bin before (the other front's clock not yet past it).
                // The counts stay the same.
                let mut got = common::sum_client_stats(&common::parse_lines(&bytes));
                let mut want = common::sum_client_stats(&want_lines);
                for m in [&mut got, &mut want] {
                    m.retain(|k, _| k.1 != "dns.unanswered");
                }
                assert_eq!(got, want, "{files:?} {flags:?}, front 0 {lag} us late");
                continue;
            }
            let got = order_free(&bytes, fragments);
            let first = got.iter().zip(&want).position(|(g, w)| g != w);
            assert!(
                got == want,
                "{files:?} {flags:?}, front 0 {lag} us late: {} lines, engine {}; first difference:\n{}\n{}",
                got.len(),
                want.len(),
                first.map_or(String::new(), |i| got[i].to_string()),
                first.map_or(String::new(), |i| want[i].to_string()),
            );
        }
    }
    assert!(split >= 10, "only {split} captures split over two fronts");
    assert!(alerts > 10, "{alerts} alert lines");
}

/// An Ethernet/IPv4/UDP DNS query or response for `client` (built with etherparse).
fn dns_frame(client: u8, id: u16, qtype: u16, name: &str, response: bool, rcode: u8) -> Vec<u8> {
    let mut dns = Vec::new();
    dns.extend_from_slice(&id.to_be_bytes());
    dns.push(if response { 0x81 } else { 0x01 });
    dns.push(if response { 0x80 | rcode } else { 0 });
    dns.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    for l in name.split('.') {
        dns.push(l.len() as u8);
        dns.extend_from_slice(l.as_bytes());
    }
    dns.push(0);
    dns.extend_from_slice(&qtype.to_be_bytes());
    dns.extend_from_slice(&[0, 1]);
    let (c, srv) = (Ipv4Addr::new(10, 0, 0, client), Ipv4Addr::new(10, 0, 1, 53));
    let (src, dst, sp, dp) = if response {
        (srv, c, 53, 40000 + u16::from(client))
    } else {
        (c, srv, 40000 + u16::from(client), 53)
    };
    let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4(src.octets(), dst.octets(), 64)
        .udp(sp, dp);
    let mut out = Vec::with_capacity(b.size(dns.len()));
    b.write(&mut out, &dns).unwrap();
    out
}

/// Events: (client, gap in ms, qtype index, name index, answered, nxdomain).
fn frames_of(events: &[(u8, u32, u8, u8, bool, bool)]) -> Frames {
    let qtypes = [1u16, 15, 12, 28, 16];
    let names = [
        "mail.example.com",
        "mail7.isp7.jp.sub.univ.test",
        "deal3.com",
        "9.2.0.192.in-addr.arpa",
        "www.univ.test",
    ];
    let mut ts = 1_700_000_000_000_000i64;
    let mut out = Vec::new();
    for (i, &(client, gap, q, n, answered, nx)) in events.iter().enumerate() {
        ts += i64::from(gap) * 1000;
        let (qt, name) = (qtypes[q as usize % 5], names[n as usize % 5]);
        let id = i as u16;
        out.push((
            LinkType::Ethernet,
            ts,
            dns_frame(client, id, qt, name, false, 0),
        ));
        if answered {
            let rc = if nx { 3 } else { 0 };
            out.push((
                LinkType::Ethernet,
                ts + 500,
                dns_frame(client, id, qt, name, true, rc),
            ));
        }
    }
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]
    #[test]
    fn generated_frames_give_the_engines_bytes(
        events in prop::collection::vec((0u8..12, 0u32..400, 0u8..5, 0u8..5, any::<bool>(), any::<bool>()), 1..1500),
        workers in 1usize..5,
    ) {
        // Seconds-long bins, low floors: bins close often and rules fire.
        let s = settings(&["--stats", "--bin", "1", "--local-domain", "sub.univ.test",
            "--config", common::repo().join("scripts/lab/mxwatch.toml").to_str().unwrap()]);
        let frames = frames_of(&events);
        let want = engine_bytes(&s, &[], &frames);
        let got = pipeline_bytes(&s, &[], &frames, workers);
        prop_assert!(got == want, "{} workers differ from the engine", workers);
    }
}
