"""The dashboard against the handoff's reference SQL and local-day rules, on the real engine.

Raw events go in through ``POST /api/v1/events``; edge states and repairs are inserted as
the consumer and reconciliation write them. Expected values come from the handoff's own
queries run by the engine on the same rows, or from local times worked out by hand.
"""

from __future__ import annotations

import asyncio
import random
from datetime import datetime, timezone

import pytest

from central.state import ON_DATA
from tests.central.conftest import services
from tests.harness import eventually, eventually_async

DAY = "2026-01-05"


def ts(text: str) -> int:
    return int(datetime.fromisoformat(text).timestamp())


async def post(client, events, key=None):
    headers = {"Idempotency-Key": key} if key else {}
    resp = await client.post("/api/v1/events", json=events, headers=headers)
    assert resp.status in (200, 201), await resp.text()
    return await resp.json()


async def get(client, site, day=DAY):
    resp = await client.get("/api/v1/dashboard/%s?date=%s" % (site, day))
    assert resp.status == 200, await resp.text()
    return await resp.json()


def edge_rows(site, device, cam, slot, peak, events, rev, triggers=None):
    return [site, device, cam, slot, peak, events, triggers or {}, rev, datetime.now(timezone.utc)]


STATE_COLUMNS = ["site_name", "device_id", "cam_name", "slot", "peak", "events", "triggers", "rev", "received_at"]


def level(v):
    return "high" if v >= 7 else "medium" if v >= 4 else "low"


async def test_utc_site_equals_the_handoff_reference_sql(client, clickhouse_client):
    rng = random.Random(4)
    base = ts("2026-01-05T00:00:00+00:00")
    cams = ["EMPLOYEE_AREA", "RECEPTION_AREA", "CAFETERIA", "BOSS_CABIN"]
    triggers = ["UNAUTHORIZED_STRANGER", "RESTRICTED_ACCESS", "CROWD_VIOLATION"]
    events = []
    for _ in range(600):
        # Some events fall just outside the day on either side.
        t = base + rng.randrange(-3600, 86400 + 3600)
        trig = [rng.choice(triggers) for _ in range(rng.choice([0, 0, 0, 1, 2]))]
        events.append({"site": "PLAZA", "camera": rng.choice(cams), "timestamp": t,
                       "people_count": rng.randrange(0, 12), "triggers": trig})
    events.append({"site": "OTHER", "camera": "X", "timestamp": base + 5, "people_count": 50})
    await post(client, events)
    got = await get(client, "PLAZA")

    where = "site_name = {site:String} AND toDate(toDateTime(event_timestamp)) = {day:Date}"
    p = {"site": "PLAZA", "day": DAY}
    zones = clickhouse_client.query(
        "SELECT cam_name AS zone, max(people_count) AS peak, count() AS events FROM camera_events "
        "WHERE %s GROUP BY cam_name" % where, parameters=p).result_rows
    hourly = clickhouse_client.query(
        "SELECT toHour(toDateTime(event_timestamp)) AS hour, max(people_count) AS peak FROM camera_events "
        "WHERE %s GROUP BY hour ORDER BY hour" % where, parameters=p).result_rows
    crit = clickhouse_client.query(
        "SELECT trigger, count() AS count FROM camera_events ARRAY JOIN event_triggers AS trigger "
        "WHERE %s GROUP BY trigger" % where, parameters=p).result_rows
    total = clickhouse_client.query("SELECT count() FROM camera_events WHERE %s" % where, parameters=p).result_rows[0][0]

    assert got["site_name"] == "PLAZA" and got["date"] == DAY
    assert got["zones"] == {z: {"peak": pk, "events": n, "intensity": level(pk)} for z, pk, n in zones}
    assert got["hourly"] == [{"hour": h, "count": c, "intensity": level(c)} for h, c in hourly]
    assert got["critical_events"] == {**dict(crit), "total_events": total}
    assert list(got["critical_events"])[-1] == "total_events"
    assert got["meta"]["source"] == "raw" and got["meta"]["coverage"] == 0.0
    assert got["meta"]["hours"] == 24 and got["meta"]["timezone"] == "UTC"
    # zone_hourly agrees with zones and hourly.
    for zone, rows in got["zone_hourly"].items():
        assert sum(r["events"] for r in rows) == got["zones"][zone]["events"]
        assert max(r["count"] for r in rows) == got["zones"][zone]["peak"]


