#!/usr/bin/python3
"""posthorn benchmarks, side by side with Debian's Postfix and Dovecot.

Usage: bench/bench.py [--build DIR] [--rounds N] [--quick] [--only NAME,...]
                      [--json FILE] [--clients-seconds S]
                      [--idle-connections N] [--idle-time-limit S]

Every system runs in its own temporary directory on loopback ports with
equivalent durability (queue file fsynced before 250, Maildir file fsynced
before the recipient is marked done).  Workloads run against the systems
alternately (A B A B ...), and the table shows medians and the
posthorn/reference ratio.  CPU is the sum of user+system time of every
process of an instance (cgroup cpuacct when available, /proc otherwise).
The SMTP workloads are here; the POP3 and IMAP ones (against Dovecot) are
in mailbox_bench.py.
"""
import argparse
import json
import os
import pwd
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.dirname(HERE)
CGROOT = "/sys/fs/cgroup/cpuacct"


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=15):
    end = time.time() + timeout
    while time.time() < end:
        try:
            with socket.create_connection(("127.0.0.1", port), 1) as s:
                if s.recv(512).startswith(b"220"):
                    return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError("port %d did not answer 220" % port)


class CpuMeter:
    """CPU seconds used by a set of processes and all their descendants."""

    def __init__(self, name):
        self.cg = None
        path = os.path.join(CGROOT, "bench-%s-%d" % (name, os.getpid()))
        try:
            os.makedirs(path, exist_ok=True)
            with open(os.path.join(path, "cpuacct.usage")):
                pass
            self.cg = path
        except OSError:
            self.cg = None
        self.root_pids = []

    def preexec(self):
        """Runs in the child before exec: join the cgroup."""
        if self.cg:
            try:
                with open(os.path.join(self.cg, "cgroup.procs"), "w") as f:
                    f.write(str(os.getpid()))
            except OSError:
                pass

    def seconds(self):
        if self.cg:
            with open(os.path.join(self.cg, "cpuacct.usage")) as f:
                return int(f.read()) / 1e9
        return self._proc_seconds()

    def _proc_seconds(self):
        # Fallback: utime+stime+cutime+cstime of every live process whose
        # ancestry includes one of root_pids (dead children are counted in
        # their reaping parent's cutime/cstime).
        tick = os.sysconf("SC_CLK_TCK")
        parents, times = {}, {}
        for d in os.listdir("/proc"):
            if not d.isdigit():
                continue
            try:
                with open("/proc/%s/stat" % d) as f:
                    st = f.read()
            except OSError:
                continue
            fields = st[st.rfind(")") + 2:].split()
            parents[int(d)] = int(fields[1])
            times[int(d)] = sum(int(x) for x in fields[11:15])
        total = 0
        for pid, t in times.items():
            p = pid
            while p > 1:
                if p in self.root_pids:
                    total += t
                    break
                p = parents.get(p, 0)
        return total / tick

    def close(self):
        # The instance's last processes may still be exiting after its
        # stop command returned (postfix stop does not wait for them).
        end = time.time() + 15
        while self.cg:
            try:
                os.rmdir(self.cg)
                break
            except OSError:
                if time.time() > end:
                    break
                time.sleep(0.2)


def run_user():
    """Unprivileged account for mailboxes and workers."""
    if os.getuid() == 0:
        pw = pwd.getpwnam("nobody")
        return pw.pw_name, pw.pw_uid, pw.pw_gid
    pw = pwd.getpwuid(os.getuid())
    return pw.pw_name, pw.pw_uid, pw.pw_gid


class System:
    name = "?"

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="bench-%s-" % self.name)
        os.chmod(self.dir, 0o755)  # unprivileged workers must traverse it
        self.port = free_port()
        self.cpu = CpuMeter(self.name)
        self.maildir = os.path.join(self.dir, "mail", "example.test", "user")

    def delivered(self):
        try:
            return len(os.listdir(os.path.join(self.maildir, "new")))
        except FileNotFoundError:
            return 0

    def clear_mailbox(self):
        """Empty new/ between runs without deleting anything yet.

        Deleting thousands of files right before a run would make the
        next run pay for them: ext4 skips recently freed inodes when it
        allocates new ones (for a minute or more), which slows every file
        creation of whichever system runs next.  The old new/ is moved
        aside (same file system, same owner) and removed in destroy()."""
        new = os.path.join(self.maildir, "new")
        if os.path.isdir(new) and os.listdir(new):
            st = os.stat(new)
            self.trash_count = getattr(self, "trash_count", 0) + 1
            trash = os.path.join(self.dir, "trash")
            os.makedirs(trash, exist_ok=True)
            os.rename(new, os.path.join(trash, "new.%d" % self.trash_count))
            os.mkdir(new, 0o700)
            os.chown(new, st.st_uid, st.st_gid)
            os.chmod(new, st.st_mode & 0o7777)

    def wait_delivered(self, count, timeout):
        end = time.time() + timeout
        while time.time() < end:
            if self.delivered() >= count:
                return True
            time.sleep(0.02)
        return False

    def destroy(self):
        self.cpu.close()
        shutil.rmtree(self.dir, ignore_errors=True)


