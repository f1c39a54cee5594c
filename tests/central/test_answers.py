"""The kept answers (``slot_answers``) against the slot rule computed from the sources.

Every check compares what the views read (:meth:`SlotStore.merged_sql` with answers kept)
with the rule computed at read time (:meth:`SlotStore.computed_sql`) over random worlds of
states (several devices and revisions), raw rows and pins, written by every path: the slot
store's writers, a build over data written before the answers existed, and rows another
client puts into camera_events (followed through ``slot_dirty``).
"""

from __future__ import annotations

import dataclasses
import random
import time
from datetime import datetime, timedelta, timezone

import pytest

from central.coverage import Coverage
from central.dashboard import HOURS_SQL, compute
from central.history import History, HistoryRequest
from central.overview import Overview
from central.registry import Registry
from central.sites import Site, Sites, Thresholds, local_day
from central.storage import answers, rollup, schema
from central.storage.days import BY_DAY_TABLE, DAY_COLUMNS, DAYS_TABLE, DayKeeper, by_day_view_ddl
from central.storage.keeper import Follower, Keeper
from central.storage.sitedays import SiteDays
from central.storage.slots import RAW_COLUMNS, STATE_COLUMNS, Scope, SlotStore
from central.storage.store import Store
from tests.central.conftest import services
from tests.harness import eventually, eventually_async

T0 = 1767571200  # 2026-01-05T00:00:00Z
NOW = datetime(2026, 2, 1, tzinfo=timezone.utc)
SITES = ("A", "B", "KOLKATA")
CAMS = ("C1", "C2", "C3")
SCOPE = Scope.of(SITES, T0 - 86400, T0 + 3 * 86400)
SITES_OF = Sites({name: Site(name, name, zone, Thresholds())
                  for name, zone in (("KOLKATA", "Asia/Kolkata"), ("B", "America/New_York"))})


def dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


def open_slots(clickhouse_url: str, keep: bool) -> SlotStore:
    store = Store(clickhouse_url)
    schema.migrate(store)
    raw_time = schema.detect_raw_time(store)
    built = rollup.build(store, raw_time, None)
    kept = answers.build(store, raw_time, None, SITES_OF) if keep else answers.AnswersStatus(False, "")
    slots = SlotStore(store, raw_time, rollup=built.available, answers=kept.available)
    Keeper(slots, SITES_OF)  # slots.keeper, slots.days: every write kept through it
    return slots


def reader(slots: SlotStore, sites: Sites = SITES_OF) -> SiteDays:
    return SiteDays(slots, sites, slots.keeper)


def check_days(slots: SlotStore, scope: Scope = SCOPE) -> int:
    """Every local day of the scope's sites: the dashboard's document from the kept day =
    the one from its statement over the rule computed from the sources; returns the days
    with events."""
    computed = HOURS_SQL % slots.computed_sql(Scope.of((), 0, 0))
    with_events = 0
    for site in scope.sites:
        tz = SITES_OF.get(site).tz
        day = datetime.fromtimestamp(scope.lo, tz).date()
        while local_day(day, tz)[0] < scope.hi:
            start, end = local_day(day, tz)
            want = slots.store.query(computed, parameters={**Scope.of([site], start, end).params(),
                                                           "tz": SITES_OF.get(site).timezone})
            got = slots.days.day(site, day)
            assert got is not None
            site_of = SITES_OF.get(site)
            assert compute(site_of, day, got, now=0) == compute(site_of, day, want, now=0), (site, day)
            with_events += bool(want)
            day += timedelta(days=1)
    # The copy ordered by day (the overview's) holds the same rows.
    columns = ", ".join(name for name, _ in schema.TABLES[BY_DAY_TABLE].columns)
    by_site, by_day = (slots.store.query("SELECT %s FROM %s FINAL ORDER BY site_name, day" % (columns, table))
                       for table in (DAYS_TABLE, BY_DAY_TABLE))
    assert by_day == by_site and len(by_site) >= with_events
    return with_events


