//! Rules over hand-built windows, and the detector's lifecycle over
//! synthetic days. Regression tests name the issue they come from (#4).

use std::net::{IpAddr, Ipv4Addr};

use super::config::DetectorConfig;
use super::window::{Baselines, BinSummary, Totals};
use super::*;
use crate::classify::ClientBin;
use crate::dns::{QtypeBucket, RcodeBucket};

const MIN: i64 = 60_000_000;
const MX_SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25));

/// A rule over a window of the given totals against `base` (no SMTP hint).
fn eval(
    rule: &dyn Rule,
    t: &Totals,
    base: &Baselines,
    warm: bool,
    cfg: &DetectorConfig,
) -> Option<Finding> {
    let excess = excess::Excess::of(t, base, cfg);
    rule.evaluate(&Window {
        run: &[],
        totals: t,
        base,
        warm,
        cfg,
        excess: &excess,
        smtp: SmtpHint::default(),
    })
}

fn quiet_baseline(qps: f64, mx_qps: f64) -> Baselines {
    Baselines {
        bins: 1000,
        qps,
        mx_qps,
        a_qps: qps * 0.6,
        ptr_qps: qps * 0.2,
        responses_ps: qps,
        nxdomain_ps: qps * 0.05,
        ..Baselines::default()
    }
}

fn totals(a: u64, mx: u64, ptr: u64, secs: i64) -> Totals {
    Totals::of(&[BinSummary::queries(0, secs * 1_000_000, a, mx, ptr)])
}

// ---- pure rules: what the excess is made of ----

#[test]
fn spam_relay_fires_on_an_mx_driven_excess_and_not_on_a_normal_mix() {
    let cfg = DetectorConfig::default();
    let base = quiet_baseline(0.01, 0.001);
    let f = eval(
        &spam_relay::SpamRelay,
        &totals(100, 900, 10, 120),
        &base,
        true,
        &cfg,
    )
    .unwrap();
    assert_eq!(f.rule.name, "spam_relay");
    assert!(
        eval(
            &spam_relay::SpamRelay,
            &totals(900, 30, 70, 120),
            &base,
            true,
            &cfg
        )
        .is_none()
    );
}

#[test]
fn spam_relay_without_local_cache_fires_at_a_third_of_the_excess() {
    // FACTS: without the local cache a relay's MX is only ~36% of its queries.
    let cfg = DetectorConfig::default();
    let base = quiet_baseline(0.4, 0.02);
    let t = totals(600, 360, 40, 60);
    assert!(eval(&spam_relay::SpamRelay, &t, &base, true, &cfg).is_some());
    // A first-seen client is judged against the prior's mix: still MX-driven.
    assert!(
        eval(
            &spam_relay::SpamRelay,
            &t,
            &Baselines::default(),
            false,
            &cfg
        )
        .is_some()
    );
}

#[test]
fn backscatter_fires_on_unresolved_names_and_on_nxdomain_only_for_a_mail_server() {
    let cfg = DetectorConfig::default();
    let base = quiet_baseline(0.4, 0.02);
    let mut t = totals(488, 0, 250, 30);
    t.dns.unresolved_fqdn = 74;
    t.dns.responses = 738;
    t.dns.rcode[RcodeBucket::NxDomain as usize] = 100;
    let f = eval(&backscatter::Backscatter, &t, &base, true, &cfg).unwrap();
    assert!(matches!(f.signal, Signal::UnresolvedExcess { .. }));
    // Without a search domain: no appended names, half the answers NXDOMAIN.
    let mut t = totals(488, 0, 250, 30);
    t.dns.responses = 738;
    t.dns.rcode[RcodeBucket::NxDomain as usize] = 362;
    // ... from a batch job: nothing; from a client seen serving SMTP: backscatter.
    assert!(eval(&backscatter::Backscatter, &t, &base, true, &cfg).is_none());
    let excess = excess::Excess::of(&t, &base, &cfg);
    let w = |server| Window {
        run: &[],
        totals: &t,
        base: &base,
        warm: true,
        cfg: &cfg,
        excess: &excess,
        smtp: SmtpHint {
            server,
            ..SmtpHint::default()
        },
    };
    assert!(backscatter::Backscatter.evaluate(&w(true)).is_some());
    assert!(backscatter::Backscatter.evaluate(&w(false)).is_none());
}

