"""
The smtp/lmtp delivery agent (build/bin/smtp), driven directly: each test
writes a queue file into a private queue directory, starts the agent in
stand-alone mode (`smtp -c DIR/etc -s -u`, its qmgr connection on fd 0 as
one end of a socketpair), sends delivery requests in the qmgr -> agent
framing (src/global/mail_proto.h) and checks the reply, the agent's log
and what the remote server received.

Remote servers: a scriptable fake SMTP/LMTP server written here (4xx/5xx
replies, drops in the middle of DATA, missing 8BITMIME/PIPELINING/SMTPUTF8,
STARTTLS); one test also uses Postfix's smtp-sink (Debian's postfix
package) when it is installed, and is skipped otherwise.
Names are resolved by fakedns.FakeDNS on 127.0.0.1 through the
dns_server_addresses parameter.

Every wait is bounded; a misbehaving agent fails the test, never hangs it.
"""

import email
import os
import re
import shutil
import socket
import ssl
import subprocess
import tempfile
import threading
import time

import pytest

from fakedns import FakeDNS
from qfile_writer import write_queue_file

IO_TIMEOUT = 60
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BUILD = os.environ.get("POSTHORN_BUILD", os.path.join(ROOT, "build"))
SMTP_BIN = os.path.join(BUILD, "bin", "smtp")
SMTP_SINK = "/usr/sbin/smtp-sink"

pytestmark = pytest.mark.skipif(not os.path.exists(SMTP_BIN),
                                reason="smtp agent not built (%s)" % SMTP_BIN)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def port_open(port, host="127.0.0.1"):
    try:
        socket.create_connection((host, port), 1).close()
        return True
    except OSError:
        return False


