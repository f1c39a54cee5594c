"""The dashboard answer for one site and one local day, and its cache.

Per (camera, 15-minute slot) the answer is what the slot rule of :mod:`central.storage.slots`
chooses (pinned: raw; else edge states; else raw). One statement per document: the slot
store's merged slots, bucketed by the site's local hour in ClickHouse, then a fold in
Python over at most cameras x 25 rows (:func:`compute`).

Answers are cached per (site, date) as ready JSON bytes. Writers invalidate the dates they
touch (through ``on_data``), and a day someone is watching is recomputed right away, ahead
of the next poll (:meth:`Dashboard.on_data`); a time-to-live covers raw rows that land
through other ingestion paths (short for recent days, longer for old ones); an answer
past it that no write has invalidated is served a moment longer, while the next is
computed (:meth:`DashboardCache.stale`). Concurrent misses for one key share one computation, as
long as no write invalidated the key since it started; it runs as a task of its own, so a
caller that is cancelled does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timezone

from .now import add_now, ttl_cap
from .sites import Site, Sites, data_range, intensity, local_day
from .storage import fold
from .storage.fold import DayFold
from .storage.sitedays import SiteDays

__all__ = ["Dashboard", "DashboardCache", "compute", "iso_utc"]

logger = logging.getLogger(__name__)

#: A (site, day) asked for within this many seconds is recomputed as soon as data for it is
#: written (the live path); others are only invalidated.
WATCH_SECONDS = 60.0
#: Writes to one watched day within this many seconds share one recomputation.
REFRESH_DELAY = 0.05
#: A watched day's answer from before a write is still served this long after it, while
#: the new one is computed: a poll never waits for the engine behind a write, and no answer
#: is older than the last acknowledged write plus this (the bound is 1 s).
LIVE_GRACE = 0.3

# The slot rule's per-slot answer bucketed by the site's local hour, in ClickHouse: the day
# fold's cells (central.storage.fold), which Python folds (at most cameras x 25 rows). The
# site-days reader serves the same cells kept; this statement is what they are checked against.
HOURS_SQL = fold.cells_sql("%s", ("cam_name", fold.LOCAL_HOUR + " AS hour"))


_SMALL_READ = {"max_threads": 1}


def iso_utc(ts: float, millis: bool = False) -> str:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    if millis:
        return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)
    return dt.strftime("%Y-%m-%dT%H:%M:%SZ")


def compute(site: Site, day: date, hours: Iterable, now: float | None = None) -> dict:
    """The dashboard document of the per-(camera, local hour) rows of :data:`HOURS_SQL`,
    by the day fold (:class:`central.storage.fold.DayFold`; pure, tested directly)."""
    start, end = local_day(day, site.tz)
    folded = DayFold.of_cells(hours)
    counts = {"edge": folded.edge, "raw": folded.raw, "repaired": folded.repaired}
    served = folded.slots
    critical = dict(sorted(folded.triggers.items()))
    critical["total_events"] = folded.events
    zones = folded.zones
    zone_names = {cam: z.display_name for cam, z in site.zones.items()}
    limits = {cam: site.zone(cam).thresholds for cam in zones}  # one lookup per camera
    caps = site.capacities
    for cam in zones:
        zone_names.setdefault(cam, cam)
    return {
        "site_name": site.name,
        "date": day.isoformat(),
        "zones": {
            cam: _share({"peak": p, "events": folded.zone_events[cam], "intensity": intensity(p, limits[cam])}, p,
                        caps.get(cam))
            for cam, p in sorted(zones.items())
        },
        "hourly": [
            {"hour": h, "count": c, "intensity": intensity(c, site.thresholds)}
            for h, c in sorted(folded.hours.items())
        ],
        "critical_events": critical,
        "zone_hourly": {
            cam: [
                _share({"hour": h, "count": c, "events": e, "intensity": intensity(c, limits[cam])}, c, caps.get(cam))
                for h, (c, e) in sorted(by_hour.items())
            ]
            for cam, by_hour in sorted(folded.zone_hours.items())
        },
        "meta": {
            "source": folded.source,
            "coverage": round(folded.edge / served, 4) if served else 0.0,
            "timezone": site.timezone,
            "day_start": iso_utc(start),
            "day_end": iso_utc(end),
            "hours": day_hours(end - start),
            "computed_at": iso_utc(time.time() if now is None else now, millis=True),
            "slots": counts,
            "zone_names": zone_names,
            # What hourly[].count is: the busiest zone's peak in that hour (the handoff's
            # max(people_count) over the site), not all zones together.
            "sitewide": "busiest_zone",
        },
    }


def _share(entry: dict, people: int, capacity: int | None) -> dict:
    """``entry`` with ``utilisation`` (people / capacity) where the zone has a capacity."""
    share = fold.share(people, capacity)
    if share is not None:
        entry["utilisation"] = round(share, 4)
    return entry


def day_hours(seconds: int) -> int | float:
    """The real length of a local day in hours: 24, or 23/25 on DST days, and 23.5/24.5
    where the clock moves by half an hour (Australia/Lord_Howe); whole numbers stay ints."""
    hours = seconds / 3600
    return int(hours) if hours.is_integer() else hours


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
        self._entries: dict[tuple[str, str], tuple[float, bytes, int]] = {}  # expiry, body, version
        self._versions: dict[tuple[str, str], int] = {}
        self._counter = 0
        self._floor = 0  # the version of every key not in _versions

    def ttl_for(self, day: date) -> float:
        age_days = (datetime.now(timezone.utc).date() - day).days
        return self.ttl_past if age_days > 2 else self.ttl

    def get(self, key: tuple[str, str]) -> bytes | None:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def stale(self, key: tuple[str, str], grace: float) -> bytes | None:
        """An answer past its time to live by at most ``grace`` seconds that no write has
        invalidated since it was computed (the time to live only bounds rows that land
        without telling us)."""
        entry = self._entries.get(key)
        if entry is None or entry[2] != self.version(key) or time.monotonic() - entry[0] > grace:
            return None
        return entry[1]

    def version(self, key: tuple[str, str]) -> int:
        return self._versions.get(key, self._floor)

    def is_current(self, key: tuple[str, str]) -> bool:
        """Whether a live entry was computed after the last invalidation of its key."""
        entry = self._entries.get(key)
        return entry is not None and entry[0] >= time.monotonic() and entry[2] == self.version(key)

    def put(self, key: tuple[str, str], body: bytes, ttl: float, version: int) -> None:
        if ttl <= 0 or self.version(key) != version:
            return  # invalidated while it was being computed
        if len(self._entries) >= self.max_entries:
            self._entries.pop(next(iter(self._entries)))
        self._entries[key] = (time.monotonic() + ttl, body, version)

    def invalidate(self, site: str, day: str, grace: float = 0.0) -> None:
        """New data for (site, day): its answer is out of date. With ``grace`` the old one is
        still served for that many seconds, while the new one is computed."""
        key = (site, day)
        entry = self._entries.pop(key, None)
        if entry is not None and grace > 0:
            self._entries[key] = (min(entry[0], time.monotonic() + grace), entry[1], entry[2])
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

    def __init__(self, days: SiteDays, sites: Sites, cache: DashboardCache,
                 live: Callable[[], bool] = lambda: False):
        self.days = days
        self.slots = slots = days.slots
        # Whether the write being told is of the live feed (its watched days keep their
        # answer for LIVE_GRACE); other writers' clients read their own writes at once.
        self.live = live
        self.store = slots.store
        self.sites = sites
        self.cache = cache
        self._inflight: dict[tuple[str, str], tuple[int, asyncio.Task]] = {}
        self._watched: dict[tuple[str, str], float] = {}  # key -> when it was last asked for
        self._refresh_due: set[tuple[str, str]] = set()
        self.hits = 0
        self.misses = 0
        self.refreshes = 0

    async def answer(self, site_name: str, day: date) -> bytes:
        key = (site_name, day.isoformat())
        self._watch(key)
        body = self.cache.get(key)
        if body is not None:
            self.hits += 1
            return body
        version = self.cache.version(key)
        pending = self._inflight.get(key)
        if pending is None or pending[0] != version:
            # None in flight, or the one in flight started before an invalidation.
            self.misses += 1
            pending = self._start(key, site_name, day, version)
        # Only its time to live ran out (no write since): that answer, while the new one is
        # computed. Watched days' answers all expire together (their agents publish on one
        # beat), and polls waiting for 100 computations at once were the live tail.
        body = self.cache.stale(key, LIVE_GRACE)
        if body is not None:
            return body
        # The computation is a task of its own: a caller cancelled leaves it to the others.
        return await asyncio.shield(pending[1])

    def _start(self, key: tuple[str, str], site_name: str, day: date, version: int) -> tuple[int, asyncio.Task]:
        task = asyncio.create_task(self._compute(key, site_name, day, version))
        task.add_done_callback(_retrieve)
        pending = self._inflight[key] = (version, task)
        return pending

    def _watch(self, key: tuple[str, str]) -> None:
        now = time.monotonic()
        self._watched[key] = now
        if len(self._watched) > self.cache.max_entries:
            cutoff = now - WATCH_SECONDS
            self._watched = {k: t for k, t in self._watched.items() if t >= cutoff}

    async def _compute(self, key: tuple[str, str], site_name: str, day: date, version: int) -> bytes:
        try:
            site = self.sites.get(site_name)
            started = time.time()
            body = await self.store.arun(self._body, site, day)
            # Today's answer holds ``now``: it lives at most to the end of its slot.
            ttl = ttl_cap(site, day, self.cache.ttl_for(day), started) - (time.time() - started)
            self.cache.put(key, body, ttl, version)
            return body
        finally:
            entry = self._inflight.get(key)
            if entry is not None and entry[1] is asyncio.current_task():
                del self._inflight[key]

    async def document(self, site_name: str, day: date) -> dict:
        return await self.store.arun(self._document, self.sites.get(site_name), day)

    def _body(self, site: Site, day: date) -> bytes:
        return json.dumps(self._document(site, day), separators=(",", ":")).encode()

    def _document(self, site: Site, day: date) -> dict:
        """In a store thread: the statements, the fold and the JSON stay off the event loop,
        where many documents made at once (100 sites' today on the live benchmark) held the
        polls back (live p99 16 to 12-14 ms, with a client per thread)."""
        # The reader decides how the day is read (kept, pending, recut, behind its sources).
        cells = self.days.day(site.name, day)
        rows = cells.rows()
        doc = compute(site, day, rows)
        doc["meta"]["read"] = cells.read
        add_now(doc, site, day, self.days)
        if not doc["zones"] and not doc["critical_events"]["total_events"]:
            # An empty day: say where the site's data lies ("nobody there" or "before the data").
            span = self.days.data_range(site.name)
            doc["meta"]["data_range"] = data_range(site, span)
        return doc

    async def slot_values(self, site_name: str, start: int, end: int) -> dict[tuple[str, int], tuple[int, int, dict, str]]:
        """Per (camera, slot) in [start, end) what the dashboard counts, by the slot rule:
        (peak, events, triggers, source). Alert rules judge written slots with it."""
        return await self.days.slot_values(site_name, start, end)

    def invalidate_slots(self, site_name: str, slots: Iterable[int]) -> list[date]:
        """Drop cached days of ``site_name`` that hold any of ``slots`` (Unix seconds);
        returns those days. After a write of the live feed, a day someone watches keeps
        its answer for :data:`LIVE_GRACE` seconds, while :meth:`on_data` recomputes it."""
        tz = self.sites.get(site_name).tz
        days = sorted({datetime.fromtimestamp(s, tz).date() for s in slots})
        now = time.monotonic()
        for day in days:
            key = (site_name, day.isoformat())
            seen = self._watched.get(key)
            watched = seen is not None and now - seen <= WATCH_SECONDS
            self.cache.invalidate(site_name, day.isoformat(), LIVE_GRACE if watched and self.live() else 0.0)
            self._inflight.pop(key, None)  # later requests must not join it
        return days

    def on_data(self, site_name: str, slots: Iterable[int]) -> None:
        """The live path (an ``on_data`` callback): the touched days are dropped, and those
        someone asked for in the last :data:`WATCH_SECONDS` are recomputed at once from
        the rows just stored; until the new answer is ready (at most :data:`LIVE_GRACE`
        seconds) pollers get the previous one, then they join the computation."""
        now = time.monotonic()
        for day in self.invalidate_slots(site_name, slots):
            key = (site_name, day.isoformat())
            seen = self._watched.get(key)
            if seen is not None and now - seen <= WATCH_SECONDS and key not in self._refresh_due:
                # A burst of writes (one per consumer batch) costs one computation.
                self._refresh_due.add(key)
                asyncio.get_running_loop().call_later(REFRESH_DELAY, self._refresh, key, site_name, day)

    def _refresh(self, key: tuple[str, str], site_name: str, day: date) -> None:
        self._refresh_due.discard(key)
        version = self.cache.version(key)
        pending = self._inflight.get(key)
        if not self.cache.is_current(key) and (pending is None or pending[0] != version):
            self.refreshes += 1
            self._start(key, site_name, day, version)


def _retrieve(task: asyncio.Task) -> None:
    """Marks a computation's exception retrieved when every caller has gone."""
    if not task.cancelled():
        task.exception()
