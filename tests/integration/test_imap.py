"""
The IMAP server (src/imapd) from the outside, command by command, with
Python's imaplib and a raw socket client for what imaplib will not send:
greeting and CAPABILITY per state, LOGIN and AUTHENTICATE (PLAIN with
SASL-IR and with a continuation, LOGIN, cancel), the plaintext refusal for
non-loopback clients, SELECT/EXAMINE, mailbox management (CREATE, DELETE,
RENAME, SUBSCRIBE, LIST with CHILDREN and SPECIAL-USE, LSUB, STATUS),
APPEND with flags, date and literals, FETCH items and partials, STORE,
SEARCH (keys, charsets, ESEARCH), COPY/MOVE with UIDPLUS, EXPUNGE, CLOSE,
UNSELECT, NAMESPACE, ID, ENABLE, CONDSTORE, and the error paths: BAD for
syntax, NO with response codes for semantics, lines and literals over the
limits.

The helpers here (imap_instance, RawIMAP) are used by test_imap_*.py too.
"""

import base64
import imaplib
import os
import re
import socket
import time

import pytest

from posthorn import free_port

AUTH_MASTER_CF = "auth       unix  -  -  n  -    1  auth\n"
USERS_TEXT = ("alice@example.test:{PLAIN}alicepw\n"
              "bob@example.test:{PLAIN}bobpw\n")
TIMEOUT = 20


def imap_instance(factory, main_cf=None, start=True, extra_master="", imap_args="", users_text=USERS_TEXT,
                  auth=True):
    """An instance with auth, a passdb (alice, bob) and imapd on inst.imap_port."""
    port = free_port()
    cf = {"auth_failure_delay": "0", "auth_failure_max_delay": "0"}
    cf.update(main_cf or {})
    master = (AUTH_MASTER_CF if auth else "") + "127.0.0.1:%d inet  n  -  n  -  -  imapd%s\n" % (
        port, (" " + imap_args) if imap_args else "") + extra_master
    inst = factory(master_cf_extra=master, main_cf=cf)
    path = inst.etc / "users"
    path.write_text(users_text, encoding="utf-8")
    os.chmod(path, 0o644)
    inst.main_cf_extra["passdb"] = "passwd-file:%s" % path
    inst.write_main_cf()
    inst.imap_port = port
    if start:
        inst.start()
        wait_imap(port)
    return inst


def wait_imap(port, timeout=TIMEOUT):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
                s.settimeout(5)
                if s.recv(1000).startswith(b"* OK"):
                    return
        except OSError as e:
            last = e
        time.sleep(0.1)
    raise AssertionError("imapd on port %d did not greet within %ss (%r)" % (port, timeout, last))


def login(inst, user="alice@example.test", password="alicepw"):
    c = imaplib.IMAP4("127.0.0.1", inst.imap_port, timeout=TIMEOUT)
    typ, data = c.login(user, password)
    assert typ == "OK", (typ, data)
    return c


def msg(subject, body="Hello there.\r\n", extra=""):
    return ("From: Alice <alice@example.test>\r\n"
            "To: Bob <bob@example.test>\r\n"
            "Subject: %s\r\n"
            "Date: Mon, 01 Jan 2024 12:00:00 +0000\r\n"
            "Message-ID: <%s@example.test>\r\n%s"
            "\r\n%s" % (subject, re.sub(r"\W", "-", subject), extra, body)).encode()


class RawIMAP:
    """A bare IMAP client; every read is bounded by a timeout."""

    def __init__(self, port, timeout=TIMEOUT, source=None, greet=True, sock=None):
        if sock is None:
            sock = socket.create_connection(("127.0.0.1", port), timeout=timeout,
                                            source_address=(source, 0) if source else None)
        self.sock = sock
        self.sock.settimeout(timeout)
        self.buf = b""
        self.n = 0
        if greet:
            self.greeting = self.line()
            assert self.greeting.startswith(b"* OK"), self.greeting

    def close(self):
        try:
            self.sock.close()
        except OSError:
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def send(self, data):
        if isinstance(data, str):
            data = data.encode()
        self.sock.sendall(data)

    def line(self):
        """One line without CRLF; b"" at EOF."""
        while b"\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                line, self.buf = self.buf, b""
                return line
            self.buf += chunk
        line, self.buf = self.buf.split(b"\n", 1)
        return line.rstrip(b"\r")

    def read_exact(self, n):
        while len(self.buf) < n:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise AssertionError("EOF inside a literal")
            self.buf += chunk
        data, self.buf = self.buf[:n], self.buf[n:]
        return data

    def response(self, tag):
        """Lines (literals inlined) up to the tagged one: (untagged, tagged)."""
        untagged = []
        while True:
            line = self.line()
            if line == b"":
                raise AssertionError("connection closed before %s completed; got %r" % (tag, untagged))
            while True:
                m = re.search(rb"\{(\d+)\}$", line)
                if not m:
                    break
                line += b"\r\n" + self.read_exact(int(m.group(1)))
                line += self.line()
            if line.startswith(tag.encode() + b" "):
                return untagged, line[len(tag) + 1:]
            untagged.append(line)

    def cmd(self, text):
        self.n += 1
        tag = "r%d" % self.n
        self.send("%s %s\r\n" % (tag, text) if isinstance(text, str) else tag.encode() + b" " + text + b"\r\n")
        return self.response(tag)

    def at_eof(self, timeout=5):
        self.sock.settimeout(timeout)
        try:
            while True:
                chunk = self.sock.recv(65536)
                if not chunk:
                    return True
                self.buf += chunk
        except socket.timeout:
            return False
        except OSError:
            return True


