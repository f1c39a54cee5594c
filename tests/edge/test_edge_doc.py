"""docs/edge.md's example datagrams: each is sent as is to a real UDP input and gets exactly
the outcome its block states (```json accepted=N refused=reason[:n]```), the ones that are
not NDJSON get the same as local MQTT messages, and the field table names every field
spelling shared/events.py accepts."""

from __future__ import annotations

import re
import socket
import time
from pathlib import Path

import pytest

from edge.agent import Agent
from edge.inputs import DatagramInput
from edge.refusals import REASONS
from shared import events

DOC = Path(__file__).resolve().parents[2] / "docs" / "edge.md"
#: The examples' Unix times are from 2026-01-05 08:15 UTC: the agent's clock is pinned just after.
DOC_NOW = 1767601200.0
_BLOCK = re.compile(r"^```(json|ndjson)[ \t]+([^\n]*)\n(.*?)^```$", re.M | re.S)


def examples() -> list:
    found = []
    for kind, info, body in _BLOCK.findall(DOC.read_text()):
        outcome = dict(word.split("=", 1) for word in info.split())
        refused = {}
        if "refused" in outcome:
            reason, _, n = outcome["refused"].partition(":")
            refused[reason] = int(n or 1)
        found.append(pytest.param(body.rstrip("\n").encode(), int(outcome.get("accepted", 0)), refused,
                                  id="%s-%d" % (kind, len(found))))
    return found


EXAMPLES = examples()


def test_the_doc_has_examples_of_every_form_and_refusal():
    bodies = [p.values[0] for p in EXAMPLES]
    assert len(EXAMPLES) >= 12
    assert any(b"\n" in b for b in bodies) and any(b.startswith(b"[") for b in bodies)
    for spelling in ("cam_name", "event_timestamp", "event_triggers", "site_name", "+05:30"):
        assert any(spelling.encode() in b for b in bodies), spelling
    assert {r for p in EXAMPLES for r in p.values[2]} >= {"bad_json", "bad_triggers", "bad_timestamp"}


def test_the_field_table_names_every_accepted_spelling():
    text = DOC.read_text()
    table = text[text.index("### Event fields"):text.index("### Datagrams")]
    for spelling in events._ALIASES:
        assert "`%s`" % spelling in table, spelling
    assert str(events.MAX_EVENT_TRIGGERS) in table and "`total_events`" in table
    for reason in REASONS:
        assert "`%s`" % reason in text, reason


@pytest.fixture(scope="module")
def udp_input(tmp_path_factory):
    """A real UDP input on an agent whose clock is pinned (not started: no outbox, no loop)."""
    from edge.config import Config

    config = Config(site="HEAD_OFFICE", device_id="jetson-01", state_dir=str(tmp_path_factory.mktemp("state")))
    agent = Agent(config)
    agent.buffers.clock = lambda: DOC_NOW
    inp = DatagramInput(agent, udp=("127.0.0.1", 0))
    inp.start()
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    yield agent, inp, sock
    sock.close()
    inp.close()


@pytest.mark.parametrize(("data", "accepted", "refused"), EXAMPLES)
def test_every_example_datagram_gets_the_documented_outcome(udp_input, data, accepted, refused):
    agent, inp, sock = udp_input
    agent.buffers.collect()
    events_before, refusals_before, bad_before = agent.buffers.accepted, agent.refusals.snapshot(), inp.bad_datagrams
    n = inp.datagrams
    sock.sendto(data, inp.address)
    deadline = time.monotonic() + 5
    while inp.datagrams == n:
        assert time.monotonic() < deadline, "the datagram never arrived"
        time.sleep(0.005)
    agent.buffers.collect()  # folds the hot cells, so accepted is exact
    after = agent.refusals.snapshot()
    delta = {k: v - refusals_before.get(k, 0) for k, v in after.items() if v != refusals_before.get(k, 0)}
    assert (agent.buffers.accepted - events_before, delta) == (accepted, refused), data
    assert inp.bad_datagrams - bad_before == (1 if refused else 0)


@pytest.mark.parametrize(("data", "accepted", "refused"), [p for p in EXAMPLES if p.id.startswith("json")])
def test_every_example_that_is_not_ndjson_is_a_local_mqtt_message_with_the_same_outcome(
        tmp_path, data, accepted, refused):
    from edge.config import Config
    from edge.inputs import LocalMqttInput

    env = {"HEATMAP_SITE": "HEAD_OFFICE", "HEATMAP_DEVICE_ID": "jetson-01", "HEATMAP_STATE_DIR": str(tmp_path),
           "HEATMAP_LOCAL_MQTT_URL": "mqtt://127.0.0.1:1"}
    agent = Agent(Config.load(None, env))
    agent.buffers.clock = lambda: DOC_NOW
    inp = LocalMqttInput(agent, agent.config.local_mqtt, "ds/detections")  # never started: handle() only
    assert inp.handle(data) is (not refused)
    agent.buffers.collect()
    assert (agent.buffers.accepted, agent.refusals.snapshot()) == (accepted, refused)
