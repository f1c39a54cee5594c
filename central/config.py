"""The one frozen configuration of a central process, and the only reader of os.environ.

Every setting has an environment variable (``HEATMAP_*``) and a command-line flag; a flag
overrides the variable, the variable overrides the default. Secrets (tokens) may also come
from systemd credentials (``$CREDENTIALS_DIRECTORY/<name>``). An unknown ``HEATMAP_*``
variable or an invalid value raises :class:`ConfigError` with one line naming it, and the
entry point exits non-zero. ``docs/central.md`` lists every setting. The mechanism (flags over
variables, the list of every ``HEATMAP_*`` name, the broker URL parser) is
``shared/settings.py``; this module declares central's own settings.
"""

from __future__ import annotations

import argparse
import os
import socket
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path

from shared import settings
from shared.names import is_valid_name
from shared.settings import MqttTarget, Setting, parse_mqtt_url

from .alerts.targets import POLICIES
from .exceptions import ConfigError
from .query import DIGITS

__all__ = ["Config", "SETTINGS", "add_arguments"]


def _str(value: str) -> str:
    return value


def _opt_str(value: str) -> str | None:
    return value or None


def _int(low: int, high: int) -> Callable[[str], int]:
    def parse(value: str) -> int:
        if not DIGITS.match(value):  # int() would take Arabic-Indic or fullwidth digits, "1_000", "+5"
            raise ValueError("not a whole number (ASCII digits)")
        number = int(value)
        if not low <= number <= high:
            raise ValueError("outside %d..%d" % (low, high))
        return number

    return parse


def _mqtt_protocol(value: str) -> str:
    if value not in ("5", "3.1.1"):
        raise ValueError("not 5 or 3.1.1")
    return value


def _float(low: float, high: float) -> Callable[[str], float]:
    def parse(value: str) -> float:
        try:
            if not value.isascii():  # float() would take digits of other scripts
                raise ValueError
            number = float(value)
        except ValueError:
            raise ValueError("not a number (ASCII digits)") from None
        if not low <= number <= high:
            raise ValueError("outside %g..%g" % (low, high))
        return number

    return parse


def _http_addr(value: str) -> tuple[str, int]:
    host, sep, port = value.rpartition(":")
    if not sep or not host:
        raise ValueError("not host:port")
    host = host.strip("[]")
    return host, _int(0, 65535)(port)


def _mqtt_url(value: str) -> MqttTarget | None:
    return parse_mqtt_url(value) if value else None


def _clickhouse_url(value: str) -> str:
    scheme = value.split("://", 1)[0] if "://" in value else ""
    if scheme not in ("chdb", "http", "https", "clickhouse", "clickhouses"):
        raise ValueError("%r must be chdb:///path or http(s)://user:pass@host:port/db" % value)
    return value


def _origins(value: str) -> tuple[str, ...]:
    out = []
    for item in value.split(","):
        item = item.strip().rstrip("/")
        if not item:
            continue
        if item != "*" and not item.startswith(("http://", "https://")):
            raise ValueError("%r is not an origin (scheme://host[:port]) or *" % item)
        out.append(item)
    return tuple(out)


def _name(value: str) -> str | None:
    if not value:
        return None
    if not is_valid_name(value):
        raise ValueError("not a valid name (A-Z a-z 0-9 _ - .)")
    return value


def _bool(value: str) -> bool:
    text = value.lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("not true or false")


def _webhook_targets(value: str) -> str:
    if value not in POLICIES:
        raise ValueError("not one of %s" % ", ".join(POLICIES))
    return value


def _log_level(value: str) -> str:
    level = value.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("not one of DEBUG, INFO, WARNING, ERROR")
    return level


