"""
SCRAM-SHA-256 (RFC 5802, RFC 7677) through libsasl2 in smtpd (AUTH),
imapd (AUTHENTICATE) and pop3d (AUTH), with the client side written here
with hashlib/hmac: a right password (the client also checks the server's
signature, so the server provably knew the secret), a wrong one (535 / NO
/ -ERR, auth's failure log line with the client address and the failure
delay), an account whose password is a hash (no {PLAIN} secret: SCRAM
cannot work and fails the same way), PLAIN still working next to SCRAM,
and that SCRAM is neither advertised nor accepted while sasl_mechanisms
keeps its default.  And auth's passdb_report request on its own: a
reported failure counts, waits and is logged like a wrong password, a
reported success clears the counts, a malformed report is refused.
"""

import base64
import hashlib
import hmac
import imaplib
import os
import smtplib
import subprocess
import time

import pytest

from test_auth import AuthClient, auth_instance
from test_imap import imap_instance
from test_pop3 import ALICE, ALICE_PW, BOB, BOB_PW, Raw, pop3_instance
from posthorn import free_port

MECHS = "PLAIN LOGIN SCRAM-SHA-256"
IMAP_USERS = "alice@example.test:{PLAIN}alicepw\n"


def b64(data):
    return base64.b64encode(data.encode() if isinstance(data, str) else data).decode()


class Scram:
    """The client side of SCRAM-SHA-256 without channel binding."""

    def __init__(self, user, password):
        self.user = user
        self.password = password
        self.cnonce = b64(os.urandom(18))
        name = user.replace("=", "=3D").replace(",", "=2C")
        self.bare = "n=%s,r=%s" % (name, self.cnonce)
        self.server_signature = None

    def first(self):
        return "n,," + self.bare

    def final(self, server_first):
        attrs = dict(kv.split("=", 1) for kv in server_first.split(","))
        nonce, salt, iters = attrs["r"], base64.b64decode(attrs["s"]), int(attrs["i"])
        assert nonce.startswith(self.cnonce) and len(nonce) > len(self.cnonce), server_first
        assert iters >= 4096, server_first
        salted = hashlib.pbkdf2_hmac("sha256", self.password.encode(), salt, iters)
        client_key = hmac.new(salted, b"Client Key", "sha256").digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = "c=%s,r=%s" % (b64("n,,"), nonce)
        auth_message = ",".join((self.bare, server_first, without_proof)).encode()
        signature = hmac.new(stored_key, auth_message, "sha256").digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        server_key = hmac.new(salted, b"Server Key", "sha256").digest()
        self.server_signature = "v=" + b64(hmac.new(server_key, auth_message, "sha256").digest())
        return without_proof + ",p=" + b64(proof)

    def check(self, server_final):
        assert server_final == self.server_signature, (server_final, self.server_signature)


class SmtpScram:
    """smtplib's auth() callback: initial response, then the two 334 rounds."""

    def __init__(self, user, password):
        self.scram = Scram(user, password)
        self.step = 0
        self.verified = False

    def __call__(self, challenge=None):
        self.step += 1
        if challenge is None:
            return self.scram.first()
        text = challenge.decode()
        if text.startswith("v="):
            self.scram.check(text)
            self.verified = True
            return ""
        return self.scram.final(text)


def smtp_auth(inst, user, password):
    """(code, text, verified, seconds) of one SCRAM AUTH on the main SMTP port."""
    s = smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=30)
    try:
        s.ehlo("client.example.test")
        cb = SmtpScram(user, password)
        t0 = time.monotonic()
        try:
            code, text = s.auth("SCRAM-SHA-256", cb, initial_response_ok=True)
        except smtplib.SMTPAuthenticationError as e:
            code, text = e.smtp_code, e.smtp_error
        return code, text, cb.verified, time.monotonic() - t0
    finally:
        s.close()


def passwd_hash(inst, password):
    return subprocess.run([str(inst.bin / "posthorn"), "-c", str(inst.etc), "passwd", "-p", password],
                          stdout=subprocess.PIPE, check=True, timeout=60).stdout.decode().strip()


@pytest.fixture
def scram_imap(posthorn_factory):
    """auth, a passdb (alice {PLAIN}, bob hashed), smtpd with AUTH, imapd; SCRAM on."""
    inst = imap_instance(posthorn_factory, start=False,
                         main_cf={"sasl_mechanisms": MECHS, "smtpd_sasl_auth_enable": "yes",
                                  "auth_failure_delay": "1s", "auth_failure_max_delay": "2s"})
    users = inst.etc / "users"
    users.write_text(IMAP_USERS + "bob@example.test:%s\n" % passwd_hash(inst, "bobpw"), encoding="utf-8")
    inst.start()
    return inst


