"""
The POP3 server (src/pop3d) from the outside, with Python's poplib, raw
sockets and fetchmail: every command of RFC 1939 over plain POP3, STLS
and implicit TLS (port 995 style), their error paths (bad syntax, message
numbers out of range, deleted messages, commands in the wrong state, a
line too long, too many errors, inactivity), USER/PASS, APOP and SASL
AUTH through the auth service, plaintext passwords refused before TLS,
UIDLs stable across sessions and deliveries, the [IN-USE] lock, deletes
only at QUIT, a 10 MB message streamed, the log lines, and a wrong
password answered more slowly each time.

Messages arrive by SMTP through the instance, or are written into the
Maildir the way local writes them when a test needs exact content.
"""

import hashlib
import os
import poplib
import re
import socket
import ssl
import subprocess
import time

import pytest

from posthorn import free_port, make_message, send_one
from tlscert import make_cert

ALICE = "alice@example.test"
ALICE_PW = "alice pw 1"
BOB = "bob@example.test"
BOB_PW = "bob's secret"
TIMEOUT = 30
# uid and gid of the mailboxes (no passwd entry needed) when run as root.
MBOX_UID = 5000 if os.geteuid() == 0 else os.getuid()


# ---------------------------------------------------------------- instance


class Pop3Instance:
    """A started instance with auth, a passdb and three POP3 services."""

    def __init__(self, inst, pop, pops, pop_encrypt):
        self.inst = inst
        self.pop = pop
        self.pops = pops
        self.pop_encrypt = pop_encrypt

    def __getattr__(self, name):
        return getattr(self.inst, name)


def pop3_instance(factory, main_cf=None, delay="0", max_delay="0"):
    pop, pops, pop_encrypt = free_port(), free_port(), free_port()
    master_cf = (
        "auth       unix  -  -  n  -  1  auth\n"
        "127.0.0.1:%d inet n n n - - pop3d\n"
        "127.0.0.1:%d inet n n n - - pop3d -o pop3d_tls_wrappermode=yes\n"
        "127.0.0.1:%d inet n n n - - pop3d -o pop3d_tls_security_level=encrypt\n"
        % (pop, pops, pop_encrypt))
    inst = factory(master_cf_extra=master_cf)
    if os.geteuid() == 0:
        # Mailboxes owned by an account that is not mail_owner, so the
        # switch from mail_owner to the mailbox owner at login is real.
        (inst.mail / "example.test").mkdir(mode=0o755)
        os.chown(inst.mail / "example.test", MBOX_UID, MBOX_UID)
    cert, key = make_cert(inst.etc / "tls")
    users = inst.etc / "users"
    cf = {
        "passdb": "passwd-file:%s" % users,
        "virtual_uid_maps": "static:%d" % MBOX_UID,
        "virtual_gid_maps": "static:%d" % MBOX_UID,
        "auth_failure_delay": delay,
        "auth_failure_max_delay": max_delay,
        "pop3d_tls_cert_file": cert,
        "pop3d_tls_key_file": key,
        "pop3d_tls_security_level": "may",
        "pop3d_apop_enable": "yes",
        "pop3d_timeout": "20s",
    }
    cf.update(main_cf or {})
    inst.main_cf_extra.update(cf)
    inst.write_main_cf()
    bob_hash = subprocess.run(
        [str(inst.bin / "posthorn"), "-c", str(inst.etc), "passwd", "-p", BOB_PW],
        stdout=subprocess.PIPE, check=True, timeout=60).stdout.decode().strip()
    users.write_text("%s:{PLAIN}%s\n%s:%s\n" % (ALICE, ALICE_PW, BOB, bob_hash), encoding="utf-8")
    os.chmod(users, 0o644)
    inst.start()
    p = Pop3Instance(inst, pop, pops, pop_encrypt)
    wait_pop(p.pop)
    return p