async def test_kolkata_local_day_and_hours(client):
    await post(client, [
        {"site": "KOLKATA", "camera": "GATE", "timestamp": "2026-01-05T00:15:00+05:30", "people_count": 2},
        {"site": "KOLKATA", "camera": "GATE", "timestamp": "2026-01-05T10:40:00+05:30", "people_count": 8,
         "triggers": ["UNAUTHORIZED_STRANGER"]},
        {"site": "KOLKATA", "camera": "GATE", "timestamp": "2026-01-05T23:50:00+05:30", "people_count": 5},
        {"site": "KOLKATA", "camera": "GATE", "timestamp": "2026-01-06T00:05:00+05:30", "people_count": 9},
        {"site": "KOLKATA", "camera": "GATE", "timestamp": "2026-01-04T23:59:00+05:30", "people_count": 9},
    ])
    got = await get(client, "KOLKATA")
    assert got["meta"]["day_start"] == "2026-01-04T18:30:00Z"
    assert got["meta"]["day_end"] == "2026-01-05T18:30:00Z"
    assert [(h["hour"], h["count"]) for h in got["hourly"]] == [(0, 2), (10, 8), (23, 5)]
    assert got["zones"]["GATE"] == {"peak": 8, "events": 3, "intensity": "high"}
    assert got["critical_events"] == {"UNAUTHORIZED_STRANGER": 1, "total_events": 3}


async def test_london_dst_days(client):
    await post(client, [
        # 2026-03-29: clocks go 01:00 GMT -> 02:00 BST; local hour 1 does not exist.
        {"site": "LONDON", "camera": "HALL", "timestamp": "2026-03-29T00:30:00Z", "people_count": 3},
        {"site": "LONDON", "camera": "HALL", "timestamp": "2026-03-29T01:30:00Z", "people_count": 4},
        {"site": "LONDON", "camera": "HALL", "timestamp": "2026-03-29T22:59:00Z", "people_count": 1},
        {"site": "LONDON", "camera": "HALL", "timestamp": "2026-03-29T23:00:00Z", "people_count": 9},
        # 2026-10-25: 01:00-02:00 local happens twice (BST, then GMT): one merged hour.
        {"site": "LONDON", "camera": "HALL", "timestamp": "2026-10-25T00:30:00Z", "people_count": 2},
        {"site": "LONDON", "camera": "HALL", "timestamp": "2026-10-25T01:30:00Z", "people_count": 6},
        {"site": "LONDON", "camera": "HALL", "timestamp": "2026-10-25T23:30:00Z", "people_count": 7},
    ])
    spring = await get(client, "LONDON", "2026-03-29")
    assert spring["meta"]["hours"] == 23
    assert spring["meta"]["day_start"] == "2026-03-29T00:00:00Z"
    assert spring["meta"]["day_end"] == "2026-03-29T23:00:00Z"
    assert [(h["hour"], h["count"]) for h in spring["hourly"]] == [(0, 3), (2, 4), (23, 1)]
    autumn = await get(client, "LONDON", "2026-10-25")
    assert autumn["meta"]["hours"] == 25
    assert autumn["meta"]["day_start"] == "2026-10-24T23:00:00Z"
    assert [(h["hour"], h["count"]) for h in autumn["hourly"]] == [(1, 6), (23, 7)]
    assert autumn["zone_hourly"]["HALL"][0] == {"hour": 1, "count": 6, "events": 2, "intensity": "medium"}


async def test_kathmandu_quarter_hour_offset(client):
    await post(client, [
        {"site": "KATHMANDU", "camera": "C", "timestamp": "2026-01-04T18:14:59Z", "people_count": 9},
        {"site": "KATHMANDU", "camera": "C", "timestamp": "2026-01-04T18:15:00Z", "people_count": 1},
        {"site": "KATHMANDU", "camera": "C", "timestamp": "2026-01-05T04:14:00Z", "people_count": 4},
        {"site": "KATHMANDU", "camera": "C", "timestamp": "2026-01-05T18:14:59Z", "people_count": 2},
    ])
    got = await get(client, "KATHMANDU")
    assert got["meta"]["day_start"] == "2026-01-04T18:15:00Z"
    assert [(h["hour"], h["count"]) for h in got["hourly"]] == [(0, 1), (9, 4), (23, 2)]
    assert got["zones"]["C"]["events"] == 3


