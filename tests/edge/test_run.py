"""``python -m edge run`` as a real process: SIGTERM flush, systemd notify, config errors,
the local MQTT input replaying after a SIGKILL, a stop right after bursts on both inputs, and
a dead input taking the agent down."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from edge.agent import OUTBOX_FILE, Agent
from edge.config import Config
from edge.outbox import Outbox
from shared.paho_close import stop_client
from shared.protocol import decode
from shared.topics import stats_topic
from tests.edge.central_double import CentralDouble
from tests.harness import StreamLines, eventually, free_port

# Date-sensitive: make test-clock runs these again at fixed instants (tests/_clock).
pytestmark = pytest.mark.clock

ROOT = Path(__file__).resolve().parents[2]


def agent_env(tmp_path: Path, **extra: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HEATMAP_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update(HEATMAP_SITE="HEAD_OFFICE", HEATMAP_DEVICE_ID="jetson-01",
               HEATMAP_STATE_DIR=str(tmp_path / "state"),
               # Ahead of, not instead of, what is there (tests/_clock in a fixed-instant run).
               PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])))
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
                    HEATMAP_COMMIT_INTERVAL="30", HEATMAP_PUBLISH_INTERVAL="30", HEATMAP_STATS_INTERVAL="0.2",
                    HEATMAP_PRIORITY="off")  # triggers would go out at once (test_priority.py)
    proc = spawn(env)
    try:
        assert central.wait_for(lambda: any(s.state == "online" for s in central.statuses), 15)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(50):
                sock.sendto(json.dumps({"camera": "CAM", "people_count": i % 10, "triggers": ["A"]}).encode(),
                            ("127.0.0.1", port))
        # Its statistics say when the agent has taken all 50 (stats every 0.2 s; states wait 30 s).
        eventually(lambda: any(m.stats.get("udp_datagrams") == 50 for m in list(central.stats)), 10,
                   "the agent took 50 datagrams")
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


def test_sigterm_publishes_states_sent_before_central_listened(tmp_path, mosquitto):
    """#27: the agent published while central was not subscribed (the broker dropped the
    messages: no session held them), so nothing was acked. A device stopped for good before
    its resend timeout used to keep them in its outbox; on SIGTERM it publishes every unacked
    state, and central, listening by then, gets them."""
    port = free_port()
    env = agent_env(tmp_path, HEATMAP_MQTT_URL=mosquitto.url, HEATMAP_UDP_ADDR="127.0.0.1:%d" % port,
                    HEATMAP_COMMIT_INTERVAL="0.1", HEATMAP_PUBLISH_INTERVAL="0.2", HEATMAP_STATS_INTERVAL="0.2",
                    HEATMAP_ACK_TIMEOUT="3600", HEATMAP_PRIORITY="off")
    stats: list = []
    watcher = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="stats-watcher", protocol=mqtt.MQTTv311)
    watcher.on_message = lambda c, u, m: stats.append(decode(m.payload).stats)
    watcher.connect("127.0.0.1", mosquitto.port)
    watcher.loop_start()
    proc = spawn(env)
    central = None
    try:
        # Only the agent's statistics are watched: its states find no subscriber.
        watcher.subscribe(stats_topic("HEAD_OFFICE", "jetson-01"), qos=0)
        eventually(lambda: stats, 15, "the agent's statistics (it is up, its socket bound)")
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            for i in range(20):
                sock.sendto(json.dumps({"camera": "CAM%d" % (i % 4), "people_count": i}).encode(),
                            ("127.0.0.1", port))
        eventually(lambda: any(m.get("states_sent", 0) >= 4 and m.get("outbox_backlog") == 4 for m in list(stats)),
                   15, "the agent published its 4 states (to nobody)")
        central = CentralDouble(mosquitto).start()
        central.auto_ack = False
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
        # The broker acknowledged the last publish; it reaches the subscriber after that.
        eventually(lambda: len(central.latest()) >= 4, 10, "the states published at SIGTERM reached central")
    finally:
        if proc.poll() is None:
            proc.kill()
        _, err = proc.communicate()
        stop_client(watcher)
        if central is not None:
            central.stop()
    latest = central.latest()
    assert sorted(c for c, _ in latest) == ["CAM0", "CAM1", "CAM2", "CAM3"], err
    assert sum(s.events for s in latest.values()) == 20
    assert "last publish: 1 of 1 message(s) reached the broker" in err


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
    try:
        c.connect("127.0.0.1", broker.port)
        c.loop_start()
        for p in payloads:
            c.publish(topic, p, qos=1).wait_for_publish(5)
    finally:
        stop_client(c)


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
    err = StreamLines(proc.stderr)
    try:
        # The SUBACK: the persistent session holds the subscription from here.
        err.wait_for("local MQTT input subscribed", 15)
        _publish(mosquitto, "ds/detections", detections)
        # Usually the agent has them in memory by now; if not, the session still holds them:
        # either way they must come back after the SIGKILL, so no wait could hide a loss.
        proc.kill()  # SIGKILL before any commit (60 s interval): the events are in memory only
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        proc.stdout.close()

    cfg = Config.load(None, agent_env(tmp_path, HEATMAP_LOCAL_MQTT_URL=mosquitto.url,
                                      HEATMAP_LOCAL_MQTT_TOPIC="ds/detections", HEATMAP_LOCAL_MQTT_MAPPING=mapping,
                                      HEATMAP_COMMIT_INTERVAL="0.2", HEATMAP_PUBLISH_INTERVAL="0.2"))
    agent = Agent(cfg).start()
    try:
        eventually(lambda: agent.inputs[0].messages >= 3, 10, "the three detections replayed")
        assert agent.flush()
        values, _ = agent.outbox.load(0)
        assert [(c, p, e, t) for c, _, p, e, t in values] == [("ENTRANCE", 3, 3, {"CROWD_VIOLATION": 1})]
    finally:
        agent.stop()

    agent = Agent(cfg).start()  # acked after the commit: nothing comes again
    try:
        assert agent.inputs[0].subscribed.wait(10)
        # A probe published now arrives after anything the session still held.
        probe = json.dumps({"sensorId": "PROBE", "@timestamp": now, "objects": ["p"], "analytics": {}})
        _publish(mosquitto, "ds/detections", [probe])
        eventually(lambda: agent.inputs[0].messages >= 1, 10, "the probe")
        assert agent.flush()
        assert agent.inputs[0].messages == 1
        values, _ = agent.outbox.load(0)
        assert sorted((c, e) for c, _, _, e, _ in values) == [("ENTRANCE", 3), ("PROBE", 1)]
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


# -- a clean stop loses nothing; a dead input stops the agent ---------------------------------

class Lines:
    """The agent's stderr, read as it comes: ``wait_for(text)`` blocks until a line holds it."""

    def __init__(self, proc: subprocess.Popen) -> None:
        self.lines: list = []
        self._cond = threading.Condition()
        self._thread = threading.Thread(target=self._read, args=(proc.stderr,), daemon=True)
        self._thread.start()

    def _read(self, stream) -> None:
        with stream:
            for line in stream:
                with self._cond:
                    self.lines.append(line)
                    self._cond.notify_all()

    def wait_for(self, text: str, timeout: float = 15.0) -> bool:
        with self._cond:
            return self._cond.wait_for(lambda: any(text in line for line in self.lines), timeout)

    def text(self) -> str:
        self._thread.join(10)
        return "".join(self.lines)


