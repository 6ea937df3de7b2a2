"""
posthorn - helpers for the integration suite: build, start, inspect and
stop a throw-away posthorn instance, and talk SMTP to it.

An Instance lives in its own directory (made with tempfile.mkdtemp):

    DIR/etc/main.cf, master.cf, vmailbox, virtual, aliases   (-c DIR/etc)
    DIR/queue/        queue_directory
    DIR/mail/         virtual_mailbox_base (Maildirs under example.test/)
    DIR/log/maillog   maillog_file

It listens for SMTP on a free loopback port.  Every worker is started by
master as "DAEMON -c DIR/etc ...", so every process of an instance is
recognisable by "DIR/" in its command line; master's pid is also read from
DIR/queue/pid/master.pid and its descendants are followed through /proc.

Every wait in here is bounded; a helper that runs out of time raises
AssertionError naming what it waited for and what it saw, so a broken
daemon fails a test instead of hanging the suite.

Only the standard library is used (smtplib, socket, subprocess).
"""

import email.utils
import json
import os
import pwd
import re
import shutil
import signal
import smtplib
import socket
import subprocess
import tempfile
import time
from pathlib import Path

HOSTNAME = "mx.example.test"
DOMAIN = "example.test"

# Mailbox users: address -> Maildir path under virtual_mailbox_base.
USERS = {
    "alice@example.test": "example.test/alice/",
    "bob@example.test": "example.test/bob/",
    "jösé@example.test": "example.test/jose/",
}
# Virtual aliases: address -> targets.
ALIASES = {
    "team@example.test": ["alice@example.test", "bob@example.test"],
    "info@example.test": ["alice@example.test"],
}

DEFAULT_TIMEOUT = float(os.environ.get("POSTHORN_IT_TIMEOUT", "60"))
SMTP_TIMEOUT = 30.0

QUEUED_RE = re.compile(r"queued as ([0-9A-Za-z]+)")
# Maildir "new" names: <seconds>.<unique>.<host>[:2,<flags>]
MAILDIR_NAME_RE = re.compile(r"^(\d+)\.([^.:/]+)\.([^:/]+)(?::2,([A-Za-z]*))?$")


def repo_root():
    return Path(__file__).resolve().parents[2]


def build_dir():
    env = os.environ.get("POSTHORN_BUILD")
    return Path(env) if env else repo_root() / "build"


