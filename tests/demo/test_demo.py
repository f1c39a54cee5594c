"""``python -m demo`` end to end: the embedded broker, central, three agents and their
simulators start; every backfilled local day of every site shows exactly the simulator's
truth, from edge aggregates; Ctrl-C (SIGINT) stops it all and leaves no process behind."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import urllib.request
from pathlib import Path

import pytest

from demo.config import ConfigError, DemoConfig
from demo.sites import CAPACITY_SITE, SITES, sites_toml
from tests.harness import eventually, free_port

ROOT = Path(__file__).resolve().parents[2]

try:
    import tomllib
except ImportError:  # Python 3.10
    import tomli as tomllib


def test_sites_file_follows_the_contract():
    data = tomllib.loads(sites_toml())
    assert data["defaults"] == {"timezone": "UTC", "high": 7, "medium": 4}
    assert {s: data["sites"][s]["timezone"] for s in data["sites"]} == {
        "HEAD_OFFICE": "Asia/Kolkata", "LONDON_STORE": "Europe/London", "NYC_WAREHOUSE": "America/New_York"}
    for site in SITES:
        zones = data["sites"][site.name]["zones"]
        assert 4 <= len(zones) <= 8 and set(zones) == {c.name for c in site.cameras}
        capacities = {c.name: c.capacity for c in site.cameras}
        for name, zone in zones.items():
            assert {"display_name", "x", "y", "w", "h"} <= set(zone)
            assert zone["capacity"] == capacities[name]  # utilisation everywhere
    assert [s for s in data["sites"] if data["sites"][s].get("intensity") == "capacity"] == [CAPACITY_SITE]
    # A rule of every kind, each posting to the receiver when the demo gives one.
    assert "alerts" not in data or all("webhook" not in r for r in data["alerts"])
    rules = tomllib.loads(sites_toml(webhook="http://127.0.0.1:9/alerts"))["alerts"]
    assert {r["kind"] for r in rules} == {"trigger", "occupancy", "device_offline", "no_data"}
    assert all(r["webhook"] == "http://127.0.0.1:9/alerts" for r in rules)


async def test_webhook_receiver_checks_signatures_and_logs(aiohttp_client, caplog):
    import hashlib
    import hmac
    import logging

    from demo.receiver import PATH, make_app

    client = await aiohttp_client(make_app(b"s3cret"))
    body = json.dumps({"id": "a1", "rule": "crowded", "kind": "occupancy", "site_name": "HEAD_OFFICE",
                       "cam_name": "CAFETERIA", "message": "Cafeteria is full"}).encode()
    good = "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    with caplog.at_level(logging.INFO, logger="demo.webhook"):
        for signature in (good, good, "sha256=00"):
            resp = await client.post(PATH, data=body, headers={"X-Heatmap-Signature": signature,
                                                                "Content-Type": "application/json"})
            assert resp.status == 204
    lines = [r.getMessage() for r in caplog.records if r.name == "demo.webhook"]
    assert len(lines) == 3 and "HEAD_OFFICE/CAFETERIA" in lines[0] and "signature ok" in lines[0]
    assert "(again)" in lines[1] and "signature BAD" in lines[2]


def test_demo_config():
    cfg = DemoConfig.load([], {"HEATMAP_MQTT_URL": "mqtt://broker:1883", "HEATMAP_HTTP_ADDR": "0.0.0.0:9000"})
    assert cfg.mqtt_url == "mqtt://broker:1883" and cfg.page_url == "http://127.0.0.1:9000/"
    assert cfg.days == 14 and cfg.live and cfg.broker == "amqtt"
    assert DemoConfig.load(["--http-addr", "127.0.0.1:1234"], {"HEATMAP_HTTP_ADDR": "x:1"}).http_port == 1234
    for argv, env in ((["--http-addr", "nowhere"], {}), ([], {"HEATMAP_MQTT_URL": "http://x"}), (["--days", "0"], {})):
        with pytest.raises(ConfigError):
            DemoConfig.load(argv, env)


def _get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        body = resp.read()
        return json.loads(body) if resp.headers.get_content_type() == "application/json" else body.decode()


def _comparable(day: dict) -> dict:
    return {
        "zones": {z: (v["peak"], v["events"]) for z, v in day["zones"].items()},
        "hourly": [(h["hour"], h["count"]) for h in day["hourly"]],
        "critical_events": dict(day["critical_events"]),
    }


def _processes_mentioning(text: str) -> list:
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit() or int(pid) == os.getpid():
            continue
        try:
            cmd = Path("/proc/%s/cmdline" % pid).read_bytes()
            env = Path("/proc/%s/environ" % pid).read_bytes()
            state = Path("/proc/%s/stat" % pid).read_text().split(") ")[1][0]
        except OSError:
            continue
        if state != "Z" and (text.encode() in cmd or text.encode() in env):
            found.append((pid, cmd.replace(b"\0", b" ").decode(errors="replace")[:200]))
    return found


@pytest.mark.slow
def test_demo_backfills_matches_the_truth_and_stops_clean(tmp_path):
    demo_dir = tmp_path / "demo"
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo", "--dir", str(demo_dir), "--http-addr", "127.0.0.1:%d" % port,
         "--days", "1.5", "--no-live", "--publish-interval", "1", "--ready-timeout", "150"],
        cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        start_new_session=True,
    )
    lines: list = []
    ready = threading.Event()

    def read():
        for line in proc.stdout:
            lines.append(line)
            if "Press Ctrl-C" in line:
                ready.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert ready.wait(180), "demo not ready:\n" + "".join(lines[-40:])
        assert any(base + "/" in line for line in lines)

        pending = {}
        for site in SITES:
            truth = json.loads((demo_dir / "truth" / ("%s.json" % site.name)).read_text())
            # Not empty; the backfill ends now, and 1.5 days of a weekend hold about 700 events
            # (2026, every 15 minutes, seed 2026), a working week's 8,000: compared day by day below.
            assert truth["events"] > 300
            for date, want in truth["days"].items():
                pending[(site.name, date)] = want
        results = {}

        def all_days_match() -> bool:
            for (site, date), want in list(pending.items()):
                got = _get("%s/api/v1/dashboard/%s?date=%s" % (base, site, date))
                results[(site, date)] = (got["meta"]["source"], _comparable(got) == _comparable(want))
                if results[(site, date)] == ("edge", True):
                    del pending[(site, date)]
            return not pending

        try:
            eventually(all_days_match, 90, interval=0.5)
        except AssertionError:
            raise AssertionError({k: results.get(k) for k in pending}) from None

        sites = {s["site_name"]: s for s in _get(base + "/api/v1/sites")["sites"]}
        assert sites["NYC_WAREHOUSE"]["timezone"] == "America/New_York"
        assert sites["HEAD_OFFICE"]["zones"]["BOSS_CABIN"]["display_name"] == "Boss Cabin"
        assert {d["device_id"] for s in sites.values() for d in s["devices"]} >= {s.device for s in SITES}
        assert "<html" in _get(base + "/").lower()
        assert sites["LONDON_STORE"]["intensity"] == "capacity"
        # Every alert central says it delivered reached the demo's receiver, signed.
        delivered = [a["id"] for a in _get(base + "/api/v1/alerts")["alerts"] if a["delivery"]["state"] == "delivered"]
        received = (demo_dir / "logs" / "webhook.log").read_text()
        assert all(("alert %s" % i) in received for i in delivered), (delivered, received[-2000:])
        assert "signature BAD" not in received
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            code = proc.wait(90)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            code = "hung"
        reader.join(5)
        proc.stdout.close()
    assert code == 0, "".join(lines[-40:])
    eventually(lambda: _processes_mentioning(str(demo_dir)) == [], 5, "no process left")
    assert any("stopped;" in line for line in lines)


@pytest.mark.slow
def test_demo_fails_cleanly_when_central_cannot_start(tmp_path):
    """A child that dies during start-up (central: its port is taken) ends the demo with
    exit 1, the child's last log lines, and nothing left running."""
    import socket

    demo_dir = tmp_path / "demo"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
        res = subprocess.run(
            [sys.executable, "-m", "demo", "--dir", str(demo_dir), "--http-addr", "127.0.0.1:%d" % port,
             "--days", "1", "--no-live", "--ready-timeout", "60"],
            cwd=ROOT, env=env, capture_output=True, text=True, timeout=120,
        )
    assert res.returncode == 1, res.stdout + res.stderr
    assert "central exited" in res.stderr and "address already in use" in res.stderr
    assert _processes_mentioning(str(demo_dir)) == []
