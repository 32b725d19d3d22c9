//! Per-flow SMTP state machine: in-order bytes of each direction -> events.
//!
//! Place: `tracker` owns one [`Session`] per flow and feeds it the chunks
//! that `stream` releases. Lines come from `line`, meaning from `parse`.
//!
//! - Client: commands, each pushed on a bounded FIFO of commands awaiting a
//!   reply (RFC 2920 pipelining); after DATA the body is skipped up to the
//!   `.` line (RFC 5321 §4.1.1.4) unless the server refuses DATA; after BDAT
//!   the chunk's octets are skipped (RFC 3030).
//! - Server: reply lines; `NNN-` lines are gathered into one reply (RFC 5321
//!   §4.2.1), which answers the oldest waiting command (the banner answers
//!   the connection).
//! - STARTTLS (RFC 3207): encrypted after the server's 220 to it, or at once
//!   when the server has not been heard at all (one-sided capture). Nothing
//!   is parsed in either direction afterwards.

use std::collections::VecDeque;
use std::net::IpAddr;

use super::line::{LineSplitter, Split};
use super::parse::{
    looks_like_command_start, looks_like_reply_start, looks_like_tls, normalize_recipient,
    parse_command, parse_reply_line,
};
use super::stream::Chunk;
use super::{
    MAX_PENDING_COMMANDS, MAX_RECIPIENT_LEN, SmtpCommand, SmtpCommandKind, SmtpEvent,
    SmtpEventKind, SmtpStats,
};

/// Where events of the current segment go.
pub struct Ctx<'a> {
    pub ts_micros: i64,
    pub server: IpAddr,
    pub client: IpAddr,
    pub out: &'a mut Vec<SmtpEvent>,
}

impl Ctx<'_> {
    fn emit(&mut self, kind: SmtpEventKind) {
        self.out.push(SmtpEvent {
            ts_micros: self.ts_micros,
            ip: self.server,
            peer: self.client,
            kind,
        });
    }
}

/// A command waiting for its reply. The RCPT address is kept inline so that
/// a RCPT does not allocate; a string is made only if it is rejected.
#[derive(Debug, Clone, Copy)]
struct Pending {
    kind: SmtpCommandKind,
    recipient_len: u8,
    recipient: [u8; MAX_RECIPIENT_LEN],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ClientMode {
    Commands,
    /// Inside a DATA body: only the `.` line matters.
    Body,
    /// Inside a BDAT chunk: this many octets are not lines.
    Chunk(u64),
}

/// A reply whose last line has not come yet.
#[derive(Debug, Clone, Copy)]
struct ReplyInProgress {
    code: u16,
    status_5_1_1: bool,
    says_user_unknown: bool,
}

#[derive(Debug)]
pub struct Session {
    client_lines: LineSplitter,
    server_lines: LineSplitter,
    /// The next client bytes follow a gap (or start the capture).
    client_after_gap: bool,
    server_after_gap: bool,
    state: State,
}

#[derive(Debug)]
struct State {
    pending: VecDeque<Pending>,
    client_mode: ClientMode,
    reply: Option<ReplyInProgress>,
    starttls_requested: bool,
    encrypted: bool,
    /// Any server payload seen (else the capture may be one-sided).
    server_spoke: bool,
}

impl Session {
    /// `expect_banner`: the connection was seen opening, so the first reply
    /// is the banner.
    pub fn new(max_line_len: usize, expect_banner: bool) -> Self {
        let mut pending = VecDeque::new();
        if expect_banner {
            pending.push_back(Pending::new(SmtpCommandKind::Connect, &[]));
        }
        Self {
            client_lines: LineSplitter::new(max_line_len),
            server_lines: LineSplitter::new(max_line_len),
            client_after_gap: false,
            server_after_gap: false,
            state: State {
                pending,
                client_mode: ClientMode::Commands,
                reply: None,
                starttls_requested: false,
                encrypted: false,
                server_spoke: false,
            },
        }
    }

