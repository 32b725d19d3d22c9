//! Command-line flags (clap definitions only; validation is in `config`).

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "mxwatch",
    version,
    about = "Passive sensor: finds mail servers in trouble (spam relay, backscatter) from their DNS and SMTP traffic",
    long_about = "mxwatch decodes DNS (port 53) and SMTP (port 25) from pcap/pcapng files or live \
interfaces, keeps per-client counters in time bins, and writes detections (spam_relay, backscatter, \
dns_query_flood, smtp_alpha, smtp_user_unknown_flood, smtp_outbound_flood) as JSON lines. \
Output schema: SCHEMA.md."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read pcap/pcapng files (merged by packet time, or one after another with --in-order) and write JSON lines.
    #[command(after_help = "Examples:
  mxwatch read capture.pcap --summary                     alerts as JSON lines, a summary on stderr
  mxwatch read --config lab.toml dns.pcap smtp.pcap        two taps of the same period, merged by time
  mxwatch read --stats --bin 300 day.pcap.gz -o day.jsonl  per-client counters every 5 minutes")]
    Read(ReadArgs),
    /// Capture on live interfaces and write JSON lines until SIGINT/SIGTERM.
    #[command(after_help = "Examples:
  mxwatch live -i eth1 --user mxwatch -o /var/log/mxwatch/mxwatch.jsonl
  mxwatch live -i eth1 -i eth2 --local-domain sub.univ.ac.jp --user mxwatch
  mxwatch live -i eth1 --threads 4 --user mxwatch           a busy link: 4 capture threads (AF_PACKET fanout)
  mxwatch live -i any --allow-root --stats-interval 10     quick look, as root, on every interface")]
    Live(LiveArgs),
    /// One member of a detector group: reads the per-client bins sensors publish
    /// (`--publish`) from Kafka, merges them across sensors, detects, writes alerts.
    #[command(after_help = "Examples:
  mxwatch detect --from kafka://broker:9092/mxwatch-bins --group mxwatch -o alerts.jsonl
  mxwatch detect --from kafka://b1:9092,b2:9092/bins --group mx --merge dedup --config site.toml
Start as many as the topic has partitions to share the clients; see docs/scale.md.")]
    Detect(DetectArgs),
    /// Print the commented default configuration, or check a config file (--check FILE).
    Config(ConfigArgs),
    /// Tables and plots for a person: per-client qtype/rcode table by day or hour,
    /// rate curves, total vs unresolved regression, alpha and the D_q model.
    #[command(after_help = "Examples:
  mxwatch report capture.pcap --out report/               every busy client, bins chosen for the span
  mxwatch report --client 192.0.2.25 --bin 3600 week.pcap   one mail server, hour by hour")]
    Report(ReportArgs),
    /// Print shell completions to stdout (e.g. `mxwatch completions bash > /etc/bash_completion.d/mxwatch`).
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// Print the man page (roff) to stdout (`mxwatch man | man -l -`).
    Man,
}

#[derive(Debug, Args, Clone)]
pub struct Common {
    /// TOML config file (see `mxwatch config --print-default`); flags override it.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Local search domain of the monitored mail servers (repeatable); without one, each client's is learnt.
    #[arg(long = "local-domain", value_name = "DOMAIN")]
    pub local_domain: Vec<String>,
    /// Bin size in seconds for counters and detections [default: 60, or the config's].
    #[arg(long, value_name = "SECS")]
    pub bin: Option<f64>,
    /// Write a mxwatch.client_stats line per client per bin.
    #[arg(long)]
    pub stats: bool,
    /// Clients with their own client_stats line per bin; the rest are folded into one line [default: 100].
    #[arg(long, value_name = "N")]
    pub top: Option<usize>,
    /// Do not run the detection rules (counters only).
    #[arg(long)]
    pub no_detect: bool,
    /// Output (repeatable: several at once): a file path, `-` (stdout), or a URL:
    /// syslog+udp://HOST:PORT, syslog+tcp://HOST:PORT, syslog+tls://HOST:PORT?ca=FILE,
    /// syslog+unix:///dev/log, kafka://HOST:PORT/TOPIC, unix:///PATH, unixgram:///PATH;
    /// `?datasets=detection,client_stats` selects lines (default all). Replaces the
    /// config's [[output]] sections; default stdout. See docs/outputs.md.
    #[arg(short, long, value_name = "FILE|URL")]
    pub output: Vec<String>,
    /// Serve Prometheus metrics (the capture_stats numbers, alerts by rule) on http://ADDR/metrics.
    #[arg(long, value_name = "ADDR")]
    pub metrics_listen: Option<std::net::SocketAddr>,
    /// Classifier threads (clients are sharded by address) [default: one per core].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// BPF filter applied by libpcap. Default for files: none (the decoder picks ports 53 and 25 at any VLAN depth); live: "port 53 or port 25" and non-first IP fragments, nested for one and two VLAN tags (plain where the link type has no VLANs, e.g. -i any).
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,
    /// Sensor name written as observer.name [default: host name].
    #[arg(long, value_name = "NAME")]
    pub sensor_name: Option<String>,
    /// Run no [[action]] command, whatever its mode: write the mxwatch.action line of what would run.
    #[arg(long)]
    pub dry_run: bool,
    /// Also publish every closed per-client bin to Kafka for a detector group
    /// (`mxwatch detect`): kafka://HOST:PORT[,HOST:PORT]/TOPIC. The topic must
    /// exist. Local detection and outputs go on as without it (--no-detect to
    /// leave detection to the group). See docs/scale.md.
    #[arg(long, value_name = "URL")]
    pub publish: Option<String>,
}

