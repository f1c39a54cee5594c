"""Every view against an oracle over the sources, at the seams of the kept answers.

Writes go through every writer (raw ingest, the live feed's keeper path, another client's
inserts into ``camera_events`` and ``slot_states``, ``reconcile --repair`` from another
keeper), and every view (dashboard, history by hour/day/week with and without ``zone``,
profile, overview, export) is read at awkward moments: right after a start whose kept
answers are behind their sources (the catch-up held), while a write is pending, after a
central stopped for longer than ``slot_dirty`` keeps its notes, after a repair made by
another process, and after a time zone change. Each answer is compared with the slot rule
applied by :mod:`tests.central._oracle` to the rows written (issue 26).
"""

from __future__ import annotations

import json
import threading
from datetime import date, datetime, timedelta, timezone

import pytest
from zoneinfo import ZoneInfo

import central.storage.keeper
from central.state import FOLLOWER, KEEPER, ON_DATA
from central.storage.keeper import Keeper
from central.storage.slots import RAW_COLUMNS, STATE_COLUMNS, SlotStore
from central.storage.store import Store
from tests.central._oracle import SLOT, World, local_bounds
from tests.central.conftest import services
from tests.harness import eventually_async

FIRST, LAST = date(2026, 3, 27), date(2026, 3, 30)  # London moves its clock on 03-29
SITES_TOML = """
[sites.LONDON]
timezone = "Europe/London"
[sites.KATHMANDU]
timezone = "%s"
"""
NOW = datetime(2026, 4, 1, tzinfo=timezone.utc)


def zones_of(world: World, tz: ZoneInfo, day: date) -> tuple[dict, dict, dict]:
    """The dashboard's zones, hourly and critical events for one local day, from the oracle."""
    lo, hi = local_bounds(tz, day, day)
    zones: dict[str, dict] = {}
    hourly: dict[int, int] = {}
    critical: dict[str, int] = {}
    total = 0
    for (cam, slot), (peak, events, trig) in world.slots().items():
        if not lo <= slot < hi or not events:
            continue
        z = zones.setdefault(cam, {"peak": 0, "events": 0})
        z["peak"] = max(z["peak"], peak)
        z["events"] += events
        hour = datetime.fromtimestamp(slot, tz).hour
        hourly[hour] = max(hourly.get(hour, 0), peak)
        total += events
        for name, n in trig.items():
            if n:
                critical[name] = critical.get(name, 0) + n
    return zones, hourly, {**dict(sorted(critical.items())), "total_events": total}


