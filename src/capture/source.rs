//! One frame-source loop behind one trait: files read in turn, files merged
//! by packet time, live interfaces. Later inputs (dnstap, logs) plug in here.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, bounded};

use super::iface::{FrameBatch, IfaceCounters, LiveSource, POLL_MS};
use super::{CaptureError, FileSource, Frame};
use crate::decode::link::LinkType;
use crate::input::{InputEvent, InputFile, InputStats, Kind, LogSettings};

/// What a source gives next.
pub enum Pulled<'a> {
    /// A frame of source number `source` (an interface keeps its own decoder).
    Frame {
        source: usize,
        link: LinkType,
        frame: Frame<'a>,
    },
    /// An event of an input that is not frames (dnstap, a log): already
    /// decoded, it goes straight to the engine's back end with its time.
    Event(InputEvent),
    /// Nothing arrived; packet time is at least `now` (a quiet wire's clock).
    Idle { now: i64 },
    /// Nothing this time (a file ended, a queue was empty): pull again.
    Skip,
    /// No more frames.
    End,
}

pub trait FrameSource {
    fn pull(&mut self) -> Result<Pulled<'_>, CaptureError>;
    /// What is being read now, for a progress line.
    fn current(&self) -> Option<&Path> {
        None
    }
    /// Counters of the non-frame inputs (capture_stats `inputs`).
    fn input_stats(&self) -> Vec<InputStats> {
        Vec::new()
    }
}

/// Capture files read one after another (one decoder: source 0). As with
/// [`Merged`], a file that cannot be read (or is of a link type the decoder
/// does not read, or is cut mid-record) is reported after the others are
/// read; a bad filter at once.
pub struct Files {
    paths: Vec<PathBuf>,
    filter: Option<String>,
    next: usize,
    open: Option<FileSource>,
    deferred: Option<CaptureError>,
}

impl Files {
    pub fn new(paths: &[PathBuf], filter: Option<&str>) -> Self {
        Files {
            paths: paths.to_vec(),
            filter: filter.map(str::to_owned),
            next: 0,
            open: None,
            deferred: None,
        }
    }
}

impl FrameSource for Files {
    fn pull(&mut self) -> Result<Pulled<'_>, CaptureError> {
        if self.open.as_ref().is_none_or(FileSource::at_end) {
            self.open = None;
            let Some(p) = self.paths.get(self.next) else {
                return match self.deferred.take() {
                    Some(e) => Err(e),
                    None => Ok(Pulled::End),
                };
            };
            self.next += 1;
            match FileSource::open(p, self.filter.as_deref()) {
                Ok(f) => self.open = Some(f),
                Err(e @ CaptureError::Filter { .. }) => return Err(e),
                Err(e) => {
                    self.deferred.get_or_insert(e);
                    return Ok(Pulled::Skip);
                }
            }
        }
        let src = self.open.as_mut().expect("opened");
        let link = src.link_type();
        match src.next_frame() {
            Ok(Some(frame)) => Ok(Pulled::Frame {
                source: 0,
                link,
                frame,
            }),
            Ok(None) => Ok(Pulled::Skip),
            Err(e) => {
                // Cut (the file is at its end now): the next file goes on,
                // the error comes at the end.
                self.deferred.get_or_insert(e);
                Ok(Pulled::Skip)
            }
        }
    }

    fn current(&self) -> Option<&Path> {
        self.open.as_ref().map(FileSource::path)
    }
}

/// Capture files and non-frame inputs (dnstap files, logs) merged by time
/// (ties: capture files first, then inputs, each in the order given); all
/// are opened at the start. A capture that cannot be opened, or that is cut
/// mid-record, is reported after the others are read (nothing they hold is
/// lost); a bad filter at once.
pub struct Merged {
    heads: Vec<Head>,
    inputs: Vec<InputHead>,
    last: Option<Last>,
    buf: Vec<u8>,
    deferred: Option<CaptureError>,
}

#[derive(Clone, Copy)]
enum Last {
    Pcap(usize),
    Input(usize),
}

/// A non-frame input and its next event.
struct InputHead {
    file: InputFile,
    next: Option<InputEvent>,
}

/// A file and its next frame, copied out of libpcap's buffer.
struct Head {
    src: FileSource,
    next: Option<(i64, u32, Vec<u8>)>,
}