def wait_until(pred, timeout=10, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for %s" % what)


# ---------------------------------------------------------------- framing

def frame(attrs):
    out = bytearray()
    for name, value in attrs:
        v = value if isinstance(value, bytes) else str(value).encode("utf-8")
        out += b"%s:%d:" % (name.encode(), len(v)) + v + b"\n"
    out += b"\n"
    return bytes(out)


def read_frame(sock, timeout=IO_TIMEOUT):
    """One attribute frame as [(name, value)], or None at EOF."""
    sock.settimeout(timeout)
    buf = b""
    attrs = []
    pos = 0
    while True:
        # Parse as far as we can.
        while True:
            if pos < len(buf) and buf[pos:pos + 1] == b"\n":
                return attrs
            c1 = buf.find(b":", pos)
            if c1 < 0:
                break
            c2 = buf.find(b":", c1 + 1)
            if c2 < 0:
                break
            n = int(buf[c1 + 1:c2])
            if len(buf) < c2 + 1 + n + 1:
                break
            attrs.append((buf[pos:c1].decode(), buf[c2 + 1:c2 + 1 + n].decode("utf-8", "replace")))
            assert buf[c2 + 1 + n:c2 + 2 + n] == b"\n"
            pos = c2 + 2 + n
        chunk = sock.recv(65536)
        if not chunk:
            if buf[pos:]:
                raise AssertionError("EOF inside a reply frame: %r" % buf[pos:])
            return None
        buf += chunk


def reply_groups(attrs):
    """Leading attributes and one dict per recipient group."""
    head, groups = {}, []
    for name, value in attrs:
        if name == "offset":
            groups.append({"offset": int(value)})
        elif groups:
            groups[-1][name] = value
        else:
            head[name] = value
    return head, groups


# ---------------------------------------------------------------- the agent

class Agent:
    """One stand-alone smtp agent process with its own instance directory."""

    def __init__(self, base, main_cf=None, service="smtp"):
        self.dir = base
        self.etc = os.path.join(base, "etc")
        self.queue = os.path.join(base, "queue")
        self.logfile = os.path.join(base, "log", "maillog")
        for d in (self.etc, self.queue, os.path.dirname(self.logfile),
                  os.path.join(self.queue, "active")):
            os.makedirs(d, exist_ok=True)
        params = {
            "queue_directory": self.queue,
            "maillog_file": self.logfile,
            "myhostname": "client.example.test",
            "smtp_connect_timeout": "5s",
            "smtp_helo_timeout": "10s",
            "smtp_tls_security_level": "none",
        }
        params.update(main_cf or {})
        with open(os.path.join(self.etc, "main.cf"), "w") as f:
            for k, v in params.items():
                f.write("%s = %s\n" % (k, v))
        self.sock, child = socket.socketpair()
        env = dict(os.environ)
        self.proc = subprocess.Popen([SMTP_BIN, "-c", self.etc, "-s", "-u", "-n", service],
                                     stdin=child, stdout=subprocess.DEVNULL,
                                     stderr=subprocess.PIPE, env=env)
        child.close()

    def queue_message(self, sender="sender@client.example.test", rcpts=("rcpt@remote.test",),
                      content=b"Subject: test\n\nhello\n", attrs=None):
        attrs = dict({"smtputf8": "0"}, **(attrs or {}))
        qid, offsets = write_queue_file(self.queue, "active", sender, list(rcpts), content, attrs)
        return qid, offsets

    def request(self, qid, rcpts, offsets, nexthop, transport=None, sender=None, extra=(),
                timeout=IO_TIMEOUT):
        attrs = [("request", "deliver"), ("queue_id", qid), ("queue", "active"),
                 ("sender", sender if sender is not None else "sender@client.example.test"),
                 ("arrival", int(time.time())), ("nexthop", nexthop)]
        if transport:
            attrs.append(("transport", transport))
        attrs += list(extra)
        for r, off in zip(rcpts, offsets):
            attrs += [("rcpt", r if isinstance(r, str) else r["addr"]), ("orig_rcpt", ""),
                      ("offset", off)]
        self.sock.sendall(frame(attrs))
        reply = read_frame(self.sock, timeout)
        assert reply is not None, "agent closed the connection; stderr: %s" % self.stderr()
        return reply_groups(reply)

    def deliver(self, nexthop, rcpts=("rcpt@remote.test",), transport=None, timeout=IO_TIMEOUT,
                **kw):
        qid, offsets = self.queue_message(rcpts=rcpts, **kw)
        head, groups = self.request(qid, rcpts, offsets, nexthop, transport=transport,
                                    sender=kw.get("sender"), timeout=timeout)
        assert [g["offset"] for g in groups] == offsets
        return qid, head, groups

    def log(self):
        try:
            with open(self.logfile, encoding="utf-8", errors="replace") as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def stderr(self):
        if self.proc.poll() is None:
            return "(running)"
        return self.proc.stderr.read().decode(errors="replace")

    def close(self, timeout=20):
        try:
            self.sock.close()
        except OSError:
            pass
        try:
            self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError("smtp agent did not exit after qmgr hung up")
        err = self.proc.stderr.read().decode(errors="replace")
        self.proc.stderr.close()
        return err


@pytest.fixture
def tmpbase():
    d = tempfile.mkdtemp(prefix="posthorn-smtp-")
    yield d
    if not os.environ.get("POSTHORN_IT_KEEP"):
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def agent_factory(tmpbase):
    made = []

    def make(main_cf=None, service="smtp", dns=None):
        cf = dict(main_cf or {})
        if dns is not None:
            cf["dns_server_addresses"] = dns.server
        a = Agent(os.path.join(tmpbase, "agent%d" % len(made)), cf, service)
        made.append(a)
        return a

    yield make
    for a in made:
        if a.proc.poll() is None:
            a.stderr_text = a.close()
    # Sanitizer or crash output would show up on stderr.
    for a in made:
        err = getattr(a, "stderr_text", "")
        assert a.proc.returncode == 0, "agent exited with %s: %s" % (a.proc.returncode, err)
        assert "Sanitizer" not in err and "runtime error" not in err, err


@pytest.fixture
def dns():
    with FakeDNS() as d:
        yield d


# ---------------------------------------------------------------- fake SMTP server

class Session:
    def __init__(self):
        self.commands = []        # every command line received (str)
        self.pending = []         # (command, more lines already buffered?)
        self.messages = []        # {"mail": str, "rcpts": [str], "data": bytes}
        self.tls = False
        self.quit = False
        self.closed = False


class LineReader:
    def __init__(self, conn):
        self.conn = conn
        self.buf = b""

    def readline(self, limit=1 << 20):
        while b"\n" not in self.buf:
            chunk = self.conn.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
            if len(self.buf) > limit:
                return None
        line, self.buf = self.buf.split(b"\n", 1)
        return line[:-1] if line.endswith(b"\r") else line

    def has_more(self):
        return b"\n" in self.buf


class FakeSMTP:
    """A scriptable SMTP (or LMTP) server on 127.0.0.1 or a unix socket.

    Knobs (set before the agent connects):
      greeting      reply line(s) to send on connect, or None to stay silent
      ehlo          keywords after the first EHLO/LHLO line
      ehlo_reply    None, or a reply that refuses EHLO (then HELO is tried)
      mail_reply    reply to MAIL FROM
      rcpt_replies  {address: reply}; others get 250
      data_reply    reply to DATA
      dot_reply     reply to the end of data (SMTP)
      lmtp_replies  {address: reply} after the end of data (LMTP)
      drop          None, "body" (hang up after the first content line) or
                    "dot" (hang up after the final dot, without a reply)
      tls_context   an ssl.SSLContext: STARTTLS is offered and works
    """

    def __init__(self, lmtp=False, unix_path=None, host="127.0.0.1", port=0):
        self.lmtp = lmtp
        self.greeting = "220 fake.test ESMTP"
        self.ehlo = ["PIPELINING", "SIZE 10240000", "8BITMIME", "ENHANCEDSTATUSCODES"]
        self.ehlo_reply = None
        self.mail_reply = "250 2.1.0 Ok"
        self.rcpt_replies = {}
        self.data_reply = "354 End data with <CR><LF>.<CR><LF>"
        self.dot_reply = "250 2.0.0 Ok: queued as FAKE123"
        self.lmtp_replies = {}
        self.drop = None
        self.tls_context = None
        self.sessions = []
        self.lock = threading.Lock()
        self.active = 0
        self.max_active = 0
        if unix_path:
            self.lsock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.lsock.bind(unix_path)
            self.port = None
        else:
            self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            self.lsock.bind((host, port))
            self.port = self.lsock.getsockname()[1]
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self._stop = threading.Event()
        self._threads = []
        self._conns = []
        self._accept = threading.Thread(target=self._accept_loop, daemon=True)
        self._accept.start()

    def stop(self):
        self._stop.set()
        self._accept.join(timeout=5)
        self.lsock.close()
        # Hang up on clients that keep a connection open (the agent's cache).
        with self.lock:
            conns = list(self._conns)
        for c in conns:
            try:
                c.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        for t in self._threads:
            t.join(timeout=5)

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self._conns.append(conn)
            t = threading.Thread(target=self._session, args=(conn,), daemon=True)
            self._threads.append(t)
            t.start()

    def messages(self):
        with self.lock:
            return [m for s in self.sessions for m in s.messages]

    def _session(self, conn):
        sess = Session()
        with self.lock:
            self.sessions.append(sess)
            self.active += 1
            self.max_active = max(self.max_active, self.active)
        conn.settimeout(30)
        try:
            self._converse(conn, sess)
        except (OSError, ssl.SSLError):
            pass
        finally:
            sess.closed = True
            with self.lock:
                self.active -= 1
            try:
                conn.close()
            except OSError:
                pass

    def _converse(self, conn, sess):
        def send(text):
            conn.sendall(text.encode("utf-8") + b"\r\n")

        rd = LineReader(conn)
        if self.greeting is None:
            rd.readline()          # wait for the client to give up
            return
        send(self.greeting)
        if not self.greeting.startswith("2"):
            rd.readline()
            return
        mail = None
        rcpts = []
        while True:
            line = rd.readline()
            if line is None:
                return
            cmd = line.decode("utf-8", "replace")
            sess.commands.append(cmd)
            sess.pending.append((cmd, rd.has_more()))
            verb = cmd.split(" ", 1)[0].upper()
            if verb in ("EHLO", "LHLO"):
                if self.ehlo_reply:
                    send(self.ehlo_reply)
                    continue
                kws = list(self.ehlo)
                if self.tls_context and not sess.tls:
                    kws.append("STARTTLS")
                lines = ["fake.test"] + kws
                for i, kw in enumerate(lines):
                    send("250%s%s" % ("-" if i < len(lines) - 1 else " ", kw))
            elif verb == "HELO":
                send("250 fake.test")
            elif verb == "STARTTLS" and self.tls_context and not sess.tls:
                send("220 2.0.0 Ready to start TLS")
                conn = self.tls_context.wrap_socket(conn, server_side=True)
                conn.settimeout(30)
                rd = LineReader(conn)
                sess.tls = True
            elif verb == "MAIL":
                send(self.mail_reply)
                if self.mail_reply.startswith("421"):
                    return          # and hang up, as 421 announces
                if self.mail_reply.startswith("2"):
                    mail, rcpts = cmd, []
            elif verb == "RCPT":
                m = re.match(r"RCPT TO:<([^>]*)>", cmd, re.I)
                addr = m.group(1) if m else ""
                reply = self.rcpt_replies.get(addr, "250 2.1.5 Ok")
                send(reply)
                if reply.startswith("2") and mail is not None:
                    rcpts.append(cmd)
            elif verb == "DATA":
                if mail is None or not rcpts:
                    send("503 5.5.1 Error: need RCPT command")
                    continue
                send(self.data_reply)
                if not self.data_reply.startswith("354"):
                    continue
                body = bytearray()
                while True:
                    dl = rd.readline()
                    if dl is None:
                        return
                    if self.drop == "body":
                        conn.shutdown(socket.SHUT_RDWR)
                        return
                    if dl == b".":
                        break
                    if dl.startswith(b"."):
                        dl = dl[1:]
                    body += dl + b"\n"
                msg = {"mail": mail, "rcpts": list(rcpts), "data": bytes(body), "tls": sess.tls}
                if self.drop == "dot":
                    with self.lock:
                        sess.messages.append(dict(msg, dropped=True))
                    conn.shutdown(socket.SHUT_RDWR)
                    return
                with self.lock:
                    sess.messages.append(msg)
                if self.lmtp:
                    for r in rcpts:
                        addr = re.match(r"RCPT TO:<([^>]*)>", r, re.I).group(1)
                        send(self.lmtp_replies.get(addr, "250 2.0.0 <%s> delivered" % addr))
                else:
                    send(self.dot_reply)
                mail, rcpts = None, []
            elif verb == "RSET":
                mail, rcpts = None, []
                send("250 2.0.0 Ok")
            elif verb == "NOOP":
                send("250 2.0.0 Ok")
            elif verb == "QUIT":
                sess.quit = True
                send("221 2.0.0 Bye")
                return
            else:
                send("502 5.5.2 Error: command not recognized")


@pytest.fixture
def fake():
    servers = []

    def make(**kw):
        s = FakeSMTP(**kw)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.stop()


def status_line(log, rcpt):
    for line in log.splitlines():
        if "to=<%s>" % rcpt in line and "status=" in line:
            return line
    return None


# ---------------------------------------------------------------- smtp-sink

@pytest.mark.skipif(not os.path.exists(SMTP_SINK), reason="smtp-sink not installed")
def test_relay_to_smtp_sink(agent_factory, tmpbase):
    port = free_port()
    dump = os.path.join(tmpbase, "sink")
    os.makedirs(dump)
    sink = subprocess.Popen([SMTP_SINK, "-c", "-u", "root", "-d", dump + "/%M.",
                             "127.0.0.1:%d" % port, "100"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: port_open(port), what="smtp-sink to listen")
        agent = agent_factory()
        content = b"Subject: via sink\nFrom: a@client.example.test\n\n.leading dot\nline two\n"
        qid, head, groups = agent.deliver("[127.0.0.1]:%d" % port,
                                          rcpts=["one@remote.test", "two@remote.test"],
                                          content=content)
        assert head["site_trouble"] == "0"
        for g in groups:
            assert g["status"] == "2", g
            assert g["dsn"].startswith("2."), g
            assert g["relay"] == "127.0.0.1[127.0.0.1]:%d" % port
            assert g["logged"] == "1"
        files = wait_until(lambda: [f for f in os.listdir(dump)], what="sink dump")
        data = open(os.path.join(dump, files[0]), "rb").read()
        assert b"X-Mail-Args: <sender@client.example.test>" in data
        assert b"X-Rcpt-Args: <one@remote.test>" in data
        assert b"X-Rcpt-Args: <two@remote.test>" in data
        # smtp-sink removed the dot-stuffing and stores LF lines.
        assert content in data
        log = agent.log()
        line = status_line(log, "one@remote.test")
        assert line is not None, log
        assert re.search(r"%s: to=<one@remote.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                         r"delay=[\d.]+, delays=[\d.]+/[\d.]+/[\d.]+/[\d.]+, dsn=2\.\d+\.\d+, "
                         r"status=sent \(250 " % (qid, port), line), line
    finally:
        sink.terminate()
        sink.wait(timeout=10)


# ---------------------------------------------------------------- basic SMTP

def test_delivery_content_and_pipelining(agent_factory, fake):
    srv = fake()
    agent = agent_factory()
    content = b"Subject: pipelined\n\n.x\n..y\nend"
    qid, head, groups = agent.deliver("[127.0.0.1]:%d" % srv.port,
                                      rcpts=["a@remote.test", "b@remote.test"], content=content)
    assert [g["status"] for g in groups] == ["2", "2"]
    assert groups[0]["reason"] == "250 2.0.0 Ok: queued as FAKE123"
    assert groups[0]["dsn"] == "2.0.0"
    msgs = srv.messages()
    assert len(msgs) == 1
    # The missing final newline is supplied; dots survive the round trip.
    assert msgs[0]["data"] == content + b"\n"
    assert msgs[0]["mail"].startswith("MAIL FROM:<sender@client.example.test>")
    assert " SIZE=" in msgs[0]["mail"]
    sess = srv.sessions[0]
    # PIPELINING: MAIL, both RCPTs and DATA arrived in one write.
    pend = dict((c.split(" ")[0].split(":")[0], more) for c, more in sess.pending)
    mail_idx = [i for i, (c, _) in enumerate(sess.pending) if c.startswith("MAIL")][0]
    assert sess.pending[mail_idx][1] and sess.pending[mail_idx + 1][1] and sess.pending[mail_idx + 2][1]
    assert sess.pending[mail_idx + 3][0] == "DATA"
    assert pend["EHLO"] is False


def test_no_pipelining_one_command_at_a_time(agent_factory, fake):
    srv = fake()
    srv.ehlo = ["8BITMIME"]
    agent = agent_factory()
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, rcpts=["a@remote.test", "b@remote.test"])
    assert [g["status"] for g in groups] == ["2", "2"]
    sess = srv.sessions[0]
    for cmd, more in sess.pending:
        assert not more, "%s was pipelined without PIPELINING" % cmd
    assert [c.split(":")[0].split(" ")[0] for c in sess.commands[:5]] == ["EHLO", "MAIL", "RCPT", "RCPT", "DATA"]
    # No SIZE announced: no SIZE= parameter.
    assert "SIZE=" not in srv.messages()[0]["mail"]


def test_rcpt_550_and_250_mixed(agent_factory, fake):
    srv = fake()
    srv.rcpt_replies["bad@remote.test"] = "550 5.1.1 <bad@remote.test>: Recipient address rejected: User unknown"
    agent = agent_factory()
    qid, head, groups = agent.deliver("[127.0.0.1]:%d" % srv.port,
                                      rcpts=["good@remote.test", "bad@remote.test"])
    good, bad = groups
    assert good["status"] == "2"
    assert bad["status"] == "5"
    assert bad["dsn"] == "5.1.1"
    assert bad["reason"] == ("host 127.0.0.1[127.0.0.1] said: 550 5.1.1 <bad@remote.test>: "
                             "Recipient address rejected: User unknown (in reply to RCPT TO command)")
    assert head["site_trouble"] == "0"
    assert [m["rcpts"] for m in srv.messages()] == [["RCPT TO:<good@remote.test>"]]
    line = status_line(agent.log(), "bad@remote.test")
    assert "status=bounced (host 127.0.0.1[127.0.0.1] said: 550 5.1.1" in line


def test_rcpt_552_is_temporary(agent_factory, fake):
    srv = fake()
    srv.rcpt_replies["many@remote.test"] = "552 5.5.3 Too many recipients"
    agent = agent_factory()
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, rcpts=["many@remote.test"])
    assert groups[0]["status"] == "4"
    assert groups[0]["dsn"].startswith("4.")


