"""The aiohttp application: ``create_app(config)``, its route table, middlewares and state.

Routes: the page (``/``), ``/api/v1/dashboard/{site_name}``, ``/api/v1/sites``,
``POST /api/v1/events``, ``/api/v1/alerts``, ``/api/v1/openapi.json``, ``/healthz``, ``/readyz``, ``/metrics``.
Background work lives in cleanup contexts: the store and schema (migrations run at start;
while ClickHouse is unreachable the app runs degraded and retries), then the MQTT consumer
when ``HEATMAP_MQTT_URL`` is set, then alerting (``central.alerts``). Every error is a JSON body ``{"error": {code, message}}``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from datetime import date
from pathlib import Path

from aiohttp import web
from shared.names import is_valid_name

from . import schema
from .alerts import Alerts, parse_rules
from .alerts import api as alerts_api
from .alerts.ledger import Ledger
from .config import Config
from .dashboard import Dashboard, DashboardCache
from .errors import json_error
from .exceptions import SchemaError, StorageError, StorageUnavailable
from .ingest import Ingestor
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .middleware import (
    RETRY_SECONDS,
    auth_middleware,
    cors_middleware,
    errors_middleware,
    metrics_middleware,
)
from .registry import Registry
from .sites import Sites
from .store import Store, open_store

__all__ = ["create_app", "Services", "SERVICES", "PAGE_PATH", "OPENAPI_PATH"]

logger = logging.getLogger(__name__)

PAGE_PATH = Path(__file__).parent / "static" / "heatmap_v2.html"
OPENAPI_PATH = Path(__file__).parent / "openapi.json"
_DATE_RE = re.compile(r"\d{4}-\d{2}-\d{2}\Z")


class Services:
    """Runtime state of one app (the config stays in ``Config``)."""

    def __init__(self, config: Config, store: Store | None):
        self.config = config
        self.sites = Sites.load(config.sites_file)
        self.alert_rules = parse_rules(self.sites)  # invalid rules stop start-up here
        self.alerts: Alerts | None = None
        self.metrics = Metrics()
        self.store = store
        self.owns_store = store is None
        self.raw_time: schema.RawTime | None = None
        #: Whether camera_events drops a repeated insert (None until the schema is read).
        self.raw_dedup: bool | None = None
        self.dashboard: Dashboard | None = None
        self.registry: Registry | None = None
        self.ingestor: Ingestor | None = None
        self.consumer = None
        self.schema_error: str | None = None
        self.cache = DashboardCache(config.cache_ttl, config.cache_ttl_past)

    def init_schema(self) -> None:
        """Migrate and inspect camera_events (blocking; runs in the store's executor)."""
        assert self.store is not None
        schema.migrate(self.store, self.config.clickhouse_cluster)
        self.raw_time = schema.detect_raw_time(self.store, self.config.event_timestamp_expr)
        dedup, why = schema.detect_raw_dedup(self.store)
        if not dedup and self.raw_time.writable:
            logger.warning(
                "camera_events does not deduplicate inserts (%s): POST /api/v1/events idempotency rests "
                "on ingest_batches alone, and a retry of a request that failed midway is refused as in "
                "doubt; to fix: ALTER TABLE camera_events MODIFY SETTING non_replicated_deduplication_window "
                "= 10000", why)
        self.raw_dedup = dedup
        self.metrics.raw_insert_dedup.set(1 if dedup else 0)

    def ready_services(self) -> None:
        assert self.store is not None and self.raw_time is not None
        self.dashboard = Dashboard(self.store, self.sites, self.raw_time, self.cache)
        logger.info("storage ready (%s); camera_events.event_timestamp is %s",
                    self.store.engine, self.raw_time.column_type)

    @property
    def storage_ok(self) -> bool:
        return self.dashboard is not None and self.store is not None and not self.store.last_failure


SERVICES = web.AppKey("services", Services)


# -- handlers -----------------------------------------------------------------------------

def _need_dashboard(svc: Services) -> Dashboard:
    if svc.dashboard is None:
        raise StorageUnavailable(svc.schema_error or "storage is not ready yet")
    return svc.dashboard


async def dashboard_handler(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    site_name = request.match_info["site_name"]
    if not is_valid_name(site_name):
        return json_error(400, "bad_site_name",
                          "site names are 1-64 of A-Z a-z 0-9 _ - ., starting with a letter or digit")
    text = request.query.get("date")
    site = svc.sites.get(site_name)
    if text is None:
        day = site.today()
    else:
        try:
            if not _DATE_RE.match(text):
                raise ValueError
            day = date.fromisoformat(text)
            if not 2000 <= day.year <= 2099:
                raise ValueError
        except ValueError:
            return json_error(400, "bad_date", "date must be YYYY-MM-DD between 2000 and 2099")
    dash = _need_dashboard(svc)
    assert svc.registry is not None
    if not await svc.registry.is_known(site_name):
        return json_error(404, "unknown_site", "no site %r is configured or has data" % site_name)
    hits = dash.hits
    body = await dash.answer(site_name, day)
    svc.metrics.dashboard_cache.labels("hit" if dash.hits > hits else "miss").inc()
    return web.Response(body=body, content_type="application/json",
                        headers={"Cache-Control": "no-cache"})


async def sites_handler(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    _need_dashboard(svc)
    assert svc.registry is not None
    return web.json_response(await svc.registry.sites_document(), headers={"Cache-Control": "no-cache"})


async def events_handler(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    assert svc.ingestor is not None
    return await svc.ingestor.handle(request)


def _health(svc: Services) -> dict:
    consumer = svc.consumer
    doc = {
        "status": "ok",
        "storage": "ok" if svc.storage_ok else "unavailable",
        "schema": "ready" if svc.dashboard is not None else (svc.schema_error or "pending"),
        "engine": svc.store.engine if svc.store is not None else None,
        "mqtt": "disabled" if consumer is None else ("connected" if consumer.connected else "disconnected"),
        "raw_insert_dedup": svc.raw_dedup,
    }
    if consumer is not None:
        doc["pending_messages"] = consumer.pending
        if consumer.degraded:
            doc["storage"] = "unavailable"
    if doc["storage"] != "ok" or doc["mqtt"] == "disconnected":
        doc["status"] = "degraded"
    return doc


async def alerts_handler(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    _need_dashboard(svc)
    assert svc.store is not None
    return await alerts_api.answer(request, Ledger(svc.store))


async def healthz_handler(request: web.Request) -> web.Response:
    return web.json_response(_health(request.app[SERVICES]))


async def readyz_handler(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    if svc.dashboard is not None and svc.store is not None and svc.store.last_failure:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, svc.store.ping)
    doc = _health(svc)
    svc.metrics.storage_up.set(1 if doc["storage"] == "ok" else 0)
    return web.json_response(doc, status=200 if doc["status"] == "ok" else 503,
                             headers=None if doc["status"] == "ok" else {"Retry-After": str(RETRY_SECONDS)})


async def metrics_handler(request: web.Request) -> web.Response:
    svc = request.app[SERVICES]
    svc.metrics.storage_up.set(1 if svc.storage_ok else 0)
    if svc.consumer is not None:
        svc.metrics.pending_messages.set(svc.consumer.pending)
    resp = web.Response(body=svc.metrics.render())
    resp.headers["Content-Type"] = CONTENT_TYPE_LATEST
    return resp


async def openapi_handler(request: web.Request) -> web.Response:
    return web.FileResponse(OPENAPI_PATH, headers={"Content-Type": "application/json"})


def _page_csp(text: str) -> str:
    # Inline scripts are allowed by hash, not by 'unsafe-inline'.
    hashes = [
        "'sha256-%s'" % base64.b64encode(hashlib.sha256(m.encode()).digest()).decode()
        for m in re.findall(r"<script>(.*?)</script>", text, flags=re.S)
    ]
    return ("default-src 'none'; script-src 'self' %s; style-src 'self' 'unsafe-inline'; "
            "img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'none'; "
            "frame-ancestors 'none'" % " ".join(hashes)).replace("  ", " ")


async def page_handler(request: web.Request) -> web.StreamResponse:
    try:
        text = PAGE_PATH.read_text(encoding="utf-8")
    except OSError:
        return json_error(404, "not_found", "the page is not installed (central/static/heatmap_v2.html)")
    return web.Response(
        text=text,
        content_type="text/html",
        headers={
            "Content-Security-Policy": _page_csp(text),
            "Cache-Control": "no-cache",
            "X-Content-Type-Options": "nosniff",
            "Referrer-Policy": "no-referrer",
            "X-Frame-Options": "DENY",
        },
    )


ROUTES = [
    web.get("/", page_handler),
    web.get("/heatmap_v2.html", page_handler),
    web.get("/healthz", healthz_handler),
    web.get("/readyz", readyz_handler),
    web.get("/metrics", metrics_handler),
    web.get("/api/v1/openapi.json", openapi_handler),
    web.get("/api/v1/sites", sites_handler),
    web.get("/api/v1/dashboard/{site_name}", dashboard_handler),
    web.post("/api/v1/events", events_handler),
    web.get("/api/v1/alerts", alerts_handler),
]


# -- background work ------------------------------------------------------------------------

async def _storage_ctx(app: web.Application):
    svc = app[SERVICES]
    if svc.store is None:
        svc.store = open_store(svc.config)
    svc.registry = Registry(svc.store, svc.sites)
    svc.ingestor = Ingestor(svc.store, lambda: svc.raw_time, svc.registry, lambda: svc.dashboard,
                            svc.metrics, svc.config, dedup_getter=lambda: bool(svc.raw_dedup),
                            on_data=lambda site, slots: _alerts_on_data(svc, site, slots))
    loop = asyncio.get_running_loop()
    retry_task = None
    try:
        await loop.run_in_executor(None, svc.init_schema)
        svc.ready_services()
    except SchemaError:
        raise  # a schema central cannot use stops start-up with its explanation
    except StorageUnavailable as exc:
        svc.schema_error = str(exc)
        logger.warning("storage not ready, running degraded and retrying: %s", exc)
        retry_task = asyncio.create_task(_retry_schema(svc))
    yield
    if retry_task is not None:
        retry_task.cancel()
        await asyncio.gather(retry_task, return_exceptions=True)
    if svc.owns_store:
        await loop.run_in_executor(None, svc.store.close)


async def _retry_schema(svc: Services) -> None:
    loop = asyncio.get_running_loop()
    delay = 1.0
    while svc.dashboard is None:
        await asyncio.sleep(delay)
        try:
            await loop.run_in_executor(None, svc.init_schema)
        except StorageUnavailable as exc:
            svc.schema_error = str(exc)
            delay = min(delay * 2, 30.0)
            continue
        except StorageError as exc:
            svc.schema_error = str(exc)
            logger.error("schema: %s", exc)
            delay = 30.0
            continue
        svc.schema_error = None
        svc.ready_services()


async def _consumer_ctx(app: web.Application):
    svc = app[SERVICES]
    if svc.config.mqtt_url is None:
        yield
        return
    from .consumer import Consumer

    loop = asyncio.get_running_loop()

    def written(site: str, slots: set) -> None:
        def apply() -> None:
            if svc.registry is not None:
                svc.registry.saw(site)
            if svc.dashboard is not None:
                svc.dashboard.invalidate_slots(site, slots)
            _alerts_on_data(svc, site, slots)

        loop.call_soon_threadsafe(apply)

    assert svc.store is not None
    svc.consumer = Consumer(svc.config, svc.store, svc.metrics, on_written=written)
    svc.consumer.start()
    yield
    # Graceful: stop taking messages, flush, ack what was written, disconnect.
    await loop.run_in_executor(None, svc.consumer.stop)


def _alerts_on_data(svc: Services, site: str, slots) -> None:
    # The alerting hook of every write path (consumer and raw ingest), on the event loop.
    if svc.alerts is not None:
        svc.alerts.on_data(site, slots)


async def _alerts_ctx(app: web.Application):
    svc = app[SERVICES]
    if not svc.alert_rules:
        yield
        return
    assert svc.store is not None and svc.registry is not None
    consumer = svc.consumer
    svc.alerts = Alerts(svc.alert_rules, svc.config, svc.sites, svc.store, svc.metrics,
                        dashboard=lambda: svc.dashboard, raw_time=lambda: svc.raw_time,
                        site_names=svc.registry.site_names,
                        publish=consumer.publish if consumer is not None else None)
    svc.alerts.start()
    logger.info("alerting on with %d rule(s)", len(svc.alert_rules))
    yield
    await svc.alerts.stop()


def create_app(config: Config, store: Store | None = None) -> web.Application:
    """The central web application; pass ``store`` to share an open one (tests, tools)."""
    svc = Services(config, store)
    middlewares = [metrics_middleware(svc.metrics), errors_middleware]
    if config.cors_origins:
        middlewares.append(cors_middleware(config.cors_origins))
    middlewares.append(auth_middleware(config))
    app = web.Application(middlewares=middlewares, client_max_size=config.max_body_bytes + 1024)
    app[SERVICES] = svc
    app.add_routes(ROUTES)
    app.cleanup_ctx.append(_storage_ctx)
    app.cleanup_ctx.append(_consumer_ctx)
    app.cleanup_ctx.append(_alerts_ctx)
    return app
