"""The one keeper of everything derived from a write, whoever made it.

Writers store rows in the sources (``slot_states``, ``camera_events``, ``slot_repairs``);
:class:`Keeper` then owns every consequence: the slot answers (``slot_answers``), the
site-days (``day_answers``, through :class:`central.storage.days.DayKeeper`), the pending
state the reader consults, and one ``tell(site, slots, live)`` fan-out that every listener
(dashboard, alerts, registry) hears once per write:

* the MQTT consumer: :meth:`Keeper.keep_live` in its writer thread, before the broker ack
  (slots now; the days behind the ack, coalesced; told once the days are kept);
* ``POST /api/v1/events``: :meth:`Keeper.akeep` before it answers (told before the 201);
* other writers (the customer's own ingestion into ``camera_events``, ``reconcile --repair``
  in another process, another replica): noted by materialized views in ``slot_dirty`` and
  followed about once a second by :class:`Follower`, which keeps and tells what this process
  has not already told;
* the start-up catch-up (:meth:`Keeper.catch_up`, in the background after ``/readyz``):
  days cut in another zone or by an earlier version are recomputed, days behind their slots
  after a crash are kept, and every slot answer is checked against its sources, newest UTC
  day first, and refreshed where it differs (answers behind their sources after an upgrade,
  a restore, or a central stopped longer than ``slot_dirty`` keeps its notes). Until a day is
  checked, :class:`central.storage.sitedays.SiteDays` computes it from the sources:
  reads stay right meanwhile, only slower; :attr:`Keeper.catching_up` counts the site-days
  left (``/readyz``, ``heatmap_catching_up_site_days``).

A write's recomputation covers the slots and days it touched, never the span between them:
an event from 2000 beside one from today costs two small recomputations, not 26 years.
"""

from __future__ import annotations

import asyncio
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import date, datetime, timedelta, timezone

from shared.slots import SLOT_SECONDS

from ..exceptions import StorageError
from ..sites import Sites
from .days import DayKeeper
from .slots import Scope, SlotStore, touched_scopes, unix
from .store import Store

__all__ = ["Keeper", "Follower", "Tell"]

logger = logging.getLogger(__name__)

#: tell(site, slots, live): the fan-out after a write's consequences are kept. ``live`` is
#: true for the live feed (the MQTT consumer), whose pollers may see the previous answer
#: for a moment.
Tell = Callable[[str, "set[int]", bool], None]

_DAY = 86400
_OVERLAP_MS = 5000
#: How long a site's data range is kept (widened by writes) before it is read again.
_RANGE_SECONDS = 300.0
_TOLD_SECONDS = 30.0

# Slots whose kept answer differs from the slot rule computed from the sources, or that only
# one of the two has (a tombstone counts as none), per site; parameters of a Scope.
_DIFFERS = """
SELECT site_name, groupUniqArray(slot) FROM (
    SELECT site_name, cam_name, slot
    FROM (
        SELECT site_name, cam_name, slot,
               cityHash64(peak, events, mapKeys(triggers), mapValues(triggers), source) AS h
        FROM (%(computed)s)
        UNION ALL
        SELECT site_name, cam_name, slot,
               cityHash64(peak, events, mapKeys(triggers), mapValues(triggers), source) AS h
        FROM (%(kept)s)
    )
    GROUP BY site_name, cam_name, slot
    HAVING count() != 2 OR min(h) != max(h)
)
GROUP BY site_name
"""

#: The tables whose row counts mark "unchanged since the clean stop": the edge states and pins
#: (their writers are central's own) and the kept answers (emptied or restored, they change).
#: camera_events is not among them: the customer's rows while central was down are followed
#: through slot_dirty, whose notes last _DIRTY_SECONDS.
_MARKED = ("slot_states", "slot_repairs", "slot_answers", "day_answers")
_DIRTY_SECONDS = 2 * 86400
_MARK = "clean_stop"

_SPAN = """
SELECT site_name, min(lo), max(hi) FROM (
    SELECT site_name, min(slot) AS lo, max(slot) AS hi FROM slot_states GROUP BY site_name
    UNION ALL SELECT site_name, min(slot), max(slot) FROM raw_slots GROUP BY site_name
    UNION ALL SELECT site_name, min(slot), max(slot) FROM slot_repairs GROUP BY site_name
    UNION ALL SELECT site_name, min(slot), max(slot) FROM slot_answers GROUP BY site_name
)
GROUP BY site_name
"""


