"""
header_checks, mime_header_checks, nested_header_checks and body_checks
in cleanup, end to end: the SMTP reply at the end of DATA, what arrives
in the Maildir, what sits in the queue and what the log says.

Each test writes its pcre:/regexp: tables into the instance's etc/
(main.cf names them through $config_directory) before starting it.  To
show that a message was NOT delivered, a second, clean message is sent
after it and waited for: once that one is in the Maildir, the first one
would have been there too.
"""

import re

import pytest

from posthorn import make_message, send_one, split_message, header_fields

SENDER = "sender@example.org"
RCPT = "alice@example.test"


def start_with(factory, tables, extra=None):
    """An instance whose main.cf points each parameter at etc/<param>."""
    main_cf = dict(extra or {})
    for param, (kind, _text) in tables.items():
        main_cf[param] = "%s:$config_directory/%s" % (kind, param)
    inst = factory(main_cf=main_cf)
    for param, (_kind, text) in tables.items():
        (inst.etc / param).write_text(text, encoding="utf-8")
    inst.start()
    return inst


def deliver_marker(inst, user="alice"):
    """Send a clean message and wait for it: everything before it is done."""
    before = len(inst.maildir_files(user))
    with inst.smtp() as s:
        code, text, _ = send_one(s, SENDER, ["%s@example.test" % user], make_message("marker"))
        assert code == 250, "marker message: %d %r" % (code, text)
    msgs = inst.wait_for_maildir(user, before + 1)
    return msgs


def only_marker(inst, user="alice"):
    msgs = deliver_marker(inst, user)
    subjects = [re.search(rb"^Subject: (.*)$", data, re.M).group(1) for _, data in msgs]
    assert subjects == [b"marker"], "expected only the marker in %s's Maildir, found %r" % (user, subjects)


def delivered_headers(data):
    head, body = split_message(data)
    return header_fields(head), body


def test_reject_by_subject_550_with_text(posthorn_factory):
    inst = start_with(posthorn_factory, {
        "header_checks": ("pcre", "/^Subject:.*\\b(viagra|casino)\\b/ REJECT Spam ($1) is not welcome here\n"),
    })
    with inst.smtp() as s:
        code, text, qid = send_one(s, SENDER, [RCPT], make_message("cheap Viagra today"))
    assert code == 550, "end of DATA: expected 550, got %d %r" % (code, text)
    assert text == "5.7.1 Spam (Viagra) is not welcome here", text
    assert qid is None
    lines = inst.wait_for_log(r": reject: header Subject: cheap Viagra today from ")
    assert re.search(
        r"[0-9A-F]+: reject: header Subject: cheap Viagra today from \S+\[127\.0\.0\.1\]; "
        r"from=<sender@example\.org> to=<alice@example\.test> proto=ESMTP "
        r"helo=<client\.example\.org>: 5\.7\.1 Spam \(Viagra\) is not welcome here$", lines[0]), lines[0]
    only_marker(inst)
    inst.wait_queue_empty()


def test_reject_default_text_and_temporary_code(posthorn_factory):
    inst = start_with(posthorn_factory, {
        "header_checks": ("regexp", "/^X-Bad: hard/ REJECT\n/^X-Bad: soft/ REJECT 4.7.0 Try again later\n"
                                    "/^X-Bad: numeric/ 451 slow down\n"),
    })
    cases = [("X-Bad: hard", 550, "5.7.1 message content rejected"),
             ("X-Bad: soft", 451, "4.7.0 Try again later"),
             ("X-Bad: numeric", 451, "4.7.1 slow down")]
    with inst.smtp() as s:
        for header, want_code, want_text in cases:
            code, text, _ = send_one(s, SENDER, [RCPT], make_message("x", extra_headers=[header]))
            assert (code, text) == (want_code, want_text), "%s: got %d %r" % (header, code, text)
    only_marker(inst)


