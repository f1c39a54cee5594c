from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from shared.events import Event, parse_event, parse_time
from shared.exceptions import EventError

NOW = 1767600000.0


def test_product_and_customer_field_names():
    a = parse_event({"camera": "CAFETERIA", "people_count": 3, "timestamp": NOW - 10, "triggers": ["CROWD_VIOLATION"]}, NOW)
    b = parse_event({"cam_name": "CAFETERIA", "people_count": 3, "event_timestamp": NOW - 10, "event_triggers": ["CROWD_VIOLATION"]}, NOW)
    assert a == b == Event("CAFETERIA", 3, NOW - 10, ("CROWD_VIOLATION",), None)


def test_defaults_and_site():
    e = parse_event({"camera": "C", "people_count": 0, "site_name": "HQ"}, NOW)
    assert e.timestamp == NOW and e.triggers == () and e.site == "HQ"


def test_iso_times():
    assert parse_time("2026-01-05T00:00:00Z") == 1767571200.0
    assert parse_time("2026-01-05T05:30:00+05:30") == 1767571200.0
    assert parse_time("2026-01-05T05:45:00.500+05:45") == 1767571200.5
    with pytest.raises(EventError, match="offset"):
        parse_time("2026-01-05T00:00:00")
    with pytest.raises(EventError):
        parse_time("yesterday")


@pytest.mark.parametrize(
    ("event", "field", "code"),
    [
        ([], "event", "bad_type"),
        ({"people_count": 1}, "camera", "missing"),
        ({"camera": "C"}, "people_count", "missing"),
        ({"camera": "C", "people_count": -1}, "people_count", "out_of_range"),
        ({"camera": "C", "people_count": 70000}, "people_count", "out_of_range"),
        ({"camera": "C", "people_count": "3"}, "people_count", "bad_type"),
        ({"camera": "C", "people_count": True}, "people_count", "bad_type"),
        ({"camera": "C", "people_count": 2.5}, "people_count", "bad_type"),
        ({"camera": "'; DROP TABLE camera_events; --", "people_count": 1}, "camera", "bad_name"),
        ({"camera": "C", "people_count": 1, "timestamp": NOW + 3600}, "timestamp", "out_of_range"),
        ({"camera": "C", "people_count": 1, "timestamp": 5}, "timestamp", "out_of_range"),
        ({"camera": "C", "people_count": 1, "timestamp": [1]}, "timestamp", "bad_type"),
        ({"camera": "C", "people_count": 1, "triggers": "A"}, "triggers", "bad_type"),
        ({"camera": "C", "people_count": 1, "triggers": ["A"] * 33}, "triggers", "too_many"),
        ({"camera": "C", "people_count": 1, "triggers": ["total_events"]}, "triggers", "bad_name"),
        ({"camera": "C", "cam_name": "D", "people_count": 1}, "camera", "bad_value"),
        ({"camera": "C", "people_count": 1, "colour": "red"}, "event", "unknown_field"),
        ({"camera": "C", "people_count": 1, "timestamp": 10**400}, "timestamp", "out_of_range"),
        ({"camera": "C", "people_count": 1, "timestamp": -10**400}, "timestamp", "out_of_range"),
        ({"camera": "C", "people_count": 1, "timestamp": float("inf")}, "timestamp", "out_of_range"),
        ({"camera": "C", "people_count": 10**400}, "people_count", "out_of_range"),
        ({"camera": "C", "people_count": 1e300}, "people_count", "out_of_range"),
        ({"camera": "C", "people_count": float("nan")}, "people_count", "bad_type"),
        ({"camera": "C", "people_count": 1, "triggers": {"LOITERING": 5}}, "triggers", "bad_type"),
        ({"camera": "C", "people_count": 1, "event_triggers": {"LOITERING": 5}}, "triggers", "bad_type"),
    ],
)
def test_bad_events_name_the_field(event, field, code):
    with pytest.raises(EventError) as info:
        parse_event(event, NOW)
    assert (info.value.field, info.value.code) == (field, code), str(info.value)


def test_a_400_digit_timestamp_read_from_json_is_refused_not_overflowed():
    line = '{"camera": "C", "people_count": 1, "timestamp": 1%s}' % ("0" * 400)
    with pytest.raises(EventError, match="outside") as info:
        parse_event(json.loads(line), NOW)
    assert len(str(info.value)) < 200  # the number is cut short in the message


def test_integral_float_count_is_accepted():
    assert parse_event({"camera": "C", "people_count": 4.0}, NOW).people_count == 4


@given(st.dictionaries(
    st.sampled_from(["camera", "cam_name", "people_count", "timestamp", "triggers", "site", "x"]),
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=30) | st.lists(st.text(max_size=10), max_size=40),
))
def test_arbitrary_events_raise_only_event_error(obj):
    try:
        parse_event(obj, NOW)
    except EventError:
        pass
