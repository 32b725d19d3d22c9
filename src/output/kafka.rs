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
    type DeliveryOpaque = ();
    fn delivery(&self, r: &DeliveryResult<'_>, _: ()) {
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
        };
        t.config
            .create_with_context::<_, BaseProducer<Delivery>>(Delivery(t.counters.clone()))
            .map_err(|e| format!("kafka: {e}"))?;
        Ok(t)
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
        Ok(())
    }

    fn send(&mut self, item: &Item) -> io::Result<bool> {
        let p = self.producer.as_ref().ok_or(io::ErrorKind::NotConnected)?;
        let mut record = BaseRecord::to(&self.topic).payload(&item.payload);
        if let Some(k) = &item.key {
            record = record.key(k);
        }
        let r = p.send(record);
        p.poll(Duration::ZERO);
        match r {
            Ok(()) => Ok(false),
            Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                // librdkafka's buffer is full (broker away): serve callbacks
                // for a while; the worker tries again.
                p.poll(Duration::from_millis(100));
                Err(io::ErrorKind::WouldBlock.into())
            }
            Err((e, _)) => Err(io::Error::new(io::ErrorKind::InvalidData, e)),
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
