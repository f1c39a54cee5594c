"""Hostile input: fuzzed datagrams and MQTT payloads (hypothesis), schemathesis against
every endpoint of central's OpenAPI document, bodies over the limit, SQL-looking names.

Nothing may crash, answer 5xx, or accept garbage; the valid events sent alongside the
garbage still arrive exactly.
"""

from __future__ import annotations

import http.client
import json
import math
import re
import socket
import subprocess
import sys
import time
import zlib
from pathlib import Path
from urllib.parse import quote

import paho.mqtt.client as mqtt
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from shared import protocol, topics
from shared.events import parse_event
from shared.exceptions import HeatmapError
from shared.names import is_valid_name
from shared.paho_close import stop_client
from tests.fault.conftest import SITE, compare, record, wait_dashboard, wait_until

pytestmark = [pytest.mark.fault, pytest.mark.slow]

TOKEN = "fault-suite-token-0123456789"
CAMS = ["ENTRANCE", "OPEN_DESK", "CAFETERIA", "SERVER_ROOM"]
SQLISH = ["x' OR '1'='1", "HEAD_OFFICE'; DROP TABLE slot_states; --", "a\" OR 1=1 --", "1;SELECT sleep(3)",
          "{s:String}", "a%00b", "../../etc/passwd", "HEAD_OFFICE UNION SELECT * FROM system.users"]
#: One clock for the strategies: hypothesis needs data generation to be repeatable.
NOW = int(time.time())
FUZZ = settings(max_examples=150, deadline=None, database=None, derandomize=True,
                suppress_health_check=list(HealthCheck))

_junk_scalar = st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70),
                         st.floats(allow_nan=True, allow_infinity=True), st.text(max_size=80))
_junk_json = st.recursive(_junk_scalar, lambda kids: st.lists(kids, max_size=4)
                          | st.dictionaries(st.text(max_size=12), kids, max_size=4), max_leaves=12)
_bad_value = {
    "camera": st.one_of(st.text(max_size=80).filter(lambda s: not is_valid_name(s)), _junk_scalar.filter(
        lambda v: not isinstance(v, str))),
    "people_count": st.one_of(st.integers(max_value=-1), st.integers(min_value=65536), st.text(max_size=5),
                              st.floats().filter(lambda f: not (math.isfinite(f) and f.is_integer())),
                              st.booleans(), st.lists(st.integers(), max_size=2)),
    "timestamp": st.one_of(st.integers(-10**12, 946684799), st.integers(4102444801, 10**13),
                           st.just(NOW + 86400), st.sampled_from(["yesterday", "", "2026-13-45T99:00"]),
                           st.floats(allow_nan=True).filter(lambda f: not math.isfinite(f))),
    "triggers": st.one_of(st.text(max_size=10), st.integers(), st.lists(st.sampled_from(
        ["bad name", "", "x" * 65, "a/b", "#", "+"]), min_size=1, max_size=3)),
    "site": st.one_of(st.sampled_from(["OTHER_SITE", *SQLISH]), st.integers()),
}


def _refused(obj) -> bool:
    """True if the agent must refuse ``obj`` (shared.events says so, or another site)."""
    try:
        event = parse_event(obj, NOW, 300)
    except HeatmapError:
        return True
    return event.site is not None and event.site != SITE


@st.composite
def bad_event(draw):
    obj = {"camera": draw(st.sampled_from(CAMS)), "people_count": draw(st.integers(0, 20)),
           "timestamp": draw(st.integers(NOW - 3600, NOW - 60)), "triggers": [], "site": SITE}
    for field in draw(st.lists(st.sampled_from(sorted(_bad_value)), min_size=1, max_size=3, unique=True)):
        obj[field] = draw(_bad_value[field])
    if draw(st.booleans()):
        obj[draw(st.sampled_from(["extra", "__proto__", "camera ", "PEOPLE_COUNT"]))] = 1
    return obj


def _line(obj) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


_bad_line = st.one_of(
    bad_event().filter(_refused).map(_line),
    _junk_json.filter(lambda v: not isinstance(v, dict) or _refused(v)).map(_line),
    st.binary(max_size=300).map(lambda b: b.replace(b"\n", b" ")),
)