def test_smtp_scram(scram_imap):
    inst = scram_imap
    with inst.smtp() as s:
        code, _ = s.ehlo("client.example.test")
        assert code == 250
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN", "SCRAM-SHA-256"]

    code, text, verified, _ = smtp_auth(inst, "alice@example.test", "alicepw")
    assert code == 235, text
    assert verified
    # Wrong password: 535 after auth's failure delay, logged by smtpd and auth.
    code, text, verified, took = smtp_auth(inst, "alice@example.test", "alicepW")
    assert code == 535, text
    assert not verified
    assert took >= 0.9, took
    inst.wait_for_log(r"\[127\.0\.0\.1\]: SASL SCRAM-SHA-256 authentication failed: "
                      r"SCRAM-SHA-256: client proof mismatch")
    inst.wait_for_log(r"unknown\[127\.0\.0\.1\]: authentication failed for user alice@example\.test "
                      r"\(service=smtp\): SCRAM-SHA-256: client proof mismatch")
    # A hashed password has no secret for SCRAM: refused, counted, logged.
    code, text, verified, _ = smtp_auth(inst, "bob@example.test", "bobpw")
    assert code == 535, text
    inst.wait_for_log(r"authentication failed for user bob@example\.test \(service=smtp\): "
                      r"no secret usable for SCRAM-SHA-256")
    # An unknown user likewise.
    code, text, _, _ = smtp_auth(inst, "nobody@example.test", "x")
    assert code == 535, text
    inst.wait_for_log(r"authentication failed for user nobody@example\.test \(service=smtp\): unknown user")
    # PLAIN is untouched: auth checks bob's hash as before.
    s = smtplib.SMTP("127.0.0.1", inst.smtp_port, timeout=30)
    s.ehlo("client.example.test")
    assert s.login("bob@example.test", "bobpw")[0] == 235
    s.quit()


class ImapScram:
    """imaplib's authenticate() callback (no SASL-IR: first an empty challenge)."""

    def __init__(self, user, password):
        self.scram = Scram(user, password)
        self.verified = False

    def __call__(self, data):
        text = data.decode()
        if text == "":
            return self.scram.first()
        if text.startswith("v="):
            self.scram.check(text)
            self.verified = True
            return b""
        return self.scram.final(text)


def test_imap_scram(scram_imap):
    inst = scram_imap
    c = imaplib.IMAP4("127.0.0.1", inst.imap_port, timeout=30)
    assert "AUTH=SCRAM-SHA-256" in c.capabilities, c.capabilities
    cb = ImapScram("alice@example.test", "alicepw")
    typ, data = c.authenticate("SCRAM-SHA-256", cb)
    assert typ == "OK", data
    assert cb.verified
    assert c.select("INBOX")[0] == "OK"
    c.logout()

    c = imaplib.IMAP4("127.0.0.1", inst.imap_port, timeout=30)
    cb = ImapScram("alice@example.test", "wrong")
    with pytest.raises(imaplib.IMAP4.error) as e:
        c.authenticate("SCRAM-SHA-256", cb)
    assert "AUTHENTICATIONFAILED" in str(e.value), e.value
    assert not cb.verified
    c.logout()
    inst.wait_for_log(r"unknown\[127\.0\.0\.1\]: authentication failed for user alice@example\.test "
                      r"\(service=imap\): SCRAM-SHA-256: client proof mismatch")


