"""The agent's event inputs besides the in-process API: one module per kind.

Every input has the same small surface, so the agent treats them alike: ``start()``,
``stop()`` (drain what already arrived, then take no more events), ``close()`` (release
sockets and connections), ``mark()`` / ``committed(mark)`` (an input that can replay
acknowledges its source only for what the outbox has committed), ``alive()`` (False once
its thread has died: the agent then exits non-zero) and ``stats()``: the :class:`Input`
protocol of ``contracts.py``, beside :class:`InputHost`, what an input may use of the
agent. Every input judges events by one schema, and checks their site, in ``_intake.py``.
"""

from __future__ import annotations

from typing import List

from ..config import Config
from .contracts import Input, InputHost
from .datagram import DatagramInput
from .local_mqtt import LocalMqttInput

__all__ = ["DatagramInput", "Input", "InputHost", "LocalMqttInput", "build_inputs"]


def build_inputs(config: Config, agent: InputHost) -> List[Input]:
    inputs: List[Input] = []
    if config.udp_addr is not None:
        inputs.append(DatagramInput(agent, udp=config.udp_addr))
    if config.unix_socket is not None:
        inputs.append(DatagramInput(agent, unix=config.unix_socket))
    if config.local_mqtt is not None:
        inputs.append(LocalMqttInput(agent, config.local_mqtt, config.local_mqtt_topic,
                                     config.local_mqtt_mapping))
    return inputs
