//! The action runner's safety (issue #17): dry-run runs nothing, the
//! allowlist refuses, the rate cap holds, a timeout kills and is reported, a
//! failing command does not stop the sensor, the undo runs at the end.

use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use super::*;
use crate::classify::{ClientBin, ClientRecord, ClosedBin};
use crate::detect::{Alert, Evidence, Phase, Why};
use crate::output::action::ActionRecord;
use crate::output::{CaptureSnapshot, ClassifierHealth, Sink};

const SEC: i64 = 1_000_000;

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn alert(client: &str, phase: Phase, ts: i64, peers: &[(&str, u64)]) -> Alert {
    let evidence = Evidence {
        smtp_peers: peers.iter().map(|(p, n)| (ip(p), *n)).collect(),
        ..Evidence::default()
    };
    Alert {
        ts,
        phase,
        rule: &crate::detect::spam_relay::INFO,
        alert_id: format!("id-{client}"),
        ip: ip(client),
        server: None,
        start: 0,
        end: ts,
        why: Why::Continues { qps: 0.0 },
        evidence,
        sensors: Vec::new(),
    }
}

fn action(name: &str, command: &[&str]) -> ActionConfig {
    ActionConfig {
        name: name.into(),
        rules: vec!["spam_relay".into()],
        on: vec![Trigger::Start],
        target: Target::Client,
        follow_peers: false,
        command: command.iter().map(|s| s.to_string()).collect(),
        undo: None,
        hold_secs: None,
        timeout_secs: 5.0,
        mode: Mode::Act,
        env: Default::default(),
    }
}

fn bin(end: i64) -> ClosedBin {
    ClosedBin {
        start: end - 5 * SEC,
        end,
        ..ClosedBin::default()
    }
}

fn lines(d: &[Decision]) -> Vec<(&'static str, Option<&'static str>, Vec<IpAddr>)> {
    d.iter()
        .map(|d| match d {
            Decision::Run(j) => ("run", None, j.record.targets.clone()),
            Decision::Line(r) => (r.outcome, r.refusal, r.targets.clone()),
        })
        .collect()
}

#[test]
fn dry_run_and_log_mode_run_nothing() {
    let mut logged = action("a", &["/bin/true"]);
    logged.mode = Mode::Log;
    let mut p = Planner::new(vec![logged], ActionsConfig::default(), false);
    let d = p.on_alert(&alert("192.0.2.7", Phase::Start, SEC, &[]), "{}");
    assert_eq!(lines(&d), vec![("dry_run", None, vec![ip("192.0.2.7")])]);
    // --dry-run wins over mode = "act".
    let mut p = Planner::new(
        vec![action("a", &["/bin/true"])],
        ActionsConfig::default(),
        true,
    );
    let d = p.on_alert(&alert("192.0.2.7", Phase::Start, SEC, &[]), "{}");
    assert_eq!(lines(&d)[0].0, "dry_run");
    // Through the sink: the command would create a file; it does not.
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("ran");
    let cmd = ["/usr/bin/touch", marker.to_str().unwrap()];
    let (recs, mut sink) = sink(vec![action("a", &cmd)], ActionsConfig::default(), true);
    sink.bin_lines(&bin(SEC), &[alert("192.0.2.7", Phase::Start, SEC, &[])])
        .unwrap();
    sink.close().unwrap();
    assert!(!marker.exists());
    assert_eq!(recs.lock().unwrap()[0].outcome, "dry_run");
}

