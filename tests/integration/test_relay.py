"""
Relaying onward: qmgr routes mail for other domains to the smtp delivery
agent (relayhost, transport_maps), keeps it through every kind of remote
failure, limits the connections per destination, and returns
delivery status notifications (RFC 3464) to the sender.

The remote side is `Remote` (fakesmtp.py), a small fake SMTP server on
127.0.0.1: scripted replies per recipient, a hang-up in the middle of
DATA, a delay before the final reply, and a count of simultaneous
connections.  One test also uses Postfix's smtp-sink when it is
installed; every other test runs without it.

Senders of bounced mail are virtual mailbox users of the fixture
(alice@example.test), so notifications land in a Maildir we can read.
Flushes are `posthorn queue -f`, or qmgr triggers written to its socket
as `posthorn queue -f`, `-s site` and `-i ID` do.
"""

import email
import os
import pwd
import re
import socket
import subprocess
import time

import pytest

from fakesmtp import Remote
from posthorn import make_message, send_one

ALICE = "alice@example.test"
SMTP_SINK = "/usr/sbin/smtp-sink"
# No DNS, no TLS, short timeouts: every remote is a literal loopback port.
AGENT = {
    "smtp_tls_security_level": "none",
    "smtp_connect_timeout": "5s",
    "smtp_helo_timeout": "10s",
}


# ---------------------------------------------------------------- fake remote


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


# ---------------------------------------------------------------- helpers


def trigger(inst, data):
    """Write a trigger to qmgr's socket (public/ or private/, as master.cf says)."""
    for sub in ("public", "private"):
        path = inst.queue / sub / "qmgr"
        if path.exists():
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
                s.connect(str(path))
                s.sendall(data)
            return
    raise AssertionError("no qmgr socket under %s" % inst.queue)


def submit(inst, rcpts, subject, sender=ALICE, mail_options=(), rcpt_options=(), data=None):
    if data is None:
        data = make_message(subject, sender=sender, to=", ".join(rcpts))
    with inst.smtp() as s:
        code, text, qid = send_one(s, sender, rcpts, data, mail_options, rcpt_options)
    assert code == 250 and qid, "end of DATA: %d %r" % (code, text)
    return qid, data


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


def notifications(inst, user=ALICE, count=1):
    """The user's messages that are delivery status notifications."""
    def found():
        got = [(p, d) for p, d in inst.messages(user) if b"report-type=delivery-status" in d]
        return got if len(got) >= count else None
    return wait_until(found, "%d notification(s) in %s's Maildir" % (count, user))


def dsn_parts(data):
    """(message, [(content type, payload text)]) of a multipart/report."""
    msg = email.message_from_bytes(data)
    assert msg.get_content_type() == "multipart/report", msg.get_content_type()
    assert msg.get_param("report-type") == "delivery-status"
    parts = []
    for part in msg.get_payload():
        ctype = part.get_content_type()
        if part.is_multipart() or ctype in ("message/rfc822", "message/delivery-status"):
            # email parses these into sub-messages; the raw text is clearer.
            parts.append((ctype, part.as_string().split("\n\n", 1)[1]))
        else:
            parts.append((ctype, part.get_payload(decode=True).decode("utf-8", "replace")))
    return msg, parts


def status_lines(inst, qid, rcpt):
    return inst.grep_log(r"%s: to=<%s>.*status=" % (qid, re.escape(rcpt)))


# ---------------------------------------------------------------- tests


def test_relayhost_delivers_and_agent_logs_once(posthorn_factory, remotes):
    remote = remotes()
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop()))
    inst.start()
    qid, sent = submit(inst, ["bob@remote.test"], "via-relayhost")
    wait_until(lambda: subjects(remote) == ["via-relayhost"], "the relayhost to receive the message")
    mail, rcpts, body = remote.received()[0]
    assert mail == "MAIL FROM:<%s>" % ALICE and rcpts == ["bob@remote.test"], (mail, rcpts)
    assert body.endswith(sent.replace(b"\r\n", b"\n")), body
    pattern = r"%s: to=<bob@remote\.test>, relay=%s, .*dsn=2\.0\.0, status=sent \(250 2\.0\.0 Ok" % (
        qid, re.escape(remote.relay()))
    inst.wait_for_log(pattern)
    inst.wait_for_log(r"%s: removed" % qid)
    # The agent logged the line; qmgr did not log it a second time.
    assert len(status_lines(inst, qid, "bob@remote.test")) == 1, status_lines(inst, qid, "bob@remote.test")
    inst.wait_queue_empty()


