"""
The anvil service, from the outside: attribute frames (src/util/attr.h)
spoken from Python on private/anvil, as smtpd's anvil_client speaks them.
Concurrent connection counts per ident, connection / message / recipient
rates over anvil_rate_time_unit and their reset, connections ending with
the client connection that reported them, disconnects of connections a
client does not hold being ignored, bad requests (status=1) and broken
frames (connection closed) leaving the one anvil process alive, and
Postfix's "statistics: max ..." log lines.
"""

import re
import time

import pytest

from posthorn import PrivateClient

ANVIL_MASTER_CF = "anvil      unix  -  -  n  -  1  anvil\n"
UNIT = 2


def anvil_instance(**main_cf):
    cf = {"anvil_rate_time_unit": "%ds" % UNIT}
    cf.update(main_cf)
    return pytest.mark.instance(main_cf=cf, master_cf_extra=ANVIL_MASTER_CF)


def frame(**attrs):
    out = b""
    for name, value in attrs.items():
        if isinstance(value, str):
            value = value.encode("utf-8")
        out += b"%s:%d:%s\n" % (name.encode("ascii"), len(value), value)
    return out + b"\n"


class Anvil(PrivateClient):
    """A client of private/anvil; every read is bounded by a timeout."""

    def __init__(self, inst, timeout=15):
        super().__init__(inst, "anvil", timeout)

    def _fill(self):
        chunk = self.sock.recv(65536)
        if not chunk:
            raise EOFError("anvil closed the connection")
        self.buf += chunk

    def read_frame(self):
        """One answer frame as {name: str}."""
        out = {}
        while True:
            while not self.buf:
                self._fill()
            if self.buf.startswith(b"\n"):
                self.buf = self.buf[1:]
                return out
            # name ":" length ":" value "\n"; names and lengths hold no ":".
            while self.buf.count(b":") < 2:
                self._fill()
            name, length, rest = self.buf.split(b":", 2)
            n = int(length)
            while len(rest) < n + 1:
                self._fill()
                name, length, rest = self.buf.split(b":", 2)
            assert rest[n:n + 1] == b"\n", "malformed answer %r" % self.buf
            out[name.decode()] = rest[:n].decode()
            self.buf = rest[n + 1:]

    def call(self, request, ident):
        self.sock.sendall(frame(request=request, ident=ident))
        return self.read_frame()

    def ok(self, request, ident):
        a = self.call(request, ident)
        assert a.get("status") == "0", "%s %s: %r" % (request, ident, a)
        return {k: int(v) for k, v in a.items() if k != "status"}


IDENT = "smtp:192.0.2.1"


def anvil_pids(inst):
    return [pid for pid, cmd in inst.processes() if re.match(r"(\S*/)?anvil( |$)", cmd)]


@anvil_instance()
def test_counts_and_rates(instance):
    with Anvil(instance) as a:
        assert a.ok("connect", IDENT) == {"count": 1, "rate": 1}
        assert a.ok("connect", IDENT) == {"count": 2, "rate": 2}
        assert a.ok("message", IDENT) == {"rate": 1}
        assert a.ok("message", IDENT) == {"rate": 2}
        for i in range(5):
            assert a.ok("recipient", IDENT) == {"rate": i + 1}
        assert a.ok("lookup", IDENT) == {"count": 2, "rate": 2, "message": 2, "recipient": 5}
        # Another client and another service are counted apart.
        assert a.ok("connect", "smtp:192.0.2.2") == {"count": 1, "rate": 1}
        assert a.ok("connect", "submission:192.0.2.1") == {"count": 1, "rate": 1}
        assert a.call("disconnect", IDENT) == {"status": "0"}
        assert a.ok("lookup", IDENT)["count"] == 1


@anvil_instance()
def test_rates_start_over_after_the_time_unit(instance):
    with Anvil(instance) as a:
        a.ok("connect", IDENT)
        a.ok("message", IDENT)
        a.ok("message", IDENT)
        assert a.ok("recipient", IDENT) == {"rate": 1}
        time.sleep(UNIT + 1.2)
        assert a.ok("lookup", IDENT) == {"count": 1, "rate": 0, "message": 0, "recipient": 0}
        assert a.ok("message", IDENT) == {"rate": 1}
        assert a.ok("connect", IDENT) == {"count": 2, "rate": 1}


