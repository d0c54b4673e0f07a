#!/usr/bin/env python3
"""IMAP benchmark client for bench/imap_vs_dovecot.sh (python3 stdlib only).

Subcommands:
  fill HOST:PORT USER PASSWORD N [CONNS]
        APPEND the N generated messages (deterministic, seed 1) into INBOX
        over CONNS parallel connections (default 4), pipelined with LITERAL+.
  bench NAME HOST:PORT USER PASSWORD --rss mailhop:PID|dovecot
        [--rounds 5] [--out FILE.jsonl] [--no-warmup] [--first-round K]
        a warm-up session, then ROUNDS sessions, each timing:
          login_select   connect + greeting + LOGIN + SELECT INBOX
          fetch_envelope UID FETCH 1:* (FLAGS ENVELOPE), whole response read
          search_subject UID SEARCH SUBJECT <the word in ~1% of subjects>
          fetch_body     UID FETCH <uid> BODY.PEEK[] of one multipart message
        and the session's peak RSS: for mailhop (one process) the growth of
        the server's RSS over the session, sampled every 2 ms; for Dovecot the
        peak RSS (VmHWM) of the imap process that serves the session.
        Prints one JSON object per round on stdout and appends them to --out.
  table FILE.jsonl
        medians per server and operation, and the mailhop/Dovecot ratio.
  word  print the subject word of SEARCH
Every connection goes to 127.0.0.1 only.
"""
import argparse
import json
import os
import random
import re
import socket
import statistics
import sys
import threading
import time

SEED = 1
WORD = "zephyrine"  # in ~1% of subjects, never part of another word

FIRST = ["Alice", "Bruno", "Chen", "Dana", "Emeka", "Fatima", "Gustav", "Hana",
         "Ivan", "Julia", "Kofi", "Lena", "Mateo", "Nadia", "Omar", "Priya",
         "Quentin", "Rosa", "Sven", "Tariq", "Ursula", "Viktor", "Wen", "Yara"]
LAST = ["Smith", "Okafor", "Müller", "Tanaka", "García", "Novak", "Haddad",
        "Johansson", "Rossi", "Kowalski", "Nguyen", "Dubois", "Silva", "Khan"]
DOMAINS = ["example.org", "acme.test", "globex.example", "initech.test",
           "umbrella.example", "hooli.test", "vandelay.example", "wonka.test"]
WORDS = ("meeting agenda budget report quarterly review invoice project status "
         "update release notes planning offsite roadmap draft contract renewal "
         "schedule lunch team sync deadline proposal feedback design customer "
         "support ticket server outage migration database backup security audit "
         "training holiday travel expenses hiring interview onboarding summary "
         "minutes action items follow question answer launch marketing sales "
         "numbers forecast").split()
LOREM = ("the of and to in is that for it as was with be by on not he this are "
         "or his from at which but have an they you were her she there been one "
         "all we their has would when if so no will more about up out who them "
         "some could what its into than then other only time these two may first "
         "any new very my also like well our even because most us much how over "
         "mail server route delivery message folder inbox domain directory").split()


def person(rng):
    f, l, d = rng.choice(FIRST), rng.choice(LAST), rng.choice(DOMAINS)
    return f"{f} {l}", f"{f.lower()}.{l.lower().replace('ü', 'u').replace('í', 'i')}@{d}"


def addr(name, email):
    if any(ord(c) > 127 for c in name):
        import base64
        enc = base64.b64encode(name.encode()).decode()
        return f"=?utf-8?b?{enc}?= <{email}>"
    return f'"{name}" <{email}>'