#[derive(Debug, Args)]
pub struct DetectArgs {
    /// The topic sensors publish to: kafka://HOST:PORT[,HOST:PORT]/TOPIC
    /// (`?property=value` sets librdkafka consumer properties).
    #[arg(long, value_name = "URL")]
    pub from: String,
    /// Consumer group: processes of one group share the topic's partitions.
    #[arg(long, value_name = "NAME", default_value = "mxwatch-detect")]
    pub group: String,
    /// How bins of one client from several sensors combine: `sum` (sensors see
    /// different traffic) or `dedup` (sensors see the same traffic).
    #[arg(long, value_name = "MODE", default_value = "sum")]
    pub merge: String,
    /// The sensors that publish (their --sensor-name, comma-separated): a bin
    /// closes once each has passed it (or after --lateness). Without it, the
    /// sensors seen so far: give it when the group starts before the sensors or
    /// reads a backlog published one sensor after the other.
    #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
    pub sensors: Vec<String>,
    /// Seconds a bin that one sensor has closed waits for the other sensors.
    #[arg(long, value_name = "SECS", default_value_t = 30.0)]
    pub lateness: f64,
    /// Exit after this many seconds without a message (every open bin closes and
    /// incidents end, as at the end of `read`) [default: run until SIGINT/SIGTERM].
    #[arg(long, value_name = "SECS")]
    pub exit_idle: Option<f64>,
    /// TOML config file: the [detect] and [[client]] settings, outputs, actions.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Output (repeatable), as for `read`.
    #[arg(short, long, value_name = "FILE|URL")]
    pub output: Vec<String>,
    /// Write a mxwatch.client_stats line per merged client per bin.
    #[arg(long)]
    pub stats: bool,
    /// Name written as observer.name [default: host name].
    #[arg(long, value_name = "NAME")]
    pub sensor_name: Option<String>,
    /// Run no [[action]] command, whatever its mode.
    #[arg(long)]
    pub dry_run: bool,
}

#[derive(Debug, Args)]
pub struct ReadArgs {
    /// Capture files (pcap with micro- or nanosecond timestamps, or pcapng; Ethernet, Linux
    /// cooked, raw IP or loopback: other link types are refused, exit 1 after the other files)
    /// and dnstap files (Frame Streams, as `dnstap-output file` writes; recognised by content).
    #[arg(required_unless_present_any = ["bind_querylog", "maillog"], value_name = "FILE")]
    pub files: Vec<PathBuf>,
    #[command(flatten)]
    pub common: Common,
    #[command(flatten)]
    pub logs: LogArgs,
    /// Never show a progress line on stderr.
    #[arg(long)]
    pub no_progress: bool,
    /// At the end, a short summary for a person on stderr: packets read, busiest
    /// clients, alerts started and why [default: when stderr is a terminal].
    #[arg(long, overrides_with = "no_summary")]
    pub summary: bool,
    /// No summary on stderr, even on a terminal.
    #[arg(long)]
    pub no_summary: bool,
    /// Merge the files by packet time (the default; kept for scripts that pass it).
    #[arg(long, conflicts_with = "in_order")]
    pub merge: bool,
    /// Read the files one after another, in the order given, instead of merging
    /// them by packet time. Files of the same period (a DNS and an SMTP tap) read
    /// in order would look like a burst: mxwatch warns when their times overlap.
    #[arg(long)]
    pub in_order: bool,
}

/// Log inputs (`read`): merged by time with everything else read.
#[derive(Debug, Args, Clone, Default)]
pub struct LogArgs {
    /// BIND query log files (`category queries`; file channel or syslog, BIND 9.11-9.20).
    /// Takes every file that follows: put capture files before it.
    #[arg(long = "bind-querylog", value_name = "FILE", num_args = 1..)]
    pub bind_querylog: Vec<PathBuf>,
    /// Postfix maillog files (syslog or maillog_file): connect, client=, RCPT rejects, smtp deliveries.
    /// Takes every file that follows: put capture files before it.
    #[arg(long = "maillog", value_name = "FILE", num_args = 1..)]
    pub maillog: Vec<PathBuf>,
    /// The mail server's address in the maillog: IP (every host), or HOST=IP for the
    /// syslog host name HOST (repeatable). A host that is an address needs none.
    #[arg(long = "mail-server", value_name = "[HOST=]IP")]
    pub mail_server: Vec<String>,
    /// Year of year-less syslog time stamps [default: from each file's modification time].
    #[arg(long = "log-year", value_name = "YYYY")]
    pub log_year: Option<i64>,
}

