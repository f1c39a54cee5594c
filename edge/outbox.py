"""The durable outbox: committed slot states, their revisions and what central has acked.

SQLite in WAL mode with ``synchronous=FULL``: a commit that returned survives a power cut,
and a half-written transaction is rolled back on the next open. One row per (camera, slot)
holds the latest committed state, its revision and the highest acked revision; the device's
revision counter lives in the same file and moves in the same transaction as the rows, so
after a restart revisions continue above everything ever published.

A file that SQLite cannot read (corrupt, truncated, not a database, a foreign schema) is
moved aside as ``<name>.corrupt-<UTC time>`` with its WAL, reported, and a fresh outbox is
started. An OperationalError at open (locked by another process, disk I/O error, disk full)
says nothing about the file: it is retried briefly, then the open fails with a clear
:class:`OutboxError` and the file stays as it is. A fresh outbox seeds its counter from the clock in microseconds, so a device whose
state was lost still publishes revisions above the ones central already holds.
"""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import threading
import time
from typing import Callable, Iterable, Iterator, List, Optional, Tuple

from shared.protocol import MAX_REV, SlotState

from .buffers import SlotValues
from .exceptions import OutboxError

__all__ = ["Outbox", "SCHEMA_VERSION"]

log = logging.getLogger(__name__)

SCHEMA_VERSION = 1

_SCHEMA = (
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
    "CREATE TABLE IF NOT EXISTS slots ("
    " camera TEXT NOT NULL, slot INTEGER NOT NULL, peak INTEGER NOT NULL,"
    " events INTEGER NOT NULL, triggers TEXT NOT NULL, rev INTEGER NOT NULL,"
    " acked_rev INTEGER NOT NULL DEFAULT 0, committed_at REAL NOT NULL,"
    " PRIMARY KEY (camera, slot)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS slots_by_slot ON slots (slot)",
)


