"""Configuration: environment and flags, URLs, credentials, and one clear line when wrong."""

from __future__ import annotations

import argparse

import pytest

from edge.config import Config, add_arguments, parse_mapping
from edge.exceptions import ConfigError

BASE = {"HEATMAP_SITE": "HEAD_OFFICE", "HEATMAP_DEVICE_ID": "jetson-01"}


def flags(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_and_flags_over_environment():
    cfg = Config.load(flags("--publish-interval", "9"), dict(BASE, HEATMAP_PUBLISH_INTERVAL="3"))
    assert cfg.publish_interval == 9.0
    assert cfg.commit_interval == 1.0
    assert cfg.retention_seconds == 7 * 86400
    assert cfg.mqtt is None
    assert cfg.state_dir == "./var/edge"
    assert Config.load(None, dict(BASE, STATE_DIRECTORY="/var/lib/heatmap-edge")).state_dir == "/var/lib/heatmap-edge"


def test_mqtt_urls_users_and_tls(tmp_path):
    cfg = Config.load(None, dict(BASE, HEATMAP_MQTT_URL="mqtt://edge%40hq:s%3Acret@broker.local"))
    assert (cfg.mqtt.host, cfg.mqtt.port, cfg.mqtt.tls) == ("broker.local", 1883, False)
    assert (cfg.mqtt.username, cfg.mqtt.password) == ("edge@hq", "s:cret")
    assert "s:cret" not in repr(cfg)
    creds = tmp_path / "creds"
    creds.mkdir()
    for name in ("mqtt_password", "mqtt_ca.pem", "mqtt_cert.pem", "mqtt_key.pem"):
        (creds / name).write_text("secret\n")
    env = dict(BASE, HEATMAP_MQTT_URL="mqtts://broker:9883", HEATMAP_MQTT_USERNAME="jetson-01",
               CREDENTIALS_DIRECTORY=str(creds))
    cfg = Config.load(None, env)
    assert (cfg.mqtt.port, cfg.mqtt.tls, cfg.mqtt.password) == (9883, True, "secret")
    assert cfg.mqtt.cert_file == str(creds / "mqtt_cert.pem")
    assert cfg.mqtt.ca_file == str(creds / "mqtt_ca.pem")


@pytest.mark.parametrize(
    ("env", "words"),
    [
        ({"HEATMAP_SITE": ""}, "HEATMAP_SITE"),
        ({"HEATMAP_SITE": "bad site"}, "HEATMAP_SITE"),
        ({"HEATMAP_DEVICE_ID": "a/b"}, "HEATMAP_DEVICE_ID"),
        ({"HEATMAP_MQTT_URL": "http://x"}, "mqtt://"),
        ({"HEATMAP_MQTT_URL": "mqtt://x:99999"}, "port"),
        ({"HEATMAP_MQTT_URL": "mqtt://x", "HEATMAP_MQTT_CERT_FILE": "/etc/hostname"}, "mqtts://"),
        ({"HEATMAP_MQTT_URL": "mqtts://x", "HEATMAP_MQTT_CA_FILE": "/nonexistent"}, "readable"),
        ({"HEATMAP_MQTT_URL": "mqtt://x", "HEATMAP_MQTT_PASSWORD_FILE": "/nonexistent"}, "cannot read"),
        ({"HEATMAP_COMMIT_INTERVAL": "0"}, "HEATMAP_COMMIT_INTERVAL"),
        ({"HEATMAP_PUBLISH_INTERVAL": "nan"}, "HEATMAP_PUBLISH_INTERVAL"),
        ({"HEATMAP_PUBLISH_INTERVAL": "0.5"}, "below"),
        ({"HEATMAP_UDP_ADDR": "localhost"}, "HEATMAP_UDP_ADDR"),
        ({"HEATMAP_UDP_ADDR": "0.0.0.0:7777"}, "loopback"),
        ({"HEATMAP_MAX_MESSAGE_BYTES": "10"}, "HEATMAP_MAX_MESSAGE_BYTES"),
        ({"HEATMAP_LOG_LEVEL": "chatty"}, "HEATMAP_LOG_LEVEL"),
        ({"HEATMAP_RETENTON_DAYS": "7"}, "unknown setting HEATMAP_RETENTON_DAYS"),
        ({"HEATMAP_LOCAL_MQTT_MAPPING": "camera=sensorId"}, "people_count"),
    ],
)
def test_invalid_settings_are_one_clear_line(env, words):
    with pytest.raises(ConfigError) as info:
        Config.load(None, dict(BASE, **env))
    text = str(info.value)
    assert words in text
    assert "\n" not in text


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("HEATMAP_MAX_CAMERAS", "\u0663"),  # Arabic-Indic three: int() reads it as 3
        ("HEATMAP_INTENSITY_HIGH", "\uff18"),  # fullwidth eight
        ("HEATMAP_MAX_INFLIGHT_STATES", "1_000"),
        ("HEATMAP_PROTOCOL_VERSION", "\u0662"),
        ("HEATMAP_COMMIT_INTERVAL", "\u0663"),  # float() reads it as 3.0
        ("HEATMAP_RETENTION_DAYS", "\uff17"),
        ("HEATMAP_UDP_ADDR", "127.0.0.1:\u0667\u0667\u0667\u0667"),
        ("HEATMAP_MQTT_URL", "mqtt://broker:\uff11\uff18\uff18\uff13"),
    ],
)
def test_numbers_in_other_scripts_digits_are_refused_naming_the_setting(name, value):
    with pytest.raises(ConfigError) as info:
        Config.load(None, dict(BASE, **{name: value}))
    assert name in str(info.value)
    assert "\n" not in str(info.value)


