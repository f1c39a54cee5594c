"""Fixtures for the agent's tests: a stand-in for central on the real test broker, and configs."""

from __future__ import annotations

from pathlib import Path

import pytest

from edge.config import Config
from tests.edge.central_double import CentralDouble


@pytest.fixture
def central(mosquitto):
    double = CentralDouble(mosquitto).start()
    yield double
    double.stop()


@pytest.fixture
def make_config(tmp_path: Path, mosquitto):
    """Config for an agent on the test broker; keyword arguments override fields."""

    def make(**overrides) -> Config:
        fields = dict(site="HEAD_OFFICE", device_id="jetson-01", state_dir=str(tmp_path / "state"),
                      commit_interval=0.2, publish_interval=0.3, stats_interval=60.0)
        env = {"HEATMAP_SITE": "HEAD_OFFICE", "HEATMAP_DEVICE_ID": "jetson-01",
               "HEATMAP_MQTT_URL": mosquitto.url}
        mqtt_target = Config.load(None, env).mqtt
        fields["mqtt"] = mqtt_target
        fields.update(overrides)
        return Config(**fields)

    return make
