"""Slot buffers: the hot path, the slow path, batches, refusals and the retention ring."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from edge.buffers import SlotBuffers

# Date-sensitive: make test-clock runs these again at fixed instants (tests/_clock).
pytestmark = pytest.mark.clock

NOW = 1_767_600_000.0 + 450  # inside a slot, 2026-01-05
SLOT = 1_767_600_000


class Clock:
    def __init__(self, t: float = NOW) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def by_key(values):
    return {(c, s): (p, e, t) for c, s, p, e, t in values}


def test_record_counts_peak_events_and_every_trigger_occurrence():
    b = SlotBuffers(clock=Clock())
    assert b.record("EMPLOYEE_AREA", 3, NOW, ["UNAUTHORIZED_STRANGER", "UNAUTHORIZED_STRANGER"])
    assert b.record("EMPLOYEE_AREA", 8, NOW - 10, ("CROWD_VIOLATION",))
    assert b.record("EMPLOYEE_AREA", 2)  # timestamp None = now
    assert b.record("CAFETERIA", 1, NOW)
    got = by_key(b.collect())
    assert got == {
        ("EMPLOYEE_AREA", SLOT): (8, 3, {"UNAUTHORIZED_STRANGER": 2, "CROWD_VIOLATION": 1}),
        ("CAFETERIA", SLOT): (1, 1, {}),
    }
    assert b.collect() == []  # nothing changed since
    b.record("CAFETERIA", 4, NOW)
    assert by_key(b.collect()) == {("CAFETERIA", SLOT): (4, 2, {})}  # absolute, not a delta


def test_late_events_go_to_their_own_slot():
    b = SlotBuffers(clock=Clock())
    assert b.record("CAM", 5, NOW - 3600, ["A"])
    assert b.record("CAM", 1, "2026-01-05T07:59:00+00:00")  # ISO with offset, slot 07:45
    got = by_key(b.collect())
    assert got[("CAM", SLOT - 3600)] == (5, 1, {"A": 1})
    assert got[("CAM", 1_767_599_100)] == (1, 1, {})


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (("bad name", 1, NOW), "bad_camera"),
        ((None, 1, NOW), "bad_camera"),
        ((["CAM"], 1, NOW), "bad_camera"),
        (("CAM", -1, NOW), "bad_count"),
        (("CAM", 65536, NOW), "bad_count"),
        (("CAM", 2.5, NOW), "bad_count"),
        (("CAM", True, NOW), "bad_count"),
        (("CAM", "3", NOW), "bad_count"),
        (("CAM", 1, NOW - 8 * 86400), "too_old"),
        (("CAM", 1, NOW + 301), "future"),
        (("CAM", 1, float("nan")), "bad_timestamp"),
        (("CAM", 1, "yesterday"), "bad_timestamp"),
        (("CAM", 1, "2026-01-05T08:00:00"), "bad_timestamp"),  # no offset
        (("CAM", 1, NOW, "UNAUTHORIZED_STRANGER"), "bad_triggers"),  # a string, not a list
        (("CAM", 1, NOW, ["total_events"]), "bad_triggers"),
        (("CAM", 1, NOW, [["A"]]), "bad_triggers"),
        (("CAM", 1, NOW, ["A"] * 33), "bad_triggers"),
        (("CAM", 1, NOW, {"LOITERING": 5}), "bad_triggers"),  # an object is not an array of names
        (("CAM", 1, 10**400), "bad_timestamp"),  # float() of it would overflow
        (("CAM", 10**400, NOW), "bad_count"),
        (("CAM", 1, -10**400), "bad_timestamp"),
    ],
)
def test_refused_events_are_counted_by_reason_and_change_nothing(args, reason):
    b = SlotBuffers(clock=Clock())
    assert b.record("CAM", 1, NOW, ["A"])  # a hot cell exists, so the fast path is tried
    b.collect()
    assert b.record(*args) is False
    assert b.refusals.snapshot() == {reason: 1}
    assert b.collect() == []


def test_future_limit_holds_on_the_fast_path_too():
    clock = Clock(SLOT + 10.0)
    b = SlotBuffers(clock=clock, max_future=60)
    assert b.record("CAM", 1, SLOT + 10.0)
    assert not b.record("CAM", 1, SLOT + 100.0)  # same slot, but 90 s ahead
    assert b.refusals.snapshot() == {"future": 1}


def test_slot_rollover_folds_the_hot_cell():
    clock = Clock(SLOT + 890.0)
    b = SlotBuffers(clock=clock)
    b.record("CAM", 4, None)
    clock.t = SLOT + 905.0
    b.record("CAM", 2, None)
    b.record("CAM", 1, SLOT + 899.0)  # a late event for the previous slot
    assert by_key(b.collect()) == {("CAM", SLOT): (4, 2, {}), ("CAM", SLOT + 900): (2, 1, {})}


def test_ring_forgets_slots_past_retention_and_memory_stays_fixed():
    clock = Clock()
    b = SlotBuffers(retention_seconds=3600, max_future=300, clock=clock)
    b.record("CAM", 7, NOW)
    b.collect()
    size = b.nbytes()
    for i in range(1, 200):  # two days of slots later
        clock.t = NOW + i * 900
        b.record("CAM", 1, None)
    b.collect()
    assert b.nbytes() == size
    clock.t = NOW + 5 * 3600
    assert not b.record("CAM", 1, NOW)  # outside the window now
    assert b.refusals.snapshot() == {"too_old": 1}


def test_cameras_and_triggers_grow_up_to_their_limits():
    b = SlotBuffers(clock=Clock(), max_cameras=40, max_triggers=20)
    for i in range(40):
        assert b.record("CAM%d" % i, i, NOW, ["T%d" % (i % 20)])
    assert not b.record("CAM40", 1, NOW)
    assert not b.record("CAM0", 1, NOW, ["T20"])
    got = by_key(b.collect())
    assert len(got) == 40
    assert got[("CAM39", SLOT)] == (39, 1, {"T19": 1})
    assert b.refusals.snapshot() == {"too_many_cameras": 1, "too_many_triggers": 1}


def test_restore_continues_on_top_of_committed_values():
    b = SlotBuffers(clock=Clock())
    assert b.restore([("CAM", SLOT, 6, 10, {"A": 2}), ("OLD", SLOT - 30 * 86400, 1, 1, {})]) == 1
    b.record("CAM", 2, NOW, ["A"])
    assert by_key(b.collect()) == {("CAM", SLOT): (6, 11, {"A": 3})}


def test_batch_with_one_camera_codes_and_names_and_triggers():
    b = SlotBuffers(clock=Clock())
    ts = np.array([NOW, NOW - 900, NOW, NOW + 10_000, NOW])
    counts = np.array([3, 9, 4, 1, 70000])
    assert b.record_batch("CAM", counts, ts, triggers={"A": np.array([1, 0, 2, 1, 1])}) == 3
    assert b.refusals.snapshot() == {"future": 1, "bad_count": 1}
    assert b.record_batch(["X", "Y"], np.array([1, 2, 3]), codes=np.array([0, 1, 1])) == 3
    assert b.record_batch(np.array(["Y", "X"]), [5, 0], [NOW, NOW], triggers=[["B"], []]) == 2
    got = by_key(b.collect())
    assert got[("CAM", SLOT)] == (4, 2, {"A": 3})
    assert got[("CAM", SLOT - 900)] == (9, 1, {})
    assert got[("X", SLOT)] == (1, 2, {})
    assert got[("Y", SLOT)] == (5, 3, {"B": 1})


def test_batch_refuses_bad_shapes_and_names_without_crashing():
    b = SlotBuffers(clock=Clock())
    assert b.record_batch("bad name", [1, 2]) == 0
    assert b.record_batch("CAM", [[1, 2]]) == 0
    assert b.record_batch("CAM", [1, 2], [NOW]) == 0
    assert b.record_batch(["CAM"], [1, 2]) == 0
    assert b.record_batch(["CAM"], [1, 2], codes=[0, 5]) == 1
    assert b.record_batch("CAM", [1.5, 2.0]) == 1
    assert b.record_batch("CAM", [1, 2], [NOW, 10 ** 400]) == 0  # float() of it would overflow
    assert b.record_batch("CAM", [1], ["yesterday"]) == 0
    assert b.record_batch("CAM", [10 ** 400, 1], [NOW, NOW]) == 0  # not numbers numpy can hold
    assert b.refusals.snapshot()["bad_timestamp"] == 2 + 2 + 1  # the unmatched shape, then these
    assert b.collect() == [("CAM", SLOT, 2, 2, {})]


events = st.lists(
    st.tuples(st.sampled_from(["A", "B", "C"]), st.integers(0, 200), st.floats(NOW - 20000, NOW + 200),
              st.lists(st.sampled_from(["T1", "T2"]), max_size=3)),
    max_size=60,
)


@given(events)
def test_batch_and_single_records_agree(evs):
    one, many = SlotBuffers(clock=Clock()), SlotBuffers(clock=Clock())
    for cam, count, ts, trig in evs:
        one.record(cam, count, ts, trig)
    if evs:
        cams, counts, ts, trig = zip(*evs)
        many.record_batch(list(cams), np.array(counts), np.array(ts), triggers=list(trig))
    assert by_key(one.collect()) == by_key(many.collect())


def test_concurrent_recorders_and_a_collector_lose_nothing():
    b = SlotBuffers(clock=Clock())
    totals: dict = {}
    stop = threading.Event()

    def collector():
        while not stop.is_set():
            for c, s, p, e, t in b.collect():
                totals[(c, s)] = (p, e, t)

    def recorder(cam):
        for i in range(20000):
            b.record(cam, i % 50, NOW, ["A"] if i % 2 else ())

    threads = [threading.Thread(target=recorder, args=("CAM%d" % (k % 2),)) for k in range(4)]
    col = threading.Thread(target=collector)
    col.start()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    stop.set()
    col.join()
    for c, s, p, e, t in b.collect():
        totals[(c, s)] = (p, e, t)
    assert totals == {("CAM0", SLOT): (49, 40000, {"A": 20000}), ("CAM1", SLOT): (49, 40000, {"A": 20000})}


def test_restore_raises_lowered_limits_to_fit_the_outbox(caplog):
    b = SlotBuffers(clock=Clock(), max_cameras=2, max_triggers=1)
    states = [("CAM%d" % i, SLOT, i, 10 + i, {"A": 1, "B": 2, "C%d" % i: 3}) for i in range(3)]
    assert b.restore(states) == 3
    assert (b.max_cameras, b.max_triggers) == (3, 5)
    assert "limits raised to max_cameras=3, max_triggers=5" in caplog.text
    b.record("CAM2", 1, NOW, ["A"])
    assert by_key(b.collect()) == {("CAM2", SLOT): (2, 13, {"A": 2, "B": 2, "C2": 3})}
    assert not b.record("CAM3", 1, NOW)  # beyond what the outbox needed: still refused
    assert b.refusals.snapshot() == {"too_many_cameras": 1}


def test_the_first_camera_noted_for_priority_wakes_the_loop_once_and_repeats_follow_the_mode():
    """#27: the agent's loop sleeps until the buffers note a camera worth a look; with
    priority "new" a repeat of a trigger already counted in the slot is not noted."""
    b = SlotBuffers(clock=Clock())
    calls = []
    b.on_watch = lambda: calls.append(b.watching())
    b.watch_repeats = False
    assert b.record("LOBBY", 2, NOW, ["A"])  # new camera: noted, the loop woken
    assert b.record("DOOR", 1, NOW)  # noted, but the loop is already woken
    assert calls == [True] and b.watching()
    assert sorted(v[0] for v in b.view(SLOT)) == ["DOOR", "LOBBY"] and not b.watching()
    assert b.record("LOBBY", 1, NOW, ["A"])  # a repeat of A, no rise: nothing to look at
    assert not b.watching() and calls == [True]
    assert b.record("LOBBY", 3, NOW)  # a rise: noted, the loop woken again
    assert calls == [True, True] and [v[0] for v in b.view(SLOT)] == ["LOBBY"]
    b.watch_repeats = True  # priority "all": every trigger counts
    assert b.record("LOBBY", 1, NOW, ["A"])
    assert calls == [True, True, True] and [v[3] for v in b.view(SLOT)] == [{"A": 3}]
