"""
check_policy_service and the anvil client limits, end to end: smtpd
speaking Postfix's policy delegation protocol to a small policy server
written here (it checks every attribute it receives, at every stage),
the answer used like an access-table result, the default action when
the server is down, hangs or answers garbage, per-service settings in
"{ ... }", posthorn's own greylist service behind check_policy_service;
and the anvil limits (connection count and rate at connect, message rate
at MAIL, recipient rate at RCPT) with their exemption for mynetworks and
their absence (a warning, no limit) when anvil is not running.
"""

import re
import socket
import threading
import time

from posthorn import make_message
from restrict_util import ALICE, BOB, SENDER, client, make, rcpt_reply, send

ANVIL = "anvil      unix  -  -  n  -  1  anvil\n"
GREYLIST = "greylist   unix  -  -  n  -  -  greylist\n"


class PolicyServer:
    """
    A policy server on 127.0.0.1.  answer(request) gives the action for
    each request (a dict); mode "ok", "hang" (never answer) or "garbage".
    Every request is recorded.
    """

    def __init__(self, answer=lambda req: "DUNNO"):
        self.answer = answer
        self.mode = "ok"
        self.requests = []
        self.lock = threading.Lock()
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.endpoint = "inet:127.0.0.1:%d" % self.port
        self.stop_ev = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self):
        while not self.stop_ev.is_set():
            try:
                conn, _ = self.sock.accept()
            except socket.timeout:
                continue
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn):
        conn.settimeout(30)
        buf = b""
        try:
            while not self.stop_ev.is_set():
                while b"\n\n" not in buf:
                    chunk = conn.recv(4096)
                    if not chunk:
                        return
                    buf += chunk
                raw, buf = buf.split(b"\n\n", 1)
                req = {}
                for line in raw.decode("utf-8").split("\n"):
                    name, eq, value = line.partition("=")
                    assert eq == "=", "request line without '=': %r" % line
                    assert name not in req, "attribute %s twice" % name
                    req[name] = value
                with self.lock:
                    self.requests.append(req)
                if self.mode == "hang":
                    time.sleep(30)
                    return
                if self.mode == "garbage":
                    conn.sendall(b"this is not a policy answer\n\n")
                    continue
                conn.sendall(("action=%s\n\n" % self.answer(req)).encode("utf-8"))
        except (OSError, AssertionError):
            return
        finally:
            conn.close()

    def got(self):
        with self.lock:
            return list(self.requests)

    def close(self):
        self.stop_ev.set()
        self.sock.close()


def test_policy_request_attributes(posthorn_factory):
    pol = PolicyServer()
    try:
        cfg = {"smtpd_recipient_restrictions": "check_policy_service " + pol.endpoint,
               "smtpd_data_restrictions": "check_policy_service " + pol.endpoint,
               "smtpd_end_of_data_restrictions": "check_policy_service " + pol.endpoint,
               "smtpd_policy_service_policy_context": "ctx-test"}
        inst = make(posthorn_factory, cfg)
        msg = make_message("policy")
        with client(inst) as c:
            c.want("MAIL FROM:<%s> SIZE=%d" % (SENDER, len(msg)), 250)
            c.want("RCPT TO:<%s>" % ALICE, 250)
            c.data(msg)
            c.want("MAIL FROM:<>", 250)
            c.want("RCPT TO:<%s>" % ALICE, 250)
            c.want("RCPT TO:<%s>" % BOB, 250)
            c.want("RSET", 250)
        reqs = pol.got()
        states = [r["protocol_state"] for r in reqs]
        assert states == ["RCPT", "DATA", "END-OF-MESSAGE", "RCPT", "RCPT"], states
        rcpt, data, eom, second, third = reqs
        for r in reqs:
            assert r["request"] == "smtpd_access_policy"
            assert r["protocol_name"] == "ESMTP"
            assert r["client_address"] == "127.0.0.1"
            assert r["client_name"] == "unknown"
            assert r["reverse_client_name"] == "unknown"
            assert r["helo_name"] == "client.example.org"
            assert re.fullmatch(r"\d+", r["client_port"]), r
            assert r["server_address"] == "127.0.0.1"
            assert r["server_port"] == str(inst.smtp_port)
            assert r["policy_context"] == "ctx-test"
            assert r["sasl_username"] == "" and r["sasl_method"] == ""
            assert r["instance"]
        assert rcpt["sender"] == SENDER and rcpt["recipient"] == ALICE
        assert rcpt["recipient_count"] == "0"
        assert rcpt["size"] == str(len(msg))
        assert data["recipient"] == ALICE and data["recipient_count"] == "1"
        assert eom["recipient_count"] == "1"
        assert int(eom["size"]) > 0
        # One instance per transaction.
        assert rcpt["instance"] == data["instance"] == eom["instance"]
        assert second["instance"] == third["instance"] != rcpt["instance"]
        assert second["sender"] == "" and third["recipient"] == BOB
    finally:
        pol.close()