@pytest.mark.skipif(not os.path.exists(SMTP_SINK), reason="smtp-sink not installed")
def test_relay_to_smtp_sink_through_transport_maps(posthorn_factory, tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    dump = tmp_path / "sink"
    dump.mkdir()
    user = "root" if os.geteuid() == 0 else pwd.getpwuid(os.geteuid()).pw_name
    sink = subprocess.Popen([SMTP_SINK, "-c", "-u", user, "-d", str(dump) + "/%M.",
                             "127.0.0.1:%d" % port, "10"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        wait_until(lambda: _port_open(port), "smtp-sink to listen")
        inst = posthorn_factory(main_cf=dict(
            AGENT, transport_maps="inline:{sink.test=smtp:[127.0.0.1]:%d}" % port))
        inst.start()
        qid, _ = submit(inst, ["someone@sink.test"], "to-the-sink")
        inst.wait_for_log(r"%s: to=<someone@sink\.test>, relay=127\.0\.0\.1\[127\.0\.0\.1\]:%d, "
                          r".*status=sent" % (qid, port))
        files = wait_until(lambda: list(dump.iterdir()), "smtp-sink to write the message")
        data = files[0].read_bytes()
        assert b"X-Rcpt-Args: <someone@sink.test>" in data
        assert b"Subject: to-the-sink" in data
        inst.wait_queue_empty()
    finally:
        sink.terminate()
        sink.wait(timeout=10)


def _port_open(port):
    try:
        socket.create_connection(("127.0.0.1", port), 1).close()
        return True
    except OSError:
        return False


def test_remote_4xx_is_deferred_listed_and_delivered_after_flush(posthorn_factory, remotes):
    remote = remotes()
    remote.rcpt_replies["later@remote.test"] = "450 4.2.1 Mailbox busy, try again"
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop()))
    inst.start()
    qid, _ = submit(inst, ["later@remote.test"], "deferred-then-flushed")
    inst.wait_for_log(r"%s: to=<later@remote\.test>, relay=%s, .*dsn=4\.2\.1, status=deferred "
                      r"\(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 450 4\.2\.1 Mailbox busy"
                      % (qid, re.escape(remote.relay())))

    def listed():
        for e in inst.queue_json():
            if e.get("queue_id") == qid and e.get("queue_name") == "deferred":
                return e
        return None
    entry = wait_until(listed, "queue -j to list %s as deferred" % qid)
    [r] = entry["recipients"]
    assert r["address"] == "later@remote.test"
    assert "450 4.2.1 Mailbox busy" in r.get("delay_reason", ""), r
    assert remote.received() == []

    # The remote recovers; `posthorn queue -f` delivers without waiting
    # for the backoff.
    del remote.rcpt_replies["later@remote.test"]
    inst.posthorn("queue", "-f", check=True)
    wait_until(lambda: subjects(remote) == ["deferred-then-flushed"], "delivery after the flush")
    inst.wait_for_log(r"%s: to=<later@remote\.test>, .*status=sent" % qid)
    inst.wait_queue_empty()
    # No notification: the mail was delivered in the end.
    assert not inst.grep_log(r"%s: sender .*notification" % qid)


def test_remote_5xx_returns_a_dsn_with_the_remote_reply(posthorn_factory, remotes):
    remote = remotes()
    remote.rcpt_replies["nobody@remote.test"] = "550 5.1.1 <nobody@remote.test>: Recipient address rejected"
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop()))
    inst.start()
    qid, sent = submit(inst, ["nobody@remote.test"], "will-bounce",
                       mail_options=["ENVID=env-42"], rcpt_options=["ORCPT=rfc822;orig+2Bnobody@remote.test"])
    inst.wait_for_log(r"%s: to=<nobody@remote\.test>, .*dsn=5\.1\.1, status=bounced" % qid)
    [line] = inst.wait_for_log(r"%s: sender non-delivery notification: [0-9A-Za-z]+" % qid)
    newid = line.rsplit(" ", 1)[1]
    inst.wait_for_log(r"%s: removed" % qid)

    [(_, data)] = notifications(inst)
    assert data.startswith(b"Return-Path: <>\n"), data[:200]
    msg, parts = dsn_parts(data)
    assert msg["From"].startswith("MAILER-DAEMON@mx.example.test")
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert msg["To"] == ALICE
    assert msg["Auto-Submitted"] == "auto-replied"
    assert [c for c, _ in parts] == ["text/plain", "message/delivery-status", "message/rfc822"], parts
    text, status, original = (p for _, p in parts)
    assert "This is the mail system at host mx.example.test." in text
    assert "<nobody@remote.test>: host 127.0.0.1[127.0.0.1] said: 550 5.1.1" in text.replace("\n    ", " ")
    assert "Reporting-MTA: dns; mx.example.test" in status
    assert "X-Posthorn-Queue-ID: %s" % qid in status
    assert "Original-Envelope-Id: env-42" in status
    assert re.search(r"^Arrival-Date: \w{3}, ", status, re.M), status
    assert "Final-Recipient: rfc822; nobody@remote.test" in status
    assert "Original-Recipient: rfc822;orig+nobody@remote.test" in status
    assert "Action: failed" in status and "Status: 5.1.1" in status
    assert "Remote-MTA: dns; 127.0.0.1" in status
    assert "Diagnostic-Code: smtp; 550 5.1.1 <nobody@remote.test>: Recipient address rejected" in \
        status.replace("\n    ", " ")
    # The whole original is returned (it is small and RET was not HDRS).
    assert sent.replace(b"\r\n", b"\n").decode() in original
    # The notification itself went through the queue and was delivered.
    inst.wait_for_log(r"%s: to=<%s>, relay=local, .*status=sent" % (newid, re.escape(ALICE)))
    inst.wait_queue_empty()


