"""
TLS and SMTP AUTH in smtpd, with real clients: smtplib's starttls() and
login() on a submission service (STARTTLS required, AUTH only after TLS),
SMTP_SSL on a wrapper-mode (port 465 style) service, swaks --tls --auth.

Checked from the outside: what EHLO announces before and after TLS, 530
for MAIL before STARTTLS at level encrypt, 503 for AUTH before TLS, 535
5.7.8 for a wrong password, 501 for a cancelled AUTH, 454 when the auth
service is not there, relaying refused without AUTH (554 5.7.1 Relay
access denied) and allowed after it, the Received: header naming the TLS
version and cipher (and ESMTPSA), the client= log line with sasl_method
and sasl_username, commands pipelined behind STARTTLS thrown away, a
garbage handshake ending only its own session, a certificate that does not
load (STARTTLS not offered at level may, 421 at level encrypt), and
`posthorn tls new-cert` (a certificate a client verifies for its name; no
overwrite without --force).
"""

import base64
import os
import re
import socket
import smtplib
import ssl
import stat
import subprocess
import time

import pytest

from posthorn import HOSTNAME, RawSMTP, free_port, make_message, send_one
from tlscert import make_cert

USER = "sub@example.test"
PASSWORD = "tr0ub4dor&3"
USERS_FILE = "# submission accounts\n%s:{PLAIN}%s\n" % (USER, PASSWORD)
SENDER = USER
OUTSIDE = "someone@example.org"
RECEIVED_TLS_RE = re.compile(r"\(using TLSv1\.[23] with cipher [A-Z0-9_-]+ \(\d+/\d+ bits\)\)")


def client_context():
    """A TLS client context that accepts the test's self-signed certificate."""
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def tls_instance(factory, main_cf=None, auth_service=True, cert=True, sub_extra="", start=True,
                 mynetworks="127.0.0.0/8"):
    """
    An instance with a certificate, a passdb holding USER, the auth service,
    and two more smtpd services: submission (STARTTLS required, AUTH after
    TLS) on inst.sub_port and submissions (wrapper mode) on inst.subs_port.
    The main SMTP port offers STARTTLS (level may) and logs TLS sessions.
    """
    sub_port, subs_port = free_port(), free_port()
    master = ""
    if auth_service:
        master += "auth       unix  -  -  n  -    1  auth\n"
    master += (
        "127.0.0.1:%d inet  n  -  n  -  -  smtpd\n"
        "  -o syslog_name=posthorn/submission\n"
        "  -o smtpd_tls_security_level=encrypt\n"
        "  -o smtpd_sasl_auth_enable=yes\n"
        "  -o smtpd_tls_auth_only=yes\n"
        "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
        "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n%s"
        "127.0.0.1:%d inet  n  -  n  -  -  smtpd\n"
        "  -o syslog_name=posthorn/submissions\n"
        "  -o smtpd_tls_wrappermode=yes\n"
        "  -o smtpd_sasl_auth_enable=yes\n"
        "  -o smtpd_client_restrictions=permit_sasl_authenticated,reject\n"
        "  -o smtpd_relay_restrictions=permit_sasl_authenticated,reject\n"
        % (sub_port, sub_extra, subs_port))
    cf = {
        "smtpd_tls_security_level": "may",
        "smtpd_tls_loglevel": "1",
        "auth_failure_delay": "0",
        "auth_failure_max_delay": "0",
    }
    cf.update(main_cf or {})
    inst = factory(main_cf=cf, master_cf_extra=master, mynetworks=mynetworks)
    inst.sub_port, inst.subs_port = sub_port, subs_port
    if cert:
        cert_file, key_file = make_cert(inst.dir / "tls", HOSTNAME)
        if os.geteuid() == 0:
            os.chown(key_file, 0, inst.gid)
        inst.main_cf_extra.setdefault("smtpd_tls_cert_file", cert_file)
        inst.main_cf_extra.setdefault("smtpd_tls_key_file", key_file)
    users = inst.etc / "users"
    users.write_text(USERS_FILE, encoding="utf-8")
    os.chmod(users, 0o644)
    inst.main_cf_extra["passdb"] = "passwd-file:%s" % users
    inst.write_main_cf()
    if start:
        inst.start()
    return inst


def submission(inst, port=None):
    return smtplib.SMTP("127.0.0.1", port or inst.sub_port, local_hostname="client.example.org", timeout=30)


def features(smtp):
    code, _ = smtp.ehlo()
    assert code == 250
    return smtp.esmtp_features


