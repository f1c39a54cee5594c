"""The dashboard answer for one site and one local day, and its cache.

Per (camera, 15-minute slot) the answer takes, in this order: raw ``camera_events`` if the
slot is pinned in ``slot_repairs``; else the edge aggregates (``slot_states``, highest
revision per device, summed over devices, peak the max); else raw ``camera_events``. The
work is set-based: three GROUP BY queries per request (edge, repairs, raw), run
concurrently, then a merge in Python over at most cameras x 100 slots.

Answers are cached per (site, date) as ready JSON bytes. Writers invalidate the dates they
touch; a time-to-live covers raw rows that land through other ingestion paths (short for
recent days, longer for old ones). Concurrent misses for one key share one computation, as
long as no write invalidated the key since it started; it runs as a task of its own, so a
caller that is cancelled does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Iterable
from datetime import date, datetime, timezone

from .schema import RawTime
from .sites import Site, Sites, intensity, local_day
from .store import Store

__all__ = ["Dashboard", "DashboardCache", "choose_slots", "compute", "iso_utc"]

logger = logging.getLogger(__name__)

EDGE_SQL = """
SELECT cam_name, toUInt32(toUnixTimestamp(slot)) AS s,
       max(st.1) AS peak, sum(st.2) AS events, sumMap(st.3) AS triggers
FROM (
    SELECT device_id, cam_name, slot, argMax((peak, events, triggers), rev) AS st
    FROM slot_states
    WHERE site_name = {site:String}
      AND slot >= toDateTime({start:UInt32}, 'UTC') AND slot < toDateTime({end:UInt32}, 'UTC')
    GROUP BY device_id, cam_name, slot
)
GROUP BY cam_name, slot
"""

REPAIRS_SQL = """
SELECT DISTINCT cam_name, toUInt32(toUnixTimestamp(slot))
FROM slot_repairs
WHERE site_name = {site:String}
  AND slot >= toDateTime({start:UInt32}, 'UTC') AND slot < toDateTime({end:UInt32}, 'UTC')
"""

RAW_SQL = """
SELECT cam_name, %(slot)s AS s, max(people_count), count(),
       sumMap(event_triggers, arrayMap(t -> toUInt64(1), event_triggers))
