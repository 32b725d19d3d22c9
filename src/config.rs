//! Validated settings, built once from the TOML file and the flags (flags win).
//!
//! Every limit is named here with its default and the reason for it. Unknown
//! keys and bad values are rejected with one line naming the file, the line
//! and the key.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::classify::ClassifyConfig;
use crate::cli::{Common, LiveArgs, ReportArgs};
use crate::decode::DecodeLimits;
use crate::detect::{ClientOverride, DetectorConfig};
use crate::engine::EngineConfig;
use crate::pipeline::PipelineConfig;
use crate::smtp::SmtpLimits;
use crate::time::Bins;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub sensor: SensorSection,
    pub pipeline: PipelineSection,
    pub dns: DnsSection,
    pub detect: DetectorConfig,
    #[serde(rename = "client")]
    pub clients: Vec<ClientOverride>,
    /// `[[action]]`: commands run on alerts (issue #17).
    #[serde(rename = "action")]
    pub actions: Vec<crate::action::ActionConfig>,
    /// `[actions]`: the limits every action shares.
    #[serde(rename = "actions")]
    pub action_limits: crate::action::ActionsConfig,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SensorSection {
    /// observer.name in every line; empty = the host name.
    pub name: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PipelineSection {
    pub bin_seconds: f64,
    /// 0 = one per core.
    pub workers: usize,
    pub top: usize,
    /// Clients tracked in all (a client IP can be spoofed: the table is capped).
    pub max_clients: usize,
    /// Queries waiting for a response, in all (Zeek's max_pending_query_ids).
    pub max_pending_queries: usize,
    /// DNS-over-TCP streams tracked at once.
    pub max_tcp_dns_flows: usize,
    /// SMTP flows tracked at once.
    pub max_smtp_flows: usize,
    /// Events per batch handed to a classifier (FACTS: 256+ per send).
    pub batch_events: usize,
    /// Batches queued per classifier.
    pub channel_batches: usize,
}

impl Default for PipelineSection {
    fn default() -> Self {
        PipelineSection {
            bin_seconds: 60.0,
            workers: 0,
            top: 100,
            max_clients: 100_000,
            max_pending_queries: 200_000,
            max_tcp_dns_flows: 10_000,
            max_smtp_flows: 50_000,
            batch_events: 512,
            channel_batches: 64,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// Search domains of the monitored mail servers; empty = learnt per client.
    pub local_domains: Vec<String>,
}

#[derive(Debug)]
pub struct ConfigError(pub String);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConfigError {}

/// Reads and checks a config file.
pub fn load(path: &Path) -> Result<FileConfig, ConfigError> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| ConfigError(format!("cannot read config {}: {e}", path.display())))?;
    parse(&text, &path.display().to_string())
}

pub fn parse(text: &str, origin: &str) -> Result<FileConfig, ConfigError> {
    let cfg: FileConfig = toml::from_str(text).map_err(|e| {
        let line = e
            .span()
            .map(|s| text[..s.start.min(text.len())].matches('\n').count() + 1);
        let msg = e.message().trim().replace('\n', " ");
        match line {
            Some(l) => ConfigError(format!("config {origin} line {l}: {msg}")),
            None => ConfigError(format!("config {origin}: {msg}")),
        }
    })?;
    validate(&cfg).map_err(|m| ConfigError(format!("config {origin}: {m}")))?;
    Ok(cfg)
}

fn validate(c: &FileConfig) -> Result<(), String> {
    let p = &c.pipeline;
    let positive = [
        ("pipeline.bin_seconds", p.bin_seconds),
        ("detect.ratio", c.detect.ratio),
        ("detect.floor_qps", c.detect.floor_qps),
        ("detect.min_baseline_qps", c.detect.min_baseline_qps),
        ("detect.update_interval_secs", c.detect.update_interval_secs),
        ("detect.warmup_prior_qps", c.detect.warmup_prior_qps),
        ("detect.warmup_ratio", c.detect.warmup_ratio),
        (
            "detect.smtp.user_unknown_ratio",
            c.detect.smtp.user_unknown_ratio,
        ),
        ("detect.smtp.outbound_ratio", c.detect.smtp.outbound_ratio),
        ("detect.smtp.min_baseline_ps", c.detect.smtp.min_baseline_ps),
    ];
    for (k, v) in positive {
        if !(v.is_finite() && v > 0.0) {
            return Err(format!("{k} must be a positive number, not {v}"));
        }
    }
    let shares = [
        ("detect.mx_excess_share", c.detect.mx_excess_share),
        (
            "detect.nxdomain_excess_share",
            c.detect.nxdomain_excess_share,
        ),
        ("detect.ptr_excess_share", c.detect.ptr_excess_share),
        (
            "detect.unresolved_excess_share",
            c.detect.unresolved_excess_share,
        ),
        ("detect.baseline_alpha", c.detect.baseline_alpha),
    ];
    for (k, v) in shares {
        if !(0.0..=1.0).contains(&v) {
            return Err(format!("{k} must be between 0 and 1, not {v}"));
        }
    }
    if !(c.detect.log10_p.is_finite() && c.detect.log10_p < 0.0) {
        return Err(format!(
            "detect.log10_p must be a negative number (a p-value of 10^log10_p), not {}",
            c.detect.log10_p
        ));
    }
    if c.detect.smtp.alpha_low >= c.detect.smtp.alpha_high {
        return Err("detect.smtp.alpha_low must be below detect.smtp.alpha_high".into());
    }
    if c.detect.confirm_bins == 0 || c.detect.end_after_quiet_bins == 0 {
        return Err(
            "detect.confirm_bins and detect.end_after_quiet_bins must be at least 1".into(),
        );
    }
    for (k, v) in [
        ("pipeline.max_clients", p.max_clients),
        ("pipeline.max_pending_queries", p.max_pending_queries),
        ("pipeline.batch_events", p.batch_events),
        ("pipeline.channel_batches", p.channel_batches),
        ("pipeline.top", p.top),
        ("pipeline.max_tcp_dns_flows", p.max_tcp_dns_flows),
        ("pipeline.max_smtp_flows", p.max_smtp_flows),
    ] {
        if v == 0 {
            return Err(format!("{k} must be at least 1"));
        }
    }
    for d in &c.dns.local_domains {
        check_domain(d).map_err(|m| format!("dns.local_domains: {m}"))?;
    }
    let rules: Vec<&str> = crate::detect::rules()
        .iter()
        .map(|r| r.info().name)
        .collect();
    crate::action::config::check(&c.actions, &c.action_limits, &rules)?;
    Ok(())
}

fn check_domain(d: &str) -> Result<(), String> {
    let d = d.trim_end_matches('.');
    if d.is_empty() || !d.contains('.') || d.split('.').any(|l| l.is_empty() || l.len() > 63) {
        return Err(format!(
            "{d:?} is not a domain name with at least two labels"
        ));
    }
    Ok(())
}

/// Everything a run needs, validated.
#[derive(Debug, Clone)]
pub struct Settings {
    pub sensor_name: String,
    pub bin_micros: i64,
    pub workers: usize,
    pub top: usize,
    pub stats: bool,
    pub output: Option<PathBuf>,
    pub filter: Option<String>,
    /// `--dry-run`: every action in log mode.
    pub dry_run: bool,
    pub file: FileConfig,
    pub engine: EngineConfig,
}

impl Settings {
    pub fn build(common: &Common) -> Result<Settings, ConfigError> {
        let mut file = match &common.config {
            Some(p) => load(p)?,
            None => FileConfig::default(),
        };
        if let Some(b) = common.bin {
            if !(b.is_finite() && b > 0.0) {
                return Err(ConfigError(format!(
                    "--bin must be a positive number of seconds, not {b}"
                )));
            }
            file.pipeline.bin_seconds = b;
        }
        if let Some(t) = common.top {
            file.pipeline.top = t.max(1);
        }
        if let Some(w) = common.workers {
            if w == 0 {
                return Err(ConfigError("--workers must be at least 1".into()));
            }
            file.pipeline.workers = w;
        }
        for d in &common.local_domain {
            check_domain(d).map_err(|m| ConfigError(format!("--local-domain: {m}")))?;
        }
        if !common.local_domain.is_empty() {
            file.dns.local_domains = common.local_domain.clone();
        }
        let local_domains: Vec<String> = file
            .dns
            .local_domains
            .iter()
            .map(|d| d.trim_end_matches('.').to_ascii_lowercase())
            .collect();
        let workers = match file.pipeline.workers {
            0 => {
                std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1))
            }
            n => n,
        };
        let bin_micros = (file.pipeline.bin_seconds * 1e6).round() as i64;
        if bin_micros < 1000 {
            return Err(ConfigError("bin must be at least 1 ms".into()));
        }
        let sensor_name = common
            .sensor_name
            .clone()
            .or_else(|| (!file.sensor.name.is_empty()).then(|| file.sensor.name.clone()))
            .unwrap_or_else(hostname);
        let mut detect = file.detect.clone();
        if common.no_detect {
            detect.floor_qps = f64::INFINITY;
            detect.smtp.alpha_min_sessions = u64::MAX;
            detect.smtp.user_unknown_floor_ps = f64::INFINITY;
            detect.smtp.outbound_floor_ps = f64::INFINITY;
        }
        let engine = EngineConfig {
            classify: ClassifyConfig {
                bins: Bins::new(bin_micros),
                max_clients: file.pipeline.max_clients,
                max_pending: file.pipeline.max_pending_queries,
                local_domains,
                // Set by the engine from the detector's windows.
                idle_bins_closed: 0,
            },
            detect,
            overrides: file.clients.clone(),
            decode: DecodeLimits {
                max_tcp_dns_flows: file.pipeline.max_tcp_dns_flows,
                smtp: SmtpLimits {
                    max_flows: file.pipeline.max_smtp_flows,
                    ..SmtpLimits::default()
                },
            },
        };
        Ok(Settings {
            sensor_name,
            bin_micros,
            workers,
            top: file.pipeline.top,
            stats: common.stats,
            output: common.output.clone(),
            filter: common.filter.clone(),
            dry_run: common.dry_run,
            engine,
            file,
        })
    }

    /// The pipeline around the engine: `lossless` for files (a full channel
    /// waits), not for live capture (it drops and counts).
    pub fn pipeline(&self, lossless: bool) -> PipelineConfig {
        PipelineConfig {
            workers: self.workers,
            batch_events: self.file.pipeline.batch_events,
            channel_batches: self.file.pipeline.channel_batches,
            lossless,
            engine: self.engine.clone(),
        }
    }
}