async def test_mixed_edge_and_raw_coverage_and_revisions(client, clickhouse_client):
    slot = ts("2026-01-05T10:00:00+00:00")
    # Raw rows for CAM_A in the edge-covered slot are ignored; CAM_B is raw only.
    await post(client, [
        {"site": "MIX", "camera": "CAM_A", "timestamp": slot + 60, "people_count": 30},
        {"site": "MIX", "camera": "CAM_B", "timestamp": slot + 60, "people_count": 3, "triggers": ["T1"]},
        {"site": "MIX", "camera": "CAM_A", "timestamp": slot + 3600, "people_count": 2},
    ])
    slots = services(client).slots  # writes through the slot store keep the answers
    rows = [
        edge_rows("MIX", "dev1", "CAM_A", slot, 8, 20, 5, {"T1": 2}),
        edge_rows("MIX", "dev1", "CAM_A", slot, 2, 5, 3, {"T1": 9}),  # older revision, later
        edge_rows("MIX", "dev1", "CAM_A", slot, 8, 20, 5, {"T1": 2}),  # duplicate
        edge_rows("MIX", "dev2", "CAM_A", slot, 3, 4, 1, {"T2": 1}),  # second device: sums
    ]
    for row in rows:  # separate inserts: separate parts, as retries would make
        slots.write_states([row])
    got = await get(client, "MIX")
    assert got["zones"]["CAM_A"] == {"peak": 8, "events": 24 + 1, "intensity": "high"}
    assert got["zones"]["CAM_B"] == {"peak": 3, "events": 1, "intensity": "low"}
    assert got["critical_events"] == {"T1": 3, "T2": 1, "total_events": 26}
    assert got["meta"]["source"] == "mixed"
    assert got["meta"]["slots"] == {"edge": 1, "raw": 2, "repaired": 0}
    assert got["meta"]["coverage"] == round(1 / 3, 4)
    clickhouse_client.command("OPTIMIZE TABLE slot_states FINAL")
    assert (await get(client, "MIX"))["zones"] == got["zones"]

    # A repair pins the slot to raw: later edge revisions change nothing.
    slots.write_repairs([["MIX", "CAM_A", slot, "run1", datetime.now(timezone.utc), "test", "drift",
                          8, 24, {}, 5, 30, 1, {}]])
    slots.write_states([edge_rows("MIX", "dev1", "CAM_A", slot, 9, 99, 6)])
    got = await get(client, "MIX")
    assert got["zones"]["CAM_A"] == {"peak": 30, "events": 2, "intensity": "high"}
    assert got["meta"]["slots"] == {"edge": 0, "raw": 2, "repaired": 1}
    assert got["meta"]["source"] == "raw"


async def test_edge_only_and_zone_thresholds(client):
    slot = ts("2026-01-05T08:00:00+00:00")
    services(client).slots.write_states([edge_rows("HEAD_OFFICE", "d", "EMPLOYEE_AREA", slot, 8, 3, 1),
                                         edge_rows("HEAD_OFFICE", "d", "EMPTY_CAM", slot, 0, 0, 1)])
    got = await get(client, "HEAD_OFFICE")
    # Zone thresholds (high 10, medium 5) for the zone; site thresholds for hourly.
    assert got["zones"] == {"EMPLOYEE_AREA": {"peak": 8, "events": 3, "intensity": "medium"}}
    assert got["hourly"] == [{"hour": 8, "count": 8, "intensity": "high"}]
    assert got["meta"]["source"] == "edge" and got["meta"]["coverage"] == 1.0
    assert got["meta"]["zone_names"]["EMPLOYEE_AREA"] == "Employee Area"


async def test_empty_day_of_a_known_site(client):
    got = await get(client, "HEAD_OFFICE", "2026-02-01")
    assert got["zones"] == {} and got["hourly"] == [] and got["critical_events"] == {"total_events": 0}
    assert got["meta"]["source"] == "none"
    assert got["meta"]["data_range"] is None  # no data at all yet


