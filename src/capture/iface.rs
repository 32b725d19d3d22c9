//! One live interface: a libpcap handle and the capture thread that reads it.
//!
//! Input: packets from the kernel (libpcap, non-blocking, woken by `poll`).
//! Output: [`FrameBatch`]es (frames copied out of libpcap's ring) on a
//! bounded channel to the decoder thread, and [`IfaceCounters`] shared with
//! it. Invariants:
//!
//! - The capture thread never waits for the decoder: a full channel drops the
//!   whole batch and counts it (`dropped_batches`, `dropped_frames`), with a
//!   rate-limited warning. Every frame read is either handed over or counted.
//! - It never waits for the wire either: `poll` times out every
//!   [`POLL_MS`], so a stop request is seen within that time even when no
//!   packet arrives (FACTS: a blocking read on Linux can wait forever).
//! - On stop it closes the socket's filter to every new packet, reads the
//!   ring dry and hands what it read over *blocking* (the decoder is still
//!   draining, nothing is lost at exit), then takes libpcap's final counters;
//!   until they account for every packet read (received = read + dropped),
//!   it waits for the kernel to hand over its partly filled block (it does
//!   after `POLL_MS`) and reads again, for at most `DRAIN_AT_STOP`. Taking
//!   the counters after one read of the ring left out the packets of that
//!   block: counted by the kernel, never read (#12).
//!
//! Several capture threads on one interface (`live --threads N`,
//! [`LiveSource::open_fanout`]): N handles joined in one AF_PACKET fanout
//! group, so that the kernel hands each packet to exactly one of them.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, Sender, TrySendError};

use super::{CaptureError, Frame};
use crate::decode::link::LinkType;

/// Longest wait in `poll` (and libpcap's buffer timeout): bounds the delay
/// of a stop request and of packets on a slow wire.
pub const POLL_MS: i32 = 100;
/// Frames per batch handed to the decoder thread.
pub const BATCH_FRAMES: usize = 256;
/// How often libpcap's counters are read into [`IfaceCounters`].
const STATS_EVERY: Duration = Duration::from_millis(200);
/// Longest time spent reading what is left in the ring at stop.
const DRAIN_AT_STOP: Duration = Duration::from_secs(1);

/// How to open an interface (from `mxwatch live` flags).
#[derive(Debug, Clone)]
pub struct LiveOptions {
    pub snaplen: i32,
    pub buffer_size: i32,
    pub promisc: bool,
    pub filter: String,
    /// The filter is mxwatch's default: where the link type cannot match
    /// VLAN tags (`-i any`), fall back to the plain one and say so once.
    pub default_filter: bool,
}

/// Frames copied out of libpcap, one interface's, in arrival order.
pub struct FrameBatch {
    pub iface: usize,
    data: Vec<u8>,
    frames: Vec<FrameRec>,
}

struct FrameRec {
    ts: i64,
    wire_len: u32,
    start: usize,
    len: usize,
}

impl FrameBatch {
    pub fn new(iface: usize) -> Self {
        FrameBatch {
            iface,
            data: Vec::with_capacity(BATCH_FRAMES * 256),
            frames: Vec::with_capacity(BATCH_FRAMES),
        }
    }

    fn push(&mut self, ts: i64, wire_len: u32, data: &[u8]) {
        let start = self.data.len();
        self.data.extend_from_slice(data);
        self.frames.push(FrameRec {
            ts,
            wire_len,
            start,
            len: data.len(),
        });
    }

    pub fn len(&self) -> usize {
        self.frames.len()
    }

    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    pub fn clear(&mut self) {
        self.data.clear();
        self.frames.clear();
    }

    /// Frame `i` of the batch (`i < len()`).
    pub fn frame(&self, i: usize) -> Frame<'_> {
        let f = &self.frames[i];
        Frame {
            ts: f.ts,
            wire_len: f.wire_len,
            data: &self.data[f.start..f.start + f.len],
        }
    }

    pub fn frames(&self) -> impl Iterator<Item = Frame<'_>> {
        self.frames.iter().map(|f| Frame {
            ts: f.ts,
            wire_len: f.wire_len,
            data: &self.data[f.start..f.start + f.len],
        })
    }
}

