"""Alert delivery's bounds: rules removed while alerts were pending, the per-rule rate bound
and its summary, the webhook address policy at delivery, and what ``last_error`` may show.
The real app on chDB and a real aiohttp receiver, as in test_alerts.py."""

from __future__ import annotations

import json
import time

from central.alerts.evaluate import make_alert
from tests.central.conftest import services
from tests.central.test_alerts import _idle, event, metric, pinned, received, rules_file
from tests.harness import WebhookReceiver, eventually_async, free_port

AUTH = {"Authorization": "Bearer r"}


async def test_pending_alerts_of_a_removed_rule_are_cancelled_not_sent(tmp_path, make_client):
    """Central stops while a rule's alert waits for a retry; it restarts without the rule:
    the alert is listed ``cancelled`` and the receiver, back up, never gets it."""
    receiver = WebhookReceiver()  # not started: its port refuses connections
    try:
        first = await make_client(alert_time_scale=0.05, read_token="r", sites_file=rules_file(tmp_path, """
[[alerts]]
name = "gone"
kind = "trigger"
cooldown_minutes = 0
webhook = "%s"
""" % receiver.url))
        assert (await first.post("/api/v1/events", json=[event()])).status == 201
        ledger = services(first).alerts.ledger

        async def failed_once():
            rows = await ledger.listing("HEAD_OFFICE", 0, time.time() + 60, 10)
            return rows if rows and rows[0].attempts >= 1 else None

        (alert,) = await eventually_async(failed_once, message="the first attempt did not fail")
        assert alert.state == "pending"
        await first.close()
        receiver.start()
        second = await make_client(alert_time_scale=0.05, read_token="r", sites_file=rules_file(tmp_path, """
[[alerts]]
name = "kept"
kind = "trigger"
webhook = "%s"
""" % receiver.url))

        async def cancelled():
            doc = await (await second.get("/api/v1/alerts", headers=AUTH)).json()
            return doc["alerts"] if doc["alerts"] and doc["alerts"][0]["delivery"]["state"] == "cancelled" else None

        (listed,) = await eventually_async(cancelled, message="the removed rule's alert was not cancelled")
        assert listed["id"] == alert.id and "rule gone is no longer in the sites file" in listed["delivery"]["last_error"]
        assert await metric(second, "heatmap_alerts_cancelled_total") == 1
        # The start sweeps the last hour: the rule "kept" fires on the same event, an alert of
        # its own, and is delivered (the deliverer polled after the cancel); the cancelled
        # alert is never taken again.
        await eventually_async(lambda: receiver.requests or None, message="the kept rule's alert was not delivered")
        deliverer = services(second).alerts.deliverer
        assert alert.id not in [a.id for a in await deliverer.ledger.due(time.time() + 3600, 0)]
        assert [json.loads(r["body"])["rule"] for r in receiver.requests] == ["kept"]
    finally:
        receiver.close()


async def test_a_burst_past_max_per_minute_is_folded_into_one_summary(tmp_path, make_client, receiver):
    """One request with 12 zones' triggers: 3 alerts sent, 9 folded and listed as such, and one
    summary alert after the minute says how many and where."""
    client = await make_client(read_token="r", sites_file=rules_file(tmp_path, """
[[alerts]]
name = "restricted"
kind = "trigger"
cooldown_minutes = 0
max_per_minute = 3
webhook = "%s"
""" % receiver.url))
    svc = services(client)
    at = pinned(10, 0, 30)  # three days ago: the app's own judging (last hour only) leaves it
    slot = int(at) // 900 * 900
    cameras = ["CAM_%02d" % i for i in range(12)]
    assert (await client.post("/api/v1/events", json=[event(c, at=at) for c in cameras])).status == 201
    now = at + 5
    fired = await svc.alerts.evaluator.on_data("HEAD_OFFICE", {slot}, now=now)
    assert len(fired) == 12
    assert sorted(a.state for a in fired) == ["folded"] * 9 + ["pending"] * 3
    await received(receiver, lambda reqs: reqs if len(reqs) >= 3 else None)
    # Judged again (a replica, a restart): nothing new, and the bound still holds.
    assert await svc.alerts.evaluator.on_data("HEAD_OFFICE", {slot}, now=now + 1) == []
    # The minute is not over: no summary yet. Once it is, one, and only once.
    assert await svc.alerts.evaluator.summarise(now=now + 10) == []
    (summary,) = await svc.alerts.evaluator.summarise(now=now + 60)
    assert await svc.alerts.evaluator.summarise(now=now + 90) == []
    body = json.loads(summary.body)
    assert (body["kind"], body["rule"], body["value"], body["threshold"], body["cam_name"]) == (
        "summary", "restricted", 9, 3, None)
    folded = sorted(a.cam_name for a in fired if a.state == "folded")
    assert ", ".join(folded[:10]) in body["message"]
    reqs = await received(receiver, lambda reqs: reqs if len(reqs) >= 4 else None)
    await _idle(svc)
    kinds = sorted(json.loads(r["body"])["kind"] for r in receiver.requests)
    assert kinds == ["summary", "trigger", "trigger", "trigger"], reqs
    doc = await (await client.get("/api/v1/alerts?from=2000-01-01", headers=AUTH)).json()
    states = sorted(a["delivery"]["state"] for a in doc["alerts"])
    assert states == ["delivered"] * 4 + ["folded"] * 9
    assert await metric(client, "heatmap_alerts_folded_total") == 9
    # The next minute has its own bound.
    assert (await client.post("/api/v1/events", json=[event(c, at=at + 61) for c in cameras[:2]])).status == 201
    later = await svc.alerts.evaluator.on_data("HEAD_OFFICE", {slot}, now=now + 61)
    assert [a.state for a in later] == ["pending", "pending"]


