"""Prometheus metrics of one central app, in a registry of its own.

Each app gets a fresh :class:`CollectorRegistry`, so several apps in one test process do not
collide; ``/metrics`` renders it in the text format.
"""

from __future__ import annotations

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)

__all__ = ["Metrics", "CONTENT_TYPE_LATEST"]


class Metrics:
    def __init__(self) -> None:
        r = self.registry = CollectorRegistry()
        self.http_requests = Counter(
            "heatmap_http_requests_total", "HTTP requests by route and status", ["route", "status"], registry=r)
        self.http_seconds = Histogram(
            "heatmap_http_request_seconds", "HTTP request latency by route", ["route"], registry=r,
            buckets=(0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1, 5))
        self.dashboard_cache = Counter(
            "heatmap_dashboard_cache_total", "dashboard answers by cache result", ["result"], registry=r)
        self.mqtt_messages = Counter(
            "heatmap_mqtt_messages_total", "MQTT messages received by kind and result", ["kind", "result"], registry=r)
        self.dead_letters = Counter(
            "heatmap_dead_letters_total", "refused MQTT messages by reason", ["reason"], registry=r)
        self.states_written = Counter(
            "heatmap_slot_states_written_total", "slot states inserted into slot_states", registry=r)
        self.insert_seconds = Histogram(
            "heatmap_insert_seconds", "duration of one consumer batch insert", registry=r,
            buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 10))
        self.insert_failures = Counter(
            "heatmap_insert_failures_total", "failed batch inserts (retried)", ["reason"], registry=r)
        self.device_acks = Counter(
            "heatmap_device_acks_total", "ack messages published to devices", registry=r)
        self.ingest_events = Counter(
            "heatmap_ingest_events_total", "raw events accepted by POST /api/v1/events", registry=r)
        self.ingest_rejected = Counter(
            "heatmap_ingest_rejected_total", "raw ingest requests refused, by reason", ["reason"], registry=r)
        self.ingest_items_refused = Counter(
            "heatmap_ingest_items_refused_total",
            "events refused inside POST /api/v1/events batches, by code (too_old, ...; at most the 100 listed "
            "per request)", ["code"], registry=r)
        self.http_timeouts = Counter(
            "heatmap_http_timeouts_total", "connections closed for a slow client, by what was late (header, body, export)",
            ["kind"], registry=r)
        self.ingest_inflight_bytes = Gauge(
            "heatmap_ingest_inflight_bytes", "bytes of POST /api/v1/events bodies held now", registry=r)
        self.storage_up = Gauge(
            "heatmap_storage_up", "1 if the last ClickHouse statement succeeded", registry=r)
        self.raw_insert_dedup = Gauge(
            "heatmap_raw_insert_dedup", "1 if camera_events drops repeated inserts (insert_deduplication_token)",
            registry=r)
        self.mqtt_connected = Gauge(
            "heatmap_mqtt_connected", "1 while the consumer is connected to the broker", registry=r)
        self.catching_up = Gauge(
            "heatmap_catching_up_site_days",
            "site-days whose kept answers are not yet checked against their sources (read from the sources meanwhile)",
            registry=r)
        self.pending_messages = Gauge(
            "heatmap_mqtt_pending_messages", "received messages not yet written and acked", registry=r)

        # Alerting (central.alerts): counters count this replica's work; pending is read from
        # ClickHouse and so is the same on every replica.
        self.alerts_fired = Counter(
            "heatmap_alerts_fired_total", "alerts fired (persisted for delivery) by kind", ["kind"], registry=r)
        self.alerts_suppressed = Counter(
            "heatmap_alerts_suppressed_total", "alerts held back by their rule's cooldown, by kind", ["kind"],
            registry=r)
        self.alerts_delivered = Counter(
            "heatmap_alerts_delivered_total", "alerts whose webhook answered 2xx", registry=r)
        self.alert_attempts_failed = Counter(
            "heatmap_alert_attempts_failed_total", "webhook attempts without a 2xx (retried)", registry=r)
        self.alerts_failed = Counter(
            "heatmap_alerts_failed_total", "alerts given up after the 24 h retry window", registry=r)
        self.alerts_cancelled = Counter(
            "heatmap_alerts_cancelled_total", "pending alerts cancelled because their rule was removed",
            registry=r)
        self.alerts_folded = Counter(
            "heatmap_alerts_folded_total", "alerts past their rule's max_per_minute, folded into a summary",
            registry=r)
        self.alerts_not_stored = Counter(
            "heatmap_alerts_not_stored_total", "alerts lost because ClickHouse refused them for a minute",
            registry=r)
        self.alerts_pending = Gauge(
            "heatmap_alerts_pending", "alerts waiting for delivery, over all replicas", registry=r)

    def render(self) -> bytes:
        return generate_latest(self.registry)
