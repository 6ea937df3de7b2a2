"""
Local submission: the `sendmail` command writes maildrop/, `pickup` hands
the file to cleanup, and the message is delivered like SMTP mail (cleanup
adds From:, Date:, Message-ID:, and the Received: line).  Also -bs (SMTP
on a pipe), mailq, mail submitted while the system is down, an ordinary
user's submission, and hostile files in maildrop/ (they go to corrupt/
and pickup keeps working).
"""

import email.utils
import os
import pwd
import re
import stat
import subprocess
import time

import pytest

from posthorn import DEFAULT_TIMEOUT, HOSTNAME, USERS, check_delivered, header_fields, make_message, split_message
from qfile_writer import build_queue_file

EX_USAGE, EX_NOUSER, EX_TEMPFAIL = 64, 67, 75


def sendmail_path(inst):
    return str(inst.bin / "sendmail")


def run_sendmail(inst, args, data=b"", user=None, timeout=DEFAULT_TIMEOUT):
    """Run sendmail -C ETC args with data on stdin; (returncode, stdout, stderr)."""
    cmd = [sendmail_path(inst), "-C", str(inst.etc)] + list(args)
    preexec = None
    if user is not None:
        pw = pwd.getpwnam(user)

        def preexec():
            os.setgroups([])
            os.setgid(pw.pw_gid)
            os.setuid(pw.pw_uid)
    p = subprocess.run(cmd, input=data, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout,
                       preexec_fn=preexec)
    return p.returncode, p.stdout.decode("utf-8", "replace"), p.stderr.decode("utf-8", "replace")


def drop_file(inst, name, data, uid=None):
    """Put a file into maildrop/ the way sendmail does: write, then rename."""
    md = inst.queue / "maildrop"
    tmp = md / (".t-" + name)
    tmp.write_bytes(data)
    os.chmod(tmp, 0o644)
    if uid is not None:
        os.chown(tmp, uid, uid)
    os.rename(tmp, md / name)


def login_sender():
    return "%s@%s" % (pwd.getpwuid(os.getuid()).pw_name, HOSTNAME)


def headers_of(data):
    return header_fields(split_message(data)[0])


def values(fields, name):
    return [raw.split(b":", 1)[1].strip().decode("utf-8", "replace") for n, raw in fields if n == name]


def maildrop_files(inst):
    d = inst.queue / "maildrop"
    return sorted(n for n in os.listdir(d) if not n.startswith("."))


def corrupt_files(inst):
    return sorted(os.listdir(inst.queue / "corrupt"))


def wait_for(pred, what, timeout=DEFAULT_TIMEOUT):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError("no %s within %ss" % (what, timeout))
        time.sleep(0.1)


def test_sendmail_t_from_a_shell_script(instance):
    """A cron-style script: printf ... | sendmail -t.  Bcc: is removed."""
    script = ("printf 'To: Alice <alice@example.test>\\nBcc: bob@example.test\\nSubject: nightly report\\n\\n"
              "all is well\\n' | %s -C %s -t" % (sendmail_path(instance), instance.etc))
    t0 = time.time()
    r = subprocess.run(["sh", "-c", script], stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=DEFAULT_TIMEOUT)
    assert r.returncode == 0, "sendmail -t: exit %d, stderr %r" % (r.returncode, r.stderr)
    sender = login_sender()
    for user in ("alice", "bob"):
        [(path, data)] = instance.wait_for_maildir(user, 1)
        fields = headers_of(data)
        names = [n for n, _ in fields]
        assert "bcc" not in names, "%s: Bcc: header delivered: %r" % (user, data[:500])
        assert values(fields, "to") == ["Alice <alice@example.test>"], fields
        assert values(fields, "subject") == ["nightly report"], fields
        assert split_message(data)[1] == b"all is well\n", data
        # What cleanup adds to a local submission.
        assert values(fields, "from") == [sender], "%s: From: %r" % (user, values(fields, "from"))
        [date] = values(fields, "date")
        when = email.utils.parsedate_to_datetime(date)
        assert abs(when.timestamp() - t0) < 300, date
        [mid] = values(fields, "message-id")
        assert re.match(r"^<\d{14}\.[0-9A-Za-z]+@%s>$" % re.escape(HOSTNAME), mid), mid
        assert values(fields, "return-path") == ["<%s>" % sender], fields
        [received] = values(fields, "received")
        assert received.startswith("by %s (posthorn)" % HOSTNAME), received
    # Postfix's pickup line, with the submitting user's uid.
    [line] = instance.wait_for_log(r"posthorn/pickup\[\d+\]: [0-9A-Za-z]+: uid=%d from=<%s>" % (
        os.getuid(), re.escape(sender)))
    qid = re.search(r": ([0-9A-Za-z]+): uid=", line).group(1)
    instance.wait_for_log(r"%s: removed" % qid)
    assert maildrop_files(instance) == []
    instance.wait_queue_empty()


