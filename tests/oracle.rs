//! Oracle: per-client counts of `mxwatch read --stats` equal tshark's on every
//! committed capture (DNS queries by qtype and responses by rcode; SMTP
//! session starts, MAIL, RCPT, "user unknown" replies, outbound sessions).
//! Differences by design are listed in `EXCEPTIONS`, each with its reason.

mod common;

use std::path::Path;

use common::*;

/// (capture, client, counter, tshark's count minus ours, reason).
const EXCEPTIONS: &[(&str, &str, &str, i64, &str)] = &[
    (
        "dns-fragment-out-of-order.pcap",
        "10.0.0.61",
        "dns.unanswered",
        1,
        "without IP reassembly tshark does not pair a fragmented query (first fragment sent last) with its fragmented answer; mxwatch reassembles both",
    ),
    (
        "dns-fragment-overlap.pcap",
        "10.0.0.62",
        "dns.unanswered",
        1,
        "without IP reassembly tshark does not pair the fragmented query with its answer; mxwatch reassembles it",
    ),
    (
        "dns-fragment-out-of-order.pcap",
        "10.0.0.61",
        "dns.qtype.A",
        -1,
        "this oracle runs tshark without IP reassembly: the query cut into 24-byte fragments has no question in its first one; mxwatch reassembles it (tests/peer_oracle.rs compares with tshark reassembling)",
    ),
    (
        "dns-garbage.pcap",
        "10.0.0.51",
        "dns.unanswered",
        3,
        "the same 3 malformed-name questions: tshark counts them as queries (never answered); mxwatch rejects them before the pending table",
    ),
    (
        "dns-fragment.pcap",
        "10.0.0.31",
        "dns.unanswered",
        1,
        "without IP reassembly tshark does not pair the query whose answer's fragments arrive last-first; mxwatch reads that answer's first fragment and pairs it",
    ),
    (
        "dns-garbage.pcap",
        "10.0.0.51",
        "dns.qtype.A",
        3,
        "tshark lists a qtype for questions whose name is malformed (two compression loops, a 321-byte name); mxwatch rejects them as dns_bad_name",
    ),
];

/// tshark's fields, tab-separated, repeated fields joined with commas; the
/// first four are always ip.src, ipv6.src, ip.dst, ipv6.dst. TCP streams are
/// reassembled in order even when segments arrive out of order.
fn tshark_fields(file: &Path, options: &[&str], filter: &str, fields: &[&str]) -> String {
    let mut args: Vec<&str> = options.to_vec();
    args.extend([
        "-o",
        "tcp.reassemble_out_of_order:TRUE",
        "-Y",
        filter,
        "-T",
        "fields",
    ]);
    args.extend([
        "-E",
        "separator=\t",
        "-E",
        "occurrence=a",
        "-E",
        "aggregator=,",
    ]);
    for f in ["ip.src", "ipv6.src", "ip.dst", "ipv6.dst"]
        .iter()
        .chain(fields)
    {
        args.extend(["-e", f]);
    }
    tshark(file, &args)
}

fn bump(c: &mut Counts, ip: &str, key: String) {
    *c.entry((ip.to_owned(), key)).or_default() += 1;
}

