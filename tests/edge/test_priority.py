"""Priority publishing: the rules of edge.priority, and an agent with a long publish interval
that still gets a new trigger or an intensity rise to central at once."""

from __future__ import annotations

import time

import pytest

from edge.agent import Agent
from edge.priority import Priority
from shared.slots import slot_of

SLOT = 1_767_600_000


def view(*cams):
    """(camera, peak, previous slot's peak, triggers) rows."""
    return list(cams)


def test_first_scan_only_learns_then_new_trigger_names_are_urgent():
    p = Priority("new")
    assert p.scan(SLOT, view(("A", 2, 0, {"X": 1}))) == []  # after a restart: nothing "new"
    assert p.scan(SLOT, view(("A", 2, 0, {"X": 3}))) == []  # more of the same name waits
    assert p.scan(SLOT, view(("A", 2, 0, {"X": 3, "Y": 1}), ("B", 1, 0, {"X": 1}))) == ["A", "B"]
    # A new slot starts from nothing: the first trigger of each name is new again.
    assert p.scan(SLOT + 900, view(("A", 1, 2, {"X": 1}))) == ["A"]


def test_mode_all_makes_every_trigger_urgent_and_off_nothing():
    p = Priority("all")
    p.scan(SLOT, view(("A", 2, 0, {"X": 1})))
    assert p.scan(SLOT, view(("A", 2, 0, {"X": 2}))) == ["A"]
    assert p.scan(SLOT, view(("A", 2, 0, {"X": 2}))) == []
    off = Priority("off")
    off.scan(SLOT, [])
    assert off.scan(SLOT, view(("A", 9, 0, {"X": 1}))) == [] and not off.enabled


def test_intensity_rise_above_this_slot_and_the_previous_one_is_urgent():
    p = Priority("new", medium=4, high=7)
    p.scan(SLOT, [])
    assert p.scan(SLOT, view(("A", 3, 0, {}))) == []  # low
    assert p.scan(SLOT, view(("A", 4, 0, {}))) == ["A"]  # low -> medium
    assert p.scan(SLOT, view(("A", 6, 0, {}))) == []  # still medium
    assert p.scan(SLOT, view(("A", 7, 0, {}))) == ["A"]  # medium -> high
    # Next slot: the zone was high; climbing back to high is no change of class.
    assert p.scan(SLOT + 900, view(("A", 5, 9, {}))) == []
    assert p.scan(SLOT + 900, view(("A", 8, 9, {}))) == []
    # A zone that was medium and reaches high in the new slot has changed.
    assert p.scan(SLOT + 1800, view(("A", 7, 4, {}))) == ["A"]
    with pytest.raises(ValueError):
        Priority("new", medium=7, high=7)


def away_from_a_slot_end(margin: float = 15.0) -> None:
    """The scenario below must stay in one slot: start it in a fresh one if this one ends soon."""
    left = 900 - time.time() % 900
    if left < margin:
        time.sleep(left + 0.05)