def test_sendmail_recipients_on_the_command_line_with_f(instance):
    sent = make_message("cmdline-recipients", sender="boss@example.org", to="alice@example.test")
    rc, out, err = run_sendmail(instance, ["-f", "boss@example.org", "alice@example.test", "Bob <bob>"], sent)
    assert rc == 0, (rc, err)
    # The message had From:, Date: and Message-ID:: nothing but trace
    # headers is added, the content is what was sent (CRLF -> LF).
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    check_delivered(data, sent, "boss@example.org", "alice@example.test")
    # "bob" is qualified with @$myorigin ($myhostname): not a mailbox here.
    instance.wait_for_log(r"to=<bob@%s>" % re.escape(HOSTNAME))
    assert instance.messages("bob") == []


def test_sendmail_full_name_and_null_sender(instance):
    body = b"Subject: with full name\n\nhi\n"
    rc, _, err = run_sendmail(instance, ["-F", 'Jo "Q" Public', "-f", "jo@example.org", "alice@example.test"], body)
    assert rc == 0, err
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    assert values(headers_of(data), "from") == ['"Jo \\"Q\\" Public" <jo@example.org>'], data[:400]
    rc, _, err = run_sendmail(instance, ["-f", "<>", "bob@example.test"], b"Subject: null sender\n\nx\n")
    assert rc == 0, err
    [(_, data)] = instance.wait_for_maildir("bob", 1)
    assert data.startswith(b"Return-Path: <>\n"), data[:200]


def test_lone_dot_ends_input_unless_i(instance):
    rc, _, err = run_sendmail(instance, ["alice@example.test"], b"Subject: dot\n\nbefore\n.\nafter\n")
    assert rc == 0, err
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    assert split_message(data)[1] == b"before\n", data
    for flag in ("-i", "-oi"):
        rc, _, err = run_sendmail(instance, [flag, "bob@example.test"], b"Subject: dot %s\n\nbefore\n.\nafter\n" % flag.encode())
        assert rc == 0, err
    msgs = instance.wait_for_maildir("bob", 2)
    assert sorted(split_message(d)[1] for _, d in msgs) == [b"before\n.\nafter\n"] * 2


def test_sendmail_errors_have_sendmail_exit_codes(instance):
    rc, _, err = run_sendmail(instance, [], b"Subject: nobody\n\nx\n")
    assert rc == EX_USAGE and "no recipients" in err, (rc, err)
    rc, _, err = run_sendmail(instance, ["-t"], b"Subject: nobody\n\nx\n")
    assert rc == EX_USAGE and "no recipient addresses found" in err, (rc, err)
    rc, _, err = run_sendmail(instance, ["a@@b"], b"x\n")
    assert rc == EX_NOUSER, (rc, err)
    rc, _, err = run_sendmail(instance, ["-bv", "a@b.test"], b"")
    assert rc == EX_USAGE, (rc, err)
    # Nothing half-written was left behind.
    assert maildrop_files(instance) == [] and not [
        n for n in os.listdir(instance.queue / "maildrop") if n.startswith(".")]


