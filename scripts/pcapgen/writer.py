"""pcap / pcapng writers and the Trace container (timestamps in integer ns)."""
import calendar
import struct

# 2026-01-15T10:00:00Z
EPOCH_S = calendar.timegm((2026, 1, 15, 10, 0, 0))
EPOCH_NS = EPOCH_S * 1_000_000_000

LINKTYPE_NULL = 0
LINKTYPE_ETHERNET = 1
LINKTYPE_RAW = 101
LINKTYPE_LINUX_SLL = 113
LINKTYPE_LINUX_SLL2 = 276

MAGIC_US = 0xA1B2C3D4
MAGIC_NS = 0xA1B23C4D


def pcap_header(linktype, snaplen=65535, nanosecond=False):
    magic = MAGIC_NS if nanosecond else MAGIC_US
    return struct.pack('<IHHiIII', magic, 2, 4, 0, 0, snaplen, linktype)


def pcap_record(ts_ns, data, origlen=None, nanosecond=False):
    if origlen is None:
        origlen = len(data)
    sec, frac = divmod(ts_ns, 1_000_000_000)
    if not nanosecond:
        frac //= 1000
    return struct.pack('<IIII', sec, frac, len(data), origlen) + data


def write_pcap(path, linktype, packets, snaplen=65535, nanosecond=False):
    """packets: iterable of (ts_ns, data, origlen)."""
    with open(path, 'wb') as f:
        f.write(pcap_header(linktype, snaplen, nanosecond))
        for ts, data, origlen in packets:
            f.write(pcap_record(ts, data, origlen, nanosecond))


def _pad4(b):
    return b + b'\0' * (-len(b) % 4)


def _opt(code, value):
    return struct.pack('<HH', code, len(value)) + _pad4(value)


def _block(btype, body):
    total = 12 + len(body)
    return struct.pack('<II', btype, total) + body + struct.pack('<I', total)


def pcapng_shb(app='mxwatch pcapgen'):
    body = struct.pack('<IHHq', 0x1A2B3C4D, 1, 0, -1)
    body += _opt(4, app.encode()) + _opt(0, b'')  # shb_userappl
    return _block(0x0A0D0D0A, body)


def pcapng_idb(linktype, snaplen=65535, name=None, tsresol=6):
    body = struct.pack('<HHI', linktype, 0, snaplen)
    if name:
        body += _opt(2, name.encode())
    if tsresol != 6:
        body += _opt(9, bytes([tsresol]))
    body += _opt(0, b'')
    return _block(1, body)


def pcapng_epb(ifid, ts_ns, data, origlen=None, tsresol=6):
    if origlen is None:
        origlen = len(data)
    units = ts_ns // (10 ** (9 - tsresol))
    body = struct.pack('<IIIII', ifid, units >> 32, units & 0xFFFFFFFF, len(data), origlen)
    body += _pad4(data)
    return _block(6, body)


def write_pcapng(path, interfaces, packets):
    """interfaces: list of dicts(linktype, snaplen, name, tsresol);
    packets: iterable of (ifid, ts_ns, data, origlen)."""
    with open(path, 'wb') as f:
        f.write(pcapng_shb())
        for i in interfaces:
            f.write(pcapng_idb(i['linktype'], i.get('snaplen', 65535), i.get('name'), i.get('tsresol', 6)))
        for ifid, ts, data, origlen in packets:
            f.write(pcapng_epb(ifid, ts, data, origlen, interfaces[ifid].get('tsresol', 6)))


class Trace:
    """A list of frames with a monotonic clock (ns since the Unix epoch)."""

    def __init__(self, start_ns=EPOCH_NS):
        self.t = start_ns
        self.frames = []  # (ts_ns, data, origlen, ifid)

    def advance(self, us=0, ns=0):
        self.t += us * 1000 + ns

    def add(self, data, gap_us=100, caplen=None, ifid=0, gap_ns=0):
        self.advance(gap_us, gap_ns)
        origlen = len(data)
        if caplen is not None and caplen < origlen:
            data = data[:caplen]
        self.frames.append((self.t, data, origlen, ifid))

    def write_pcap(self, path, linktype, snaplen=65535, nanosecond=False):
        write_pcap(path, linktype, ((t, d, o) for t, d, o, _ in self.frames), snaplen, nanosecond)

    def write_pcapng(self, path, interfaces):
        write_pcapng(path, interfaces, ((i, t, d, o) for t, d, o, i in self.frames))
