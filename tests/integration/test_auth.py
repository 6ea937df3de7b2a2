"""
The auth service and the password database, from the outside: the
attribute protocol on private/auth spoken from Python (good password, bad
password, unknown user, lookups with and without the secret, garbage),
the failure delay that grows per client address and per user, the log
line of each failure (and no password in the log), hashes printed by
`posthorn passwd` that auth accepts, `posthorn user add/passwd/del/list`
round trips (concurrent adds lose nothing), and passdb accounts as
virtual mailbox recipients: smtpd accepts them, local delivers into their
home, and without an answer from auth an unknown recipient is deferred,
never refused.
"""

import os
import re
import subprocess
import time

import pytest

from posthorn import PrivateClient, make_message, send_one

AUTH_MASTER_CF = "auth       unix  -  -  n  -    1  auth\n"
SENDER = "sender@example.org"


# ---------------------------------------------------------------- protocol


def frame(**attrs):
    """One request frame: name:len:value lines and an empty line."""
    out = b""
    for name, value in attrs.items():
        if isinstance(value, str):
            value = value.encode("utf-8")
        out += b"%s:%d:%s\n" % (name.encode("ascii"), len(value), value)
    return out + b"\n"


class AuthClient(PrivateClient):
    """A client of private/auth; every read is bounded by a timeout."""

    def __init__(self, inst, timeout=30):
        super().__init__(inst, "auth", timeout)

    def _need(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("auth closed the connection")
            self.buf += chunk

    def _take_until(self, sep):
        while sep not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("auth closed the connection")
            self.buf += chunk
        head, self.buf = self.buf.split(sep, 1)
        return head

    def read_reply(self):
        attrs = {}
        while True:
            self._need(1)
            if self.buf[:1] == b"\n":
                self.buf = self.buf[1:]
                return attrs
            name = self._take_until(b":").decode("ascii")
            length = int(self._take_until(b":"))
            self._need(length + 1)
            value, self.buf = self.buf[:length], self.buf[length + 1 :]
            attrs[name] = value.decode("utf-8", "replace")

    def request(self, **attrs):
        """Send one request; returns (reply attributes, seconds taken)."""
        t0 = time.monotonic()
        self.sock.sendall(frame(**attrs))
        reply = self.read_reply()
        return reply, time.monotonic() - t0

    def verify(self, user, password, addr="192.0.2.10", service="pop3"):
        return self.request(request="passdb_verify", user=user, password=password,
                            client_addr=addr, service=service)


# ---------------------------------------------------------------- instances


def auth_instance(factory, users_text, delay="0", max_delay="0", start=True, master_cf=AUTH_MASTER_CF,
                  main_cf=None):
    """An instance with passdb = DIR/etc/users holding users_text."""
    cf = {"auth_failure_delay": delay, "auth_failure_max_delay": max_delay}
    cf.update(main_cf or {})
    inst = factory(master_cf_extra=master_cf, main_cf=cf)
    path = inst.etc / "users"
    inst.main_cf_extra["passdb"] = "passwd-file:%s" % path
    inst.write_main_cf()
    path.write_text(users_text, encoding="utf-8")
    os.chmod(path, 0o644)
    if start:
        inst.start()
    return inst, path


def passwd(inst, *args, stdin=None):
    cmd = [str(inst.bin / "posthorn"), "-c", str(inst.etc), "passwd"] + list(args)
    r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, "%s: exit %d: %s" % (" ".join(cmd), r.returncode, r.stderr.decode())
    return r.stdout.decode().strip()


USERS = (
    "# test accounts\n"
    "alice@example.test:{PLAIN}open sesame:5000:5001::/srv/mail/alice::\n"
    "bob@example.test:%s\n"
    "list@example.test:\n"
)
BOB_PASSWORD = "b0b's secret"


@pytest.fixture
def accounts(posthorn_factory):
    inst, path = auth_instance(posthorn_factory, "")
    bob = passwd(inst, "-p", BOB_PASSWORD)
    path.write_text(USERS % bob, encoding="utf-8")
    return inst


# ---------------------------------------------------------------- verify


def test_good_password_gives_the_account(accounts):
    with AuthClient(accounts) as c:
        reply, _ = c.verify("alice@example.test", "open sesame")
        assert reply == {"status": "ok", "user": "alice@example.test", "uid": "5000", "gid": "5001",
                         "home": "/srv/mail/alice"}, reply
        # Login names are folded to lower case; the hash path answers too.
        reply, _ = c.verify("BOB@Example.Test", BOB_PASSWORD, service="smtp")
        assert reply == {"status": "ok", "user": "bob@example.test"}, reply
    accounts.wait_for_log(r"passdb .*/etc/users: 3 accounts")


def test_bad_password_and_unknown_user_fail_alike(accounts):
    with AuthClient(accounts) as c:
        for user, password in (("alice@example.test", "open sesamE"),
                               ("bob@example.test", "wrong"),
                               ("nobody@example.test", "whatever"),
                               ("list@example.test", ""),
                               ("list@example.test", "x")):
            reply, _ = c.verify(user, password, addr="198.51.100.7")
            # The client learns nothing about which part was wrong.
            assert reply == {"status": "fail", "reason": "authentication failed"}, (user, reply)
    lines = accounts.wait_for_log(r"authentication failed for user", count=5)
    assert any(re.search(r"auth\[\d+\]: warning: unknown\[198\.51\.100\.7\]: authentication failed for "
                         r"user alice@example\.test \(service=pop3\): password mismatch$", l)
               for l in lines), lines
    assert any(l.endswith("user nobody@example.test (service=pop3): unknown user") for l in lines), lines
    assert any(l.endswith("user list@example.test (service=pop3): login disabled") for l in lines), lines
    log = accounts.maillog()
    for secret in ("open sesamE", "whatever", BOB_PASSWORD):
        assert secret not in log, "password %r in the log" % secret


def test_lookup_and_secret(accounts):
    with AuthClient(accounts) as c:
        reply, _ = c.request(request="passdb_lookup", user="Alice@example.test")
        assert reply == {"status": "ok", "user": "alice@example.test", "uid": "5000", "gid": "5001",
                         "home": "/srv/mail/alice"}, reply
        reply, _ = c.request(request="passdb_lookup", user="alice@example.test", want_secret="1")
        assert reply.get("password") == "open sesame", reply
        # A hashed account never gives its hash away.
        reply, _ = c.request(request="passdb_lookup", user="bob@example.test", want_secret="1")
        assert reply == {"status": "ok", "user": "bob@example.test"}, reply
        reply, _ = c.request(request="passdb_lookup", user="carol@example.test")
        assert reply == {"status": "notfound"}, reply
        # Lookups are not logins: no failure logged, no delay counted.
        assert not accounts.grep_log(r"authentication failed")


def test_malformed_requests(accounts):
    with AuthClient(accounts) as c:
        reply, _ = c.request(request="passdb_verify", user="alice@example.test")
        assert reply["status"] == "fail", reply
        reply, _ = c.request(request="passdb_verify", user="a\x01b", password="x", service="pop3")
        assert reply["status"] == "fail", reply
        reply, _ = c.request(request="passdb_verify", user="u" * 256, password="x", service="pop3")
        assert reply["status"] == "fail", reply
        reply, _ = c.request(request="passdb_verify", user="alice@example.test", password="x" * 512,
                             service="pop3")
        assert reply["status"] == "fail", reply
        reply, _ = c.request(request="format_disk")
        assert reply["status"] == "tempfail", reply
        # The connection is still good after all that.
        reply, _ = c.verify("alice@example.test", "open sesame")
        assert reply["status"] == "ok", reply
    # Grammar violations end the connection, and only that one.
    with AuthClient(accounts) as bad:
        bad.sock.sendall(b"user:99999999:x\n\n")
        with pytest.raises((EOFError, ConnectionResetError)):
            bad.read_reply()
    with AuthClient(accounts) as c:
        # Two requests in one write are answered in order.
        c.sock.sendall(frame(request="passdb_lookup", user="alice@example.test") +
                       frame(request="passdb_lookup", user="nobody@example.test"))
        assert c.read_reply()["status"] == "ok"
        assert c.read_reply()["status"] == "notfound"
    accounts.wait_for_log(r"auth\[\d+\]: warning: client sent a malformed request")


def test_passdb_unset_is_a_temporary_failure(posthorn_factory):
    inst = posthorn_factory(master_cf_extra=AUTH_MASTER_CF)
    inst.start()
    with AuthClient(inst) as c:
        reply, _ = c.verify("alice@example.test", "x")
        assert reply["status"] == "tempfail", reply
        reply, _ = c.request(request="passdb_lookup", user="alice@example.test")
        assert reply["status"] == "tempfail", reply
    inst.wait_for_log(r"auth\[\d+\]: .*passdb is not set")


def test_broken_passdb_keeps_the_last_good_version(accounts):
    path = accounts.etc / "users"
    with AuthClient(accounts) as c:
        assert c.verify("alice@example.test", "open sesame")[0]["status"] == "ok"
        good = path.read_text()
        tmp = path.with_suffix(".new")
        tmp.write_text(good + "carol@example.test:{NOSUCH}x\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
        assert c.verify("alice@example.test", "open sesame")[0]["status"] == "ok"
        assert c.request(request="passdb_lookup", user="carol@example.test")[0]["status"] == "notfound"
        accounts.wait_for_log(r"auth\[\d+\]: error: .*/etc/users:5: user carol@example\.test: unknown "
                              r"password scheme \{NOSUCH\}; still using the version loaded before")
        # Fixed: the new account counts at once.
        tmp.write_text(good + "carol@example.test:{PLAIN}c\n")
        os.chmod(tmp, 0o644)
        os.rename(tmp, path)
        assert c.verify("carol@example.test", "c")[0]["status"] == "ok"


# ---------------------------------------------------------------- delays


def _assert_took(elapsed, want, what):
    assert want - 0.15 <= elapsed <= want + 1.5, "%s: answered after %.2fs, expected about %.1fs" % (
        what, elapsed, want)


def test_repeated_failures_get_slower(posthorn_factory):
    inst, _ = auth_instance(posthorn_factory,
                            "alice@example.test:{PLAIN}right\n"
                            "bob@example.test:{PLAIN}bobs\n",
                            delay="1s", max_delay="3s")
    with AuthClient(inst) as c:
        # First contact: a right password is answered at once.
        reply, t = c.verify("bob@example.test", "bobs", addr="192.0.2.1")
        assert reply["status"] == "ok"
        _assert_took(t, 0, "first good password")
        # Wrong passwords from one address: 1s, 2s, then the 3s cap.
        for want in (1, 2, 3, 3):
            reply, t = c.verify("alice@example.test", "wrong", addr="203.0.113.5")
            assert reply["status"] == "fail", reply
            _assert_took(t, want, "failure with delay %ds" % want)
        # Another address and another user start at the bottom again.
        reply, t = c.verify("bob@example.test", "nope", addr="192.0.2.99")
        assert reply["status"] == "fail"
        _assert_took(t, 1, "first failure of another address and user")
        # The guessed user stays slow from a fresh address: counted per user.
        reply, t = c.verify("alice@example.test", "wrong again", addr="198.51.100.200")
        assert reply["status"] == "fail"
        _assert_took(t, 3, "failure for a user with earlier failures")
        # The right password from the penalised address waits too (no
        # early answer tells "right" from "wrong"), then clears the count.
        reply, t = c.verify("alice@example.test", "right", addr="203.0.113.5")
        assert reply["status"] == "ok", reply
        _assert_took(t, 3, "good password after failures")
        reply, t = c.verify("alice@example.test", "right", addr="203.0.113.5")
        assert reply["status"] == "ok"
        _assert_took(t, 0, "good password after the count was cleared")
    # A delayed client does not hold up others: two clients in parallel.
    with AuthClient(inst) as slow, AuthClient(inst) as fast:
        slow.sock.sendall(frame(request="passdb_verify", user="bob@example.test", password="bad",
                                client_addr="192.0.2.50", service="smtp"))
        time.sleep(0.1)
        reply, t = fast.verify("alice@example.test", "right", addr="192.0.2.51")
        assert reply["status"] == "ok"
        _assert_took(t, 0, "another client while one waits")
        assert slow.read_reply()["status"] == "fail"
    lines = inst.grep_log(r"unknown\[203\.0\.113\.5\]: authentication failed for user alice@example\.test "
                          r"\(service=pop3\): password mismatch")
    assert len(lines) == 4, lines


# ---------------------------------------------------------------- commands


SCHEMES = ["SHA512-CRYPT", "SHA256-CRYPT", "BLF-CRYPT", "YESCRYPT", "CRYPT", "PLAIN"]


def test_posthorn_passwd_output_verifies(posthorn_factory):
    inst, path = auth_instance(posthorn_factory, "")
    lines = []
    for i, scheme in enumerate(SCHEMES):
        field = passwd(inst, "-s", scheme, "-p", "pw %d" % i)
        want = {"YESCRYPT": "{CRYPT}$y$", "CRYPT": "{CRYPT}$", "BLF-CRYPT": "{BLF-CRYPT}$2y$"}.get(
            scheme, "{%s}" % scheme)
        assert field.startswith(want), (scheme, field)
        lines.append("u%d@example.test:%s\n" % (i, field))
    # Default scheme, password from standard input (not a terminal).
    field = passwd(inst, stdin=b"from stdin\n")
    assert field.startswith("{SHA512-CRYPT}$6$"), field
    lines.append("stdin@example.test:%s\n" % field)
    path.write_text("".join(lines))
    with AuthClient(inst) as c:
        for i, scheme in enumerate(SCHEMES):
            reply, _ = c.verify("u%d@example.test" % i, "pw %d" % i)
            assert reply["status"] == "ok", (scheme, reply)
            reply, _ = c.verify("u%d@example.test" % i, "pw %d!" % i)
            assert reply["status"] == "fail", (scheme, reply)
        assert c.verify("stdin@example.test", "from stdin")[0]["status"] == "ok"
    r = subprocess.run([str(inst.bin / "posthorn"), "passwd", "-s", "MD5-CRYPT", "-p", "x"],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert r.returncode == 1 and b"cannot be created" in r.stderr, r


def test_user_add_passwd_del_list(posthorn_factory):
    inst, path = auth_instance(posthorn_factory, "# kept comment\nalice@example.test:{PLAIN}a\n")
    r = inst.posthorn("user", "add", "-p", "first pw", "-u", str(inst.uid), "-d", str(inst.dir / "homes/carol"),
                      "Carol@Example.Test", check=True)
    assert "goes to %s/Maildir/" % (inst.dir / "homes/carol") in r.stdout_text, r.stdout_text
    assert "add \"carol@example.test example.test/carol/\" to %s" % (inst.etc / "vmailbox") in r.stdout_text
    r = inst.posthorn("user", "add", "-p", "again", "carol@example.test")
    assert r.returncode == 1 and "already exists" in r.stderr_text, r.stderr_text
    assert inst.posthorn("user", "list", check=True).stdout_text.split() == [
        "alice@example.test", "carol@example.test"]
    text = path.read_text()
    assert text.startswith("# kept comment\nalice@example.test:{PLAIN}a\ncarol@example.test:{SHA512-CRYPT}$6$")
    assert (os.stat(path).st_mode & 0o777) == 0o644, "mode not kept"
    with AuthClient(inst) as c:
        reply, _ = c.verify("carol@example.test", "first pw")
        assert reply["status"] == "ok" and reply["uid"] == str(inst.uid), reply
        inst.posthorn("user", "passwd", "-s", "BLF-CRYPT", "-p", "second pw", "carol@example.test", check=True)
        assert "carol@example.test:{BLF-CRYPT}$2y$" in path.read_text()
        # Only the password changed.
        assert ":%d:::%s::" % (inst.uid, inst.dir / "homes/carol") in path.read_text()
        assert c.verify("carol@example.test", "first pw")[0]["status"] == "fail"
        assert c.verify("carol@example.test", "second pw")[0]["status"] == "ok"
        inst.posthorn("user", "del", "carol@example.test", check=True)
        assert c.request(request="passdb_lookup", user="carol@example.test")[0]["status"] == "notfound"
    r = inst.posthorn("user", "del", "carol@example.test")
    assert r.returncode == 1 and "no user" in r.stderr_text
    assert inst.posthorn("user", "list", check=True).stdout_text.split() == ["alice@example.test"]
    assert [p.name for p in inst.etc.iterdir() if ".tmp." in p.name] == []
    # A file with a broken line is left alone.
    path.write_text(path.read_text() + "garbage line\n")
    r = inst.posthorn("user", "add", "-p", "x", "dave@example.test")
    assert r.returncode == 1 and "users:3: expected user:password" in r.stderr_text, r.stderr_text
    assert "dave" not in path.read_text()


def test_concurrent_user_adds_lose_nothing(posthorn_factory):
    inst, path = auth_instance(posthorn_factory, "", start=False)
    path.unlink()  # the first add creates it
    n = 16
    procs = [subprocess.Popen([str(inst.bin / "posthorn"), "-c", str(inst.etc), "user", "add", "-s", "PLAIN",
                               "-p", "pw%d" % i, "user%d@example.test" % i],
                              stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
             for i in range(n)]
    for i, p in enumerate(procs):
        out, errs = p.communicate(timeout=60)
        assert p.returncode == 0, "add user%d: exit %d: %s" % (i, p.returncode, errs.decode())
    listed = inst.posthorn("user", "list", check=True).stdout_text.split()
    assert sorted(listed) == sorted("user%d@example.test" % i for i in range(n)), listed
    st = os.stat(path)
    assert st.st_mode & 0o777 == (0o640 if os.geteuid() == 0 else 0o600), oct(st.st_mode)
    inst.start()
    with AuthClient(inst) as c:
        for i in range(n):
            assert c.verify("user%d@example.test" % i, "pw%d" % i)[0]["status"] == "ok", i


# ---------------------------------------------------------------- recipients


def test_passdb_accounts_are_virtual_recipients(posthorn_factory):
    inst, path = auth_instance(posthorn_factory, "", start=False,
                               main_cf={"recipient_delimiter": "+"})
    # carol has a home (uid/gid from the passdb); erin has neither.
    path.write_text("carol@example.test:{PLAIN}c:%d:%d::%s/homes/carol::\n"
                    "erin@example.test:{PLAIN}e\n" % (inst.uid, inst.gid, inst.mail))
    inst.start()
    with inst.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["carol@example.test", "carol+news@example.test",
                                               "erin@example.test", "alice@example.test"],
                                   make_message("to passdb users"))
        assert code == 250, text
    inst.wait_queue_empty()
    carol = inst.mail / "homes/carol/Maildir/new"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline and len(os.listdir(carol) if carol.exists() else []) < 2:
        time.sleep(0.1)
    assert len(os.listdir(carol)) == 2, os.listdir(carol)
    assert len(inst.wait_for_maildir("erin", 1)) == 1
    assert len(inst.wait_for_maildir("alice", 1)) == 1


def test_unknown_passdb_recipient_refused_and_deferred_without_auth(posthorn_factory):
    inst, path = auth_instance(posthorn_factory, "carol@example.test:{PLAIN}c\n")
    with inst.smtp() as s:
        s.mail(SENDER)
        code, text = s.rcpt("carol@example.test")
        assert code == 250, (code, text)
        code, text = s.rcpt("nobody-here@example.test")
        assert code == 550 and text.startswith(b"5.1.1"), (code, text)
    inst.stop()
    # The same passdb, but no auth service to ask: not known is not "unknown".
    inst2, _ = auth_instance(posthorn_factory, "carol@example.test:{PLAIN}c\n", master_cf="")
    with inst2.smtp() as s:
        s.mail(SENDER)
        code, text = s.rcpt("alice@example.test")  # in virtual_mailbox_maps
        assert code == 250, (code, text)
        code, text = s.rcpt("carol@example.test")
        assert code == 451 and text.startswith(b"4.3.0"), (code, text)
