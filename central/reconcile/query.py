"""The comparison behind ``python -m central reconcile``: SQL, classification, repairs.

Per (site, camera, 15-minute slot) the three sides of :mod:`central.storage.slots` (the edge
aggregates by the slot rule, raw ``camera_events`` per slot from the rollup or a scan, and
the pins in ``slot_repairs``) are set against each other instead of chosen. One statement per chunk of the
range does it all for every site at once: the three sides are aggregated, stacked with
UNION ALL and grouped by slot, each slot is classified, and the slots that agree (or are
pinned, or still open) collapse into one counting row per site, so only the differences
travel to Python. Each site keeps its own local-date window (``transform`` over arrays of
site names and bounds, passed as parameters).

A repair pins a drifted closed slot to raw by inserting it into ``slot_repairs`` with what
the edge said before and what raw says; the dashboard then serves that slot from raw
whatever the edge sends later, so a late edge update can neither undo nor double it.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone

from shared.slots import SLOT_SECONDS

from ..storage.schema import RawTime
from ..storage.slots import SlotStore, as_counts
from ..storage.store import Storage

__all__ = [
    "KINDS",
    "SiteWindow",
    "SlotDiff",
    "SiteSummary",
    "Comparison",
    "compare",
    "chunks",
    "compare_sql",
    "seen_sites",
    "known_in_data",
    "repair",
    "DRIFT_KINDS",
]

logger = logging.getLogger(__name__)

#: Classification of a (site, camera, slot), in the order it is decided.
#: ``pinned``: in slot_repairs (served from raw); ``match``: both sides agree;
#: ``open``: differs but the slot is within the grace period (left to the agents);
#: ``missing_on_edge`` / ``missing_on_raw``: events on one side only; ``drift``: both have
#: events and peak, event count or a trigger count differ.
KINDS = ("pinned", "match", "open", "missing_on_edge", "missing_on_raw", "drift")
DRIFT_KINDS = ("missing_on_edge", "missing_on_raw", "drift")

_STATE_RANGE = "slot >= toDateTime({lo:UInt32}, 'UTC') AND slot < toDateTime({hi:UInt32}, 'UTC')"

# Sides stacked and grouped per slot, classified, then everything that needs no row of its
# own (pinned, match, open) collapsed to one counting row per (site, kind).
_COMPARE = """
SELECT site_name, kind, cam, slot, count() AS n, sum(e_events), sum(r_events),
       any(e_peak), any(r_peak), any(e_trig), any(r_trig), any(devices), any(rev)
FROM (
    SELECT site_name, kind,
           if(kind IN ('pinned', 'match', 'open'), '', cam_name) AS cam,
           if(kind IN ('pinned', 'match', 'open'), toUInt32(0), s) AS slot,
           e_events, r_events, e_peak, r_peak, e_trig, r_trig, devices, rev
    FROM (
        SELECT site_name, cam_name, s, e_peak, e_events, e_trig, r_peak, r_events, r_trig,
               devices, rev,
               multiIf(
                   pins > 0, 'pinned',
                   e_events = r_events AND e_peak = r_peak AND e_trig = r_trig, 'match',
                   s > {closed_before:UInt32}, 'open',
                   e_events = 0, 'missing_on_edge',
                   r_events = 0, 'missing_on_raw',
                   'drift') AS kind
        FROM (
            SELECT site_name, cam_name, s,
                   maxIf(peak, src = 1) AS e_peak0, sumIf(events, src = 1) AS e_events,
                   mapSort(mapFilter((k, v) -> v > 0, anyIf(trig, src = 1))) AS e_trig,
                   maxIf(peak, src = 2) AS r_peak, sumIf(events, src = 2) AS r_events,
                   mapSort(anyIf(trig, src = 2)) AS r_trig,
                   if(e_events = 0, toUInt64(0), e_peak0) AS e_peak,
                   maxIf(devices, src = 1) AS devices, maxIf(rev, src = 1) AS rev,
                   countIf(src = 3) AS pins
            FROM (%(sides)s)
            GROUP BY site_name, cam_name, s
        )
        WHERE e_events > 0 OR r_events > 0 OR pins > 0
    )
)
GROUP BY site_name, kind, cam, slot
"""

_SEEN = """
SELECT DISTINCT site_name FROM (
    SELECT DISTINCT site_name FROM slot_states WHERE %(state_range)s
    UNION ALL
    SELECT DISTINCT site_name FROM camera_events WHERE %(raw_range)s
)
"""

_SEEN_ANYTIME = """
SELECT DISTINCT site_name FROM (
    SELECT DISTINCT site_name FROM slot_states WHERE site_name IN {sites:Array(String)}
    UNION ALL
    SELECT DISTINCT site_name FROM camera_events WHERE site_name IN {sites:Array(String)}
)
"""

_REPAIR_BATCH = 50_000


@dataclass(frozen=True)
class SiteWindow:
    """One site's [start, end) in Unix seconds: its local dates in its own time zone."""

    site_name: str
    timezone: str
    first_day: str
    last_day: str
    start: int
    end: int


