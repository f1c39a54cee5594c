"""Request bodies under limits: size, time to arrive, and the bytes all bodies hold at once.

A body is refused before it is read when its ``Content-Length`` says it is too large or
would not fit in the process's budget (:class:`BodyBudget`, ``HEATMAP_INGEST_INFLIGHT_BYTES``);
a chunked body is charged to the budget as it arrives. A body must arrive in full within
``HEATMAP_HTTP_BODY_TIMEOUT``. Every refusal here is a :class:`BodyRefused` carrying its
JSON error; refusals that leave the body unread close the connection, so a stalled or
oversized upload never holds memory or a connection past its limit, and once the bodies
are gone their memory goes back to the OS (:class:`central.memory.IdleTrim`).
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator

from aiohttp import web

from .exceptions import CentralError
from .memory import IdleTrim

__all__ = ["BodyBudget", "BodyRefused", "Held", "read_body"]

#: Seconds a client refused for the budget is asked to wait.
BUSY_RETRY_SECONDS = 2


class BodyRefused(CentralError):
    """A body that will not be taken; ``status``/``code`` are its JSON error."""

    def __init__(self, status: int, code: str, message: str, retry_after: int | None = None):
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


class Held:
    """The bytes one request holds in the budget; given back when it ends."""

    def __init__(self, budget: BodyBudget):
        self._budget = budget
        self.size = 0

    def take(self, size: int) -> None:
        if size <= 0:
            return
        if not self._budget._take(size):
            raise BodyRefused(503, "busy", "too many request bodies are being received; retry shortly",
                              retry_after=BUSY_RETRY_SECONDS)
        self.size += size


class BodyBudget:
    """The bytes of request bodies this process holds at once (being received or decoded).

    When the last body is released after enough bytes went through, the freed memory is
    handed back to the OS (:class:`central.memory.IdleTrim`: a body arrives as many 64 KiB
    chunks, and 60 stalled 8 MB uploads otherwise left some 500 MB resident for good).
    """

    def __init__(self, limit: int, on_change=lambda held: None):
        self.limit = limit
        self.held = 0
        self._on_change = on_change
        self._trim = IdleTrim()

    def _take(self, size: int) -> bool:
        if self.held + size > self.limit:
            return False
        self.held += size
        self._on_change(self.held)
        return True

    @contextlib.asynccontextmanager
    async def hold(self) -> AsyncIterator[Held]:
        held = Held(self)
        try:
            yield held
        finally:
            self.held -= held.size
            self._on_change(self.held)
            self._trim.done(held.size, self.held == 0)


async def read_body(request: web.Request, held: Held, max_bytes: int, timeout: float) -> bytes:
    """The whole body (decompressed per Content-Encoding), charged to ``held``.

    Raises :class:`BodyRefused`; a client that disconnects raises ``ConnectionError``.
    """
    declared = request.content_length
    if declared is not None:
        if declared > max_bytes:
            raise BodyRefused(413, "too_large", "the body is larger than %d bytes" % max_bytes)
        held.take(declared)
    try:
        return await asyncio.wait_for(_read(request, held, max_bytes, declared), timeout)
    except asyncio.TimeoutError:
        raise BodyRefused(408, "body_timeout", "the body did not arrive within %g s" % timeout) from None
    except web.RequestPayloadError as exc:
        # A body that is not what its Content-Encoding or framing says (aiohttp's decoder).
        cause = exc.__cause__ or exc
        detail = getattr(cause, "message", None) or str(cause) or type(cause).__name__
        raise BodyRefused(400, "bad_body", "the body does not match its Content-Encoding or framing: %s"
                          % " ".join(str(detail).split())[:150]) from None


async def _read(request: web.Request, held: Held, max_bytes: int, declared: int | None) -> bytes:
    chunks, size, charged = [], 0, declared or 0
    async for chunk in request.content.iter_chunked(65536):
        size += len(chunk)
        if size > max_bytes:
            raise BodyRefused(413, "too_large", "the body is larger than %d bytes" % max_bytes)
        if size > charged:  # chunked, or decompressed past what was declared
            held.take(size - charged)
            charged = size
        chunks.append(chunk)
    return b"".join(chunks)
