//! Report input: the engine's closed bins and alerts, in process.
//!
//! `Collected` is the [`Sink`] the report's pipeline writes to: per client,
//! per bin, the classifier's own counters (`classify::counters`, declared
//! once); the detections (start/info/end merged by alert id); the capture
//! span from the final capture_stats snapshot. The report never re-counts
//! packets, so its numbers are client_stats numbers by construction.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::classify::{ClosedBin, DnsCounts, SmtpCounts};
use crate::detect::Alert;
use crate::dns::{QtypeBucket, RcodeBucket};
use crate::output::topk::TopK;
use crate::output::{CaptureSnapshot, ClassifierHealth, Sink};

/// One client's counters over some time: the classifier's structs, summed.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Counts {
    pub dns: DnsCounts,
    pub smtp: SmtpCounts,
}

macro_rules! qtype {
    ($($name:ident => $b:ident),*) => {$(
        pub fn $name(&self) -> u64 { self.dns.qtype(QtypeBucket::$b) }
    )*};
}
macro_rules! rcode {
    ($($name:ident => $b:ident),*) => {$(
        pub fn $name(&self) -> u64 { self.dns.rcode(RcodeBucket::$b) }
    )*};
}

impl Counts {
    qtype!(a => A, aaaa => Aaaa, ptr => Ptr, mx => Mx, txt => Txt, qtype_other => Other);
    rcode!(noerror => NoError, nxdomain => NxDomain, servfail => ServFail, refused => Refused, rcode_other => Other);

    pub fn queries(&self) -> u64 {
        self.dns.queries
    }
    pub fn unresolved_fqdn(&self) -> u64 {
        self.dns.unresolved_fqdn
    }
    pub fn unresolved_nxdomain(&self) -> u64 {
        self.dns.unresolved_nxdomain
    }
    /// N_c: sessions to this server on port 25.
    pub fn connections(&self) -> u64 {
        self.smtp.connections
    }
    /// N_f: MAIL FROM commands.
    pub fn mail_from(&self) -> u64 {
        self.smtp.mail_from
    }
    pub fn rcpt(&self) -> u64 {
        self.smtp.rcpt
    }
    pub fn user_unknown(&self) -> u64 {
        self.smtp.user_unknown
    }
    /// Sessions this host opened to remote port 25.
    pub fn outbound(&self) -> u64 {
        self.smtp.outbound
    }

    pub fn add(&mut self, o: &Counts) {
        self.dns.add(&o.dns);
        self.smtp.add(&o.smtp);
    }

    /// alpha = N_c / N_f, when there was a MAIL FROM.
    pub fn alpha(&self) -> Option<f64> {
        self.smtp.alpha()
    }

    /// Anything SMTP seen (the D_q model needs it).
    pub fn has_smtp(&self) -> bool {
        self.connections() + self.mail_from() + self.outbound() > 0
    }

    /// How much the client did (ranks the top clients).
    pub fn activity(&self) -> u64 {
        self.queries() + self.connections() + self.mail_from() + self.outbound()
    }
}

/// One alert, its start/info/end lines merged.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub rule: String,
    pub ip: IpAddr,
    pub alert_id: String,
    /// Microseconds since the epoch.
    pub start: i64,
    pub end: i64,
    /// `r2_total_vs_unresolved` of the evidence (last line that had one).
    pub r2: Option<f64>,
    pub reason: String,
}

/// Which clients' bins a pass keeps.
#[derive(Debug, Default)]
pub enum Keep {
    /// None: a pass for the detections and the ranking only.
    #[default]
    Nothing,
    /// These clients only (the named ones, or the top ones of a first pass).
    Only(HashSet<IpAddr>),
    /// Every client while the bins fit in this many (client, bin) cells; past
    /// it they are all dropped (`bins_abandoned`) and a second pass keeps the
    /// top clients only.
    All { max_cells: usize },
}

