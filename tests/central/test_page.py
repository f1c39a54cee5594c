"""The heatmap page in a real headless Chromium against a real ``python -m central serve``.

One central process (embedded chDB in a temp dir, no MQTT) serves the page and the API for
the whole module, with a read token and an ingest token; raw events are seeded through
``POST /api/v1/events``. The browser is Debian's Chromium driven by Playwright's sync API.
Numbers on the page are compared with the API's own JSON, fetched by the test.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from contextlib import contextmanager
from datetime import date, datetime, timedelta
from datetime import time as dtime
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from playwright.sync_api import sync_playwright
from zoneinfo import ZoneInfo

from shared.paho_close import stop_client
from shared.protocol import SlotState, StateBatch, Status, encode
from shared.topics import state_topic, status_topic
from tests.harness import Mosquitto, eventually, free_port, wait_for_port

pytestmark = pytest.mark.slow

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "screenshots"
READ_TOKEN = "read-secret-1"
INGEST_TOKEN = "ingest-secret-1"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
# Generous: CI machines run several suites at once; a passing wait returns at once anyway.
WAIT_MS = 30000
HOSTILE_NAME = 'Dock <b id="injected">&amp;</b> yard'

SITES_TOML = """
[defaults]
timezone = "UTC"
high = 7
medium = 4

[sites.HEAD_OFFICE]
display_name = "Head office"
timezone = "Asia/Kolkata"

[sites.HEAD_OFFICE.zones.EMPLOYEE_AREA]
display_name = "Employee Area"
capacity = 10
x = 0
y = 0
w = 2
h = 1

[sites.HEAD_OFFICE.zones.RECEPTION_AREA]
display_name = "Reception"
high = 10
medium = 5
x = 2
y = 0
w = 1
h = 2

[sites.HEAD_OFFICE.zones.CAFETERIA]
display_name = "Cafeteria"
x = 0
y = 1
w = 1
h = 1

[sites.HEAD_OFFICE.zones.BOSS_CABIN]
display_name = "Boss cabin"

[sites.WAREHOUSE]
display_name = "Warehouse"
timezone = "America/New_York"

[sites.WAREHOUSE.zones.DOCK]
display_name = %s

[sites.LORD_HOWE]
timezone = "Australia/Lord_Howe"

