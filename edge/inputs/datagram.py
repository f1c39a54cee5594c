"""The datagram input: UDP on loopback or a Unix datagram socket, one JSON event per datagram
or an NDJSON batch (one event per line).

Events are judged by ``_intake.py`` (the schema of ``shared/events.py``, the same refusals
for every input). Bad datagrams and bad events are counted by reason and logged at a
limited rate; the reader thread never stops for them, and if it dies anyway the agent sees
it (:meth:`DatagramInput.alive`) and exits non-zero. A stop drains what the kernel holds
before the agent's last commit, so a clean stop loses nothing that arrived before it; a
datagram is not replayable, so a kill loses what was counted since the last commit (at most
one commit interval).
"""

from __future__ import annotations

import json
import json.scanner
import logging
import os
import socket
import stat
import threading
import time
from typing import Any, Dict, Optional, Tuple

from ..exceptions import InputError
from ._intake import Intake
from .contracts import InputHost

__all__ = ["DatagramInput", "MAX_DATAGRAM"]

log = logging.getLogger(__name__)

MAX_DATAGRAM = 256 * 1024
_RCVBUF = 4 * 1024 * 1024
_decoder = json.JSONDecoder()
_decode = _decoder.decode
#: The C scanner under ``decode``: one JSON value from an index, without decode()'s two
#: Python-level whitespace matches (a third of the parse of a small event).
_scan = json.scanner.make_scanner(_decoder)
#: recv() then returns a datagram's real length, so one cut short by the buffer is seen.
#: Plain ints: or-ing the socket module's flag enums costs more than the recv per datagram.
_TRUNC = int(getattr(socket, "MSG_TRUNC", 0))
_TRUNC_DONTWAIT = _TRUNC | int(socket.MSG_DONTWAIT)
_NAP = 0.1
_NAP_BELOW = 96  # datagrams in the last drain (a nap's worth at 960 datagrams/s)
_NAP_BELOW_BYTES = 32 * 1024  # far below the default receive buffer (208 KiB)
#: A stop drains the socket until it is empty, or for this long under a sender that never
#: pauses (UDP cannot refuse it; a Unix socket's senders get EPIPE once the stop begins).
_DRAIN_LIMIT = 5.0


