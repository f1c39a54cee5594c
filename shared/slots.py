"""Fifteen-minute slot arithmetic, aligned to UTC.

Aggregates are kept per 15-minute slot. A slot is named by its start as whole Unix seconds
(always a multiple of :data:`SLOT_SECONDS`). Every real time-zone offset is a multiple of
15 minutes, so any site's local hour or day is an exact union of slots; the zone logic
itself lives on central (zoneinfo needs Python 3.9).
"""

from __future__ import annotations

import math

from .exceptions import TimeRangeError

__all__ = [
    "SLOT_SECONDS",
    "SLOTS_PER_DAY",
    "MIN_TIMESTAMP",
    "MAX_TIMESTAMP",
    "check_timestamp",
    "slot_of",
    "slot_index",
    "slot_start",
    "slots_between",
    "is_slot_start",
]

SLOT_SECONDS = 900
SLOTS_PER_DAY = 96

#: 2000-01-01T00:00:00Z. Older timestamps are a broken clock, not history.
MIN_TIMESTAMP = 946_684_800
#: 2100-01-01T00:00:00Z (exclusive). Keeps every slot start inside DateTime and a double.
MAX_TIMESTAMP = 4_102_444_800


def check_timestamp(ts: float, field: str = "timestamp") -> float:
    """Return ``ts`` if it is a finite number in [MIN_TIMESTAMP, MAX_TIMESTAMP)."""
    # bool is an int subclass; True is not a time.
    if isinstance(ts, bool) or not isinstance(ts, (int, float)):
        raise TimeRangeError("must be a number of Unix seconds", field=field, code="bad_type")
    if not math.isfinite(ts):
        raise TimeRangeError("must be finite", field=field)
    if not MIN_TIMESTAMP <= ts < MAX_TIMESTAMP:
        raise TimeRangeError(
            "%r is outside 2000-01-01..2100-01-01 (Unix seconds expected)" % (ts,), field=field
        )
    return ts


def slot_index(ts: float) -> int:
    """Number of whole slots between the epoch and ``ts``."""
    return int(check_timestamp(ts) // SLOT_SECONDS)


def slot_of(ts: float) -> int:
    """Start (Unix seconds) of the slot holding ``ts``; a slot start maps to itself."""
    return slot_index(ts) * SLOT_SECONDS


def slot_start(index: int) -> int:
    """Start (Unix seconds) of slot number ``index``."""
    return check_timestamp(int(index) * SLOT_SECONDS, field="slot")


def is_slot_start(value: object) -> bool:
    """True for an int that is a valid slot start."""
    return (
        isinstance(value, int)
        and not isinstance(value, bool)
        and MIN_TIMESTAMP <= value < MAX_TIMESTAMP
        and value % SLOT_SECONDS == 0
    )


def slots_between(start: float, end: float) -> range:
    """Starts of the slots that intersect the half-open interval [start, end).

    An empty interval gives an empty range. ``end`` may equal MAX_TIMESTAMP.
    """
    check_timestamp(start, field="start")
    if isinstance(end, bool) or not isinstance(end, (int, float)) or not math.isfinite(end):
        raise TimeRangeError("must be a finite number of Unix seconds", field="end")
    if not MIN_TIMESTAMP <= end <= MAX_TIMESTAMP:
        raise TimeRangeError("%r is outside 2000-01-01..2100-01-01" % (end,), field="end")
    first = slot_of(start)
    if end <= start:
        return range(first, first)
    last = math.ceil(end / SLOT_SECONDS) * SLOT_SECONDS
    return range(first, last, SLOT_SECONDS)
