"""HTTP middlewares of the central app: JSON errors, metrics, bearer tokens, CORS.

Order (outermost first): metrics (sees the final status), errors (turns every failure into a
JSON error body; storage trouble into 503 with Retry-After; a client gone mid-request is
counted as 499 and logged at INFO), CORS (only with an allow-list), tokens (read token for
the dashboard, sites, the range views (zones too) and alerts, ingest token for POST /api/v1/events).
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import re
import time

from aiohttp import web

from .config import Config
from .exceptions import RequestError, StorageError, StorageUnavailable
from .http_errors import json_error
from .metrics import Metrics

__all__ = ["RETRY_SECONDS", "CLIENT_CLOSED", "errors_middleware", "metrics_middleware", "auth_middleware", "cors_middleware"]

logger = logging.getLogger(__name__)

RETRY_SECONDS = 5
#: Status counted (never sent) for a request whose client closed the connection first.
CLIENT_CLOSED = 499


@web.middleware
async def errors_middleware(request: web.Request, handler):
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.content_type == "application/json":
            raise
        code = re.sub(r"[^a-z]+", "_", exc.reason.lower()).strip("_")
        resp = json_error(exc.status, code, exc.reason)
        if exc.status == 405:
            resp.headers["Allow"] = exc.headers.get("Allow", "")
        return resp
    except RequestError as exc:
        return json_error(exc.status, exc.code, str(exc))
    except StorageUnavailable as exc:
        logger.warning("%s %s: %s", request.method, request.path, exc)
        return json_error(503, "storage_unavailable", "storage is unavailable; retry shortly",
                          retry_after=RETRY_SECONDS)
    except StorageError as exc:
        logger.error("%s %s: %s", request.method, request.path, exc)
        return json_error(503, "storage_error", "storage refused the request; retry later",
                          retry_after=RETRY_SECONDS * 6)
    except asyncio.CancelledError:
        raise
    except ConnectionError as exc:
        transport = request.transport
        if transport is None or transport.is_closing():
            # The client went away mid-request (nginx's 499): its doing, not a failure of ours.
            logger.info("%s %s: the client closed the connection (%s)", request.method, request.path,
                        exc.__class__.__name__)
            return web.Response(status=CLIENT_CLOSED)
        logger.exception("%s %s failed", request.method, request.path)
        return json_error(500, "internal", "internal error")
    except Exception:
        logger.exception("%s %s failed", request.method, request.path)
        return json_error(500, "internal", "internal error")


def _route_name(request: web.Request) -> str:
    resource = request.match_info.route.resource
    return resource.canonical if resource is not None else "unmatched"


def metrics_middleware(metrics: Metrics):
    @web.middleware
    async def measure(request: web.Request, handler):
        started = time.perf_counter()
        status = 500
        try:
            resp = await handler(request)
            status = resp.status
            return resp
        except web.HTTPException as exc:
            status = exc.status
            raise
        finally:
            route = _route_name(request)
            metrics.http_requests.labels(route, str(status)).inc()
            metrics.http_seconds.labels(route).observe(time.perf_counter() - started)

    return measure


def _token_ok(request: web.Request, token: str | None) -> bool:
    if not token:
        return True
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    # aiohttp keeps undecodable header bytes as surrogates; surrogateescape gives them back
    # as bytes, which never equal a token (and never raise).
    return scheme.lower() == "bearer" and hmac.compare_digest(
        given.strip().encode("utf-8", "surrogateescape"), token.encode())


#: The API paths that need no token (the API's own description).
OPEN_PATHS = frozenset({"/api/v1/openapi.json"})


def auth_middleware(config: Config):
    @web.middleware
    async def auth(request: web.Request, handler):
        path = request.path
        if request.method != "OPTIONS":
            token = None
            if path == "/api/v1/events":
                token = config.ingest_token
            elif path.startswith("/api/v1/") and path not in OPEN_PATHS:
                # Every read endpoint, the ones added later too: closed unless listed open.
                token = config.read_token
            if not _token_ok(request, token):
                resp = json_error(401, "unauthorized", "a valid bearer token is required")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="heatmap"'
                return resp
        return await handler(request)

    return auth


def cors_middleware(origins: tuple[str, ...]):
    allow_all = "*" in origins

    @web.middleware
    async def cors(request: web.Request, handler):
        origin = request.headers.get("Origin")
        allowed = origin is not None and (allow_all or origin.rstrip("/") in origins)
        if request.method == "OPTIONS" and origin and "Access-Control-Request-Method" in request.headers:
            if not allowed:
                return json_error(403, "cors_forbidden", "origin not allowed")
            resp = web.Response(status=204)
            resp.headers["Access-Control-Allow-Methods"] = "GET, POST, OPTIONS"
            resp.headers["Access-Control-Allow-Headers"] = "Authorization, Content-Type, Idempotency-Key"
            resp.headers["Access-Control-Max-Age"] = "600"
        else:
            resp = await handler(request)
        if allowed and request.path.startswith("/api/"):
            resp.headers["Access-Control-Allow-Origin"] = "*" if allow_all else origin
            resp.headers["Vary"] = "Origin"
        return resp

    return cors
