"""The batch path of the slot buffers as plain functions over numpy arrays.

:meth:`edge.buffers.SlotBuffers.record_batch` holds its lock and calls these in order:
:func:`timestamps` and :func:`columns` turn the arguments into arrays, :func:`check`
finds the valid events by masks (counting the others), :func:`add` writes peaks (one
``np.maximum.at``), event counts (one ``np.bincount``, or ``np.add.at`` for a small batch)
and dirty marks, and :func:`trigger_counts` / :func:`add_triggers` the trigger counts.
Nothing here holds state: the arrays, the camera and trigger lookups and the refusal
counter are passed in.
"""

from __future__ import annotations

from typing import Any, Callable, List, Mapping, Optional, Tuple

import numpy as np

from shared.events import MAX_PEOPLE
from shared.slots import MAX_TIMESTAMP, MIN_TIMESTAMP, SLOT_SECONDS

from .refusals import Refusals

__all__ = ["add", "add_triggers", "check", "columns", "slots_touched", "timestamps", "trigger_counts"]

#: (event positions among the accepted, trigger index, occurrences), one entry per count.
TriggerCounts = Tuple[np.ndarray, np.ndarray, np.ndarray]


def timestamps(given: Any, n: int, now: float, refusals: Refusals) -> Optional[np.ndarray]:
    """``given`` as float seconds (None = ``now`` for all); None (counted) if not numbers."""
    try:
        return np.full(n, now) if given is None else np.asarray(given, dtype=np.float64)
    except (OverflowError, ValueError, TypeError):  # a 400-digit int, a word, a mapping
        refusals.add("bad_timestamp", "timestamps must be Unix seconds", n)
        return None


def columns(cameras: Any, codes: Any, n: int, column: Callable[..., Optional[int]],
            refusals: Refusals) -> Optional[np.ndarray]:
    """The camera column of each event (-1 for a refused name); None if the shapes are wrong.

    ``column(name, n)`` looks a camera up (adding it), counting ``n`` refusals if it is bad.
    """
    if isinstance(cameras, str):
        col = column(cameras, n)
        return None if col is None else np.full(n, col, dtype=np.int64)
    if codes is not None:
        table = np.array([column(c) for c in cameras] + [-1], dtype=np.int64)
        codes = np.asarray(codes)
        if codes.shape != (n,) or codes.dtype.kind not in "iu":
            refusals.add("bad_camera", "codes must be an integer array like counts", n)
            return None
        codes = np.where((codes >= 0) & (codes < len(table) - 1), codes, len(table) - 1)
        return table[codes]
    names = np.asarray(cameras)
    if names.shape != (n,):
        refusals.add("bad_camera", "cameras must be one name or one per event", n)
        return None
    uniq, inverse = np.unique(names, return_inverse=True)
    table = np.array([column(str(c)) for c in uniq.tolist()], dtype=object)
    return np.array([-1 if c is None else c for c in table], dtype=np.int64)[inverse.reshape(-1)]


