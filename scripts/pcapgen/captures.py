"""One function per committed capture. Every one is deterministic (fixed seed, fixed epoch)."""
import os
import random
import struct

from . import dns, link, net, smtp
from .net import C, S, TcpConn
from .writer import (EPOCH_NS, LINKTYPE_ETHERNET, LINKTYPE_LINUX_SLL, LINKTYPE_LINUX_SLL2,
                     LINKTYPE_NULL, LINKTYPE_RAW, Trace)

DNS_SERVER = '10.0.0.53'
DNS_SERVER6 = 'fd00::53'
MAIL_SERVER = '10.0.25.25'
MAIL_SERVER6 = 'fd00::25'


# ---------------------------------------------------------------- helpers

def _ip_addrs(ip):
    if ip[0] >> 4 == 6:
        return ip[8:24], ip[24:40]
    return ip[12:16], ip[16:20]


def _mac(b):
    h = 0
    for c in b:
        h = (h * 131 + c) & 0xFFFFFFFF
    return b'\x02\x00' + struct.pack('!I', h)


def eth(vlans=()):
    def wrap(ip):
        s, d = _ip_addrs(ip)
        return link.ethernet(ip, src=_mac(s), dst=_mac(d), vlans=vlans)
    return wrap


def sll(ip):
    return link.sll(ip, src=_mac(_ip_addrs(ip)[0]))


def sll2(ip):
    return link.sll2(ip, src=_mac(_ip_addrs(ip)[0]))


def emit(trace, pkts, wrap, gap_us=200, **kw):
    for p in pkts:
        trace.add(wrap(p), gap_us=gap_us, **kw)


def answers_for(name, qtype, n=0):
    q = dns.qtype_num(qtype)
    base = name.lower()
    if q == 1:
        return [(name, 'A', '192.0.2.%d' % (1 + n % 250))]
    if q == 28:
        return [(name, 'AAAA', '2001:db8::%x' % (1 + n % 4000))]
    if q == 12:
        return [(name, 'PTR', 'host-%d.example.net' % n)]
    if q == 15:
        return [(name, 'MX', (10, 'mx1.' + base)), (name, 'MX', (20, 'mx2.' + base))]
    if q == 16:
        return [(name, 'TXT', ['v=spf1 ip4:192.0.2.0/24 -all'])]
    if q == 2:
        return [(name, 'NS', 'ns1.' + base), (name, 'NS', 'ns2.' + base)]
    if q == 33:
        return [(name, 'SRV', (0, 5, 5060, 'sip.example.test'))]
    if q == 255:
        return [(name, 'A', '192.0.2.10'), (name, 'MX', (10, 'mx1.' + base))]
    if q == 6:
        return [(name, 'SOA', ('ns1.example.test', 'hostmaster.example.test', 2026011501))]
    if q == 257:  # CAA: flags, tag length, tag, value
        return [(name, q, b'\x00\x05issueca.example.net')]
    if q == 65:   # HTTPS: SvcPriority 1, TargetName "." , no params
        return [(name, q, b'\x00\x01\x00')]
    if q == 43:   # DS: key tag, algorithm 13, digest type 2, SHA-256 digest
        return [(name, q, struct.pack('!HBB', 12345, 13, 2) + bytes(range(32)))]
    return [(name, q, bytes([0xde, 0xad, 0xbe, 0xef]))]


def soa_auth(zone='example.test'):
    return [(zone, 'SOA', ('ns1.' + zone, 'hostmaster.' + zone, 2026011501))]


def udp_exchange(trace, wrap, cip, sip, cport, ident, name, qtype, rcode='NOERROR', answered=True,
                 answers=None, qedns=None, redns=None, lat_us=900, gap_us=500, ext=None, ipid=None):
    ipid = ident if ipid is None else ipid
    q = dns.query(ident, name, qtype, edns=qedns)
    trace.add(wrap(net.udp_packet(cip, sip, cport, 53, q, ident=ipid, ext=ext)), gap_us=gap_us)
    if not answered:
        return
    if answers is None:
        answers = answers_for(name, qtype, ident) if rcode == 'NOERROR' else []
    auth = soa_auth() if rcode == 'NXDOMAIN' else []
    r = dns.response(ident, name, qtype, rcode=rcode, answers=answers, authority=auth, edns=redns)
    trace.add(wrap(net.udp_packet(sip, cip, 53, cport, r, ident=ipid + 1, ext=ext)), gap_us=lat_us)


SIMPLE_SET = [
    ('10.0.1.10', 'www.example.test', 'A', 'NOERROR'),
    ('10.0.1.11', 'example.test', 'MX', 'NOERROR'),
    ('10.0.1.10', 'nosuch.example.test', 'A', 'NXDOMAIN'),
    ('fd00::1:10', 'www.example.test', 'AAAA', 'NOERROR'),
    ('10.0.1.12', '25.25.0.10.in-addr.arpa', 'PTR', 'NOERROR'),
    ('10.0.1.11', 'lost.example.test', 'A', None),
]


def simple_set(trace, wrap, base_id=0x1000):
    """Six queries (A, MX, A, AAAA, PTR, A) and five responses (4 NOERROR, 1 NXDOMAIN)."""
    for i, (cip, name, qt, rc) in enumerate(SIMPLE_SET):
        sip = DNS_SERVER6 if ':' in cip else DNS_SERVER
        udp_exchange(trace, wrap, cip, sip, 40000 + i, base_id + i, name, qt,
                     rcode=rc or 'NOERROR', answered=rc is not None)


