//! The figures of one report, per client: Figure 2 (query rate per qtype),
//! Figures 3-4 (total vs unresolved-FQDN rate), Figure 5 (SMTP connections
//! vs "user unknown"), Figure 6 (total vs unresolved per report bin, with the
//! fitted line and R²). Detections of the client are shaded spans.
//!
//! Rates are counts per report bin divided by the bin length; bins where the
//! client had no client_stats line are zero on the curves and left out of
//! the Figure 6 scatter (a quiet bin is not a point of the regression).

use std::net::IpAddr;
use std::path::Path;

use anyhow::Result;
use plotters::style::RGBColor;

use super::Report;
use super::collect::Counts;
use super::plot::{self, ScatterFigure, Series, Span, TimeFigure};
use crate::time::rfc3339_micros;

/// One figure written (as STEM.svg and STEM.png).
#[derive(Debug, Clone)]
pub struct Written {
    pub client: IpAddr,
    pub stem: String,
    pub title: String,
    /// Figure 6 only: R² of the fit.
    pub r2: Option<f64>,
}

/// File-name form of an address (IPv6 colons become underscores).
pub fn file_ip(ip: &IpAddr) -> String {
    ip.to_string().replace(':', "_")
}

/// Unit of the time axis for a span: (divisor in seconds, name).
fn time_unit(span_secs: f64) -> (f64, &'static str) {
    if span_secs <= 900.0 {
        (1.0, "s")
    } else if span_secs <= 3.0 * 3600.0 {
        (60.0, "min")
    } else {
        (3600.0, "h")
    }
}

const COLORS: [RGBColor; 6] = [
    RGBColor(210, 50, 40),
    RGBColor(40, 90, 200),
    RGBColor(30, 150, 80),
    RGBColor(230, 140, 20),
    RGBColor(140, 70, 170),
    RGBColor(100, 100, 100),
];

pub fn write_all(r: &Report, dir: &Path) -> Result<Vec<Written>> {
    let mut out = Vec::new();
    for ip in &r.clients {
        out.extend(write_client(r, *ip, dir)?);
    }
    Ok(out)
}

fn write_client(r: &Report, ip: IpAddr, dir: &Path) -> Result<Vec<Written>> {
    let empty = Default::default();
    let bins = r.bins.get(&ip).unwrap_or(&empty);
    let bin = i64::from(r.bin_secs) * 1_000_000;
    let grid = crate::time::Bins::new(bin);
    let (first, last) = (grid.start_of(r.span.0), grid.start_of(r.span.1));
    let (div, unit) = time_unit((r.span.1 - r.span.0) as f64 / 1e6);
    let x = |t: i64| (t - first) as f64 / 1e6 / div;
    let secs = f64::from(r.bin_secs);
    let curve = |name: &str, color: RGBColor, f: &dyn Fn(&Counts) -> u64| {
        let points = (0..=(last - first) / bin)
            .map(|i| {
                let t = first + i * bin;
                let v = bins.get(&t).map_or(0, f) as f64 / secs;
                (x(t) + secs / div / 2.0, v)
            })
            .collect();
        Series {
            name: name.to_owned(),
            color,
            points,
        }
    };
    let spans: Vec<Span> = r
        .detections
        .iter()
        .filter(|d| d.ip == ip)
        .map(|d| Span {
            name: d.rule.clone(),
            from: x(d.start),
            to: x(d.end),
        })
        .collect();
    let x_label = format!("time since {} ({unit})", &rfc3339_micros(first)[..19]);
    let per_bin = format!("per {} s bin", r.bin_secs);
    let x_range = (0.0, x(last + bin));
    let base = file_ip(&ip);
    let mut written = Vec::new();
    let mut time_fig = |n: &str, title: String, y: &str, series: Vec<Series>| -> Result<()> {
        let stem = format!("{base}-{n}");
        let spans = spans
            .iter()
            .map(|s| Span {
                name: s.name.clone(),
                from: s.from,
                to: s.to,
            })
            .collect();
        let f = TimeFigure {
            title: title.clone(),
            x_label: x_label.clone(),
            y_label: y.to_owned(),
            x_range,
            series,
            spans,
        };
        plot::write_time(dir, &stem, &f)?;
        written.push(Written {
            client: ip,
            stem,
            title,
            r2: None,
        });
        Ok(())
    };
    time_fig(
        "fig2-qtype",
        format!("DNS query rate by qtype from {ip} ({per_bin})"),
        "queries/s",
        vec![
            curve("MX", COLORS[0], &|c| c.mx()),
            curve("A", COLORS[1], &|c| c.a()),
            curve("AAAA", COLORS[2], &|c| c.aaaa()),
            curve("PTR", COLORS[3], &|c| c.ptr()),
            curve("TXT", COLORS[4], &|c| c.txt()),
            curve("other", COLORS[5], &|c| c.qtype_other()),
        ],
    )?;
    time_fig(
        "fig3-unresolved",
        format!("Total vs unresolved-FQDN query rate from {ip} ({per_bin})"),
        "queries/s",
        vec![
            curve("total queries", COLORS[1], &|c| c.queries()),
            curve("unresolved FQDN", COLORS[0], &|c| c.unresolved_fqdn()),
            curve("NXDOMAIN answers", COLORS[3], &|c| c.nxdomain()),
        ],
    )?;
    if bins.values().any(Counts::has_smtp) {
        time_fig(
            "fig5-smtp",
            format!("SMTP at {ip}: connections vs \"user unknown\" ({per_bin})"),
            "events/s",
            vec![
                curve("connections (N_c)", COLORS[1], &|c| c.connections()),
                curve("MAIL FROM (N_f)", COLORS[2], &|c| c.mail_from()),
                curve("user unknown", COLORS[0], &|c| c.user_unknown()),
                curve("outbound sessions", COLORS[3], &|c| c.outbound()),
            ],
        )?;
    }
    let points: Vec<(f64, f64)> = bins
        .values()
        .filter(|c| c.queries() > 0)
        .map(|c| (c.queries() as f64 / secs, c.unresolved_fqdn() as f64 / secs))
        .collect();
    let stem = format!("{base}-fig6-regression");
    let title = format!(
        "Total vs unresolved-FQDN rate from {ip}, one point per {} s bin",
        r.bin_secs
    );
    plot::write_scatter(
        dir,
        &stem,
        &ScatterFigure {
            title: title.clone(),
            x_label: "total DNS queries/s".into(),
            y_label: "unresolved-FQDN queries/s".into(),
            points: points.clone(),
        },
    )?;
    written.push(Written {
        client: ip,
        stem,
        title,
        r2: plot::fit(&points).map(|f| f.2),
    });
    Ok(written)
}
