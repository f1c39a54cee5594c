"""The MQTT consumer end to end: a real mosquitto, the real engine, the real app.

A test "device" is a plain paho client publishing protocol messages on its topics and
listening on its ack topic, as the edge agent does.
"""

from __future__ import annotations

import asyncio
import json
import os
import queue
import subprocess
import sys
import threading
import time
import zlib
from dataclasses import replace
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from central.consumer import Consumer
from central.exceptions import ConfigError
from central.metrics import Metrics
from central.storage import schema
from central.storage.store import Store
from shared import protocol, topics
from shared.paho_close import stop_client
from shared.settings import MqttTarget
from tests.central.conftest import services
from tests.harness import eventually, eventually_async

SLOT = 1767600000  # 2026-01-05T08:00:00Z


class Device:
    def __init__(self, broker, site="HEAD_OFFICE", device="jetson-01"):
        self.site, self.device = site, device
        self.acks: queue.Queue = queue.Queue()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="dev-" + device,
                                  protocol=mqtt.MQTTv311)
        subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: subscribed.set()
        self.client.on_message = lambda c, u, m: self.acks.put(protocol.decode(m.payload))
        connected = threading.Event()
        self.client.on_connect = lambda *a: connected.set()
        try:
            self.client.connect("127.0.0.1", broker.port)
            self.client.loop_start()
            assert connected.wait(15)
            self.client.subscribe(topics.ack_topic(site, device), qos=1)
            assert subscribed.wait(15)
        except BaseException:
            self.close()
            raise

    def publish(self, payload: bytes, kind="state", topic=None, retain=False):
        info = self.client.publish(topic or str(topics.Topic(self.site, self.device, kind)), payload, qos=1,
                                   retain=retain)
        info.wait_for_publish(5)

    def states(self, states, seq=1):
        return protocol.encode(protocol.StateBatch(self.site, self.device, seq, time.time(), tuple(states)),
                               compress=True)

    def ack_items(self, timeout, until=None):
        """Acked (camera, slot, rev) seen within ``timeout``; returns early once ``until`` is in."""
        out = set()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not (until and until <= out):
            try:
                ack = self.acks.get(timeout=0.05)
            except queue.Empty:
                continue
            out.update((a.camera, a.slot, a.rev) for a in ack.acks)
        return out

    def close(self):
        stop_client(self.client)


def state(camera="EMPLOYEE_AREA", slot=SLOT, peak=5, events=10, rev=1, triggers=None):
    return protocol.SlotState(camera, slot, peak, events, rev, triggers or {})


def accepted_states(consumer) -> float:
    """State messages a consumer took, read through prometheus_client's public API."""
    value = consumer.metrics.registry.get_sample_value(
        "heatmap_mqtt_messages_total", {"kind": "state", "result": "accepted"})
    return value or 0.0


async def wait_connected(client):
    consumer = services(client).consumer
    await eventually_async(consumer.subscribed.is_set, 20, "the consumer's SUBACK")


@pytest.fixture
async def central(mosquitto, make_client):
    client = await make_client(mqtt_url=MqttTarget("127.0.0.1", mosquitto.port, False),
                               mqtt_client_id="central-test", batch_seconds=0.05)
    await wait_connected(client)
    return client