class TLSRaw(RawSMTP):
    """RawSMTP that can switch its socket to TLS (after STARTTLS) or start in TLS."""

    def starttls(self):
        self.expect("STARTTLS", 220)
        assert self.buf == b"", "data after the 220 reply: %r" % self.buf
        self.sock = client_context().wrap_socket(self.sock)


def b64(text):
    return base64.b64encode(text.encode("utf-8")).decode("ascii")


def delivered_received(inst, user="alice@example.test", count=1):
    """The Received: header of the newest message in user's Maildir."""
    msgs = inst.wait_for_maildir(user, count)
    data = msgs[-1][1].decode("utf-8", "replace")
    head = data.split("\n\n", 1)[0]
    m = re.search(r"^Received: .*?(?=^\S)", head + "\nX:", re.M | re.S)
    assert m, "no Received header in %r" % head
    return m.group(0)


def first_reply(port, timeout=30):
    """The greeting of a new session, once the port accepts connections."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with RawSMTP(port, timeout=10) as c:
                return c.reply()
        except OSError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


# ---------------------------------------------------------------- submission


def test_submission_starttls_then_login(posthorn_factory):
    inst = tls_instance(posthorn_factory)
    with submission(inst) as s:
        f = features(s)
        assert "starttls" in f, f
        # smtpd_tls_auth_only: no AUTH before TLS, and AUTH is refused.
        assert "auth" not in f, f
        assert s.docmd("AUTH", "PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD)))[0] == 503
        # Level encrypt: nothing happens before STARTTLS.
        code, text = s.mail(SENDER)
        assert (code, text) == (530, b"5.7.0 Must issue a STARTTLS command first"), (code, text)
        code, text = s.starttls(context=client_context())
        assert (code, text) == (220, b"2.0.0 Ready to start TLS")
        f = features(s)
        assert "starttls" not in f, f
        assert f.get("auth", "").split() == ["PLAIN", "LOGIN"], f
        code, text = s.login(USER, PASSWORD)
        assert (code, text) == (235, b"2.7.0 Authentication successful")
        # A second AUTH in the same session is refused.
        assert s.docmd("AUTH", "PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD)))[0] == 503
        # Relaying is what AUTH is for; AUTH=<> on MAIL is accepted.
        assert s.mail(SENDER, ["AUTH=<>"])[0] == 250
        assert s.rcpt(OUTSIDE)[0] == 250
        assert s.rset()[0] == 250
        msg = make_message("submitted", sender=SENDER)
        code, text, qid = send_one(s, SENDER, ["alice@example.test"], msg)
        assert code == 250 and qid, (code, text)
    inst.wait_for_log(r"smtpd\[\d+\]: %s: client=\S+\[127\.0\.0\.1\], "
                      r"sasl_method=PLAIN, sasl_username=%s$" % (qid, re.escape(USER)))
    received = delivered_received(inst)
    assert RECEIVED_TLS_RE.search(received), received
    assert re.search(r"\bwith ESMTPSA id %s\b" % qid, received), received
    # smtpd_sasl_authenticated_header = no (the default): the login stays private.
    assert "Authenticated sender" not in received, received
    assert PASSWORD not in inst.maillog()


def test_submission_login_mechanism_and_bad_password(posthorn_factory):
    inst = tls_instance(posthorn_factory)
    with submission(inst) as s:
        s.starttls(context=client_context())
        s.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(USER, "wrong password")
        assert e.value.smtp_code == 535, e.value
        assert e.value.smtp_error.startswith(b"5.7.8 Error: authentication failed"), e.value
        # The session goes on; LOGIN (two 334 rounds) with the right password works.
        s.user, s.password = USER, PASSWORD
        code, text = s.auth("LOGIN", s.auth_login, initial_response_ok=False)
        assert code == 235, (code, text)
        # Relay restrictions of submission: permit_sasl_authenticated, reject.
        assert s.mail(SENDER)[0] == 250
        assert s.rcpt(OUTSIDE)[0] == 250
    inst.wait_for_log(r"warning: \S+\[127\.0\.0\.1\]: SASL PLAIN authentication failed")
    assert "wrong password" not in inst.maillog()


def test_submission_without_auth_cannot_relay(posthorn_factory):
    inst = tls_instance(posthorn_factory)
    with submission(inst) as s:
        s.starttls(context=client_context())
        s.ehlo()
        assert s.mail(SENDER)[0] == 250
        code, text = s.rcpt(OUTSIDE)
        assert code == 554 and text.startswith(b"5.7.1 "), (code, text)


def test_relay_on_port_25_needs_auth(posthorn_factory):
    # The client is outside mynetworks: only AUTH lets it relay.
    inst = tls_instance(posthorn_factory, mynetworks="10.9.9.0/24", main_cf={
        "smtpd_sasl_auth_enable": "yes",
        "smtpd_tls_auth_only": "yes",
        "smtpd_relay_restrictions": "permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
    })
    with inst.smtp() as s:
        assert "auth" not in s.esmtp_features
        assert s.mail(SENDER)[0] == 250
        code, text = s.rcpt(OUTSIDE)
        assert (code, text) == (554, ("5.7.1 <%s>: Relay access denied" % OUTSIDE).encode()), (code, text)
        assert s.rcpt("alice@example.test")[0] == 250
    inst.wait_for_log(r"NOQUEUE: reject: RCPT from \S+: 554 5\.7\.1 <%s>: Relay access denied" % OUTSIDE)
    with inst.smtp() as s:
        s.starttls(context=client_context())
        s.ehlo()
        s.login(USER, PASSWORD)
        assert s.mail(SENDER)[0] == 250
        assert s.rcpt(OUTSIDE)[0] == 250


def test_submissions_wrappermode(posthorn_factory):
    inst = tls_instance(posthorn_factory)
    with smtplib.SMTP_SSL("127.0.0.1", inst.subs_port, local_hostname="client.example.org",
                          timeout=30, context=client_context()) as s:
        f = features(s)
        assert "starttls" not in f, f
        assert "PLAIN" in f.get("auth", ""), f
        assert s.docmd("STARTTLS")[0] == 554  # TLS already active
        s.login(USER, PASSWORD)
        code, text, qid = send_one(s, SENDER, ["alice@example.test"], make_message("over 465", sender=SENDER))
        assert code == 250 and qid, (code, text)
    received = delivered_received(inst)
    assert RECEIVED_TLS_RE.search(received), received
    assert re.search(r"\bwith ESMTPSA id %s\b" % qid, received), received
    inst.wait_for_log(r"smtpd\[\d+\]: Anonymous TLS connection established from "
                      r"\S+\[127\.0\.0\.1\]: TLSv1\.3 with cipher \S+ \(\d+/\d+ bits\)")
    # A plaintext client on the TLS port gets nowhere, and the next one is fine.
    with RawSMTP(inst.subs_port) as raw:
        raw.send("EHLO plaintext.example\r\n")
        assert raw.at_eof(10), "plaintext session on the wrapper-mode port stayed open"
    inst.wait_for_log(r"smtpd\[\d+\]: SSL_accept error from \S+\[127\.0\.0\.1\]")
    with smtplib.SMTP_SSL("127.0.0.1", inst.subs_port, timeout=30, context=client_context()) as s:
        assert s.noop()[0] == 250


def test_swaks_tls_auth(posthorn_factory):
    inst = tls_instance(posthorn_factory)
    for port, tls_opt in ((inst.sub_port, "--tls"), (inst.subs_port, "--tls-on-connect")):
        r = subprocess.run(
            ["swaks", "--server", "127.0.0.1", "--port", str(port), tls_opt,
             "--auth", "PLAIN", "--auth-user", USER, "--auth-password", PASSWORD,
             "--from", SENDER, "--to", "alice@example.test", "--helo", "client.example.org",
             "--header", "Subject: swaks %s" % tls_opt, "--timeout", "30"],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
        out = r.stdout.decode("utf-8", "replace")
        assert r.returncode == 0, out
        assert "235 2.7.0 Authentication successful" in out, out
        assert re.search(r"250 2\.0\.0 Ok: queued as \w+", out), out
    msgs = inst.wait_for_maildir("alice@example.test", 2)
    subjects = sorted(re.search(rb"^Subject: (.*)$", m, re.M).group(1) for _, m in msgs)
    assert subjects == [b"swaks --tls", b"swaks --tls-on-connect"], subjects
    # Wrong password: swaks exits non-zero and reports the 535.
    r = subprocess.run(
        ["swaks", "--server", "127.0.0.1", "--port", str(inst.sub_port), "--tls",
         "--auth", "LOGIN", "--auth-user", USER, "--auth-password", "nope",
         "--from", SENDER, "--to", "alice@example.test", "--timeout", "30"],
        stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode != 0 and "535 5.7.8" in out, out


# ---------------------------------------------------------------- protocol details


def test_auth_exchange_details(posthorn_factory):
    inst = tls_instance(posthorn_factory)
    with TLSRaw(inst.sub_port) as c:
        c.greeting()
        c.expect("EHLO client.example.org", 250)
        c.starttls()
        texts = c.expect("EHLO client.example.org", 250)
        assert "AUTH PLAIN LOGIN" in texts, texts
        # "*" cancels: 501 5.7.0.
        code, texts = c.cmd("AUTH LOGIN")
        assert (code, texts) == (334, [b64("Username:")]), (code, texts)
        assert c.cmd("*") == (501, ["5.7.0 Authentication aborted"])
        # Mechanisms we do not offer, and bad syntax.
        assert c.cmd("AUTH CRAM-MD5")[0] == 504
        assert c.cmd("AUTH")[0] == 501
        assert c.cmd("AUTH PLAIN a b")[0] == 501
        # Malformed base64 as the answer to a challenge.
        assert c.cmd("AUTH PLAIN") == (334, [""])
        assert c.cmd("!!!not base64!!!")[0] == 501
        # "=" is an empty initial response: PLAIN cannot log in with it.
        assert c.cmd("AUTH PLAIN =")[0] == 535
        # PLAIN with the credentials as the answer to an empty challenge.
        assert c.cmd("AUTH PLAIN") == (334, [""])
        assert c.cmd(b64("\0%s\0%s" % (USER, PASSWORD))) == (235, ["2.7.0 Authentication successful"])
        assert c.cmd("AUTH LOGIN")[0] == 503
        c.expect("QUIT", 221)
    inst.wait_for_log(r"SASL LOGIN authentication aborted")


def test_auth_during_transaction_and_auth_param_without_auth(posthorn_factory):
    inst = tls_instance(posthorn_factory)
    with inst.raw() as c:
        c.expect("EHLO client.example.org", 250)
        # Port 25 here has no AUTH: AUTH= on MAIL is refused.
        assert c.cmd("MAIL FROM:<%s> AUTH=<>" % SENDER) == (503, ["5.5.4 Error: authentication disabled"])
        assert c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD))) == (
            503, ["5.5.1 Error: authentication not enabled"])
    with TLSRaw(inst.subs_port) as c:
        c.sock = client_context().wrap_socket(c.sock)
        c.greeting()
        c.expect("EHLO client.example.org", 250)
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        assert c.cmd("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD))) == (
            503, ["5.5.1 Error: MAIL transaction in progress"])
        c.expect("RSET", 250)
        c.expect("AUTH PLAIN " + b64("\0%s\0%s" % (USER, PASSWORD)), 235)


def test_auth_service_down_is_a_temporary_failure(posthorn_factory):
    inst = tls_instance(posthorn_factory, auth_service=False)
    with submission(inst) as s:
        s.starttls(context=client_context())
        s.ehlo()
        with pytest.raises(smtplib.SMTPAuthenticationError) as e:
            s.login(USER, PASSWORD)
        assert e.value.smtp_code == 454, e.value
        assert e.value.smtp_error.startswith(b"4.7.0 "), e.value


def test_pipelined_commands_after_starttls_are_discarded(posthorn_factory):
    inst = tls_instance(posthorn_factory)
    with TLSRaw(inst.smtp_port) as c:
        c.greeting()
        c.expect("EHLO client.example.org", 250)
        # The classic injection: plaintext commands behind STARTTLS.
        c.send("STARTTLS\r\nHELP\r\nMAIL FROM:<injected@example.org>\r\n")
        code, texts = c.reply()
        assert code == 220, (code, texts)
        c.sock = client_context().wrap_socket(c.sock)
        # Had the injected lines been kept, their replies would come first.
        assert c.cmd("NOOP") == (250, ["2.0.0 Ok"])
        # The session started over: no HELO, no transaction.
        c.expect("EHLO client.example.org", 250)
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("QUIT", 221)
    inst.wait_for_log(r"discarding \d+ bytes of plaintext input pipelined after STARTTLS")
    assert not inst.grep_log(r"injected@example\.org")


def test_garbage_handshake_ends_only_that_session(posthorn_factory):
    inst = tls_instance(posthorn_factory)
    with RawSMTP(inst.smtp_port) as c:
        c.greeting()
        c.expect("EHLO client.example.org", 250)
        c.expect("STARTTLS", 220)
        c.send(b"\x16\x03\x01\x00\x05hello, this is not a ClientHello\r\n" * 4)
        assert c.at_eof(10), "the server kept a session with a broken handshake"
    inst.wait_for_log(r"SSL_accept error from \S+\[127\.0\.0\.1\]: handshake failed")
    # STARTTLS syntax and state errors, then a good session.
    with inst.smtp() as s:
        assert s.docmd("STARTTLS", "now")[0] == 501
        s.starttls(context=client_context())
        s.ehlo()
        assert s.docmd("STARTTLS")[0] == 554
        code, text, qid = send_one(s, SENDER, ["alice@example.test"], make_message("after garbage"))
        assert code == 250, (code, text)
    received = delivered_received(inst)
    assert RECEIVED_TLS_RE.search(received), received
    assert re.search(r"\bwith ESMTPS id %s\b" % qid, received), received


def test_starttls_not_offered_without_tls(posthorn_factory):
    inst = tls_instance(posthorn_factory, main_cf={"smtpd_tls_security_level": "none"})
    with inst.smtp() as s:
        assert "starttls" not in s.esmtp_features
        assert s.docmd("STARTTLS")[0] == 502


@pytest.mark.parametrize("level", ["may", "encrypt"])
def test_certificate_that_does_not_load(posthorn_factory, level):
    inst = tls_instance(posthorn_factory, cert=False, main_cf={
        "smtpd_tls_security_level": level,
        "smtpd_tls_cert_file": "/nonexistent/cert.pem",
    }, start=False)
    inst.start(wait=False)
    if level == "may":
        inst.wait_smtp()
        with inst.smtp() as s:
            assert "starttls" not in s.esmtp_features
            assert s.docmd("STARTTLS")[0] == 454
            assert s.mail(SENDER)[0] == 250
        inst.wait_for_log(r"warning: TLS is unavailable: .*/nonexistent/cert\.pem.*; STARTTLS is not offered")
    else:
        # Every session is refused with 421, and smtpd keeps running.
        for _ in range(2):
            code, texts = first_reply(inst.smtp_port)
            assert code == 421 and "TLS is required" in texts[0], (code, texts)
        inst.wait_for_log(r"error: \S+\[127\.0\.0\.1\]: refusing the session: TLS is required but unavailable")


# ---------------------------------------------------------------- posthorn tls new-cert


def test_new_cert(posthorn_factory):
    inst = posthorn_factory()
    cert = inst.dir / "tls" / "server.pem"
    key = inst.dir / "tls" / "server.key"
    inst.main_cf_extra.update({"smtpd_tls_cert_file": str(cert), "smtpd_tls_key_file": str(key),
                               "smtpd_tls_security_level": "may"})
    inst.write_main_cf()
    r = inst.posthorn("tls", "new-cert", "--cn", HOSTNAME, "--days", "30")
    assert r.returncode == 0, r.stderr_text
    assert "self-signed for %s" % HOSTNAME in r.stdout_text, r.stdout_text
    mode = stat.S_IMODE(os.stat(key).st_mode)
    assert mode in (0o600, 0o640), oct(mode)
    assert "PRIVATE KEY" in key.read_text() and "PRIVATE KEY" not in cert.read_text()
    first = cert.read_bytes()
    # No overwrite without --force.
    r = inst.posthorn("tls", "new-cert")
    assert r.returncode == 1 and "--force" in r.stderr_text, (r.returncode, r.stderr_text)
    assert cert.read_bytes() == first
    r = inst.posthorn("tls", "new-cert", "--force", "--type", "ecdsa")
    assert r.returncode == 0, r.stderr_text
    assert cert.read_bytes() != first
    assert inst.posthorn("tls", "new-cert", "--days", "0").returncode == 2
    # smtpd loads it, and a client that checks the name against it is happy.
    inst.start()
    ctx = ssl.create_default_context(cafile=str(cert))
    with socket.create_connection(("127.0.0.1", inst.smtp_port), timeout=30) as sock:
        f = sock.makefile("rb")
        assert f.readline().startswith(b"220 ")
        sock.sendall(b"EHLO client.example.org\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        sock.sendall(b"STARTTLS\r\n")
        assert f.readline().startswith(b"220 2.0.0")
        with ctx.wrap_socket(sock, server_hostname=HOSTNAME) as tls:
            assert tls.version() in ("TLSv1.3", "TLSv1.2")
            tls.sendall(b"QUIT\r\n")
            assert tls.recv(100).startswith(b"221")
