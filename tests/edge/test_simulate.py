"""The detection simulator: its model and truth (plain unit tests), its datagram sink on a
real UDP socket, its HTTP sink against a real aiohttp server, and its command line."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from collections import Counter, defaultdict
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest
from aiohttp import web
from zoneinfo import ZoneInfo

from edge.exceptions import SinkError
from edge.simulate.model import (
    DAY,
    TRIGGERS,
    Camera,
    Clock,
    Events,
    SiteModel,
    Truth,
    parse_cameras,
    parse_offset,
)
from edge.simulate.sinks import MAX_DATAGRAM, DatagramSink, HttpSink, encode_lines
from shared.events import parse_event
from shared.slots import SLOT_SECONDS
from tests.harness import StreamLines, eventually, free_port, recent_utc_weekday

ROOT = Path(__file__).resolve().parents[2]
# Monday 2026-01-05 00:00 UTC, the handoff's date.
MONDAY = 1767571200


def _model(site="HEAD_OFFICE", offset=0, dst="none", seed=1, cams="EMPLOYEE_AREA:8,CAFETERIA:6,BOSS_CABIN:4"):
    return SiteModel(site, parse_cameras(cams, seed), Clock(offset, dst), seed)


# -- model ------------------------------------------------------------------------------


def test_parse_offset():
    assert parse_offset("+05:30") == 19800
    assert parse_offset("-0500") == -18000
    assert parse_offset("+5") == 18000
    assert parse_offset("+05:45") == 20700
    assert parse_offset("UTC-05:00") == -18000 and parse_offset("UTC") == 0
    for bad in ("05:30", "+05:10", "+15:00", "UTC+", "GMT", ""):
        with pytest.raises(ValueError):
            parse_offset(bad)


def test_parse_cameras():
    cams = parse_cameras("EMPLOYEE_AREA:9,CAFETERIA,LAB_1:3:office", seed=3)
    assert cams[0] == Camera("EMPLOYEE_AREA", 9, "office")
    assert cams[1].profile == "cafeteria" and 3 <= cams[1].capacity <= 12
    assert cams[2] == Camera("LAB_1", 3, "office")
    assert [c.name for c in parse_cameras("3", 0)] == ["CAM_01", "CAM_02", "CAM_03"]
    assert parse_cameras("5", 7) == parse_cameras("5", 7)
    for bad in ("A,A", "bad name", "A:0", "A:x", "A:3:gym", "0", ""):
        with pytest.raises(Exception):  # noqa: B017 (ValueError or a HeatmapError)
            parse_cameras(bad, 0)


@pytest.mark.parametrize(
    ("zone", "offset", "dst"),
    [("Europe/London", 0, "eu"), ("Europe/Berlin", 3600, "eu"), ("America/New_York", -18000, "us"),
     ("America/Los_Angeles", -28800, "us"), ("Asia/Kolkata", 19800, "none"), ("Asia/Kathmandu", 20700, "none")],
)
def test_clock_agrees_with_zoneinfo(zone, offset, dst):
    tz = ZoneInfo(zone)
    clock = Clock(offset, dst)
    # Every 15 minutes across two years, which includes each transition instant.
    ts = np.arange(1735689600, 1735689600 + 2 * 365 * DAY, SLOT_SECONDS, dtype=np.int64)
    want = [int(datetime.fromtimestamp(t, tz).utcoffset().total_seconds()) for t in ts.tolist()]
    assert clock.offsets(ts).tolist() == want


def test_deterministic_and_sliceable():
    a, b = _model(seed=5), _model(seed=5)
    whole = a.events(MONDAY, MONDAY + 2 * DAY)
    parts = Events.concat([b.events(MONDAY, MONDAY + 3600 * 13 + 17), b.events(MONDAY + 3600 * 13 + 17, MONDAY + 2 * DAY)])
    for f in ("cam", "ts", "people", "flags"):
        assert np.array_equal(getattr(whole, f), getattr(parts, f))
    other = _model(seed=6).events(MONDAY, MONDAY + 2 * DAY)
    assert len(other) != len(whole) or not np.array_equal(other.ts, whole.ts)
    assert np.all(np.diff(whole.ts) >= 0)
    assert whole.ts.min() >= MONDAY and whole.ts.max() < MONDAY + 2 * DAY


def _hourly_counts(model, start, days):
    ev = model.events(start, start + days * DAY)
    local = model.clock.local(ev.ts)
    return ev, np.bincount((local % DAY) // 3600, minlength=24)


def test_daily_curve_follows_local_time():
    # Kolkata is 5:30 ahead: the office's busiest local hours are 9..17, and its quiet
    # night is local, not UTC.
    model = _model(offset=19800, cams="EMPLOYEE_AREA:10:office")
    ev, by_hour = _hourly_counts(model, MONDAY, 5)
    assert by_hour[10:17].min() > 5 * by_hour[0:5].max()
    utc_hours = np.bincount((ev.ts % DAY) // 3600, minlength=24)
    assert utc_hours[4:12].sum() > utc_hours[12:20].sum()  # 09:30..17:30 local = 04..12 UTC


def test_weekend_is_quieter_and_bursts_exist():
    model = _model(cams="EMPLOYEE_AREA:10:office")
    week = [len(model.events(MONDAY + d * DAY, MONDAY + (d + 1) * DAY)) for d in range(7)]
    assert min(week[:5]) > 3 * max(week[5:])
    # Bursts push the count past capacity on some days; the crowd rule fires then only.
    ev = model.events(MONDAY, MONDAY + 14 * DAY)
    crowd = ev.flags[:, TRIGGERS.index("CROWD_VIOLATION")]
    assert crowd.any() and np.all(ev.people[crowd] > 10)
    assert ev.people.max() <= 15 and ev.people.min() >= 1


def test_trigger_rates_are_plausible():
    model = _model(cams="EMPLOYEE_AREA:8:office,BOSS_CABIN:4:restricted")
    ev = model.events(MONDAY, MONDAY + 14 * DAY)
    rates = ev.flags.mean(axis=0)
    assert 0.001 < rates[TRIGGERS.index("UNAUTHORIZED_STRANGER")] < 0.05
    restricted = ev.flags[ev.cam == 1, TRIGGERS.index("RESTRICTED_ACCESS")].mean()
    office = ev.flags[ev.cam == 0, TRIGGERS.index("RESTRICTED_ACCESS")].mean()
    assert restricted > 5 * office > 0


def test_truth_matches_an_independent_count():
    model = _model(offset=19800)
    ev = model.events(MONDAY - DAY, MONDAY + DAY)
    truth = Truth(model)
    truth.add(ev.window(MONDAY - DAY, MONDAY))
    truth.add(ev.window(MONDAY, MONDAY + DAY))  # accumulates across batches
    data = truth.to_json()
    slots = defaultdict(lambda: [0, 0, Counter()])
    for i in range(len(ev)):
        key = (model.cameras[ev.cam[i]].name, int(ev.ts[i]) // 900 * 900)
        slots[key][0] = max(slots[key][0], int(ev.people[i]))
        slots[key][1] += 1
        slots[key][2].update(ev.triggers_of(i))
    got = {(s["camera"], s["slot"]): [s["peak"], s["events"], Counter(s["triggers"])] for s in data["slots"]}
    assert got == dict(slots)
    assert data["events"] == len(ev) == sum(d["critical_events"]["total_events"] for d in data["days"].values())
    # Local (+05:30) days: 2026-01-05 local runs 2026-01-04T18:30Z .. 2026-01-05T18:30Z.
    day = data["days"]["2026-01-05"]
    lo, hi = MONDAY - 19800, MONDAY + DAY - 19800
    inside = ev.window(lo, hi)
    assert day["critical_events"]["total_events"] == len(inside)
    for j, name in enumerate(TRIGGERS):
        assert day["critical_events"].get(name, 0) == int(inside.flags[:, j].sum())
    hours = (model.clock.local(inside.ts) % DAY) // 3600
    want = {int(h): int(inside.people[hours == h].max()) for h in np.unique(hours)}
    assert {h["hour"]: h["count"] for h in day["hourly"]} == want
    assert day["zones"]["EMPLOYEE_AREA"]["events"] == int((inside.cam == 0).sum())


def test_dst_day_has_its_own_hours():
    # London, 2026-03-29: 01:00 local does not exist; 23 hours of data.
    model = _model(dst="eu", cams="EMPLOYEE_AREA:8,CAFETERIA:6", seed=2)
    model.rate_scale = 20.0  # every hour populated
    truth = Truth(model)
    start = int(datetime(2026, 3, 29, tzinfo=timezone.utc).timestamp())
    truth.add(model.events(start, start + 23 * 3600))
    day = truth.to_json()["days"]["2026-03-29"]
    assert [h["hour"] for h in day["hourly"]] == [0, *range(2, 24)]


# -- sinks ------------------------------------------------------------------------------


def _receiver():
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 8 * 1024 * 1024)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(5)
    return sock


def _drain(sock, until_events):
    datagrams, events = [], []
    while len(events) < until_events:
        data = sock.recv(65536)
        datagrams.append(data)
        events.extend(json.loads(line) for line in data.decode().splitlines())
    return datagrams, events


def test_datagram_sink_on_a_real_udp_socket():
    model = _model()
    ev = model.events(MONDAY, MONDAY + DAY)
    sock = _receiver()
    received: list = []
    reader = threading.Thread(target=lambda: received.append(_drain(sock, len(ev))))
    reader.start()
    sink = DatagramSink("udp://127.0.0.1:%d" % sock.getsockname()[1], max_rate=50000)
    sink.send(model, ev)
    sink.close()
    reader.join(10)
    sock.close()
    datagrams, events = received[0]
    assert all(len(d) < MAX_DATAGRAM for d in datagrams) and len(datagrams) > 1
    assert sink.events == len(ev) and sink.datagrams == len(datagrams)
    parsed = [parse_event(e, now=MONDAY + 2 * DAY) for e in events]
    assert all(p.site == "HEAD_OFFICE" for p in parsed)
    truth = Truth(model)
    truth.add(ev)
    want = Counter()
    for s in truth.to_json()["slots"]:
        want[(s["camera"], s["slot"])] = s["events"]
    got = Counter((p.camera, int(p.timestamp) // 900 * 900) for p in parsed)
    assert got == want
    assert sum(len(p.triggers) for p in parsed) == int(ev.flags.sum())


def test_datagram_sink_refuses_bad_addresses():
    for bad in ("tcp://127.0.0.1:1", "udp://127.0.0.1", "unix://"):
        with pytest.raises(SinkError):
            DatagramSink(bad)


def test_encode_lines_without_site():
    model = _model()
    ev = model.events(MONDAY + 10 * 3600, MONDAY + 11 * 3600)
    lines = encode_lines(model, ev, with_site=False)
    assert len(lines) == len(ev) and all(b'"site"' not in line for line in lines)


class _Central:
    """A real aiohttp server standing in for central's ingest (central is tested elsewhere)."""

    def __init__(self, script):
        self.script = list(script)  # statuses to answer before 200
        self.bodies: list = []
        self.keys: list = []

    async def handle(self, request):
        body = await request.read()
        self.keys.append(request.headers.get("Idempotency-Key"))
        assert request.headers["Authorization"] == "Bearer s3cret"
        if self.script:
            status = self.script.pop(0)
            if status == 413 and body.count(b"\n") <= 1:
                status = 200
            elif status == 413 or status == 503:
                headers = {"Retry-After": "0"} if status == 503 else {}
                return web.json_response({"error": {"code": "x", "message": "no"}}, status=status, headers=headers)
            elif status != 200:
                return web.json_response({"error": {"code": "bad", "message": "refused"}}, status=status)
        self.bodies.append(body)
        return web.json_response({"accepted": body.count(b"\n")})


