"""Site settings from the TOML sites file: time zones, display names, thresholds, positions,
capacities.

The file is read once at start-up. Sites that appear in data but not in the file get the
``[defaults]`` (time zone, thresholds) and zones named after their camera. Time zones are
IANA names resolved with zoneinfo; an unknown zone or key stops start-up with one line.

A zone may carry ``capacity`` (people it holds); views report ``utilisation`` = peak /
capacity. By default intensity uses the fixed thresholds (high >= 7, medium >= 4, or the
site's and zone's own). A site opts into capacity-relative intensity with
``intensity = "capacity"`` (``capacity_high`` and ``capacity_medium`` in percent, 90 and 50
by default): its zones with a capacity then get thresholds of that share of their
capacity, rounded up; a zone's own ``high``/``medium`` still win.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from shared.names import is_valid_name

from .exceptions import SitesFileError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

__all__ = ["Thresholds", "Zone", "Site", "Sites", "intensity", "local_day", "utilisation"]


@dataclass(frozen=True)
class Thresholds:
    high: int = 7
    medium: int = 4

    def as_json(self) -> dict[str, int]:
        return {"high": self.high, "medium": self.medium}


def intensity(value: float, thresholds: Thresholds) -> str:
    """high if value >= high, medium if >= medium, else low (the handoff's rule)."""
    if value >= thresholds.high:
        return "high"
    if value >= thresholds.medium:
        return "medium"
    return "low"


@dataclass(frozen=True)
class Zone:
    name: str
    display_name: str
    thresholds: Thresholds
    position: dict[str, int] | None = None
    #: People the zone is meant to hold (utilisation, capacity intensity, alert rules' capacity_ratio), if configured.
    capacity: int | None = None
    #: Where ``thresholds`` come from: "own" (the zone's high/medium), "capacity" (shares of
    #: its capacity, intensity = "capacity") or "site" (the site's).
    threshold_origin: str = "site"


WEEKDAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
DEFAULT_WORKING_HOURS = "09:00-18:00"
DEFAULT_WORKING_DAYS = WEEKDAY_NAMES[:5]
_WORKING_HOURS_RE = re.compile(r"([01]\d|2[0-4]):00-([01]\d|2[0-4]):00")


@dataclass(frozen=True)
class Site:
    name: str
    display_name: str
    timezone: str
    thresholds: Thresholds
    zones: dict[str, Zone] = field(default_factory=dict)
    configured: bool = True
    #: "fixed" (the thresholds) or "capacity" (zones with a capacity: shares of it).
    intensity_mode: str = "fixed"
    #: (capacity_high, capacity_medium) in percent where intensity_mode is "capacity".
    capacity_shares: tuple[int, int] | None = None
    #: The site's working hours (local, whole hours, end exclusive; may wrap midnight) and
    #: days: the zones report's "Working hours" (sites file ``working_hours``, ``working_days``).
    working_hours: str = DEFAULT_WORKING_HOURS
    working_days: tuple[str, ...] = DEFAULT_WORKING_DAYS

    @property
    def capacities(self) -> dict[str, int]:
        """Zones with a configured capacity."""
        return {cam: z.capacity for cam, z in self.zones.items() if z.capacity}

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    def zone(self, cam: str) -> Zone:
        zone = self.zones.get(cam)
        if zone is None:
            return Zone(cam, cam, self.thresholds)
        return zone

    def today(self, now: datetime | None = None) -> date:
        return (now or datetime.now(self.tz)).astimezone(self.tz).date()


def utilisation(zone_peaks: dict[str, int], capacities: dict[str, int]) -> float | None:
    """Peak / capacity of the busiest zone (the highest share) among zones with a capacity;
    None where no zone has one (4 decimals; above 1 when over capacity)."""
    shares = [zone_peaks.get(cam, 0) / cap for cam, cap in capacities.items()]
    return round(max(shares), 4) if shares else None


def local_day(day: date, tz: ZoneInfo) -> tuple[int, int]:
    """[start, end) in Unix seconds of the local calendar ``day`` in ``tz`` (23-25 hours)."""
    start = datetime(day.year, day.month, day.day, tzinfo=tz)
    nxt = day + timedelta(days=1)
    end = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return int(start.timestamp()), int(end.timestamp())


_SITE_KEYS = {"display_name", "timezone", "high", "medium", "zones", "intensity", "capacity_high",
              "capacity_medium", "working_hours", "working_days"}
_ZONE_KEYS = {"display_name", "high", "medium", "x", "y", "w", "h", "capacity"}
_DEFAULT_KEYS = {"timezone", "high", "medium"}


def _int(table: dict, key: str, where: str, default: int | None, low: int = 0) -> int | None:
    value = table.get(key, default)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= 65535:
        raise SitesFileError("%s.%s must be a whole number in %d..65535" % (where, key, low))
    return value


def _thresholds(table: dict, where: str, base: Thresholds) -> Thresholds:
    high = _int(table, "high", where, base.high, 1)
    medium = _int(table, "medium", where, base.medium)
    if medium > high:
        raise SitesFileError("%s: medium (%d) is above high (%d)" % (where, medium, high))
    return Thresholds(high, medium)


def _capacity_thresholds(table: dict, where: str) -> tuple[int, int] | None:
    """(high %, medium %) where the site opted into capacity-relative intensity."""
    mode = table.get("intensity", "fixed")
    if mode not in ("fixed", "capacity"):
        raise SitesFileError('%s.intensity must be "fixed" or "capacity"' % where)
    if mode == "fixed":
        for key in ("capacity_high", "capacity_medium"):
            if key in table:
                raise SitesFileError('%s.%s needs intensity = "capacity"' % (where, key))
        return None
    high = _int(table, "capacity_high", where, 90, 1)
    medium = _int(table, "capacity_medium", where, 50, 0)
    if medium > high:
        raise SitesFileError("%s: capacity_medium (%d) is above capacity_high (%d)" % (where, medium, high))
    return high, medium


def _zone_thresholds(ztable: dict, where: str, base: Thresholds, capacity: int | None,
                     shares: tuple[int, int] | None) -> tuple[Thresholds, str]:
    """The zone's thresholds and where they come from (own, capacity or site)."""
    origin = "site"
    if shares is not None and capacity:
        # Whole people: a share of the capacity rounded up (90 % of 15 is 13.5: high at 14).
        base = Thresholds(max(1, -(-capacity * shares[0] // 100)), -(-capacity * shares[1] // 100))
        origin = "capacity"
    if "high" in ztable or "medium" in ztable:
        origin = "own"
    return _thresholds(ztable, where, base), origin


def _working(table: dict, where: str) -> tuple[str, tuple[str, ...]]:
    """``working_hours`` ("08:00-17:00": whole hours, local, end exclusive, 00-24, may wrap
    midnight) and ``working_days`` (weekday names), as the zones report's hours and weekdays."""
    hours = table.get("working_hours", DEFAULT_WORKING_HOURS)
    m = _WORKING_HOURS_RE.fullmatch(hours) if isinstance(hours, str) and hours.isascii() else None
    start, end = (int(m.group(1)), int(m.group(2)) or 24) if m else (-1, -1)
    if not 0 <= start <= 23 or not 1 <= end <= 24 or start == end:
        raise SitesFileError('%s.working_hours must be "HH:00-HH:00" (local, end exclusive; "22:00-06:00" '
                             'wraps midnight), not %r' % (where, hours))
    days = table.get("working_days", list(DEFAULT_WORKING_DAYS))
    if (not isinstance(days, list) or not days or any(d not in WEEKDAY_NAMES for d in days)
            or len(set(days)) != len(days)):
        raise SitesFileError("%s.working_days must be a list of distinct weekdays from %s"
                             % (where, ", ".join(WEEKDAY_NAMES)))
    return hours, tuple(d for d in WEEKDAY_NAMES if d in days)


def _timezone(value: Any, where: str) -> str:
    if not isinstance(value, str):
        raise SitesFileError("%s.timezone must be an IANA name like Asia/Kolkata" % where)
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError):
        raise SitesFileError("%s.timezone %r is not a known IANA time zone" % (where, value)) from None
    return value


def _check_keys(table: Any, allowed: set, where: str) -> dict:
    if not isinstance(table, dict):
        raise SitesFileError("%s must be a table" % where)
    extra = sorted(set(table) - allowed)
    if extra:
        raise SitesFileError("%s: unknown key %r" % (where, extra[0]))
    return table


def _text(table: dict, key: str, where: str, default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str) or not 1 <= len(value) <= 200:
        raise SitesFileError("%s.%s must be text of 1-200 characters" % (where, key))
    return value


class Sites:
    """The configured sites, plus defaults for sites seen only in data."""

    def __init__(self, sites: dict[str, Site] | None = None, timezone: str = "UTC",
                 thresholds: Thresholds | None = None):
        self.configured = dict(sites or {})
        self.default_timezone = timezone
        self.default_thresholds = thresholds or Thresholds()
        #: The raw ``[[alerts]]`` tables of the file (validated by central.alerts.rules).
        self.alert_tables: tuple = ()

    @classmethod
    def load(cls, path: str | Path | None) -> Sites:
        if not path:
            return cls()
        try:
            with open(path, "rb") as fh:
                doc = tomllib.load(fh)
        except OSError as exc:
            raise SitesFileError("cannot read sites file %s: %s" % (path, exc.strerror)) from None
        except tomllib.TOMLDecodeError as exc:
            raise SitesFileError("sites file %s: %s" % (path, exc)) from None
        # [[alerts]] tables are alert rules, parsed by central.alerts.rules from ``alert_tables``.
        _check_keys(doc, {"defaults", "sites", "alerts"}, "sites file")
        defaults = _check_keys(doc.get("defaults", {}), _DEFAULT_KEYS, "[defaults]")
        tz = _timezone(defaults.get("timezone", "UTC"), "defaults")
        base = _thresholds(defaults, "defaults", Thresholds())
        sites: dict[str, Site] = {}
        for name, table in _check_keys(doc.get("sites", {}), set(doc.get("sites", {})), "[sites]").items():
            where = "sites.%s" % name
            if not is_valid_name(name):
                raise SitesFileError("%s: not a valid site name" % where)
            _check_keys(table, _SITE_KEYS, where)
            thresholds = _thresholds(table, where, base)
            shares = _capacity_thresholds(table, where)
            working = _working(table, where)
            zones = {}
            for cam, ztable in _check_keys(table.get("zones", {}), set(table.get("zones", {})), where + ".zones").items():
                zwhere = "%s.zones.%s" % (where, cam)
                if not is_valid_name(cam):
                    raise SitesFileError("%s: not a valid camera name" % zwhere)
                _check_keys(ztable, _ZONE_KEYS, zwhere)
                pos = None
                if any(k in ztable for k in "xywh"):
                    pos = {k: _int(ztable, k, zwhere, 1 if k in "wh" else 0) for k in "xywh"}
                capacity = _int(ztable, "capacity", zwhere, None, 1)
                zone_thresholds, origin = _zone_thresholds(ztable, zwhere, thresholds, capacity, shares)
                zones[cam] = Zone(cam, _text(ztable, "display_name", zwhere, cam), zone_thresholds, pos, capacity,
                                  origin)
            sites[name] = Site(
                name=name,
                display_name=_text(table, "display_name", where, name),
                timezone=_timezone(table.get("timezone", tz), where),
                thresholds=thresholds,
                zones=zones,
                intensity_mode="fixed" if shares is None else "capacity",
                capacity_shares=shares,
                working_hours=working[0],
                working_days=working[1],
            )
        loaded = cls(sites, tz, base)
        alerts = doc.get("alerts", [])
        if not isinstance(alerts, list):
            raise SitesFileError("alerts must be an array of tables: [[alerts]]")
        loaded.alert_tables = tuple(alerts)
        return loaded

    def get(self, name: str) -> Site:
        """The configured site, or one built from the defaults for a site seen in data."""
        site = self.configured.get(name)
        if site is not None:
            return site
        return Site(name, name, self.default_timezone, self.default_thresholds, {}, configured=False)


def data_range(site: Site, span: tuple[int, int] | None) -> dict | None:
    """The local days of the site's first and last data in any source (from
    :meth:`central.storage.slots.SlotStore.data_range`), or None where it has none: what tells
    a day before the data from a day with nobody there."""
    if span is None:
        return None
    return {"first_day": datetime.fromtimestamp(span[0], site.tz).date().isoformat(),
            "last_day": datetime.fromtimestamp(span[1], site.tz).date().isoformat()}
