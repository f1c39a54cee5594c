"""GET /api/v1/history and /api/v1/profile against an independent zoneinfo oracle, on ordinary
and clock-change days, on the real engine behind a real server.

Raw events go in through ``POST /api/v1/events``, edge states as the consumer writes them;
the oracle (:mod:`tests.central._oracle`) applies the slot rule to the same rows and buckets
them one instant at a time with zoneinfo. All dates are fixed.
"""

from __future__ import annotations

import json
import random
from datetime import date, datetime, timedelta, timezone

import pytest
from zoneinfo import ZoneInfo

from central.state import REGISTRY, SITES
from tests.central._oracle import World, local_bounds
from tests.central._range import get, load, range_app, world_for
from tests.central.conftest import services
from tests.harness import eventually_async


@pytest.fixture
async def client(make_client, tmp_path, answers_mode):
    client = await range_app(make_client, tmp_path)
    assert services(client).slots.answers is (answers_mode == "kept")
    return client


def seen(series):
    return [(s["start"], s["peak"], s["events"], s["critical_events"]) for s in series]


def expected(buckets):
    return [(b["start"], b["peak"], b["events"], b["critical_events"]) for b in buckets]


CASES = [
    ("LONDON", date(2026, 3, 28), date(2026, 3, 30)),  # spring forward on the 29th
    ("LONDON", date(2026, 10, 24), date(2026, 10, 26)),  # fall back on the 25th
    ("NEW_YORK", date(2026, 3, 7), date(2026, 3, 9)),
    ("NEW_YORK", date(2026, 10, 31), date(2026, 11, 2)),
    ("KOLKATA", date(2026, 1, 5), date(2026, 1, 6)),
    ("KATHMANDU", date(2026, 1, 5), date(2026, 1, 6)),
    ("CHATHAM", date(2026, 4, 4), date(2026, 4, 6)),  # +13:45 -> +12:45 on the 5th
    ("CHATHAM", date(2026, 9, 26), date(2026, 9, 28)),  # +12:45 -> +13:45 on the 27th
]


@pytest.mark.parametrize(("site", "first", "last"), CASES)
async def test_history_matches_the_oracle_in_every_bucket(client, site, first, last):
    tz = ZoneInfo(client.server.app[SITES].get(site).timezone)
    world = world_for(site, tz, first, last)
    await load(client, world)
    for kind in ("hour", "day", "week"):
        doc = await get(client, "/api/v1/history/%s?from=%s&to=%s&bucket=%s" % (site, first, last, kind))
        want = world.buckets(tz, first, last, kind)
        assert seen(doc["series"]) == expected(want), kind
        totals = doc["totals"]
        assert totals["events"] == sum(b["events"] for b in want)
        assert totals["peak"] == max(b["peak"] for b in want)
        assert doc["timezone"] == tz.key and doc["bucket"] == kind
        assert [b["source"] for b in doc["series"]] == [b["source"] for b in want], kind
        caps = doc["capacities"]  # LONDON's zones have capacities: the busiest zone's share
        assert [s["utilisation"] for s in doc["series"]] == [
            round(max(b["zones"].get(z, 0) / c for z, c in caps.items()), 4) if caps else None for b in want], kind
        # One zone: its own peaks, events and triggers per bucket.
        zone = await get(client, "/api/v1/history/%s?from=%s&to=%s&bucket=%s&zone=A" % (site, first, last, kind))
        assert seen(zone["series"]) == [
            (b["start"], b["per_zone"].get("A", {}).get("peak", 0), b["per_zone"].get("A", {}).get("events", 0),
             {n: c for n, c in sorted(b["per_zone"].get("A", {}).get("triggers", {}).items()) if c})
            for b in want], kind