def test_mail_from_4xx_defers_all(agent_factory, fake):
    srv = fake()
    srv.mail_reply = "451 4.3.0 Try again later"
    agent = agent_factory()
    _, head, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, rcpts=["a@remote.test", "b@remote.test"])
    for g in groups:
        assert g["status"] == "4"
        assert g["dsn"] == "4.3.0"
        assert "said: 451 4.3.0 Try again later (in reply to MAIL FROM command)" in g["reason"]
    # The server got past the handshake: not the site's trouble.
    assert head["site_trouble"] == "0"
    assert srv.messages() == []


def test_421_to_pipelined_mail_keeps_the_reply(agent_factory, fake):
    srv = fake()
    srv.mail_reply = "421 4.3.2 Service shutting down"
    agent = agent_factory()
    nexthop = "[127.0.0.1]:%d" % srv.port
    _, _, groups = agent.deliver(nexthop, rcpts=["a@remote.test", "b@remote.test"])
    for g in groups:
        assert g["status"] == "4"
        assert g["reason"] == ("host 127.0.0.1[127.0.0.1] said: 421 4.3.2 Service shutting down "
                               "(in reply to MAIL FROM command)")
    # The connection is not kept for the next message.
    srv.mail_reply = "250 2.1.0 Ok"
    _, _, groups = agent.deliver(nexthop)
    assert groups[0]["status"] == "2"
    assert len(srv.sessions) == 2


