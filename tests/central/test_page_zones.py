"""The range view's Zones table (central/static/js/zones.js) in real headless Chromium against
real central: the DOM equals GET /api/v1/zones, sorting, the "never above N %" filter and the
working-hours toggle.

Reuses the day view's module (``test_page``): the same seeded central, browser and tabs.
"""

from __future__ import annotations

import pytest

from tests.central import test_page as day
from tests.central.test_page import api_json

central = day.central
browser = day.browser
tab = day.tab

pytestmark = pytest.mark.slow

RANGE = "/?view=range&site=HEAD_OFFICE&from=2026-01-05&to=2026-01-11"
API = "/api/v1/zones/HEAD_OFFICE?from=2026-01-05&to=2026-01-11"
WORKING = "&hours=09:00-18:00&weekdays=mon,tue,wed,thu,fri"


def percent(value) -> str:
    return "%d %%" % round(value * 100)


def shown(page) -> list[str]:
    return [tr.get_attribute("data-zone") for tr in page.query_selector_all("#range-zones-body tr")]


def by_p95(zones: list[dict]) -> list[str]:
    """The default order: p95 utilisation, highest first, zones without one last by name."""
    with_value = sorted((z for z in zones if z["p95_utilisation"] is not None),
                        key=lambda z: (-z["p95_utilisation"], z["zone"]))
    return [z["zone"] for z in with_value] + sorted(z["zone"] for z in zones if z["p95_utilisation"] is None)


def test_zones_table_equals_the_api_and_filters(central, tab):
    t = tab()
    requests: list[str] = []
    t.page.on("request", lambda r: "/api/v1/zones/" in r.url and requests.append(r.url))
    page = t.open(central + RANGE, "ready")
    page.wait_for_selector("#range-zones-panel[data-state=ready]")
    data = api_json(central, API)
    zones = {z["zone"]: z for z in data["zones"]}
    assert any(z["capacity"] for z in zones.values()) and any(z["capacity"] is None for z in zones.values())
    assert shown(page) == by_p95(data["zones"])
    for tr in page.query_selector_all("#range-zones-body tr"):
        z = zones[tr.get_attribute("data-zone")]
        cells = [c.inner_text().strip() for c in tr.query_selector_all("td")]
        assert tr.query_selector("th").inner_text().strip() == z["display_name"]
        assert cells[0] == (str(z["capacity"]) if z["capacity"] else "\u2013")
        for value, text in zip((z["peak_utilisation"], z["p95_utilisation"], z["mean_utilisation"]), cells[1:4]):
            assert text == ("\u2013" if value is None else percent(value))
        assert cells[4] == percent(z["occupied_share"])
        assert cells[5] == (str(z["hours_over"]["80"]) if z["hours_over"] else "\u2013")
        assert tr.get_attribute("data-p95-utilisation") == ("" if z["p95_utilisation"] is None
                                                            else str(z["p95_utilisation"]))
    assert page.get_attribute("#range-zones-head th[data-key=p95_utilisation]", "aria-sort") == "descending"

    # Sorting is local: no refetch.
    before = len(requests)
    page.click("#range-zones-head th[data-key=zone] button")
    assert shown(page) == sorted(zones, key=lambda k: zones[k]["display_name"])
    assert page.get_attribute("#range-zones-head th[data-key=zone]", "aria-sort") == "ascending"
    assert len(requests) == before

    # "Never above N %": zones with a capacity whose peak stayed at or below N % of it.
    page.check("#range-zones-never")
    for limit in (40, 500):
        page.fill("#range-zones-limit", str(limit))
        want = [k for k in sorted(zones, key=lambda k: zones[k]["display_name"])
                if zones[k]["peak_utilisation"] is not None and zones[k]["peak_utilisation"] * 100 <= limit]
        assert shown(page) == want, limit
    page.uncheck("#range-zones-never")

    # Working hours refetch with hours and weekdays, and the table follows.
    page.check("#range-zones-working")
    page.wait_for_function("() => document.querySelector('#range-zones-panel').dataset.state === 'ready'"
                           " && document.querySelector('#range-zones-working').checked")
    page.wait_for_selector("#range-zones-panel[data-state=ready]")
    assert any(WORKING.replace(",", "%2C") in u or WORKING in u for u in requests)
    working = api_json(central, API + WORKING)
    assert working["zones"][0]["hours_in_range"] == 5 * 9  # Mon 5th to Fri 9th
    rows = {tr.get_attribute("data-zone"): tr for tr in page.query_selector_all("#range-zones-body tr")}
    for z in working["zones"]:
        got = rows[z["zone"]].get_attribute("data-peak-utilisation")
        assert got == ("" if z["peak_utilisation"] is None else str(z["peak_utilisation"]))
    assert "Hours with data: %d of 45 working hours" % working["zones"][0]["hours_with_data"] in page.inner_text(
        "#range-zones-note")
    assert t.errors == []


