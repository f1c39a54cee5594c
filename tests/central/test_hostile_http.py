"""Defects a careless or hostile HTTP client found (issue 13), each against the real app on a
real aiohttp server and the real engine (chDB): nothing accepted is lost, nothing answers
5xx or aiohttp's plain text, and malformed HTTP (sent as raw bytes on a socket) gets the
documented JSON error.
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gzip
import io
import json
import logging
import time
from datetime import datetime, timezone

import pytest
from aiohttp import web

from central.app import create_app
from central.listener import listen
from central.reconcile import EXIT_CONSISTENT, add_arguments, run
from central.state import METRICS
from tests.central.conftest import services
from tests.central.test_api import PLAIN_CAMERA_EVENTS, conforms
from tests.harness import eventually_async, free_port

DUP = {"site_name": "DUPTEST", "cam_name": "DOOR", "people_count": 2, "event_timestamp": 1767600123,
       "event_triggers": []}


async def raw_count(client, site: str = "DUPTEST") -> int:
    rows = await services(client).store.aquery(
        "SELECT count() FROM camera_events WHERE site_name = {s:String}", {"s": site})
    return rows[0][0]


# -- item 1: an unkeyed insert is never deduplicated ---------------------------------------

@pytest.mark.parametrize("table", ["ours", "plain"])
async def test_identical_unkeyed_posts_are_all_stored(make_client, clickhouse_client, table):
    if table == "plain":
        clickhouse_client.command(PLAIN_CAMERA_EVENTS)
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


async def test_reconcile_counts_every_identical_event(make_client, clickhouse_url, tmp_path):
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
                              "--clickhouse-url", clickhouse_url])
    out, err = io.StringIO(), io.StringIO()
    code = run(args, now=slot + 30 * 86400, stdout=out, stderr=err, environ={})
    assert code == EXIT_CONSISTENT, (out.getvalue(), err.getvalue())
    doc = json.loads(out.getvalue())
    assert doc["totals"]["matching"] == 1 and doc["sites"][0]["events"] == {"edge": 2, "raw": 2}


# -- raw sockets against the real listener ------------------------------------------------

TOKEN = "ingest-token-0123"
BODY = json.dumps([DUP]).encode()


class Served:
    def __init__(self, port: int, app: web.Application):
        self.port = port
        self.app = app

    @property
    def metrics(self):
        return self.app[METRICS]

    def count(self, status: str, route: str = "/api/v1/events") -> float:
        return self.metrics.registry.get_sample_value(
            "heatmap_http_requests_total", {"route": route, "status": status}) or 0.0

    def inflight(self) -> float:
        return self.metrics.registry.get_sample_value("heatmap_ingest_inflight_bytes")


@pytest.fixture
async def serve(config):
    """``await serve(**config_overrides)``: the app behind central's own listener on a free port."""
    started = []

    async def start(**overrides) -> Served:
        cfg = dataclasses.replace(config, **overrides)
        app = create_app(cfg)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        port = free_port()
        listener = await listen(runner, cfg, "127.0.0.1", port,
                                on_timeout=lambda kind: app[METRICS].http_timeouts.labels(kind).inc())
        started.append((runner, listener))
        return Served(port, app)

    yield start
    for runner, listener in started:
        listener.close()
        await runner.cleanup()


