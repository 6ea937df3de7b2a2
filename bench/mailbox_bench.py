"""Mailbox workloads of the benchmark: POP3 and IMAP, posthorn against Dovecot.

Used by bench/bench.py (run() below); not a program of its own.  Sets up,
in temporary directories on free loopback ports, a posthorn instance with
auth, pop3d and imapd, and a Dovecot instance from Debian's packages with
its own dovecot.conf (Debian's defaults, passwd-file users, Maildir).  Both
serve the same users from the same kind of Maildir tree
(MAILROOT/example.test/<user>/), filled with the same message files.

Trusts its own fixture and the two servers' configuration; what a server
answers is checked (counts, sizes, deletes really done) and a run that
does not check out is an error, never a number.  A system whose service
does not answer is reported as "not available" for the workloads that
need it, and the run goes on with the rest.  Connections go to 127.0.0.1
only; every wait is bounded.
"""
import asyncio
import ctypes
import os
import random
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

import bench as core

DOMAIN = "example.test"
PASSWORD = "bench pw"
POP_USER = "pop"          # workload (4)
FETCH_USER = "fetch"      # workload (5)
CLIENT_USERS = 50         # workload (6): c00 .. c49, one client each
IDLE_PREFIX = "i"         # workload (7): i00000 .. one connection each
IDLE_MESSAGES = 20        # messages in each idle user's INBOX
CLIENT_FETCH = "1:10"
# The SEARCH keys of imap_fetch; the fixture makes every one of them hit.
SEARCH_KEYS = ['FROM "alice"', 'SUBJECT "invoice"', "SINCE 1-Jun-2024",
               'TEXT "quarterly"']
IO_TIMEOUT = 60           # seconds for one reply
HANDSHAKES_IN_FLIGHT = 50  # idle workload: connections being set up at once
MEM_RESERVE = 3 << 30     # idle workload: stop opening below this MemAvailable

WORKLOAD_NAMES = ("pop3_download", "imap_fetch", "imap_clients",
                  "imap_idle_10k")

# Metrics per workload: (key, label, better): better is "high" or "low";
# the first one is the workload's headline.
METRICS = {
    "pop3_download": [("rate", "messages/s", "high"),
                      ("mb_per_s", "MB/s", "high"),
                      ("cpu_ms_per_msg", "CPU ms/message", "low")],
    "imap_fetch": [("envelopes_per_s", "envelopes/s", "high"),
                   ("body_mb_per_s", "bodies MB/s", "high"),
                   ("search_s", "SEARCH s (4 keys)", "low"),
                   ("cpu_ms_per_msg", "CPU ms/message", "low")],
    "imap_clients": [("logins_per_s", "logins/s", "high"),
                     ("commands_per_s", "commands/s", "high"),
                     ("cpu_ms_per_login", "CPU ms/login cycle", "low")],
    "imap_idle_10k": [("connections", "connections idling", "high"),
                      ("rss_kib_per_conn", "RSS KiB/connection", "low"),
                      ("pss_kib_per_conn", "PSS KiB/connection", "low"),
                      ("rss_kib_per_conn_added", "RSS KiB/conn over idle", "low"),
                      ("cpu_ms_per_conn", "CPU ms/connection setup", "low")],
}


# ---------------------------------------------------------------- fixture

FIRST = ["Alice", "Bob", "Carol", "David", "Erin", "Frank", "Grace", "Heidi",
         "Ivan", "Judy", "Mallory", "Niaj", "Olivia", "Peggy", "Rupert",
         "Sybil", "Trent", "Victor", "Walter", "Zoe"]
LAST = ["Smith", "Jones", "Miller", "Schulz", "Dubois", "Rossi", "Novak",
        "Garcia", "Tanaka", "Nielsen"]
ORGS = ["example.com", "example.org", "example.net", "lists.example.org",
        "mail.example.com", "corp.example"]
WORDS = ("the of and to in is for on that with as by this be are from at or "
         "an it we you will can not have has our your all more new about "
         "meeting report budget release server quarterly invoice schedule "
         "project review draft update team customer support contract "
         "deadline agenda minutes forecast delivery shipment network backup "
         "storage migration feedback proposal travel expense approval "
         "office planning roadmap security patch outage incident").split()
SUBJECT_WORDS = ["Re:", "Fwd:", "Meeting", "notes", "Invoice", "April",
                 "Release", "plan", "Question", "about", "the", "budget",
                 "Weekly", "report", "Server", "migration", "Lunch",
                 "tomorrow?", "Contract", "draft", "Your", "order", "has",
                 "shipped", "Travel", "expenses", "Q3", "roadmap"]


def _words(rng, n):
    return " ".join(rng.choice(WORDS) for _ in range(n))


def _paragraphs(rng, size):
    """Plain text of about size bytes, lines under 76 characters."""
    out, total = [], 0
    while total < size:
        line = _words(rng, rng.randint(6, 11))
        line = line[:75]
        out.append(line)
        total += len(line) + 1
        if rng.random() < 0.12:
            out.append("")
            total += 1
    return "\n".join(out) + "\n"


