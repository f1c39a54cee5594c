"""Alert delivery under faults: the webhook receiver down for two minutes, central SIGKILLed
between firing an alert and delivering it, a receiver answering 500 three times.

Central runs as ``python -m central serve`` on chDB in its own directory; alerts come from
raw ingest (``POST /api/v1/events``) with triggers; the receiver is a real aiohttp server
(``tests.harness.WebhookReceiver``). ``HEATMAP_ALERT_TIME_SCALE`` runs the real retry
schedule faster: at 0.1 the receiver's two minutes down are 12 s and the backoff that starts
at 1 s starts at 0.1 s.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections import Counter
from datetime import datetime, timezone

import pytest

from tests.fault.conftest import record, wait_until
from tests.harness import WebhookReceiver

pytestmark = [pytest.mark.fault]

SECRET = "fault-secret"
SITE = "ALERT_SITE"


@pytest.fixture
def receiver():
    r = WebhookReceiver()
    yield r
    r.close()


def sites_file(tmp_path, receiver: WebhookReceiver) -> str:
    path = tmp_path / "sites.toml"
    path.write_text("""
[sites.%s]
timezone = "Asia/Kolkata"

[[alerts]]
name = "restricted"
kind = "trigger"
cooldown_minutes = 0
webhook = "%s"
""" % (SITE, receiver.url))
    return str(path)


def start_central(spawn, tmp_path, receiver, scale: str, **env):
    make_central, _ = spawn
    return make_central(None, HEATMAP_SITES_FILE=sites_file(tmp_path, receiver), HEATMAP_WEBHOOK_SECRET=SECRET,
                        HEATMAP_ALERT_TIME_SCALE=scale, **env).start()


def post_triggers(central, cameras: list[str], at: float) -> None:
    """One RESTRICTED_ACCESS per camera; each raises its (zone, slot) count, so each fires."""
    events = [{"site": SITE, "camera": cam, "people_count": 1, "triggers": ["RESTRICTED_ACCESS"],
               "timestamp": datetime.fromtimestamp(at, timezone.utc).isoformat()} for cam in cameras]
    status, body = central.get("/api/v1/events", method="POST", body=json.dumps(events).encode(),
                               headers={"Content-Type": "application/json"})
    assert status == 201, body


def listed(central) -> list[dict]:
    status, body = central.get("/api/v1/alerts?site=%s" % SITE)
    assert status == 200, body
    return json.loads(body)["alerts"]


def recent_second() -> float:
    """A moment in the previous 15-minute slot (all of a test's events share one slot)."""
    return int(time.time()) // 900 * 900 - 900 + 60


def check_signature(request: dict) -> None:
    expected = "sha256=" + hmac.new(SECRET.encode(), request["body"], hashlib.sha256).hexdigest()
    assert request["headers"].get("X-Heatmap-Signature") == expected


def test_receiver_down_two_minutes_then_back(spawn, tmp_path, receiver):
    """Receiver down (connection refused) for 2 minutes at scale 0.1 (12 s) while alerts fire:
    every alert is delivered after it comes back, each id once."""
    central = start_central(spawn, tmp_path, receiver, "0.1")
    at = recent_second()
    cameras = ["DOOR_%d" % i for i in range(4)]
    post_triggers(central, cameras, at)
    post_triggers(central, cameras[:2], at + 1)  # counts 2 in two zones: two more alerts
    fired = wait_until("6 alerts fired and failing", lambda: (lambda a: a if len(a) == 6 and all(
        x["delivery"]["attempts"] >= 1 for x in a) else None)(listed(central)), 30)
    down_from = time.monotonic()
    time.sleep(12)  # the outage itself: 2 minutes at scale 0.1
    failures = central.metric("heatmap_alert_attempts_failed_total")
    receiver.start()
    back = time.monotonic()
    ids = {a["id"] for a in fired}
    receiver.wait(lambda reqs: ids <= {r["id"] for r in reqs if r["status"] == 200}, 60, "every alert delivered")
    recover = time.monotonic() - back
    wait_until("delivered state", lambda: all(a["delivery"]["state"] == "delivered" for a in listed(central)), 30)
    delivered = Counter(receiver.delivered())
    assert set(delivered) == ids and all(n == 1 for n in delivered.values()), delivered
    for req in receiver.requests:
        check_signature(req)
    assert failures >= 6 * 3  # each alert was retried during the outage (0.1, 0.2, 0.4, ... s)
    assert central.metric("heatmap_alerts_delivered_total") == 6
    assert central.stop() == 0
    record("webhook receiver down 2 min (x0.1)", {"sent": 6, "got": len(delivered), "lost": len(ids - set(delivered)),
                                                  "doubled": sum(n - 1 for n in delivered.values())}, recover,
           dashboard=len(delivered), outage_s=round(back - down_from, 1), failed_attempts=int(failures))


def test_central_sigkilled_between_firing_and_delivering(spawn, tmp_path, receiver):
    """The first attempt is held open by the receiver when central is SIGKILLed: the alert is
    already stored, and the restarted central delivers it (same id, same body)."""
    receiver.script = [0]  # hold the first request
    receiver.start()
    central = start_central(spawn, tmp_path, receiver, "0.05", HEATMAP_WEBHOOK_TIMEOUT="3")
    post_triggers(central, ["VAULT"], recent_second())
    held = receiver.wait(lambda reqs: reqs, 30, "the first attempt")[0]
    central.kill()
    killed = time.monotonic()
    receiver.release()
    central.start()
    receiver.wait(lambda reqs: held["id"] in receiver.delivered(), 60, "delivery after the restart")
    recover = time.monotonic() - killed
    again = [r for r in receiver.requests if r["status"] == 200]
    assert [r["id"] for r in again] == [held["id"]] and again[0]["body"] == held["body"]
    check_signature(again[0])
    wait_until("delivered state", lambda: [a["delivery"]["state"] for a in listed(central)] == ["delivered"], 30)
    assert central.stop() == 0
    record("central SIGKILL before delivery", {"sent": 1, "got": 1, "lost": 0, "doubled": 0}, recover,
           attempts_seen=len(receiver.requests))


def test_receiver_answering_500_three_times(spawn, tmp_path, receiver):
    """500, 500, 500, then 200: delivered on the fourth attempt, same id and body, each signed."""
    receiver.script = [500, 500, 500]
    receiver.start()
    central = start_central(spawn, tmp_path, receiver, "0.05")
    post_triggers(central, ["LAB"], recent_second())
    reqs = receiver.wait(lambda reqs: reqs if len(reqs) >= 4 else None, 60, "four attempts")
    assert [r["status"] for r in reqs] == [500, 500, 500, 200]
    assert len({r["id"] for r in reqs}) == 1 and len({r["body"] for r in reqs}) == 1
    assert [r["headers"]["X-Heatmap-Attempt"] for r in reqs] == ["1", "2", "3", "4"]
    for req in reqs:
        check_signature(req)
    alert = wait_until("delivered state", lambda: (lambda a: a[0] if a and a[0]["delivery"]["state"] == "delivered"
                                                   else None)(listed(central)), 30)
    assert alert["delivery"]["attempts"] == 4 and alert["id"] == reqs[0]["id"]
    assert central.metric("heatmap_alert_attempts_failed_total") == 3
    assert central.stop() == 0
