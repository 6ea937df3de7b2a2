"""
Mail sent over SMTP arrives, byte for byte, in the right Maildir: the
content the client sent (CRLF -> LF, transparency removed) after the
trace headers posthorn adds (Return-Path, Delivered-To, Received), with
Message-ID and Date added only when the message had none.
"""

import os
import re
import time

import pytest

from posthorn import check_delivered, lf, make_message, parse_maildir_name, queue_id_of, send_one

SENDER = "sender@example.org"


def _only(inst, user, count=1):
    msgs = inst.wait_for_maildir(user, count)
    assert len(msgs) == count, "%s: expected exactly %d message(s), found %d: %r" % (
        user, count, len(msgs), [p.name for p, _ in msgs])
    return msgs


def test_message_arrives_byte_for_byte_with_trace_headers(instance):
    sent = make_message("byte-for-byte", body_lines=[
        "Line one", "", "  leading spaces kept", "trailing spaces kept   ", "\ttab", "x" * 900, "last"])
    t0 = int(time.time())
    with instance.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["alice@example.test"], sent)
        assert code == 250, "end of DATA: expected 250, got %d %r" % (code, text)
        assert text.startswith("2.0.0 "), "end of DATA reply lacks 2.0.0: %r" % text
        assert qid, "no 'queued as ID' in %r" % text
    [(path, data)] = _only(instance, "alice")
    received = check_delivered(data, sent, SENDER, "alice@example.test", qid)
    assert "with ESMTP" in received, received
    # Postfix's form: from HELO (NAME [ADDR]).
    assert re.search(r"^Received: from client\.example\.org \(\S+ \[127\.0\.0\.1\]\)", received), received
    # Maildir conventions: new/<time>.<unique>.<host>, nothing left in tmp/.
    parsed = parse_maildir_name(path.name)
    assert parsed, "Maildir file name %r is not <time>.<unique>.<host>" % path.name
    assert t0 - 5 <= parsed[0] <= time.time() + 5, "Maildir time %d, sent at %d" % (parsed[0], t0)
    assert instance.maildir_files("alice", "tmp") == [], "left in tmp/"
    st = os.stat(path)
    assert st.st_uid == instance.uid, "Maildir file owned by uid %d, expected %d" % (st.st_uid, instance.uid)
    assert instance.messages("bob") == []
    # The log tells the story the Postfix way.
    instance.wait_for_log(r"%s: removed" % qid)
    assert instance.grep_log(r"%s: message-id=<byte-for-byte@example.org>" % qid)
    sent_lines = instance.grep_log(r"%s: to=<alice@example.test>,.*status=sent" % qid)
    assert sent_lines and "dsn=2.0.0" in sent_lines[0], sent_lines
    instance.wait_queue_empty()


def test_missing_message_id_and_date_are_added(instance):
    sent = make_message("no-id-no-date", message_id=False, date=False)
    with instance.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["alice@example.test"], sent)
        assert code == 250, text
    [(_, data)] = _only(instance, "alice")
    check_delivered(data, sent, SENDER, "alice@example.test", qid, expect_added_id_date=True)


def test_helo_session_is_logged_as_smtp_in_received(instance):
    sent = make_message("plain-smtp")
    with instance.raw() as c:
        c.expect("HELO client.example.org", 250)
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        c.expect("DATA", 354)
        c.send(sent + b".\r\n")
        code, texts = c.reply()
        assert code == 250, (code, texts)
        qid = queue_id_of(texts[0])
        c.expect("QUIT", 221)
    [(_, data)] = _only(instance, "alice")
    received = check_delivered(data, sent, SENDER, "alice@example.test", qid)
    assert "with SMTP " in received, received


@pytest.mark.parametrize("header", [
    "Return-Path: <forged@evil.example>",
    # Postfix's message_drop_headers default drops these too.
    "Bcc: secret@example.org",
    "Resent-Bcc: secret@example.org",
    "Content-Length: 12",
])
def test_cleanup_drops_return_path_bcc_and_content_length(instance, header):
    sent = make_message("drop-header", extra_headers=[header])
    with instance.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["alice@example.test"], sent)
        assert code == 250, text
    [(_, data)] = _only(instance, "alice")
    # What should arrive: the message without that header line.
    want = sent.replace(header.encode() + b"\r\n", b"")
    check_delivered(data, want, SENDER, "alice@example.test", qid)


def test_null_sender_gets_empty_return_path(instance):
    sent = make_message("null-sender")
    with instance.smtp() as s:
        code, text, qid = send_one(s, "<>", ["bob@example.test"], sent)
        assert code == 250, text
    [(_, data)] = _only(instance, "bob")
    check_delivered(data, sent, "", "bob@example.test", qid)


