//! SMTP stage: TCP segments on port 25 -> SMTP session events.
//!
//! **Place in the pipeline.** `decode` hands every TCP segment with port 25 at
//! either end to [`SmtpTracker::on_segment`]; the events it pushes go on to
//! `classify`, which counts them per mail server (N_c sessions, N_f MAIL FROM,
//! RCPT, 5xx to RCPT and "user unknown", outbound sessions).
//!
//! **Input.** Borrowed [`TcpSegment`] views in capture order, with the packet
//! time in microseconds. The wall clock is never read: the same packets give
//! the same events, live or offline.
//!
//! **Output.** Small owned [`SmtpEvent`]s: session starts (inbound for the
//! server, outbound for the client), commands, replies (one per multi-line
//! reply, matched to its command), and STARTTLS. A string is carried only for
//! the recipient of a rejected RCPT (evidence), at most
//! [`MAX_RECIPIENT_LEN`] bytes, lower-cased.
//!
//! **Invariants.**
//! - A session is counted once per SYN: a retransmitted SYN (same 4-tuple,
//!   same ISN) is not a new session.
//! - Each payload byte is parsed at most once per direction: retransmitted and
//!   overlapping data is trimmed against the next expected sequence number;
//!   out-of-order data is held (bounded) and released in order. A gap is
//!   given up (counted) when the hold is full or when the other side ACKs
//!   past it (the capture lost bytes that the network delivered); parsing
//!   resumes at the next line start.
//! - Replies are matched to commands in order (a FIFO per flow, RFC 2920);
//!   the banner answers the connection; a multi-line reply is one event.
//! - The DATA body is never parsed as commands; nothing is parsed after a
//!   session turns encrypted (STARTTLS).
//! - Every per-flow buffer and the flow table are bounded by [`SmtpLimits`];
//!   whatever is cut is counted in [`SmtpStats`] (anomalies), never logged.
//!
//! **Layout.** `line` (bounded line splitter), `parse` (pure command and reply
//! parsing over one line), `stream` (per-direction TCP reassembly), `session`
//! (per-flow SMTP state machine), `tracker` (flow table, eviction, events).
//! Tests: `tests/` (hand-built sessions), `proptests` (segmentation,
//! reordering and retransmission never change the events).

mod line;
mod parse;
mod session;
mod stream;
mod tracker;

#[cfg(test)]
mod proptests;
#[cfg(test)]
mod tests;

use std::net::IpAddr;

pub use crate::packet::TcpSegment;
pub use tracker::SmtpTracker;

/// The well-known SMTP port (RFC 5321 §4.5.4.2 / IANA).
pub const SMTP_PORT: u16 = 25;

/// Longest recipient address kept as evidence, in bytes (RFC 5321
/// §4.5.3.1.1: the local part is at most 64 octets; a sample does not need
/// more to be recognised).
pub const MAX_RECIPIENT_LEN: usize = 64;

/// Most commands awaiting a reply in one flow. RFC 5321 §4.5.3.1.8 requires
/// servers to accept 100 recipients; with MAIL, DATA and a few more this
/// covers a fully pipelined transaction. Beyond it the oldest is dropped
/// (counted in [`SmtpStats::pending_commands_dropped`]).
pub const MAX_PENDING_COMMANDS: usize = 128;

/// Bounds of the SMTP stage. Every limit has a reason; see [`Default`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SmtpLimits {
    /// Most flows tracked at once; at the cap the oldest flow is evicted
    /// (counted in [`SmtpStats::flows_evicted`]).
    pub max_flows: usize,
    /// A flow with no segment for this long is dropped by
    /// [`SmtpTracker::expire`] (counted in [`SmtpStats::flows_expired`]).
    pub idle_timeout_micros: i64,
    /// Longest line kept, in octets before the LF (the CR counts). A longer
    /// line is counted and skipped; parsing resumes after the next LF.
    pub max_line_len: usize,
    /// Out-of-order bytes held per flow (both directions together) while a
    /// gap is waiting to be filled.
    pub max_ooo_bytes_per_flow: usize,
    /// Out-of-order segments held per direction (bounds the bookkeeping when
    /// segments are tiny).
    pub max_ooo_segments_per_direction: usize,
}

