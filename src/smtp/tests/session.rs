//! SMTP semantics: commands, replies, DATA, STARTTLS, limits on lines.

use super::*;

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
