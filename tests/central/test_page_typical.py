"""The typical band and ``now`` on the day view (central/static/js/typical.js) in a real
headless Chromium against a real ``python -m central serve``: the band behind each hour
and the "vs a typical Monday" note equal /api/v1/typical; today's tiles equal the
dashboard's ``now`` as their big number (a past day's: its peak). The band's dates are
fixed; the ``now`` test reads the wall clock (marker ``clock``).
"""

from __future__ import annotations

import time
from datetime import datetime, timedelta

import pytest
from zoneinfo import ZoneInfo

from tests.central import test_page as day
from tests.central.test_page import WAIT_MS, api_json, own_central, post_events
from tests.central.test_page_a11y import AXE
from tests.central.test_page_views import OVERFLOW_JS

browser = day.browser
tab = day.tab

pytestmark = pytest.mark.slow

KOLKATA = ZoneInfo("Asia/Kolkata")
DAY = datetime(2026, 1, 5, tzinfo=KOLKATA)  # a Monday; HEAD_OFFICE is Asia/Kolkata


@pytest.fixture
def central(tmp_path):
    with own_central(tmp_path) as base:
        yield base


def seed(base: str) -> None:
    """Four Mondays before DAY and DAY itself: people in the employee area 09:00-12:00."""
    events = []
    for k in range(0, 5):
        start = DAY - timedelta(days=7 * k)
        for hour in (9, 10, 11):
            for people in (2 + k, 4 + k % 3, 3 + 2 * (k == 0)):
                ts = (start + timedelta(hours=hour, minutes=5 * people)).timestamp()
                events.append({"site": "HEAD_OFFICE", "camera": "EMPLOYEE_AREA", "people_count": people,
                               "timestamp": ts})
    # The day itself: a crowd at the reception, usually empty then (the site-wide note moves, the
    # employee area's does not).
    events.append({"site": "HEAD_OFFICE", "camera": "RECEPTION_AREA", "people_count": 20,
                   "timestamp": (DAY + timedelta(hours=15)).timestamp()})
    post_events(base, events, "typical-seed")


def test_the_band_and_the_note_equal_the_api(central, tab):
    seed(central)
    doc = api_json(central, "/api/v1/typical/HEAD_OFFICE?date=2026-01-05")
    bands = {h["hour"]: h for h in doc["hourly"] if h["median"] is not None}
    # A raw-only site: a day with data counts for all its hours (0 outside 09-12).
    assert sorted(bands) == list(range(24)) and doc["vs_typical"] is not None
    assert [h for h in bands if bands[h]["high"] > 0] == [9, 10, 11]
    t = tab()
    page = t.open(central + "/?site=HEAD_OFFICE&date=2026-01-05")
    page.wait_for_selector("#strip[data-typical=shown]", timeout=WAIT_MS)
    for li in page.query_selector_all("#strip li"):
        hour = int(li.get_attribute("data-hour"))
        got = [li.get_attribute("data-" + k) for k in ("low", "median", "high")]
        band = li.query_selector(".h-band")
        if hour in bands:
            assert got == [str(bands[hour][k]) for k in ("low", "median", "high")], hour
            assert band.is_visible() and li.query_selector(".h-median").is_visible()
            assert "Typical %d to %d, median %d." % (bands[hour]["low"], bands[hour]["high"],
                                                     bands[hour]["median"]) in li.text_content()
        else:
            assert got == ["", "", ""] and not band.is_visible(), hour
    pct = round((doc["vs_typical"] - 1) * 100)
    want = "usual for a Monday" if pct == 0 else "%s%d %% vs a typical Monday" % ("+" if pct > 0 else "\u2212", abs(pct))
    assert page.text_content("#typical-note") == want
    assert float(page.get_attribute("#typical-note", "data-vs")) == doc["vs_typical"]
    # Each tile: its zone against its typical.
    for tile in page.query_selector_all("#plan button[data-zone]"):
        ratio_ = doc["zones_vs_typical"].get(tile.get_attribute("data-zone"))
        if ratio_ is None:
            assert tile.query_selector(".z-typical") is None
        else:
            assert float(tile.get_attribute("data-vs-typical")) == ratio_
            p = round((ratio_ - 1) * 100)
            assert tile.query_selector(".z-typical").text_content() == (
                "usual for a Monday" if p == 0 else "%s%d %% vs a typical Monday" % ("+" if p > 0 else "\u2212", abs(p)))
    assert doc["zones_vs_typical"]["EMPLOYEE_AREA"] is not None
    # A past day has no now: the tiles show the day's figures only.
    assert page.query_selector_all("#plan .z-now") == []
    # Selecting a zone: the zone's band.
    page.click("[data-zone=EMPLOYEE_AREA]")
    zone = api_json(central, "/api/v1/typical/HEAD_OFFICE?date=2026-01-05&zone=EMPLOYEE_AREA")
    assert zone["vs_typical"] is not None and zone["vs_typical"] != doc["vs_typical"]
    page.wait_for_function("v => Number(document.getElementById('typical-note').dataset.vs) === v",
                           arg=zone["vs_typical"], timeout=WAIT_MS)
    medians = {h["hour"]: str(h["median"]) for h in zone["hourly"] if h["median"] is not None}
    assert {int(li.get_attribute("data-hour")): li.get_attribute("data-median")
            for li in page.query_selector_all("#strip li") if li.get_attribute("data-median")} == medians
    assert t.errors == []


