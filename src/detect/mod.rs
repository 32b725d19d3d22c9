//! Detection: closed bins -> alerts with a lifecycle.
//!
//! Input: [`ClosedBin`]s in time order (every tracked client, idle or not),
//! from the classifier or from stored bins. Output: [`Alert`]s, plain values
//! (`output` writes them). Rules are one file each behind the [`Rule`] trait,
//! registered in [`rules`]; this module owns the state: each client's recent
//! bins, its baselines (learnt only in quiet bins, frozen during an incident)
//! and its open incidents. An incident is `start` once, `info` at most every
//! `update_interval_secs`, `end` after `end_after_quiet_bins` quiet bins (or
//! at the end of the input).
//!
//! Families: the DNS rules share one incident per client (the most specific
//! finding names it at its start); every other rule has its own. Alerts of
//! one client name each other in the evidence's `related_alerts`.

pub mod backscatter;
pub mod config;
pub mod dns_query_flood;
pub mod evidence;
pub mod excess;
pub mod flood;
mod packed;
pub mod rule;
pub mod smtp_alpha;
pub mod smtp_outbound_flood;
pub mod smtp_user_unknown_flood;
pub mod spam_bot;
pub mod spam_relay;
pub mod stats;
pub mod window;

use std::collections::VecDeque;

use crate::FastMap;
use packed::State;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

use crate::classify::{ClientBin, ClosedBin};

pub use config::{DetectorConfig, SmtpRulesConfig};
pub use evidence::Evidence;
use excess::Excess;
pub use rule::{Family, Finding, Rule, RuleInfo, Signal, SmtpHint, Window};
use window::{Baselines, BinSummary, Quiet, Totals};

/// Every rule, in the order their lines are written within a bin. Adding a
/// rule: one file beside these, one line here.
pub fn rules() -> Vec<Box<dyn Rule>> {
    vec![
        Box::new(spam_relay::SpamRelay),
        Box::new(spam_bot::SpamBot),
        Box::new(backscatter::Backscatter),
        Box::new(dns_query_flood::DnsQueryFlood),
        Box::new(smtp_alpha::SmtpAlpha),
        Box::new(smtp_user_unknown_flood::SmtpUserUnknownFlood),
        Box::new(smtp_outbound_flood::SmtpOutboundFlood),
    ]
}

/// Quiet bins with MX lookups that make a client a mail server on a DNS-only tap.
const MX_HISTORY_BINS: u32 = 3;

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
    /// A mail server even when no inbound SMTP is seen (a DNS-only tap):
    /// never a `spam_bot`.
    #[serde(default)]
    pub mail_server: bool,
    /// Free text for the operator (e.g. "main MX").
    pub note: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    Start,
    Info,
    End,
}

