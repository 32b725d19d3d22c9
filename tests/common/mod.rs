//! Shared helpers of the integration tests: run the built binary, run tshark,
//! sum client_stats lines.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

pub mod broker;

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_mxwatch")
}

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every committed capture: `pcaps/*.pcap`, `*.pcapng`, and `pcaps/lab/*.pcap`.
pub fn captures() -> Vec<PathBuf> {
    let mut v = Vec::new();
    for dir in [repo().join("pcaps"), repo().join("pcaps/lab")] {
        let Ok(rd) = std::fs::read_dir(&dir) else {
            continue;
        };
        for e in rd.flatten() {
            let p = e.path();
            if matches!(
                p.extension().and_then(|x| x.to_str()),
                Some("pcap" | "pcapng")
            ) {
                v.push(p);
            }
        }
    }
    v.sort();
    assert!(
        v.len() >= 20,
        "expected the committed captures in pcaps/, found {}",
        v.len()
    );
    v
}

pub fn mxwatch(args: &[&str]) -> Output {
    Command::new(bin())
        .args(args)
        .output()
        .expect("run mxwatch")
}

/// `mxwatch read ARGS` that must succeed; returns the parsed lines.
pub fn read_lines(args: &[&str]) -> Vec<Value> {
    let mut full = vec!["read"];
    full.extend_from_slice(args);
    let out = mxwatch(&full);
    assert!(
        out.status.success(),
        "mxwatch {full:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    parse_lines(&out.stdout)
}

pub fn parse_lines(bytes: &[u8]) -> Vec<Value> {
    String::from_utf8_lossy(bytes)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

pub fn dataset(v: &Value) -> &str {
    v["event"]["dataset"].as_str().unwrap_or("")
}

pub fn tshark(file: &Path, args: &[&str]) -> String {
    let out = Command::new("tshark")
        .arg("-n")
        .arg("-r")
        .arg(file)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("tshark not found ({e}): run scripts/deps"));
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Counts keyed by (client, counter name).
pub type Counts = BTreeMap<(String, String), i64>;

/// Sums the client_stats lines of a run by client: `dns.qtype.X`,
/// `dns.rcode.X`, `dns.unanswered` and every `smtp.*` counter.
pub fn sum_client_stats(lines: &[Value]) -> Counts {
    let mut c = Counts::new();
    for l in lines
        .iter()
        .filter(|l| dataset(l) == "mxwatch.client_stats")
    {
        let ip = l["source"]["ip"]
            .as_str()
            .expect("per-client line, not folded")
            .to_owned();
        let m = &l["mxwatch"];
        for (group, obj) in [
            ("dns.qtype", &m["dns"]["qtype"]),
            ("dns.rcode", &m["dns"]["rcode"]),
            ("smtp", &m["smtp"]),
        ] {
            for (k, v) in obj.as_object().expect("object") {
                if let Some(n) = v.as_i64() {
                    *c.entry((ip.clone(), format!("{group}.{k}"))).or_default() += n;
                }
            }
        }
        if let Some(n) = m["dns"]["unanswered"].as_i64() {
            *c.entry((ip.clone(), "dns.unanswered".into())).or_default() += n;
        }
    }
    c.retain(|_, v| *v != 0);
    c
}

/// tshark's numeric qtype as mxwatch's counter bucket.
pub fn qtype_bucket(t: &str) -> &'static str {
    match t {
        "1" => "A",
        "28" => "AAAA",
        "12" => "PTR",
        "15" => "MX",
        "16" => "TXT",
        _ => "other",
    }
}

/// tshark's numeric rcode as mxwatch's counter bucket.
pub fn rcode_bucket(r: &str) -> &'static str {
    match r {
        "0" => "NOERROR",
        "3" => "NXDOMAIN",
        "2" => "SERVFAIL",
        "5" => "REFUSED",
        _ => "other",
    }
}

/// The global header of a classic pcap: microseconds, snaplen 65535, Ethernet.
pub fn pcap_header() -> Vec<u8> {
    pcap_header_link(1)
}

/// The global header of a classic pcap of link type `dlt`: microseconds, snaplen 65535.
pub fn pcap_header_link(dlt: u32) -> Vec<u8> {
    let mut h = Vec::new();
    h.extend(0xa1b2c3d4u32.to_le_bytes());
    h.extend(2u16.to_le_bytes());
    h.extend(4u16.to_le_bytes());
    h.extend([0u8; 8]);
    h.extend(65535u32.to_le_bytes());
    h.extend(dlt.to_le_bytes());
    h
}

/// RFC 3339 (as mxwatch writes it, "2026-11-23T13:15:25.000000Z") to
/// microseconds since the epoch, by GNU date (not mxwatch's own parser).
pub fn micros_by_date(ts: &str) -> i64 {
    let out = std::process::Command::new("date")
        .args(["-u", "-d", ts, "+%s%6N"])
        .output()
        .unwrap();
    String::from_utf8(out.stdout)
        .unwrap()
        .trim()
        .parse()
        .unwrap()
}

/// The lines of a file (none when it does not exist).
pub fn lines_of(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(str::to_owned)
        .collect()
}