async def exchange(port: int, data: bytes, timeout: float = 10.0) -> bytes:
    """Send ``data`` and read until the server closes (bounded)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(data)
        return await asyncio.wait_for(reader.read(), timeout)
    finally:
        writer.close()


def parse(raw: bytes) -> tuple[int, dict, dict]:
    head, _, body = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines[1:])}
    assert headers.get("content-type", "").startswith("application/json"), raw[:300]
    return int(lines[0].split()[1]), headers, json.loads(body)


def post(body: bytes = BODY, *extra: str, token: str | None = TOKEN, length: int | None = None) -> bytes:
    lines = ["POST /api/v1/events HTTP/1.1", "Host: x", "Content-Type: application/json",
             "Content-Length: %d" % (len(body) if length is None else length), "Connection: close", *extra]
    if token:
        lines.append("Authorization: Bearer " + token)
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def no_errors(caplog) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.WARNING or r.exc_info]
    assert bad == [], [r.getMessage() for r in bad]


async def wait_for(what: str, ready, timeout: float = 10.0) -> None:
    await eventually_async(ready, timeout, what)


# -- items 4 to 6: the documented JSON 4xx, never 5xx or plain text -----------------------

async def test_undecodable_bearer_token_is_401(serve, caplog):
    served = await serve(ingest_token=TOKEN)
    raw = post(BODY, token=None).replace(b"Connection: close", b"Connection: close\r\nAuthorization: Bearer \xff\xfe")
    status, _headers, doc = parse(await exchange(served.port, raw))
    assert status == 401 and doc["error"]["code"] == "unauthorized"
    no_errors(caplog)


@pytest.mark.parametrize(("request_bytes", "status", "code"), [
    (post(BODY, "Content-Encoding: gzip"), 400, "bad_body"),
    (post(BODY, "Content-Encoding: deflate"), 400, "bad_body"),
    (post(BODY, "Content-Encoding: br"), 415, "unsupported_content_encoding"),
    (post(BODY, "Expect: banana"), 417, "expectation_failed"),
    (b"GET /api/v1/dash\x01board HTTP/1.1\r\nHost: x\r\n\r\n", 400, "bad_request"),
    (b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Long: " + b"a" * 70000 + b"\r\n\r\n", 400, None),
    (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n", 400, "bad_request"),
])
async def test_malformed_requests_get_json_errors(serve, caplog, clickhouse_client, request_bytes, status, code):
    served = await serve(ingest_token=TOKEN)
    got, _, doc = parse(await exchange(served.port, request_bytes))
    assert (got, doc["error"]["code"] if code else None) == (status, code), doc
    no_errors(caplog)
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 0


async def test_good_encodings_and_100_continue_still_work(serve, clickhouse_client):
    served = await serve(ingest_token=TOKEN)
    status, _, doc = parse(await exchange(served.port, post(gzip.compress(BODY), "Content-Encoding: gzip")))
    assert (status, doc) == (201, {"accepted": 1})
    status, _, doc = parse((await exchange(served.port, post(BODY, "Expect: 100-continue"))).split(
        b"HTTP/1.1 100 Continue\r\n\r\n")[-1])
    assert (status, doc) == (201, {"accepted": 1})
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 2


async def test_client_gone_mid_body_is_499_at_info(serve, caplog):
    caplog.set_level(logging.INFO)
    served = await serve(ingest_token=TOKEN)
    _reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
    writer.write(post(b"[" + b" " * 1000, length=100000))
    await wait_for("the handler reading the body", lambda: served.inflight() > 0)
    writer.transport.abort()
    await wait_for("499 counted", lambda: served.count("499") == 1)
    assert served.count("500") == 0
    no_errors(caplog)
    assert any("closed the connection" in r.getMessage() and r.levelno == logging.INFO for r in caplog.records)
    await wait_for("the budget given back", lambda: served.inflight() == 0)


# -- item 7: slow and idle clients are cut off; bodies in flight are capped ----------------

async def closed_after(port: int, data: bytes, timeout: float = 10.0) -> tuple[float, bytes]:
    """Seconds until the server closes a connection that sent ``data``, and what it said."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    started = time.monotonic()
    try:
        writer.write(data)
        got = await asyncio.wait_for(reader.read(), timeout)
        return time.monotonic() - started, got
    finally:
        writer.close()