async def test_a_host_name_is_judged_on_the_address_it_resolves_to(tmp_path, make_client, receiver):
    """``localhost`` passes the start-up check (a name), but with HEATMAP_WEBHOOK_TARGETS=public
    it resolves to loopback only: refused at delivery, nothing reaches the receiver."""
    url = receiver.url.replace("127.0.0.1", "localhost")
    client = await make_client(read_token="r", webhook_targets="public", sites_file=rules_file(tmp_path, """
[[alerts]]
name = "restricted"
kind = "trigger"
webhook = "%s"
""" % url))
    svc = services(client)
    rule = svc.alert_rules[0]
    alert = make_alert(rule, svc.sites.get("HEAD_OFFICE"), time.time(), "resolved-1", "m")
    await svc.alerts.ledger.write([alert])
    await svc.alerts.deliverer._attempt(alert)
    stored = await svc.alerts.ledger.get("HEAD_OFFICE", "resolved-1")
    assert stored.state == "pending" and stored.attempts == 1
    assert stored.last_error.startswith("refused: localhost: ") and "private or loopback" in stored.last_error
    assert stored.last_error.endswith("(http://localhost:%d)" % receiver.port)
    assert receiver.requests == []


async def test_stored_alerts_are_judged_again_at_delivery_and_errors_show_the_origin_only(tmp_path, make_client):
    """Alerts stored by an older version (or before the sites file changed) carry their own
    webhook: a metadata address is refused without a connection, and no error text shows a
    URL's path or query (they may carry a token)."""
    port = free_port()  # nothing listens there
    client = await make_client(webhook_timeout=2, sites_file=rules_file(tmp_path, """
[[alerts]]
name = "restricted"
kind = "trigger"
webhook = "http://127.0.0.1:%d/x"
""" % port))
    svc = services(client)
    rule = svc.alert_rules[0]
    site = svc.sites.get("HEAD_OFFICE")
    cases = {
        "meta-1": ("http://169.254.169.254/latest/meta-data/iam?token=SECRET",
                   "refused: 169.254.169.254 is link-local or a metadata address"),
        "bad-port-1": ("http://127.0.0.1:99999/hook/SECRET?key=SECRET", "InvalidUrlClientError (http://127.0.0.1)"),
        "bad-host-1": ("http://exa mple.com/hook/SECRET?key=SECRET", "ClientConnectorDNSError: "),
        "refused-1": ("http://user:SECRET@127.0.0.1:%d/hook/SECRET?key=SECRET" % port, "ClientConnectorError: "),
    }
    for ident, (url, _) in cases.items():
        alert = make_alert(rule, site, time.time(), ident, "m")
        alert = alert.__class__(**{**alert.__dict__, "webhook": url})
        await svc.alerts.ledger.write([alert])
        await svc.alerts.deliverer._attempt(alert)
    for ident, (_url, needle) in cases.items():
        stored = await svc.alerts.ledger.get("HEAD_OFFICE", ident)
        assert stored.attempts == 1 and stored.last_error.startswith(needle), stored.last_error
        assert "SECRET" not in stored.last_error and "/hook" not in stored.last_error, stored.last_error
        assert stored.last_error.endswith(")")
