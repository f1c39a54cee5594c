"""Real services for tests: a mosquitto per test on a free port, a chDB store in a temp dir.

Also a webhook receiver (a real aiohttp server in a thread) for alert deliveries.
Nothing here imitates a service. The broker is the Debian ``mosquitto`` binary with its own
config, persistence directory and log, so a test can stop, kill and restart it on the same
port and find its persistent sessions again.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import socket
import subprocess
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Callable

__all__ = [
    "Mosquitto",
    "StreamLines",
    "WebhookReceiver",
    "eventually",
    "eventually_async",
    "find_mosquitto",
    "free_port",
    "recent_utc_weekday",
    "recent_utc_workday",
    "stop_left_clients",
    "stopped_at_teardown",
    "subscribed",
    "wait_for_port",
]

#: How often eventually() asks again: fast enough not to slow tests, slow enough not to load
#: a shared CI machine.
_POLL = 0.02


def eventually(predicate: Callable[[], Any], timeout: float = 10.0, message: str = "",
               interval: float = _POLL) -> Any:
    """Ask ``predicate()`` until it returns something truthy, and return that; AssertionError
    after ``timeout`` seconds with ``message`` and the last answer.

    The one way tests wait for something that happens in another thread or process: a bounded
    wait on the signal itself, never a fixed sleep before an assert. ``interval`` is for
    predicates that cost something (several HTTP requests, say).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("%s (not true after %.1f s; last: %r)" % (message or "condition", timeout, value))
        time.sleep(interval)


async def eventually_async(predicate: Callable[[], Any], timeout: float = 10.0, message: str = "") -> Any:
    """eventually() for a test on the event loop: the loop keeps running between asks.

    ``predicate`` may be a plain function or return an awaitable (an ``async def``).
    """
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError("%s (not true after %.1f s; last: %r)" % (message or "condition", timeout, value))
        await asyncio.sleep(_POLL)


_left: list = []


def stopped_at_teardown(client):
    """``client`` (paho) is stopped with :func:`shared.paho_close.stop_client` when the test
    ends, also if it fails half way: paho closes its socket pair only in ``__del__``, and left
    to the garbage collector that is a ResourceWarning (an error here) in some later test."""
    _left.append(client)
    return client


def stop_left_clients() -> None:
    """Stop the clients :func:`stopped_at_teardown` was given (tests/conftest.py, after each test)."""
    from shared.paho_close import stop_client

    while _left:
        stop_client(_left.pop())


def subscribed(client, topic: str, qos: int = 1, timeout: float = 5.0) -> None:
    """Subscribe a connected paho client (callback API 2) and wait for the broker's SUBACK.

    A refused subscription still gets a SUBACK (mosquitto grants and then delivers nothing the
    ACL forbids): this waits for the broker's answer, not for a grant.
    """
    # The SUBACK may come back on paho's thread before subscribe() has returned the mid.
    acked: set = set()
    client.on_subscribe = lambda _client, _userdata, got, *_rest: acked.add(got)
    rc, mid = client.subscribe(topic, qos=qos)
    if rc != 0:
        raise AssertionError("cannot subscribe to %s: rc %s" % (topic, rc))
    eventually(lambda: mid in acked, timeout, "the SUBACK for %s" % topic)