@dataclass(frozen=True)
class SlotDiff:
    """One (site, camera, slot) whose edge aggregates and raw events disagree."""

    site_name: str
    cam_name: str
    slot: int
    kind: str
    edge_peak: int
    edge_events: int
    edge_triggers: dict[str, int]
    edge_devices: int
    edge_rev: int
    raw_peak: int
    raw_events: int
    raw_triggers: dict[str, int]

    @property
    def trigger_diff(self) -> dict[str, int]:
        """Edge minus raw, per trigger name that differs."""
        names = sorted(set(self.edge_triggers) | set(self.raw_triggers))
        out = {}
        for name in names:
            delta = self.edge_triggers.get(name, 0) - self.raw_triggers.get(name, 0)
            if delta:
                out[name] = delta
        return out

    @property
    def score(self) -> int:
        """How bad it is: events off, plus trigger counts off, plus peak off."""
        return (
            abs(self.edge_events - self.raw_events)
            + sum(abs(v) for v in self.trigger_diff.values())
            + abs(self.edge_peak - self.raw_peak)
        )

    def reason(self) -> str:
        """One line for the audit table and the report."""
        if self.kind == "missing_on_edge":
            return "missing on edge: raw has %d events" % self.raw_events
        if self.kind == "missing_on_raw":
            return "missing on raw: edge has %d events" % self.edge_events
        parts = []
        if self.edge_events != self.raw_events:
            parts.append("events %d != %d" % (self.edge_events, self.raw_events))
        if self.edge_peak != self.raw_peak:
            parts.append("peak %d != %d" % (self.edge_peak, self.raw_peak))
        diff = self.trigger_diff
        if diff:
            parts.append("triggers " + ", ".join("%s %+d" % kv for kv in diff.items()))
        if self.edge_devices > 1:
            parts.append("%d devices" % self.edge_devices)
        return "; ".join(parts) or "differs"


@dataclass
class SiteSummary:
    """Counts of one site over its window; ``repaired`` is filled by :func:`repair`."""

    window: SiteWindow
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(KINDS, 0))
    edge_events: int = 0
    raw_events: int = 0
    repaired: int = 0

    @property
    def checked(self) -> int:
        return sum(self.counts.values())

    @property
    def inconsistent(self) -> int:
        return sum(self.counts[k] for k in DRIFT_KINDS)


@dataclass
class Comparison:
    """The outcome of one run: per-site summaries and every drifted (closed) slot."""

    sites: dict[str, SiteSummary]
    diffs: list[SlotDiff]
    closed_before: int

    @property
    def inconsistent(self) -> int:
        return sum(s.inconsistent for s in self.sites.values())

    def worst(self, limit: int) -> list[SlotDiff]:
        ranked = sorted(self.diffs, key=lambda d: (-d.score, d.site_name, d.cam_name, d.slot))
        return ranked[: max(0, limit)]


def compare_sql(slots: SlotStore) -> str:
    """The one comparison statement over the slot store's three sides."""
    return _COMPARE % {"sides": slots.sides_sql()}


