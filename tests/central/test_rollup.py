"""The raw rollup on the real engine: equal to raw GROUP BY, whoever writes and whenever.

The reference is the plain GROUP BY over ``camera_events`` (trigger counts with ARRAY JOIN
semantics), written here independently of central's SQL; rows come from a second client
(the customer's own ingestion), from before the view existed (the backfill) and after.
"""

from __future__ import annotations

import random
from datetime import datetime, timezone

import pytest

from central.storage import rollup, schema
from central.storage.slots import Scope, SlotStore
from central.storage.store import Store
from tests.central.conftest import services
from tests.harness import eventually_async

T = 1767600000  # 2026-01-05T08:00:00Z
TRIGGERS = ["UNAUTHORIZED_STRANGER", "RESTRICTED_ACCESS", "CROWD_VIOLATION"]

# camera_events as customers have it: (DDL of event_timestamp, slot expression of the reference).
KINDS = {
    "datetime": ("DateTime('UTC')", "toUInt32(toUnixTimestamp(event_timestamp))"),
    "datetime64": ("DateTime64(3, 'UTC')", "toUInt32(toUnixTimestamp(event_timestamp))"),
    "unix": ("Int64", "toUInt32(event_timestamp)"),
}


def make_raw(client, kind):
    column, _ = KINDS[kind]
    client.command(
        "CREATE TABLE camera_events (site_name String, cam_name String, people_count UInt16, "
        "event_timestamp %s, event_triggers Array(String)) ENGINE = MergeTree "
        "ORDER BY (site_name, event_timestamp)" % column)


def insert_random(client, seed, n=400, sites=("A", "B"), kind="datetime"):
    rng = random.Random(seed)
    when = int if kind == "unix" else (lambda t: datetime.fromtimestamp(t, timezone.utc))
    rows = []
    for _ in range(n):
        trig = [rng.choice(TRIGGERS) for _ in range(rng.choice([0, 0, 1, 2, 3]))]
        rows.append([rng.choice(sites), rng.choice(["C1", "C2", "C3"]), rng.randrange(0, 20),
                     when(T + rng.randrange(-86400, 3 * 86400)), trig])
    client.insert("camera_events", rows,
                  column_names=["site_name", "cam_name", "people_count", "event_timestamp", "event_triggers"])
    return len(rows)


def reference(client, kind):
    sec = KINDS[kind][1]
    rows = client.query(
        "SELECT site_name, cam_name, %s - %s %% 900 AS s, max(people_count), count(), "
        "sumMap(event_triggers, arrayMap(t -> toUInt64(1), event_triggers)) "
        "FROM camera_events GROUP BY site_name, cam_name, s" % (sec, sec)).result_rows
    return {(site, cam, int(s)): (int(p), int(n), {k: int(v) for k, v in zip(*tr) if v})
            for site, cam, s, p, n, tr in rows}


def rolled(client):
    rows = client.query(
        "SELECT site_name, cam_name, toUInt32(toUnixTimestamp(slot)) AS s, max(peak), sum(events), "
        "sumMap(triggers) FROM raw_slots GROUP BY site_name, cam_name, s").result_rows
    return {(site, cam, int(s)): (int(p), int(n), {k: int(v) for k, v in tr.items() if v})
            for site, cam, s, p, n, tr in rows}


@pytest.fixture
def store(clickhouse_url):
    s = Store(clickhouse_url)
    yield s
    s.close()


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_rollup_equals_raw_after_backfill_and_other_writers(store, clickhouse_client, kind):
    make_raw(clickhouse_client, kind)
    schema.migrate(store)
    for seed in range(3):  # several parts before the view exists
        insert_random(clickhouse_client, seed, kind=kind)
    raw_time = schema.detect_raw_time(store)
    seen = []
    built = rollup.ensure(store, raw_time, None, build_it=True,
                          progress=lambda done, total, reached: seen.append((done, total)))
    assert built.available, built.reason
    assert seen and seen[-1][0] == seen[-1][1] > 1  # chunked, with progress to the end
    assert rolled(clickhouse_client) == reference(clickhouse_client, kind)
    # Another client writes after the view exists; our path too.
    insert_random(clickhouse_client, 10, kind=kind)
    insert_random(clickhouse_client, 11, sites=("C",), kind=kind)
    assert rolled(clickhouse_client) == reference(clickhouse_client, kind)
    # The slot store's raw side reads the same from the rollup as from a scan.
    scope = Scope.of(["A", "B", "C"], T - 86400, T + 3 * 86400)
    from_rollup = sorted(SlotStore(store, raw_time, rollup=True).merged(scope))
    assert from_rollup and from_rollup == sorted(SlotStore(store, raw_time).merged(scope))
    # Nothing rebuilt or counted twice by a second start.
    assert rollup.ensure(store, raw_time, None, build_it=True).available
    assert rolled(clickhouse_client) == reference(clickhouse_client, kind)


