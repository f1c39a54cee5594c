"""The HTTP API: bad requests, tokens, CORS, ingest limits and idempotency, the page, health,
and every real response checked against the OpenAPI document."""

from __future__ import annotations

import json
import time

import pytest

from central.app import OPENAPI_PATH
from tests.central._openapi import check, response_schema
from tests.central.conftest import services

DOC = json.loads(OPENAPI_PATH.read_text())
EVENT = {"site": "HEAD_OFFICE", "camera": "CAFETERIA", "timestamp": "2026-01-05T10:00:00Z", "people_count": 3,
         "triggers": ["CROWD_VIOLATION"]}
NDJSON = {"Content-Type": "application/x-ndjson"}


async def conforms(resp, path, method="get"):
    """Assert the response's status is documented and its JSON body matches the schema."""
    body = await resp.json() if resp.content_type == "application/json" else None
    schema = response_schema(DOC, path, method, resp.status)
    if schema:
        assert check(DOC, schema, body) == [], body
    return body


@pytest.mark.clock
async def test_dashboard_responses_match_the_openapi_document(client):
    resp = await client.post("/api/v1/events", json=[EVENT])
    assert (await conforms(resp, "/api/v1/events", "post")) == {"accepted": 1}
    dash = "/api/v1/dashboard/{site_name}"
    body = await conforms(await client.get("/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05"), dash)
    assert body["zones"]["CAFETERIA"]["peak"] == 3
    await conforms(await client.get("/api/v1/dashboard/HEAD_OFFICE"), dash)  # today
    body = await conforms(await client.get("/api/v1/sites"), "/api/v1/sites")
    head = next(s for s in body["sites"] if s["site_name"] == "HEAD_OFFICE")
    assert head["zones"]["EMPLOYEE_AREA"]["position"] == {"x": 0, "y": 0, "w": 2, "h": 1}
    assert head["configured"] and head["display_name"] == "Head office"
    await conforms(await client.get("/healthz"), "/healthz")
    await conforms(await client.get("/readyz"), "/readyz")
    resp = await client.get("/api/v1/openapi.json")
    assert resp.status == 200 and (await resp.json())["openapi"] == "3.1.0"


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/dashboard/HEAD_OFFICE?date=2026-1-5", 400, "bad_date"),
        ("/api/v1/dashboard/HEAD_OFFICE?date=2026-02-30", 400, "bad_date"),
        ("/api/v1/dashboard/HEAD_OFFICE?date=1999-12-31", 400, "bad_date"),
        ("/api/v1/dashboard/HEAD_OFFICE?date=%EF%BC%92026-01-05", 400, "bad_date"),
        ("/api/v1/dashboard/..%2Fetc%2Fpasswd", 400, "bad_site_name"),
        ("/api/v1/dashboard/x'%20OR%201=1%20--", 400, "bad_site_name"),
        ("/api/v1/dashboard/%3Cscript%3E", 400, "bad_site_name"),
        ("/api/v1/dashboard/" + "A" * 65, 400, "bad_site_name"),
        ("/api/v1/dashboard/_LEADING", 400, "bad_site_name"),
        ("/api/v1/dashboard/NEVER_SEEN", 404, "unknown_site"),
        ("/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05&date=2026-01-06", 400, "repeated_parameter"),
        ("/api/v1/dashboard/HEAD_OFFICE?date=%D9%A2026-01-05", 400, "bad_date"),
    ],
)
async def test_bad_dashboard_requests(client, path, status, code):
    resp = await client.get(path)
    body = await conforms(resp, "/api/v1/dashboard/{site_name}")
    assert resp.status == status and body["error"]["code"] == code


async def test_unknown_paths_and_methods_are_json(client):
    resp = await client.get("/api/v1/nope")
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"
    resp = await client.delete("/api/v1/sites")
    assert resp.status == 405 and "error" in await resp.json()


