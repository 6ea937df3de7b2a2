"""
Relaying onward, end to end (smtpd -> cleanup -> qmgr -> smtp/lmtp ->
a fake remote on 127.0.0.1), for the routes and conditions that
test_relay.py does not cover:

  - MX lookup through qmgr: the recipient's domain is the next hop, its
    MX records come from fakedns.FakeDNS on loopback
    (dns_server_addresses) and point at a name whose A record is
    127.0.0.1; the port comes from smtp_tcp_port (Postfix's parameter for
    next hops written without one) or from a transport_maps next hop
    "smtp:domain:port" (MX lookup, another port);
  - smtp_fallback_relay when the relayhost is down;
  - STARTTLS: opportunistic by default, and a transport that requires it
    (-o smtp_tls_security_level=encrypt) deferring mail for a server
    without it;
  - LMTP to a mailbox server over TCP;
  - 8-bit MIME to a server without 8BITMIME (converted to
    quoted-printable), and SMTPUTF8 mail for a server without SMTPUTF8
    (returned with 5.6.7);
  - `posthorn super -h/-H` and `-d` while relay deliveries run;
  - <transport>_destination_recipient_limit splitting a message.

The remote is fakesmtp.Remote; nothing here needs smtp-sink.  Senders of
mail that bounces are virtual mailbox users of the fixture, so their
notifications can be read from a Maildir.
"""

import email
import re
import socket
import ssl
import subprocess
import threading
import time

import pytest

from fakedns import FakeDNS
from fakesmtp import Remote
from posthorn import make_message, send_one
from tlscert import make_cert

ALICE = "alice@example.test"
AGENT = {
    "smtp_tls_security_level": "none",
    "smtp_connect_timeout": "5s",
    "smtp_helo_timeout": "10s",
}


@pytest.fixture
def remotes():
    made = []

    def make(port=0):
        r = Remote(port)
        made.append(r)
        return r

    yield make
    for r in made:
        r.stop()


@pytest.fixture
def dns():
    with FakeDNS() as d:
        yield d


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def submit(inst, rcpts, subject, sender=ALICE, mail_options=(), data=None):
    if data is None:
        data = make_message(subject, sender=sender, to=", ".join(rcpts))
    with inst.smtp() as s:
        code, text, qid = send_one(s, sender, rcpts, data, mail_options)
    assert code == 250 and qid, "end of DATA: %d %r" % (code, text)
    return qid


