"""Exports of one site over a range of local days: one row per (zone, bucket) with the
bucket's start in UTC and in local time, peak, events and the trigger counts.

ClickHouse writes the bytes (``CSV``, ``JSONEachRow``, ``Parquet``) from the
slot store's merged slots; central only passes them on. CSV and NDJSON are produced in
chunks of :data:`CHUNK_DAYS` local days, each one statement whose result is sent before the
next is asked for, so memory stays flat however long the range and other requests get the
engine between chunks. Parquet is one file with one footer, so it is built by one statement
(bounded by the range limit). The buckets' starts come from
:func:`central.buckets.enumerate_buckets`, the same as the history's.

A client that stops reading must not hold memory: exports running at once are bounded
(:class:`ExportGate`, ``HEATMAP_MAX_EXPORTS``), the handler sends each chunk in pieces of
:data:`PIECE_BYTES` that must each be taken within ``HEATMAP_EXPORT_WRITE_TIMEOUT``, and
when the last export ends the freed memory goes back to the OS
(:class:`central.memory.IdleTrim`).

Trigger names are customer data, so they never name a column in SQL (an alias called ``b``
or ``cam_name`` would take the place of the statement's own columns). NDJSON and Parquet
have a fixed layout: the counts are one ``triggers`` object (map) of name to count. CSV has
one column per trigger found in the range
(:meth:`central.storage.slots.SlotStore.trigger_names_sql`), unnamed in SQL (ClickHouse
writes ``CSV`` without names) and headed ``trigger:NAME`` in the header that central
writes, so no name can collide with a fixed column.
"""

from __future__ import annotations

import csv
import io
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, timedelta

from .buckets import OFFSET_SQL, enumerate_buckets, key_sql
from .memory import IdleTrim
from .sites import Site, local_day
from .storage.sitedays import SiteDays
from .storage.slots import Scope
from .storage.store import Store

__all__ = ["Exporter", "ExportGate", "ExportRequest", "FORMATS", "LIMIT_DAYS", "CHUNK_DAYS", "FIXED_COLUMNS",
           "PIECE_BYTES", "TRIGGER_PREFIX"]

LIMIT_DAYS = 366
CHUNK_DAYS = 31
#: A chunk goes out in writes of this size; each must be taken within the write timeout.
PIECE_BYTES = 256 * 1024

#: format -> (ClickHouse format, whether it is written in chunks, content type, extension)
FORMATS = {
    "csv": ("CSV", True, "text/csv; charset=utf-8", "csv"),
    "ndjson": ("JSONEachRow", True, "application/x-ndjson", "ndjson"),
    "parquet": ("Parquet", False, "application/vnd.apache.parquet", "parquet"),
}
FIXED_COLUMNS = ("site", "zone", "bucket_start_utc", "bucket_start_local", "peak", "events")
#: A CSV trigger column's header is this and the trigger's name.
TRIGGER_PREFIX = "trigger:"

# ``b`` is the bucket's first instant: the slot itself, or the start that the Python
# enumeration gave the bucket's key (exact on clock-change days, at any offset).
_EXPORT_SQL = """
SELECT {site:String} AS site, cam_name AS zone,
       formatDateTime(toDateTime(b, 'UTC'), '%%Y-%%m-%%dT%%H:%%i:%%SZ') AS bucket_start_utc,
       concat(formatDateTime(toDateTime(b, {tz:String}), '%%Y-%%m-%%dT%%H:%%i:%%S'),
              if(o < 0, '-', '+'), leftPad(toString(intDiv(abs(o), 3600)), 2, '0'), ':',
              leftPad(toString(intDiv(abs(o) %% 3600, 60)), 2, '0')) AS bucket_start_local,
       peak, events%(triggers)s
FROM (%(rows)s)
ORDER BY b, zone
"""
# NDJSON and Parquet: one map of the counts (zeros left out), under a fixed name.
_TRIGGER_MAP = ", mapFilter((k, v) -> v > 0, trig) AS triggers"
# CSV: one expression per trigger, the name bound as a value; no alias.
_TRIGGER_COLUMN = ", trig[{t%d:String}]"
# A slot is its own bucket: the merged rows as they are.
_SLOT_ROWS = """
    SELECT cam_name, toInt64(slot) AS b, timeZoneOffset(toDateTime(b, {tz:String})) AS o,
           peak, events, triggers AS trig
    FROM (%(merged)s)
    WHERE events > 0 AND ({zone:String} = '' OR cam_name = {zone:String})
"""
_BUCKET_ROWS = """
    SELECT cam_name, %(start)s AS b, timeZoneOffset(toDateTime(b, {tz:String})) AS o,
           max(peak) AS peak, sum(events) AS events, sumMap(triggers) AS trig
    FROM (
        SELECT slot, cam_name, peak, events, triggers, %(off)s AS off, %(key)s AS k
        FROM (%(merged)s)
        WHERE events > 0 AND ({zone:String} = '' OR cam_name = {zone:String})
    )
    GROUP BY cam_name, k
"""


