//! Classifier: events -> per-client counters per time bin.
//!
//! Input: batches of events (for the clients of one shard when threaded) and
//! ticks (packet time) that close bins. Output: one [`ClosedBin`] per closed
//! bin with the counters of every client active in it and the addresses of
//! every other tracked client, handed to a [`Downstream`] (the
//! engine's detector and output) the moment it closes. Knows nothing of
//! detection: the downstream only tells it which clients must not be evicted.
//! Invariants: a client is in exactly one shard, so its counters do not depend
//! on the number of shards; the client table and the pending-query table are
//! capped, and what they turn away or evict is counted in [`ShardStats`].

pub mod counters;
pub mod names;
pub mod open;
pub mod pending;
pub mod table;

use std::net::IpAddr;
use std::sync::Arc;

use crate::dns::{self, DnsError, QtypeBucket, RcodeBucket};
use crate::event::{Batch, Event, RawDns};
use crate::smtp::{SmtpCommand, SmtpCommandKind, SmtpEvent, SmtpEventKind};
use crate::time::Bins;

pub use counters::{ClientBin, DISTINCT_BITS, Distinct, DnsCounts, SUB_BINS, Sketch, SmtpCounts};
use open::Ctr;
use pending::{Pending, QueryKey};
use table::{ClientTable, Touch};

#[derive(Debug, Clone)]
pub struct ClassifyConfig {
    pub bins: Bins,
    /// Clients tracked by this shard (the configured total divided by shards).
    pub max_clients: usize,
    /// Queries waiting for a response in this shard.
    pub max_pending: usize,
    /// Configured search domains (lower case, no trailing dot); empty = learn.
    pub local_domains: Vec<String>,
    /// Empty bins still worth closing one by one after a silence (what the
    /// downstream's windows can use); beyond them the clock jumps.
    pub idle_bins_closed: usize,
    /// Closed bins keep their distinct-count sketches (to publish them,
    /// `--publish`); otherwise they are freed once read.
    pub keep_sketches: bool,
}

#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct ShardStats {
    pub dns_messages: u64,
    pub dns_short_header: u64,
    pub dns_bad_name: u64,
    pub dns_no_question: u64,
    pub dns_unsolicited_responses: u64,
    pub pending_evicted: u64,
    pub clients_evicted: u64,
    /// Of the evicted clients, those with history (protected segment).
    pub clients_protected_evicted: u64,
    /// Clients moved from probation to protected.
    pub clients_promoted: u64,
    /// Events of new clients turned away while the client table was full.
    pub clients_overflow_events: u64,
    pub learn_candidates_dropped: u64,
    pub out_of_order_events: u64,
}

impl ShardStats {
    pub fn add(&mut self, o: &ShardStats) {
        self.dns_messages += o.dns_messages;
        self.dns_short_header += o.dns_short_header;
        self.dns_bad_name += o.dns_bad_name;
        self.dns_no_question += o.dns_no_question;
        self.dns_unsolicited_responses += o.dns_unsolicited_responses;
        self.pending_evicted += o.pending_evicted;
        self.clients_evicted += o.clients_evicted;
        self.clients_protected_evicted += o.clients_protected_evicted;
        self.clients_promoted += o.clients_promoted;
        self.clients_overflow_events += o.clients_overflow_events;
        self.learn_candidates_dropped += o.learn_candidates_dropped;
        self.out_of_order_events += o.out_of_order_events;
    }
}

/// One client's counters for a closed bin (boxed: handed from the
/// classifier's table to detection and output without a copy).
#[derive(Debug, Clone)]
pub struct ClientRecord {
    pub ip: IpAddr,
    pub bin: Box<ClientBin>,
    /// Shared: one allocation per domain, not per client and bin.
    pub local_domain: Option<Arc<str>>,
}

/// A tracked client that did nothing in a closed bin.
#[derive(Debug, Clone)]
pub struct IdleClient {
    pub ip: IpAddr,
    pub local_domain: Option<Arc<str>>,
}

