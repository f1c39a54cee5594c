"""Alert rules: the ``[[alerts]]`` tables of the sites TOML, validated once at start-up.

A rule has a ``name``, a ``kind`` (``trigger``, ``occupancy``, ``unusual``,
``device_offline``, ``no_data``), the ``sites`` it watches (default all), optional ``cameras``, optional
``local_hours`` (``"HH:MM-HH:MM"`` in the site's time, may wrap midnight), a
``cooldown_minutes`` per (rule, site, zone), a ``max_per_minute`` bound on its alerts and an
optional ``webhook`` (its shape and address policy: ``targets.py``). Every error in
every table is collected and reported together, one line each, so an operator fixes the
file in one pass.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from shared.events import MAX_PEOPLE
from shared.names import is_valid_name

from ..exceptions import SitesFileError
from ..sites import Sites
from ..typical import DEFAULT_WEEKS, MAX_WEEKS
from .targets import DEFAULT_POLICY, check_url

__all__ = ["KINDS", "Rule", "LocalHours", "parse_rules", "DEFAULT_COOLDOWN_MINUTES", "DEFAULT_MAX_PER_MINUTE",
           "NO_DATA_MIN_MINUTES"]

KINDS = ("trigger", "occupancy", "unusual", "device_offline", "no_data")
DEFAULT_COOLDOWN_MINUTES = 10.0
#: Alerts of one rule sent in one clock minute; past it they are folded into a summary.
DEFAULT_MAX_PER_MINUTE = 20
#: The floor of a no_data rule's minutes: three of the agents' default publish intervals
#: (60 s), so the gap between two publishes is never a silence.
NO_DATA_MIN_MINUTES = 3
#: An unusual rule's excess above the band's high, in standard deviations of a count at
#: that level (sqrt(high), a Poisson count's): a peak's ordinary swing is not unusual.
DEFAULT_TOLERANCE = 2.0
_COMMON = {"name", "kind", "sites", "cameras", "local_hours", "cooldown_minutes", "webhook", "max_per_minute"}
_KIND_KEYS = {
    "trigger": {"triggers"},
    "occupancy": {"threshold", "capacity_ratio"},
    "unusual": {"weeks", "min_people", "tolerance"},
    "device_offline": {"minutes"},
    "no_data": {"minutes"},
}
# fullmatch, not match with "$": "$" also matches before a final newline ("09:00-18:00\n").
_HOURS_RE = re.compile(r"([01]\d|2[0-3]):([0-5]\d)-([01]\d|2[0-3]):([0-5]\d)")
_TRIGGER_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}")


@dataclass(frozen=True)
class LocalHours:
    """A daily window of local time; ``start > end`` wraps midnight, ``start == end`` is all day."""

    start: time
    end: time
    text: str

    def contains(self, moment: datetime) -> bool:
        now = moment.time().replace(second=0, microsecond=0, tzinfo=None)
        if self.start == self.end:
            return True
        if self.start < self.end:
            return self.start <= now < self.end
        return now >= self.start or now < self.end

    def window_start(self, moment: datetime) -> datetime:
        """Start (in ``moment``'s zone) of the window holding ``moment`` (which must be inside)."""
        start = moment.replace(hour=self.start.hour, minute=self.start.minute, second=0, microsecond=0)
        if start > moment:
            start -= timedelta(days=1)  # aware arithmetic keeps the wall-clock time
        return start


@dataclass(frozen=True)
class Rule:
    name: str
    kind: str
    sites: tuple[str, ...] | None = None  # None = every site
    cameras: tuple[str, ...] | None = None  # None = every camera
    local_hours: LocalHours | None = None
    cooldown_minutes: float = DEFAULT_COOLDOWN_MINUTES
    webhook: str | None = None
    max_per_minute: int = DEFAULT_MAX_PER_MINUTE
    triggers: tuple[str, ...] | None = None  # trigger: only these (None = any)
    threshold: int | None = None  # occupancy: people
    capacity_ratio: float | None = None  # occupancy: fraction of the zone's capacity
    minutes: float | None = None  # device_offline, no_data
    weeks: int = DEFAULT_WEEKS  # unusual: weeks of history behind the typical band
    min_people: int = 1  # unusual: people above the band's high (or present where usually nobody)
    tolerance: float = DEFAULT_TOLERANCE  # unusual: excess in standard deviations of a count at high

    def watches(self, site: str, cam: str | None = None) -> bool:
        if self.sites is not None and site not in self.sites:
            return False
        return cam is None or self.cameras is None or cam in self.cameras

    def in_hours(self, moment: datetime) -> bool:
        return self.local_hours is None or self.local_hours.contains(moment)

    def occupancy_threshold(self, capacity: int | None) -> int | None:
        """People that make the zone alert, or None (capacity_ratio on a zone without capacity)."""
        if self.threshold is not None:
            return self.threshold
        if capacity is None or self.capacity_ratio is None:
            return None
        return max(1, math.ceil(self.capacity_ratio * capacity - 1e-9))


def _names(value, where: str, key: str, errors: list, pattern=None) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not value:
        errors.append("%s.%s must be a non-empty list of names" % (where, key))
        return None
    check = pattern.fullmatch if pattern is not None else is_valid_name
    bad = [v for v in value if not isinstance(v, str) or not check(v)]
    if bad:
        errors.append("%s.%s: %r is not a valid name" % (where, key, bad[0]))
        return None
    return tuple(value)


def _number(table: dict, key: str, where: str, errors: list, low: float, high: float,
            whole: bool = False) -> float | None:
    value = table.get(key)
    if value is None:
        return None
    ok = isinstance(value, int) if whole else isinstance(value, (int, float))
    if isinstance(value, bool) or not ok or not low <= value <= high:
        errors.append("%s.%s must be a %s in %g..%g" % (where, key, "whole number" if whole else "number", low, high))
        return None
    return value


def _hours(value, where: str, errors: list) -> LocalHours | None:
    if value is None:
        return None
    match = _HOURS_RE.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        errors.append('%s.local_hours must be "HH:MM-HH:MM" (24-hour clock, site time), not %r' % (where, value))
        return None
    h1, m1, h2, m2 = (int(g) for g in match.groups())
    return LocalHours(time(h1, m1), time(h2, m2), value)


def _webhook(value, where: str, errors: list, policy: str) -> str | None:
    if value is None:
        return None
    problem = check_url(value, policy)
    if problem is not None:
        errors.append("%s.webhook %s" % (where, problem))
        return None
    return value


def _one(table, index: int, sites: Sites, seen: set, errors: list, policy: str) -> Rule | None:
    where = "alerts[%d]" % index
    if not isinstance(table, dict):
        errors.append("%s must be a table" % where)
        return None
    name = table.get("name")
    if not isinstance(name, str) or not is_valid_name(name):
        errors.append("%s.name must be a name (1-64 of A-Z a-z 0-9 _ - ., starting with a letter or digit)" % where)
        name = None
    else:
        where = "alerts[%d] (%s)" % (index, name)
        if name in seen:
            errors.append("%s: a second rule named %r (names must be unique)" % (where, name))
        seen.add(name)
    kind = table.get("kind")
    if kind not in KINDS:
        errors.append("%s.kind must be one of %s, not %r" % (where, ", ".join(KINDS), kind))
        kind = None
    allowed = _COMMON | (_KIND_KEYS[kind] if kind else set().union(*_KIND_KEYS.values()))
    for key in sorted(set(table) - allowed):
        errors.append("%s: unknown key %r%s" % (where, key, " for kind %s" % kind if kind else ""))
    site_names = _names(table.get("sites"), where, "sites", errors)
    for site in site_names or ():
        if sites.configured and site not in sites.configured:
            errors.append("%s.sites: %r is not a site of this file" % (where, site))
    cameras = _names(table.get("cameras"), where, "cameras", errors)
    hours = _hours(table.get("local_hours"), where, errors)
    cooldown = _number(table, "cooldown_minutes", where, errors, 0, 7 * 24 * 60)
    per_minute = _number(table, "max_per_minute", where, errors, 1, 10000, whole=True)
    rule = dict(
        name=name or "", kind=kind or "", sites=site_names, cameras=cameras, local_hours=hours,
        cooldown_minutes=DEFAULT_COOLDOWN_MINUTES if cooldown is None else float(cooldown),
        webhook=_webhook(table.get("webhook"), where, errors, policy),
        max_per_minute=DEFAULT_MAX_PER_MINUTE if per_minute is None else int(per_minute),
    )
    if kind == "trigger":
        rule["triggers"] = _names(table.get("triggers"), where, "triggers", errors, _TRIGGER_RE)
    elif kind == "occupancy":
        threshold = _number(table, "threshold", where, errors, 1, MAX_PEOPLE, whole=True)
        ratio = _number(table, "capacity_ratio", where, errors, 0.01, 10)
        if ("threshold" in table) == ("capacity_ratio" in table):
            errors.append("%s: an occupancy rule needs exactly one of threshold, capacity_ratio" % where)
        elif ratio is not None:
            _check_capacity(site_names, cameras, sites, where, errors)
        rule.update(threshold=None if threshold is None else int(threshold), capacity_ratio=ratio)
    elif kind == "unusual":
        weeks = _number(table, "weeks", where, errors, 1, MAX_WEEKS, whole=True)
        people = _number(table, "min_people", where, errors, 1, MAX_PEOPLE, whole=True)
        tolerance = _number(table, "tolerance", where, errors, 0, 10)
        rule.update(weeks=DEFAULT_WEEKS if weeks is None else int(weeks), min_people=1 if people is None else int(people),
                    tolerance=DEFAULT_TOLERANCE if tolerance is None else float(tolerance))
    elif kind in ("device_offline", "no_data"):
        low = NO_DATA_MIN_MINUTES if kind == "no_data" else 0.01
        minutes = _number(table, "minutes", where, errors, low, 7 * 24 * 60)
        if "minutes" not in table:
            errors.append("%s: a %s rule needs minutes" % (where, kind))
        rule["minutes"] = None if minutes is None else float(minutes)
        if kind == "device_offline" and cameras is not None:
            errors.append("%s: cameras does not apply to device_offline (it watches devices)" % where)
    return Rule(**rule) if name and kind else None


def _check_capacity(site_names, cameras, sites: Sites, where: str, errors: list) -> None:
    """capacity_ratio needs a capacity on the zones it names; zones without one are listed."""
    if cameras is None:
        return
    for site in site_names or sorted(sites.configured):
        for cam in cameras:
            if sites.get(site).zone(cam).capacity is None:
                errors.append("%s: capacity_ratio needs sites.%s.zones.%s.capacity" % (where, site, cam))


def parse_rules(sites: Sites, webhook_targets: str = DEFAULT_POLICY) -> tuple[Rule, ...]:
    """The rules of ``sites.alert_tables``; raises :class:`SitesFileError` listing every error.
    ``webhook_targets`` is the policy literal webhook addresses are judged by (``targets.py``)."""
    errors: list[str] = []
    seen: set[str] = set()
    rules = [_one(table, i, sites, seen, errors, webhook_targets) for i, table in enumerate(sites.alert_tables)]
    if errors:
        raise SitesFileError("invalid alert rules in the sites file:\n  " + "\n  ".join(errors))
    return tuple(r for r in rules if r is not None)
