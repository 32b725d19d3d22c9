//! DNS over TCP (RFC 7766): per-direction streams cut into messages by their
//! 2-byte length prefix.
//!
//! Input: TCP segments to or from port 53. Output: the head of each message
//! (at most [`DNS_COPY_MAX`] bytes, enough for the header and question), with
//! the message length. Several messages in one segment and one message split
//! over segments both work; a retransmitted segment (data before the next
//! expected sequence number) is trimmed, not counted twice. A gap (a lost or
//! reordered segment) resynchronises on the next segment, counted. The flow
//! table is capped; when full, the stalest flow (least recently seen) is
//! evicted and counted. Recency is kept in a touch queue with lazy deletion
//! (an entry whose stamp no longer matches its flow's is skipped, and the
//! queue is compacted when it holds twice the flows): every segment and every
//! eviction is O(1) amortised, never a scan of the table (issue 12: a flood
//! of one-segment flows cost a full scan per new flow).

use std::collections::VecDeque;

use crate::FastMap;
use std::net::IpAddr;

use crate::event::DNS_COPY_MAX;

use super::TcpSegment;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Key {
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
}

#[derive(Debug)]
struct Stream {
    next_seq: Option<u32>,
    /// Bytes of the length prefix read so far.
    prefix: [u8; 2],
    prefix_len: u8,
    /// Length of the message being read, and how much of it is behind us.
    msg_len: usize,
    msg_read: usize,
    head: Vec<u8>,
    last_seen: i64,
    /// The stamp of this flow's latest entry in the touch queue.
    stamp: u64,
}

impl Stream {
    fn new(ts: i64) -> Self {
        Stream {
            next_seq: None,
            prefix: [0; 2],
            prefix_len: 0,
            msg_len: 0,
            msg_read: 0,
            head: Vec::new(),
            last_seen: ts,
            stamp: 0,
        }
    }

    fn reset_framing(&mut self) {
        self.prefix_len = 0;
        self.msg_len = 0;
        self.msg_read = 0;
        self.head.clear();
    }
}

#[derive(Debug, Default, Clone, Copy)]
pub struct TcpDnsStats {
    pub flows_evicted: u64,
    pub gaps: u64,
    pub retransmitted_bytes: u64,
}

#[derive(Debug)]
pub struct TcpDnsReassembler {
    streams: FastMap<Key, Stream>,
    /// Flows by last touch, oldest first (lazily cleaned).
    touched: VecDeque<(Key, u64)>,
    next_stamp: u64,
    max_flows: usize,
    pub stats: TcpDnsStats,
}

impl TcpDnsReassembler {
    pub fn new(max_flows: usize) -> Self {
        TcpDnsReassembler {
            streams: FastMap::default(),
            touched: VecDeque::new(),
            next_stamp: 1,
            max_flows: max_flows.max(1),
            stats: TcpDnsStats::default(),
        }
    }

    pub fn flows(&self) -> usize {
        self.streams.len()
    }

    /// Feeds one segment; calls `emit(head, partial)` for each complete message
    /// (`partial` when the head is the whole message but shorter than the
    /// copy limit is never the case: it is true only if the message ended early).
    pub fn on_segment(&mut self, ts: i64, seg: &TcpSegment<'_>, mut emit: impl FnMut(&[u8])) {
        let key = Key {
            src: seg.src,
            dst: seg.dst,
            src_port: seg.src_port,
            dst_port: seg.dst_port,
        };
        if self.touched.len() > 2 * self.streams.len() + 64 {
            self.compact();
        }
        if seg.rst {
            self.streams.remove(&key);
            return;
        }
        if !self.streams.contains_key(&key) {
            if seg.payload.is_empty() && !seg.syn {
                return;
            }
            if self.streams.len() >= self.max_flows {
                self.evict_stalest();
            }
        }
        let s = self.streams.entry(key).or_insert_with(|| Stream::new(ts));
        s.last_seen = ts;
        // Re-queue only when something else was touched since (a burst of
        // segments of one flow costs one entry).
        if s.stamp + 1 != self.next_stamp || s.stamp == 0 {
            s.stamp = self.next_stamp;
            self.next_stamp += 1;
            self.touched.push_back((key, s.stamp));
        }
        if seg.syn {
            s.next_seq = Some(seg.seq.wrapping_add(1));
            s.reset_framing();
        }
        let mut data = seg.payload;
        if !data.is_empty() {
            let expected = *s.next_seq.get_or_insert(seg.seq);
            let offset = seg.seq.wrapping_sub(expected) as i32;
            if offset < 0 {
                // Starts before what we already have: a retransmission.
                let dup = (-(offset as i64)) as usize;
                let skip = dup.min(data.len());
                self.stats.retransmitted_bytes += skip as u64;
                data = &data[skip..];
            } else if offset > 0 {
                // Bytes missing: resynchronise, assuming a message starts here.
                self.stats.gaps += 1;
                s.reset_framing();
            }
            // Only forward: a pure retransmission must not pull it back.
            let end = seg.seq.wrapping_add(seg.payload.len() as u32);
            if end.wrapping_sub(expected) as i32 > 0 || offset > 0 {
                s.next_seq = Some(end);
            }
        }
        while !data.is_empty() {
            if s.prefix_len < 2 {
                s.prefix[s.prefix_len as usize] = data[0];
                s.prefix_len += 1;
                data = &data[1..];
                if s.prefix_len == 2 {
                    s.msg_len = u16::from_be_bytes(s.prefix) as usize;
                    s.msg_read = 0;
                    s.head.clear();
                    if s.msg_len == 0 {
                        s.prefix_len = 0;
                    }
                }
                continue;
            }
            let want = s.msg_len - s.msg_read;
            let take = want.min(data.len());
            let keep = DNS_COPY_MAX.saturating_sub(s.head.len()).min(take);
            s.head.extend_from_slice(&data[..keep]);
            s.msg_read += take;
            data = &data[take..];
            if s.msg_read == s.msg_len {
                emit(&s.head);
                s.prefix_len = 0;
                s.head.clear();
            }
        }
        if seg.fin {
            self.streams.remove(&key);
        }
    }

