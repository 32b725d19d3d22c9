//! Per-client counters for one time bin (state, not output: `output/` maps
//! them to the JSON schema).

use std::net::IpAddr;

use crate::dns::{QtypeBucket, RcodeBucket};

/// Sub-bins per bin for the total-vs-unresolved regression (the paper's Figure 6).
pub const SUB_BINS: usize = 10;
/// Bits of the linear-counting bitmap that estimates distinct query names and
/// SMTP clients per client per bin: 512 bytes whatever the traffic (names and
/// addresses are attacker-controlled), near-exact for small counts (about 1 %
/// error at 1,000), saturated (`distinct_names_capped`) past ~30,000.
pub const DISTINCT_BITS: usize = 4096;
/// Sample names or recipients kept per client per bin for evidence.
pub const MAX_SAMPLES: usize = 3;
/// SMTP peers (client addresses) counted per server per bin: the top talkers
/// of an incident, for evidence and actions (issue #17). Space-Saving
/// (Metwally et al., 2005): a full table replaces its smallest entry, so any
/// peer with more than 1/16 of the sessions is always kept; the addresses are
/// attacker-controlled, the table is not.
pub const MAX_SMTP_PEERS: usize = 16;

/// Serialized as they are in the bin messages a sensor publishes (`cluster::wire`).
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
pub struct DnsCounts {
    pub queries: u64,
    pub qtype: [u64; 6],
    pub responses: u64,
    pub rcode: [u64; 5],
    pub unresolved_fqdn: u64,
    pub unresolved_nxdomain: u64,
    pub unanswered: u64,
    /// Queries from an input that never shows responses (BIND's query log).
    pub query_only: u64,
    pub udp: u64,
    pub tcp: u64,
    pub distinct_names: u64,
    pub distinct_names_capped: bool,
    /// Distinct names asked for with qtype MX (a domain each: the recipient
    /// domains of the mail this client sends itself; issue #17).
    pub distinct_mx_names: u64,
}

impl DnsCounts {
    pub fn qtype(&self, b: QtypeBucket) -> u64 {
        self.qtype[b as usize]
    }
    pub fn rcode(&self, b: RcodeBucket) -> u64 {
        self.rcode[b as usize]
    }
    /// Every query came from an input without responses (a query log) and
    /// no response was seen: response counters are absent, not zero.
    pub fn responses_absent(&self) -> bool {
        self.query_only > 0 && self.query_only == self.queries && self.responses == 0
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
        self.query_only += o.query_only;
        self.udp += o.udp;
        self.tcp += o.tcp;
        self.distinct_names += o.distinct_names;
        self.distinct_names_capped |= o.distinct_names_capped;
        self.distinct_mx_names += o.distinct_mx_names;
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default)]
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
    /// SMTP clients of this server with their session counts (top-k,
    /// `MAX_SMTP_PEERS`).
    pub smtp_peers: Vec<(IpAddr, u64)>,
    names_seen: Distinct,
    mx_names_seen: Distinct,
    smtp_clients: Distinct,
}

/// The distinct-count sketches of a bin, by what they count.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Sketch {
    Names,
    MxNames,
    SmtpClients,
}

impl Sketch {
    pub const ALL: [Sketch; 3] = [Sketch::Names, Sketch::MxNames, Sketch::SmtpClients];
}

/// Linear counting (Whang et al., 1990): a bitmap of `DISTINCT_BITS` bits,
/// allocated on first use; n ~ -m ln(zero bits / m).
#[derive(Debug, Default, Clone)]
pub struct Distinct {
    bits: Option<Box<[u64; DISTINCT_BITS / 64]>>,
}

impl Distinct {
    /// The bitmap's words, if any bit was ever set.
    pub fn words(&self) -> Option<&[u64]> {
        self.bits.as_deref().map(|b| &b[..])
    }

    /// Sets the bits of `words` (a union: two sensors' sketches of the same
    /// bin merge into the sketch of the whole, duplicates counted once).
    pub fn union_words(&mut self, words: &[u64]) {
        if words.iter().all(|w| *w == 0) {
            return;
        }
        let bits = self
            .bits
            .get_or_insert_with(|| Box::new([0; DISTINCT_BITS / 64]));
        for (b, w) in bits.iter_mut().zip(words) {
            *b |= w;
        }
    }

