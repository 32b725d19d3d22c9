//! Hand-written fast path for the frames that make up nearly all traffic:
//! Ethernet (up to two VLAN tags), Linux cooked, null/loopback or raw IP;
//! IPv4 without fragmentation or IPv6 without extension headers; UDP or TCP;
//! everything complete and consistent. Anything else (truncated, fragmented,
//! extension headers, odd lengths) returns `None` and goes to etherparse
//! (`link.rs`), which is also the reference this path is tested against:
//! for every frame where this path answers, the answer equals etherparse's.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::TcpSegment;
use super::link::{Decoded, LinkType, Transport, Udp};

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86dd;
const ETH_VLAN: [u16; 3] = [0x8100, 0x88a8, 0x9100];

fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

pub fn decode(link: LinkType, frame: &[u8]) -> Option<Decoded<'_>> {
    let (mut ether_type, mut at) = match link {
        LinkType::Ethernet if frame.len() >= 14 => (be16(frame, 12), 14),
        LinkType::LinuxSll if frame.len() >= 16 => (be16(frame, 14), 16),
        LinkType::LinuxSll2 if frame.len() >= 20 => (be16(frame, 0), 20),
        LinkType::Raw | LinkType::Ipv4 | LinkType::Ipv6 => match frame.first()? >> 4 {
            4 => (ETH_IPV4, 0),
            6 => (ETH_IPV6, 0),
            _ => return None,
        },
        _ => return None,
    };
    if link == LinkType::Ethernet {
        for _ in 0..2 {
            if !ETH_VLAN.contains(&ether_type) {
                break;
            }
            if frame.len() < at + 4 {
                return None;
            }
            ether_type = be16(frame, at + 2);
            at += 4;
        }
    }
    let ip = &frame[at..];
    let (src, dst, proto, payload) = match ether_type {
        ETH_IPV4 => {
            if ip.len() < 20 || ip[0] >> 4 != 4 {
                return None;
            }
            let ihl = usize::from(ip[0] & 0x0f) * 4;
            let total = usize::from(be16(ip, 2));
            let frag = be16(ip, 6);
            // MF set or a fragment offset: etherparse's business.
            if ihl < 20 || total < ihl || total > ip.len() || frag & 0x3fff != 0 {
                return None;
            }
            let src = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
            let dst = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
            (src, dst, ip[9], &ip[ihl..total])
        }
        ETH_IPV6 => {
            if ip.len() < 40 || ip[0] >> 4 != 6 {
                return None;
            }
            let len = usize::from(be16(ip, 4));
            if len == 0 || 40 + len > ip.len() {
                return None;
            }
            let src: [u8; 16] = ip[8..24].try_into().ok()?;
            let dst: [u8; 16] = ip[24..40].try_into().ok()?;
            (
                IpAddr::V6(Ipv6Addr::from(src)),
                IpAddr::V6(Ipv6Addr::from(dst)),
                ip[6],
                &ip[40..40 + len],
            )
        }
        _ => return None,
    };
    match proto {
        17 => {
            if payload.len() < 8 {
                return None;
            }
            let len = usize::from(be16(payload, 4));
            if len < 8 || len > payload.len() {
                return None;
            }
            Some(Decoded::Packet(Transport::Udp(Udp {
                src,
                dst,
                src_port: be16(payload, 0),
                dst_port: be16(payload, 2),
                payload: &payload[8..len],
                partial: false,
            })))
        }
        6 => {
            if payload.len() < 20 {
                return None;
            }
            let off = usize::from(payload[12] >> 4) * 4;
            if off < 20 || off > payload.len() {
                return None;
            }
            let flags = payload[13];
            Some(Decoded::Packet(Transport::Tcp(
                TcpSegment {
                    src,
                    dst,
                    src_port: be16(payload, 0),
                    dst_port: be16(payload, 2),
                    seq: be32(payload, 4),
                    ack: be32(payload, 8),
                    syn: flags & 0x02 != 0,
                    ack_flag: flags & 0x10 != 0,
                    fin: flags & 0x01 != 0,
                    rst: flags & 0x04 != 0,
                    payload: &payload[off..],
                },
                false,
            )))
        }
        _ => None,
    }
}
