"""HTTP handlers of the range views: ``/api/v1/history/{site}``, ``/api/v1/profile/{site}``,
``/api/v1/typical/{site}``, ``/api/v1/overview``, ``/api/v1/export/{site}`` and ``/api/v1/zones[/{site}]``.

They parse and check parameters (a bad one is a 400 :class:`RequestError` with its own code,
an unknown site 404), then hand over to :mod:`central.history`, :mod:`central.typical`, :mod:`central.overview`,
:mod:`central.export` and :mod:`central.zones`. Tokens, CORS, metrics and JSON errors come from the app's
middlewares, as for the dashboard.
"""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import date

from aiohttp import web
from shared.names import is_valid_name

from .coverage import Coverage
from .exceptions import RequestError, StorageError
from .export import FORMATS, PIECE_BYTES, Exporter, ExportRequest
from .export import LIMIT_DAYS as EXPORT_LIMIT_DAYS
from .history import LIMIT_DAYS, PROFILE_MAX_WEEKS, History, HistoryRequest
from .http_errors import json_error
from .overview import SORT_KEYS, Overview
from .query import single_values
from .registry import Registry
from .sites import Site, Sites
from .state import CONFIG, METRICS, RANGES, REGISTRY, SITES
from .storage.sitedays import SiteDays
from .typical import DEFAULT_WEEKS, MAX_WEEKS, Typical
from .zones import LIMIT_DAYS as ZONES_LIMIT_DAYS
from .zones import WEEKDAYS, Zones, ZonesRequest, to_csv

__all__ = ["ROUTES", "RangeServices", "parse_date"]

logger = logging.getLogger(__name__)

#: Seconds a client refused for too many exports at once is asked to wait.
EXPORT_RETRY_SECONDS = 5

_DATE_RE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}\Z")
_INT_RE = re.compile(r"[0-9]{1,3}\Z")
_HOURS_RE = re.compile(r"([0-9]{2}):00-([0-9]{2}):00\Z")


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


async def _known_zone(request: web.Request, site: Site, zone: str) -> None:
    """404 unless ``zone`` (if any) is configured for ``site`` or has data there: an unknown
    zone's zeros would read as "nobody there"."""
    if zone and not await request.app[REGISTRY].has_zone(site.name, zone):
        raise RequestError(404, "unknown_zone", "site %r has no zone %r configured or in data" % (site.name, zone))


@dataclass(frozen=True)
class RangeServices:
    """What the range views read with, available once the schema is known (``app[RANGES]``)."""

    history: History
    overview: Overview
    exporter: Exporter
    zones: Zones
    typical: Typical

    @classmethod
    def build(cls, days: SiteDays, sites: Sites, registry: Registry) -> RangeServices:
        coverage = Coverage(days.store)  # type: ignore[arg-type]
        typical = Typical(days, coverage)
        return cls(History(days, coverage), Overview(days, sites, registry, coverage, typical), Exporter(days),
                   Zones(days, coverage, sites, registry), typical)


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
    single_values(request)
    services = _services(request)
    bucket = _choice(request, "bucket", ("hour", "day", "week"), "day")
    first, last = _range(request, LIMIT_DAYS[bucket], "bucket=%s" % bucket)
    compare = request.query.get("compare", "")
    if compare not in ("", "previous"):
        raise RequestError(400, "bad_compare", "compare must be previous")
    zone = _zone(request)
    site = await _site(request)
    await _known_zone(request, site, zone)
    doc = await services.history.history(site, HistoryRequest(first, last, bucket, zone, compare == "previous"))
    return web.json_response(doc, headers={"Cache-Control": "no-cache"})