def _base64_blob(rng, size):
    import base64
    raw = bytes(rng.getrandbits(8) for _ in range(size * 3 // 4))
    b = base64.b64encode(raw).decode()
    return "\n".join(b[i:i + 76] for i in range(0, len(b), 76)) + "\n"


def make_fixture(count, seed=1000):
    """count messages as (name, bytes with LF line ends, mtime).

    Sizes spread log-uniformly over 2..50 KiB; about 60% text/plain, 20%
    multipart/alternative (text + HTML), 20% multipart/mixed with a base64
    attachment; headers as a real delivery has them (Return-Path,
    Received, DKIM-Signature on some, Message-ID, References on replies,
    encoded-word subjects on some).  Dates run over 2024, one message
    every ~8 hours, and are the files' mtimes (INTERNALDATE)."""
    rng = random.Random(seed)
    t0 = 1704067200  # 2024-01-01
    msgs = []
    for i in range(count):
        mtime = t0 + i * 28800 + rng.randint(0, 3600)
        size = int(2048 * (25 ** rng.random()))  # 2 KiB .. 50 KiB
        first, last = rng.choice(FIRST), rng.choice(LAST)
        sender = "%s.%s@%s" % (first.lower(), last.lower(), rng.choice(ORGS))
        subject = " ".join(rng.choice(SUBJECT_WORDS)
                           for _ in range(rng.randint(2, 7)))
        if rng.random() < 0.1:
            subject = "=?UTF-8?B?SW52b2ljZSBmw7xyIE3DpHJ6?= " + subject
        date = time.strftime("%a, %d %b %Y %H:%M:%S +0000", time.gmtime(mtime))
        relay = "mx%d.%s" % (rng.randint(1, 4), rng.choice(ORGS))
        h = ["Return-Path: <%s>" % sender,
             "Delivered-To: user@%s" % DOMAIN,
             "Received: from %s (%s [192.0.2.%d])\n\tby mx.%s (posthorn) with "
             "ESMTPS id %08X\n\tfor <user@%s>; %s"
             % (relay, relay, rng.randint(1, 254), DOMAIN,
                rng.getrandbits(32), DOMAIN, date),
             "Received: from localhost (localhost [127.0.0.1])\n\tby %s with "
             "ESMTP id %08X; %s" % (relay, rng.getrandbits(32), date)]
        if rng.random() < 0.4:
            h.append("DKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; "
                     "d=%s; s=sel1;\n\th=from:to:subject:date:message-id;\n\t"
                     "bh=%s;\n\tb=%s" % (sender.split("@")[1],
                                         _base64_blob(rng, 32).strip(),
                                         _base64_blob(rng, 160).strip()
                                         .replace("\n", "\n\t")))
        h += ["From: %s %s <%s>" % (first, last, sender),
              "To: Bench User <user@%s>" % DOMAIN]
        if rng.random() < 0.3:
            h.append("Cc: %s <%s@%s>" % (rng.choice(FIRST),
                                         rng.choice(FIRST).lower(),
                                         rng.choice(ORGS)))
        h += ["Subject: %s" % subject, "Date: %s" % date,
              "Message-ID: <%08x.%d@%s>" % (rng.getrandbits(32), i,
                                            sender.split("@")[1])]
        if subject.startswith("Re:"):
            ref = "<%08x@%s>" % (rng.getrandbits(32), rng.choice(ORGS))
            h += ["In-Reply-To: %s" % ref, "References: %s" % ref]
        if rng.random() < 0.2:
            h.append("List-Id: Team list <team.%s>" % rng.choice(ORGS))
        h += ["X-Mailer: BenchMail %d.%d" % (rng.randint(1, 9), rng.randint(0, 9)),
              "MIME-Version: 1.0"]
        kind = rng.random()
        head_len = sum(len(x) + 1 for x in h)
        body_size = max(400, size - head_len)
        if kind < 0.6:
            h += ["Content-Type: text/plain; charset=utf-8",
                  "Content-Transfer-Encoding: 8bit"]
            body = _paragraphs(rng, body_size)
        elif kind < 0.8:
            b = "alt-%08x" % rng.getrandbits(32)
            h.append('Content-Type: multipart/alternative; boundary="%s"' % b)
            text = _paragraphs(rng, body_size // 3)
            html = "<html><body>\n" + "".join(
                "<p>%s</p>\n" % line for line in
                _paragraphs(rng, body_size * 2 // 3 - 60).split("\n") if line
            ) + "</body></html>\n"
            body = ("This is a multi-part message in MIME format.\n\n"
                    "--%s\nContent-Type: text/plain; charset=utf-8\n"
                    "Content-Transfer-Encoding: 8bit\n\n%s\n"
                    "--%s\nContent-Type: text/html; charset=utf-8\n"
                    "Content-Transfer-Encoding: 8bit\n\n%s\n--%s--\n"
                    % (b, text, b, html, b))
        else:
            b = "mix-%08x" % rng.getrandbits(32)
            h.append('Content-Type: multipart/mixed; boundary="%s"' % b)
            text = _paragraphs(rng, min(1500, body_size // 4))
            ext, ctype = rng.choice([("pdf", "application/pdf"),
                                     ("png", "image/png"),
                                     ("xlsx", "application/vnd.openxmlformats-"
                                      "officedocument.spreadsheetml.sheet")])
            body = ("This is a multi-part message in MIME format.\n\n"
                    "--%s\nContent-Type: text/plain; charset=utf-8\n"
                    "Content-Transfer-Encoding: 8bit\n\n%s\n"
                    "--%s\nContent-Type: %s; name=\"report-%d.%s\"\n"
                    "Content-Disposition: attachment; filename=\"report-%d.%s\"\n"
                    "Content-Transfer-Encoding: base64\n\n%s\n--%s--\n"
                    % (b, text, b, ctype, i, ext, i, ext,
                       _base64_blob(rng, max(300, body_size - len(text) - 400)),
                       b))
        data = ("\n".join(h) + "\n\n" + body).encode()
        # Named as posthorn's local names a delivery (and as Dovecot does):
        # S= the file size, W= the size with CRLF line ends.  Both servers
        # read W= instead of counting the file.
        name = "%d.V801I%xM%06d.bench.example,S=%d,W=%d" % (
            mtime, 0x10000 + i, rng.randint(0, 999999), len(data),
            crlf_size(data))
        msgs.append((name, data, mtime))
    return msgs


def crlf_size(data):
    return len(data) + data.count(b"\n")


_libc = ctypes.CDLL(None, use_errno=True)


def syncfs(path):
    """Write the fixture out before a measurement, so that neither system
    pays for the other's (or its own fixture's) writeback."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        _libc.syncfs(fd)
    finally:
        os.close(fd)


# ---------------------------------------------------------------- systems

def mail_owner():
    _, uid, gid = core.run_user()
    return uid, gid


def make_maildir(path, uid, gid):
    for d in ("", "tmp", "new", "cur"):
        p = os.path.join(path, d)
        os.makedirs(p, mode=0o700, exist_ok=True)
        os.chown(p, uid, gid)


def fill_maildir(path, msgs, uid, gid, link_from=None):
    """Put msgs into path/new/ as a delivery would (owner, mode, mtime).
    link_from: a Maildir already holding the same files; hard-link them
    from its new/ instead of writing (the many-user workloads)."""
    make_maildir(path, uid, gid)
    new = os.path.join(path, "new")
    for name, data, mtime in msgs:
        p = os.path.join(new, name)
        if link_from:
            os.link(os.path.join(link_from, "new", name), p)
            continue
        fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, data)
            os.fchown(fd, uid, gid)
        finally:
            os.close(fd)
        os.utime(p, (mtime, mtime))


def reset_maildir(path):
    """Remove a Maildir with everything a server kept in it (indexes)."""
    shutil.rmtree(path, ignore_errors=True)


def users_list(idle_users):
    users = [POP_USER, FETCH_USER]
    users += ["c%02d" % k for k in range(CLIENT_USERS)]
    users += ["%s%05d" % (IDLE_PREFIX, k) for k in range(idle_users)]
    return users


def instance_pids(sysobj):
    """Every process of an instance: its cgroup, or its process tree."""
    cg = sysobj.cpu.cg
    if cg:
        with open(os.path.join(cg, "cgroup.procs")) as f:
            return [int(x) for x in f.read().split()]
    parents = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
                parents[int(d)] = int(st[st.rfind(")") + 2:].split()[1])
            except OSError:
                pass
    out = []
    for pid in parents:
        p = pid
        while p > 1:
            if p in sysobj.cpu.root_pids:
                out.append(pid)
                break
            p = parents.get(p, 0)
    return out


def memory_by_pid(pids):
    """{pid: (RSS, PSS)} in KiB; gone ones skipped."""
    out = {}
    for pid in pids:
        rss = pss = 0
        try:
            with open("/proc/%d/smaps_rollup" % pid) as f:
                for line in f:
                    if line.startswith("Rss:"):
                        rss += int(line.split()[1])
                    elif line.startswith("Pss:"):
                        pss += int(line.split()[1])
        except OSError:
            continue
        out[pid] = (rss, pss)
    return out


def memory_added(before, after):
    """(RSS, PSS) in KiB that the processes of after gained since before:
    a new process counts whole, one that shrank or exited counts nothing
    (a worker of an earlier workload that exits meanwhile must not make
    the connections look free)."""
    rss = pss = 0
    for pid, (r, p) in after.items():
        r0, p0 = before.get(pid, (0, 0))
        rss += max(0, r - r0)
        pss += max(0, p - p0)
    return rss, pss


def mem_available():
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    return 1 << 62


class PosthornMailbox(core.Posthorn):
    """The bench's posthorn instance plus auth, pop3d and imapd."""

    def __init__(self, build, users):
        super().__init__(build)
        self.uid, self.gid = mail_owner()
        self.mailroot = os.path.join(self.dir, "mail", DOMAIN)
        self.pop_port, self.imap_port = core.free_port(), core.free_port()
        with open(os.path.join(self.etc, "users"), "w") as f:
            for u in users:
                f.write("%s@%s:{PLAIN}%s\n" % (u, DOMAIN, PASSWORD))
        os.chmod(os.path.join(self.etc, "users"), 0o644)
        with open(os.path.join(self.etc, "main.cf"), "a") as f:
            f.write("passdb = passwd-file:%s/users\n" % self.etc)
        # Only servers that were built: master refuses a master.cf that
        # names a missing program, and the other server can still be
        # measured.
        have = self.services()
        with open(os.path.join(self.etc, "master.cf"), "a") as f:
            f.write("auth unix - - n - 1 auth\n")
            if have["pop3"]:
                f.write("127.0.0.1:%d inet n n n - - pop3d\n" % self.pop_port)
            if have["imap"]:
                f.write("127.0.0.1:%d inet n - n - - imapd\n" % self.imap_port)
        os.makedirs(self.mailroot, exist_ok=True)
        os.chown(self.mailroot, self.uid, self.gid)

    def services(self):
        return {"pop3": os.path.exists(os.path.join(self.build, "bin", "pop3d")),
                "imap": os.path.exists(os.path.join(self.build, "bin", "imapd"))}


class Dovecot(core.System):
    """A Dovecot instance of its own: Debian's defaults, Maildir, no TLS.

    Everything not set here is Dovecot's default, notably the login
    process model (service imap-login/pop3-login service_count = 1: a new
    login process per connection, and one imap/pop3 process per session),
    mail_fsync = optimized and no auth cache.  Raised, because 10,000
    sessions need it: service imap process_limit (1024 in Debian) and
    default_client_limit (1000: every imap process keeps a connection to
    the stats service)."""
    name = "dovecot"

    def __init__(self, users, max_sessions):
        super().__init__()
        self.uid, self.gid = mail_owner()
        self.mailroot = os.path.join(self.dir, "mail", DOMAIN)
        self.pop_port, self.imap_port = core.free_port(), core.free_port()
        self.proc = None
        etc = os.path.join(self.dir, "etc")
        for d in ("etc", "run", "state", "log", "mail"):
            os.makedirs(os.path.join(self.dir, d))
        os.makedirs(self.mailroot)
        os.chown(os.path.join(self.dir, "mail"), self.uid, self.gid)
        os.chown(self.mailroot, self.uid, self.gid)
        with open(os.path.join(etc, "users"), "w") as f:
            for u in users:
                f.write("%s@%s:{PLAIN}%s::::::\n" % (u, DOMAIN, PASSWORD))
        os.chmod(os.path.join(etc, "users"), 0o644)
        limit = max_sessions + 1024
        self.conf = os.path.join(etc, "dovecot.conf")
        with open(self.conf, "w") as f:
            f.write(f"""# bench/mailbox_bench.py: Debian's defaults except where noted
base_dir = {self.dir}/run
state_dir = {self.dir}/state
instance_name = bench-dovecot-{os.getpid()}-{self.imap_port}
log_path = {self.dir}/log/dovecot.log
listen = 127.0.0.1
protocols = imap pop3
ssl = no
default_internal_user = dovecot
default_internal_group = dovecot
default_login_user = dovenull
mail_location = maildir:~
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {etc}/users
}}
userdb {{
  driver = static
  args = uid={self.uid} gid={self.gid} home={self.mailroot}/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {self.imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {self.pop_port}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
# Raised for the 10,000-connection workload (defaults: 1024 and 1000).
service imap {{
  process_limit = {limit}
}}
default_client_limit = {limit}
""")
        self.etc = etc

    def services(self):
        return {"pop3": True, "imap": True}

    def start(self):
        def pre():
            self.cpu.preexec()
            os.setsid()
        self.log = open(os.path.join(self.dir, "log", "stderr"), "wb")
        self.proc = subprocess.Popen(["dovecot", "-F", "-c", self.conf],
                                     stdout=self.log, stderr=self.log,
                                     preexec_fn=pre)
        self.cpu.root_pids = [self.proc.pid]

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait(10)
        if getattr(self, "log", None):
            self.log.close()


def wait_greeting(port, prefix, timeout=20):
    end = time.time() + timeout
    last = None
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 2) as s:
                s.settimeout(5)
                line = s.recv(512)
                if line.startswith(prefix):
                    return None
                last = line[:80]
        except OSError as e:
            last = e
        time.sleep(0.1)
    return "no %r greeting on port %d (%s)" % (prefix.decode(), port, last)


# ---------------------------------------------------------------- POP3

class Pop3Error(Exception):
    pass


class Pop3:
    """A minimal blocking POP3 client that reads multi-line replies in
    large chunks (poplib reads line by line: its own CPU would dominate)."""

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), IO_TIMEOUT)
        self.s.settimeout(IO_TIMEOUT)
        self.buf = bytearray()
        self.line()

    def _fill(self):
        chunk = self.s.recv(1 << 18)
        if not chunk:
            raise Pop3Error("connection closed")
        self.buf += chunk

    def line(self):
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 2]
                if not out.startswith(b"+OK"):
                    raise Pop3Error(out.decode(errors="replace"))
                return out
            self._fill()

    def cmd(self, text):
        self.s.sendall(text.encode() + b"\r\n")
        return self.line()

    def multi(self, text):
        """Status line, then the data up to CRLF.CRLF (not unstuffed)."""
        self.cmd(text)
        start = 0
        while True:
            if self.buf.startswith(b".\r\n"):
                del self.buf[:3]
                return b""
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                out = bytes(self.buf[:i + 2])
                del self.buf[:i + 5]
                return out
            start = max(0, len(self.buf) - 4)
            self._fill()

    def close(self):
        self.s.close()


def pop3_download(sysobj, msgs, expect_bytes):
    """Login, STAT, UIDL, RETR all, DELE all, QUIT; deletes checked."""
    c0 = sysobj.cpu.seconds()
    t0 = time.time()
    p = Pop3(sysobj.pop_port)
    p.cmd("USER %s@%s" % (POP_USER, DOMAIN))
    p.cmd("PASS %s" % PASSWORD)
    n = int(p.cmd("STAT").split()[1])
    uidl = p.multi("UIDL").count(b"\r\n")
    if n != len(msgs) or uidl != n:
        raise RuntimeError("STAT says %d, UIDL lists %d, expected %d"
                           % (n, uidl, len(msgs)))
    got = 0
    for i in range(1, n + 1):
        got += len(p.multi("RETR %d" % i))
    for i in range(1, n + 1):
        p.cmd("DELE %d" % i)
    p.cmd("QUIT")
    p.close()
    elapsed = time.time() - t0
    time.sleep(0.3)  # the session's process exits and is counted
    c1 = sysobj.cpu.seconds()
    if got < expect_bytes:
        raise RuntimeError("RETR sent %d bytes, the messages have %d"
                           % (got, expect_bytes))
    left = sum(len(os.listdir(os.path.join(sysobj.mailroot, POP_USER, d)))
               for d in ("new", "cur"))
    if left:
        raise RuntimeError("%d messages left after QUIT" % left)
    return {"rate": n / elapsed, "mb_per_s": got / elapsed / 1e6,
            "cpu_ms_per_msg": (c1 - c0) * 1000 / n, "seconds": elapsed,
            "bytes": got}


# ---------------------------------------------------------------- IMAP

class ImapError(Exception):
    pass


def tagged_ok(tag, text, line):
    """True when line is command text's tagged OK; ImapError for its NO or
    BAD; False for any other line."""
    if not line.startswith(tag + b" "):
        return False
    if not line[len(tag) + 1:].startswith(b"OK"):
        raise ImapError("%s -> %s" % (text.split()[0],
                                      line.decode(errors="replace").strip()))
    return True


class Imap:
    """A minimal asyncio IMAP client: one command at a time, literals
    read as such, untagged lines returned with literal sizes counted."""

    def __init__(self, reader, writer):
        self.r, self.w = reader, writer
        self.tag = 0

    @classmethod
    async def connect(cls, port):
        r, w = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=1 << 20),
            IO_TIMEOUT)
        c = cls(r, w)
        line = await asyncio.wait_for(r.readline(), IO_TIMEOUT)
        if not line.startswith(b"* OK"):
            w.close()
            raise ImapError("greeting %r" % line[:80])
        return c

    async def _response_line(self):
        """One logical response line: (text without literals, literal bytes)."""
        parts, lit = [], 0
        while True:
            line = await self.r.readline()
            if not line:
                raise ImapError("connection closed")
            if line.endswith(b"}\r\n"):
                j = line.rfind(b"{")
                n = int(line[j + 1:-3].rstrip(b"+"))
                await self.r.readexactly(n)
                lit += n
                parts.append(line[:j])
                continue
            parts.append(line)
            return b"".join(parts), lit

    async def cmd(self, text, wait_cont=False):
        """Send one command; return (untagged lines, literal bytes)."""
        self.tag += 1
        tag = b"a%d" % self.tag
        self.w.write(tag + b" " + text.encode() + b"\r\n")
        untagged, lit = [], 0
        while True:
            line, n = await asyncio.wait_for(self._response_line(), IO_TIMEOUT)
            lit += n
            if wait_cont and line.startswith(b"+"):
                return untagged, lit
            if tagged_ok(tag, text, line):
                return untagged, lit
            untagged.append(line)

    async def login(self, user):
        await self.cmd('LOGIN "%s@%s" "%s"' % (user, DOMAIN, PASSWORD))

    def close(self):
        self.w.close()


