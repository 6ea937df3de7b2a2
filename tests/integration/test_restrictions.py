"""
smtpd's restriction lists from the outside: each list at its stage
(smtpd_delay_reject = yes moves client, helo and sender checks to RCPT
TO; no evaluates them at connect, HELO/EHLO and MAIL FROM), the generic
restrictions (permit, reject, defer, defer_if_permit, defer_if_reject,
warn_if_reject, sleep, permit_mynetworks, permit_sasl_authenticated,
reject_unauth_pipelining), and the client, HELO, sender (with the SASL
login checks) and recipient restrictions -- the DNS ones against
fakedns.py on loopback.  Each test shows a restriction firing
with Postfix's exact reply and log line, and the same restriction not
firing when its condition is not met.

Access-table actions and tables: test_restrictions_access.py; the
policy service and the anvil limits: test_restrictions_policy.py.
"""

import re
import base64
import socket
import time

from restrict_util import (ALICE, SENDER, UNKNOWN, client, dns, make,  # noqa: F401
                           rcpt_reply, send)

REJECT_CLIENT = "554 5.7.1 <%s>: Client host rejected: Access denied" % UNKNOWN


# ---------------------------------------------------------------- stages


def test_client_restrictions_wait_for_rcpt(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "reject"})
    with client(inst) as c:
        c.want("MAIL FROM:<%s>" % SENDER, 250)
        c.want("RCPT TO:<%s>" % ALICE, 554, REJECT_CLIENT)
        c.want("QUIT", 221)
    inst.wait_for_log(
        r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 "
        r"<unknown\[127\.0\.0\.1\]>: Client host rejected: Access denied; "
        r"from=<sender@example\.org> to=<alice@example\.test> proto=ESMTP "
        r"helo=<client\.example\.org>")


def test_client_restrictions_at_connect_without_delay(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "reject",
                                   "smtpd_delay_reject": "no"}, start="nowait")
    with client(inst, greet=False) as c:
        c.greet(554, REJECT_CLIENT)
        c.want("EHLO client.example.org", 503,
               "503 5.7.0 Error: access denied for %s" % UNKNOWN)
        c.want("MAIL FROM:<%s>" % SENDER, 503)
        c.want("QUIT", 221)
    inst.wait_for_log(r"NOQUEUE: reject: CONNECT from unknown\[127\.0\.0\.1\]: "
                      r"554 5\.7\.1 <unknown\[127\.0\.0\.1\]>: Client host rejected: "
                      r"Access denied; proto=SMTP")
    # Not firing: an empty list greets as usual.
    inst2 = make(posthorn_factory, {"smtpd_delay_reject": "no"})
    with client(inst2) as c:
        c.want("MAIL FROM:<%s>" % SENDER, 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)


def test_helo_restrictions_at_rcpt_and_at_helo(posthorn_factory):
    want = "504 5.5.2 <foo>: Helo command rejected: need fully-qualified hostname"
    inst = make(posthorn_factory, {"smtpd_helo_restrictions": "reject_non_fqdn_helo_hostname"})
    assert rcpt_reply(inst, helo="HELO foo") == want
    assert rcpt_reply(inst, helo="HELO foo.example.org").startswith("250 ")
    inst.wait_for_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 504 5\.5\.2 <foo>: "
                      r"Helo command rejected: need fully-qualified hostname; "
                      r"from=<sender@example\.org> to=<alice@example\.test> proto=SMTP helo=<foo>")
    inst2 = make(posthorn_factory, {"smtpd_helo_restrictions": "reject_non_fqdn_helo_hostname",
                                    "smtpd_delay_reject": "no", "smtpd_helo_required": "yes"})
    with client(inst2, helo=None) as c:
        c.want("HELO foo", 504, want)
        # The refused name is not kept: HELO is still needed.
        c.want("MAIL FROM:<%s>" % SENDER, 503)
        c.want("EHLO foo.example.org", 250)
        c.want("MAIL FROM:<%s>" % SENDER, 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)
    inst2.wait_for_log(r"NOQUEUE: reject: HELO from unknown\[127\.0\.0\.1\]: 504 5\.5\.2 <foo>")


def test_sender_restrictions_at_rcpt_and_at_mail(posthorn_factory):
    cf = {"smtpd_sender_restrictions": "check_sender_access inline:{bad@example.org=REJECT}"}
    want = "554 5.7.1 <bad@example.org>: Sender address rejected: Access denied"
    inst = make(posthorn_factory, cf)
    assert rcpt_reply(inst, sender="bad@example.org") == want
    assert rcpt_reply(inst, sender="good@example.org").startswith("250 ")
    cf["smtpd_delay_reject"] = "no"
    inst2 = make(posthorn_factory, cf)
    with client(inst2) as c:
        c.want("MAIL FROM:<bad@example.org>", 554, want)
        c.want("MAIL FROM:<good@example.org>", 250)
    inst2.wait_for_log(r"NOQUEUE: reject: MAIL from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 "
                       r"<bad@example\.org>: Sender address rejected: Access denied; "
                       r"from=<bad@example\.org> proto=ESMTP")