# ---------------------------------------------------------------- DNS captures

def dns_basic(out):
    t = Trace()
    w = eth()
    clients = ['10.0.0.11', '10.0.0.12', '10.0.0.13']
    plan = [
        ('www.example.test', 'A', 'NOERROR'),
        ('www.example.test', 'AAAA', 'NOERROR'),
        ('25.25.0.10.in-addr.arpa', 'PTR', 'NOERROR'),
        ('example.test', 'MX', 'NOERROR'),
        ('example.test', 'TXT', 'NOERROR'),
        ('example.test', 'NS', 'NOERROR'),
        ('_sip._udp.example.test', 'SRV', 'NOERROR'),
        ('private.example.test', 'TYPE65280', 'NOERROR'),
        ('MaIl.ExAmPlE.TeSt', 'A', 'NOERROR'),
        ('ExAmPlE.NeT', 'MX', 'NOERROR'),
        ('nosuchhost.example.test', 'A', 'NXDOMAIN'),
        ('NoSuchHost.Example.Test', 'MX', 'NXDOMAIN'),
        ('broken.example.test', 'MX', 'SERVFAIL'),
        ('blocked.example.test', 'A', 'REFUSED'),
        ('example.test', 'ANY', 'NOTIMP'),
        ('lost1.example.test', 'A', None),
        ('1.2.0.192.in-addr.arpa', 'PTR', None),
    ]
    for i, (name, qt, rc) in enumerate(plan):
        udp_exchange(t, w, clients[i % 3], DNS_SERVER, 33000 + i * 7, 0x2000 + i, name, qt,
                     rcode=rc or 'NOERROR', answered=rc is not None)
    # EDNS: query with version 1, server answers BADVERS (16): header rcode 0, OPT ext-rcode 1
    udp_exchange(t, w, clients[0], DNS_SERVER, 33500, 0x2100, 'edns.example.test', 'A',
                 rcode='BADVERS', answers=[], qedns={'version': 1, 'udp': 4096},
                 redns={'udp': 1232, 'ext_rcode': 1})
    # plain EDNS (no extended rcode) on a normal answer
    udp_exchange(t, w, clients[1], DNS_SERVER, 33501, 0x2101, 'edns-ok.example.test', 'A',
                 qedns={'udp': 4096, 'do': True}, redns={'udp': 1232})
    t.write_pcap(os.path.join(out, 'dns-basic.pcap'), LINKTYPE_ETHERNET)


def dns_vlan(out):
    t = Trace()
    simple_set(t, eth([(link.TPID_8021Q, 10)]))
    t.write_pcap(os.path.join(out, 'dns-vlan.pcap'), LINKTYPE_ETHERNET)


def dns_qinq(out):
    t = Trace()
    simple_set(t, eth([(link.TPID_8021AD, 100), (link.TPID_8021Q, 10)]), base_id=0x1000)
    simple_set(t, eth([(link.TPID_8021Q, 200), (link.TPID_8021Q, 20)]), base_id=0x1100)
    t.write_pcap(os.path.join(out, 'dns-qinq.pcap'), LINKTYPE_ETHERNET)


def dns_sll(out):
    t = Trace()
    simple_set(t, sll)
    t.write_pcap(os.path.join(out, 'dns-sll.pcap'), LINKTYPE_LINUX_SLL)


def dns_sll2(out):
    t = Trace()
    simple_set(t, sll2)
    t.write_pcap(os.path.join(out, 'dns-sll2.pcap'), LINKTYPE_LINUX_SLL2)


def dns_raw_ip(out):
    t = Trace()
    simple_set(t, link.raw)
    t.write_pcap(os.path.join(out, 'dns-raw-ip.pcap'), LINKTYPE_RAW)


def dns_null_loopback(out):
    t = Trace()
    simple_set(t, link.null)  # IPv6 with family 24
    udp_exchange(t, lambda p: link.null(p, af6=28), 'fd00::1:20', DNS_SERVER6, 41000, 0x1200, 'v6-28.example.test', 'AAAA')
    udp_exchange(t, lambda p: link.null(p, af6=30), 'fd00::1:21', DNS_SERVER6, 41001, 0x1201, 'v6-30.example.test', 'AAAA')
    t.write_pcap(os.path.join(out, 'dns-null-loopback.pcap'), LINKTYPE_NULL)


def dns_ipv6(out):
    t = Trace()
    w = eth()
    cl = ['fd00::1:10', 'fd00::1:11', '2001:db8:1::5']
    plan = [('www.example.test', 'AAAA', 'NOERROR'), ('www.example.test', 'A', 'NOERROR'),
            ('example.test', 'MX', 'NOERROR'), ('gone.example.test', 'AAAA', 'NXDOMAIN'),
            ('5.2.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.d.f.ip6.arpa', 'PTR', 'NOERROR')]
    for i, (name, qt, rc) in enumerate(plan):
        udp_exchange(t, w, cl[i % 3], DNS_SERVER6, 42000 + i, 0x3000 + i, name, qt, rcode=rc)
    # Hop-by-Hop options header (PadN) between IPv6 and UDP, on both query and response
    udp_exchange(t, w, cl[0], DNS_SERVER6, 42100, 0x3100, 'hbh.example.test', 'AAAA', ext=['hbh'])
    t.write_pcap(os.path.join(out, 'dns-ipv6.pcap'), LINKTYPE_ETHERNET)