class StreamLines:
    """The lines of a child process's text stream (its stderr, say), read by a thread of their
    own, so a test can wait for the line that says something happened and still see the rest."""

    def __init__(self, stream) -> None:
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, args=(stream,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        for line in stream:
            self.lines.append(line)
        stream.close()

    def wait_for(self, text: str, timeout: float = 10.0) -> str:
        """The first line containing ``text``; AssertionError, with what came, after ``timeout``."""
        try:
            return eventually(lambda: next((x for x in list(self.lines) if text in x), None), timeout)
        except AssertionError:
            raise AssertionError("no line with %r after %.0f s; got:\n%s" % (text, timeout, self.text())) from None

    def text(self, timeout: float = 0.0) -> str:
        """All lines so far; with ``timeout``, first wait that long for the stream to close."""
        self._thread.join(timeout)
        return "".join(self.lines)


def recent_utc_weekday(weekday: int, now: float | None = None) -> int:
    """The latest UTC midnight at or before ``now`` that begins ``weekday`` (Monday = 0).

    For tests whose data must lie within a live agent's window (relative to the real clock)
    yet must not depend on today: the weekday and time of day of the data are fixed, only the
    week moves. At most 7 days back.
    """
    today = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    day = today.date() - timedelta(days=(today.weekday() - weekday) % 7)
    return int(datetime(day.year, day.month, day.day, tzinfo=timezone.utc).timestamp())


def recent_utc_workday(hour: int, now: float | None = None) -> int:
    """The latest ``hour``:00 UTC of a Monday to Friday at or before ``now`` (at most 3 days
    and ``hour`` hours back): the end of a window of working hours inside a live agent's
    window, with the same weekday curve whatever today is."""
    moment = datetime.fromtimestamp(time.time() if now is None else now, timezone.utc)
    at = datetime(moment.year, moment.month, moment.day, hour, tzinfo=timezone.utc)
    while at > moment or at.weekday() >= 5:
        at -= timedelta(days=1)
    return int(at.timestamp())


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_port(port: int, timeout: float = 10.0, host: str = "127.0.0.1") -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError("nothing listening on %s:%d after %.0f s" % (host, port, timeout)) from None
            time.sleep(0.02)


def find_mosquitto() -> str | None:
    return shutil.which("mosquitto") or next(
        (p for p in ("/usr/sbin/mosquitto", "/usr/local/sbin/mosquitto") if os.access(p, os.X_OK)), None
    )


class Mosquitto:
    """One mosquitto process on 127.0.0.1:``port`` with its files under ``workdir``.

    ``options`` are extra ``mosquitto.conf`` lines (password_file, acl_file,
    max_queued_messages, ...); a test may change them between stop() and start().
    """

    def __init__(self, workdir: Path, port: int | None = None, options: list[str] | None = None):
        binary = find_mosquitto()
        if binary is None:
            raise RuntimeError("mosquitto is not installed (Debian package 'mosquitto'; .ci/run installs it)")
        self.binary = binary
        self.workdir = Path(workdir)
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = port or free_port()
        self.options = list(options or [])
        self.proc: subprocess.Popen | None = None
        self.log_path = self.workdir / "mosquitto.log"

    @property
    def url(self) -> str:
        return "mqtt://127.0.0.1:%d" % self.port

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def _write_config(self) -> Path:
        conf = self.workdir / "mosquitto.conf"
        lines = [
            "listener %d 127.0.0.1" % self.port,
            "persistence true",
            "persistence_location %s/" % self.workdir,
            "log_dest file %s" % self.log_path,
            "log_type error",
            "log_type warning",
            "log_type notice",
        ]
        if os.geteuid() == 0:
            # As root, mosquitto would switch to the 'mosquitto' user, which cannot write
            # the persistence file or log inside a pytest temp dir.
            lines.append("user root")
        if not any(o.startswith(("allow_anonymous", "password_file")) for o in self.options):
            lines.append("allow_anonymous true")
        conf.write_text("\n".join(lines + self.options) + "\n")
        return conf

    def start(self, timeout: float = 10.0) -> Mosquitto:
        if self.running:
            return self
        conf = self._write_config()
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )
        try:
            wait_for_port(self.port, timeout)
        except TimeoutError:
            self.kill()
            log = self.log_path.read_text() if self.log_path.exists() else ""
            raise RuntimeError("mosquitto did not start on port %d:\n%s" % (self.port, log)) from None
        return self

    def stop(self, timeout: float = 5.0) -> None:
        """Stop cleanly (SIGTERM): mosquitto writes its persistence file on the way out."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self._close()

    def kill(self) -> None:
        """SIGKILL: in-memory state not yet persisted is lost, as in a crash."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()
        self.proc.wait()
        self._close()

    def restart(self) -> Mosquitto:
        self.stop()
        return self.start()

    def _close(self) -> None:
        if self.proc is not None and self.proc.stderr is not None:
            self.proc.stderr.close()
        self.proc = None


class WebhookReceiver:
    """A real aiohttp server on 127.0.0.1:``port`` in a thread of its own, recording the
    alert POSTs it gets. ``script`` is a list of statuses answered first (then 200); a status
    of 0 holds the request unanswered until :meth:`release` (then answers 503). :meth:`stop` closes the port
    (connections are refused, as for a receiver that is down) and :meth:`start` opens it again.
    """

    def __init__(self, port: int | None = None, script: list[int] | None = None):
        import asyncio

        self.port = port or free_port()
        self.url = "http://127.0.0.1:%d/hook" % self.port
        self.script = list(script or [])
        self.requests: list[dict] = []  # {"id", "body", "headers", "status"}
        self._cond = threading.Condition()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="webhook-receiver", daemon=True)
        self._thread.start()
        self._runner = None
        self._held = None

    def _call(self, coro, timeout: float = 10.0):
        import asyncio

        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout)

    async def _handle(self, request):
        import asyncio
        import json

        from aiohttp import web

        body = await request.read()
        try:
            alert_id = json.loads(body).get("id")
        except ValueError:
            alert_id = None
        with self._cond:
            status = self.script.pop(0) if self.script else 200
            # A held request is recorded on arrival with status 0: it is never delivered.
            self.requests.append({"id": alert_id, "body": body, "headers": dict(request.headers), "status": status})
            self._cond.notify_all()
        if status == 0:
            self._held = self._held or asyncio.Event()
            await self._held.wait()
            status = 503
        return web.Response(status=status, text="ok" if status < 300 else "no")

    async def _start(self):
        from aiohttp import web

        app = web.Application()
        app.router.add_post("/hook", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def _stop(self):
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    def start(self) -> WebhookReceiver:
        self._call(self._start())
        return self

    def stop(self) -> None:
        self._call(self._stop(), timeout=30)

    def release(self) -> None:
        """Answer held requests (503) and stop holding new ones."""
        def go():
            if self._held is not None:
                self._held.set()
                self._held = None
        self._loop.call_soon_threadsafe(go)

    def close(self) -> None:
        self.release()
        self.stop()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(10)
        self._loop.close()

    def delivered(self) -> list[str]:
        """Ids answered with a 2xx, in order, repeats included."""
        with self._cond:
            return [r["id"] for r in self.requests if 200 <= r["status"] < 300]

    def wait(self, predicate, timeout: float, what: str = "the webhook receiver"):
        """Block until ``predicate(self.requests)`` is true (checked on each arrival)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate(list(self.requests))
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise AssertionError("timed out after %.0f s waiting for %s; got %d requests"
                                         % (timeout, what, len(self.requests)))
                self._cond.wait(remaining)
