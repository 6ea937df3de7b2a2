"""
Maildir deliveries count once the disk has them.  local links the file
into new/ and replies at once with a group-commit ticket; qmgr counts
the delivery (and retires the queue file) only after a syncfs() round
that started later: usually the next one cleanup runs for new mail, at
the latest one of its own after queue_delivery_sync_delay.  A long delay
makes each step visible here.
"""

import time

import pytest

from posthorn import make_message, send_one

SENDER = "sender@example.org"
LONG = {"queue_delivery_sync_delay": "60000"}


def _send(instance, token):
    with instance.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["alice@example.test"],
                                   make_message(token))
        assert code == 250 and qid, text
    return qid


def _queued(instance):
    return {m["queue_id"] for m in instance.queue_json()}


def _wait(cond, what, timeout=20):
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


@pytest.mark.instance(main_cf=LONG)
def test_delivery_counts_after_a_later_round(instance):
    q1 = _send(instance, "tok-1-1")
    instance.wait_for_maildir("alice", 1, settle=0)
    # Delivered into new/, but no round has run since: the queue file
    # still holds the message.
    time.sleep(1.0)
    assert q1 in _queued(instance), "counted before any sync covered it"
    # cleanup's commit for the next message covers the first delivery;
    # qmgr looks again when it hears of new mail (or an agent's reply).
    _send(instance, "tok-1-2")
    instance.wait_for_maildir("alice", 2, settle=0)
    q3 = _send(instance, "tok-1-3")
    _wait(lambda: q1 not in _queued(instance),
          "first delivery not counted after later rounds")
    instance.wait_for_maildir("alice", 3, settle=0)
    time.sleep(0.5)
    assert q3 in _queued(instance), "counted before any sync covered it"
    # Stopping runs the last round: every delivery counts, and nothing
    # is delivered again after the restart.
    instance.stop()
    assert not any(instance.queue_files().values()), instance.queue_dump()
    instance.start()
    time.sleep(1.0)
    tokens = instance.tokens(("alice",))
    assert sorted(tokens) == ["tok-1-1", "tok-1-2", "tok-1-3"]
    assert all(len(p) == 1 for p in tokens.values()), tokens
    assert not any(instance.queue_files().values()), instance.queue_dump()


@pytest.mark.instance(main_cf={"queue_delivery_sync_delay": "200"})
def test_a_lone_delivery_is_synced_by_qmgr(instance):
    q1 = _send(instance, "tok-2-1")
    instance.wait_for_maildir("alice", 1, settle=0)
    # Nothing else writes: qmgr's own round after the delay counts it.
    _wait(lambda: q1 not in _queued(instance),
          "lone delivery never counted")
    instance.wait_queue_empty(timeout=10)