/// Why an alert line is written: the numbers its sentence is made of.
#[derive(Debug, Clone, PartialEq)]
pub enum Why {
    /// The rule holds on the incident's bins.
    Holds(Signal),
    /// The incident is open but its rule no longer holds on these bins.
    Continues { qps: f64 },
    /// Ended after enough quiet bins.
    Ended { quiet_since: i64 },
    /// Ended because the input ended.
    EndOfInput { quiet_since: i64 },
    /// Ended because the evidence now names another rule (its incident starts in the same bin).
    Reclassified { to: &'static str },
    /// The aggregate of warm-up incidents beyond the per-bin cap ([`flood`]).
    SpoofedFlood {
        suppressed: u64,
        clients: u64,
        cap: usize,
    },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// When the alert was decided: the end of the bin (packet time).
    pub ts: i64,
    pub phase: Phase,
    pub rule: &'static RuleInfo,
    pub alert_id: String,
    pub ip: IpAddr,
    pub server: Option<IpAddr>,
    pub start: i64,
    pub end: i64,
    pub why: Why,
    pub evidence: Evidence,
    /// The sensors whose bins of this client the detector merged (a
    /// detector group, `mxwatch detect`); empty for a sensor's own alerts.
    pub sensors: Vec<String>,
}

impl Alert {
    /// The order of lines within a bin (deterministic whatever the sharding).
    pub fn order(a: &Alert, b: &Alert) -> std::cmp::Ordering {
        (a.ts, a.ip, a.rule.id, a.phase).cmp(&(b.ts, b.ip, b.rule.id, b.phase))
    }
}

#[derive(Debug, Clone)]
struct Active {
    rule: &'static RuleInfo,
    id: String,
    start: i64,
    last_update: i64,
    last_loud_end: i64,
    quiet: usize,
    /// Bins in a row whose best explanation is another rule.
    disagree: usize,
    bins: VecDeque<BinSummary>,
}

/// What the detector keeps per client between bins: its [`State`] packed
/// (a few dozen bytes for a quiet client), and its open incidents, if any.
#[derive(Debug, Default)]
struct Stored {
    packed: Box<[u8]>,
    incidents: Option<Box<Incidents>>,
}

/// One slot per incident kind: the DNS family, then each other rule (at
/// least one open while stored).
#[derive(Debug, Clone)]
struct Incidents {
    slots: Vec<Option<Box<Active>>>,
}

/// A client's state while a bin is judged (unpacked from [`Stored`]).
#[derive(Debug)]
struct ClientState {
    /// The last `confirm_bins` bins, oldest first.
    recent: Vec<BinSummary>,
    base: Baselines,
    slots: Vec<Option<Box<Active>>>,
    server: Option<IpAddr>,
    /// Seen receiving SMTP sessions: a mail server.
    smtp_server: bool,
    /// Quiet bins (learnt from) with MX lookups.
    mx_quiet_bins: u32,
}

impl ClientState {
    fn unpack(stored: &mut Stored, slots: usize) -> Self {
        let State {
            recent,
            base,
            server,
            smtp_server,
            mx_quiet_bins,
        } = if stored.packed.is_empty() {
            State::default()
        } else {
            State::unpack(&stored.packed)
        };
        ClientState {
            recent,
            base,
            slots: stored
                .incidents
                .take()
                .map_or_else(|| vec![None; slots], |i| i.slots),
            server,
            smtp_server,
            mx_quiet_bins,
        }
    }

    /// Packs the state back (`buf`: scratch space).
    fn store(self, stored: &mut Stored, buf: &mut Vec<u8>) {
        let ClientState {
            recent,
            base,
            slots,
            server,
            smtp_server,
            mx_quiet_bins,
        } = self;
        State {
            recent,
            base,
            server,
            smtp_server,
            mx_quiet_bins,
        }
        .pack(buf);
        if stored.packed.len() == buf.len() {
            stored.packed.copy_from_slice(buf);
        } else {
            stored.packed = buf.as_slice().into();
        }
        stored.incidents = slots
            .iter()
            .any(Option::is_some)
            .then(|| Box::new(Incidents { slots }));
    }

    fn open(&self, rule: &'static RuleInfo) -> bool {
        self.slots
            .iter()
            .flatten()
            .any(|a| std::ptr::eq(a.rule, rule))
    }
}

#[derive(Debug)]
pub struct Detector {
    cfg: DetectorConfig,
    rules: Vec<Box<dyn Rule>>,
    /// Rules of the DNS family (indices into `rules`), and of the others.
    dns_rules: Vec<usize>,
    own_rules: Vec<usize>,
    overrides: FastMap<IpAddr, ClientOverride>,
    clients: FastMap<IpAddr, Stored>,
    /// Scratch space for packing a client's state.
    buf: Vec<u8>,
    /// Off (`--no-detect`): every bin passes without a look.
    off: bool,
}

impl Detector {
    pub fn new(cfg: DetectorConfig, overrides: Vec<ClientOverride>) -> Self {
        let rules = rules();
        let of = |f: Family| -> Vec<usize> {
            (0..rules.len())
                .filter(|&i| rules[i].info().family == f)
                .collect()
        };
        Detector {
            dns_rules: of(Family::Dns),
            own_rules: of(Family::Own),
            rules,
            cfg,
            overrides: overrides
                .into_iter()
                .map(|o| (o.ip, o))
                .collect::<FastMap<_, _>>(),
            clients: FastMap::default(),
            buf: Vec::new(),
            off: false,
        }
    }

    /// No detection: bins pass without alerts and no client state is kept.
    pub fn turn_off(&mut self) {
        self.off = true;
    }

    /// Empty bins worth closing one by one after a silence (then the detector
    /// has ended every incident and learnt the quiet).
    pub fn useful_empty_bins(&self) -> usize {
        self.cfg.end_after_quiet_bins.max(self.cfg.confirm_bins) + 1
    }

