"""The one settings mechanism: every HEATMAP_* name in one list, each program's own settings,
and one broker URL parser for both programs."""

from __future__ import annotations

import pytest

from central import config as central_config
from central.exceptions import ConfigError as CentralConfigError
from edge import config as edge_config
from edge.exceptions import ConfigError as EdgeConfigError
from shared.settings import NAMES, MqttTarget, parse_mqtt_url

EDGE_BASE = {"HEATMAP_SITE": "HEAD_OFFICE", "HEATMAP_DEVICE_ID": "jetson-01"}


def test_the_one_list_is_what_the_programs_declare():
    edge = {s.env for s in edge_config.SETTINGS} | {"HEATMAP_MQTT_PASSWORD"}
    central = {s.env for s in central_config.SETTINGS}
    assert NAMES == edge | central


@pytest.mark.parametrize("name", sorted({s.env for s in central_config.SETTINGS}
                                        - {s.env for s in edge_config.SETTINGS}))
def test_edge_ignores_every_central_variable(name):
    cfg = edge_config.Config.load(None, dict(EDGE_BASE, **{name: "x"}))
    assert cfg.ignored_env == (name,)


@pytest.mark.parametrize("name", sorted(({s.env for s in edge_config.SETTINGS} | {"HEATMAP_MQTT_PASSWORD"})
                                        - {s.env for s in central_config.SETTINGS}))
def test_central_tolerates_every_edge_variable(name):
    central_config.Config.load(environ={name: "x"})


def test_both_refuse_a_name_no_program_reads():
    env = dict(EDGE_BASE, HEATMAP_PUBLISH_INTERVALL="5")
    with pytest.raises(EdgeConfigError, match="unknown setting HEATMAP_PUBLISH_INTERVALL"):
        edge_config.Config.load(None, env)
    with pytest.raises(CentralConfigError, match="unknown setting HEATMAP_PUBLISH_INTERVALL"):
        central_config.Config.load(environ=env)


def test_parse_mqtt_url_is_the_one_parser():
    assert parse_mqtt_url("mqtt://u%40x:p%3Aw@broker") == MqttTarget("broker", 1883, False, "u@x", "p:w")
    assert parse_mqtt_url("mqtts://broker:9883/") == MqttTarget("broker", 9883, True)
    for bad, words in (("tcp://x", "mqtt://"), ("mqtt://", "mqtt://"), ("mqtt://x:99999", "port"),
                       ("mqtt://x/topic", "path"), ("mqtt://x?a=1", "query")):
        with pytest.raises(ValueError, match=words):
            parse_mqtt_url(bad)
    edge = edge_config.Config.load(None, dict(EDGE_BASE, HEATMAP_MQTT_URL="mqtts://u:p@broker"))
    central = central_config.Config.load(environ={"HEATMAP_MQTT_URL": "mqtts://u:p@broker"})
    assert type(edge.mqtt) is type(central.mqtt_url) is MqttTarget
    assert edge.mqtt == central.mqtt_url


def test_a_bad_secret_is_not_echoed():
    with pytest.raises(CentralConfigError) as info:
        central_config.Config.load(environ={"HEATMAP_MQTT_URL": "tcp://user:hunter2@broker"})
    assert "HEATMAP_MQTT_URL" in str(info.value) and "hunter2" not in str(info.value)
