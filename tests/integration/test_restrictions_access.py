"""
access(5) tables in smtpd's restriction lists, from the outside: every
action a table result may ask for (OK, RELAY, REJECT, DEFER,
DEFER_IF_REJECT, DEFER_IF_PERMIT, DUNNO, WARN, HOLD, DISCARD, FILTER,
REDIRECT, BCC, PREPEND, 4NN/5NN text, all digits, restriction and class
names), shown firing and not firing; what reaches cleanup and the queue
(hold/, the content_filter record, the delivered headers and mailboxes);
the client lookup order (name and parent domains, address and networks)
with hash-like and cidr tables; restriction classes and their recursion
limit; and broken tables (a bad regexp, a missing indexed file, a table
name inside a result): a clear log line and 451 4.3.5, never a crash.
"""

import time

from fakesmtp import Remote
from restrict_util import (ALICE, BOB, SENDER, UNKNOWN, client, dns, make,  # noqa: F401
                           queue_attrs, rcpt_reply, send)

RCPT_ACCESS = {"smtpd_recipient_restrictions": "check_recipient_access texthash:{etc}/access"}


def access(factory, table, main_cf=None, **kw):
    cf = dict(RCPT_ACCESS)
    cf.update(main_cf or {})
    return make(factory, cf, files={"access": table}, **kw)


def test_ok_and_relay(posthorn_factory):
    inst = make(posthorn_factory, {
        "smtpd_relay_restrictions": "check_recipient_access texthash:{etc}/access, "
                                    "reject_unauth_destination"},
        files={"access": "x@elsewhere.test OK\ny@elsewhere.test RELAY\n"},
        master_cf_extra="")
    assert rcpt_reply(inst, rcpt="x@elsewhere.test").startswith("250 ")
    assert rcpt_reply(inst, rcpt="y@elsewhere.test").startswith("250 ")
    assert rcpt_reply(inst, rcpt="z@elsewhere.test") == \
        "554 5.7.1 <z@elsewhere.test>: Relay access denied"


def test_ok_never_opens_source_routes(posthorn_factory):
    # "OK" for a recipient with sender-specified routing is not trusted.
    inst = make(posthorn_factory, {
        "relay_domains": "relay.test",
        "smtpd_relay_restrictions": "check_recipient_access texthash:{etc}/access, "
                                    "reject_unauth_destination"},
        files={"access": "relay.test OK\n"})
    assert rcpt_reply(inst, rcpt="x%evil.test@relay.test") == \
        "554 5.7.1 <x%evil.test@relay.test>: Relay access denied"
    assert rcpt_reply(inst, rcpt="x@relay.test").startswith("250 ")


def test_reject_with_text_and_dsn(posthorn_factory):
    inst = access(posthorn_factory,
                  "alice@example.test REJECT 5.7.9 not today\n"
                  "bob@example.test REJECT\n")
    assert rcpt_reply(inst) == \
        "554 5.7.9 <alice@example.test>: Recipient address rejected: not today"
    assert rcpt_reply(inst, rcpt=BOB) == \
        "554 5.7.1 <bob@example.test>: Recipient address rejected: Access denied"
    inst.wait_for_log(r"NOQUEUE: reject: RCPT from unknown\[127\.0\.0\.1\]: 554 5\.7\.9 "
                      r"<alice@example\.test>: Recipient address rejected: not today; "
                      r"from=<sender@example\.org> to=<alice@example\.test>")
    # access_map_reject_code, and an address DSN fitted to a sender.
    inst2 = make(posthorn_factory, {
        "access_map_reject_code": "550",
        "smtpd_sender_restrictions": "check_sender_access texthash:{etc}/access"},
        files={"access": "bad@example.org REJECT 5.1.1 no such sender\n"})
    assert rcpt_reply(inst2, sender="bad@example.org") == \
        "550 5.1.0 <bad@example.org>: Sender address rejected: no such sender"
    assert rcpt_reply(inst2).startswith("250 ")


