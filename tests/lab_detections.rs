//! Detections on the lab's real BIND + Postfix captures (pcaps/lab/), read
//! with the lab's compressed-time settings (scripts/lab/mxwatch.toml).
//!
//! Each scenario has a golden file of its detection lines
//! (tests/golden/lab-SCENARIO.detections.jsonl; re-bless with
//! `MXWATCH_BLESS=1 cargo test --test lab_detections`) AND intent checks that
//! state what matters, so a re-bless cannot hide a regression. (#4, #5)

mod common;

use serde_json::Value;

use common::*;

struct Lab {
    mail_server: String,
    local_domain: String,
    attack_start_us: i64,
    alerts: Vec<Value>,
}

const BIN_US: i64 = 5_000_000;

fn lab(scenario: &str) -> Lab {
    let dir = repo().join("pcaps/lab");
    let side: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.join(format!("{scenario}.json"))).unwrap(),
    )
    .unwrap();
    let dns = dir.join(side["files"]["dns"].as_str().unwrap());
    let smtp = dir.join(side["files"]["smtp"].as_str().unwrap());
    let config = repo().join("scripts/lab/mxwatch.toml");
    let lines = read_lines(&[
        "--config",
        config.to_str().unwrap(),
        "--merge",
        "--workers",
        "2",
        dns.to_str().unwrap(),
        smtp.to_str().unwrap(),
    ]);
    let alerts: Vec<Value> = lines
        .into_iter()
        .filter(|l| dataset(l) == "mxwatch.detection")
        .collect();
    check_golden(scenario, &alerts);
    Lab {
        mail_server: side["mail_server"].as_str().unwrap().into(),
        local_domain: side["local_domain"].as_str().unwrap().into(),
        attack_start_us: (side["attack"]["start"].as_f64().unwrap() * 1e6) as i64,
        alerts,
    }
}

fn check_golden(scenario: &str, alerts: &[Value]) {
    let path = repo().join(format!("tests/golden/lab-{scenario}.detections.jsonl"));
    let mut text = String::new();
    for a in alerts {
        let mut a = a.clone();
        a["observer"]["name"] = "golden".into();
        text.push_str(&serde_json::to_string(&a).unwrap());
        text.push('\n');
    }
    if std::env::var_os("MXWATCH_BLESS").is_some() {
        std::fs::write(&path, &text).unwrap();
        return;
    }
    let want = std::fs::read_to_string(&path)
        .unwrap_or_else(|_| panic!("{} missing: bless it", path.display()));
    let want = parse_lines(want.as_bytes());
    let got = parse_lines(text.as_bytes());
    if want != got {
        let mut diff = String::new();
        for i in 0..want.len().max(got.len()) {
            if want.get(i) != got.get(i) {
                diff.push_str(&format!(
                    "line {}:\n  want {}\n  got  {}\n",
                    i + 1,
                    show(want.get(i)),
                    show(got.get(i))
                ));
            }
        }
        panic!(
            "{scenario}: detections differ from {} (MXWATCH_BLESS=1 to accept):\n{diff}",
            path.display()
        );
    }
}

fn show(v: Option<&Value>) -> String {
    v.map_or("(none)".into(), |v| serde_json::to_string(v).unwrap())
}

fn rule(a: &Value) -> &str {
    a["rule"]["name"].as_str().unwrap()
}

fn phase(a: &Value) -> &str {
    a["event"]["type"][0].as_str().unwrap()
}

impl Lab {
    fn starts(&self, r: &str) -> Vec<&Value> {
        self.alerts
            .iter()
            .filter(|a| rule(a) == r && phase(a) == "start")
            .collect()
    }

    /// Exactly one incident of `r` for the mail server, starting within two
    /// bins of the attack start, with start, end and a few updates under one id.
    fn one_incident(&self, r: &str) -> &Value {
        let starts = self.starts(r);
        assert_eq!(starts.len(), 1, "one {r} start wanted: {:?}", self.alerts);
        let s = starts[0];
        assert_eq!(s["source"]["ip"], self.mail_server.as_str());
        let start = micros_by_date(s["event"]["start"].as_str().unwrap());
        let attack_bin = self.attack_start_us.div_euclid(BIN_US) * BIN_US;
        assert!(
            (attack_bin - BIN_US..=attack_bin + 2 * BIN_US).contains(&start),
            "{r} starts at {} but the attack at {}",
            s["event"]["start"],
            self.attack_start_us
        );
        let id = &s["mxwatch"]["alert_id"];
        let lines: Vec<&Value> = self
            .alerts
            .iter()
            .filter(|a| &a["mxwatch"]["alert_id"] == id)
            .collect();
        assert_eq!(
            lines.iter().filter(|a| phase(a) == "end").count(),
            1,
            "{r} ends once"
        );
        assert!(
            lines.len() <= 8,
            "{r}: an incident is a handful of lines, got {}",
            lines.len()
        );
        assert!(s["event"]["reason"].as_str().unwrap().len() > 40);
        s
    }

