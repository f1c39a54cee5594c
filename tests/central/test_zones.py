"""GET /api/v1/zones[/{site}] (the space-planning report) against an independent oracle from
the rows the test wrote, on the real engine behind a real server.

Raw events go in through ``POST /api/v1/events``, edge states as the consumer writes them and
device contact into ``device_slots``; the oracle applies the slot rule to the same rows
(:mod:`tests.central._oracle`) and takes each slot's local date and hour with zoneinfo, one
instant at a time. Cases: hours wrapping midnight, both London clock changes of 2026, a
+5:45 site (Kathmandu), zones without a capacity (C, and every Kathmandu zone) and an
offline day (no device contact), and Chatham's 45-minute clock change. All dates are fixed.
"""

from __future__ import annotations

import csv
import io
import random
from datetime import date, datetime, timedelta, timezone

import pytest
from zoneinfo import ZoneInfo

from central.state import SITEDAYS, SITES
from tests.central._oracle import World, local_bounds
from tests.central._range import get, load, range_app, world_for
from tests.central.conftest import services

DAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


@pytest.fixture
async def client(make_client, tmp_path, answers_mode):
    client = await range_app(make_client, tmp_path)
    assert services(client).slots.answers is (answers_mode == "kept")
    return client


def _rank(ordered, pct):
    # Nearest rank: the smallest value with at least pct % of the values at or below it.
    n = len(ordered)
    for i, v in enumerate(ordered, 1):
        if i * 100 >= pct * n:
            return v
    raise AssertionError


def oracle(world, site, tz, first, last, contact, hours=None, weekdays=DAYS):
    """The report's rows from the world's slots and the contact slots, by zoneinfo."""
    lo, hi = local_bounds(tz, first, last)
    if hours is None:
        wanted = set(range(24))
    else:
        start, end = hours
        wanted = {h % 24 for h in range(start, end if end > start else end + 24)}

    def key(t):
        local = datetime.fromtimestamp(t, tz)
        if local.hour in wanted and DAYS[local.weekday()] in weekdays:
            return local.date(), local.hour
        return None

    in_range = {key(t) for t in range(lo, hi, 900)} - {None}
    data = {key(t) for t in contact if lo <= t < hi} - {None}
    peaks: dict[str, dict] = {}
    zones = set(site.zones)
    for (cam, slot), (peak, events, _) in world.slots().items():
        if not events or not lo <= slot < hi:
            continue
        zones.add(cam)
        k = key(slot)
        if k is None:
            continue
        data.add(k)
        peaks.setdefault(cam, {})
        peaks[cam][k] = max(peaks[cam].get(k, 0), peak)
    rows = []
    for zone in sorted(zones):
        cap = site.zone(zone).capacity
        values = sorted(peaks.get(zone, {}).get(k, 0) for k in data)
        n = len(values)
        peak = values[-1] if n else None
        p95 = _rank(values, 95) if n else None
        median = _rank(values, 50) if n else None
        mean = sum(values) / n if n else None
        rows.append({
            "zone": zone,
            "display_name": site.zone(zone).display_name,
            "capacity": cap,
            "peak": peak,
            "p95": p95,
            "median": median,
            "mean": None if mean is None else round(mean, 4),
            "peak_utilisation": round(peak / cap, 4) if cap and n else None,
            "p95_utilisation": round(p95 / cap, 4) if cap and n else None,
            "mean_utilisation": round(mean / cap, 4) if cap and n else None,
            "occupied_share": round(sum(v > 0 for v in values) / n, 4) if n else None,
            "hours_over": {str(t): sum(v * 100 >= t * cap for v in values) for t in (40, 80, 100)} if cap else None,
            "hours_with_data": n,
            "hours_in_range": len(in_range),
        })
    return rows


