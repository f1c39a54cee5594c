"""The agent against a real mosquitto: publish, acks, resend, restart, broker outage."""

from __future__ import annotations

import sqlite3
import sys
import threading
import time
import zlib

import pytest

from edge.agent import Agent
from shared.protocol import ZDICT
from shared.slots import slot_of
from tests.edge.central_double import CentralDouble
from tests.harness import eventually

# Date-sensitive: make test-clock runs these again at fixed instants (tests/_clock).
pytestmark = pytest.mark.clock


def total_events(central, camera=None) -> int:
    return sum(s.events for s in central.latest().values() if camera in (None, s.camera))


def test_publish_path_batches_compressed_states_and_acks_retire_them(central, make_config):
    agent = Agent(make_config()).start()
    now = time.time()  # one timestamp for all: no slot boundary falls between the events
    try:
        for i in range(16):
            agent.record("CAM%02d" % i, i % 9, now, ["UNAUTHORIZED_STRANGER"] * (i % 3))
        assert agent.wait_acked(10)
        assert central.wait_for(lambda: any(s.state == "online" for s in central.statuses))
        latest = central.latest()
        assert len(latest) == 16
        state = latest[("CAM05", slot_of(now))]
        assert (state.peak, state.events, dict(state.triggers)) == (5, 1, {"UNAUTHORIZED_STRANGER": 2})
        # All changed cameras of the device travel in one compressed message.
        assert len(central.batches) == 1
        raw = central.raw[0]
        # Version 2: compressed with the protocol's preset dictionary.
        assert raw[:1] == b"\x78" and len(raw) < len(zlib.decompressobj(zdict=ZDICT).decompress(raw)) / 2
        assert central.batches[0].v == 2
        stats = agent.stats()
        assert stats["outbox_backlog"] == 0 and stats["acks"] == 16
        assert agent.outbox.backlog() == 0

        agent.record("CAM05", 7, now)
        assert agent.wait_acked(10)
        newer = central.latest()[("CAM05", state.slot)]
        assert (newer.peak, newer.events) == (7, 2) and newer.rev > state.rev
    finally:
        agent.stop()
    assert central.wait_for(lambda: central.statuses and central.statuses[-1].state == "stopped")


def test_unacked_states_are_resent_with_backoff_and_an_older_ack_does_not_retire(central, make_config):
    central.auto_ack = False
    agent = Agent(make_config(ack_timeout=0.4, max_backoff=0.8)).start()
    now = time.time()  # one slot for all the events: no boundary falls between them
    try:
        agent.record("CAM", 3, now)
        assert agent.flush()
        assert central.wait_for(lambda: len(central.states()) >= 3, 10), "no resends"
        first = central.states()[0]
        assert all(s.rev == first.rev for s in central.states())
        assert agent.stats()["states_resent"] >= 2

        agent.record("CAM", 4, now)
        assert agent.flush()
        assert central.wait_for(lambda: max(s.rev for s in central.states()) > first.rev)
        central.ack("HEAD_OFFICE", "jetson-01", [("CAM", first.slot, first.rev)])  # stale ack
        eventually(lambda: agent.stats()["acks"] >= 1, 10, "the stale ack applied")
        assert len(agent.pending) == 1
        newest = max(s.rev for s in central.states())
        central.ack("HEAD_OFFICE", "jetson-01", [("CAM", first.slot, newest)])
        assert central.wait_for(lambda: len(agent.pending) == 0, 5)
        sent = agent.stats()["states_sent"]
        assert agent.flush() and agent.flush()  # two full passes of the loop that resends
        assert agent.stats()["states_sent"] == sent  # acked: no more resends
    finally:
        agent.stop()


def test_in_flight_is_bounded(central, make_config):
    central.auto_ack = False
    agent = Agent(make_config(max_inflight_states=5, ack_timeout=30)).start()
    try:
        assert agent.link.subscribed.wait(10)  # connected: the pass after the commit publishes
        for i in range(12):
            agent.record("CAM%02d" % i, 1)
        assert agent.flush() and agent.flush()  # a publish pass ran after the commit
        assert agent.stats()["states_sent"] == 5
        eventually(lambda: len(central.states()) >= 5, 10, "five states at central")
        assert len(central.states()) == 5
        central.ack("HEAD_OFFICE", "jetson-01", [(s.camera, s.slot, s.rev) for s in central.states()])
        assert central.wait_for(lambda: len(central.states()) == 10, 5)
    finally:
        agent.stop()


