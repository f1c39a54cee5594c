"""mqtts:// with client certificates from $CREDENTIALS_DIRECTORY, against a real mosquitto
with a TLS listener that requires a certificate signed by the test's own CA."""

from __future__ import annotations

import subprocess
import types

import pytest

from edge.agent import Agent
from edge.config import Config
from tests.edge.central_double import CentralDouble
from tests.harness import free_port


def openssl(*args: str, cwd) -> None:
    subprocess.run(["openssl", *args], cwd=str(cwd), check=True, capture_output=True, timeout=30)


def make_pki(d) -> None:
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    openssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.pem", "-days", "2", "-subj", "/CN=test-ca", cwd=d)
    for name, cn in (("server", "127.0.0.1"), ("client", "jetson-01")):
        openssl("req", *ec, "-keyout", name + ".key", "-out", name + ".csr", "-subj", "/CN=" + cn, cwd=d)
        (d / (name + ".ext")).write_text("subjectAltName=IP:127.0.0.1\n" if name == "server" else "")
        openssl("x509", "-req", "-in", name + ".csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", name + ".pem", "-days", "2", "-extfile", name + ".ext", cwd=d)


@pytest.fixture
def tls_broker(tmp_path, mosquitto_factory):
    pki = tmp_path / "pki"
    pki.mkdir()
    make_pki(pki)
    plain = free_port()
    broker = mosquitto_factory([
        "cafile %s" % (pki / "ca.pem"), "certfile %s" % (pki / "server.pem"),
        "keyfile %s" % (pki / "server.key"), "require_certificate true",
        "listener %d 127.0.0.1" % plain,  # plain, for the stand-in for central
    ])
    return broker, plain, pki


def tls_config(tmp_path, broker, creds) -> Config:
    return Config.load(None, {
        "HEATMAP_SITE": "HEAD_OFFICE", "HEATMAP_DEVICE_ID": "jetson-01",
        "HEATMAP_MQTT_URL": "mqtts://127.0.0.1:%d" % broker.port, "HEATMAP_STATE_DIR": str(tmp_path / "state"),
        "HEATMAP_COMMIT_INTERVAL": "0.2", "HEATMAP_PUBLISH_INTERVAL": "0.3",
        "CREDENTIALS_DIRECTORY": str(creds)})


def test_client_certificate_from_credentials_directory(tmp_path, tls_broker):
    broker, plain, pki = tls_broker
    creds = tmp_path / "creds"
    creds.mkdir()
    for src, dst in (("ca.pem", "mqtt_ca.pem"), ("client.pem", "mqtt_cert.pem"), ("client.key", "mqtt_key.pem")):
        (creds / dst).write_bytes((pki / src).read_bytes())
    central = CentralDouble(types.SimpleNamespace(port=plain)).start()
    try:
        agent = Agent(tls_config(tmp_path, broker, creds)).start()
        try:
            agent.record("CAM", 4)
            assert agent.wait_acked(15)
            assert [s.events for s in central.states()] == [1]
        finally:
            agent.stop()
    finally:
        central.stop()


def test_without_a_client_certificate_the_broker_refuses(tmp_path, tls_broker):
    broker, _, pki = tls_broker
    creds = tmp_path / "creds"
    creds.mkdir()
    (creds / "mqtt_ca.pem").write_bytes((pki / "ca.pem").read_bytes())
    agent = Agent(tls_config(tmp_path, broker, creds)).start()
    try:
        agent.record("CAM", 4)
        assert not agent.wait_acked(2)
        assert not agent.link.connected.is_set()
        assert agent.outbox.backlog() == 1  # still committed, waiting for a link
    finally:
        agent.stop()
