//! `mxwatch report FILE...`: the papers' tables and figures for a person.
//!
//! The report runs the normal pipeline (the same code as `read`) into a
//! `collect::Collector`, a sink that takes the engine's closed bins and
//! alerts in process, so every number it shows is a client_stats count. Two passes over the files:
//!
//! 1. detections, at the configured bin (the rules are tuned per bin), and
//!    every client's activity in a bounded ranking (`collect::MAX_CLIENTS`);
//! 2. counters (client_stats of the named or top clients only, detection
//!    off) at the report's bin, a divisor of 3600 s so that bins nest in
//!    hours and days.
//!
//! When `--bin` equals the configured bin, one pass does both, unless the
//! capture has so many clients that their bins pass `collect::MAX_CELLS`:
//! then the second pass runs for the top ones. Memory is bounded whatever
//! the number of (spoofed) addresses. Then, per
//! client: `table` (text on stdout, `table.csv`), `figures` (SVG + PNG) and
//! `html` (`index.html`).

pub mod collect;
pub mod figures;
pub mod html;
pub mod plot;
pub mod table;

use std::collections::{BTreeMap, HashSet};
use std::fs;
use std::io::{self, IsTerminal, Write};
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use indicatif::ProgressBar;

use crate::cli::{Common, ReportArgs};
use crate::config::Settings;
use crate::pipeline;
use crate::run;
use collect::{Collected, Collector, Keep};
use table::{DqModel, Period};

/// Report bins (seconds): divisors of 3600, so bins nest in hours and days.
const NICE_BINS: [u32; 22] = [
    1, 2, 3, 4, 5, 6, 10, 12, 15, 20, 30, 60, 120, 180, 240, 300, 360, 600, 720, 900, 1200, 1800,
];

/// The largest divisor of 3600 at most `secs` (1 s at least, 3600 s at most).
pub fn snap_bin(secs: f64) -> u32 {
    if secs >= 3600.0 {
        return 3600;
    }
    NICE_BINS
        .iter()
        .copied()
        .rev()
        .find(|&b| f64::from(b) <= secs)
        .unwrap_or(1)
}

/// Default report bin: the capture span / 100, snapped (about 100 points a curve).
pub fn default_bin(span_micros: i64) -> u32 {
    snap_bin(span_micros as f64 / 1e6 / 100.0)
}

/// Everything the writers need about one run.
pub struct Report {
    pub files: Vec<String>,
    pub bin_secs: u32,
    pub detect_bin_secs: f64,
    pub span: (i64, i64),
    pub period: Period,
    pub model: DqModel,
    pub clients: Vec<IpAddr>,
    /// The ranking that picked them overflowed (more clients than it holds).
    pub ranking_full: bool,
    /// The clients' bins: client -> bin start (µs) -> counters.
    pub bins: BTreeMap<IpAddr, BTreeMap<i64, collect::Counts>>,
    pub counters: Collected,
    pub detections: Vec<collect::Detection>,
}