def test_ret_hdrs_returns_headers_only(posthorn_factory, remotes):
    remote = remotes()
    remote.rcpt_replies["nobody@remote.test"] = "550 5.1.1 no such user"
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop()))
    inst.start()
    body = ["line %d of a body that is not returned" % i for i in range(20)]
    data = make_message("headers-only", body_lines=body, sender=ALICE, to="nobody@remote.test")
    submit(inst, ["nobody@remote.test"], "headers-only", mail_options=["RET=HDRS"], data=data)
    [(_, dsn)] = notifications(inst)
    _, parts = dsn_parts(dsn)
    assert parts[2][0] == "text/rfc822-headers", parts[2][0]
    assert "Subject: headers-only" in parts[2][1]
    assert b"not returned" not in dsn


def test_notify_never_sends_nothing_and_success_reports(posthorn_factory, remotes):
    remote = remotes()
    remote.rcpt_replies["quiet@remote.test"] = "550 5.1.1 no such user"
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop()))
    inst.start()
    qid, _ = submit(inst, ["quiet@remote.test"], "notify-never", rcpt_options=["NOTIFY=NEVER"])
    inst.wait_for_log(r"%s: removed" % qid)
    # NOTIFY=SUCCESS to a local mailbox: a "delivered" report.
    qid2, _ = submit(inst, ["bob@example.test"], "notify-success", rcpt_options=["NOTIFY=SUCCESS"])
    inst.wait_for_log(r"%s: sender delivery status notification: " % qid2)
    [(_, dsn)] = notifications(inst)
    msg, parts = dsn_parts(dsn)
    assert msg["Subject"] == "Successful Mail Delivery Report"
    assert "Action: delivered" in parts[1][1] and "Final-Recipient: rfc822; bob@example.test" in parts[1][1]
    assert not inst.grep_log(r"%s: sender .*notification" % qid)
    inst.wait_queue_empty()


