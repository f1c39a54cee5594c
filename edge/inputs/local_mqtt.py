"""The local MQTT input: detections from the pipeline's message broker (DeepStream's
``nvmsgbroker`` publishes to a broker on the Jetson itself).

A persistent session (fixed client id, clean_session off) with QoS 1 and paho's
``manual_ack``: a message is acknowledged to the local broker only after the events in it
are committed to the outbox, so after a crash the broker delivers it again and nothing is
lost. (A crash between the commit and the ack counts that message twice; the window is
the time the ack takes to leave. An ack lost with the connection in a running session is
no such window: the mids acked in the session are remembered, and a redelivery of one,
flagged DUP, is acked again and not counted.) Ten uncommitted messages ask the agent for
an early commit, since the broker sends only ``max_inflight_messages`` (default 20) unacked.

A payload is one JSON object or an array of them. Without a mapping it is this product's
event format; a mapping names, per field, a dotted path into the payload, and a path
ending in ``#`` means "the length of this list", e.g.
``camera=sensorId,people_count=objects#,timestamp=@timestamp`` for DeepStream's schema.
"""

from __future__ import annotations

import json
import logging
import ssl
import threading
import time
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional

import paho.mqtt.client as mqtt

from shared.events import parse_event
from shared.exceptions import EventError

from .._paho_log import paho_logger
from ..config import MqttTarget
from ..exceptions import InputError

__all__ = ["LocalMqttInput", "apply_mapping"]

log = logging.getLogger(__name__)

_MISSING = object()
#: Uncommitted messages that ask the agent for an early commit (mosquitto sends at most
#: max_inflight_messages, default 20, unacked QoS 1 messages to a client).
_EARLY_COMMIT_AT = 10
#: Acked mids remembered against redelivery (mosquitto reuses a mid only after 65535 more).
_ACKED_KEPT = 4096


def apply_mapping(payload: Any, mapping: Mapping[str, str]) -> Dict[str, Any]:
    """Build an event object from ``payload`` by the dotted paths of ``mapping``."""
    event: Dict[str, Any] = {}
    for field, path in mapping.items():
        length = path.endswith("#")
        value = payload
        for part in (path[:-1] if length else path).split("."):
            if isinstance(value, dict):
                value = value.get(part, _MISSING)
            elif isinstance(value, list) and part.isdigit() and int(part) < len(value):
                value = value[int(part)]
            else:
                value = _MISSING
            if value is _MISSING:
                break
        if value is _MISSING:
            continue
        if length:
            if not isinstance(value, list):
                raise EventError("%s is not a list" % path, field=field, code="bad_type")
            value = len(value)
        event[field] = value
    return event


