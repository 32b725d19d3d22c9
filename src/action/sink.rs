//! [`ActionSink`]: an `output::Sink` that writes through the JSON sink it
//! wraps, then hands the alerts to the [`Planner`] and its jobs to the
//! action thread. Runs in the output thread, never in the capture or
//! classifier threads; a job it cannot queue at once is refused, not waited
//! for. Outcomes come back on a channel and are written as `mxwatch.action`
//! lines with the next bin (and all of them at the end of the run).

use std::io;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError, bounded, unbounded};

use super::config::{ActionConfig, ActionsConfig};
use super::plan::{Decision, Job, Planner};
use super::runner;
use crate::classify::ClosedBin;
use crate::detect::Alert;
use crate::output::action::ActionRecord;
use crate::output::alert::AlertLine;
use crate::output::schema::Observer;
use crate::output::{CaptureSnapshot, ClassifierHealth, Sink};

pub struct ActionSink {
    inner: Box<dyn Sink>,
    planner: Planner,
    observer_name: String,
    jobs: Option<Sender<Job>>,
    done: Receiver<ActionRecord>,
    thread: Option<JoinHandle<()>>,
    /// The latest bin end seen (the end-of-run undos are stamped with it).
    last_end: i64,
}

/// How long an undo may wait for room in the queue before it is refused.
const UNDO_WAIT: Duration = Duration::from_secs(5);

impl ActionSink {
    pub fn new(
        inner: Box<dyn Sink>,
        observer_name: String,
        actions: Vec<ActionConfig>,
        limits: ActionsConfig,
        dry_run: bool,
    ) -> Self {
        let (jobs, rx) = bounded::<Job>(limits.queue);
        let (done_tx, done) = unbounded();
        let keep = limits.output_bytes;
        let thread = std::thread::Builder::new()
            .name("mxwatch-action".into())
            .spawn(move || action_thread(rx, done_tx, keep))
            .expect("spawning the action thread");
        ActionSink {
            inner,
            planner: Planner::new(actions, limits, dry_run),
            observer_name,
            jobs: Some(jobs),
            done,
            thread: Some(thread),
            last_end: 0,
        }
    }

    fn decide(&mut self, decisions: Vec<Decision>) -> io::Result<()> {
        for d in decisions {
            match d {
                Decision::Line(rec) => self.inner.action_line(&rec)?,
                Decision::Run(job) => {
                    let Some(tx) = &self.jobs else { continue };
                    let undo = job.record.trigger == "undo";
                    let sent = if undo {
                        tx.send_timeout(job, UNDO_WAIT).map_err(|e| e.into_inner())
                    } else {
                        tx.try_send(job).map_err(|e| match e {
                            TrySendError::Full(j) | TrySendError::Disconnected(j) => j,
                        })
                    };
                    if let Err(job) = sent {
                        let mut rec = job.record;
                        rec.outcome = "refused";
                        rec.refusal = Some("queue_full");
                        self.inner.action_line(&rec)?;
                    }
                }
            }
        }
        self.drain()
    }

    /// Writes the outcomes that came back.
    fn drain(&mut self) -> io::Result<()> {
        while let Ok(rec) = self.done.try_recv() {
            self.inner.action_line(&rec)?;
        }
        Ok(())
    }
}

impl Sink for ActionSink {
    fn bin_lines(&mut self, bin: &ClosedBin, alerts: &[Alert]) -> io::Result<()> {
        self.inner.bin_lines(bin, alerts)?;
        self.last_end = self.last_end.max(bin.end);
        let observer = Observer::new(&self.observer_name);
        let lines: Vec<(&Alert, String)> = alerts
            .iter()
            .map(|a| {
                let mut line =
                    serde_json::to_string(&AlertLine::of(a, &observer)).unwrap_or_default();
                line.push('\n');
                (a, line)
            })
            .collect();
        let decisions = self.planner.on_bin(bin, &lines);
        self.decide(decisions)
    }

    fn capture_stats(&mut self, snap: &CaptureSnapshot, h: &ClassifierHealth) -> io::Result<()> {
        self.drain()?;
        self.inner.capture_stats(snap, h)
    }

    fn reopen(&mut self, w: Box<dyn io::Write + Send>) -> io::Result<()> {
        self.inner.reopen(w)
    }

    fn action_line(&mut self, r: &ActionRecord) -> io::Result<()> {
        self.inner.action_line(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.drain()?;
        self.inner.flush()
    }

    /// Undoes what is still in force, waits for every job (each bounded by
    /// its timeout) and writes their lines.
    fn close(&mut self) -> io::Result<()> {
        let undos = self.planner.finish(self.last_end);
        let r = self.decide(undos);
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
        self.drain()?;
        r?;
        self.inner.close()
    }
}

impl Drop for ActionSink {
    fn drop(&mut self) {
        self.jobs = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The action thread: one job at a time, each bounded by its timeout.
fn action_thread(jobs: Receiver<Job>, done: Sender<ActionRecord>, keep: usize) {
    for job in jobs {
        let ran_at = crate::capture::source::wall_micros();
        let t0 = Instant::now();
        let o = runner::run(&job.argv, &job.env, job.stdin.as_bytes(), job.timeout, keep);
        let mut rec = job.record;
        rec.outcome = o.outcome;
        rec.exit_code = o.exit_code;
        rec.signal = o.signal;
        rec.duration_secs = Some(t0.elapsed().as_secs_f64());
        rec.ran_at = Some(ran_at);
        rec.stdout = (!o.stdout.is_empty()).then_some(o.stdout);
        rec.stderr = (!o.stderr.is_empty()).then_some(o.stderr);
        rec.error = o.error;
        if o.outcome != "ok" {
            tracing::warn!(
                action = rec.action,
                trigger = rec.trigger,
                outcome = o.outcome,
                "action did not succeed"
            );
        }
        if done.send(rec).is_err() {
            return;
        }
    }
}