async def test_tokens(make_client):
    client = await make_client(read_token="r3ad", ingest_token="1ngest")
    assert (await client.get("/api/v1/dashboard/HEAD_OFFICE")).status == 401
    resp = await client.get("/api/v1/sites", headers={"Authorization": "Bearer 1ngest"})
    assert resp.status == 401 and resp.headers["WWW-Authenticate"].startswith("Bearer")
    await conforms(resp, "/api/v1/sites")
    assert (await client.get("/api/v1/sites", headers={"Authorization": "Bearer r3ad"})).status == 200
    resp = await client.post("/api/v1/events", json=[EVENT], headers={"Authorization": "Bearer r3ad"})
    assert resp.status == 401
    resp = await client.post("/api/v1/events", json=[EVENT], headers={"Authorization": "Bearer 1ngest"})
    assert resp.status == 201
    # The page and health stay open; the page fetches the API with the token it is given.
    assert (await client.get("/healthz")).status == 200


async def test_every_read_endpoint_needs_the_read_token(make_client):
    """Every GET route under /api/v1 but the API's description asks for the read token,
    the ones added later too (typical was served open when it came)."""
    client = await make_client(read_token="r3ad", ingest_token="1ngest")
    paths = sorted({r.resource.canonical for r in client.server.app.router.routes()
                    if r.method == "GET" and r.resource.canonical.startswith("/api/v1/")})
    assert "/api/v1/typical/{site_name}" in paths and "/api/v1/zones" in paths
    for path in paths:
        url = path.replace("{site_name}", "HEAD_OFFICE") + "?from=2026-01-05&to=2026-01-05&date=2026-01-05"
        status = (await client.get(url)).status
        assert (status != 401) if path == "/api/v1/openapi.json" else (status == 401), (path, status)


async def test_cors_allow_list(make_client):
    client = await make_client(cors_origins=("https://ok.example",))
    resp = await client.options("/api/v1/dashboard/HEAD_OFFICE", headers={
        "Origin": "https://ok.example", "Access-Control-Request-Method": "GET"})
    assert resp.status == 204 and resp.headers["Access-Control-Allow-Origin"] == "https://ok.example"
    assert "Authorization" in resp.headers["Access-Control-Allow-Headers"]
    resp = await client.get("/api/v1/sites", headers={"Origin": "https://evil.example"})
    assert "Access-Control-Allow-Origin" not in resp.headers
    resp = await client.options("/api/v1/sites", headers={
        "Origin": "https://evil.example", "Access-Control-Request-Method": "GET"})
    assert resp.status == 403


async def test_ingest_is_all_or_nothing_with_item_errors(client, clickhouse_client):
    bad = [EVENT, {**EVENT, "people_count": -1}, {"camera": "X", "people_count": 1}, {**EVENT, "camera": "a b"},
           {**EVENT, "triggers": ["total_events"]}, {**EVENT, "timestamp": "2026-01-05T10:00:00"}, "nope"]
    resp = await client.post("/api/v1/events", json=bad)
    body = await conforms(resp, "/api/v1/events", "post")
    assert resp.status == 422 and body["error"]["code"] == "invalid_events"
    assert [(i["index"], i["field"]) for i in body["error"]["items"]] == [
        (1, "people_count"), (2, "site"), (3, "camera"), (4, "triggers"), (5, "timestamp"), (6, "event")]
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 0


async def test_ingest_refuses_events_older_than_the_bound(make_client, clickhouse_client):
    """One far-past event (a wrong clock, a replay of a backup) is refused with the others
    of its batch, per item, before anything is stored: HEATMAP_MAX_EVENT_AGE_DAYS."""
    client = await make_client(max_event_age_days=400)
    now = time.time()
    batch = [{**EVENT, "timestamp": now - 399 * 86400}, {**EVENT, "timestamp": "2000-01-03T00:00:00Z"},
             {**EVENT, "timestamp": now - 401 * 86400}]
    resp = await client.post("/api/v1/events", json=batch)
    body = await conforms(resp, "/api/v1/events", "post")
    assert resp.status == 422 and body["error"]["code"] == "invalid_events"
    items = body["error"]["items"]
    assert [(i["index"], i["field"], i["code"]) for i in items] == [(1, "timestamp", "too_old"),
                                                                   (2, "timestamp", "too_old")]
    assert items[1]["message"] == "is 401 days before this clock (limit 400 days)"
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 0
    metrics = await (await client.get("/metrics")).text()
    assert 'heatmap_ingest_items_refused_total{code="too_old"} 2.0' in metrics
    assert (await client.post("/api/v1/events", json=batch[:1])).status == 201
    # 0 turns the bound off: back to 2000-01-01.
    client = await make_client(max_event_age_days=0)
    assert (await client.post("/api/v1/events", json=batch[2:])).status == 201
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 2