/// Counters of one interface, written by its capture thread, read by the
/// decoder thread for capture_stats lines. libpcap's are widened to 64 bits.
#[derive(Debug, Default)]
pub struct IfaceCounters {
    pub received: AtomicU64,
    pub dropped: AtomicU64,
    pub if_dropped: AtomicU64,
    /// Frames read from libpcap (handed over + dropped on a full channel).
    pub frames_read: AtomicU64,
    pub dropped_batches: AtomicU64,
    pub dropped_frames: AtomicU64,
    /// Why the capture thread stopped early, if it did.
    pub error: Mutex<Option<CaptureError>>,
}

/// An opened interface, not yet capturing.
pub struct LiveSource {
    name: String,
    cap: pcap::Capture<pcap::Active>,
    /// libpcap's counters when capture started (a fanout member's setup
    /// drained its ring): the totals count from there.
    baseline: Option<pcap::Stat>,
}

/// A filter no packet passes (`len <= 0`), for fanout members until every
/// one has joined the group.
const NOTHING: &str = "less 0";

impl LiveSource {
    pub fn open(name: &str, opts: &LiveOptions) -> Result<Self, CaptureError> {
        let mut cap = activate(name, opts)?;
        check_link(&cap, name)?;
        set_filter(&mut cap, name, opts, true)?;
        let cap = cap.setnonblock().map_err(live_err(name))?;
        Ok(LiveSource {
            name: name.to_owned(),
            cap,
            baseline: None,
        })
    }