async def check_views(client, worlds: dict[str, World], zones: dict[str, str], when: str) -> None:
    for site, world in worlds.items():
        tz = ZoneInfo(zones[site])
        for day in [FIRST + timedelta(days=i) for i in range((LAST - FIRST).days + 1)]:
            doc = await (await client.get("/api/v1/dashboard/%s?date=%s" % (site, day))).json()
            want_zones, want_hourly, want_critical = zones_of(world, tz, day)
            assert {c: {"peak": z["peak"], "events": z["events"]} for c, z in doc["zones"].items()} == want_zones, (
                when, site, day, doc["meta"])
            assert {h["hour"]: h["count"] for h in doc["hourly"]} == want_hourly, (when, site, day)
            assert doc["critical_events"] == want_critical, (when, site, day)
        for bucket in ("hour", "day", "week"):
            for zone in ("", "A"):
                path = "/api/v1/history/%s?from=%s&to=%s&bucket=%s%s" % (site, FIRST, LAST, bucket,
                                                                         "&zone=" + zone if zone else "")
                resp = await client.get(path)
                assert resp.status == 200, (when, path, await resp.text())
                doc = await resp.json()
                want = world.buckets(tz, FIRST, LAST, bucket)
                got = [(b["start"], b["peak"], b["events"], b["critical_events"]) for b in doc["series"]]
                if zone:
                    expected = [(b["start"], b["per_zone"].get(zone, {}).get("peak", 0),
                                 b["per_zone"].get(zone, {}).get("events", 0),
                                 {k: v for k, v in sorted(b["per_zone"].get(zone, {}).get("triggers", {}).items())
                                  if v})
                                for b in want]
                else:
                    expected = [(b["start"], b["peak"], b["events"], b["critical_events"]) for b in want]
                assert got == expected, (when, path)
        doc = await (await client.get("/api/v1/profile/%s?weeks=1&end=%s" % (site, LAST + timedelta(days=3)))).json()
        hours = {}
        for b in world.buckets(tz, LAST - timedelta(days=3), LAST + timedelta(days=3), "hour"):
            if b["events"]:
                local = datetime.fromisoformat(b["start"])
                key = (local.weekday(), local.hour)
                hours[key] = max(hours.get(key, 0), b["peak"])
        got = {(c["weekday"], c["hour"]): c["peak_max"] for c in doc["cells"] if c["peak_max"] is not None}
        assert got == hours, (when, site, "profile")
        resp = await client.get("/api/v1/export/%s?from=%s&to=%s&bucket=day&format=ndjson" % (site, FIRST, LAST))
        assert resp.status == 200, (when, await resp.text())
        rows = [json.loads(line) for line in (await resp.text()).splitlines() if line.strip()]
        got_export = {(r["bucket_start_local"][:10], r["zone"]): (r["peak"], r["events"]) for r in rows}
        want_export = {(b["start"][:10], cam): (z["peak"], z["events"])
                       for b in world.buckets(tz, FIRST, LAST, "day") for cam, z in b["per_zone"].items() if z["events"]}
        assert got_export == want_export, (when, site, "export")
    for day in (FIRST, date(2026, 3, 29)):
        doc = await (await client.get("/api/v1/overview?date=%s" % day)).json()
        for row in doc["sites"]:
            if row["site_name"] not in worlds:
                continue
            want_zones, _, want_critical = zones_of(worlds[row["site_name"]], ZoneInfo(zones[row["site_name"]]), day)
            assert (row["peak"], row["events"]) == (max((z["peak"] for z in want_zones.values()), default=0),
                                                    want_critical["total_events"]), (when, row)


def raw_rows(world: World, events: list[dict]) -> list[list]:
    world.raw.extend(events)
    return [[e["site"], e["camera"], e["people_count"], e["timestamp"], e["triggers"]] for e in events]


def edge_rows(world: World, rev: int, n: int, seed_lo: int, seed_hi: int) -> list[list]:
    before = dict(world.edge)
    world.random_edge(seed_lo, seed_hi, n, cam=world.rng.choice(["A", "B"]))
    return [[world.site, "dev1", cam, slot, *state[:2], state[2], rev, NOW]
            for (cam, slot), state in world.edge.items() if before.get((cam, slot)) != state]


@pytest.fixture
def gate(monkeypatch):
    """Holds the keeper's start-up catch-up until set."""
    released = threading.Event()
    catch_up = central.storage.keeper.Keeper._catch_up_once

    def held(self, *args, **kwargs):
        released.wait(60)
        return catch_up(self, *args, **kwargs)

    monkeypatch.setattr(central.storage.keeper.Keeper, "_catch_up_once", held)
    yield released
    released.set()