def test_alias_fans_out_one_copy_per_mailbox(instance):
    sent = make_message("to-the-team", to="team@example.test")
    with instance.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["team@example.test"], sent)
        assert code == 250, text
    for user in ("alice", "bob"):
        [(_, data)] = _only(instance, user)
        check_delivered(data, sent, SENDER, "%s@example.test" % user, qid, orig_rcpt="team@example.test")
    instance.wait_for_log(r"%s: removed" % qid)
    # Wait out a possible late duplicate, then count again.
    time.sleep(1)
    assert len(instance.messages("alice")) == 1 and len(instance.messages("bob")) == 1


def test_single_alias_delivers_to_its_target(instance):
    sent = make_message("info-alias", to="info@example.test")
    with instance.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["info@example.test"], sent)
        assert code == 250, text
    [(_, data)] = _only(instance, "alice")
    check_delivered(data, sent, SENDER, "alice@example.test", qid, orig_rcpt="info@example.test")
    assert instance.messages("bob") == []


def test_multiple_recipients_in_one_transaction(instance):
    sent = make_message("two-rcpts", to="alice@example.test, bob@example.test")
    with instance.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["alice@example.test", "bob@example.test"], sent)
        assert code == 250, text
    for user in ("alice", "bob"):
        [(_, data)] = _only(instance, user)
        check_delivered(data, sent, SENDER, "%s@example.test" % user, qid)
    instance.wait_for_log(r"%s: removed" % qid)
    assert len(instance.grep_log(r"/qmgr\[\d+\]: %s: from=<%s>, size=\d+, nrcpt=2 \(queue active\)" % (qid, SENDER))) == 1


def test_duplicate_recipient_gets_one_copy(instance):
    sent = make_message("dup-rcpt")
    with instance.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["alice@example.test", "alice@example.test", "bob@example.test"], sent)
        assert code == 250, text
    instance.wait_for_log(r"%s: removed" % qid)
    [(_, data)] = _only(instance, "alice")
    check_delivered(data, sent, SENDER, "alice@example.test", qid)
    assert len(instance.messages("bob")) == 1


def test_quoted_local_part_reaches_the_mailbox(instance):
    sent = make_message("quoted-local")
    with instance.raw() as c:
        c.expect("EHLO client.example.org", 250)
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect('RCPT TO:<"alice"@example.test>', 250)
        c.expect("DATA", 354)
        c.send(sent + b".\r\n")
        code, texts = c.reply()
        assert code == 250, (code, texts)
        qid = queue_id_of(texts[0])
    [(_, data)] = _only(instance, "alice")
    check_delivered(data, sent, SENDER, "alice@example.test", qid)


def test_dot_stuffing_round_trip(instance):
    body = [".", "..", ".foo", "...", ". ", "a.b", "", ".", "end", "."]
    sent = make_message("dots", body_lines=body)
    with instance.smtp() as s:
        # smtplib doubles leading dots on the wire; posthorn must undo it.
        code, text, qid = send_one(s, SENDER, ["alice@example.test"], sent)
        assert code == 250, text
    [(_, data)] = _only(instance, "alice")
    check_delivered(data, sent, SENDER, "alice@example.test", qid)
    assert data.endswith(b"\n.\n..\n.foo\n...\n. \na.b\n\n.\nend\n.\n"), data[-80:]


def test_dot_stuffing_on_raw_wire(instance):
    """Transparency written by hand: "..x" on the wire is ".x" in the box."""
    sent = make_message("raw-dots", body_lines=[".", "..x", ".y", "z.", " .", "."])
    wire = b"".join((b"." + line if line.startswith(b".") else line)
                    for line in sent.splitlines(keepends=True))
    assert b"\r\n..\r\n...x\r\n..y\r\nz.\r\n .\r\n..\r\n" in wire
    with instance.raw() as c:
        c.expect("EHLO client.example.org", 250)
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        c.expect("DATA", 354)
        c.send(wire + b".\r\n")
        code, texts = c.reply()
        assert code == 250, (code, texts)
        qid = queue_id_of(texts[0])
        c.expect("QUIT", 221)
    [(_, data)] = _only(instance, "alice")
    check_delivered(data, sent, SENDER, "alice@example.test", qid)


