"""The slot store on the real engine: the slot rule, scopes over many sites, SQL bucketing.

States, raw events and pins are written with fixed dates; expected answers are worked out by
hand from the rule (latest revision per device, summed over devices; pinned: raw; else edge
where any state exists; else raw).
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from central.storage import schema
from central.storage.slots import (
    RAW_COLUMNS,
    REPAIR_COLUMNS,
    STATE_COLUMNS,
    Scope,
    SlotRow,
    SlotStore,
)
from central.storage.store import Store

T = 1767600000  # 2026-01-05T08:00:00Z, a slot start
NOW = datetime(2026, 2, 1, tzinfo=timezone.utc)


def dt(ts: int) -> datetime:
    return datetime.fromtimestamp(ts, timezone.utc)


@pytest.fixture
def slots(clickhouse_url):
    store = Store(clickhouse_url)
    schema.migrate(store)
    yield SlotStore(store, schema.detect_raw_time(store))
    store.close()


def state(site, device, cam, slot, peak, events, rev, triggers=None):
    return [site, device, cam, dt(slot), peak, events, triggers or {}, rev, NOW]


def raw(site, cam, ts, people, triggers=()):
    return [site, cam, people, ts, list(triggers)]


def pin(site, cam, slot):
    return [site, cam, dt(slot), "run", NOW, "test", "drift", 0, 0, {}, 0, 0, 0, {}]


def test_column_lists_follow_the_schema():
    assert STATE_COLUMNS == tuple(n for n, _ in schema.TABLES["slot_states"].columns)
    assert RAW_COLUMNS == ("site_name", "cam_name", "people_count", "event_timestamp", "event_triggers")
    assert REPAIR_COLUMNS[:3] == ("site_name", "cam_name", "slot")


def test_the_slot_rule(slots):
    store = slots.store
    slots.write_states([
        # Two devices on one camera: latest revision each, summed.
        state("S", "d1", "A", T, 3, 5, 1, {"X": 1}),
        state("S", "d1", "A", T, 4, 7, 2, {"X": 2}),
        state("S", "d2", "A", T, 6, 1, 9, {"X": 1, "Y": 1}),
        # Edge says zero events: still the edge's answer, raw is not used.
        state("S", "d1", "B", T, 0, 0, 3),
        # Pinned slot: raw wins whatever the edge says.
        state("S", "d1", "C", T, 9, 99, 4),
        # A slot outside the scope.
        state("S", "d1", "A", T + 86400, 1, 1, 1),
    ])
    store.insert("camera_events", [
        raw("S", "A", T + 1, 11, ["Z"]),  # ignored: the edge has slot A
        raw("S", "B", T + 2, 2),  # ignored: the edge has slot B (0 events)
        raw("S", "C", T + 3, 2, ["X", "X"]), raw("S", "C", T + 4, 5),  # pinned: served
        raw("S", "D", T + 900, 3, ["Y"]),  # no edge state: raw
    ], RAW_COLUMNS)
    slots.write_repairs([pin("S", "C", T), pin("S", "E", T)])  # E: pinned, no raw: nothing
    got = sorted(slots.merged(Scope.of(["S"], T, T + 3600)))
    assert got == [
        SlotRow("S", "A", T, 6, 8, {"X": 3, "Y": 1}, "edge"),
        SlotRow("S", "B", T, 0, 0, {}, "edge"),
        SlotRow("S", "C", T, 5, 2, {"X": 2}, "repaired"),
        SlotRow("S", "D", T + 900, 3, 1, {"Y": 1}, "raw"),
    ]


def test_many_sites_each_in_its_own_window(slots):
    slots.write_states([state(s, "d", "A", T + k * 900, 1, 1, 1) for s in ("P", "Q", "R") for k in range(4)])
    scope = Scope.per_site({"P": (T, T + 900), "Q": (T + 1800, T + 3600)})
    got = sorted((r.site_name, r.slot) for r in slots.merged(scope))
    assert got == [("P", T), ("Q", T + 1800), ("Q", T + 2700)]
    # One range for all sites: the cheaper statement, the same rows as the general one.
    scope = Scope.of(["P", "R"], T + 900, T + 2700)
    assert slots.merged_sql(scope) != slots.merged_sql()
    plain = sorted(slots.merged(scope))
    general = sorted(SlotRow(*r[:5], dict(r[5]), r[6])
                     for r in slots.store.query(slots.merged_sql(), parameters=scope.params()))
    assert [(r.site_name, r.slot) for r in plain] == [("P", T + 900), ("P", T + 1800), ("R", T + 900), ("R", T + 1800)]
    assert plain == general


async def test_merged_rows_bucket_in_sql_in_the_sites_zone(slots):
    # Kathmandu is +5:45: 08:00Z and 08:15Z are 13:45 and 14:00 local, two local hours.
    slots.write_states([state("K", "d", "A", T, 2, 3, 1), state("K", "d", "A", T + 900, 5, 4, 1)])
    sql = ("SELECT toHour(toDateTime(slot, {tz:String})) AS h, max(peak), sum(events) "
           "FROM (%s) GROUP BY h ORDER BY h" % slots.merged_sql())
    rows = await slots.store.aquery(sql, {**Scope.of(["K"], T, T + 3600).params(), "tz": "Asia/Kathmandu"})
    assert [tuple(r) for r in rows] == [(13, 2, 3), (14, 5, 4)]


@pytest.mark.parametrize("rollup", [False, True])
def test_trigger_names_cover_every_source(clickhouse_url, rollup):
    from central.storage import rollup as raw_rollup

    store = Store(clickhouse_url)
    try:
        schema.migrate(store)
        raw_time = schema.detect_raw_time(store)
        if rollup:
            raw_rollup.ensure(store, raw_time, None, build_it=True)
        slots = SlotStore(store, raw_time, rollup=rollup)
        slots.write_states([state("S", "d", "A", T, 1, 1, 1, {"EDGE_ONE": 1}),
                            state("OTHER", "d", "A", T, 1, 1, 1, {"ELSEWHERE": 1})])
        store.insert("camera_events", [raw("S", "B", dt(T + 60), 2, ["RAW_ONE", "RAW_TWO"]),
                                       raw("S", "B", dt(T + 7200), 2, ["LATER"])], RAW_COLUMNS)
        scope = Scope.of(["S"], T, T + 3600)
        names = [r[0] for r in store.query(slots.trigger_names_sql(scope), scope.params())]
        assert names == ["EDGE_ONE", "RAW_ONE", "RAW_TWO"]  # both sources, in scope only
        windowed = Scope.per_site({"S": (T, T + 3600)})
        assert [r[0] for r in store.query(slots.trigger_names_sql(windowed), windowed.params())] == names
    finally:
        store.close()
