"""Screenshots of every view of the page from the demo, for the README and docs/page.md.

Starts ``python -m demo`` (its own state directory in a temp dir, a free port, 7 days of
history, live traffic, no outage), waits until it is ready and has fired its first alerts,
then drives Debian's Chromium (Playwright) at desktop (1440x1000, the whole page) and phone
(390x844, the first screen) width over the day, All sites and range views, and writes
``docs/img/page-VIEW[-phone].png``. The day view shows the demo site where it is now nearest
mid-afternoon (today, with its alerts); the range view London, whose intensity follows
capacity. Ctrl-C or the end stops the demo.

    .venv/bin/python bench/screenshots.py [--out docs/img] [--days 7]
"""

from __future__ import annotations

import argparse
import json
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

from zoneinfo import ZoneInfo

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from demo.sites import CAPACITY_SITE, SITES  # noqa: E402

CHROMIUM = "/usr/bin/chromium"
SIZES = {"": (1440, 1000), "-phone": (390, 844)}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def get(url: str):
    with urllib.request.urlopen(url, timeout=10) as resp:
        return json.loads(resp.read())


def day_site() -> str:
    """The demo site whose local time is nearest 16:00: today there is full and alerting."""
    now = datetime.now(timezone.utc)

    def distance(site) -> float:
        local = now.astimezone(ZoneInfo(site.timezone))
        return abs(local.hour + local.minute / 60 - 16)

    return min(SITES, key=distance).name


def start_demo(workdir: Path, port: int, days: float) -> tuple[subprocess.Popen, threading.Event]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "demo", "--dir", str(workdir / "demo"), "--http-addr", "127.0.0.1:%d" % port,
         "--days", "%g" % days, "--outage-minutes", "0"],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    ready = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            sys.stderr.write(line)
            if "Press Ctrl-C" in line:
                ready.set()

    threading.Thread(target=read, daemon=True).start()
    return proc, ready


def shoot(base: str, out: Path) -> list[Path]:
    from playwright.sync_api import sync_playwright

    site = day_site()
    views = {
        "day": "/?site=%s" % site,
        "portfolio": "/?view=portfolio",
        "range": "/?view=range&site=%s" % CAPACITY_SITE,
    }
    written = []
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"])
        try:
            for suffix, (width, height) in SIZES.items():
                context = browser.new_context(viewport={"width": width, "height": height})
                page = context.new_page()
                for view, url in views.items():
                    page.goto(base + url)
                    page.wait_for_selector("#main[data-state=ready]", timeout=60000)
                    if view == "day":
                        page.wait_for_selector("#alerts li, #alerts-none:not([hidden])", timeout=30000)
                    path = out / ("page-%s%s.png" % (view, suffix))
                    page.screenshot(path=str(path), full_page=not suffix)
                    written.append(path)
                    print("wrote %s" % path, file=sys.stderr)
                context.close()
        finally:
            browser.close()
    return written


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="bench/screenshots.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=str(ROOT / "docs" / "img"), help="where the PNG files go (default docs/img)")
    p.add_argument("--days", type=float, default=7.0, help="days of history the demo backfills (default 7)")
    args = p.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    port = free_port()
    base = "http://127.0.0.1:%d" % port
    with tempfile.TemporaryDirectory(prefix="heatmap-shots-") as tmp:
        proc, ready = start_demo(Path(tmp), port, args.days)
        try:
            if not ready.wait(600):
                print("the demo did not get ready", file=sys.stderr)
                return 1
            # The demo's first alerts come from the backfill's last hour, judged at once.
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline and not get(base + "/api/v1/alerts")["alerts"]:
                time.sleep(1)
            shoot(base, out)
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGINT)
            try:
                proc.wait(90)
            except subprocess.TimeoutExpired:
                proc.kill()
    return 0


if __name__ == "__main__":
    sys.exit(main())
