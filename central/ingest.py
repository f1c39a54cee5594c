"""``POST /api/v1/events``: raw detection events into ``camera_events``.

The body is a JSON array or NDJSON of events as :func:`shared.events.parse_event` reads
them, each naming its site. A batch is all-or-nothing: one invalid event refuses the whole
batch with a list of per-item errors.

An ``Idempotency-Key`` header makes retries safe. Requests with one key are serialised in
this process. Before the insert a *pending* row (accepted = 0) records the key and a hash of
the body in ``ingest_batches``; after it, a done row (accepted = n). A replay of a done key
answers from there; a different body under the same key is a conflict. The insert carries
the key as ClickHouse's ``insert_deduplication_token``: where ``camera_events`` honours it
(a deduplication window, see :func:`central.schema.detect_raw_dedup`) a key left pending by
an attempt that failed midway, or still running on another replica, is simply inserted
again; where it does not, such a retry is refused (409 ``idempotency_in_doubt``) rather than
risk doubling rows.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import re
import time
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

from aiohttp import web
from shared.events import parse_event
from shared.exceptions import EventError

from .errors import json_error

__all__ = ["Ingestor", "MAX_ITEM_ERRORS"]

logger = logging.getLogger(__name__)

MAX_ITEM_ERRORS = 100
#: Distinct Idempotency-Keys in flight at once in this process (each holds one lock).
MAX_KEYS_IN_FLIGHT = 10000
_KEY_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}\Z")
_COLUMNS = ["site_name", "cam_name", "people_count", "event_timestamp", "event_triggers"]


class Ingestor:
    def __init__(self, store, raw_time_getter, registry, dashboard_getter, metrics, config,
                 dedup_getter=lambda: False, on_data=None):
        self.store = store
        self._on_data = on_data  # (site, slots) after rows are stored: alert rules
        self._raw_time = raw_time_getter
        self._dedup = dedup_getter
        self._locks: dict[str, list] = {}  # key -> [asyncio.Lock, users]
        self.registry = registry
        self._dashboard = dashboard_getter
        self.metrics = metrics
        self.max_bytes = config.max_body_bytes
        self.max_events = config.max_batch_events

    def _refuse(self, status: int, code: str, message: str, **extra) -> web.Response:
        self.metrics.ingest_rejected.labels(code).inc()
        return json_error(status, code, message, **extra)

    async def _read_body(self, request: web.Request) -> bytes | None:
        if request.content_length is not None and request.content_length > self.max_bytes:
            return None
        chunks, size = [], 0
        async for chunk in request.content.iter_chunked(65536):
            size += len(chunk)
            if size > self.max_bytes:
                return None
            chunks.append(chunk)
        return b"".join(chunks)

    def _decode(self, body: bytes) -> list:
        text = body.decode("utf-8")
        stripped = text.lstrip()
        if stripped.startswith("["):
            items = json.loads(stripped)
            if not isinstance(items, list):
                raise ValueError("expected a JSON array")
            return items
        items = []
        for number, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    items.append(json.loads(line))
                except ValueError as exc:
                    raise ValueError("line %d: %s" % (number, exc)) from None
        return items

    async def handle(self, request: web.Request) -> web.Response:
        raw_time = self._raw_time()
        if raw_time is None:
            return json_error(503, "storage_unavailable", "the store is not ready", retry_after=5)
        key = request.headers.get("Idempotency-Key")
        if key is not None and not _KEY_RE.match(key):
            return self._refuse(400, "bad_idempotency_key",
                                "Idempotency-Key must be 1-128 of A-Z a-z 0-9 _ . : -")
        body = await self._read_body(request)
        if body is None:
            return self._refuse(413, "too_large", "the body is larger than %d bytes" % self.max_bytes)
        try:
            items = self._decode(body)
        except UnicodeDecodeError:
            return self._refuse(400, "bad_encoding", "the body is not UTF-8")
        except (ValueError, RecursionError) as exc:
            return self._refuse(400, "bad_json", "the body is not a JSON array or NDJSON: %s" % str(exc)[:200])
        if not items:
            return self._refuse(400, "empty", "no events in the body")
        if len(items) > self.max_events:
            return self._refuse(413, "too_many", "more than %d events in one request" % self.max_events)
        if not raw_time.writable:
            return self._refuse(409, "raw_table_not_writable",
                                "camera_events' time is computed by HEATMAP_EVENT_TIMESTAMP_EXPR; ingest it upstream")

        now = time.time()
        rows, errors, touched = [], [], {}
        for index, obj in enumerate(items):
            try:
                event = parse_event(obj, now)
                if event.site is None:
                    raise EventError("is required", field="site", code="missing")
            except EventError as exc:
                if len(errors) < MAX_ITEM_ERRORS:
                    errors.append({"index": index, "field": exc.field, "code": exc.code, "message": exc.reason})
                else:
                    break
                continue
            if not errors:
                rows.append([event.site, event.camera, event.people_count,
                             raw_time.value(event.timestamp), list(event.triggers)])
                touched.setdefault(event.site, set()).add(int(event.timestamp) // 900 * 900)
        if errors:
            return self._refuse(
                422, "invalid_events",
                "%s of %d events are invalid; nothing was stored" % (
                    len(errors) if len(errors) < MAX_ITEM_ERRORS else "at least %d" % len(errors), len(items)),
                items=errors,
            )

        if key is None:
            await self.store.ainsert("camera_events", rows, _COLUMNS)
        else:
            if key not in self._locks and len(self._locks) >= MAX_KEYS_IN_FLIGHT:
                return self._refuse(503, "busy", "too many requests in flight; retry", retry_after=1)
            async with self._serialised(key):
                refused = await self._insert_once(key, hashlib.sha256(body).hexdigest(), rows)
            if refused is not None:
                return refused
        self.metrics.ingest_events.inc(len(rows))
        dashboard = self._dashboard()
        for site, slots in touched.items():
            self.registry.saw(site)
            if dashboard is not None:
                dashboard.invalidate_slots(site, slots)
            if self._on_data is not None:
                self._on_data(site, slots)
        logger.debug("ingested %d events (key %s)", len(rows), key)
        return web.json_response({"accepted": len(rows)}, status=201)

    @contextlib.asynccontextmanager
    async def _serialised(self, key: str) -> AsyncIterator[None]:
        """One request at a time per key in this process; the lock lives while it is used."""
        entry = self._locks.setdefault(key, [asyncio.Lock(), 0])
        entry[1] += 1
        try:
            async with entry[0]:
                yield
        finally:
            entry[1] -= 1
            if entry[1] == 0:
                del self._locks[key]

    async def _insert_once(self, key: str, digest: str, rows: list) -> web.Response | None:
        """Insert ``rows`` under ``key`` unless already done; a response if not inserting."""
        previous = await self.store.aquery(
            "SELECT body_sha256, accepted FROM ingest_batches FINAL WHERE idempotency_key = {key:String}",
            {"key": key},
        )
        if previous:
            if previous[0][0] != digest:
                return self._refuse(409, "idempotency_conflict", "this Idempotency-Key was used for a different body")
            if previous[0][1] > 0:
                return web.json_response({"accepted": int(previous[0][1])}, headers={"Idempotent-Replayed": "true"})
            if not self._dedup():
                logger.warning("Idempotency-Key %s is pending from an earlier attempt; refused as in doubt", key)
                return self._refuse(
                    409, "idempotency_in_doubt",
                    "an earlier request with this Idempotency-Key did not complete (it failed midway or is "
                    "still running elsewhere) and camera_events does not deduplicate inserts, so its events "
                    "may or may not be stored: check camera_events before resending under a new key",
                    retry_after=5)
            # camera_events drops a repeated insert with the same token: inserting again is safe.
        columns = ["idempotency_key", "body_sha256", "accepted", "created_at"]
        pending_at = datetime.now(timezone.utc)
        await self.store.ainsert("ingest_batches", [[key, digest, 0, pending_at]], columns)
        await self.store.ainsert("camera_events", rows, _COLUMNS,
                                 {"insert_deduplication_token": "heatmap-ingest:%s:%s" % (key, digest)})
        # The done row must win ReplacingMergeTree(created_at) over the pending one.
        done_at = max(datetime.now(timezone.utc), pending_at + timedelta(milliseconds=1))
        await self.store.ainsert("ingest_batches", [[key, digest, len(rows), done_at]], columns)
        return None
