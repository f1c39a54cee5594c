"""The page's portfolio, range and export in real headless Chromium against real central.

Reuses the day view's module (``test_page``): the same seeded central, browser and tabs. Every
number shown is compared with the API's own JSON, fetched by the test.
"""

from __future__ import annotations

import time
import urllib.parse
from pathlib import Path

import pytest

from tests.central import test_page as day
from tests.central.test_page import READ_TOKEN, SCREENSHOTS, _request, api_json, digits, post_events

# The day view's module fixtures: one seeded central and one browser for both modules' tests.
central = day.central
browser = day.browser
tab = day.tab

pytestmark = pytest.mark.slow


def query(page) -> dict:
    return dict(urllib.parse.parse_qsl(urllib.parse.urlparse(page.url).query))


def shoot(page, name: str) -> None:
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / name), full_page=True)


def test_portfolio_numbers_sorting_and_links(central, tab):
    t = tab()
    requests: list[str] = []
    t.page.on("request", lambda r: "/api/v1/" in r.url and requests.append(r.url))
    page = t.open(central + "/?view=portfolio&date=2026-01-05", "ready")
    assert page.get_attribute("#main", "data-view") == "portfolio"
    data = api_json(central, "/api/v1/overview?date=2026-01-05")
    rows = page.query_selector_all("#portfolio-body tr")
    # Sorted by events by default (every site has them; utilisation needs capacities).
    assert [r.get_attribute("data-site") for r in rows] == [s["site_name"] for s in
                                                           api_json(central, "/api/v1/overview?date=2026-01-05&sort=-events")["sites"]]
    zone_names = {s["site_name"]: {z: v["display_name"] for z, v in s["zones"].items()}
                  for s in api_json(central, "/api/v1/sites")["sites"]}
    by_site = {r.get_attribute("data-site"): r for r in rows}
    assert set(by_site) == {s["site_name"] for s in data["sites"]}
    for s in data["sites"]:
        tr = by_site[s["site_name"]]
        cells = tr.query_selector_all("td")
        assert tr.get_attribute("data-events") == str(s["events"])
        assert digits(cells[2].inner_text()) == s["events"]
        assert tr.get_attribute("data-critical") == str(s["critical_events"])
        if s["peak"] is None:
            assert tr.get_attribute("data-peak") == ""
        else:
            assert digits(cells[1].inner_text()) == s["peak"]
        if s["utilisation"] is None:
            assert tr.get_attribute("data-utilisation") == ""
        else:
            assert float(tr.get_attribute("data-utilisation")) == s["utilisation"]
            assert cells[0].inner_text().strip() == "%d %%" % round(s["utilisation"] * 100)
        # The busiest zone by its display name (the camera name in the tooltip).
        busiest = tr.query_selector("td:nth-of-type(6)")
        if s["busiest_zone"]:
            want = zone_names.get(s["site_name"], {}).get(s["busiest_zone"], s["busiest_zone"])
            assert (busiest.inner_text(), busiest.get_attribute("title")) == (want, s["busiest_zone"])
        assert tr.get_attribute("data-alerts") == "0"  # the seed's events are too old to alert
    # Sorting is local (no refetch) and lives in the URL.
    before = len(requests)
    page.click("#portfolio-head th[data-key=peak] button")
    assert query(page)["sort"] == "-peak"
    got = [int(r.get_attribute("data-peak") or -1) for r in page.query_selector_all("#portfolio-body tr")]
    assert got == sorted(got, reverse=True)
    assert page.get_attribute("#portfolio-head th[data-key=peak]", "aria-sort") == "descending"
    page.keyboard.press("Enter")  # focus stays on the header: keyboard toggles the order
    assert query(page)["sort"] == "peak"
    assert len(requests) == before
    shoot(page, "portfolio-desktop.png")
    # A row leads to its site's day.
    page.click("#portfolio-body tr[data-site=HEAD_OFFICE] a")
    t.wait("ready", view="day", site="HEAD_OFFICE", date="2026-01-05")
    assert any("/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05" in u for u in requests)
    assert "view" not in query(page)
    assert t.errors == []