    fn insert(&mut self, h: u64) {
        let bits = self
            .bits
            .get_or_insert_with(|| Box::new([0; DISTINCT_BITS / 64]));
        let i = (h % DISTINCT_BITS as u64) as usize;
        bits[i / 64] |= 1 << (i % 64);
    }

    /// (estimate, saturated)
    fn estimate(&self) -> (u64, bool) {
        let Some(bits) = &self.bits else {
            return (0, false);
        };
        let ones: u32 = bits.iter().map(|w| w.count_ones()).sum();
        let m = DISTINCT_BITS as f64;
        let zeros = m - f64::from(ones);
        if zeros < 1.0 {
            // Saturated: report the largest estimate the bitmap can make.
            return ((m * m.ln()).round() as u64, true);
        }
        ((-m * (zeros / m).ln()).round() as u64, false)
    }
}

impl ClientBin {
    pub fn is_empty(&self) -> bool {
        self.dns == DnsCounts::default() && self.smtp.is_empty()
    }

    pub fn see_name(&mut self, h: u64) {
        self.names_seen.insert(h);
    }

    pub fn see_mx_name(&mut self, h: u64) {
        self.mx_names_seen.insert(h);
    }

    /// One more session from `ip` (Space-Saving: a new peer in a full table
    /// takes the place of the smallest, with its count plus one).
    pub fn see_smtp_peer(&mut self, ip: IpAddr) {
        if let Some((_, n)) = self.smtp_peers.iter_mut().find(|(p, _)| *p == ip) {
            *n += 1;
        } else if self.smtp_peers.len() < MAX_SMTP_PEERS {
            self.smtp_peers.push((ip, 1));
        } else if let Some(min) = self.smtp_peers.iter_mut().min_by_key(|(p, n)| (*n, *p)) {
            *min = (ip, min.1 + 1);
        }
    }

    pub fn see_smtp_client(&mut self, ip: IpAddr) {
        let folded = match ip {
            IpAddr::V4(a) => u64::from(a.to_bits()),
            IpAddr::V6(a) => {
                let b = a.to_bits();
                (b as u64) ^ ((b >> 64) as u64)
            }
        };
        // A multiplicative hash spreads consecutive addresses over the bitmap.
        self.smtp_clients
            .insert(folded.wrapping_mul(0x9e37_79b9_7f4a_7c15) >> 20);
    }

    /// Fills the distinct counts in from the bitmaps (at bin close).
    pub fn finalize(&mut self) {
        let (names, capped) = self.names_seen.estimate();
        self.dns.distinct_names = names;
        self.dns.distinct_names_capped = capped;
        self.dns.distinct_mx_names = self.mx_names_seen.estimate().0;
        self.smtp.distinct_clients = self.smtp_clients.estimate().0;
    }

    /// Frees the bitmaps once [`Self::finalize`] has read them (a closed bin
    /// carries its estimates, not 512 bytes per sketch, to detection and output).
    pub fn release_sketches(&mut self) {
        self.names_seen = Distinct::default();
        self.mx_names_seen = Distinct::default();
        self.smtp_clients = Distinct::default();
    }

    pub fn sketch(&self, which: Sketch) -> &Distinct {
        match which {
            Sketch::Names => &self.names_seen,
            Sketch::MxNames => &self.mx_names_seen,
            Sketch::SmtpClients => &self.smtp_clients,
        }
    }

    pub fn sketch_mut(&mut self, which: Sketch) -> &mut Distinct {
        match which {
            Sketch::Names => &mut self.names_seen,
            Sketch::MxNames => &mut self.mx_names_seen,
            Sketch::SmtpClients => &mut self.smtp_clients,
        }
    }