#[test]
fn the_allowlist_is_never_acted_on() {
    let limits = ActionsConfig {
        allowlist: vec!["10.53.0.0/24".into(), "192.0.2.9".into()],
        ..ActionsConfig::default()
    };
    let mut peers = action("peers", &["/bin/true"]);
    peers.target = Target::Peers;
    let mut p = Planner::new(vec![action("client", &["/bin/true"]), peers], limits, false);
    // The client (a mail server) is allowlisted: refused; of its peers only
    // the one outside the allowlist is acted on.
    let a = alert(
        "10.53.0.25",
        Phase::Start,
        SEC,
        &[("192.0.2.9", 9), ("203.0.113.5", 4)],
    );
    let d = p.on_alert(&a, "{}");
    assert_eq!(
        lines(&d),
        vec![
            ("refused", Some("allowlist"), vec![]),
            ("run", None, vec![ip("203.0.113.5")])
        ]
    );
    let Decision::Line(r) = &d[0] else { panic!() };
    assert_eq!(r.allowlisted, vec![ip("10.53.0.25")]);
    let Decision::Run(j) = &d[1] else { panic!() };
    assert_eq!(j.record.allowlisted, vec![ip("192.0.2.9")]);
    // The same allowlisted mail server as the server whose settings an
    // action changes (a relay brake): run.
    let mut brake = action("brake", &["/bin/true"]);
    brake.target = Target::Server;
    let limits = ActionsConfig {
        allowlist: vec!["10.53.0.0/24".into()],
        ..ActionsConfig::default()
    };
    let mut p = Planner::new(vec![brake], limits, false);
    let d = p.on_alert(&alert("10.53.0.25", Phase::Start, SEC, &[]), "{}");
    assert_eq!(lines(&d), vec![("run", None, vec![ip("10.53.0.25")])]);
}

#[test]
fn the_rate_cap_holds() {
    let limits = ActionsConfig {
        max_per_minute: 3,
        ..ActionsConfig::default()
    };
    let mut p = Planner::new(vec![action("a", &["/bin/true"])], limits, false);
    let mut got = Vec::new();
    for i in 0..5 {
        let a = alert(&format!("192.0.2.{i}"), Phase::Start, (10 + i) * SEC, &[]);
        got.extend(lines(&p.on_alert(&a, "{}")).into_iter().map(|l| (l.0, l.1)));
    }
    assert_eq!(
        got,
        vec![
            ("run", None),
            ("run", None),
            ("run", None),
            ("refused", Some("rate_cap")),
            ("refused", Some("rate_cap"))
        ]
    );
    // A minute after the first run, there is room again.
    let a = alert("192.0.2.50", Phase::Start, 71 * SEC, &[]);
    assert_eq!(lines(&p.on_alert(&a, "{}"))[0].0, "run");
}

#[test]
fn undo_runs_at_the_end_or_after_the_hold_with_the_same_targets() {
    let mut a1 = action("end", &["/bin/true"]);
    a1.undo = Some(vec!["/bin/false".into()]);
    a1.target = Target::Peers;
    a1.follow_peers = true;
    let mut p = Planner::new(vec![a1], ActionsConfig::default(), false);
    let d = p.on_alert(
        &alert("10.53.0.25", Phase::Start, SEC, &[("203.0.113.1", 3)]),
        "{}",
    );
    assert_eq!(lines(&d), vec![("run", None, vec![ip("203.0.113.1")])]);
    // A later bin shows a new source of the same server: followed.
    let mut b = ClientBin::default();
    b.see_smtp_peer(ip("203.0.113.1"));
    b.see_smtp_peer(ip("203.0.113.2"));
    let closed = ClosedBin {
        start: 5 * SEC,
        end: 10 * SEC,
        clients: vec![ClientRecord {
            ip: ip("10.53.0.25"),
            bin: Box::new(b),
            local_domain: None,
        }],
        idle: Vec::new(),
    };
    let d = p.on_bin(&closed, &[]);
    assert_eq!(lines(&d), vec![("run", None, vec![ip("203.0.113.2")])]);
    let Decision::Run(j) = &d[0] else { panic!() };
    assert_eq!(j.record.trigger, "follow");
    let d = p.on_alert(&alert("10.53.0.25", Phase::End, 60 * SEC, &[]), "{}");
    assert_eq!(
        lines(&d),
        vec![("run", None, vec![ip("203.0.113.1"), ip("203.0.113.2")])]
    );
    let Decision::Run(j) = &d[0] else { panic!() };
    assert_eq!(j.record.trigger, "undo");
    assert!(
        j.env
            .contains(&("MXW_TARGETS".into(), "203.0.113.1 203.0.113.2".into()))
    );

    let mut held = action("hold", &["/bin/true"]);
    held.undo = Some(vec!["/bin/true".into()]);
    held.hold_secs = Some(30.0);
    let mut p = Planner::new(vec![held], ActionsConfig::default(), false);
    p.on_alert(&alert("192.0.2.7", Phase::Start, SEC, &[]), "{}");
    assert!(p.on_bin(&bin(30 * SEC), &[]).is_empty());
    let d = p.on_bin(&bin(31 * SEC), &[]);
    assert_eq!(lines(&d), vec![("run", None, vec![ip("192.0.2.7")])]);
}

