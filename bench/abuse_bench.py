"""Central under a hostile and a heavy client, on loopback (issue 13).

* abuse: 200 clients dripping a request head one header line per second, plus 60 uploads
  of 8 MB that stall after 7.9 MB, against ``python -m central serve`` with short
  timeouts. Figures: ``/healthz`` latency (a separate prober process, one request every
  20 ms), central's RSS growth, how long each slow connection stayed open against its
  configured limit, and the RSS a minute after the clients are gone.
  Targets: healthz p99 <= 50 ms, RSS growth <= 100 MB, every slow connection closed within
  its timeout, RSS back within 50 MB of the start.
* batches: four 50,000-event batches (about 6 MB each, the documented maximum) posted at
  once, three rounds; ``/healthz`` p99 <= 20 ms meanwhile. Figures: that p99, and the
  ingest throughput (events of the rounds over the rounds' wall time, the pauses between
  rounds left out).
* far past: a 2-event POST, one event stamped 2000-01-03 and one two hours ago (issue 27);
  answered (refused per item past ``HEATMAP_MAX_EVENT_AGE_DAYS``) within 1 s.
* exports: 100 clients ask at once for a year of one site at ``bucket=slot`` as CSV, read the
  status line and then nothing (issue 27). Figures: the answers (at most
  ``HEATMAP_MAX_EXPORTS`` are run, the rest 503 ``busy``), the exports central cut after
  its write timeout, central's RSS growth (<= 100 MB) and its RSS a minute after the
  clients are gone (back within 50 MB of before).

``--phases`` picks some of abuse, batches, far_past and exports (all by default); the
exports' dataset is ``--export-events`` raw events spread over the last 366 days.

Everything runs in a temp directory (removed at the end) and only talks to 127.0.0.1.
Progress goes to stderr; the last stdout line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

HEADER_T, KEEPALIVE_T, BODY_T, EXPORT_T = 5.0, 5.0, 10.0, 10.0
EXPORT_SITE = "EXPORT_SITE"
LINGER = 2.0  # central.listener.LINGER_SECONDS
SLACK = 1.0  # timer granularity and scheduling on a busy 2-core machine


def log(msg: str, *args) -> None:
    sys.stderr.write("[abuse-bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg % args))
    sys.stderr.flush()


def pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, round(q / 100 * (len(values) - 1)))] if values else 0.0


# -- the prober: its own process, so the load generator's GIL never inflates its figures ---

def probe(port: int, stop_file: str, interval: float) -> None:
    times = []
    conn = None
    while not os.path.exists(stop_file):
        t0 = time.perf_counter()
        try:
            if conn is None:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
            conn.request("GET", "/healthz")
            resp = conn.getresponse()
            resp.read()
            ok = resp.status == 200
        except (OSError, http.client.HTTPException):
            conn, ok = None, False
        times.append((time.perf_counter() - t0) if ok else float("inf"))
        time.sleep(max(0.0, interval - (time.perf_counter() - t0)))
    print(json.dumps(times))


class Prober:
    def __init__(self, port: int, workdir: Path, interval: float = 0.02):
        self.stop_file = workdir / ("stop-%d" % time.monotonic_ns())
        self.proc = subprocess.Popen([sys.executable, __file__, "--probe", str(port), str(self.stop_file),
                                      str(interval)], cwd=ROOT, stdout=subprocess.PIPE, text=True)

    def finish(self) -> dict:
        self.stop_file.write_text("")
        out, _ = self.proc.communicate(timeout=60)
        times = json.loads(out.strip().splitlines()[-1])
        ok = [t for t in times if t != float("inf")]
        return {"n": len(times), "failed": len(times) - len(ok), "p50_ms": round(pct(ok, 50) * 1000, 2),
                "p99_ms": round(pct(ok, 99) * 1000, 2), "max_ms": round(max(ok) * 1000, 2) if ok else None}


# -- central -----------------------------------------------------------------------------------

class Central:
    def __init__(self, workdir: Path):
        from tests.harness import free_port, wait_for_port

        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
        env.update(HEATMAP_DATA_DIR=str(workdir / "central"), HEATMAP_HTTP_ADDR="127.0.0.1:%d" % self.port,
                   HEATMAP_LOG_LEVEL="WARNING", HEATMAP_HTTP_HEADER_TIMEOUT=str(HEADER_T),
                   HEATMAP_HTTP_KEEPALIVE_TIMEOUT=str(KEEPALIVE_T), HEATMAP_HTTP_BODY_TIMEOUT=str(BODY_T),
                   HEATMAP_EXPORT_WRITE_TIMEOUT=str(EXPORT_T), HEATMAP_CACHE_TTL="0")
        self.log_path = workdir / "central.log"
        self.log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "central", "serve"], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        wait_for_port(self.port, timeout=120)
        deadline = time.monotonic() + 120
        while self.get("/healthz").get("schema") != "ready":
            assert time.monotonic() < deadline, "central did not become ready"
            time.sleep(0.2)

    def get(self, path: str) -> dict:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=30) as resp:
            return json.loads(resp.read()) if path != "/metrics" else {"text": resp.read().decode()}

    def rss_mb(self) -> float:
        for line in Path("/proc/%d/status" % self.proc.pid).read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise RuntimeError("no VmRSS")

    def cpu_s(self) -> float:
        """User + system CPU seconds central has used so far."""
        fields = Path("/proc/%d/stat" % self.proc.pid).read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> int:
        self.proc.terminate()
        code = self.proc.wait(60)
        self.log.close()
        return code


class RssSampler(threading.Thread):
    def __init__(self, central: Central):
        super().__init__(daemon=True)
        self.central, self.peak, self.halt = central, 0.0, threading.Event()

    def run(self) -> None:
        while not self.halt.wait(0.1):
            self.peak = max(self.peak, self.central.rss_mb())


# -- abuse phase -------------------------------------------------------------------------------

async def slow_header(port: int) -> float:
    """Drip a head one header line a second; seconds until central closes the connection."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    t0 = time.monotonic()
    writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    closed = asyncio.ensure_future(reader.read())
    try:
        for i in range(120):
            done, _ = await asyncio.wait({closed}, timeout=1.0)
            if done:
                break
            writer.write(b"X-Drip-%d: y\r\n" % i)
        await asyncio.wait_for(closed, 130)
        return time.monotonic() - t0
    finally:
        writer.close()


