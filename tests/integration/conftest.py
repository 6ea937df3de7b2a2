"""
Fixtures of the integration suite: a fresh posthorn instance per test.

  instance          started instance, client 127.0.0.1 inside mynetworks
  outside_instance  started instance with mynetworks = 10.9.9.0/24, so the
                    test client (127.0.0.1) is NOT in mynetworks
  posthorn_factory  make(**kwargs) -> Instance (not started), for tests that
                    need their own configuration or start it themselves

A test changes its instance's configuration with a marker, e.g.

  @pytest.mark.instance(main_cf={"smtpd_recipient_limit": "5"})

whose keyword arguments go to posthorn.Instance (main_cf, mynetworks,
users, aliases, master_cf_extra).

Teardown runs `posthorn stop` and then requires every process of the
instance to be gone: a straggler is killed with SIGKILL and the test FAILS.
Sanitizer reports written by the daemons (ASAN_OPTIONS/UBSAN_OPTIONS
log_path under DIR/log) fail the test too.  When a test fails, its maillog
is attached to the report and the instance directory is kept.
"""

import os

import pytest

import posthorn


def pytest_configure(config):
    config.addinivalue_line(
        "markers", "instance(**kwargs): configuration of the test's posthorn instance (see conftest.py)")


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    outcome = yield
    rep = outcome.get_result()
    instances = getattr(item, "_posthorn_instances", [])
    if rep.failed:
        item._posthorn_failed = True
        for inst in instances:
            rep.sections.append(("posthorn maillog %s" % inst.dir, inst.maillog() or "(empty)"))
            rep.sections.append(("posthorn queue %s" % inst.dir, inst.queue_dump()))


def _sanitizer_reports(inst):
    out = []
    try:
        names = sorted(os.listdir(inst.logdir))
    except OSError:
        return out
    for n in names:
        if n.startswith("asan") or n.startswith("ubsan"):
            p = inst.logdir / n
            try:
                text = p.read_text(encoding="utf-8", errors="replace")
            except OSError:
                continue
            if text.strip():
                out.append("%s:\n%s" % (p, text))
    return out


@pytest.fixture
def posthorn_factory(request):
    made = []
    request.node._posthorn_instances = made

    # Sanitizer reports go to files we can check (daemons lose stderr).
    saved = {k: os.environ.get(k) for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS")}

    def make(**kwargs):
        inst = posthorn.Instance(**kwargs)
        made.append(inst)
        log = inst.logdir
        os.environ["ASAN_OPTIONS"] = os.environ.get(
            "POSTHORN_IT_ASAN_OPTIONS", "abort_on_error=0:log_path=%s/asan" % log)
        os.environ["UBSAN_OPTIONS"] = "print_stacktrace=1:log_path=%s/ubsan" % log
        return inst

    yield make

    for k, v in saved.items():
        if v is None:
            os.environ.pop(k, None)
        else:
            os.environ[k] = v
    problems = []
    for inst in made:
        try:
            result, stragglers = inst.stop()
        except AssertionError as e:
            problems.append("%s: posthorn stop: %s" % (inst.dir, e))
            stragglers = [(pid, cmd) for pid, cmd in inst.processes()]
            inst.kill_all()
            result = None
        if result is not None and result.returncode != 0:
            problems.append("%s: posthorn stop exited %d: %s%s" % (
                inst.dir, result.returncode, result.stdout_text, result.stderr_text))
        if stragglers:
            problems.append("%s: processes left after posthorn stop (killed): %s" % (
                inst.dir, "; ".join("%d %s" % p for p in stragglers)))
        problems += _sanitizer_reports(inst)
    failed = getattr(request.node, "_posthorn_failed", False) or problems
    for inst in made:
        if failed or os.environ.get("POSTHORN_IT_KEEP"):
            print("kept instance directory %s" % inst.dir)
        else:
            inst.remove()
    if problems:
        logs = "\n".join("---- maillog %s\n%s" % (i.dir, i.maillog()) for i in made)
        pytest.fail("\n".join(problems) + "\n" + logs, pytrace=False)


def _marker_kwargs(request):
    m = request.node.get_closest_marker("instance")
    return dict(m.kwargs) if m else {}


@pytest.fixture
def instance(posthorn_factory, request):
    inst = posthorn_factory(**_marker_kwargs(request))
    inst.start()
    return inst


@pytest.fixture
def outside_instance(posthorn_factory, request):
    kwargs = _marker_kwargs(request)
    kwargs["mynetworks"] = "10.9.9.0/24"
    inst = posthorn_factory(**kwargs)
    inst.start()
    return inst
