//! The unix-socket output, for a local forwarder (Vector, Fluent Bit,
//! rsyslog's imuxsock/omuxsock, a script): `unix:///PATH` connects a stream
//! socket and writes newline-terminated JSON lines; `unixgram:///PATH` sends
//! one datagram per line (no newline). A forwarder that is not there yet, or
//! restarts, is reconnected with backoff by the queue's worker.

use std::io::{self, Write};
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::PathBuf;

use super::queue::{Item, Transport};
use super::syslog::IO_TIMEOUT;

pub struct UnixTransport {
    path: PathBuf,
    datagram: bool,
    stream: Option<UnixStream>,
    dgram: Option<UnixDatagram>,
}

impl UnixTransport {
    pub fn new(path: PathBuf, datagram: bool) -> UnixTransport {
        UnixTransport {
            path,
            datagram,
            stream: None,
            dgram: None,
        }
    }

    /// The bytes sent for one JSON line.
    pub fn encode(datagram: bool, json: &[u8]) -> Item {
        let mut payload = Vec::with_capacity(json.len() + 1);
        payload.extend_from_slice(json);
        if !datagram {
            payload.push(b'\n');
        }
        Item { key: None, payload }
    }
}

impl Transport for UnixTransport {
    fn connect(&mut self) -> io::Result<()> {
        if self.datagram {
            let s = UnixDatagram::unbound()?;
            s.connect(&self.path)?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            self.dgram = Some(s);
        } else {
            let s = UnixStream::connect(&self.path)?;
            s.set_write_timeout(Some(IO_TIMEOUT))?;
            self.stream = Some(s);
        }
        Ok(())
    }

    fn send(&mut self, item: &Item) -> io::Result<bool> {
        let r = match (&mut self.stream, &self.dgram) {
            (Some(s), _) => s.write_all(&item.payload),
            (_, Some(d)) => d.send(&item.payload).map(|_| ()),
            _ => Err(io::Error::other("not connected")),
        };
        if r.is_err() {
            self.stream = None;
            self.dgram = None;
        }
        r.map(|_| true)
    }
}