def test_end_of_data_5xx_bounces_all(agent_factory, fake):
    srv = fake()
    srv.dot_reply = "554 5.7.1 Message rejected as spam"
    agent = agent_factory()
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, rcpts=["a@remote.test", "b@remote.test"])
    for g in groups:
        assert g["status"] == "5"
        assert g["reason"].endswith("(in reply to end of DATA command)")


def test_connection_refused(agent_factory):
    port = free_port()
    agent = agent_factory()
    t0 = time.monotonic()
    qid, head, groups = agent.deliver("[127.0.0.1]:%d" % port)
    assert time.monotonic() - t0 < 10
    assert groups[0]["status"] == "4"
    assert groups[0]["dsn"] == "4.4.1"
    assert groups[0]["reason"] == "connect to 127.0.0.1[127.0.0.1]:%d: Connection refused" % port
    assert groups[0]["relay"] == "none"
    assert head["site_trouble"] == "1"
    line = status_line(agent.log(), "rcpt@remote.test")
    assert "relay=none" in line and "status=deferred (connect to 127.0.0.1[127.0.0.1]" in line


def test_drop_mid_data_deferred(agent_factory, fake):
    srv = fake()
    srv.drop = "body"
    agent = agent_factory()
    big = b"Subject: big\n\n" + (b"x" * 998 + b"\n") * 2000
    _, head, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, content=big)
    assert groups[0]["status"] == "4"
    assert groups[0]["dsn"] == "4.4.2"
    assert groups[0]["reason"].startswith("lost connection with 127.0.0.1[127.0.0.1] while sending")
    assert srv.messages() == []


def test_drop_after_dot_may_duplicate(agent_factory, fake):
    srv = fake()
    srv.drop = "dot"
    agent = agent_factory()
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port)
    assert groups[0]["status"] == "4"
    assert groups[0]["reason"] == ("lost connection with 127.0.0.1[127.0.0.1] while sending end of "
                                   "data -- message may be sent more than once")


def test_greeting_timeout(agent_factory, fake):
    srv = fake()
    srv.greeting = None
    agent = agent_factory({"smtp_helo_timeout": "2s"})
    t0 = time.monotonic()
    _, head, groups = agent.deliver("[127.0.0.1]:%d" % srv.port)
    took = time.monotonic() - t0
    assert 1.5 < took < 15
    assert groups[0]["status"] == "4"
    assert groups[0]["reason"] == ("conversation with 127.0.0.1[127.0.0.1] timed out while receiving "
                                   "the initial server greeting")
    assert head["site_trouble"] == "1"


def test_greeting_554_skipped_then_deferred(agent_factory, fake):
    srv = fake()
    srv.greeting = "554 5.3.2 No service here"
    agent = agent_factory()
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port)
    # smtp_skip_5xx_greeting = yes: not a bounce.
    assert groups[0]["status"] == "4"
    assert groups[0]["dsn"] == "4.3.2"
    assert groups[0]["reason"] == "host 127.0.0.1[127.0.0.1] refused to talk to me: 554 5.3.2 No service here"


def test_greeting_554_bounces_without_skip(agent_factory, fake):
    srv = fake()
    srv.greeting = "554 5.3.2 No service here"
    agent = agent_factory({"smtp_skip_5xx_greeting": "no"})
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port)
    assert groups[0]["status"] == "5"
    assert groups[0]["dsn"] == "5.3.2"


def test_helo_fallback(agent_factory, fake):
    srv = fake()
    srv.ehlo_reply = "502 5.5.2 Error: command not recognized"
    agent = agent_factory({"smtp_helo_name": "helo.client.test"})
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, content=b"Subject: x\n\ncaf\xc3\xa9\n")
    assert groups[0]["status"] == "2"
    sess = srv.sessions[0]
    assert sess.commands[0] == "EHLO helo.client.test"
    assert sess.commands[1] == "HELO helo.client.test"
    # Plain SMTP: no ESMTP parameters at all.
    assert srv.messages()[0]["mail"] == "MAIL FROM:<sender@client.example.test>"


def test_8bit_with_and_without_8bitmime(agent_factory, fake):
    content = b"Subject: 8bit\n\ncaf\xc3\xa9\n"
    srv = fake()
    agent = agent_factory()
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, content=content)
    assert groups[0]["status"] == "2"
    assert " BODY=8BITMIME" in srv.messages()[0]["mail"]

    plain = fake()
    plain.ehlo = ["PIPELINING"]
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % plain.port, content=content)
    # Sent unchanged, as Postfix does when it does not convert.
    assert groups[0]["status"] == "2"
    m = plain.messages()[0]
    assert "BODY=" not in m["mail"]
    assert m["data"] == content

    # 7-bit content never claims 8BITMIME.
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, content=b"Subject: x\n\nascii\n")
    assert "BODY=" not in srv.messages()[-1]["mail"]


MIME_8BIT = (b"Subject: caf\xc3\xa9\nMIME-Version: 1.0\n"
             b"Content-Type: multipart/mixed; boundary=\"XX\"\n"
             b"Content-Transfer-Encoding: 8bit\n\n"
             b"--XX\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
             b"caf\xc3\xa9 cr\xc3\xa8me = 100%\n.dot line\n"
             b"--XX\nContent-Type: application/octet-stream\nContent-Transfer-Encoding: base64\n\n"
             b"AAEC\n--XX--\n")