class Keeper:
    """Keeps slot answers and site-days after every write; see the module docstring."""

    def __init__(self, slots: SlotStore, sites: Sites):
        self.slots = slots
        self.store = slots.store
        self.sites = sites
        self.days: DayKeeper | None = DayKeeper(slots, sites) if slots.answers else None
        slots.days = self.days
        slots.keeper = self
        self._tell: Tell | None = None
        #: Slots at or after this Unix second are checked against their sources; None: all.
        self.verified_from: int | None = None
        #: site -> (first, last) local days cut in another zone or by an earlier version.
        self._recut: dict[str, tuple[date, date]] = {}
        self._spans: dict[str, tuple[int, int]] = {}
        self._told: dict[tuple[str, int], int] = {}  # (site, slot) -> ns when told here
        #: site -> (read again after, its data's first and last slot or None, writes seen);
        #: widened by every write told (see data_range).
        self._ranges: dict[str, tuple[float, tuple[int, int] | None, int]] = {}
        self._writes: dict[str, int] = {}  # site -> writes told
        self._told_lock = threading.Lock()
        self._catch_up: threading.Thread | None = None
        self._stopping = threading.Event()
        self.follower: Follower | None = None
        #: Where the follower starts (Unix ms of slot_dirty's notes): 0, all it still holds.
        self.follower_since = 0

    # -- the fan-out ----------------------------------------------------------------------

    def start(self, tell: Tell | None) -> None:
        """Tell ``tell`` of every write from now on; the live feed's day keeper starts."""
        self._tell = tell
        if self.days is not None:
            self.days.start(lambda site, slots: self._told_now(site, slots, True))

    def _told_now(self, site: str, slots: set[int], live: bool) -> None:
        now = time.time_ns()
        with self._told_lock:
            for s in slots:
                self._told[(site, s)] = now
            if len(self._told) > 200_000:
                cutoff = now - int(_TOLD_SECONDS * 1e9)
                self._told = {k: t for k, t in self._told.items() if t >= cutoff}
            self._writes[site] = self._writes.get(site, 0) + 1
            entry = self._ranges.get(site)
            if entry is not None and slots:
                lo, hi = min(slots), max(slots)
                span = entry[1]
                self._ranges[site] = (entry[0], (lo, hi) if span is None else (min(span[0], lo), max(span[1], hi)),
                                      self._writes[site])
        if self._tell is not None:
            self._tell(site, set(slots), live)

    def data_range(self, site: str) -> tuple[int, int] | None:
        """:meth:`SlotStore.data_range` of ``site`` (its first and last slot in any source),
        kept: every write told widens it, so it is read from the sources once per
        :data:`_RANGE_SECONDS` (a repair that removed a site's first or last data narrows it
        then), not on every view of the site (a scan of the site's rows in every source).
        Without a follower of other writers (no kept answers) it is read every time."""
        if self.follower is None:  # other writers' rows are told only by the follower
            return self.slots.data_range(site)
        now = time.monotonic()
        with self._told_lock:
            entry = self._ranges.get(site)
            writes = self._writes.get(site, 0)
        if entry is not None and entry[0] > now:
            return entry[1]
        span = self.slots.data_range(site)
        with self._told_lock:
            # A write told while the sources were read may be missing from them: not kept.
            if self._writes.get(site, 0) == writes:
                self._ranges[site] = (now + _RANGE_SECONDS, span, writes)
        return span

    def _keep_ranges(self) -> None:
        """Every site's data range in one statement (after the catch-up, then every
        :data:`_RANGE_SECONDS`), so that a view of a site not seen lately reads it kept."""
        while True:
            try:
                writes = dict(self._writes)
                now = time.monotonic()
                spans = self.slots.data_ranges()
                with self._told_lock:
                    for site in set(spans) | set(self._ranges):
                        if self._writes.get(site, 0) == writes.get(site, 0):
                            self._ranges[site] = (now + 2 * _RANGE_SECONDS, spans.get(site), writes.get(site, 0))
            except StorageError as exc:
                logger.warning("keeper: reading the sites' data ranges failed (retrying): %s", exc)
            except Exception:
                logger.exception("keeper: reading the sites' data ranges failed")
            if self._stopping.wait(_RANGE_SECONDS):
                return

    def told_after(self, site: str, slot: int, at_ns: int) -> bool:
        """Whether this process took ``site``'s ``slot`` in hand (to keep it, then tell) after
        ``at_ns``: the follower leaves such slots to the writer that keeps them."""
        with self._told_lock:
            return self._told.get((site, slot), 0) > at_ns

    def _claim(self, touched: dict[str, set[int]]) -> int:
        """Mark the slots as in hand from now (before they are kept: the rows are stored, and
        the keeping reads them), so that the follower does not keep them a second time."""
        now = time.time_ns()
        with self._told_lock:
            for site, slots in touched.items():
                for s in slots:
                    self._told[(site, s)] = now
        return now

    def _unclaim(self, touched: dict[str, set[int]], mark: int) -> None:
        """Keeping failed: the follower must take them again."""
        with self._told_lock:
            for site, slots in touched.items():
                for s in slots:
                    if self._told.get((site, s)) == mark:
                        del self._told[(site, s)]

    # -- writes -----------------------------------------------------------------------------

    def keep_slots(self, touched: dict[str, Iterable[int]]) -> None:
        """The slot answers of the touched slots, run by run (never the span between runs)."""
        if not self.slots.answers:
            return
        for scope in touched_scopes(touched):
            self.slots.refresh_scope(scope)

    def keep(self, touched: dict[str, Iterable[int]], tell: bool = True) -> None:
        """Slots, then their days, now; then tell (blocking: a store thread)."""
        touched = {site: set(map(int, slots)) for site, slots in touched.items() if slots}
        if not touched:
            return
        mark = self._claim(touched)
        try:
            self.keep_slots(touched)
            if self.days is not None:
                self.days.refresh(touched)
        except BaseException:
            self._unclaim(touched, mark)
            raise
        if tell:
            for site, slots in touched.items():
                self._told_now(site, slots, False)

    async def akeep(self, touched: dict[str, Iterable[int]]) -> None:
        """:meth:`keep` in a store thread; the listeners are told on the event loop before it returns."""
        touched = {site: set(map(int, slots)) for site, slots in touched.items() if slots}
        if not touched:
            return
        assert isinstance(self.store, Store)
        await self.store.arun(self.keep, touched, False)
        for site, slots in touched.items():
            self._told_now(site, slots, False)

    def keep_live(self, touched: dict[str, Iterable[int]]) -> None:
        """The live feed, in the consumer's writer thread before the ack: slots now (a failure
        raises, the batch is retried, nothing is acked); the days behind the ack, pending for
        the reader until kept, and told once kept."""
        touched = {site: set(map(int, slots)) for site, slots in touched.items() if slots}
        mark = self._claim(touched)
        try:
            self.keep_slots(touched)
        except BaseException:
            self._unclaim(touched, mark)
            raise
        if self.days is not None:
            self.days.submit(touched)

    def written_live(self, site: str, slots: set[int]) -> None:
        """After the consumer's ack: without kept days nothing else tells the listeners."""
        if self.days is None:
            self._told_now(site, slots, True)

    # -- start-up ---------------------------------------------------------------------------

    def recut_days(self, site: str, first: date, last: date) -> list[date]:
        span = self._recut.get(site)
        if span is None:
            return []
        lo, hi = max(first, span[0]), min(last, span[1])
        return [lo + timedelta(days=i) for i in range((hi - lo).days + 1)] if lo <= hi else []

    @property
    def catching_up(self) -> int:
        """Site-days not yet checked against their sources (0 once the catch-up is done)."""
        verified_from = self.verified_from
        # Read from the event loop while the catch-up thread shrinks these: copies first.
        n = sum((hi - lo).days + 1 for lo, hi in list(self._recut.values()))
        if verified_from is None:
            return n
        for lo, hi in list(self._spans.values()):
            top = min(hi + SLOT_SECONDS, verified_from)
            if top > lo:
                n += (top - lo + _DAY - 1) // _DAY
        return n

    def prepare(self) -> None:
        """Before the first read (blocking, quick): which days are recut, and from where on
        the slots are not checked yet. :meth:`catch_up` then does the work."""
        if self.days is None:
            return
        self._recut = self.days.recut_spans()
        # Where the follower of other writers stopped at the last clean stop: what it had
        # followed then was kept and told then (a crash leaves no mark: it starts over).
        rows = self.store.query("SELECT value FROM keeper_marks FINAL WHERE name = 'follower'")
        if rows and rows[0][0].isdigit():
            self.follower_since = max(0, int(rows[0][0]) - _OVERLAP_MS)
        self.store.insert("keeper_marks", [["follower", "", datetime.now(timezone.utc)]], ["name", "value", "at"])
        self._spans = {str(site): (unix(lo), unix(hi)) for site, lo, hi in self.store.query(_SPAN)}
        self.verified_from = max((hi for _, hi in self._spans.values()), default=0) + SLOT_SECONDS
        if not self._spans:
            self.verified_from = None
        elif self._unchanged_since_clean_stop():
            logger.info("slot answers: as the last clean stop left them, and other writers' rows since are "
                        "in slot_dirty: no check against the sources needed")
            self.verified_from = None

    def _counts(self) -> dict[str, int]:
        return {t: int(self.store.query("SELECT count() FROM %s" % t)[0][0]) for t in _MARKED}

    def _unchanged_since_clean_stop(self) -> bool:
        """Whether the last stop was clean (its mark is there: a crash, an upgrade from a
        version without marks, leaves none), less than slot_dirty's notes ago, and the marked
        tables hold what they held then (a restore, an emptied table, another writer's edge
        states change a count). The mark is used once."""
        rows = self.store.query("SELECT value, toUnixTimestamp64Milli(at) FROM keeper_marks FINAL WHERE name = {n:String}",
                                parameters={"n": _MARK})
        self._forget_mark()
        if not rows or not rows[0][0]:
            return False
        try:
            counts = json.loads(rows[0][0])
        except ValueError:
            return False
        fresh = time.time() - int(rows[0][1]) / 1000 < _DIRTY_SECONDS - 3600
        return fresh and counts == self._counts()

    def _forget_mark(self) -> None:
        self.store.insert("keeper_marks", [[_MARK, "", datetime.now(timezone.utc)]], ["name", "value", "at"])

    def _mark_clean_stop(self) -> None:
        """At a clean stop with the answers caught up: what the marked tables hold now."""
        if self.days is None or self.verified_from is not None or self._recut:
            return
        try:
            marks = [[_MARK, json.dumps(self._counts()), datetime.now(timezone.utc)]]
            if self.follower is not None and self.follower.seen_ms > 0:
                marks.append(["follower", str(self.follower.seen_ms), datetime.now(timezone.utc)])
            self.store.insert("keeper_marks", marks, ["name", "value", "at"])
        except StorageError as exc:
            logger.warning("keeper: the clean stop was not marked (the next start checks every slot): %s", exc)

    def start_catch_up(self, built_from: int = 0) -> None:
        self._catch_up = threading.Thread(target=self.catch_up, args=(built_from,), name="keeper-catch-up",
                                          daemon=True)
        self._catch_up.start()

    def catch_up(self, built_from: int = 0, chunk: int = _DAY) -> None:
        """Recut days, days behind their slots, then every slot checked against its sources,
        newest UTC day first (retried on storage errors until stopped); then the sites' data
        ranges, kept until stopped."""
        if self.days is None:
            return
        delay = 1.0
        while not self._stopping.is_set():
            try:
                self._catch_up_once(built_from, chunk)
                if self.follower is not None:
                    self._keep_ranges()
                return
            except StorageError as exc:
                logger.warning("catching up the kept answers failed (retrying in %.0f s): %s", delay, exc)
            except Exception:
                logger.exception("catching up the kept answers failed")
            if self._stopping.wait(delay):
                return
            delay = min(delay * 2, 60.0)

    def _catch_up_once(self, built_from: int, chunk: int) -> None:
        started = time.monotonic()
        days = self.days
        assert days is not None
        for site, (first, last) in list(self._recut.items()):
            logger.info("site %s: recomputing its kept days %s..%s (cut in another time zone, or by an "
                        "earlier version)", site, first, last)
            days.recompute({site: (first - timedelta(days=1), last + timedelta(days=1))})
            del self._recut[site]
        days.catch_up(built_from=built_from)
        if self.verified_from is None:
            return
        lo = min((lo for lo, _ in self._spans.values()), default=self.verified_from)
        lo -= lo % chunk
        top = self.verified_from
        fixed = 0
        sites = sorted(self._spans)
        computed = self.slots.computed_sql(Scope.of((), 0, 0))
        kept = self.slots.merged_sql(Scope.of((), 0, 0))
        sql = _DIFFERS % {"computed": computed, "kept": kept}
        logger.info("slot answers: checking %d site(s) against their sources, %d day(s)", len(sites),
                    (top - lo + chunk - 1) // chunk)
        while top > lo:
            if self._stopping.is_set():
                return
            start = max(lo, top - (top % chunk or chunk))
            scope = Scope.of(sites, start, top)
            touched = {str(site): {int(s) for s in slots}
                       for site, slots in self.store.query(sql, parameters=scope.params())}
            if touched:
                fixed += sum(len(s) for s in touched.values())
                self.keep(touched)
            self.verified_from = top = start
        self.verified_from = None
        logger.info("slot answers: checked against their sources in %.1f s, %d slot(s) refreshed",
                    time.monotonic() - started, fixed)

    def stop(self) -> None:
        """Stop the catch-up and the live feed's day keeper (keeping what was submitted), then
        mark a clean stop where everything was kept."""
        self._stopping.set()
        kept = True
        if self.days is not None and self.days._thread is not None:
            self.days.stop()
            kept = not self.days._thread.is_alive() and not self.days.pending_any()
        if self._catch_up is not None:
            self._catch_up.join(10.0)
        if kept:
            self._mark_clean_stop()


class Follower:
    """Keeps and tells the slots other writers noted in ``slot_dirty`` (``serve``)."""

    def __init__(self, keeper: Keeper, interval: float = 1.0):
        self.keeper = keeper
        self.store: Store = keeper.store  # type: ignore[assignment]
        self.interval = interval
        # At the first pass: from where the last clean stop left off, else all of slot_dirty.
        self._since_ms = keeper.follower_since
        self._seen_ms = -1
        keeper.follower = self
        self.refreshed = 0
        self.task: asyncio.Task | None = None

    async def run(self) -> None:
        while True:
            try:
                await self.once()
            except asyncio.CancelledError:
                raise
            except StorageError as exc:
                logger.warning("slot answers: following other writers failed (retrying): %s", exc)
            except Exception:
                logger.exception("slot answers: following other writers failed")
            await asyncio.sleep(self.interval)

    @property
    def seen_ms(self) -> int:
        """The newest note followed (Unix ms), -1 before the first."""
        return self._seen_ms

    async def once(self) -> int:
        """One pass: keep the slots noted since the last pass that this process has not told
        of since; returns how many UTC days were kept."""
        rows = await self.store.aquery(
            "SELECT intDiv(toUInt32(toUnixTimestamp(slot)), 86400) AS day, site_name, "
            "groupArray((toUInt32(toUnixTimestamp(slot)), toUInt64(toUnixTimestamp64Nano(noted)))), "
            "toUInt64(toUnixTimestamp64Milli(max(noted))) "
            "FROM (SELECT site_name, slot, max(at) AS noted FROM slot_dirty "
            "      WHERE at >= fromUnixTimestamp64Milli({since:Int64}, 'UTC') GROUP BY site_name, slot) "
            "GROUP BY day, site_name ORDER BY day",
            {"since": self._since_ms})
        newest = max((int(r[3]) for r in rows), default=-1)
        if newest <= self._seen_ms:
            return 0
        days: dict[int, dict[str, set[int]]] = {}
        for day, site, noted, _ in rows:
            slots = {int(s) for s, at in noted if not self.keeper.told_after(str(site), int(s), int(at))}
            if slots:
                days.setdefault(int(day), {})[str(site)] = slots
        for touched in days.values():
            await self.keeper.akeep(touched)
        self.refreshed += len(days)
        self._seen_ms = newest
        self._since_ms = newest - _OVERLAP_MS
        return len(days)