#[test]
fn dns_query_flood_is_opt_in_and_only_for_warm_clients() {
    let t = totals(5000, 10, 10, 60);
    let base = quiet_baseline(1.0, 0.1);
    let flood =
        |cfg: &DetectorConfig, warm| eval(&dns_query_flood::DnsQueryFlood, &t, &base, warm, cfg);
    let off = DetectorConfig::default();
    assert!(flood(&off, true).is_none());
    let on = DetectorConfig {
        query_flood: true,
        ..DetectorConfig::default()
    };
    assert!(flood(&on, true).is_some());
    assert!(flood(&on, false).is_none());
}

#[test]
fn smtp_rules() {
    let cfg = DetectorConfig::default();
    let base = Baselines::default();
    let alpha = |t: &Totals| eval(&smtp_alpha::SmtpAlpha, t, &base, true, &cfg);
    let mut t = Totals {
        secs: 60.0,
        ..Default::default()
    };
    t.smtp.connections = 100;
    t.smtp.mail_from = 20; // alpha 5
    assert_eq!(alpha(&t).unwrap().rule.name, "smtp_alpha");
    t.smtp.mail_from = 200; // alpha 0.5: in band
    assert!(alpha(&t).is_none());
    t.smtp.connections = 10;
    t.smtp.mail_from = 1; // out of band but too few sessions
    assert!(alpha(&t).is_none());
    let uu = |t: &Totals, b: &Baselines| {
        eval(
            &smtp_user_unknown_flood::SmtpUserUnknownFlood,
            t,
            b,
            true,
            &cfg,
        )
    };
    // smtp_outbound_flood is for a client seen serving SMTP.
    let ob = |t: &Totals, b: &Baselines| {
        let excess = excess::Excess::of(t, b, &cfg);
        smtp_outbound_flood::SmtpOutboundFlood.evaluate(&Window {
            run: &[],
            totals: t,
            base: b,
            warm: true,
            cfg: &cfg,
            excess: &excess,
            smtp: SmtpHint {
                server: true,
                ..SmtpHint::default()
            },
        })
    };
    t.smtp.user_unknown = 60;
    assert!(uu(&t, &base).is_some());
    t.smtp.user_unknown = 3;
    assert!(uu(&t, &base).is_none());
    t.smtp.outbound = 300;
    assert!(ob(&t, &base).is_some());
    let busy = Baselines {
        outbound_ps: 4.0,
        ..Default::default()
    };
    assert!(ob(&t, &busy).is_none());
    // Not a mail server: a workstation or a partner MTA submitting mail.
    assert!(
        eval(
            &smtp_outbound_flood::SmtpOutboundFlood,
            &t,
            &base,
            true,
            &cfg
        )
        .is_none()
    );
    // A handful is never a flood, however low the baseline.
    t.smtp.outbound = 19;
    t.secs = 1.0;
    assert!(ob(&t, &base).is_none());
}

// ---- issue #11: the situations the rules tuned on three captures got wrong ----
// Lab time: 5 s bins and scripts/lab/mxwatch.toml's settings.

const BIN5: i64 = 5_000_000;

fn lab_cfg() -> DetectorConfig {
    DetectorConfig {
        confirm_bins: 2,
        end_after_quiet_bins: 4,
        update_interval_secs: 30.0,
        warmup_bins: 10,
        baseline_alpha: 0.1,
        baseline_max_growth: 0.01,
        min_baseline_qps: 0.05,
        floor_qps: 1.0,
        ..DetectorConfig::default()
    }
}