def test_fuzzed_datagrams_and_mqtt_payloads_change_nothing(mosquitto, spawn, feeder, monitor):
    """Datagrams mixing the simulator's valid lines with hypothesis' bad ones, and fuzzed
    payloads on every topic kind of the device (including its ack topic, which the agent
    reads): the agent and central refuse and count the garbage, keep running, and the valid
    events arrive exactly."""
    make_central, make_agent = spawn
    central = make_central(mosquitto.url).start()
    agent = make_agent("jetson-01", mosquitto.url).start()
    mon = monitor(mosquitto.port)
    feed = feeder(rate_scale=10)
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    counts = {"datagrams": 0, "bad_lines": 0, "mqtt": 0, "acks": 0}

    @FUZZ
    @given(bad=st.lists(_bad_line, min_size=1, max_size=6), n=st.integers(0, 30), where=st.integers(0, 30))
    def fuzz_datagram(bad, n, where):
        chunk = feed.next_chunk(n)
        lines = feed.lines(chunk)
        lines[min(where, len(lines)):min(where, len(lines))] = bad
        sock.sendto(b"\n".join(lines), ("127.0.0.1", agent.udp_port))
        feed.sent_chunk(chunk)
        counts["datagrams"] += 1
        counts["bad_lines"] += len(bad)
        time.sleep(0.002)

    try:
        fuzz_datagram()
    finally:
        sock.close()
    feed.run(agent.udp, 1000)  # the rest of the window, clean

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="fuzzer")
    valid = protocol.encode(protocol.StateBatch(SITE, "jetson-01", 1, time.time(), (
        protocol.SlotState("ENTRANCE", int(time.time()) // 900 * 900 - 900, 3, 4, 1),)))
    mutations = st.one_of(
        st.binary(max_size=2000),
        _junk_json.map(_line),
        st.sampled_from([
            valid.replace(b'"rev":1', b'"rev":0'), valid.replace(b'"peak":3', b'"peak":70000'),
            valid.replace(b'"peak":3', b'"peak":NaN'), valid.replace(b'"v":1', b'"v":2'),
            valid.replace(b'"events":4', b'"events":true'), valid.replace(SITE.encode(), b"OTHER_SITE"),
            valid.replace(b'"ENTRANCE"', b'"ENT RANCE"'), valid[:-5], valid + b"x", b"\x78\x9c" + valid,
            valid.replace(b'"rev":1', b'"rev":1,"rev":2'),
            zlib.compress(b"[" * 2_000_000),  # a compression bomb: 1 MiB inflate limit
            b"{" + b" " * (300 * 1024) + b"}",  # over the 256 KiB payload limit
        ]),
    )

    @FUZZ
    @given(payload=mutations, kind=st.sampled_from(["state", "state", "stats", "status", "ack"]))
    def fuzz_mqtt(payload, kind):
        client.publish(str(topics.Topic(SITE, "jetson-01", kind)), payload, qos=1).wait_for_publish(10)
        counts["mqtt"] += 1
        counts["acks"] += kind == "ack"

    try:
        client.connect("127.0.0.1", mosquitto.port)
        client.loop_start()
        fuzz_mqtt()
    finally:
        stop_client(client)
    began = time.monotonic()
    wait_dashboard(central, feed.expected(), timeout=90)
    recover = time.monotonic() - began
    n_acks = counts["acks"]
    bad_acks = wait_until("the agent's stats count %d bad acks" % n_acks,
                          lambda: mon.stat(agent.device, "bad_acks") >= n_acks and mon.stat(agent.device, "bad_acks"),
                          15)
    refused = mon.stat(agent.device, "refused_total")
    assert agent.proc.running and central.proc.running
    assert agent.stop() == 0
    assert central.stop() == 0
    dead = central.query("SELECT count() FROM dead_letters")[0][0]
    sites = {r[0] for r in central.query("SELECT DISTINCT site_name FROM slot_states")}
    result = compare(feed.expected(), central.slot_states())
    record("fuzzed datagrams + MQTT payloads", result, recover, bad_lines=counts["bad_lines"],
           mqtt_fuzz=counts["mqtt"], refused=int(refused), dead_letters=int(dead), bad_acks=int(bad_acks))
    assert result["wrong"] == []
    assert sites == {SITE}
    assert refused >= counts["bad_lines"] * 0.5, "the agent counted %d refusals" % refused
    assert dead >= counts["mqtt"] - n_acks - 10, "central took %d of %d bad messages" % (dead, counts["mqtt"])


def _central_with_tokens(spawn, **env):
    make_central, _ = spawn
    return make_central(None, HEATMAP_READ_TOKEN=TOKEN, HEATMAP_INGEST_TOKEN=TOKEN, **env).start()


def test_schemathesis_every_endpoint_no_5xx_no_accepted_garbage(spawn, tmp_path: Path):
    """schemathesis generates valid and invalid requests for every operation of
    ``/api/v1/openapi.json``: no 5xx, responses conform to the document, invalid data is
    refused; afterwards every stored raw row is a valid event."""
    central = _central_with_tokens(spawn)
    st_bin = Path(sys.executable).with_name("st")
    proc = subprocess.run(
        [str(st_bin), "run", central.base + "/api/v1/openapi.json", "--checks",
         "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,"
         "negative_data_rejection", "-H", "Authorization: Bearer " + TOKEN, "--max-examples", "40",
         "--workers", "1", "--max-time", "60", "--request-timeout", "30", "--no-color",
         "--suppress-health-check", "all"],
        capture_output=True, text=True, timeout=300, cwd=tmp_path)
    tail = (proc.stdout + proc.stderr)[-6000:]
    cases = re.search(r"(\d+) generated", proc.stdout)
    assert central.proc.running, "central died under schemathesis:\n" + central.proc.log()
    assert central.stop() == 0
    rows = central.query("SELECT site_name, cam_name, people_count, toUnixTimestamp(event_timestamp), "
                         "event_triggers FROM camera_events")
    bad = [r for r in rows if not (is_valid_name(r[0]) and is_valid_name(r[1])
                                   and 946684800 <= r[3] < 4102444800 and all(is_valid_name(t) for t in r[4]))]
    row = {"sent": len(rows), "got": len(rows), "lost": 0, "doubled": 0}
    record("schemathesis (all endpoints)", row, None, exit=proc.returncode, raw_rows=len(rows),
           cases=cases.group(1) if cases else "?")
    assert bad == [], "garbage stored: %r" % bad[:5]
    assert proc.returncode == 0, tail
    total = re.search(r"Selected: (\d+)/(\d+)", proc.stdout)
    tested = re.search(r"Tested: (\d+)", proc.stdout)
    assert total and tested and tested.group(1) == total.group(2), "not every operation was tested:\n" + tail


def _post(central, body: bytes, chunked: bool = False, token: str | None = TOKEN) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", central.port, timeout=30)
    headers = {"Content-Type": "application/x-ndjson"}
    if token:
        headers["Authorization"] = "Bearer " + token
    try:
        if chunked:
            conn.request("POST", "/api/v1/events", body=iter([body[i:i + 8192] for i in range(0, len(body), 8192)]),
                         headers=headers, encode_chunked=True)
        else:
            conn.request("POST", "/api/v1/events", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    except (ConnectionError, http.client.HTTPException):
        return 0, b""  # the server may close on an oversized body; checked by the caller
    finally:
        conn.close()


def test_oversized_bodies_get_413_and_sql_looking_names_4xx(spawn):
    """Bodies over HEATMAP_MAX_BODY_BYTES get 413 (with and without Content-Length); SQL-
    looking site names in the path and in events get 4xx and change nothing."""
    central = _central_with_tokens(spawn, HEATMAP_MAX_BODY_BYTES="65536")
    now = int(time.time()) - 600
    good = {"site": SITE, "camera": "ENTRANCE", "people_count": 3, "timestamp": now, "triggers": []}
    status, body = _post(central, _line(good) + b"\n")
    assert status in (200, 201), body
    big = b"\n".join([_line(good)] * 1200)
    assert len(big) > 65536
    codes = [_post(central, big)[0], _post(central, big, chunked=True)[0]]
    assert all(c == 413 for c in codes), codes
    statuses = []
    for name in SQLISH:
        quoted = quote(name, safe="")
        statuses.append(central.get("/api/v1/dashboard/%s?date=2026-01-05" % quoted, TOKEN)[0])
        statuses.append(central.get("/api/v1/dashboard/%s?date=%s" % (SITE, quoted), TOKEN)[0])
        for field in ("site", "camera"):
            status, _ = _post(central, _line({**good, field: name}) + b"\n")
            statuses.append(status)
        status, _ = _post(central, _line({**good, "triggers": [name]}) + b"\n")
        statuses.append(status)
    assert all(400 <= s < 500 for s in statuses), statuses
    dash = central.dashboard(SITE, time.strftime("%Y-%m-%d", time.gmtime(now)), TOKEN)
    assert dash is not None and dash["critical_events"]["total_events"] == 1
    assert central.stop() == 0
    rows = central.query("SELECT count() FROM camera_events")[0][0]
    tables = {r[0] for r in central.query("SHOW TABLES")}
    assert rows == 1
    assert {"camera_events", "slot_states", "slot_repairs"} <= tables
    record("413 + SQL-looking names", {"sent": 1, "got": rows, "lost": 0, "doubled": 0}, None,
           requests=len(statuses) + 2)