async def test_ingest_bounds_how_many_sites_exist(make_client, clickhouse_client):
    """HEATMAP_MAX_SITES: a new site past the bound is refused per item, the batch with it;
    configured sites and sites already in data are always written."""
    client = await make_client(max_sites=6)  # the sites file configures 4
    ok = await client.post("/api/v1/events", json=[{**EVENT, "site": "NEW_1"}, {**EVENT, "site": "NEW_2"}, EVENT])
    assert ok.status == 201, await ok.text()
    resp = await client.post("/api/v1/events", json=[EVENT, {**EVENT, "site": "NEW_3"}, {**EVENT, "site": "NEW_1"}])
    body = await conforms(resp, "/api/v1/events", "post")
    assert resp.status == 422 and body["error"]["code"] == "invalid_events"
    assert [(i["index"], i["field"], i["code"]) for i in body["error"]["items"]] == [(1, "site", "too_many_sites")]
    assert "HEATMAP_MAX_SITES" in body["error"]["items"][0]["message"]
    for site in ("HEAD_OFFICE", "NEW_1", "LONDON"):
        assert (await client.post("/api/v1/events", json=[{**EVENT, "site": site}])).status == 201
    # One request with 2,000 new sites creates none of them.
    many = [{**EVENT, "site": "S%04d" % i} for i in range(2000)]
    resp = await client.post("/api/v1/events", json=many)
    body = await conforms(resp, "/api/v1/events", "post")
    assert resp.status == 422 and len(body["error"]["items"]) == 100
    assert body["error"]["message"].startswith("2000 of 2000 events are for sites refused")
    metrics = await (await client.get("/metrics")).text()
    assert 'heatmap_ingest_items_refused_total{code="too_many_sites"} 101.0' in metrics
    # A new process counts the sites in data.
    again = await make_client(max_sites=6)
    resp = await again.post("/api/v1/events", json=[{**EVENT, "site": "NEW_3"}])
    assert resp.status == 422 and (await resp.json())["error"]["items"][0]["code"] == "too_many_sites"
    sites = clickhouse_client.query("SELECT DISTINCT site_name FROM camera_events ORDER BY site_name").result_rows
    assert [r[0] for r in sites] == ["HEAD_OFFICE", "LONDON", "NEW_1", "NEW_2"]


async def test_ingest_may_take_only_the_sites_of_the_sites_file(make_client, clickhouse_client):
    client = await make_client(accept_unknown_sites=False)
    resp = await client.post("/api/v1/events", json=[EVENT, {**EVENT, "site": "HEAD_OFICE"}])
    body = await conforms(resp, "/api/v1/events", "post")
    assert resp.status == 422
    assert [(i["index"], i["field"], i["code"]) for i in body["error"]["items"]] == [(1, "site", "unknown_site")]
    assert "'HEAD_OFICE' is not in the sites file" in body["error"]["items"][0]["message"]
    assert (await client.post("/api/v1/events", json=[EVENT])).status == 201
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 1


@pytest.mark.parametrize(
    ("body", "code"),
    [(b"", "empty"), (b"[]", "empty"), (b"{not json", "bad_json"), (b"\xff\xfe", "bad_encoding"),
     (b"[" * 100000, "bad_json"), (b'{"a": 1}', "invalid_events")],
)
async def test_ingest_bad_bodies(client, body, code):
    resp = await client.post("/api/v1/events", data=body, headers=NDJSON)
    doc = await conforms(resp, "/api/v1/events", "post")
    assert doc["error"]["code"] == code