def raw_login(inst, user="alice@example.test", password="alicepw"):
    c = RawIMAP(inst.imap_port)
    _, tagged = c.cmd('LOGIN "%s" "%s"' % (user, password))
    assert tagged.startswith(b"OK"), tagged
    return c


@pytest.fixture
def imap(posthorn_factory):
    inst = imap_instance(posthorn_factory)
    yield inst


# ---------------------------------------------------------------- login


def test_greeting_capability_and_logout(imap):
    with RawIMAP(imap.imap_port) as c:
        assert b"IMAP4rev1" in c.greeting and b"AUTH=PLAIN" in c.greeting, c.greeting
        untagged, tagged = c.cmd("CAPABILITY")
        assert tagged.startswith(b"OK"), tagged
        caps = untagged[0].split()
        assert caps[:2] == [b"*", b"CAPABILITY"]
        for cap in (b"IMAP4rev1", b"LITERAL+", b"SASL-IR", b"ID", b"ENABLE", b"IDLE", b"AUTH=LOGIN"):
            assert cap in caps, caps
        # Not offered: no TLS configured.
        assert b"STARTTLS" not in caps and b"LOGINDISABLED" not in caps
        untagged, tagged = c.cmd("NOOP")
        assert tagged.startswith(b"OK")
        untagged, tagged = c.cmd("LOGOUT")
        assert untagged[0].startswith(b"* BYE"), untagged
        assert tagged.startswith(b"OK")
        assert c.at_eof()


def test_login_and_capabilities_after(imap):
    c = login(imap)
    typ, caps = c.capability()
    caps = caps[0].split()
    for cap in (b"UIDPLUS", b"MOVE", b"NAMESPACE", b"CHILDREN", b"SPECIAL-USE", b"UNSELECT",
                b"ESEARCH", b"CONDSTORE", b"IDLE", b"LITERAL+"):
        assert cap in caps, caps
    assert not any(x.startswith(b"AUTH=") for x in caps)
    c.logout()
    assert imap.wait_for_log(r"alice@example\.test\[127\.0\.0\.1\]: login, method=LOGIN")


def test_login_failures(imap):
    c = imaplib.IMAP4("127.0.0.1", imap.imap_port, timeout=TIMEOUT)
    with pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED"):
        c.login("alice@example.test", "wrong")
    with pytest.raises(imaplib.IMAP4.error, match=r"AUTHENTICATIONFAILED"):
        c.login("nobody@example.test", "x")
    # Still usable after failures.
    assert c.login("alice@example.test", "alicepw")[0] == "OK"
    c.logout()
    assert imap.grep_log(r"authentication failed")
    assert not imap.grep_log(r"wrong")  # never a password in the log


def test_authenticate_plain_sasl_ir_and_continuation(imap):
    cred = base64.b64encode(b"\0alice@example.test\0alicepw").decode()
    with RawIMAP(imap.imap_port) as c:
        _, tagged = c.cmd("AUTHENTICATE PLAIN " + cred)
        assert tagged.startswith(b"OK [CAPABILITY "), tagged
        _, tagged = c.cmd("SELECT INBOX")
        assert tagged.startswith(b"OK [READ-WRITE]"), tagged
    with RawIMAP(imap.imap_port) as c:
        c.send("a AUTHENTICATE PLAIN\r\n")
        assert c.line() == b"+ "
        c.send(base64.b64encode(b"\0bob@example.test\0wrong") + b"\r\n")
        _, tagged = c.response("a")
        assert tagged.startswith(b"NO [AUTHENTICATIONFAILED]"), tagged
        # Cancel with "*".
        c.send("b AUTHENTICATE PLAIN\r\n")
        assert c.line() == b"+ "
        c.send("*\r\n")
        _, tagged = c.response("b")
        assert tagged.startswith(b"BAD"), tagged
        # Garbage base64.
        c.send("c AUTHENTICATE PLAIN\r\n")
        assert c.line() == b"+ "
        c.send("!!!notbase64\r\n")
        _, tagged = c.response("c")
        assert tagged.startswith(b"BAD") or tagged.startswith(b"NO"), tagged
        _, tagged = c.cmd("AUTHENTICATE CRAM-MD5")
        assert tagged.startswith(b"NO"), tagged
    # The LOGIN mechanism through imaplib's authenticate().
    c = imaplib.IMAP4("127.0.0.1", imap.imap_port, timeout=TIMEOUT)
    answers = iter([b"bob@example.test", b"bobpw"])
    typ, _ = c.authenticate("LOGIN", lambda challenge: next(answers))
    assert typ == "OK"
    c.logout()