def test_pop3_scram(posthorn_factory):
    p = pop3_instance(posthorn_factory, main_cf={"sasl_mechanisms": MECHS})
    r = Raw(p.pop)
    r.line()
    assert r.cmd("AUTH") == b"+OK"
    assert r.multi() == [b"PLAIN", b"LOGIN", b"SCRAM-SHA-256"]
    sc = Scram(ALICE, ALICE_PW)
    reply = r.cmd("AUTH SCRAM-SHA-256 " + b64(sc.first()))
    assert reply.startswith(b"+ "), reply
    reply = r.cmd(b64(sc.final(base64.b64decode(reply[2:]).decode())))
    assert reply.startswith(b"+ "), reply
    sc.check(base64.b64decode(reply[2:]).decode())
    assert r.cmd("") == b"+OK Logged in."
    assert r.cmd("STAT") == b"+OK 0 0"
    assert r.cmd("QUIT") == b"+OK Logging out."
    r.close()
    p.wait_for_log(r"Login: user=<alice@example\.test>, method=SCRAM-SHA-256, ")

    # Wrong password, and bob (hashed: no secret for SCRAM).
    for user, password in ((ALICE, "not it"), (BOB, BOB_PW)):
        r = Raw(p.pop)
        r.line()
        sc = Scram(user, password)
        reply = r.cmd("AUTH SCRAM-SHA-256 " + b64(sc.first()))
        if user == ALICE:
            assert reply.startswith(b"+ "), reply
            reply = r.cmd(b64(sc.final(base64.b64decode(reply[2:]).decode())))
        assert reply == b"-ERR [AUTH] Authentication failed.", reply
        r.cmd("QUIT")
        r.close()
    p.wait_for_log(r"authentication failed for user alice@example\.test \(service=pop3\): "
                   r"SCRAM-SHA-256: client proof mismatch")
    p.wait_for_log(r"authentication failed for user bob@example\.test \(service=pop3\): no secret usable")


def test_scram_not_offered_by_default(posthorn_factory):
    pop = free_port()
    inst = imap_instance(posthorn_factory, main_cf={"smtpd_sasl_auth_enable": "yes"},
                         extra_master="127.0.0.1:%d inet n n n - - pop3d\n" % pop)
    with inst.smtp() as s:
        s.ehlo("client.example.test")
        assert s.esmtp_features["auth"].split() == ["PLAIN", "LOGIN"]
        code, text = s.docmd("AUTH", "SCRAM-SHA-256 " + b64(Scram("alice@example.test", "x").first()))
        assert code == 504, text
    c = imaplib.IMAP4("127.0.0.1", inst.imap_port, timeout=30)
    assert "AUTH=PLAIN" in c.capabilities
    assert not [cap for cap in c.capabilities if "SCRAM" in cap], c.capabilities
    with pytest.raises(imaplib.IMAP4.error):
        c.authenticate("SCRAM-SHA-256", ImapScram("alice@example.test", "alicepw"))
    c.logout()
    r = Raw(pop)
    r.line()
    assert r.cmd("AUTH") == b"+OK"
    assert r.multi() == [b"PLAIN", b"LOGIN"]
    assert r.cmd("AUTH SCRAM-SHA-256") == b"-ERR Unsupported authentication mechanism."
    r.cmd("QUIT")
    r.close()
    assert not inst.grep_log(r"passdb_report|malformed")


def test_auth_passdb_report(posthorn_factory):
    inst, _ = auth_instance(posthorn_factory, "alice@example.test:{PLAIN}right\n",
                            delay="1s", max_delay="2s")
    addr = "192.0.2.44"
    with AuthClient(inst) as c:
        reply, t = c.request(request="passdb_report", user="Alice@Example.Test", result="fail",
                             reason="SCRAM-SHA-256: client proof mismatch", client_addr=addr,
                             service="imap")
        assert reply == {"status": "ok"}, reply
        assert 0.9 <= t < 1.9, t
        # Counted like a wrong password: a right one now waits 1s too.
        reply, t = c.verify("alice@example.test", "right", addr=addr)
        assert reply["status"] == "ok"
        assert t >= 0.9, t
        reply, t = c.verify("alice@example.test", "right", addr=addr)
        assert t < 0.9, t
        # A reported success clears the counts (and waits for them first).
        c.request(request="passdb_report", user="alice@example.test", result="fail",
                  client_addr=addr, service="imap")
        reply, t = c.request(request="passdb_report", user="alice@example.test", result="ok",
                             client_addr=addr, service="imap")
        assert reply == {"status": "ok"}, reply
        assert t >= 0.9, t
        reply, t = c.verify("alice@example.test", "right", addr=addr)
        assert reply["status"] == "ok" and t < 0.9, (reply, t)
        for bad in ({"result": "maybe"}, {"result": "fail", "reason": "a\x01b"},
                    {"result": "fail", "service": "no spaces"}, {"result": "fail", "user": ""}):
            req = {"request": "passdb_report", "user": "alice@example.test", "client_addr": addr}
            req.update(bad)
            reply, t = c.request(**req)
            assert reply == {"status": "fail", "reason": "malformed request"}, (bad, reply)
            assert t < 0.9, t
    inst.wait_for_log(r"unknown\[192\.0\.2\.44\]: authentication failed for user alice@example\.test "
                      r"\(service=imap\): SCRAM-SHA-256: client proof mismatch")
    assert len(inst.grep_log(r"malformed passdb_report request")) == 4
