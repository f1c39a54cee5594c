"""GET /api/v1/typical/{site} against an independent oracle: raw events and device contact
written as central receives them, the oracle buckets them one slot at a time with zoneinfo
and takes nearest-rank percentiles itself. A clock-change week (London), a +5:45 site
(Kathmandu), an offline day that must not count as zero, and a raw-only site. All dates
are fixed.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta, timezone

import pytest
from zoneinfo import ZoneInfo

from central.typical import nearest_rank
from tests.central._oracle import local_bounds
from tests.central._range import get, range_app
from tests.central.conftest import services

SLOT = 900


@pytest.fixture
async def client(make_client, tmp_path, answers_mode):
    client = await range_app(make_client, tmp_path)
    assert services(client).slots.answers is (answers_mode == "kept")
    return client


def percentile(values: list[int], p: int) -> int:
    """Nearest rank, by integers: the value at rank ceil(p * n / 100)."""
    ordered = sorted(values)
    return ordered[max(1, (p * len(ordered) + 99) // 100) - 1]


class Week:
    """One site's raw events and device contact over some local days, and the oracle."""

    def __init__(self, site: str, tz: ZoneInfo, seed: int):
        self.site, self.tz = site, tz
        self.rng = random.Random(seed)
        self.raw: list[dict] = []
        self.heard: set[int] = set()  # slot starts with device contact

    def day(self, d: date, *, offline: bool = False, quiet_hours=(), devices: bool = True, n: int = 120) -> None:
        """Events over local day ``d``; ``offline``: none and no contact; ``quiet_hours``:
        contact but no events in those local hours (nobody there, which counts as 0)."""
        lo, hi = local_bounds(self.tz, d, d)
        if offline:
            return
        for t in range(lo, hi, SLOT):
            if devices and self.rng.random() < 0.9:
                self.heard.add(t)
        for _ in range(n):
            t = self.rng.randrange(lo, hi)
            if datetime.fromtimestamp(t, self.tz).hour in quiet_hours:
                continue
            self.raw.append({"site": self.site, "camera": self.rng.choice("ABC"), "timestamp": t,
                             "people_count": self.rng.randrange(0, 30)})

    def oracle(self, day: date, weeks: int, zone: str = "") -> tuple[list[dict], int]:
        """(hourly entries, weeks_with_data) as the API must answer them."""
        lo, hi = local_bounds(self.tz, day, day)
        hours = sorted({datetime.fromtimestamp(t, self.tz).hour for t in range(lo, hi, SLOT)})
        values: dict[int, list[int]] = {h: [] for h in hours}
        with_data = 0
        raw_only = not self.heard
        for k in range(weeks, 0, -1):
            d = day - timedelta(days=7 * k)
            dlo, dhi = local_bounds(self.tz, d, d)
            peaks: dict[int, int] = {}
            used: set[int] = set()
            for e in self.raw:
                if dlo <= e["timestamp"] < dhi:
                    h = datetime.fromtimestamp(e["timestamp"], self.tz).hour
                    used.add(h)
                    if not zone or e["camera"] == zone:
                        peaks[h] = max(peaks.get(h, 0), e["people_count"])
            for t in range(dlo, dhi, SLOT):
                if t in self.heard:
                    used.add(datetime.fromtimestamp(t, self.tz).hour)
            if raw_only and used:
                used |= {datetime.fromtimestamp(t, self.tz).hour for t in range(dlo, dhi, SLOT)}
            if used:
                with_data += 1
            for h in hours:
                if h in used:
                    values[h].append(peaks.get(h, 0))
        out = []
        for h in hours:
            v = values[h]
            if len(v) < 3:
                out.append({"hour": h, "low": None, "median": None, "high": None, "days": len(v)})
            else:
                out.append({"hour": h, "low": percentile(v, 10), "median": percentile(v, 50),
                            "high": percentile(v, 90), "days": len(v)})
        return out, with_data

    async def load(self, client) -> None:
        for i in range(0, len(self.raw), 5000):
            resp = await client.post("/api/v1/events", json=self.raw[i:i + 5000])
            assert resp.status in (200, 201), await resp.text()
        services(client).store.insert("device_slots", [[self.site, "dev1", datetime.fromtimestamp(t, timezone.utc)]
                                                       for t in sorted(self.heard)],
                                      ["site_name", "device_id", "slot"])


