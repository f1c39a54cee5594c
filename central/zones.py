"""The zones report (space planning): per zone of a site, over a range of local days and
within chosen hours of the day and weekdays, how full it gets against its capacity.

It reads through the one reader of site-days
(:meth:`central.storage.sitedays.SiteDays.acells_of`, peaks only: each local day's
(camera, local hour) cells, a repeated clock-change hour merged, a skipped one absent, as
the dashboard counts them; every site's kept days in one statement) and device contact
(:meth:`central.coverage.Coverage.contact`, or ``contacts`` for every site). The unit is the
local hour: an hour of the filter *has data* when a device of the site was heard in it or
any zone of the site had events in it; each zone's hourly peak in such an hour is its
cell's peak, 0 without a cell. ``peak`` is the highest of them (a cell's peak is its
highest 15-minute peak), ``p95`` and ``median`` their nearest-rank percentiles, ``mean``
their mean; hours without data count for nothing. ``hours`` and ``weekdays`` filter each
local hour by its own clock hour and its own date's weekday (``22:00-06:00`` with
``weekdays=mon`` takes Monday 00:00-06:00 and 22:00-24:00). The figures are folded in
Python from the cells: per zone its sorted non-zero peaks and a count of zero hours.
"""

from __future__ import annotations

import asyncio
import csv
import io
from bisect import bisect_left
from dataclasses import dataclass
from datetime import date, timedelta
from zoneinfo import ZoneInfo

from .buckets import day_offsets, enumerate_buckets
from .coverage import Coverage
from .registry import Registry
from .sites import WEEKDAY_NAMES, Site, Sites, local_day
from .storage.sitedays import DayCells, SiteDays

__all__ = ["Zones", "ZonesRequest", "LIMIT_DAYS", "WEEKDAYS", "OVER", "CSV_COLUMNS", "site_rows", "zone_row", "to_csv"]

LIMIT_DAYS = 366
WEEKDAYS = WEEKDAY_NAMES
#: The shares of capacity (percent) that ``hours_over`` counts hours at or above.
OVER = (40, 80, 100)

CSV_COLUMNS = ("site", "zone", "display_name", "capacity", "peak", "p95", "median", "mean", "peak_utilisation",
               "p95_utilisation", "mean_utilisation", "occupied_share", *("hours_over_%d" % t for t in OVER),
               "hours_with_data", "hours_in_range")


@dataclass(frozen=True)
class ZonesRequest:
    first: date
    last: date
    #: (start hour, end hour) with the end exclusive, 1..24; start > end wraps midnight.
    hours: tuple[int, int] | None = None
    weekdays: frozenset[int] = frozenset(range(7))  # 0 = Monday

    @property
    def hour_set(self) -> frozenset[int]:
        if self.hours is None:
            return frozenset(range(24))
        start, end = self.hours
        if start < end:
            return frozenset(range(start, end))
        return frozenset(range(start, 24)) | frozenset(range(0, end))

    def label(self) -> str | None:
        return None if self.hours is None else "%02d:00-%02d:00" % self.hours

    def header(self) -> dict:
        return {"from": self.first.isoformat(), "to": self.last.isoformat(), "hours": self.label(),
                "weekdays": [WEEKDAYS[d] for d in sorted(self.weekdays)]}


def _local_hours(tz: ZoneInfo, req: ZonesRequest) -> list[tuple[date, int, tuple[tuple[int, int], ...]]]:
    """Every local hour in the filter: (day, hour 0..23, its UTC pieces [start, end)), in
    order. A repeated hour is one entry with both real hours; a skipped one is absent; where
    the clock jumps inside an hour (Chatham's 45-minute changes) an hour's pieces need not
    touch, so they are kept apart, never spanned."""
    wanted = req.hour_set
    out = []
    day = req.first
    while day <= req.last:
        if day.weekday() in req.weekdays:
            start, end = local_day(day, tz)
            before, _, after = day_offsets(tz, start, end)
            if before == after:  # one offset all day: hour h starts h hours after midnight
                out.extend((day, h, ((start + 3600 * h, start + 3600 * (h + 1)),)) for h in sorted(wanted))
            else:
                pieces: dict[int, list[tuple[int, int]]] = {}
                for b in enumerate_buckets(tz, day, day, "hour"):
                    pieces.setdefault(int(b.label[11:13]), []).append((b.start, b.end))
                out.extend((day, h, tuple(p)) for h, p in sorted(pieces.items()) if h in wanted)
        day += timedelta(days=1)
    return out


def _ratio(value: float | None, capacity: int | None) -> float | None:
    return None if value is None or not capacity else round(value / capacity, 4)