def test_relay_then_recipient_restrictions(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_relay_restrictions": "reject_unauth_destination",
                                   "smtpd_recipient_restrictions": "reject"})
    # The relay list rejects first; the recipient list never runs.
    assert rcpt_reply(inst, rcpt="x@elsewhere.test") == \
        "554 5.7.1 <x@elsewhere.test>: Relay access denied"
    assert rcpt_reply(inst) == \
        "554 5.7.1 <alice@example.test>: Recipient address rejected: Access denied"


def test_data_restrictions(posthorn_factory):
    want = "554 5.7.1 <DATA>: Data command rejected: Access denied"
    inst = make(posthorn_factory, {"smtpd_data_restrictions": "reject"})
    with client(inst) as c:
        c.want("MAIL FROM:<%s>" % SENDER, 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)
        c.want("DATA", 554, want)
        # BDAT: the chunk is read and refused with the same reply.
        c.send(b"BDAT 5 LAST\r\nhello")
        got, texts = c.reply()
        assert "%d %s" % (got, texts[-1]) == want
    inst.wait_for_log(r"NOQUEUE: reject: DATA from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 <DATA>: "
                      r"Data command rejected: Access denied; from=<sender@example\.org> "
                      r"to=<alice@example\.test>")
    # Not firing: a data list that permits.
    inst2 = make(posthorn_factory, {"smtpd_data_restrictions": "permit"})
    assert send(inst2).startswith("250 2.0.0 Ok: queued as ")


def test_end_of_data_restrictions(posthorn_factory):
    inst = make(posthorn_factory, {
        "smtpd_end_of_data_restrictions": "check_sender_access inline:{bad@example.org=REJECT}"})
    send(inst, sender="bad@example.org", code=554,
         text="554 5.7.1 <bad@example.org>: Sender address rejected: Access denied")
    inst.wait_for_log(r"NOQUEUE: reject: END-OF-MESSAGE from unknown\[127\.0\.0\.1\]: 554 5\.7\.1")
    # Nothing was queued; the same session goes on with the next message.
    with client(inst) as c:
        c.want("MAIL FROM:<bad@example.org>", 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)
        c.data(b"Subject: x\r\n\r\nx\r\n", 554)
        c.want("MAIL FROM:<good@example.org>", 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)
        c.data(b"Subject: ok\r\n\r\nok\r\n", 250)
    msgs = inst.wait_for_maildir(ALICE, 1)
    assert len(msgs) == 1 and b"Subject: ok" in msgs[0][1]
    inst2 = make(posthorn_factory, {"smtpd_end_of_data_restrictions": "reject"})
    send(inst2, code=554,
         text="554 5.7.1 <END-OF-MESSAGE>: End-of-data rejected: Access denied")


# ---------------------------------------------------------------- generic


def test_permit_ends_the_list(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "permit, reject"})
    assert rcpt_reply(inst).startswith("250 ")
    inst2 = make(posthorn_factory, {"smtpd_client_restrictions": "reject, permit"})
    assert rcpt_reply(inst2) == REJECT_CLIENT


def test_defer(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_sender_restrictions": "defer"})
    assert rcpt_reply(inst) == \
        "450 4.3.2 <sender@example.org>: Sender address rejected: Try again later"
    inst2 = make(posthorn_factory, {"smtpd_sender_restrictions": "permit, defer"})
    assert rcpt_reply(inst2).startswith("250 ")


def test_defer_if_permit(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "defer_if_permit"})
    # The permit at the end of every list becomes a 4xx ...
    assert rcpt_reply(inst) == \
        "450 4.7.0 <%s>: Client host rejected: defer_if_permit requested" % UNKNOWN
    # ... but a rejection stays a rejection.
    inst2 = make(posthorn_factory, {"smtpd_client_restrictions": "defer_if_permit",
                                    "smtpd_recipient_restrictions": "reject"})
    assert rcpt_reply(inst2) == \
        "554 5.7.1 <alice@example.test>: Recipient address rejected: Access denied"


def test_defer_if_reject(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "defer_if_reject, reject"})
    assert rcpt_reply(inst) == \
        "450 4.7.0 <%s>: Client host rejected: defer_if_reject requested" % UNKNOWN
    inst2 = make(posthorn_factory, {"smtpd_client_restrictions": "defer_if_reject, permit"})
    assert rcpt_reply(inst2).startswith("250 ")


