//! The commands: settings -> source -> engine (threaded by `pipeline`) ->
//! sink. Errors are returned to `main`, which prints one line; everything
//! computed before an input error is still written (bins flushed, alerts
//! ended, final capture_stats).

#[cfg(feature = "kafka")]
pub mod detect;
pub mod live;

use std::io::{self, IsTerminal, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use indicatif::{ProgressBar, ProgressStyle};

use crate::capture::CaptureError;
use crate::capture::source::{Files, FrameSource, Merged, Pulled};
use crate::cli::{ConfigArgs, ReadArgs};
use crate::config::{self, Settings};
use crate::engine::{Back, Front};
use crate::input::Kind;
use crate::output::metrics::{self, Metrics};
use crate::output::summary::Summary;
use crate::output::tee::Tee;
use crate::output::{CaptureSnapshot, Output};
use crate::pipeline::{self, CaptureSide};

pub use live::live;

pub fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<io::Error>()
            .is_some_and(|io| io.kind() == io::ErrorKind::BrokenPipe)
    })
}

/// The output file (appended, written in whole lines) or stdout.
pub fn open_output(path: &Option<PathBuf>) -> Result<Box<dyn Write + Send>> {
    Ok(crate::output::file::open(path)?)
}

/// What the driver tells the caller every so often.
pub struct Progress {
    /// Bytes of input (record headers + captured bytes) since the last call.
    pub bytes: u64,
    /// The call comes from a quiet moment (a live source's clock), not from
    /// the frame count.
    pub idle: bool,
}

/// The one frame loop: pulls frames from `src` into `front` until the
/// source ends or `every` returns true (stop). `every` runs each 64k frames
/// and at every quiet moment of a live source.
pub fn drive<B: Back>(
    src: &mut dyn FrameSource,
    front: &mut Front<B>,
    mut every: impl FnMut(&mut Front<B>, &dyn FrameSource, Progress) -> bool,
) -> Result<(), CaptureError> {
    let mut bytes: u64 = 0;
    let mut n: u64 = 0;
    loop {
        let idle = match src.pull()? {
            Pulled::Frame {
                source,
                link,
                frame,
            } => {
                front.frame(source, link, frame.ts, frame.data, frame.wire_len);
                bytes += 16 + frame.data.len() as u64;
                n += 1;
                false
            }
            Pulled::Event(ev) => {
                front.event(&ev);
                if let crate::input::InputEvent::Dns(d) = &ev {
                    bytes += d.message.len() as u64;
                }
                n += 1;
                false
            }
            Pulled::Idle { now } => {
                front.clock(now);
                true
            }
            Pulled::Skip => continue,
            Pulled::End => return Ok(()),
        };
        if (idle || n & 0xffff == 0)
            && every(
                front,
                src,
                Progress {
                    bytes: std::mem::take(&mut bytes),
                    idle,
                },
            )
        {
            return Ok(());
        }
    }
}

/// Capture files as a source: merged by packet time, or one after another.
pub fn file_source(
    paths: &[PathBuf],
    filter: Option<&str>,
    merge: bool,
) -> Result<Box<dyn FrameSource>, CaptureError> {
    // One file needs no merging (and no copy of each frame).
    Ok(if merge && paths.len() > 1 {
        Box::new(Merged::open(paths, filter)?)
    } else {
        Box::new(Files::new(paths, filter))
    })
}

/// Feeds capture files to a running pipeline, with progress on `bar`;
/// stops early, without error, when the output can no longer be written.
pub fn feed_files(
    capture: &mut CaptureSide,
    paths: &[PathBuf],
    filter: Option<&str>,
    merge: bool,
    bar: &ProgressBar,
) -> Result<(), CaptureError> {
    let mut src = file_source(paths, filter, merge)?;
    let failed = capture.failed_flag();
    drive(src.as_mut(), &mut capture.front, |_, src, p| {
        if let Some(path) = src.current() {
            bar.set_message(path.display().to_string());
        }
        bar.inc(p.bytes);
        failed.load(std::sync::atomic::Ordering::Relaxed)
    })
}

/// The inputs of `read` that are not capture files: dnstap files among
/// FILE... (recognised by content) and the log files of the flags.
fn non_frame_inputs(args: &ReadArgs) -> (Vec<PathBuf>, Vec<(Kind, PathBuf)>) {
    let (dnstap, pcaps): (Vec<PathBuf>, Vec<PathBuf>) = args
        .files
        .iter()
        .cloned()
        .partition(|p| crate::capture::is_frame_streams(p));
    let mut inputs: Vec<(Kind, PathBuf)> = dnstap.into_iter().map(|p| (Kind::Dnstap, p)).collect();
    inputs.extend(
        args.logs
            .bind_querylog
            .iter()
            .map(|p| (Kind::BindQuerylog, p.clone())),
    );
    inputs.extend(args.logs.maillog.iter().map(|p| (Kind::Maillog, p.clone())));
    (pcaps, inputs)
}

