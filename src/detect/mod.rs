//! Detection: per-client windows of bins -> alerts with a lifecycle.
//!
//! Input: each client's closed bins, in time order (the shard calls
//! [`Detector::on_bin`] for every tracked client at every bin close, idle or
//! not). Output: [`Alert`]s. Rules are pure functions (one file each) over a
//! run of bins and the client's [`Baselines`]; this module owns the state:
//! the recent bins, the baselines (learnt only in quiet bins, frozen during an
//! alert) and the active incidents. An incident is `start` once, `info` at
//! most every `update_interval_secs`, `end` after `end_after_quiet_bins` quiet
//! bins (or at the end of the input).
//!
//! Families: the DNS rules (`spam_relay`, `backscatter`, `dns_query_flood`)
//! share one incident per client (the most specific explanation wins at its
//! start); each SMTP rule has its own. Alerts of one client name each other
//! in `mxwatch.evidence.related_alerts`.

pub mod backscatter;
pub mod config;
pub mod dns_query_flood;
pub mod rule;
pub mod smtp_alpha;
pub mod smtp_outbound_flood;
pub mod smtp_user_unknown_flood;
pub mod spam_relay;
pub mod window;

use std::collections::VecDeque;

use crate::FastMap;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::classify::ClientBin;
use crate::output::schema::{Event, Ip, Observer, SCHEMA_VERSION};
use crate::output::time::rfc3339_micros;

pub use config::{DetectorConfig, SmtpRulesConfig};
pub use rule::{Evidence, Finding, Rule};
use window::{Baselines, BinSummary, Quiet, Totals};

/// Bins of an incident kept for its evidence.
const EVIDENCE_BINS: usize = 10;

/// Per-client settings from the config file (`[[client]]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClientOverride {
    pub ip: IpAddr,
    /// Never alert on this client (e.g. an internal resolver that forwards for many).
    #[serde(default)]
    pub ignore: bool,
    pub floor_qps: Option<f64>,
    pub ratio: Option<f64>,
    /// Free text for the operator (e.g. "main MX").
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Start,
    Info,
    End,
}

impl Phase {
    fn name(self) -> &'static str {
        match self {
            Phase::Start => "start",
            Phase::Info => "info",
            Phase::End => "end",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// When the alert was decided: the end of the bin (packet time).
    pub ts: i64,
    pub phase: Phase,
    pub rule: Rule,
    pub alert_id: String,
    pub ip: IpAddr,
    pub server: Option<IpAddr>,
    pub start: i64,
    pub end: i64,
    pub reason: String,
    pub evidence: Evidence,
}

#[derive(Debug, Serialize)]
struct AlertLine<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: Event<'a>,
    observer: &'a Observer<'a>,
    rule: RuleOut,
    source: Ip,
    #[serde(skip_serializing_if = "Option::is_none")]
    destination: Option<Ip>,
    mxwatch: AlertBody<'a>,
}

#[derive(Debug, Serialize)]
struct RuleOut {
    name: &'static str,
    id: &'static str,
}

#[derive(Debug, Serialize)]
struct AlertBody<'a> {
    schema_version: &'static str,
    alert_id: &'a str,
    evidence: &'a Evidence,
}

impl Alert {
    pub fn to_line<'a>(&'a self, observer: &'a Observer<'a>) -> impl Serialize + 'a {
        AlertLine {
            timestamp: rfc3339_micros(self.ts),
            event: Event {
                kind: "alert",
                dataset: "mxwatch.detection",
                kind_of: Some([self.phase.name()]),
                start: rfc3339_micros(self.start),
                end: rfc3339_micros(self.end),
                severity: Some(self.rule.severity()),
                reason: Some(&self.reason),
            },
            observer,
            rule: RuleOut {
                name: self.rule.name(),
                id: self.rule.id(),
            },
            source: Ip {
                ip: self.ip.to_string(),
            },
            destination: self.server.map(|s| Ip { ip: s.to_string() }),
            mxwatch: AlertBody {
                schema_version: SCHEMA_VERSION,
                alert_id: &self.alert_id,
                evidence: &self.evidence,
            },
        }
    }
}