impl Default for SmtpLimits {
    /// - `max_flows` 65 536: concurrent SMTP connections of a busy site fit
    ///   with room; worst case memory stays near 1.5 GiB even when every
    ///   flow fills every buffer (16 KiB held + 2 x 2 KiB lines + pending).
    /// - `idle_timeout_micros` 300 s: RFC 5321 §4.5.3.2.7, a server closes a
    ///   session after 5 minutes without a command.
    /// - `max_line_len` 2 048: RFC 5321 §4.5.3.1.4-6 allow 512 octets for a
    ///   command or reply line and 1 000 for a text line; real mailers exceed
    ///   1 000 in bodies, and Postfix's own `line_length_limit` is 2 048.
    /// - `max_ooo_bytes_per_flow` 16 KiB: about eleven full-size Ethernet
    ///   segments, more than the usual reordering window on a span port.
    /// - `max_ooo_segments_per_direction` 32: twice the number of full-size
    ///   segments the byte cap allows.
    fn default() -> Self {
        Self {
            max_flows: 65_536,
            idle_timeout_micros: 300 * 1_000_000,
            max_line_len: 2_048,
            max_ooo_bytes_per_flow: 16 * 1024,
            max_ooo_segments_per_direction: 32,
        }
    }
}

/// Counters of the SMTP stage: volumes, and anomalies (things cut or skipped
/// because of a limit or a broken stream). All monotonic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct SmtpStats {
    /// Segments with port 25 at one end.
    pub segments: u64,
    pub flows_created: u64,
    /// Flows picked up without their SYN (mid-stream or one-sided capture).
    pub flows_midstream: u64,
    /// Anomaly: flows evicted because the table was full.
    pub flows_evicted: u64,
    /// Flows dropped after `idle_timeout_micros` without a segment.
    pub flows_expired: u64,
    /// Flows closed by RST or FIN in both directions.
    pub flows_closed: u64,
    /// Session starts (SYN without ACK to port 25), retransmissions excluded.
    pub sessions: u64,
    pub syn_retransmits: u64,
    /// Payload bytes dropped because they were already delivered
    /// (retransmissions, overlaps).
    pub duplicate_bytes: u64,
    /// Segments that went into the out-of-order hold.
    pub ooo_segments_held: u64,
    /// Anomaly: held out-of-order data thrown away undelivered (its flow
    /// ended before the gap was filled or skipped).
    pub ooo_dropped_segments: u64,
    pub ooo_dropped_bytes: u64,
    /// Anomaly: gaps given up on because the hold was full; parsing resumes
    /// at the next line start after the gap.
    pub gaps_skipped: u64,
    /// Anomaly: command or reply lines longer than `max_line_len`.
    pub lines_too_long: u64,
    /// DATA body lines longer than `max_line_len` (common in real mail; not
    /// parsed anyway).
    pub body_lines_too_long: u64,
    /// Anomaly: server lines that are not `NNN[ -]text`.
    pub bad_reply_lines: u64,
    /// Replies with no command waiting (mid-stream or server-only capture).
    pub unmatched_replies: u64,
    /// Anomaly: commands dropped from a full pending queue.
    pub pending_commands_dropped: u64,
    /// Sessions that turned encrypted (STARTTLS accepted, or TLS seen when a
    /// flow was picked up mid-stream).
    pub encrypted_sessions: u64,
}

impl SmtpStats {
    /// Adds another tracker's counters (several capture threads on one
    /// interface). Every field, or this does not compile.
    pub fn add(&mut self, o: &SmtpStats) {
        let SmtpStats {
            segments,
            flows_created,
            flows_midstream,
            flows_evicted,
            flows_expired,
            flows_closed,
            sessions,
            syn_retransmits,
            duplicate_bytes,
            ooo_segments_held,
            ooo_dropped_segments,
            ooo_dropped_bytes,
            gaps_skipped,
            lines_too_long,
            body_lines_too_long,
            bad_reply_lines,
            unmatched_replies,
            pending_commands_dropped,
            encrypted_sessions,
        } = *o;
        self.segments += segments;
        self.flows_created += flows_created;
        self.flows_midstream += flows_midstream;
        self.flows_evicted += flows_evicted;
        self.flows_expired += flows_expired;
        self.flows_closed += flows_closed;
        self.sessions += sessions;
        self.syn_retransmits += syn_retransmits;
        self.duplicate_bytes += duplicate_bytes;
        self.ooo_segments_held += ooo_segments_held;
        self.ooo_dropped_segments += ooo_dropped_segments;
        self.ooo_dropped_bytes += ooo_dropped_bytes;
        self.gaps_skipped += gaps_skipped;
        self.lines_too_long += lines_too_long;
        self.body_lines_too_long += body_lines_too_long;
        self.bad_reply_lines += bad_reply_lines;
        self.unmatched_replies += unmatched_replies;
        self.pending_commands_dropped += pending_commands_dropped;
        self.encrypted_sessions += encrypted_sessions;
    }
}

