"""The ClickHouse store: one clickhouse-connect client, a thread executor, error translation.

Two engines sit behind the same :class:`Storage` protocol and the same SQL:

* ``chdb:///path``: the embedded ClickHouse engine (chDB) in this process. Limits: one
  process per data directory (a second process cannot open it), one directory per process
  (opening another path raises until the first client is closed), no async client, and the
  engine shares this process's CPU and memory. Good for one box and for tests.
* ``http(s)://user:pass@host:8123/db``: a ClickHouse server or cluster. Connection errors and
  overload are :class:`StorageUnavailable` and reads are retried briefly; the client is
  created lazily, so central starts (degraded) while the server is down.

clickhouse-connect is synchronous, so the asyncio side runs statements in this store's own
thread pool (``aquery``/``ainsert``/``acommand``); CLI tools call the plain methods. Each
thread has a client of its own: a chDB client runs one statement at a time, so with one for
all a dashboard read waited behind the day keeper's recomputation (measured on the 50M-row
benchmark: a one-row read took 33 ms at the median beside a long statement, 9 ms with a
client of its own), and a server client's session allows one statement at a time. Values
always travel as server-side parameters (``{name:Type}``), never formatted into SQL.
This module is the only place that catches clickhouse-connect's exceptions.
"""

from __future__ import annotations

import asyncio
import logging
import re
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Protocol

import clickhouse_connect
from clickhouse_connect.driver import exceptions as ch_errors

from ..exceptions import StorageError, StorageUnavailable

__all__ = ["Storage", "Store", "open_store"]

logger = logging.getLogger(__name__)

# ClickHouse error codes that mean "try again later", not "your statement is wrong".
_TRANSIENT_CODES = frozenset(
    {
        3,  # UNEXPECTED_END_OF_FILE
        159,  # TIMEOUT_EXCEEDED
        164,  # READONLY
        202,  # TOO_MANY_SIMULTANEOUS_QUERIES
        209,  # SOCKET_TIMEOUT
        210,  # NETWORK_ERROR
        236,  # ABORTED
        241,  # MEMORY_LIMIT_EXCEEDED
        242,  # TABLE_IS_READ_ONLY
        252,  # TOO_MANY_PARTS
        279,  # ALL_CONNECTION_TRIES_FAILED
        285,  # TOO_FEW_LIVE_REPLICAS
        319,  # UNKNOWN_STATUS_OF_INSERT
        425,  # SYSTEM_ERROR
        999,  # KEEPER_EXCEPTION
    }
)
_READ_RETRIES = (0.05, 0.25)