/// A closed bin: every tracked client, the active ones with their counters
/// and the idle ones by address (a detector sees quiet bins too), each list
/// sorted by address. The engine empties `idle` once detection has seen it.
#[derive(Debug, Clone, Default)]
pub struct ClosedBin {
    pub start: i64,
    pub end: i64,
    pub clients: Vec<ClientRecord>,
    pub idle: Vec<IdleClient>,
}

impl ClosedBin {
    /// Clients that did something in this bin.
    pub fn active(&self) -> impl Iterator<Item = &ClientRecord> {
        self.clients.iter().filter(|c| !c.bin.is_empty())
    }
}

/// Where closed bins go (the engine: detection, then output).
pub trait Downstream {
    /// A bin closed.
    fn closed(&mut self, bin: ClosedBin);
    /// The client must stay in the table (e.g. it has an incident open).
    fn keep(&self, ip: &IpAddr) -> bool;
    /// The client left the table (its state downstream can go too).
    fn evicted(&mut self, ip: &IpAddr);
}

pub struct Classifier {
    cfg: ClassifyConfig,
    clients: ClientTable,
    /// Clients evicted during the current event, told downstream after it.
    evicted: Vec<IpAddr>,
    pending: Pending,
    bin_start: Option<i64>,
    name: Vec<u8>,
    stats: ShardStats,
}

impl Classifier {
    pub fn new(cfg: ClassifyConfig) -> Self {
        Classifier {
            pending: Pending::new(cfg.max_pending),
            clients: ClientTable::new(cfg.max_clients),
            cfg,
            evicted: Vec::new(),
            bin_start: None,
            name: Vec::with_capacity(dns::NAME_MAX),
            stats: ShardStats::default(),
        }
    }

    pub fn stats(&self) -> ShardStats {
        let mut s = self.stats;
        s.pending_evicted = self.pending.evicted;
        let t = self.clients.stats;
        s.clients_evicted = t.evicted;
        s.clients_protected_evicted = t.protected_evicted;
        s.clients_promoted = t.promoted;
        s.clients_overflow_events = t.overflow_events;
        s
    }

    pub fn clients(&self) -> usize {
        self.clients.len()
    }

    /// Start of the open bin: every bin before it is closed.
    pub fn open_bin(&self) -> Option<i64> {
        self.bin_start
    }

    /// Feeds a batch; bins close (to `out`) when an event is past the current bin.
    pub fn on_batch(&mut self, batch: &Batch, out: &mut impl Downstream) {
        for ev in &batch.events {
            match ev {
                Event::Dns(d) => {
                    self.advance(d.ts, out);
                    self.on_dns(d, batch.dns_bytes(d), &|ip| out.keep(ip));
                }
                Event::Smtp(s) => {
                    self.advance(s.ts_micros, out);
                    self.on_smtp(s, &|ip| out.keep(ip));
                }
            }
            for ip in self.evicted.drain(..) {
                out.evicted(&ip);
            }
        }
    }

    /// Closes every bin that ends at or before `now`.
    pub fn tick(&mut self, now: i64, out: &mut impl Downstream) {
        let target = self.cfg.bins.start_of(now);
        match self.bin_start {
            None => self.bin_start = Some(target),
            Some(start) if target > start => self.close_until(target, out),
            Some(_) => {}
        }
    }

    /// End of input: every waiting query is unanswered and the open bin
    /// closes. Returns the end of the last bin, if any was open.
    pub fn finish(&mut self, out: &mut impl Downstream) -> Option<i64> {
        let start = self.bin_start?;
        let clients = &mut self.clients;
        self.pending.drain(|c| {
            if let Some(cl) = clients.get_mut(&c) {
                cl.open().add(Ctr::Unanswered);
            }
        });
        let end = start + self.cfg.bins.micros;
        self.close_until(end, out);
        Some(end)
    }

    fn advance(&mut self, ts: i64, out: &mut impl Downstream) {
        match self.bin_start {
            None => self.bin_start = Some(self.cfg.bins.start_of(ts)),
            Some(start) if ts >= start + self.cfg.bins.micros => {
                self.close_until(self.cfg.bins.start_of(ts), out)
            }
            Some(start) if ts < start => self.stats.out_of_order_events += 1,
            Some(_) => {}
        }
    }

