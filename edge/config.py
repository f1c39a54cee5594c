"""The agent's one frozen configuration, and the only reader of ``os.environ``.

Every setting has a ``HEATMAP_*`` environment variable and a ``--flag``; the flag wins.
Secrets (the MQTT password, client key) may also come from files in systemd's
``$CREDENTIALS_DIRECTORY`` (``LoadCredential=``). :meth:`Config.load` turns anything wrong
into one :class:`ConfigError` line; nothing here opens files beyond reading those secrets.
The mechanism (flags over variables, the list of every ``HEATMAP_*`` name, the broker URL
parser) is ``shared/settings.py``; this module declares the agent's own settings.
"""

from __future__ import annotations

import argparse
import ipaddress
import math
import os
import re
from dataclasses import dataclass, replace
from typing import Callable, Dict, Mapping, Optional, Tuple

from shared import settings
from shared.events import MAX_PEOPLE
from shared.names import check_name
from shared.protocol import (
    MAX_PAYLOAD_BYTES,
    MAX_STATES,
    MAX_TRIGGERS,
    PROTOCOL_VERSION,
    SUPPORTED_VERSIONS,
)
from shared.settings import MqttTarget, Setting, credential, parse_mqtt_url, read_secret

from .exceptions import ConfigError

__all__ = ["Config", "SETTINGS", "add_arguments", "parse_mapping"]

#: HEATMAP_PRIORITY: which triggers are published at once (docs/edge.md, "Priority").
PRIORITY_MODES = ("new", "all", "off")

#: Fields of an event a local-MQTT field mapping may fill.
MAPPABLE = ("camera", "people_count", "timestamp", "triggers")


#: One or more ASCII digits: int() and float() also take Arabic-Indic, fullwidth and other
#: scripts' digits (U+0663, U+FF18), which a setting must not silently read as a number.
_DIGITS = re.compile(r"[0-9]+\Z")


def _whole(text: str) -> int:
    if not _DIGITS.match(text):
        raise ValueError("not a whole number (ASCII digits)")
    return int(text)


def _positive(text: str) -> float:
    if not text.isascii():
        raise ValueError("not a number (ASCII digits)")
    value = float(text)
    if not math.isfinite(value) or value <= 0:
        raise ValueError("must be a positive number")
    return value


def _count(low: int, high: int) -> Callable[[str], int]:
    def parse(text: str) -> int:
        value = _whole(text)
        if not low <= value <= high:
            raise ValueError("must be in %d..%d" % (low, high))
        return value

    return parse


def _name(text: str) -> str:
    return check_name(text, "name")


def _text(text: str) -> str:
    return text


def _priority(text: str) -> str:
    mode = text.lower()
    if mode not in PRIORITY_MODES:
        raise ValueError("must be one of %s" % ", ".join(PRIORITY_MODES))
    return mode


def _protocol(text: str) -> int:
    value = _whole(text)
    if value not in SUPPORTED_VERSIONS:
        raise ValueError("must be one of %s" % ", ".join(map(str, SUPPORTED_VERSIONS)))
    return value


def _level(text: str) -> str:
    level = text.upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR"):
        raise ValueError("must be DEBUG, INFO, WARNING or ERROR")
    return level


