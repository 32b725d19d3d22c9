//! `mxwatch live`: capture on interfaces, the same pipeline as `read`.
//!
//! ```text
//! capture thread per -i  --(bounded channel of FrameBatch, try_send)-->
//! decoder thread (this one): one Decoder per interface -> CaptureSide
//!     (Sharder --(bounded, try_send)--> shard threads -> output thread)
//! ```
//!
//! Design: each capture thread only copies frames out of libpcap into
//! batches (see `iface`); the thread that called `live` owns the pipeline's
//! single [`CaptureSide`] and decodes. It keeps one `Decoder` per interface
//! (swapped into the CaptureSide for that interface's batches), so decode
//! counters, TCP and SMTP flow state are per interface; ticks, shards and
//! output are shared. Two places can drop, both without waiting and both
//! counted per interface in capture_stats: the capture -> decoder channel
//! (`channel_drops.frame_batches`/`frames`) and the decoder -> classifier
//! channels (`channel_drops.batches`/`events`, charged to the interface
//! whose frames filled the batch). libpcap's own drops come from
//! `pcap_stats` (`libpcap.dropped`, `if_dropped`).
//!
//! Time is packet time; when the wire is quiet the decoder thread advances
//! the clock with wall-clock time minus [`CLOCK_LAG_MICROS`] (room for
//! packets still in libpcap's buffer), so bins close on time.
//!
//! Every `--stats-interval` and at exit: one capture_stats line per
//! interface. SIGINT/SIGTERM: the capture threads drain and stop, every bin
//! and alert is flushed, final lines written, exit 0. SIGHUP: the output file
//! is reopened in line order (lines queued before the signal go to the old
//! file, after it to the new one).

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use crossbeam_channel::{RecvTimeoutError, bounded};

use super::daemon::{self, STOP};
use super::iface::{FrameBatch, IfaceCounters, LiveOptions, LiveSource, POLL_MS};
use super::{DNS_SMTP_PORTS, default_filter};
use crate::cli::LiveArgs;
use crate::config::Settings;
use crate::decode::Decoder;
use crate::output::schema::LibpcapOut;
use crate::pipeline::{self, Running};
use crate::run::{
    CaptureSnapshot, open_output, output_for, pipeline_config, smtp_stats_json, write_capture_stats,
};

/// How far behind the wall clock a quiet wire's clock runs: packets wait
/// up to `POLL_MS` in libpcap's buffer, then in the decoder's queue.
pub const CLOCK_LAG_MICROS: i64 = 500_000;

/// One interface as the decoder thread sees it.
struct Iface {
    name: String,
    decoder: Decoder,
    counters: Arc<IfaceCounters>,
    /// Classifier-channel drops charged to this interface.
    dropped_batches: u64,
    dropped_events: u64,
    /// libpcap totals at the previous stats line, for the deltas.
    last_libpcap: (u64, u64, u64),
    thread: Option<JoinHandle<()>>,
}

pub fn live(args: &LiveArgs) -> Result<()> {
    let settings = Settings::build(&args.common)?;
    if !(args.stats_interval.is_finite() && args.stats_interval > 0.0) {
        bail!("--stats-interval must be a positive number of seconds");
    }
    if args.channel_batches == Some(0) {
        bail!("--channel-batches must be at least 1");
    }
    if daemon::is_root() && args.user.is_none() && !args.allow_root {
        bail!(
            "refusing to capture as root: pass --user NAME to drop privileges once the interfaces are open, or --allow-root"
        );
    }
    let opts = LiveOptions {
        snaplen: args.snaplen,
        buffer_size: args.buffer_size,
        promisc: !args.no_promisc,
        filter: settings
            .filter
            .clone()
            .unwrap_or_else(|| default_filter(DNS_SMTP_PORTS)),
    };
    // Everything that needs root first: the output file and the handles.
    let writer = open_output(&settings.output)?;
    let mut sources = Vec::new();
    for name in &args.interfaces {
        let src = LiveSource::open(name, &opts)?;
        tracing::info!(iface = name, link = ?src.link_type(), filter = opts.filter, "capturing");
        sources.push(src);
    }
    if let Some(user) = &args.user {
        let (uid, gid) = daemon::drop_privileges(user)?;
        tracing::info!(user, uid, gid, "dropped privileges");
    }
    daemon::install_signal_handlers()?;

    let mut cfg = pipeline_config(&settings, false);
    if let Some(n) = args.channel_batches {
        cfg.channel_batches = n;
    }
    let queue = cfg.channel_batches * sources.len();
    let output = output_for(writer, &settings);
    let limits = cfg.decode.clone();
    let mut run = pipeline::start(cfg, output);

    let (tx, rx) = bounded::<FrameBatch>(queue);
    let (pool_tx, pool_rx) = bounded::<FrameBatch>(queue + 2 * sources.len());
    let mut ifaces = Vec::new();
    for (i, src) in sources.into_iter().enumerate() {
        let counters = Arc::new(IfaceCounters::default());
        let (tx, pool, c) = (tx.clone(), pool_rx.clone(), counters.clone());
        let name = src.name().to_owned();
        let decoder = Decoder::new(src.link_type(), limits.clone());
        let thread = std::thread::Builder::new()
            .name(format!("mxwatch-cap-{name}"))
            .spawn(move || src.run(i, tx, pool, c, &STOP))
            .context("spawn capture thread")?;
        ifaces.push(Iface {
            name,
            decoder,
            counters,
            dropped_batches: 0,
            dropped_events: 0,
            last_libpcap: (0, 0, 0),
            thread: Some(thread),
        });
    }
    drop(tx);

    let interval = Duration::from_secs_f64(args.stats_interval);
    let mut next_stats = Instant::now() + interval;
    let mut stats_from = wall_micros();
    let mut last_iface = 0usize;
    let mut last_clock = Instant::now();
    let mut expired_bin = wall_micros().div_euclid(settings.bin_micros);
    loop {
        match rx.recv_timeout(Duration::from_millis(POLL_MS as u64)) {
            Ok(mut batch) => {
                last_iface = batch.iface;
                decode_batch(&mut run, &mut ifaces[batch.iface], &batch);
                batch.clear();
                let _ = pool_tx.try_send(batch);
            }
            Err(RecvTimeoutError::Timeout) => {}
            Err(RecvTimeoutError::Disconnected) => break,
        }
        if last_clock.elapsed() >= Duration::from_millis(POLL_MS as u64) {
            last_clock = Instant::now();
            let now = wall_micros() - CLOCK_LAG_MICROS;
            charge_drops(&mut run, &mut ifaces[last_iface], |run| {
                run.capture.clock(now)
            });
            let bin = now.div_euclid(settings.bin_micros);
            if bin > expired_bin {
                expired_bin = bin;
                for i in &mut ifaces {
                    i.decoder.expire(now);
                }
            }
        }
        if daemon::take_hup() {
            reopen(&run, &settings.output);
        }
        if Instant::now() >= next_stats {
            let now = wall_micros();
            queue_stats(&run, &mut ifaces, stats_from, now, false);
            stats_from = now;
            next_stats += interval;
            if next_stats < Instant::now() {
                next_stats = Instant::now() + interval;
            }
        }
        if run.capture.output_failed() {
            STOP.store(true, Ordering::SeqCst);
        }
    }
    for i in &mut ifaces {
        if let Some(t) = i.thread.take() {
            let _ = t.join();
        }
    }
    if daemon::take_hup() {
        reopen(&run, &settings.output);
    }
    let now = wall_micros();
    let snaps: Vec<CaptureSnapshot> = ifaces
        .iter_mut()
        .map(|i| snapshot(i, stats_from, now, true))
        .collect();
    let (_, written) = run.finish(move |out, h| {
        for s in &snaps {
            write_capture_stats(out, s, h)?;
        }
        Ok(())
    });
    for i in &ifaces {
        let err = i
            .counters
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(e) = err {
            return Err(e.into());
        }
    }
    written.context("writing output")?;
    Ok(())
}