[[alerts]]
name = "vault-access"
kind = "trigger"
sites = ["HEAD_OFFICE"]
cameras = ["VAULT"]
cooldown_minutes = 0
""" % json.dumps(HOSTILE_NAME)


def _events() -> list[dict]:
    """Raw events on two local days at HEAD_OFFICE (+05:30) and one at WAREHOUSE."""
    out = []

    def add(site, camera, when, count, triggers=()):
        out.append({"site": site, "camera": camera, "timestamp": when,
                    "people_count": count, "triggers": list(triggers)})

    for minute, count in ((5, 3), (20, 8), (40, 6)):
        add("HEAD_OFFICE", "EMPLOYEE_AREA", "2026-01-05T10:%02d:00+05:30" % minute, count,
            ["UNAUTHORIZED_STRANGER"] if count == 8 else [])
    add("HEAD_OFFICE", "RECEPTION_AREA", "2026-01-05T09:10:00+05:30", 6, ["RESTRICTED_ACCESS"])
    add("HEAD_OFFICE", "RECEPTION_AREA", "2026-01-05T09:50:00+05:30", 11,
        ["CROWD_VIOLATION", "RESTRICTED_ACCESS"])
    add("HEAD_OFFICE", "CAFETERIA", "2026-01-05T00:15:00+05:30", 2)  # 18:45 UTC the day before
    add("HEAD_OFFICE", "CAFETERIA", "2026-01-05T23:45:00+05:30", 1)
    add("HEAD_OFFICE", "SIDE_DOOR", "2026-01-05T14:00:00+05:30", 4, ["UNAUTHORIZED_STRANGER"])
    add("HEAD_OFFICE", "EMPLOYEE_AREA", "2026-01-06T11:00:00+05:30", 2)
    add("HEAD_OFFICE", "CAFETERIA", "2026-01-06T13:30:00+05:30", 9, ["CROWD_VIOLATION"])
    add("WAREHOUSE", "DOCK", "2026-01-05T07:30:00-05:00", 5)
    add("WAREHOUSE", "YARD", "2026-01-05T22:30:00-05:00", 12, ["RESTRICTED_ACCESS"])
    # New York clock changes: 02:00 is skipped on 2026-03-08, 01:00 happens twice on 2026-11-01.
    add("WAREHOUSE", "DOCK", "2026-03-08T10:00:00-04:00", 3)
    add("WAREHOUSE", "DOCK", "2026-11-01T01:30:00-04:00", 2)
    add("WAREHOUSE", "YARD", "2026-11-01T01:30:00-05:00", 6)
    # Lord Howe moves its clock by 30 minutes: 01:30-02:00 twice on 2026-04-05, and
    # 02:00-02:30 skipped on 2026-10-04.
    add("LORD_HOWE", "GATE", "2026-04-05T01:45:00+11:00", 4)
    add("LORD_HOWE", "GATE", "2026-10-04T02:45:00+11:00", 5)
    return out


# One edge device reports EMPLOYEE_AREA 10:00-10:15 local on 2026-01-05 (04:30 UTC) itself,
# with other numbers than the raw rows of that slot: the page must show the edge ones.
EDGE_SLOT = 1767587400
EDGE_STATE = SlotState("EMPLOYEE_AREA", EDGE_SLOT, peak=9, events=4, rev=1,
                       triggers={"UNAUTHORIZED_STRANGER": 2})


def publish_edge(broker: Mosquitto) -> None:
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="page-jetson-01")
    try:
        client.connect("127.0.0.1", broker.port)
        client.loop_start()
        now = time.time()
        for topic, payload, retain in (
            (status_topic("HEAD_OFFICE", "jetson-01"),
             encode(Status("HEAD_OFFICE", "jetson-01", "online", now)), True),
            (state_topic("HEAD_OFFICE", "jetson-01"),
             encode(StateBatch("HEAD_OFFICE", "jetson-01", 1, now, (EDGE_STATE,))), False),
        ):
            client.publish(topic, payload, qos=1, retain=retain).wait_for_publish(10)
    finally:
        client.loop_stop()
        stop_client(client)  # as before: the DISCONNECT sent from here, then paho's sockets closed


def _request(url, token=None, body=None, headers=None):
    req = urllib.request.Request(url, data=body, headers=dict(headers or {}))
    if token:
        req.add_header("Authorization", "Bearer " + token)
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as exc:
        with exc:
            return exc.code, exc.read()


def post_events(base: str, events: list[dict], key: str) -> None:
    status, body = _request(base + "/api/v1/events", INGEST_TOKEN, json.dumps(events).encode(),
                            {"Content-Type": "application/json", "Idempotency-Key": key})
    assert status in (200, 201), body
    assert json.loads(body)["accepted"] == len(events)


def api_json(base: str, path: str) -> dict:
    status, body = _request(base + path, READ_TOKEN)
    assert status == 200, (path, status, body)
    return json.loads(body)


class Central:
    """A ``python -m central serve`` subprocess on a free port, its data and log under ``tmp``."""

    def __init__(self, tmp: Path, sites_toml: str = SITES_TOML, **settings: str):
        self.tmp = tmp
        self.port = free_port()
        self.base = "http://127.0.0.1:%d" % self.port
        sites = tmp / "sites.toml"
        sites.write_text(sites_toml)
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
        env.update(HEATMAP_DATA_DIR=str(tmp / "central"), HEATMAP_SITES_FILE=str(sites),
                   HEATMAP_HTTP_ADDR="127.0.0.1:%d" % self.port, **settings)
        self.log_path = tmp / "central.log"
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen([sys.executable, "-m", "central", "serve"], cwd=REPO,
                                         env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(self.port, timeout=60)
        except TimeoutError:
            self.stop()
            pytest.fail("central did not start:\n" + self.log_path.read_text()[-4000:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@contextmanager
def own_central(tmp: Path, sites_toml: str = SITES_TOML, seed: list[dict] | None = None, key: str = "seed"):
    """A central of a test's (or a module's) own, with both tokens and no MQTT, seeded with
    ``seed`` through ``POST /api/v1/events`` (Idempotency-Key ``key``); its base URL."""
    server = Central(tmp, sites_toml, HEATMAP_READ_TOKEN=READ_TOKEN, HEATMAP_INGEST_TOKEN=INGEST_TOKEN)
    try:
        if seed:
            post_events(server.base, seed, key)
        yield server.base
    finally:
        server.stop()


@pytest.fixture(scope="module")
def central(tmp_path_factory):
    """Central with tokens and MQTT, seeded with raw events and one edge state; its base URL."""
    tmp = tmp_path_factory.mktemp("page")
    broker = Mosquitto(tmp / "mosquitto").start()
    try:
        server = Central(tmp, HEATMAP_READ_TOKEN=READ_TOKEN, HEATMAP_INGEST_TOKEN=INGEST_TOKEN,
                         HEATMAP_MQTT_URL=broker.url, HEATMAP_MQTT_CLIENT_ID="page-central")
        try:
            post_events(server.base, _events(), "page-seed-1")
            publish_edge(broker)
            path = "/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05"
            eventually(lambda: api_json(server.base, path)["meta"]["source"] == "mixed", 60,
                       "the edge state reached the dashboard")
            yield server.base
        finally:
            server.stop()
    finally:
        broker.stop()


@pytest.fixture(scope="module")
def browser():
    pw = sync_playwright().start()
    try:
        chromium = pw.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
    finally:
        pw.stop()


class Page:
    """A browser tab plus every console error and uncaught exception it produced."""

    def __init__(self, browser, width=1280, height=900, token=READ_TOKEN):
        self.context = browser.new_context(viewport={"width": width, "height": height})
        if token:
            self.context.add_init_script(
                "sessionStorage.setItem('heatmap.token', %s)" % json.dumps(token))
        self.page = self.context.new_page()
        if os.environ.get("TEST_CLOCK_OFFSET"):
            # A fixed-instant run (tests/_clock): the page's "today" is Chromium's clock, so
            # it starts at this process's (moved) wall clock and runs on from there.
            self.page.clock.install(time=time.time())
        self.errors: list[str] = []
        self.dashboard_requests: list[str] = []
        self.page.on("console", lambda m: m.type == "error" and self.errors.append(m.text))
        self.page.on("pageerror", lambda e: self.errors.append("uncaught: %s" % e))
        self.page.on("request", lambda r: "/api/v1/dashboard/" in r.url
                     and self.dashboard_requests.append(r.url))

    def open(self, url: str, state: str = "ready"):
        self.page.goto(url)
        return self.wait(state)

    def wait(self, state: str = "ready", **attrs):
        sel = "#main[data-state=%s]" % state + "".join(
            "[data-%s=%s]" % (k, json.dumps(v)) for k, v in attrs.items())
        self.page.wait_for_selector(sel, timeout=WAIT_MS)
        return self.page

    def close(self):
        self.context.close()


@pytest.fixture
def tab(browser):
    opened: list[Page] = []

    def make(**kw) -> Page:
        opened.append(Page(browser, **kw))
        return opened[-1]

    yield make
    for p in opened:
        p.close()


def digits(text: str | None) -> int:
    assert text is not None and re.search(r"\d", text), text
    return int(re.sub(r"\D", "", text))


def assert_page_matches(page, data: dict) -> None:
    """Every number the dashboard JSON holds is on the page, and nothing else is."""
    assert page.get_attribute("#main", "data-date") == data["date"]
    tiles = {t.get_attribute("data-zone"): t for t in page.query_selector_all("#plan .zone")}
    assert set(data["zones"]) <= set(tiles)
    for zone, tile in tiles.items():
        z = data["zones"].get(zone)
        if z is None:
            assert tile.get_attribute("data-intensity") == "none", zone
            assert "no events" in tile.inner_text()
            continue
        level = z["intensity"]
        if "now" in data:
            # Today the big number is now (test_page_typical.py), the day's peak beside it,
            # and the colour now's.
            assert digits(tile.query_selector(".z-day").text_content()) == z["peak"], zone
            if page.get_attribute("#main", "data-as-of") == data["now"]["as_of"][11:16]:
                assert digits(tile.query_selector(".z-peak").text_content()) == data["now"]["zones"][zone]["peak"], zone
                level = data["now"]["zones"][zone]["intensity"]
        else:
            assert digits(tile.query_selector(".z-peak").text_content()) == z["peak"], zone
        assert digits(tile.query_selector(".z-events").text_content()) == z["events"], zone
        assert tile.get_attribute("data-intensity") == level, zone
        assert level in tile.inner_text().lower()
    by_hour = {h["hour"]: h for h in data["hourly"]}
    cells = page.query_selector_all("#strip li")
    assert len(cells) == 24
    for li in cells:
        hour = int(li.get_attribute("data-hour"))
        text = li.query_selector(".h-count").text_content()
        if hour in by_hour:
            assert digits(text) == by_hour[hour]["count"], hour
            assert li.get_attribute("data-intensity") == by_hour[hour]["intensity"]
        else:
            assert text == "", hour
    crit = dict(data["critical_events"])
    total = crit.pop("total_events")
    assert digits(page.text_content("#total-events")) == total
    shown = {li.get_attribute("data-trigger"): digits(li.query_selector(".c-count").text_content())
             for li in page.query_selector_all("#critical li")}
    assert shown == crit
    matrix = {}
    for td in page.query_selector_all("#matrix-body td"):
        if td.text_content().strip() not in ("", "\u00b7"):
            zone = td.evaluate("c => c.parentElement.dataset.zone")
            matrix[(zone, int(td.get_attribute("data-hour")))] = (
                digits(td.text_content()), int(td.get_attribute("data-events")))
    expected = {(zone, r["hour"]): (r["count"], r["events"])
                for zone, rows in data["zone_hourly"].items() for r in rows}
    assert matrix == expected
    assert page.get_attribute("#meta-source", "data-source") == data["meta"]["source"]
    # computed_at changes between two answers; the page shows the one it got.
    shown_at = page.get_attribute("#meta-computed", "datetime")
    assert re.match(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d", shown_at), shown_at
    assert re.search(r"\d\d:\d\d:\d\d", page.text_content("#meta-computed"))


def test_numbers_on_the_page_equal_the_api(central, tab):
    t = tab()
    page = t.open(central + "/?site=HEAD_OFFICE&date=2026-01-05")
    data = api_json(central, "/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05")
    assert data["critical_events"]["total_events"] > 0
    assert_page_matches(page, data)
    # Floor plan from the sites file: positions become grid areas; names are display names.
    assert page.get_attribute("#plan", "data-layout") == "floor"
    employee = page.query_selector("[data-zone=EMPLOYEE_AREA]")
    assert employee.evaluate("b => b.style.gridArea") == "1 / 1 / span 1 / span 2"
    assert employee.query_selector(".z-name").text_content() == "Employee Area"
    assert page.query_selector("[data-zone=BOSS_CABIN]").get_attribute("data-intensity") == "none"
    # RECEPTION_AREA has its own thresholds in the sites file: marked, and said in its label.
    reception = page.query_selector("[data-zone=RECEPTION_AREA]")
    assert reception.query_selector(".z-level").text_content().endswith("*")
    assert "own thresholds: high from 10, medium from 5" in reception.text_content()
    assert "Reception has own thresholds" in page.text_content("#legend")
    # A tile has its legend swatch's colour, also under the mouse.
    employee.hover()
    colour = "e => getComputedStyle(e).backgroundColor"
    assert employee.evaluate(colour) == page.eval_on_selector("#legend .i-high", colour)
    assert page.text_content("#meta-tz") == "Asia/Kolkata"
    # Provenance: the edge slot makes the day mixed; its numbers, not the raw ones, are shown.
    assert data["meta"]["source"] == "mixed" and data["meta"]["slots"]["edge"] == 1
    assert data["zones"]["EMPLOYEE_AREA"]["peak"] == EDGE_STATE.peak
    assert "mixed" in page.text_content("#meta-source")
    coverage = int(data["meta"]["coverage"] * 100 + 0.5)  # JavaScript rounds half up
    assert page.text_content("#meta-coverage") == "%d %%" % coverage
    assert page.text_content("#meta-devices") == "Devices: 1 online"
    assert "jetson-01" in page.get_attribute("#meta-devices", "title")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page-desktop.png"), full_page=True)
    assert t.errors == []


def test_changing_date_and_site_refetches(central, tab):
    t = tab()
    page = t.open(central + "/heatmap_v2.html?site=HEAD_OFFICE&date=2026-01-05")
    first = digits(page.text_content("#total-events"))
    page.fill("#date", "2026-01-06")
    t.wait(date="2026-01-06")
    assert t.dashboard_requests[-1].endswith("/HEAD_OFFICE?date=2026-01-06")
    data = api_json(central, "/api/v1/dashboard/HEAD_OFFICE?date=2026-01-06")
    assert data["critical_events"]["total_events"] != first
    assert_page_matches(page, data)
    assert "date=2026-01-06" in page.url

    page.click("#prev-day")
    t.wait(date="2026-01-05")
    assert digits(page.text_content("#total-events")) == first

    page.select_option("#site", "WAREHOUSE")
    t.wait(site="WAREHOUSE", date="2026-01-05")
    assert t.dashboard_requests[-1].endswith("/WAREHOUSE?date=2026-01-05")
    assert_page_matches(page, api_json(central, "/api/v1/dashboard/WAREHOUSE?date=2026-01-05"))
    assert page.get_attribute("#plan", "data-layout") == "grid"
    assert page.text_content("#meta-tz") == "America/New_York"
    # Untrusted display names are text, never markup.
    assert page.text_content("[data-zone=DOCK] .z-name") == HOSTILE_NAME
    assert page.query_selector("#injected") is None
    assert t.errors == []


def test_unknown_site_shows_the_error_state(central, tab):
    t = tab()
    page = t.open(central + "/?site=NOPE&date=2026-01-05", state="error")
    assert page.get_attribute("#main", "data-error-status") == "404"
    assert page.is_visible("#error") and not page.is_visible("#view")
    assert "Unknown site" in page.text_content("#error-title")
    # The only console line is Chromium's own note of the 404 response.
    assert all("404" in e for e in t.errors), t.errors
    # Picking a real site from the selector recovers.
    page.select_option("#site", "HEAD_OFFICE")
    t.wait(site="HEAD_OFFICE")


def test_empty_day_shows_the_empty_state(central, tab):
    t = tab()
    page = t.open(central + "/?site=WAREHOUSE&date=2025-06-01", state="empty")
    assert page.is_visible("#empty") and not page.is_visible("#panels")
    # It says where the site's data lies (New York local days of the first and last event).
    meta = api_json(central, "/api/v1/dashboard/WAREHOUSE?date=2025-06-01")["meta"]
    assert meta["data_range"] == {"first_day": "2026-01-05", "last_day": "2026-11-01"}
    message = page.text_content("#empty-message")
    assert "Its data runs from" in message and "2026" in message, message
    assert t.errors == []


def test_unauthorised_until_a_token_is_given(central, tab):
    t = tab(token=None)
    page = t.open(central + "/?site=HEAD_OFFICE&date=2026-01-05", state="unauthorised")
    assert page.is_visible("#auth") and not page.is_visible("#view")
    assert "needed" in page.text_content("#auth-title")
    page.fill("#token", "wrong")
    page.press("#token", "Enter")
    page.wait_for_selector("#auth-title:has-text('refused')")
    page.fill("#token", READ_TOKEN)
    page.press("#token", "Enter")
    t.wait(date="2026-01-05")
    assert page.evaluate("sessionStorage.getItem('heatmap.token')") == READ_TOKEN
    assert all(re.search(r"\b40[13]\b", e) for e in t.errors), t.errors


def within_local_day(day: str, zone: str, ts: float) -> float:
    """``ts`` moved inside the local day ``day`` of ``zone`` (at most 60 s before its end).

    A test that shows "today" and adds events "now" must not see them land on the next or
    the previous day when it runs across the site's midnight."""
    tz = ZoneInfo(zone)
    start = datetime.combine(date.fromisoformat(day), dtime(0), tz)
    end = datetime.combine(date.fromisoformat(day) + timedelta(days=1), dtime(0), tz)
    return min(max(ts, start.timestamp()), end.timestamp() - 60)