#[derive(Debug, Clone)]
struct Active {
    rule: Rule,
    id: String,
    start: i64,
    last_update: i64,
    last_loud_end: i64,
    quiet: usize,
    bins: VecDeque<BinSummary>,
}

/// Incident slots per client.
const DNS: usize = 0;
const ALPHA: usize = 1;
const USER_UNKNOWN: usize = 2;
const OUTBOUND: usize = 3;

#[derive(Debug, Default)]
struct ClientState {
    recent: VecDeque<BinSummary>,
    base: Baselines,
    slots: [Option<Active>; 4],
    server: Option<IpAddr>,
}

#[derive(Debug)]
pub struct Detector {
    cfg: DetectorConfig,
    overrides: FastMap<IpAddr, ClientOverride>,
    clients: FastMap<IpAddr, ClientState>,
}

impl Detector {
    pub fn new(cfg: DetectorConfig, overrides: Vec<ClientOverride>) -> Self {
        Detector {
            cfg,
            overrides: overrides
                .into_iter()
                .map(|o| (o.ip, o))
                .collect::<FastMap<_, _>>(),
            clients: FastMap::default(),
        }
    }

    /// Empty bins worth closing one by one after a silence (then the detector
    /// has ended every incident and learnt the quiet).
    pub fn useful_empty_bins(&self) -> usize {
        self.cfg.end_after_quiet_bins.max(self.cfg.confirm_bins) + 1
    }

    pub fn is_alerting(&self, ip: &IpAddr) -> bool {
        self.clients
            .get(ip)
            .is_some_and(|c| c.slots.iter().any(Option::is_some))
    }

    pub fn forget(&mut self, ip: &IpAddr) {
        self.clients.remove(ip);
    }

