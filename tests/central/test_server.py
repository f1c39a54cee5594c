"""``python -m central serve`` as a process: serves, consumes, and stops cleanly on SIGTERM."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import urllib.request
from pathlib import Path

import pytest

from tests.central.test_consumer import SLOT, Device, state
from tests.harness import eventually, free_port, wait_for_port

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_serve_consumes_and_stops_cleanly_on_sigterm(tmp_path, mosquitto):
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
    env.update(HEATMAP_DATA_DIR=str(tmp_path / "central"), HEATMAP_HTTP_ADDR="127.0.0.1:%d" % port,
               HEATMAP_MQTT_URL=mosquitto.url, HEATMAP_MQTT_CLIENT_ID="central-proc")
    log = tmp_path / "central.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "central", "serve"], cwd=REPO, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    dev = None
    try:
        wait_for_port(port, timeout=60)
        base = "http://127.0.0.1:%d" % port
        eventually(lambda: "MQTT subscribed" in log.read_text(), 30, "central's SUBACK")
        health = json.loads(urllib.request.urlopen(base + "/healthz", timeout=5).read())
        assert health["status"] == "ok" and health["mqtt"] == "connected", health
        dev = Device(mosquitto)
        dev.publish(dev.states([state(rev=5)]))
        assert ("EMPLOYEE_AREA", SLOT, 5) in dev.ack_items(20.0, {("EMPLOYEE_AREA", SLOT, 5)})
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(30) == 0
        text = log.read_text()
        assert "MQTT consumer stopped" in text and "stopped" in text.splitlines()[-1]
    finally:
        if dev is not None:
            dev.close()
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_migrate_refuses_a_uint16_timestamp_with_an_explanation(tmp_path):
    path = tmp_path / "chdb"
    # In a child process: this test process keeps its one chDB engine for the other tests.
    create = ("import clickhouse_connect, sys; c = clickhouse_connect.get_client(dsn=sys.argv[1]); "
              "c.command('CREATE TABLE camera_events (site_name String, cam_name String, "
              "people_count UInt16, event_timestamp UInt16, event_triggers Array(String)) "
              "ENGINE = MergeTree ORDER BY site_name'); c.close()")
    subprocess.run([sys.executable, "-c", create, "chdb://%s" % path], check=True, timeout=120)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
    env["HEATMAP_CLICKHOUSE_URL"] = "chdb://%s" % path
    proc = subprocess.run([sys.executable, "-m", "central", "migrate"], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 1
    assert "UInt16" in proc.stderr and "HEATMAP_EVENT_TIMESTAMP_EXPR" in proc.stderr