def day_peaks(world: Week, day: date, zone: str = "") -> dict[int, int]:
    lo, hi = local_bounds(world.tz, day, day)
    peaks: dict[int, int] = {}
    for e in world.raw:
        if lo <= e["timestamp"] < hi and (not zone or e["camera"] == zone):
            h = datetime.fromtimestamp(e["timestamp"], world.tz).hour
            peaks[h] = max(peaks.get(h, 0), e["people_count"])
    return peaks


def ratio(want: list[dict], peaks: dict[int, int]) -> float | None:
    banded = [h for h in want if h["median"] is not None]
    if not banded or not sum(h["median"] for h in banded):
        return None
    return round(sum(peaks.get(h["hour"], 0) for h in banded) / sum(h["median"] for h in banded), 4)


def test_nearest_rank():
    assert [nearest_rank(list(range(1, 11)), p) for p in (10, 50, 90, 100)] == [1, 5, 9, 10]
    assert [nearest_rank([3, 7, 9], p) for p in (10, 50, 90)] == [3, 7, 9]
    assert [nearest_rank(sorted([5, 1, 4, 2, 3, 8, 6, 7]), p) for p in (10, 50, 90)] == [1, 4, 8]


CASES = [
    # Sunday 2026-11-01: its 8 weeks hold the fall-back Sunday (Oct 25, hour 1 twice, merged).
    ("LONDON", date(2026, 11, 1), date(2026, 9, 20)),
    # The spring-forward Sunday itself (23 hours: no hour 1), from 8 ordinary Sundays.
    ("LONDON", date(2026, 3, 29), date(2026, 2, 15)),
    ("KATHMANDU", date(2026, 1, 20), date(2025, 12, 2)),  # +5:45
]


@pytest.mark.parametrize(("site", "day", "offline"), CASES)
async def test_typical_matches_the_oracle(client, site, day, offline):
    tz = ZoneInfo(services(client).sites.get(site).timezone)
    world = Week(site, tz, seed=day.toordinal())
    for k in range(0, 9):
        d = day - timedelta(days=7 * k)
        world.day(d, offline=d == offline, quiet_hours=(3, 4) if k == 3 else ())
        world.day(d - timedelta(days=1), n=40)  # other weekdays must not count
    await world.load(client)
    doc = await get(client, "/api/v1/typical/%s?date=%s" % (site, day))
    want, with_data = world.oracle(day, 8)
    assert doc["hourly"] == want
    assert doc["vs_typical"] == ratio(want, day_peaks(world, day)) is not None
    assert doc["weeks_with_data"] == with_data == 7  # the offline day is left out, not zero
    assert all(h["days"] <= 7 for h in doc["hourly"])
    assert doc["date"] == day.isoformat() and doc["weeks"] == 8 and doc["zone"] is None
    assert doc["from"] == (day - timedelta(days=56)).isoformat() and doc["to"] == (day - timedelta(days=7)).isoformat()
    assert len(doc["hourly"]) == (23 if day == date(2026, 3, 29) else 24)
    for cam in "ABC":
        assert doc["zones"][cam] == world.oracle(day, 8, cam)[0], cam
    one = await get(client, "/api/v1/typical/%s?date=%s&zone=B" % (site, day))
    assert one["hourly"] == world.oracle(day, 8, "B")[0] and "zones" not in one and one["zone"] == "B"
    assert one["vs_typical"] == ratio(one["hourly"], day_peaks(world, day, "B"))
    assert "zones_vs_typical" not in one
    assert doc["zones_vs_typical"] == {cam: ratio(world.oracle(day, 8, cam)[0], day_peaks(world, day, cam))
                                       for cam in "ABC"}
    # Two weeks: at most 2 days per hour, so no band.
    short = await get(client, "/api/v1/typical/%s?date=%s&weeks=2" % (site, day))
    assert short["hourly"] == world.oracle(day, 2)[0]
    assert all(h["median"] is None for h in short["hourly"])