    /// Drops streams idle since before `cutoff` (packet time).
    pub fn expire(&mut self, cutoff: i64) {
        self.streams.retain(|_, s| s.last_seen >= cutoff);
        self.compact();
    }

    fn is_live(&self, (key, stamp): &(Key, u64)) -> bool {
        self.streams.get(key).is_some_and(|s| s.stamp == *stamp)
    }

    /// Evicts the least recently touched flow: O(1) amortised.
    fn evict_stalest(&mut self) {
        while let Some(entry) = self.touched.pop_front() {
            if self.is_live(&entry) {
                self.streams.remove(&entry.0);
                self.stats.flows_evicted += 1;
                break;
            }
        }
        if self.touched.len() > 2 * self.streams.len() + 64 {
            self.compact();
        }
    }

    /// Drops stale queue entries (keeps the queue within twice the flows).
    fn compact(&mut self) {
        let streams = &self.streams;
        self.touched
            .retain(|(k, stamp)| streams.get(k).is_some_and(|s| s.stamp == *stamp));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn seg(seq: u32, syn: bool, payload: &[u8]) -> TcpSegment<'_> {
        TcpSegment {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53)),
            src_port: 40000,
            dst_port: 53,
            seq,
            ack: 0,
            syn,
            ack_flag: !syn,
            fin: false,
            rst: false,
            payload,
        }
    }

    fn framed(msgs: &[&[u8]]) -> Vec<u8> {
        let mut v = Vec::new();
        for m in msgs {
            v.extend((m.len() as u16).to_be_bytes());
            v.extend(*m);
        }
        v
    }

    #[test]
    fn split_and_coalesced_messages_and_retransmissions() {
        let m1 = [1u8; 20];
        let m2 = [2u8; 30];
        let m3 = [3u8; 15];
        let stream = framed(&[&m1, &m2, &m3]);
        let mut r = TcpDnsReassembler::new(4);
        let mut got: Vec<Vec<u8>> = Vec::new();
        r.on_segment(0, &seg(99, true, &[]), |m| got.push(m.to_vec()));
        // Cut inside the first length prefix, then inside m2, then the rest.
        r.on_segment(1, &seg(100, false, &stream[..1]), |m| got.push(m.to_vec()));
        r.on_segment(2, &seg(101, false, &stream[1..40]), |m| {
            got.push(m.to_vec())
        });
        // Retransmission of bytes 20..40 plus new bytes 40..45.
        r.on_segment(3, &seg(120, false, &stream[20..45]), |m| {
            got.push(m.to_vec())
        });
        r.on_segment(4, &seg(145, false, &stream[45..]), |m| got.push(m.to_vec()));
        assert_eq!(got, vec![m1.to_vec(), m2.to_vec(), m3.to_vec()]);
        assert_eq!(r.stats.retransmitted_bytes, 20);
        assert_eq!(r.stats.gaps, 0);
    }

    #[test]
    fn a_pure_retransmission_does_not_pull_the_stream_back() {
        let m1 = [1u8; 20];
        let m2 = [2u8; 20];
        let stream = framed(&[&m1, &m2]);
        let mut r = TcpDnsReassembler::new(4);
        let mut got: Vec<Vec<u8>> = Vec::new();
        r.on_segment(0, &seg(99, true, &[]), |m| got.push(m.to_vec()));
        r.on_segment(1, &seg(100, false, &stream[..10]), |m| got.push(m.to_vec()));
        r.on_segment(2, &seg(110, false, &stream[10..30]), |m| {
            got.push(m.to_vec())
        });
        // The first segment again (older than the last one), then the rest.
        r.on_segment(3, &seg(100, false, &stream[..10]), |m| got.push(m.to_vec()));
        r.on_segment(4, &seg(130, false, &stream[30..]), |m| got.push(m.to_vec()));
        assert_eq!(got, vec![m1.to_vec(), m2.to_vec()]);
        assert_eq!((r.stats.gaps, r.stats.retransmitted_bytes), (0, 10));
    }

    #[test]
    fn flow_table_is_capped() {
        let mut r = TcpDnsReassembler::new(2);
        for port in 0..5u16 {
            let mut s = seg(1, false, &[0, 5, 1]);
            s.src_port = 1000 + port;
            r.on_segment(port as i64, &s, |_| {});
        }
        assert_eq!(r.flows(), 2);
        assert_eq!(r.stats.flows_evicted, 3);
    }
}