async def _serve(aiohttp_server, central):
    app = web.Application()
    app.router.add_post("/api/v1/events", central.handle)
    return await aiohttp_server(app)


async def _in_thread(fn):
    import asyncio

    return await asyncio.get_running_loop().run_in_executor(None, fn)


async def test_http_sink_retries_with_the_same_key_and_splits_on_413(aiohttp_server):
    central = _Central([503, 413])
    server = await _serve(aiohttp_server, central)
    model = _model()
    ev = model.events(MONDAY + 9 * 3600, MONDAY + 12 * 3600)
    sink = HttpSink(str(server.make_url("/")), token="s3cret", batch=len(ev))
    await _in_thread(lambda: sink.send(model, ev))
    assert sink.retries == 1 and sink.events == len(ev) and sink.requests == 2
    assert central.keys[0] == central.keys[1] != central.keys[2]  # retry kept its key
    lines = b"".join(central.bodies).splitlines()
    assert len(lines) == len(ev)
    assert [json.loads(x)["timestamp"] for x in lines] == ev.ts.tolist()


async def test_http_sink_stops_on_a_refusal(aiohttp_server):
    central = _Central([400])
    server = await _serve(aiohttp_server, central)
    model = _model()
    sink = HttpSink(str(server.make_url("/")), token="s3cret")
    with pytest.raises(SinkError, match=r"HTTP 400.*refused"):
        await _in_thread(lambda: sink.send(model, model.events(MONDAY + 36000, MONDAY + 36600)))


