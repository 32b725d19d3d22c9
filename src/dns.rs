//! DNS message heads: bytes -> [`DnsHead`]. The one file that imports hickory-proto.
//!
//! The sensor needs the header (id, QR, 4-bit rcode) and the first
//! question (name, type). A hand-written fast path reads exactly those and
//! works on truncated messages and first IP fragments, where a full decode
//! fails. A question name that uses a compression pointer (legal, rare) is
//! read by hickory-proto's decoder, which is also the reference the fast path
//! is checked against in the tests, as are the qtype and rcode buckets
//! (against hickory's `RecordType` and `ResponseCode`).

use hickory_proto::op::Query;
use hickory_proto::serialize::binary::{BinDecodable, BinDecoder, DecodeError};

/// Longest presentation name we keep (RFC 1035 §2.3.4: 255 octets on the wire;
/// escapes can make the text longer, which is capped here).
pub const NAME_MAX: usize = 320;

/// What the sensor keeps of a DNS message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DnsHead {
    pub id: u16,
    pub response: bool,
    /// The 4-bit header rcode (the EDNS extension is not merged).
    pub rcode: u8,
    /// The first question, when the message has one and it is complete.
    pub question: Option<Question>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Question {
    pub qtype: u16,
    /// Length of the lower-cased name (no trailing dot) written to the caller's buffer.
    pub name_len: usize,
}

/// Why a message could not be read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DnsError {
    /// Shorter than the 12-byte header.
    ShortHeader,
    /// A label longer than 63, a name longer than 255, a pointer loop or
    /// a reserved label type.
    BadName,
}

/// Reads only the header of `msg` (`question` stays None): for responses
/// whose name the sensor does not need (every rcode but NXDOMAIN).
pub fn parse_header(msg: &[u8]) -> Result<DnsHead, DnsError> {
    if msg.len() < 12 {
        return Err(DnsError::ShortHeader);
    }
    let flags = u16::from_be_bytes([msg[2], msg[3]]);
    Ok(DnsHead {
        id: u16::from_be_bytes([msg[0], msg[1]]),
        response: flags & 0x8000 != 0,
        rcode: (flags & 0xf) as u8,
        question: None,
    })
}

/// True when the message is a response with an rcode other than NXDOMAIN
/// (its question name is not needed).
pub fn is_plain_response(msg: &[u8]) -> bool {
    msg.len() >= 12 && msg[2] & 0x80 != 0 && msg[3] & 0x0f != 3
}

/// Reads the header and first question of `msg`. The name is written,
/// lower-cased and without the trailing dot, into `name` (cleared first).
/// A question cut short (snaplen, fragment) gives `question: None`.
pub fn parse_head(msg: &[u8], name: &mut Vec<u8>) -> Result<DnsHead, DnsError> {
    let mut head = parse_header(msg)?;
    let qdcount = u16::from_be_bytes([msg[4], msg[5]]);
    name.clear();
    if qdcount == 0 {
        return Ok(head);
    }
    match read_name_fast(msg, 12, name) {
        NameRead::Done(end) => {
            if let Some(t) = msg.get(end..end + 4) {
                head.question = Some(Question {
                    qtype: u16::from_be_bytes([t[0], t[1]]),
                    name_len: name.len(),
                });
            }
        }
        NameRead::Incomplete => {}
        NameRead::Bad => return Err(DnsError::BadName),
        NameRead::Pointer => {
            name.clear();
            head.question = question_by_hickory(msg, name)?;
        }
    }
    Ok(head)
}

enum NameRead {
    Done(usize),
    Incomplete,
    Bad,
    /// A compression pointer: leave it to hickory.
    Pointer,
}

