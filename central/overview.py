"""The portfolio view: one row per site for one date, each site over its own local day.

One statement serves every site: the slot store's merged slots over a per-site window
(:meth:`central.storage.slots.Scope.per_site`), with each site's UTC offset looked up by site name
(its offset before and after the day's clock change, if any, and the instant of the
change), grouped twice in ClickHouse (``GROUPING SETS``): per (site, zone) for peaks,
events, triggers and sources, and per (site, local hour) for the busiest hour. Python folds
at most sites x (zones + 24) rows. Coverage and devices come from :mod:`central.coverage`
and the registry; ``vs_typical`` (the day so far against its typical band) from
:mod:`central.typical`.
"""

from __future__ import annotations

import time
from datetime import date
from typing import Any

from shared.slots import SLOT_SECONDS

from .buckets import day_offsets
from .coverage import Coverage
from .now import current_slot, current_slot_start
from .registry import Registry
from .sites import Site, Sites, local_day
from .storage import fold
from .storage.fold import DayFold
from .storage.sitedays import SiteDays
from .storage.slots import Scope
from .storage.store import Store
from .typical import Typical, hours_so_far, vs_typical

__all__ = ["Overview", "SORT_KEYS"]

SORT_KEYS = ("site_name", "display_name", "timezone", "peak", "events", "critical_events", "utilisation",
             "busiest_zone", "busiest_hour", "devices", "coverage", "source", "vs_typical", "now_peak")

_OFFSET = (
    "if(slot < transform(site_name, {sites:Array(String)}, {switch:Array(UInt32)}, toUInt32(0)), "
    "transform(site_name, {sites:Array(String)}, {off1:Array(Int32)}, toInt32(0)), "
    "transform(site_name, {sites:Array(String)}, {off2:Array(Int32)}, toInt32(0)))"
)

# The day fold (central.storage.fold) of every site in one statement, grouped twice: per zone
# and per local hour (site-wide: the busiest zone's peak). The local hour comes from each
# site's offsets, not from LOCAL_HOUR: toDateTime takes one zone per statement.
_SQL = """
SELECT site_name, cam_name, h, """ + ", ".join((fold.PEAK, fold.EVENTS, fold.TRIGGERS, fold.EDGE, fold.RAW,
                                                 fold.REPAIRED)) + """
FROM (
    SELECT site_name, cam_name, peak, events, triggers, source,
           toUInt8(intDiv(toInt64(slot) + %(off)s, 3600) %% 24) AS h
    FROM (%(merged)s)
    WHERE """ + fold.COUNTED + """
)
GROUP BY GROUPING SETS ((site_name, cam_name), (site_name, h))
"""


