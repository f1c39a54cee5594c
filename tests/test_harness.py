"""The harness itself: a real broker round trip, broker restart with a persistent session,
and a real chDB store (create, insert, query)."""

from __future__ import annotations

import queue
import subprocess
import sys
import threading

import paho.mqtt.client as mqtt
import pytest

from shared.events import parse_time
from shared.paho_close import stop_client
from tests.harness import (
    eventually,
    eventually_async,
    recent_utc_weekday,
    recent_utc_workday,
    stopped_at_teardown,
    subscribed,
)


def _client(broker, client_id: str, clean: bool = True) -> mqtt.Client:
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean,
        protocol=mqtt.MQTTv311,
    )
    stopped_at_teardown(c)
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
    subscribed(sub, "t/#")
    pub = _client(mosquitto, "pub")
    _connect(pub, mosquitto)
    try:
        info = pub.publish("t/x", b"hello", qos=1)
        info.wait_for_publish(5)
        topic, payload, qos = got.get(timeout=5)
        assert (topic, payload, qos) == ("t/x", b"hello", 1)
    finally:
        for c in (sub, pub):
            stop_client(c)


def test_broker_restart_keeps_persistent_session(mosquitto):
    """A QoS 1 message for an offline persistent subscriber survives a clean broker restart."""
    sub = _client(mosquitto, "durable-sub", clean=False)
    subscribed = threading.Event()
    sub.on_subscribe = lambda *a: subscribed.set()
    _connect(sub, mosquitto)
    sub.subscribe("d/#", qos=1)
    assert subscribed.wait(5), "no SUBACK"
    stop_client(sub)

    pub = _client(mosquitto, "pub2")
    _connect(pub, mosquitto)
    pub.publish("d/1", b"kept", qos=1).wait_for_publish(5)
    stop_client(pub)

    mosquitto.restart()
    assert mosquitto.running

    got: queue.Queue = queue.Queue()
    sub = _client(mosquitto, "durable-sub", clean=False)
    sub.on_message = lambda c, u, m: got.put(m.payload)
    _connect(sub, mosquitto)
    try:
        assert got.get(timeout=5) == b"kept"
    finally:
        stop_client(sub)


def test_broker_stop_refuses_connections(mosquitto):
    mosquitto.stop()
    assert not mosquitto.running
    c = _client(mosquitto, "late")
    with pytest.raises(ConnectionRefusedError):
        c.connect("127.0.0.1", mosquitto.port)
    mosquitto.start()
    _connect(c, mosquitto)
    stop_client(c)


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


def test_eventually_returns_the_first_truthy_answer_or_says_what_it_waited_for():
    answers = iter([0, None, [], "ready"])
    assert eventually(lambda: next(answers), 5) == "ready"
    with pytest.raises(AssertionError, match=r"the door opens.*last: False"):
        eventually(lambda: False, 0.05, "the door opens")


async def test_eventually_async_lets_the_loop_run_and_takes_coroutines():
    import asyncio

    done = asyncio.Event()
    asyncio.get_running_loop().call_later(0.05, done.set)

    async def is_done():
        return done.is_set()

    assert await eventually_async(is_done, 5)
    with pytest.raises(AssertionError):
        await eventually_async(lambda: False, 0.05)


@pytest.mark.parametrize(("now", "weekday", "want"), [
    ("2026-12-01T08:15:00Z", 3, "2026-11-26T00:00:00Z"),  # a Tuesday: last Thursday
    ("2026-12-03T00:00:00Z", 3, "2026-12-03T00:00:00Z"),  # Thursday midnight itself
    ("2026-03-29T01:30:00Z", 0, "2026-03-23T00:00:00Z"),  # London's clock change, a Sunday
])
def test_recent_utc_weekday(now, weekday, want):
    assert recent_utc_weekday(weekday, parse_time(now)) == parse_time(want)


@pytest.mark.parametrize(("now", "want"), [
    ("2026-12-01T12:00:00Z", "2026-12-01T12:00:00Z"),  # Tuesday noon itself
    ("2026-12-01T11:59:59Z", "2026-11-30T12:00:00Z"),  # Tuesday morning: Monday noon
    ("2026-11-30T08:00:00Z", "2026-11-27T12:00:00Z"),  # Monday morning: Friday noon
    ("2026-11-29T23:59:30Z", "2026-11-27T12:00:00Z"),  # Sunday night
])
def test_recent_utc_workday(now, want):
    assert recent_utc_workday(12, parse_time(now)) == parse_time(want)