    pub fn is_alerting(&self, ip: &IpAddr) -> bool {
        self.clients.get(ip).is_some_and(|c| c.incidents.is_some())
    }

    /// A client named in the configuration (`[[client]]`): never evicted.
    pub fn is_configured(&self, ip: &IpAddr) -> bool {
        self.overrides.contains_key(ip)
    }

    pub fn forget(&mut self, ip: &IpAddr) {
        self.clients.remove(ip);
    }

    /// Every client of a closed bin, active and idle, in address order.
    pub fn on_bin(&mut self, bin: &ClosedBin) -> Vec<Alert> {
        if self.off {
            return Vec::new();
        }
        let empty = ClientBin::default();
        let mut out = Vec::new();
        let (mut active, mut idle) = (bin.clients.iter().peekable(), bin.idle.iter().peekable());
        loop {
            let take_active = match (active.peek(), idle.peek()) {
                (Some(a), Some(i)) => a.ip <= i.ip,
                (Some(_), None) => true,
                (None, Some(_)) => false,
                (None, None) => break,
            };
            let (ip, b, local) = if take_active {
                let c = active.next().expect("peeked");
                (c.ip, &*c.bin, c.local_domain.as_deref())
            } else {
                let c = idle.next().expect("peeked");
                (c.ip, &empty, c.local_domain.as_deref())
            };
            out.extend(self.on_client(ip, bin.start, bin.end, b, local));
        }
        out
    }

