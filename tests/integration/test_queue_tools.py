"""
The administrator's queue tools against a running instance:

  posthorn queue -f / -s site / -i ID   ask qmgr to retry deferred mail now
  posthorn super -d / -h / -H / -r      delete, hold, release, requeue
  posthorn cat ID                        show a queue file

Deferred mail is made by a mailbox that cannot be created (a FILE where
its directory should be, as in test_queue_cmd.py), with back-off times of
an hour: nothing is retried unless a tool asks for it.  "Fixing" the
mailbox then shows which messages a tool released: they are delivered
within seconds, the others stay.
"""

import os
import re
import subprocess
import threading
import time

import pytest

from posthorn import USERS, make_message, send_one

SENDER = "sender@example.org"
BLOCKED = "blocked@example.test"
OTHER = "carol@other.test"
SLOW_RETRY = {"minimal_backoff_time": "3600s", "maximal_backoff_time": "7200s", "queue_run_delay": "3600s",
              "virtual_mailbox_domains": "example.test other.test"}
TOOL_USERS = dict(USERS, **{BLOCKED: "example.test/blocked/", OTHER: "other.test/carol/"})
QUICK = 15  # seconds a released message may take to arrive

pytestmark = pytest.mark.instance(main_cf=SLOW_RETRY, users=TOOL_USERS)


def block(inst, rel):
    """Put a file where the Maildir directory rel (under mail/) would go."""
    path = inst.mail / rel.rstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    if os.geteuid() == 0:
        os.chown(path.parent, inst.uid, inst.gid)
    path.write_text("not a directory\n")
    return path


def send(inst, rcpts, subject):
    with inst.smtp() as s:
        code, text, qid = send_one(s, SENDER, rcpts, make_message(subject, to=", ".join(rcpts)))
        assert code == 250, text
    return qid


def queue_entry(inst, qid):
    for e in inst.queue_json():
        if e["queue_id"] == qid:
            return e
    return None


def wait_queue_name(inst, qid, name, timeout=60):
    deadline = time.monotonic() + timeout
    while True:
        e = queue_entry(inst, qid)
        if e is not None and e["queue_name"] == name and (
                name != "deferred" or all(r.get("delay_reason") for r in e["recipients"])):
            return e
        if time.monotonic() > deadline:
            raise AssertionError("%s not in %s within %ss: %r\n%s" % (qid, name, timeout, e, inst.queue_dump()))
        time.sleep(0.1)


def deferred_message(inst, subject, rcpt=BLOCKED):
    qid = send(inst, [rcpt], subject)
    wait_queue_name(inst, qid, "deferred")
    return qid


def subjects(inst, user):
    out = []
    for _, data in inst.messages(user):
        m = re.search(rb"^Subject: (.*)$", data, re.M)
        out.append(m.group(1).decode())
    return sorted(out)


def wait_subjects(inst, user, want, timeout=QUICK):
    deadline = time.monotonic() + timeout
    while True:
        got = subjects(inst, user)
        if got == sorted(want):
            return
        if time.monotonic() > deadline:
            raise AssertionError("%s: expected %r within %ss, got %r\n%s" % (
                user, sorted(want), timeout, got, inst.queue_dump()))
        time.sleep(0.1)


