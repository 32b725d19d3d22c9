//! Scenario tests of the SMTP stage: hand-built segments, annotated, fed to
//! a tracker; events written compactly (`cmd Rcpt`, `reply 550 Rcpt uu
//! bob@x`) so each test reads as the session it describes.

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

fn feed(tracker: &mut SmtpTracker, segments: &[TcpSegment<'_>]) -> Vec<String> {
    let mut out = Vec::new();
    for (i, seg) in segments.iter().enumerate() {
        tracker.on_segment(i as i64, seg, &mut out);
    }
    out.iter().map(show).collect()
}

fn run(segments: &[TcpSegment<'_>]) -> (Vec<String>, SmtpStats) {
    let mut tracker = SmtpTracker::new(SmtpLimits::default());
    let events = feed(&mut tracker, segments);
    (events, tracker.stats())
}

#[test]
fn basic_session() {
    let mut k = Conn::new(40_000);
    let segs = [
        k.syn(),
        k.syn_ack(),
        k.s(b"220 mx.example ESMTP\r\n"),
        k.c(b"EHLO client.example\r\n"),
        k.s(b"250-mx.example\r\n250-PIPELINING\r\n250 8BITMIME\r\n"),
        k.c(b"MAIL FROM:<a@client.example>\r\n"),
        k.s(b"250 2.1.0 Ok\r\n"),
        k.c(b"RCPT TO:<bob@mx.example>\r\n"),
        k.s(b"250 2.1.5 Ok\r\n"),
        k.c(b"DATA\r\n"),
        k.s(b"354 End data with <CR><LF>.<CR><LF>\r\n"),
        k.c(b"Subject: hi\r\n\r\nhello\r\n.\r\n"),
        k.s(b"250 2.0.0 Ok: queued\r\n"),
        k.c(b"QUIT\r\n"),
        k.s(b"221 2.0.0 Bye\r\n"),
        k.fin(false),
        k.fin(true),
    ];
    let mut tracker = SmtpTracker::new(SmtpLimits::default());
    let mut out = Vec::new();
    for seg in &segs {
        tracker.on_segment(7, seg, &mut out);
    }
    let shown: Vec<String> = out.iter().map(show).collect();
    assert_eq!(
        shown,
        [
            "start",
            "outbound",
            "reply 220 Connect",
            "cmd Ehlo",
            "reply 250 Ehlo",
            "cmd MailFrom",
            "reply 250 MailFrom",
            "cmd Rcpt",
            "reply 250 Rcpt",
            "cmd Data",
            "reply 354 Data",
            "reply 250 EndOfData",
            "cmd Quit",
            "reply 221 Quit",
        ]
    );
    // Whose counters: the server for the session, the client for outbound.
    assert_eq!((out[0].ip, out[0].peer), (SERVER, CLIENT));
    assert_eq!((out[1].ip, out[1].peer), (CLIENT, SERVER));
    assert!(out[2..].iter().all(|e| e.ip == SERVER && e.peer == CLIENT));
    assert!(out.iter().all(|e| e.ts_micros == 7));
    let stats = tracker.stats();
    assert_eq!((stats.sessions, stats.flows_closed), (1, 1));
    assert_eq!(tracker.flow_count(), 0, "both FINs close the flow");
}

#[test]
fn pipelined_commands_in_one_segment_matched_in_order() {
    let mut k = Conn::new(40_001);
    let (events, _) = run(&[
        k.syn(),
        k.syn_ack(),
        k.s(b"220 mx\r\n"),
        k.c(b"EHLO c\r\n"),
        k.s(b"250-mx\r\n250 PIPELINING\r\n"),
        // Four commands in one segment (RFC 2920).
        k.c(b"MAIL FROM:<>\r\nRCPT TO:<Nobody@MX.example>\r\nRCPT TO:<bob@mx>\r\nDATA\r\n"),
        // Their four replies in one segment.
        k.s(b"250 Ok\r\n550 5.1.1 <nobody@mx.example>: Recipient address rejected: User unknown\r\n250 Ok\r\n354 go\r\n"),
    ]);
    assert_eq!(
        events[5..],
        [
            "cmd MailFrom <>",
            "cmd Rcpt",
            "cmd Rcpt",
            "cmd Data",
            "reply 250 MailFrom",
            "reply 550 Rcpt uu nobody@mx.example",
            "reply 250 Rcpt",
            "reply 354 Data",
        ]
    );
}

#[test]
fn command_split_mid_line() {
    let mut k = Conn::new(40_002);
    let (events, _) = run(&[
        k.syn(),
        k.c(b"MAIL FR"),
        k.c(b"OM:<a@b>\r\nRC"),
        k.c(b"PT TO:<c@d>\r\n"),
    ]);
    assert_eq!(events[2..], ["cmd MailFrom", "cmd Rcpt"]);
}

#[test]
fn command_split_inside_crlf() {
    let mut k = Conn::new(40_003);
    let (events, _) = run(&[k.syn(), k.c(b"QUIT\r"), k.c(b"\n")]);
    assert_eq!(events[2..], ["cmd Quit"]);
}

#[test]
fn retransmitted_syn_is_not_a_new_session_but_a_new_isn_is() {
    let k = Conn::new(40_004);
    let mut again = k.syn();
    again.seq = CLIENT_ISN + 77_777;
    let (events, stats) = run(&[k.syn(), k.syn(), k.syn(), again]);
    assert_eq!(events, ["start", "outbound", "start", "outbound"]);
    assert_eq!((stats.sessions, stats.syn_retransmits), (2, 2));
}

#[test]
fn retransmitted_and_overlapping_data_not_counted_twice() {
    let mut k = Conn::new(40_005);
    let first = k.c(b"RCPT TO:<a@b>\r\n");
    let start = first.seq;
    let (events, stats) = run(&[
        k.syn(),
        first,
        first,                                               // exact retransmission
        k.c_at(start + 5, b"TO:<a@b>\r\nRCPT TO:<c@d>\r\n"), // overlap then new data
    ]);
    assert_eq!(events[2..], ["cmd Rcpt", "cmd Rcpt"]);
    assert_eq!(stats.duplicate_bytes, 15 + 10);
}

#[test]
fn out_of_order_held_then_released_when_gap_fills() {
    let mut k = Conn::new(40_006);
    let a = k.c(b"MAIL FROM:<a@b>\r\n");
    let b = k.c(b"RCPT TO:<c@d>\r\n");
    let c = k.c(b"DATA\r\n");
    let (events, stats) = run(&[k.syn(), c, b, a]);
    assert_eq!(events[2..], ["cmd MailFrom", "cmd Rcpt", "cmd Data"]);
    assert_eq!((stats.ooo_segments_held, stats.gaps_skipped), (2, 0));
}

#[test]
fn gap_that_never_fills_is_skipped_and_parsing_resumes() {
    let mut k = Conn::new(40_007);
    let lost = k.c(b"MAIL FROM:<a@b>\r\nRC");
    let after = k.c(b"PT TO:<c@d>\r\nQUIT\r\n");
    let limits = SmtpLimits {
        max_ooo_segments_per_direction: 1,
        ..SmtpLimits::default()
    };
    let third = k.c(b"NOOP\r\n");
    let mut tracker = SmtpTracker::new(limits);
    // `lost` never arrives; `after` is held, `third` overflows the hold.
    let events = feed(&mut tracker, &[k.syn(), after, third]);
    assert_eq!(
        events[2..],
        ["cmd Quit", "cmd Other"],
        "resync after the gap"
    );
    assert_eq!(tracker.stats().gaps_skipped, 1);
    assert_eq!(lost.payload.len(), 19, "the bytes never delivered");
}

#[test]
fn one_sided_client_only_then_starttls() {
    let mut k = Conn::new(40_008);
    let (events, stats) = run(&[
        k.syn(),
        k.c(b"ehlo c\r\n"),
        k.c(b"STARTTLS\r\n"),
        k.c(&[0x16, 0x03, 0x01, 0x00, 0x05, b'R', b'C', b'P', b'T', b'\n']),
    ]);
    assert_eq!(
        events,
        ["start", "outbound", "cmd Ehlo", "cmd StartTls", "tls"]
    );
    assert_eq!(stats.encrypted_sessions, 1);
}

#[test]
fn one_sided_server_only() {
    let mut k = Conn::new(40_009);
    let (events, stats) = run(&[
        k.syn_ack(),
        k.s(b"220 mx\r\n"),
        k.s(b"250 ok\r\n"),
        k.s(b"550 5.1.1 <x@y>: Recipient address rejected: User unknown\r\n"),
    ]);
    assert_eq!(
        events,
        ["reply 220 Connect", "reply 250 -", "reply 550 - uu"],
        "no SYN seen: no session start; the banner still answers the connection"
    );
    assert_eq!(stats.unmatched_replies, 2);
}

#[test]
fn midstream_pickup_resyncs_at_next_line() {
    let k = Conn::new(40_010);
    let (events, stats) = run(&[
        k.c_at(9_999, b"OM:<a@b>\r\nRCPT TO:<c@d>\r\n"), // starts mid-line
        k.c_at(10_024, b"DATA\r\n"),
    ]);
    assert_eq!(events, ["cmd Rcpt", "cmd Data"]);
    assert_eq!((stats.flows_midstream, stats.sessions), (1, 0));
}

#[test]
fn midstream_pickup_at_a_line_start_keeps_the_line() {
    let k = Conn::new(40_011);
    let (events, _) = run(&[k.c_at(500, b"RCPT TO:<c@d>\r\n")]);
    assert_eq!(events, ["cmd Rcpt"]);
}

#[test]
fn starttls_then_binary_is_not_parsed() {
    let mut k = Conn::new(40_012);
    let (events, stats) = run(&[
        k.syn(),
        k.syn_ack(),
        k.s(b"220 mx\r\n"),
        k.c(b"EHLO c\r\n"),
        k.s(b"250-mx\r\n250 STARTTLS\r\n"),
        k.c(b"starttls\r\n"),
        k.s(b"220 2.0.0 Ready to start TLS\r\n"),
        k.c(b"\x16\x03\x01\x02\x00RCPT TO:<x@y>\r\nMAIL FROM:<>\r\n"),
        k.s(b"\x16\x03\x03\x00\x7a550 user unknown\r\n"),
    ]);
    assert_eq!(
        events[2..],
        [
            "reply 220 Connect",
            "cmd Ehlo",
            "reply 250 Ehlo",
            "cmd StartTls",
            "reply 220 StartTls",
            "tls",
        ]
    );
    assert_eq!(stats.encrypted_sessions, 1);
}

#[test]
fn starttls_refused_keeps_parsing() {
    let mut k = Conn::new(40_013);
    let (events, stats) = run(&[
        k.syn(),
        k.s(b"220 mx\r\n"),
        k.c(b"STARTTLS\r\n"),
        k.s(b"454 4.7.0 TLS not available\r\n"),
        k.c(b"MAIL FROM:<a@b>\r\n"),
    ]);
    assert_eq!(events[4..], ["reply 454 StartTls", "cmd MailFrom"]);
    assert_eq!(stats.encrypted_sessions, 0);
}

#[test]
fn multi_line_reply_is_one_reply() {
    let mut k = Conn::new(40_014);
    let (events, _) = run(&[
        k.syn(),
        k.s(b"220-mx.example ESMTP\r\n220-no UCE\r\n"),
        k.s(b"220 welcome\r\n"),
        k.c(b"EHLO c\r\n"),
        k.s(b"250-mx\r\n250-SIZE 10240000\r\n250-PIPE"),
        k.s(b"LINING\r\n250 SMTPUTF8\r\n"),
    ]);
    assert_eq!(
        events[2..],
        ["reply 220 Connect", "cmd Ehlo", "reply 250 Ehlo"]
    );
}

#[test]
fn data_body_lines_are_not_commands() {
    let mut k = Conn::new(40_015);
    let (events, _) = run(&[
        k.syn(),
        k.s(b"220 mx\r\n"),
        k.c(b"DATA\r\n"),
        k.s(b"354 go ahead\r\n"),
        k.c(b"RCPT TO:<inside@body>\r\nMAIL FROM:<>\r\n..leading dot\r\n"),
        k.c(b"QUIT\r\n.\r\n"),
        k.s(b"250 queued\r\n"),
        k.c(b"QUIT\r\n"),
    ]);
    assert_eq!(
        events[3..],
        [
            "cmd Data",
            "reply 354 Data",
            "reply 250 EndOfData",
            "cmd Quit"
        ]
    );
}

#[test]
fn refused_data_leaves_no_body() {
    let mut k = Conn::new(40_016);
    let (events, _) = run(&[
        k.syn(),
        k.s(b"220 mx\r\n"),
        k.c(b"DATA\r\n"),
        k.s(b"554 5.5.1 Error: no valid recipients\r\n"),
        k.c(b"RSET\r\n"),
    ]);
    assert_eq!(events[3..], ["cmd Data", "reply 554 Data", "cmd Rset"]);
}

#[test]
fn lowercase_commands() {
    let mut k = Conn::new(40_017);
    let (events, _) = run(&[
        k.syn(),
        k.c(b"helo c\r\nmail from:<>\r\nrcpt to:<A@B>\r\ndata\r\nrset\r\nquit\r\n"),
    ]);
    assert_eq!(
        events[2..],
        ["cmd Helo", "cmd MailFrom <>", "cmd Rcpt", "cmd Data"],
        "after DATA (no server seen) the rest is body"
    );
}

#[test]
fn line_too_long_is_counted_and_parsing_resumes() {
    let mut k = Conn::new(40_018);
    let limits = SmtpLimits {
        max_line_len: 64,
        ..SmtpLimits::default()
    };
    let long = [b'X'; 100];
    let mut tracker = SmtpTracker::new(limits);
    let events = feed(
        &mut tracker,
        &[
            k.syn(),
            k.c(b"EHLO "),
            k.c(&long),
            k.c(&long),
            k.c(b"\r\nQUIT\r\n"),
        ],
    );
    assert_eq!(events[2..], ["cmd Quit"]);
    assert_eq!(tracker.stats().lines_too_long, 1);
}

#[test]
fn rejections_that_are_not_user_unknown() {
    let mut k = Conn::new(40_019);
    let (events, _) = run(&[
        k.syn(),
        k.s(b"220 mx\r\n"),
        k.c(b"RCPT TO:<a@elsewhere>\r\nRCPT TO:<b@mx>\r\nRCPT TO:<c@mx>\r\n"),
        k.s(b"554 5.7.1 <a@elsewhere>: Relay access denied\r\n"),
        k.s(b"450 4.1.1 <b@mx>: Recipient address rejected: try later\r\n"),
        k.s(b"550 5.1.1 <c@mx>: mailbox unavailable\r\n"),
    ]);
    assert_eq!(
        events[6..],
        [
            "reply 554 Rcpt a@elsewhere",
            "reply 450 Rcpt",
            "reply 550 Rcpt uu c@mx"
        ],
        "relay denied is a rejection, not user unknown; 4xx is not a rejection"
    );
}

#[test]
fn bdat_chunk_is_skipped() {
    let mut k = Conn::new(40_020);
    let (events, _) = run(&[k.syn(), k.c(b"BDAT 13 LAST\r\nRCPT TO:<x>\r\nQUIT\r\n")]);
    assert_eq!(events[2..], ["cmd Bdat", "cmd Quit"]);
}

#[test]
fn flow_cap_evicts_the_oldest_and_counts() {
    let limits = SmtpLimits {
        max_flows: 2,
        ..SmtpLimits::default()
    };
    let mut tracker = SmtpTracker::new(limits);
    let segs: Vec<_> = (0..5).map(|i| Conn::new(41_000 + i).syn()).collect();
    feed(&mut tracker, &segs);
    assert_eq!(tracker.flow_count(), 2);
    assert_eq!(tracker.stats().flows_evicted, 3);
    // The two newest survive: their retransmitted SYNs are not new sessions.
    feed(&mut tracker, &segs[3..]);
    assert_eq!(tracker.stats().sessions, 5);
}

#[test]
fn flow_cap_prefers_evicting_an_idle_flow() {
    let limits = SmtpLimits {
        max_flows: 2,
        ..SmtpLimits::default()
    };
    let mut tracker = SmtpTracker::new(limits);
    let mut out = Vec::new();
    let mut busy = Conn::new(43_000);
    tracker.on_segment(0, &busy.syn(), &mut out); // oldest, but stays busy
    tracker.on_segment(1, &Conn::new(43_001).syn(), &mut out); // idle since 1
    tracker.on_segment(2, &busy.c(b"NOOP\r\n"), &mut out);
    tracker.on_segment(3, &Conn::new(43_002).syn(), &mut out); // table full
    out.clear();
    tracker.on_segment(4, &busy.c(b"QUIT\r\n"), &mut out);
    assert_eq!(out.iter().map(show).collect::<Vec<_>>(), ["cmd Quit"]);
    assert_eq!(tracker.stats().flows_evicted, 1);
    assert_eq!(tracker.stats().flows_midstream, 0, "the busy flow was kept");
}

#[test]
fn idle_flows_expire() {
    let mut tracker = SmtpTracker::new(SmtpLimits::default());
    let mut out = Vec::new();
    let timeout = SmtpLimits::default().idle_timeout_micros;
    tracker.on_segment(0, &Conn::new(42_000).syn(), &mut out);
    tracker.on_segment(timeout, &Conn::new(42_001).syn(), &mut out);
    tracker.expire(timeout);
    assert_eq!(tracker.flow_count(), 2, "idle exactly the timeout: kept");
    tracker.expire(timeout + 1);
    assert_eq!(
        (tracker.flow_count(), tracker.stats().flows_expired),
        (1, 1)
    );
}

#[test]
fn rst_closes_the_flow_and_other_ports_are_ignored() {
    let k = Conn::new(42_100);
    let mut rst = k.fin(true);
    (rst.fin, rst.rst) = (false, true);
    let mut other = k.syn();
    other.dst_port = 587;
    let mut tracker = SmtpTracker::new(SmtpLimits::default());
    let events = feed(&mut tracker, &[k.syn(), rst, other]);
    assert_eq!(events, ["start", "outbound"]);
    assert_eq!((tracker.flow_count(), tracker.stats().flows_closed), (0, 1));
}

#[test]
fn midstream_pickup_of_tls_is_counted_encrypted_and_not_parsed() {
    let k = Conn::new(42_200);
    // A TLS application-data record (type 23, version 3.3) first seen.
    let (events, stats) = run(&[k.c_at(77, b"\x17\x03\x03\x00\x10RCPT TO:<x@y>\r\n")]);
    assert!(events.is_empty());
    assert_eq!((stats.encrypted_sessions, stats.flows_midstream), (1, 1));
}

#[test]
fn starttls_with_its_220_missed_turns_encrypted_on_the_handshake() {
    let mut k = Conn::new(42_300);
    let (events, _) = run(&[
        k.syn(),
        k.s(b"220 mx\r\n"),
        k.c(b"STARTTLS\r\n"),
        // The server's 220 to STARTTLS was not captured.
        k.c(b"\x16\x03\x01\x00\x05RCPT TO:<x@y>\r\n"),
    ]);
    assert_eq!(events[2..], ["reply 220 Connect", "cmd StartTls", "tls"]);
}

#[test]
fn segment_lost_by_the_capture_is_skipped_when_the_peer_acks_past_it() {
    let mut k = Conn::new(42_400);
    let syn = k.syn();
    let syn_ack = k.syn_ack();
    let banner = k.s(b"220 mx\r\n");
    let _lost = k.c(b"MAIL FROM:<a@b>\r\n"); // sent, never captured
    // The server's reply acknowledges the lost bytes: they will not come.
    let mail_ok = k.s(b"250 2.1.0 Ok\r\n");
    let rcpt = k.c(b"RCPT TO:<Gone@MX>\r\n"); // starts right after the gap
    let rcpt_no = k.s(b"550 5.1.1 <gone@mx>: Recipient address rejected: User unknown\r\n");
    let (events, stats) = run(&[syn, syn_ack, banner, mail_ok, rcpt, rcpt_no]);
    assert_eq!(
        events[2..],
        [
            "reply 220 Connect",
            "reply 250 -",
            "cmd Rcpt",
            "reply 550 Rcpt uu gone@mx"
        ],
        "the line right after the gap is kept and replies stay matched"
    );
    assert_eq!((stats.gaps_skipped, stats.ooo_segments_held), (1, 0));
}