def spawn_watched(env: dict, code: str = "") -> tuple:
    """``python -m edge run`` (after ``code``, when given) with its stderr read by a thread."""
    argv = [sys.executable, "-c", code + "\nimport sys\nfrom edge.__main__ import main\nsys.exit(main(['run']))"]
    proc = subprocess.Popen(argv, cwd=str(ROOT), env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    return proc, Lines(proc)


def outbox_events(tmp_path: Path) -> int:
    outbox = Outbox(str(tmp_path / "state" / OUTBOX_FILE))
    try:
        values, _ = outbox.load(0)
    finally:
        outbox.close()
    return sum(events for _, _, _, events, _ in values)


def _burst(camera: str, n: int) -> bytes:
    return "\n".join(json.dumps({"camera": camera, "people_count": i % 7, "triggers": ["A"]})
                     for i in range(n)).encode()


@pytest.mark.parametrize("kind", ["udp", "unix"])
def test_sigterm_right_after_bursts_commits_every_datagram(tmp_path, kind):
    """#19: one event, 10 ms, four datagrams of 15 events, SIGTERM: the outbox held 1 of 61.
    The stop now drains the socket before the last commit; a longer run ends the same way."""
    if kind == "udp":
        address: object = ("127.0.0.1", free_port())
        env = agent_env(tmp_path, HEATMAP_UDP_ADDR="127.0.0.1:%d" % address[1])  # type: ignore[index]
        family = socket.AF_INET
    else:
        address = str(tmp_path / "events.sock")
        env = agent_env(tmp_path, HEATMAP_UNIX_SOCKET=address)
        family = socket.AF_UNIX
    env.update(HEATMAP_COMMIT_INTERVAL="30", HEATMAP_PUBLISH_INTERVAL="30")
    for rounds in (1, 12):
        proc, lines = spawn_watched(env)
        try:
            assert lines.wait_for("agent running"), lines.lines
            sent = 0
            with socket.socket(family, socket.SOCK_DGRAM) as sock:
                for _ in range(rounds):
                    sock.sendto(_burst("DOOR", 1), address)
                    time.sleep(0.01)  # the timing: the reader is waiting when the burst comes
                    for _ in range(4):
                        sock.sendto(_burst("DOOR", 15), address)
                    sent += 61
            before = outbox_events(tmp_path) if rounds > 1 else 0
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(15) == 0
        finally:
            if proc.poll() is None:
                proc.kill()
        assert outbox_events(tmp_path) == before + sent, lines.text()
        assert "datagram(s) drained" in lines.text()


def _local_mqtt_env(tmp_path: Path, broker) -> dict:
    return agent_env(tmp_path, HEATMAP_LOCAL_MQTT_URL=broker.url, HEATMAP_LOCAL_MQTT_TOPIC="ds/detections",
                     HEATMAP_COMMIT_INTERVAL="60", HEATMAP_PUBLISH_INTERVAL="60")


@pytest.mark.slow
def test_sigterm_right_after_a_local_mqtt_burst_commits_and_acks_every_message(tmp_path, mosquitto):
    """QoS 1 past the broker's in-flight window and QoS 0 alike: everything the broker took
    before the signal is committed once, and acked, so the next start gets nothing again."""
    env = _local_mqtt_env(tmp_path, mosquitto)
    proc, lines = spawn_watched(env)
    try:
        assert lines.wait_for("local MQTT input subscribed"), lines.lines
        pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="deepstream", protocol=mqtt.MQTTv311)
        try:
            pub.connect("127.0.0.1", mosquitto.port)
            pub.loop_start()
            pair = json.dumps([{"camera": "DOOR", "people_count": 1}] * 2)  # one JSON value per message
            infos = [pub.publish("ds/detections", pair, qos=1) for _ in range(150)]
            for _ in range(100):
                pub.publish("ds/detections", _burst("DOOR", 1), qos=0)
            # The broker handles a client's packets in order: once this is acked, it holds all.
            infos.append(pub.publish("ds/detections", _burst("DOOR", 1), qos=1))
            for info in infos:
                info.wait_for_publish(10)
        finally:
            stop_client(pub)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
    assert outbox_events(tmp_path) == 150 * 2 + 100 + 1, lines.text()

    cfg = Config.load(None, dict(env, HEATMAP_COMMIT_INTERVAL="0.2", HEATMAP_PUBLISH_INTERVAL="0.2"))
    agent = Agent(cfg).start()  # the same persistent session: nothing comes again
    try:
        inp = agent.inputs[0]
        assert inp.subscribed.wait(10)
        _publish(mosquitto, "ds/detections", [_burst("SENTINEL", 1)])
        deadline = time.monotonic() + 10
        while inp.messages < 1 and time.monotonic() < deadline:
            time.sleep(0.02)
        assert (inp.messages, inp.redelivered) == (1, 0)
    finally:
        agent.stop()


