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

A message of any kind is counted and acknowledged: one that is not JSON, holds refused
events, or trips a bug here is counted as bad (and its events by reason) and acked with the
rest, so a persistent session never redelivers a poison message forever. If paho's thread
dies anyway, :meth:`LocalMqttInput.alive` says so and the agent exits non-zero.

A stop first drains: it acks what is committed and makes a round trip to the broker (an
UNSUBSCRIBE of a filter never subscribed, whose UNSUBACK comes after every message the broker
sent before it) until one brings nothing new; then it closes the gate, so the agent's last
commit holds every message taken, and their acks leave before the disconnect. A QoS 1
message that arrives after the gate is neither counted nor acked: the broker keeps it in the
session for the next start.

A payload is one JSON object or an array of them. Without a mapping it is this product's
event format; a mapping names, per field, a dotted path into the payload, and a path
ending in ``#`` means "the length of this list", e.g.
``camera=sensorId,people_count=objects#,timestamp=@timestamp`` for DeepStream's schema.
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections import OrderedDict
from typing import Any, Dict, List, Mapping, Optional

import paho.mqtt.client as mqtt

from shared.exceptions import EventError
from shared.paho_close import stop_client
from shared.settings import MqttTarget

from .._paho import make_client, start_client
from ..exceptions import InputError
from ._intake import Intake, refusal_reason
from .contracts import InputHost

__all__ = ["LocalMqttInput", "apply_mapping"]

log = logging.getLogger(__name__)

