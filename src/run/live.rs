//! `mxwatch live`: capture on interfaces, the same engine and frame loop as `read`.
//!
//! ```text
//! capture thread per -i  --(bounded channel of FrameBatch, try_send)-->
//! decoder thread (this one): one Decoder per interface -> CaptureSide
//!     (Sharder --(bounded, try_send)--> shard threads -> output thread)
//! ```
//!
//! Design: each capture thread only copies frames out of libpcap into
//! batches (see `capture::iface`); `capture::source::Interfaces` hands them
//! to the one frame loop (`run::drive`), which feeds the pipeline's
//! `engine::Front`. The front keeps one decoder per source (interface), so
//! decode counters, TCP and SMTP flow state are per interface; ticks, shards
//! and output are shared. Two places can drop, both without waiting and both
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
//! and alert is flushed, final lines written, exit 0; a writer that does not
//! take them within `pipeline.stop_timeout_secs` (a stalled pipe) is given
//! up on: one line on stderr, exit 1, in time. SIGHUP: the output file
//! is reopened in line order (lines queued before the signal go to the old
//! file, after it to the new one).

use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{drive, open_output, sink_for};
use crate::capture::daemon::{self, STOP};
use crate::capture::dnstap::{DnstapLive, socket_path};
use crate::capture::iface::{LiveOptions, LiveSource};
use crate::capture::source::{Interfaces, wall_micros};
use crate::capture::{DNS_SMTP_PORTS, default_filter};
use crate::cli::LiveArgs;
use crate::config::{self, Settings};
use crate::engine::{Back, Front};
use crate::output::CaptureSnapshot;
use crate::output::schema::LibpcapOut;
use crate::pipeline::{self, Running};

pub fn live(args: &LiveArgs) -> Result<()> {
    let settings = Settings::build(&args.common)?;
    config::check_live(args)?;
    if daemon::is_root() && args.user.is_none() && !args.allow_root {
        anyhow::bail!(
            "refusing to capture as root: pass --user NAME to drop privileges once the interfaces are open, or --allow-root"
        );
    }
    if let Some(spec) = &args.dnstap {
        return live_dnstap(args, &settings, spec);
    }
    let opts = LiveOptions {
        snaplen: args.snaplen,
        buffer_size: args.buffer_size,
        promisc: !args.no_promisc,
        filter: settings
            .filter
            .clone()
            .unwrap_or_else(|| default_filter(DNS_SMTP_PORTS)),
        default_filter: settings.filter.is_none(),
    };
    // Everything that needs root first: the outputs, /metrics and the handles.
    let sink = sink_for(&settings, false)?;
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
    eprintln!(
        "mxwatch: capturing on {} with filter {:?}, writing to {}{}",
        args.interfaces.join(", "),
        opts.filter,
        settings
            .output
            .as_ref()
            .map_or("stdout".to_owned(), |p| p.display().to_string()),
        args.user
            .as_ref()
            .map_or(String::new(), |u| format!(", running as {u}"))
    );

    let mut cfg = settings.pipeline(false);
    if let Some(n) = args.channel_batches {
        cfg.channel_batches = n;
    }
    let queue = cfg.channel_batches * sources.len();
    let mut run = pipeline::start(cfg, sink);
    let mut ifaces = Interfaces::start(sources, queue, &STOP)?;
    let mut last_libpcap = vec![(0, 0, 0); ifaces.names.len()];

    let interval = Duration::from_secs_f64(args.stats_interval);
    let mut next_stats = Instant::now() + interval;
    let mut stats_from = wall_micros();
    let failed = run.capture.failed_flag();
    let names = ifaces.names.clone();
    let counters = ifaces.counters.clone();
    let out_tx = run.capture.health_sender();
    let drive_result = drive(&mut ifaces, &mut run.capture.front, |front, _, _| {
        if daemon::take_hup() {
            reopen(&out_tx, &settings);
        }
        if Instant::now() >= next_stats {
            let now = wall_micros();
            let snaps = snapshots(
                front,
                &names,
                &counters,
                &mut last_libpcap,
                stats_from,
                now,
                false,
            );
            out_tx.health(snaps);
            stats_from = now;
            next_stats += interval;
            if next_stats < Instant::now() {
                next_stats = Instant::now() + interval;
            }
        }
        if failed.load(Ordering::Relaxed) {
            STOP.store(true, Ordering::SeqCst);
        }
        false
    });
    // The output thread ends when every sender is gone.
    drop(out_tx);
    let join_result = ifaces.join();
    if daemon::take_hup() {
        reopen(&run.capture.health_sender(), &settings);
    }
    let now = wall_micros();
    let deadline = Duration::from_secs_f64(settings.file.pipeline.stop_timeout_secs);
    let written = finish(run, deadline, &ifaces, &mut last_libpcap, stats_from, now);
    drive_result?;
    join_result?;
    written.context("writing output")?;
    Ok(())
}