    pub fn is_encrypted(&self) -> bool {
        self.state.encrypted
    }

    /// First bytes of a direction that started without a SYN: TLS means the
    /// session is already encrypted; otherwise they are treated like bytes
    /// after a gap.
    pub fn pick_up(&mut self, to_server: bool, first: &[u8], stats: &mut SmtpStats) {
        if looks_like_tls(first) {
            if !self.state.encrypted {
                self.state.encrypted = true;
                stats.encrypted_sessions += 1;
            }
        } else if to_server {
            self.client_after_gap = true;
        } else {
            self.server_after_gap = true;
        }
    }

    /// In-order data (or a gap) from one direction. The first bytes after a
    /// gap are kept when they look like a line start, else skipped up to the
    /// next line.
    pub fn on_chunk(
        &mut self,
        to_server: bool,
        chunk: Chunk<'_>,
        ctx: &mut Ctx<'_>,
        stats: &mut SmtpStats,
    ) {
        match chunk {
            Chunk::Gap if to_server => {
                self.client_lines.clear();
                self.client_after_gap = true;
                if let ClientMode::Chunk(_) = self.state.client_mode {
                    self.state.client_mode = ClientMode::Commands;
                }
            }
            Chunk::Gap => {
                self.server_lines.clear();
                self.server_after_gap = true;
            }
            Chunk::Data(data) if to_server => {
                if std::mem::take(&mut self.client_after_gap) && !looks_like_command_start(data) {
                    self.client_lines.resync();
                }
                self.client_bytes(data, ctx, stats);
            }
            Chunk::Data(data) => {
                if std::mem::take(&mut self.server_after_gap) && !looks_like_reply_start(data) {
                    self.server_lines.resync();
                }
                self.server_bytes(data, ctx, stats);
            }
        }
    }

    fn client_bytes(&mut self, mut rest: &[u8], ctx: &mut Ctx<'_>, stats: &mut SmtpStats) {
        while !rest.is_empty() && !self.state.encrypted {
            if let ClientMode::Chunk(left) = self.state.client_mode {
                let n = rest.len().min(usize::try_from(left).unwrap_or(usize::MAX));
                rest = &rest[n..];
                let left = left - n as u64;
                self.state.client_mode = if left == 0 {
                    ClientMode::Commands
                } else {
                    ClientMode::Chunk(left)
                };
                continue;
            }
            if self.state.starttls_requested && looks_like_tls(rest) {
                // The 220 to STARTTLS was missed but the handshake is here.
                self.state.encrypt(ctx, stats);
                return;
            }
            match self.client_lines.next_line(&mut rest) {
                Split::Line(line) => self.state.on_client_line(line, ctx, stats),
                Split::TooLong if self.state.client_mode == ClientMode::Body => {
                    stats.body_lines_too_long += 1;
                }
                Split::TooLong => stats.lines_too_long += 1,
                Split::NeedMore => return,
            }
        }
    }

    fn server_bytes(&mut self, mut rest: &[u8], ctx: &mut Ctx<'_>, stats: &mut SmtpStats) {
        self.state.server_spoke = true;
        while !rest.is_empty() && !self.state.encrypted {
            match self.server_lines.next_line(&mut rest) {
                Split::Line(line) => self.state.on_server_line(line, ctx, stats),
                Split::TooLong => stats.lines_too_long += 1,
                Split::NeedMore => return,
            }
        }
    }
}

impl Pending {
    fn new(kind: SmtpCommandKind, raw_recipient: &[u8]) -> Self {
        let mut recipient = [0u8; MAX_RECIPIENT_LEN];
        let len = normalize_recipient(raw_recipient, &mut recipient);
        Self {
            kind,
            recipient_len: len as u8,
            recipient,
        }
    }