class DatagramInput:
    def __init__(self, agent: InputHost, udp: Optional[Tuple[str, int]] = None, unix: Optional[str] = None) -> None:
        if (udp is None) == (unix is None):
            raise ValueError("one of udp or unix")
        self.agent = agent
        self.udp = udp
        self.unix = unix
        self.name = "udp" if udp is not None else "unix"
        self.datagrams = 0
        self.bad_datagrams = 0
        self.drained = 0  # datagrams read by the last stop's drain
        self._intake = Intake(agent, "%s input" % self.name)
        self._sock: Optional[socket.socket] = None
        self._thread: Optional[threading.Thread] = None
        self._stopping = threading.Event()

    @property
    def address(self) -> Any:
        """The bound address (the real port when 0 was asked for)."""
        return self._sock.getsockname() if self._sock is not None else None

    def start(self) -> None:
        try:
            if self.udp is not None:
                host, _ = self.udp
                family = socket.AF_INET6 if ":" in host else socket.AF_INET
                sock = socket.socket(family, socket.SOCK_DGRAM)
                address: Any = self.udp
            else:
                assert self.unix is not None
                self._remove_stale(self.unix)
                sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
                address = self.unix
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, _RCVBUF)
            sock.bind(address)
        except OSError as exc:
            raise InputError("cannot bind the %s input at %s: %s" % (self.name, self.udp or self.unix, exc)) from None
        self._sock = sock
        log.info("datagram input listening on %s %s", self.name, self.address)
        self._thread = threading.Thread(target=self._run, name="edge-%s-input" % self.name, daemon=True)
        self._thread.start()

    @staticmethod
    def _remove_stale(path: str) -> None:
        try:
            if stat.S_ISSOCK(os.lstat(path).st_mode):
                os.unlink(path)
        except FileNotFoundError:
            pass

    def _run(self) -> None:
        try:
            self._read()
        except BaseException:
            # Never expected (handle() failures are caught per datagram); the agent sees the
            # thread gone through alive() and stops rather than run deaf.
            log.exception("the %s input's reader died", self.name)

    def _read(self) -> None:
        sock = self._sock
        assert sock is not None
        # recv_into one reused buffer: no 256 KiB allocation (mmap/munmap) per datagram.
        buf = bytearray(MAX_DATAGRAM)
        view = memoryview(buf)
        # At a light load, waking for every datagram costs more than the work (a thread
        # switch and cold caches each time: 3.3% of a core against 1.1% at 480 datagrams/s),
        # so after a small drain the reader pauses for _NAP seconds and lets the kernel queue
        # the next ones (at most _NAP_BELOW_BYTES by then, far below the receive buffer).
        # Each wake still costs about as much as a dozen datagrams on a busy machine: 0.1 s
        # naps took 0.63% of a core where 0.05 s took 0.83% (480 datagrams/s, issue 27).
        # stop() cuts the pause short, and the stop's drain reads what queued meanwhile.
        stopping = self._stopping
        while True:
            try:
                n = sock.recv_into(buf, 0, _TRUNC)  # blocking; stop() wakes it with an empty read
            except OSError as exc:
                if stopping.is_set():
                    break
                log.warning("datagram input: %s", exc)
                stopping.wait(0.1)
                continue
            if n or not stopping.is_set():  # a datagram read is never dropped
                self._handle_safely(view, n)
            if stopping.is_set():
                break
            drained, size = 1, n
            while not stopping.is_set():
                try:
                    n = sock.recv_into(buf, 0, _TRUNC_DONTWAIT)
                except OSError:  # BlockingIOError: nothing more queued
                    break
                drained += 1
                size += n
                self._handle_safely(view, n)
            if drained < _NAP_BELOW and size < _NAP_BELOW_BYTES:
                stopping.wait(_NAP)
        # Stopping: what the kernel still holds arrived before the stop; it goes into the
        # agent's last commit.
        deadline = time.monotonic() + _DRAIN_LIMIT
        drained = 0
        while time.monotonic() < deadline:
            try:
                n = sock.recv_into(buf, 0, _TRUNC_DONTWAIT)
            except OSError:  # BlockingIOError: empty
                break
            drained += 1
            self._handle_safely(view, n)
        else:
            log.warning("the %s input's stop drain ended after %.0f s with datagrams still arriving",
                        self.name, _DRAIN_LIMIT)
        self.drained = drained
        log.info("%s input stopped; %d datagram(s) drained", self.name, drained)

    def _handle_safely(self, view: memoryview, n: int) -> None:
        if n > MAX_DATAGRAM:
            # Refused whole: the lines past the cut would be lost and the cut one refused.
            self.datagrams += 1
            self.bad_datagrams += 1
            self._intake.refuse("too_large", "a datagram of %d bytes (the limit is %d)" % (n, MAX_DATAGRAM))
            return
        try:
            self.handle(bytes(view[:n]))
        except Exception:  # a bug must not kill the input; it is logged and counted
            self.bad_datagrams += 1
            log.exception("datagram input failed on a datagram")

    def handle(self, data: bytes) -> int:
        """Count the events of one datagram; returns how many were accepted. The datagram is
        counted once it is handled, so a reader of the counter sees its events too."""
        try:
            return self._handle(data)
        finally:
            self.datagrams += 1

    def _handle(self, data: bytes) -> int:
        if b"\n" not in data or b"\n" not in data.strip():
            obj = self._loads(data)
            objs = [] if obj is None else obj if obj.__class__ is list else [obj]
            bad = obj is None
        else:
            lines = [line for line in data.split(b"\n") if line.strip()]
            try:
                # One parse for the whole batch; a count that differs from the lines means a
                # line held more than one value, so it is judged line by line instead.
                objs = _decode((b"[" + b",".join(lines) + b"]").decode())
                if len(objs) != len(lines):
                    raise ValueError("not one value per line")
                bad = False
            except (ValueError, RecursionError):
                objs = [o for o in map(self._loads, lines) if o is not None]
                bad = len(objs) != len(lines)
        take = self._intake.take
        accepted = 0
        for obj in objs:
            accepted += take(obj)
        if bad or accepted != len(objs):
            self.bad_datagrams += 1
        return accepted

    def _loads(self, data: bytes) -> Any:
        try:
            text = data.decode()
            obj, end = _scan(text, 0)
            if end == len(text):
                return obj
        except (StopIteration, ValueError, RecursionError):
            pass  # the full parse below refuses it with its reason (or takes it, around blanks)
        try:
            # Decoding first skips json.loads' encoding detection; the decoder is reused.
            return _decode(data.decode())
        except (ValueError, RecursionError) as exc:
            self._intake.refuse("bad_json", str(exc)[:80])
            return None

    def stop(self) -> None:
        """Take no more datagrams: a Unix socket's senders get EPIPE from here; the reader
        reads what the kernel already holds, then ends."""
        self._stopping.set()
        if self._sock is not None:
            try:
                # Wakes the blocked recv with an empty read (ENOTCONN is normal for UDP);
                # queued datagrams stay readable.
                self._sock.shutdown(socket.SHUT_RD)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(_DRAIN_LIMIT + 2.0)
            if self._thread.is_alive():
                log.error("the %s input's reader did not end within %.0f s", self.name, _DRAIN_LIMIT + 2.0)

    def alive(self) -> bool:
        """False once the reader thread has ended while the input was meant to run."""
        return self._stopping.is_set() or self._thread is None or self._thread.is_alive()

    def close(self) -> None:
        self.stop()
        if self._sock is not None:
            self._sock.close()
            self._sock = None
            if self.unix is not None:
                self._remove_stale(self.unix)

    def mark(self) -> int:
        return 0

    def committed(self, mark: int) -> None:
        pass

    def stats(self) -> Dict[str, float]:
        return {"%s_datagrams" % self.name: self.datagrams, "%s_bad_datagrams" % self.name: self.bad_datagrams}
