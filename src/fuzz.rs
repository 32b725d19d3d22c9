//! The fuzz targets' bodies: each `fuzz/fuzz_targets/NAME.rs` is one call to
//! the function of the same name here, and `tests/fuzz_corpus.rs` calls the
//! same functions on every committed input (`fuzz/seeds/NAME/` and
//! `tests/fuzz-regressions/NAME-*`), so `cargo test` replays them on stable
//! Rust and a known crash fails the build. Each function panics (an assert)
//! when an invariant breaks; any bytes are valid input.

use std::net::{IpAddr, Ipv4Addr};

use crate::classify::ClassifyConfig;
use crate::decode::defrag::{DefragLimits, Fragment, Reassembler};
use crate::decode::link::{self, LinkType};
use crate::decode::{DecodeLimits, Decoder, DnsSighting, EventSink, TcpSegment};
use crate::detect::{ClientOverride, DetectorConfig};
use crate::engine::{EngineConfig, Merger, Stage, push_dns};
use crate::event::{Batch, Event};
use crate::input::framestream::{Frame, MAX_DATA_FRAME, Reader};
use crate::input::maillog::{Maillog, Servers};
use crate::input::{Year, bind_log, dnstap};
use crate::output::{Output, Sink};
use crate::smtp::{
    SmtpCommand, SmtpCommandKind, SmtpEvent, SmtpEventKind, SmtpLimits, SmtpTracker,
};
use crate::time::Bins;

/// A target's body: any bytes in, a panic when an invariant breaks.
pub type Target = fn(&[u8]);

/// Every target, by name (the fuzz/ binaries and the seed directories).
pub const TARGETS: &[(&str, Target)] = &[
    ("frame", frame),
    ("dns_head", dns_head),
    ("smtp_stream", smtp_stream),
    ("defrag", defrag),
    ("inputs", inputs),
    ("classifier", classifier),
    ("config", config),
];

struct NameSink(Vec<u8>);

impl EventSink for NameSink {
    fn dns(&mut self, d: &DnsSighting<'_>) {
        let _ = crate::dns::parse_head(d.payload, &mut self.0);
    }
    fn smtp(&mut self, _e: SmtpEvent) {}
}

const LINKS: [i32; 9] = [0, 1, 101, 108, 113, 228, 229, 276, 147];

/// Any bytes as a frame of any link type, through the whole capture-side
/// decoder (link/IP/transport, DNS over TCP reassembly, SMTP tracking), then
/// the DNS head parser on every DNS message found: nothing may panic, and
/// the fast path must agree with etherparse wherever it answers.
pub fn frame(data: &[u8]) {
    let Some((&sel, frames)) = data.split_first() else {
        return;
    };
    let link = LinkType::from(LINKS[usize::from(sel) % LINKS.len()]);
    let mut decoder = Decoder::new(link, DecodeLimits::default());
    let mut sink = NameSink(Vec::new());
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
}

/// Any bytes as a DNS message: the head parser never panics, keeps its name
/// bound, and agrees with itself on the question's name length.
pub fn dns_head(data: &[u8]) {
    let mut name = Vec::new();
    if let Ok(h) = crate::dns::parse_head(data, &mut name) {
        assert!(name.len() <= crate::dns::NAME_MAX);
        if let Some(q) = h.question {
            assert_eq!(q.name_len, name.len());
        }
    }
    let _ = crate::dns::parse_header(data);
}

/// Any bytes as the two directions of an SMTP session, cut into segments at
/// fuzzer-chosen points: the tracker never panics and stays within its caps.
pub fn smtp_stream(data: &[u8]) {
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
}

/// Arbitrary fragment sequences through the IP reassembler with small caps:
/// nothing may panic, the table never exceeds its caps, and every datagram
/// released is counted once (completed or from its first fragment).
pub fn defrag(data: &[u8]) {
    let limits = DefragLimits {
        max_datagrams: 4,
        max_datagram_bytes: 2048,
        max_total_bytes: 8192,
        max_fragments_per_datagram: 32,
        timeout_micros: 100,
    };
    let mut r = Reassembler::new(limits, |_, _| true);
    let mut released = 0u64;
    let mut ts = 0i64;
    // Each fragment: id (1 byte), offset (2 bytes, in bytes), flags (1 byte:
    // bit 0 more, bits 1-7 time step), length (1 byte), then its bytes.
    let mut rest = data;
    while rest.len() >= 5 {
        let (h, tail) = rest.split_at(5);
        let len = usize::from(h[4]).min(tail.len());
        let (bytes, tail) = tail.split_at(len);
        rest = tail;
        ts += i64::from(h[3] >> 1);
        let f = Fragment {
            src: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)),
            dst: IpAddr::V4(Ipv4Addr::new(10, 0, 0, 53)),
            id: u32::from(h[0] & 7),
            offset: u32::from(u16::from_be_bytes([h[1], h[2]])),
            more: h[3] & 1 != 0,
            data: bytes,
        };
        r.add(ts, &f, &mut |rel| {
            assert!(rel.udp.len() <= 2048 && (rel.whole || rel.udp.len() >= 8));
            released += 1;
        });
        assert!(r.in_progress() <= 4 && r.bytes_held() <= 8192);
    }
    r.flush(&mut |_| released += 1);
    let s = r.stats();
    assert_eq!(released, s.completed + s.first_fragment_fallbacks);
    assert_eq!((s.datagrams_in_progress, s.bytes_held), (0, 0));
}

