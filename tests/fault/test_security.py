"""Security: a broker with a password file and the shipped per-device ACL pattern
(deploy/mosquitto), central's identity check, and the read and ingest tokens."""

from __future__ import annotations

import shutil
import subprocess
import threading
import time
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from paho.mqtt.reasoncodes import ReasonCode

from shared import protocol, topics
from shared.paho_close import stop_client
from tests.fault.conftest import REPO, SITE, compare, record, wait_dashboard, wait_until

pytestmark = [pytest.mark.fault, pytest.mark.slow]

PASSWORDS = {"heatmap-central": "central-pw-1", "jetson-01": "device-pw-1", "jetson-02": "device-pw-2",
             "monitor": "monitor-pw"}
OTHER = "OTHER_SITE"


@pytest.fixture
def secured_broker(mosquitto_factory, tmp_path: Path):
    """mosquitto with accounts made by deploy/mosquitto/add-device.sh and its shipped ACL."""
    conf = tmp_path / "mosquitto-etc"
    conf.mkdir()
    shutil.copy(REPO / "deploy" / "mosquitto" / "heatmap.acl", conf / "heatmap.acl")
    for device, site in (("jetson-01", SITE), ("jetson-02", OTHER)):
        subprocess.run(["sh", str(REPO / "deploy" / "mosquitto" / "add-device.sh"), site, device], check=True,
                       env={"PATH": "/usr/bin:/bin:/usr/sbin:/sbin", "MOSQUITTO_DIR": str(conf),
                            "HEATMAP_DEVICE_PASSWORD": PASSWORDS[device]}, capture_output=True)
    for user in ("heatmap-central", "monitor"):
        subprocess.run(["mosquitto_passwd", "-b", str(conf / "heatmap.passwd"), user, PASSWORDS[user]], check=True)
    with open(conf / "heatmap.acl", "a") as fh:
        fh.write("\nuser monitor\ntopic read heatmap/#\n")
    return mosquitto_factory(["allow_anonymous false", "password_file %s" % (conf / "heatmap.passwd"),
                              "acl_file %s" % (conf / "heatmap.acl")])


def _url(broker, user: str, password: str | None = None) -> str:
    return "mqtt://%s:%s@127.0.0.1:%d" % (user, password or PASSWORDS[user], broker.port)


class _Client:
    """An MQTT 5 client that records PUBACK and SUBACK reason codes and the CONNACK."""

    def __init__(self, broker, user: str | None, password: str | None = None):
        self.connack: ReasonCode | None = None
        self.pubacks: dict[int, ReasonCode] = {}
        self.subacks: list = []
        self.received: list = []
        self.connected = threading.Event()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="sec-%s-%d" % (user, id(self)),
                             protocol=mqtt.MQTTv5)
        if user:
            self.c.username_pw_set(user, password or PASSWORDS.get(user))
        self.c.on_connect = self._on_connect
        self.c.on_publish = lambda c, u, mid, rc, props: self.pubacks.__setitem__(mid, rc)
        self.c.on_subscribe = lambda c, u, mid, rcs, props: self.subacks.extend(rcs)
        self.c.on_message = lambda c, u, msg: self.received.append(msg.topic)
        self.c.connect_async("127.0.0.1", broker.port)
        self.c.loop_start()

    def _on_connect(self, client, userdata, flags, reason_code, properties):
        self.connack = reason_code
        self.connected.set()

    def publish(self, topic: str, payload: bytes) -> ReasonCode:
        info = self.c.publish(topic, payload, qos=1)
        info.wait_for_publish(10)
        return wait_until("PUBACK", lambda: self.pubacks.get(info.mid), 10)

    def close(self):
        stop_client(self.c)


def _state(site: str, device: str, camera: str = "ENTRANCE") -> bytes:
    slot = int(time.time()) // 900 * 900 - 900
    return protocol.encode(protocol.StateBatch(site, device, 1, time.time(),
                                               (protocol.SlotState(camera, slot, 9, 99, 2**52),)))