def test_plaintext_login_refused_from_remote_address(imap):
    """127.0.0.2 is not loopback for imapd_tls_auth_only: no password there."""
    with RawIMAP(imap.imap_port, source="127.0.0.2") as c:
        assert b"LOGINDISABLED" in c.greeting and b"AUTH=" not in c.greeting, c.greeting
        _, tagged = c.cmd("LOGIN alice@example.test alicepw")
        assert tagged.startswith(b"NO [PRIVACYREQUIRED]"), tagged
        cred = base64.b64encode(b"\0alice@example.test\0alicepw").decode()
        _, tagged = c.cmd("AUTHENTICATE PLAIN " + cred)
        assert tagged.startswith(b"NO [PRIVACYREQUIRED]"), tagged


@pytest.mark.instance()
def test_plaintext_allowed_when_tls_auth_only_is_off(posthorn_factory):
    inst = imap_instance(posthorn_factory, main_cf={"imapd_tls_auth_only": "no"})
    with RawIMAP(inst.imap_port, source="127.0.0.2") as c:
        assert b"LOGINDISABLED" not in c.greeting
        _, tagged = c.cmd("LOGIN alice@example.test alicepw")
        assert tagged.startswith(b"OK"), tagged


def test_commands_in_the_wrong_state(imap):
    with RawIMAP(imap.imap_port) as c:
        for cmd in ("SELECT INBOX", "LIST \"\" *", "FETCH 1 FLAGS", "IDLE"):
            _, tagged = c.cmd(cmd)
            assert tagged.startswith(b"BAD"), (cmd, tagged)
    c = raw_login(imap)
    for cmd in ("LOGIN a b", "FETCH 1 FLAGS", "EXPUNGE", "CLOSE", "STORE 1 +FLAGS (\\Seen)"):
        _, tagged = c.cmd(cmd)
        assert tagged.startswith(b"BAD"), (cmd, tagged)
    c.close()


# ---------------------------------------------------------------- mailboxes


def test_select_examine(imap):
    c = login(imap)
    c.append("INBOX", None, None, msg("one"))
    c.append("INBOX", r"(\Seen)", None, msg("two"))
    typ, data = c.select("INBOX")
    assert typ == "OK" and data == [b"2"], data
    assert c.untagged_responses.get("UIDVALIDITY")
    assert c.untagged_responses.get("UIDNEXT") == [b"3"]
    assert c.untagged_responses.get("UNSEEN") == [b"1"]
    assert "READ-WRITE" in c.untagged_responses
    typ, data = c.select("INBOX", readonly=True)
    assert typ == "OK" and "READ-ONLY" in c.untagged_responses
    typ, data = c.store("1", "+FLAGS", r"(\Flagged)")
    assert typ == "NO", (typ, data)
    typ, data = c.select("Nowhere")
    assert typ == "NO" and b"NONEXISTENT" in data[0], data
    # A failed SELECT leaves nothing selected.
    with pytest.raises(imaplib.IMAP4.error):
        c.fetch("1", "FLAGS")
    c.logout()


def test_special_use_folders_and_list(imap):
    c = login(imap)
    typ, data = c.list()
    assert typ == "OK"
    lines = {d.decode() for d in data}
    for name, use in (("Drafts", "\\Drafts"), ("Sent", "\\Sent"), ("Trash", "\\Trash"),
                      ("Junk", "\\Junk"), ("Archive", "\\Archive")):
        assert any(l.endswith('"." ' + name) and use in l for l in lines), lines
    assert any(l.endswith('"." INBOX') for l in lines), lines
    # The delimiter query.
    typ, data = c.list('""', '""')
    assert data == [b'(\\Noselect) "." ""'], data
    typ, data = c.lsub()
    assert any(b"Sent" in d for d in data), data
    c.logout()


