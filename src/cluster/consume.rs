//! `mxwatch detect --from kafka://BROKERS/TOPIC --group NAME`: one member
//! of a Kafka consumer group. Kafka assigns it partitions (and moves them
//! when a member joins or dies); each assigned partition gets its own
//! [`Partition`] assembler and detector.
//!
//! Failover: offsets are committed only up to the first message of a bin
//! that is still open, after the bins before it were written. A partition
//! that arrives here (first start, or taken over from a dead member) is
//! read again from the start of what the topic retains, so the detector's
//! baselines and open incidents are rebuilt; alerts of messages before the
//! committed offset were written by the previous owner and are not written
//! again. What is between the last commit and a crash is written again
//! (at-least-once): alert ids are stable, a SIEM can drop the repeats.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::{Message as _, Offset, TopicPartitionList};
use serde::Serialize;

use super::assemble::{AssembleConfig, AssembleStats, Out, Partition};
use super::wire;

/// How long broker calls made by the loop may take.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

pub struct GroupMember {
    consumer: BaseConsumer,
    topic: String,
    cfg: AssembleConfig,
    parts: BTreeMap<i32, Partition>,
    /// Partitions taken away, kept in case they come straight back (an
    /// eager rebalance takes every partition away and gives most back): a
    /// partition whose next message is the one after our last resumes here.
    parked: BTreeMap<i32, Partition>,
    /// Partitions rewound to rebuild state: the offset expected first
    /// (messages fetched before the rewind are skipped).
    rewound: BTreeMap<i32, i64>,
    /// The offset this member last committed per partition.
    last_committed: BTreeMap<i32, i64>,
    /// Committed offsets not yet sent (partition -> offset).
    to_commit: BTreeMap<i32, i64>,
    last_message: Instant,
    pub stats: MemberStats,
}

#[derive(Debug, Default, Clone, Serialize)]
pub struct MemberStats {
    /// Messages that are not mxwatch bin messages (counted, skipped).
    pub bad_messages: u64,
    pub consume_errors: u64,
    /// Partitions this member was given, and lost, over the run.
    pub partitions_assigned: u64,
    pub partitions_revoked: u64,
    /// Summed over the partitions this member has (or had).
    pub assemble: AssembleStats,
}