SETTINGS: Tuple[Setting, ...] = (
    Setting("site", _name, None, "site name (required)"),
    Setting("device_id", _name, None, "this device's name (required)"),
    Setting("mqtt_url", _text, None, "central broker, mqtt://host[:port] or mqtts://host[:port]"),
    Setting("mqtt_username", _text, None, "broker user name (or in the URL)"),
    Setting("mqtt_password_file", _text, None, "file holding the broker password"),
    Setting("mqtt_ca_file", _text, None, "CA bundle for mqtts:// (default: system CAs)"),
    Setting("mqtt_cert_file", _text, None, "client certificate for mqtts://"),
    Setting("mqtt_key_file", _text, None, "client key for mqtts://"),
    Setting("state_dir", _text, None, "outbox directory (default $STATE_DIRECTORY or ./var/edge)"),
    Setting("udp_addr", _text, None, "UDP datagram input, host:port (loopback)"),
    Setting("unix_socket", _text, None, "Unix datagram input socket path"),
    Setting("local_mqtt_url", _text, None, "local broker with the pipeline's detections"),
    Setting("local_mqtt_topic", _text, "deepstream/detections", "topic filter on the local broker"),
    Setting("local_mqtt_mapping", _text, None, "field mapping, e.g. camera=sensorId,people_count=objects#"),
    Setting("commit_interval", _positive, "1", "seconds between outbox commits (the crash loss window)"),
    Setting("publish_interval", _positive, "60", "seconds between publishes of changed states"),
    Setting("ack_timeout", _positive, "30", "seconds before an unacked state is resent (doubles per try)"),
    Setting("max_backoff", _positive, "600", "longest wait between resends of one state"),
    Setting("stats_interval", _positive, "300", "seconds between statistics messages"),
    Setting("priority", _priority, "new", "publish at once: a trigger new in its slot (new), every trigger (all), nothing (off)"),
    Setting("intensity_medium", _count(1, MAX_PEOPLE), "4", "peak from which a zone is medium (priority publishing)"),
    Setting("intensity_high", _count(1, MAX_PEOPLE), "7", "peak from which a zone is high (priority publishing)"),
    Setting("protocol_version", _protocol, str(PROTOCOL_VERSION), "protocol version sent (1 while central is older)"),
    Setting("retention_days", _positive, "7", "days of slots kept in memory and the outbox"),
    Setting("max_future", _positive, "300", "seconds an event may be ahead of this clock"),
    Setting("max_message_bytes", _count(4096, MAX_PAYLOAD_BYTES), str(64 * 1024), "cap of one state message"),
    Setting("max_states_per_message", _count(1, MAX_STATES), "250", "states per message (small keeps memory low)"),
    Setting("max_inflight_states", _count(1, 10**7), "2000", "sent and not yet acked states"),
    Setting("max_cameras", _count(1, 4096), "256", "distinct cameras before new ones are refused"),
    Setting("max_triggers", _count(1, MAX_TRIGGERS), str(MAX_TRIGGERS), "distinct trigger names before new ones are refused"),
    Setting("log_level", _level, "INFO", "DEBUG, INFO, WARNING or ERROR"),
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per setting; defaults stay None so the environment can fill them."""
    settings.add_arguments(parser, SETTINGS)


@dataclass(frozen=True)
class Config:
    site: str
    device_id: str
    mqtt: Optional[MqttTarget] = None
    state_dir: str = "./var/edge"
    udp_addr: Optional[Tuple[str, int]] = None
    unix_socket: Optional[str] = None
    local_mqtt: Optional[MqttTarget] = None
    local_mqtt_topic: str = "deepstream/detections"
    local_mqtt_mapping: Optional[Mapping[str, str]] = None
    commit_interval: float = 1.0
    publish_interval: float = 60.0
    ack_timeout: float = 30.0
    max_backoff: float = 600.0
    stats_interval: float = 300.0
    priority: str = "new"
    intensity_medium: int = 4
    intensity_high: int = 7
    protocol_version: int = PROTOCOL_VERSION
    retention_days: float = 7.0
    max_future: float = 300.0
    max_message_bytes: int = 64 * 1024
    max_states_per_message: int = 250
    max_inflight_states: int = 2000
    max_cameras: int = 256
    max_triggers: int = 64
    log_level: str = "INFO"
    notify_socket: Optional[str] = None
    watchdog_interval: Optional[float] = None  # seconds between WATCHDOG=1 pings
    ignored_env: Tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # Also guards Config(...) built directly by tests and the simulator.
        check_name(self.site, "site")
        check_name(self.device_id, "device_id")

    @property
    def retention_seconds(self) -> float:
        return self.retention_days * 86400.0

    @classmethod
    def load(cls, args: Optional[argparse.Namespace] = None,
             environ: Optional[Mapping[str, str]] = None) -> Config:
        """Build the config from flags over ``HEATMAP_*`` variables; one ConfigError line if wrong."""
        env = os.environ if environ is None else environ
        ignored = settings.foreign_names(SETTINGS, env, ConfigError, "see python -m edge run --help",
                                         also=("HEATMAP_MQTT_PASSWORD",))
        values = settings.read(SETTINGS, args, env, ConfigError, blank_is_unset=True)
        for required in ("site", "device_id"):
            if values[required] is None:
                raise ConfigError("HEATMAP_%s (or --%s) is required"
                                  % (required.upper(), required.replace("_", "-")))
        creds = env.get("CREDENTIALS_DIRECTORY")
        mqtt = None
        if values["mqtt_url"]:
            mqtt = _target(str(values["mqtt_url"]), "HEATMAP_MQTT_URL", values, env, creds)
        local = None
        if values["local_mqtt_url"]:
            local = _target(str(values["local_mqtt_url"]), "HEATMAP_LOCAL_MQTT_URL", {}, {}, None)
        mapping = None
        if values["local_mqtt_mapping"]:
            mapping = parse_mapping(str(values["local_mqtt_mapping"]))
        udp = _udp(str(values["udp_addr"])) if values["udp_addr"] else None
        state_dir = values["state_dir"] or env.get("STATE_DIRECTORY", "").split(":")[0] or "./var/edge"
        if float(values["publish_interval"]) < float(values["commit_interval"]):  # type: ignore[arg-type]
            raise ConfigError("HEATMAP_PUBLISH_INTERVAL must not be below HEATMAP_COMMIT_INTERVAL")
        if int(values["intensity_high"]) <= int(values["intensity_medium"]):  # type: ignore[call-overload]
            raise ConfigError("HEATMAP_INTENSITY_HIGH must be above HEATMAP_INTENSITY_MEDIUM")
        plain = {k: values[k] for k in (
            "commit_interval", "publish_interval", "ack_timeout", "max_backoff", "stats_interval",
            "retention_days", "max_future", "max_message_bytes", "max_states_per_message",
            "max_inflight_states", "max_cameras", "max_triggers", "log_level", "priority",
            "intensity_medium", "intensity_high", "protocol_version")}
        return cls(
            site=str(values["site"]),
            device_id=str(values["device_id"]),
            mqtt=mqtt,
            state_dir=str(state_dir),
            udp_addr=udp,
            unix_socket=values["unix_socket"] or None,  # type: ignore[arg-type]
            local_mqtt=local,
            local_mqtt_topic=str(values["local_mqtt_topic"]),
            local_mqtt_mapping=mapping,
            notify_socket=env.get("NOTIFY_SOCKET") or None,
            watchdog_interval=_watchdog(env),
            ignored_env=ignored,
            **plain,  # type: ignore[arg-type]
        )


def parse_mapping(text: str) -> Dict[str, str]:
    """``camera=sensorId,people_count=objects#`` -> {field: dotted path}; ``#`` = list length."""
    mapping: Dict[str, str] = {}
    for part in text.split(","):
        key, sep, path = part.strip().partition("=")
        key, path = key.strip(), path.strip()
        if not sep or key not in MAPPABLE or not path:
            raise ConfigError("HEATMAP_LOCAL_MQTT_MAPPING: %r is not field=path with field one of %s"
                              % (part.strip(), ", ".join(MAPPABLE)))
        if key in mapping:
            raise ConfigError("HEATMAP_LOCAL_MQTT_MAPPING: %s mapped twice" % key)
        mapping[key] = path
    for required in ("camera", "people_count"):
        if required not in mapping:
            raise ConfigError("HEATMAP_LOCAL_MQTT_MAPPING must map %s" % required)
    return mapping


def _target(url: str, var: str, values: Mapping[str, object], env: Mapping[str, str],
            creds: Optional[str]) -> MqttTarget:
    try:
        target = parse_mqtt_url(url)
    except ValueError as exc:
        raise ConfigError("%s=%r: %s" % (var, url, exc)) from None
    username = target.username or values.get("mqtt_username")
    password = target.password or env.get("HEATMAP_MQTT_PASSWORD")
    pw_file = values.get("mqtt_password_file") or credential(creds, "mqtt_password")
    if password is None and pw_file:
        password = read_secret(str(pw_file), ConfigError)
    files = {}
    for key, cred in (("ca_file", "mqtt_ca.pem"), ("cert_file", "mqtt_cert.pem"), ("key_file", "mqtt_key.pem")):
        path = values.get("mqtt_" + key) or credential(creds, cred)
        if path and not os.access(str(path), os.R_OK):
            raise ConfigError("HEATMAP_MQTT_%s=%s: not a readable file" % (key.upper(), path))
        files[key] = str(path) if path else None
    if not target.tls and any(files.values()):
        raise ConfigError("%s: certificate files need an mqtts:// URL" % var)
    if bool(files["cert_file"]) != bool(files["key_file"]):
        raise ConfigError("HEATMAP_MQTT_CERT_FILE and HEATMAP_MQTT_KEY_FILE go together")
    if password is not None and username is None:
        raise ConfigError("a broker password needs a user name (HEATMAP_MQTT_USERNAME)")
    return replace(target, username=username and str(username), password=password, **files)


def _udp(text: str) -> Tuple[str, int]:
    host, sep, port = text.rpartition(":")
    host = host.strip("[]")
    try:
        address = ipaddress.ip_address(host)
        number = _whole(port)
        if not sep or not 0 <= number <= 65535:
            raise ValueError
    except ValueError:
        raise ConfigError("HEATMAP_UDP_ADDR=%r: expected ip:port, e.g. 127.0.0.1:7777" % text) from None
    if not address.is_loopback:
        # The input has no authentication: anyone who can reach it can add counts.
        raise ConfigError("HEATMAP_UDP_ADDR=%r: must be a loopback address (127.0.0.1 or ::1)" % text)
    return host, number


def _watchdog(env: Mapping[str, str]) -> Optional[float]:
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        return max(int(usec) / 1e6 / 2.0, 0.05)
    except ValueError:
        return None

