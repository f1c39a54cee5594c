"""The page draws what the API says: colours, thresholds, utilisation, scales and states.

A central of this module's own (embedded chDB, no MQTT) with two sites: CAP, whose
intensity follows capacity with its own bands (``capacity_high = 80``,
``capacity_medium = 40``), and FIX, in fixed mode with capacities that must not colour
anything. Every tile, hour and matrix cell is compared with the API's JSON, fetched by
the test; the API's own answers are checked against central/openapi.json.
"""

from __future__ import annotations

import json
import time
from datetime import date, datetime, timedelta

import pytest
from zoneinfo import ZoneInfo

from central.app import OPENAPI_PATH
from tests.central import test_page as day
from tests.central._openapi import check, response_schema
from tests.central.test_page import WAIT_MS, api_json, own_central, post_events
from tests.central.test_page_views import OVERFLOW_JS
from tests.harness import eventually

browser = day.browser
tab = day.tab

pytestmark = pytest.mark.slow

DOC = json.loads(OPENAPI_PATH.read_text())
DAY = "2026-01-05"

SITES_TOML = """
[defaults]
timezone = "UTC"
high = 7
medium = 4

[sites.CAP]
display_name = "Capacity site"
timezone = "Europe/Berlin"
intensity = "capacity"
capacity_high = 80
capacity_medium = 40

[sites.CAP.zones.HALL]
display_name = "Main hall"
capacity = 10
x = 0
y = 0
w = 2
h = 1

[sites.CAP.zones.LAB]
display_name = "Lab"
capacity = 20
x = 2
y = 0
high = 30
medium = 2

[sites.CAP.zones.DESK]
display_name = "Conference Room"
x = 3
y = 0

[sites.CAP.zones.STORE]
display_name = "Store"
capacity = 4

[sites.FIX]
display_name = "Fixed site"
timezone = "Asia/Kolkata"

[sites.FIX.zones.ROOM]
display_name = "Meeting room"
capacity = 5

[sites.FIX.zones.YARD]
display_name = "Yard"
capacity = 40

[[alerts]]
name = "watch"
kind = "trigger"
sites = ["CAP"]
cameras = ["HALL"]
cooldown_minutes = 0
"""


def _events() -> list[dict]:
    out = []

    def add(site, camera, when, count, triggers=()):
        out.append({"site": site, "camera": camera, "timestamp": when, "people_count": count,
                    "triggers": list(triggers)})

    # CAP (UTC+1 in January). HALL: 8 of 10 is high at 80 % (its thresholds are 8 and 4).
    add("CAP", "HALL", DAY + "T10:05:00+01:00", 8)
    add("CAP", "HALL", DAY + "T11:05:00+01:00", 3)
    add("CAP", "LAB", DAY + "T10:10:00+01:00", 5)   # own thresholds 30 / 2: medium, 25 % of 20
    add("CAP", "DESK", DAY + "T09:00:00+01:00", 7)  # no capacity: the site's 7 / 4, high
    add("CAP", "STORE", DAY + "T12:00:00+01:00", 2)  # 2 of 4: medium from 40 % (2 people)
    # FIX (fixed mode): capacities give utilisation, never colour.
    add("FIX", "ROOM", DAY + "T10:00:00+05:30", 5)  # 100 % of 5, but medium (4 <= 5 < 7)
    add("FIX", "YARD", DAY + "T10:00:00+05:30", 12)  # 30 % of 40, but high (12 >= 7)
    return out


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    with own_central(tmp_path_factory.mktemp("page-rules"), SITES_TOML, _events(), "page-rules-seed") as base:
        yield base


def conforms(base: str, path: str, template: str) -> dict:
    body = api_json(base, path)
    assert check(DOC, response_schema(DOC, template, "get", 200), body) == [], body
    return body


def level_class(node) -> str:
    """The i-<level> colour class of an element."""
    found = [c[2:] for c in (node.get_attribute("class") or "").split() if c.startswith("i-")]
    assert len(found) == 1, node.get_attribute("class")
    return found[0]