async def seed(client, site_name, first, last, n=60, seed_=1, offline=None):
    """Sparse raw events and some edge states over [first, last], and device contact in
    every slot but a few, and none on the ``offline`` day. Returns (world, contact slots)."""
    site = client.server.app[SITES].get(site_name)
    tz = site.tz
    world = world_for(site_name, tz, first, last, n=n, seed=seed_)
    await load(client, world)
    lo, hi = local_bounds(tz, first, last)
    rng = random.Random(seed_)
    contact = [t for t in range(lo - 3600, hi + 3600, 900) if rng.random() < 0.7]
    if offline is not None:
        off_lo, off_hi = local_bounds(tz, offline, offline)
        contact = [t for t in contact if not off_lo <= t < off_hi]
    services(client).store.insert(
        "device_slots", [[site_name, "dev1", datetime.fromtimestamp(t, timezone.utc)] for t in contact],
        ["site_name", "device_id", "slot"])
    return site, world, contact


CASES = [
    # fall back on the 25th (hour 01 twice, merged), offline on the 26th
    ("LONDON", date(2026, 10, 24), date(2026, 10, 26), date(2026, 10, 26)),
    # spring forward on the 29th (no hour 01), offline on the 28th
    ("LONDON", date(2026, 3, 28), date(2026, 3, 30), date(2026, 3, 28)),
    # +5:45, no zone with a capacity
    ("KATHMANDU", date(2026, 1, 5), date(2026, 1, 7), date(2026, 1, 6)),
    # +13:45 -> +12:45 at 03:45 on the 5th: hour 02 is 02:00-03:00 at +13:45 and
    # 02:45-03:00 at +12:45, apart; offline on the 6th
    ("CHATHAM", date(2026, 4, 4), date(2026, 4, 6), date(2026, 4, 6)),
]
FILTERS = [
    (None, DAYS),
    ((22, 6), DAYS),  # wraps midnight
    ((0, 3), DAYS),  # the clock-change hours
    ((9, 18), ("sat", "mon", "tue")),
]


@pytest.mark.parametrize(("site_name", "first", "last", "offline"), CASES)
async def test_zones_match_the_oracle(client, site_name, first, last, offline):
    site, world, contact = await seed(client, site_name, first, last, offline=offline)
    for hours, weekdays in FILTERS:
        query = "from=%s&to=%s" % (first, last)
        if hours is not None:
            query += "&hours=%02d:00-%02d:00" % hours
        if weekdays != DAYS:
            query += "&weekdays=" + ",".join(weekdays)
        doc = await get(client, "/api/v1/zones/%s?%s" % (site_name, query))
        want = oracle(world, site, site.tz, first, last, contact, hours, weekdays)
        assert doc["zones"] == want, (hours, weekdays)
        assert doc["site_name"] == site_name and doc["timezone"] == site.timezone
        assert doc["weekdays"] == [d for d in DAYS if d in weekdays]
        assert doc["hours"] == (None if hours is None else "%02d:00-%02d:00" % hours)
    # The cases are not trivial: some hours without data, zones with and without capacity.
    whole = await get(client, "/api/v1/zones/%s?from=%s&to=%s" % (site_name, first, last))
    rows = whole["zones"]
    assert {r["zone"] for r in rows} >= {"A", "B", "C"}, rows
    assert 0 < rows[0]["hours_with_data"] < rows[0]["hours_in_range"]
    tz = site.tz
    assert rows[0]["hours_in_range"] == sum(
        len({datetime.fromtimestamp(t, tz).hour for t in range(*local_bounds(tz, d, d), 900)})
        for d in (first + timedelta(days=i) for i in range((last - first).days + 1)))
    if site_name == "LONDON":
        assert [r["capacity"] for r in rows] == [20, 10, None]
        assert rows[2]["hours_over"] is None and rows[2]["p95_utilisation"] is None
        assert sum(rows[0]["hours_over"].values()) > 0


async def test_the_dst_days_count_the_hours_the_clock_shows(client):
    await seed(client, "LONDON", date(2026, 3, 29), date(2026, 3, 29), n=0)
    spring = await get(client, "/api/v1/zones/LONDON?from=2026-03-29&to=2026-03-29&hours=00:00-03:00")
    assert spring["zones"][0]["hours_in_range"] == 2  # 00 and 02: 01 is skipped
    fall = await get(client, "/api/v1/zones/LONDON?from=2026-10-25&to=2026-10-25")
    assert fall["zones"][0]["hours_in_range"] == 24  # 01 twice, merged as on the dashboard


