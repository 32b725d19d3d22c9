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
    /// Live: client records (client_stats lines) waiting for a slow output
    /// at most; beyond, a bin's records are dropped and counted.
    pub output_queue_records: usize,
    /// Live: alerts waiting for a slow output at most; beyond, dropped and counted.
    pub output_queue_alerts: usize,
    /// Live: seconds SIGTERM/SIGINT waits for the output to take the last
    /// lines before giving up on a stuck writer.
    pub stop_timeout_secs: f64,
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
            output_queue_records: 100_000,
            output_queue_alerts: 10_000,
            stop_timeout_secs: 5.0,
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
    // Every count between 1 and a ceiling that memory can hold (a typo of
    // 1e12 must be an error, not an allocation abort).
    for (k, v, max) in [
        ("pipeline.max_clients", p.max_clients, 50_000_000),
        (
            "pipeline.max_pending_queries",
            p.max_pending_queries,
            100_000_000,
        ),
        ("pipeline.batch_events", p.batch_events, 65_536),
        ("pipeline.channel_batches", p.channel_batches, 65_536),
        ("pipeline.top", p.top, 10_000_000),
        (
            "pipeline.max_tcp_dns_flows",
            p.max_tcp_dns_flows,
            10_000_000,
        ),
        ("pipeline.max_smtp_flows", p.max_smtp_flows, 10_000_000),
        (
            "pipeline.output_queue_records",
            p.output_queue_records,
            100_000_000,
        ),
        (
            "pipeline.output_queue_alerts",
            p.output_queue_alerts,
            10_000_000,
        ),
        ("detect.confirm_bins", c.detect.confirm_bins, 1_000),
        (
            "detect.end_after_quiet_bins",
            c.detect.end_after_quiet_bins,
            100_000,
        ),
        (
            "detect.max_warmup_alerts_per_bin",
            c.detect.max_warmup_alerts_per_bin.max(1),
            1_000_000,
        ),
    ] {
        if v == 0 || v > max {
            return Err(format!("{k} must be between 1 and {max}, not {v}"));
        }
    }
    if p.workers > 1024 {
        return Err(format!(
            "pipeline.workers must be at most 1024, not {}",
            p.workers
        ));
    }
    for (k, v, max) in [
        ("pipeline.bin_seconds", p.bin_seconds, 86_400.0),
        ("pipeline.stop_timeout_secs", p.stop_timeout_secs, 3_600.0),
        (
            "detect.update_interval_secs",
            c.detect.update_interval_secs,
            31_536_000.0,
        ),
    ] {
        if !(v.is_finite() && v > 0.0 && v <= max) {
            return Err(format!(
                "{k} must be a number of seconds above 0 and at most {max}, not {v}"
            ));
        }
    }
    if c.detect.warmup_bins > 1_000_000 {
        return Err(format!(
            "detect.warmup_bins must be at most 1000000, not {}",
            c.detect.warmup_bins
        ));
    }
    for d in &c.dns.local_domains {
        check_domain(d).map_err(|m| format!("dns.local_domains: {m}"))?;
    }
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
            if !(b.is_finite() && b > 0.0 && b <= 86_400.0) {
                return Err(ConfigError(format!(
                    "--bin must be a number of seconds above 0 and at most 86400, not {b}"
                )));
            }
            file.pipeline.bin_seconds = b;
        }
        if let Some(t) = common.top {
            if t > 10_000_000 {
                return Err(ConfigError(format!(
                    "--top must be at most 10000000, not {t}"
                )));
            }
            file.pipeline.top = t.max(1);
        }
        if let Some(w) = common.workers {
            if w == 0 || w > 1024 {
                return Err(ConfigError(format!(
                    "--workers must be between 1 and 1024, not {w}"
                )));
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
            output_queue_records: self.file.pipeline.output_queue_records,
            output_queue_alerts: self.file.pipeline.output_queue_alerts,
            lossless,
            engine: self.engine.clone(),
        }
    }
}

/// The flags only `live` has.
pub fn check_live(args: &LiveArgs) -> Result<(), ConfigError> {
    if !(args.stats_interval.is_finite()
        && args.stats_interval >= 0.1
        && args.stats_interval <= 31_536_000.0)
    {
        return Err(ConfigError(format!(
            "--stats-interval must be a number of seconds between 0.1 and 31536000 (a year), not {}",
            args.stats_interval
        )));
    }
    if let Some(n) = args.channel_batches
        && !(1..=65_536).contains(&n)
    {
        return Err(ConfigError(format!(
            "--channel-batches must be between 1 and 65536, not {n}"
        )));
    }
    if !(0..=1 << 30).contains(&args.buffer_size) || !(0..=262_144).contains(&args.snaplen) {
        return Err(ConfigError(format!(
            "--buffer-size must be between 0 and 1 GiB and --snaplen between 0 and 262144, not {} and {}",
            args.buffer_size, args.snaplen
        )));
    }
    Ok(())
}

/// The flags only `report` has.
pub fn check_report(args: &ReportArgs) -> Result<(), ConfigError> {
    if args.top == 0 || args.top > 10_000_000 {
        return Err(ConfigError(format!(
            "--top must be between 1 and 10000000, not {}",
            args.top
        )));
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
        && !(b.is_finite() && b > 0.0 && b <= 86_400.0)
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
        for bad in [
            "[pipeline]\nchannel_batches = 1000000000000\n",
            "[pipeline]\nbatch_events = 1000000000000\n",
            "[pipeline]\nmax_clients = 0\n",
            "[pipeline]\nstop_timeout_secs = 1e20\n",
            "[detect]\nupdate_interval_secs = 1e300\n",
        ] {
            let e = parse(bad, "t.toml").unwrap_err().0;
            assert!(!e.contains('\n') && e.contains("must be"), "{bad}: {e}");
        }
        let e = parse("[[client]]\nip = \"10.0.0.300\"\n", "t.toml")
            .unwrap_err()
            .0;
        assert!(e.contains("line 2"), "{e}");
    }
}