impl Head {
    fn pull(&mut self) -> Result<(), CaptureError> {
        let mut spare = self.next.take().map(|n| n.2).unwrap_or_default();
        self.next = match self.src.next_frame()? {
            Some(f) => {
                spare.clear();
                spare.extend_from_slice(f.data);
                Some((f.ts, f.wire_len, spare))
            }
            None => None,
        };
        Ok(())
    }
}

impl Merged {
    pub fn open(paths: &[PathBuf], filter: Option<&str>) -> Result<Self, CaptureError> {
        Self::open_with(paths, &[], None, filter)
    }

    pub fn open_with(
        paths: &[PathBuf],
        inputs: &[(Kind, PathBuf)],
        settings: Option<&LogSettings>,
        filter: Option<&str>,
    ) -> Result<Self, CaptureError> {
        let mut heads = Vec::new();
        let mut deferred = None;
        for p in paths {
            let src = match FileSource::open(p, filter) {
                Ok(s) => s,
                // A bad filter is bad for every file: say so at once.
                Err(e @ CaptureError::Filter { .. }) => return Err(e),
                Err(e) => {
                    deferred.get_or_insert(e);
                    continue;
                }
            };
            let mut h = Head { src, next: None };
            if let Err(e) = h.pull() {
                deferred.get_or_insert(e);
                continue;
            }
            heads.push(h);
        }
        let default = LogSettings {
            year: None,
            servers: Default::default(),
        };
        let settings = settings.unwrap_or(&default);
        let mut heads_in = Vec::new();
        for (kind, p) in inputs {
            let mut file = InputFile::open(*kind, p, settings)?;
            let next = file.next_event()?;
            heads_in.push(InputHead { file, next });
        }
        if heads.is_empty()
            && heads_in.is_empty()
            && let Some(e) = deferred
        {
            return Err(e);
        }
        Ok(Merged {
            heads,
            inputs: heads_in,
            last: None,
            buf: Vec::new(),
            deferred,
        })
    }
}

impl FrameSource for Merged {
    fn pull(&mut self) -> Result<Pulled<'_>, CaptureError> {
        let pcap = self
            .heads
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.next.as_ref().map(|f| (f.0, i)))
            .min();
        let input = self
            .inputs
            .iter()
            .enumerate()
            .filter_map(|(i, h)| h.next.as_ref().map(|e| (e.ts(), i)))
            .min();
        let i = match (pcap, input) {
            (None, None) => {
                return match self.deferred.take() {
                    Some(e) => Err(e),
                    None => Ok(Pulled::End),
                };
            }
            (Some((t, _)), Some((u, j))) if u < t => Err(j),
            (None, Some((_, j))) => Err(j),
            (Some((_, i)), _) => Ok(i),
        };
        let i = match i {
            Ok(i) => i,
            Err(j) => {
                let h = &mut self.inputs[j];
                let ev = h.next.take().expect("present");
                h.next = h.file.next_event()?;
                self.last = Some(Last::Input(j));
                return Ok(Pulled::Event(ev));
            }
        };
        let h = &mut self.heads[i];
        let (ts, wire_len, data) = h.next.take().expect("present");
        let link = h.src.link_type();
        // Keep this frame's bytes while the head reads its next one into
        // the previous frame's buffer (no allocation per frame).
        let spare = std::mem::replace(&mut self.buf, data);
        h.next = Some((0, 0, spare));
        if let Err(e) = h.pull() {
            // The file is cut: the others go on, the error comes at the end.
            h.next = None;
            self.deferred.get_or_insert(e);
        }
        self.last = Some(Last::Pcap(i));
        Ok(Pulled::Frame {
            source: 0,
            link,
            frame: Frame {
                ts,
                wire_len,
                data: &self.buf,
            },
        })
    }

    fn current(&self) -> Option<&Path> {
        self.last.map(|l| match l {
            Last::Pcap(i) => self.heads[i].src.path(),
            Last::Input(j) => self.inputs[j].file.path(),
        })
    }

    fn input_stats(&self) -> Vec<InputStats> {
        self.inputs.iter().map(|h| h.file.stats.clone()).collect()
    }
}

/// How far behind the wall clock a quiet wire's clock runs: packets wait
/// up to `POLL_MS` in libpcap's buffer, then in the decoder's queue.
pub const CLOCK_LAG_MICROS: i64 = 500_000;