    fn close_until(&mut self, target: i64, out: &mut impl Downstream) {
        while let Some(start) = self.bin_start {
            if start >= target {
                break;
            }
            let end = start + self.cfg.bins.micros;
            let bin = self.close_bin(start, end);
            out.closed(bin);
            // After a long silence, jump instead of closing empty bins one by one
            // beyond what the downstream's windows can use.
            let skip_to = target - self.cfg.bins.micros * self.cfg.idle_bins_closed as i64;
            self.bin_start = Some(
                if end < skip_to && self.clients.values().all(table::Client::is_idle) {
                    skip_to
                } else {
                    end
                },
            );
        }
    }

    fn close_bin(&mut self, start: i64, end: i64) -> ClosedBin {
        let clients = &mut self.clients;
        self.pending.rotate(&mut |c| {
            if let Some(cl) = clients.get_mut(&c) {
                cl.open().add(Ctr::Unanswered);
            }
        });
        let mut ips: Vec<IpAddr> = self.clients.keys().copied().collect();
        ips.sort();
        let mut closed = ClosedBin {
            start,
            end,
            clients: Vec::new(),
            idle: Vec::new(),
        };
        let configured: Option<Arc<str>> =
            self.cfg.local_domains.first().map(|d| d.as_str().into());
        for ip in ips {
            let c = self.clients.get_mut(&ip).expect("listed client");
            let local = configured
                .clone()
                .or_else(|| c.learner.as_ref().and_then(|l| l.learned.clone()));
            match c.bin.take() {
                Some(open) if !open.is_empty() => closed.clients.push(ClientRecord {
                    ip,
                    bin: open.close(self.cfg.keep_sketches),
                    local_domain: local,
                }),
                _ => closed.idle.push(IdleClient {
                    ip,
                    local_domain: local,
                }),
            }
        }
        closed
    }

    fn client(
        &mut self,
        ip: IpAddr,
        what: Touch,
        keep: &dyn Fn(&IpAddr) -> bool,
    ) -> Option<&mut table::Client> {
        let bin = self.bin_start.unwrap_or(0);
        self.clients.touch(ip, what, bin, keep, &mut self.evicted)
    }

    fn sub_bin(&self, ts: i64) -> usize {
        let start = self.bin_start.unwrap_or(ts);
        let off = (ts - start).clamp(0, self.cfg.bins.micros - 1);
        (off * SUB_BINS as i64 / self.cfg.bins.micros) as usize
    }

