//! `mxwatch read`: determinism across worker counts, bad input, pipes.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};

use common::*;

fn all_captures_args() -> Vec<String> {
    captures().iter().map(|p| p.display().to_string()).collect()
}

#[test]
fn workers_1_and_4_give_byte_identical_output() {
    let files = all_captures_args();
    let run = |w: &str| {
        let mut args = vec![
            "read",
            "--stats",
            "--top",
            "50",
            "--bin",
            "10",
            "--workers",
            w,
        ];
        args.extend(files.iter().map(String::as_str));
        let out = mxwatch(&args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    };
    let one = run("1");
    let four = run("4");
    let lines = parse_lines(&one);
    assert!(
        lines
            .iter()
            .filter(|l| dataset(l) == "mxwatch.client_stats")
            .count()
            > 100
    );
    assert!(one == four, "--workers 1 and --workers 4 differ");
    // The folded line appears when a bin has more clients than --top.
    assert!(lines.iter().any(|l| {
        l["mxwatch"]["folded_clients"]
            .as_u64()
            .is_some_and(|n| n > 0)
    }));
}

/// `--no-detect` turns the detector off in the engine (no per-client work
/// at a bin close): the same client_stats lines as with detection, byte for
/// byte, and no detection line, on each lab attack.
#[test]
fn no_detect_gives_the_same_counters_and_no_alert() {
    let lab = repo().join("pcaps/lab");
    let cfg = repo().join("scripts/lab/mxwatch.toml");
    for s in ["relay", "backscatter", "spambot"] {
        let dns = lab.join(format!("{s}-dns.pcap"));
        let smtp = lab.join(format!("{s}-smtp.pcap"));
        let run = |extra: &[&str]| {
            let mut args = vec!["read", "--stats", "--no-summary", "--config"];
            args.push(cfg.to_str().unwrap());
            args.extend(["--merge", dns.to_str().unwrap(), smtp.to_str().unwrap()]);
            args.extend(extra);
            let out = mxwatch(&args);
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
            let text = String::from_utf8(out.stdout).unwrap();
            let of = |d: &str| -> Vec<String> {
                text.lines()
                    .filter(|l| l.contains(&format!("\"dataset\":\"{d}\"")))
                    .map(str::to_owned)
                    .collect()
            };
            (of("mxwatch.client_stats"), of("mxwatch.detection").len())
        };
        let (with, alerts) = run(&[]);
        let (without, none) = run(&["--no-detect"]);
        assert!(
            alerts > 0 && with.len() > 20,
            "{s}: {alerts} alerts, {} lines",
            with.len()
        );
        assert_eq!(none, 0, "{s}: no alert with --no-detect");
        assert_eq!(with, without, "{s}: the same client_stats");
    }
}

fn assert_one_line_error(stderr: &[u8], needle: &str) {
    let s = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = s.lines().collect();
    assert_eq!(lines.len(), 1, "want one stderr line, got: {s}");
    assert!(lines[0].contains(needle), "stderr {s:?} lacks {needle:?}");
}

#[test]
fn missing_file_after_a_good_one_keeps_the_good_ones_counts() {
    let good = repo().join("pcaps/dns-basic.pcap");
    let out = mxwatch(&[
        "read",
        "--stats",
        good.to_str().unwrap(),
        "/nonexistent/x.pcap",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out.stderr, "/nonexistent/x.pcap: no such file");
    let lines = parse_lines(&out.stdout);
    let sums = sum_client_stats(&lines);
    assert_eq!(
        sums.get(&("10.0.0.11".into(), "dns.qtype.MX".into())),
        Some(&3)
    );
    let last = lines.last().expect("capture_stats written");
    assert_eq!(dataset(last), "mxwatch.capture_stats");
    assert_eq!(last["mxwatch"]["capture"]["packets_read"], 36);
}

#[test]
fn a_file_that_is_not_a_capture_is_one_clear_line() {
    let out = mxwatch(&["read", repo().join("Cargo.toml").to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out.stderr, "not a pcap or pcapng capture");
    let lines = parse_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "only the final capture_stats");
    assert_eq!(lines[0]["mxwatch"]["capture"]["final"], true);
}

#[test]
fn a_capture_cut_mid_record_reports_and_keeps_what_was_read() {
    let src = std::fs::read(repo().join("pcaps/dns-mixed.pcap")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.pcap");
    std::fs::write(&cut, &src[..src.len() / 2 + 7]).unwrap();
    let out = mxwatch(&["read", "--stats", "--top", "100000", cut.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out.stderr, "truncated");
    let lines = parse_lines(&out.stdout);
    let queries: i64 = sum_client_stats(&lines)
        .iter()
        .filter(|((_, k), _)| k.starts_with("dns.qtype."))
        .map(|(_, v)| v)
        .sum();
    // About half of dns-mixed's 1837 queries are before the cut.
    assert!(
        (700..1100).contains(&queries),
        "{queries} queries before the cut"
    );
    assert_eq!(dataset(lines.last().unwrap()), "mxwatch.capture_stats");
}

#[test]
fn a_bad_filter_is_one_clear_line() {
    let out = mxwatch(&[
        "read",
        "--filter",
        "port fifty",
        repo().join("pcaps/dns-basic.pcap").to_str().unwrap(),
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out.stderr, "bad --filter");
}

#[test]
fn a_filter_selects_and_vlan_frames_are_kept_by_default() {
    let qinq = repo().join("pcaps/dns-qinq.pcap");
    let all = sum_client_stats(&read_lines(&["--stats", qinq.to_str().unwrap()]));
    let a: i64 = all
        .iter()
        .filter(|((_, k), _)| k == "dns.qtype.A")
        .map(|(_, v)| v)
        .sum();
    assert_eq!(a, 6, "QinQ frames decoded without a filter");
    // A plain BPF port filter misses tagged frames (FACTS); the nested one does not.
    let plain = sum_client_stats(&read_lines(&[
        "--stats",
        "--filter",
        "udp port 53",
        qinq.to_str().unwrap(),
    ]));
    assert!(plain.is_empty());
    let nested = "udp port 53 or (vlan and (udp port 53 or (vlan and udp port 53)))";
    let n = sum_client_stats(&read_lines(&[
        "--stats",
        "--filter",
        nested,
        qinq.to_str().unwrap(),
    ]));
    assert_eq!(n, all);
}

#[test]
fn a_closed_pipe_exits_quietly() {
    let mut child = Command::new(bin())
        .args(["read", "--stats", "--bin", "1", "--top", "100000"])
        .args(all_captures_args())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut first = [0u8; 10];
    stdout.read_exact(&mut first).unwrap();
    drop(stdout);
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "exit {status:?}, stderr {err}");
    assert!(err.is_empty(), "stderr: {err}");
}

#[test]
fn nanosecond_and_pcapng_timestamps_are_packet_time_in_microseconds() {
    // capture_stats spans the first to the last packet: they must equal
    // tshark's frame times, nanoseconds cut to microseconds.
    for name in ["dns-nanosecond.pcap", "dns-pcapng.pcapng", "dns-basic.pcap"] {
        let file = repo().join("pcaps").join(name);
        let lines = read_lines(&[file.to_str().unwrap()]);
        let ev = &lines.last().unwrap()["event"];
        let times = tshark(&file, &["-T", "fields", "-e", "frame.time_epoch"]);
        let micros = |t: &str| {
            let (s, frac) = t.trim().split_once('.').unwrap();
            format!("{s}.{}", &format!("{frac:0<9}")[..6])
        };
        let first = micros(times.lines().next().unwrap());
        let last = micros(times.lines().last().unwrap());
        let as_epoch = |rfc: &str| {
            let out = std::process::Command::new("date")
                .args(["-u", "-d", rfc, "+%s.%6N"])
                .output()
                .unwrap();
            String::from_utf8(out.stdout).unwrap().trim().to_owned()
        };
        assert_eq!(
            as_epoch(ev["start"].as_str().unwrap()),
            first,
            "{name} first packet"
        );
        assert_eq!(
            as_epoch(ev["end"].as_str().unwrap()),
            last,
            "{name} last packet"
        );
    }
}

#[test]
fn snaplen_truncation_is_counted_by_the_layer_where_it_stops() {
    // dns-snaplen: queries cut at 10 bytes (Ethernet), 30 (IPv4), 38 (UDP),
    // 50 (DNS header), 64 (question name); responses cut in the answers.
    let lines = read_lines(&[repo().join("pcaps/dns-snaplen.pcap").to_str().unwrap()]);
    let c = &lines.last().unwrap()["mxwatch"]["capture"];
    assert_eq!(
        c["truncated"],
        serde_json::json!({"link": 1, "ip": 1, "transport": 1})
    );
    assert_eq!(c["decode_errors"]["dns_short_header"], 1);
    assert_eq!(c["dns"]["no_question"], 1, "the query cut in its name");
    assert_eq!(
        c["dns"]["partial"], 4,
        "two cut queries and two cut responses handed on"
    );
    assert_eq!(c["packets_read"], 10);
}

/// Issue 13: fragmented datagrams are reassembled and read once (no first
/// fragment read on its own as well).
#[test]
fn fragmented_datagrams_are_reassembled_and_read_once() {
    let lines = read_lines(&[repo().join("pcaps/dns-fragment.pcap").to_str().unwrap()]);
    let c = &lines.last().unwrap()["mxwatch"]["capture"];
    assert_eq!(c["skipped"]["later_fragments"], 0);
    assert_eq!(c["ip_fragments"]["fragments"], 8);
    assert_eq!(c["ip_fragments"]["completed"], 3);
    assert_eq!(c["dns"]["partial"], 0, "every datagram whole");
    assert_eq!(c["dns"]["messages"], 8, "5 unfragmented + 3 reassembled");
}

#[test]
fn an_output_that_is_an_input_is_refused_and_a_capture_without_dns_or_smtp_is_said() {
    // #13: `-o` naming the capture would append JSON to it.
    let dir = tempfile::tempdir().unwrap();
    let cap = dir.path().join("in.pcap");
    std::fs::copy(repo().join("pcaps/dns-basic.pcap"), &cap).unwrap();
    let before = std::fs::read(&cap).unwrap();
    let out = mxwatch(&["read", cap.to_str().unwrap(), "-o", cap.to_str().unwrap()]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("is also an input"), "{err}");
    assert_eq!(
        std::fs::read(&cap).unwrap(),
        before,
        "the capture was written to"
    );
    // A capture with packets but no DNS or SMTP: one warning line, exit 0.
    let other = dir.path().join("ntp.pcap");
    let b = etherparse::PacketBuilder::ethernet2([2; 6], [4; 6])
        .ipv4([192, 0, 2, 1], [192, 0, 2, 2], 64)
        .udp(123, 123);
    let mut frame = Vec::new();
    b.write(&mut frame, &[0u8; 48]).unwrap();
    let mut pcap = pcap_header();
    for t in 0..3u32 {
        pcap.extend_from_slice(&(1_700_000_000 + t).to_le_bytes());
        pcap.extend_from_slice(&0u32.to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&frame);
    }
    std::fs::write(&other, &pcap).unwrap();
    let out = mxwatch(&["read", other.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{err}");
    assert_eq!(
        err.lines()
            .filter(|l| l.contains("3 packets read, none with DNS"))
            .count(),
        1,
        "{err}"
    );
}

#[test]
fn a_capture_of_a_link_type_not_decoded_is_one_line_naming_it_and_exit_1() {
    // #13: a capture of link type 147 (USER0) was read silently, exit 0.
    let dir = tempfile::tempdir().unwrap();
    let user0 = dir.path().join("user0.pcap");
    let mut pcap = pcap_header_link(147);
    for t in 0..3u32 {
        let frame = [0x45u8; 40];
        pcap.extend_from_slice(&(1_700_000_000 + t).to_le_bytes());
        pcap.extend_from_slice(&0u32.to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        pcap.extend_from_slice(&frame);
    }
    std::fs::write(&user0, &pcap).unwrap();
    let bad = user0.to_str().unwrap();
    let want = format!("{bad}: link type 147 (USER0) is not one mxwatch decodes");

    // Alone: nothing could be decoded. One line, exit 1, the final capture_stats.
    let out = mxwatch(&["read", bad]);
    assert_eq!(out.status.code(), Some(1));
    assert_one_line_error(&out.stderr, &want);
    let lines = parse_lines(&out.stdout);
    assert_eq!(lines.len(), 1, "only the final capture_stats");
    assert_eq!(lines[0]["mxwatch"]["capture"]["final"], true);

    // Beside a capture that decodes, merged or in order, before or after it:
    // the same one line, exit 1, and the other capture's counts all there.
    let good = repo().join("pcaps/dns-basic.pcap");
    let good = good.to_str().unwrap();
    for args in [
        vec!["read", "--stats", good, bad],
        vec!["read", "--stats", bad, good],
        vec!["read", "--stats", "--in-order", bad, good],
    ] {
        let out = mxwatch(&args);
        assert_eq!(out.status.code(), Some(1), "{args:?}");
        assert_one_line_error(&out.stderr, &want);
        let lines = parse_lines(&out.stdout);
        let sums = sum_client_stats(&lines);
        assert_eq!(
            sums.get(&("10.0.0.11".into(), "dns.qtype.MX".into())),
            Some(&3),
            "{args:?}"
        );
        let last = lines.last().expect("capture_stats written");
        assert_eq!(last["mxwatch"]["capture"]["packets_read"], 36, "{args:?}");
    }
}
