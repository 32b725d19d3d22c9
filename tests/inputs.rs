//! Same lab run, three ways (#14): the packets (a tap on the upstream DNS
//! server and on the mail server), the upstream BIND's dnstap file, and its
//! query log, each with Postfix's maillog for SMTP. Committed in
//! `pcaps/lab/inputs/` (scripts/lab/run with LAB_SERVER_LOGS=1). mxwatch must
//! count the same DNS queries per client by qtype, and the same SMTP counts
//! for the mail server, and start the same detections in the same bin.
//!
//! What a log cannot have: BIND's query log has no responses (rcodes absent,
//! so the search domain cannot be learnt from NXDOMAIN: `--local-domain` is
//! given to every way); the maillog has no SMTP sessions of other hosts and
//! times a delivery when it ends. Times differ by the server's processing
//! (a query logged a few microseconds after the tap saw it), so a query near
//! a bin boundary may move to the next bin: per-client totals are exact, and
//! at most 2 queries move per bin.

mod common;

use std::collections::BTreeMap;

use serde_json::Value;

use common::*;

const MAIL_SERVER: &str = "10.53.0.25";

fn way(scenario: &str, inputs: &[String]) -> Vec<Value> {
    let dir = repo().join("pcaps/lab/inputs");
    let config = repo().join("scripts/lab/mxwatch.toml");
    let mut args: Vec<String> = vec![
        "--config".into(),
        config.display().to_string(),
        "--local-domain".into(),
        "sub.univ.test".into(),
        "--stats".into(),
        "--top".into(),
        "10000".into(),
        "--mail-server".into(),
        MAIL_SERVER.into(),
        "--log-year".into(),
        "2026".into(),
    ];
    for i in inputs {
        args.push(i.replace("@", &format!("{}/{scenario}", dir.display())));
    }
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    read_lines(&args)
}

fn packets(s: &str) -> Vec<Value> {
    way(
        s,
        &["--merge".into(), "@-dns.pcap".into(), "@-smtp.pcap".into()],
    )
}
fn dnstap(s: &str) -> Vec<Value> {
    way(
        s,
        &["@.dnstap".into(), "--maillog".into(), "@-maillog".into()],
    )
}
fn querylog(s: &str) -> Vec<Value> {
    way(
        s,
        &[
            "--bind-querylog".into(),
            "@-query.log".into(),
            "--maillog".into(),
            "@-maillog".into(),
        ],
    )
}

type Bins = BTreeMap<(String, String), BTreeMap<String, u64>>;

/// (bin start, client) -> DNS queries by qtype, for clients that queried.
fn dns_bins(lines: &[Value]) -> Bins {
    let mut out = Bins::new();
    for l in lines {
        if l["event"]["dataset"] != "mxwatch.client_stats" {
            continue;
        }
        let dns = &l["mxwatch"]["dns"];
        if dns["queries"].as_u64().unwrap_or(0) == 0 {
            continue;
        }
        let key = (
            l["event"]["start"].as_str().unwrap().to_owned(),
            l["source"]["ip"].as_str().unwrap_or("folded").to_owned(),
        );
        let q: BTreeMap<String, u64> = dns["qtype"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
            .collect();
        out.insert(key, q);
    }
    out
}

fn totals(b: &Bins) -> BTreeMap<(String, String), u64> {
    let mut t = BTreeMap::new();
    for ((_, ip), q) in b {
        for (k, v) in q {
            *t.entry((ip.clone(), k.clone())).or_insert(0) += v;
        }
    }
    t
}

fn smtp_totals(lines: &[Value]) -> BTreeMap<&'static str, u64> {
    let mut t = BTreeMap::new();
    for l in lines {
        if l["event"]["dataset"] != "mxwatch.client_stats" || l["source"]["ip"] != MAIL_SERVER {
            continue;
        }
        for f in [
            "connections",
            "mail_from",
            "null_sender",
            "rcpt",
            "rcpt_rejected",
            "user_unknown",
        ] {
            *t.entry(f).or_insert(0) += l["mxwatch"]["smtp"][f].as_u64().unwrap_or(0);
        }
    }
    t
}

