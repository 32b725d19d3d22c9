//! Output: closed bins, alerts and sensor health -> JSON lines.
//!
//! Input: per-bin client records and alerts (already merged across shards and
//! sorted), and capture statistics. Output: one JSON object per line on a
//! `Write` (stdout or a file). Every line type lives here: its field names
//! ([`schema`], [`alert`], [`health`]) and its sentences ([`reason`]). Lines
//! of a bin are written in a fixed order (client_stats by rank, then alerts
//! by time, rule and address), so a file gives byte-identical output
//! whatever the number of shards.

pub mod action;
pub mod alert;
pub mod health;
pub mod reason;
pub mod schema;

use std::io::{self, Write};

use serde::Serialize;

use crate::classify::{ClientBin, ClientRecord, ClosedBin, DnsCounts, SmtpCounts};
use crate::detect::Alert;
use crate::time::rfc3339_micros;
pub use health::{CaptureSnapshot, ClassifierHealth};
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
    /// The end of the run: what is pending is finished, then flushed.
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }
}

pub struct Output {
    w: Box<dyn Write + Send>,
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
        Output {
            w,
            observer_name,
            client_stats,
            top,
            bin_micros,
        }
    }

    pub fn line<T: Serialize>(&mut self, value: &T) -> io::Result<()> {
        serde_json::to_writer(&mut self.w, value)?;
        self.w.write_all(b"\n")?;
        Ok(())
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
            let observer = Observer::new(&self.observer_name);
            serde_json::to_writer(&mut self.w, &alert::AlertLine::of(a, &observer))?;
            self.w.write_all(b"\n")?;
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
        let observer = Observer::new(&self.observer_name);
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
        serde_json::to_writer(&mut self.w, &line)?;
        self.w.write_all(b"\n")?;
        Ok(())
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
        let observer = Observer::new(&self.observer_name);
        let line = health::line(snap, h, &observer);
        serde_json::to_writer(&mut self.w, &line)?;
        self.w.write_all(b"\n")
    }

    /// Replaces the writer (log rotation), flushing the old one first.
    fn reopen(&mut self, w: Box<dyn Write + Send>) -> io::Result<()> {
        self.w.flush()?;
        self.w = w;
        Ok(())
    }

    fn action_line(&mut self, r: &action::ActionRecord) -> io::Result<()> {
        let observer = Observer::new(&self.observer_name);
        serde_json::to_writer(&mut self.w, &action::ActionLine::of(r, &observer))?;
        self.w.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.w.flush()
    }
}

/// Rank of a client in a bin: what it did, DNS and SMTP.
fn activity(b: &ClientBin) -> u64 {
    b.dns.queries + b.dns.responses + b.smtp.connections + b.smtp.outbound + b.smtp.mail_from
}