def zone_row(zone: str, display_name: str, capacity: int | None, peaks: list[int], n_data: int,
             n_range: int) -> dict:
    """One zone's figures from its hourly peaks over the hours with data (``n_data`` of them;
    ``peaks`` holds the non-zero ones, sorted; the other hours are 0)."""
    zeros = n_data - len(peaks)
    total = sum(peaks)

    def rank(pct: int) -> int:  # nearest rank among the zeros and then the sorted peaks
        r = max(1, -(-pct * n_data // 100)) - 1
        return 0 if r < zeros else peaks[r - zeros]

    n = n_data
    peak = (peaks[-1] if peaks else 0) if n else None
    p95 = rank(95) if n else None
    median = rank(50) if n else None
    return {
        "zone": zone,
        "display_name": display_name,
        "capacity": capacity,
        "peak": peak,
        "p95": p95,
        "median": median,
        "mean": round(total / n, 4) if n else None,
        "peak_utilisation": _ratio(peak, capacity),
        "p95_utilisation": _ratio(p95, capacity),
        "mean_utilisation": None if not n or not capacity else round(total / (n * capacity), 4),
        "occupied_share": round(len(peaks) / n, 4) if n else None,
        # At or above t % of capacity: peak * 100 >= t * capacity, in whole numbers.
        "hours_over": None if not capacity else {
            str(t): len(peaks) - bisect_left(peaks, -(-t * capacity // 100)) for t in OVER},
        "hours_with_data": n_data,
        "hours_in_range": n_range,
    }


def site_rows(site: Site, req: ZonesRequest, days: list[DayCells], contact: list[int] | None) -> list[dict]:
    """The zone rows of one site, by zone name: its configured zones and every camera with
    cells in the range (even outside the filter). A day's cells are one per (camera, local
    hour), as :class:`DayCells` promises."""
    hours = _local_hours(site.tz, req)
    wanted = req.hour_set
    every_hour = len(wanted) == 24
    zones: set[str] = set(site.zones)
    for d in days:
        zones.update(d.cams)
    peaks: dict[str, list[int]] = {z: [] for z in zones}
    with_events: dict[date, set[int]] = {}
    for d in days:
        if d.day.weekday() not in req.weekdays:
            continue
        with_events[d.day] = set(d.hours) & wanted
        if every_hour:
            for cam, p in zip(d.cams, d.peaks, strict=True):
                if p:
                    peaks[cam].append(p)
        else:
            for cam, h, p in zip(d.cams, d.hours, d.peaks, strict=True):
                if p and h in wanted:
                    peaks[cam].append(p)
    n_data = 0
    for day, h, pieces in hours:
        if h in with_events.get(day, ()) or (contact and any(
                bisect_left(contact, end) > bisect_left(contact, start) for start, end in pieces)):
            n_data += 1
    rows = []
    for z in sorted(zones):
        zone = site.zone(z)
        rows.append(zone_row(z, zone.display_name, zone.capacity, sorted(peaks[z]), n_data, len(hours)))
    return rows


class Zones:
    """Zones reports of one site or every site; lives on the event loop of the app."""

    def __init__(self, days: SiteDays, coverage: Coverage, sites: Sites, registry: Registry):
        self.days = days
        self.coverage = coverage
        self.sites = sites
        self.registry = registry

    async def rows(self, site: Site, req: ZonesRequest) -> list[dict]:
        lo, _ = local_day(req.first, site.tz)
        _, hi = local_day(req.last, site.tz)
        days, contact = await asyncio.gather(self.days.acells_of([site.name], req.first, req.last, what="peaks"),
                                             self.coverage.contact(site, lo, hi))
        return site_rows(site, req, days[site.name], contact)

    async def site(self, site: Site, req: ZonesRequest) -> dict:
        return {"site_name": site.name, "display_name": site.display_name, "timezone": site.timezone,
                "working_hours": {"hours": site.working_hours, "weekdays": list(site.working_days)},
                **req.header(), "zones": await self.rows(site, req)}

    async def all_sites(self, req: ZonesRequest) -> dict:
        """Every site's rows: two statements (the kept days of every site, device contact over
        the union of the sites' windows), not two per site."""
        names = await self.registry.site_names()
        sites = [self.sites.get(name) for name in names]
        if not sites:
            return {**req.header(), "zones": []}
        lo = min(local_day(req.first, s.tz)[0] for s in sites)
        hi = max(local_day(req.last, s.tz)[1] for s in sites)
        cells, contacts = await asyncio.gather(self.days.acells_of(names, req.first, req.last, what="peaks"),
                                               self.coverage.contacts(names, lo, hi))
        rows = [{"site_name": s.name, **row} for s in sites
                for row in site_rows(s, req, cells[s.name], contacts[s.name])]
        return {**req.header(), "zones": rows}


def to_csv(rows: list[dict], site_name: str | None = None) -> bytes:
    """The rows as CSV under the fixed header :data:`CSV_COLUMNS`: site and zone names are
    values in their columns, never column names; null is an empty field."""
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for row in rows:
        over = row["hours_over"] or {}
        values = [row.get("site_name", site_name), row["zone"], row["display_name"], row["capacity"], row["peak"],
                  row["p95"], row["median"], row["mean"], row["peak_utilisation"], row["p95_utilisation"],
                  row["mean_utilisation"], row["occupied_share"], *(over.get(str(t)) for t in OVER),
                  row["hours_with_data"], row["hours_in_range"]]
        writer.writerow(["" if v is None else v for v in values])
    return out.getvalue().encode()