    /// `n` handles on one interface in one new AF_PACKET fanout group
    /// (`PACKET_FANOUT_HASH`): the kernel hands every packet the filter
    /// passes to exactly one of them, chosen by the flow hash.
    ///
    /// Which packets go together (Linux `net/packet/af_packet.c`:
    /// `fanout_demux_hash` = `reciprocal_scale(__skb_get_hash_symmetric(skb),
    /// n)`; `net/core/flow_dissector.c`): the symmetric hash is over the
    /// addresses, the IP protocol and the ports, with source and destination
    /// put in a fixed order first (`__flow_hash_consistentify`), so both
    /// directions of a flow (a DNS query and its answer, an SMTP session) go
    /// to the same handle, and its decoder sees the whole TCP stream. It is
    /// *not* per client: one client's queries from different source ports
    /// spread over the handles (the classifiers, sharded by client, take
    /// them from every thread). The dissector reads no ports in an IP
    /// fragment (no `FLOW_DISSECTOR_F_PARSE_1ST_FRAG`), and none past a
    /// non-zero IPv6 flow label (`FLOW_DISSECTOR_F_STOP_AT_FLOW_LABEL`):
    /// those hash on addresses and protocol alone, so every fragment of a
    /// datagram reaches the same handle and is reassembled there (perhaps not
    /// the handle of the unfragmented query it answers: the pending-query
    /// table is per client, so the pair still meets, but within a bin its
    /// order is not kept). `PACKET_FANOUT_FLAG_DEFRAG` is not set: the kernel
    /// would hand over IPv4 datagrams reassembled, longer than the snaplen,
    /// where mxwatch reassembles them itself.
    ///
    /// The group id comes from the kernel (`PACKET_FANOUT_FLAG_UNIQUEID`,
    /// Linux 4.12+), so mxwatch never joins another program's group (a
    /// group id picked from the pid could, and would split that program's
    /// packets). Members filter nothing in until all have joined (a packet
    /// arriving while one handle is open but not in the group would be read
    /// twice), their rings are then emptied and libpcap's counters taken as
    /// the baseline, and only then is the real filter set: counting starts
    /// from there, with every packet read once.
    ///
    /// Fails with one line when the handle is not an AF_PACKET socket
    /// (nflog, nfqueue, usbmon, D-Bus, Bluetooth: libpcap's other live
    /// sources), or the kernel refuses the group. `any` works: its members
    /// are packet sockets bound to no device, and the group takes them.
    pub fn open_fanout(
        name: &str,
        opts: &LiveOptions,
        n: usize,
    ) -> Result<Vec<Self>, CaptureError> {
        let mut caps = Vec::with_capacity(n);
        let mut group = None;
        for _ in 0..n {
            let mut cap = activate(name, opts)?;
            check_link(&cap, name)?;
            cap.filter(NOTHING, true).map_err(live_err(name))?;
            let id = join_fanout(cap.as_raw_fd(), group).map_err(|msg| CaptureError::Live {
                iface: name.to_owned(),
                msg: format!("--threads {n}: {msg}"),
            })?;
            group = Some(id);
            caps.push(cap.setnonblock().map_err(live_err(name))?);
        }
        let mut out = Vec::with_capacity(n);
        for (k, mut cap) in caps.into_iter().enumerate() {
            // Empty the ring: what came in before every member joined.
            while cap.next_packet().is_ok() {}
            let baseline = cap.stats().ok();
            set_filter(&mut cap, name, opts, k == 0)?;
            out.push(LiveSource {
                name: name.to_owned(),
                cap,
                baseline,
            });
        }
        if let Some(id) = group {
            tracing::info!(
                iface = name,
                threads = n,
                group = id,
                "AF_PACKET fanout group joined"
            );
        }
        Ok(out)
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn link_type(&self) -> LinkType {
        LinkType::from(self.cap.get_datalink().0)
    }

    /// The capture thread's body: reads until `stop`, then drains and
    /// returns. Errors are stored in `counters.error` and set `stop`.
    pub fn run(
        mut self,
        iface: usize,
        tx: Sender<FrameBatch>,
        pool: Receiver<FrameBatch>,
        counters: Arc<IfaceCounters>,
        stop: &AtomicBool,
    ) {
        let mut reader = Reader {
            iface,
            tx,
            pool,
            counters,
            widen: Widen::from(self.baseline.as_ref()),
            drop_log: RateLog::default(),
            kernel_log: RateLog::default(),
        };
        let mut batch = reader.fresh();
        let mut stats_at = Instant::now();
        loop {
            if stop.load(Ordering::Relaxed) {
                self.drain_at_stop(&mut reader, batch, stop);
                return;
            }
            self.poll(POLL_MS);
            // Come back to poll (and the stop flag) now and then.
            let deadline = Instant::now() + Duration::from_millis(POLL_MS as u64);
            batch = match self.read_ring(&mut reader, batch, false, deadline) {
                Ok((b, _)) => b,
                Err(e) => return self.failed(&mut reader, e, stop),
            };
            if stats_at.elapsed() >= STATS_EVERY {
                stats_at = Instant::now();
                reader.stats(&mut self.cap);
            }
        }
    }

    /// Waits until the ring has a block to read, at most `ms`.
    fn poll(&self, ms: i32) {
        let mut pfd = libc::pollfd {
            fd: self.cap.as_raw_fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd; EINTR and timeouts just return.
        unsafe { libc::poll(&mut pfd, 1, ms) };
    }

    /// Reads what the ring holds (until it is empty, or past `deadline`)
    /// and hands it over (blocking when `stopping`); returns an empty batch
    /// and the number of frames read.
    fn read_ring(
        &mut self,
        reader: &mut Reader,
        mut batch: FrameBatch,
        stopping: bool,
        deadline: Instant,
    ) -> Result<(FrameBatch, usize), pcap::Error> {
        let mut n = 0usize;
        loop {
            match self.cap.next_packet() {
                Ok(p) => {
                    let ts = p.header.ts.tv_sec * 1_000_000 + p.header.ts.tv_usec;
                    batch.push(ts, p.header.len, p.data);
                    n += 1;
                    if batch.len() >= BATCH_FRAMES {
                        batch = reader.hand_over(batch, stopping);
                    }
                    if n & 0xfff == 0 && Instant::now() > deadline {
                        break;
                    }
                }
                // Non-blocking: nothing more in the ring.
                Err(pcap::Error::TimeoutExpired) => break,
                Err(e) => {
                    reader.hand_over(batch, true);
                    return Err(e);
                }
            }
        }
        if !batch.is_empty() {
            batch = reader.hand_over(batch, stopping);
        }
        Ok((batch, n))
    }

    /// At stop: no new packet passes the socket's filter, the ring is read
    /// dry, then libpcap's counters are taken, again after the kernel's
    /// block timeout until they account for every packet read. The kernel
    /// hands over a partly filled block at its second timer tick at the
    /// latest; when two waits of a tick bring nothing, nothing more will
    /// come (libpcap counts but skips some packets, e.g. those sent on `lo`).
    fn drain_at_stop(&mut self, reader: &mut Reader, mut batch: FrameBatch, stop: &AtomicBool) {
        let deadline = Instant::now() + DRAIN_AT_STOP;
        let closed = close_filter(self.cap.as_raw_fd());
        let mut empty_waits = 0;
        loop {
            let n;
            (batch, n) = match self.read_ring(reader, batch, true, deadline) {
                Ok(r) => r,
                Err(e) => return self.failed(reader, e, stop),
            };
            reader.stats(&mut self.cap);
            empty_waits = if n == 0 { empty_waits + 1 } else { 0 };
            if !closed || reader.all_read() || empty_waits > 2 || Instant::now() >= deadline {
                return;
            }
            self.poll(POLL_MS + 10);
        }
    }

    /// A read error: counters taken, the error stored, every thread told to stop.
    fn failed(&mut self, reader: &mut Reader, e: pcap::Error, stop: &AtomicBool) {
        reader.stats(&mut self.cap);
        *reader
            .counters
            .error
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(CaptureError::Live {
            iface: self.name.clone(),
            msg: e.to_string(),
        });
        stop.store(true, Ordering::Relaxed);
    }
}

/// Replaces the socket's filter with one that takes no packet (a classic
/// BPF `ret #0`, attached behind libpcap's back: libpcap would filter the
/// packets already in the ring again). False where that is not possible.
#[cfg(target_os = "linux")]
fn close_filter(fd: std::os::fd::RawFd) -> bool {
    let mut insn = [libc::sock_filter {
        code: 0x06, // BPF_RET | BPF_K
        jt: 0,
        jf: 0,
        k: 0,
    }];
    let prog = libc::sock_fprog {
        len: 1,
        filter: insn.as_mut_ptr(),
    };
    // SAFETY: a valid sock_fprog that outlives the call; the kernel copies it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&prog as *const libc::sock_fprog).cast(),
            std::mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    };
    rc == 0
}

#[cfg(not(target_os = "linux"))]
fn close_filter(_fd: std::os::fd::RawFd) -> bool {
    false
}

fn live_err(name: &str) -> impl Fn(pcap::Error) -> CaptureError + '_ {
    move |e| CaptureError::Live {
        iface: name.to_owned(),
        msg: e.to_string(),
    }
}