def test_http_sink_gives_up_when_unreachable():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    model = _model()
    sink = HttpSink("http://127.0.0.1:%d" % port, retry_for=0.5, sleep=lambda s: None)
    with pytest.raises(SinkError, match="unreachable"):
        sink.send(model, model.events(MONDAY + 36000, MONDAY + 36600))
    assert sink.retries >= 1


# -- command line ------------------------------------------------------------------------


def _cli(*args, timeout=60):
    return subprocess.run(
        [sys.executable, "-m", "edge", "simulate", *args], cwd=ROOT, capture_output=True, text=True,
        timeout=timeout,
    )


@pytest.mark.clock
def test_cli_fast_forward_to_udp_writes_the_truth(tmp_path):
    sock = _receiver()
    truth_file = tmp_path / "truth.json"
    received: list = []
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "simulate", "--site", "HQ", "--cameras", "A:5,B:9",
         "--utc-offset", "+05:30", "--seed", "9", "--start", "2026-01-05T00:00:00Z",
         "--end", "2026-01-07T00:00:00Z", "--to-agent",
         "udp://127.0.0.1:%d" % sock.getsockname()[1], "--truth", str(truth_file)],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    sock.settimeout(0.2)
    try:
        while True:
            try:
                data = sock.recv(65536)
            except socket.timeout:
                if proc.poll() is not None:
                    break
                continue
            received.extend(json.loads(x) for x in data.decode().splitlines())
    finally:
        _, err = proc.communicate(timeout=30)
        sock.close()
    assert proc.returncode == 0, err
    truth = json.loads(truth_file.read_text())
    assert truth["events"] == len(received) > 1000
    assert truth["utc_offset"] == 19800 and truth["site"] == "HQ"
    assert sum(s["events"] for s in truth["slots"]) == len(received)
    assert max(e["timestamp"] for e in received) < truth["last_timestamp"] + 1
    assert "fast-forward" in err