    pub fn on_bin(
        &mut self,
        ip: IpAddr,
        start: i64,
        end: i64,
        bin: &ClientBin,
        local: Option<&str>,
    ) -> Vec<Alert> {
        let ov = self.overrides.get(&ip);
        if ov.is_some_and(|o| o.ignore) {
            return Vec::new();
        }
        let floor = ov.and_then(|o| o.floor_qps).unwrap_or(self.cfg.floor_qps);
        let ratio = ov.and_then(|o| o.ratio).unwrap_or(self.cfg.ratio);
        let cfg = &self.cfg;
        let st = self.clients.entry(ip).or_default();
        if let Some(s) = bin.main_server() {
            st.server = Some(s);
        }
        let summary = BinSummary::of(start, end, bin);
        st.recent.push_back(summary.clone());
        while st.recent.len() > cfg.confirm_bins.max(1) {
            st.recent.pop_front();
        }
        let warm = st.base.bins >= cfg.warmup_bins;
        // A client in warm-up has no baseline yet: it is judged against the
        // least baseline, and only the specific rules can fire for it.
        let loud = |b: &BinSummary, base: &Baselines| {
            let q = b.qps();
            let reference = if warm {
                base.qps.max(cfg.min_baseline_qps)
            } else {
                cfg.min_baseline_qps
            };
            q >= floor && q >= ratio * reference
        };
        let loud_now = loud(&summary, &st.base);
        let confirmed =
            st.recent.len() >= cfg.confirm_bins && st.recent.iter().all(|b| loud(b, &st.base));
        let run: Vec<BinSummary> = st.recent.iter().cloned().collect();
        let totals = Totals::of(&run);
        let mut out = Vec::new();

        // DNS family.
        let dns_finding = || -> Option<Finding> {
            let relay = spam_relay::evaluate(&totals, &st.base, warm, cfg);
            if let Some((f, true)) = relay {
                return Some(f);
            }
            backscatter::evaluate(&totals, cfg)
                .or(relay.map(|(f, _)| f))
                .or_else(|| {
                    dns_query_flood::evaluate(&totals, st.base.qps.max(cfg.min_baseline_qps), warm)
                })
        };
        let dns_new = if st.slots[DNS].is_none() && confirmed {
            dns_finding()
        } else {
            None
        };
        let mut phases: [Option<Phase>; 4] = [None; 4];
        phases[DNS] = step_slot(
            &mut st.slots[DNS],
            dns_new,
            loud_now,
            &summary,
            &run,
            cfg,
            ip,
            end,
        );

        // SMTP families: each rule over the run decides both start and continuation.
        let smtp = &cfg.smtp;
        let [alpha, uu, ob] = if st.recent.len() >= cfg.confirm_bins {
            [
                smtp_alpha::evaluate(&totals, smtp),
                smtp_user_unknown_flood::evaluate(&totals, &st.base, smtp),
                smtp_outbound_flood::evaluate(&totals, &st.base, smtp),
            ]
        } else {
            [None, None, None]
        };
        let holds = [alpha.is_some(), uu.is_some(), ob.is_some()];
        for (slot, f) in [(ALPHA, alpha), (USER_UNKNOWN, uu), (OUTBOUND, ob)] {
            let holds_now = f.is_some();
            let new = if st.slots[slot].is_none() { f } else { None };
            // The incident starts at the first bin of the run that shows the signal.
            let signal = |b: &BinSummary| match slot {
                ALPHA => b.connections > 0,
                USER_UNKNOWN => b.user_unknown > 0,
                _ => b.outbound > 0,
            };
            let from = run.iter().position(signal).unwrap_or(0);
            phases[slot] = step_slot(
                &mut st.slots[slot],
                new,
                holds_now,
                &summary,
                &run[from..],
                cfg,
                ip,
                end,
            );
        }

        // Baselines learn from quiet bins outside incidents; during warm-up
        // "quiet" cannot be judged yet, so every bin outside an incident counts.
        st.base.learn(
            &summary,
            Quiet {
                dns: st.slots[DNS].is_none() && (!loud_now || !warm),
                user_unknown: st.slots[USER_UNKNOWN].is_none() && !holds[1],
                outbound: st.slots[OUTBOUND].is_none() && !holds[2],
            },
            cfg,
        );

        // Emit what the slots decided, with evidence and cross references;
        // an incident quiet for long enough ends (lines of a bin are sorted
        // on output, so the order here does not matter).
        let quiet_end = cfg.end_after_quiet_bins.max(1);
        let ctx = AlertCtx::new(ip, st, end, cfg, warm, local);
        for (slot, phase) in phases.iter().enumerate() {
            let Some(a) = &st.slots[slot] else { continue };
            let phase = if a.quiet >= quiet_end {
                Some(Phase::End)
            } else {
                *phase
            };
            if let Some(phase) = phase {
                out.push(ctx.alert(a, phase));
            }
        }
        for slot in &mut st.slots {
            if slot.as_ref().is_some_and(|a| a.quiet >= quiet_end) {
                *slot = None;
            }
        }
        out
    }

    /// End of input: every active incident ends at `end`.
    pub fn finish(&mut self, end: i64) -> Vec<Alert> {
        let mut ips: Vec<IpAddr> = self.clients.keys().copied().collect();
        ips.sort();
        let mut out = Vec::new();
        for ip in ips {
            let st = self.clients.get_mut(&ip).expect("listed");
            let warm = st.base.bins >= self.cfg.warmup_bins;
            let ctx = AlertCtx::new(ip, st, end, &self.cfg, warm, None);
            for a in st.slots.iter().flatten() {
                let mut alert = ctx.alert(a, Phase::End);
                alert.reason = format!("{} (end of input)", alert.reason.trim_end_matches('.'));
                out.push(alert);
            }
            st.slots = Default::default();
        }
        out
    }
}