async def test_states_are_written_then_acked_end_to_end(central, mosquitto, clickhouse_client):
    dev = Device(mosquitto)
    try:
        dev.publish(dev.states([state(rev=1), state("CAFETERIA", peak=2, events=3, rev=2, triggers={"X": 1})]))
        dev.publish(dev.states([state(rev=3, peak=7, events=12)], seq=2))
        dev.publish(dev.states([state(rev=1)], seq=3))  # a stale duplicate after the newer one
        want = {("EMPLOYEE_AREA", SLOT, 1), ("CAFETERIA", SLOT, 2), ("EMPLOYEE_AREA", SLOT, 3)}
        acks = await asyncio.get_running_loop().run_in_executor(None, dev.ack_items, 20.0, want)
        assert want <= acks
        resp = await central.get("/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05")
        doc = await resp.json()
        assert doc["zones"]["EMPLOYEE_AREA"]["events"] == 12 and doc["zones"]["EMPLOYEE_AREA"]["peak"] == 7
        assert doc["critical_events"] == {"X": 1, "total_events": 15}
        assert doc["meta"]["source"] == "edge"
        rows = clickhouse_client.query("SELECT cam_name, max(rev) FROM slot_states GROUP BY cam_name ORDER BY cam_name")
        assert rows.result_rows == [("CAFETERIA", 2), ("EMPLOYEE_AREA", 3)]
        # Availability and last contact show in /api/v1/sites.
        dev.publish(protocol.encode(protocol.Status(dev.site, dev.device, "online", time.time())), "status",
                    retain=True)
        async def device_listed():
            doc = await (await central.get("/api/v1/sites")).json()
            site = next(s for s in doc["sites"] if s["site_name"] == "HEAD_OFFICE")
            return site["devices"] and site["devices"][0]["status"] == "online" and site["devices"][0]
        listed = await eventually_async(device_listed, 10, "the device listed online")
        assert listed["device_id"] == "jetson-01" and listed["last_seen"].endswith("Z")
    finally:
        dev.close()


async def test_version_2_states_get_acks_by_revision_version_1_per_state(central, mosquitto, clickhouse_client):
    """A rolling upgrade: the same device's v1 and v2 batches each get acks they can read."""
    dev = Device(mosquitto)
    try:
        v2 = [state(rev=10), state("CAFETERIA", rev=11), state("LOBBY", rev=13)]
        # Urgent (priority publishing): written, never acked; the regular batch is.
        dev.publish(protocol.encode(protocol.StateBatch(dev.site, dev.device, 1, time.time(),
                                                        (state("RECEPTION", rev=9),), v=2, urgent=True),
                                    compress=True))
        dev.publish(protocol.encode(protocol.StateBatch(dev.site, dev.device, 1, time.time(), tuple(v2), v=2),
                                    compress=True))

        def rev_acks():
            got = []
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and sum(a.count() for a in got) < 3:
                try:
                    ack = dev.acks.get(timeout=0.05)
                except queue.Empty:
                    continue
                got.append(ack)
            return got

        got = await asyncio.get_running_loop().run_in_executor(None, rev_acks)
        assert all(isinstance(a, protocol.RevAck) for a in got)
        assert sorted(r for a in got for first, last in a.revs for r in range(first, last + 1)) == [10, 11, 13]
        dev.publish(dev.states([state(rev=20)], seq=2))  # v1 from the same device
        acks = await asyncio.get_running_loop().run_in_executor(
            None, dev.ack_items, 20.0, {("EMPLOYEE_AREA", SLOT, 20)})
        assert ("EMPLOYEE_AREA", SLOT, 20) in acks
        rows = clickhouse_client.query("SELECT cam_name, max(rev) FROM slot_states GROUP BY cam_name ORDER BY cam_name")
        assert rows.result_rows == [("CAFETERIA", 11), ("EMPLOYEE_AREA", 20), ("LOBBY", 13), ("RECEPTION", 9)]
    finally:
        dev.close()


