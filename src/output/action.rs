//! `mxwatch.action` lines (issue #17): one for every run of an action, its
//! undo, its dry run (log mode) and its refusal, with what the command was
//! given and how it ended. The `action` module fills an [`ActionRecord`]
//! (plain values); this file names the fields.

use std::net::IpAddr;

use serde::Serialize;

use super::schema::{Ip, Observer, SCHEMA_VERSION, round4};
use crate::time::rfc3339_micros;

/// One run, undo, dry run or refusal of one action.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ActionRecord {
    /// Packet time of what triggered it (the alert's bin end, or the bin a
    /// follow-up or hold expiry was decided in).
    pub ts: i64,
    pub action: String,
    /// "log" or "act".
    pub mode: &'static str,
    /// start | info | end | follow | undo
    pub trigger: &'static str,
    /// ok | failed | timeout | dry_run | refused
    pub outcome: &'static str,
    /// allowlist | rate_cap | queue_full | table_full (for `refused`).
    pub refusal: Option<&'static str>,
    pub rule_name: &'static str,
    pub rule_id: &'static str,
    pub alert_id: String,
    pub client: Option<IpAddr>,
    /// Addresses acted on (allowlisted ones removed).
    pub targets: Vec<IpAddr>,
    /// Addresses the allowlist kept out.
    pub allowlisted: Vec<IpAddr>,
    pub command: Vec<String>,
    /// The `MXW_*` environment it was given.
    pub env: Vec<(String, String)>,
    pub timeout_secs: f64,
    pub exit_code: Option<i32>,
    pub signal: Option<i32>,
    pub duration_secs: Option<f64>,
    /// Wall-clock start of the run (absent for dry runs and refusals).
    pub ran_at: Option<i64>,
    pub stdout: Option<String>,
    pub stderr: Option<String>,
    pub error: Option<String>,
}

#[derive(Debug, Serialize)]
pub struct ActionLine<'a> {
    #[serde(rename = "@timestamp")]
    timestamp: String,
    event: ActionEvent,
    observer: &'a Observer<'a>,
    rule: RuleOut,
    #[serde(skip_serializing_if = "Option::is_none")]
    source: Option<Ip>,
    mxwatch: ActionBody<'a>,
}

#[derive(Debug, Serialize)]
struct ActionEvent {
    kind: &'static str,
    dataset: &'static str,
    #[serde(rename = "type")]
    kind_of: [&'static str; 1],
    action: String,
    /// ECS: success | failure | unknown (dry run, refusal).
    outcome: &'static str,
}

#[derive(Debug, Serialize)]
struct RuleOut {
    name: &'static str,
    id: &'static str,
}

#[derive(Debug, Serialize)]
struct ActionBody<'a> {
    schema_version: &'static str,
    alert_id: &'a str,
    action: ActionOut<'a>,
}

#[derive(Debug, Serialize)]
struct ActionOut<'a> {
    name: &'a str,
    mode: &'static str,
    trigger: &'static str,
    outcome: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    refusal: Option<&'static str>,
    targets: Vec<String>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    allowlisted: Vec<String>,
    command: &'a [String],
    env: std::collections::BTreeMap<&'a str, &'a str>,
    timeout_secs: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    exit_code: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    signal: Option<i32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    duration_secs: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ran_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stdout: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stderr: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<&'a str>,
}

impl<'a> ActionLine<'a> {
    pub fn of(r: &'a ActionRecord, observer: &'a Observer<'a>) -> Self {
        let ecs_outcome = match r.outcome {
            "ok" => "success",
            "failed" | "timeout" => "failure",
            _ => "unknown",
        };
        let strs = |v: &[IpAddr]| v.iter().map(ToString::to_string).collect();
        ActionLine {
            timestamp: rfc3339_micros(r.ts),
            event: ActionEvent {
                kind: "event",
                dataset: "mxwatch.action",
                kind_of: [if r.trigger == "undo" {
                    "deletion"
                } else {
                    "change"
                }],
                action: format!("{}-{}", r.action, r.trigger),
                outcome: ecs_outcome,
            },
            observer,
            rule: RuleOut {
                name: r.rule_name,
                id: r.rule_id,
            },
            source: r.client.map(|ip| Ip { ip: ip.to_string() }),
            mxwatch: ActionBody {
                schema_version: SCHEMA_VERSION,
                alert_id: &r.alert_id,
                action: ActionOut {
                    name: &r.action,
                    mode: r.mode,
                    trigger: r.trigger,
                    outcome: r.outcome,
                    refusal: r.refusal,
                    targets: strs(&r.targets),
                    allowlisted: strs(&r.allowlisted),
                    command: &r.command,
                    env: r
                        .env
                        .iter()
                        .map(|(k, v)| (k.as_str(), v.as_str()))
                        .collect(),
                    timeout_secs: r.timeout_secs,
                    exit_code: r.exit_code,
                    signal: r.signal,
                    duration_secs: r.duration_secs.map(round4),
                    ran_at: r.ran_at.map(rfc3339_micros),
                    stdout: r.stdout.as_deref(),
                    stderr: r.stderr.as_deref(),
                    error: r.error.as_deref(),
                },
            },
        }
    }
}
