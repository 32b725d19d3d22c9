//! The file (or stdout) an output line goes to: appended, and written in
//! whole lines only.

use std::fs::File;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;

/// Opens `path` for appending (whole lines only), or stdout.
pub fn open(path: &Option<PathBuf>) -> io::Result<Box<dyn Write + Send>> {
    Ok(match path {
        Some(p) => {
            let f = File::options()
                .create(true)
                .append(true)
                .open(p)
                .map_err(|e| {
                    io::Error::new(e.kind(), format!("cannot open output {}: {e}", p.display()))
                })?;
            Box::new(WholeLines::new(f)?)
        }
        None => Box::new(BufWriter::with_capacity(1 << 16, io::stdout())),
    })
}

/// A file written in whole lines only: bytes are buffered and handed to the
/// file up to the last newline; if a write fails (a full disk), the file is
/// cut back to its last complete line, so a SIEM never reads half a JSON line.
pub struct WholeLines {
    f: File,
    buf: Vec<u8>,
    /// File length after the last complete line written.
    committed: u64,
}

impl WholeLines {
    const CAP: usize = 1 << 16;

    pub fn new(f: File) -> io::Result<Self> {
        let committed = f.metadata()?.len();
        Ok(WholeLines {
            f,
            buf: Vec::with_capacity(Self::CAP),
            committed,
        })
    }

    fn write_lines(&mut self) -> io::Result<()> {
        let Some(last) = self.buf.iter().rposition(|&b| b == b'\n') else {
            return Ok(());
        };
        match self.f.write_all(&self.buf[..=last]) {
            Ok(()) => {
                self.committed += last as u64 + 1;
                self.buf.drain(..=last);
                Ok(())
            }
            Err(e) => {
                // Cut what part of the lines made it; what is buffered is lost.
                let _ = self.f.set_len(self.committed);
                self.buf.clear();
                Err(e)
            }
        }
    }
}

impl Write for WholeLines {
    fn write(&mut self, data: &[u8]) -> io::Result<usize> {
        self.buf.extend_from_slice(data);
        if self.buf.len() >= Self::CAP {
            self.write_lines()?;
        }
        Ok(data.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        self.write_lines()?;
        self.f.flush()
    }
}

impl Drop for WholeLines {
    fn drop(&mut self) {
        let _ = self.write_lines();
    }
}
