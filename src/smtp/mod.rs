//! SMTP session tracking: placeholder with the agreed interface (replaced by the smtp branch).

use std::net::IpAddr;

use crate::decode::TcpSegment;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpEvent {
    pub ts_micros: i64,
    pub ip: IpAddr,
    pub peer: IpAddr,
    pub kind: SmtpEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpEventKind {
    SessionStart,
    OutboundSessionStart,
    Command(SmtpCommand),
    Reply {
        code: u16,
        to: Option<SmtpCommandKind>,
        user_unknown: bool,
        recipient: Option<Box<str>>,
    },
    StartTls,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpCommand {
    Helo,
    Ehlo,
    MailFrom { null_sender: bool },
    Rcpt,
    Data,
    Rset,
    Quit,
    StartTls,
    Other,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpCommandKind {
    Rcpt,
    Other,
}

#[derive(Debug, Clone)]
pub struct SmtpLimits {
    pub max_flows: usize,
}

impl Default for SmtpLimits {
    fn default() -> Self {
        SmtpLimits { max_flows: 50_000 }
    }
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct SmtpStats {
    pub flows_evicted: u64,
}

#[derive(Debug, Default)]
pub struct SmtpTracker;

impl SmtpTracker {
    pub fn new(_limits: SmtpLimits) -> Self {
        SmtpTracker
    }
    pub fn on_segment(&mut self, _ts: i64, _seg: &TcpSegment<'_>, _out: &mut Vec<SmtpEvent>) {}
    pub fn expire(&mut self, _now: i64) {}
    pub fn stats(&self) -> SmtpStats {
        SmtpStats::default()
    }
}
