"""The local MQTT input: field mapping, early commits, lost acks (crash replay: test_run.py)."""

from __future__ import annotations

import json

import paho.mqtt.client as mqtt
import pytest

from edge.agent import Agent
from edge.config import Config
from edge.inputs.local_mqtt import apply_mapping
from shared.exceptions import EventError
from tests.harness import eventually

# Date-sensitive: make test-clock runs these again at fixed instants (tests/_clock).
pytestmark = pytest.mark.clock

DEEPSTREAM = {"@timestamp": "2026-01-05T10:00:00.000Z", "sensorId": "ENTRANCE",
              "objects": ["1|person", "2|person"], "analytics": {"triggers": ["CROWD_VIOLATION"]},
              "frames": [{"count": 7}]}


def test_dotted_paths_list_lengths_and_indexes():
    mapping = {"camera": "sensorId", "people_count": "objects#", "timestamp": "@timestamp",
               "triggers": "analytics.triggers"}
    assert apply_mapping(DEEPSTREAM, mapping) == {
        "camera": "ENTRANCE", "people_count": 2, "timestamp": "2026-01-05T10:00:00.000Z",
        "triggers": ["CROWD_VIOLATION"]}
    assert apply_mapping(DEEPSTREAM, {"camera": "sensorId", "people_count": "frames.0.count"}) == {
        "camera": "ENTRANCE", "people_count": 7}


def test_missing_paths_are_left_out_and_a_length_of_a_non_list_is_refused():
    assert apply_mapping(DEEPSTREAM, {"camera": "sensor.id", "people_count": "frames.5.count"}) == {}
    with pytest.raises(EventError):
        apply_mapping(DEEPSTREAM, {"camera": "sensorId", "people_count": "sensorId#"})


def _agent(make_config, broker) -> Agent:
    """An agent reading the test broker as its local broker; commits only when asked."""
    local = Config.load(None, {"HEATMAP_SITE": "HEAD_OFFICE", "HEATMAP_DEVICE_ID": "jetson-01",
                               "HEATMAP_LOCAL_MQTT_URL": broker.url}).local_mqtt
    agent = Agent(make_config(mqtt=None, local_mqtt=local, local_mqtt_topic="ds/detections",
                              commit_interval=60.0, publish_interval=60.0)).start()
    # The SUBACK: the persistent session takes messages from here.
    assert agent.inputs[0].subscribed.wait(10), "the local MQTT input did not subscribe"
    return agent


def _publisher(broker) -> mqtt.Client:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="deepstream", protocol=mqtt.MQTTv311)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    return c


def test_uncommitted_messages_ask_for_an_early_commit_past_the_brokers_inflight_limit(make_config, mosquitto):
    agent = _agent(make_config, mosquitto)
    pub = _publisher(mosquitto)
    try:
        event = json.dumps({"camera": "ENTRANCE", "people_count": 2}).encode()
        for _ in range(200):
            pub.publish("ds/detections", event, qos=1)
        # mosquitto sends 20 unacked messages at a time; the 60 s commit interval would
        # hold the rest back for a minute.
        eventually(lambda: agent.inputs[0].messages == 200, 10, "200 messages")
        assert agent.flush(5)
        assert [e for _, _, _, e, _ in agent.outbox.load(0)[0]] == [200]
    finally:
        pub.disconnect()
        pub.loop_stop()
        agent.stop()


def test_an_ack_lost_with_the_connection_does_not_count_the_redelivery_twice(make_config, mosquitto):
    agent = _agent(make_config, mosquitto)
    inp = agent.inputs[0]
    pub = _publisher(mosquitto)
    try:
        pub.publish("ds/detections", json.dumps({"camera": "ENTRANCE", "people_count": 2}), qos=1).wait_for_publish(5)
        eventually(lambda: inp.messages == 1, 10, "one message")
    finally:
        pub.disconnect()
        pub.loop_stop()
    try:
        mosquitto.stop()  # persists the session with the message in flight, unacked
        eventually(lambda: not inp._client.is_connected(), 10, "disconnected")
        assert agent.flush(5)  # committed; its ack goes nowhere
        mosquitto.start()  # the session resumes and the message comes again, DUP set
        eventually(lambda: inp.messages + inp.redelivered >= 2, 15, "the redelivery")
        assert (inp.messages, inp.redelivered) == (1, 1)
        assert agent.flush(5)
        assert [e for _, _, _, e, _ in agent.outbox.load(0)[0]] == [1]
        assert agent.stats()["local_mqtt_redelivered"] == 1
    finally:
        agent.stop()
