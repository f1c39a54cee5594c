"""The demo's one frozen configuration; the only reader of ``os.environ`` in the demo.

``HEATMAP_MQTT_URL`` set means "use this broker" instead of the embedded one;
``HEATMAP_HTTP_ADDR`` sets where central listens. Flags override both.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from shared.settings import parse_mqtt_url

__all__ = ["DemoConfig", "ConfigError", "build_parser"]

BROKERS = ("amqtt", "mosquitto")


class ConfigError(Exception):
    """An invalid demo setting; the message is one line."""


@dataclass(frozen=True)
class DemoConfig:
    dir: Path
    http_host: str
    http_port: int
    mqtt_url: str | None  # an external broker; None = start the embedded one
    broker: str
    days: float
    seed: int
    live: bool
    keep: bool
    publish_interval: float
    stop_timeout: float
    ready_timeout: float
    #: Live mode: one agent is stopped this many minutes every hour (0 = never).
    outage_minutes: float = 5.0

    @property
    def page_url(self) -> str:
        # A wildcard listen address is reached on loopback from this box.
        host = "127.0.0.1" if self.http_host in ("0.0.0.0", "") else self.http_host  # noqa: S104
        return "http://%s:%d/" % (host, self.http_port)

    @classmethod
    def load(cls, argv: list[str] | None, environ: Mapping[str, str]) -> DemoConfig:
        args = build_parser().parse_args(argv)
        http = args.http_addr or environ.get("HEATMAP_HTTP_ADDR") or "127.0.0.1:8080"
        host, sep, port = http.rpartition(":")
        if not sep or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigError("--http-addr %r is not host:port" % http)
        mqtt_url = args.mqtt_url or environ.get("HEATMAP_MQTT_URL") or None
        if mqtt_url:
            try:
                parse_mqtt_url(mqtt_url)
            except ValueError as exc:
                raise ConfigError("HEATMAP_MQTT_URL: %s" % exc) from None
        if not 0 < args.days <= 30:
            raise ConfigError("--days must be in (0, 30]")
        if args.publish_interval <= 0 or args.stop_timeout <= 0:
            raise ConfigError("--publish-interval and --stop-timeout must be positive")
        if not 0 <= args.outage_minutes <= 50:
            raise ConfigError("--outage-minutes must be in [0, 50]")
        return cls(
            dir=Path(args.dir).resolve(), http_host=host or "127.0.0.1", http_port=int(port),
            mqtt_url=mqtt_url, broker=args.broker, days=args.days, seed=args.seed,
            live=not args.no_live, keep=args.keep, publish_interval=args.publish_interval,
            stop_timeout=args.stop_timeout, ready_timeout=args.ready_timeout, outage_minutes=args.outage_minutes,
        )


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m demo",
        description="One-box demo: an embedded MQTT broker, central on embedded ClickHouse, one "
        "edge agent per simulated site (Kolkata, London, New York), history backfilled, live "
        "traffic. Ctrl-C stops everything.",
    )
    p.add_argument("--dir", default="var/demo", help="state directory, wiped at start (default var/demo)")
    p.add_argument("--keep", action="store_true", help="do not wipe --dir (the backfill is then skipped)")
    p.add_argument("--http-addr", help="where central listens (default HEATMAP_HTTP_ADDR or 127.0.0.1:8080)")
    p.add_argument("--mqtt-url", help="use this broker instead of the embedded one (default HEATMAP_MQTT_URL)")
    p.add_argument("--broker", choices=BROKERS, default="amqtt",
                   help="embedded broker: amqtt (pure Python, default) or the mosquitto binary")
    p.add_argument("--days", type=float, default=14.0, help="days of history to backfill (default 14)")
    p.add_argument("--seed", type=int, default=2026, help="simulator seed (default 2026)")
    p.add_argument("--no-live", action="store_true", help="backfill only, no live traffic")
    p.add_argument("--publish-interval", type=float, default=2.0, help="agents' publish interval (s)")
    p.add_argument("--stop-timeout", type=float, default=10.0, help="seconds a child gets after SIGTERM")
    p.add_argument("--ready-timeout", type=float, default=180.0, help="seconds to wait for start-up")
    p.add_argument("--outage-minutes", type=float, default=5.0,
                   help="live mode: stop one agent this long a minute after start-up and then every hour, "
                   "so that the device-offline alert fires (default 5; 0 = never)")
    return p
