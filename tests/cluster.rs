//! Issue #16 against a real Kafka-protocol broker (tansu, in memory, started
//! here): a lab capture split into two "resolvers" (the mail server's DNS
//! exchanges alternate by transaction id), read by two sensors publishing
//! their bins (`--publish`, `--no-detect`), and a group of two `mxwatch
//! detect` processes gives the alerts one `mxwatch read` of the whole capture
//! gives; a member killed mid-attack hands its partitions over and the
//! attack is still reported once, and ended.

mod common;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

#[cfg(feature = "kafka")]
use common::broker::{Proc, broker, create_topic, free_port, tansu};
use common::{bin, repo};
use etherparse::{SlicedPacket, TransportSlice};
use serde_json::Value;

fn lab(name: &str) -> PathBuf {
    repo().join("pcaps/lab").join(name)
}

fn config() -> PathBuf {
    repo().join("scripts/lab/mxwatch.toml")
}

/// The DNS transaction id of a UDP port-53 frame.
fn dns_id(data: &[u8]) -> Option<u16> {
    let p = SlicedPacket::from_ethernet(data).ok()?;
    let Some(TransportSlice::Udp(u)) = p.transport else {
        return None;
    };
    if u.source_port() != 53 && u.destination_port() != 53 {
        return None;
    }
    let pl = u.payload();
    (pl.len() >= 2).then(|| u16::from_be_bytes([pl[0], pl[1]]))
}

/// Copies the frames of `src` for which `keep(ts_micros, frame)` holds.
fn filter(src: &Path, dst: &Path, keep: impl Fn(i64, &[u8]) -> bool) -> usize {
    let mut cap = pcap::Capture::from_file(src).unwrap();
    let link = cap.get_datalink();
    let dead = pcap::Capture::dead(link).unwrap();
    let mut out = dead.savefile(dst).unwrap();
    let mut n = 0;
    while let Ok(p) = cap.next_packet() {
        let ts = p.header.ts.tv_sec * 1_000_000 + p.header.ts.tv_usec;
        if keep(ts, p.data) {
            out.write(&p);
            n += 1;
        }
    }
    out.flush().unwrap();
    n
}

/// (rule, client, start) of every alert start in a JSON-lines output.
fn starts(path: &Path) -> Vec<(String, String, String)> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| {
            v["event"]["dataset"] == "mxwatch.detection" && v["event"]["type"][0] == "start"
        })
        .map(|v| {
            (
                v["rule"]["name"].as_str().unwrap().to_owned(),
                v["source"]["ip"].as_str().unwrap().to_owned(),
                v["event"]["start"].as_str().unwrap().to_owned(),
            )
        })
        .collect()
}

fn alerts(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|v| v["event"]["dataset"] == "mxwatch.detection")
        .collect()
}

fn read_alerts(files: &[&Path], out: &Path) {
    let st = Command::new(bin())
        .args(["read", "--no-progress", "--no-summary", "--config"])
        .arg(config())
        .args(files)
        .arg("-o")
        .arg(out)
        .status()
        .unwrap();
    assert!(st.success());
}

#[cfg(feature = "kafka")]
/// A sensor: reads its files and publishes its bins, no local detection.
fn sensor(name: &str, files: &[&Path], url: &str) {
    let out = Command::new(bin())
        .args([
            "read",
            "--no-progress",
            "--no-summary",
            "--no-detect",
            "--config",
        ])
        .arg(config())
        .args(["--sensor-name", name, "--publish", url, "-o", "/dev/null"])
        .args(files)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sensor {name}: {err}");
    assert!(!err.contains("dropped"), "sensor {name}: {err}");
}

#[cfg(feature = "kafka")]
fn detector(url: &str, group: &str, out: &Path, exit_idle: u32) -> Proc {
    Proc(
        Command::new(bin())
            .args([
                "detect",
                "--from",
                url,
                "--group",
                group,
                "--sensors",
                "s1,s2",
            ])
            .args([
                "--exit-idle",
                &exit_idle.to_string(),
                "--sensor-name",
                "detector",
            ])
            .arg("--config")
            .arg(config())
            .arg("-o")
            .arg(out)
            .stderr(Stdio::piped())
            .spawn()
            .unwrap(),
    )
}

