"""``POST /api/v1/events``: raw detection events into ``camera_events``.

The body is a JSON array or NDJSON of events as :func:`shared.events.parse_event` reads
them, each naming its site, sent as ``application/json`` or ``application/x-ndjson`` (415
otherwise); a key given twice in one object is refused. A batch is all-or-nothing: one
invalid event refuses the whole batch with a list of per-item errors, among them an event
older than ``HEATMAP_MAX_EVENT_AGE_DAYS`` (``too_old``) and one for a site that may not be
written (:meth:`central.registry.Registry.admit`: ``unknown_site``, ``too_many_sites``). The body is read under
:mod:`central.bodies`' limits; one over 64 KiB is decoded and validated into the insert's
columns (:mod:`central.decode`) in a worker process (``HEATMAP_INGEST_PROCESSES``; 0, or a
worker that died: in a thread), so that the event loop does not wait for the GIL meanwhile.

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
import logging
import multiprocessing
import re
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ProcessPoolExecutor, ThreadPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from datetime import datetime, timedelta, timezone

from aiohttp import web

from .bodies import BodyBudget, BodyRefused, read_body
from .decode import MAX_ITEM_ERRORS, Batch, Refused, prepare, prepare_paused
from .exceptions import StorageError
from .http_errors import json_error
from .storage.slots import RAW_COLUMNS

__all__ = ["Ingestor", "MAX_ITEM_ERRORS"]

logger = logging.getLogger(__name__)

#: Distinct Idempotency-Keys in flight at once in this process (each holds one lock).
MAX_KEYS_IN_FLIGHT = 10000
_KEY_RE = re.compile(r"[A-Za-z0-9_.:\-]{1,128}\Z")


_CONTENT_TYPES = ("application/json", "application/x-ndjson")
#: Bodies past this size are decoded and validated in a worker process (or thread), not on
#: the event loop.
OFFLOAD_BYTES = 64 * 1024


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
        # Big bodies are decoded in processes of their own (HEATMAP_INGEST_PROCESSES): in a
        # thread the decoding holds this process's GIL, and the event loop waited for it
        # (/healthz p99 35-60 ms beside four 50,000-event batches). 0: one thread, as the
        # fallback is; one, because more threads would not decode faster, they would only
        # make the event loop wait longer for the GIL.
        self.processes = config.ingest_processes
        self._pool: ProcessPoolExecutor | None = None  # started for the first big body
        self._decoder = ThreadPoolExecutor(1, thread_name_prefix="ingest-decode")
        self._big_inserts = asyncio.Semaphore(1)

    def _start_pool(self) -> ProcessPoolExecutor:
        # spawn: a fork of this process would copy its threads' locks (chDB's among them). A
        # worker starts in about 0.3 s and holds about 20 MB.
        return ProcessPoolExecutor(self.processes, mp_context=multiprocessing.get_context("spawn"))

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
        self._decoder.shutdown(wait=True)

    async def _prepare_big(self, body: bytes, time_kind: str) -> Batch:
        loop = asyncio.get_running_loop()
        if self.processes and self._pool is None:
            self._pool = self._start_pool()
        pool = self._pool
        if pool is not None:
            try:
                return await loop.run_in_executor(pool, prepare_paused, body, self.max_events, time_kind,
                                                  self.max_age)
            except BrokenProcessPool:
                # A worker died (killed, out of memory): the body is decoded in the thread, and
                # the next one by a new pool.
                logger.warning("ingest: a decoding process died; this body is decoded in a thread, the "
                               "next one in a new process")
                if self._pool is pool:
                    self._pool = None
                    pool.shutdown(wait=False)
        return await loop.run_in_executor(self._decoder, prepare_paused, body, self.max_events, time_kind,
                                          self.max_age)

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
                    batch = await self._prepare_big(body, raw_time.kind)
                else:
                    batch = prepare(body, self.max_events, raw_time.kind, self.max_age)
                await self._admit_sites(batch)
            except Refused as exc:
                for item in exc.extra.get("items", ()):
                    self.metrics.ingest_items_refused.labels(item["code"]).inc()
                return self._refuse(exc.status, exc.code, exc.message, **exc.extra)
            big = len(body) > OFFLOAD_BYTES
            del body
            if not big:
                return await self._store(key, batch)
            # One big batch's insert at a time: clickhouse-connect serialises the columns in
            # Python (the GIL), and four at once made the event loop wait for it in turn.
            async with self._big_inserts:
                return await self._store(key, batch)

    async def _admit_sites(self, batch: Batch) -> None:
        """Refuse the batch (422, per item) if it writes a site that may not get data."""
        if self.registry is None:
            return
        refused = await self.registry.admit(batch.touched, self.max_sites, self.accept_unknown_sites)
        if not refused:
            return
        errors, count = [], 0
        for index, site in enumerate(batch.columns[0]):  # one per event, in the body's order
            why = refused.get(site)
            if why is not None:
                count += 1
                if len(errors) < MAX_ITEM_ERRORS:
                    errors.append({"index": index, "field": "site", "code": why.code, "message": why.message})
        raise Refused(422, "invalid_events", "%d of %d events are for sites refused (%s); nothing was stored" % (
            count, batch.count, ", ".join(sorted(refused)[:5]) + (", ..." if len(refused) > 5 else "")),
            items=errors)

    async def _store(self, key: str | None, batch: Batch) -> web.Response:
        columns, touched = batch.columns, batch.touched
        if key is None:
            # A token of its own: camera_events drops a repeated identical block (a
            # deduplication window, a Replicated engine), and two equal detections are real.
            await self.store.ainsert("camera_events", columns, RAW_COLUMNS,
                                     {"insert_deduplication_token": "heatmap-unkeyed:%s" % uuid.uuid4().hex},
                                     column_oriented=True)
        else:
            if key not in self._locks and len(self._locks) >= MAX_KEYS_IN_FLIGHT:
                return self._refuse(503, "busy", "too many requests in flight; retry", retry_after=1)
            async with self._serialised(key):
                refused = await self._insert_once(key, batch.digest, columns, batch.count)
            if refused is not None:
                return refused
        self.metrics.ingest_events.inc(batch.count)
        if self.refresh is not None:
            try:
                # The keeper keeps the slots and days and tells every listener (on_data).
                await self.refresh(touched)
            except StorageError as exc:  # stored; slot_dirty_mv noted the rows, the follower retries
                logger.warning("keeping the answers of ingested slots failed (the follower retries): %s", exc)
        elif self.on_data is not None:
            for site, slots in touched.items():
                self.on_data(site, slots)
        logger.debug("ingested %d events (key %s)", batch.count, key)
        return web.json_response({"accepted": batch.count}, status=201)

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

    async def _insert_once(self, key: str, digest: str, columns: list, count: int) -> web.Response | None:
        """Insert ``columns`` (``count`` events) under ``key`` unless already done; a response if not inserting."""
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
        batch_columns = ["idempotency_key", "body_sha256", "accepted", "created_at"]
        pending_at = datetime.now(timezone.utc)
        await self.store.ainsert("ingest_batches", [[key, digest, 0, pending_at]], batch_columns)
        await self.store.ainsert("camera_events", columns, RAW_COLUMNS,
                                 {"insert_deduplication_token": "heatmap-ingest:%s:%s" % (key, digest)},
                                 column_oriented=True)
        # The done row must win ReplacingMergeTree(created_at) over the pending one.
        done_at = max(datetime.now(timezone.utc), pending_at + timedelta(milliseconds=1))
        await self.store.ainsert("ingest_batches", [[key, digest, count, done_at]], batch_columns)
        return None