class Posthorn(System):
    name = "posthorn"

    def __init__(self, build):
        super().__init__()
        self.build = build
        user, uid, gid = run_user()
        etc = os.path.join(self.dir, "etc")
        for d in ("etc", "queue", "mail", "log"):
            os.makedirs(os.path.join(self.dir, d))
        with open(os.path.join(etc, "vmailbox"), "w") as f:
            f.write("user@example.test example.test/user/\n")
        extra = ""
        if os.getuid() == 0:
            extra = "virtual_uid_maps = static:%d\nvirtual_gid_maps = static:%d\n" % (uid, gid)
            for d in ("queue", "mail"):
                os.chown(os.path.join(self.dir, d), uid, gid)
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write(f"""myhostname = mx.example.test
mydomain = example.test
mydestination = localhost
mynetworks = 127.0.0.0/8
inet_interfaces = 127.0.0.1
mail_owner = {user}
queue_directory = {self.dir}/queue
daemon_directory = {build}/bin
maillog_file = {self.dir}/log/maillog
virtual_mailbox_domains = example.test
virtual_mailbox_base = {self.dir}/mail
virtual_mailbox_maps = texthash:{etc}/vmailbox
{extra}""")
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write(f"""127.0.0.1:{self.port} inet n - n - - smtpd
cleanup unix n - n - 0 cleanup
qmgr unix n - n 300 1 qmgr
local unix - n n - - local
""")
        self.etc = etc

    def start(self):
        subprocess.run([os.path.join(self.build, "bin", "posthorn"), "-c",
                        self.etc, "start"], check=True,
                       preexec_fn=self.cpu.preexec)
        with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
            self.cpu.root_pids = [int(f.read().split()[0])]
        wait_port(self.port)

    def stop(self):
        subprocess.run([os.path.join(self.build, "bin", "posthorn"), "-c",
                        self.etc, "stop"], check=False)


class Postfix(System):
    name = "postfix"
    MASTER_CF = """{port} inet n - n - - smtpd
pickup    unix  n - n 60 1 pickup
cleanup   unix  n - n - 0 cleanup
qmgr      unix  n - n 300 1 qmgr
rewrite   unix  - - n - - trivial-rewrite
bounce    unix  - - n - 0 bounce
defer     unix  - - n - 0 bounce
trace     unix  - - n - 0 bounce
verify    unix  - - n - 1 verify
flush     unix  n - n 1000? 0 flush
proxymap  unix  - - n - - proxymap
smtp      unix  - - n - - smtp
relay     unix  - - n - - smtp
showq     unix  n - n - - showq
error     unix  - - n - - error
retry     unix  - - n - - error
discard   unix  - - n - - discard
local     unix  - n n - - local
virtual   unix  - n n - - virtual
anvil     unix  - - n - 1 anvil
scache    unix  - - n - 1 scache
postlog   unix-dgram n - n - 1 postlogd
"""

    def __init__(self):
        super().__init__()
        user, uid, gid = run_user()
        etc = os.path.join(self.dir, "etc")
        for d in ("etc", "queue", "data", "mail"):
            os.makedirs(os.path.join(self.dir, d))
        shutil.chown(os.path.join(self.dir, "data"), "postfix")
        os.chown(os.path.join(self.dir, "mail"), uid, gid)
        with open(os.path.join(etc, "vmailbox"), "w") as f:
            f.write("user@example.test example.test/user/\n")
        with open(os.path.join(etc, "main.cf"), "w") as f:
            f.write(f"""compatibility_level = 3.6
queue_directory = {self.dir}/queue
data_directory = {self.dir}/data
mail_owner = postfix
myhostname = mx.example.test
mydestination = localhost
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
mynetworks = 127.0.0.0/8
virtual_mailbox_domains = example.test
virtual_mailbox_base = {self.dir}/mail
virtual_mailbox_maps = texthash:{etc}/vmailbox
virtual_uid_maps = static:{uid}
virtual_gid_maps = static:{gid}
maillog_file = {self.dir}/maillog
maillog_file_prefixes = {self.dir}
alias_maps =
alias_database =
smtpd_banner = $myhostname ESMTP
""")
        with open(os.path.join(etc, "master.cf"), "w") as f:
            f.write(self.MASTER_CF.format(port="127.0.0.1:%d" % self.port))
        self.etc = etc
        # postfix -c DIR requires DIR in the default instance's
        # alternate_config_directories.
        cur = subprocess.run(["postconf", "-h", "alternate_config_directories"],
                             capture_output=True, text=True).stdout.strip()
        if etc not in cur:
            subprocess.run(["postconf", "-e", "alternate_config_directories=%s %s"
                            % (cur, etc)], check=True)

    def start(self):
        subprocess.run(["postfix", "-c", self.etc, "start"], check=True,
                       preexec_fn=self.cpu.preexec)
        with open(os.path.join(self.dir, "queue", "pid", "master.pid")) as f:
            self.cpu.root_pids = [int(f.read().split()[0])]
        wait_port(self.port)

    def stop(self):
        subprocess.run(["postfix", "-c", self.etc, "stop"], check=False,
                       stdout=subprocess.DEVNULL)


