//! dnstap payloads (the `Dnstap` protobuf of dnstap.info, `dnstap.proto`
//! beside this file) -> DNS events: the message bytes with the querier, the
//! server, the transport and the time of the message, as a packet would give
//! them. Decoded with the in-house [`super::protobuf`] reader (the fields are
//! few and flat; no code generation).
//!
//! Mapping: every `*_QUERY` message (the querier's query as the server saw
//! it or sent it) gives its `query_message` at `query_time`; every
//! `*_RESPONSE` its `response_message` at `response_time`. The client is
//! `query_address` (the querier: a stub for CLIENT_*, the resolver itself for
//! RESOLVER_*), the server `response_address`. So CLIENT_QUERY/RESPONSE from
//! a recursive server count exactly what a tap in front of it sees.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::protobuf::{self, Value};
use super::{DnsItem, Malformed};

/// `Message.Type` of dnstap.proto.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    AuthQuery,
    AuthResponse,
    ResolverQuery,
    ResolverResponse,
    ClientQuery,
    ClientResponse,
    ForwarderQuery,
    ForwarderResponse,
    StubQuery,
    StubResponse,
    ToolQuery,
    ToolResponse,
    UpdateQuery,
    UpdateResponse,
    Unknown(u64),
}

impl From<u64> for MessageType {
    fn from(v: u64) -> Self {
        use MessageType::*;
        match v {
            1 => AuthQuery,
            2 => AuthResponse,
            3 => ResolverQuery,
            4 => ResolverResponse,
            5 => ClientQuery,
            6 => ClientResponse,
            7 => ForwarderQuery,
            8 => ForwarderResponse,
            9 => StubQuery,
            10 => StubResponse,
            11 => ToolQuery,
            12 => ToolResponse,
            13 => UpdateQuery,
            14 => UpdateResponse,
            n => Unknown(n),
        }
    }
}

impl MessageType {
    /// Query (true) or response (false), for the kinds mxwatch counts;
    /// `None` for the others (stub, tool, update: not a server's clients).
    pub fn counted(self) -> Option<bool> {
        use MessageType::*;
        match self {
            AuthQuery | ResolverQuery | ClientQuery | ForwarderQuery => Some(true),
            AuthResponse | ResolverResponse | ClientResponse | ForwarderResponse => Some(false),
            _ => None,
        }
    }
}

/// The fields of one dnstap `Message` that mxwatch uses.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Message<'a> {
    pub kind: Option<u64>,
    pub protocol: Option<u64>,
    pub query_address: Option<&'a [u8]>,
    pub response_address: Option<&'a [u8]>,
    pub query_port: Option<u64>,
    pub query_time: (Option<u64>, u32),
    pub response_time: (Option<u64>, u32),
    pub query_message: Option<&'a [u8]>,
    pub response_message: Option<&'a [u8]>,
}

/// Parses a `Dnstap` frame down to its `Message` (field 14).
pub fn parse(frame: &[u8]) -> Result<Message<'_>, Malformed> {
    let mut inner = None;
    for f in protobuf::fields(frame) {
        let (n, v) = f.map_err(|_| Malformed::Protobuf)?;
        if n == 14 {
            inner = v.as_bytes();
        }
    }
    let inner = inner.ok_or(Malformed::NoMessage)?;
    let mut m = Message::default();
    for f in protobuf::fields(inner) {
        let (n, v) = f.map_err(|_| Malformed::Protobuf)?;
        let int = || v.as_u64();
        match (n, v) {
            (1, _) => m.kind = int(),
            (3, _) => m.protocol = int(),
            (4, Value::Bytes(b)) => m.query_address = Some(b),
            (5, Value::Bytes(b)) => m.response_address = Some(b),
            (6, _) => m.query_port = int(),
            (8, _) => m.query_time.0 = int(),
            (9, _) => m.query_time.1 = int().unwrap_or(0) as u32,
            (10, Value::Bytes(b)) => m.query_message = Some(b),
            (12, _) => m.response_time.0 = int(),
            (13, _) => m.response_time.1 = int().unwrap_or(0) as u32,
            (14, Value::Bytes(b)) => m.response_message = Some(b),
            _ => {}
        }
    }
    Ok(m)
}

fn addr(b: &[u8]) -> Option<IpAddr> {
    match b.len() {
        4 => Some(IpAddr::V4(Ipv4Addr::from(<[u8; 4]>::try_from(b).ok()?))),
        16 => Some(IpAddr::V6(Ipv6Addr::from(<[u8; 16]>::try_from(b).ok()?))),
        _ => None,
    }
}

