"""A stand-in for central on the real test broker, for the agent's tests.

It subscribes to every heatmap topic, decodes with shared.protocol, keeps what it got, and
(while ``auto_ack`` is on) answers each state batch with an ack the way central does (in the
batch's version: revision ranges for version 2, (camera, slot, rev) items for 1; an urgent
batch gets none), so
tests can watch acks retire states or withhold them to see resends.
"""

from __future__ import annotations

import threading

import paho.mqtt.client as mqtt

from shared.paho_close import stop_client
from shared.protocol import Ack, AckItem, RevAck, StateBatch, Status, decode, encode, rev_ranges
from shared.topics import ack_topic
from tests.harness import eventually

__all__ = ["CentralDouble"]


class CentralDouble:
    def __init__(self, broker) -> None:
        self.broker = broker
        self.auto_ack = True
        self.batches: list[StateBatch] = []
        self.statuses: list[Status] = []
        self.stats: list = []
        self.raw: list[bytes] = []
        self.lock = threading.Lock()
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="central-double",
                                  protocol=mqtt.MQTTv311)
        self.client.on_message = self._on_message
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *a: self._subscribed.set()
        self.client.on_connect = lambda c, *a: c.subscribe("heatmap/v1/#", qos=1)

    def start(self) -> CentralDouble:
        try:
            self.client.connect("127.0.0.1", self.broker.port)
            self.client.loop_start()
            assert self._subscribed.wait(5), "central double did not subscribe"
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        stop_client(self.client)

    def _on_message(self, client, userdata, message) -> None:
        msg = decode(message.payload)
        with self.lock:
            if isinstance(msg, StateBatch):
                self.batches.append(msg)
                self.raw.append(bytes(message.payload))
            elif isinstance(msg, Status):
                self.statuses.append(msg)
            elif msg.type == "stats":
                self.stats.append(msg)
        if isinstance(msg, StateBatch) and self.auto_ack and not msg.urgent:
            if msg.v >= 2:
                self.ack_revs(msg.site, msg.device, [s.rev for s in msg.states])
            else:
                self.ack(msg.site, msg.device, [(s.camera, s.slot, s.rev) for s in msg.states])

    def ack(self, site: str, device: str, items) -> None:
        payload = encode(Ack(site, device, tuple(AckItem(c, s, r) for c, s, r in items)))
        self.client.publish(ack_topic(site, device), payload, qos=1)

    def ack_revs(self, site: str, device: str, revs) -> None:
        payload = encode(RevAck(site, device, rev_ranges(revs)), compress=True)
        self.client.publish(ack_topic(site, device), payload, qos=1)

    def states(self) -> list:
        with self.lock:
            return [s for b in self.batches for s in b.states]

    def latest(self) -> dict:
        """(camera, slot) -> the highest-revision state received, as central keeps it."""
        out: dict = {}
        for s in self.states():
            if s.key() not in out or out[s.key()].rev < s.rev:
                out[s.key()] = s
        return out

    def wait_for(self, predicate, timeout: float = 10.0) -> bool:
        """True once ``predicate()`` holds, False after ``timeout`` (for ``assert ..., why``)."""
        try:
            eventually(predicate, timeout)
        except AssertionError:
            return False
        return True
