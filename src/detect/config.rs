//! Detection settings: every threshold named once, with its default and why.
//! Rates are per second so the same numbers hold for any bin size.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Consecutive loud bins before an alert starts (one loud bin is noise).
    pub confirm_bins: usize,
    /// Quiet bins after which an active alert ends.
    pub end_after_quiet_bins: usize,
    /// Seconds between `info` updates of an active alert.
    pub update_interval_secs: f64,
    /// Quiet bins a client needs before its baseline counts (warm-up).
    pub warmup_bins: u64,
    /// Baseline smoothing: weight of a new quiet bin (EWMA alpha).
    pub baseline_alpha: f64,
    /// Most a baseline may grow per bin (0.002 = +0.2 %): a slow ramp cannot drag it along.
    pub baseline_max_growth: f64,
    /// Baseline assumed for a new client, and the least any baseline can be (q/s).
    pub min_baseline_qps: f64,
    /// Absolute floor: a client below this query rate is never loud (q/s).
    pub floor_qps: f64,
    /// Loud = rate at least this many times the baseline (and above the floor).
    pub ratio: f64,
    /// spam_relay: MX share of queries that alone makes a loud client a relay.
    pub mx_share_dominant: f64,
    /// spam_relay: or MX rate this many times its own baseline ...
    pub mx_ratio: f64,
    /// ... with at least this MX share (a relay without local cache: ~1/3 MX).
    pub mx_share_min: f64,
    /// backscatter: share of queries that are unresolved FQDNs ...
    pub unresolved_share_min: f64,
    /// ... with at least this many of them in the run,
    pub unresolved_min: u64,
    /// or share of responses that are NXDOMAIN (backscatter without a search domain).
    pub nxdomain_share_min: f64,
    pub smtp: SmtpRulesConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpRulesConfig {
    /// smtp_alpha: the usual band of N_c / N_f (the relay paper: 0.35-0.70).
    pub alpha_low: f64,
    pub alpha_high: f64,
    /// smtp_alpha: sessions in the run below which alpha means nothing.
    pub alpha_min_sessions: u64,
    /// smtp_user_unknown_flood: floor (rejections per second) and ratio to baseline.
    pub user_unknown_floor_ps: f64,
    pub user_unknown_ratio: f64,
    /// smtp_outbound_flood: floor (outbound sessions per second) and ratio to baseline.
    pub outbound_floor_ps: f64,
    pub outbound_ratio: f64,
    /// Least baseline for SMTP rates (events per second).
    pub min_baseline_ps: f64,
}

impl Default for DetectorConfig {
    fn default() -> Self {
        // Deployment defaults, for 60-second bins (see README).
        DetectorConfig {
            confirm_bins: 2,
            end_after_quiet_bins: 5,
            update_interval_secs: 600.0,
            warmup_bins: 10,
            baseline_alpha: 0.05,
            baseline_max_growth: 0.002,
            min_baseline_qps: 0.01,
            floor_qps: 0.2,
            ratio: 10.0,
            mx_share_dominant: 0.5,
            mx_ratio: 20.0,
            mx_share_min: 0.2,
            unresolved_share_min: 0.05,
            unresolved_min: 5,
            nxdomain_share_min: 0.4,
            smtp: SmtpRulesConfig::default(),
        }
    }
}

impl Default for SmtpRulesConfig {
    fn default() -> Self {
        SmtpRulesConfig {
            alpha_low: 0.35,
            alpha_high: 0.70,
            alpha_min_sessions: 50,
            user_unknown_floor_ps: 0.1,
            user_unknown_ratio: 10.0,
            outbound_floor_ps: 0.1,
            outbound_ratio: 10.0,
            min_baseline_ps: 0.005,
        }
    }
}
