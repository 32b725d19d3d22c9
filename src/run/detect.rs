//! `mxwatch detect --from kafka://BROKERS/TOPIC --group NAME`: one member of
//! a detector group (issue #16; docs/scale.md). Polls the group's partitions,
//! writes each merged bin's alerts (and client_stats with `--stats`) to the
//! outputs, then commits the offsets of what was written. SIGINT/SIGTERM or
//! `--exit-idle`: open bins close, incidents end, offsets are committed.

use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};

use super::sink_for;
use crate::cli::DetectArgs;
use crate::cluster::assemble::Out;
use crate::cluster::consume::GroupMember;
use crate::config;
use crate::detect::flood::WarmupCap;
use crate::output::Sink;

/// How long one poll waits for messages (and how often the lateness is checked).
const POLL: Duration = Duration::from_millis(200);

pub fn detect(args: &DetectArgs) -> Result<()> {
    let ds = config::detect_settings(args)?;
    let mut sink = sink_for(&ds.settings, true)?;
    let mut member = GroupMember::new(
        &ds.brokers,
        &ds.topic,
        &ds.group,
        &ds.properties,
        ds.assemble.clone(),
    )
    .map_err(anyhow::Error::msg)?;
    crate::capture::daemon::install_signal_handlers()?;
    let mut cap = WarmupCap::new(ds.settings.engine.detect.max_warmup_alerts_per_bin);
    let mut last_end = None;
    eprintln!(
        "mxwatch detect: reading {} from {} as a member of group {}",
        ds.topic, ds.brokers, ds.group
    );
    let mut result = Ok(());
    while !crate::capture::daemon::STOP.load(Ordering::Relaxed) {
        let outs = member.poll(POLL);
        let wrote = !outs.is_empty();
        if let Err(e) = write(sink.as_mut(), &mut cap, &mut last_end, outs) {
            result = Err(e);
            break;
        }
        if wrote {
            if let Err(e) = sink.flush() {
                result = Err(e);
                break;
            }
            member.commit(false);
        }
        if ds.exit_idle.is_some_and(|idle| member.idle_for() >= idle) {
            break;
        }
    }
    if result.is_ok() {
        let outs = member.finish();
        result = write(sink.as_mut(), &mut cap, &mut last_end, outs);
        if result.is_ok()
            && let Some(end) = last_end
            && let Some(a) = cap.finish(end)
        {
            let bin = crate::classify::ClosedBin {
                start: end,
                end,
                ..Default::default()
            };
            result = sink.bin_lines(&bin, &[a]);
        }
        if result.is_ok() {
            result = sink.flush();
            member.commit(true);
        }
    }
    let closed = sink.close();
    let s = member.totals();
    eprintln!(
        "mxwatch detect: {} messages ({} replayed, {} bad, {} late), {} bins closed ({} before every sensor's mark), {} clients evicted, partitions assigned {} revoked {}",
        s.assemble.messages,
        s.assemble.replayed_messages,
        s.bad_messages + s.assemble.bad_messages,
        s.assemble.late_messages,
        s.assemble.bins_closed,
        s.assemble.bins_closed_early,
        s.assemble.clients_evicted,
        s.partitions_assigned,
        s.partitions_revoked,
    );
    result.context("writing output")?;
    closed.context("writing output")?;
    Ok(())
}

fn write(
    sink: &mut dyn Sink,
    cap: &mut WarmupCap,
    last_end: &mut Option<i64>,
    outs: Vec<Out>,
) -> std::io::Result<()> {
    for mut o in outs {
        o.alerts.sort_by(crate::detect::Alert::order);
        cap.apply(o.bin.start, o.bin.end, &mut o.alerts);
        *last_end = Some(last_end.map_or(o.bin.end, |e: i64| e.max(o.bin.end)));
        sink.bin_lines(&o.bin, &o.alerts)?;
    }
    Ok(())
}
