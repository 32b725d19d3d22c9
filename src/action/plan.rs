//! What to run, decided from alerts and closed bins in packet time (plain
//! values: tests feed it by hand). The planner keeps, per action and
//! incident, the addresses acted on so far, so the undo gets exactly them.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::time::Duration;

use super::config::{ActionConfig, ActionsConfig, Mode, Net, Target, Trigger};
use crate::classify::ClosedBin;
use crate::detect::{Alert, Phase, RuleInfo};
use crate::output::action::ActionRecord;

/// One command to run (or that would run, or was refused).
#[derive(Debug, Clone, PartialEq)]
pub struct Job {
    pub argv: Vec<String>,
    /// `MXW_*` and the action's own `env`.
    pub env: Vec<(String, String)>,
    /// The alert line (JSON) on the command's stdin.
    pub stdin: String,
    pub timeout: Duration,
    /// The line this job's outcome fills in.
    pub record: ActionRecord,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Decision {
    /// Run it (mode act).
    Run(Job),
    /// Written as a line, never run: dry runs and refusals.
    Line(ActionRecord),
}

/// An incident acted on: the addresses so far, for the follow-ups and the undo.
#[derive(Debug, Clone)]
struct Acted {
    rule: &'static RuleInfo,
    client: IpAddr,
    server: Option<IpAddr>,
    local_domain: Option<String>,
    targets: Vec<IpAddr>,
    /// Candidates the allowlist kept out (logged once per incident).
    allowlisted: Vec<IpAddr>,
    /// The latest alert line of the incident (stdin of follow-ups and the undo).
    line: String,
    /// Packet time the undo is due (hold_secs), if any.
    undo_at: Option<i64>,
}

const MINUTE: i64 = 60_000_000;

#[derive(Debug)]
pub struct Planner {
    actions: Vec<ActionConfig>,
    limits: ActionsConfig,
    allow: Vec<Net>,
    /// `--dry-run`: every action in log mode.
    dry_run: bool,
    /// Packet times of the runs of the last minute (the rate cap).
    recent: VecDeque<i64>,
    /// (action index, alert id) -> what was done.
    acted: BTreeMap<(usize, String), Acted>,
}

impl Planner {
    /// `actions` and `limits` already checked (`config::check`).
    pub fn new(actions: Vec<ActionConfig>, limits: ActionsConfig, dry_run: bool) -> Self {
        let allow = limits
            .allowlist
            .iter()
            .filter_map(|n| Net::parse(n).ok())
            .collect();
        Planner {
            actions,
            limits,
            allow,
            dry_run,
            recent: VecDeque::new(),
            acted: BTreeMap::new(),
        }
    }

    fn mode(&self, i: usize) -> Mode {
        if self.dry_run {
            Mode::Log
        } else {
            self.actions[i].mode
        }
    }

    fn allowed(&self, ip: IpAddr) -> bool {
        !self.allow.iter().any(|n| n.contains(ip))
    }

    /// A bin's alerts (in line order, each with its JSON line), then the
    /// bin itself: follow-ups on new peers and expired holds.
    pub fn on_bin(&mut self, bin: &ClosedBin, alerts: &[(&Alert, String)]) -> Vec<Decision> {
        let mut out = Vec::new();
        for (a, line) in alerts {
            out.extend(self.on_alert(a, line));
        }
        out.extend(self.follow(bin));
        out.extend(self.expire(bin.end));
        out
    }

    pub fn on_alert(&mut self, a: &Alert, line: &str) -> Vec<Decision> {
        let mut out = Vec::new();
        for i in 0..self.actions.len() {
            let act = &self.actions[i];
            if !act.rules.iter().any(|r| r == a.rule.name) {
                continue;
            }
            let key = (i, a.alert_id.clone());
            if let Some(done) = self.acted.get_mut(&key) {
                done.line = line.to_owned();
            }
            let trigger = match a.phase {
                Phase::Start => Trigger::Start,
                Phase::Info => Trigger::Info,
                Phase::End => Trigger::End,
            };
            if act.on.contains(&trigger) {
                let candidates = match act.target {
                    Target::Client | Target::Server => vec![a.ip],
                    Target::Peers => a.evidence.smtp_peers.iter().map(|p| p.0).collect(),
                };
                let acted = Acted {
                    rule: a.rule,
                    client: a.ip,
                    server: a.server,
                    local_domain: a.evidence.local_domain.clone(),
                    targets: Vec::new(),
                    allowlisted: Vec::new(),
                    line: line.to_owned(),
                    undo_at: None,
                };
                let peers = peer_list(&a.evidence.smtp_peers);
                out.extend(self.act(
                    i,
                    &a.alert_id,
                    a.ts,
                    trigger_name(a.phase),
                    candidates,
                    acted,
                    &peers,
                ));
            }
            if a.phase == Phase::End && self.actions[i].hold_secs.is_none() {
                out.extend(self.undo(&key, a.ts));
            }
        }
        out
    }

