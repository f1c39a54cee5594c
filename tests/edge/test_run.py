"""``python -m edge run`` as a real process: SIGTERM flush, systemd notify, config errors,
and the local MQTT input replaying after a SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge.agent import Agent
from edge.config import Config
from tests.edge.central_double import CentralDouble
from tests.harness import free_port

ROOT = Path(__file__).resolve().parents[2]


def agent_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HEATMAP_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(HEATMAP_SITE="HEAD_OFFICE", HEATMAP_DEVICE_ID="jetson-01",
               HEATMAP_STATE_DIR=str(tmp_path / "state"), PYTHONPATH=str(ROOT))
    env.update(extra)
    return env


def spawn(env: dict) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-m", "edge", "run"], cwd=str(ROOT), env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def test_invalid_config_is_one_line_and_exit_2(tmp_path):
    env = agent_env(tmp_path, HEATMAP_MQTT_URL="ftp://nowhere")
    proc = subprocess.run([sys.executable, "-m", "edge", "run"], cwd=str(ROOT), env=env,
                          capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and "HEATMAP_MQTT_URL" in proc.stderr


def test_sigterm_commits_publishes_says_stopped_and_exits(tmp_path, mosquitto, central):
    port = free_port()
    env = agent_env(tmp_path, HEATMAP_MQTT_URL=mosquitto.url, HEATMAP_UDP_ADDR="127.0.0.1:%d" % port,
                    HEATMAP_COMMIT_INTERVAL="30", HEATMAP_PUBLISH_INTERVAL="30",
                    HEATMAP_PRIORITY="off")  # triggers would go out at once (test_priority.py)
    proc = spawn(env)
    try:
        assert central.wait_for(lambda: any(s.state == "online" for s in central.statuses), 15)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(50):
                sock.sendto(json.dumps({"camera": "CAM", "people_count": i % 10, "triggers": ["A"]}).encode(),
                            ("127.0.0.1", port))
        time.sleep(0.5)
        assert central.states() == []  # the intervals are long: nothing went out yet
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
    assert central.wait_for(lambda: central.statuses[-1].state == "stopped", 5), err
    (state,) = central.latest().values()
    assert (state.camera, state.peak, state.events, dict(state.triggers)) == ("CAM", 9, 50, {"A": 50})


def test_ready_and_watchdog_pings_over_a_real_unix_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
        sock.bind(path)
        sock.settimeout(10)
        proc = spawn(agent_env(tmp_path, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000"))
        try:
            got = []
            while sum(m == "WATCHDOG=1" for m in got) < 4:
                got.append(sock.recv(4096).decode())
            ready = [m for m in got if m.startswith("READY=1")]
            assert ready and "STATUS=site HEAD_OFFICE device jetson-01" in ready[0]
            proc.send_signal(signal.SIGTERM)
            while "STOPPING=1" not in got:
                got.append(sock.recv(4096).decode())
            assert proc.wait(10) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
            proc.communicate()


def _publish(broker, topic: str, payloads: list) -> None:
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="deepstream", protocol=mqtt.MQTTv311)
    c.connect("127.0.0.1", broker.port)
    c.loop_start()
    try:
        for p in payloads:
            c.publish(topic, p, qos=1).wait_for_publish(5)
    finally:
        c.disconnect()
        c.loop_stop()


@pytest.mark.slow
def test_local_mqtt_input_replays_after_sigkill_and_acks_after_commit(tmp_path, mosquitto):
    mapping = "camera=sensorId,people_count=objects#,timestamp=@timestamp,triggers=analytics.triggers"
    env = agent_env(tmp_path, HEATMAP_LOCAL_MQTT_URL=mosquitto.url, HEATMAP_LOCAL_MQTT_TOPIC="ds/detections",
                    HEATMAP_LOCAL_MQTT_MAPPING=mapping, HEATMAP_COMMIT_INTERVAL="60",
                    HEATMAP_PUBLISH_INTERVAL="60")
    now = time.time()
    detections = [json.dumps({"sensorId": "ENTRANCE", "@timestamp": now, "objects": ["p"] * (i + 1),
                              "analytics": {"triggers": ["CROWD_VIOLATION"] if i == 2 else []}})
                  for i in range(3)]
    proc = spawn(env)
    try:
        time.sleep(2.0)  # connected and subscribed: the persistent session exists from here
        _publish(mosquitto, "ds/detections", detections)
        time.sleep(1.0)
        proc.kill()  # SIGKILL before any commit: the events are in memory only
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()

    cfg = Config.load(None, agent_env(tmp_path, HEATMAP_LOCAL_MQTT_URL=mosquitto.url,
                                      HEATMAP_LOCAL_MQTT_TOPIC="ds/detections", HEATMAP_LOCAL_MQTT_MAPPING=mapping,
                                      HEATMAP_COMMIT_INTERVAL="0.2", HEATMAP_PUBLISH_INTERVAL="0.2"))
    agent = Agent(cfg).start()
    try:
        deadline = time.monotonic() + 10
        while agent.inputs[0].messages < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert agent.flush()
        values, _ = agent.outbox.load(0)
        assert [(c, p, e, t) for c, _, p, e, t in values] == [("ENTRANCE", 3, 3, {"CROWD_VIOLATION": 1})]
    finally:
        agent.stop()

    agent = Agent(cfg).start()  # acked after the commit: nothing comes again
    try:
        time.sleep(1.5)
        assert agent.inputs[0].messages == 0
        values, _ = agent.outbox.load(0)
        assert [e for _, _, _, e, _ in values] == [3]
    finally:
        agent.stop()


def test_sigkill_leaves_the_retained_last_will_offline(tmp_path, mosquitto, central):
    proc = spawn(agent_env(tmp_path, HEATMAP_MQTT_URL=mosquitto.url))
    try:
        assert central.wait_for(lambda: any(s.state == "online" for s in central.statuses), 15)
        proc.kill()
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert central.wait_for(lambda: central.statuses[-1].state == "offline", 10)
    late = CentralDouble(mosquitto).start()  # a subscriber that comes later gets it retained
    try:
        assert late.wait_for(lambda: late.statuses and late.statuses[-1].state == "offline", 5)
    finally:
        late.stop()
