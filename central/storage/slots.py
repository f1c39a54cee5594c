"""The slot store: every statement about 15-minute slots, and the slot rule, written once.

A *slot* is one (site, camera, 15-minute UTC slot). Three sources describe it:

* **edge**: ``slot_states``, the agents' absolute counters. The rule: per device the state
  of the highest revision (``argMax(..., rev)``), then summed over the devices of the
  camera (events and trigger counts added, peak the max);
* **raw**: ``camera_events`` grouped per slot (events = count, peak = max(people_count),
  trigger counts with ARRAY JOIN semantics). It is read from the rollup ``raw_slots``
  that ClickHouse keeps on insert (:mod:`central.storage.rollup`) or, where there is none, by
  scanning ``camera_events``; the caller says which with ``rollup=``;
* **pins**: ``slot_repairs``, slots that reconciliation pinned to raw.

The **slot rule** chooses one answer per slot: raw where the slot is pinned (source
``repaired``; nothing when raw has no events there), else the edge where any edge state
exists (source ``edge``, even if it says zero events), else raw (source ``raw``).

Reading, for the next view (history, profile, overview, export)::

    slots = SlotStore(store, raw_time, rollup=True)
    scope = Scope.of(["SITE_A", "SITE_B"], lo, hi)          # [lo, hi) Unix seconds, slot-aligned
    rows = await slots.amerged(scope)                       # list[SlotRow], one per slot

or bucket in SQL without moving the slots to Python (the merged rows are a subquery with
columns ``site_name, cam_name, slot (UInt32 Unix seconds), peak, events (UInt64),
triggers Map(String, UInt64), source``, and take the parameters of ``scope.params()``)::

    sql = ("SELECT site_name, toStartOfDay(toDateTime(slot, {tz:String})) AS d, max(peak), sum(events) "
           "FROM (%s) GROUP BY site_name, d" % slots.merged_sql(scope))
    rows = await store.aquery(sql, {**scope.params(), "tz": "Asia/Kolkata"})

``merged_sql(scope)`` is the statement for that scope's shape: one range for every site
(``Scope.of``, the cheaper one) or per-site windows (``Scope.per_site``); ``merged_sql()``
serves both.

A :class:`Scope` is sites plus a range; each site may have its own window (its local
days), given as ``windows``. Any local hour, day or week is a union of whole slots, so
bucketing ``slot`` in the site's zone is exact. Parameter names used by the fragments:
``sites``, ``starts``, ``ends`` (arrays), ``lo``, ``hi``; callers add their own under
other names.

:meth:`SlotStore.sides_sql` gives the three sources stacked (reconciliation compares them
instead of choosing). Writes go through :meth:`SlotStore.write_states`,
:meth:`SlotStore.write_raw` and :meth:`SlotStore.write_repairs`, whose column lists come
from :data:`central.storage.schema.TABLES`.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, NamedTuple

from shared.slots import SLOT_SECONDS

from .schema import TABLES, RawTime
from .store import Storage, Store

__all__ = [
    "SlotRow",
    "Scope",
    "SlotStore",
    "STATE_COLUMNS",
    "RAW_COLUMNS",
    "REPAIR_COLUMNS",
    "ROLLUP_TABLE",
    "ANSWERS_TABLE",
    "columns_of",
    "as_counts",
    "source_label",
    "touched_scope",
    "touched_scopes",
    "runs",
    "version",
    "unix",
]

ROLLUP_TABLE = "raw_slots"
ANSWERS_TABLE = "slot_answers"


def columns_of(table: str) -> tuple[str, ...]:
    """The column names of one of our tables, in schema order (the insert order)."""
    return tuple(name for name, _ in TABLES[table].columns)


STATE_COLUMNS = columns_of("slot_states")
RAW_COLUMNS = columns_of("camera_events")
REPAIR_COLUMNS = columns_of("slot_repairs")


class SlotRow(NamedTuple):
    """One slot as the slot rule answers it."""

    site_name: str
    cam_name: str
    slot: int  # Unix seconds, the slot's start
    peak: int
    events: int
    triggers: dict[str, int]
    source: str  # 'edge', 'raw' or 'repaired'


@dataclass(frozen=True)
class Scope:
    """Which slots: ``sites`` within [``lo``, ``hi``), each site optionally narrowed to its
    own window ``windows[i] = (start, end)`` (for example its local days)."""

    sites: tuple[str, ...]
    lo: int
    hi: int
    windows: tuple[tuple[int, int], ...] | None = None

    @classmethod
    def of(cls, sites: Iterable[str], lo: int, hi: int) -> Scope:
        return cls(tuple(sites), int(lo), int(hi))

    @classmethod
    def per_site(cls, windows: dict[str, tuple[int, int]]) -> Scope:
        """One window per site; the overall range is their union's span."""
        names = tuple(windows)
        bounds = tuple((int(s), int(e)) for s, e in windows.values())
        lo = min((s for s, _ in bounds), default=0)
        hi = max((e for _, e in bounds), default=0)
        return cls(names, lo, hi, bounds)

    def params(self) -> dict[str, Any]:
        windows = self.windows or tuple((self.lo, self.hi) for _ in self.sites)
        return {
            "sites": list(self.sites),
            "starts": [s for s, _ in windows],
            "ends": [e for _, e in windows],
            "lo": self.lo,
            "hi": self.hi,
        }

    def chunked(self, lo: int, hi: int) -> Scope:
        """The same sites and windows within [lo, hi) (reading a long range in pieces)."""
        return Scope(self.sites, max(self.lo, lo), min(self.hi, hi), self.windows)