def dns_tcp(out):
    t = Trace()
    w = eth()
    cip, sip = '10.0.0.21', DNS_SERVER
    # 1) one query whose 2-byte length prefix and body are split over 3 segments
    c = TcpConn(cip, 45001, sip, 53, isn_c=100000, isn_s=900000, ident=100)
    emit(t, c.handshake(), w)
    q = dns.tcp_frame(dns.query(0x4001, 'split.example.test', 'A'))
    emit(t, c.data(C, q, split_at=[1, 9]), w)       # [len hi] [len lo + 7 bytes] [rest]
    r = dns.tcp_frame(dns.response(0x4001, 'split.example.test', 'A', answers=answers_for('split.example.test', 'A')))
    emit(t, c.data(S, r), w)
    emit(t, c.close(first=C), w)
    # 2) three queries in one segment; two responses in one segment, that segment retransmitted
    c = TcpConn(cip, 45002, sip, 53, isn_c=200000, isn_s=800000, ident=200)
    emit(t, c.handshake(), w)
    names = [('multi1.example.test', 'A'), ('multi2.example.test', 'MX'), ('multi3.example.test', 'AAAA')]
    qs = b''.join(dns.tcp_frame(dns.query(0x4100 + i, n, qt)) for i, (n, qt) in enumerate(names))
    emit(t, c.data(C, qs), w)
    rs = [dns.tcp_frame(dns.response(0x4100 + i, n, qt, answers=answers_for(n, qt, i))) for i, (n, qt) in enumerate(names)]
    rs[2] = dns.tcp_frame(dns.response(0x4102, names[2][0], 'AAAA', rcode='NXDOMAIN', authority=soa_auth()))
    seg = c.data(S, rs[0] + rs[1])
    emit(t, seg, w)
    emit(t, seg, w, gap_us=200000)                  # retransmission: same seq, same bytes
    emit(t, c.data(S, rs[2]), w)
    emit(t, [c.ack(C)], w)
    emit(t, c.close(first=S), w)
    # 3) a retransmitted query segment, then its response
    c = TcpConn('10.0.0.22', 45003, sip, 53, isn_c=300000, isn_s=700000, ident=300)
    emit(t, c.handshake(), w)
    seg = c.data(C, dns.tcp_frame(dns.query(0x4200, 'retrans.example.test', 'TXT')))
    emit(t, seg, w)
    emit(t, seg, w, gap_us=300000)
    emit(t, c.data(S, dns.tcp_frame(dns.response(0x4200, 'retrans.example.test', 'TXT',
                                                    answers=answers_for('retrans.example.test', 'TXT')))), w)
    emit(t, c.close(first=C), w)
    t.write_pcap(os.path.join(out, 'dns-tcp.pcap'), LINKTYPE_ETHERNET)


def dns_fragment(out):
    t = Trace()
    w = eth()
    cip, sip = '10.0.0.31', DNS_SERVER
    big = 'big.example.test'
    txts = [(big, 'TXT', ['chunk-%02d-' % i + 'x' * 180]) for i in range(15)]  # ~3000 bytes
    # 1) query, then large response in 3 fragments (in order)
    q = dns.query(0x5001, big, 'TXT', edns={'udp': 4096})
    t.add(w(net.udp_packet(cip, sip, 46001, 53, q, ident=0x100)))
    r = dns.message(0x5001, qr=True, questions=[(big, 'TXT')], answers=txts, edns={'udp': 4096})
    u = net.udp(sip, cip, 53, 46001, r)
    for f in net.ipv4_fragments(sip, cip, net.PROTO_UDP, u, ident=0x7001, frag_size=1480):
        t.add(w(f), gap_us=30)
    # 2) the same kind of response, fragments delivered last-first
    q = dns.query(0x5002, big, 'TXT', edns={'udp': 4096})
    t.add(w(net.udp_packet(cip, sip, 46002, 53, q, ident=0x101)), gap_us=5000)
    r = dns.message(0x5002, qr=True, questions=[(big, 'TXT')], answers=txts, edns={'udp': 4096})
    u = net.udp(sip, cip, 53, 46002, r)
    for f in reversed(net.ipv4_fragments(sip, cip, net.PROTO_UDP, u, ident=0x7002, frag_size=1480)):
        t.add(w(f), gap_us=30)
    # 3) a fragmented query: EDNS padding option (12) makes it ~1700 bytes; small answer
    pad = dns.message(0x5003, questions=[('padded.example.test', 'A')], edns={'udp': 4096, 'options': [(12, b'\0' * 1650)]})
    u = net.udp(cip, sip, 46003, 53, pad)
    for f in net.ipv4_fragments(cip, sip, net.PROTO_UDP, u, ident=0x102, frag_size=1480):
        t.add(w(f), gap_us=30)
    r = dns.response(0x5003, 'padded.example.test', 'A', answers=answers_for('padded.example.test', 'A'))
    t.add(w(net.udp_packet(sip, cip, 53, 46003, r, ident=0x7003)), gap_us=900)
    # 4) an unfragmented control exchange
    udp_exchange(t, w, cip, sip, 46004, 0x5004, 'small.example.test', 'A', ipid=0x103)
    t.write_pcap(os.path.join(out, 'dns-fragment.pcap'), LINKTYPE_ETHERNET)