def test_acl_confines_devices_and_central_rejects_identity_mismatch(secured_broker, spawn, feeder, monitor):
    """The legitimate path works through the ACL (exact totals, acks reach the device); a
    device cannot publish into another site or device (the broker refuses: PUBACK 0x87),
    cannot read another device's acks, and a payload on its own topic claiming another
    identity is refused by central (identity_mismatch dead letter); unknown users and wrong
    passwords cannot connect."""
    broker = secured_broker
    make_central, make_agent = spawn
    central = make_central(_url(broker, "heatmap-central")).start()
    agent = make_agent("jetson-01", _url(broker, "jetson-01")).start()
    mon = monitor(broker.port, "monitor", PASSWORDS["monitor"])
    feed = feeder(rate_scale=10)
    feed.run(agent.udp, feed.total / 8)
    began = time.monotonic()
    wait_dashboard(central, feed.expected(), timeout=60)
    recover = time.monotonic() - began
    wait_until("the device saw acks", lambda: mon.stat("jetson-01", "acks") > 0, 15)

    rogue = _Client(broker, "jetson-01")
    try:
        assert rogue.connected.wait(10) and not rogue.connack.is_failure
        denied = [rogue.publish(str(topics.Topic(OTHER, "jetson-01", "state")), _state(OTHER, "jetson-01")),
                  rogue.publish(str(topics.Topic(SITE, "jetson-02", "state")), _state(SITE, "jetson-02")),
                  rogue.publish(topics.ack_topic(OTHER, "jetson-02"), b"{}")]
        assert all(rc.value == 0x87 for rc in denied), [str(rc) for rc in denied]
        # mosquitto grants the SUBSCRIBE but delivers nothing the ACL does not let it read.
        rogue.c.subscribe(topics.ack_topic(OTHER, "jetson-02"), qos=1)
        wait_until("SUBACK", lambda: rogue.subacks, 10)
        central_user = _Client(broker, "heatmap-central")
        try:
            assert central_user.connected.wait(10)
            assert not central_user.publish(topics.ack_topic(OTHER, "jetson-02"), b"{}").is_failure
        finally:
            central_user.close()
        time.sleep(1)
        assert rogue.received == []
        # Allowed by the broker (its own topic) but lying about who it is: central refuses.
        mismatch = [rogue.publish(topics.state_topic(SITE, "jetson-01"), _state(OTHER, "jetson-01")),
                    rogue.publish(topics.state_topic(SITE, "jetson-01"), _state(SITE, "jetson-02"))]
        assert all(not rc.is_failure for rc in mismatch)
    finally:
        rogue.close()
    for user, password in ((None, None), ("jetson-01", "wrong"), ("nobody", "x")):
        c = _Client(broker, user, password)
        try:
            assert c.connected.wait(10) and c.connack.is_failure, (user, c.connack)
        finally:
            c.close()
    # Central has taken (and dead-lettered) the mismatching messages: its /metrics says so.
    wait_until("central refused both mismatching messages",
               lambda: 'heatmap_dead_letters_total{reason="identity_mismatch"} 2.0' in central.get("/metrics")[1].decode(),
               30, 0.2)
    assert agent.stop() == 0
    assert central.stop() == 0
    dead = central.query("SELECT reason, count() FROM dead_letters GROUP BY reason")
    foreign = central.query("SELECT count() FROM slot_states WHERE site_name != {s:String} OR device_id != "
                            "{d:String}", {"s": SITE, "d": "jetson-01"})[0][0]
    result = compare(feed.expected(), central.slot_states())
    record("ACL broker + identity check", result, recover, denied=len(denied), dead_letters={r[0]: r[1] for r in dead})
    assert result["wrong"] == []
    assert foreign == 0
    assert {r[0]: r[1] for r in dead}.get("identity_mismatch") == 2


def test_read_and_ingest_tokens_are_enforced(spawn):
    """With both tokens configured: no token, a wrong token or the other role's token is 401;
    the right token is let in."""
    make_central, _ = spawn
    central = make_central(None, HEATMAP_READ_TOKEN="read-token-123456", HEATMAP_INGEST_TOKEN="ingest-token-654321")
    central.start()
    now = int(time.time()) - 600
    body = b'{"site":"%s","camera":"ENTRANCE","people_count":2,"timestamp":%d}\n' % (SITE.encode(), now)
    date = time.strftime("%Y-%m-%d", time.gmtime(now))
    reads = ["/api/v1/dashboard/%s?date=%s" % (SITE, date), "/api/v1/sites", "/api/v1/alerts"]
    denied = []
    for token in (None, "wrong", "ingest-token-654321", "read-token-12345", "Bearer read-token-123456"):
        denied += [central.get(path, token)[0] for path in reads]
    for token in (None, "wrong", "read-token-123456", "ingest-token-65432"):
        denied.append(central.get("/api/v1/events", token, "POST", body, {"Content-Type": "application/x-ndjson"})[0])
    assert denied == [401] * len(denied), denied
    assert central.get("/api/v1/events", "ingest-token-654321", "POST", body,
                       {"Content-Type": "application/x-ndjson"})[0] in (200, 201)
    assert all(central.get(path, "read-token-123456")[0] == 200 for path in reads)
    dash = central.dashboard(SITE, date, "read-token-123456")
    assert dash["critical_events"]["total_events"] == 1
    assert central.stop() == 0
    record("read/ingest tokens", {"sent": 1, "got": 1, "lost": 0, "doubled": 0}, None, refused=len(denied))
