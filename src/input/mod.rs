//! Inputs that are not frames: dnstap (Frame Streams files and sockets),
//! BIND's query log and Postfix's maillog -> the same events as packets
//! ([`InputEvent`]: a DNS message's bytes with its querier, server and time;
//! an `SmtpEvent`), with their time. `capture::source` merges them with
//! capture files by time and `run::drive` feeds them to `engine::Front`,
//! so the classifier, rules and output are the packets' own.
//!
//! Layout: `framestream` (the transport), `protobuf` (wire format reader),
//! `dnstap` (the dnstap message), `logtime` (log time stamps), `bind_log`
//! (query log lines), `maillog` (Postfix lines), and here [`InputFile`]: a
//! file of one kind read event by event, its counters ([`InputStats`]:
//! records read, events, lines of other kinds, malformed ones by reason).
//! Never fatal on a bad record; a file with no recognisable record at all
//! is one clear error.

pub mod bind_log;
pub mod dnstap;
pub mod framestream;
pub mod logtime;
pub mod maillog;
pub mod protobuf;

#[cfg(test)]
mod proptests;

use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::smtp::SmtpEvent;

pub use logtime::Year;
pub use maillog::Servers;

/// Longest log line read (BIND and Postfix lines are well under 4 KiB;
/// syslog's own limit is 8 KiB in rsyslog's default). Longer lines are
/// skipped and counted (`too_long`).
pub const MAX_LINE: usize = 64 * 1024;

/// A DNS message from a non-frame input, owned.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsItem {
    pub ts: i64,
    pub client: IpAddr,
    pub server: IpAddr,
    pub client_port: u16,
    pub tcp: bool,
    /// The input never shows responses (a query log): nothing waits for one.
    pub query_only: bool,
    pub message: Vec<u8>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum InputEvent {
    Dns(DnsItem),
    Smtp(SmtpEvent),
}

impl InputEvent {
    pub fn ts(&self) -> i64 {
        match self {
            InputEvent::Dns(d) => d.ts,
            InputEvent::Smtp(s) => s.ts_micros,
        }
    }
}

/// Why a record was skipped (counted in [`InputStats::malformed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Malformed {
    BadTime,
    BadClient,
    BadQuestion,
    BadQtype,
    BadName,
    BadProgram,
    BadReply,
    UnknownHost,
    TooLong,
    Protobuf,
    NoMessage,
    NoType,
    NoTime,
    NoAddress,
    NoDnsMessage,
}

impl Malformed {
    pub fn name(self) -> &'static str {
        use Malformed::*;
        match self {
            BadTime => "bad_time",
            BadClient => "bad_client",
            BadQuestion => "bad_question",
            BadQtype => "bad_qtype",
            BadName => "bad_name",
            BadProgram => "bad_program",
            BadReply => "bad_reply",
            UnknownHost => "unknown_host",
            TooLong => "too_long",
            Protobuf => "bad_protobuf",
            NoMessage => "no_message",
            NoType => "no_type",
            NoTime => "no_time",
            NoAddress => "no_address",
            NoDnsMessage => "no_dns_message",
        }
    }
}

/// The kinds of input files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Dnstap,
    BindQuerylog,
    Maillog,
}

/// Counters of one input (file or dnstap connection), for capture_stats.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct InputStats {
    pub kind: Option<Kind>,
    pub path: String,
    /// Lines (logs) or data frames (dnstap) read.
    pub records: u64,
    /// Records that gave events.
    pub recognised: u64,
    pub events: u64,
    /// Records of other kinds (other programs, categories, dnstap message types).
    pub ignored: u64,
    /// Skipped records, by reason.
    pub malformed: BTreeMap<&'static str, u64>,
    /// Live dnstap only: messages dropped because the engine was behind.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dropped: Option<u64>,
}

impl InputStats {
    pub fn bad(&mut self, m: Malformed) {
        *self.malformed.entry(m.name()).or_insert(0) += 1;
    }
}