def count_fetch(lines):
    return sum(1 for x in lines if x.startswith(b"* ") and b" FETCH " in x[:24])


class ImapSync:
    """A blocking IMAP client for the single-session workload.  It reads
    in large chunks, keeps a read position instead of cutting its buffer
    per line, and skips literal contents by counting them: the asyncio
    client above spends more CPU per byte than imapd or Dovecot take to
    send it, and the faster the server fills the socket the more (its
    buffer grows to 256 KiB reads), so the client, not the server, set the
    body rate.  Both servers get this same client."""

    COMPACT = 1 << 20

    def __init__(self, port):
        self.s = socket.create_connection(("127.0.0.1", port), IO_TIMEOUT)
        self.s.settimeout(IO_TIMEOUT)
        self.buf = bytearray()
        self.pos = 0
        self.tag = 0
        line, _ = self._line()
        if not line.startswith(b"* OK"):
            self.s.close()
            raise ImapError("greeting %r" % line[:80])

    def _fill(self):
        if self.pos == len(self.buf) or self.pos > self.COMPACT:
            del self.buf[:self.pos]
            self.pos = 0
        chunk = self.s.recv(1 << 18)
        if not chunk:
            raise ImapError("connection closed")
        self.buf += chunk

    def _skip(self, n):
        while True:
            avail = len(self.buf) - self.pos
            if avail >= n:
                self.pos += n
                return
            n -= avail
            self.pos = len(self.buf)
            self._fill()

    def _line(self):
        """One logical response line (literal contents left out), and the
        number of literal bytes it carried."""
        parts, lit = [], 0
        while True:
            i = self.buf.find(b"\r\n", self.pos)
            if i < 0:
                self._fill()
                continue
            line = bytes(self.buf[self.pos:i + 2])
            self.pos = i + 2
            if line.endswith(b"}\r\n"):
                j = line.rfind(b"{")
                n = int(line[j + 1:-3].rstrip(b"+"))
                self._skip(n)
                lit += n
                parts.append(line[:j])
                continue
            parts.append(line)
            return b"".join(parts), lit

    def cmd(self, text):
        """Send one command; return (untagged lines, literal bytes)."""
        self.tag += 1
        tag = b"a%d" % self.tag
        self.s.sendall(tag + b" " + text.encode() + b"\r\n")
        untagged, lit = [], 0
        while True:
            line, n = self._line()
            lit += n
            if tagged_ok(tag, text, line):
                return untagged, lit
            untagged.append(line)

    def close(self):
        self.s.close()


