"""Captures of fragmented DNS over UDP, one edge case each (issue 13): fragments out of
order and interleaved, overlapping and duplicated, missing, and IPv6 fragment headers."""
import os
import struct

from . import dns, net
from .writer import LINKTYPE_ETHERNET, Trace

DNS_SERVER = '10.0.0.53'
DNS_SERVER6 = 'fd00::53'


def _eth():
    from .captures import eth
    return eth()


def _padded_query(ident, name, qtype, pad):
    """A query made large by an EDNS Padding option (12), so that it fragments."""
    return dns.message(ident, questions=[(name, qtype)], edns={'udp': 4096, 'options': [(12, b'\0' * pad)]})


def _v4_frags(src, dst, sport, dport, payload, ident, size):
    return net.ipv4_fragments(src, dst, net.PROTO_UDP, net.udp(src, dst, sport, dport, payload), ident=ident,
                              frag_size=size)


def _v6_frags(src, dst, sport, dport, payload, ident, size):
    """IPv6 packets with a Fragment header (RFC 8200 4.5) carrying `size`-byte pieces."""
    u = net.udp(src, dst, sport, dport, payload)
    size -= size % 8
    out = []
    for off in range(0, len(u), size):
        chunk = u[off:off + size]
        more = off + len(chunk) < len(u)
        fh = struct.pack('!BBHI', net.PROTO_UDP, 0, off | (1 if more else 0), ident)
        out.append(struct.pack('!IHBB16s16s', 0x60000000, len(fh) + len(chunk), 44, 64,
                               net.addr(src), net.addr(dst)) + fh + chunk)
    return out


def _answer(ident, name, qtype, n=12):
    """A response large enough to fragment: n TXT records."""
    txts = [(name, 'TXT', ['part-%02d-' % i + 'y' * 150]) for i in range(n)]
    return dns.message(ident, qr=True, questions=[(name, qtype)], answers=txts if qtype == 'TXT' else [],
                       edns={'udp': 4096})


def dns_fragment_out_of_order(out):
    """IPv4: a query in 3 fragments sent middle, last, first; its answer's 3 fragments
    interleaved with another answer's; a 41-byte query in 24-byte pieces last-first."""
    t, w = Trace(), _eth()
    cip, sip = '10.0.0.61', DNS_SERVER
    q = _padded_query(0x6101, 'ooo.example.test', 'TXT', 1200)
    f = _v4_frags(cip, sip, 46101, 53, q, 0x611, 520)
    for i in (1, 2, 0):
        t.add(w(f[i]), gap_us=40)
    a1 = _v4_frags(sip, cip, 53, 46101, _answer(0x6101, 'ooo.example.test', 'TXT'), 0x711, 800)
    q2 = dns.query(0x6102, 'other.example.test', 'TXT', edns={'udp': 4096})
    t.add(w(net.udp_packet(cip, sip, 46102, 53, q2, ident=0x612)), gap_us=300)
    a2 = _v4_frags(sip, cip, 53, 46102, _answer(0x6102, 'other.example.test', 'TXT'), 0x712, 800)
    for x, y in zip(a1, a2):
        t.add(w(x), gap_us=30)
        t.add(w(y), gap_us=30)
    q3 = dns.query(0x6103, 'tiny.example.test', 'A')
    for fr in reversed(_v4_frags(cip, sip, 46103, 53, q3, 0x613, 24)):
        t.add(w(fr), gap_us=20)
    t.add(w(net.udp_packet(sip, cip, 53, 46103, dns.response(0x6103, 'tiny.example.test', 'A',
                                                               answers=[('tiny.example.test', 'A', '192.0.2.7')]),
                           ident=0x713)), gap_us=500)
    t.write_pcap(os.path.join(out, 'dns-fragment-out-of-order.pcap'), LINKTYPE_ETHERNET)


