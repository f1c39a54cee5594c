"""Helpers of the range-view tests: a sites file with zones in many time zones, a client on
it, and loading an oracle's rows into central (raw through the API, edge states as the
consumer writes them)."""

from __future__ import annotations

import json
from datetime import date, datetime, timezone

from zoneinfo import ZoneInfo

from central.app import OPENAPI_PATH
from tests.central._openapi import check, response_schema
from tests.central._oracle import World, local_bounds
from tests.central.conftest import services

__all__ = ["SITES", "range_app", "load", "get", "world_for"]

_DOC = json.loads(OPENAPI_PATH.read_text())

SITES = """
[sites.LONDON]
timezone = "Europe/London"
[sites.LONDON.zones.A]
capacity = 20
[sites.LONDON.zones.B]
capacity = 10
[sites.NEW_YORK]
timezone = "America/New_York"
[sites.KOLKATA]
timezone = "Asia/Kolkata"
[sites.KATHMANDU]
timezone = "Asia/Kathmandu"
[sites.CHATHAM]
timezone = "Pacific/Chatham"
[sites.CAP]
timezone = "UTC"
intensity = "capacity"
[sites.CAP.zones.A]
capacity = 10
"""


async def range_app(make_client, tmp_path, **overrides):
    """A client on a real server whose sites file is :data:`SITES`."""
    path = tmp_path / "range_sites.toml"
    path.write_text(SITES)
    return await make_client(sites_file=str(path), **overrides)


async def load(client, world: World) -> None:
    for i in range(0, len(world.raw), 5000):
        resp = await client.post("/api/v1/events", json=world.raw[i:i + 5000])
        assert resp.status in (200, 201), await resp.text()
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    rows = [[world.site, "dev1", cam, slot, peak, events, trig, 1, now]
            for (cam, slot), (peak, events, trig) in world.edge.items()]
    services(client).slots.write_states(rows)


async def get(client, path, status=200):
    """GET a JSON range view; the status and body must match the OpenAPI document."""
    resp = await client.get(path)
    assert resp.status == status, await resp.text()
    body = await resp.json()
    bare = path.split("?")[0]
    template = bare if bare in _DOC["paths"] else bare.rsplit("/", 1)[0] + "/{site_name}"
    assert check(_DOC, response_schema(_DOC, template, "get", resp.status), body) == []
    return body


def world_for(site: str, tz: ZoneInfo, first: date, last: date, n: int = 1500, seed: int = 1) -> World:
    world = World(site, seed)
    lo, hi = local_bounds(tz, first, last)
    world.random_raw(lo - 7200, hi + 7200, n)  # some events just outside the range
    world.random_edge(lo, hi, 40)
    return world


