"""The JSON error body every HTTP error of central uses: ``{"error": {"code", "message"}}``."""

from __future__ import annotations

from aiohttp import web

__all__ = ["json_error"]


def json_error(status: int, code: str, message: str, retry_after: int | None = None, **extra) -> web.Response:
    error = {"code": code, "message": message}
    error.update(extra)
    headers = {"Retry-After": str(retry_after)} if retry_after is not None else None
    return web.json_response({"error": error}, status=status, headers=headers)
