"""One site over a range of local days: the history series (hour, day or ISO-week buckets,
optionally against the period just before) and the hour-of-week profile.

Where the site-days are kept (:mod:`central.storage.days`), history reads them: by day or week for
all zones from each day's summary, by hour for all zones from each day's hours (unfolded
in Python, with the utilisation from the cells' peaks), else from its (camera, local hour)
cells, and the days of a clock change of an hour series from the slots. Otherwise (and the
profile) it reads the slot store's merged slots (:meth:`central.storage.slots.SlotStore.merged_sql`)
and buckets them in ClickHouse by the site's local time (:mod:`central.buckets`), one row
per bucket (the busiest zone's utilisation too, with capacities passed as parameters).
Slots with no events count for nothing, as on the dashboard. Coverage per bucket comes
from :mod:`central.coverage`, read beside the series (a second statement at once).
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import date, timedelta

from .buckets import EPOCH, OFFSET_SQL, Bucket, day_offsets, enumerate_buckets, hour_key, key_sql
from .coverage import Coverage
from .exceptions import StorageError
from .sites import Site, data_range, intensity, local_day
from .storage import fold
from .storage.days import DAYS_TABLE
from .storage.sitedays import BEHIND, SiteDays
from .storage.slots import Scope, as_counts, source_label
from .storage.store import Store

__all__ = ["History", "HistoryRequest", "LIMIT_DAYS", "PROFILE_MAX_WEEKS"]

logger = logging.getLogger(__name__)

#: ClickHouse's SIZES_OF_ARRAYS_DONT_MATCH: an ARRAY JOIN of a row whose arrays differ in length.
_ARRAYS_DIFFER = 190

#: The longest range per bucket kind, in local days.
LIMIT_DAYS = {"hour": 31, "day": 366, "week": 366}
PROFILE_MAX_WEEKS = 52

# Per bucket, by the day fold (central.storage.fold): the site's (or the zone's) peak, the
# busiest zone's share of its capacity (zones without one have cap 0), events, triggers and
# slot sources.
_SERIES_SQL = """
SELECT toInt64(k) AS b_k, toUInt64(""" + fold.PEAK + """) AS b_peak, """ + fold.share_sql() + """ AS b_util,
       toUInt64(""" + fold.EVENTS + """) AS b_events, """ + fold.TRIGGERS + """ AS b_triggers,
       toUInt64(""" + fold.EDGE + """) AS b_edge, toUInt64(""" + fold.SLOTS + """) AS b_slots
FROM (
    SELECT slot, peak, events, triggers, source, %(off)s AS off, %(key)s AS k,
           transform(toString(cam_name), {cap_zones:Array(String)}, {cap_values:Array(UInt32)}, toUInt32(0)) AS cap
    FROM (%(merged)s)
    WHERE """ + fold.COUNTED + """ AND ({zone:String} = '' OR cam_name = {zone:String})
      AND (empty({only:Array(Date)}) OR has({only:Array(Date)}, toDate(toDateTime(slot, {tz:String}))))
)
GROUP BY k
"""

# The same per local day or ISO week from the kept site-days (central.storage.days): 366 rows of a
# site instead of every (camera, slot) of its year (all zones; one zone reads the cells).
# ``dn`` is the local day's number; a day's peak and utilisation are its busiest zone's (the
# day fold's array forms, central.storage.fold), then max and sum over the bucket's days.
_CAP = "transform(toString(c), {cap_zones:Array(String)}, {cap_values:Array(UInt32)}, toUInt32(0))"
_DAY_SERIES_SQL = """
SELECT toInt64(%(key)s) AS b_k, toUInt64(""" + fold.peak_of("dp") + """) AS b_peak, max(du) AS b_util,
       toUInt64(""" + fold.sum_of("de") + """) AS b_events, """ + fold.TRIGGERS + """ AS b_triggers,
       toUInt64(""" + fold.sum_of("edge") + """) AS b_edge, toUInt64(""" + fold.sum_of("edge + raw + repaired") + """) AS b_slots
