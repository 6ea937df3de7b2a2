"""
PIPELINING (RFC 2920): a client may send MAIL, RCPTs and DATA in one
write, and the message content, its final "." and the next transaction's
commands in the next one.  The replies must come back one per command, in
order, and every accepted message must be delivered.
"""

import shutil
import subprocess

import pytest

from posthorn import check_delivered, enhanced, make_message, queue_id_of

SENDER = "sender@example.org"


def test_pipelined_transactions_replies_in_order_all_delivered(instance):
    msgs = [make_message("pipe-%d" % i, to="alice@example.test, bob@example.test") for i in range(3)]
    with instance.raw() as c:
        texts = c.expect("EHLO client.example.org", 250)
        assert "PIPELINING" in [t.split()[0].upper() for t in texts[1:]]
        group = ("MAIL FROM:<%s>\r\nRCPT TO:<alice@example.test>\r\nRCPT TO:<nosuchuser@example.test>\r\n"
                 "RCPT TO:<bob@example.test>\r\nDATA\r\n" % SENDER).encode()
        # First group: commands up to DATA in one write.
        c.send(group)
        replies = [c.reply() for _ in range(5)]
        assert [r[0] for r in replies] == [250, 250, 550, 250, 354], replies
        assert enhanced(replies[2][1][0]) == "5.1.1", replies[2]
        qids = []
        # Then: content + "." + the next group, in one write each time.
        for i, m in enumerate(msgs):
            last = i == len(msgs) - 1
            c.send(m + b".\r\n" + (b"QUIT\r\n" if last else group))
            code, texts = c.reply()
            assert code == 250, "end of DATA %d: %r %r" % (i, code, texts)
            qids.append(queue_id_of(texts[0]))
            if last:
                code, texts = c.reply()
                assert code == 221, (code, texts)
            else:
                replies = [c.reply() for _ in range(5)]
                assert [r[0] for r in replies] == [250, 250, 550, 250, 354], (i, replies)
        assert c.at_eof()
    assert len(set(qids)) == 3 and all(qids), qids
    for user in ("alice", "bob"):
        got = instance.wait_for_maildir(user, 3, settle=1.0)
        assert len(got) == 3, "%s: %d messages" % (user, len(got))
        for m, qid in zip(msgs, qids):
            matches = [d for _, d in got if d.endswith(m.replace(b"\r\n", b"\n"))]
            assert len(matches) == 1, "%s: message %s found %d times" % (user, qid, len(matches))
            check_delivered(matches[0], m, SENDER, "%s@example.test" % user, qid)


def test_whole_session_in_one_write(instance):
    """RSET/MAIL/RCPT/DATA in one write, then the content, its dot, RSET and
    QUIT in the next: nothing the server already read may be lost."""
    m = make_message("one-write")
    with instance.raw() as c:
        c.expect("EHLO client.example.org", 250)
        c.send(b"RSET\r\nMAIL FROM:<" + SENDER.encode() + b">\r\nRCPT TO:<bob@example.test>\r\nDATA\r\n")
        assert [c.reply()[0] for _ in range(4)] == [250, 250, 250, 354]
        c.send(m + b".\r\nRSET\r\nQUIT\r\n")
        code, texts = c.reply()
        assert code == 250, (code, texts)
        qid = queue_id_of(texts[0])
        assert c.reply()[0] == 250
        assert c.reply()[0] == 221
    [(_, data)] = instance.wait_for_maildir("bob", 1)
    check_delivered(data, m, SENDER, "bob@example.test", qid)


def test_pipelined_bdat(instance):
    m1 = make_message("bdat-pipe-1")
    m2 = make_message("bdat-pipe-2")
    half = len(m1) // 2
    with instance.raw() as c:
        c.expect("EHLO client.example.org", 250)
        wire = (b"MAIL FROM:<%s>\r\nRCPT TO:<alice@example.test>\r\n" % SENDER.encode()
                + b"BDAT %d\r\n" % half + m1[:half]
                + b"BDAT %d LAST\r\n" % (len(m1) - half) + m1[half:]
                + b"MAIL FROM:<%s>\r\nRCPT TO:<alice@example.test>\r\n" % SENDER.encode()
                + b"BDAT %d LAST\r\n" % len(m2) + m2 + b"QUIT\r\n")
        c.send(wire)
        replies = [c.reply() for _ in range(8)]
        assert [r[0] for r in replies] == [250, 250, 250, 250, 250, 250, 250, 221], replies
        q1, q2 = queue_id_of(replies[3][1][0]), queue_id_of(replies[6][1][0])
        assert q1 and q2 and q1 != q2, replies
    got = instance.wait_for_maildir("alice", 2, settle=1.0)
    assert len(got) == 2
    for m, q in ((m1, q1), (m2, q2)):
        [d] = [d for _, d in got if d.endswith(m.replace(b"\r\n", b"\n"))]
        check_delivered(d, m, SENDER, "alice@example.test", q)


@pytest.mark.skipif(shutil.which("swaks") is None, reason="swaks not installed")
def test_swaks_pipelined_delivery(instance):
    r = subprocess.run(["swaks", "--server", "127.0.0.1:%d" % instance.smtp_port, "--pipeline",
                        "--from", SENDER, "--to", "alice@example.test,bob@example.test",
                        "--header", "Subject: swaks-pipelined", "--body", "hello from swaks"],
                       stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60)
    out = r.stdout.decode("utf-8", "replace")
    assert r.returncode == 0, out
    assert "queued as" in out, out
    for user in ("alice", "bob"):
        [(_, data)] = instance.wait_for_maildir(user, 1)
        assert b"Subject: swaks-pipelined\n" in data and b"hello from swaks" in data, data
