//! The commands: settings -> pipeline -> result. Errors are returned to
//! `main`, which prints one line; everything computed before an input error
//! is still written (bins flushed, alerts ended, final capture_stats).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::capture::{CaptureError, FileSource};
use crate::cli::{ConfigArgs, ReadArgs};
use crate::config::{self, Settings};
use crate::decode::{DecodeLimits, DecodeStats, Decoder};
use crate::output::Output;
use crate::output::schema::{
    CaptureOut, CaptureStatsBody, CaptureStatsLine, ChannelDropsOut, DecodeErrorsOut, DnsHealthOut,
    Event, EvictionsOut, LibpcapOut, SCHEMA_VERSION, SkippedOut,
};
use crate::output::time::rfc3339_micros;
use crate::pipeline::{self, PipelineConfig, PipelineHealth};
use crate::smtp::SmtpLimits;

pub use crate::capture::live::live;

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

pub fn open_output(path: &Option<PathBuf>) -> Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) => {
            let f = File::options()
                .create(true)
                .append(true)
                .open(p)
                .with_context(|| format!("cannot open output {}", p.display()))?;
            Box::new(BufWriter::with_capacity(1 << 16, f))
        }
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout())),
    })
}

pub fn pipeline_config(s: &Settings, lossless: bool) -> PipelineConfig {
    PipelineConfig {
        workers: s.workers,
        batch_events: s.file.pipeline.batch_events,
        channel_batches: s.file.pipeline.channel_batches,
        lossless,
        classify: s.classify.clone(),
        decode: DecodeLimits {
            max_tcp_dns_flows: s.file.pipeline.max_tcp_dns_flows,
            smtp: SmtpLimits {
                max_flows: s.file.pipeline.max_smtp_flows,
                ..SmtpLimits::default()
            },
            defrag: s.file.defrag.limits(),
        },
    }
}

/// Numbers of the capture side at one moment, for a capture_stats line.
#[derive(Debug, Clone)]
pub struct CaptureSnapshot {
    pub mode: &'static str,
    pub interface: Option<String>,
    pub files: Vec<String>,
    pub is_final: bool,
    pub first_ts: i64,
    pub ts: i64,
    pub decode: DecodeStats,
    pub smtp: serde_json::Value,
    pub smtp_flows_evicted: u64,
    pub libpcap: Option<LibpcapOut>,
    pub dropped_batches: u64,
    pub dropped_events: u64,
    /// Live only: (batches, frames) dropped between capture and decoder.
    pub dropped_frames: Option<(u64, u64)>,
}

pub fn write_capture_stats(
    out: &mut Output,
    snap: &CaptureSnapshot,
    h: &PipelineHealth,
) -> io::Result<()> {
    let d = &snap.decode;
    let s = &h.shards;
    let name = out.observer_name().to_owned();
    let observer = crate::output::schema::Observer::new(&name);
    let line = CaptureStatsLine {
        timestamp: rfc3339_micros(snap.ts),
        event: Event {
            kind: "metric",
            dataset: "mxwatch.capture_stats",
            kind_of: None,
            start: rfc3339_micros(snap.first_ts),
            end: rfc3339_micros(snap.ts),
            severity: None,
            reason: None,
        },
        observer: &observer,
        mxwatch: CaptureStatsBody {
            schema_version: SCHEMA_VERSION,
            capture: CaptureOut {
                mode: snap.mode,
                interface: snap.interface.as_deref(),
                files: snap.files.clone(),
                is_final: snap.is_final,
                packets_read: d.packets,
                packets_decoded: d.decoded,
                libpcap: snap.libpcap,
                truncated: d.truncated,
                decode_errors: DecodeErrorsOut {
                    link: d.decode_errors.link,
                    ip: d.decode_errors.ip,
                    transport: d.decode_errors.transport,
                    dns_short_header: s.dns_short_header,
                    dns_bad_name: s.dns_bad_name,
                },
                skipped: SkippedOut {
                    not_ip: d.not_ip,
                    other_transport: d.other_transport,
                    other_ports: d.other_ports,
                    later_fragments: d.later_fragments,
                },
                ip_fragments: d.ip_fragments,
                dns: DnsHealthOut {
                    messages: s.dns_messages,
                    partial: d.dns_partial,
                    no_question: s.dns_no_question,
                    unsolicited_responses: s.dns_unsolicited_responses,
                    tcp_gaps: d.tcp_dns_gaps,
                    out_of_order_events: s.out_of_order_events,
                },
                smtp: snap.smtp.clone(),
                channel_drops: ChannelDropsOut {
                    batches: snap.dropped_batches,
                    events: snap.dropped_events,
                    frame_batches: snap.dropped_frames.map(|d| d.0),
                    frames: snap.dropped_frames.map(|d| d.1),
                },
                evictions: EvictionsOut {
                    clients: s.clients_evicted,
                    client_overflow_events: s.clients_overflow_events,
                    pending_queries: s.pending_evicted,
                    tcp_dns_flows: d.tcp_dns_flows_evicted,
                    smtp_flows: snap.smtp_flows_evicted,
                    learn_candidates: s.learn_candidates_dropped,
                },
                clients_tracked: h.clients_tracked,
            },
        },
    };
    out.line(&line)
}

