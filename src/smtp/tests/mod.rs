//! Scenario tests of the SMTP stage: hand-built segments, annotated, fed to
//! a tracker; events written compactly (`cmd Rcpt`, `reply 550 Rcpt uu
//! bob@x`) so each test reads as the session it describes. `session`: SMTP
//! semantics; `transport`: TCP reassembly and the flow table.

mod session;
mod transport;

use std::net::{IpAddr, Ipv4Addr};

use super::*;

/// Client in TEST-NET-1, server in TEST-NET-2 (RFC 5737).
pub const CLIENT: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10));
pub const SERVER: IpAddr = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 25));
pub const CLIENT_ISN: u32 = 1_000;
pub const SERVER_ISN: u32 = 5_000;

/// One connection client:40000 -> server:25, with a sequence cursor for
/// each direction (the next byte each side will send).
pub struct Conn {
    pub client_port: u16,
    pub c_next: u32,
    pub s_next: u32,
}

impl Conn {
    pub fn new(client_port: u16) -> Self {
        Self {
            client_port,
            c_next: CLIENT_ISN.wrapping_add(1),
            s_next: SERVER_ISN.wrapping_add(1),
        }
    }

    /// A segment that acknowledges everything the other side has sent.
    fn seg<'a>(&self, to_server: bool, seq: u32, payload: &'a [u8]) -> TcpSegment<'a> {
        let (src, dst, src_port, dst_port, ack) = if to_server {
            (CLIENT, SERVER, self.client_port, SMTP_PORT, self.s_next)
        } else {
            (SERVER, CLIENT, SMTP_PORT, self.client_port, self.c_next)
        };
        TcpSegment {
            src,
            dst,
            src_port,
            dst_port,
            seq,
            ack,
            syn: false,
            ack_flag: true,
            fin: false,
            rst: false,
            payload,
        }
    }

    /// Client SYN (no ACK), ISN = CLIENT_ISN.
    pub fn syn(&self) -> TcpSegment<'static> {
        TcpSegment {
            syn: true,
            ack_flag: false,
            ..self.seg(true, CLIENT_ISN, b"")
        }
    }

    /// Server SYN-ACK, ISN = SERVER_ISN.
    pub fn syn_ack(&self) -> TcpSegment<'static> {
        TcpSegment {
            syn: true,
            ..self.seg(false, SERVER_ISN, b"")
        }
    }

    /// Next client data segment (advances the client cursor).
    pub fn c<'a>(&mut self, payload: &'a [u8]) -> TcpSegment<'a> {
        let seg = self.seg(true, self.c_next, payload);
        self.c_next = self.c_next.wrapping_add(payload.len() as u32);
        seg
    }

    /// Next server data segment (advances the server cursor).
    pub fn s<'a>(&mut self, payload: &'a [u8]) -> TcpSegment<'a> {
        let seg = self.seg(false, self.s_next, payload);
        self.s_next = self.s_next.wrapping_add(payload.len() as u32);
        seg
    }

    /// A client segment at an explicit sequence number (no cursor change).
    pub fn c_at<'a>(&self, seq: u32, payload: &'a [u8]) -> TcpSegment<'a> {
        self.seg(true, seq, payload)
    }

    pub fn fin(&self, to_server: bool) -> TcpSegment<'static> {
        let seq = if to_server { self.c_next } else { self.s_next };
        TcpSegment {
            fin: true,
            ..self.seg(to_server, seq, b"")
        }
    }
}

/// Compact text of one event (ts, ip and peer left out).
pub fn show(event: &SmtpEvent) -> String {
    match &event.kind {
        SmtpEventKind::SessionStart => "start".to_owned(),
        SmtpEventKind::OutboundSessionStart => "outbound".to_owned(),
        SmtpEventKind::Command(SmtpCommand::MailFrom { null_sender: true }) => {
            "cmd MailFrom <>".to_owned()
        }
        SmtpEventKind::Command(SmtpCommand::MailFrom { null_sender: false }) => {
            "cmd MailFrom".to_owned()
        }
        SmtpEventKind::Command(c) => format!("cmd {c:?}"),
        SmtpEventKind::Reply {
            code,
            to,
            user_unknown,
            recipient,
        } => {
            let to = to.map_or("-".to_owned(), |k| format!("{k:?}"));
            let uu = if *user_unknown { " uu" } else { "" };
            let rcpt = recipient
                .as_deref()
                .map_or(String::new(), |r| format!(" {r}"));
            format!("reply {code} {to}{uu}{rcpt}")
        }
        SmtpEventKind::StartTls => "tls".to_owned(),
    }
}

pub fn feed(tracker: &mut SmtpTracker, segments: &[TcpSegment<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        tracker.on_segment(i as i64, seg, &mut out);
    }
    out.iter().map(show).collect()
}

pub fn run(segments: &[TcpSegment<'_>]) -> (Vec<String>, SmtpStats) {
    let mut tracker = SmtpTracker::new(SmtpLimits::default());
    let events = feed(&mut tracker, segments);
    (events, tracker.stats())
}