/// `mxwatch report`
pub fn report(args: &ReportArgs) -> Result<()> {
    crate::config::check_report(args)?;
    let common = Common {
        config: args.config.clone(),
        local_domain: args.local_domain.clone(),
        bin: None,
        stats: true,
        top: None,
        no_detect: false,
        output: Vec::new(),
        metrics_listen: None,
        workers: args.workers,
        filter: args.filter.clone(),
        sensor_name: Some("mxwatch-report".into()),
        dry_run: true,
        publish: None,
    };
    let detect_settings = Settings::build(&common)?;
    let bytes = run::total_bytes(&args.files);
    let fixed_bin = args.bin.map(snap_bin);
    let one_pass =
        fixed_bin.is_some_and(|b| i64::from(b) * 1_000_000 == detect_settings.bin_micros);
    let show = !args.no_progress && io::stderr().is_terminal();
    let bar = run::progress_bar(show, if one_pass { bytes } else { 2 * bytes });

    bar.set_message("pass 1: detections");
    // Which bins the first pass keeps: the named clients', else (one pass)
    // every client's while they fit, else none (pass 2 keeps the top ones).
    let named: HashSet<IpAddr> = args.clients.iter().copied().collect();
    let keep = if !named.is_empty() {
        Keep::Only(named)
    } else if one_pass {
        Keep::All {
            max_cells: collect::MAX_CELLS,
        }
    } else {
        Keep::Nothing
    };
    // An input error (a cut capture) does not lose what was read: the report
    // is written from it, then the error is returned (one line, exit 1).
    let (mut first, input_error) = run_pass(&detect_settings, &args.files, keep, &bar)?;
    let Some(span) = first.span else {
        bar.finish_and_clear();
        // Nothing read: the input's own error says why, when it has one.
        if let Some(e) = input_error {
            return Err(e.into());
        }
        bail!("no packets in {}", display_files(&args.files));
    };
    let bin_secs = fixed_bin.unwrap_or_else(|| default_bin(span.1 - span.0));
    let clients = pick_clients(&first, &args.clients, args.top);
    let ranking_full = first.ranking.replaced() > 0;
    let detections = std::mem::take(&mut first.detections);
    let counters = if one_pass && !first.bins_abandoned {
        first
    } else {
        if one_pass {
            // Too many clients to keep all their bins: once more for the top ones.
            bar.set_length(2 * bytes);
        }
        bar.set_message("pass 2: counters");
        let s = Settings::build(&Common {
            bin: Some(f64::from(bin_secs)),
            no_detect: true,
            ..common.clone()
        })?;
        let only = Keep::Only(clients.iter().copied().collect());
        run_pass(&s, &args.files, only, &bar)?.0
    };
    bar.finish_and_clear();

    for ip in &args.clients {
        if !counters.bins.contains_key(ip) {
            eprintln!(
                "mxwatch: warning: --client {ip} sent or received nothing in the capture; its figures are empty"
            );
        }
    }
    let r = Report {
        files: args.files.iter().map(|p| p.display().to_string()).collect(),
        bin_secs,
        detect_bin_secs: detect_settings.bin_micros as f64 / 1e6,
        span,
        period: Period::for_span(span.1 - span.0),
        model: DqModel {
            k: args.dq_k,
            q: args.dq_q,
        },
        bins: clients
            .iter()
            .map(|ip| (*ip, counters.client_bins(ip)))
            .collect(),
        ranking_full,
        clients,
        counters,
        detections,
    };
    fs::create_dir_all(&args.out)
        .with_context(|| format!("cannot create {}", args.out.display()))?;
    let figures = figures::write_all(&r, &args.out)?;
    let mut stdout = io::stdout().lock();
    html::write_text(&mut stdout, &r, &figures)?;
    stdout.flush()?;
    html::write_csv(&r, &args.out.join("table.csv"))?;
    html::write_html(&r, &figures, &args.out.join("index.html"))?;
    eprintln!(
        "mxwatch report: wrote {} (index.html, table.csv, {} figures as SVG and PNG)",
        args.out.display(),
        figures.len()
    );
    if let Some(e) = input_error {
        return Err(e.into());
    }
    Ok(())
}

fn display_files(files: &[PathBuf]) -> String {
    files
        .iter()
        .map(|p| p.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The named clients, else the `top` most active (ties: lower address first).
fn pick_clients(c: &Collected, named: &[IpAddr], top: usize) -> Vec<IpAddr> {
    if !named.is_empty() {
        return named.to_vec();
    }
    c.ranking.top(top).into_iter().map(|(ip, _)| ip).collect()
}

/// One run of the pipeline over the files, its bins (those `keep` says) and
/// alerts collected.
fn run_pass(
    settings: &Settings,
    files: &[PathBuf],
    keep: Keep,
    bar: &ProgressBar,
) -> Result<(Collected, Option<crate::capture::CaptureError>)> {
    let sink = Collector::new(Collected::new(keep));
    let collected = sink.collected.clone();
    let mut run = pipeline::start(settings.pipeline(true), Box::new(sink));
    // Merged by packet time: the lab's DNS and SMTP files cover the same minutes.
    let input_error = run::feed_files(
        &mut run.capture,
        files,
        settings.filter.as_deref(),
        true,
        bar,
    )
    .err();
    let files = files.to_vec();
    let (_, written) = run.finish(|c| vec![run::file_snapshot(&mut c.front, &files)]);
    written.context("report pipeline output")?;
    let mut c = collected.lock().expect("collector");
    Ok((std::mem::take(&mut *c), input_error))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bins_divide_an_hour() {
        for s in [0.2, 1.0, 7.0, 59.0, 61.0, 1000.0, 5000.0] {
            assert_eq!(3600 % snap_bin(s), 0, "{s}");
        }
        assert_eq!(snap_bin(7.0), 6);
        assert_eq!(default_bin(3_600_000_000), 30);
        assert_eq!(default_bin(10_000_000), 1);
    }
}
