"""A corrupt or truncated outbox: the agent starts, quarantines the file, reports it, carries on."""

from __future__ import annotations

import time

import pytest

from tests.fault.conftest import compare, record, wait_dashboard, wait_until

pytestmark = [pytest.mark.fault, pytest.mark.slow]


def _truncate(path):
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])


def _scribble(path):
    data = bytearray(path.read_bytes())
    data[0:100] = b"\xde\xad\xbe\xef" * 25  # the SQLite header and the first page's start
    path.write_bytes(bytes(data))


@pytest.mark.parametrize("damage", [_truncate, _scribble], ids=["truncated", "scribbled"])
def test_corrupt_outbox_is_quarantined_and_the_agent_carries_on(mosquitto, spawn, feeder, monitor, damage):
    """Unacked states are committed while central is away, the outbox file is then damaged.
    The restarted agent renames it ``outbox.sqlite.corrupt-<time>``, logs an error, reports
    ``outbox_quarantined`` in its stats, refuses events of slots that began before its start
    (``outbox_reset``: a fresh outbox must not overwrite central's counts of those slots with
    lower ones, docs/edge.md) and counts everything of later slots exactly. The states in the
    damaged file are lost to the agent (reconciliation from raw restores them); the table
    reports them as lost."""
    make_central, make_agent = spawn
    # The "after" events lie in the next slot, ahead of the clock: allowed by a wider
    # HEATMAP_MAX_FUTURE so the scenario need not wait for the slot to begin.
    agent = make_agent("jetson-01", mosquitto.url, HEATMAP_MAX_FUTURE="1800").start()
    mon = monitor(mosquitto.port)
    before, old_slots = feeder(seed=1, rate_scale=5), feeder(seed=3, rate_scale=5)
    before.run(agent.udp, before.total / 3)
    time.sleep(1)
    assert agent.stop() == 0
    outbox = agent.workdir / "state" / "outbox.sqlite"
    assert outbox.stat().st_size > 0
    for extra in outbox.parent.glob("outbox.sqlite-*"):
        extra.unlink()  # a clean stop leaves no WAL; a stray one would be quarantined too
    damage(outbox)

    agent.start()
    quarantined = list(outbox.parent.glob("outbox.sqlite.corrupt-*"))
    assert len(quarantined) == 1, sorted(p.name for p in outbox.parent.iterdir())
    assert "ERROR" in agent.proc.log(400) and "corrupt" in agent.proc.log(400).lower()
    wait_until("outbox_quarantined reported", lambda: mon.stat(agent.device, "outbox_quarantined") == 1, 15)
    central = make_central(mosquitto.url).start()
    began = time.monotonic()
    next_slot = (int(time.time()) // 900 + 1) * 900
    after = feeder(seed=2, rate_scale=200, window=(next_slot, next_slot + 600))
    after.run(agent.udp, after.total / 8)
    old_slots.run(agent.udp, old_slots.total / 3)
    wait_until("old slots refused", lambda: mon.stat(agent.device, "refused_outbox_reset") >= old_slots.total, 15)
    wait_dashboard(central, after.expected(), timeout=60)
    recover = time.monotonic() - began
    assert agent.proc.running
    assert agent.stop() == 0
    assert central.stop() == 0
    result = compare(after.expected(), central.slot_states())
    lost = before.truth.sent + old_slots.truth.sent
    record("outbox %s" % damage.__name__.strip("_"), {**result, "sent": result["sent"] + lost,
                                                      "lost": result["lost"] + lost},
           recover, lost_in_quarantine=before.truth.sent, refused_outbox_reset=old_slots.truth.sent)
    assert result["wrong"] == []