async def test_bad_messages_go_to_dead_letters_with_reasons(central, mosquitto, clickhouse_client):
    dev = Device(mosquitto)
    other = protocol.encode(protocol.StateBatch("HEAD_OFFICE", "someone-else", 1, time.time(), (state(),)))
    try:
        dev.publish(b"{not json")
        dev.publish(other)  # identity mismatch: payload names another device
        dev.publish(json.dumps({"v": 9, "type": "state"}).encode())
        dev.publish(zlib.compress(b"[" * 10) + b"junk")
        dev.publish(dev.states([state(rev=7)]))  # a good one after the bad ones still flows
        acks = await asyncio.get_running_loop().run_in_executor(
            None, dev.ack_items, 20.0, {("EMPLOYEE_AREA", SLOT, 7)})
        assert acks == {("EMPLOYEE_AREA", SLOT, 7)}
        reasons = await eventually_async(lambda: sorted(r[0] for r in clickhouse_client.query(
            "SELECT reason FROM dead_letters").result_rows) or None)
        assert reasons == ["bad_encoding", "bad_json", "identity_mismatch", "unsupported_version"]
        row = clickhouse_client.query("SELECT topic, device_id, field, payload FROM dead_letters "
                                "WHERE reason = 'bad_json'").result_rows[0]
        assert row[0] == topics.state_topic("HEAD_OFFICE", "jetson-01") and row[1] == "jetson-01"
        metrics = await (await central.get("/metrics")).text()
        assert 'heatmap_dead_letters_total{reason="identity_mismatch"} 1.0' in metrics
        assert "heatmap_slot_states_written_total 1.0" in metrics
    finally:
        dev.close()


@pytest.mark.parametrize(("overrides", "code"), [
    ({"accept_unknown_sites": False}, "unknown_site"),
    ({"max_sites": 5}, "too_many_sites"),  # the sites file configures 4: one new site fits
])
async def test_states_of_a_site_ingest_would_refuse_are_dead_letters(
        mosquitto, make_client, clickhouse_client, caplog, overrides, code):
    """The sites rule of raw ingest on the MQTT path: a refused site's states are dead
    letters (counted, logged, acked to the broker, not to the device), and the other
    messages of the same batch are written and acked."""
    client = await make_client(mqtt_url=MqttTarget("127.0.0.1", mosquitto.port, False),
                               mqtt_client_id="central-test", batch_seconds=0.5, **overrides)
    await wait_connected(client)
    known = Device(mosquitto)
    devices = [known]
    try:
        if code == "too_many_sites":  # the fifth site is let in, and counts
            fifth = Device(mosquitto, site="FIFTH_SITE", device="jetson-05")
            devices.append(fifth)
            fifth.publish(fifth.states([state(rev=4)]))
            assert await asyncio.get_running_loop().run_in_executor(
                None, fifth.ack_items, 20.0, {("EMPLOYEE_AREA", SLOT, 4)})
        stranger = Device(mosquitto, site="NOT_LISTED", device="jetson-09")
        devices.append(stranger)
        stranger.publish(stranger.states([state(rev=1), state("CAFETERIA", rev=2)]))
        known.publish(known.states([state(rev=3)]))  # most likely in the same batch
        acks = await asyncio.get_running_loop().run_in_executor(
            None, known.ack_items, 20.0, {("EMPLOYEE_AREA", SLOT, 3)})
        assert acks == {("EMPLOYEE_AREA", SLOT, 3)}
        rows = await eventually_async(lambda: clickhouse_client.query(
            "SELECT site_name, device_id, reason, field FROM dead_letters").result_rows or None)
        assert rows == [("NOT_LISTED", "jetson-09", code, "site")]
        assert stranger.ack_items(1.0) == set()
        sites = clickhouse_client.query("SELECT DISTINCT site_name FROM slot_states ORDER BY site_name").result_rows
        assert [r[0] for r in sites] == (["FIFTH_SITE"] if code == "too_many_sites" else []) + ["HEAD_OFFICE"]
        assert not clickhouse_client.query(
            "SELECT count() FROM device_slots WHERE site_name = 'NOT_LISTED' AND slot = %d" % SLOT).result_rows[0][0]
        metrics = await (await client.get("/metrics")).text()
        assert 'heatmap_dead_letters_total{reason="%s"} 1.0' % code in metrics
        assert any("site 'NOT_LISTED' refused (%s)" % code in r.getMessage() for r in caplog.records)
    finally:
        for dev in devices:
            dev.close()


