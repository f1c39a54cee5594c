"""Fixtures for central: a Config on a temp chDB store, the app on a real aiohttp server, and
a webhook receiver for alerts."""

from __future__ import annotations

import dataclasses
import types

import pytest

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


@pytest.fixture
def config(tmp_path, chdb_url) -> Config:
    sites = tmp_path / "sites.toml"
    sites.write_text(SITES_TOML)
    return Config(data_dir=str(tmp_path), clickhouse_url=chdb_url,
                  sites_file=str(sites), cache_ttl=0, cache_ttl_past=0)


@pytest.fixture
def make_client(aiohttp_client, config):
    """``await make_client(**config_overrides)``: a test client on a real server."""

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