impl GroupMember {
    pub fn new(
        brokers: &str,
        topic: &str,
        group: &str,
        properties: &BTreeMap<String, String>,
        cfg: AssembleConfig,
    ) -> Result<GroupMember, String> {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", brokers)
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "10000")
            .set("heartbeat.interval.ms", "1000")
            .set(
                "log_level",
                if properties.contains_key("debug") {
                    "7"
                } else {
                    "3"
                },
            );
        for (k, v) in properties {
            c.set(k, v);
        }
        let consumer: BaseConsumer = c.create().map_err(|e| format!("kafka: {e}"))?;
        consumer
            .subscribe(&[topic])
            .map_err(|e| format!("kafka: subscribing to {topic}: {e}"))?;
        Ok(GroupMember {
            consumer,
            topic: topic.to_owned(),
            cfg,
            parts: BTreeMap::new(),
            parked: BTreeMap::new(),
            rewound: BTreeMap::new(),
            last_committed: BTreeMap::new(),
            to_commit: BTreeMap::new(),
            last_message: Instant::now(),
            stats: MemberStats::default(),
        })
    }

    /// Seconds since the last message.
    pub fn idle_for(&self) -> Duration {
        self.last_message.elapsed()
    }

    /// Waits up to `timeout` for messages; returns the bins they (or the
    /// lateness) closed, with their alerts.
    pub fn poll(&mut self, timeout: Duration) -> Vec<Out> {
        let mut out = Vec::new();
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.consumer.poll(left) {
                Some(Ok(m)) => {
                    self.last_message = Instant::now();
                    let (p, off) = (m.partition(), m.offset());
                    let payload = m.payload().unwrap_or_default().to_vec();
                    drop(m);
                    if !self.in_sequence(p, off) {
                        continue;
                    }
                    let part = self.parts.get_mut(&p).expect("partition");
                    match wire::decode(&payload) {
                        Ok(msg) => out.extend(part.message(off, msg, Instant::now())),
                        Err(e) => {
                            part.skip(off);
                            self.stats.bad_messages += 1;
                            if self.stats.bad_messages == 1 {
                                tracing::warn!(
                                    "kafka: partition {p} offset {off}: not an mxwatch bin message ({e}); skipped and counted"
                                );
                            }
                        }
                    }
                    self.to_commit.insert(p, part.committable());
                }
                Some(Err(e)) => {
                    self.stats.consume_errors += 1;
                    tracing::debug!("kafka: {e}");
                }
                None => {}
            }
            if Instant::now() >= deadline {
                break;
            }
        }
        let now = Instant::now();
        for (p, part) in &mut self.parts {
            out.extend(part.tick(now));
            self.to_commit.insert(*p, part.committable());
        }
        self.revoked();
        out
    }

    /// Whether the message at `off` of partition `p` goes to its state now:
    /// a partition that was away (or whose messages jump: another member had
    /// it meanwhile) is resumed from its parked state when nothing happened
    /// in between, else rebuilt ([`Self::arrive`]).
    fn in_sequence(&mut self, p: i32, off: i64) -> bool {
        if let Some(&want) = self.rewound.get(&p) {
            if off != want {
                return false; // fetched before the rewind
            }
            self.rewound.remove(&p);
            return true;
        }
        if let Some(part) = self.parts.get(&p) {
            if part.next_offset().is_none_or(|n| n == off) {
                return true;
            }
            // A gap or a step back: the partition was elsewhere meanwhile.
            if let Some(gone) = self.parts.remove(&p) {
                self.stats.assemble.add(&gone.stats);
            }
        } else if let Some(part) = self.parked.remove(&p) {
            if part.next_offset() == Some(off) {
                eprintln!("mxwatch detect: partition {p} came back at offset {off}: resumed");
                self.parts.insert(p, part);
                return true;
            }
            self.stats.assemble.add(&part.stats);
        }
        self.arrive(p, off)
    }

    /// A partition's first message here. If an earlier owner committed an
    /// offset past the start of the retained messages, rewinds to the start
    /// (returns false: the message will come again) and replays up to it.
    fn arrive(&mut self, p: i32, off: i64) -> bool {
        self.stats.partitions_assigned += 1;
        let low = self
            .consumer
            .fetch_watermarks(&self.topic, p, CALL_TIMEOUT)
            .map_or(0, |(low, _)| low);
        let committed = self.committed(p).unwrap_or(low);
        if off > low {
            if let Err(e) = self
                .consumer
                .seek(&self.topic, p, Offset::Offset(low), CALL_TIMEOUT)
            {
                tracing::warn!(
                    "kafka: partition {p}: cannot rewind to {low} to rebuild state ({e}); reading on from {off}"
                );
            } else {
                eprintln!(
                    "mxwatch detect: partition {p} arrived at offset {off}: replaying {low}..{committed} to rebuild its clients' state"
                );
                self.parts
                    .insert(p, Partition::new(self.cfg.clone(), committed.max(off)));
                // The partition exists now: the message that comes again
                // is not taken for a new arrival.
                self.rewound.insert(p, low);
                return false;
            }
        }
        eprintln!("mxwatch detect: partition {p} arrived at offset {off}");
        self.parts
            .insert(p, Partition::new(self.cfg.clone(), committed.max(off)));
        true
    }

    fn committed(&self, p: i32) -> Option<i64> {
        let mut tpl = TopicPartitionList::new();
        tpl.add_partition(&self.topic, p);
        let got = self.consumer.committed_offsets(tpl, CALL_TIMEOUT).ok()?;
        got.elements().first().and_then(|e| match e.offset() {
            Offset::Offset(n) => Some(n),
            _ => None,
        })
    }

    /// Partitions Kafka took away: their state goes (the new owner rebuilds it).
    fn revoked(&mut self) {
        let Ok(a) = self.consumer.assignment() else {
            return;
        };
        let mine: Vec<i32> = a
            .elements()
            .iter()
            .filter(|e| e.topic() == self.topic)
            .map(|e| e.partition())
            .collect();
        // Back without a message since: resumed if nobody committed past us.
        let back: Vec<i32> = mine
            .iter()
            .copied()
            .filter(|p| self.parked.contains_key(p))
            .collect();
        for p in back {
            if self.committed(p) == self.last_committed.get(&p).copied()
                && let Some(part) = self.parked.remove(&p)
            {
                eprintln!("mxwatch detect: partition {p} came back: resumed");
                self.parts.insert(p, part);
            }
        }
        let gone: Vec<i32> = self
            .parts
            .keys()
            .copied()
            .filter(|p| !mine.contains(p))
            .collect();
        for p in gone {
            if let Some(part) = self.parts.remove(&p)
                && let Some(old) = self.parked.insert(p, part)
            {
                self.stats.assemble.add(&old.stats);
            }
            self.to_commit.remove(&p);
            self.rewound.remove(&p);
            self.stats.partitions_revoked += 1;
            eprintln!("mxwatch detect: partition {p} left this member");
        }
    }

    /// Commits what was written (call after the bins of `poll` or
    /// `finish` are out); `sync` waits for the broker (at the end).
    pub fn commit(&mut self, sync: bool) {
        if self.to_commit.is_empty() {
            return;
        }
        let mut tpl = TopicPartitionList::new();
        for (p, off) in std::mem::take(&mut self.to_commit) {
            if self.parts.get(&p).is_some_and(|x| !x.replaying()) {
                let _ = tpl.add_partition_offset(&self.topic, p, Offset::Offset(off));
                self.last_committed.insert(p, off);
            }
        }
        let mode = if sync {
            CommitMode::Sync
        } else {
            CommitMode::Async
        };
        if tpl.count() > 0
            && let Err(e) = self.consumer.commit(&tpl, mode)
        {
            tracing::debug!("kafka: commit: {e}");
        }
    }

    /// End of the run: every partition's open bins close and incidents
    /// end (then write them and `commit(true)`).
    pub fn finish(&mut self) -> Vec<Out> {
        let mut out = Vec::new();
        for (p, part) in &mut self.parts {
            out.extend(part.finish());
            self.to_commit.insert(*p, part.committable());
        }
        out
    }

    /// Totals over every partition held now and before.
    pub fn totals(&self) -> MemberStats {
        let mut s = self.stats.clone();
        for p in self.parts.values().chain(self.parked.values()) {
            s.assemble.add(&p.stats);
        }
        s
    }
}