/// `mxwatch read FILE...`
pub fn read(args: &ReadArgs) -> Result<()> {
    let settings = Settings::build(&args.common)?;
    let writer = open_output(&settings.output)?;
    let mut run = pipeline::start(
        pipeline_config(&settings, true),
        output_for(writer, &settings),
    );
    let show_progress = !args.no_progress && io::stderr().is_terminal();
    let bar = progress_bar(show_progress, total_bytes(&args.files));
    let progress = |_: &pipeline::CaptureSide, path: &Path, bytes: u64| {
        bar.set_message(path.display().to_string());
        bar.inc(bytes);
    };
    let input_error = feed_files(
        &mut run.capture,
        &args.files,
        settings.filter.as_deref(),
        args.merge,
        progress,
    )
    .err();
    bar.finish_and_clear();
    let snap = file_snapshot(&run.capture, &args.files);
    let (_, written) = run.finish(move |out, h| write_capture_stats(out, &snap, h));
    if let Some(e) = input_error {
        return Err(e.into());
    }
    written.context("writing output")?;
    Ok(())
}

/// A progress bar over the bytes of the input files, on stderr; hidden when
/// `show` is false (stderr not a terminal, or `--no-progress`).
pub fn progress_bar(show: bool, total: u64) -> ProgressBar {
    if !show {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::new(total);
    if let Ok(style) = ProgressStyle::with_template(
        "{msg:20} [{bar:40}] {bytes}/{total_bytes} {bytes_per_sec} eta {eta}",
    ) {
        bar.set_style(style.progress_chars("=> "));
    }
    bar
}

/// Total size of the input files (what the progress bar counts).
pub fn total_bytes(files: &[PathBuf]) -> u64 {
    files
        .iter()
        .map(|p| std::fs::metadata(p).map_or(0, |m| m.len()))
        .sum()
}

/// Feeds capture files to the pipeline: one after another, or merged by
/// packet time (ties: the file given first). `progress` is called now and
/// then with the file being read and the bytes read since the last call.
/// Stops early, without error, when the output can no longer be written.
/// At the end (or an input error), datagrams still being reassembled are
/// handed on from their first fragment.
pub fn feed_files(
    capture: &mut pipeline::CaptureSide,
    paths: &[PathBuf],
    filter: Option<&str>,
    merge: bool,
    progress: impl FnMut(&pipeline::CaptureSide, &Path, u64),
) -> Result<(), CaptureError> {
    let fed = feed_files_in_turn(capture, paths, filter, merge, progress);
    capture.decoder.flush(&mut capture.sharder);
    fed
}

fn feed_files_in_turn(
    capture: &mut pipeline::CaptureSide,
    paths: &[PathBuf],
    filter: Option<&str>,
    merge: bool,
    mut progress: impl FnMut(&pipeline::CaptureSide, &Path, u64),
) -> Result<(), CaptureError> {
    /// A file and its next frame, copied out of libpcap's buffer.
    struct Head {
        src: FileSource,
        next: Option<(i64, u32, Vec<u8>)>,
    }
    fn pull(h: &mut Head) -> Result<(), CaptureError> {
        h.next = h
            .src
            .next_frame()?
            .map(|f| (f.ts, f.wire_len, f.data.to_vec()));
        Ok(())
    }
    let mut bytes: u64 = 0;
    let mut n: u64 = 0;
    // Every 64k frames: report progress, and stop if the output is gone.
    let mut tick = |capture: &pipeline::CaptureSide, path: &Path, len: usize| -> bool {
        bytes += 16 + len as u64; // record header + captured bytes
        n += 1;
        if n & 0xffff == 0 {
            progress(capture, path, std::mem::take(&mut bytes));
            return capture.output_failed();
        }
        false
    };
    if !merge {
        for path in paths {
            let mut src = FileSource::open(path, filter)?;
            capture.set_link(src.link_type());
            while let Some(f) = src.next_frame()? {
                capture.frame(f.ts, f.data, f.wire_len);
                if tick(capture, path, f.data.len()) {
                    return Ok(());
                }
            }
        }
        return Ok(());
    }
    let mut heads = Vec::new();
    for p in paths {
        let mut h = Head {
            src: FileSource::open(p, filter)?,
            next: None,
        };
        pull(&mut h)?;
        heads.push(h);
    }
    while let Some((_, i)) = heads
        .iter()
        .enumerate()
        .filter_map(|(i, h)| h.next.as_ref().map(|f| (f.0, i)))
        .min()
    {
        let h = &mut heads[i];
        let (ts, wire_len, data) = h.next.take().expect("present");
        capture.set_link(h.src.link_type());
        capture.frame(ts, &data, wire_len);
        pull(h)?;
        if tick(capture, h.src.path(), data.len()) {
            return Ok(());
        }
    }
    Ok(())
}

/// The final capture_stats numbers of a file run.
pub fn file_snapshot(capture: &pipeline::CaptureSide, files: &[PathBuf]) -> CaptureSnapshot {
    CaptureSnapshot {
        mode: "file",
        interface: None,
        files: files.iter().map(|p| p.display().to_string()).collect(),
        is_final: true,
        first_ts: capture.first_ts.unwrap_or(0),
        ts: capture.last_ts.unwrap_or(0),
        decode: capture.decoder.stats(),
        smtp: smtp_stats_json(&capture.decoder),
        smtp_flows_evicted: capture.decoder.smtp_tracker().stats().flows_evicted,
        libpcap: None,
        dropped_batches: capture.sharder.dropped_batches,
        dropped_events: capture.sharder.dropped_events,
        dropped_frames: None,
    }
}

/// The SMTP tracker's counters of one decoder, for capture_stats.
pub fn smtp_stats_json(d: &Decoder) -> serde_json::Value {
    serde_json::to_value(d.smtp_tracker().stats()).unwrap_or_default()
}

/// The output every run writes to, with the settings' sensor name, bins and `--stats`/`--top`.
pub fn output_for(writer: Box<dyn Write + Send>, s: &Settings) -> Output {
    Output::new(writer, s.sensor_name.clone(), s.stats, s.top, s.bin_micros)
}

/// `mxwatch config`
pub fn config(args: &ConfigArgs) -> Result<()> {
    let mut out = io::stdout().lock();
    if let Some(p) = &args.check {
        let cfg = config::load(p)?;
        let text = toml::to_string(&cfg).context("printing config")?;
        out.write_all(text.as_bytes())?;
    } else {
        out.write_all(config::DEFAULT_TOML.as_bytes())?;
    }
    out.flush()?;
    Ok(())
}
