"""
smtpd's replies to everything but a plain transaction: refused recipients
and relaying, size limits, bad sequences and syntax, commands that are not
implemented, hostile input (garbage, NUL bytes, huge lines), the error
limit and the recipient limit.  Codes are RFC 5321 / Postfix's, each with
an enhanced status code (RFC 3463) since ENHANCEDSTATUSCODES is offered.
"""

import random
import socket
import threading
import time

import pytest

from posthorn import check_delivered, enhanced, make_message, queue_id_of, send_one

SENDER = "sender@example.org"


def reply_ok(got, code, enh=None, what=""):
    """Assert a (code, texts) reply has this code and enhanced-code prefix."""
    rcode, texts = got
    assert rcode == code, "%s: expected %d, got %r %r" % (what, code, rcode, texts)
    if enh is not None:
        e = enhanced(texts[0]) if texts else None
        assert e is not None and (e == enh or (enh.endswith(".") and e.startswith(enh))), \
            "%s: expected enhanced code %s, got %r" % (what, enh, texts)
    return texts


def ehlo_session(inst):
    c = inst.raw()
    c.expect("EHLO client.example.org", 250)
    return c


def assert_still_serving(inst, subject="still-serving"):
    """A fresh connection gets a greeting and a message goes all the way."""
    sent = make_message(subject)
    with inst.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["bob@example.test"], sent)
        assert code == 250, "after the abuse, a new transaction: %d %r" % (code, text)
    [(_, data)] = inst.wait_for_maildir("bob", 1)
    check_delivered(data, sent, SENDER, "bob@example.test", qid)


# ------------------------------------------------------------ greeting / EHLO


def test_greeting_and_ehlo_advertise_the_extensions(instance):
    with instance.raw(greet=False) as c:
        code, texts = c.reply()
        # Postfix's default smtpd_banner: $myhostname ESMTP $mail_name
        assert code == 220 and texts[0].startswith("mx.example.test ESMTP"), (code, texts)
        texts = c.expect("EHLO client.example.org", 250)
        assert texts[0].split()[0] == "mx.example.test", texts
        kw = {t.split()[0].upper(): t.split()[1:] for t in texts[1:]}
        for want in ("PIPELINING", "SIZE", "8BITMIME", "SMTPUTF8", "ENHANCEDSTATUSCODES", "DSN", "CHUNKING"):
            assert want in kw, "EHLO does not advertise %s: %r" % (want, texts)
        assert kw["SIZE"] == ["10240000"], "SIZE advertises %r, message_size_limit is 10240000" % kw["SIZE"]
        for absent in ("STARTTLS", "AUTH", "ETRN", "EXPN"):
            assert absent not in kw, "EHLO advertises %s, which is not implemented: %r" % (absent, texts)
        c.expect("QUIT", 221)


def test_helo_gets_250_with_hostname(instance):
    with instance.raw() as c:
        texts = c.expect("HELO client.example.org", 250)
        assert texts[0].startswith("mx.example.test"), texts


def test_ehlo_and_helo_without_argument_are_syntax_errors(instance):
    with instance.raw() as c:
        # No enhanced code yet: ENHANCEDSTATUSCODES has not been negotiated.
        reply_ok(c.cmd("EHLO"), 501, None, "EHLO without hostname")
        reply_ok(c.cmd("HELO"), 501, None, "HELO without hostname")
        c.expect("EHLO client.example.org", 250)


# ------------------------------------------------------------ recipients / relay


def test_unknown_user_rejected_550_5_1_1(instance):
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        texts = reply_ok(c.cmd("RCPT TO:<nobody-here@example.test>"), 550, "5.1.1", "RCPT unknown user")
        assert "nobody-here@example.test" in texts[0], texts
        # The transaction goes on with a known recipient.
        reply_ok(c.cmd("RCPT TO:<alice@example.test>"), 250, "2.1.5", "RCPT known user")
    instance.wait_for_log(r"reject: RCPT from .*550 5\.1\.1 <nobody-here@example.test>")


def test_recipient_lookup_ignores_case(instance):
    sent = make_message("upper-case")
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        reply_ok(c.cmd("RCPT TO:<ALICE@Example.TEST>"), 250, "2.1.5", "RCPT in upper case")
        c.expect("DATA", 354)
        c.send(sent + b".\r\n")
        reply_ok(c.reply(), 250, "2.0.0", "end of DATA")
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    assert data.endswith(sent.replace(b"\r\n", b"\n")), data