# -- SQL fragments ----------------------------------------------------------------------

# The per-site window: bounds looked up by site name (a hash lookup, computed once per
# LowCardinality dictionary entry), so one statement serves sites in different time zones.
_SITE_FILTER = (
    "site_name IN {sites:Array(String)} "
    "AND %(slot)s >= transform(site_name, {sites:Array(String)}, {starts:Array(UInt32)}, toUInt32(0)) "
    "AND %(slot)s < transform(site_name, {sites:Array(String)}, {ends:Array(UInt32)}, toUInt32(0))"
)
_SITES_ONLY = "site_name IN {sites:Array(String)}"
_SLOT_RANGE = "slot >= toDateTime({lo:UInt32}, 'UTC') AND slot < toDateTime({hi:UInt32}, 'UTC')"
_SLOT_SECONDS = "toUInt32(toUnixTimestamp(slot))"
_TRIGGERS = "Map(String, UInt64)"

# Every side yields: site_name, cam_name, s, src (1 edge, 2 raw, 3 pin), peak, events,
# trig, devices, rev, in these types, so that they stack with UNION ALL.

# The edge half of the slot rule: the latest revision per device, summed over devices.
# (argMax, not FINAL: measured on 4.6 million states, FINAL read 2-3 times slower.)
_EDGE = """
SELECT site_name, cam_name, s, toUInt8(1) AS src, max(st.1) AS peak, sum(st.2) AS events,
       CAST(sumMap(st.3), '%(trig)s') AS trig, count() AS devices, max(st.4) AS rev
FROM (
    SELECT site_name, cam_name, %(state_slot)s AS s,
           argMax((toUInt64(peak), toUInt64(events), triggers, rev), rev) AS st
    FROM slot_states
    WHERE %(slot_range)s AND %(state_sites)s
    GROUP BY site_name, device_id, cam_name, s
)
GROUP BY site_name, cam_name, s
"""

_RAW_SCAN = """
SELECT site_name, cam_name, %(raw_slot)s AS s, toUInt8(2) AS src,
       toUInt64(max(people_count)) AS peak, toUInt64(count()) AS events,
       CAST(sumMap(event_triggers, arrayMap(t -> toUInt64(1), event_triggers)), '%(trig)s') AS trig,
       toUInt64(0) AS devices, toUInt64(0) AS rev
FROM camera_events
WHERE %(raw_range)s AND %(raw_sites)s
GROUP BY site_name, cam_name, s
"""