def wait_until(pred, what, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("timed out after %ss waiting for %s" % (timeout, what))
        time.sleep(0.05)


def subjects(remote):
    out = []
    for _mail, _rcpts, body in remote.received():
        m = re.search(rb"^Subject: (.*)$", body, re.M)
        out.append(m.group(1).decode() if m else None)
    return out


def notification(inst, user=ALICE):
    """The one delivery status notification in the user's Maildir."""
    def found():
        got = [d for _, d in inst.messages(user) if b"report-type=delivery-status" in d]
        return got or None
    [data] = wait_until(found, "a notification in %s's Maildir" % user)
    return data


def super_(inst, *args):
    cmd = [str(inst.bin / "posthorn"), "-c", str(inst.etc), "super"] + list(args)
    r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    assert r.returncode == 0, r.stderr
    return r.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------- MX lookup


def test_delivery_through_mx_lookup(posthorn_factory, remotes, dns):
    """Default routing: next hop = the recipient's domain, MX lookup."""
    first, second = remotes(), remotes()
    dns.add_mx("remote.test", 10, "mx.remote.test")
    dns.add_mx("remote.test", 20, "backup.remote.test")
    dns.add_a("mx.remote.test", "127.0.0.1")
    dns.add_a("backup.remote.test", "127.0.0.2")
    dns.add_mx("other.test", 10, "mx.other.test")
    dns.add_a("mx.other.test", "127.0.0.1")
    inst = posthorn_factory(main_cf=dict(
        AGENT, dns_server_addresses=dns.server, smtp_tcp_port=str(first.port),
        # MX lookup on another port: "domain:port" without brackets.
        transport_maps="inline:{other.test=smtp:other.test:%d}" % second.port))
    inst.start()
    qid = submit(inst, ["bob@remote.test", "carol@other.test", "dave@nosuch.test"], "via-mx")
    wait_until(lambda: subjects(first) == ["via-mx"] and subjects(second) == ["via-mx"],
               "both mail exchangers to receive the message")
    assert first.received()[0][1] == ["bob@remote.test"]
    assert second.received()[0][1] == ["carol@other.test"]
    inst.wait_for_log(r"%s: to=<bob@remote\.test>, relay=mx\.remote\.test\[127\.0\.0\.1\]:%d, "
                      r".*status=sent \(250 2\.0\.0 Ok" % (qid, first.port))
    inst.wait_for_log(r"%s: to=<carol@other\.test>, relay=mx\.other\.test\[127\.0\.0\.1\]:%d, "
                      r".*status=sent" % (qid, second.port))
    assert dns.asked("remote.test", "MX") and dns.asked("other.test", "MX")
    # A domain that does not exist bounces, with the resolver's words.
    inst.wait_for_log(r"%s: to=<dave@nosuch\.test>, relay=none, .*dsn=5\.4\.4, status=bounced "
                      r"\(Host or domain name not found\. Name service error for name=nosuch\.test "
                      r"type=MX: Host not found\)" % qid)
    dsn = notification(inst)
    assert b"Final-Recipient: rfc822; dave@nosuch.test" in dsn
    assert b"bob@remote.test" not in dsn.split(b"message/delivery-status")[1].split(b"message/rfc822")[0]
    inst.wait_queue_empty()


def test_fallback_relay_when_the_relayhost_is_down(posthorn_factory, remotes):
    fallback = remotes()
    dead = free_port()
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost="[127.0.0.1]:%d" % dead,
                                         smtp_fallback_relay="[127.0.0.1]:%d" % fallback.port))
    inst.start()
    qid = submit(inst, ["bob@remote.test"], "via-fallback")
    wait_until(lambda: subjects(fallback) == ["via-fallback"], "the fallback relay to receive the message")
    inst.wait_for_log(r"%s: connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: Connection refused" % (qid, dead))
    inst.wait_for_log(r"%s: to=<bob@remote\.test>, relay=%s, .*status=sent" % (qid, re.escape(fallback.relay())))
    inst.wait_queue_empty()


def test_destination_recipient_limit_splits_a_message(posthorn_factory, remotes):
    remote = remotes()
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop(),
                                         smtp_destination_recipient_limit="2"))
    inst.start()
    rcpts = ["r%d@remote.test" % i for i in range(5)]
    qid = submit(inst, rcpts, "split")
    wait_until(lambda: sum(len(r) for _, r, _ in remote.received()) == 5, "all five recipients at the remote")
    inst.wait_queue_empty()
    # At most two recipients per delivery: three transactions, nobody twice.
    groups = [r for _, r, _ in remote.received()]
    assert sorted(len(g) for g in groups) == [1, 2, 2], groups
    assert sorted(a for g in groups for a in g) == sorted(rcpts)
    assert len(inst.grep_log(r"%s: to=<r\d@remote\.test>, .*status=sent" % qid)) == 5


# ---------------------------------------------------------------- TLS