#[derive(Debug)]
pub struct Collected {
    /// client -> (bin start (µs), counters), in time order. A vector, not a
    /// map: a client seen in one bin costs one cell, not a B-tree node.
    pub bins: HashMap<IpAddr, Vec<(i64, Counts)>>,
    /// (client, bin) cells in `bins`.
    pub cells: usize,
    pub keep: Keep,
    /// `Keep::All` ran out of room: `bins` is empty, a second pass is needed.
    pub bins_abandoned: bool,
    /// Every client's activity (queries + SMTP sessions and MAIL FROM),
    /// ranked in bounded memory: the clients a report shows by default.
    /// Not kept when the clients are known already (`Keep::Only`).
    pub ranking: TopK<()>,
    pub detections: Vec<Detection>,
    /// alert id -> index in `detections`.
    by_id: HashMap<String, usize>,
    /// First and last packet time (µs) from the final capture_stats line.
    pub span: Option<(i64, i64)>,
    pub packets: u64,
}

/// Clients the report ranks (addresses can be spoofed: a Space-Saving table,
/// so a flood of a million one-query sources cannot push out a busy mail
/// server). The same as the sensor's default client table.
pub const MAX_CLIENTS: usize = 100_000;

/// (client, bin) cells one pass keeps before it gives up keeping every
/// client's bins (about 300 bytes each: ~60 MB).
pub const MAX_CELLS: usize = 200_000;

impl Default for Collected {
    fn default() -> Self {
        Collected {
            bins: HashMap::new(),
            cells: 0,
            keep: Keep::Nothing,
            bins_abandoned: false,
            ranking: TopK::new(MAX_CLIENTS),
            detections: Vec::new(),
            by_id: HashMap::new(),
            span: None,
            packets: 0,
        }
    }
}

impl Collected {
    /// One client's bins, by start.
    pub fn client_bins(&self, ip: &IpAddr) -> BTreeMap<i64, Counts> {
        let mut m: BTreeMap<i64, Counts> = BTreeMap::new();
        for (t, c) in self.bins.get(ip).into_iter().flatten() {
            m.entry(*t).or_default().add(c);
        }
        m
    }

    pub fn new(keep: Keep) -> Self {
        Collected {
            keep,
            ..Collected::default()
        }
    }

    fn bin(&mut self, bin: &ClosedBin, alerts: &[Alert]) {
        for r in bin.active() {
            let (d, s) = (&r.bin.dns, &r.bin.smtp);
            let keep = match &self.keep {
                Keep::Only(set) => set.contains(&r.ip),
                Keep::Nothing | Keep::All { .. } => {
                    let activity = d.queries + s.connections + s.mail_from + s.outbound;
                    self.ranking.add(r.ip, activity);
                    matches!(self.keep, Keep::All { .. }) && !self.bins_abandoned
                }
            };
            if !keep {
                continue;
            }
            let counts = Counts {
                dns: d.clone(),
                smtp: s.clone(),
            };
            let cells = self
                .bins
                .entry(r.ip)
                .or_insert_with(|| Vec::with_capacity(1));
            // Bins close in time order, so a client's cell of this bin, if
            // any, is its last one (`client_bins` sums any other repeat).
            match cells.last_mut() {
                Some((t, c)) if *t == bin.start => c.add(&counts),
                _ => {
                    cells.push((bin.start, counts));
                    self.cells += 1;
                }
            }
            if let Keep::All { max_cells } = self.keep
                && self.cells > max_cells
            {
                self.bins = HashMap::new();
                self.cells = 0;
                self.bins_abandoned = true;
            }
        }
        for a in alerts {
            self.detection(a);
        }
    }

    fn detection(&mut self, a: &Alert) {
        let r2 = a
            .evidence
            .r2_total_vs_unresolved
            .map(crate::output::schema::round4);
        if let Some(d) = self
            .by_id
            .get(&a.alert_id)
            .map(|&i| &mut self.detections[i])
        {
            d.start = d.start.min(a.start);
            d.end = d.end.max(a.end);
            d.r2 = r2.or(d.r2);
            return;
        }
        self.by_id.insert(a.alert_id.clone(), self.detections.len());
        self.detections.push(Detection {
            rule: a.rule.name.to_owned(),
            ip: a.ip,
            alert_id: a.alert_id.clone(),
            start: a.start,
            end: a.end,
            r2,
            reason: crate::output::reason::reason(a),
        });
    }
}

