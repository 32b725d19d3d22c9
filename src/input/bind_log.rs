//! BIND's query log (`category queries`, `querylog yes`) -> DNS query events.
//!
//! One line per query the server received, BIND 9.11 to 9.20, to a file
//! channel or through syslog, with or without `print-time` (any of its
//! formats, see [`super::logtime`]), `print-category`, `print-severity`:
//!
//! ```text
//! 29-Nov-2026 11:22:35.100 queries: info: client @0x7fd4f6bd4098 10.53.0.25#53065 (mx.sub.univ.test): query: mx.sub.univ.test IN A +E(0)DCK (10.53.0.2)
//! Nov 29 11:22:35 ns1 named[812]: client @0x7f.. 10.53.0.25#53065 (x.test): view int: query: x.test IN MX + (10.53.0.2)
//! 29-Nov-2026 11:22:35.100 client 10.53.0.25#53065: query: x.test IN A -T (10.53.0.2)     (9.9/9.10 style)
//! ```
//!
//! The log has the query but not its bytes and no response: each line is
//! turned into a minimal DNS query message (header with RD from the `+`
//! flag, one question: `dns::build_query`) so it goes through the same DNS
//! parser as a packet, marked `query_only` (no response will come: nothing
//! is pending, responses and rcodes are absent, not zero). Flags: `+`/`-`
//! recursion desired, `T` TCP, others (E, D, C, S, K, V) ignored.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::logtime::{self, Year};
use super::{DnsItem, Malformed};
use crate::dns;

/// One line of the query log; `Ok(None)`: a line of another kind (another
/// category in the same syslog file), not a query.
pub fn parse_line(line: &str, year: Year) -> Result<Option<DnsItem>, Malformed> {
    let Some(q) = line.find(" query: ") else {
        return Ok(None);
    };
    let Some(c) = line[..q].find("client ") else {
        return Ok(None);
    };
    let (ts, _) = logtime::parse(line, year).ok_or(Malformed::BadTime)?;
    // client [@0x...] ADDR#PORT[ (name)][: view V]
    let mut who = line[c + "client ".len()..q].split_whitespace();
    let mut addr = who.next().ok_or(Malformed::BadClient)?;
    if addr.starts_with('@') {
        addr = who.next().ok_or(Malformed::BadClient)?;
    }
    let addr = addr.trim_end_matches(':');
    let (ip, port) = addr.rsplit_once('#').ok_or(Malformed::BadClient)?;
    let client: IpAddr = ip.parse().map_err(|_| Malformed::BadClient)?;
    let client_port: u16 = port.parse().map_err(|_| Malformed::BadClient)?;
    // NAME CLASS TYPE FLAGS [(SERVER)]
    let mut q = line[q + " query: ".len()..].split_whitespace();
    let name = q.next().ok_or(Malformed::BadQuestion)?;
    let qclass = q
        .next()
        .and_then(dns::qclass_from_name)
        .ok_or(Malformed::BadQuestion)?;
    let qtype = q
        .next()
        .and_then(dns::qtype_from_name)
        .ok_or(Malformed::BadQtype)?;
    let flags = q.next().ok_or(Malformed::BadQuestion)?;
    let rd = match flags.as_bytes().first() {
        Some(b'+') => true,
        Some(b'-') => false,
        _ => return Err(Malformed::BadQuestion),
    };
    // E(0) is the EDNS version; T (TCP) is a flag of its own.
    let tcp = strip_edns(&flags[1..]).contains('T');
    let server = q
        .next()
        .and_then(|s| s.strip_prefix('(')?.strip_suffix(')')?.parse().ok())
        .unwrap_or(match client {
            IpAddr::V4(_) => IpAddr::V4(Ipv4Addr::UNSPECIFIED),
            IpAddr::V6(_) => IpAddr::V6(Ipv6Addr::UNSPECIFIED),
        });
    let message = dns::build_query(0, rd, name, qtype, qclass).ok_or(Malformed::BadName)?;
    Ok(Some(DnsItem {
        ts,
        client,
        server,
        client_port,
        tcp,
        query_only: true,
        message,
    }))
}

