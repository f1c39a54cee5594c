"""The store on the real engine, and its error translation against an unreachable server;
how the tests choose their engine (``tests/central/conftest.py``)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest
from clickhouse_connect.driver import exceptions as ch_errors

from central.exceptions import StorageError, StorageUnavailable
from central.storage.store import Store, _translate
from tests.central.conftest import SERVER_URL_VAR, database_url
from tests.harness import eventually, free_port

REPO = Path(__file__).resolve().parents[2]


async def test_async_and_sync_calls_on_the_engine(clickhouse_url):
    store = Store(clickhouse_url)
    try:
        assert store.engine == ("chdb" if clickhouse_url.startswith("chdb:") else "server")
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


def test_a_statement_does_not_wait_behind_another_threads(clickhouse_url):
    """Each thread has its own client: a short read is not queued behind a long statement
    of another thread (the dashboard's read behind the day keeper's recomputation)."""
    import threading

    store = Store(clickhouse_url)
    try:
        store.query("SELECT 1")
        other = threading.Thread(target=store.query, args=("SELECT sleep(2)",))
        other.start()
        eventually(lambda: store.query("SELECT count() FROM system.processes WHERE query LIKE 'SELECT sleep(2)%'")[0][0],
                   message="the long statement never ran")
        assert store.query("SELECT 41 + 1") == [(42,)]
        assert other.is_alive()  # answered while the other statement still ran
        other.join(10)
    finally:
        store.close()
    with pytest.raises(StorageUnavailable):
        store.query("SELECT 1")  # every thread's client is closed


async def test_connect_all_gives_every_worker_thread_its_client(clickhouse_url):
    """After connect_all, statements from the store's threads use the clients made then
    (no first request pays for a connection)."""
    store = Store(clickhouse_url, workers=3)
    try:
        assert store.connect_all() == 3
        made = list(store._clients)
        await asyncio.gather(*(store.aquery("SELECT sleep(0.2)") for _ in range(6)))
        assert store._clients == made
    finally:
        store.close()


def test_connect_all_on_an_unreachable_server_leaves_it_to_the_first_use():
    store = Store("http://127.0.0.1:%d" % free_port(), workers=2)
    try:
        assert store.connect_all(timeout=5) == 0
        with pytest.raises(StorageUnavailable):
            store.query("SELECT 1")
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


def test_a_transient_engine_error_is_unavailable_by_its_code(clickhouse_url):
    store = Store(clickhouse_url, workers=1)
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


def test_a_second_chdb_directory_is_unavailable_not_a_bad_statement(chdb_url, tmp_path):
    # This process's engine is open on chdb_url's directory; chDB admits one per process.
    store = Store("chdb://%s" % (tmp_path / "other"), workers=1)
    try:
        with pytest.raises(StorageUnavailable, match=r"connect: cannot open chdb://.*other"):
            store.query("SELECT 1")
    finally:
        store.close()


def test_a_test_database_on_a_server_keeps_the_rest_of_the_url():
    assert (database_url("https://heat:pw@ch.example:8443/default?compress=0", "heatmap_test_1_2")
            == "https://heat:pw@ch.example:8443/heatmap_test_1_2?compress=0")
    assert database_url("http://ch:8123", "heatmap_test_1_3") == "http://ch:8123/heatmap_test_1_3"


@pytest.mark.slow
def test_an_unreachable_test_server_skips_the_storage_tests_with_the_reason():
    env = dict(os.environ)
    env[SERVER_URL_VAR] = "http://heat:s3cret@127.0.0.1:%d/default" % free_port()
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/central/test_store.py::test_async_and_sync_calls_on_the_engine",
         "tests/central/test_store.py::test_the_code_is_read_from_the_error_not_its_text"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # The test that needs the engine is skipped, saying why; the one that does not still runs.
    assert "1 passed, 1 skipped" in proc.stdout, proc.stdout
    assert "%s=http://heat:***@127.0.0.1:" % SERVER_URL_VAR in proc.stdout
    assert "the ClickHouse server is unreachable" in proc.stdout and "s3cret" not in proc.stdout