def _imap_fetch(port, nmsgs):
    c = ImapSync(port)
    c.cmd('LOGIN "%s@%s" "%s"' % (FETCH_USER, DOMAIN, PASSWORD))
    c.cmd("SELECT INBOX")
    t = time.time()
    lines, _ = c.cmd("FETCH 1:* (FLAGS ENVELOPE)")
    t_env = time.time() - t
    envs = count_fetch(lines)
    t = time.time()
    lines, body = c.cmd("FETCH 1:* BODY.PEEK[]")
    t_body = time.time() - t
    bodies = count_fetch(lines)
    hits = []
    t = time.time()
    for key in SEARCH_KEYS:
        lines, _ = c.cmd("SEARCH " + key)
        hits.append(sum(len(x.split()) - 2 for x in lines
                        if x.startswith(b"* SEARCH")))
    t_search = time.time() - t
    c.cmd("LOGOUT")
    c.close()
    if envs != nmsgs or bodies != nmsgs:
        raise RuntimeError("FETCH returned %d envelopes, %d bodies of %d"
                           % (envs, bodies, nmsgs))
    return t_env, t_body, body, t_search, hits


def imap_fetch(sysobj, msgs, expect_bytes):
    c0 = sysobj.cpu.seconds()
    t0 = time.time()
    t_env, t_body, body, t_search, hits = _imap_fetch(sysobj.imap_port,
                                                      len(msgs))
    elapsed = time.time() - t0
    time.sleep(0.3)
    c1 = sysobj.cpu.seconds()
    if body != expect_bytes:
        raise RuntimeError("BODY[] sent %d bytes, the messages have %d (CRLF)"
                           % (body, expect_bytes))
    if min(hits) == 0:
        raise RuntimeError("a SEARCH found nothing: %r" % hits)
    return {"envelopes_per_s": len(msgs) / t_env,
            "body_mb_per_s": body / t_body / 1e6, "search_s": t_search,
            "cpu_ms_per_msg": (c1 - c0) * 1000 / len(msgs),
            "session_s": elapsed, "search_hits": hits}