class LocalMqttInput:
    def __init__(self, agent: Any, target: MqttTarget, topic: str,
                 mapping: Optional[Mapping[str, str]] = None) -> None:
        self.agent = agent
        self.target = target
        self.topic = topic
        self.mapping = dict(mapping) if mapping else None
        self.messages = 0
        self.bad_messages = 0
        self.redelivered = 0
        self._lock = threading.Lock()
        self._unacked: List[int] = []
        # Mids acked after a commit in this session (oldest first): an ack lost with the
        # connection brings the message back with DUP set, and it must not count twice.
        self._acked: Dict[int, None] = OrderedDict()
        self._stopping = threading.Event()
        #: Set on the SUBACK: from then on the persistent session keeps what the pipeline
        #: publishes, even across a crash of the agent.
        self.subscribed = threading.Event()
        self._sub_mid: Optional[int] = None
        cfg = agent.config
        self._client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id="heatmap-edge-input-%s-%s" % (cfg.site, cfg.device_id),
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        c = self._client
        c.enable_logger(paho_logger(__name__))
        c.reconnect_delay_set(min_delay=1, max_delay=30)
        if target.username is not None:
            c.username_pw_set(target.username, target.password)
        if target.tls:
            try:
                c.tls_set(ca_certs=target.ca_file, certfile=target.cert_file, keyfile=target.key_file)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise InputError("TLS setup for the local broker failed: %s" % exc) from None
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_subscribe = self._on_subscribe

    def start(self) -> None:
        try:
            self._client.connect_async(self.target.host, self.target.port, keepalive=30)
        except (OSError, ValueError) as exc:
            raise InputError("cannot connect to the local broker: %s" % exc) from None
        self._client.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("local broker %s refused the connection: %s", self.target.describe(), reason_code)
            return
        log.info("local MQTT input connected to %s, topic %s", self.target.describe(), self.topic)
        self._sub_mid = client.subscribe(self.topic, qos=1)[1]

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid != self._sub_mid:
            return
        if any(rc.is_failure for rc in reason_codes):
            log.warning("local broker %s refused the subscription to %s: %s", self.target.describe(),
                        self.topic, ", ".join(str(rc) for rc in reason_codes))
            return
        log.info("local MQTT input subscribed to %s", self.topic)
        self.subscribed.set()

    def _on_message(self, client, userdata, message) -> None:
        if self._stopping.is_set():
            return  # not acked: the broker delivers it again to the next session
        if message.qos > 0:
            with self._lock:
                if message.dup and message.mid in self._unacked:
                    return  # redelivered on a resumed session: counted already, ack pending
                # A DUP of a mid acked in this session: committed, but the ack was lost with
                # the connection. (Without DUP the broker reuses the mid: a new message.)
                lost_ack = message.mid in self._acked and message.dup
                self._acked.pop(message.mid, None)
            if lost_ack:
                self.redelivered += 1
                client.ack(message.mid, 1)
                return
        self.messages += 1
        self._handle(message.payload)
        if message.qos > 0:
            # Appended only after recording, so a commit that marks it holds its events.
            with self._lock:
                self._unacked.append(message.mid)
                early = len(self._unacked) >= _EARLY_COMMIT_AT
            if early:
                # The broker sends at most max_inflight_messages unacked: commit (and ack)
                # now rather than at the next commit interval.
                self.agent.commit_soon()

    def _handle(self, payload: bytes) -> None:
        cfg = self.agent.config
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            self.bad_messages += 1
            self.agent.refusals.add("bad_json", "local MQTT: %s" % str(exc)[:80])
            return
        now = time.time()
        for item in obj if isinstance(obj, list) else [obj]:
            try:
                event_obj = apply_mapping(item, self.mapping) if self.mapping else item
                event = parse_event(event_obj, now, cfg.max_future)
            except EventError as exc:
                self.agent.refusals.add("bad_event", "local MQTT: %s" % exc)
                continue
            if event.site is not None and event.site != cfg.site:
                self.agent.refusals.add("wrong_site", "local MQTT: event for site %r" % event.site)
                continue
            self.agent.record(event.camera, event.people_count, event.timestamp, event.triggers)

    def stop(self) -> None:
        self._stopping.set()

    def close(self) -> None:
        self._stopping.set()
        try:
            self._client.disconnect()
        except (RuntimeError, ValueError, OSError):  # pragma: no cover
            pass
        self._client.loop_stop()

    def mark(self) -> int:
        with self._lock:
            return len(self._unacked)

    def committed(self, mark: int) -> None:
        """The first ``mark`` messages are in the outbox: acknowledge them to the broker."""
        if not mark:
            return
        with self._lock:
            mids, self._unacked = self._unacked[:mark], self._unacked[mark:]
            for mid in mids:
                self._acked[mid] = None
            while len(self._acked) > _ACKED_KEPT:
                self._acked.popitem(last=False)  # type: ignore[call-arg]
        for mid in mids:
            rc = self._client.ack(mid, 1)
            if rc != mqtt.MQTT_ERR_SUCCESS:
                log.debug("ack of mid %d failed (%s); a redelivery will be acked then", mid, rc)

    def stats(self) -> Dict[str, float]:
        return {"local_mqtt_messages": self.messages, "local_mqtt_bad_messages": self.bad_messages,
                "local_mqtt_redelivered": self.redelivered}