FROM (
    SELECT toInt64(day) AS dn, """ + fold.array_peak("zone_peaks") + """ AS dp, """ + fold.ARRAY_SUM % "zone_events" + """ AS de,
           """ + fold.array_share("zone_cams", "zone_peaks", "%(cap)s") + """ AS du,
           triggers, edge, raw, repaired
    FROM """ + DAYS_TABLE + """ FINAL
    WHERE site_name = {site:String} AND day >= {first:Date} AND day <= {last:Date} AND tz = {tz:String}
      AND NOT has({skip:Array(Date)}, day)
)
WHERE edge + raw + repaired > 0
GROUP BY b_k
"""
_DAY_KEYS = {"day": "dn", "week": "intDiv(dn + 3, 7)"}

# Per (camera, local hour) of the kept site-days, for one zone or all: by local day or ISO
# week, or by local hour since 1970 (``dn * 24 + h``; part 4 rows, which Python turns into
# hour keys with the day's offset). Days in ``skip`` (clock changes, where a local hour
# may be two real hours) are left to the slots. The cells are the day fold's (pk, ev, tr, ce,
# cn: central.storage.fold), folded again with the same functions.
_CELLS_SQL = """
SELECT toInt64(%(key)s) AS b_k, toUInt64(""" + fold.peak_of("pk") + """) AS b_peak, """ + fold.share_sql("pk") + """ AS b_util,
       toUInt64(""" + fold.sum_of("ev") + """) AS b_events, """ + fold.counts_of("tr") + """ AS b_triggers,
       toUInt64(""" + fold.sum_of("ce") + """) AS b_edge, toUInt64(""" + fold.sum_of("cn") + """) AS b_slots
FROM (
    SELECT toInt64(day) AS dn, h, pk, ev, tr, ce, cn, %(cap)s AS cap
    FROM (
        SELECT day, cams, hours, peaks, events, cell_triggers, cell_edge, cell_slots
        FROM """ + DAYS_TABLE + """ FINAL
        WHERE site_name = {site:String} AND day >= {first:Date} AND day <= {last:Date} AND tz = {tz:String}
          AND NOT has({skip:Array(Date)}, day)
    )
    ARRAY JOIN cams AS c, hours AS h, peaks AS pk, events AS ev, cell_triggers AS tr, cell_edge AS ce,
               cell_slots AS cn
    WHERE {zone:String} = '' OR c = {zone:String}
)
GROUP BY b_k
"""
_CELL_KEYS = {"hour": "dn * 24 + h", **_DAY_KEYS}

# All zones by hour: each kept day's per-hour answer, and the cells' peaks for utilisation
# (a site with capacities), unfolded in Python. A plain read: ClickHouse spends more time
# planning the ARRAY JOIN, lambdas and GROUP BY of the cells than running them (measured on
# chDB, 31 days: 6.6 ms to read these rows, 21 ms to group the cells by hour).
_HOURS_SQL = """
SELECT toInt64(day), hour_keys, hour_peaks, hour_events, hour_triggers, hour_edge, hour_slots%(cells)s
FROM """ + DAYS_TABLE + """ FINAL
WHERE site_name = {site:String} AND day >= {first:Date} AND day <= {last:Date} AND tz = {tz:String}
  AND NOT has({skip:Array(Date)}, day)
"""


# Per local (day, hour): the site's peak; then per (weekday, hour) over those days.
_PROFILE_SQL = """
SELECT (d + 3) %% 7 AS weekday, h, count() AS days, max(p), avg(p),
       groupUniqArray(toInt64(intDiv(d - {first_day:Int64}, 7))) AS weeks
