"""
Helpers of the restriction tests (test_restrictions*.py): an instance
whose smtpd asks a fake DNS server (fakedns.py, plus the PTR and TXT
records the client checks need), table files in DIR/etc, and a bare SMTP
client that checks whole reply lines ("554 5.7.1 <...>: ...") the way
Postfix words them.

The test client is 127.0.0.1.  Unless a test says otherwise it is outside
mynetworks (10.9.9.0/24), its name is "unknown" (smtpd_peername_lookup =
no) and DNS lookups go to a FakeDNS that answers within a second.
"""

import os
import time

import pytest

from fakedns import FakeDNS, encode_name
from posthorn import RawSMTP, make_message

TYPE_PTR = 12
TYPE_TXT = 16

CLIENT = "127.0.0.1"
UNKNOWN = "unknown[127.0.0.1]"
ALICE = "alice@example.test"
BOB = "bob@example.test"
SENDER = "sender@example.org"


class DNS(FakeDNS):
    """FakeDNS with the record types of the client checks."""

    def add_ptr(self, ip, name):
        rev = ".".join(reversed(ip.split("."))) + ".in-addr.arpa"
        self._add(rev, TYPE_PTR, encode_name(name))

    def add_txt(self, name, text):
        raw = text.encode("ascii")
        self._add(name, TYPE_TXT, bytes([len(raw)]) + raw)

    def list_client(self, zone, ip=CLIENT, answer="127.0.0.2", txt=None):
        """List ip in a DNS block/allow list zone."""
        name = ".".join(reversed(ip.split("."))) + "." + zone
        self.add_a(name, answer)
        if txt:
            self.add_txt(name, txt)


@pytest.fixture
def dns():
    with DNS() as d:
        yield d


def make(factory, main_cf=None, files=None, mynetworks="10.9.9.0/24", dns=None,
         lookup=False, master_cf_extra="", start=True, **kwargs):
    """
    An instance with smtpd's DNS pointed at dns.  main_cf values may
    name files of DIR/etc as {etc}; files = {name: text} are written
    there before the start (tables are opened when smtpd starts).
    """
    inst = factory(mynetworks=mynetworks, master_cf_extra=master_cf_extra, **kwargs)
    cf = {
        "smtpd_peername_lookup": "yes" if lookup else "no",
        # The fake PTR records of 127.0.0.1, not the machine's /etc/hosts
        # (test_client_name_from_hosts_file turns it back on).
        "smtpd_peername_hosts": "no",
        "smtpd_dns_timeout": "1s",
    }
    if dns is not None:
        cf["dns_server_addresses"] = dns.server
    cf.update(main_cf or {})
    for k, v in cf.items():
        inst.main_cf_extra[k] = v.replace("{etc}", str(inst.etc)) if isinstance(v, str) else v
    for name, text in (files or {}).items():
        p = inst.etc / name
        p.write_text(text, encoding="utf-8")
        os.chmod(p, 0o644)
    inst.write_main_cf()
    if start == "nowait":
        inst.start(wait=False)
        wait_greeting(inst)
    elif start:
        inst.start()
    return inst


def wait_greeting(inst, timeout=30):
    """Wait until smtpd answers a connection with any greeting."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with RawSMTP(inst.smtp_port, timeout=5) as c:
                code, _ = c.reply()
                if code is not None:
                    return code
        except (OSError, AssertionError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError("no SMTP greeting within %ss" % timeout)
        time.sleep(0.1)


class Client(RawSMTP):
    """RawSMTP whose checks compare whole reply lines."""

    def want(self, line, code, text=None):
        """Send line; the reply must have code (and, if given, be text)."""
        got, texts = self.cmd(line)
        whole = "%s %s" % (got, texts[-1] if texts else "")
        assert got == code, "%r: expected %d, got %r" % (line, code, whole)
        if text is not None:
            assert whole == text, "%r: expected %r, got %r" % (line, text, whole)
        return whole

    def greet(self, code=220, text=None):
        got, texts = self.reply()
        whole = "%s %s" % (got, texts[-1] if texts else "")
        assert got == code, "greeting: expected %d, got %r" % (code, whole)
        if text is not None:
            assert whole == text, "greeting: expected %r, got %r" % (text, whole)
        return whole

    def data(self, message, code=250, text=None):
        """DATA, the message, the final dot; returns the final reply."""
        self.want("DATA", 354)
        body = message.replace(b"\r\n.", b"\r\n..")
        self.send(body + b".\r\n")
        got, texts = self.reply()
        whole = "%s %s" % (got, texts[-1] if texts else "")
        assert got == code, "end of data: expected %d, got %r" % (code, whole)
        if text is not None:
            assert whole == text, "end of data: expected %r, got %r" % (text, whole)
        return whole


def client(inst, greet=True, helo="EHLO client.example.org", timeout=30):
    c = Client(inst.smtp_port, timeout=timeout)
    if greet:
        c.greet()
        if helo:
            c.want(helo, 250)
    return c


def rcpt_reply(inst, rcpt=ALICE, sender=SENDER, helo="EHLO client.example.org"):
    """The reply line to RCPT TO after EHLO and MAIL FROM."""
    with client(inst, helo=helo) as c:
        c.want("MAIL FROM:<%s>" % sender, 250)
        got, texts = c.cmd("RCPT TO:<%s>" % rcpt)
        c.cmd("QUIT")
        return "%s %s" % (got, texts[-1] if texts else "")


def send(inst, sender=SENDER, rcpts=(ALICE,), subject="restrict", extra_headers=(),
         code=250, text=None):
    """A whole transaction; returns the end-of-data reply."""
    with client(inst) as c:
        c.want("MAIL FROM:<%s>" % sender, 250)
        for r in rcpts:
            c.want("RCPT TO:<%s>" % r, 250)
        msg = make_message(subject, sender=sender, to=rcpts[0], extra_headers=extra_headers)
        reply = c.data(msg, code=code, text=text)
        c.cmd("QUIT")
        return reply


def queue_records(path):
    """(type, bytes) records of a queue file (global/qfile.h)."""
    data = open(path, "rb").read()
    out, pos = [], 0
    while pos < len(data):
        rtype = chr(data[pos])
        pos += 1
        length, shift = 0, 0
        while True:
            b = data[pos]
            pos += 1
            length |= (b & 0x7F) << shift
            shift += 7
            if not b & 0x80:
                break
        out.append((rtype, data[pos:pos + length]))
        pos += length
    return out


def queue_attrs(path):
    return [r[1].decode("utf-8", "replace") for r in queue_records(path) if r[0] == "A"]

