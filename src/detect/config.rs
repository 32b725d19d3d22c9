//! Detection settings: every threshold named once, with its default and why.
//! Rates are per second so the same numbers hold for any bin size.

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DetectorConfig {
    /// Bins in the window a DNS incident is judged on (the window's sum must
    /// be significant and its latest bin loud).
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
    /// The least any baseline rate can be (events/s): expected counts never reach zero.
    pub min_baseline_qps: f64,
    /// Loud = the queries beyond the baseline come at least at this rate (q/s) ...
    pub floor_qps: f64,
    /// ... the window holds at least this many times the expected count ...
    pub ratio: f64,
    /// ... and at least this many queries beyond it (a handful is never an attack, on any bin size) ...
    pub min_excess: u64,
    /// ... with a Poisson p-value of at most 10^log10_p against the baseline.
    pub log10_p: f64,
    /// A client without a baseline (warm-up) is judged against this rate (q/s),
    /// split over qtypes like the relay paper's quiet day (Table 1) ...
    pub warmup_prior_qps: f64,
    /// ... and must exceed it this many times, unless its own SMTP rules corroborate.
    pub warmup_ratio: f64,
    /// Incidents of warm-up clients (no baseline yet) that may start per bin,
    /// sensor-wide; the rest fold into one `spoofed_source_flood` alert
    /// (spoofed sources have no history, and each would alert on its own).
    pub max_warmup_alerts_per_bin: usize,
    /// spam_relay: MX lookups make at least this share of the excess queries
    /// (half of it when the server's outbound SMTP sessions flood too).
    pub mx_excess_share: f64,
    /// spam_bot: distinct MX names (recipient domains) a client that is not a
    /// mail server must look up in the window, beside spam_relay's MX excess
    /// and share (0 turns the rule off).
    pub spam_bot_min_mx_domains: u64,
    /// backscatter: unresolved FQDNs (normally none) beyond the baseline, at least this many
    /// and this share of the excess queries (a resolver's stray few are not a flood) ...
    pub unresolved_min: u64,
    pub unresolved_excess_share: f64,
    /// ... or NXDOMAIN makes this share of the excess answers ...
    pub nxdomain_excess_share: f64,
    /// ... on a mix where reverse (PTR) lookups of the connecting clients make this share of the excess.
    pub ptr_excess_share: f64,
    /// dns_query_flood (loud without a mail pattern) is opt-in: a volume rule
    /// cannot tell a batch job or a blocklist checker from an attack.
    pub query_flood: bool,
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
    /// Events an SMTP flood needs in its window (a handful is never a flood).
    pub min_events: u64,
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
            ratio: 4.0,
            min_excess: 20,
            log10_p: -6.0,
            warmup_prior_qps: 0.5,
            warmup_ratio: 10.0,
            max_warmup_alerts_per_bin: 10,
            mx_excess_share: 0.3,
            spam_bot_min_mx_domains: 20,
            unresolved_min: 5,
            unresolved_excess_share: 0.02,
            nxdomain_excess_share: 0.3,
            ptr_excess_share: 0.1,
            query_flood: false,
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
            min_events: 20,
        }
    }
}