def kept_and_computed(slots: SlotStore, scope: Scope = SCOPE) -> tuple[list, list]:
    order = " ORDER BY site_name, cam_name, slot"
    kept = slots.store.query("SELECT * FROM (%s)%s" % (slots.merged_sql(scope), order), parameters=scope.params())
    computed = slots.store.query("SELECT * FROM (%s)%s" % (slots.computed_sql(scope), order),
                                 parameters=scope.params())
    return [tuple(r) for r in kept], [tuple(r) for r in computed]


def some_slot(rng: random.Random) -> int:
    return T0 + rng.randrange(0, 2 * 96) * 900


def states(rng: random.Random, n: int) -> list[list]:
    """States as devices send them: one revision, one content (a random 9-digit revision
    each, so older revisions also arrive after newer ones)."""
    return [[rng.choice(SITES), "dev%d" % rng.randrange(3), rng.choice(CAMS), dt(some_slot(rng)),
             rng.randrange(0, 40), rng.randrange(0, 50),
             {name: rng.randrange(1, 4) for name in rng.sample(["FALL", "FIGHT"], rng.randrange(0, 3))},
             rng.randrange(10**9), NOW] for _ in range(n)]


def raws(rng: random.Random, n: int) -> list[list]:
    return [[rng.choice(SITES), rng.choice(CAMS), rng.randrange(0, 40), some_slot(rng) + rng.randrange(900),
             rng.sample(["FALL", "CROWD"], rng.randrange(0, 3))] for _ in range(n)]


def pins(rng: random.Random, n: int) -> list[list]:
    return [[rng.choice(SITES), rng.choice(CAMS), dt(some_slot(rng)), "run", NOW, "test", "drift",
             0, 0, {}, 0, 0, 0, {}] for _ in range(n)]


def write_raw(slots: SlotStore, rows: list[list]) -> None:
    """Raw rows as central's ingest writes them: insert, then refresh the touched slots."""
    slots.store.insert("camera_events", rows, RAW_COLUMNS)
    touched: dict[str, set[int]] = {}
    for site, _, _, ts, _ in rows:
        touched.setdefault(site, set()).add(ts - ts % 900)
    slots.refresh(touched)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_kept_answers_follow_every_write(clickhouse_url, seed):
    rng = random.Random(seed)
    slots = open_slots(clickhouse_url, keep=True)
    try:
        for _ in range(6):  # rounds of writes: later revisions, new pins, more raw
            write_raw(slots, raws(rng, 60))
            slots.write_states(states(rng, 40))
            slots.write_repairs(pins(rng, 3))
            kept, computed = kept_and_computed(slots)
            assert kept == computed
            assert check_days(slots) > 3
        assert any(r[-1] == "repaired" for r in kept) and any(r[-1] == "edge" for r in kept)
        assert any(r[-1] == "raw" for r in kept)
        slots.store.command("OPTIMIZE TABLE slot_answers FINAL")
        assert kept_and_computed(slots) == (kept, computed)
        # Per-site windows read the same answers.
        windowed = Scope.per_site({"A": (T0, T0 + 86400), "KOLKATA": (T0 + 3600, T0 + 7200)})
        kept_w, computed_w = kept_and_computed(slots, windowed)
        assert kept_w == computed_w and {r[0] for r in kept_w} == {"A", "KOLKATA"}
    finally:
        slots.store.close()


def test_a_pin_without_raw_takes_the_answer_away(clickhouse_url):
    slots = open_slots(clickhouse_url, keep=True)
    try:
        slots.write_states([["A", "d", "C1", dt(T0), 5, 7, {}, 1, NOW]])
        assert [r[4] for r in kept_and_computed(slots)[0]] == [7]
        slots.write_repairs([["A", "C1", dt(T0), "run", NOW, "test", "drift", 5, 7, {}, 1, 0, 0, {}]])
        kept, computed = kept_and_computed(slots)
        assert kept == computed == []
        assert check_days(slots) == 0 and slots.days.day("A", datetime(2026, 1, 5).date()) == []
        # The tombstone is a row: it is dropped after FINAL, not before.
        assert slots.store.query("SELECT present FROM slot_answers FINAL") == [(0,)]
    finally:
        slots.store.close()