def dns_snaplen(out):
    """File snaplen 96; packet caplens cut at every layer."""
    t = Trace()
    w = eth()
    cip, sip = '10.0.0.41', DNS_SERVER
    cuts = [
        (10, 'cut10-in-ethernet.example.test'),      # inside the Ethernet header
        (30, 'cut30-in-ipv4.example.test'),           # inside the IPv4 header (14+16)
        (38, 'cut38-in-udp.example.test'),            # inside the UDP header (34+4)
        (50, 'cut50-in-dns-header.example.test'),     # inside the DNS header (42+8)
        (64, 'cut64-in-question.example.test'),       # inside the question name
        (90, 'cut90-full.test'),                      # fits whole: query is < 90 bytes
    ]
    for i, (cut, name) in enumerate(cuts):
        q = dns.query(0x6000 + i, name, 'A')
        t.add(w(net.udp_packet(cip, sip, 47000 + i, 53, q, ident=0x200 + i)), caplen=cut, gap_us=1000)
    # responses cut inside the answer section (96 bytes of a longer response)
    for i, (name, qt) in enumerate([('mx-cut.example.test', 'MX'), ('txt-cut.example.test', 'TXT')]):
        q = dns.query(0x6100 + i, name, qt)
        t.add(w(net.udp_packet(cip, sip, 47100 + i, 53, q, ident=0x300 + i)), caplen=96, gap_us=1000)
        r = dns.response(0x6100 + i, name, qt, answers=answers_for(name, qt))
        t.add(w(net.udp_packet(sip, cip, 53, 47100 + i, r, ident=0x400 + i)), caplen=96, gap_us=800)
    t.write_pcap(os.path.join(out, 'dns-snaplen.pcap'), LINKTYPE_ETHERNET, snaplen=96)


def dns_pcapng(out):
    """Two interfaces: 0 = eth0 (Ethernet, usec), 1 = eth1 (Ethernet, nsec tsresol)."""
    t = Trace()
    w = eth()
    for i, (cip, name, qt, rc) in enumerate(SIMPLE_SET):
        sip = DNS_SERVER6 if ':' in cip else DNS_SERVER
        ifid = i % 2
        q = dns.query(0x7000 + i, name, qt)
        t.add(w(net.udp_packet(cip, sip, 48000 + i, 53, q, ident=i)), ifid=ifid, gap_us=700, gap_ns=123)
        if rc is not None:
            r = dns.response(0x7000 + i, name, qt, rcode=rc,
                             answers=answers_for(name, qt) if rc == 'NOERROR' else [],
                             authority=soa_auth() if rc == 'NXDOMAIN' else [])
            t.add(w(net.udp_packet(sip, cip, 53, 48000 + i, r, ident=i + 100)), ifid=ifid, gap_us=900, gap_ns=7)
    t.write_pcapng(os.path.join(out, 'dns-pcapng.pcapng'), [
        {'linktype': LINKTYPE_ETHERNET, 'name': 'eth0', 'tsresol': 6},
        {'linktype': LINKTYPE_ETHERNET, 'name': 'eth1', 'tsresol': 9},
    ])


def dns_nanosecond(out):
    t = Trace()
    w = eth()
    for i, (cip, name, qt, rc) in enumerate(SIMPLE_SET):
        sip = DNS_SERVER6 if ':' in cip else DNS_SERVER
        q = dns.query(0x7100 + i, name, qt)
        t.add(w(net.udp_packet(cip, sip, 49000 + i, 53, q, ident=i)), gap_us=333, gap_ns=333 + i)
        if rc is not None:
            r = dns.response(0x7100 + i, name, qt, rcode=rc,
                             answers=answers_for(name, qt) if rc == 'NOERROR' else [],
                             authority=soa_auth() if rc == 'NXDOMAIN' else [])
            t.add(w(net.udp_packet(sip, cip, 53, 49000 + i, r, ident=i + 100)), gap_us=777, gap_ns=1)
    t.write_pcap(os.path.join(out, 'dns-nanosecond.pcap'), LINKTYPE_ETHERNET, nanosecond=True)


