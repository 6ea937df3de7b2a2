"""
Policy delegation, greylisting and client limits end to end, through
smtpd: a policy server written here that checks every attribute smtpd
sends and answers REJECT / DUNNO / PREPEND; a policy server that is not
there (the default action, 451 4.3.5); greylisting with smtplib (450
4.2.0 first, accepted after greylist_delay with an X-Greylist header,
then at once); the anvil limits (connection count and rate: 421,
message and recipient rate: 450 4.7.1) and their exemption for
mynetworks.
"""

import socket
import threading
import time

import pytest

from posthorn import make_message, send_one

GREYLIST_MASTER_CF = "greylist   unix  -  -  n  -  -  greylist\n"
ANVIL_MASTER_CF = "anvil      unix  -  -  n  -  1  anvil\n"
SENDER = "sender@example.org"
RCPT = "alice@example.test"

POSTFIX_ATTRIBUTES = [
    "request", "protocol_state", "protocol_name", "helo_name", "queue_id", "sender",
    "recipient", "recipient_count", "client_address", "client_name", "reverse_client_name",
    "instance", "sasl_method", "sasl_username", "sasl_sender", "size", "ccert_subject",
    "ccert_issuer", "ccert_fingerprint", "encryption_protocol", "encryption_cipher",
    "encryption_keysize", "etrn_domain", "stress", "ccert_pubkey_fingerprint", "client_port",
    "policy_context", "server_address", "server_port", "compatibility_level", "mail_version",
]


# ---------------------------------------------------------------- a policy server


class PolicyServer:
    """
    A policy server on a loopback TCP port.  Every request is kept (as a
    list of (name, value) in order); the answer comes from answer(attrs).
    """

    def __init__(self, answer):
        self.answer = answer
        self.requests = []
        self.connections = 0
        self.errors = []
        self.lsock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.lsock.bind(("127.0.0.1", 0))
        self.lsock.listen(16)
        self.lsock.settimeout(0.2)
        self.port = self.lsock.getsockname()[1]
        self.stop = False
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def close(self):
        self.stop = True
        self.thread.join(5)
        self.lsock.close()

    def _run(self):
        while not self.stop:
            try:
                conn, _ = self.lsock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(30)
        buf = b""
        try:
            while not self.stop:
                while b"\n\n" not in buf:
                    chunk = conn.recv(65536)
                    if not chunk:
                        return
                    buf += chunk
                raw, buf = buf.split(b"\n\n", 1)
                attrs = []
                for line in raw.decode("utf-8").split("\n"):
                    if "=" not in line:
                        self.errors.append("line without '=': %r" % line)
                        continue
                    attrs.append(tuple(line.split("=", 1)))
                self.requests.append(attrs)
                answer = self.answer(dict(attrs))
                if isinstance(answer, bytes):
                    conn.sendall(answer)  # raw, for garbage
                else:
                    conn.sendall(("action=%s\n\n" % answer).encode("utf-8"))
        except OSError as e:
            self.errors.append(str(e))
        finally:
            conn.close()


@pytest.fixture
def policy_server():
    made = []

    def make(answer):
        s = PolicyServer(answer)
        made.append(s)
        return s

    yield make
    for s in made:
        s.close()


def policy_answer(attrs):
    if attrs.get("protocol_state") != "RCPT":
        return "DUNNO"
    rcpt = attrs.get("recipient", "")
    if rcpt.startswith("bob@"):
        return "REJECT no thanks from the policy server"
    if rcpt.startswith("team@"):
        return "450 4.7.1 come back later"
    if rcpt.startswith("info@"):
        return "PREPEND X-Policy: checked"
    return "DUNNO"