@pytest.fixture(params=["UTC", "Asia/Kolkata"])
def host_zone(request, monkeypatch):
    """The process's local time zone (clickhouse-connect returns DateTime('UTC') naive)."""
    monkeypatch.setenv("TZ", request.param)
    time.tzset()
    yield request.param
    monkeypatch.undo()
    time.tzset()


def test_build_computes_what_was_stored_before(clickhouse_url, host_zone):
    rng = random.Random(7)
    slots = open_slots(clickhouse_url, keep=False)
    store = slots.store
    try:
        store.insert("camera_events", raws(rng, 200), RAW_COLUMNS)
        # The last row an hour into a day: a range read as local time would end before it.
        store.insert("camera_events", [["B", "C1", 3, T0 + 2 * 86400 + 3600, []]], RAW_COLUMNS)
        slots.write_states(states(rng, 150))
        slots.write_repairs(pins(rng, 10))
        assert answers.status(store, rollup.status(store)).available is False
        done = []
        built = answers.build(store, slots.raw_time, None, SITES_OF, progress=lambda *a: done.append(a),
                              chunk_seconds=86400)
        assert built.available and answers.status(store, rollup.status(store)).available
        assert done and done[-1][0] == done[-1][1]  # the progress reached the last chunk
        kept = SlotStore(store, slots.raw_time, rollup=True, answers=True)
        kept.days = DayKeeper(kept, SITES_OF)
        got, computed = kept_and_computed(kept)
        assert got == computed and len(got) > 100
        assert check_days(kept) > 3
    finally:
        store.close()


def test_kept_days_of_an_earlier_version_are_upgraded_in_place(clickhouse_url):
    """Site-day tables of an earlier version (without the per-(camera, hour) and per-hour
    columns, not partitioned, with rows) are made anew, and the rebuild fills them."""
    rng = random.Random(11)
    cells = ("cell_triggers", "cell_edge", "cell_slots", "hour_events", "hour_triggers", "hour_edge", "hour_slots")
    table = schema.TABLES[DAYS_TABLE]
    earlier = dataclasses.replace(table, columns=tuple(c for c in table.columns if c[0] not in cells), partition_by="")
    store = Store(clickhouse_url)
    try:
        schema.migrate(store)
        for stmt in schema.table_ddl(earlier) + schema.table_ddl(dataclasses.replace(
                schema.TABLES[BY_DAY_TABLE], partition_by="")):
            store.command(stmt)
        store.command(by_day_view_ddl(None))
        store.insert(DAYS_TABLE, [["B", datetime(2026, 1, 5).date(), "UTC", 99]], ["site_name", "day", "tz", "ver"])
        store.insert("camera_events", raws(rng, 200), RAW_COLUMNS)
        raw_time = schema.detect_raw_time(store)
        assert rollup.build(store, raw_time, None).available
        assert answers.build(store, raw_time, None, SITES_OF).available
        columns = [r[0] for r in store.query("SELECT name FROM system.columns WHERE database = currentDatabase() "
                                             "AND table = {t:String} ORDER BY position", parameters={"t": DAYS_TABLE})]
        assert columns == [name for name, _ in table.columns]
        (cell_slots, hour_slots, day_slots), = store.query(
            "SELECT sum(arraySum(cell_slots)), sum(arraySum(hour_slots)), sum(edge + raw + repaired) FROM %s FINAL"
            % DAYS_TABLE)
        assert cell_slots == hour_slots == day_slots > 0
        assert schema.partition_key(store, DAYS_TABLE) == schema.partition_key(store, BY_DAY_TABLE) == "toYYYYMM(day)"
        # Each month merged into one part after the build.
        assert store.query("SELECT max(n) FROM (SELECT count() AS n FROM system.parts WHERE active AND database = "
                           "currentDatabase() AND table = {t:String} GROUP BY partition)", parameters={"t": DAYS_TABLE}
                           ) == [(1,)]
        # The earlier row is gone (an empty day in the wrong zone would beat nothing), and the
        # view copies each row into the copy by day.
        assert store.query("SELECT count() FROM %s WHERE ver = 99" % DAYS_TABLE) == [(0,)]
        assert store.query("SELECT count() FROM %s FINAL" % DAYS_TABLE) == store.query(
            "SELECT count() FROM %s FINAL" % BY_DAY_TABLE) != [(0,)]
    finally:
        store.close()