@pytest.mark.parametrize("site", ["CAP", "FIX"])
def test_every_colour_is_the_api_intensity(central, tab, site):
    t = tab()
    page = t.open(central + "/?site=%s&date=%s" % (site, DAY))
    data = conforms(central, "/api/v1/dashboard/%s?date=%s" % (site, DAY), "/api/v1/dashboard/{site_name}")
    conforms(central, "/api/v1/sites", "/api/v1/sites")
    tiles = page.query_selector_all("#plan .zone")
    assert {t.get_attribute("data-zone") for t in tiles} >= set(data["zones"])
    for tile in tiles:
        zone = data["zones"].get(tile.get_attribute("data-zone"))
        want = zone["intensity"] if zone else "none"
        assert level_class(tile) == want, tile.get_attribute("data-zone")
        text = tile.query_selector(".z-level").text_content()
        assert text.lower().startswith(want if zone else "no data"), text
        if zone and "utilisation" in zone:
            assert "%d %% of" % round(zone["utilisation"] * 100) in text
    by_hour = {h["hour"]: h["intensity"] for h in data["hourly"]}
    for li in page.query_selector_all("#strip li"):
        assert level_class(li.query_selector(".h-bar")) == by_hour.get(int(li.get_attribute("data-hour")), "none")
    cells = {(z, r["hour"]): r["intensity"] for z, rows in data["zone_hourly"].items() for r in rows}
    tds = page.query_selector_all("#matrix-body td")
    assert len(tds) == 24 * len(tiles)
    for td in tds:
        key = (td.evaluate("c => c.parentElement.dataset.zone"), int(td.get_attribute("data-hour")))
        assert level_class(td) == cells.get(key, "none"), key
    # An hour on the strip recolours the plan with that hour's intensities, still the API's.
    page.click("#strip li[data-hour='10'] button")
    page.wait_for_selector("#plan[data-hour='10']", timeout=WAIT_MS)
    for tile in page.query_selector_all("#plan .zone"):
        assert level_class(tile) == cells.get((tile.get_attribute("data-zone"), 10), "none")
    assert t.errors == []


def test_capacity_thresholds_are_not_own_thresholds(central, tab):
    t = tab()
    page = t.open(central + "/?site=CAP&date=" + DAY)
    sites = {s["site_name"]: s for s in api_json(central, "/api/v1/sites")["sites"]}
    cap = sites["CAP"]
    assert (cap["intensity"], cap["capacity_high"], cap["capacity_medium"]) == ("capacity", 80, 40)
    assert sites["FIX"]["capacity_high"] is None
    origins = {z: v["threshold_origin"] for z, v in cap["zones"].items()}
    assert origins == {"HALL": "capacity", "LAB": "own", "DESK": "site", "STORE": "capacity"}
    for zone, origin in origins.items():
        tile = page.query_selector("[data-zone=%s]" % zone)
        assert tile.get_attribute("data-origin") == origin
        assert tile.query_selector(".z-level").text_content().endswith("*") == (origin == "own"), zone
        th = cap["zones"][zone]["thresholds"]
        title = tile.get_attribute("title")
        assert "high from %d, medium from %d people" % (th["high"], th["medium"]) in title, title
    assert "80 % and 40 % of its capacity" in page.get_attribute("[data-zone=HALL]", "title")
    legend = page.text_content("#legend")
    assert "* Lab has own thresholds" in legend and "Main hall has" not in legend
    assert "Main hall, Store by share of capacity: low under 40 %" in legend and "high 80 % or more" in legend
    # Zones' thresholds differ: a colour means "from that zone's threshold", said once, with
    # each zone's numbers; no swatch claims a number of people.
    assert "High: from its high threshold" in legend and "people" not in legend.split("No data")[0]
    limits = page.text_content("#legend-thresholds")
    assert all(x in limits for x in ("Main hall 4 / 8", "Lab 2 / 30", "Store 2 / 4", "other zones 4 / 7 (site)")), limits
    # In fixed mode nothing is coloured by capacity, and the legend does not say it is.
    page = t.open(central + "/?site=FIX&date=" + DAY)
    assert page.is_hidden("#legend-capacity") and page.is_hidden("#legend-thresholds")
    assert "High: 7 or more" in page.text_content("#legend")
    assert "own thresholds" not in page.text_content("#legend")
    assert t.errors == []