@pytest.mark.parametrize("lifetime", ["0", "1s"])
def test_lifetime_expiry_bounces(posthorn_factory, remotes, lifetime):
    remote = remotes()
    remote.rcpt_replies["slow@remote.test"] = "451 4.3.2 System not accepting messages"
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop(), maximal_queue_lifetime=lifetime))
    inst.start()
    if lifetime != "0":
        # The first attempt is younger than the lifetime: deferred.
        qid, _ = submit(inst, ["slow@remote.test"], "expires")
        inst.wait_for_log(r"%s: to=<slow@remote\.test>, .*status=deferred" % qid)
        # Arrival times have one-second resolution: "older than 1s" is
        # certain after 2.
        time.sleep(2.5)
        trigger(inst, b"Q%s\n" % qid.encode())
    else:
        qid, _ = submit(inst, ["slow@remote.test"], "expires")
    inst.wait_for_log(r"%s: to=<slow@remote\.test>, .*dsn=4\.3\.2, status=expired "
                      r"\(host 127\.0\.0\.1\[127\.0\.0\.1\] said: 451" % qid)
    inst.wait_for_log(r"%s: from=<%s>, status=expired, returned to sender" % (qid, re.escape(ALICE)))
    inst.wait_for_log(r"%s: sender non-delivery notification: " % qid)
    [(_, dsn)] = notifications(inst)
    _, parts = dsn_parts(dsn)
    assert "Action: failed" in parts[1][1] and "Status: 4.3.2" in parts[1][1], parts[1][1]
    inst.wait_queue_empty()


def test_drop_in_data_is_deferred_then_delivered_once(posthorn_factory, remotes):
    remote = remotes()
    remote.drop = True
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop()))
    inst.start()
    qid, _ = submit(inst, ["bob@remote.test"], "dropped-in-data")
    inst.wait_for_log(r"%s: to=<bob@remote\.test>, .*status=deferred \(lost connection with "
                      r"127\.0\.0\.1\[127\.0\.0\.1\] while sending" % qid)
    wait_until(lambda: (inst.queue / "deferred" / qid).exists(), "%s in deferred/" % qid)
    assert remote.received() == []
    remote.drop = False
    trigger(inst, b"F")
    wait_until(lambda: subjects(remote) == ["dropped-in-data"], "delivery after the flush")
    inst.wait_queue_empty()
    time.sleep(1)
    assert subjects(remote) == ["dropped-in-data"], "delivered more than once: %r" % subjects(remote)


def test_flush_one_site_and_one_message(posthorn_factory, remotes):
    a, b = remotes(), remotes()
    a.rcpt_replies["x@a.test"] = "421 4.3.0 closing"
    b.rcpt_replies["y@b.test"] = "450 4.2.0 later"
    maps = "inline:{a.test=smtp:%s, b.test=smtp:%s}" % (a.hop(), b.hop())
    inst = posthorn_factory(main_cf=dict(AGENT, transport_maps=maps))
    inst.start()
    qa, _ = submit(inst, ["x@a.test"], "site-a")
    qb, _ = submit(inst, ["y@b.test"], "site-b")
    for q in (qa, qb):
        wait_until(lambda: (inst.queue / "deferred" / q).exists(), "%s in deferred/" % q)
    a.rcpt_replies.clear()
    b.rcpt_replies.clear()
    trigger(inst, b"Sa.test\n")
    wait_until(lambda: subjects(a) == ["site-a"], "the flush of site a.test")
    inst.wait_for_log(r"flush of site a\.test: 1 deferred message")
    time.sleep(1)
    assert b.received() == [], "site b.test was flushed too"
    assert (inst.queue / "deferred" / qb).exists()
    trigger(inst, b"Q%s\n" % qb.encode())
    wait_until(lambda: subjects(b) == ["site-b"], "the flush of message %s" % qb)
    inst.wait_queue_empty()


