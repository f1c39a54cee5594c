"""Migrations on the real engine (chDB or the test server), camera_events type detection, cluster DDL."""

from __future__ import annotations

import pytest

from central.exceptions import SchemaError
from central.storage import schema
from central.storage.store import Store


@pytest.fixture
def store(clickhouse_url):
    s = Store(clickhouse_url)
    yield s
    s.close()


def _tables(store):
    return {r[0] for r in store.query("SELECT name FROM system.tables WHERE database = currentDatabase()")}


def test_migrate_creates_every_table_and_is_idempotent(store):
    assert schema.migrate(store) == [1, 2, 3, 4, 5]
    assert {"camera_events", "slot_states", "slot_repairs", "dead_letters", "device_status",
            "device_slots", "ingest_batches", "alerts", "alert_claims", "keeper_marks", "heatmap_schema"} <= _tables(store)
    assert schema.migrate(store) == []
    assert schema.applied_versions(store) == {1, 2, 3, 4, 5}
    raw = schema.detect_raw_time(store)
    assert raw.kind == "datetime"


def test_contract_columns(store):
    schema.migrate(store)
    cols = dict(store.query(
        "SELECT name, type FROM system.columns WHERE database = currentDatabase() AND table = 'slot_repairs'"))
    assert cols["edge_triggers"] == "Map(LowCardinality(String), UInt32)"
    assert cols["repaired_at"] == "DateTime64(3, 'UTC')"
    engine = store.query("SELECT engine_full FROM system.tables WHERE name = 'slot_states' AND database = currentDatabase()")[0][0]
    assert engine.startswith("ReplacingMergeTree(rev)")


@pytest.mark.parametrize(
    ("column_type", "kind"),
    [("DateTime64(3, 'UTC')", "datetime64"), ("UInt32", "unix"), ("Int64", "unix"), ("DateTime", "datetime")],
)
def test_existing_camera_events_is_adapted_to(store, column_type, kind):
    store.command(
        "CREATE TABLE camera_events (site_name String, cam_name String, people_count UInt16, "
        "event_timestamp %s, event_triggers Array(String), extra UInt8) ENGINE = MergeTree ORDER BY site_name" % column_type
    )
    schema.migrate(store)
    raw = schema.detect_raw_time(store)
    assert raw.kind == kind
    # The filter and slot expressions run on that type and bucket to 15 minutes.
    store.insert("camera_events", [["S", "C", 3, raw.value(1767600123.0), ["X"]]],
                 ["site_name", "cam_name", "people_count", "event_timestamp", "event_triggers"])
    rows = store.query(
        "SELECT %s FROM camera_events WHERE site_name = {site:String} AND %s" % (raw.slot, raw.where()),
        parameters={"site": "S", "start": 1767600000, "end": 1767600900},
    )
    assert rows == [(1767600000,)]


def test_uint16_timestamp_is_refused_unless_an_expression_is_set(store):
    store.command(
        "CREATE TABLE camera_events (site_name String, cam_name String, people_count UInt16, "
        "event_timestamp UInt16, event_date Date, event_triggers Array(String)) ENGINE = MergeTree ORDER BY site_name"
    )
    with pytest.raises(SchemaError, match=r"UInt16.*HEATMAP_EVENT_TIMESTAMP_EXPR"):
        schema.detect_raw_time(store)
    raw = schema.detect_raw_time(store, "toDateTime(event_date, 'UTC') + event_timestamp")
    assert raw.kind == "expr" and not raw.writable
    store.command("INSERT INTO camera_events VALUES ('S', 'C', 1, 3600, '2026-01-05', [])")
    rows = store.query("SELECT %s FROM camera_events WHERE %s" % (raw.slot, raw.where()),
                       parameters={"start": 1767571200, "end": 1767657600})
    assert rows == [(1767571200 + 3600,)]


def test_missing_column_is_explained(store):
    store.command("CREATE TABLE camera_events (site_name String, event_timestamp DateTime) ENGINE = MergeTree ORDER BY site_name")
    with pytest.raises(SchemaError, match="lacks column"):
        schema.detect_raw_time(store)


def test_cluster_ddl_is_replicated_behind_distributed():
    stmts = schema.table_ddl(schema.TABLES["slot_states"], cluster="prod")
    assert len(stmts) == 2
    assert "slot_states_local ON CLUSTER prod" in stmts[0]
    assert "ENGINE = ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/slot_states_local', '{replica}', rev)" in stmts[0]
    assert stmts[1].startswith("CREATE TABLE IF NOT EXISTS slot_states ON CLUSTER prod AS slot_states_local")
    assert "Distributed(prod, currentDatabase(), slot_states_local, cityHash64(site_name))" in stmts[1]
    plain = schema.table_ddl(schema.TABLES["camera_events"])
    assert "non_replicated_deduplication_window" in plain[0] and "ON CLUSTER" not in plain[0]
    assert all("non_replicated" not in s for s in schema.table_ddl(schema.TABLES["camera_events"], "prod"))


@pytest.mark.parametrize(
    ("settings", "engine", "dedups"),
    [("", "MergeTree", False),  # the server's default window is 0
     ("SETTINGS non_replicated_deduplication_window = 100", "MergeTree", True),
     ("SETTINGS non_replicated_deduplication_window = 0", "ReplacingMergeTree", False)],
)
def test_whether_camera_events_deduplicates_inserts(store, settings, engine, dedups):
    store.command("CREATE TABLE camera_events (site_name String, cam_name String, people_count UInt16, "
                  "event_timestamp DateTime, event_triggers Array(String)) ENGINE = %s "
                  "ORDER BY (site_name, event_timestamp) %s" % (engine, settings))
    ok, why = schema.detect_raw_dedup(store)
    assert ok is dedups and "non_replicated_deduplication_window" in why
    # What the answer claims is what the engine does with a repeated token.
    row = [["S", "C", 1, 1767607200, []]]
    columns = ["site_name", "cam_name", "people_count", "event_timestamp", "event_triggers"]
    for _ in range(2):
        store.insert("camera_events", row, columns, {"insert_deduplication_token": "t-1"})
    assert store.query("SELECT count() FROM camera_events")[0][0] == (1 if dedups else 2)


def test_a_table_that_cannot_deduplicate_is_said_so(store):
    assert schema.detect_raw_dedup(store) == (False, "camera_events not found in this database")
    store.command("CREATE TABLE camera_events (site_name String) ENGINE = Memory")
    assert schema.detect_raw_dedup(store)[0] is False


def test_print_ddl_prints_the_one_migration_list_whole(capsys):
    """Every migration, the derived ones too (the rollup, the kept answers, the site-days),
    with their tables and views: one list, printed whole."""
    from central.__main__ import main

    assert main(["migrate", "--print-ddl", "--clickhouse-url", "chdb:///nonexistent"]) == 0
    out = capsys.readouterr().out
    for version, _, tables, _ in schema.MIGRATIONS:
        assert "-- migration %d:" % version in out
        for name in tables:
            assert "CREATE TABLE IF NOT EXISTS %s\n" % name in out, name
    assert {100, 101, 106} <= {v for v, *_ in schema.MIGRATIONS}
    for view in ("raw_slots_mv", "slot_dirty_mv", "slot_dirty_repairs_mv", "day_answers_by_day_mv"):
        assert "CREATE MATERIALIZED VIEW %s" % view in out or "IF NOT EXISTS %s" % view in out, view
