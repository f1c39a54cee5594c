"""The local MQTT input: field mapping, early commits, lost acks, poison and fuzzed messages
(crash replay and the stop drain with a real process: test_run.py)."""

from __future__ import annotations

import json
import time

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from edge.agent import Agent
from edge.config import Config
from edge.inputs.local_mqtt import apply_mapping
from shared.events import parse_event
from shared.exceptions import EventError
from shared.paho_close import stop_client
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
    try:
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
    except BaseException:
        stop_client(c)
        raise
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
        stop_client(pub)
        agent.stop()


def test_an_ack_lost_with_the_connection_does_not_count_the_redelivery_twice(make_config, mosquitto):
    agent = _agent(make_config, mosquitto)
    inp = agent.inputs[0]
    pub = _publisher(mosquitto)
    try:
        pub.publish("ds/detections", json.dumps({"camera": "ENTRANCE", "people_count": 2}), qos=1).wait_for_publish(5)
        eventually(lambda: inp.messages == 1, 10, "one message")
    finally:
        stop_client(pub)
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


POISON = b'{"camera": "CAM_X", "people_count": 1, "timestamp": 1' + b"0" * 400 + b"}"


def _outbox_events(agent) -> dict:
    assert agent.flush(5)
    values, _ = agent.outbox.load(0)
    out: dict = {}
    for camera, _slot, _peak, events, _trig in values:
        out[camera] = out.get(camera, 0) + events
    return out


def _sentinel_arrives_first(agent, broker) -> None:
    """After a restart: a message published now is the first one taken, so nothing of the
    last session came back (a resumed session delivers its held messages before new ones)."""
    inp = agent.inputs[0]
    pub = _publisher(broker)
    try:
        pub.publish("ds/detections", json.dumps({"camera": "SENTINEL", "people_count": 1}), qos=1).wait_for_publish(5)
        assert eventually(lambda: inp.messages >= 1)
        assert (inp.messages, inp.redelivered) == (1, 0)
    finally:
        stop_client(pub)


def test_a_poison_message_of_any_kind_is_counted_acked_and_skipped(make_config, mosquitto):
    """#13: a 400-digit timestamp killed the input's thread, unacked, so every restart got
    it again and the agent stayed up but deaf."""
    agent = _agent(make_config, mosquitto)
    inp = agent.inputs[0]
    pub = _publisher(mosquitto)
    bad = [POISON, b"{not json", b"\xff\xfe", b"[1, \"x\"]",
           json.dumps({"camera": "CAM_X", "people_count": 1, "triggers": {"LOITERING": 5}}).encode(),
           json.dumps({"cam_name": "CAM_X", "people_count": 1, "event_triggers": {"LOITERING": 5}}).encode(),
           json.dumps({"camera": "CAM_X", "people_count": 10 ** 400}).encode()]
    good = json.dumps({"camera": "CAM_X", "people_count": 2, "triggers": ["LOITERING"]}).encode()
    try:
        for payload in [*bad, good]:
            pub.publish("ds/detections", payload, qos=1)
        pub.publish("ds/detections", good, qos=1).wait_for_publish(5)
        assert eventually(lambda: inp.messages == len(bad) + 2), inp.stats()
        assert _outbox_events(agent) == {"CAM_X": 2}
        stats = agent.stats()
        assert stats["local_mqtt_bad_messages"] == len(bad)
        assert {k: v for k, v in stats.items() if k.startswith("refused_") and v} == {
            "refused_total": 8, "refused_bad_timestamp": 1, "refused_bad_json": 2, "refused_bad_event": 2,
            "refused_bad_triggers": 2, "refused_bad_count": 1}
        assert inp.alive() and inp.mark() == 0  # all acked, bad ones too
    finally:
        stop_client(pub)
        agent.stop()
    agent = _agent(make_config, mosquitto)  # the same persistent session
    try:
        _sentinel_arrives_first(agent, mosquitto)
        assert agent.stats()["local_mqtt_bad_messages"] == 0
    finally:
        agent.stop()


# -- hypothesis: fuzzed payloads between valid events ---------------------------------------

#: One clock for the strategies: hypothesis needs data generation to be repeatable.
NOW = int(time.time())
_CAMS = ["ENTRANCE", "OPEN_DESK", "CAFETERIA"]
_junk = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-10 ** 400, 10 ** 400), st.floats(), st.text(max_size=20)),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=12), kids, max_size=3),
    max_leaves=8)