@pytest.fixture
def bare_central(tmp_path):
    """A central of this test's own with tokens and nothing seeded: the module's seed holds
    dates up to November 2026, which a fixed-instant run before them would refuse."""
    with own_central(tmp_path) as base:
        yield base


@pytest.mark.clock
def test_today_refreshes_in_place(bare_central, tab):
    central = bare_central
    t = tab()
    # Nothing was seeded for today: the view starts empty and fills in on its own.
    page = t.open(central + "/?site=HEAD_OFFICE&refresh=1", state="empty")
    today = page.get_attribute("#main", "data-date")
    assert page.input_value("#date") == today
    assert "?date" not in page.url and "&date" not in page.url
    page.evaluate("""() => { window.__states = [];
        new MutationObserver(() => window.__states.push(document.getElementById('main').dataset.state))
            .observe(document.getElementById('main'), {attributes: true, attributeFilter: ['data-state']}); }""")
    post_events(central, [{"site": "HEAD_OFFICE", "camera": "LOBBY_NOW", "people_count": 5,
                           "timestamp": within_local_day(today, "Asia/Kolkata", time.time() - 30),
                           "triggers": ["RESTRICTED_ACCESS"]}], "page-today-1")
    page.wait_for_selector("[data-zone=LOBBY_NOW][data-events='1']", timeout=WAIT_MS)
    tile = page.query_selector("[data-zone=LOBBY_NOW]")
    tile.focus()
    renders = int(page.get_attribute("#main", "data-renders"))
    post_events(central, [{"site": "HEAD_OFFICE", "camera": "LOBBY_NOW", "people_count": 7,
                           "timestamp": within_local_day(today, "Asia/Kolkata", time.time() - 20)}],
                "page-today-2")
    page.wait_for_selector("[data-zone=LOBBY_NOW][data-events='2']", timeout=WAIT_MS)
    assert int(page.get_attribute("#main", "data-renders")) > renders
    # Updated in place: the same element, still focused; no loading state in between.
    assert tile.evaluate("b => b.isConnected && document.activeElement === b")
    assert "loading" not in page.evaluate("window.__states")
    assert_page_matches(page, api_json(central, "/api/v1/dashboard/HEAD_OFFICE?date=" + today))
    assert t.errors == []