async def test_clock_change_days_have_the_hours_the_clock_shows(client):
    await load(client, World("LONDON", 0))  # no data: the buckets still list every real hour
    fall = await get(client, "/api/v1/history/LONDON?from=2026-10-25&to=2026-10-25&bucket=hour")
    starts = [s["start"] for s in fall["series"]]
    assert len(starts) == 25
    assert starts[:3] == ["2026-10-25T00:00:00+01:00", "2026-10-25T01:00:00+01:00", "2026-10-25T01:00:00+00:00"]
    spring = await get(client, "/api/v1/history/LONDON?from=2026-03-29&to=2026-03-29&bucket=hour")
    starts = [s["start"] for s in spring["series"]]
    assert len(starts) == 23 and starts[:2] == ["2026-03-29T00:00:00+00:00", "2026-03-29T02:00:00+01:00"]
    kath = await get(client, "/api/v1/history/KATHMANDU?from=2026-01-05&to=2026-01-05&bucket=hour")
    assert kath["series"][0]["start"] == "2026-01-05T00:00:00+05:45" and len(kath["series"]) == 24
    # Chatham, 2026-04-05: at 03:45 +13:45 the clock goes back to 02:45 +12:45, so hour 03
    # has a 45-minute part at +13:45 and hour 02 a 15-minute part at +12:45.
    chat = await get(client, "/api/v1/history/CHATHAM?from=2026-04-05&to=2026-04-05&bucket=hour")
    starts = [(s["start"], s["hours"]) for s in chat["series"]]
    assert starts[2:6] == [("2026-04-05T02:00:00+13:45", 1.0), ("2026-04-05T03:00:00+13:45", 0.75),
                           ("2026-04-05T02:45:00+12:45", 0.25), ("2026-04-05T03:00:00+12:45", 1.0)]
    # 2026-09-27: 02:45 +12:45 jumps to 03:45 +13:45.
    chat = await get(client, "/api/v1/history/CHATHAM?from=2026-09-27&to=2026-09-27&bucket=hour")
    starts = [(s["start"], s["hours"]) for s in chat["series"]]
    assert starts[2:4] == [("2026-09-27T02:00:00+12:45", 0.75), ("2026-09-27T03:45:00+13:45", 0.25)]
    week = await get(client, "/api/v1/history/LONDON?from=2026-10-21&to=2026-10-28&bucket=week")
    assert [s["start"] for s in week["series"]] == ["2026-10-19T00:00:00+01:00", "2026-10-26T00:00:00+00:00"]
    assert [s["hours"] for s in week["series"]] == [5 * 24 + 1, 3 * 24]


async def test_compare_previous_and_utilisation(client):
    tz = ZoneInfo("Europe/London")
    first, last = date(2026, 10, 19), date(2026, 10, 25)
    prev_first = first - timedelta(days=7)
    world = world_for("LONDON", tz, prev_first, last, n=2000, seed=3)
    await load(client, world)
    doc = await get(client, "/api/v1/history/LONDON?from=%s&to=%s&bucket=day&compare=previous" % (first, last))
    cur = world.buckets(tz, first, last, "day")
    prev = world.buckets(tz, prev_first, first - timedelta(days=1), "day")
    assert seen(doc["series"]) == expected(cur)
    assert seen(doc["previous"]["series"]) == expected(prev)
    assert doc["previous"]["from"] == "2026-10-12" and doc["previous"]["to"] == "2026-10-18"
    assert [d["peak"] for d in doc["diff"]] == [c["peak"] - p["peak"] for c, p in zip(cur, prev)]
    assert [d["events"] for d in doc["diff"]] == [c["events"] - p["events"] for c, p in zip(cur, prev)]
    assert doc["totals_diff"]["events"] == sum(b["events"] for b in cur) - sum(b["events"] for b in prev)
    caps = {"A": 20, "B": 10}
    assert [s["utilisation"] for s in doc["series"]] == [
        round(max(b["zones"].get(z, 0) / c for z, c in caps.items()), 4) for b in cur]
    assert doc["capacities"] == caps
    # No edge device ever reported for this site: coverage is unknown, not zero.
    assert {s["coverage"] for s in doc["series"]} == {None} and doc["totals"]["coverage"] is None
    assert {s["source"] for s in doc["series"]} <= {"raw", "mixed", "edge"}
    zone = await get(client, "/api/v1/history/LONDON?from=%s&to=%s&bucket=day&zone=B" % (first, last))
    assert [s["peak"] for s in zone["series"]] == [b["zones"].get("B", 0) for b in cur]


