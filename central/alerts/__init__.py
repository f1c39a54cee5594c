"""Alerting: rules from the sites TOML, evaluation of written data and device contact,
persistence in ClickHouse, delivery by signed webhook and MQTT, and the alerts endpoint.
``docs/alerts.md`` describes the behaviour, including how replicas share the work."""

from .rules import Rule, parse_rules
from .service import Alerts

__all__ = ["Alerts", "Rule", "parse_rules"]
