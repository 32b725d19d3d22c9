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
use crate::output::syslog::{self, Format, TlsFiles};
use crate::output::tee::{self, OutputKind, OutputSpec, SyslogTransportSpec};
use crate::pipeline::PipelineConfig;
use crate::smtp::SmtpLimits;
use crate::time::Bins;

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct FileConfig {
    pub sensor: SensorSection,
    pub pipeline: PipelineSection,
    pub dns: DnsSection,
    pub defrag: DefragSection,
    pub detect: DetectorConfig,
    #[serde(rename = "client")]
    pub clients: Vec<ClientOverride>,
    /// Outputs (several at once); none = stdout. `-o` replaces them.
    #[serde(rename = "output", skip_serializing_if = "Vec::is_empty")]
    pub outputs: Vec<OutputSection>,
    /// `[[action]]`: commands run on alerts (issue #17).
    #[serde(rename = "action")]
    pub actions: Vec<crate::action::ActionConfig>,
    /// `[actions]`: the limits every action shares.
    #[serde(rename = "actions")]
    pub action_limits: crate::action::ActionsConfig,
}

/// One `[[output]]` section (also what a `-o URL?k=v` becomes).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct OutputSection {
    /// A file path, `-`, or a URL (see `output_url`).
    pub url: String,
    /// Name in capture_stats `outputs` and /metrics [default: the URL].
    pub name: Option<String>,
    /// `detection`, `client_stats`, `capture_stats` or `all` [default: all].
    pub datasets: Option<Vec<String>>,
    /// Network outputs: lines queued while the receiver is slow or away,
    /// beyond which lines are dropped and counted [default 10000].
    pub queue: Option<usize>,
    /// Network outputs: seconds the end of a run waits for the queue to drain [default 10].
    pub drain_secs: Option<f64>,
    /// syslog: `rfc5424` (default) or `rfc3164`.
    pub format: Option<String>,
    /// syslog: facility name [default local0].
    pub facility: Option<String>,
    /// syslog+tls: PEM CA file; client certificate and key (optional); name to check.
    pub ca: Option<PathBuf>,
    pub cert: Option<PathBuf>,
    pub key: Option<PathBuf>,
    pub server_name: Option<String>,
    /// kafka: extra librdkafka properties (`"compression.type" = "lz4"`).
    pub properties: std::collections::BTreeMap<String, String>,
}

/// Lines a network output queues by default (about 10 MB of alert lines).
pub const DEFAULT_OUTPUT_QUEUE: usize = 10_000;
/// Seconds the end of a run waits by default for a network output to drain.
pub const DEFAULT_DRAIN_SECS: f64 = 10.0;

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
    /// Live: capture threads per interface (`--threads`): libpcap handles in
    /// one AF_PACKET fanout group, each with its own decoder.
    pub capture_threads: usize,
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
            capture_threads: 1,
        }
    }
}

/// IP reassembly of fragmented UDP (DNS) datagrams: every limit of the
/// fragment table (`decode::defrag`), attacker-controlled like any table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DefragSection {
    /// Datagrams in progress at once; the oldest is given up first (Suricata's
    /// defrag `trackers` default 65535; 4096 covers a busy resolver's EDNS
    /// answers, ~1 KiB of bookkeeping each without data).
    pub max_datagrams: usize,
    /// Bytes of one datagram: 65535, the 16-bit IPv4 total length (RFC 791)
    /// and IPv6 payload length (RFC 8200; jumbograms are never fragmented).
    pub max_datagram_bytes: usize,
    /// Bytes held by the whole table (Suricata's defrag `memcap` is 32 MiB).
    pub max_total_bytes: usize,
    /// Fragments of one datagram, duplicates included: 65535 bytes in 8-byte
    /// pieces would be 8192; real stacks send 1280-1500-byte fragments, and
    /// dnscap's test cuts a query into 24-byte ones.
    pub max_fragments_per_datagram: usize,
    /// Seconds of packet time from a datagram's first fragment before it is
    /// given up (Linux `ipfrag_time` 30 s; RFC 791 suggests 15 s at least).
    pub timeout_secs: f64,
}

impl Default for DefragSection {
    fn default() -> Self {
        let d = crate::decode::defrag::DefragLimits::default();
        DefragSection {
            max_datagrams: d.max_datagrams,
            max_datagram_bytes: d.max_datagram_bytes,
            max_total_bytes: d.max_total_bytes,
            max_fragments_per_datagram: d.max_fragments_per_datagram,
            timeout_secs: d.timeout_micros as f64 / 1e6,
        }
    }
}

