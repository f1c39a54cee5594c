"""The typical band: what is usual for a site (and each zone) on a weekday at a local hour.

For a local day D, hour h's band comes from the same weekday in the ``weeks`` weeks before D
(D itself excluded), one value per day: the hour's peak (site-wide: the busiest zone's, as
the dashboard's ``hourly``; per zone: the zone's). ``low``, ``median`` and ``high`` are the
10th, 50th and 90th percentiles by nearest rank (the value at rank ceil(p/100 x n) of the n
values sorted, so every bound is a peak that happened). A day counts for an hour when the
site had data in that hour or a device of the site was heard in one of its slots (device
contact, :mod:`central.coverage`); a day with neither is left out, not counted as zero, so
a week of devices offline does not drag the band down. A site that never had a device (raw
ingest only) has no contact to go by: there a day counts for every hour when the site had
any data that day. Hours are the local hours as the dashboard labels them (a repeated hour
merged); an hour the clock skipped on one of the earlier days has no value from that day.
With fewer than :data:`MIN_DAYS` days an hour's band is null.

Days are read through the one reader of site-days (:class:`central.storage.sitedays.SiteDays`).
:meth:`Typical.bands` keeps each (site, day, weeks) for :data:`BAND_TTL` seconds (the days
before D change only through late or repaired data, and a write to a past day drops the
entries whose days it touched, :meth:`Typical.on_data`), so the alerts' ``on_data`` path and the overview
read it cheaply; :meth:`Typical.document` (the API) computes afresh.
"""

from __future__ import annotations

import asyncio
import functools
import math
import time
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from shared.slots import SLOT_SECONDS

from .coverage import Coverage
from .sites import Site, local_day
from .storage.sitedays import SiteDays

__all__ = ["Band", "Bands", "Typical", "nearest_rank", "band_of", "local_hours", "hours_so_far", "vs_typical", "MIN_DAYS",
           "MAX_WEEKS", "DEFAULT_WEEKS", "BAND_TTL", "WEEKDAYS"]

MIN_DAYS = 3
MAX_WEEKS = 52
DEFAULT_WEEKS = 8
#: Seconds a (site, day, weeks) band is reused by the alerts and the overview.
BAND_TTL = 3600.0
_MAX_ENTRIES = 4096
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def nearest_rank(ordered: list[int], percent: float) -> int:
    """The ``percent`` percentile of the sorted, non-empty ``ordered`` by nearest rank."""
    rank = max(1, math.ceil(percent / 100 * len(ordered) - 1e-9))
    return ordered[rank - 1]


@dataclass(frozen=True)
class Band:
    low: int
    median: int
    high: int
    days: int


def band_of(values: list[int]) -> Band | None:
    """The band of one hour's values (one per day used), or None under :data:`MIN_DAYS`."""
    if len(values) < MIN_DAYS:
        return None
    ordered = sorted(values)
    return Band(nearest_rank(ordered, 10), nearest_rank(ordered, 50), nearest_rank(ordered, 90), len(ordered))


def local_hours(day: date, site: Site) -> list[int]:
    """The local hours of ``day`` as the dashboard labels them (23, 24 or 25 slots merged)."""
    return list(_local_hours(day, site.timezone))


@functools.lru_cache(maxsize=4096)
def _local_hours(day: date, timezone: str) -> tuple[int, ...]:
    tz = ZoneInfo(timezone)
    lo, hi = local_day(day, tz)
    return tuple(sorted({datetime.fromtimestamp(t, tz).hour for t in range(lo, hi, SLOT_SECONDS)}))


@dataclass
class Bands:
    """The values behind one (site, day, weeks) band: per hour of the day, site-wide and per zone."""

    site: str
    day: date
    weeks: int
    hours: list[int]
    site_values: dict[int, list[int]] = field(default_factory=dict)
    zone_values: dict[str, dict[int, list[int]]] = field(default_factory=dict)
    weeks_with_data: int = 0

    def site_band(self, hour: int) -> Band | None:
        return band_of(self.site_values.get(hour, []))

    def zone_band(self, cam: str, hour: int, unseen_empty: bool = True) -> Band | None:
        """A zone's band. A zone never seen on the days used was empty on each of them, or,
        with ``unseen_empty`` false, has no band (a camera added since)."""
        values = self.zone_values.get(cam, {}).get(hour)
        if values is None:
            if cam in self.zone_values or not unseen_empty:
                return None
            values = [0] * len(self.site_values.get(hour, []))
        return band_of(values)


