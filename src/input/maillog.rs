//! Postfix's maillog (syslog or `maillog_file`) -> SMTP events, the ones the
//! papers counted with grep, as the wire path would give them:
//!
//! | line | event(s) |
//! |---|---|
//! | `smtpd[P]: connect from NAME[IP]` | `SessionStart` (N_c) |
//! | `smtpd[P]: QID: client=NAME[IP]` | `MailFrom` (N_f) + one `Rcpt`, once per transaction |
//! | `smtpd[P]: NOQUEUE: reject: RCPT from NAME[IP]: 550 5.1.1 <a>: ... User unknown ...; from=<s> to=<a>` | `MailFrom` (new transaction), `Rcpt`, `Reply` 5xx (user unknown by the wire's rule) |
//! | `smtpd[P]: disconnect from NAME[IP] ... mail=N rcpt=K/M ...` | the session's remaining `MailFrom`/`Rcpt` (Postfix ≥ 3.0 counts them) |
//! | `smtp[P]: QID: to=<a>, relay=NAME[IP]:25, ...` | `OutboundSessionStart` (one per QID and relay; `conn_use=` is a cached connection) |
//!
//! A transaction opens with its first `client=` or reject line and closes
//! when cleanup logs `QID: message-id=` for its queue ID or the sender of a
//! reject changes. Event time is the line's time. The mail server's address
//! is not in the log: it comes from `--mail-server [HOST=]IP`.

use std::collections::HashMap;
use std::net::IpAddr;

use super::Malformed;
use super::logtime::{self, Year};
use crate::smtp::{SmtpCommand, SmtpCommandKind, SmtpEvent, SmtpEventKind};

/// Sessions (smtpd processes) and queue IDs followed at once; beyond, the
/// tables are cleared (counted): a process serves one session at a time and
/// Postfix's default `default_process_limit` is 100.
pub const MAX_TRACKED: usize = 16_384;

#[derive(Debug, Default)]
struct Session {
    txn_open: bool,
    txn_from: Option<String>,
    mail: u64,
    rcpt: u64,
}

/// Which address is the mail server's, by syslog host name.
#[derive(Debug, Clone, Default)]
pub struct Servers {
    pub by_host: Vec<(String, IpAddr)>,
    pub default: Option<IpAddr>,
}

impl Servers {
    fn of(&self, host: &str) -> Option<IpAddr> {
        self.by_host
            .iter()
            .find(|(h, _)| h.eq_ignore_ascii_case(host))
            .map(|(_, ip)| *ip)
            .or(self.default)
            .or_else(|| host.parse().ok())
    }
}

pub struct Maillog {
    servers: Servers,
    year: Year,
    sessions: HashMap<(IpAddr, u32), Session>,
    queue_ids: HashMap<String, (IpAddr, u32)>,
    last_delivery: HashMap<(IpAddr, u32), (String, IpAddr)>,
    /// Tables cleared at [`MAX_TRACKED`].
    pub resets: u64,
    /// Hosts with no address (their lines are skipped).
    pub unknown_hosts: Vec<String>,
}

fn bracketed_ip(s: &str) -> Option<IpAddr> {
    let a = s.find('[')?;
    let b = a + s[a..].find(']')?;
    s[a + 1..b].parse().ok()
}

fn field<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let i = s.find(key)? + key.len();
    let v = &s[i..];
    Some(&v[..v.find([',', ' ']).unwrap_or(v.len())])
}

fn angle<'a>(s: &'a str, key: &str) -> Option<&'a str> {
    let i = s.find(key)? + key.len();
    let v = s[i..].strip_prefix('<')?;
    Some(&v[..v.find('>')?])
}

/// `mail=3` or `rcpt=1/4` (accepted/total) in a disconnect line: the total.
fn command_count(s: &str, key: &str) -> u64 {
    field(s, key)
        .and_then(|v| v.rsplit('/').next()?.parse().ok())
        .unwrap_or(0)
}

impl Maillog {
    pub fn new(servers: Servers, year: Year) -> Self {
        Maillog {
            servers,
            year,
            sessions: HashMap::new(),
            queue_ids: HashMap::new(),
            last_delivery: HashMap::new(),
            resets: 0,
            unknown_hosts: Vec::new(),
        }
    }

    fn bound(&mut self) {
        if self.sessions.len() > MAX_TRACKED
            || self.queue_ids.len() > MAX_TRACKED
            || self.last_delivery.len() > MAX_TRACKED
        {
            self.sessions.clear();
            self.queue_ids.clear();
            self.last_delivery.clear();
            self.resets += 1;
        }
    }