#: Kills an input's thread the way nothing in the code can be made to: a BaseException.
_KILL_DATAGRAM_READER = """
from edge.inputs import datagram
class Injected(BaseException):
    pass
def handle(self, view, n):
    raise Injected("an input thread dies")
datagram.DatagramInput._handle_safely = handle
"""
_KILL_PAHO_THREAD = """
from edge.inputs import local_mqtt
class Injected(BaseException):
    pass
def on_message(self, client, userdata, message):
    raise Injected("paho's thread dies")
local_mqtt.LocalMqttInput._on_message = on_message
"""


@pytest.mark.parametrize("kind", ["datagram", "local_mqtt"])
def test_an_input_that_dies_takes_the_agent_down_and_stops_the_watchdog(tmp_path, mosquitto, kind):
    """Never up but deaf: the watchdog is no longer fed and the exit code is 1, so systemd
    restarts the agent."""
    port = free_port()
    if kind == "datagram":
        env = agent_env(tmp_path, HEATMAP_UDP_ADDR="127.0.0.1:%d" % port)
        code, ready = _KILL_DATAGRAM_READER, "agent running"
    else:
        env = _local_mqtt_env(tmp_path, mosquitto)
        code, ready = _KILL_PAHO_THREAD, "local MQTT input subscribed"
    path = str(tmp_path / "notify.sock")
    env.update(NOTIFY_SOCKET=path, WATCHDOG_USEC="200000", HEATMAP_COMMIT_INTERVAL="0.2")
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        notify.bind(path)
        notify.settimeout(10)
        proc, lines = spawn_watched(env, code)
        try:
            assert lines.wait_for(ready), lines.lines
            got = []
            while "WATCHDOG=1" not in got:  # fed while the input lives (before the kill, not by luck)
                got.append(notify.recv(4096).decode())
            if kind == "datagram":
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
                    sock.sendto(_burst("DOOR", 1), ("127.0.0.1", port))
            else:
                _publish(mosquitto, "ds/detections", [_burst("DOOR", 1)])
            assert proc.wait(15) == 1
            while "STOPPING=1" not in got:
                got.append(notify.recv(4096).decode())
        finally:
            if proc.poll() is None:
                proc.kill()
    died = [i for i, m in enumerate(got) if m.startswith("STATUS=") and "has died" in m]
    assert died, got
    assert "WATCHDOG=1" in got[:died[0]] and "WATCHDOG=1" not in got[died[0]:], got
    assert "has died" in lines.text()