def test_starttls_is_opportunistic_by_default_and_encrypt_defers(posthorn_factory, remotes, tmp_path):
    cert, key = make_cert(tmp_path / "tls", "remote.test")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    secure, plain = remotes(), remotes()
    secure.tls_context = ctx
    maps = "inline:{tls.test=smtp:%s, plain.test=smtp:%s, must.test=musttls:%s}" % (
        secure.hop(), plain.hop(), plain.hop())
    cf = dict(AGENT, transport_maps=maps, smtp_tls_loglevel="1")
    del cf["smtp_tls_security_level"]          # Postfix's default: may
    inst = posthorn_factory(main_cf=cf, master_cf_extra=(
        "musttls    unix  -  -  n  -    -  smtp -o smtp_tls_security_level=encrypt\n"))
    inst.start()
    q1 = submit(inst, ["a@tls.test"], "over-tls")
    q2 = submit(inst, ["b@plain.test"], "in-plaintext")
    q3 = submit(inst, ["c@must.test"], "needs-tls")
    wait_until(lambda: subjects(secure) == ["over-tls"] and subjects(plain) == ["in-plaintext"],
               "both remotes to receive their message")
    assert secure.details()[0]["tls"] is True
    assert plain.details()[0]["tls"] is False
    inst.wait_for_log(r"Untrusted TLS connection established to 127\.0\.0\.1\[127\.0\.0\.1\]:%d" % secure.port)
    inst.wait_for_log(r"%s: to=<a@tls\.test>, .*status=sent" % q1)
    inst.wait_for_log(r"%s: to=<b@plain\.test>, .*status=sent" % q2)
    # encrypt: the server does not offer STARTTLS, so nothing is sent.
    inst.wait_for_log(r"%s: to=<c@must\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, .*dsn=4\.7\.4, "
                      r"status=deferred \(TLS is required, but was not offered by host "
                      r"127\.0\.0\.1\[127\.0\.0\.1\]\)" % (q3, plain.port))

    def listed():
        return [e for e in inst.queue_json() if e["queue_id"] == q3 and e["queue_name"] == "deferred"]
    [entry] = wait_until(listed, "queue -j to list %s as deferred" % q3)
    assert "TLS is required" in entry["recipients"][0]["delay_reason"]
    assert subjects(plain) == ["in-plaintext"]


# ---------------------------------------------------------------- LMTP


def test_lmtp_to_a_mailbox_server(posthorn_factory, remotes):
    server = remotes()
    server.lmtp = True
    server.rcpt_replies["nobody@mbox.test"] = "550 5.1.1 <nobody@mbox.test> User unknown"
    inst = posthorn_factory(main_cf=dict(AGENT, transport_maps="inline:{mbox.test=lmtp:%s}" % server.hop()))
    inst.start()
    qid = submit(inst, ["one@mbox.test", "two@mbox.test", "nobody@mbox.test"], "over-lmtp")
    wait_until(lambda: subjects(server) == ["over-lmtp"], "the LMTP server to receive the message")
    assert server.received()[0][1] == ["one@mbox.test", "two@mbox.test"]
    for r in ("one", "two"):
        inst.wait_for_log(r"%s: to=<%s@mbox\.test>, relay=%s, .*status=sent" % (qid, r, re.escape(server.relay())))
    inst.wait_for_log(r"%s: to=<nobody@mbox\.test>, .*dsn=5\.1\.1, status=bounced" % qid)
    inst.wait_queue_empty()


# ---------------------------------------------------------------- 8BITMIME, SMTPUTF8


def test_8bit_mime_is_downgraded_for_a_7bit_server(posthorn_factory, remotes):
    remote = remotes()
    remote.ehlo = ["PIPELINING", "ENHANCEDSTATUSCODES"]
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop()))
    inst.start()
    data = make_message("eight-bit", sender=ALICE, to="bob@remote.test",
                        extra_headers=["MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8",
                                       "Content-Transfer-Encoding: 8bit"],
                        body_lines=["Grüße aus Köln, = 100 %", "zweite Zeile"])
    submit(inst, ["bob@remote.test"], "eight-bit", mail_options=["BODY=8BITMIME"], data=data)
    wait_until(lambda: subjects(remote) == ["eight-bit"], "the remote to receive the message")
    mail, _, body = remote.received()[0]
    assert "BODY=" not in mail
    assert all(c < 0x80 for c in body), body
    msg = email.message_from_bytes(body)
    assert msg["Content-Transfer-Encoding"] == "quoted-printable"
    assert msg.get_payload(decode=True).decode("utf-8") == "Grüße aus Köln, = 100 %\nzweite Zeile\n"


