"""The demo's webhook receiver: what a customer's alert endpoint would be, on loopback.

``python -m demo.receiver --port N --secret-file F`` serves ``POST /alerts`` on 127.0.0.1
until SIGTERM. Each alert is logged as one line (its child log is
``var/demo/logs/webhook.log``): the rule, the site and zone, the message, whether the
``X-Heatmap-Signature`` HMAC matches the shared secret, and "again" for an id already
seen (delivery is at least once). It answers 204, so central records the alert as
delivered. It keeps nothing but the ids of this run, in memory.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import hmac
import json
import logging
import signal
from pathlib import Path

from aiohttp import web

__all__ = ["make_app", "main", "signature_ok"]

log = logging.getLogger("demo.webhook")

PATH = "/alerts"
_SEEN = web.AppKey("seen", set)


def signature_ok(secret: bytes, body: bytes, header: str | None) -> bool:
    """Whether ``header`` is ``sha256=`` and the HMAC-SHA256 of ``body`` under ``secret``."""
    want = "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()
    return header is not None and hmac.compare_digest(want, header)


def make_app(secret: bytes) -> web.Application:
    async def receive(request: web.Request) -> web.Response:
        body = await request.read()
        signed = signature_ok(secret, body, request.headers.get("X-Heatmap-Signature"))
        try:
            alert = json.loads(body)
        except ValueError:
            log.warning("not JSON (%d bytes), signature %s", len(body), "ok" if signed else "BAD")
            return web.Response(status=400)
        seen = request.app[_SEEN]
        again = alert.get("id") in seen
        seen.add(alert.get("id"))
        log.info("alert %s%s: rule %s (%s) at %s%s, attempt %s, signature %s: %s",
                 alert.get("id"), " (again)" if again else "", alert.get("rule"), alert.get("kind"),
                 alert.get("site_name"), "/" + alert["cam_name"] if alert.get("cam_name") else "",
                 request.headers.get("X-Heatmap-Attempt", "?"), "ok" if signed else "BAD", alert.get("message"))
        return web.Response(status=204)

    app = web.Application()
    app[_SEEN] = set()
    app.router.add_post(PATH, receive)
    return app


async def _serve(port: int, secret: bytes) -> None:
    runner = web.AppRunner(make_app(secret), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    log.info("webhook receiver on http://127.0.0.1:%d%s", port, PATH)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m demo.receiver", description="The demo's alert webhook receiver.")
    p.add_argument("--port", type=int, required=True, help="port on 127.0.0.1")
    p.add_argument("--secret-file", required=True, help="file holding the webhook signing secret")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    asyncio.run(_serve(args.port, Path(args.secret_file).read_text().strip().encode()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
