//! Link, IP and transport layers: the one file that talks to etherparse.
//!
//! Input: a frame and its libpcap link type. Output: a [`Transport`] view that
//! borrows the frame (addresses, ports, payload), or the [`Layer`] where
//! decoding stopped. The strict etherparse slicer runs first (fast); only when
//! it fails does the lax slicer run, to keep what parsed from a frame cut short
//! by the snaplen or by IP fragmentation. A complete IPv4 or IPv6 fragment of a
//! UDP datagram comes out as a [`Fragment`] for the reassembler (`defrag`);
//! fragments cut short by the snaplen, and fragments of other protocols, keep
//! the old treatment (a first fragment read as far as it goes, later ones
//! skipped).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use etherparse::err::Layer as EpLayer;
use etherparse::{
    EtherType, IpNumber, LaxNetSlice, LaxSlicedPacket, NetSlice, SlicedPacket, TransportSlice,
};

use super::TcpSegment;
use super::defrag::Fragment;

/// libpcap link types we decode (numbers from the tcpdump.org LINKTYPE_ list).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkType {
    Ethernet,
    /// BSD loopback: 4-byte address family in host byte order (DLT_NULL).
    Null,
    /// OpenBSD loopback: the family in network byte order (DLT_LOOP).
    Loop,
    /// Raw IPv4 or IPv6 (LINKTYPE_RAW and the DLT_RAW aliases).
    Raw,
    Ipv4,
    Ipv6,
    /// Linux cooked capture v1 (16-byte header).
    LinuxSll,
    /// Linux cooked capture v2 (20-byte header).
    LinuxSll2,
    Unknown(i32),
}

impl From<i32> for LinkType {
    fn from(dlt: i32) -> Self {
        match dlt {
            1 => LinkType::Ethernet,
            0 => LinkType::Null,
            108 => LinkType::Loop,
            12 | 14 | 101 => LinkType::Raw,
            228 => LinkType::Ipv4,
            229 => LinkType::Ipv6,
            113 => LinkType::LinuxSll,
            276 => LinkType::LinuxSll2,
            other => LinkType::Unknown(other),
        }
    }
}

impl LinkType {
    /// A link type this decoder reads (everything but `Unknown`).
    pub fn is_supported(self) -> bool {
        !matches!(self, LinkType::Unknown(_))
    }
}

/// The link types decoded, for messages.
pub const SUPPORTED: &str = "Ethernet, Linux cooked v1/v2, raw IPv4/IPv6, BSD/OpenBSD loopback";

/// Where decoding of a frame stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Layer {
    Link,
    Ip,
    Transport,
}

impl Layer {
    pub fn name(self) -> &'static str {
        match self {
            Layer::Link => "link",
            Layer::Ip => "ip",
            Layer::Transport => "transport",
        }
    }
}