_RAW_ROLLUP = """
SELECT site_name, cam_name, %(state_slot)s AS s, toUInt8(2) AS src,
       toUInt64(max(peak)) AS peak, toUInt64(sum(events)) AS events,
       CAST(sumMap(triggers), '%(trig)s') AS trig, toUInt64(0) AS devices, toUInt64(0) AS rev
FROM """ + ROLLUP_TABLE + """
WHERE %(slot_range)s AND %(state_sites)s
GROUP BY site_name, cam_name, s
"""

_PINS = """
SELECT site_name, cam_name, %(state_slot)s AS s, toUInt8(3) AS src, toUInt64(0) AS peak,
       toUInt64(0) AS events, CAST(map(), '%(trig)s') AS trig,
       toUInt64(0) AS devices, toUInt64(0) AS rev
FROM slot_repairs
WHERE %(slot_range)s AND %(state_sites)s
GROUP BY site_name, cam_name, s
"""

# Trigger names that occur in a scope, from every source without choosing (states of any
# revision not yet merged away, raw): a superset of the merged answer's, read without
# aggregating.
_TRIGGER_NAMES = """
SELECT DISTINCT t FROM (
    SELECT arrayJoin(mapKeys(triggers)) AS t FROM slot_states WHERE %(slot_range)s AND %(state_sites)s
    UNION ALL
    %(raw_names)s
)
ORDER BY t
"""
_RAW_NAMES_SCAN = "SELECT arrayJoin(event_triggers) AS t FROM camera_events WHERE %(raw_range)s AND %(raw_sites)s"
_RAW_NAMES_ROLLUP = ("SELECT arrayJoin(mapKeys(triggers)) AS t FROM " + ROLLUP_TABLE
                     + " WHERE %(slot_range)s AND %(state_sites)s")

# The choice half of the slot rule. ``r_n`` counts raw rows of the slot (0 or 1).
# ``present`` is false for a slot some source names but that has no answer (pinned to
# raw, and raw has no events there): the kept answer of such a slot is a tombstone.
_CHOICE = """
SELECT site_name, cam_name, s AS slot,
       if(use_edge, e_peak, r_peak) AS peak,
       if(use_edge, e_events, r_events) AS events,
       if(use_edge, e_trig, r_trig) AS triggers,
       multiIf(pins > 0, 'repaired', use_edge, 'edge', 'raw') AS source,
       use_edge OR r_n > 0 AS present
FROM (
    SELECT site_name, cam_name, s,
           maxIf(peak, src = 1) AS e_peak, sumIf(events, src = 1) AS e_events,
           anyIf(trig, src = 1) AS e_trig,
           maxIf(peak, src = 2) AS r_peak, sumIf(events, src = 2) AS r_events,
           anyIf(trig, src = 2) AS r_trig,
           countIf(src = 1) AS e_n, countIf(src = 2) AS r_n, countIf(src = 3) AS pins,
           pins = 0 AND e_n > 0 AS use_edge
    FROM (%(sides)s)
    GROUP BY site_name, cam_name, s
)
"""
_MERGED = ("SELECT site_name, cam_name, slot, peak, events, triggers, source FROM ("
           + _CHOICE + ") WHERE present")

# The kept answers (``slot_answers``, see :mod:`central.storage.answers`): the latest version of
# each slot's answer, tombstones dropped after FINAL (a filter on a non-key column must not
# run before the versions are merged).
_ANSWERS = """
SELECT site_name, cam_name, toUInt32(toUnixTimestamp(a.slot)) AS slot, toUInt64(peak) AS peak,
       events, CAST(triggers, '%(trig)s') AS triggers, toString(source) AS source
FROM (
    SELECT site_name, cam_name, slot, peak, events, triggers, source, present
    FROM """ + ANSWERS_TABLE + """ FINAL
    WHERE %(slot_range)s AND %(state_sites)s
) AS a
WHERE present
"""