def test_policy_at_connect_and_helo(posthorn_factory):
    pol = PolicyServer()
    try:
        inst = make(posthorn_factory, {
            "smtpd_delay_reject": "no",
            "smtpd_client_restrictions": "check_policy_service " + pol.endpoint,
            "smtpd_helo_restrictions": "check_policy_service " + pol.endpoint,
            "smtpd_sender_restrictions": "check_policy_service " + pol.endpoint})
        with client(inst) as c:
            c.want("HELO plain.example.org", 250)
            c.want("MAIL FROM:<%s>" % SENDER, 250)
        # (The start-up's own probe connection made a CONNECT request too.)
        reqs = pol.got()[-4:]
        assert [r["protocol_state"] for r in reqs] == ["CONNECT", "EHLO", "HELO", "MAIL"], reqs
        assert reqs[0]["helo_name"] == "" and reqs[0]["sender"] == ""
        assert reqs[2]["protocol_name"] == "SMTP"
        assert reqs[3]["sender"] == SENDER
    finally:
        pol.close()


def test_policy_actions(posthorn_factory):
    answers = {ALICE: "REJECT not welcome", BOB: "DEFER_IF_PERMIT 4.2.0 Greylisted",
               "info@example.test": "PREPEND X-Policy: seen"}
    pol = PolicyServer(lambda req: answers.get(req["recipient"], "DUNNO"))
    try:
        inst = make(posthorn_factory, {
            "smtpd_recipient_restrictions": "check_policy_service " + pol.endpoint})
        assert rcpt_reply(inst) == \
            "554 5.7.1 <alice@example.test>: Recipient address rejected: not welcome"
        assert rcpt_reply(inst, rcpt=BOB) == \
            "450 4.2.0 <bob@example.test>: Recipient address rejected: Greylisted"
        send(inst, rcpts=("info@example.test",))
        data = inst.wait_for_maildir(ALICE, 1)[0][1]
        assert data.startswith(b"Return-Path") and b"\nX-Policy: seen\nReceived: " in data
        inst.wait_for_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 "
                          r"<alice@example\.test>: Recipient address rejected: not welcome")
    finally:
        pol.close()


def _dead_endpoint():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return "inet:127.0.0.1:%d" % port


def test_policy_server_down(posthorn_factory):
    ep = _dead_endpoint()
    fast = {"smtpd_policy_service_try_limit": "1", "smtpd_policy_service_timeout": "2s"}
    cf = dict(fast, smtpd_recipient_restrictions="check_policy_service " + ep)
    inst = make(posthorn_factory, cf)
    assert rcpt_reply(inst) == \
        "451 4.3.5 <alice@example.test>: Recipient address rejected: Server configuration problem"
    inst.wait_for_log(r"warning: problem talking to policy server %s" % re.escape(ep))
    # smtpd_policy_service_default_action, and the per-service override.
    inst2 = make(posthorn_factory, dict(fast, smtpd_policy_service_default_action="DUNNO",
                                        smtpd_recipient_restrictions="check_policy_service " + ep))
    assert rcpt_reply(inst2).startswith("250 ")
    inst3 = make(posthorn_factory, dict(
        fast, smtpd_recipient_restrictions="check_policy_service { %s, default_action=DUNNO }" % ep))
    assert rcpt_reply(inst3).startswith("250 ")


def test_policy_server_hangs_or_talks_garbage(posthorn_factory):
    pol = PolicyServer()
    try:
        inst = make(posthorn_factory, {
            "smtpd_policy_service_try_limit": "1", "smtpd_policy_service_timeout": "2s",
            "smtpd_recipient_restrictions": "check_policy_service " + pol.endpoint})
        pol.mode = "hang"
        t0 = time.monotonic()
        assert rcpt_reply(inst).startswith("451 4.3.5 ")
        assert time.monotonic() - t0 < 15
        pol.mode = "garbage"
        assert rcpt_reply(inst).startswith("451 4.3.5 ")
        pol.mode = "ok"
        assert rcpt_reply(inst).startswith("250 ")
        assert not inst.grep_log(r"panic|fatal")
    finally:
        pol.close()