def test_restart_restores_from_the_outbox_and_continues_revisions(central, make_config):
    central.auto_ack = False
    cfg = make_config()
    agent = Agent(cfg).start()
    now = time.time()  # one slot for all the events: no boundary falls between them
    agent.record("CAM", 5, now, ["A"])
    agent.record("CAM", 2, now)
    assert agent.flush()
    assert central.wait_for(lambda: len(central.states()) == 1)
    agent.stop()
    before = central.states()[0]

    central.auto_ack = True
    agent = Agent(cfg).start()
    try:
        assert agent.stats()["restored"] == 1
        # The unacked state is published again after the restart, then acked.
        assert agent.wait_acked(10)
        agent.record("CAM", 1, now, ["A"])
        assert agent.wait_acked(10)
        after = central.latest()[before.key()]
        assert (after.peak, after.events, dict(after.triggers)) == (5, 3, {"A": 2})
        assert after.rev > before.rev
    finally:
        agent.stop()


def test_broker_goes_away_and_comes_back(central, mosquitto, make_config):
    agent = Agent(make_config(ack_timeout=1.0)).start()
    now = time.time()  # one slot for all the events: no boundary falls between them
    try:
        agent.record("CAM", 1, now)
        assert agent.wait_acked(10)
        central.stop()
        mosquitto.stop()
        assert central.wait_for(lambda: not agent.link.connected.is_set(), 5)
        assert not agent.link.subscribed.is_set()  # cleared with the connection
        for n in range(2, 6):
            agent.record("CAM", n, now)
            agent.record("CAF", n, now)
        assert agent.flush()
        assert agent.stats()["outbox_backlog"] == 2
        assert agent.outbox.backlog() == 2  # committed while the broker was away
        mosquitto.start()
        again = CentralDouble(mosquitto).start()
        try:
            assert agent.link.subscribed.wait(30)  # the SUBACK of the new connection
            assert agent.wait_acked(30)
        finally:
            again.stop()
        got = again.latest()
        assert got[("CAM", slot_of(now))].events == 5
        assert got[("CAF", slot_of(now))].events == 4
        assert agent.stats()["connects"] >= 2
    finally:
        agent.stop()


def test_agent_without_a_broker_still_commits(make_config, tmp_path):
    agent = Agent(make_config(mqtt=None)).start()
    try:
        agent.record("CAM", 1)
        assert agent.flush()
        assert agent.outbox.backlog() == 1
        assert not agent.wait_acked(0.3)
    finally:
        agent.stop()


def test_corrupt_outbox_is_quarantined_and_the_agent_runs(central, make_config, tmp_path):
    cfg = make_config(max_future=1000.0)
    state = tmp_path / "state"
    state.mkdir()
    (state / "outbox.sqlite").write_bytes(b"\x00garbage" * 1000)
    agent = Agent(cfg).start()
    try:
        assert agent.stats()["outbox_quarantined"] == 1
        assert [p.name.startswith("outbox.sqlite.corrupt-") for p in state.iterdir()].count(True) == 1
        next_slot = slot_of(time.time()) + 900.0
        assert agent.record("CAM", 2, next_slot)  # a slot that begins after the start
        assert agent.wait_acked(10)
        assert central.latest()[("CAM", int(next_slot))].events == 1
    finally:
        agent.stop()


def test_after_a_reset_outbox_slots_central_may_hold_are_refused_not_overwritten(make_config, tmp_path):
    cfg = make_config(mqtt=None, max_future=1000.0)
    agent = Agent(cfg).start()  # a brand-new device: everything is accepted
    try:
        assert agent.record("CAM", 5)
        assert agent.record_batch("CAM", [1, 2]) == 2
        assert agent.flush(5)
    finally:
        agent.stop()
    state = tmp_path / "state"
    assert (state / "outbox.started").exists()
    for name in ("outbox.sqlite", "outbox.sqlite-wal", "outbox.sqlite-shm"):
        if (state / name).exists():
            (state / name).unlink()  # the outbox is lost; the device had one before

    agent = Agent(cfg).start()
    try:
        # The instant of the reset: its slot began before it, whatever the time of day.
        now = agent.buffers.refuse_before
        assert not agent.record("CAM", 1, now)
        assert not agent.record("CAM", 1, now - 3600)
        assert agent.record_batch("CAM", [1, 1], [now, now - 60]) == 0
        next_slot = float(slot_of(now) + 900)
        assert agent.record("CAM", 3, next_slot)
        assert agent.record_batch("CAM", [1, 1], [now, next_slot]) == 1
        assert agent.flush(5)
        stats = agent.stats()
        assert stats["refused_outbox_reset"] == 5 and stats["refused_total"] == 5
        values, _ = agent.outbox.load(0)
        assert [(s, p, e) for _, s, p, e, _ in values] == [(int(next_slot), 3, 2)]
    finally:
        agent.stop()