def test_8bit_mime_converted_for_a_server_without_8bitmime(agent_factory, fake):
    plain = fake()
    plain.ehlo = ["PIPELINING"]
    agent = agent_factory()
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % plain.port, content=MIME_8BIT)
    assert groups[0]["status"] == "2", groups
    m = plain.messages()[0]
    assert "BODY=" not in m["mail"]
    data = m["data"]
    # The header is untouched (8-bit Subject and all); the body is 7-bit.
    head, body = data.split(b"\n\n", 1)
    assert head.startswith(b"Subject: caf\xc3\xa9\nMIME-Version: 1.0\n")
    assert b"Content-Transfer-Encoding: 7bit" in head, head
    assert all(c < 0x80 for c in body), body
    msg = email.message_from_bytes(data)
    text, binary = msg.get_payload()
    assert text["Content-Transfer-Encoding"] == "quoted-printable"
    assert text.get_payload(decode=True) == "café crème = 100%\n.dot line".encode()
    assert binary["Content-Transfer-Encoding"] == "base64"
    assert binary.get_payload(decode=True) == b"\x00\x01\x02"

    # A server with 8BITMIME gets the message as it is.
    srv = fake()
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, content=MIME_8BIT)
    assert groups[0]["status"] == "2"
    assert srv.messages()[0]["data"] == MIME_8BIT
    assert " BODY=8BITMIME" in srv.messages()[0]["mail"]

    # disable_mime_output_conversion = yes: sent unchanged, as Postfix does.
    raw = agent_factory({"disable_mime_output_conversion": "yes"})
    _, _, groups = raw.deliver("[127.0.0.1]:%d" % plain.port, content=MIME_8BIT)
    assert groups[0]["status"] == "2"
    assert plain.messages()[1]["data"] == MIME_8BIT


def test_smtputf8_requested_with_utf8_header(agent_factory, fake):
    old = fake()
    old.ehlo = ["PIPELINING", "8BITMIME"]
    agent = agent_factory()
    content = "Subject: Grüße\n\nhi\n".encode()
    hop = "[127.0.0.1]:%d" % old.port
    # SMTPUTF8 requested and the header is UTF-8: every recipient bounces.
    _, head, groups = agent.deliver(hop, rcpts=["a@remote.test", "b@remote.test"], content=content,
                                    attrs={"smtputf8": "1"})
    for g in groups:
        assert g["status"] == "5", g
        assert g["dsn"] == "5.6.7"
        assert g["reason"] == "SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    assert not any(c.startswith("MAIL") for c in old.sessions[0].commands)
    assert head["site_trouble"] == "0"
    # Not requested: the same content goes (Postfix does not look then).
    _, _, groups = agent.deliver(hop, content=content)
    assert groups[0]["status"] == "2"
    # Requested, but nothing in it needs UTF-8: sent without the parameter.
    _, _, groups = agent.deliver(hop, content=b"Subject: plain\n\nhi\n", attrs={"smtputf8": "1"})
    assert groups[0]["status"] == "2"
    assert [m["mail"] for m in old.messages()] == [
        "MAIL FROM:<sender@client.example.test> BODY=8BITMIME", "MAIL FROM:<sender@client.example.test>"]
    # A server with SMTPUTF8 gets it with the parameter.
    new = fake()
    new.ehlo = ["PIPELINING", "8BITMIME", "SMTPUTF8"]
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % new.port, content=content, attrs={"smtputf8": "1"})
    assert groups[0]["status"] == "2"
    assert new.messages()[0]["mail"].endswith(" BODY=8BITMIME SMTPUTF8")


def test_size_limit_of_server(agent_factory, fake):
    srv = fake()
    srv.ehlo = ["PIPELINING", "SIZE 1000"]
    agent = agent_factory()
    content = b"Subject: big\n\n" + b"y" * 5000 + b"\n"
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, content=content)
    assert groups[0]["status"] == "5"
    assert groups[0]["dsn"] == "5.3.4"
    assert groups[0]["reason"].startswith("message size ")
    assert "exceeds size limit 1000 of server 127.0.0.1[127.0.0.1]" in groups[0]["reason"]
    assert not any(c.startswith("MAIL") for c in srv.sessions[0].commands)


def test_size_parameter_is_crlf_size(agent_factory, fake):
    srv = fake()
    agent = agent_factory()
    content = b"Subject: s\n\n1\n2\n"
    agent.deliver("[127.0.0.1]:%d" % srv.port, content=content)
    m = re.search(r"SIZE=(\d+)", srv.messages()[0]["mail"])
    assert int(m.group(1)) == len(content) + content.count(b"\n")


def test_smtputf8(agent_factory, fake):
    srv = fake()
    srv.ehlo = ["PIPELINING", "8BITMIME", "SMTPUTF8"]
    agent = agent_factory()
    rcpt = "jösé@remote.test"
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port, rcpts=[rcpt, "plain@remote.test"],
                                 attrs={"smtputf8": "1"})
    assert [g["status"] for g in groups] == ["2", "2"]
    assert srv.messages()[0]["mail"].endswith(" SMTPUTF8")

    old = fake()
    old.ehlo = ["PIPELINING", "8BITMIME"]
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % old.port, rcpts=[rcpt, "plain@remote.test"],
                                 attrs={"smtputf8": "1"})
    utf, plain = groups
    assert utf["status"] == "5"
    assert utf["dsn"] == "5.6.7"
    assert utf["reason"] == "SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    # An ASCII recipient of the same message still goes through.
    assert plain["status"] == "2"
    assert [m["rcpts"] for m in old.messages()] == [["RCPT TO:<plain@remote.test>"]]


def test_dsn_parameters(agent_factory, fake):
    srv = fake()
    srv.ehlo = ["PIPELINING", "DSN"]
    agent = agent_factory()
    rcpts = [{"addr": "d@remote.test", "notify": "SUCCESS,FAILURE", "orcpt": "rfc822;Orig+1@x.test"},
             {"addr": "e@remote.test", "orig": "alias@client.example.test"}]
    qid, offsets = agent.queue_message(rcpts=rcpts, attrs={"envid": "env id=1", "ret": "HDRS"})
    _, groups = agent.request(qid, ["d@remote.test", "e@remote.test"], offsets,
                              "[127.0.0.1]:%d" % srv.port)
    assert [g["status"] for g in groups] == ["2", "2"]
    m = srv.messages()[0]
    assert m["mail"] == "MAIL FROM:<sender@client.example.test> RET=HDRS ENVID=env+20id+3D1"
    assert m["rcpts"] == ["RCPT TO:<d@remote.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;Orig+2B1@x.test",
                          "RCPT TO:<e@remote.test> ORCPT=rfc822;alias@client.example.test"]
    # Without DSN on the server: none of those parameters.
    plain = fake()
    qid, offsets = agent.queue_message(rcpts=rcpts, attrs={"envid": "x", "ret": "FULL"})
    agent.request(qid, ["d@remote.test", "e@remote.test"], offsets, "[127.0.0.1]:%d" % plain.port)
    m = plain.messages()[0]
    assert "RET=" not in m["mail"] and "ENVID=" not in m["mail"]
    assert m["rcpts"] == ["RCPT TO:<d@remote.test>", "RCPT TO:<e@remote.test>"]


