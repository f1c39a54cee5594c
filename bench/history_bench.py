"""Range-view benchmark: history, overview, export and zones through ``python -m central serve``.

* dataset: ``camera_events`` with ``--sites`` x 16 cameras over 366 days (``--rows``,
  50,000,000 by default) generated inside ClickHouse with INSERT ... SELECT FROM numbers()
  (the raw rollup ``raw_slots`` fills on insert), plus edge ``slot_states``: every slot of
  every camera of SITE_000 for the whole year (the export's ~562k rows) and the last 30 days
  of every other site, so answers mix edge and raw. Sites cycle through UTC, London, New
  York, Kolkata, Kathmandu and Chatham. It lives OUTSIDE the repo (default
  /tmp/heatmap-bench/history, ``--data-dir``) and is reused when present.
* history: one site, 31 days at ``hour`` (target p50 <= 20 ms) and 366 days at ``day``
  (p50 <= 50 ms), sequential requests rotating over sites (history has no cache);
* overview: 100 sites in one request, a different date each time, with each site's
  ``vs_typical`` and ``now_peak`` (p50 <= 50 ms);
* typical: one site-day's band from the 8 same weekdays before it, rotating over sites and
  dates (computed afresh on every request; p50 <= 20 ms);
* zones report (working hours, Mon-Fri): one site over 31 days (p50 <= 30 ms) and 366 days
  (p50 <= 100 ms), rotating over sites, and every site's 16 zones over 31 days in one request
  (p50 <= 300 ms), 31 days from a different month's first each time;
* start: the time to the open port and to ``catching_up`` 0 in ``/healthz`` (the kept
  answers checked against their sources after a start; the views are measured after it);
* export: SITE_000, 366 days at ``slot`` as CSV (target >= 200,000 rows/s), with the server's
  RSS sampled while it streams (flat: the peak stays near the start).

Progress goes to stderr; the last stdout line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import threading
import time
from datetime import date, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

CAMERAS, DAYS = 16, 366
START = 1735689600  # 2025-01-01T00:00:00Z
ZONES = ["UTC", "Europe/London", "America/New_York", "Asia/Kolkata", "Asia/Kathmandu", "Pacific/Chatham"]


def log(msg: str, *args) -> None:
    sys.stderr.write("[history-bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg % args))
    sys.stderr.flush()


GENERATE_RAW = """
INSERT INTO camera_events (site_name, cam_name, people_count, event_timestamp, event_triggers)
SELECT
    concat('SITE_', leftPad(toString(n % {sites:UInt32}), 3, '0')),
    concat('CAM_', leftPad(toString(intDiv(n, {sites:UInt32}) % {cams:UInt32}), 2, '0')),
    toUInt16(cityHash64(n) % 30),
    toDateTime({start:UInt32} + cityHash64(n, 2) % {span:UInt64}, 'UTC'),
    multiIf(cityHash64(n, 1) % 50 = 0, ['UNAUTHORIZED_STRANGER'],
            cityHash64(n, 1) % 50 = 1, ['RESTRICTED_ACCESS', 'CROWD_VIOLATION'],
            CAST([], 'Array(String)'))
FROM (SELECT number AS n FROM numbers({lo:UInt64}, {count:UInt64}))
"""

# One state per (site, camera, slot) of [lo, hi): slot n of camera c.
GENERATE_STATES = """
INSERT INTO slot_states
SELECT site, concat('jetson-', site), concat('CAM_', leftPad(toString(n % {cams:UInt32}), 2, '0')),
       toDateTime({lo:UInt32} + intDiv(n, {cams:UInt32}) * 900, 'UTC'),
       toUInt16(cityHash64(n, site) % 30), toUInt32(cityHash64(n, site, 1) % 40),
       CAST(if(cityHash64(n, site, 2) % 20 = 0, map('CROWD_VIOLATION', toUInt32(1)), map()),
            'Map(LowCardinality(String), UInt32)'),
       toUInt64(1), now64(3)