    /// One line; events go to `out`. `Ok(false)`: not a line mxwatch counts.
    pub fn line(&mut self, line: &str, out: &mut Vec<SmtpEvent>) -> Result<bool, Malformed> {
        // HOST postfix[-x]/SERVICE[PID]: TEXT
        let Some(colon) = line.find("]: ") else {
            return Ok(false);
        };
        let head = &line[..colon];
        let Some(open) = head.rfind('[') else {
            return Ok(false);
        };
        let program = head[..open].rsplit(' ').next().unwrap_or("");
        let Some(service) = program
            .starts_with("postfix")
            .then(|| program.rsplit('/').next())
            .flatten()
        else {
            return Ok(false);
        };
        if service != "smtpd" && service != "smtp" && service != "cleanup" {
            return Ok(false);
        }
        let pid: u32 = head[open + 1..]
            .parse()
            .map_err(|_| Malformed::BadProgram)?;
        let (ts, rest) = logtime::parse(line, self.year).ok_or(Malformed::BadTime)?;
        let host = rest.split(' ').next().unwrap_or("");
        let Some(server) = self.servers.of(host) else {
            if !self.unknown_hosts.iter().any(|h| h == host) {
                self.unknown_hosts.push(host.to_owned());
            }
            return Err(Malformed::UnknownHost);
        };
        let text = &line[colon + 3..];
        self.bound();
        let ev = |kind, peer| SmtpEvent {
            ts_micros: ts,
            ip: server,
            peer,
            kind,
        };
        let key = (server, pid);
        match service {
            "smtpd" => self.smtpd(key, text, ev, out),
            "smtp" => {
                let Some(to) = text.find(": to=<") else {
                    return Ok(false);
                };
                let qid = &text[..to];
                let Some(relay) = field(text, "relay=") else {
                    return Ok(false);
                };
                // relay=none: no connection was made; conn_use=N: a cached one.
                let Some(peer) = bracketed_ip(relay) else {
                    return Ok(true);
                };
                let same = self
                    .last_delivery
                    .insert(key, (qid.to_owned(), peer))
                    .is_some_and(|(q, p)| q == qid && p == peer);
                if !same && !text.contains("conn_use=") {
                    out.push(ev(SmtpEventKind::OutboundSessionStart, peer));
                }
                Ok(true)
            }
            _ => {
                // cleanup: QID: message-id=<...> ends the smtpd transaction.
                if let Some(i) = text.find(": message-id=") {
                    if let Some(k) = self.queue_ids.remove(&text[..i])
                        && let Some(s) = self.sessions.get_mut(&k)
                    {
                        s.txn_open = false;
                        s.txn_from = None;
                    }
                    return Ok(true);
                }
                Ok(false)
            }
        }
    }