def test_defer(posthorn_factory):
    inst = access(posthorn_factory, "alice@example.test DEFER\nbob@example.test DEFER come back\n")
    assert rcpt_reply(inst) == \
        "450 4.7.1 <alice@example.test>: Recipient address rejected: Access denied"
    assert rcpt_reply(inst, rcpt=BOB) == \
        "450 4.7.1 <bob@example.test>: Recipient address rejected: come back"


def test_defer_if_reject_and_defer_if_permit(posthorn_factory):
    inst = make(posthorn_factory, {
        "smtpd_client_restrictions": "check_client_access texthash:{etc}/client, reject",
        "smtpd_recipient_restrictions": "check_recipient_access texthash:{etc}/rcpt"},
        files={"client": "127.0.0.1 DEFER_IF_REJECT maybe later\n",
               "rcpt": "alice@example.test DEFER_IF_PERMIT\n"})
    # DEFER_IF_REJECT: the reject that follows becomes our 450.
    assert rcpt_reply(inst) == \
        "450 4.7.1 <%s>: Client host rejected: maybe later" % UNKNOWN
    inst2 = make(posthorn_factory, {
        "smtpd_recipient_restrictions": "check_recipient_access texthash:{etc}/rcpt"},
        files={"rcpt": "alice@example.test DEFER_IF_PERMIT\n"})
    # DEFER_IF_PERMIT: the permit at the end becomes a 450.
    assert rcpt_reply(inst2) == \
        "450 4.7.1 <alice@example.test>: Recipient address rejected: Service unavailable"
    assert rcpt_reply(inst2, rcpt=BOB).startswith("250 ")


def test_dunno_ends_the_table_only(posthorn_factory):
    inst = access(posthorn_factory, "alice@example.test DUNNO\nexample.test REJECT domain\n",
                  {"smtpd_recipient_restrictions":
                   "check_recipient_access texthash:{etc}/access, permit"})
    assert rcpt_reply(inst).startswith("250 ")
    assert rcpt_reply(inst, rcpt=BOB) == \
        "554 5.7.1 <bob@example.test>: Recipient address rejected: domain"


def test_numeric_results(posthorn_factory):
    inst = access(posthorn_factory,
                  "alice@example.test 550 go away\n"
                  "bob@example.test 421 4.7.2 busy\n"
                  "info@example.test 12345\n",
                  {"smtpd_recipient_restrictions":
                   "check_recipient_access texthash:{etc}/access, reject"})
    assert rcpt_reply(inst) == \
        "550 5.7.1 <alice@example.test>: Recipient address rejected: go away"
    assert rcpt_reply(inst, rcpt=BOB) == \
        "421 4.7.2 <bob@example.test>: Recipient address rejected: busy"
    # All digits means OK (the reject after it is not reached).
    assert rcpt_reply(inst, rcpt="info@example.test").startswith("250 ")


def test_warn(posthorn_factory):
    inst = access(posthorn_factory, "alice@example.test WARN watch this one\n")
    assert rcpt_reply(inst).startswith("250 ")
    inst.wait_for_log(r"NOQUEUE: warn: RCPT from unknown\[127\.0\.0\.1\]: watch this one; "
                      r"from=<sender@example\.org> to=<alice@example\.test>")
    assert rcpt_reply(inst, rcpt=BOB).startswith("250 ")
    assert len(inst.grep_log(r"NOQUEUE: warn:")) == 1