    /// Runs action `i` on the candidates not yet acted on and not allowlisted.
    #[allow(clippy::too_many_arguments)]
    fn act(
        &mut self,
        i: usize,
        alert_id: &str,
        ts: i64,
        trigger: &'static str,
        candidates: Vec<IpAddr>,
        fresh: Acted,
        peers: &str,
    ) -> Option<Decision> {
        let key = (i, alert_id.to_owned());
        let before: Vec<IpAddr> = self
            .acted
            .get(&key)
            .map(|d| [&d.targets[..], &d.allowlisted[..]].concat())
            .unwrap_or_default();
        let mut targets = Vec::new();
        let mut allowlisted = Vec::new();
        let server = self.actions[i].target == Target::Server;
        for ip in candidates {
            if before.contains(&ip) || targets.contains(&ip) || allowlisted.contains(&ip) {
                continue;
            }
            if server || self.allowed(ip) {
                targets.push(ip);
            } else {
                allowlisted.push(ip);
            }
        }
        if targets.is_empty() && allowlisted.is_empty() {
            return None; // nothing new (a follow-up with no new peer)
        }
        let act = &self.actions[i];
        let ctx = self.acted.get(&key).cloned().unwrap_or(fresh);
        let mut rec = ActionRecord {
            ts,
            action: act.name.clone(),
            mode: mode_name(self.mode(i)),
            trigger,
            rule_name: ctx.rule.name,
            rule_id: ctx.rule.id,
            alert_id: alert_id.to_owned(),
            client: Some(ctx.client),
            targets: targets.clone(),
            allowlisted,
            command: act.command.clone(),
            timeout_secs: act.timeout_secs,
            ..ActionRecord::default()
        };
        rec.env = env(&rec, &ctx, peers, act.hold_secs);
        if let Some(d) = self.acted.get_mut(&key) {
            d.allowlisted.extend(rec.allowlisted.iter().copied());
        }
        if targets.is_empty() {
            rec.outcome = "refused";
            rec.refusal = Some("allowlist");
            return Some(Decision::Line(rec));
        }
        while self.recent.front().is_some_and(|&t| t <= ts - MINUTE) {
            self.recent.pop_front();
        }
        if self.recent.len() >= self.limits.max_per_minute as usize {
            rec.outcome = "refused";
            rec.refusal = Some("rate_cap");
            return Some(Decision::Line(rec));
        }
        if !self.acted.contains_key(&key) && self.acted.len() >= self.limits.max_open {
            rec.outcome = "refused";
            rec.refusal = Some("table_full");
            return Some(Decision::Line(rec));
        }
        self.recent.push_back(ts);
        let hold = act.hold_secs;
        let done = self.acted.entry(key).or_insert(ctx.clone());
        done.targets.extend(targets);
        for ip in &rec.allowlisted {
            if !done.allowlisted.contains(ip) {
                done.allowlisted.push(*ip);
            }
        }
        if done.undo_at.is_none() {
            done.undo_at = hold.map(|h| ts + (h * 1e6) as i64);
        }
        Some(self.job(i, rec, &ctx.line))
    }

    /// A run, or in log mode its dry-run line.
    fn job(&self, i: usize, mut rec: ActionRecord, stdin: &str) -> Decision {
        let act = &self.actions[i];
        if self.mode(i) == Mode::Log {
            rec.outcome = "dry_run";
            return Decision::Line(rec);
        }
        let mut env = rec.env.clone();
        env.extend(act.env.iter().map(|(k, v)| (k.clone(), v.clone())));
        Decision::Run(Job {
            argv: rec.command.clone(),
            env,
            stdin: stdin.to_owned(),
            timeout: Duration::from_secs_f64(act.timeout_secs),
            record: rec,
        })
    }

