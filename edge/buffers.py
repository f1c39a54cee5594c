"""The slot buffers: per 15-minute UTC slot and camera, peak people_count, event count and
per-trigger counts, over the retention window, in numpy arrays that grow with cameras and
trigger names.

The arrays are a ring of ``rows`` slots (the retention window plus the allowed future), so
memory is fixed by the window whatever the outage. ``record()`` is the hot path: for the
slot that holds "now" each camera has a small Python list (a *hot cell*) that takes the
event with a few comparisons and integer updates; :meth:`collect` folds hot cells into the
arrays once per commit interval. Everything else (late events, batches) writes the arrays
directly (:meth:`SlotBuffers.record_batch` calls the array functions of ``_batch.py``). One
lock guards it all, so any thread may record.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from shared.events import MAX_EVENT_TRIGGERS, MAX_PEOPLE, parse_time
from shared.exceptions import EventError
from shared.names import RESERVED_TRIGGERS, is_valid_name
from shared.protocol import MAX_COUNT
from shared.slots import SLOT_SECONDS

from . import _batch
from .refusals import Refusals

__all__ = ["SlotBuffers", "SlotValues"]

log = logging.getLogger(__name__)

#: (camera, slot start, peak, events, {trigger: count}) of one changed slot.
SlotValues = Tuple[str, int, int, int, Dict[str, int]]

# Hot cell fields: [lo, hi, peak, events, {trigger: count}, column, slot index]
_LO, _HI, _PEAK, _EVENTS, _TRIG, _COL, _SLOT = range(7)


class SlotBuffers:
    def __init__(
        self,
        retention_seconds: float = 7 * 86400.0,
        max_future: float = 300.0,
        max_cameras: int = 256,
        max_triggers: int = 64,
        refusals: Optional[Refusals] = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.lock = threading.Lock()
        self.retention = float(retention_seconds)
        self.max_future = float(max_future)
        self.max_cameras = max_cameras
        self.max_triggers = max_triggers
        self.refusals = refusals if refusals is not None else Refusals()
        self.clock = clock
        #: Events in slots that began before this Unix time are refused (``outbox_reset``).
        self.refuse_before = 0.0
        self.rows = int(math.ceil(self.retention / SLOT_SECONDS) + math.ceil(self.max_future / SLOT_SECONDS) + 2)
        self.accepted = 0  # events folded into the arrays (hot cells count at collect time)
        self._hot: Dict[Any, list] = {}
        #: Cameras whose peak rose or that counted a trigger since the last view(): the
        #: only ones priority publishing needs to look at (set in rare branches only).
        self._watch: set = set()
        #: Called (lock held; it must only signal) when the watch set stops being empty, so
        #: the agent's loop scans when there is something to scan rather than on a timer.
        self.on_watch: Optional[Callable[[], None]] = None
        #: Watch a camera for a repeat of a trigger already counted in its current slot
        #: (priority "all"); "new" only cares about a trigger's first count in a slot, and
        #: that takes the slow path, which always watches.
        self.watch_repeats = True
        self._cameras: Dict[str, int] = {}
        self._camera_names: List[str] = []
        self._triggers: Dict[str, int] = {}
        self._trigger_names: List[str] = []
        self._row_slot = np.full(self.rows, -1, dtype=np.int64)
        self._alloc(min(16, max_cameras), min(8, max_triggers))

    # -- the hot path --------------------------------------------------------------------

    def record(self, camera: str, people_count: int, timestamp: Any = None,
               triggers: Sequence[str] = ()) -> bool:
        """Count one event; False if it was refused (the reason is counted)."""
        if timestamp is None:
            timestamp = self.clock()
        with self.lock:
            try:
                cell = self._hot[camera]
                if people_count.__class__ is int and cell[0] <= timestamp < cell[1] and 0 <= people_count <= 65535:
                    if triggers:
                        if (triggers.__class__ is not tuple and triggers.__class__ is not list) or len(
                            triggers
                        ) > MAX_EVENT_TRIGGERS:
                            raise TypeError
                        tc = cell[4]
                        for t in triggers:
                            if t not in tc:
                                raise KeyError
                        for t in triggers:
                            tc[t] += 1
                        if self.watch_repeats:
                            self._watched(camera)
                    if people_count > cell[2]:
                        cell[2] = people_count
                        self._watched(camera)
                    cell[3] += 1
                    return True
            except (KeyError, TypeError):
                pass  # a new camera or slot, a new trigger, or input to check slowly
            return self._record_slow(camera, people_count, timestamp, triggers)

    # -- everything else -------------------------------------------------------------------

    def _record_slow(self, camera: Any, count: Any, ts: Any, triggers: Any) -> bool:
        col = self._camera_column(camera)
        if col is None:
            return False
        self._watched(camera)
        count = self._check_count(count)
        if count is None:
            return False
        now = self.clock()
        ts = self._check_time(ts, now)
        if ts is None:
            return False
        names = self._check_triggers(triggers)
        if names is None:
            return False
        slot = int(ts // SLOT_SECONDS)
        if slot * SLOT_SECONDS < self.refuse_before:
            self.refusals.add("outbox_reset", "slot %d began before the outbox was reset" % (slot * SLOT_SECONDS))
            return False
        if slot == int(now // SLOT_SECONDS):
            cell = self._hot.get(camera)
            if cell is not None and cell[_SLOT] != slot:
                self._fold(cell)
                cell = None
            if cell is None:
                cell = [slot * SLOT_SECONDS, 0.0, 0, 0, {}, col, slot]
                self._hot[camera] = cell
                self._claim(slot)
            cell[_HI] = min((slot + 1) * SLOT_SECONDS, now + self.max_future)
            if count > cell[_PEAK]:
                cell[_PEAK] = count
            cell[_EVENTS] += 1
            tc = cell[_TRIG]
            for t in names:
                tc[t] = tc.get(t, 0) + 1
            return True
        row = self._claim(slot)
        if row is None:
            self.refusals.add("too_old", "slot %d is older than this clock's window" % (slot * SLOT_SECONDS))
            return False
        if count > self._peak[row, col]:
            self._peak[row, col] = count
        self._events[row, col] += 1
        for t in names:
            self._trig[row, col, self._triggers[t]] += 1
        self._dirty[row, col] = True
        self.accepted += 1
        return True

    def record_batch(self, cameras: Any, counts: Any, timestamps: Any = None,
                     triggers: Any = None, codes: Any = None) -> int:
        """Count many events from arrays; returns how many were accepted.

        ``cameras`` is one name for all events, a sequence of names (one per event), or,
        with ``codes`` (integer array, one per event), the list of names the codes index.
        ``timestamps``: Unix seconds per event (None = now). ``triggers``: a mapping of
        trigger name -> per-event occurrence counts, or a sequence of name lists per event.
        """
        counts = np.asarray(counts)
        n = counts.shape[0] if counts.ndim == 1 else -1
        if n < 0:
            self.refusals.add("bad_count", "counts must be a 1-d array")
            return 0
        if n == 0:
            return 0
        with self.lock:
            now = self.clock()
            ts = _batch.timestamps(timestamps, n, now, self.refusals)
            if ts is None:
                return 0
            cols = _batch.columns(cameras, codes, n, self._camera_column, self.refusals)
            if cols is None or ts.shape != (n,):
                if ts.shape != (n,):
                    self.refusals.add("bad_timestamp", "timestamps must match counts", n)
                return 0
            valid = _batch.check(counts, ts, cols, now - self.retention, now + self.max_future,
                                 self.refuse_before, self.refusals)
            if valid is None:
                return 0
            accepted = int(np.count_nonzero(valid))
            if accepted == 0:
                return 0
            if accepted < n:
                ts, counts, cols = ts[valid], counts[valid], cols[valid]
            slots = (ts // SLOT_SECONDS).astype(np.int64)
            for s in _batch.slots_touched(slots):
                if self._claim(s) is None:
                    self.refusals.add("too_old", "batch slot older than this clock's window")
                    return 0  # only a clock stepped back gets here; refuse rather than clobber
            flat = (slots % self.rows) * self._ccap + cols
            _batch.add(self._peak, self._events, self._dirty, flat, counts)
            if triggers is not None:
                found = _batch.trigger_counts(triggers, n, valid if accepted < n else None,
                                              self._trigger_index, self._check_triggers, self.refusals)
                _batch.add_triggers(self._trig, flat, found)  # after any growth of the trigger axis
            for c in np.unique(cols).tolist():
                self._watched(self._camera_names[c])
            self.accepted += accepted
            return accepted

    def collect(self, limit: Optional[int] = None, fold: bool = True) -> List[SlotValues]:
        """Fold hot cells in and return slots changed since they were last collected.

        With ``limit``, at most that many; the rest stay marked for the next call. With
        ``fold=False`` hot cells are left alone: the further chunks of one commit then drain
        what was changed at its first call, however fast events keep coming.
        """
        with self.lock:
            now = self.clock()
            current = int(now // SLOT_SECONDS)
            for camera, cell in list(self._hot.items()) if fold else ():
                self._fold(cell)
                if cell[_SLOT] != current:
                    del self._hot[camera]
                else:
                    cell[_HI] = min((current + 1) * SLOT_SECONDS, now + self.max_future)
            ncam = len(self._camera_names)
            rows, cols = np.nonzero(self._dirty[:, :ncam])
            if limit is not None:
                rows, cols = rows[:limit], cols[:limit]
            out: List[SlotValues] = []
            for row, col in zip(rows.tolist(), cols.tolist()):
                trig = self._trig[row, col]
                nz = np.nonzero(trig)[0].tolist()
                out.append((
                    self._camera_names[col],
                    int(self._row_slot[row]) * SLOT_SECONDS,
                    int(self._peak[row, col]),
                    min(int(self._events[row, col]), MAX_COUNT),
                    {self._trigger_names[i]: int(trig[i]) for i in nz},
                ))
            self._dirty[rows, cols] = False
            return out

    def redirty(self, changes: Iterable[SlotValues]) -> None:
        """Mark collected slots changed again (their commit failed), so the next one retries."""
        with self.lock:
            for camera, slot_start, _peak, _events, _trig in changes:
                slot = slot_start // SLOT_SECONDS
                row = slot % self.rows
                col = self._cameras.get(camera)
                if col is not None and self._row_slot[row] == slot:
                    self._dirty[row, col] = True

    def restore(self, states: Iterable[SlotValues]) -> int:
        """Load committed states (absolute values) so counting continues on top of them."""
        n = 0
        limits = (self.max_cameras, self.max_triggers)
        with self.lock:
            lower = int((self.clock() - self.retention) // SLOT_SECONDS)
            for camera, slot_start, peak, events, trig in states:
                slot = slot_start // SLOT_SECONDS
                if slot < lower:
                    continue
                # Limits lowered since these states were committed grow to fit them: a
                # dropped camera or trigger would vanish from the next, higher revision.
                if camera not in self._cameras and len(self._camera_names) >= self.max_cameras:
                    self.max_cameras = len(self._camera_names) + 1
                col = self._camera_column(camera)
                if col is None:
                    continue
                row = self._claim(slot)
                if row is None:
                    continue
                self._peak[row, col] = peak
                self._events[row, col] = events
                for name, value in trig.items():
                    if name not in self._triggers and len(self._trigger_names) >= self.max_triggers:
                        self.max_triggers = len(self._trigger_names) + 1
                    idx = self._trigger_index(name)
                    if idx is not None:
                        self._trig[row, col, idx] = value
                n += 1
        if (self.max_cameras, self.max_triggers) != limits:
            log.warning("the outbox holds more cameras or triggers than configured: limits raised "
                        "to max_cameras=%d, max_triggers=%d (from %d, %d)",
                        self.max_cameras, self.max_triggers, limits[0], limits[1])
        return n

    def watching(self) -> bool:
        """Whether view() has a camera to look at (read without the lock: a camera added
        meanwhile also calls on_watch)."""
        return bool(self._watch)

    def view(self, slot_start: int) -> List[Tuple[str, int, int, Dict[str, int]]]:
        """(camera, peak, previous slot's peak, {trigger: count}) in slot ``slot_start``, hot
        cells included, of the cameras whose peak rose or that counted a trigger since the
        last call (all of them the first time): what priority publishing compares."""
        slot = slot_start // SLOT_SECONDS
        with self.lock:
            watch, self._watch = self._watch, set()
            row, prev = slot % self.rows, (slot - 1) % self.rows
            here = self._row_slot[row] == slot
            before = self._row_slot[prev] == slot - 1
            out = []
            for camera in watch:
                col = self._cameras.get(camera)
                if col is None:
                    continue
                cell = self._hot.get(camera)
                if cell is not None and (cell[_SLOT] != slot or not cell[_EVENTS]):
                    cell = None
                if (not here or not self._events[row, col]) and cell is None:
                    continue
                peak, counts = 0, {}
                if here:
                    peak = int(self._peak[row, col])
                    trig = self._trig[row, col]
                    counts = {self._trigger_names[i]: int(trig[i]) for i in np.flatnonzero(trig).tolist()}
                if cell is not None:
                    peak = max(peak, cell[_PEAK])
                    for name, n in cell[_TRIG].items():
                        if n:
                            counts[name] = counts.get(name, 0) + n
                out.append((camera, peak, int(self._peak[prev, col]) if before else 0, counts))
            return out

    def cameras(self) -> List[str]:
        with self.lock:
            return list(self._camera_names)

    def nbytes(self) -> int:
        return int(self._peak.nbytes + self._events.nbytes + self._trig.nbytes + self._dirty.nbytes)

    # -- helpers (lock held) -------------------------------------------------------------

    def _watched(self, camera: Any) -> None:
        if self._watch:
            self._watch.add(camera)
            return
        # Added before the signal: a loop woken by it, or one that checks watching() after
        # clearing its wake-up, sees the camera.
        self._watch.add(camera)
        if self.on_watch is not None:
            self.on_watch()

    def _fold(self, cell: list) -> None:
        if not cell[_EVENTS]:
            return
        row = self._claim(cell[_SLOT])
        col = cell[_COL]
        if row is not None:
            if cell[_PEAK] > self._peak[row, col]:
                self._peak[row, col] = cell[_PEAK]
            self._events[row, col] += cell[_EVENTS]
            tc = cell[_TRIG]
            for name, value in tc.items():
                if value:
                    self._trig[row, col, self._triggers[name]] += value
                    tc[name] = 0
            self._dirty[row, col] = True
        self.accepted += cell[_EVENTS]
        # The peak stays: folding a max again changes nothing, and record() then sees a
        # rise only when the slot's peak really rises (what priority publishing watches).
        cell[_EVENTS] = 0

    def _claim(self, slot: int) -> Optional[int]:
        """The ring row of ``slot``, cleared if it held an older slot; None if it holds a newer one."""
        row = slot % self.rows
        held = self._row_slot[row]
        if held != slot:
            if held > slot:
                return None
            self._peak[row] = 0
            self._events[row] = 0
            self._trig[row] = 0
            self._dirty[row] = False
            self._row_slot[row] = slot
        return row

    def _camera_column(self, camera: Any, n: int = 1) -> Optional[int]:
        col = self._cameras.get(camera) if isinstance(camera, str) else None
        if col is not None:
            return col
        if not is_valid_name(camera):
            self.refusals.add("bad_camera", "camera %r" % (str(camera)[:70],), n)
            return None
        if len(self._camera_names) >= self.max_cameras:
            self.refusals.add("too_many_cameras", "camera %r beyond max_cameras=%d" % (camera, self.max_cameras), n)
            return None
        col = len(self._camera_names)
        if col >= self._ccap:
            self._alloc(min(self._ccap * 2, self.max_cameras), self._tcap)
        self._cameras[camera] = col
        self._camera_names.append(camera)
        return col

    def _trigger_index(self, name: str) -> Optional[int]:
        idx = self._triggers.get(name)
        if idx is not None:
            return idx
        if not is_valid_name(name) or name in RESERVED_TRIGGERS:
            self.refusals.add("bad_triggers", "trigger %r" % (str(name)[:70],))
            return None
        if len(self._trigger_names) >= self.max_triggers:
            self.refusals.add("too_many_triggers", "trigger %r beyond max_triggers=%d" % (name, self.max_triggers))
            return None
        idx = len(self._trigger_names)
        if idx >= self._tcap:
            self._alloc(self._ccap, min(self._tcap * 2, self.max_triggers))
        self._triggers[name] = idx
        self._trigger_names.append(name)
        return idx

    def _check_count(self, count: Any) -> Optional[int]:
        if isinstance(count, (int, np.integer)) and not isinstance(count, bool):
            value = int(count)
        elif isinstance(count, (float, np.floating)) and float(count).is_integer():
            value = int(count)
        else:
            self.refusals.add("bad_count", "people_count %r" % (count,))
            return None
        if not 0 <= value <= MAX_PEOPLE:
            self.refusals.add("bad_count", "people_count %r outside 0..%d" % (value, MAX_PEOPLE))
            return None
        return value

    def _check_time(self, ts: Any, now: float) -> Optional[float]:
        try:
            if isinstance(ts, (str, bool)):
                value = parse_time(ts)
            elif isinstance(ts, (int, float, np.integer, np.floating)):
                value = parse_time(ts if isinstance(ts, (int, float)) else float(ts))
            else:
                raise EventError("must be Unix seconds or ISO 8601", field="timestamp")
        except EventError as exc:
            self.refusals.add("bad_timestamp", str(exc))
            return None
        if value < now - self.retention:
            self.refusals.add("too_old", "timestamp %.0f is before the %.1f-day window" % (value, self.retention / 86400))
            return None
        if value > now + self.max_future:
            self.refusals.add("future", "timestamp %.0f is %.0f s ahead" % (value, value - now))
            return None
        return value

    def _check_triggers(self, triggers: Any) -> Optional[Tuple[str, ...]]:
        if triggers is None:
            return ()
        # A mapping such as {"LOITERING": 5} is refused, not read as its keys: the column is
        # Array(String), and shared/events.py refuses it the same way.
        if isinstance(triggers, (str, bytes, Mapping)) or not isinstance(triggers, Iterable):
            self.refusals.add("bad_triggers", "triggers must be a list of names")
            return None
        names = tuple(triggers)
        if len(names) > MAX_EVENT_TRIGGERS:
            self.refusals.add("bad_triggers", "more than %d triggers" % MAX_EVENT_TRIGGERS)
            return None
        for t in names:
            if not isinstance(t, str):
                self.refusals.add("bad_triggers", "trigger %r" % (t,))
                return None
            if t not in self._triggers and self._trigger_index(t) is None:
                return None
        return names

    def _alloc(self, ccap: int, tcap: int) -> None:
        peak = np.zeros((self.rows, ccap), dtype=np.uint16)
        events = np.zeros((self.rows, ccap), dtype=np.uint32)
        trig = np.zeros((self.rows, ccap, tcap), dtype=np.uint32)
        dirty = np.zeros((self.rows, ccap), dtype=bool)
        if hasattr(self, "_peak"):
            c, t = self._ccap, self._tcap
            peak[:, :c] = self._peak
            events[:, :c] = self._events
            trig[:, :c, :t] = self._trig
            dirty[:, :c] = self._dirty
        self._peak, self._events, self._trig, self._dirty = peak, events, trig, dirty
        self._ccap, self._tcap = ccap, tcap
