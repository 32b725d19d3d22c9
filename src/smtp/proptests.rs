//! Property tests: segmentation, reordering and retransmission never change
//! the events.
//!
//! A realistic session is generated as flights (a run of bytes one side
//! sends before waiting for the other): banner, EHLO, transactions with
//! pipelined or lock-step MAIL/RCPT/DATA, bodies holding command look-alikes,
//! then QUIT or STARTTLS and TLS bytes. The reference delivers each flight
//! as one segment; the properties cut flights at random points, permute the
//! segments of a flight (hold large enough) and re-send old segments.

use proptest::prelude::*;

use super::tests::{CLIENT_ISN, Conn, SERVER_ISN, show};
use super::*;

#[derive(Debug, Clone, Copy)]
enum RcptOutcome {
    Accepted,
    UserUnknown,
    RelayDenied,
    TryLater,
}

#[derive(Debug, Clone)]
enum DataKind {
    None,
    Refused,
    Body(Vec<&'static str>),
}

#[derive(Debug, Clone)]
struct Transaction {
    null_sender: bool,
    rcpts: Vec<RcptOutcome>,
    data: DataKind,
}

#[derive(Debug, Clone, Copy)]
enum Ending {
    Quit,
    StartTls,
    Cut,
}

#[derive(Debug, Clone)]
struct Script {
    lowercase: bool,
    pipelining: bool,
    transactions: Vec<Transaction>,
    ending: Ending,
}

/// One flight: (client to server?, bytes).
type Flight = (bool, Vec<u8>);

const BODY_LINES: &[&str] = &[
    "Subject: hello",
    "",
    "RCPT TO:<inside@body>",
    "MAIL FROM:<>",
    "QUIT",
    "..leading dot, stuffed",
    "250 not a reply",
    "plain text line of a message",
];

fn transaction() -> impl Strategy<Value = Transaction> {
    let outcome = prop_oneof![
        Just(RcptOutcome::Accepted),
        Just(RcptOutcome::UserUnknown),
        Just(RcptOutcome::RelayDenied),
        Just(RcptOutcome::TryLater),
    ];
    let body = prop::collection::vec(prop::sample::select(BODY_LINES), 0..6);
    let data = prop_oneof![
        Just(DataKind::None),
        Just(DataKind::Refused),
        body.prop_map(DataKind::Body),
    ];
    (any::<bool>(), prop::collection::vec(outcome, 0..4), data).prop_map(
        |(null_sender, rcpts, data)| Transaction {
            null_sender,
            rcpts,
            data,
        },
    )
}

fn script() -> impl Strategy<Value = Script> {
    let ending = prop_oneof![
        Just(Ending::Quit),
        Just(Ending::StartTls),
        Just(Ending::Cut)
    ];
    (
        any::<bool>(),
        any::<bool>(),
        prop::collection::vec(transaction(), 0..4),
        ending,
    )
        .prop_map(|(lowercase, pipelining, transactions, ending)| Script {
            lowercase,
            pipelining,
            transactions,
            ending,
        })
}

impl Script {
    fn cmd(&self, text: &str) -> String {
        let line = if self.lowercase {
            text.to_ascii_lowercase()
        } else {
            text.to_owned()
        };
        line + "\r\n"
    }

