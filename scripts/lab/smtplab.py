#!/usr/bin/python3
"""SMTP helpers for the mxwatch lab (stdlib only).

Subcommands:
  sink        asyncio SMTP sink standing in for the remote mail exchangers
  legit       legitimate traffic: partners mail local users, a workstation sends out
  backscatter bounces (MAIL FROM:<>) to unknown local users from many sources
  relay       abuse of an open relay: mail to hundreds of distinct domains
  newdomains  benign: the workstation mails many NEW domains (own MX each), slowly
  bursty      benign: mailing-list bursts (20 messages in 10 s, then quiet minutes)
  sidecar     build the ground-truth JSON from the logs of one run

With --poisson (set by scripts/lab/run when LAB_SEED is given) the attack senders use
Poisson arrivals instead of fixed intervals.

All traffic goes to addresses inside the lab's network namespaces.
"""
import argparse
import asyncio
import concurrent.futures
import json
import os
import random
import re
import signal
import smtplib
import sys
import threading
import time

MX = "10.53.0.25"
SINK = "10.53.0.99"  # every remote MX
LOCAL_DOMAIN = "sub.univ.test"
REAL_USERS = ["alice", "bob", "carol", "dave"]
PARTNERS = [("10.53.1.%d" % i, "mail.partner%d.com" % i, "partner%d.com" % i) for i in range(1, 6)]
WORKSTATION = "10.53.2.10"
OUT_DOMAINS = ["partner1.com", "partner2.com", "partner3.com", "example.com",
               "example.net", "univ-b.jp", "research.org"]


def now():
    return time.time()