/// An activated handle, blocking, no filter yet.
fn activate(name: &str, opts: &LiveOptions) -> Result<pcap::Capture<pcap::Active>, CaptureError> {
    // FACTS: immediate mode dropped packets at ~190 kpps; buffered mode
    // with a short timeout did not.
    pcap::Capture::from_device(name)
        .map_err(live_err(name))?
        .promisc(opts.promisc)
        .snaplen(opts.snaplen)
        .buffer_size(opts.buffer_size)
        .timeout(POLL_MS)
        .immediate_mode(false)
        .open()
        .map_err(live_err(name))
}

/// Refuses an interface whose link type mxwatch does not decode (#13).
fn check_link(cap: &pcap::Capture<pcap::Active>, name: &str) -> Result<(), CaptureError> {
    let dlt = cap.get_datalink().0;
    if LinkType::from(dlt).is_supported() {
        return Ok(());
    }
    Err(CaptureError::Live {
        iface: name.to_owned(),
        msg: super::unsupported_link(dlt),
    })
}

/// The capture filter; mxwatch's default falls back to the plain one where
/// the link type cannot match VLAN tags (said on stderr when `say`).
fn set_filter(
    cap: &mut pcap::Capture<pcap::Active>,
    name: &str,
    opts: &LiveOptions,
    say: bool,
) -> Result<(), CaptureError> {
    if let Err(e) = cap.filter(&opts.filter, true) {
        let plain = super::plain_filter(super::DNS_SMTP_PORTS);
        if !opts.default_filter || cap.filter(&plain, true).is_err() {
            return Err(CaptureError::Filter {
                filter: opts.filter.clone(),
                msg: e.to_string(),
            });
        }
        if say {
            eprintln!(
                "mxwatch: interface {name}: its link type cannot match VLAN tags; capturing with the plain default filter {plain:?}"
            );
        }
    }
    Ok(())
}

