"""A careless and a hostile HTTP client against ``python -m central serve`` (issue 13).

Slow clients: partial heads, silent and idle keep-alive connections and stalled uploads are
all closed within the configured timeouts, bodies past the in-flight budget get 503, the
service keeps answering and its memory comes back. Poison requests: every malformed or
abusive request gets a JSON 4xx (or, for a client that leaves, a 499 in the metrics), no
ERROR line or traceback reaches the log, and the good events sent between them are stored
exactly once each.
"""

from __future__ import annotations

import gzip
import json
import re
import socket
import threading
import time

import pytest

from tests.fault.conftest import SITE, record, wait_until

pytestmark = [pytest.mark.fault, pytest.mark.slow]

GOOD = {"site_name": SITE, "cam_name": "ENTRANCE", "people_count": 2, "event_timestamp": 1767600123,
        "event_triggers": []}


def request(port: int, data: bytes, timeout: float = 20.0, drop_after: float | None = None) -> bytes:
    """Send raw bytes; what came back before the server closed (or ``drop_after`` s passed)."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        if drop_after is not None:
            time.sleep(drop_after)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            return b""
        out = b""
        while True:
            try:
                chunk = sock.recv(65536)
            except ConnectionResetError:
                break
            if not chunk:
                break
            out += chunk
        return out


TOKEN = "abuse-ingest-token-0123"


def post(body: bytes, *extra: str, content_type: str = "application/json", length: int | None = None) -> bytes:
    head = ["POST /api/v1/events HTTP/1.1", "Host: x", "Connection: close",
            "Content-Length: %d" % (len(body) if length is None else length), *extra]
    if not any(h.startswith("Authorization:") for h in extra):
        head.append("Authorization: Bearer " + TOKEN)
    if content_type:
        head.append("Content-Type: " + content_type)
    return ("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body


def status_of(raw: bytes) -> tuple[int, dict | None]:
    head, _, body = raw.partition(b"\r\n\r\n")
    if not head:
        return 0, None
    status = int(head.split(b" ", 2)[1])
    try:
        return status, json.loads(body)
    except ValueError:
        return status, None


def good_body(i: int) -> bytes:
    return json.dumps([{**GOOD, "people_count": i % 9}]).encode()


POISON: list[tuple[str, bytes, int]] = [
    ("undecodable bearer", post(good_body(0), "Authorization: Bearer \xff\xfe"), 401),
    ("gzip", post(gzip.compress(good_body(0)), "Content-Encoding: gzip"), 201),
    ("gzip that is not", post(good_body(0), "Content-Encoding: gzip"), 400),
    ("deflate that is not", post(good_body(0), "Content-Encoding: deflate"), 400),
    ("brotli", post(good_body(0), "Content-Encoding: br"), 415),
    ("Expect: banana", post(good_body(0), "Expect: banana"), 417),
    ("control char in the URL", b"GET /api/v1/dashboard/\x01x HTTP/1.1\r\nHost: x\r\n\r\n", 400),
    ("NUL in a header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n", 400),
    ("oversized header", b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-A: " + b"a" * 70000 + b"\r\n\r\n", 400),
    ("not HTTP at all", b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 64 + b"\r\n\r\n", 400),
    ("duplicate JSON keys", post(b'[{"site_name":"OTHER","site_name":"' + SITE.encode()
                                 + b'","cam_name":"X","people_count":1}]'), 400),
    ("text/plain body", post(good_body(0), content_type="text/plain"), 415),
    ("form body", post(good_body(0), content_type="application/x-www-form-urlencoded"), 415),
    ("two Idempotency-Keys", post(good_body(0), "Idempotency-Key: k-1", "Idempotency-Key: k-2"), 400),
    ("Content-Length past the limit", post(b"[]", length=1 << 40), 413),
    ("bad chunked framing", b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                            b"Transfer-Encoding: chunked\r\n\r\nzz\r\n[]\r\n0\r\n\r\n", 400),
]


def test_poison_requests_get_json_4xx_and_change_nothing(spawn):
    central = spawn[0](None, HEATMAP_INGEST_TOKEN=TOKEN).start()
    sent_good, answers = 0, {}
    for i, (name, data, expected) in enumerate(POISON):
        status, doc = status_of(request(central.port, data))
        answers[name] = status
        assert status == expected, (name, status, doc)
        assert doc is not None and ("error" in doc or status == 201), (name, doc)
        if status == 201:
            sent_good += 1
        # A good event between every two poison requests: all of them must be stored.
        status, doc = status_of(request(central.port, post(good_body(i))))
        assert status == 201, (name, status, doc)
        sent_good += 1
    # A client that leaves mid-body: counted as 499, nothing stored from it.
    request(central.port, post(b"[" + b" " * 4000, length=100000), drop_after=0.5)
    wait_until("the 499 counted", lambda: "status=\"499\"" in central.get("/metrics")[1].decode(), 20)
    metrics = central.get("/metrics")[1].decode()
    fives = [line for line in metrics.splitlines()
             if line.startswith("heatmap_http_requests_total") and re.search(r'status="5\d\d"', line)]
    assert fives == []
    assert central.get("/healthz")[0] == 200
    assert central.stop() == 0
    log = central.proc.log(5000)
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    rows = central.query("SELECT count(), countIf(site_name != {s:String}) FROM camera_events", {"s": SITE})
    got, foreign = rows[0]
    record("poison HTTP requests", {"sent": sent_good, "got": got, "lost": max(0, sent_good - got),
                                    "doubled": max(0, got - sent_good)}, None, poison=len(POISON) + 1)
    assert (got, foreign) == (sent_good, 0)


def test_slow_and_stalled_clients_are_cut_off_and_memory_comes_back(spawn):
    header_t, keepalive_t, body_t = 3.0, 3.0, 5.0
    central = spawn[0](None, HEATMAP_HTTP_HEADER_TIMEOUT=str(header_t), HEATMAP_HTTP_KEEPALIVE_TIMEOUT=str(keepalive_t),
                       HEATMAP_HTTP_BODY_TIMEOUT=str(body_t), HEATMAP_INGEST_TOKEN=TOKEN).start()
    for i in range(20):  # warm up: the baseline includes a few ordinary ingests
        assert status_of(request(central.port, post(good_body(i))))[0] == 201
    base_kb = central.proc.rss_kb()

    closed: dict[str, list[float]] = {"partial": [], "silent": [], "idle": [], "stalled": []}
    answers: list[int] = []
    lock = threading.Lock()

    def client(kind: str) -> None:
        with socket.create_connection(("127.0.0.1", central.port), timeout=60) as sock:
            t0 = time.monotonic()
            if kind == "partial":
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            elif kind == "idle":
                sock.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
            elif kind == "stalled":  # 7.9 MB of an 8 MB upload, then nothing
                sock.sendall(post(b"", length=8 << 20))
                chunk = b" " * 65536
                try:
                    for _ in range(int(7.9 * 16)):
                        sock.sendall(chunk)
                except OSError:
                    pass  # refused early (503 busy) and closed
            data = b""
            try:
                while True:
                    got = sock.recv(65536)
                    if not got:
                        break
                    data += got
            except OSError:
                pass
            with lock:
                closed[kind].append(time.monotonic() - t0)
                if kind == "stalled":
                    answers.append(status_of(data)[0])

    threads = [threading.Thread(target=client, args=(kind,), daemon=True)
               for kind, n in (("partial", 60), ("silent", 60), ("idle", 60), ("stalled", 30)) for _ in range(n)]
    for t in threads:
        t.start()
    worst, peak_kb = 0.0, base_kb
    while any(t.is_alive() for t in threads):
        t0 = time.monotonic()
        assert central.get("/healthz", timeout=10)[0] == 200
        worst = max(worst, time.monotonic() - t0)
        peak_kb = max(peak_kb, central.proc.rss_kb())
        time.sleep(0.2)
    for t in threads:
        t.join(1)
    linger = 2.0  # central.listener.LINGER_SECONDS
    limit = {"partial": header_t, "silent": header_t, "idle": keepalive_t, "stalled": body_t + linger}
    for kind, times in closed.items():
        assert len(times) == {"stalled": 30}.get(kind, 60), kind
        assert max(times) < limit[kind] + 3, (kind, max(times))
    assert set(answers) <= {408, 503} and 408 in answers and 503 in answers, answers
    # Memory: the bodies are released, and (with the allocator's help) the RSS comes back.
    after_kb = wait_until("RSS back within 50 MB of the start",
                          lambda: (central.proc.rss_kb() - base_kb < 50 * 1024) and central.proc.rss_kb(), 60, 1.0)
    metrics = central.get("/metrics")[1].decode()
    assert "heatmap_ingest_inflight_bytes 0.0" in metrics
    assert status_of(request(central.port, post(good_body(99))))[0] == 201
    assert central.stop() == 0
    log = central.proc.log(5000)
    assert "Traceback" not in log and " ERROR " not in log, log[-3000:]
    record("slow clients (60/60/60/30)", {"sent": 21, "got": 21, "lost": 0, "doubled": 0}, None,
           healthz_max_ms=round(worst * 1000), rss_base_mb=base_kb // 1024, rss_peak_mb=peak_kb // 1024,
           rss_after_mb=after_kb // 1024, answers_408=answers.count(408), answers_503=answers.count(503))