def free_port():
    """A loopback TCP port that was free a moment ago."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def default_mail_owner():
    """
    The account the workers run as.  As an ordinary user that user; as root
    an unprivileged account ("nobody"), because a root mail_owner is not a
    configuration anyone should run (Postfix refuses it) and it would hide
    every privilege bug.  POSTHORN_IT_MAIL_OWNER overrides.
    """
    env = os.environ.get("POSTHORN_IT_MAIL_OWNER")
    if env:
        return env
    if os.geteuid() == 0:
        return "nobody"
    return pwd.getpwuid(os.geteuid()).pw_name


def parse_maildir_name(name):
    """Split a Maildir file name into (seconds, unique, host, flags or None)."""
    m = MAILDIR_NAME_RE.match(name)
    if not m:
        return None
    return int(m.group(1)), m.group(2), m.group(3), m.group(4)


def lf(data):
    """What a message sent with CRLF looks like in the queue and in Maildir."""
    return data.replace(b"\r\n", b"\n")


def split_message(data):
    """(header lines as bytes, each with its "\n"; body bytes)."""
    end = data.find(b"\n\n")
    if end < 0:
        head, body = data, b""
    else:
        head, body = data[: end + 1], data[end + 2 :]
    return head.splitlines(keepends=True), body


def header_fields(lines):
    """Group header lines into fields: list of (lowercased name, raw bytes)."""
    fields = []
    for line in lines:
        if line[:1] in (b" ", b"\t") and fields:
            name, raw = fields[-1]
            fields[-1] = (name, raw + line)
        else:
            name = line.split(b":", 1)[0].strip().lower().decode("utf-8", "replace")
            fields.append((name, line))
    return fields


# ---------------------------------------------------------------- SMTP


class RawSMTP:
    """
    A bare SMTP client on a socket, for what smtplib will not send
    (pipelining, BDAT, garbage).  Every read is bounded by a timeout.
    """

    def __init__(self, port, host="127.0.0.1", timeout=SMTP_TIMEOUT):
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.closed = False

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.sock.sendall(data)

    def _readline(self, limit=1 << 20):
        while b"\n" not in self.buf:
            if len(self.buf) > limit:
                raise AssertionError("reply line longer than %d bytes" % limit)
            chunk = self.sock.recv(65536)
            if not chunk:
                self.closed = True
                if self.buf:
                    line, self.buf = self.buf, b""
                    return line
                return None
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line + b"\n"

    def reply(self):
        """
        Read one (possibly multi-line) reply.  Returns (code, [texts]) or
        (None, []) when the server closed the connection first.
        """
        lines = []
        while True:
            line = self._readline()
            if line is None:
                if lines:
                    raise AssertionError("connection closed inside a multi-line reply: %r" % lines)
                return None, []
            text = line.rstrip(b"\r\n").decode("utf-8", "replace")
            if len(text) < 3 or not text[:3].isdigit():
                raise AssertionError("malformed reply line %r" % text)
            lines.append(text)
            if len(text) == 3 or text[3] == " ":
                code = int(text[:3])
                for other in lines:
                    if int(other[:3]) != code:
                        raise AssertionError("mixed codes in one reply: %r" % lines)
                return code, [t[4:] for t in lines]
            if text[3] != "-":
                raise AssertionError("malformed reply line %r" % text)

    def cmd(self, line):
        """Send one command line (CRLF added) and read its reply."""
        if isinstance(line, str):
            line = line.encode("utf-8")
        self.send(line + b"\r\n")
        return self.reply()

    def expect(self, line, code):
        got, texts = self.cmd(line)
        assert got == code, "%r: expected %d, got %r %r" % (line, code, got, texts)
        return texts

    def greeting(self):
        code, texts = self.reply()
        assert code == 220, "greeting: expected 220, got %r %r" % (code, texts)
        return texts

    def at_eof(self, timeout=5.0):
        """True if the server closes the connection within timeout."""
        if self.closed:
            return True
        self.sock.settimeout(timeout)
        try:
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                chunk = self.sock.recv(65536)
                if not chunk:
                    self.closed = True
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except (ConnectionResetError, BrokenPipeError):
            self.closed = True
            return True
        finally:
            self.sock.settimeout(SMTP_TIMEOUT)
        return False


def enhanced(text):
    """The enhanced status code at the start of a reply text, or None."""
    m = re.match(r"([245]\.\d{1,3}\.\d{1,3})(?:\s|$)", text)
    return m.group(1) if m else None


def queue_id_of(reply_text):
    if isinstance(reply_text, bytes):
        reply_text = reply_text.decode("utf-8", "replace")
    m = QUEUED_RE.search(reply_text)
    return m.group(1) if m else None


def make_message(subject, body_lines=None, sender="sender@example.org", to="alice@example.test",
                 message_id=True, date=True, extra_headers=()):
    """A message with CRLF line endings, as it goes over the wire."""
    head = []
    head.append("From: Sender <%s>" % sender)
    head.append("To: %s" % to)
    head.append("Subject: %s" % subject)
    if date:
        head.append("Date: Mon, 01 Jan 2024 12:00:00 +0000")
    if message_id:
        head.append("Message-ID: <%s@example.org>" % re.sub(r"[^A-Za-z0-9.-]", "-", subject))
    head.extend(extra_headers)
    if body_lines is None:
        body_lines = ["Hello,", "", "this is %s." % subject, "-- ", "sender"]
    text = "\r\n".join(head) + "\r\n\r\n" + "\r\n".join(body_lines) + "\r\n"
    return text.encode("utf-8")


def send_one(smtp, sender, rcpts, data, mail_options=(), rcpt_options=()):
    """
    One transaction on an smtplib.SMTP that has said EHLO.  Returns
    (code, text, queue_id) of the end-of-data reply; raises AssertionError
    when MAIL or a RCPT is refused.
    """
    code, text = smtp.mail(sender, list(mail_options))
    assert code == 250, "MAIL FROM:<%s>: expected 250, got %d %r" % (sender, code, text)
    for r in rcpts:
        code, text = smtp.rcpt(r, list(rcpt_options))
        assert code == 250, "RCPT TO:<%s>: expected 250, got %d %r" % (r, code, text)
    code, text = smtp.data(data)
    text = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return code, text, queue_id_of(text)


# ---------------------------------------------------------------- processes


def _proc_cmdline(pid):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read()
    except OSError:
        return None


def _proc_stat(pid):
    """(state, ppid) or None."""
    try:
        with open("/proc/%d/stat" % pid, "rb") as f:
            data = f.read().decode("ascii", "replace")
    except OSError:
        return None
    rest = data[data.rfind(")") + 2 :].split()
    return rest[0], int(rest[1])


def _all_pids():
    for name in os.listdir("/proc"):
        if name.isdigit():
            yield int(name)


# ---------------------------------------------------------------- instance


class Instance:
    """One posthorn instance in its own directory (see the module comment)."""

    def __init__(self, base=None, mynetworks="127.0.0.0/8", main_cf=None, master_cf_extra="",
                 users=None, aliases=None, mail_owner=None, smtp_port=None):
        self.build = build_dir()
        self.bin = self.build / "bin"
        self.dir = Path(tempfile.mkdtemp(prefix="posthorn-it-", dir=base))
        # The workers run as mail_owner, which must reach everything below.
        os.chmod(self.dir, 0o755)
        self.etc = self.dir / "etc"
        self.queue = self.dir / "queue"
        self.mail = self.dir / "mail"
        self.logdir = self.dir / "log"
        self.maillog_path = self.logdir / "maillog"
        self.smtp_port = smtp_port or free_port()
        self.mynetworks = mynetworks
        self.main_cf_extra = dict(main_cf or {})
        self.master_cf_extra = master_cf_extra
        self.users = dict(USERS if users is None else users)
        self.aliases = dict(ALIASES if aliases is None else aliases)
        self.mail_owner = mail_owner or default_mail_owner()
        pw = pwd.getpwnam(self.mail_owner)
        self.uid, self.gid = pw.pw_uid, pw.pw_gid
        self.started = False
        self.start_result = None
        for d in (self.etc, self.queue, self.mail, self.logdir):
            d.mkdir(mode=0o755)
        for d in (self.queue, self.mail, self.logdir):
            if os.geteuid() == 0:
                os.chown(d, self.uid, self.gid)
        self.write_config()

    # -- configuration

    def main_cf_params(self):
        p = {
            "queue_directory": str(self.queue),
            "daemon_directory": str(self.bin),
            "myhostname": HOSTNAME,
            "mydomain": DOMAIN,
            "mydestination": "localhost",
            "mynetworks": self.mynetworks,
            "inet_interfaces": "127.0.0.1",
            "mail_owner": self.mail_owner,
            "virtual_mailbox_domains": DOMAIN,
            "virtual_mailbox_base": str(self.mail),
            "virtual_mailbox_maps": "texthash:%s" % (self.etc / "vmailbox"),
            "virtual_alias_maps": "texthash:%s" % (self.etc / "virtual"),
            "alias_maps": "texthash:%s" % (self.etc / "aliases"),
            "maillog_file": str(self.maillog_path),
            # No reverse lookups of the test client: where /etc/hosts does
            # not list 127.0.0.1 they would go to the system's DNS server,
            # off loopback.  DNS tests point dns_server_addresses at
            # fakedns.py and turn this back on.
            "smtpd_peername_lookup": "no",
        }
        if os.geteuid() == 0:
            # local runs as root (unpriv=n) and delivers as this uid/gid.
            p["virtual_uid_maps"] = "static:%d" % self.uid
            p["virtual_gid_maps"] = "static:%d" % self.gid
        for k, v in self.main_cf_extra.items():
            if v is None:
                p.pop(k, None)
            else:
                p[k] = v
        return p

    def write_main_cf(self, text=None):
        if text is None:
            lines = ["# integration test instance %s" % self.dir]
            lines += ["%s = %s" % (k, v) for k, v in self.main_cf_params().items()]
            text = "\n".join(lines) + "\n"
        (self.etc / "main.cf").write_text(text, encoding="utf-8")

    def write_config(self):
        self.write_main_cf()
        master = (
            "# service  type  private unpriv chroot wakeup maxproc command\n"
            "127.0.0.1:%d inet  n  -  n  -  -  smtpd\n"
            "cleanup    unix  n  -  n  -    0  cleanup\n"
            "qmgr       unix  n  -  n  300  1  qmgr\n"
            "local      unix  -  n  n  -    -  local\n"
            "smtp       unix  -  -  n  -    -  smtp\n"
            "relay      unix  -  -  n  -    -  smtp\n"
            "lmtp       unix  -  -  n  -    -  smtp\n"
            "pickup     unix  n  -  n  60   1  pickup\n" % self.smtp_port
        ) + self.master_cf_extra
        (self.etc / "master.cf").write_text(master, encoding="utf-8")
        self.write_vmailbox()
        self.write_virtual()
        (self.etc / "aliases").write_text(
            "# local aliases\npostmaster: root\n", encoding="utf-8")

    def write_vmailbox(self):
        (self.etc / "vmailbox").write_text(
            "".join("%s %s\n" % (k, v) for k, v in self.users.items()), encoding="utf-8")

    def write_virtual(self):
        (self.etc / "virtual").write_text(
            "".join("%s %s\n" % (k, ", ".join(v)) for k, v in self.aliases.items()), encoding="utf-8")

    # -- the posthorn command

    def posthorn(self, *args, timeout=DEFAULT_TIMEOUT, check=False):
        cmd = [str(self.bin / "posthorn"), "-c", str(self.etc)] + [str(a) for a in args]
        try:
            r = subprocess.run(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, timeout=timeout)
        except subprocess.TimeoutExpired as e:
            raise AssertionError("%s: no exit within %ss (stdout %r stderr %r)"
                                 % (" ".join(cmd), timeout, e.stdout, e.stderr))
        r.stdout_text = r.stdout.decode("utf-8", "replace")
        r.stderr_text = r.stderr.decode("utf-8", "replace")
        if check:
            assert r.returncode == 0, "%s: exit %d\nstdout: %s\nstderr: %s" % (
                " ".join(cmd), r.returncode, r.stdout_text, r.stderr_text)
        return r

    def start(self, wait=True, timeout=DEFAULT_TIMEOUT):
        for prog in ("posthorn", "master", "smtpd", "cleanup", "qmgr", "local"):
            p = self.bin / prog
            assert os.access(p, os.X_OK), "%s is missing: build with make first (POSTHORN_BUILD=%s)" % (p, self.build)
        r = self.posthorn("start", timeout=timeout)
        self.start_result = r
        self.started = True
        assert r.returncode == 0, "posthorn start: exit %d\nstdout: %s\nstderr: %s\nmaillog:\n%s" % (
            r.returncode, r.stdout_text, r.stderr_text, self.maillog())
        if wait:
            self.wait_smtp(timeout)
        return r

    def wait_smtp(self, timeout=DEFAULT_TIMEOUT):
        """Wait until the SMTP port answers with a 220 greeting."""
        deadline = time.monotonic() + timeout
        last = None
        while time.monotonic() < deadline:
            try:
                with RawSMTP(self.smtp_port, timeout=5) as c:
                    code, texts = c.reply()
                    if code == 220:
                        try:
                            c.cmd("QUIT")
                        except OSError:
                            pass
                        return texts
                    last = (code, texts)
            except (OSError, AssertionError) as e:
                last = e
            time.sleep(0.1)
        raise AssertionError("SMTP port %d gave no 220 within %ss (last: %r)\nmaillog:\n%s"
                             % (self.smtp_port, timeout, last, self.maillog()))

    def stop(self, timeout=DEFAULT_TIMEOUT):
        """
        posthorn stop, then wait for every process of the instance to go.
        Returns the list of (pid, cmdline) that had to be killed.
        """
        r = None
        if self.started:
            r = self.posthorn("stop", timeout=timeout)
        self.started = False
        gone = self.wait_no_processes(timeout=min(timeout, 30))
        stragglers = []
        if not gone:
            stragglers = [(pid, cmd) for pid, cmd in self.processes()]
            self.kill_all()
        return r, stragglers

    # -- processes

    def master_pid(self):
        try:
            text = (self.queue / "pid" / "master.pid").read_text().strip()
            return int(text.split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def processes(self):
        """[(pid, cmdline)] of live (non-zombie) processes of this instance."""
        marker = (str(self.dir) + "/").encode()
        me = os.getpid()
        found = {}
        stats = {}
        for pid in _all_pids():
            st = _proc_stat(pid)
            if st is None:
                continue
            stats[pid] = st
            if pid == me or st[0] == "Z":
                continue
            cmd = _proc_cmdline(pid)
            if cmd and marker in cmd:
                found[pid] = cmd
        # master and whatever it forked, even if argv was rewritten.
        mpid = self.master_pid()
        if mpid and mpid in stats and stats[mpid][0] != "Z":
            cmd = _proc_cmdline(mpid) or b""
            # A recycled pid is not ours: require something of the instance or
            # a posthorn program in its command line.
            if marker in cmd or b"master" in cmd or b"posthorn" in cmd:
                found.setdefault(mpid, cmd)
        changed = True
        while changed:
            changed = False
            for pid, (state, ppid) in stats.items():
                if pid not in found and ppid in found and state != "Z" and pid != me:
                    found[pid] = _proc_cmdline(pid) or b""
                    changed = True
        return sorted((pid, cmd.replace(b"\0", b" ").decode("utf-8", "replace").strip())
                      for pid, cmd in found.items())

    def wait_no_processes(self, timeout=20):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.processes():
                return True
            time.sleep(0.1)
        return not self.processes()

    def kill_all(self, sig=signal.SIGKILL, rounds=50):
        """
        Send sig to every process of the instance, master first, until none
        is left (master may fork between a scan and the kill).  Returns the
        pids signalled.
        """
        killed = set()
        for _ in range(rounds):
            procs = self.processes()
            if not procs:
                break
            mpid = self.master_pid()
            order = sorted(procs, key=lambda p: p[0] != mpid)
            for pid, _cmd in order:
                try:
                    os.kill(pid, sig)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            if sig != signal.SIGKILL:
                break
            time.sleep(0.05)
        return sorted(killed)

    # -- logs

    def maillog(self):
        try:
            return self.maillog_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    def grep_log(self, pattern):
        rx = re.compile(pattern)
        return [line for line in self.maillog().splitlines() if rx.search(line)]

    def wait_for_log(self, pattern, count=1, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            hits = self.grep_log(pattern)
            if len(hits) >= count:
                return hits
            if time.monotonic() >= deadline:
                raise AssertionError("maillog: wanted %d line(s) matching %r within %ss, found %d"
                                     % (count, pattern, timeout, len(hits)))
            time.sleep(0.1)

    # -- mailboxes

    def maildir(self, user):
        """Maildir directory of a user: "alice", "alice@example.test" or an address in USERS."""
        addr = user if "@" in user else "%s@%s" % (user, DOMAIN)
        rel = self.users.get(addr, "%s/%s/" % (DOMAIN, user.split("@")[0]))
        return self.mail / rel

    def maildir_files(self, user, sub="new"):
        d = self.maildir(user) / sub
        try:
            names = sorted(os.listdir(d))
        except (FileNotFoundError, NotADirectoryError):
            return []
        return [d / n for n in names if not n.startswith(".")]

    def messages(self, user):
        """[(path, bytes)] of the messages in user's Maildir new/."""
        out = []
        for p in self.maildir_files(user):
            out.append((p, p.read_bytes()))
        return out

    def wait_for_maildir(self, user, count, timeout=DEFAULT_TIMEOUT, settle=0.5):
        """
        Wait until user's new/ holds at least count messages; after that,
        wait `settle` seconds more so an extra (duplicate) delivery shows.
        Returns [(path, bytes)].
        """
        deadline = time.monotonic() + timeout
        while True:
            n = len(self.maildir_files(user))
            if n >= count:
                break
            if time.monotonic() >= deadline:
                raise AssertionError("Maildir %s: wanted %d message(s) within %ss, found %d\nqueue: %s"
                                     % (self.maildir(user), count, timeout, n, self.queue_dump()))
            time.sleep(0.05)
        if settle:
            time.sleep(settle)
        return self.messages(user)

    def tokens(self, users, regex=rb"^Subject: (tok-\d+-\d+)$"):
        """{token: [paths]}: the Subject tokens found in the users' Maildirs."""
        return collect_tokens(self, users, regex)

    # -- the queue

    def queue_json(self):
        r = self.posthorn("queue", "-j", check=True)
        out = []
        for line in r.stdout_text.splitlines():
            if line.strip():
                out.append(json.loads(line))
        return out

    def queue_files(self):
        """{subdir: [names]} of message files in the queue's message directories."""
        out = {}
        for sub in ("incoming", "active", "deferred", "hold", "corrupt"):
            d = self.queue / sub
            names = []
            if d.is_dir():
                for root, _dirs, files in os.walk(d):
                    names += [os.path.relpath(os.path.join(root, f), d) for f in files]
            out[sub] = sorted(names)
        return out

    def queue_dump(self):
        try:
            return repr(self.queue_files())
        except OSError as e:
            return "(%s)" % e

    def wait_queue_empty(self, timeout=DEFAULT_TIMEOUT):
        deadline = time.monotonic() + timeout
        while True:
            files = self.queue_files()
            if not any(files.values()):
                return
            if time.monotonic() >= deadline:
                raise AssertionError("queue not empty after %ss: %r" % (timeout, files))
            time.sleep(0.1)

    # -- clients

    def smtp(self, ehlo=True, timeout=SMTP_TIMEOUT):
        s = smtplib.SMTP("127.0.0.1", self.smtp_port, local_hostname="client.example.org", timeout=timeout)
        if ehlo:
            code, text = s.ehlo()
            assert code == 250, "EHLO: expected 250, got %d %r" % (code, text)
        return s

    def raw(self, greet=True, timeout=SMTP_TIMEOUT):
        c = RawSMTP(self.smtp_port, timeout=timeout)
        if greet:
            c.greeting()
        return c

    # -- cleanup

    def remove(self):
        shutil.rmtree(self.dir, ignore_errors=True)


