"""The store on the real engine, and its error translation against an unreachable server."""

from __future__ import annotations

import pytest

from central.exceptions import StorageError, StorageUnavailable
from central.store import Store
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