FROM (SELECT number AS n FROM numbers({count:UInt64}))
ARRAY JOIN {sites:Array(String)} AS site
"""


def generate(data_dir: Path, rows: int, sites: int) -> dict:
    from central.storage import rollup, schema
    from central.storage.store import Store

    store = Store("chdb://%s" % (data_dir / "chdb"))
    schema.migrate(store)
    raw_time = schema.detect_raw_time(store)
    rollup.ensure(store, raw_time, None, build_it=True)  # the view exists before the rows
    have = store.query("SELECT count() FROM camera_events")[0][0]
    states = store.query("SELECT count() FROM slot_states")[0][0]
    if have >= rows and states > 0:
        log("dataset present: %d raw rows, %d slot states", have, states)
        store.close()
        return {"raw_rows": have, "slot_states": states, "generated_s": 0.0}
    assert have == 0, "partial dataset in %s; delete it" % data_dir
    t0 = time.time()
    step = 5_000_000
    for lo in range(0, rows, step):
        store.command(GENERATE_RAW, parameters={
            "sites": sites, "cams": CAMERAS, "start": START, "span": DAYS * 86400, "lo": lo,
            "count": min(step, rows - lo)}, settings={"max_insert_threads": 2})
        log("raw rows: %d", min(rows, lo + step))
    slots_year = DAYS * 96
    store.command(GENERATE_STATES, parameters={"cams": CAMERAS, "lo": START, "count": slots_year * CAMERAS,
                                               "sites": ["SITE_000"]})
    recent = START + (DAYS - 30) * 86400
    others = ["SITE_%03d" % i for i in range(1, sites)]
    for i in range(0, len(others), 10):
        store.command(GENERATE_STATES, parameters={"cams": CAMERAS, "lo": recent, "count": 30 * 96 * CAMERAS,
                                                   "sites": others[i:i + 10]})
    have = store.query("SELECT count() FROM camera_events")[0][0]
    states = store.query("SELECT count() FROM slot_states")[0][0]
    elapsed = time.time() - t0
    log("dataset: %d raw rows, %d slot states in %.0f s", have, states, elapsed)
    store.close()
    return {"raw_rows": have, "slot_states": states, "generated_s": round(elapsed, 1)}


def sites_file(data_dir: Path, sites: int) -> Path:
    lines = ['[defaults]\ntimezone = "UTC"\n']
    for i in range(sites):
        lines.append('[sites.SITE_%03d]\ntimezone = "%s"\n' % (i, ZONES[i % len(ZONES)]))
        for c in range(0, CAMERAS, 4):
            lines.append("[sites.SITE_%03d.zones.CAM_%02d]\ncapacity = %d\n" % (i, c, 20 + c))
    path = data_dir / "sites.toml"
    path.write_text("\n".join(lines))
    return path


class Server:
    """``python -m central serve`` on the dataset, on a free port."""

    def __init__(self, data_dir: Path, sites: int):
        from tests.harness import free_port, wait_for_port

        self.port = free_port()
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
        env.update(HEATMAP_DATA_DIR=str(data_dir), HEATMAP_HTTP_ADDR="127.0.0.1:%d" % self.port,
                   HEATMAP_SITES_FILE=str(sites_file(data_dir, sites)), HEATMAP_LOG_LEVEL="WARNING")
        self.log = open(data_dir / "central.log", "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "central", "serve"], cwd=ROOT, env=env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        # The first start on a new dataset builds the rollup and the kept answers (minutes).
        t0 = time.monotonic()
        wait_for_port(self.port, timeout=3600)
        self.base = "http://127.0.0.1:%d" % self.port
        self.port_s = round(time.monotonic() - t0, 1)
        # Reads are right while the kept answers are checked against their sources after a
        # start, but computed from the sources: measure the views once caught up.
        while self.catching_up():
            time.sleep(1)
        self.caught_up_s = round(time.monotonic() - t0, 1)
        log("port open in %.1f s, caught up in %.1f s", self.port_s, self.caught_up_s)

    def catching_up(self) -> int:
        import urllib.request

        with urllib.request.urlopen(self.base + "/healthz", timeout=60) as resp:
            return int(json.load(resp).get("catching_up") or 0)

    def rss_mb(self) -> float:
        with open("/proc/%d/status" % self.proc.pid) as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        return 0.0

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self.log.close()


async def timed(base: str, paths: list[str]) -> list[float]:
    import aiohttp

    out = []
    async with aiohttp.ClientSession() as session:
        async with session.get(base + "/readyz") as resp:
            await resp.read()
        for path in paths:
            t0 = time.perf_counter()
            async with session.get(base + path) as resp:
                await resp.read()
                assert resp.status == 200, (path, resp.status)
            out.append(time.perf_counter() - t0)
    return out


def p50_ms(times: list[float]) -> float:
    return round(statistics.median(times) * 1000, 2)


async def export(server: Server, path: str) -> dict:
    import aiohttp

    samples: list[float] = []
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.05):
            samples.append(server.rss_mb())

    before = server.rss_mb()
    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    lines = 0
    size = 0
    t0 = time.perf_counter()
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
        async with session.get(server.base + path) as resp:
            assert resp.status == 200, resp.status
            async for chunk in resp.content.iter_chunked(1 << 16):
                lines += chunk.count(b"\n")
                size += len(chunk)
    elapsed = time.perf_counter() - t0
    stop.set()
    sampler.join()
    rows = lines - 1  # the header
    return {"export_rows": rows, "export_mb": round(size / 1e6, 1), "export_s": round(elapsed, 2),
            "export_rows_per_s": round(rows / elapsed), "export_rss_before_mb": round(before, 1),
            "export_rss_max_mb": round(max(samples, default=before), 1),
            "export_rss_after_mb": round(server.rss_mb(), 1)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/heatmap-bench/history"))
    parser.add_argument("--rows", type=int, default=50_000_000)
    parser.add_argument("--sites", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--phase", choices=["generate"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.data_dir.mkdir(parents=True, exist_ok=True)
    if args.phase == "generate":
        print(json.dumps(generate(args.data_dir, args.rows, args.sites)))
        return 0
    figures: dict = {"sites": args.sites, "cameras": CAMERAS, "days": DAYS}
    proc = subprocess.run([sys.executable, __file__, "--phase", "generate", "--data-dir", str(args.data_dir),
                           "--rows", str(args.rows), "--sites", str(args.sites)],
                          cwd=ROOT, stdout=subprocess.PIPE, text=True, check=True)
    figures.update(json.loads(proc.stdout.strip().splitlines()[-1]))
    server = Server(args.data_dir, args.sites)
    figures.update(start_port_s=server.port_s, start_caught_up_s=server.caught_up_s)
    try:
        n = args.repeats
        site = ["SITE_%03d" % (i % args.sites) for i in range(n)]
        hour = ["/api/v1/history/%s?from=2025-12-01&to=2025-12-31&bucket=hour" % s for s in site]
        day = ["/api/v1/history/%s?from=2025-01-01&to=2026-01-01&bucket=day" % s for s in site]
        overview = ["/api/v1/overview?date=2025-%02d-%02d" % (1 + i % 12, 1 + i % 28) for i in range(n)]
        work = "&hours=09:00-18:00&weekdays=mon,tue,wed,thu,fri"
        zones_31 = ["/api/v1/zones/%s?from=2025-12-01&to=2025-12-31%s" % (s, work) for s in site]
        zones_366 = ["/api/v1/zones/%s?from=2025-01-01&to=2026-01-01%s" % (s, work) for s in site]
        months = [date(2025, 1 + i % 12, 1) for i in range(max(3, n // 3))]
        zones_all = ["/api/v1/zones?from=%s&to=%s%s" % (m, m + timedelta(days=30), work) for m in months]
        typical = ["/api/v1/typical/%s?date=2025-12-%02d" % (s, 1 + i % 28) for i, s in enumerate(site)]
        asyncio.run(timed(server.base, hour[:3] + day[:3] + overview[:3] + zones_31[:1] + zones_all[:1]))  # warm
        log("history, 31 days at hour")
        figures["history_hour_31d_p50_ms"] = p50_ms(asyncio.run(timed(server.base, hour)))
        log("history, 366 days at day")
        figures["history_day_366d_p50_ms"] = p50_ms(asyncio.run(timed(server.base, day)))
        log("overview of %d sites", args.sites)
        figures["overview_p50_ms"] = p50_ms(asyncio.run(timed(server.base, overview)))
        log("typical of one site-day (8 weeks, computed afresh)")
        figures["typical_p50_ms"] = p50_ms(asyncio.run(timed(server.base, typical)))
        log("zones of one site, 31 days")
        figures["zones_site_31d_p50_ms"] = p50_ms(asyncio.run(timed(server.base, zones_31)))
        log("zones of one site, 366 days")
        figures["zones_site_366d_p50_ms"] = p50_ms(asyncio.run(timed(server.base, zones_366)))
        log("zones of %d sites, 31 days", args.sites)
        figures["zones_all_sites_31d_p50_ms"] = p50_ms(asyncio.run(timed(server.base, zones_all)))
        log("export, SITE_000, 366 days at slot, CSV")
        figures.update(asyncio.run(export(server, "/api/v1/export/SITE_000?from=2025-01-01&to=2026-01-01"
                                                  "&bucket=slot&format=csv")))
        log("%s", figures)
    finally:
        server.stop()
    figures["targets_met"] = {
        "history_hour_p50_le_20ms": figures["history_hour_31d_p50_ms"] <= 20,
        "history_day_p50_le_50ms": figures["history_day_366d_p50_ms"] <= 50,
        "overview_p50_le_50ms": figures["overview_p50_ms"] <= 50,
        "typical_p50_le_20ms": figures["typical_p50_ms"] <= 20,
        "export_ge_200k_rows_per_s": figures["export_rows_per_s"] >= 200_000,
        "zones_site_31d_p50_le_30ms": figures["zones_site_31d_p50_ms"] <= 30,
        "zones_site_366d_p50_le_100ms": figures["zones_site_366d_p50_ms"] <= 100,
        "zones_all_sites_p50_le_300ms": figures["zones_all_sites_31d_p50_ms"] <= 300,
    }
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
