"""Coverage: in which slots a site's devices were reporting, so that "no data" (devices
offline) is told apart from "nobody there" (devices up, zero people).

The consumer records device contact per slot in ``device_slots``: the slot in which any
message of a device arrived (agents send statistics every minute even when idle) and every
slot a device sent a state for (it was counting then, even if the state came later from its
outbox). A bucket's coverage is the share of its slots with contact from at least one of
the site's devices. A site that never had an edge device (raw ingest only) has no coverage
(``None``): nothing can be said about its uptime.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Iterable
from datetime import date

from shared.slots import SLOT_SECONDS

from .buckets import Bucket
from .sites import Site, local_day
from .storage.store import Store

__all__ = ["Coverage"]

# The slots with contact within [lo, hi), sorted (part 0), and a part 1 row if the site ever
# had a device. Bucketed in Python: grouping them by bucket in ClickHouse cost more than
# this (measured on chDB, 31 days of two devices: 7.4 against 5.1 ms).
_CONTACT_SQL = """
SELECT toUInt8(0) AS part, arraySort(groupUniqArray(toUInt32(toUnixTimestamp(slot)))) AS slots
FROM device_slots
WHERE site_name = {site:String}
  AND slot >= toDateTime({lo:UInt32}, 'UTC') AND slot < toDateTime({hi:UInt32}, 'UTC')
UNION ALL
SELECT toUInt8(1), CAST([], 'Array(UInt32)') FROM (SELECT 1 FROM device_slots WHERE site_name = {site:String} LIMIT 1)
"""
# The local hours with contact on some local days of sites of one time zone (typical's
# same weekdays).
_CONTACT_HOURS_SQL = """
SELECT site_name, d, groupUniqArray(h)
FROM (SELECT site_name, toDate(toDateTime(slot, {tz:String})) AS d, toUInt8(toHour(toDateTime(slot, {tz:String}))) AS h
      FROM device_slots
      WHERE site_name IN {sites:Array(String)}
        AND slot >= toDateTime({lo:UInt32}, 'UTC') AND slot < toDateTime({hi:UInt32}, 'UTC'))
WHERE has({days:Array(Date)}, d)
GROUP BY site_name, d
"""
# The same for several sites over one window (the zones report of every site).
_CONTACTS_SQL = """
SELECT site_name, arraySort(groupUniqArray(toUInt32(toUnixTimestamp(slot))))
FROM device_slots
WHERE site_name IN {sites:Array(String)}
  AND slot >= toDateTime({lo:UInt32}, 'UTC') AND slot < toDateTime({hi:UInt32}, 'UTC')
GROUP BY site_name
"""
_HAS_DEVICES_SQL = """
SELECT site_name FROM device_slots WHERE site_name IN {sites:Array(String)} GROUP BY site_name
"""
# Per site, slots with contact within the site's own window (overview: each site's local day).
_PER_SITE_SQL = """
SELECT site_name, uniqExact(slot)
FROM device_slots
WHERE site_name IN {sites:Array(String)}
  AND slot >= toDateTime({lo:UInt32}, 'UTC') AND slot < toDateTime({hi:UInt32}, 'UTC')
  AND toUInt32(toUnixTimestamp(slot)) >= transform(site_name, {sites:Array(String)}, {starts:Array(UInt32)}, toUInt32(0))
  AND toUInt32(toUnixTimestamp(slot)) < transform(site_name, {sites:Array(String)}, {ends:Array(UInt32)}, toUInt32(0))
GROUP BY site_name
"""


class Coverage:
    def __init__(self, store: Store):
        self.store = store

    async def with_devices(self, sites: list[str]) -> set[str]:
        """The sites among ``sites`` that ever had device contact."""
        rows = await self.store.aquery(_HAS_DEVICES_SQL, {"sites": sites})
        return {r[0] for r in rows}

    async def contact(self, site: Site, lo: int, hi: int) -> list[int] | None:
        """The slots with contact within [lo, hi), sorted; None if the site never had a device."""
        rows = await self.store.aquery(_CONTACT_SQL, {"site": site.name, "lo": lo, "hi": hi})
        if not any(part == 1 for part, _ in rows):
            return None
        return next(slots for part, slots in rows if part == 0)

    async def contact_hours(self, sites: list[Site], days: list[date]) -> dict[str, dict[date, set[int]] | None]:
        """Per site, the local hours with contact on each of ``days`` (sorted); None for a
        site that never had a device. A statement per time zone among ``sites``, and one."""
        names = [s.name for s in sites]
        have = await self.with_devices(names)
        out: dict[str, dict[date, set[int]] | None] = {s.name: {} if s.name in have else None for s in sites}
        by_zone: dict[str, list[Site]] = {}
        for site in sites:
            if site.name in have:
                by_zone.setdefault(site.timezone, []).append(site)
        for tz, group in by_zone.items():
            lo = min(local_day(days[0], s.tz)[0] for s in group)
            hi = max(local_day(days[-1], s.tz)[1] for s in group)
            rows = await self.store.aquery(_CONTACT_HOURS_SQL, {"sites": [s.name for s in group], "tz": tz, "lo": lo,
                                                                "hi": hi, "days": days})
            for name, d, hours in rows:
                out[name][d] = {int(h) for h in hours}  # type: ignore[index]
        return out

    async def contacts(self, sites: list[str], lo: int, hi: int) -> dict[str, list[int] | None]:
        """:meth:`contact` of several sites over one window [lo, hi), by site name."""
        rows = await self.store.aquery(_CONTACTS_SQL, {"sites": sites, "lo": lo, "hi": hi})
        got = {r[0]: list(r[1]) for r in rows}
        missing = [s for s in sites if s not in got]
        have = await self.with_devices(missing) if missing else set()
        return {s: got[s] if s in got else [] if s in have else None for s in sites}

    @staticmethod
    def per_bucket(contact: list[int], buckets: Iterable[Bucket]) -> dict[int, int]:
        """Slots with contact per bucket key, from :meth:`contact`'s slots (sorted)."""
        return {b.key: bisect_left(contact, b.end) - bisect_left(contact, b.start) for b in buckets}

    async def per_site(self, params: dict) -> dict[str, int]:
        """Slots with contact per site within each site's window (the parameters of a Scope)."""
        rows = await self.store.aquery(_PER_SITE_SQL, params)
        return {r[0]: int(r[1]) for r in rows}

    @staticmethod
    def share(slots: int, start: int, end: int) -> float:
        return round(min(1.0, slots * SLOT_SECONDS / (end - start)), 4) if end > start else 0.0
