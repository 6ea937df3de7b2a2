"""
The greylist policy service, from the outside: Postfix's policy
delegation protocol spoken from Python on private/greylist, as smtpd (or
a Postfix) would speak it.  A new triplet is deferred, a retry before
greylist_delay is deferred again, the first retry after it passes with an
X-Greylist header and the triplet then passes at once; the client network
(/24, /64) is part of the triplet, the sender's extension and digits are
not; auto-allow after N passed triplets; the client whitelist; a retry
after greylist_retry_window starts over; expired entries are cleaned;
garbage requests get DUNNO (or a closed connection) and never crash the
service; two greylist processes share the state; the state survives a
restart of the whole instance.
"""

import re
import socket
import time

import pytest

from posthorn import PrivateClient

GREYLIST_MASTER_CF = "greylist   unix  -  -  n  -  -  greylist\n"
DELAY = 2
BASE_CF = {
    "greylist_delay": "%ds" % DELAY,
    "data_directory": "$queue_directory/../data",
}


def greylist_instance(**main_cf):
    cf = dict(BASE_CF)
    cf.update(main_cf)
    return pytest.mark.instance(main_cf=cf, master_cf_extra=GREYLIST_MASTER_CF)


class Policy(PrivateClient):
    """A policy client on a unix socket; every read is bounded."""

    def __init__(self, inst, timeout=15):
        super().__init__(inst, "greylist", timeout)

    def send_raw(self, data):
        self.sock.sendall(data)

    def read_answer(self):
        """The attributes of one answer as a dict; None if the server hung up."""
        while b"\n\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                return None
            self.buf += chunk
            assert len(self.buf) < 65536, "answer too long: %r" % self.buf[:200]
        answer, self.buf = self.buf.split(b"\n\n", 1)
        out = {}
        for line in answer.decode("utf-8").split("\n"):
            name, _, value = line.partition("=")
            out[name] = value
        return out

    def ask(self, **attrs):
        """Send one request; return the action."""
        self.send_raw(request(**attrs))
        answer = self.read_answer()
        assert answer is not None, "greylist closed the connection after %r" % attrs
        assert "action" in answer, "answer without action: %r" % answer
        return answer["action"]


def request(protocol_state="RCPT", client_address="192.0.2.10", sender="alice@example.org",
            recipient="bob@example.test", **extra):
    """A request with every attribute Postfix 3.8 sends."""
    attrs = {
        "request": "smtpd_access_policy",
        "protocol_state": protocol_state,
        "protocol_name": "ESMTP",
        "helo_name": "client.example.org",
        "queue_id": "",
        "sender": sender,
        "recipient": recipient,
        "recipient_count": "0",
        "client_address": client_address,
        "client_name": "unknown",
        "reverse_client_name": "unknown",
        "instance": "1a2b.6543f2a1.c1d2e.0",
        "sasl_method": "",
        "sasl_username": "",
        "sasl_sender": "",
        "size": "0",
        "ccert_subject": "",
        "ccert_issuer": "",
        "ccert_fingerprint": "",
        "encryption_protocol": "",
        "encryption_cipher": "",
        "encryption_keysize": "0",
        "etrn_domain": "",
        "stress": "",
        "ccert_pubkey_fingerprint": "",
        "client_port": "40000",
        "policy_context": "",
        "server_address": "127.0.0.1",
        "server_port": "25",
        "compatibility_level": "3.6",
        "mail_version": "3.8.0",
    }
    attrs.update(extra)
    return "".join("%s=%s\n" % kv for kv in attrs.items()).encode("utf-8") + b"\n"


DEFER_RE = re.compile(r"^DEFER_IF_PERMIT 4\.2\.0 Greylisted for (\d+) seconds$")


def assert_deferred(action, what):
    m = DEFER_RE.match(action)
    assert m, "%s: expected DEFER_IF_PERMIT 4.2.0 Greylisted..., got %r" % (what, action)
    return int(m.group(1))


def assert_first_pass(action, what):
    m = re.match(r"^PREPEND X-Greylist: delayed (\d+) seconds by posthorn-greylist at "
                 r"mx\.example\.test; \w{3}, .+$", action)
    assert m, "%s: expected PREPEND X-Greylist: delayed N seconds..., got %r" % (what, action)
    return int(m.group(1))


# ---------------------------------------------------------------- the rules


