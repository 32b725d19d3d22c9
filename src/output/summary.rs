//! A short text summary for a person at the end of a run (stderr): what was
//! read, which clients were busiest, which alerts started and why. Wraps the
//! real sink and forwards everything to it.

use std::io::{self, Write};
use std::net::IpAddr;

use super::Sink;
use super::health::{CaptureSnapshot, ClassifierHealth};
use super::reason::reason;
use super::topk::TopK;
use crate::classify::ClosedBin;
use crate::detect::{Alert, Phase};
use crate::time::rfc3339_micros;

/// Clients the ranking keeps (addresses can be spoofed: a Space-Saving
/// table, so a flood of one-shot sources cannot push out a busy client).
const MAX_CLIENTS: usize = 100_000;
/// Alert starts listed.
const MAX_ALERTS: usize = 50;
const TOP: usize = 5;

pub struct Summary {
    inner: Box<dyn Sink>,
    to: Box<dyn Write + Send>,
    /// client -> queries (ranked), MX queries since it entered the ranking
    clients: TopK<u64>,
    starts: Vec<(i64, &'static str, IpAddr, String)>,
    starts_total: u64,
    snaps: Vec<CaptureSnapshot>,
}

impl Summary {
    pub fn new(inner: Box<dyn Sink>, to: Box<dyn Write + Send>) -> Self {
        Summary {
            inner,
            to,
            clients: TopK::new(MAX_CLIENTS),
            starts: Vec::new(),
            starts_total: 0,
            snaps: Vec::new(),
        }
    }

    fn write_summary(&mut self) -> io::Result<()> {
        let w = &mut self.to;
        let (mut packets, mut decoded, mut truncated, mut errors) = (0, 0, 0, 0);
        let (mut first, mut last) = (i64::MAX, i64::MIN);
        for s in &self.snaps {
            let d = &s.decode;
            packets += d.packets;
            decoded += d.decoded;
            truncated += d.truncated.link + d.truncated.ip + d.truncated.transport;
            errors += d.decode_errors.link + d.decode_errors.ip + d.decode_errors.transport;
            first = first.min(s.first_ts);
            last = last.max(s.ts);
        }
        let span = if packets > 0 {
            format!(
                ", {} to {} ({:.0} s)",
                &rfc3339_micros(first)[..19],
                &rfc3339_micros(last)[..19],
                (last - first) as f64 / 1e6
            )
        } else {
            String::new()
        };
        writeln!(
            w,
            "mxwatch: {packets} packets read, {decoded} with DNS or SMTP, {truncated} truncated, {errors} malformed{span}"
        )?;
        let top = self.clients.top(TOP);
        if !top.is_empty() {
            let list: Vec<String> = top
                .iter()
                .map(|(ip, e)| {
                    // A client that entered a full ranking: its queries since
                    // then (exact), and the MX share of those.
                    let q = e.count - e.err;
                    let more = if e.err > 0 { "+" } else { "" };
                    format!(
                        "{ip} {q}{more} queries ({:.0}% MX)",
                        e.extra as f64 * 100.0 / q.max(1) as f64
                    )
                })
                .collect();
            writeln!(w, "mxwatch: busiest clients: {}", list.join(", "))?;
        }
        if self.clients.replaced() > 0 {
            writeln!(
                w,
                "mxwatch: more than {} clients: ranked by a Space-Saving summary (\"+\": counted since it entered)",
                self.clients.cap()
            )?;
        }
        match self.starts_total {
            0 => writeln!(w, "mxwatch: no alert")?,
            n => {
                writeln!(w, "mxwatch: {n} alert(s) started:")?;
                for (ts, rule, ip, why) in &self.starts {
                    writeln!(
                        w,
                        "  {}  {rule:<24} {ip:<15} {why}",
                        &rfc3339_micros(*ts)[11..19]
                    )?;
                }
                if n as usize > self.starts.len() {
                    writeln!(
                        w,
                        "  ... and {} more (the JSON lines have them all)",
                        n as usize - self.starts.len()
                    )?;
                }
            }
        }
        w.flush()
    }
}

impl Sink for Summary {
    fn bin_lines(&mut self, bin: &ClosedBin, alerts: &[Alert]) -> io::Result<()> {
        for r in bin.active() {
            let mx = r.bin.dns.qtype(crate::dns::QtypeBucket::Mx);
            if let Some(m) = self.clients.add(r.ip, r.bin.dns.queries) {
                *m += mx;
            }
        }
        for a in alerts.iter().filter(|a| a.phase == Phase::Start) {
            self.starts_total += 1;
            if self.starts.len() < MAX_ALERTS {
                self.starts.push((a.ts, a.rule.name, a.ip, reason(a)));
            }
        }
        self.inner.bin_lines(bin, alerts)
    }

    fn capture_stats(&mut self, snap: &CaptureSnapshot, h: &ClassifierHealth) -> io::Result<()> {
        self.inner.capture_stats(snap, h)?;
        if snap.is_final {
            self.snaps.push(snap.clone());
        }
        Ok(())
    }

    fn reopen(&mut self, w: Box<dyn Write + Send>) -> io::Result<()> {
        self.inner.reopen(w)
    }

    fn action_line(&mut self, r: &super::action::ActionRecord) -> io::Result<()> {
        self.inner.action_line(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()?;
        if !self.snaps.is_empty() {
            // The final lines are in: the run is over.
            self.write_summary()?;
            self.snaps.clear();
        }
        Ok(())
    }

    fn close(&mut self) -> io::Result<()> {
        self.inner.close()?;
        if !self.snaps.is_empty() {
            self.write_summary()?;
            self.snaps.clear();
        }
        Ok(())
    }
}