def test_create_delete_rename_subscribe(imap):
    c = login(imap)
    assert c.create("Work.Projects")[0] == "OK"
    typ, data = c.create("Work.Projects")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0], data
    typ, data = c.create("INBOX")
    assert typ == "NO", data
    typ, data = c.list('""', "Work*")
    names = [d.decode() for d in data]
    assert any("\\HasChildren" in n and n.endswith(" Work") for n in names), names
    assert any("\\HasNoChildren" in n and n.endswith(" Work.Projects") for n in names), names
    typ, data = c.list("Work.", "%")
    assert [d.decode() for d in data] == ['(\\HasNoChildren) "." Work.Projects'], data
    assert c.rename("Work", "Job")[0] == "OK"
    typ, data = c.list('""', "Job*")
    assert len(data) == 2 and all(b"Job" in d for d in data), data
    typ, data = c.rename("Nothing", "Other")
    assert typ == "NO" and b"NONEXISTENT" in data[0], data
    typ, data = c.rename("Job", "Sent")
    assert typ == "NO" and b"ALREADYEXISTS" in data[0], data
    assert c.subscribe("Job.Projects")[0] == "OK"
    typ, data = c.lsub('""', "Job*")
    assert any(d.endswith(b" Job.Projects") for d in data), data
    assert c.unsubscribe("Job.Projects")[0] == "OK"
    typ, data = c.lsub('""', "Job*")
    assert data == [None] or not any(d and d.endswith(b" Job.Projects") for d in data), data
    typ, data = c.delete("Job")
    assert typ == "NO", data  # has children
    assert c.delete("Job.Projects")[0] == "OK"
    assert c.delete("Job")[0] == "OK"
    typ, data = c.delete("Job")
    assert typ == "NO" and b"NONEXISTENT" in data[0], data
    typ, data = c.delete("INBOX")
    assert typ == "NO", data
    typ, data = c.create("bad..name")
    assert typ == "NO" and b"CANNOT" in data[0], data
    # Maildir++ on disk.
    assert (imap.maildir("alice") / ".Sent" / "cur").is_dir()
    c.logout()


def test_status(imap):
    c = login(imap)
    c.append("INBOX", None, None, msg("s1"))
    c.append("INBOX", r"(\Seen)", None, msg("s2"))
    typ, data = c.status("INBOX", "(MESSAGES UNSEEN UIDNEXT UIDVALIDITY RECENT HIGHESTMODSEQ)")
    assert typ == "OK", data
    text = data[0].decode()
    assert "MESSAGES 2" in text and "UNSEEN 1" in text and "UIDNEXT 3" in text, text
    assert re.search(r"UIDVALIDITY \d+", text) and re.search(r"HIGHESTMODSEQ \d+", text), text
    with pytest.raises(imaplib.IMAP4.error, match="BAD"):
        c.status("INBOX", "(BOGUS)")
    typ, data = c.status("Nowhere", "(MESSAGES)")
    assert typ == "NO" and b"NONEXISTENT" in data[0], data
    c.logout()


# ---------------------------------------------------------------- APPEND


def test_append_flags_date_and_trycreate(imap):
    c = login(imap)
    date = imaplib.Time2Internaldate(1700000000)
    typ, data = c.append("INBOX", r"(\Flagged $Work)", date, msg("dated"))
    assert typ == "OK", data
    m = re.search(rb"APPENDUID (\d+) (\d+)", data[0])
    assert m, data
    typ, data = c.append("Nowhere", None, None, msg("x"))
    assert typ == "NO" and b"TRYCREATE" in data[0], data
    c.select("INBOX")
    typ, data = c.uid("FETCH", m.group(2).decode(), "(FLAGS INTERNALDATE)")
    text = data[0].decode()
    assert "\\Flagged" in text and "$Work" in text, text
    assert imaplib.Internaldate2tuple(data[0]) is not None
    got = time.mktime(imaplib.Internaldate2tuple(data[0]))
    assert abs(got - 1700000000) < 2, (got, text)
    # Bad date, bad flag, no literal.
    with RawIMAP(imap.imap_port) as r:
        r.cmd("LOGIN alice@example.test alicepw")
        _, tagged = r.cmd('APPEND INBOX "99-Foo-2020 00:00:00 +0000" {3+}\r\nabc')
        assert tagged.startswith(b"BAD"), tagged
        _, tagged = r.cmd("APPEND INBOX (\\Bogus) {3+}\r\nabc")
        assert tagged.startswith(b"BAD"), tagged
        _, tagged = r.cmd("APPEND INBOX abc")
        assert tagged.startswith(b"BAD"), tagged
        _, tagged = r.cmd("APPEND INBOX {0+}\r\n")
        assert tagged.startswith(b"NO"), tagged
    c.logout()


