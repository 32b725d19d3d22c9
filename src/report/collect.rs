//! Report input: the engine's closed bins and alerts, in process.
//!
//! `Collected` is the [`Sink`] the report's pipeline writes to: per client,
//! per bin, the classifier's own counters (`classify::counters`, declared
//! once); the detections (start/info/end merged by alert id); the capture
//! span from the final capture_stats snapshot. The report never re-counts
//! packets, so its numbers are client_stats numbers by construction.

use std::collections::BTreeMap;
use std::io;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use crate::classify::{ClosedBin, DnsCounts, SmtpCounts};
use crate::detect::Alert;
use crate::dns::{QtypeBucket, RcodeBucket};
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

#[derive(Debug, Default)]
pub struct Collected {
    /// client -> bin start (µs) -> counters.
    pub bins: BTreeMap<IpAddr, BTreeMap<i64, Counts>>,
    pub detections: Vec<Detection>,
    /// First and last packet time (µs) from the final capture_stats line.
    pub span: Option<(i64, i64)>,
    pub packets: u64,
    pub bad_lines: u64,
    /// Restricts client_stats kept to these clients (empty: all).
    pub only: Vec<IpAddr>,
    /// Client bins beyond [`MAX_CLIENTS`] clients, not kept.
    pub clients_dropped: u64,
    /// Keep the detections only (a pass for alerts at the detection bin).
    pub detections_only: bool,
}

/// Clients whose bins the report keeps (addresses can be spoofed: a capture
/// of a flood must not grow the report without limit). The same as the
/// sensor's default client table.
pub const MAX_CLIENTS: usize = 100_000;

impl Collected {
    fn bin(&mut self, bin: &ClosedBin, alerts: &[Alert]) {
        let clients = bin.active().filter(|_| !self.detections_only);
        for r in clients {
            if !self.only.is_empty() && !self.only.contains(&r.ip) {
                continue;
            }
            if self.bins.len() >= MAX_CLIENTS && !self.bins.contains_key(&r.ip) {
                self.clients_dropped += 1;
                continue;
            }
            self.bins
                .entry(r.ip)
                .or_default()
                .entry(bin.start)
                .or_default()
                .add(&Counts {
                    dns: r.bin.dns.clone(),
                    smtp: r.bin.smtp.clone(),
                });
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
            .detections
            .iter_mut()
            .find(|d| d.alert_id == a.alert_id)
        {
            d.start = d.start.min(a.start);
            d.end = d.end.max(a.end);
            d.r2 = r2.or(d.r2);
            return;
        }
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
    fn the_client_map_is_capped_and_what_it_turns_away_counted() {
        let mut c = Collected::default();
        let ips = (0..(MAX_CLIENTS as u32 + 5))
            .map(|i| IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i)));
        c.bin(&bin_of(ips), &[]);
        assert_eq!(c.bins.len(), MAX_CLIENTS);
        assert_eq!(c.clients_dropped, 5);
    }

    #[test]
    fn idle_clients_are_not_counted() {
        let mut c = Collected::default();
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