FROM (
    SELECT intDiv(toInt64(slot) + off, 86400) AS d, intDiv(toInt64(slot) + off, 3600) %% 24 AS h,
           """ + fold.PEAK + """ AS p
    FROM (SELECT slot, peak, %(off)s AS off FROM (%(merged)s) WHERE """ + fold.COUNTED + """)
    GROUP BY d, h
)
GROUP BY weekday, h
"""


@dataclass(frozen=True)
class HistoryRequest:
    first: date
    last: date
    bucket: str
    zone: str = ""
    compare: bool = False


class _Acc:
    """One bucket being folded."""

    __slots__ = ("edge", "events", "peak", "slots", "triggers", "util")

    def __init__(self, peak: int = 0, util: float = 0.0, events: int = 0, triggers: dict[str, int] | None = None,
                 edge: int = 0, slots: int = 0) -> None:
        self.peak = peak
        self.util = util
        self.events = events
        self.triggers: dict[str, int] = {} if triggers is None else triggers
        self.edge = edge
        self.slots = slots

    def add(self, peak: int, util: float, events: int, triggers, edge: int, slots: int) -> None:
        self._add(peak, util, events, as_counts(triggers), edge, slots)

    def merge(self, other: _Acc) -> None:
        self._add(other.peak, other.util, other.events, other.triggers, other.edge, other.slots)

    def _add(self, peak: int, util: float, events: int, counts: dict[str, int], edge: int, slots: int) -> None:
        if peak > self.peak:
            self.peak = peak
        if util > self.util:
            self.util = util
        self.events += events
        for name, n in counts.items():
            self.triggers[name] = self.triggers.get(name, 0) + n
        self.edge += edge
        self.slots += slots

    def source(self) -> str:
        return source_label(self.edge, self.slots)


class History:
    """History and profile documents for one site; lives on the event loop of the app."""

    def __init__(self, days: SiteDays, coverage: Coverage):
        self.days = days
        self.slots = slots = days.slots
        self.store: Store = slots.store  # type: ignore[assignment]
        self.coverage = coverage
        one = Scope.of((), 0, 0)  # the shape for one range, no per-site windows
        # Per bucket kind and whether the slots are computed from the sources (behind).
        self._series_sql = {(kind, behind): _SERIES_SQL % {"key": key_sql(kind), "off": OFFSET_SQL,
                                                           "merged": sql}
                            for kind in ("hour", "day", "week")
                            for behind, sql in ((False, slots.merged_sql(one)), (True, slots.computed_sql(one)))}
        self._day_series_sql = {kind: _DAY_SERIES_SQL % {"key": _DAY_KEYS[kind], "cap": _CAP} for kind in ("day", "week")}
        self._cells_sql = {kind: _CELLS_SQL % {"key": _CELL_KEYS[kind], "cap": _CAP} for kind in ("hour", "day", "week")}
        self._hours_sql = {with_cells: _HOURS_SQL % {"cells": ", cams, hours, peaks" if with_cells else ""}
                           for with_cells in (False, True)}
        self._profile_sql = {behind: _PROFILE_SQL % {"off": OFFSET_SQL, "merged": sql}
                             for behind, sql in ((False, slots.merged_sql(one)), (True, slots.computed_sql(one)))}

    # -- history ------------------------------------------------------------------------

    async def history(self, site: Site, req: HistoryRequest) -> dict:
        tz = site.tz
        first, last = req.first, req.last
        if req.compare:
            first = req.first - timedelta(days=(req.last - req.first).days + 1)
        lo, _ = local_day(first, tz)
        _, hi = local_day(last, tz)
        accs, contact, span = await asyncio.gather(self._buckets(site, req, first, last, lo, hi),
                                                   self.coverage.contact(site, lo, hi),
                                                   self.store.arun(self.days.data_range, site.name))

        def period(a: date, b: date) -> dict:
            buckets = enumerate_buckets(tz, a, b, req.bucket)
            return self._period(site, req, a, b, buckets, accs, contact)

        doc = {
            "site_name": site.name,
            "display_name": site.display_name,
            "timezone": site.timezone,
            "bucket": req.bucket,
            "zone": req.zone or None,
            "capacities": _capacities(site, req.zone),
            "data_range": data_range(site, span),
            **period(req.first, req.last),
        }
        if req.compare:
            prev = period(first, req.first - timedelta(days=1))
            doc["previous"] = prev
            doc["diff"] = _diff(doc["series"], prev["series"])
            doc["totals_diff"] = _diff([doc["totals"]], [prev["totals"]])[0]
        return doc

    async def _buckets(self, site: Site, req: HistoryRequest, first: date, last: date, lo: int,
                       hi: int) -> dict[int, _Acc]:
        """The buckets with data of [first, last] (the instants [lo, hi)), by key."""
        tz = site.tz
        caps = _capacities(site, req.zone)
        params = {**Scope.of([site.name], lo, hi).params(), "tz": site.timezone, "zone": req.zone,
                  "cap_zones": list(caps), "cap_values": list(caps.values()), "site": site.name,
                  "first": first, "last": last}
        # The reader's plan says which days are read from their kept rows; the others
        # (pending, recut, behind their sources) and, by hour, the clock-change days (where
        # a local hour may be two real hours) are read from the slots, in one more statement.
        plan = self.days.plan(site.name, first, last)
        skip = set(plan.how)
        offsets: dict[int, int] = {}
        if not self.days.kept or len(skip) == (last - first).days + 1:
            read, sql = "slots", self._series_sql[(req.bucket, plan.behind or not self.slots.answers)]
            skip = set()
        elif req.bucket != "hour" and not req.zone:
            read, sql = "days", self._day_series_sql[req.bucket]
        elif req.bucket == "hour" and not req.zone:
            read, sql = "hours", self._hours_sql[bool(caps)]
        else:
            read, sql = "cells", self._cells_sql[req.bucket]
        if req.bucket == "hour" and read != "slots":
            offsets, changes = _offsets_by_day(tz, first, last)
            skip.update(changes)
        params["only"] = []
        try:
            rows = await self.store.aquery(sql, {**params, "skip": sorted(skip)})
            if read == "hours" and any(len(day[6]) != len(day[1]) for day in rows):
                raise _EarlierDays("days kept without their hours")
        except (StorageError, _EarlierDays) as exc:
            if isinstance(exc, StorageError) and (exc.code != _ARRAYS_DIFFER or read != "cells"):
                raise
            # Days an earlier version kept, without their cells or hours (it runs beside this
            # one, or ran since this one started: the next start recomputes them). The
            # slots answer.
            logger.warning("history of %s: kept days of an earlier version, read from the slots: %s", site.name, exc)
            read, offsets, skip = "slots", {}, set()
            rows = await self.store.aquery(self._series_sql[(req.bucket, plan.behind)], params)
        accs: dict[int, _Acc] = {}
        if read == "hours":
            for day in rows:
                _unfold_hours(accs, day, offsets, caps)
        else:
            cells_by_hour = req.bucket == "hour" and read == "cells"
            for k, *values in rows:
                if cells_by_hour:  # local hours -> the key at their day's offset
                    k = hour_key(int(k), offsets[int(k) // 24])
                _fold(accs, int(k), values)
        if skip:
            only = sorted(skip)
            lo_skip, _ = local_day(only[0], tz)
            _, hi_skip = local_day(only[-1], tz)
            behind = any(plan.how.get(d) == BEHIND for d in only)
            for k, *values in await self.store.aquery(
                    self._series_sql[(req.bucket, behind)],
                    {**params, **Scope.of([site.name], lo_skip, hi_skip).params(), "only": only}):
                _fold(accs, int(k), values)
        return accs

    def _period(self, site: Site, req: HistoryRequest, first: date, last: date, buckets: list[Bucket],
                accs: dict[int, _Acc], contact: list[int] | None) -> dict:
        thresholds = site.zone(req.zone).thresholds if req.zone else site.thresholds
        capacities = _capacities(site, req.zone)
        reporting = None if contact is None else Coverage.per_bucket(contact, buckets)
        total = _Acc()
        series = []
        covered = 0
        empty = _Acc()
        for b in buckets:
            acc = accs.get(b.key, empty)
            total.merge(acc)
            peak = acc.peak
            slots = None if reporting is None else reporting[b.key]
            series.append({
                "start": b.label,
                "hours": round((b.end - b.start) / 3600, 2),
                "peak": peak,
                "events": acc.events,
                "intensity": intensity(peak, thresholds),
                "critical_events": dict(sorted(acc.triggers.items())),
                "utilisation": round(acc.util, 4) if capacities else None,
                "source": acc.source(),
                "coverage": None if slots is None else Coverage.share(slots, b.start, b.end),
            })
            covered += slots or 0
        span = sum(b.end - b.start for b in buckets)
        peak = total.peak
        return {
            "from": first.isoformat(),
            "to": last.isoformat(),
            "series": series,
            "totals": {
                "peak": peak,
                "events": total.events,
                "intensity": intensity(peak, thresholds),
                "critical_events": dict(sorted(total.triggers.items())),
                "utilisation": round(total.util, 4) if capacities else None,
                "source": total.source(),
                "coverage": None if reporting is None else Coverage.share(covered, 0, span),
            },
        }

    # -- profile ------------------------------------------------------------------------

    async def profile(self, site: Site, weeks: int, end: date) -> dict:
        first = end - timedelta(days=7 * weeks - 1)
        lo, _ = local_day(first, site.tz)
        _, hi = local_day(end, site.tz)
        params = {**Scope.of([site.name], lo, hi).params(), "tz": site.timezone, "first_day": (first - EPOCH).days}
        sql = self._profile_sql[self.days.behind(lo, hi)]
        cells = {}
        with_data: set[int] = set()
        for w, h, n, mx, mean, weeks_seen in await self.store.aquery(sql, params):
            cells[(int(w), int(h))] = (int(n), int(mx), float(mean))
            with_data.update(int(k) for k in weeks_seen)
        out = []
        for weekday in range(7):
            for hour in range(24):
                n, mx, mean = cells.get((weekday, hour), (0, None, None))
                mean = None if mean is None else round(mean, 3)
                # The mean is the number a cell shows, so it is the one coloured: a cell
                # reads "6.5" in medium, never in the colour of one busy day's peak_max.
                out.append({"weekday": weekday, "hour": hour, "days": n, "peak_max": mx, "peak_mean": mean,
                            "intensity": None if mean is None else intensity(mean, site.thresholds)})
        return {
            "site_name": site.name,
            "display_name": site.display_name,
            "timezone": site.timezone,
            "weeks": weeks,
            "weeks_with_data": len(with_data),
            "from": first.isoformat(),
            "to": end.isoformat(),
            "cells": out,
        }


def _offsets_by_day(tz, first: date, last: date) -> tuple[dict[int, int], list[date]]:
    """Per local day of [first, last] without a clock change, by its number: its UTC offset;
    and the days from the first clock change to the last, in order (none without one):
    their hours are read from the slots, as one range."""
    offsets: dict[int, int] = {}
    changes: list[date] = []
    day = first
    while day <= last:
        start, end = local_day(day, tz)
        before, _, after = day_offsets(tz, start, end)
        if before == after:
            offsets[(day - EPOCH).days] = before
        else:
            changes.append(day)
        day += timedelta(days=1)
    if not changes:
        return offsets, []
    span = [changes[0] + timedelta(days=i) for i in range((changes[-1] - changes[0]).days + 1)]
    return offsets, span


class _EarlierDays(Exception):
    """Kept days without the columns this version reads (an earlier version wrote them)."""


def _fold(accs: dict[int, _Acc], key: int, values: list) -> None:
    """One row of a series statement (after its key) into its bucket."""
    peak, util, events, triggers, edge, slots = values
    accs.setdefault(key, _Acc()).add(int(peak), float(util), int(events), triggers, int(edge), int(slots))


def _unfold_hours(accs: dict[int, _Acc], day: tuple, offsets: dict[int, int], caps: dict[str, int]) -> None:
    """One kept day's hours (a row of :data:`_HOURS_SQL`) into their hour buckets; with
    capacities, each hour's utilisation is its busiest zone's share (from the cells)."""
    dn, keys, peaks, events, triggers, edge, slots, *cells = day
    util = [0.0] * 24
    if cells:
        # fold.share, inline: a month by hour is some 12,000 cells, and a call each cost
        # a tenth of the request.
        for cam, h, peak in zip(*cells, strict=True):
            cap = caps.get(cam)
            if cap and peak / cap > util[h]:
                util[h] = peak / cap
    off, base = offsets[dn], dn * 24
    for h, peak, n_events, counts, n_edge, n_slots in zip(keys, peaks, events, triggers, edge, slots, strict=True):
        # One row per kept day, one entry per local hour: each key once.
        accs[hour_key(base + h, off)] = _Acc(peak, util[h], n_events, as_counts(counts), n_edge, n_slots)


def _capacities(site: Site, zone: str) -> dict[str, int]:
    """The capacities utilisation is taken over: the one zone asked for, or all."""
    caps = site.capacities
    return ({zone: caps[zone]} if zone in caps else {}) if zone else caps


def _diff(current: list[dict], previous: list[dict]) -> list[dict | None]:
    """Per position: current minus previous (peak, events, utilisation, critical events);
    None where the previous period has no bucket at that position."""
    out: list[dict | None] = []
    for i, cur in enumerate(current):
        if i >= len(previous):
            out.append(None)
            continue
        prev = previous[i]
        names = set(cur["critical_events"]) | set(prev["critical_events"])
        cu, pu = cur["utilisation"], prev["utilisation"]
        out.append({
            "peak": cur["peak"] - prev["peak"],
            "events": cur["events"] - prev["events"],
            "utilisation": None if cu is None or pu is None else round(cu - pu, 4),
            "critical_events": {n: cur["critical_events"].get(n, 0) - prev["critical_events"].get(n, 0)
                                for n in sorted(names)},
        })
    return out