def test_concurrency_limit_per_destination(posthorn_factory, remotes):
    servers = [remotes() for _ in range(3)]
    for s in servers:
        s.delay = 0.02
    maps = "inline:{%s}" % ", ".join("d%d.test=smtp:%s" % (i, s.hop()) for i, s in enumerate(servers))
    inst = posthorn_factory(main_cf=dict(AGENT, transport_maps=maps,
                                         smtp_destination_concurrency_limit="2"))
    inst.start()
    total = 1000
    with inst.smtp() as smtp:
        for n in range(total):
            rcpt = "u%d@d%d.test" % (n, n % 3)
            data = make_message("tok-%d" % n, sender=ALICE, to=rcpt)
            code, text, _ = send_one(smtp, ALICE, [rcpt], data)
            assert code == 250, (n, code, text)
    wait_until(lambda: sum(len(s.received()) for s in servers) >= total,
               "%d messages at the remotes" % total, timeout=300)
    inst.wait_queue_empty(timeout=120)
    seen = [t for s in servers for t in subjects(s)]
    assert sorted(seen) == sorted("tok-%d" % n for n in range(total)), "lost or duplicated messages"
    for i, s in enumerate(servers):
        assert len(s.received()) in (333, 334), (i, len(s.received()))
        assert s.max_active <= 2, "d%d.test: %d connections at once (limit 2)" % (i, s.max_active)


def test_dead_destination_defers_at_once_until_flushed(posthorn_factory, remotes):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # Nothing listens there yet: every connection is refused.
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost="[127.0.0.1]:%d" % port))
    inst.start()
    total = 12
    with inst.smtp() as smtp:
        for n in range(total):
            data = make_message("dead-%d" % n, sender=ALICE, to="r%d@remote.test" % n)
            code, text, _ = send_one(smtp, ALICE, ["r%d@remote.test" % n], data)
            assert code == 250, text
    inst.wait_for_log(r"destination \[127\.0\.0\.1\]:%d of transport smtp is not responding" % port)
    wait_until(lambda: len(os.listdir(inst.queue / "deferred")) == total, "all %d messages deferred" % total)
    # Once dead, the rest were deferred by qmgr without trying.
    suspended = inst.grep_log(r"relay=none, .*status=deferred \(delivery temporarily suspended: "
                              r"connect to 127\.0\.0\.1\[127\.0\.0\.1\]:%d: Connection refused\)" % port)
    tried = inst.grep_log(r"posthorn/smtp\[\d+\]: \w+: to=<r\d+@remote\.test>.*status=deferred")
    assert suspended and len(suspended) + len(tried) == total, (len(suspended), len(tried))
    assert len(tried) <= 5, "%d deliveries tried against a dead destination" % len(tried)
    # The site comes back; a flush forgets that it was dead.
    remote = remotes(port)
    trigger(inst, b"F")
    wait_until(lambda: len(remote.received()) == total, "delivery of all %d after the flush" % total)
    inst.wait_queue_empty()


def test_transport_maps_error_and_discard(posthorn_factory, tmp_path):
    table = tmp_path / "transport"
    table.write_text("# transport(5)\n"
                     "blocked.test  error:5.7.1 Mail to this domain is not accepted\n"
                     "void.test     discard:\n")
    os.chmod(tmp_path, 0o755)
    inst = posthorn_factory(main_cf=dict(AGENT, transport_maps="texthash:%s" % table))
    inst.start()
    qid, _ = submit(inst, ["a@blocked.test", "b@void.test"], "error-and-discard")
    inst.wait_for_log(r"%s: to=<a@blocked\.test>, relay=none, .*dsn=5\.7\.1, status=bounced "
                      r"\(Mail to this domain is not accepted\)" % qid)
    inst.wait_for_log(r"%s: to=<b@void\.test>, relay=none, .*dsn=2\.0\.0, status=sent \(discarded\)" % qid)
    [(_, dsn)] = notifications(inst)
    _, parts = dsn_parts(dsn)
    assert "Final-Recipient: rfc822; a@blocked.test" in parts[1][1]
    assert "void.test" not in parts[1][1]
    inst.wait_queue_empty()