@pytest.mark.clock
def test_today_tiles_show_now(central, tab):
    """Today each tile's big number is now (the current slot), the day's peak beside it;
    a past day's big number is its peak, without now."""
    now = time.time()
    yesterday = datetime.fromtimestamp(now - 86400, KOLKATA).date().isoformat()
    events = [{"site": "HEAD_OFFICE", "camera": "EMPLOYEE_AREA", "people_count": 4, "timestamp": now},
              {"site": "HEAD_OFFICE", "camera": "EMPLOYEE_AREA", "people_count": 9, "timestamp": now - 86400}]
    earlier = now - 1800  # a busier slot earlier today (not at every instant: after midnight it is yesterday)
    busier = datetime.fromtimestamp(earlier, KOLKATA).date() == datetime.fromtimestamp(now, KOLKATA).date()
    if busier:
        events.append({"site": "HEAD_OFFICE", "camera": "EMPLOYEE_AREA", "people_count": 7, "timestamp": earlier})
    post_events(central, events, "typical-now")
    t = tab()
    page = t.open(central + "/?site=HEAD_OFFICE")
    page.wait_for_selector("#plan [data-zone=EMPLOYEE_AREA] .z-now", timeout=WAIT_MS)
    date = page.get_attribute("#main", "data-date")
    data = api_json(central, "/api/v1/dashboard/HEAD_OFFICE?date=" + date)
    if page.get_attribute("#main", "data-as-of") != data["now"]["as_of"][11:16]:
        pytest.skip("the slot ended between the page's answer and the test's (rare)")
    tiles = page.query_selector_all("#plan button[data-zone]")
    assert {tile.get_attribute("data-zone") for tile in tiles} <= set(data["now"]["zones"])
    for tile in tiles:
        zone = tile.get_attribute("data-zone")
        z = data["now"]["zones"][zone]
        day_peak = data["zones"][zone]["peak"] if zone in data["zones"] else 0
        assert tile.query_selector(".z-peak").text_content() == str(z["peak"]), zone
        assert tile.query_selector(".z-unit").text_content() == "now"
        assert tile.query_selector(".z-day").text_content() == "peak %d today" % day_peak, zone
        assert tile.get_attribute("data-now-peak") == str(z["peak"])
        # Coloured by now where the zone had events today; uncoloured where it had none.
        assert tile.get_attribute("data-intensity") == (z["intensity"] if zone in data["zones"] else "none"), zone
        text = tile.query_selector(".z-now").text_content()
        assert text.endswith("as of " + data["now"]["as_of"][11:16]), text
        if z["share"] is not None:
            assert text.startswith("%d %% of" % round(z["share"] * 100)), text
    if busier and date == datetime.fromtimestamp(now, KOLKATA).date().isoformat():
        # The day's peak (7) beside the big number, which is now's (4 if the slot has not moved).
        assert page.text_content("[data-zone=EMPLOYEE_AREA] .z-day") == "peak 7 today"
        assert data["now"]["zones"]["EMPLOYEE_AREA"]["peak"] != 7
    # A past day: the big number is the day's peak, and nothing says now.
    page = t.open(central + "/?site=HEAD_OFFICE&date=" + yesterday)
    past = api_json(central, "/api/v1/dashboard/HEAD_OFFICE?date=" + yesterday)
    assert "now" not in past and past["zones"]["EMPLOYEE_AREA"]["peak"] >= 9
    assert page.query_selector_all("#plan .z-now") == [] and page.get_attribute("#main", "data-as-of") == ""
    for tile in page.query_selector_all("#plan button[data-zone]"):
        z = past["zones"].get(tile.get_attribute("data-zone"))
        assert tile.query_selector(".z-peak").text_content() == (str(z["peak"]) if z else "\u2013")
        assert tile.query_selector(".z-unit").text_content() == "peak"
        assert tile.query_selector(".z-day").is_hidden()
    # The portfolio's Now column: each site's current slot, as the overview says.
    page = t.open(central + "/?view=portfolio")
    overview = {s["site_name"]: s for s in api_json(central, "/api/v1/overview")["sites"]}
    tr = page.query_selector("#portfolio-body tr[data-site=HEAD_OFFICE]")
    if int(time.time()) // 900 == int(now) // 900:
        assert tr.get_attribute("data-now-peak") == str(overview["HEAD_OFFICE"]["now_peak"]) == "4"
    assert t.errors == []