def paragraph(rng, size):
    words = rng.choices(LOREM, k=size // 4)
    out, n, at = [], 0, 0
    while n < size and at < len(words):
        k = rng.randint(8, 14)
        line = " ".join(words[at:at + k])
        at += k
        out.append(line)
        n += len(line) + 2
    return "\r\n".join(out)


def message(i):
    """The i-th message (0-based): same bytes on every call and machine."""
    rng = random.Random(SEED * 1_000_003 + i)
    size = rng.randint(2048, 20480)
    fname, femail = person(rng)
    to = [person(rng) for _ in range(rng.randint(1, 3))]
    cc = [person(rng) for _ in range(rng.randint(0, 2))]
    words = [rng.choice(WORDS) for _ in range(rng.randint(3, 7))]
    if rng.random() < 0.01:
        words.insert(rng.randrange(len(words) + 1), WORD)
    subject = " ".join(words).capitalize()
    if rng.random() < 0.2:
        subject = "Re: " + subject
    day = 1 + i % 28
    hdr = [
        "Return-Path: <%s>" % femail,
        "Received: from mx%d.%s (mx.%s [192.0.2.%d]) by mail.local.test; "
        "Mon, %d Mar 2025 %02d:%02d:%02d +0000" % (rng.randint(1, 9), fname.split()[0].lower() + ".example",
                                                  DOMAINS[i % len(DOMAINS)], rng.randint(1, 254),
                                                  day, rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
        "From: " + addr(fname, femail),
        "To: " + ", ".join(addr(n, e) for n, e in to),
    ]
    if cc:
        hdr.append("Cc: " + ", ".join(addr(n, e) for n, e in cc))
    hdr += [
        "Subject: " + subject,
        "Date: %s, %d Mar 2025 %02d:%02d:%02d +0100" % (
            ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][day % 7], day,
            rng.randint(0, 23), rng.randint(0, 59), rng.randint(0, 59)),
        "Message-ID: <bench.%d.%08x@%s>" % (i, rng.getrandbits(32), rng.choice(DOMAINS)),
    ]
    if subject.startswith("Re: "):
        hdr.append("In-Reply-To: <bench.%d.parent@%s>" % (rng.randint(0, 9999), rng.choice(DOMAINS)))
    hdr.append("MIME-Version: 1.0")
    kind = rng.random()
    if kind < 0.3:
        boundary = "=_bench_%d_%x" % (i, rng.getrandbits(40))
        text = paragraph(rng, size // 3)
        import base64
        blob = rng.randbytes(size // 2)
        att = base64.encodebytes(blob).decode().replace("\n", "\r\n").rstrip()
        hdr.append('Content-Type: multipart/mixed; boundary="%s"' % boundary)
        body = ("This is a multi-part message in MIME format.\r\n\r\n"
                f"--{boundary}\r\nContent-Type: text/plain; charset=utf-8\r\n"
                f"Content-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n"
                f"--{boundary}\r\nContent-Type: application/pdf; name=\"report-{i}.pdf\"\r\n"
                f"Content-Disposition: attachment; filename=\"report-{i}.pdf\"\r\n"
                f"Content-Transfer-Encoding: base64\r\n\r\n{att}\r\n--{boundary}--\r\n")
    else:
        hdr.append("Content-Type: text/plain; charset=utf-8")
        hdr.append("Content-Transfer-Encoding: 8bit")
        body = paragraph(rng, max(size - sum(len(h) + 2 for h in hdr) - 4, 200)) + "\r\n"
    return ("\r\n".join(hdr) + "\r\n\r\n" + body).encode()


def body_index(n):
    """The message whose full body is fetched: a multipart one, 43% into the mailbox."""
    return next(i for i in range(n * 43 // 100, n) if b"multipart/mixed" in message(i))


def message_id(i):
    m = re.search(rb"^Message-ID: (<[^>]*>)", message(i), re.M)
    return m.group(1).decode()


# --------------------------------------------------------------------------
# a raw IMAP connection
# --------------------------------------------------------------------------
class Imap:
    def __init__(self, hostport):
        host, port = hostport.rsplit(":", 1)
        if host not in ("127.0.0.1", "localhost"):
            sys.exit("loopback only")
        self.sock = socket.create_connection(("127.0.0.1", int(port)))
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.pos = 0
        self.n = 0
        greeting = self.line()
        if not greeting.startswith(b"* OK"):
            raise RuntimeError("greeting: %r" % greeting)

    def fill(self):
        data = self.sock.recv(1 << 20)
        if not data:
            raise RuntimeError("connection closed")
        if self.pos > (1 << 20):
            del self.buf[:self.pos]
            self.pos = 0
        self.buf += data

    def line(self):
        while True:
            end = self.buf.find(b"\r\n", self.pos)
            if end >= 0:
                line = bytes(self.buf[self.pos:end])
                self.pos = end + 2
                return line
            self.fill()

    def skip(self, n):
        while len(self.buf) - self.pos < n:
            self.fill()
        data = bytes(self.buf[self.pos:self.pos + n])
        self.pos += n
        return data

    def send(self, data):
        self.sock.sendall(data)

    def tag(self):
        self.n += 1
        return b"a%d" % self.n

    def response(self, tag, keep=True):
        """Reads until `tag`'s completion; returns (status line, untagged
        responses with their literals joined in), raises on NO/BAD."""
        untagged, current = [], []
        while True:
            line = self.line()
            m = re.search(rb"\{(\d+)\+?\}$", line)
            if m:
                lit = self.skip(int(m.group(1)))
                if keep:
                    current += [line, lit]
                continue
            if keep:
                current.append(line)
                untagged.append(b"".join(current) if len(current) > 1 else current[0])
            current = []
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return line, untagged[:-1] if keep else []

    def command(self, text, keep=True):
        tag = self.tag()
        self.send(tag + b" " + text + b"\r\n")
        return self.response(tag, keep)

    def count_fetch(self, text):
        """Sends a FETCH, reads the whole answer; returns the number of FETCH responses."""
        tag = self.tag()
        self.send(tag + b" " + text + b"\r\n")
        n = 0
        while True:
            line = self.line()
            if line.startswith(b"* ") and b" FETCH " in line[:24]:
                n += 1
            while True:
                m = re.search(rb"\{(\d+)\+?\}$", line)
                if not m:
                    break
                self.skip(int(m.group(1)))
                line = self.line()
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode(errors="replace"))
                return n

    def login(self, user, password):
        def q(s):
            return b'"' + s.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'
        self.command(b"LOGIN " + q(user) + b" " + q(password))

    def close(self):
        try:
            self.command(b"LOGOUT")
        except RuntimeError:
            pass
        self.sock.close()


# --------------------------------------------------------------------------
# fill
# --------------------------------------------------------------------------
def cmd_fill(a):
    hostport, user, password, n = a[0], a[1], a[2], int(a[3])
    conns = int(a[4]) if len(a) > 4 else 4
    errors = []

    def worker(k):
        try:
            c = Imap(hostport)
            c.login(user, password)
            batch = []
            for i in range(k, n, conns):
                data = message(i)
                tag = c.tag()
                c.send(tag + b" APPEND INBOX {%d+}\r\n" % len(data) + data + b"\r\n")
                batch.append(tag)
                if len(batch) == 32:
                    for t in batch:
                        c.response(t, keep=False)
                    batch = []
            for t in batch:
                c.response(t, keep=False)
            c.close()
        except Exception as e:  # noqa: BLE001 - reported below
            errors.append(repr(e))

    t0 = time.monotonic()
    threads = [threading.Thread(target=worker, args=(k,)) for k in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        sys.exit("fill failed: " + "; ".join(errors))
    dt = time.monotonic() - t0
    print(f"appended {n} messages in {dt:.1f} s ({n / dt:.0f} msg/s)", file=sys.stderr)


# --------------------------------------------------------------------------
# bench
# --------------------------------------------------------------------------
def rss_kib(pid, field="VmRSS"):
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


class Sampler(threading.Thread):
    """Peak RSS of one process, sampled every 2 ms until stopped."""

    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.stop = pid, 0, threading.Event()

    def run(self):
        while not self.stop.is_set():
            v = rss_kib(self.pid)
            if v and v > self.peak:
                self.peak = v
            time.sleep(0.002)


def session_pid(sock, server_port):
    """The process that holds the server end of `sock` (Dovecot's imap process)."""
    local_port = sock.getsockname()[1]
    want = "%08X:%04X" % (0x0100007F, server_port), "%08X:%04X" % (0x0100007F, local_port)
    inode = None
    with open("/proc/net/tcp") as f:
        for line in f.readlines()[1:]:
            p = line.split()
            if (p[1], p[2]) == want:
                inode = p[9]
    if inode is None:
        return None
    target = f"socket:[{inode}]"
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() != "imap":
                    continue
            for fd in os.listdir(f"/proc/{pid}/fd"):
                if os.readlink(f"/proc/{pid}/fd/{fd}") == target:
                    return int(pid)
        except OSError:
            continue
    return None


def one_session(a, body_uid, body_data):
    timings = {}
    sampler = None
    if a.rss.startswith("mailhop:"):
        pid = int(a.rss.split(":", 1)[1])
        base = rss_kib(pid)
        sampler = Sampler(pid)
        sampler.start()
    t0 = time.perf_counter()
    c = Imap(a.hostport)
    c.login(a.user, a.password)
    t_login = time.perf_counter()
    if sampler:
        # argon2 (~19 MiB, freed at once) runs in the server's process at LOGIN;
        # Dovecot verifies in its auth process, not in the imap process.
        login_peak, sampler.peak = sampler.peak, 0
        after_login = rss_kib(pid)
    _, sel = c.command(b"SELECT INBOX")
    timings["login_select"] = time.perf_counter() - t0
    timings["select"] = time.perf_counter() - t_login
    exists = next((int(l.split()[1]) for l in sel if l.endswith(b" EXISTS")), None)

    t0 = time.perf_counter()
    fetched = c.count_fetch(b"UID FETCH 1:* (FLAGS ENVELOPE)")
    timings["fetch_envelope"] = time.perf_counter() - t0

    t0 = time.perf_counter()
    _, found = c.command(b"UID SEARCH SUBJECT " + WORD.encode())
    timings["search_subject"] = time.perf_counter() - t0
    hits = sum(len(l.split()) - 2 for l in found if l.startswith(b"* SEARCH"))

    t0 = time.perf_counter()
    _, body = c.command(b"UID FETCH %d BODY.PEEK[]" % body_uid)
    timings["fetch_body"] = time.perf_counter() - t0
    body_ok = any(body_data in part for part in body)

    if sampler:
        sampler.stop.set()
        sampler.join()
        peak = max(sampler.peak, login_peak, base or 0)
        rss = {"session_peak_rss_kib": peak - (base or 0),
               "after_login_peak_rss_kib": max(sampler.peak - (after_login or 0), 0),
               "server_rss_kib": peak}
    else:
        imap_pid = session_pid(c.sock, int(a.hostport.rsplit(":", 1)[1]))
        hwm = rss_kib(imap_pid, "VmHWM") if imap_pid else None
        rss = {"session_peak_rss_kib": hwm, "after_login_peak_rss_kib": hwm, "server_rss_kib": hwm}
    c.close()
    return {"exists": exists, "fetched": fetched, "search_hits": hits, "body_ok": body_ok,
            **{k + "_ms": round(v * 1000, 3) for k, v in timings.items()}, **rss}


def cmd_bench(argv):
    p = argparse.ArgumentParser(prog="imap_client.py bench")
    p.add_argument("name")
    p.add_argument("hostport")
    p.add_argument("user")
    p.add_argument("password")
    p.add_argument("--rss", required=True)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--out")
    p.add_argument("--no-warmup", action="store_true")
    p.add_argument("--first-round", type=int, default=1)
    a = p.parse_args(argv)
    # The body's UID, found once (not timed): fills may append in any order.
    c = Imap(a.hostport)
    c.login(a.user, a.password)
    _, sel = c.command(b"EXAMINE INBOX")
    exists = next(int(l.split()[1]) for l in sel if l.endswith(b" EXISTS"))
    index = body_index(exists)
    body_data = message(index)
    _, found = c.command(b'UID SEARCH HEADER Message-ID "%s"' % message_id(index).encode())
    uids = [int(x) for l in found if l.startswith(b"* SEARCH") for x in l.split()[2:]]
    c.close()
    if len(uids) != 1:
        sys.exit(f"{a.name}: the body message is not in INBOX once ({uids})")
    # Warm-up (caches, indexes, page cache): kept as round 0, not in the medians;
    # its RSS growth is mailhop's first-session figure (later sessions reuse
    # what the allocator keeps).
    if not a.no_warmup:
        warm = {"server": a.name, "round": 0, "time": time.time(), **one_session(a, uids[0], body_data)}
        print(json.dumps(warm), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(warm) + "\n")
    rows = []
    for r in range(a.rounds):
        row = {"server": a.name, "round": a.first_round + r, "time": time.time(), **one_session(a, uids[0], body_data)}
        rows.append(row)
        print(json.dumps(row), flush=True)
        if a.out:
            with open(a.out, "a") as f:
                f.write(json.dumps(row) + "\n")
    bad = [r for r in rows if not r["body_ok"] or r["fetched"] != r["exists"]]
    if bad:
        sys.exit(f"{a.name}: wrong answers: {bad[0]}")


OPS = [("login_select_ms", "connect+LOGIN+SELECT INBOX (ms)"),
       ("select_ms", "  of which SELECT INBOX (ms)"),
       ("fetch_envelope_ms", "UID FETCH 1:* (FLAGS ENVELOPE) (ms)"),
       ("search_subject_ms", "UID SEARCH SUBJECT (ms)"),
       ("fetch_body_ms", "UID FETCH BODY.PEEK[] one message (ms)"),
       ("session_peak_rss_kib", "session peak RSS (KiB)"),
       ("after_login_peak_rss_kib", "  after LOGIN (KiB)")]


def cmd_table(a):
    rows = [json.loads(l) for l in open(a[0]) if l.strip()]

    warm = {r["server"]: r for r in rows if r["round"] == 0}
    rows = [r for r in rows if r["round"] > 0]

    def med(server, key):
        v = [r[key] for r in rows if r["server"] == server and r.get(key) is not None]
        return statistics.median(v) if v else None

    servers = ["mailhop", "dovecot"]
    n = {s: len([r for r in rows if r["server"] == s]) for s in servers}
    info = {s: next((r for r in rows if r["server"] == s), {}) for s in servers}
    print(f"messages: mailhop {info['mailhop'].get('exists')}, dovecot {info['dovecot'].get('exists')}; "
          f"SEARCH hits: mailhop {info['mailhop'].get('search_hits')}, dovecot {info['dovecot'].get('search_hits')}; "
          f"rounds: mailhop {n['mailhop']}, dovecot {n['dovecot']} (medians)")
    print(f"{'operation':<42} {'mailhop':>10} {'dovecot':>10} {'mailhop/dovecot':>16}")
    for key, label in OPS:
        m, d = med("mailhop", key), med("dovecot", key)
        ratio = f"{m / d:.2f}x" if m is not None and d else "-"
        fmt = (lambda v: "-" if v is None else (f"{v:.0f}" if key.endswith("kib") else f"{v:.2f}"))
        print(f"{label:<42} {fmt(m):>10} {fmt(d):>10} {ratio:>16}")
    m, d = (warm.get(s, {}).get("session_peak_rss_kib") for s in servers)
    if m is not None and d:
        print(f"{'first session peak RSS (KiB)':<42} {m:>10} {d:>10} {m / d:>15.2f}x")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, rest = sys.argv[1], sys.argv[2:]
    if cmd == "fill":
        cmd_fill(rest)
    elif cmd == "bench":
        cmd_bench(rest)
    elif cmd == "table":
        cmd_table(rest)
    elif cmd == "word":
        print(WORD)
    else:
        sys.exit(__doc__)


if __name__ == "__main__":
    main()
