//! Compressed captures and standard input, still read by libpcap.
//!
//! A capture compressed with gzip, xz, zstd or lz4 (frame format) is known by
//! its magic bytes, never by its name. A thread decompresses it into a pipe
//! whose read end libpcap opens as an ordinary savefile (`pcap_fopen_offline`),
//! so pcap and pcapng, any link type and BPF filters work as for a plain file;
//! the pipe's 64 KiB buffer bounds the memory. `-` (standard input) takes the
//! same road, compressed or not. The thread's own error (corrupt data) is what
//! the user is told when libpcap then sees a cut file.

use std::fs::File;
use std::io::{self, Read};
use std::os::fd::{IntoRawFd, RawFd};
use std::thread::JoinHandle;

/// How a capture's bytes are packed, from its first bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Packing {
    Plain,
    Gzip,
    Xz,
    Zstd,
    Lz4,
}

/// Bytes enough to tell every [`Packing`] apart.
pub const MAGIC_LEN: usize = 6;

impl Packing {
    /// RFC 1952 (gzip), the xz file format 1.0.4, RFC 8878 (zstd frame),
    /// the LZ4 frame format 1.6.x.
    pub fn sniff(magic: &[u8]) -> Packing {
        match magic {
            [0x1f, 0x8b, ..] => Packing::Gzip,
            [0xfd, b'7', b'z', b'X', b'Z', 0x00, ..] => Packing::Xz,
            [0x28, 0xb5, 0x2f, 0xfd, ..] => Packing::Zstd,
            [0x04, 0x22, 0x4d, 0x18, ..] => Packing::Lz4,
            _ => Packing::Plain,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Packing::Plain => "plain",
            Packing::Gzip => "gzip",
            Packing::Xz => "xz",
            Packing::Zstd => "zstd",
            Packing::Lz4 => "lz4",
        }
    }

    /// A reader of the unpacked bytes (several concatenated members or
    /// frames, as the command-line tools write them, are read in turn).
    fn unpack(self, r: Box<dyn Read + Send>) -> io::Result<Box<dyn Read + Send>> {
        Ok(match self {
            Packing::Plain => r,
            Packing::Gzip => Box::new(flate2::read::MultiGzDecoder::new(r)),
            Packing::Xz => Box::new(liblzma::read::XzDecoder::new_multi_decoder(r)),
            Packing::Zstd => Box::new(zstd::stream::read::Decoder::new(r)?),
            Packing::Lz4 => Box::new(lz4_flex::frame::FrameDecoder::new(r)),
        })
    }
}

