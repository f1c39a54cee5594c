"""The shipped deployment examples, run for real: deploy/mosquitto's config with TLS, the
password file and the per-device ACL made by add-device.sh, a real agent over mqtts://, and
the systemd unit of central (where systemd-analyze exists)."""

from __future__ import annotations

import json
import os
import queue
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest

from shared.paho_close import stop_client
from shared.topics import ack_topic, state_topic, status_topic, subscription
from tests.harness import (
    eventually,
    find_mosquitto,
    free_port,
    stopped_at_teardown,
    subscribed,
    wait_for_port,
)

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"

pytestmark = pytest.mark.skipif(
    find_mosquitto() is None or shutil.which("mosquitto_passwd") is None or shutil.which("openssl") is None,
    reason="needs mosquitto, mosquitto_passwd and openssl",
)


def _run(*args, **kw):
    return subprocess.run(list(args), capture_output=True, text=True, check=True, timeout=30, **kw)


def _certs(d: Path) -> None:
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=test-ca",
         "-keyout", str(d / "ca.key"), "-out", str(d / "ca.crt"))
    _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", "/CN=127.0.0.1",
         "-keyout", str(d / "server.key"), "-out", str(d / "server.csr"))
    (d / "ext.cnf").write_text("subjectAltName=IP:127.0.0.1\n")
    _run("openssl", "x509", "-req", "-in", str(d / "server.csr"), "-CA", str(d / "ca.crt"), "-CAkey",
         str(d / "ca.key"), "-CAcreateserial", "-days", "2", "-extfile", str(d / "ext.cnf"),
         "-out", str(d / "server.crt"))


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    d = tmp_path_factory.mktemp("mosquitto")
    (d / "certs").mkdir()
    (d / "data").mkdir()
    _certs(d / "certs")
    shutil.copy(DEPLOY / "mosquitto" / "heatmap.acl", d / "heatmap.acl")
    env = dict(os.environ, MOSQUITTO_DIR=str(d))
    for site, device in (("HEAD_OFFICE", "jetson-01"), ("LONDON_STORE", "jetson-02")):
        _run("sh", str(DEPLOY / "mosquitto" / "add-device.sh"), site, device,
             env=dict(env, HEATMAP_DEVICE_PASSWORD="pw-" + device))
    _run("mosquitto_passwd", "-b", str(d / "heatmap.passwd"), "heatmap-central", "pw-central")
    tls_port, plain_port = free_port(), free_port()
    conf = (DEPLOY / "mosquitto" / "heatmap.conf").read_text()
    conf = (conf.replace("/etc/mosquitto/", "%s/" % d).replace("/var/lib/mosquitto/", "%s/data/" % d)
            .replace("listener 8883", "listener %d 127.0.0.1" % tls_port)
            .replace("listener 1883 127.0.0.1", "listener %d 127.0.0.1" % plain_port))
    assert str(d) in conf and "8883" not in conf
    conf += "\nlog_dest file %s/mosquitto.log\n" % d
    if os.geteuid() == 0:
        conf += "user root\n"
    (d / "mosquitto.conf").write_text(conf)
    proc = subprocess.Popen([find_mosquitto(), "-c", str(d / "mosquitto.conf")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_for_port(tls_port)
        wait_for_port(plain_port)
        yield {"dir": d, "tls": tls_port, "plain": plain_port, "ca": str(d / "certs" / "ca.crt")}
    finally:
        proc.terminate()
        proc.wait(10)


def _client(broker, user, password, tls=True, cid=None):
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=cid or user or "anon", protocol=mqtt.MQTTv311)
    stopped_at_teardown(c)
    if user:
        c.username_pw_set(user, password)
    if tls:
        c.tls_set(ca_certs=broker["ca"])
    c.got = queue.Queue()
    c.result = queue.Queue()
    c.on_connect = lambda cl, ud, flags, rc, props=None: c.result.put(rc)
    c.on_message = lambda cl, ud, m: c.got.put((m.topic, m.payload))
    c.connect("127.0.0.1", broker["tls"] if tls else broker["plain"])
    c.loop_start()
    return c


def _connected(c) -> bool:
    rc = c.result.get(timeout=5)
    return not rc.is_failure


def _drain(c, seconds):
    out, end = [], time.monotonic() + seconds
    while True:
        try:
            out.append(c.got.get(timeout=max(0.01, end - time.monotonic())))
        except queue.Empty:
            return out


def _close(*clients):
    for c in clients:
        stop_client(c)


def test_devices_are_confined_to_their_subtree(broker):
    central = _client(broker, "heatmap-central", "pw-central", tls=False)
    assert _connected(central)
    subscribed(central, subscription("state"))
    dev1 = _client(broker, "jetson-01", "pw-jetson-01")
    dev2 = _client(broker, "jetson-02", "pw-jetson-02")
    assert _connected(dev1) and _connected(dev2)
    subscribed(dev1, ack_topic("HEAD_OFFICE", "jetson-01"))
    subscribed(dev2, ack_topic("HEAD_OFFICE", "jetson-01"))  # not its own: denied
    dev1.publish(state_topic("HEAD_OFFICE", "jetson-01"), b"mine", qos=1).wait_for_publish(5)
    dev1.publish(state_topic("LONDON_STORE", "jetson-02"), b"forged", qos=1).wait_for_publish(5)
    dev1.publish(state_topic("LONDON_STORE", "jetson-01"), b"other site", qos=1).wait_for_publish(5)
    assert _drain(central, 1.5) == [(state_topic("HEAD_OFFICE", "jetson-01"), b"mine")]
    central.publish(ack_topic("HEAD_OFFICE", "jetson-01"), b"ack", qos=1).wait_for_publish(5)
    assert _drain(dev1, 1.5) == [(ack_topic("HEAD_OFFICE", "jetson-01"), b"ack")]
    assert _drain(dev2, 0.3) == []
    _close(central, dev1, dev2)


def test_wrong_password_anonymous_and_plain_tls_port_are_refused(broker):
    bad = _client(broker, "jetson-01", "wrong", cid="bad")
    anon = _client(broker, None, None, cid="anon")
    assert not _connected(bad) and not _connected(anon)
    _close(bad, anon)
    plain_on_tls = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="plain", protocol=mqtt.MQTTv311)
    plain_on_tls.username_pw_set("jetson-01", "pw-jetson-01")
    ok = threading.Event()
    plain_on_tls.on_connect = lambda *a: ok.set()
    try:
        plain_on_tls.connect("127.0.0.1", broker["tls"])
        plain_on_tls.loop_start()
        assert not ok.wait(1.5)
    except OSError:
        pass
    finally:
        stop_client(plain_on_tls, disconnect=False)  # never got an MQTT session to end


