"""App state: keys, ``require()``, the one ``on_data`` path of both writers, the live path."""

from __future__ import annotations

import asyncio
import threading
from datetime import date

import pytest

from central.exceptions import StorageUnavailable
from central.state import DASHBOARD, ON_DATA, OnData, Ready
from tests.central.conftest import services
from tests.central.test_consumer import SLOT, Device, state, wait_connected
from tests.harness import eventually_async

EVENT = {"site": "LIVE", "camera": "C", "timestamp": "2026-01-05T10:00:00Z", "people_count": 2}


def test_require_says_what_is_missing_and_why():
    ready: Ready[int] = Ready("the dashboard")
    ready.unavailable("ClickHouse at db:8123 refused the connection")
    with pytest.raises(StorageUnavailable, match="the dashboard is not available: ClickHouse at db:8123"):
        ready.require()
    ready.set(5)
    assert ready.require() == 5


async def test_on_data_runs_every_callback_in_order_and_from_threads(caplog):
    seen = []
    hub = OnData()
    hub.append(lambda site, slots: seen.append(("first", site, slots)))
    hub.append(lambda site, slots: 1 / 0)
    hub.append(lambda site, slots: seen.append(("last", site, slots)))
    hub("S", [900, 900, 1800])
    assert seen == [("first", "S", {900, 1800}), ("last", "S", {900, 1800})]
    assert "on_data callback" in caplog.text
    call = hub.threadsafe(asyncio.get_running_loop())
    thread = threading.Thread(target=call, args=("T", {0}))
    thread.start()
    thread.join()
    await eventually_async(lambda: len(seen) == 4)
    assert seen[2:] == [("first", "T", {0}), ("last", "T", {0})]


async def test_raw_ingest_takes_the_on_data_path(client):
    seen = []
    client.server.app[ON_DATA].append(lambda site, slots: seen.append((site, slots)))
    resp = await client.post("/api/v1/events", json=[EVENT, dict(EVENT, site="OTHER", timestamp=1767607260)])
    assert resp.status == 201
    assert sorted(seen) == [("LIVE", {1767607200}), ("OTHER", {1767607200})]


async def test_the_consumer_takes_the_on_data_path(make_client, mosquitto):
    from shared.settings import MqttTarget

    central = await make_client(mqtt_url=MqttTarget("127.0.0.1", mosquitto.port, False),
                                mqtt_client_id="central-test", batch_seconds=0.05)
    await wait_connected(central)
    seen = []
    central.server.app[ON_DATA].append(lambda site, slots: seen.append((site, slots)))
    device = Device(mosquitto)
    try:
        device.publish(device.states([state(slot=SLOT), state(slot=SLOT + 900, rev=2)]))
        await eventually_async(lambda: seen)
    finally:
        device.close()
    assert seen == [("HEAD_OFFICE", {SLOT, SLOT + 900})]


async def test_a_watched_day_is_recomputed_when_data_arrives(make_client):
    client = await make_client(cache_ttl=60, cache_ttl_past=60)
    assert (await client.post("/api/v1/events", json=[EVENT])).status == 201
    dash = client.server.app[DASHBOARD].require()
    first = await (await client.get("/api/v1/dashboard/LIVE?date=2026-01-05")).json()
    assert first["critical_events"]["total_events"] == 1
    # A write: the day is recomputed without anyone asking, so the next poll is a hit.
    assert (await client.post("/api/v1/events", json=[dict(EVENT, timestamp="2026-01-05T11:00:00Z")])).status == 201
    await eventually_async(lambda: dash.cache.get(("LIVE", "2026-01-05")) is not None)
    assert dash.refreshes == 1
    hits = dash.hits
    second = await (await client.get("/api/v1/dashboard/LIVE?date=2026-01-05")).json()
    assert second["critical_events"]["total_events"] == 2 and dash.hits == hits + 1
    # A day nobody watches is only invalidated.
    assert (await client.post("/api/v1/events", json=[dict(EVENT, timestamp="2026-01-07T11:00:00Z")])).status == 201
    assert ("LIVE", "2026-01-07") not in dash._refresh_due and await dash.answer("LIVE", date(2026, 1, 7))


async def test_a_burst_of_writes_costs_one_recomputation(make_client):
    client = await make_client(cache_ttl=60, cache_ttl_past=60)
    assert (await client.post("/api/v1/events", json=[EVENT])).status == 201
    dash = client.server.app[DASHBOARD].require()
    await dash.answer("LIVE", date(2026, 1, 5))
    for minute in range(5):
        client.server.app[ON_DATA]("LIVE", {1767607200 + 900 * minute})
    await eventually_async(lambda: dash.cache.get(("LIVE", "2026-01-05")) is not None)
    assert dash.refreshes == 1


async def test_handlers_answer_503_until_storage_is_ready(make_client):
    from tests.harness import free_port

    client = await make_client(clickhouse_url="http://127.0.0.1:%d" % free_port())
    assert services(client).dashboard is None
    for path in ("/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05", "/api/v1/sites"):
        resp = await client.get(path)
        assert resp.status == 503 and (await resp.json())["error"]["code"] == "storage_unavailable"