async def test_an_unexpected_decode_error_becomes_a_dead_letter(central, mosquitto, clickhouse_client, monkeypatch):
    import central.consumer as consumer_module

    real = consumer_module.protocol.check_identity

    def check_identity(msg, topic):  # a bug that only messages of one device hit
        if topic.device == "buggy":
            raise KeyError("boom")
        return real(msg, topic)

    monkeypatch.setattr(consumer_module.protocol, "check_identity", check_identity)
    buggy = Device(mosquitto, device="buggy")
    try:
        dev = Device(mosquitto)
    except BaseException:
        buggy.close()
        raise
    try:
        buggy.publish(buggy.states([state(rev=5)]))
        dev.publish(dev.states([state(rev=6)]))
        acks = await asyncio.get_running_loop().run_in_executor(
            None, dev.ack_items, 20.0, {("EMPLOYEE_AREA", SLOT, 6)})
        assert ("EMPLOYEE_AREA", SLOT, 6) in acks
        row = await eventually_async(lambda: clickhouse_client.query(
            "SELECT reason, device_id, message FROM dead_letters").result_rows or None)
        assert row == [("internal_error", "buggy", "KeyError: 'boom'")]
        await eventually_async(lambda: services(central).consumer.pending == 0)
    finally:
        buggy.close()
        dev.close()


async def test_a_batch_write_failing_with_any_exception_is_retried(central, mosquitto, clickhouse_client, monkeypatch):
    store = services(central).store
    real, failures = store.insert, []

    def insert(table, rows, columns, settings=None):
        if table == "slot_states" and rows and len(failures) < 2:
            failures.append(table)
            raise TypeError("a bug in the insert path")
        return real(table, rows, columns, settings)

    monkeypatch.setattr(store, "insert", insert)
    dev = Device(mosquitto)
    try:
        dev.publish(dev.states([state(rev=9)]))
        acks = await asyncio.get_running_loop().run_in_executor(
            None, dev.ack_items, 20.0, {("EMPLOYEE_AREA", SLOT, 9)})
        assert ("EMPLOYEE_AREA", SLOT, 9) in acks and len(failures) == 2
        assert clickhouse_client.query("SELECT max(rev) FROM slot_states").result_rows == [(9,)]
        metrics = await (await central.get("/metrics")).text()
        assert 'heatmap_insert_failures_total{reason="TypeError"} 2.0' in metrics
        await eventually_async(lambda: services(central).consumer.pending == 0)
    finally:
        dev.close()


@pytest.mark.slow
async def test_storage_outage_acks_nothing_until_the_insert_succeeds(central, mosquitto, clickhouse_client):
    dev = Device(mosquitto)
    try:
        clickhouse_client.command("DETACH TABLE slot_states")
        dev.publish(dev.states([state(rev=11)]))
        loop = asyncio.get_running_loop()
        assert await loop.run_in_executor(None, dev.ack_items, 1.5) == set()
        health = await (await central.get("/healthz")).json()
        assert health["status"] == "degraded" and health["pending_messages"] >= 1
        assert (await central.get("/readyz")).status == 503
        clickhouse_client.command("ATTACH TABLE slot_states")
        acks = await loop.run_in_executor(None, dev.ack_items, 20.0, {("EMPLOYEE_AREA", SLOT, 11)})
        assert ("EMPLOYEE_AREA", SLOT, 11) in acks
        assert (await (await central.get("/healthz")).json())["status"] == "ok"
    finally:
        dev.close()


def consumer_config(config, broker, client_id, **overrides):
    """``config`` pointed at ``broker`` with its own persistent client id."""
    return replace(config, mqtt_url=MqttTarget("127.0.0.1", broker.port, False),
                   mqtt_client_id=client_id, **overrides)


def until_subscribed(*consumers):
    """Wait (up to 20 s) for every consumer's SUBACK."""
    for c in consumers:
        assert c.subscribed.wait(20), "a consumer did not subscribe"


