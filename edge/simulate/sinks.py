"""Where ``python -m edge simulate`` sends its events: an agent's datagram input, central's
raw ingest API, or both.

Every sink is a :class:`Sink` (``send``, ``close``, its ``name`` and the ``events`` it took):

* :class:`DatagramSink`: NDJSON batches, each datagram below 60 KB, to ``udp://host:port``
  or ``unix:///path`` (a Unix datagram socket). Paced to a maximum event rate because a
  datagram that finds the receiver's buffer full is dropped without a word.
* :class:`HttpSink`: ``POST /api/v1/events`` with NDJSON bodies, an ``Idempotency-Key``
  derived from the body (so a retry, or a rerun with the same seed, never doubles rows),
  retries with backoff on connection errors, 429 and 5xx (honouring ``Retry-After``), and a
  batch split in two on 413.
"""

from __future__ import annotations

import hashlib
import json
import logging
import socket
import time
import urllib.error
import urllib.request
from typing import Callable, List, Optional, Protocol, runtime_checkable
from urllib.parse import urlsplit

from ..exceptions import SinkError
from .model import Events, SiteModel

__all__ = ["MAX_DATAGRAM", "DatagramSink", "HttpSink", "Sink", "encode_lines"]

log = logging.getLogger(__name__)

MAX_DATAGRAM = 60000


@runtime_checkable
class Sink(Protocol):
    """Where the simulator's events go; :class:`SinkError` when it cannot deliver."""

    name: str  # "agent" or "central", in the closing summary
    events: int  # events taken so far

    def send(self, model: SiteModel, ev: Events) -> None:
        """Deliver the events ``ev`` of ``model`` (blocking until taken)."""

    def close(self) -> None:
        """Release the socket or connection."""


def encode_lines(model: SiteModel, ev: Events, with_site: bool = True) -> List[bytes]:
    """One compact JSON object per event, in the field names of ``shared.events``."""
    names = [json.dumps(c.name) for c in model.cameras]
    site = ',"site":%s' % json.dumps(model.site) if with_site else ""
    out = []
    cams, ts, people, flags = ev.cam.tolist(), ev.ts.tolist(), ev.people.tolist(), ev.flags.any(axis=1)
    for i in range(len(ev)):
        trig = json.dumps(ev.triggers_of(i), separators=(",", ":")) if flags[i] else "[]"
        out.append(
            ('{"camera":%s,"people_count":%d,"timestamp":%d,"triggers":%s%s}'
             % (names[cams[i]], people[i], ts[i], trig, site)).encode()
        )
    return out


class DatagramSink:
    """NDJSON datagrams to an agent's input, at most ``max_rate`` events per second."""

    name = "agent"

    def __init__(self, url: str, max_rate: float = 20000.0, with_site: bool = True):
        parts = urlsplit(url)
        if parts.scheme == "udp":
            if not parts.hostname or not parts.port:
                raise SinkError("--to-agent %r: expected udp://HOST:PORT" % url)
            infos = socket.getaddrinfo(parts.hostname, parts.port, 0, socket.SOCK_DGRAM)
            family, _, _, _, self.address = infos[0]
        elif parts.scheme == "unix":
            if not parts.path:
                raise SinkError("--to-agent %r: expected unix:///PATH" % url)
            family, self.address = socket.AF_UNIX, parts.path
        else:
            raise SinkError("--to-agent %r: the scheme must be udp:// or unix://" % url)
        self.sock = socket.socket(family, socket.SOCK_DGRAM)
        self.max_rate = max_rate
        self.with_site = with_site
        self.events = 0
        self.datagrams = 0
        self.bytes = 0
        self._t0 = time.monotonic()
        self._paced = 0

    def send(self, model: SiteModel, ev: Events) -> None:
        batch: List[bytes] = []
        size = 0
        for line in encode_lines(model, ev, self.with_site):
            if batch and size + len(line) + 1 > MAX_DATAGRAM:
                self._send(batch)
                batch, size = [], 0
            batch.append(line)
            size += len(line) + 1
        if batch:
            self._send(batch)

    def _send(self, lines: List[bytes]) -> None:
        data = b"\n".join(lines) + b"\n"
        for attempt in range(50):
            try:
                self.sock.sendto(data, self.address)
                break
            except (BlockingIOError, InterruptedError):
                time.sleep(0.01 * (attempt + 1))
            except OSError as exc:
                # ENOBUFS on a busy host; connection refused on a Unix socket no one reads.
                if attempt == 49:
                    raise SinkError("datagram to %s failed: %s" % (self.address, exc)) from None
                time.sleep(0.02 * (attempt + 1))
        self.events += len(lines)
        self.datagrams += 1
        self.bytes += len(data)
        self._pace(len(lines))

    def _pace(self, n: int) -> None:
        self._paced += n
        ahead = self._paced / self.max_rate - (time.monotonic() - self._t0)
        if ahead > 0:
            time.sleep(ahead)
        elif ahead < -1.0:
            # After an idle spell do not burst to catch up: restart the budget.
            self._t0, self._paced = time.monotonic(), 0

    def close(self) -> None:
        self.sock.close()