/// A frame that is not one we look into (ARP, ICMP, a later IP fragment...).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    NotIp,
    OtherTransport,
    /// A non-first IP fragment: no UDP/TCP header in it.
    LaterFragment,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Udp<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
    /// The payload is shorter than the headers said (snaplen or first fragment).
    pub partial: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport<'a> {
    Udp(Udp<'a>),
    Tcp(TcpSegment<'a>, bool),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decoded<'a> {
    Packet(Transport<'a>),
    /// A whole IP fragment of a UDP datagram (for the reassembler).
    Fragment(Fragment<'a>),
    Skip(Skip),
    /// Decoding stopped at this layer (malformed, or cut short when the
    /// capture length is below the wire length).
    Stopped(Layer),
}

/// Decodes one frame of the given link type: the hand-written fast path for
/// well-formed common frames, etherparse for the rest.
pub fn decode(link: LinkType, frame: &[u8]) -> Decoded<'_> {
    decode_fast(link, frame).unwrap_or_else(|| decode_etherparse(link, frame))
}

/// The hand-written fast path alone: `None` where it defers to etherparse.
pub fn decode_fast(link: LinkType, frame: &[u8]) -> Option<Decoded<'_>> {
    super::fast::decode(link, frame)
}

/// Decodes one frame with etherparse only (the reference for the fast path).
pub fn decode_etherparse(link: LinkType, frame: &[u8]) -> Decoded<'_> {
    // Hand-strip the pseudo-headers etherparse has no slicer for.
    let (ether_type, rest) = match link {
        LinkType::Ethernet => {
            return match SlicedPacket::from_ethernet(frame) {
                Ok(p) => from_strict(&p),
                Err(_) => match LaxSlicedPacket::from_ethernet(frame) {
                    Ok(p) => from_lax(&p),
                    Err(_) => Decoded::Stopped(Layer::Link),
                },
            };
        }
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => {
            return match SlicedPacket::from_ip(frame) {
                Ok(p) => from_strict(&p),
                Err(_) => match LaxSlicedPacket::from_ip(frame) {
                    Ok(p) => from_lax(&p),
                    Err(_) => Decoded::Stopped(Layer::Ip),
                },
            };
        }
        LinkType::Null | LinkType::Loop => {
            let Some(fam) = frame.get(..4) else {
                return Decoded::Stopped(Layer::Link);
            };
            let fam = [fam[0], fam[1], fam[2], fam[3]];
            let family = if link == LinkType::Null {
                u32::from_ne_bytes(fam)
            } else {
                u32::from_be_bytes(fam)
            };
            // AF_INET is 2 everywhere; AF_INET6 is 10 (Linux), 24, 28 or 30 (BSDs).
            let et = match family {
                2 => EtherType::IPV4,
                10 | 24 | 28 | 30 => EtherType::IPV6,
                _ => return Decoded::Skip(Skip::NotIp),
            };
            (et, &frame[4..])
        }
        LinkType::LinuxSll => match frame.get(14..16) {
            Some(p) => (EtherType(u16::from_be_bytes([p[0], p[1]])), &frame[16..]),
            None => return Decoded::Stopped(Layer::Link),
        },
        LinkType::LinuxSll2 => match (frame.get(..2), frame.len() >= 20) {
            (Some(p), true) => (EtherType(u16::from_be_bytes([p[0], p[1]])), &frame[20..]),
            _ => return Decoded::Stopped(Layer::Link),
        },
        LinkType::Unknown(_) => return Decoded::Stopped(Layer::Link),
    };
    match SlicedPacket::from_ether_type(ether_type, rest) {
        Ok(p) => from_strict(&p),
        Err(_) => from_lax(&LaxSlicedPacket::from_ether_type(ether_type, rest)),
    }
}

/// The fragment header of an IPv6 extension chain: (offset in bytes, more
/// fragments, identification, next header, where the fragment's data starts
/// in `exts`). Bounds-checked like [`later_v6_fragment`].
fn v6_fragment_header(first: IpNumber, exts: &[u8]) -> Option<(u32, bool, u32, u8, usize)> {
    let (mut next, mut at) = (first.0, 0usize);
    loop {
        let rest = exts.get(at..)?;
        let len = match next {
            // RFC 8200 §4.5: next header, reserved, offset (13 bits) + M, identification.
            44 => {
                let h = rest.get(..8)?;
                let off_m = u16::from_be_bytes([h[2], h[3]]);
                let id = u32::from_be_bytes([h[4], h[5], h[6], h[7]]);
                return Some((u32::from(off_m >> 3) * 8, off_m & 1 != 0, id, h[0], at + 8));
            }
            0 | 43 | 60 => (usize::from(*rest.get(1)?) + 1) * 8,
            51 => (usize::from(*rest.get(1)?) + 2) * 4,
            _ => return None,
        };
        next = *rest.first()?;
        if len > rest.len() {
            return None;
        }
        at += len;
    }
}

/// An IPv4 UDP fragment, whole (not cut by the snaplen), as a [`Fragment`].
fn v4_fragment<'a>(h: &etherparse::Ipv4HeaderSlice<'_>, data: &'a [u8]) -> Decoded<'a> {
    let (src, dst) = v4_addrs(h);
    Decoded::Fragment(Fragment {
        src,
        dst,
        id: u32::from(h.identification()),
        offset: u32::from(h.fragments_offset().value()) * 8,
        more: h.more_fragments(),
        data,
    })
}

/// An IPv6 UDP fragment as a [`Fragment`], when the fragment header is the
/// last extension header before the data (else `None`: the old treatment).
fn v6_fragment<'a>(
    h: &etherparse::Ipv6HeaderSlice<'_>,
    exts: &[u8],
    data: &'a [u8],
) -> Option<Decoded<'a>> {
    let (offset, more, id, next, data_at) = v6_fragment_header(h.next_header(), exts)?;
    if next != 17 || data_at != exts.len() {
        return None;
    }
    let (src, dst) = v6_addrs(h);
    Some(Decoded::Fragment(Fragment {
        src,
        dst,
        id,
        offset,
        more,
        data,
    }))
}

