"""Defects a careless or hostile HTTP client found (issue 13), each against the real app on a
real aiohttp server and the real engine (chDB): nothing accepted is lost, nothing answers
5xx or aiohttp's plain text, and malformed HTTP (sent as raw bytes on a socket) gets the
documented JSON error.
"""

from __future__ import annotations

import argparse
import io
import json
from datetime import datetime, timezone

import pytest

from central.reconcile import EXIT_CONSISTENT, add_arguments, run
from tests.central.conftest import services
from tests.central.test_api import PLAIN_CAMERA_EVENTS, conforms

DUP = {"site_name": "DUPTEST", "cam_name": "DOOR", "people_count": 2, "event_timestamp": 1767600123,
       "event_triggers": []}


async def raw_count(client, site: str = "DUPTEST") -> int:
    rows = await services(client).store.aquery(
        "SELECT count() FROM camera_events WHERE site_name = {s:String}", {"s": site})
    return rows[0][0]


# -- item 1: an unkeyed insert is never deduplicated ---------------------------------------

@pytest.mark.parametrize("table", ["ours", "plain"])
async def test_identical_unkeyed_posts_are_all_stored(make_client, chdb_client, table):
    if table == "plain":
        chdb_client.command(PLAIN_CAMERA_EVENTS)
    client = await make_client()
    for _ in range(2):
        resp = await client.post("/api/v1/events", json=DUP)
        assert resp.status == 201 and await resp.json() == {"accepted": 1}
    assert await raw_count(client) == 2
    # Five posts carrying eight events, several of them equal: eight rows.
    for body in ([DUP], [DUP, DUP], [DUP], [DUP, DUP, DUP], [DUP]):
        assert (await client.post("/api/v1/events", json=body)).status == 201
    assert await raw_count(client) == 10
    # Two keys with the same body are two batches; only the same key is one.
    for key in ("k-1", "k-2", "k-2"):
        assert (await client.post("/api/v1/events", json=[DUP], headers={"Idempotency-Key": key})).status in (200, 201)
    assert await raw_count(client) == 12


async def test_reconcile_counts_every_identical_event(make_client, chdb_url, tmp_path):
    client = await make_client()
    for _ in range(2):
        assert (await client.post("/api/v1/events", json=DUP)).status == 201
    slot = DUP["event_timestamp"] // 900 * 900
    await services(client).store.ainsert(
        "slot_states",
        [["DUPTEST", "jetson-1", "DOOR", datetime.fromtimestamp(slot, timezone.utc), 2, 2, {}, 1,
          datetime.now(timezone.utc)]],
        ["site_name", "device_id", "cam_name", "slot", "peak", "events", "triggers", "rev", "received_at"])
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--site", "DUPTEST", "--from", "2026-01-05", "--to", "2026-01-05", "--json",
                              "--clickhouse-url", chdb_url])
    out, err = io.StringIO(), io.StringIO()
    code = run(args, now=slot + 30 * 86400, stdout=out, stderr=err, environ={})
    assert code == EXIT_CONSISTENT, (out.getvalue(), err.getvalue())
    doc = json.loads(out.getvalue())
    assert doc["totals"]["matching"] == 1 and doc["sites"][0]["events"] == {"edge": 2, "raw": 2}
