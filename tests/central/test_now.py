"""``now`` on today's dashboard: the current slot per zone, its share of capacity, as_of;
absent for other days; a cached answer never outlives its slot. The fold and the cache cap
are checked at fixed instants; the end-to-end test reads the wall clock and is marked
``clock`` (make test-clock runs it again at local midnights and clock changes)."""

from __future__ import annotations

import time
from datetime import date, datetime, timezone

import pytest

from central.now import current_slot, now_block, ttl_cap
from central.sites import Sites
from tests.central._range import SITES, get, range_app


@pytest.fixture
async def client(make_client, tmp_path):
    return await range_app(make_client, tmp_path)


@pytest.fixture
def sites(tmp_path) -> Sites:
    path = tmp_path / "sites.toml"
    path.write_text(SITES)
    return Sites.load(path)


def ts(text: str) -> float:
    return datetime.fromisoformat(text).timestamp()


async def people_now(client, a: int, b: int) -> float:
    """``a`` people in CAP's zone A and ``b`` in B at this instant, through the raw ingest
    API (answered once kept); the instant."""
    now = time.time()
    events = [{"site": "CAP", "camera": camera, "timestamp": now, "people_count": people}
              for camera, people in (("A", a), ("B", b))]
    resp = await client.post("/api/v1/events", json=events)
    assert resp.status == 201, await resp.text()
    return now


def test_the_block_from_the_current_slots_peaks(sites):
    london = sites.get("LONDON")  # zones A (capacity 20) and B (capacity 10)
    slot = int(ts("2026-10-25T01:30:00+00:00"))  # 01:30 GMT, the repeated hour's second pass
    block = now_block(london, {"C": {}}, {("A", slot): 5, ("C", slot): 12}, slot)
    # Intensity by the default thresholds (high from 7, medium from 4), zone by zone.
    assert block == {"as_of": "2026-10-25T01:30:00+00:00", "peak": 12, "share": 0.25, "intensity": "high",
                     "zones": {"A": {"peak": 5, "share": 0.25, "intensity": "medium"},
                               "B": {"peak": 0, "share": 0.0, "intensity": "low"},
                               "C": {"peak": 12, "share": None, "intensity": "high"}}}
    kath = sites.get("KATHMANDU")
    slot = int(ts("2026-01-05T18:15:00+00:00"))
    assert now_block(kath, {}, {}, slot) == {"as_of": "2026-01-06T00:00:00+05:45", "peak": 0, "share": None,
                                             "intensity": "low", "zones": {}}


def test_only_today_has_a_slot_and_the_cache_ends_with_it(sites):
    kath = sites.get("KATHMANDU")
    now = ts("2026-01-05T18:14:00+00:00")  # 23:59 local on the 5th
    assert current_slot(kath, date(2026, 1, 5), now) == int(ts("2026-01-05T18:00:00+00:00"))
    assert current_slot(kath, date(2026, 1, 6), now) is None
    assert ttl_cap(kath, date(2026, 1, 5), 5.0, now) == 5.0
    assert ttl_cap(kath, date(2026, 1, 5), 300.0, now) == 60.0  # the slot ends at 00:00 local
    assert ttl_cap(kath, date(2026, 1, 4), 300.0, now) == 300.0


async def test_a_past_day_has_no_now(client):
    doc = await get(client, "/api/v1/dashboard/CAP?date=2026-01-05")
    assert "now" not in doc


@pytest.mark.clock
async def test_today_has_the_current_slot(client):
    now = await people_now(client, 4, 2)
    doc = await get(client, "/api/v1/dashboard/CAP")
    slot = int(now) // 900 * 900
    later = int(time.time()) // 900 * 900
    as_of = datetime.fromisoformat(doc["now"]["as_of"])
    assert as_of.utcoffset().total_seconds() == 0  # CAP is UTC
    if as_of.timestamp() == slot:
        # Now's intensity by the same thresholds as the day's (its only slot so far, so equal).
        hour = datetime.fromtimestamp(slot, timezone.utc).hour
        site_level = next(h["intensity"] for h in doc["hourly"] if h["hour"] == hour)
        assert doc["now"] == {"as_of": datetime.fromtimestamp(slot, timezone.utc).isoformat(), "peak": 4,
                              "share": 0.4, "intensity": site_level,
                              "zones": {"A": {"peak": 4, "share": 0.4, "intensity": doc["zones"]["A"]["intensity"]},
                                        "B": {"peak": 2, "share": None, "intensity": doc["zones"]["B"]["intensity"]}}}
    else:  # the slot ended between the write and the read (or midnight passed)
        assert as_of.timestamp() == later and doc["now"]["zones"].get("A", {"peak": 0})["peak"] == 0


@pytest.mark.clock
async def test_the_overview_has_each_sites_current_peak_today_only(client):
    now = await people_now(client, 6, 9)
    doc = await get(client, "/api/v1/overview")
    rows = {r["site_name"]: r for r in doc["sites"]}
    same_slot = int(time.time()) // 900 == int(now) // 900
    if same_slot:
        assert rows["CAP"]["now_peak"] == 9
    assert all(isinstance(r["now_peak"], int) for r in doc["sites"])  # each site's own today
    past = await get(client, "/api/v1/overview?date=2026-01-05")
    assert {r["now_peak"] for r in past["sites"]} == {None}
