//! Packet sources: pcap/pcapng files and live interfaces, through libpcap.
//! The one module that talks to the `pcap` crate.
//!
//! A source yields frames with their packet time (microseconds since the
//! epoch), wire length and libpcap link type. Files are read in the order
//! given; errors name the file and say what libpcap said. Compressed files
//! (gzip, xz, zstd, lz4, known by their magic bytes) and `-` (standard input)
//! reach libpcap through a pipe ([`compressed`]).

pub mod compressed;
pub mod daemon;
pub mod dnstap;
pub mod iface;
pub mod source;

use std::fmt;
use std::path::{Path, PathBuf};

use crate::decode::link::LinkType;

/// BPF that catches DNS and SMTP with zero, one or two VLAN tags, and the
/// non-first IP fragments that carry no ports (reassembly needs them). In
/// files a plain `port 53` misses 802.1Q frames; `vlan and X` must nest for QinQ.
pub fn default_filter(ports: &str) -> String {
    let x = plain_filter(ports);
    format!("{x} or (vlan and ({x} or (vlan and ({x}))))")
}

/// The default without VLAN matching (for link types that have no VLAN tags,
/// such as Linux cooked capture on `-i any`).
pub fn plain_filter(ports: &str) -> String {
    format!("({ports}) or (ip[6:2] & 0x1fff != 0) or (ip6 and ip6[6] == 44)")
}

pub const DNS_SMTP_PORTS: &str = "port 53 or port 25";

#[derive(Debug)]
pub enum CaptureError {
    Open {
        path: PathBuf,
        msg: String,
    },
    Filter {
        filter: String,
        msg: String,
    },
    Read {
        path: PathBuf,
        packets: u64,
        msg: String,
    },
    Live {
        iface: String,
        msg: String,
    },
    /// A capture of a link type the decoder does not read (its frames would
    /// all be link-layer errors): refused, named with libpcap's name for it.
    LinkType {
        path: PathBuf,
        dlt: i32,
    },
    /// A dnstap or log input (`input::InputError`), or a dnstap socket.
    Input(String),
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Open { path, msg } => {
                write!(f, "cannot read {}: {}", path.display(), clean(msg))
            }
            CaptureError::Filter { filter, msg } => {
                write!(f, "bad --filter {filter:?}: {}", clean(msg))
            }
            CaptureError::Read { path, packets, msg } => {
                write!(
                    f,
                    "{}: stopped after {packets} packets: {}",
                    path.display(),
                    clean(msg)
                )
            }
            CaptureError::Live { iface, msg } => write!(f, "interface {iface}: {}", clean(msg)),
            CaptureError::LinkType { path, dlt } => write!(
                f,
                "{}: {}: file skipped",
                path.display(),
                unsupported_link(*dlt)
            ),
            CaptureError::Input(msg) => write!(f, "{msg}"),
        }
    }
}

impl std::error::Error for CaptureError {}

impl From<crate::input::InputError> for CaptureError {
    fn from(e: crate::input::InputError) -> Self {
        CaptureError::Input(e.to_string())
    }
}

/// True when the file starts like a Frame Streams stream (a control frame's
/// zero escape), as `dnstap-output file` writes: a dnstap file, not a capture.
pub fn is_frame_streams(path: &Path) -> bool {
    use std::io::Read;
    let mut b = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut b))
        .is_ok()
        && b == [0; 4]
}

/// "link type 147 (USER0) is not one mxwatch decodes (...)".
pub fn unsupported_link(dlt: i32) -> String {
    // libpcap has no names for the private-use range.
    let name = match dlt {
        147..=162 => Ok(format!("USER{}", dlt - 147)),
        _ => pcap::Linktype(dlt).get_name(),
    }
    .map_or(String::new(), |n| format!(" ({n})"));
    format!(
        "link type {dlt}{name} is not one mxwatch decodes ({})",
        crate::decode::link::SUPPORTED
    )
}

fn clean(msg: &str) -> String {
    msg.trim().replace('\n', " ")
}

/// A frame borrowed from libpcap's buffer.
pub struct Frame<'a> {
    pub ts: i64,
    pub wire_len: u32,
    pub data: &'a [u8],
}

