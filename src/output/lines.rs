//! Serialized lines and where they go: the seam between the JSON [`Output`]
//! and its destinations.
//!
//! [`Output`](super::Output) serializes every line once and hands the bytes
//! (without the newline) with a [`LineMeta`] (dataset, client, rule,
//! severity) to a [`LineSink`]: a file or stdout ([`WriterLines`]), or the
//! [`Tee`](super::tee::Tee) of several outputs, each with its own dataset
//! selection. Every destination receives the same bytes.

use std::io::{self, Write};
use std::net::IpAddr;

use serde::Serialize;

/// The three line types (`event.dataset`), as selected per output.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub enum Dataset {
    Detection,
    ClientStats,
    CaptureStats,
    Action,
}

impl Dataset {
    pub const ALL: [Dataset; 4] = [
        Dataset::Detection,
        Dataset::ClientStats,
        Dataset::CaptureStats,
        Dataset::Action,
    ];

    /// `event.dataset` of the line.
    pub fn name(self) -> &'static str {
        match self {
            Dataset::Detection => "mxwatch.detection",
            Dataset::ClientStats => "mxwatch.client_stats",
            Dataset::CaptureStats => "mxwatch.capture_stats",
            Dataset::Action => "mxwatch.action",
        }
    }

    /// The short name used in `datasets = [...]` and `?datasets=`.
    pub fn short(self) -> &'static str {
        match self {
            Dataset::Detection => "detection",
            Dataset::ClientStats => "client_stats",
            Dataset::CaptureStats => "capture_stats",
            Dataset::Action => "action",
        }
    }

    pub fn parse(s: &str) -> Option<Dataset> {
        let s = s.trim();
        let s = s.strip_prefix("mxwatch.").unwrap_or(s);
        Dataset::ALL.into_iter().find(|d| d.short() == s)
    }

    pub fn bit(self) -> u8 {
        1 << self as u8
    }
}

/// A set of datasets (bit per [`Dataset`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Datasets(pub u8);

impl Datasets {
    pub const ALL: Datasets = Datasets(0b1111);

    pub fn contains(self, d: Dataset) -> bool {
        self.0 & d.bit() != 0
    }

    pub fn of(list: &[Dataset]) -> Datasets {
        Datasets(list.iter().fold(0, |m, d| m | d.bit()))
    }
}

/// What a sink needs to know about a line besides its bytes.
#[derive(Debug, Clone, Copy)]
pub struct LineMeta<'a> {
    pub dataset: Dataset,
    /// `source.ip`: the client (Kafka key, syslog structured data).
    pub client: Option<IpAddr>,
    /// `rule.name` of an alert.
    pub rule: Option<&'a str>,
    /// `event.type` of an alert (`start`, `info`, `end`).
    pub kind: Option<&'a str>,
    /// `event.severity` (0-100) of an alert.
    pub severity: Option<u8>,
}

impl LineMeta<'_> {
    pub fn metric(dataset: Dataset, client: Option<IpAddr>) -> LineMeta<'static> {
        LineMeta {
            dataset,
            client,
            rule: None,
            kind: None,
            severity: None,
        }
    }
}

/// Numbers of one output, as written in capture_stats (`outputs`) and /metrics.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct OutputStat {
    #[serde(skip)]
    pub name: String,
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Lines selected for this output.
    pub lines: u64,
    /// Lines handed to the receiver (Kafka: acknowledged by the broker).
    pub sent: u64,
    /// Lines lost: queue full, send failed, or still queued at exit.
    pub dropped: u64,
    /// Lines waiting in the queue now.
    pub queued: u64,
    /// Connections (re)established after the first.
    pub reconnects: u64,
    /// Connect and send errors.
    pub errors: u64,
}

/// Where serialized lines go.
pub trait LineSink: Send {
    /// One line, without its newline.
    fn line(&mut self, meta: &LineMeta<'_>, json: &[u8]) -> io::Result<()>;
    fn flush(&mut self) -> io::Result<()>;
    /// Log rotation: reopen files (a plain writer takes `w`).
    fn reopen(&mut self, w: Box<dyn Write + Send>) -> io::Result<()>;
    /// End of the run: flush, and let queued lines drain.
    fn close(&mut self) -> io::Result<()> {
        self.flush()
    }
    /// Numbers per output (empty for a plain writer: capture_stats then has no `outputs`).
    fn stats(&self) -> Vec<OutputStat> {
        Vec::new()
    }
}

/// A file or stdout: every line, newline-terminated.
pub struct WriterLines(pub Box<dyn Write + Send>);

impl LineSink for WriterLines {
    fn line(&mut self, _: &LineMeta<'_>, json: &[u8]) -> io::Result<()> {
        self.0.write_all(json)?;
        self.0.write_all(b"\n")
    }

    fn flush(&mut self) -> io::Result<()> {
        self.0.flush()
    }

    fn reopen(&mut self, w: Box<dyn Write + Send>) -> io::Result<()> {
        self.0.flush()?;
        self.0 = w;
        Ok(())
    }
}