    fn flights(&self) -> Vec<Flight> {
        let mut flights: Vec<Flight> = vec![
            (false, b"220-mx.example ESMTP\r\n220 no UCE\r\n".to_vec()),
            (true, self.cmd("EHLO client.example").into_bytes()),
            (
                false,
                b"250-mx.example\r\n250-PIPELINING\r\n250 STARTTLS\r\n".to_vec(),
            ),
        ];
        for (t, txn) in self.transactions.iter().enumerate() {
            let mut exchange: Vec<(String, String)> = Vec::new();
            let from = if txn.null_sender {
                "<>".to_owned()
            } else {
                format!("<s{t}@c.example>")
            };
            exchange.push((
                self.cmd(&format!("MAIL FROM:{from}")),
                "250 2.1.0 Ok\r\n".into(),
            ));
            for (r, outcome) in txn.rcpts.iter().enumerate() {
                let rcpt = format!("User{t}.{r}@MX.example");
                let reply = match outcome {
                    RcptOutcome::Accepted => "250 2.1.5 Ok\r\n".to_owned(),
                    RcptOutcome::UserUnknown => {
                        format!("550 5.1.1 <{rcpt}>: Recipient address rejected: User unknown\r\n")
                    }
                    RcptOutcome::RelayDenied => {
                        format!("554 5.7.1 <{rcpt}>: Relay access denied\r\n")
                    }
                    RcptOutcome::TryLater => "450 4.2.0 try later\r\n".to_owned(),
                };
                exchange.push((self.cmd(&format!("RCPT TO:<{rcpt}>")), reply));
            }
            match txn.data {
                DataKind::None => {}
                DataKind::Refused => exchange.push((self.cmd("DATA"), "554 5.5.1 no\r\n".into())),
                DataKind::Body(_) => exchange.push((self.cmd("DATA"), "354 go\r\n".into())),
            }
            if self.pipelining {
                let (c, s): (String, String) = exchange.into_iter().unzip();
                flights.push((true, c.into_bytes()));
                flights.push((false, s.into_bytes()));
            } else {
                for (c, s) in exchange {
                    flights.push((true, c.into_bytes()));
                    flights.push((false, s.into_bytes()));
                }
            }
            if let DataKind::Body(lines) = &txn.data {
                let body: String = lines.iter().map(|l| format!("{l}\r\n")).collect();
                flights.push((true, (body + ".\r\n").into_bytes()));
                flights.push((false, b"250 2.0.0 Ok: queued\r\n".to_vec()));
            }
        }
        match self.ending {
            Ending::Quit => {
                flights.push((true, self.cmd("QUIT").into_bytes()));
                flights.push((false, b"221 2.0.0 Bye\r\n".to_vec()));
            }
            Ending::StartTls => {
                flights.push((true, self.cmd("STARTTLS").into_bytes()));
                flights.push((false, b"220 2.0.0 Ready\r\n".to_vec()));
                flights.push((
                    true,
                    b"\x16\x03\x01\x00\x30RCPT TO:<x@y>\r\nQUIT\r\n".to_vec(),
                ));
                flights.push((
                    false,
                    b"\x16\x03\x03\x00\x40550 5.1.1 user unknown\r\n".to_vec(),
                ));
            }
            Ending::Cut => {}
        }
        flights
    }
}

/// Segments of one flight, with the sequence number of each.
struct Piece {
    to_server: bool,
    seq: u32,
    /// Everything the other side sent before this flight (it was received).
    ack: u32,
    data: Vec<u8>,
}

/// Cut every flight at points drawn from `cuts` (values taken in turn).
fn pieces(flights: &[Flight], cuts: &[u16]) -> Vec<Vec<Piece>> {
    let (mut c_next, mut s_next) = (CLIENT_ISN.wrapping_add(1), SERVER_ISN.wrapping_add(1));
    let mut cut_values = cuts.iter().copied().cycle();
    let mut out = Vec::new();
    for (to_server, bytes) in flights {
        let (next, ack) = if *to_server {
            (&mut c_next, s_next)
        } else {
            (&mut s_next, c_next)
        };
        let count = if cuts.is_empty() {
            0
        } else {
            usize::from(cut_values.next().unwrap_or(0) % 5)
        };
        let mut points: Vec<usize> = (0..count)
            .map(|_| usize::from(cut_values.next().unwrap_or(0)) % (bytes.len() + 1))
            .collect();
        points.extend([0, bytes.len()]);
        points.sort_unstable();
        points.dedup();
        let flight = points
            .windows(2)
            .map(|w| Piece {
                to_server: *to_server,
                seq: next.wrapping_add(w[0] as u32),
                ack,
                data: bytes[w[0]..w[1]].to_vec(),
            })
            .collect();
        *next = next.wrapping_add(bytes.len() as u32);
        out.push(flight);
    }
    out
}

/// The segment that carries `piece`.
fn segment<'a>(conn: &Conn, piece: &'a Piece) -> TcpSegment<'a> {
    let mut seg = conn.c_at(piece.seq, &piece.data);
    seg.ack = piece.ack;
    if !piece.to_server {
        (seg.src, seg.dst, seg.src_port, seg.dst_port) =
            (seg.dst, seg.src, seg.dst_port, seg.src_port);
    }
    seg
}

/// Events (without time) from SYN, SYN-ACK and then `order` of pieces.
fn events_of(limits: SmtpLimits, order: &[&Piece], resend: &[u16]) -> Vec<String> {
    let conn = Conn::new(40_000);
    let mut tracker = SmtpTracker::new(limits);
    let mut out = Vec::new();
    tracker.on_segment(0, &conn.syn(), &mut out);
    tracker.on_segment(1, &conn.syn_ack(), &mut out);
    let mut resend = resend.iter().copied();
    for (i, piece) in order.iter().enumerate() {
        tracker.on_segment(i as i64 + 2, &segment(&conn, piece), &mut out);
        // Re-send an already delivered piece (a retransmission), or the SYN.
        if let Some(pick) = resend.next().filter(|p| p % 3 == 0) {
            let again = if pick % 2 == 0 {
                segment(&conn, order[usize::from(pick) % (i + 1)])
            } else {
                conn.syn()
            };
            tracker.on_segment(i as i64 + 2, &again, &mut out);
        }
    }
    out.iter().map(show).collect()
}