def dns_garbage(out):
    rng = random.Random(1234)
    t = Trace()
    w = eth()
    cip, sip = '10.0.0.51', DNS_SERVER
    hdr = lambda ident, qd, flags=0x0100: struct.pack('!HHHHHH', ident, flags, qd, 0, 0, 0)
    payloads = [
        ('random bytes', bytes(rng.getrandbits(8) for _ in range(40))),
        ('random bytes 2', bytes(rng.getrandbits(8) for _ in range(120))),
        ('too short (5 bytes)', b'\x12\x34\x01\x00\x00'),
        ('too short (11 bytes)', hdr(0x8002, 1)[:11]),
        ('empty payload', b''),
        ('qdcount 0', hdr(0x8003, 0)),
        ('compression loop', hdr(0x8004, 1) + b'\xc0\x0c' + struct.pack('!HH', 1, 1)),
        ('compression loop 2', hdr(0x8005, 1) + b'\x03abc\xc0\x0c' + struct.pack('!HH', 1, 1)),
        ('label 64', hdr(0x8006, 1) + b'\x40' + b'a' * 64 + b'\x04test\x00' + struct.pack('!HH', 1, 1)),
        ('name > 255', hdr(0x8007, 1) + (b'\x3f' + b'b' * 63) * 5 + b'\x00' + struct.pack('!HH', 1, 1)),
        ('qdcount 5, has 1', hdr(0x8008, 5) + b'\x03www\x07example\x04test\x00' + struct.pack('!HH', 1, 1)),
        ('truncated question', hdr(0x8009, 1) + b'\x03www\x07exa'),
        ('pointer past end', hdr(0x800a, 1) + b'\xc1\xff' + struct.pack('!HH', 1, 1)),
    ]
    good = [('good1.example.test', 'A'), ('good2.example.test', 'MX')]
    udp_exchange(t, w, cip, sip, 50000, 0x8100, good[0][0], good[0][1])
    for i, (_, p) in enumerate(payloads):
        t.add(w(net.udp_packet(cip, sip, 50001 + i, 53, p, ident=0x500 + i)), gap_us=700)
    udp_exchange(t, w, cip, sip, 50100, 0x8101, good[1][0], good[1][1])
    t.write_pcap(os.path.join(out, 'dns-garbage.pcap'), LINKTYPE_ETHERNET)


VOCAB = ['www', 'mail', 'mx', 'smtp', 'api', 'cdn', 'static', 'login', 'ns1', 'img', 'shop', 'news']
DOMAINS = ['example.com', 'example.net', 'example.org', 'isp10.jp', 'corp.example', 'univ.test',
           'mailhost.de', 'shop.example.fr', 'bank.example.co.uk', 'cloud.example.io']
LOCAL_SEARCH = 'sub.univ.test'


