//! Output: closed bins, alerts and sensor health -> JSON lines.
//!
//! Input: per-bin client records and alerts (already merged across shards and
//! sorted), and capture statistics. Output: one JSON object per line, handed
//! to a [`lines::LineSink`]: stdout or a file, or several outputs at once
//! ([`tee`]: files, [`syslog`], [`kafka`], [`unix`] sockets, each network
//! output behind its own bounded queue and thread). /metrics: [`metrics`].
//! Every line type lives here: its field names
//! ([`schema`], [`alert`], [`health`]) and its sentences ([`reason`]). Lines
//! of a bin are written in a fixed order (client_stats by rank, then alerts
//! by time, rule and address), so a file gives byte-identical output
//! whatever the number of shards.

pub mod action;
pub mod alert;
pub mod file;
pub mod health;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod lines;
pub mod metrics;
pub mod queue;
pub mod reason;
pub mod schema;
pub mod summary;
pub mod syslog;
pub mod tee;
pub mod topk;
pub mod unix;

use std::io::{self, Write};

use serde::Serialize;

use crate::classify::{ClientBin, ClientRecord, ClosedBin, DnsCounts, SmtpCounts};
use crate::detect::Alert;
use crate::time::rfc3339_micros;
pub use health::{CaptureSnapshot, ClassifierHealth};
use lines::{Dataset, LineMeta, LineSink, WriterLines};
use schema::{ClientStatsBody, ClientStatsLine, Event, Ip, Observer};

/// Where lines go: the JSON [`Output`], or the report's in-process collector.
pub trait Sink: Send {
    /// One closed bin (active clients only) and its alerts, in line order.
    fn bin_lines(&mut self, bin: &ClosedBin, alerts: &[Alert]) -> io::Result<()>;
    /// A capture_stats line (sensor health) with the classifiers' numbers.
    fn capture_stats(&mut self, snap: &CaptureSnapshot, h: &ClassifierHealth) -> io::Result<()>;
    /// Replaces the writer (log rotation); sinks without a file ignore it.
    fn reopen(&mut self, w: Box<dyn Write + Send>) -> io::Result<()> {
        let _ = w;
        Ok(())
    }
    /// An `mxwatch.action` line (issue #17); sinks without lines ignore it.
    fn action_line(&mut self, r: &action::ActionRecord) -> io::Result<()> {
        let _ = r;
        Ok(())
    }
    fn flush(&mut self) -> io::Result<()>;
    /// End of the run: flush and let network outputs drain (bounded wait).
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }
}

pub struct Output {
    lines: Box<dyn LineSink>,
    /// The line being serialized (reused).
    buf: Vec<u8>,
    /// /metrics, updated with every capture_stats line and alert start.
    metrics: Option<std::sync::Arc<metrics::Metrics>>,
    observer_name: String,
    /// Write client_stats lines (`--stats`).
    pub client_stats: bool,
    /// Clients with their own line per bin; the rest are folded into one.
    pub top: usize,
    pub bin_micros: i64,
}

impl Output {
    pub fn new(
        w: Box<dyn Write + Send>,
        observer_name: String,
        client_stats: bool,
        top: usize,
        bin_micros: i64,
    ) -> Self {
        Self::with_lines(
            Box::new(WriterLines(w)),
            observer_name,
            client_stats,
            top,
            bin_micros,
        )
    }

    /// An output to any [`LineSink`] (several outputs: [`tee::Tee`]).
    pub fn with_lines(
        lines: Box<dyn LineSink>,
        observer_name: String,
        client_stats: bool,
        top: usize,
        bin_micros: i64,
    ) -> Self {
        Output {
            lines,
            buf: Vec::with_capacity(4096),
            metrics: None,
            observer_name,
            client_stats,
            top,
            bin_micros,
        }
    }

    /// Serves the numbers of every capture_stats line on /metrics.
    pub fn set_metrics(&mut self, m: std::sync::Arc<metrics::Metrics>) {
        self.metrics = Some(m);
    }

    /// Serializes `value` once and hands it to the sink.
    pub fn line<T: Serialize>(&mut self, meta: &LineMeta<'_>, value: &T) -> io::Result<()> {
        self.buf.clear();
        serde_json::to_writer(&mut self.buf, value)?;
        self.lines.line(meta, &self.buf)
    }