class Overview:
    def __init__(self, days: SiteDays, sites: Sites, registry: Registry, coverage: Coverage,
                 typical: Typical | None = None):
        self.days = days
        self.typical = typical
        self.slots = slots = days.slots
        self.store: Store = slots.store  # type: ignore[assignment]
        self.sites = sites
        self.registry = registry
        self.coverage = coverage
        windows = Scope.per_site({})
        self._sql = {False: _SQL % {"off": _OFFSET, "merged": slots.merged_sql(windows)},
                     True: _SQL % {"off": _OFFSET, "merged": slots.computed_sql(windows)}}

    async def document(self, day: date | None, sort: str = "site_name", descending: bool = False) -> dict:
        devices = await self.registry.devices()
        names = sorted(set(await self.registry.site_names()) | set(devices))
        sites = [self.sites.get(n) for n in names]
        days = {s.name: day or s.today() for s in sites}
        windows = {s.name: local_day(days[s.name], s.tz) for s in sites}
        scope = Scope.per_site(windows)
        rows: dict[str, DayFold] = {}
        computed = sites
        if self.days.kept:
            # The kept site-days, one row per site; a site whose day the reader does not read
            # kept (pending, recut, behind its sources), or that was cut in another zone, is
            # computed from the slots.
            computed = [s for s in sites if self.days.plan(s.name, days[s.name], days[s.name]).how]
            pending = {s.name for s in computed}
            kept = [n for n in names if n not in pending]
            if kept:
                for site_name, tz, *kept_day in await self.days.akept_day_rows({n: days[n] for n in kept}):
                    if tz == self.sites.get(site_name).timezone:
                        rows[site_name] = DayFold.of_kept(*kept_day)
                    else:
                        computed.append(self.sites.get(site_name))
        if computed:
            rows.update(await self._computed(computed, windows))
        if names:
            with_devices = await self.coverage.with_devices(names)
            contact = await self.coverage.per_site(scope.params()) if with_devices else {}
        else:
            with_devices, contact = set(), {}
        now = time.time()
        out = [self._site_row(s, days[s.name], _elapsed(s, days[s.name], windows[s.name], now),
                              rows.get(s.name) or DayFold(), devices.get(s.name, []),
                              contact.get(s.name, 0) if s.name in with_devices else None)
               for s in sites]
        if self.typical is not None:
            await self._vs_typical(sites, days, rows, out)
        await self._now_peaks(sites, days, out, now)
        _sort(out, sort, descending)
        return {"date": day.isoformat() if day else None, "sort": ("-" if descending else "") + sort, "sites": out}

    async def _computed(self, sites: list[Site], windows: dict[str, tuple[int, int]]) -> dict[str, DayFold]:
        """The sites' rows from the slots, each over its own window."""
        rows: dict[str, DayFold] = {}
        offsets = [day_offsets(s.tz, *windows[s.name]) for s in sites]
        params = {**Scope.per_site({s.name: windows[s.name] for s in sites}).params(),
                  "off1": [o[0] for o in offsets], "switch": [o[1] for o in offsets], "off2": [o[2] for o in offsets]}
        behind = self.days.behind(min(w[0] for w in windows.values()), max(w[1] for w in windows.values()))
        for site_name, cam, h, peak, events, triggers, edge, raw, repaired in await self.store.aquery(
                self._sql[behind], params):
            row = rows.setdefault(site_name, DayFold())
            if cam:
                row.add_zone(cam, int(peak), int(events))
                row.add_counts(triggers, edge, raw, repaired)
            else:
                row.add_hour(int(h), int(peak))
        return rows

    async def _now_peaks(self, sites: list[Site], days: dict[str, date], out: list[dict], now: float) -> None:
        """``now_peak``: the current 15-minute slot's site-wide peak (the busiest zone's, 0
        without events so far) for the sites whose date is their today; one statement."""
        slot = current_slot_start(now)
        today = [s for s in sites if current_slot(s, days[s.name], now) is not None]
        if not today:
            return
        peaks = await self.store.arun(self.days.sites_slot_peaks, [s.name for s in today], slot, slot + SLOT_SECONDS)
        best: dict[str, int] = {}
        for (site_name, _cam, _slot), peak in peaks.items():
            best[site_name] = max(best.get(site_name, 0), peak)
        names = {s.name for s in today}
        for entry in out:
            if entry["site_name"] in names:
                entry["now_peak"] = best.get(entry["site_name"], 0)

    async def _vs_typical(self, sites: list[Site], days: dict[str, date], rows: dict[str, DayFold],
                          out: list[dict]) -> None:
        """``vs_typical``: each site's day so far against the typical of the same hours (kept
        bands, see :meth:`central.typical.Typical.bands_of`); today's hours up to the current one."""
        assert self.typical is not None
        hours = {s.name: hours_so_far(s, days[s.name]) for s in sites}
        judged = [s for s in sites if hours[s.name]]
        bands = await self.typical.bands_of([(s, days[s.name]) for s in judged], zones=False)
        ratios = {s.name: vs_typical(b, rows[s.name].hours if s.name in rows else {}, hours[s.name])
                  for s, b in zip(judged, bands, strict=True)}
        for entry in out:
            entry["vs_typical"] = ratios.get(entry["site_name"])

    @staticmethod
    def _site_row(site: Site, day: date, elapsed: tuple[int, int], row: DayFold, devices: list[dict],
                  contact: int | None) -> dict[str, Any]:
        """``elapsed``: the part of the site's local day that has begun (all of a past day;
        of today, up to the end of the current slot): coverage is over its slots."""
        peak = row.peak
        busiest_zone = min(row.zones, key=lambda c: (-row.zones[c], -row.zone_events[c], c)) if row.zones else None
        busiest_hour = min(row.hours, key=lambda h: (-row.hours[h], h)) if row.hours else None
        seen = [d["last_seen"] for d in devices if d["last_seen"]]
        online = sum(1 for d in devices if d["status"] == "online")
        return {
            "site_name": site.name,
            "display_name": site.display_name,
            "timezone": site.timezone,
            "date": day.isoformat(),
            "peak": peak,
            "events": row.events,
            "critical_events": sum(row.triggers.values()),
            "utilisation": row.utilisation(site.capacities),
            "busiest_zone": busiest_zone,
            "busiest_hour": busiest_hour,
            "devices": {"online": online, "offline": len(devices) - online,
                        "last_seen": max(seen) if seen else None},
            "coverage": None if contact is None else Coverage.share(contact, *elapsed),
            "source": row.source,
            "vs_typical": None,
            "now_peak": None,
        }


def _elapsed(site: Site, day: date, window: tuple[int, int], now: float) -> tuple[int, int]:
    """The slots of ``window`` (the site's local ``day``) that have begun by ``now``: today's
    coverage counts the slots elapsed so far (the current one too), not the whole 24 hours."""
    slot = current_slot(site, day, now)
    return window if slot is None else (window[0], min(window[1], slot + SLOT_SECONDS))


def _sort(rows: list[dict], key: str, descending: bool) -> None:
    """Sort in place by ``key``; rows without a value (None) go last either way, ties by name."""
    def value(row: dict):
        v = row[key]
        return v["online"] if key == "devices" else v

    rows.sort(key=lambda r: r["site_name"])
    present = [r for r in rows if value(r) is not None]
    absent = [r for r in rows if value(r) is None]
    present.sort(key=value, reverse=descending)
    rows[:] = present + absent