def test_relay_denied_outside_mynetworks(outside_instance):
    inst = outside_instance
    with ehlo_session(inst) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        code, texts = c.cmd("RCPT TO:<someone@foreign.example>")
        assert (code, enhanced(texts[0])) in ((454, "4.7.1"), (554, "5.7.1")), \
            "RCPT to a foreign domain from outside mynetworks: expected 454 4.7.1 or 554 5.7.1, got %r %r" % (code, texts)
        assert "Relay access denied" in texts[0], texts
        # Mail for our own domains is still accepted from anywhere.
        reply_ok(c.cmd("RCPT TO:<alice@example.test>"), 250, "2.1.5", "RCPT local user from outside")
        c.expect("QUIT", 221)
    inst.wait_for_log(r"NOQUEUE: reject: RCPT from .*<someone@foreign.example>: Relay access denied")


def test_relay_accepted_inside_mynetworks(instance):
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        reply_ok(c.cmd("RCPT TO:<someone@foreign.example>"), 250, "2.1.5", "RCPT foreign domain from mynetworks")
        c.expect("RSET", 250)


def test_utf8_address_without_smtputf8_rejected(instance):
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        reply_ok(c.cmd("RCPT TO:<jösé@example.test>"), 553, "5.6.7", "UTF-8 RCPT without SMTPUTF8")
        c.expect("RSET", 250)
        reply_ok(c.cmd("MAIL FROM:<sénder@example.org>"), 553, "5.6.7", "UTF-8 MAIL without SMTPUTF8")


@pytest.mark.instance(main_cf={"smtpd_recipient_limit": "5"},
                      users={"u%d@example.test" % i: "example.test/u%d/" % i for i in range(1, 8)})
def test_too_many_recipients_452_4_5_3(instance):
    sent = make_message("rcpt-limit")
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        for i in range(1, 6):
            reply_ok(c.cmd("RCPT TO:<u%d@example.test>" % i), 250, "2.1.5", "RCPT %d of 5" % i)
        reply_ok(c.cmd("RCPT TO:<u6@example.test>"), 452, "4.5.3", "RCPT 6 over smtpd_recipient_limit=5")
        reply_ok(c.cmd("RCPT TO:<u7@example.test>"), 452, "4.5.3", "RCPT 7 over smtpd_recipient_limit=5")
        # The five accepted ones still get the message.
        c.expect("DATA", 354)
        c.send(sent + b".\r\n")
        texts = reply_ok(c.reply(), 250, "2.0.0", "end of DATA")
        qid = queue_id_of(texts[0])
    for i in range(1, 6):
        [(_, data)] = instance.wait_for_maildir("u%d" % i, 1)
        check_delivered(data, sent, SENDER, "u%d@example.test" % i, qid)
    assert instance.messages("u6") == [] and instance.messages("u7") == []


# ------------------------------------------------------------ size


def test_declared_size_too_big_552_5_3_4(instance):
    with ehlo_session(instance) as c:
        reply_ok(c.cmd("MAIL FROM:<%s> SIZE=10240001" % SENDER), 552, "5.3.4", "MAIL SIZE over the limit")
        # A SIZE beyond any integer: too big (552 5.3.4), or Postfix's
        # "501 5.5.4 Bad message size syntax" when the number overflows.
        code, texts = c.cmd("MAIL FROM:<%s> SIZE=999999999999999999999" % SENDER)
        assert (code, enhanced(texts[0])) in ((552, "5.3.4"), (501, "5.5.4")), \
            "MAIL SIZE=huge: %r %r" % (code, texts)
        # At the limit is fine.
        reply_ok(c.cmd("MAIL FROM:<%s> SIZE=10240000" % SENDER), 250, "2.1.0", "MAIL SIZE at the limit")
        c.expect("RSET", 250)
        reply_ok(c.cmd("MAIL FROM:<%s> SIZE=abc" % SENDER), 501, "5.5.", "MAIL SIZE=abc")