def smtp_source(port, sessions, messages, size, reuse=False):
    cmd = ["smtp-source", "-s", str(sessions), "-m", str(messages), "-l",
           str(size), "-f", "bench@example.org", "-t", "user@example.test"]
    if reuse:
        cmd.append("-d")
    cmd.append("127.0.0.1:%d" % port)
    t0 = time.time()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    return time.time() - t0


def workload_ingress(sysobj, n, size=4096, sessions=20, reuse=False):
    """Messages/s until smtp-source has its last 250."""
    sysobj.clear_mailbox()
    base = sysobj.delivered()
    c0 = sysobj.cpu.seconds()
    elapsed = smtp_source(sysobj.port, sessions, n, size, reuse)
    sysobj.wait_delivered(base + n, timeout=max(120, n / 20))
    c1 = sysobj.cpu.seconds()
    return {"rate": n / elapsed, "cpu_ms_per_msg": (c1 - c0) * 1000 / n}


def workload_e2e(sysobj, n, size=4096, sessions=20):
    """Messages/s until the last message is in the Maildir."""
    sysobj.clear_mailbox()
    c0 = sysobj.cpu.seconds()
    t0 = time.time()
    smtp_source(sysobj.port, sessions, n, size)
    if not sysobj.wait_delivered(n, timeout=max(120, n / 20)):
        raise RuntimeError("%s: only %d of %d delivered" %
                           (sysobj.name, sysobj.delivered(), n))
    elapsed = time.time() - t0
    c1 = sysobj.cpu.seconds()
    return {"rate": n / elapsed, "cpu_ms_per_msg": (c1 - c0) * 1000 / n}


def fsync_ceiling(directory, seconds=2.0, threads=1):
    """fsync'd 4 KiB file creations per second (file + directory fsync)."""
    data = b"x" * 4096
    counts = [0] * threads
    stop = time.time() + seconds

    def worker(k):
        d = tempfile.mkdtemp(prefix="t%d-" % k, dir=directory)
        dfd = os.open(d, os.O_RDONLY | os.O_DIRECTORY)
        i = 0
        while time.time() < stop:
            p = os.path.join(d, "f%d" % i)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, data)
            os.fsync(fd)
            os.close(fd)
            os.fsync(dfd)
            i += 1
        os.close(dfd)
        counts[k] = i

    ts = [threading.Thread(target=worker, args=(k,)) for k in range(threads)]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    return sum(counts) / seconds