class HttpSink:
    """Batches of raw events to central's ``POST /api/v1/events``."""

    name = "central"

    def __init__(self, base_url: str, token: Optional[str] = None, batch: int = 5000,
                 retry_for: float = 120.0, timeout: float = 30.0,
                 sleep: Callable[[float], Optional[bool]] = time.sleep):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise SinkError("--to-central %r: expected http(s)://HOST:PORT" % base_url)
        self.url = base_url.rstrip("/") + "/api/v1/events"
        self.token = token
        self.batch = batch
        self.retry_for = retry_for
        self.timeout = timeout
        self.sleep = sleep
        self.events = 0
        self.requests = 0
        self.retries = 0
        self.bytes = 0

    def send(self, model: SiteModel, ev: Events) -> None:
        lines = encode_lines(model, ev, with_site=True)
        for i in range(0, len(lines), self.batch):
            self._post(lines[i:i + self.batch])

    def _post(self, lines: List[bytes]) -> None:
        body = b"\n".join(lines) + b"\n"
        key = hashlib.sha256(body).hexdigest()[:32]
        deadline = time.monotonic() + self.retry_for
        delay = 0.25
        while True:
            status, detail, retry_after = self._request(body, key)
            if status in (200, 201):
                self.events += len(lines)
                self.requests += 1
                self.bytes += len(body)
                return
            if status == 413 and len(lines) > 1:
                log.info("central refused %d events as too large; splitting the batch", len(lines))
                half = len(lines) // 2
                self._post(lines[:half])
                self._post(lines[half:])
                return
            if status is not None and status < 500 and status != 429:
                raise SinkError("central refused a batch of %d events: HTTP %d %s"
                                % (len(lines), status, detail[:300]))
            if time.monotonic() + delay > deadline:
                raise SinkError("central unreachable for %.0f s: %s" % (self.retry_for, detail[:300]))
            self.retries += 1
            log.warning("central: %s; retrying in %.1f s", detail[:200], retry_after or delay)
            # ``sleep`` may be a threading.Event's wait: True means "stop now".
            if self.sleep(retry_after or delay):
                raise SinkError("stopped while retrying a batch of %d events" % len(lines))
            delay = min(delay * 2, 10.0)

    def _request(self, body: bytes, key: str):
        headers = {"Content-Type": "application/x-ndjson", "Idempotency-Key": key}
        if self.token:
            headers["Authorization"] = "Bearer " + self.token
        # The scheme was checked to be http(s) in __init__.
        req = urllib.request.Request(self.url, data=body, headers=headers, method="POST")  # noqa: S310
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as resp:  # noqa: S310
                resp.read()
                return resp.status, "ok", None
        except urllib.error.HTTPError as exc:
            text = exc.read().decode("utf-8", "replace")
            retry_after = exc.headers.get("Retry-After")
            wait = float(retry_after) if retry_after and retry_after.isdigit() else None
            return exc.code, "HTTP %d %s" % (exc.code, text), wait
        except (urllib.error.URLError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            return None, "connection failed (%s)" % reason, None

    def close(self) -> None:
        pass