def test_an_interrupted_build_is_started_over(store, clickhouse_client):
    schema.migrate(store)
    insert_random(clickhouse_client, 1)
    raw_time = schema.detect_raw_time(store)
    assert rollup.ensure(store, raw_time, None, build_it=True).available
    # As if the process died before the build was recorded: the rows are in raw_slots.
    clickhouse_client.command("ALTER TABLE heatmap_schema DELETE WHERE version = %d" % rollup.VERSION,
                        settings={"mutations_sync": 1})
    assert not rollup.status(store).available
    insert_random(clickhouse_client, 2)
    assert rollup.ensure(store, raw_time, None, build_it=True).available
    assert rolled(clickhouse_client) == reference(clickhouse_client, "datetime")


def test_not_built_against_a_server_until_migrate(store, clickhouse_client):
    schema.migrate(store)
    got = rollup.ensure(store, schema.detect_raw_time(store), None, build_it=False)
    assert not got.available and "migrate" in got.reason


async def test_a_raw_table_without_inserts_falls_back_to_scanning(make_client, clickhouse_client):
    # camera_events as a view over the customer's real table: a materialized view on it
    # would never see an insert, so central scans and says so.
    clickhouse_client.command(
        "CREATE TABLE events_store (site_name String, cam_name String, people_count UInt16, "
        "event_timestamp DateTime('UTC'), event_triggers Array(String)) ENGINE = MergeTree ORDER BY event_timestamp")
    clickhouse_client.command("CREATE VIEW camera_events AS SELECT * FROM events_store")
    clickhouse_client.command("INSERT INTO events_store VALUES ('VIEWED', 'C', 3, '2026-01-05 10:00:00', ['X'])")
    client = await make_client()
    health = await (await client.get("/healthz")).json()
    assert health["raw_rollup"]["available"] is False
    assert "View" in health["raw_rollup"]["reason"]
    assert services(client).dashboard.slots.rollup is False
    doc = await (await client.get("/api/v1/dashboard/VIEWED?date=2026-01-05")).json()
    assert doc["critical_events"] == {"X": 1, "total_events": 1}


async def test_the_app_reads_rows_of_another_writer_through_the_rollup(make_client, clickhouse_client):
    client = await make_client()
    assert (await (await client.get("/healthz")).json())["raw_rollup"]["available"] is True
    assert services(client).dashboard.slots.rollup is True
    clickhouse_client.command("INSERT INTO camera_events VALUES ('OTHER', 'C', 4, '2026-01-05 10:00:00', ['X', 'X']), "
                        "('OTHER', 'C', 6, '2026-01-05 10:05:00', [])")
    # Kept answers follow another writer's rows through slot_dirty (central.storage.answers), and
    # the day already answered (cached) is dropped when they do.
    doc = await (await client.get("/api/v1/dashboard/OTHER?date=2026-01-05")).json()

    async def followed():
        nonlocal doc
        doc = await (await client.get("/api/v1/dashboard/OTHER?date=2026-01-05")).json()
        return "C" in doc["zones"]

    await eventually_async(followed, message="the answers did not follow another writer's rows")
    assert doc["zones"]["C"]["peak"] == 6 and doc["zones"]["C"]["events"] == 2
    assert doc["critical_events"] == {"X": 2, "total_events": 2}
    assert doc["meta"]["source"] == "raw"