/// One 5 s bin: queries by type, answers (NXDOMAIN of them), appended names, SMTP.
#[derive(Default, Clone, Copy)]
struct B {
    a: u64,
    mx: u64,
    ptr: u64,
    nx: u64,
    unres: u64,
    conn: u64,
    uu: u64,
    out: u64,
}

impl B {
    fn bin(self) -> ClientBin {
        let mut b = bin(self.a, self.mx, self.ptr);
        b.dns.responses = b.dns.queries;
        b.dns.rcode[RcodeBucket::NxDomain as usize] = self.nx;
        b.dns.unresolved_fqdn = self.unres;
        b.smtp.connections = self.conn;
        b.smtp.mail_from = self.conn;
        b.smtp.user_unknown = self.uu;
        b.smtp.outbound = self.out;
        b
    }
}

/// (rule, phase, bin index) of every alert over 5 s bins.
fn feed5(det: &mut Detector, bins: &[B], from: i64) -> Vec<(&'static str, Phase, i64)> {
    let mut out = Vec::new();
    for (i, b) in bins.iter().enumerate() {
        let k = from + i as i64;
        for a in det.on_client(MX_SERVER, k * BIN5, (k + 1) * BIN5, &b.bin(), None) {
            out.push((a.rule.name, a.phase, k));
        }
    }
    out
}

/// A quiet lab baseline (~0.2-0.4 q/s, one inbound session now and then).
fn lab_quiet(n: usize) -> Vec<B> {
    (0..n)
        .map(|i| B {
            a: (i % 2) as u64,
            ptr: u64::from(i % 3 == 0),
            mx: u64::from(i % 7 == 0),
            conn: u64::from(i % 4 == 0),
            ..B::default()
        })
        .collect()
}

