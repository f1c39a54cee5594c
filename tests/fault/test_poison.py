"""Poison messages on the Jetson's local broker: the local MQTT input counts, acks and skips
every one of them, keeps counting the pipeline's events, and no restart brings them back.

Before: one timestamp of 400 digits killed the input's thread in paho's callback, unacked,
so the persistent session redelivered it to every later start and the agent stayed up but
deaf (#13).
"""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest

from shared.paho_close import stop_client
from tests.fault.conftest import compare, record, wait_dashboard, wait_until

pytestmark = [pytest.mark.fault, pytest.mark.slow]

TOPIC = "deepstream/detections"
POISON = [
    b'{"camera": "ENTRANCE", "people_count": 1, "timestamp": 1' + b"0" * 400 + b"}",
    b'{"camera": "ENTRANCE", "people_count": 1' + b"0" * 400 + b"}",
    b'[{"camera": "ENTRANCE", "people_count": 1, "timestamp": -1' + b"0" * 400 + b"}]",
    json.dumps({"camera": "ENTRANCE", "people_count": 1, "triggers": {"LOITERING": 5}}).encode(),
    json.dumps({"cam_name": "ENTRANCE", "people_count": 1, "event_triggers": {"LOITERING": 5}}).encode(),
    b"[" * 100000 + b"]" * 100000,  # deeper than the JSON decoder's recursion limit
    b"\xff\xfe\x00 not JSON",
    b'{"camera": "ENTRANCE", "people_count": 1e999}',
    b'{"camera": "ENTRANCE", "people_count": 1, "timestamp": NaN}',
    b"",
]


def test_poison_messages_are_counted_acked_and_never_come_back(mosquitto, mosquitto_factory, spawn, feeder,
                                                              monitor):
    local = mosquitto_factory()
    make_central, make_agent = spawn
    central = make_central(mosquitto.url).start()
    agent = make_agent("jetson-01", mosquitto.url, HEATMAP_LOCAL_MQTT_URL=local.url, HEATMAP_LOCAL_MQTT_TOPIC=TOPIC)
    mon = monitor(mosquitto.port)
    pipeline = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="deepstream", protocol=mqtt.MQTTv311)

    def publish(payload: bytes) -> None:
        pipeline.publish(TOPIC, payload, qos=1).wait_for_publish(10)

    feed = feeder(rate_scale=20)
    per_run = feed.total // 3 + 1
    poison_total = 0
    try:
        pipeline.connect("127.0.0.1", local.port)
        pipeline.loop_start()
        for run in range(3):
            agent.start()
            wait_until("local input subscribed", lambda: "local MQTT input subscribed" in agent.proc.log(400), 20)
            mon.stats.pop(agent.device, None)
            first = feed.cursor
            poisoned = 0
            while feed.cursor - first < per_run and not feed.done:
                feed.send(lambda lines: publish(b"[" + b",".join(lines) + b"]"), 50)
                if run < 2:  # the last run gets none: what it counts as bad came back
                    publish(POISON[poisoned % len(POISON)])
                    poisoned += 1
            want = feed.cursor - first
            wait_until("run %d: the agent counted %d events" % (run, want),
                       lambda want=want: mon.stat(agent.device, "events_total", -1) == want, 30)
            wait_until("run %d: %d bad messages" % (run, poisoned),
                       lambda p=poisoned: mon.stat(agent.device, "local_mqtt_bad_messages", -1) >= p, 15)
            bad = mon.stat(agent.device, "local_mqtt_bad_messages")
            assert bad == poisoned, "run %d: %d bad messages counted, %d sent" % (run, bad, poisoned)
            assert mon.stat(agent.device, "local_mqtt_redelivered") == 0
            poison_total += poisoned
            assert agent.proc.running
            assert agent.stop() == 0
    finally:
        stop_client(pipeline)
    assert feed.done
    agent.start()
    began = time.monotonic()
    wait_dashboard(central, feed.expected(), timeout=90)
    recover = time.monotonic() - began
    assert agent.stop() == 0
    assert central.stop() == 0
    result = compare(feed.expected(), central.slot_states())
    record("poison messages on the local broker", result, recover, poison=poison_total)
    assert result["wrong"] == []