def test_zone_names_link_to_the_zones_range_and_sites_to_their_zones(central, tab):
    t = tab()
    requests: list[str] = []
    t.page.on("request", lambda r: "/api/v1/history/" in r.url and requests.append(r.url))
    page = t.open(central + RANGE, "ready")
    page.wait_for_selector("#range-zones-panel[data-state=ready]")
    link = page.query_selector("#range-zones-body tr[data-zone=EMPLOYEE_AREA] th a")
    assert link.get_attribute("href").endswith(RANGE[1:] + "&zone=EMPLOYEE_AREA")
    link.click()
    t.wait("ready", view="range")
    page.wait_for_function("() => document.querySelector('#range').dataset.zone === 'EMPLOYEE_AREA'")
    assert any("zone=EMPLOYEE_AREA" in u for u in requests)
    hist = api_json(central, "/api/v1/history/HEAD_OFFICE?from=2026-01-05&to=2026-01-11&bucket=day&zone=EMPLOYEE_AREA")
    site = api_json(central, "/api/v1/history/HEAD_OFFICE?from=2026-01-05&to=2026-01-11&bucket=day")
    assert hist["totals"]["peak"] != site["totals"]["peak"]  # the zone's own numbers, not the site's
    peaks = [tr.get_attribute("data-peak") for tr in page.query_selector_all("#range-body tr")]
    assert peaks == [str(s["peak"]) for s in hist["series"]]
    assert "zone=EMPLOYEE_AREA" in page.url and page.inner_text("#range-title").startswith("Head")
    assert page.inner_text("#profile-note").startswith("Whole site.")
    assert page.get_attribute("#range-whole-site", "href").endswith(RANGE[1:])
    # All sites: each site links to its zones table, the 7 days ending on its day.
    page = t.open(central + "/?view=portfolio&date=2026-01-05", "ready")
    href = page.get_attribute("#portfolio-body tr[data-site=HEAD_OFFICE] a.zones-link", "href")
    assert href.endswith("?view=range&site=HEAD_OFFICE&from=2025-12-30&to=2026-01-05#range-zones-panel")
    assert t.errors == []


def test_all_sites_shortlist_is_every_sites_zones_by_p95(central, tab):
    t = tab()
    page = t.open(central + "/?view=portfolio&date=2026-01-05", "ready")
    page.wait_for_selector("#shortlist-panel[data-state=ready]")
    data = api_json(central, "/api/v1/zones?from=2025-12-30&to=2026-01-05")
    with_value = sorted((z for z in data["zones"] if z["p95_utilisation"] is not None),
                        key=lambda z: (-z["p95_utilisation"], z["site_name"], z["zone"]))
    rest = sorted((z for z in data["zones"] if z["p95_utilisation"] is None), key=lambda z: (z["site_name"], z["zone"]))
    want = [(z["site_name"], z["zone"]) for z in with_value + rest][:50]
    assert len({s for s, _ in want}) > 1 and with_value  # several sites, some with capacities
    rows = page.query_selector_all("#shortlist-body tr")
    assert [(tr.get_attribute("data-site"), tr.get_attribute("data-zone")) for tr in rows] == want
    by_key = {(z["site_name"], z["zone"]): z for z in data["zones"]}
    for tr in rows:
        z = by_key[(tr.get_attribute("data-site"), tr.get_attribute("data-zone"))]
        cells = [c.inner_text().strip() for c in tr.query_selector_all("td")]
        assert cells[2] == ("no data" if z["hours_with_data"] == 0 else "\u2013" if z["p95_utilisation"] is None
                            else percent(z["p95_utilisation"]))
        assert tr.query_selector("th a").get_attribute("href").endswith(
            "?view=range&site=%s&from=2025-12-30&to=2026-01-05&zone=%s" % (z["site_name"], z["zone"]))
    assert t.errors == []


def test_working_hours_are_the_sites_own(tmp_path, tab):
    """A site with ``working_hours`` and ``working_days`` in the sites file: the toggle says
    them, as the API gives them, and asks for them."""
    sites_toml = day.SITES_TOML.replace('display_name = "Head office"\n', 'display_name = "Head office"\n'
                                        'working_hours = "22:00-06:00"\nworking_days = ["sat", "sun"]\n', 1)
    with day.own_central(tmp_path, sites_toml, day._events(), "working") as base:
        assert api_json(base, API)["working_hours"] == {"hours": "22:00-06:00", "weekdays": ["sat", "sun"]}
        t = tab()
        requests: list[str] = []
        t.page.on("request", lambda r: "/api/v1/zones/" in r.url and requests.append(r.url))
        page = t.open(base + RANGE, "ready")
        page.wait_for_selector("#range-zones-panel[data-state=ready]")
        assert page.inner_text("#range-zones-working-label").strip() == "Working hours (22:00\u201306:00, Sat Sun)"
        page.check("#range-zones-working")
        page.wait_for_selector("#range-zones-panel[data-state=ready]")
        t.page.wait_for_function("() => document.querySelector('#range-zones-note').innerText.includes('working')")
        assert any("hours=22:00-06:00&weekdays=sat%2Csun" in u or "hours=22:00-06:00&weekdays=sat,sun" in u
                   for u in requests), requests
        assert t.errors == []