/// The DNS-family starts: (rule, bins after the attack's first bin `from`
/// when it was decided: 0 = at the end of the first attack bin).
fn dns_starts_from(alerts: &[(&'static str, Phase, i64)], from: i64) -> Vec<(&'static str, i64)> {
    alerts
        .iter()
        .filter(|a| a.1 == Phase::Start && !a.0.starts_with("smtp_"))
        .map(|a| (a.0, a.2 - from))
        .collect()
}

/// Exactly one DNS incident, of `rule`, decided within the attack's first two bins.
fn assert_one(alerts: &[(&'static str, Phase, i64)], from: i64, rule: &str) {
    let got = dns_starts_from(alerts, from);
    assert!(
        got.len() == 1 && got[0].0 == rule && got[0].1 <= 1,
        "want one {rule} within two bins: {got:?}"
    );
}

#[test]
fn relay_without_local_cache_after_40_s_is_a_relay_not_backscatter() {
    // MX ~36 %, some FQDN+local names from spam sources whose PTR has no A.
    let mut det = Detector::new(lab_cfg(), Vec::new());
    assert!(feed5(&mut det, &lab_quiet(8), 0).is_empty());
    let attack = [B {
        a: 100,
        mx: 70,
        ptr: 25,
        nx: 12,
        unres: 6,
        conn: 3,
        out: 30,
        ..B::default()
    }; 6];
    assert_one(&feed5(&mut det, &attack, 8), 8, "spam_relay");
}

#[test]
fn slow_relay_is_a_relay_from_its_first_loud_bins() {
    // 2 msg/s: ~5 q/s upstream, MX 48-51 %, 7 % FQDN+local names, then 95 % MX.
    let mut det = Detector::new(lab_cfg(), Vec::new());
    assert!(feed5(&mut det, &lab_quiet(24), 0).is_empty());
    let mut attack = vec![
        B {
            a: 10,
            mx: 13,
            ptr: 2,
            nx: 2,
            unres: 2,
            conn: 1,
            out: 10,
            ..B::default()
        };
        2
    ];
    attack.extend(
        [B {
            a: 1,
            mx: 24,
            conn: 1,
            out: 10,
            ..B::default()
        }; 10],
    );
    assert_one(&feed5(&mut det, &attack, 24), 24, "spam_relay");
}

#[test]
fn relay_with_an_mx_host_per_domain_is_a_relay() {
    // More A than MX at first (MX 38 %), then 56-63 %; 40 s of history.
    let mut det = Detector::new(lab_cfg(), Vec::new());
    feed5(&mut det, &lab_quiet(8), 0);
    let mut attack = vec![
        B {
            a: 20,
            mx: 13,
            ptr: 1,
            ..B::default()
        };
        2
    ];
    attack.extend(
        [B {
            a: 14,
            mx: 21,
            ptr: 1,
            ..B::default()
        }; 8],
    );
    assert_one(&feed5(&mut det, &attack, 8), 8, "spam_relay");
}

#[test]
fn backscatter_without_a_search_domain_is_backscatter() {
    // No appended names; NXDOMAIN 34-35 % of answers, then all; SMTP seen.
    let mut det = Detector::new(lab_cfg(), Vec::new());
    feed5(&mut det, &lab_quiet(24), 0);
    let attack = [B {
        a: 45,
        ptr: 30,
        nx: 26,
        conn: 40,
        uu: 60,
        ..B::default()
    }; 6];
    assert_one(&feed5(&mut det, &attack, 24), 24, "backscatter");
}

#[test]
fn slow_backscatter_at_8x_is_found() {
    // 5 q/s over a 0.6 q/s baseline; NXDOMAIN 0 -> 45 %, FQDN+local 0 -> 12 %;
    // a mail server (inbound sessions now and then), no SMTP flood rule.
    let mut det = Detector::new(lab_cfg(), Vec::new());
    let base: Vec<B> = (0..24)
        .map(|i| B {
            a: 2,
            ptr: u64::from(i % 2 == 0),
            conn: u64::from(i % 4 == 0),
            ..B::default()
        })
        .collect();
    assert!(feed5(&mut det, &base, 0).is_empty());
    let attack = [B {
        a: 14,
        ptr: 11,
        nx: 11,
        unres: 3,
        conn: 2,
        ..B::default()
    }; 6];
    assert_one(&feed5(&mut det, &attack, 24), 24, "backscatter");
}

#[test]
fn a_benign_server_mailing_36_new_domains_first_seen_does_not_alert() {
    // 5-7 queries per 5 s bin, MX 50 %, from the first packet of the capture.
    let mut det = Detector::new(lab_cfg(), Vec::new());
    let bins: Vec<B> = (0..120)
        .map(|i| B {
            a: 3,
            mx: 3 + (i % 2) as u64,
            ptr: u64::from(i % 3 == 0),
            out: 1,
            ..B::default()
        })
        .collect();
    let got = feed5(&mut det, &bins, 0);
    assert!(got.is_empty(), "{got:?}");
}

#[test]
fn a_handful_of_queries_never_alerts_on_any_bin_size() {
    // dns-mixed.pcap: a spam_relay from one MX query, a backscatter from two.
    for secs in [1, 5, 60] {
        let mut det = Detector::new(DetectorConfig::default(), Vec::new());
        for k in 0..20 {
            let b = B {
                mx: 1,
                a: 2,
                nx: 2,
                unres: 2,
                ..B::default()
            }
            .bin();
            let alerts = det.on_client(
                MX_SERVER,
                k * secs * 1_000_000,
                (k + 1) * secs * 1_000_000,
                &b,
                None,
            );
            assert!(alerts.is_empty(), "bin {secs} s: {alerts:?}");
        }
    }
}

#[test]
fn a_relay_first_seen_mid_attack_alerts_a_benign_burst_does_not() {
    // Capture starts in the attack: 20 q/s, MX-driven, outbound SMTP flood.
    let mut det = Detector::new(lab_cfg(), Vec::new());
    let attack = [B {
        a: 20,
        mx: 75,
        ptr: 5,
        conn: 3,
        out: 30,
        ..B::default()
    }; 6];
    assert_one(&feed5(&mut det, &attack, 0), 0, "spam_relay");
    // A mail gateway first seen at 2-3 MX lookups a second: no alert.
    let mut det = Detector::new(lab_cfg(), Vec::new());
    let gw = [B {
        a: 4,
        mx: 12,
        ..B::default()
    }; 40];
    assert!(feed5(&mut det, &gw, 0).is_empty());
}

// ---- the detector over time ----

fn bin(a: u64, mx: u64, ptr: u64) -> ClientBin {
    let mut b = ClientBin::default();
    b.dns.queries = a + mx + ptr;
    b.dns.qtype[QtypeBucket::A as usize] = a;
    b.dns.qtype[QtypeBucket::Mx as usize] = mx;
    b.dns.qtype[QtypeBucket::Ptr as usize] = ptr;
    b
}

/// Feeds one bin per minute; returns (rule, phase, minute) of every alert.
fn run(
    det: &mut Detector,
    bins: impl IntoIterator<Item = ClientBin>,
    start_min: i64,
) -> Vec<(&'static str, Phase, i64)> {
    let mut out = Vec::new();
    for (i, b) in bins.into_iter().enumerate() {
        let m = start_min + i as i64;
        for a in det.on_client(MX_SERVER, m * MIN, (m + 1) * MIN, &b, None) {
            out.push((a.rule.name, a.phase, m));
        }
    }
    out
}

/// Spreads `n` events over `bins` bins as evenly as integers allow.
fn spread(n: u64, bins: u64, i: u64) -> u64 {
    (n * (i + 1)) / bins - (n * i) / bins
}

fn day(a: u64, mx: u64, ptr: u64) -> Vec<ClientBin> {
    (0..1440)
        .map(|i| {
            bin(
                spread(a, 1440, i),
                spread(mx, 1440, i),
                spread(ptr, 1440, i),
            )
        })
        .collect()
}

#[test]
fn paper_table_1_fires_spam_relay_on_the_loud_day_only() {
    // Spam-relay paper, Table 1: quiet day 27 MX / 114 A / 36 PTR; loud day
    // 35,801 MX / 1,544 A / 22 PTR. Default (minutes) settings. (#4)
    let mut det = Detector::new(DetectorConfig::default(), Vec::new());
    let quiet = run(&mut det, day(114, 27, 36), 0);
    assert!(quiet.is_empty(), "quiet day alerted: {quiet:?}");
    let loud = run(&mut det, day(1544, 35_801, 22), 1440);
    let starts: Vec<_> = loud.iter().filter(|a| a.1 == Phase::Start).collect();
    assert_eq!(starts.len(), 1, "{starts:?}");
    assert_eq!(starts[0].0, "spam_relay");
    assert!(
        starts[0].2 < 1440 + 2,
        "starts within two bins of the loud day: {starts:?}"
    );
    assert!(
        loud.iter()
            .all(|a| a.0 == "spam_relay" && a.1 != Phase::End)
    );
    let end = det.finish(2880 * MIN);
    assert_eq!(end.len(), 1);
    assert_eq!((end[0].rule.name, end[0].phase), ("spam_relay", Phase::End));
    // A second quiet day after the incident: nothing more.
    let mut det = Detector::new(DetectorConfig::default(), Vec::new());
    run(&mut det, day(114, 27, 36), 0);
    assert!(run(&mut det, day(114, 27, 36), 1440).is_empty());
}

#[test]
fn a_rise_from_001_to_01_qps_does_not_fire() {
    let mut det = Detector::new(DetectorConfig::default(), Vec::new());
    // 0.01 q/s for two hours, then 0.1 q/s (6 per minute, all MX) for two hours.
    let mut bins: Vec<ClientBin> = (0..120).map(|i| bin(u64::from(i % 2 == 0), 0, 0)).collect();
    bins.extend((0..120).map(|_| bin(0, 6, 0)));
    assert!(run(&mut det, bins, 0).is_empty());
}

#[test]
fn a_busy_internal_resolver_with_a_normal_mix_does_not_fire() {
    // 200 q/s, A-dominated with some MX and 10% NXDOMAIN, steady; first seen
    // busy (warm-up) and then for hours.
    let mut det = Detector::new(DetectorConfig::default(), Vec::new());
    let bins = (0..600).map(|i| {
        let mut b = bin(9000 + (i % 7) * 100, 600, 1200);
        b.dns.responses = b.dns.queries;
        b.dns.rcode[RcodeBucket::NxDomain as usize] = b.dns.queries / 10;
        b.dns.unresolved_fqdn = 3;
        b
    });
    let alerts = run(&mut det, bins, 0);
    assert!(alerts.is_empty(), "{alerts:?}");
}

#[test]
fn a_client_first_seen_mid_attack_fires_the_specific_rule() {
    // An offline file that starts inside a relay burst: no baseline at all.
    let mut det = Detector::new(DetectorConfig::default(), Vec::new());
    let alerts = run(&mut det, (0..30).map(|_| bin(200, 1500, 20)), 0);
    assert_eq!(
        alerts.first().map(|a| (a.0, a.1, a.2)),
        Some(("spam_relay", Phase::Start, 1))
    );
    assert_eq!(alerts.iter().filter(|a| a.1 == Phase::Start).count(), 1);
}

#[test]
fn a_slow_ramp_cannot_drag_the_baseline_along() {
    // 1 q/s growing 1% a minute for 8 hours (x120): the baseline may grow at
    // most 0.2% a bin, so the ramp ends up loud.
    let mut det = Detector::new(DetectorConfig::default(), Vec::new());
    let warm: Vec<ClientBin> = (0..60).map(|_| bin(50, 5, 5)).collect();
    assert!(run(&mut det, warm, 0).is_empty());
    let ramp = (0..480).map(|i| {
        let q = (60.0 * 1.01f64.powi(i)) as u64;
        bin(q / 4, q * 3 / 4, 0)
    });
    let alerts = run(&mut det, ramp, 60);
    let start = alerts
        .iter()
        .find(|a| a.1 == Phase::Start)
        .expect("the ramp is detected");
    assert_eq!(start.0, "spam_relay");
}

#[test]
fn baseline_is_frozen_during_an_alert_and_the_incident_is_a_handful_of_lines() {
    let cfg = DetectorConfig {
        update_interval_secs: 1800.0,
        ..DetectorConfig::default()
    };
    let mut det = Detector::new(cfg, Vec::new());
    run(&mut det, (0..60).map(|_| bin(20, 2, 2)), 0);
    let before = det.state(&MX_SERVER).base.clone();
    // Two hours of relay, then quiet.
    let mut bins: Vec<ClientBin> = (0..120).map(|_| bin(100, 2000, 5)).collect();
    bins.extend((0..30).map(|_| bin(20, 2, 2)));
    let alerts = run(&mut det, bins, 60);
    let phases: Vec<Phase> = alerts.iter().map(|a| a.1).collect();
    assert_eq!(phases.first(), Some(&Phase::Start));
    assert_eq!(phases.last(), Some(&Phase::End));
    assert!(
        phases.len() <= 6,
        "start + info every 30 min + end: {phases:?}"
    );
    // The end comes after end_after_quiet_bins quiet bins.
    assert_eq!(alerts.last().unwrap().2, 60 + 120 + 4);
    let during = det.state(&MX_SERVER).base.qps;
    assert!(
        during < before.qps * 1.5,
        "baseline dragged: {} -> {during}",
        before.qps
    );
}

#[test]
fn an_ignored_client_never_alerts() {
    let ov = ClientOverride {
        ip: MX_SERVER,
        ignore: true,
        floor_qps: None,
        ratio: None,
        mail_server: false,
        note: Some("internal resolver".into()),
    };
    let mut det = Detector::new(DetectorConfig::default(), vec![ov]);
    assert!(run(&mut det, (0..30).map(|_| bin(200, 1500, 20)), 0).is_empty());
}

#[test]
fn backscatter_alert_carries_r2_and_samples() {
    let mut det = Detector::new(DetectorConfig::default(), Vec::new());
    run(&mut det, (0..30).map(|_| bin(10, 0, 5)), 0);
    let mut out = Vec::new();
    for m in 30..40i64 {
        let mut b = bin(600, 0, 300);
        b.dns.responses = 900;
        b.dns.rcode[RcodeBucket::NxDomain as usize] = 450;
        b.dns.unresolved_fqdn = 90;
        for (i, s) in b.sub_bins.iter_mut().enumerate() {
            let total = 60 + (i as u32 * 7 + m as u32) % 40;
            *s = (total, total / 10);
        }
        b.sample_unresolved
            .push("mail7.isp7.jp.sub.univ.test".into());
        out.extend(det.on_client(MX_SERVER, m * MIN, (m + 1) * MIN, &b, Some("sub.univ.test")));
    }
    let start = out.iter().find(|a| a.phase == Phase::Start).unwrap();
    assert_eq!(start.rule.name, "backscatter");
    let r2 = start.evidence.r2_total_vs_unresolved.unwrap();
    assert!(r2 > 0.9, "{r2}");
    assert_eq!(
        start.evidence.sample_names,
        vec!["mail7.isp7.jp.sub.univ.test".to_string()]
    );
    assert_eq!(
        start.evidence.local_domain.as_deref(),
        Some("sub.univ.test")
    );
}

#[test]
fn a_benign_server_mailing_new_domains_at_a_low_rate_does_not_fire() {
    // FACTS: ~50% MX at a low rate is a benign server writing to new domains.
    let mut det = Detector::new(DetectorConfig::default(), Vec::new());
    let bins = (0..600).map(|i| {
        if i % 2 == 0 {
            bin(3, 3, 1)
        } else {
            bin(2, 2, 0)
        }
    });
    assert!(run(&mut det, bins, 0).is_empty());
}

#[test]
fn a_slow_relay_still_fires_against_a_real_baseline() {
    // FACTS: lab baseline 0.37 q/s; a slow relay (2 messages/s) ~5 q/s upstream.
    let mut det = Detector::new(DetectorConfig::default(), Vec::new());
    assert!(run(&mut det, (0..60).map(|_| bin(14, 2, 6)), 0).is_empty());
    let alerts = run(&mut det, (0..20).map(|_| bin(60, 220, 20)), 60);
    let starts: Vec<_> = alerts.iter().filter(|a| a.1 == Phase::Start).collect();
    assert_eq!(starts.len(), 1);
    assert_eq!(starts[0].0, "spam_relay");
    assert!((60..=61).contains(&starts[0].2), "{starts:?}");
}

#[test]
fn backscatter_without_local_cache_is_not_taken_for_a_relay() {
    // FACTS: without the local cache a backscatter's upstream is ~18% MX,
    // with half the answers NXDOMAIN: the more specific explanation wins.
    let mut det = Detector::new(DetectorConfig::default(), Vec::new());
    run(&mut det, (0..60).map(|_| bin(14, 2, 6)), 0);
    let bins = (0..10).map(|_| {
        let mut b = bin(4000, 1000, 600);
        b.dns.responses = 5600;
        b.dns.rcode[RcodeBucket::NxDomain as usize] = 2750;
        b.smtp.connections = 400; // a mail server: its SMTP is visible
        b
    });
    let alerts = run(&mut det, bins, 60);
    let starts: Vec<&str> = alerts
        .iter()
        .filter(|a| a.1 == Phase::Start && !a.0.starts_with("smtp_"))
        .map(|a| a.0)
        .collect();
    assert_eq!(starts, vec!["backscatter"]);
}
