"""GET /api/v1/export: CSV, NDJSON and Parquet rows per (zone, bucket) against the zoneinfo
oracle, over clock-change days and chunk boundaries, with its headers and errors."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import socket
from datetime import date, datetime, timezone

import pytest
from zoneinfo import ZoneInfo

from central import export
from central.state import RANGES, SITES
from tests.central._range import get, load, range_app, world_for
from tests.central.conftest import services
from tests.harness import eventually_async


@pytest.fixture
async def client(make_client, tmp_path):
    return await range_app(make_client, tmp_path)


def expected_rows(world, tz, first, last, kind):
    rows = []
    for b in world.buckets(tz, first, last, kind):
        start = datetime.fromisoformat(b["start"])
        for cam in sorted(b["per_zone"]):
            z = b["per_zone"][cam]
            rows.append({"site": world.site, "zone": cam,
                         "bucket_start_utc": start.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
                         "bucket_start_local": b["start"], "peak": z["peak"], "events": z["events"],
                         **{t: n for t, n in z["triggers"].items() if n}})
    return rows


def normalise(rows, names):
    """CSV rows (trigger columns ``trigger:NAME``) as the oracle's rows, zero counts dropped."""
    out = []
    for r in rows:
        row = {k: v for k, v in r.items() if k in export.FIXED_COLUMNS}
        row["peak"], row["events"] = int(row["peak"]), int(row["events"])
        row.update({t: int(r[export.TRIGGER_PREFIX + t]) for t in names if int(r[export.TRIGGER_PREFIX + t])})
        out.append(row)
    return out


def flatten(rows):
    """NDJSON rows (the counts in ``triggers``) as the oracle's rows."""
    out = []
    for r in rows:
        row = {k: v for k, v in r.items() if k != "triggers"}
        row["peak"], row["events"] = int(row["peak"]), int(row["events"])
        row.update({t: int(n) for t, n in r["triggers"].items()})
        out.append(row)
    return out


def trigger_columns(fieldnames):
    assert fieldnames[:6] == list(export.FIXED_COLUMNS)
    assert all(c.startswith(export.TRIGGER_PREFIX) for c in fieldnames[6:])
    return [c[len(export.TRIGGER_PREFIX):] for c in fieldnames[6:]]


