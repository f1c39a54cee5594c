"""The raw rollup: ``raw_slots``, camera_events per (site, camera, 15-minute slot), kept by ClickHouse.

A materialized view ``raw_slots_mv`` on ``camera_events`` (on its local table where it is
Distributed, ``ON CLUSTER`` in cluster mode) aggregates every inserted block into
``raw_slots`` (AggregatingMergeTree: peak = max, events = sum, trigger counts = sumMap with
ARRAY JOIN semantics), so rows from any writer, ours or the customer's own ingestion, land
in it. Readers group by the key again (rows of unmerged parts add up), see
:mod:`central.storage.slots`.

**Backfill.** Rows inserted before the view existed are aggregated by :func:`build`: merges
of the source table are stopped, the view is created, the active parts of that moment are
listed, then ``INSERT ... SELECT`` from exactly those parts runs in chunks of time with a
progress line, and merges start again. Parts written after the view (which the view has
already counted) are never read twice. The build is recorded in ``heatmap_schema`` as
version :data:`VERSION`; a build interrupted midway is started over (the view is dropped and
``raw_slots`` truncated). Limits: an insert already running at the instant the view is
created may be missed or counted twice (on embedded chDB nothing else writes, so it is
exact); in cluster mode part names are matched across shards, so run ``migrate`` while the
customer's writers are paused for an exact backfill.

**Fallback.** Where central may not create the view (grants), cannot stop merges, or
``camera_events`` is not a MergeTree table (inserts into a View or Merge table do not reach
a view), :func:`ensure` says why and the readers scan ``camera_events`` instead; ``/healthz``
shows ``raw_rollup`` and the log says it once at start. ``serve`` builds the rollup on the
embedded engine only (one process); against a server, ``python -m central migrate`` builds
it once (replicas starting together must not race to rebuild it), and ``serve`` uses it
when it is complete.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from shared.slots import SLOT_SECONDS

from ..exceptions import StorageError, StorageUnavailable
from .schema import ROLLUP_VERSION, TABLES, RawTime, source_table, table_ddl, table_exists
from .slots import ROLLUP_TABLE
from .store import Storage

__all__ = ["RollupStatus", "VERSION", "VIEW", "ensure", "build", "status", "usable_source", "view_ddl", "view_select"]

logger = logging.getLogger(__name__)

#: The heatmap_schema version that records a complete backfill.
VERSION = ROLLUP_VERSION
VIEW = ROLLUP_TABLE + "_mv"
_CHUNK_SECONDS = 86400

_SELECT = """
SELECT site_name, cam_name, toDateTime(%(slot)s, 'UTC') AS slot,
       toUInt32(max(people_count)) AS peak, toUInt64(count()) AS events,
       sumMap(CAST(mapFromArrays(event_triggers, arrayMap(t -> toUInt64(1), event_triggers)),
                   'Map(String, UInt64)')) AS triggers