async def test_another_writers_raw_rows_are_followed(clickhouse_url):
    slots = open_slots(clickhouse_url, keep=True)
    try:
        follower = Follower(slots.keeper)
        assert await follower.once() == 0
        told = []
        slots.keeper._tell = lambda site, touched, live: told.append((site, sorted(touched)))
        # Another client: rows land in camera_events without a refresh.
        slots.store.insert("camera_events", [["B", "C2", 9, T0 + 60, ["FALL"]], ["B", "C2", 3, T0 + 86400 + 5, []]],
                           RAW_COLUMNS)
        kept, computed = kept_and_computed(slots)
        assert kept == [] and len(computed) == 2  # not kept yet: the check can fail
        assert await follower.once() == 2  # two UTC days
        kept, computed = kept_and_computed(slots)
        assert kept == computed and len(kept) == 2
        assert check_days(slots) == 2
        assert sorted(told) == [("B", [T0]), ("B", [T0 + 86400])]
        assert await follower.once() == 0  # nothing new
    finally:
        slots.store.close()


async def test_the_app_keeps_answers_and_says_so(client):
    health = await (await client.get("/healthz")).json()
    assert health["slot_answers"]["available"] is True
    svc = services(client)
    assert svc.slots.answers is True
    resp = await client.post("/api/v1/events", json=[
        {"site": "HEAD_OFFICE", "camera": "GATE", "timestamp": T0 + 30, "people_count": 4, "triggers": ["FALL"]}])
    assert resp.status == 201
    rows = svc.store.query("SELECT cam_name, peak, events, source FROM slot_answers FINAL WHERE site_name = 'HEAD_OFFICE'")
    assert rows == [("GATE", 4, 1, "raw")]  # kept before the POST was answered

    async def followed():
        doc = await (await client.get("/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05")).json()
        return doc["zones"].get("GATE", {}).get("events") == 2

    svc.store.insert("camera_events", [["HEAD_OFFICE", "GATE", 2, T0 + 90, []]], RAW_COLUMNS)
    await eventually_async(followed, message="another writer's row was not followed")


async def test_a_start_that_builds_the_days_computes_each_once(clickhouse_url, make_client):
    """The first start builds every site-day from the slots as they are; the crash catch-up
    must not compute them all again (it did: 5.7 s more for the benchmark's 3,000 site-days,
    and a second copy of each row until ClickHouse merged them)."""
    store = Store(clickhouse_url)
    try:
        schema.migrate(store)
        store.insert("camera_events", raws(random.Random(7), 200), RAW_COLUMNS)
    finally:
        store.close()
    client = await make_client()
    assert (await (await client.get("/healthz")).json())["slot_answers"]["available"] is True
    store = services(client).store
    written, = store.query("SELECT count() FROM " + DAYS_TABLE)
    kept, = store.query("SELECT count() FROM " + DAYS_TABLE + " FINAL")
    assert kept[0] > 0 and written == kept


async def test_days_cut_in_an_old_zone_are_recut_at_start(clickhouse_url):
    slots = open_slots(clickhouse_url, keep=True)
    try:
        # "A" is in UTC: a slot at 20:00 UTC is on 01-05.
        slots.write_states([["A", "d", "C1", dt(T0 + 20 * 3600), 5, 7, {}, 1, NOW]])
        assert slots.days.day("A", datetime(2026, 1, 5).date())
        moved = Sites({**SITES_OF.configured, "A": Site("A", "A", "Asia/Kolkata", Thresholds())})
        keeper = DayKeeper(slots, moved)
        # Cut in UTC, the kept day is not served as Kolkata's (None: read the slots), by the
        # dashboard's read nor by the overview's.
        assert keeper.day("A", datetime(2026, 1, 5).date()) is None
        overview = Overview(reader(slots, moved), moved, Registry(slots.store, moved), Coverage(slots.store))
        row, = [r for r in (await overview.document(datetime(2026, 1, 5).date()))["sites"] if r["site_name"] == "A"]
        assert (row["timezone"], row["events"]) == ("Asia/Kolkata", 0)
        assert keeper.resync() == 1 and keeper.resync() == 0
        # 20:00 UTC is 01:30 on 01-06 in Kolkata.
        assert keeper.day("A", datetime(2026, 1, 5).date()) == []
        assert [r[:4] for r in keeper.day("A", datetime(2026, 1, 6).date())] == [("C1", 1, 5, 7)]
    finally:
        slots.store.close()