async def test_silent_partial_and_idle_connections_are_closed(serve, caplog):
    caplog.set_level(logging.INFO)
    served = await serve(http_header_timeout=0.5, http_keepalive_timeout=0.8)
    silent, partial, idle = await asyncio.gather(
        closed_after(served.port, b""),
        closed_after(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n"),
        closed_after(served.port, b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n"),
    )
    for seconds, got in (silent, partial):
        assert 0.4 <= seconds < 5 and got == b""
    assert 0.7 <= idle[0] < 5 and idle[1].startswith(b"HTTP/1.1 200")
    assert served.metrics.registry.get_sample_value("heatmap_http_timeouts_total", {"kind": "header"}) == 2
    no_errors(caplog)


async def test_a_stalled_upload_gets_408_and_gives_its_bytes_back(serve, clickhouse_client):
    served = await serve(http_body_timeout=0.5)
    seconds, got = await closed_after(served.port, post(b"[" + b" " * 100, length=5000, token=None))
    status, headers, doc = parse(got)
    assert (status, doc["error"]["code"]) == (408, "body_timeout") and headers["connection"] == "close"
    assert 0.4 <= seconds < 5
    assert served.metrics.registry.get_sample_value("heatmap_http_timeouts_total", {"kind": "body"}) == 1
    assert served.inflight() == 0
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 0


async def test_bodies_in_flight_past_the_budget_get_503_then_room_comes_back(serve, clickhouse_client):
    served = await serve(max_body_bytes=40_000, ingest_inflight_bytes=100_000, http_body_timeout=30)
    stalled = []
    for _ in range(2):  # 2 x 40 kB held, stalled mid-body
        reader, writer = await asyncio.open_connection("127.0.0.1", served.port)
        writer.write(post(b"[", length=40_000, token=None))
        stalled.append((reader, writer))
    await wait_for("two bodies held", lambda: served.inflight() == 80_000)
    status, headers, doc = parse(await exchange(served.port, post(BODY + b" " * 30_000, token=None)))
    assert (status, doc["error"]["code"]) == (503, "busy") and int(headers["retry-after"]) > 0
    # A chunked body is charged as it arrives.
    chunked = (b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
               b"Transfer-Encoding: chunked\r\n\r\n" + b"%x\r\n" % 30_000 + b" " * 30_000 + b"\r\n0\r\n\r\n")
    status, _, doc = parse(await exchange(served.port, chunked))
    assert (status, doc["error"]["code"]) == (503, "busy")
    for _, writer in stalled:
        writer.transport.abort()
    await wait_for("the budget given back", lambda: served.inflight() == 0)
    status, _, doc = parse(await exchange(served.port, post(BODY + b" " * 30_000, token=None)))
    assert (status, doc) == (201, {"accepted": 1})


# -- item 8: big bodies are decoded off the event loop ---------------------------------------

@pytest.mark.parametrize("processes", [1, 0])
async def test_big_bodies_are_decoded_and_validated_off_the_event_loop(make_client, monkeypatch, processes):
    """In a worker process (HEATMAP_INGEST_PROCESSES), or with 0 in a worker thread: never in
    this process's main thread; per-item errors come back from the worker as they are."""
    import threading

    import central.decode

    threads = set()
    real = central.decode.parse_event

    def parse_event(obj, now, **bounds):  # seen only where it runs in this process
        threads.add(threading.current_thread() is threading.main_thread())
        return real(obj, now, **bounds)

    monkeypatch.setattr(central.decode, "parse_event", parse_event)
    client = await make_client(ingest_processes=processes)
    events = [{**DUP, "event_timestamp": DUP["event_timestamp"] + i} for i in range(2000)]
    resp = await client.post("/api/v1/events", json=events)
    assert resp.status == 201 and await resp.json() == {"accepted": 2000}
    assert threads == (set() if processes else {False})
    assert await raw_count(client) == 2000
    bad = [*events[:1500], {**DUP, "people_count": -1}, *events[1500:]]
    resp = await client.post("/api/v1/events", json=bad)
    body = await resp.json()
    assert resp.status == 422 and body["error"]["code"] == "invalid_events"
    assert [(i["index"], i["field"]) for i in body["error"]["items"]] == [(1500, "people_count")]
    assert await raw_count(client) == 2000


async def test_big_batches_are_inserted_one_at_a_time(make_client, monkeypatch):
    """Their inserts serialise in Python under the GIL: four at once made the event loop wait
    in turn. The first insert is held until all four requests are ready to insert (each has
    asked for its turn), so any overlap would show."""
    client = await make_client()
    store = services(client).store
    real, running, most, asked = store.ainsert, [0], [0], [0]

    class Turns(asyncio.Semaphore):
        async def acquire(self):
            asked[0] += 1
            return await super().acquire()

    monkeypatch.setattr(services(client).ingestor, "_big_inserts", Turns(1))

    async def ainsert(table, rows, columns, settings=None, **kw):
        if table != "camera_events":
            return await real(table, rows, columns, settings, **kw)
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            await eventually_async(lambda: asked[0] == 4 or running[0] == 4,
                                   message="the four batches did not all reach their insert")
            return await real(table, rows, columns, settings, **kw)
        finally:
            running[0] -= 1

    monkeypatch.setattr(store, "ainsert", ainsert)
    bodies = [[{**DUP, "cam_name": "C%d" % k, "event_timestamp": DUP["event_timestamp"] + i} for i in range(1500)]
              for k in range(4)]
    answers = await asyncio.gather(*(client.post("/api/v1/events", json=b) for b in bodies))
    assert [r.status for r in answers] == [201] * 4
    assert most[0] == 1
    assert await raw_count(client) == 6000


async def test_a_decoding_process_that_dies_loses_no_body(make_client, caplog):
    import os
    import signal

    client = await make_client(ingest_processes=1)
    ingestor = services(client).ingestor
    events = [{**DUP, "event_timestamp": DUP["event_timestamp"] + i} for i in range(2000)]
    assert (await client.post("/api/v1/events", json=events)).status == 201
    pool = ingestor._pool
    for pid in list(pool._processes):  # the test's own central: its worker, by its id
        os.kill(pid, signal.SIGKILL)
    resp = await client.post("/api/v1/events", json=events)
    assert resp.status == 201 and await resp.json() == {"accepted": 2000}
    assert any("a decoding process died" in r.getMessage() for r in caplog.records)
    assert (await client.post("/api/v1/events", json=events)).status == 201
    assert ingestor._pool is not None and ingestor._pool is not pool  # a new worker took it
    assert await raw_count(client) == 6000


# -- items 9 to 11 ---------------------------------------------------------------------------

async def test_duplicate_keys_in_an_object_are_refused(client):
    for body in (b'[{"site_name":"OTHER","site_name":"PROBE","cam_name":"DOOR","people_count":1}]',
                 b'{"site_name":"PROBE","cam_name":"DOOR","people_count":1,"people_count":9}\n'):
        resp = await client.post("/api/v1/events", data=body, headers={"Content-Type": "application/json"})
        doc = await conforms(resp, "/api/v1/events", "post")
        assert resp.status == 400 and doc["error"]["code"] == "bad_json" and "twice" in doc["error"]["message"]
    assert await raw_count(client, "PROBE") == 0 and await raw_count(client, "OTHER") == 0


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data",
                                          "application/octet-stream", None])
