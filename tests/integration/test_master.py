"""
master, seen from outside: `posthorn start | status | reload | stop | abort`
and how master runs its workers.  Every test uses a real instance with the
real smtpd; a worker is an "smtpd" process whose parent is master.

  start/status   pid file, queue tree, "posthorn is running (pid N)"
  spawning       one client, then several at once: a worker each
  maxproc        the process limit holds and is logged
  max_idle/use   idle workers and used-up workers go away, service stays
  kill -9        a killed worker is logged, the service is throttled and
                 comes back
  reload         old workers finish their client, new listeners open,
                 removed ones close; a broken configuration is refused
  stop/abort     nothing left running, pid file gone
  refusals       second start, port in use
"""

import os
import re
import signal
import socket
import subprocess
import time

import pytest

from posthorn import RawSMTP, free_port

WAIT = 20


def wait_until(cond, what, timeout=WAIT):
    deadline = time.monotonic() + timeout
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise AssertionError("waited %ss for %s" % (timeout, what))
        time.sleep(0.05)


def ppid_of(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            data = f.read()
    except OSError:
        return None
    return int(data[data.rfind(")") + 2:].split()[1])


def uid_of(pid):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith("Uid:"):
                return int(line.split()[1])
    return None


def workers(inst, command="smtpd"):
    """pids of master's children running `command`."""
    master = inst.master_pid()
    out = []
    for pid, cmd in inst.processes():
        if cmd.split(" ")[0] == command and ppid_of(pid) == master:
            out.append(pid)
    return out


def greeted(port, timeout=10):
    """A connected RawSMTP that got its 220 greeting."""
    c = RawSMTP(port, timeout=timeout)
    c.greeting()
    return c


def port_refuses(port):
    with socket.socket() as s:
        s.settimeout(2)
        return s.connect_ex(("127.0.0.1", port)) != 0


def set_smtpd_line(inst, maxproc="-", extra_lines=""):
    """
    Rewrite master.cf as the instance wrote it, with smtpd's maxproc
    changed and extra service lines added.
    """
    if not hasattr(inst, "original_master_cf"):
        inst.original_master_cf = (inst.etc / "master.cf").read_text()
    text = inst.original_master_cf
    text = re.sub(r"(?m)^(127\.0\.0\.1:%d\s+inet\s+\S+\s+\S+\s+\S+\s+\S+\s+)\S+" % inst.smtp_port,
                  lambda m: m.group(1) + maxproc, text)
    (inst.etc / "master.cf").write_text(text + extra_lines)


def stopped_by_test(inst):
    """The test stopped the instance itself; teardown has nothing to stop."""
    inst.started = False


# ---------------------------------------------------------------- start


def test_start_status_pid_file_and_queue_tree(instance):
    master = instance.master_pid()
    assert master, "no pid in queue/pid/master.pid"
    r = instance.posthorn("status")
    assert r.returncode == 0, r.stdout_text + r.stderr_text
    assert "posthorn is running (pid %d)" % master in r.stdout_text, r.stdout_text
    instance.wait_for_log(r"posthorn/master\[%d\]: daemon started -- version \S+, configuration %s"
                          % (master, re.escape(str(instance.etc))))

    for sub in ("incoming", "active", "deferred", "hold", "corrupt", "defer",
                "tmp", "private", "public", "pid"):
        st = os.lstat(instance.queue / sub)
        want = 0o755 if sub in ("public", "pid") else 0o700
        assert st.st_mode & 0o7777 == want, "%s: mode %o" % (sub, st.st_mode & 0o7777)
        if os.geteuid() == 0:
            owner = 0 if sub == "pid" else instance.uid
            assert st.st_uid == owner, "%s owned by %d, not %d" % (sub, st.st_uid, owner)
    # Unix services listen where master.cf's private column says.
    unix = 0
    for line in (instance.etc / "master.cf").read_text().splitlines():
        f = line.split()
        if len(f) >= 8 and not line.startswith("#") and f[1] == "unix":
            where = "public" if f[2] == "n" else "private"
            assert (instance.queue / where / f[0]).is_socket(), "%s/%s" % (where, f[0])
            unix += 1
    assert unix >= 3
    # qmgr (wakeup set) runs from the start, as a child of master.
    wait_until(lambda: workers(instance, "qmgr"), "qmgr to be started")


def test_workers_are_started_per_client_and_drop_privileges(instance):
    clients = [greeted(instance.smtp_port) for _ in range(3)]
    try:
        pids = wait_until(lambda: (lambda w: w if len(w) >= 3 else None)(workers(instance)),
                          "3 smtpd workers for 3 clients")
        for pid in pids:
            assert uid_of(pid) == instance.uid, "worker %d runs as uid %d" % (pid, uid_of(pid))
        for c in clients:
            c.expect("NOOP", 250)
    finally:
        for c in clients:
            c.close()
    # They stay for the next clients (max_idle is 100s).
    time.sleep(0.3)
    assert len(workers(instance)) >= 3


def test_process_limit_holds_and_is_logged(posthorn_factory):
    inst = posthorn_factory()
    set_smtpd_line(inst, maxproc="2")
    inst.start()
    a, b = greeted(inst.smtp_port), greeted(inst.smtp_port)
    third = RawSMTP(inst.smtp_port, timeout=10)
    try:
        inst.wait_for_log(r"service 127\.0\.0\.1:%d \(smtpd\) has reached its process limit 2"
                          % inst.smtp_port, timeout=WAIT)
        assert len(workers(inst)) == 2, workers(inst)
        third.sock.settimeout(1)
        with pytest.raises(socket.timeout):
            third.sock.recv(1)
        # A worker that is done takes the waiting client.
        a.expect("QUIT", 221)
        a.close()
        third.sock.settimeout(10)
        third.greeting()
        assert len(workers(inst)) == 2
    finally:
        for c in (a, b, third):
            c.close()


# ---------------------------------------------------------------- retiring


@pytest.mark.instance(main_cf={"max_idle": "2s"})
def test_idle_worker_exits_after_max_idle(instance):
    first = wait_until(lambda: workers(instance), "the worker that greeted wait_smtp")
    wait_until(lambda: not set(first) & set(workers(instance)),
               "idle smtpd to exit after max_idle=2s", timeout=10)
    # The service itself is still there.
    with greeted(instance.smtp_port) as c:
        c.expect("QUIT", 221)


@pytest.mark.instance(main_cf={"max_use": "2"})
def test_worker_exits_after_max_use(instance):
    # wait_smtp was client 1 of the only worker; this is client 2.
    [pid] = wait_until(lambda: workers(instance), "one smtpd")
    with greeted(instance.smtp_port) as c:
        c.expect("QUIT", 221)
    wait_until(lambda: pid not in workers(instance), "smtpd %d to exit after max_use=2" % pid,
               timeout=10)
    with greeted(instance.smtp_port) as c:
        c.expect("QUIT", 221)
    assert pid not in workers(instance)


# ---------------------------------------------------------------- crashes


def test_killed_worker_is_logged_and_service_recovers(instance):
    master = instance.master_pid()
    client = greeted(instance.smtp_port)
    victims = wait_until(lambda: workers(instance), "a busy smtpd")
    for pid in victims:
        os.kill(pid, signal.SIGKILL)
    for pid in victims:
        instance.wait_for_log(r"posthorn/master\[%d\]: warning: process \S*/smtpd pid %d killed by signal 9"
                              % (master, pid))
    instance.wait_for_log(r"warning: service 127\.0\.0\.1:%d \(smtpd\): throttling after a crash"
                          % instance.smtp_port)
    assert client.at_eof(), "connection of the killed worker still open"
    client.close()
    # After the back-off (1s) a new worker serves the next client.
    with greeted(instance.smtp_port, timeout=WAIT) as c:
        c.expect("EHLO client.example.org", 250)
        c.expect("QUIT", 221)
    assert not set(victims) & set(workers(instance))
    assert instance.master_pid() == master


def test_killed_qmgr_is_restarted(instance):
    [qmgr] = wait_until(lambda: workers(instance, "qmgr"), "qmgr")
    os.kill(qmgr, signal.SIGKILL)
    instance.wait_for_log(r"warning: process \S*/qmgr pid %d killed by signal 9" % qmgr)
    wait_until(lambda: [p for p in workers(instance, "qmgr") if p != qmgr],
               "a new qmgr after the back-off", timeout=WAIT)


# ---------------------------------------------------------------- reload


def test_reload_finishes_old_workers_and_changes_listeners(posthorn_factory):
    inst = posthorn_factory()
    inst.start()
    extra = free_port()
    old = greeted(inst.smtp_port)
    old.expect("EHLO client.example.org", 250)
    old_workers = wait_until(lambda: workers(inst), "smtpd")

    set_smtpd_line(inst, extra_lines="127.0.0.1:%d inet n - n - - smtpd\n" % extra)
    r = inst.posthorn("reload")
    assert r.returncode == 0, r.stdout_text + r.stderr_text
    inst.wait_for_log(r"posthorn/master\[\d+\]: reload -- version \S+, configuration %s"
                      % re.escape(str(inst.etc)))
    # The new listener serves.
    c = wait_until(lambda: _try_greet(extra), "the new listener on port %d" % extra)
    c.expect("QUIT", 221)
    c.close()
    # The old session goes on until its client is done; then its worker exits.
    code, _ = old.cmd("NOOP")
    assert code in (250, 421), code
    if code == 250:
        old.expect("QUIT", 221)
    old.close()
    wait_until(lambda: not set(old_workers) & set(workers(inst)),
               "old smtpd workers to exit after their client")
    # Workers of the new generation serve the old port too.
    with greeted(inst.smtp_port) as c:
        c.expect("QUIT", 221)

    # Remove the extra service again: its port closes, the main one stays.
    set_smtpd_line(inst)
    r = inst.posthorn("reload")
    assert r.returncode == 0, r.stdout_text + r.stderr_text
    inst.wait_for_log(r"reload -- version", count=2)
    wait_until(lambda: port_refuses(extra), "port %d to close after reload" % extra)
    with greeted(inst.smtp_port) as c:
        c.expect("QUIT", 221)


def _try_greet(port):
    try:
        return greeted(port, timeout=5)
    except (OSError, AssertionError):
        return None


def test_reload_with_broken_configuration_keeps_running(instance):
    master = instance.master_pid()
    good_main = (instance.etc / "main.cf").read_text()
    good_master = (instance.etc / "master.cf").read_text()

    # main.cf: the command refuses before signalling anything.
    (instance.etc / "main.cf").write_text(good_main + "smtpd_bannr = typo\n")
    r = instance.posthorn("reload")
    assert r.returncode != 0
    assert "unknown parameter" in r.stderr_text and "smtpd_bannr" in r.stderr_text, r.stderr_text
    (instance.etc / "main.cf").write_text(good_main)

    # master.cf is master's to check: it logs and keeps what runs.
    (instance.etc / "master.cf").write_text(good_master + "9 inet n - n - - no-such-daemon\n")
    r = instance.posthorn("reload")
    assert r.returncode == 0, r.stderr_text
    instance.wait_for_log(r"error: reload: .*master\.cf:\d+: command \S*no-such-daemon: "
                          r".*keeping the running configuration")
    (instance.etc / "master.cf").write_text(good_master)

    assert instance.master_pid() == master
    with greeted(instance.smtp_port) as c:
        c.expect("QUIT", 221)


# ---------------------------------------------------------------- stop


def test_stop_leaves_no_process_and_no_pid_file(posthorn_factory):
    inst = posthorn_factory()
    inst.start()
    with greeted(inst.smtp_port) as c:
        c.expect("EHLO client.example.org", 250)
        c.expect("QUIT", 221)
    assert inst.processes()
    r = inst.posthorn("stop")
    stopped_by_test(inst)
    assert r.returncode == 0, r.stdout_text + r.stderr_text
    # stop returns once master has released its lock, which it does as it
    # exits, after its workers are gone.
    wait_until(lambda: inst.processes() == [], "no process left after stop", timeout=5)
    assert not (inst.queue / "pid" / "master.pid").exists()
    assert port_refuses(inst.smtp_port)
    assert not (inst.queue / "private" / "cleanup").exists()
    inst.wait_for_log(r"posthorn/master\[\d+\]: terminating on signal 15")
    r = inst.posthorn("status")
    assert r.returncode == 1 and "posthorn is not running" in r.stdout_text, r.stdout_text
    r = inst.posthorn("stop")
    assert r.returncode == 1 and "not running" in r.stderr_text, r.stderr_text


def test_abort_with_a_client_connected(posthorn_factory):
    inst = posthorn_factory()
    inst.start()
    c = greeted(inst.smtp_port)
    c.expect("EHLO client.example.org", 250)
    t = time.monotonic()
    r = inst.posthorn("abort")
    stopped_by_test(inst)
    assert r.returncode == 0, r.stdout_text + r.stderr_text
    assert time.monotonic() - t < 10
    wait_until(lambda: inst.processes() == [], "no process left after abort", timeout=5)
    assert c.at_eof()
    c.close()
    r = inst.posthorn("status")
    assert r.returncode == 1


def test_start_fg_stays_attached_and_stops_on_sigint(posthorn_factory):
    inst = posthorn_factory()
    cmd = [str(inst.bin / "posthorn"), "-c", str(inst.etc), "start-fg"]
    p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    try:
        inst.wait_smtp(timeout=WAIT)
        # exec'd, not forked: the command is master itself.
        assert inst.master_pid() == p.pid
        os.killpg(p.pid, signal.SIGINT)  # what Ctrl-C does
        assert p.wait(timeout=WAIT) == 0
        wait_until(lambda: inst.processes() == [], "no process left after SIGINT", timeout=5)
        inst.wait_for_log(r"terminating on signal 2")
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


# ---------------------------------------------------------------- refusals


def test_second_start_and_second_master_are_refused(instance):
    master = instance.master_pid()
    r = instance.posthorn("start")
    assert r.returncode == 1
    assert "already running (pid %d)" % master in r.stderr_text, r.stderr_text
    # master itself refuses too (the pid file lock), whoever starts it.
    r = subprocess.run([str(instance.bin / "master"), "-c", str(instance.etc)],
                       stdin=subprocess.DEVNULL, capture_output=True, timeout=WAIT)
    assert r.returncode == 1
    assert b"already running" in r.stderr, r.stderr
    assert instance.master_pid() == master
    r = instance.posthorn("status")
    assert r.returncode == 0 and "(pid %d)" % master in r.stdout_text
    with greeted(instance.smtp_port) as c:
        c.expect("QUIT", 221)


def test_start_reports_a_port_in_use(posthorn_factory):
    inst = posthorn_factory()
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", inst.smtp_port))
        s.listen()
        r = inst.posthorn("start")
    assert r.returncode == 1
    assert "127.0.0.1:%d" % inst.smtp_port in r.stderr_text, r.stderr_text
    assert "Address already in use" in r.stderr_text, r.stderr_text
    assert inst.processes() == [], inst.processes()
    assert inst.posthorn("status").returncode == 1


SUBMISSION_PORT = free_port()


@pytest.mark.instance(master_cf_extra="127.0.0.1:%d inet n - n - - smtpd\n"
                      "  -o syslog_name=posthorn/submission\n" % SUBMISSION_PORT)
def test_syslog_name_override_tags_that_service_only(instance):
    """Postfix: -o syslog_name=postfix/submission logs postfix/submission/smtpd."""
    for port in (SUBMISSION_PORT, instance.smtp_port):
        with RawSMTP(port) as c:
            c.greeting()
            c.expect("QUIT", 221)
    wait_until(lambda: "posthorn/submission/smtpd[" in instance.maillog()
               and re.search(r"posthorn/smtpd\[\d+\]: disconnect", instance.maillog()),
               "log lines tagged posthorn/submission/smtpd and posthorn/smtpd")
    sub = [l for l in instance.maillog().splitlines() if "posthorn/submission/smtpd[" in l]
    assert any("connect from" in l for l in sub), sub
