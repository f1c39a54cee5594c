"""paho clients: the reconnect-wait false alarm is dropped; what else paho logs still reaches us."""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt

from edge._paho import paho_logger
from shared.paho_close import stop_client


def test_not_connected_noise_is_dropped_other_paho_logs_pass(caplog):
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-log-test")
    client.enable_logger(paho_logger("tests.edge"))
    try:
        with caplog.at_level(logging.DEBUG, logger="tests.edge.paho"):
            # A network-loop pass with no connection: paho 2 logs "Client is not connected" at ERROR.
            assert client.loop(timeout=0.01) == mqtt.MQTT_ERR_NO_CONN
            client.subscribe("a/b")  # not connected either: paho logs a debug line of its own
            logging.getLogger("tests.edge.paho").error("a real paho error")
    finally:
        stop_client(client, disconnect=False)  # loop() made paho's socket pair; never connected
    messages = [r.getMessage() for r in caplog.records if r.name == "tests.edge.paho"]
    assert not any(m.startswith("Client is not connected") for m in messages), messages
    assert "a real paho error" in messages


def test_filter_is_attached_once():
    first = paho_logger("tests.edge.once")
    again = paho_logger("tests.edge.once")
    assert first is again and len(first.filters) == 1
