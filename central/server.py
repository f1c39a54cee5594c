"""Process lifecycle of ``python -m central serve``: start-up, main loop, graceful shutdown.

Start-up warns when an open ingest is reachable beyond loopback, builds the app (migrations
run in its cleanup context) and binds HEATMAP_HTTP_ADDR through :mod:`central.listener`;
the main loop waits for SIGTERM or SIGINT; shutdown stops the HTTP site, then the cleanup
contexts stop the MQTT consumer (flush, ack what was written) and close the store.
"""

from __future__ import annotations

import asyncio
import gc
import ipaddress
import logging
import signal
import sys

from aiohttp import web

from .app import create_app
from .config import Config
from .exceptions import CentralError
from .listener import listen
from .state import METRICS

__all__ = ["serve", "run", "exposure_warning"]

logger = logging.getLogger(__name__)

#: Seconds a thread may hold the GIL while another waits (CPython's default is 0.005).
SWITCH_INTERVAL = 0.001


def exposure_warning(config: Config) -> str | None:
    """Why listening on ``config.http_addr`` is risky, or None: an open ingest reachable
    beyond this machine lets anyone (or any web page, via a visitor's browser) post events."""
    if config.ingest_token:
        return None
    host = config.http_addr[0]
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:  # a host name: it may resolve anywhere
        loopback = False
    if loopback:
        return None
    return ("HEATMAP_HTTP_ADDR %s is reachable beyond this machine and HEATMAP_INGEST_TOKEN is not set: "
            "anyone who can reach it can write events with POST /api/v1/events" % host)


async def run(config: Config, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set or a SIGTERM/SIGINT arrives."""
    stop = stop or asyncio.Event()
    # Big ingest bodies are decoded in a worker thread; with CPython's default 5 ms switch
    # interval the event loop waits that long for the GIL after every poll, so /healthz and
    # the dashboard crawl while a batch decodes. 1 ms keeps them responsive.
    sys.setswitchinterval(SWITCH_INTERVAL)
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    warning = exposure_warning(config)
    if warning:
        logger.warning("%s", warning)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()  # runs the cleanup contexts' start-up half (migrations, consumer)
    # What start-up made (modules, the engine's binding, the app) lives as long as the
    # process: out of the collector's sight, every later full collection stays short.
    gc.freeze()
    try:
        host, port = config.http_addr
        metrics = app[METRICS]
        listener = await listen(runner, config, host, port,
                                on_timeout=lambda kind: metrics.http_timeouts.labels(kind).inc())
        logger.info("central serving on http://%s:%d (store %s)", host, port, config.engine)
        try:
            await stop.wait()
            logger.info("shutting down")
        finally:
            listener.close()  # no new connections; the runner's cleanup ends the open ones
    finally:
        await runner.cleanup()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.remove_signal_handler(sig)
    logger.info("stopped")


def serve(config: Config) -> int:
    try:
        asyncio.run(run(config))
    except OSError as exc:
        raise CentralError("cannot listen on %s:%d: %s" % (*config.http_addr, exc.strerror)) from None
    return 0