async def _client_loop(port, user, deadline, counts):
    while time.time() < deadline:
        try:
            c = await Imap.connect(port)
            try:
                await c.login(user)
                await c.cmd("SELECT INBOX")
                lines, _ = await c.cmd("FETCH %s (FLAGS ENVELOPE)" % CLIENT_FETCH)
                if count_fetch(lines) != 10:
                    raise ImapError("FETCH %s: %d responses"
                                    % (CLIENT_FETCH, count_fetch(lines)))
                await c.cmd("LOGOUT")
            finally:
                c.close()
            counts["ok"] += 1
        except (OSError, ImapError, asyncio.TimeoutError,
                asyncio.IncompleteReadError) as e:
            counts["errors"] += 1
            counts["last_error"] = str(e)[:200]
            await asyncio.sleep(0.05)


async def _imap_clients(port, seconds):
    counts = {"ok": 0, "errors": 0, "last_error": None}
    t0 = time.time()
    await asyncio.gather(*(_client_loop(port, "c%02d" % k, t0 + seconds, counts)
                           for k in range(CLIENT_USERS)))
    return counts, time.time() - t0


def imap_clients(sysobj, seconds):
    c0 = sysobj.cpu.seconds()
    counts, elapsed = asyncio.run(_imap_clients(sysobj.imap_port, seconds))
    time.sleep(0.3)
    c1 = sysobj.cpu.seconds()
    ok = counts["ok"]
    if ok == 0 or counts["errors"] > ok / 100:
        raise RuntimeError("%d cycles, %d errors (last: %s)"
                           % (ok, counts["errors"], counts["last_error"]))
    return {"logins_per_s": ok / elapsed, "commands_per_s": 4 * ok / elapsed,
            "cpu_ms_per_login": (c1 - c0) * 1000 / ok, "cycles": ok,
            "errors": counts["errors"], "seconds": elapsed}


