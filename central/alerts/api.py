"""``GET /api/v1/alerts?site=&from=&to=&limit=``: fired alerts with their delivery state.

``from`` and ``to`` are ISO 8601 instants (``2026-12-01T08:00:00Z``, an offset, or a bare
date meaning 00:00 UTC); the default is the 24 hours up to now. Alerts held back by a
cooldown are not listed. Newest first.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone

from aiohttp import web
from shared.names import is_valid_name

from ..http_errors import json_error
from ..query import single_values
from .ledger import Ledger

__all__ = ["answer", "MAX_LIMIT"]

MAX_LIMIT = 10000
_DAY = 86400.0


def _instant(text: str) -> float:
    value = datetime.fromisoformat(text.replace("Z", "+00:00").replace("z", "+00:00"))
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    if not 2000 <= value.year <= 2099:
        raise ValueError(text)
    return value.timestamp()


async def answer(request: web.Request, ledger: Ledger) -> web.Response:
    """The answer to ``request`` from ``ledger`` (storage is ready)."""
    single_values(request)
    site = request.query.get("site", "")
    if site and not is_valid_name(site):
        return json_error(400, "bad_site_name",
                          "site names are 1-64 of A-Z a-z 0-9 _ - ., starting with a letter or digit")
    try:
        end = _instant(request.query["to"]) if "to" in request.query else time.time() + 1
    except ValueError:
        return json_error(400, "bad_to", "to must be an ISO 8601 date or date-time (e.g. 2026-12-01T08:00:00Z)")
    try:
        start = _instant(request.query["from"]) if "from" in request.query else end - _DAY
    except ValueError:
        return json_error(400, "bad_from", "from must be an ISO 8601 date or date-time (e.g. 2026-12-01T08:00:00Z)")
    if start >= end:
        return json_error(400, "bad_range", "from must be before to")
    text = request.query.get("limit", "1000")
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= MAX_LIMIT:
        return json_error(400, "bad_limit", "limit must be a whole number in 1..%d" % MAX_LIMIT)
    rows = await ledger.listing(site, start, end, int(text))
    return web.json_response({"alerts": [a.document() for a in rows]}, headers={"Cache-Control": "no-cache"})
