"""The kept answers: ``slot_answers``, the slot rule's answer per (site, camera, slot), kept on write.

Computing the slot rule at read time means choosing a source for every (camera, slot) of
the range: a GROUP BY over every key (about 560k for one site-year), which no cache can
hide from the views that are watched live or that span months. So the answer is kept
instead, and every view reads it with ``FINAL`` and aggregates straight into its buckets
(:meth:`central.storage.slots.SlotStore.merged_sql`).

**Writes.** Each writer recomputes the answers of the slots it touched right after its
insert, from the sources, with :meth:`~central.storage.slots.SlotStore.refresh` (one
``INSERT ... SELECT``): the MQTT consumer before it acknowledges a batch (a failed refresh
is retried with the batch), ``POST /api/v1/events`` before it answers, reconciliation after
it pins slots. An answer carries the writer's clock read before the statement as its
version, so that the highest version of a slot saw every write an earlier one saw.

**Other writers.** Rows the customer's own ingestion puts into ``camera_events`` are noted
by the materialized view ``slot_dirty_mv`` in ``slot_dirty`` (kept two days), pins of
``reconcile --repair`` by ``slot_dirty_repairs_mv``, and
:class:`central.storage.keeper.Follower` in ``serve`` keeps their slots about once a second
(overlapping its last 5 s, for inserts that commit out of order) through the keeper, which
tells every listener. Slots this process already told of since are skipped.

**Build.** :func:`build` creates the tables and the view, then computes the answers of all
data already stored in chunks of one day with a progress line, and records version
:data:`VERSION` in ``heatmap_schema``. Writes during the build are refreshed by their
writers (a later version wins), so it needs no pause. Answers are kept only where the raw
rollup is (:mod:`central.storage.rollup`: the same grants and engines); otherwise, and until the
build is complete, the views compute the rule at read time (slower), and ``/healthz``
says which (``slot_answers``).

Limits: rows deleted from the sources (``ALTER ... DELETE``, a TTL) leave their answers in
place until the slot is written again; in cluster mode replicas' clocks must agree within
the time between two writes of one slot.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from datetime import datetime, timezone

from shared.slots import SLOT_SECONDS

from ..exceptions import StorageError, StorageUnavailable
from ..sites import Sites
from .days import BY_DAY_TABLE, BY_DAY_VIEW, DAYS_TABLE, DayKeeper, by_day_view_ddl
from .rollup import RollupStatus, usable_source
from .schema import (
    ANSWERS_VERSION,
    TABLES,
    RawTime,
    add_missing_columns,
    partition_key,
    table_ddl,
    table_exists,
)
from .schema import DAYS_VERSION as SCHEMA_DAYS_VERSION
from .slots import ANSWERS_TABLE, Scope, SlotStore, unix
from .store import Storage

__all__ = ["AnswersStatus", "VERSION", "VIEW", "DIRTY_TABLE", "status", "ensure", "build", "days_built_from", "REPAIRS_VIEW", "dirty_view_ddl", "repairs_view_ddl"]

logger = logging.getLogger(__name__)

#: The heatmap_schema versions that record a complete build: of the slots, then of the
#: site-days (central.storage.days).
VERSION = ANSWERS_VERSION
DAYS_VERSION = SCHEMA_DAYS_VERSION
DIRTY_TABLE = "slot_dirty"
VIEW = DIRTY_TABLE + "_mv"
#: Pins written by ``reconcile --repair`` (another process) are noted in slot_dirty too.
REPAIRS_VIEW = DIRTY_TABLE + "_repairs_mv"
_CHUNK_SECONDS = 86400
_OVERLAP_MS = 5000


#: Whether readers may use the kept answers; ``reason`` says why not (or how they are
#: kept): the shape of the rollup's status.
AnswersStatus = RollupStatus



def dirty_view_ddl(raw_time: RawTime, source: str, cluster: str | None) -> str:
    """The view that notes the slots of every row inserted into camera_events (``source``:
    its local table in cluster mode) in ``slot_dirty``."""
    on = " ON CLUSTER %s" % cluster if cluster else ""
    target = DIRTY_TABLE + "_local" if cluster else DIRTY_TABLE
    return ("CREATE MATERIALIZED VIEW %s%s TO %s AS SELECT DISTINCT site_name, cam_name, "
            "toDateTime(%s, 'UTC') AS slot, now64(3, 'UTC') AS at FROM %s"
            % (VIEW, on, target, raw_time.slot, source))


def repairs_view_ddl(cluster: str | None) -> str:
    """The view that notes every pin in ``slot_dirty``, so that a running serve follows a
    repair made by ``reconcile --repair`` in another process."""
    on = " ON CLUSTER %s" % cluster if cluster else ""
    source, target = ("slot_repairs_local", DIRTY_TABLE + "_local") if cluster else ("slot_repairs", DIRTY_TABLE)
    return ("CREATE MATERIALIZED VIEW IF NOT EXISTS %s%s TO %s AS SELECT DISTINCT site_name, cam_name, slot, "
            "now64(3, 'UTC') AS at FROM %s" % (REPAIRS_VIEW, on, target, source))


def _recorded(store: Storage) -> set[int]:
    rows = store.query("SELECT version FROM heatmap_schema FINAL WHERE version IN {v:Array(UInt32)}",
                       parameters={"v": [VERSION, DAYS_VERSION]})
    return {int(r[0]) for r in rows}


def status(store: Storage, rollup: RollupStatus) -> AnswersStatus:
    """Whether complete answers are kept (no DDL)."""
    if not rollup.available:
        return AnswersStatus(False, "no raw rollup (%s)" % rollup.reason)
    if (_recorded(store) == {VERSION, DAYS_VERSION} and table_exists(store, VIEW) and table_exists(store, ANSWERS_TABLE)
            and table_exists(store, DAYS_TABLE) and table_exists(store, BY_DAY_TABLE)
            and table_exists(store, BY_DAY_VIEW)):
        return AnswersStatus(True, "kept on write, %s follows other writers" % VIEW)
    return AnswersStatus(False, "not built yet: run python -m central migrate")


def ensure(store: Storage, raw_time: RawTime, rollup: RollupStatus, cluster: str | None, build_it: bool,
           sites: Sites, progress: Callable[[int, int, int], None] | None = None) -> AnswersStatus:
    """Use the answers if complete, else build them when ``build_it``; never raises for
    answers central may not keep (the answer says why, and the views compute the rule)."""
    try:
        current = status(store, rollup)
        if current.available or not build_it or not rollup.available:
            result = current
            if current.available and not table_exists(store, REPAIRS_VIEW):
                store.command(repairs_view_ddl(cluster))  # kept by a version without it
        else:
            result = build(store, raw_time, cluster, sites, progress)
    except StorageUnavailable:
        raise
    except StorageError as exc:
        result = AnswersStatus(False, "cannot build the kept answers: %s" % exc)
    if result.available:
        logger.info("slot answers: %s", result.reason)
    else:
        logger.warning("slot answers not kept, views compute the slot rule when read (slower): %s", result.reason)
    return result


def days_built_from(store: Storage) -> int:
    """When the last build of the site-days began (Unix nanoseconds, as slot versions; 0 if
    never): every slot kept before then is in the days it computed."""
    rows = store.query("SELECT toUnixTimestamp64Nano(max(applied_at)) FROM heatmap_schema WHERE version = {v:UInt32}",
                       parameters={"v": DAYS_VERSION})
    return int(rows[0][0]) if rows and rows[0][0] else 0


def build(store: Storage, raw_time: RawTime, cluster: str | None, sites: Sites,
          progress: Callable[[int, int, int], None] | None = None,
          chunk_seconds: int = _CHUNK_SECONDS) -> AnswersStatus:
    """(Re)create the tables and the view, and compute the answers of every stored slot,
    then of every site-day (a build whose slots were done resumes with the days)."""
    source, why = usable_source(store)
    if source is None:
        return AnswersStatus(False, why)
    _drop_days_of_another_layout(store, cluster)
    for name in (ANSWERS_TABLE, DIRTY_TABLE, DAYS_TABLE, BY_DAY_TABLE):
        for stmt in table_ddl(TABLES[name], cluster):
            store.command(stmt)
    add_missing_columns(store, TABLES[DAYS_TABLE], cluster)  # kept by an earlier version
    store.command(by_day_view_ddl(cluster))  # before the days' build, which fills both
    if VERSION not in _recorded(store) or not table_exists(store, VIEW):
        _build_slots(store, raw_time, cluster, source, progress, chunk_seconds)
    slots = SlotStore(store, raw_time, rollup=True, answers=True)
    started, built_from = time.monotonic(), datetime.now(timezone.utc)
    chunks = DayKeeper(slots, sites).build(progress)
    _settle_days(store, cluster)
    # Recorded as of its start: each slot kept before then is in the days (days_built_from).
    store.insert("heatmap_schema", [[DAYS_VERSION, "day_answers built from the slots kept before applied_at "
                                     "(%d chunks)" % chunks, built_from]], ["version", "description", "applied_at"])
    logger.info("day answers built: %d chunks in %.1f s", chunks, time.monotonic() - started)
    return AnswersStatus(True, "kept on write, %s follows other writers" % VIEW)


def _settle_days(store: Storage, cluster: str | None) -> None:
    """Merge each month of the days just built into one part: the build writes a week of
    each zone's sites per statement, and every part a read spans costs it (measured on chDB,
    a year of 100 sites as built, 58 parts: the year by day 34.8 ms, 16.8 ms merged)."""
    on = " ON CLUSTER %s" % cluster if cluster else ""
    started = time.monotonic()
    try:
        for name in (DAYS_TABLE, BY_DAY_TABLE):
            store.command("OPTIMIZE TABLE %s%s%s FINAL" % (name, "_local" if cluster else "", on),
                          settings={"max_execution_time": 0})
    except StorageError as exc:  # the background merges get there later; reads are slower till then
        logger.warning("site-days: not merged by month (%s); ClickHouse merges them in the background", exc)
        return
    logger.info("site-days: merged by month in %.1f s", time.monotonic() - started)


def _drop_days_of_another_layout(store: Storage, cluster: str | None) -> None:
    """Drop the site-days' tables (and the view between them) where an earlier version made
    them with another partition key: they are computed from the slots, and the build that
    follows makes them anew (a partition key cannot be altered)."""
    suffix = "_local" if cluster else ""
    layouts = {name: partition_key(store, name + suffix) for name in (DAYS_TABLE, BY_DAY_TABLE)}
    if all(key in (None, TABLES[name].partition_by.replace(" ", "")) for name, key in layouts.items()):
        return
    logger.info("site-days: tables of an earlier layout (partition keys %s), made anew", layouts)
    on = " ON CLUSTER %s SYNC" % cluster if cluster else " SYNC"
    store.command("DROP VIEW IF EXISTS %s%s" % (BY_DAY_VIEW, on))
    for name in (BY_DAY_TABLE, DAYS_TABLE):
        for table in ((name, name + "_local") if cluster else (name,)):
            store.command("DROP TABLE IF EXISTS %s%s" % (table, on))


def _build_slots(store: Storage, raw_time: RawTime, cluster: str | None, source: str,
                 progress: Callable[[int, int, int], None] | None, chunk_seconds: int) -> None:
    on = " ON CLUSTER %s" % cluster if cluster else ""
    store.command("DROP VIEW IF EXISTS %s%s" % (VIEW, on))
    store.command(dirty_view_ddl(raw_time, source, cluster))
    store.command(repairs_view_ddl(cluster))
    slots = SlotStore(store, raw_time, rollup=True)
    started = time.monotonic()
    # Every site and the span of every source (the rollup stands for raw).
    rows = store.query(
        "SELECT groupUniqArray(site_name), min(lo), max(hi) FROM ("
        "SELECT site_name, min(slot) AS lo, max(slot) AS hi FROM slot_states GROUP BY site_name "
        "UNION ALL SELECT site_name, min(slot), max(slot) FROM raw_slots GROUP BY site_name "
        "UNION ALL SELECT site_name, min(slot), max(slot) FROM slot_repairs GROUP BY site_name)")
    sites, lo, hi = rows[0] if rows else ([], None, None)
    chunks = 0
    if sites:
        lo, hi = unix(lo), unix(hi) + SLOT_SECONDS
        step = max(SLOT_SECONDS, chunk_seconds // SLOT_SECONDS * SLOT_SECONDS)
        pieces = list(range(lo - lo % step, hi, step))
        for done, start in enumerate(pieces, 1):
            slots.refresh_scope(Scope.of(sites, start, start + step))
            if progress is not None:
                progress(done, len(pieces), start + step)
            elif done == len(pieces) or done % 30 == 0:
                logger.info("slot answers build: %d/%d days, %.0f s", done, len(pieces), time.monotonic() - started)
        chunks = len(pieces)
    store.insert("heatmap_schema", [[VERSION, "slot_answers built (%d sites, %d chunks)" % (len(sites), chunks),
                                     datetime.now(timezone.utc)]], ["version", "description", "applied_at"])
    logger.info("slot answers built: %d sites, %d chunks in %.1f s", len(sites), chunks, time.monotonic() - started)