def test_a_failing_outbox_keeps_the_counts_for_the_next_commit(make_config, caplog):
    agent = Agent(make_config(mqtt=None)).start()
    now = time.time()  # one slot for all the events: no boundary falls between them
    try:
        agent.record("CAM", 3, now)
        db = agent.outbox._db
        dead = sqlite3.connect(":memory:", check_same_thread=False)
        dead.close()
        with agent.outbox._lock:  # between transactions, never inside one
            agent.outbox._db = dead  # every statement now fails, as on a dead disk
        assert agent.flush()
        assert agent.stats()["commit_errors"] >= 1
        assert "retrying; counts stay in memory" in caplog.text
        with agent.outbox._lock:
            agent.outbox._db = db
        agent.record("CAM", 5, now)
        assert agent.flush()
        values, _ = agent.outbox.load(0)
        assert [(c, p, e) for c, _, p, e, _ in values] == [("CAM", 5, 2)]
    finally:
        agent.stop()


def test_periodic_stats_are_published(central, make_config):
    agent = Agent(make_config(stats_interval=0.3)).start()
    try:
        agent.record("CAM", 1)
        agent.record("CAM", -1)  # refused
        assert central.wait_for(lambda: any(m.stats.get("events_total") == 1 for m in central.stats), 10)
        stats = [m for m in central.stats if m.stats.get("events_total") == 1][-1].stats
        assert stats["refused_bad_count"] == 1 and stats["connected"] == 1
        assert {"events_per_s", "outbox_backlog", "oldest_unacked_age_s", "ack_lag_s"} <= set(stats)
    finally:
        agent.stop()


def test_stop_twice_is_harmless(make_config):
    agent = Agent(make_config(mqtt=None)).start()
    agent.stop()
    agent.stop()
    assert agent.record("CAM", 1)  # recording still counts in memory; nothing is committed


def test_commits_and_publishes_go_on_under_steady_input(central, make_config):
    agent = Agent(make_config(commit_interval=0.05, publish_interval=0.1)).start()
    stop = threading.Event()
    recorded = [0]

    def feed() -> None:
        i = 0
        while not stop.is_set():
            agent.record("CAM%d" % (i % 16), 3)
            i += 1
        recorded[0] = i

    feeder = threading.Thread(target=feed)
    switch = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)  # the feeder and the main loop interleave as on two cores
    feeder.start()
    try:
        time.sleep(0.3)
        assert agent.flush(5)
        assert agent.flush(5)
        assert central.wait_for(lambda: total_events(central) > 0, 5)
    finally:
        stop.set()
        feeder.join()
        sys.setswitchinterval(switch)
    try:
        assert agent.wait_acked(10)
        assert central.wait_for(lambda: total_events(central) == recorded[0], 5)
    finally:
        agent.stop()


def test_a_commit_pass_ends_although_events_arrive_during_it(make_config):
    agent = Agent(make_config(mqtt=None, commit_interval=60.0, publish_interval=60.0)).start()
    commit = agent.outbox.commit
    calls = [0]

    def commit_while_events_arrive(changes):
        # The real commit, then an event for the current slot, as under steady input.
        items = commit(changes)
        calls[0] += 1
        if calls[0] < 200:
            agent.record("CAM", 1)
        return items

    agent.outbox.commit = commit_while_events_arrive
    try:
        agent.record("CAM", 1)
        assert agent.flush(5)
        assert calls[0] == 1  # one chunk; the event that came during it waits for the next pass
        assert agent.flush(5)
        assert calls[0] == 2
        assert agent.outbox.load(0)[0][0][3] == 2
    finally:
        agent.stop()
