//! Frame Streams (the transport of dnstap, <https://github.com/farsightsec/fstrm>):
//! a reader of frames from any byte stream (a file written by
//! `dnstap-output file`, or one connection of `dnstap-output unix`) and the
//! writer of the control frames a receiver sends back.
//!
//! Wire format: a data frame is a 32-bit big-endian length (non-zero) and
//! that many bytes. A control frame is an escape (length 0), a 32-bit control
//! length, a 32-bit control type and fields (type 1 = content type: 32-bit
//! length + bytes). Bidirectional handshake: the sender sends READY (its
//! content types), the receiver ACCEPT (the one it takes), the sender START,
//! data frames, STOP, and the receiver FINISH. A file is START, data, STOP.
//!
//! Bounded: a data frame longer than [`MAX_DATA_FRAME`] or a control frame
//! longer than [`MAX_CONTROL_FRAME`] is an error (the stream cannot be
//! resynchronised), never an allocation of the announced size.

use std::io::{self, Read};

/// fstrm's own limit for control frames (`FSTRM_CONTROL_FRAME_LENGTH_MAX`).
pub const MAX_CONTROL_FRAME: usize = 512;
/// Largest data frame accepted: a dnstap message carries at most a query and
/// a response of 64 KiB each (RFC 1035 over TCP) plus a few addresses;
/// fstrm's readers default to 1 MiB too.
pub const MAX_DATA_FRAME: usize = 1 << 20;
/// The dnstap content type (dnstap.info).
pub const DNSTAP_CONTENT_TYPE: &[u8] = b"protobuf:dnstap.Dnstap";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ControlKind {
    Accept,
    Start,
    Stop,
    Ready,
    Finish,
    Unknown(u32),
}

impl From<u32> for ControlKind {
    fn from(v: u32) -> Self {
        match v {
            1 => Self::Accept,
            2 => Self::Start,
            3 => Self::Stop,
            4 => Self::Ready,
            5 => Self::Finish,
            n => Self::Unknown(n),
        }
    }
}

impl From<ControlKind> for u32 {
    fn from(k: ControlKind) -> u32 {
        match k {
            ControlKind::Accept => 1,
            ControlKind::Start => 2,
            ControlKind::Stop => 3,
            ControlKind::Ready => 4,
            ControlKind::Finish => 5,
            ControlKind::Unknown(n) => n,
        }
    }
}

/// A control frame: its type and the content types it names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Control {
    pub kind: ControlKind,
    pub content_types: Vec<Vec<u8>>,
}

/// What a stream gave next.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame<'a> {
    Data(&'a [u8]),
    Control(Control),
}

#[derive(Debug)]
pub enum FsError {
    Io(io::Error),
    /// The stream ended inside a frame.
    Truncated,
    DataTooLong(usize),
    ControlTooLong(usize),
    /// A control frame whose fields do not add up.
    BadControl,
}

impl std::fmt::Display for FsError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FsError::Io(e) => write!(f, "{e}"),
            FsError::Truncated => write!(f, "Frame Streams: the input ends inside a frame"),
            FsError::DataTooLong(n) => write!(
                f,
                "Frame Streams: a data frame of {n} bytes (limit {MAX_DATA_FRAME}): not a dnstap stream?"
            ),
            FsError::ControlTooLong(n) => write!(
                f,
                "Frame Streams: a control frame of {n} bytes (limit {MAX_CONTROL_FRAME})"
            ),
            FsError::BadControl => write!(f, "Frame Streams: a malformed control frame"),
        }
    }
}

impl std::error::Error for FsError {}

/// Reads frames from a byte stream, reusing one buffer.
pub struct Reader<R> {
    inner: R,
    buf: Vec<u8>,
    /// Bytes consumed so far (for error messages).
    pub offset: u64,
}

/// Fills `buf` completely; `Ok(false)` on a clean end before the first byte.
fn fill<R: Read>(r: &mut R, buf: &mut [u8]) -> Result<bool, FsError> {
    let mut got = 0;
    while got < buf.len() {
        match r.read(&mut buf[got..]) {
            Ok(0) if got == 0 => return Ok(false),
            Ok(0) => return Err(FsError::Truncated),
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(FsError::Io(e)),
        }
    }
    Ok(true)
}

impl<R: Read> Reader<R> {
    pub fn new(inner: R) -> Self {
        Reader {
            inner,
            buf: Vec::new(),
            offset: 0,
        }
    }

    pub fn get_mut(&mut self) -> &mut R {
        &mut self.inner
    }