/// Feeds capture files and non-frame inputs, merged by time, to a running
/// pipeline; the inputs' counters go to `stats` (also after an error).
pub fn feed_inputs(
    capture: &mut CaptureSide,
    pcaps: &[PathBuf],
    inputs: &[(Kind, PathBuf)],
    logs: &crate::input::LogSettings,
    filter: Option<&str>,
    bar: &ProgressBar,
    stats: &mut Vec<crate::input::InputStats>,
) -> Result<(), CaptureError> {
    let mut src = Merged::open_with(pcaps, inputs, Some(logs), filter)?;
    let failed = capture.failed_flag();
    let r = drive(&mut src, &mut capture.front, |_, src, p| {
        if let Some(path) = src.current() {
            bar.set_message(path.display().to_string());
        }
        bar.inc(p.bytes);
        failed.load(std::sync::atomic::Ordering::Relaxed)
    });
    *stats = src.input_stats();
    r
}

/// `mxwatch read FILE...`
pub fn read(args: &ReadArgs) -> Result<()> {
    let settings = Settings::build(&args.common)?;
    let logs = config::log_settings(&args.logs)?;
    let outs: Vec<&Path> = settings.output.iter().map(|p| p.as_path()).collect();
    config::check_output_not_input(&outs, &args.files)?;
    let mut sink: Box<dyn crate::output::Sink> = sink_for(&settings, true)?;
    if args.summary || (!args.no_summary && io::stderr().is_terminal()) {
        sink = Box::new(Summary::new(sink, Box::new(io::stderr())));
    }
    let mut run = pipeline::start(settings.pipeline(true), sink);
    let show_progress = !args.no_progress && io::stderr().is_terminal();
    let (pcaps, inputs) = non_frame_inputs(args);
    let mut all = args.files.clone();
    all.extend(inputs.iter().map(|i| i.1.clone()));
    let bar = progress_bar(show_progress, total_bytes(&all));
    let mut input_stats = Vec::new();
    // Several files are merged by time (a DNS and an SMTP tap of the same
    // minutes read in turn would look like a burst); non-frame inputs always.
    let input_error = if inputs.is_empty() {
        feed_files(
            &mut run.capture,
            &args.files,
            settings.filter.as_deref(),
            !args.in_order,
            &bar,
        )
        .err()
    } else {
        feed_inputs(
            &mut run.capture,
            &pcaps,
            &inputs,
            &logs,
            settings.filter.as_deref(),
            &bar,
            &mut input_stats,
        )
        .err()
    };
    if args.in_order && run.capture.front.went_back() {
        tracing::warn!(
            "--in-order: a file starts before the previous one ended (packet time went back): captures of the same period should be merged (drop --in-order)"
        );
    }
    bar.finish_and_clear();
    let files = all;
    let (_, written) = run.finish(|c| {
        let mut s = file_snapshot(&mut c.front, &files);
        s.inputs = input_stats;
        warn_if_empty(&s);
        vec![s]
    });
    if let Some(e) = input_error {
        return Err(e.into());
    }
    written.context("writing output")?;
    Ok(())
}

