//! Command and reply parsing: pure functions over one line (no CRLF).
//!
//! Place: called by `session` for each line from `line`. Parsing is lenient
//! (RFC 5321 §4.1.1: verbs are case-insensitive); an unknown verb is
//! [`SmtpCommand::Other`], a server line that is not `NNN[ -]text` is `None`
//! (counted by the caller).

use super::{MAX_RECIPIENT_LEN, SmtpCommand};

/// A command line, with the arguments that the session needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedCommand<'a> {
    pub command: SmtpCommand,
    /// RCPT only: the forward path without `<>` or parameters (raw case).
    pub recipient: &'a [u8],
    /// BDAT only (RFC 3030): the chunk size in octets.
    pub chunk_size: u64,
}

pub fn parse_command(line: &[u8]) -> ParsedCommand<'_> {
    let mut parsed = ParsedCommand {
        command: SmtpCommand::Other,
        recipient: &[],
        chunk_size: 0,
    };
    let verb_end = line.iter().position(|&b| b == b' ').unwrap_or(line.len());
    let (verb, args) = (&line[..verb_end], trim_start(&line[verb_end..]));
    let is = |name: &[u8]| verb.eq_ignore_ascii_case(name);
    parsed.command = if is(b"HELO") {
        SmtpCommand::Helo
    } else if is(b"EHLO") {
        SmtpCommand::Ehlo
    } else if is(b"MAIL") && starts_with_ignore_case(args, b"FROM:") {
        let path = trim_start(&args[5..]);
        SmtpCommand::MailFrom {
            null_sender: path.starts_with(b"<>"),
        }
    } else if is(b"RCPT") && starts_with_ignore_case(args, b"TO:") {
        parsed.recipient = forward_path(trim_start(&args[3..]));
        SmtpCommand::Rcpt
    } else if is(b"DATA") {
        SmtpCommand::Data
    } else if is(b"BDAT") {
        let digits = args.iter().take_while(|b| b.is_ascii_digit());
        parsed.chunk_size = digits.fold(0u64, |n, &d| {
            n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
        });
        SmtpCommand::Bdat
    } else if is(b"RSET") {
        SmtpCommand::Rset
    } else if is(b"QUIT") {
        SmtpCommand::Quit
    } else if is(b"STARTTLS") {
        SmtpCommand::StartTls
    } else {
        SmtpCommand::Other
    };
    parsed
}

/// `<user@host> NOTIFY=...` -> `user@host`; without `<`, the first word.
fn forward_path(path: &[u8]) -> &[u8] {
    if let Some(inner) = path.strip_prefix(b"<") {
        let end = inner.iter().position(|&b| b == b'>').unwrap_or(inner.len());
        &inner[..end]
    } else {
        let end = path.iter().position(|&b| b == b' ').unwrap_or(path.len());
        &path[..end]
    }
}

/// One line of a server reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplyLine {
    pub code: u16,
    /// `NNN text` or bare `NNN` ends the reply; `NNN-text` continues it.
    pub last: bool,
    /// The text starts with the enhanced status code 5.1.1 (RFC 3463: bad
    /// destination mailbox address).
    pub status_5_1_1: bool,
    /// The text says "user unknown" or "recipient address rejected" (Postfix
    /// and Sendmail wording), in any case.
    pub says_user_unknown: bool,
}

pub fn parse_reply_line(line: &[u8]) -> Option<ReplyLine> {
    let digits = line.get(..3)?;
    if !digits.iter().all(u8::is_ascii_digit) || digits[0] < b'2' || digits[0] > b'5' {
        return None;
    }
    let code = digits
        .iter()
        .fold(0u16, |n, &d| n * 10 + u16::from(d - b'0'));
    let (last, text) = match line.get(3) {
        None => (true, &[][..]),
        Some(b' ') => (true, &line[4..]),
        Some(b'-') => (false, &line[4..]),
        Some(_) => return None,
    };
    let text = trim_start(text);
    let status_word = &text[..text.iter().position(|&b| b == b' ').unwrap_or(text.len())];
    Some(ReplyLine {
        code,
        last,
        status_5_1_1: status_word == b"5.1.1",
        says_user_unknown: contains_ignore_case(text, b"user unknown")
            || contains_ignore_case(text, b"recipient address rejected"),
    })
}

