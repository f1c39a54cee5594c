"""The MQTT consumer: slot states, device status and stats from the broker into ClickHouse.

paho-mqtt 2.x, MQTT 5, a persistent session (fixed client id, ``clean_start=False``, a
session expiry) and ``manual_ack=True``. paho's network thread only queues what arrives; a
writer thread validates each message (``shared.protocol.decode`` and ``check_identity``
against the topic), writes a batch (flushed by size or time) and only after the inserts
returned acks each MQTT message to the broker, in arrival order, then publishes an ack
to each device's ack topic, in the protocol version the device's states came in: version 1
lists (camera, slot, rev) per state, version 2 only the revisions as ranges (a few bytes). Refused messages go to ``dead_letters`` with their reason and
are acked too (they will not get better by redelivery); an unexpected error decoding one
message makes it a dead letter too (``internal_error``), and a batch insert failing with any
exception is retried like a storage error, so a taken message is never silently dropped.
States of a site that may not be written (``HEATMAP_ACCEPT_UNKNOWN_SITES=false`` and not in
the sites file, or a new site past ``HEATMAP_MAX_SITES``: the rule of raw ingest,
:meth:`central.registry.Registry.admit`) are dead letters ``unknown_site`` or
``too_many_sites``, with a warning; the other messages of their batch are written.

While ClickHouse is unreachable the batch is retried with backoff and nothing is acked; the
broker sends at most ``HEATMAP_MQTT_INFLIGHT`` unacked messages (MQTT 5 Receive Maximum),
so memory stays bounded. Acks for messages of an earlier connection are never sent (their
packet ids are void); the broker redelivers them and rewriting a state is harmless because
the highest revision wins.
"""

from __future__ import annotations

import logging
import queue
import ssl
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timezone

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties
from shared import protocol, topics
from shared.exceptions import HeatmapError
from shared.paho_close import stop_client
from shared.slots import SLOT_SECONDS

from .config import Config
from .exceptions import ConfigError, StorageError
from .metrics import Metrics
from .storage.slots import STATE_COLUMNS
from .storage.store import Store

__all__ = ["Consumer", "SESSION_EXPIRY"]

logger = logging.getLogger(__name__)

#: How long the broker keeps our session (and queues QoS 1 messages) while we are away.
SESSION_EXPIRY = 7 * 24 * 3600
_MAX_DEAD_PAYLOAD = 65536
_DEVICE_COLUMNS = ["site_name", "device_id", "kind", "status", "seen_at", "stats"]
_CONTACT_COLUMNS = ["site_name", "device_id", "slot"]
_DEAD_COLUMNS = ["received_at", "topic", "site_name", "device_id", "reason", "field", "message", "payload",
                 "payload_bytes"]


@dataclass
class _Item:
    generation: int
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: float


@dataclass
class _Batch:
    items: list
    states: list
    devices: list
    dead: list
    acks: dict  # (site, device, version) -> [AckItem], one per state written
    slots: dict  # site -> {slot}
    contacts: set = field(default_factory=set)  # (site, device, slot): device_slots rows
    # site -> [(item, received, device)], the state messages taken, for a site refused
    senders: dict = field(default_factory=dict)


def _slot_of(when: datetime) -> int:
    ts = int(when.timestamp())
    return ts - ts % SLOT_SECONDS


def _ack_payloads(site: str, device: str, version: int, acks: list) -> list:
    """The ack messages for the states written: in the states' own version, so an agent
    that sent version 1 (an old one, or one told to) gets acks it can read."""
    if version >= 2:
        ranges = protocol.rev_ranges(a.rev for a in acks)
        return [protocol.encode(protocol.RevAck(site, device, ranges[i:i + protocol.MAX_STATES]), compress=True,
                                version=version)
                for i in range(0, len(ranges), protocol.MAX_STATES)]
    # Version 1: one item per state written (also for repeats), so a sender can count them.
    return [protocol.encode(protocol.Ack(site, device, tuple(acks[i:i + protocol.MAX_STATES])), compress=True)
            for i in range(0, len(acks), protocol.MAX_STATES)]