/// Runs one interface's frames through the pipeline with its own decoder.
fn decode_batch(run: &mut Running, iface: &mut Iface, batch: &FrameBatch) {
    std::mem::swap(&mut run.capture.decoder, &mut iface.decoder);
    charge_drops(run, iface, |run| {
        for f in batch.frames() {
            run.capture.frame(f.ts, f.data, f.wire_len);
        }
    });
    std::mem::swap(&mut run.capture.decoder, &mut iface.decoder);
}

/// Runs `f` and charges the classifier-channel drops it caused to `iface`.
fn charge_drops(run: &mut Running, iface: &mut Iface, f: impl FnOnce(&mut Running)) {
    let (b, e) = (
        run.capture.sharder.dropped_batches,
        run.capture.sharder.dropped_events,
    );
    f(run);
    iface.dropped_batches += run.capture.sharder.dropped_batches - b;
    iface.dropped_events += run.capture.sharder.dropped_events - e;
}

fn reopen(run: &Running, path: &Option<std::path::PathBuf>) {
    if path.is_none() {
        return;
    }
    match open_output(path) {
        Ok(w) => {
            tracing::info!("SIGHUP: output reopened");
            run.capture.reopen_output(w);
        }
        Err(e) => tracing::error!("SIGHUP: {e:#}; still writing to the old file"),
    }
}

fn queue_stats(run: &Running, ifaces: &mut [Iface], from: i64, now: i64, is_final: bool) {
    let snaps: Vec<CaptureSnapshot> = ifaces
        .iter_mut()
        .map(|i| snapshot(i, from, now, is_final))
        .collect();
    run.capture.health(move |out, h| {
        for s in &snaps {
            write_capture_stats(out, s, h)?;
        }
        Ok(())
    });
}

fn snapshot(i: &mut Iface, from: i64, now: i64, is_final: bool) -> CaptureSnapshot {
    let c = &i.counters;
    let totals = (
        c.received.load(Ordering::Relaxed),
        c.dropped.load(Ordering::Relaxed),
        c.if_dropped.load(Ordering::Relaxed),
    );
    let last = std::mem::replace(&mut i.last_libpcap, totals);
    CaptureSnapshot {
        mode: "live",
        interface: Some(i.name.clone()),
        files: Vec::new(),
        is_final,
        first_ts: from,
        ts: now,
        decode: i.decoder.stats(),
        smtp: smtp_stats_json(&i.decoder),
        smtp_flows_evicted: i.decoder.smtp_tracker().stats().flows_evicted,
        libpcap: Some(LibpcapOut {
            received: totals.0,
            dropped: totals.1,
            if_dropped: totals.2,
            received_delta: totals.0 - last.0,
            dropped_delta: totals.1 - last.1,
            if_dropped_delta: totals.2 - last.2,
        }),
        dropped_batches: i.dropped_batches,
        dropped_events: i.dropped_events,
        dropped_frames: Some((
            c.dropped_batches.load(Ordering::Relaxed),
            c.dropped_frames.load(Ordering::Relaxed),
        )),
    }
}

fn wall_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}