async def _idle_open(port, user):
    c = await Imap.connect(port)
    try:
        await c.login(user)
        await c.cmd("SELECT INBOX")
        await c.cmd("IDLE", wait_cont=True)
    except BaseException:
        c.close()
        raise
    return c


async def _imap_idle(sysobj, target, time_limit, halfway):
    """Open target idling connections; halfway() is called when the first
    half of them are idling."""
    conns, errors, last_error, stop = [], 0, None, None
    sem = asyncio.Semaphore(HANDSHAKES_IN_FLIGHT)
    t0 = time.time()

    async def one(k):
        nonlocal errors, last_error, stop
        async with sem:
            if stop:
                return
            try:
                conns.append(await _idle_open(sysobj.imap_port,
                                              "%s%05d" % (IDLE_PREFIX, k)))
            except (OSError, ImapError, asyncio.TimeoutError,
                    asyncio.IncompleteReadError) as e:
                errors += 1
                last_error = str(e)[:200]
                if errors >= 100:
                    stop = "100 connections failed (last: %s)" % last_error
            if not stop:
                if mem_available() < MEM_RESERVE:
                    stop = "stopped: less than %d GiB of memory left" % (MEM_RESERVE >> 30)
                elif time.time() - t0 > time_limit:
                    stop = "stopped: time limit of %d s" % time_limit

    half = target // 2
    await asyncio.gather(*(one(k) for k in range(half)))
    await asyncio.sleep(1)
    halfway(len(conns))
    await asyncio.gather(*(one(k) for k in range(half, target)))
    setup = time.time() - t0
    await asyncio.sleep(2)  # let the servers settle after the last IDLE
    return conns, errors, last_error, stop, setup