    /// Writes one closed bin: client_stats (if enabled) then alerts.
    pub fn write_bin(&mut self, bin: &ClosedBin, alerts: &[Alert]) -> io::Result<()> {
        let (start, end) = (bin.start, bin.end);
        let mut clients: Vec<&ClientRecord> = bin.active().collect();
        if self.client_stats && !clients.is_empty() {
            clients.sort_by(|a, b| {
                activity(&b.bin)
                    .cmp(&activity(&a.bin))
                    .then(a.ip.cmp(&b.ip))
            });
            let folded = if clients.len() > self.top {
                clients.split_off(self.top)
            } else {
                Vec::new()
            };
            for r in &clients {
                let body = ClientStatsBody::of(r, self.bin_micros as f64 / 1e6);
                self.stats_line(start, end, Some(*r), body)?;
            }
            if !folded.is_empty() {
                let mut dns = DnsCounts::default();
                let mut smtp = SmtpCounts::default();
                for r in &folded {
                    dns.add(&r.bin.dns);
                    smtp.add(&r.bin.smtp);
                }
                let body = ClientStatsBody {
                    schema_version: schema::SCHEMA_VERSION,
                    bin_seconds: self.bin_micros as f64 / 1e6,
                    dns: (&dns).into(),
                    smtp: (&smtp).into(),
                    local_domain: None,
                    folded_clients: Some(folded.len() as u64),
                };
                self.stats_line(start, end, None, body)?;
            }
        }
        for a in alerts {
            let name = self.observer_name.clone();
            let observer = Observer::new(&name);
            let meta = LineMeta {
                dataset: Dataset::Detection,
                client: Some(a.ip),
                rule: Some(a.rule.name),
                kind: Some(alert::phase_name(a.phase)),
                severity: Some(a.rule.severity),
            };
            self.line(&meta, &alert::AlertLine::of(a, &observer))?;
            if let Some(m) = &self.metrics {
                m.alert(a.rule.name, alert::phase_name(a.phase));
            }
        }
        Ok(())
    }

    fn stats_line(
        &mut self,
        start: i64,
        end: i64,
        r: Option<&ClientRecord>,
        body: ClientStatsBody,
    ) -> io::Result<()> {
        let name = self.observer_name.clone();
        let observer = Observer::new(&name);
        let line = ClientStatsLine {
            timestamp: rfc3339_micros(start),
            event: Event {
                kind: "metric",
                dataset: "mxwatch.client_stats",
                kind_of: None,
                start: rfc3339_micros(start),
                end: rfc3339_micros(end),
                severity: None,
                reason: None,
            },
            observer: &observer,
            source: r.map(|r| Ip {
                ip: r.ip.to_string(),
            }),
            destination: r
                .and_then(|r| r.bin.main_server())
                .map(|s| Ip { ip: s.to_string() }),
            mxwatch: body,
        };
        let meta = LineMeta::metric(Dataset::ClientStats, r.map(|r| r.ip));
        self.line(&meta, &line)
    }

    pub fn observer_name(&self) -> &str {
        &self.observer_name
    }
}

impl Sink for Output {
    fn bin_lines(&mut self, bin: &ClosedBin, alerts: &[Alert]) -> io::Result<()> {
        self.write_bin(bin, alerts)
    }

    fn capture_stats(&mut self, snap: &CaptureSnapshot, h: &ClassifierHealth) -> io::Result<()> {
        let name = self.observer_name.clone();
        let observer = Observer::new(&name);
        let outputs = self.lines.stats();
        let line = health::line(snap, h, &observer, &outputs);
        if let Some(m) = &self.metrics {
            m.capture_stats(&line);
        }
        self.line(&LineMeta::metric(Dataset::CaptureStats, None), &line)
    }

    /// Log rotation: the file output(s) reopened, the old one flushed first.
    fn reopen(&mut self, w: Box<dyn Write + Send>) -> io::Result<()> {
        self.lines.reopen(w)
    }

    fn action_line(&mut self, r: &action::ActionRecord) -> io::Result<()> {
        let name = self.observer_name.clone();
        let observer = Observer::new(&name);
        let line = action::ActionLine::of(r, &observer);
        self.line(&LineMeta::metric(Dataset::Action, r.client), &line)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.lines.flush()
    }

    fn close(&mut self) -> io::Result<()> {
        self.lines.close()
    }
}

/// Rank of a client in a bin: what it did, DNS and SMTP.
fn activity(b: &ClientBin) -> u64 {
    b.dns.queries + b.dns.responses + b.smtp.connections + b.smtp.outbound + b.smtp.mail_from
}