FROM %(source)s
%(where)s
GROUP BY site_name, cam_name, slot
"""


@dataclass(frozen=True)
class RollupStatus:
    """Whether readers may use ``raw_slots``; ``reason`` says why not (or how it was built)."""

    available: bool
    reason: str

    def as_json(self) -> dict:
        return {"available": self.available, "reason": self.reason}


def view_select(raw_time: RawTime, source: str, where: str = "") -> str:
    """The aggregation the view runs on each inserted block (and the backfill on old parts)."""
    return _SELECT % {"slot": raw_time.slot, "source": source, "where": where}


def view_ddl(raw_time: RawTime, source: str, cluster: str | None) -> str:
    """The view that aggregates every block inserted into camera_events (``source``: its
    local table in cluster mode) into ``raw_slots``."""
    on = " ON CLUSTER %s" % cluster if cluster else ""
    target = ROLLUP_TABLE + "_local" if cluster else ROLLUP_TABLE
    return "CREATE MATERIALIZED VIEW %s%s TO %s AS %s" % (VIEW, on, target, view_select(raw_time, source))


def _built(store: Storage) -> bool:
    rows = store.query("SELECT count() FROM heatmap_schema FINAL WHERE version = {v:UInt32}", parameters={"v": VERSION})
    return bool(rows and rows[0][0]) and table_exists(store, VIEW)


def usable_source(store: Storage) -> tuple[str | None, str]:
    """(local table the view must watch, or None, and why not)."""
    engine, source = source_table(store)
    if engine == "Distributed" and not table_exists(store, source):
        return None, "camera_events is Distributed over %s, which is not in this database" % source
    if engine != "Distributed":
        if not engine.endswith("MergeTree"):
            return None, "camera_events is a %s table: inserts into it do not reach a materialized view" % (
                engine or "missing")
        return source, ""
    local_engine, _ = source_table(store, source)
    if not local_engine.endswith("MergeTree"):
        return None, "camera_events' local table %s is a %s table" % (source, local_engine)
    return source, ""


def status(store: Storage) -> RollupStatus:
    """Whether a complete rollup exists (no DDL)."""
    source, why = usable_source(store)
    if source is None:
        return RollupStatus(False, why)
    if _built(store):
        return RollupStatus(True, "kept by %s on %s" % (VIEW, source))
    return RollupStatus(False, "not built yet: run python -m central migrate")


def ensure(store: Storage, raw_time: RawTime, cluster: str | None, build_it: bool,
           progress: Callable[[int, int, int], None] | None = None) -> RollupStatus:
    """Use the rollup if complete, else build it when ``build_it``; never raises for a
    rollup central may not build (the answer says why, and readers scan raw)."""
    try:
        current = status(store)
        if current.available or not build_it or current.reason.startswith("camera_events"):
            result = current
        else:
            result = build(store, raw_time, cluster, progress)
    except StorageUnavailable:
        raise
    except StorageError as exc:
        result = RollupStatus(False, "cannot build the raw rollup: %s" % exc)
    if result.available:
        logger.info("raw rollup: %s", result.reason)
    else:
        logger.warning("raw rollup unavailable, reading camera_events directly (slower): %s", result.reason)
    return result


def build(store: Storage, raw_time: RawTime, cluster: str | None,
          progress: Callable[[int, int, int], None] | None = None,
          chunk_seconds: int = _CHUNK_SECONDS) -> RollupStatus:
    """(Re)create the view and backfill what camera_events held before it; see the module."""
    source, why = usable_source(store)
    if source is None:
        return RollupStatus(False, why)
    on = " ON CLUSTER %s" % cluster if cluster else ""
    target = ROLLUP_TABLE + "_local" if cluster else ROLLUP_TABLE
    # Started over from nothing: a half-done backfill cannot be told from live rows.
    store.command("DROP VIEW IF EXISTS %s%s" % (VIEW, on))
    for stmt in table_ddl(TABLES[ROLLUP_TABLE], cluster):
        store.command(stmt)
    store.command("TRUNCATE TABLE IF EXISTS %s%s" % (target, on))
    store.command("SYSTEM STOP MERGES%s %s" % (on, source))
    try:
        store.command(view_ddl(raw_time, source, cluster))
        parts_sql = ("SELECT DISTINCT name FROM %s WHERE database = currentDatabase() "
                     "AND table = {t:String} AND active"
                     % ("clusterAllReplicas(%s, system.parts)" % cluster if cluster else "system.parts"))
        parts = [r[0] for r in store.query(parts_sql, parameters={"t": source})]
        rows = _backfill(store, raw_time, source, parts, chunk_seconds, progress) if parts else 0
    finally:
        store.command("SYSTEM START MERGES%s %s" % (on, source))
    store.insert("heatmap_schema", [[VERSION, "raw_slots rollup backfilled (%d raw rows)" % rows,
                                     datetime.now(timezone.utc)]], ["version", "description", "applied_at"])
    logger.info("raw rollup built: %d raw rows from %d parts backfilled", rows, len(parts))
    return RollupStatus(True, "kept by %s on %s" % (VIEW, source))


def _backfill(store: Storage, raw_time: RawTime, source: str, parts: list[str], chunk_seconds: int,
              progress: Callable[[int, int, int], None] | None) -> int:
    only = "_part IN {parts:Array(String)}"
    bounds = store.query("SELECT min(%s), max(%s), count() FROM %s WHERE %s"
                         % (raw_time.slot, raw_time.slot, source, only), parameters={"parts": parts})
    lo, hi, total = (int(v) for v in bounds[0])
    if not total:
        return 0
    started = time.monotonic()
    insert = "INSERT INTO %s %s" % (
        ROLLUP_TABLE, view_select(raw_time, source, "WHERE %s AND %s" % (raw_time.where("lo", "hi"), only)))
    step = max(SLOT_SECONDS, chunk_seconds // SLOT_SECONDS * SLOT_SECONDS)
    pieces = list(range(lo, hi + SLOT_SECONDS, step))
    for done, start in enumerate(pieces, 1):
        store.command(insert, parameters={"lo": start, "hi": start + step, "parts": parts})
        if progress is not None:
            progress(done, len(pieces), start + step)
        else:  # serve: the log is the progress line
            logger.info("raw rollup backfill: %d/%d chunks (to %s), %.0f s",
                        done, len(pieces), datetime.fromtimestamp(start + step, timezone.utc)
                        .strftime("%Y-%m-%d %H:%M"), time.monotonic() - started)
    return total
