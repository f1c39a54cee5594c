"""Fixtures for central: a Config on a fresh ClickHouse database, the app on a real aiohttp
server, and a webhook receiver for alerts.

The engine: chDB by default (a database of its own per test on the process's engine, so
these tests always run); a ClickHouse server when ``HEATMAP_TEST_CLICKHOUSE_URL`` is set
(``http://user:pass@host:8123/db``), with a fresh database per test named
``heatmap_test_<run>_<n>`` and dropped after it, as clickhouse-connect's own integration tests
pick their target from ``CLICKHOUSE_CONNECT_TEST_*``. A set URL whose server does not answer
skips these tests with the reason, once per run.
"""

from __future__ import annotations

import dataclasses
import itertools
import os
import random
import re
import time
import types
from urllib.parse import urlsplit, urlunsplit

import clickhouse_connect
import pytest
from clickhouse_connect.driver import exceptions as ch_errors

import central.app
import central.storage.answers
import central.storage.derived
from central.app import create_app
from central.config import Config
from central.state import (
    ALERT_RULES,
    ALERTS,
    CONFIG,
    CONSUMER,
    DASHBOARD,
    INGESTOR,
    SCHEMA,
    SITES,
    SLOTS,
    STORE,
)
from tests.harness import WebhookReceiver

SITES_TOML = """
[defaults]
timezone = "UTC"
high = 7
medium = 4

[sites.HEAD_OFFICE]
display_name = "Head office"
timezone = "UTC"

[sites.HEAD_OFFICE.zones.EMPLOYEE_AREA]
display_name = "Employee Area"
high = 10
medium = 5
x = 0
y = 0
w = 2
h = 1

[sites.KOLKATA]
timezone = "Asia/Kolkata"

[sites.LONDON]
timezone = "Europe/London"

[sites.KATHMANDU]
timezone = "Asia/Kathmandu"
"""


SERVER_URL_VAR = "HEATMAP_TEST_CLICKHOUSE_URL"
_server_databases = itertools.count(1)


def _hide_password(url: str) -> str:
    return re.sub(r"//([^:@/]*):[^@/]*@", r"//\1:***@", url)


def database_url(url: str, database: str) -> str:
    """``url`` with its database (the path) replaced by ``database``; the rest kept."""
    return urlunsplit(urlsplit(url)._replace(path="/" + database))


@pytest.fixture(scope="session")
def clickhouse_server():
    """(admin client, URL, run prefix) of the server ``HEATMAP_TEST_CLICKHOUSE_URL`` names;
    the tests that use it are skipped (with the reason) when it does not answer."""
    url = os.environ[SERVER_URL_VAR]
    try:
        admin = clickhouse_connect.get_client(dsn=url, connect_timeout=5, send_receive_timeout=30)
        admin.query("SELECT 1")
    except (ch_errors.ClickHouseError, OSError) as exc:
        reason = (str(exc).splitlines() or [type(exc).__name__])[0]
        pytest.skip("%s=%s: the ClickHouse server is unreachable: %s"
                    % (SERVER_URL_VAR, _hide_password(url), reason if len(reason) <= 240 else reason[:237] + "..."))
    prefix = "heatmap_test_%d_%d" % (random.randint(100000, 999999), int(time.time() * 1000))
    yield admin, url, prefix
    admin.close()


@pytest.fixture
def clickhouse_url(request) -> str:
    """The URL of a fresh, empty ClickHouse database for this test: on the ClickHouse server
    of ``HEATMAP_TEST_CLICKHOUSE_URL`` when it is set, else on the process's chDB engine."""
    if not os.environ.get(SERVER_URL_VAR):
        yield request.getfixturevalue("chdb_url")
        return
    admin, url, prefix = request.getfixturevalue("clickhouse_server")
    database = "%s_%d" % (prefix, next(_server_databases))
    admin.command("CREATE DATABASE %s" % database)
    yield database_url(url, database)
    admin.command("DROP DATABASE IF EXISTS %s SYNC" % database)


@pytest.fixture
def clickhouse_client(clickhouse_url: str):
    """A clickhouse-connect client on this test's fresh database (chDB or the server)."""
    client = clickhouse_connect.get_client(dsn=clickhouse_url)
    yield client
    client.close()


@pytest.fixture
def config(tmp_path, clickhouse_url) -> Config:
    sites = tmp_path / "sites.toml"
    sites.write_text(SITES_TOML)
    # Tests post events on fixed dates: no bound on their age, so they pass in any year
    # (test_api.py tests the bound itself, relative to the clock).
    return Config(data_dir=str(tmp_path), clickhouse_url=clickhouse_url,
                  sites_file=str(sites), cache_ttl=0, cache_ttl_past=0, max_event_age_days=0)


@pytest.fixture
def make_client(config, aiohttp_client):
    """``await make_client(**config_overrides)``: a test client on a real server (config, and
    so the database, first: the clients close before the database is dropped)."""

    async def make(**overrides):
        app = create_app(dataclasses.replace(config, **overrides))
        client = await aiohttp_client(app)
        return client

    return make


@pytest.fixture
async def client(make_client):
    return await make_client()


@pytest.fixture
def receiver():
    """A real aiohttp webhook receiver (alerts), in a thread of its own."""
    r = WebhookReceiver().start()
    yield r
    r.close()


def services(client):
    """The app's objects under their keys, as attributes (``None`` where not ready)."""
    app = client.server.app
    facts = app[SCHEMA].value
    return types.SimpleNamespace(
        config=app[CONFIG], store=app[STORE], ingestor=app[INGESTOR], dashboard=app[DASHBOARD].value,
        consumer=app[CONSUMER].value, raw_time=facts.raw_time if facts is not None else None,
        sites=app[SITES], alert_rules=app[ALERT_RULES], alerts=app[ALERTS].value, slots=app[SLOTS].value)


@pytest.fixture(params=["kept", "computed"])
def answers_mode(request, monkeypatch):
    """Run a range test twice: on the kept answers, and with none kept (the views compute
    the slot rule when read, as where central may not create the views)."""
    if request.param == "computed":
        monkeypatch.setattr(central.storage.derived.answers, "ensure",
                            lambda *a, **k: central.storage.answers.AnswersStatus(False, "not kept in this test"))
    return request.param