/// (rule, client, start bin) of every detection start.
fn starts(lines: &[Value]) -> Vec<(String, String, String)> {
    let mut v: Vec<_> = lines
        .iter()
        .filter(|l| {
            l["event"]["dataset"] == "mxwatch.detection" && l["event"]["type"][0] == "start"
        })
        .map(|l| {
            (
                l["rule"]["name"].as_str().unwrap().to_owned(),
                l["source"]["ip"].as_str().unwrap().to_owned(),
                l["event"]["start"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    v.sort();
    v
}

fn bins_close(scenario: &str, name: &str, a: &Bins, b: &Bins) {
    assert_eq!(
        totals(a),
        totals(b),
        "{scenario}: {name}: queries by client and qtype"
    );
    let keys: std::collections::BTreeSet<_> = a.keys().chain(b.keys()).collect();
    let sum = |m: Option<&BTreeMap<String, u64>>| m.map_or(0, |q| q.values().sum::<u64>()) as i64;
    let mut moved = 0;
    for k in &keys {
        let d = (sum(a.get(*k)) - sum(b.get(*k))).abs();
        assert!(
            d <= 2,
            "{scenario}: {name}: bin {k:?}: {:?} vs {:?}",
            a.get(*k),
            b.get(*k)
        );
        moved += d;
    }
    eprintln!(
        "{scenario}: {name}: {} client-bins, {moved} queries in a neighbouring bin",
        keys.len()
    );
}

fn same_three_ways(scenario: &str, expect: &[&str]) {
    let p = packets(scenario);
    let d = dnstap(scenario);
    let q = querylog(scenario);
    let pb = dns_bins(&p);
    bins_close(scenario, "dnstap", &pb, &dns_bins(&d));
    bins_close(scenario, "query log", &pb, &dns_bins(&q));
    // SMTP: the maillog's counts are the wire's for the mail server.
    assert_eq!(
        smtp_totals(&p),
        smtp_totals(&d),
        "{scenario}: maillog SMTP counts"
    );
    let ps = starts(&p);
    for e in expect {
        assert!(
            ps.iter().any(|(r, ip, _)| r == e && ip == MAIL_SERVER),
            "{scenario}: packets: no {e} in {ps:?}"
        );
    }
    assert_eq!(ps, starts(&d), "{scenario}: dnstap + maillog detections");
    assert_eq!(ps, starts(&q), "{scenario}: query log + maillog detections");
    // A log and a capture of the same period, merged by time.
    let mixed = way(
        scenario,
        &[
            "--merge".into(),
            "@-smtp.pcap".into(),
            "--bind-querylog".into(),
            "@-query.log".into(),
        ],
    );
    assert_eq!(
        ps,
        starts(&mixed),
        "{scenario}: query log + SMTP capture detections"
    );
    // The query log says its response counters are absent, not zero.
    let ql = q
        .iter()
        .find(|l| {
            l["event"]["dataset"] == "mxwatch.client_stats" && l["source"]["ip"] == MAIL_SERVER
        })
        .unwrap();
    assert!(ql["mxwatch"]["dns"]["responses"].is_null(), "{ql}");
    let last = q.last().unwrap();
    let inputs = last["mxwatch"]["capture"]["inputs"].as_array().unwrap();
    assert_eq!(inputs.len(), 2, "{last}");
    assert!(
        inputs
            .iter()
            .all(|i| i["malformed"].as_object().unwrap().is_empty()),
        "{last}"
    );
}

#[test]
fn relay_same_three_ways() {
    same_three_ways("relay", &["spam_relay", "smtp_outbound_flood"]);
}

#[test]
fn backscatter_same_three_ways() {
    same_three_ways("backscatter", &["backscatter", "smtp_user_unknown_flood"]);
}

/// dnstap-read (BIND's own tool) is the oracle of the dnstap file: the same
/// number of client queries and responses per client.
#[test]
fn dnstap_file_matches_dnstap_read() {
    let f = repo().join("pcaps/lab/inputs/relay.dnstap");
    let Ok(out) = std::process::Command::new("dnstap-read").arg(&f).output() else {
        panic!("dnstap-read not found: run scripts/deps");
    };
    let text = String::from_utf8(out.stdout).unwrap();
    let queries = text
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("CQ"))
        .count() as u64;
    let responses = text
        .lines()
        .filter(|l| l.split_whitespace().nth(2) == Some("CR"))
        .count() as u64;
    let lines = read_lines(&["--stats", "--top", "10000", f.to_str().unwrap()]);
    let (mut q, mut r) = (0, 0);
    for l in &lines {
        if l["event"]["dataset"] == "mxwatch.client_stats" {
            q += l["mxwatch"]["dns"]["queries"].as_u64().unwrap_or(0);
            r += l["mxwatch"]["dns"]["responses"].as_u64().unwrap_or(0);
        }
    }
    assert_eq!((q, r), (queries, responses));
    assert!(queries > 400);
}

/// A log with no recognisable line is one clear error; malformed lines are counted.
#[test]
fn unrecognisable_log_is_one_error_and_bad_lines_are_counted() {
    let dir = tempfile::tempdir().unwrap();
    let junk = dir.path().join("junk.log");
    std::fs::write(&junk, "hello\nworld\n").unwrap();
    let out = mxwatch(&["read", "--bind-querylog", junk.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not one BIND query log line"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");

    let mixed = dir.path().join("mixed.log");
    std::fs::write(
        &mixed,
        "29-Nov-2026 11:22:35.100 queries: info: client @0x1 10.53.0.25#5 (a.test): query: a.test IN A + (10.53.0.2)\n\
         29-Nov-2026 11:22:35.200 queries: info: client @0x1 10.53.0.25#5 (a.test): query: a.test IN NOPE + (10.53.0.2)\n\
         garbage: client x query: y\n",
    )
    .unwrap();
    let lines = read_lines(&["--bind-querylog", mixed.to_str().unwrap()]);
    let inputs = &lines.last().unwrap()["mxwatch"]["capture"]["inputs"][0];
    assert_eq!(inputs["events"], 1, "{inputs}");
    assert_eq!(inputs["malformed"]["bad_qtype"], 1, "{inputs}");
    assert_eq!(inputs["malformed"]["bad_time"], 1, "{inputs}");

    let mail = dir.path().join("maillog");
    std::fs::write(
        &mail,
        "Nov 29 11:22:38 mx postfix/smtpd[1]: connect from a[10.0.0.1]\n",
    )
    .unwrap();
    let out = mxwatch(&["read", "--maillog", mail.to_str().unwrap()]);
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--mail-server"), "{err}");
}
