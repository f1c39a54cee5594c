"""The demo's supervisor: children in their own process groups, SIGTERM then SIGKILL,
nothing left behind, even when a child ignores SIGTERM or the demo itself is killed."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from demo.procs import ChildFailed, Supervisor
from tests.harness import eventually

ROOT = Path(__file__).resolve().parents[2]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is dead for our purposes.
    try:
        return Path("/proc/%d/stat" % pid).read_text().split(") ")[1][0] != "Z"
    except (OSError, IndexError):
        return False


def _wait_file(path: Path, timeout: float = 10) -> str:
    return eventually(lambda: path.exists() and path.read_text().strip(), timeout, "%s written" % path)


STUBBORN = textwrap.dedent("""
    import os, signal, subprocess, sys, time
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    child = subprocess.Popen([sys.executable, "-c", "import signal, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); time.sleep(600)"])
    open(sys.argv[1], "w").write("%d %d" % (os.getpid(), child.pid))
    time.sleep(600)
""")


def test_stop_kills_a_stubborn_child_and_its_grandchild(tmp_path):
    sup = Supervisor(tmp_path, ROOT)
    pids = tmp_path / "pids"
    child = sup.start("stubborn", [sys.executable, "-c", STUBBORN, str(pids)], dict(os.environ), stop_timeout=0.5)
    parent_pid, grandchild = map(int, _wait_file(pids).split())
    assert parent_pid == child.pid and os.getpgid(child.pid) == child.pid != os.getpgid(0)
    started = time.monotonic()
    sup.stop_all()
    assert time.monotonic() - started < 5
    assert not _alive(child.pid) and not _alive(grandchild)


def test_cooperative_child_stops_on_sigterm_and_failures_are_reported(tmp_path):
    sup = Supervisor(tmp_path, ROOT)
    ok = sup.start("sleeper", [sys.executable, "-c", "import time; print('up', flush=True); time.sleep(600)"], dict(os.environ))
    sup.wait_for("sleeper", lambda: ok.log_contains("up"), 10)
    bad = sup.start("crasher", [sys.executable, "-c", "import sys; print('boom'); sys.exit(3)"], dict(os.environ))
    bad.proc.wait(10)
    with pytest.raises(ChildFailed, match=r"(?s)crasher exited with code 3.*boom"):
        sup.check()
    sup.stop_all()
    assert ok.proc.returncode == -signal.SIGTERM


KILLED_PARENT = textwrap.dedent("""
    import os, sys, time
    from pathlib import Path
    from demo.procs import Supervisor
    sup = Supervisor(Path(sys.argv[1]), Path.cwd())
    c = sup.start("orphan", [sys.executable, "-c", "import time; time.sleep(600)"], dict(os.environ))
    open(sys.argv[2], "w").write(str(c.pid))
    time.sleep(600)
""")


def test_children_stop_when_the_demo_is_killed(tmp_path):
    pidfile = tmp_path / "pid"
    demo = subprocess.Popen([sys.executable, "-c", KILLED_PARENT, str(tmp_path), str(pidfile)], cwd=ROOT)
    orphan = int(_wait_file(pidfile))
    assert _alive(orphan)
    demo.kill()
    demo.wait()
    try:
        eventually(lambda: not _alive(orphan), 5)
    except AssertionError:
        pass  # said below, after the orphan is killed
    alive = _alive(orphan)
    if alive:
        os.kill(orphan, signal.SIGKILL)
    assert not alive, "the child outlived a SIGKILLed demo"


def _state(pid: int) -> str:
    return Path("/proc/%d/stat" % pid).read_text().split(") ")[1][0]


def test_outage_stops_the_agent_and_starts_it_again(tmp_path, monkeypatch):
    """The live demo's outage: the agent is stopped (SIGSTOP), counts as running meanwhile,
    and is continued (SIGCONT) after --outage-minutes; Ctrl-C during an outage continues it
    first, so that it can stop."""
    from demo import run
    from demo.config import DemoConfig
    from demo.sites import OUTAGE_SITE

    monkeypatch.setattr(run, "OUTAGE_FIRST", 0.0)
    config = DemoConfig.load(["--dir", str(tmp_path / "demo"), "--outage-minutes", "0.02"], {})
    lines: list = []
    demo = run.Demo(config, announce=lines.append)
    (tmp_path / "demo" / "logs").mkdir(parents=True)
    agent = demo.sup.start("edge-%s" % OUTAGE_SITE, ["sleep", "60"], dict(os.environ))
    demo.agents[OUTAGE_SITE] = agent
    try:
        import threading

        loop = threading.Thread(target=demo.main_loop)
        loop.start()
        eventually(lambda: _state(agent.pid) == "T", 10, "the agent stopped")
        assert agent.running() and any(line.startswith("outage: agent edge-%s" % OUTAGE_SITE) for line in lines)
        eventually(lambda: _state(agent.pid) in "SR", 10, "the agent running again")
        assert any("outage over" in line for line in lines)
        demo.stop_event.set()
        loop.join(10)
        # Stopped again at Ctrl-C: the shutdown continues it before it stops it.
        demo._pause(OUTAGE_SITE)
        eventually(lambda: _state(agent.pid) == "T", 10, "the agent stopped again")  # signals land async
        demo._resume()
        eventually(lambda: _state(agent.pid) in "SR", 10, "continued before the shutdown")
    finally:
        demo.sup.stop_all()
    assert not _alive(agent.pid)