async def test_a_raw_only_site_counts_the_days_it_had_data(client):
    tz = ZoneInfo("Asia/Kolkata")
    day = date(2026, 2, 4)
    world = Week("KOLKATA", tz, seed=4)
    for k in range(1, 7):
        world.day(day - timedelta(days=7 * k), devices=False, n=30, offline=k == 2)
    await world.load(client)
    doc = await get(client, "/api/v1/typical/KOLKATA?date=%s&weeks=6" % day)
    want, with_data = world.oracle(day, 6)
    assert doc["hourly"] == want and doc["weeks_with_data"] == with_data == 5
    assert {h["days"] for h in doc["hourly"]} == {5}  # every hour of the 5 days with data


async def test_bad_parameters(client):
    for query, code in [("date=2026-13-01", "bad_date"), ("date=%D9%A2026-01-01", "bad_date"),
                        ("weeks=0", "bad_weeks"), ("weeks=53", "bad_weeks"), ("weeks=%D9%A3", "bad_weeks"),
                        ("weeks=3.0", "bad_weeks"), ("zone=a%20b", "bad_zone")]:
        body = await get(client, "/api/v1/typical/LONDON?%s" % query, status=400)
        assert body["error"]["code"] == code, query
    body = await get(client, "/api/v1/typical/NOWHERE?date=2026-01-01", status=404)
    assert body["error"]["code"] == "unknown_site"


async def test_overview_vs_typical_is_the_day_against_its_band(client):
    """A past day: every hour with a band, the sum of the day's site-wide hourly peaks over
    the sum of the bands' medians; sites without a band have none."""
    site, day = "LONDON", date(2026, 11, 1)
    tz = ZoneInfo("Europe/London")
    world = Week(site, tz, seed=11)
    for k in range(0, 5):
        world.day(day - timedelta(days=7 * k), n=200 if k == 0 else 120)
    await world.load(client)
    want, _ = world.oracle(day, 8)
    expected = ratio(want, day_peaks(world, day))
    assert expected is not None
    doc = await get(client, "/api/v1/overview?date=%s&sort=-vs_typical" % day)
    rows = {r["site_name"]: r for r in doc["sites"]}
    assert rows[site]["vs_typical"] == expected
    assert (await get(client, "/api/v1/typical/%s?date=%s" % (site, day)))["vs_typical"] == expected
    assert rows["KOLKATA"]["vs_typical"] is None
    assert doc["sites"][0]["site_name"] == site  # sorted by it, sites without a band last


async def test_kept_bands_are_dropped_by_a_write_to_their_days_only(client):
    """The alerts' and the overview's bands are kept an hour; a late write to one of the
    days behind a band drops it, a write to another day (today's live feed) does not."""
    from central.state import RANGES

    typical = client.server.app[RANGES].value.typical
    site = services(client).sites.get("LONDON")
    day = date(2026, 11, 4)  # a Wednesday
    tz = ZoneInfo("Europe/London")
    world = Week("LONDON", tz, seed=7)
    for k in range(1, 4):
        world.day(day - timedelta(days=7 * k), devices=False, n=20)
    await world.load(client)
    first = await typical.bands(site, day)
    assert first.weeks_with_data == 3 and await typical.bands(site, day) is first
    other = datetime(2026, 11, 3, 12, tzinfo=tz).timestamp()  # the day before: not behind the band
    resp = await client.post("/api/v1/events", json=[{"site": "LONDON", "camera": "A", "timestamp": other,
                                                      "people_count": 3}])
    assert resp.status == 201
    assert await typical.bands(site, day) is first
    late = datetime(2026, 10, 7, 12, tzinfo=tz).timestamp()  # 4 weeks before: behind the band
    resp = await client.post("/api/v1/events", json=[{"site": "LONDON", "camera": "A", "timestamp": late,
                                                      "people_count": 3}])
    assert resp.status == 201
    again = await typical.bands(site, day)
    assert again is not first and again.weeks_with_data == 4
