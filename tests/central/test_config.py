"""Config: environment, flags over environment, one clear error for bad settings."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from central.config import Config, add_arguments
from central.exceptions import ConfigError


def _args(*argv: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    return parser.parse_args(list(argv))


def test_defaults_and_derived_chdb_url(tmp_path):
    config = Config.load(environ={"HEATMAP_DATA_DIR": str(tmp_path)})
    assert config.clickhouse_url == "chdb://%s/chdb" % tmp_path
    assert config.engine == "chdb"
    assert config.http_addr == ("127.0.0.1", 8080)
    assert config.mqtt_url is None


def test_flag_overrides_environment():
    env = {"HEATMAP_HTTP_ADDR": "0.0.0.0:9000", "HEATMAP_MQTT_URL": "mqtts://u:p%40ss@broker"}
    config = Config.load(_args("--http-addr", "[::1]:81"), environ=env)
    assert config.http_addr == ("::1", 81)
    assert config.mqtt_url.host == "broker" and config.mqtt_url.port == 8883 and config.mqtt_url.tls
    assert config.mqtt_url.password == "p@ss"
    assert "p@ss" not in repr(config)


@pytest.mark.parametrize(
    ("env", "needle"),
    [
        ({"HEATMAP_NOPE": "1"}, "HEATMAP_NOPE"),
        ({"HEATMAP_HTTP_ADDR": "8080"}, "HEATMAP_HTTP_ADDR"),
        ({"HEATMAP_MQTT_URL": "tcp://x"}, "HEATMAP_MQTT_URL"),
        ({"HEATMAP_CLICKHOUSE_URL": "mysql://x"}, "HEATMAP_CLICKHOUSE_URL"),
        ({"HEATMAP_BATCH_STATES": "0"}, "HEATMAP_BATCH_STATES"),
        ({"HEATMAP_CORS_ORIGINS": "example.com"}, "HEATMAP_CORS_ORIGINS"),
        ({"HEATMAP_MQTT_SHARE_GROUP": "a/b"}, "HEATMAP_MQTT_SHARE_GROUP"),
        ({"HEATMAP_SITES_FILE": "/nonexistent.toml"}, "HEATMAP_SITES_FILE"),
        ({"HEATMAP_MAX_EXPORTS": "\u0663"}, "HEATMAP_MAX_EXPORTS"),  # Arabic-Indic 3: ASCII digits only
        ({"HEATMAP_QUERY_WORKERS": "\uff18"}, "HEATMAP_QUERY_WORKERS"),  # fullwidth 8
        ({"HEATMAP_BATCH_SECONDS": "\u0660.\u0665"}, "HEATMAP_BATCH_SECONDS"),
    ],
)
def test_invalid_settings_name_the_variable(env, needle):
    with pytest.raises(ConfigError, match=needle):
        Config.load(environ=env)


def test_site_admission_settings(tmp_path):
    config = Config.load(environ={})
    assert (config.max_sites, config.accept_unknown_sites, config.max_event_age_days) == (1000, True, 400)
    sites = tmp_path / "sites.toml"
    sites.write_text("")
    config = Config.load(environ={"HEATMAP_SITES_FILE": str(sites), "HEATMAP_ACCEPT_UNKNOWN_SITES": "false",
                                  "HEATMAP_MAX_SITES": "0"})
    assert (config.max_sites, config.accept_unknown_sites) == (0, False)
    with pytest.raises(ConfigError, match="HEATMAP_ACCEPT_UNKNOWN_SITES=false needs HEATMAP_SITES_FILE"):
        Config.load(environ={"HEATMAP_ACCEPT_UNKNOWN_SITES": "false"})
    with pytest.raises(ConfigError, match="HEATMAP_ACCEPT_UNKNOWN_SITES"):
        Config.load(environ={"HEATMAP_ACCEPT_UNKNOWN_SITES": "maybe"})


def test_edge_variables_are_tolerated():
    Config.load(environ={"HEATMAP_SITE": "X", "HEATMAP_DEVICE_ID": "d", "HEATMAP_PUBLISH_INTERVAL": "5",
                         "HEATMAP_DEMO_X": "1"})


def test_token_from_systemd_credentials(tmp_path):
    (tmp_path / "heatmap_read_token").write_text("s3cret\n")
    config = Config.load(environ={"CREDENTIALS_DIRECTORY": str(tmp_path)})
    assert config.read_token == "s3cret"


def test_webhook_secret_from_systemd_credentials_and_alert_settings(tmp_path):
    (tmp_path / "heatmap_webhook_secret").write_text("hook-key\n")
    config = Config.load(environ={"CREDENTIALS_DIRECTORY": str(tmp_path), "HEATMAP_ALERT_TIME_SCALE": "0.1"})
    assert config.webhook_secret == "hook-key" and "hook-key" not in repr(config)
    assert config.alert_time_scale == 0.1 and config.webhook_timeout == 10.0
    with pytest.raises(ConfigError, match="HEATMAP_ALERT_TIME_SCALE"):
        Config.load(environ={"HEATMAP_ALERT_TIME_SCALE": "2"})  # only ever faster than real


def test_cli_exits_with_one_line_on_bad_setting(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "central", "serve"],
        env={"HEATMAP_HTTP_ADDR": "nope", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode == 2
    assert proc.stderr.strip().count("\n") == 0 and "HEATMAP_HTTP_ADDR" in proc.stderr