_MISSING = object()
#: Uncommitted messages that ask the agent for an early commit (mosquitto sends at most
#: max_inflight_messages, default 20, unacked QoS 1 messages to a client).
_EARLY_COMMIT_AT = 10
#: Acked mids remembered against redelivery (mosquitto reuses a mid only after 65535 more).
_ACKED_KEPT = 4096
#: Longest a stop drains the input (a publisher that never pauses would keep it going).
_DRAIN_LIMIT = 5.0
#: A topic filter under which nothing is ever subscribed: unsubscribing from it is the
#: drain's round trip (not a product topic, so not in shared/topics.py).
_ROUND_TRIP_FILTER = "heatmap-edge-drain/%s"
#: At most one traceback per this many seconds for messages that trip a bug here.
_TRACE_EVERY = 60.0


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
    def __init__(self, agent: InputHost, target: MqttTarget, topic: str,
                 mapping: Optional[Mapping[str, str]] = None) -> None:
        self.agent = agent
        self.target = target
        self.topic = topic
        self.mapping = dict(mapping) if mapping else None
        self.messages = 0
        self.bad_messages = 0
        self.redelivered = 0
        self._intake = Intake(agent, "local MQTT")
        self._lock = threading.Lock()
        self._unacked: List[int] = []
        # Mids acked after a commit in this session (oldest first): an ack lost with the
        # connection brings the message back with DUP set, and it must not count twice.
        self._acked: Dict[int, None] = OrderedDict()
        # Held while a message is taken; closing the gate under it means no message is
        # half-taken when the agent's last commit runs.
        self._gate = threading.Lock()
        self._closed = False
        self._round_trips: Dict[int, threading.Event] = {}
        self._thread: Optional[threading.Thread] = None
        self._traced = -1e18
        #: Set once the broker has granted the subscription (of the latest connection).
        self.subscribed = threading.Event()
        cfg = agent.config
        client_id = "heatmap-edge-input-%s-%s" % (cfg.site, cfg.device_id)
        self._round_trip_filter = _ROUND_TRIP_FILTER % client_id
        self._client = make_client(target, client_id, __name__, InputError, "the local broker",
                                   manual_ack=True)
        c = self._client
        c.on_connect = self._on_connect
        c.on_message = self._on_message
        c.on_unsubscribe = self._on_unsubscribe
        c.on_subscribe = self._on_subscribe

    def start(self) -> None:
        start_client(self._client, self.target, 30, InputError, "the local broker")
        # paho keeps its network thread private; holding it is the only way to see it die.
        self._thread = getattr(self._client, "_thread", None)

    def alive(self) -> bool:
        """False once paho's network thread has ended while the input was meant to run."""
        return self._closed or self._thread is None or self._thread.is_alive()

    # -- paho's thread ---------------------------------------------------------------------

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            log.warning("local broker %s refused the connection: %s", self.target.describe(), reason_code)
            return
        log.info("local MQTT input connected to %s, topic %s", self.target.describe(), self.topic)
        self.subscribed.clear()
        client.subscribe(self.topic, qos=1)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if any(rc.is_failure for rc in reason_codes):
            log.warning("local broker %s refused the subscription to %s: %s",
                        self.target.describe(), self.topic, reason_codes[0])
            return
        log.info("local MQTT input subscribed to %s", self.topic)
        self.subscribed.set()

    def _on_unsubscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        with self._lock:
            done = self._round_trips.pop(mid, None)
        if done is not None:
            done.set()

    def _on_message(self, client, userdata, message) -> None:
        with self._gate:
            if self._closed:
                return  # not acked: the broker delivers it again to the next session
            try:
                self._take(client, message)
            except Exception:  # noqa: BLE001 (logged by _trace, at a limited rate)
                # Never expected (_take guards its own steps); an exception escaping here
                # would end paho's thread and leave the input deaf.
                self._trace("local MQTT input failed on a message")

    def _take(self, client, message) -> None:
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
        try:
            good = self.handle(message.payload)
        except Exception:  # noqa: BLE001 (logged by _trace, at a limited rate)
            good = False
            self._trace("local MQTT input failed on a message; it is counted as bad and acked")
        if not good:
            self.bad_messages += 1
        if message.qos > 0:
            # Appended only after recording, so a commit that marks it holds its events; a
            # bad message is acked like a good one, so the broker never sends it again.
            with self._lock:
                self._unacked.append(message.mid)
                early = len(self._unacked) >= _EARLY_COMMIT_AT
            if early:
                # The broker sends at most max_inflight_messages unacked: commit (and ack)
                # now rather than at the next commit interval.
                self.agent.commit_soon()

    def handle(self, payload: bytes) -> bool:
        """Count the events of one payload; False if anything in it was refused."""
        intake = self._intake
        try:
            obj = json.loads(payload)
        except (ValueError, RecursionError) as exc:
            intake.refuse("bad_json", str(exc)[:80])
            return False
        items = obj if isinstance(obj, list) else [obj]
        accepted = 0
        for item in items:
            if self.mapping:
                try:
                    item = apply_mapping(item, self.mapping)
                except EventError as exc:
                    intake.refuse(refusal_reason(exc), str(exc))
                    continue
            accepted += intake.take(item)
        return accepted == len(items)

    def _trace(self, what: str) -> None:
        now = time.monotonic()
        if now - self._traced >= _TRACE_EVERY:
            self._traced = now
            log.exception(what)

    # -- the agent's side ------------------------------------------------------------------

    def stop(self) -> None:
        """Drain what the broker has sent, then take no more messages (see the module doc)."""
        if self._closed:
            return
        deadline = time.monotonic() + _DRAIN_LIMIT
        rounds = 0
        while self._client.is_connected():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                log.warning("local MQTT input: the stop drain ended after %.0f s with messages still "
                            "arriving; the broker keeps the rest for the next start", _DRAIN_LIMIT)
                break
            if self.mark():
                # Acks first: the broker then sends what its in-flight limit held back, and
                # sends it before the round trip's answer.
                self.agent.flush(remaining)
            seen = self.messages + self.redelivered
            if not self._round_trip(deadline - time.monotonic()):
                break
            rounds += 1
            if self.messages + self.redelivered == seen:
                break
        with self._gate:
            self._closed = True
        log.info("local MQTT input stopped after %d drain round trip(s); %d message(s) taken",
                 rounds, self.messages)

    def _round_trip(self, timeout: float) -> bool:
        """True once the broker has answered an UNSUBSCRIBE sent now (within ``timeout``)."""
        done = threading.Event()
        with self._lock:
            rc, mid = self._client.unsubscribe(self._round_trip_filter)
            if rc != mqtt.MQTT_ERR_SUCCESS or mid is None:
                return False
            self._round_trips[mid] = done
        return done.wait(max(timeout, 0.0))

    def close(self) -> None:
        with self._gate:
            self._closed = True
        stop_client(self._client)

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
