"""Child processes of the demo: started in their own process groups, stopped for sure.

Each child runs in a new session (its own process group), so Ctrl-C in the terminal
reaches only the demo, which then stops the children in reverse start order: SIGTERM to
the whole group, SIGKILL to the group after a timeout. On Linux each child also gets
``PR_SET_PDEATHSIG`` so that it is told to stop even if the demo itself is killed.
Output goes to one log file per child.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = ["Child", "ChildFailed", "Supervisor"]

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1


class ChildFailed(Exception):
    """A child exited when it should not have (or did not get ready in time)."""


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(Exception):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


@dataclass
class Child:
    name: str
    proc: subprocess.Popen
    log_path: Path
    stop_timeout: float
    expect_exit: bool = False  # a one-shot job rather than a service
    _log_file: object = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def log_contains(self, text: str) -> bool:
        try:
            return text in self.log_path.read_text(errors="replace")
        except OSError:
            return False


class Supervisor:
    """Starts children, watches them, and stops every one of them."""

    def __init__(self, log_dir: Path, cwd: Path):
        self.log_dir = log_dir
        self.cwd = cwd
        self.children: list[Child] = []

    def start(self, name: str, argv: Sequence[str], env: dict[str, str], stop_timeout: float = 10.0,
              expect_exit: bool = False) -> Child:
        log_path = self.log_dir / ("%s.log" % name)
        out = open(log_path, "ab")
        proc = subprocess.Popen(  # noqa: S603 (argv built by the demo itself)
            list(argv), cwd=self.cwd, env=env, stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
        child = Child(name, proc, log_path, stop_timeout, expect_exit, out)
        self.children.append(child)
        log.info("started %s (pid %d), log %s", name, proc.pid, log_path)
        return child

    def python(self, name: str, module_args: Sequence[str], env: dict[str, str], **kw) -> Child:
        return self.start(name, [sys.executable, "-m", *module_args], env, **kw)

    def check(self) -> None:
        """Raise ChildFailed if a service died (a one-shot job may exit 0)."""
        for child in self.children:
            code = child.proc.poll()
            if code is None:
                continue
            if child.expect_exit and code == 0:
                continue
            raise ChildFailed("%s exited with code %s; last lines of %s:\n%s"
                              % (child.name, code, child.log_path, child.tail()))

    def wait_for(self, what: str, ready, timeout: float, interval: float = 0.1) -> None:
        deadline = time.monotonic() + timeout
        while not ready():
            self.check()
            if time.monotonic() > deadline:
                raise ChildFailed("timed out after %.0f s waiting for %s" % (timeout, what))
            time.sleep(interval)

    def stop(self, child: Child) -> None:
        if child.running():
            self._signal(child, signal.SIGTERM)
            try:
                child.proc.wait(child.stop_timeout)
            except subprocess.TimeoutExpired:
                log.warning("%s did not stop within %.0f s; killing it", child.name, child.stop_timeout)
        # Whatever is left in its group (a grandchild, a stuck child) is killed.
        self._signal(child, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            child.proc.wait(5)
        # SIGKILL is delivered asynchronously: give the group a moment to be gone.
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline and self._group_alive(child.pid):
            time.sleep(0.01)
        if child._log_file is not None:
            child._log_file.close()  # type: ignore[attr-defined]
            child._log_file = None

    def stop_all(self) -> None:
        for child in reversed(self.children):
            self.stop(child)

    @staticmethod
    def _group_alive(pgid: int) -> bool:
        """True while a process of the group exists that is not a zombie (Linux /proc)."""
        try:
            os.killpg(pgid, 0)
        except (ProcessLookupError, PermissionError):
            return False
        proc = Path("/proc")
        if not proc.is_dir():
            return True
        for entry in proc.iterdir():
            if not entry.name.isdigit():
                continue
            try:
                fields = (entry / "stat").read_text().rsplit(") ", 1)[1].split()
            except (OSError, IndexError):
                continue
            if int(fields[2]) == pgid and fields[0] != "Z":
                return True
        return False

    def signal(self, child: Child, sig: int) -> None:
        """Send ``sig`` to the child's whole process group (SIGSTOP/SIGCONT for an outage)."""
        self._signal(child, sig)

    @staticmethod
    def _signal(child: Child, sig: int) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, sig)