async def profile_handler(request: web.Request) -> web.Response:
    single_values(request)
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
    single_values(request)
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
    single_values(request)
    services = _services(request)
    bucket = _choice(request, "bucket", ("slot", "hour", "day"), "hour")
    fmt = _choice(request, "format", tuple(FORMATS), "csv")
    first, last = _range(request, EXPORT_LIMIT_DAYS, "an export")
    req = ExportRequest(first, last, bucket, fmt, _zone(request))
    site = await _site(request)
    await _known_zone(request, site, req.zone)
    config = request.app[CONFIG]
    gate = services.exporter.gate
    if not gate.enter(config.max_exports):
        return json_error(503, "busy", "%d exports are running, the most at once (HEATMAP_MAX_EXPORTS); retry "
                          "shortly" % config.max_exports, retry_after=EXPORT_RETRY_SECONDS)
    sent = 0
    chunks = services.exporter.chunks(site, req)
    try:
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
            sent += len(first_chunk)
            await _send(resp, first_chunk, config.export_write_timeout)
            async for chunk in chunks:
                sent += len(chunk)
                await _send(resp, chunk, config.export_write_timeout)
            await asyncio.wait_for(resp.write_eof(), config.export_write_timeout)
        except StorageError as exc:
            # The status is sent: abort the connection (no final chunk), so the client sees a
            # broken download, never a file that looks complete.
            logger.error("export of %s stopped midway: %s", site.name, exc)
            _abort(request)
            return resp
        except asyncio.TimeoutError:
            # The client stopped reading: what waits for it is freed with the connection.
            logger.info("export of %s to %s cut: the client took nothing for %g s", site.name, request.remote,
                        config.export_write_timeout)
            request.app[METRICS].http_timeouts.labels("export").inc()
            _abort(request)
            return resp
        return resp
    finally:
        await chunks.aclose()
        gate.leave(sent)


async def _send(resp: web.StreamResponse, chunk: bytes, timeout: float) -> None:
    """``chunk`` in pieces, each taken by the client (into the socket's buffers) within
    ``timeout`` seconds, else asyncio.TimeoutError; a slow but reading client is never cut."""
    view = memoryview(chunk)
    for i in range(0, len(view), PIECE_BYTES):
        await asyncio.wait_for(resp.write(view[i:i + PIECE_BYTES]), timeout)


def _abort(request: web.Request) -> None:
    if request.transport is not None:
        request.transport.abort()


def _zones_request(request: web.Request) -> ZonesRequest:
    first, last = _range(request, ZONES_LIMIT_DAYS, "a zones report")
    hours = None
    text = request.query.get("hours")
    if text is not None:
        m = _HOURS_RE.match(text)
        start, end = (int(m.group(1)), int(m.group(2)) or 24) if m else (-1, -1)
        if not 0 <= start <= 23 or not 1 <= end <= 24 or start == end:
            raise RequestError(400, "bad_hours", "hours must be HH:00-HH:00 (local, end exclusive, 00-24; "
                                                 "22:00-06:00 wraps midnight)")
        hours = (start, end)
    weekdays = frozenset(range(7))
    text = request.query.get("weekdays")
    if text is not None:
        names = text.split(",")
        if not text or any(n not in WEEKDAYS for n in names):
            raise RequestError(400, "bad_weekdays", "weekdays must be a comma-separated list of %s"
                               % ",".join(WEEKDAYS))
        weekdays = frozenset(WEEKDAYS.index(n) for n in names)
    return ZonesRequest(first, last, hours, weekdays)


def _zones_response(doc: dict, fmt: str, name: str, req: ZonesRequest) -> web.Response:
    if fmt == "json":
        return web.json_response(doc, headers={"Cache-Control": "no-cache"})
    filename = "%s_%s_%s_zones.csv" % (name, req.first, req.last)
    return web.Response(body=to_csv(doc["zones"], doc.get("site_name")), headers={
        "Content-Type": "text/csv; charset=utf-8",
        "Content-Disposition": 'attachment; filename="%s"' % filename,
        "Cache-Control": "no-cache",
    })


async def zones_handler(request: web.Request) -> web.Response:
    single_values(request)
    services = _services(request)
    fmt = _choice(request, "format", ("json", "csv"), "json")
    req = _zones_request(request)
    site = await _site(request)
    doc = await services.zones.site(site, req)
    return _zones_response(doc, fmt, site.name, req)


async def all_zones_handler(request: web.Request) -> web.Response:
    single_values(request)
    services = _services(request)
    fmt = _choice(request, "format", ("json", "csv"), "json")
    req = _zones_request(request)
    doc = await services.zones.all_sites(req)
    return _zones_response(doc, fmt, "all_sites", req)


ROUTES = [
    web.get("/api/v1/history/{site_name}", history_handler),
    web.get("/api/v1/profile/{site_name}", profile_handler),
    web.get("/api/v1/typical/{site_name}", typical_handler),
    web.get("/api/v1/overview", overview_handler),
    web.get("/api/v1/export/{site_name}", export_handler),
    web.get("/api/v1/zones", all_zones_handler),
    web.get("/api/v1/zones/{site_name}", zones_handler),
]