class Consumer:
    def __init__(self, config: Config, store: Store, metrics: Metrics,
                 on_written: Callable[[str, set], None] | None = None, shutdown_timeout: float = 10.0,
                 refresh: Callable[[dict], None] | None = None,
                 admit: Callable[[set], dict] | None = None):
        if config.mqtt_url is None:
            raise ValueError("no MQTT URL configured")
        self.config = config
        self.store = store
        self.metrics = metrics
        self.on_written = on_written
        # After the states' insert, before the ack: keeps the answers of the slots written
        # (central.storage.answers); called in the writer thread with {site: {slot, ...}}.
        self.refresh = refresh
        # The sites of a batch's states -> {site: central.registry.SiteRefusal} of those that
        # may not be written (HEATMAP_MAX_SITES, HEATMAP_ACCEPT_UNKNOWN_SITES, as raw ingest);
        # called in the writer thread, may raise (the batch is retried, nothing acked).
        self.admit = admit
        self.shutdown_timeout = shutdown_timeout
        self.connected = False
        #: Set on the SUBACK of this connection's subscriptions, cleared when it drops: from
        #: then on the broker routes (and the persistent session keeps) the devices' messages.
        self.subscribed = threading.Event()
        self._sub_mid: int | None = None
        self.degraded = False
        self._queue: queue.Queue[_Item] = queue.Queue()
        # Decoding the next batch overlaps the insert of the previous one.
        self._batches: queue.Queue[_Batch | None] = queue.Queue(maxsize=2)
        self._in_batch = 0  # items in the batch being decoded
        self._handed = 0  # items in decoded batches not yet written and acked
        self._generation = 0
        self._partial: _Batch | None = None  # the batch _collect is filling
        self._stopping = threading.Event()
        self._writer_done = threading.Event()
        self._decoder = threading.Thread(target=self._decode_loop, name="mqtt-decoder", daemon=True)
        self._writer = threading.Thread(target=self._write_loop, name="mqtt-writer", daemon=True)
        self._client = self._make_client()

    # -- MQTT side (paho's thread) ------------------------------------------------------

    def _make_client(self) -> mqtt.Client:
        url = self.config.mqtt_url
        assert url is not None
        # MQTT 3.1.1 (HEATMAP_MQTT_PROTOCOL) for brokers without 5, such as the demo's amqtt:
        # the persistent session is clean_session=False, without expiry or Receive Maximum.
        v311 = {"clean_session": False} if self.config.mqtt_protocol == "3.1.1" else {}
        client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2,
            client_id=self.config.mqtt_client_id,
            protocol=mqtt.MQTTv311 if v311 else mqtt.MQTTv5,
            **v311,
            manual_ack=True,
        )
        if url.username:
            client.username_pw_set(url.username, url.password)
        if url.tls:
            try:
                client.tls_set(ca_certs=self.config.mqtt_ca_file, cert_reqs=ssl.CERT_REQUIRED)
            except (OSError, ssl.SSLError, ValueError) as exc:
                raise ConfigError("TLS setup for mqtts://%s:%d (HEATMAP_MQTT_CA_FILE %s) failed: %s"
                                  % (url.host, url.port, self.config.mqtt_ca_file or "unset: system trust store",
                                     exc)) from None
        client.reconnect_delay_set(1, 30)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        client.on_subscribe = self._on_subscribe
        return client

    @property
    def pending(self) -> int:
        return self._queue.qsize() + self._in_batch + self._handed

    def start(self) -> None:
        url = self.config.mqtt_url
        assert url is not None
        props = Properties(PacketTypes.CONNECT)
        props.SessionExpiryInterval = SESSION_EXPIRY
        props.ReceiveMaximum = self.config.mqtt_inflight
        self._decoder.start()
        self._writer.start()
        if self.config.mqtt_protocol == "3.1.1":
            self._client.connect_async(url.host, url.port, keepalive=30)
        else:
            self._client.connect_async(url.host, url.port, keepalive=30, clean_start=False, properties=props)
        self._client.loop_start()
        logger.info("MQTT consumer connecting to %s:%d as %s", url.host, url.port, self.config.mqtt_client_id)

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:
        if reason_code.is_failure:
            logger.warning("MQTT connection refused: %s", reason_code)
            return
        self._generation += 1
        self.connected = True
        self.metrics.mqtt_connected.set(1)
        group = self.config.mqtt_share_group
        subs = [
            (topics.subscription("state", share_group=group), 1),
            (topics.subscription("stats", share_group=group), 0),
            # Retained status is not delivered to shared subscriptions: every replica reads
            # it; writing the same availability twice is harmless.
            (topics.subscription("status"), 1),
        ]
        self._sub_mid = client.subscribe(subs)[1]
        logger.info("MQTT connected (session present: %s)", flags.session_present)

    def _on_subscribe(self, client, userdata, mid, reason_codes, properties) -> None:
        if mid != self._sub_mid:
            return
        if any(rc.is_failure for rc in reason_codes):
            logger.warning("MQTT subscriptions refused: %s", ", ".join(str(rc) for rc in reason_codes))
            return
        logger.info("MQTT subscribed (%d topic filters)", len(reason_codes))
        self.subscribed.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:
        self.connected = False
        self.subscribed.clear()
        self.metrics.mqtt_connected.set(0)
        if not self._stopping.is_set():
            logger.warning("MQTT disconnected: %s", reason_code)

    def _on_message(self, client, userdata, msg) -> None:
        if self._stopping.is_set():
            return  # not acked: the broker keeps it for the next session
        if msg.qos == 0 and self._queue.qsize() >= 4 * self.config.mqtt_inflight:
            # QoS 0 (stats) is outside the broker's in-flight window: shed it rather than
            # let a stalled writer's queue grow without bound.
            self.metrics.mqtt_messages.labels("unknown", "shed").inc()
            return
        self._queue.put(_Item(self._generation, msg.mid, msg.qos, msg.topic, msg.payload, time.time()))

    # -- writer thread ------------------------------------------------------------------

    def _collect(self) -> _Batch | None:
        """Wait for a message, then keep decoding arrivals into a batch until it holds
        ``batch_states`` states or ``batch_seconds`` have passed."""
        try:
            first = self._queue.get(timeout=0.2)
        except queue.Empty:
            return None
        batch = self._partial = _Batch([], [], [], [], {}, {})
        seen: dict[tuple[str, str], datetime] = {}
        self._add(batch, first, seen)
        deadline = time.monotonic() + self.config.batch_seconds
        while len(batch.states) < self.config.batch_states:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            if self._stopping.is_set():
                # Shutting down: write what was taken now; new arrivals are not taken.
                try:
                    item = self._queue.get_nowait()
                except queue.Empty:
                    break
            else:
                try:
                    item = self._queue.get(timeout=min(remaining, 0.1))
                except queue.Empty:
                    continue
            self._add(batch, item, seen)
        for (site, device), when in seen.items():
            batch.devices.append([site, device, "seen", "", when, {}])
            batch.contacts.add((site, device, _slot_of(when)))
        return batch

    def _add(self, batch: _Batch, item: _Item, seen: dict) -> None:
        """Decode one taken item into ``batch``; never raises, so a taken item is always
        written (as rows or as a dead letter) and then acked."""
        batch.items.append(item)
        self._in_batch = len(batch.items)
        received = datetime.fromtimestamp(item.received_at, timezone.utc)
        site = device = ""
        try:
            topic = topics.parse_topic(item.topic)
            site, device = topic.site, topic.device
            msg = protocol.decode(item.payload)
            protocol.check_identity(msg, topic)
            states, devices = [], []
            if isinstance(msg, protocol.StateBatch):
                states = [[site, device, s.camera, s.slot, s.peak, s.events, dict(s.triggers), s.rev, received]
                          for s in msg.states]
            elif isinstance(msg, protocol.Status):
                devices = [[site, device, "status", msg.state, received, {}]]
            elif isinstance(msg, protocol.Stats):
                devices = [[site, device, "stats", "", received, {k: float(v) for k, v in msg.stats.items()}]]
        except HeatmapError as exc:
            self._dead(batch, item, received, site, device, exc.code, exc.field or "", exc.reason)
            logger.debug("dead letter on %s: %s", item.topic, exc)
            return
        except Exception as exc:  # a bug: the message is kept as a dead letter, not lost
            logger.exception("unexpected error decoding a message on %s; stored as a dead letter", item.topic)
            self._dead(batch, item, received, site, device, "internal_error", "",
                       "%s: %s" % (type(exc).__name__, exc))
            return
        self.metrics.mqtt_messages.labels(msg.type, "accepted").inc()
        seen[(site, device)] = received
        batch.devices.extend(devices)
        if states:
            batch.states.extend(states)
            if not msg.urgent:  # its states follow in a regular batch, acked then (docs/protocol.md)
                batch.acks.setdefault((site, device, msg.v), []).extend(
                    protocol.AckItem(row[2], row[3], row[7]) for row in states)
            batch.slots.setdefault(site, set()).update(row[3] for row in states)
            batch.contacts.update((site, device, row[3]) for row in states)
            batch.senders.setdefault(site, []).append((item, received, device))

    def _dead(self, batch: _Batch, item: _Item, received: datetime, site: str, device: str,
              reason: str, field: str, message: str) -> None:
        self.metrics.dead_letters.labels(reason).inc()
        self.metrics.mqtt_messages.labels("unknown", "dead").inc()
        payload = bytes(item.payload or b"")
        batch.dead.append([received, str(item.topic)[:512], site, device, reason, field, message[:1000],
                           payload[:_MAX_DEAD_PAYLOAD], len(payload)])

    def _refuse_sites(self, batch: _Batch) -> None:
        """Take the states of sites that may not be written out of ``batch``: each message
        carrying them becomes a dead letter (acked; the device keeps resending them, unacked,
        so they are written once the site is let in). Idempotent, as the batch is retried."""
        if self.admit is None or not batch.slots:
            return
        refused = self.admit(set(batch.slots))
        if not refused:
            return
        seen = {(row[0], row[1], _slot_of(row[4])) for row in batch.devices if row[2] == "seen"}
        batch.states = [row for row in batch.states if row[0] not in refused]
        batch.contacts = {c for c in batch.contacts if c[0] not in refused or c in seen}
        for key in [k for k in batch.acks if k[0] in refused]:
            del batch.acks[key]
        for site, why in sorted(refused.items()):
            batch.slots.pop(site, None)
            senders = batch.senders.pop(site, [])
            for item, received, device in senders:
                self._dead(batch, item, received, site, device, why.code, "site", why.message)
            logger.warning("MQTT states of site %r refused (%s): %d message(s) stored as dead letters: %s",
                           site, why.code, len(senders), why.message)

    def _insert(self, batch: _Batch) -> None:
        started = time.perf_counter()
        self._refuse_sites(batch)
        self.store.insert("slot_states", batch.states, STATE_COLUMNS)
        if self.refresh is not None and batch.slots:
            self.refresh(batch.slots)  # the kept answers; failing, the batch is retried
        self.store.insert("device_status", batch.devices, _DEVICE_COLUMNS)
        self.store.insert("device_slots", sorted(batch.contacts), _CONTACT_COLUMNS)
        self.store.insert("dead_letters", batch.dead, _DEAD_COLUMNS)
        self.metrics.insert_seconds.observe(time.perf_counter() - started)

    def _write(self, batch: _Batch) -> bool:
        """Insert with retries; False if giving up because of shutdown."""
        delay = 0.2
        give_up_at = None
        while True:
            try:
                self._insert(batch)
                if self.degraded:
                    logger.info("storage is back; %d messages written", len(batch.items))
                self.degraded = False
                return True
            except Exception as exc:  # storage trouble, or a bug: retried alike, nothing acked
                self.degraded = True
                self.metrics.insert_failures.labels(type(exc).__name__).inc()
                logger.warning("batch insert failed (retrying in %.1f s, nothing acked): %s", delay, exc,
                               exc_info=not isinstance(exc, StorageError))
            if self._stopping.is_set():
                give_up_at = give_up_at or time.monotonic() + self.shutdown_timeout
                if time.monotonic() >= give_up_at:
                    logger.error("shutting down with %d messages unwritten; the broker keeps them",
                                 len(batch.items))
                    return False
            time.sleep(delay)
            delay = min(delay * 2, 30.0)

    def _acknowledge(self, batch: _Batch) -> None:
        """After the write: ack every message, then tell devices and the dashboard. A failure
        in one step is logged and does not skip the others (the rows are already stored)."""
        generation = self._generation
        for item in batch.items:  # in arrival order, as MQTT requires
            if item.qos > 0 and item.generation == generation:
                try:
                    self._client.ack(item.mid, item.qos)
                except Exception:  # the broker redelivers it; rewriting is harmless
                    logger.exception("MQTT ack of message %d failed", item.mid)
        self.metrics.states_written.inc(len(batch.states))
        for (site, device, version), acks in batch.acks.items():
            try:
                for payload in _ack_payloads(site, device, version, acks):
                    self._client.publish(topics.ack_topic(site, device), payload, qos=1)
                    self.metrics.device_acks.inc()
            except Exception:  # the device resends unacked states; harmless
                logger.exception("publishing the ack to %s/%s failed", site, device)
        if self.on_written is not None:
            for site, slots in batch.slots.items():
                try:
                    self.on_written(site, slots)
                except Exception:
                    logger.exception("the written-callback failed for site %s", site)

    def _decode_loop(self) -> None:
        while not self._writer_done.is_set():
            self._partial = None
            try:
                batch = self._collect()
            except Exception:  # a bug must not kill the thread or lose what was taken
                logger.exception("collecting a consumer batch failed; writing what was taken")
                batch = self._partial if self._partial is not None and self._partial.items else None
                self._in_batch = 0
                if batch is None:
                    time.sleep(1)
                    continue
            if batch is None:
                if self._stopping.is_set() and self._queue.empty():
                    break
                continue
            self._handed += len(batch.items)
            self._in_batch = 0
            while not self._writer_done.is_set():
                try:
                    self._batches.put(batch, timeout=0.2)
                    break
                except queue.Full:
                    continue
        while not self._writer_done.is_set():
            try:
                self._batches.put(None, timeout=0.2)
                return
            except queue.Full:
                continue

    def _write_loop(self) -> None:
        try:
            while True:
                batch = self._batches.get()
                if batch is None:
                    return
                try:
                    if not self._write(batch):
                        return
                    self._acknowledge(batch)
                except Exception:  # a bug must not kill the writer silently; nothing is acked
                    logger.exception("consumer batch failed; its messages stay unacked")
                    time.sleep(1)
                finally:
                    self._handed -= len(batch.items)
        finally:
            self._writer_done.set()

    def publish(self, topic: str, payload: bytes) -> None:
        """Publish at QoS 1 on this consumer's connection (paho queues it while offline)."""
        self._client.publish(topic, payload, qos=1)

    # -- shutdown ---------------------------------------------------------------------

    def stop(self) -> None:
        """Stop taking messages, write and ack what was taken, then disconnect."""
        self._stopping.set()
        self._decoder.join(self.shutdown_timeout + 35)
        self._writer.join(self.shutdown_timeout + 35)
        stop_client(self._client)
        self.connected = False
        self.subscribed.clear()
        self.metrics.mqtt_connected.set(0)
        logger.info("MQTT consumer stopped")