/// One capture file opened through libpcap.
pub struct FileSource {
    path: PathBuf,
    cap: pcap::Capture<pcap::Offline>,
    packets: u64,
    at_end: bool,
    /// The thread unpacking a compressed file (or standard input) into the
    /// pipe libpcap reads.
    feeder: Option<compressed::Feeder>,
}

impl FileSource {
    pub fn open(path: &Path, filter: Option<&str>) -> Result<Self, CaptureError> {
        let open_err = |msg: String| CaptureError::Open {
            path: path.to_owned(),
            msg,
        };
        let (cap, feeder) = match compressed::open(path) {
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                return Err(open_err("no such file".into()));
            }
            Err(e) => return Err(open_err(e.to_string())),
            Ok(compressed::Opened::Direct) => (
                pcap::Capture::from_file(path).map_err(|e| open_err(open_msg(path, &e)))?,
                None,
            ),
            Ok(compressed::Opened::Piped(fd, mut feeder)) => {
                // SAFETY: `fd` is the read end of a pipe this process just
                // made and hands over; libpcap owns it from here on.
                match unsafe { pcap::Capture::from_raw_fd(fd) } {
                    Ok(cap) => (cap, Some(feeder)),
                    Err(e) => {
                        // libpcap leaves the stream open when it refuses it:
                        // close it so the unpacking thread ends.
                        // SAFETY: nothing else reads this descriptor.
                        unsafe { libc::close(fd) };
                        let msg = feeder.finish().unwrap_or_else(|| match feeder.packing() {
                            compressed::Packing::Plain => open_msg(path, &e),
                            p => format!("{} data, but {}", p.name(), open_msg(path, &e)),
                        });
                        return Err(open_err(msg));
                    }
                }
            }
        };
        let mut cap = cap;
        let dlt = cap.get_datalink().0;
        if !LinkType::from(dlt).is_supported() {
            drop(cap);
            if let Some(mut f) = feeder {
                f.finish();
            }
            return Err(CaptureError::LinkType {
                path: path.to_owned(),
                dlt,
            });
        }
        if let Some(f) = filter {
            cap.filter(f, true).map_err(|e| CaptureError::Filter {
                filter: f.to_owned(),
                msg: e.to_string(),
            })?;
        }
        Ok(FileSource {
            path: path.to_owned(),
            cap,
            packets: 0,
            at_end: false,
            feeder,
        })
    }

    /// True once `next_frame` has said the file ended (or failed).
    pub fn at_end(&self) -> bool {
        self.at_end
    }

    pub fn link_type(&self) -> LinkType {
        LinkType::from(self.cap.get_datalink().0)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next frame; `Ok(None)` at the end of the file.
    pub fn next_frame(&mut self) -> Result<Option<Frame<'_>>, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.packets += 1;
                let ts = p.header.ts.tv_sec * 1_000_000 + p.header.ts.tv_usec;
                Ok(Some(Frame {
                    ts,
                    wire_len: p.header.len,
                    data: p.data,
                }))
            }
            Err(pcap::Error::NoMorePackets) => {
                self.at_end = true;
                match self.feeder.as_mut().and_then(|f| f.finish()) {
                    // The pipe ended early because the data was corrupt.
                    Some(msg) => Err(read_error(&self.path, self.packets, msg)),
                    None => Ok(None),
                }
            }
            Err(e) => {
                // Nothing more is read from a file after an error.
                self.at_end = true;
                let mut msg = e.to_string();
                if let Some(f) = self.feeder.as_mut() {
                    // A cut file means the pipe is at its end: the thread is
                    // done or about to be, and its error says why.
                    if f.is_finished() || msg.contains("truncated") {
                        msg = f.finish().unwrap_or(msg);
                    }
                }
                Err(read_error(&self.path, self.packets, msg))
            }
        }
    }
}

fn read_error(path: &Path, packets: u64, msg: String) -> CaptureError {
    CaptureError::Read {
        path: path.to_owned(),
        packets,
        msg,
    }
}

fn open_msg(path: &Path, e: &pcap::Error) -> String {
    if path.as_os_str() != "-" && !path.exists() {
        return "no such file".into();
    }
    let msg = e.to_string();
    if msg.contains("unknown file format") {
        "not a pcap or pcapng capture (libpcap: unknown file format)".into()
    } else {
        msg
    }
}
