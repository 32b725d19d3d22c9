//! Any bytes as the untrusted inputs of #14: a Frame Streams stream (file or
//! socket), each data frame as a dnstap protobuf, and every line as a BIND
//! query log line and a Postfix maillog line. Nothing panics; frames stay
//! within the Frame Streams limit; a dnstap message's bytes come from the frame.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxwatch::input::framestream::{Frame, MAX_DATA_FRAME, Reader};
use mxwatch::input::maillog::{Maillog, Servers};
use mxwatch::input::{Year, bind_log, dnstap};

fuzz_target!(|data: &[u8]| {
    let mut r = Reader::new(data);
    for _ in 0..10_000 {
        match r.next_frame() {
            Ok(Some(Frame::Data(d))) => {
                assert!(d.len() <= MAX_DATA_FRAME);
                if let Ok(Some(item)) = dnstap::to_item(d) {
                    assert!(item.message.len() <= d.len());
                }
            }
            Ok(Some(Frame::Control(_))) => {}
            Ok(None) | Err(_) => break,
        }
    }
    let text = String::from_utf8_lossy(data);
    let mut m = Maillog::new(
        Servers {
            by_host: Vec::new(),
            default: Some("192.0.2.25".parse().unwrap()),
        },
        Year::Fixed(2026),
    );
    let mut out = Vec::new();
    for line in text.lines() {
        let _ = bind_log::parse_line(line, Year::Modified(0));
        let _ = m.line(line, &mut out);
        out.clear();
    }
});
