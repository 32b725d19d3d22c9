//! Bounded line splitter: in-order stream bytes -> lines without their CRLF.
//!
//! Place: between `stream` (in-order bytes of one direction) and `parse`.
//! A line ends at LF; one CR before it is stripped (RFC 5321 §2.3.8 says
//! CRLF, bare LF is accepted leniently). A line split across chunks is kept
//! in a per-direction buffer that never grows past `max_line_len`: a longer
//! line is reported once as [`Split::TooLong`] and skipped up to the next LF.
//! "Need more bytes" ([`Split::NeedMore`]) is not an error. The buffer is
//! reused, so a steady flow does not allocate.

/// What [`LineSplitter::next_line`] found.
#[derive(Debug, PartialEq, Eq)]
pub enum Split<'a> {
    /// One complete line, CRLF (or LF) removed.
    Line(&'a [u8]),
    /// A line longer than the cap was dropped; the splitter resumes after
    /// its LF.
    TooLong,
    /// All input consumed; a partial line (if any) is buffered.
    NeedMore,
}

#[derive(Debug)]
pub struct LineSplitter {
    /// Partial line carried over from an earlier chunk.
    partial: Vec<u8>,
    /// `partial` held a line that was returned: clear it on the next call.
    partial_returned: bool,
    /// Skipping bytes up to the next LF (after a too-long line or a resync).
    discarding: bool,
    max_line_len: usize,
}

impl LineSplitter {
    pub fn new(max_line_len: usize) -> Self {
        Self {
            partial: Vec::new(),
            partial_returned: false,
            discarding: false,
            max_line_len,
        }
    }

    /// Forget any partial line (its bytes were followed by a gap).
    pub fn clear(&mut self) {
        self.partial.clear();
        self.partial_returned = false;
        self.discarding = false;
    }

    /// Forget any partial line and skip to the start of the next line (used
    /// when bytes after a gap start in the middle of a line).
    pub fn resync(&mut self) {
        self.clear();
        self.discarding = true;
    }

    /// Take the next line from `input`, advancing it past what was consumed.
    pub fn next_line<'r, 'd: 'r>(&'r mut self, input: &mut &'d [u8]) -> Split<'r> {
        if self.partial_returned {
            self.partial.clear();
            self.partial_returned = false;
        }
        if self.discarding {
            match input.iter().position(|&b| b == b'\n') {
                Some(lf) => {
                    *input = &input[lf + 1..];
                    self.discarding = false;
                }
                None => {
                    *input = &[];
                    return Split::NeedMore;
                }
            }
        }
        let data: &'d [u8] = input;
        match data.iter().position(|&b| b == b'\n') {
            Some(lf) => {
                *input = &data[lf + 1..];
                let head = &data[..lf];
                if self.partial.len() + head.len() > self.max_line_len {
                    self.partial.clear();
                    return Split::TooLong;
                }
                if self.partial.is_empty() {
                    return Split::Line(strip_cr(head));
                }
                self.partial.extend_from_slice(head);
                self.partial_returned = true;
                Split::Line(strip_cr(&self.partial))
            }
            None => {
                *input = &[];
                if self.partial.len() + data.len() > self.max_line_len {
                    self.partial.clear();
                    self.discarding = true;
                    return Split::TooLong;
                }
                self.partial.extend_from_slice(data);
                Split::NeedMore
            }
        }
    }
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feed chunks in order; collect lines as strings ("<too long>" marks).
    fn split(max: usize, chunks: &[&[u8]]) -> Vec<String> {
        let mut splitter = LineSplitter::new(max);
        let mut lines = Vec::new();
        for chunk in chunks {
            let mut rest: &[u8] = chunk;
            loop {
                match splitter.next_line(&mut rest) {
                    Split::Line(l) => lines.push(String::from_utf8_lossy(l).into_owned()),
                    Split::TooLong => lines.push("<too long>".to_owned()),
                    Split::NeedMore => break,
                }
            }
        }
        lines
    }

    #[test]
    fn several_lines_in_one_chunk() {
        assert_eq!(
            split(100, &[b"EHLO a\r\nMAIL FROM:<>\r\n"]),
            ["EHLO a", "MAIL FROM:<>"]
        );
    }

    #[test]
    fn line_split_mid_line_and_inside_crlf() {
        assert_eq!(
            split(100, &[b"EH", b"LO a\r", b"\nQUIT\r\n"]),
            ["EHLO a", "QUIT"]
        );
    }

    #[test]
    fn bare_lf_is_accepted() {
        assert_eq!(split(100, &[b"QUIT\n"]), ["QUIT"]);
    }

    #[test]
    fn partial_line_waits_for_more() {
        assert!(split(100, &[b"QUI"]).is_empty());
    }

    #[test]
    fn too_long_in_one_chunk_then_resumes() {
        assert_eq!(split(5, &[b"ABCDEFG\r\nQUIT\r\n"]), ["<too long>", "QUIT"]);
    }

    #[test]
    fn too_long_across_chunks_counted_once_then_resumes() {
        assert_eq!(
            split(5, &[b"ABC", b"DEFG", b"HIJ", b"K\r\nRSET\r\n"]),
            ["<too long>", "RSET"]
        );
    }

    #[test]
    fn cap_counts_the_cr() {
        assert_eq!(split(4, &[b"QUIT\r\n"]), ["<too long>"]);
        assert_eq!(split(5, &[b"QU", b"IT\r\n"]), ["QUIT"]);
    }

    #[test]
    fn resync_skips_to_next_line_start() {
        let mut splitter = LineSplitter::new(100);
        let mut rest: &[u8] = b"FROM:<x>\r\nRCPT TO:<y>\r\n";
        splitter.resync();
        assert_eq!(splitter.next_line(&mut rest), Split::Line(b"RCPT TO:<y>"));
    }
}
