"""``POST /api/v1/events``: raw detection events into ``camera_events``.

The body is a JSON array or NDJSON of events as :func:`shared.events.parse_event` reads
them, each naming its site, sent as ``application/json`` or ``application/x-ndjson`` (415
otherwise); a key given twice in one object is refused. A batch is all-or-nothing: one
invalid event refuses the whole batch with a list of per-item errors, among them an event
older than ``HEATMAP_MAX_EVENT_AGE_DAYS`` (``too_old``) and one for a site that may not be
written (:meth:`central.registry.Registry.admit`: ``unknown_site``, ``too_many_sites``). The body is read under
:mod:`central.bodies`' limits; one over 64 KiB is decoded and validated in a worker thread.

An ``Idempotency-Key`` header makes retries safe. Requests with one key are serialised in
this process. Before the insert a *pending* row (accepted = 0) records the key and a hash of
the body in ``ingest_batches``; after it, a done row (accepted = n). A replay of a done key
answers from there; a different body under the same key is a conflict. The insert carries
the key as ClickHouse's ``insert_deduplication_token``: where ``camera_events`` honours it
(a deduplication window, see :func:`central.storage.schema.detect_raw_dedup`) a key left pending by
an attempt that failed midway, or still running on another replica, is simply inserted
again; where it does not, such a retry is refused (409 ``idempotency_in_doubt``) rather than
risk doubling rows.

Only a repeated ``Idempotency-Key`` is ever deduplicated. An insert without one carries a
unique token, because a table with a deduplication window (ours has one so that keys work;
a customer's Replicated table has one by default) would otherwise drop an insert whose rows
equal an earlier one's, and equal detections (same second, camera and count) are real data.
(``insert_deduplicate = 0`` would not do: chDB's non-replicated tables ignore it.)
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import hashlib
import json
import logging
import re
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timedelta, timezone
from typing import NamedTuple

from aiohttp import web
from shared.events import parse_event
from shared.exceptions import EventError
from shared.slots import SLOT_SECONDS

from .bodies import BodyBudget, BodyRefused, read_body
from .exceptions import StorageError
from .http_errors import json_error
from .storage.slots import RAW_COLUMNS

__all__ = ["Ingestor", "MAX_ITEM_ERRORS"]

logger = logging.getLogger(__name__)

MAX_ITEM_ERRORS = 100
#: Distinct Idempotency-Keys in flight at once in this process (each holds one lock).
MAX_KEYS_IN_FLIGHT = 10000
_KEY_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}\Z")


_CONTENT_TYPES = ("application/json", "application/x-ndjson")
#: Bodies past this size are decoded and validated in a worker thread, not on the event loop.
OFFLOAD_BYTES = 64 * 1024


class _Refused(Exception):
    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra


class _Batch(NamedTuple):
    rows: list
    touched: dict  # site -> slot starts
    digest: str


def _no_duplicates(pairs: list) -> dict:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        seen = set()
        twice = next(k for k, _ in pairs if k in seen or seen.add(k))
        raise ValueError("key %r given twice in one object" % twice[:40])
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_no_duplicates)
_SPACE = re.compile(r"[ \t\n\r]*")


def _decode_array(text: str) -> list:
    """A JSON array, one element per decoder call: one json.loads of a 6 MB body holds the
    GIL (and so the event loop) for the whole parse, element by element the loop gets it
    back at every switch interval. Accepts and refuses exactly what json.loads would."""
    end = _SPACE.match(text, 1).end()
    items: list = []
    if text.startswith("]", end):
        idx = end + 1
    else:
        while True:
            item, idx = _DECODER.raw_decode(text, end)
            items.append(item)
            idx = _SPACE.match(text, idx).end()
            if text.startswith(",", idx):
                end = _SPACE.match(text, idx + 1).end()
            elif text.startswith("]", idx):
                idx += 1
                break
            else:
                raise ValueError("expected ',' or ']' at char %d" % idx)
    if _SPACE.match(text, idx).end() != len(text):
        raise ValueError("extra data after the array at char %d" % idx)
    return items


def _decode(body: bytes) -> list:
    text = body.decode("utf-8")
    stripped = text.lstrip()
    if stripped.startswith("["):
        return _decode_array(stripped)
    items = []
    for number, line in enumerate(text.splitlines(), 1):
        if line.strip():
            try:
                items.append(json.loads(line, object_pairs_hook=_no_duplicates))
            except ValueError as exc:
                raise ValueError("line %d: %s" % (number, exc)) from None
    return items


@contextlib.contextmanager
def _cyclic_gc_paused() -> Iterator[None]:
    """No cyclic garbage collection while a big body is decoded (reference counting still
    frees everything). Decoding 50,000 events makes some 200,000 containers, and the full
    collections they set off held the GIL, and so the event loop, for 300-450 ms each."""
    enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def _prepare_paused(body: bytes, max_events: int, raw_time, max_age: float | None) -> _Batch:
    with _cyclic_gc_paused():
        return _prepare(body, max_events, raw_time, max_age)


def _prepare(body: bytes, max_events: int, raw_time, max_age: float | None = None) -> _Batch:
    """Decode and validate a whole body into rows (CPU only: runs in a worker for big ones)."""
    try:
        items = _decode(body)
    except UnicodeDecodeError:
        raise _Refused(400, "bad_encoding", "the body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise _Refused(400, "bad_json", "the body is not a JSON array or NDJSON: %s" % str(exc)[:200]) from None
    if not items:
        raise _Refused(400, "empty", "no events in the body")
    if len(items) > max_events:
        raise _Refused(413, "too_many", "more than %d events in one request" % max_events)
    now = time.time()
    rows, errors, touched = [], [], {}
    for index, obj in enumerate(items):
        try:
            event = parse_event(obj, now, max_age=max_age)
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
            touched.setdefault(event.site, set()).add(int(event.timestamp) // SLOT_SECONDS * SLOT_SECONDS)
    if errors:
        raise _Refused(
            422, "invalid_events",
            "%s of %d events are invalid; nothing was stored" % (
                len(errors) if len(errors) < MAX_ITEM_ERRORS else "at least %d" % len(errors), len(items)),
            items=errors,
        )
    return _Batch(rows, touched, hashlib.sha256(body).hexdigest())


class Ingestor:
    def __init__(self, store, raw_time_getter, on_data, metrics, config, dedup_getter=lambda: False,
                 refresh=None, registry=None):
        self.store = store
        # central.registry.Registry: which sites may be written (None: any, as in tools)
        self.registry = registry
        self.max_sites = config.max_sites
        self.accept_unknown_sites = config.accept_unknown_sites
        self._raw_time = raw_time_getter
        self._dedup = dedup_getter
        self._locks: dict[str, list] = {}  # key -> [asyncio.Lock, users]
        self.on_data = on_data  # central.state.OnData: the path every writer takes after a write
        # async (touched) -> None: keeps the answers of the slots written (central.storage.answers)
        self.refresh = refresh
        self.metrics = metrics
        self.max_bytes = config.max_body_bytes
        self.max_events = config.max_batch_events
        self.body_timeout = config.http_body_timeout
        self.max_age = config.max_event_age_days * 86400.0 if config.max_event_age_days else None
        self.budget = BodyBudget(config.ingest_inflight_bytes, metrics.ingest_inflight_bytes.set)
        # One thread: decoding is CPU under the GIL, so more threads would not decode faster,
        # they would only make the event loop wait longer for the GIL (slower /healthz).
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="ingest-decode")

    def close(self) -> None:
        self._decoder.shutdown(wait=True)

    def _refuse(self, status: int, code: str, message: str, **extra) -> web.Response:
        self.metrics.ingest_rejected.labels(code).inc()
        return json_error(status, code, message, **extra)

    async def handle(self, request: web.Request) -> web.Response:
        raw_time = self._raw_time()
        if raw_time is None:
            return json_error(503, "storage_unavailable", "the store is not ready", retry_after=5)
        # A form or text/plain post needs no CORS preflight: only JSON bodies are events.
        if request.content_type not in _CONTENT_TYPES:
            return self._refuse(415, "unsupported_media_type",
                                "Content-Type must be application/json or application/x-ndjson")
        keys = request.headers.getall("Idempotency-Key", [])
        if len(keys) > 1:
            return self._refuse(400, "bad_idempotency_key", "give one Idempotency-Key header, not %d" % len(keys))
        key = keys[0] if keys else None
        if key is not None and not _KEY_RE.match(key):
            return self._refuse(400, "bad_idempotency_key",
                                "Idempotency-Key must be 1-128 of A-Z a-z 0-9 _ . : -")
        if not raw_time.writable:
            return self._refuse(409, "raw_table_not_writable",
                                "camera_events' time is computed by HEATMAP_EVENT_TIMESTAMP_EXPR; ingest it upstream")
        async with self.budget.hold() as held:
            try:
                body = await read_body(request, held, self.max_bytes, self.body_timeout)
            except BodyRefused as exc:
                if exc.code == "body_timeout":
                    self.metrics.http_timeouts.labels("body").inc()
                resp = self._refuse(exc.status, exc.code, exc.message, retry_after=exc.retry_after)
                resp.force_close()  # the rest of the body is not worth reading
                return resp
            try:
                if len(body) > OFFLOAD_BYTES:  # keep the event loop free for everyone else
                    loop = asyncio.get_running_loop()
                    batch = await loop.run_in_executor(self._decoder, _prepare_paused, body, self.max_events,
                                                       raw_time, self.max_age)
                else:
                    batch = _prepare(body, self.max_events, raw_time, self.max_age)
                await self._admit_sites(batch)
            except _Refused as exc:
                for item in exc.extra.get("items", ()):
                    self.metrics.ingest_items_refused.labels(item["code"]).inc()
                return self._refuse(exc.status, exc.code, exc.message, **exc.extra)
            del body
            return await self._store(key, batch)

    async def _admit_sites(self, batch: _Batch) -> None:
        """Refuse the batch (422, per item) if it writes a site that may not get data."""
        if self.registry is None:
            return
        refused = await self.registry.admit(batch.touched, self.max_sites, self.accept_unknown_sites)
        if not refused:
            return
        errors, count = [], 0
        for index, row in enumerate(batch.rows):  # one row per event, in the body's order
            why = refused.get(row[0])
            if why is not None:
                count += 1
                if len(errors) < MAX_ITEM_ERRORS:
                    errors.append({"index": index, "field": "site", "code": why.code, "message": why.message})
        raise _Refused(422, "invalid_events", "%d of %d events are for sites refused (%s); nothing was stored" % (
            count, len(batch.rows), ", ".join(sorted(refused)[:5]) + (", ..." if len(refused) > 5 else "")),
            items=errors)

    async def _store(self, key: str | None, batch: _Batch) -> web.Response:
        rows, touched = batch.rows, batch.touched
        if key is None:
            # A token of its own: camera_events drops a repeated identical block (a
            # deduplication window, a Replicated engine), and two equal detections are real.
            await self.store.ainsert("camera_events", rows, RAW_COLUMNS,
                                     {"insert_deduplication_token": "heatmap-unkeyed:%s" % uuid.uuid4().hex})
        else:
            if key not in self._locks and len(self._locks) >= MAX_KEYS_IN_FLIGHT:
                return self._refuse(503, "busy", "too many requests in flight; retry", retry_after=1)
            async with self._serialised(key):
                refused = await self._insert_once(key, batch.digest, rows)
            if refused is not None:
                return refused
        self.metrics.ingest_events.inc(len(rows))
        if self.refresh is not None:
            try:
                # The keeper keeps the slots and days and tells every listener (on_data).
                await self.refresh(touched)
            except StorageError as exc:  # stored; slot_dirty_mv noted the rows, the follower retries
                logger.warning("keeping the answers of ingested slots failed (the follower retries): %s", exc)
        elif self.on_data is not None:
            for site, slots in touched.items():
                self.on_data(site, slots)
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
        await self.store.ainsert("camera_events", rows, RAW_COLUMNS,
                                 {"insert_deduplication_token": "heatmap-ingest:%s:%s" % (key, digest)})
        # The done row must win ReplacingMergeTree(created_at) over the pending one.
        done_at = max(datetime.now(timezone.utc), pending_at + timedelta(milliseconds=1))
        await self.store.ainsert("ingest_batches", [[key, digest, len(rows), done_at]], columns)
        return None
