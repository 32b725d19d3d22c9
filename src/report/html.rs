//! Writers of a finished report: the text on stdout, `table.csv`, and
//! `index.html` (one page, no scripts or outside resources; it shows the
//! SVG figures written beside it and links their PNG).

use std::fmt::Write as _;
use std::io::{self, Write};
use std::path::Path;

use anyhow::{Context, Result};

use super::Report;
use super::figures::Written;
use super::table::{self, Row};
use crate::time::rfc3339_micros;

fn rows_of(r: &Report, ip: &std::net::IpAddr) -> Vec<Row> {
    let empty = Default::default();
    table::rows(r.bins.get(ip).unwrap_or(&empty), r.period, &r.model)
}

fn model_note(r: &Report) -> String {
    let q = r
        .model
        .q
        .map_or("q = N_c / (N_c + outbound) from the wire".to_owned(), |q| {
            format!("q = {q} (--dq-q)")
        });
    format!(
        "D_q model (relay paper): (2 + k n (1 - q)) N_S + N_P with k = {}, n = RCPT / MAIL FROM, \
         N_S = N_c + outbound sessions, {q}, N_P = 0 (POP3 not decoded). A model, not a count: compare it with `total`.",
        r.model.k
    )
}

pub fn write_text(w: &mut dyn Write, r: &Report, figs: &[Written]) -> io::Result<()> {
    writeln!(w, "mxwatch report: {}", r.files.join(", "))?;
    writeln!(
        w,
        "capture {} .. {} UTC, {} packets; table per {}, curves per {} s bin, detections per {} s bin",
        &rfc3339_micros(r.span.0)[..19],
        &rfc3339_micros(r.span.1)[..19],
        r.counters.packets,
        r.period.name(),
        r.bin_secs,
        r.detect_bin_secs
    )?;
    writeln!(w, "{}", model_note(r))?;
    if r.ranking_full {
        writeln!(
            w,
            "note: more than {} clients: the top ones are from a Space-Saving ranking (a client with more than 1/{} of all queries and sessions is always in it); their tables are exact",
            super::collect::MAX_CLIENTS,
            super::collect::MAX_CLIENTS
        )?;
    }
    if r.clients.is_empty() {
        writeln!(w, "\nno client sent DNS or SMTP traffic")?;
    }
    for ip in &r.clients {
        writeln!(w, "\nclient {ip}")?;
        table::write_text(w, r.period, &rows_of(r, ip))?;
        for f in figs.iter().filter(|f| f.client == *ip) {
            if f.stem.ends_with("fig6-regression") {
                match f.r2 {
                    Some(r2) => writeln!(
                        w,
                        "Figure 6 fit: R² = {r2:.4} (total vs unresolved, per {} s bin)",
                        r.bin_secs
                    )?,
                    None => writeln!(w, "Figure 6 fit: R² undefined (a constant axis)")?,
                }
            }
        }
        for d in r.detections.iter().filter(|d| d.ip == *ip) {
            // The evidence's R² (per sub-bin) means something for backscatter only.
            let r2 =
                d.r2.filter(|_| d.rule == "backscatter")
                    .map_or(String::new(), |v| format!(", R² per sub-bin {v:.4}"));
            writeln!(
                w,
                "detection {} {} .. {}{r2}: {}",
                d.rule,
                &rfc3339_micros(d.start)[..19],
                &rfc3339_micros(d.end)[..19],
                d.reason
            )?;
        }
    }
    Ok(())
}

pub fn write_csv(r: &Report, path: &Path) -> Result<()> {
    let mut w =
        csv::Writer::from_path(path).with_context(|| format!("cannot write {}", path.display()))?;
    w.write_record(table::CSV_HEADER)?;
    for ip in &r.clients {
        for row in rows_of(r, ip) {
            w.write_record(table::csv_record(&ip.to_string(), r.period, &row))?;
        }
    }
    w.flush()?;
    Ok(())
}

/// Minimal HTML escaping for text and attribute values.
pub fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

const STYLE: &str = "body{font-family:sans-serif;margin:2em;max-width:1100px}\
table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccc;padding:2px 6px;text-align:right}\
th:first-child,td:first-child{text-align:left}tr.total{font-weight:bold}\
img{max-width:100%;border:1px solid #ddd;margin:6px 0}code{background:#f4f4f4}";

pub fn write_html(r: &Report, figs: &[Written], path: &Path) -> Result<()> {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>mxwatch report</title><style>{STYLE}</style></head><body>\n\
         <h1>mxwatch report</h1>\n<p>Files: {}. Capture {} .. {} UTC, {} packets. \
         Table per {}, curves per {} s bin, detections per {} s bin. \
         <a href=\"table.csv\">table.csv</a></p>\n<p>{}</p>\n",
        esc(&r.files.join(", ")),
        &rfc3339_micros(r.span.0)[..19],
        &rfc3339_micros(r.span.1)[..19],
        r.counters.packets,
        r.period.name(),
        r.bin_secs,
        r.detect_bin_secs,
        esc(&model_note(r)),
    );
    for ip in &r.clients {
        let _ = write!(
            h,
            "<h2>Client {ip}</h2>\n<table><tr><th>{}</th>",
            r.period.name()
        );
        for c in &table::CSV_HEADER[3..table::CSV_HEADER.len() - 1] {
            let _ = write!(h, "<th>{}</th>", esc(c));
        }
        h.push_str("</tr>\n");
        for row in rows_of(r, ip) {
            let rec = table::csv_record(&ip.to_string(), r.period, &row);
            let class = if row.start.is_none() {
                " class=\"total\""
            } else {
                ""
            };
            let _ = write!(h, "<tr{class}><td>{}</td>", esc(&row.label));
            for cell in &rec[3..rec.len() - 1] {
                let _ = write!(h, "<td>{}</td>", esc(cell));
            }
            h.push_str("</tr>\n");
        }
        h.push_str("</table>\n<ul>\n");
        for d in r.detections.iter().filter(|d| d.ip == *ip) {
            let _ = writeln!(
                h,
                "<li><b>{}</b> {} .. {}: {}</li>",
                esc(&d.rule),
                &rfc3339_micros(d.start)[..19],
                &rfc3339_micros(d.end)[..19],
                esc(&d.reason)
            );
        }
        h.push_str("</ul>\n");
        for f in figs.iter().filter(|f| f.client == *ip) {
            let _ = writeln!(
                h,
                "<figure><img src=\"{0}.svg\" alt=\"{1}\"><figcaption>{1}{2} \
                 (<a href=\"{0}.png\">PNG</a>, <a href=\"{0}.svg\">SVG</a>)</figcaption></figure>",
                esc(&f.stem),
                esc(&f.title),
                f.r2.map_or(String::new(), |v| format!(", R² = {v:.4}")),
            );
        }
    }
    h.push_str("</body></html>\n");
    std::fs::write(path, h).with_context(|| format!("cannot write {}", path.display()))
}
