"""Central killed during ingest, every state replayed out of order, ClickHouse unreachable."""

from __future__ import annotations

import random
import threading
import time

import paho.mqtt.client as mqtt
import pytest

from shared import protocol
from shared.paho_close import stop_client
from tests.fault.conftest import compare, merge, record, wait_dashboard, wait_until
from tests.harness import free_port

pytestmark = [pytest.mark.fault, pytest.mark.slow]

KILLS = 5


def test_central_sigkilled_repeatedly_during_ingest(mosquitto, spawn, feeder):
    """Central is SIGKILLed five times while agents publish. Batches are 1 s long, so kills
    land between taking messages, inserting them and acking them (including after the insert
    and before the ack: the state is written twice, the highest rev wins). Exact totals, and
    one row per key once deduplicated."""
    make_central, make_agent = spawn
    central = make_central(mosquitto.url, HEATMAP_BATCH_SECONDS="1").start()
    agents = [make_agent("jetson-%02d" % i, mosquitto.url).start() for i in (1, 2)]
    feeds = [feeder(seed=i, rate_scale=10) for i in (1, 2)]
    threads = [threading.Thread(target=f.run, args=(a.udp, f.total / 30), daemon=True)
               for f, a in zip(feeds, agents)]
    for t in threads:
        t.start()
    rng = random.Random(2)
    for _ in range(KILLS):
        time.sleep(rng.uniform(2.0, 5.0))
        central.kill()
        central.start()
    last_start = time.monotonic()
    for t in threads:
        t.join(120)
    assert all(f.done for f in feeds)
    expected = merge(*(f.expected() for f in feeds))
    wait_dashboard(central, expected, timeout=120)
    recover = time.monotonic() - last_start
    for a in agents:
        assert a.stop() == 0
    assert central.stop() == 0
    result = compare(expected, central.slot_states())
    rows, rewritten = _row_counts(central)
    record("central SIGKILL x%d" % KILLS, result, recover, rows=rows, same_rev_rewritten=rewritten)
    assert result["wrong"] == []


def _row_counts(central) -> tuple[int, int]:
    """Rows in slot_states, and how many repeat a (device, camera, slot, rev) already stored
    (a state inserted and not acked before a kill, written again after the resend)."""
    rows, distinct = central.query("SELECT count(), uniqExact(device_id, cam_name, slot, rev) FROM slot_states")[0]
    return int(rows), int(rows) - int(distinct)


def test_every_state_replayed_three_times_shuffled_changes_nothing(mosquitto, spawn, feeder, monitor):
    """Every state message the agent sent is published again three times: shuffled, then
    newest first (stale revisions after newer ones), then shuffled. Totals unchanged."""
    make_central, make_agent = spawn
    central = make_central(mosquitto.url).start()
    agent = make_agent("jetson-01", mosquitto.url).start()
    mon = monitor(mosquitto.port)
    feed = feeder(rate_scale=20)
    feed.run(agent.udp, feed.total / 15)
    expected = feed.expected()
    wait_dashboard(central, expected, timeout=60)
    assert agent.stop() == 0
    # "stopped" is the agent's last message, after its last states: the monitor has them all.
    wait_until("the agent's 'stopped'", lambda: mon.status.get(agent.device) == "stopped", 15)
    messages = list(mon.states)
    revs = [max(s.rev for s in protocol.decode(p).states) for _, p in messages]
    items = sum(len(protocol.decode(p).states) for _, p in messages)
    assert len(messages) > 5 and items > len(expected), "too few revisions to make the replay mean anything"
    rng = random.Random(4)
    order = list(range(len(messages)))
    rounds = [rng.sample(order, len(order)), sorted(order, key=lambda i: -revs[i]), rng.sample(order, len(order))]
    written_before = central.metric("heatmap_slot_states_written_total")
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="replayer")
    try:
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        began = time.monotonic()
        for rnd in rounds:
            for i in rnd:
                topic, payload = messages[i]
                client.publish(topic, payload, qos=1).wait_for_publish(10)
    finally:
        stop_client(client)
    wait_until("central wrote the replay", lambda: central.metric("heatmap_slot_states_written_total")
               - written_before >= 3 * items, 60)
    wait_dashboard(central, expected, timeout=10)
    took = time.monotonic() - began
    assert central.stop() == 0
    result = compare(expected, central.slot_states())
    record("replay x3 shuffled, stale last", result, took, messages=3 * len(messages))
    assert result["wrong"] == []


def test_clickhouse_unreachable_nothing_acked_memory_bounded_then_exact(mosquitto, spawn, feeder, monitor):
    """Central's ClickHouse URL points at a dead port while the agent publishes: central runs
    degraded, acks nothing to the broker or the agent, holds at most its MQTT in-flight window
    (RSS bounded), and the agent keeps its backlog. Then central is restarted on a reachable
    store (this suite has no ClickHouse server to bring back; chDB is embedded), takes the
    same persistent session and the resends: exact totals."""
    make_central, make_agent = spawn
    dead = "http://127.0.0.1:%d" % free_port()
    central = make_central(mosquitto.url, HEATMAP_CLICKHOUSE_URL=dead, HEATMAP_MQTT_INFLIGHT="20")
    central.start()
    agent = make_agent("jetson-01", mosquitto.url, HEATMAP_MAX_STATES_PER_MESSAGE="10").start()
    mon = monitor(mosquitto.port)
    feed = feeder(rate_scale=20)
    thread = threading.Thread(target=feed.run, args=(agent.udp, feed.total / 30), daemon=True)
    thread.start()
    rss = []
    while thread.is_alive():
        rss.append(central.proc.rss_kb())
        time.sleep(1)
    time.sleep(5)
    rss.append(central.proc.rss_kb())
    assert mon.acked_states == 0, "central acked states it could not store"
    backlog = mon.stat(agent.device, "outbox_backlog")
    assert backlog > 0
    status, _ = central.get("/readyz")
    assert status == 503
    # Bounded: after warm-up, the degraded process does not grow with the backlog.
    warm = rss[len(rss) // 3]
    assert max(rss) < warm + 40 * 1024, "central grew from %d to %d KiB while degraded" % (warm, max(rss))
    central.stop()
    down_for = len(rss)
    central.env.pop("HEATMAP_CLICKHOUSE_URL")
    central.start()
    began = time.monotonic()
    wait_dashboard(central, feed.expected(), timeout=120)
    recover = time.monotonic() - began
    assert agent.stop() == 0
    assert central.stop() == 0
    result = compare(feed.expected(), central.slot_states())
    record("ClickHouse unreachable %ds" % down_for, result, recover, backlog=int(backlog),
           central_rss_mb="%d..%d" % (min(rss) // 1024, max(rss) // 1024))
    assert result["wrong"] == []