def test_external_policy_server_sees_every_attribute(posthorn_factory, policy_server):
    server = policy_server(policy_answer)
    inst = posthorn_factory(main_cf={
        "smtpd_recipient_restrictions": "check_policy_service inet:127.0.0.1:%d" % server.port,
        "smtpd_policy_service_policy_context": "it-test",
    })
    inst.start()
    s = inst.smtp()
    try:
        code, text = s.mail(SENDER, ["SIZE=1234"])
        assert code == 250, (code, text)
        code, text = s.rcpt("bob@example.test")
        assert code == 554, "REJECT from the policy server: got %d %r" % (code, text)
        assert text.decode().startswith("5.7.1 <bob@example.test>: Recipient address rejected: "
                                        "no thanks from the policy server"), text
        code, text = s.rcpt("team@example.test")
        assert code == 450 and text.startswith(b"4.7.1"), (code, text)
        code, text = s.rcpt(RCPT)
        assert code == 250, (code, text)
        code, text = s.rcpt("info@example.test")
        assert code == 250, (code, text)
        code, text = s.data(make_message("policy"))
        assert code == 250, (code, text)
    finally:
        s.quit()
    # alice and info@ (an alias of alice): one message, the header on it.
    msgs = inst.wait_for_maildir("alice", 1)
    for path, data in msgs:
        assert b"\nX-Policy: checked\n" in data or data.startswith(b"X-Policy: checked\n"), \
            "%s: PREPEND from the policy server missing" % path

    rcpt_requests = [dict(r) for r in server.requests if dict(r).get("protocol_state") == "RCPT"]
    assert len(rcpt_requests) == 4, server.requests
    assert not server.errors, server.errors
    for attrs in server.requests:
        names = [n for n, _ in attrs]
        assert names == POSTFIX_ATTRIBUTES, "attributes (in Postfix's order): %r" % names
    first = rcpt_requests[0]
    assert first["request"] == "smtpd_access_policy"
    assert first["protocol_name"] == "ESMTP"
    assert first["helo_name"] == "client.example.org"
    assert first["sender"] == SENDER
    assert first["recipient"] == "bob@example.test"
    assert first["recipient_count"] == "0"
    assert first["client_address"] == "127.0.0.1"
    assert first["client_port"].isdigit() and int(first["client_port"]) > 0
    assert first["server_address"] == "127.0.0.1"
    assert first["server_port"] == str(inst.smtp_port)
    assert first["size"] == "1234"
    assert first["instance"], "instance is empty"
    assert first["policy_context"] == "it-test"
    assert first["mail_version"] and first["compatibility_level"]
    assert first["encryption_keysize"] == "0"
    # One transaction: the same instance for every recipient.
    assert len({r["instance"] for r in rcpt_requests}) == 1
    # One kept connection for the whole session.
    assert server.connections == 1, "connections to the policy server: %d" % server.connections


@pytest.mark.instance(main_cf={
    "smtpd_recipient_restrictions": "check_policy_service unix:private/nothing",
    "smtpd_policy_service_try_limit": "1",
})
def test_policy_server_down_default_action(instance):
    s = instance.smtp()
    try:
        code, text = s.mail(SENDER)
        assert code == 250
        code, text = s.rcpt(RCPT)
        assert code == 451 and text.startswith(b"4.3.5"), \
            "expected 451 4.3.5 Server configuration problem, got %d %r" % (code, text)
        assert b"Server configuration problem" in text
    finally:
        s.quit()
    instance.wait_for_log(r"warning: problem talking to policy server unix:private/nothing: .*"
                          r"using smtpd_policy_service_default_action")


def test_policy_server_that_hangs(posthorn_factory, policy_server):
    def hang(attrs):
        time.sleep(5)
        return "OK"

    server = policy_server(hang)
    inst = posthorn_factory(main_cf={
        "smtpd_recipient_restrictions":
            "check_policy_service { inet:127.0.0.1:%d, timeout=1s, try_limit=1 }" % server.port,
    })
    inst.start()
    s = inst.smtp()
    try:
        assert s.mail(SENDER)[0] == 250
        t0 = time.monotonic()
        code, text = s.rcpt(RCPT)
        took = time.monotonic() - t0
        assert code == 451 and text.startswith(b"4.3.5"), (code, text)
        assert took < 4, "the timeout did not bound the wait: %.1fs" % took
    finally:
        s.quit()
    inst.wait_for_log(r"problem talking to policy server inet:127\.0\.0\.1:\d+: .*timeout")


def test_policy_server_speaking_garbage(posthorn_factory, policy_server):
    server = policy_server(lambda attrs: b"result=maybe\nhello\n\n")
    inst = posthorn_factory(main_cf={
        "smtpd_recipient_restrictions":
            "check_policy_service { inet:127.0.0.1:%d, retry_delay=1s }" % server.port,
    })
    inst.start()
    s = inst.smtp()
    try:
        assert s.mail(SENDER)[0] == 250
        code, text = s.rcpt(RCPT)
        assert code == 451 and text.startswith(b"4.3.5"), (code, text)
        # The session goes on.
        assert s.noop()[0] == 250
    finally:
        s.quit()
    # Two tries (smtpd_policy_service_try_limit), then the default action.
    assert len(server.requests) == 2, server.requests
    inst.wait_for_log(r"warning: problem talking to policy server inet:127\.0\.0\.1:\d+: "
                      r"malformed answer line")


# ---------------------------------------------------------------- greylisting


