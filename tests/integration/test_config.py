"""
Configuration errors at start: a typo in a parameter name or a bad value
stops `posthorn start` with "main.cf:LINE: ..." and nothing keeps running;
a Postfix parameter posthorn does not implement is a warning naming it,
and the instance starts and delivers mail.
"""

import socket

import pytest

from posthorn import check_delivered, make_message, send_one

SENDER = "sender@example.org"


def _main_cf_with(inst, extra_line):
    """main.cf with extra_line inserted in the middle; returns its line number."""
    lines = ["# integration test instance %s" % inst.dir]
    lines += ["%s = %s" % (k, v) for k, v in inst.main_cf_params().items()]
    at = len(lines) // 2
    lines.insert(at, extra_line)
    inst.write_main_cf("\n".join(lines) + "\n")
    return at + 1


def _port_closed(port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def _assert_refused(inst, lineno, *words):
    r = inst.posthorn("start")
    out = r.stdout_text + r.stderr_text
    assert r.returncode != 0, "posthorn start succeeded with a broken main.cf:\n%s" % out
    where = "main.cf:%d:" % lineno
    assert where in out, "start output does not name %s:\n%s" % (where, out)
    for w in words:
        assert w in out, "start output does not mention %r:\n%s" % (w, out)
    assert inst.processes() == [], "processes left after a refused start: %r" % inst.processes()
    assert _port_closed(inst.smtp_port), "SMTP port open after a refused start"
    return out


def test_typo_in_parameter_name_refuses_to_start(posthorn_factory):
    inst = posthorn_factory()
    n = _main_cf_with(inst, "myhostnme = typo.example.test")
    out = _assert_refused(inst, n, "unknown parameter", "myhostnme")
    assert "main.cf:%d: unknown parameter" % n in out, out
    # posthorn conf check tells the same.
    r = inst.posthorn("conf", "check")
    assert r.returncode != 0 and "main.cf:%d: unknown parameter" % n in r.stdout_text + r.stderr_text, \
        (r.returncode, r.stdout_text, r.stderr_text)


@pytest.mark.parametrize("line,name", [
    ("message_size_limit = lots", "message_size_limit"),
    ("smtpd_recipient_limit = -3", "smtpd_recipient_limit"),
    ("minimal_backoff_time = 5 parsecs", "minimal_backoff_time"),
    ("smtpd_delay_reject = perhaps", "smtpd_delay_reject"),
])
def test_bad_value_refuses_to_start(posthorn_factory, line, name):
    inst = posthorn_factory()
    n = _main_cf_with(inst, line)
    _assert_refused(inst, n, name)


@pytest.mark.parametrize("line,name", [
    # Postfix knows it, posthorn's table has it marked as not implemented.
    ("biff = yes", "biff"),
    # Postfix knows it, posthorn's table does not have it at all.
    ("detect_8bit_encoding_header = yes", "detect_8bit_encoding_header"),
])
def test_unimplemented_postfix_parameter_warns_and_starts(posthorn_factory, line, name):
    inst = posthorn_factory()
    _main_cf_with(inst, line)
    r = inst.start()
    said = r.stdout_text + r.stderr_text + inst.maillog()
    assert name in said and "warning" in said.lower(), \
        "no warning naming %s; start said:\n%s%s\nmaillog:\n%s" % (name, r.stdout_text, r.stderr_text, inst.maillog())
    sent = make_message("despite-%s" % name)
    with inst.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["alice@example.test"], sent)
        assert code == 250, text
    [(_, data)] = inst.wait_for_maildir("alice", 1)
    check_delivered(data, sent, SENDER, "alice@example.test", qid)