def imap_idle(sysobj, target, time_limit):
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < target + 1000:
        raise RuntimeError("RLIMIT_NOFILE %d is too low for %d connections"
                           % (soft, target))
    c0 = sysobj.cpu.seconds()
    half = {}

    def halfway(count):
        half["n"] = count
        half["mem"] = memory_by_pid(instance_pids(sysobj))

    async def run():
        conns, errors, last_error, stop, setup = await _imap_idle(
            sysobj, target, time_limit, halfway)
        c1 = sysobj.cpu.seconds()
        mem = memory_by_pid(instance_pids(sysobj))
        rss = sum(r for r, _ in mem.values())
        pss = sum(p for _, p in mem.values())
        nproc = len(mem)
        added = memory_added(half["mem"], mem)
        # Are they all still there and idling?  One more read on each
        # would be slow; a connection the server closed shows EOF.
        alive = sum(1 for c in conns if not c.r.at_eof())
        for c in conns:
            c.close()
        await asyncio.sleep(0.5)
        return (len(conns), alive, errors, last_error, stop, setup,
                c1, rss, pss, nproc, added)

    (n, alive, errors, last_error, stop, setup, c1, rss, pss,
     nproc, added) = asyncio.run(run())
    if n == 0:
        raise RuntimeError("no connection reached IDLE (%s)" % last_error)
    res = {"connections": n, "target": target, "alive_at_measure": alive,
           "rss_kib_per_conn": rss / n, "pss_kib_per_conn": pss / n,
           "rss_kib_per_conn_added": added[0] / max(1, n - half["n"]),
           "pss_kib_per_conn_added": added[1] / max(1, n - half["n"]),
           "rss_kib_total": rss, "pss_kib_total": pss, "processes": nproc,
           "cpu_ms_per_conn": (c1 - c0) * 1000 / n, "setup_s": setup,
           "errors": errors}
    if n < target:
        res["note"] = stop or ("max reached; last error: %s" % last_error)
    # Wait for the server side to wind down before anything else runs.
    end = time.time() + 120
    while time.time() < end and len(instance_pids(sysobj)) > 50:
        time.sleep(0.5)
    return res


# ---------------------------------------------------------------- driver

def _settle(systems):
    for s in systems:
        end = time.time() + 30
        while time.time() < end and len(instance_pids(s)) > 40:
            time.sleep(0.2)


