"""The kept site-days: ``day_answers``, one row per (site, local day), kept on write.

A row holds the day's answer per (camera, local hour), as the dashboard folds it (peak, events,
trigger counts, slots per source), in parallel arrays, plus the time zone it was cut in, and
peaks and events per zone and the same answer per local hour. The dashboard reads one row per
document and history one per day (by hour its hours, for one zone its cells), instead of
every (camera, slot) with ``FINAL``. A materialized view copies each row, without the cells, into
``day_answers_by_day``, ordered by (day, site): the overview reads one day of every site as
one key range (measured on chDB with 100 sites: 144 ms for the overview's slots, of which
66 ms is ``FINAL`` over 100 key ranges).

**Writes.** :meth:`DayKeeper.refresh` follows :meth:`central.storage.slots.SlotStore.refresh`
(the slot store calls it after keeping the slots' answers): the local days holding the
touched slots are recomputed from ``slot_answers``, one statement per time zone. Each
recomputed day gets its answer (version ``v + 1``), then an empty row (``v``) that only
wins where the day has no answer any more: a day whose slots no longer have any events is
empty, not stale, and a failed statement leaves the last answer, not an empty day.
Versions are the writer's clock read before the statements, as for the slots.

**Crashes.** The live feed's days are kept behind the acknowledgement (:meth:`start`);
at start-up :meth:`catch_up` recomputes the days of every slot kept since the newest day
(less a minute) and since the last build began, so a crash between the two leaves nothing
behind.

**Time zones.** A row records the zone it was cut in. At start-up :meth:`DayKeeper.resync`
recomputes every day of a site whose configured zone differs (a changed sites file), and
every day an earlier version wrote without the cells or the hours (a central rolled back,
then forward).

**Build.** :meth:`DayKeeper.build` computes every day of every site from ``slot_answers``,
7 days per statement per zone (bounded memory), with a progress line; :mod:`central.storage.answers` runs it
after the slots' build.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta

from ..exceptions import StorageError
from ..sites import Sites, local_day
from . import fold
from .schema import TABLES
from .sitedays import KEPT, DayCells
from .slots import Scope, SlotStore, as_counts, unix, version
from .store import Storage

__all__ = ["BY_DAY_TABLE", "BY_DAY_VIEW", "DAYS_TABLE", "DAY_COLUMNS", "DayKeeper", "by_day_view_ddl"]

logger = logging.getLogger(__name__)

DAYS_TABLE = "day_answers"
#: The same rows ordered by (day, site) for the overview, kept by a materialized view.
BY_DAY_TABLE = DAYS_TABLE + "_by_day"
BY_DAY_VIEW = BY_DAY_TABLE + "_mv"
DAY_COLUMNS = ("site_name", "day", "tz", "cams", "hours", "peaks", "events", "cell_triggers", "cell_edge",
               "cell_slots", "triggers", "edge", "raw", "repaired", "zone_cams", "zone_peaks", "zone_events",
               "hour_keys", "hour_peaks", "hour_events", "hour_triggers", "hour_edge", "hour_slots", "ver")
_BUILD_DAYS = 7

# The day's answer per (camera, local hour) of the kept slots, by the day fold
# (central.storage.fold): the cells, then per zone and per local hour from the cells' arrays,
# with the same functions (max, sum, sumMap); one zone per statement (``tz``).
_CELLS = fold.cells_sql("%s", ("site_name", fold.LOCAL_DAY + " AS d", "cam_name", fold.LOCAL_HOUR + " AS h"))
_REFRESH = """
INSERT INTO """ + DAYS_TABLE + """ (site_name, day, tz, cams, hours, peaks, events, cell_triggers, cell_edge,
                                    cell_slots, triggers, edge, raw, repaired,
                                    zone_cams, zone_peaks, zone_events, hour_keys, hour_peaks, hour_events,
                                    hour_triggers, hour_edge, hour_slots, ver)
SELECT site_name, d, {tz:String}, cams, hours, peaks, events, cell_triggers, cell_edge, cell_slots,
       triggers, e, r, p,
       arraySort(arrayDistinct(cams)) AS zc,
       """ + fold.per_key(fold.ARRAY_PEAK, "peaks", "cams", "zc") + """,
       """ + fold.per_key(fold.ARRAY_SUM, "events", "cams", "zc") + """,
       arraySort(arrayDistinct(hours)) AS hk,
       """ + fold.per_key(fold.ARRAY_PEAK, "peaks", "hours", "hk") + """,
       """ + fold.per_key(fold.ARRAY_SUM, "events", "hours", "hk") + """,
       """ + fold.per_key(fold.ARRAY_COUNTS, "cell_triggers", "hours", "hk") + """,
       """ + fold.per_key("toUInt32(%s)" % fold.ARRAY_SUM, "cell_edge", "hours", "hk") + """,
       """ + fold.per_key("toUInt32(%s)" % fold.ARRAY_SUM, "cell_slots", "hours", "hk") + """,
       {ver:UInt64}