def test_warn_if_reject(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "warn_if_reject, reject"})
    assert rcpt_reply(inst).startswith("250 ")
    inst.wait_for_log(r"NOQUEUE: reject_warning: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 "
                      r"<unknown\[127\.0\.0\.1\]>: Client host rejected: Access denied;")
    assert not inst.grep_log(r"NOQUEUE: reject: ")
    # It covers the next restriction only.
    inst2 = make(posthorn_factory, {
        "smtpd_client_restrictions": "warn_if_reject, reject_unknown_client_hostname, reject"})
    assert rcpt_reply(inst2) == REJECT_CLIENT
    inst2.wait_for_log(r"reject_warning: .*cannot find your hostname")


def test_permit_mynetworks(posthorn_factory):
    cf = {"smtpd_client_restrictions": "permit_mynetworks, reject"}
    inst = make(posthorn_factory, cf, mynetworks="127.0.0.0/8")
    assert rcpt_reply(inst).startswith("250 ")
    inst2 = make(posthorn_factory, cf, mynetworks="10.9.9.0/24")
    assert rcpt_reply(inst2) == REJECT_CLIENT


def test_sleep(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "sleep 2, permit"})
    with client(inst) as c:
        c.want("MAIL FROM:<%s>" % SENDER, 250)
        t0 = time.monotonic()
        c.want("RCPT TO:<%s>" % ALICE, 250)
        assert time.monotonic() - t0 >= 1.9
    inst2 = make(posthorn_factory, {"smtpd_client_restrictions": "sleep 0, reject"})
    assert rcpt_reply(inst2) == REJECT_CLIENT


def _refused_start(factory, value, pattern):
    """smtpd refuses the configuration: no greeting, a fatal log line."""
    inst = make(factory, {"smtpd_client_restrictions": value}, start=False)
    inst.start(wait=False)
    deadline = time.monotonic() + 30
    while not inst.grep_log(pattern) and time.monotonic() < deadline:
        try:
            with client(inst, greet=False, timeout=5) as c:
                code, _ = c.reply()
                assert code != 220, "smtpd greeted with %r" % value
        except (OSError, AssertionError) as e:
            if "greeted" in str(e):
                raise
        time.sleep(0.2)
    inst.wait_for_log(pattern, timeout=1)


def test_bad_argument_is_a_start_up_error(posthorn_factory):
    _refused_start(posthorn_factory, "sleep forever",
                   r"fatal: smtpd_client_restrictions: restriction sleep must be followed by a "
                   r"number of seconds")
    _refused_start(posthorn_factory, "reject_everything",
                   r"fatal: smtpd_client_restrictions: unknown restriction 'reject_everything'")
    _refused_start(posthorn_factory, "check_client_access",
                   r"fatal: smtpd_client_restrictions: restriction check_client_access needs an "
                   r"argument")


def _pipelined_rcpt(inst, ehlo):
    """HELO/EHLO, then MAIL, RCPT and NOOP in one packet: the RCPT reply."""
    with client(inst, helo=None) as c:
        c.want(("EHLO" if ehlo else "HELO") + " client.example.org", 250)
        c.send("MAIL FROM:<%s>\r\nRCPT TO:<%s>\r\nNOOP\r\n" % (SENDER, ALICE))
        c.reply()
        got, texts = c.reply()
        c.reply()
        return "%d %s" % (got, texts[-1])


def test_reject_unauth_pipelining(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "reject_unauth_pipelining"})
    # A HELO client may not pipeline ...
    assert _pipelined_rcpt(inst, ehlo=False) == (
        "503 5.5.0 <%s>: Client host rejected: Improper use of SMTP command pipelining" % UNKNOWN)
    # ... an EHLO client may (PIPELINING is announced).
    assert _pipelined_rcpt(inst, ehlo=True).startswith("250 ")
    # Nobody may talk before the greeting.  (smtpd looks just before it
    # greets; on a loaded machine our bytes may come later: try again.)
    results = []
    for _ in range(5):
        with client(inst, greet=False) as c:
            c.send("EHLO early.example.org\r\n")
            time.sleep(0.5)
            c.greet()
            c.reply()
            c.want("MAIL FROM:<%s>" % SENDER, 250)
            got, texts = c.cmd("RCPT TO:<%s>" % ALICE)
            results.append("%d %s" % (got, texts[-1]))
        if got == 503:
            break
    assert results[-1] == (
        "503 5.5.0 <%s>: Client host rejected: Improper use of SMTP command pipelining"
        % UNKNOWN), results
    # DATA must wait for the 354 (smtpd_data_restrictions).
    inst2 = make(posthorn_factory, {"smtpd_data_restrictions": "reject_unauth_pipelining"})
    with client(inst2) as c:
        c.want("MAIL FROM:<%s>" % SENDER, 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)
        c.send("DATA\r\nSubject: x\r\n\r\nx\r\n.\r\n")
        got, texts = c.reply()
        assert "%d %s" % (got, texts[-1]) == \
            "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining"