async def test_every_site_at_once_and_csv(client):
    first, last = date(2026, 1, 5), date(2026, 1, 7)
    await seed(client, "LONDON", first, last, seed_=2)
    await seed(client, "KATHMANDU", first, last, seed_=3, offline=date(2026, 1, 6))
    query = "from=%s&to=%s&hours=20:00-04:00&weekdays=mon,wed" % (first, last)
    every = await get(client, "/api/v1/zones?" + query)
    assert every["hours"] == "20:00-04:00" and every["weekdays"] == ["mon", "wed"]
    seen_sites = [r["site_name"] for r in every["zones"]]
    assert seen_sites == sorted(seen_sites) and {"LONDON", "KATHMANDU", "CAP"} <= set(seen_sites)
    for name in ("LONDON", "KATHMANDU", "CAP"):
        one = await get(client, "/api/v1/zones/%s?%s" % (name, query))
        assert [r for r in every["zones"] if r["site_name"] == name] == [
            {"site_name": name, **r} for r in one["zones"]]
    cap = next(r for r in every["zones"] if r["site_name"] == "CAP")
    assert cap["peak"] is None and cap["hours_with_data"] == 0 and cap["hours_over"] == {"40": 0, "80": 0, "100": 0}

    resp = await client.get("/api/v1/zones/LONDON?format=csv&" + query)
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert resp.headers["Content-Disposition"] == 'attachment; filename="LONDON_2026-01-05_2026-01-07_zones.csv"'
    table = list(csv.reader(io.StringIO(await resp.text())))
    assert table[0] == ["site", "zone", "display_name", "capacity", "peak", "p95", "median", "mean",
                        "peak_utilisation", "p95_utilisation", "mean_utilisation", "occupied_share",
                        "hours_over_40", "hours_over_80", "hours_over_100", "hours_with_data", "hours_in_range"]

    def cell(v):
        return "" if v is None else str(v)

    london = [r for r in every["zones"] if r["site_name"] == "LONDON"]
    assert table[1:] == [[cell(v) for v in (
        "LONDON", r["zone"], r["display_name"], r["capacity"], r["peak"], r["p95"], r["median"], r["mean"],
        r["peak_utilisation"], r["p95_utilisation"], r["mean_utilisation"], r["occupied_share"],
        *((r["hours_over"] or {}).get(t) for t in ("40", "80", "100")), r["hours_with_data"],
        r["hours_in_range"])] for r in london]
    resp = await client.get("/api/v1/zones?format=csv&" + query)
    table = list(csv.reader(io.StringIO(await resp.text())))
    assert resp.headers["Content-Disposition"].endswith('filename="all_sites_2026-01-05_2026-01-07_zones.csv"')
    assert [(row[0], row[1]) for row in table[1:]] == [(r["site_name"], r["zone"]) for r in every["zones"]]


@pytest.mark.parametrize(("query", "status", "code"), [
    ("to=2026-01-05", 400, "missing_parameter"),
    ("from=2026-01-05&to=2026-01-04", 400, "bad_range"),
    ("from=2025-01-01&to=2026-01-02", 400, "range_too_long"),
    ("from=2026-01-05&to=2026-01-05&hours=9-18", 400, "bad_hours"),
    ("from=2026-01-05&to=2026-01-05&hours=09:30-18:00", 400, "bad_hours"),
    ("from=2026-01-05&to=2026-01-05&hours=09:00-09:00", 400, "bad_hours"),
    ("from=2026-01-05&to=2026-01-05&hours=24:00-01:00", 400, "bad_hours"),
    ("from=2026-01-05&to=2026-01-05&weekdays=", 400, "bad_weekdays"),
    ("from=2026-01-05&to=2026-01-05&weekdays=monday", 400, "bad_weekdays"),
    ("from=2026-01-05&to=2026-01-05&weekdays=mon,", 400, "bad_weekdays"),
    ("from=2026-01-05&to=2026-01-05&format=xml", 400, "bad_format"),
])
async def test_bad_zones_requests(client, query, status, code):
    for path in ("/api/v1/zones/LONDON", "/api/v1/zones"):
        body = await get(client, "%s?%s" % (path, query), status)
        assert body["error"]["code"] == code, path


