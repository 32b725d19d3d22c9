//! Report input: the JSON lines of a normal pipeline run, parsed back.
//!
//! `LineSink` is the `Write` handed to `Output`; every complete line is
//! parsed (serde_json) into a `Collected`: per client, per bin, the
//! client_stats counters; the detections (start/info/end lines merged by
//! alert id); the capture span from the final capture_stats line. The report
//! never re-counts packets, so its numbers are client_stats by construction.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

use serde_json::Value;

/// The client_stats counters the report uses, for one client over some time.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Counts {
    pub queries: u64,
    pub a: u64,
    pub aaaa: u64,
    pub ptr: u64,
    pub mx: u64,
    pub txt: u64,
    pub qtype_other: u64,
    pub noerror: u64,
    pub nxdomain: u64,
    pub servfail: u64,
    pub refused: u64,
    pub rcode_other: u64,
    pub unresolved_fqdn: u64,
    pub unresolved_nxdomain: u64,
    /// N_c: sessions to this server on port 25.
    pub connections: u64,
    /// N_f: MAIL FROM commands.
    pub mail_from: u64,
    pub rcpt: u64,
    pub user_unknown: u64,
    /// Sessions this host opened to remote port 25.
    pub outbound: u64,
}

impl Counts {
    pub fn add(&mut self, o: &Counts) {
        self.queries += o.queries;
        self.a += o.a;
        self.aaaa += o.aaaa;
        self.ptr += o.ptr;
        self.mx += o.mx;
        self.txt += o.txt;
        self.qtype_other += o.qtype_other;
        self.noerror += o.noerror;
        self.nxdomain += o.nxdomain;
        self.servfail += o.servfail;
        self.refused += o.refused;
        self.rcode_other += o.rcode_other;
        self.unresolved_fqdn += o.unresolved_fqdn;
        self.unresolved_nxdomain += o.unresolved_nxdomain;
        self.connections += o.connections;
        self.mail_from += o.mail_from;
        self.rcpt += o.rcpt;
        self.user_unknown += o.user_unknown;
        self.outbound += o.outbound;
    }

    /// alpha = N_c / N_f, when there was a MAIL FROM.
    pub fn alpha(&self) -> Option<f64> {
        (self.mail_from > 0).then(|| self.connections as f64 / self.mail_from as f64)
    }

    /// Anything SMTP seen (the D_q model needs it).
    pub fn has_smtp(&self) -> bool {
        self.connections + self.mail_from + self.outbound > 0
    }

    /// How much the client did (ranks the top clients).
    pub fn activity(&self) -> u64 {
        self.queries + self.connections + self.mail_from + self.outbound
    }

    /// From the `mxwatch` object of a client_stats line.
    pub fn from_json(m: &Value) -> Counts {
        let n = |path: &[&str]| {
            path.iter()
                .try_fold(m, |v, k| v.get(k))
                .and_then(Value::as_u64)
                .unwrap_or(0)
        };
        Counts {
            queries: n(&["dns", "queries"]),
            a: n(&["dns", "qtype", "A"]),
            aaaa: n(&["dns", "qtype", "AAAA"]),
            ptr: n(&["dns", "qtype", "PTR"]),
            mx: n(&["dns", "qtype", "MX"]),
            txt: n(&["dns", "qtype", "TXT"]),
            qtype_other: n(&["dns", "qtype", "other"]),
            noerror: n(&["dns", "rcode", "NOERROR"]),
            nxdomain: n(&["dns", "rcode", "NXDOMAIN"]),
            servfail: n(&["dns", "rcode", "SERVFAIL"]),
            refused: n(&["dns", "rcode", "REFUSED"]),
            rcode_other: n(&["dns", "rcode", "other"]),
            unresolved_fqdn: n(&["dns", "unresolved_fqdn"]),
            unresolved_nxdomain: n(&["dns", "unresolved_nxdomain"]),
            connections: n(&["smtp", "connections"]),
            mail_from: n(&["smtp", "mail_from"]),
            rcpt: n(&["smtp", "rcpt"]),
            user_unknown: n(&["smtp", "user_unknown"]),
            outbound: n(&["smtp", "outbound"]),
        }
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
    /// client_stats lines of clients beyond [`MAX_CLIENTS`], not kept.
    pub clients_dropped: u64,
}

/// Clients whose bins the report keeps (addresses can be spoofed: a capture
/// of a flood must not grow the report without limit). The same as the
/// sensor's default client table.
pub const MAX_CLIENTS: usize = 100_000;

impl Collected {
    pub fn line(&mut self, line: &[u8]) {
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            self.bad_lines += 1;
            return;
        };
        let s = |p: &str| v.pointer(p).and_then(Value::as_str);
        match s("/event/dataset") {
            Some("mxwatch.client_stats") => {
                let (Some(ip), Some(t)) = (s("/source/ip"), s("/event/start")) else {
                    return; // the folded line: not one client
                };
                let (Ok(ip), Some(t)) = (ip.parse::<IpAddr>(), parse_rfc3339(t)) else {
                    self.bad_lines += 1;
                    return;
                };
                if !self.only.is_empty() && !self.only.contains(&ip) {
                    return;
                }
                if self.bins.len() >= MAX_CLIENTS && !self.bins.contains_key(&ip) {
                    self.clients_dropped += 1;
                    return;
                }
                let c = Counts::from_json(&v["mxwatch"]);
                self.bins
                    .entry(ip)
                    .or_default()
                    .entry(t)
                    .or_default()
                    .add(&c);
            }
            Some("mxwatch.detection") => self.detection(&v),
            Some("mxwatch.capture_stats")
                if v.pointer("/mxwatch/capture/final") == Some(&Value::Bool(true)) =>
            {
                self.packets = v
                    .pointer("/mxwatch/capture/packets_read")
                    .and_then(Value::as_u64)
                    .unwrap_or(0);
                if let (Some(a), Some(b)) = (
                    s("/event/start").and_then(parse_rfc3339),
                    s("/event/end").and_then(parse_rfc3339),
                ) && self.packets > 0
                {
                    self.span = Some((a, b));
                }
            }
            _ => {}
        }
    }