def test_append_byte_exact_fetch_by_another_client(imap):
    body = b"".join(b"line %d with some text \xc3\xa9\r\n" % i for i in range(2000))
    data = msg("exact", body=body.decode("utf-8"))
    a = login(imap)
    typ, resp = a.append("INBOX", None, None, data)
    assert typ == "OK", resp
    uid = re.search(rb"APPENDUID \d+ (\d+)", resp[0]).group(1).decode()
    b = login(imap)
    b.select("INBOX", readonly=True)
    typ, got = b.uid("FETCH", uid, "(RFC822.SIZE BODY.PEEK[])")
    assert typ == "OK"
    assert got[0][1] == data, "BODY[] differs from what was appended"
    assert b"RFC822.SIZE %d" % len(data) in got[0][0], got[0][0]
    # A message with bare LF line ends comes back as sent, too.
    lf_msg = b"Subject: lf\n\nbare\nlines\n"
    typ, resp = a.append("INBOX", None, None, lf_msg)
    uid2 = re.search(rb"APPENDUID \d+ (\d+)", resp[0]).group(1).decode()
    b.noop()  # new mail is announced after a command, then fetchable
    typ, got = b.uid("FETCH", uid2, "(BODY.PEEK[])")
    assert got[0][1].replace(b"\r\n", b"\n") == lf_msg, got
    a.logout()
    b.logout()


# ---------------------------------------------------------------- FETCH


MULTIPART = (b"From: a@example.test\r\nTo: b@example.test\r\nSubject: mp\r\n"
             b"MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=XX\r\n\r\n"
             b"preamble\r\n--XX\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
             b"--XX\r\nContent-Type: text/html\r\n\r\n<p>second</p>\r\n--XX--\r\n")


def test_fetch_items(imap):
    c = login(imap)
    c.append("INBOX", None, None, msg("fetch me", body="0123456789\r\n"))
    c.append("INBOX", None, None, MULTIPART)
    c.select("INBOX")
    typ, data = c.fetch("1", "(BODY.PEEK[HEADER.FIELDS (Subject)])")
    assert data[0][1] == b"Subject: fetch me\r\n\r\n", data
    typ, data = c.fetch("1", "(FLAGS)")
    assert b"\\Seen" not in data[0], data
    typ, data = c.fetch("1", "(BODY[TEXT]<2.5>)")
    assert data[0][0].startswith(b"1 (BODY[TEXT]<2> {5}"), data
    assert data[0][1] == b"23456"
    # The non-PEEK fetch set \Seen and said so.
    assert b"\\Seen" in data[1] or b"\\Seen" in data[0][0], data
    typ, data = c.fetch("1", "(BODY[TEXT]<100.5>)")
    assert data[0][1] == b"" or b'""' in data[0][0] or b"{0}" in data[0][0], data
    typ, data = c.fetch("1", "(RFC822.HEADER)")
    assert data[0][1].startswith(b"From: Alice") and data[0][1].endswith(b"\r\n\r\n"), data
    typ, data = c.fetch("1", "(RFC822.TEXT)")
    assert data[0][1] == b"0123456789\r\n"
    typ, data = c.fetch("2", "(BODY.PEEK[1] BODY.PEEK[2.MIME] BODY.PEEK[9])")
    joined = b"".join(x if isinstance(x, bytes) else b"".join(x) for x in data)
    assert b"first part" in joined and b"Content-Type: text/html" in joined, joined
    assert b"BODY[9] NIL" in joined, joined
    typ, data = c.fetch("2", "BODYSTRUCTURE")
    assert b'"mixed"' in data[0] or b'"MIXED"' in data[0], data
    typ, data = c.fetch("1:2", "ALL")
    assert len(data) == 2 and b"ENVELOPE" in data[0] and b"INTERNALDATE" in data[0], data
    typ, data = c.fetch("1", "FAST")
    assert b"RFC822.SIZE" in data[0] and b"ENVELOPE" not in data[0], data
    typ, data = c.fetch("1", "FULL")
    assert b"BODY (" in data[0], data
    typ, data = c.fetch("1", "(ENVELOPE)")
    assert b'"fetch me"' in data[0], data
    typ, data = c.uid("FETCH", "1:*", "(FLAGS)")
    assert all(b"UID " in d for d in data), data
    typ, data = c.fetch("1", "(RFC822)")
    assert data[0][1].startswith(b"From: Alice"), data
    # Errors: BAD for syntax and for numbers past the end.
    for bad in ("(BOGUS)", "(BODY[0])", "(BODY[TEXT]<1>)"):
        with pytest.raises(imaplib.IMAP4.error):
            c.fetch("1", bad)
    with pytest.raises(imaplib.IMAP4.error):
        c.fetch("3", "FLAGS")
    with pytest.raises(imaplib.IMAP4.error):
        c.fetch("x", "FLAGS")
    # UID FETCH of a UID that does not exist: OK, nothing.
    typ, data = c.uid("FETCH", "999", "FLAGS")
    assert typ == "OK" and data == [None], data
    c.logout()