async def test_limits_are_inclusive_and_unknown_sites_404(client):
    doc = await get(client, "/api/v1/zones/LONDON?from=2025-01-01&to=2026-01-01&hours=00:00-24:00")
    # 2025-03-30 has no 01:00; 2025-10-26's two are one.
    assert doc["zones"][0]["hours_in_range"] == 366 * 24 - 1 and doc["hours"] == "00:00-24:00"
    body = await get(client, "/api/v1/zones/NOWHERE?from=2026-01-05&to=2026-01-05", 404)
    assert body["error"]["code"] == "unknown_site"


async def test_every_sites_cells_leave_out_each_sites_own_days(client):
    """SiteDays.cells_of reads the kept days of several sites in one statement and leaves
    out, per site, the days its plan reads otherwise (as (site, day) pairs)."""
    first, last = date(2026, 1, 5), date(2026, 1, 7)
    await seed(client, "LONDON", first, last, seed_=4)
    await seed(client, "KATHMANDU", first, last, seed_=5)
    days = client.server.app[SITEDAYS].require()
    each = {name: days.cells(name, first, last) for name in ("LONDON", "KATHMANDU")}
    both = days.cells_of(["LONDON", "KATHMANDU"], first, last)
    shape = lambda cells: [(c.day, c.cams, c.hours, c.peaks, c.events) for c in cells]  # noqa: E731
    assert {k: shape(v) for k, v in both.items()} == {k: shape(v) for k, v in each.items()}
    light = days.cells_of(["LONDON", "KATHMANDU"], first, last, what="peaks")
    assert {k: shape(v) for k, v in light.items()} == {
        k: [(c.day, c.cams, c.hours, c.peaks, c.events if c.read != "kept" else []) for c in v] for k, v in each.items()}
    assert any(c.cams for c in both["LONDON"]) and any(c.cams for c in both["KATHMANDU"])
    if days.kept:  # a non-empty skip list binds as (site, day) pairs
        rows = days.store.query(days._cells_kept["peaks"], parameters={
            "sites": ["LONDON", "KATHMANDU"], "first": first, "last": last,
            "skip": [("LONDON", date(2026, 1, 6)), ("KATHMANDU", date(2026, 1, 5))], "only": []})
        got = {(r[0], r[1]) for r in rows}
        assert ("LONDON", date(2026, 1, 6)) not in got and ("KATHMANDU", date(2026, 1, 5)) not in got
        assert ("LONDON", date(2026, 1, 5)) in got and ("KATHMANDU", date(2026, 1, 6)) in got


async def test_an_hour_split_by_the_clock_has_only_its_own_pieces(client):
    """Chatham, 2026-04-05: at 03:45 +13:45 the clock goes back to 02:45 +12:45. Contact only
    in 03:00-03:45 +13:45 is hour 03's, not hour 02's, though it lies between hour 02's two
    pieces."""
    tz = ZoneInfo("Pacific/Chatham")
    start = int(datetime(2026, 4, 5, 3, 0, tzinfo=tz).timestamp())
    assert datetime.fromtimestamp(start + 2700, tz).strftime("%H:%M%z") == "02:45+1245"
    services(client).store.insert(
        "device_slots", [["CHATHAM", "dev1", datetime.fromtimestamp(start + 900 * i, timezone.utc)] for i in range(3)],
        ["site_name", "device_id", "slot"])
    world = World("CHATHAM", 0)  # one event at 10:00, so that zone A is listed
    world.raw.append({"site": "CHATHAM", "camera": "A", "timestamp": int(datetime(2026, 4, 5, 10, tzinfo=tz).timestamp()),
                      "people_count": 3, "triggers": []})
    await load(client, world)
    base = "/api/v1/zones/CHATHAM?from=2026-04-05&to=2026-04-05"
    for hours, with_data, in_range in (("02:00-03:00", 0, 1), ("03:00-04:00", 1, 1), ("02:00-04:00", 1, 2)):
        (row,) = (await get(client, base + "&hours=" + hours))["zones"]
        assert (row["zone"], row["hours_with_data"], row["hours_in_range"]) == ("A", with_data, in_range), hours
        every = await get(client, "/api/v1/zones?from=2026-04-05&to=2026-04-05&hours=" + hours)
        assert [r for r in every["zones"] if r["site_name"] == "CHATHAM"] == [{"site_name": "CHATHAM", **row}]
