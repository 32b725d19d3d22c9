//! The Kafka output (the one file that talks to rdkafka / librdkafka): each
//! JSON line a message of one topic, keyed by the client IP (`source.ip`) so
//! one client's lines stay in one partition; lines without a client
//! (capture_stats, the folded client_stats line) have no key.
//!
//! librdkafka keeps its own bounded buffer (`queue.buffering.max.messages`,
//! set to the output's `queue`) and retries while the broker is away, for
//! `message.timeout.ms` (default here 60 s); when that buffer is full the
//! worker waits, the output's queue fills and further lines are dropped and
//! counted. A line counts as `sent` when the broker acknowledged it, as
//! `dropped` when librdkafka gave up on it. Idempotent delivery
//! (`enable.idempotence`) is on by default; any librdkafka property can be
//! set in the output's `properties`.

use std::collections::BTreeMap;
use std::io;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use rdkafka::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{
    BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext, PurgeConfig,
};

use super::lines::LineMeta;
use super::queue::{Counters, Item, Transport};

/// How long librdkafka retries a line before it is dropped (and counted).
pub const MESSAGE_TIMEOUT_MS: &str = "60000";

pub fn encode(meta: &LineMeta<'_>, json: &[u8]) -> Item {
    Item {
        key: meta.client.map(|c| c.to_string()),
        payload: json.to_vec(),
    }
}

struct Delivery(Arc<Counters>);

impl ClientContext for Delivery {}

impl ProducerContext for Delivery {
    /// 1 when the delivery counts, 0 when not (a broadcast line counts
    /// once); a plain integer, no allocation per message.
    type DeliveryOpaque = usize;
    fn delivery(&self, r: &DeliveryResult<'_>, counts: usize) {
        if counts == 0 {
            return;
        }
        let c = if r.is_ok() {
            &self.0.sent
        } else {
            &self.0.dropped
        };
        c.fetch_add(1, Ordering::Relaxed);
    }
}

pub struct KafkaTransport {
    config: ClientConfig,
    topic: String,
    counters: Arc<Counters>,
    producer: Option<BaseProducer<Delivery>>,
    /// Lines without a key go to every partition (`--publish` marks).
    broadcast: bool,
    partitions: Vec<i32>,
}

impl KafkaTransport {
    /// Checks the configuration now (a bad property is a config error).
    pub fn new(
        brokers: &str,
        topic: &str,
        buffer: usize,
        properties: &BTreeMap<String, String>,
        counters: Arc<Counters>,
    ) -> Result<KafkaTransport, String> {
        let mut config = ClientConfig::new();
        config
            .set("bootstrap.servers", brokers)
            .set("enable.idempotence", "true")
            .set("message.timeout.ms", MESSAGE_TIMEOUT_MS)
            .set("queue.buffering.max.messages", buffer.max(1).to_string())
            .set("log_level", "3");
        for (k, v) in properties {
            config.set(k, v);
        }
        let t = KafkaTransport {
            config,
            topic: topic.to_owned(),
            counters,
            producer: None,
            broadcast: false,
            partitions: Vec::new(),
        };
        t.config
            .create_with_context::<_, BaseProducer<Delivery>>(Delivery(t.counters.clone()))
            .map_err(|e| format!("kafka: {e}"))?;
        Ok(t)
    }
}

impl KafkaTransport {
    /// Lines without a key go to every partition of the topic (counted once).
    pub fn broadcasting(mut self) -> Self {
        self.broadcast = true;
        self
    }

    /// The topic's partitions (the topic must exist: a broadcast needs them all).
    fn partitions(p: &BaseProducer<Delivery>, topic: &str) -> io::Result<Vec<i32>> {
        let md = p
            .client()
            .fetch_metadata(Some(topic), Duration::from_secs(5))
            .map_err(io::Error::other)?;
        let parts: Vec<i32> = md
            .topics()
            .iter()
            .filter(|t| t.name() == topic && t.error().is_none())
            .flat_map(|t| t.partitions().iter().map(|p| p.id()))
            .collect();
        if parts.is_empty() {
            return Err(io::Error::other(format!(
                "kafka: topic {topic} has no partitions (create it first)"
            )));
        }
        Ok(parts)
    }
}

impl Transport for KafkaTransport {
    fn connect(&mut self) -> io::Result<()> {
        if self.producer.is_none() {
            let p = self
                .config
                .create_with_context(Delivery(self.counters.clone()))
                .map_err(io::Error::other)?;
            self.producer = Some(p);
        }
        if self.broadcast && self.partitions.is_empty() {
            let p = self.producer.as_ref().expect("producer");
            self.partitions = Self::partitions(p, &self.topic)?;
        }
        Ok(())
    }

    fn send(&mut self, item: &Item) -> io::Result<bool> {
        let p = self.producer.as_ref().ok_or(io::ErrorKind::NotConnected)?;
        let r = if self.broadcast && item.key.is_none() {
            // Every partition, in order; one that fails is retried with
            // the rest (a mark read twice changes nothing).
            let mut r = Ok(());
            for (i, part) in self.partitions.iter().enumerate() {
                let record = BaseRecord::with_opaque_to(&self.topic, usize::from(i == 0))
                    .payload(&item.payload)
                    .partition(*part);
                if let Err((e, _)) = p.send::<(), _>(record) {
                    r = Err(e);
                    break;
                }
            }
            r
        } else {
            let mut record = BaseRecord::with_opaque_to(&self.topic, 1).payload(&item.payload);
            if let Some(k) = &item.key {
                record = record.key(k);
            }
            p.send(record).map_err(|(e, _)| e)
        };
        p.poll(Duration::ZERO);
        match r {
            Ok(()) => Ok(false),
            Err(KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull)) => {
                // librdkafka's buffer is full (broker away): serve callbacks
                // for a while; the worker tries again.
                p.poll(Duration::from_millis(100));
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err(e) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
        }
    }

    fn idle(&mut self) -> io::Result<()> {
        if let Some(p) = &self.producer {
            p.poll(Duration::ZERO);
        }
        Ok(())
    }

    fn finish(&mut self, deadline: Instant) -> u64 {
        if let Some(p) = self.producer.take() {
            let _ = p.flush(deadline.saturating_duration_since(Instant::now()));
            // What is still in librdkafka's buffer is given up: the purge
            // makes it report each line (counted as dropped).
            p.purge(PurgeConfig::default().queue().inflight());
            let _ = p.flush(Duration::from_millis(500));
            p.poll(Duration::from_millis(100));
        }
        0
    }
}