@dataclass(frozen=True)
class ExportRequest:
    first: date
    last: date
    bucket: str  # slot, hour or day
    fmt: str  # csv, ndjson or parquet
    zone: str = ""

    def filename(self, site: str) -> str:
        zone = "_" + self.zone if self.zone else ""
        return "%s%s_%s_%s_%s.%s" % (site, zone, self.first, self.last, self.bucket, FORMATS[self.fmt][3])


class ExportGate:
    """The exports this process runs at once, and the memory they leave behind."""

    def __init__(self) -> None:
        self.running = 0
        self._trim = IdleTrim()

    def enter(self, limit: int) -> bool:
        """Take a place if fewer than ``limit`` exports run; False if not."""
        if self.running >= limit:
            return False
        self.running += 1
        return True

    def leave(self, sent: int) -> None:
        """An export that sent ``sent`` bytes is over (done, cut or failed)."""
        self.running -= 1
        self._trim.done(sent, self.running == 0)


class Exporter:
    def __init__(self, days: SiteDays):
        self.days = days
        self.store: Store = days.store  # type: ignore[assignment]
        self.gate = ExportGate()
        self._one_range = one_range = Scope.of((), 0, 0)  # the statements' shape: one range, no per-site windows
        self._triggers_sql = days.slots.trigger_names_sql(one_range)

    def _merged(self, site: Site, first: date, last: date) -> str:
        # The reader says whether these days' slot answers are checked against their sources.
        return self.days.slots_sql(local_day(first, site.tz)[0], local_day(last, site.tz)[1], self._one_range)

    async def trigger_names(self, site: Site, lo: int, hi: int) -> list[str]:
        rows = await self.store.aquery(self._triggers_sql, Scope.of([site.name], lo, hi).params())
        return [r[0] for r in rows if r[0]]

    async def chunks(self, site: Site, req: ExportRequest) -> AsyncIterator[bytes]:
        """The export's bytes, one statement's result at a time."""
        params: dict = {"site": site.name, "tz": site.timezone, "zone": req.zone}
        fmt, chunked, _, _ = FORMATS[req.fmt]
        header = b""
        if req.fmt == "csv":
            lo, _ = local_day(req.first, site.tz)
            _, hi = local_day(req.last, site.tz)
            names = await self.trigger_names(site, lo, hi)
            params.update(("t%d" % i, name) for i, name in enumerate(names))
            triggers = "".join(_TRIGGER_COLUMN % i for i in range(len(names)))
            header = _csv_header([*FIXED_COLUMNS, *(TRIGGER_PREFIX + n for n in names)])
        else:
            triggers = _TRIGGER_MAP
        spans = []
        day = req.first
        while day <= req.last:
            end = min(req.last, day + timedelta(days=CHUNK_DAYS - 1)) if chunked else req.last
            spans.append((day, end))
            day = end + timedelta(days=1)
        for i, (a, b) in enumerate(spans):
            rows, fix = self._rows(site, req.bucket, a, b)
            sql = _EXPORT_SQL % {"triggers": triggers, "rows": rows}
            c_lo, _ = local_day(a, site.tz)
            _, c_hi = local_day(b, site.tz)
            body = await self.store.araw_query(sql, {**params, **fix, **Scope.of([site.name], c_lo, c_hi).params()},
                                               fmt)
            if i == 0:
                body = header + body  # with the first rows: a failure before them is still a JSON error
            if body:
                yield body

    def _rows(self, site: Site, bucket: str, first: date, last: date) -> tuple[str, dict]:
        """The statement of the rows per (zone, bucket) and its own parameters."""
        if bucket == "slot":
            return _SLOT_ROWS % {"merged": self._merged(site, first, last)}, {}
        buckets = enumerate_buckets(site.tz, first, last, bucket)
        start = "transform(k, {bucket_keys:Array(Int64)}, {bucket_starts:Array(Int64)}, toInt64(0))"
        sql = _BUCKET_ROWS % {"start": start, "off": OFFSET_SQL, "key": key_sql(bucket),
                                "merged": self._merged(site, first, last)}
        return sql, {"bucket_keys": [b.key for b in buckets], "bucket_starts": [b.start for b in buckets]}


def _csv_header(names: list[str]) -> bytes:
    """One CSV line of quoted names, quoted as ClickHouse quotes its values."""
    out = io.StringIO()
    csv.writer(out, quoting=csv.QUOTE_ALL, lineterminator="\n").writerow(names)
    return out.getvalue().encode()