WORKLOADS = {
    # name: (function, kwargs, metric)
    "smtp_ingress": (workload_ingress, {"size": 4096, "sessions": 20}),
    "smtp_e2e": (workload_e2e, {"size": 4096, "sessions": 20}),
    "smtp_100k_one_session": (workload_ingress,
                              {"size": 100 * 1024, "sessions": 1,
                               "reuse": True}),
}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--build", default=os.path.join(TOP, "build"))
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--quick", action="store_true",
                    help="2,000 messages, 1 round: a smoke run")
    ap.add_argument("--only", default="")
    ap.add_argument("--json", default=os.path.join(TOP, "build",
                                                   "bench-results.json"))
    ap.add_argument("--mailbox-messages", type=int, default=1000,
                    help="messages in the POP3/IMAP mailbox")
    ap.add_argument("--clients-seconds", type=float,
                    help="length of one imap_clients run (20; --quick: 5)")
    ap.add_argument("--idle-connections", type=int,
                    help="connections imap_idle_10k tries to open "
                    "(10,000; --quick: 1,000)")
    ap.add_argument("--idle-time-limit", type=float, default=1200,
                    help="seconds imap_idle_10k may take to open them")
    args = ap.parse_args()
    if args.quick:
        args.messages, args.rounds = 2000, 1
    if args.clients_seconds is None:
        args.clients_seconds = 5 if args.quick else 20
    if args.idle_connections is None:
        args.idle_connections = 1000 if args.quick else 10000
    # mailbox_bench imports this module by name; let it find this copy.
    sys.modules.setdefault("bench", sys.modules[__name__])
    import mailbox_bench
    only = [w for w in args.only.split(",") if w]
    unknown = [w for w in only if w not in WORKLOADS and
               w not in mailbox_bench.WORKLOAD_NAMES]
    if unknown:
        ap.error("unknown workload(s) %s; known: %s" % (
            ",".join(unknown),
            ",".join(list(WORKLOADS) + list(mailbox_bench.WORKLOAD_NAMES))))
    names = [w for w in WORKLOADS if not only or w in only]
    mbx_names = [w for w in mailbox_bench.WORKLOAD_NAMES
                 if not only or w in only]

    tmp = tempfile.mkdtemp(prefix="bench-fsync-")
    ceiling = {"fsync_creates_per_s_1": fsync_ceiling(tmp, threads=1),
               "fsync_creates_per_s_4": fsync_ceiling(tmp, threads=4)}
    shutil.rmtree(tmp, ignore_errors=True)

    systems = [Posthorn(os.path.abspath(args.build)), Postfix()] if names else []
    results = {w: {s.name: [] for s in systems} for w in names}
    try:
        for s in systems:
            s.start()
        for w in names:
            fn, kw = WORKLOADS[w]
            n = args.messages if "100k" not in w else max(200, args.messages // 20)
            for r in range(args.rounds):
                order = systems if r % 2 == 0 else systems[::-1]
                for s in order:
                    res = fn(s, n, **kw)
                    results[w][s.name].append(res)
                    print("%-24s %-9s round %d: %8.1f msg/s  %6.2f ms CPU/msg"
                          % (w, s.name, r + 1, res["rate"],
                             res["cpu_ms_per_msg"]), file=sys.stderr)
    finally:
        for s in systems:
            s.stop()
            s.destroy()

    mbx_rows, mbx_info = [], None
    if mbx_names:
        mbx_rows, mbx_raw, mbx_info = mailbox_bench.run(
            mbx_names, args, os.path.abspath(args.build))
        results.update(mbx_raw)

    table = []
    print()
    print("fsync'd 4 KiB creates/s: %.0f (1 thread), %.0f (4 threads)"
          % (ceiling["fsync_creates_per_s_1"], ceiling["fsync_creates_per_s_4"]))
    if names:
        print("%-24s %12s %12s %7s %14s %14s %7s" % (
            "workload", "posthorn/s", "postfix/s", "ratio", "ph CPU ms/msg",
            "pf CPU ms/msg", "ratio"))
    for w in names:
        med = {}
        for s in ("posthorn", "postfix"):
            runs = results[w][s]
            med[s] = {k: statistics.median(r[k] for r in runs)
                      for k in ("rate", "cpu_ms_per_msg")}
        row = {"workload": w, "reference": "postfix",
               "posthorn": med["posthorn"], "postfix": med["postfix"],
               "rate_ratio": med["posthorn"]["rate"] / med["postfix"]["rate"],
               "cpu_ratio": (med["posthorn"]["cpu_ms_per_msg"] /
                             max(med["postfix"]["cpu_ms_per_msg"], 1e-9))}
        table.append(row)
        print("%-24s %12.1f %12.1f %6.2fx %14.2f %14.2f %6.2fx" % (
            w, med["posthorn"]["rate"], med["postfix"]["rate"],
            row["rate_ratio"], med["posthorn"]["cpu_ms_per_msg"],
            med["postfix"]["cpu_ms_per_msg"], row["cpu_ratio"]))
    if mbx_rows:
        mailbox_bench.print_table(mbx_rows, mbx_info)
    out = {"time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
           "machine": {"cpus": os.cpu_count(), **ceiling},
           "messages": args.messages, "rounds": args.rounds,
           "mailbox": mbx_info,
           "results": table + mbx_rows, "raw": results}
    os.makedirs(os.path.dirname(args.json), exist_ok=True)
    with open(args.json, "w") as f:
        json.dump(out, f, indent=2)
    print("\nresults written to %s" % args.json)


if __name__ == "__main__":
    main()