# Recompute the answers of a scope from the sources and keep them, versioned by the
# writer's clock read before the statement (so a later version never saw less).
_REFRESH = """
INSERT INTO """ + ANSWERS_TABLE + """ (site_name, slot, cam_name, peak, events, triggers, source, present, ver)
SELECT site_name, toDateTime(slot, 'UTC'), cam_name, peak, events, triggers, source, present, {ver:UInt64}
FROM (%(choice)s)
"""


def source_label(edge: int, slots: int) -> str:
    """Where the slots with events of a bucket came from: ``none`` (no slot), ``edge`` (all
    from the agents), ``raw`` (none from them: raw or repaired) or ``mixed``; the one label
    of every view."""
    if not slots:
        return "none"
    return "edge" if edge == slots else "raw" if not edge else "mixed"


def as_counts(value: Any) -> dict[str, int]:
    """A ClickHouse map (a dict, or sumMap's (keys, values)) as trigger counts, zeros dropped."""
    if not value:
        return {}
    if isinstance(value, dict):
        return {str(k): int(v) for k, v in value.items() if v}
    keys, counts = value
    return {str(k): int(v) for k, v in zip(keys, counts, strict=True) if v}


class SlotStore:
    """Reads and writes slots in one :class:`~central.storage.store.Store`.

    ``rollup`` says whether the raw side reads the ``raw_slots`` rollup (complete and kept
    by a materialized view) or scans ``camera_events``; :mod:`central.storage.rollup` decides it.
    """

    def __init__(self, store: Storage, raw_time: RawTime, rollup: bool = False, answers: bool = False):
        self.store = store
        self.raw_time = raw_time
        self.rollup = rollup
        self.answers = answers
        #: The kept site-days (central.storage.days.DayKeeper), refreshed after the slots; set by
        #: whoever knows the sites' zones.
        self.days: Any = None
        #: The keeper (central.storage.keeper.Keeper) that owns every consequence of a write.
        self.keeper: Any = None
        # Two shapes of each statement: per-site windows (transform), or one range for all
        # sites (cheaper: the primary key alone narrows it).
        self._sides: dict[bool, str] = {}
        self._computed: dict[bool, str] = {}
        self._kept: dict[bool, str] = {}
        self._refresh: dict[bool, str] = {}
        self._trigger_names: dict[bool, str] = {}
        for windowed in (True, False):
            site_filter = _SITE_FILTER if windowed else _SITES_ONLY
            frag = {
                "trig": _TRIGGERS,
                "state_slot": _SLOT_SECONDS,
                "slot_range": _SLOT_RANGE,
                "state_sites": site_filter % {"slot": _SLOT_SECONDS},
                "raw_slot": raw_time.slot,
                "raw_range": raw_time.where("lo", "hi"),
                "raw_sites": site_filter % {"slot": raw_time.slot},
            }
            raw = (_RAW_ROLLUP if rollup else _RAW_SCAN) % frag
            sides = "%s UNION ALL %s UNION ALL %s" % (_EDGE % frag, raw, _PINS % frag)
            self._sides[windowed] = sides
            self._computed[windowed] = _MERGED % {"sides": sides}
            self._kept[windowed] = _ANSWERS % frag
            self._refresh[windowed] = _REFRESH % {"choice": _CHOICE % {"sides": sides}}
            raw_names = (_RAW_NAMES_ROLLUP if rollup else _RAW_NAMES_SCAN) % frag
            self._trigger_names[windowed] = _TRIGGER_NAMES % {**frag, "raw_names": raw_names}

    # -- reading ----------------------------------------------------------------------

    def sides_sql(self, scope: Scope | None = None) -> str:
        """The three sources stacked (edge, raw, pins): ``site_name, cam_name, s, src
        (1 edge, 2 raw, 3 pin), peak, events, trig, devices, rev``; parameters of a Scope.
        Without ``scope`` the statement serves any scope; with one, that scope's shape."""
        return self._sides[scope is None or scope.windows is not None]

    def merged_sql(self, scope: Scope | None = None) -> str:
        """The slot rule's answer per slot, as a subquery: ``site_name, cam_name, slot,
        peak, events, triggers, source``; parameters of a Scope. Without ``scope`` the
        statement serves any scope; with one, that scope's shape (cheaper for one range).
        It reads the kept answers where they are kept (``answers``), else computes them."""
        windowed = scope is None or scope.windows is not None
        return (self._kept if self.answers else self._computed)[windowed]

    def computed_sql(self, scope: Scope | None = None) -> str:
        """The same answers computed from the sources (what the kept answers are checked
        against, and what they are made from)."""
        return self._computed[scope is None or scope.windows is not None]

    def refresh_sql(self, scope: Scope | None = None) -> str:
        """INSERT the answers of a scope's slots, computed now, into ``slot_answers``;
        parameters of a Scope plus ``ver`` (see :func:`version`)."""
        return self._refresh[scope is None or scope.windows is not None]

    def trigger_names_sql(self, scope: Scope | None = None) -> str:
        """Column ``t``: every trigger name in the scope's edge states and raw rows, sorted;
        a superset of the merged answer's (a pinned or superseded slot may add a name),
        cheap (no aggregation); parameters of a Scope."""
        return self._trigger_names[scope is None or scope.windows is not None]

    def data_range(self, site: str) -> tuple[int, int] | None:
        """The first and last slot (Unix seconds) of ``site`` in any source, or None where it
        has none: what an empty day's answer says about where the data lies. Reads the
        site's rows of the edge states and of the rollup (or of raw), keyed by site first."""
        return self.data_ranges([site]).get(site)

    def data_ranges(self, sites: list[str] | None = None) -> dict[str, tuple[int, int]]:
        """:meth:`data_range` of ``sites`` (None: of every site), in one statement."""
        where = "WHERE site_name IN {sites:Array(String)}" if sites is not None else ""
        raw = ("SELECT site_name, min(%(s)s) AS lo, max(%(s)s) AS hi FROM %(table)s %(where)s GROUP BY site_name"
               % ({"s": _SLOT_SECONDS, "table": ROLLUP_TABLE, "where": where} if self.rollup
                  else {"s": self.raw_time.slot, "table": "camera_events", "where": where}))
        sql = ("SELECT site_name, min(lo), max(hi) FROM ("
               "SELECT site_name, min(%(s)s) AS lo, max(%(s)s) AS hi FROM slot_states %(where)s GROUP BY site_name "
               "UNION ALL %(raw)s) WHERE hi > 0 GROUP BY site_name" % {"s": _SLOT_SECONDS, "raw": raw, "where": where})
        rows = self.store.query(sql, parameters={"sites": sites} if sites is not None else {})
        return {str(r[0]): (int(r[1]), int(r[2])) for r in rows}

    def merged(self, scope: Scope) -> list[SlotRow]:
        return [_row(r) for r in self.store.query(self.merged_sql(scope), parameters=scope.params())]

    async def amerged(self, scope: Scope) -> list[SlotRow]:
        assert isinstance(self.store, Store)
        return [_row(r) for r in await self.store.aquery(self.merged_sql(scope), scope.params())]

    # -- keeping the answers -------------------------------------------------------------

    def refresh(self, touched: dict[str, Iterable[int]], days: bool = True) -> None:
        """Recompute and keep the answers of the slots a write touched (site -> slot starts),
        then of their site-days unless ``days`` is false (the live feed keeps them behind,
        :meth:`central.storage.days.DayKeeper.submit`); a no-op where answers are not kept. Call it
        after the write has returned."""
        if not self.answers:
            return
        scopes = touched_scopes(touched)
        for scope in scopes:
            self.refresh_scope(scope)
        if scopes and days and self.days is not None:
            self.days.refresh(touched)

    def refresh_scope(self, scope: Scope) -> None:
        """Recompute and keep the answers of every slot of ``scope`` (whether kept or not)."""
        self.store.command(self.refresh_sql(scope), parameters={**scope.params(), "ver": version()})

    async def arefresh(self, touched: dict[str, Iterable[int]]) -> None:
        if self.answers and touched:
            assert isinstance(self.store, Store)
            await self.store.arun(self.refresh, touched)

    # -- writing ----------------------------------------------------------------------

    def write_states(self, rows: Sequence[Sequence[Any]]) -> None:
        """Edge states, each row in :data:`STATE_COLUMNS` order; then their answers."""
        self.store.insert("slot_states", rows, STATE_COLUMNS)
        self._keep(_touched(rows, STATE_COLUMNS))

    async def awrite_raw(self, rows: Sequence[Sequence[Any]], settings: dict | None = None) -> None:
        """Raw events, each row in :data:`RAW_COLUMNS` order (the rollup follows by itself)."""
        assert isinstance(self.store, Store)
        await self.store.ainsert("camera_events", rows, RAW_COLUMNS, settings)

    def write_repairs(self, rows: Sequence[Sequence[Any]], settings: dict | None = None) -> None:
        """Pins, each row in :data:`REPAIR_COLUMNS` order; then their answers."""
        self.store.insert("slot_repairs", rows, REPAIR_COLUMNS, settings=settings)
        self._keep(_touched(rows, REPAIR_COLUMNS))

    def _keep(self, touched: dict[str, set[int]]) -> None:
        # Through the keeper where there is one (it also tells the listeners).
        if self.keeper is not None:
            self.keeper.keep(touched)
        else:
            self.refresh(touched)