def test_connection_reuse_and_idle_close(agent_factory, fake):
    srv = fake()
    agent = agent_factory({"smtp_connection_cache_time_limit": "2s"})
    nexthop = "[127.0.0.1]:%d" % srv.port
    q1, _, g1 = agent.deliver(nexthop, rcpts=["one@remote.test"])
    q2, _, g2 = agent.deliver(nexthop, rcpts=["two@remote.test"])
    assert g1[0]["status"] == "2" and g2[0]["status"] == "2"
    assert len(srv.sessions) == 1, "the second message did not reuse the connection"
    assert len(srv.messages()) == 2
    assert "RSET" in srv.sessions[0].commands
    line = status_line(agent.log(), "two@remote.test")
    assert "relay=127.0.0.1[127.0.0.1]:%d, conn_use=2," % srv.port in line
    # Idle for longer than the cache time: QUIT and close, agent still alive.
    wait_until(lambda: srv.sessions[0].closed, timeout=10, what="the cached connection to close")
    assert srv.sessions[0].quit
    assert agent.proc.poll() is None
    _, _, g3 = agent.deliver(nexthop, rcpts=["three@remote.test"])
    assert g3[0]["status"] == "2"
    assert len(srv.sessions) == 2


def test_no_reuse_for_another_nexthop(agent_factory, fake):
    a, b = fake(), fake()
    agent = agent_factory()
    agent.deliver("[127.0.0.1]:%d" % a.port)
    agent.deliver("[127.0.0.1]:%d" % b.port)
    assert len(a.messages()) == 1 and len(b.messages()) == 1
    # Switching next hop closes the old connection politely.
    wait_until(lambda: a.sessions[0].closed, timeout=10, what="old connection to close")
    assert a.sessions[0].quit


def test_bad_requests_end_the_connection(agent_factory):
    agent = agent_factory()
    qid, offsets = agent.queue_message()
    agent.sock.sendall(frame([("request", "deliver"), ("queue_id", "../etc"), ("queue", "active"),
                              ("nexthop", "[127.0.0.1]:25"), ("rcpt", "x@y"), ("offset", "0")]))
    assert read_frame(agent.sock, 20) is None
    agent.close()
    assert "bad request from qmgr: bad queue ID" in agent.log()


def test_recipient_must_be_in_queue_file(agent_factory, fake):
    srv = fake()
    agent = agent_factory()
    qid, offsets = agent.queue_message(rcpts=["real@remote.test"])
    _, groups = agent.request(qid, ["forged@remote.test"], offsets, "[127.0.0.1]:%d" % srv.port)
    assert groups[0]["status"] == "4"
    assert "not in the queue file" in groups[0]["reason"]
    assert srv.sessions == []


# ---------------------------------------------------------------- DNS

def test_mx_lookup_preference_and_fallback(agent_factory, fake, dns):
    srv = fake()
    dns.add_mx("example.test", 20, "mx2.example.test")
    dns.add_mx("example.test", 10, "mx1.example.test")
    # The best MX has an address where nothing listens.
    dns.add_a("mx1.example.test", "127.0.0.2")
    dns.add_a("mx2.example.test", "127.0.0.1")
    agent = agent_factory(dns=dns)
    qid, head, groups = agent.deliver("example.test:%d" % srv.port, rcpts=["u@example.test"])
    assert groups[0]["status"] == "2", groups
    assert groups[0]["relay"] == "mx2.example.test[127.0.0.1]:%d" % srv.port
    log = agent.log()
    assert "%s: connect to mx1.example.test[127.0.0.2]:%d: Connection refused" % (qid, srv.port) in log
    # MX first, then the hosts in preference order.
    names = [q for q in dns.queries if q[1] in ("MX", "A")]
    assert names[0] == ("example.test", "MX")
    assert names.index(("mx1.example.test", "A")) < names.index(("mx2.example.test", "A"))


def test_no_mx_uses_address(agent_factory, fake, dns):
    srv = fake()
    dns.add_a("plain.test", "127.0.0.1")
    agent = agent_factory(dns=dns)
    _, _, groups = agent.deliver("plain.test:%d" % srv.port, rcpts=["u@plain.test"])
    assert groups[0]["status"] == "2"
    assert groups[0]["relay"] == "plain.test[127.0.0.1]:%d" % srv.port


def test_null_mx_bounces(agent_factory, fake, dns):
    srv = fake()
    dns.add_null_mx("nomail.test")
    dns.add_a("nomail.test", "127.0.0.1")
    agent = agent_factory(dns=dns)
    _, head, groups = agent.deliver("nomail.test:%d" % srv.port, rcpts=["u@nomail.test"])
    assert groups[0]["status"] == "5"
    assert groups[0]["dsn"] == "5.1.10"
    assert groups[0]["reason"] == "Domain nomail.test does not accept mail (nullMX)"
    assert srv.sessions == []
    assert head["site_trouble"] == "0"


def test_nxdomain_bounces_servfail_defers(agent_factory, dns):
    dns.add_servfail("broken.test")
    agent = agent_factory(dns=dns)
    _, _, groups = agent.deliver("missing.test", rcpts=["u@missing.test"])
    assert groups[0]["status"] == "5"
    assert groups[0]["dsn"] == "5.4.4"
    assert groups[0]["reason"] == ("Host or domain name not found. Name service error for "
                                   "name=missing.test type=MX: Host not found")
    t0 = time.monotonic()
    _, head, groups = agent.deliver("broken.test", rcpts=["u@broken.test"])
    assert time.monotonic() - t0 < 30
    assert groups[0]["status"] == "4"
    assert groups[0]["dsn"] == "4.4.3"
    assert "type=MX: Host not found, try again" in groups[0]["reason"]
    assert head["site_trouble"] == "1"


def test_bracketed_host_skips_mx(agent_factory, fake, dns):
    srv = fake()
    dns.add_mx("relay.test", 10, "elsewhere.test")
    dns.add_a("relay.test", "127.0.0.1")
    agent = agent_factory(dns=dns)
    _, _, groups = agent.deliver("[relay.test]:%d" % srv.port)
    assert groups[0]["status"] == "2"
    assert dns.asked("relay.test", "MX") == []


def test_mx_pointing_to_myself_loops(agent_factory, dns):
    dns.add_mx("loop.test", 10, "client.example.test")
    dns.add_a("client.example.test", "127.0.0.1")
    agent = agent_factory(dns=dns)
    _, _, groups = agent.deliver("loop.test", rcpts=["u@loop.test"])
    assert groups[0]["status"] == "5"
    assert groups[0]["dsn"] == "5.4.6"
    assert groups[0]["reason"] == "mail for loop.test loops back to myself"


def test_soft_error_tries_next_mx_and_session_limit(agent_factory, fake, dns):
    first = fake(host="127.0.0.1")
    servers = [first] + [fake(host="127.0.0.%d" % i, port=first.port) for i in (2, 3)]
    for s in servers:
        s.mail_reply = "451 4.3.0 busy"
    for i, pref in enumerate((10, 20, 30)):
        dns.add_mx("three.test", pref, "mx%d.three.test" % i)
        dns.add_a("mx%d.three.test" % i, "127.0.0.%d" % (i + 1))
    agent = agent_factory(dns=dns)
    qid, _, groups = agent.deliver("three.test:%d" % first.port, rcpts=["u@three.test"])
    assert groups[0]["status"] == "4"
    # smtp_mx_session_limit = 2: the third MX is never contacted.
    assert [len(s.sessions) for s in servers] == [1, 1, 0]
    # The last server's answer is the reason; the first one was logged.
    assert groups[0]["reason"] == ("host mx1.three.test[127.0.0.2] said: 451 4.3.0 busy "
                                   "(in reply to MAIL FROM command)")
    assert groups[0]["relay"] == "mx1.three.test[127.0.0.2]:%d" % first.port