def test_unknown_transport_defers(posthorn_factory):
    inst = posthorn_factory(main_cf=dict(AGENT, transport_maps="inline:{nowhere.test=nosuch:}"))
    inst.start()
    qid, _ = submit(inst, ["x@nowhere.test"], "no-such-transport")
    inst.wait_for_log(r"%s: to=<x@nowhere\.test>, relay=none, .*dsn=4\.3\.0, status=deferred "
                      r"\(mail transport unavailable\)" % qid)
    wait_until(lambda: (inst.queue / "deferred" / qid).exists(), "the message in deferred/")


def test_bounce_of_a_bounce_goes_to_the_postmaster_once(posthorn_factory, remotes):
    remote = remotes()
    remote.rcpt_replies["gone@remote.test"] = "550 5.1.1 gone"
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop(),
                                         **{"2bounce_notice_recipient": "bob@example.test"}))
    inst.start()
    # The sender does not exist: its notification bounces in turn.
    qid, _ = submit(inst, ["gone@remote.test"], "double", sender="ghost@example.test")
    [line] = inst.wait_for_log(r"%s: sender non-delivery notification: " % qid)
    bounce = line.rsplit(" ", 1)[1]
    inst.wait_for_log(r"%s: to=<ghost@example\.test>, relay=local, .*status=bounced" % bounce)
    inst.wait_for_log(r"%s: postmaster non-delivery notification: " % bounce)
    [(_, data)] = notifications(inst, "bob")
    msg, parts = dsn_parts(data)
    assert msg["Subject"] == "Postmaster Copy: Undelivered Mail"
    assert parts[2][0] == "text/rfc822-headers"
    assert "Final-Recipient: rfc822; ghost@example.test" in parts[1][1]
    inst.wait_queue_empty()
    time.sleep(1)
    assert len(inst.grep_log(r"notification: ")) == 2, inst.grep_log(r"notification: ")


def test_failing_postmaster_notice_is_dropped(posthorn_factory, remotes):
    remote = remotes()
    remote.rcpt_replies["gone@remote.test"] = "550 5.1.1 gone"
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop(),
                                         **{"2bounce_notice_recipient": "nobody-here@example.test"}))
    inst.start()
    qid, _ = submit(inst, ["gone@remote.test"], "triple", sender="ghost@example.test")
    [line] = inst.wait_for_log(r"%s: sender non-delivery notification: " % qid)
    bounce = line.rsplit(" ", 1)[1]
    [line] = inst.wait_for_log(r"%s: postmaster non-delivery notification: " % bounce)
    notice = line.rsplit(" ", 1)[1]
    inst.wait_for_log(r"%s: to=<nobody-here@example\.test>, .*status=bounced" % notice)
    inst.wait_for_log(r"%s: undeliverable postmaster notification discarded" % notice)
    inst.wait_queue_empty()
    time.sleep(1)
    assert len(inst.grep_log(r"notification: ")) == 2, inst.grep_log(r"notification: ")


def test_delay_warning_is_sent_once(posthorn_factory, remotes):
    remote = remotes()
    remote.rcpt_replies["slow@remote.test"] = "450 4.2.0 try later"
    inst = posthorn_factory(main_cf=dict(AGENT, relayhost=remote.hop(), delay_warning_time="1s"))
    inst.start()
    qid, _ = submit(inst, ["slow@remote.test"], "delayed")
    inst.wait_for_log(r"%s: to=<slow@remote\.test>, .*status=deferred" % qid)
    time.sleep(1.2)
    for _ in range(3):
        trigger(inst, b"F")
        time.sleep(1)
    inst.wait_for_log(r"%s: sender delay notification: " % qid)
    [(_, dsn)] = notifications(inst)
    msg, parts = dsn_parts(dsn)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert "THIS IS A WARNING ONLY" in parts[0][1]
    assert "Action: delayed" in parts[1][1] and "Status: 4.2.0" in parts[1][1]
    assert "Will-Retry-Until: " in parts[1][1]
    assert parts[2][0] == "text/rfc822-headers"
    time.sleep(1)
    assert len(inst.grep_log(r"%s: sender delay notification" % qid)) == 1
    wait_until(lambda: (inst.queue / "deferred" / qid).exists(), "%s back in deferred/" % qid)