_bad_field = {
    "camera": st.one_of(st.sampled_from(["", "a b", "x" * 65, "a/b", "#"]), st.integers(), st.none()),
    "people_count": st.one_of(st.integers(max_value=-1), st.integers(min_value=65536, max_value=10 ** 400),
                              st.sampled_from([2.5, float("nan"), float("inf"), "3", True, [1]])),
    "timestamp": st.one_of(st.integers(-10 ** 400, 946684799), st.integers(4102444801, 10 ** 400),
                           st.sampled_from([NOW + 86400, "yesterday", "2026-01-05T10:00:00", float("nan"), [1]])),
    "triggers": st.one_of(st.text(max_size=5), st.integers(), st.dictionaries(st.sampled_from(["LOITERING", "A"]),
                          st.integers(0, 9), min_size=1), st.lists(st.sampled_from(["a b", "total_events", ""]),
                          min_size=1, max_size=2), st.just(["A"] * 33)),
}
_ALIAS = {"camera": "cam_name", "timestamp": "event_timestamp", "triggers": "event_triggers"}


def _good(camera: str, count: int) -> dict:
    return {"camera": camera, "people_count": count, "timestamp": NOW - 120, "triggers": ["A"]}


@st.composite
def _bad_item(draw):
    if draw(st.booleans()):
        return draw(_junk.filter(lambda v: not isinstance(v, dict) or _refused(v)))
    obj = _good(draw(st.sampled_from(_CAMS)), draw(st.integers(0, 9)))
    for field in draw(st.lists(st.sampled_from(sorted(_bad_field)), min_size=1, max_size=2, unique=True)):
        obj[field] = draw(_bad_field[field])
    if draw(st.booleans()):  # the customer's spellings: the same rules must hold
        obj = {_ALIAS.get(k, k): v for k, v in obj.items()}
    return obj


def _refused(obj) -> bool:
    try:
        parse_event(obj, NOW, 300)
    except EventError:
        return True
    return False


@st.composite
def _message(draw):
    """(payload, good events in it): raw bytes, or an array mixing good and bad items."""
    if draw(st.integers(0, 3)) == 0:
        raw = draw(st.binary(max_size=200))
        try:
            json.loads(raw)
        except (ValueError, RecursionError):
            return raw, []
        return b"\xff" + raw, []  # decodable by chance: made undecodable
    good = [_good(draw(st.sampled_from(_CAMS)), draw(st.integers(0, 9))) for _ in range(draw(st.integers(0, 2)))]
    items = good + draw(st.lists(_bad_item(), min_size=1, max_size=3))
    items = draw(st.permutations(items))
    # One item alone (not in an array) unless it is an array itself: that would be a batch.
    alone = len(items) == 1 and not isinstance(items[0], list) and draw(st.booleans())
    payload = items[0] if alone else items
    return json.dumps(payload, allow_nan=True).encode(), good


@pytest.mark.slow
def test_fuzzed_payloads_are_counted_acked_and_never_stop_the_input(make_config, mosquitto):
    agent = _agent(make_config, mosquitto)
    inp = agent.inputs[0]
    pub = _publisher(mosquitto)
    sent = {"messages": 0, "bad": 0, "events": {}}

    @settings(max_examples=150, deadline=None, database=None, derandomize=True,
              suppress_health_check=list(HealthCheck))
    @given(st.lists(_message(), min_size=1, max_size=4))
    def fuzz(messages):
        for payload, good in messages:
            pub.publish("ds/detections", payload, qos=1)
            sent["messages"] += 1
            sent["bad"] += 1
            for event in good:
                sent["events"][event["camera"]] = sent["events"].get(event["camera"], 0) + 1

    try:
        fuzz()
        pub.publish("ds/detections", json.dumps(_good("ENTRANCE", 1)), qos=1).wait_for_publish(10)
        sent["messages"] += 1
        sent["events"]["ENTRANCE"] = sent["events"].get("ENTRANCE", 0) + 1
        assert eventually(lambda: inp.messages == sent["messages"], 30), (inp.messages, sent["messages"])
        assert inp.alive()
        assert _outbox_events(agent) == sent["events"]
        assert inp.bad_messages == sent["bad"]
        assert inp.mark() == 0  # every message acked, the bad ones too
    finally:
        stop_client(pub)
        agent.stop()
    agent = _agent(make_config, mosquitto)
    try:
        _sentinel_arrives_first(agent, mosquitto)
    finally:
        agent.stop()
