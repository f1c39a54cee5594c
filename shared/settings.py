"""The settings mechanism of every program: the one list of ``HEATMAP_*`` names, one loader
of flags over variables over defaults, and the one broker URL parser.

Each program declares only its own :class:`Setting` tuple (``edge/config.py``,
``central/config.py``) and builds its frozen config from :func:`read`. A ``HEATMAP_*``
variable in :data:`NAMES` that the program does not read belongs to another program (a
one-box install shares one environment) and is ignored; any other one stops start-up.
Errors are raised as the calling program's own config error, one line each.
"""

from __future__ import annotations

import argparse
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, Iterable, Mapping, Optional, Tuple, Type
from urllib.parse import unquote, urlsplit

__all__ = [
    "NAMES",
    "OTHER_PREFIXES",
    "MqttTarget",
    "Setting",
    "add_arguments",
    "credential",
    "foreign_names",
    "parse_mqtt_url",
    "read",
    "read_secret",
]

PREFIX = "HEATMAP_"
_DIGITS = re.compile(r"[0-9]+\Z")  # ASCII only: \d and int() take every script's digits

_EDGE = (
    "site", "device_id", "mqtt_username", "mqtt_password", "mqtt_password_file", "mqtt_cert_file",
    "mqtt_key_file", "state_dir", "udp_addr", "unix_socket", "local_mqtt_url", "local_mqtt_topic",
    "local_mqtt_mapping", "commit_interval", "publish_interval", "ack_timeout", "max_backoff",
    "stats_interval", "priority", "intensity_medium", "intensity_high", "protocol_version",
    "retention_days", "max_future", "max_message_bytes", "max_states_per_message",
    "max_inflight_states", "max_cameras", "max_triggers",
)
_CENTRAL = (
    "data_dir", "clickhouse_url", "clickhouse_cluster", "event_timestamp_expr", "http_addr",
    "sites_file", "read_token", "ingest_token", "cors_origins", "mqtt_share_group",
    "mqtt_client_id", "mqtt_protocol", "mqtt_inflight", "batch_states", "batch_seconds",
    "cache_ttl", "cache_ttl_past", "max_body_bytes", "max_batch_events", "max_event_age_days",
    "max_sites", "accept_unknown_sites", "ingest_inflight_bytes", "ingest_processes",
    "http_header_timeout", "http_keepalive_timeout", "http_body_timeout", "max_exports",
    "export_write_timeout", "query_workers",
    "webhook_secret", "webhook_timeout", "webhook_targets", "alert_time_scale",
)
_BOTH = ("mqtt_url", "mqtt_ca_file", "log_level")

#: Every ``HEATMAP_*`` variable the edge agent or central reads (tests/shared/test_settings.py
#: holds it equal to what the two programs declare).
NAMES = frozenset(PREFIX + name.upper() for name in _EDGE + _CENTRAL + _BOTH)
#: Prefixes of variables read by other tools (reconcile, the demo, the tests): never refused.
OTHER_PREFIXES = ("HEATMAP_CENTRAL_", "HEATMAP_EDGE_", "HEATMAP_DEMO_", "HEATMAP_RECONCILE_", "HEATMAP_TEST_")


@dataclass(frozen=True)
class Setting:
    """One setting: variable ``HEATMAP_<NAME>``, flag ``--<name>``, parser, default as text."""

    name: str
    parse: Callable[[str], Any]
    default: Optional[str]  # None: the value is None when nothing sets it
    help: str
    secret: bool = False  # may come from $CREDENTIALS_DIRECTORY/heatmap_<name>; never echoed

    @property
    def env(self) -> str:
        return PREFIX + self.name.upper()

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class MqttTarget:
    """Where and how to connect to a broker: parsed from an ``mqtt://`` / ``mqtts://`` URL."""

    host: str
    port: int
    tls: bool
    username: Optional[str] = None
    password: Optional[str] = field(default=None, repr=False)
    ca_file: Optional[str] = None
    cert_file: Optional[str] = None
    key_file: Optional[str] = None

    def describe(self) -> str:
        return "%s://%s:%d" % ("mqtts" if self.tls else "mqtt", self.host, self.port)