def test_greylist_service_behind_check_policy_service(posthorn_factory):
    inst = make(posthorn_factory, {
        "greylist_delay": "2s",
        "data_directory": "$queue_directory/../data",
        "smtpd_recipient_restrictions": "check_policy_service unix:private/greylist"},
        master_cf_extra=GREYLIST)
    first = rcpt_reply(inst)
    assert re.fullmatch(r"450 4\.2\.0 <alice@example\.test>: Recipient address rejected: "
                        r"Greylisted for \d+ seconds", first), first
    time.sleep(2.5)
    send(inst)
    data = inst.wait_for_maildir(ALICE, 1)[0][1]
    assert b"\nX-Greylist: delayed " in data


# ---------------------------------------------------------------- anvil


def test_connection_count_limit(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_connection_count_limit": "1",
                                   "smtpd_client_event_limit_exceptions": ""},
                master_cf_extra=ANVIL)
    with client(inst) as first:
        with client(inst, greet=False) as second:
            second.greet(421, "421 4.7.0 mx.example.test Error: too many connections "
                              "from 127.0.0.1")
            assert second.at_eof()
        first.want("MAIL FROM:<%s>" % SENDER, 250)
    inst.wait_for_log(r"warning: Connection concurrency limit exceeded: 2 from "
                      r"unknown\[127\.0\.0\.1\] for service")
    # Once the first session is over, a new one is welcome again.
    deadline = time.monotonic() + 10
    while True:
        with client(inst, greet=False) as c:
            code, _ = c.reply()
            if code == 220 or time.monotonic() > deadline:
                break
        time.sleep(0.2)
    assert code == 220


def test_connection_rate_limit(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_connection_rate_limit": "2",
                                   "anvil_rate_time_unit": "60s",
                                   "smtpd_client_event_limit_exceptions": ""},
                master_cf_extra=ANVIL, start="nowait")
    codes = []
    for _ in range(3):
        with client(inst, greet=False) as c:
            codes.append(c.reply()[0])
    # wait_greeting() in make() used one connection already.
    assert codes[-1] == 421 and 220 in codes, codes
    inst.wait_for_log(r"warning: Connection rate limit exceeded: 3 from unknown\[127\.0\.0\.1\]")


def test_message_and_recipient_rate_limits(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_message_rate_limit": "1",
                                   "smtpd_client_recipient_rate_limit": "2",
                                   "smtpd_client_event_limit_exceptions": ""},
                master_cf_extra=ANVIL)
    with client(inst) as c:
        c.want("MAIL FROM:<%s>" % SENDER, 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)
        c.want("RCPT TO:<%s>" % BOB, 250)
        c.want("RCPT TO:<info@example.test>", 450,
               "450 4.7.1 Error: too many recipients from 127.0.0.1")
        c.want("RSET", 250)
        c.want("MAIL FROM:<%s>" % SENDER, 450, "450 4.7.1 Error: too much mail from 127.0.0.1")
    inst.wait_for_log(r"warning: Message delivery request rate limit exceeded: 2 from "
                      r"unknown\[127\.0\.0\.1\]")
    inst.wait_for_log(r"warning: Recipient address rate limit exceeded: 3 from "
                      r"unknown\[127\.0\.0\.1\]")


def test_limits_exempt_mynetworks(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_message_rate_limit": "1",
                                   "smtpd_client_connection_count_limit": "1"},
                mynetworks="127.0.0.0/8", master_cf_extra=ANVIL)
    with client(inst) as first, client(inst) as second:
        for c in (first, second):
            for _ in range(3):
                c.want("MAIL FROM:<%s>" % SENDER, 250)
                c.want("RSET", 250)


def test_anvil_not_running_means_no_limit(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_connection_count_limit": "1",
                                   "smtpd_client_message_rate_limit": "1",
                                   "smtpd_client_event_limit_exceptions": ""})
    with client(inst) as first, client(inst) as second:
        for c in (first, second):
            for _ in range(2):
                c.want("MAIL FROM:<%s>" % SENDER, 250)
                c.want("RSET", 250)
    inst.wait_for_log(r"warning: .*anvil.*client limits are not enforced")