async def test_an_empty_day_says_where_the_sites_data_lies(client):
    # Kolkata (+05:30): raw at 20:00 UTC on 01-04 is 01:30 local on 01-05; edge at 19:00 UTC
    # on 01-09 is 00:30 local on 01-10. Another site's later data changes nothing.
    await post(client, [{"site": "KOLKATA", "camera": "GATE", "people_count": 2,
                         "timestamp": "2026-01-04T20:00:00Z"},
                        {"site": "HEAD_OFFICE", "camera": "GATE", "people_count": 1,
                         "timestamp": "2026-03-01T12:00:00Z"}])
    services(client).slots.write_states([edge_rows("KOLKATA", "d", "GATE", ts("2026-01-09T19:00:00+00:00"), 1, 1, 1)])
    empty = await get(client, "KOLKATA", "2026-01-07")
    assert empty["zones"] == {} and empty["meta"]["data_range"] == {"first_day": "2026-01-05",
                                                                      "last_day": "2026-01-10"}
    assert "data_range" not in (await get(client, "KOLKATA", "2026-01-05"))["meta"]  # a day with data


async def test_cache_is_invalidated_by_new_data(make_client):
    client = await make_client(cache_ttl=3600, cache_ttl_past=3600)
    await post(client, [{"site": "CACHED", "camera": "C", "timestamp": "2026-01-05T10:00:00Z", "people_count": 1}])
    first = await get(client, "CACHED")
    assert first == await get(client, "CACHED")  # served from the cache
    assert services(client).dashboard.hits == 1
    await post(client, [{"site": "CACHED", "camera": "C", "timestamp": "2026-01-05T11:00:00Z", "people_count": 2}])
    second = await get(client, "CACHED")
    assert second["critical_events"]["total_events"] == 2


async def test_existing_unix_seconds_table_is_bucketed_in_local_time(make_client, clickhouse_client):
    clickhouse_client.command(
        "CREATE TABLE camera_events (site_name LowCardinality(String), cam_name LowCardinality(String), "
        "people_count UInt16, event_timestamp UInt32, event_triggers Array(String)) "
        "ENGINE = MergeTree ORDER BY (site_name, event_timestamp)")
    client = await make_client()
    assert services(client).raw_time.kind == "unix"
    await post(client, [
        {"site": "KOLKATA", "camera": "GATE", "timestamp": "2026-01-05T00:15:00+05:30", "people_count": 2},
        {"site": "KOLKATA", "camera": "GATE", "timestamp": "2026-01-04T23:59:00+05:30", "people_count": 9},
    ])
    assert clickhouse_client.query("SELECT max(event_timestamp) FROM camera_events").result_rows[0][0] == ts(
        "2026-01-05T00:15:00+05:30")
    got = await get(client, "KOLKATA")
    assert got["hourly"] == [{"hour": 0, "count": 2, "intensity": "low"}]


async def test_existing_datetime64_table(make_client, clickhouse_client):
    clickhouse_client.command(
        "CREATE TABLE camera_events (site_name String, cam_name String, people_count UInt16, "
        "event_timestamp DateTime64(3, 'UTC'), event_triggers Array(String)) "
        "ENGINE = MergeTree ORDER BY (site_name, event_timestamp)")
    client = await make_client()
    await post(client, [{"site": "LONDON", "camera": "HALL", "timestamp": "2026-10-25T01:30:00.500Z",
                         "people_count": 4, "triggers": ["A", "A"]}])
    got = await get(client, "LONDON", "2026-10-25")
    assert got["hourly"] == [{"hour": 1, "count": 4, "intensity": "medium"}]
    assert got["critical_events"] == {"A": 2, "total_events": 1}


async def test_raw_rows_from_another_path_show_after_the_ttl(make_client, clickhouse_client):

    client = await make_client(cache_ttl=0.5, cache_ttl_past=0.5)
    await post(client, [{"site": "TTL", "camera": "C", "timestamp": "2026-01-05T10:00:00Z", "people_count": 1}])
    assert (await get(client, "TTL"))["critical_events"]["total_events"] == 1
    # The customer's own pipeline writes straight into camera_events: no invalidation.
    clickhouse_client.command("INSERT INTO camera_events VALUES ('TTL', 'C', 2, '2026-01-05 11:00:00', [])")
    assert (await get(client, "TTL"))["critical_events"]["total_events"] == 1  # cached
    # Past the 0.5 s TTL the next answer is computed again and holds the new row.
    async def both_rows() -> bool:
        return (await get(client, "TTL"))["critical_events"]["total_events"] == 2

    await eventually_async(both_rows, 10, "the new row shows")


async def test_concurrent_misses_share_one_computation(make_client):
    import asyncio

    client = await make_client(cache_ttl=60, cache_ttl_past=60)
    await post(client, [{"site": "FLIGHT", "camera": "C", "timestamp": "2026-01-05T10:00:00Z", "people_count": 1}])
    dash = services(client).dashboard
    before = dash.misses
    answers = await asyncio.gather(*(get(client, "FLIGHT") for _ in range(20)))
    assert all(a == answers[0] for a in answers)
    assert dash.misses - before == 1