/// The flags only `live` has.
pub fn check_live(args: &LiveArgs) -> Result<(), ConfigError> {
    if !(args.stats_interval.is_finite() && args.stats_interval > 0.0) {
        return Err(ConfigError(
            "--stats-interval must be a positive number of seconds".into(),
        ));
    }
    if args.channel_batches == Some(0) {
        return Err(ConfigError("--channel-batches must be at least 1".into()));
    }
    Ok(())
}

/// The flags only `report` has.
pub fn check_report(args: &ReportArgs) -> Result<(), ConfigError> {
    if args.top == 0 {
        return Err(ConfigError("--top must be at least 1".into()));
    }
    if let Some(q) = args.dq_q
        && !(0.0..=1.0).contains(&q)
    {
        return Err(ConfigError(format!(
            "--dq-q must be between 0 and 1, not {q}"
        )));
    }
    if !(args.dq_k.is_finite() && args.dq_k >= 0.0) {
        return Err(ConfigError(format!(
            "--dq-k must be a non-negative number, not {}",
            args.dq_k
        )));
    }
    if let Some(b) = args.bin
        && !(b.is_finite() && b > 0.0)
    {
        return Err(ConfigError(format!(
            "--bin must be a positive number of seconds, not {b}"
        )));
    }
    Ok(())
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_owned())
        .ok()
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "mxwatch".into())
}

/// The commented default configuration (`mxwatch config --print-default`).
pub const DEFAULT_TOML: &str = include_str!("default-config.toml");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn printed_default_is_the_default() {
        assert_eq!(
            parse(DEFAULT_TOML, "default").unwrap(),
            FileConfig::default()
        );
    }

    #[test]
    fn unknown_keys_and_bad_values_name_the_key() {
        let e = parse("[detect]\nratio = 10.0\nratoi = 3\n", "t.toml")
            .unwrap_err()
            .0;
        assert!(e.contains("line 3") && e.contains("ratoi"), "{e}");
        let e = parse("[detect]\nratio = \"ten\"\n", "t.toml")
            .unwrap_err()
            .0;
        assert!(e.contains("line 2") && !e.contains('\n'), "{e}");
        let e = parse("[detect]\nratio = -1.0\n", "t.toml").unwrap_err().0;
        assert!(e.contains("detect.ratio"), "{e}");
        let e = parse("[[client]]\nip = \"10.0.0.300\"\n", "t.toml")
            .unwrap_err()
            .0;
        assert!(e.contains("line 2"), "{e}");
    }
}
