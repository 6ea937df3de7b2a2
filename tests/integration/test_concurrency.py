"""
Many clients at once: 500 messages over 10 parallel connections, each with
a unique token in its Subject and body.  Every message must be accepted
and delivered exactly once.
"""

import threading
import time

from posthorn import collect_tokens, make_message, send_one

SENDER = "sender@example.org"


def test_500_messages_over_10_connections_delivered_exactly_once(instance):
    conns, per_conn = 10, 50
    users = ("alice", "bob")
    accepted = {}
    errors = []
    lock = threading.Lock()

    def client(n):
        try:
            with instance.smtp(timeout=120) as s:
                for i in range(per_conn):
                    token = "tok-%d-%d" % (n, i)
                    rcpt = "%s@example.test" % users[(n + i) % 2]
                    msg = make_message(token, body_lines=["token %s" % token, "connection %d" % n])
                    code, text, qid = send_one(s, SENDER, [rcpt], msg)
                    if code != 250 or not qid:
                        raise AssertionError("%s: end of DATA %d %r" % (token, code, text))
                    with lock:
                        accepted[token] = (users[(n + i) % 2], qid)
                s.quit()
        except Exception as e:  # reported below with the connection number
            with lock:
                errors.append("connection %d: %r" % (n, e))

    threads = [threading.Thread(target=client, args=(n,), daemon=True) for n in range(conns)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(300)
    assert not any(t.is_alive() for t in threads), "clients still running after 300s"
    assert not errors, errors
    assert len(accepted) == conns * per_conn
    assert len(set(q for _, q in accepted.values())) == conns * per_conn, "queue IDs not unique"

    # Wait for every delivery, then a little longer for late duplicates.
    deadline = time.monotonic() + 300
    while True:
        seen = collect_tokens(instance, users)
        if len(seen) >= len(accepted) or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    instance.wait_queue_empty(timeout=120)
    time.sleep(1)
    seen = collect_tokens(instance, users)
    missing = sorted(set(accepted) - set(seen))
    extra = sorted(set(seen) - set(accepted))
    dups = {t: len(p) for t, p in seen.items() if len(p) > 1}
    assert not missing, "%d accepted messages never delivered (took %.0fs): %r" % (
        len(missing), time.monotonic() - t0, missing[:20])
    assert not extra, extra
    assert not dups, "delivered more than once: %r" % dups
    for token, paths in seen.items():
        user = accepted[token][0]
        assert paths[0].parent.parent.name == user, "%s delivered to %s, sent to %s" % (token, paths[0], user)
    assert instance.queue_json() == []
