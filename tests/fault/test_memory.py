"""Memory of the agent and central through a long broker outage at an accelerated event rate."""

from __future__ import annotations

import os
import threading
import time

import pytest

from tests.fault.conftest import compare, record, wait_dashboard

pytestmark = [pytest.mark.fault, pytest.mark.slow]

#: Long enough to count six days of one site's detections at ~3,000 events/s.
OUTAGE = float(os.environ.get("HEATMAP_TEST_MEMORY_OUTAGE", "75"))


def test_memory_bounded_through_a_long_broker_outage(mosquitto, spawn, feeder):
    """Six days of events (every slot of the retention window, ~200,000 events) arrive at
    about 3,000 events/s while the broker is down. RSS from /proc/<pid>/status: the agent's
    ring of slot buffers and its outbox do not grow with the backlog (the growth over the
    outage after warm-up stays under 25 MiB), central's stays under 40 MiB of growth while
    it takes the whole backlog at once, and the totals are exact afterwards."""
    make_central, make_agent = spawn
    central = make_central(mosquitto.url).start()
    agent = make_agent("jetson-01", mosquitto.url).start()
    feed = feeder(rate_scale=15, hours=6 * 24, end_ago=900)
    rate = feed.total / (OUTAGE - 10)
    mosquitto.stop()
    thread = threading.Thread(target=feed.run, args=(agent.udp, rate), daemon=True)
    thread.start()
    agent_rss, central_rss = [], []
    began = time.monotonic()
    while time.monotonic() - began < OUTAGE:
        agent_rss.append(agent.proc.rss_kb())
        central_rss.append(central.proc.rss_kb())
        time.sleep(1)
    thread.join(60)
    assert feed.done
    mosquitto.start()
    back = time.monotonic()
    done = threading.Event()

    def sample():
        while not done.wait(0.5):
            agent_rss.append(agent.proc.rss_kb())
            central_rss.append(central.proc.rss_kb())

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    try:
        wait_dashboard(central, feed.expected(), timeout=240)
    finally:
        done.set()
        sampler.join()
    recover = time.monotonic() - back
    assert agent.stop() == 0
    assert central.stop() == 0
    result = compare(feed.expected(), central.slot_states())
    warm_agent, warm_central = agent_rss[5], central_rss[5]
    record("memory: broker down %ds, %d ev/s" % (OUTAGE, rate), result, recover,
           agent_rss_mb="%d..%d" % (warm_agent // 1024, max(agent_rss) // 1024),
           central_rss_mb="%d..%d" % (warm_central // 1024, max(central_rss) // 1024),
           states=len(feed.expected()))
    assert result["wrong"] == []
    assert max(agent_rss) - warm_agent < 25 * 1024, agent_rss
    assert max(central_rss) - warm_central < 40 * 1024, central_rss