/// One warning line when the input held packets but no DNS or SMTP at all
/// (a wrong capture, a filter that kept nothing useful). A file of a link
/// type the decoder does not read is refused at open (an error line).
fn warn_if_empty(s: &CaptureSnapshot) {
    let d = &s.decode;
    if d.packets > 0 && d.decoded == 0 && s.inputs.is_empty() {
        let why = if d.truncated.link + d.decode_errors.link == d.packets {
            " (every frame failed at the link layer)"
        } else {
            ""
        };
        eprintln!(
            "mxwatch: warning: {} packets read, none with DNS (port 53) or SMTP (port 25){why}",
            d.packets
        );
    }
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

/// The final capture_stats numbers of a file run (one decoder: source 0).
pub fn file_snapshot<B: Back>(front: &mut Front<B>, files: &[PathBuf]) -> CaptureSnapshot {
    let span = (front.first_ts.unwrap_or(0), front.last_ts.unwrap_or(0));
    let mut s = source_snapshot(front, 0, "file", span, true);
    s.files = files.iter().map(|p| p.display().to_string()).collect();
    s
}

/// The capture_stats numbers of one source of the front (its decoder and
/// the drops charged to it); the caller adds what only it knows (files,
/// interface, libpcap counters, inputs).
pub fn source_snapshot<B: Back>(
    front: &mut Front<B>,
    source: usize,
    mode: &'static str,
    (first_ts, ts): (i64, i64),
    is_final: bool,
) -> CaptureSnapshot {
    let (dropped_batches, dropped_events) = front.drops_of(source);
    let d = front.decoder(source);
    CaptureSnapshot {
        mode,
        interface: None,
        files: Vec::new(),
        is_final,
        first_ts,
        ts,
        decode: d.stats(),
        smtp: d.smtp_tracker().stats(),
        libpcap: None,
        dropped_batches,
        dropped_events,
        dropped_frames: None,
        inputs: Vec::new(),
        threads: Vec::new(),
    }
}

/// The output every run writes to, with the settings' sensor name, bins and `--stats`/`--top`.
pub fn output_for(writer: Box<dyn Write + Send>, s: &Settings) -> Output {
    Output::new(writer, s.sensor_name.clone(), s.stats, s.top, s.bin_micros)
}

/// `mxwatch completions SHELL`: generated from the clap definitions.
pub fn completions(shell: clap_complete::Shell) -> Result<()> {
    use clap::CommandFactory;
    let mut cmd = crate::cli::Cli::command();
    // Into a buffer first: the generator panics on a closed pipe.
    let mut buf = Vec::new();
    clap_complete::generate(shell, &mut cmd, "mxwatch", &mut buf);
    let mut out = io::stdout().lock();
    out.write_all(&buf)?;
    out.flush()?;
    Ok(())
}

/// `mxwatch man`: the man page, generated from the clap definitions (each
/// subcommand's flags follow as its own section).
pub fn man() -> Result<()> {
    use clap::CommandFactory;
    let cmd = crate::cli::Cli::command();
    let mut out = io::stdout().lock();
    clap_mangen::Man::new(cmd.clone()).render(&mut out)?;
    for sub in cmd.get_subcommands() {
        writeln!(out, ".SH \"MXWATCH {}\"", sub.get_name().to_uppercase())?;
        if let Some(about) = sub.get_about() {
            writeln!(out, "{about}")?;
        }
        clap_mangen::Man::new(sub.clone()).render_options_section(&mut out)?;
        if let Some(after) = sub.get_after_help() {
            writeln!(out, ".PP\n.nf\n{after}\n.fi")?;
        }
    }
    out.flush()?;
    Ok(())
}

/// The JSON output of a run: stdout or one file as always, or several outputs
/// ([`Tee`]: `lossless` for `read`), with /metrics when `--metrics-listen`.
fn output_sink(s: &Settings, lossless: bool) -> Result<Output> {
    let mut out = if s.outputs.is_empty() {
        output_for(open_output(&s.output)?, s)
    } else {
        let tee = Tee::open(&s.outputs, &s.sensor_name, lossless).map_err(anyhow::Error::msg)?;
        Output::with_lines(
            Box::new(tee),
            s.sensor_name.clone(),
            s.stats,
            s.top,
            s.bin_micros,
        )
    };
    if let Some(addr) = s.metrics_listen {
        let m = Metrics::new();
        metrics::serve(addr, m.clone()).map_err(anyhow::Error::msg)?;
        out.set_metrics(m);
    }
    Ok(out)
}

/// The sink of `read` and `live`: the JSON output, behind the actions when
/// the config has `[[action]]` sections (their commands run on a thread of
/// their own, after the output).
pub fn sink_for(s: &Settings, lossless: bool) -> Result<Box<dyn crate::output::Sink>> {
    let mut sink: Box<dyn crate::output::Sink> = Box::new(output_sink(s, lossless)?);
    if !s.file.actions.is_empty() {
        sink = Box::new(crate::action::ActionSink::new(
            sink,
            s.sensor_name.clone(),
            s.file.actions.clone(),
            s.file.action_limits.clone(),
            s.dry_run,
        ));
    }
    publish(sink, s, lossless)
}

/// `--publish`: the bins also go to Kafka, before the run's own sinks.
#[cfg(feature = "kafka")]
fn publish(
    sink: Box<dyn crate::output::Sink>,
    s: &Settings,
    lossless: bool,
) -> Result<Box<dyn crate::output::Sink>> {
    Ok(match &s.publish {
        Some(spec) => Box::new(
            crate::cluster::publish::Publisher::new(sink, &s.sensor_name, spec, lossless)
                .map_err(anyhow::Error::msg)?,
        ),
        None => sink,
    })
}

#[cfg(not(feature = "kafka"))]
fn publish(
    sink: Box<dyn crate::output::Sink>,
    _: &Settings,
    _: bool,
) -> Result<Box<dyn crate::output::Sink>> {
    Ok(sink)
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