#[derive(Debug)]
pub enum InputError {
    Open {
        path: PathBuf,
        msg: String,
    },
    Read {
        path: PathBuf,
        msg: String,
    },
    /// Not one record of the expected kind in the whole file.
    Unrecognised {
        path: PathBuf,
        what: String,
    },
}

impl fmt::Display for InputError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            InputError::Open { path, msg } => write!(f, "cannot read {}: {msg}", path.display()),
            InputError::Read { path, msg } => write!(f, "{}: {msg}", path.display()),
            InputError::Unrecognised { path, what } => write!(f, "{}: {what}", path.display()),
        }
    }
}

impl std::error::Error for InputError {}

/// Settings of the log inputs.
#[derive(Debug, Clone)]
pub struct LogSettings {
    /// Year of year-less syslog times; `None`: from each file's modification time.
    pub year: Option<i64>,
    pub servers: Servers,
}

enum Reader {
    Dnstap(framestream::Reader<BufReader<File>>),
    Bind(BufReader<File>),
    Mail(BufReader<File>, Box<maillog::Maillog>, VecDeque<SmtpEvent>),
}

/// One input file read event by event.
pub struct InputFile {
    kind: Kind,
    path: PathBuf,
    reader: Reader,
    year: Year,
    line: Vec<u8>,
    pub stats: InputStats,
}