@pytest.mark.parametrize("missing", [("cell_triggers", "cell_edge", "cell_slots"),
                                     ("hour_events", "hour_triggers", "hour_edge", "hour_slots")])
async def test_days_an_earlier_version_wrote_are_recomputed_at_start(clickhouse_url, missing):
    """A central rolled back writes site-days without the (camera, hour) cells or without the
    hours; rolled forward, its start recomputes them (history by hour reads the hours, for
    one zone the cells). Until then (an earlier version running beside this one), history
    reads those days from the slots."""
    slots = open_slots(clickhouse_url, keep=True)
    history = History(reader(slots), Coverage(slots.store))
    try:
        slots.write_states([["A", "d", "C1", dt(T0 + 3600), 5, 7, {"FALL": 2}, 1, NOW]])
        day5 = datetime(2026, 1, 5).date()
        # What the earlier version's keeper wrote for that day: fewer columns, a higher version.
        columns = ", ".join(c for c in DAY_COLUMNS if c not in missing and c != "ver")
        slots.store.command("INSERT INTO day_answers (%s, ver) SELECT %s, ver + 1 FROM day_answers FINAL "
                            "WHERE site_name = 'A'" % (columns, columns))
        assert slots.store.query("SELECT length(%s), length(cams) FROM day_answers FINAL WHERE site_name = 'A' "
                                 "AND day = {d:Date}" % missing[-1], parameters={"d": day5}) == [(0, 1)]
        for bucket, zone in (("hour", ""), ("day", ""), ("hour", "C1"), ("day", "C1")):
            doc = await history.history(SITES_OF.get("A"), HistoryRequest(day5, day5, bucket, zone))
            assert (doc["totals"]["peak"], doc["totals"]["events"], doc["totals"]["critical_events"]) == (
                5, 7, {"FALL": 2}), (bucket, zone)
        assert slots.days.resync() == 1 and slots.days.resync() == 0
        assert slots.store.query("SELECT cell_slots, cell_triggers, hour_slots, hour_triggers FROM day_answers FINAL "
                                 "WHERE site_name = 'A' AND day = {d:Date}", parameters={"d": day5}) == [
            ([1], [{"FALL": 2}], [1], [{"FALL": 2}])]
    finally:
        slots.store.close()


def test_the_live_feed_keeps_its_days_behind_and_says_when(clickhouse_url):
    slots = open_slots(clickhouse_url, keep=True)
    keeper = slots.days
    told = []
    try:
        keeper.start(lambda site, touched: told.append((site, sorted(touched), keeper.day(site, day5))),
                     coalesce=0.2)
        day5 = datetime(2026, 1, 5).date()
        slots.write_states([["A", "d", "C1", dt(T0 + 3600), 5, 7, {}, 1, NOW]])  # a test writer: days at once
        slots.store.insert("slot_states", [["A", "d", "C1", dt(T0 + 7200), 6, 2, {}, 1, NOW]],
                           ("site_name", "device_id", "cam_name", "slot", "peak", "events", "triggers", "rev",
                            "received_at"))
        slots.refresh({"A": {T0 + 7200}}, days=False)  # as the consumer does before its ack
        keeper.submit({"A": {T0 + 7200}})
        assert keeper.is_pending("A", day5) and not keeper.is_pending("A", day5 + timedelta(days=1))
        eventually(lambda: told, timeout=10, message="the keeper did not tell")
        site, touched, kept = told[0]
        assert (site, touched) == ("A", [T0 + 7200]) and not keeper.is_pending("A", day5)
        assert sorted(r[:4] for r in kept) == [("C1", 1, 5, 7), ("C1", 2, 6, 2)]  # kept before it told
    finally:
        keeper.stop()
        slots.store.close()