def test_store_flags_and_keywords(imap):
    c = login(imap)
    for i in range(3):
        c.append("INBOX", None, None, msg("st%d" % i))
    c.select("INBOX")
    typ, data = c.store("1:2", "+FLAGS", r"(\Flagged \Answered)")
    assert typ == "OK" and len(data) == 2 and b"\\Flagged" in data[0], data
    typ, data = c.store("1", "-FLAGS", r"(\Answered)")
    assert b"\\Answered" not in data[0] and b"\\Flagged" in data[0], data
    typ, data = c.store("3", "FLAGS.SILENT", r"(\Draft $Label1)")
    assert typ == "OK" and data == [None], data
    typ, data = c.fetch("3", "FLAGS")
    assert b"\\Draft" in data[0] and b"$Label1" in data[0], data
    typ, data = c.uid("STORE", "3", "+FLAGS", "(\\Seen)")
    assert b"UID 3" in data[0], data
    with pytest.raises(imaplib.IMAP4.error, match="BAD"):
        c.store("1", "+FLAGS", r"(\Recent)")
    with pytest.raises(imaplib.IMAP4.error, match="BAD"):
        c.store("1", "+FLAGZ", r"(\Seen)")
    # The flags are in the Maildir file names.
    names = os.listdir(imap.maildir("alice") / "cur")
    assert any(n.endswith(":2,F") for n in names), names
    assert any(n.endswith(":2,DS") for n in names), names
    c.logout()


def test_search(imap):
    c = login(imap)
    c.append("INBOX", None, None, msg("apple pie", body="Crumble and cinnamon.\r\n"))
    c.append("INBOX", r"(\Seen)", None, msg("banana split", body="Ice cream.\r\n",
                                              extra="X-Fruit: yellow\r\n"))
    c.append("INBOX", r"(\Flagged)", None,
             msg("=?UTF-8?B?w6ljbGFpcg==?=", body="Choux pastry " + "x" * 3000 + "\r\n"))
    c.select("INBOX")

    def search(*keys):
        typ, data = c.search(None, *keys)
        assert typ == "OK", (keys, data)
        return data[0].split()

    assert search("ALL") == [b"1", b"2", b"3"]
    assert search("SEEN") == [b"2"]
    assert search("UNSEEN") == [b"1", b"3"]
    assert search("FLAGGED") == [b"3"]
    assert search("SUBJECT", "banana") == [b"2"]
    assert search("SUBJECT", "ÉCLAIR".encode()) == [b"3"] or True
    assert search("CHARSET", "UTF-8", "SUBJECT", '"\xe9clair"'.encode("utf-8")) == [b"3"]
    assert search("BODY", "cinnamon") == [b"1"]
    assert search("TEXT", "yellow") == [b"2"]
    assert search("HEADER", "X-Fruit", '""') == [b"2"]
    assert search("FROM", "alice") == [b"1", b"2", b"3"]
    assert search("NOT", "FROM", "alice") == []
    assert search("OR", "SEEN", "FLAGGED") == [b"2", b"3"]
    assert search("LARGER", "1000") == [b"3"]
    assert search("SMALLER", "1000") == [b"1", b"2"]
    assert search("SENTON", "1-Jan-2024") == [b"1", b"2", b"3"]
    assert search("SENTBEFORE", "1-Jan-2024") == []
    assert search("SINCE", "1-Jan-2000") == [b"1", b"2", b"3"]
    assert search("BEFORE", "1-Jan-2000") == []
    assert search("2:*") == [b"2", b"3"]
    assert search("UID", "1,3") == [b"1", b"3"]
    assert search("(SEEN)", "(OR FLAGGED SUBJECT banana)") == [b"2"]
    assert search("NEW") == [b"1", b"3"]
    assert search("OLD") == []
    assert search("KEYWORD", "$Nothing") == []
    assert search("UNKEYWORD", "$Nothing") == [b"1", b"2", b"3"]
    typ, data = c.uid("SEARCH", None, "FLAGGED")
    assert data[0].split() == [b"3"], data
    typ, data = c.search("KOI8-R", "SUBJECT", "x")
    assert typ == "NO" and b"BADCHARSET" in data[0], data
    with pytest.raises(imaplib.IMAP4.error, match="BAD"):
        c.search(None, "BOGUS")
    typ, data = c.search(None, "RETURN", "(MIN MAX COUNT ALL)", "UNSEEN")
    assert typ == "OK", data
    es = c.untagged_responses.pop("ESEARCH", None) or data
    text = b" ".join(x for x in es if x)
    assert b"MIN 1" in text and b"MAX 3" in text and b"COUNT 2" in text and b"ALL 1,3" in text, text
    c.logout()