# ---------------------------------------------------------------- delivered messages

# Headers posthorn may put in front of a delivered message: cleanup's
# Received, local's Return-Path and Delivered-To, and X-Original-To
# (Postfix adds it when an alias rewrote the recipient).
TRACE_HEADERS = {"return-path", "delivered-to", "x-original-to", "received"}
MESSAGE_ID_RE = re.compile(rb"^Message-I[Dd]:[ \t]*<[^<>@\s]+@[^<>\s]+>\n$", re.I)


def _check_prefix_fields(fields, sender, rcpt, qid, allowed, what):
    names = [n for n, _ in fields]
    for n, raw in fields:
        assert n in allowed, "%s: unexpected header %r added by posthorn" % (what, raw)
    assert fields, "%s: no trace headers added" % what
    first = fields[0][1]
    want_rp = b"Return-Path: <" + sender.encode("utf-8") + b">\n"
    assert first == want_rp, "%s: first line %r, expected %r" % (what, first, want_rp)
    assert names.count("return-path") == 1, "%s: %d Return-Path headers" % (what, names.count("return-path"))
    dt = [raw for n, raw in fields if n == "delivered-to"]
    want_dt = b"Delivered-To: " + rcpt.encode("utf-8") + b"\n"
    assert dt == [want_dt], "%s: Delivered-To %r, expected [%r]" % (what, dt, want_dt)
    rec = [raw for n, raw in fields if n == "received"]
    assert len(rec) == 1, "%s: expected one Received header from posthorn, got %r" % (what, rec)
    text = rec[0].decode("utf-8", "replace")
    assert re.search(r"\bby %s\b" % re.escape(HOSTNAME), text), "%s: Received without 'by %s': %r" % (what, HOSTNAME, text)
    if qid:
        assert re.search(r"\bid %s\b" % re.escape(qid), text), "%s: Received without 'id %s': %r" % (what, qid, text)
    return text


