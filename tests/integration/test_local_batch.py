"""
Batched local deliveries: qmgr pipelines several requests on one local
connection, local delivers what waits as one batch under one group commit
and answers each request in order.  The outcome of every message must
still be its own: interleaved messages to a mailbox that cannot be
written (deferred) and to good mailboxes (delivered) must not trade
results, and a local killed in the middle of batches loses nothing.
"""

import os
import signal
import threading
import time

import pytest

from posthorn import USERS, collect_tokens, make_message, send_one

SENDER = "sender@example.org"
BROKEN = dict(USERS, **{"carol@example.test": "example.test/carol/"})


def _burst(instance, conns, per_conn, rcpt_of):
    """Send conns x per_conn messages in parallel; {token: (rcpt, qid)}."""
    accepted, errors = {}, []
    lock = threading.Lock()

    def client(n):
        try:
            with instance.smtp(timeout=120) as s:
                for i in range(per_conn):
                    token = "tok-%d-%d" % (n, i)
                    rcpt = rcpt_of(n, i)
                    code, text, qid = send_one(s, SENDER, [rcpt], make_message(token, to=rcpt))
                    if code != 250 or not qid:
                        raise AssertionError("%s: end of DATA %d %r" % (token, code, text))
                    with lock:
                        accepted[token] = (rcpt, qid)
                s.quit()
        except Exception as e:
            with lock:
                errors.append("connection %d: %r" % (n, e))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(conns)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "clients still running after 300s"
    assert not errors, errors
    assert len(accepted) == conns * per_conn
    return accepted


@pytest.mark.instance(users=BROKEN)
def test_pipelined_outcomes_stay_with_their_messages(instance):
    # carol's Maildir path is a plain file: every delivery to her fails
    # with a temporary error, while alice's and bob's succeed.
    parent = instance.mail / "example.test"
    parent.mkdir(parents=True, exist_ok=True)
    (parent / "carol").write_text("not a directory\n")
    if os.geteuid() == 0:
        for p in (parent, parent / "carol"):
            os.chown(p, instance.uid, instance.gid)
    users = ("alice", "bob", "carol")
    accepted = _burst(instance, 8, 40,
                      lambda n, i: "%s@example.test" % users[(n * 7 + i) % 3])
    good = {t: r for t, r in accepted.items() if not r[0].startswith("carol")}
    bad_qids = {q for r, q in accepted.values() if r.startswith("carol")}
    assert bad_qids and good

    deadline = time.monotonic() + 120
    while True:
        seen = collect_tokens(instance, ("alice", "bob"))
        queued = {m["queue_id"] for m in instance.queue_json()}
        if (len(seen) >= len(good) and queued == bad_qids) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert sorted(set(good) - set(seen)) == [], "good messages not delivered"
    assert sorted(set(seen) - set(good)) == [], "a deferred message was delivered"
    dups = {t: len(p) for t, p in seen.items() if len(p) > 1}
    assert not dups, "delivered more than once: %r" % dups
    for token, paths in seen.items():
        assert paths[0].parent.parent.name == good[token][0].split("@")[0]
    # Exactly carol's messages wait in the queue, each with her reason.
    queue = instance.queue_json()
    assert {m["queue_id"] for m in queue} == bad_qids
    for m in queue:
        assert m["queue_name"] == "deferred", m
        [r] = m["recipients"]
        assert r["address"] == "carol@example.test"
        assert "maildir delivery failed" in r["delay_reason"], r


def test_local_killed_between_batches_loses_nothing(instance):
    stop = threading.Event()
    kills = []

    def killer():
        while not stop.is_set():
            for pid, cmd in instance.processes():
                words = cmd.split()  # empty while a process starts or exits
                if words and words[0].endswith("local"):
                    try:
                        os.kill(pid, signal.SIGKILL)
                        kills.append(pid)
                    except ProcessLookupError:
                        pass
            stop.wait(0.15)

    k = threading.Thread(target=killer, daemon=True)
    k.start()
    try:
        accepted = _burst(instance, 10, 30, lambda n, i: "alice@example.test")
        time.sleep(0.5)
    finally:
        stop.set()
        k.join(10)
    assert kills, "no local process was ever running"

    deadline = time.monotonic() + 180
    while True:
        seen = collect_tokens(instance, ("alice",))
        if len(seen) >= len(accepted) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    missing = sorted(set(accepted) - set(seen))
    assert not missing, "%d acknowledged messages lost (%d kills): %r" % (
        len(missing), len(kills), missing[:20])
    instance.wait_queue_empty(timeout=120)


@pytest.mark.instance(main_cf={"virtual_destination_concurrency_limit": "1"})
def test_backlog_at_its_concurrency_limit_drains(instance):
    # One delivery at a time into the domain: qmgr holds a backlog whose
    # every message waits for the same key.  Each reply must let exactly
    # the next one go; a scheduler that lost count of what may go would
    # leave mail sitting in the active queue.
    accepted = _burst(instance, 6, 30,
                      lambda n, i: ("alice", "bob")[(n + i) % 2] + "@example.test")
    deadline = time.monotonic() + 120
    while True:
        seen = collect_tokens(instance, ("alice", "bob"))
        if len(seen) >= len(accepted) or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    assert sorted(set(accepted) - set(seen)) == [], "messages left undelivered"
    dups = {t: len(p) for t, p in seen.items() if len(p) > 1}
    assert not dups, "delivered more than once: %r" % dups
    instance.wait_queue_empty(timeout=60)


@pytest.mark.instance(users=BROKEN)
def test_recycled_queue_files_are_found_again_after_a_restart(instance):
    # Delivered messages leave their queue files in recycle/ for the next
    # ones; which slots are full lives in memory master shares, so after
    # a restart qmgr must find the parked files again and cleanup reuse
    # them rather than create new ones.
    recycle = instance.queue / "recycle"
    accepted = _burst(instance, 2, 10, lambda n, i: "alice@example.test")
    deadline = time.monotonic() + 60
    while len(collect_tokens(instance, ("alice",))) < len(accepted):
        assert time.monotonic() < deadline, "not delivered"
        time.sleep(0.2)
    instance.wait_queue_empty(timeout=60)
    parked = {p.stat().st_ino for p in recycle.iterdir()}
    assert parked, "nothing was parked in recycle/"
    instance.stop()
    # carol's Maildir cannot be written: her message stays queued, so
    # its file can be looked at and nothing goes back to recycle/.
    parent = instance.mail / "example.test"
    (parent / "carol").write_text("not a directory\n")
    if os.geteuid() == 0:
        os.chown(parent / "carol", instance.uid, instance.gid)
    instance.start()
    with instance.smtp() as s:
        code, text, qid = send_one(s, SENDER, ["carol@example.test"],
                                   make_message("after-restart", to="carol@example.test"))
        assert code == 250 and qid, text
    deadline = time.monotonic() + 30
    ino = None
    while ino is None and time.monotonic() < deadline:
        for q in ("incoming", "active", "deferred"):
            try:
                ino = (instance.queue / q / qid).stat().st_ino
                break
            except FileNotFoundError:  # not there, or moving on
                pass
        else:
            time.sleep(0.1)
    assert ino is not None, "queue file of %s not found" % qid
    assert ino in parked, "a new file, not a recycled one"
    assert len(list(recycle.iterdir())) == len(parked) - 1