def test_range_numbers_compare_and_profile(central, tab):
    t = tab()
    requests: list[str] = []
    t.page.on("request", lambda r: "/api/v1/" in r.url and requests.append(r.url))
    url = "/?view=range&site=HEAD_OFFICE&from=2026-01-05&to=2026-01-11&compare=previous"
    page = t.open(central + url, "ready")
    hist = api_json(central, "/api/v1/history/HEAD_OFFICE?from=2026-01-05&to=2026-01-11&bucket=day&compare=previous")
    prof = api_json(central, "/api/v1/profile/HEAD_OFFICE?weeks=8&end=2026-01-11")
    rows = page.query_selector_all("#range-body tr")
    assert len(rows) == len(hist["series"]) == 7
    for tr, s, p in zip(rows, hist["series"], hist["previous"]["series"]):
        assert tr.get_attribute("data-day") == s["start"][:10]
        assert tr.get_attribute("data-peak") == str(s["peak"])
        assert tr.get_attribute("data-events") == str(s["events"])
        if tr.get_attribute("data-no-data"):  # a day without data (test_range_tells_missing_days_from_zero)
            assert s["events"] == 0 and tr.query_selector_all("td")[1].inner_text() == "\u2013"
        else:
            assert digits(tr.query_selector_all("td")[1].inner_text()) == s["events"]
        assert tr.get_attribute("data-previous-peak") == str(p["peak"])
    total = page.inner_text("#range-totals [data-total=events] .value")
    assert digits(total) == hist["totals"]["events"]
    cells = {(c["weekday"], c["hour"]): c for c in prof["cells"]}
    for td in page.query_selector_all("#profile-body td"):
        c = cells[(int(td.get_attribute("data-weekday")), int(td.get_attribute("data-hour")))]
        mean = td.get_attribute("data-mean")
        assert (mean == "" and c["peak_mean"] is None) or float(mean) == c["peak_mean"]
    assert any(float(td.get_attribute("data-mean") or 0) > 0 for td in page.query_selector_all("#profile-body td"))
    shoot(page, "range-desktop.png")
    # Turning the comparison off refetches without it and drops it from the URL.
    requests.clear()
    renders = page.get_attribute("#main", "data-renders")
    page.click("#range-compare")
    page.wait_for_function("r => document.querySelector('#main').dataset.renders !== r"
                           " && document.querySelector('#main').dataset.state === 'ready'", arg=renders)
    assert any("/history/HEAD_OFFICE" in u and "compare" not in u for u in requests)
    assert "compare" not in query(page)
    # 31 days ending on the range's last day.
    page.click("#range-31")
    t.wait("ready", view="range", date="2025-12-12/2026-01-11")
    assert query(page)["from"] == "2025-12-12"
    assert len(page.query_selector_all("#range-body tr")) == 31
    # Another site keeps the range and fetches that site's history and profile.
    requests.clear()
    page.select_option("#site", "WAREHOUSE")
    t.wait("ready", view="range", site="WAREHOUSE", date="2025-12-12/2026-01-11")
    assert any("/history/WAREHOUSE?from=2025-12-12&to=2026-01-11" in u for u in requests)
    assert any("/profile/WAREHOUSE" in u for u in requests)
    wh = api_json(central, "/api/v1/history/WAREHOUSE?from=2025-12-12&to=2026-01-11&bucket=day")
    assert digits(page.inner_text("#range-totals [data-total=events] .value")) == wh["totals"]["events"]
    assert t.errors == []


