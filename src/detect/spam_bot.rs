//! `spam_bot`: a client that is not a mail server (no inbound SMTP seen, not
//! configured with `mail_server = true`) whose MX lookups to many distinct
//! domains surge: a mass-mailing worm or a direct-to-MX spam bot looks up the
//! MX of each recipient domain itself (issue #17, the papers' next target).
//! A mail server's own MX lookups are `spam_relay`'s business; an ordinary
//! PC looking up one MX is neither loud nor many domains.

use super::rule::{Family, Finding, Rule, RuleInfo, Signal, Window};

pub static INFO: RuleInfo = RuleInfo {
    name: "spam_bot",
    id: "MXW-1004",
    severity: 80,
    family: Family::Dns,
};

#[derive(Debug)]
pub struct SpamBot;

/// MX lookups beyond the baseline that mean something (as for spam_relay).
const MIN_MX_EXCESS: f64 = 5.0;

impl Rule for SpamBot {
    fn info(&self) -> &'static RuleInfo {
        &INFO
    }

    fn evaluate(&self, w: &Window<'_>) -> Option<Finding> {
        let (x, cfg) = (w.excess, w.cfg);
        // A mail server (inbound SMTP seen, configured, MX lookups in its
        // quiet history, or resolving the hosts that connect to it: PTR
        // lookups beyond its baseline) mailing many domains is a relay.
        if w.smtp.mail_server()
            || cfg.spam_bot_min_mx_domains == 0
            || x.ptr.excess() >= super::spam_relay::MIN_PTR_EXCESS
        {
            return None;
        }
        let domains = w.totals.dns.distinct_mx_names;
        let share = x.share(&x.mx);
        (x.mx.significant(cfg.log10_p, MIN_MX_EXCESS)
            && domains >= cfg.spam_bot_min_mx_domains
            && share >= cfg.mx_excess_share)
            .then(|| Finding {
                rule: &INFO,
                // spam_relay never holds for such a client (see there).
                rank: 0,
                signal: Signal::MxDomains {
                    mx: x.mx.observed,
                    mx_expected: x.mx.expected,
                    mx_qps: x.mx.observed as f64 / x.secs,
                    domains,
                    outbound: w.totals.smtp.outbound,
                },
            })
    }
}

#[cfg(test)]
mod tests {
    //! Hand-built windows through the whole detector (issue #17): a
    //! workstation surging MX lookups to many domains; a mail server's relay
    //! burst; a PC that looks up one MX.

    use std::net::IpAddr;

    use crate::classify::ClientBin;
    use crate::classify::names::fast_hash;
    use crate::detect::{ClientOverride, Detector, DetectorConfig, Phase};
    use crate::dns::QtypeBucket;

    const MIN: i64 = 60_000_000;
    const PC: IpAddr = IpAddr::V4(std::net::Ipv4Addr::new(192, 0, 2, 77));

    /// A minute of `a` A lookups and `mx` MX lookups of `domains` distinct
    /// domains, with `inbound` SMTP sessions received.
    fn minute(a: u64, mx: u64, domains: u64, inbound: u64) -> ClientBin {
        let mut b = ClientBin::default();
        b.dns.queries = a + mx;
        b.dns.qtype[QtypeBucket::A as usize] = a;
        b.dns.qtype[QtypeBucket::Mx as usize] = mx;
        for i in 0..mx {
            b.see_mx_name(fast_hash(
                format!("target{}.example", i % domains.max(1)).as_bytes(),
            ));
        }
        b.smtp.connections = inbound;
        b.finalize();
        b
    }

    /// 30 quiet minutes (`quiet`), then 5 minutes of `burst`: the alerts' (rule, phase).
    fn alerts(
        det: &mut Detector,
        quiet: impl Fn() -> ClientBin,
        burst: impl Fn() -> ClientBin,
    ) -> Vec<(&'static str, Phase)> {
        let mut out = Vec::new();
        for m in 0..40i64 {
            let b = if (30..35).contains(&m) {
                burst()
            } else {
                quiet()
            };
            for a in det.on_client(PC, m * MIN, (m + 1) * MIN, &b, None) {
                out.push((a.rule.name, a.phase));
            }
        }
        out.extend(det.finish(40 * MIN).iter().map(|a| (a.rule.name, a.phase)));
        out
    }

    fn starts(v: &[(&'static str, Phase)]) -> Vec<&'static str> {
        v.iter()
            .filter(|(_, p)| *p == Phase::Start)
            .map(|(r, _)| *r)
            .collect()
    }

    #[test]
    fn a_workstation_surging_mx_lookups_to_many_domains_is_a_spam_bot() {
        let mut det = Detector::new(DetectorConfig::default(), vec![]);
        // A PC: 20 A lookups a minute; then 120 MX lookups of 120 domains a minute.
        let v = alerts(&mut det, || minute(20, 0, 0, 0), || minute(20, 120, 120, 0));
        assert_eq!(starts(&v), vec!["spam_bot"], "{v:?}");
        assert!(v.contains(&("spam_bot", Phase::End)));
    }

    #[test]
    fn a_mail_servers_relay_burst_is_never_a_spam_bot() {
        // Inbound SMTP seen: the same MX surge is a relay.
        let mut det = Detector::new(DetectorConfig::default(), vec![]);
        let v = alerts(&mut det, || minute(20, 2, 2, 3), || minute(20, 120, 120, 3));
        assert_eq!(starts(&v), vec!["spam_relay"], "{v:?}");
        // A DNS-only tap: configured as a mail server.
        let ov = ClientOverride {
            ip: PC,
            ignore: false,
            floor_qps: None,
            ratio: None,
            mail_server: true,
            note: None,
        };
        let mut det = Detector::new(DetectorConfig::default(), vec![ov]);
        let v = alerts(&mut det, || minute(20, 2, 2, 0), || minute(20, 120, 120, 0));
        assert_eq!(starts(&v), vec!["spam_relay"], "{v:?}");
    }

    #[test]
    fn an_ordinary_pc_looking_up_one_mx_is_not_a_spam_bot() {
        let mut det = Detector::new(DetectorConfig::default(), vec![]);
        let v = alerts(&mut det, || minute(20, 0, 0, 0), || minute(20, 1, 1, 0));
        assert!(v.is_empty(), "{v:?}");
        // Many MX lookups of one domain (a retrying client) are not many domains.
        let mut det = Detector::new(DetectorConfig::default(), vec![]);
        let v = alerts(&mut det, || minute(20, 0, 0, 0), || minute(20, 120, 1, 0));
        assert!(!starts(&v).contains(&"spam_bot"), "{v:?}");
    }
}