/// Live interfaces: a capture thread per interface copies frames out of
/// libpcap into batches; `pull` hands them out in arrival order, and the
/// wall clock (minus [`CLOCK_LAG_MICROS`]) at least every `POLL_MS` so that
/// bins close on a quiet wire. Source number = interface index.
///
/// With `live --threads N` there are N of these, one per lane: lane k holds
/// the k-th fanout member of every interface and feeds a front of its own.
pub struct Interfaces {
    pub names: Vec<String>,
    links: Vec<LinkType>,
    pub counters: Vec<Arc<IfaceCounters>>,
    threads: Vec<JoinHandle<()>>,
    rx: Receiver<FrameBatch>,
    pool: Sender<FrameBatch>,
    batch: Option<FrameBatch>,
    pos: usize,
    last_idle: Instant,
}

impl Interfaces {
    /// Starts a capture thread per source (of lane `lane`); `queue` batches
    /// fit between the capture threads and the caller (a full queue drops
    /// and counts).
    pub fn start(
        sources: Vec<LiveSource>,
        lane: usize,
        queue: usize,
        stop: &'static AtomicBool,
    ) -> Result<Self, CaptureError> {
        let (tx, rx) = bounded::<FrameBatch>(queue);
        let (pool_tx, pool_rx) = bounded::<FrameBatch>(queue + 2 * sources.len());
        let mut me = Interfaces {
            names: Vec::new(),
            links: Vec::new(),
            counters: Vec::new(),
            threads: Vec::new(),
            rx,
            pool: pool_tx,
            batch: None,
            pos: 0,
            last_idle: Instant::now(),
        };
        for (i, src) in sources.into_iter().enumerate() {
            let counters = Arc::new(IfaceCounters::default());
            let (tx, pool, c) = (tx.clone(), pool_rx.clone(), counters.clone());
            let name = src.name().to_owned();
            me.links.push(src.link_type());
            let thread = std::thread::Builder::new()
                .name(if lane == 0 {
                    format!("mxwatch-cap-{name}")
                } else {
                    format!("mxwatch-cap-{name}-{lane}")
                })
                .spawn(move || src.run(i, tx, pool, c, stop))
                .map_err(|e| CaptureError::Live {
                    iface: name.clone(),
                    msg: format!("cannot start its capture thread: {e}"),
                })?;
            me.names.push(name);
            me.counters.push(counters);
            me.threads.push(thread);
        }
        Ok(me)
    }

    /// Waits for the capture threads (after STOP); returns the first error
    /// an interface stored.
    pub fn join(&mut self) -> Result<(), CaptureError> {
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        for c in &self.counters {
            let err = c.error.lock().unwrap_or_else(|p| p.into_inner()).take();
            if let Some(e) = err {
                return Err(e);
            }
        }
        Ok(())
    }
}

/// Wall-clock microseconds since the epoch (live sources only).
pub fn wall_micros() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_micros() as i64)
        .unwrap_or(0)
}

impl FrameSource for Interfaces {
    fn pull(&mut self) -> Result<Pulled<'_>, CaptureError> {
        let poll = Duration::from_millis(POLL_MS as u64);
        if self.last_idle.elapsed() >= poll {
            self.last_idle = Instant::now();
            return Ok(Pulled::Idle {
                now: wall_micros() - CLOCK_LAG_MICROS,
            });
        }
        if self.batch.as_ref().is_none_or(|b| self.pos >= b.len()) {
            if let Some(mut done) = self.batch.take() {
                done.clear();
                let _ = self.pool.try_send(done);
            }
            match self.rx.recv_timeout(poll) {
                Ok(b) => {
                    self.batch = Some(b);
                    self.pos = 0;
                }
                Err(RecvTimeoutError::Timeout) => return Ok(Pulled::Skip),
                Err(RecvTimeoutError::Disconnected) => return Ok(Pulled::End),
            }
            if self.batch.as_ref().is_some_and(FrameBatch::is_empty) {
                return Ok(Pulled::Skip);
            }
        }
        let i = self.pos;
        self.pos += 1;
        let b = self.batch.as_ref().expect("a batch with frames");
        Ok(Pulled::Frame {
            source: b.iface,
            link: self.links[b.iface],
            frame: b.frame(i),
        })
    }
}