def test_export_downloads_what_is_shown(central, tab):
    t = tab()
    page = t.open(central + "/?site=HEAD_OFFICE&date=2026-01-05", "ready")
    with page.expect_download() as info:
        page.click("#export")
    download = info.value
    status, body = _request(central + "/api/v1/export/HEAD_OFFICE?from=2026-01-05&to=2026-01-05&bucket=hour&format=csv",
                            READ_TOKEN)
    assert status == 200
    assert Path(download.path()).read_bytes() == body
    assert download.suggested_filename.startswith("HEAD_OFFICE_2026-01-05_2026-01-05")
    # The range view exports its days.
    page.click(".view-tab[data-view=range]")
    t.wait("ready", view="range")
    with page.expect_download() as info:
        page.click("#export")
    q = query(page)
    status, body = _request(central + "/api/v1/export/HEAD_OFFICE?from=%s&to=%s&bucket=day&format=csv"
                            % (q["from"], q["to"]), READ_TOKEN)
    assert Path(info.value.path()).read_bytes() == body
    assert t.errors == []


@pytest.mark.parametrize("view", ["portfolio", "range"])
def test_phone_width(central, tab, view):
    t = tab(width=390, height=844)
    url = {"portfolio": "/?view=portfolio&date=2026-01-05",
           "range": "/?view=range&site=HEAD_OFFICE&from=2026-01-05&to=2026-01-11&compare=previous"}[view]
    page = t.open(central + url, "ready")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    shoot(page, "%s-phone.png" % view)
    assert t.errors == []


def test_hour_on_the_strip_recolours_the_plan(central, tab):
    t = tab()
    page = t.open(central + "/?site=HEAD_OFFICE&date=2026-01-05", "ready")
    data = api_json(central, "/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05")
    before = len(t.dashboard_requests)
    renders = page.get_attribute("#main", "data-renders")
    page.focus("#strip li[data-hour='9'] button")
    page.keyboard.press("Enter")
    page.wait_for_selector("#plan[data-hour='9']", timeout=30000)
    assert page.get_attribute("#strip li[data-hour='9'] button", "aria-pressed") == "true"
    at_nine = {zone: r for zone, rows in data["zone_hourly"].items() for r in rows if r["hour"] == 9}
    assert at_nine, "the fixture has zones at 09:00"
    for tile in page.query_selector_all("#plan .zone"):
        r = at_nine.get(tile.get_attribute("data-zone"))
        if r is None:
            assert tile.get_attribute("data-peak") == ""
        else:
            assert digits(tile.query_selector(".z-peak").text_content()) == r["count"]
            assert digits(tile.query_selector(".z-events").text_content()) == r["events"]
    assert "09:00" in page.text_content("#plan-hour")
    # Choosing an hour re-renders what the page has: no new request.
    assert len(t.dashboard_requests) == before
    assert page.get_attribute("#main", "data-renders") != renders
    page.keyboard.press("Enter")
    page.wait_for_selector("#plan[data-hour='']", timeout=30000)
    employee = page.query_selector("[data-zone=EMPLOYEE_AREA]")
    assert digits(employee.query_selector(".z-peak").text_content()) == data["zones"]["EMPLOYEE_AREA"]["peak"]
    # EMPLOYEE_AREA has a capacity of 10: its share is the API's utilisation, shown on the tile;
    # the site's intensity is fixed, so the colour is the API's intensity, not the share.
    share = data["zones"]["EMPLOYEE_AREA"]["utilisation"]
    assert share == data["zones"]["EMPLOYEE_AREA"]["peak"] / 10
    assert float(employee.get_attribute("data-utilisation")) == share
    assert employee.get_attribute("data-level") == data["zones"]["EMPLOYEE_AREA"]["intensity"]
    assert "%d %% of 10" % round(share * 100) in employee.text_content()
    assert page.is_hidden("#legend-capacity")
    assert "high from 10, medium from 5" in page.get_attribute("[data-zone=RECEPTION_AREA]", "title")
    assert t.errors == []


