"""Sites and devices as seen in data: which sites exist, and each device's last contact.

A site is known if it is configured or has rows in ``camera_events`` or ``slot_states``; so
is a zone of a site (:meth:`Registry.has_zone`).
Device availability comes from ``device_status`` (written by the MQTT consumer). Lookups are
cached briefly so that the dashboard's 404 check costs nothing on the hot path.

:meth:`Registry.admit` decides which sites raw ingest may write: a site can never be removed
once it has rows, so a new one is refused where the sites file is the list
(``HEATMAP_ACCEPT_UNKNOWN_SITES=false``) or when ``HEATMAP_MAX_SITES`` sites exist already.
The count is of this process's view (the sites in data, cached up to ``ttl``, re-read before
refusing, plus the sites it admitted since): replicas admitting at the same moment can pass
the bound by the new sites of the requests in flight.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from typing import NamedTuple

from .dashboard import iso_utc
from .sites import Sites
from .storage.store import Store

__all__ = ["Registry", "SiteRefusal"]

# GROUP BY in primary-key order (site_name leads both keys) reads far less than DISTINCT.
_SEEN_SQL = """
SELECT DISTINCT name FROM (
    SELECT toString(site_name) AS name FROM (SELECT site_name FROM slot_states GROUP BY site_name)
    UNION ALL
    SELECT toString(site_name) AS name FROM (SELECT site_name FROM camera_events GROUP BY site_name)
) ORDER BY name
SETTINGS optimize_aggregation_in_order = 1
"""
_HAS_SQL = """
SELECT (SELECT count() FROM (SELECT 1 FROM slot_states WHERE site_name = {site:String} LIMIT 1))
     + (SELECT count() FROM (SELECT 1 FROM camera_events WHERE site_name = {site:String} LIMIT 1))
"""
# A zone (camera) of a site in data: both keys lead with the site, slot_states' then the camera.
_HAS_ZONE_SQL = """
SELECT (SELECT count() FROM (SELECT 1 FROM slot_states
                             WHERE site_name = {site:String} AND cam_name = {zone:String} LIMIT 1))
     + (SELECT count() FROM (SELECT 1 FROM camera_events
                             WHERE site_name = {site:String} AND cam_name = {zone:String} LIMIT 1))
"""
_DEVICES_SQL = """
SELECT site_name, device_id,
       argMaxIf(status, seen_at, kind = 'status') AS status,
       toFloat64(max(seen_at)) AS last_seen
