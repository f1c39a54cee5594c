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

from shared.slots import SLOT_SECONDS

from .buckets import OFFSET_SQL, key_sql
from .sites import Site
from .store import Store

__all__ = ["Coverage"]

_PER_BUCKET_SQL = """
SELECT %(key)s AS k, count() AS slots
FROM (
    SELECT s AS slot, %(off)s AS off
    FROM (
        SELECT DISTINCT toUInt32(toUnixTimestamp(slot)) AS s
        FROM device_slots
        WHERE site_name = {site:String}
          AND slot >= toDateTime({lo:UInt32}, 'UTC') AND slot < toDateTime({hi:UInt32}, 'UTC')
    )
)
GROUP BY k
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


#: Per-bucket coverage as rows of a statement stacked under another (UNION ALL) with the
#: columns ``part, k, n``: part 2 rows are (bucket key, slots with contact), the part 3 row
#: says whether the site ever had a device (n > 0). Parameters ``site``, ``lo``, ``hi``, ``tz``.
STACKED_SQL = """
SELECT toUInt8(2) AS part, toInt64(k) AS k, toUInt64(slots) AS n FROM (%(per_bucket)s)
UNION ALL
SELECT toUInt8(3), toInt64(0), toUInt64(count()) FROM (SELECT 1 FROM device_slots WHERE site_name = {site:String} LIMIT 1)
"""


class Coverage:
    def __init__(self, store: Store):
        self.store = store
        self._sql = {kind: _PER_BUCKET_SQL % {"key": key_sql(kind), "off": OFFSET_SQL}
                     for kind in ("slot", "hour", "day", "week")}

    def stacked_sql(self, kind: str) -> str:
        """:data:`STACKED_SQL` for one bucket kind (to ride along another statement)."""
        return STACKED_SQL % {"per_bucket": self._sql[kind]}

    @staticmethod
    def from_stacked(rows) -> dict[int, int] | None:
        """Slots with contact per bucket key from the part 2 and 3 rows, as :meth:`per_bucket`."""
        if not any(part == 3 and n for part, _, n in rows):
            return None
        return {int(k): int(n) for part, k, n in rows if part == 2}

    async def with_devices(self, sites: list[str]) -> set[str]:
        """The sites among ``sites`` that ever had device contact."""
        rows = await self.store.aquery(_HAS_DEVICES_SQL, {"sites": sites})
        return {r[0] for r in rows}

    async def per_bucket(self, site: Site, kind: str, lo: int, hi: int) -> dict[int, int] | None:
        """Slots with contact per bucket key within [lo, hi); None if the site never had a device."""
        if not await self.with_devices([site.name]):
            return None
        rows = await self.store.aquery(self._sql[kind], {"site": site.name, "lo": lo, "hi": hi,
                                                         "tz": site.timezone})
        return {int(k): int(n) for k, n in rows}

    async def per_site(self, params: dict) -> dict[str, int]:
        """Slots with contact per site within each site's window (the parameters of a Scope)."""
        rows = await self.store.aquery(_PER_SITE_SQL, params)
        return {r[0]: int(r[1]) for r in rows}

    @staticmethod
    def share(slots: int, start: int, end: int) -> float:
        return round(min(1.0, slots * SLOT_SECONDS / (end - start)), 4) if end > start else 0.0
