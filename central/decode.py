"""Decoding and validating a ``POST /api/v1/events`` body into the columns of its insert.

CPU only, and nothing of the event loop's: bodies over :data:`central.ingest.OFFLOAD_BYTES`
are prepared in a process of their own (``HEATMAP_INGEST_PROCESSES``, spawned), so this module
imports only the standard library and ``shared`` (a worker starts small and fast), and what
crosses the process boundary is plain data: the body in; the columns, the touched slots and
the body's hash out (equal strings share one object, so the columns pickle small), or a
:class:`Refused` (it pickles with its status, code and items).
"""

from __future__ import annotations

import contextlib
import gc
import hashlib
import json
import re
import time
from collections.abc import Iterator
from datetime import datetime, timezone
from typing import NamedTuple

from shared.events import parse_event
from shared.exceptions import EventError
from shared.slots import SLOT_SECONDS

__all__ = ["Batch", "MAX_ITEM_ERRORS", "Refused", "prepare", "prepare_paused", "time_value"]

MAX_ITEM_ERRORS = 100


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, **extra):
        super().__init__(message)
        self.status, self.code, self.message, self.extra = status, code, message, extra

    def __reduce__(self):  # from a worker process, with everything it carries
        return _refused, (self.status, self.code, self.message, self.extra)


def _refused(status: int, code: str, message: str, extra: dict) -> Refused:
    return Refused(status, code, message, **extra)


class Batch(NamedTuple):
    columns: list  # one list per RAW_COLUMNS column, one value per event in the body's order
    count: int
    touched: dict  # site -> slot starts
    digest: str


_NO_TRIGGERS: list = []  # shared by every event without triggers (never mutated)


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


def time_value(kind: str):
    """The value written to ``camera_events.event_timestamp`` for a Unix time, by the column's
    kind: :meth:`central.storage.schema.RawTime.value`'s rule, kept here because a worker
    process must not import the storage package (clickhouse-connect); never ``expr``."""
    if kind == "datetime64":
        return lambda ts: datetime.fromtimestamp(ts, timezone.utc)
    return int


def prepare_paused(body: bytes, max_events: int, time_kind: str, max_age: float | None) -> Batch:
    with _cyclic_gc_paused():
        return prepare(body, max_events, time_kind, max_age)


def prepare(body: bytes, max_events: int, time_kind: str, max_age: float | None = None) -> Batch:
    """Decode and validate a whole body into columns (CPU only: a worker runs it for big ones).
    ``time_kind``: :attr:`central.storage.schema.RawTime.kind` of ``camera_events``."""
    try:
        items = _decode(body)
    except UnicodeDecodeError:
        raise Refused(400, "bad_encoding", "the body is not UTF-8") from None
    except (ValueError, RecursionError) as exc:
        raise Refused(400, "bad_json", "the body is not a JSON array or NDJSON: %s" % str(exc)[:200]) from None
    if not items:
        raise Refused(400, "empty", "no events in the body")
    if len(items) > max_events:
        raise Refused(413, "too_many", "more than %d events in one request" % max_events)
    now = time.time()
    # Columns, not rows: the insert takes them as they are (clickhouse-connect's pivot of
    # rows into columns is one C call holding the GIL), and 50,000 row lists are not made
    # for the cyclic collector to walk. Equal strings share one object.
    sites: list = []
    cameras: list = []
    counts: list = []
    times: list = []
    triggers: list = []
    names: dict = {}
    errors: list = []
    touched: dict = {}
    value = time_value(time_kind)
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
            site = names.setdefault(event.site, event.site)
            sites.append(site)
            cameras.append(names.setdefault(event.camera, event.camera))
            counts.append(event.people_count)
            times.append(value(event.timestamp))
            triggers.append(list(event.triggers) if event.triggers else _NO_TRIGGERS)
            touched.setdefault(site, set()).add(int(event.timestamp) // SLOT_SECONDS * SLOT_SECONDS)
    if errors:
        raise Refused(
            422, "invalid_events",
            "%s of %d events are invalid; nothing was stored" % (
                len(errors) if len(errors) < MAX_ITEM_ERRORS else "at least %d" % len(errors), len(items)),
            items=errors,
        )
    return Batch([sites, cameras, counts, times, triggers], len(sites), touched, hashlib.sha256(body).hexdigest())
