//! Per-client counters for one time bin (state, not output: `output/` maps
//! them to the JSON schema).

use crate::FastSet;
use std::net::IpAddr;

use crate::dns::{QtypeBucket, RcodeBucket};

/// Sub-bins per bin for the total-vs-unresolved regression (the paper's Figure 6).
pub const SUB_BINS: usize = 10;
/// Distinct query names / SMTP clients tracked per client per bin; beyond it
/// the count saturates (`*_capped` says so). Names are attacker-controlled.
pub const MAX_DISTINCT: usize = 4096;
/// Sample names or recipients kept per client per bin for evidence.
pub const MAX_SAMPLES: usize = 3;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct DnsCounts {
    pub queries: u64,
    pub qtype: [u64; 6],
    pub responses: u64,
    pub rcode: [u64; 5],
    pub unresolved_fqdn: u64,
    pub unresolved_nxdomain: u64,
    pub unanswered: u64,
    pub udp: u64,
    pub tcp: u64,
    pub distinct_names: u64,
    pub distinct_names_capped: bool,
}

impl DnsCounts {
    pub fn qtype(&self, b: QtypeBucket) -> u64 {
        self.qtype[b as usize]
    }
    pub fn rcode(&self, b: RcodeBucket) -> u64 {
        self.rcode[b as usize]
    }
    pub fn add(&mut self, o: &DnsCounts) {
        self.queries += o.queries;
        for i in 0..6 {
            self.qtype[i] += o.qtype[i];
        }
        self.responses += o.responses;
        for i in 0..5 {
            self.rcode[i] += o.rcode[i];
        }
        self.unresolved_fqdn += o.unresolved_fqdn;
        self.unresolved_nxdomain += o.unresolved_nxdomain;
        self.unanswered += o.unanswered;
        self.udp += o.udp;
        self.tcp += o.tcp;
        self.distinct_names += o.distinct_names;
        self.distinct_names_capped |= o.distinct_names_capped;
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SmtpCounts {
    /// Session starts to this server on port 25 (N_c).
    pub connections: u64,
    /// MAIL FROM commands to this server (N_f).
    pub mail_from: u64,
    pub null_sender: u64,
    pub rcpt: u64,
    /// 5xx replies to RCPT.
    pub rcpt_rejected: u64,
    pub user_unknown: u64,
    /// Sessions this host opened to remote port 25.
    pub outbound: u64,
    pub distinct_clients: u64,
    pub encrypted: u64,
}

impl SmtpCounts {
    /// alpha = N_c / N_f (the relay paper), when there was a MAIL FROM.
    pub fn alpha(&self) -> Option<f64> {
        (self.mail_from > 0).then(|| self.connections as f64 / self.mail_from as f64)
    }
    pub fn is_empty(&self) -> bool {
        *self == SmtpCounts::default()
    }
    pub fn add(&mut self, o: &SmtpCounts) {
        self.connections += o.connections;
        self.mail_from += o.mail_from;
        self.null_sender += o.null_sender;
        self.rcpt += o.rcpt;
        self.rcpt_rejected += o.rcpt_rejected;
        self.user_unknown += o.user_unknown;
        self.outbound += o.outbound;
        self.distinct_clients += o.distinct_clients;
        self.encrypted += o.encrypted;
    }
}

/// Everything kept for one client over one bin.
#[derive(Debug, Default, Clone)]
pub struct ClientBin {
    pub dns: DnsCounts,
    pub smtp: SmtpCounts,
    /// (total queries, unresolved-FQDN queries) per sub-bin.
    pub sub_bins: [(u32, u32); SUB_BINS],
    pub sample_unresolved: Vec<Box<str>>,
    pub sample_mx: Vec<Box<str>>,
    pub sample_rejected: Vec<Box<str>>,
    /// Upstream servers queried, with counts (few per client).
    pub servers: Vec<(IpAddr, u64)>,
    names_seen: FastSet<u64>,
    smtp_clients: FastSet<IpAddr>,
}

impl ClientBin {
    pub fn is_empty(&self) -> bool {
        self.dns == DnsCounts::default() && self.smtp.is_empty()
    }

    pub fn see_name(&mut self, h: u64) {
        if self.names_seen.len() < MAX_DISTINCT {
            if self.names_seen.insert(h) {
                self.dns.distinct_names += 1;
            }
        } else if !self.names_seen.contains(&h) {
            self.dns.distinct_names_capped = true;
        }
    }

    pub fn see_smtp_client(&mut self, ip: IpAddr) {
        if self.smtp_clients.len() < MAX_DISTINCT && self.smtp_clients.insert(ip) {
            self.smtp.distinct_clients += 1;
        }
    }

    pub fn see_server(&mut self, ip: IpAddr) {
        if let Some((_, n)) = self.servers.iter_mut().find(|(s, _)| *s == ip) {
            *n += 1;
        } else if self.servers.len() < 8 {
            self.servers.push((ip, 1));
        }
    }

    /// The most queried upstream server (lowest address on ties).
    pub fn main_server(&self) -> Option<IpAddr> {
        self.servers
            .iter()
            .max_by(|a, b| a.1.cmp(&b.1).then(b.0.cmp(&a.0)))
            .map(|(s, _)| *s)
    }

    pub fn sample(list: &mut Vec<Box<str>>, s: &str) {
        if list.len() < MAX_SAMPLES && !list.iter().any(|x| &**x == s) {
            list.push(s.into());
        }
    }

    /// Resets for the next bin, keeping allocations.
    pub fn reset(&mut self) {
        self.dns = DnsCounts::default();
        self.smtp = SmtpCounts::default();
        self.sub_bins = [(0, 0); SUB_BINS];
        self.sample_unresolved.clear();
        self.sample_mx.clear();
        self.sample_rejected.clear();
        self.servers.clear();
        self.names_seen.clear();
        self.smtp_clients.clear();
    }
}
