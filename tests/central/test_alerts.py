"""Alerts end to end in one process: the real app on chDB, raw ingest or written states in,
a real aiohttp webhook receiver out; the listing endpoint and metrics (replicas: test_alert_replicas.py)."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
from datetime import datetime, timezone

import pytest

from central.alerts.evaluate import make_alert
from tests.central.conftest import SITES_TOML, services
from tests.central.test_api import conforms
from tests.harness import WebhookReceiver, eventually_async

SECRET = "s3cret"
BODY_KEYS = {"id", "rule", "kind", "site_name", "cam_name", "device_id", "at", "local_time", "value",
             "threshold", "trigger", "message"}


def rules_file(tmp_path, text: str) -> str:
    path = tmp_path / "alert-sites.toml"
    path.write_text(SITES_TOML + "\n[sites.HEAD_OFFICE.zones.CAFETERIA]\ncapacity = 10\n" + text)
    return str(path)


async def received(receiver: WebhookReceiver, predicate, timeout: float = 20.0):
    """Wait (in a thread, on the receiver's signal) for ``predicate(requests)``."""
    loop = asyncio.get_running_loop()
    return await loop.run_in_executor(None, receiver.wait, predicate, timeout)


def last_slot() -> int:
    """Start of the 15-minute slot before the current one: events at last_slot() + 0..899
    share one slot, are in the past and are recent, whatever the time of day."""
    return int(time.time()) // 900 * 900 - 900


def event(camera="SERVER_ROOM", at=None, people=1, triggers=("RESTRICTED_ACCESS",)):
    ts = last_slot() + 100 if at is None else at
    return {"site": "HEAD_OFFICE", "camera": camera, "people_count": people, "triggers": list(triggers),
            "timestamp": datetime.fromtimestamp(ts, timezone.utc).isoformat()}


def pinned(hour: int, minute: int = 0, second: int = 0) -> float:
    """A fixed UTC time of day three days ago: a clock the test pins (alerts older than the
    table's 90-day TTL would vanish, so not a fixed calendar date)."""
    day = datetime.fromtimestamp(time.time() - 3 * 86400, timezone.utc).date()
    return datetime(day.year, day.month, day.day, hour, minute, second, tzinfo=timezone.utc).timestamp()


async def metric(client, name: str) -> float:
    text = await (await client.get("/metrics")).text()
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name) and line[len(name):len(name) + 1] in (" ", "{"))