async def stalled_upload(port: int) -> tuple[str, float]:
    """8 MB declared, 7.9 MB sent, then nothing; (answer, seconds from the stall to the close)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    size = 8 << 20
    writer.write(b"POST /api/v1/events HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                 b"Content-Length: %d\r\n\r\n[" % size)
    chunk = b" " * 65536
    t0 = time.monotonic()
    try:
        for _ in range(int(7.9 * 16)):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, OSError):
        pass  # refused at once (503) and closed
    stalled_at = time.monotonic()
    try:
        data = await asyncio.wait_for(reader.read(), 130)
    except (ConnectionError, OSError):
        data = b""
    writer.close()
    status = data.split(b" ", 2)[1].decode() if data.startswith(b"HTTP/1.1 ") else "reset"
    return status, time.monotonic() - min(stalled_at, t0 + 5)


async def abuse(port: int, slow: int, uploads: int) -> dict:
    heads = [asyncio.ensure_future(slow_header(port)) for _ in range(slow)]
    ups = [asyncio.ensure_future(stalled_upload(port)) for _ in range(uploads)]
    head_times = await asyncio.gather(*heads)
    up_results = await asyncio.gather(*ups)
    answers: dict[str, int] = {}
    for status, _ in up_results:
        answers[status] = answers.get(status, 0) + 1
    admitted = [t for s, t in up_results if s == "408"]
    refused = [t for s, t in up_results if s != "408"]
    return {
        "slow_header_clients": slow, "slow_header_open_max_s": round(max(head_times), 2),
        "stalled_uploads": uploads, "upload_answers": answers,
        "stalled_open_max_s": round(max(admitted), 2) if admitted else None,
        "refused_open_max_s": round(max(refused), 2) if refused else None,
        "all_closed_in_time": max(head_times) <= HEADER_T + SLACK
        and all(t <= BODY_T + LINGER + SLACK for t in admitted) and all(t <= LINGER + SLACK + 5 for t in refused),
    }


# -- batches phase -----------------------------------------------------------------------------

def batch_body(seed: int, n: int = 50000) -> bytes:
    # Days counted back from today: ingest refuses events over HEATMAP_MAX_EVENT_AGE_DAYS old.
    start = int(time.time()) // 86400 * 86400 - 120 * 86400 + seed * 86400
    return json.dumps([{"site_name": "BENCH_%d" % (seed % 4), "cam_name": "CAM_%02d" % (i % 16),
                        "people_count": (i * 7 + seed) % 13, "event_timestamp": start + i,
                        "event_triggers": ["CROWD_VIOLATION"] if i % 50 == 0 else []}
                       for i in range(n)]).encode()


def post_batch(port: int, body: bytes) -> tuple[int, float]:
    t0 = time.perf_counter()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=300)
    conn.request("POST", "/api/v1/events", body=body, headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    resp.read()
    conn.close()
    return resp.status, time.perf_counter() - t0


def batches(central: Central, workdir: Path, rounds: int) -> dict:
    bodies = [batch_body(i) for i in range(4 * rounds)]
    prober = Prober(central.port, workdir)
    time.sleep(1.0)
    statuses, seconds, busy = [], [], 0.0
    for r in range(rounds):
        results: list = []
        t0 = time.perf_counter()

        def one(body: bytes, out: list = results) -> None:
            out.append(post_batch(central.port, body))

        threads = [threading.Thread(target=one, args=(bodies[r * 4 + k],)) for k in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        busy += time.perf_counter() - t0
        statuses += [s for s, _ in results]
        seconds += [t for _, t in results]
        time.sleep(0.5)
    health = prober.finish()
    return {"batch_events": 50000, "batch_bytes": len(bodies[0]), "batches": 4 * rounds,
            "batch_statuses": sorted(set(statuses)), "batch_seconds_max": round(max(seconds), 2),
            "batch_events_per_s": round(4 * rounds * 50000 / busy),
            "healthz_during_batches": health}


# -- far-past phase ----------------------------------------------------------------------------

def far_past(central: Central) -> dict:
    now = int(time.time())
    body = json.dumps([{"site": "FAR_PAST", "camera": "C", "people_count": 1, "timestamp": "2000-01-03T00:00:00Z"},
                       {"site": "FAR_PAST", "camera": "C", "people_count": 1, "timestamp": now - 7200}]).encode()
    status, seconds = post_batch(central.port, body)
    return {"far_past_status": status, "far_past_seconds": round(seconds, 3)}


# -- exports phase -----------------------------------------------------------------------------

def seed_export(central: Central, events: int) -> tuple[str, str]:
    """``events`` raw events of EXPORT_SITE over the 366 days before today (16 cameras),
    posted in time order so that each batch touches few days; the export's from and to."""
    last = int(time.time()) // 86400 * 86400 - 86400
    first = last - 365 * 86400
    step = 366 * 86400 / events
    rows = [{"site": EXPORT_SITE, "camera": "CAM_%02d" % (i % 16), "people_count": i % 23,
             "timestamp": int(first + i * step), "triggers": ["CROWD_VIOLATION"] if i % 40 == 0 else []}
            for i in range(events)]
    for i in range(0, events, 50000):
        status, _ = post_batch(central.port, json.dumps(rows[i:i + 50000]).encode())
        assert status == 201, status
    day = time.strftime("%Y-%m-%d", time.gmtime(first)), time.strftime("%Y-%m-%d", time.gmtime(last))
    return day