/// Lower-case `raw` into `out` (at most [`MAX_RECIPIENT_LEN`] bytes, cut at
/// a UTF-8 boundary); returns the length written.
pub fn normalize_recipient(raw: &[u8], out: &mut [u8; MAX_RECIPIENT_LEN]) -> usize {
    let cut = &raw[..raw.len().min(MAX_RECIPIENT_LEN)];
    let valid = match std::str::from_utf8(cut) {
        Ok(s) => s.len(),
        Err(e) => e.valid_up_to(),
    };
    for (dst, src) in out.iter_mut().zip(&cut[..valid]) {
        *dst = src.to_ascii_lowercase();
    }
    valid
}

/// Verbs of RFC 5321 §4.1 and common extensions (RFC 3207 STARTTLS, RFC
/// 4954 AUTH, RFC 3030 BDAT, RFC 1985 ETRN).
const KNOWN_VERBS: &[&[u8]] = &[
    b"HELO",
    b"EHLO",
    b"MAIL",
    b"RCPT",
    b"DATA",
    b"BDAT",
    b"RSET",
    b"QUIT",
    b"NOOP",
    b"VRFY",
    b"EXPN",
    b"HELP",
    b"AUTH",
    b"ETRN",
    b"STARTTLS",
];

/// Payload that starts like a client command line (a known verb, any case,
/// then space or CRLF): used after a gap or a mid-stream pickup to keep a
/// first line that starts right there.
pub fn looks_like_command_start(data: &[u8]) -> bool {
    let verb_len = data.iter().take_while(|b| b.is_ascii_alphabetic()).count();
    matches!(data.get(verb_len), Some(b' ' | b'\r' | b'\n'))
        && KNOWN_VERBS
            .iter()
            .any(|verb| verb.eq_ignore_ascii_case(&data[..verb_len]))
}

/// Payload that starts like a reply line (`NNN` then space, dash or CRLF).
pub fn looks_like_reply_start(data: &[u8]) -> bool {
    data.len() >= 4 && parse_reply_line(&data[..4]).is_some()
        || matches!(data.get(3), Some(b'\r')) && parse_reply_line(&data[..3]).is_some()
}

/// Payload that starts like a TLS record (RFC 8446 §5.1: content type 20-23,
/// legacy version 3.x).
pub fn looks_like_tls(data: &[u8]) -> bool {
    matches!(data, [20..=23, 3, ..])
}

fn trim_start(s: &[u8]) -> &[u8] {
    let n = s.iter().take_while(|&&b| b == b' ' || b == b'\t').count();
    &s[n..]
}

