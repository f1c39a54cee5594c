"""The HTTP listener: aiohttp's connection handler with central's timeouts and JSON errors.

aiohttp answers a request it cannot parse (a bad character in the URL, an unsupported
``Content-Encoding``, an oversized header) itself, in plain text, and logs a traceback at
ERROR, so anyone could fill the log. :class:`_Connection` answers those with the
documented JSON error body and logs one INFO line instead, and treats a client that breaks
its request body or goes away the same way (it is the client's fault, not ours).

Timeouts (``docs/central.md``): a new connection must send a complete request head within
``HEATMAP_HTTP_HEADER_TIMEOUT`` seconds; after a response aiohttp's keep-alive timer
(``HEATMAP_HTTP_KEEPALIVE_TIMEOUT``) closes a connection that does not complete its next
head in time, whether it is idle or dripping bytes. The body timeout belongs to the
handler that reads the body (:mod:`central.bodies`); a body left unread after the answer
is drained for at most :data:`LINGER_SECONDS`, then the connection closes.

Only ``python -m central serve`` and the tests that need real sockets go through
:func:`listen`; pytest-aiohttp's in-process server uses aiohttp's own handler.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable

from aiohttp import web
from aiohttp.http_exceptions import ContentEncodingError, HttpProcessingError

from .config import Config
from .http_errors import json_error

__all__ = ["listen", "CLIENT_FAULTS"]

logger = logging.getLogger(__name__)

#: Failures caused by what the client sent or did; logged at INFO without a traceback.
CLIENT_FAULTS = (HttpProcessingError, web.RequestPayloadError, ConnectionError)
_HEAD_END = b"\r\n\r\n"
#: After an answer sent before the body was read (413, 408, 503), the rest of the body is
#: read and dropped this long so the client sees the answer rather than a reset; then the
#: connection closes (aiohttp's default is 10 s).
LINGER_SECONDS = 2.0


def _one_line(exc: BaseException | None, message: str | None) -> str:
    text = message or (str(exc) if exc is not None else "") or "malformed request"
    text = " ".join(text.split())
    return text if len(text) <= 200 else text[:197] + "..."


class _Connection(web.RequestHandler):
    """One HTTP connection: aiohttp's handler plus a header timeout and JSON errors."""

    def __init__(self, manager: web.Server, *, header_timeout: float,
                 on_timeout: Callable[[str], None], **kwargs) -> None:
        super().__init__(manager, **kwargs)
        self._header_timeout = header_timeout
        self._on_timeout = on_timeout
        self._head_timer: asyncio.TimerHandle | None = None
        self._head_tail = b""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._head_timer = asyncio.get_running_loop().call_later(self._header_timeout, self._head_late)

    def data_received(self, data: bytes) -> None:
        if self._head_timer is not None:
            # Only the first head is watched here; later ones are under the keep-alive timer.
            if _HEAD_END in self._head_tail + data:
                self._head_timer.cancel()
                self._head_timer = None
            else:
                self._head_tail = (self._head_tail + data)[-3:]
        super().data_received(data)

    def connection_lost(self, exc: BaseException | None) -> None:
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        super().connection_lost(exc)

    def _head_late(self) -> None:
        self._head_timer = None
        logger.info("closed a connection that sent no complete request head in %.1f s", self._header_timeout)
        self._on_timeout("header")
        self.force_close()

    def log_exception(self, *args, **kw) -> None:
        exc = kw.get("exc_info")
        if isinstance(exc, CLIENT_FAULTS):
            logger.info("client fault: %s", _one_line(exc, None))
            return
        super().log_exception(*args, **kw)

    def handle_error(self, request, status: int = 500, exc: BaseException | None = None,
                     message: str | None = None) -> web.StreamResponse:
        if request.writer.output_size > 0:  # a response is under way: nothing else can be sent
            raise ConnectionError("response already started")
        if status >= 500 and not isinstance(exc, CLIENT_FAULTS):
            logger.error("request from %s failed", request.remote, exc_info=exc)
            resp = json_error(status, "internal", "internal error")
        elif isinstance(exc, ContentEncodingError):
            logger.info("unsupported request from %s: %s", request.remote, _one_line(exc, message))
            resp = json_error(415, "unsupported_content_encoding",
                              "the Content-Encoding is not supported; send gzip, deflate or none")
        else:
            logger.info("malformed request from %s: %s", request.remote, _one_line(exc, message))
            code = "too_large" if status in (413, 431) else "bad_request"
            resp = json_error(status if 400 <= status < 500 else 400, code,
                              "malformed HTTP request: %s" % _one_line(exc, message))
        resp.force_close()
        return resp


async def listen(runner: web.AppRunner, config: Config, host: str, port: int,
                 on_timeout: Callable[[str], None] = lambda kind: None) -> asyncio.AbstractServer:
    """Accept connections for ``runner`` (set up) on host:port; close the result to stop."""
    server = runner.server
    assert server is not None, "runner.setup() first"
    loop = asyncio.get_running_loop()

    def connection() -> _Connection:
        return _Connection(server, loop=loop, header_timeout=config.http_header_timeout,
                           on_timeout=on_timeout, keepalive_timeout=config.http_keepalive_timeout,
                           lingering_time=LINGER_SECONDS, access_log=None)

    return await loop.create_server(connection, host, port, backlog=1024)