    fn u32(&mut self) -> Result<Option<u32>, FsError> {
        let mut b = [0u8; 4];
        if !fill(&mut self.inner, &mut b)? {
            return Ok(None);
        }
        self.offset += 4;
        Ok(Some(u32::from_be_bytes(b)))
    }

    fn body(&mut self, len: usize) -> Result<(), FsError> {
        self.buf.clear();
        self.buf.resize(len, 0);
        if len > 0 && !fill(&mut self.inner, &mut self.buf)? {
            return Err(FsError::Truncated);
        }
        self.offset += len as u64;
        Ok(())
    }

    /// The next frame; `Ok(None)` when the stream ends between frames.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, FsError> {
        let Some(len) = self.u32()? else {
            return Ok(None);
        };
        if len != 0 {
            let len = len as usize;
            if len > MAX_DATA_FRAME {
                return Err(FsError::DataTooLong(len));
            }
            self.body(len)?;
            return Ok(Some(Frame::Data(&self.buf)));
        }
        let len = self.u32()?.ok_or(FsError::Truncated)? as usize;
        if len > MAX_CONTROL_FRAME {
            return Err(FsError::ControlTooLong(len));
        }
        self.body(len)?;
        parse_control(&self.buf).map(|c| Some(Frame::Control(c)))
    }
}

/// A control frame's body (after the escape and length).
pub fn parse_control(b: &[u8]) -> Result<Control, FsError> {
    let be = |s: &[u8]| u32::from_be_bytes(s.try_into().expect("4 bytes"));
    if b.len() < 4 {
        return Err(FsError::BadControl);
    }
    let kind = ControlKind::from(be(&b[..4]));
    let mut rest = &b[4..];
    let mut content_types = Vec::new();
    while !rest.is_empty() {
        if rest.len() < 8 {
            return Err(FsError::BadControl);
        }
        let (field, len) = (be(&rest[..4]), be(&rest[4..8]) as usize);
        rest = &rest[8..];
        if len > rest.len() {
            return Err(FsError::BadControl);
        }
        if field == 1 {
            content_types.push(rest[..len].to_vec());
        }
        rest = &rest[len..];
    }
    Ok(Control {
        kind,
        content_types,
    })
}

/// A control frame, escape included, ready to write.
pub fn control_frame(kind: ControlKind, content_type: Option<&[u8]>) -> Vec<u8> {
    let mut body = u32::from(kind).to_be_bytes().to_vec();
    if let Some(ct) = content_type {
        body.extend_from_slice(&1u32.to_be_bytes());
        body.extend_from_slice(&(ct.len() as u32).to_be_bytes());
        body.extend_from_slice(ct);
    }
    let mut out = 0u32.to_be_bytes().to_vec();
    out.extend_from_slice(&(body.len() as u32).to_be_bytes());
    out.extend_from_slice(&body);
    out
}

/// A data frame, ready to write.
pub fn data_frame(payload: &[u8]) -> Vec<u8> {
    let mut out = (payload.len() as u32).to_be_bytes().to_vec();
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_start_data_stop() {
        let mut s = control_frame(ControlKind::Start, Some(DNSTAP_CONTENT_TYPE));
        s.extend(data_frame(b"one"));
        s.extend(data_frame(b"two"));
        s.extend(control_frame(ControlKind::Stop, None));
        let mut r = Reader::new(&s[..]);
        let Some(Frame::Control(c)) = r.next_frame().unwrap() else {
            panic!("start")
        };
        assert_eq!(c.kind, ControlKind::Start);
        assert_eq!(c.content_types, vec![DNSTAP_CONTENT_TYPE.to_vec()]);
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Data(b"one")));
        assert_eq!(r.next_frame().unwrap(), Some(Frame::Data(b"two")));
        assert!(matches!(
            r.next_frame().unwrap(),
            Some(Frame::Control(Control {
                kind: ControlKind::Stop,
                ..
            }))
        ));
        assert_eq!(r.next_frame().unwrap(), None);
    }

    #[test]
    fn lengths_are_bounded_and_truncation_is_reported() {
        let huge = (MAX_DATA_FRAME as u32 + 1).to_be_bytes();
        assert!(matches!(
            Reader::new(&huge[..]).next_frame(),
            Err(FsError::DataTooLong(_))
        ));
        let cut = data_frame(b"abcdef");
        assert!(matches!(
            Reader::new(&cut[..7]).next_frame(),
            Err(FsError::Truncated)
        ));
        let bad = [0, 0, 0, 0, 0, 0, 0, 2, 0, 0];
        assert!(matches!(
            Reader::new(&bad[..]).next_frame(),
            Err(FsError::BadControl)
        ));
    }
}