def test_hold(posthorn_factory):
    inst = access(posthorn_factory, "alice@example.test HOLD\n")
    reply = send(inst)
    qid = reply.rsplit(" ", 1)[1]
    inst.wait_for_log(r"NOQUEUE: hold: RCPT from unknown\[127\.0\.0\.1\]: <alice@example\.test>: "
                      r"Recipient address triggers HOLD action")
    deadline = time.monotonic() + 10
    while qid not in inst.queue_files()["hold"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert qid in inst.queue_files()["hold"], inst.queue_dump()
    time.sleep(1)
    assert inst.maildir_files(ALICE) == []
    # Not firing: bob's mail is delivered.
    send(inst, rcpts=(BOB,))
    inst.wait_for_maildir(BOB, 1)


def test_discard(posthorn_factory):
    inst = access(posthorn_factory, "alice@example.test DISCARD spam trap\n")
    reply = send(inst, rcpts=(ALICE, BOB))
    assert reply.startswith("250 2.0.0 Ok: queued as ")
    inst.wait_for_log(r"NOQUEUE: discard: RCPT from unknown\[127\.0\.0\.1\]: <alice@example\.test>: "
                      r"Recipient address spam trap")
    inst.wait_for_log(r"discard: requested by smtpd access restrictions")
    time.sleep(1)
    assert inst.maildir_files(ALICE) == [] and inst.maildir_files(BOB) == []
    assert not any(inst.queue_files().values()), inst.queue_dump()
    # After DISCARD every recipient is accepted, even an unknown one.
    with client(inst) as c:
        c.want("MAIL FROM:<%s>" % SENDER, 250)
        c.want("RCPT TO:<%s>" % ALICE, 250)
        c.want("RCPT TO:<nobody@example.test>", 250)
    # Not firing: a clean transaction is delivered.
    send(inst, rcpts=(BOB,))
    inst.wait_for_maildir(BOB, 1)


def test_filter_goes_to_the_queue_file_and_to_the_filter(posthorn_factory):
    remote = Remote()
    try:
        inst = make(posthorn_factory, {
            "smtpd_sender_restrictions": "check_sender_access texthash:{etc}/senders",
            "smtpd_recipient_restrictions": "check_recipient_access texthash:{etc}/access",
            "smtp_tls_security_level": "none"},
            files={"access": "alice@example.test FILTER smtp:%s\n" % remote.hop(),
                   "senders": "held@example.org HOLD\n"})
        # With HOLD too, the queue file shows the content_filter record.
        qid = send(inst, sender="held@example.org").rsplit(" ", 1)[1]
        inst.wait_for_log(r"NOQUEUE: filter: RCPT from unknown\[127\.0\.0\.1\]: "
                          r"<alice@example\.test>: Recipient address triggers FILTER smtp:")
        deadline = time.monotonic() + 10
        while qid not in inst.queue_files()["hold"] and time.monotonic() < deadline:
            time.sleep(0.1)
        attrs = queue_attrs(inst.queue / "hold" / qid)
        assert "content_filter=smtp:%s" % remote.hop() in attrs, attrs
        # Without HOLD, qmgr sends the message to the filter, not to alice.
        send(inst)
        deadline = time.monotonic() + 30
        while not remote.received() and time.monotonic() < deadline:
            time.sleep(0.1)
        got = remote.received()
        assert len(got) == 1 and got[0][1] == [ALICE], got
        assert inst.maildir_files(ALICE) == []
        # Not firing: bob's mail goes to bob.
        send(inst, rcpts=(BOB,))
        inst.wait_for_maildir(BOB, 1)
    finally:
        remote.stop()


def test_prepend(posthorn_factory):
    inst = access(posthorn_factory, "alice@example.test PREPEND X-Checked: by the access table\n"
                                    "bob@example.test PREPEND not a header\n")
    send(inst)
    data = inst.wait_for_maildir(ALICE, 1)[0][1]
    head = data.split(b"\n\n", 1)[0]
    assert b"\nX-Checked: by the access table\nReceived: " in head, head
    send(inst, rcpts=(BOB,))
    data = inst.wait_for_maildir(BOB, 1)[0][1]
    assert b"X-Checked" not in data and b"not a header" not in data
    inst.wait_for_log(r"warning: access table texthash:\S+ entry \"bob@example\.test\" requires "
                      r"header: text")


def test_redirect_and_bcc(posthorn_factory):
    inst = access(posthorn_factory, "alice@example.test REDIRECT bob@example.test\n"
                                    "info@example.test BCC bob@example.test\n")
    send(inst, subject="redirected")
    inst.wait_for_log(r"NOQUEUE: redirect: RCPT from unknown\[127\.0\.0\.1\]: <alice@example\.test>: "
                      r"Recipient address triggers REDIRECT bob@example\.test")
    msgs = inst.wait_for_maildir(BOB, 1)
    assert b"Subject: redirected" in msgs[0][1]
    assert inst.maildir_files(ALICE) == []
    # info@ is an alias of alice; the BCC copy goes to bob.
    send(inst, rcpts=("info@example.test",), subject="copied")
    msgs = inst.wait_for_maildir(BOB, 2)
    assert any(b"Subject: copied" in m[1] for m in msgs)
    msgs = inst.wait_for_maildir(ALICE, 1)
    assert len(msgs) == 1 and b"Subject: copied" in msgs[0][1]


def test_actions_need_a_transaction(posthorn_factory):
    # smtpd_delay_reject = no: client restrictions run at connect, outside
    # any transaction; HOLD there is skipped with a warning, as in Postfix.
    inst = make(posthorn_factory, {
        "smtpd_delay_reject": "no",
        "smtpd_client_restrictions": "check_client_access texthash:{etc}/client"},
        files={"client": "127.0.0.1 HOLD\n"})
    send(inst)
    inst.wait_for_maildir(ALICE, 1)
    inst.wait_for_log(r"warning: access table texthash:\S+: with smtpd_delay_reject=no, action "
                      r"HOLD is always skipped")


def test_end_of_data_hold(posthorn_factory):
    inst = make(posthorn_factory, {
        "smtpd_end_of_data_restrictions": "check_sender_access texthash:{etc}/senders"},
        files={"senders": "held@example.org HOLD\n"})
    qid = send(inst, sender="held@example.org").rsplit(" ", 1)[1]
    deadline = time.monotonic() + 10
    while qid not in inst.queue_files()["hold"] and time.monotonic() < deadline:
        time.sleep(0.1)
    assert qid in inst.queue_files()["hold"], inst.queue_dump()
    send(inst)
    inst.wait_for_maildir(ALICE, 1)


def test_restriction_names_and_classes_as_results(posthorn_factory):
    inst = make(posthorn_factory, {
        "smtpd_restriction_classes": "strict, friendly",
        "strict": "reject_non_fqdn_helo_hostname, reject",
        "friendly": "permit",
        "smtpd_recipient_restrictions":
            "check_recipient_access texthash:{etc}/access, strict"},
        files={"access": "alice@example.test friendly\n"
                         "info@example.test reject_non_fqdn_helo_hostname\n"})
    # A class named by a table result, and a class in the list itself.
    assert rcpt_reply(inst).startswith("250 ")
    assert rcpt_reply(inst, rcpt=BOB) == \
        "554 5.7.1 <bob@example.test>: Recipient address rejected: Access denied"
    assert rcpt_reply(inst, rcpt="info@example.test", helo="HELO short") == \
        "504 5.5.2 <short>: Helo command rejected: need fully-qualified hostname"


def test_class_recursion_is_a_configuration_error(posthorn_factory):
    inst = make(posthorn_factory, {
        "smtpd_restriction_classes": "loop",
        "loop": "loop",
        "smtpd_recipient_restrictions": "loop"})
    assert rcpt_reply(inst) == "451 4.3.5 Server configuration error"
    inst.wait_for_log(r"warning: restriction class loop causes unreasonable recursion")
    assert not inst.grep_log(r"panic|fatal")


def test_table_inside_a_result_is_refused(posthorn_factory):
    inst = access(posthorn_factory, "alice@example.test check_client_access texthash:/etc/x\n")
    assert rcpt_reply(inst) == "451 4.3.5 Server configuration error"
    inst.wait_for_log(r"warning: access table texthash:\S+ has entry with lookup table")
    assert rcpt_reply(inst, rcpt=BOB).startswith("250 ")


def test_broken_tables(posthorn_factory):
    inst = make(posthorn_factory, {
        "smtpd_client_restrictions": "check_client_access pcre:{etc}/client.pcre",
        "smtpd_sender_restrictions": "check_sender_access hash:{etc}/missing"},
        files={"client.pcre": "/^127\\.(/ REJECT\n"})
    assert rcpt_reply(inst) == "451 4.3.5 Server configuration error"
    inst.wait_for_log(r"error: access table pcre:\S+client\.pcre: \S+client\.pcre:1: error in regex")
    inst.wait_for_log(r"error: access table hash:\S+missing: ")
    assert not inst.grep_log(r"panic|fatal")
    # The same lists with working tables.
    inst2 = make(posthorn_factory, {
        "smtpd_client_restrictions": "check_client_access pcre:{etc}/client.pcre"},
        files={"client.pcre": "/^127\\.0\\.0\\.2$/ REJECT\n"})
    assert rcpt_reply(inst2).startswith("250 ")


def test_check_client_access_order(posthorn_factory, dns):
    dns.add_ptr("127.0.0.1", "mail.client.test")
    dns.add_a("mail.client.test", "127.0.0.1")
    cf = {"smtpd_client_restrictions": "check_client_access texthash:{etc}/client"}
    inst = make(posthorn_factory, cf, files={"client": ".client.test REJECT by name\n"
                                                       "127.0 REJECT by net\n"},
                dns=dns, lookup=True)
    # The name (and its parents) before the address.
    assert rcpt_reply(inst) == \
        "554 5.7.1 <mail.client.test[127.0.0.1]>: Client host rejected: by name"
    inst2 = make(posthorn_factory, cf, files={"client": "127.0 REJECT by net\n"})
    assert rcpt_reply(inst2) == "554 5.7.1 <%s>: Client host rejected: by net" % UNKNOWN
    inst3 = make(posthorn_factory, cf, files={"client": "127.0.0.2 REJECT other\n10 REJECT x\n"})
    assert rcpt_reply(inst3).startswith("250 ")
    # Pattern tables get the whole address only.
    inst4 = make(posthorn_factory, {
        "smtpd_client_restrictions": "check_client_access cidr:{etc}/client.cidr"},
        files={"client.cidr": "127.0.0.0/8 REJECT by cidr\n"})
    assert rcpt_reply(inst4) == "554 5.7.1 <%s>: Client host rejected: by cidr" % UNKNOWN


def test_check_reverse_client_hostname_access(posthorn_factory, dns):
    dns.add_ptr("127.0.0.1", "dyn-1.isp.test")  # no forward record: unverified
    inst = make(posthorn_factory, {
        "smtpd_client_restrictions": "check_reverse_client_hostname_access texthash:{etc}/rev"},
        files={"rev": ".isp.test REJECT dynamic address\n"}, dns=dns, lookup=True)
    assert rcpt_reply(inst) == \
        "554 5.7.1 <dyn-1.isp.test>: Unverified Client host rejected: dynamic address"
    inst2 = make(posthorn_factory, {
        "smtpd_client_restrictions": "check_reverse_client_hostname_access texthash:{etc}/rev"},
        files={"rev": ".other.test REJECT dynamic address\n"}, dns=dns, lookup=True)
    assert rcpt_reply(inst2).startswith("250 ")


def test_bare_table_in_a_list(posthorn_factory):
    # A "type:name" element means the list's own check_*_access.
    inst = make(posthorn_factory, {"smtpd_sender_restrictions": "texthash:{etc}/senders"},
                files={"senders": "bad@example.org REJECT bare table\n"})
    assert rcpt_reply(inst, sender="bad@example.org") == \
        "554 5.7.1 <bad@example.org>: Sender address rejected: bare table"
    assert rcpt_reply(inst).startswith("250 ")