# ---------------------------------------------------------------- client


def test_client_name_lookup(posthorn_factory, dns):
    dns.add_ptr("127.0.0.1", "mail.client.test")
    dns.add_a("mail.client.test", "127.0.0.1")
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "reject_unknown_client_hostname"},
                dns=dns, lookup=True)
    assert rcpt_reply(inst).startswith("250 ")
    inst.wait_for_log(r"connect from mail\.client\.test\[127\.0\.0\.1\]")
    msg_reply = send(inst)
    assert msg_reply.startswith("250 ")
    data = inst.wait_for_maildir(ALICE, 1)[0][1]
    received = data.split(b"\nReceived: ", 1)[1].split(b";", 1)[0]
    assert b"mail.client.test" in received, received


def _hosts_names(ip):
    """The names /etc/hosts gives ip, first one first."""
    names = []
    with open("/etc/hosts", encoding="utf-8", errors="replace") as f:
        for line in f:
            words = line.split("#", 1)[0].split()
            if len(words) > 1 and words[0] == ip:
                names += [w.lower() for w in words[1:]]
    return names


def test_client_name_from_hosts_file(posthorn_factory, dns):
    # As Postfix (the system resolver): /etc/hosts first, for the PTR
    # side and for the forward check, before any DNS question.
    names = _hosts_names("127.0.0.1")
    if not names:
        pytest.skip("/etc/hosts does not list 127.0.0.1")
    dns.add_ptr("127.0.0.1", "mail.client.test")
    dns.add_a("mail.client.test", "127.0.0.1")
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "reject_unknown_client_hostname",
                                   "smtpd_peername_hosts": "yes"}, dns=dns, lookup=True)
    assert rcpt_reply(inst).startswith("250 ")
    inst.wait_for_log(r"connect from %s\[127\.0\.0\.1\]" % re.escape(names[0]))
    assert not dns.asked("1.0.0.127.in-addr.arpa")
    assert send(inst).startswith("250 ")
    data = inst.wait_for_maildir(ALICE, 1)[0][1]
    received = data.split(b"\nReceived: ", 1)[1].split(b";", 1)[0]
    assert names[0].encode() in received, received


def test_reject_unknown_client_hostname(posthorn_factory, dns):
    cf = {"smtpd_client_restrictions": "reject_unknown_client_hostname",
          "unknown_client_reject_code": "550"}
    # No PTR record: a permanent "unknown".
    inst = make(posthorn_factory, cf, dns=dns, lookup=True)
    assert rcpt_reply(inst) == \
        "550 5.7.25 Client host rejected: cannot find your hostname, [127.0.0.1]"
    # A PTR whose name does not lead back to the address: still unknown.
    dns.add_ptr("127.0.0.1", "forged.client.test")
    dns.add_a("forged.client.test", "192.0.2.7")
    inst2 = make(posthorn_factory, cf, dns=dns, lookup=True)
    assert rcpt_reply(inst2) == \
        "550 5.7.25 Client host rejected: cannot find your hostname, [127.0.0.1]"
    inst2.wait_for_log(r"hostname forged\.client\.test does not resolve to address 127\.0\.0\.1")
    inst2.wait_for_log(r"connect from unknown\[127\.0\.0\.1\]")


def test_client_name_lookup_failure_is_temporary(posthorn_factory, dns):
    dns.add_servfail("1.0.0.127.in-addr.arpa")
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "reject_unknown_client_hostname",
                                   "unknown_client_reject_code": "550"}, dns=dns, lookup=True)
    assert rcpt_reply(inst) == \
        "450 4.7.25 Client host rejected: cannot find your hostname, [127.0.0.1]"


def test_reject_unknown_reverse_client_hostname(posthorn_factory, dns):
    cf = {"smtpd_client_restrictions": "reject_unknown_reverse_client_hostname"}
    inst = make(posthorn_factory, cf, dns=dns, lookup=True)
    assert rcpt_reply(inst) == \
        "450 4.7.1 Client host rejected: cannot find your reverse hostname, [127.0.0.1]"
    # Any PTR name will do, confirmed or not.
    dns.add_ptr("127.0.0.1", "forged.client.test")
    inst2 = make(posthorn_factory, cf, dns=dns, lookup=True)
    assert rcpt_reply(inst2).startswith("250 ")


def test_peername_lookup_off(posthorn_factory, dns):
    dns.add_ptr("127.0.0.1", "mail.client.test")
    dns.add_a("mail.client.test", "127.0.0.1")
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "reject_unknown_client_hostname"},
                dns=dns, lookup=False)
    assert rcpt_reply(inst).startswith("450 4.7.25 ")
    assert not dns.asked("1.0.0.127.in-addr.arpa")