fn read_name_fast(msg: &[u8], mut pos: usize, out: &mut Vec<u8>) -> NameRead {
    let mut wire_len = 1usize;
    loop {
        let Some(&len) = msg.get(pos) else {
            return NameRead::Incomplete;
        };
        match len & 0xc0 {
            0x00 => {}
            0xc0 => return NameRead::Pointer,
            _ => return NameRead::Bad,
        }
        let len = len as usize;
        if len == 0 {
            return NameRead::Done(pos + 1);
        }
        wire_len += len + 1;
        if wire_len > 255 {
            return NameRead::Bad;
        }
        let Some(label) = msg.get(pos + 1..pos + 1 + len) else {
            return NameRead::Incomplete;
        };
        push_label(label, out);
        pos += 1 + len;
    }
}

/// For each byte: its lower-case form when it stands for itself in a
/// label's presentation form (letters, digits, '-', '_'), else 0.
static LOWER_PLAIN: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut b = 0;
    while b < 256 {
        let c = b as u8;
        if c.is_ascii_alphanumeric() || c == b'-' || c == b'_' {
            t[b] = c.to_ascii_lowercase();
        }
        b += 1;
    }
    t
};

/// Appends a label (after a '.' unless it is the first) in presentation
/// form, lower-cased, never growing `out` past [`NAME_MAX`]; bytes that are not
/// printable, `.` and `\` are escaped as `\DDD` (RFC 4343 §2.1).
fn push_label(label: &[u8], out: &mut Vec<u8>) {
    if !out.is_empty() {
        if out.len() >= NAME_MAX {
            return;
        }
        out.push(b'.');
    }
    // Fast path: a label of letters, digits, '-' and '_' (nearly all of them),
    // lower-cased through a table in one pass; a byte that needs escaping
    // maps to 0 and sends the label to the careful path below.
    if out.len() + label.len() <= NAME_MAX {
        let start = out.len();
        let mut special = false;
        out.extend(label.iter().map(|&b| {
            let m = LOWER_PLAIN[usize::from(b)];
            special |= m == 0;
            m
        }));
        if !special {
            return;
        }
        out.truncate(start);
    }
    for &b in label {
        if out.len() + 4 > NAME_MAX {
            return;
        }
        match b {
            b'A'..=b'Z' => out.push(b + 32),
            b'.' | b'\\' | 0..=0x20 | 0x7f..=0xff => {
                out.push(b'\\');
                out.push(b'0' + b / 100);
                out.push(b'0' + (b / 10) % 10);
                out.push(b'0' + b % 10);
            }
            _ => out.push(b),
        }
    }
}

fn question_by_hickory(msg: &[u8], out: &mut Vec<u8>) -> Result<Option<Question>, DnsError> {
    let mut dec = BinDecoder::new(msg);
    if dec.read_slice(12).is_err() {
        return Err(DnsError::ShortHeader);
    }
    match Query::read(&mut dec) {
        Ok(q) => {
            for label in q.name().iter() {
                push_label(label, out);
            }
            Ok(Some(Question {
                qtype: u16::from(q.query_type()),
                name_len: out.len(),
            }))
        }
        // The captured bytes ended inside the question: cut short, not malformed.
        Err(DecodeError::InsufficientBytes) => Ok(None),
        Err(_) => Err(DnsError::BadName),
    }
}

/// Query types with their own counter; the rest count as `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QtypeBucket {
    A,
    Aaaa,
    Ptr,
    Mx,
    Txt,
    Other,
}

impl QtypeBucket {
    pub const ALL: [QtypeBucket; 6] = [
        Self::A,
        Self::Aaaa,
        Self::Ptr,
        Self::Mx,
        Self::Txt,
        Self::Other,
    ];

    /// Bucket of a wire qtype (numbers from the IANA registry; the test
    /// below checks them against hickory's `RecordType`).
    pub fn of(qtype: u16) -> Self {
        match qtype {
            1 => Self::A,
            28 => Self::Aaaa,
            12 => Self::Ptr,
            15 => Self::Mx,
            16 => Self::Txt,
            _ => Self::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::A => "A",
            Self::Aaaa => "AAAA",
            Self::Ptr => "PTR",
            Self::Mx => "MX",
            Self::Txt => "TXT",
            Self::Other => "other",
        }
    }
}