#[cfg(feature = "kafka")]
fn wait_ok(p: &mut Proc, within: Duration) -> String {
    let t0 = Instant::now();
    loop {
        if let Some(st) = p.0.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(p.0.stderr.as_mut().unwrap(), &mut err).unwrap();
            assert!(st.success(), "detect: {err}");
            return err;
        }
        assert!(t0.elapsed() < within, "detect did not exit");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Splits a scenario's DNS capture by transaction-id parity (both halves
/// of an exchange stay together); the SMTP tap goes to the first sensor.
fn halves(dir: &Path, scenario: &str, cut: Option<(i64, bool)>) -> (PathBuf, PathBuf, PathBuf) {
    let in_time = |ts: i64| match cut {
        None => true,
        Some((at, before)) => (ts < at) == before,
    };
    let (a, b, s) = (
        dir.join(format!("{scenario}-a.pcap")),
        dir.join(format!("{scenario}-b.pcap")),
        dir.join(format!("{scenario}-smtp.pcap")),
    );
    let dns = lab(&format!("{scenario}-dns.pcap"));
    let na = filter(&dns, &a, |ts, f| {
        in_time(ts) && dns_id(f).is_none_or(|id| id % 2 == 0)
    });
    let nb = filter(&dns, &b, |ts, f| {
        in_time(ts) && dns_id(f).is_some_and(|id| id % 2 == 1)
    });
    filter(&lab(&format!("{scenario}-smtp.pcap")), &s, |ts, _| {
        in_time(ts)
    });
    assert!(na > 20 && nb > 20, "{na} / {nb} frames");
    (a, b, s)
}

#[test]
#[cfg(feature = "kafka")]
fn two_sensors_and_a_detector_group_find_what_one_read_of_the_whole_finds() {
    let tansu = tansu();
    let port = free_port();
    let _b = broker(&tansu, port, "bins-relay");
    let dir = tempfile::tempdir().unwrap();
    for (k, scenario) in ["relay", "backscatter", "spambot", "benign"]
        .iter()
        .enumerate()
    {
        let topic = format!("bins-{scenario}");
        if k > 0 {
            create_topic(&tansu, port, &topic);
        }
        let url = format!("kafka://127.0.0.1:{port}/{topic}");
        let whole = dir.path().join(format!("{scenario}-whole.jsonl"));
        read_alerts(
            &[
                &lab(&format!("{scenario}-dns.pcap")),
                &lab(&format!("{scenario}-smtp.pcap")),
            ],
            &whole,
        );
        let want: BTreeSet<_> = starts(&whole).into_iter().collect();
        let (a, b, s) = halves(dir.path(), scenario, None);
        // One half alone (what a sensor without the group would see).
        let half = dir.path().join(format!("{scenario}-half.jsonl"));
        read_alerts(&[&a, &s], &half);
        let (o1, o2) = (
            dir.path().join(format!("{scenario}-d1.jsonl")),
            dir.path().join(format!("{scenario}-d2.jsonl")),
        );
        let mut d1 = detector(&url, &format!("g-{scenario}"), &o1, 8);
        let mut d2 = detector(&url, &format!("g-{scenario}"), &o2, 8);
        std::thread::sleep(Duration::from_secs(3));
        sensor("s1", &[&a, &s], &url);
        sensor("s2", &[&b], &url);
        let e1 = wait_ok(&mut d1, Duration::from_secs(90));
        let e2 = wait_ok(&mut d2, Duration::from_secs(90));
        let mut got = starts(&o1);
        got.extend(starts(&o2));
        let got_set: BTreeSet<_> = got.iter().cloned().collect();
        eprintln!(
            "{scenario}: whole {want:?}\n  one half: {:?}\n  group: {got:?}\n  d1: {}  d2: {}",
            starts(&half),
            e1.lines().last().unwrap_or(""),
            e2.lines().last().unwrap_or("")
        );
        assert_eq!(
            got.len(),
            got_set.len(),
            "{scenario}: an alert written twice"
        );
        assert_eq!(
            got_set, want,
            "{scenario}: the group's alerts are the whole capture's"
        );
        if *scenario == "benign" {
            assert!(want.is_empty());
        } else {
            assert!(!want.is_empty(), "{scenario}: the lab attack is found");
        }
        for v in alerts(&o1).iter().chain(&alerts(&o2)) {
            let sensors = &v["mxwatch"]["sensors"];
            let rule = v["rule"]["name"].as_str().unwrap();
            if rule != "spoofed_source_flood" {
                assert!(
                    sensors.as_array().is_some_and(|s| !s.is_empty()),
                    "{scenario}: alerts name their sensors: {v}"
                );
            }
            assert_eq!(v["observer"]["name"], "detector");
        }
    }
}

/// The offsets `group` committed on partitions 0..n of `topic` (-1: none),
/// read by a consumer that does not join the group.
#[cfg(feature = "kafka")]
fn group_committed(bootstrap: &str, group: &str, topic: &str, n: i32) -> Vec<i64> {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::{ClientConfig, Offset, TopicPartitionList};
    let c: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", group)
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..n {
        tpl.add_partition(topic, p);
    }
    let got = c.committed_offsets(tpl, Duration::from_secs(5));
    let got = got.map(|t| t.elements().iter().map(|e| e.offset()).collect::<Vec<_>>());
    got.unwrap_or_default()
        .into_iter()
        .map(|o| match o {
            Offset::Offset(n) => n,
            _ => -1,
        })
        .collect()
}

#[test]
#[cfg(feature = "kafka")]
fn a_member_that_dies_mid_attack_hands_over_and_the_attack_is_reported_once() {
    // librdkafka's mock cluster (in this process, on a loopback port): tansu
    // 0.6 expires a dead member but its SyncGroup then hands the survivor the
    // previous generation's assignment (seen in librdkafka's cgrp debug log),
    // so the dead member's partitions never move there.
    let mock = rdkafka::mocking::MockCluster::new(1).unwrap();
    let topic = "bins-failover";
    mock.create_topic(topic, 4, 1).unwrap();
    let bootstrap = mock.bootstrap_servers();
    let url = format!("kafka://{bootstrap}/{topic}");
    let dir = tempfile::tempdir().unwrap();
    let whole = dir.path().join("whole.jsonl");
    read_alerts(&[&lab("relay-dns.pcap"), &lab("relay-smtp.pcap")], &whole);
    let want: BTreeSet<_> = starts(&whole).into_iter().collect();
    let relay = want
        .iter()
        .find(|a| a.0 == "spam_relay")
        .expect("the relay is found")
        .clone();
    // Cut 20 s after the attack's first loud bin: the start is out, the
    // incident is open.
    let start_us = common::micros_by_date(&relay.2);
    let cut = start_us + 20_000_000;
    let sub = dir.path().join("p1");
    let sub2 = dir.path().join("p2");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::create_dir_all(&sub2).unwrap();
    let (a1, b1, s1) = halves(&sub, "relay", Some((cut, true)));
    let (a2, b2, s2) = halves(&sub2, "relay", Some((cut, false)));
    let (o1, o2) = (dir.path().join("d1.jsonl"), dir.path().join("d2.jsonl"));
    let d1 = detector(&url, "g-failover", &o1, 30);
    let d2 = detector(&url, "g-failover", &o2, 30);
    std::thread::sleep(Duration::from_secs(3));
    sensor("s1", &[&a1, &s1], &url);
    sensor("s2", &[&b1], &url);
    // The member that owns the mail server writes the start; kill it then.
    let t0 = Instant::now();
    let owner = loop {
        if starts(&o1).contains(&relay) {
            break 1;
        }
        if starts(&o2).contains(&relay) {
            break 2;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(60),
            "no start before the cut"
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    // Let it commit what it wrote (every partition has a committed offset,
    // its own included; under load that can take more than a moment), then
    // SIGKILL: no goodbye to the group.
    let t1 = Instant::now();
    loop {
        let c = group_committed(&bootstrap, "g-failover", topic, 4);
        if c.iter().all(|&o| o > 0) {
            eprintln!("committed before the kill: {c:?}");
            break;
        }
        assert!(
            t1.elapsed() < Duration::from_secs(60),
            "the group never committed every partition: {c:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (dead, mut alive, dead_out, alive_out) = if owner == 1 {
        (d1, d2, o1.clone(), o2.clone())
    } else {
        (d2, d1, o2.clone(), o1.clone())
    };
    drop(dead);
    sensor("s1", &[&a2, &s2], &url);
    sensor("s2", &[&b2], &url);
    let err = wait_ok(&mut alive, Duration::from_secs(120));
    eprintln!("survivor: {err}");
    let mut got = starts(&dead_out);
    got.extend(starts(&alive_out));
    let got_set: BTreeSet<_> = got.iter().cloned().collect();
    eprintln!("whole: {want:?}\ngroup: {got:?}");
    assert_eq!(got.len(), got_set.len(), "an alert start written twice");
    assert_eq!(got_set, want);
    assert!(
        err.contains("replaying"),
        "the survivor rebuilt the partition: {err}"
    );
    // The survivor ends the incident the dead member started.
    let ended = alerts(&alive_out).iter().any(|v| {
        v["event"]["type"][0] == "end"
            && v["rule"]["name"] == "spam_relay"
            && v["source"]["ip"] == relay.1.as_str()
    });
    assert!(ended, "the survivor ends the relay incident");
    assert!(
        !starts(&alive_out).contains(&relay),
        "and does not start it again"
    );
}

/// The merge without Kafka, in process: each half through its own engine
/// (as a sensor), their bins as wire messages (JSON and back) into four
/// partitions by client, one sensor's messages after the other's (a
/// backlog), then the partitions' detectors. The merged per-client counters
/// equal the whole capture's, bin by bin, and so do the alert starts.
/// Per (bin, client): queries + sessions received + sessions opened, of every
/// client record (an empty record counts as a key, so it shows); and the
/// alert starts as (rule, client, start).
type Starts = BTreeSet<(&'static str, String, i64)>;
fn tally(
    bin: &mxwatch::classify::ClosedBin,
    alerts: &[mxwatch::detect::Alert],
    counts: &mut std::collections::BTreeMap<(i64, String), u64>,
    starts: &mut Starts,
) {
    for c in &bin.clients {
        *counts.entry((bin.start, c.ip.to_string())).or_default() +=
            c.bin.dns.queries + c.bin.smtp.connections + c.bin.smtp.outbound;
    }
    for a in alerts
        .iter()
        .filter(|a| a.phase == mxwatch::detect::Phase::Start)
    {
        starts.insert((a.rule.name, a.ip.to_string(), a.start));
    }
}

#[test]
fn merged_halves_equal_the_whole_bin_by_bin_in_process() {
    use mxwatch::cluster::assemble::{AssembleConfig, MergeMode, Partition};
    use mxwatch::cluster::wire::{self, BinMsg, Mark, Message};
    use mxwatch::engine::{Closed, Engine};
    use std::collections::BTreeMap;

    let common = mxwatch::cli::Common {
        config: Some(config()),
        local_domain: Vec::new(),
        bin: None,
        stats: false,
        top: None,
        no_detect: false,
        output: Vec::new(),
        metrics_listen: None,
        workers: Some(1),
        filter: None,
        sensor_name: None,
        dry_run: true,
        publish: None,
    };
    let mut settings = mxwatch::config::Settings::build(&common).unwrap();
    settings.engine.classify.keep_sketches = true;
    let run = |files: &[&Path]| -> Vec<Closed> {
        let mut e = Engine::new(&settings.engine);
        let paths: Vec<PathBuf> = files.iter().map(|p| p.to_path_buf()).collect();
        let mut src = mxwatch::run::file_source(&paths, None, true).unwrap();
        mxwatch::run::drive(src.as_mut(), &mut e.front, |_, _, _| false).unwrap();
        e.finish()
    };
    let dir = tempfile::tempdir().unwrap();
    for scenario in ["relay", "backscatter", "spambot", "benign"] {
        let whole = run(&[
            &lab(&format!("{scenario}-dns.pcap")),
            &lab(&format!("{scenario}-smtp.pcap")),
        ]);
        let (a, b, s) = halves(dir.path(), scenario, None);
        let mut parts: Vec<Vec<Message>> = vec![Vec::new(); 4];
        for (name, files) in [
            ("s1", vec![a.as_path(), s.as_path()]),
            ("s2", vec![b.as_path()]),
        ] {
            for c in run(&files) {
                if c.bin.end <= c.bin.start {
                    continue;
                }
                for r in c.bin.active() {
                    let m = BinMsg::of(
                        name,
                        c.bin.start,
                        c.bin.end,
                        r.ip,
                        r.local_domain.as_deref(),
                        &r.bin,
                    );
                    let json = serde_json::to_vec(&Message::Bin(Box::new(m))).unwrap();
                    let p = r.ip.to_string().bytes().map(usize::from).sum::<usize>() % 4;
                    parts[p].push(wire::decode(&json).unwrap());
                }
                for p in &mut parts {
                    p.push(Message::Mark(Mark {
                        v: wire::VERSION,
                        sensor: name.into(),
                        start: c.bin.start,
                        end: c.bin.end,
                        last: false,
                    }));
                }
            }
        }
        let cfg = AssembleConfig {
            detect: settings.engine.detect.clone(),
            overrides: Vec::new(),
            merge: MergeMode::Sum,
            lateness: Duration::from_secs(3600),
            max_clients: 100_000,
            max_open_bins: 1024,
            max_sensors: 8,
            sensors: vec!["s1".into(), "s2".into()],
        };
        let mut merged: BTreeMap<(i64, String), u64> = BTreeMap::new();
        let mut got = BTreeSet::new();
        let now = Instant::now();
        for msgs in parts {
            let mut p = Partition::new(cfg.clone(), 0);
            let mut outs = Vec::new();
            for (off, m) in msgs.into_iter().enumerate() {
                outs.extend(p.message(off as i64, m, now));
            }
            outs.extend(p.finish());
            assert_eq!(p.stats.bins_closed_early, 0);
            for o in &outs {
                tally(&o.bin, &o.alerts, &mut merged, &mut got);
            }
        }
        let mut want_counts: BTreeMap<(i64, String), u64> = BTreeMap::new();
        let mut want = BTreeSet::new();
        for c in &whole {
            tally(&c.bin, &c.alerts, &mut want_counts, &mut want);
        }
        assert_eq!(
            merged, want_counts,
            "{scenario}: merged counters = the whole's, bin by bin"
        );
        assert_eq!(got, want, "{scenario}: alert starts");
        eprintln!("{scenario}: {} client-bins, starts {want:?}", merged.len());
    }
}