@pytest.mark.clock
def test_cli_live_mode_sends_in_real_time(tmp_path):
    import time

    sock = _receiver()
    truth_file = tmp_path / "truth.json"
    started = time.time()
    res = _cli("--site", "HQ", "--cameras", "A:100:flat", "--rate-scale", "100", "--live", "--duration", "1.5",
               "--to-agent", "udp://127.0.0.1:%d" % sock.getsockname()[1], "--truth", str(truth_file))
    assert res.returncode == 0, res.stderr
    events = []
    sock.settimeout(0.2)
    try:
        while True:
            events.extend(json.loads(x) for x in sock.recv(65536).decode().splitlines())
    except socket.timeout:
        pass
    sock.close()
    truth = json.loads(truth_file.read_text())
    assert truth["events"] == len(events) > 10  # about 20 events/s
    assert all(started - 1 <= e["timestamp"] <= time.time() for e in events)


@pytest.mark.clock
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--days", "1"], "--site"),
        (["--site", "bad site", "--days", "1"], "not a valid name"),
        (["--site", "HQ"], "nothing to do"),
        (["--site", "HQ", "--days", "1", "--utc-offset", "+25:00"], "utc-offset"),
        (["--site", "HQ", "--days", "1", "--to-agent", "tcp://x:1"], "udp://"),
        (["--site", "HQ", "--end", "2099-01-01T00:00:00Z", "--days", "1"], "future"),
        (["--site", "HQ", "--days", "1", "--cameras", "A:1000", "--rate-scale", "1000"], "million events"),
    ],
)
def test_cli_invalid_configuration_is_one_line(args, message):
    res = _cli(*args)
    assert res.returncode == 2
    lines = [x for x in res.stderr.splitlines() if x.strip()]
    assert len(lines) == 1 and message in lines[0], res.stderr