async def test_trigger_alert_is_signed_delivered_listed_and_counted(tmp_path, make_client, receiver):
    client = await make_client(webhook_secret=SECRET, read_token="r3ad", sites_file=rules_file(tmp_path, """
[[alerts]]
name = "restricted"
kind = "trigger"
triggers = ["RESTRICTED_ACCESS"]
cooldown_minutes = 0
webhook = "%s"
""" % receiver.url))
    assert (await client.post("/api/v1/events", json=[event()])).status == 201
    first = (await received(receiver, lambda reqs: reqs))[0]
    body = json.loads(first["body"])
    assert set(body) == BODY_KEYS
    assert (body["rule"], body["kind"], body["site_name"], body["cam_name"], body["trigger"], body["value"]) == (
        "restricted", "trigger", "HEAD_OFFICE", "SERVER_ROOM", "RESTRICTED_ACCESS", 1)
    assert body["at"].endswith("Z") and body["local_time"].endswith("+00:00")
    expected = "sha256=" + hmac.new(SECRET.encode(), first["body"], hashlib.sha256).hexdigest()
    assert first["headers"]["X-Heatmap-Signature"] == expected
    # A second RESTRICTED_ACCESS in the same zone and slot raises the count: a new alert.
    assert (await client.post("/api/v1/events", json=[event(at=last_slot() + 101)])).status == 201
    second = (await received(receiver, lambda reqs: reqs[1:]))[0]
    assert json.loads(second["body"])["value"] == 2 and json.loads(second["body"])["id"] != body["id"]
    # A event without the trigger, or with another trigger than the rule's, does not alert.
    assert (await client.post("/api/v1/events", json=[event(triggers=()), event(triggers=("LOITERING",))])).status == 201

    auth = {"Authorization": "Bearer r3ad"}
    resp = await client.get("/api/v1/alerts")
    assert resp.status == 401
    await conforms(resp, "/api/v1/alerts")

    async def listed():
        doc = await conforms(await client.get("/api/v1/alerts?site=HEAD_OFFICE", headers=auth), "/api/v1/alerts")
        return doc["alerts"] if all(a["delivery"]["state"] == "delivered" for a in doc["alerts"]) else None

    # The delivered state is written right after the 2xx.
    alerts = await eventually_async(listed, message="the alerts were not listed as delivered")
    assert [a["value"] for a in alerts] == [2, 1]  # newest first
    # The data's slot, for the page's "10:00-10:15" (not the moment central judged it).
    slot = datetime.fromtimestamp(last_slot(), timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")
    assert [a["slot"] for a in alerts] == [slot, slot]
    assert alerts[1]["delivery"]["attempts"] == 1 and alerts[1]["delivery"]["delivered_at"]
    assert await metric(client, "heatmap_alerts_fired_total") == 2
    assert await metric(client, "heatmap_alerts_delivered_total") == 2
    assert len(receiver.requests) == 2
    empty = await (await client.get("/api/v1/alerts?site=LONDON", headers=auth)).json()
    assert empty == {"alerts": []}


@pytest.mark.parametrize(("query", "code"), [
    ("site=../x", "bad_site_name"), ("from=yesterday", "bad_from"), ("to=2026-13-01", "bad_to"),
    ("from=2026-01-02&to=2026-01-01", "bad_range"), ("limit=0", "bad_limit"), ("limit=x", "bad_limit"),
    ("limit=%EF%BC%98", "bad_limit"), ("from=2026-01-0%D9%A5", "bad_from"),
    ("from=2026-01-01&from=2026-01-02", "repeated_parameter"), ("site=A&site=B", "repeated_parameter"),
])
async def test_bad_alert_queries_get_a_clear_400(client, query, code):
    resp = await client.get("/api/v1/alerts?" + query)
    assert resp.status == 400 and (await conforms(resp, "/api/v1/alerts"))["error"]["code"] == code


async def test_cooldown_holds_back_a_burst_and_a_slot_alerts_once(tmp_path, make_client, receiver):
    client = await make_client(sites_file=rules_file(tmp_path, """
[[alerts]]
name = "any-trigger"
kind = "trigger"
cooldown_minutes = 10
webhook = "%s"

[[alerts]]
name = "cafeteria-full"
kind = "occupancy"
capacity_ratio = 1.0
webhook = "%s"

[[alerts]]
name = "twelve"
kind = "occupancy"
threshold = 12
cooldown_minutes = 0
webhook = "%s"
""" % (receiver.url, receiver.url, receiver.url)))
    svc = services(client)
    slot = last_slot()
    assert (await client.post("/api/v1/events", json=[event(at=slot + 10)])).status == 201
    await received(receiver, lambda reqs: reqs)
    for i in range(4):  # the rest of a burst of five triggers in one zone
        assert (await client.post("/api/v1/events", json=[event(at=slot + 11 + i)])).status == 201
    # Occupancy: the cafeteria (capacity 10) reaches 10, then 12; the lobby has no capacity.
    assert (await client.post("/api/v1/events", json=[
        event("CAFETERIA", at=slot + 20, people=10, triggers=()), event("CAFETERIA", at=slot + 30, people=12, triggers=()),
        event("LOBBY", at=slot + 20, people=11, triggers=())])).status == 201
    reqs = await received(receiver, lambda reqs: reqs if len(reqs) >= 3 else None)
    await _idle(svc)
    bodies = [json.loads(r["body"]) for r in receiver.requests]
    assert sorted((b["rule"], b["cam_name"], b["value"], b["threshold"]) for b in bodies) == [
        ("any-trigger", "SERVER_ROOM", 1, None), ("cafeteria-full", "CAFETERIA", 12, 10),
        ("twelve", "CAFETERIA", 12, 12)], reqs
    assert await metric(client, "heatmap_alerts_suppressed_total") >= 1
    # The same slot judged again (a replay, another replica) fires nothing new.
    assert await svc.alerts.evaluator.on_data("HEAD_OFFICE", {slot}) == []


async def _idle(svc) -> None:
    """Wait until the app has no evaluation or delivery task running."""
    await eventually_async(lambda: not svc.alerts._tasks and not svc.alerts.deliverer._inflight,
                           timeout=4, message="alert tasks still running")


async def test_local_hours_are_site_time_and_a_pinned_clock_decides(tmp_path, make_client, receiver):
    # KOLKATA is UTC+5:30: 15:00 UTC is 20:30 local, inside "20:00-06:00"; 10:00 UTC is not.
    client = await make_client(sites_file=rules_file(tmp_path, """
[[alerts]]
name = "night"
kind = "trigger"
sites = ["KOLKATA"]
local_hours = "20:00-06:00"
cooldown_minutes = 0
webhook = "%s"
""" % receiver.url))
    svc = services(client)
    for hour in (10, 15):
        ts = pinned(hour, 0, 30)
        doc = event(at=ts)
        doc["site"] = "KOLKATA"
        assert (await client.post("/api/v1/events", json=[doc])).status == 201
        fired = await svc.alerts.evaluator.on_data("KOLKATA", {int(ts) // 900 * 900}, now=ts + 5)
        assert len(fired) == (hour == 15)
    body = json.loads((await received(receiver, lambda reqs: reqs))[0]["body"])
    day = datetime.fromtimestamp(pinned(0), timezone.utc).date().isoformat()
    assert body["local_time"] == day + "T20:30:35+05:30" and body["at"] == day + "T15:00:35.000Z"


async def test_device_offline_and_no_data_fire_once_per_silence(tmp_path, make_client, receiver, clickhouse_client):
    client = await make_client(sites_file=rules_file(tmp_path, """
[[alerts]]
name = "offline"
kind = "device_offline"
minutes = 5
webhook = "%s"

[[alerts]]
name = "quiet"
kind = "no_data"
sites = ["KOLKATA"]
minutes = 30
local_hours = "09:00-18:00"
webhook = "%s"
""" % (receiver.url, receiver.url)))
    svc = services(client)
    now = pinned(12)  # 17:30 in Kolkata (UTC+5:30 all year)
    seen = datetime.fromtimestamp(now - 400, timezone.utc)
    clickhouse_client.insert("device_status", [["HEAD_OFFICE", "jetson-01", "seen", "", seen, {}],
                                         ["HEAD_OFFICE", "jetson-02", "seen", "", datetime.fromtimestamp(now - 60, timezone.utc), {}]],
                       column_names=["site_name", "device_id", "kind", "status", "seen_at", "stats"])
    svc.slots.write_states([["KOLKATA", "jetson-09", "DOOR", datetime.fromtimestamp(now - 3 * 3600, timezone.utc),
                             1, 4, {}, 1, datetime.fromtimestamp(now - 3 * 3600, timezone.utc)]])
    await svc.alerts.evaluator.check(["HEAD_OFFICE", "KOLKATA", "LONDON"], now=now)
    # (The app's own periodic check runs on the real clock, days later: it may fire the same
    # jetson-01 alert first (same id, so stored once either way) and alerts of its own.)
    stored = await svc.alerts.ledger.listing("", 0, time.time() + 60, 100)
    offline = [a for a in stored if a.rule == "offline" and a.device_id == "jetson-01"]
    assert len(offline) == 1
    if offline[0].fired_at == now:  # fired by the test's check, not the periodic one
        assert json.loads(offline[0].body)["value"] == round(400 / 60, 1)
    assert not [a for a in stored if a.rule == "offline" and a.device_id == "jetson-02" and a.fired_at == now]
    quiet = [json.loads(a.body) for a in stored if a.rule == "quiet" and a.fired_at == now]
    assert [(q["site_name"], q["value"], q["threshold"]) for q in quiet] == [("KOLKATA", 180, 30)]  # since 14:30 local
    fired = [*offline, *(a for a in stored if a.rule == "quiet" and a.fired_at == now)]
    # The same silences judged again, or by another replica: nothing new.
    assert await svc.alerts.evaluator.check(["HEAD_OFFICE", "KOLKATA"], now=now + 60) == []
    # Outside local hours (00:30 in Kolkata) no_data is quiet.
    assert await svc.alerts.evaluator.check(["KOLKATA"], now=pinned(19)) == []
    # At 10:00 local (04:30 UTC next day) the silence counts from the window's start, 09:00.
    morning = await svc.alerts.evaluator.check(["KOLKATA"], now=pinned(4, 30) + 86400)
    assert [json.loads(a.body)["value"] for a in morning] == [60]
    # (The app's own periodic check, on the real clock, may add a no_data alert of its own.)
    ids = {a.id for a in fired + morning}
    await received(receiver, lambda reqs: ids <= {r["id"] for r in reqs})


async def test_an_edge_state_with_a_trigger_alerts_by_webhook_and_on_mqtt(tmp_path, mosquitto, make_client, receiver):
    """The consumer path: a device's state carrying a trigger is written, judged, sent to the
    webhook and published at QoS 1 on heatmap/v1/<site>/alerts with the same body."""
    import queue
    import threading

    import paho.mqtt.client as mqtt

    from shared import topics
    from shared.paho_close import stop_client
    from shared.settings import MqttTarget
    from tests.central.test_consumer import Device, state, wait_connected

    client = await make_client(mqtt_url=MqttTarget("127.0.0.1", mosquitto.port, False),
                               mqtt_client_id="central-alerts", batch_seconds=0.05,
                               sites_file=rules_file(tmp_path, """
[[alerts]]
name = "restricted"
kind = "trigger"
webhook = "%s"
""" % receiver.url))
    await wait_connected(client)
    got: queue.Queue = queue.Queue()
    sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="alert-listener", protocol=mqtt.MQTTv311)
    sub.on_message = lambda c, u, m: got.put(m)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    dev = None
    try:
        sub.connect("127.0.0.1", mosquitto.port)
        sub.loop_start()
        dev = Device(mosquitto)
        info = sub.subscribe(topics.alerts_topic("HEAD_OFFICE"), qos=1)
        assert info[0] == mqtt.MQTT_ERR_SUCCESS
        assert await asyncio.get_running_loop().run_in_executor(None, subscribed.wait, 15)  # SUBACK
        dev.publish(dev.states([state("SERVER_ROOM", last_slot(), 1, 1, 1, {"RESTRICTED_ACCESS": 1})]))
        req = (await received(receiver, lambda reqs: reqs))[0]
        msg = await asyncio.get_running_loop().run_in_executor(None, got.get, True, 20)
        assert msg.topic == "heatmap/v1/HEAD_OFFICE/alerts" and msg.qos == 1
        assert msg.payload == req["body"]
        assert json.loads(msg.payload)["trigger"] == "RESTRICTED_ACCESS"
    finally:
        if dev is not None:
            dev.close()
        stop_client(sub)


async def test_an_alert_past_its_retry_window_is_given_up(tmp_path, make_client):
    """A failed attempt 24 h after firing marks the alert failed and counts it; it is listed
    with its last error and never attempted again."""
    receiver = WebhookReceiver(script=[503]).start()
    try:
        client = await make_client(sites_file=rules_file(tmp_path, """
[[alerts]]
name = "restricted"
kind = "trigger"
webhook = "%s"
""" % receiver.url))
        svc = services(client)
        deliverer = svc.alerts.deliverer
        fired = time.time() - deliverer.window - 1
        alert = make_alert(svc.alert_rules[0], svc.sites.get("HEAD_OFFICE"), fired, "old-1", "old")
        await svc.alerts.ledger.write([alert])
        await deliverer._attempt(alert)
        stored = await svc.alerts.ledger.get("HEAD_OFFICE", "old-1")
        assert (stored.state, stored.attempts, stored.last_error) == ("failed", 1, "HTTP 503 (http://127.0.0.1:%d)" % receiver.port)
        assert await metric(client, "heatmap_alerts_failed_total") == 1
        assert await svc.alerts.ledger.due(time.time(), 0) == []
        assert [r["status"] for r in receiver.requests] == [503]
    finally:
        receiver.close()