    fn none_before_attack(&self) {
        for a in &self.alerts {
            let ts = micros_by_date(a["@timestamp"].as_str().unwrap());
            assert!(ts >= self.attack_start_us, "alert during the baseline: {a}");
        }
    }
}

#[test]
fn relay_gives_one_spam_relay_and_one_outbound_flood() {
    let lab = lab("relay");
    lab.none_before_attack();
    let s = lab.one_incident("spam_relay");
    assert!(s["mxwatch"]["evidence"]["mx_share"].as_f64().unwrap() > 0.5);
    assert_eq!(s["destination"]["ip"], "10.53.0.2");
    lab.one_incident("smtp_outbound_flood");
    for r in [
        "backscatter",
        "dns_query_flood",
        "smtp_user_unknown_flood",
        "spam_bot",
    ] {
        assert!(lab.starts(r).is_empty(), "unexpected {r}");
    }
    // The relaying sources, for an action (#17): the lab's relay sends from 10.53.10.1-20.
    let peers = s["mxwatch"]["evidence"]["smtp"]["top_peers"]
        .as_array()
        .unwrap();
    assert!(
        peers
            .iter()
            .any(|p| p["ip"].as_str().unwrap().starts_with("10.53.10.")),
        "{peers:?}"
    );
    // DNS and SMTP alerts of the same server name each other.
    let related = s["mxwatch"]["evidence"]["related_alerts"]
        .as_array()
        .unwrap();
    assert!(
        related.iter().any(|r| r == "smtp_outbound_flood"),
        "{related:?}"
    );
}

#[test]
fn backscatter_gives_one_backscatter_and_one_user_unknown_flood() {
    let lab = lab("backscatter");
    lab.none_before_attack();
    let s = lab.one_incident("backscatter");
    let ev = &s["mxwatch"]["evidence"];
    // The search domain was learnt from the traffic (the config names none).
    assert_eq!(ev["local_domain"], lab.local_domain.as_str());
    assert!(ev["unresolved_fqdn"].as_u64().unwrap() >= 5);
    let samples = ev["sample_names"].as_array().unwrap();
    assert!(samples.iter().any(|n| {
        n.as_str()
            .unwrap()
            .ends_with(&format!(".{}", lab.local_domain))
    }));
    assert!(ev["r2_total_vs_unresolved"].as_f64().is_some());
    let uu = lab.one_incident("smtp_user_unknown_flood");
    assert!(
        uu["mxwatch"]["evidence"]["smtp"]["distinct_clients"]
            .as_u64()
            .unwrap()
            > 10
    );
    assert!(
        !uu["mxwatch"]["evidence"]["smtp"]["sample_recipients"]
            .as_array()
            .unwrap()
            .is_empty()
    );
    for r in [
        "spam_relay",
        "dns_query_flood",
        "smtp_outbound_flood",
        "spam_bot",
    ] {
        assert!(lab.starts(r).is_empty(), "unexpected {r}");
    }
    // The bounce sources, with counts (#17).
    let peers = uu["mxwatch"]["evidence"]["smtp"]["top_peers"]
        .as_array()
        .unwrap();
    assert!(!peers.is_empty() && peers.len() <= 10, "{peers:?}");
    assert!(peers[0]["sessions"].as_u64().unwrap() >= 1);
}

/// Issue #17: an infected workstation (10.53.2.66, its own address, asking the
/// upstream DNS server directly and sending direct to MX) is one spam_bot; the
/// mail server and the ordinary PC beside it (10.53.2.67) are not.
#[test]
fn spambot_gives_one_spam_bot_for_the_workstation_only() {
    let lab = lab("spambot");
    lab.none_before_attack();
    let starts = lab.starts("spam_bot");
    assert_eq!(starts.len(), 1, "{:?}", lab.alerts);
    let s = starts[0];
    assert_eq!(s["source"]["ip"], "10.53.2.66");
    let ev = &s["mxwatch"]["evidence"];
    assert!(ev["distinct_mx_names"].as_u64().unwrap() >= 20, "{ev}");
    assert!(ev["qtype"]["MX"].as_u64().unwrap() >= 20, "{ev}");
    let start = micros_by_date(s["event"]["start"].as_str().unwrap());
    assert!(
        start <= lab.attack_start_us + 3 * BIN_US,
        "late: {}",
        s["event"]["start"]
    );
    for a in &lab.alerts {
        assert_eq!(a["source"]["ip"], "10.53.2.66", "only the bot alerts: {a}");
    }
}

#[test]
fn benign_gives_no_alert_at_all() {
    let lab = lab("benign");
    assert!(lab.alerts.is_empty(), "{:?}", lab.alerts);
}
