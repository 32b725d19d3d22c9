"""Link-layer framing. Every builder takes an IP packet (bytes) and returns a frame."""
import struct

ETH_IPV4 = 0x0800
ETH_IPV6 = 0x86DD
TPID_8021Q = 0x8100
TPID_8021AD = 0x88A8


def ethertype_of(ip):
    return ETH_IPV6 if (ip[0] >> 4) == 6 else ETH_IPV4


def mac_for(ip_text, prefix=b'\x02\x00'):
    """Deterministic locally-administered MAC from an address string."""
    h = 0
    for c in ip_text.encode():
        h = (h * 131 + c) & 0xFFFFFFFF
    return prefix + struct.pack('!I', h)


def ethernet(ip, src=b'\x02\x00\x00\x00\x00\x01', dst=b'\x02\x00\x00\x00\x00\x02', vlans=()):
    """vlans: sequence of (tpid, vid) outermost first, e.g. [(0x88a8, 100), (0x8100, 10)]."""
    hdr = dst + src
    for tpid, vid in vlans:
        hdr += struct.pack('!HH', tpid, vid & 0x0FFF)
    return hdr + struct.pack('!H', ethertype_of(ip)) + ip


def sll(ip, src=b'\x02\x00\x00\x00\x00\x01', pkttype=0):
    """Linux cooked v1 (DLT_LINUX_SLL, 16 bytes)."""
    return struct.pack('!HHH', pkttype, 1, 6) + src + b'\0\0' + struct.pack('!H', ethertype_of(ip)) + ip


def sll2(ip, src=b'\x02\x00\x00\x00\x00\x01', pkttype=0, ifindex=2):
    """Linux cooked v2 (DLT_LINUX_SLL2, 20 bytes)."""
    return struct.pack('!HHIHBB', ethertype_of(ip), 0, ifindex, 1, pkttype, 6) + src + b'\0\0' + ip


def raw(ip):
    """LINKTYPE_RAW (101): the frame is the IP packet."""
    return ip


def null(ip, af6=24):
    """BSD loopback (DLT_NULL): 4-byte family in the writer's (little-endian) host order.
    AF_INET=2; AF_INET6 is 24 (NetBSD/OpenBSD), 28 (FreeBSD), 30 (macOS)."""
    fam = af6 if (ip[0] >> 4) == 6 else 2
    return struct.pack('<I', fam) + ip
