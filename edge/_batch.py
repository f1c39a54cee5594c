"""The batch call of the slot buffers: many events from numpy arrays in a few ufunc calls.

Kept apart from ``buffers.py`` because it is its own path: validation by masks, one
``np.maximum.at`` for the peaks, one ``np.bincount`` (or ``np.add.at`` for small batches)
for the event counts, one ``np.add.at`` per trigger. It works on the arrays and helpers of
:class:`edge.buffers.SlotBuffers`, which mixes it in.
"""

from __future__ import annotations

from typing import Any, Mapping, Optional

import numpy as np

from shared.events import MAX_PEOPLE
from shared.slots import MAX_TIMESTAMP, MIN_TIMESTAMP, SLOT_SECONDS

__all__ = ["BatchMixin"]


class BatchMixin:
    """``record_batch`` for SlotBuffers (uses its lock, ring, columns and refusals)."""

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
            try:
                ts = np.full(n, now) if timestamps is None else np.asarray(timestamps, dtype=np.float64)
            except (OverflowError, ValueError, TypeError):  # a 400-digit int, a word, a mapping
                self.refusals.add("bad_timestamp", "timestamps must be Unix seconds", n)
                return 0
            cols = self._batch_columns(cameras, codes, n)
            if cols is None or ts.shape != (n,):
                if ts.shape != (n,):
                    self.refusals.add("bad_timestamp", "timestamps must match counts", n)
                return 0
            good_count = (counts >= 0) & (counts <= MAX_PEOPLE)
            if counts.dtype.kind == "f":
                good_count &= np.floor(counts) == counts
            elif counts.dtype.kind not in "iu":
                self.refusals.add("bad_count", "counts must be numbers", n)
                return 0
            lower = now - self.retention
            ok = good_count & (cols >= 0)
            in_range = (ts >= MIN_TIMESTAMP) & (ts < MAX_TIMESTAMP)  # False for NaN
            old = ts < lower
            future = ts > now + self.max_future
            valid = ok & in_range & ~old & ~future
            if self.refuse_before:
                reset = valid & ((ts // SLOT_SECONDS) * SLOT_SECONDS < self.refuse_before)
                k = int(np.count_nonzero(reset))
                if k:
                    self.refusals.add("outbox_reset", "in a batch: slots that began before the outbox was reset", k)
                    valid &= ~reset
            accepted = int(np.count_nonzero(valid))
            if accepted < n:
                self._count_batch_refusals(good_count, cols, in_range, old, future)
            if accepted == 0:
                return 0
            if accepted < n:
                ts, counts, cols = ts[valid], counts[valid], cols[valid]
            slots = (ts // SLOT_SECONDS).astype(np.int64)
            lo, hi = int(slots.min()), int(slots.max())
            for s in (range(lo, hi + 1) if hi - lo < 64 else np.unique(slots).tolist()):
                if self._claim(s) is None:
                    self.refusals.add("too_old", "batch slot older than this clock's window")
                    return 0  # only a clock stepped back gets here; refuse rather than clobber
            flat = (slots % self.rows) * self._ccap + cols
            np.maximum.at(self._peak.reshape(-1), flat, counts.astype(np.uint16))
            if accepted * 8 > self._events.size:
                self._events.reshape(-1)[:] += np.bincount(flat, minlength=self._events.size).astype(np.uint32)
            else:
                np.add.at(self._events.reshape(-1), flat, 1)
            self._dirty.reshape(-1)[flat] = True
            if triggers is not None:
                self._batch_triggers(triggers, flat, valid if accepted < n else None, n)
            self._watch.update(self._camera_names[c] for c in np.unique(cols).tolist())
            self.accepted += accepted
            return accepted

    def _batch_columns(self, cameras: Any, codes: Any, n: int) -> Optional[np.ndarray]:
        if isinstance(cameras, str):
            col = self._camera_column(cameras, n)
            return None if col is None else np.full(n, col, dtype=np.int64)
        if codes is not None:
            table = np.array([self._camera_column(c) for c in cameras] + [-1], dtype=np.int64)
            codes = np.asarray(codes)
            if codes.shape != (n,) or codes.dtype.kind not in "iu":
                self.refusals.add("bad_camera", "codes must be an integer array like counts", n)
                return None
            codes = np.where((codes >= 0) & (codes < len(table) - 1), codes, len(table) - 1)
            return table[codes]
        names = np.asarray(cameras)
        if names.shape != (n,):
            self.refusals.add("bad_camera", "cameras must be one name or one per event", n)
            return None
        uniq, inverse = np.unique(names, return_inverse=True)
        table = np.array([self._camera_column(str(c)) for c in uniq.tolist()], dtype=object)
        return np.array([-1 if c is None else c for c in table], dtype=np.int64)[inverse.reshape(-1)]

    def _count_batch_refusals(self, good_count: np.ndarray, cols: np.ndarray, in_range: np.ndarray,
                              old: np.ndarray, future: np.ndarray) -> None:
        # Camera refusals were counted when the names were looked up.
        for reason, mask in (("bad_count", ~good_count & (cols >= 0)),
                             ("bad_timestamp", good_count & (cols >= 0) & ~in_range),
                             ("too_old", good_count & (cols >= 0) & in_range & old),
                             ("future", good_count & (cols >= 0) & in_range & future)):
            k = int(np.count_nonzero(mask))
            if k:
                self.refusals.add(reason, "in a batch", k)

    def _batch_triggers(self, triggers: Any, flat: np.ndarray, valid: Optional[np.ndarray], n: int) -> None:
        tcap = self._tcap
        if isinstance(triggers, Mapping):
            for name, per_event in triggers.items():
                values = np.asarray(per_event)
                if values.shape != (n,) or values.dtype.kind not in "iub" or (values.dtype.kind == "i" and values.min() < 0):
                    self.refusals.add("bad_triggers", "trigger %r counts must be like counts" % (name,))
                    continue
                idx = self._trigger_index(name)
                if idx is None:
                    continue
                tcap = self._tcap  # may have grown; flat indexes rows and cameras only
                if valid is not None:
                    values = values[valid]
                nz = values > 0
                np.add.at(self._trig.reshape(-1), flat[nz] * tcap + idx, values[nz].astype(np.uint32))
            return
        per_event = list(triggers)
        if len(per_event) != n:
            self.refusals.add("bad_triggers", "one trigger list per event expected")
            return
        if valid is not None:
            per_event = [t for t, keep in zip(per_event, valid.tolist()) if keep]
        checked = [self._check_triggers(names or ()) or () for names in per_event]
        trig, tcap = self._trig.reshape(-1), self._tcap  # after any growth above
        for f, names in zip(flat.tolist(), checked):
            for t in names:
                trig[f * tcap + self._triggers[t]] += 1