def test_graceful_stop_writes_and_acks_what_was_taken(config, mosquitto, clickhouse_url):
    """A long batch window: stop() must flush the batch, ack it, and leave nothing unacked
    in the broker session (a new consumer with the same id receives nothing)."""
    store = Store(clickhouse_url)
    schema.migrate(store)
    cfg = consumer_config(config, mosquitto, "central-graceful", batch_seconds=30)
    consumer = Consumer(cfg, store, Metrics())
    consumer.start()
    again = None
    dev = None
    try:
        dev = Device(mosquitto)
        until_subscribed(consumer)
        dev.publish(dev.states([state(rev=21)]))
        eventually(lambda: consumer.pending, 20, "the consumer took the message")
        assert consumer.pending == 1
        consumer.stop()
        assert store.query("SELECT max(rev) FROM slot_states")[0][0] == 21
        assert ("EMPLOYEE_AREA", SLOT, 21) in dev.ack_items(10.0, {("EMPLOYEE_AREA", SLOT, 21)})
        again = Consumer(cfg, store, Metrics())
        again.start()
        assert again.subscribed.wait(20)
        # A probe published after the SUBACK comes after anything the session still held.
        dev.publish(dev.states([state(rev=22)], seq=2))
        eventually(lambda: accepted_states(again) >= 1, 20, "the probe taken")
        assert accepted_states(again) == 1  # the probe only: rev 21 was acked before the stop
        again.stop()
    finally:
        for c in (consumer, again):  # again on a failure path: stop() is idempotent
            if c is not None:
                c.stop()
        if dev is not None:
            dev.close()
        store.close()


@pytest.mark.slow
def test_unacked_messages_come_back_after_a_restart(config, mosquitto, clickhouse_url):
    """Messages taken but not written (storage down at shutdown) are redelivered."""
    store = Store(clickhouse_url)
    schema.migrate(store)
    cfg = consumer_config(config, mosquitto, "central-redeliver", batch_seconds=0.05)
    consumer = Consumer(cfg, store, Metrics(), shutdown_timeout=0.5)
    consumer.start()
    again = None
    dev = None
    try:
        dev = Device(mosquitto)
        until_subscribed(consumer)
        store.command("DETACH TABLE slot_states")
        dev.publish(dev.states([state(rev=31)]))
        eventually(lambda: consumer.pending, 20, "the consumer took the message")
        consumer.stop()  # cannot write: gives up without acking
        store.command("ATTACH TABLE slot_states")
        assert dev.ack_items(0.3) == set()
        again = Consumer(cfg, store, Metrics())
        again.start()
        assert ("EMPLOYEE_AREA", SLOT, 31) in dev.ack_items(20.0, {("EMPLOYEE_AREA", SLOT, 31)})
        again.stop()
        assert store.query("SELECT max(rev) FROM slot_states")[0][0] == 31
    finally:
        for c in (consumer, again):  # again on a failure path: stop() is idempotent
            if c is not None:
                c.stop()
        if dev is not None:
            dev.close()
        store.close()


def test_shared_subscription_splits_the_stream(config, mosquitto, clickhouse_url):
    store = Store(clickhouse_url)
    schema.migrate(store)
    consumers = []
    dev = None
    try:
        for name in ("replica-a", "replica-b"):
            cfg = consumer_config(config, mosquitto, name, mqtt_share_group="central", batch_seconds=0.02)
            consumer = Consumer(cfg, store, Metrics())
            consumer.start()
            consumers.append(consumer)
        until_subscribed(*consumers)
        dev = Device(mosquitto)
        for i in range(20):
            dev.publish(dev.states([state(slot=SLOT + 900 * i, rev=100 + i)], seq=i))
        want = {("EMPLOYEE_AREA", SLOT + 900 * i, 100 + i) for i in range(20)}
        acks = dev.ack_items(20.0, want)
        assert acks == want
        taken = [accepted_states(c) for c in consumers]
        assert sum(taken) == 20 and all(t > 0 for t in taken), taken
    finally:
        for c in consumers:
            c.stop()
        if dev is not None:
            dev.close()
        store.close()