def super_(inst, *args, stdin=None):
    cmd = [str(inst.bin / "posthorn"), "-c", str(inst.etc), "super"] + list(args)
    r = subprocess.run(cmd, input=stdin, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
    return r.returncode, r.stderr.decode("utf-8", "replace")


# ---------------------------------------------------------------- queue -f / -s / -i


def test_queue_f_delivers_deferred_mail_at_once(instance):
    blocker = block(instance, TOOL_USERS[BLOCKED])
    qid = deferred_message(instance, "flush-me")
    blocker.unlink()
    time.sleep(1)
    assert subjects(instance, BLOCKED) == [], "delivered before the flush"
    instance.posthorn("queue", "-f", check=True)
    wait_subjects(instance, BLOCKED, ["flush-me"])
    instance.wait_for_log(r"%s: removed" % qid)


def test_queue_i_delivers_only_that_message(instance):
    blocker = block(instance, TOOL_USERS[BLOCKED])
    one = deferred_message(instance, "only-this-one")
    other = deferred_message(instance, "not-this-one")
    blocker.unlink()
    instance.posthorn("queue", "-i", one, check=True)
    wait_subjects(instance, BLOCKED, ["only-this-one"])
    time.sleep(2)
    assert subjects(instance, BLOCKED) == ["only-this-one"]
    assert queue_entry(instance, other)["queue_name"] == "deferred"
    r = instance.posthorn("queue", "-i", "bad/id")
    assert r.returncode == 2 and "invalid" in r.stderr_text, r


def test_queue_s_delivers_only_that_site(instance):
    b1 = block(instance, TOOL_USERS[BLOCKED])
    b2 = block(instance, TOOL_USERS[OTHER])
    here = deferred_message(instance, "for-example-test")
    there = deferred_message(instance, "for-other-test", rcpt=OTHER)
    b1.unlink()
    b2.unlink()
    instance.posthorn("queue", "-s", "other.test", check=True)
    wait_subjects(instance, OTHER, ["for-other-test"])
    time.sleep(2)
    assert subjects(instance, BLOCKED) == []
    assert queue_entry(instance, here)["queue_name"] == "deferred"
    instance.wait_for_log(r"%s: removed" % there)


def test_queue_flush_when_the_system_is_down(instance):
    instance.stop()
    r = instance.posthorn("queue", "-f")
    assert r.returncode == 1 and "mail system is down" in r.stderr_text, r


# ---------------------------------------------------------------- super -d


def test_super_d_one_message(instance):
    blocker = block(instance, TOOL_USERS[BLOCKED])
    gone = deferred_message(instance, "delete-me")
    kept = deferred_message(instance, "keep-me")
    assert (instance.queue / "defer" / gone).exists()
    rc, err = super_(instance, "-d", gone)
    assert rc == 0 and "posthorn/super: Deleted: 1 message\n" in err, (rc, err)
    assert queue_entry(instance, gone) is None
    assert not (instance.queue / "defer" / gone).exists(), "defer log left behind"
    instance.wait_for_log(r"posthorn/super\[\d+\]: %s: removed" % gone)
    # An ID that is not there: a warning, exit status 0 (postsuper's).
    rc, err = super_(instance, "-d", gone)
    assert rc == 0 and "posthorn/super: warning: %s: no such message" % gone in err, (rc, err)
    assert "Deleted" not in err
    # An invalid ID never becomes a path.
    rc, err = super_(instance, "-d", "../../etc/passwd")
    assert rc == 1 and "invalid mail queue id" in err, (rc, err)
    blocker.unlink()
    instance.posthorn("queue", "-f", check=True)
    wait_subjects(instance, BLOCKED, ["keep-me"])


def test_super_d_all_and_from_stdin(instance):
    block(instance, TOOL_USERS[BLOCKED])
    ids = [deferred_message(instance, "all-%d" % i) for i in range(3)]
    rc, err = super_(instance, "-h", ids[0])
    assert rc == 0, err
    rc, err = super_(instance, "-d", "-", stdin=("%s\n\n  %s  \nnot/valid\n" % (ids[1], ids[1])).encode())
    assert rc == 0 and "Deleted: 1 message\n" in err and "invalid mail queue id" in err, err
    rc, err = super_(instance, "-d", "ALL")
    assert rc == 0 and "posthorn/super: Deleted: 2 messages\n" in err, (rc, err)
    assert instance.queue_json() == []
    assert os.listdir(instance.queue / "defer") == []


def test_super_d_while_deliveries_run(instance):
    """Deleting everything while qmgr delivers: nothing breaks, nothing is
    delivered twice, the queue ends empty and qmgr goes on working."""
    n = 40
    done = threading.Event()

    def deleter():
        while not done.is_set():
            super_(instance, "-d", "ALL")
            time.sleep(0.05)

    t = threading.Thread(target=deleter)
    t.start()
    try:
        with instance.smtp() as s:
            for i in range(n):
                code, text, _ = send_one(s, SENDER, ["alice@example.test"], make_message("race-%d" % i))
                assert code == 250, text
    finally:
        time.sleep(1)
        done.set()
        t.join()
    instance.wait_queue_empty(timeout=30)
    got = subjects(instance, "alice")
    assert len(got) == len(set(got)) <= n, "duplicates: %r" % got
    assert not instance.grep_log(r"panic|fatal"), instance.grep_log(r"panic|fatal")
    send(instance, ["bob@example.test"], "after-the-race")
    wait_subjects(instance, "bob", ["after-the-race"])


# ---------------------------------------------------------------- super -h / -H / -r


def test_super_h_holds_and_H_releases(instance):
    blocker = block(instance, TOOL_USERS[BLOCKED])
    qid = deferred_message(instance, "held")
    rc, err = super_(instance, "-h", qid)
    assert rc == 0 and "posthorn/super: Placed on hold: 1 message\n" in err, (rc, err)
    e = queue_entry(instance, qid)
    assert e["queue_name"] == "hold", e
    r = instance.posthorn("queue", "-p", check=True)
    assert re.search(r"^%s!\s" % qid, r.stdout_text, re.M), r.stdout_text
    # Held mail is not delivered, not even by a flush.
    blocker.unlink()
    instance.posthorn("queue", "-f", check=True)
    time.sleep(3)
    assert subjects(instance, BLOCKED) == []
    assert queue_entry(instance, qid)["queue_name"] == "hold"
    # Holding it again is no error; release sends it at once.
    rc, err = super_(instance, "-h", qid)
    assert rc == 0 and "warning" not in err, err
    rc, err = super_(instance, "-H", qid)
    assert rc == 0 and "posthorn/super: Released from hold: 1 message\n" in err, (rc, err)
    wait_subjects(instance, BLOCKED, ["held"])
    instance.wait_for_log(r"%s: removed" % qid)
    instance.wait_for_log(r"posthorn/super\[\d+\]: %s: released from hold" % qid)


def test_super_h_all_then_H_all(instance):
    blocker = block(instance, TOOL_USERS[BLOCKED])
    ids = [deferred_message(instance, "hold-all-%d" % i) for i in range(2)]
    rc, err = super_(instance, "-h", "ALL")
    assert rc == 0 and "Placed on hold: 2 messages" in err, err
    assert sorted(e["queue_name"] for e in instance.queue_json()) == ["hold", "hold"]
    blocker.unlink()
    rc, err = super_(instance, "-H", "ALL")
    assert rc == 0 and "Released from hold: 2 messages" in err, err
    wait_subjects(instance, BLOCKED, ["hold-all-0", "hold-all-1"])
    for qid in ids:
        instance.wait_for_log(r"%s: removed" % qid)


def test_super_r_requeues(instance):
    blocker = block(instance, TOOL_USERS[BLOCKED])
    qid = deferred_message(instance, "requeue-me")
    blocker.unlink()
    rc, err = super_(instance, "-r", qid)
    assert rc == 0 and "posthorn/super: Requeued: 1 message\n" in err, (rc, err)
    # From incoming/ qmgr takes it at once, without waiting for a retry.
    wait_subjects(instance, BLOCKED, ["requeue-me"])
    instance.wait_for_log(r"%s: removed" % qid)


def test_super_needs_an_operation(instance):
    rc, err = super_(instance)
    assert rc == 2 and "usage" in err, err
    rc, err = super_(instance, "-d", "ALL", "nosuchqueue")
    assert rc == 2, err


# ---------------------------------------------------------------- cat


def test_cat_shows_envelope_and_content(instance):
    block(instance, TOOL_USERS[BLOCKED])
    qid = send(instance, ["alice@example.test", BLOCKED], "cat-me")
    wait_queue_name(instance, qid, "deferred")
    r = instance.posthorn("cat", qid, check=True)
    out = r.stdout_text
    sections = re.findall(r"^\*\*\* (.*) deferred/%s \*\*\*$" % qid, out, re.M)
    assert sections == ["ENVELOPE RECORDS", "MESSAGE CONTENTS", "HEADER EXTRACTED", "MESSAGE FILE END"], out
    assert re.search(r"^message_arrival_time: \w{3} \w{3} [ \d]\d \d\d:\d\d:\d\d \d{4}$", out, re.M), out
    assert "\nsender: %s\n" % SENDER in out
    assert "\ndone_recipient: alice@example.test\n" in out, out
    assert "\nrecipient: %s\n" % BLOCKED in out, out
    assert re.search(r"^named_attribute: client_addr=127\.0\.0\.1$", out, re.M), out
    assert "\nSubject: cat-me\n" in out and "this is cat-me." in out, out

    env = instance.posthorn("cat", "-e", qid, check=True).stdout_text
    assert "sender: %s" % SENDER in env and "Subject:" not in env, env
    head = instance.posthorn("cat", "-h", qid, check=True).stdout_text
    assert head.startswith("Received: ") and "Subject: cat-me\n" in head and "this is cat-me" not in head, head
    assert "***" not in head
    body = instance.posthorn("cat", "-b", qid, check=True).stdout_text
    assert body.startswith("Hello,\n") and "Subject:" not in body, body
    # By path, and errors.
    r = instance.posthorn("cat", "-e", str(instance.queue / "deferred" / qid), check=True)
    assert "recipient: %s" % BLOCKED in r.stdout_text
    r = instance.posthorn("cat", "NOSUCHID")
    assert r.returncode == 1 and "no such message" in r.stderr_text, r
