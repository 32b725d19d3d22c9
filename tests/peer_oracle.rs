//! Issue 13: per-client DNS counts (queries by qtype, responses by rcode) of
//! `mxwatch read` equal tshark's, with tshark's default IP reassembly, on
//! every peer capture in `../shared/peer-pcaps/` (dnscap's test captures,
//! among them `frags.pcap`: 41 queries cut into 24-byte IPv4 fragments) and
//! on the committed fragment captures; and the compressed copies of dnscap's
//! `dns.pcap` (.gz, .xz, .zst, .lz4) and standard input give the same lines
//! as the plain file.

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use common::*;

/// (capture, client, counter, tshark's count minus ours, reason).
const EXCEPTIONS: &[(&str, &str, &str, i64, &str)] = &[
    (
        "dnso1tcp-bighole.pcap",
        "172.17.0.8",
        "dns.rcode.NOERROR",
        -36,
        "DNS over TCP with a large hole: tshark stops dissecting the stream at the hole; mxwatch's DNS-over-TCP reassembler skips the gap (dns.tcp_gaps) and reads the later whole messages (TCP, not IP fragments: to be confirmed against dnscap's own expectations)",
    ),
    (
        "dnso1tcp-midmiss.pcap",
        "172.17.0.8",
        "dns.qtype.A",
        -1,
        "a missing segment mid-stream: the same, tshark stops at the hole, mxwatch resynchronises after it",
    ),
    (
        "dnso1tcp-midmiss.pcap",
        "172.17.0.8",
        "dns.rcode.NOERROR",
        -2,
        "a missing segment mid-stream: the same",
    ),
    (
        "dns-fragment-missing.pcap",
        "10.0.0.63",
        "dns.qtype.A",
        -1,
        "a query whose last fragment never comes: tshark (reassembling) dissects nothing; mxwatch reads it once from its first fragment when it times out",
    ),
    (
        "dns-fragment-missing.pcap",
        "10.0.0.63",
        "dns.rcode.NOERROR",
        -1,
        "an answer missing its middle fragment: the same, read from its first fragment",
    ),
];

fn peer_dir() -> PathBuf {
    repo().join("../shared/peer-pcaps")
}

/// Every peer capture (uncompressed: tshark 4.0 reads .gz only) and the
/// committed fragment captures.
fn oracle_captures() -> Vec<PathBuf> {
    let mut v = Vec::new();
    let mut dirs = vec![peer_dir()];
    if let Ok(rd) = std::fs::read_dir(peer_dir()) {
        dirs.extend(rd.flatten().map(|e| e.path()).filter(|p| p.is_dir()));
    }
    for d in dirs {
        let Ok(rd) = std::fs::read_dir(&d) else {
            continue;
        };
        v.extend(rd.flatten().map(|e| e.path()).filter(|p| {
            matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng")
            )
        }));
    }
    assert!(
        v.len() >= 18,
        "expected dnscap's captures in {} (CI has ../shared), found {}",
        peer_dir().display(),
        v.len()
    );
    for name in [
        "dns-fragment.pcap",
        "dns-fragment-out-of-order.pcap",
        "dns-fragment-overlap.pcap",
        "dns-fragment-missing.pcap",
        "dns-fragment-ipv6.pcap",
    ] {
        v.push(repo().join("pcaps").join(name));
    }
    v.sort();
    v
}

/// tshark's per-client counts, IP reassembly on (its default), TCP streams
/// reassembled in order.
fn theirs(file: &Path) -> Counts {
    let out = tshark(
        file,
        &[
            "-o",
            "tcp.reassemble_out_of_order:TRUE",
            "-Y",
            "dns && !icmp && !icmpv6",
            "-T",
            "fields",
            "-E",
            "separator=\t",
            "-E",
            "occurrence=a",
            "-E",
            "aggregator=,",
            "-e",
            "ip.src",
            "-e",
            "ipv6.src",
            "-e",
            "ip.dst",
            "-e",
            "ipv6.dst",
            "-e",
            "dns.flags.response",
            "-e",
            "dns.qry.type",
            "-e",
            "dns.flags.rcode",
        ],
    );
    let mut c = Counts::new();
    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let pick = |a: &str, b: &'static str| -> String {
            let s = if a.is_empty() {
                b.to_owned()
            } else {
                a.to_owned()
            };
            s.rsplit(',').next().unwrap_or("").to_owned()
        };
        let src = pick(f[0], "");
        let src = if src.is_empty() { pick(f[1], "") } else { src };
        let dst = pick(f[2], "");
        let dst = if dst.is_empty() { pick(f[3], "") } else { dst };
        let flags: Vec<&str> = f[4].split(',').filter(|s| !s.is_empty()).collect();
        // Several messages in one frame (DNS over TCP) are in field order.
        let qtypes: Vec<&str> = f[5].split(',').filter(|s| !s.is_empty()).collect();
        let rcodes: Vec<&str> = f[6].split(',').filter(|s| !s.is_empty()).collect();
        if flags.iter().all(|r| *r == "0") {
            for t in qtypes {
                *c.entry((src.clone(), format!("dns.qtype.{}", qtype_bucket(t))))
                    .or_default() += 1;
            }
        } else if flags.iter().all(|r| *r == "1") {
            for r in rcodes {
                *c.entry((dst.clone(), format!("dns.rcode.{}", rcode_bucket(r))))
                    .or_default() += 1;
            }
        } else {
            panic!(
                "{}: queries and responses in one frame: {line}",
                file.display()
            );
        }
    }
    c
}

