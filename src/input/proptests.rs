//! Properties of the parsers of untrusted input: Frame Streams, protobuf,
//! dnstap, BIND query log and maillog lines never panic, stay within their
//! bounds, and Frame Streams gives back the frames that were written.

use proptest::prelude::*;

use super::framestream::{self, ControlKind, Frame, Reader};
use super::logtime::Year;
use super::maillog::{Maillog, Servers};
use super::{bind_log, dnstap, protobuf};

const BIND: &str = "29-Nov-2026 11:22:35.100 queries: info: client @0x7fd4f6bd4098 10.53.0.25#53065 (mx.sub.univ.test): query: mx.sub.univ.test IN A +E(0)DCK (10.53.0.2)";
const POSTFIX: &str = "Nov 29 11:25:01 mx postfix/smtpd[300]: NOQUEUE: reject: RCPT from unknown[10.53.10.200]: 550 5.1.1 <user1@sub.univ.test>: Recipient address rejected: User unknown in local recipient table; from=<> to=<user1@sub.univ.test> proto=ESMTP helo=<x>";

proptest! {
    #[test]
    fn frame_streams_round_trip(frames in prop::collection::vec(prop::collection::vec(any::<u8>(), 1..300), 0..20)) {
        let mut s = framestream::control_frame(ControlKind::Start, Some(framestream::DNSTAP_CONTENT_TYPE));
        for f in &frames {
            s.extend(framestream::data_frame(f));
        }
        s.extend(framestream::control_frame(ControlKind::Stop, None));
        let mut r = Reader::new(&s[..]);
        let mut got = Vec::new();
        while let Some(f) = r.next_frame().unwrap() {
            if let Frame::Data(d) = f {
                got.push(d.to_vec());
            }
        }
        prop_assert_eq!(got, frames);
    }

    #[test]
    fn frame_streams_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..2000)) {
        let mut r = Reader::new(&bytes[..]);
        for _ in 0..1000 {
            match r.next_frame() {
                Ok(Some(Frame::Data(d))) => prop_assert!(d.len() <= framestream::MAX_DATA_FRAME),
                Ok(Some(Frame::Control(_))) => {}
                Ok(None) | Err(_) => break,
            }
        }
    }

    #[test]
    fn protobuf_and_dnstap_any_bytes(bytes in prop::collection::vec(any::<u8>(), 0..600)) {
        for f in protobuf::fields(&bytes) {
            if let Ok((_, protobuf::Value::Bytes(b))) = f {
                prop_assert!(b.len() <= bytes.len());
            }
        }
        let _ = dnstap::to_item(&bytes);
    }

    #[test]
    fn dnstap_messages_round_trip(kind in 1u64..15, port: u16, ts in 0i64..4_000_000_000_000_000, tcp: bool, msg in prop::collection::vec(any::<u8>(), 0..100)) {
        let (c, s) = ("10.0.0.1".parse().unwrap(), "10.0.0.2".parse().unwrap());
        let f = dnstap::encode(kind, c, port, s, tcp, ts, &msg);
        match dnstap::to_item(&f).unwrap() {
            Some(d) => {
                prop_assert_eq!((d.ts, d.client_port, d.tcp), (ts, port, tcp));
                prop_assert_eq!(d.message, msg);
            }
            None => prop_assert!(dnstap::MessageType::from(kind).counted().is_none()),
        }
    }

    /// Real lines cut, spliced and mutated never panic the parsers.
    #[test]
    fn log_lines_never_panic(cut in 0usize..400, junk in "\\PC{0,40}", at in 0usize..400) {
        for base in [BIND, POSTFIX] {
            let mut s: String = base.chars().take(cut).collect();
            let i = s.char_indices().map(|(i, _)| i).nth(at % (s.chars().count() + 1)).unwrap_or(s.len());
            s.insert_str(i, &junk);
            let _ = bind_log::parse_line(&s, Year::Fixed(2026));
            let mut m = Maillog::new(Servers { by_host: vec![], default: Some("10.0.0.1".parse().unwrap()) }, Year::Modified(0));
            let mut out = Vec::new();
            let _ = m.line(&s, &mut out);
            prop_assert!(out.len() <= 2003);
        }
    }

    #[test]
    fn any_text_line(s in "\\PC{0,300}") {
        let _ = bind_log::parse_line(&s, Year::Fixed(2026));
        let mut m = Maillog::new(Servers::default(), Year::Fixed(2026));
        let _ = m.line(&s, &mut Vec::new());
    }
}