    /// Adds another sensor's bin of the same client and time (issue #16):
    /// counters summed, sketches united (call [`Self::finalize`] after),
    /// lists merged within their bounds.
    pub fn merge(&mut self, o: &ClientBin) {
        self.dns.add(&o.dns);
        self.smtp.add(&o.smtp);
        for (a, b) in self.sub_bins.iter_mut().zip(&o.sub_bins) {
            a.0 += b.0;
            a.1 += b.1;
        }
        for (mine, theirs) in [
            (&mut self.sample_unresolved, &o.sample_unresolved),
            (&mut self.sample_mx, &o.sample_mx),
            (&mut self.sample_rejected, &o.sample_rejected),
        ] {
            for s in theirs {
                ClientBin::sample(mine, s);
            }
        }
        for (ip, n) in &o.servers {
            if let Some((_, m)) = self.servers.iter_mut().find(|(s, _)| s == ip) {
                *m += n;
            } else if self.servers.len() < 8 {
                self.servers.push((*ip, *n));
            }
        }
        for (ip, n) in &o.smtp_peers {
            if let Some((_, m)) = self.smtp_peers.iter_mut().find(|(p, _)| p == ip) {
                *m += n;
            } else if self.smtp_peers.len() < MAX_SMTP_PEERS {
                self.smtp_peers.push((*ip, *n));
            } else if let Some(min) = self.smtp_peers.iter_mut().min_by_key(|(p, n)| (*n, *p)) {
                *min = (*ip, min.1 + n);
            }
        }
        for w in Sketch::ALL {
            if let Some(words) = o.sketch(w).words() {
                self.sketch_mut(w).union_words(words);
            }
        }
    }

    pub fn see_server(&mut self, ip: IpAddr) {
        if let Some((_, n)) = self.servers.iter_mut().find(|(s, _)| *s == ip) {
            *n += 1;
        } else if self.servers.len() < 8 {
            // Most clients ask one server: room for one, not a Vec's first four.
            self.servers.reserve_exact(1);
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
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn distinct_estimate_is_near_exact_when_small_and_bounded_when_flooded() {
        let mut b = ClientBin::default();
        for i in 0..50u64 {
            b.see_name(crate::classify::names::fast_hash(
                format!("host{i}.example.com").as_bytes(),
            ));
            b.see_name(crate::classify::names::fast_hash(
                format!("host{i}.example.com").as_bytes(),
            ));
        }
        b.finalize();
        assert!(
            (49..=51).contains(&b.dns.distinct_names),
            "{}",
            b.dns.distinct_names
        );
        let mut b = ClientBin::default();
        for i in 0..1000u64 {
            b.see_name(crate::classify::names::fast_hash(&i.to_le_bytes()));
        }
        b.finalize();
        assert!(
            (960..=1040).contains(&b.dns.distinct_names),
            "{}",
            b.dns.distinct_names
        );
        for i in 0..200_000u64 {
            b.see_name(crate::classify::names::fast_hash(&i.to_le_bytes()));
        }
        b.finalize();
        assert!(b.dns.distinct_names_capped);
        for i in 0..40u8 {
            b.see_smtp_client(IpAddr::from([203, 0, 113, i]));
        }
        b.finalize();
        assert_eq!(b.smtp.distinct_clients, 40);
    }

    #[test]
    fn smtp_peers_are_bounded_and_keep_the_heavy_hitters() {
        let mut b = ClientBin::default();
        for round in 0..50u8 {
            b.see_smtp_peer(IpAddr::from([10, 0, 0, 1]));
            // 200 one-off addresses: never more than MAX_SMTP_PEERS entries.
            for i in 0..4u8 {
                b.see_smtp_peer(IpAddr::from([203, 0, round, i]));
            }
        }
        assert_eq!(b.smtp_peers.len(), MAX_SMTP_PEERS);
        let top = b.smtp_peers.iter().max_by_key(|p| p.1).unwrap();
        assert_eq!(*top, (IpAddr::from([10, 0, 0, 1]), 50));
        let mut m = ClientBin::default();
        for i in 0..30u64 {
            m.see_mx_name(crate::classify::names::fast_hash(
                format!("d{i}.com").as_bytes(),
            ));
            m.see_mx_name(crate::classify::names::fast_hash(
                format!("d{i}.com").as_bytes(),
            ));
        }
        m.finalize();
        assert_eq!(m.dns.distinct_mx_names, 30);
    }
}
