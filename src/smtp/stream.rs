//! Per-direction TCP reassembly: segments in capture order -> in-order bytes.
//!
//! Place: `tracker` pushes each payload here; the in-order chunks go to the
//! line splitter. The next expected sequence number is tracked (RFC 9293
//! §3.4, modulo 2^32): data wholly before it is a duplicate and dropped,
//! overlap is trimmed, data after a gap is held, bounded in bytes and in
//! segments, and released when the gap fills. When the hold is full the
//! oldest gap is given up ([`Chunk::Gap`] tells the consumer to resync), so
//! no byte is ever delivered twice and nothing waits forever. A gap is also
//! given up at once when the peer acknowledges past it ([`HalfStream::acked`]):
//! the capture lost those bytes and no retransmission will bring them. A
//! direction whose first segment is not a SYN starts at that segment.

use super::SmtpStats;

/// What the stream delivers, in order.
#[derive(Debug, PartialEq, Eq)]
pub enum Chunk<'a> {
    Data(&'a [u8]),
    /// Bytes are missing here (a gap given up on): resync at a line start.
    Gap,
}

/// How much out-of-order data this direction may hold now.
#[derive(Debug, Clone, Copy)]
pub struct HoldCap {
    pub max_bytes: usize,
    pub max_segments: usize,
}

#[derive(Debug)]
struct Held {
    seq: u32,
    data: Vec<u8>,
}

#[derive(Debug, Default)]
pub struct HalfStream {
    /// Sequence number of the next byte to deliver; `None` before the first
    /// SYN or payload.
    next_seq: Option<u32>,
    /// Out-of-order segments, sorted by sequence number.
    held: Vec<Held>,
    held_bytes: usize,
    /// Sequence number of this direction's FIN, when seen (the FIN takes
    /// one number that the peer acknowledges, RFC 9293 §3.4).
    fin_seq: Option<u32>,
}

/// Largest believable acknowledgment jump: the largest TCP window (RFC 7323
/// §2.3: window scale 14). Beyond it the ACK is ignored as bogus.
const MAX_ACK_JUMP: u32 = 1 << 30;

/// `a` comes before `b` in sequence space (RFC 1982 style, modulo 2^32).
fn seq_lt(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) < 0
}

fn seq_le(a: u32, b: u32) -> bool {
    a == b || seq_lt(a, b)
}

impl HalfStream {
    pub fn is_started(&self) -> bool {
        self.next_seq.is_some()
    }

    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Start (or restart) the stream at `seq` (ISN + 1 after a SYN).
    pub fn start_at(&mut self, seq: u32, stats: &mut SmtpStats) {
        self.discard_held(stats);
        self.next_seq = Some(seq);
    }

    pub fn saw_fin(&mut self, fin_seq: u32) {
        self.fin_seq = Some(fin_seq);
    }