async def test_device_contact_per_slot_feeds_coverage(central, mosquitto, clickhouse_client):
    """A state marks its slot as reported; any message marks the slot it arrived in."""
    dev = Device(mosquitto)
    try:
        before = time.time()
        dev.publish(dev.states([state(slot=SLOT, rev=1), state(slot=SLOT + 3600, events=0, peak=0, rev=1)]))
        dev.publish(protocol.encode(protocol.Stats(dev.site, dev.device, time.time(), {"fps": 10.0})), "stats")
        want = {("EMPLOYEE_AREA", SLOT, 1), ("EMPLOYEE_AREA", SLOT + 3600, 1)}
        assert want <= await asyncio.get_running_loop().run_in_executor(None, dev.ack_items, 20.0, want)
        after = time.time()
        now_slots = set(range(int(before) // 900 * 900, int(after) // 900 * 900 + 1, 900))

        def contact():
            rows = clickhouse_client.query("SELECT DISTINCT toUnixTimestamp(slot) FROM device_slots "
                                     "WHERE site_name = 'HEAD_OFFICE' AND device_id = 'jetson-01'").result_rows
            got = {r[0] for r in rows}
            return got if {SLOT, SLOT + 3600} <= got and got & now_slots else None

        got = await eventually_async(contact, 20, "device contact recorded")
        assert got - {SLOT, SLOT + 3600} <= now_slots
        # Hour 08 UTC: one slot of four reported (with people); hour 09: one (nobody there);
        # hour 10: none (offline). Coverage tells the last two apart, peaks cannot.
        doc = await (await central.get("/api/v1/history/HEAD_OFFICE?from=2026-01-05&to=2026-01-05&bucket=hour")).json()
        hours = {s["start"][11:13]: s for s in doc["series"]}
        assert (hours["08"]["events"], hours["08"]["coverage"]) == (10, 0.25)
        assert (hours["09"]["events"], hours["09"]["coverage"]) == (0, 0.25)
        assert (hours["10"]["events"], hours["10"]["coverage"]) == (0, 0.0)
        assert doc["totals"]["coverage"] == round(2 / 96, 4)
    finally:
        dev.close()


def test_a_ca_file_that_is_no_certificate_is_a_config_error(config, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    store = Store(config.clickhouse_url)
    try:
        with pytest.raises(ConfigError, match=r"TLS setup for mqtts://127.0.0.1:8883 \(HEATMAP_MQTT_CA_FILE .*ca.pem\)"):
            Consumer(replace(config, mqtt_url=MqttTarget("127.0.0.1", 8883, True), mqtt_ca_file=str(ca)),
                     store, Metrics())
    finally:
        store.close()


@pytest.mark.slow
def test_serve_with_a_bad_ca_file_stops_with_one_line(tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("not a certificate\n")
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
    # Port 9 (discard): start-up stops at the TLS set-up, before any connection.
    env.update(HEATMAP_DATA_DIR=str(tmp_path / "central"), HEATMAP_HTTP_ADDR="127.0.0.1:0",
               HEATMAP_MQTT_URL="mqtts://127.0.0.1:9", HEATMAP_MQTT_CA_FILE=str(ca))
    proc = subprocess.run([sys.executable, "-m", "central", "serve"], env=env, capture_output=True, text=True,
                          timeout=120, cwd=Path(__file__).resolve().parents[2])
    assert proc.returncode == 2, proc.stderr
    # chDB's engine may print its own shutdown complaint at the process's exit, after ours.
    last = [line for line in proc.stderr.strip().splitlines()
            if not line.startswith("Exception in global_context->shutdown()")][-1]
    assert last.startswith("python -m central serve: TLS setup for mqtts://127.0.0.1:9"), proc.stderr
