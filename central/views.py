"""HTTP handlers of the range views: ``/api/v1/history/{site}``, ``/api/v1/profile/{site}``,
``/api/v1/typical/{site}``, ``/api/v1/overview`` and ``/api/v1/export/{site}``.

They parse and check parameters (a bad one is a 400 :class:`RequestError` with its own code,
an unknown site 404), then hand over to :mod:`central.history`, :mod:`central.typical`, :mod:`central.overview` and
:mod:`central.export`. Tokens, CORS, metrics and JSON errors come from the app's
middlewares, as for the dashboard.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import date

from aiohttp import web
from shared.names import is_valid_name

from .coverage import Coverage
from .exceptions import RequestError, StorageError
from .export import FORMATS, Exporter, ExportRequest
from .export import LIMIT_DAYS as EXPORT_LIMIT_DAYS
from .history import LIMIT_DAYS, PROFILE_MAX_WEEKS, History, HistoryRequest
from .overview import SORT_KEYS, Overview
from .registry import Registry
from .sites import Site, Sites
from .state import RANGES, REGISTRY, SITES
from .storage.sitedays import SiteDays
from .typical import DEFAULT_WEEKS, MAX_WEEKS, Typical

__all__ = ["ROUTES", "RangeServices", "parse_date"]

logger = logging.getLogger(__name__)

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_INT_RE = re.compile(r"[0-9]{1,3}\Z")  # ASCII only: \d takes any Unicode digit, and int() reads them


def parse_date(text: str, name: str = "date") -> date:
    """A YYYY-MM-DD query value between 2000 and 2099, else a 400 naming the parameter."""
    try:
        if not _DATE_RE.match(text):
            raise ValueError
        day = date.fromisoformat(text)
        if not 2000 <= day.year <= 2099:
            raise ValueError
    except ValueError:
        raise RequestError(400, "bad_date", "%s must be YYYY-MM-DD between 2000 and 2099" % name) from None
    return day


def _choice(request: web.Request, name: str, choices: tuple[str, ...], default: str) -> str:
    value = request.query.get(name, default)
    if value not in choices:
        raise RequestError(400, "bad_" + name, "%s must be one of %s" % (name, ", ".join(choices)))
    return value


def _range(request: web.Request, limit: int, what: str) -> tuple[date, date]:
    missing = [n for n in ("from", "to") if n not in request.query]
    if missing:
        raise RequestError(400, "missing_parameter", "%s is required (YYYY-MM-DD, a local date)" % missing[0])
    first = parse_date(request.query["from"], "from")
    last = parse_date(request.query["to"], "to")
    if last < first:
        raise RequestError(400, "bad_range", "to must not be before from")
    days = (last - first).days + 1
    if days > limit:
        raise RequestError(400, "range_too_long", "%s covers at most %d days (asked %d)" % (what, limit, days))
    return first, last


def _zone(request: web.Request) -> str:
    zone = request.query.get("zone", "")
    if zone and not is_valid_name(zone):
        raise RequestError(400, "bad_zone", "zone must be a camera name (1-64 of A-Z a-z 0-9 _ - .)")
    return zone


@dataclass(frozen=True)
class RangeServices:
    """What the range views read with, available once the schema is known (``app[RANGES]``)."""

    history: History
    overview: Overview
    exporter: Exporter
    typical: Typical

    @classmethod
    def build(cls, days: SiteDays, sites: Sites, registry: Registry) -> RangeServices:
        coverage = Coverage(days.store)  # type: ignore[arg-type]
        typical = Typical(days, coverage)
        return cls(History(days, coverage), Overview(days, sites, registry, coverage, typical), Exporter(days),
                   typical)


async def _site(request: web.Request) -> Site:
    name = request.match_info["site_name"]
    if not is_valid_name(name):
        raise RequestError(400, "bad_site_name",
                           "site names are 1-64 of A-Z a-z 0-9 _ - ., starting with a letter or digit")
    if not await request.app[REGISTRY].is_known(name):
        raise RequestError(404, "unknown_site", "no site %r is configured or has data" % name)
    return request.app[SITES].get(name)


def _services(request: web.Request) -> RangeServices:
    return request.app[RANGES].require()


async def history_handler(request: web.Request) -> web.Response:
    services = _services(request)
    bucket = _choice(request, "bucket", ("hour", "day", "week"), "day")
    first, last = _range(request, LIMIT_DAYS[bucket], "bucket=%s" % bucket)
    compare = request.query.get("compare", "")
    if compare not in ("", "previous"):
        raise RequestError(400, "bad_compare", "compare must be previous")
    zone = _zone(request)
    site = await _site(request)
    doc = await services.history.history(site, HistoryRequest(first, last, bucket, zone, compare == "previous"))
    return web.json_response(doc, headers={"Cache-Control": "no-cache"})


async def profile_handler(request: web.Request) -> web.Response:
    services = _services(request)
    text = request.query.get("weeks", "8")
    if not _INT_RE.match(text) or not 1 <= int(text) <= PROFILE_MAX_WEEKS:
        raise RequestError(400, "bad_weeks", "weeks must be a whole number in 1..%d" % PROFILE_MAX_WEEKS)
    end_text = request.query.get("end")
    end = parse_date(end_text, "end") if end_text is not None else None
    site = await _site(request)
    if end is None:
        end = site.today()
    doc = await services.history.profile(site, int(text), end)
    return web.json_response(doc, headers={"Cache-Control": "no-cache"})


async def typical_handler(request: web.Request) -> web.Response:
    services = _services(request)
    text = request.query.get("weeks", str(DEFAULT_WEEKS))
    if not _INT_RE.match(text) or not 1 <= int(text) <= MAX_WEEKS:
        raise RequestError(400, "bad_weeks", "weeks must be a whole number in 1..%d" % MAX_WEEKS)
    day_text = request.query.get("date")
    day = parse_date(day_text) if day_text is not None else None
    zone = _zone(request)
    site = await _site(request)
    doc = await services.typical.document(site, day or site.today(), int(text), zone)
    return web.json_response(doc, headers={"Cache-Control": "no-cache"})


async def overview_handler(request: web.Request) -> web.Response:
    services = _services(request)
    text = request.query.get("date")
    day = parse_date(text) if text is not None else None
    sort = request.query.get("sort", "site_name")
    descending = sort.startswith("-")
    sort = sort[1:] if descending else sort
    if sort not in SORT_KEYS:
        raise RequestError(400, "bad_sort", "sort must be one of %s, with - in front for descending"
                           % ", ".join(SORT_KEYS))
    doc = await services.overview.document(day, sort, descending)
    return web.json_response(doc, headers={"Cache-Control": "no-cache"})


async def export_handler(request: web.Request) -> web.StreamResponse:
    services = _services(request)
    bucket = _choice(request, "bucket", ("slot", "hour", "day"), "hour")
    fmt = _choice(request, "format", tuple(FORMATS), "csv")
    first, last = _range(request, EXPORT_LIMIT_DAYS, "an export")
    req = ExportRequest(first, last, bucket, fmt, _zone(request))
    site = await _site(request)
    chunks = services.exporter.chunks(site, req)
    # The first chunk before the headers: a failure there is still a JSON error.
    try:
        first_chunk = await chunks.__anext__()
    except StopAsyncIteration:
        first_chunk = b""
    resp = web.StreamResponse(headers={
        "Content-Type": FORMATS[fmt][2],
        "Content-Disposition": 'attachment; filename="%s"' % req.filename(site.name),
        "Cache-Control": "no-cache",
    })
    await resp.prepare(request)
    try:
        await resp.write(first_chunk)
        async for chunk in chunks:
            await resp.write(chunk)
    except StorageError as exc:
        # The status is sent: abort the connection (no final chunk), so the client sees a
        # broken download, never a file that looks complete.
        logger.error("export of %s stopped midway: %s", site.name, exc)
        if request.transport is not None:
            request.transport.abort()
        return resp
    finally:
        await chunks.aclose()
    await resp.write_eof()
    return resp


ROUTES = [
    web.get("/api/v1/history/{site_name}", history_handler),
    web.get("/api/v1/profile/{site_name}", profile_handler),
    web.get("/api/v1/typical/{site_name}", typical_handler),
    web.get("/api/v1/overview", overview_handler),
    web.get("/api/v1/export/{site_name}", export_handler),
]
