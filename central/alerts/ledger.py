"""The alerts in ClickHouse: fired alerts, their delivery state, and delivery claims.

``alerts`` holds one logical row per alert id (ReplacingMergeTree on ``version``, read with
FINAL). The firing row has version 1 and every later step (attempt failed, delivered, gave
up) writes the whole row again with a version from the clock in microseconds, so a replica
that fires the same alert late cannot reset a delivered one to pending.

``alert_claims`` decides which replica sends an attempt: each candidate inserts a claim
(``claimed_at`` from the server's clock, a column default), waits ``settle`` seconds for
concurrent claims to land, then reads the attempt's claims: the earliest holds a lease,
claims inside it lose, and the first claim after it lapses wins afresh, so a replica
killed mid-attempt does not hold the alert for ever (:func:`lease_holder`).
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, replace
from datetime import datetime, timezone

from ..storage.store import Store

__all__ = ["Alert", "Ledger", "STATES", "lease_holder"]

#: pending: waiting for (another) attempt; delivered: a 2xx came back; failed: retried for
#: the whole window without a 2xx; published: no webhook, the MQTT copy was sent;
#: suppressed: within the cooldown, kept only so that no replica fires it later; folded: past
#: its rule's max_per_minute at that site, not sent, counted in the minute's summary alert;
#: cancelled: pending when its rule left the sites file, never sent.
STATES = ("pending", "delivered", "failed", "published", "suppressed", "folded", "cancelled")
FIRED_VERSION = 1

_COLUMNS = ("id", "site_name", "rule", "kind", "cam_name", "device_id", "slot", "trigger", "value",
            "fired_at", "body", "webhook", "state", "attempts", "next_attempt_at", "delivered_at",
            "last_error", "updated_by", "version")
_SELECT = ", ".join(
    "toFloat64(%s)" % c if c in ("fired_at", "next_attempt_at", "delivered_at") else c for c in _COLUMNS)

_RECENT_SQL = """
SELECT rule, cam_name, device_id, slot, trigger, max(value),
       toFloat64(maxIf(fired_at, state != 'suppressed'))
FROM alerts FINAL
WHERE site_name = {site:String} AND fired_at >= toDateTime64({since:Float64}, 3, 'UTC')
GROUP BY rule, cam_name, device_id, slot, trigger
"""
_EXISTS_SQL = "SELECT id FROM alerts WHERE site_name = {site:String} AND id IN {ids:Array(String)}"
_DUE_SQL = """
SELECT %s FROM alerts FINAL
WHERE fired_at >= toDateTime64({since:Float64}, 3, 'UTC')
  AND state = 'pending' AND next_attempt_at <= toDateTime64({now:Float64}, 3, 'UTC')
ORDER BY next_attempt_at
LIMIT {limit:UInt32}
""" % _SELECT
_ONE_SQL = "SELECT %s FROM alerts FINAL WHERE site_name = {site:String} AND id = {id:String}" % _SELECT
_LIST_SQL = """
SELECT %s FROM alerts FINAL
WHERE (empty({site:String}) OR site_name = {site:String}) AND state != 'suppressed'
  AND fired_at >= toDateTime64({start:Float64}, 3, 'UTC') AND fired_at < toDateTime64({end:Float64}, 3, 'UTC')
ORDER BY fired_at DESC, id
LIMIT {limit:UInt32}
""" % _SELECT
# Alerts of a site's rules sent or being sent (not held back) in a minute: every row of an
# id counts once, whatever its version, and held-back alerts never get a later version.
_SENT_SQL = """
SELECT rule, uniqExact(id) FROM alerts
WHERE site_name = {site:String} AND kind != 'summary' AND state NOT IN ('suppressed', 'folded')
  AND fired_at >= toDateTime64({start:Float64}, 3, 'UTC') AND fired_at < toDateTime64({end:Float64}, 3, 'UTC')
GROUP BY rule
"""
_FOLDED_SQL = """
SELECT site_name, rule, toUInt32(intDiv(toUnixTimestamp(fired_at), 60) * 60) AS minute, uniqExact(id),
       groupUniqArray(12)(if(cam_name != '', cam_name, device_id))
FROM alerts
WHERE state = 'folded' AND fired_at >= toDateTime64({since:Float64}, 3, 'UTC')
  AND fired_at < toDateTime64({until:Float64}, 3, 'UTC')
GROUP BY site_name, rule, minute
ORDER BY minute, site_name, rule
"""
_ORPHANS_SQL = """
SELECT %s FROM alerts FINAL
WHERE fired_at >= toDateTime64({since:Float64}, 3, 'UTC') AND state = 'pending'
  AND rule NOT IN {rules:Array(String)}
