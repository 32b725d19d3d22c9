//! Decoded packet views shared by the decoders below the classifier: the
//! capture-side decoder (`decode`) makes them, the SMTP tracker (`smtp`) and
//! the DNS-over-TCP reassembler consume them. Borrowed from the packet buffer.

use std::net::IpAddr;

/// One TCP segment as seen on the wire, borrowed from the packet buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSegment<'a> {
    pub src: IpAddr,
    pub dst: IpAddr,
    pub src_port: u16,
    pub dst_port: u16,
    pub seq: u32,
    pub ack: u32,
    pub syn: bool,
    pub ack_flag: bool,
    pub fin: bool,
    pub rst: bool,
    pub payload: &'a [u8],
}
