"""The start-up catch-up on the central benchmark's dataset (50 million raw rows by default).

Three starts of ``python -m central serve`` on the dataset of ``bench/central_bench.py``
(generated first where absent, with its kept answers built by a first start):

* ``restart``: a start whose kept answers are current (the common case): seconds from the
  process start to ``/readyz`` 200, and to ``catching_up`` = 0 (every slot answer checked
  against its sources);
* ``behind``: the kept answers emptied while their sources stay (``slot_answers`` and the
  site-days truncated: what an upgrade, a restore or a long outage with other writers looks
  like at its worst): the same two figures, the slots refreshed, and one site-day's
  dashboard latency while it catches up (computed from the sources) and after (kept);
* both answers are compared with the handoff's queries over ``camera_events`` for that
  site-day (peak and events per zone must match while catching up too).

Progress goes to stderr; the last stdout line is one JSON object of figures.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import statistics
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

_spec = importlib.util.spec_from_file_location("central_bench", ROOT / "bench" / "central_bench.py")
central_bench = importlib.util.module_from_spec(_spec)  # type: ignore[arg-type]
_spec.loader.exec_module(central_bench)  # type: ignore[union-attr]


def log(msg: str, *args) -> None:
    sys.stderr.write("[catchup-bench %s] %s\n" % (time.strftime("%H:%M:%S"), msg % args))
    sys.stderr.flush()


def get(url: str) -> tuple[int, dict]:
    try:
        with urllib.request.urlopen(url, timeout=60) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


def dashboard_ms(base: str, day: str, n: int = 20) -> tuple[float, dict]:
    times, doc = [], {}
    for _ in range(n):
        t0 = time.perf_counter()
        _, doc = get("%s/api/v1/dashboard/%s?date=%s" % (base, central_bench.SITE, day))
        times.append((time.perf_counter() - t0) * 1000)
    return round(statistics.median(times), 2), doc


def start(data_dir: Path) -> tuple[object, float, float, float | None, dict]:
    """(server, seconds to listening, to ready, to caught up, dashboard while catching up)."""
    t0 = time.monotonic()
    server = central_bench.Server(data_dir, None)
    listening = time.monotonic() - t0
    while get(server.base + "/readyz")[0] != 200:
        time.sleep(0.1)
    ready = time.monotonic() - t0
    during = {}
    _, health = get(server.base + "/readyz")
    if health.get("catching_up"):
        ms, doc = dashboard_ms(server.base, central_bench.DAY, 5)
        during = {"ms": ms, "zones": {z: (v["peak"], v["events"]) for z, v in doc["zones"].items()},
                  "read": doc["meta"].get("read"), "catching_up": health["catching_up"]}
    while True:
        _, health = get(server.base + "/readyz")
        if health.get("catching_up") == 0:
            break
        time.sleep(0.2)
    return server, listening, ready, time.monotonic() - t0, during


def handoff_zones(data_dir: Path) -> dict:
    from datetime import date

    from zoneinfo import ZoneInfo

    from central.sites import local_day
    from central.storage.store import Store

    store = Store("chdb://%s" % (data_dir / "chdb"))
    lo, hi = local_day(date.fromisoformat(central_bench.DAY), ZoneInfo("Asia/Kolkata"))
    rows = store.query(central_bench.HANDOFF[0], {"site_name": central_bench.SITE, "start_ts": lo, "end_ts": hi})
    store.close()
    return {str(z): (int(p), int(e)) for z, p, e in rows}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data-dir", type=Path, default=Path("/tmp/heatmap-bench/central"))
    parser.add_argument("--rows", type=int, default=50_000_000)
    args = parser.parse_args()
    data_dir = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    figures: dict = central_bench.child("generate", data_dir, args.rows)
    log("first start (builds the kept answers where absent)")
    server, _, ready, caught, _ = start(data_dir)
    server.stop()  # type: ignore[attr-defined]
    figures["first_start_caught_up_s"] = round(caught, 1)
    want = handoff_zones(data_dir)

    log("restart with current answers")
    server, listening, ready, caught, _ = start(data_dir)
    ms, doc = dashboard_ms(server.base, central_bench.DAY)  # type: ignore[attr-defined]
    server.stop()  # type: ignore[attr-defined]
    figures.update(restart_listening_s=round(listening, 1), restart_ready_s=round(ready, 1),
                   restart_caught_up_s=round(caught, 1), restart_dashboard_ms=ms)
    assert {z: (v["peak"], v["events"]) for z, v in doc["zones"].items()} == want

    log("answers behind their sources: slot_answers and the site-days emptied")
    from central.storage.store import Store

    store = Store("chdb://%s" % (data_dir / "chdb"))
    for table in ("slot_answers", "day_answers", "day_answers_by_day"):
        store.command("TRUNCATE TABLE %s" % table)
    store.close()
    server, listening, ready, caught, during = start(data_dir)
    ms, doc = dashboard_ms(server.base, central_bench.DAY)  # type: ignore[attr-defined]
    server.stop()  # type: ignore[attr-defined]
    figures.update(behind_listening_s=round(listening, 1), behind_ready_s=round(ready, 1),
                   behind_caught_up_s=round(caught, 1), behind_dashboard_during_ms=during.get("ms"),
                   behind_dashboard_during_read=during.get("read"), behind_dashboard_after_ms=ms,
                   behind_catching_up_site_days=during.get("catching_up"))
    if during:
        assert during["zones"] == want, "a wrong answer while catching up"
    assert {z: (v["peak"], v["events"]) for z, v in doc["zones"].items()} == want
    figures["answers_match_handoff"] = True
    print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