#: Every setting: attribute, environment variable, parser, default (as text), help.
SETTINGS: tuple[Setting, ...] = (
    Setting("data_dir", _str, "./var/central", "directory for local state (the embedded ClickHouse lives in <data-dir>/chdb)"),
    Setting("clickhouse_url", _str, "", "chdb:///path (embedded engine) or http(s)://user:pass@host:8123/db; default chdb:///<data-dir>/chdb"),
    Setting("clickhouse_cluster", _name, "", "cluster name: migrations create ON CLUSTER Replicated tables behind Distributed ones"),
    Setting("event_timestamp_expr", _opt_str, "", "SQL expression giving camera_events' event time as DateTime, for a UInt16 event_timestamp (operator-written SQL)"),
    Setting("http_addr", _http_addr, "127.0.0.1:8080", "host:port the HTTP API listens on"),
    Setting("sites_file", _opt_str, "", "TOML file with site time zones, zone names and thresholds"),
    Setting("read_token", _opt_str, "", "bearer token required by the read API (dashboard, sites); unset = open", secret=True),
    Setting("ingest_token", _opt_str, "", "bearer token required by POST /api/v1/events; unset = open", secret=True),
    Setting("cors_origins", _origins, "", "comma-separated origins allowed by CORS (or *); unset = same origin only"),
    Setting("mqtt_url", _mqtt_url, "", "mqtt://user:pass@host:1883 or mqtts://...; unset = no MQTT consumer", secret=True),
    Setting("mqtt_share_group", _name, "", "shared-subscription group so several replicas split the stream"),
    Setting("mqtt_client_id", _str, "", "MQTT client id of the persistent session; default heatmap-central-<hostname>"),
    Setting("mqtt_ca_file", _opt_str, "", "CA bundle for mqtts:// (default: system trust store)"),
    Setting("mqtt_protocol", _mqtt_protocol, "5", "MQTT version: 5, or 3.1.1 for a broker without MQTT 5 (the demo's amqtt; no session expiry or Receive Maximum then)"),
    Setting("mqtt_inflight", _int(1, 65535), "200", "unacknowledged messages the broker may have out to central (bounds memory)"),
    Setting("batch_states", _int(1, 1_000_000), "20000", "flush a write batch at this many slot states"),
    Setting("batch_seconds", _float(0.001, 60), "0.2", "flush a write batch after this many seconds"),
    Setting("cache_ttl", _float(0, 86400), "5", "seconds a dashboard answer for a recent day is reused (raw rows may land without us)"),
    Setting("cache_ttl_past", _float(0, 86400), "300", "seconds a dashboard answer for a day over 2 days old is reused"),
    Setting("max_body_bytes", _int(1024, 1 << 30), "8388608", "largest POST /api/v1/events body (413 above)"),
    Setting("max_batch_events", _int(1, 1_000_000), "50000", "most events in one POST /api/v1/events"),
    Setting("max_event_age_days", _int(0, 36500), "400", "days before this clock an event of POST /api/v1/events may be stamped (older ones refused per item, code too_old); 0 = back to 2000-01-01"),
    Setting("max_sites", _int(0, 1_000_000), "1000", "most sites (configured or with data) POST /api/v1/events and the MQTT consumer write: an event or state for a new site past it is refused (too_many_sites); configured sites always; 0 = no bound"),
    Setting("accept_unknown_sites", _bool, "true", "false: POST /api/v1/events and the MQTT consumer refuse events and states for sites not in HEATMAP_SITES_FILE (unknown_site)"),
    Setting("ingest_inflight_bytes", _int(1024, 1 << 40), "67108864", "bytes of POST /api/v1/events bodies held at once, being received or decoded (503 with Retry-After past it; at least HEATMAP_MAX_BODY_BYTES)"),
    Setting("http_header_timeout", _float(0.1, 3600), "10", "seconds a new connection may take to send its complete request head (slow or silent clients are closed)"),
    Setting("http_keepalive_timeout", _float(0.1, 3600), "15", "seconds after a response within which a kept-alive connection must complete its next request head"),
    Setting("http_body_timeout", _float(0.1, 3600), "60", "seconds a POST /api/v1/events body may take to arrive in full (408 and the connection closed past it)"),
    Setting("max_exports", _int(1, 10000), "8", "exports (GET /api/v1/export) running at once; past it 503 busy with Retry-After"),
    Setting("export_write_timeout", _float(0.1, 3600), "30", "seconds an export waits for its client to take the next 256 KiB before it cuts the connection"),
    Setting("ingest_processes", _int(0, 64), "1", "processes (spawned) that decode and validate POST /api/v1/events bodies over 64 KiB, off the event loop's GIL; 0 = a thread of central"),
    Setting("query_workers", _int(1, 64), "4", "threads running ClickHouse statements"),
    Setting("webhook_secret", _opt_str, "", "key of the X-Heatmap-Signature HMAC-SHA256 on alert webhooks; unset = unsigned", secret=True),
    Setting("webhook_timeout", _float(0.1, 120), "10", "seconds one webhook attempt may take before it counts as failed"),
    Setting("webhook_targets", _webhook_targets, "private", "addresses alert webhooks may reach: public, private (also loopback and LAN; the default) or any (also link-local and cloud metadata)"),
    Setting("alert_time_scale", _float(0.0001, 1), "1", "multiplies the alert retry backoff, the 24 h retry window, the claim lease and the check interval (tests run the real schedule faster)"),
    Setting("log_level", _log_level, "INFO", "DEBUG, INFO, WARNING or ERROR"),
)


