"""The MQTT link to central: one paho client per agent, and the only module that touches paho
for that broker.

It connects in the background and keeps reconnecting, announces availability on the
retained status topic (last will "offline", "online" on every connect, "stopped" on a clean
close), subscribes to the device's ack topic and hands decoded acks (:class:`Ack` of version 1 or
:class:`RevAck` of version 2: central answers in the version of the states it got, and
states of both may be in flight around an upgrade) to the agent through a callback. The session is persistent (fixed client id, clean_session off), so
acks central sends while the link is down wait at the broker. Nothing is published while
disconnected: paho would only queue it in memory, and the outbox already holds it.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable, Optional, Union

import paho.mqtt.client as mqtt

from shared.exceptions import HeatmapError
from shared.paho_close import stop_client
from shared.protocol import PROTOCOL_VERSION, Ack, RevAck, Status, check_identity, decode, encode
from shared.settings import MqttTarget
from shared.topics import Topic, ack_topic, stats_topic, status_topic

from ._paho import make_client, start_client
from .exceptions import LinkError

__all__ = ["Link"]

log = logging.getLogger(__name__)


class Link:
    def __init__(self, target: MqttTarget, site: str, device: str,
                 on_ack: Callable[[Union[Ack, RevAck]], None], on_connect: Callable[[], None] = lambda: None,
                 keepalive: int = 30, version: int = PROTOCOL_VERSION) -> None:
        self.target = target
        self.site = site
        self.device = device
        self.on_ack = on_ack
        self.on_connect_cb = on_connect
        self.keepalive = keepalive
        self.version = version
        self.connected = threading.Event()
        #: Set on the SUBACK of the ack topic, cleared when the connection drops: from then
        #: on the persistent session holds the subscription (what tests and operators wait on).
        self.subscribed = threading.Event()
        self._sub_mid: Optional[int] = None
        self.connects = 0
        self.bad_acks = 0
        #: Messages on a topic other than the ack topic (also in bad_acks); logged once.
        self.foreign_messages = 0
        self._ack_topic = ack_topic(site, device)
        self._identity = Topic(site, device, "ack")
        self._status_topic = status_topic(site, device)
        self._stats_topic = stats_topic(site, device)
        self._client = make_client(target, "heatmap-edge-%s-%s" % (site, device), __name__, LinkError,
                                   target.describe())
        c = self._client
        c.max_inflight_messages_set(20)
        c.will_set(self._status_topic, self._status("offline"), qos=1, retain=True)
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe

    def start(self) -> None:
        start_client(self._client, self.target, self.keepalive, LinkError, self.target.describe())

    def publish(self, topic: str, payload: bytes, qos: int = 1) -> Optional[mqtt.MQTTMessageInfo]:
        """Hand one message to paho; None when the link is down (nothing is queued)."""
        if not self.connected.is_set():
            return None
        info = self._client.publish(topic, payload, qos=qos)
        if info.rc != mqtt.MQTT_ERR_SUCCESS:
            log.debug("publish to %s not sent: %s", topic, mqtt.error_string(info.rc))
            return None if info.rc == mqtt.MQTT_ERR_NO_CONN else info
        return info

    def publish_stats(self, payload: bytes) -> None:
        self.publish(self._stats_topic, payload, qos=0)

    def close(self, timeout: float = 2.0) -> None:
        """Say "stopped" (retained) if connected, then disconnect; never raises."""
        try:
            if self.connected.is_set():
                info = self._client.publish(self._status_topic, self._status("stopped"), qos=1, retain=True)
                info.wait_for_publish(timeout)
            self.connected.clear()  # a disconnect asked for is not "lost"
            self.subscribed.clear()
            self._client.disconnect()
        except (RuntimeError, ValueError, OSError) as exc:
            log.warning("closing the link: %s", exc)
        stop_client(self._client, disconnect=False)
        self.connected.clear()

    @staticmethod
    def wait_published(infos: list, timeout: float) -> int:
        """Wait for broker PUBACKs of ``infos``; returns how many arrived in ``timeout``."""
        deadline = time.monotonic() + timeout
        done = 0
        for info in infos:
            remaining = deadline - time.monotonic()
            try:
                if remaining > 0:
                    info.wait_for_publish(remaining)
            except (RuntimeError, ValueError):
                continue
            done += info.is_published()
        return done

    # -- paho callbacks (paho's thread) ----------------------------------------------------

    def _status(self, state: str) -> bytes:
        return encode(Status(site=self.site, device=self.device, state=state, ts=time.time()),
                      version=self.version)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("broker %s refused the connection: %s", self.target.describe(), reason_code)
            return
        self.connects += 1
        log.info("connected to %s%s", self.target.describe(),
                 " (session resumed)" if flags.session_present else "")
        self._sub_mid = client.subscribe(self._ack_topic, qos=1)[1]
        client.publish(self._status_topic, self._status("online"), qos=1, retain=True)
        self.connected.set()
        self.on_connect_cb()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        if self.connected.is_set():
            log.warning("lost the connection to %s: %s", self.target.describe(), reason_code)
        self.connected.clear()
        self.subscribed.clear()

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid != self._sub_mid:
            return
        if any(rc.is_failure for rc in reason_codes):
            log.warning("broker %s refused the subscription to %s: %s", self.target.describe(),
                        self._ack_topic, ", ".join(str(rc) for rc in reason_codes))
            return
        self.subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        if message.topic != self._ack_topic:
            # Some brokers (the demo's amqtt) deliver topics the client never subscribed
            # to, such as this device's own status, on every message: counted, logged once.
            self.bad_acks += 1
            self.foreign_messages += 1
            if self.foreign_messages == 1:
                log.warning("ignored a bad ack message: unexpected topic %s (further messages on "
                            "topics not subscribed are counted in bad_acks, not logged)", message.topic)
            return
        try:
            msg = decode(message.payload)
            check_identity(msg, self._identity)
            if not isinstance(msg, (Ack, RevAck)):  # pragma: no cover - check_identity ensures it
                raise HeatmapError("not an ack")
        except HeatmapError as exc:
            self.bad_acks += 1
            log.warning("ignored a bad ack message: %s", exc)
            return
        self.on_ack(msg)
