#!/usr/bin/python3
"""A busy population of OTHER DNS clients querying the lab's upstream BIND directly
(stdlib only). Runs in the population namespace (scripts/lab/run, LAB_POPULATION=1 or
LAB_BENIGN_KIND=population) until --until, and writes per-role counts to --stats.

Roles (addresses are added to the namespace by run; see ROLES):
  workstation  10.53.20.1-40   A/AAAA of ordinary names, ~0.03-0.15 q/s each, a few NXDOMAIN typos
  batch        10.53.21.1-4    idle 1-4 min, then a burst of 20-50 q/s for 30 s (PTR + A: log processing)
  dnsbl        10.53.22.1-2    blocklist checks, 0.5-2 q/s: reversed-IP.dnsbl.test A, mostly NXDOMAIN
  mxgateway    10.53.23.1-2    mail gateways: 1-3 MX lookups/s over many domains (+ A of the MX host)

    population --server 10.53.0.2 --until EPOCH --seed N --stats FILE
"""
import argparse
import json
import os
import random
import socket
import struct
import sys
import threading
import time

ROLES = {
    "workstation": ["10.53.20.%d" % i for i in range(1, 41)],
    "batch": ["10.53.21.%d" % i for i in range(1, 5)],
    "dnsbl": ["10.53.22.%d" % i for i in range(1, 3)],
    "mxgateway": ["10.53.23.%d" % i for i in range(1, 3)],
}
QTYPE = {"A": 1, "PTR": 12, "MX": 15, "AAAA": 28}

WS_NAMES = ["www.univ.test", "www.example.com", "mail.example.com", "ns.test", "mail.partner1.com",
            "mail.partner2.com", "mx.example.net", "mail.research.org", "mx.univ-b.jp",
            "www.sub.univ.test", "intranet.univ.test", "wiki.univ.test", "portal.univ.test"]
WS_TYPOS = ["wwww.univ.test", "www.exmaple.com", "portal.univ.tset", "intranet"]


def all_addresses():
    return [a for v in ROLES.values() for a in v]


def query(name, qtype):
    qid = random.getrandbits(16)
    q = struct.pack(">HHHHHH", qid, 0x0100, 1, 0, 0, 0)
    for label in name.rstrip(".").split("."):
        q += bytes([len(label)]) + label.encode()
    return q + b"\x00" + struct.pack(">HH", QTYPE[qtype], 1)


class Stats:
    def __init__(self):
        self.lock = threading.Lock()
        self.d = {}

    def add(self, role, key):
        with self.lock:
            r = self.d.setdefault(role, {})
            r[key] = r.get(key, 0) + 1


def client(role, addr, server, until, seed, stats):
    rnd = random.Random("%s-%s-%d" % (role, addr, seed))
    fam = socket.AF_INET6 if ":" in server else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.bind((addr, 0))
    s.settimeout(1.0)

    def ask(name, qtype):
        try:
            s.sendto(query(name, qtype), (server, 53))
            stats.add(role, "q_" + qtype)
            data = s.recv(4096)
            rcode = data[3] & 0x0F if len(data) >= 4 else -1
            stats.add(role, "rcode_%d" % rcode)
        except OSError:
            stats.add(role, "timeout")

    def sleep_until(t):
        d = min(t, until) - time.time()
        if d > 0:
            time.sleep(d)

    time.sleep(rnd.uniform(0, 5))
    if role == "workstation":
        rate = rnd.uniform(0.03, 0.15)
        while time.time() < until:
            name = rnd.choice(WS_TYPOS) if rnd.random() < 0.05 else rnd.choice(WS_NAMES)
            ask(name, "A")
            if rnd.random() < 0.5:
                ask(name, "AAAA")
            sleep_until(time.time() + rnd.expovariate(rate))
    elif role == "batch":
        first = True
        while time.time() < until:
            sleep_until(time.time() + rnd.uniform(10, 120) if first else time.time() + rnd.uniform(60, 240))
            first = False
            rate = rnd.uniform(20, 50)
            t_end = min(time.time() + 30, until)
            while time.time() < t_end:
                if rnd.random() < 0.6:
                    ask("%d.%d.53.10.in-addr.arpa" % (rnd.randrange(1, 251), rnd.choice([10, 10, 1, 2])), "PTR")
                else:
                    i = rnd.randrange(1, 151)
                    ask("mta%d.mailhost%d.com" % (i, i), "A")
                sleep_until(time.time() + rnd.expovariate(rate))
    elif role == "dnsbl":
        rate = rnd.uniform(0.5, 2.0)
        while time.time() < until:
            ip = [rnd.randrange(1, 255) for _ in range(4)]
            if rnd.random() < 0.3:
                ip = [10, 53, 10, rnd.randrange(1, 251)]  # the lab's own senders
            ask("%d.%d.%d.%d.dnsbl.test" % tuple(reversed(ip)), "A")
            sleep_until(time.time() + rnd.expovariate(rate))
    elif role == "mxgateway":
        rate = rnd.uniform(1.0, 3.0)
        tlds = (("com", "deal"), ("net", "offer"), ("org", "promo"), ("jp", "kaitori"),
                ("org", "client"), ("net", "member"))
        while time.time() < until:
            tld, label = rnd.choice(tlds)
            d = "%s%d.%s" % (label, rnd.randrange(1, 151 if label not in ("member", "client") else 41), tld)
            ask(d, "MX")
            if rnd.random() < 0.3:
                ask("mx.spam.test", "A")
            sleep_until(time.time() + rnd.expovariate(rate))
    s.close()


def main():
    p = argparse.ArgumentParser()
    sp = p.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("population")
    s.add_argument("--server", default="10.53.0.2")
    s.add_argument("--until", type=float, required=True)
    s.add_argument("--seed", type=int, default=5)
    s.add_argument("--stats", required=True)
    sp.add_parser("addresses")
    a = p.parse_args()
    if a.cmd == "addresses":
        print(json.dumps(ROLES))
        return 0
    stats = Stats()
    threads = []
    for role, addrs in ROLES.items():
        for addr in addrs:
            t = threading.Thread(target=client, args=(role, addr, a.server, a.until, a.seed, stats), daemon=True)
            t.start()
            threads.append(t)

    def dump():
        tmp = a.stats + ".tmp"
        with stats.lock:
            json.dump(stats.d, open(tmp, "w"))
        os.replace(tmp, a.stats)

    while any(t.is_alive() for t in threads):
        dump()
        time.sleep(2)
    dump()
    return 0


if __name__ == "__main__":
    sys.exit(main())
