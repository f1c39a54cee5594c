"""The ``unusual`` alert kind end to end: weeks of history written as central receives it
(raw events, device contact), a slot judged on the on_data path at a pinned clock, the alert
delivered to a real webhook receiver. The judged instants are fixed times of day on the day
three days ago (as in test_alerts.py: the alerts table keeps 90 days and delivery looks at
recent alerts only, so not a fixed calendar date); the history is the same weekday 1..n weeks
before it, in HEAD_OFFICE (UTC: no clock change in the way).
"""

from __future__ import annotations

import json
import logging
from datetime import datetime, timedelta, timezone

import pytest

from central.alerts.rules import parse_rules
from central.exceptions import SitesFileError
from central.sites import Sites
from tests.central.conftest import services
from tests.central.test_alerts import _idle, pinned, received, rules_file

RULE = """
[sites.HEAD_OFFICE.zones.SERVER_ROOM]
display_name = "Server room"
[sites.HEAD_OFFICE.zones.SHOP_FLOOR]
display_name = "Shop floor"

[[alerts]]
name = "unusual-presence"
kind = "unusual"
sites = ["HEAD_OFFICE"]
cooldown_minutes = 0
webhook = "%s"
"""


def raw(camera: str, ts: float, people: int) -> dict:
    return {"site": "HEAD_OFFICE", "camera": camera, "people_count": people,
            "timestamp": datetime.fromtimestamp(ts, timezone.utc).isoformat()}


async def history(client, day_ts: float, weeks: int) -> None:
    """``weeks`` same weekdays before ``day_ts``: devices up all day, nobody in the server
    room, 10..14 people on the shop floor at 10:00 (a usual crowd)."""
    events, heard = [], []
    for k in range(1, weeks + 1):
        start = day_ts - 7 * 86400 * k
        heard += [start + 900 * i for i in range(96)]
        events += [raw("SHOP_FLOOR", start + 10 * 3600 + 60 * k, 10 + k % 5), raw("SHOP_FLOOR", start + 14 * 3600, 3)]
    assert (await client.post("/api/v1/events", json=events)).status == 201
    services(client).store.insert("device_slots", [["HEAD_OFFICE", "dev1", datetime.fromtimestamp(t, timezone.utc)]
                                                   for t in heard], ["site_name", "device_id", "slot"])