def test_smtputf8_mail_for_a_server_without_smtputf8_bounces(posthorn_factory, remotes):
    remote = remotes()
    remote.ehlo = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES"]
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop()))
    inst.start()
    data = make_message("Grüße", sender=ALICE, to="bob@remote.test")
    qid = submit(inst, ["bob@remote.test"], None, mail_options=["SMTPUTF8", "BODY=8BITMIME"], data=data)
    inst.wait_for_log(r"%s: to=<bob@remote\.test>, relay=%s, .*dsn=5\.6\.7, status=bounced \(SMTPUTF8 is "
                      r"required, but was not offered by host 127\.0\.0\.1\[127\.0\.0\.1\]\)"
                      % (qid, re.escape(remote.relay())))
    dsn = notification(inst).replace(b"\n    ", b" ")
    assert b"Status: 5.6.7" in dsn
    assert b"SMTPUTF8 is required, but was not offered by host 127.0.0.1[127.0.0.1]" in dsn
    assert remote.received() == []
    inst.wait_queue_empty()


# ---------------------------------------------------------------- super while deliveries run


def test_super_hold_release_and_delete_while_relaying(posthorn_factory, remotes):
    """Hold, release and delete everything over and over while qmgr relays
    (and retries) to a slow remote: no message is delivered twice, every
    message neither deleted nor held arrives, and qmgr goes on working."""
    remote = remotes()
    remote.delay = 0.02
    remote.mail_reply = "451 4.3.0 not yet"
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop()))
    inst.start()
    n = 30
    stop = threading.Event()
    summaries = []
    errors = []

    def churn(ops):
        try:
            while not stop.is_set():
                for op in ops:
                    summaries.append(super_(inst, op, "ALL"))
                    time.sleep(0.03)
        except Exception as e:  # reported below, not lost in the thread
            errors.append(e)

    def run_churn(ops, prefix, seen=None):
        stop.clear()
        t = threading.Thread(target=churn, args=(ops,))
        t.start()
        try:
            with inst.smtp() as s:
                for i in range(n):
                    rcpt = "%s%d@remote.test" % (prefix, i)
                    code, text, _ = send_one(s, ALICE, [rcpt], make_message("%s-%d" % (prefix, i), sender=ALICE,
                                                                            to=rcpt))
                    assert code == 250, text
            # The remote recovers while the tool is still at work, once
            # the tool has done its thing at least once (on a slow
            # machine every message may still be in active/ for a while).
            time.sleep(0.5)
            if seen is not None:
                wait_until(lambda: any(re.search(seen, x) for x in list(summaries)),
                           "super %s doing anything (%r)" % (" ".join(ops), seen))
            remote.mail_reply = "250 2.1.0 Ok"
            inst.posthorn("queue", "-f", check=True)
            time.sleep(1)
        finally:
            stop.set()
            t.join()
        assert not errors, errors

    # Hold and release: messages go back and forth between deferred/ and
    # hold/ while qmgr retries them.
    run_churn(("-h", "-H"), "hold", seen=r"Placed on hold: [1-9]")
    assert [x for x in summaries if "Placed on hold" in x], "nothing was ever held"
    super_(inst, "-H", "ALL")
    inst.posthorn("queue", "-f", check=True)
    wait_until(lambda: len(remote.received()) >= n, "all %d messages at the remote" % n)
    inst.wait_queue_empty()
    time.sleep(0.5)
    assert sorted(subjects(remote)) == sorted("hold-%d" % i for i in range(n)), subjects(remote)

    # Delete: nothing twice, nothing left, the rest delivered.
    remote.mail_reply = "451 4.3.0 not yet"
    summaries.clear()
    run_churn(("-d",), "del", seen=r"Deleted: [1-9]")
    inst.posthorn("queue", "-f", check=True)
    inst.wait_queue_empty()
    time.sleep(0.5)
    delivered = [x for x in subjects(remote) if x.startswith("del-")]
    deleted = sum(int(m) for x in summaries for m in re.findall(r"Deleted: (\d+) message", x))
    assert deleted > 0, summaries
    assert len(delivered) == len(set(delivered)) <= n, delivered
    # A message deleted while its delivery ran may be both.
    assert len(delivered) + deleted >= n, (len(delivered), deleted)
    assert not inst.grep_log(r"panic|fatal"), inst.grep_log(r"panic|fatal")
    # qmgr still works.
    submit(inst, ["after@remote.test"], "after-the-churn")
    wait_until(lambda: "after-the-churn" in subjects(remote), "a message after the churn")
