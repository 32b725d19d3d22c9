//! Beyond one machine (issue #16): sensors publish their closed per-client
//! bins to Kafka (`--publish`), a group of `mxwatch detect` processes merges
//! the bins of each client from every sensor and runs the same detector.
//!
//! ```text
//! sensor: engine -> Output ─┬─> its own outputs
//!                           └─> publish: bin messages (keyed by client) + marks -> Kafka topic
//! detect: Kafka consumer group -> Partition (merge per client and bin, watermark
//!         of the sensors' marks, lateness) -> Detector -> Output
//! ```
//!
//! [`wire`] is the message format; [`assemble`] the merge and the detector
//! of one partition (no Kafka in it: tested alone); `publish` and `consume`
//! the two ends that talk to Kafka (feature `kafka`). docs/scale.md.

pub mod assemble;
#[cfg(feature = "kafka")]
pub mod consume;
#[cfg(feature = "kafka")]
pub mod publish;
pub mod wire;