/// DNS counts per client from tshark, without IP reassembly (a sensor counts
/// the first fragment, which carries the question).
fn tshark_dns(file: &Path, c: &mut Counts) {
    let out = tshark_fields(
        file,
        // Two passes, so that queries carry `dns.response_in`.
        &["-2", "-o", "ip.defragment:FALSE"],
        "dns && !icmp",
        &[
            "dns.flags.response",
            "dns.qry.type",
            "dns.flags.rcode",
            "dns.response_in",
        ],
    );

    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let src = if f[0].is_empty() { f[1] } else { f[0] };
        let dst = if f[2].is_empty() { f[3] } else { f[2] };
        // Tunnels would repeat addresses; keep the innermost.
        let src = src.rsplit(',').next().unwrap_or(src);
        let dst = dst.rsplit(',').next().unwrap_or(dst);
        let flags: Vec<&str> = f[4].split(',').filter(|s| !s.is_empty()).collect();
        if flags.iter().all(|r| *r == "0") {
            let qtypes: Vec<&str> = f[5].split(',').filter(|s| !s.is_empty()).collect();
            for t in &qtypes {
                bump(c, src, format!("dns.qtype.{}", qtype_bucket(t)));
            }
            // Queries of this frame that no response answered.
            let answered = f[7].split(',').filter(|s| !s.is_empty()).count();
            for _ in answered..qtypes.len() {
                bump(c, src, "dns.unanswered".into());
            }
        } else if flags.iter().all(|r| *r == "1") {
            for r in f[6].split(',').filter(|s| !s.is_empty()) {
                bump(c, dst, format!("dns.rcode.{}", rcode_bucket(r)));
            }
        } else {
            panic!(
                "{}: queries and responses in one frame: {line}",
                file.display()
            );
        }
    }
}

/// SMTP counts per address from tshark.
fn tshark_smtp(file: &Path, c: &mut Counts) {
    let out = tshark_fields(
        file,
        &[],
        "tcp.port == 25",
        &[
            "tcp.dstport",
            "tcp.flags.syn",
            "tcp.flags.ack",
            "tcp.analysis.retransmission",
            "smtp.req.command",
            "smtp.response.code",
        ],
    );

    for line in out.lines() {
        let f: Vec<&str> = line.split('\t').collect();
        let src = if f[0].is_empty() { f[1] } else { f[0] };
        let dst = if f[2].is_empty() { f[3] } else { f[2] };
        let to_server = f[4] == "25";
        let syn = f[5] == "1" || f[5] == "True";
        let ack = f[6] == "1" || f[6] == "True";
        let retrans = !f[7].is_empty();
        if to_server && syn && !ack && !retrans {
            bump(c, dst, "smtp.connections".into());
            bump(c, src, "smtp.outbound".into());
        }
        if to_server {
            for cmd in f[8].split(',').filter(|s| !s.is_empty()) {
                match cmd.to_ascii_uppercase().as_str() {
                    "MAIL" => bump(c, dst, "smtp.mail_from".into()),
                    "RCPT" => bump(c, dst, "smtp.rcpt".into()),
                    _ => {}
                }
            }
        } else {
            for code in f[9].split(',').filter(|s| !s.is_empty()) {
                // In these captures every 550 is a "user unknown" RCPT
                // rejection (554 relay-denied and 450 temporary are not).
                if code == "550" {
                    bump(c, src, "smtp.user_unknown".into());
                }
            }
        }
    }
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
    // Counters tshark has no field for.
    c.retain(|(_, k), _| {
        k.starts_with("dns.qtype.")
            || k.starts_with("dns.rcode.")
            || matches!(
                k.as_str(),
                "dns.unanswered"
                    | "smtp.connections"
                    | "smtp.outbound"
                    | "smtp.mail_from"
                    | "smtp.rcpt"
                    | "smtp.user_unknown"
            )
    });
    c
}

#[test]
fn per_client_counts_equal_tshark_on_every_capture() {
    let mut failures = Vec::new();
    let mut compared = 0;
    for file in captures() {
        let name = file.file_name().unwrap().to_str().unwrap().to_owned();
        let mut theirs = Counts::new();
        tshark_dns(&file, &mut theirs);
        tshark_smtp(&file, &mut theirs);
        for (cap, ip, key, diff, _why) in EXCEPTIONS {
            if *cap == name {
                let e = theirs.entry((ip.to_string(), key.to_string())).or_default();
                *e -= diff;
            }
        }
        theirs.retain(|_, v| *v != 0);
        let ours = ours(&file);
        compared += theirs.values().sum::<i64>();
        if ours != theirs {
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
    }
    assert!(
        failures.is_empty(),
        "differences from tshark:\n{}",
        failures.join("\n")
    );
    assert!(
        compared > 4000,
        "too little compared ({compared}): captures missing?"
    );
}