#[derive(Debug, Args)]
pub struct LiveArgs {
    /// Interface to capture on (repeatable: one capture thread each).
    #[arg(
        short,
        long = "interface",
        required_unless_present = "dnstap",
        value_name = "IFACE"
    )]
    pub interfaces: Vec<String>,
    /// Listen for dnstap from DNS servers on a unix socket: `unix:/run/mxwatch/dnstap.sock`
    /// (Frame Streams, bidirectional; BIND `dnstap-output unix`, Unbound `dnstap-socket-path`).
    /// Several servers may connect at once.
    #[arg(long, value_name = "unix:PATH", conflicts_with = "interfaces")]
    pub dnstap: Option<String>,
    #[command(flatten)]
    pub common: Common,
    /// Bytes kept per packet.
    #[arg(long, default_value_t = 1600)]
    pub snaplen: i32,
    /// Kernel capture buffer in bytes.
    #[arg(long, default_value_t = 32 * 1024 * 1024)]
    pub buffer_size: i32,
    /// Do not put the interfaces in promiscuous mode.
    #[arg(long)]
    pub no_promisc: bool,
    /// Seconds between capture_stats lines.
    #[arg(long, default_value_t = 60.0)]
    pub stats_interval: f64,
    /// After opening the interfaces, switch to this user (and its group).
    #[arg(long, value_name = "NAME")]
    pub user: Option<String>,
    /// Keep running as root (without --user); not recommended.
    #[arg(long)]
    pub allow_root: bool,
    /// Batches queued per classifier before the capture drops (and counts) a batch.
    #[arg(long, value_name = "N")]
    pub channel_batches: Option<usize>,
    /// Capture threads per interface (1-64): N libpcap handles joined in one AF_PACKET
    /// fanout group (flow hash: both directions of a flow reach the same thread), each
    /// with its own decoder; counts and alerts are those of one thread [default: 1, or the
    /// config's pipeline.capture_threads]. Linux packet sockets only (not nflog, ...).
    #[arg(long, value_name = "N", conflicts_with = "dnstap")]
    pub threads: Option<usize>,
}

#[derive(Debug, Args)]
pub struct ConfigArgs {
    /// Print the default configuration, commented, as TOML.
    #[arg(long)]
    pub print_default: bool,
    /// Check a config file and print it with every default filled in.
    #[arg(long, value_name = "FILE", conflicts_with = "print_default")]
    pub check: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    /// Capture files (pcap or pcapng, as for `read`), merged by packet time.
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
    /// Client to report on (repeatable); default: the --top most active clients.
    #[arg(long = "client", value_name = "IP")]
    pub clients: Vec<std::net::IpAddr>,
    /// Directory for the CSV, HTML and plots (created if missing).
    #[arg(long, value_name = "DIR", default_value = "mxwatch-report")]
    pub out: PathBuf,
    /// Time resolution of the curves in seconds, snapped to a divisor of 3600
    /// [default: capture span / 100, clamped to 1..3600].
    #[arg(long, value_name = "SECS")]
    pub bin: Option<f64>,
    /// Clients reported when none is named.
    #[arg(long, value_name = "N", default_value_t = 5)]
    pub top: usize,
    /// TOML config file (as for `read`); its bin size drives the detections.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Local search domain of the monitored mail servers (repeatable), as for `read`.
    #[arg(long = "local-domain", value_name = "DOMAIN")]
    pub local_domain: Vec<String>,
    /// Classifier threads [default: cores - 1, at least 1].
    #[arg(long, value_name = "N")]
    pub workers: Option<usize>,
    /// BPF filter applied by libpcap.
    #[arg(long, value_name = "BPF")]
    pub filter: Option<String>,
    /// D_q model: DNS lookups per destination domain (the paper: 2 for Postfix, 4 for old sendmail).
    #[arg(long, value_name = "K", default_value_t = 2.0)]
    pub dq_k: f64,
    /// D_q model: share q of received mail, N_S(r)/(N_S(r)+N_S(t)) [default: from the wire,
    /// inbound sessions / (inbound + outbound sessions)].
    #[arg(long, value_name = "Q")]
    pub dq_q: Option<f64>,
    /// Never show a progress bar on stderr.
    #[arg(long)]
    pub no_progress: bool,
}
