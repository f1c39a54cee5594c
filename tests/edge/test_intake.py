"""One schema for every input: an event is accepted or refused, and counted under the same
reason, whichever field spelling carries it (the product's or camera_events' columns)."""

from __future__ import annotations

import time

import pytest

from edge.agent import Agent
from edge.inputs._intake import Intake

CUSTOMER = {"camera": "cam_name", "timestamp": "event_timestamp", "triggers": "event_triggers", "site": "site_name"}


def _customer(event: dict) -> dict:
    return {CUSTOMER.get(k, k): v for k, v in event.items()}


def _take(make_config, event: dict) -> tuple:
    agent = Agent(make_config(mqtt=None))  # not started: the buffers and refusals suffice
    accepted = Intake(agent, "test").take(event)
    return accepted, agent.refusals.snapshot(), agent.buffers.collect()


def _event(**fields) -> dict:
    event = {"camera": "DOOR", "people_count": 2, "timestamp": time.time() - 60, "triggers": ["LOITERING"]}
    event.update(fields)
    return event


@pytest.mark.parametrize(
    ("fields", "reason"),
    [
        ({"triggers": {"LOITERING": 5}}, "bad_triggers"),  # an object: refused under both names
        ({"triggers": {}}, "bad_triggers"),
        ({"triggers": "LOITERING"}, "bad_triggers"),
        ({"triggers": 0}, "bad_triggers"),
        ({"triggers": ["A"] * 33}, "bad_triggers"),
        ({"triggers": ["total_events"]}, "bad_triggers"),
        ({"triggers": [1]}, "bad_triggers"),
        ({"camera": "a b"}, "bad_camera"),
        ({"camera": None}, "bad_camera"),
        ({"people_count": -1}, "bad_count"),
        ({"people_count": 10 ** 400}, "bad_count"),
        ({"people_count": True}, "bad_count"),
        ({"timestamp": 10 ** 400}, "bad_timestamp"),
        ({"timestamp": "2026-01-05T10:00:00"}, "bad_timestamp"),
        ({"timestamp": time.time() + 3600}, "future"),
        ({"timestamp": time.time() - 30 * 86400}, "too_old"),
        ({"site": "OTHER_SITE"}, "wrong_site"),
        ({"site": "not a name"}, "bad_event"),
        ({"colour": "red"}, "bad_event"),
    ],
)
def test_a_bad_field_is_refused_the_same_way_under_either_spelling(make_config, fields, reason):
    product = _take(make_config, _event(**fields))
    customer = _take(make_config, _customer(_event(**fields)))
    assert product == customer == (False, {reason: 1}, [])


@pytest.mark.parametrize(
    "fields",
    [{}, {"triggers": None}, {"triggers": []}, {"people_count": 2.0}, {"site": "HEAD_OFFICE"},
     {"timestamp": "ISO 8601"}],
)
def test_a_good_event_is_counted_the_same_way_under_either_spelling(make_config, fields):
    if "timestamp" in fields:  # ISO 8601 with an offset, inside the agent's window whatever today is
        fields = dict(fields, timestamp=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time.time() - 60)))
    product = _take(make_config, _event(**fields))
    customer = _take(make_config, _customer(_event(**fields)))
    assert product == customer
    assert product[0] is True and product[1] == {}
    ((camera, _slot, peak, events, triggers),) = product[2]
    assert (camera, peak, events) == ("DOOR", 2, 1)
    assert triggers == ({} if fields.get("triggers", ["LOITERING"]) in (None, []) else {"LOITERING": 1})


@pytest.mark.parametrize("value", [[1, 2], "text", 3, None])
def test_a_value_that_is_not_an_object_is_a_bad_event(make_config, value):
    assert _take(make_config, value) == (False, {"bad_event": 1}, [])