fn big_hold() -> SmtpLimits {
    SmtpLimits {
        max_ooo_bytes_per_flow: 1 << 20,
        max_ooo_segments_per_direction: 1 << 10,
        ..SmtpLimits::default()
    }
}

/// Reference: each flight delivered as one segment.
fn reference(flights: &[Flight]) -> Vec<String> {
    let whole = pieces(flights, &[]);
    let order: Vec<&Piece> = whole.iter().flatten().collect();
    events_of(SmtpLimits::default(), &order, &[])
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// The generator and the parser agree on what matters for counting.
    #[test]
    fn reference_counts_match_the_script(script in script()) {
        let events = reference(&script.flights());
        let rcpts: usize = script.transactions.iter().map(|t| t.rcpts.len()).sum();
        let unknown = script.transactions.iter().flat_map(|t| &t.rcpts)
            .filter(|o| matches!(o, RcptOutcome::UserUnknown)).count();
        prop_assert_eq!(events.iter().filter(|e| *e == "cmd Rcpt").count(), rcpts);
        prop_assert_eq!(events.iter().filter(|e| e.contains(" uu ")).count(), unknown);
        prop_assert_eq!(
            events.iter().filter(|e| e.starts_with("cmd MailFrom")).count(),
            script.transactions.len()
        );
        prop_assert!(!events.iter().any(|e| e == "reply 221 Quit") || matches!(script.ending, Ending::Quit));
        prop_assert_eq!(events.iter().filter(|e| *e == "tls").count(),
            usize::from(matches!(script.ending, Ending::StartTls)));
        let unmatched = events.iter().filter(|e| e.split(' ').nth(2) == Some("-")).count();
        prop_assert_eq!(unmatched, 0, "every reply matched");
    }

    /// Any cut points, delivered in order: the same events.
    #[test]
    fn segmentation_does_not_change_events(
        script in script(),
        cuts in prop::collection::vec(any::<u16>(), 1..64),
    ) {
        let flights = script.flights();
        let split = pieces(&flights, &cuts);
        let order: Vec<&Piece> = split.iter().flatten().collect();
        prop_assert_eq!(events_of(SmtpLimits::default(), &order, &[]), reference(&flights));
    }

    /// Segments of each flight permuted (hold large enough): the same events.
    #[test]
    fn reordering_within_a_window_does_not_change_events(
        script in script(),
        cuts in prop::collection::vec(any::<u16>(), 1..64),
        keys in prop::collection::vec(any::<u32>(), 1..64),
    ) {
        let flights = script.flights();
        let split = pieces(&flights, &cuts);
        let mut keys = keys.iter().copied().cycle();
        let mut order: Vec<&Piece> = Vec::new();
        for flight in &split {
            let mut window: Vec<(u32, &Piece)> =
                flight.iter().map(|p| (keys.next().unwrap_or(0), p)).collect();
            window.sort_by_key(|(k, _)| *k);
            order.extend(window.into_iter().map(|(_, p)| p));
        }
        prop_assert_eq!(events_of(big_hold(), &order, &[]), reference(&flights));
    }

    /// Retransmitted duplicates (data and SYN) anywhere: the same events.
    #[test]
    fn retransmissions_do_not_change_events(
        script in script(),
        cuts in prop::collection::vec(any::<u16>(), 1..64),
        resend in prop::collection::vec(any::<u16>(), 0..128),
    ) {
        let flights = script.flights();
        let split = pieces(&flights, &cuts);
        let order: Vec<&Piece> = split.iter().flatten().collect();
        prop_assert_eq!(events_of(SmtpLimits::default(), &order, &resend), reference(&flights));
    }

    /// Arbitrary bytes in both directions never panic and never exceed caps.
    #[test]
    fn arbitrary_bytes_are_safe(
        segments in prop::collection::vec(
            (any::<bool>(), any::<u16>(), prop::collection::vec(any::<u8>(), 0..64)),
            0..64,
        ),
    ) {
        let limits = SmtpLimits { max_line_len: 32, max_ooo_bytes_per_flow: 64, ..SmtpLimits::default() };
        let conn = Conn::new(40_000);
        let mut tracker = SmtpTracker::new(limits);
        let mut out = Vec::new();
        tracker.on_segment(0, &conn.syn(), &mut out);
        for (to_server, offset, data) in &segments {
            let mut seg = conn.c_at(CLIENT_ISN.wrapping_add(u32::from(*offset % 256)), data);
            if !to_server {
                (seg.src, seg.dst, seg.src_port, seg.dst_port) = (seg.dst, seg.src, seg.dst_port, seg.src_port);
            }
            tracker.on_segment(1, &seg, &mut out);
        }
        prop_assert!(tracker.flow_count() <= 1);
        for event in &out {
            if let SmtpEventKind::Reply { recipient: Some(r), .. } = &event.kind {
                prop_assert!(r.len() <= MAX_RECIPIENT_LEN);
            }
        }
    }
}
