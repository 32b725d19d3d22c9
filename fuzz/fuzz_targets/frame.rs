//! Any bytes as a frame of any link type, through the whole capture-side
//! decoder (link/IP/transport, DNS over TCP reassembly, SMTP tracking), then
//! the DNS head parser on every DNS message found: nothing may panic, and
//! the fast path must agree with etherparse wherever it answers.
#![no_main]

use libfuzzer_sys::fuzz_target;
use mxwatch::decode::link::{self, LinkType};
use mxwatch::decode::{DecodeLimits, Decoder, DnsSighting, EventSink};
use mxwatch::smtp::SmtpEvent;

struct Sink(Vec<u8>);

impl EventSink for Sink {
    fn dns(&mut self, d: &DnsSighting<'_>) {
        let _ = mxwatch::dns::parse_head(d.payload, &mut self.0);
    }
    fn smtp(&mut self, _e: SmtpEvent) {}
}

const LINKS: [i32; 9] = [0, 1, 101, 108, 113, 228, 229, 276, 147];

fuzz_target!(|data: &[u8]| {
    let Some((&sel, frames)) = data.split_first() else {
        return;
    };
    let link = LinkType::from(LINKS[usize::from(sel) % LINKS.len()]);
    let mut decoder = Decoder::new(link, DecodeLimits::default());
    let mut sink = Sink(Vec::new());
    // Several frames: 2-byte length prefix each, so streams can build up.
    let mut rest = frames;
    let mut ts = 0;
    while rest.len() >= 2 {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 1600;
        let frame = &rest[2..(2 + len).min(rest.len())];
        rest = &rest[(2 + len).min(rest.len())..];
        ts += 1000;
        decoder.on_frame(
            ts,
            frame,
            frame.len() as u32 + u32::from(sel & 1),
            &mut sink,
        );
        if let Some(fast) = link::decode_fast(link, frame) {
            assert_eq!(fast, link::decode_etherparse(link, frame));
        }
    }
});