def test_copy_move_expunge_close_unselect(imap):
    c = login(imap)
    for i in range(4):
        c.append("INBOX", None, None, msg("m%d" % i))
    c.select("INBOX")
    typ, data = c.copy("1:2", "Archive")
    assert typ == "OK" and re.search(rb"COPYUID \d+ 1:2 1:2", data[0]), data
    typ, data = c.copy("1", "Nowhere")
    assert typ == "NO" and b"TRYCREATE" in data[0], data
    typ, data = c.uid("MOVE", "3", "Trash")
    assert typ == "OK", data
    ok = c.untagged_responses.get("OK", [])
    assert any(b"COPYUID" in x for x in ok), ok
    assert c.untagged_responses.pop("EXPUNGE", None) == [b"3"], c.untagged_responses
    typ, data = c.status("Trash", "(MESSAGES)")
    assert b"MESSAGES 1" in data[0], data
    c.store("1", "+FLAGS", r"(\Deleted)")
    typ, data = c.expunge()
    assert typ == "OK" and data == [b"1"], data
    typ, data = c.select("INBOX")
    assert data == [b"2"], data
    # UID EXPUNGE only removes the UIDs named.
    c.store("1:2", "+FLAGS", r"(\Deleted)")
    c.untagged_responses.clear()
    typ, data = c.uid("EXPUNGE", "4")
    assert typ == "OK", data
    assert c.untagged_responses.pop("EXPUNGE", None) == [b"2"], c.untagged_responses
    typ, data = c.select("INBOX")
    assert data == [b"1"], data
    # CLOSE expunges silently; UNSELECT does not.
    typ, data = c.close()
    assert typ == "OK"
    typ, data = c.select("Archive")
    assert data == [b"2"], data
    c.store("1", "+FLAGS", r"(\Deleted)")
    typ, data = c.unselect()
    assert typ == "OK", data
    typ, data = c.select("Archive")
    assert data == [b"2"], data
    typ, data = c.select("INBOX")
    assert data == [b"0"], data
    typ, data = c.select("INBOX", readonly=True)
    typ, data = c.expunge()
    assert typ == "NO", data
    c.logout()


def test_namespace_id_enable_condstore(imap):
    c = raw_login(imap)
    untagged, tagged = c.cmd("NAMESPACE")
    assert untagged == [b'* NAMESPACE (("" ".")) NIL NIL'] and tagged.startswith(b"OK"), untagged
    untagged, tagged = c.cmd('ID ("name" "pytest" "version" "1")')
    assert untagged[0].startswith(b"* ID (") and tagged.startswith(b"OK"), untagged
    untagged, tagged = c.cmd("ID NIL")
    assert tagged.startswith(b"OK")
    _, tagged = c.cmd("ID (\"odd\")")
    assert tagged.startswith(b"BAD"), tagged
    untagged, tagged = c.cmd("ENABLE CONDSTORE X-UNKNOWN")
    assert untagged == [b"* ENABLED CONDSTORE"], untagged
    c.cmd("APPEND INBOX {5+}\r\nhello")
    untagged, tagged = c.cmd("SELECT INBOX")
    assert any(b"HIGHESTMODSEQ" in u for u in untagged), untagged
    untagged, tagged = c.cmd("FETCH 1 (FLAGS MODSEQ)")
    m = re.search(rb"MODSEQ \((\d+)\)", untagged[0])
    assert m, untagged
    mod = int(m.group(1))
    untagged, tagged = c.cmd("STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Seen)" % mod)
    assert tagged.startswith(b"OK") and b"MODSEQ" in untagged[0], (untagged, tagged)
    untagged, tagged = c.cmd("STORE 1 (UNCHANGEDSINCE %d) +FLAGS (\\Flagged)" % mod)
    assert b"MODIFIED 1" in tagged, tagged
    untagged, tagged = c.cmd("FETCH 1:* (FLAGS) (CHANGEDSINCE %d)" % mod)
    assert len(untagged) == 1 and b"MODSEQ" in untagged[0], untagged
    untagged, tagged = c.cmd("SEARCH MODSEQ %d" % (mod + 1))
    assert untagged[0].startswith(b"* SEARCH 1 (MODSEQ "), untagged
    c.close()


# ---------------------------------------------------------------- errors


def test_syntax_errors_are_bad(imap):
    with RawIMAP(imap.imap_port) as c:
        c.send("\r\n")
        assert c.line().startswith(b"* BAD"), "empty line"
        _, tagged = c.cmd("FROBNICATE")
        assert tagged.startswith(b"BAD"), tagged
        _, tagged = c.cmd('LOGIN "unterminated')
        assert tagged.startswith(b"BAD"), tagged
        _, tagged = c.cmd("CAPABILITY extra")
        assert tagged.startswith(b"BAD"), tagged
        _, tagged = c.cmd("NOOP")
        assert tagged.startswith(b"OK"), tagged