impl DefragSection {
    pub fn limits(&self) -> crate::decode::defrag::DefragLimits {
        crate::decode::defrag::DefragLimits {
            max_datagrams: self.max_datagrams,
            max_datagram_bytes: self.max_datagram_bytes,
            max_total_bytes: self.max_total_bytes,
            max_fragments_per_datagram: self.max_fragments_per_datagram,
            timeout_micros: (self.timeout_secs * 1e6).round() as i64,
        }
    }

    fn validate(&self) -> Result<(), String> {
        let bounded = [
            ("defrag.max_datagrams", self.max_datagrams, 1, 10_000_000),
            (
                "defrag.max_datagram_bytes",
                self.max_datagram_bytes,
                8,
                65_535,
            ),
            (
                "defrag.max_total_bytes",
                self.max_total_bytes,
                1024,
                1 << 34,
            ),
            (
                "defrag.max_fragments_per_datagram",
                self.max_fragments_per_datagram,
                1,
                8192,
            ),
        ];
        for (k, v, lo, hi) in bounded {
            if !(lo..=hi).contains(&v) {
                return Err(format!("{k} must be between {lo} and {hi}, not {v}"));
            }
        }
        if self.max_datagram_bytes > self.max_total_bytes {
            return Err("defrag.max_datagram_bytes must not exceed defrag.max_total_bytes".into());
        }
        if !(self.timeout_secs.is_finite()
            && self.timeout_secs > 0.0
            && self.timeout_secs <= 3600.0)
        {
            return Err(format!(
                "defrag.timeout_secs must be above 0 and at most 3600, not {}",
                self.timeout_secs
            ));
        }
        Ok(())
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
    if !(1..=MAX_CAPTURE_THREADS).contains(&p.capture_threads) {
        return Err(format!(
            "pipeline.capture_threads must be between 1 and {MAX_CAPTURE_THREADS}, not {}",
            p.capture_threads
        ));
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
    c.defrag.validate()?;
    for (i, o) in c.outputs.iter().enumerate() {
        output_spec(o).map_err(|m| format!("output #{}: {m}", i + 1))?;
    }
    let rules: Vec<&str> = crate::detect::rules()
        .iter()
        .map(|r| r.info().name)
        .collect();
    crate::action::config::check(&c.actions, &c.action_limits, &rules)?;
    Ok(())
}

/// `-o` values: a path, `-`, or a URL with `?key=value&...` options (the
/// keys of `[[output]]`; `datasets` comma-separated).
pub fn output_url(arg: &str) -> Result<OutputSection, String> {
    let (url, query) = match arg.split_once("://") {
        Some(_) => arg.split_once('?').unwrap_or((arg, "")),
        None => (arg, ""),
    };
    let mut o = OutputSection {
        url: url.to_owned(),
        ..OutputSection::default()
    };
    for kv in query.split('&').filter(|kv| !kv.is_empty()) {
        let (k, v) = kv
            .split_once('=')
            .ok_or_else(|| format!("{arg}: option {kv:?} is not key=value"))?;
        let num = |v: &str| {
            v.parse::<f64>()
                .map_err(|_| format!("{arg}: {k} must be a number"))
        };
        match k {
            "name" => o.name = Some(v.into()),
            "datasets" => o.datasets = Some(v.split(',').map(str::to_owned).collect()),
            "queue" => o.queue = Some(num(v)? as usize),
            "drain_secs" => o.drain_secs = Some(num(v)?),
            "format" => o.format = Some(v.into()),
            "facility" => o.facility = Some(v.into()),
            "ca" => o.ca = Some(v.into()),
            "cert" => o.cert = Some(v.into()),
            "key" => o.key = Some(v.into()),
            "server_name" => o.server_name = Some(v.into()),
            // librdkafka properties (`linger.ms`, ...), and its `debug` contexts.
            _ if k.contains('.') || k == "debug" => {
                o.properties.insert(k.into(), v.into());
            }
            _ => return Err(format!("{arg}: unknown option {k:?}")),
        }
    }
    Ok(o)
}

fn host_port(rest: &str, scheme: &str) -> Result<(String, String), String> {
    let addr = rest.trim_end_matches('/');
    let (host, port) = addr
        .rsplit_once(':')
        .ok_or_else(|| format!("{scheme}://{rest}: needs HOST:PORT"))?;
    if host.is_empty() || port.parse::<u16>().is_err() {
        return Err(format!("{scheme}://{rest}: needs HOST:PORT"));
    }
    Ok((addr.to_owned(), host.trim_matches(['[', ']']).to_owned()))
}

/// Checks one output and builds what the sink needs.
pub fn output_spec(o: &OutputSection) -> Result<OutputSpec, String> {
    let datasets = match &o.datasets {
        Some(d) => tee::parse_datasets(d).map_err(|e| format!("{}: {e}", o.url))?,
        None => crate::output::lines::Datasets::ALL,
    };
    let format = match o.format.as_deref() {
        None | Some("rfc5424") => Format::Rfc5424,
        Some("rfc3164") => Format::Rfc3164,
        Some(f) => return Err(format!("{}: format {f:?} is not rfc5424 or rfc3164", o.url)),
    };
    let facility = match o.facility.as_deref() {
        None => 16,
        Some(f) => syslog::facility(f).ok_or_else(|| {
            format!(
                "{}: unknown syslog facility {f:?} (local0..local7, daemon, ...)",
                o.url
            )
        })?,
    };
    let url = o.url.as_str();
    let kind = match url.split_once("://") {
        _ if url == "-" => OutputKind::Stdout,
        None if url.is_empty() => return Err("url is empty".into()),
        None => OutputKind::File(url.into()),
        Some((scheme, rest)) => match scheme {
            "file" => OutputKind::File(rest.into()),
            "syslog+udp" | "syslog+tcp" | "syslog+tls" => {
                let (addr, host) = host_port(rest, scheme)?;
                let transport = match scheme {
                    "syslog+udp" => SyslogTransportSpec::Udp(addr),
                    "syslog+tcp" => SyslogTransportSpec::Tcp(addr),
                    _ => {
                        let files = TlsFiles {
                            ca: o.ca.clone(),
                            cert: o.cert.clone(),
                            key: o.key.clone(),
                            server_name: o.server_name.clone(),
                        };
                        if files.ca.is_none() {
                            return Err(format!(
                                "{url}: syslog+tls needs ca (PEM file of the receiver's CA)"
                            ));
                        }
                        if files.cert.is_some() != files.key.is_some() {
                            return Err(format!("{url}: cert and key go together"));
                        }
                        SyslogTransportSpec::Tls(addr, host, files)
                    }
                };
                OutputKind::Syslog {
                    transport,
                    format,
                    facility,
                }
            }
            "syslog+unix" if rest.starts_with('/') => OutputKind::Syslog {
                transport: SyslogTransportSpec::Local(rest.into()),
                format: Format::Local,
                facility,
            },
            "kafka" => {
                let (brokers, topic) = rest
                    .split_once('/')
                    .filter(|(b, t)| !b.is_empty() && !t.is_empty() && !t.contains('/'))
                    .ok_or_else(|| format!("{url}: needs kafka://HOST:PORT[,HOST:PORT]/TOPIC"))?;
                for b in brokers.split(',') {
                    host_port(b, scheme)?;
                }
                OutputKind::Kafka {
                    brokers: brokers.into(),
                    topic: topic.into(),
                    properties: o.properties.clone(),
                }
            }
            "unix" | "unixgram" if rest.starts_with('/') => OutputKind::Unix {
                path: rest.into(),
                datagram: scheme == "unixgram",
            },
            _ => {
                return Err(format!(
                    "{url}: unknown output (a path, -, syslog+udp://, syslog+tcp://, syslog+tls://, syslog+unix:///PATH, kafka://, unix:///PATH, unixgram:///PATH)"
                ));
            }
        },
    };
    if !o.properties.is_empty() && !matches!(kind, OutputKind::Kafka { .. }) {
        return Err(format!("{url}: properties are for kafka outputs"));
    }
    let queue = o.queue.unwrap_or(DEFAULT_OUTPUT_QUEUE);
    if queue == 0 {
        return Err(format!("{url}: queue must be at least 1"));
    }
    let drain = o.drain_secs.unwrap_or(DEFAULT_DRAIN_SECS);
    if !(drain.is_finite() && drain >= 0.0) {
        return Err(format!("{url}: drain_secs must be a number of seconds"));
    }
    Ok(OutputSpec {
        name: o.name.clone().unwrap_or_else(|| url.to_owned()),
        datasets,
        kind,
        queue,
        drain: std::time::Duration::from_secs_f64(drain),
    })
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
    /// The one file output when it is the only output (SIGHUP reopens it);
    /// None for stdout or several outputs.
    pub output: Option<PathBuf>,
    /// Every output; empty = stdout only.
    pub outputs: Vec<OutputSpec>,
    pub metrics_listen: Option<std::net::SocketAddr>,
    pub filter: Option<String>,
    /// `--dry-run`: every action in log mode.
    pub dry_run: bool,
    /// `--publish`: a Kafka output for the per-client bins (issue #16).
    pub publish: Option<OutputSpec>,
    pub file: FileConfig,
    pub engine: EngineConfig,
}

impl Settings {
    pub fn build(common: &Common) -> Result<Settings, ConfigError> {
        let file = match &common.config {
            Some(p) => load(p)?,
            None => FileConfig::default(),
        };
        Self::from_file(file, common)
    }

    /// Settings from a config already read and checked ([`parse`]) and the flags.
    pub fn from_file(mut file: FileConfig, common: &Common) -> Result<Settings, ConfigError> {
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
        if !common.output.is_empty() {
            file.outputs = common
                .output
                .iter()
                .map(|a| output_url(a).map_err(|m| ConfigError(format!("-o {m}"))))
                .collect::<Result<_, _>>()?;
        }
        let mut outputs = Vec::new();
        for o in &file.outputs {
            let spec = output_spec(o).map_err(|m| ConfigError(format!("output {m}")))?;
            let n = outputs
                .iter()
                .filter(|x: &&OutputSpec| x.name == spec.name)
                .count();
            outputs.push(OutputSpec {
                name: if n == 0 {
                    spec.name.clone()
                } else {
                    format!("{}#{}", spec.name, n + 1)
                },
                ..spec
            });
        }
        // One plain file or stdout with every dataset: written as before
        // (no `outputs` in capture_stats, SIGHUP reopens the path).
        let single = match outputs.as_slice() {
            [] => Some(None),
            [o] if o.datasets == crate::output::lines::Datasets::ALL => match &o.kind {
                OutputKind::Stdout => Some(None),
                OutputKind::File(p) => Some(Some(p.clone())),
                _ => None,
            },
            _ => None,
        };
        let output = single.clone().flatten();
        if single.is_some() {
            outputs.clear();
        }
        let publish = common
            .publish
            .as_deref()
            .map(kafka_url)
            .transpose()
            .map_err(|m| ConfigError(format!("--publish {m}")))?;
        let detect = file.detect.clone();
        let engine = EngineConfig {
            classify: ClassifyConfig {
                bins: Bins::new(bin_micros),
                max_clients: file.pipeline.max_clients,
                max_pending: file.pipeline.max_pending_queries,
                local_domains,
                // Set by the engine from the detector's windows.
                idle_bins_closed: 0,
                keep_sketches: common.publish.is_some(),
            },
            detect,
            detection: !common.no_detect,
            overrides: file.clients.clone(),
            decode: DecodeLimits {
                max_tcp_dns_flows: file.pipeline.max_tcp_dns_flows,
                smtp: SmtpLimits {
                    max_flows: file.pipeline.max_smtp_flows,
                    ..SmtpLimits::default()
                },
                defrag: file.defrag.limits(),
            },
        };
        Ok(Settings {
            sensor_name,
            bin_micros,
            workers,
            top: file.pipeline.top,
            stats: common.stats,
            output,
            outputs,
            metrics_listen: common.metrics_listen,
            filter: common.filter.clone(),
            dry_run: common.dry_run,
            publish,
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
            lanes: 1,
            lossless,
            engine: self.engine.clone(),
        }
    }
}

/// A `kafka://HOST:PORT/TOPIC` URL (`--publish`, `detect --from`).
pub fn kafka_url(arg: &str) -> Result<OutputSpec, String> {
    let spec = output_spec(&output_url(arg)?)?;
    match spec.kind {
        OutputKind::Kafka { .. } if cfg!(feature = "kafka") => Ok(spec),
        OutputKind::Kafka { .. } => Err(format!(
            "{arg}: this mxwatch was built without the kafka feature"
        )),
        _ => Err(format!("{arg}: not a kafka://HOST:PORT/TOPIC URL")),
    }
}

/// What `mxwatch detect` needs beyond the common settings.
pub struct DetectSettings {
    pub settings: Settings,
    pub brokers: String,
    pub topic: String,
    pub properties: std::collections::BTreeMap<String, String>,
    pub group: String,
    pub exit_idle: Option<std::time::Duration>,
    pub assemble: crate::cluster::assemble::AssembleConfig,
}

/// Bins a detector's partition keeps open at once (a lagging sensor).
pub const DETECT_MAX_OPEN_BINS: usize = 256;
/// Sensors a detector's partition waits for.
pub const DETECT_MAX_SENSORS: usize = 256;

pub fn detect_settings(a: &crate::cli::DetectArgs) -> Result<DetectSettings, ConfigError> {
    use crate::cluster::assemble::{AssembleConfig, MergeMode};
    let common = Common {
        config: a.config.clone(),
        local_domain: Vec::new(),
        bin: None,
        stats: a.stats,
        top: None,
        no_detect: false,
        output: a.output.clone(),
        metrics_listen: None,
        workers: Some(1),
        filter: None,
        sensor_name: a.sensor_name.clone(),
        dry_run: a.dry_run,
        publish: None,
    };
    let settings = Settings::build(&common)?;
    let spec = kafka_url(&a.from).map_err(|m| ConfigError(format!("--from {m}")))?;
    let OutputKind::Kafka {
        brokers,
        topic,
        properties,
    } = spec.kind
    else {
        unreachable!("kafka_url checked it")
    };
    let merge = match a.merge.as_str() {
        "sum" => MergeMode::Sum,
        "dedup" => MergeMode::Dedup,
        m => {
            return Err(ConfigError(format!(
                "--merge must be sum or dedup, not {m}"
            )));
        }
    };
    let secs = |name: &str, v: f64| {
        if v.is_finite() && (0.0..=86_400.0).contains(&v) {
            Ok(std::time::Duration::from_secs_f64(v))
        } else {
            Err(ConfigError(format!(
                "{name} must be a number of seconds between 0 and 86400, not {v}"
            )))
        }
    };
    if a.group.is_empty() {
        return Err(ConfigError("--group must not be empty".into()));
    }
    Ok(DetectSettings {
        assemble: AssembleConfig {
            detect: settings.engine.detect.clone(),
            overrides: settings.engine.overrides.clone(),
            merge,
            lateness: secs("--lateness", a.lateness)?,
            max_clients: settings.file.pipeline.max_clients,
            max_open_bins: DETECT_MAX_OPEN_BINS,
            max_sensors: DETECT_MAX_SENSORS.max(a.sensors.len()),
            sensors: a.sensors.clone(),
        },
        exit_idle: a.exit_idle.map(|v| secs("--exit-idle", v)).transpose()?,
        brokers,
        topic,
        properties,
        group: a.group.clone(),
        settings,
    })
}

/// Most capture threads per interface (`--threads`, `pipeline.capture_threads`):
/// far beyond any core count a sensor has, small enough that a typo is an error.
pub const MAX_CAPTURE_THREADS: usize = 64;

/// Capture threads per interface: `--threads`, else the config's
/// `pipeline.capture_threads` (validated when loaded).
pub fn capture_threads(args: &LiveArgs, s: &Settings) -> usize {
    args.threads.unwrap_or(s.file.pipeline.capture_threads)
}

/// The flags only `live` has.
pub fn check_live(args: &LiveArgs) -> Result<(), ConfigError> {
    for (i, name) in args.interfaces.iter().enumerate() {
        if args.interfaces[..i].contains(name) {
            return Err(ConfigError(format!(
                "-i {name} given twice: every packet would be counted twice"
            )));
        }
    }
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
    if let Some(n) = args.threads
        && !(1..=MAX_CAPTURE_THREADS).contains(&n)
    {
        return Err(ConfigError(format!(
            "--threads must be between 1 and {MAX_CAPTURE_THREADS}, not {n}"
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

/// The log inputs' settings (`read --bind-querylog/--maillog`).
pub fn log_settings(args: &crate::cli::LogArgs) -> Result<crate::input::LogSettings, ConfigError> {
    let mut servers = crate::input::Servers::default();
    for s in &args.mail_server {
        let bad = || ConfigError(format!("--mail-server {s:?}: want IP or HOST=IP"));
        match s.split_once('=') {
            Some((h, ip)) => servers
                .by_host
                .push((h.to_owned(), ip.parse().map_err(|_| bad())?)),
            None => servers.default = Some(s.parse().map_err(|_| bad())?),
        }
    }
    if let Some(y) = args.log_year
        && !(1970..=9999).contains(&y)
    {
        return Err(ConfigError(format!("--log-year {y}: not a year")));
    }
    Ok(crate::input::LogSettings {
        year: args.log_year,
        servers,
    })
}

/// An output file must not be one of the inputs (appending JSON to a capture).
pub fn check_output_not_input(
    outputs: &[&std::path::Path],
    inputs: &[PathBuf],
) -> Result<(), ConfigError> {
    for o in outputs {
        let Ok(o) = std::fs::canonicalize(o) else {
            continue;
        };
        for i in inputs {
            if std::fs::canonicalize(i).is_ok_and(|i| i == o) {
                return Err(ConfigError(format!(
                    "output {} is also an input: refusing to append JSON lines to it",
                    i.display()
                )));
            }
        }
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
    fn defrag_limits_are_bounded() {
        for (text, key) in [
            ("[defrag]\nmax_datagrams = 0\n", "defrag.max_datagrams"),
            (
                "[defrag]\nmax_datagram_bytes = 70000\n",
                "defrag.max_datagram_bytes",
            ),
            ("[defrag]\ntimeout_secs = 0.0\n", "defrag.timeout_secs"),
            (
                "[defrag]\nmax_total_bytes = 2000\n",
                "defrag.max_datagram_bytes",
            ),
        ] {
            let e = parse(text, "t.toml").unwrap_err().0;
            assert!(e.contains(key) && !e.contains('\n'), "{text}: {e}");
        }
        let c = parse("[defrag]\ntimeout_secs = 2.5\n", "t.toml").unwrap();
        assert_eq!(c.defrag.limits().timeout_micros, 2_500_000);
    }

    #[test]
    fn output_urls_and_sections() {
        let spec = |a: &str| output_spec(&output_url(a).unwrap());
        let o = spec("syslog+tcp://127.0.0.1:514?datasets=detection,capture_stats").unwrap();
        assert_eq!(o.name, "syslog+tcp://127.0.0.1:514");
        assert!(
            !o.datasets
                .contains(crate::output::lines::Dataset::ClientStats)
        );
        assert!(matches!(o.kind, OutputKind::Syslog { .. }));
        let o = spec("kafka://a:9092,b:9092/mx?queue=5&linger.ms=10").unwrap();
        match o.kind {
            OutputKind::Kafka {
                brokers,
                topic,
                properties,
            } => {
                assert_eq!((brokers.as_str(), topic.as_str()), ("a:9092,b:9092", "mx"));
                assert_eq!(properties["linger.ms"], "10");
            }
            k => panic!("{k:?}"),
        }
        assert_eq!(o.queue, 5);
        assert!(matches!(
            spec("out.jsonl").unwrap().kind,
            OutputKind::File(_)
        ));
        assert!(matches!(spec("-").unwrap().kind, OutputKind::Stdout));
        assert!(matches!(
            spec("unixgram:///run/x.sock").unwrap().kind,
            OutputKind::Unix { datagram: true, .. }
        ));
        for bad in [
            "syslog+tcp://host",
            "syslog+tls://h:6514",
            "kafka://h:9092",
            "gopher://x",
            "syslog+udp://h:514?datasets=alerts",
            "syslog+udp://h:514?format=rfc9999",
        ] {
            let e = output_url(bad).and_then(|o| output_spec(&o)).unwrap_err();
            assert!(!e.contains('\n'), "{e}");
        }
        let e = parse(
            "[[output]]\nurl = \"syslog+udp://h:1\"\nfacility = \"nope\"\n",
            "t.toml",
        )
        .unwrap_err()
        .0;
        assert!(e.contains("output #1") && e.contains("facility"), "{e}");
        let e = parse("[[output]]\nurl = \"x\"\nqeue = 1\n", "t.toml")
            .unwrap_err()
            .0;
        assert!(e.contains("line 3") && e.contains("qeue"), "{e}");
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
            "[pipeline]\ncapture_threads = 0\n",
            "[pipeline]\ncapture_threads = 65\n",
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
