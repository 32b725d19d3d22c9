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
//! `--threads N` (N > 1): each interface is opened N times in one AF_PACKET
//! fanout group (`LiveSource::open_fanout`: the kernel hands each packet to
//! one handle by a symmetric flow hash). Lane k = the k-th handle of every
//! interface, its capture threads, and a decoder thread of its own running
//! the same frame loop (`drive`) into a front of its own
//! (`pipeline::Running::take_lanes`); lane 0's loop is this thread, as with
//! one thread. All fronts feed the same classifier shards, which close a bin
//! once every front's clock has passed it (`engine::LaneGate`): the bins
//! hold what one thread would have put in them. The capture_stats line of an
//! interface sums its lanes and lists each in `threads`.
//!
//! Every `--stats-interval` and at exit: one capture_stats line per
//! interface. SIGINT/SIGTERM: the capture threads drain and stop, every bin
//! and alert is flushed, final lines written, exit 0; a writer that does not
//! take them within `pipeline.stop_timeout_secs` (a stalled pipe) is given
//! up on: one line on stderr, exit 1, in time. SIGHUP: the output file
//! is reopened in line order (lines queued before the signal go to the old
//! file, after it to the new one).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};

use super::{drive, open_output, sink_for};
use crate::capture::CaptureError;
use crate::capture::daemon::{self, STOP};
use crate::capture::dnstap::{DnstapLive, socket_path};
use crate::capture::iface::{IfaceCounters, LiveOptions, LiveSource};
use crate::capture::source::{Interfaces, wall_micros};
use crate::capture::{DNS_SMTP_PORTS, default_filter};
use crate::cli::LiveArgs;
use crate::config::{self, Settings};
use crate::engine::{Back, Front};
use crate::output::CaptureSnapshot;
use crate::output::schema::{LibpcapOut, ThreadDropsOut, ThreadOut};
use crate::pipeline::{self, Sharder};

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
    let threads = config::capture_threads(args, &settings);
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
    // lanes[k][i]: the k-th handle of interface i.
    let mut lanes: Vec<Vec<LiveSource>> = (0..threads).map(|_| Vec::new()).collect();
    for name in &args.interfaces {
        let handles = if threads == 1 {
            vec![LiveSource::open(name, &opts)?]
        } else {
            LiveSource::open_fanout(name, &opts, threads)?
        };
        tracing::info!(iface = name, link = ?handles[0].link_type(), filter = opts.filter, threads, "capturing");
        for (k, h) in handles.into_iter().enumerate() {
            lanes[k].push(h);
        }
    }
    if let Some(user) = &args.user {
        let (uid, gid) = daemon::drop_privileges(user)?;
        tracing::info!(user, uid, gid, "dropped privileges");
    }
    daemon::install_signal_handlers()?;
    eprintln!(
        "mxwatch: capturing on {}{} with filter {:?}, writing to {}{}",
        args.interfaces.join(", "),
        if threads > 1 {
            format!(" ({threads} capture threads each, AF_PACKET fanout)")
        } else {
            String::new()
        },
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
    cfg.lanes = threads;
    let queue = cfg.channel_batches * args.interfaces.len();
    let mut run = pipeline::start(cfg, sink);
    let fronts = run.take_lanes();
    let mut sources = Vec::with_capacity(threads);
    for (k, l) in lanes.into_iter().enumerate() {
        sources.push(Interfaces::start(l, k, queue, &STOP)?);
    }
    let mut stats = LiveStats {
        names: args.interfaces.clone(),
        counters: sources.iter().map(|s| s.counters.clone()).collect(),
        last: vec![vec![(0, 0, 0); args.interfaces.len()]; threads],
    };
    let mut ifaces = sources.remove(0);
    let published = Arc::new(Mutex::new(vec![Vec::new(); threads - 1]));
    let mut others = Vec::with_capacity(threads - 1);
    for (j, (src, front)) in sources.into_iter().zip(fronts).enumerate() {
        let published = published.clone();
        let n = args.interfaces.len();
        let thread = std::thread::Builder::new()
            .name(format!("mxwatch-lane-{}", j + 1))
            .spawn(move || lane_loop(src, front, n, &published, j))
            .context("starting a decoder thread")?;
        others.push(thread);
    }

    let interval = Duration::from_secs_f64(args.stats_interval);
    let mut next_stats = Instant::now() + interval;
    let mut stats_from = wall_micros();
    let failed = run.capture.failed_flag();
    let out_tx = run.capture.health_sender();
    let n = args.interfaces.len();
    let drive_result = drive(&mut ifaces, &mut run.capture.front, |front, _, _| {
        if daemon::take_hup() {
            reopen(&out_tx, &settings);
        }
        if Instant::now() >= next_stats {
            let now = wall_micros();
            let mut views = vec![views_of(front, n, (stats_from, now), false)];
            views.extend(lock(&published).iter().cloned());
            out_tx.health(stats.snapshots(&views));
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
    let mut join_result = ifaces.join();
    // The other lanes end with their capture threads; what they hold is sent
    // before lane 0's Finish, and their decoders' counters are kept for the
    // final lines.
    let mut other_fronts = Vec::with_capacity(others.len());
    for t in others {
        match t.join() {
            Ok((front, r)) => {
                other_fronts.push(front);
                if join_result.is_ok() {
                    join_result = r;
                }
            }
            Err(_) => anyhow::bail!("a decoder thread panicked"),
        }
    }
    if daemon::take_hup() {
        reopen(&run.capture.health_sender(), &settings);
    }
    let now = wall_micros();
    let deadline = Duration::from_secs_f64(settings.file.pipeline.stop_timeout_secs);
    let mut views: Vec<Vec<CaptureSnapshot>> = vec![Vec::new()];
    views.extend(
        other_fronts
            .iter_mut()
            .map(|f| views_of(f, n, (stats_from, now), true)),
    );
    let written = run.finish_within(deadline, |c| {
        views[0] = views_of(&mut c.front, n, (stats_from, now), true);
        stats.snapshots(&views)
    });
    drive_result?;
    join_result?;
    written.context("writing output")?;
    Ok(())
}

/// Lane `j + 1` of `live --threads N`: the same frame loop as lane 0's on
/// its handles, into its own front; its decoders' numbers are published for
/// lane 0's capture_stats lines. Returns the front (for the final lines)
/// once its capture threads are done, after handing over what it holds.
fn lane_loop(
    mut src: Interfaces,
    mut front: Front<Sharder>,
    ifaces: usize,
    published: &Mutex<Vec<Vec<CaptureSnapshot>>>,
    j: usize,
) -> (Front<Sharder>, Result<(), CaptureError>) {
    let r = drive(&mut src, &mut front, |front, _, _| {
        let v = views_of(front, ifaces, (0, 0), false);
        lock(published)[j] = v;
        false
    });
    let joined = src.join();
    front.back.flush();
    (front, r.and(joined))
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

/// One front's view of every interface (its decoders, the drops charged to them).
fn views_of<B: Back>(
    front: &mut Front<B>,
    ifaces: usize,
    span: (i64, i64),
    is_final: bool,
) -> Vec<CaptureSnapshot> {
    (0..ifaces)
        .map(|i| super::source_snapshot(front, i, "live", span, is_final))
        .collect()
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

/// The libpcap and frame-queue counters of every handle ([lane][interface]),
/// and their values on the previous line (for the deltas).
struct LiveStats {
    names: Vec<String>,
    counters: Vec<Vec<Arc<IfaceCounters>>>,
    last: Vec<Vec<(u64, u64, u64)>>,
}

impl LiveStats {
    /// One capture_stats snapshot per interface from every lane's view of it
    /// (`views[lane][interface]`, lane 0's carrying the times): the sums, and
    /// with several lanes each one's share in `threads`.
    fn snapshots(&mut self, views: &[Vec<CaptureSnapshot>]) -> Vec<CaptureSnapshot> {
        let lanes = self.counters.len();
        (0..self.names.len())
            .map(|i| {
                let mut s = views[0][i].clone();
                for v in views[1..].iter().filter_map(|v| v.get(i)) {
                    s.absorb(v);
                }
                s.interface = Some(self.names[i].clone());
                let mut sum = LibpcapOut::default();
                let mut frames = (0, 0);
                for k in 0..lanes {
                    let c = &self.counters[k][i];
                    let totals = (
                        c.received.load(Ordering::Relaxed),
                        c.dropped.load(Ordering::Relaxed),
                        c.if_dropped.load(Ordering::Relaxed),
                    );
                    let prev = std::mem::replace(&mut self.last[k][i], totals);
                    let lp = LibpcapOut {
                        received: totals.0,
                        dropped: totals.1,
                        if_dropped: totals.2,
                        received_delta: totals.0 - prev.0,
                        dropped_delta: totals.1 - prev.1,
                        if_dropped_delta: totals.2 - prev.2,
                    };
                    let fr = (
                        c.dropped_batches.load(Ordering::Relaxed),
                        c.dropped_frames.load(Ordering::Relaxed),
                    );
                    sum.received += lp.received;
                    sum.dropped += lp.dropped;
                    sum.if_dropped += lp.if_dropped;
                    sum.received_delta += lp.received_delta;
                    sum.dropped_delta += lp.dropped_delta;
                    sum.if_dropped_delta += lp.if_dropped_delta;
                    frames.0 += fr.0;
                    frames.1 += fr.1;
                    if lanes > 1 {
                        let v = views.get(k).and_then(|v| v.get(i));
                        s.threads.push(ThreadOut {
                            thread: k,
                            packets_read: v.map_or(0, |v| v.decode.packets),
                            packets_decoded: v.map_or(0, |v| v.decode.decoded),
                            libpcap: lp,
                            channel_drops: ThreadDropsOut {
                                frame_batches: fr.0,
                                frames: fr.1,
                                batches: v.map_or(0, |v| v.dropped_batches),
                                events: v.map_or(0, |v| v.dropped_events),
                            },
                        });
                    }
                }
                s.libpcap = Some(sum);
                s.dropped_frames = Some(frames);
                s
            })
            .collect()
    }
}