def dns_mixed(out, n_packets=4000, seed=2026):
    rng = random.Random(seed)
    t = Trace()
    servers4 = ['10.0.0.53', '10.0.0.54', '10.0.0.55']
    clients = []
    for i in range(300):
        if i % 10 == 9:
            ip = 'fd00:0:0:%x::%x' % (i // 50, i + 1)
            srv = DNS_SERVER6
        else:
            ip = '10.%d.%d.%d' % (1 + i // 200, (i // 20) % 10, 10 + i % 200)
            srv = servers4[i % 3]
        vlan = [(link.TPID_8021Q, 30)] if i % 15 == 4 else []
        tcp = i % 50 in (7, 9)  # a few IPv4 and IPv6 clients use DNS over TCP
        clients.append((ip, srv, eth(vlan), tcp))
    qtypes = ['A'] * 55 + ['AAAA'] * 18 + ['PTR'] * 9 + ['MX'] * 7 + ['TXT'] * 4 + ['NS', 'SRV', 'SOA', 'ANY', 'CAA', 'HTTPS', 'DS']
    ident = 0
    port = {}
    while len(t.frames) < n_packets:
        ci = rng.randrange(len(clients))
        cip, sip, w, tcp = clients[ci]
        ident = (ident + 7919) & 0xFFFF
        qt = rng.choice(qtypes)
        if qt == 'PTR':
            name = '%d.%d.2.192.in-addr.arpa' % (rng.randrange(1, 255), rng.randrange(0, 4))
        else:
            name = '%s%d.%s' % (rng.choice(VOCAB), rng.randrange(0, 20), rng.choice(DOMAINS))
        if rng.random() < 0.25:  # 0x20 mixed case
            name = ''.join(ch.upper() if rng.random() < 0.5 else ch for ch in name)
        x = rng.random()
        if x < 0.015:
            name = 'mail%d.isp%d.jp.%s' % (rng.randrange(1, 30), rng.randrange(1, 30), LOCAL_SEARCH)
            qt, rc = rng.choice(['A', 'MX', 'AAAA']), 'NXDOMAIN'
        elif x < 0.10:
            rc = 'NXDOMAIN'
        elif x < 0.11:
            rc = 'SERVFAIL'
        elif x < 0.13:
            rc = None  # unanswered
        else:
            rc = 'NOERROR'
        gap = rng.randrange(50, 4000)
        if tcp and rc is not None:
            port[ci] = port.get(ci, 30000) + 1
            c = TcpConn(cip, port[ci], sip, 53, isn_c=rng.getrandbits(32), isn_s=rng.getrandbits(32), ident=ident)
            pk = c.handshake()
            pk += c.data(C, dns.tcp_frame(dns.query(ident, name, qt)))
            pk += c.data(S, dns.tcp_frame(dns.response(ident, name, qt, rcode=rc,
                                                        answers=answers_for(name, qt, ident) if rc == 'NOERROR' else [],
                                                        authority=soa_auth() if rc == 'NXDOMAIN' else [])))
            pk += c.close(first=C)
            emit(t, pk, w, gap_us=rng.randrange(100, 400))
        else:
            udp_exchange(t, w, cip, sip, 1024 + rng.randrange(64000), ident, name, qt,
                         rcode=rc or 'NOERROR', answered=rc is not None, gap_us=gap,
                         lat_us=rng.randrange(200, 30000) if rng.random() < 0.2 else rng.randrange(200, 2000))
    t.frames.sort(key=lambda f: f[0])
    t.write_pcap(os.path.join(out, 'dns-mixed.pcap'), LINKTYPE_ETHERNET)


# ---------------------------------------------------------------- SMTP captures

def _smtp_write(t, out, name):
    t.write_pcap(os.path.join(out, name), LINKTYPE_ETHERNET)


def smtp_basic(out):
    t = Trace()
    w = eth()
    srv = MAIL_SERVER
    # 1) normal delivery, 2 recipients, one rejected (user unknown)
    c = TcpConn('192.0.2.10', 51001, srv, 25, isn_c=1111, isn_s=2222, ident=10)
    sc = smtp.script(helo='client1.example.net', mail_from='alice@example.net',
                     rcpts=[('bob@example.test', '250 2.1.5 Ok\r\n'), ('x@example.test', smtp.USER_UNKNOWN)])
    emit(t, smtp.session(c, sc), w, gap_us=2000)
    # 2) bounce with the null sender
    c = TcpConn('192.0.2.11', 51002, srv, 25, isn_c=3333, isn_s=4444, ident=20)
    sc = smtp.script(helo='bounce.example.org', mail_from='', rcpts=[('carol@example.test', '250 2.1.5 Ok\r\n')],
                     body='From: MAILER-DAEMON@example.org\r\nSubject: Undelivered Mail\r\n\r\nbounce\r\n.\r\n')
    emit(t, smtp.session(c, sc), w, gap_us=2000)
    # 3) lower-case commands
    c = TcpConn('192.0.2.12', 51003, srv, 25, isn_c=5555, isn_s=6666, ident=30)
    sc = smtp.script(helo='lower.example.com', mail_from='dave@example.com',
                     rcpts=[('erin@example.test', '250 2.1.5 Ok\r\n')], lower=True)
    emit(t, smtp.session(c, sc), w, gap_us=2000)
    _smtp_write(t, out, 'smtp-basic.pcap')


def smtp_pipelining(out):
    t = Trace()
    w = eth()
    c = TcpConn('192.0.2.20', 52001, MAIL_SERVER, 25, isn_c=10000, isn_s=20000, ident=40)
    sc = [(S, smtp.BANNER), (C, 'EHLO pipe.example.net\r\n'), (S, smtp.EHLO_REPLY),
          (C, 'MAIL FROM:<p@example.net>\r\nRCPT TO:<a@example.test>\r\nRCPT TO:<nobody@example.test>\r\nRCPT TO:<b@example.test>\r\nDATA\r\n'),
          (S, '250 2.1.0 Ok\r\n250 2.1.5 Ok\r\n' + smtp.USER_UNKNOWN.format(rcpt='nobody@example.test') +
           '250 2.1.5 Ok\r\n354 End data with <CR><LF>.<CR><LF>\r\n'),
          (C, 'Subject: pipelined\r\n\r\nbody\r\n.\r\nQUIT\r\n'),
          (S, '250 2.0.0 Ok: queued as 1234\r\n221 2.0.0 Bye\r\n')]
    emit(t, smtp.session(c, sc), w, gap_us=1500)
    _smtp_write(t, out, 'smtp-pipelining.pcap')


def smtp_split(out):
    t = Trace()
    w = eth()
    c = TcpConn('192.0.2.30', 53001, MAIL_SERVER, 25, isn_c=30000, isn_s=40000, ident=50)
    sc = smtp.script(helo='split.example.net', mail_from='s@example.net',
                     rcpts=[('a@example.test', '250 2.1.5 Ok\r\n'), ('ghost@example.test', smtp.USER_UNKNOWN)])
    # cut points: banner mid-code, EHLO mid-word, EHLO reply mid-line, MAIL FROM between CR and LF,
    # RCPT mid-address, 550 reply inside the code ("55" | "0 5.1.1"), DATA body in 3 pieces
    splits = {0: [2], 1: [3], 2: [5, 30], 3: [len('MAIL FROM:<s@example.net>\r')], 5: [12],
              8: [2], 10: [10, 30]}
    emit(t, smtp.session(c, sc, splits=splits), w, gap_us=1500)
    _smtp_write(t, out, 'smtp-split.pcap')


def smtp_retransmission(out):
    t = Trace()
    w = eth()
    c = TcpConn('192.0.2.40', 54001, MAIL_SERVER, 25, isn_c=50000, isn_s=60000, ident=60)
    syn = c.syn()
    t.add(w(syn))
    t.add(w(syn), gap_us=1000000)          # SYN retransmitted after 1 s (same ISN)
    c.nxt[C] += 1
    synack = c.seg(S, net.SYN | net.ACK, options=TcpConn.MSS_OPT)
    c.nxt[S] += 1
    t.add(w(synack), gap_us=300)
    t.add(w(c.ack(C)), gap_us=300)
    sc = smtp.script(helo='retx.example.net', mail_from='r@example.net',
                     rcpts=[('a@example.test', '250 2.1.5 Ok\r\n'), ('gone@example.test', smtp.USER_UNKNOWN)])
    for i, (d, text) in enumerate(sc):
        segs = c.data(d, text.encode())
        emit(t, segs, w, gap_us=1500)
        if i in (3, 6):                    # MAIL FROM and the 550 reply retransmitted
            emit(t, segs, w, gap_us=200000)
    emit(t, c.close(first=S), w)
    _smtp_write(t, out, 'smtp-retransmission.pcap')


def smtp_out_of_order(out):
    t = Trace()
    w = eth()
    c = TcpConn('192.0.2.50', 55001, MAIL_SERVER, 25, isn_c=70000, isn_s=80000, ident=70)
    emit(t, c.handshake(), w)
    emit(t, c.data(S, smtp.BANNER.encode()), w)
    emit(t, c.data(C, b'EHLO ooo.example.net\r\n'), w)
    emit(t, c.data(S, smtp.EHLO_REPLY.encode()), w)
    # pipelined commands as separate segments, delivered MAIL, RCPT2, RCPT1, DATA
    cmds = [b'MAIL FROM:<o@example.net>\r\n', b'RCPT TO:<a@example.test>\r\n', b'RCPT TO:<nouser@example.test>\r\n', b'DATA\r\n']
    segs = [c.data(C, x)[0] for x in cmds]
    emit(t, [segs[0], segs[2], segs[1], segs[3]], w, gap_us=50)
    reps = [b'250 2.1.0 Ok\r\n', b'250 2.1.5 Ok\r\n', smtp.USER_UNKNOWN.format(rcpt='nouser@example.test').encode(),
            b'354 End data with <CR><LF>.<CR><LF>\r\n']
    rsegs = [c.data(S, x)[0] for x in reps]
    emit(t, [rsegs[1], rsegs[0], rsegs[2], rsegs[3]], w, gap_us=50)
    # message body in 3 segments delivered 1, 3, 2
    body = c.data(C, b'Subject: ooo\r\n\r\n' + b'line of text\r\n' * 8 + b'.\r\n', split_at=[20, 60])
    emit(t, [body[0], body[2], body[1]], w, gap_us=50)
    emit(t, c.data(S, b'250 2.0.0 Ok: queued as 5678\r\n'), w)
    emit(t, c.data(C, b'QUIT\r\n'), w)
    emit(t, c.data(S, b'221 2.0.0 Bye\r\n'), w)
    emit(t, c.close(first=S), w)
    _smtp_write(t, out, 'smtp-out-of-order.pcap')


def smtp_one_side(out):
    t = Trace()
    w = eth()
    c = TcpConn('192.0.2.60', 56001, MAIL_SERVER, 25, isn_c=90000, isn_s=91000, ident=80)
    sc = smtp.script(helo='half1.example.net', mail_from='h@example.net',
                     rcpts=[('a@example.test', '250 2.1.5 Ok\r\n'), ('ghost@example.test', smtp.USER_UNKNOWN)])
    pk = smtp.session(c, sc)
    emit(t, [p for p in pk if _ip_addrs(p)[0] == net.addr('192.0.2.60')], w, gap_us=1500)   # client->server only
    c = TcpConn('192.0.2.61', 56002, MAIL_SERVER, 25, isn_c=92000, isn_s=93000, ident=90)
    sc = smtp.script(helo='half2.example.net', mail_from='h2@example.net',
                     rcpts=[('a@example.test', '250 2.1.5 Ok\r\n'), ('ghost2@example.test', smtp.USER_UNKNOWN)])
    pk = smtp.session(c, sc)
    emit(t, [p for p in pk if _ip_addrs(p)[0] == net.addr(MAIL_SERVER)], w, gap_us=1500)   # server->client only
    _smtp_write(t, out, 'smtp-one-side.pcap')


def _tls_records(rng):
    rnd = bytes(rng.getrandbits(8) for _ in range(32))
    ch_body = b'\x03\x03' + rnd + b'\x00' + b'\x00\x02\x13\x01' + b'\x01\x00' + b'\x00\x00'
    ch = b'\x01' + len(ch_body).to_bytes(3, 'big') + ch_body
    client_hello = b'\x16\x03\x01' + struct.pack('!H', len(ch)) + ch
    sh_body = b'\x03\x03' + bytes(rng.getrandbits(8) for _ in range(32)) + b'\x00' + b'\x13\x01' + b'\x00' + b'\x00\x00'
    sh = b'\x02' + len(sh_body).to_bytes(3, 'big') + sh_body
    server_hello = b'\x16\x03\x03' + struct.pack('!H', len(sh)) + sh + b'\x14\x03\x03\x00\x01\x01'

    def appdata(n, trap=b''):
        body = bytes(rng.getrandbits(8) for _ in range(n)) + trap + bytes(rng.getrandbits(8) for _ in range(n))
        return b'\x17\x03\x03' + struct.pack('!H', len(body)) + body
    # the encrypted-looking records contain SMTP-looking text that must NOT be parsed
    c_data = b'\x14\x03\x03\x00\x01\x01' + appdata(40, b'\r\nMAIL FROM:<trap@tls.test>\r\nRCPT TO:<trap@example.test>\r\n')
    s_data = appdata(30, b'\r\n550 5.1.1 <trap@example.test>: User unknown\r\n')
    return client_hello, server_hello, c_data, s_data


def smtp_starttls(out):
    rng = random.Random(25)
    t = Trace()
    w = eth()
    c = TcpConn('192.0.2.70', 57001, MAIL_SERVER, 25, isn_c=110000, isn_s=120000, ident=100)
    emit(t, c.handshake(), w)
    for d, text in [(S, smtp.BANNER), (C, 'EHLO tls.example.net\r\n'), (S, smtp.EHLO_REPLY),
                    (C, 'STARTTLS\r\n'), (S, '220 2.0.0 Ready to start TLS\r\n')]:
        emit(t, c.data(d, text.encode()), w, gap_us=1500)
    ch, sh, cd, sd = _tls_records(rng)
    emit(t, c.data(C, ch), w)
    emit(t, c.data(S, sh), w)
    emit(t, c.data(C, cd), w)
    emit(t, c.data(S, sd), w)
    emit(t, c.close(first=C), w)
    _smtp_write(t, out, 'smtp-starttls.pcap')


def smtp_ipv6(out):
    t = Trace()
    w = eth()
    c = TcpConn('2001:db8:25::10', 58001, MAIL_SERVER6, 25, isn_c=130000, isn_s=140000, ident=110)
    sc = smtp.script(helo='v6.example.net', mail_from='six@example.net',
                     rcpts=[('a@example.test', '250 2.1.5 Ok\r\n'), ('nobody6@example.test', smtp.USER_UNKNOWN)])
    emit(t, smtp.session(c, sc), w, gap_us=1500)
    _smtp_write(t, out, 'smtp-ipv6.pcap')


def smtp_vlan(out):
    t = Trace()
    w = eth([(link.TPID_8021Q, 25)])
    c = TcpConn('192.0.2.80', 59001, MAIL_SERVER, 25, isn_c=150000, isn_s=160000, ident=120)
    sc = smtp.script(helo='vlan.example.net', mail_from='v@example.net',
                     rcpts=[('a@example.test', '250 2.1.5 Ok\r\n'), ('nobodyv@example.test', smtp.USER_UNKNOWN)])
    emit(t, smtp.session(c, sc), w, gap_us=1500)
    _smtp_write(t, out, 'smtp-vlan.pcap')


REJECTS = [
    ('uu-postfix', smtp.USER_UNKNOWN, True),
    ('uu-plain', '550 User unknown\r\n', True),
    ('uu-multiline', '550-5.1.1 The email account that you tried to reach does not exist.\r\n'
                     '550-5.1.1 Please try double-checking the recipient\'s email address.\r\n'
                     '550 5.1.1 <{rcpt}>: User unknown\r\n', True),
    ('uu-nosuch', '550 5.1.1 <{rcpt}>... No such user\r\n', True),
    ('relay', '554 5.7.1 <{rcpt}>: Relay access denied\r\n', False),
    ('temp', '450 4.1.1 <{rcpt}>: Recipient address rejected: unverified address\r\n', False),
]


def smtp_user_unknown(out, n_clients=40, seed=550):
    rng = random.Random(seed)
    t = Trace()
    w = eth()
    for i in range(n_clients):
        cip = '203.0.113.%d' % (10 + i)
        c = TcpConn(cip, 60000 + i, MAIL_SERVER, 25, isn_c=rng.getrandbits(32), isn_s=rng.getrandbits(32), ident=200 + i * 50)
        rcpts = []
        for j in range(1 + i % 3):
            kind, reply, _ = REJECTS[(i + j) % len(REJECTS)]
            rcpts.append(('%s-%d-%d@example.test' % (kind, i, j), reply))
        if i % 4 == 0:
            rcpts.append(('real%d@example.test' % i, '250 2.1.5 Ok\r\n'))
        sc = smtp.script(helo='bot%d.example.org' % i, mail_from='' if i % 2 else 'bounce%d@example.org' % i, rcpts=rcpts)
        emit(t, smtp.session(c, sc), w, gap_us=rng.randrange(300, 3000))
    _smtp_write(t, out, 'smtp-user-unknown.pcap')


def smtp_outbound(out):
    t = Trace()
    w = eth()
    # one inbound session for contrast
    c = TcpConn('192.0.2.90', 61001, MAIL_SERVER, 25, isn_c=170000, isn_s=180000, ident=300)
    emit(t, smtp.session(c, smtp.script(helo='in.example.net', mail_from='in@example.net')), w, gap_us=1500)
    # the mail server itself delivers to remote MX hosts
    for i in range(6):
        remote = '198.51.100.%d' % (20 + i)
        banner = '220 mx%d.remote%d.example ESMTP\r\n' % (i, i)
        c = TcpConn(MAIL_SERVER, 40000 + i, remote, 25, isn_c=190000 + i * 1000, isn_s=290000 + i * 1000, ident=400 + i * 40)
        sc = smtp.script(helo='mx.example.test', mail_from='relay%d@example.test' % i,
                         rcpts=[('user%d@remote%d.example' % (i, i), '250 2.1.5 Ok\r\n')], banner=banner,
                         ehlo_reply='250-mx%d.remote%d.example\r\n250 PIPELINING\r\n' % (i, i))
        emit(t, smtp.session(c, sc), w, gap_us=1200)
    _smtp_write(t, out, 'smtp-outbound.pcap')


ALL = [dns_basic, dns_vlan, dns_qinq, dns_sll, dns_sll2, dns_raw_ip, dns_null_loopback, dns_ipv6,
       dns_tcp, dns_fragment, dns_snaplen, dns_pcapng, dns_nanosecond, dns_garbage, dns_mixed,
       smtp_basic, smtp_pipelining, smtp_split, smtp_retransmission, smtp_out_of_order, smtp_one_side,
       smtp_starttls, smtp_ipv6, smtp_vlan, smtp_user_unknown, smtp_outbound]

from .fragments import ALL as _FRAGMENTS  # noqa: E402
ALL += _FRAGMENTS