    pub fn on_client(
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
        let configured_server = ov.is_some_and(|o| o.mail_server);
        let cfg = &self.cfg;
        let slots = 1 + self.own_rules.len();
        let stored = self.clients.entry(ip).or_default();
        let mut client = ClientState::unpack(stored, slots);
        let st = &mut client;
        if let Some(s) = bin.main_server() {
            st.server = Some(s);
        }
        st.smtp_server |= bin.smtp.connections > 0 || configured_server;
        let summary = BinSummary::of(start, end, bin);
        let mut run = std::mem::take(&mut st.recent);
        run.push(summary.clone());
        let extra = run.len().saturating_sub(cfg.confirm_bins.max(1));
        run.drain(..extra);
        let warm = st.base.bins >= cfg.warmup_bins;
        let totals = Totals::of(&run);
        // The window and its latest bin against the baselines, by feature.
        let excess = Excess::of(&totals, &st.base, cfg);
        let latest = Excess::of(&Totals::of(std::slice::from_ref(&summary)), &st.base, cfg);
        let full = run.len() >= cfg.confirm_bins;
        let mut phases: Vec<Option<Phase>> = vec![None; slots];

        // Rules with incidents of their own (SMTP) first: they corroborate
        // and name the DNS incident.
        let mut held: Vec<&'static RuleInfo> = Vec::new();
        let plain = Window {
            run: &run,
            totals: &totals,
            base: &st.base,
            warm,
            cfg,
            excess: &excess,
            smtp: SmtpHint {
                server: st.smtp_server,
                mx_history: st.mx_quiet_bins >= MX_HISTORY_BINS,
                ..SmtpHint::default()
            },
        };
        for (k, &r) in self.own_rules.iter().enumerate() {
            let rule = &self.rules[r];
            // Judged on a partial window too (a capture that starts in a
            // flood must not learn it as the baseline), started on a full one.
            let seen = rule.evaluate(&plain);
            let holds_now = seen.is_some();
            if holds_now {
                held.push(rule.info());
            }
            let f = if full { seen } else { None };
            let slot = &mut st.slots[1 + k];
            let new = if slot.is_none() { f } else { None };
            // The incident starts at the first bin of the run that shows the signal.
            let from = rule.onset(&run);
            phases[1 + k] = step_slot(slot, new, holds_now, &summary, &run[from..], cfg, ip, end);
        }
        let holding = |r: &'static RuleInfo| held.iter().any(|h| std::ptr::eq(*h, r));
        let smtp = SmtpHint {
            outbound: holding(&smtp_outbound_flood::INFO),
            user_unknown: holding(&smtp_user_unknown_flood::INFO),
            server: st.smtp_server,
            mx_history: st.mx_quiet_bins >= MX_HISTORY_BINS,
        };

        // DNS family: judged while the window is loud; the most specific
        // finding names the incident, and is judged again while it lasts.
        let loud_now = latest.bin_loud(floor, ratio);
        let corroborated = smtp.outbound || smtp.user_unknown;
        let confirmed = full && loud_now && excess.loud(cfg, floor, ratio, corroborated);
        let w = Window { smtp, ..plain };
        // What the excess is made of (judged while the latest bin is loud).
        let explained = if loud_now {
            self.dns_rules
                .iter()
                .filter_map(|&r| self.rules[r].evaluate(&w))
                .min_by_key(|f| f.rank)
        } else {
            None
        };
        let best = if confirmed { explained.clone() } else { None };
        // For learning: would a DNS rule explain this bin if the client were
        // a mail server? Then a client in warm-up does not learn it.
        let suspicious = explained.is_some()
            || (loud_now && !warm && {
                let assume = Window {
                    smtp: SmtpHint {
                        server: true,
                        ..smtp
                    },
                    ..w
                };
                self.dns_rules
                    .iter()
                    .any(|&r| self.rules[r].evaluate(&assume).is_some())
            });
        // A different explanation for `confirm_bins` bins in a row ends the
        // incident ("reclassified") and starts one under the new rule.
        let mut reclassified = None;
        if let Some(a) = &mut st.slots[0] {
            match &best {
                Some(f) if !std::ptr::eq(f.rule, a.rule) => a.disagree += 1,
                _ => a.disagree = 0,
            }
            if a.disagree >= cfg.confirm_bins.max(1) {
                reclassified = st.slots[0].take();
            }
        }
        let dns_new = if st.slots[0].is_none() { best } else { None };
        // The incident starts at the first bin of the window with queries
        // beyond the baseline at the floor rate (a quiet bin before the
        // attack is in the window, not in the incident).
        let onset = run
            .iter()
            .position(|b| {
                let x = Excess::of(&Totals::of(std::slice::from_ref(b)), &st.base, cfg);
                x.total.excess() >= floor * x.secs
            })
            .unwrap_or(run.len().saturating_sub(1));
        phases[0] = step_slot(
            &mut st.slots[0],
            dns_new,
            loud_now,
            &summary,
            &run[onset..],
            cfg,
            ip,
            end,
        );

        // Baselines learn from quiet bins outside incidents. During warm-up
        // "loud" means little yet (a busy resolver first seen is loud against
        // the prior): every bin outside an incident counts, unless a DNS rule
        // explains its excess (a capture that starts inside an attack must
        // not learn the attack as the baseline).
        let quiet_for = |r: &'static RuleInfo| !st.open(r) && !holding(r);
        let quiet = Quiet {
            dns: st.slots[0].is_none() && !(loud_now && (warm || suspicious)),
            user_unknown: quiet_for(&smtp_user_unknown_flood::INFO),
            outbound: quiet_for(&smtp_outbound_flood::INFO),
        };
        if quiet.dns && summary.mx() > 0 {
            st.mx_quiet_bins = st.mx_quiet_bins.saturating_add(1);
        }
        st.base.learn(&summary, quiet, cfg);

        // Emit what the slots decided, with evidence and cross references;
        // an incident quiet for long enough ends (lines of a bin are sorted
        // on output, so the order here does not matter).
        let quiet_end = cfg.end_after_quiet_bins.max(1);
        let ctx = AlertCtx::new(ip, st, end, cfg, warm, local);
        let mut out = Vec::new();
        if let Some(old) = &reclassified {
            let mut a = ctx.alert(old, Phase::End, &self.rules);
            a.why = Why::Reclassified {
                to: st.slots[0].as_ref().map_or("?", |n| n.rule.name),
            };
            a.evidence
                .related_alerts
                .extend(st.slots[0].as_ref().map(|n| n.rule.name));
            out.push(a);
        }
        for (slot, phase) in st.slots.iter().zip(&phases) {
            let Some(a) = slot else { continue };
            let phase = if a.quiet >= quiet_end {
                Some(Phase::End)
            } else {
                *phase
            };
            if let Some(phase) = phase {
                let mut alert = ctx.alert(a, phase, &self.rules);
                if let Some(old) = &reclassified
                    && phase == Phase::Start
                    && std::ptr::eq(a, st.slots[0].as_ref().unwrap_or(a))
                {
                    alert.evidence.related_alerts.push(old.rule.name);
                }
                out.push(alert);
            }
        }
        for slot in &mut st.slots {
            if slot.as_ref().is_some_and(|a| a.quiet >= quiet_end) {
                *slot = None;
            }
        }
        client.recent = run;
        client.store(stored, &mut self.buf);
        out
    }

