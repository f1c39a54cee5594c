"""Fixtures that start real services: mosquitto on a free port, chDB in a temp dir."""

from __future__ import annotations

from pathlib import Path

import clickhouse_connect
import pytest
from hypothesis import settings

from tests.harness import Mosquitto


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


@pytest.fixture
def chdb_path(tmp_path: Path) -> Path:
    """A fresh directory for an embedded ClickHouse (chDB) store."""
    path = tmp_path / "chdb"
    path.mkdir()
    return path


@pytest.fixture
def chdb_client(chdb_path: Path):
    """A clickhouse-connect client on a fresh chDB store.

    chDB runs one engine per process and per data directory, so the client is closed at
    teardown; code under test that opens the same path in this process shares the engine.
    """
    client = clickhouse_connect.get_client(dsn="chdb://%s" % chdb_path)
    yield client
    client.close()


# Shared CI machines are slow at times: hypothesis judges inputs, not wall-clock time.
settings.register_profile("heatmap", deadline=None)
settings.load_profile("heatmap")
