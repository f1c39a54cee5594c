"""The datagram input: UDP on loopback or a Unix datagram socket, one JSON event per datagram
or an NDJSON batch (one event per line).

Event fields are those of ``shared/events.py`` (product names or the ``camera_events``
column names); ``site``, if given, must be this agent's site. Bad datagrams and bad events
are counted by reason and logged at a limited rate; the reader thread never stops for them.
A datagram is not replayable: events counted but not yet committed when the process is
killed (at most one commit interval) are lost.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import stat
import threading
import time
from typing import Any, Dict, Optional, Tuple

from shared.events import parse_event
from shared.exceptions import EventError

from ..exceptions import InputError

__all__ = ["DatagramInput", "MAX_DATAGRAM"]

log = logging.getLogger(__name__)

MAX_DATAGRAM = 256 * 1024
_FAST_KEYS = frozenset(("camera", "people_count", "timestamp", "triggers"))
_RCVBUF = 4 * 1024 * 1024
_decode = json.JSONDecoder().decode
_NAP = 0.05
_NAP_BELOW = 32  # datagrams in the last drain
_NAP_BELOW_BYTES = 32 * 1024  # far below the default receive buffer (208 KiB)


class DatagramInput:
    def __init__(self, agent: Any, udp: Optional[Tuple[str, int]] = None, unix: Optional[str] = None) -> None:
        if (udp is None) == (unix is None):
            raise ValueError("one of udp or unix")
        self.agent = agent
        self.udp = udp
        self.unix = unix
        self.name = "udp" if udp is not None else "unix"
        self.datagrams = 0
        self.bad_datagrams = 0
        self._record = agent.record
        self._refusals = agent.refusals
        self._site = agent.config.site
        self._max_future = agent.config.max_future
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
        sock = self._sock
        assert sock is not None
        # recv_into one reused buffer: no 256 KiB allocation (mmap/munmap) per datagram.
        # At a light load, waking for every datagram costs more than the work (cold caches,
        # a thread switch each time), so after a small drain the thread naps for _NAP
        # seconds and lets the kernel queue the next ones (at most _NAP_BELOW_BYTES by then,
        # so nothing overflows); under load it never naps.
        buf = bytearray(MAX_DATAGRAM)
        view = memoryview(buf)
        while not self._stopping.is_set():
            try:
                n = sock.recv_into(buf)  # blocking; stop() wakes it
            except OSError as exc:
                if self._stopping.is_set():
                    return
                log.warning("datagram input: %s", exc)
                time.sleep(0.1)
                continue
            drained = size = 0
            while n >= 0 and not self._stopping.is_set():
                drained += 1
                size += n
                try:
                    self.handle(bytes(view[:n]))
                except Exception:  # a bug must not kill the input; it is logged and counted
                    self.bad_datagrams += 1
                    log.exception("datagram input failed on a datagram")
                try:
                    n = sock.recv_into(buf, 0, socket.MSG_DONTWAIT)
                except (BlockingIOError, InterruptedError):
                    n = -1
                except OSError:
                    n = -1
            if drained < _NAP_BELOW and size < _NAP_BELOW_BYTES:
                self._stopping.wait(_NAP)

    def handle(self, data: bytes) -> int:
        """Count the events of one datagram; returns how many were accepted."""
        self.datagrams += 1
        if b"\n" not in data.strip():
            obj = self._loads(data)
            objs = [] if obj is None else obj if obj.__class__ is list else [obj]
        else:
            lines = [line for line in data.split(b"\n") if line.strip()]
            try:
                # One parse for the whole batch; a count that differs from the lines means a
                # line held more than one value, so it is judged line by line instead.
                objs = _decode((b"[" + b",".join(lines) + b"]").decode())
                if len(objs) != len(lines):
                    raise ValueError("not one value per line")
            except (ValueError, RecursionError):
                objs = [o for o in map(self._loads, lines) if o is not None]
        accepted = 0
        record = self._record
        for obj in objs:
            if obj.__class__ is dict and obj.keys() <= _FAST_KEYS:
                accepted += record(obj.get("camera"), obj.get("people_count"), obj.get("timestamp"),
                                   obj.get("triggers") or ())
            else:
                accepted += self._slow(obj)
        return accepted

    def _loads(self, data: bytes) -> Any:
        try:
            # Decoding first skips json.loads' encoding detection; the decoder is reused.
            return _decode(data.decode())
        except (ValueError, RecursionError) as exc:
            self.bad_datagrams += 1
            self._refusals.add("bad_json", "%s input: %s" % (self.name, str(exc)[:80]))
            return None

    def _slow(self, obj: Any) -> int:
        try:
            event = parse_event(obj, time.time(), self._max_future)
        except EventError as exc:
            self._refusals.add("bad_event", "%s input: %s" % (self.name, exc))
            return 0
        if event.site is not None and event.site != self._site:
            self._refusals.add("wrong_site", "%s input: event for site %r, this agent serves %r"
                               % (self.name, event.site, self._site))
            return 0
        return int(self._record(event.camera, event.people_count, event.timestamp, event.triggers))

    def stop(self) -> None:
        self._stopping.set()
        if self._sock is not None:
            try:
                self._sock.shutdown(socket.SHUT_RDWR)  # wakes the blocked recv (ENOTCONN is normal)
            except OSError:
                pass
        if self._thread is not None:
            self._thread.join(2.0)

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
