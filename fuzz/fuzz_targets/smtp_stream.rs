//! Any bytes as the two directions of an SMTP session, cut into segments at
//! fuzzer-chosen points: the tracker never panics and stays within its caps.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use mxwatch::decode::TcpSegment;
use mxwatch::smtp::{SmtpLimits, SmtpTracker};

fuzz_target!(|data: &[u8]| {
    let client = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
    let server = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 25));
    let mut t = SmtpTracker::new(SmtpLimits::default());
    let mut out = Vec::new();
    let (mut cseq, mut sseq) = (1000u32, 5000u32);
    let syn = TcpSegment {
        src: client,
        dst: server,
        src_port: 40000,
        dst_port: 25,
        seq: cseq - 1,
        ack: 0,
        syn: true,
        ack_flag: false,
        fin: false,
        rst: false,
        payload: &[],
    };
    t.on_segment(0, &syn, &mut out);
    let mut rest = data;
    let mut ts = 1;
    while let Some((&ctl, tail)) = rest.split_first() {
        let len = usize::from(ctl & 0x3f).min(tail.len());
        let (chunk, tail) = tail.split_at(len);
        rest = tail;
        let from_client = ctl & 0x80 != 0;
        // Bit 6: send this chunk 3 bytes early (an overlap / retransmission).
        let back = if ctl & 0x40 != 0 { 3 } else { 0 };
        let seg = TcpSegment {
            src: if from_client { client } else { server },
            dst: if from_client { server } else { client },
            src_port: if from_client { 40000 } else { 25 },
            dst_port: if from_client { 25 } else { 40000 },
            seq: if from_client {
                cseq.wrapping_sub(back)
            } else {
                sseq.wrapping_sub(back)
            },
            ack: if from_client { sseq } else { cseq },
            syn: false,
            ack_flag: true,
            fin: false,
            rst: false,
            payload: chunk,
        };
        ts += 1000;
        out.clear();
        t.on_segment(ts, &seg, &mut out);
        if from_client {
            cseq = cseq.wrapping_add(len as u32).wrapping_sub(back);
        } else {
            sseq = sseq.wrapping_add(len as u32).wrapping_sub(back);
        }
        assert!(t.flow_count() <= 1);
    }
});