    fn smtpd(
        &mut self,
        key: (IpAddr, u32),
        text: &str,
        ev: impl Fn(SmtpEventKind, IpAddr) -> SmtpEvent,
        out: &mut Vec<SmtpEvent>,
    ) -> Result<bool, Malformed> {
        let mail_from = |null_sender| SmtpEventKind::Command(SmtpCommand::MailFrom { null_sender });
        if let Some(r) = text.strip_prefix("connect from ") {
            let peer = bracketed_ip(r).ok_or(Malformed::BadClient)?;
            self.sessions.insert(key, Session::default());
            out.push(ev(SmtpEventKind::SessionStart, peer));
            return Ok(true);
        }
        if let Some(r) = text.strip_prefix("disconnect from ") {
            let peer = bracketed_ip(r).ok_or(Malformed::BadClient)?;
            let s = self.sessions.remove(&key).unwrap_or_default();
            // Postfix's own smtpd_recipient_limit (1000) bounds a session's counts.
            for _ in s.mail..command_count(r, "mail=").min(s.mail + 1000) {
                out.push(ev(mail_from(false), peer));
            }
            for _ in s.rcpt..command_count(r, "rcpt=").min(s.rcpt + 1000) {
                out.push(ev(SmtpEventKind::Command(SmtpCommand::Rcpt), peer));
            }
            return Ok(true);
        }
        if let Some(i) = text.find(": client=") {
            let peer = bracketed_ip(&text[i..]).ok_or(Malformed::BadClient)?;
            self.queue_ids.insert(text[..i].to_owned(), key);
            let s = self.sessions.entry(key).or_default();
            if !s.txn_open {
                s.txn_open = true;
                s.mail += 1;
                out.push(ev(mail_from(false), peer));
            }
            s.rcpt += 1;
            out.push(ev(SmtpEventKind::Command(SmtpCommand::Rcpt), peer));
            return Ok(true);
        }
        if let Some(i) = text.find(": reject: RCPT from ") {
            let r = &text[i + ": reject: RCPT from ".len()..];
            let peer = bracketed_ip(r).ok_or(Malformed::BadClient)?;
            let reply = r
                .find("]: ")
                .map(|j| &r[j + 3..])
                .ok_or(Malformed::BadReply)?;
            let (code, user_unknown) =
                crate::smtp::logged_reply(reply.as_bytes()).ok_or(Malformed::BadReply)?;
            let from = angle(reply, "from=").map(str::to_owned);
            let s = self.sessions.entry(key).or_default();
            if !s.txn_open || (from.is_some() && s.txn_from != from) {
                s.txn_open = true;
                s.mail += 1;
                out.push(ev(mail_from(from.as_deref() == Some("")), peer));
            }
            s.txn_from = from;
            s.rcpt += 1;
            out.push(ev(SmtpEventKind::Command(SmtpCommand::Rcpt), peer));
            let recipient = (code >= 500)
                .then(|| angle(reply, "to="))
                .flatten()
                .map(|a| crate::smtp::recipient_evidence(a.as_bytes()));
            out.push(ev(
                SmtpEventKind::Reply {
                    code,
                    to: Some(SmtpCommandKind::Rcpt),
                    user_unknown,
                    recipient,
                },
                peer,
            ));
            return Ok(true);
        }
        Ok(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(lines: &[&str]) -> Vec<SmtpEvent> {
        let mut m = Maillog::new(
            Servers {
                by_host: vec![("mx".into(), "10.53.0.25".parse().unwrap())],
                default: None,
            },
            Year::Fixed(2026),
        );
        let mut out = Vec::new();
        for l in lines {
            m.line(l, &mut out).unwrap();
        }
        out
    }

    fn kinds(ev: &[SmtpEvent]) -> Vec<String> {
        ev.iter()
            .map(|e| match &e.kind {
                SmtpEventKind::SessionStart => "connect".into(),
                SmtpEventKind::OutboundSessionStart => format!("out {}", e.peer),
                SmtpEventKind::Command(SmtpCommand::MailFrom { null_sender }) => {
                    format!("mail null={null_sender}")
                }
                SmtpEventKind::Command(SmtpCommand::Rcpt) => "rcpt".into(),
                SmtpEventKind::Reply {
                    code,
                    user_unknown,
                    recipient,
                    ..
                } => format!("{code} unknown={user_unknown} {recipient:?}"),
                k => format!("{k:?}"),
            })
            .collect()
    }

    /// A legit inbound message, as the lab's Postfix 3.7.11 logged it.
    #[test]
    fn accepted_message() {
        let ev = run(&[
            "Nov 29 11:22:55 mx postfix/smtpd[27645]: connect from mail.partner1.com[10.53.1.1]",
            "Nov 29 11:22:55 mx postfix/smtpd[27645]: 05BEF9902FF: client=mail.partner1.com[10.53.1.1]",
            "Nov 29 11:22:55 mx postfix/cleanup[28247]: 05BEF9902FF: message-id=<>",
            "Nov 29 11:22:55 mx postfix/qmgr[27560]: 05BEF9902FF: from=<sales@partner1.com>, size=315, nrcpt=1 (queue active)",
            "Nov 29 11:22:55 mx postfix/smtpd[27645]: disconnect from mail.partner1.com[10.53.1.1] ehlo=1 mail=1 rcpt=1 data=1 quit=1 commands=5",
        ]);
        assert_eq!(kinds(&ev), ["connect", "mail null=false", "rcpt"]);
        assert_eq!(ev[0].ip, "10.53.0.25".parse::<IpAddr>().unwrap());
        assert_eq!(ev[0].peer, "10.53.1.1".parse::<IpAddr>().unwrap());
    }

    /// A backscatter session: null sender, two unknown users, one real (queued).
    #[test]
    fn backscatter_session() {
        let ev = run(&[
            "Nov 29 11:25:01 mx postfix/smtpd[300]: connect from unknown[10.53.10.200]",
            "Nov 29 11:25:01 mx postfix/smtpd[300]: NOQUEUE: reject: RCPT from unknown[10.53.10.200]: 550 5.1.1 <user1@sub.univ.test>: Recipient address rejected: User unknown in local recipient table; from=<> to=<User1@sub.univ.test> proto=ESMTP helo=<mail200.isp200.jp>",
            "Nov 29 11:25:01 mx postfix/smtpd[300]: NOQUEUE: reject: RCPT from unknown[10.53.10.200]: 550 5.1.1 <user2@sub.univ.test>: Recipient address rejected: User unknown in local recipient table; from=<> to=<user2@sub.univ.test> proto=ESMTP helo=<mail200.isp200.jp>",
            "Nov 29 11:25:01 mx postfix/smtpd[300]: 1A2B3C: client=unknown[10.53.10.200]",
            "Nov 29 11:25:01 mx postfix/cleanup[301]: 1A2B3C: message-id=<x@y>",
            "Nov 29 11:25:02 mx postfix/smtpd[300]: disconnect from unknown[10.53.10.200] ehlo=1 mail=1 rcpt=1/3 data=1 quit=1 commands=5/7",
        ]);
        assert_eq!(
            kinds(&ev),
            [
                "connect",
                "mail null=true",
                "rcpt",
                "550 unknown=true Some(\"user1@sub.univ.test\")",
                "rcpt",
                "550 unknown=true Some(\"user2@sub.univ.test\")",
                "rcpt"
            ]
        );
    }

    /// A relay session of two messages, and their outbound deliveries.
    #[test]
    fn relay_and_outbound() {
        let ev = run(&[
            "Nov 29 11:25:01 mx postfix/smtpd[400]: connect from unknown[10.53.10.3]",
            "Nov 29 11:25:01 mx postfix/smtpd[400]: AAA1: client=unknown[10.53.10.3]",
            "Nov 29 11:25:01 mx postfix/cleanup[401]: AAA1: message-id=<1@x>",
            "Nov 29 11:25:01 mx postfix/smtpd[400]: AAA2: client=unknown[10.53.10.3]",
            "Nov 29 11:25:01 mx postfix/cleanup[401]: AAA2: message-id=<2@x>",
            "Nov 29 11:25:02 mx postfix/smtp[402]: AAA1: to=<a@deal1.com>, relay=mx.spam.test[10.53.0.99]:25, delay=0.1, delays=0/0/0/0, dsn=2.0.0, status=sent (250 ok)",
            "Nov 29 11:25:02 mx postfix/smtp[402]: AAA1: to=<b@deal1.com>, relay=mx.spam.test[10.53.0.99]:25, delay=0.1, delays=0/0/0/0, dsn=2.0.0, status=sent (250 ok)",
            "Nov 29 11:25:02 mx postfix/smtp[402]: AAA2: to=<a@deal2.com>, relay=mx.spam.test[10.53.0.99]:25, conn_use=2, delay=0.1, dsn=2.0.0, status=sent (250 ok)",
            "Nov 29 11:25:02 mx postfix/smtp[403]: AAA3: to=<a@deal3.com>, relay=none, delay=30, dsn=4.4.1, status=deferred (connect to x: timed out)",
            "Nov 29 11:25:03 mx postfix/smtpd[400]: disconnect from unknown[10.53.10.3] ehlo=1 mail=2 rcpt=2 data=2 quit=1 commands=8",
        ]);
        assert_eq!(
            kinds(&ev),
            [
                "connect",
                "mail null=false",
                "rcpt",
                "mail null=false",
                "rcpt",
                "out 10.53.0.99"
            ]
        );
    }

    #[test]
    fn unknown_host_and_other_programs() {
        let mut m = Maillog::new(Servers::default(), Year::Fixed(2026));
        let mut out = Vec::new();
        assert_eq!(
            m.line(
                "Nov 29 11:25:01 other postfix/smtpd[1]: connect from a[10.0.0.1]",
                &mut out
            ),
            Err(Malformed::UnknownHost)
        );
        assert_eq!(
            m.line(
                "Nov 29 11:25:01 other sshd[1]: connect from a[10.0.0.1]",
                &mut out
            ),
            Ok(false)
        );
        // A host that is an address names itself.
        assert_eq!(
            m.line(
                "Nov 29 11:25:01 192.0.2.25 postfix/smtpd[1]: connect from a[10.0.0.1]",
                &mut out
            ),
            Ok(true)
        );
        assert_eq!(out[0].ip, "192.0.2.25".parse::<IpAddr>().unwrap());
    }
}