@greylist_instance()
def test_defer_then_pass_then_pass_at_once(instance):
    with Policy(instance) as p:
        wait = assert_deferred(p.ask(), "first try")
        assert wait == DELAY
        wait = assert_deferred(p.ask(), "early retry")
        assert 1 <= wait <= DELAY
        time.sleep(DELAY + 0.2)
        delayed = assert_first_pass(p.ask(), "retry after the delay")
        assert DELAY <= delayed <= DELAY + 2
        assert p.ask() == "DUNNO", "the triplet passes at once from now on"
        assert p.ask() == "DUNNO"
    instance.wait_for_log(r"posthorn/greylist\[\d+\]: action=greylist, reason=new, "
                          r"client_name=unknown, client_address=192\.0\.2\.10, "
                          r"sender=alice@example\.org, recipient=bob@example\.test")
    instance.wait_for_log(r"action=greylist, reason=early-retry,")
    instance.wait_for_log(r"action=pass, reason=triplet passed after \d+s,")
    instance.wait_for_log(r"action=pass, reason=triplet found,")


@greylist_instance()
def test_only_rcpt_is_greylisted(instance):
    with Policy(instance) as p:
        for state in ("CONNECT", "EHLO", "HELO", "MAIL", "DATA", "END-OF-MESSAGE", "VRFY", "ETRN"):
            assert p.ask(protocol_state=state) == "DUNNO", state
        # No triplet was recorded by those: RCPT is still a first try.
        assert assert_deferred(p.ask(), "first RCPT") == DELAY


@greylist_instance()
def test_triplet_parts(instance):
    with Policy(instance) as p:
        assert_deferred(p.ask(client_address="192.0.2.10", sender="list+123@example.org"),
                        "first try")
        time.sleep(DELAY + 0.2)
        # Another host of the same /24, another extension and other digits:
        # the same triplet.
        assert_first_pass(p.ask(client_address="192.0.2.77", sender="LIST+456@Example.org"),
                          "same /24")
        assert p.ask(client_address="192.0.2.200", sender="list@example.org") == "DUNNO"
        # Another /24, another recipient, another sender: new triplets.
        assert_deferred(p.ask(client_address="192.0.3.10", sender="list@example.org"),
                        "different /24")
        assert_deferred(p.ask(recipient="carol@example.test", sender="list@example.org"),
                        "different recipient")
        assert_deferred(p.ask(sender="other@example.org"), "different sender")
        # Digits in the local part are masked (VERP bounces).
        assert_deferred(p.ask(client_address="198.51.100.1", sender="bounce-1234@lists.example"),
                        "VERP first")
        time.sleep(DELAY + 0.2)
        assert_first_pass(p.ask(client_address="198.51.100.1", sender="bounce-98@lists.example"),
                          "VERP, other number")
        # The null sender is a sender like any other.
        assert_deferred(p.ask(sender=""), "null sender")
        # IPv6: the /64 counts.
        assert_deferred(p.ask(client_address="2001:db8:1:2::10"), "IPv6 first")
        time.sleep(DELAY + 0.2)
        assert_first_pass(p.ask(client_address="2001:db8:1:2:ffff::1"), "same /64")
        assert_deferred(p.ask(client_address="2001:db8:1:3::10"), "other /64")


@greylist_instance()
def test_long_addresses(instance):
    # Triplets longer than an LMDB key are stored hashed: still one
    # triplet each, and two that differ only at the end stay apart.
    long_rcpt = "r" * 60 + "@" + ".".join(["sub%02d" % i for i in range(40)]) + ".example"
    other = long_rcpt[:-1] + "f"
    with Policy(instance) as p:
        assert_deferred(p.ask(recipient=long_rcpt, sender="s" * 200 + "@example.org"), "long, first")
        time.sleep(DELAY + 0.2)
        assert_deferred(p.ask(recipient=other, sender="s" * 200 + "@example.org"), "long, other")
        assert_first_pass(p.ask(recipient=long_rcpt, sender="s" * 200 + "@example.org"), "long, retry")
        assert p.ask(recipient=long_rcpt, sender="s" * 200 + "@example.org") == "DUNNO"


@greylist_instance(greylist_ipv4_prefix="32")
def test_prefix_is_configurable(instance):
    with Policy(instance) as p:
        assert_deferred(p.ask(client_address="192.0.2.10"), "first")
        time.sleep(DELAY + 0.2)
        assert_deferred(p.ask(client_address="192.0.2.11"), "/32: another host is another triplet")
        assert_first_pass(p.ask(client_address="192.0.2.10"), "the same host")


