"""The agent: buffers, outbox, link and inputs wired together, and the main loop.

:class:`Agent` is also the in-process API a pipeline, a simulator or a test uses:
``Agent(config).start()``, ``record()``, ``record_batch()``, ``flush()``, ``wait_acked()``,
``stats()``, ``stop()``. The main loop (one thread) commits changed slots to the outbox
every ``commit_interval``, publishes due states every ``publish_interval`` (only what is
committed, so central is never ahead of the outbox), applies acks, sends stats, prunes the
window and pings the systemd watchdog. Every ``priority.TICK`` it also looks for urgent
states (a new trigger, a rise of intensity class: ``priority.py``); those are committed and
published at once, in one message per tick. Startup, loop and shutdown are three visible
steps. On stop, the last pass commits and publishes every state central has not acked,
those in flight too (the broker may have dropped them), if the broker answers within
``STOP_PUBLISH_WAIT`` seconds; what does not reach it stays in the outbox for the next start.
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from typing import Any, Dict, List, Optional, Union

from shared.exceptions import ProtocolError
from shared.protocol import MAX_STATS, Ack, RevAck, SlotState, StateBatch, Stats, encode
from shared.slots import SLOT_SECONDS
from shared.topics import state_topic

from ._memory import trim
from .buffers import SlotBuffers
from .config import Config
from .exceptions import OutboxError
from .inputs import Input, build_inputs
from .link import Link
from .notify import Notifier
from .outbox import Outbox
from .pending import Pending
from .priority import TICK, Priority
from .refusals import Refusals

__all__ = ["Agent", "OUTBOX_FILE", "OUTBOX_MARKER", "STOP_PUBLISH_WAIT"]

log = logging.getLogger(__name__)

OUTBOX_FILE = "outbox.sqlite"
#: Left in the state directory once an outbox existed there (see :meth:`Agent._guard_reset`).
OUTBOX_MARKER = "outbox.started"
_PRUNE_EVERY = 60.0
#: Seconds a stop waits for the broker: first for a connection, then for the PUBACKs.
STOP_PUBLISH_WAIT = 2.0
_COMMIT_CHUNK = 500
_CATCH_UP_EVERY = 1.0


class Agent:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.refusals = Refusals()
        self.buffers = SlotBuffers(
            retention_seconds=config.retention_seconds,
            max_future=config.max_future,
            max_cameras=config.max_cameras,
            max_triggers=config.max_triggers,
            refusals=self.refusals,
        )
        # The hot path is the buffers' own method: no extra call layer per event.
        self.record = self.buffers.record
        self.record_batch = self.buffers.record_batch
        self.notifier = Notifier(config.notify_socket)
        self.pending = Pending(config.ack_timeout, config.max_backoff, config.max_inflight_states)
        self.priority = Priority(config.priority, config.intensity_medium, config.intensity_high)
        self.buffers.watch_repeats = config.priority == "all"
        self.outbox: Optional[Outbox] = None
        self.link: Optional[Link] = None
        self.inputs: List[Input] = []
        self.counters: Dict[str, float] = {
            "messages_sent": 0, "states_sent": 0, "bytes_sent": 0, "acks": 0,
            "expired_unacked": 0, "commit_errors": 0, "outbox_quarantined": 0, "restored": 0,
            "priority_sent": 0,
        }
        self._acks: queue.Queue = queue.Queue()
        self._state_topic = state_topic(config.site, config.device_id)
        self._seq = 0
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._commit_soon = threading.Event()
        self._reconnected = threading.Event()
        self._cond = threading.Condition()
        self._requested = 0
        self._served = 0
        self._thread: Optional[threading.Thread] = None
        self._error_logged = -1e18
        self._last_ack_lag = 0.0
        self._rate_mark = (time.monotonic(), 0)
        self._events_per_s = 0.0
        #: Set when an input has died: the watchdog is no longer fed and ``run`` exits
        #: non-zero, so systemd restarts the agent rather than leave it up but deaf.
        self.failed = threading.Event()
        self.failure = ""

    # -- startup -------------------------------------------------------------------------

    def start(self) -> Agent:
        """Open and restore the outbox, start the link, the inputs and the main loop."""
        cfg = self.config
        self.outbox = Outbox(os.path.join(cfg.state_dir, OUTBOX_FILE))
        if self.outbox.quarantined:
            self.counters["outbox_quarantined"] = 1
        self._guard_reset(cfg.state_dir)
        lower = self._lower_slot()
        self.counters["restored"] = self.buffers.restore(self.outbox.iter_values(lower))
        unacked = self.outbox.unacked(lower)
        for camera, slot, rev, committed_at in unacked:
            self.pending.add([(camera, slot, rev)], committed_at)
        log.info("outbox %s: %d slot(s) restored, %d unacked, revisions continue above %d",
                 self.outbox.path, self.counters["restored"], len(unacked), self.outbox.rev)
        try:
            if cfg.mqtt is not None:
                self.link = Link(cfg.mqtt, cfg.site, cfg.device_id, on_ack=self._on_ack,
                                 on_connect=self._on_connect, version=cfg.protocol_version)
                self.link.start()
            self.inputs = build_inputs(cfg, self)
            for inp in self.inputs:
                inp.start()
        except BaseException:
            self._shutdown_io()
            raise
        self._thread = threading.Thread(target=self._loop, name="edge-main-loop", daemon=True)
        self._thread.start()
        self.notifier.ready("site %s device %s" % (cfg.site, cfg.device_id))
        return self

    def _guard_reset(self, state_dir: str) -> None:
        """After an outbox reset (quarantined, or fresh where one existed before), refuse
        events for slots that began before now: their new, higher revisions would hold only
        the counts since now and overwrite what central has (docs/edge.md)."""
        assert self.outbox is not None
        marker = os.path.join(state_dir, OUTBOX_MARKER)
        existed = os.path.exists(marker) or any(
            name.startswith(OUTBOX_FILE + ".corrupt-") for name in os.listdir(state_dir))
        if self.outbox.quarantined or (self.outbox.fresh and existed):
            self.buffers.refuse_before = time.time()
            log.warning("the outbox was reset: events for slots that began before now are refused "
                        "(refused_outbox_reset) so central's counts for them are not overwritten")
        if not os.path.exists(marker):
            try:
                with open(marker, "w") as f:
                    f.write("an outbox was started here; a fresh one means it was lost\n")
            except OSError as exc:
                log.warning("cannot write %s: %s", marker, exc.strerror)

    # -- the in-process API beyond record() ------------------------------------------------

    def flush(self, timeout: float = 10.0) -> bool:
        """Commit and publish now; True once a full loop pass started after this call is done."""
        with self._cond:
            self._requested += 1
            ticket = self._requested
        self._wake.set()
        deadline = time.monotonic() + timeout
        with self._cond:
            while self._served < ticket:
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._thread is None or not self._thread.is_alive():
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def commit_soon(self) -> None:
        """Ask the main loop for a commit now, without waiting (inputs that need acks)."""
        self._commit_soon.set()
        self._wake.set()

    def wait_acked(self, timeout: float = 10.0) -> bool:
        """Commit what is recorded so far and wait until central has acked all of it."""
        deadline = time.monotonic() + timeout
        if not self.flush(timeout):
            return False
        with self._cond:
            while len(self.pending):
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                self._cond.wait(min(remaining, 0.1))
        return True

    def stats(self) -> Dict[str, float]:
        """Counters as sent in the Stats message (at most 64 names)."""
        out: Dict[str, float] = {
            "events_per_s": round(self._events_per_s, 3),
            "events_total": self.buffers.accepted,
            "refused_total": self.refusals.total(),
            "outbox_backlog": len(self.pending),
            "oldest_unacked_age_s": round(self.pending.oldest_age(), 3),
            "ack_lag_s": round(self._last_ack_lag, 3),
            "states_resent": self.pending.resent,
            "connected": int(self.link is not None and self.link.connected.is_set()),
            "cameras": len(self.buffers.cameras()),
        }
        out.update(self.counters)
        if self.link is not None:
            out["bad_acks"] = self.link.bad_acks
            out["connects"] = self.link.connects
        for inp in self.inputs:
            out.update(inp.stats())
        for reason, n in sorted(self.refusals.snapshot().items()):
            out["refused_" + reason] = n
        return dict(list(out.items())[:MAX_STATS])

    # -- shutdown ------------------------------------------------------------------------

    def stop(self, timeout: float = 4 * STOP_PUBLISH_WAIT) -> None:
        """Drain and stop the inputs, commit, make a last publish attempt, say "stopped", close.
        Idempotent."""
        if self._stop.is_set():
            return
        self.notifier.stopping()
        for inp in self.inputs:
            inp.stop()
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            if self._thread.is_alive():
                log.error("main loop did not finish within %.1f s", timeout)
        self._shutdown_io()
        self.notifier.close()

    def _shutdown_io(self) -> None:
        for inp in self.inputs:
            inp.close()
        if self.link is not None:
            self.link.close()
        if self.outbox is not None:
            self._guard(self._apply_acks)  # acks that came in during the last publish
            self.outbox.close()

    # -- the main loop -------------------------------------------------------------------

    def _loop(self) -> None:
        cfg = self.config
        now = time.monotonic()
        next_commit = now + cfg.commit_interval
        next_publish = now + min(cfg.publish_interval, 1.0)
        next_stats = now + cfg.stats_interval
        next_prune = now
        next_ping = now
        next_scan = now
        last_publish = now
        scanning = self.priority.enabled and self.link is not None
        if scanning:
            # The loop sleeps until something is worth a scan (a rise, a new trigger), then
            # scans at most every TICK: an idle or steady device wakes about once a second.
            self.buffers.on_watch = self._wake.set
        while True:
            stopping = self._stop.is_set()
            with self._cond:
                ticket = self._requested
            forced = ticket > self._served
            self._wake.clear()
            # Each step is guarded on its own: a failing one never holds the others back.
            now = time.monotonic()
            if now >= next_prune:
                self._guard(self._prune)
                next_prune = now + _PRUNE_EVERY
            if self._guard(self._apply_acks) and self.pending.throttled:
                # A backlog held back by the in-flight bound drains at the pace of acks.
                next_publish = min(next_publish, last_publish + _CATCH_UP_EVERY)
                now = time.monotonic()
            early = self._commit_soon.is_set()
            if early:
                self._commit_soon.clear()
            urgent = []
            # The first scan primes priority publishing (what is there at start is not news).
            if scanning and now >= next_scan and (not self.priority.scans or self.buffers.watching()):
                urgent = self._guard(self._scan) or []
                next_scan = now + TICK
            if forced or stopping or early or urgent or now >= next_commit:
                self._guard(self._commit)
                next_commit = now + cfg.commit_interval
            if urgent:
                self._guard(self._publish_urgent, urgent)
            if self._reconnected.is_set():
                self._reconnected.clear()
                self.pending.resend_all()
                next_publish = now
            if stopping:
                self._guard(self._publish_at_stop)
            elif forced or now >= next_publish:
                self._guard(self._publish)
                last_publish = now
                next_publish = now + cfg.publish_interval
            if now >= next_stats:
                self._guard(self._send_stats, now)
                next_stats = now + cfg.stats_interval
            if not self.failed.is_set():
                self._check_inputs()
            if cfg.watchdog_interval is not None and now >= next_ping and not self.failed.is_set():
                self.notifier.watchdog()
                next_ping = now + cfg.watchdog_interval
            with self._cond:
                self._served = max(self._served, ticket)
                self._cond.notify_all()
            if stopping:
                return
            wait = min(next_commit, next_publish, next_stats) - time.monotonic()
            if scanning and self.buffers.watching():
                wait = min(wait, next_scan - time.monotonic())
            if cfg.watchdog_interval is not None:
                wait = min(wait, next_ping - time.monotonic())
            self._wake.wait(max(wait, 0.0))

    def _check_inputs(self) -> None:
        for inp in self.inputs:
            if not inp.alive():
                self.failure = "the %s input has died" % type(inp).__name__
                log.error("%s: stopping so the service restarts (the watchdog is no longer fed)", self.failure)
                self.notifier.status(self.failure)
                self.failed.set()
                return

    def _guard(self, step: Any, *args: Any) -> Any:
        """Run one step of the loop; log its failure (an outbox one once a minute), go on."""
        try:
            return step(*args)
        except OutboxError as exc:
            # A full or failing disk: counts stay in memory and every pass retries.
            if time.monotonic() - self._error_logged > 60.0:
                self._error_logged = time.monotonic()
                log.error("outbox: %s (retrying; counts stay in memory)", exc)
        except Exception:
            log.exception("%s failed; the main loop goes on", getattr(step, "__name__", step))
        return None

    def _commit(self) -> None:
        assert self.outbox is not None
        # Marks first: every message an input marks was recorded before collect() runs.
        marks = [inp.mark() for inp in self.inputs]
        total = 0
        fold = True
        while True:
            # In chunks: a full window of changed slots never sits in memory at once. Hot
            # cells fold in once per pass only, so steady input cannot keep the pass going.
            changes = self.buffers.collect(limit=_COMMIT_CHUNK, fold=fold)
            fold = False
            if not changes:
                break
            try:
                items = self.outbox.commit(changes)
            except Exception:
                self.counters["commit_errors"] += 1
                self.buffers.redirty(changes)
                raise
            self.pending.add(items, time.time())
            total += len(items)
            if len(changes) < _COMMIT_CHUNK:
                break
        if total > _COMMIT_CHUNK:
            trim()
        for inp, mark in zip(self.inputs, marks):
            inp.committed(mark)

    def _publish(self, everything: bool = False, deadline: Optional[float] = None) -> list:
        """Publish the due states (``everything``: every unacked one, without the in-flight
        bound, until the monotonic ``deadline``); returns paho's message infos."""
        if self.link is None or not self.link.connected.is_set() or self.outbox is None:
            return []
        if everything:
            self.pending.resend_all()
        due = self.pending.due(bounded=not everything)
        infos = []
        size = self.config.max_states_per_message
        for i in range(0, len(due), size):
            if deadline is not None and time.monotonic() >= deadline:
                break  # the rest stays in the outbox for the next start
            states = self.outbox.states((c, s) for c, s, _ in due[i:i + size])
            for chunk, payload in self._encode(states):
                info = self.link.publish(self._state_topic, payload, qos=1)
                if info is None:
                    return infos  # the link went down; the rest stays due
                self.pending.mark_sent([(st.camera, st.slot, st.rev) for st in chunk])
                infos.append(info)
                self.counters["messages_sent"] += 1
                self.counters["states_sent"] += len(chunk)
                self.counters["bytes_sent"] += len(payload)
        if len(due) > _COMMIT_CHUNK:
            trim()
        return infos

    def _publish_at_stop(self) -> None:
        """The last publish: every unacked state, if the broker answers within the bound."""
        if self.link is None or self.outbox is None or not len(self.pending):
            return
        if not self.link.connected.wait(STOP_PUBLISH_WAIT):
            log.warning("stopping: no broker within %.0f s; %d unacked state(s) stay in the outbox",
                        STOP_PUBLISH_WAIT, len(self.pending))
            return
        infos = self._publish(everything=True, deadline=time.monotonic() + STOP_PUBLISH_WAIT)
        got = Link.wait_published(infos, STOP_PUBLISH_WAIT)
        log.info("last publish: %d of %d message(s) reached the broker; %d unacked state(s) in the outbox",
                 got, len(infos), len(self.pending))

    def _scan(self) -> List[tuple]:
        """(camera, slot) keys of the current slot that became urgent since the last scan."""
        slot = int(time.time() // SLOT_SECONDS) * SLOT_SECONDS
        return [(camera, slot) for camera in self.priority.scan(slot, self.buffers.view(slot))]

    def _publish_urgent(self, keys: List[tuple]) -> None:
        """Publish the just committed states of ``keys`` now, in one message (or as few as fit).

        In version 2 the message is marked urgent: central sends no ack for it and the states
        stay due, so the next regular publish carries them (usually at a newer revision by
        then) and its ack retires them. An ack per urgent message would cost about as much as
        the message, and at a busy camera would name a revision already replaced."""
        if self.link is None or not self.link.connected.is_set() or self.outbox is None:
            return  # the regular publish after the reconnect carries them
        items = self.pending.unsent(keys)
        if not items:
            return
        urgent = self.config.protocol_version >= 2
        for chunk, payload in self._encode(self.outbox.states((c, s) for c, s, _ in items), urgent):
            if self.link.publish(self._state_topic, payload, qos=1) is None:
                return
            if not urgent:  # version 1: an ordinary batch, acked like any other
                self.pending.mark_sent([(st.camera, st.slot, st.rev) for st in chunk])
            self.counters["messages_sent"] += 1
            self.counters["priority_sent"] += 1
            self.counters["states_sent"] += len(chunk)
            self.counters["bytes_sent"] += len(payload)

    def _encode(self, states: List[SlotState], urgent: bool = False) -> list:
        """Compressed StateBatch payloads for ``states``, halved until each fits the cap."""
        self._seq += 1
        # sent_at to the millisecond: the digits beyond cost bytes and say nothing.
        batch = StateBatch(site=self.config.site, device=self.config.device_id, seq=self._seq,
                           sent_at=round(time.time(), 3), states=tuple(states),
                           v=self.config.protocol_version, urgent=urgent)
        try:
            payload = encode(batch, compress=True)
        except ProtocolError as exc:
            if exc.code != "too_large" or len(states) == 1:
                raise
            payload = b""
        if payload and len(payload) <= self.config.max_message_bytes:
            return [(states, payload)]
        if len(states) == 1:
            log.error("one state does not fit in %d bytes; it stays unsent", self.config.max_message_bytes)
            return []
        half = len(states) // 2
        return self._encode(states[:half], urgent) + self._encode(states[half:], urgent)

    def _apply_acks(self) -> int:
        items = []
        while True:
            try:
                msg = self._acks.get_nowait()
            except queue.Empty:
                break
            if isinstance(msg, RevAck):
                retired, lag = self.pending.ack_revs(msg.revs)
                items.extend(retired)
                if lag is not None:
                    self._last_ack_lag = lag
                continue
            for a in msg.acks:
                items.append((a.camera, a.slot, a.rev))
                lag = self.pending.ack(a.camera, a.slot, a.rev)
                if lag is not None:
                    self._last_ack_lag = lag
        if items and self.outbox is not None:
            self.outbox.ack(items)
            self.counters["acks"] += len(items)
        return len(items)

    def _prune(self) -> None:
        assert self.outbox is not None
        lower = self._lower_slot()
        expired = self.pending.expire(lower)
        self.outbox.prune(lower)
        if expired:
            self.counters["expired_unacked"] += expired
            log.warning("%d unacked state(s) left the %.1f-day window unacknowledged",
                        expired, self.config.retention_days)

    def _send_stats(self, now: float) -> None:
        mark, count = self._rate_mark
        accepted = self.buffers.accepted
        if now > mark:
            self._events_per_s = (accepted - count) / (now - mark)
        self._rate_mark = (now, accepted)
        stats = self.stats()
        log.debug("stats %s", stats)
        if self.link is not None:
            payload = encode(Stats(site=self.config.site, device=self.config.device_id,
                                   ts=time.time(), stats=stats), compress=True,
                             version=self.config.protocol_version)
            self.link.publish_stats(payload)

    def _lower_slot(self) -> int:
        return int((time.time() - self.config.retention_seconds) // SLOT_SECONDS) * SLOT_SECONDS

    # -- link callbacks (paho's thread) ------------------------------------------------------

    def _on_ack(self, msg: Union[Ack, RevAck]) -> None:
        self._acks.put(msg)
        self._wake.set()

    def _on_connect(self) -> None:
        self._reconnected.set()
        self._wake.set()