def test_large_message_under_size_limit_arrives_intact(instance):
    # ~9.9 MB: below the default message_size_limit of 10240000.
    line = "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ-=+_!%&*()[]{}"
    body = ["%07d %s" % (i, line) for i in range(9_900_000 // (len(line) + 10))]
    sent = make_message("large", body_lines=body)
    assert 9_800_000 < len(sent) < 10_000_000
    with instance.smtp(timeout=120) as s:
        code, text, qid = send_one(s, SENDER, ["bob@example.test"], sent)
        assert code == 250, text
    [(_, data)] = instance.wait_for_maildir("bob", 1, timeout=120)
    check_delivered(data, sent, SENDER, "bob@example.test", qid)


def test_8bitmime_body_arrives_unchanged(instance):
    body = ["Grüße aus Köln — ça va?", "raw latin-1: \udce9\udce8", "bytes \udc80\udcff\udcfe end"]
    sent = make_message("8bit", body_lines=[], extra_headers=[
        "MIME-Version: 1.0", "Content-Type: text/plain; charset=utf-8", "Content-Transfer-Encoding: 8bit"])
    sent += "\r\n".join(body).encode("utf-8", "surrogateescape") + b"\r\n"
    assert any(b >= 0x80 for b in sent)
    with instance.smtp() as s:
        assert s.has_extn("8bitmime")
        code, text, qid = send_one(s, SENDER, ["alice@example.test"], sent, mail_options=["BODY=8BITMIME"])
        assert code == 250, text
    [(_, data)] = _only(instance, "alice")
    check_delivered(data, sent, SENDER, "alice@example.test", qid)


def test_smtputf8_address_delivered(instance):
    rcpt = "jösé@example.test"
    sender = "sénder@exämple.org"
    sent = ("From: Sénder <%s>\r\nTo: José <%s>\r\nSubject: ¡hola!\r\n"
            "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\nMessage-ID: <utf8@example.org>\r\n"
            "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n"
            "Olá, José.\r\n" % (sender, rcpt)).encode("utf-8")
    with instance.smtp() as s:
        assert s.has_extn("smtputf8")
        code, text, qid = send_one(s, sender, [rcpt], sent, mail_options=["SMTPUTF8", "BODY=8BITMIME"])
        assert code == 250, text
    [(_, data)] = _only(instance, rcpt)
    received = check_delivered(data, sent, sender, rcpt, qid)
    # Postfix names the protocol UTF8SMTP when the client declared SMTPUTF8.
    assert "with UTF8SMTP" in received, received


def test_bdat_chunks_split_mid_crlf(instance):
    sent = make_message("bdat", body_lines=["first", ".", "..not stuffed in BDAT", "", "last"])
    # Cut every chunk between "\r" and "\n".
    cuts = []
    start = 0
    while True:
        i = sent.find(b"\r\n", start)
        if i < 0:
            break
        cuts.append(i + 1)
        start = i + 2
    points = [cuts[2], cuts[len(cuts) // 2], cuts[-2]]
    chunks = []
    prev = 0
    for p in points:
        chunks.append(sent[prev:p])
        prev = p
    chunks.append(sent[prev:])
    assert all(ch.endswith(b"\r") for ch in chunks[:-1])
    with instance.raw() as c:
        texts = c.expect("EHLO client.example.org", 250)
        assert "CHUNKING" in [t.split()[0].upper() for t in texts if t], texts
        c.expect("MAIL FROM:<%s>" % SENDER, 250)
        c.expect("RCPT TO:<alice@example.test>", 250)
        for ch in chunks:
            c.send(b"BDAT %d\r\n" % len(ch) + ch)
            code, texts = c.reply()
            assert code == 250, "BDAT %d: expected 250, got %r %r" % (len(ch), code, texts)
        code, texts = c.cmd("BDAT 0 LAST")
        assert code == 250, "BDAT 0 LAST: %r %r" % (code, texts)
        qid = queue_id_of(texts[0])
        assert qid, texts
        c.expect("QUIT", 221)
    [(_, data)] = _only(instance, "alice")
    check_delivered(data, sent, SENDER, "alice@example.test", qid)
    assert b"\n.\n..not stuffed in BDAT\n" in data


def test_bdat_single_last_chunk(instance):
    sent = make_message("bdat-last")
    with instance.raw() as c:
        c.expect("EHLO client.example.org", 250)
        c.expect("MAIL FROM:<%s> BODY=BINARYMIME" % SENDER, 250)
        c.expect("RCPT TO:<bob@example.test>", 250)
        c.send(b"BDAT %d LAST\r\n" % len(sent) + sent)
        code, texts = c.reply()
        assert code == 250, (code, texts)
        qid = queue_id_of(texts[0])
        c.expect("QUIT", 221)
    [(_, data)] = _only(instance, "bob")
    check_delivered(data, sent, SENDER, "bob@example.test", qid)


def test_several_messages_on_one_connection(instance):
    sents = [make_message("conn-%d" % i) for i in range(5)]
    with instance.smtp() as s:
        for m in sents:
            code, text, _ = send_one(s, SENDER, ["alice@example.test"], m)
            assert code == 250, text
    msgs = _only(instance, "alice", 5)
    got = sorted(lf(m) for m in sents)
    tails = sorted(next(g for g in got if d.endswith(g)) for _, d in msgs)
    assert tails == got