@greylist_instance(greylist_auto_allow="2")
def test_auto_allow_after_n_passes(instance):
    net = "203.0.113."
    with Policy(instance) as p:
        for i in range(2):
            assert_deferred(p.ask(client_address=net + "5", recipient="u%d@example.test" % i),
                            "triplet %d" % i)
        # Not yet: one pass so far is not two.
        time.sleep(DELAY + 0.2)
        assert_first_pass(p.ask(client_address=net + "5", recipient="u0@example.test"), "u0")
        assert_deferred(p.ask(client_address=net + "6", recipient="fresh1@example.test"),
                        "one pass is not enough")
        assert_first_pass(p.ask(client_address=net + "5", recipient="u1@example.test"), "u1")
        # Two passes: the whole /24 is allowed, new triplets included.
        assert p.ask(client_address=net + "99", recipient="fresh2@example.test",
                     sender="new@example.net") == "DUNNO"
        # Other networks are not.
        assert_deferred(p.ask(client_address="203.0.114.5", recipient="fresh2@example.test"),
                        "another network")
    instance.wait_for_log(r"action=pass, reason=client network auto-allowed, .*client_address=203\.0\.113\.99")


@greylist_instance(greylist_auto_allow="0")
def test_auto_allow_off(instance):
    with Policy(instance) as p:
        for i in range(3):
            assert_deferred(p.ask(recipient="u%d@example.test" % i), "triplet %d" % i)
        time.sleep(DELAY + 0.2)
        for i in range(3):
            assert_first_pass(p.ask(recipient="u%d@example.test" % i), "u%d" % i)
        assert_deferred(p.ask(recipient="new@example.test"), "auto-allow is off")


def test_client_whitelist(posthorn_factory):
    inst = posthorn_factory(main_cf=dict(BASE_CF), master_cf_extra=GREYLIST_MASTER_CF)
    wl = inst.etc / "greylist_clients"
    wl.write_text("# never greylisted\n198.51.100.0/24 OK\n2001:db8:aa::/48 OK\n")
    inst.main_cf_extra["greylist_client_whitelist"] = "cidr:%s" % wl
    inst.write_main_cf()
    inst.start()
    with Policy(inst) as p:
        assert p.ask(client_address="198.51.100.7") == "DUNNO"
        assert p.ask(client_address="2001:db8:aa:1::7") == "DUNNO"
        assert_deferred(p.ask(client_address="198.51.101.7"), "not listed")
    inst.wait_for_log(r"action=pass, reason=client whitelist, .*client_address=198\.51\.100\.7")


@greylist_instance(greylist_reject_action="450 4.7.1 Try again in %s seconds (%r)",
                   greylist_add_header="no")
def test_reject_action_and_no_header(instance):
    with Policy(instance) as p:
        assert p.ask(recipient="bob@example.test") == "450 4.7.1 Try again in %d seconds (example.test)" % DELAY
        time.sleep(DELAY + 0.2)
        assert p.ask(recipient="bob@example.test") == "DUNNO"


def test_reject_action_must_be_temporary(posthorn_factory):
    inst = posthorn_factory(main_cf=dict(BASE_CF, greylist_reject_action="REJECT go away"),
                            master_cf_extra=GREYLIST_MASTER_CF)
    inst.start()
    # master starts greylist when smtpd first connects; it refuses to run
    # (the connection waits in the socket's queue, unanswered).
    with Policy(inst, timeout=2) as p:
        p.send_raw(request())
        with pytest.raises((socket.timeout, ConnectionResetError)):
            p.read_answer()
    inst.wait_for_log(r"posthorn/greylist\[\d+\]: fatal: greylist_reject_action = REJECT go away: "
                      r"must start with DEFER_IF_PERMIT, DEFER or a 4NN code")


@greylist_instance(greylist_delay="1s", greylist_retry_window="3s", greylist_max_age="3s")
def test_retry_window_and_clean_up(instance):
    with Policy(instance) as p:
        assert p.ask(recipient="late@example.test").startswith("DEFER_IF_PERMIT")
        assert p.ask(recipient="passed@example.test").startswith("DEFER_IF_PERMIT")
        time.sleep(1.2)
        assert p.ask(recipient="passed@example.test").startswith("PREPEND X-Greylist:")
        time.sleep(4.2)
        # Too late: the first retry must come within the retry window.
        assert p.ask(recipient="late@example.test").startswith("DEFER_IF_PERMIT 4.2.0 Greylisted for 1 ")
        # A passed triplet not seen for max_age is forgotten too.
        assert p.ask(recipient="passed@example.test").startswith("DEFER_IF_PERMIT")
        # The clean-up step after the answer removed what had expired
        # (the passed triplet and the network's pass count).
    instance.wait_for_log(r"action=greylist, reason=new, .*recipient=late@example\.test", count=2)
    instance.wait_for_log(r"posthorn/greylist\[\d+\]: removed \d+ expired entries")


@greylist_instance(greylist_delay="0s")
def test_delay_zero_passes_first_try(instance):
    with Policy(instance) as p:
        assert_first_pass(p.ask(), "delay 0")
        assert p.ask() == "DUNNO"


