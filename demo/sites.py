"""The demo's three sites, and the sites file (TOML) central reads for them.

Three time zones that exercise the day rules: Kolkata (+05:30, no DST), London (DST on
the EU rule) and New York (DST on the US rule). Each site has 4-8 cameras with a capacity
(in the sites file too: utilisation), a profile for the simulator and a position on the
page's floor plan. London's intensity follows capacity (``intensity = "capacity"``); the
others use fixed thresholds. The file's ``[[alerts]]`` hold a rule of every kind, all
posting to the demo's webhook receiver (:mod:`demo.receiver`) when one is given.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

__all__ = ["DemoCamera", "DemoSite", "SITES", "CAPACITY_SITE", "OFFLINE_MINUTES", "OUTAGE_SITE", "sites_toml",
           "write_sites_file"]


@dataclass(frozen=True)
class DemoCamera:
    name: str
    display_name: str
    capacity: int
    profile: str
    x: int
    y: int
    w: int = 1
    h: int = 1


@dataclass(frozen=True)
class DemoSite:
    name: str
    display_name: str
    timezone: str
    utc_offset: str  # standard offset, for the simulator (Python 3.8: no zoneinfo)
    dst: str  # the simulator's DST rule: none, eu or us
    device: str
    cameras: tuple[DemoCamera, ...]

    def camera_spec(self) -> str:
        return ",".join("%s:%d:%s" % (c.name, c.capacity, c.profile) for c in self.cameras)


SITES = (
    DemoSite("HEAD_OFFICE", "Head office, Bengaluru", "Asia/Kolkata", "+05:30", "none", "jetson-blr-01", (
        DemoCamera("EMPLOYEE_AREA", "Employee Area", 10, "office", 0, 0, 2, 1),
        DemoCamera("RECEPTION_AREA", "Reception Area", 5, "reception", 2, 0),
        DemoCamera("CAFETERIA", "Cafeteria", 12, "cafeteria", 0, 1),
        DemoCamera("BOSS_CABIN", "Boss Cabin", 3, "restricted", 1, 1),
        DemoCamera("CONFERENCE_ROOM", "Conference Room", 8, "office", 2, 1),
        DemoCamera("SERVER_ROOM", "Server Room", 2, "restricted", 3, 0, 1, 2),
    )),
    DemoSite("LONDON_STORE", "Store, London", "Europe/London", "+00:00", "eu", "jetson-lon-01", (
        DemoCamera("SHOP_FLOOR", "Shop Floor", 18, "office", 0, 0, 2, 2),
        DemoCamera("ENTRANCE", "Entrance", 8, "reception", 2, 0),
        DemoCamera("TILLS", "Tills", 6, "reception", 2, 1),
        DemoCamera("STOCK_ROOM", "Stock Room", 3, "restricted", 3, 0),
        DemoCamera("STAFF_ROOM", "Staff Room", 6, "cafeteria", 3, 1),
    )),
    DemoSite("NYC_WAREHOUSE", "Warehouse, New Jersey", "America/New_York", "UTC-05:00", "us", "jetson-nyc-01", (
        DemoCamera("DOCK_1", "Dock 1", 6, "reception", 0, 0),
        DemoCamera("DOCK_2", "Dock 2", 6, "reception", 1, 0),
        DemoCamera("PICKING_AREA", "Picking Area", 14, "office", 0, 1, 2, 1),
        DemoCamera("PACKING", "Packing", 10, "office", 2, 1),
        DemoCamera("OFFICE", "Office", 5, "office", 2, 0),
        DemoCamera("BREAK_ROOM", "Break Room", 9, "cafeteria", 3, 0),
        DemoCamera("CAGE", "Secure Cage", 2, "restricted", 3, 1),
    )),
)


#: The site whose intensity follows its zones' capacities (the others: fixed thresholds).
CAPACITY_SITE = "LONDON_STORE"
#: The site whose agent the live demo stops for a few minutes every hour (device_offline).
OUTAGE_SITE = "NYC_WAREHOUSE"
#: Minutes of silence before device_offline fires: shorter than the demo's outage.
OFFLINE_MINUTES = 2


def _s(text: str) -> str:
    # A JSON string of printable ASCII is a valid TOML basic string.
    return json.dumps(text, ensure_ascii=True)


def sites_toml(sites: tuple[DemoSite, ...] = SITES, webhook: str | None = None) -> str:
    lines = ["# Written by python -m demo.", "[defaults]", 'timezone = "UTC"', "high = 7", "medium = 4", ""]
    for site in sites:
        # Thresholds scaled to the rooms, so that the heatmap shows all three intensities:
        # the hourly strip is the busiest room's count, each zone its own.
        biggest = max(c.capacity for c in site.cameras)
        by_capacity = site.name == CAPACITY_SITE
        lines += ["[sites.%s]" % site.name, "display_name = %s" % _s(site.display_name),
                  "timezone = %s" % _s(site.timezone),
                  "high = %d" % max(2, round(biggest * 0.9)), "medium = %d" % max(1, round(biggest * 0.45))]
        if by_capacity:
            # Each zone with a capacity: high from 85 % of it, medium from 45 % (rounded up).
            lines += ['intensity = "capacity"', "capacity_high = 85", "capacity_medium = 45"]
        lines.append("")
        for cam in site.cameras:
            lines += ["[sites.%s.zones.%s]" % (site.name, cam.name), "display_name = %s" % _s(cam.display_name),
                      "capacity = %d" % cam.capacity]
            if cam.profile == "restricted":
                lines += ["high = 2", "medium = 1"]  # anyone in there is worth a look
            elif not by_capacity:
                lines += ["high = %d" % max(2, round(cam.capacity * 0.9)),
                          "medium = %d" % max(1, round(cam.capacity * 0.45))]
            lines += ["x = %d" % cam.x, "y = %d" % cam.y, "w = %d" % cam.w, "h = %d" % cam.h, ""]
    return "\n".join(lines + _alerts(sites, webhook))


def _alerts(sites: tuple[DemoSite, ...], webhook: str | None) -> list[str]:
    """A rule of every kind (docs/alerts.md); with ``webhook``, each posts there too."""
    restricted = sorted({c.name for site in sites for c in site.cameras if c.profile == "restricted"})
    rules = [
        # Someone in a restricted room at night.
        [("name", "restricted-at-night"), ("kind", "trigger"), ("triggers", ["RESTRICTED_ACCESS"]),
         ("cameras", restricted), ("local_hours", "19:00-07:00"), ("cooldown_minutes", 15)],
        [("name", "stranger"), ("kind", "trigger"), ("triggers", ["UNAUTHORIZED_STRANGER"]),
         ("cooldown_minutes", 30)],
        # A zone at 90 % of its capacity.
        [("name", "crowded"), ("kind", "occupancy"), ("capacity_ratio", 0.9), ("cooldown_minutes", 30)],
        # The demo stops one agent for a few minutes every hour (demo.run).
        [("name", "device-offline"), ("kind", "device_offline"), ("minutes", OFFLINE_MINUTES)],
        # Without local_hours: a site with no events yet (the demo's first seconds, before
        # its backfill lands) does not alert; a site that goes quiet for 2 hours does.
        [("name", "no-data"), ("kind", "no_data"), ("minutes", 120)],
    ]
    lines = []
    for rule in rules:
        lines += ["[[alerts]]"] + ["%s = %s" % (k, json.dumps(v)) for k, v in rule]
        if webhook:
            lines.append("webhook = %s" % _s(webhook))
        lines.append("")
    return lines


def write_sites_file(path: Path, sites: tuple[DemoSite, ...] = SITES, webhook: str | None = None) -> Path:
    path.write_text(sites_toml(sites, webhook))
    return path