def test_discard_accepts_and_delivers_nothing(posthorn_factory):
    inst = start_with(posthorn_factory, {
        "header_checks": ("pcre", "/^Subject: drop me/ DISCARD silently gone\n"),
    })
    with inst.smtp() as s:
        code, text, qid = send_one(s, SENDER, [RCPT], make_message("drop me please"))
    assert code == 250, "DISCARD: expected 250, got %d %r" % (code, text)
    assert qid, "DISCARD: no queue ID in %r" % text
    line = inst.wait_for_log(r"%s: discard: header Subject: drop me please from " % qid)[0]
    assert line.endswith(": silently gone"), line
    only_marker(inst)
    inst.wait_queue_empty()
    assert not inst.grep_log(r"%s: to=<" % qid), "a discarded message was delivered"


def test_hold_keeps_message_in_hold_queue(posthorn_factory):
    inst = start_with(posthorn_factory, {
        "header_checks": ("pcre", "/^Subject: review me/ HOLD needs a look\n"),
    })
    with inst.smtp() as s:
        code, text, qid = send_one(s, SENDER, [RCPT], make_message("review me"))
    assert code == 250, "HOLD: expected 250, got %d %r" % (code, text)
    inst.wait_for_log(r"%s: hold: header Subject: review me from .*: needs a look$" % qid)
    only_marker(inst)
    items = [i for i in inst.queue_json() if i.get("queue_id") == qid]
    assert len(items) == 1, "posthorn queue -j: %r" % inst.queue_json()
    assert items[0]["queue_name"] == "hold", items[0]
    assert [r["address"] for r in items[0]["recipients"]] == [RCPT], items[0]
    assert inst.queue_files()["hold"] == [qid]


def test_ignore_prepend_replace_in_delivered_file(posthorn_factory):
    inst = start_with(posthorn_factory, {
        "header_checks": ("pcre", "/^X-Secret:/ IGNORE\n"
                                  "/^Subject: (.*)$/ REPLACE Subject: [checked] $1\n"
                                  "/^To:/ PREPEND X-Seen-To: yes\n"
                                  "/^X-Loud:/ WARN loud header\n"),
    })
    sent = make_message("tag me", extra_headers=["X-Secret: hunter2", "X-Keep: 1",
                                                 "X-Loud: on"])
    with inst.smtp() as s:
        code, text, qid = send_one(s, SENDER, [RCPT], sent)
        assert code == 250, text
    [(_, data)] = inst.wait_for_maildir("alice", 1)
    fields, body = delivered_headers(data)
    names = [n for n, _ in fields]
    raws = [raw for _, raw in fields]
    assert "x-secret" not in names, "IGNOREd header delivered: %r" % data
    assert b"Subject: [checked] tag me\n" in raws, raws
    assert b"Subject: tag me\n" not in raws, raws
    assert names.index("x-seen-to") == names.index("to") - 1, "PREPEND not right before To: %r" % names
    assert b"X-Keep: 1\n" in raws
    assert body.startswith(b"Hello,\n"), body
    line = inst.wait_for_log(r"%s: warning: header X-Loud: on from " % qid)[0]
    assert line.endswith(": loud header"), line


def test_body_checks_reject_and_replace(posthorn_factory):
    inst = start_with(posthorn_factory, {
        "body_checks": ("pcre", "/^click here: (\\S+)/ REJECT Link $1 refused\n"
                                "/^password: .*/ REPLACE password: (removed)\n"),
    })
    with inst.smtp() as s:
        code, text, _ = send_one(s, SENDER, [RCPT], make_message(
            "bad body", body_lines=["Hi", "click here: http://spam.example/x", "bye"]))
        assert (code, text) == (550, "5.7.1 Link http://spam.example/x refused"), (code, text)
        code, text, _ = send_one(s, SENDER, [RCPT], make_message(
            "good body", body_lines=["Hi", "password: secret", "bye"]))
        assert code == 250, text
    inst.wait_for_log(r": reject: body click here: http://spam\.example/x from .*: 5\.7\.1 Link")
    [(_, data)] = inst.wait_for_maildir("alice", 1)
    assert data.endswith(b"\n\nHi\npassword: (removed)\nbye\n"), data