@pytest.mark.parametrize(("site", "first", "last", "kind"), [
    ("LONDON", date(2026, 10, 24), date(2026, 10, 26), "slot"),
    ("LONDON", date(2026, 10, 24), date(2026, 10, 26), "hour"),
    ("CHATHAM", date(2026, 4, 4), date(2026, 4, 6), "hour"),
    ("KATHMANDU", date(2026, 1, 5), date(2026, 1, 6), "day"),
    ("NEW_YORK", date(2026, 3, 7), date(2026, 3, 9), "hour"),
])
async def test_csv_and_ndjson_match_the_oracle(client, site, first, last, kind):
    tz = ZoneInfo(client.server.app[SITES].get(site).timezone)
    world = world_for(site, tz, first, last, n=800)
    await load(client, world)
    want = expected_rows(world, tz, first, last, kind)
    url = "/api/v1/export/%s?from=%s&to=%s&bucket=%s" % (site, first, last, kind)
    resp = await client.get(url + "&format=csv")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
    assert resp.headers["Content-Disposition"] == 'attachment; filename="%s_%s_%s_%s.csv"' % (site, first, last, kind)
    reader = csv.DictReader(io.StringIO(await resp.text()))
    triggers = trigger_columns(reader.fieldnames)
    assert sorted(triggers) == triggers and set(triggers) == {"CROWD_VIOLATION", "RESTRICTED_ACCESS",
                                                             "UNAUTHORIZED_STRANGER"}
    assert normalise(list(reader), triggers) == want
    resp = await client.get(url + "&format=ndjson")
    assert resp.headers["Content-Type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in (await resp.text()).splitlines()]
    assert flatten(lines) == want


async def test_chunks_join_into_one_file(client, monkeypatch):
    monkeypatch.setattr(export, "CHUNK_DAYS", 2)  # five chunks over nine days
    tz = ZoneInfo("Europe/London")
    first, last = date(2026, 10, 20), date(2026, 10, 28)
    world = world_for("LONDON", tz, first, last, n=1500, seed=7)
    await load(client, world)
    resp = await client.get("/api/v1/export/LONDON?from=%s&to=%s&bucket=slot&zone=A" % (first, last))
    text = await resp.text()
    assert text.count('"site"') == 1 and text.startswith('"site","zone"')  # one header line
    rows = list(csv.DictReader(io.StringIO(text)))
    triggers = trigger_columns(list(rows[0]))
    assert normalise(rows, triggers) == [r for r in expected_rows(world, tz, first, last, "slot") if r["zone"] == "A"]
    assert resp.headers["Content-Disposition"].endswith('LONDON_A_2026-10-20_2026-10-28_slot.csv"')


async def test_parquet_is_one_valid_file(client):
    tz = ZoneInfo("Asia/Kolkata")
    world = world_for("KOLKATA", tz, date(2026, 1, 5), date(2026, 1, 6), n=300)
    await load(client, world)
    resp = await client.get("/api/v1/export/KOLKATA?from=2026-01-05&to=2026-01-06&bucket=hour&format=parquet")
    body = await resp.read()
    assert resp.status == 200 and resp.headers["Content-Type"] == "application/vnd.apache.parquet"
    assert body[:4] == b"PAR1" and body[-4:] == b"PAR1"
    # Read it back with the engine itself: same rows as the CSV.
    rows = services(client).store.query(
        "SELECT sum(events), max(peak), count() FROM format(Parquet, {data:String})", {"data": body})
    want = expected_rows(world, tz, date(2026, 1, 5), date(2026, 1, 6), "hour")
    assert rows[0] == (sum(r["events"] for r in want), max(r["peak"] for r in want), len(want))


# Names of the export's fixed columns and of its statement's own columns, and hostile ones.
RAW_TRIGGERS = (["cam_name", "b", "o", "site"], ["trigger_site", "b", "peak", "events", "zone", "triggers"])
EDGE_TRIGGERS = {'a"b': 1, "back`tick": 2, "co,mma": 3, "new\nline": 4, "it's": 5, "trigger:site": 6, "x\\y": 7,
                 "=1+1": 8}


def hostile_rows(bucket):
    """What the export of 2026-01-05 at LONDON (UTC in January) holds: cam A from raw at
    10:05 and 10:20, cam B from an edge state at 11:00."""
    a1 = {"peak": 3, "events": 1, "triggers": dict.fromkeys(RAW_TRIGGERS[0], 1)}
    a2 = {"peak": 5, "events": 1, "triggers": dict.fromkeys(RAW_TRIGGERS[1], 1)}
    both = {"peak": 5, "events": 2, "triggers": {t: 1 + (t == "b") for t in RAW_TRIGGERS[0] + RAW_TRIGGERS[1]}}
    b = {"peak": 4, "events": 36, "triggers": EDGE_TRIGGERS}
    starts = {"slot": ("10:00", "10:15", "11:00"), "hour": ("10:00", None, "11:00"), "day": ("00:00", None, "00:00")}
    first, second, third = starts[bucket]
    rows = [("A", first, a1 if second else both)] + ([("A", second, a2)] if second else []) + [("B", third, b)]
    if bucket == "day":
        rows.sort(key=lambda r: r[0])
    return [{"site": "LONDON", "zone": zone, "bucket_start_utc": "2026-01-05T%s:00Z" % at,
             "bucket_start_local": "2026-01-05T%s:00+00:00" % at, **counts} for zone, at, counts in rows]


@pytest.mark.parametrize("bucket", ["slot", "hour", "day"])
async def test_trigger_names_stay_values_in_every_format(client, bucket):
    """A trigger called like a column (``cam_name``, ``b``, ``o``, ``site`` with
    ``trigger_site``) or with quotes, backticks, commas or a newline is a count under its
    name, never a column of the statement nor a header next to the fixed ones."""
    at = datetime(2026, 1, 5, 10, 5, tzinfo=timezone.utc).timestamp()
    resp = await client.post("/api/v1/events", json=[
        {"site": "LONDON", "camera": "A", "timestamp": at, "people_count": 3, "triggers": RAW_TRIGGERS[0]},
        {"site": "LONDON", "camera": "A", "timestamp": at + 900, "people_count": 5, "triggers": RAW_TRIGGERS[1]}])
    assert resp.status == 201, await resp.text()
    # The customer's own writers are not held to the name rule: an edge state with any names.
    slot = datetime(2026, 1, 5, 11, tzinfo=timezone.utc)
    services(client).slots.write_states([["LONDON", "dev1", "B", slot, 4, 36, EDGE_TRIGGERS, 1, slot]])
    want = hostile_rows(bucket)
    names = sorted(set(RAW_TRIGGERS[0] + RAW_TRIGGERS[1]) | set(EDGE_TRIGGERS))
    url = "/api/v1/export/LONDON?from=2026-01-05&to=2026-01-05&bucket=" + bucket

    resp = await client.get(url + "&format=csv")
    assert resp.status == 200, await resp.text()
    reader = csv.DictReader(io.StringIO(await resp.text(), newline=""))
    assert reader.fieldnames == [*export.FIXED_COLUMNS, *(export.TRIGGER_PREFIX + n for n in names)]
    got = [{**{k: r[k] for k in export.FIXED_COLUMNS},
            "triggers": {n: int(r[export.TRIGGER_PREFIX + n]) for n in names if int(r[export.TRIGGER_PREFIX + n])}}
           for r in reader]
    assert got == [{**r, "peak": str(r["peak"]), "events": str(r["events"])} for r in want]

    resp = await client.get(url + "&format=ndjson")
    assert resp.status == 200, await resp.text()
    assert [json.loads(line) for line in (await resp.text()).splitlines()] == want

    resp = await client.get(url + "&format=parquet")
    assert resp.status == 200, await resp.text()
    rows = services(client).store.query(
        "SELECT site, zone, bucket_start_utc, bucket_start_local, peak, events, triggers "
        "FROM format(Parquet, {data:String})", {"data": await resp.read()})
    assert [dict(zip(("site", "zone", "bucket_start_utc", "bucket_start_local", "peak", "events", "triggers"),
                     r, strict=True)) for r in rows] == want


async def test_an_empty_range_is_a_header_only_csv(client):
    resp = await client.get("/api/v1/export/LONDON?from=2026-01-05&to=2026-01-05&bucket=hour")
    assert resp.status == 200
    assert (await resp.text()).splitlines() == ['"site","zone","bucket_start_utc","bucket_start_local","peak","events"']


@pytest.mark.parametrize(("query", "code"), [
    ("from=2025-01-01&to=2026-01-02", "range_too_long"),
    ("from=2026-01-01&to=2026-01-02&bucket=week", "bad_bucket"),
    ("from=2026-01-01&to=2026-01-02&format=xlsx", "bad_format"),
    ("to=2026-01-02", "missing_parameter"),
    ("from=2026-01-01&to=2026-01-02&format=csv&format=parquet", "repeated_parameter"),
    ("from=2026-01-01&to=2026-01-02&from=2026-01-02", "repeated_parameter"),
])
async def test_bad_export_requests(client, query, code):
    body = await get(client, "/api/v1/export/LONDON?" + query, 400)
    assert body["error"]["code"] == code


async def test_storage_failing_midway_breaks_the_download(client, monkeypatch):
    from aiohttp import ClientPayloadError

    from central.exceptions import StorageUnavailable
    from central.storage.store import Store

    world = world_for("LONDON", ZoneInfo("Europe/London"), date(2026, 1, 1), date(2026, 3, 31), n=500)
    await load(client, world)
    real = Store.raw_query
    calls = []

    def flaky(self, sql, parameters, fmt):
        calls.append(fmt)
        if len(calls) == 2:
            raise StorageUnavailable("query: connection refused")
        return real(self, sql, parameters, fmt)

    monkeypatch.setattr(Store, "raw_query", flaky)
    resp = await client.get("/api/v1/export/LONDON?from=2026-01-01&to=2026-03-31&bucket=slot")
    assert resp.status == 200  # the first chunk went out
    with pytest.raises(ClientPayloadError):
        await resp.read()
    # Before any byte, the same failure is a JSON 503.
    calls.clear()
    calls.append("pretend one call already")
    resp = await client.get("/api/v1/export/LONDON?from=2026-01-01&to=2026-01-02&bucket=slot")
    assert resp.status == 503 and (await resp.json())["error"]["code"] == "storage_unavailable"


async def stalled_get(port: int, path: str):
    """A client that asks for ``path``, then reads nothing (a 4 KiB receive window)."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock)
    writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
    await writer.drain()
    return reader, writer


async def test_a_reader_that_stops_is_cut_and_its_place_and_memory_freed(make_client, tmp_path, monkeypatch):
    """Issue 27, item 3: an export whose client reads nothing is cut after the write
    timeout; meanwhile it holds one of HEATMAP_MAX_EXPORTS places (503 busy past them);
    once the last export is over the memory goes back to the OS."""
    import central.memory

    trims = []
    monkeypatch.setattr(central.memory, "give_memory_back", lambda: trims.append(1))
    monkeypatch.setattr(central.memory, "TRIM_AFTER", 1 << 20)
    # The timeout leaves time for the two busy answers below on a loaded machine.
    client = await range_app(make_client, tmp_path, max_exports=1, export_write_timeout=3)
    real_chunks = export.Exporter.chunks
    big = {"on": True}

    async def chunks(self, site, req):
        if not big["on"]:
            async for chunk in real_chunks(self, site, req):
                yield chunk
            return
        for _ in range(64):  # 64 MB: more than the socket buffers of both ends hold
            yield b"x" * (1 << 20)

    monkeypatch.setattr(export.Exporter, "chunks", chunks)
    path = "/api/v1/export/LONDON?from=2026-01-05&to=2026-01-05"
    gate = client.server.app[RANGES].value.exporter.gate
    reader, writer = await stalled_get(client.server.port, path)
    await eventually_async(lambda: gate.running == 1, message="the stalled export running")
    body = await get(client, path, 503)
    assert body["error"]["code"] == "busy"
    resp = await client.get(path)
    assert resp.status == 503 and resp.headers["Retry-After"] == "5"
    await eventually_async(lambda: gate.running == 0, message="the stalled export cut")
    got = 0
    try:
        while chunk := await reader.read(1 << 20):
            got += len(chunk)
    except ConnectionError:
        pass
    writer.close()
    assert 0 < got < 64 << 20  # cut: never the whole file
    metrics = await (await client.get("/metrics")).text()
    assert 'heatmap_http_timeouts_total{kind="export"} 1.0' in metrics
    await eventually_async(lambda: trims == [1], message="the memory given back")
    # The place is free again for a client that reads.
    big["on"] = False
    resp = await client.get(path)
    assert resp.status == 200 and (await resp.text()).startswith('"site","zone"')
