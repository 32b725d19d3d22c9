//! Live dnstap: a unix socket that DNS servers connect to (BIND `dnstap-output
//! unix`, Unbound `dnstap-socket-path`, Knot, dnsdist...), Frame Streams
//! bidirectional on each connection, events out as a [`FrameSource`].
//!
//! ```text
//! listener thread (accepts; one reader thread per connection)
//! reader thread: READY -> ACCEPT, START, data frames -> input::dnstap -> try_send
//!      --(bounded channel of InputEvent: full = dropped and counted)-->
//! DnstapLive::pull (the one frame loop, run::drive)
//! ```
//!
//! The DNS server never waits on mxwatch: a reader thread takes every frame
//! as fast as the socket gives it and drops (and counts) events when the
//! engine is behind. Several servers may connect at once; each connection has
//! its counters (`inputs` in capture_stats). On STOP every connection is shut
//! down, the socket file removed; the servers reconnect to the next mxwatch
//! (BIND retries every `fstrm-set-reopen-interval`, 5 s by default).

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crossbeam_channel::{Receiver, RecvTimeoutError, Sender, TrySendError, bounded};

use super::CaptureError;
use super::source::{FrameSource, Pulled, wall_micros};
use crate::input::framestream::{self, ControlKind, DNSTAP_CONTENT_TYPE, Frame};
use crate::input::{InputEvent, InputStats, Kind};

/// How often the loop gives the clock when no message comes (as live capture).
const POLL: Duration = Duration::from_millis(100);
/// How far behind the wall clock the quiet-socket clock runs: a DNS server
/// buffers dnstap messages before writing them (BIND/fstrm flush at least
/// every second, `fstrm-set-flush-timeout`), then they wait in our queue.
pub const DNSTAP_CLOCK_LAG_MICROS: i64 = 2_000_000;
/// Connections served at once; more are refused (closed at once, counted).
pub const MAX_CONNECTIONS: usize = 64;

type Shared = Arc<Mutex<Vec<InputStats>>>;

pub struct DnstapLive {
    pub path: PathBuf,
    rx: Receiver<InputEvent>,
    stats: Shared,
    streams: Arc<Mutex<Vec<UnixStream>>>,
    listener: Option<JoinHandle<()>>,
    stop: &'static AtomicBool,
    last_idle: Instant,
}

/// `unix:/path` -> the path.
pub fn socket_path(spec: &str) -> Result<PathBuf, CaptureError> {
    spec.strip_prefix("unix:")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .ok_or_else(|| CaptureError::Input(format!("--dnstap {spec:?}: want unix:/PATH")))
}

impl DnstapLive {
    /// Binds the socket (a stale socket file at `path` is replaced) and
    /// starts accepting; `queue` events fit between readers and the loop.
    pub fn start(
        path: &Path,
        queue: usize,
        stop: &'static AtomicBool,
    ) -> Result<Self, CaptureError> {
        let err =
            |msg: String| CaptureError::Input(format!("dnstap socket {}: {msg}", path.display()));
        if let Ok(m) = std::fs::symlink_metadata(path) {
            if !m.file_type().is_socket() {
                return Err(err("exists and is not a socket".into()));
            }
            std::fs::remove_file(path).map_err(|e| err(e.to_string()))?;
        }
        let listener = UnixListener::bind(path).map_err(|e| err(e.to_string()))?;
        listener
            .set_nonblocking(true)
            .map_err(|e| err(e.to_string()))?;
        let (tx, rx) = bounded::<InputEvent>(queue.max(1));
        let stats: Shared = Arc::default();
        let streams: Arc<Mutex<Vec<UnixStream>>> = Arc::default();
        let (s2, st2, p2) = (stats.clone(), streams.clone(), path.to_owned());
        let handle = std::thread::Builder::new()
            .name("mxwatch-dnstap".into())
            .spawn(move || accept_loop(listener, tx, s2, st2, p2, stop))
            .map_err(|e| err(e.to_string()))?;
        Ok(DnstapLive {
            path: path.to_owned(),
            rx,
            stats,
            streams,
            listener: Some(handle),
            stop,
            last_idle: Instant::now(),
        })
    }