@pytest.mark.instance(main_cf={"message_size_limit": "2000"})
def test_too_big_fails_at_once(instance):
    rc, _, err = run_sendmail(instance, ["alice@example.test"], b"Subject: big\n\n" + b"x" * 3000 + b"\n")
    assert rc == 65 and "too big" in err, (rc, err)
    assert os.listdir(instance.queue / "maildrop") == []
    # A file put there directly: cleanup refuses it for good (5.3.4), and
    # pickup keeps it in corrupt/ rather than retrying it for ever.
    data, _ = build_queue_file("big@example.org", ["alice@example.test"], b"Subject: big\n\n" + b"y" * 3000 + b"\n")
    drop_file(instance, "toobig", bytes(data))
    wait_for(lambda: corrupt_files(instance), "file in corrupt/")
    instance.wait_for_log(r"pickup\[\d+\]: warning: maildrop/toobig: uid=\d+: from=<big@example.org>: "
                          r"rejected by cleanup: 5\.3\.4 .*moved to corrupt/M[0-9A-F]+$")
    assert maildrop_files(instance) == [] and instance.messages("alice") == []


def test_sendmail_bs_smtp_on_a_pipe(instance):
    p = subprocess.Popen([sendmail_path(instance), "-C", str(instance.etc), "-bs"], stdin=subprocess.PIPE,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    out = p.stdout

    def reply():
        lines = []
        while True:
            line = out.readline().decode()
            assert line, "sendmail -bs closed the pipe after %r" % lines
            lines.append(line.rstrip("\r\n"))
            if line[3:4] != "-":
                return int(line[:3]), lines

    def cmd(line, want):
        p.stdin.write(line.encode() + b"\r\n")
        p.stdin.flush()
        code, lines = reply()
        assert code == want, "%s: expected %d, got %r" % (line, want, lines)
        return lines

    try:
        code, lines = reply()
        assert code == 220 and HOSTNAME in lines[0], lines
        ehlo = cmd("EHLO client", 250)
        assert "250-PIPELINING" in ehlo and any(l.startswith("250-SIZE") for l in ehlo), ehlo
        cmd("MAIL FROM:<writer@example.org>", 250)
        cmd("RCPT TO:<alice@example.test>", 250)
        cmd("RCPT TO:<no address>", 501)
        cmd("DATA", 354)
        p.stdin.write(b"Subject: via -bs\r\n\r\n..starts with a dot\r\nend\r\n.\r\n")
        p.stdin.flush()
        code, lines = reply()
        assert code == 250 and "queued" in lines[0], lines
        cmd("RSET", 250)
        cmd("DATA", 503)
        cmd("NOOP", 250)
        cmd("QUIT", 221)
        assert p.wait(timeout=10) == 0
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    assert split_message(data)[1] == b".starts with a dot\nend\n", data
    assert data.startswith(b"Return-Path: <writer@example.org>\n"), data[:200]


@pytest.mark.instance(main_cf={"minimal_backoff_time": "3600s", "maximal_backoff_time": "7200s",
                               "queue_run_delay": "3600s"},
                      users=dict(USERS, **{"blocked@example.test": "example.test/blocked/"}))
def test_mailq_is_queue_p(instance):
    domain_dir = instance.mail / "example.test"
    domain_dir.mkdir(exist_ok=True)
    (domain_dir / "blocked").write_text("not a directory\n")
    rc, _, err = run_sendmail(instance, ["blocked@example.test"], b"Subject: waits\n\nx\n")
    assert rc == 0, err
    wait_for(lambda: [e for e in instance.queue_json() if e["queue_name"] == "deferred"], "deferred message")
    want = instance.posthorn("queue", "-p", check=True).stdout_text
    assert "blocked@example.test" in want, want
    mailq = instance.dir / "mailq"
    os.symlink(sendmail_path(instance), mailq)
    for cmd in ([str(mailq), "-C", str(instance.etc)], [sendmail_path(instance), "-C", str(instance.etc), "-bp"]):
        r = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=DEFAULT_TIMEOUT)
        assert r.returncode == 0, r
        assert r.stdout.decode() == want, "%s printed %r, queue -p %r" % (cmd[0], r.stdout, want)