def gate_first_document(dash):
    """Holds the first computation's answer (read already) until the returned event is set;
    also returns an event set once those reads are done."""
    import asyncio

    gate, read, real, calls = asyncio.Event(), asyncio.Event(), dash.store.arun, []

    async def arun(call, *args):
        result = await real(call, *args)
        if call in (dash._body, dash._document):  # a document: its statement, fold and JSON ran
            calls.append(call)
            if len(calls) == 1:
                read.set()
                await gate.wait()
        return result

    dash.store.arun = arun
    return gate, read


async def test_a_request_after_a_write_does_not_join_an_older_computation(make_client):
    import asyncio

    client = await make_client(cache_ttl=60, cache_ttl_past=60)
    event = {"site": "RACE", "camera": "C", "timestamp": "2026-01-05T10:00:00Z", "people_count": 1}
    await post(client, [event])
    gate, read = gate_first_document(services(client).dashboard)
    try:
        before = asyncio.create_task(get(client, "RACE"))
        await asyncio.wait_for(read.wait(), 10)  # its queries ran: it holds one event
        await post(client, [dict(event, timestamp="2026-01-05T11:00:00Z")])
        after = await asyncio.wait_for(get(client, "RACE"), 10)
        assert after["critical_events"]["total_events"] == 2
    finally:
        gate.set()
    assert (await before)["critical_events"]["total_events"] == 1
    # The older answer was not cached over the newer one.
    assert (await get(client, "RACE"))["critical_events"]["total_events"] == 2


async def test_cancelling_one_caller_does_not_fail_the_others(make_client):
    import asyncio
    from datetime import date

    client = await make_client(cache_ttl=60, cache_ttl_past=60)
    await post(client, [{"site": "CANCEL", "camera": "C", "timestamp": "2026-01-05T10:00:00Z", "people_count": 3}])
    dash = services(client).dashboard
    gate, read = gate_first_document(dash)
    first = asyncio.create_task(dash.answer("CANCEL", date(2026, 1, 5)))
    await asyncio.wait_for(read.wait(), 10)
    second = asyncio.create_task(dash.answer("CANCEL", date(2026, 1, 5)))
    await asyncio.sleep(0.05)
    first.cancel()
    await asyncio.sleep(0.05)
    gate.set()
    body = await asyncio.wait_for(second, 10)
    assert b'"total_events":1' in body
    assert first.cancelled() and dash.misses == 1


def test_a_trimmed_version_table_never_readmits_a_stale_answer():
    from central.dashboard import DashboardCache

    cache = DashboardCache(60, 60, max_entries=1)
    key = ("S", "2026-01-05")
    captured = cache.version(key)  # a computation starts
    cache.invalidate(*key)  # a write lands while it runs
    for n in range(8):  # enough other writes to trim the version table
        cache.invalidate("S", "2026-02-%02d" % (n + 1))
    cache.put(key, b"stale", 60, captured)
    assert cache.get(key) is None
    fresh = cache.version(key)
    cache.put(key, b"fresh", 60, fresh)
    assert cache.get(key) == b"fresh"


def test_a_watched_days_answer_outlives_a_write_only_by_the_grace():
    from central.dashboard import DashboardCache

    cache = DashboardCache(60, 60)
    key = ("S", "2026-01-05")
    cache.put(key, b"before", 60, cache.version(key))
    assert cache.is_current(key)
    cache.invalidate(*key, grace=0.3)  # a write to a day someone watches
    assert cache.get(key) == b"before" and not cache.is_current(key)
    eventually(lambda: cache.get(key) is None, timeout=5, message="the old answer outlived its grace")
    cache.put(key, b"after", 60, cache.version(key))
    assert cache.get(key) == b"after" and cache.is_current(key)
    cache.invalidate(*key)  # no one watches: gone at once
    assert cache.get(key) is None


