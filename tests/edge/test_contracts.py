"""The edge's contracts hold: every input is an Input, the agent is their InputHost, every
simulator sink is a Sink; and a thing missing a member is not one."""

from __future__ import annotations

import pytest

from edge.agent import Agent
from edge.config import Config
from edge.inputs import DatagramInput, Input, InputHost, LocalMqttInput
from edge.simulate.sinks import DatagramSink, HttpSink, Sink
from shared.settings import parse_mqtt_url


@pytest.fixture
def agent(tmp_path):
    return Agent(Config(site="HEAD_OFFICE", device_id="jetson-01", state_dir=str(tmp_path / "state")))


def test_the_agent_hosts_inputs_and_every_input_is_one(agent):
    assert isinstance(agent, InputHost)
    udp = DatagramInput(agent, udp=("127.0.0.1", 0))
    local = LocalMqttInput(agent, parse_mqtt_url("mqtt://127.0.0.1:1"), "deepstream/detections")
    assert isinstance(udp, Input) and isinstance(local, Input)
    assert not isinstance(object(), Input) and not isinstance(object(), InputHost)


def test_every_simulator_sink_is_a_sink():
    sinks = [DatagramSink("udp://127.0.0.1:9"), HttpSink("http://127.0.0.1:9")]
    try:
        assert all(isinstance(s, Sink) for s in sinks)
    finally:
        for s in sinks:
            s.close()
    assert not isinstance(object(), Sink)
