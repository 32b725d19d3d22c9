#!/usr/bin/env python3
"""Summarise what tshark (and libpcap, via tcpdump) see in each capture.

Usage: python3 scripts/pcapgen/summary.py [pcaps/*.pcap ...]
Prints one line per capture: frames, DNS queries by qtype, responses by rcode, SMTP
commands and reply codes, SYNs, retransmissions, malformed, checksum errors, libpcap count.
"""
import collections
import glob
import os
import subprocess
import sys

FIELDS = ['frame.number', 'dns.flags.response', 'dns.qry.type', 'dns.flags.rcode', 'smtp.req.command',
          'smtp.response.code', 'tcp.flags.syn', 'tcp.flags.ack', 'tcp.analysis.retransmission',
          '_ws.malformed', 'ip.checksum.status', 'udp.checksum.status', 'tcp.checksum.status',
          'ip.flags.mf', 'ip.frag_offset', 'dns.resp.ext_rcode', 'tls.record.content_type',
          '_ws.expert.message']
PREFS = ['ip.check_checksum:TRUE', 'udp.check_checksum:TRUE', 'tcp.check_checksum:TRUE']

QTYPES = {1: 'A', 2: 'NS', 5: 'CNAME', 6: 'SOA', 12: 'PTR', 15: 'MX', 16: 'TXT', 28: 'AAAA', 33: 'SRV',
          43: 'DS', 65: 'HTTPS', 255: 'ANY', 257: 'CAA'}
RCODES = {0: 'NOERROR', 1: 'FORMERR', 2: 'SERVFAIL', 3: 'NXDOMAIN', 4: 'NOTIMP', 5: 'REFUSED'}


def fmt(counter):
    return ' '.join('%s=%d' % kv for kv in sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))) or '-'


def tshark_rows(path):
    cmd = ['tshark', '-n', '-r', path, '-T', 'fields', '-E', 'separator=\t', '-E', 'occurrence=a',
           '-E', 'aggregator=,']
    for p in PREFS:
        cmd += ['-o', p]
    for f in FIELDS:
        cmd += ['-e', f]
    out = subprocess.run(cmd, capture_output=True, text=True).stdout
    for line in out.splitlines():
        cols = line.split('\t')
        cols += [''] * (len(FIELDS) - len(cols))
        yield {f: (cols[i].split(',') if cols[i] else []) for i, f in enumerate(FIELDS)}


def libpcap_count(path):
    r = subprocess.run(['tcpdump', '-n', '-r', path], capture_output=True, text=True)
    if r.returncode != 0:
        return 'ERROR: ' + r.stderr.strip().splitlines()[-1]
    return str(len(r.stdout.splitlines()))


def summarise(path):
    frames = 0
    q = collections.Counter()
    rc = collections.Counter()
    cmds = collections.Counter()
    codes = collections.Counter()
    syn = synack = retx = malformed = badck = frags = ext = tls = 0
    for row in tshark_rows(path):
        frames += 1
        resp = row['dns.flags.response']
        qts = row['dns.qry.type']
        rcs = row['dns.flags.rcode']
        ri = 0
        for i, r in enumerate(resp):
            qt = QTYPES.get(int(qts[i]), 'TYPE' + qts[i]) if i < len(qts) and qts[i] else '?'
            if r in ('1', 'True'):
                code = int(rcs[ri]) if ri < len(rcs) else -1
                rc[RCODES.get(code, str(code))] += 1
                ri += 1
            else:
                q[qt] += 1
                ri += 1
        for c in row['smtp.req.command']:
            cmds[c.upper()] += 1
        for c in row['smtp.response.code']:
            codes[c] += 1
        if row['tcp.flags.syn'][:1] in (['1'], ['True']):
            if row['tcp.flags.ack'][:1] in (['1'], ['True']):
                synack += 1
            else:
                syn += 1
        retx += bool(row['tcp.analysis.retransmission'])
        malformed += bool(row['_ws.malformed'])
        badck += any(s == '0' for k in ('ip.checksum.status', 'udp.checksum.status', 'tcp.checksum.status')
                     for s in row[k])
        frags += bool(row['ip.flags.mf'] and row['ip.flags.mf'][0] in ('1', 'True')) or \
            bool(row['ip.frag_offset'] and row['ip.frag_offset'][0] not in ('0', ''))
        ext += bool(row['dns.resp.ext_rcode'] and row['dns.resp.ext_rcode'][0] not in ('0', '0x00'))
        tls += bool(row['tls.record.content_type'])
    parts = ['frames=%d' % frames, 'libpcap=%s' % libpcap_count(path)]
    if q or rc:
        parts += ['dns_queries{%s}' % fmt(q), 'dns_responses{%s}' % fmt(rc)]
    if cmds or codes:
        parts += ['smtp_cmds{%s}' % fmt(cmds), 'smtp_replies{%s}' % fmt(codes)]
    if syn or synack:
        parts += ['syn=%d' % syn, 'synack=%d' % synack]
    for k, v in [('retransmissions', retx), ('malformed', malformed), ('bad_checksum', badck),
                 ('ip_fragments', frags), ('edns_ext_rcode', ext), ('tls_frames', tls)]:
        if v:
            parts.append('%s=%d' % (k, v))
    return '%s: %s' % (os.path.basename(path), ' '.join(parts))


def main():
    paths = sys.argv[1:] or sorted(glob.glob(os.path.join(os.path.dirname(__file__), '..', '..', 'pcaps', '*.pcap*')))
    for p in paths:
        print(summarise(p), flush=True)


if __name__ == '__main__':
    main()