def test_add_device_refuses_bad_names_and_duplicates(broker):
    env = dict(os.environ, MOSQUITTO_DIR=str(broker["dir"]), HEATMAP_DEVICE_PASSWORD="x")
    for site, device in (("HEAD_OFFICE", "a/b"), ("HEAD/#", "jetson-9"), ("HEAD_OFFICE", "+"), ("HEAD_OFFICE", "alerts"),
                         ("HEAD_OFFICE", "jetson-01")):
        res = subprocess.run(["sh", str(DEPLOY / "mosquitto" / "add-device.sh"), site, device],
                             env=env, capture_output=True, text=True, timeout=10)
        assert res.returncode != 0, (site, device)
    acl = (broker["dir"] / "heatmap.acl").read_text()
    assert acl.count("user jetson-01") == 1 and "a/b" not in acl


def test_a_real_agent_connects_over_tls_with_its_account(broker, tmp_path):
    central = _client(broker, "heatmap-central", "pw-central", tls=False, cid="central-status")
    assert _connected(central)
    subscribed(central, subscription("status"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
    env.update(HEATMAP_SITE="HEAD_OFFICE", HEATMAP_DEVICE_ID="jetson-01",
               HEATMAP_MQTT_URL="mqtts://jetson-01:pw-jetson-01@127.0.0.1:%d" % broker["tls"],
               HEATMAP_MQTT_CA_FILE=broker["ca"], HEATMAP_STATE_DIR=str(tmp_path / "state"),
               HEATMAP_UDP_ADDR="127.0.0.1:%d" % free_port())
    agent = subprocess.Popen([sys.executable, "-m", "edge", "run"], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        states: list = []

        def online() -> bool:
            states.extend(json.loads(p)["state"] for t, p in _drain(central, 0.3)
                          if t == status_topic("HEAD_OFFICE", "jetson-01"))
            return "online" in states

        eventually(online, 20, "the agent's retained 'online'")
    finally:
        agent.terminate()
        agent.wait(15)
        _close(central)


@pytest.mark.skipif(shutil.which("systemd-analyze") is None, reason="no systemd-analyze")
def test_central_units_verify():
    units = sorted(str(p) for p in (DEPLOY / "central").iterdir() if p.suffix in (".service", ".timer"))
    assert len(units) == 3
    res = subprocess.run(["systemd-analyze", "verify", "--man=no", *units],
                         capture_output=True, text=True, timeout=60, env=dict(os.environ, SYSTEMD_LOG_LEVEL="warning"))
    assert res.returncode == 0, res.stderr