FROM device_status FINAL
GROUP BY site_name, device_id
ORDER BY site_name, device_id
"""


class SiteRefusal(NamedTuple):
    code: str  # unknown_site or too_many_sites
    message: str


class Registry:
    def __init__(self, store: Store, sites: Sites, ttl: float = 10.0):
        self.store = store
        self.sites = sites
        self.ttl = ttl
        self._known: dict[str, float] = {}  # site -> time it was confirmed
        self._absent: dict[str, float] = {}
        self._all: tuple[float, list[str]] | None = None
        self._admitted: set[str] = set()  # new sites let in, perhaps not in data yet
        self._zones: dict[tuple[str, str], float] = {}  # (site, zone) -> when it was looked up

    async def admit(self, names: Iterable[str], max_sites: int, accept_unknown: bool) -> dict[str, SiteRefusal]:
        """The sites among ``names`` that may not be written, each with why. Configured sites
        always may; others only with ``accept_unknown``, and a site not yet in data only while
        fewer than ``max_sites`` (0: no bound) sites are configured or in data."""
        refused: dict[str, SiteRefusal] = {}
        new = sorted(n for n in set(names) if n not in self.sites.configured)
        if not new:
            return refused
        if not accept_unknown:
            for name in new:
                refused[name] = SiteRefusal("unknown_site", "site %r is not in the sites file, and only its sites are "
                                                            "accepted (HEATMAP_ACCEPT_UNKNOWN_SITES=false)" % name)
            return refused
        if not max_sites:
            return refused
        existing = set(await self.site_names()) | self._admitted
        if any(n not in existing for n in new) and len(existing | set(new)) > max_sites:
            self._all = None  # about to refuse: read the sites in data again, not the cache
            existing = set(await self.site_names()) | self._admitted
        count = len(existing)
        for name in new:
            if name in existing:
                continue
            if count >= max_sites:
                refused[name] = SiteRefusal(
                    "too_many_sites", "site %r would be a new site, and %d sites exist already (at most %d: "
                    "HEATMAP_MAX_SITES)" % (name, count, max_sites))
                continue
            count += 1
            existing.add(name)
        if not refused:  # the batch is all or nothing: only then are its new sites let in
            self._admitted.update(n for n in new if n not in self._admitted)
        return refused

    def saw(self, site: str) -> None:
        """Record a site that data just arrived for (ingest, consumer)."""
        self._known[site] = float("inf")
        self._absent.pop(site, None)
        self._all = None

    async def is_known(self, site: str) -> bool:
        if site in self.sites.configured or site in self._known:
            return True
        checked = self._absent.get(site)
        if checked is not None and time.monotonic() - checked < self.ttl:
            return False
        rows = await self.store.aquery(_HAS_SQL, {"site": site})
        if rows and rows[0][0]:
            self._known[site] = time.monotonic()
            return True
        if len(self._absent) > 10000:
            self._absent.clear()
        self._absent[site] = time.monotonic()
        return False

    async def has_zone(self, site: str, zone: str) -> bool:
        """True if ``zone`` is configured for ``site`` or the site has rows of it; a zone once
        seen is known for good (rows are never removed), one not seen is asked again after
        ``ttl``."""
        if zone in self.sites.get(site).zones:
            return True
        checked = self._zones.get((site, zone))
        if checked is not None and (checked == float("inf") or time.monotonic() - checked < self.ttl):
            return checked == float("inf")
        rows = await self.store.aquery(_HAS_ZONE_SQL, {"site": site, "zone": zone})
        if len(self._zones) > 10000:
            self._zones.clear()
        found = bool(rows and rows[0][0])
        self._zones[(site, zone)] = float("inf") if found else time.monotonic()
        return found

    async def site_names(self) -> list[str]:
        cached = self._all
        if cached is None or time.monotonic() - cached[0] > self.ttl:
            rows = await self.store.aquery(_SEEN_SQL)
            cached = self._all = (time.monotonic(), [r[0] for r in rows])
        return sorted(set(cached[1]) | set(self.sites.configured))

    async def devices(self) -> dict[str, list[dict]]:
        out: dict[str, list[dict]] = {}
        for site, device, status, last_seen in await self.store.aquery(_DEVICES_SQL):
            out.setdefault(site, []).append({
                "device_id": device,
                "status": status or "unknown",
                "last_seen": iso_utc(last_seen, millis=True) if last_seen else None,
            })
        return out

    async def sites_document(self) -> dict:
        devices = await self.devices()
        names = sorted(set(await self.site_names()) | set(devices))
        out = []
        for name in names:
            site = self.sites.get(name)
            out.append({
                "site_name": name,
                "display_name": site.display_name,
                "timezone": site.timezone,
                "thresholds": site.thresholds.as_json(),
                "configured": site.configured,
                "intensity": site.intensity_mode,
                "capacity_high": site.capacity_shares[0] if site.capacity_shares else None,
                "capacity_medium": site.capacity_shares[1] if site.capacity_shares else None,
                "zones": {
                    cam: {"display_name": z.display_name, "thresholds": z.thresholds.as_json(),
                          "threshold_origin": z.threshold_origin, "position": z.position, "capacity": z.capacity}
                    for cam, z in site.zones.items()
                },
                "devices": devices.get(name, []),
            })
        return {"sites": out}