def check(counts: np.ndarray, ts: np.ndarray, cols: np.ndarray, lower: float, upper: float,
          refuse_before: float, refusals: Refusals) -> Optional[np.ndarray]:
    """The mask of valid events (``lower <= ts <= upper``, counts in range, a camera, a slot
    not before ``refuse_before``); the others are counted by reason. None if the counts are
    not numbers at all."""
    n = counts.shape[0]
    good_count = (counts >= 0) & (counts <= MAX_PEOPLE)
    if counts.dtype.kind == "f":
        good_count &= np.floor(counts) == counts
    elif counts.dtype.kind not in "iu":
        refusals.add("bad_count", "counts must be numbers", n)
        return None
    ok = good_count & (cols >= 0)
    in_range = (ts >= MIN_TIMESTAMP) & (ts < MAX_TIMESTAMP)  # False for NaN
    old = ts < lower
    future = ts > upper
    valid = ok & in_range & ~old & ~future
    if refuse_before:
        reset = valid & ((ts // SLOT_SECONDS) * SLOT_SECONDS < refuse_before)
        k = int(np.count_nonzero(reset))
        if k:
            refusals.add("outbox_reset", "in a batch: slots that began before the outbox was reset", k)
            valid &= ~reset
    if np.count_nonzero(valid) < n:
        # Camera refusals were counted when the names were looked up.
        for reason, mask in (("bad_count", ~good_count & (cols >= 0)),
                             ("bad_timestamp", ok & ~in_range),
                             ("too_old", ok & in_range & old),
                             ("future", ok & in_range & future)):
            k = int(np.count_nonzero(mask))
            if k:
                refusals.add(reason, "in a batch", k)
    return valid


def slots_touched(slots: np.ndarray) -> List[int]:
    """The distinct slots of a batch (a range when they are few and close)."""
    lo, hi = int(slots.min()), int(slots.max())
    return list(range(lo, hi + 1)) if hi - lo < 64 else np.unique(slots).tolist()


def add(peak: np.ndarray, events: np.ndarray, dirty: np.ndarray, flat: np.ndarray, counts: np.ndarray) -> None:
    """Fold events at ``flat`` (row * columns + column indexes of the 2-d arrays) in."""
    np.maximum.at(peak.reshape(-1), flat, counts.astype(np.uint16))
    if flat.size * 8 > events.size:
        events.reshape(-1)[:] += np.bincount(flat, minlength=events.size).astype(np.uint32)
    else:
        np.add.at(events.reshape(-1), flat, 1)
    dirty.reshape(-1)[flat] = True


def trigger_counts(triggers: Any, n: int, valid: Optional[np.ndarray], index: Callable[[str], Optional[int]],
                   check_names: Callable[[Any], Optional[Tuple[str, ...]]], refusals: Refusals) -> TriggerCounts:
    """The trigger occurrences of the accepted events (``valid`` selects them from ``n``, None
    = all), from a mapping name -> per-event counts or one name list per event. Looking a
    name up (``index``, ``check_names``) may add it, so the trigger array's shape is read
    after this."""
    pos: List[np.ndarray] = []
    idx: List[np.ndarray] = []
    amount: List[np.ndarray] = []
    if isinstance(triggers, Mapping):
        for name, per_event in triggers.items():
            values = np.asarray(per_event)
            if values.shape != (n,) or values.dtype.kind not in "iub" or (values.dtype.kind == "i" and values.min() < 0):
                refusals.add("bad_triggers", "trigger %r counts must be like counts" % (name,))
                continue
            i = index(name)
            if i is None:
                continue
            if valid is not None:
                values = values[valid]
            nz = np.flatnonzero(values > 0)
            pos.append(nz)
            idx.append(np.full(nz.size, i, dtype=np.int64))
            amount.append(values[nz].astype(np.uint32))
    else:
        per_event = list(triggers)
        if len(per_event) != n:
            refusals.add("bad_triggers", "one trigger list per event expected")
        else:
            if valid is not None:
                per_event = [t for t, keep in zip(per_event, valid.tolist()) if keep]
            checked = [check_names(names or ()) or () for names in per_event]
            looked = [(p, index(t)) for p, names in enumerate(checked) for t in names]
            if looked:
                pos.append(np.array([p for p, _ in looked], dtype=np.int64))
                idx.append(np.array([i for _, i in looked], dtype=np.int64))
                amount.append(np.ones(len(looked), dtype=np.uint32))
    if not pos:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty, np.zeros(0, dtype=np.uint32)
    return np.concatenate(pos), np.concatenate(idx), np.concatenate(amount)


def add_triggers(trig: np.ndarray, flat: np.ndarray, counts: TriggerCounts) -> None:
    """Add :func:`trigger_counts` to ``trig`` (rows x columns x triggers) at ``flat``."""
    pos, idx, amount = counts
    if pos.size:
        np.add.at(trig.reshape(-1), flat[pos] * trig.shape[2] + idx, amount)
