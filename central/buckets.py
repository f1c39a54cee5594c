"""Local-time buckets over 15-minute UTC slots: each bucket kind's key in SQL, and the same
buckets enumerated in Python with zoneinfo (their starts, ends and local labels).

A slot's *local seconds* are its Unix time plus its zone's UTC offset at that instant
(``timeZoneOffset`` in ClickHouse, ``utcoffset`` in zoneinfo). Every offset since 1970 is a
multiple of 15 minutes, so every bucket is a union of whole slots. Keys:

* ``hour``: the local hour *and* the offset, so a fall-back day's repeated hour is two
  buckets (one per offset), a spring-forward day's skipped hour none, and Chatham's
  45-minute-offset transition splits where the clock does;
* ``day``: the local calendar day (days since 1970-01-01);
* ``week``: the ISO week, Monday local (1970-01-01 was a Thursday, hence ``+ 3``);
* ``slot``: the slot itself.

SQL and Python compute the same integer keys, so a statement can bucket in ClickHouse and
Python can place the rows in the full list of buckets (empty ones included).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import date, datetime, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from shared.slots import SLOT_SECONDS

from .sites import local_day

__all__ = ["KINDS", "Bucket", "key_sql", "OFFSET_SQL", "enumerate_buckets", "local_iso", "day_offsets", "hour_key",
           "EPOCH"]

KINDS = ("slot", "hour", "day", "week")
EPOCH = date(1970, 1, 1)

#: The offset of the slot's instant in the site's zone (parameter ``tz``); the bucket key
#: expressions below read it as ``off``.
OFFSET_SQL = "timeZoneOffset(toDateTime(slot, {tz:String}))"

_KEY_SQL = {
    "slot": "toInt64(slot)",
    # Hour and offset packed in one integer: offsets are whole quarter hours within +-14 h.
    "hour": "intDiv(toInt64(slot) + off, 3600) * 128 + intDiv(off, %d)" % SLOT_SECONDS,
    "day": "intDiv(toInt64(slot) + off, 86400)",
    "week": "intDiv(intDiv(toInt64(slot) + off, 86400) + 3, 7)",
}


def key_sql(kind: str) -> str:
    """The bucket key of a row with columns ``slot`` (Unix seconds) and ``off`` (seconds)."""
    return _KEY_SQL[kind]


class Bucket(NamedTuple):  # a tuple: a month of hours is made per request
    key: int
    start: int  # Unix seconds, the bucket's first instant within the range
    end: int
    label: str  # the start in local time, ISO 8601 with its offset


def local_iso(ts: int, tz: ZoneInfo) -> str:
    return datetime.fromtimestamp(ts, tz).isoformat()


def hour_key(local_hours: int, off: int) -> int:
    """The ``hour`` bucket key (as :func:`key_sql` computes it) of the local hour
    ``local_hours`` (hours since 1970-01-01 on the local clock) at UTC offset ``off``."""
    return local_hours * 128 + off // SLOT_SECONDS


def _offset(ts: int, tz: ZoneInfo) -> int:
    return int(datetime.fromtimestamp(ts, tz).utcoffset().total_seconds())  # type: ignore[union-attr]


def day_offsets(tz: ZoneInfo, start: int, end: int) -> tuple[int, int, int]:
    """(offset at the start, instant of the change or ``end``, offset after it) of the local
    day [start, end): at most one clock change a day, always at a slot boundary, found by
    bisection (a zoneinfo lookup per slot costs more than a month of hour buckets)."""
    first, last = _offset(start, tz), _offset(end - SLOT_SECONDS, tz)
    if first == last:
        return first, end, last
    lo, hi = start // SLOT_SECONDS, (end - SLOT_SECONDS) // SLOT_SECONDS  # offset(lo) == first
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if _offset(mid * SLOT_SECONDS, tz) == first:
            lo = mid
        else:
            hi = mid
    return first, hi * SLOT_SECONDS, last


def _day_pieces(tz: ZoneInfo, start: int, end: int) -> Iterator[tuple[int, int, int]]:
    """(from, to, offset) pieces of the local day [start, end)."""
    first, switch, last = day_offsets(tz, start, end)
    yield start, switch, first
    if switch < end:
        yield switch, end, last


_ISO = "%Y-%m-%dT%H:%M:%S"


def _suffix(off: int) -> str:
    """The ISO 8601 form of a UTC offset (whole minutes): ``+05:45``."""
    sign, rest = ("-", -off) if off < 0 else ("+", off)
    return "%s%02d:%02d" % (sign, rest // 3600, rest % 3600 // 60)


def enumerate_buckets(tz: ZoneInfo, first: date, last: date, kind: str) -> list[Bucket]:
    """Every bucket of ``kind`` over the local days ``first``..``last`` (inclusive), in order.

    A week that begins before ``first`` or ends after ``last`` holds only the days in range;
    its label is still its Monday.
    """
    out: list[Bucket] = []
    if kind in ("slot", "hour"):
        step = SLOT_SECONDS if kind == "slot" else 3600
        day = first
        while day <= last:
            for start, end, off in _day_pieces(tz, *local_day(day, tz)):
                suffix = _suffix(off)
                ts = start
                while ts < end:  # to the next local slot or hour boundary, or the piece's end
                    until = min(end, ts + step - (ts + off) % step)
                    key = ts if kind == "slot" else hour_key((ts + off) // 3600, off)
                    if out and out[-1].key == key:
                        prev = out[-1]
                        out[-1] = Bucket(key, prev.start, until, prev.label)
                    else:
                        out.append(Bucket(key, ts, until, time.strftime(_ISO, time.gmtime(ts + off)) + suffix))
                    ts = until
            day += timedelta(days=1)
        return out
    day = first
    while day <= last:
        start, end = local_day(day, tz)
        number = (day - EPOCH).days
        if kind == "day":
            out.append(Bucket(number, start, end, local_iso(start, tz)))
        else:
            key = (number + 3) // 7
            if out and out[-1].key == key:
                prev = out[-1]
                out[-1] = Bucket(key, prev.start, end, prev.label)
            else:
                monday = day - timedelta(days=day.weekday())
                out.append(Bucket(key, start, end, local_iso(local_day(monday, tz)[0], tz)))
        day += timedelta(days=1)
    return out