#[allow(clippy::too_many_arguments)]
fn step_slot(
    slot: &mut Option<Active>,
    new: Option<Finding>,
    holds_now: bool,
    summary: &BinSummary,
    run: &[BinSummary],
    cfg: &DetectorConfig,
    ip: IpAddr,
    end: i64,
) -> Option<Phase> {
    match slot {
        None => {
            let f = new?;
            let start = run.first().map_or(summary.start, |b| b.start);
            *slot = Some(Active {
                rule: f.rule,
                id: alert_id(ip, f.rule, start),
                start,
                last_update: end,
                last_loud_end: end,
                quiet: 0,
                bins: run.iter().cloned().collect(),
            });
            Some(Phase::Start)
        }
        Some(a) if holds_now => {
            a.quiet = 0;
            a.last_loud_end = end;
            a.bins.push_back(summary.clone());
            while a.bins.len() > EVIDENCE_BINS {
                a.bins.pop_front();
            }
            if (end - a.last_update) as f64 / 1e6 >= cfg.update_interval_secs {
                a.last_update = end;
                return Some(Phase::Info);
            }
            None
        }
        Some(a) => {
            a.quiet += 1;
            None
        }
    }
}

/// What every alert of one client and bin shares.
struct AlertCtx<'a> {
    ip: IpAddr,
    server: Option<IpAddr>,
    now: i64,
    base: &'a Baselines,
    cfg: &'a DetectorConfig,
    warm: bool,
    local: Option<&'a str>,
    /// Rules with an incident open for this client (before any ends).
    open: Vec<&'static str>,
}

impl<'a> AlertCtx<'a> {
    fn new(
        ip: IpAddr,
        st: &'a ClientState,
        now: i64,
        cfg: &'a DetectorConfig,
        warm: bool,
        local: Option<&'a str>,
    ) -> Self {
        AlertCtx {
            ip,
            server: st.server,
            now,
            base: &st.base,
            cfg,
            warm,
            local,
            open: st.slots.iter().flatten().map(|a| a.rule.name()).collect(),
        }
    }

    fn alert(&self, a: &Active, phase: Phase) -> Alert {
        let bins: Vec<BinSummary> = a.bins.iter().cloned().collect();
        let mut evidence = rule::evidence(
            &bins,
            self.base,
            self.cfg.min_baseline_qps,
            self.warm,
            self.local,
        );
        evidence.related_alerts = self
            .open
            .iter()
            .filter(|n| **n != a.rule.name())
            .map(|n| n.to_string())
            .collect();
        let reason = match phase {
            Phase::End => format!(
                "{} ended: quiet since {}.",
                a.rule.name(),
                rfc3339_micros(a.last_loud_end)
            ),
            _ => reason_for(a.rule, &Totals::of(&bins), self.base, self.cfg, self.warm),
        };
        Alert {
            ts: self.now,
            phase,
            rule: a.rule,
            alert_id: a.id.clone(),
            ip: self.ip,
            server: self.server,
            start: a.start,
            end: if phase == Phase::End {
                a.last_loud_end
            } else {
                self.now
            },
            reason,
            evidence,
        }
    }
}

/// The rule's own sentence for the current evidence (falls back to a generic
/// one when the rule no longer holds on these bins).
fn reason_for(
    rule: Rule,
    t: &Totals,
    base: &Baselines,
    cfg: &DetectorConfig,
    warm: bool,
) -> String {
    let f = match rule {
        Rule::SpamRelay => spam_relay::evaluate(t, base, warm, cfg).map(|x| x.0),
        Rule::Backscatter => backscatter::evaluate(t, cfg),
        Rule::DnsQueryFlood => {
            dns_query_flood::evaluate(t, base.qps.max(cfg.min_baseline_qps), true)
        }
        Rule::SmtpAlpha => smtp_alpha::evaluate(t, &cfg.smtp),
        Rule::SmtpUserUnknownFlood => smtp_user_unknown_flood::evaluate(t, base, &cfg.smtp),
        Rule::SmtpOutboundFlood => smtp_outbound_flood::evaluate(t, base, &cfg.smtp),
    };
    f.map(|f| f.reason)
        .unwrap_or_else(|| format!("{} continues at {:.1} q/s.", rule.name(), t.qps()))
}

/// Deterministic incident id: the same capture gives the same ids.
pub fn alert_id(ip: IpAddr, rule: Rule, start: i64) -> String {
    let h = crate::classify::names::hash(&format!("{ip}|{}|{start}", rule.name()));
    format!("{h:016x}-{start}")
}

#[cfg(test)]
mod tests;
