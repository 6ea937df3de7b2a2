"""
`posthorn queue -p` / `queue -j` (Postfix's postqueue -p / -j) and the
deferred queue: a recipient whose Maildir cannot be created is a temporary
failure, the message waits in deferred/ with its delay reason, the other
recipients of the same message are delivered, and once the problem is
fixed the retry delivers it.

The Maildir is blocked by a regular FILE where its directory should be,
so mkdir fails even for root (root ignores permission bits).
"""

import json
import os
import re
import time

import pytest

from posthorn import USERS, check_delivered, make_message, send_one

SENDER = "sender@example.org"
BLOCKED = "blocked@example.test"
FAST_RETRY = {"minimal_backoff_time": "2s", "maximal_backoff_time": "4s", "queue_run_delay": "1s"}


def _wait_deferred(inst, qid, timeout=60):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        entries = inst.queue_json()
        last = entries
        for e in entries:
            if e.get("queue_id") == qid and e.get("queue_name") == "deferred" and all(
                    r.get("delay_reason") for r in e.get("recipients", [])):
                return e
        time.sleep(0.2)
    raise AssertionError("message %s not deferred with a delay reason within %ss; queue -j: %r\n%s"
                         % (qid, timeout, last, inst.queue_dump()))


@pytest.mark.instance(main_cf=FAST_RETRY, users=dict(USERS, **{BLOCKED: "example.test/blocked/"}))
def test_blocked_mailbox_defers_then_delivers_after_fix(instance):
    domain_dir = instance.mail / "example.test"
    domain_dir.mkdir(exist_ok=True)
    blocker = domain_dir / "blocked"
    blocker.write_text("not a directory\n")
    if os.geteuid() == 0:
        os.chown(domain_dir, instance.uid, instance.gid)

    sent = make_message("deferred-one", to="%s, alice@example.test" % BLOCKED)
    t0 = time.time()
    with instance.smtp() as s:
        code, text, qid = send_one(s, SENDER, [BLOCKED, "alice@example.test"], sent)
        assert code == 250, text

    # The other recipient is not held up.
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    check_delivered(data, sent, SENDER, "alice@example.test", qid)

    entry = _wait_deferred(instance, qid)
    assert entry["queue_name"] == "deferred"
    assert entry["sender"] == SENDER
    assert isinstance(entry["arrival_time"], int) and abs(entry["arrival_time"] - t0) < 60, entry
    assert isinstance(entry["message_size"], int) and entry["message_size"] >= len(sent) - 200, entry
    assert entry.get("forced_expire") in (False, None), entry
    rcpts = entry["recipients"]
    assert [r["address"] for r in rcpts] == [BLOCKED], "only the undelivered recipient is listed: %r" % rcpts
    reason = rcpts[0]["delay_reason"]
    assert isinstance(reason, str) and reason.strip(), rcpts
    deferred_log = instance.wait_for_log(r"%s: to=<%s>,.*status=deferred \(" % (qid, BLOCKED))
    assert "dsn=4." in deferred_log[0], deferred_log

    # postqueue -p layout.  A retry may be running at this moment (the
    # line then reads "ID*"): look again until it is back in deferred/.
    deadline = time.monotonic() + 20
    while True:
        r = instance.posthorn("queue", "-p", check=True)
        lines = r.stdout_text.splitlines()
        assert lines and lines[0].startswith("-Queue ID-"), r.stdout_text
        head = [i for i, l in enumerate(lines) if re.match(r"^%s[*!]?\s" % re.escape(qid), l)]
        assert len(head) == 1, "queue -p: no line for %s:\n%s" % (qid, r.stdout_text)
        i = head[0]
        fields = lines[i].split()
        if fields[0] == qid or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert fields[0] == qid, "deferred message marked active or held: %r" % lines[i]
    assert int(fields[1]) == entry["message_size"], lines[i]
    assert fields[-1] == SENDER, lines[i]
    # "(delay reason)", possibly wrapped over several lines, then the recipient.
    j = i + 1
    assert lines[j].strip().startswith("("), "queue -p: delay reason line %r" % lines[j]
    while not lines[j].rstrip().endswith(")"):
        j += 1
        assert j < len(lines), "queue -p: delay reason not closed:\n%s" % r.stdout_text
    assert lines[j + 1].strip() == BLOCKED, "queue -p: recipient line %r" % lines[j + 1]
    assert not any(l.strip() == "alice@example.test" for l in lines), "delivered recipient still listed"
    assert re.match(r"^-- \d+ Kbytes in 1 Request\.$", lines[-1]), lines[-1]

    # Still deferred a few retries later, and nothing lost meanwhile.
    time.sleep(3)
    assert instance.messages(BLOCKED) == [] and len(instance.messages("alice")) == 1

    # Fix the mailbox; the next retry delivers.
    blocker.unlink()
    [(_, data)] = instance.wait_for_maildir(BLOCKED, 1, timeout=60)
    check_delivered(data, sent, SENDER, BLOCKED, qid)
    instance.wait_for_log(r"%s: to=<%s>,.*status=sent" % (qid, BLOCKED))
    instance.wait_for_log(r"%s: removed" % qid)
    assert instance.queue_json() == []
    assert len(instance.messages("alice")) == 1, "alice got the message again on retry"


def test_empty_queue_listing(instance):
    r = instance.posthorn("queue", "-p", check=True)
    assert r.stdout_text.strip() == "Mail queue is empty", r.stdout_text
    r = instance.posthorn("queue", "-j", check=True)
    assert r.stdout_text.strip() == "", r.stdout_text


@pytest.mark.instance(users=dict(USERS, **{BLOCKED: "example.test/blocked/"}))
def test_queue_json_is_one_valid_object_per_line(instance):
    domain_dir = instance.mail / "example.test"
    domain_dir.mkdir(exist_ok=True)
    (domain_dir / "blocked").write_text("x")
    qids = []
    with instance.smtp() as s:
        for i in range(3):
            code, text, qid = send_one(s, "<>" if i == 0 else SENDER, [BLOCKED], make_message("json-%d" % i))
            assert code == 250, text
            qids.append(qid)
    for q in qids:
        _wait_deferred(instance, q)
    r = instance.posthorn("queue", "-j", check=True)
    objs = [json.loads(l) for l in r.stdout_text.splitlines()]
    assert sorted(o["queue_id"] for o in objs) == sorted(qids)
    for o in objs:
        for key in ("queue_name", "queue_id", "arrival_time", "message_size", "sender", "recipients"):
            assert key in o, "queue -j object without %s: %r" % (key, o)
        for rc in o["recipients"]:
            assert rc["address"] == BLOCKED and "delay_reason" in rc, rc
    # Postfix's showq shows the null sender as $empty_address_recipient.
    null = [o for o in objs if o["queue_id"] == qids[0]]
    assert null[0]["sender"] == "MAILER-DAEMON", "null sender shown as %r" % null[0]["sender"]