fn starts_with_ignore_case(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

fn contains_ignore_case(haystack: &[u8], needle: &[u8]) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w.eq_ignore_ascii_case(needle))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_are_case_insensitive() {
        for line in [
            &b"mail from:<a@b>"[..],
            b"MAIL FROM:<a@b>",
            b"Mail From: <a@b> SIZE=10",
        ] {
            assert_eq!(
                parse_command(line).command,
                SmtpCommand::MailFrom { null_sender: false }
            );
        }
        assert_eq!(parse_command(b"ehlo x").command, SmtpCommand::Ehlo);
        assert_eq!(parse_command(b"StartTLS").command, SmtpCommand::StartTls);
        assert_eq!(parse_command(b"quit").command, SmtpCommand::Quit);
    }

    #[test]
    fn null_sender() {
        assert_eq!(
            parse_command(b"MAIL FROM:<>").command,
            SmtpCommand::MailFrom { null_sender: true }
        );
        assert_eq!(
            parse_command(b"MAIL FROM: <> BODY=8BITMIME").command,
            SmtpCommand::MailFrom { null_sender: true }
        );
    }

    #[test]
    fn rcpt_forward_path() {
        let p = parse_command(b"rcpt to:<Bob@Example.COM> NOTIFY=NEVER");
        assert_eq!(
            (p.command, p.recipient),
            (SmtpCommand::Rcpt, &b"Bob@Example.COM"[..])
        );
        assert_eq!(parse_command(b"RCPT TO: bob@x").recipient, b"bob@x");
    }

    #[test]
    fn mail_without_from_is_other() {
        assert_eq!(parse_command(b"MAIL").command, SmtpCommand::Other);
        assert_eq!(parse_command(b"RCPTTO:<x>").command, SmtpCommand::Other);
        assert_eq!(parse_command(b"").command, SmtpCommand::Other);
    }

    #[test]
    fn bdat_size() {
        let p = parse_command(b"BDAT 1000 LAST");
        assert_eq!((p.command, p.chunk_size), (SmtpCommand::Bdat, 1000));
    }

    #[test]
    fn reply_lines() {
        let l = parse_reply_line(b"250-PIPELINING").unwrap();
        assert_eq!((l.code, l.last), (250, false));
        let l = parse_reply_line(b"250 OK").unwrap();
        assert_eq!((l.code, l.last), (250, true));
        assert!(parse_reply_line(b"354").unwrap().last);
        assert_eq!(parse_reply_line(b"25O ok"), None);
        assert_eq!(parse_reply_line(b"250x"), None);
        assert_eq!(parse_reply_line(b"hello"), None);
        assert_eq!(parse_reply_line(b"999 no"), None);
    }

    #[test]
    fn user_unknown_wording() {
        let l = parse_reply_line(
            b"550 5.1.1 <bob@x>: Recipient address rejected: User unknown in local recipient table",
        )
        .unwrap();
        assert!(l.status_5_1_1 && l.says_user_unknown);
        let l = parse_reply_line(b"550 5.1.1 No such mailbox").unwrap();
        assert!(l.status_5_1_1 && !l.says_user_unknown);
        let l = parse_reply_line(b"550 USER UNKNOWN").unwrap();
        assert!(!l.status_5_1_1 && l.says_user_unknown);
        let l = parse_reply_line(b"554 5.7.1 <bob@x>: Relay access denied").unwrap();
        assert!(!l.status_5_1_1 && !l.says_user_unknown);
    }

    #[test]
    fn recipient_normalised_and_bounded() {
        let mut buf = [0u8; MAX_RECIPIENT_LEN];
        let n = normalize_recipient(b"Bob@Example.COM", &mut buf);
        assert_eq!(&buf[..n], b"bob@example.com");
        let long = [b'A'; 100];
        assert_eq!(normalize_recipient(&long, &mut buf), MAX_RECIPIENT_LEN);
        // 63 ASCII bytes then a 2-byte character: the cut keeps valid UTF-8.
        let mut raw = vec![b'a'; 63];
        raw.extend_from_slice("é".as_bytes());
        assert_eq!(normalize_recipient(&raw, &mut buf), 63);
    }

    #[test]
    fn line_start_heuristics() {
        assert!(looks_like_command_start(b"RCPT TO:<x>\r\n"));
        assert!(looks_like_command_start(b"QUIT\r\n"));
        assert!(looks_like_command_start(b"starttls\r\n"));
        assert!(!looks_like_command_start(b"om:<x>\r\n"));
        assert!(!looks_like_command_start(b"from the body\r\n"));
        assert!(looks_like_reply_start(b"250 ok\r\n"));
        assert!(looks_like_reply_start(b"354\r\n"));
        assert!(!looks_like_reply_start(b"0 ok\r\n"));
        assert!(looks_like_tls(&[0x17, 0x03, 0x03, 0x00, 0x20]));
        assert!(!looks_like_tls(b"EHLO"));
    }
}