# ---------------------------------------------------------------- garbage


@greylist_instance()
def test_garbage_requests_get_dunno(instance):
    with Policy(instance) as p:
        p.send_raw(b"this is not a policy request\n\n")
        assert p.read_answer() == {"action": "DUNNO"}
        p.send_raw(b"protocol_state=RCPT\nclient_address=192.0.2.1\nsender=a@b\nrecipient=c@d\n\n")
        assert p.read_answer() == {"action": "DUNNO"}, "no request="
        p.send_raw(request(client_address="not-an-address"))
        assert p.read_answer() == {"action": "DUNNO"}
        p.send_raw(request(client_address="999.1.2.3"))
        assert p.read_answer() == {"action": "DUNNO"}
        p.send_raw(request(recipient=""))
        assert p.read_answer() == {"action": "DUNNO"}, "empty recipient"
        p.send_raw(b"request=smtpd_access_policy\nprotocol_state=RCPT\n\n")
        assert p.read_answer() == {"action": "DUNNO"}, "no client_address, sender, recipient"
        p.send_raw(request(helo_name="x" * 10000))
        assert p.read_answer() == {"action": "DUNNO"}, "over-long line"
        p.send_raw(request().replace(b"sender=", b"sender=a@b\nsender=", 1))
        assert p.read_answer() == {"action": "DUNNO"}, "sender twice"
        p.send_raw(request(helo_name="a\x00b"))
        assert p.read_answer() == {"action": "DUNNO"}, "NUL byte"
        p.send_raw(b"\xff\xfe\x80=\x01\x02\n\n")
        assert p.read_answer() == {"action": "DUNNO"}, "binary"
        # Unknown attributes are ignored, as Postfix's servers must.
        p.send_raw(request(future_attribute="whatever"))
        assert assert_deferred(p.read_answer()["action"], "extra attribute")
        # After all that the connection still works.
        assert p.ask(recipient="after@example.test").startswith("DEFER_IF_PERMIT")
    with Policy(instance) as p:
        # Too many attributes: the connection is closed.
        p.send_raw(b"".join(b"a%d=b\n" % i for i in range(200)) + b"\n")
        assert p.read_answer() is None
    with Policy(instance) as p:
        # A client that hangs up halfway through a request.
        p.send_raw(b"request=smtpd_access_policy\nprotocol_st")
    with Policy(instance) as p:
        assert p.ask(recipient="after@example.test").startswith("DEFER_IF_PERMIT")
    instance.wait_for_log(r"warning: malformed request \(a line that is not name=value\): DUNNO")
    instance.wait_for_log(r"warning: request with a malformed client_address \"not-an-address\": DUNNO")
    instance.wait_for_log(r"warning: request with more than 100 attributes")
    for bad in instance.grep_log(r"posthorn/greylist\[\d+\]: (fatal|panic)"):
        pytest.fail("greylist died: %s" % bad)
    for bad in instance.grep_log(r"posthorn/master\[\d+\]: .*greylist.*(signal|status)"):
        pytest.fail("greylist died: %s" % bad)


# ---------------------------------------------------------------- sharing


@greylist_instance()
def test_two_processes_share_the_state(instance):
    with Policy(instance) as p1, Policy(instance) as p2:
        # Two connections at once are two greylist processes.
        assert_deferred(p1.ask(recipient="shared@example.test"), "first try, process 1")
        assert_deferred(p2.ask(recipient="shared@example.test"), "early retry, process 2")
        time.sleep(DELAY + 0.2)
        assert_first_pass(p2.ask(recipient="shared@example.test"), "process 2")
        assert p1.ask(recipient="shared@example.test") == "DUNNO"
    pids = set(re.findall(r"posthorn/greylist\[(\d+)\]: action=", instance.maillog()))
    assert len(pids) >= 2, "expected two greylist processes, saw %r" % pids


@greylist_instance()
def test_state_survives_restart(instance):
    with Policy(instance) as p:
        assert_deferred(p.ask(recipient="durable@example.test"), "first try")
        assert_deferred(p.ask(recipient="passed@example.test"), "first try")
        time.sleep(DELAY + 0.2)
        assert_first_pass(p.ask(recipient="passed@example.test"), "pass")
    result, stragglers = instance.stop()
    assert result.returncode == 0 and not stragglers
    instance.start()
    with Policy(instance) as p:
        assert_first_pass(p.ask(recipient="durable@example.test"), "after the restart")
        assert p.ask(recipient="passed@example.test") == "DUNNO"
    assert (instance.dir / "data" / "greylist.lmdb").is_file()