def test_alerts_panel_lists_the_alerts_of_the_day_shown(bare_central, tab):
    central = bare_central
    post_events(central, [{"site": "HEAD_OFFICE", "camera": "VAULT", "people_count": 1,
                           "timestamp": time.time() - 5, "triggers": ["RESTRICTED_ACCESS"]}], "page-alert-1")
    fired = eventually(lambda: api_json(central, "/api/v1/alerts?site=HEAD_OFFICE")["alerts"], 30,
                       "the vault rule fired")[0]
    # The day the alert fired on, at the site: the page lists what the API lists for that day.
    day = datetime.fromisoformat(fired["at"].replace("Z", "+00:00")).astimezone(ZoneInfo("Asia/Kolkata")).date()
    page = tab().open(central + "/?site=HEAD_OFFICE&date=%s" % day.isoformat())
    meta = api_json(central, "/api/v1/dashboard/HEAD_OFFICE?date=%s" % day.isoformat())["meta"]
    listed = api_json(central, "/api/v1/alerts?site=HEAD_OFFICE&from=%s&to=%s" % (meta["day_start"], meta["day_end"]))
    assert [a["id"] for a in listed["alerts"]] == [fired["id"]]
    page.wait_for_selector("#alerts li", timeout=WAIT_MS)
    items = page.query_selector_all("#alerts li")
    assert [i.get_attribute("data-key") for i in items] == [fired["id"]]
    what = items[0].query_selector(".a-what").text_content()
    assert what.startswith("vault-access") and "VAULT" in what.upper() and "RESTRICTED" in what.upper(), what
    # The data's 15-minute slot, not the moment central judged it (issue 30).
    assert fired["slot"] and items[0].query_selector(".a-time").get_attribute("datetime") == fired["slot"]
    assert items[0].query_selector(".a-message").text_content() == fired["message"]
    assert page.is_hidden("#alerts-none") and page.is_hidden("#alerts-error")
    # Another day has none, and says so.
    other = (day - timedelta(days=3)).isoformat()
    page = tab().open(central + "/?site=HEAD_OFFICE&date=%s" % other, state="empty")
    page.wait_for_selector("#alerts-none:not([hidden])", timeout=WAIT_MS)
    assert page.query_selector_all("#alerts li") == []


