"""Prometheus metrics of alerting, registered in the app's own registry.

Counters count this replica's work (sum them over replicas); ``heatmap_alerts_pending`` is
read from ClickHouse and so is the same on every replica.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge

__all__ = ["AlertMetrics"]


class AlertMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        r = registry
        self.fired = Counter(
            "heatmap_alerts_fired_total", "alerts fired (persisted for delivery) by kind", ["kind"], registry=r)
        self.suppressed = Counter(
            "heatmap_alerts_suppressed_total", "alerts held back by their rule's cooldown, by kind", ["kind"],
            registry=r)
        self.delivered = Counter(
            "heatmap_alerts_delivered_total", "alerts whose webhook answered 2xx", registry=r)
        self.attempt_failures = Counter(
            "heatmap_alert_attempts_failed_total", "webhook attempts without a 2xx (retried)", registry=r)
        self.failed = Counter(
            "heatmap_alerts_failed_total", "alerts given up after the 24 h retry window", registry=r)
        self.not_stored = Counter(
            "heatmap_alerts_not_stored_total", "alerts lost because ClickHouse refused them for a minute",
            registry=r)
        self.pending = Gauge(
            "heatmap_alerts_pending", "alerts waiting for delivery, over all replicas", registry=r)