fn strip_edns(flags: &str) -> String {
    match (flags.find("E("), flags.find(')')) {
        (Some(a), Some(b)) if b > a => format!("{}{}", &flags[..a], &flags[b + 1..]),
        _ => flags.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::parse_rfc3339;

    const Y: Year = Year::Fixed(2026);

    fn item(line: &str) -> DnsItem {
        parse_line(line, Y).unwrap().unwrap()
    }

    fn qtype(d: &DnsItem) -> u16 {
        let mut name = Vec::new();
        dns::parse_head(&d.message, &mut name)
            .unwrap()
            .question
            .unwrap()
            .qtype
    }

    /// Lines as the lab's BIND 9.18.49 wrote them (print-time, -category, -severity).
    #[test]
    fn bind_9_18_file_channel() {
        let d = item(
            "29-Nov-2026 11:22:35.100 queries: info: client @0x7fd4f6bd4098 10.53.0.25#53065 (mx.sub.univ.test): query: mx.sub.univ.test IN A +E(0)DCK (10.53.0.2)",
        );
        assert_eq!(d.ts, parse_rfc3339("2026-11-29T11:22:35.100000Z").unwrap());
        assert_eq!(d.client, "10.53.0.25".parse::<IpAddr>().unwrap());
        assert_eq!(d.server, "10.53.0.2".parse::<IpAddr>().unwrap());
        assert_eq!((d.client_port, d.tcp, d.query_only), (53065, false, true));
        assert_eq!(qtype(&d), 1);
        assert_eq!(d.message[2] & 1, 1, "RD from +");
    }

    /// 9.11-9.16 without print-category/severity; TCP, no RD; IPv6 client.
    #[test]
    fn bind_9_11_to_9_16_variants() {
        let d = item(
            "05-Mar-2019 08:01:02.003 client @0x55d0c0a1b2c0 fd53::25#40001 (deal1.com): query: deal1.com IN MX -TE(0)K (fd53::2)",
        );
        assert_eq!(d.client, "fd53::25".parse::<IpAddr>().unwrap());
        assert!(d.tcp);
        assert_eq!(qtype(&d), 15);
        assert_eq!(d.message[2] & 1, 0);
        // A view, and no server address (9.9/9.10 style without @0x).
        let d = item(
            "05-Mar-2019 08:01:02.003 client 192.0.2.1#5353 (x.test): view internal: query: x.test IN PTR +",
        );
        assert_eq!(d.client_port, 5353);
        assert_eq!(qtype(&d), 12);
        assert!(d.server.is_unspecified());
    }

    /// Through syslog (year-less, host and program), and ISO 8601 print-time (9.18+).
    #[test]
    fn syslog_and_iso8601() {
        let d = item(
            "Nov 29 11:22:35 ns1 named[812]: client @0x7f0000000001 10.53.0.25#1234 (mail7.isp7.jp.sub.univ.test): query: mail7.isp7.jp.sub.univ.test IN A +E(0)D (10.53.0.2)",
        );
        assert_eq!(d.ts, parse_rfc3339("2026-11-29T11:22:35.000000Z").unwrap());
        let d = item(
            "Nov 29 11:22:35 ns1 named[812]: queries: info: client @0x7f0000000001 10.53.0.25#1234 (a.test): query: a.test IN TYPE65 + (10.53.0.2)",
        );
        assert_eq!(qtype(&d), 65);
        let d = item(
            "2026-11-29T11:22:35.250Z queries: info: client @0x7f1 10.53.0.25#9 (a.test): query: a.test IN AAAA +E(0) (10.53.0.2)",
        );
        assert_eq!(d.ts, parse_rfc3339("2026-11-29T11:22:35.250000Z").unwrap());
        assert_eq!(qtype(&d), 28);
    }

    #[test]
    fn other_lines_and_malformed_ones() {
        assert_eq!(
            parse_line(
                "29-Nov-2026 11:22:35.100 general: info: zone test/IN: loaded",
                Y
            ),
            Ok(None)
        );
        assert_eq!(
            parse_line("client @0x1 10.0.0.1#5 (a): query: a IN A +", Y),
            Err(Malformed::BadTime)
        );
        assert_eq!(
            parse_line(
                "29-Nov-2026 11:22:35.100 client @0x1 10.0.0.300#5 (a): query: a IN A +",
                Y
            ),
            Err(Malformed::BadClient)
        );
        assert_eq!(
            parse_line(
                "29-Nov-2026 11:22:35.100 client @0x1 10.0.0.1#5 (a): query: a IN BOGUS +",
                Y
            ),
            Err(Malformed::BadQtype)
        );
    }
}