def dns_fragment_overlap(out):
    """IPv4: a padded query whose middle fragment is sent twice (a duplicate), then a forged
    fragment overlapping the padding with other bytes before the real last fragment
    (first wins: the forged bytes stay; both are padding, the message is valid either way);
    an answer whose first fragment is duplicated."""
    t, w = Trace(), _eth()
    cip, sip = '10.0.0.62', DNS_SERVER
    q = _padded_query(0x6201, 'overlap.example.test', 'MX', 1400)
    u = net.udp(cip, sip, 46201, 53, q)
    f = net.ipv4_fragments(cip, sip, net.PROTO_UDP, u, ident=0x621, frag_size=512)
    t.add(w(f[0]), gap_us=40)
    t.add(w(f[1]), gap_us=40)
    t.add(w(f[1]), gap_us=40)  # duplicate
    forged = net.ipv4(cip, sip, net.PROTO_UDP, b'\xee' * 256, ident=0x621, mf=True, frag_off=768)
    t.add(w(forged), gap_us=40)  # overlaps the end of f[1] and the start of f[2] (padding)
    t.add(w(f[2]), gap_us=40)
    a = _v4_frags(sip, cip, 53, 46201, _answer(0x6201, 'overlap.example.test', 'MX', 0), 0x721, 1480)
    r = dns.response(0x6201, 'overlap.example.test', 'MX', answers=[('overlap.example.test', 'MX', (10, 'mx.example.test'))])
    t.add(w(net.udp_packet(sip, cip, 53, 46201, r, ident=0x721)), gap_us=600)
    t.write_pcap(os.path.join(out, 'dns-fragment-overlap.pcap'), LINKTYPE_ETHERNET)
    del a


def dns_fragment_missing(out):
    """IPv4: a padded query whose last fragment never arrives (read once, from its first
    fragment, when given up); a TXT answer missing its middle fragment; then a plain
    A exchange 40 s later (past the 30 s timeout, in packet time)."""
    t, w = Trace(), _eth()
    cip, sip = '10.0.0.63', DNS_SERVER
    q = _padded_query(0x6301, 'missing.example.test', 'A', 1400)
    f = _v4_frags(cip, sip, 46301, 53, q, 0x631, 1000)
    t.add(w(f[0]), gap_us=40)
    q2 = dns.query(0x6302, 'hole.example.test', 'TXT', edns={'udp': 4096})
    t.add(w(net.udp_packet(cip, sip, 46302, 53, q2, ident=0x632)), gap_us=300)
    a = _v4_frags(sip, cip, 53, 46302, _answer(0x6302, 'hole.example.test', 'TXT'), 0x732, 800)
    t.add(w(a[0]), gap_us=30)
    t.add(w(a[2]), gap_us=30)
    q3 = dns.query(0x6303, 'later.example.test', 'A')
    t.add(w(net.udp_packet(cip, sip, 46303, 53, q3, ident=0x633)), gap_us=40_000_000)
    r3 = dns.response(0x6303, 'later.example.test', 'A', answers=[('later.example.test', 'A', '192.0.2.8')])
    t.add(w(net.udp_packet(sip, cip, 53, 46303, r3, ident=0x733)), gap_us=500)
    t.write_pcap(os.path.join(out, 'dns-fragment-missing.pcap'), LINKTYPE_ETHERNET)


def dns_fragment_ipv6(out):
    """IPv6 Fragment headers: a padded AAAA query in 3 fragments (last-first) and its TXT-heavy
    answer in 3 fragments in order, from 2001:db8:53::10 to fd00::53; then an AAAA exchange
    unfragmented."""
    t, w = Trace(), _eth()
    cip, sip = '2001:db8:53::10', DNS_SERVER6
    q = _padded_query(0x6401, 'six.example.test', 'AAAA', 1300)
    for fr in reversed(_v6_frags(cip, sip, 46401, 53, q, 0x80006401, 600)):
        t.add(w(fr), gap_us=40)
    for fr in _v6_frags(sip, cip, 53, 46401, _answer(0x6401, 'six.example.test', 'TXT'), 0x80007401, 1232):
        t.add(w(fr), gap_us=30)
    q2 = dns.query(0x6402, 'plain6.example.test', 'AAAA')
    t.add(w(net.udp_packet(cip, sip, 46402, 53, q2)), gap_us=500)
    r2 = dns.response(0x6402, 'plain6.example.test', 'AAAA', answers=[('plain6.example.test', 'AAAA', '2001:db8::8')])
    t.add(w(net.udp_packet(sip, cip, 53, 46402, r2)), gap_us=500)
    t.write_pcap(os.path.join(out, 'dns-fragment-ipv6.pcap'), LINKTYPE_ETHERNET)


ALL = [dns_fragment_out_of_order, dns_fragment_overlap, dns_fragment_missing, dns_fragment_ipv6]
