"""The local MQTT input's field mapping (its replay after a crash is in test_run.py)."""

from __future__ import annotations

import pytest

from edge.inputs.local_mqtt import apply_mapping
from shared.exceptions import EventError

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