/// Reads up to [`MAGIC_LEN`] bytes (fewer only at the end of the input).
pub fn read_magic(r: &mut impl Read) -> io::Result<Vec<u8>> {
    let mut magic = vec![0u8; MAGIC_LEN];
    let mut got = 0;
    while got < MAGIC_LEN {
        match r.read(&mut magic[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    magic.truncate(got);
    Ok(magic)
}

/// The thread that unpacks into the pipe; its result says whether the data
/// was sound.
pub struct Feeder {
    packing: Packing,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Feeder {
    /// Starts unpacking `rest` (whose first bytes, `magic`, were read
    /// already) into a new pipe; returns the read end for libpcap.
    pub fn start(
        packing: Packing,
        magic: Vec<u8>,
        rest: Box<dyn Read + Send>,
    ) -> io::Result<(RawFd, Feeder)> {
        let (reader, mut writer) = io::pipe()?;
        let input: Box<dyn Read + Send> = Box::new(io::Cursor::new(magic).chain(rest));
        let thread = std::thread::Builder::new()
            .name(format!("mxwatch-{}", packing.name()))
            .spawn(move || {
                let mut unpacked = packing.unpack(input)?;
                match io::copy(&mut unpacked, &mut writer) {
                    Ok(_) => Ok(()),
                    // libpcap stopped reading (an error, or the run ended early).
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => Ok(()),
                    Err(e) => Err(e),
                }
            })?;
        Ok((
            reader.into_raw_fd(),
            Feeder {
                packing,
                thread: Some(thread),
            },
        ))
    }

    /// Waits for the thread (only once the pipe is at its end or closed, so
    /// that it cannot be blocked writing) and returns what went wrong, as one
    /// line: "corrupt gzip data: invalid gzip header".
    pub fn finish(&mut self) -> Option<String> {
        let result = self.thread.take()?.join();
        let what = match self.packing {
            Packing::Plain => "input",
            p => p.name(),
        };
        match result {
            Ok(Ok(())) => None,
            Ok(Err(e)) if self.packing == Packing::Plain => Some(format!("reading {what}: {e}")),
            Ok(Err(e)) => Some(format!("corrupt {what} data: {e}")),
            Err(_) => Some(format!("the {what} reader failed")),
        }
    }

    pub fn packing(&self) -> Packing {
        self.packing
    }

    /// True when the thread has ended (its result can be taken without waiting).
    pub fn is_finished(&self) -> bool {
        self.thread.as_ref().is_none_or(|t| t.is_finished())
    }
}

/// What to give libpcap for a path: the file itself (plain regular file: the
/// fast, usual road), or a pipe fed by a [`Feeder`].
pub enum Opened {
    Direct,
    Piped(RawFd, Feeder),
}

/// Looks at a capture's first bytes. `-` is standard input.
pub fn open(path: &std::path::Path) -> io::Result<Opened> {
    if path.as_os_str() == "-" {
        let mut stdin = io::stdin();
        let magic = read_magic(&mut stdin)?;
        let packing = Packing::sniff(&magic);
        let (fd, feeder) = Feeder::start(packing, magic, Box::new(stdin))?;
        return Ok(Opened::Piped(fd, feeder));
    }
    let mut file = File::open(path)?;
    let magic = read_magic(&mut file)?;
    let packing = Packing::sniff(&magic);
    // A FIFO or /dev/fd/N cannot be opened twice: it goes through the pipe too.
    if packing == Packing::Plain && file.metadata()?.is_file() {
        return Ok(Opened::Direct);
    }
    let (fd, feeder) = Feeder::start(packing, magic, Box::new(file))?;
    Ok(Opened::Piped(fd, feeder))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// Writes `data` compressed as `packing` (tests and tools; not the hot path).
    fn pack(packing: Packing, data: &[u8]) -> io::Result<Vec<u8>> {
        Ok(match packing {
            Packing::Plain => data.to_vec(),
            Packing::Gzip => {
                let mut w = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
                w.write_all(data)?;
                w.finish()?
            }
            Packing::Xz => {
                let mut w = liblzma::write::XzEncoder::new(Vec::new(), 1);
                w.write_all(data)?;
                w.finish()?
            }
            Packing::Zstd => zstd::stream::encode_all(data, 1)?,
            Packing::Lz4 => {
                let mut w = lz4_flex::frame::FrameEncoder::new(Vec::new());
                w.write_all(data)?;
                w.finish().map_err(io::Error::other)?
            }
        })
    }

    #[test]
    fn magic_bytes_decide_not_names() {
        for p in [Packing::Gzip, Packing::Xz, Packing::Zstd, Packing::Lz4] {
            let packed = pack(p, b"\xd4\xc3\xb2\xa1 a pcap header would be here").unwrap();
            assert_eq!(Packing::sniff(&packed), p);
            let mut out = Vec::new();
            p.unpack(Box::new(io::Cursor::new(packed)))
                .unwrap()
                .read_to_end(&mut out)
                .unwrap();
            assert_eq!(&out[..4], b"\xd4\xc3\xb2\xa1");
        }
        assert_eq!(Packing::sniff(b"\xd4\xc3\xb2\xa1\x02\x00"), Packing::Plain);
        assert_eq!(Packing::sniff(b"\x1f"), Packing::Plain);
    }
}