def test_mx_address_limit(agent_factory, dns):
    port = free_port()
    for i in range(4):
        dns.add_mx("dead.test", 10 * (i + 1), "mx%d.dead.test" % i)
        dns.add_a("mx%d.dead.test" % i, "127.0.0.%d" % (i + 2))
    agent = agent_factory({"smtp_mx_address_limit": "2"}, dns=dns)
    qid, head, groups = agent.deliver("dead.test:%d" % port, rcpts=["u@dead.test"])
    assert groups[0]["status"] == "4"
    assert groups[0]["reason"] == "connect to mx1.dead.test[127.0.0.3]:%d: Connection refused" % port
    assert head["site_trouble"] == "1"
    log = agent.log()
    assert "%s: connect to mx0.dead.test[127.0.0.2]:%d: Connection refused" % (qid, port) in log
    # Two addresses were enough: the other MX hosts were not even looked up.
    assert dns.asked("mx2.dead.test") == [] and dns.asked("mx3.dead.test") == []


def test_4xx_rcpt_goes_to_next_mx_5xx_does_not(agent_factory, fake, dns):
    first = fake(host="127.0.0.1")
    second = fake(host="127.0.0.2", port=first.port)
    first.rcpt_replies["soft@two.test"] = "450 4.2.0 greylisted"
    first.rcpt_replies["hard@two.test"] = "550 5.1.1 unknown"
    dns.add_mx("two.test", 10, "mx0.two.test")
    dns.add_mx("two.test", 20, "mx1.two.test")
    dns.add_a("mx0.two.test", "127.0.0.1")
    dns.add_a("mx1.two.test", "127.0.0.2")
    agent = agent_factory(dns=dns)
    _, _, groups = agent.deliver("two.test:%d" % first.port,
                                 rcpts=["ok@two.test", "soft@two.test", "hard@two.test"])
    ok, soft, hard = groups
    assert ok["status"] == "2" and ok["relay"].startswith("mx0.two.test[")
    assert soft["status"] == "2" and soft["relay"].startswith("mx1.two.test[")
    assert hard["status"] == "5" and hard["relay"].startswith("mx0.two.test[")
    assert [m["rcpts"] for m in second.messages()] == [["RCPT TO:<soft@two.test>"]]


def test_smtp_tcp_port_for_next_hops_without_port(agent_factory, fake, dns):
    srv = fake()
    dns.add_mx("ported.test", 10, "mx.ported.test")
    dns.add_a("mx.ported.test", "127.0.0.1")
    agent = agent_factory({"smtp_tcp_port": str(srv.port)}, dns=dns)
    _, _, groups = agent.deliver("ported.test", rcpts=["u@ported.test"])
    assert groups[0]["status"] == "2", groups
    assert groups[0]["relay"] == "mx.ported.test[127.0.0.1]:%d" % srv.port
    _, _, groups = agent.deliver("[127.0.0.1]")
    assert groups[0]["relay"] == "127.0.0.1[127.0.0.1]:%d" % srv.port
    # A port in the next hop wins.
    other = fake()
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % other.port)
    assert groups[0]["status"] == "2" and len(other.messages()) == 1
    assert len(srv.messages()) == 2


# ---------------------------------------------------------------- fallback relays

def test_fallback_relay_when_the_next_hop_is_unreachable(agent_factory, fake):
    fb = fake()
    dead = free_port()
    agent = agent_factory({"smtp_fallback_relay": "[127.0.0.1]:%d" % fb.port})
    qid, head, groups = agent.deliver("[127.0.0.1]:%d" % dead)
    assert groups[0]["status"] == "2", groups
    assert groups[0]["relay"] == "127.0.0.1[127.0.0.1]:%d" % fb.port
    assert head["site_trouble"] == "0"
    # The failure that made it fall back is logged, as Postfix does.
    assert "%s: connect to 127.0.0.1[127.0.0.1]:%d: Connection refused" % (qid, dead) in agent.log()
    assert len(fb.messages()) == 1


def test_fallback_relay_after_4xx_but_not_after_5xx(agent_factory, fake):
    primary, fb = fake(), fake()
    primary.rcpt_replies["soft@remote.test"] = "450 4.2.0 greylisted"
    primary.rcpt_replies["hard@remote.test"] = "550 5.1.1 unknown"
    dead = free_port()
    # Fallback relays are tried in order: the first one is down.
    agent = agent_factory({"smtp_fallback_relay": "[127.0.0.1]:%d, [127.0.0.1]:%d" % (dead, fb.port)})
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % primary.port,
                                 rcpts=["ok@remote.test", "soft@remote.test", "hard@remote.test"])
    ok, soft, hard = groups
    assert ok["status"] == "2" and ok["relay"] == "127.0.0.1[127.0.0.1]:%d" % primary.port
    assert soft["status"] == "2" and soft["relay"] == "127.0.0.1[127.0.0.1]:%d" % fb.port
    assert hard["status"] == "5" and hard["dsn"] == "5.1.1"
    assert [m["rcpts"] for m in fb.messages()] == [["RCPT TO:<soft@remote.test>"]]


def test_fallback_relay_for_a_domain_not_found(agent_factory, fake, dns):
    fb = fake()
    agent = agent_factory({"smtp_fallback_relay": "[127.0.0.1]:%d" % fb.port}, dns=dns)
    _, _, groups = agent.deliver("missing.test", rcpts=["u@missing.test"])
    assert groups[0]["status"] == "2", groups
    assert groups[0]["relay"] == "127.0.0.1[127.0.0.1]:%d" % fb.port
    # A fallback relay that is not found either: a configuration problem,
    # deferred (4.3.5), never bounced.
    broken = agent_factory({"smtp_fallback_relay": "nowhere.test"}, dns=dns)
    qid, _, groups = broken.deliver("missing.test", rcpts=["u@missing.test"])
    assert groups[0]["status"] == "4", groups
    assert groups[0]["dsn"] == "4.3.5"
    assert "name=nowhere.test type=MX: Host not found" in groups[0]["reason"]
    assert "%s: smtp_fallback_relay configuration problem" % qid in broken.log()


def test_no_fallback_for_our_own_mx_domain_or_null_mx(agent_factory, fake, dns):
    fb = fake()
    dead = free_port()
    dns.add_mx("backup.test", 10, "primary.backup.test")
    dns.add_a("primary.backup.test", "127.0.0.1")
    dns.add_mx("backup.test", 20, "client.example.test")
    dns.add_null_mx("nomail.test")
    agent = agent_factory({"smtp_fallback_relay": "[127.0.0.1]:%d" % fb.port}, dns=dns)
    # We are a backup MX: the mail waits for the primary, never the fallback.
    _, _, groups = agent.deliver("backup.test:%d" % dead, rcpts=["u@backup.test"])
    assert groups[0]["status"] == "4"
    assert groups[0]["reason"] == "connect to primary.backup.test[127.0.0.1]:%d: Connection refused" % dead
    _, _, groups = agent.deliver("nomail.test", rcpts=["u@nomail.test"])
    assert groups[0]["status"] == "5" and groups[0]["dsn"] == "5.1.10"
    assert fb.sessions == []