async def test_every_view_is_right_at_every_moment(make_client, tmp_path, gate):
    zones = {"LONDON": "Europe/London", "KATHMANDU": "Asia/Kathmandu"}
    sites_file = tmp_path / "sites.toml"
    sites_file.write_text(SITES_TOML % zones["KATHMANDU"])
    worlds = {site: World(site, seed) for seed, site in enumerate(zones)}
    bounds = {site: local_bounds(ZoneInfo(z), FIRST, LAST) for site, z in zones.items()}
    gate.set()  # the first start has nothing to catch up

    # 1. A central that takes raw ingest and the live feed. (No cache here: the live feed's
    #    listeners are told once its days are kept, and phase 2 holds them on purpose.)
    client = await make_client(sites_file=str(sites_file))
    store = services(client).store
    for site, world in worlds.items():
        lo, hi = bounds[site]
        world.random_raw(lo, hi, 300, cams=("A", "B"))
        resp = await client.post("/api/v1/events", json=world.raw)
        assert resp.status == 201, await resp.text()
        services(client).slots.write_states(edge_rows(world, 1, 30, lo, hi))
    await check_views(client, worlds, zones, "after raw ingest and the live feed")

    # 2. A write of the live feed acknowledged and its days not kept yet (pending).
    keeper = client.server.app[KEEPER].value
    held = threading.Event()
    refresh = keeper.days.refresh

    def slow_refresh(touched):
        held.wait(30)
        refresh(touched)

    keeper.days.refresh = slow_refresh
    site, world = "LONDON", worlds["LONDON"]
    rows = edge_rows(world, 2, 10, *bounds[site])
    store.insert("slot_states", rows, STATE_COLUMNS)
    keeper.keep_live({site: {r[3] for r in rows}})
    assert any(keeper.days.pending_days(site))
    await check_views(client, worlds, zones, "with a write pending")
    held.set()
    await eventually_async(lambda: not keeper.days.pending_days(site), timeout=30, message="never kept")
    url = services(client).config.clickhouse_url
    await client.close()

    # 3. Central stopped; other writers write; slot_dirty's notes expire (a stop longer than
    #    its two days). The next start's answers are behind their sources.
    store = Store(url)
    other = []
    for site, world in worlds.items():
        lo, hi = bounds[site]
        fresh = World(site, 99)
        fresh.random_raw(lo, hi, 200, cams=("A", "B", "C"))
        other += raw_rows(world, fresh.raw)
        store.insert("slot_states", edge_rows(world, 5, 20, lo, hi), STATE_COLUMNS)
    store.insert("camera_events", other, RAW_COLUMNS)
    store.command("TRUNCATE TABLE slot_dirty")
    store.close()
    gate.clear()
    client = await make_client(sites_file=str(sites_file), cache_ttl=600, cache_ttl_past=600)
    health = await (await client.get("/readyz")).json()
    assert health["catching_up"] > 0, health
    await check_views(client, worlds, zones, "right after a start behind the sources")
    gate.set()
    app = client.server.app
    await eventually_async(lambda: app[KEEPER].value.catching_up == 0, timeout=60, message="never caught up")
    assert (await (await client.get("/readyz")).json())["catching_up"] == 0
    await check_views(client, worlds, zones, "after the catch-up")

    # 4. A repair from another process: pins through a keeper of its own (reconcile's).
    store = services(client).store
    told = []
    app[ON_DATA].append(lambda site, slots: told.append(site))
    other_keeper = Keeper(SlotStore(store, services(client).raw_time, rollup=True, answers=True), app[central.state.SITES])
    (cam, slot), _ = sorted((k, v) for k, v in worlds["LONDON"].edge.items())[0]
    worlds["LONDON"].edge.pop((cam, slot))  # pinned to raw
    other_keeper.slots.write_repairs([["LONDON", cam, slot, "run", NOW, "test", "drift", 0, 0, {}, 0, 0, 0, {}]])
    await eventually_async(lambda: "LONDON" in told, timeout=60, message="the repair was not followed")
    await check_views(client, worlds, zones, "after a repair from another process")
    await client.close()

    # 5. A time zone change: KATHMANDU's days are recut (held), read from the slots meanwhile.
    zones["KATHMANDU"] = "Asia/Kolkata"
    sites_file.write_text(SITES_TOML % zones["KATHMANDU"])
    gate.clear()
    client = await make_client(sites_file=str(sites_file), cache_ttl=600, cache_ttl_past=600)
    assert (await (await client.get("/readyz")).json())["catching_up"] > 0
    await check_views(client, worlds, zones, "after a time zone change, before the recut")
    gate.set()
    app = client.server.app
    await eventually_async(lambda: app[KEEPER].value.catching_up == 0, timeout=60, message="never caught up")
    await check_views(client, worlds, zones, "after the recut")


async def test_another_writers_trigger_fires_its_rule(make_client, tmp_path, receiver):
    """A row the customer's own ingestion puts into camera_events, with a trigger, fires
    the matching trigger rule: the follower's writes reach every listener."""
    sites = tmp_path / "sites.toml"
    sites.write_text("""
[sites.HQ]
timezone = "UTC"
[[alerts]]
name = "stranger"
kind = "trigger"
triggers = ["UNAUTHORIZED_STRANGER"]
webhook = "%s"
""" % receiver.url)
    client = await make_client(sites_file=str(sites))
    now = int(datetime.now(timezone.utc).timestamp())
    services(client).store.insert("camera_events", [["HQ", "DOOR", 1, now - 60, ["UNAUTHORIZED_STRANGER"]]],
                                  RAW_COLUMNS)
    await eventually_async(lambda: receiver.requests, timeout=60, message="no alert for another writer's row")
    assert "UNAUTHORIZED_STRANGER" in json.dumps(receiver.requests[0]["body"], default=str)