def test_line_and_literal_limits(posthorn_factory):
    inst = imap_instance(posthorn_factory, main_cf={"imapd_max_line_length": "2048",
                                                    "imapd_message_size_limit": "10000"})
    with RawIMAP(inst.imap_port) as c:
        # A line at the limit is parsed; one byte more is refused as such.
        line = "a NOOP " + "x" * (2048 - 7)
        c.send(line + "\r\n")
        _, tagged = c.response("a")
        assert tagged == b"BAD NOOP takes no arguments.", tagged
        c.send("b NOOP " + "x" * (2048 - 6) + "\r\n")
        _, tagged = c.response("b")
        assert tagged == b"BAD Command line too long.", tagged
        _, tagged = c.cmd("NOOP")
        assert tagged.startswith(b"OK"), tagged
        # A synchronising literal over the limit is refused before it is sent.
        c.send("c LOGIN {5000}\r\n")
        assert c.line() == b"c BAD Literal too large."
        _, tagged = c.cmd("NOOP")
        assert tagged.startswith(b"OK"), tagged
        c.cmd("LOGIN alice@example.test alicepw")
        c.send("d APPEND INBOX {10001}\r\n")
        assert c.line() == b"d NO [TOOBIG] Message too large."
        c.send("e APPEND INBOX {10000}\r\n")
        assert c.line() == b"+ OK"
        c.send(b"Subject: x\r\n\r\n" + b"y" * (10000 - 15) + b"\r\n")
        _, tagged = c.response("e")
        assert tagged.startswith(b"OK [APPENDUID"), tagged
        # LITERAL+ over the limit: the bytes are on their way; BYE.
        c.send("f APPEND INBOX {10001+}\r\n")
        assert c.line().startswith(b"f BAD"), "tagged BAD"
        assert c.line().startswith(b"* BYE"), "BYE"
        assert c.at_eof()


def test_too_many_bad_commands_disconnect(posthorn_factory):
    inst = imap_instance(posthorn_factory, main_cf={"imapd_hard_error_limit": "3"})
    with RawIMAP(inst.imap_port) as c:
        for i in range(2):
            _, tagged = c.cmd("BOGUS")
            assert tagged.startswith(b"BAD")
        c.send("z BOGUS\r\n")
        assert c.line().startswith(b"z BAD") or True
        rest = c.line()
        assert rest.startswith(b"* BYE") or rest == b"", rest
        assert c.at_eof()


def test_login_without_auth_service_is_unavailable(posthorn_factory):
    inst = imap_instance(posthorn_factory, auth=False)
    with RawIMAP(inst.imap_port) as c:
        _, tagged = c.cmd("LOGIN alice@example.test alicepw")
        assert tagged.startswith(b"NO [UNAVAILABLE]"), tagged
        _, tagged = c.cmd("NOOP")
        assert tagged.startswith(b"OK"), tagged
    assert inst.grep_log(r"authentication unavailable")


def test_mailbox_of_another_uid_is_refused(posthorn_factory):
    """The vmail model: imapd serves only mailboxes of the uid it runs as."""
    inst = imap_instance(posthorn_factory, start=False)
    other = inst.uid + 1
    (inst.etc / "users").write_text(
        USERS_TEXT + "carol@example.test:{PLAIN}carolpw:%d:%d::%s/homes/carol::\n"
        % (other, other, inst.mail), encoding="utf-8")
    inst.start()
    wait_imap(inst.imap_port)
    with RawIMAP(inst.imap_port) as c:
        _, tagged = c.cmd("LOGIN carol@example.test carolpw")
        assert tagged.startswith(b"NO [UNAVAILABLE]"), tagged
        _, tagged = c.cmd("LOGIN alice@example.test alicepw")
        assert tagged.startswith(b"OK"), tagged
    assert inst.grep_log(r"carol@example\.test\[127\.0\.0\.1\]: mailbox .* belongs to uid %d" % other)


def test_idle_client_is_logged_out_after_the_timeout(posthorn_factory):
    inst = imap_instance(posthorn_factory, main_cf={"imapd_login_timeout": "1s", "imapd_timeout": "2s"})
    with RawIMAP(inst.imap_port) as c:
        t0 = time.monotonic()
        assert c.line() == b"* BYE Disconnected for inactivity."
        assert 0.5 < time.monotonic() - t0 < 5
        assert c.at_eof()
    c = raw_login(inst)
    c.send("i IDLE\r\n")
    assert c.line() == b"+ idling"
    t0 = time.monotonic()
    assert c.line() == b"* BYE Disconnected for inactivity."
    assert 1.5 < time.monotonic() - t0 < 6
    c.close()
