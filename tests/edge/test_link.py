"""The link to central on a real broker: messages on topics it never subscribed to (the demo's
embedded broker delivers a device's own status topic) are counted and logged once."""

from __future__ import annotations

import logging

import paho.mqtt.client as mqtt

from edge.link import Link
from shared.paho_close import stop_client
from shared.settings import parse_mqtt_url
from shared.topics import status_topic
from tests.harness import eventually, subscribed


def test_messages_on_other_topics_are_counted_and_logged_once(mosquitto, caplog):
    acks = []
    link = Link(parse_mqtt_url(mosquitto.url), "HEAD_OFFICE", "jetson-01", on_ack=acks.append)
    publisher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="status-publisher",
                            protocol=mqtt.MQTTv311)
    try:
        with caplog.at_level(logging.WARNING, logger="edge.link"):
            link.start()
            eventually(link.subscribed.is_set, message="the link's ack subscription")
            # What the embedded broker does unasked: deliver this device's status topic too.
            subscribed(link._client, status_topic("HEAD_OFFICE", "jetson-01"))
            publisher.connect("127.0.0.1", mosquitto.port)
            publisher.loop_start()
            for _ in range(5):
                publisher.publish(status_topic("HEAD_OFFICE", "jetson-01"), b"{}", qos=1).wait_for_publish(5)
            # The retained "online" of the link itself, then the five above.
            eventually(lambda: link.foreign_messages >= 6, message="six foreign messages counted")
        assert link.bad_acks == link.foreign_messages
        assert acks == []
        warned = [r for r in caplog.records if "unexpected topic" in r.getMessage()]
        assert len(warned) == 1, [r.getMessage() for r in warned]
    finally:
        stop_client(publisher)
        link.close()