/// An IPv6 fragment that is not the first (no UDP/TCP header in it).
/// The extension chain is walked here, bounds-checked: etherparse's
/// extension iterator read past the slice on a lax-parsed header (found by
/// the `frame` fuzz target under AddressSanitizer).
fn later_v6_fragment(first: IpNumber, exts: &[u8]) -> bool {
    let (mut next, mut rest) = (first.0, exts);
    loop {
        let len = match next {
            // Fragment header (RFC 8200 §4.5): offset in the top 13 bits of bytes 2-3.
            44 => {
                return rest
                    .get(2..4)
                    .is_some_and(|o| u16::from_be_bytes([o[0], o[1]]) >> 3 != 0);
            }
            // Hop-by-hop, routing, destination options: (len + 1) * 8 bytes.
            0 | 43 | 60 => match rest.get(1) {
                Some(&l) => (usize::from(l) + 1) * 8,
                None => return false,
            },
            // Authentication header (RFC 4302): (len + 2) * 4 bytes.
            51 => match rest.get(1) {
                Some(&l) => (usize::from(l) + 2) * 4,
                None => return false,
            },
            _ => return false,
        };
        let Some(&n) = rest.first() else { return false };
        if len > rest.len() {
            return false;
        }
        next = n;
        rest = &rest[len..];
    }
}

fn v4_addrs(h: &etherparse::Ipv4HeaderSlice<'_>) -> (IpAddr, IpAddr) {
    (
        IpAddr::V4(Ipv4Addr::from(h.source())),
        IpAddr::V4(Ipv4Addr::from(h.destination())),
    )
}

fn v6_addrs(h: &etherparse::Ipv6HeaderSlice<'_>) -> (IpAddr, IpAddr) {
    (
        IpAddr::V6(Ipv6Addr::from(h.source())),
        IpAddr::V6(Ipv6Addr::from(h.destination())),
    )
}

fn from_strict<'a>(p: &SlicedPacket<'a>) -> Decoded<'a> {
    let (src, dst, payload) = match &p.net {
        Some(NetSlice::Ipv4(v4)) => {
            let pl = v4.payload();
            if pl.fragmented && pl.ip_number == IpNumber::UDP {
                return v4_fragment(&v4.header(), pl.payload);
            }
            if pl.fragmented && v4.header().fragments_offset().value() != 0 {
                return Decoded::Skip(Skip::LaterFragment);
            }
            let (src, dst) = v4_addrs(&v4.header());
            (src, dst, pl)
        }
        Some(NetSlice::Ipv6(v6)) => {
            if v6.payload().fragmented
                && let Some(f) =
                    v6_fragment(&v6.header(), v6.extensions().slice(), v6.payload().payload)
            {
                return f;
            }
            if v6.payload().fragmented
                && later_v6_fragment(v6.header().next_header(), v6.extensions().slice())
            {
                return Decoded::Skip(Skip::LaterFragment);
            }
            let (src, dst) = v6_addrs(&v6.header());
            (src, dst, v6.payload())
        }
        _ => return Decoded::Skip(Skip::NotIp),
    };
    match &p.transport {
        Some(t @ (TransportSlice::Udp(_) | TransportSlice::Tcp(_))) => {
            transport(src, dst, t, false)
        }
        Some(_) => Decoded::Skip(Skip::OtherTransport),
        // etherparse leaves the transport unparsed in a fragment: the first
        // fragment of a UDP datagram still starts with the UDP header.
        None if payload.fragmented => {
            first_fragment_udp(src, dst, payload.ip_number, payload.payload)
        }
        None if payload.ip_number == IpNumber::UDP || payload.ip_number == IpNumber::TCP => {
            Decoded::Stopped(Layer::Transport)
        }
        None => Decoded::Skip(Skip::OtherTransport),
    }
}