    fn detection(&mut self, v: &Value) {
        let s = |p: &str| v.pointer(p).and_then(Value::as_str);
        let (Some(ip), Some(id), Some(start), Some(end)) = (
            s("/source/ip").and_then(|i| i.parse::<IpAddr>().ok()),
            s("/mxwatch/alert_id"),
            s("/event/start").and_then(parse_rfc3339),
            s("/event/end").and_then(parse_rfc3339),
        ) else {
            self.bad_lines += 1;
            return;
        };
        let r2 = v
            .pointer("/mxwatch/evidence/r2_total_vs_unresolved")
            .and_then(Value::as_f64);
        if let Some(d) = self.detections.iter_mut().find(|d| d.alert_id == id) {
            d.start = d.start.min(start);
            d.end = d.end.max(end);
            d.r2 = r2.or(d.r2);
            return;
        }
        self.detections.push(Detection {
            rule: s("/rule/name").unwrap_or("?").to_owned(),
            ip,
            alert_id: id.to_owned(),
            start,
            end,
            r2,
            reason: s("/event/reason").unwrap_or("").to_owned(),
        });
    }
}

/// A `Write` that parses each complete line into a shared `Collected`.
#[derive(Clone)]
pub struct LineSink {
    pub collected: Arc<Mutex<Collected>>,
    partial: Vec<u8>,
}

impl LineSink {
    pub fn new(collected: Collected) -> Self {
        LineSink {
            collected: Arc::new(Mutex::new(collected)),
            partial: Vec::new(),
        }
    }
}

impl Write for LineSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let mut rest = buf;
        while let Some(i) = rest.iter().position(|&b| b == b'\n') {
            self.partial.extend_from_slice(&rest[..i]);
            let line = std::mem::take(&mut self.partial);
            self.collected.lock().expect("collector").line(&line);
            rest = &rest[i + 1..];
        }
        self.partial.extend_from_slice(rest);
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `2026-01-15T10:00:00.000000Z` (as `output::time` writes it) to µs since the epoch.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let b = s.as_bytes();
    if b.len() < 20 || b[4] != b'-' || b[10] != b'T' || !s.ends_with('Z') {
        return None;
    }
    let num = |r: std::ops::Range<usize>| s.get(r)?.parse::<i64>().ok();
    let (y, m, d) = (num(0..4)?, num(5..7)?, num(8..10)?);
    let (hh, mm, ss) = (num(11..13)?, num(14..16)?, num(17..19)?);
    let micros = match s.get(19..s.len() - 1)? {
        "" => 0,
        f => {
            let digits = f.strip_prefix('.')?;
            let padded = format!("{digits:0<6}");
            padded.get(..6)?.parse::<i64>().ok()?
        }
    };
    let days = days_from_civil(y, m as u32, d as u32);
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + micros)
}

/// (year, month, day) to days since 1970-01-01 (Howard Hinnant's `days_from_civil`).
pub fn days_from_civil(y: i64, m: u32, d: u32) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y.rem_euclid(400);
    let mp = (m as i64 + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d as i64 - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::output::time::rfc3339_micros;

    #[test]
    fn the_client_map_is_capped_and_what_it_turns_away_counted() {
        let mut c = Collected::default();
        for i in 0..(MAX_CLIENTS as u32 + 5) {
            let ip = std::net::Ipv4Addr::from(0x0a00_0000 + i);
            let line = format!(
                r#"{{"event":{{"dataset":"mxwatch.client_stats","start":"2026-01-15T10:00:00.000000Z"}},"source":{{"ip":"{ip}"}},"mxwatch":{{"dns":{{"queries":1}}}}}}"#
            );
            c.line(line.as_bytes());
        }
        assert_eq!(c.bins.len(), MAX_CLIENTS);
        assert_eq!(c.clients_dropped, 5);
        assert_eq!(c.bad_lines, 0);
    }

    #[test]
    fn rfc3339_round_trips() {
        for ts in [0, 1_700_000_000_123_456, 951_782_400_000_001, -1_000_000] {
            assert_eq!(parse_rfc3339(&rfc3339_micros(ts)), Some(ts), "{ts}");
        }
        assert_eq!(parse_rfc3339("nonsense"), None);
    }

    #[test]
    fn sink_parses_lines_split_across_writes() {
        let mut sink = LineSink::new(Collected::default());
        let line = br#"{"event":{"dataset":"mxwatch.client_stats","start":"2026-01-01T00:00:00.000000Z"},"source":{"ip":"10.0.0.1"},"mxwatch":{"dns":{"queries":3,"qtype":{"MX":2}}}}"#;
        sink.write_all(&line[..40]).unwrap();
        sink.write_all(&line[40..]).unwrap();
        sink.write_all(b"\n").unwrap();
        let c = sink.collected.lock().unwrap();
        let bins = &c.bins[&"10.0.0.1".parse::<IpAddr>().unwrap()];
        let counts = bins.values().next().unwrap();
        assert_eq!((counts.queries, counts.mx), (3, 2));
    }
}