/// Any bytes as the untrusted inputs of #14: a Frame Streams stream (file or
/// socket), each data frame as a dnstap protobuf, and every line as a BIND
/// query log line and a Postfix maillog line. Nothing panics; frames stay
/// within the Frame Streams limit; a dnstap message's bytes come from the frame.
pub fn inputs(data: &[u8]) {
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
            default: Some("192.0.2.25".parse().expect("an address")),
        },
        Year::Fixed(2026),
    );
    let mut out = Vec::new();
    for line in text.lines() {
        let _ = bind_log::parse_line(line, Year::Modified(0));
        let _ = m.line(line, &mut out);
        out.clear();
    }
}

/// Reads the fuzzer's bytes as small numbers.
struct Bytes<'a>(&'a [u8]);

impl Bytes<'_> {
    fn u8(&mut self) -> Option<u8> {
        let (&b, rest) = self.0.split_first()?;
        self.0 = rest;
        Some(b)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_be_bytes([self.u8()?, self.u8()?]))
    }
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
}

/// Labels names are made of: mail-server-like, appended search domains
/// (backscatter's unresolved names, what the learner looks for), MX targets.
const LABELS: [&str; 12] = [
    "mail", "mx1", "isp7", "example", "jp", "com", "co", "uk", "sub", "univ", "test", "www",
];

/// A DNS message: a query or a response (any rcode) for a name of
/// `LABELS`, as the decoder would hand it over.
fn dns_message(b: &mut Bytes<'_>) -> Option<Vec<u8>> {
    let id = b.u16()?;
    let flags = b.u8()?;
    let qtype = [1u16, 28, 12, 15, 16, 6, 255][usize::from(flags >> 5) % 7];
    let labels = usize::from(b.u8()? % 7) + 1;
    let mut m = Vec::with_capacity(64);
    m.extend(id.to_be_bytes());
    let response = flags & 0x10 != 0;
    m.push(if response { 0x81 } else { 0x01 });
    m.push(if response { 0x80 | (flags & 0x0f) } else { 0 });
    m.extend([0, 1, 0, 0, 0, 0, 0, 0]);
    for _ in 0..labels {
        let l = LABELS[usize::from(b.u8()?) % LABELS.len()];
        m.push(l.len() as u8);
        m.extend(l.as_bytes());
    }
    m.push(0);
    m.extend(qtype.to_be_bytes());
    m.extend([0, 1]);
    Some(m)
}

