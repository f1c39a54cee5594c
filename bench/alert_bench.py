"""Alert latency benchmark: real mosquitto, a real agent (``python -m edge run``), central
(``python -m central serve``) on embedded chDB with a trigger rule, and a real aiohttp
webhook receiver, in one run.

With background load (1 event/s on each of 8 cameras, no triggers), one probe event with
``RESTRICTED_ACCESS`` at a time goes into the agent's UDP input, each on a zone of its own
(VAULT_01, ...): the first trigger of a kind in a zone's 15-minute slot is what priority
publishing sends at once (a repeat in the same slot waits for the next regular publish); the time until the webhook
receiver gets the alert is measured; p50/p99/max over ``--probes`` (target p99 <= 2 s at
the default publish interval, which priority publishing on the edge makes fast for
critical events; ``--publish-interval 1`` measures the path without it).

Prints progress to stderr and one JSON object of figures as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from e2e_bench import CAMERAS, DEFAULT_INTERVAL, Agent, clean_env, pct, spawn, stop, wait_http  # noqa: E402

from tests.harness import Mosquitto, WebhookReceiver, free_port  # noqa: E402

SITE = "ALERT_BENCH"
PROBE_CAMERA = "VAULT_%02d"  # one zone per probe


def log(msg: str, *args) -> None:
    sys.stderr.write("[alert %s] %s\n" % (time.strftime("%H:%M:%S"), msg % args))
    sys.stderr.flush()


def line(camera: str, people: int, ts: float, triggers: list) -> bytes:
    return json.dumps({"camera": camera, "people_count": people, "timestamp": round(ts, 3), "triggers": triggers},
                      separators=(",", ":")).encode()


def background(agent: Agent, stop_event: threading.Event) -> None:
    n = 0
    next_at = time.monotonic()
    while not stop_event.is_set():
        now = time.time()
        agent.send([line(cam, 1 + (n + i) % 5, now, []) for i, cam in enumerate(CAMERAS)])
        n += 1
        next_at += 1.0
        stop_event.wait(max(0.0, next_at - time.monotonic()))


def probe(agent: Agent, receiver: WebhookReceiver, probes: int) -> tuple[list, int]:
    latencies, missed = [], 0
    for i in range(probes):
        time.sleep(0.37 + (i % 7) * 0.11)  # spread probes over the publish cycle
        before = len(receiver.requests)
        sent = time.time()
        agent.send([line(PROBE_CAMERA % (i + 1), 1, sent, ["RESTRICTED_ACCESS"])])
        try:
            receiver.wait(lambda reqs, n=before: len(reqs) > n, 15, "probe %d" % i)
        except AssertionError:
            missed += 1
            continue
        latencies.append(time.time() - sent)
    return latencies, missed


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=40, help="alert probes (default 40)")
    parser.add_argument("--publish-interval", type=float, default=None,
                        help="the agent's HEATMAP_PUBLISH_INTERVAL (default: the agent's default)")
    args = parser.parse_args()
    results: dict = {"probes": args.probes, "publish_interval_s": args.publish_interval}
    receiver = WebhookReceiver().start()
    with tempfile.TemporaryDirectory(prefix="heatmap-alert-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto").start()
        http_port = free_port()
        base = "http://127.0.0.1:%d" % http_port
        sites = work / "sites.toml"
        sites.write_text('[sites.%s]\ntimezone = "UTC"\n\n[[alerts]]\nname = "vault"\nkind = "trigger"\n'
                         'cooldown_minutes = 0\nwebhook = "%s"\n' % (SITE, receiver.url))
        central_log = work / "central.log"
        central = spawn(["central", "serve"], clean_env(
            data_dir=str(work / "central"), http_addr="127.0.0.1:%d" % http_port, mqtt_url=broker.url,
            sites_file=str(sites), webhook_secret="bench"), central_log)
        agent = None
        stop_event = threading.Event()
        try:
            wait_http(base + "/healthz", central, 120, central_log)
            interval = args.publish_interval
            agent = Agent(work, SITE, "jetson-alert", broker.url, DEFAULT_INTERVAL if interval is None else interval)
            load = threading.Thread(target=background, args=(agent, stop_event), daemon=True)
            load.start()
            time.sleep(3.0)  # let the agent connect and settle into its cycle
            log("probing: %d alerts, publish interval %s", args.probes,
                "default" if interval is None else "%g s" % interval)
            lat, missed = probe(agent, receiver, args.probes)
            results.update({
                "alert_probes_answered": len(lat),
                "alert_missed": missed,
                "alert_p50_s": round(pct(lat, 0.5), 3) if lat else None,
                "alert_p99_s": round(pct(lat, 0.99), 3) if lat else None,
                "alert_max_s": round(max(lat), 3) if lat else None,
            })
            log("alert latency p50 %s s p99 %s s (missed %d)", results["alert_p50_s"], results["alert_p99_s"], missed)
        finally:
            stop_event.set()
            if agent is not None:
                agent.stop()
            stop(central, 30)
            broker.stop()
            receiver.close()
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
