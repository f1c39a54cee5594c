"""Hour and slot buckets against zoneinfo asked slot by slot, on zones whose clocks move by
an hour, half an hour (Lord Howe), twice in a month (Casablanca around Ramadan), or not."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from zoneinfo import ZoneInfo

from central.buckets import enumerate_buckets
from central.sites import local_day


def brute(tz: ZoneInfo, first: date, last: date, kind: str) -> list[tuple[int, int, int, str]]:
    out: list[list] = []
    lo, hi = local_day(first, tz)[0], local_day(last, tz)[1]
    for ts in range(lo, hi, 900):
        local = datetime.fromtimestamp(ts, tz)
        off = int(local.utcoffset().total_seconds())
        key = ts if kind == "slot" else ((ts + off) // 3600) * 128 + off // 900
        if out and out[-1][0] == key:
            out[-1][2] = ts + 900
        else:
            out.append([key, ts, ts + 900, local.isoformat()])
    return [tuple(b) for b in out]


@pytest.mark.parametrize("zone", ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu",
                                  "Pacific/Chatham", "Australia/Lord_Howe", "Africa/Casablanca",
                                  "America/St_Johns"])
@pytest.mark.parametrize("kind", ["hour", "slot"])
def test_buckets_match_zoneinfo_slot_by_slot(zone, kind):
    tz = ZoneInfo(zone)
    for first, last in ((date(2026, 2, 10), date(2026, 4, 12)), (date(2026, 9, 20), date(2026, 11, 5))):
        got = [(b.key, b.start, b.end, b.label) for b in enumerate_buckets(tz, first, last, kind)]
        assert got == brute(tz, first, last, kind)