/// Collects the action lines.
struct Rec(Arc<Mutex<Vec<ActionRecord>>>);

impl Sink for Rec {
    fn bin_lines(&mut self, _: &ClosedBin, _: &[Alert]) -> io::Result<()> {
        Ok(())
    }
    fn capture_stats(&mut self, _: &CaptureSnapshot, _: &ClassifierHealth) -> io::Result<()> {
        Ok(())
    }
    fn action_line(&mut self, r: &ActionRecord) -> io::Result<()> {
        self.0.lock().unwrap().push(r.clone());
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

fn sink(
    actions: Vec<ActionConfig>,
    limits: ActionsConfig,
    dry_run: bool,
) -> (Arc<Mutex<Vec<ActionRecord>>>, ActionSink) {
    let recs = Arc::new(Mutex::new(Vec::new()));
    let s = ActionSink::new(
        Box::new(Rec(recs.clone())),
        "t".into(),
        actions,
        limits,
        dry_run,
    );
    (recs, s)
}

#[test]
fn a_timeout_or_a_failing_command_is_reported_and_the_sensor_goes_on() {
    let mut slow = action("slow", &["/bin/sleep", "30"]);
    slow.timeout_secs = 0.2;
    let mut failing = action("failing", &["/bin/sh", "-c", "echo no >&2; exit 7"]);
    failing.undo = Some(vec!["/nonexistent/undo".into()]);
    let (recs, mut s) = sink(vec![slow, failing], ActionsConfig::default(), false);
    let t0 = std::time::Instant::now();
    // The output thread is not held up by the 30-second command.
    s.bin_lines(&bin(SEC), &[alert("192.0.2.7", Phase::Start, SEC, &[])])
        .unwrap();
    assert!(t0.elapsed() < std::time::Duration::from_millis(100));
    for i in 2..5 {
        s.bin_lines(&bin(i * SEC), &[]).unwrap();
    }
    s.bin_lines(
        &bin(5 * SEC),
        &[alert("192.0.2.7", Phase::End, 5 * SEC, &[])],
    )
    .unwrap();
    s.close().unwrap();
    let recs = recs.lock().unwrap();
    let got: Vec<(&str, &str, &str)> = recs
        .iter()
        .map(|r| (r.action.as_str(), r.trigger, r.outcome))
        .collect();
    assert_eq!(
        got,
        vec![
            ("slow", "start", "timeout"),
            ("failing", "start", "failed"),
            ("failing", "undo", "failed"),
        ]
    );
    assert_eq!(recs[0].signal, Some(libc::SIGKILL));
    assert!(recs[0].duration_secs.unwrap() < 5.0);
    assert_eq!(
        (recs[1].exit_code, recs[1].stderr.as_deref()),
        (Some(7), Some("no\n"))
    );
    assert!(
        recs[2]
            .error
            .as_deref()
            .unwrap()
            .contains("/nonexistent/undo")
    );
}

#[test]
fn the_command_gets_the_alert_line_and_the_key_fields() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("got");
    let script = format!(
        "cat > {0}; echo \"$MXW_RULE $MXW_CLIENT $MXW_TARGETS $MXW_PEERS $MXW_TRIGGER $EXTRA\" >> {0}",
        out.display()
    );
    let mut a = action("a", &["/bin/sh", "-c", &script]);
    a.target = Target::Peers;
    a.env.insert("EXTRA".into(), "x".into());
    let (recs, mut s) = sink(vec![a], ActionsConfig::default(), false);
    let al = alert(
        "10.53.0.25",
        Phase::Start,
        SEC,
        &[("203.0.113.1", 3), ("203.0.113.2", 1)],
    );
    s.bin_lines(&bin(SEC), &[al]).unwrap();
    s.close().unwrap();
    let got = std::fs::read_to_string(&out).unwrap();
    let (line, fields) = got.split_once('\n').unwrap();
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["rule"]["name"], "spam_relay");
    assert_eq!(v["source"]["ip"], "10.53.0.25");
    assert_eq!(
        fields.trim(),
        "spam_relay 10.53.0.25 203.0.113.1 203.0.113.2 203.0.113.1:3 203.0.113.2:1 start x"
    );
    assert_eq!(recs.lock().unwrap()[0].outcome, "ok");
}