/// Joins the packet socket `fd` to fanout group `group`, or to a new group
/// with an id the kernel picks (`None`); returns the group id.
fn join_fanout(fd: std::os::fd::RawFd, group: Option<u16>) -> Result<u16, String> {
    let mut domain: libc::c_int = 0;
    let mut len = std::mem::size_of::<libc::c_int>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `domain`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_DOMAIN,
            (&raw mut domain).cast(),
            &raw mut len,
        )
    };
    if rc != 0 || domain != libc::AF_PACKET {
        return Err(
            "several capture threads need a Linux packet socket (AF_PACKET fanout), and libpcap does not capture this interface with one: use --threads 1"
                .into(),
        );
    }
    let mode = libc::PACKET_FANOUT_HASH
        | match group {
            None => libc::PACKET_FANOUT_FLAG_UNIQUEID,
            Some(_) => 0,
        };
    let arg: u32 = u32::from(group.unwrap_or(0)) | (mode << 16);
    // SAFETY: a 4-byte option value, as PACKET_FANOUT takes.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            (&raw const arg).cast(),
            std::mem::size_of::<u32>() as libc::socklen_t,
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot join an AF_PACKET fanout group: {}",
            std::io::Error::last_os_error()
        ));
    }
    if let Some(id) = group {
        return Ok(id);
    }
    let mut val: u32 = 0;
    let mut len = std::mem::size_of::<u32>() as libc::socklen_t;
    // SAFETY: getsockopt writes at most `len` bytes into `val`.
    let rc = unsafe {
        libc::getsockopt(
            fd,
            libc::SOL_PACKET,
            libc::PACKET_FANOUT,
            (&raw mut val).cast(),
            &raw mut len,
        )
    };
    if rc != 0 {
        return Err(format!(
            "cannot read the AF_PACKET fanout group id: {}",
            std::io::Error::last_os_error()
        ));
    }
    Ok((val & 0xffff) as u16)
}

struct Reader {
    iface: usize,
    tx: Sender<FrameBatch>,
    pool: Receiver<FrameBatch>,
    counters: Arc<IfaceCounters>,
    widen: Widen,
    drop_log: RateLog,
    kernel_log: RateLog,
}

impl Reader {
    fn fresh(&self) -> FrameBatch {
        match self.pool.try_recv() {
            Ok(mut b) => {
                b.iface = self.iface;
                b.clear();
                b
            }
            Err(_) => FrameBatch::new(self.iface),
        }
    }

    /// Sends `batch` (blocking only when stopping) and returns an empty one.
    fn hand_over(&mut self, mut batch: FrameBatch, blocking: bool) -> FrameBatch {
        let c = &self.counters;
        let frames = batch.len() as u64;
        c.frames_read.fetch_add(frames, Ordering::Relaxed);
        let sent = if blocking {
            self.tx.send(batch).map_err(|e| e.into_inner())
        } else {
            match self.tx.try_send(batch) {
                Ok(()) => Ok(()),
                Err(TrySendError::Full(b)) => {
                    c.dropped_batches.fetch_add(1, Ordering::Relaxed);
                    c.dropped_frames.fetch_add(frames, Ordering::Relaxed);
                    if let Some((batches, frames)) = self.drop_log.add(1, frames) {
                        tracing::warn!(target: "mxwatch::drops", iface = self.iface, batches, frames,
                            "decoder queue full: frame batches dropped since the last warning");
                    }
                    Err(b)
                }
                Err(TrySendError::Disconnected(b)) => Err(b),
            }
        };
        match sent {
            Ok(()) => self.fresh(),
            Err(b) => {
                batch = b;
                batch.clear();
                batch
            }
        }
    }