def test_central_settings_in_a_shared_environment_are_ignored():
    cfg = Config.load(None, dict(BASE, HEATMAP_CLICKHOUSE_URL="chdb:///x"))
    assert cfg.ignored_env == ("HEATMAP_CLICKHOUSE_URL",)


def test_mapping_and_udp_address():
    assert parse_mapping("camera=sensorId, people_count=objects#,timestamp=@timestamp") == {
        "camera": "sensorId", "people_count": "objects#", "timestamp": "@timestamp"}
    cfg = Config.load(None, dict(BASE, HEATMAP_UDP_ADDR="127.0.0.1:7777"))
    assert cfg.udp_addr == ("127.0.0.1", 7777)


def test_watchdog_interval_is_half_of_systemds():
    env = dict(BASE, WATCHDOG_USEC="30000000", NOTIFY_SOCKET="/run/systemd/notify")
    cfg = Config.load(None, env)
    assert (cfg.watchdog_interval, cfg.notify_socket) == (15.0, "/run/systemd/notify")
    assert Config.load(None, dict(env, WATCHDOG_PID="1")).watchdog_interval is None


def test_priority_intensity_and_protocol_settings():
    cfg = Config.load(None, dict(BASE))
    assert (cfg.priority, cfg.intensity_medium, cfg.intensity_high, cfg.protocol_version) == ("new", 4, 7, 2)
    assert (cfg.publish_interval, cfg.stats_interval) == (60.0, 300.0)
    cfg = Config.load(None, dict(BASE, HEATMAP_PRIORITY="ALL", HEATMAP_INTENSITY_MEDIUM="10",
                                 HEATMAP_INTENSITY_HIGH="20", HEATMAP_PROTOCOL_VERSION="1"))
    assert (cfg.priority, cfg.intensity_medium, cfg.intensity_high, cfg.protocol_version) == ("all", 10, 20, 1)
    for env, named in ((dict(HEATMAP_PRIORITY="urgent"), "HEATMAP_PRIORITY"),
                       (dict(HEATMAP_PROTOCOL_VERSION="3"), "HEATMAP_PROTOCOL_VERSION"),
                       (dict(HEATMAP_INTENSITY_HIGH="0"), "HEATMAP_INTENSITY_HIGH"),
                       (dict(HEATMAP_INTENSITY_MEDIUM="7"), "HEATMAP_INTENSITY_HIGH must be above")):
        with pytest.raises(ConfigError) as info:
            Config.load(None, dict(BASE, **env))
        assert named in str(info.value)