def _hour_entry(hour: int, values: list[int]) -> dict:
    band = band_of(values)
    if band is None:
        return {"hour": hour, "low": None, "median": None, "high": None, "days": len(values)}
    return {"hour": hour, "low": band.low, "median": band.median, "high": band.high, "days": band.days}


class Typical:
    """Computes typical bands from the site-days reader and device contact."""

    def __init__(self, days: SiteDays, coverage: Coverage, ttl: float = BAND_TTL):
        self.days = days
        self.coverage = coverage
        self.ttl = ttl
        self._cache: dict[tuple[str, date, int, bool], tuple[float, Bands]] = {}  # (site, day, weeks, zones)

    async def compute(self, site: Site, day: date, weeks: int) -> Bands:
        """The values of ``day``'s band from the ``weeks`` same weekdays before it (uncached)."""
        return (await self.compute_sites([site], day, weeks))[0]

    async def compute_sites(self, sites: list[Site], day: date, weeks: int, zones: bool = True) -> list[Bands]:
        """:meth:`compute` of several sites for the same local date: one statement for their
        days (only the same weekdays; their cells' peaks, or without ``zones`` only the
        site-wide hour peaks, which leaves the bands' zone values out), device contact in one
        per time zone."""
        wanted = [day - timedelta(days=7 * k) for k in range(weeks, 0, -1)]
        names = [s.name for s in sites]
        read = (self.days.acells_of(names, wanted[0], wanted[-1], "peaks", only=wanted) if zones
                else self.days.ahour_peaks_of(names, wanted))
        got, heard = await asyncio.gather(read, self.coverage.contact_hours(sites, wanted))
        if zones:
            per_day = {name: {c.day: (c.hour_peaks(), c) for c in days} for name, days in got.items()}
        else:
            per_day = {name: {d: (peaks, None) for d, peaks in days.items()} for name, days in got.items()}
        return [self._fold(site, day, weeks, wanted, per_day[site.name], heard[site.name]) for site in sites]

    @staticmethod
    def _fold(site: Site, day: date, weeks: int, wanted: list[date], per_day: dict, contact: dict | None) -> Bands:
        heard: dict[date, set[int]] = contact or {}
        out = Bands(site.name, day, weeks, local_hours(day, site))
        zones = sorted({cam for d in wanted if per_day.get(d, ({}, None))[1] is not None
                        for cam in per_day[d][1].cams})
        for d in wanted:
            peaks, cells = per_day.get(d, ({}, None))
            used = set(peaks) | heard.get(d, set())
            if contact is None and peaks:
                used |= set(local_hours(d, site))
            if not used:
                continue
            out.weeks_with_data += 1
            per_zone = cells.zone_hours() if cells is not None else {}
            for hour in out.hours:
                if hour not in used:
                    continue
                out.site_values.setdefault(hour, []).append(peaks.get(hour, 0))
                for cam in zones:
                    out.zone_values.setdefault(cam, {}).setdefault(hour, []).append(
                        per_zone.get(cam, {}).get(hour, 0))
        return out

    async def bands(self, site: Site, day: date, weeks: int = DEFAULT_WEEKS) -> Bands:
        """:meth:`compute`, kept :attr:`ttl` seconds per (site, day, weeks)."""
        return (await self.bands_of([(site, day)], weeks))[0]

    async def bands_of(self, wanted: list[tuple[Site, date]], weeks: int = DEFAULT_WEEKS,
                       zones: bool = True) -> list[Bands]:
        """:meth:`bands` of several (site, day)s; those not kept computed together per day
        (:meth:`compute_sites`: the overview's 100 sites in a few statements, not 200).
        Without ``zones``, bands of the site-wide values only (the overview's ``vs_typical``),
        kept apart from the full ones."""
        now = time.monotonic()
        got: dict[tuple[str, date], Bands] = {}
        missing: dict[date, list[Site]] = {}
        for site, day in wanted:
            entry = self._cache.get((site.name, day, weeks, zones)) or self._cache.get((site.name, day, weeks, True))
            if entry is not None and entry[0] > now:
                got[(site.name, day)] = entry[1]
            elif site not in missing.setdefault(day, []):
                missing[day].append(site)
        for day, sites in missing.items():
            for bands in await self.compute_sites(sites, day, weeks, zones):
                if len(self._cache) >= _MAX_ENTRIES:
                    self._cache.pop(next(iter(self._cache)))
                self._cache[(bands.site, day, weeks, zones)] = (now + self.ttl, bands)
                got[(bands.site, day)] = bands
        return [got[(site.name, day)] for site, day in wanted]

    def on_data(self, site_name: str, slots) -> None:
        """An ``on_data`` callback: drops the kept bands whose days a write touched (a write
        of today, the live feed, touches none of today's)."""
        keys = [k for k in self._cache if k[0] == site_name]
        if not keys:
            return
        tz = self.days.sites.get(site_name).tz
        written = {datetime.fromtimestamp(int(s), tz).date() for s in slots}
        for key in keys:
            _, day, weeks, _ = key
            if any(0 < (day - d).days <= 7 * weeks and (day - d).days % 7 == 0 for d in written):
                del self._cache[key]

    async def document(self, site: Site, day: date, weeks: int = DEFAULT_WEEKS, zone: str = "") -> dict:
        """The ``/api/v1/typical/{site}`` answer (computed afresh)."""
        bands, days = await asyncio.gather(self.compute(site, day, weeks),
                                           self.days.acells_of([site.name], day, day, "peaks"))
        today = days[site.name][0]
        peaks = today.zone_hours().get(zone, {}) if zone else today.hour_peaks()
        doc = {
            "site_name": site.name,
            "timezone": site.timezone,
            "date": day.isoformat(),
            "weekday": WEEKDAYS[day.weekday()],
            "weeks": weeks,
            "from": (day - timedelta(days=7 * weeks)).isoformat(),
            "to": (day - timedelta(days=7)).isoformat(),
            "zone": zone or None,
            "weeks_with_data": bands.weeks_with_data,
            "vs_typical": vs_typical(bands, peaks, hours_so_far(site, day), zone),
        }
        if zone:
            zone_values = bands.zone_values.get(zone)
            doc["hourly"] = [_hour_entry(h, zone_values.get(h, []) if zone_values is not None
                                         else [0] * len(bands.site_values.get(h, []))) for h in bands.hours]
        else:
            doc["hourly"] = [_hour_entry(h, bands.site_values.get(h, [])) for h in bands.hours]
            doc["zones"] = {cam: [_hour_entry(h, values.get(h, [])) for h in bands.hours]
                            for cam, values in sorted(bands.zone_values.items())}
            so_far = hours_so_far(site, day)
            per_zone = today.zone_hours()
            doc["zones_vs_typical"] = {cam: vs_typical(bands, per_zone.get(cam, {}), so_far, cam)
                                       for cam in sorted(bands.zone_values)}
        return doc


def hours_so_far(site: Site, day: date) -> list[int]:
    """The local hours of ``day`` up to now: all of a past day's, today's to the current
    hour, none of a later day's."""
    now = datetime.now(site.tz)
    if day > now.date():
        return []
    hours = local_hours(day, site)
    return [h for h in hours if h <= now.hour] if day == now.date() else hours


def vs_typical(bands: Bands, hour_peaks: dict[int, int], hours: list[int], zone: str = "") -> float | None:
    """The day so far against the typical: the sum of ``hour_peaks`` over ``hours`` (those
    with a band) over the sum of the bands' medians (site-wide, or ``zone``'s); None without
    a band or a median above 0."""
    got = want = 0
    banded = False
    for hour in hours:
        band = bands.zone_band(zone, hour) if zone else bands.site_band(hour)
        if band is None:
            continue
        banded = True
        got += hour_peaks.get(hour, 0)
        want += band.median
    if not banded or want <= 0:
        return None
    return round(got / want, 4)