def parse_mqtt_url(url: str) -> MqttTarget:
    """``mqtt[s]://[user[:password]@]host[:port]`` -> :class:`MqttTarget`; ValueError if not.

    The message never repeats the URL (it may hold a password): the caller names the source.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts") or not parts.hostname:
        raise ValueError("expected mqtt://host[:port] or mqtts://host[:port]")
    if parts.path not in ("", "/") or parts.query or parts.fragment:
        raise ValueError("no path or query expected")
    try:
        port = parts.port
    except ValueError:
        raise ValueError("bad port") from None
    # Python 3.8's urllib reads the port with int(), which takes other scripts' digits.
    digits = parts.netloc.rpartition("@")[2].rpartition("]")[2].partition(":")[2]
    if digits and not _DIGITS.match(digits):
        raise ValueError("bad port")
    tls = parts.scheme == "mqtts"
    return MqttTarget(
        host=parts.hostname,
        port=port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def foreign_names(settings: Iterable[Setting], environ: Mapping[str, str], error: Type[Exception],
                  hint: str, also: Iterable[str] = ()) -> Tuple[str, ...]:
    """The ``HEATMAP_*`` variables of other programs in ``environ`` (sorted); ``error`` for
    one that no program reads. ``also``: variables the program reads beyond ``settings``."""
    own = {s.env for s in settings} | set(also)
    unknown = sorted(k for k in environ if k.startswith(PREFIX) and k not in own)
    for name in unknown:
        if name not in NAMES and not name.startswith(OTHER_PREFIXES):
            raise error("unknown setting %s (%s)" % (name, hint))
    return tuple(unknown)


def read(settings: Iterable[Setting], args: Optional[argparse.Namespace], environ: Mapping[str, str],
         error: Type[Exception], blank_is_unset: bool = False) -> Dict[str, Any]:
    """Each setting's value: its flag, else its variable, else (if secret) its systemd
    credential file, else its default; parsed, or one ``error`` line naming the source.

    ``blank_is_unset``: an empty flag or variable means the default (else it is parsed).
    """
    creds = environ.get("CREDENTIALS_DIRECTORY")
    values: Dict[str, Any] = {}
    for s in settings:
        raw = getattr(args, s.name, None) if args is not None else None
        source = s.flag
        if raw is None:
            raw, source = environ.get(s.env), s.env
        if raw is None and s.secret:
            path = credential(creds, s.env.lower())
            if path is not None:
                raw, source = read_secret(path, error), path
        if raw is None or (blank_is_unset and not raw.strip()):
            raw, source = s.default, s.env + " default"
        if raw is None:
            values[s.name] = None
            continue
        try:
            values[s.name] = s.parse(raw.strip())
        except Exception as exc:  # noqa: BLE001 - any parse failure is one config line
            shown = source if s.secret else "%s=%r" % (source, raw)
            raise error("invalid %s: %s" % (shown, exc)) from None
    return values


def add_arguments(parser: argparse.ArgumentParser, settings: Iterable[Setting]) -> None:
    """One flag per setting; flags default to None so the environment can fill them."""
    group = parser.add_argument_group("settings (a flag overrides its environment variable)")
    for s in settings:
        shown = "" if s.default is None or s.secret else ", default %s" % (s.default,)
        group.add_argument(s.flag, dest=s.name, default=None, metavar=s.name.split("_")[-1].upper(),
                           help="%s [%s%s]" % (s.help, s.env, shown))


def credential(creds: Optional[str], name: str) -> Optional[str]:
    """The path of systemd credential ``name`` if ``$CREDENTIALS_DIRECTORY`` holds it."""
    if not creds:
        return None
    path = os.path.join(creds, name)
    return path if os.path.isfile(path) else None


def read_secret(path: str, error: Type[Exception]) -> str:
    """A secret file's text without its line ending; ``error`` if it cannot be read."""
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().strip("\r\n")
    except OSError as exc:
        raise error("cannot read %s: %s" % (path, exc.strerror)) from None