def _send_big(c, payload):
    """Send payload while reading the reply concurrently (the server may answer early)."""
    err = []

    def writer():
        try:
            c.sock.sendall(payload)
        except OSError as e:
            err.append(e)

    t = threading.Thread(target=writer, daemon=True)
    t.start()
    got = c.reply()
    t.join(60)
    return got, err


def test_actual_size_too_big_552_then_session_still_works(instance):
    line = b"y" * 76 + b"\r\n"
    big = make_message("too-big", body_lines=[]) + line * (10_400_000 // len(line))
    assert len(big) > 10_240_000
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        c.expect("DATA", 354)
        got, err = _send_big(c, big + b".\r\n")
        assert not err, "sending the oversized message failed: %r (reply %r)" % (err, got)
        reply_ok(got, 552, "5.3.4", "end of DATA over message_size_limit")
        # The session is still usable.
        reply_ok(c.cmd("RSET"), 250, "2.0.0", "RSET after 552")
        small = make_message("after-too-big")
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        c.expect("DATA", 354)
        c.send(small + b".\r\n")
        texts = reply_ok(c.reply(), 250, "2.0.0", "end of DATA after 552")
        qid = queue_id_of(texts[0])
        c.expect("QUIT", 221)
    [(_, data)] = instance.wait_for_maildir("alice", 1, settle=1.0)
    check_delivered(data, small, SENDER, "alice@example.test", qid)
    instance.wait_queue_empty()


def test_bdat_too_big_552_5_3_4(instance):
    chunk = b"z" * 1_000_000
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        codes = []
        for i in range(12):
            c.send(b"BDAT %d\r\n" % len(chunk) + chunk)
            code, texts = c.reply()
            codes.append(code)
            if code != 250:
                break
        assert codes[-1] == 552 and enhanced(texts[0]) == "5.3.4", \
            "BDAT beyond message_size_limit: replies %r, last %r" % (codes, texts)
        assert len(codes) >= 10, "552 after only %d MB" % len(codes)
        c.expect("RSET", 250)
        c.expect("NOOP", 250)
    assert instance.messages("alice") == []


# ------------------------------------------------------------ sequence and syntax


def test_bad_sequence_503_5_5_1(instance):
    with ehlo_session(instance) as c:
        reply_ok(c.cmd("RCPT TO:<alice@example.test>"), 503, "5.5.1", "RCPT before MAIL")
        reply_ok(c.cmd("DATA"), 503, "5.5.1", "DATA before MAIL")
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        # RFC 5321 3.3 allows 503 or 554 here; Postfix says 554 5.5.1.
        code, texts = c.cmd("DATA")
        assert code in (503, 554) and enhanced(texts[0]) == "5.5.1", \
            "DATA before RCPT: expected 503/554 5.5.1, got %r %r" % (code, texts)
        reply_ok(c.cmd("MAIL FROM:<%s>" % SENDER), 503, "5.5.1", "nested MAIL")
        c.expect("RCPT TO:<alice@example.test>", 250)
        c.expect("RSET", 250)
        reply_ok(c.cmd("DATA"), 503, "5.5.1", "DATA after RSET")
        reply_ok(c.cmd("BDAT 0 LAST"), 503, "5.5.1", "BDAT before MAIL")


def test_unknown_command_rejected_5_5_2(instance):
    with ehlo_session(instance) as c:
        code, texts = c.cmd("FROBNICATE the widget")
        # RFC 5321 says 500 for an unrecognised command, Postfix sends 502.
        assert code in (500, 502) and enhanced(texts[0]) == "5.5.2", \
            "unknown command: expected 500 5.5.2, got %r %r" % (code, texts)
        reply_ok(c.cmd("NOOP"), 250, "2.0.0", "NOOP after unknown command")


def test_syntax_errors_501(instance):
    with ehlo_session(instance) as c:
        reply_ok(c.cmd("MAIL"), 501, "5.5.", "MAIL without FROM:")
        reply_ok(c.cmd("MAIL FROM:"), 501, "5.", "MAIL FROM: empty")
        reply_ok(c.cmd("MAIL FROM:<a b@example.org>"), 501, "5.", "MAIL space in address")
        reply_ok(c.cmd("MAIL FROM:<sender@example.org"), 501, "5.", "MAIL unterminated <")
        # Postfix: an unknown BODY= value is an unsupported option.
        reply_ok(c.cmd("MAIL FROM:<%s> BODY=7BITS" % SENDER), 555, "5.5.4", "MAIL BODY=7BITS")
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        reply_ok(c.cmd("RCPT"), 501, "5.5.", "RCPT without TO:")
        reply_ok(c.cmd("RCPT TO:<>"), 501, "5.", "RCPT TO:<>")
        reply_ok(c.cmd("RCPT TO:<<alice@example.test>>"), 501, "5.", "RCPT double brackets")
        reply_ok(c.cmd("RCPT TO:<alice@exa_mple..test>"), 501, "5.", "RCPT bad domain")
        reply_ok(c.cmd("VRFY"), 501, "5.5.", "VRFY without argument")
        reply_ok(c.cmd("NOOP"), 250, "2.0.0", "NOOP after syntax errors")


@pytest.mark.parametrize("line", ["BDAT", "BDAT ten", "BDAT 10 FIRST"])
def test_bdat_syntax_error(instance, line):
    """A BDAT whose size cannot be trusted: 501, or 521 and disconnect
    (Postfix does the latter: the chunk cannot be skipped)."""
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        code, texts = c.cmd(line)
        assert code in (501, 521) and enhanced(texts[0]) == "5.5.4", "%s: %r %r" % (line, code, texts)
        if code == 521:
            assert c.at_eof(), "connection open after 521"
        else:
            reply_ok(c.cmd("NOOP"), 250, "2.0.0", "NOOP after " + line)
    assert_still_serving(instance)


def test_unknown_mail_parameter_555(instance):
    with ehlo_session(instance) as c:
        reply_ok(c.cmd("MAIL FROM:<%s> FROB=1" % SENDER), 555, "5.5.4", "MAIL with unknown parameter")
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        reply_ok(c.cmd("RCPT TO:<alice@example.test> FROB=1"), 555, "5.5.4", "RCPT with unknown parameter")


def test_source_route_rejected_501(instance):
    with ehlo_session(instance) as c:
        reply_ok(c.cmd("MAIL FROM:<@relay.example:%s>" % SENDER), 501, "5.", "MAIL with source route")
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        reply_ok(c.cmd("RCPT TO:<@a.example,@b.example:alice@example.test>"), 501, "5.", "RCPT with source route")
        c.expect("RCPT TO:<alice@example.test>", 250)


def test_dsn_parameters_accepted(instance):
    sent = make_message("dsn-params")
    with ehlo_session(instance) as c:
        reply_ok(c.cmd("MAIL FROM:<%s> RET=HDRS ENVID=abc123" % SENDER), 250, "2.1.0", "MAIL RET ENVID")
        reply_ok(c.cmd("RCPT TO:<alice@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;alice@example.test"),
                 250, "2.1.5", "RCPT NOTIFY ORCPT")
        c.expect("DATA", 354)
        c.send(sent + b".\r\n")
        texts = reply_ok(c.reply(), 250, "2.0.0", "end of DATA")
        reply_ok(c.cmd("MAIL FROM:<%s> RET=SOMETIMES" % SENDER), 501, "5.5.", "MAIL RET=SOMETIMES")
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    check_delivered(data, sent, SENDER, "alice@example.test", queue_id_of(texts[0]))


# ------------------------------------------------------------ simple commands


def test_vrfy_252(instance):
    with ehlo_session(instance) as c:
        reply_ok(c.cmd("VRFY alice@example.test"), 252, "2.", "VRFY")


def test_noop_250(instance):
    with ehlo_session(instance) as c:
        reply_ok(c.cmd("NOOP"), 250, "2.0.0", "NOOP")
        reply_ok(c.cmd("NOOP with an argument"), 250, "2.0.0", "NOOP arg")


def test_help_214(instance):
    with ehlo_session(instance) as c:
        reply_ok(c.cmd("HELP"), 214, None, "HELP")
        reply_ok(c.cmd("NOOP"), 250, "2.0.0", "NOOP after HELP")


def test_rset_clears_the_transaction(instance):
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        reply_ok(c.cmd("RSET"), 250, "2.0.0", "RSET")
        reply_ok(c.cmd("DATA"), 503, "5.5.1", "DATA after RSET")
        reply_ok(c.cmd("MAIL FROM:<%s>" % SENDER), 250, "2.1.0", "MAIL after RSET")


def test_quit_221_and_close(instance):
    with ehlo_session(instance) as c:
        reply_ok(c.cmd("QUIT"), 221, "2.0.0", "QUIT")
        assert c.at_eof(), "connection still open after 221"


def test_lowercase_commands_work(instance):
    with instance.raw() as c:
        c.expect("ehlo client.example.org", 250)
        c.expect("mail from:<%s>" % SENDER, 250)
        c.expect("rcpt to:<alice@example.test>", 250)
        c.expect("rset", 250)
        c.expect("quit", 221)


@pytest.mark.parametrize("line,codes", [
    ("EXPN team@example.test", (502,)),
    ("ETRN example.test", (502,)),
    ("STARTTLS", (502,)),
    # Postfix answers AUTH without SASL with 503 5.5.1 "authentication not enabled".
    ("AUTH PLAIN AGFsaWNlAHNlY3JldA==", (502, 503)),
])
def test_not_implemented_commands_502(instance, line, codes):
    with ehlo_session(instance) as c:
        code, texts = c.cmd(line)
        assert code in codes and (enhanced(texts[0]) or "").startswith("5.5."), \
            "%s: expected %s 5.5.x, got %r %r" % (line, codes, code, texts)
        reply_ok(c.cmd("NOOP"), 250, "2.0.0", "NOOP after " + line)


# ------------------------------------------------------------ timeouts


@pytest.mark.instance(main_cf={"smtpd_timeout": "2s"})
def test_idle_client_gets_421_after_smtpd_timeout(instance):
    with ehlo_session(instance) as c:
        t0 = time.monotonic()
        code, texts = c.reply()
        waited = time.monotonic() - t0
        assert code == 421 and enhanced(texts[0]) == "4.4.2", "idle client: expected 421 4.4.2, got %r %r" % (code, texts)
        assert 1.5 <= waited <= 20, "timed out after %.1fs with smtpd_timeout=2s" % waited
        assert c.at_eof(), "connection open after the timeout 421"
    instance.wait_for_log(r"timeout after EHLO from \S+\[127\.0\.0\.1\]")


@pytest.mark.instance(main_cf={"smtpd_timeout": "2s"})
def test_timeout_inside_data_queues_nothing(instance):
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        c.expect("DATA", 354)
        c.send(make_message("stalled")[:120])
        code, texts = c.reply()
        assert code == 421 and enhanced(texts[0]) == "4.4.2", (code, texts)
        assert c.at_eof()
    assert_still_serving(instance)
    assert instance.messages("alice") == []
    instance.wait_queue_empty()


# ------------------------------------------------------------ hostile input


def _read_replies(c, want, timeout=30):
    """Up to `want` replies, stopping early when the server closes."""
    out = []
    deadline = time.monotonic() + timeout
    while len(out) < want and time.monotonic() < deadline:
        try:
            code, texts = c.reply()
        except (ConnectionResetError, socket.timeout):
            break
        if code is None:
            break
        out.append((code, texts))
    return out


def test_garbage_bytes_get_errors_and_server_keeps_serving(instance):
    rng = random.Random(20240101)
    lines = []
    for _ in range(5):
        raw = bytes(rng.randrange(256) for _ in range(300))
        lines.append(raw.replace(b"\r", b"").replace(b"\n", b"") + b"\r\n")
    with instance.raw() as c:
        try:
            c.send(b"".join(lines))
        except OSError:
            pass
        replies = _read_replies(c, len(lines))
        assert replies, "no reply at all to binary garbage"
        for code, texts in replies:
            # An error, or Postfix's goodbye to non-SMTP input:
            # "221 2.7.0 Error: I can break rules, too. Goodbye."
            goodbye = code == 221 and "Error" in texts[0]
            assert code >= 500 or code == 421 or goodbye, \
                "garbage line got a non-error reply %r %r" % (code, texts)
            if code in (221, 421):
                assert c.at_eof(), "connection open after %d" % code
    assert_still_serving(instance)


def test_nul_bytes_in_command_500_and_session_goes_on(instance):
    with ehlo_session(instance) as c:
        c.send(b"NOOP\x00hidden\r\n")
        reply_ok(c.reply(), 500, "5.5.", "NOOP with NUL byte")
        c.send(b"MAIL FROM:<sen\x00der@example.org>\r\n")
        reply_ok(c.reply(), 500, "5.5.", "MAIL with NUL byte")
        reply_ok(c.cmd("NOOP"), 250, "2.0.0", "NOOP after NUL bytes")
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
    assert_still_serving(instance)


def test_one_megabyte_command_line_gets_error_and_server_carries_on(instance):
    with ehlo_session(instance) as c:
        got, _err = _send_big(c, b"NOOP " + b"x" * (1 << 20) + b"\r\n")
        code, texts = got
        assert code is not None, "server closed without a reply to a 1 MB line"
        assert code >= 500 or code == 421, "1 MB line: expected an error reply, got %r %r" % (code, texts)
        if code != 421 and not c.at_eof(0.5):
            # A 5xx that is not a goodbye means the session goes on.
            reply_ok(c.cmd("NOOP"), 250, "2.0.0", "NOOP after the 1 MB line")
    assert_still_serving(instance)


def test_one_megabyte_body_line_is_delivered_or_refused_cleanly(instance):
    sent = make_message("long-body-line", body_lines=["before", "L" * (1 << 20), "after"])
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        c.expect("DATA", 354)
        got, err = _send_big(c, sent + b".\r\n")
        code, texts = got
        assert not err and code is not None, "1 MB body line: %r %r" % (got, err)
        if code == 250:
            qid = queue_id_of(texts[0])
        else:
            assert 500 <= code < 600, "1 MB body line: %r %r" % (code, texts)
            reply_ok(c.cmd("RSET"), 250, "2.0.0", "RSET after refused long line")
            qid = None
        reply_ok(c.cmd("NOOP"), 250, "2.0.0", "NOOP after the long body line")
    if qid:
        [(_, data)] = instance.wait_for_maildir("alice", 1)
        check_delivered(data, sent, SENDER, "alice@example.test", qid)
    else:
        assert_still_serving(instance)


def test_too_many_errors_421_and_disconnect(instance):
    with ehlo_session(instance) as c:
        codes = []
        for i in range(40):
            try:
                code, texts = c.cmd("BOGUS%d" % i)
            except (ConnectionResetError, BrokenPipeError):
                break
            if code is None:
                break
            codes.append(code)
            if code == 421:
                break
        assert codes and codes[0] in (500, 502), codes
        assert codes[-1] == 421, "no 421 after %d errors: %r" % (len(codes), codes)
        assert enhanced(texts[0]) and enhanced(texts[0]).startswith("4."), texts
        # smtpd_hard_error_limit defaults to 20.
        assert len(codes) <= 21, "421 only after %d errors" % len(codes)
        assert c.at_eof(), "connection still open after 421"
    assert_still_serving(instance)


@pytest.mark.parametrize("seq", [b"\n.\r\n", b"\r\n.\n", b"\n.\n", b"\r.\r\n"],
                         ids=["LF.CRLF", "CRLF.LF", "LF.LF", "CR.CRLF"])
def test_smtp_smuggling_needs_crlf_dot_crlf(instance, seq):
    """Only <CR><LF>.<CR><LF> ends DATA (Postfix's smtpd_forbid_bare_newline
    = normalize): a sloppier end-of-data would let a client smuggle a second
    message past the first one's checks."""
    first = make_message("smuggle-carrier", body_lines=[])
    smuggled = (b"before" + seq + b"MAIL FROM:<smuggled@evil.example>\r\nRCPT TO:<bob@example.test>\r\n"
                b"DATA\r\nSubject: smuggled\r\n\r\nsmuggled body\r\n.\r\nQUIT\r\n")
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        c.expect("DATA", 354)
        c.send(first + smuggled)
        replies = _read_replies(c, 6, timeout=15)
        assert [r[0] for r in replies] == [250, 221], \
            "%r taken as end of data: replies %r" % (seq, replies)
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    assert b"MAIL FROM:<smuggled@evil.example>" in data, data
    assert instance.messages("bob") == []


def test_client_closing_mid_data_loses_nothing_else(instance):
    """A client that vanishes inside DATA: nothing delivered, server fine."""
    with ehlo_session(instance) as c:
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        c.expect("DATA", 354)
        c.send(make_message("half")[:100])
    time.sleep(1)
    assert_still_serving(instance)
    assert instance.messages("alice") == []
    instance.wait_queue_empty()
