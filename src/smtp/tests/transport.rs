//! TCP side: SYN counting, retransmission, reordering, gaps, mid-stream
//! pickup, flow cap and idle expiry.

use super::*;

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