@dataclass(frozen=True)
class Config:
    """Settings of one central process; build it with :meth:`load`."""

    data_dir: str = "./var/central"
    clickhouse_url: str = ""
    clickhouse_cluster: str | None = None
    event_timestamp_expr: str | None = None
    http_addr: tuple[str, int] = ("127.0.0.1", 8080)
    sites_file: str | None = None
    read_token: str | None = field(default=None, repr=False)
    ingest_token: str | None = field(default=None, repr=False)
    cors_origins: tuple[str, ...] = ()
    mqtt_url: MqttTarget | None = None
    mqtt_share_group: str | None = None
    mqtt_client_id: str = ""
    mqtt_ca_file: str | None = None
    mqtt_protocol: str = "5"
    mqtt_inflight: int = 200
    batch_states: int = 20000
    batch_seconds: float = 0.2
    cache_ttl: float = 5.0
    cache_ttl_past: float = 300.0
    max_body_bytes: int = 8 * 1024 * 1024
    max_batch_events: int = 50000
    max_event_age_days: int = 400
    max_sites: int = 1000
    accept_unknown_sites: bool = True
    ingest_inflight_bytes: int = 64 * 1024 * 1024
    http_header_timeout: float = 10.0
    http_keepalive_timeout: float = 15.0
    http_body_timeout: float = 60.0
    max_exports: int = 8
    export_write_timeout: float = 30.0
    ingest_processes: int = 1
    query_workers: int = 4
    webhook_secret: str | None = field(default=None, repr=False)
    webhook_timeout: float = 10.0
    webhook_targets: str = "private"
    alert_time_scale: float = 1.0
    log_level: str = "INFO"

    def __post_init__(self) -> None:
        # Derived defaults, so that Config(data_dir=...) alone is complete.
        if not self.clickhouse_url:
            path = Path(self.data_dir).absolute() / "chdb"
            object.__setattr__(self, "clickhouse_url", "chdb://%s" % path)
        if not self.mqtt_client_id:
            object.__setattr__(self, "mqtt_client_id", "heatmap-central-%s" % socket.gethostname())

    @property
    def engine(self) -> str:
        """``chdb`` (embedded, one process per directory) or ``server``."""
        return "chdb" if self.clickhouse_url.startswith("chdb:") else "server"

    @classmethod
    def load(
        cls, args: argparse.Namespace | None = None, environ: Mapping[str, str] | None = None
    ) -> Config:
        """Build the config from ``environ`` (default os.environ) and parsed flags."""
        env = os.environ if environ is None else environ
        settings.foreign_names(SETTINGS, env, ConfigError, "known: see python -m central serve --help")
        values = settings.read(SETTINGS, args, env, ConfigError)
        if values["clickhouse_url"]:
            try:
                _clickhouse_url(values["clickhouse_url"])
            except ValueError as exc:
                raise ConfigError("invalid HEATMAP_CLICKHOUSE_URL: %s" % exc) from None
        if values["sites_file"] and not Path(values["sites_file"]).is_file():
            raise ConfigError("HEATMAP_SITES_FILE %s does not exist" % values["sites_file"])
        if not values["accept_unknown_sites"] and not values["sites_file"]:
            raise ConfigError("HEATMAP_ACCEPT_UNKNOWN_SITES=false needs HEATMAP_SITES_FILE: without it every "
                              "site is unknown")
        if values["mqtt_ca_file"] and not Path(values["mqtt_ca_file"]).is_file():
            raise ConfigError("HEATMAP_MQTT_CA_FILE %s does not exist" % values["mqtt_ca_file"])
        if values["ingest_inflight_bytes"] < values["max_body_bytes"]:
            raise ConfigError("HEATMAP_INGEST_INFLIGHT_BYTES (%d) is below HEATMAP_MAX_BODY_BYTES (%d): "
                              "the largest body could never be taken" % (
                                  values["ingest_inflight_bytes"], values["max_body_bytes"]))
        names = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in names})


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Add one flag per setting; unset flags leave the environment (or default) in force."""
    settings.add_arguments(parser, SETTINGS)