FROM (
SELECT site_name, d, groupArray(cam_name) AS cams, groupArray(h) AS hours, groupArray(pk) AS peaks,
       groupArray(ev) AS events, groupArray(tr) AS cell_triggers, groupArray(toUInt32(ce)) AS cell_edge,
       groupArray(toUInt32(ce + cr + cp)) AS cell_slots, """ + fold.counts_of("tr") + """ AS triggers,
       toUInt32(""" + fold.sum_of("ce") + """) AS e, toUInt32(""" + fold.sum_of("cr") + """) AS r,
       toUInt32(""" + fold.sum_of("cp") + """) AS p
FROM (
""" + _CELLS + """
)
GROUP BY site_name, d
)
"""

_READ = ("SELECT cams, hours, peaks, events, triggers, edge, raw, repaired, tz FROM " + DAYS_TABLE
         + " FINAL WHERE site_name = {site:String} AND day = {day:Date}")


def by_day_view_ddl(cluster: str | None) -> str:
    """The materialized view that copies every row written to ``day_answers`` (the keeper's,
    the build's) into ``day_answers_by_day``; in cluster mode from and to the local tables."""
    on = " ON CLUSTER %s" % cluster if cluster else ""
    source, target = (DAYS_TABLE + "_local", BY_DAY_TABLE + "_local") if cluster else (DAYS_TABLE, BY_DAY_TABLE)
    columns = ", ".join(name for name, _ in TABLES[BY_DAY_TABLE].columns)
    return "CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s AS SELECT %s FROM %s" % (
        BY_DAY_VIEW, on, target, columns, source)


class DayKeeper:
    """Keeps ``day_answers`` for the sites' local days (their zones from ``sites``)."""

    def __init__(self, slots: SlotStore, sites: Sites):
        self.slots = slots
        self.store: Storage = slots.store
        self.sites = sites
        self._sql = _REFRESH % slots.merged_sql(Scope.per_site({}))
        self._thread: threading.Thread | None = None  # the live feed's keeper, once started

    # -- the live feed: days kept behind the acknowledgement, coalesced -------------------

    def start(self, on_refreshed: Callable[[str, set[int]], None], coalesce: float = 0.05) -> None:
        """Keep the days of :meth:`submit`'s slots in a thread of its own: writes that come
        within ``coalesce`` seconds share one recomputation, and ``on_refreshed(site, slots)``
        follows it (the dashboard's live path). A failed recomputation is retried."""
        self._on_refreshed = on_refreshed
        self._coalesce = coalesce
        self._pending: dict[str, set[int]] = {}
        self._inflight: dict[str, set[int]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stopping = False
        self._stop = threading.Event()  # ends the wait for more writes at once
        self._thread = threading.Thread(target=self._run, name="day-keeper", daemon=True)
        self._thread.start()

    def submit(self, touched: dict[str, Iterable[int]]) -> None:
        with self._lock:
            for site, slots in touched.items():
                self._pending.setdefault(site, set()).update(slots)
        self._wake.set()

    def pending_days(self, site: str) -> set[date]:
        """The local days of ``site`` with a write submitted and not kept yet: read them from
        the slots, which were kept before the acknowledgement."""
        if self._thread is None:
            return set()
        tz = self.sites.get(site).tz
        with self._lock:
            slots = self._pending.get(site, set()) | self._inflight.get(site, set())
        return {datetime.fromtimestamp(s, tz).date() for s in slots}

    def pending_any(self) -> bool:
        """Whether any submitted write is not kept yet."""
        if self._thread is None:
            return False
        with self._lock:
            return bool(self._pending) or bool(self._inflight)

    def is_pending(self, site: str, day: date) -> bool:
        """Whether ``site``'s local ``day`` is among :meth:`pending_days`."""
        return day in self.pending_days(site)

    def stop(self, timeout: float = 10.0) -> None:
        """Keep what was submitted, then stop."""
        self._stopping = True
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)

    def _run(self) -> None:
        delay = 0.2
        while True:
            self._wake.wait()
            if not self._stopping:
                self._stop.wait(self._coalesce)
            with self._lock:
                pending, self._pending = self._pending, {}
                self._inflight = pending
                self._wake.clear()
            if pending:
                try:
                    self.refresh(pending)
                    delay = 0.2
                except Exception as exc:
                    logger.warning("keeping site-days failed (retrying in %.1f s): %s", delay, exc,
                                   exc_info=not isinstance(exc, StorageError))
                    self.submit(pending)
                    with self._lock:
                        self._inflight = {}
                    if self._stopping:
                        return
                    time.sleep(delay)
                    delay = min(delay * 2, 30.0)
                    continue
                with self._lock:
                    self._inflight = {}
                for site, slots in pending.items():
                    try:
                        self._on_refreshed(site, slots)
                    except Exception:
                        logger.exception("after keeping the days of site %s", site)
            if self._stopping:
                with self._lock:
                    if not self._pending:
                        return

    # -- writing ------------------------------------------------------------------------

    def refresh(self, touched: dict[str, Iterable[int]]) -> None:
        """Recompute the local days holding ``touched`` slots (site -> slot starts): the days
        touched, in runs of consecutive days, never the span between two far-apart writes."""
        rounds: list[dict[str, tuple[date, date]]] = []
        for site, slots in touched.items():
            tz = self.sites.get(site).tz
            local = sorted({datetime.fromtimestamp(s, tz).date() for s in slots})
            runs: list[list[date]] = []
            for d in local:
                if runs and (d - runs[-1][1]).days <= 1:
                    runs[-1][1] = d
                else:
                    runs.append([d, d])
            for i, (first, last) in enumerate(runs):
                if i == len(rounds):
                    rounds.append({})
                rounds[i][site] = (first, last)
        for days in rounds:
            self._recompute_by_week(days)

    def recompute(self, days: dict[str, tuple[date, date]]) -> None:
        """Recompute each site's [first, last] local days."""
        self._recompute_by_week(days)

    def _recompute_by_week(self, days: dict[str, tuple[date, date]]) -> None:
        """:meth:`_recompute` of at most a week of each site per statement, as in the build:
        memory stays bounded however many days were touched (an outbox replayed after a
        week offline, a catch-up at start)."""
        rounds: list[dict[str, tuple[date, date]]] = []
        for site, (first, last) in days.items():
            n = 0
            while first <= last:
                if n == len(rounds):
                    rounds.append({})
                rounds[n][site] = (first, min(last, first + timedelta(days=_BUILD_DAYS - 1)))
                first += timedelta(days=_BUILD_DAYS)
                n += 1
        for chunk in rounds:
            self._recompute(chunk)

    def _recompute(self, days: dict[str, tuple[date, date]], ver: int | None = None) -> None:
        if not days:
            return
        ver = version() if ver is None else ver
        empty, zones = [], {}
        for site, (first, last) in days.items():
            s = self.sites.get(site)
            zones.setdefault(s.timezone, {})[site] = (local_day(first, s.tz)[0], local_day(last, s.tz)[1])
            d = first
            while d <= last:
                empty.append([site, d, s.timezone, [], [], [], [], [], [], [], {}, 0, 0, 0, [], [], [], [], [],
                              [], [], [], [], ver])
                d += timedelta(days=1)
        # The answers first: if a statement fails, the days keep their last answer (and the
        # caller retries), rather than an empty row that beats it.
        for tz, windows in zones.items():
            scope = Scope.per_site(windows)
            self.store.command(self._sql, parameters={**scope.params(), "tz": tz, "ver": ver + 1})
        self.store.insert(DAYS_TABLE, empty, DAY_COLUMNS)

    def recut_spans(self) -> dict[str, tuple[date, date]]:
        """Per site, the span of kept days cut in a zone the sites file no longer gives, or
        written by an earlier version (without the cells or the hours: a central rolled back,
        then forward again)."""
        rows = self.store.query("SELECT site_name, min(day), max(day) FROM " + DAYS_TABLE
                                + " FINAL WHERE tz != transform(site_name, {sites:Array(String)}, {zones:Array(String)}, tz)"
                                " OR length(cell_slots) != length(cams) OR length(hour_slots) != length(hour_keys)"
                                " GROUP BY site_name",
                                parameters=self._zones())
        return {str(site): (first, last) for site, first, last in rows}

    def resync(self) -> int:
        """Recompute the days of :meth:`recut_spans` now; returns how many sites."""
        spans = self.recut_spans()
        for site, (first, last) in spans.items():
            logger.info("site %s: recomputing its kept days %s..%s (cut in another time zone, or by an "
                        "earlier version)", site, first, last)
        # The old zone's days may reach a day further either way than the new zone's.
        self._recompute_by_week({site: (first - timedelta(days=1), last + timedelta(days=1))
                                 for site, (first, last) in spans.items()})
        return len(spans)

    def catch_up(self, margin: float = 60.0, built_from: int = 0) -> int:
        """Recompute the days of slots kept since the last day was (less ``margin`` seconds):
        the live feed's days are kept behind the acknowledgement, so a crash can leave
        some behind their slots. Slots kept before ``built_from`` (a build's start, Unix
        nanoseconds) are in the days the build computed. Returns how many sites."""
        rows = self.store.query("SELECT max(ver) FROM " + DAYS_TABLE)
        newest = int(rows[0][0]) if rows and rows[0][0] else 0
        if not newest:
            return 0
        since = max(0, newest - int(margin * 1e9), built_from)
        rows = self.store.query("SELECT site_name, groupUniqArray(toUInt32(toUnixTimestamp(slot))) FROM slot_answers "
                                "WHERE ver > {since:UInt64} GROUP BY site_name", parameters={"since": since})
        touched = {str(site): {int(s) for s in slots} for site, slots in rows}
        if touched:
            logger.info("site-days: catching up %d site(s) kept behind their slots", len(touched))
            self.refresh(touched)
        return len(touched)

    def _zones(self) -> dict:
        names = sorted(self.sites.configured)
        return {"sites": names, "zones": [self.sites.get(n).timezone for n in names]}

    def build(self, progress: Callable[[int, int, int], None] | None = None) -> int:
        """Compute every day of every site with kept slots; returns the statements run."""
        rows = self.store.query("SELECT site_name, min(slot), max(slot) FROM slot_answers GROUP BY site_name")
        zones: dict[str, dict[str, tuple[int, int]]] = {}
        for site, lo, hi in rows:
            s = self.sites.get(site)
            first = datetime.fromtimestamp(unix(lo), s.tz).date()
            last = datetime.fromtimestamp(unix(hi), s.tz).date()
            zones.setdefault(s.timezone, {})[site] = (first, last)  # type: ignore[assignment]
        pieces = []
        for tz, spans in zones.items():
            first = min(f for f, _ in spans.values())  # type: ignore[type-var]
            last = max(t for _, t in spans.values())  # type: ignore[type-var]
            d = first
            while d <= last:  # type: ignore[operator]
                pieces.append((tz, list(spans), d, min(last, d + timedelta(days=_BUILD_DAYS - 1))))  # type: ignore[operator]
                d += timedelta(days=_BUILD_DAYS)  # type: ignore[operator]
        started = time.monotonic()
        for done, (tz, names, first, last) in enumerate(pieces, 1):
            windows = {}
            for n in names:
                s = self.sites.get(n)
                windows[n] = (local_day(first, s.tz)[0], local_day(last, s.tz)[1])
            scope = Scope.per_site(windows)
            self.store.command(self._sql, parameters={**scope.params(), "tz": tz, "ver": version()})
            if progress is not None:
                progress(done, len(pieces), windows[names[0]][1])
            elif done == len(pieces) or done % 10 == 0:
                logger.info("day answers build: %d/%d chunks, %.0f s", done, len(pieces), time.monotonic() - started)
        return len(pieces)

    # -- reading ------------------------------------------------------------------------

    def day(self, site: str, day: date) -> list[tuple] | None:
        """The day's rows as :data:`central.dashboard.HOURS_SQL` gives them ([] for a day
        without events), or None where the kept day was cut in another zone."""
        return self._rows(site, day, self.store.query(_READ, parameters={"site": site, "day": day},
                                                 settings={"max_threads": 1}))

    def _rows(self, site: str, day: date, rows: list) -> list[tuple] | None:
        if not rows:
            return []
        *arrays, tz = rows[0]
        if tz != self.sites.get(site).timezone:
            return None
        cams, hours, peaks, events, triggers, edge, raw, repaired = arrays
        return DayCells(day, KEPT, list(cams), list(hours), list(peaks), list(events), triggers=as_counts(triggers),
                        edge=int(edge), raw=int(raw), repaired=int(repaired)).rows()