/// A UDP or TCP slice as our view (`partial`: the payload was cut short).
fn transport<'a>(src: IpAddr, dst: IpAddr, t: &TransportSlice<'a>, partial: bool) -> Decoded<'a> {
    match t {
        TransportSlice::Udp(u) => Decoded::Packet(Transport::Udp(Udp {
            src,
            dst,
            src_port: u.source_port(),
            dst_port: u.destination_port(),
            payload: u.payload(),
            partial,
        })),
        TransportSlice::Tcp(t) => Decoded::Packet(Transport::Tcp(
            TcpSegment {
                src,
                dst,
                src_port: t.source_port(),
                dst_port: t.destination_port(),
                seq: t.sequence_number(),
                ack: t.acknowledgment_number(),
                syn: t.syn(),
                ack_flag: t.ack(),
                fin: t.fin(),
                rst: t.rst(),
                payload: t.payload(),
            },
            partial,
        )),
        _ => Decoded::Skip(Skip::OtherTransport),
    }
}

fn first_fragment_udp<'a>(
    src: IpAddr,
    dst: IpAddr,
    proto: IpNumber,
    data: &'a [u8],
) -> Decoded<'a> {
    if proto != IpNumber::UDP {
        return Decoded::Skip(Skip::OtherTransport);
    }
    if data.len() < 8 {
        return Decoded::Stopped(Layer::Transport);
    }
    Decoded::Packet(Transport::Udp(Udp {
        src,
        dst,
        src_port: u16::from_be_bytes([data[0], data[1]]),
        dst_port: u16::from_be_bytes([data[2], data[3]]),
        payload: &data[8..],
        partial: true,
    }))
}

fn from_lax<'a>(p: &LaxSlicedPacket<'a>) -> Decoded<'a> {
    let (src, dst, payload) = match &p.net {
        Some(LaxNetSlice::Ipv4(v4)) => {
            let pl = v4.payload();
            if pl.fragmented && !pl.incomplete && pl.ip_number == IpNumber::UDP {
                return v4_fragment(&v4.header(), pl.payload);
            }
            if pl.fragmented && v4.header().fragments_offset().value() != 0 {
                return Decoded::Skip(Skip::LaterFragment);
            }
            let (src, dst) = v4_addrs(&v4.header());
            (src, dst, pl)
        }
        Some(LaxNetSlice::Ipv6(v6)) => {
            if v6.payload().fragmented
                && !v6.payload().incomplete
                && let Some(f) =
                    v6_fragment(&v6.header(), v6.extensions().slice(), v6.payload().payload)
            {
                return f;
            }
            if v6.payload().fragmented
                && later_v6_fragment(v6.header().next_header(), v6.extensions().slice())
            {
                return Decoded::Skip(Skip::LaterFragment);
            }
            let (src, dst) = v6_addrs(&v6.header());
            (src, dst, v6.payload())
        }
        Some(LaxNetSlice::Arp(_)) => return Decoded::Skip(Skip::NotIp),
        None => {
            return Decoded::Stopped(match &p.stop_err {
                Some((_, l)) => layer_of(*l),
                None => Layer::Link,
            });
        }
    };
    match &p.transport {
        Some(t @ TransportSlice::Udp(_)) => {
            transport(src, dst, t, payload.incomplete || payload.fragmented)
        }
        Some(t @ TransportSlice::Tcp(_)) => transport(src, dst, t, payload.incomplete),
        Some(_) => Decoded::Skip(Skip::OtherTransport),
        None if payload.fragmented => {
            first_fragment_udp(src, dst, payload.ip_number, payload.payload)
        }
        None => match &p.stop_err {
            Some((_, l)) => Decoded::Stopped(layer_of(*l)),
            None if payload.ip_number == IpNumber::UDP || payload.ip_number == IpNumber::TCP => {
                Decoded::Stopped(Layer::Transport)
            }
            None => Decoded::Skip(Skip::OtherTransport),
        },
    }
}

