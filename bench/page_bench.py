"""Page benchmark: time to first meaningful paint in headless Chromium.

* central: ``python -m central serve`` (embedded chDB) in a temp dir with ``--sites`` sites
  (4 zones each, with capacities), seeded through ``POST /api/v1/events`` with raw events on
  each of the 31 local days ending 2026-01-31 (8 a day per site, at fixed times);
* portfolio: ``/?view=portfolio&date=2026-01-31`` (one /api/v1/overview request for all sites);
* range: ``/?view=range&site=SITE_000&from=2026-01-01&to=2026-01-31&compare=previous``
  (history by day with the previous 31 days, and the 8-week profile).

"Meaningful paint" is the moment the page has rendered the view's numbers (``main`` reaches
``data-state=ready``), measured as ``performance.now()`` from navigation start, then one
animation frame so the browser has painted it; ``*_api_ms`` is the slowest data request
of that load (overview; history or profile), the rest is the browser's. Each view is loaded ``--repeats`` times in a
fresh context (cold page, warm server). Progress goes to stderr; the last stdout line is one
JSON object of figures.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

DAY = "2026-01-31"
ZONES = ("UTC", "Europe/London", "America/New_York", "Asia/Kolkata")


def sites_toml(sites: int) -> str:
    lines = ['[defaults]\ntimezone = "UTC"\n']
    for i in range(sites):
        lines.append('[sites.SITE_%03d]\ndisplay_name = "Site %d"\ntimezone = "%s"\n' % (i, i, ZONES[i % 4]))
        for z in range(4):
            lines.append("[sites.SITE_%03d.zones.ZONE_%d]\ncapacity = %d\nx = %d\ny = 0\nw = 1\nh = 1\n"
                         % (i, z, 10 + 5 * z, z))
    return "\n".join(lines)


def events(sites: int) -> list[dict]:
    out = []
    for i in range(sites):
        for d in range(1, 32):
            for k in range(8):
                out.append({"site": "SITE_%03d" % i, "camera": "ZONE_%d" % (k % 4),
                            "timestamp": "2026-01-%02dT%02d:%02d:00Z" % (d, 8 + k, (i * 7) % 60),
                            "people_count": (i + d + k) % 17, "triggers": ["CROWD"] if k == 3 else []})
    return out


def post(base: str, batch: list[dict], key: str) -> None:
    req = urllib.request.Request(base + "/api/v1/events", data=json.dumps(batch).encode(),
                                 headers={"Content-Type": "application/json", "Idempotency-Key": key})
    with urllib.request.urlopen(req, timeout=120) as resp:
        resp.read()


def measure(browser, url: str, repeats: int, api: list[float]) -> list[float]:
    """Paint times in ms; appends the longest /api/v1/ request of each load to ``api``."""
    out = []
    for _ in range(repeats):
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        page = context.new_page()
        page.goto(url)
        page.wait_for_selector("#main[data-state=ready]", timeout=120000)
        out.append(page.evaluate("() => new Promise(r => requestAnimationFrame(() => r(performance.now())))"))
        api.append(page.evaluate("""() => Math.max(0, ...performance.getEntriesByType('resource')
            .filter(e => e.name.includes('/api/v1/') && !e.name.includes('/api/v1/sites')).map(e => e.duration))"""))
        context.close()
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()

    from playwright.sync_api import sync_playwright

    from tests.harness import free_port, wait_for_port

    with tempfile.TemporaryDirectory(prefix="heatmap-page-bench-") as tmp:
        port = free_port()
        base = "http://127.0.0.1:%d" % port
        (Path(tmp) / "sites.toml").write_text(sites_toml(args.sites))
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
        env.update(HEATMAP_DATA_DIR=tmp + "/central", HEATMAP_SITES_FILE=tmp + "/sites.toml",
                   HEATMAP_HTTP_ADDR="127.0.0.1:%d" % port, HEATMAP_LOG_LEVEL="WARNING")
        with open(tmp + "/central.log", "wb") as log:
            proc = subprocess.Popen([sys.executable, "-m", "central", "serve"], cwd=ROOT, env=env,
                                    stdout=log, stderr=subprocess.STDOUT)
        try:
            wait_for_port(port, timeout=120)
            evs = events(args.sites)
            t0 = time.monotonic()
            for n in range(0, len(evs), 1000):
                post(base, evs[n:n + 1000], "page-bench-%d" % n)
            print("seeded %d events in %.1f s" % (len(evs), time.monotonic() - t0), file=sys.stderr)
            pw = sync_playwright().start()
            try:
                browser = pw.chromium.launch(executable_path="/usr/bin/chromium",
                                             args=["--no-sandbox", "--disable-gpu"])
                portfolio_api: list[float] = []
                range_api: list[float] = []
                portfolio = measure(browser, base + "/?view=portfolio&date=" + DAY, args.repeats, portfolio_api)
                rows = None
                context = browser.new_context()
                page = context.new_page()
                page.goto(base + "/?view=portfolio&date=" + DAY)
                page.wait_for_selector("#main[data-state=ready]", timeout=120000)
                rows = page.eval_on_selector_all("#portfolio-body tr", "r => r.length")
                context.close()
                rng = measure(browser, base + "/?view=range&site=SITE_000&from=2026-01-01&to=" + DAY
                              + "&compare=previous", args.repeats, range_api)
                browser.close()
            finally:
                pw.stop()
        finally:
            proc.terminate()
            proc.wait(60)
    print(json.dumps({
        "sites": args.sites, "portfolio_rows": rows, "repeats": args.repeats,
        "portfolio_paint_ms_p50": round(statistics.median(portfolio)),
        "portfolio_paint_ms_max": round(max(portfolio)),
        "portfolio_api_ms_p50": round(statistics.median(portfolio_api)),
        "range31_paint_ms_p50": round(statistics.median(rng)),
        "range31_paint_ms_max": round(max(rng)),
        "range31_api_ms_p50": round(statistics.median(range_api)),
    }))
    return 0


if __name__ == "__main__":
    sys.exit(main())