def test_portfolio_now_and_vs_typical_columns_equal_the_overview(central, tab):
    seed(central)
    data = api_json(central, "/api/v1/overview?date=2026-01-05")
    t = tab()
    page = t.open(central + "/?view=portfolio&date=2026-01-05")
    rows = {r.get_attribute("data-site"): r for r in page.query_selector_all("#portfolio-body tr")}
    assert set(rows) == {s["site_name"] for s in data["sites"]}
    keys = [th.get_attribute("data-key") for th in page.query_selector_all("#portfolio-head th")]
    for s in data["sites"]:
        tr = rows[s["site_name"]]
        cells = dict(zip(keys, tr.query_selector_all("th, td"), strict=True))
        now_cell, vs_cell = cells["now_peak"], cells["vs_typical"]
        assert s["now_peak"] is None and tr.get_attribute("data-now-peak") == "" and now_cell.inner_text() == "\u2013"
        if s["vs_typical"] is None:
            assert tr.get_attribute("data-vs-typical") == "" and vs_cell.inner_text() == "\u2013"
        else:
            assert float(tr.get_attribute("data-vs-typical")) == s["vs_typical"]
            pct = round((s["vs_typical"] - 1) * 100)
            assert vs_cell.inner_text() == ("usual" if pct == 0 else "%s%d %%" % ("+" if pct > 0 else "\u2212", abs(pct)))
    assert any(s["vs_typical"] is not None for s in data["sites"])
    head = "#portfolio-head th[data-key=vs_typical]"
    page.click(head + " button")
    if page.get_attribute(head, "aria-sort") != "descending":
        page.click(head + " button")
    assert page.get_attribute("#portfolio-head th[data-key=vs_typical]", "aria-sort") == "descending"
    order = [s["site_name"] for s in api_json(central, "/api/v1/overview?date=2026-01-05&sort=-vs_typical")["sites"]]
    assert [r.get_attribute("data-site") for r in page.query_selector_all("#portfolio-body tr")] == order
    assert t.errors == []


# Each tile's figures inside the tile (the plan's cards are two a row on a phone).
INSIDE_TILES_JS = """() => Array.from(document.querySelectorAll('#plan .zone')).flatMap((b) => {
    const box = b.getBoundingClientRect();
    return Array.from(b.querySelectorAll('.z-figures > *, .z-now, .z-foot > *'))
        .filter((c) => c.getBoundingClientRect().width > 0)
        .filter((c) => c.getBoundingClientRect().right > box.right + 1 || c.getBoundingClientRect().left < box.left - 1)
        .map((c) => b.dataset.zone + ' ' + c.className);
})"""


@pytest.mark.clock
def test_today_tiles_fit_a_phone(central, tab):
    """Today's tiles (now, the day's peak beside it, "as of") at 390 x 844: nothing sticks
    out of the screen or out of its tile, with numbers of several digits."""
    now = time.time()
    post_events(central, [{"site": "HEAD_OFFICE", "camera": cam, "people_count": n, "timestamp": now}
                          for cam, n in (("EMPLOYEE_AREA", 1234), ("RECEPTION_AREA", 88), ("CAFETERIA", 7),
                                         ("BOSS_CABIN", 1))], "typical-phone")
    t = tab(width=390, height=844)
    page = t.open(central + "/?site=HEAD_OFFICE")
    page.wait_for_selector("#plan [data-zone=EMPLOYEE_AREA] .z-now", timeout=WAIT_MS)
    assert page.evaluate(OVERFLOW_JS) == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert page.evaluate(INSIDE_TILES_JS) == []
    assert t.errors == []


@pytest.mark.clock
@pytest.mark.parametrize("width,height", [(1280, 900), (390, 844)])
def test_today_has_no_serious_accessibility_violations(central, tab, width, height):
    """axe-core on today's view (now on the tiles, later hours dimmed), which the a11y
    module's fixed dates never show."""
    post_events(central, [{"site": "HEAD_OFFICE", "camera": "EMPLOYEE_AREA", "people_count": 3,
                           "timestamp": time.time()}], "typical-axe")
    t = tab(width=width, height=height)
    page = t.open(central + "/?site=HEAD_OFFICE")
    page.wait_for_selector("#plan [data-zone=EMPLOYEE_AREA] .z-now", timeout=WAIT_MS)
    page.evaluate(AXE.read_text(encoding="utf-8"))
    result = page.evaluate("""() => axe.run(document, {runOnly: {type: 'tag',
        values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'best-practice']}})""")
    bad = [(v["id"], [n["target"] for n in v["nodes"]][:5]) for v in result["violations"]
           if v["impact"] in ("serious", "critical")]
    assert bad == [] and result["passes"]
    assert t.errors == []
