"""Process lifecycle of ``python -m central serve``: start-up, main loop, graceful shutdown.

Start-up builds the app (migrations run in its cleanup context) and binds HEATMAP_HTTP_ADDR;
the main loop waits for SIGTERM or SIGINT; shutdown stops the HTTP site, then the cleanup
contexts stop the MQTT consumer (flush, ack what was written) and close the store.
"""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from .app import SERVICES, create_app
from .config import Config
from .exceptions import CentralError
from .listener import listen

__all__ = ["serve", "run"]

logger = logging.getLogger(__name__)


async def run(config: Config, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set or a SIGTERM/SIGINT arrives."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    app = create_app(config)
    runner = web.AppRunner(app, access_log=None, handle_signals=False)
    await runner.setup()  # runs the cleanup contexts' start-up half (migrations, consumer)
    try:
        host, port = config.http_addr
        metrics = app[SERVICES].metrics
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