def test_relayhost_not_found_is_deferred(agent_factory, dns):
    agent = agent_factory({"relayhost": "[relay.missing.test]"}, dns=dns)
    qid, _, groups = agent.deliver("[relay.missing.test]")
    assert groups[0]["status"] == "4"
    assert groups[0]["dsn"] == "4.3.5"
    assert "%s: relayhost configuration problem" % qid in agent.log()


def test_lmtp_has_no_fallback_relay(agent_factory, fake):
    fb = fake(lmtp=True)
    dead = free_port()
    agent = agent_factory({"smtp_fallback_relay": "[127.0.0.1]:%d" % fb.port}, service="lmtp")
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % dead)
    assert groups[0]["status"] == "4"
    assert fb.sessions == []


# ---------------------------------------------------------------- TLS

@pytest.fixture(scope="module")
def certs():
    d = tempfile.mkdtemp(prefix="posthorn-smtp-certs-")

    def run(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=60)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    for ca in ("ca", "otherca"):
        run("req", "-x509", *ec, "-keyout", ca + ".key", "-out", ca + ".crt", "-days", "2",
            "-subj", "/CN=posthorn test %s" % ca)
    run("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=mx.tls.test")
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=DNS:mx.tls.test\n")
    run("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.crt", "-days", "2", "-extfile", "ext.cnf")
    yield d
    shutil.rmtree(d, ignore_errors=True)


def tls_server(fake, certs):
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(os.path.join(certs, "srv.crt"), os.path.join(certs, "srv.key"))
    srv = fake()
    srv.tls_context = ctx
    return srv


def test_tls_may_is_opportunistic(agent_factory, fake, certs):
    srv = tls_server(fake, certs)
    agent = agent_factory({"smtp_tls_security_level": "may", "smtp_tls_loglevel": "1"})
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port)
    assert groups[0]["status"] == "2"
    assert srv.messages()[0]["tls"] is True
    # EHLO again after STARTTLS, as RFC 3207 requires.
    assert [c.split(" ")[0] for c in srv.sessions[0].commands[:3]] == ["EHLO", "STARTTLS", "EHLO"]
    assert re.search(r"Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: "
                     r"TLSv1\.[23] with cipher \S+ \(\d+/\d+ bits\)" % srv.port, agent.log())
    # And without STARTTLS on offer it simply goes in plaintext.
    plain = fake()
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % plain.port)
    assert groups[0]["status"] == "2"
    assert plain.messages()[0]["tls"] is False


def test_tls_encrypt_requires_starttls(agent_factory, fake, certs):
    plain = fake()
    agent = agent_factory({"smtp_tls_security_level": "encrypt"})
    _, head, groups = agent.deliver("[127.0.0.1]:%d" % plain.port)
    assert groups[0]["status"] == "4"
    assert groups[0]["dsn"] == "4.7.4"
    assert groups[0]["reason"] == "TLS is required, but was not offered by host 127.0.0.1[127.0.0.1]"
    assert plain.messages() == []
    srv = tls_server(fake, certs)
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port)
    assert groups[0]["status"] == "2"
    assert srv.messages()[0]["tls"] is True


def test_tls_verify(agent_factory, fake, certs, dns):
    dns.add_a("mx.tls.test", "127.0.0.1")
    dns.add_a("other-name.test", "127.0.0.1")
    srv = tls_server(fake, certs)
    good = agent_factory({"smtp_tls_security_level": "verify", "smtp_tls_loglevel": "1",
                          "smtp_tls_CAfile": os.path.join(certs, "ca.crt")}, dns=dns)
    _, _, groups = good.deliver("[mx.tls.test]:%d" % srv.port)
    assert groups[0]["status"] == "2", groups
    assert "Verified TLS connection established to mx.tls.test[127.0.0.1]" in good.log()
    # The certificate is fine but not for this name.
    _, _, groups = good.deliver("[other-name.test]:%d" % srv.port)
    assert groups[0]["status"] == "4"
    assert groups[0]["dsn"] == "4.7.5"
    assert groups[0]["reason"] == "Server certificate not verified"
    # The right name, a CA we do not trust.
    wrong = agent_factory({"smtp_tls_security_level": "verify",
                           "smtp_tls_CAfile": os.path.join(certs, "otherca.crt")}, dns=dns)
    _, _, groups = wrong.deliver("[mx.tls.test]:%d" % srv.port)
    assert groups[0]["status"] == "4"
    assert groups[0]["reason"] == "Server certificate not verified"
    assert len(srv.messages()) == 1


def test_tls_handshake_failure_may_falls_back(agent_factory, fake):
    srv = fake()
    # Offer STARTTLS but answer the handshake with garbage.
    bad = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)   # no certificate: handshake fails
    srv.tls_context = bad
    agent = agent_factory({"smtp_tls_security_level": "may"})
    _, _, groups = agent.deliver("[127.0.0.1]:%d" % srv.port)
    assert groups[0]["status"] == "2"
    assert len(srv.sessions) == 2
    assert srv.messages()[0]["tls"] is False
    assert "TLS failed, trying again without TLS" in agent.log()


# ---------------------------------------------------------------- LMTP

def test_lmtp_unix_socket_per_recipient_replies(agent_factory, fake, tmpbase):
    path = os.path.join(tmpbase, "lmtp.sock")
    srv = fake(lmtp=True, unix_path=path)
    srv.lmtp_replies["full@mbox.test"] = "452 4.2.2 <full@mbox.test> Mailbox full"
    srv.rcpt_replies["nobody@mbox.test"] = "550 5.1.1 <nobody@mbox.test> User unknown"
    agent = agent_factory(service="lmtp")
    rcpts = ["ok@mbox.test", "full@mbox.test", "nobody@mbox.test"]
    _, head, groups = agent.deliver("unix:" + path, rcpts=rcpts)
    ok, full, nobody = groups
    assert ok["status"] == "2"
    assert ok["reason"] == "250 2.0.0 <ok@mbox.test> delivered"
    assert full["status"] == "4"
    assert full["dsn"] == "4.2.2"
    assert full["reason"].endswith("(in reply to end of DATA command)")
    assert nobody["status"] == "5"
    sess = srv.sessions[0]
    assert sess.commands[0] == "LHLO client.example.test"
    assert ok["relay"] == "client.example.test[%s]" % path


def test_lmtp_over_tcp_with_transport_attribute(agent_factory, fake):
    srv = fake(lmtp=True)
    agent = agent_factory()
    _, _, groups = agent.deliver("127.0.0.1:%d" % srv.port, transport="lmtp",
                                 rcpts=["a@mbox.test", "b@mbox.test"])
    assert [g["status"] for g in groups] == ["2", "2"]
    assert srv.sessions[0].commands[0].startswith("LHLO ")