async def test_history_and_overview_read_a_pending_day_from_the_slots(clickhouse_url):
    """After the acknowledgement and before the keeper kept the day, the range views read
    that day from the slots (kept before the acknowledgement): a read after an ack is current."""
    slots = open_slots(clickhouse_url, keep=True)
    keeper = slots.days
    history = History(reader(slots), Coverage(slots.store))
    overview = Overview(reader(slots), SITES_OF, Registry(slots.store, SITES_OF), Coverage(slots.store))
    day5 = datetime(2026, 1, 5).date()
    try:
        keeper.start(lambda site, touched: None, coalesce=30)  # the day stays pending
        slots.write_states([["A", "d", "C1", dt(T0 + 3600), 5, 7, {}, 1, NOW]])  # kept at once
        slots.store.insert("slot_states", [["A", "d", "C2", dt(T0 + 7200), 9, 2, {"FALL": 1}, 1, NOW]],
                           STATE_COLUMNS)
        slots.refresh({"A": {T0 + 7200}}, days=False)  # as the consumer does before its ack
        keeper.submit({"A": {T0 + 7200}})
        assert keeper.is_pending("A", day5)
        for bucket in ("hour", "day", "week"):
            doc = await history.history(SITES_OF.get("A"), HistoryRequest(day5, day5, bucket))
            assert (doc["totals"]["peak"], doc["totals"]["events"], doc["totals"]["critical_events"]) == (
                9, 9, {"FALL": 1}), bucket
        row, = [r for r in (await overview.document(day5))["sites"] if r["site_name"] == "A"]
        assert (row["peak"], row["events"], row["critical_events"], row["busiest_zone"]) == (9, 9, 1, "C2")
        assert keeper.is_pending("A", day5)  # still: the views did not wait for the keeper
    finally:
        keeper.stop()
        slots.store.close()


def test_a_write_over_weeks_keeps_each_of_its_days(clickhouse_url):
    """A write whose slots span weeks (an outbox replayed after an outage) keeps every one of
    its days, a week of each site per statement."""
    slots = open_slots(clickhouse_url, keep=True)
    try:
        slots.write_states([[site, "d", "C1", dt(T0 + d * 86400 + 3600 * d), 3 + d % 5, 1 + d, {"FALL": d}, 1, NOW]
                            for site in ("A", "KOLKATA") for d in range(20)])
        assert check_days(slots, Scope.of(("A", "KOLKATA"), T0 - 86400, T0 + 21 * 86400)) == 40
    finally:
        slots.store.close()


def test_days_left_behind_by_a_crash_are_caught_up_at_start(clickhouse_url):
    slots = open_slots(clickhouse_url, keep=True)
    try:
        day5 = datetime(2026, 1, 5).date()
        built_from = answers.days_built_from(slots.store)
        assert built_from  # when open_slots' build began
        slots.write_states([["A", "d", "C1", dt(T0), 5, 7, {}, 1, NOW]])  # slots and days kept
        slots.store.insert("slot_states", [["A", "d", "C1", dt(T0 + 900), 6, 2, {}, 1, NOW]],
                           ("site_name", "device_id", "cam_name", "slot", "peak", "events", "triggers", "rev",
                            "received_at"))
        slots.refresh({"A": {T0 + 900}}, days=False)  # acknowledged; the process dies before the keeper runs
        assert [r[:4] for r in slots.days.day("A", day5)] == [("C1", 0, 5, 7)]
        assert DayKeeper(slots, SITES_OF).catch_up(built_from=built_from) == 1  # the next start
        assert [r[:4] for r in slots.days.day("A", day5)] == [("C1", 0, 6, 9)]
        assert check_days(slots) == 1
    finally:
        slots.store.close()