impl InputFile {
    pub fn open(kind: Kind, path: &Path, s: &LogSettings) -> Result<Self, InputError> {
        let err = |e: std::io::Error| InputError::Open {
            path: path.to_owned(),
            msg: if e.kind() == std::io::ErrorKind::NotFound {
                "no such file".into()
            } else {
                e.to_string()
            },
        };
        let f = File::open(path).map_err(err)?;
        let mtime = f
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_micros() as i64);
        let year = s.year.map_or(Year::Modified(mtime), Year::Fixed);
        let b = BufReader::with_capacity(1 << 16, f);
        let reader = match kind {
            Kind::Dnstap => Reader::Dnstap(framestream::Reader::new(b)),
            Kind::BindQuerylog => Reader::Bind(b),
            Kind::Maillog => Reader::Mail(
                b,
                Box::new(maillog::Maillog::new(s.servers.clone(), year)),
                VecDeque::new(),
            ),
        };
        Ok(InputFile {
            kind,
            path: path.to_owned(),
            reader,
            year,
            line: Vec::new(),
            stats: InputStats {
                kind: Some(kind),
                path: path.display().to_string(),
                ..InputStats::default()
            },
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next event; `Ok(None)` at the end of the file.
    pub fn next_event(&mut self) -> Result<Option<InputEvent>, InputError> {
        loop {
            if let Reader::Mail(_, _, queue) = &mut self.reader
                && let Some(e) = queue.pop_front()
            {
                self.stats.events += 1;
                return Ok(Some(InputEvent::Smtp(e)));
            }
            let got = match self.kind {
                Kind::Dnstap => self.dnstap_record()?,
                _ => self.log_record()?,
            };
            match got {
                Record::End => return self.end(),
                Record::Event(e) => {
                    self.stats.events += 1;
                    return Ok(Some(e));
                }
                Record::Nothing => {}
            }
        }
    }

    fn end(&self) -> Result<Option<InputEvent>, InputError> {
        if self.stats.recognised > 0 {
            return Ok(None);
        }
        let s = &self.stats;
        let what = match self.kind {
            Kind::Dnstap => "no dnstap message in this Frame Streams file",
            Kind::BindQuerylog => {
                "not one BIND query log line (`client ... query: NAME CLASS TYPE FLAGS`)"
            }
            Kind::Maillog => "not one Postfix smtpd/smtp line mxwatch counts",
        };
        let mut what = format!("{what} in {} records", s.records);
        if !s.malformed.is_empty() {
            what += &format!(" (malformed: {:?})", s.malformed);
        }
        if let Reader::Mail(_, m, _) = &self.reader
            && !m.unknown_hosts.is_empty()
        {
            what += &format!(
                "; no address for mail server host(s) {:?}: pass --mail-server HOST=IP",
                m.unknown_hosts
            );
        }
        Err(InputError::Unrecognised {
            path: self.path.clone(),
            what,
        })
    }

    fn dnstap_record(&mut self) -> Result<Record, InputError> {
        let Reader::Dnstap(r) = &mut self.reader else {
            unreachable!("dnstap reader")
        };
        let path = &self.path;
        let frame = r.next_frame().map_err(|e| InputError::Read {
            path: path.clone(),
            msg: e.to_string(),
        })?;
        Ok(match frame {
            None => Record::End,
            Some(framestream::Frame::Control(c)) => {
                let dnstap = c.content_types.is_empty()
                    || c.content_types
                        .iter()
                        .any(|t| t == framestream::DNSTAP_CONTENT_TYPE);
                if c.kind == framestream::ControlKind::Start && !dnstap {
                    return Err(InputError::Read {
                        path: path.clone(),
                        msg: format!(
                            "Frame Streams content type {:?}, not dnstap",
                            String::from_utf8_lossy(&c.content_types[0])
                        ),
                    });
                }
                Record::Nothing
            }
            Some(framestream::Frame::Data(d)) => {
                self.stats.records += 1;
                record_dnstap(d, &mut self.stats)
            }
        })
    }

    fn log_record(&mut self) -> Result<Record, InputError> {
        let (buf, path) = (&mut self.line, &self.path);
        let b = match &mut self.reader {
            Reader::Bind(b) | Reader::Mail(b, _, _) => b,
            Reader::Dnstap(_) => unreachable!("a log reader"),
        };
        buf.clear();
        let n = std::io::Read::take(&mut *b, MAX_LINE as u64 + 1)
            .read_until(b'\n', buf)
            .map_err(|e| InputError::Read {
                path: path.clone(),
                msg: e.to_string(),
            })?;
        if n == 0 {
            return Ok(Record::End);
        }
        self.stats.records += 1;
        if buf.len() > MAX_LINE {
            // Skip the rest of the line.
            let mut rest = Vec::new();
            let _ = b.read_until(b'\n', &mut rest);
            self.stats.bad(Malformed::TooLong);
            return Ok(Record::Nothing);
        }
        let text = String::from_utf8_lossy(buf);
        let line = text.trim_end_matches(['\n', '\r']);
        Ok(match &mut self.reader {
            Reader::Bind(_) => record_bind(line, self.year, &mut self.stats),
            Reader::Mail(_, m, queue) => {
                let mut out = Vec::new();
                match m.line(line, &mut out) {
                    Ok(true) => self.stats.recognised += 1,
                    Ok(false) => self.stats.ignored += 1,
                    Err(e) => self.stats.bad(e),
                }
                queue.extend(out);
                Record::Nothing
            }
            Reader::Dnstap(_) => unreachable!("a log reader"),
        })
    }
}

enum Record {
    End,
    Event(InputEvent),
    Nothing,
}

fn record_bind(line: &str, year: Year, stats: &mut InputStats) -> Record {
    match bind_log::parse_line(line, year) {
        Ok(Some(d)) => {
            stats.recognised += 1;
            Record::Event(InputEvent::Dns(d))
        }
        Ok(None) => {
            stats.ignored += 1;
            Record::Nothing
        }
        Err(e) => {
            stats.bad(e);
            Record::Nothing
        }
    }
}

/// One dnstap data frame into an event (or a counted skip).
fn record_dnstap(frame: &[u8], stats: &mut InputStats) -> Record {
    match dnstap::to_item(frame) {
        Ok(Some(d)) => {
            stats.recognised += 1;
            Record::Event(InputEvent::Dns(d))
        }
        Ok(None) => {
            stats.recognised += 1;
            stats.ignored += 1;
            Record::Nothing
        }
        Err(e) => {
            stats.bad(e);
            Record::Nothing
        }
    }
}

/// A dnstap frame as an event, counting it in `stats` (live connections).
pub fn dnstap_event(frame: &[u8], stats: &mut InputStats) -> Option<InputEvent> {
    stats.records += 1;
    match record_dnstap(frame, stats) {
        Record::Event(e) => {
            stats.events += 1;
            Some(e)
        }
        _ => None,
    }
}