def test_phone_width_and_keyboard(central, tab):
    t = tab(width=390, height=844)
    page = t.open(central + "/?site=HEAD_OFFICE&date=2026-01-05")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SCREENSHOTS / "page-phone.png"), full_page=True)
    # Tab from the controls to the first zone, select it with the keyboard.
    page.focus("#refresh")
    for _ in range(10):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.classList.contains('zone')"):
            break
    zone = page.evaluate("document.activeElement.dataset.zone")
    assert zone == "EMPLOYEE_AREA"
    page.keyboard.press("Enter")
    assert page.get_attribute("[data-zone=EMPLOYEE_AREA]", "aria-pressed") == "true"
    assert "Employee Area" in page.text_content("#hourly-title")
    rows = api_json(central, "/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05")["zone_hourly"][zone]
    shown = {int(li.get_attribute("data-hour")): int(li.get_attribute("data-count"))
             for li in page.query_selector_all("#strip li[data-count]:not([data-count=''])")}
    assert shown == {r["hour"]: r["count"] for r in rows}
    page.keyboard.press("Escape")
    assert page.get_attribute("[data-zone=EMPLOYEE_AREA]", "aria-pressed") == "false"
    assert t.errors == []


@pytest.mark.parametrize(("site", "date", "hours", "hour", "kind"), [
    ("WAREHOUSE", "2026-03-08", 23, 2, "skipped"),
    ("WAREHOUSE", "2026-11-01", 25, 1, "repeated"),
    ("LORD_HOWE", "2026-04-05", 24.5, 1, "repeated"),
    ("LORD_HOWE", "2026-10-04", 23.5, 2, "short"),
])
def test_clock_change_days(central, tab, site, date, hours, hour, kind):
    t = tab()
    page = t.open(central + "/?site=%s&date=%s" % (site, date))
    data = api_json(central, "/api/v1/dashboard/%s?date=%s" % (site, date))
    assert data["meta"]["hours"] == hours
    assert_page_matches(page, data)
    assert page.text_content("#meta-hours") == "%g-hour day (clock change)" % hours
    marked = page.query_selector_all("#strip li.%s" % kind)
    assert [li.get_attribute("data-hour") for li in marked] == [str(hour)]
    assert t.errors == []


@pytest.mark.clock
def test_central_going_away_keeps_the_numbers_and_says_so(tmp_path, tab):
    """A failed refresh keeps today's view with a warning; a new view shows the error state."""
    server = Central(tmp_path)  # no tokens, no MQTT
    try:
        t = tab(token=None)
        page = t.open(server.base + "/?site=WAREHOUSE&refresh=1", state="empty")
        renders = page.get_attribute("#main", "data-renders")
    finally:
        server.stop()
    page.wait_for_selector("#meta-warning:has-text('Refresh failed')", timeout=WAIT_MS)
    assert page.get_attribute("#main", "data-state") == "empty"
    assert page.get_attribute("#main", "data-renders") == renders
    page.click("#prev-day")
    t.wait("error")
    assert page.get_attribute("#main", "data-error-status") == "0"
    assert "Cannot reach the API" in page.text_content("#error-title")
    assert t.errors and all("ERR_CONNECTION_REFUSED" in e for e in t.errors), t.errors