def test_new_trigger_reaches_central_at_once_while_the_rest_waits(central, make_config):
    away_from_a_slot_end()
    agent = Agent(make_config(publish_interval=60.0, commit_interval=1.0)).start()
    try:
        agent.record("CAFETERIA", 2)
        agent.record("LOBBY", 1)
        assert agent.flush()  # a forced pass publishes everything (the regular path) and scans
        assert central.wait_for(lambda: len(central.states()) == 2)
        assert agent.wait_acked(10)
        # From here the publish interval (60 s) is far away: only urgent states go out. One
        # batch call, so both land between two scans: they must share one message.
        agent.record_batch(["CAFETERIA", "LOBBY"], [3, 2], None,
                           [["UNAUTHORIZED_STRANGER"], ["RESTRICTED_ACCESS"]])
        assert central.wait_for(lambda: len(central.batches) == 2, 5), "the triggers waited"
        urgent = central.batches[-1]
        assert sorted((s.camera, s.events, dict(s.triggers)) for s in urgent.states) == [
            ("CAFETERIA", 2, {"UNAUTHORIZED_STRANGER": 1}), ("LOBBY", 2, {"RESTRICTED_ACCESS": 1})]
        assert agent.counters["priority_sent"] == 1 and urgent.urgent and urgent.v == 2
        # Central does not ack an urgent batch: the states stay pending until a regular
        # publish carries them and its ack (by revision) retires them.
        assert agent.stats()["outbox_backlog"] == 2
        assert agent.wait_acked(10)
        # The regular publish carries the same states (a commit in between may have given one
        # a newer revision of the same content), and its ack retired them.
        regular = {s.camera: s for s in central.batches[2].states}
        for s in urgent.states:
            assert regular[s.camera].rev >= s.rev
            assert (regular[s.camera].events, dict(regular[s.camera].triggers)) == (s.events, dict(s.triggers))
        assert agent.stats()["outbox_backlog"] == 0
        assert not central.batches[2].urgent
        # More of the same trigger in the same slot, and a count that stays low: they wait.
        agent.record("CAFETERIA", 1, None, ["UNAUTHORIZED_STRANGER"])
        agent.record("LOBBY", 3)
        # (The loop scans only what changed: LOBBY's peak rose to 3, so one scan comes; a
        # repeat of a trigger already counted in the slot is not even looked at.)
        scans = agent.priority.scans
        assert central.wait_for(lambda: agent.priority.scans >= scans + 1, 5)
        assert agent.counters["priority_sent"] == 1 and len(central.batches) == 3
        # A rise to high goes at once.
        agent.record("LOBBY", 9)
        assert central.wait_for(lambda: len(central.batches) == 4, 5), "the rise to high waited"
        (state,) = central.batches[-1].states
        assert (state.camera, state.peak, state.slot) == ("LOBBY", 9, slot_of(time.time()))
    finally:
        agent.stop()


def test_protocol_version_1_for_an_older_central(central, make_config):
    agent = Agent(make_config(protocol_version=1, publish_interval=60.0, commit_interval=1.0)).start()
    try:
        agent.record("CAM", 3)
        assert agent.wait_acked(10)  # the double answers v1 with v1 acks, as an old central
        # Priority publishing in version 1: an ordinary batch, acked as such.
        agent.record("CAM", 4, None, ["RESTRICTED_ACCESS"])
        assert central.wait_for(lambda: len(central.batches) == 2, 5)
        # The acks counter moves after the outbox has recorded the ack: wait for it, not pending.
        assert central.wait_for(lambda: agent.counters["acks"] == 2, 5)
        assert len(agent.pending) == 0 and agent.counters["priority_sent"] == 1
        assert all(b.v == 1 and not b.urgent for b in central.batches)
    finally:
        agent.stop()


def test_view_shows_only_cameras_whose_peak_rose_or_that_counted_a_trigger():
    from edge.buffers import SlotBuffers

    now = SLOT + 100.0
    b = SlotBuffers(clock=lambda: now)
    b.record("A", 3, now)
    b.record("B", 2, now, ["X"])
    b.record("C", 1, now - 900)  # the previous slot: what a class rise is compared with
    assert sorted(b.view(SLOT)) == [("A", 3, 0, {}), ("B", 2, 0, {"X": 1})]
    assert b.view(SLOT) == []  # nothing since
    b.collect()  # a fold keeps the hot peak: the next lower count is no rise
    b.record("A", 2, now)
    b.record("C", 4, now)
    assert b.view(SLOT) == [("C", 4, 1, {})]
    b.record("A", 5, now)
    b.record_batch(["B"], [1], [now], {"Y": [1]})
    assert sorted(b.view(SLOT)) == [("A", 5, 0, {}), ("B", 2, 0, {"X": 1, "Y": 1})]