    fn recipient(&self) -> Option<Box<str>> {
        let bytes = &self.recipient[..usize::from(self.recipient_len)];
        // normalize_recipient keeps whole UTF-8 characters only.
        let text = std::str::from_utf8(bytes).ok()?;
        (!text.is_empty()).then(|| text.into())
    }
}

impl State {
    fn push_pending(&mut self, pending: Pending, stats: &mut SmtpStats) {
        if self.pending.len() >= MAX_PENDING_COMMANDS {
            self.pending.pop_front();
            // Without any server bytes (one-sided capture) no reply will
            // come: dropping is expected there, not an anomaly.
            if self.server_spoke {
                stats.pending_commands_dropped += 1;
            }
        }
        self.pending.push_back(pending);
    }

    fn encrypt(&mut self, ctx: &mut Ctx<'_>, stats: &mut SmtpStats) {
        if !self.encrypted {
            self.encrypted = true;
            stats.encrypted_sessions += 1;
            ctx.emit(SmtpEventKind::StartTls);
        }
    }

    fn on_client_line(&mut self, line: &[u8], ctx: &mut Ctx<'_>, stats: &mut SmtpStats) {
        if self.client_mode == ClientMode::Body {
            if line == b"." {
                self.client_mode = ClientMode::Commands;
                self.push_pending(Pending::new(SmtpCommandKind::EndOfData, &[]), stats);
            }
            return;
        }
        let parsed = parse_command(line);
        ctx.emit(SmtpEventKind::Command(parsed.command));
        let kind = SmtpCommandKind::from(parsed.command);
        self.push_pending(Pending::new(kind, parsed.recipient), stats);
        match parsed.command {
            // Tentative: undone if the server refuses DATA. A client sends
            // nothing after DATA before the reply, so the reply (when the
            // server side is captured) is always seen first.
            SmtpCommand::Data => self.client_mode = ClientMode::Body,
            SmtpCommand::Bdat if parsed.chunk_size > 0 => {
                self.client_mode = ClientMode::Chunk(parsed.chunk_size);
            }
            SmtpCommand::StartTls if !self.server_spoke => self.encrypt(ctx, stats),
            SmtpCommand::StartTls => self.starttls_requested = true,
            _ => {}
        }
    }

    fn on_server_line(&mut self, line: &[u8], ctx: &mut Ctx<'_>, stats: &mut SmtpStats) {
        let Some(reply_line) = parse_reply_line(line) else {
            stats.bad_reply_lines += 1;
            return;
        };
        let reply = self.reply.get_or_insert(ReplyInProgress {
            code: reply_line.code,
            status_5_1_1: false,
            says_user_unknown: false,
        });
        reply.status_5_1_1 |= reply_line.status_5_1_1;
        reply.says_user_unknown |= reply_line.says_user_unknown;
        if reply_line.last {
            let reply = *reply;
            self.reply = None;
            self.finish_reply(reply, ctx, stats);
        }
    }

    fn finish_reply(&mut self, reply: ReplyInProgress, ctx: &mut Ctx<'_>, stats: &mut SmtpStats) {
        let pending = self.pending.pop_front();
        if pending.is_none() {
            stats.unmatched_replies += 1;
        }
        let to = pending.map(|p| p.kind);
        let code = reply.code;
        let permanent = code / 100 == 5;
        let to_rcpt = to == Some(SmtpCommandKind::Rcpt);
        let user_unknown = permanent
            && (to_rcpt || to.is_none())
            && ((code == 550 && reply.status_5_1_1) || reply.says_user_unknown);
        let recipient = pending
            .filter(|_| permanent && to_rcpt)
            .and_then(|p| p.recipient());
        ctx.emit(SmtpEventKind::Reply {
            code,
            to,
            user_unknown,
            recipient,
        });
        match to {
            Some(SmtpCommandKind::Data) if code == 354 => self.client_mode = ClientMode::Body,
            Some(SmtpCommandKind::Data) if self.client_mode == ClientMode::Body => {
                self.client_mode = ClientMode::Commands;
            }
            Some(SmtpCommandKind::StartTls) => {
                self.starttls_requested = false;
                if code == 220 {
                    self.encrypt(ctx, stats);
                }
            }
            _ => {}
        }
    }
}
