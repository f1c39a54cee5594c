"""The aiohttp application: ``create_app(config)``, its route table, middlewares and state.

Routes: the page (``/``), ``/api/v1/dashboard/{site_name}``, ``/api/v1/sites``,
``POST /api/v1/events``, the range views of :mod:`central.views` (history, profile,
typical, overview, export), ``/api/v1/alerts``, ``/api/v1/openapi.json``, ``/healthz``, ``/readyz``,
``/metrics``.
Background work lives in cleanup contexts: the store and schema (migrations run at start;
while ClickHouse is unreachable the app runs degraded and retries), then the MQTT consumer
when ``HEATMAP_MQTT_URL`` is set, then alerting (:mod:`central.alerts`) when the sites file
has ``[[alerts]]`` rules. Every error is a JSON body ``{"error": {code, message}}``.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import logging
import re
from pathlib import Path

from aiohttp import HttpVersion11, web
from shared.names import is_valid_name

from .alerts import Alerts, parse_rules
from .alerts import api as alerts_api
from .alerts.ledger import Ledger
from .config import Config
from .dashboard import Dashboard, DashboardCache
from .exceptions import SchemaError, StorageError, StorageUnavailable
from .http_errors import json_error
from .ingest import Ingestor
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .middleware import (
    RETRY_SECONDS,
    auth_middleware,
    cors_middleware,
    errors_middleware,
    metrics_middleware,
)
from .query import single_values
from .registry import Registry
from .sites import Sites
from .state import (
    ALERT_RULES,
    ALERTS,
    CONFIG,
    CONSUMER,
    DASHBOARD,
    FOLLOWER,
    INGESTOR,
    KEEPER,
    METRICS,
    ON_DATA,
    RANGES,
    REGISTRY,
    SCHEMA,
    SITEDAYS,
    SITES,
    SLOTS,
    STORE,
    OnData,
    Ready,
    SchemaFacts,
)
from .storage import schema
from .storage.derived import open_derived
from .storage.keeper import Follower, Keeper
from .storage.sitedays import SiteDays
from .storage.store import Store, open_store
from .views import ROUTES as RANGE_ROUTES
from .views import RangeServices, parse_date

__all__ = ["create_app", "PAGE_PATH", "OPENAPI_PATH"]

logger = logging.getLogger(__name__)

PAGE_PATH = Path(__file__).parent / "static" / "heatmap_v2.html"
# The page's ES modules (no build step); only flat names, so a path can never leave the folder.
SCRIPTS_DIR = Path(__file__).parent / "static" / "js"
OPENAPI_PATH = Path(__file__).parent / "openapi.json"


def _init_schema(store: Store, config: Config, metrics: Metrics, sites: Sites) -> tuple[SchemaFacts, Keeper]:
    """Migrate, inspect camera_events, use or build the derived tables (the raw rollup, the
    kept answers), and make the keeper ready to tell reads which days it has not caught up
    yet (blocking; in a thread). The catch-up itself runs in the background once reads are
    served."""
    schema.migrate(store, config.clickhouse_cluster)
    raw_time = schema.detect_raw_time(store, config.event_timestamp_expr)
    dedup, why = schema.detect_raw_dedup(store)
    if not dedup and raw_time.writable:
        logger.warning(
            "camera_events does not deduplicate inserts (%s): POST /api/v1/events idempotency rests "
            "on ingest_batches alone, and a retry of a request that failed midway is refused as in "
            "doubt; to fix: ALTER TABLE camera_events MODIFY SETTING non_replicated_deduplication_window "
            "= 10000", why)
    metrics.raw_insert_dedup.set(1 if dedup else 0)
    # One process owns an embedded engine; against a server, `migrate` builds the derived tables.
    derived = open_derived(store, raw_time, config.clickhouse_cluster, sites, build_it=store.engine == "chdb")
    keeper = Keeper(derived.slot_store(), sites)
    keeper.prepare()
    store.connect_all()  # before the first requests
    return SchemaFacts(dedup, derived), keeper


def _schema_ready(app: web.Application, facts: SchemaFacts, keeper: Keeper) -> None:
    """Storage answered: the services that need the schema become available."""
    store, config = app[STORE], app[CONFIG]
    app[SCHEMA].set(facts)
    slots = keeper.slots
    hub = app[ON_DATA]
    loop = asyncio.get_running_loop()

    def tell(site: str, touched: set[int], live: bool) -> None:
        # From a store thread or the day keeper's: onto the loop; on the loop: at once.
        try:
            on_loop = asyncio.get_running_loop() is loop
        except RuntimeError:
            on_loop = False
        try:
            if on_loop and not live:
                hub(site, touched)
            elif live:
                hub.threadsafe(loop)(site, touched)
            else:
                loop.call_soon_threadsafe(hub, site, set(touched))
        except RuntimeError:  # the loop closed: shutting down, nobody left to tell
            logger.debug("not told of %s: the event loop is closed", site)

    keeper.start(tell)
    app[KEEPER].set(keeper)
    app[SLOTS].set(slots)
    days = SiteDays(slots, app[SITES], keeper)
    app[SITEDAYS].set(days)
    dashboard = Dashboard(days, app[SITES], DashboardCache(config.cache_ttl, config.cache_ttl_past),
                          live=lambda: hub.live)
    if slots.answers:
        follower = Follower(keeper)
        follower.task = loop.create_task(follower.run())
        app[FOLLOWER].set(follower)
        keeper.start_catch_up(built_from=facts.derived.days_built_from())
    else:
        app[FOLLOWER].unavailable(facts.derived.answers.reason)
    app[ON_DATA].append(dashboard.on_data)
    app[DASHBOARD].set(dashboard)
    ranges = RangeServices.build(days, app[SITES], app[REGISTRY])
    app[ON_DATA].append(ranges.typical.on_data)
    app[RANGES].set(ranges)
    logger.info("storage ready (%s); camera_events.event_timestamp is %s",
                store.engine, facts.raw_time.column_type)


def _storage_ok(app: web.Application) -> bool:
    return app[DASHBOARD].value is not None and not app[STORE].last_failure


# -- handlers -----------------------------------------------------------------------------

async def dashboard_handler(request: web.Request) -> web.Response:
    app = request.app
    single_values(request)
    site_name = request.match_info["site_name"]
    if not is_valid_name(site_name):
        return json_error(400, "bad_site_name",
                          "site names are 1-64 of A-Z a-z 0-9 _ - ., starting with a letter or digit")
    text = request.query.get("date")
    site = app[SITES].get(site_name)
    day = site.today() if text is None else parse_date(text)
    dash = app[DASHBOARD].require()
    if not await app[REGISTRY].is_known(site_name):
        return json_error(404, "unknown_site", "no site %r is configured or has data" % site_name)
    hits = dash.hits
    body = await dash.answer(site_name, day)
    app[METRICS].dashboard_cache.labels("hit" if dash.hits > hits else "miss").inc()
    return web.Response(body=body, content_type="application/json",
                        headers={"Cache-Control": "no-cache"})


async def sites_handler(request: web.Request) -> web.Response:
    request.app[DASHBOARD].require()
    return web.json_response(await request.app[REGISTRY].sites_document(), headers={"Cache-Control": "no-cache"})


async def events_handler(request: web.Request) -> web.Response:
    return await request.app[INGESTOR].handle(request)


def _health(app: web.Application) -> dict:
    consumer = app[CONSUMER].value
    facts = app[SCHEMA].value
    doc = {
        "status": "ok",
        "storage": "ok" if _storage_ok(app) else "unavailable",
        "schema": "ready" if facts is not None else (app[SCHEMA].reason or "pending"),
        "engine": app[STORE].engine,
        "mqtt": "disabled" if consumer is None else ("connected" if consumer.connected else "disconnected"),
        "raw_insert_dedup": facts.raw_dedup if facts is not None else None,
        "raw_rollup": facts.derived.rollup.as_json() if facts is not None else None,
        "slot_answers": facts.derived.answers.as_json() if facts is not None else None,
        # Site-days whose kept answers the start-up catch-up has not checked yet: read from
        # the sources meanwhile (right, only slower); 0 once caught up.
        "catching_up": app[KEEPER].value.catching_up if app[KEEPER].value is not None else None,
    }
    if consumer is not None:
        doc["pending_messages"] = consumer.pending
        if consumer.degraded:
            doc["storage"] = "unavailable"
    if doc["storage"] != "ok" or doc["mqtt"] == "disconnected":
        doc["status"] = "degraded"
    return doc


async def alerts_handler(request: web.Request) -> web.Response:
    app = request.app
    app[SCHEMA].require()  # the alerts table exists once migrations ran
    return await alerts_api.answer(request, Ledger(app[STORE]))


async def healthz_handler(request: web.Request) -> web.Response:
    return web.json_response(_health(request.app))


async def readyz_handler(request: web.Request) -> web.Response:
    app = request.app
    store = app[STORE]
    if app[DASHBOARD].value is not None and store.last_failure:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(None, store.ping)
    doc = _health(app)
    app[METRICS].storage_up.set(1 if doc["storage"] == "ok" else 0)
    return web.json_response(doc, status=200 if doc["status"] == "ok" else 503,
                             headers=None if doc["status"] == "ok" else {"Retry-After": str(RETRY_SECONDS)})


async def metrics_handler(request: web.Request) -> web.Response:
    app = request.app
    metrics = app[METRICS]
    metrics.storage_up.set(1 if _storage_ok(app) else 0)
    keeper = app[KEEPER].value
    metrics.catching_up.set(keeper.catching_up if keeper is not None else 0)
    consumer = app[CONSUMER].value
    if consumer is not None:
        metrics.pending_messages.set(consumer.pending)
    resp = web.Response(body=metrics.render())
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


async def script_handler(request: web.Request) -> web.StreamResponse:
    path = SCRIPTS_DIR / request.match_info["name"]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError:
        return json_error(404, "not_found", "no such script")
    return web.Response(text=text, content_type="text/javascript",
                        headers={"Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff"})


async def expect_handler(request: web.Request) -> web.StreamResponse | None:
    """``Expect: 100-continue`` as aiohttp does it; any other expectation gets the JSON 417
    (aiohttp's own answer is plain text, sent past the middlewares)."""
    if request.headers.get("Expect", "").lower() == "100-continue":
        if request.version == HttpVersion11:
            await request.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
            request.writer.output_size = 0  # the interim answer is not the response
        return None
    request.app[METRICS].http_requests.labels(request.match_info.route.resource.canonical, "417").inc()
    resp = json_error(417, "expectation_failed", "only Expect: 100-continue is supported")
    resp.force_close()
    return resp


ROUTES = [
    web.get(path, handler, expect_handler=expect_handler) if method == "GET"
    else web.post(path, handler, expect_handler=expect_handler)
    for method, path, handler in (
        ("GET", "/", page_handler),
        ("GET", r"/js/{name:[a-z][a-z0-9_]*\.js}", script_handler),
        ("GET", "/heatmap_v2.html", page_handler),
        ("GET", "/healthz", healthz_handler),
        ("GET", "/readyz", readyz_handler),
        ("GET", "/metrics", metrics_handler),
        ("GET", "/api/v1/openapi.json", openapi_handler),
        ("GET", "/api/v1/sites", sites_handler),
        ("GET", "/api/v1/dashboard/{site_name}", dashboard_handler),
        ("POST", "/api/v1/events", events_handler),
        ("GET", "/api/v1/alerts", alerts_handler),
    )
]


# -- background work ------------------------------------------------------------------------

async def _store_ctx(app: web.Application):
    """The store (unless one was passed in), the registry, the raw ingestor, the schema."""
    config = app[CONFIG]
    owned = STORE not in app
    if owned:
        app[STORE] = open_store(config)
    store = app[STORE]
    facts: SchemaFacts | None = None
    registry = app[REGISTRY] = Registry(store, app[SITES])
    app[ON_DATA].append(lambda site, slots: registry.saw(site))

    def raw_time() -> schema.RawTime | None:
        return facts.raw_time if facts is not None else None

    async def refresh(touched: dict) -> None:
        # The keeper keeps the slots and days and tells every listener before the 201.
        keeper = app[KEEPER].value
        if keeper is not None:
            await keeper.akeep(touched)
        else:
            for site, slots in touched.items():
                app[ON_DATA](site, slots)

    app[INGESTOR] = Ingestor(store, raw_time, None, app[METRICS], config,
                             dedup_getter=lambda: bool(facts and facts.raw_dedup), refresh=refresh, registry=registry)
    loop = asyncio.get_running_loop()
    retry_task = None

    def ready(value: tuple[SchemaFacts, Keeper]) -> None:
        nonlocal facts
        facts = value[0]
        _schema_ready(app, *value)

    try:
        ready(await loop.run_in_executor(None, _init_schema, store, config, app[METRICS], app[SITES]))
    except SchemaError:
        raise  # a schema central cannot use stops start-up with its explanation
    except StorageUnavailable as exc:
        app[SCHEMA].unavailable(str(exc))
        app[DASHBOARD].unavailable(str(exc))
        app[RANGES].unavailable(str(exc))
        logger.warning("storage not ready, running degraded and retrying: %s", exc)
        retry_task = asyncio.create_task(_retry_schema(app, ready))
    yield
    follower = app[FOLLOWER].value
    for task in (retry_task, follower.task if follower is not None else None):
        if task is not None:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    if follower is not None:
        # A last pass, so the clean stop's mark covers every note written so far: a start
        # after it does not tell again what this process told (a rule added since would fire).
        try:
            await asyncio.wait_for(follower.once(), 10.0)
        except (StorageError, asyncio.TimeoutError) as exc:
            logger.warning("slot answers: the last pass over other writers' notes failed: %s", exc)
    keeper = app[KEEPER].value
    if keeper is not None:
        await loop.run_in_executor(None, keeper.stop)
    await loop.run_in_executor(None, app[INGESTOR].close)
    if owned:
        await loop.run_in_executor(None, store.close)


async def _retry_schema(app: web.Application, ready) -> None:
    loop = asyncio.get_running_loop()
    store, config, metrics = app[STORE], app[CONFIG], app[METRICS]
    delay = 1.0
    while app[DASHBOARD].value is None:
        await asyncio.sleep(delay)
        try:
            facts = await loop.run_in_executor(None, _init_schema, store, config, metrics, app[SITES])
        except StorageUnavailable as exc:
            app[SCHEMA].unavailable(str(exc))
            app[DASHBOARD].unavailable(str(exc))
            app[RANGES].unavailable(str(exc))
            delay = min(delay * 2, 30.0)
            continue
        except StorageError as exc:
            app[SCHEMA].unavailable(str(exc))
            app[DASHBOARD].unavailable(str(exc))
            app[RANGES].unavailable(str(exc))
            logger.error("schema: %s", exc)
            delay = 30.0
            continue
        ready(facts)


async def _consumer_ctx(app: web.Application):
    config = app[CONFIG]
    if config.mqtt_url is None:
        app[CONSUMER].unavailable("no MQTT URL configured")
        yield
        return
    from .consumer import Consumer

    loop = asyncio.get_running_loop()

    def refresh(touched: dict) -> None:  # in the consumer's writer thread, before the ack
        keeper = app[KEEPER].value
        if keeper is not None:
            # Slots now; the days behind the ack (pending for the reader), told once kept.
            keeper.keep_live(touched)

    def written(site: str, slots_written: set) -> None:  # after the ack
        keeper = app[KEEPER].value
        if keeper is not None:
            keeper.written_live(site, slots_written)
        else:
            app[ON_DATA].threadsafe(loop)(site, slots_written)

    registry = app[REGISTRY]

    def admit(sites: set) -> dict:  # in the consumer's writer thread: the registry lives on the loop
        future = asyncio.run_coroutine_threadsafe(
            registry.admit(sites, config.max_sites, config.accept_unknown_sites), loop)
        return future.result(timeout=60)

    consumer = Consumer(config, app[STORE], app[METRICS], on_written=written, refresh=refresh, admit=admit)
    app[CONSUMER].set(consumer)
    consumer.start()
    yield
    # Graceful: stop taking messages, flush, ack what was written, disconnect.
    await loop.run_in_executor(None, consumer.stop)


async def _alerts_ctx(app: web.Application):
    """Alert rules judged on every write (the on_data path) and on a timer, delivered by
    webhooks and on MQTT; only where the sites file has ``[[alerts]]`` rules."""
    rules = app[ALERT_RULES]
    if not rules:
        app[ALERTS].unavailable("no [[alerts]] rules in the sites file")
        yield
        return
    registry = app[REGISTRY]

    def raw_time() -> schema.RawTime | None:
        facts = app[SCHEMA].value
        return facts.raw_time if facts is not None else None

    consumer = app[CONSUMER].value
    alerts = Alerts(rules, app[CONFIG], app[SITES], app[STORE], app[METRICS],
                    dashboard=lambda: app[DASHBOARD].value, raw_time=raw_time,
                    site_names=registry.site_names,
                    publish=consumer.publish if consumer is not None else None,
                    typical=lambda: app[RANGES].value.typical if app[RANGES].value is not None else None)
    app[ALERTS].set(alerts)
    app[ON_DATA].append(alerts.on_data)
    alerts.start()
    logger.info("alerting on with %d rule(s)", len(rules))
    yield
    await alerts.stop()


def create_app(config: Config, store: Store | None = None) -> web.Application:
    """The central web application; pass ``store`` to share an open one (tests, tools)."""
    metrics = Metrics()
    middlewares = [metrics_middleware(metrics), errors_middleware]
    if config.cors_origins:
        middlewares.append(cors_middleware(config.cors_origins))
    middlewares.append(auth_middleware(config))
    app = web.Application(middlewares=middlewares, client_max_size=config.max_body_bytes + 1024)
    app[CONFIG] = config
    app[SITES] = Sites.load(config.sites_file)
    app[ALERT_RULES] = parse_rules(app[SITES], config.webhook_targets)  # invalid rules stop start-up here
    app[METRICS] = metrics
    app[ON_DATA] = OnData()
    app[SCHEMA] = Ready("the database schema")
    app[DASHBOARD] = Ready("the dashboard")
    app[CONSUMER] = Ready("the MQTT consumer")
    app[RANGES] = Ready("the range views")
    app[SLOTS] = Ready("the slot store")
    app[FOLLOWER] = Ready("the slot answers' follower")
    app[KEEPER] = Ready("the keeper of derived data")
    app[SITEDAYS] = Ready("the site-days reader")
    app[ALERTS] = Ready("alerting")
    if store is not None:
        app[STORE] = store
    app.add_routes(ROUTES)
    app.add_routes(RANGE_ROUTES)
    app.cleanup_ctx.append(_store_ctx)
    app.cleanup_ctx.append(_consumer_ctx)
    app.cleanup_ctx.append(_alerts_ctx)
    return app
