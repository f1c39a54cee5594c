"""The ClickHouse schema: versioned idempotent migrations and the raw table's time column.

Central owns ``slot_states`` (edge aggregates), ``slot_repairs`` (slots pinned to raw by
reconciliation), ``dead_letters`` (refused MQTT messages), ``device_status`` (availability
and last contact per device), ``device_slots`` (device contact per slot, for coverage),
``ingest_batches`` (idempotency keys of the raw ingest API), ``raw_slots``, ``slot_answers``
and ``slot_dirty`` (the rollup and the kept answers, built by :mod:`central.storage.rollup` and
:mod:`central.storage.answers`), ``alerts`` (fired alerts and
their delivery state) and ``alert_claims`` (which replica sends which delivery attempt).
``camera_events`` is the customer's table: it is created only where absent, and an
existing one is inspected, not changed; :func:`detect_raw_time` reads the type of its
``event_timestamp`` and says how to filter and bucket it, and :func:`detect_raw_dedup` says
whether it drops a repeated insert (``insert_deduplication_token``).

Migrations are numbered; ``heatmap_schema`` records the applied ones. Every statement is
``IF NOT EXISTS``, so running them twice, or from two replicas at once, is harmless. With a
cluster name the same tables are generated ``ON CLUSTER`` as Replicated* engines
(``<table>_local``) behind Distributed tables of the plain name, so the queries do not change.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from shared.slots import SLOT_SECONDS

from ..exceptions import SchemaError, StorageError
from .store import Storage

__all__ = [
    "TABLES",
    "MIGRATIONS",
    "RawTime",
    "TableDef",
    "table_ddl",
    "migrate",
    "applied_versions",
    "detect_raw_time",
    "detect_raw_dedup",
    "source_table",
    "table_exists",
    "add_missing_columns",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class TableDef:
    name: str
    columns: tuple[tuple[str, str], ...]
    engine: str  # MergeTree family name without "Replicated"
    engine_args: str  # e.g. "rev" for ReplacingMergeTree(rev)
    order_by: str
    shard_key: str = "rand()"
    ttl: str = ""
    #: Settings of the non-replicated table (replicated tables deduplicate by default).
    settings: str = ""
    partition_by: str = ""


_NAME_MAP = "Map(LowCardinality(String), UInt32)"

# The site-days' columns (central.storage.days).
_DAY_ANSWER_COLUMNS: tuple[tuple[str, str], ...] = (
    ("site_name", "LowCardinality(String)"),
    ("day", "Date"),
    ("tz", "LowCardinality(String)"),
    # per (camera, local hour) with events: the dashboard's zones and zone_hourly
    ("cams", "Array(LowCardinality(String))"),
    ("hours", "Array(UInt8)"),
    ("peaks", "Array(UInt32)"),
    ("events", "Array(UInt64)"),
    # per (camera, local hour) too: trigger counts, slots with events from the
    # edge and in all (history by hour, and by day or week for one zone)
    ("cell_triggers", "Array(Map(String, UInt64))"),
    ("cell_edge", "Array(UInt32)"),
    ("cell_slots", "Array(UInt32)"),
    # the day: trigger counts, slots with events per source
    ("triggers", "Map(String, UInt64)"),
    ("edge", "UInt32"),
    ("raw", "UInt32"),
    ("repaired", "UInt32"),
    # per camera and per local hour (overview, history by day and week)
    ("zone_cams", "Array(LowCardinality(String))"),
    ("zone_peaks", "Array(UInt32)"),
    ("zone_events", "Array(UInt64)"),
    ("hour_keys", "Array(UInt8)"),
    ("hour_peaks", "Array(UInt32)"),
    # per local hour too (history by hour for all zones): events, trigger counts, slots
    # with events from the edge and in all
    ("hour_events", "Array(UInt64)"),
    ("hour_triggers", "Array(Map(String, UInt64))"),
    ("hour_edge", "Array(UInt32)"),
    ("hour_slots", "Array(UInt32)"),
    ("ver", "UInt64"),
)
DAYS_PARTITION = "toYYYYMM(day)"
#: The overview's columns of them, in day_answers_by_day.
_BY_DAY_COLUMNS = ("site_name", "day", "tz", "triggers", "edge", "raw", "repaired", "zone_cams", "zone_peaks",
                   "zone_events", "hour_keys", "hour_peaks", "ver")


TABLES: dict[str, TableDef] = {
    t.name: t
    for t in (
        TableDef(
            "camera_events",
            (
                ("site_name", "LowCardinality(String)"),
                ("cam_name", "LowCardinality(String)"),
                ("people_count", "UInt16"),
                ("event_timestamp", "DateTime('UTC')"),
                ("event_triggers", "Array(String)"),
            ),
            "MergeTree",
            "",
            "(site_name, event_timestamp, cam_name)",
            shard_key="cityHash64(site_name)",
            # Lets an Idempotency-Key (insert_deduplication_token) make a retried batch a no-op.
            settings="non_replicated_deduplication_window = 10000",
        ),
        TableDef(
            "slot_states",
            (
                ("site_name", "LowCardinality(String)"),
                ("device_id", "LowCardinality(String)"),
                ("cam_name", "LowCardinality(String)"),
                ("slot", "DateTime('UTC')"),
                ("peak", "UInt16"),
                ("events", "UInt32"),
                ("triggers", _NAME_MAP),
                ("rev", "UInt64"),
                ("received_at", "DateTime64(3, 'UTC')"),
            ),
            "ReplacingMergeTree",
            "rev",
            "(site_name, cam_name, slot, device_id)",
            shard_key="cityHash64(site_name)",
        ),
        # The raw rollup, kept by a materialized view on camera_events (central.storage.rollup).
        TableDef(
            "raw_slots",
            (
                ("site_name", "LowCardinality(String)"),
                ("cam_name", "LowCardinality(String)"),
                ("slot", "DateTime('UTC')"),
                ("peak", "SimpleAggregateFunction(max, UInt32)"),
                ("events", "SimpleAggregateFunction(sum, UInt64)"),
                ("triggers", "SimpleAggregateFunction(sumMap, Map(String, UInt64))"),
            ),
            "AggregatingMergeTree",
            "",
            "(site_name, cam_name, slot)",
            shard_key="cityHash64(site_name)",
        ),
        # The slot rule's answer per slot, kept on write (central.storage.answers): the latest
        # version of each slot wins; ``present`` 0 is a slot that no longer has an answer.
        TableDef(
            "slot_answers",
            (
                ("site_name", "LowCardinality(String)"),
                ("slot", "DateTime('UTC')"),
                ("cam_name", "LowCardinality(String)"),
                ("peak", "UInt32"),
                ("events", "UInt64"),
                ("triggers", "Map(LowCardinality(String), UInt64)"),
                ("source", "LowCardinality(String)"),
                ("present", "UInt8"),
                ("ver", "UInt64"),
            ),
            "ReplacingMergeTree",
            "ver",
            "(site_name, slot, cam_name)",
            shard_key="cityHash64(site_name)",
            # A site-day is 96 x cameras rows: small granules read less around it (measured
            # on chDB: a site-day with FINAL in 3.8 ms instead of 7.4 ms at 8192).
            settings="index_granularity = 1024",
        ),
        # The day's answer per (camera, local hour), kept on write (central.storage.days): what the
        # dashboard and history read.
        TableDef(
            "day_answers",
            _DAY_ANSWER_COLUMNS,
            "ReplacingMergeTree",
            "ver",
            "(site_name, day)",
            shard_key="cityHash64(site_name)",
            # Rows of a few hundred array elements: small granules keep a lookup of one
            # site-day (or one per site) from reading thousands of them.
            settings="index_granularity = 64",
            # By month: a read of past days skips the parts the live days are written to,
            # and FINAL merges within one month's parts (measured on chDB, a year of 100
            # sites as built: one site-day 10.0 to 3.9 ms, 31 days' hours 14.7 to 6.7 ms).
            partition_by=DAYS_PARTITION,
        ),
        # The same site-days ordered by day (a materialized view of day_answers): the
        # overview reads one day of every site as one key range, not one range per site
        # (measured on chDB, 100 sites: FINAL over 100 ranges is the cost).
        TableDef(
            "day_answers_by_day",
            tuple(c for c in _DAY_ANSWER_COLUMNS if c[0] in _BY_DAY_COLUMNS),
            "ReplacingMergeTree",
            "ver",
            "(day, site_name)",
            shard_key="cityHash64(site_name)",
            settings="index_granularity = 128",
            partition_by=DAYS_PARTITION,
        ),
        # Slots of camera_events rows from any writer (a materialized view), so that
        # answers follow rows central did not write itself (central.storage.answers).
        TableDef(
            "slot_dirty",
            (
                ("site_name", "LowCardinality(String)"),
                ("cam_name", "LowCardinality(String)"),
                ("slot", "DateTime('UTC')"),
                ("at", "DateTime64(3, 'UTC')"),
            ),
            "MergeTree",
            "",
            "(at)",
            shard_key="cityHash64(site_name)",
            ttl="toDateTime(at) + INTERVAL 2 DAY",
        ),
        TableDef(
            "slot_repairs",
            (
                ("site_name", "LowCardinality(String)"),
                ("cam_name", "LowCardinality(String)"),
                ("slot", "DateTime('UTC')"),
                ("run_id", "String"),
                ("repaired_at", "DateTime64(3, 'UTC')"),
                ("repaired_by", "String"),
                ("reason", "String"),
                ("edge_peak", "UInt16"),
                ("edge_events", "UInt32"),
                ("edge_triggers", _NAME_MAP),
                ("edge_rev", "UInt64"),
                ("raw_peak", "UInt16"),
                ("raw_events", "UInt32"),
                ("raw_triggers", _NAME_MAP),
            ),
            "ReplacingMergeTree",
            "repaired_at",
            "(site_name, cam_name, slot)",
            shard_key="cityHash64(site_name)",
        ),
        TableDef(
            "dead_letters",
            (
                ("received_at", "DateTime64(3, 'UTC')"),
                ("topic", "String"),
                ("site_name", "String"),
                ("device_id", "String"),
                ("reason", "LowCardinality(String)"),
                ("field", "String"),
                ("message", "String"),
                ("payload", "String"),
                ("payload_bytes", "UInt32"),
            ),
            "MergeTree",
            "",
            "(received_at)",
            ttl="toDateTime(received_at) + INTERVAL 30 DAY",
        ),
        TableDef(
            "device_status",
            (
                ("site_name", "LowCardinality(String)"),
                ("device_id", "LowCardinality(String)"),
                ("kind", "LowCardinality(String)"),  # 'status' (availability) or 'seen'
                ("status", "LowCardinality(String)"),
                ("seen_at", "DateTime64(3, 'UTC')"),
                ("stats", "Map(LowCardinality(String), Float64)"),
            ),
            "ReplacingMergeTree",
            "seen_at",
            "(site_name, device_id, kind)",
            shard_key="cityHash64(site_name)",
        ),
        # Device contact per slot (coverage): a slot where a device sent anything, or a
        # state for that slot. Tells "device offline" from "nobody there".
        TableDef(
            "device_slots",
            (
                ("site_name", "LowCardinality(String)"),
                ("device_id", "LowCardinality(String)"),
                ("slot", "DateTime('UTC')"),
            ),
            "ReplacingMergeTree",
            "",
            "(site_name, slot, device_id)",
            shard_key="cityHash64(site_name)",
        ),
        TableDef(
            "ingest_batches",
            (
                ("idempotency_key", "String"),
                ("body_sha256", "String"),
                ("accepted", "UInt32"),
                ("created_at", "DateTime64(3, 'UTC')"),
            ),
            "ReplacingMergeTree",
            "created_at",
            "(idempotency_key)",
            shard_key="cityHash64(idempotency_key)",
            ttl="toDateTime(created_at) + INTERVAL 7 DAY",
        ),
        TableDef(
            # One row per alert, rewritten at each delivery step with a higher version; the
            # firing row has version 1, so a late duplicate firing never undoes a delivery.
            "alerts",
            (
                ("id", "String"),
                ("site_name", "LowCardinality(String)"),
                ("rule", "String"),
                ("kind", "LowCardinality(String)"),
                ("cam_name", "String"),
                ("device_id", "String"),
                ("slot", "UInt32"),
                ("trigger", "String"),
                ("value", "Float64"),
                ("fired_at", "DateTime64(3, 'UTC')"),
                ("body", "String"),
                ("webhook", "String"),
                ("state", "LowCardinality(String)"),
                ("attempts", "UInt32"),
                ("next_attempt_at", "DateTime64(3, 'UTC')"),
                ("delivered_at", "DateTime64(3, 'UTC')"),
                ("last_error", "String"),
                ("updated_by", "String"),
                ("version", "UInt64"),
            ),
            "ReplacingMergeTree",
            "version",
            "(site_name, id)",
            shard_key="cityHash64(site_name)",
            ttl="toDateTime(fired_at) + INTERVAL 90 DAY",
        ),
        TableDef(
            # Claims of delivery attempts: the earliest claim (by the server's clock) of an
            # attempt within its lease wins, so one replica sends it (docs/alerts.md).
            "alert_claims",
            (
                ("id", "String"),
                ("attempt", "UInt32"),
                ("owner", "String"),
                ("claimed_at", "DateTime64(6, 'UTC') DEFAULT now64(6)"),
            ),
            "MergeTree",
            "",
            "(id, attempt, claimed_at)",
            shard_key="cityHash64(id)",
            ttl="toDateTime(claimed_at) + INTERVAL 7 DAY",
        ),
        TableDef(
            # The keeper's marks (central.storage.keeper): what the sources and the kept
            # answers held at a clean stop, so that a start finding them unchanged needs no
            # check of every slot against its sources.
            "keeper_marks",
            (("name", "String"), ("value", "String"), ("at", "DateTime64(3, 'UTC')")),
            "ReplacingMergeTree",
            "at",
            "(name)",
            shard_key="cityHash64(name)",
        ),
    )
}

#: The versions recorded by the builds of derived tables (their tables are created and
#: filled by central.storage.rollup, central.storage.answers and central.storage.days).
ROLLUP_VERSION = 100
ANSWERS_VERSION = 101
DAYS_VERSION = 106

#: Every migration, in one list: (version, description, tables it creates, derived). A step
#: that is not derived is applied by :func:`migrate` (its tables created); a derived step's
#: tables, views and contents are built from the sources by its module, which records the
#: version once the build is complete (``migrate`` runs them after :func:`migrate`; ``serve``
#: too on the embedded engine). ``python -m central migrate --print-ddl`` prints them all.
#: Append only; never edit an applied entry.
MIGRATIONS: tuple[tuple[int, str, tuple[str, ...], bool], ...] = (
    (1, "edge aggregates, repairs, dead letters, device status, ingest batches",
     ("slot_states", "slot_repairs", "dead_letters", "device_status", "ingest_batches"), False),
    (2, "camera_events where absent (the customer's raw table)", ("camera_events",), False),
    (3, "device contact per slot (coverage)", ("device_slots",), False),
    (4, "alerts and their delivery claims", ("alerts", "alert_claims"), False),
    (5, "the keeper's marks of a clean stop", ("keeper_marks",), False),
    (ROLLUP_VERSION, "raw rollup: raw_slots, kept by raw_slots_mv on camera_events, backfilled from the parts "
     "before the view (central.storage.rollup)", ("raw_slots",), True),
    (ANSWERS_VERSION, "kept slot answers: slot_answers, and slot_dirty fed by slot_dirty_mv (camera_events) and "
     "slot_dirty_repairs_mv (slot_repairs); computed from every source (central.storage.answers)",
     ("slot_answers", "slot_dirty"), True),
    (DAYS_VERSION, "kept site-days: day_answers (by month) and day_answers_by_day fed by day_answers_by_day_mv; "
     "computed from slot_answers (central.storage.days)", ("day_answers", "day_answers_by_day"), True),
)

_VERSION_TABLE = TableDef(
    "heatmap_schema",
    (("version", "UInt32"), ("description", "String"), ("applied_at", "DateTime64(3, 'UTC')")),
    "ReplacingMergeTree",
    "applied_at",
    "(version)",
)


def _columns(table: TableDef) -> str:
    return ",\n    ".join("%s %s" % col for col in table.columns)


def table_ddl(table: TableDef, cluster: str | None = None, distributed: bool = True) -> list[str]:
    """CREATE statements for ``table``; with ``cluster``, Replicated local + Distributed."""
    tail = "ORDER BY %s" % table.order_by
    if table.partition_by:
        tail = "PARTITION BY %s\n%s" % (table.partition_by, tail)
    if table.ttl:
        tail += "\nTTL %s" % table.ttl
    if cluster is None:
        engine = "%s(%s)" % (table.engine, table.engine_args)
        settings = "\nSETTINGS %s" % table.settings if table.settings else ""
        return [
            "CREATE TABLE IF NOT EXISTS %s\n(\n    %s\n)\nENGINE = %s\n%s%s"
            % (table.name, _columns(table), engine, tail, settings)
        ]
    local = table.name + "_local" if distributed else table.name
    args = "'/clickhouse/tables/{shard}/{database}/%s', '{replica}'" % local
    if table.engine_args:
        args += ", " + table.engine_args
    stmts = [
        "CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s\n(\n    %s\n)\nENGINE = Replicated%s(%s)\n%s"
        % (local, cluster, _columns(table), table.engine, args, tail)
    ]
    if distributed:
        stmts.append(
            "CREATE TABLE IF NOT EXISTS %s ON CLUSTER %s AS %s\nENGINE = Distributed(%s, currentDatabase(), %s, %s)"
            % (table.name, cluster, local, cluster, local, table.shard_key)
        )
    return stmts


def applied_versions(store: Storage) -> set[int]:
    rows = store.query("SELECT version FROM heatmap_schema FINAL")
    return {int(r[0]) for r in rows}


def migrate(store: Storage, cluster: str | None = None) -> list[int]:
    """Apply the migrations not yet recorded; returns the versions applied now."""
    for stmt in table_ddl(_VERSION_TABLE, cluster, distributed=False):
        store.command(stmt)
    done = applied_versions(store)
    applied = []
    for version, description, tables, derived in MIGRATIONS:
        if version in done or derived:
            continue
        for name in tables:
            if name == "camera_events" and table_exists(store, name):
                logger.info("camera_events exists: using it as it is")
                continue
            for stmt in table_ddl(TABLES[name], cluster):
                store.command(stmt)
        store.insert(
            "heatmap_schema",
            [[version, description, datetime.now(timezone.utc)]],
            ["version", "description", "applied_at"],
        )
        logger.info("migration %d applied: %s", version, description)
        applied.append(version)
    return applied


def partition_key(store: Storage, name: str) -> str | None:
    """The partition key of a table in the current database ("" for none), None if absent."""
    rows = store.query("SELECT partition_key FROM system.tables WHERE database = currentDatabase() AND name = {name:String}",
                       parameters={"name": name})
    return str(rows[0][0]).replace(" ", "") if rows else None


def table_exists(store: Storage, name: str) -> bool:
    """Whether a table or view of this name is in the current database."""
    rows = store.query(
        "SELECT count() FROM system.tables WHERE database = currentDatabase() AND name = {name:String}",
        parameters={"name": name},
    )
    return bool(rows and rows[0][0])


def add_missing_columns(store: Storage, table: TableDef, cluster: str | None = None) -> list[str]:
    """Add the columns of ``table`` that its existing table lacks (a later version's), in
    place (metadata only; old rows read the type's default); returns the names added."""
    names = [table.name + "_local", table.name] if cluster else [table.name]
    on = " ON CLUSTER %s" % cluster if cluster else ""
    added: list[str] = []
    for name in names:
        have = {r[0] for r in store.query(
            "SELECT name FROM system.columns WHERE database = currentDatabase() AND table = {t:String}",
            parameters={"t": name})}
        if not have:
            continue
        previous = None
        for column, kind in table.columns:
            if column not in have:
                where = " AFTER %s" % previous if previous else " FIRST"
                store.command("ALTER TABLE %s%s ADD COLUMN IF NOT EXISTS %s %s%s" % (name, on, column, kind, where))
                added.append(column)
            previous = column
    if added:
        logger.info("table %s: added columns %s", table.name, ", ".join(sorted(set(added))))
    return added


# -- camera_events' time column ----------------------------------------------------------

_UNIX_TYPES = ("UInt32", "Int32", "Int64", "UInt64")
_WRAPPER_RE = re.compile(r"^(?:Nullable|LowCardinality)\((.*)\)$")
_REQUIRED = ("site_name", "cam_name", "people_count", "event_timestamp", "event_triggers")


@dataclass(frozen=True)
class RawTime:
    """How to filter, bucket and write ``camera_events.event_timestamp`` of one table.

    ``kind`` is ``datetime`` (DateTime), ``datetime64``, ``unix`` (integer Unix seconds) or
    ``expr`` (an operator-configured SQL expression giving a DateTime).
    """

    column_type: str
    kind: str
    expr: str | None = None

    @property
    def _as_datetime(self) -> str:
        if self.kind == "expr":
            return "(%s)" % self.expr
        if self.kind == "unix":
            return "toDateTime(event_timestamp, 'UTC')"
        return "event_timestamp"

    def where(self, start: str = "start", end: str = "end") -> str:
        """A range condition on parameters ``{start:UInt32}`` and ``{end:UInt32}`` that keeps
        the primary-key index usable (the column is compared in its own type)."""
        if self.kind == "unix":
            return "event_timestamp >= {%s:Int64} AND event_timestamp < {%s:Int64}" % (start, end)
        if self.kind == "datetime64":
            return (
                "event_timestamp >= toDateTime64({%s:UInt32}, 3, 'UTC') AND "
                "event_timestamp < toDateTime64({%s:UInt32}, 3, 'UTC')" % (start, end)
            )
        col = self._as_datetime
        return "%s >= toDateTime({%s:UInt32}, 'UTC') AND %s < toDateTime({%s:UInt32}, 'UTC')" % (
            col, start, col, end,
        )

    @property
    def slot(self) -> str:
        """SQL giving the 15-minute slot start (UInt32 Unix seconds) of each row."""
        if self.kind == "unix":
            return "toUInt32(intDiv(event_timestamp, %d) * %d)" % (SLOT_SECONDS, SLOT_SECONDS)
        return "toUInt32(intDiv(toUnixTimestamp(%s), %d) * %d)" % (self._as_datetime, SLOT_SECONDS, SLOT_SECONDS)

    @property
    def writable(self) -> bool:
        return self.kind != "expr"

    def value(self, ts: float) -> Any:
        """The value to insert for Unix time ``ts``."""
        if self.kind == "datetime64":
            return datetime.fromtimestamp(ts, timezone.utc)
        if self.kind == "expr":
            raise SchemaError("camera_events.event_timestamp is computed by an expression; cannot write it")
        return int(ts)


def _unwrap(type_name: str) -> str:
    while True:
        match = _WRAPPER_RE.match(type_name)
        if not match:
            return type_name
        type_name = match.group(1)


def detect_raw_time(store: Storage, expression: str | None = None) -> RawTime:
    """Inspect camera_events and return how to read its time column.

    Raises :class:`SchemaError` when the table lacks a column the dashboard needs, or when
    ``event_timestamp`` is ``UInt16`` and no expression is configured.
    """
    try:
        rows = store.query(
            "SELECT name, type FROM system.columns WHERE database = currentDatabase() "
            "AND table = 'camera_events'"
        )
    except StorageError:
        raise
    columns = {name: type_name for name, type_name in rows}
    if not columns:
        raise SchemaError("camera_events does not exist; run: python -m central migrate")
    missing = [c for c in _REQUIRED if c not in columns]
    if missing:
        raise SchemaError("camera_events lacks column(s) %s" % ", ".join(missing))
    type_name = _unwrap(columns["event_timestamp"])
    if expression:
        return RawTime(type_name, "expr", expression)
    if type_name.startswith("DateTime64"):
        return RawTime(type_name, "datetime64")
    if type_name.startswith("DateTime"):
        return RawTime(type_name, "datetime")
    if type_name in _UNIX_TYPES:
        return RawTime(type_name, "unix")
    if type_name == "UInt16":
        raise SchemaError(
            "camera_events.event_timestamp is UInt16, which can hold neither a Unix time "
            "(max 65535) nor seconds since midnight (86400): set HEATMAP_EVENT_TIMESTAMP_EXPR "
            "to an SQL expression giving the event time as DateTime"
        )
    raise SchemaError(
        "camera_events.event_timestamp has type %s; expected DateTime, DateTime64 or Unix "
        "seconds (UInt32/Int64), or set HEATMAP_EVENT_TIMESTAMP_EXPR" % type_name
    )


# -- camera_events' insert deduplication --------------------------------------------------

_WINDOW_RE = r"\b%s\s*=\s*'?(\d+)"
_DISTRIBUTED_RE = re.compile(r"Distributed\(\s*'?([^,']*)'?\s*,\s*'?([^,']*)'?\s*,\s*'?([^,')]*)'?")


def detect_raw_dedup(store: Storage, table: str = "camera_events", depth: int = 0) -> tuple[bool, str]:
    """Whether inserts into ``table`` honour ``insert_deduplication_token``, and why.

    Replicated tables do unless ``replicated_deduplication_window = 0``; plain MergeTree
    tables only with a non-zero ``non_replicated_deduplication_window`` (table setting, else
    the server's default, which is 0); a Distributed table as its local table does.
    """
    rows = store.query(
        "SELECT engine, engine_full FROM system.tables WHERE database = currentDatabase() AND name = {name:String}",
        parameters={"name": table},
    )
    if not rows:
        return False, "%s not found in this database" % table
    engine, full = rows[0]
    if engine == "Distributed":
        match = _DISTRIBUTED_RE.search(full)
        if match and depth == 0:
            ok, why = detect_raw_dedup(store, match.group(3), depth + 1)
            return ok, "Distributed over %s: %s" % (match.group(3), why)
        return False, "Distributed table whose local table is not in this database"
    if not engine.endswith("MergeTree"):
        return False, "engine %s does not deduplicate inserts" % engine
    setting = ("replicated_deduplication_window" if engine.startswith("Replicated")
               else "non_replicated_deduplication_window")
    match = re.search(_WINDOW_RE % setting, full)
    if match:
        window = int(match.group(1))
    else:
        server = store.query("SELECT value FROM system.merge_tree_settings WHERE name = {name:String}",
                             parameters={"name": setting})
        window = int(server[0][0]) if server else 0
    return window > 0, "%s %s = %d" % (engine, setting, window)


def source_table(store: Storage, table: str = "camera_events") -> tuple[str, str]:
    """(engine, name) of the table that inserts into ``table`` land in: the table itself,
    or for a Distributed table its local table (named in this database)."""
    rows = store.query(
        "SELECT engine, engine_full FROM system.tables WHERE database = currentDatabase() AND name = {name:String}",
        parameters={"name": table},
    )
    if not rows:
        return "", table
    engine, full = rows[0]
    if engine == "Distributed":
        match = _DISTRIBUTED_RE.search(full)
        if match:
            return engine, match.group(3)
    return engine, table