def run(names, args, build):
    """Run the mailbox workloads in names; returns (rows, raw, notes)."""
    idle_target = args.idle_connections
    need_idle = "imap_idle_10k" in names
    users = users_list(idle_target if need_idle else 0)
    # Client and servers need a descriptor per connection (servers
    # inherit this limit; Dovecot raises its own per service).
    want = max(65536, idle_target * 2 + 4096)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, want), max(hard, want)))
    except (ValueError, OSError):  # no CAP_SYS_RESOURCE: up to the hard limit
        resource.setrlimit(resource.RLIMIT_NOFILE, (max(soft, min(want, hard)), hard))

    print("mailbox fixture: %d messages" % args.mailbox_messages, file=sys.stderr)
    msgs = make_fixture(args.mailbox_messages)
    file_bytes = sum(len(d) for _, d, _ in msgs)
    wire_bytes = sum(crlf_size(d) for _, d, _ in msgs)

    systems, unavailable = [], {}
    for name, make in (("posthorn", lambda: PosthornMailbox(build, users)),
                       ("dovecot", lambda: Dovecot(
                           users, idle_target if need_idle else 0))):
        try:
            systems.append(make())
        except Exception as e:  # noqa: BLE001 - reported, run goes on
            unavailable[name] = "setup failed: %s" % e
    down = {}  # (system, protocol) -> reason
    for s in systems:
        try:
            s.start()
        except Exception as e:  # noqa: BLE001
            down[(s.name, "pop3")] = down[(s.name, "imap")] = "start failed: %s" % e
            continue
        have = s.services()
        for proto, port, greet in (("pop3", s.pop_port, b"+OK"),
                                   ("imap", s.imap_port, b"* OK")):
            if not have[proto]:
                down[(s.name, proto)] = "server not built"
                continue
            err = wait_greeting(port, greet)
            if err:
                down[(s.name, proto)] = err

    # Per-user mailboxes the workloads read; the POP3 one is refilled per run.
    def prepare(s, w):
        if w == "imap_fetch":
            path = os.path.join(s.mailroot, FETCH_USER)
            reset_maildir(path)
            fill_maildir(path, msgs, s.uid, s.gid)
        elif w == "imap_clients":
            src = os.path.join(s.mailroot, FETCH_USER + ".src")
            reset_maildir(src)
            fill_maildir(src, msgs, s.uid, s.gid)
            for k in range(CLIENT_USERS):
                path = os.path.join(s.mailroot, "c%02d" % k)
                reset_maildir(path)
                fill_maildir(path, msgs, s.uid, s.gid, link_from=src)
        elif w == "imap_idle_10k":
            src = os.path.join(s.mailroot, "idle.src")
            reset_maildir(src)
            fill_maildir(src, msgs[:IDLE_MESSAGES], s.uid, s.gid)
            for k in range(idle_target):
                fill_maildir(os.path.join(s.mailroot, "%s%05d" % (IDLE_PREFIX, k)),
                             msgs[:IDLE_MESSAGES], s.uid, s.gid, link_from=src)
        syncfs(s.mailroot)

    async def prime_clients(port):
        # One unmeasured cycle per user: indexes built, folders created.
        async def one(k):
            c = await Imap.connect(port)
            try:
                await c.login("c%02d" % k)
                await c.cmd("SELECT INBOX")
                await c.cmd("FETCH %s (FLAGS ENVELOPE)" % CLIENT_FETCH)
                await c.cmd("LOGOUT")
            finally:
                c.close()
        for k in range(CLIENT_USERS):
            await one(k)

    def prime(s, w):
        if w == "imap_fetch":
            imap_fetch(s, msgs, wire_bytes)  # indexes and caches built
        elif w == "imap_clients":
            asyncio.run(prime_clients(s.imap_port))

    def once(s, w):
        if w == "pop3_download":
            path = os.path.join(s.mailroot, POP_USER)
            make_maildir(path, s.uid, s.gid)
            # Refilled in a later second than the last run's expunge:
            # a server that remembers new/'s mtime (Dovecot) must see
            # the directory as changed (once, Dovecot listed 1 of 1,000
            # messages without it).
            time.sleep(1.1)
            for d in ("new", "cur"):  # left over by a failed run
                for f in os.listdir(os.path.join(path, d)):
                    os.unlink(os.path.join(path, d, f))
            fill_maildir(path, msgs, s.uid, s.gid)
            syncfs(s.mailroot)
            return pop3_download(s, msgs, wire_bytes)
        if w == "imap_fetch":
            return imap_fetch(s, msgs, wire_bytes)
        if w == "imap_clients":
            return imap_clients(s, args.clients_seconds)
        return imap_idle(s, idle_target, args.idle_time_limit)

    raw = {w: {s.name: [] for s in systems} for w in names}
    notes = {w: {} for w in names}
    for name, why in unavailable.items():
        for w in names:
            notes[w][name] = why
    try:
        for w in names:
            proto = "pop3" if w.startswith("pop3") else "imap"
            live = []
            for s in systems:
                if (s.name, proto) in down:
                    notes[w][s.name] = down[(s.name, proto)]
                    continue
                try:
                    prepare(s, w)
                    prime(s, w)
                    live.append(s)
                except Exception as e:  # noqa: BLE001
                    notes[w][s.name] = "setup: %s" % e
            rounds = 1 if w == "imap_idle_10k" else args.rounds
            for r in range(rounds):
                order = live if r % 2 == 0 else live[::-1]
                for s in order:
                    _settle(systems)
                    try:
                        res = once(s, w)
                    except Exception as e:  # noqa: BLE001
                        res = {"error": str(e)[:300]}
                        print("%-24s %-9s round %d: error: %s"
                              % (w, s.name, r + 1, res["error"]), file=sys.stderr)
                    else:
                        key, label, _ = METRICS[w][0]
                        print("%-24s %-9s round %d: %10.1f %s" % (
                            w, s.name, r + 1, res[key], label), file=sys.stderr)
                    raw[w][s.name].append(res)
    finally:
        for s in systems:
            s.stop()
            s.destroy()

    rows = []
    for w in names:
        row = {"workload": w, "reference": "dovecot", "posthorn": None,
               "dovecot": None, "ratios": {}, "not_available": {}}
        for sname in ("posthorn", "dovecot"):
            runs = [x for x in raw[w].get(sname, []) if "error" not in x]
            if not runs:
                why = notes[w].get(sname)
                if not why:
                    errs = [x["error"] for x in raw[w].get(sname, [])]
                    why = errs[-1] if errs else "not run"
                row["not_available"][sname] = why
                continue
            row[sname] = {k: statistics.median(x[k] for x in runs)
                          for k, _, _ in METRICS[w]}
            if w == "imap_fetch":
                row[sname]["search_hits"] = runs[0]["search_hits"]
            if w == "imap_idle_10k" and "note" in runs[0]:
                row[sname]["note"] = runs[0]["note"]
        if row["posthorn"] and row["dovecot"]:
            for k, _, _ in METRICS[w]:
                d = row["dovecot"][k]
                row["ratios"][k] = row["posthorn"][k] / d if d else None
        rows.append(row)
    info = {"messages": len(msgs), "file_bytes": file_bytes,
            "wire_bytes": wire_bytes, "clients": CLIENT_USERS,
            "clients_seconds": args.clients_seconds,
            "idle_target": idle_target if need_idle else None,
            "idle_messages_per_user": IDLE_MESSAGES}
    return rows, raw, info


def print_table(rows, info, out=sys.stdout):
    print("\nmailbox workloads: %d messages, %.1f MB (%.1f MB as sent)"
          % (info["messages"], info["file_bytes"] / 1e6,
             info["wire_bytes"] / 1e6), file=out)
    print("%-16s %-26s %12s %12s %8s  %s" % ("workload", "metric", "posthorn",
                                             "dovecot", "ratio", "better"),
          file=out)
    for row in rows:
        w = row["workload"]
        for i, (k, label, better) in enumerate(METRICS[w]):
            cells = []
            for sname in ("posthorn", "dovecot"):
                v = row[sname]
                cells.append("%12.1f" % v[k] if v and abs(v[k]) >= 100 else
                             "%12.3f" % v[k] if v else "%12s" % "n/a")
            ratio = row["ratios"].get(k)
            win = ""
            if ratio is not None and abs(ratio - 1) > 0.005:
                win = "posthorn" if (ratio > 1) == (better == "high") else "dovecot"
            elif ratio is not None:
                win = "="
            print("%-16s %-26s %s %s %8s  %s" % (
                w if i == 0 else "", label, cells[0], cells[1],
                "%.2fx" % ratio if ratio is not None else "-", win), file=out)
        for sname, why in row["not_available"].items():
            print("%-16s   %s not available: %s" % ("", sname, why), file=out)
        for sname in ("posthorn", "dovecot"):
            if row[sname] and row[sname].get("note"):
                print("%-16s   %s: %s" % ("", sname, row[sname]["note"]), file=out)