fn ours(file: &Path) -> Counts {
    let lines = read_lines(&[
        "--stats",
        "--top",
        "1000000",
        "--no-detect",
        "--workers",
        "2",
        file.to_str().unwrap(),
    ]);
    let mut c = sum_client_stats(&lines);
    c.retain(|(_, k), _| k.starts_with("dns.qtype.") || k.starts_with("dns.rcode."));
    c
}

#[test]
fn per_client_dns_counts_equal_reassembling_tshark_on_peer_captures() {
    let mut failures = Vec::new();
    let mut compared = 0;
    let mut frags_queries = 0;
    for file in oracle_captures() {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let mut theirs = theirs(&file);
        for (cap, ip, key, diff, _why) in EXCEPTIONS {
            if *cap == name {
                *theirs.entry((ip.to_string(), key.to_string())).or_default() -= diff;
            }
        }
        theirs.retain(|_, v| *v != 0);
        let ours = ours(&file);
        compared += theirs.values().sum::<i64>();
        if name == "frags.pcap" {
            frags_queries = ours
                .iter()
                .filter(|((_, k), _)| k.starts_with("dns.qtype."))
                .map(|(_, v)| v)
                .sum();
        }
        let keys: std::collections::BTreeSet<_> = ours.keys().chain(theirs.keys()).collect();
        for k in keys {
            let (a, b) = (
                ours.get(k).copied().unwrap_or(0),
                theirs.get(k).copied().unwrap_or(0),
            );
            if a != b {
                failures.push(format!("{name}: {} {}: mxwatch {a}, tshark {b}", k.0, k.1));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "differences from tshark:\n{}",
        failures.join("\n")
    );
    assert_eq!(
        frags_queries, 41,
        "frags.pcap: dnscap's 41 fragmented queries"
    );
    assert!(compared > 400, "too little compared ({compared})");
}

/// The lines of a run, without the one field that names the input.
fn lines_without_files(out: &[u8]) -> Vec<serde_json::Value> {
    let mut v = parse_lines(out);
    for l in &mut v {
        if let Some(c) = l.pointer_mut("/mxwatch/capture") {
            c.as_object_mut().unwrap().remove("files");
        }
    }
    v
}

#[test]
fn compressed_captures_and_stdin_give_the_plain_files_lines() {
    let dir = peer_dir().join("dnscap");
    let plain = dir.join("dns.pcap");
    let args = ["read", "--stats", "--no-detect", "--workers", "2"];
    let run = |file: &Path| {
        let out = Command::new(bin())
            .args(args)
            .arg(file)
            .output()
            .expect("run mxwatch");
        assert!(
            out.status.success(),
            "{}: {}",
            file.display(),
            String::from_utf8_lossy(&out.stderr)
        );
        lines_without_files(&out.stdout)
    };
    let expect = run(&plain);
    assert!(expect.len() > 1);
    let mut seen = 0;
    for ext in ["gz", "xz", "zst", "lz4"] {
        let f = dir.join(format!("dns.pcap.{ext}"));
        if !f.exists() {
            continue;
        }
        seen += 1;
        assert_eq!(run(&f), expect, "{ext}");
        // Known by magic bytes, not by name.
        let tmp = tempfile::Builder::new().suffix(".pcap").tempfile().unwrap();
        std::fs::copy(&f, tmp.path()).unwrap();
        assert_eq!(run(tmp.path()), expect, "{ext} named .pcap");
    }
    assert_eq!(seen, 4, "dnscap's dns.pcap.{{gz,xz,zst,lz4}}");
    // `-`: standard input, plain and compressed.
    for f in [plain.clone(), dir.join("dns.pcap.xz")] {
        let mut child = Command::new(bin())
            .args(args)
            .arg("-")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let bytes = std::fs::read(&f).unwrap();
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || stdin.write_all(&bytes));
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap().unwrap();
        assert!(out.status.success());
        assert_eq!(
            lines_without_files(&out.stdout),
            expect,
            "stdin {}",
            f.display()
        );
    }
}

#[test]
fn a_corrupt_compressed_capture_is_one_error_line_and_keeps_what_was_read() {
    let dir = tempfile::tempdir().unwrap();
    let gz = std::fs::read(peer_dir().join("dnscap/dns.pcap.gz")).unwrap();
    let cases = [
        ("cut.gz", gz[..gz.len() / 2].to_vec(), "corrupt gzip data"),
        (
            "header.gz",
            b"\x1f\x8b\x08garbage".to_vec(),
            "corrupt gzip data",
        ),
        (
            "notpcap.xz",
            {
                let mut w = Vec::new();
                // An xz stream of text: unpacked fine, not a capture.
                let out = Command::new("xz")
                    .args(["-c"])
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .spawn()
                    .and_then(|mut c| {
                        c.stdin.take().unwrap().write_all(b"hello\n")?;
                        c.wait_with_output()
                    });
                match out {
                    Ok(o) if o.status.success() => w = o.stdout,
                    _ => w.extend(b"\xfd7zXZ\x00broken"),
                }
                w
            },
            "xz data",
        ),
    ];
    for (name, bytes, expect) in cases {
        let p = dir.path().join(name);
        std::fs::write(&p, bytes).unwrap();
        let out = mxwatch(&["read", "--no-detect", p.to_str().unwrap()]);
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{name}: {err}");
        assert_eq!(err.lines().count(), 1, "{name}: {err}");
        assert!(err.contains(expect), "{name}: {err}");
        // The final capture_stats line is still written.
        let lines = parse_lines(&out.stdout);
        assert!(
            lines
                .last()
                .is_some_and(|l| dataset(l) == "mxwatch.capture_stats"),
            "{name}"
        );
        if name == "cut.gz" {
            assert!(lines.last().unwrap()["mxwatch"]["capture"]["packets_read"].as_u64() > Some(0));
        }
    }
}