/// `mxwatch live --dnstap unix:PATH`: the same engine on dnstap events from
/// the DNS servers that connect (see `capture::dnstap`). Every
/// `--stats-interval` and at exit one capture_stats line with `inputs` (one
/// entry per connection: frames, events, malformed, dropped).
fn live_dnstap(args: &LiveArgs, settings: &Settings, spec: &str) -> Result<()> {
    let path = socket_path(spec)?;
    let sink = sink_for(settings, false)?;
    let mut cfg = settings.pipeline(false);
    if let Some(n) = args.channel_batches {
        cfg.channel_batches = n;
    }
    let queue = cfg.channel_batches * cfg.batch_events.max(1);
    let mut src = DnstapLive::start(&path, queue, &STOP)?;
    tracing::info!(socket = %path.display(), "listening for dnstap");
    if let Some(user) = &args.user {
        let (uid, gid) = daemon::drop_privileges(user)?;
        tracing::info!(user, uid, gid, "dropped privileges");
    }
    daemon::install_signal_handlers()?;
    let mut run = pipeline::start(cfg, sink);
    let interval = Duration::from_secs_f64(args.stats_interval);
    let mut next_stats = Instant::now() + interval;
    let mut stats_from = wall_micros();
    let failed = run.capture.failed_flag();
    let out_tx = run.capture.health_sender();
    let name = format!("dnstap:{}", path.display());
    let drive_result = drive(&mut src, &mut run.capture.front, |front, src, _| {
        if daemon::take_hup() {
            reopen(&out_tx, settings);
        }
        if Instant::now() >= next_stats {
            let now = wall_micros();
            out_tx.health(vec![dnstap_snapshot(
                front,
                &name,
                src.input_stats(),
                stats_from,
                now,
                false,
            )]);
            stats_from = now;
            next_stats = Instant::now() + interval;
        }
        if failed.load(Ordering::Relaxed) {
            STOP.store(true, Ordering::SeqCst);
        }
        false
    });
    drop(out_tx);
    src.shutdown();
    let inputs = crate::capture::source::FrameSource::input_stats(&src);
    let now = wall_micros();
    let (_, written) = run.finish(|c| {
        vec![dnstap_snapshot(
            &mut c.front,
            &name,
            inputs,
            stats_from,
            now,
            true,
        )]
    });
    drive_result?;
    written.context("writing output")?;
    Ok(())
}

fn dnstap_snapshot<B: Back>(
    front: &mut Front<B>,
    name: &str,
    inputs: Vec<crate::input::InputStats>,
    from: i64,
    now: i64,
    is_final: bool,
) -> CaptureSnapshot {
    let mut s = super::source_snapshot(front, 0, "live", (from, now), is_final);
    s.interface = Some(name.to_owned());
    s.inputs = inputs;
    s
}

fn finish(
    run: Running,
    deadline: Duration,
    ifaces: &Interfaces,
    last: &mut [(u64, u64, u64)],
    from: i64,
    now: i64,
) -> std::io::Result<()> {
    run.finish_within(deadline, |c| {
        snapshots(
            &mut c.front,
            &ifaces.names,
            &ifaces.counters,
            last,
            from,
            now,
            true,
        )
    })
}

fn reopen(run: &pipeline::HealthSender, settings: &Settings) {
    let path = &settings.output;
    if path.is_none() {
        // Several outputs: the output thread reopens each file by its path.
        if !settings.outputs.is_empty() {
            run.reopen_output(Box::new(std::io::sink()));
        }
        return;
    }
    match open_output(path) {
        Ok(w) => {
            tracing::info!("SIGHUP: output reopened");
            run.reopen_output(w);
        }
        Err(e) => tracing::error!("SIGHUP: {e:#}; still writing to the old file"),
    }
}

/// One capture_stats snapshot per interface (source number = index).
#[allow(clippy::too_many_arguments)]
fn snapshots<B: Back>(
    front: &mut Front<B>,
    names: &[String],
    counters: &[std::sync::Arc<crate::capture::iface::IfaceCounters>],
    last: &mut [(u64, u64, u64)],
    from: i64,
    now: i64,
    is_final: bool,
) -> Vec<CaptureSnapshot> {
    (0..names.len())
        .map(|i| {
            let c = &counters[i];
            let totals = (
                c.received.load(Ordering::Relaxed),
                c.dropped.load(Ordering::Relaxed),
                c.if_dropped.load(Ordering::Relaxed),
            );
            let prev = std::mem::replace(&mut last[i], totals);
            let mut s = super::source_snapshot(front, i, "live", (from, now), is_final);
            s.interface = Some(names[i].clone());
            s.libpcap = Some(LibpcapOut {
                received: totals.0,
                dropped: totals.1,
                if_dropped: totals.2,
                received_delta: totals.0 - prev.0,
                dropped_delta: totals.1 - prev.1,
                if_dropped_delta: totals.2 - prev.2,
            });
            s.dropped_frames = Some((
                c.dropped_batches.load(Ordering::Relaxed),
                c.dropped_frames.load(Ordering::Relaxed),
            ));
            s
        })
        .collect()
}