fn layer_of(l: EpLayer) -> Layer {
    use EpLayer::*;
    match l {
        LinuxSllHeader | Ethernet2Header | EtherPayload | VlanHeader | MacsecHeader
        | MacsecPacket => Layer::Link,
        IpHeader
        | Ipv4Header
        | Ipv4Packet
        | IpAuthHeader
        | Ipv6Header
        | Ipv6Packet
        | Ipv6ExtHeader
        | Ipv6HopByHopHeader
        | Ipv6DestOptionsHeader
        | Ipv6RouteHeader
        | Ipv6FragHeader => Layer::Ip,
        _ => Layer::Transport,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;
    use proptest::prelude::*;

    /// A frame of one of the shapes the fast path takes, built by etherparse,
    /// then given `vlans` tags (802.1ad outer, 802.1Q inner) by hand.
    fn frame(v6: bool, tcp: bool, vlans: u8, payload: &[u8]) -> Vec<u8> {
        let eth = PacketBuilder::ethernet2([1, 2, 3, 4, 5, 6], [7, 8, 9, 10, 11, 12]);
        let mut out = Vec::new();
        if v6 {
            let ip = eth.ipv6(
                [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
                [0xfd; 16],
                64,
            );
            if tcp {
                ip.tcp(25, 40000, 1000, 64000)
                    .syn()
                    .ack(7)
                    .write(&mut out, payload)
                    .unwrap();
            } else {
                ip.udp(53000, 53).write(&mut out, payload).unwrap();
            }
        } else {
            let ip = eth.ipv4([10, 0, 0, 1], [10, 0, 0, 53], 64);
            if tcp {
                ip.tcp(40000, 53, 99, 64000)
                    .fin()
                    .write(&mut out, payload)
                    .unwrap();
            } else {
                ip.udp(53000, 53).write(&mut out, payload).unwrap();
            }
        }
        let inner = [out[12], out[13]];
        let tags: &[[u8; 2]] = match vlans {
            0 => &[],
            1 => &[[0x81, 0x00]],
            _ => &[[0x88, 0xa8], [0x81, 0x00]],
        };
        // Layout: MACs, then per tag (TPID, TCI), then the ether type.
        let mut f = out[..12].to_vec();
        for (i, t) in tags.iter().enumerate() {
            f.extend_from_slice(t);
            f.extend_from_slice(&[0, 10 + i as u8]);
        }
        f.extend_from_slice(&inner);
        f.extend_from_slice(&out[14..]);
        f
    }

    /// IPv6 UDP fragments go to the reassembler with their 32-bit
    /// identification, offset and M flag; the data starts after the
    /// fragment header (the first fragment's with the UDP header).
    #[test]
    fn ipv6_udp_fragments_are_handed_to_the_reassembler() {
        let frag = |offset_units: u16, more: bool| {
            let mut f = vec![0u8; 12];
            f.extend([0x86, 0xdd]);
            let payload_len: u16 = 8 + 16;
            f.extend([0x60, 0, 0, 0]);
            f.extend(payload_len.to_be_bytes());
            f.extend([44, 64]); // next header: fragment; hop limit
            f.extend(
                [0x20, 1, 0xd, 0xb8]
                    .iter()
                    .chain([0u8; 11].iter())
                    .chain([1u8].iter()),
            );
            f.extend([0xfd; 16]);
            f.extend([17, 0]); // fragment header: next UDP
            f.extend(((offset_units << 3) | u16::from(more)).to_be_bytes());
            f.extend(0x0102_0307u32.to_be_bytes());
            // 16 bytes: for the first fragment a UDP header to port 53.
            f.extend([0xcf, 0x08, 0x00, 0x35, 0x00, 0x40, 0, 0]);
            f.extend([0xab; 8]);
            f
        };
        let first = frag(0, true);
        match decode(LinkType::Ethernet, &first) {
            Decoded::Fragment(f) => {
                assert_eq!((f.id, f.offset, f.more), (0x0102_0307, 0, true));
                assert_eq!(f.data, &first[first.len() - 16..]);
            }
            other => panic!("first fragment: {other:?}"),
        }
        match decode(LinkType::Ethernet, &frag(2, false)) {
            Decoded::Fragment(f) => assert_eq!((f.offset, f.more, f.data.len()), (16, false, 16)),
            other => panic!("later fragment: {other:?}"),
        }
        // Cut by the snaplen: the old treatment (first read as far as it
        // goes, later skipped), never the reassembler.
        let mut cut = frag(0, true);
        cut.truncate(cut.len() - 4);
        match decode(LinkType::Ethernet, &cut) {
            Decoded::Packet(Transport::Udp(u)) => assert_eq!((u.dst_port, u.partial), (53, true)),
            other => panic!("cut first fragment: {other:?}"),
        }
        let mut cut = frag(2, false);
        cut.truncate(cut.len() - 4);
        assert_eq!(
            decode(LinkType::Ethernet, &cut),
            Decoded::Skip(Skip::LaterFragment)
        );
    }

    /// The `frame` fuzz target's finding: a lax-parsed IPv6 frame whose
    /// extension headers claim more bytes than captured. Replayed in the
    /// fuzz input's format (link selector, then length-prefixed frames).
    #[test]
    fn fuzz_regression_ipv6_extension_chain() {
        let input = include_bytes!("../../tests/fuzz-regressions/frame-ipv6-ext-iter");
        let links = [0, 1, 101, 108, 113, 228, 229, 276, 147];
        let link = LinkType::from(links[usize::from(input[0]) % links.len()]);
        let mut rest = &input[1..];
        while rest.len() >= 2 {
            let len = usize::from(u16::from_be_bytes([rest[0], rest[1]])) % 1600;
            let end = (2 + len).min(rest.len());
            let _ = decode(link, &rest[2..end]);
            rest = &rest[end..];
        }
        // A hop-by-hop header before a later fragment is walked through.
        let mut exts = vec![44, 0, 0, 0, 0, 0, 0, 0]; // hop-by-hop: next = fragment, 8 bytes
        exts.extend([17, 0, 0x00, 0x10, 0, 0, 0, 1]); // fragment: offset 2
        assert!(later_v6_fragment(IpNumber(0), &exts));
        exts[10..12].copy_from_slice(&[0, 1]); // offset 0, more fragments
        assert!(!later_v6_fragment(IpNumber(0), &exts));
        assert!(
            !later_v6_fragment(IpNumber(0), &exts[..5]),
            "cut short: not a later fragment"
        );
    }

    proptest! {
        /// Arbitrary bytes under any link type never panic (fast path and etherparse).
        #[test]
        fn arbitrary_frames_never_panic(dlt in prop::sample::select(vec![0, 1, 12, 101, 108, 113, 228, 229, 276, 147]),
                                        bytes in proptest::collection::vec(any::<u8>(), 0..200)) {
            let _ = decode(LinkType::from(dlt), &bytes);
        }

        /// Wherever the fast path answers, it answers what etherparse does;
        /// and it answers for every well-formed common frame.
        #[test]
        fn fast_path_equals_etherparse(v6 in any::<bool>(), tcp in any::<bool>(), vlans in 0u8..3,
                                       payload in proptest::collection::vec(any::<u8>(), 0..80),
                                       cut in 0usize..200, flip in 0usize..200, byte in any::<u8>()) {
            let good = frame(v6, tcp, vlans, &payload);
            let fast = super::super::fast::decode(LinkType::Ethernet, &good);
            prop_assert!(fast.is_some(), "well-formed frame not taken");
            prop_assert_eq!(fast.unwrap(), decode_etherparse(LinkType::Ethernet, &good));
            // Damaged copies: cut short, or one byte changed.
            let mut bad = good.clone();
            if flip < bad.len() {
                bad[flip] = byte;
            }
            bad.truncate(cut.max(1));
            if let Some(f) = super::super::fast::decode(LinkType::Ethernet, &bad) {
                prop_assert_eq!(f, decode_etherparse(LinkType::Ethernet, &bad));
            }
            let raw_at = 14 + 4 * vlans as usize;
            if let Some(f) = super::super::fast::decode(LinkType::Raw, &good[raw_at..]) {
                prop_assert_eq!(f, decode_etherparse(LinkType::Raw, &good[raw_at..]));
            }
        }
    }
}