def test_mime_header_checks_on_attachment(posthorn_factory):
    inst = start_with(posthorn_factory, {
        "header_checks": ("pcre", "/^Subject: never/ REJECT\n"),
        "mime_header_checks": ("pcre", "/^Content-(Disposition|Type):.*name=\"?[^\"]*\\.(exe|scr)\"?/ "
                                       "REJECT Attachment type .$2 not allowed\n"),
    })
    boundary = "==part=="
    msg = ("From: <%s>\r\nTo: <%s>\r\nSubject: files\r\nMIME-Version: 1.0\r\n"
           "Content-Type: multipart/mixed; boundary=\"%s\"\r\n\r\n"
           "--%s\r\nContent-Type: text/plain\r\n\r\nsee attached\r\n"
           "--%s\r\nContent-Type: application/octet-stream;\r\n\tname=\"setup.exe\"\r\n"
           "Content-Disposition: attachment\r\n\r\nTVqQAAMAAAAEAAAA\r\n--%s--\r\n"
           % (SENDER, RCPT, boundary, boundary, boundary, boundary)).encode()
    with inst.smtp() as s:
        code, text, _ = send_one(s, SENDER, [RCPT], msg)
    assert (code, text) == (550, "5.7.1 Attachment type .exe not allowed"), (code, text)
    # The same text in the body of a plain message is not a MIME header.
    plain = make_message("plain", body_lines=['Content-Type: x; name="setup.exe"'])
    with inst.smtp() as s:
        code, text, _ = send_one(s, SENDER, [RCPT], plain)
    assert code == 250, text
    inst.wait_for_maildir("alice", 1)


def test_bad_regex_defers_with_clear_log(posthorn_factory):
    inst = start_with(posthorn_factory, {
        "header_checks": ("pcre", "/^Subject: ok/ DUNNO\n/^Subject: (unclosed/ REJECT\n"),
    })
    with inst.smtp() as s:
        code, text, qid = send_one(s, SENDER, [RCPT], make_message("anything"))
    assert code == 451, "bad header_checks table: expected 451, got %d %r" % (code, text)
    assert text.startswith("4.3.5 "), text
    # cleanup names the parameter, the file and the line.
    lines = inst.wait_for_log(r"header_checks: \S+/etc/header_checks:2: error in regex at offset \d+: "
                              r"missing closing parenthesis")
    assert lines
    inst.wait_for_log(r"message not accepted, try again later: header_checks: ")
    assert inst.messages("alice") == []
    # posthorn map shows the same error to the administrator.
    r = inst.posthorn("map", "-q", "Subject: x", "pcre:%s" % (inst.etc / "header_checks"))
    assert r.returncode == 2, (r.returncode, r.stdout_text, r.stderr_text)
    assert "header_checks:2: error in regex" in r.stderr_text, r.stderr_text


def test_posthorn_map_query_and_delete(posthorn_factory):
    inst = posthorn_factory()
    (inst.etc / "access").write_text("spammer@example.org REJECT\nfriend@example.org OK\n")
    inst.posthorn("map", inst.etc / "access", check=True)
    r = inst.posthorn("map", "-q", "spammer@example.org", "lmdb:%s" % (inst.etc / "access"))
    assert (r.returncode, r.stdout_text) == (0, "REJECT\n")
    r = inst.posthorn("map", "-d", "Spammer@Example.org", "lmdb:%s" % (inst.etc / "access"))
    assert r.returncode == 0, r.stderr_text
    r = inst.posthorn("map", "-q", "spammer@example.org", "lmdb:%s" % (inst.etc / "access"))
    assert r.returncode == 1, (r.returncode, r.stdout_text)
    r = inst.posthorn("map", "-d", "spammer@example.org", inst.etc / "access")
    assert r.returncode == 1, "second -d: %d %s" % (r.returncode, r.stderr_text)
    r = inst.posthorn("map", "-q", "friend@example.org", inst.etc / "access")
    assert (r.returncode, r.stdout_text) == (0, "OK\n")
    r = inst.posthorn("map", "-d", "x", "texthash:%s" % (inst.etc / "access"))
    assert r.returncode == 2 and "cannot be changed" in r.stderr_text, r.stderr_text
    # Pattern tables through the same command: the key as given.
    (inst.etc / "checks.pcre").write_text("/^Subject: (.*)$/ REPLACE Subject: [x] $1\n")
    r = inst.posthorn("map", "-q", "Subject: Hello", "pcre:%s" % (inst.etc / "checks.pcre"))
    assert (r.returncode, r.stdout_text) == (0, "REPLACE Subject: [x] Hello\n")