def test_an_expired_answer_is_stale_only_until_a_write_or_the_grace():
    from central.dashboard import DashboardCache

    cache = DashboardCache(60, 60)
    key = ("S", "2026-01-05")
    cache.put(key, b"before", 0.01, cache.version(key))
    eventually(lambda: cache.get(key) is None, timeout=5, message="the answer outlived its time to live")
    assert cache.stale(key, 60) == b"before"  # only its time to live ran out
    assert cache.stale(key, 0) is None  # past the grace
    cache.invalidate(*key)  # a write: never served again
    assert cache.stale(key, 60) is None
    cache.put(key, b"after", 0.01, cache.version(key))
    cache.invalidate(*key, grace=30)  # a write to a watched day: the old one for the grace, not as stale
    assert cache.get(key) in (b"after", None)  # its own time to live, shortened by nothing
    assert cache.stale(key, 60) is None


async def test_a_poll_past_the_time_to_live_does_not_wait_for_the_new_answer(make_client, monkeypatch):
    """Watched days' answers expire together (their agents publish on one beat); a poll then
    gets the answer it had, with the new one on its way, instead of waiting for it."""
    from datetime import date

    import central.dashboard

    monkeypatch.setattr(central.dashboard, "LIVE_GRACE", 60.0)
    client = await make_client(cache_ttl=0.05, cache_ttl_past=0.05)
    await post(client, [{"site": "TTL", "camera": "C", "timestamp": "2026-01-05T10:00:00Z", "people_count": 1}])
    dash = services(client).dashboard
    day = date(2026, 1, 5)
    first = await dash.answer("TTL", day)
    await eventually_async(lambda: dash.cache.get(("TTL", day.isoformat())) is None, timeout=5,
                           message="the answer outlived its time to live")
    gate, read = gate_first_document(dash)
    try:
        assert await asyncio.wait_for(dash.answer("TTL", day), 5) == first  # not held by the gate
        await asyncio.wait_for(read.wait(), 10)  # the new answer is being computed
    finally:
        gate.set()


async def test_a_poll_after_a_live_write_gets_the_old_answer_then_the_new_one(make_client):
    client = await make_client(cache_ttl=60, cache_ttl_past=60)
    slot = ts("2026-01-05T08:00:00+00:00")
    await post(client, [{"site": "MIX", "camera": "CAM_A", "timestamp": slot + 60, "people_count": 3}])
    svc = services(client)
    dash = svc.dashboard
    first = await get(client, "MIX")
    assert first["zones"]["CAM_A"]["events"] == 1
    # A state of the live feed, kept and told as the consumer does (from its writer thread).
    svc.store.insert("slot_states", [edge_rows("MIX", "dev1", "CAM_A", slot, 4, 2, 1)], STATE_COLUMNS)
    svc.slots.refresh({"MIX": {slot}})
    refreshes = dash.refreshes
    client.server.app[ON_DATA].threadsafe(asyncio.get_running_loop())("MIX", {slot})

    async def fresh():
        doc = await get(client, "MIX")
        # Until it is fresh, only the answer from before the write, never a broken one.
        assert doc["zones"]["CAM_A"]["events"] in (1, 2)
        return doc["zones"]["CAM_A"]["events"] == 2

    await eventually_async(fresh, timeout=5, message="the watched day was not recomputed")
    assert dash.refreshes == refreshes + 1  # recomputed by the live path, not by a poll


@pytest.mark.clock
@pytest.mark.parametrize(("site", "zone"), [("HEAD_OFFICE", "UTC"), ("KOLKATA", "Asia/Kolkata"),
                                            ("LONDON", "Europe/London"), ("KATHMANDU", "Asia/Kathmandu")])
async def test_no_date_is_today_on_the_sites_clock(client, site, zone):
    """Without ``date`` the dashboard is the site's local today, with what happened in it so
    far. make test-clock runs this at local midnights and on clock-change days."""
    import time

    from zoneinfo import ZoneInfo

    tz = ZoneInfo(zone)
    now = time.time()
    await post(client, [{"site": site, "camera": "NOW", "timestamp": now, "people_count": 2}])
    resp = await client.get("/api/v1/dashboard/%s" % site)
    assert resp.status == 200, await resp.text()
    doc = await resp.json()
    # The local date when the event happened, or a later one if midnight passed meanwhile.
    then = datetime.fromtimestamp(now, tz).date().isoformat()
    assert doc["date"] in (then, datetime.fromtimestamp(time.time(), tz).date().isoformat())
    if doc["date"] == then:
        assert doc["zones"]["NOW"]["events"] == 1
    start = datetime.fromisoformat(doc["meta"]["day_start"].replace("Z", "+00:00"))
    assert start.astimezone(tz).time().isoformat() == "00:00:00"
    assert start.astimezone(tz).date().isoformat() == doc["date"]