def test_mail_submitted_while_the_system_is_down_goes_at_start(posthorn_factory):
    inst = posthorn_factory()
    # Before the first start there is no queue: sendmail says "try again".
    rc, _, err = run_sendmail(inst, ["alice@example.test"], b"Subject: too early\n\nx\n")
    assert rc == EX_TEMPFAIL, (rc, err)
    inst.start()
    mode = stat.S_IMODE(os.stat(inst.queue / "maildrop").st_mode)
    assert mode == 0o1733, "maildrop/ mode %o" % mode
    inst.stop()
    rc, _, err = run_sendmail(inst, ["alice@example.test"], b"Subject: while down\n\nx\n")
    assert rc == 0, err
    assert len(maildrop_files(inst)) == 1
    inst.start()
    [(_, data)] = inst.wait_for_maildir("alice", 1)
    assert b"Subject: while down\n" in data
    wait_for(lambda: maildrop_files(inst) == [], "empty maildrop")


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to run sendmail as another user")
def test_ordinary_user_submits_through_world_writable_maildrop(instance):
    user = "daemon"
    pw = pwd.getpwnam(user)
    rc, _, err = run_sendmail(instance, ["alice@example.test"], b"Subject: from a user\n\nx\n", user=user)
    assert rc == 0, err
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    assert data.startswith(b"Return-Path: <daemon@%s>\n" % HOSTNAME.encode()), data[:200]
    instance.wait_for_log(r"pickup\[\d+\]: [0-9A-Za-z]+: uid=%d from=<daemon@" % pw.pw_uid)


def _good_file(sender="someone@example.org", rcpt="alice@example.test", subject="hostile test"):
    data, _ = build_queue_file(sender, [rcpt], b"Subject: %s\n\nhi\n" % subject.encode())
    return bytes(data)


def test_hostile_maildrop_files_go_to_corrupt_and_pickup_goes_on(instance):
    md = instance.queue / "maildrop"
    good = _good_file()
    bad = {
        "garbage": os.urandom(3000),
        "truncated": good[: len(good) - 5],
        "attribute": bytes(build_queue_file("a@example.org", ["alice@example.test"], b"x\n",
                                            attrs={"client_addr": "10.0.0.1"})[0]),
        "done": bytes(build_queue_file("a@example.org", [{"addr": "alice@example.test", "done": True}],
                                       b"x\n")[0]),
        "badrcpt": bytes(build_queue_file("a@example.org", ["not an address"], b"x\n")[0]),
        "badsender": bytes(build_queue_file("a b@example.org", ["alice@example.test"], b"x\n")[0]),
        "manyrcpts": bytes(build_queue_file("a@example.org", ["r%d@example.test" % i for i in range(2001)],
                                            b"x\n")[0]),
    }
    for name, data in bad.items():
        drop_file(instance, name, data)
    os.symlink("/etc/passwd", md / "symlink")
    os.mkfifo(md / "fifo")
    drop_file(instance, "bad name!", good)
    # A good file, but with a second name (a user linking someone's file).
    (md / ".linked").write_bytes(good)
    os.link(md / ".linked", md / "hardlink")
    wanted = len(bad) + 4  # symlink, fifo, bad name, hardlink
    wait_for(lambda: len(corrupt_files(instance)) >= wanted, "%d files in corrupt/" % wanted)
    time.sleep(0.5)
    assert maildrop_files(instance) == [], maildrop_files(instance)
    assert len(instance.grep_log(r"pickup\[\d+\]: warning: maildrop/.*moved to corrupt/")) >= wanted
    for name, why in (("manyrcpts", "too many recipients"), ("attribute", "attribute record"),
                      ("symlink", "open: "), ("fifo", "not a regular file"), ("hardlink", "several links"),
                      ("badrcpt", "bad recipient address"), ("garbage", "record grammar")):
        assert instance.grep_log(r"maildrop/%s: uid=\d+: .*%s.*moved to corrupt/" % (name, re.escape(why))), name
    assert instance.messages("alice") == [], "a hostile file was delivered"
    # pickup is still there and still works.
    drop_file(instance, "afterwards", _good_file(subject="after the garbage"))
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    assert b"Subject: after the garbage\n" in data
    rc, _, err = run_sendmail(instance, ["bob@example.test"], b"Subject: still fine\n\nx\n")
    assert rc == 0, err
    instance.wait_for_maildir("bob", 1)


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to create a file for an unknown uid")
def test_file_of_unknown_uid_is_accepted_and_logged(instance):
    drop_file(instance, "unknownuid", _good_file(subject="unknown uid"), uid=54321)
    [(_, data)] = instance.wait_for_maildir("alice", 1)
    assert b"Subject: unknown uid\n" in data
    instance.wait_for_log(r"pickup\[\d+\]: [0-9A-Za-z]+: uid=54321 from=<someone@example.org>")