/// The report's sink: collects into a shared `Collected`.
#[derive(Clone)]
pub struct Collector {
    pub collected: Arc<Mutex<Collected>>,
}

impl Collector {
    pub fn new(collected: Collected) -> Self {
        Collector {
            collected: Arc::new(Mutex::new(collected)),
        }
    }
}

impl Sink for Collector {
    fn bin_lines(&mut self, bin: &ClosedBin, alerts: &[Alert]) -> io::Result<()> {
        self.collected.lock().expect("collector").bin(bin, alerts);
        Ok(())
    }

    fn capture_stats(&mut self, snap: &CaptureSnapshot, _: &ClassifierHealth) -> io::Result<()> {
        if snap.is_final {
            let mut c = self.collected.lock().expect("collector");
            c.packets = snap.decode.packets;
            if c.packets > 0 {
                c.span = Some((snap.first_ts, snap.ts));
            }
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::{ClientBin, ClientRecord};

    fn bin_of(ips: impl Iterator<Item = IpAddr>) -> ClosedBin {
        ClosedBin {
            start: 0,
            end: 60_000_000,
            clients: ips
                .map(|ip| {
                    let mut b = ClientBin::default();
                    b.dns.queries = 1;
                    ClientRecord {
                        ip,
                        bin: Box::new(b),
                        local_domain: None,
                    }
                })
                .collect(),
            idle: Vec::new(),
        }
    }

    #[test]
    fn past_the_cell_budget_every_bin_is_dropped_and_the_ranking_kept() {
        let mut c = Collected {
            keep: Keep::All { max_cells: 10 },
            ..Collected::default()
        };
        let ips = |n: u32| (0..n).map(|i| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        let at = |start: i64, n: u32| ClosedBin {
            start,
            ..bin_of(ips(n))
        };
        c.bin(&at(0, 10), &[]);
        assert_eq!((c.bins.len(), c.cells, c.bins_abandoned), (10, 10, false));
        c.bin(&at(60_000_000, 3), &[]);
        assert_eq!((c.bins.len(), c.cells, c.bins_abandoned), (0, 0, true));
        c.bin(&at(120_000_000, 3), &[]);
        assert!(c.bins.is_empty());
        let top = c.ranking.top(4);
        assert_eq!(top.len(), 4);
        assert_eq!(top[0].1.count, 3, "{top:?}");
        assert_eq!(top[3].1.count, 1, "{top:?}");
    }

    #[test]
    fn a_bin_closed_by_two_workers_is_one_cell() {
        let a = IpAddr::from([10, 0, 0, 1]);
        let mut c = Collected::new(Keep::All { max_cells: 10 });
        for start in [0, 0, 60_000_000] {
            c.bin(
                &ClosedBin {
                    start,
                    ..bin_of(std::iter::once(a))
                },
                &[],
            );
        }
        assert_eq!(c.cells, 2);
        let bins = c.client_bins(&a);
        let q: Vec<(i64, u64)> = bins.iter().map(|(t, n)| (*t, n.queries())).collect();
        assert_eq!(q, vec![(0, 2), (60_000_000, 1)]);
    }

    #[test]
    fn only_the_named_clients_are_kept() {
        let a = IpAddr::from([10, 0, 0, 1]);
        let mut c = Collected {
            keep: Keep::Only([a].into()),
            ..Collected::default()
        };
        c.bin(&bin_of([a, IpAddr::from([10, 0, 0, 2])].into_iter()), &[]);
        assert_eq!(c.bins.keys().collect::<Vec<_>>(), vec![&a]);
        assert!(c.ranking.is_empty(), "the clients are known: no ranking");
    }

    #[test]
    fn idle_clients_are_not_counted() {
        let mut c = Collected {
            keep: Keep::All { max_cells: 10 },
            ..Collected::default()
        };
        let mut b = bin_of(std::iter::once(IpAddr::from([10, 0, 0, 1])));
        b.clients.push(ClientRecord {
            ip: IpAddr::from([10, 0, 0, 2]),
            bin: Box::default(),
            local_domain: None,
        });
        c.bin(&b, &[]);
        assert_eq!(c.bins.len(), 1);
    }
}