class Storage(Protocol):
    """What central needs from a ClickHouse engine; :class:`Store` implements it."""

    engine: str

    def query(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> list[tuple]: ...

    def raw_query(self, sql: str, parameters: dict | None, fmt: str) -> bytes: ...

    def command(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any: ...

    def insert(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str], settings: dict | None = None,
        column_oriented: bool = False,
    ) -> None: ...

    def close(self) -> None: ...


def _translate(exc: BaseException, what: str) -> StorageError:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    text = text if len(text) <= 300 else text[:297] + "..."
    # clickhouse-connect puts the server's error code on its errors (from the HTTP header, or
    # from chDB's message); None for transport errors and for errors raised outside the engine.
    code = exc.code if isinstance(exc, ch_errors.Error) else None
    if isinstance(exc, OSError) or (
        isinstance(exc, ch_errors.OperationalError) and (code is None or code in _TRANSIENT_CODES)
    ):
        return StorageUnavailable("%s: ClickHouse unavailable: %s" % (what, text))
    if code in _TRANSIENT_CODES:
        return StorageUnavailable("%s: %s" % (what, text), code)
    return StorageError("%s: %s" % (what, text), code)


class Store:
    """A clickhouse-connect client for one URL, with its own executor for asyncio callers."""

    def __init__(self, url: str, workers: int = 4):
        self.url = url
        self.engine = "chdb" if url.startswith("chdb:") else "server"
        self._local = threading.local()  # .client: this thread's
        self._clients: list[Any] = []  # every thread's, to close them all
        self._lock = threading.RLock()
        self._workers = max(1, workers)
        self._executor = ThreadPoolExecutor(self._workers, thread_name_prefix="clickhouse")
        self._closed = False
        #: Time of the last statement that failed as unavailable (0 = none since success).
        self.last_failure = 0.0

    # -- connection -------------------------------------------------------------------

    def _get(self) -> Any:
        """This thread's client, connected on first use."""
        client = getattr(self._local, "client", None)
        if client is not None and not self._closed:
            return client
        with self._lock:
            if self._closed:
                raise StorageUnavailable("the store is closed")
            try:
                client = clickhouse_connect.get_client(
                    dsn=self.url, settings={"max_execution_time": 60} if self.engine == "server" else None
                )
            except (ch_errors.ClickHouseError, OSError, RuntimeError) as exc:
                # chdb refuses a busy path or a second directory with a RuntimeError, which
                # clickhouse-connect (1.12) wraps in a ProgrammingError: unavailable here.
                if isinstance(exc, RuntimeError) or (
                    self.engine == "chdb" and isinstance(exc, ch_errors.ProgrammingError)
                ):
                    raise StorageUnavailable("connect: cannot open %s: %s" % (self._safe_url(), exc)) from None
                raise self._failed(exc, "connect") from None
            self._clients.append(client)
        self._local.client = client
        return client

    def _drop(self) -> None:
        """Forget this thread's client (its next statement reconnects)."""
        client, self._local.client = getattr(self._local, "client", None), None
        if client is None:
            return
        with self._lock:
            if client in self._clients:
                self._clients.remove(client)
        try:
            client.close()
        except Exception:  # a client that failed is closed as well as it can be
            logger.debug("closing a failed client", exc_info=True)

    def _safe_url(self) -> str:
        return re.sub(r"//[^@/]*@", "//***@", self.url)

    def _failed(self, exc: BaseException, what: str) -> StorageError:
        err = _translate(exc, what)
        if isinstance(err, StorageUnavailable):
            self.last_failure = time.monotonic()
            if self.engine == "server":
                self._drop()  # the next call reconnects (and re-checks the server)
        return err

    # -- synchronous API (CLI tools, background threads) ------------------------------

    def query(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> list[tuple]:
        """Rows of a SELECT; transient failures are retried briefly, then raised."""
        return self._read(lambda client: client.query(sql, parameters=parameters, settings=settings).result_rows)

    def raw_query(self, sql: str, parameters: dict | None, fmt: str) -> bytes:
        """A SELECT's result as ClickHouse writes it in format ``fmt`` (CSVWithNames,
        JSONEachRow, Parquet...); retried like :meth:`query`."""
        return self._read(lambda client: client.raw_query(sql, parameters=parameters, fmt=fmt))

    def _read(self, call: Callable[[Any], Any]) -> Any:
        for attempt, pause in enumerate((*_READ_RETRIES, None)):
            try:
                result = call(self._get())
                self.last_failure = 0.0
                return result
            except StorageError as exc:
                failure = exc
            except (ch_errors.ClickHouseError, OSError) as exc:
                failure = self._failed(exc, "query")
            if not isinstance(failure, StorageUnavailable) or pause is None:
                raise failure
            logger.debug("query retry %d after: %s", attempt + 1, failure)
            time.sleep(pause)
        raise AssertionError("unreachable")

    def connect_all(self, timeout: float = 30.0) -> int:
        """Connect a client in each of the executor's threads now, not in the first requests
        (measured on chDB: 11 ms a client, the slowest of the first requests after a start).
        Best effort: a thread that cannot connect now connects on first use. Returns how
        many clients there are."""
        barrier = threading.Barrier(self._workers)

        def connect() -> None:
            try:
                self._get()
                barrier.wait(timeout)  # each task in a thread of its own
            except (StorageError, threading.BrokenBarrierError) as exc:
                barrier.abort()
                logger.debug("store: a thread's client not connected in advance: %s", exc)

        for future in [self._executor.submit(connect) for _ in range(self._workers)]:
            future.result()
        with self._lock:
            return len(self._clients)

    def command(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        """Run DDL or another statement once (no retry: the caller knows if it is idempotent)."""
        try:
            result = self._get().command(sql, parameters=parameters, settings=settings)
        except (ch_errors.ClickHouseError, OSError) as exc:
            raise self._failed(exc, "command") from None
        self.last_failure = 0.0
        return result

    def insert(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str], settings: dict | None = None,
        column_oriented: bool = False,
    ) -> None:
        """Insert rows once; pass ``insert_deduplication_token`` in settings to make retries safe.
        ``column_oriented``: ``rows`` is one sequence per column (no pivot of rows into columns,
        which clickhouse-connect does in one C call holding the GIL: 50-120 ms for 50,000 rows)."""
        if not rows or (column_oriented and not rows[0]):
            return
        try:
            self._get().insert(table, rows, column_names=list(column_names), settings=settings,
                               column_oriented=column_oriented)
        except (ch_errors.ClickHouseError, OSError) as exc:
            raise self._failed(exc, "insert into %s" % table) from None
        self.last_failure = 0.0

    def ping(self) -> bool:
        try:
            self.query("SELECT 1")
        except StorageError:
            return False
        return True

    def close(self) -> None:
        with self._lock:
            self._closed = True
        self._executor.shutdown(wait=True)
        with self._lock:
            clients, self._clients = self._clients, []
        for client in clients:
            client.close()

    # -- asyncio API ------------------------------------------------------------------

    async def arun(self, call: Callable[..., Any], *args: Any) -> Any:
        """A function of several statements, run in this store's threads."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, call, *args)

    async def aquery(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> list[tuple]:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.query, sql, parameters, settings)

    async def araw_query(self, sql: str, parameters: dict | None, fmt: str) -> bytes:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.raw_query, sql, parameters, fmt)

    async def acommand(self, sql: str, parameters: dict | None = None, settings: dict | None = None) -> Any:
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._executor, self.command, sql, parameters, settings)

    async def ainsert(
        self, table: str, rows: Sequence[Sequence[Any]], column_names: Sequence[str], settings: dict | None = None,
        column_oriented: bool = False,
    ) -> None:
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self.insert, table, rows, column_names, settings, column_oriented)


def open_store(config: Any) -> Store:
    """The store a :class:`~central.config.Config` describes (connects lazily)."""
    return Store(config.clickhouse_url, workers=config.query_workers)
