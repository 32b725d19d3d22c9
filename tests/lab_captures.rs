//! Checks the committed lab captures (`pcaps/lab/`, made by `scripts/lab/run`) for the
//! papers' patterns, counted with tshark as an independent decoder. No root needed.
//!
//! - relay: the mail server's upstream query rate jumps by more than 10x and MX is the
//!   largest qtype in the attack window; the mail server sends SMTP out.
//! - backscatter: the rate jumps by more than 10x; names made of an FQDN plus the local
//!   domain appear, and every response to them is NXDOMAIN; 550 user unknown replies.
//! - benign: none of that.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Fake TLDs of the lab (all but `test` are real public suffixes too).
const TLDS: &[&str] = &["com", "net", "org", "jp", "test"];

fn lab_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("pcaps/lab")
}

fn tshark(file: &Path, filter: &str, fields: &[&str]) -> Vec<Vec<String>> {
    let mut cmd = Command::new("tshark");
    cmd.args(["-n", "-r"])
        .arg(file)
        .args(["-Y", filter, "-T", "fields", "-E", "separator=\t"]);
    for f in fields {
        cmd.args(["-e", f]);
    }
    let out = match cmd.output() {
        Ok(o) => o,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            panic!("tshark not found: run scripts/deps (or scripts/lab/deps)")
        }
        Err(e) => panic!("cannot run tshark: {e}"),
    };
    assert!(
        out.status.success(),
        "tshark failed on {}: {}",
        file.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect()
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Phase {
    Baseline,
    Attack,
    Drain,
}

struct Sidecar {
    json: Value,
    mail_server: String,
    upstream: String,
    local_domain: String,
    windows: Vec<(Phase, f64, f64)>,
}

impl Sidecar {
    fn load(scenario: &str) -> Sidecar {
        let path = lab_dir().join(format!("{scenario}.json"));
        let text = std::fs::read_to_string(&path)
            .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
        let json: Value = serde_json::from_str(&text).expect("sidecar is JSON");
        let s = |k: &str| {
            json[k]
                .as_str()
                .unwrap_or_else(|| panic!("sidecar: {k}"))
                .to_string()
        };
        let w = |k: &str| {
            let f = |e: &str| {
                json[k][e]
                    .as_f64()
                    .unwrap_or_else(|| panic!("sidecar: {k}.{e}"))
            };
            (f("start"), f("end"))
        };
        let mut windows = Vec::new();
        for (p, k) in [
            (Phase::Baseline, "baseline"),
            (Phase::Attack, "attack"),
            (Phase::Drain, "drain"),
        ] {
            let (a, b) = w(k);
            assert!(b > a, "{scenario}: empty {k} window");
            windows.push((p, a, b));
        }
        assert_eq!(json["scenario"], scenario);
        assert!(json["messages"].is_object(), "sidecar: messages");
        Sidecar {
            mail_server: s("mail_server"),
            upstream: s("upstream_dns"),
            local_domain: s("local_domain"),
            windows,
            json,
        }
    }

    fn phase(&self, t: f64) -> Option<Phase> {
        self.windows
            .iter()
            .find(|(_, a, b)| *a <= t && t < *b)
            .map(|(p, _, _)| *p)
    }

    fn duration(&self, p: Phase) -> f64 {
        let (_, a, b) = self.windows.iter().find(|(q, _, _)| *q == p).unwrap();
        b - a
    }

    fn file(&self, kind: &str) -> PathBuf {
        let name = self.json["files"][kind]
            .as_str()
            .unwrap_or_else(|| panic!("sidecar: files.{kind}"));
        lab_dir().join(name)
    }

    fn msg(&self, k: &str) -> u64 {
        self.json["messages"][k].as_u64().unwrap_or(0)
    }
}

fn qtype_name(t: &str) -> String {
    match t.split(',').next().unwrap_or("") {
        "1" => "A".into(),
        "28" => "AAAA".into(),
        "12" => "PTR".into(),
        "15" => "MX".into(),
        "16" => "TXT".into(),
        "2" => "NS".into(),
        other => format!("TYPE{other}"),
    }
}

fn is_true(v: &str) -> bool {
    v == "1" || v.eq_ignore_ascii_case("true")
}

/// `mail7.isp7.jp.sub.univ.test` = an FQDN (ending in a TLD) + the local domain.
fn appended_fqdn(name: &str, local: &str) -> bool {
    let name = name.trim_end_matches('.').to_ascii_lowercase();
    let Some(head) = name.strip_suffix(&format!(".{local}")) else {
        return false;
    };
    match head.rsplit_once('.') {
        Some((_, tld)) => TLDS.contains(&tld),
        None => false,
    }
}

#[derive(Default, Debug)]
struct DnsStats {
    /// queries from the mail server to the upstream server, per phase and qtype
    queries: BTreeMap<Phase, BTreeMap<String, u64>>,
    /// appended names queried, any phase
    appended: BTreeSet<String>,
    /// rcodes of responses to appended names
    appended_rcodes: BTreeMap<String, u64>,
    responses: u64,
    nxdomain: u64,
}

impl DnsStats {
    fn total(&self, p: Phase) -> u64 {
        self.queries.get(&p).map(|m| m.values().sum()).unwrap_or(0)
    }
    fn rate(&self, sc: &Sidecar, p: Phase) -> f64 {
        self.total(p) as f64 / sc.duration(p)
    }
    fn top_qtype(&self, p: Phase) -> Option<(String, u64)> {
        self.queries
            .get(&p)?
            .iter()
            .max_by_key(|(_, n)| **n)
            .map(|(k, n)| (k.clone(), *n))
    }
    fn share(&self, p: Phase, qtype: &str) -> f64 {
        let n = self
            .queries
            .get(&p)
            .and_then(|m| m.get(qtype))
            .copied()
            .unwrap_or(0);
        n as f64 / self.total(p).max(1) as f64
    }
}

fn dns_stats(sc: &Sidecar) -> DnsStats {
    let rows = tshark(
        &sc.file("dns"),
        "dns",
        &[
            "frame.time_epoch",
            "ip.src",
            "ip.dst",
            "dns.flags.response",
            "dns.qry.type",
            "dns.qry.name",
            "dns.flags.rcode",
        ],
    );
    assert!(!rows.is_empty(), "no DNS in {}", sc.file("dns").display());
    let mut st = DnsStats::default();
    for r in rows {
        let [t, src, dst, resp, qtype, name, rcode] = &r[..] else {
            continue;
        };
        let t: f64 = t.parse().expect("frame.time_epoch");
        if !is_true(resp) && *src == sc.mail_server && *dst == sc.upstream {
            if let Some(p) = sc.phase(t) {
                *st.queries
                    .entry(p)
                    .or_default()
                    .entry(qtype_name(qtype))
                    .or_default() += 1;
            }
            if appended_fqdn(name, &sc.local_domain) {
                st.appended.insert(name.to_ascii_lowercase());
            }
        } else if is_true(resp) && *src == sc.upstream && *dst == sc.mail_server {
            st.responses += 1;
            let rc = if rcode == "3" {
                "NXDOMAIN".to_string()
            } else {
                format!("rcode{rcode}")
            };
            if rcode == "3" {
                st.nxdomain += 1;
            }
            if appended_fqdn(name, &sc.local_domain) {
                *st.appended_rcodes.entry(rc).or_default() += 1;
            }
        }
    }
    st
}

/// SMTP session starts (SYN without ACK to port 25): (inbound to the mail server,
/// outbound from the mail server), over the whole capture.
fn smtp_syns(sc: &Sidecar) -> (u64, u64) {
    let rows = tshark(
        &sc.file("smtp"),
        "tcp.flags.syn==1 && tcp.flags.ack==0 && tcp.dstport==25",
        &["ip.src", "ip.dst"],
    );
    let mut inbound = 0;
    let mut outbound = 0;
    for r in rows {
        if r.first() == Some(&sc.mail_server) {
            outbound += 1;
        } else if r.get(1) == Some(&sc.mail_server) {
            inbound += 1;
        }
    }
    (inbound, outbound)
}

fn check_files(sc: &Sidecar) {
    for kind in ["dns", "smtp"] {
        let f = sc.file(kind);
        let bytes = std::fs::read(&f).unwrap_or_else(|e| panic!("{}: {e}", f.display()));
        assert!(
            bytes.len() < 2 * 1024 * 1024,
            "{} is {} bytes (limit 2 MB)",
            f.display(),
            bytes.len()
        );
        // classic pcap (either byte order, µs or ns), link type Ethernet
        let magic = u32::from_le_bytes(bytes[0..4].try_into().unwrap());
        assert!(
            [0xa1b2c3d4, 0xa1b23c4d, 0xd4c3b2a1, 0x4d3cb2a1].contains(&magic),
            "{} is not a classic pcap",
            f.display()
        );
        let linktype = u32::from_le_bytes(bytes[20..24].try_into().unwrap());
        assert_eq!(linktype, 1, "{}: link type is not Ethernet", f.display());
    }
}

fn report(name: &str, sc: &Sidecar, st: &DnsStats) -> (f64, f64) {
    let b = st.rate(sc, Phase::Baseline);
    let a = st.rate(sc, Phase::Attack);
    eprintln!(
        "{name}: baseline {:.2} q/s, attack {:.2} q/s, attack qtypes {:?}, appended {}, \
         NXDOMAIN {}/{}",
        b,
        a,
        st.queries.get(&Phase::Attack),
        st.appended.len(),
        st.nxdomain,
        st.responses
    );
    (b, a)
}

#[test]
fn relay_capture_shows_mx_driven_burst() {
    let sc = Sidecar::load("relay");
    check_files(&sc);
    let st = dns_stats(&sc);
    let (b, a) = report("relay", &sc, &st);
    assert!(b > 0.0, "relay: no upstream queries in the baseline");
    assert!(
        a > 10.0 * b,
        "relay: attack {a:.2} q/s not > 10x baseline {b:.2} q/s"
    );
    let (top, _) = st
        .top_qtype(Phase::Attack)
        .expect("queries in attack window");
    assert_eq!(
        top, "MX",
        "relay: MX is not the largest qtype in the attack window"
    );
    assert!(
        st.share(Phase::Attack, "MX") > 0.5,
        "relay: MX share {:.2}",
        st.share(Phase::Attack, "MX")
    );
    assert!(
        st.appended.is_empty(),
        "relay: unexpected appended names {:?}",
        st.appended
    );
    // The same address is the querier, the port-25 server and the outbound SMTP client.
    let (inbound, outbound) = smtp_syns(&sc);
    assert!(inbound > 0, "relay: no inbound SMTP sessions");
    assert!(
        outbound >= 100,
        "relay: only {outbound} outbound SMTP sessions from the mail server"
    );
    assert!(sc.msg("relayed_out") >= 100, "relay: sidecar relayed_out");
}

#[test]
fn backscatter_capture_shows_unresolved_fqdns() {
    let sc = Sidecar::load("backscatter");
    check_files(&sc);
    let st = dns_stats(&sc);
    let (b, a) = report("backscatter", &sc, &st);
    assert!(b > 0.0, "backscatter: no upstream queries in the baseline");
    assert!(
        a > 10.0 * b,
        "backscatter: attack {a:.2} q/s not > 10x baseline {b:.2} q/s"
    );
    assert!(
        st.appended.len() >= 5,
        "backscatter: only {} FQDN+local names: {:?}",
        st.appended.len(),
        st.appended
    );
    let answered: u64 = st.appended_rcodes.values().sum();
    assert!(answered > 0, "backscatter: no responses to appended names");
    assert_eq!(
        st.appended_rcodes.get("NXDOMAIN").copied().unwrap_or(0),
        answered,
        "backscatter: responses to appended names not all NXDOMAIN: {:?}",
        st.appended_rcodes
    );
    let sample = st.appended.iter().next().unwrap();
    assert!(
        sample.ends_with(&format!(".{}", sc.local_domain)),
        "{sample}"
    );
    assert!(
        st.share(Phase::Attack, "MX") < 0.2,
        "backscatter: MX share is high"
    );
    let replies = tshark(&sc.file("smtp"), "smtp.response.code == 550", &["ip.src"]);
    assert!(
        replies.len() >= 100,
        "backscatter: only {} SMTP 550 replies",
        replies.len()
    );
    assert!(replies.iter().all(|r| r[0] == sc.mail_server));
    let (inbound, _) = smtp_syns(&sc);
    assert!(
        inbound >= 100,
        "backscatter: only {inbound} inbound sessions"
    );
    assert!(sc.msg("rejected_user_unknown") >= 100);
}

#[test]
fn benign_capture_shows_neither() {
    let sc = Sidecar::load("benign");
    check_files(&sc);
    let st = dns_stats(&sc);
    let (b, a) = report("benign", &sc, &st);
    assert!(b > 0.0, "benign: no upstream queries in the baseline");
    assert!(
        a < 3.0 * b,
        "benign: attack-window rate {a:.2} q/s >= 3x baseline {b:.2} q/s"
    );
    assert!(
        st.appended.is_empty(),
        "benign: appended names {:?}",
        st.appended
    );
    assert!(
        st.share(Phase::Attack, "MX") <= 0.5,
        "benign: MX share {:.2} dominates",
        st.share(Phase::Attack, "MX")
    );
    assert_eq!(sc.msg("rejected_user_unknown"), 0);
    assert_eq!(sc.msg("attack_sent"), 0);
}

#[test]
fn appended_fqdn_classifier() {
    assert!(appended_fqdn(
        "mail7.isp7.jp.sub.univ.test",
        "sub.univ.test"
    ));
    assert!(appended_fqdn(
        "SMTP3.DYN3.NET.sub.univ.test.",
        "sub.univ.test"
    ));
    assert!(!appended_fqdn("mx.sub.univ.test", "sub.univ.test"));
    assert!(!appended_fqdn("mail7.isp7.jp", "sub.univ.test"));
    assert!(!appended_fqdn("a.b.sub.univ.test", "sub.univ.test"));
}