@pytest.mark.instance(main_cf={
    "smtpd_recipient_restrictions": "reject_unauth_destination, "
                                    "check_policy_service unix:private/greylist",
    "greylist_delay": "2s",
    "data_directory": "$queue_directory/../data",
}, master_cf_extra=GREYLIST_MASTER_CF)
def test_greylisting_over_smtp(instance):
    s = instance.smtp()
    try:
        assert s.mail(SENDER)[0] == 250
        code, text = s.rcpt(RCPT)
        assert code == 450, "first try: expected 450, got %d %r" % (code, text)
        assert text.decode().startswith("4.2.0 <%s>: Recipient address rejected: Greylisted for 2 seconds"
                                        % RCPT), text
        # An early retry is still refused.
        s.rset()
        assert s.mail(SENDER)[0] == 250
        code, text = s.rcpt(RCPT)
        assert code == 450 and b"Greylisted" in text, (code, text)
    finally:
        s.quit()
    time.sleep(2.2)
    sent = make_message("after greylisting")
    s = instance.smtp()
    try:
        code, text, qid = send_one(s, SENDER, [RCPT], sent)
        assert code == 250, (code, text)
    finally:
        s.quit()
    # The triplet now passes at once.
    s = instance.smtp()
    try:
        code, text, qid2 = send_one(s, SENDER, [RCPT], make_message("at once"))
        assert code == 250, (code, text)
    finally:
        s.quit()
    msgs = instance.wait_for_maildir("alice", 2)
    headers = {}
    for _, data in msgs:
        subject = [l for l in data.split(b"\n") if l.startswith(b"Subject: ")][0]
        headers[subject] = [l for l in data.split(b"\n") if l.startswith(b"X-Greylist:")]
    first = headers[b"Subject: after greylisting"]
    assert len(first) == 1 and first[0].startswith(
        b"X-Greylist: delayed ") and b"by posthorn-greylist at mx.example.test" in first[0], first
    assert headers[b"Subject: at once"] == [], "X-Greylist only on the first pass"
    instance.wait_for_log(r"NOQUEUE: reject: RCPT from .*: 450 4\.2\.0 <%s>: Recipient address "
                          r"rejected: Greylisted" % RCPT)


# ---------------------------------------------------------------- client limits


def limits_instance(**main_cf):
    return pytest.mark.instance(main_cf=main_cf, master_cf_extra=ANVIL_MASTER_CF)


@limits_instance(smtpd_client_connection_count_limit="2")
def test_connection_count_limit(outside_instance):
    c1 = outside_instance.raw()
    c2 = outside_instance.raw()
    try:
        c3 = outside_instance.raw(greet=False)
        code, texts = c3.reply()
        assert code == 421, "third connection: expected 421, got %r %r" % (code, texts)
        assert texts[0].startswith("4.7.0 ") and "too many connections from 127.0.0.1" in texts[0]
        assert c3.at_eof(), "the server must hang up after 421"
        c3.close()
        # One ends: the next client is welcome again.
        c1.cmd("QUIT")
        c1.close()
        deadline = time.monotonic() + 10
        while True:
            c4 = outside_instance.raw(greet=False)
            code, texts = c4.reply()
            if code == 220:
                c4.cmd("QUIT")
                c4.close()
                break
            c4.close()
            assert time.monotonic() < deadline, "still refused after a disconnect: %r" % texts
            time.sleep(0.1)
    finally:
        c2.close()
    outside_instance.wait_for_log(r"warning: Connection concurrency limit exceeded: 3 from "
                                  r"\S+\[127\.0\.0\.1\] for service \S+")


@limits_instance(smtpd_client_connection_rate_limit="2")
def test_connection_rate_limit(outside_instance):
    # The fixture's own start-up check was a connection of this minute
    # too: count until the limit bites.
    accepted = 0
    for i in range(3):
        with outside_instance.raw(greet=False) as c:
            code, texts = c.reply()
            if code == 421:
                assert "too many connections from 127.0.0.1" in texts[0], texts
                break
            assert code == 220, (code, texts)
            accepted += 1
            c.cmd("QUIT")
    else:
        pytest.fail("no 421 after 3 connections with a rate limit of 2")
    assert accepted <= 2
    outside_instance.wait_for_log(r"warning: Connection rate limit exceeded: 3 from")


@limits_instance(smtpd_client_message_rate_limit="2")
def test_message_rate_limit(outside_instance):
    s = outside_instance.smtp()
    try:
        for i in range(2):
            code, text, qid = send_one(s, SENDER, [RCPT], make_message("rate %d" % i))
            assert code == 250, (code, text)
        code, text = s.mail(SENDER)
        assert code == 450, "third MAIL FROM: expected 450, got %d %r" % (code, text)
        assert text == b"4.7.1 Error: too much mail from 127.0.0.1", text
    finally:
        s.quit()
    outside_instance.wait_for_maildir("alice", 2)
    outside_instance.wait_for_log(r"warning: Message delivery request rate limit exceeded: 3 from")


@limits_instance(smtpd_client_recipient_rate_limit="2")
def test_recipient_rate_limit(outside_instance):
    s = outside_instance.smtp()
    try:
        assert s.mail(SENDER)[0] == 250
        assert s.rcpt("alice@example.test")[0] == 250
        assert s.rcpt("bob@example.test")[0] == 250
        code, text = s.rcpt("info@example.test")
        assert code == 450 and text == b"4.7.1 Error: too many recipients from 127.0.0.1", (code, text)
    finally:
        s.quit()


@limits_instance(smtpd_client_connection_count_limit="1", smtpd_client_message_rate_limit="1")
def test_mynetworks_are_exempt(instance):
    c1 = instance.raw()
    c2 = instance.raw()
    try:
        s = instance.smtp()
        for i in range(3):
            code, text, qid = send_one(s, SENDER, [RCPT], make_message("exempt %d" % i))
            assert code == 250, (code, text)
        s.quit()
    finally:
        c1.close()
        c2.close()