def check_delivered(data, sent, sender, rcpt, qid=None, orig_rcpt=None, expect_added_id_date=False):
    """
    Assert that Maildir file contents `data` are the wire message `sent`
    (CRLF -> LF, transparency removed) with only posthorn's headers added:
    Return-Path: <sender> first, Delivered-To: rcpt, one Received naming
    myhostname and the queue ID; X-Original-To (if any) = orig_rcpt or rcpt.
    With expect_added_id_date, the message was sent without Message-ID and
    Date, and exactly one of each must have been added; otherwise neither
    may be added.  Returns the Received header text.
    """
    want = lf(sent)
    what = "message for %s" % rcpt
    if not expect_added_id_date:
        assert data.endswith(want), "%s: content differs from what was sent.\n%s" % (what, _diff_hint(data, want))
        prefix = data[: len(data) - len(want)]
        assert prefix.endswith(b"\n") and b"\n\n" not in prefix, "%s: bad added header block %r" % (what, prefix[:2000])
        fields = header_fields(prefix.splitlines(keepends=True))
        received = _check_prefix_fields(fields, sender, rcpt, qid, TRACE_HEADERS, what)
    else:
        got_head, got_body = split_message(data)
        sent_head, sent_body = split_message(want)
        assert got_body == sent_body, "%s: body differs.\n%s" % (what, _diff_hint(got_body, sent_body))
        n = len(sent_head)
        at = None
        for i in range(len(got_head) - n + 1):
            if got_head[i : i + n] == sent_head:
                at = i
                break
        assert at is not None, "%s: the sent header block is not intact in %r" % (what, got_head)
        before = header_fields(got_head[:at])
        after = header_fields(got_head[at + n :])
        added_ok = TRACE_HEADERS | {"message-id", "date"}
        received = _check_prefix_fields(before, sender, rcpt, qid, added_ok, what)
        for name, raw in after:
            assert name in ("message-id", "date"), "%s: unexpected header %r after the message's headers" % (what, raw)
        added = before + after
        mids = [raw for name, raw in added if name == "message-id"]
        dates = [raw for name, raw in added if name == "date"]
        assert len(mids) == 1 and MESSAGE_ID_RE.match(mids[0]), "%s: added Message-ID %r" % (what, mids)
        assert len(dates) == 1, "%s: added Date %r" % (what, dates)
        value = dates[0].split(b":", 1)[1].decode("ascii").strip()
        when = email.utils.parsedate_to_datetime(value)
        assert when is not None and abs(when.timestamp() - time.time()) < 3600, "%s: bad Date %r" % (what, value)
    names = [n for n, _ in header_fields(split_message(data)[0])]
    xo = [raw for n, raw in header_fields(split_message(data)[0]) if n == "x-original-to"]
    if xo:
        want_xo = b"X-Original-To: " + (orig_rcpt or rcpt).encode("utf-8") + b"\n"
        assert xo == [want_xo], "%s: X-Original-To %r, expected %r" % (what, xo, want_xo)
    assert names.count("message-id") <= 1, "%s: several Message-ID headers" % what
    return received


