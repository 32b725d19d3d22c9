//! The paper's Table 1, per client: counts by day (or by hour when the
//! capture is shorter than a day), with alpha and the D_q model; as a
//! fixed-width text table and as CSV.
//!
//! Input: one client's per-bin `Counts` (bins nest in hours: the report's
//! bin divides 3600). Output: `Row`s, summed per period, then text or CSV.

use std::collections::BTreeMap;
use std::io::{self, Write};

use super::collect::Counts;
use crate::time::rfc3339_micros;

const HOUR: i64 = 3_600_000_000;
const DAY: i64 = 24 * HOUR;

/// Rows per day or per hour.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Period {
    Hour,
    Day,
}

impl Period {
    /// Hours for a capture shorter than a day, else days.
    pub fn for_span(span_micros: i64) -> Period {
        if span_micros < DAY {
            Period::Hour
        } else {
            Period::Day
        }
    }
    pub fn micros(self) -> i64 {
        match self {
            Period::Hour => HOUR,
            Period::Day => DAY,
        }
    }
    pub fn name(self) -> &'static str {
        match self {
            Period::Hour => "hour",
            Period::Day => "day",
        }
    }
    /// "2026-01-15" or "2026-01-15 10:00" (UTC).
    pub fn label(self, start: i64) -> String {
        let t = rfc3339_micros(start);
        match self {
            Period::Day => t[..10].to_owned(),
            Period::Hour => format!("{} {}", &t[..10], &t[11..16]),
        }
    }
}

/// The relay paper's model of upstream DNS queries from SMTP traffic:
/// D_q = (2 + k n (1 - q)) N_S + N_P.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DqModel {
    /// Lookups per destination domain (the paper: 2 for Postfix, 4 for sendmail 8.9).
    pub k: f64,
    /// Share of received mail N_S(r)/(N_S(r)+N_S(t)); None: from the wire.
    pub q: Option<f64>,
}