FROM camera_events
WHERE site_name = {site:String} AND %(where)s
GROUP BY cam_name, s
"""


def iso_utc(ts: float, millis: bool = False) -> str:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    if millis:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def _raw_triggers(value) -> dict[str, int]:
    if isinstance(value, dict):
        return value
    keys, counts = value
    return dict(zip(keys, counts, strict=True))


def choose_slots(edge: Iterable, repairs: Iterable, raw: Iterable) -> dict[tuple[str, int], tuple[int, int, dict, str]]:
    """The slot rule: (camera, slot) -> (peak, events, triggers, source) from the three
    query results (pinned slots from raw, else edge, else raw)."""
    pinned = {(cam, int(slot)) for cam, slot in repairs}
    chosen: dict[tuple[str, int], tuple[int, int, dict, str]] = {}
    for cam, slot, peak, events, triggers in edge:
        key = (cam, int(slot))
        if key not in pinned:
            chosen[key] = (int(peak), int(events), triggers or {}, "edge")
    for cam, slot, peak, events, triggers in raw:
        key = (cam, int(slot))
        if key in pinned:
            chosen[key] = (int(peak), int(events), _raw_triggers(triggers), "repaired")
        elif key not in chosen:
            chosen[key] = (int(peak), int(events), _raw_triggers(triggers), "raw")
    return chosen


def compute(site: Site, day: date, edge: Iterable, repairs: Iterable, raw: Iterable,
            now: float | None = None) -> dict:
    """Merge the three query results into the dashboard document (pure; tested directly)."""
    tz = site.tz
    start, end = local_day(day, tz)
    chosen = choose_slots(edge, repairs, raw)

    hour_of: dict[int, int] = {}
    zones: dict[str, list[int]] = {}
    hourly: dict[int, int] = {}
    zone_hourly: dict[str, dict[int, list[int]]] = {}
    triggers_total: dict[str, int] = {}
    counts = {"edge": 0, "raw": 0, "repaired": 0}
    total = 0
    for (cam, slot), (peak, events, triggers, source) in sorted(chosen.items()):
        if events <= 0:
            continue
        counts[source] += 1
        total += events
        hour = hour_of.get(slot)
        if hour is None:
            hour = hour_of[slot] = datetime.fromtimestamp(slot, tz).hour
        zone = zones.setdefault(cam, [0, 0])
        zone[0] = max(zone[0], peak)
        zone[1] += events
        hourly[hour] = max(hourly.get(hour, 0), peak)
        zh = zone_hourly.setdefault(cam, {}).setdefault(hour, [0, 0])
        zh[0] = max(zh[0], peak)
        zh[1] += events
        for name, n in triggers.items():
            if n:
                triggers_total[name] = triggers_total.get(name, 0) + int(n)

    served = sum(counts.values())
    if not served:
        source = "none"
    elif counts["edge"] == served:
        source = "edge"
    elif counts["edge"] == 0:
        source = "raw"
    else:
        source = "mixed"
    critical = dict(sorted(triggers_total.items()))
    critical["total_events"] = total
    zone_names = {cam: z.display_name for cam, z in site.zones.items()}
    for cam in zones:
        zone_names.setdefault(cam, site.zone(cam).display_name)
    return {
        "site_name": site.name,
        "date": day.isoformat(),
        "zones": {
            cam: {"peak": p, "events": e, "intensity": intensity(p, site.zone(cam).thresholds)}
            for cam, (p, e) in sorted(zones.items())
        },
        "hourly": [
            {"hour": h, "count": c, "intensity": intensity(c, site.thresholds)}
            for h, c in sorted(hourly.items())
        ],
        "critical_events": critical,
        "zone_hourly": {
            cam: [
                {"hour": h, "count": c, "events": e, "intensity": intensity(c, site.zone(cam).thresholds)}
                for h, (c, e) in sorted(hours.items())
            ]
            for cam, hours in sorted(zone_hourly.items())
        },
        "meta": {
            "source": source,
            "coverage": round(counts["edge"] / served, 4) if served else 0.0,
            "timezone": site.timezone,
            "day_start": iso_utc(start),
            "day_end": iso_utc(end),
            "hours": (end - start) // 3600,
            "computed_at": iso_utc(time.time() if now is None else now, millis=True),
            "slots": counts,
            "zone_names": zone_names,
        },
    }


class DashboardCache:
    """Ready answers per (site, date) with a time to live; bounded, oldest dropped first.

    Versions come from one counter that only grows, so a computation that captured a
    version before an invalidation can never match again, even after the version table is
    trimmed (trimmed keys read as the counter's value at the trim).
    """

    def __init__(self, ttl: float, ttl_past: float, max_entries: int = 20000):
        self.ttl = ttl
        self.ttl_past = ttl_past
        self.max_entries = max_entries
        self._entries: dict[tuple[str, str], tuple[float, bytes]] = {}
        self._versions: dict[tuple[str, str], int] = {}
        self._counter = 0
        self._floor = 0  # the version of every key not in _versions

    def ttl_for(self, day: date) -> float:
        age_days = (datetime.now(timezone.utc).date() - day).days
        return self.ttl_past if age_days > 2 else self.ttl

    def get(self, key: tuple[str, str]) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        if entry[0] < time.monotonic():
            self._entries.pop(key, None)
            return None
        return entry[1]

    def version(self, key: tuple[str, str]) -> int:
        return self._versions.get(key, self._floor)

    def put(self, key: tuple[str, str], body: bytes, ttl: float, version: int) -> None:
        if ttl <= 0 or self.version(key) != version:
            return  # invalidated while it was being computed
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (time.monotonic() + ttl, body)

    def invalidate(self, site: str, day: str) -> None:
        key = (site, day)
        self._entries.pop(key, None)
        self._counter += 1
        if len(self._versions) >= 4 * self.max_entries:
            # Every version handed out so far is below the counter: none matches again.
            self._versions.clear()
            self._floor = self._counter
        else:
            self._versions[key] = self._counter

    def __len__(self) -> int:
        return len(self._entries)


class Dashboard:
    """Computes and caches dashboard answers; lives on the event loop of the app."""

    def __init__(self, store: Store, sites: Sites, raw_time: RawTime, cache: DashboardCache):
        self.store = store
        self.sites = sites
        self.raw_time = raw_time
        self.cache = cache
        self._inflight: dict[tuple[str, str], tuple[int, asyncio.Task]] = {}
        self._raw_sql = RAW_SQL % {"slot": raw_time.slot, "where": raw_time.where()}
        self.hits = 0
        self.misses = 0

    async def answer(self, site_name: str, day: date) -> bytes:
        key = (site_name, day.isoformat())
        body = self.cache.get(key)
        if body is not None:
            self.hits += 1
            return body
        version = self.cache.version(key)
        pending = self._inflight.get(key)
        if pending is None or pending[0] != version:
            # None in flight, or the one in flight started before an invalidation.
            self.misses += 1
            task = asyncio.create_task(self._compute(key, site_name, day, version))
            task.add_done_callback(_retrieve)
            pending = self._inflight[key] = (version, task)
        # The computation is a task of its own: a caller cancelled leaves it to the others.
        return await asyncio.shield(pending[1])

    async def _compute(self, key: tuple[str, str], site_name: str, day: date, version: int) -> bytes:
        try:
            doc = await self.document(site_name, day)
            body = json.dumps(doc, separators=(",", ":")).encode()
            self.cache.put(key, body, self.cache.ttl_for(day), version)
            return body
        finally:
            entry = self._inflight.get(key)
            if entry is not None and entry[1] is asyncio.current_task():
                del self._inflight[key]

    async def document(self, site_name: str, day: date) -> dict:
        site = self.sites.get(site_name)
        start, end = local_day(day, site.tz)
        return compute(site, day, *await self._rows(site_name, start, end))

    async def _rows(self, site_name: str, start: int, end: int) -> tuple[list, list, list]:
        params = {"site": site_name, "start": start, "end": end}
        edge, repairs, raw = await asyncio.gather(
            self.store.aquery(EDGE_SQL, params),
            self.store.aquery(REPAIRS_SQL, params),
            self.store.aquery(self._raw_sql, params),
        )
        return edge, repairs, raw

    async def slots(self, site_name: str, start: int, end: int) -> dict[tuple[str, int], tuple[int, int, dict, str]]:
        """Per (camera, slot) in [start, end) the values the dashboard shows (alert rules)."""
        return choose_slots(*await self._rows(site_name, start, end))

    def invalidate_slots(self, site_name: str, slots: Iterable[int]) -> None:
        """Drop cached days of ``site_name`` that hold any of ``slots`` (Unix seconds)."""
        tz = self.sites.get(site_name).tz
        for day in {datetime.fromtimestamp(s, tz).date().isoformat() for s in slots}:
            self.cache.invalidate(site_name, day)
            self._inflight.pop((site_name, day), None)  # later requests must not join it


def _retrieve(task: asyncio.Task) -> None:
    """Marks a computation's exception retrieved when every caller has gone."""
    if not task.cancelled():
        task.exception()