    fn on_dns(&mut self, d: &RawDns, bytes: &[u8], keep: &dyn Fn(&IpAddr) -> bool) {
        self.stats.dns_messages += 1;
        let mut name = std::mem::take(&mut self.name);
        let parsed = if dns::is_plain_response(bytes) {
            name.clear();
            dns::parse_header(bytes)
        } else {
            dns::parse_head(bytes, &mut name)
        };
        let head = match parsed {
            Ok(h) => h,
            Err(DnsError::ShortHeader) => {
                self.stats.dns_short_header += 1;
                self.name = name;
                return;
            }
            Err(DnsError::BadName) => {
                self.stats.dns_bad_name += 1;
                self.name = name;
                return;
            }
        };
        let key = QueryKey {
            client: d.client,
            server: d.server,
            client_port: d.client_port,
            id: head.id,
        };
        let sub = self.sub_bin(d.ts);
        let local_domains = &self.cfg.local_domains;
        let bin = self.bin_start.unwrap_or(0);
        let stats = &mut self.stats;
        let evicted = &mut self.evicted;
        let clients = &mut self.clients;
        let mut unanswered = |c: IpAddr| {
            if let Some(cl) = clients.get_mut(&c) {
                cl.open().add(Ctr::Unanswered);
            }
        };
        if !head.response {
            let Some(q) = head.question else {
                self.stats.dns_no_question += 1;
                self.name = name;
                return;
            };
            if !d.query_only {
                self.pending.query(key, &mut unanswered);
            }
            let Some(c) = clients.touch(d.client, Touch::Query, bin, keep, evicted) else {
                self.name = name;
                return;
            };
            let unresolved = is_unresolved(&name, local_domains, c.learned());
            let o = c.open();
            let bucket = QtypeBucket::of(q.qtype);
            o.add_query(bucket, d.tcp, sub, d.query_only);
            o.see_server(d.server);
            if unresolved {
                o.add(Ctr::UnresolvedFqdn);
                o.add(Ctr::SubUnresolved(sub));
                ClientBin::sample(&mut o.full().sample_unresolved, text(&name));
            }
            if bucket == QtypeBucket::Mx {
                ClientBin::sample(&mut o.full().sample_mx, text(&name));
                o.see_mx_name(names::fast_hash(&name));
            }
            o.see_name(names::fast_hash(&name));
        } else {
            if !self.pending.response(&key) {
                stats.dns_unsolicited_responses += 1;
            }
            let Some(c) = clients.touch(d.client, Touch::Response, bin, keep, evicted) else {
                self.name = name;
                return;
            };
            let bucket = RcodeBucket::of(head.rcode);
            let unresolved = head.question.is_some()
                && bucket == RcodeBucket::NxDomain
                && is_unresolved(&name, local_domains, c.learned());
            let o = c.open();
            o.add_response(bucket);
            if bucket == RcodeBucket::NxDomain && head.question.is_some() {
                if unresolved {
                    o.add(Ctr::UnresolvedNxdomain);
                } else if local_domains.is_empty()
                    && (c.learner.is_some() || names::split_candidate(text(&name)).is_some())
                {
                    // Learning state only for a client with a candidate name
                    // (without one, learning would not change).
                    let l = c.learner.get_or_insert_with(Box::default);
                    let before = l.dropped;
                    let learned = l.on_nxdomain(text(&name)).is_some();
                    stats.learn_candidates_dropped += l.dropped - before;
                    if learned {
                        c.open().add(Ctr::UnresolvedNxdomain);
                    }
                }
            }
        }
        self.name = name;
    }

    fn on_smtp(&mut self, e: &SmtpEvent, keep: &dyn Fn(&IpAddr) -> bool) {
        let Some(c) = self.client(e.ip, Touch::Smtp, keep) else {
            return;
        };
        let b = c.open().full();
        match &e.kind {
            SmtpEventKind::SessionStart => {
                b.smtp.connections += 1;
                b.see_smtp_client(e.peer);
                b.see_smtp_peer(e.peer);
            }
            SmtpEventKind::OutboundSessionStart => b.smtp.outbound += 1,
            SmtpEventKind::Command(SmtpCommand::MailFrom { null_sender }) => {
                b.smtp.mail_from += 1;
                if *null_sender {
                    b.smtp.null_sender += 1;
                }
            }
            SmtpEventKind::Command(SmtpCommand::Rcpt) => b.smtp.rcpt += 1,
            SmtpEventKind::Command(_) => {}
            SmtpEventKind::Reply {
                code,
                to,
                user_unknown,
                recipient,
            } => {
                // A one-sided capture (server side only) has no command to
                // match; a "user unknown" text still says it was a RCPT.
                let to_rcpt =
                    matches!(to, Some(SmtpCommandKind::Rcpt)) || (to.is_none() && *user_unknown);
                if *code >= 500 && to_rcpt {
                    b.smtp.rcpt_rejected += 1;
                    if *user_unknown {
                        b.smtp.user_unknown += 1;
                        if let Some(r) = recipient {
                            ClientBin::sample(&mut b.sample_rejected, r);
                        }
                    }
                }
            }
            SmtpEventKind::StartTls => b.smtp.encrypted += 1,
        }
    }
}

/// A name in presentation form (escaped: always ASCII) as text.
fn text(name: &[u8]) -> &str {
    std::str::from_utf8(name).unwrap_or("")
}

fn is_unresolved(name: &[u8], configured: &[String], learned: Option<&str>) -> bool {
    if configured.is_empty() {
        learned.is_some_and(|d| names::unresolved_front(text(name), d).is_some())
    } else {
        configured
            .iter()
            .any(|d| names::unresolved_front(text(name), d).is_some())
    }
}