def test_busiest_zone_and_its_scale(central, tab):
    t = tab()
    page = t.open(central + "/?site=CAP&date=" + DAY)
    data = api_json(central, "/api/v1/dashboard/CAP?date=" + DAY)
    assert data["meta"]["sitewide"] == "busiest_zone"
    assert "busiest zone" in page.text_content("#hourly-title")
    # The busiest zone's peak is scaled by a zone's capacity (the largest, LAB's 20), not by
    # the sum of all capacities (34).
    assert page.text_content("#strip-scale").startswith("Bars: 0 to 20 people (the largest zone's capacity)")
    for row in data["hourly"]:
        height = page.eval_on_selector("#strip li[data-hour='%d'] .h-bar" % row["hour"], "b => b.style.height")
        assert height == "%d%%" % min(100, max(4, round(row["count"] / 20 * 100))), row
    # A past day's computation time has its date: a time alone would read as that day's.
    shown = page.text_content("#meta-computed")
    computed = datetime.fromisoformat(data["meta"]["computed_at"].replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Berlin"))
    assert str(computed.year) in shown and shown.endswith("site time"), shown
    assert t.errors == []


@pytest.fixture(scope="module")
def fired(central) -> dict:
    """An alert of the watch rule, fired now and published (the rule has no webhook)."""
    post_events(central, [{"site": "CAP", "camera": "HALL", "people_count": 1, "timestamp": time.time() - 5,
                           "triggers": ["RESTRICTED_ACCESS"]}], "page-rules-alert")

    def published():
        alerts = api_json(central, "/api/v1/alerts?site=CAP")["alerts"]
        return alerts if alerts and alerts[0]["delivery"]["state"] == "published" else None

    return eventually(published, 30, "the watch rule fired and was published")[0]


def test_all_sites_count_each_sites_alerts_of_its_day(central, tab, fired):
    local = fired["local_time"][:10]
    t = tab()
    page = t.open(central + "/?view=portfolio&date=" + local)
    rows = {r.get_attribute("data-site"): r for r in page.query_selector_all("#portfolio-body tr")}
    # From a day earlier in UTC: the site's local day may begin the UTC day before (CAP's
    # Berlin day starts at 23:00 UTC, when from=<local day>T00:00Z would lie in the future).
    since = (date.fromisoformat(local) - timedelta(days=1)).isoformat()
    alerts = api_json(central, "/api/v1/alerts?from=%sT00:00:00Z&limit=10000" % since)["alerts"]
    for site, tr in rows.items():
        want = sum(1 for a in alerts if a["site_name"] == site and a["local_time"][:10] == local)
        assert tr.get_attribute("data-alerts") == str(want), site
    assert int(rows["CAP"].get_attribute("data-alerts")) >= 1
    link = rows["CAP"].query_selector("a.alerts-link")
    assert "site=CAP" in link.get_attribute("href") and link.get_attribute("href").endswith("#alerts-panel")
    # Busiest zones by their display names.
    page = t.open(central + "/?view=portfolio&date=" + DAY)
    assert page.inner_text("#portfolio-body tr[data-site=FIX] td:nth-of-type(6)") == "Yard"
    assert t.errors == []


def test_alerts_name_their_zone_and_every_delivery_state(central, tab, fired):
    local = datetime.fromisoformat(fired["at"].replace("Z", "+00:00")).astimezone(ZoneInfo("Europe/Berlin")).date()
    page = tab().open(central + "/?site=CAP&date=%s" % local.isoformat())
    page.wait_for_selector("#alerts li", timeout=WAIT_MS)
    item = page.query_selector("#alerts li")
    # The rule's name ("watch") holds no word of the zone: the zone's display name is said.
    assert "Main hall" in item.query_selector(".a-what").text_content()
    assert item.query_selector(".a-state").text_content() == "published (no webhook)"
    # A count in the heading; each alert about a zone leads to that zone at its hour.
    assert page.text_content("#alerts-count") == str(len(page.query_selector_all("#alerts li")))
    hour = int(fired["local_time"][11:13])  # the API gives no slot yet: the hour it was judged
    go = item.query_selector(".a-go")
    assert go.text_content() == "Show Main hall at %02d:00" % hour
    go.click()
    page.wait_for_selector("#plan[data-hour='%d']" % hour, timeout=WAIT_MS)
    assert page.get_attribute("[data-zone=HALL]", "aria-pressed") == "true"
    assert page.evaluate("document.activeElement.dataset.zone") == "HALL"
    assert "Main hall" in page.text_content("#hourly-title")


def test_phone_floor_plan_is_cards_busiest_first(central, tab):
    """A four-column floor plan on a 390 px phone: two cards a row, busiest first, nothing
    sticking out of the screen."""
    t = tab(width=390, height=844)
    page = t.open(central + "/?site=CAP&date=" + DAY)
    assert page.evaluate(OVERFLOW_JS) == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    zones = api_json(central, "/api/v1/dashboard/CAP?date=" + DAY)["zones"]
    rank = {"high": 3, "medium": 2, "low": 1}
    want = sorted(zones, key=lambda z: (-rank[zones[z]["intensity"]], -zones[z].get("utilisation", -1), -zones[z]["peak"]))
    shown = page.evaluate("""() => Array.from(document.querySelectorAll('#plan .zone'))
        .map((b) => [b.getBoundingClientRect().top, b.getBoundingClientRect().left, b.dataset.zone])
        .sort((a, b) => a[0] - b[0] || a[1] - b[1]).map((x) => x[2])""")
    assert shown[:len(want)] == want
    # The zones-by-hour table opens at the day's first hour with data (09:00), not at 00:00.
    first = min(r["hour"] for rows in api_json(central, "/api/v1/dashboard/CAP?date=" + DAY)["zone_hourly"].values()
                for r in rows)
    assert first == 9
    seen = page.evaluate("""() => { const s = document.querySelector('.matrix-scroll');
        const box = s.getBoundingClientRect(), th = document.querySelectorAll('#matrix-head th')[10].getBoundingClientRect();
        return s.scrollLeft > 0 && th.left >= box.left && th.right <= box.right; }""")
    assert seen
    # Words stay whole: "Conference Room" breaks between its words, if at all.
    name = page.query_selector("[data-zone=DESK] .z-name")
    assert name.evaluate("n => n.scrollWidth <= n.clientWidth")
    assert t.errors == []


@pytest.mark.parametrize("site", ["CAP", "FIX"])
def test_typical_week_colours_are_the_api_intensity(central, tab, site):
    """Each cell of the range view's typical week has the class of the profile's intensity;
    a profile whose intensities disagree with the thresholds is drawn as sent, so the page
    classes no number itself."""
    prof = conforms(central, "/api/v1/profile/%s?weeks=8&end=%s" % (site, DAY), "/api/v1/profile/{site_name}")
    assert {c["intensity"] for c in prof["cells"]} >= {"high", None}
    url = central + "/?view=range&site=%s&from=%s&to=%s" % (site, DAY, DAY)

    def shown(page) -> dict:
        return {(int(td.get_attribute("data-weekday")), int(td.get_attribute("data-hour"))): level_class(td)
                for td in page.query_selector_all("#profile-body td")}

    t = tab()
    want = {(c["weekday"], c["hour"]): c["intensity"] or "none" for c in prof["cells"]}
    assert shown(t.open(url)) == want
    # The same cells with every intensity moved one step: the page follows the API.
    turn = {"low": "medium", "medium": "high", "high": "low", None: None}
    moved = {**prof, "cells": [{**c, "intensity": turn[c["intensity"]]} for c in prof["cells"]]}
    t = tab()
    t.page.route("**/api/v1/profile/**", lambda route: route.fulfill(json=moved))
    assert shown(t.open(url)) == {(c["weekday"], c["hour"]): c["intensity"] or "none" for c in moved["cells"]}
    assert t.errors == []
