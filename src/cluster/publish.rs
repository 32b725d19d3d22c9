//! `--publish kafka://BROKERS/TOPIC`: every closed bin's active clients as
//! bin messages keyed by client address, then a mark to every partition, so
//! a detector group (`mxwatch detect --from`) knows the bin is complete.
//!
//! A [`Sink`] in front of the run's own output: it runs on the output thread
//! after the merge (never on a capture thread) and hands the messages to the
//! Kafka output's bounded queue and worker (`output::queue`), so a slow or
//! absent broker costs counted drops, never a stalled capture. At the end of
//! the run a last mark tells the group this sensor holds nothing back.

use std::io::{self, Write};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use super::wire::{BinMsg, Mark, Message, VERSION};
use crate::classify::ClosedBin;
use crate::detect::Alert;
use crate::output::action::ActionRecord;
use crate::output::kafka::KafkaTransport;
use crate::output::queue::{Counters, Item, Queued};
use crate::output::tee::{OutputKind, OutputSpec};
use crate::output::{CaptureSnapshot, ClassifierHealth, Sink};

pub struct Publisher {
    inner: Box<dyn Sink>,
    sensor: String,
    queue: Queued,
    counters: Arc<Counters>,
    last_end: Option<i64>,
}

impl Publisher {
    /// `spec` is a Kafka output (checked by `config`); `lossless` for `read`.
    pub fn new(
        inner: Box<dyn Sink>,
        sensor: &str,
        spec: &OutputSpec,
        lossless: bool,
    ) -> Result<Publisher, String> {
        let OutputKind::Kafka {
            brokers,
            topic,
            properties,
        } = &spec.kind
        else {
            return Err("--publish takes a kafka://HOST:PORT/TOPIC URL".into());
        };
        let counters = Arc::new(Counters::default());
        let t = KafkaTransport::new(brokers, topic, spec.queue, properties, counters.clone())?
            .broadcasting();
        let queue = Queued::start(
            spec.name.clone(),
            "kafka",
            Box::new(t),
            counters.clone(),
            spec.queue,
            lossless,
            spec.drain,
        );
        Ok(Publisher {
            inner,
            sensor: sensor.to_owned(),
            queue,
            counters,
            last_end: None,
        })
    }

    fn push(&mut self, key: Option<String>, m: &Message) {
        if let Ok(payload) = serde_json::to_vec(m) {
            self.queue.push(Item { key, payload });
        }
    }

    fn mark(&mut self, start: i64, end: i64, last: bool) {
        let m = Message::Mark(Mark {
            v: VERSION,
            sensor: self.sensor.clone(),
            start,
            end,
            last,
        });
        self.push(None, &m);
    }
}

impl Sink for Publisher {
    fn bin_lines(&mut self, bin: &ClosedBin, alerts: &[Alert]) -> io::Result<()> {
        // The end-of-input aggregate comes as an empty bin of no length.
        if bin.end > bin.start {
            for c in bin.active() {
                let m = Message::Bin(Box::new(BinMsg::of(
                    &self.sensor,
                    bin.start,
                    bin.end,
                    c.ip,
                    c.local_domain.as_deref(),
                    &c.bin,
                )));
                self.push(Some(c.ip.to_string()), &m);
            }
            self.mark(bin.start, bin.end, false);
            self.last_end = Some(bin.end);
        }
        self.inner.bin_lines(bin, alerts)
    }

    fn capture_stats(&mut self, snap: &CaptureSnapshot, h: &ClassifierHealth) -> io::Result<()> {
        self.inner.capture_stats(snap, h)
    }

    fn reopen(&mut self, w: Box<dyn Write + Send>) -> io::Result<()> {
        self.inner.reopen(w)
    }

    fn action_line(&mut self, r: &ActionRecord) -> io::Result<()> {
        self.inner.action_line(r)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }

    fn close(&mut self) -> io::Result<()> {
        if let Some(end) = self.last_end {
            self.mark(end, end, true);
        }
        self.queue.close();
        let c = &self.counters;
        let (lines, sent, dropped) = (
            c.lines.load(Ordering::Relaxed),
            c.sent.load(Ordering::Relaxed),
            c.dropped.load(Ordering::Relaxed),
        );
        if dropped > 0 {
            tracing::warn!(
                "--publish: {dropped} of {lines} messages dropped ({sent} acknowledged)"
            );
        } else {
            tracing::info!("--publish: {sent} of {lines} messages acknowledged");
        }
        self.inner.close()
    }
}
