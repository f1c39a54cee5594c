"""Fixtures that start real services: mosquitto on a free port, a chDB database per test."""

from __future__ import annotations

import itertools
from pathlib import Path

import clickhouse_connect
import pytest
from hypothesis import settings

from tests.harness import Mosquitto, stop_left_clients


@pytest.fixture(autouse=True)
def _stop_left_clients():
    """The paho clients a test handed to ``stopped_at_teardown`` are stopped when it ends."""
    yield
    stop_left_clients()


@pytest.fixture
def mosquitto(tmp_path: Path):
    """A running mosquitto of this test's own; stop(), kill(), start() and restart() work."""
    broker = Mosquitto(tmp_path / "mosquitto").start()
    yield broker
    broker.stop()


@pytest.fixture
def mosquitto_factory(tmp_path: Path):
    """Build brokers with extra config lines: ``mosquitto_factory(["max_queued_messages 5"])``."""
    brokers: list[Mosquitto] = []

    def make(options: list[str] | None = None, start: bool = True) -> Mosquitto:
        broker = Mosquitto(tmp_path / ("mosquitto%d" % len(brokers)), options=options)
        brokers.append(broker)
        return broker.start() if start else broker

    yield make
    for broker in brokers:
        broker.stop()


@pytest.fixture(scope="session")
def chdb_engine(tmp_path_factory):
    """The one embedded ClickHouse engine (chDB) of this pytest process.

    chDB runs one engine per process and per data directory, and an engine that is closed
    and reopened on a new directory leaves threads and file descriptors behind (about 15 a
    time). Past descriptor 1024, paho-mqtt's select() loop silently never connects, so every
    test shares this engine and gets a database of its own instead (``chdb_url``).
    """
    path = tmp_path_factory.mktemp("chdb")
    admin = clickhouse_connect.get_client(dsn="chdb://%s" % path)
    yield path, admin
    admin.close()


_databases = itertools.count(1)


@pytest.fixture
def chdb_url(chdb_engine) -> str:
    """A clickhouse-connect URL of a fresh, empty database on the process's chDB engine.

    Code under test opens it like any store URL; the database is dropped at teardown.
    """
    path, admin = chdb_engine
    database = "test_%d" % next(_databases)
    admin.command("CREATE DATABASE %s" % database)
    yield "chdb://%s?database=%s" % (path, database)
    admin.command("DROP DATABASE IF EXISTS %s SYNC" % database)


@pytest.fixture
def chdb_client(chdb_url: str):
    """A clickhouse-connect client on this test's fresh chDB database."""
    client = clickhouse_connect.get_client(dsn=chdb_url)
    yield client
    client.close()


# Shared CI machines are slow at times: hypothesis judges inputs, not wall-clock time.
settings.register_profile("heatmap", deadline=None)
settings.load_profile("heatmap")
