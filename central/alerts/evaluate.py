"""Rule evaluation: from written slots (trigger, occupancy, unusual) and from a periodic check
(device_offline, no_data) to the alerts to fire.

Slot rules read the slots just written with the dashboard's slot rule (edge states, raw
fallback, repairs), so an alert and the page agree. Only slots ending within ``LOOKBACK`` of
now are judged: an outbox replayed after a day offline is history, not news. Alert ids are
derived from the data (rule, site, zone, slot, trigger and count; the device's last contact;
the start of a silence), so two replicas, or one replica before and after a restart,
judging the same data produce the same id, and an id already in ``alerts`` is not fired
again. A trigger alert fires when a (zone, slot, trigger) count rises above the highest
count already alerted or suppressed; an alert inside its rule's cooldown is stored as
``suppressed`` (not sent), which is how every replica learns the count was seen.

Past a rule's ``max_per_minute`` alerts at a site in one clock minute, its further alerts of
that minute are stored ``folded`` (not sent); once the minute is over, one ``summary`` alert
per (rule, site, minute) says how many were folded and where (:meth:`Evaluator.summarise`).
The count is read from ``alerts``, so a restart or another replica continues it.

An ``unusual`` rule judges a (zone, slot)'s peak against the zone's typical band for the
slot's weekday and local hour (:mod:`central.typical`, kept an hour per site and day, so the
write path reads it from memory): it fires at ``high + min_people`` (where the band is 0,
any ``min_people`` present). While a site has fewer than :data:`MIN_WEEKS` weeks of data the
rule stays silent for it, and says so in the log once.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime

from shared.slots import SLOT_SECONDS

from ..dashboard import Dashboard, iso_utc
from ..sites import Site, Sites
from ..storage.schema import RawTime
from ..storage.store import Store
from ..typical import WEEKDAYS, Bands, Typical
from .ledger import Alert
from .rules import Rule

__all__ = ["Evaluator", "LOOKBACK", "MINUTE", "SETTLE_SUMMARY", "SUMMARY_MEMORY", "make_alert", "alert_id"]

logger = logging.getLogger(__name__)

LOOKBACK = 3600.0
#: The window of a rule's max_per_minute: clock minutes of UTC.
MINUTE = 60
#: Seconds after which a folded minute without its summary is no longer summarised.
SUMMARY_MEMORY = 30 * MINUTE
#: Seconds after a minute ends before its summary is read: alerts fired at its very end land.
SETTLE_SUMMARY = 1.0
#: Weeks of data (same weekdays with contact or data) an ``unusual`` rule needs for a site.
MIN_WEEKS = 3
_CONTACT_SQL = """
SELECT site_name, device_id, toFloat64(max(seen_at)) FROM device_status FINAL
GROUP BY site_name, device_id
"""
_EDGE_LAST_SQL = """
SELECT site_name, toFloat64(max(received_at)) FROM slot_states
WHERE site_name IN {sites:Array(String)} AND slot >= toDateTime({since:UInt32}, 'UTC') AND events > 0
GROUP BY site_name
"""
_RAW_LAST_SQL = """
SELECT site_name, toFloat64(%(last)s) FROM camera_events
WHERE site_name IN {sites:Array(String)} AND %(where)s
GROUP BY site_name
"""


def alert_id(*parts: object) -> str:
    """A stable id from what the alert is about (so replicas agree on it)."""
    return hashlib.sha256("\x1f".join(str(p) for p in parts).encode()).hexdigest()[:32]


def _number(value: float | None):
    if value is None:
        return None
    return int(value) if float(value).is_integer() else round(float(value), 3)


def make_alert(rule: Rule, site: Site, now: float, ident: str, message: str, *, cam: str = "",
               device: str = "", slot: int = 0, trigger: str = "", value: float = 0.0,
               threshold: float | None = None, state: str = "pending", kind: str = "") -> Alert:
    local = datetime.fromtimestamp(now, site.tz)
    kind = kind or rule.kind
    body = {
        "id": ident,
        "rule": rule.name,
        "kind": kind,
        "site_name": site.name,
        "cam_name": cam or None,
        "device_id": device or None,
        "at": iso_utc(now, millis=True),
        "local_time": local.isoformat(timespec="seconds"),
        "value": _number(value),
        "threshold": _number(threshold),
        "trigger": trigger or None,
        "message": message,
    }
    return Alert(ident, site.name, rule.name, kind, cam, device, slot, trigger, float(value), now,
                 json.dumps(body, separators=(",", ":"), ensure_ascii=False), rule.webhook or "", state,
                 next_attempt_at=now)


@dataclass
class _Recent:
    """What ``alerts`` says about a site lately: top values and last firing per zone."""

    top: dict  # (rule, cam, device, slot, trigger) -> highest value alerted or suppressed
    last: dict  # (rule, zone) -> last fired_at (not suppressed)

    @classmethod
    def of(cls, rows) -> _Recent:
        top: dict = {}
        last: dict = {}
        for rule, cam, device, slot, trigger, value, fired in rows:
            top[(rule, cam, device, int(slot), trigger)] = float(value)
            zone = (rule, cam or device)
            if fired and fired > last.get(zone, 0.0):
                last[zone] = fired
        return cls(top, last)


def unusual_threshold(rule: Rule, bands: Bands, cam: str, hour: int, unseen_empty: bool) -> int:
    """The peak at which ``rule`` (unusual) fires for ``cam`` in local ``hour``: the highest
    ``high`` of the hour and its neighbours on the day (a busy hour's edge spills into the
    next: people still at their desks at 18:05 are not unusual), plus ``min_people`` or
    ``tolerance`` standard deviations of a count at that level (sqrt(high)), whichever is
    more. Where the high is 0 (usually nobody), ``min_people`` present fires."""
    highs = [b.high for b in (bands.zone_band(cam, h, unseen_empty) for h in (hour - 1, hour, hour + 1))
             if b is not None]
    high = max(highs, default=0)
    if high == 0:
        return rule.min_people
    return high + max(rule.min_people, math.ceil(rule.tolerance * math.sqrt(high) - 1e-9))


class Evaluator:
    """Turns data into alerts; ``fire`` persists and hands them to delivery."""

    def __init__(self, rules: tuple[Rule, ...], sites: Sites, store: Store, ledger,
                 dashboard: Callable[[], Dashboard | None], raw_time: Callable[[], RawTime | None],
                 fire: Callable, metrics, on_folded: Callable[[float], None] = lambda end: None,
                 typical: Callable[[], Typical | None] = lambda: None):
        self.rules = rules
        self.sites = sites
        self.store = store
        self.ledger = ledger
        self._dashboard = dashboard
        self._raw_time = raw_time
        self._fire = fire
        self.metrics = metrics
        self._on_folded = on_folded
        #: When this process last folded an alert (the periodic summary check runs only then,
        #: and once at start: it reads ``alerts`` by time, which its key does not index).
        self.last_folded = 0.0
        self._typical = typical
        self._silent_for: set[tuple[str, str]] = set()  # (rule, site) said silent in the log
        self._locks: dict[str, asyncio.Lock] = {}
        self.slot_rules = tuple(r for r in rules if r.kind in ("trigger", "occupancy", "unusual"))
        self.timed_rules = tuple(r for r in rules if r.kind in ("device_offline", "no_data"))
        longest = max((r.cooldown_minutes * 60 for r in rules), default=0.0)
        self._memory = max(LOOKBACK, longest) + SLOT_SECONDS

    def _lock(self, site: str) -> asyncio.Lock:
        lock = self._locks.get(site)
        if lock is None:
            lock = self._locks[site] = asyncio.Lock()
        return lock

    # -- slot rules ---------------------------------------------------------------------

    async def on_data(self, site_name: str, slots, now: float | None = None) -> list[Alert]:
        """Judge the written ``slots`` of ``site_name``; returns the alerts fired."""
        rules = [r for r in self.slot_rules if r.watches(site_name)]
        dashboard = self._dashboard()
        if not rules or dashboard is None:
            return []
        now = time.time() if now is None else now
        wanted = {int(s) for s in slots if int(s) + SLOT_SECONDS > now - LOOKBACK and int(s) <= now}
        if not wanted:
            return []
        site = self.sites.get(site_name)
        async with self._lock(site_name):
            values = await dashboard.slot_values(site_name, min(wanted), max(wanted) + SLOT_SECONDS)
            values = {k: v for k, v in values.items() if k[1] in wanted}
            bands = await self._bands(site, rules, wanted)
            # Most writes carry no trigger and no crowd: judge against nothing first, and
            # read what was already alerted only when something could fire.
            if not self._judge(site, rules, values, _Recent({}, {}), now, bands):
                return []
            recent = _Recent.of(await self.ledger.recent(site_name, now - self._memory))
            return await self._settle(site_name, self._judge(site, rules, values, recent, now, bands), recent, now)

    async def _bands(self, site: Site, rules: list[Rule], slots: set[int]) -> dict:
        """(weeks, local date) -> the typical bands the unusual rules judge with, or None
        while the site has too few weeks of data (said once per rule and site)."""
        typical = self._typical()
        unusual = [r for r in rules if r.kind == "unusual"]
        if not unusual or typical is None:
            return {}
        days = {datetime.fromtimestamp(s, site.tz).date() for s in slots}
        out: dict = {}
        for weeks in sorted({r.weeks for r in unusual}):
            for day in sorted(days):
                bands = await typical.bands(site, day, weeks)
                out[(weeks, day)] = bands if bands.weeks_with_data >= MIN_WEEKS else None
                for rule in (r for r in unusual if r.weeks == weeks):
                    key = (rule.name, site.name)
                    if out[(weeks, day)] is not None:
                        self._silent_for.discard(key)
                    elif key not in self._silent_for:
                        self._silent_for.add(key)
                        logger.info("rule %s (unusual) is silent for %s: %d of the %d weeks before %s have data "
                                    "(it needs %d)", rule.name, site.name, bands.weeks_with_data, weeks, day, MIN_WEEKS)
        return out

    def _judge(self, site: Site, rules: list[Rule], values: dict, recent: _Recent, now: float,
               bands: dict | None = None) -> list[Alert]:
        out: list[Alert] = []
        for (cam, slot), (peak, _events, triggers, _source) in sorted(values.items()):
            moment = datetime.fromtimestamp(min(now, slot + SLOT_SECONDS - 1), site.tz)
            for rule in rules:
                if not rule.watches(site.name, cam) or not rule.in_hours(moment):
                    continue
                if rule.kind == "trigger":
                    out.extend(self._triggers(rule, site, cam, slot, triggers, recent, now))
                elif rule.kind == "unusual":
                    out.extend(self._unusual(rule, site, cam, slot, peak, recent, now, moment, bands or {}))
                else:
                    out.extend(self._occupancy(rule, site, cam, slot, peak, recent, now))
        return out

    def _triggers(self, rule: Rule, site: Site, cam: str, slot: int, triggers: dict, recent: _Recent,
                  now: float) -> list[Alert]:
        out = []
        for trigger, count in sorted(triggers.items()):
            if count <= 0 or (rule.triggers is not None and trigger not in rule.triggers):
                continue
            if count <= recent.top.get((rule.name, cam, "", slot, trigger), 0):
                continue
            local = datetime.fromtimestamp(slot, site.tz).strftime("%H:%M")
            message = "%s at %s (%s), %s: %d in the 15 minutes from %s local" % (
                trigger, site.zone(cam).display_name, cam, site.display_name, count, local)
            out.append(make_alert(rule, site, now, alert_id(rule.name, site.name, cam, slot, trigger, count),
                                  message, cam=cam, slot=slot, trigger=trigger, value=count))
        return out

    def _occupancy(self, rule: Rule, site: Site, cam: str, slot: int, peak: int, recent: _Recent,
                   now: float) -> list[Alert]:
        zone = site.zone(cam)
        threshold = rule.occupancy_threshold(zone.capacity)
        if threshold is None or peak < threshold or (rule.name, cam, "", slot, "") in recent.top:
            return []
        message = "%d people in %s (%s), %s: threshold %d%s" % (
            peak, zone.display_name, cam, site.display_name, threshold,
            "" if rule.threshold is not None else " (%g x capacity %d)" % (rule.capacity_ratio, zone.capacity))
        return [make_alert(rule, site, now, alert_id(rule.name, site.name, cam, slot), message, cam=cam,
                           slot=slot, value=peak, threshold=threshold)]

    def _unusual(self, rule: Rule, site: Site, cam: str, slot: int, peak: int, recent: _Recent, now: float,
                 moment: datetime, bands: dict) -> list[Alert]:
        start = datetime.fromtimestamp(slot, site.tz)
        day_bands: Bands | None = bands.get((rule.weeks, start.date()))
        if day_bands is None or peak < rule.min_people or (rule.name, cam, "", slot, "") in recent.top:
            return []
        # A configured zone never seen in the weeks was empty in them (a server room nobody
        # entered); a camera neither configured nor seen is new: not judged until it has history.
        band = day_bands.zone_band(cam, start.hour, unseen_empty=cam in site.zones)
        if band is None:
            return []
        threshold = unusual_threshold(rule, day_bands, cam, start.hour, cam in site.zones)
        if peak < threshold:
            return []
        zone = site.zone(cam)
        usual = "nobody" if band.high == 0 else "%d-%d (median %d)" % (band.low, band.high, band.median)
        message = "%d %s in %s at %s; usually %s on a %s at %02d:00 (%s, zone %s)" % (
            peak, "person" if peak == 1 else "people", zone.display_name, moment.strftime("%H:%M"), usual,
            WEEKDAYS[start.weekday()], start.hour, site.display_name, cam)
        return [make_alert(rule, site, now, alert_id(rule.name, site.name, cam, slot), message, cam=cam,
                           slot=slot, value=peak, threshold=threshold)]

    async def _settle(self, site_name: str, alerts: list[Alert], recent: _Recent, now: float) -> list[Alert]:
        """Drop ids already stored, apply cooldowns, then persist and hand over."""
        if not alerts:
            return []
        known = await self.ledger.existing(site_name, [a.id for a in alerts])
        keep: list[Alert] = []
        by_name = {r.name: r for r in self.rules}
        for alert in alerts:
            if alert.id in known:
                continue
            known.add(alert.id)
            zone = (alert.rule, alert.cam_name or alert.device_id)
            last = recent.last.get(zone, 0.0)
            cooldown = by_name[alert.rule].cooldown_minutes * 60
            if last and 0 <= now - last < cooldown:  # (an alert "after" now: a pinned clock)
                keep.append(replace(alert, state="suppressed"))
                self.metrics.alerts_suppressed.labels(alert.kind).inc()
                continue
            recent.last[zone] = now
            keep.append(alert)
        keep = await self._bound(site_name, keep, by_name, now)
        await self._fire(keep)
        return [a for a in keep if a.state != "suppressed"]

    async def _bound(self, site_name: str, alerts: list[Alert], by_name: dict, now: float) -> list[Alert]:
        """Fold the alerts past their rule's max_per_minute at this site in this minute."""
        if not any(a.state == "pending" for a in alerts):
            return alerts
        start = now // MINUTE * MINUTE
        sent = await self.ledger.sent_in(site_name, start, start + MINUTE)
        out = []
        for alert in alerts:
            if alert.state == "pending":
                count = sent.get(alert.rule, 0)
                if count >= by_name[alert.rule].max_per_minute:
                    alert = replace(alert, state="folded")
                    self.metrics.alerts_folded.inc()
                    self.last_folded = time.time()
                    self._on_folded(start + MINUTE)
                else:
                    sent[alert.rule] = count + 1
            out.append(alert)
        return out

    async def summarise(self, now: float | None = None) -> list[Alert]:
        """Fire the summary of every minute over by ``now`` that holds folded alerts and has
        none yet (the id is the same on every replica; an id already stored is not fired)."""
        now = time.time() if now is None else now
        by_name = {r.name: r for r in self.rules}
        out = []
        for site_name, rule_name, minute, count, zones in await self.ledger.folded(now - SUMMARY_MEMORY,
                                                                                   now // MINUTE * MINUTE):
            rule = by_name.get(rule_name)
            if rule is None:
                continue
            site = self.sites.get(site_name)
            minute = int(minute)
            ident = alert_id(rule.name, site_name, "summary", minute)
            local = datetime.fromtimestamp(minute, site.tz).strftime("%H:%M")
            shown = sorted(z for z in zones if z)
            where = (" (%s%s)" % (", ".join(shown[:10]), ", ..." if int(count) > len(shown[:10]) else "")
                     if shown else "")
            message = "%s at %s: %d more alert(s) in the minute from %s local past the rule's %d a minute, " \
                      "not sent one by one%s; listed as folded at /api/v1/alerts" % (
                          rule.name, site.display_name, int(count), local, rule.max_per_minute, where)
            summary = make_alert(rule, site, now, ident, message, slot=minute, value=int(count),
                                 threshold=rule.max_per_minute, kind="summary")
            async with self._lock(site_name):
                if await self.ledger.existing(site_name, [ident]):
                    continue
                await self._fire([summary])
            out.append(summary)
        return out

    # -- timed rules --------------------------------------------------------------------

    async def check(self, site_names: list[str], now: float | None = None) -> list[Alert]:
        """Judge device_offline and no_data rules at ``now``; returns the alerts fired."""
        if not self.timed_rules:
            return []
        now = time.time() if now is None else now
        by_site: dict[str, list[Alert]] = {}
        if any(r.kind == "device_offline" for r in self.timed_rules):
            for site_name, device, last in await self.store.aquery(_CONTACT_SQL):
                self._offline(site_name, device, float(last), now, by_site)
        watched = [s for s in site_names if any(r.kind == "no_data" and r.watches(s) for r in self.timed_rules)]
        if watched:
            last_data = await self._last_data(now, watched)
            for site_name in watched:
                self._silent(site_name, last_data.get(site_name, 0.0), now, by_site)
        fired = []
        for site_name, alerts in sorted(by_site.items()):
            async with self._lock(site_name):
                recent = _Recent.of(await self.ledger.recent(site_name, now - self._memory))
                fired.extend(await self._settle(site_name, alerts, recent, now))
        return fired

    def _offline(self, site_name: str, device: str, last: float, now: float, out: dict) -> None:
        site = self.sites.get(site_name)
        local = datetime.fromtimestamp(now, site.tz)
        for rule in self.timed_rules:
            if rule.kind != "device_offline" or not rule.watches(site_name) or not rule.in_hours(local):
                continue
            assert rule.minutes is not None
            silent = now - last
            if last <= 0 or silent < rule.minutes * 60:
                continue
            message = "device %s at %s: no contact for %d min (last %s)" % (
                device, site.display_name, silent // 60,
                datetime.fromtimestamp(last, site.tz).isoformat(timespec="seconds"))
            out.setdefault(site_name, []).append(make_alert(
                rule, site, now, alert_id(rule.name, site_name, device, int(last * 1000)), message,
                device=device, value=round(silent / 60, 1), threshold=rule.minutes))

    def _silent(self, site_name: str, last: float, now: float, out: dict) -> None:
        site = self.sites.get(site_name)
        local = datetime.fromtimestamp(now, site.tz)
        for rule in self.timed_rules:
            if rule.kind != "no_data" or not rule.watches(site_name) or not rule.in_hours(local):
                continue
            assert rule.minutes is not None
            since = last
            if rule.local_hours is not None:
                since = max(since, rule.local_hours.window_start(local).timestamp())
            if since <= 0 or now - since < rule.minutes * 60:
                continue
            message = "no events from %s for %d min (since %s)" % (
                site.display_name, (now - since) // 60, datetime.fromtimestamp(since, site.tz).isoformat(
                    timespec="seconds"))
            out.setdefault(site_name, []).append(make_alert(
                rule, site, now, alert_id(rule.name, site_name, int(since * 1000)), message,
                value=round((now - since) / 60, 1), threshold=rule.minutes))

    async def _last_data(self, now: float, sites: list[str]) -> dict[str, float]:
        """Last event time of ``sites`` over the past two days: edge states by their
        arrival, raw rows by their event time (both filtered on the leading key column)."""
        since = int(now - 2 * 86400) // SLOT_SECONDS * SLOT_SECONDS
        last: dict[str, float] = {}
        for site, when in await self.store.aquery(_EDGE_LAST_SQL, {"since": since, "sites": sites}):
            last[site] = max(last.get(site, 0.0), float(when))
        raw = self._raw_time()
        if raw is not None:
            column = "(%s)" % raw.expr if raw.kind == "expr" else "event_timestamp"
            latest = "max(%s)" % column if raw.kind == "unix" else "toUnixTimestamp64Milli(toDateTime64(max(%s), 3)) / 1000" % column
            sql = _RAW_LAST_SQL % {"last": latest, "where": raw.where()}
            for site, when in await self.store.aquery(sql, {"start": since, "end": int(now) + 86400, "sites": sites}):
                last[site] = max(last.get(site, 0.0), min(float(when), now))
        return last