@anvil_instance()
def test_connections_end_with_their_client(instance):
    with Anvil(instance) as observer:
        with Anvil(instance) as smtpd1, Anvil(instance) as smtpd2:
            smtpd1.ok("connect", IDENT)
            smtpd1.ok("connect", IDENT)
            assert smtpd2.ok("connect", IDENT)["count"] == 3
            # smtpd2 cannot end smtpd1's connections.
            smtpd2.call("disconnect", "smtp:192.0.2.99")
            smtpd2.call("disconnect", IDENT)
            smtpd2.call("disconnect", IDENT)
            assert observer.ok("lookup", IDENT)["count"] == 2
        # Both hung up (an smtpd that exited or crashed): nothing held.
        deadline = time.monotonic() + 5
        while observer.ok("lookup", IDENT)["count"] != 0:
            assert time.monotonic() < deadline, "connections of a closed client still counted"
            time.sleep(0.05)
        # The rate remembers them.
        assert observer.ok("lookup", IDENT)["rate"] == 3


@anvil_instance()
def test_bad_requests(instance):
    with Anvil(instance) as a:
        for req, ident in (("explode", IDENT), ("connect", ""), ("connect", "smtp:has space"),
                           ("connect", "x" * 300), ("message", "smtp:\x01")):
            answer = a.call(req, ident)
            assert answer.get("status") == "1" and answer.get("reason"), "%r %r: %r" % (req, ident, answer)
        a.sock.sendall(frame(ident=IDENT))
        assert a.read_frame()["status"] == "1"
        # Still usable.
        assert a.ok("connect", IDENT)["count"] == 1
        pid_before = anvil_pids(instance)
        # A frame that breaks the grammar ends the connection...
        a.sock.sendall(b"request:seven:connect\n\n")
        with pytest.raises((EOFError, ConnectionResetError)):
            a.read_frame()
    with Anvil(instance) as a:
        a.sock.sendall(b"x" * 5000)
        with pytest.raises((EOFError, ConnectionResetError)):
            a.read_frame()
    # ...and anvil lives on: the same process, and its counts with it
    # (the connection that reported the connect is gone, so 0).
    with Anvil(instance) as a:
        assert a.ok("lookup", IDENT) == {"count": 0, "rate": 1, "message": 0, "recipient": 0}
    pid_after = anvil_pids(instance)
    assert pid_before and pid_before == pid_after, "anvil restarted: %r -> %r" % (pid_before, pid_after)
    instance.wait_for_log(r"posthorn/anvil\[\d+\]: warning: client sent a malformed request")


@anvil_instance(anvil_status_update_time="2s")
def test_statistics_lines(instance):
    with Anvil(instance) as a:
        a.ok("connect", "smtp:192.0.2.7")
        a.ok("connect", "smtp:192.0.2.7")
        a.ok("connect", "smtp:192.0.2.8")
        a.ok("message", "smtp:192.0.2.8")
        a.ok("recipient", "smtp:192.0.2.8")
        a.ok("recipient", "smtp:192.0.2.8")
        when = r"at \w{3} [ \d]\d \d\d:\d\d:\d\d$"
        instance.wait_for_log(r"posthorn/anvil\[\d+\]: statistics: max connection rate 2/%ds for "
                              r"\(smtp:192\.0\.2\.7\) %s" % (UNIT, when), timeout=10)
        instance.wait_for_log(r"statistics: max connection count 2 for \(smtp:192\.0\.2\.7\) " + when)
        instance.wait_for_log(r"statistics: max message rate 1/%ds for \(smtp:192\.0\.2\.8\) %s"
                              % (UNIT, when))
        instance.wait_for_log(r"statistics: max recipient rate 2/%ds for \(smtp:192\.0\.2\.8\) %s"
                              % (UNIT, when))
        instance.wait_for_log(r"statistics: max cache size 2 " + when)
    # Nothing happened since: no new lines in the next period.
    n = len(instance.grep_log(r"statistics: max connection count"))
    time.sleep(3)
    assert len(instance.grep_log(r"statistics: max connection count")) == n