    /// End of input: every active incident ends at `end`.
    pub fn finish(&mut self, end: i64) -> Vec<Alert> {
        let mut ips: Vec<IpAddr> = self
            .clients
            .iter()
            .filter(|(_, c)| c.incidents.is_some())
            .map(|(ip, _)| *ip)
            .collect();
        ips.sort();
        let slots = 1 + self.own_rules.len();
        let mut out = Vec::new();
        for ip in ips {
            let stored = self.clients.get_mut(&ip).expect("listed");
            let mut st = ClientState::unpack(stored, slots);
            let warm = st.base.bins >= self.cfg.warmup_bins;
            let ctx = AlertCtx::new(ip, &st, end, &self.cfg, warm, None);
            for a in st.slots.iter().flatten() {
                let mut alert = ctx.alert(a, Phase::End, &self.rules);
                alert.why = Why::EndOfInput {
                    quiet_since: a.last_loud_end,
                };
                out.push(alert);
            }
            st.slots.iter_mut().for_each(|s| *s = None);
            st.store(stored, &mut self.buf);
        }
        out
    }

    /// A client's state as the detector keeps it (tests).
    #[cfg(test)]
    fn state(&self, ip: &IpAddr) -> State {
        State::unpack(&self.clients[ip].packed)
    }
}

#[allow(clippy::too_many_arguments)]
fn step_slot(
    slot: &mut Option<Box<Active>>,
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
            *slot = Some(Box::new(Active {
                rule: f.rule,
                id: alert_id(ip, f.rule, start),
                start,
                last_update: end,
                last_loud_end: end,
                quiet: 0,
                disagree: 0,
                bins: run.iter().cloned().collect(),
            }));
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
    open: Vec<&'static RuleInfo>,
    /// What the open SMTP incidents say, for the DNS rule's numbers.
    smtp: SmtpHint,
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
            open: st.slots.iter().flatten().map(|a| a.rule).collect(),
            smtp: SmtpHint {
                outbound: st.open(&smtp_outbound_flood::INFO),
                user_unknown: st.open(&smtp_user_unknown_flood::INFO),
                server: st.smtp_server,
                mx_history: st.mx_quiet_bins >= MX_HISTORY_BINS,
            },
        }
    }

    fn alert(&self, a: &Active, phase: Phase, rules: &[Box<dyn Rule>]) -> Alert {
        let bins: Vec<BinSummary> = a.bins.iter().cloned().collect();
        let mut evidence = evidence::evidence(&bins, self.base, self.cfg, self.warm, self.local);
        evidence.related_alerts = self
            .open
            .iter()
            .filter(|r| !std::ptr::eq(**r, a.rule))
            .map(|r| r.name)
            .collect();
        let why = match phase {
            Phase::End => Why::Ended {
                quiet_since: a.last_loud_end,
            },
            _ => {
                // The rule's own numbers on the incident's bins.
                let w = Window {
                    run: &bins,
                    totals: &evidence.totals,
                    base: self.base,
                    warm: self.warm,
                    cfg: self.cfg,
                    excess: &evidence.excess,
                    smtp: self.smtp,
                };
                rules
                    .iter()
                    .find(|r| std::ptr::eq(r.info(), a.rule))
                    .and_then(|r| r.evaluate(&w))
                    .map_or(
                        Why::Continues {
                            qps: evidence.totals.qps(),
                        },
                        |f| Why::Holds(f.signal),
                    )
            }
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
            why,
            evidence,
            sensors: Vec::new(),
        }
    }
}

/// Deterministic incident id: the same capture gives the same ids.
pub fn alert_id(ip: IpAddr, rule: &RuleInfo, start: i64) -> String {
    let h = crate::classify::names::hash(&format!("{ip}|{}|{start}", rule.name));
    format!("{h:016x}-{start}")
}

#[cfg(test)]
mod tests;