@pytest.mark.parametrize(("site", "first", "last"), [("LONDON", date(2026, 10, 24), date(2026, 10, 26)),
                                                   ("KATHMANDU", date(2026, 1, 5), date(2026, 1, 6))])
async def test_coverage_counts_each_buckets_slots_with_contact(client, site, first, last):
    """Coverage per hour, day and week against zoneinfo, on a fall-back day and at +5:45:
    the share of each bucket's slots in which a device was heard."""
    tz = ZoneInfo(client.server.app[SITES].get(site).timezone)
    await load(client, world_for(site, tz, first, last, n=200))
    lo, hi = local_bounds(tz, first, last)
    rng = random.Random(5)
    heard = sorted(rng.sample(range(lo // 900 - 8, hi // 900 + 8), 120))  # some just outside the range
    services(client).store.insert("device_slots", [[site, "dev%d" % (s % 2), datetime.fromtimestamp(s * 900, timezone.utc)]
                                                   for s in heard for _ in range(1 + s % 2)],
                                  ["site_name", "device_id", "slot"])
    labels = {
        "hour": lambda t: t.replace(minute=0).isoformat(),
        "day": lambda t: t.date().isoformat(),
        "week": lambda t: (t.date() - timedelta(days=t.weekday())).isoformat(),
    }
    for kind, label in labels.items():
        doc = await get(client, "/api/v1/history/%s?from=%s&to=%s&bucket=%s" % (site, first, last, kind))
        counts: dict[str, int] = {}
        for s in heard:
            if lo <= s * 900 < hi:
                key = label(datetime.fromtimestamp(s * 900, tz))
                counts[key] = counts.get(key, 0) + 1
        got = {b["start"] if kind == "hour" else b["start"][:10]: b["coverage"] for b in doc["series"]}
        assert got == {key: round(min(1.0, counts.get(key, 0) / (b["hours"] * 4)), 4)
                       for key, b in zip(got, doc["series"], strict=True)}, kind
        assert sum(counts.values()) > 0 and set(counts) <= set(got), kind
        span = sum(b["hours"] for b in doc["series"]) * 4
        assert doc["totals"]["coverage"] == round(sum(counts.values()) / span, 4), kind


async def test_capacity_relative_intensity(client):
    base = int(datetime(2026, 1, 5, tzinfo=timezone.utc).timestamp())
    world = World("CAP", 0)
    world.raw = [{"site": "CAP", "camera": "A", "timestamp": base + h * 3600, "people_count": p}
                 for h, p in enumerate([4, 5, 8, 9, 3])]
    await load(client, world)
    doc = await get(client, "/api/v1/history/CAP?from=2026-01-05&to=2026-01-05&bucket=hour&zone=A")
    # capacity 10: medium from 5 (50 %), high from 9 (90 %), not the fixed 4 / 7.
    assert [s["intensity"] for s in doc["series"][:5]] == ["low", "medium", "medium", "high", "low"]
    assert [s["utilisation"] for s in doc["series"][:5]] == [0.4, 0.5, 0.8, 0.9, 0.3]


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("from=2026-01-01&to=2026-02-01&bucket=hour", 400, "range_too_long"),  # 32 days
        ("from=2025-01-01&to=2026-01-02&bucket=day", 400, "range_too_long"),  # 367 days
        ("from=2026-01-02&to=2026-01-01", 400, "bad_range"),
        ("from=2026-01-01", 400, "missing_parameter"),
        ("from=2026-1-1&to=2026-01-02", 400, "bad_date"),
        ("from=2026-01-01&to=2026-01-02&bucket=minute", 400, "bad_bucket"),
        ("from=2026-01-01&to=2026-01-02&compare=last_year", 400, "bad_compare"),
        ("from=2026-01-01&to=2026-01-02&zone=a%20b", 400, "bad_zone"),
        ("from=2026-01-01&to=2026-01-02&zone=NOPE", 404, "unknown_zone"),
        ("from=2026-01-01&to=2026-01-02&from=2025-12-01", 400, "repeated_parameter"),
        ("from=2026-01-01&to=2026-01-02&to=2026-01-03", 400, "repeated_parameter"),
        ("from=2026-01-01&to=2026-01-02&bucket=day&bucket=hour", 400, "repeated_parameter"),
        ("from=2026-01-01&to=2026-01-02&zone=A&zone=B", 400, "repeated_parameter"),
    ],
)
async def test_bad_history_requests(client, query, status, code):
    body = await get(client, "/api/v1/history/LONDON?" + query, status)
    assert body["error"]["code"] == code


async def test_a_zone_is_known_if_configured_or_in_data(client):
    """zone=NOPE is a 404, not a series of zeros that reads as "nobody there"; a zone the
    sites file names, or one with data (here raw C, not configured), answers."""
    await get(client, "/api/v1/history/LONDON?from=2026-01-05&to=2026-01-05&zone=B")  # configured, no data
    body = await get(client, "/api/v1/history/LONDON?from=2026-01-05&to=2026-01-05&zone=C", 404)
    assert body["error"] == {"code": "unknown_zone", "message": "site 'LONDON' has no zone 'C' configured or in data"}
    at = int(datetime(2026, 3, 1, 12, tzinfo=timezone.utc).timestamp())
    resp = await client.post("/api/v1/events", json=[{"site": "LONDON", "camera": "C", "people_count": 2,
                                                      "timestamp": at}])
    assert resp.status == 201
    # Another day than the data's: the zone exists, this day it had nobody.
    client.server.app[REGISTRY]._zones.clear()  # its "no" is kept for 10 s
    doc = await get(client, "/api/v1/history/LONDON?from=2026-01-05&to=2026-01-05&zone=C")
    assert doc["totals"]["events"] == 0
    resp = await client.get("/api/v1/export/LONDON?from=2026-01-05&to=2026-01-05&zone=NOPE")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "unknown_zone"
    resp = await client.get("/api/v1/export/LONDON?from=2026-03-01&to=2026-03-01&zone=C&format=ndjson")
    assert resp.status == 200 and json.loads(await resp.text())["events"] == 1
    # Another site's zone is not this site's.
    resp = await client.get("/api/v1/export/NEW_YORK?from=2026-03-01&to=2026-03-01&zone=C")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "unknown_zone"


async def test_limits_are_inclusive_and_unknown_sites_404(client):
    await get(client, "/api/v1/history/LONDON?from=2026-01-01&to=2026-01-31&bucket=hour")
    await get(client, "/api/v1/history/LONDON?from=2025-01-01&to=2026-01-01&bucket=week")
    body = await get(client, "/api/v1/history/NOWHERE?from=2026-01-01&to=2026-01-01", 404)
    assert body["error"]["code"] == "unknown_site"


async def test_profile_matches_the_oracle(client):
    tz = ZoneInfo("Europe/London")
    end = date(2026, 11, 1)
    weeks = 3
    first = end - timedelta(days=7 * weeks - 1)  # spans the fall-back Sunday
    world = world_for("LONDON", tz, first, end, n=3000, seed=5)
    await load(client, world)
    doc = await get(client, "/api/v1/profile/LONDON?weeks=%d&end=%s" % (weeks, end))
    per_day_hour: dict = {}
    lo, hi = local_bounds(tz, first, end)
    for (_cam, slot), (peak, events, _t) in world.slots().items():
        if lo <= slot < hi and events:
            local = datetime.fromtimestamp(slot, tz)
            key = (local.date(), local.hour)  # the repeated hour is merged, as on the dashboard
            per_day_hour[key] = max(per_day_hour.get(key, 0), peak)
    cells = {}
    for (day, hour), peak in per_day_hour.items():
        cells.setdefault((day.weekday(), hour), []).append(peak)
    assert len(doc["cells"]) == 168 and doc["from"] == str(first) and doc["to"] == str(end)
    for cell in doc["cells"]:
        peaks = cells.get((cell["weekday"], cell["hour"]), [])
        assert cell["days"] == len(peaks)
        assert cell["peak_max"] == (max(peaks) if peaks else None)
        assert cell["peak_mean"] == (round(sum(peaks) / len(peaks), 3) if peaks else None)
        # The site's default thresholds (7 / 4) against the mean the cell sends.
        mean = cell["peak_mean"]
        assert cell["intensity"] == (None if mean is None else "high" if mean >= 7 else "medium" if mean >= 4 else "low")


@pytest.mark.parametrize(("query", "code"), [("weeks=0", "bad_weeks"), ("weeks=53", "bad_weeks"),
                                             ("weeks=x", "bad_weeks"), ("end=2026-13-01", "bad_date"),
                                             ("weeks=%D9%A3", "bad_weeks"),  # Arabic-Indic 3
                                             ("weeks=%EF%BC%98", "bad_weeks"),  # fullwidth 8
                                             ("weeks=1%D9%A3", "bad_weeks"),
                                             ("weeks=3&weeks=8", "repeated_parameter"),
                                             ("end=2026-01-05&end=2026-01-06", "repeated_parameter")])
async def test_bad_profile_requests(client, query, code):
    body = await get(client, "/api/v1/profile/LONDON?" + query, 400)
    assert body["error"]["code"] == code


async def test_history_and_profile_say_where_the_data_lies(client):
    # Data on 5 January and 12-14 January only: history says where it lies (so the page tells
    # a day before the data from a day with nobody there), the profile how many weeks had any.
    tz = ZoneInfo("Europe/London")
    world = World("LONDON", 7)
    world.random_raw(*local_bounds(tz, date(2026, 1, 5), date(2026, 1, 5)), 200)
    world.random_raw(*local_bounds(tz, date(2026, 1, 12), date(2026, 1, 14)), 600)
    await load(client, world)
    slots = [slot for _cam, slot in world.slots()]
    want = {"first_day": datetime.fromtimestamp(min(slots), tz).date().isoformat(),
            "last_day": datetime.fromtimestamp(max(slots), tz).date().isoformat()}
    assert want == {"first_day": "2026-01-05", "last_day": "2026-01-14"}
    doc = await get(client, "/api/v1/history/LONDON?from=2025-12-29&to=2026-01-18&compare=previous")
    assert doc["data_range"] == want
    profile = await get(client, "/api/v1/profile/LONDON?weeks=4&end=2026-01-18")
    assert (profile["weeks"], profile["weeks_with_data"]) == (4, 2)
    assert (await get(client, "/api/v1/profile/LONDON?weeks=1&end=2026-01-04"))["weeks_with_data"] == 0
    none = await get(client, "/api/v1/history/KOLKATA?from=2026-01-05&to=2026-01-06")
    assert none["data_range"] is None


async def test_data_range_follows_every_writer(client):
    """The data range is kept between reads (a scan of every source per view otherwise):
    each write widens it, raw ingest's and another writer's rows in camera_events alike."""
    path = "/api/v1/history/KOLKATA?from=2026-01-05&to=2026-01-06"
    assert (await get(client, path))["data_range"] is None

    def event(day: int, hour: int) -> dict:
        return {"site": "KOLKATA", "camera": "GATE", "people_count": 2,
                "timestamp": "2026-01-%02dT%02d:00:00+05:30" % (day, hour)}

    assert (await client.post("/api/v1/events", json=[event(5, 10)])).status == 201
    assert (await get(client, path))["data_range"] == {"first_day": "2026-01-05", "last_day": "2026-01-05"}
    assert (await client.post("/api/v1/events", json=[event(9, 23)])).status == 201
    assert (await get(client, path))["data_range"] == {"first_day": "2026-01-05", "last_day": "2026-01-09"}
    # Another writer: the follower of slot_dirty tells of it (within about a second).
    services(client).store.insert("camera_events", [["KOLKATA", "GATE", 3, datetime(2026, 1, 2, 4, 0, tzinfo=timezone.utc), []]],
                                  ["site_name", "cam_name", "people_count", "event_timestamp", "event_triggers"])

    async def widened():
        doc = await get(client, path)
        return doc["data_range"]["first_day"] == "2026-01-02"

    await eventually_async(widened, message="another writer's rows did not widen the data range")