fn micros((sec, nsec): (Option<u64>, u32)) -> Option<i64> {
    let sec = i64::try_from(sec?).ok()?;
    sec.checked_mul(1_000_000)?
        .checked_add((nsec.min(999_999_999) / 1000) as i64)
}

/// A dnstap frame as a DNS event; `Ok(None)` for message kinds not counted.
pub fn to_item(frame: &[u8]) -> Result<Option<DnsItem>, Malformed> {
    let m = parse(frame)?;
    let kind = MessageType::from(m.kind.ok_or(Malformed::NoType)?);
    let Some(is_query) = kind.counted() else {
        return Ok(None);
    };
    let (time, bytes) = if is_query {
        (m.query_time, m.query_message)
    } else {
        (m.response_time, m.response_message)
    };
    let ts = micros(time).ok_or(Malformed::NoTime)?;
    let bytes = bytes.ok_or(Malformed::NoDnsMessage)?;
    let client = m.query_address.and_then(addr).ok_or(Malformed::NoAddress)?;
    // A server that does not say its own address: the unspecified address.
    let server = m.response_address.and_then(addr).unwrap_or(match client {
        IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
        IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
    });
    Ok(Some(DnsItem {
        ts,
        client,
        server,
        client_port: m.query_port.unwrap_or(0) as u16,
        // SocketProtocol: UDP = 1; TCP, DoT, DoH, DNSCrypt-TCP, DoQ are streams.
        tcp: m.protocol.is_some_and(|p| p != 1 && p != 5),
        query_only: false,
        message: bytes.to_vec(),
    }))
}

/// Builds a dnstap frame (tests, fuzz corpus, the live test's sender).
#[allow(clippy::too_many_arguments)]
pub fn encode(
    kind: u64,
    client: IpAddr,
    client_port: u16,
    server: IpAddr,
    tcp: bool,
    ts_micros: i64,
    message: &[u8],
) -> Vec<u8> {
    use protobuf::write;
    let octets = |a: IpAddr| match a {
        IpAddr::V4(v) => v.octets().to_vec(),
        IpAddr::V6(v) => v.octets().to_vec(),
    };
    let query = MessageType::from(kind).counted().unwrap_or(true);
    let mut m = Vec::new();
    write::uint(&mut m, 1, kind);
    write::uint(&mut m, 2, if client.is_ipv4() { 1 } else { 2 });
    write::uint(&mut m, 3, if tcp { 2 } else { 1 });
    write::bytes(&mut m, 4, &octets(client));
    write::bytes(&mut m, 5, &octets(server));
    write::uint(&mut m, 6, client_port as u64);
    write::uint(&mut m, 7, 53);
    let (sec, nsec) = (
        ts_micros.div_euclid(1_000_000),
        ts_micros.rem_euclid(1_000_000) * 1000,
    );
    let (t_sec, t_nsec, msg) = if query { (8, 9, 10) } else { (12, 13, 14) };
    write::uint(&mut m, t_sec, sec as u64);
    write::fixed32(&mut m, t_nsec, nsec as u32);
    write::bytes(&mut m, msg, message);
    let mut d = Vec::new();
    write::bytes(&mut d, 1, b"mxwatch-test");
    write::bytes(&mut d, 14, &m);
    write::uint(&mut d, 15, 1);
    d
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_query_and_response_round_trip() {
        let c: IpAddr = "10.53.0.25".parse().unwrap();
        let s: IpAddr = "10.53.0.2".parse().unwrap();
        let f = encode(5, c, 4242, s, false, 1_795_439_599_123_456, b"\x12\x34");
        let d = to_item(&f).unwrap().unwrap();
        assert_eq!(
            (d.ts, d.client, d.server, d.client_port, d.tcp),
            (1_795_439_599_123_456, c, s, 4242, false)
        );
        assert_eq!(d.message, b"\x12\x34");
        let r = encode(6, c, 4242, s, true, 5_000_000, b"\x99");
        let d = to_item(&r).unwrap().unwrap();
        assert_eq!(
            (d.ts, d.tcp, d.message.as_slice()),
            (5_000_000, true, &b"\x99"[..])
        );
        // A tool query is not a server's client traffic.
        assert_eq!(to_item(&encode(11, c, 1, s, false, 0, b"x")).unwrap(), None);
        assert_eq!(to_item(b"\x08\x01"), Err(Malformed::NoMessage));
    }
}
