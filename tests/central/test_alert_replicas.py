"""Several replicas on one store: each alert is sent by one of them (the delivery claim)."""

from __future__ import annotations

import asyncio
import dataclasses
import time
from datetime import datetime, timezone

from central.alerts.evaluate import make_alert
from central.alerts.ledger import Ledger, lease_holder
from central.app import create_app
from central.storage.store import Store
from tests.central.conftest import services
from tests.central.test_alerts import _idle, event, last_slot, received, rules_file


async def test_two_replicas_on_one_store_send_each_alert_once(tmp_path, config, receiver, aiohttp_client):
    """Two apps share one store (chDB admits one process per directory, so the replicas are
    two apps in this process; against a ClickHouse server they would be two processes). Both
    judge the same data at once, as after a redelivery or in the periodic check; each alert
    reaches the receiver once."""
    cfg = dataclasses.replace(config, sites_file=rules_file(tmp_path, """
[[alerts]]
name = "restricted"
kind = "trigger"
cooldown_minutes = 0
webhook = "%s"

[[alerts]]
name = "offline"
kind = "device_offline"
minutes = 1
webhook = "%s"
""" % (receiver.url, receiver.url)), alert_time_scale=0.01)
    store = Store(cfg.clickhouse_url)
    clients = []
    try:
        a = await aiohttp_client(create_app(cfg, store=store))
        b = await aiohttp_client(create_app(cfg, store=store))
        clients = [a, b]
        now = time.time()
        assert (await a.post("/api/v1/events", json=[event(), event("DOOR")])).status == 201
        slots = {last_slot()}
        await asyncio.gather(services(a).alerts.evaluator.on_data("HEAD_OFFICE", slots),
                             services(b).alerts.evaluator.on_data("HEAD_OFFICE", slots))
        store.insert("device_status", [["HEAD_OFFICE", "jetson-07", "seen", "", datetime.fromtimestamp(now - 90, timezone.utc), {}]],
                     ["site_name", "device_id", "kind", "status", "seen_at", "stats"])
        # Both periodic checks (every 0.3 s at this scale) see jetson-07 silent for 90 s.
        await received(receiver, lambda reqs: reqs if len({r["id"] for r in reqs}) == 3 else None)
        for app in (a, b):
            await _idle(services(app))
        await asyncio.sleep(services(a).alerts.deliverer.poll * 3)  # let any second sender show itself
        ids = receiver.delivered()
        assert len(ids) == len(set(ids)) == 3, receiver.requests
        # Both replicas attempting one pending alert at the same moment: one sends it.
        svc_a, svc_b = services(a), services(b)
        rule = svc_a.alert_rules[0]
        alert = make_alert(rule, svc_a.sites.get("HEAD_OFFICE"), time.time(), "race-1", "race")
        await svc_a.alerts.ledger.write([alert])
        await asyncio.gather(svc_a.alerts.deliverer._attempt(alert), svc_b.alerts.deliverer._attempt(alert))
        assert receiver.delivered().count("race-1") == 1
        claims = store.query("SELECT count() FROM alert_claims WHERE id = 'race-1'")[0][0]
        assert claims >= 2  # (the replicas' polls may have tried too)
    finally:
        for app in clients:
            await app.close()  # the apps stop before the store they share closes
        store.close()


async def test_a_claim_has_one_winner(clickhouse_url):
    from central.storage import schema

    store = Store(clickhouse_url)
    try:
        schema.migrate(store)
        ledger = Ledger(store)
        wins = await asyncio.gather(*(ledger.claim("alert-1", 1, "owner-%d" % i, lease=30, settle=0.1) for i in range(4)))
        assert sum(wins) == 1
        # A new attempt is a new contest; a lapsed lease lets a newcomer win.
        assert await ledger.claim("alert-1", 2, "late", lease=30, settle=0)
        await asyncio.sleep(0.3)
        assert await ledger.claim("alert-1", 1, "after-lease", lease=0.2, settle=0)
    finally:
        store.close()


def test_lease_holder_follows_lapsed_leases():
    claims = [("a", 0.0), ("b", 0.1), ("b2", 5.0), ("c", 10.5), ("a2", 11.0), ("d", 21.0)]
    assert lease_holder(claims[:2], 10) == "a"  # inside a's lease, b loses
    assert lease_holder(claims[:3], 10) == "a"  # losers' claims never extend a lease
    assert lease_holder(claims[:4], 10) == "c"  # a lapsed at 10.0: c wins afresh
    assert lease_holder(claims[:5], 10) == "c"
    assert lease_holder(claims, 10) == "d"
    assert lease_holder([], 10) is None
