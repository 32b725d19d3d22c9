"""IPv4 / IPv6 / UDP / TCP with correct checksums, IPv4 fragmentation, TCP connections."""
import functools
import ipaddress
import struct

PROTO_TCP = 6
PROTO_UDP = 17

FIN, SYN, RST, PSH, ACK = 0x01, 0x02, 0x04, 0x08, 0x10


@functools.lru_cache(maxsize=None)
def addr(text):
    return ipaddress.ip_address(text).packed


def is_v6(text):
    return ':' in text


def csum_sum(data):
    """One's-complement 16-bit sum (not inverted), as an int in 0..0xffff."""
    if len(data) & 1:
        data += b'\0'
    s = int.from_bytes(data, 'big') % 0xFFFF
    if s == 0 and any(data):
        s = 0xFFFF
    return s


def checksum(data):
    return (~csum_sum(data)) & 0xFFFF


def ipv4(src, dst, proto, payload, ident=0, ttl=64, df=False, mf=False, frag_off=0, tos=0):
    """frag_off in bytes (multiple of 8)."""
    flags = (0x4000 if df else 0) | (0x2000 if mf else 0) | (frag_off // 8)
    hdr = struct.pack('!BBHHHBBH4s4s', 0x45, tos, 20 + len(payload), ident & 0xFFFF, flags,
                      ttl, proto, 0, addr(src), addr(dst))
    c = checksum(hdr)
    return hdr[:10] + struct.pack('!H', c) + hdr[12:] + payload


def ipv4_fragments(src, dst, proto, payload, ident, frag_size=1480, ttl=64):
    """Split a transport payload (already with its header and checksum) into fragments.
    frag_size: bytes of payload per fragment (rounded down to a multiple of 8)."""
    frag_size -= frag_size % 8
    out = []
    off = 0
    while off < len(payload):
        chunk = payload[off:off + frag_size]
        more = off + len(chunk) < len(payload)
        out.append(ipv4(src, dst, proto, chunk, ident=ident, ttl=ttl, mf=more, frag_off=off))
        off += len(chunk)
    return out


def hop_by_hop_padn(next_header):
    """8-byte Hop-by-Hop Options header holding one PadN option (6 bytes)."""
    return struct.pack('!BB', next_header, 0) + b'\x01\x04\x00\x00\x00\x00'


def ipv6(src, dst, proto, payload, hlim=64, ext=None, flow=0):
    """ext: optional list of ('hbh',) extension headers placed before the transport header."""
    nh = proto
    exthdrs = b''
    for e in reversed(ext or []):
        if e == 'hbh':
            exthdrs = hop_by_hop_padn(nh) + exthdrs
            nh = 0
        else:
            raise ValueError(e)
    body = exthdrs + payload
    return struct.pack('!IHBB16s16s', 0x60000000 | flow, len(body), nh, hlim, addr(src), addr(dst)) + body


def _pseudo(src, dst, proto, length):
    if is_v6(src):
        return addr(src) + addr(dst) + struct.pack('!IxxxB', length, proto)
    return addr(src) + addr(dst) + struct.pack('!xBH', proto, length)


def udp(src, dst, sport, dport, payload, zero_checksum=False):
    length = 8 + len(payload)
    hdr = struct.pack('!HHHH', sport, dport, length, 0)
    if zero_checksum and not is_v6(src):
        return hdr + payload
    c = checksum(_pseudo(src, dst, PROTO_UDP, length) + hdr + payload)
    if c == 0:
        c = 0xFFFF
    return hdr[:6] + struct.pack('!H', c) + payload


def tcp(src, dst, sport, dport, seq, ack, flags, payload=b'', window=64240, options=b''):
    options += b'\0' * (-len(options) % 4)
    off = (20 + len(options)) // 4
    hdr = struct.pack('!HHIIBBHHH', sport, dport, seq & 0xFFFFFFFF, ack & 0xFFFFFFFF,
                      off << 4, flags, window, 0, 0) + options
    c = checksum(_pseudo(src, dst, PROTO_TCP, len(hdr) + len(payload)) + hdr + payload)
    return hdr[:16] + struct.pack('!H', c) + hdr[18:] + payload


def ip(src, dst, proto, payload, ident=0, ext=None, ttl=64):
    if is_v6(src):
        return ipv6(src, dst, proto, payload, hlim=ttl, ext=ext)
    return ipv4(src, dst, proto, payload, ident=ident, ttl=ttl, df=(proto == PROTO_TCP))


def udp_packet(src, dst, sport, dport, payload, ident=0, ext=None, ttl=64):
    return ip(src, dst, PROTO_UDP, udp(src, dst, sport, dport, payload), ident=ident, ext=ext, ttl=ttl)


C, S = 0, 1  # directions: client->server, server->client


class TcpConn:
    """One TCP connection. Methods return IP packets (bytes) and advance sequence numbers;
    the caller decides the order and timing in which they are emitted."""

    MSS_OPT = b'\x02\x04\x05\xb4'  # MSS 1460

    def __init__(self, cip, cport, sip, sport, isn_c=1000, isn_s=5000, ident=1):
        self.ep = {C: (cip, cport), S: (sip, sport)}
        self.nxt = {C: isn_c, S: isn_s}
        self.ident = {C: ident, S: ident + 10000}

    def seg(self, d, flags, payload=b'', seq=None, ack=None, options=b''):
        (src, sp), (dst, dp) = self.ep[d], self.ep[1 - d]
        if seq is None:
            seq = self.nxt[d]
        if ack is None:
            ack = self.nxt[1 - d] if flags & ACK else 0
        t = tcp(src, dst, sp, dp, seq, ack, flags, payload, options=options)
        self.ident[d] += 1
        return ip(src, dst, PROTO_TCP, t, ident=self.ident[d])

    def syn(self):
        p = self.seg(C, SYN, options=self.MSS_OPT)
        return p

    def handshake(self):
        """[SYN, SYN-ACK, ACK]; sequence numbers advanced."""
        syn = self.seg(C, SYN, options=self.MSS_OPT)
        self.nxt[C] += 1
        synack = self.seg(S, SYN | ACK, options=self.MSS_OPT)
        self.nxt[S] += 1
        ack = self.seg(C, ACK)
        return [syn, synack, ack]

    def data(self, d, payload, mss=1460, split_at=None):
        """Segments carrying payload from direction d. split_at: explicit list of cut offsets."""
        cuts = sorted(set(split_at or []))
        if not cuts:
            cuts = list(range(mss, len(payload), mss))
        bounds = [0] + [c for c in cuts if 0 < c < len(payload)] + [len(payload)]
        out = []
        for a, b in zip(bounds, bounds[1:]):
            out.append(self.seg(d, PSH | ACK, payload[a:b]))
            self.nxt[d] += b - a
        return out

    def ack(self, d):
        return self.seg(d, ACK)

    def fin(self, d):
        p = self.seg(d, FIN | ACK)
        self.nxt[d] += 1
        return p

    def close(self, first=C):
        """[FIN from first, FIN-ACK from other, ACK from first]."""
        a = self.fin(first)
        b = self.fin(1 - first)
        c = self.ack(first)
        return [a, b, c]