def test_reject_rbl_client(posthorn_factory, dns):
    dns.list_client("rbl.test", txt="listed for testing")
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "reject_rbl_client rbl.test"},
                dns=dns)
    assert rcpt_reply(inst) == ("554 5.7.1 Service unavailable; Client host [127.0.0.1] "
                                "blocked using rbl.test; listed for testing")
    inst.wait_for_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.1 Service "
                      r"unavailable; Client host \[127\.0\.0\.1\] blocked using rbl\.test")
    # Not listed there; listed with another answer than the one we want.
    inst2 = make(posthorn_factory, {
        "smtpd_client_restrictions": "reject_rbl_client clean.test, reject_rbl_client rbl.test=127.0.0.3"},
        dns=dns)
    assert rcpt_reply(inst2).startswith("250 ")
    assert dns.asked("1.0.0.127.clean.test", "A")


def test_rbl_lookup_failure_is_not_a_listing(posthorn_factory, dns):
    dns.add_servfail("1.0.0.127.broken.test")
    dns.add_silent("1.0.0.127.slow.test")
    inst = make(posthorn_factory, {
        "smtpd_client_restrictions": "reject_rbl_client broken.test, reject_rbl_client slow.test"},
        dns=dns)
    t0 = time.monotonic()
    assert rcpt_reply(inst).startswith("250 ")
    assert time.monotonic() - t0 < 10
    inst.wait_for_log(r"warning: 1\.0\.0\.127\.broken\.test: RBL lookup error")
    inst.wait_for_log(r"warning: 1\.0\.0\.127\.slow\.test: RBL lookup error")


def test_reject_rhsbl_client_sender_helo(posthorn_factory, dns):
    dns.add_ptr("127.0.0.1", "mail.spammy.test")
    dns.add_a("mail.spammy.test", "127.0.0.1")
    dns.add_a("mail.spammy.test.rhs.test", "127.0.0.2")
    dns.add_a("bad.example.rhs.test", "127.0.0.2")
    dns.add_a("helo.bad.test.rhs.test", "127.0.0.2")
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "reject_rhsbl_client rhs.test"},
                dns=dns, lookup=True)
    assert rcpt_reply(inst) == ("554 5.7.1 Service unavailable; Client host [mail.spammy.test] "
                                "blocked using rhs.test")
    inst2 = make(posthorn_factory, {"smtpd_sender_restrictions": "reject_rhsbl_sender rhs.test",
                                    "smtpd_helo_restrictions": "reject_rhsbl_helo rhs.test"},
                 dns=dns)
    assert rcpt_reply(inst2, sender="x@bad.example") == (
        "554 5.7.1 Service unavailable; Sender address [x@bad.example] blocked using rhs.test")
    assert rcpt_reply(inst2, helo="HELO helo.bad.test") == (
        "554 5.7.1 Service unavailable; Helo command [helo.bad.test] blocked using rhs.test")
    assert rcpt_reply(inst2, sender="x@good.example").startswith("250 ")


def test_permit_dnswl_client(posthorn_factory, dns):
    dns.list_client("wl.test")
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "permit_dnswl_client wl.test, reject",
                                   "smtpd_relay_restrictions":
                                       "permit_dnswl_client wl.test, reject_unauth_destination"},
                dns=dns)
    assert rcpt_reply(inst).startswith("250 ")
    # An allow list never opens the relay.
    assert rcpt_reply(inst, rcpt="x@elsewhere.test") == \
        "554 5.7.1 <x@elsewhere.test>: Relay access denied"
    inst2 = make(posthorn_factory, {"smtpd_client_restrictions": "permit_dnswl_client other.test, reject"},
                 dns=dns)
    assert rcpt_reply(inst2) == REJECT_CLIENT


# ---------------------------------------------------------------- helo