def _diff_hint(got, want):
    i = 0
    n = min(len(got), len(want))
    # Compare from the end: posthorn only prepends.
    while i < n and got[len(got) - 1 - i] == want[len(want) - 1 - i]:
        i += 1
    return "got %d bytes, expected %d; they agree on the last %d bytes; got ends ...%r, expected ends ...%r" % (
        len(got), len(want), i, got[max(0, len(got) - i - 80) : len(got) - i + 40],
        want[max(0, len(want) - i - 80) : len(want) - i + 40])


def collect_tokens(inst, users, regex=rb"^Subject: (tok-\d+-\d+)$"):
    """{token: [paths]} over the users' Maildirs (token = regex group 1)."""
    rx = re.compile(regex, re.M)
    seen = {}
    for user in users:
        for path, data in inst.messages(user):
            m = rx.search(data)
            assert m, "%s: message without a token" % path
            seen.setdefault(m.group(1).decode(), []).append(path)
    return seen


class PrivateClient:
    """A client of a private service socket (queue/private/NAME), with a
    connect that waits for the service to come up and every read bounded
    by a timeout.  Subclasses speak the service's protocol over self.sock,
    buffering in self.buf."""

    def __init__(self, inst, service, timeout=15):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        self.sock.settimeout(timeout)
        path = str(inst.queue / "private" / service)
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.sock.connect(path)
                break
            except (FileNotFoundError, ConnectionRefusedError):
                if time.monotonic() > deadline:
                    self.sock.close()
                    raise
                time.sleep(0.1)
        self.buf = b""

    def close(self):
        self.sock.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

