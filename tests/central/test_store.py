"""The store on the real engine, and its error translation against an unreachable server."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver import exceptions as ch_errors

from central.exceptions import StorageError, StorageUnavailable
from central.store import Store, _translate
from tests.harness import free_port


async def test_async_and_sync_calls_on_chdb(chdb_url):
    store = Store(chdb_url)
    try:
        assert store.engine == "chdb"
        store.command("CREATE TABLE t (a String, n UInt32) ENGINE = MergeTree ORDER BY a")
        await store.ainsert("t", [["x", 1], ["y", 2]], ["a", "n"])
        rows = await store.aquery("SELECT n FROM t WHERE a = {a:String}", {"a": "y"})
        assert rows == [(2,)]
        # A hostile value stays a value.
        assert store.query("SELECT count() FROM t WHERE a = {a:String}", {"a": "x' OR 1=1 --"}) == [(0,)]
        with pytest.raises(StorageError) as info:
            store.query("SELECT * FROM no_such_table")
        assert not isinstance(info.value, StorageUnavailable)
        assert store.ping()
    finally:
        store.close()


def test_unreachable_server_is_unavailable_not_a_crash():
    store = Store("http://127.0.0.1:%d" % free_port(), workers=1)
    try:
        with pytest.raises(StorageUnavailable):
            store.query("SELECT 1")
        assert not store.ping()
        assert store.last_failure > 0
    finally:
        store.close()


def test_a_transient_engine_error_is_unavailable_by_its_code(chdb_url):
    store = Store(chdb_url, workers=1)
    try:
        # MEMORY_LIMIT_EXCEEDED (241): the engine is short of room now, the statement is fine.
        with pytest.raises(StorageUnavailable, match="241"):
            store.command("SELECT number % 1000000 AS k, count() FROM numbers(5000000) GROUP BY k",
                          settings={"max_memory_usage": 1000000})
        assert store.last_failure > 0
        # UNKNOWN_TABLE (60): retrying will not help.
        with pytest.raises(StorageError) as info:
            store.command("SELECT * FROM no_such_table")
        assert not isinstance(info.value, StorageUnavailable)
    finally:
        store.close()


def test_the_code_is_read_from_the_error_not_its_text():
    # With show_clickhouse_errors off, clickhouse-connect keeps the code but not the text.
    hidden = ch_errors.DatabaseError(ch_errors.GENERIC_CLICKHOUSE_ERROR, code=202)
    assert isinstance(_translate(hidden, "query"), StorageUnavailable)
    # A code-like text on an error without a code is not a code.
    assert not isinstance(_translate(ch_errors.DatabaseError("Code: 202. a table named so"), "query"),
                          StorageUnavailable)
    # A transport error (no code) is unavailable; a refused statement (code 62) is not.
    assert isinstance(_translate(ch_errors.OperationalError("connection reset"), "insert"), StorageUnavailable)
    assert not isinstance(_translate(ch_errors.DatabaseError("Syntax error", code=62), "query"),
                          StorageUnavailable)
