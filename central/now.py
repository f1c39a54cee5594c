"""``now`` on today's dashboard: who is where in the current 15-minute slot.

Per zone the current slot's peak (by the slot rule, as the dashboard counts it: slots with
events only, so a zone without events so far in the slot is 0) and its share of the zone's
capacity (null without one); site-wide the busiest zone's peak and the highest share (as
the overview's ``utilisation``); ``as_of`` is the slot's start in the site's time. Zones
are those of the day's document and the configured ones. Only for the site's today: a past
day has no ``now``. A cached document holding ``now`` lives at most to the end of its slot
(:func:`ttl_cap`), so a poll never shows a slot that has ended as the present.
"""

from __future__ import annotations

import time
from datetime import date, datetime

from shared.slots import SLOT_SECONDS

from .sites import Site, intensity, utilisation
from .storage.sitedays import SiteDays

__all__ = ["current_slot_start", "current_slot", "now_block", "add_now", "ttl_cap"]


def current_slot_start(now: float) -> int:
    """The start of the 15-minute slot holding ``now`` (slots are UTC-aligned, so every site's)."""
    return int(now) // SLOT_SECONDS * SLOT_SECONDS


def current_slot(site: Site, day: date, now: float) -> int | None:
    """The start of the slot holding ``now`` when it lies in ``site``'s local ``day``, else None."""
    slot = current_slot_start(now)
    return slot if datetime.fromtimestamp(slot, site.tz).date() == day else None


def now_block(site: Site, zones, peaks: dict[tuple[str, int], int], slot: int) -> dict:
    """The ``now`` object from the current slot's peaks ((camera, slot) -> peak)."""
    per_zone = {cam: 0 for cam in (*zones, *site.zones)}
    for (cam, _slot), peak in peaks.items():
        per_zone[cam] = max(per_zone.get(cam, 0), peak)
    caps = site.capacities
    peak = max(per_zone.values(), default=0)
    # The intensity of now, by the same thresholds as the day's (zone, site-wide): the page
    # colours today's tiles by what is there now, not by a busy morning.
    return {
        "as_of": datetime.fromtimestamp(slot, site.tz).isoformat(),
        "peak": peak,
        "share": utilisation(per_zone, caps),
        "intensity": intensity(peak, site.thresholds),
        "zones": {cam: {"peak": p, "share": round(p / caps[cam], 4) if cam in caps else None,
                        "intensity": intensity(p, site.zone(cam).thresholds)}
                  for cam, p in sorted(per_zone.items())},
    }


def add_now(doc: dict, site: Site, day: date, days: SiteDays, now: float | None = None) -> None:
    """Adds ``now`` to ``doc`` (the dashboard document of ``day``) when ``day`` is today."""
    slot = current_slot(site, day, time.time() if now is None else now)
    if slot is not None:
        doc["now"] = now_block(site, doc["zones"], days.slot_peaks(site.name, slot, slot + SLOT_SECONDS), slot)


def ttl_cap(site: Site, day: date, ttl: float, now: float | None = None) -> float:
    """``ttl`` cut to the end of the current slot when ``day`` is today (its ``now`` ends there)."""
    now = time.time() if now is None else now
    slot = current_slot(site, day, now)
    return ttl if slot is None else min(ttl, slot + SLOT_SECONDS - now)