async def judge(client, camera: str, at: float, people: int) -> list:
    assert (await client.post("/api/v1/events", json=[raw(camera, at, people)])).status == 201
    svc = services(client)
    await _idle(svc)  # the app's own judging of the write (at the real clock: too old, nothing)
    return await svc.alerts.evaluator.on_data("HEAD_OFFICE", {int(at) // 900 * 900}, now=at + 5)


async def test_fires_on_presence_where_there_is_usually_nobody(tmp_path, make_client, receiver):
    client = await make_client(sites_file=rules_file(tmp_path, RULE % receiver.url))
    day = pinned(0)
    await history(client, day, 8)
    at = pinned(3, 10)
    fired = await judge(client, "SERVER_ROOM", at, 3)
    assert len(fired) == 1
    body = json.loads((await received(receiver, lambda reqs: reqs))[0]["body"])
    weekday = datetime.fromtimestamp(at, timezone.utc).strftime("%A")
    assert (body["kind"], body["cam_name"], body["value"], body["threshold"]) == ("unusual", "SERVER_ROOM", 3, 1)
    assert body["message"] == ("3 people in Server room at 03:10; usually nobody on a %s at 03:00 "
                               "(Head office, zone SERVER_ROOM)" % weekday)
    # A camera neither configured nor seen in the weeks is new: not judged.
    assert await judge(client, "NEW_CAMERA", pinned(3, 20), 3) == []
    # The same slot judged again (a replay, another replica) fires nothing new.
    assert await services(client).alerts.evaluator.on_data("HEAD_OFFICE", {int(at) // 900 * 900}, now=at + 9) == []


async def test_silent_on_a_usual_crowd_and_fires_on_twice_the_usual(tmp_path, make_client, receiver):
    client = await make_client(sites_file=rules_file(tmp_path, RULE % receiver.url))
    await history(client, pinned(0), 8)
    # Peaks at 10:00 over the 8 weeks: 11 12 13 14 10 11 12 13; high (90th, nearest rank) 14;
    # the tolerance (2 standard deviations of a count of 14: ceil(2 x 3.74) = 8) puts the
    # threshold at 22: 21 is a swing, not unusual.
    assert await judge(client, "SHOP_FLOOR", pinned(10, 5), 14) == []
    assert await judge(client, "SHOP_FLOOR", pinned(10, 35), 21) == []
    # At 11:00 (usually nobody on the days behind), the 10:00 crowd lingering is not unusual.
    assert await judge(client, "SHOP_FLOOR", pinned(11, 10), 12) == []
    fired = await judge(client, "SHOP_FLOOR", pinned(10, 20), 28)
    assert [(a.cam_name, a.value) for a in fired] == [("SHOP_FLOOR", 28)]
    body = json.loads((await received(receiver, lambda reqs: reqs))[0]["body"])
    assert body["threshold"] == 22 and "usually 10-14 (median 12)" in body["message"]


async def test_tolerance_zero_fires_at_high_plus_min_people(tmp_path, make_client, receiver):
    client = await make_client(sites_file=rules_file(tmp_path, RULE % receiver.url + "tolerance = 0\nmin_people = 2\n"))
    await history(client, pinned(0), 8)
    assert await judge(client, "SHOP_FLOOR", pinned(10, 5), 15) == []
    fired = await judge(client, "SHOP_FLOOR", pinned(10, 20), 16)
    assert [(a.cam_name, a.value, json.loads(a.body)["threshold"]) for a in fired] == [("SHOP_FLOOR", 16, 16)]


async def test_silent_with_two_weeks_of_history_and_says_so_once(tmp_path, make_client, receiver, caplog):
    with caplog.at_level(logging.INFO, logger="central.alerts.evaluate"):
        # (The start-up sweep judges today's recent slots: silent already, and said so.)
        client = await make_client(sites_file=rules_file(tmp_path, RULE % receiver.url))
        await history(client, pinned(0), 2)
        assert await judge(client, "SERVER_ROOM", pinned(3, 10), 5) == []
        assert await judge(client, "SERVER_ROOM", pinned(4, 10), 5) == []
        assert await judge(client, "SHOP_FLOOR", pinned(10, 10), 50) == []
    said = [r.getMessage() for r in caplog.records if "is silent for HEAD_OFFICE" in r.getMessage()]
    assert len(said) == 1 and "(it needs 3)" in said[0], said
    assert receiver.requests == []


def test_the_rule_keys(tmp_path):
    path = tmp_path / "sites.toml"
    path.write_text('[sites.A]\ntimezone = "UTC"\n[[alerts]]\nname = "u"\nkind = "unusual"\n'
                    '[[alerts]]\nname = "v"\nkind = "unusual"\nweeks = 4\nmin_people = 2\ntolerance = 0.5\n')
    rules = parse_rules(Sites.load(path))
    assert [(r.kind, r.weeks, r.min_people, r.tolerance) for r in rules] == [("unusual", 8, 1, 2.0),
                                                                             ("unusual", 4, 2, 0.5)]
    path.write_text('[sites.A]\ntimezone = "UTC"\n[[alerts]]\nname = "u"\nkind = "unusual"\nweeks = 0\n'
                    'min_people = 1.5\nthreshold = 3\ntolerance = -1\n')
    with pytest.raises(SitesFileError) as info:
        parse_rules(Sites.load(path))
    text = str(info.value)
    assert "weeks must be a whole number in 1..52" in text and "min_people must be a whole number" in text
    assert "unknown key 'threshold' for kind unusual" in text
    assert "tolerance must be" in text


def test_history_days_are_the_same_weekday():
    day = datetime.fromtimestamp(pinned(0), timezone.utc)
    assert all((day - timedelta(days=7 * k)).weekday() == day.weekday() for k in range(1, 9))
