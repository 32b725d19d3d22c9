//! The commands: settings -> pipeline -> result. Errors are returned to
//! `main`, which prints one line; everything computed before an input error
//! is still written (bins flushed, alerts ended, final capture_stats).

use std::fs::File;
use std::io::{self, BufWriter, IsTerminal, Write};
use std::path::PathBuf;
use std::time::Instant;

use anyhow::{Context, Result};

use crate::capture::{CaptureError, FileSource};
use crate::cli::{ConfigArgs, ReadArgs};
use crate::config::{self, Settings};
use crate::decode::{DecodeLimits, DecodeStats};
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
    let output = Output::new(
        writer,
        settings.sensor_name.clone(),
        settings.stats,
        settings.top,
        settings.bin_micros,
    );
    let mut run = pipeline::start(pipeline_config(&settings, true), output);
    let show_progress = !args.no_progress && io::stderr().is_terminal();
    let started = Instant::now();
    let mut last_progress = Instant::now();
    let mut input_error: Option<CaptureError> = None;
    let files: Vec<String> = args.files.iter().map(|p| p.display().to_string()).collect();
    let mut progress = |capture: &pipeline::CaptureSide, what: &std::path::Path| {
        if show_progress && last_progress.elapsed().as_millis() >= 500 {
            last_progress = Instant::now();
            let total = capture.decoder.stats().packets;
            let rate = total as f64 / started.elapsed().as_secs_f64();
            eprint!(
                "\r\x1b[2K{}: {total} packets, {:.2} Mpkt/s",
                what.display(),
                rate / 1e6
            );
        }
    };
    if args.merge {
        input_error = read_merged(
            &args.files,
            settings.filter.as_deref(),
            &mut run.capture,
            &mut progress,
        )
        .err();
    } else {
        'files: for path in &args.files {
            let mut src = match FileSource::open(path, settings.filter.as_deref()) {
                Ok(s) => s,
                Err(e) => {
                    input_error = Some(e);
                    break;
                }
            };
            run.capture.set_link(src.link_type());
            let mut n: u64 = 0;
            loop {
                match src.next_frame() {
                    Ok(Some(f)) => {
                        run.capture.frame(f.ts, f.data, f.wire_len);
                        n += 1;
                        if n & 0xffff == 0 {
                            if run.capture.output_failed() {
                                break 'files;
                            }
                            progress(&run.capture, path);
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        input_error = Some(e);
                        break 'files;
                    }
                }
            }
        }
    }
    if show_progress {
        eprint!("\r\x1b[2K");
    }
    let snap = CaptureSnapshot {
        mode: "file",
        interface: None,
        files,
        is_final: true,
        first_ts: run.capture.first_ts.unwrap_or(0),
        ts: run.capture.last_ts.unwrap_or(0),
        decode: run.capture.decoder.stats(),
        smtp: smtp_stats_json(&run.capture),
        smtp_flows_evicted: smtp_evicted(&run.capture),
        libpcap: None,
        dropped_batches: run.capture.sharder.dropped_batches,
        dropped_events: run.capture.sharder.dropped_events,
        dropped_frames: None,
    };
    let (_, written) = run.finish(move |out, h| write_capture_stats(out, &snap, h));
    if let Some(e) = input_error {
        return Err(e.into());
    }
    written.context("writing output")?;
    Ok(())
}

/// Reads several files merged by packet time (ties: the file given first).
fn read_merged(
    paths: &[PathBuf],
    filter: Option<&str>,
    capture: &mut pipeline::CaptureSide,
    progress: &mut impl FnMut(&pipeline::CaptureSide, &std::path::Path),
) -> Result<(), CaptureError> {
    struct Head {
        src: FileSource,
        frame: Option<(i64, u32, Vec<u8>)>,
    }
    fn pull(h: &mut Head) -> Result<(), CaptureError> {
        h.frame = h
            .src
            .next_frame()?
            .map(|f| (f.ts, f.wire_len, f.data.to_vec()));
        Ok(())
    }
    let mut heads = Vec::new();
    for p in paths {
        let mut h = Head {
            src: FileSource::open(p, filter)?,
            frame: None,
        };
        pull(&mut h)?;
        heads.push(h);
    }
    let mut n: u64 = 0;
    loop {
        let next = heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.frame.as_ref().map(|f| (f.0, i)))
            .min();
        let Some((_, i)) = next else { return Ok(()) };
        let h = &mut heads[i];
        let (ts, wire_len, data) = h.frame.take().expect("present");
        capture.set_link(h.src.link_type());
        capture.frame(ts, &data, wire_len);
        pull(h)?;
        n += 1;
        if n & 0xffff == 0 {
            if capture.output_failed() {
                return Ok(());
            }
            progress(capture, h.src.path());
        }
    }
}

pub fn smtp_stats_json(c: &pipeline::CaptureSide) -> serde_json::Value {
    serde_json::to_value(c.decoder.smtp_tracker().stats()).unwrap_or_default()
}

pub fn smtp_evicted(c: &pipeline::CaptureSide) -> u64 {
    c.decoder.smtp_tracker().stats().flows_evicted
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