async def test_only_json_bodies_are_events(client, content_type):
    headers = {"Content-Type": content_type} if content_type else {"Content-Type": ""}
    resp = await client.post("/api/v1/events", data=json.dumps([DUP]).encode(), headers=headers)
    doc = await conforms(resp, "/api/v1/events", "post")
    assert resp.status == 415 and doc["error"]["code"] == "unsupported_media_type"
    for ok in ("application/json", "application/json; charset=utf-8", "application/x-ndjson"):
        resp = await client.post("/api/v1/events", data=json.dumps(DUP).encode(), headers={"Content-Type": ok})
        assert resp.status == 201
    assert await raw_count(client) == 3


async def test_two_idempotency_keys_are_refused(serve, clickhouse_client):
    served = await serve()
    status, _, doc = parse(await exchange(served.port, post(BODY, "Idempotency-Key: a-1", "Idempotency-Key: a-2",
                                                            token=None)))
    assert (status, doc["error"]["code"]) == (400, "bad_idempotency_key")
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 0


@pytest.mark.parametrize(("host", "token", "warns"), [
    ("127.0.0.1", None, False), ("::1", None, False), ("localhost", None, False), ("127.0.0.2", None, False),
    ("0.0.0.0", None, True), ("::", None, True), ("192.0.2.7", None, True), ("central.example", None, True),
    ("0.0.0.0", "secret", False),
])
def test_open_ingest_beyond_loopback_is_warned_about(config, host, token, warns):
    from central.server import exposure_warning

    warning = exposure_warning(dataclasses.replace(config, http_addr=(host, 8080), ingest_token=token))
    assert (warning is not None) is warns
    if warns:
        assert "HEATMAP_INGEST_TOKEN" in warning