def chunks(lo: int, hi: int, chunk_seconds: int) -> list[tuple[int, int]]:
    """Split [lo, hi) into slot-aligned pieces of at most ``chunk_seconds``."""
    step = max(SLOT_SECONDS, chunk_seconds // SLOT_SECONDS * SLOT_SECONDS)
    out = []
    start = lo
    while start < hi:
        out.append((start, min(hi, start + step)))
        start += step
    return out


def compare(
    slots: SlotStore,
    windows: Sequence[SiteWindow],
    closed_before: int,
    chunk_seconds: int = 7 * 86400,
    progress: Callable[[int, int, int], None] | None = None,
) -> Comparison:
    """Compare every site's window; ``progress(done, total, slot_reached)`` after each chunk."""
    summaries = {w.site_name: SiteSummary(w) for w in windows}
    diffs: list[SlotDiff] = []
    if not windows:
        return Comparison(summaries, diffs, closed_before)
    names = [w.site_name for w in windows]
    params = {
        "sites": names,
        "starts": [w.start for w in windows],
        "ends": [w.end for w in windows],
        "closed_before": max(0, closed_before),
    }
    sql = compare_sql(slots)
    pieces = chunks(min(w.start for w in windows), max(w.end for w in windows), chunk_seconds)
    for done, (lo, hi) in enumerate(pieces, 1):
        rows = slots.store.query(sql, parameters={**params, "lo": lo, "hi": hi})
        for (site, kind, cam, slot, n, e_events, r_events,
             e_peak, r_peak, e_trig, r_trig, devices, rev) in rows:
            summary = summaries[site]
            summary.counts[kind] += int(n)
            summary.edge_events += int(e_events)
            summary.raw_events += int(r_events)
            if kind in DRIFT_KINDS:
                diffs.append(SlotDiff(
                    site, cam, int(slot), kind, int(e_peak), int(e_events), as_counts(e_trig),
                    int(devices), int(rev), int(r_peak), int(r_events), as_counts(r_trig),
                ))
        if progress is not None:
            progress(done, len(pieces), hi)
    diffs.sort(key=lambda d: (d.site_name, d.cam_name, d.slot))
    return Comparison(summaries, diffs, closed_before)


def seen_sites(store: Storage, raw_time: RawTime, lo: int, hi: int) -> list[str]:
    """Sites with edge states or raw events in [lo, hi)."""
    sql = _SEEN % {"state_range": _STATE_RANGE, "raw_range": raw_time.where("lo", "hi")}
    return sorted(r[0] for r in store.query(sql, parameters={"lo": lo, "hi": hi}))


def known_in_data(store: Storage, names: Iterable[str]) -> set[str]:
    """Which of ``names`` have edge states or raw events at any time."""
    rows = store.query(_SEEN_ANYTIME, parameters={"sites": list(names)})
    return {r[0] for r in rows}


def repair(
    slots: SlotStore,
    comparison: Comparison,
    repaired_by: str,
    run_id: str | None = None,
    now: float | None = None,
) -> int:
    """Pin every drifted closed slot of ``comparison`` to raw; returns how many were pinned.

    Each batch carries an insert deduplication token derived from the run, so a retried
    batch is not written twice; a slot pinned twice (two runs at once) is harmless, the
    table keeps one row per slot and the dashboard reads it with DISTINCT.
    """
    run_id = run_id or uuid.uuid4().hex
    at = datetime.fromtimestamp(now, timezone.utc) if now is not None else datetime.now(timezone.utc)
    rows = [
        [
            d.site_name, d.cam_name, datetime.fromtimestamp(d.slot, timezone.utc), run_id, at,
            repaired_by, d.reason(),
            d.edge_peak, d.edge_events, d.edge_triggers, d.edge_rev,
            d.raw_peak, d.raw_events, d.raw_triggers,
        ]
        for d in comparison.diffs
    ]
    for i in range(0, len(rows), _REPAIR_BATCH):
        slots.write_repairs(rows[i : i + _REPAIR_BATCH],
                            settings={"insert_deduplication_token": "%s-%d" % (run_id, i)})
    for d in comparison.diffs:
        comparison.sites[d.site_name].repaired += 1
    if rows:
        logger.info("run %s pinned %d slot(s) to raw", run_id, len(rows))
    return len(rows)