def version() -> int:
    """The version of answers about to be computed: this clock, read before the statement
    starts, so that of two versions of a slot the higher one saw every write the lower one
    saw (replicas must keep their clocks in step, as for any ReplacingMergeTree version)."""
    return time.time_ns()


def touched_scope(touched: dict[str, Iterable[int]]) -> Scope | None:
    """The slots a write touched as a Scope: per site, its first to its last slot (for a
    read; a recomputation takes :func:`touched_scopes`)."""
    windows = {}
    for site, slots in touched.items():
        slots = list(slots)
        if slots:
            windows[site] = (min(slots), max(slots) + SLOT_SECONDS)
    return Scope.per_site(windows) if windows else None


#: Touched slots further apart than this are recomputed by separate statements.
RUN_GAP = 2 * 86400


def runs(slots: Iterable[int], gap: int = RUN_GAP) -> list[tuple[int, int]]:
    """Slot starts as sorted [start, end) windows, a new one wherever two are more than
    ``gap`` seconds apart."""
    out: list[tuple[int, int]] = []
    for s in sorted({int(x) for x in slots}):
        if out and s - (out[-1][1] - SLOT_SECONDS) <= gap:
            out[-1] = (out[-1][0], s + SLOT_SECONDS)
        else:
            out.append((s, s + SLOT_SECONDS))
    return out