def test_today_has_a_now_marker_and_a_dimmed_future(central, tab):
    t = tab()
    # 10:30 in Kolkata on 2026-01-05, the fixture's day.
    t.page.clock.set_fixed_time("2026-01-05T05:00:00Z")
    page = t.open(central + "/?site=HEAD_OFFICE", "ready")
    assert page.get_attribute("#main", "data-date") == "2026-01-05"
    assert page.get_attribute("#strip li[data-hour='10']", "class").split().count("now") == 1
    future = [int(li.get_attribute("data-hour")) for li in page.query_selector_all("#strip li.future")]
    assert future == list(range(11, 24))
    assert t.errors == []


def test_todays_portfolio_refreshes_in_place(central, tab):
    t = tab()
    page = t.open(central + "/?view=portfolio&refresh=1", "ready")
    row = page.query_selector("#portfolio-body tr[data-site=HEAD_OFFICE]")
    before = int(row.get_attribute("data-events"))
    page.evaluate("""() => { window.__states = [];
        new MutationObserver(() => window.__states.push(document.getElementById('main').dataset.state))
            .observe(document.getElementById('main'), {attributes: true, attributeFilter: ['data-state']}); }""")
    post_events(central, [{"site": "HEAD_OFFICE", "camera": "LOBBY_PORTFOLIO", "people_count": 3,
                           "timestamp": time.time() - 30, "triggers": []}], "page-portfolio-today")
    page.wait_for_selector("#portfolio-body tr[data-site=HEAD_OFFICE][data-events='%d']" % (before + 1),
                           timeout=30000)
    assert row.evaluate("r => r.isConnected")
    assert "loading" not in page.evaluate("window.__states")
    assert t.errors == []


# Elements that stick out of a 390 px viewport: none, except inside the two grids that are
# wider than a phone by nature (zones x 24 hours, weekdays x 24 hours), which scroll
# sideways inside their own panel; every other area fits without scrolling.
OVERFLOW_JS = """() => {
    const W = document.documentElement.clientWidth;
    const allowed = (el) => el.closest('.matrix-scroll, [aria-labelledby=profile-title]');
    const name = (el) => el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') +
        (typeof el.className === 'string' && el.className ? '.' + el.className.trim().split(/\\s+/).join('.') : '');
    const out = [];
    for (const el of document.querySelectorAll('body *')) {
        if (allowed(el) && !el.matches('.matrix-scroll, [aria-labelledby=profile-title]')) continue;
        if (el.closest('.skip, .visually-hidden')) continue;  // off-screen on purpose
        const r = el.getBoundingClientRect();
        if (!r.width || !r.height || getComputedStyle(el).visibility === 'hidden') continue;
        if (r.right > W + 1 || r.left < -1) out.push(name(el) + ' ' + Math.round(r.left) + '..' + Math.round(r.right));
        const o = getComputedStyle(el).overflowX;
        if ((o === 'auto' || o === 'scroll') && el.scrollWidth > el.clientWidth + 1 && !allowed(el))
            out.push(name(el) + ' scrolls ' + el.scrollWidth + ' in ' + el.clientWidth);
    }
    return out;
}"""


@pytest.mark.parametrize("url", [
    "/?site=HEAD_OFFICE&date=2026-01-05",
    "/?view=portfolio&date=2026-01-05",
    "/?view=range&site=HEAD_OFFICE&from=2026-01-05&to=2026-01-11&compare=previous",
])
def test_nothing_overflows_a_phone(central, tab, url):
    t = tab(width=390, height=844)
    page = t.open(central + url, "ready")
    assert page.evaluate(OVERFLOW_JS) == []
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert t.errors == []