async def test_a_far_past_event_recomputes_two_small_windows(make_client):
    """An event of 2000 beside one of now: the slots and days touched, not the 26 years
    between them (issue 27: 48.6 s on an almost empty store)."""
    client = await make_client()
    keeper = client.server.app[KEEPER].value
    await eventually_async(lambda: keeper.catching_up == 0, timeout=60, message="never caught up")
    follower = client.server.app[FOLLOWER].value
    follower.task.cancel()  # it may take the slots between the insert and the keeper (a second, harmless keep)
    windows = []
    refresh_scope = keeper.slots.refresh_scope
    keeper.slots.refresh_scope = lambda scope: (windows.append(scope.hi - scope.lo), refresh_scope(scope))[1]
    days = []
    recompute = keeper.days._recompute

    def counted(chunk, ver=None):
        days.extend((last - first).days + 1 for first, last in chunk.values())
        return recompute(chunk, ver)

    keeper.days._recompute = counted
    now = int(datetime.now(timezone.utc).timestamp())
    resp = await client.post("/api/v1/events", json=[
        {"site": "HEAD_OFFICE", "camera": "A", "timestamp": 946857600 + 3600, "people_count": 1},
        {"site": "HEAD_OFFICE", "camera": "A", "timestamp": now - 7200, "people_count": 2}])
    assert resp.status == 201
    assert len(windows) == 2 and max(windows) == SLOT, windows
    assert sum(days) == 2, days
    doc = await (await client.get("/api/v1/dashboard/HEAD_OFFICE?date=2000-01-03")).json()
    assert doc["zones"] == {"A": {"peak": 1, "events": 1, "intensity": "low"}}


def test_runs_split_far_apart_slots():
    from central.storage.slots import runs, touched_scopes

    assert runs([0, 900, 1800]) == [(0, 2700)]
    assert runs([0, 86400 * 3]) == [(0, 900), (86400 * 3, 86400 * 3 + 900)]
    scopes = touched_scopes({"A": {0, 10**9}, "B": {900}})
    assert [s.sites for s in scopes] == [("A", "B"), ("A",)]





async def test_a_clean_restart_needs_no_check_and_a_changed_store_does(make_client, tmp_path, gate):
    """A clean stop marks what the sources and the kept answers hold; a start finding them
    unchanged reads kept at once (catching_up 0, no check of every slot), one finding them
    changed (another writer's edge states, an emptied table) checks them first."""
    sites_file = tmp_path / "sites.toml"
    sites_file.write_text(SITES_TOML % "Asia/Kathmandu")
    gate.set()
    client = await make_client(sites_file=str(sites_file))
    world = World("LONDON", 3)
    lo, hi = local_bounds(ZoneInfo("Europe/London"), FIRST, LAST)
    services(client).slots.write_states(edge_rows(world, 1, 20, lo, hi))
    url = services(client).config.clickhouse_url
    await eventually_async(lambda: client.server.app[KEEPER].value.catching_up == 0, timeout=60,
                           message="never caught up")
    await client.close()  # a clean stop: marked
    gate.clear()
    client = await make_client(sites_file=str(sites_file))
    keeper = client.server.app[KEEPER].value
    assert keeper.verified_from is None and (await (await client.get("/readyz")).json())["catching_up"] == 0
    await client.close()
    store = Store(url)
    store.insert("slot_states", edge_rows(world, 2, 5, lo, hi), STATE_COLUMNS)  # another writer
    store.close()
    client = await make_client(sites_file=str(sites_file))
    assert (await (await client.get("/readyz")).json())["catching_up"] > 0
    await check_views(client, {"LONDON": world}, {"LONDON": "Europe/London", "KATHMANDU": "Asia/Kathmandu"},
                      "a changed store, before its check")
    gate.set()