async def test_ingest_ndjson_and_size_limits(make_client, clickhouse_client):
    client = await make_client(max_body_bytes=4096, max_batch_events=3)
    lines = "\n".join(json.dumps({**EVENT, "timestamp": 1767607200 + i}) for i in range(3)) + "\n"
    resp = await client.post("/api/v1/events", data=lines, headers={"Content-Type": "application/x-ndjson"})
    assert resp.status == 201 and (await resp.json()) == {"accepted": 3}
    resp = await client.post("/api/v1/events", data=lines * 2, headers=NDJSON)
    assert resp.status == 413 and (await conforms(resp, "/api/v1/events", "post"))["error"]["code"] == "too_many"
    resp = await client.post("/api/v1/events", data=b"[" + b" " * 5000 + b"]", headers=NDJSON)
    assert resp.status == 413 and (await resp.json())["error"]["code"] == "too_large"

    async def chunks():
        for _ in range(10):
            yield b" " * 1000

    resp = await client.post("/api/v1/events", data=chunks(), headers=NDJSON)  # chunked, no Content-Length
    assert resp.status == 413
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 3


async def test_idempotent_retries_never_double_rows(client, clickhouse_client):
    events = [{**EVENT, "timestamp": 1767607200 + i} for i in range(5)]
    headers = {"Idempotency-Key": "batch-0001"}
    first = await client.post("/api/v1/events", json=events, headers=headers)
    assert first.status == 201
    again = await client.post("/api/v1/events", json=events, headers=headers)
    assert again.status == 200 and (await again.json()) == {"accepted": 5}
    assert again.headers["Idempotent-Replayed"] == "true"
    other = await client.post("/api/v1/events", json=events[:2], headers=headers)
    assert other.status == 409 and (await conforms(other, "/api/v1/events", "post"))["error"]["code"] == "idempotency_conflict"
    # A retry that races past the batch record (lost response, record not yet written)
    # is still a no-op: the insert carries the key as its deduplication token.
    clickhouse_client.command("TRUNCATE TABLE ingest_batches")
    assert (await client.post("/api/v1/events", json=events, headers=headers)).status == 201
    assert clickhouse_client.query("SELECT count() FROM camera_events").result_rows[0][0] == 5
    bad_key = await client.post("/api/v1/events", json=events, headers={"Idempotency-Key": "a b"})
    assert bad_key.status == 400


PLAIN_CAMERA_EVENTS = (
    "CREATE TABLE camera_events (site_name LowCardinality(String), cam_name LowCardinality(String), "
    "people_count UInt16, event_timestamp DateTime('UTC'), event_triggers Array(String)) "
    "ENGINE = MergeTree ORDER BY (site_name, event_timestamp, cam_name)")  # no deduplication window


async def raw_count(client):
    rows = await services(client).store.aquery("SELECT count() FROM camera_events")
    return rows[0][0]


@pytest.mark.parametrize("dedup", [True, False])
async def test_concurrent_same_key_retries_never_double_rows(make_client, clickhouse_client, dedup):
    import asyncio

    if not dedup:
        clickhouse_client.command(PLAIN_CAMERA_EVENTS)
    client = await make_client()
    readyz = await conforms(await client.get("/readyz"), "/readyz")
    assert readyz["raw_insert_dedup"] is dedup
    assert "heatmap_raw_insert_dedup %s" % ("1.0" if dedup else "0.0") in await (await client.get("/metrics")).text()
    events = [{**EVENT, "timestamp": 1767607200 + i} for i in range(5)]
    headers = {"Idempotency-Key": "same-key"}
    answers = await asyncio.gather(*(client.post("/api/v1/events", json=events, headers=headers) for _ in range(4)))
    assert sorted(r.status for r in answers) == [200, 200, 200, 201]
    assert [await r.json() for r in answers] == [{"accepted": 5}] * 4
    assert await raw_count(client) == 5
    assert services(client).ingestor._locks == {}  # per-key locks do not outlive their requests