/// Response codes with their own counter; the rest count as `other`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RcodeBucket {
    NoError,
    NxDomain,
    ServFail,
    Refused,
    Other,
}

impl RcodeBucket {
    pub const ALL: [RcodeBucket; 5] = [
        Self::NoError,
        Self::NxDomain,
        Self::ServFail,
        Self::Refused,
        Self::Other,
    ];

    /// Bucket of a 4-bit header rcode (RFC 1035 §4.1.1; checked against
    /// hickory's `ResponseCode` below).
    pub fn of(rcode: u8) -> Self {
        match rcode & 0xf {
            0 => Self::NoError,
            3 => Self::NxDomain,
            2 => Self::ServFail,
            5 => Self::Refused,
            _ => Self::Other,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::NoError => "NOERROR",
            Self::NxDomain => "NXDOMAIN",
            Self::ServFail => "SERVFAIL",
            Self::Refused => "REFUSED",
            Self::Other => "other",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hickory_proto::op::{Message, MessageType, OpCode, ResponseCode};
    use hickory_proto::rr::Name;
    use hickory_proto::rr::RecordType;
    use proptest::prelude::*;
    use std::str::FromStr;

    fn query_bytes(name: &str, qtype: RecordType, id: u16) -> Vec<u8> {
        let mut m = Message::new(id, MessageType::Query, OpCode::Query);
        m.add_query(Query::query(Name::from_str(name).unwrap(), qtype));
        m.to_vec().unwrap()
    }

    #[test]
    fn reads_a_query_lower_cased_without_trailing_dot() {
        let bytes = query_bytes("MaIl.Example.COM.", RecordType::MX, 0x1234);
        let mut name = Vec::new();
        let h = parse_head(&bytes, &mut name).unwrap();
        assert_eq!(h.id, 0x1234);
        assert!(!h.response);
        assert_eq!(h.question.unwrap().qtype, 15);
        assert_eq!(name, b"mail.example.com");
    }

    #[test]
    fn truncated_question_keeps_the_header() {
        let bytes = query_bytes("mail.example.com.", RecordType::A, 7);
        let mut name = Vec::new();
        let h = parse_head(&bytes[..20], &mut name).unwrap();
        assert_eq!(h.id, 7);
        assert_eq!(h.question, None);
        assert_eq!(
            parse_head(&bytes[..11], &mut name),
            Err(DnsError::ShortHeader)
        );
    }

    #[test]
    fn rejects_long_labels_and_pointer_loops() {
        let mut msg = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 64];
        msg.extend(std::iter::repeat_n(b'a', 64));
        msg.extend([0, 0, 1, 0, 1]);
        assert_eq!(parse_head(&msg, &mut Vec::new()), Err(DnsError::BadName));
        // Name at offset 12 is a pointer to itself.
        let lp = [0u8, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 12, 0, 1, 0, 1];
        assert_eq!(parse_head(&lp, &mut Vec::new()), Err(DnsError::BadName));
    }

    #[test]
    fn compressed_question_goes_through_hickory() {
        // A pointer must refer to a prior occurrence (RFC 1035 §4.1.4): in a
        // first question only the header comes before, so a pointer forward
        // into the answer section is malformed for hickory and for us.
        let mut msg = vec![0, 9, 0x81, 0x83, 0, 1, 0, 0, 0, 0, 0, 0];
        msg.extend([1, b'A', 0xc0, 20, 0, 15, 0, 1]);
        msg.extend([
            7, b'e', b'x', b'a', b'm', b'p', b'l', b'e', 3, b'c', b'o', b'm', 0,
        ]);
        assert_eq!(parse_head(&msg, &mut Vec::new()), Err(DnsError::BadName));
        // A pointer cut off by the capture (its second byte missing) goes to
        // hickory too, and is truncation, not malformation.
        let cut = &msg[..15];
        assert_eq!(cut[14], 0xc0);
        let h = parse_head(cut, &mut Vec::new()).unwrap();
        assert_eq!((h.rcode, h.question), (3, None));
    }

    #[test]
    fn buckets_agree_with_hickory() {
        for t in 0..=u16::MAX {
            let want = match RecordType::from(t) {
                RecordType::A => QtypeBucket::A,
                RecordType::AAAA => QtypeBucket::Aaaa,
                RecordType::PTR => QtypeBucket::Ptr,
                RecordType::MX => QtypeBucket::Mx,
                RecordType::TXT => QtypeBucket::Txt,
                _ => QtypeBucket::Other,
            };
            assert_eq!(QtypeBucket::of(t), want, "qtype {t}");
        }
        for r in 0..16u8 {
            let want = match ResponseCode::from_low(r) {
                ResponseCode::NoError => RcodeBucket::NoError,
                ResponseCode::NXDomain => RcodeBucket::NxDomain,
                ResponseCode::ServFail => RcodeBucket::ServFail,
                ResponseCode::Refused => RcodeBucket::Refused,
                _ => RcodeBucket::Other,
            };
            assert_eq!(RcodeBucket::of(r), want, "rcode {r}");
        }
    }

    #[test]
    fn escaped_names_stay_within_the_cap() {
        // Found by the dns_head fuzz target: labels of bytes that need \DDD
        // escapes made the name one separator longer than NAME_MAX.
        let mut msg = vec![0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        for n in [63u8, 63, 63, 61] {
            msg.push(n);
            msg.extend(std::iter::repeat_n(1u8, usize::from(n)));
        }
        msg.extend([0, 0, 1, 0, 1]);
        let mut name = Vec::new();
        let h = parse_head(&msg, &mut name).unwrap();
        assert!(name.len() <= NAME_MAX, "{}", name.len());
        assert_eq!(h.question.unwrap().name_len, name.len());
        let crash = include_bytes!("../tests/fuzz-regressions/dns_head-name-cap");
        let mut name = Vec::new();
        let _ = parse_head(crash, &mut name);
        assert!(name.len() <= NAME_MAX);
    }

    #[test]
    fn buckets() {
        assert_eq!(RcodeBucket::of(5), RcodeBucket::Refused);
        assert_eq!(QtypeBucket::of(28), QtypeBucket::Aaaa);
        assert_eq!(QtypeBucket::of(65280), QtypeBucket::Other);
    }

    proptest! {
        /// The fast path and hickory-proto's decoder agree on every
        /// well-formed query (the reference check for the fast path).
        #[test]
        fn fast_path_equals_hickory(labels in proptest::collection::vec("[a-zA-Z0-9_][a-zA-Z0-9_-]{0,19}", 1..6),
                                    qtype in 1u16..300, id in any::<u16>()) {
            let name = format!("{}.", labels.join("."));
            let bytes = query_bytes(&name, RecordType::from(qtype), id);
            let mut fast = Vec::new();
            let h = parse_head(&bytes, &mut fast).unwrap();
            let full = Message::from_vec(&bytes).unwrap();
            let q = &full.queries[0];
            prop_assert_eq!(h.id, full.metadata.id);
            prop_assert_eq!(h.question.unwrap().qtype, u16::from(q.query_type()));
            let want = q.name().to_lowercase().to_ascii();
            prop_assert_eq!(String::from_utf8(fast).unwrap(), want.trim_end_matches('.'));
        }

        /// Arbitrary bytes never panic, and every prefix of a valid message parses
        /// without error (truncation is not malformation).
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = parse_head(&bytes, &mut Vec::new());
        }
    }
}

/// A record type's number from its presentation name (`MX`, `aaaa`,
/// `TYPE65`), as BIND's query log writes it.
pub fn qtype_from_name(name: &str) -> Option<u16> {
    if let Some(n) = name
        .strip_prefix("TYPE")
        .or_else(|| name.strip_prefix("type"))
    {
        return n.parse().ok();
    }
    let t: hickory_proto::rr::RecordType = name.to_ascii_uppercase().parse().ok()?;
    Some(u16::from(t))
}

/// A class's number from its presentation name (`IN`, `CH`, `CLASS3`).
pub fn qclass_from_name(name: &str) -> Option<u16> {
    match name.to_ascii_uppercase().as_str() {
        "IN" => Some(1),
        "CH" => Some(3),
        "HS" => Some(4),
        "NONE" => Some(254),
        "ANY" => Some(255),
        c => c.strip_prefix("CLASS")?.parse().ok(),
    }
}

/// A minimal DNS query message (header + one question) for a name in
/// presentation form (`a.example.`, `\.`, `\065` escapes as BIND writes
/// them). For inputs that log a query but not its bytes (BIND's query log),
/// so that they go through the same parser as packets. `None` for a name
/// that does not fit the wire limits (label 63, name 255 octets).
pub fn build_query(id: u16, rd: bool, name: &str, qtype: u16, qclass: u16) -> Option<Vec<u8>> {
    let mut m = Vec::with_capacity(12 + name.len() + 6);
    m.extend_from_slice(&id.to_be_bytes());
    m.extend_from_slice(&[if rd { 0x01 } else { 0x00 }, 0x00]);
    m.extend_from_slice(&[0, 1, 0, 0, 0, 0, 0, 0]);
    let start = m.len();
    let b = name.as_bytes();
    let mut label: Vec<u8> = Vec::with_capacity(63);
    let mut i = 0;
    let labels_done = |m: &mut Vec<u8>, label: &mut Vec<u8>| -> Option<()> {
        if label.is_empty() || label.len() > 63 {
            return None;
        }
        m.push(label.len() as u8);
        m.extend_from_slice(label);
        label.clear();
        Some(())
    };
    if name != "." {
        while i < b.len() {
            match b[i] {
                b'\\' => {
                    let d = b.get(i + 1..i + 4);
                    if let Some(v) = d
                        .filter(|d| d.iter().all(u8::is_ascii_digit))
                        .and_then(|d| std::str::from_utf8(d).ok()?.parse::<u8>().ok())
                    {
                        label.push(v);
                        i += 4;
                    } else {
                        label.push(*b.get(i + 1)?);
                        i += 2;
                    }
                }
                b'.' => {
                    labels_done(&mut m, &mut label)?;
                    i += 1;
                }
                c => {
                    label.push(c);
                    i += 1;
                }
            }
        }
        if !label.is_empty() {
            labels_done(&mut m, &mut label)?;
        }
    }
    m.push(0);
    if m.len() - start > 255 {
        return None;
    }
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&qclass.to_be_bytes());
    Some(m)
}

#[cfg(test)]
mod build_tests {
    use super::*;

    #[test]
    fn a_built_query_parses_back() {
        let q = build_query(7, true, "Mail7.isp7.jp.sub.univ.test", 15, 1).unwrap();
        let mut name = Vec::new();
        let h = parse_head(&q, &mut name).unwrap();
        assert!(!h.response);
        assert_eq!(h.id, 7);
        assert_eq!(h.question.unwrap().qtype, 15);
        assert_eq!(name, b"mail7.isp7.jp.sub.univ.test");
        assert!(build_query(0, true, ".", 2, 1).is_some());
        assert!(build_query(0, true, "a..b", 1, 1).is_none());
        assert_eq!(qtype_from_name("MX"), Some(15));
        assert_eq!(qtype_from_name("aaaa"), Some(28));
        assert_eq!(qtype_from_name("TYPE65"), Some(65));
        assert_eq!(qclass_from_name("IN"), Some(1));
    }
}