""" % _SELECT
_PENDING_SQL = """
SELECT count() FROM alerts FINAL
WHERE fired_at >= toDateTime64({since:Float64}, 3, 'UTC') AND state = 'pending'
"""
_CLAIMS_SQL = """
SELECT owner, toFloat64(claimed_at) AS at FROM alert_claims
WHERE id = {id:String} AND attempt = {attempt:UInt32}
ORDER BY at, owner
"""


def lease_holder(claims, lease: float) -> str | None:
    """The owner holding the lease after ``claims`` ((owner, at) sorted by time): the first
    claim wins and holds for ``lease`` seconds; claims inside a held lease lose; the first
    claim after it lapses wins afresh (a replica that died mid-attempt)."""
    holder, until = None, float("-inf")
    for owner, at in claims:
        if at >= until:
            holder, until = owner, at + lease
    return holder


@dataclass(frozen=True)
class Alert:
    """One alert; ``body`` is the exact JSON sent (signed) on every attempt and on MQTT."""

    id: str
    site_name: str
    rule: str
    kind: str
    cam_name: str
    device_id: str
    slot: int
    trigger: str
    value: float
    fired_at: float
    body: str
    webhook: str
    state: str = "pending"
    attempts: int = 0
    next_attempt_at: float = 0.0
    delivered_at: float = 0.0
    last_error: str = ""
    updated_by: str = ""
    version: int = FIRED_VERSION

    def row(self) -> list:
        values = []
        for name in _COLUMNS:
            value = getattr(self, name)
            if name in ("fired_at", "next_attempt_at", "delivered_at"):
                value = datetime.fromtimestamp(value, timezone.utc)
            values.append(value)
        return values

    def step(self, owner: str, **changes) -> Alert:
        """The next version of this alert (a later delivery step)."""
        return replace(self, updated_by=owner, version=max(time.time_ns() // 1000, self.version + 1), **changes)

    def document(self) -> dict:
        """The alert as the API lists it: its body plus the delivery state."""
        doc = json.loads(self.body)
        # The data's 15-minute slot the alert is about (kinds judged per slot): the page shows
        # "10:00-10:15" rather than the moment central judged it.
        doc["slot"] = _iso(self.slot) if self.slot and self.kind in _SLOT_KINDS else None
        doc["delivery"] = {
            "state": self.state,
            "webhook": bool(self.webhook),
            "attempts": self.attempts,
            "next_attempt_at": _iso(self.next_attempt_at) if self.state == "pending" and self.webhook else None,
            "delivered_at": _iso(self.delivered_at) if self.delivered_at else None,
            "last_error": self.last_error or None,
        }
        return doc


_SLOT_KINDS = ("trigger", "occupancy", "unusual")


def _iso(ts: float) -> str:
    dt = datetime.fromtimestamp(ts, timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S.") + "%03dZ" % (dt.microsecond // 1000)


def _alert(row) -> Alert:
    values = dict(zip(_COLUMNS, row, strict=True))
    values["slot"] = int(values["slot"])
    values["attempts"] = int(values["attempts"])
    values["version"] = int(values["version"])
    return Alert(**values)


class Ledger:
    def __init__(self, store: Store):
        self.store = store

    async def recent(self, site: str, since: float) -> list[tuple]:
        """(rule, cam, device, slot, trigger, max value, last fired_at not suppressed; 0 if
        none) of ``site`` since ``since``."""
        return await self.store.aquery(_RECENT_SQL, {"site": site, "since": since})

    async def existing(self, site: str, ids: list[str]) -> set[str]:
        if not ids:
            return set()
        return {r[0] for r in await self.store.aquery(_EXISTS_SQL, {"site": site, "ids": ids})}

    async def write(self, alerts: list[Alert]) -> None:
        if alerts:
            await self.store.ainsert("alerts", [a.row() for a in alerts], _COLUMNS)

    async def due(self, now: float, since: float, limit: int = 100) -> list[Alert]:
        """Pending alerts whose next attempt is due; ``since`` bounds the scan (no alert
        fired earlier can still be pending: the retry window has closed on it)."""
        rows = await self.store.aquery(_DUE_SQL, {"now": now, "since": since, "limit": limit})
        return [_alert(r) for r in rows]

    async def get(self, site: str, alert_id: str) -> Alert | None:
        rows = await self.store.aquery(_ONE_SQL, {"site": site, "id": alert_id})
        return _alert(rows[0]) if rows else None

    async def listing(self, site: str, start: float, end: float, limit: int) -> list[Alert]:
        rows = await self.store.aquery(_LIST_SQL, {"site": site, "start": start, "end": end, "limit": limit})
        return [_alert(r) for r in rows]

    async def sent_in(self, site: str, start: float, end: float) -> dict[str, int]:
        """Rule -> alerts of ``site`` fired in [start, end) and not held back (kept for sending)."""
        rows = await self.store.aquery(_SENT_SQL, {"site": site, "start": start, "end": end})
        return {rule: int(n) for rule, n in rows}

    async def folded(self, since: float, until: float) -> list[tuple]:
        """(site, rule, minute start, alerts folded, up to 12 zones) of the minutes in
        [since, until) holding folded alerts."""
        return await self.store.aquery(_FOLDED_SQL, {"since": since, "until": until})

    async def orphans(self, since: float, rules: list[str]) -> list[Alert]:
        """Pending alerts fired since ``since`` whose rule is none of ``rules``."""
        rows = await self.store.aquery(_ORPHANS_SQL, {"since": since, "rules": rules})
        return [_alert(r) for r in rows]

    async def pending(self, since: float) -> int:
        rows = await self.store.aquery(_PENDING_SQL, {"since": since})
        return int(rows[0][0]) if rows else 0

    async def claim(self, alert_id: str, attempt: int, owner: str, lease: float, settle: float) -> bool:
        """Whether ``owner`` won attempt ``attempt`` of ``alert_id`` (see the module docstring)."""
        await self.store.ainsert("alert_claims", [[alert_id, attempt, owner]], ("id", "attempt", "owner"))
        await asyncio.sleep(settle)
        rows = await self.store.aquery(_CLAIMS_SQL, {"id": alert_id, "attempt": attempt})
        return lease_holder([(o, float(at)) for o, at in rows], lease) == owner