@pytest.mark.parametrize("dedup", [True, False])
async def test_a_retry_after_a_failure_midway_never_doubles_rows(make_client, clickhouse_client, monkeypatch, dedup):
    from central.exceptions import StorageUnavailable

    if not dedup:
        clickhouse_client.command(PLAIN_CAMERA_EVENTS)
    client = await make_client()
    store, failed = services(client).store, []
    real = store.ainsert

    async def ainsert(table, rows, columns, settings=None, **kw):
        if table == "ingest_batches" and rows[0][2] > 0 and not failed:
            failed.append(table)  # camera_events is written, the done record times out
            raise StorageUnavailable("insert into ingest_batches: timed out")
        return await real(table, rows, columns, settings, **kw)

    monkeypatch.setattr(store, "ainsert", ainsert)
    events = [{**EVENT, "timestamp": 1767607200 + i} for i in range(3)]
    headers = {"Idempotency-Key": "midway-1"}
    assert (await client.post("/api/v1/events", json=events, headers=headers)).status == 503
    assert await raw_count(client) == 3
    retry = await client.post("/api/v1/events", json=events, headers=headers)
    body = await conforms(retry, "/api/v1/events", "post")
    if dedup:  # the repeated insert is dropped by the table; the key completes
        assert retry.status == 201 and body == {"accepted": 3}
        assert (await client.post("/api/v1/events", json=events, headers=headers)).status == 200
    else:  # the table cannot drop it: refused as in doubt rather than doubled
        assert retry.status == 409 and body["error"]["code"] == "idempotency_in_doubt"
    assert await raw_count(client) == 3


async def test_page_is_served_with_a_content_security_policy(client):
    resp = await client.get("/")
    if not services(client).config or resp.status == 404:
        pytest.skip("central/static/heatmap_v2.html is not installed")
    assert resp.status == 200 and resp.content_type == "text/html"
    csp = resp.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "connect-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in csp.split("script-src")[1].split(";")[0]
    assert resp.headers["X-Content-Type-Options"] == "nosniff"
    assert (await client.get("/heatmap_v2.html")).status == 200


async def test_page_modules_are_served_and_only_they(client):
    import re

    from central.app import PAGE_PATH, SCRIPTS_DIR

    page = PAGE_PATH.read_text(encoding="utf-8")
    names = set(re.findall(r'src="js/([a-z_]+\.js)"', page)) | set(re.findall(r'href="js/([a-z_]+\.js)"', page))
    assert "main.js" in names
    assert names == {p.name for p in SCRIPTS_DIR.glob("*.js")}, "every module is preloaded by the page"
    for name in sorted(names):
        resp = await client.get("/js/" + name)
        assert resp.status == 200 and resp.content_type == "text/javascript", name
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert "export" in await resp.text() or name == "main.js"
    for bad in ("/js/missing.js", "/js/..%2Fapp.py", "/js/%2e%2e/app.py", "/js/Main.js", "/js/main.py"):
        assert (await client.get(bad)).status == 404, bad


async def test_metrics_and_unavailable_storage(make_client, tmp_path):
    from tests.harness import free_port

    client = await make_client(clickhouse_url="http://127.0.0.1:%d" % free_port())
    resp = await client.get("/api/v1/dashboard/HEAD_OFFICE?date=2026-01-05")
    body = await conforms(resp, "/api/v1/dashboard/{site_name}")
    assert resp.status == 503 and resp.headers["Retry-After"] and body["error"]["code"] == "storage_unavailable"
    resp = await client.post("/api/v1/events", json=[EVENT])
    assert resp.status == 503 and "Retry-After" in resp.headers
    health = await conforms(await client.get("/healthz"), "/healthz")
    assert health["status"] == "degraded"
    resp = await client.get("/readyz")
    assert resp.status == 503
    await conforms(resp, "/readyz")
    text = await (await client.get("/metrics")).text()
    assert "heatmap_storage_up 0.0" in text
    assert 'heatmap_http_requests_total{route="/api/v1/dashboard/{site_name}",status="503"} 1.0' in text