def touched_scopes(touched: dict[str, Iterable[int]]) -> list[Scope]:
    """The slots a write touched as per-site windows, run by run (scope i holds the i-th run
    of each site): an event of 2000 beside one of today is two small windows, never the
    26 years between them."""
    rounds: list[dict[str, tuple[int, int]]] = []
    for site, slots in touched.items():
        for i, window in enumerate(runs(slots)):
            if i == len(rounds):
                rounds.append({})
            rounds[i][site] = window
    return [Scope.per_site(r) for r in rounds]


def unix(value: Any) -> int:
    """Unix seconds of a slot as a row holds it: a datetime (naive ones are UTC, as
    clickhouse-connect returns a DateTime('UTC') column) or a number."""
    if isinstance(value, datetime):
        return int(value.replace(tzinfo=value.tzinfo or timezone.utc).timestamp())
    return int(value)


def _touched(rows: Sequence[Sequence[Any]], columns: Sequence[str]) -> dict[str, set[int]]:
    """site -> slot starts of rows about to be written (slot a datetime or Unix seconds)."""
    site_at, slot_at = columns.index("site_name"), columns.index("slot")
    touched: dict[str, set[int]] = {}
    for row in rows:
        slot = row[slot_at]
        touched.setdefault(str(row[site_at]), set()).add(unix(slot))
    return touched


def _row(r: Sequence[Any]) -> SlotRow:
    site, cam, slot, peak, events, triggers, source = r
    return SlotRow(site, cam, int(slot), int(peak), int(events), as_counts(triggers), source)