# ---------------------------------------------------------------- sink
def cmd_sink(a):
    st = {"sessions": 0, "messages": 0, "rcpts": 0}

    async def handle(reader, writer):
        st["sessions"] += 1
        writer.write(b"220 sink.spam.test ESMTP\r\n")
        in_data = False
        rcpts = 0
        try:
            while True:
                line = await asyncio.wait_for(reader.readline(), 60)
                if not line:
                    break
                if in_data:
                    if line.rstrip(b"\r\n") == b".":
                        in_data = False
                        st["messages"] += 1
                        st["rcpts"] += rcpts
                        writer.write(b"250 2.0.0 Ok: queued\r\n")
                    else:
                        continue
                else:
                    c = line[:4].upper()
                    if c == b"EHLO":
                        writer.write(b"250-sink.spam.test\r\n250-PIPELINING\r\n250 8BITMIME\r\n")
                    elif c == b"HELO":
                        writer.write(b"250 sink.spam.test\r\n")
                    elif c == b"MAIL":
                        rcpts = 0
                        writer.write(b"250 2.1.0 Ok\r\n")
                    elif c == b"RCPT":
                        rcpts += 1
                        writer.write(b"250 2.1.5 Ok\r\n")
                    elif c == b"DATA":
                        in_data = True
                        writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    elif c in (b"RSET", b"NOOP"):
                        writer.write(b"250 2.0.0 Ok\r\n")
                    elif c == b"QUIT":
                        writer.write(b"221 2.0.0 Bye\r\n")
                        await writer.drain()
                        break
                    else:
                        writer.write(b"502 5.5.2 Error: command not recognized\r\n")
                # Coalesce replies to pipelined commands into one segment.
                if not reader._buffer:  # noqa: SLF001 (stdlib StreamReader)
                    await writer.drain()
        except (asyncio.TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()

    def dump():
        tmp = a.stats + ".tmp"
        with open(tmp, "w") as f:
            json.dump(st, f)
        os.replace(tmp, a.stats)

    async def main():
        server = await asyncio.start_server(handle, a.addr, 25, backlog=512)
        loop = asyncio.get_running_loop()
        stop = loop.create_future()
        for s in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(s, lambda: stop.done() or stop.set_result(None))
        while not stop.done():
            dump()
            await asyncio.wait([stop], timeout=1)
        server.close()
        dump()

    asyncio.run(main())


# ---------------------------------------------------------------- senders
class Log:
    def __init__(self, path):
        self.f = open(path, "a", buffering=1)
        self.lock = threading.Lock()

    def write(self, **rec):
        rec.setdefault("t", now())
        with self.lock:
            self.f.write(json.dumps(rec) + "\n")


def session(src, helo, msgs, ehlo=True, timeout=30):
    """One SMTP session from src. msgs: list of (mail_from, [rcpts], body or None).
    Returns list of (accepted_rcpts, rejected_rcpts, data_sent) per message."""
    res = []
    s = smtplib.SMTP(timeout=timeout, source_address=(src, 0))
    try:
        s.connect(MX, 25)
        if ehlo:
            s.ehlo(helo)
        else:
            s.helo(helo)
        for idx, (mail_from, rcpts, body) in enumerate(msgs):
            code, _ = s.mail(mail_from)
            if code != 250:
                res.append((0, len(rcpts), False))
                s.rset()
                continue
            ok = bad = 0
            for r in rcpts:
                code, _ = s.rcpt(r)
                if code in (250, 251):
                    ok += 1
                else:
                    bad += 1
            sent = False
            if ok and body is not None:
                code, _ = s.data(body)
                sent = code == 250
            elif idx + 1 < len(msgs):
                s.rset()
            res.append((ok, bad, sent))
        s.quit()
    finally:
        s.close()
    return res


def body(frm, to, subj, extra=""):
    return ("From: %s\r\nTo: %s\r\nSubject: %s\r\nDate: %s\r\n%s\r\n"
            "Lab message.\r\n" % (frm, to, subj, time.strftime("%a, %d %b %Y %H:%M:%S +0000",
                                                               time.gmtime()), extra))


def cmd_legit(a):
    """Legitimate mail every 10-20 s until --until (epoch)."""
    log = Log(a.log)
    rnd = random.Random(a.seed)
    n = 0
    while now() < a.until:
        n += 1
        t0 = now()
        try:
            if rnd.random() < 0.7:
                ip, helo, dom = rnd.choice(PARTNERS)
                frm = "%s@%s" % (rnd.choice(["info", "sales", "j.doe"]), dom)
                to = "%s@%s" % (rnd.choice(REAL_USERS), LOCAL_DOMAIN)
                r = session(ip, helo, [(frm, [to], body(frm, to, "legit %d" % n))])
                log.write(t=t0, kind="legit_in", src=ip, accepted=r[0][0], rejected=r[0][1], sent=r[0][2])
            else:
                frm = "%s@%s" % (rnd.choice(REAL_USERS), LOCAL_DOMAIN)
                to = "colleague@%s" % rnd.choice(OUT_DOMAINS)
                r = session(WORKSTATION, "ws10." + LOCAL_DOMAIN, [(frm, [to], body(frm, to, "out %d" % n))])
                log.write(t=t0, kind="legit_out", src=WORKSTATION, accepted=r[0][0], rejected=r[0][1], sent=r[0][2])
        except (OSError, smtplib.SMTPException) as e:
            log.write(t=t0, kind="legit_error", error=repr(e))
        wait = rnd.uniform(a.min_gap, a.max_gap)
        time.sleep(max(0.0, min(wait, a.until - now())))


def attack_sources():
    srcs = ["10.53.10.%d" % i for i in range(1, 251)] + ["10.53.11.%d" % i for i in range(1, 51)]
    return srcs


FORGED_HELO = ["mail.bigbank.com", "localhost", "mx1.paypal.com", "smtp.yahoo.co.jp",
               "exchange01", "mail.example.net", "192.168.0.1", "relay.isp.ne.jp"]


def paced(a, job):
    """Submit job(i, rnd) at a.rate per second for a.duration seconds; wait for all.
    Fixed intervals, or Poisson arrivals (exponential gaps) with a.poisson."""
    rnd = random.Random(a.seed)
    start = now()
    total = int(a.rate * a.duration)
    times = [i / a.rate for i in range(total)]
    if getattr(a, "poisson", False):
        gaps = random.Random(a.seed * 7919 + 17)
        times, t = [], gaps.expovariate(a.rate)
        while t < a.duration:
            times.append(t)
            t += gaps.expovariate(a.rate)
    futs = []
    with concurrent.futures.ThreadPoolExecutor(max_workers=a.workers) as ex:
        for i, off in enumerate(times):
            t = start + off
            d = t - now()
            if d > 0:
                time.sleep(d)
            futs.append(ex.submit(job, i, random.Random(rnd.random())))
        concurrent.futures.wait(futs)
    return [f.result() for f in futs]


def cmd_backscatter(a):
    log = Log(a.log)
    srcs = attack_sources()

    def job(i, rnd):
        src = rnd.choice(srcs)
        helo = rnd.choice(FORGED_HELO)
        rcpts = ["%s%d@%s" % (rnd.choice(["info", "admin", "user", "k", "tanaka", "sales"]),
                              rnd.randrange(100000), LOCAL_DOMAIN)
                 for _ in range(rnd.choice([1, 1, 2, 3]))]
        if rnd.random() < 0.1:
            rcpts.append("%s@%s" % (rnd.choice(REAL_USERS), LOCAL_DOMAIN))
        forged = "From: MAILER-DAEMON@%s\r\nX-Original-To: %s\r\n" % (helo, rcpts[0])
        b = body("MAILER-DAEMON@%s" % helo, rcpts[-1], "Undelivered Mail Returned to Sender", forged)
        t0 = now()
        try:
            r = session(src, helo, [("", rcpts, b)], ehlo=False)
            log.write(t=t0, kind="backscatter", src=src, accepted=r[0][0], rejected=r[0][1], sent=r[0][2])
        except (OSError, smtplib.SMTPException) as e:
            log.write(t=t0, kind="attack_error", src=src, error=repr(e))

    paced(a, job)


def relay_domains(n=150):
    out = []
    for tld, label in (("com", "deal"), ("net", "offer"), ("org", "promo"), ("jp", "kaitori")):
        out += ["%s%d.%s" % (label, i, tld) for i in range(1, n + 1)]
    return out


def cmd_relay(a):
    log = Log(a.log)
    # default: 10.53.10.1-20 (PTR and A agree); --sources 151: 10.53.10.151-170, whose
    # PTR names (mailN.ispN.jp) have no A record.
    srcs = ["10.53.10.%d" % i for i in range(a.sources, a.sources + 20)]
    doms = relay_domains(a.domains_per_tld)
    random.Random(a.seed + 1).shuffle(doms)
    per = a.per_session
    lock = threading.Lock()
    state = {"next": 0}

    def job(i, rnd):
        msgs = []
        for _ in range(per):
            with lock:
                d = doms[state["next"] % len(doms)]
                state["next"] += 1
            frm = "%s@%s" % (rnd.choice(["promo", "news", "offer"]), rnd.choice(["cheap-meds.biz", "win.example"]))
            to = "user%d@%s" % (rnd.randrange(1000), d)
            msgs.append((frm, [to], body(frm, to, "Special offer %d" % rnd.randrange(10**6))))
        src = rnd.choice(srcs)
        t0 = now()
        try:
            r = session(src, "pc%d.attacker.example" % rnd.randrange(100), msgs)
            for acc, rej, sent in r:
                log.write(t=t0, kind="relay", src=src, accepted=acc, rejected=rej, sent=sent)
        except (OSError, smtplib.SMTPException) as e:
            log.write(t=t0, kind="attack_error", src=src, error=repr(e))

    # a.rate is messages per second: sessions per second = rate / per
    a.rate = a.rate / per
    paced(a, job)


# ---------------------------------------------------------------- spam bot (issue #17)
def dns_query(server, src, name, qtype, timeout=2.0):
    """One DNS query over UDP from src (no answer parsing: the bot's targets all
    point at the sink). Returns True when an answer came back."""
    import socket
    import struct
    q = struct.pack(">HHHHHH", random.randrange(65536), 0x0100, 1, 0, 0, 0)
    q += b"".join(bytes([len(l)]) + l.encode() for l in name.split(".")) + b"\0"
    q += struct.pack(">HH", qtype, 1)
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((src, 0))
        s.settimeout(timeout)
        s.sendto(q, (server, 53))
        s.recv(4096)
        return True
    except OSError:
        return False
    finally:
        s.close()


def cmd_workstation(a):
    """An ordinary PC at the upstream DNS server: A/AAAA lookups of a few sites every
    2-6 s, now and then one MX lookup (a mail client checking its provider)."""
    rnd = random.Random(a.seed)
    sites = ["www.univ.test", "wiki.univ.test", "portal.univ.test", "intranet.univ.test",
             "www.example.com", "mail.example.com"]
    next_mx = now() + rnd.uniform(20, 60)
    while now() < a.until:
        name = rnd.choice(sites)
        dns_query(a.server, a.src, name, 1)
        if rnd.random() < 0.3:
            dns_query(a.server, a.src, name, 28)
        if now() >= next_mx:
            dns_query(a.server, a.src, "example.com", 15)
            next_mx = now() + rnd.uniform(60, 120)
        time.sleep(max(0.0, min(rnd.uniform(2, 6), a.until - now())))


def cmd_spambot(a):
    """An infected workstation: for each recipient domain, MX lookup at the
    upstream DNS server itself, A lookup of the MX host, then SMTP direct to
    that MX (the sink), as a mass-mailing worm does."""
    log = Log(a.log)
    doms = relay_domains(150)
    random.Random(a.seed + 5).shuffle(doms)
    state = {"next": 0}
    lock = threading.Lock()

    def job(i, rnd):
        with lock:
            d = doms[state["next"] % len(doms)]
            state["next"] += 1
        t0 = now()
        got = dns_query(a.server, a.src, d, 15)
        dns_query(a.server, a.src, "mx.spam.test", 1)
        frm = "%s@%s" % (rnd.choice(["promo", "news"]), rnd.choice(["cheap-meds.biz", "win.example"]))
        to = "user%d@%s" % (rnd.randrange(1000), d)
        try:
            s = smtplib.SMTP(timeout=20, source_address=(a.src, 0))
            s.connect(SINK, 25)
            s.ehlo("ws66")
            s.sendmail(frm, [to], body(frm, to, "Hello %d" % rnd.randrange(10**6)))
            s.quit()
            log.write(t=t0, kind="spambot", src=a.src, domain=d, mx_answered=got, sent=True)
        except (OSError, smtplib.SMTPException) as e:
            log.write(t=t0, kind="attack_error", src=a.src, error=repr(e))

    paced(a, job)


# ---------------------------------------------------------------- benign extras
NEW_DOMAINS = ["client%d.org" % i for i in range(1, 121)]      # own MX each (run makes the zones)
LIST_MEMBERS = ["member%d.net" % i for i in range(1, 41)]      # mailing-list subscribers' domains
LIST_SERVER = PARTNERS[0]                                       # the list server sending bursts in


def cmd_newdomains(a):
    """The workstation mails a NEW domain every min-gap..max-gap s until --until."""
    log = Log(a.log)
    rnd = random.Random(a.seed)
    doms = list(NEW_DOMAINS)
    rnd.shuffle(doms)
    n = 0
    while now() < a.until and n < len(doms):
        d = doms[n]
        n += 1
        t0 = now()
        frm = "%s@%s" % (rnd.choice(REAL_USERS), LOCAL_DOMAIN)
        to = "%s@%s" % (rnd.choice(["contact", "sales", "office", "j.smith"]), d)
        try:
            r = session(WORKSTATION, "ws10." + LOCAL_DOMAIN, [(frm, [to], body(frm, to, "hello %d" % n))])
            log.write(t=t0, kind="benign_out", src=WORKSTATION, domain=d, accepted=r[0][0],
                      rejected=r[0][1], sent=r[0][2])
        except (OSError, smtplib.SMTPException) as e:
            log.write(t=t0, kind="benign_error", error=repr(e))
        time.sleep(max(0.0, min(rnd.uniform(a.min_gap, a.max_gap), a.until - now())))


def cmd_bursty(a):
    """Mailing-list bursts: --burst messages within --burst-secs, then a quiet gap of
    min-gap..max-gap s. Half come in from the list server to local users, half go out
    from the workstation (the list exploder) to subscribers' domains (own MX each)."""
    log = Log(a.log)
    rnd = random.Random(a.seed)
    b = 0
    while now() < a.until:
        b += 1
        t_b = now()
        # a.burst messages spread over burst_secs
        offs = sorted(rnd.uniform(0, a.burst_secs) for _ in range(a.burst))
        for k, off in enumerate(offs):
            d = t_b + off - now()
            if d > 0:
                time.sleep(d)
            t0 = now()
            try:
                if k % 2 == 0:
                    ip, helo, dom = LIST_SERVER
                    frm = "list-bounces@%s" % dom
                    to = "%s@%s" % (rnd.choice(REAL_USERS), LOCAL_DOMAIN)
                    r = session(ip, helo, [(frm, [to], body(frm, to, "[list] digest %d" % b))])
                    kind = "benign_in"
                else:
                    frm = "lab-list@%s" % LOCAL_DOMAIN
                    to = "%s@%s" % (rnd.choice(["a.b", "member", "x"]), rnd.choice(LIST_MEMBERS))
                    r = session(WORKSTATION, "ws10." + LOCAL_DOMAIN, [(frm, [to], body(frm, to, "[lab-list] %d" % b))])
                    kind = "benign_out"
                log.write(t=t0, kind=kind, burst=b, accepted=r[0][0], rejected=r[0][1], sent=r[0][2])
            except (OSError, smtplib.SMTPException) as e:
                log.write(t=t0, kind="benign_error", error=repr(e))
        gap = rnd.uniform(a.min_gap, a.max_gap)
        time.sleep(max(0.0, min(t_b + a.burst_secs + gap, a.until) - now()))


# ---------------------------------------------------------------- sidecar
def read_jsonl(path):
    out = []
    if os.path.exists(path):
        with open(path) as f:
            for line in f:
                line = line.strip()
                if line:
                    out.append(json.loads(line))
    return out


def postfix_counts(lines):
    msgs = {}
    msgs["accepted"] = sum(1 for l in lines if re.search(r"postfix/smtpd\[\d+\]: [0-9A-F]+: client=", l))
    msgs["rejected_user_unknown"] = sum(1 for l in lines if "NOQUEUE: reject: RCPT" in l and "User unknown" in l)
    msgs["rejected_other"] = sum(1 for l in lines if "NOQUEUE: reject:" in l and "User unknown" not in l)
    msgs["relayed_out"] = sum(1 for l in lines if re.search(r"postfix/smtp\[\d+\]: .* status=sent", l))
    msgs["delivered_local"] = sum(1 for l in lines if re.search(r"postfix/discard\[\d+\]: .* status=sent", l))
    msgs["deferred"] = sum(1 for l in lines if "status=deferred" in l)
    msgs["bounced"] = sum(1 for l in lines if "status=bounced" in l)
    msgs["smtpd_connections"] = sum(1 for l in lines if re.search(r"postfix/smtpd\[\d+\]: connect from", l))
    msgs["client_hostname_unverified"] = sum(
        1 for l in lines if "does not resolve to address" in l or "Name or service not known" in l)
    return msgs


def exim_counts(lines):
    """The same counters from Exim's mainlog (log_selector +smtp_connection): accepted '<='
    (received over SMTP), rejected_user_unknown 'rejected RCPT ... User unknown', relayed_out
    '=>'/'->' through the remote_smtp transport, delivered_local '=> :blackhole:', deferred
    '==', bounced '**', smtpd_connections 'SMTP connection from ... connection count',
    client_hostname_unverified: sessions logged without a verified host name."""
    msgs = {}
    msgs["accepted"] = sum(1 for l in lines if re.search(r" <= .* H=", l))
    msgs["rejected_user_unknown"] = sum(1 for l in lines if "rejected RCPT" in l and "User unknown" in l)
    msgs["rejected_other"] = sum(1 for l in lines if re.search(r"rejected (RCPT|MAIL|EHLO|HELO|connection)", l)
                                 and "User unknown" not in l)
    msgs["relayed_out"] = sum(1 for l in lines if re.search(r" [=-]> .* T=remote_smtp ", l))
    msgs["delivered_local"] = sum(1 for l in lines if re.search(r" [=-]> :blackhole: ", l))
    msgs["deferred"] = sum(1 for l in lines if " == " in l)
    msgs["bounced"] = sum(1 for l in lines if " ** " in l)
    msgs["smtpd_connections"] = sum(1 for l in lines if re.search(r"SMTP connection from .*connection count", l))
    # sessions whose client name is not verified (no PTR, or the PTR name does not resolve
    # back): Exim logs them without a host name, "SMTP connection from (helo) [ip] closed"
    msgs["client_hostname_unverified"] = sum(
        1 for l in lines if re.search(r"SMTP connection from [(\[].* (closed|lost)", l))
    return msgs


def cmd_sidecar(a):
    ph = json.load(open(a.phases))
    legit = read_jsonl(a.legit_log)
    attack = read_jsonl(a.attack_log)

    def in_phase(rec, p):
        return ph[p]["start"] <= rec["t"] < ph[p]["end"]

    ok = lambda r: r.get("sent") or r.get("rejected")  # noqa: E731 (a session that completed)
    msgs = {
        "baseline_sent": sum(1 for r in legit if in_phase(r, "baseline") and r.get("sent")),
        "legit_sent_total": sum(1 for r in legit if r.get("sent")),
        "legit_inbound_sent": sum(1 for r in legit if r["kind"] == "legit_in" and r.get("sent")),
        "legit_outbound_sent": sum(1 for r in legit if r["kind"] == "legit_out" and r.get("sent")),
        "legit_errors": sum(1 for r in legit if r["kind"] == "legit_error"),
        "attack_sessions": len({(r["t"], r.get("src")) for r in attack}),
        "attack_messages": sum(1 for r in attack if r["kind"] != "attack_error"),
        "attack_sent": sum(1 for r in attack if ok(r)),
        "attack_data_sent": sum(1 for r in attack if r.get("sent")),
        "attack_rcpt_rejected": sum(r.get("rejected", 0) for r in attack),
        "attack_errors": sum(1 for r in attack if r["kind"] == "attack_error"),
    }
    log = open(a.maillog, errors="replace").read() if os.path.exists(a.maillog) else ""
    lines = log.splitlines()
    # counters from the MTA's log: Postfix's maillog, or Exim's mainlog (LAB_MTA=exim4)
    msgs.update(exim_counts(lines) if a.mta == "exim4" else postfix_counts(lines))
    sink = json.load(open(a.sink_stats)) if os.path.exists(a.sink_stats) else {}
    msgs["sink_sessions"] = sink.get("sessions", 0)
    msgs["sink_messages"] = sink.get("messages", 0)
    msgs["queued_at_end"] = a.queued
    if a.activity_log and os.path.exists(a.activity_log):
        act = read_jsonl(a.activity_log)
        msgs["benign_activity_sent"] = sum(1 for r in act if r.get("sent"))
        msgs["benign_activity_errors"] = sum(1 for r in act if r["kind"] == "benign_error")
        msgs["benign_activity_domains"] = len({r["domain"] for r in act if r.get("domain")})
    out = {
        "scenario": a.scenario,
        "mail_server": MX,
        "upstream_dns": "10.53.0.2",
        "local_domain": LOCAL_DOMAIN,
        "files": {"dns": "%s-dns.pcap" % a.scenario, "smtp": "%s-smtp.pcap" % a.scenario},
        "baseline": ph["baseline"],
        "attack": ph["attack"],
        "drain": ph["drain"],
        "messages": msgs,
        "topology": {
            "tdns": "10.53.0.2 (BIND 9, fake root + TLDs, recursive for 10.53.0.0/16)",
            "mx": "10.53.0.25 (Postfix, local caching BIND 127.0.0.1 -> 10.53.0.2, search sub.univ.test)",
            "sink": "10.53.0.99 (SMTP sink for all remote MX)",
            "legit_senders": "10.53.1.1-5 (proper PTR), workstation 10.53.2.10 (in mynetworks)",
            "attack_sources": "10.53.10.1-250, 10.53.11.1-50",
        },
        "capture_points": {"dns": "bridge port towards tdns, filter 'udp port 53 or tcp port 53'",
                           "smtp": "bridge port towards mx, filter 'tcp port 25'"},
        "params": ph.get("params", {}),
        "software": ph.get("software", {}),
    }
    extra = ph.get("extra", {})
    if extra:
        out["topology"]["mx"] = extra.pop("topology_mx", out["topology"]["mx"])
        if a.population_stats and os.path.exists(a.population_stats):
            extra.setdefault("population", {})["stats"] = json.load(open(a.population_stats))
        out.update(extra)
    with open(a.out, "w") as f:
        json.dump(out, f, indent=2)
        f.write("\n")


def main():
    global LOCAL_DOMAIN
    p = argparse.ArgumentParser()
    sp = p.add_subparsers(dest="cmd", required=True)
    s = sp.add_parser("sink")
    s.add_argument("--addr", default="10.53.0.99")
    s.add_argument("--stats", required=True)
    s = sp.add_parser("legit")
    s.add_argument("--until", type=float, required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--seed", type=int, default=1)
    s.add_argument("--min-gap", type=float, default=8)
    s.add_argument("--max-gap", type=float, default=16)
    s = sp.add_parser("newdomains")
    s.add_argument("--until", type=float, required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--seed", type=int, default=3)
    s.add_argument("--min-gap", type=float, default=5)
    s.add_argument("--max-gap", type=float, default=15)
    s = sp.add_parser("bursty")
    s.add_argument("--until", type=float, required=True)
    s.add_argument("--log", required=True)
    s.add_argument("--seed", type=int, default=3)
    s.add_argument("--burst", type=int, default=20)
    s.add_argument("--burst-secs", type=float, default=10)
    s.add_argument("--min-gap", type=float, default=90)
    s.add_argument("--max-gap", type=float, default=180)
    for name in ("backscatter", "relay"):
        s = sp.add_parser(name)
        s.add_argument("--duration", type=float, required=True)
        s.add_argument("--rate", type=float, required=True, help="sessions/s (relay: messages/s)")
        s.add_argument("--log", required=True)
        s.add_argument("--seed", type=int, default=2)
        s.add_argument("--workers", type=int, default=32)
        s.add_argument("--poisson", action="store_true")
        if name == "relay":
            s.add_argument("--per-session", type=int, default=10)
            s.add_argument("--sources", type=int, default=1, help="first source 10.53.10.N (20 used)")
            s.add_argument("--domains-per-tld", type=int, default=150)
    s = sp.add_parser("workstation")
    s.add_argument("--until", type=float, required=True)
    s.add_argument("--src", required=True)
    s.add_argument("--server", default="10.53.0.2")
    s.add_argument("--seed", type=int, default=6)
    s = sp.add_parser("spambot")
    s.add_argument("--duration", type=float, required=True)
    s.add_argument("--rate", type=float, default=3, help="recipient domains per second")
    s.add_argument("--src", default="10.53.2.66")
    s.add_argument("--server", default="10.53.0.2")
    s.add_argument("--log", required=True)
    s.add_argument("--seed", type=int, default=4)
    s.add_argument("--workers", type=int, default=8)
    s = sp.add_parser("sidecar")
    for k in ("scenario", "phases", "legit-log", "attack-log", "maillog", "sink-stats", "out"):
        s.add_argument("--" + k, required=True)
    s.add_argument("--queued", type=int, default=0)
    s.add_argument("--mta", choices=("postfix", "exim4"), default="postfix",
                   help="which log --maillog is: Postfix's maillog or Exim's mainlog")
    s.add_argument("--activity-log")
    s.add_argument("--population-stats")
    for sub in sp.choices.values():
        sub.add_argument("--domain", default=os.environ.get("LAB_DOMAIN", LOCAL_DOMAIN),
                         help="the mail server's domain (default sub.univ.test)")
    a = p.parse_args()
    LOCAL_DOMAIN = a.domain
    {"sink": cmd_sink, "legit": cmd_legit, "backscatter": cmd_backscatter,
     "relay": cmd_relay, "spambot": cmd_spambot, "workstation": cmd_workstation, "newdomains": cmd_newdomains, "bursty": cmd_bursty,
     "sidecar": cmd_sidecar}[a.cmd](a)


if __name__ == "__main__":
    sys.exit(main())