/// Events into one classifier + detector shard with small caps (8 clients,
/// 8 pending queries, short warm-up): DNS queries and responses built from
/// the fuzzer's bytes or taken raw (the pending table, the search-domain
/// learner, the client table's eviction), SMTP events of every kind, ticks
/// and time going back; closed bins merged and written as JSON. Nothing
/// panics, the client table stays within its cap, bins close in order.
pub fn classifier(data: &[u8]) {
    let mut b = Bytes(data);
    let Some(sel) = b.u8() else { return };
    let bin_micros = [1_000_000i64, 5_000_000, 60_000_000][usize::from(sel & 3) % 3];
    let max_clients = usize::from((sel >> 2) & 7) + 1;
    let ip = |i: u8| IpAddr::V4(Ipv4Addr::new(10, 0, 0, i % 12));
    let cfg = EngineConfig {
        detection: true,
        classify: ClassifyConfig {
            bins: Bins::new(bin_micros),
            max_clients,
            max_pending: 8,
            local_domains: if sel & 0x20 != 0 {
                vec!["sub.univ.test".into()]
            } else {
                Vec::new()
            },
            idle_bins_closed: 0,
            // Publishing's sketches kept in closed bins (`--publish`).
            keep_sketches: sel & 0x80 != 0,
        },
        detect: DetectorConfig {
            warmup_bins: 2,
            min_excess: 3,
            max_warmup_alerts_per_bin: 2,
            end_after_quiet_bins: 2,
            query_flood: sel & 0x40 != 0,
            ..DetectorConfig::default()
        },
        overrides: (sel & 0x80 != 0)
            .then(|| ClientOverride {
                ip: ip(1),
                ignore: false,
                floor_qps: None,
                ratio: None,
                mail_server: true,
                note: None,
            })
            .into_iter()
            .collect(),
        decode: DecodeLimits::default(),
    };
    let mut stage = Stage::new(&cfg, 1);
    let mut merger = Merger::new(&cfg);
    let mut out = Output::new(
        Box::new(std::io::sink()),
        "fuzz".into(),
        true,
        4,
        bin_micros,
    );
    let mut last_start = i64::MIN;
    let mut write = |closed: Vec<crate::engine::Closed>, merger: &mut Merger| {
        for c in merger.merge(closed) {
            assert!(c.bin.start > last_start, "bins close in order");
            last_start = c.bin.start;
            out.bin_lines(&c.bin, &c.alerts).expect("a sink");
        }
    };
    let mut ts = 1_768_471_200_000_000i64;
    let mut batch = Batch::with_capacity(16);
    while let Some(op) = b.u8() {
        // Time: forward by up to 2.5 bins, or back a little (out of order).
        let step = i64::from(op >> 3) * bin_micros / 12;
        ts += if op & 4 != 0 { step } else { -step / 4 };
        let (who, peer) = (b.u8().unwrap_or(0), b.u8().unwrap_or(1));
        match op & 3 {
            0 | 1 => {
                let raw;
                let payload = if op & 3 == 0 {
                    let Some(m) = dns_message(&mut b) else { break };
                    raw = m;
                    &raw[..]
                } else {
                    let n = usize::from(b.u8().unwrap_or(0) % 64);
                    b.take(n)
                };
                push_dns(
                    &mut batch,
                    &DnsSighting {
                        ts,
                        client: ip(who),
                        server: ip(peer | 0x80),
                        client_port: 1024 + u16::from(who & 3),
                        tcp: who & 0x40 != 0,
                        query_only: who & 0x80 != 0,
                        payload,
                    },
                );
            }
            2 => {
                let k = b.u8().unwrap_or(0);
                let code = b.u16().unwrap_or(250) % 600;
                let kind = match k % 8 {
                    0 => SmtpEventKind::SessionStart,
                    1 => SmtpEventKind::OutboundSessionStart,
                    2 => SmtpEventKind::Command(SmtpCommand::MailFrom {
                        null_sender: k & 8 != 0,
                    }),
                    3 => SmtpEventKind::Command(SmtpCommand::Rcpt),
                    4 => SmtpEventKind::Command(SmtpCommand::Ehlo),
                    5 => SmtpEventKind::StartTls,
                    _ => SmtpEventKind::Reply {
                        code,
                        to: [
                            None,
                            Some(SmtpCommandKind::Rcpt),
                            Some(SmtpCommandKind::Data),
                        ][usize::from((k >> 4) & 3) % 3],
                        user_unknown: k & 8 != 0,
                        recipient: (k & 0x40 != 0).then(|| format!("u{who}@sub.univ.test").into()),
                    },
                };
                batch.events.push(Event::Smtp(SmtpEvent {
                    ts_micros: ts,
                    ip: ip(who),
                    peer: ip(peer),
                    kind,
                }));
            }
            _ => {
                stage.on_batch(&batch);
                batch.clear();
                stage.tick(ts);
                write(stage.take(), &mut merger);
            }
        }
        if batch.events.len() >= 8 {
            stage.on_batch(&batch);
            batch.clear();
        }
        assert!(stage.clients() <= max_clients, "client table over its cap");
    }
    stage.on_batch(&batch);
    stage.finish();
    write(stage.take(), &mut merger);
    if let Some(c) = merger.finish() {
        out.bin_lines(&c.bin, &c.alerts).expect("a sink");
    }
}

/// Any bytes as a config file: parsing never panics; a config that passes
/// validation prints (`mxwatch config --check`) as a config that parses
/// again to the same text, gives settings, and an engine built from them
/// reads a few frames and finishes.
pub fn config(data: &[u8]) {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(cfg) = crate::config::parse(text, "fuzz") else {
        return;
    };
    let printed = toml::to_string(&cfg).expect("a parsed config prints");
    let again = crate::config::parse(&printed, "printed")
        .unwrap_or_else(|e| panic!("the printed config does not parse: {e}\n{printed}"));
    assert_eq!(
        toml::to_string(&again).expect("prints"),
        printed,
        "printing is not stable"
    );
    let settings = crate::config::Settings::from_file(cfg, &fuzz_common())
        .unwrap_or_else(|e| panic!("a valid config gives no settings: {e}"));
    let mut engine = crate::engine::Engine::new(&settings.engine);
    let q = crate::dns::build_query(7, true, "www.example.com", 15, 1).expect("a query");
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    f.extend([0x45, 0, 0, (28 + q.len()) as u8, 0, 0, 0, 0, 64, 17, 0, 0]);
    f.extend([
        10,
        0,
        0,
        1,
        10,
        0,
        0,
        53,
        0x13,
        0x88,
        0,
        53,
        0,
        (8 + q.len()) as u8,
        0,
        0,
    ]);
    f.extend(&q);
    for k in 0..3 {
        let ts = 1_768_471_200_000_000 + k * settings.bin_micros;
        engine.frame(0, LinkType::Ethernet, ts, &f, f.len() as u32);
    }
    engine.finish();
}

/// The flags of a plain `mxwatch read` (no flag overrides the config).
fn fuzz_common() -> crate::cli::Common {
    use clap::Parser;
    let cli = crate::cli::Cli::try_parse_from(["mxwatch", "read", "-"]).expect("plain flags");
    match cli.command {
        crate::cli::Command::Read(r) => r.common,
        _ => unreachable!("a read command"),
    }
}