    /// libpcap's counters (as last taken) account for every frame read:
    /// received = read + dropped by the kernel.
    fn all_read(&self) -> bool {
        let c = &self.counters;
        c.received.load(Ordering::Relaxed)
            == c.frames_read.load(Ordering::Relaxed) + c.dropped.load(Ordering::Relaxed)
    }

    fn stats(&mut self, cap: &mut pcap::Capture<pcap::Active>) {
        let Ok(s) = cap.stats() else { return };
        let (recv, drop, ifdrop) = self.widen.update(&s);
        let c = &self.counters;
        c.received.store(recv, Ordering::Relaxed);
        let old_drop = c.dropped.swap(drop, Ordering::Relaxed);
        let old_ifdrop = c.if_dropped.swap(ifdrop, Ordering::Relaxed);
        if (drop > old_drop || ifdrop > old_ifdrop)
            && let Some((dropped, if_dropped)) =
                self.kernel_log.add(drop - old_drop, ifdrop - old_ifdrop)
        {
            tracing::warn!(target: "mxwatch::drops", iface = self.iface, dropped, if_dropped,
                "libpcap reports packets dropped (kernel buffer, interface) since the last warning");
        }
    }
}

/// libpcap's counters are 32-bit and wrap: keep 64-bit totals.
#[derive(Default)]
struct Widen {
    last: [u32; 3],
    total: [u64; 3],
}

impl Widen {
    /// Totals counted from `baseline` (libpcap's counters then), or from zero.
    fn from(baseline: Option<&pcap::Stat>) -> Self {
        let mut w = Widen::default();
        if let Some(s) = baseline {
            w.last = [s.received, s.dropped, s.if_dropped];
        }
        w
    }

    fn update(&mut self, s: &pcap::Stat) -> (u64, u64, u64) {
        for (i, v) in [s.received, s.dropped, s.if_dropped]
            .into_iter()
            .enumerate()
        {
            self.total[i] += u64::from(v.wrapping_sub(self.last[i]));
            self.last[i] = v;
        }
        (self.total[0], self.total[1], self.total[2])
    }
}

/// At most one warning a second, carrying the sums since the last one.
#[derive(Default)]
pub struct RateLog {
    last: Option<Instant>,
    sums: (u64, u64),
}

impl RateLog {
    /// Adds to the sums; returns them when a warning is due.
    pub fn add(&mut self, a: u64, b: u64) -> Option<(u64, u64)> {
        self.sums.0 += a;
        self.sums.1 += b;
        let now = Instant::now();
        if self
            .last
            .is_some_and(|l| now.duration_since(l) < Duration::from_secs(1))
        {
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.sums))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn widen_survives_a_wrap() {
        let mut w = Widen::default();
        let stat = |r| pcap::Stat {
            received: r,
            dropped: 0,
            if_dropped: 0,
        };
        assert_eq!(w.update(&stat(u32::MAX - 1)).0, u64::from(u32::MAX - 1));
        assert_eq!(w.update(&stat(3)).0, u64::from(u32::MAX) + 4);
    }

    #[test]
    fn rate_log_sums_between_warnings() {
        let mut l = RateLog::default();
        assert_eq!(l.add(1, 10), Some((1, 10)));
        assert_eq!(l.add(2, 20), None);
        assert_eq!(l.add(3, 30), None);
        l.last = Some(Instant::now() - Duration::from_secs(2));
        assert_eq!(l.add(0, 1), Some((5, 51)));
    }

    #[test]
    fn batch_keeps_frames_apart() {
        let mut b = FrameBatch::new(1);
        b.push(5, 10, b"abc");
        b.push(6, 2, b"de");
        let f: Vec<_> = b
            .frames()
            .map(|f| (f.ts, f.wire_len, f.data.to_vec()))
            .collect();
        assert_eq!(f, vec![(5, 10, b"abc".to_vec()), (6, 2, b"de".to_vec())]);
    }
}