def test_reject_invalid_helo_hostname(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_helo_restrictions": "reject_invalid_helo_hostname"})
    assert rcpt_reply(inst, helo="HELO bad!name") == \
        "501 5.5.2 <bad!name>: Helo command rejected: Invalid name"
    assert rcpt_reply(inst, helo="HELO [1.2.3.999]") == \
        "501 5.5.2 <[1.2.3.999]>: Helo command rejected: invalid ip address"
    assert rcpt_reply(inst, helo="HELO [127.0.0.1]").startswith("250 ")
    assert rcpt_reply(inst, helo="HELO single").startswith("250 ")


def test_reject_non_fqdn_helo_hostname(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_helo_restrictions": "reject_non_fqdn_helo_hostname"})
    assert rcpt_reply(inst, helo="EHLO localhost") == \
        "504 5.5.2 <localhost>: Helo command rejected: need fully-qualified hostname"
    assert rcpt_reply(inst, helo="EHLO mail.example.org.").startswith("250 ")


def test_reject_unknown_helo_hostname(posthorn_factory, dns):
    dns.add_a("a.example.org", "192.0.2.1")
    dns.add_mx("mx-only.example.org", 10, "a.example.org")
    dns.add_servfail("broken.example.org")
    inst = make(posthorn_factory, {"smtpd_helo_restrictions": "reject_unknown_helo_hostname",
                                   "unknown_hostname_reject_code": "550"}, dns=dns)
    assert rcpt_reply(inst, helo="HELO nx.example.org") == \
        "550 5.7.1 <nx.example.org>: Helo command rejected: Host not found"
    # A DNS failure is temporary (defer_if_permit), never an accept.
    assert rcpt_reply(inst, helo="HELO broken.example.org") == \
        "450 4.7.1 <broken.example.org>: Helo command rejected: Host not found"
    assert rcpt_reply(inst, helo="HELO a.example.org").startswith("250 ")
    assert rcpt_reply(inst, helo="HELO mx-only.example.org").startswith("250 ")


def test_check_helo_access(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_helo_restrictions": "check_helo_access texthash:{etc}/helo"},
                files={"helo": "bad.example REJECT no thanks\n.evil.example REJECT sub\n"})
    assert rcpt_reply(inst, helo="HELO bad.example") == \
        "554 5.7.1 <bad.example>: Helo command rejected: no thanks"
    assert rcpt_reply(inst, helo="HELO a.b.evil.example") == \
        "554 5.7.1 <a.b.evil.example>: Helo command rejected: sub"
    # ".evil.example" matches subdomains only; other names pass.
    assert rcpt_reply(inst, helo="HELO evil.example").startswith("250 ")
    assert rcpt_reply(inst, helo="HELO good.example").startswith("250 ")


# ---------------------------------------------------------------- sender


def test_reject_non_fqdn_sender(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_sender_restrictions": "reject_non_fqdn_sender"})
    assert rcpt_reply(inst, sender="joe@host") == \
        "504 5.5.2 <joe@host>: Sender address rejected: need fully-qualified address"
    with client(inst) as c:
        c.want("MAIL FROM:<>", 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)
    assert rcpt_reply(inst, sender="joe@host.example").startswith("250 ")


def test_reject_unknown_sender_domain(posthorn_factory, dns):
    dns.add_mx("mx.example.org", 10, "in.example.org")
    dns.add_a("a-only.example.org", "192.0.2.1")
    dns.add_null_mx("nullmx.example.org")
    dns.add_servfail("broken.example.org")
    inst = make(posthorn_factory, {"smtpd_sender_restrictions": "reject_unknown_sender_domain",
                                   "unknown_address_reject_code": "550"}, dns=dns)
    assert rcpt_reply(inst, sender="x@nx.example.org") == \
        "550 5.1.8 <x@nx.example.org>: Sender address rejected: Domain not found"
    assert rcpt_reply(inst, sender="x@broken.example.org") == \
        "450 4.1.8 <x@broken.example.org>: Sender address rejected: Domain not found"
    assert rcpt_reply(inst, sender="x@nullmx.example.org") == (
        "550 5.7.27 <x@nullmx.example.org>: Sender address rejected: Domain nullmx.example.org "
        "does not accept mail (nullMX)")
    assert rcpt_reply(inst, sender="x@mx.example.org").startswith("250 ")
    assert rcpt_reply(inst, sender="x@a-only.example.org").startswith("250 ")
    # Our own domains need no DNS.
    assert rcpt_reply(inst, sender=ALICE).startswith("250 ")
    assert not dns.asked("example.test")


def test_reject_unlisted_sender(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_sender_restrictions": "reject_unlisted_sender"})
    assert rcpt_reply(inst, sender="nobody@example.test") == (
        "550 5.1.0 <nobody@example.test>: Sender address rejected: User unknown in virtual "
        "mailbox table")
    assert rcpt_reply(inst, sender=ALICE).startswith("250 ")
    assert rcpt_reply(inst, sender="someone@example.org").startswith("250 ")


def test_check_sender_access_search_order(posthorn_factory):
    table = ("full@example.org REJECT full\n"
             "example.net REJECT domain\n"
             ".sub.example.com REJECT parent\n"
             "postmaster@ REJECT localpart\n"
             "user@example.org REJECT bare\n"
             "<> REJECT null\n"
             "ok@example.net OK\n")
    inst = make(posthorn_factory, {"smtpd_sender_restrictions":
                                   "check_sender_access texthash:{etc}/senders",
                                   "recipient_delimiter": "+"},
                files={"senders": table})

    def reason(sender):
        r = rcpt_reply(inst, sender=sender)
        return r.split("rejected: ", 1)[1] if "rejected: " in r else r[:3]
    assert reason("full@example.org") == "full"
    assert reason("FULL@Example.ORG") == "full"
    assert reason("x@example.net") == "domain"
    assert reason("ok@example.net") == "250"  # the whole address first
    assert reason("x@a.b.sub.example.com") == "parent"
    assert reason("x@sub.example.com") == "250"  # .parent: subdomains only
    assert reason("postmaster@anywhere.example") == "localpart"
    assert reason("user+ext@example.org") == "bare"
    assert reason("other@example.org") == "250"
    with client(inst) as c:
        c.want("MAIL FROM:<>", 250)
        c.want("RCPT TO:<%s>" % ALICE, 554, "554 5.7.1 <>: Sender address rejected: null")


# ---------------------------------------------------------------- recipient


def test_check_recipient_access(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_recipient_restrictions":
                                   "check_recipient_access texthash:{etc}/rcpt"},
                files={"rcpt": "bob@example.test REJECT gone\n"})
    assert rcpt_reply(inst, rcpt="bob@example.test") == \
        "554 5.7.1 <bob@example.test>: Recipient address rejected: gone"
    assert rcpt_reply(inst).startswith("250 ")


def test_reject_non_fqdn_recipient(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_recipient_restrictions": "reject_non_fqdn_recipient"},
                mynetworks="127.0.0.0/8")
    assert rcpt_reply(inst, rcpt="joe@host") == \
        "504 5.5.2 <joe@host>: Recipient address rejected: need fully-qualified address"
    assert rcpt_reply(inst).startswith("250 ")


def test_reject_unknown_recipient_domain(posthorn_factory, dns):
    dns.add_mx("exists.example.org", 10, "in.example.org")
    dns.add_servfail("broken.example.org")
    inst = make(posthorn_factory, {"smtpd_recipient_restrictions": "reject_unknown_recipient_domain"},
                mynetworks="127.0.0.0/8", dns=dns)
    assert rcpt_reply(inst, rcpt="x@nx.example.org") == \
        "450 4.1.2 <x@nx.example.org>: Recipient address rejected: Domain not found"
    assert rcpt_reply(inst, rcpt="x@broken.example.org") == \
        "450 4.1.2 <x@broken.example.org>: Recipient address rejected: Domain not found"
    assert rcpt_reply(inst, rcpt="x@exists.example.org").startswith("250 ")


def test_reject_unlisted_recipient_and_unauth_destination(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_reject_unlisted_recipient": "no",
                                   "smtpd_recipient_restrictions": "reject_unlisted_recipient"})
    assert rcpt_reply(inst, rcpt="nobody@example.test") == (
        "550 5.1.1 <nobody@example.test>: Recipient address rejected: User unknown in virtual "
        "mailbox table")
    assert rcpt_reply(inst).startswith("250 ")
    inst2 = make(posthorn_factory, {"smtpd_relay_restrictions": "permit_mynetworks, "
                                    "defer_unauth_destination"})
    assert rcpt_reply(inst2, rcpt="x@elsewhere.test") == \
        "454 4.7.1 <x@elsewhere.test>: Relay access denied"
    assert rcpt_reply(inst2).startswith("250 ")


def test_relay_recipient_maps(posthorn_factory):
    # Recipients in relay_domains must be listed (user@domain, or
    # @domain for a whole domain) once relay_recipient_maps is set;
    # virtual aliases count as listed, as in Postfix.
    cf = {"relay_domains": "relay.test, open.test, alias.test",
          "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
          "relay_recipient_maps": "texthash:{etc}/relay_rcpts",
          "virtual_alias_maps": "texthash:{etc}/valias"}
    inst = make(posthorn_factory, cf, mynetworks="127.0.0.0/8",
                files={"relay_rcpts": "known@relay.test x\n@open.test x\n",
                       "valias": "sales@alias.test alice@example.test\n"})
    assert rcpt_reply(inst, rcpt="known@relay.test").startswith("250 ")
    assert rcpt_reply(inst, rcpt="anyone@open.test").startswith("250 ")
    assert rcpt_reply(inst, rcpt="sales@alias.test").startswith("250 ")
    assert rcpt_reply(inst, rcpt="nobody@relay.test") == (
        "550 5.1.1 <nobody@relay.test>: Recipient address rejected: User unknown in relay "
        "recipient table")
    assert rcpt_reply(inst, rcpt="nobody@alias.test").startswith("550 5.1.1 ")
    inst.wait_for_log(r"NOQUEUE: reject: RCPT from \S+\[127\.0\.0\.1\]: 550 5\.1\.1 "
                      r"<nobody@relay\.test>: Recipient address rejected: User unknown in "
                      r"relay recipient table")
    # Its own code; without the table, every relay recipient is valid.
    cf2 = dict(cf, unknown_relay_recipient_reject_code="450")
    inst2 = make(posthorn_factory, cf2, mynetworks="127.0.0.0/8",
                 files={"relay_rcpts": "known@relay.test x\n", "valias": ""})
    assert rcpt_reply(inst2, rcpt="nobody@relay.test").startswith("450 4.1.1 ")
    cf3 = {k: v for k, v in cf.items() if k != "relay_recipient_maps"}
    inst3 = make(posthorn_factory, cf3, mynetworks="127.0.0.0/8", files={"valias": ""})
    assert rcpt_reply(inst3, rcpt="nobody@relay.test").startswith("250 ")
    # An unreadable table is a temporary failure, never an accept.
    cf4 = dict(cf, relay_recipient_maps="texthash:{etc}/missing")
    inst4 = make(posthorn_factory, cf4, mynetworks="127.0.0.0/8", files={"valias": ""})
    assert rcpt_reply(inst4, rcpt="known@relay.test")[:1] == "4"


def test_vrfy_runs_the_recipient_checks(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "reject"})
    with client(inst) as c:
        c.want("VRFY <%s>" % ALICE, 554, REJECT_CLIENT)
    inst.wait_for_log(r"NOQUEUE: reject: VRFY from unknown\[127\.0\.0\.1\]")


def test_many_recipients_keep_working(posthorn_factory, dns):
    # Delayed checks run at every RCPT; DNS answers are reused.
    dns.list_client("rbl.test")
    inst = make(posthorn_factory, {"smtpd_client_restrictions":
                                   "reject_rbl_client clean.test, permit"}, dns=dns)
    with client(inst) as c:
        c.want("MAIL FROM:<%s>" % SENDER, 250)
        for _ in range(5):
            c.want("RCPT TO:<%s>" % ALICE, 250)
    assert len(dns.asked("1.0.0.127.clean.test", "A")) == 1


def test_session_survives_a_closed_client(posthorn_factory):
    inst = make(posthorn_factory, {"smtpd_client_restrictions": "sleep 1, reject_unauth_pipelining"})
    s = socket.create_connection(("127.0.0.1", inst.smtp_port), timeout=10)
    s.sendall(b"EHLO x.example\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<alice@example.test>\r\n")
    s.close()
    time.sleep(1.5)
    assert rcpt_reply(inst).startswith("250 ")
    assert not inst.grep_log(r"panic|fatal")


# ---------------------------------------------------------------- SASL


AUTH_USER = "sub@example.test"
AUTH_PASSWORD = "s3cret-pw"


def _auth_instance(factory, main_cf):
    cf = {"smtpd_sasl_auth_enable": "yes", "auth_failure_delay": "0",
          "auth_failure_max_delay": "0", "passdb": "passwd-file:{etc}/users",
          "smtpd_sender_login_maps": "texthash:{etc}/logins"}
    cf.update(main_cf)
    return make(factory, cf, master_cf_extra="auth       unix  -  -  n  -    1  auth\n",
                files={"users": "%s:{PLAIN}%s\n" % (AUTH_USER, AUTH_PASSWORD),
                       "logins": "owned@example.org %s\n" % AUTH_USER})


def _login(c):
    token = base64.b64encode(("\0%s\0%s" % (AUTH_USER, AUTH_PASSWORD)).encode()).decode()
    c.want("AUTH PLAIN " + token, 235)


def test_permit_sasl_authenticated(posthorn_factory):
    inst = _auth_instance(posthorn_factory, {
        "smtpd_relay_restrictions": "permit_sasl_authenticated, reject_unauth_destination"})
    assert rcpt_reply(inst, rcpt="x@elsewhere.test") == \
        "554 5.7.1 <x@elsewhere.test>: Relay access denied"
    with client(inst) as c:
        _login(c)
        c.want("MAIL FROM:<%s>" % AUTH_USER, 250)
        c.want("RCPT TO:<x@elsewhere.test>", 250)


def test_sender_login_mismatch(posthorn_factory):
    inst = _auth_instance(posthorn_factory, {
        "smtpd_sender_restrictions": "reject_sender_login_mismatch"})
    # Not logged in: an owned sender is refused, others pass.
    assert rcpt_reply(inst, sender="owned@example.org") == \
        "553 5.7.1 <owned@example.org>: Sender address rejected: not logged in"
    assert rcpt_reply(inst, sender="free@example.org").startswith("250 ")
    with client(inst) as c:
        _login(c)
        c.want("MAIL FROM:<owned@example.org>", 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)
        c.want("RSET", 250)
        c.want("MAIL FROM:<free@example.org>", 250)
        c.want("RCPT TO:<%s>" % ALICE, 553,
               "553 5.7.1 <free@example.org>: Sender address rejected: not owned by user "
               "sub@example.test")
    # Only the unauthenticated half.
    inst2 = _auth_instance(posthorn_factory, {
        "smtpd_sender_restrictions": "reject_unauthenticated_sender_login_mismatch"})
    with client(inst2) as c:
        _login(c)
        c.want("MAIL FROM:<free@example.org>", 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)
