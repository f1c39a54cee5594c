"""The alerting of one central app: evaluation, persistence, delivery and their tasks.

``on_data(site, slots)`` is the one hook the write paths call (consumer batches and raw
ingest) after their rows are stored; it only schedules work. A periodic task judges the
timed rules (device_offline, no_data), refreshes the pending gauge and, once at start, sweeps
the last hour of every known site so that data written while this process was down, or
just before it died, is judged too. Every fired alert is written to ClickHouse before its
first attempt. At start, pending alerts of rules no longer configured are cancelled. When
a rule's alerts are folded (past its max_per_minute), the minute's summary is fired as soon
as the minute ends; the periodic task fires any summary still missing (after a restart).
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable

from shared.slots import SLOT_SECONDS

from ..exceptions import StorageError
from .deliver import Deliverer
from .evaluate import LOOKBACK, MINUTE, SETTLE_SUMMARY, SUMMARY_MEMORY, Evaluator
from .ledger import Alert, Ledger
from .rules import Rule

__all__ = ["Alerts", "CHECK_INTERVAL"]

logger = logging.getLogger(__name__)

CHECK_INTERVAL = 30.0
_STORE_RETRIES = (0.5, 1, 2, 4, 8, 15, 30)


class Alerts:
    def __init__(self, rules: tuple[Rule, ...], config, sites, store, metrics,
                 dashboard: Callable, raw_time: Callable, site_names: Callable,
                 publish: Callable[[str, bytes], None] | None = None,
                 typical: Callable = lambda: None):
        self.rules = rules
        self.metrics = metrics
        self.ledger = Ledger(store)
        #: Names this replica in delivery claims; unique per process, so a restart is a new owner.
        self.owner = "%s-%d-%s" % (socket.gethostname(), os.getpid(), uuid.uuid4().hex[:8])
        self.evaluator = Evaluator(rules, sites, store, self.ledger, dashboard, raw_time, self.fire, self.metrics,
                                   on_folded=self._summary_at, typical=typical)
        self.deliverer = Deliverer(self.ledger, config, self.metrics, self.owner, publish,
                                   rule_names=frozenset(r.name for r in rules))
        self.check_interval = max(0.05, CHECK_INTERVAL * config.alert_time_scale)
        self._site_names = site_names
        self._tasks: set[asyncio.Task] = set()
        self._queued: dict[str, set] = {}  # site -> slots written while its judging runs
        self._loops: list[asyncio.Task] = []
        self._summaries: set[float] = set()  # ends of minutes whose summary is scheduled

    # -- hooks --------------------------------------------------------------------------

    def on_data(self, site: str, slots) -> None:
        """Rows of ``slots`` of ``site`` were written: judge them (call on the event loop).

        One judging per site runs at a time; slots written meanwhile are merged and judged
        right after it, so a busy site costs one judging per round trip, not per batch."""
        if not self.evaluator.slot_rules:
            return
        queued = self._queued.get(site)
        if queued is not None:
            queued.update(slots)
            return
        self._queued[site] = set(slots)
        task = asyncio.create_task(self._judge(site))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _judge(self, site: str) -> None:
        try:
            while self._queued.get(site):
                slots, self._queued[site] = self._queued[site], set()
                try:
                    await self.evaluator.on_data(site, slots)
                except StorageError as exc:
                    logger.warning("alert rules for %s not judged (the start-up sweep retries): %s", site, exc)
                except Exception:
                    logger.exception("judging alert rules for %s failed", site)
        finally:
            self._queued.pop(site, None)

    def _summary_at(self, end: float) -> None:
        """Fire the summaries of the minute ending at ``end`` once it is over (and settled)."""
        if end in self._summaries:
            return
        self._summaries.add(end)
        task = asyncio.create_task(self._summarise_after(end))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _summarise_after(self, end: float) -> None:
        try:
            await asyncio.sleep(max(0.0, end - time.time()) + SETTLE_SUMMARY)
            await self.evaluator.summarise()
        except StorageError as exc:
            logger.warning("alert summaries not fired (the periodic check retries): %s", exc)
        except Exception:
            logger.exception("firing alert summaries failed")
        finally:
            self._summaries.discard(end)

    async def fire(self, alerts: list[Alert]) -> None:
        """Persist, count and hand over to delivery (called by the evaluator)."""
        if not alerts:
            return
        for pause in (*_STORE_RETRIES, None):
            try:
                await self.ledger.write(alerts)
                break
            except StorageError as exc:
                if pause is None:
                    self.metrics.alerts_not_stored.inc(len(alerts))
                    logger.error("%d alert(s) not stored, so not sent: %s", len(alerts), exc)
                    return
                logger.warning("storing %d alert(s) failed (retrying): %s", len(alerts), exc)
                await asyncio.sleep(pause)
        fresh = [a for a in alerts if a.state == "pending"]
        for alert in fresh:
            self.metrics.alerts_fired.labels(alert.kind).inc()
            logger.info("alert %s fired: %s", alert.id, alert.body)
        self.deliverer.submit(fresh)

    # -- lifecycle ----------------------------------------------------------------------

    def start(self) -> None:
        self._loops = [asyncio.create_task(self.deliverer.run()), asyncio.create_task(self._periodic())]

    async def stop(self) -> None:
        for task in [*self._loops, *self._tasks]:
            task.cancel()
        await asyncio.gather(*self._loops, *self._tasks, return_exceptions=True)

    async def _periodic(self) -> None:
        swept = summarised = False
        while True:
            try:
                names = await self._site_names()
                if not swept:
                    cancelled = await self.deliverer.cancel_orphans()
                    if cancelled:
                        logger.warning("%d pending alert(s) of rules no longer in the sites file cancelled",
                                       cancelled)
                    await self._sweep(names)
                    swept = True
                await self.evaluator.check(names)
                # Once after start (a summary a dead process left due), then while folding.
                if not summarised or time.time() - self.evaluator.last_folded < SUMMARY_MEMORY + MINUTE:
                    await self.evaluator.summarise()
                    summarised = True
                self.metrics.alerts_pending.set(await self.ledger.pending(self.deliverer.oldest_pending()))
            except StorageError as exc:
                logger.warning("alert check: %s", exc)
            except Exception:
                logger.exception("alert check failed")
            await asyncio.sleep(self.check_interval)

    async def _sweep(self, names: list[str]) -> None:
        now = time.time()
        first = int(now - LOOKBACK) // SLOT_SECONDS * SLOT_SECONDS
        slots = range(first, int(now) + 1, SLOT_SECONDS)
        for name in names:
            await self.evaluator.on_data(name, slots, now)