def wait_pop(port, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            c = poplib.POP3("127.0.0.1", port, timeout=5)
            c.quit()
            return
        except (OSError, poplib.error_proto) as e:
            last = e
            time.sleep(0.1)
    raise AssertionError("POP3 port %d did not answer within %ss: %r" % (port, timeout, last))


@pytest.fixture
def pop3(posthorn_factory):
    return pop3_instance(posthorn_factory)


def client_context():
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def connect(p, port=None):
    return poplib.POP3("127.0.0.1", port or p.pop, timeout=TIMEOUT)


def login(p, user=ALICE, password=ALICE_PW, port=None):
    c = connect(p, port)
    assert c.user(user).startswith(b"+OK")
    assert c.pass_(password) == b"+OK Logged in."
    return c


def expect_err(fn, *args, match=None):
    with pytest.raises(poplib.error_proto) as e:
        fn(*args)
    text = e.value.args[0]
    assert text.startswith(b"-ERR"), text
    if match:
        assert re.search(match.encode(), text), "%r does not match %r" % (text, match)
    return text


# ---------------------------------------------------------------- mailboxes

_seq = [0]


def maildir(p, user=ALICE):
    return p.inst.maildir(user)


def make_maildir(p, user=ALICE):
    """The Maildir as local creates it: owned by the mailbox uid."""
    d = maildir(p, user)
    for sub in ("", "tmp", "new", "cur"):
        path = d / sub
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.geteuid() == 0:
            os.chown(path, MBOX_UID, MBOX_UID)
    return d


def put_message(p, data, user=ALICE, sub="new", sec=None):
    """Write a message file named the way local names them; returns the name."""
    d = make_maildir(p, user)
    _seq[0] += 1
    sec = sec if sec is not None else 1700000000 + _seq[0]
    name = "%d.V801I%xM%06d.mx.example.test,S=%d" % (sec, _seq[0], _seq[0], len(data))
    if sub == "cur":
        name += ":2,"
    path = d / sub / name
    path.write_bytes(data)
    if os.geteuid() == 0:
        os.chown(path, MBOX_UID, MBOX_UID)
    return name


def crlf(data):
    """What RETR sends of a Maildir file (before dot-stuffing)."""
    out = data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if out and not out.endswith(b"\r\n"):
        out += b"\r\n"
    return out


def mail_files(p, user=ALICE):
    d = maildir(p, user)
    out = []
    for sub in ("new", "cur"):
        try:
            out += [n for n in os.listdir(d / sub) if not n.startswith(".")]
        except FileNotFoundError:
            pass
    return sorted(out)


def deliver(p, subject, to=ALICE):
    with p.inst.smtp() as s:
        code, text, _ = send_one(s, "sender@example.org", [to], make_message(subject, to=to))
        assert code == 250, "DATA: %d %s" % (code, text)


def wait_files(p, count, user=ALICE, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    while len(mail_files(p, user)) < count:
        assert time.monotonic() < deadline, "Maildir: wanted %d messages, have %r" % (
            count, mail_files(p, user))
        time.sleep(0.05)


MSG1 = b"From: a@example.org\nSubject: one\n\nfirst body\n.dot line\n"
MSG2 = b"From: a@example.org\nSubject: two\n\nline 1\nline 2\nline 3\n"
MSG3 = b"From: a@example.org\nSubject: three\n\nthird\n"


def three_messages(p):
    return [put_message(p, m) for m in (MSG1, MSG2, MSG3)]


# ---------------------------------------------------------------- raw client


class Raw:
    """A bare POP3 connection for what poplib will not send."""

    def __init__(self, port, timeout=TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.f = self.sock.makefile("rb")

    def line(self):
        try:
            return self.f.readline().rstrip(b"\r\n")
        except ConnectionResetError:
            return b""

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def cmd(self, text):
        self.send(text + "\r\n" if isinstance(text, str) else text + b"\r\n")
        return self.line()

    def multi(self):
        lines = []
        while True:
            ln = self.line()
            if ln == b".":
                return lines
            lines.append(ln)

    def close(self):
        self.f.close()
        self.sock.close()


# ---------------------------------------------------------------- basics


def test_greeting_and_capa(pop3):
    c = connect(pop3)
    welcome = c.getwelcome()
    assert re.match(rb"^\+OK posthorn ready\. <\d+\.\d+\.[0-9a-f]{8}@mx\.example\.test>$", welcome), welcome
    caps = c.capa()
    for k in ("TOP", "USER", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE", "STLS",
              "IMPLEMENTATION"):
        assert k in caps, (k, caps)
    assert caps["SASL"] == ["PLAIN", "LOGIN"]
    assert caps["IMPLEMENTATION"] == ["posthorn"]
    assert "EXPIRE" not in caps and "LOGIN-DELAY" not in caps
    assert c.quit().startswith(b"+OK")


def test_transaction_commands(pop3):
    three_messages(pop3)
    c = login(pop3)
    sizes = [len(crlf(m)) for m in (MSG1, MSG2, MSG3)]
    assert c.stat() == (3, sum(sizes))
    resp, lines, _ = c.list()
    assert resp.startswith(b"+OK")
    assert lines == [b"%d %d" % (i + 1, s) for i, s in enumerate(sizes)]
    assert c.list(2) == b"+OK 2 %d" % sizes[1]
    resp, uidls, _ = c.uidl()
    assert [u.split()[0] for u in uidls] == [b"1", b"2", b"3"]
    names = sorted(mail_files(pop3))
    assert [u.split()[1] for u in uidls] == [n.split(":")[0].encode() for n in names]
    assert c.uidl(3) == b"+OK 3 " + uidls[2].split()[1]

    resp, lines, octets = c.retr(1)
    assert resp == b"+OK %d octets" % sizes[0]
    assert b"\r\n".join(lines) + b"\r\n" == crlf(MSG1)   # poplib undoes the dot-stuffing
    assert b".dot line" in lines

    resp, lines, _ = c.top(2, 0)
    assert lines == [b"From: a@example.org", b"Subject: two", b""]
    resp, lines, _ = c.top(2, 2)
    assert lines[-2:] == [b"line 1", b"line 2"]
    resp, lines, _ = c.top(2, 99)
    assert lines[-3:] == [b"line 1", b"line 2", b"line 3"]
    assert c.noop() == b"+OK"

    assert c.dele(3).startswith(b"+OK")
    assert c.stat() == (2, sizes[0] + sizes[1])
    resp, lines, _ = c.list()
    assert lines == [b"1 %d" % sizes[0], b"2 %d" % sizes[1]]
    assert c.rset() == b"+OK"
    assert c.stat() == (3, sum(sizes))
    assert c.dele(2).startswith(b"+OK")
    assert c.quit() == b"+OK Logging out."

    left = mail_files(pop3)
    assert len(left) == 2
    # new/ was moved to cur/ at login; the retrieved message got the Seen flag.
    assert not os.listdir(maildir(pop3) / "new")
    assert any(n.endswith(":2,S") for n in left), left
    pop3.wait_for_log(r"pop3d\[\d+\]: Login: user=<alice@example\.test>, method=PLAIN, "
                      r"rip=127\.0\.0\.1, lip=127\.0\.0\.1, mpid=\d+$")
    pop3.wait_for_log(r"pop3d\[\d+\]: Disconnected: Logged out top=3/\d+, retr=1/%d, del=1/3, "
                      r"size=%d, user=<alice@example\.test>, rip=127\.0\.0\.1" % (sizes[0], sum(sizes)))


def test_session_runs_as_the_mailbox_owner(pop3):
    three_messages(pop3)
    c = login(pop3)
    line = pop3.wait_for_log(r"Login: user=<alice@example\.test>")[-1]
    pid = int(re.search(r"mpid=(\d+)", line).group(1))
    with open("/proc/%d/status" % pid) as f:
        ids = dict(ln.split(":", 1) for ln in f.read().splitlines() if ln.startswith(("Uid", "Gid")))
    assert ids["Uid"].split() == [str(MBOX_UID)] * 4, ids
    assert ids["Gid"].split() == [str(MBOX_UID)] * 4, ids
    if os.geteuid() == 0:
        # master's listening socket, status pipe and group-commit block are gone.
        fds = [os.readlink("/proc/%d/fd/%s" % (pid, n)) for n in os.listdir("/proc/%d/fd" % pid)]
        assert not any("groupsync" in f or f.startswith("pipe:") for f in fds), fds
    assert c.stat()[0] == 3
    c.quit()
    st = os.stat(maildir(pop3) / "posthorn-pop3.lock")
    assert (st.st_uid, st.st_gid) == (MBOX_UID, MBOX_UID)
    # The process ended with the session; the next client gets a fresh one.
    deadline = time.monotonic() + TIMEOUT
    while os.path.exists("/proc/%d/status" % pid) and "State:\tZ" not in open("/proc/%d/status" % pid).read():
        assert time.monotonic() < deadline, "pop3d %d still running after QUIT" % pid
        time.sleep(0.05)
    c = login(pop3)
    c.quit()


def test_empty_and_missing_mailbox(pop3):
    c = login(pop3, BOB, BOB_PW)          # bob never got mail: no Maildir yet
    assert c.stat() == (0, 0)
    assert c.list()[1] == []
    assert c.uidl()[1] == []
    expect_err(c.retr, 1, match=r"^-ERR There's no message 1\.$")
    assert c.quit().startswith(b"+OK")
    assert not maildir(pop3, BOB).exists()


# ---------------------------------------------------------------- errors


def test_error_paths(pop3):
    three_messages(pop3)
    c = login(pop3)
    expect_err(c.retr, 0, match="no message 0")
    expect_err(c.retr, 4, match="no message 4")
    expect_err(c.list, 99, match="no message 99")
    expect_err(c.uidl, 4, match="no message 4")
    expect_err(c.top, 4, 0, match="no message 4")
    expect_err(c.dele, 1000000, match="no message")
    expect_err(c._shortcmd, "RETR x", match="Invalid message number")
    expect_err(c._shortcmd, "RETR -1", match="Invalid message number")
    expect_err(c._shortcmd, "RETR 99999999999999999999", match="Invalid message number")
    expect_err(c._shortcmd, "TOP 1", match="TOP takes")
    expect_err(c._shortcmd, "TOP 1 x", match="Invalid line count")
    expect_err(c._shortcmd, "RETR", match="RETR takes")
    expect_err(c._shortcmd, "DELE", match="DELE takes")
    expect_err(c._shortcmd, "STAT 1", match="STAT takes no arguments")
    expect_err(c._shortcmd, "LIST 1 2", match="at most one argument")
    expect_err(c._shortcmd, "LIST 1 2 3 4", match="Too many arguments")
    c.quit()

    # pop3d_hard_error_limit (20) counts per session: a new one.
    c = login(pop3)
    expect_err(c._shortcmd, "XYZZY", match="Unknown command")
    expect_err(c._shortcmd, "RETRIEVE 1", match="Unknown command")
    # Commands of the AUTHORIZATION state after login.
    expect_err(c.user, ALICE, match="not valid in TRANSACTION state")
    expect_err(c.pass_, ALICE_PW, match="not valid in TRANSACTION state")
    expect_err(c._shortcmd, "STLS", match="not valid in TRANSACTION state")
    # A deleted message is gone for every command, and DELE twice fails.
    assert c.dele(1).startswith(b"+OK")
    for fn, args in ((c.retr, (1,)), (c.dele, (1,)), (c.list, (1,)), (c.uidl, (1,)),
                     (c.top, (1, 0))):
        expect_err(fn, *args, match=r"Message 1 is deleted")
    assert c.retr(2)[0].startswith(b"+OK")
    assert c.quit().startswith(b"+OK")
    # The errors above did not end the session; the DELE held.
    assert len(mail_files(pop3)) == 2


def test_wrong_state_before_login(pop3):
    c = connect(pop3)
    for cmd in ("STAT", "LIST", "UIDL", "RETR 1", "DELE 1", "RSET", "NOOP", "TOP 1 1"):
        expect_err(c._shortcmd, cmd, match="not valid in AUTHORIZATION state")
    expect_err(c.pass_, ALICE_PW, match="No username given")
    # USER without PASS: still not logged in.
    assert c.user(ALICE) == b"+OK"
    expect_err(c.stat, match="not valid in AUTHORIZATION state")
    expect_err(c._shortcmd, "USER", match="USER takes one argument")
    assert c.quit().startswith(b"+OK")


def test_wrong_password(pop3):
    c = connect(pop3)
    assert c.user(ALICE) == b"+OK"
    expect_err(c.pass_, "wrong", match=r"^-ERR \[AUTH\] Authentication failed\.$")
    # A failed PASS starts over at USER.
    expect_err(c.pass_, ALICE_PW, match="No username given")
    assert c.user("nobody@example.test") == b"+OK"
    expect_err(c.pass_, "x", match=r"\[AUTH\] Authentication failed")
    assert c.user(ALICE) == b"+OK"
    assert c.pass_(ALICE_PW) == b"+OK Logged in."
    c.quit()
    pop3.wait_for_log(r"auth\[\d+\]: .*authentication failed for user alice@example\.test \(service=pop3\)")


def test_line_too_long_and_bad_characters(pop3):
    r = Raw(pop3.pop)
    assert r.line().startswith(b"+OK")
    assert r.cmd("NOOP " + "x" * 2000) == b"-ERR Line too long."
    assert r.cmd(b"USER a\x01b") == b"-ERR Invalid characters in command."
    assert r.cmd("") == b"-ERR Unknown command."
    # The session goes on.
    assert r.cmd("CAPA") == b"+OK Capability list follows"
    assert b"TOP" in r.multi()
    assert r.cmd("QUIT") == b"+OK Logging out."
    r.close()


@pytest.mark.parametrize("limit", ["3"])
def test_too_many_errors(posthorn_factory, limit):
    p = pop3_instance(posthorn_factory, main_cf={"pop3d_hard_error_limit": limit})
    r = Raw(p.pop)
    assert r.line().startswith(b"+OK")
    for _ in range(3):
        assert r.cmd("BOGUS").startswith(b"-ERR Unknown command")
    assert r.line() == b"-ERR Too many bad commands."
    assert r.line() == b""          # closed
    r.close()
    p.wait_for_log(r"Disconnected \(no auth attempts\): Too many bad commands")


def test_inactivity_timeout(posthorn_factory):
    p = pop3_instance(posthorn_factory, main_cf={"pop3d_timeout": "2s"})
    three_messages(p)
    r = Raw(p.pop)
    r.line()
    assert r.cmd("USER " + ALICE) == b"+OK"
    assert r.cmd("PASS " + ALICE_PW) == b"+OK Logged in."
    assert r.cmd("DELE 1").startswith(b"+OK")
    t0 = time.monotonic()
    assert r.line() == b"-ERR Disconnected for inactivity."
    assert 1.5 < time.monotonic() - t0 < 15
    assert r.line() == b""
    r.close()
    # No UPDATE state after a timeout: nothing was removed.
    p.wait_for_log(r"Disconnected: Inactivity top=0/0, retr=0/0, del=0/3")
    assert len(mail_files(p)) == 3


# ---------------------------------------------------------------- deletion and locking


def test_deletes_only_at_quit(pop3):
    three_messages(pop3)
    c = login(pop3)
    assert c.dele(1).startswith(b"+OK")
    assert c.dele(2).startswith(b"+OK")
    c.file.close()          # connection dropped without QUIT
    c.sock.close()
    pop3.wait_for_log(r"Disconnected: Connection closed .*del=0/3")
    c = login(pop3)
    assert c.stat()[0] == 3
    assert c.dele(1).startswith(b"+OK")
    c.quit()
    assert len(mail_files(pop3)) == 2


def test_in_use(pop3):
    three_messages(pop3)
    first = login(pop3)
    second = connect(pop3)
    assert second.user(ALICE) == b"+OK"
    expect_err(second.pass_, ALICE_PW, match=r"^-ERR \[IN-USE\] Mailbox is locked by another session\.$")
    assert first.dele(1).startswith(b"+OK")
    first.quit()
    third = login(pop3)
    assert third.stat()[0] == 2
    third.quit()
    pop3.wait_for_log(r"user=<alice@example\.test>: mailbox is locked by another session")


def test_removal_failure_is_reported(pop3):
    three_messages(pop3)
    c = login(pop3)
    assert c.dele(1).startswith(b"+OK")
    os.chmod(maildir(pop3) / "cur", 0o555)
    try:
        expect_err(c.quit, match=r"^-ERR \[SYS/TEMP\] 1 deleted message\(s\) were not removed\.$")
    finally:
        os.chmod(maildir(pop3) / "cur", 0o700)
    assert len(mail_files(pop3)) == 3


# ---------------------------------------------------------------- UIDL


def test_uidl_stable_across_sessions_and_deliveries(pop3):
    deliver(pop3, "first")
    deliver(pop3, "second")
    wait_files(pop3, 2)
    c = login(pop3)
    before = c.uidl()[1]
    assert len(before) == 2
    c.quit()

    deliver(pop3, "third")
    wait_files(pop3, 3)
    c = login(pop3)
    # Delivered while this session is open: not in its snapshot.
    deliver(pop3, "fourth")
    wait_files(pop3, 4)
    mid = c.uidl()[1]
    assert len(mid) == 3
    assert mid[:2] == before
    assert c.stat()[0] == 3
    c.quit()

    c = login(pop3)
    after = c.uidl()[1]
    assert len(after) == 4
    assert after[:3] == mid
    subjects = []
    for i in range(1, 5):
        lines = c.top(i, 0)[1]
        subjects += [ln for ln in lines if ln.startswith(b"Subject:")]
    assert subjects == [b"Subject: first", b"Subject: second", b"Subject: third", b"Subject: fourth"]
    uid_values = [u.split()[1] for u in after]
    assert len(set(uid_values)) == 4
    for u in uid_values:
        assert 1 <= len(u) <= 70 and all(0x21 <= b <= 0x7e for b in u)
    c.quit()


# ---------------------------------------------------------------- TLS


def test_stls(pop3):
    three_messages(pop3)
    c = connect(pop3)
    assert "STLS" in c.capa()
    assert c.stls(client_context()).startswith(b"+OK")
    caps = c.capa()
    assert "STLS" not in caps and "USER" in caps
    expect_err(c._shortcmd, "STLS", match="TLS is already active")
    assert c.user(ALICE) == b"+OK"
    assert c.pass_(ALICE_PW) == b"+OK Logged in."
    resp, lines, _ = c.retr(2)
    assert b"\r\n".join(lines) + b"\r\n" == crlf(MSG2)
    assert c.dele(2).startswith(b"+OK")
    c.quit()
    assert len(mail_files(pop3)) == 2
    pop3.wait_for_log(r"Login: user=<alice@example\.test>, method=PLAIN, rip=127\.0\.0\.1, "
                      r"lip=127\.0\.0\.1, mpid=\d+, TLS$")


def test_stls_with_pipelined_plaintext_is_refused(pop3):
    r = Raw(pop3.pop)
    r.line()
    r.send("STLS\r\nUSER " + ALICE + "\r\n")
    assert r.line() == b"+OK Begin TLS negotiation now."
    assert r.line() == b""
    r.close()
    pop3.wait_for_log(r"commands pipelined behind STLS")


def test_implicit_tls(pop3):
    three_messages(pop3)
    c = poplib.POP3_SSL("127.0.0.1", pop3.pops, timeout=TIMEOUT, context=client_context())
    assert c.getwelcome().startswith(b"+OK posthorn ready.")
    caps = c.capa()
    assert "STLS" not in caps and "USER" in caps
    expect_err(c._shortcmd, "STLS", match="TLS is already active")
    assert c.user(ALICE) == b"+OK"
    assert c.pass_(ALICE_PW) == b"+OK Logged in."
    assert c.stat()[0] == 3
    assert c.list()[1][0].startswith(b"1 ")
    assert len(c.uidl()[1]) == 3
    assert c.top(1, 0)[1][-1] == b""
    assert b"\r\n".join(c.retr(3)[1]) + b"\r\n" == crlf(MSG3)
    assert c.dele(3).startswith(b"+OK")
    assert c.rset() == b"+OK"
    assert c.dele(1).startswith(b"+OK")
    assert c.noop() == b"+OK"
    c.quit()
    assert len(mail_files(pop3)) == 2


def test_implicit_tls_garbage_handshake(pop3):
    r = Raw(pop3.pops)
    r.send("USER alice\r\n")
    assert r.line() == b""
    r.close()
    pop3.wait_for_log(r"TLS handshake failed: .*rip=127\.0\.0\.1")
    # The service still works.
    c = poplib.POP3_SSL("127.0.0.1", pop3.pops, timeout=TIMEOUT, context=client_context())
    c.quit()


def test_tls_required(pop3):
    c = connect(pop3, pop3.pop_encrypt)
    caps = c.capa()
    assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
    expect_err(c.user, ALICE, match=r"^-ERR Must issue a STLS command first\.$")
    expect_err(c._shortcmd, "AUTH PLAIN", match="Must issue a STLS command first")
    c.stls(client_context())
    assert c.user(ALICE) == b"+OK"
    assert c.pass_(ALICE_PW) == b"+OK Logged in."
    c.quit()


def test_plaintext_auth_refused_outside_trusted_networks(posthorn_factory):
    p = pop3_instance(posthorn_factory, main_cf={"pop3d_plaintext_auth_networks": ""})
    c = connect(p)
    caps = c.capa()
    assert "USER" not in caps and "SASL" not in caps and "STLS" in caps
    msg = r"^-ERR \[AUTH\] Plaintext authentication disallowed on non-secure \(SSL/TLS\) connections\.$"
    expect_err(c.user, ALICE, match=msg)
    expect_err(c.pass_, ALICE_PW, match=msg)
    expect_err(c._shortcmd, "AUTH PLAIN " + plain_ir(ALICE, ALICE_PW), match=msg)
    c.stls(client_context())
    assert "USER" in c.capa()
    assert c.user(ALICE) == b"+OK"
    assert c.pass_(ALICE_PW) == b"+OK Logged in."
    c.quit()


# ---------------------------------------------------------------- AUTH and APOP


def b64(s):
    import base64
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


def plain_ir(user, password):
    return b64("\0%s\0%s" % (user, password))


def test_auth_plain_and_login(pop3):
    r = Raw(pop3.pop)
    r.line()
    assert r.cmd("AUTH") == b"+OK"
    assert r.multi() == [b"PLAIN", b"LOGIN"]
    assert r.cmd("AUTH CRAM-MD5") == b"-ERR Unsupported authentication mechanism."
    # Challenge/response, cancelled.
    assert r.cmd("AUTH PLAIN") == b"+ "
    assert r.cmd("*") == b"-ERR Authentication cancelled."
    assert r.cmd("AUTH PLAIN " + plain_ir(ALICE, "nope")) == b"-ERR [AUTH] Authentication failed."
    assert r.cmd("AUTH PLAIN !!!notbase64") == b"-ERR Invalid authentication data."
    assert r.cmd("AUTH PLAIN " + plain_ir(ALICE, ALICE_PW)) == b"+OK Logged in."
    assert r.cmd("STAT") == b"+OK 0 0"
    assert r.cmd("QUIT") == b"+OK Logging out."
    r.close()
    pop3.wait_for_log(r"Login: user=<alice@example\.test>, method=PLAIN, ")

    r = Raw(pop3.pop)
    r.line()
    assert r.cmd("AUTH login") == b"+ " + b64("Username:").encode()
    assert r.cmd(b64(ALICE)) == b"+ " + b64("Password:").encode()
    assert r.cmd(b64(ALICE_PW)) == b"+OK Logged in."
    assert r.cmd("QUIT") == b"+OK Logging out."
    r.close()
    pop3.wait_for_log(r"Login: user=<alice@example\.test>, method=LOGIN, ")


def test_apop(pop3):
    three_messages(pop3)
    c = connect(pop3)
    assert c.apop(ALICE, ALICE_PW) == b"+OK Logged in."
    assert c.stat()[0] == 3
    c.quit()
    pop3.wait_for_log(r"Login: user=<alice@example\.test>, method=APOP, ")

    c = connect(pop3)
    expect_err(c.apop, ALICE, "wrong", match=r"^-ERR \[AUTH\] Authentication failed\.$")
    # An account without a {PLAIN} secret cannot use APOP.
    expect_err(c.apop, BOB, BOB_PW, match=r"^-ERR \[AUTH\] Authentication failed\.$")
    expect_err(c._shortcmd, "APOP " + ALICE, match="APOP takes a name")
    expect_err(c._shortcmd, "APOP %s %s" % (ALICE, "z" * 32), match="APOP takes a name")
    # The digest is bound to this greeting's timestamp: another one fails.
    digest = hashlib.md5(b"<1.2@other>" + ALICE_PW.encode()).hexdigest()
    expect_err(c._shortcmd, "APOP %s %s" % (ALICE, digest), match=r"\[AUTH\]")
    c.quit()
    # APOP failures went through auth (its delays and log apply).
    pop3.wait_for_log(r"auth\[\d+\]: .*authentication failed for user bob@example\.test \(service=pop3\)")


def test_apop_disabled(posthorn_factory):
    p = pop3_instance(posthorn_factory, main_cf={"pop3d_apop_enable": "no"})
    c = connect(p)
    assert c.getwelcome() == b"+OK posthorn ready."
    digest = hashlib.md5(b"<1.2@mx.example.test>" + ALICE_PW.encode()).hexdigest()
    expect_err(c._shortcmd, "APOP %s %s" % (ALICE, digest), match="Unknown command")
    c.quit()


def test_wrong_password_gets_slower(posthorn_factory):
    p = pop3_instance(posthorn_factory, delay="1s", max_delay="8s")
    times = []
    for _ in range(3):
        c = connect(p)
        c.user(ALICE)
        t0 = time.monotonic()
        expect_err(c.pass_, "guess", match=r"\[AUTH\]")
        times.append(time.monotonic() - t0)
        c.quit()
    assert times[0] >= 0.8, times
    assert times[1] >= times[0] + 0.7, times
    assert times[2] >= times[1] + 1.5, times


# ---------------------------------------------------------------- message content


def test_top_and_retr_of_odd_messages(pop3):
    no_blank = b"Subject: only a header\nX-A: 1"
    no_body = b"Subject: header and blank\n\n"
    dots = b"Subject: dots\n\n.\n..\n.x\nend"
    crlf_msg = b"Subject: crlf\r\n\r\nbody\r\n"
    for m in (no_blank, no_body, dots, crlf_msg):
        put_message(pop3, m)
    c = login(pop3)
    assert c.top(1, 0)[1] == [b"Subject: only a header", b"X-A: 1"]
    assert c.top(1, 5)[1] == [b"Subject: only a header", b"X-A: 1"]
    assert c.top(2, 0)[1] == [b"Subject: header and blank", b""]
    assert c.top(2, 3)[1] == [b"Subject: header and blank", b""]
    assert c.top(3, 2)[1] == [b"Subject: dots", b"", b".", b".."]
    for i, m in enumerate((no_blank, no_body, dots, crlf_msg), 1):
        resp, lines, _ = c.retr(i)
        assert resp == b"+OK %d octets" % len(crlf(m))
        assert b"\r\n".join(lines) + b"\r\n" == crlf(m), (i, lines)
    c.quit()

    # On the wire: dot-stuffed, CRLF, terminated.
    r = Raw(pop3.pop)
    r.line()
    r.cmd("USER " + ALICE)
    assert r.cmd("PASS " + ALICE_PW) == b"+OK Logged in."
    r.send("RETR 3\r\n")
    data = b""
    while not data.endswith(b"\r\n.\r\n"):
        chunk = r.f.read1(65536)
        assert chunk, data
        data += chunk
    assert data == b"+OK 33 octets\r\nSubject: dots\r\n\r\n..\r\n...\r\n..x\r\nend\r\n.\r\n"
    r.cmd("QUIT")
    r.close()


def test_pipelining(pop3):
    three_messages(pop3)
    r = Raw(pop3.pop)
    r.line()
    r.send("USER %s\r\nPASS %s\r\nSTAT\r\nLIST 1\r\nUIDL 2\r\nDELE 3\r\nNOOP\r\nQUIT\r\n"
           % (ALICE, ALICE_PW))
    got = [r.line() for _ in range(8)]
    assert got[0] == b"+OK" and got[1] == b"+OK Logged in."
    assert got[2].startswith(b"+OK 3 ") and got[3].startswith(b"+OK 1 ")
    assert got[4].startswith(b"+OK 2 ") and got[5].startswith(b"+OK Marked")
    assert got[6] == b"+OK" and got[7] == b"+OK Logging out."
    r.close()
    assert len(mail_files(pop3)) == 2


def status_kb(pid, field):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return None


def test_large_message_streams(pop3):
    line = b"x" * 76 + b"\n"
    body = line * (10 * 1024 * 1024 // len(line))
    msg = b"Subject: big\n\n" + body
    put_message(pop3, msg)
    c = login(pop3)
    m = re.search(r"Login: user=<alice@example\.test>, .*mpid=(\d+)$",
                  pop3.wait_for_log(r"Login: user=<alice@example\.test>")[-1])
    pid = int(m.group(1))
    before = status_kb(pid, "VmHWM")
    size = len(crlf(msg))
    assert c.list(1) == b"+OK 1 %d" % size
    resp, lines, octets = c.retr(1)
    assert resp == b"+OK %d octets" % size
    assert hashlib.sha256(b"\r\n".join(lines) + b"\r\n").digest() == hashlib.sha256(crlf(msg)).digest()
    after = status_kb(pid, "VmHWM")
    # Streamed: the peak resident size grew by far less than the message.
    assert after - before < 4 * 1024, (before, after)
    c.quit()


# ---------------------------------------------------------------- fetchmail


def test_fetchmail_empties_the_mailbox(pop3, tmp_path):
    for s in ("fm-one", "fm-two", "fm-three"):
        deliver(pop3, s)
    wait_files(pop3, 3)
    mbox = tmp_path / "mbox"
    mda = tmp_path / "mda.sh"
    mda.write_text("#!/bin/sh\n{ echo \"From fetchmail $(date)\"; sed 's/^From />From /'; echo; } >> %s\n"
                   % mbox)
    mda.chmod(0o755)
    rc = tmp_path / "fetchmailrc"
    rc.write_text(
        "set no syslog\n"
        "poll 127.0.0.1 service %d protocol pop3 uidl\n"
        "  user \"%s\" password \"%s\" is \"root\" here\n"
        "  fetchall nokeep sslproto 'tls1.2+' no sslcertck\n"
        "  mda \"%s\"\n" % (pop3.pop, ALICE, ALICE_PW, mda))
    rc.chmod(0o600)
    env = dict(os.environ, HOME=str(tmp_path), FETCHMAILHOME=str(tmp_path))
    r = subprocess.run(["fetchmail", "-f", str(rc), "--nodetach", "-v"], env=env,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out
    text = mbox.read_text()
    for s in ("fm-one", "fm-two", "fm-three"):
        assert "Subject: %s" % s in text, text
    assert text.count("\nFrom fetchmail ") + text.startswith("From fetchmail ") == 3
    assert mail_files(pop3) == []
    # fetchmail negotiated TLS on its own (STLS was offered).
    pop3.wait_for_log(r"Login: user=<alice@example\.test>, method=\w+, .*, TLS$")
    pop3.wait_for_log(r"Disconnected: Logged out top=\d+/\d+, retr=3/\d+, del=3/3")
