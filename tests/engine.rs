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