async def test_serve_runs_through_the_listener_and_warns_at_start(config, caplog):
    from central.server import run

    caplog.set_level(logging.INFO)
    port = free_port()
    stop = asyncio.Event()
    task = asyncio.create_task(run(dataclasses.replace(config, http_addr=("127.0.0.1", port)), stop))
    await wait_for("central listening", lambda: any("serving on" in r.getMessage() for r in caplog.records), 60)
    got, _, doc = parse(await exchange(port, b"GET /api/v1/dash\x01board HTTP/1.1\r\nHost: x\r\n\r\n"))
    assert (got, doc["error"]["code"]) == (400, "bad_request")
    stop.set()
    await asyncio.wait_for(task, 60)
    assert not any("HEATMAP_INGEST_TOKEN" in r.getMessage() for r in caplog.records)


# -- item 13: a day's real length -------------------------------------------------------------

@pytest.mark.parametrize(("date", "hours"), [("2026-04-05", 24.5), ("2026-10-04", 23.5), ("2026-06-01", 24)])
async def test_half_hour_clock_changes_give_the_real_day_length(make_client, tmp_path, date, hours):
    sites = tmp_path / "lord_howe.toml"
    sites.write_text('[sites.LORD_HOWE]\ntimezone = "Australia/Lord_Howe"\n')
    client = await make_client(sites_file=str(sites))
    resp = await client.get("/api/v1/dashboard/LORD_HOWE?date=" + date)
    doc = await conforms(resp, "/api/v1/dashboard/{site_name}")
    assert resp.status == 200 and doc["meta"]["hours"] == hours
    assert type(doc["meta"]["hours"]) is type(hours)


async def test_memory_goes_back_to_the_os_once_the_bodies_are_released(monkeypatch):
    import central.memory
    from central.bodies import BodyBudget
    from central.memory import TRIM_AFTER

    trims = []
    monkeypatch.setattr(central.memory, "give_memory_back", lambda: trims.append(1))
    budget = BodyBudget(4 * TRIM_AFTER)
    async with budget.hold() as first:
        first.take(TRIM_AFTER // 2)
        async with budget.hold() as second:
            second.take(TRIM_AFTER // 2)
        await asyncio.sleep(0)
        assert trims == []  # a body is still held
    await wait_for("the trim", lambda: trims == [1])
    async with budget.hold() as small:
        small.take(1024)
    await asyncio.sleep(0.05)
    assert trims == [1] and budget.held == 0
    monkeypatch.undo()
    central.memory.give_memory_back()  # the real one is harmless anywhere


def test_limits_are_settings_and_an_impossible_budget_is_refused():
    from central.config import Config
    from central.exceptions import ConfigError

    cfg = Config.load(environ={"HEATMAP_HTTP_HEADER_TIMEOUT": "2.5", "HEATMAP_HTTP_KEEPALIVE_TIMEOUT": "4",
                               "HEATMAP_HTTP_BODY_TIMEOUT": "30", "HEATMAP_INGEST_INFLIGHT_BYTES": "16777216"})
    assert (cfg.http_header_timeout, cfg.http_keepalive_timeout, cfg.http_body_timeout,
            cfg.ingest_inflight_bytes) == (2.5, 4.0, 30.0, 16 << 20)
    with pytest.raises(ConfigError, match="HEATMAP_INGEST_INFLIGHT_BYTES"):
        Config.load(environ={"HEATMAP_INGEST_INFLIGHT_BYTES": "1048576"})
    with pytest.raises(ConfigError, match="HEATMAP_HTTP_BODY_TIMEOUT"):
        Config.load(environ={"HEATMAP_HTTP_BODY_TIMEOUT": "0"})