/// One SMTP event. `ip` is the address whose counters the event changes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SmtpEvent {
    /// Packet time, microseconds since the epoch.
    pub ts_micros: i64,
    pub ip: IpAddr,
    pub peer: IpAddr,
    pub kind: SmtpEventKind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SmtpEventKind {
    /// A new session: `ip` = server (the SYN's destination, port 25),
    /// `peer` = client.
    SessionStart,
    /// The same SYN seen from the client's side: `ip` = the SYN's source,
    /// which opened a session to a remote port 25; `peer` = server.
    OutboundSessionStart,
    /// A client command: `ip` = server, `peer` = client.
    Command(SmtpCommand),
    /// One complete server reply (all lines of a multi-line reply):
    /// `ip` = server, `peer` = client.
    Reply {
        code: u16,
        /// The command this replies to, in order; `Connect` for the banner;
        /// `None` when no command was waiting.
        to: Option<SmtpCommandKind>,
        /// A 5xx reply to RCPT (or to an unknown command) that says the
        /// mailbox does not exist: 550 with 5.1.1, or "user unknown" or
        /// "recipient address rejected" in its text.
        user_unknown: bool,
        /// For a 5xx reply to RCPT: the rejected address, lower-cased, at
        /// most [`MAX_RECIPIENT_LEN`] bytes.
        recipient: Option<Box<str>>,
    },
    /// The session became encrypted; nothing more is parsed.
    /// `ip` = server, `peer` = client.
    StartTls,
}

/// A client command, with only the detail that counting needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SmtpCommand {
    Helo,
    Ehlo,
    /// `null_sender`: the reverse path is `<>` (a bounce).
    MailFrom {
        null_sender: bool,
    },
    /// The address is kept inside the tracker and shows up only in the
    /// reply event when the RCPT is rejected (no allocation per RCPT).
    Rcpt,
    Data,
    /// RFC 3030 CHUNKING; the chunk's bytes are skipped, not parsed.
    Bdat,
    Rset,
    Quit,
    StartTls,
    Other,
}

/// What a reply answers: a command, the connection itself (the banner), or
/// the end of a DATA body.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SmtpCommandKind {
    /// The connection itself: the 220 banner answers it.
    Connect,
    Helo,
    Ehlo,
    MailFrom,
    Rcpt,
    Data,
    /// The `.` line ending a DATA body; its reply accepts or refuses the
    /// message.
    EndOfData,
    Bdat,
    Rset,
    Quit,
    StartTls,
    Other,
}

impl From<SmtpCommand> for SmtpCommandKind {
    fn from(command: SmtpCommand) -> Self {
        match command {
            SmtpCommand::Helo => Self::Helo,
            SmtpCommand::Ehlo => Self::Ehlo,
            SmtpCommand::MailFrom { .. } => Self::MailFrom,
            SmtpCommand::Rcpt => Self::Rcpt,
            SmtpCommand::Data => Self::Data,
            SmtpCommand::Bdat => Self::Bdat,
            SmtpCommand::Rset => Self::Rset,
            SmtpCommand::Quit => Self::Quit,
            SmtpCommand::StartTls => Self::StartTls,
            SmtpCommand::Other => Self::Other,
        }
    }
}

/// A reply line as a server logs it (`550 5.1.1 <x@y>: Recipient address
/// rejected: User unknown ...`): its code and whether it says "user unknown",
/// by the same rule as a reply on the wire. For log inputs (Postfix maillog).
pub fn logged_reply(line: &[u8]) -> Option<(u16, bool)> {
    let l = parse::parse_reply_line(line)?;
    let user_unknown = l.code >= 500 && ((l.code == 550 && l.status_5_1_1) || l.says_user_unknown);
    Some((l.code, user_unknown))
}

/// A recipient address lower-cased and cut to [`MAX_RECIPIENT_LEN`] bytes,
/// as the wire path keeps it for evidence.
pub fn recipient_evidence(raw: &[u8]) -> Box<str> {
    let mut buf = [0u8; MAX_RECIPIENT_LEN];
    let n = parse::normalize_recipient(raw, &mut buf);
    String::from_utf8_lossy(&buf[..n]).into()
}