def test_range_tells_missing_days_from_zero(central, tab):
    # HEAD_OFFICE's data begins on 5 January: the week before (the previous period) has none,
    # and 7-11 January have neither events nor device contact. They read "no data", not 0,
    # the comparison "no data before", and the typical week says how many weeks had data.
    t = tab()
    page = t.open(central + "/?view=range&site=HEAD_OFFICE&from=2026-01-05&to=2026-01-11&compare=previous", "ready")
    hist = api_json(central, "/api/v1/history/HEAD_OFFICE?from=2026-01-05&to=2026-01-11&bucket=day&compare=previous")
    assert hist["data_range"]["first_day"] == "2026-01-05"
    rows = {tr.get_attribute("data-day"): tr for tr in page.query_selector_all("#range-body tr")}
    for s in hist["series"]:
        tr = rows[s["start"][:10]]
        cells = [td.inner_text().strip() for td in tr.query_selector_all("td")]
        if s["start"][:10] in ("2026-01-05", "2026-01-06"):
            assert tr.get_attribute("data-no-data") == "" and digits(cells[0]) == s["peak"] > 0
        else:
            assert s["events"] == 0 and s["coverage"] == 0
            assert tr.get_attribute("data-no-data") in ("offline", "after") and cells[0] == "no data"
            assert cells[3] == "\u2013"  # utilisation, not 0 %
        assert cells[5] == "no data"  # the previous week: before the site's first data
        assert cells[6] == "\u2013"  # and no change against it
    for key in ("peak", "events", "critical"):
        assert page.inner_text("#range-totals [data-total=%s] .diff" % key) == "no data before"
    prof = api_json(central, "/api/v1/profile/HEAD_OFFICE?weeks=8&end=2026-01-11")
    assert prof["weeks_with_data"] == 1
    assert page.inner_text("#profile-note").startswith("1 of 8 weeks with data from ")
    # A range wholly before the data: its totals read "no data" too.
    t.open(central + "/?view=range&site=HEAD_OFFICE&from=2025-12-01&to=2025-12-07", "ready")
    assert page.inner_text("#range-totals [data-total=peak] .value") == "no data"
    assert {tr.get_attribute("data-no-data") for tr in page.query_selector_all("#range-body tr")} == {"before"}
    assert t.errors == []


def test_range_daily_chart(central, tab):
    # Peak per day as SVG above the table: a dot per day with data (days without data are
    # gaps, not 0), weekends shaded, the previous period dashed.
    t = tab()
    page = t.open(central + "/?view=range&site=HEAD_OFFICE&from=2026-01-05&to=2026-01-11&compare=previous", "ready")
    hist = api_json(central, "/api/v1/history/HEAD_OFFICE?from=2026-01-05&to=2026-01-11&bucket=day&compare=previous")
    dots = {c.get_attribute("data-day"): c.get_attribute("data-peak") for c in page.query_selector_all("#range-chart circle")}
    assert dots == {s["start"][:10]: str(s["peak"]) for s in hist["series"] if s["start"][:10] in ("2026-01-05", "2026-01-06")}
    weekends = [r.get_attribute("data-day") for r in page.query_selector_all("#range-chart rect.weekend")]
    assert weekends == ["2026-01-10", "2026-01-11"]
    assert page.get_attribute("#range-chart path.now", "data-points") == "2"
    assert page.get_attribute("#range-chart path.prev", "data-points") == "0"  # the week before the data
    assert "highest %d" % hist["totals"]["peak"] in page.text_content("#range-chart-title")
    # The chart stands above the day-by-day table.
    assert page.evaluate("() => !!(document.querySelector('#range-chart').compareDocumentPosition("
                         "document.querySelector('#range-days')) & Node.DOCUMENT_POSITION_FOLLOWING)")
    # A previous period with data: its line is drawn, dashed.
    t.open(central + "/?view=range&site=HEAD_OFFICE&from=2026-01-06&to=2026-01-06&compare=previous", "ready")
    assert page.get_attribute("#range-chart path.prev", "data-points") == "1"
    assert page.evaluate("() => getComputedStyle(document.querySelector('#range-chart path.prev')).strokeDasharray") \
        not in ("", "none")
    # Without compare there is no previous line.
    t.open(central + "/?view=range&site=HEAD_OFFICE&from=2026-01-05&to=2026-01-11", "ready")
    assert page.query_selector("#range-chart path.prev") is None
    assert t.errors == []
