"""The harness itself: a real broker round trip, broker restart with a persistent session,
and a real chDB store (create, insert, query)."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest


def _client(broker, client_id: str, clean: bool = True) -> mqtt.Client:
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=mqtt.MQTTv311,
    )
    return c


def _connect(c: mqtt.Client, broker) -> None:
    connected = threading.Event()
    c.on_connect = lambda *a: connected.set()
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    assert connected.wait(5), "no CONNACK from the test broker"


def test_publish_subscribe_round_trip(mosquitto):
    got: queue.Queue = queue.Queue()
    sub = _client(mosquitto, "sub")
    sub.on_message = lambda c, u, m: got.put((m.topic, m.payload, m.qos))
    _connect(sub, mosquitto)
    assert sub.subscribe("t/#", qos=1)[0] == mqtt.MQTT_ERR_SUCCESS
    pub = _client(mosquitto, "pub")
    _connect(pub, mosquitto)
    try:
        # Subscription is in place once a probe comes back.
        for _ in range(50):
            pub.publish("t/probe", b"p", qos=1).wait_for_publish(2)
            try:
                got.get(timeout=0.1)
                break
            except queue.Empty:
                continue
        info = pub.publish("t/x", b"hello", qos=1)
        info.wait_for_publish(5)
        topic, payload, qos = got.get(timeout=5)
        assert (topic, payload, qos) == ("t/x", b"hello", 1)
    finally:
        for c in (sub, pub):
            c.disconnect()
            c.loop_stop()


def test_broker_restart_keeps_persistent_session(mosquitto):
    """A QoS 1 message for an offline persistent subscriber survives a clean broker restart."""
    sub = _client(mosquitto, "durable-sub", clean=False)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    _connect(sub, mosquitto)
    sub.subscribe("d/#", qos=1)
    assert subscribed.wait(5), "no SUBACK"
    sub.disconnect()
    sub.loop_stop()

    pub = _client(mosquitto, "pub2")
    _connect(pub, mosquitto)
    pub.publish("d/1", b"kept", qos=1).wait_for_publish(5)
    pub.disconnect()
    pub.loop_stop()

    mosquitto.restart()
    assert mosquitto.running

    got: queue.Queue = queue.Queue()
    sub = _client(mosquitto, "durable-sub", clean=False)
    sub.on_message = lambda c, u, m: got.put(m.payload)
    _connect(sub, mosquitto)
    try:
        assert got.get(timeout=5) == b"kept"
    finally:
        sub.disconnect()
        sub.loop_stop()


def test_broker_stop_refuses_connections(mosquitto):
    mosquitto.stop()
    assert not mosquitto.running
    c = _client(mosquitto, "late")
    with pytest.raises(ConnectionRefusedError):
        c.connect("127.0.0.1", mosquitto.port)
    mosquitto.start()
    _connect(c, mosquitto)
    c.disconnect()
    c.loop_stop()


def test_chdb_create_insert_query(chdb_client):
    chdb_client.command(
        "CREATE TABLE e (site LowCardinality(String), n UInt16, ts DateTime('UTC')) "
        "ENGINE = MergeTree ORDER BY (site, ts)"
    )
    chdb_client.insert(
        "e",
        [["A", 3, 1767571200], ["A", 7, 1767571260], ["B", 1, 1767571200]],
        column_names=["site", "n", "ts"],
    )
    rows = chdb_client.query(
        "SELECT max(n), count() FROM e WHERE site = {site:String}", parameters={"site": "A"}
    ).result_rows
    assert rows == [(7, 2)]
    # A hostile value stays a value: server-side parameters, never formatted into SQL.
    rows = chdb_client.query(
        "SELECT count() FROM e WHERE site = {site:String}", parameters={"site": "A' OR 1=1 --"}
    ).result_rows
    assert rows == [(0,)]


@pytest.mark.parametrize("program", ["edge", "central"])
def test_cli_help(program):
    out = subprocess.run(
        [sys.executable, "-m", program, "--help"], capture_output=True, text=True, timeout=60
    )
    assert out.returncode == 0, out.stderr
    assert "usage: python -m %s" % program in out.stdout