async def stalled_export(port: int, path: str, hold: float) -> str:
    """Ask for ``path``, read the status line, then nothing for ``hold`` seconds (a 4 KiB
    receive window); the status, or "reset"."""
    sock = socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.setblocking(False)
    await asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port))
    reader, writer = await asyncio.open_connection(sock=sock, limit=4096)
    try:
        writer.write(b"GET %s HTTP/1.1\r\nHost: x\r\n\r\n" % path.encode())
        await writer.drain()
        head = await asyncio.wait_for(reader.readexactly(12), 300)
        status = head[9:12].decode()
        await asyncio.sleep(hold)
        return status
    except (ConnectionError, OSError, asyncio.IncompleteReadError):
        return "reset"
    finally:
        writer.close()


async def stalled_exports(port: int, path: str, readers: int, hold: float) -> dict:
    results = await asyncio.gather(*(stalled_export(port, path, hold) for _ in range(readers)))
    answers: dict[str, int] = {}
    for status in results:
        answers[status] = answers.get(status, 0) + 1
    return answers


def exports(central: Central, readers: int, days: tuple[str, str], settle: float) -> dict:
    path = "/api/v1/export/%s?from=%s&to=%s&bucket=slot&format=csv" % (EXPORT_SITE, days[0], days[1])
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (central.port, path), timeout=300) as resp:
        size = len(resp.read())  # one whole export first: the working set of a reading client
    time.sleep(2.0)
    base = central.rss_mb()
    sampler = RssSampler(central)
    sampler.start()
    t0 = time.monotonic()
    answers = asyncio.run(stalled_exports(central.port, path, readers, EXPORT_T + 5))
    seconds = time.monotonic() - t0
    sampler.halt.set()
    sampler.join()
    log("stalled readers gone; waiting %.0f s for the RSS", settle)
    time.sleep(settle)
    after = central.rss_mb()
    metrics = central.get("/metrics")["text"]
    cut = sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
              if line.startswith('heatmap_http_timeouts_total{kind="export"}'))
    return {"export_bytes": size, "export_readers": readers, "export_answers": answers,
            "export_cut_by_timeout": cut, "export_phase_seconds": round(seconds, 1),
            "export_rss_start_mb": round(base, 1), "export_rss_peak_mb": round(sampler.peak, 1),
            "export_rss_growth_mb": round(sampler.peak - base, 1), "export_rss_after_mb": round(after, 1),
            "export_rss_after_minus_start_mb": round(after - base, 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--slow", type=int, default=200, help="slow-header clients")
    parser.add_argument("--uploads", type=int, default=60, help="stalled 8 MB uploads")
    parser.add_argument("--rounds", type=int, default=3, help="rounds of four 50,000-event batches")
    parser.add_argument("--settle", type=float, default=60.0, help="seconds to wait before the last RSS reading")
    parser.add_argument("--phases", default="abuse,batches,far_past,exports",
                        help="comma-separated phases to run (abuse, batches, far_past, exports)")
    parser.add_argument("--export-readers", type=int, default=100, help="stalled export readers")
    parser.add_argument("--export-events", type=int, default=200000,
                        help="raw events of the exported site over its year (one per slot row, about)")
    parser.add_argument("--probe", nargs=3, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.probe:
        probe(int(args.probe[0]), args.probe[1], float(args.probe[2]))
        return 0
    phases = set(args.phases.split(","))
    unknown = phases - {"abuse", "batches", "far_past", "exports"}
    if unknown:
        parser.error("unknown phase(s): %s" % ", ".join(sorted(unknown)))
    workdir = Path(tempfile.mkdtemp(prefix="heatmap-abuse-"))
    figures: dict = {}
    targets: dict = {}
    central = None
    try:
        central = Central(workdir)
        for i in range(3):  # warm: a few ordinary batches so the baseline is a working process
            post_batch(central.port, batch_body(100 + i, 2000))
        if "exports" in phases:
            log("exports: seeding %d events over a year of %s", args.export_events, EXPORT_SITE)
            export_days = seed_export(central, args.export_events)
        time.sleep(2.0)
        base = central.rss_mb()
        figures["rss_start_mb"] = round(base, 1)
        idle = Prober(central.port, workdir)
        time.sleep(3.0)
        figures["healthz_idle"] = idle.finish()

        if "abuse" in phases:
            log("abuse: %d slow-header clients + %d stalled 8 MB uploads", args.slow, args.uploads)
            sampler = RssSampler(central)
            sampler.start()
            prober = Prober(central.port, workdir)
            t0, cpu0 = time.monotonic(), central.cpu_s()
            figures.update(asyncio.run(abuse(central.port, args.slow, args.uploads)))
            figures["abuse_seconds"] = round(time.monotonic() - t0, 1)
            figures["central_cpu_s_during_abuse"] = round(central.cpu_s() - cpu0, 1)
            figures["healthz_during_abuse"] = prober.finish()
            sampler.halt.set()
            sampler.join()
            figures["rss_peak_mb"] = round(sampler.peak, 1)
            figures["rss_growth_mb"] = round(sampler.peak - base, 1)
            log("clients gone; waiting %.0f s for the RSS", args.settle)
            time.sleep(args.settle)
            figures["rss_after_mb"] = round(central.rss_mb(), 1)
            figures["rss_after_minus_start_mb"] = round(figures["rss_after_mb"] - base, 1)
            metrics = central.get("/metrics")["text"]
            figures["timeouts"] = {line.split('"')[1]: float(line.rsplit(" ", 1)[1])
                                   for line in metrics.splitlines() if line.startswith("heatmap_http_timeouts_total{")}
            targets.update({
                "abuse_healthz_p99_le_50ms": figures["healthz_during_abuse"]["p99_ms"] <= 50
                and figures["healthz_during_abuse"]["failed"] == 0,
                "rss_growth_le_100mb": figures["rss_growth_mb"] <= 100,
                "slow_connections_closed_in_time": figures["all_closed_in_time"],
                "rss_back_within_50mb": figures["rss_after_minus_start_mb"] <= 50,
            })

        if "batches" in phases:
            log("batches: %d rounds of four 50,000-event posts at once", args.rounds)
            cpu0 = central.cpu_s()
            figures.update(batches(central, workdir, args.rounds))
            figures["central_cpu_s_during_batches"] = round(central.cpu_s() - cpu0, 1)
            targets["batches_healthz_p99_le_20ms"] = (figures["healthz_during_batches"]["p99_ms"] <= 20
                                                      and figures["healthz_during_batches"]["failed"] == 0)

        if "far_past" in phases:
            log("far past: one event of 2000-01-03 beside one of two hours ago")
            figures.update(far_past(central))
            targets["far_past_post_le_1s"] = figures["far_past_seconds"] <= 1.0

        if "exports" in phases:
            log("exports: %d readers that stop reading", args.export_readers)
            figures.update(exports(central, args.export_readers, export_days, args.settle))
            targets["exports_rss_growth_le_100mb"] = figures["export_rss_growth_mb"] <= 100
            targets["exports_rss_back_within_50mb"] = figures["export_rss_after_minus_start_mb"] <= 50

        figures["load_average_1min"] = os.getloadavg()[0]
        figures["targets_met"] = targets
        figures["central_exit"] = central.stop()
        central = None
        text = (workdir / "central.log").read_text(errors="replace")
        figures["log_errors"] = text.count(" ERROR ") + text.count("Traceback")
    finally:
        if central is not None:
            central.proc.kill()
        shutil.rmtree(workdir, ignore_errors=True)
    print(json.dumps(figures))
    return 0 if all(targets.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
