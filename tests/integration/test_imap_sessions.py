"""
IMAP sessions together and over time: two sessions on one mailbox seeing
each other's flag changes, expunges and new mail; an expunge by another
session during FETCH by sequence number (NO [EXPUNGEISSUED], the EXPUNGE
held back until a command that allows it); IDLE woken by a real SMTP
delivery within a second; UIDs and UIDVALIDITY stable across reconnects
and a restart of the whole instance; STARTTLS and implicit TLS (993
style); many idle sessions in one process, with the memory they cost
(imapd_rss_kib and open_idle_sessions are the helpers bench/ uses);
hibernation (a session in IDLE or quiet between commands maps no index
and still sees every change); and mutt reading a mailbox.
"""

import imaplib
import os
import pty
import re
import select
import shutil
import socket
import ssl
import subprocess
import time

import pytest

from posthorn import make_message, send_one
from test_imap import RawIMAP, TIMEOUT, imap_instance, login, msg, raw_login
from tlscert import make_cert


@pytest.fixture
def imap(posthorn_factory):
    return imap_instance(posthorn_factory)


def untagged_of(lines, word):
    return [l for l in lines if re.match(rb"\* \d+ " + word, l)]


def test_two_sessions_see_each_others_changes(imap):
    a = login(imap)
    for i in range(3):
        a.append("INBOX", None, None, msg("two-%d" % i))
    a.select("INBOX")
    b = raw_login(imap)
    untagged, tagged = b.cmd("SELECT INBOX")
    assert b"* 3 EXISTS" in untagged, untagged
    # Flags changed by A: B hears FETCH FLAGS at its next command.
    a.store("1", "+FLAGS", r"(\Flagged)")
    untagged, _ = b.cmd("NOOP")
    assert any(re.match(rb"\* 1 FETCH \(FLAGS \(.*\\Flagged", l) for l in untagged), untagged
    # An expunge by A: B hears EXPUNGE.
    a.store("2", "+FLAGS", r"(\Deleted)")
    a.expunge()
    untagged, _ = b.cmd("NOOP")
    assert b"* 2 EXPUNGE" in untagged, untagged
    # New mail by A's APPEND: B hears EXISTS.
    a.append("INBOX", None, None, msg("two-new"))
    untagged, _ = b.cmd("NOOP")
    assert b"* 3 EXISTS" in untagged, untagged
    untagged, _ = b.cmd("FETCH 3 (BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert b"two-new" in untagged[0], untagged
    b.close()
    a.logout()


def test_expunge_during_fetch_is_held_back(imap):
    a = login(imap)
    for i in range(2):
        a.append("INBOX", None, None, msg("exp-%d" % i))
    a.select("INBOX")
    b = raw_login(imap)
    b.cmd("SELECT INBOX")
    a.store("1", "+FLAGS", r"(\Deleted)")
    a.expunge()
    untagged, tagged = b.cmd("FETCH 1 (BODY.PEEK[])")
    # Dovecot's answer: the message is gone, say so, keep the numbering.
    assert tagged.startswith(b"NO [EXPUNGEISSUED]"), (untagged, tagged)
    assert not untagged_of(untagged, b"EXPUNGE"), untagged
    untagged, tagged = b.cmd("FETCH 2 (BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert tagged.startswith(b"OK") and b"exp-1" in untagged[0], untagged
    untagged, tagged = b.cmd("STORE 2 +FLAGS (\\Seen)")
    assert not untagged_of(untagged, b"EXPUNGE"), untagged
    untagged, tagged = b.cmd("NOOP")
    assert b"* 1 EXPUNGE" in untagged, untagged
    # UID commands may announce expunges at once.
    a.store("1", "+FLAGS", r"(\Deleted)")
    a.expunge()
    untagged, tagged = b.cmd("UID FETCH 1:* (FLAGS)")
    assert b"* 1 EXPUNGE" in untagged, untagged
    b.close()
    a.logout()


def test_idle_woken_by_smtp_delivery(imap):
    c = raw_login(imap)
    c.cmd("SELECT INBOX")
    c.send("i IDLE\r\n")
    assert c.line() == b"+ idling"
    with imap.smtp() as s:
        code, text, qid = send_one(s, "sender@example.org", ["alice@example.test"],
                                   make_message("idle wake"))
        assert code == 250, text
    maildir = imap.maildir("alice")
    sent = time.monotonic()
    file_seen = exists_seen = None
    c.sock.setblocking(False)
    while time.monotonic() - sent < 30 and exists_seen is None:
        polled = time.monotonic()
        if file_seen is None:
            for sub in ("new", "cur"):
                try:
                    if os.listdir(maildir / sub):
                        file_seen = time.monotonic()
                except FileNotFoundError:
                    pass
        r, _, _ = select.select([c.sock], [], [], 0.005)
        if r:
            chunk = c.sock.recv(65536)
            assert chunk, "imapd closed the IDLE session"
            c.buf += chunk
            if b"* 1 EXISTS" in c.buf:
                exists_seen = time.monotonic()
                # Delivered and reported between our look at the
                # directories and the select(): it came after that look.
                if file_seen is None:
                    file_seen = polled
    c.sock.setblocking(True)
    c.sock.settimeout(TIMEOUT)
    assert exists_seen is not None, "no EXISTS during IDLE within 30s of the delivery (%r)" % c.buf
    assert file_seen is not None
    assert exists_seen - file_seen < 1.0, "EXISTS %.3fs after the delivery" % (exists_seen - file_seen)
    c.buf = c.buf[c.buf.index(b"* 1 EXISTS"):]
    c.line()
    c.send("DONE\r\n")
    _, tagged = c.response("i")
    assert tagged.startswith(b"OK"), tagged
    untagged, _ = c.cmd("FETCH 1 (BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert b"idle wake" in untagged[0], untagged
    c.close()


def test_idle_sees_other_sessions_flags_and_expunges(imap):
    a = login(imap)
    for i in range(2):
        a.append("INBOX", None, None, msg("idle-%d" % i))
    a.select("INBOX")
    b = raw_login(imap)
    b.cmd("SELECT INBOX")
    b.send("i IDLE\r\n")
    assert b.line() == b"+ idling"
    a.store("2", "+FLAGS", r"(\Answered)")
    line = b.line()
    assert re.match(rb"\* 2 FETCH \(FLAGS \(.*\\Answered", line), line
    a.store("1", "+FLAGS", r"(\Deleted)")
    a.expunge()
    lines = [b.line()]
    while b"EXPUNGE" not in lines[-1]:
        lines.append(b.line())
    assert lines[-1] == b"* 1 EXPUNGE", lines
    b.send("DONE\r\n")
    _, tagged = b.response("i")
    assert tagged.startswith(b"OK")
    b.send("j IDLE\r\n")
    assert b.line() == b"+ idling"
    b.send("NOTDONE\r\n")
    _, tagged = b.response("j")
    assert tagged.startswith(b"BAD"), tagged
    b.close()
    a.logout()


def imapd_maps_index(inst, user):
    """Does any imapd process of inst have user's INBOX index mapped?"""
    index = str(inst.maildir(user) / "posthorn-index.lmdb")
    for pid, cmd in inst.processes():
        if "/imapd" not in cmd.split(" ")[0] and not cmd.startswith("imapd"):
            continue
        try:
            with open("/proc/%d/maps" % pid) as f:
                if index in f.read():
                    return True
        except OSError:
            pass
    return False


def wait_until(pred, timeout=5.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        time.sleep(0.05)
    return pred()


def read_until(c, pred, timeout=5.0):
    """Untagged lines of c until pred(line); the arrival time of the last."""
    c.sock.settimeout(timeout)
    lines = [c.line()]
    while not pred(lines[-1]):
        lines.append(c.line())
    c.sock.settimeout(TIMEOUT)
    return lines, time.monotonic()


def test_idle_over_hibernated_mailbox(imap):
    """A session in IDLE lets go of its mailbox's index (no LMDB map left
    in the process) and still hears of every change: flags and expunges
    by another session, a delivery by SMTP, each within a second."""
    a = login(imap)
    for i in range(3):
        a.append("INBOX", None, None, msg("hib-%d" % i))
    a.logout()
    b = raw_login(imap)
    b.cmd("SELECT INBOX")
    b.send("i IDLE\r\n")
    assert b.line() == b"+ idling"
    assert wait_until(lambda: not imapd_maps_index(imap, "alice")), \
        "the IDLE session still maps its index"

    a = login(imap)
    a.select("INBOX")
    t0 = time.monotonic()
    a.store("2", "+FLAGS", r"(\Flagged)")
    lines, t1 = read_until(b, lambda l: b"FETCH" in l)
    assert re.match(rb"\* 2 FETCH \(FLAGS \(.*\\Flagged", lines[-1]), lines
    assert t1 - t0 < 1.0, "FETCH %.3fs after STORE" % (t1 - t0)
    a.store("1", "+FLAGS", r"(\Deleted)")
    t0 = time.monotonic()
    a.expunge()
    lines, t1 = read_until(b, lambda l: b"EXPUNGE" in l)
    assert lines[-1] == b"* 1 EXPUNGE", lines
    assert t1 - t0 < 1.0, "EXPUNGE %.3fs after the expunge" % (t1 - t0)
    a.logout()

    # Woken sessions hibernate again at the next tick.
    assert wait_until(lambda: not imapd_maps_index(imap, "alice")), \
        "the index stayed mapped after the wake-up"
    with imap.smtp() as s:
        code, text, qid = send_one(s, "sender@example.org", ["alice@example.test"],
                                   make_message("hibernated delivery"))
        assert code == 250, text
    lines, _ = read_until(b, lambda l: b"EXISTS" in l, timeout=30)
    assert lines[-1] == b"* 3 EXISTS", lines
    b.send("DONE\r\n")
    _, tagged = b.response("i")
    assert tagged.startswith(b"OK"), tagged
    # The view survived hibernation: numbers, UIDs and flags agree.
    untagged, tagged = b.cmd("FETCH 1:3 (UID FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert tagged.startswith(b"OK"), tagged
    text = b"".join(untagged)
    assert b"hib-1" in text and b"hib-2" in text and b"hibernated delivery" in text, untagged
    assert re.search(rb"\* 1 FETCH \(UID 2 FLAGS \(\\Flagged[ )]", untagged[0]), untagged
    b.close()


def test_quiet_session_hibernates_between_commands(imap):
    """A selected session quiet for a few seconds lets go of its index
    too; its next commands see what changed meanwhile and work as
    before (STORE, EXPUNGE, FETCH of a body)."""
    a = login(imap)
    for i in range(2):
        a.append("INBOX", None, None, msg("quiet-%d" % i))
    a.logout()
    b = raw_login(imap)
    untagged, _ = b.cmd("SELECT INBOX")
    assert b"* 2 EXISTS" in untagged, untagged
    assert imapd_maps_index(imap, "alice")
    assert wait_until(lambda: not imapd_maps_index(imap, "alice"), timeout=10), \
        "a quiet session still maps its index"
    # Changes while it sleeps: a new message and a flag.
    a = login(imap)
    a.append("INBOX", None, None, msg("quiet-new"))
    a.select("INBOX")
    a.store("1", "+FLAGS", r"(\Answered)")
    a.logout()
    untagged, tagged = b.cmd("NOOP")
    assert tagged.startswith(b"OK"), tagged
    assert b"* 3 EXISTS" in untagged, untagged
    assert any(re.match(rb"\* 1 FETCH \(FLAGS \(.*\\Answered", l) for l in untagged), untagged
    _, tagged = b.cmd("STORE 2 +FLAGS (\\Deleted)")
    assert tagged.startswith(b"OK"), tagged
    untagged, tagged = b.cmd("EXPUNGE")
    assert untagged == [b"* 2 EXPUNGE"], untagged
    untagged, tagged = b.cmd("FETCH 2 (BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert tagged.startswith(b"OK") and b"quiet-new" in untagged[0], untagged
    b.close()


def test_uids_stable_across_reconnect_and_restart(imap):
    c = login(imap)
    for i in range(3):
        c.append("INBOX", None, None, msg("stable-%d" % i))
    c.select("INBOX")
    validity = c.untagged_responses["UIDVALIDITY"][0]
    c.store("2", "+FLAGS", r"(\Deleted)")
    c.expunge()
    c.store("1", "+FLAGS", "($Keep)")

    def snapshot(conn):
        typ, data = conn.fetch("1:*", "(UID FLAGS BODY.PEEK[HEADER.FIELDS (Subject)])")
        out = []
        for item in data:
            if isinstance(item, tuple):
                uid = re.search(rb"UID (\d+)", item[0]).group(1)
                flags = re.search(rb"FLAGS \(([^)]*)\)", item[0]).group(1)
                out.append((uid, sorted(f for f in flags.split() if f != b"\\Recent"),
                            item[1].strip()))
        return out

    before = snapshot(c)
    assert [u for u, _, _ in before] == [b"1", b"3"], before
    c.logout()
    c = login(imap)
    c.select("INBOX")
    assert c.untagged_responses["UIDVALIDITY"][0] == validity
    assert snapshot(c) == before
    c.logout()
    imap.stop()
    imap.start()
    from test_imap import wait_imap
    wait_imap(imap.imap_port)
    c = login(imap)
    c.select("INBOX")
    assert c.untagged_responses["UIDVALIDITY"][0] == validity
    assert snapshot(c) == before
    assert c.untagged_responses.get("UIDNEXT") == [b"4"], c.untagged_responses
    c.append("INBOX", None, None, msg("stable-new"))
    typ, data = c.uid("SEARCH", None, "ALL")
    assert data[0].split() == [b"1", b"3", b"4"], data
    c.logout()


# ---------------------------------------------------------------- TLS


def tls_instance(factory, **kw):
    port993 = None
    from posthorn import free_port
    port993 = free_port()
    inst = imap_instance(factory, start=False,
                         extra_master="127.0.0.1:%d inet  n  -  n  -  -  imapd -o imapd_tls_wrappermode=yes\n" % port993,
                         **kw)
    cert, key = make_cert(inst.dir / "tls")
    inst.main_cf_extra.update({"imapd_tls_cert_file": cert, "imapd_tls_key_file": key,
                               "imapd_tls_security_level": "may"})
    inst.write_main_cf()
    inst.start()
    inst.imaps_port = port993
    return inst


def client_ctx():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_starttls_and_implicit_tls(posthorn_factory):
    inst = tls_instance(posthorn_factory)
    from test_imap import wait_imap
    wait_imap(inst.imap_port)
    # STARTTLS from a "remote" address: LOGINDISABLED until TLS is up.
    with RawIMAP(inst.imap_port, source="127.0.0.2") as r:
        assert b"STARTTLS" in r.greeting and b"LOGINDISABLED" in r.greeting, r.greeting
        _, tagged = r.cmd("STARTTLS")
        assert tagged.startswith(b"OK"), tagged
        tls = client_ctx().wrap_socket(r.sock, server_hostname="mx.example.test")
        t = RawIMAP(None, sock=tls, greet=False)
        untagged, tagged = t.cmd("CAPABILITY")
        assert b"STARTTLS" not in untagged[0] and b"AUTH=PLAIN" in untagged[0], untagged
        _, tagged = t.cmd("STARTTLS")
        assert tagged.startswith(b"BAD"), tagged
        _, tagged = t.cmd("LOGIN alice@example.test alicepw")
        assert tagged.startswith(b"OK"), tagged
        _, tagged = t.cmd("SELECT INBOX")
        assert tagged.startswith(b"OK"), tagged
        t.close()
    # imaplib's starttls.
    c = imaplib.IMAP4("127.0.0.1", inst.imap_port, timeout=TIMEOUT)
    assert c.starttls(ssl_context=client_ctx())[0] == "OK"
    assert c.login("bob@example.test", "bobpw")[0] == "OK"
    c.logout()
    # Implicit TLS: handshake first, then the greeting.
    c = imaplib.IMAP4_SSL("127.0.0.1", inst.imaps_port, ssl_context=client_ctx(), timeout=TIMEOUT)
    assert b"STARTTLS" not in c.welcome, c.welcome
    assert c.login("alice@example.test", "alicepw")[0] == "OK"
    body = b"Subject: big\r\n\r\n" + b"0123456789abcdef" * 131072 + b"\r\n"
    typ, data = c.append("INBOX", None, None, body)
    assert typ == "OK", data
    c.select("INBOX")
    typ, data = c.fetch("1", "(BODY.PEEK[])")
    assert data[0][1] == body
    c.logout()
    # Plaintext after STARTTLS (injection) ends the session.
    with RawIMAP(inst.imap_port) as r:
        r.send("a STARTTLS\r\nb NOOP\r\n")
        assert r.line().startswith(b"a OK")
        assert r.at_eof()
    # A client that never finishes the handshake is dropped on 993 too.
    with socket.create_connection(("127.0.0.1", inst.imaps_port), timeout=5) as s:
        s.sendall(b"this is not TLS\r\n")
        s.settimeout(10)
        try:
            data = s.recv(100)
        except ConnectionResetError:
            data = b""
        assert b"* OK" not in data


def test_slow_reader_gets_big_fetch_and_others_are_served(posthorn_factory):
    """
    A 16 MB BODY[] to a client that does not read: more than the socket
    buffers hold, so imapd must wait for the client, and meanwhile serve
    other sessions of the same process.
    """
    imap = imap_instance(posthorn_factory, main_cf={"message_size_limit": "40000000"})
    c = login(imap)
    body = b"Subject: huge\r\n\r\n" + (b"x" * 1000 + b"\r\n") * 16000
    assert c.append("INBOX", None, None, body)[0] == "OK"
    slow = raw_login(imap)
    slow.cmd("SELECT INBOX")
    slow.send("f FETCH 1 (BODY.PEEK[])\r\n")
    time.sleep(1)
    t0 = time.monotonic()
    other = login(imap, "bob@example.test", "bobpw")
    other.select("INBOX")
    other.noop()
    assert time.monotonic() - t0 < 5, "another session waited for the slow reader"
    other.logout()
    got = bytearray(slow.buf)
    while not (got.endswith(b"\r\n") and b"\r\nf OK" in got[-200:]):
        chunk = slow.sock.recv(1 << 20)
        assert chunk, "EOF before the end of the FETCH"
        got += chunk
    assert got.startswith(b"* 1 FETCH (BODY[] {%d}\r\n" % len(body)), bytes(got[:100])
    assert body + b")\r\nf OK" in got[-len(body) - 100:]
    slow.close()
    c.logout()


# ---------------------------------------------------------------- scale


def imapd_rss_kib(inst):
    """Sum of VmRSS (KiB) of the instance's imapd processes, and their count."""
    total, n = 0, 0
    for pid, cmd in inst.processes():
        if "/imapd" not in cmd.split(" ")[0] and not cmd.startswith("imapd"):
            continue
        try:
            with open("/proc/%d/status" % pid) as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
                        n += 1
        except OSError:
            pass
    return total, n


def open_idle_sessions(port, n, user="alice@example.test", password="alicepw", tls=None):
    """n sockets (TLS from the start with an ssl context), each logged in,
    INBOX selected and in IDLE."""
    socks = []
    for i in range(n):
        s = socket.create_connection(("127.0.0.1", port), timeout=TIMEOUT)
        if tls is not None:
            s = tls.wrap_socket(s)
        s.sendall(b"a LOGIN %s %s\r\nb SELECT INBOX\r\nc IDLE\r\n" % (user.encode(), password.encode()))
        socks.append(s)
    for s in socks:
        buf = b""
        while b"+ idling" not in buf:
            chunk = s.recv(65536)
            assert chunk, "session closed before IDLE: %r" % buf
            buf += chunk
    return socks


def sanitized_build(inst):
    """ASan builds cost several times the memory: no measurement there."""
    with open(inst.bin / "imapd", "rb") as f:
        return b"__asan_init" in f.read()


def test_many_idle_sessions_memory(posthorn_factory):
    inst = imap_instance(posthorn_factory, main_cf={"imapd_client_limit": "2000"})
    c = login(inst)
    for i in range(20):
        c.append("INBOX", None, None, msg("mem-%d" % i))
    c.logout()
    base_socks = open_idle_sessions(inst.imap_port, 10)
    time.sleep(0.5)
    base, nproc = imapd_rss_kib(inst)
    more = open_idle_sessions(inst.imap_port, 400)
    time.sleep(0.5)
    after, nproc2 = imapd_rss_kib(inst)
    per = (after - base) / 400.0
    print("imapd RSS: %d KiB with 10 sessions, %d KiB with 410 (%d process(es)): "
          "%.1f KiB per idle session" % (base, after, nproc2, per))
    assert nproc2 == 1, "one process should hold them all (client limit 2000)"
    if not sanitized_build(inst):
        assert per < 50, "%.1f KiB per IDLE session" % per
    # They are all alive: a delivery wakes every one.
    c = login(inst)
    c.append("INBOX", None, None, msg("wake all"))
    c.logout()
    deadline = time.monotonic() + 20
    for s in base_socks + more:
        s.settimeout(max(0.1, deadline - time.monotonic()))
        buf = b""
        while b"EXISTS" not in buf:
            chunk = s.recv(4096)
            assert chunk
            buf += chunk
    for s in base_socks + more:
        s.close()


def test_many_idle_tls_sessions_memory(posthorn_factory):
    inst = tls_instance(posthorn_factory, main_cf={"imapd_client_limit": "2000"})
    from test_imap import wait_imap
    wait_imap(inst.imap_port)
    ctx = client_ctx()
    base_socks = open_idle_sessions(inst.imaps_port, 10, tls=ctx)
    time.sleep(0.5)
    base, _ = imapd_rss_kib(inst)
    more = open_idle_sessions(inst.imaps_port, 200, tls=ctx)
    time.sleep(0.5)
    after, _ = imapd_rss_kib(inst)
    per = (after - base) / 200.0
    print("imapd RSS over TLS: %d KiB with 10 sessions, %d KiB with 210: "
          "%.1f KiB per idle session" % (base, after, per))
    if not sanitized_build(inst):
        assert per < 50, "%.1f KiB per IDLE TLS session" % per
    for s in base_socks + more:
        s.close()


def test_client_limit_starts_another_process(posthorn_factory):
    inst = imap_instance(posthorn_factory, main_cf={"imapd_client_limit": "5"})
    socks = open_idle_sessions(inst.imap_port, 12)
    _, nproc = imapd_rss_kib(inst)
    assert nproc >= 3, "12 sessions with 5 per process need 3 processes, saw %d" % nproc
    for s in socks:
        s.close()


# ---------------------------------------------------------------- mutt


@pytest.mark.skipif(shutil.which("mutt") is None, reason="mutt is not installed")
def test_mutt_reads_mailbox(imap):
    c = login(imap)
    c.append("INBOX", None, None, msg("read by mutt"))
    c.logout()
    rc = imap.dir / "muttrc"
    rc.write_text(
        'set imap_user = "alice@example.test"\n'
        'set imap_pass = "alicepw"\n'
        "set ssl_starttls = no\nset ssl_force_tls = no\n"
        "set imap_passive = no\nset move = no\nset sort = date\n"
        "set folder = imap://127.0.0.1:%d/\n" % imap.imap_port)
    env = dict(os.environ, TERM="vt100", HOME=str(imap.dir), LINES="40", COLUMNS="120")
    pid, fd = pty.fork()
    if pid == 0:
        os.execvpe("mutt", ["mutt", "-n", "-F", str(rc), "-f",
                            "imap://127.0.0.1:%d/INBOX" % imap.imap_port], env)
    out = b""
    deadline = time.monotonic() + 30
    try:
        while time.monotonic() < deadline and b"read by mutt" not in out:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        assert b"read by mutt" in out, out[-2000:]
        # Open the message and see its body, then quit.
        os.write(fd, b"\r")
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline and b"Hello there." not in out:
            r, _, _ = select.select([fd], [], [], 0.2)
            if r:
                try:
                    out += os.read(fd, 65536)
                except OSError:
                    break
        assert b"Hello there." in out, out[-2000:]
        os.write(fd, b"qq")
        time.sleep(0.5)
        os.write(fd, b"y")
    finally:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            done, _ = os.waitpid(pid, os.WNOHANG)
            if done:
                break
            time.sleep(0.1)
        else:
            os.kill(pid, 9)
            os.waitpid(pid, 0)
        os.close(fd)
    # mutt opened it with BODY[]: \Seen is set.
    c = login(imap)
    c.select("INBOX", readonly=True)
    typ, data = c.fetch("1", "FLAGS")
    assert b"\\Seen" in data[0], data
    c.logout()