impl DqModel {
    /// Expected queries for these counts, None without SMTP.
    ///
    /// From the wire: N_S(r) = inbound sessions (N_c), N_S(t) = outbound
    /// sessions, N_S = both; n (domains per message) ~ recipients per MAIL FROM
    /// (1 without MAIL FROM); N_P (POP3 accesses) is not decoded and taken as 0.
    pub fn expected(&self, c: &Counts) -> Option<f64> {
        if !c.has_smtp() {
            return None;
        }
        let n_s = (c.connections() + c.outbound()) as f64;
        let q = self
            .q
            .unwrap_or_else(|| c.connections() as f64 / n_s.max(1.0))
            .clamp(0.0, 1.0);
        let n = if c.mail_from() > 0 {
            c.rcpt() as f64 / c.mail_from() as f64
        } else {
            1.0
        };
        Some((2.0 + self.k * n * (1.0 - q)) * n_s)
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Row {
    /// Period start (µs), or None for the total row.
    pub start: Option<i64>,
    pub label: String,
    pub counts: Counts,
    pub dq_model: Option<f64>,
}

/// Sums bins into periods (sorted) and appends a total row.
pub fn rows(bins: &BTreeMap<i64, Counts>, period: Period, model: &DqModel) -> Vec<Row> {
    let mut by_period: BTreeMap<i64, Counts> = BTreeMap::new();
    let mut total = Counts::default();
    for (&t, c) in bins {
        let p = crate::time::Bins::new(period.micros()).start_of(t);
        by_period.entry(p).or_default().add(c);
        total.add(c);
    }
    let mut out: Vec<Row> = by_period
        .into_iter()
        .map(|(p, c)| Row {
            start: Some(p),
            label: period.label(p),
            dq_model: model.expected(&c),
            counts: c,
        })
        .collect();
    out.push(Row {
        start: None,
        label: "total".into(),
        dq_model: model.expected(&total),
        counts: total,
    });
    out
}

const TEXT_COLUMNS: [(&str, usize); 18] = [
    ("MX", 8),
    ("A", 8),
    ("AAAA", 7),
    ("PTR", 7),
    ("TXT", 6),
    ("other", 6),
    ("total", 9),
    ("NOERROR", 8),
    ("NXDOMAIN", 9),
    ("SERVFAIL", 9),
    ("REFUSED", 8),
    ("unresolved", 11),
    ("N_c", 7),
    ("N_f", 7),
    ("user-unknown", 13),
    ("outbound", 9),
    ("alpha", 7),
    ("D_q model", 10),
];

fn text_cells(r: &Row) -> [String; 18] {
    let c = &r.counts;
    [
        c.mx().to_string(),
        c.a().to_string(),
        c.aaaa().to_string(),
        c.ptr().to_string(),
        c.txt().to_string(),
        c.qtype_other().to_string(),
        c.queries().to_string(),
        c.noerror().to_string(),
        c.nxdomain().to_string(),
        c.servfail().to_string(),
        c.refused().to_string(),
        c.unresolved_fqdn().to_string(),
        c.connections().to_string(),
        c.mail_from().to_string(),
        c.user_unknown().to_string(),
        c.outbound().to_string(),
        c.alpha().map_or("-".into(), |a| format!("{a:.2}")),
        r.dq_model.map_or("-".into(), |d| format!("{d:.0}")),
    ]
}

/// Fixed-width text table like the paper's Table 1.
pub fn write_text(w: &mut dyn Write, period: Period, rows: &[Row]) -> io::Result<()> {
    let first = 17;
    let mut header = format!("{:<first$}", period.name());
    for (name, width) in TEXT_COLUMNS {
        header.push_str(&format!("{name:>width$}"));
    }
    writeln!(w, "{header}")?;
    writeln!(w, "{}", "-".repeat(header.len()))?;
    for r in rows {
        if r.start.is_none() {
            writeln!(w, "{}", "-".repeat(header.len()))?;
        }
        let mut line = format!("{:<first$}", r.label);
        for ((_, width), cell) in TEXT_COLUMNS.iter().zip(text_cells(r)) {
            line.push_str(&format!("{cell:>width$}"));
        }
        writeln!(w, "{line}")?;
    }
    Ok(())
}

pub const CSV_HEADER: [&str; 26] = [
    "client",
    "period",
    "start",
    "MX",
    "A",
    "AAAA",
    "PTR",
    "TXT",
    "qtype_other",
    "total",
    "NOERROR",
    "NXDOMAIN",
    "SERVFAIL",
    "REFUSED",
    "rcode_other",
    "unresolved_fqdn",
    "unresolved_nxdomain",
    "N_c",
    "N_f",
    "rcpt",
    "user_unknown",
    "outbound",
    "alpha",
    "dq_model",
    "dq_observed",
    "label",
];

/// One CSV record per row; `start` is RFC 3339 (empty on the total row).
pub fn csv_record(client: &str, period: Period, r: &Row) -> Vec<String> {
    let c = &r.counts;
    let n = |x: u64| x.to_string();
    vec![
        client.to_owned(),
        if r.start.is_some() {
            period.name().to_owned()
        } else {
            "total".to_owned()
        },
        r.start.map(rfc3339_micros).unwrap_or_default(),
        n(c.mx()),
        n(c.a()),
        n(c.aaaa()),
        n(c.ptr()),
        n(c.txt()),
        n(c.qtype_other()),
        n(c.queries()),
        n(c.noerror()),
        n(c.nxdomain()),
        n(c.servfail()),
        n(c.refused()),
        n(c.rcode_other()),
        n(c.unresolved_fqdn()),
        n(c.unresolved_nxdomain()),
        n(c.connections()),
        n(c.mail_from()),
        n(c.rcpt()),
        n(c.user_unknown()),
        n(c.outbound()),
        c.alpha().map_or(String::new(), |a| format!("{a:.4}")),
        r.dq_model.map_or(String::new(), |d| format!("{d:.1}")),
        if r.dq_model.is_some() {
            n(c.queries())
        } else {
            String::new()
        },
        r.label.clone(),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dq_model_follows_the_paper() {
        let m = DqModel { k: 2.0, q: None };
        // 10 received, 30 sent out, 2 recipients per message: q = 0.25,
        // D_q = (2 + 2 * 2 * 0.75) * 40 = 200.
        let mut c = Counts::default();
        c.smtp.connections = 10;
        c.smtp.outbound = 30;
        c.smtp.mail_from = 10;
        c.smtp.rcpt = 20;
        assert_eq!(m.expected(&c), Some(200.0));
        assert_eq!(m.expected(&Counts::default()), None);
        let cached = DqModel {
            k: 2.0,
            q: Some(1.0),
        };
        assert_eq!(cached.expected(&c), Some(80.0));
    }

    #[test]
    fn rows_sum_bins_into_hours_with_a_total() {
        let mut bins = BTreeMap::new();
        let mut c = Counts::default();
        c.dns.queries = 2;
        c.dns.qtype[crate::dns::QtypeBucket::Mx as usize] = 2;
        bins.insert(0, c.clone());
        bins.insert(60_000_000, c.clone());
        bins.insert(HOUR, c);
        let r = rows(&bins, Period::Hour, &DqModel { k: 2.0, q: None });
        assert_eq!(r.len(), 3);
        assert_eq!(r[0].counts.mx(), 4);
        assert_eq!(r[1].label, "1970-01-01 01:00");
        assert_eq!(r[2].counts.queries(), 6);
        let d = rows(&bins, Period::Day, &DqModel { k: 2.0, q: None });
        assert_eq!((d.len(), d[0].label.as_str()), (2, "1970-01-01"));
        assert_eq!(Period::for_span(DAY), Period::Day);
        assert_eq!(Period::for_span(DAY - 1), Period::Hour);
    }
}