    /// The undo of one incident (never refused: it takes back what was done).
    fn undo(&mut self, key: &(usize, String), ts: i64) -> Option<Decision> {
        let done = self.acted.remove(key)?;
        let act = &self.actions[key.0];
        let argv = act.undo.clone()?;
        let mut rec = ActionRecord {
            ts,
            action: act.name.clone(),
            mode: mode_name(self.mode(key.0)),
            trigger: "undo",
            rule_name: done.rule.name,
            rule_id: done.rule.id,
            alert_id: key.1.clone(),
            client: Some(done.client),
            targets: done.targets.clone(),
            command: argv,
            timeout_secs: act.timeout_secs,
            ..ActionRecord::default()
        };
        rec.env = env(&rec, &done, "", act.hold_secs);
        Some(self.job(key.0, rec, &done.line))
    }

    /// New top peers of clients with an open `follow_peers` incident.
    fn follow(&mut self, bin: &ClosedBin) -> Vec<Decision> {
        let keys: Vec<(usize, String)> = self
            .acted
            .keys()
            .filter(|(i, _)| self.actions[*i].follow_peers)
            .cloned()
            .collect();
        let mut out = Vec::new();
        for key in keys {
            let client = self.acted[&key].client;
            let Some(rec) = bin.clients.iter().find(|c| c.ip == client) else {
                continue;
            };
            let mut peers = rec.bin.smtp_peers.clone();
            peers.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
            let candidates = peers.iter().map(|p| p.0).collect();
            let fresh = self.acted[&key].clone();
            out.extend(self.act(
                key.0,
                &key.1,
                bin.end,
                "follow",
                candidates,
                fresh,
                &peer_list(&peers),
            ));
        }
        out
    }

    /// Undos whose hold time has passed.
    fn expire(&mut self, now: i64) -> Vec<Decision> {
        let due: Vec<(usize, String)> = self
            .acted
            .iter()
            .filter(|(_, d)| d.undo_at.is_some_and(|t| t <= now))
            .map(|(k, _)| k.clone())
            .collect();
        due.iter().filter_map(|k| self.undo(k, now)).collect()
    }

    /// End of the run: every incident still acted on is undone.
    pub fn finish(&mut self, now: i64) -> Vec<Decision> {
        let keys: Vec<(usize, String)> = self.acted.keys().cloned().collect();
        keys.iter().filter_map(|k| self.undo(k, now)).collect()
    }
}

fn trigger_name(p: Phase) -> &'static str {
    match p {
        Phase::Start => "start",
        Phase::Info => "info",
        Phase::End => "end",
    }
}

fn mode_name(m: Mode) -> &'static str {
    match m {
        Mode::Log => "log",
        Mode::Act => "act",
    }
}

/// `ip:sessions` separated by spaces.
fn peer_list(peers: &[(IpAddr, u64)]) -> String {
    peers
        .iter()
        .map(|(ip, n)| format!("{ip}:{n}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The `MXW_*` environment of a run (SCHEMA.md, "mxwatch.action").
fn env(rec: &ActionRecord, ctx: &Acted, peers: &str, hold: Option<f64>) -> Vec<(String, String)> {
    let join = |v: &[IpAddr]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut e = vec![
        ("MXW_ACTION", rec.action.clone()),
        ("MXW_MODE", rec.mode.to_owned()),
        ("MXW_TRIGGER", rec.trigger.to_owned()),
        ("MXW_RULE", rec.rule_name.to_owned()),
        ("MXW_RULE_ID", rec.rule_id.to_owned()),
        ("MXW_ALERT_ID", rec.alert_id.clone()),
        ("MXW_CLIENT", ctx.client.to_string()),
        ("MXW_TARGETS", join(&rec.targets)),
    ];
    if let Some(s) = ctx.server {
        e.push(("MXW_SERVER", s.to_string()));
    }
    if let Some(d) = &ctx.local_domain {
        e.push(("MXW_LOCAL_DOMAIN", d.clone()));
    }
    if !peers.is_empty() {
        e.push(("MXW_PEERS", peers.to_owned()));
    }
    if let Some(h) = hold {
        e.push(("MXW_HOLD_SECS", h.to_string()));
    }
    e.into_iter().map(|(k, v)| (k.to_owned(), v)).collect()
}
