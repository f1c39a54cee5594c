"""GET /api/v1/overview: every site over its own local day in one request, against the
zoneinfo oracle, on a date that is a clock-change day for some of the sites."""

from __future__ import annotations

from datetime import date, datetime, timezone
from types import SimpleNamespace

import pytest
from zoneinfo import ZoneInfo

from central.state import SITES
from tests.central._oracle import World
from tests.central._range import get, load, range_app, world_for
from tests.central.conftest import services


@pytest.fixture
async def client(make_client, tmp_path, answers_mode):
    client = await range_app(make_client, tmp_path)
    assert services(client).slots.answers is (answers_mode == "kept")
    return client


async def test_overview_of_every_site_matches_the_oracle(client):
    day = date(2026, 10, 25)  # London falls back; New York does not yet
    sites = client.server.app[SITES]
    worlds = {}
    for i, name in enumerate(["LONDON", "NEW_YORK", "KOLKATA", "KATHMANDU", "CHATHAM"]):
        tz = ZoneInfo(sites.get(name).timezone)
        worlds[name] = world_for(name, tz, day, day, n=600, seed=10 + i)
        await load(client, worlds[name])
    # A device of LONDON, online, seen; a site only seen in data (default time zone, UTC).
    services(client).store.insert("device_status", [["LONDON", "jet-1", "status", "online",
                                                     datetime(2026, 10, 25, 9, tzinfo=timezone.utc), {}]],
                                  ["site_name", "device_id", "kind", "status", "seen_at", "stats"])
    await load(client, World("UNLISTED", 1))
    resp = await client.post("/api/v1/events", json=[{"site": "UNLISTED", "camera": "X", "people_count": 4,
                                                      "timestamp": "2026-10-25T23:30:00Z"}])
    assert resp.status in (200, 201)

    doc = await get(client, "/api/v1/overview?date=2026-10-25")
    rows = {r["site_name"]: r for r in doc["sites"]}
    assert [r["site_name"] for r in doc["sites"]] == sorted(rows)
    for name, world in worlds.items():
        tz = ZoneInfo(sites.get(name).timezone)
        hours = world.buckets(tz, day, day, "hour")
        (whole,) = world.buckets(tz, day, day, "day")
        row = rows[name]
        assert (row["peak"], row["events"]) == (whole["peak"], whole["events"]), name
        assert row["critical_events"] == sum(whole["critical_events"].values())
        assert row["timezone"] == tz.key and row["date"] == "2026-10-25"
        zones = whole["zones"]
        assert zones[row["busiest_zone"]] == max(zones.values())
        # The busiest local hour (a repeated hour merged, as the dashboard's hourly).
        by_hour: dict = {}
        for b in hours:
            h = int(b["start"][11:13])
            by_hour[h] = max(by_hour.get(h, 0), b["peak"])
        assert row["busiest_hour"] == min(by_hour, key=lambda h: (-by_hour[h], h)), name
        assert row["source"] in ("mixed", "raw")
    london = rows["LONDON"]
    assert london["utilisation"] == round(max(worlds["LONDON"].buckets(ZoneInfo("Europe/London"), day, day, "day")[0]
                                              ["zones"].get(z, 0) / c for z, c in {"A": 20, "B": 10}.items()), 4)
    assert london["devices"] == {"online": 1, "offline": 0, "last_seen": "2026-10-25T09:00:00.000Z"}
    assert rows["KOLKATA"]["utilisation"] is None and rows["KOLKATA"]["devices"]["last_seen"] is None
    assert rows["UNLISTED"]["timezone"] == "UTC" and rows["UNLISTED"]["peak"] == 4
    assert rows["CAP"]["events"] == 0 and rows["CAP"]["source"] == "none" and rows["CAP"]["busiest_hour"] is None

    by_peak = await get(client, "/api/v1/overview?date=2026-10-25&sort=-peak")
    peaks = [r["peak"] for r in by_peak["sites"]]
    assert peaks == sorted(peaks, reverse=True) and by_peak["sort"] == "-peak"
    by_util = await get(client, "/api/v1/overview?date=2026-10-25&sort=utilisation")
    assert [r["site_name"] for r in by_util["sites"]][-1] != "LONDON"  # None last, LONDON has a value


async def test_overview_of_a_hundred_sites_in_one_request(client):
    events = [{"site": "S%03d" % i, "camera": "C%d" % (i % 3), "people_count": i % 40,
               "timestamp": "2026-01-05T%02d:10:00Z" % (i % 24)} for i in range(100)]
    resp = await client.post("/api/v1/events", json=events)
    assert resp.status in (200, 201)
    doc = await get(client, "/api/v1/overview?date=2026-01-05&sort=-events")
    rows = {r["site_name"]: r for r in doc["sites"]}
    assert all(rows["S%03d" % i]["peak"] == i % 40 and rows["S%03d" % i]["busiest_hour"] == i % 24 for i in range(100))


@pytest.mark.parametrize(("query", "code"), [("date=2026-02-30", "bad_date"), ("sort=nope", "bad_sort"),
                                             ("sort=--peak", "bad_sort"),
                                             ("date=2026-01-05&date=2026-01-06", "repeated_parameter")])
async def test_bad_overview_requests(client, query, code):
    body = await get(client, "/api/v1/overview?" + query, 400)
    assert body["error"]["code"] == code


@pytest.mark.parametrize("path", ["/api/v1/overview", "/api/v1/history/LONDON?from=2026-01-05&to=2026-01-05",
                                  "/api/v1/profile/LONDON", "/api/v1/export/LONDON?from=2026-01-05&to=2026-01-05"])
async def test_range_views_need_the_read_token(make_client, tmp_path, path):
    client = await range_app(make_client, tmp_path, read_token="r3ad", ingest_token="1ngest")
    for headers in ({}, {"Authorization": "Bearer 1ngest"}):
        resp = await client.get(path, headers=headers)
        assert resp.status == 401 and (await resp.json())["error"]["code"] == "unauthorized"
    resp = await client.get(path, headers={"Authorization": "Bearer r3ad"})
    assert resp.status == 200


async def test_todays_coverage_counts_the_slots_elapsed_so_far(client, monkeypatch):
    # 02:37 UTC on a London winter day: 11 slots have begun (the current one too); contact in
    # all of them is full coverage, not 11 of the day's 96 slots.
    import central.overview as overview
    now = datetime(2026, 3, 10, 2, 37, tzinfo=timezone.utc).timestamp()
    monkeypatch.setattr(overview, "time", SimpleNamespace(time=lambda: now))
    start = int(datetime(2026, 3, 10, tzinfo=timezone.utc).timestamp())
    store = services(client).store
    store.insert("device_status", [["LONDON", "jet-1", "status", "online", datetime.fromtimestamp(now, timezone.utc),
                                    {}]], ["site_name", "device_id", "kind", "status", "seen_at", "stats"])
    store.insert("device_slots", [["LONDON", "jet-1", datetime.fromtimestamp(start + 900 * i, timezone.utc)]
                                  for i in range(11)], ["site_name", "device_id", "slot"])
    rows = {r["site_name"]: r for r in (await get(client, "/api/v1/overview?date=2026-03-10"))["sites"]}
    assert rows["LONDON"]["coverage"] == 1.0
    # A past day counts all of its slots.
    rows = {r["site_name"]: r for r in (await get(client, "/api/v1/overview?date=2026-03-09"))["sites"]}
    assert rows["LONDON"]["coverage"] == 0.0
