//! Rules over hand-built windows, and the detector's lifecycle over
//! synthetic days. Regression tests name the issue they come from (#4).

use std::net::{IpAddr, Ipv4Addr};

use super::config::DetectorConfig;
use super::window::{Baselines, BinSummary, Totals};
use super::*;

/// A rule over a window of the given totals (no bins: the rules judge totals).
fn eval(
    rule: &dyn Rule,
    t: &Totals,
    base: &Baselines,
    warm: bool,
    cfg: &DetectorConfig,
) -> Option<Finding> {
    rule.evaluate(&Window {
        run: &[],
        totals: t,
        base,
        warm,
        cfg,
    })
}

fn dominant(f: &Finding) -> bool {
    matches!(f.signal, Signal::MxDriven { dominant: true, .. })
}
use crate::classify::ClientBin;
use crate::dns::{QtypeBucket, RcodeBucket};

const MIN: i64 = 60_000_000;
const MX_SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25));

fn quiet_baseline(qps: f64, mx_qps: f64) -> Baselines {
    Baselines {
        bins: 1000,
        qps,
        mx_qps,
        user_unknown_ps: 0.0,
        outbound_ps: 0.0,
    }
}

fn totals(a: u64, mx: u64, ptr: u64, secs: i64) -> Totals {
    Totals::of(&[BinSummary::queries(0, secs * 1_000_000, a, mx, ptr)])
}

// ---- pure rules ----

#[test]
fn spam_relay_fires_on_mx_dominance_and_not_on_a_normal_mix() {
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
    assert!(dominant(&f));
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
fn spam_relay_without_local_cache_fires_on_mx_surge_at_a_third_of_queries() {
    // FACTS: without the local cache a relay's MX is only ~36% of its queries.
    let cfg = DetectorConfig::default();
    let base = quiet_baseline(0.4, 0.02);
    let t = totals(600, 360, 40, 60); // 1000 queries in 60 s, 36% MX = 6 MX/s vs 0.02
    let f = eval(&spam_relay::SpamRelay, &t, &base, true, &cfg).unwrap();
    assert_eq!(f.rule.name, "spam_relay");
    assert!(!dominant(&f));
    // A new client has no MX baseline: the surge clause needs one.
    assert!(
        eval(
            &spam_relay::SpamRelay,
            &t,
            &Baselines::default(),
            false,
            &cfg
        )
        .is_none()
    );
}

#[test]
fn backscatter_fires_on_unresolved_share_or_on_nxdomain_share() {
    let cfg = DetectorConfig::default();
    let base = Baselines::default();
    let bs = |t: &Totals| eval(&backscatter::Backscatter, t, &base, true, &cfg);
    let mut t = totals(488, 0, 250, 30);
    t.dns.unresolved_fqdn = 74;
    t.dns.responses = 738;
    t.dns.rcode[RcodeBucket::NxDomain as usize] = 100;
    assert_eq!(bs(&t).unwrap().rule.name, "backscatter");
    // Without a search domain: no appended names, but half the answers NXDOMAIN.
    let mut t = totals(488, 0, 250, 30);
    t.dns.responses = 738;
    t.dns.rcode[RcodeBucket::NxDomain as usize] = 362;
    assert!(matches!(bs(&t).unwrap().signal, Signal::NxDomain { .. }));
    // A resolver's ordinary 10% NXDOMAIN is not backscatter.
    t.dns.rcode[RcodeBucket::NxDomain as usize] = 74;
    assert!(bs(&t).is_none());
}

#[test]
fn dns_query_flood_only_for_warm_clients() {
    let t = totals(5000, 10, 10, 60);
    let (cfg, base) = (DetectorConfig::default(), quiet_baseline(1.0, 0.1));
    assert!(eval(&dns_query_flood::DnsQueryFlood, &t, &base, true, &cfg).is_some());
    assert!(eval(&dns_query_flood::DnsQueryFlood, &t, &base, false, &cfg).is_none());
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
    let ob =
        |t: &Totals, b: &Baselines| eval(&smtp_outbound_flood::SmtpOutboundFlood, t, b, true, &cfg);
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
    let before = det.clients[&MX_SERVER].base.clone();
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
    let during = det.clients[&MX_SERVER].base.qps;
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
    assert_eq!((starts[0].0, starts[0].2), ("spam_relay", 61));
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
        b
    });
    let alerts = run(&mut det, bins, 60);
    let starts: Vec<&str> = alerts
        .iter()
        .filter(|a| a.1 == Phase::Start)
        .map(|a| a.0)
        .collect();
    assert_eq!(starts, vec!["backscatter"]);
}