    /// Shuts every connection down, waits for the threads, removes the socket file.
    pub fn shutdown(&mut self) {
        if let Some(h) = self.listener.take() {
            let _ = h.join();
        }
        for s in lock(&self.streams).drain(..) {
            let _ = s.shutdown(std::net::Shutdown::Both);
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|p| p.into_inner())
}

fn accept_loop(
    listener: UnixListener,
    tx: Sender<InputEvent>,
    stats: Shared,
    streams: Arc<Mutex<Vec<UnixStream>>>,
    path: PathBuf,
    stop: &'static AtomicBool,
) {
    let mut readers: Vec<JoinHandle<()>> = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        match listener.accept() {
            Ok((stream, _)) => {
                readers.retain(|h| !h.is_finished());
                if readers.len() >= MAX_CONNECTIONS {
                    tracing::warn!("dnstap: {MAX_CONNECTIONS} connections already; refusing one");
                    continue;
                }
                let _ = stream.set_nonblocking(false);
                n += 1;
                let i = {
                    let mut s = lock(&stats);
                    s.push(InputStats {
                        kind: Some(Kind::Dnstap),
                        path: format!("unix:{}#{n}", path.display()),
                        dropped: Some(0),
                        ..InputStats::default()
                    });
                    s.len() - 1
                };
                if let Ok(c) = stream.try_clone() {
                    lock(&streams).push(c);
                }
                let (tx, stats) = (tx.clone(), stats.clone());
                if let Ok(h) = std::thread::Builder::new()
                    .name(format!("mxwatch-dnstap-{n}"))
                    .spawn(move || serve(stream, tx, stats, i))
                {
                    readers.push(h);
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => std::thread::sleep(POLL),
            Err(e) => {
                tracing::warn!("dnstap: accept: {e}");
                std::thread::sleep(POLL);
            }
        }
    }
    for s in lock(&streams).iter() {
        let _ = s.shutdown(std::net::Shutdown::Both);
    }
    for h in readers {
        let _ = h.join();
    }
}

/// One connection: handshake, then frames until STOP or the end.
fn serve(stream: UnixStream, tx: Sender<InputEvent>, stats: Shared, i: usize) {
    let Ok(mut out) = stream.try_clone() else {
        return;
    };
    let mut r = framestream::Reader::new(std::io::BufReader::new(stream));
    let mut pending: Vec<InputEvent> = Vec::new();
    let mut local = InputStats::default();
    loop {
        let frame = match r.next_frame() {
            Ok(Some(f)) => f,
            Ok(None) => break,
            Err(e) => {
                tracing::info!("dnstap connection {i}: {e}");
                break;
            }
        };
        match frame {
            Frame::Control(c) => match c.kind {
                ControlKind::Ready => {
                    let ok = c.content_types.is_empty()
                        || c.content_types.iter().any(|t| t == DNSTAP_CONTENT_TYPE);
                    if !ok {
                        tracing::warn!("dnstap connection {i}: no dnstap content type offered");
                        break;
                    }
                    let accept =
                        framestream::control_frame(ControlKind::Accept, Some(DNSTAP_CONTENT_TYPE));
                    if out.write_all(&accept).is_err() {
                        break;
                    }
                }
                ControlKind::Stop => {
                    let _ = out.write_all(&framestream::control_frame(ControlKind::Finish, None));
                    break;
                }
                _ => {}
            },
            Frame::Data(d) => {
                if let Some(ev) = crate::input::dnstap_event(d, &mut local) {
                    pending.push(ev);
                }
            }
        }
        // Hand over without waiting; a full queue drops (counted).
        for ev in pending.drain(..) {
            match tx.try_send(ev) {
                Ok(()) => {}
                Err(TrySendError::Full(_)) => *local.dropped.get_or_insert(0) += 1,
                Err(TrySendError::Disconnected(_)) => return,
            }
        }
        publish(&stats, i, &mut local);
    }
    publish(&stats, i, &mut local);
}

/// Adds a connection's counters since the last call to the shared ones.
fn publish(stats: &Shared, i: usize, local: &mut InputStats) {
    let mut s = lock(stats);
    let Some(t) = s.get_mut(i) else { return };
    t.records += local.records;
    t.recognised += local.recognised;
    t.events += local.events;
    t.ignored += local.ignored;
    for (k, v) in &local.malformed {
        *t.malformed.entry(k).or_insert(0) += v;
    }
    *t.dropped.get_or_insert(0) += local.dropped.unwrap_or(0);
    *local = InputStats::default();
}

impl FrameSource for DnstapLive {
    fn pull(&mut self) -> Result<Pulled<'_>, CaptureError> {
        if self.last_idle.elapsed() >= POLL {
            self.last_idle = Instant::now();
            return Ok(Pulled::Idle {
                now: wall_micros() - DNSTAP_CLOCK_LAG_MICROS,
            });
        }
        if self.stop.load(Ordering::Relaxed) {
            // Take what the readers already queued, then end.
            return Ok(match self.rx.try_recv() {
                Ok(ev) => Pulled::Event(ev),
                Err(_) => {
                    self.shutdown();
                    Pulled::End
                }
            });
        }
        match self.rx.recv_timeout(POLL) {
            Ok(ev) => Ok(Pulled::Event(ev)),
            Err(RecvTimeoutError::Timeout) => Ok(Pulled::Skip),
            Err(RecvTimeoutError::Disconnected) => Ok(Pulled::End),
        }
    }

    fn current(&self) -> Option<&Path> {
        Some(&self.path)
    }

    fn input_stats(&self) -> Vec<InputStats> {
        lock(&self.stats).clone()
    }
}

impl Drop for DnstapLive {
    fn drop(&mut self) {
        self.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::dnstap::encode;

    static STOP_TEST: AtomicBool = AtomicBool::new(false);

    /// Nobody pulls (the engine is stuck): the sender still writes every
    /// frame and gets its FINISH at once, and the overflow is counted.
    #[test]
    fn a_stuck_engine_never_blocks_the_sender_and_drops_are_counted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.sock");
        let mut live = DnstapLive::start(&path, 4, &STOP_TEST).unwrap();
        let mut s = UnixStream::connect(&path).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(&framestream::control_frame(
            ControlKind::Ready,
            Some(DNSTAP_CONTENT_TYPE),
        ))
        .unwrap();
        let mut r = framestream::Reader::new(s.try_clone().unwrap());
        assert!(
            matches!(r.next_frame().unwrap(), Some(Frame::Control(c)) if c.kind == ControlKind::Accept)
        );
        s.write_all(&framestream::control_frame(
            ControlKind::Start,
            Some(DNSTAP_CONTENT_TYPE),
        ))
        .unwrap();
        let (c, srv) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let t0 = Instant::now();
        for i in 0..1000 {
            let f = encode(5, c, 1000 + i as u16, srv, false, 1_000_000 * i, b"\0\x01");
            s.write_all(&framestream::data_frame(&f)).unwrap();
        }
        s.write_all(&framestream::control_frame(ControlKind::Stop, None))
            .unwrap();
        assert!(
            matches!(r.next_frame().unwrap(), Some(Frame::Control(c)) if c.kind == ControlKind::Finish)
        );
        assert!(t0.elapsed() < Duration::from_secs(5));
        let st = FrameSource::input_stats(&live);
        assert_eq!(st.len(), 1);
        assert_eq!((st[0].records, st[0].events), (1000, 1000));
        assert_eq!(st[0].dropped, Some(1000 - 4));
        STOP_TEST.store(true, Ordering::SeqCst);
        live.shutdown();
        assert!(!path.exists());
    }
}