class Outbox:
    """One SQLite file; every method may be called from any thread (a lock serialises)."""

    def __init__(self, path: str, clock: Callable[[], float] = time.time, attempts: int = 3,
                 timeout: float = 5.0) -> None:
        self.path = path
        self.clock = clock
        self.quarantined: Optional[str] = None
        self._lock = threading.Lock()
        directory = os.path.dirname(os.path.abspath(path))
        try:
            os.makedirs(directory, exist_ok=True)
        except OSError as exc:
            raise OutboxError("cannot create %s: %s" % (directory, exc.strerror)) from None
        self.fresh = False
        try:
            self._db = self._open_retrying(attempts, timeout)
        except sqlite3.OperationalError as exc:
            # Locked, disk I/O error, disk full, no permission: the file may be healthy, so
            # it is never moved aside for this; startup fails and systemd tries again.
            raise OutboxError("cannot open %s: %s" % (path, exc)) from None
        except sqlite3.DatabaseError as exc:
            self.quarantined = self._quarantine(exc)
            try:
                self._db = self._open_retrying(attempts, timeout)
            except sqlite3.Error as again:
                raise OutboxError("cannot open a fresh outbox at %s: %s" % (path, again)) from None
        except sqlite3.Error as exc:  # pragma: no cover
            raise OutboxError("cannot open %s: %s" % (path, exc)) from None
        self.rev = self._meta("rev")

    def _open_retrying(self, attempts: int, timeout: float) -> sqlite3.Connection:
        """:meth:`_open`, retried briefly on an OperationalError (e.g. another process's lock)."""
        for attempt in range(1, attempts + 1):
            try:
                return self._open(timeout)
            except sqlite3.OperationalError as exc:
                if attempt == attempts:
                    raise
                log.warning("outbox %s: %s (attempt %d of %d, retrying)", self.path, exc, attempt, attempts)
                time.sleep(min(timeout, 1.0))
        raise AssertionError("unreachable")  # pragma: no cover

    def _open(self, timeout: float) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False, timeout=timeout)
        try:
            mode = db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode != "wal":
                raise sqlite3.DatabaseError("journal_mode is %s, WAL needed" % mode)
            db.execute("PRAGMA synchronous=FULL")
            check = db.execute("PRAGMA quick_check").fetchone()[0]
            if check != "ok":
                raise sqlite3.DatabaseError("quick_check: %s" % check)
            tables = {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
            if tables and not {"meta", "slots"} <= tables:
                raise sqlite3.DatabaseError("not an outbox (tables %s)" % ", ".join(sorted(tables)))
            db.execute("BEGIN IMMEDIATE")
            for statement in _SCHEMA:
                db.execute(statement)
            row = db.execute("SELECT value FROM meta WHERE key='schema'").fetchone()
            if row is None:
                seed = min(int(self.clock() * 1e6), MAX_REV // 2)
                db.executemany("INSERT INTO meta VALUES (?, ?)", [("schema", SCHEMA_VERSION), ("rev", seed)])
                self.fresh = True
            elif row[0] != SCHEMA_VERSION:
                db.execute("ROLLBACK")
                raise sqlite3.DatabaseError("outbox schema %r, this agent writes %d" % (row[0], SCHEMA_VERSION))
            db.execute("COMMIT")
            # Reading every row once proves the pages are sound (quick_check skips some).
            db.execute("SELECT count(*), sum(length(triggers)) FROM slots").fetchone()
            return db
        except BaseException:
            db.close()
            raise

    def _quarantine(self, exc: Exception) -> str:
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        target = "%s.corrupt-%s" % (self.path, stamp)
        for suffix in ("", "-wal", "-shm"):
            if os.path.exists(self.path + suffix):
                os.replace(self.path + suffix, target + suffix)
        log.error("outbox %s is unreadable (%s); moved aside to %s and starting a fresh one "
                  "(states not yet acked there are lost; reconcile from raw restores them)",
                  self.path, exc, target)
        return target

    def _meta(self, key: str) -> int:
        with self._lock:
            return int(self._db.execute("SELECT value FROM meta WHERE key=?", (key,)).fetchone()[0])

    def commit(self, changes: List[SlotValues]) -> List[Tuple[str, int, int]]:
        """Give each changed slot a new revision and store it durably; returns (camera, slot, rev)."""
        if not changes:
            return []
        now = self.clock()
        items = []
        rev = self.rev
        rows = []
        for camera, slot, peak, events, triggers in changes:
            rev += 1
            items.append((camera, slot, rev))
            rows.append((camera, slot, peak, events, json.dumps(triggers, separators=(",", ":")), rev, now))
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "INSERT INTO slots (camera, slot, peak, events, triggers, rev, committed_at)"
                    " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (camera, slot) DO UPDATE SET"
                    " peak=excluded.peak, events=excluded.events, triggers=excluded.triggers,"
                    " rev=excluded.rev, committed_at=excluded.committed_at",
                    rows,
                )
                self._db.execute("UPDATE meta SET value=? WHERE key='rev'", (rev,))
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError("commit failed: %s" % exc) from None
        self.rev = rev
        return items

    def ack(self, items: Iterable[Tuple[str, int, int]]) -> None:
        """Record acks: revision ``r`` of (camera, slot) and everything below it are delivered."""
        rows = [(rev, camera, slot) for camera, slot, rev in items]
        if not rows:
            return
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(
                    "UPDATE slots SET acked_rev=max(acked_rev, ?) WHERE camera=? AND slot=?", rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError("ack failed: %s" % exc) from None

    def iter_values(self, lower_slot: int, chunk: int = 1000) -> Iterator[SlotValues]:
        """Every committed state from ``lower_slot`` on, in chunks (for restoring the buffers)."""
        after: Tuple[str, int] = ("", 0)
        while True:
            with self._lock:
                rows = self._db.execute(
                    "SELECT camera, slot, peak, events, triggers FROM slots"
                    " WHERE slot >= ? AND (camera, slot) > (?, ?) ORDER BY camera, slot LIMIT ?",
                    (lower_slot, after[0], after[1], chunk)).fetchall()
            if not rows:
                return
            for camera, slot, peak, events, triggers in rows:
                yield camera, slot, peak, events, json.loads(triggers)
            after = (rows[-1][0], rows[-1][1])

    def unacked(self, lower_slot: int) -> List[Tuple[str, int, int, float]]:
        """(camera, slot, rev, committed_at) of every state central has not acked."""
        with self._lock:
            return self._db.execute(
                "SELECT camera, slot, rev, committed_at FROM slots WHERE slot >= ? AND rev > acked_rev"
                " ORDER BY rev", (lower_slot,)).fetchall()

    def states(self, keys: Iterable[Tuple[str, int]]) -> List[SlotState]:
        """The committed states of (camera, slot) ``keys``, read back for sending."""
        out = []
        with self._lock:
            for camera, slot in keys:
                row = self._db.execute(
                    "SELECT peak, events, triggers, rev FROM slots WHERE camera=? AND slot=?",
                    (camera, slot)).fetchone()
                if row is not None:
                    out.append(SlotState(camera, slot, row[0], row[1], row[3], json.loads(row[2])))
        return out

    def load(self, lower_slot: int) -> Tuple[List[SlotValues], List[Tuple[SlotState, float]]]:
        """Everything from ``lower_slot`` on, and the unacked states (for tests and tools)."""
        values = sorted(self.iter_values(lower_slot), key=lambda v: (v[0], v[1]))
        unacked = self.unacked(lower_slot)
        states = self.states((c, s) for c, s, _, _ in unacked)
        return values, [(st, at) for st, (_, _, _, at) in zip(states, unacked)]

    def prune(self, lower_slot: int) -> Tuple[int, int]:
        """Drop slots older than the window; returns (dropped, of which never acked)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                lost = self._db.execute(
                    "SELECT count(*) FROM slots WHERE slot < ? AND rev > acked_rev", (lower_slot,)).fetchone()[0]
                dropped = self._db.execute("DELETE FROM slots WHERE slot < ?", (lower_slot,)).rowcount
                self._db.execute("COMMIT")
            except sqlite3.Error as exc:
                self._rollback()
                raise OutboxError("prune failed: %s" % exc) from None
        if lost:
            log.warning("%d state(s) aged out of the outbox without an ack from central", lost)
        return dropped, lost

    def backlog(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT count(*) FROM slots WHERE rev > acked_rev").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            try:
                self._db.close()
            except sqlite3.Error:  # pragma: no cover
                pass

    def _rollback(self) -> None:
        try:
            self._db.execute("ROLLBACK")
        except sqlite3.Error:
            pass