    /// The peer acknowledged everything before `ack`. Bytes before it that
    /// are missing here were lost by the capture, not the network, and will
    /// never be retransmitted: give those gaps up now rather than wait for
    /// the hold to fill (keeps replies matched to their commands).
    pub fn acked(
        &mut self,
        ack: u32,
        stats: &mut SmtpStats,
        deliver: &mut impl FnMut(Chunk<'_>, &mut SmtpStats),
    ) {
        let Some(next) = self.next_seq else {
            return;
        };
        let ack = match self.fin_seq {
            Some(fin) if fin.wrapping_add(1) == ack => fin,
            _ => ack,
        };
        if !seq_lt(next, ack) || ack.wrapping_sub(next) > MAX_ACK_JUMP {
            return;
        }
        while let Some(next) = self.next_seq.filter(|&next| seq_lt(next, ack)) {
            let resume_at = match self.held.first() {
                Some(first) if seq_lt(first.seq, ack) => first.seq,
                _ => ack,
            };
            stats.gaps_skipped += 1;
            deliver(Chunk::Gap, stats);
            self.next_seq = Some(resume_at);
            self.release(stats, deliver);
            if resume_at == ack || self.next_seq == Some(next) {
                return;
            }
        }
    }

    /// Throw away held data that will never be delivered (counted).
    pub fn discard_held(&mut self, stats: &mut SmtpStats) {
        stats.ooo_dropped_segments += self.held.len() as u64;
        stats.ooo_dropped_bytes += self.held_bytes as u64;
        self.held.clear();
        self.held_bytes = 0;
    }

    /// Add one segment's payload starting at `seq`; deliver whatever is now
    /// in order.
    pub fn push(
        &mut self,
        seq: u32,
        payload: &[u8],
        cap: HoldCap,
        stats: &mut SmtpStats,
        deliver: &mut impl FnMut(Chunk<'_>, &mut SmtpStats),
    ) {
        if payload.is_empty() {
            return;
        }
        let next = *self.next_seq.get_or_insert(seq);
        if seq_lt(next, seq) {
            if !self.fits(payload.len(), cap) {
                self.skip_gaps_until_fits(seq, payload.len(), cap, stats, deliver);
            }
            let next = self.next_seq.unwrap_or(seq);
            if seq_lt(next, seq) {
                if self.fits(payload.len(), cap) {
                    self.hold(seq, payload, stats);
                    return;
                }
                // Too large to hold even alone: give up the gap before it.
                stats.gaps_skipped += 1;
                deliver(Chunk::Gap, stats);
                self.next_seq = Some(seq);
            }
        }
        self.deliver_from(seq, payload, stats, deliver);
        self.release(stats, deliver);
    }

    fn fits(&self, len: usize, cap: HoldCap) -> bool {
        self.held.len() < cap.max_segments && self.held_bytes + len <= cap.max_bytes
    }

    /// Give up gaps, oldest first, until `len` more bytes fit or the next
    /// gap is the one right before `seq` itself.
    fn skip_gaps_until_fits(
        &mut self,
        seq: u32,
        len: usize,
        cap: HoldCap,
        stats: &mut SmtpStats,
        deliver: &mut impl FnMut(Chunk<'_>, &mut SmtpStats),
    ) {
        while let Some(first) = self.held.first() {
            if self.fits(len, cap) || seq_le(seq, first.seq) {
                return;
            }
            stats.gaps_skipped += 1;
            deliver(Chunk::Gap, stats);
            self.next_seq = Some(first.seq);
            self.release(stats, deliver);
        }
    }

    fn hold(&mut self, seq: u32, payload: &[u8], stats: &mut SmtpStats) {
        let next = self.next_seq.unwrap_or(seq);
        let offset = |s: u32| s.wrapping_sub(next);
        let already_held = self
            .held
            .iter()
            .any(|h| h.seq == seq && h.data.len() >= payload.len());
        if already_held {
            stats.duplicate_bytes += payload.len() as u64;
            return;
        }
        let at = self.held.partition_point(|h| offset(h.seq) <= offset(seq));
        self.held.insert(
            at,
            Held {
                seq,
                data: payload.to_vec(),
            },
        );
        self.held_bytes += payload.len();
        stats.ooo_segments_held += 1;
    }

    /// Deliver the part of `payload` (at `seq`, not after `next_seq`) that
    /// is new.
    fn deliver_from(
        &mut self,
        seq: u32,
        payload: &[u8],
        stats: &mut SmtpStats,
        deliver: &mut impl FnMut(Chunk<'_>, &mut SmtpStats),
    ) {
        let next = self.next_seq.unwrap_or(seq);
        let end = seq.wrapping_add(payload.len() as u32);
        if seq_le(end, next) {
            stats.duplicate_bytes += payload.len() as u64;
            return;
        }
        let skip = next.wrapping_sub(seq) as usize;
        stats.duplicate_bytes += skip as u64;
        deliver(Chunk::Data(&payload[skip..]), stats);
        self.next_seq = Some(end);
    }

    /// Deliver held segments that the stream has caught up with.
    fn release(
        &mut self,
        stats: &mut SmtpStats,
        deliver: &mut impl FnMut(Chunk<'_>, &mut SmtpStats),
    ) {
        while let Some(first) = self.held.first() {
            let next = self.next_seq.unwrap_or(first.seq);
            if seq_lt(next, first.seq) {
                return;
            }
            let held = self.held.remove(0);
            self.held_bytes -= held.data.len();
            self.deliver_from(held.seq, &held.data, stats, deliver);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const CAP: HoldCap = HoldCap {
        max_bytes: 100,
        max_segments: 4,
    };

    /// Push (seq, bytes) pairs; return the delivered text, `|` marking gaps.
    fn run(start: Option<u32>, segments: &[(u32, &str)], cap: HoldCap) -> (String, SmtpStats) {
        let mut stats = SmtpStats::default();
        let mut stream = HalfStream::default();
        if let Some(isn) = start {
            stream.start_at(isn, &mut stats);
        }
        let mut text = String::new();
        for &(seq, data) in segments {
            stream.push(
                seq,
                data.as_bytes(),
                cap,
                &mut stats,
                &mut |chunk, _| match chunk {
                    Chunk::Data(d) => text.push_str(std::str::from_utf8(d).unwrap()),
                    Chunk::Gap => text.push('|'),
                },
            );
        }
        (text, stats)
    }

    #[test]
    fn in_order() {
        assert_eq!(run(Some(1), &[(1, "ab"), (3, "cd")], CAP).0, "abcd");
    }

    #[test]
    fn retransmission_dropped_and_overlap_trimmed() {
        let (text, stats) = run(Some(1), &[(1, "ab"), (1, "ab"), (2, "bcd")], CAP);
        assert_eq!(text, "abcd");
        assert_eq!(stats.duplicate_bytes, 3);
    }

    #[test]
    fn out_of_order_held_until_gap_fills() {
        let (text, stats) = run(Some(1), &[(5, "ef"), (3, "cd"), (1, "ab")], CAP);
        assert_eq!(text, "abcdef");
        assert_eq!(stats.ooo_segments_held, 2);
        assert_eq!(stats.gaps_skipped, 0);
    }

    #[test]
    fn full_hold_skips_the_gap() {
        let cap = HoldCap {
            max_bytes: 3,
            max_segments: 4,
        };
        // "ab" never arrives; "cd" held, "ef" does not fit: skip to "cd".
        let (text, stats) = run(Some(1), &[(3, "cd"), (5, "ef"), (1, "ab")], cap);
        assert_eq!(text, "|cdef");
        assert_eq!((stats.gaps_skipped, stats.duplicate_bytes), (1, 2));
    }

    #[test]
    fn segment_larger_than_hold_skips_straight_to_it() {
        let cap = HoldCap {
            max_bytes: 1,
            max_segments: 4,
        };
        assert_eq!(run(Some(1), &[(3, "cd")], cap).0, "|cd");
    }

    #[test]
    fn midstream_starts_at_first_segment() {
        assert_eq!(run(None, &[(1000, "xy"), (1002, "z")], CAP).0, "xyz");
    }

    #[test]
    fn sequence_wraps() {
        let start = u32::MAX - 1;
        let (text, _) = run(Some(start), &[(0, "cd"), (start, "ab")], CAP);
        assert_eq!(text, "abcd");
    }

    #[test]
    fn ack_past_a_gap_gives_it_up_at_once() {
        let mut stats = SmtpStats::default();
        let mut stream = HalfStream::default();
        stream.start_at(1, &mut stats);
        let mut text = String::new();
        let mut sink = |chunk: Chunk<'_>, _: &mut SmtpStats| match chunk {
            Chunk::Data(d) => text.push_str(std::str::from_utf8(d).unwrap()),
            Chunk::Gap => text.push('|'),
        };
        // "ab" (1..3) lost by the capture; "cd" held; the peer acks 5.
        stream.push(3, b"cd", CAP, &mut stats, &mut sink);
        stream.acked(5, &mut stats, &mut sink);
        // Then "ef" (5..7) and "gh" (9..11) lost again, acked with the FIN.
        stream.push(5, b"ef", CAP, &mut stats, &mut sink);
        stream.saw_fin(11);
        stream.acked(12, &mut stats, &mut sink);
        // Old or absurd acks change nothing.
        stream.acked(3, &mut stats, &mut sink);
        stream.acked(11u32.wrapping_add(MAX_ACK_JUMP + 1), &mut stats, &mut sink);
        assert_eq!(text, "|cdef|");
        assert_eq!(stats.gaps_skipped, 2);
    }

    #[test]
    fn held_duplicate_not_held_twice() {
        let (text, stats) = run(Some(1), &[(3, "cd"), (3, "cd"), (1, "ab")], CAP);
        assert_eq!(text, "abcd");
        assert_eq!(stats.ooo_segments_held, 1);
    }
}
