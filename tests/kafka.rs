//! The Kafka output against a real Kafka-protocol broker started by the test
//! (tansu, in memory; built once into a cache by `scripts/deps-broker`, which
//! `scripts/test` runs first): every line arrives once, keyed by client;
//! the broker stopped mid-run and restarted: what fits in the buffer
//! arrives, the rest is counted as dropped, and the capture never stalls.
#![cfg(feature = "kafka")]

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::net::UdpSocket;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::broker::{PARTITIONS, Proc, broker, free_port, tansu};
use common::{lines_of, repo as root};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_mxwatch");

/// Every message of the topic now: (partition, key, payload).
fn consume(port: u16, topic: &str, at_least: usize) -> Vec<(i32, Option<String>, String)> {
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{port}"))
        .set("group.id", "mxwatch-test")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .unwrap();
    }
    c.assign(&tpl).unwrap();
    let mut got = Vec::new();
    let t0 = Instant::now();
    let mut quiet_since = Instant::now();
    while t0.elapsed() < Duration::from_secs(30) {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => {
                got.push((
                    m.partition(),
                    m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                    String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
                ));
                quiet_since = Instant::now();
            }
            _ => {
                if got.len() >= at_least && quiet_since.elapsed() > Duration::from_secs(2) {
                    break;
                }
            }
        }
    }
    got
}

/// The lab's relay capture with --stats to a file and to Kafka: the topic
/// holds exactly the file's lines, each once, keyed by `source.ip`, one
/// client's lines in one partition.
#[test]
fn kafka_gets_every_line_once_keyed_by_client() {
    let tansu = tansu();
    let port = free_port();
    let _b = broker(&tansu, port, "mxwatch");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let lab = root().join("pcaps/lab");
    let t0 = Instant::now();
    let out = Command::new(BIN)
        .args(["read", "--no-progress", "--stats", "--merge", "--config"])
        .arg(root().join("scripts/lab/mxwatch.toml"))
        .arg(lab.join("relay-dns.pcap"))
        .arg(lab.join("relay-smtp.pcap"))
        .arg("-o")
        .arg(&file)
        .arg("-o")
        .arg(format!("kafka://127.0.0.1:{port}/mxwatch"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    eprintln!("read to file + kafka: {:?}", t0.elapsed());
    let lines = lines_of(&file);
    let got = consume(port, "mxwatch", lines.len());
    let mut want: Vec<&str> = lines.iter().map(String::as_str).collect();
    let mut have: Vec<&str> = got.iter().map(|g| g.2.as_str()).collect();
    want.sort();
    have.sort();
    assert_eq!(have.len(), want.len(), "every line once");
    assert!(have == want, "the topic holds the file's lines");
    let mut partition_of: BTreeMap<String, BTreeSet<i32>> = BTreeMap::new();
    for (p, key, payload) in &got {
        let v: Value = serde_json::from_str(payload).unwrap();
        assert_eq!(
            key.as_deref(),
            v["source"]["ip"].as_str(),
            "key = source.ip"
        );
        if let Some(k) = key {
            partition_of.entry(k.clone()).or_default().insert(*p);
        }
    }
    assert!(partition_of.len() >= 2);
    assert!(
        partition_of.values().all(|s| s.len() == 1),
        "{partition_of:?}"
    );
}

/// `live` on lo, 40 clients querying every 100 ms (one client_stats line per
/// client per 0.5 s bin, 80 lines/s) to Kafka with a 100-line queue and a
/// 100-line librdkafka buffer; the broker is stopped for 6 s (about 480
/// lines, more than the 200 buffered) and restarted: the lines counted as
/// sent are in the topic, the rest counted as dropped, every query counted.
#[test]
fn kafka_broker_outage_buffers_then_counts_drops_and_never_stalls() {
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("SKIPPED: needs root (live capture on lo)");
        return;
    }
    let tansu = tansu();
    let port = free_port();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("out.jsonl");
    let mut b = broker(&tansu, port, "outage");
    let mx = Command::new(BIN)
        .args(["live", "-i", "lo", "--allow-root", "--stats", "--bin", "0.5", "--top", "1000"])
        .args(["--stats-interval", "1", "--filter", "udp dst port 53 and src net 127.0.9.0/24"])
        .arg("-o")
        .arg(&file)
        .arg("-o")
        // No idempotence here: an in-memory broker forgets producer ids when
        // it restarts, which an idempotent producer treats as fatal.
        .arg(format!(
            "kafka://127.0.0.1:{port}/outage?datasets=client_stats&queue=100&drain_secs=20&enable.idempotence=false"
        ))
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut mx = Proc(mx);
    std::thread::sleep(Duration::from_millis(800));
    let clients: Vec<UdpSocket> = (0..40)
        .map(|i| UdpSocket::bind(format!("127.0.9.{}:0", i + 1)).unwrap())
        .collect();
    let query =
        b"\x12\x34\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x01a\x04test\x00\x00\x01\x00\x01";
    let mut sent_queries = 0u64;
    let mut send_for = |d: Duration| {
        let t0 = Instant::now();
        while t0.elapsed() < d {
            for c in &clients {
                c.send_to(query, ("127.0.0.1", 53)).unwrap();
                sent_queries += 1;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    };
    send_for(Duration::from_secs(2));
    std::thread::sleep(Duration::from_millis(1500));
    let before = consume(port, "outage", 1);
    eprintln!("before the outage: {} lines in the topic", before.len());
    drop(b);
    send_for(Duration::from_secs(6));
    b = broker(&tansu, port, "outage");
    send_for(Duration::from_secs(1));
    std::thread::sleep(Duration::from_secs(2));
    unsafe { libc::kill(mx.0.id() as i32, libc::SIGTERM) };
    let t0 = Instant::now();
    let status = mx.0.wait().unwrap();
    eprintln!("exit {:?} after SIGTERM (drain included)", t0.elapsed());
    assert!(status.success());
    let mut stderr = String::new();
    std::io::Read::read_to_string(mx.0.stderr.as_mut().unwrap(), &mut stderr).unwrap();
    let after = consume(port, "outage", 1);
    drop(b);
    // "output NAME: D of L lines dropped (S sent)"
    let warn = stderr
        .lines()
        .find(|l| l.contains("lines dropped"))
        .unwrap_or_else(|| panic!("no drop summary on stderr: {stderr}"));
    let nums: Vec<u64> = warn
        .split(|c: char| !c.is_ascii_digit())
        .filter(|s| !s.is_empty())
        .map(|s| s.parse().unwrap())
        .collect();
    let n = nums.len();
    let (dropped, lines, sent) = (nums[n - 3], nums[n - 2], nums[n - 1]);
    eprintln!(
        "{warn}; in the topic: {} before + {} after",
        before.len(),
        after.len()
    );
    assert_eq!(dropped + sent, lines);
    assert!(dropped > 0, "the outage overflowed the buffer");
    assert!(
        sent as usize >= before.len() + 100,
        "buffered lines were delivered"
    );
    assert_eq!(
        (before.len() + after.len()) as u64,
        sent,
        "sent = in the topic"
    );
    let uniq: BTreeSet<&str> = before.iter().chain(&after).map(|m| m.2.as_str()).collect();
    assert_eq!(uniq.len() as u64, sent, "no duplicates");
    // The capture did not stall: every query was counted.
    let counted: u64 = lines_of(&file)
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"]["dataset"] == "mxwatch.client_stats")
        .map(|v| v["mxwatch"]["dns"]["queries"].as_u64().unwrap())
        .sum();
    assert_eq!(counted, sent_queries);
}