def test_the_package_runs_as_python_m_edge_simulate_with_the_same_flags():
    res = subprocess.run([sys.executable, "-m", "edge.simulate", "--site", "HQ"], cwd=ROOT,
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "nothing to do" in res.stderr, res.stderr
    assert _cli("--help").stdout == subprocess.run(
        [sys.executable, "-m", "edge.simulate", "--help"], cwd=ROOT, capture_output=True, text=True,
        timeout=60).stdout


@pytest.mark.clock
def test_cli_fails_when_central_refuses(tmp_path):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # A working morning, so the window holds events to send whatever today is.
    res = _cli("--site", "HQ", "--start", "2026-01-05T09:00:00Z", "--end", "2026-01-05T11:24:00Z",
               "--to-central", "http://127.0.0.1:%d" % port,
               "--retry-for", "0.3", "--truth", str(tmp_path / "t.json"))
    assert res.returncode == 1 and "unreachable" in res.stderr
    assert json.loads((tmp_path / "t.json").read_text())["events"] == 0


# -- with the real agent -------------------------------------------------------------------


@pytest.mark.clock
def test_simulated_history_through_a_real_agent_matches_the_truth(tmp_path, mosquitto, central):
    """simulate --to-agent -> python -m edge run -> mosquitto: the highest revision of every
    (camera, slot) the agent publishes equals the simulator's truth.

    The agent only takes events inside its window of the real clock, so the history cannot be
    a fixed date: it is the last Monday to Wednesday (UTC) before now, three working days
    whatever today is, and the window is wide enough to hold it (up to 10 days back)."""
    import os


    udp = _receiver()
    port = udp.getsockname()[1]
    udp.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
    env.update(HEATMAP_SITE="HQ", HEATMAP_DEVICE_ID="jetson-sim", HEATMAP_MQTT_URL=mosquitto.url,
               HEATMAP_STATE_DIR=str(tmp_path / "state"), HEATMAP_UDP_ADDR="127.0.0.1:%d" % port,
               HEATMAP_PUBLISH_INTERVAL="0.3", HEATMAP_COMMIT_INTERVAL="0.2", HEATMAP_RETENTION_DAYS="11")
    agent = subprocess.Popen([sys.executable, "-m", "edge", "run"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        eventually(lambda: agent.poll() is not None or any(s.state == "online" for s in central.statuses),
                   20, "agent online")
        assert agent.poll() is None, "agent exited"
        end = recent_utc_weekday(3)  # Thursday 00:00 UTC
        truth_file = tmp_path / "truth.json"
        res = _cli("--site", "HQ", "--cameras", "EMPLOYEE_AREA:8,CAFETERIA:6,BOSS_CABIN:3:restricted",
                   "--utc-offset", "UTC-05:00", "--dst", "us", "--end", str(end), "--days", "3", "--seed", "4",
                   "--to-agent", "udp://127.0.0.1:%d" % port, "--truth", str(truth_file))
        assert res.returncode == 0, res.stderr
        truth = json.loads(truth_file.read_text())
        want = {(s["camera"], s["slot"]): (s["peak"], s["events"], s["triggers"]) for s in truth["slots"]}

        def published() -> dict:
            with central.lock:
                best: dict = {}
                for batch in central.batches:
                    for s in batch.states:
                        if s.rev > best.get(s.key(), (0,))[0]:
                            best[s.key()] = (s.rev, (s.peak, s.events, dict(s.triggers)))
            return {k: v[1] for k, v in best.items()}

        try:
            eventually(lambda: published() == want, 30, "the agent's states equal the truth")
        except AssertionError:
            assert published() == want  # the diff
        # Three working days: thousands of events, not a quiet weekend's trickle.
        assert sum(v[1] for v in want.values()) == truth["events"] > 3000
    finally:
        agent.terminate()
        agent.wait(15)


@pytest.mark.clock
def test_cli_stops_promptly_on_sigterm_while_central_is_down(tmp_path):
    import signal
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-m", "edge", "simulate", "--site", "HQ", "--end", "2026-01-06T00:00:00Z", "--days", "1",
         "--to-central", "http://127.0.0.1:%d" % port, "--truth", str(tmp_path / "t.json")],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
    )
    err = StreamLines(proc.stderr)
    err.wait_for("retrying", 20)  # it is in its retry loop
    started = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    proc.wait(10)
    rest = err.text(10)
    assert time.monotonic() - started < 3
    assert proc.returncode == 1 and "stopped while retrying" in rest
    assert json.loads((tmp_path / "t.json").read_text())["events"] == 0


def test_cli_to_a_real_central_gives_the_truth_and_retries_do_not_double(tmp_path):
    """simulate --to-central -> python -m central serve (raw ingest into chDB): every local
    day's dashboard equals the truth; running the same backfill again changes nothing
    (each batch's Idempotency-Key is derived from its body)."""
    import os
    import urllib.request


    port = free_port()
    base = "http://127.0.0.1:%d" % port
    (tmp_path / "sites.toml").write_text('[defaults]\ntimezone = "UTC"\n\n[sites.HQ]\ntimezone = "Asia/Kolkata"\n')
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
    env.update(HEATMAP_DATA_DIR=str(tmp_path / "central"), HEATMAP_HTTP_ADDR="127.0.0.1:%d" % port,
               HEATMAP_SITES_FILE=str(tmp_path / "sites.toml"), HEATMAP_INGEST_TOKEN="s3cret")
    central = subprocess.Popen([sys.executable, "-m", "central", "serve"], cwd=ROOT, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def up() -> bool:
            assert central.poll() is None, "central exited"
            try:
                urllib.request.urlopen(base + "/healthz", timeout=2).close()
            except OSError:
                return False
            return True

        eventually(up, 60, "central's /healthz", interval=0.2)
        args = ["--site", "HQ", "--cameras", "EMPLOYEE_AREA:8,CAFETERIA:6", "--utc-offset", "+05:30",
                "--start", "2026-01-04T00:00:00Z", "--end", "2026-01-06T00:00:00Z", "--seed", "3",
                "--to-central", base, "--token", "s3cret", "--batch", "1000"]
        for run in (1, 2):
            res = _cli(*args, "--truth", str(tmp_path / ("truth%d.json" % run)))
            assert res.returncode == 0, res.stderr
        truth = json.loads((tmp_path / "truth1.json").read_text())
        assert truth == json.loads((tmp_path / "truth2.json").read_text())
        assert sorted(truth["days"]) == ["2026-01-04", "2026-01-05", "2026-01-06"]
        for date, want in truth["days"].items():
            with urllib.request.urlopen("%s/api/v1/dashboard/HQ?date=%s" % (base, date), timeout=10) as resp:
                got = json.loads(resp.read())
            assert got["meta"]["source"] == "raw"
            assert {z: (v["peak"], v["events"]) for z, v in got["zones"].items()} == {
                z: (v["peak"], v["events"]) for z, v in want["zones"].items()}
            assert [(h["hour"], h["count"]) for h in got["hourly"]] == [(h["hour"], h["count"]) for h in want["hourly"]]
            assert got["critical_events"] == want["critical_events"]
        bad = _cli(*args, "--token", "wrong")
        assert bad.returncode == 1 and "HTTP 401" in bad.stderr
    finally:
        central.terminate()
        central.wait(30)
