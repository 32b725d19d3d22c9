"""DNS message builder with name compression and EDNS OPT."""
import struct

from . import net

QTYPE = {'A': 1, 'NS': 2, 'CNAME': 5, 'SOA': 6, 'PTR': 12, 'MX': 15, 'TXT': 16, 'AAAA': 28,
         'SRV': 33, 'OPT': 41, 'DS': 43, 'DNSKEY': 48, 'HTTPS': 65, 'ANY': 255, 'CAA': 257,
         'TYPE65280': 65280}
RCODE = {'NOERROR': 0, 'FORMERR': 1, 'SERVFAIL': 2, 'NXDOMAIN': 3, 'NOTIMP': 4, 'REFUSED': 5,
         'BADVERS': 16}


def qtype_num(t):
    if isinstance(t, int):
        return t
    if t.startswith('TYPE'):
        return int(t[4:])
    return QTYPE[t]


class Builder:
    def __init__(self, compress=True):
        self.buf = bytearray()
        self.offsets = {}
        self.compress = compress

    def name(self, name):
        name = name.rstrip('.')
        labels = name.split('.') if name else []
        for i in range(len(labels)):
            key = '.'.join(labels[i:]).lower()
            if self.compress and key in self.offsets:
                self.buf += struct.pack('!H', 0xC000 | self.offsets[key])
                return
            if len(self.buf) < 0x3FFF:
                self.offsets.setdefault(key, len(self.buf))
            lab = labels[i].encode()
            self.buf += bytes([len(lab)]) + lab
        self.buf += b'\0'

    def rdata(self, rtype, rd):
        """rd: bytes, or a tuple/str interpreted by type. Returns nothing; writes rdlen+rdata."""
        lenpos = len(self.buf)
        self.buf += b'\0\0'
        start = len(self.buf)
        if isinstance(rd, (bytes, bytearray)):
            self.buf += rd
        elif rtype == 1:
            self.buf += net.addr(rd)
        elif rtype == 28:
            self.buf += net.addr(rd)
        elif rtype in (2, 5, 12):
            self.name(rd)
        elif rtype == 15:
            pref, host = rd
            self.buf += struct.pack('!H', pref)
            self.name(host)
        elif rtype == 16:
            for s in ([rd] if isinstance(rd, str) else rd):
                b = s.encode()
                self.buf += bytes([len(b)]) + b
        elif rtype == 33:
            pri, w, port, host = rd
            self.buf += struct.pack('!HHH', pri, w, port)
            self.name(host)
        elif rtype == 6:
            mname, rname, serial = rd
            self.name(mname)
            self.name(rname)
            self.buf += struct.pack('!IIIII', serial, 3600, 600, 86400, 300)
        else:
            raise ValueError('no rdata encoder for type %d' % rtype)
        struct.pack_into('!H', self.buf, lenpos, len(self.buf) - start)

    def rr(self, name, rtype, rd, ttl=300, rclass=1):
        rtype = qtype_num(rtype)
        self.name(name)
        self.buf += struct.pack('!HHI', rtype, rclass, ttl)
        self.rdata(rtype, rd)


def message(ident, qr=False, opcode=0, aa=False, tc=False, rd=True, ra=None, rcode=0,
            questions=(), answers=(), authority=(), additional=(), edns=None, compress=True,
            counts=None):
    """questions: [(name, qtype[, qclass])]; answers etc: [(name, type, rdata[, ttl])].
    edns: None or dict(udp=1232, ext_rcode=0, version=0, do=False, options=[(code, bytes)]).
    counts: override (qd, an, ns, ar) in the header (for malformed messages)."""
    if ra is None:
        ra = qr
    if isinstance(rcode, str):
        rcode = RCODE[rcode]
    hdr_rcode = rcode & 0xF
    ext_rcode = rcode >> 4
    if ext_rcode and edns is None:
        edns = {}
    if edns is not None:
        ext_rcode = edns.get('ext_rcode', ext_rcode)
    flags = (qr << 15) | (opcode << 11) | (aa << 10) | (tc << 9) | (rd << 8) | (ra << 7) | hdr_rcode
    nar = len(additional) + (1 if edns is not None else 0)
    qd, an, ns, ar = counts or (len(questions), len(answers), len(authority), nar)
    b = Builder(compress)
    b.buf += struct.pack('!HHHHHH', ident & 0xFFFF, flags, qd, an, ns, ar)
    for q in questions:
        b.name(q[0])
        b.buf += struct.pack('!HH', qtype_num(q[1]), q[2] if len(q) > 2 else 1)
    for sec in (answers, authority, additional):
        for r in sec:
            b.rr(r[0], r[1], r[2], ttl=(r[3] if len(r) > 3 else 300))
    if edns is not None:
        ttl = (ext_rcode << 24) | (edns.get('version', 0) << 16) | (0x8000 if edns.get('do') else 0)
        opts = b''.join(struct.pack('!HH', c, len(v)) + v for c, v in edns.get('options', ()))
        b.buf += b'\0' + struct.pack('!HHIH', 41, edns.get('udp', 1232), ttl, len(opts)) + opts
    return bytes(b.buf)


def query(ident, name, qtype, rd=True, edns=None):
    return message(ident, questions=[(name, qtype)], rd=rd, edns=edns)


def response(ident, name, qtype, rcode='NOERROR', answers=(), authority=(), edns=None, aa=False):
    return message(ident, qr=True, rcode=rcode, aa=aa, questions=[(name, qtype)],
                   answers=answers, authority=authority, edns=edns)


def tcp_frame(msg):
    """DNS over TCP: 2-byte length prefix."""
    return struct.pack('!H', len(msg)) + msg
