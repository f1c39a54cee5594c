"""End-to-end benchmark: real mosquitto, real agents (``python -m edge run``), central
(``python -m central serve``) on embedded chDB, in one run.

* totals: ``python -m edge simulate`` backfills two days of a Kolkata site to an agent AND
  to central's raw ingest; every local day's dashboard must equal the simulator's truth
  exactly (zones, hourly, critical events), served from edge aggregates;
* freshness: with a 1 s publish interval and background load, one probe event at a time
  goes into the agent's UDP input; the time until the dashboard JSON counts it, p50/p99
  (target p99 <= 2 s);
* bandwidth: bytes on the wire (both directions, counted by a TCP proxy in front of the
  broker) per camera per day for the agent's aggregates versus forwarding every raw event
  as its own QoS 1 MQTT message, at 1 event/s per camera, for several publish intervals
  (target: aggregates <= 2% of raw).

Prints progress to stderr and one JSON object of figures as the last line of stdout.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from datetime import datetime, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import paho.mqtt.client as mqtt  # noqa: E402

from tests.harness import Mosquitto, free_port, recent_utc_weekday  # noqa: E402

CAMERAS = ["CAM_%02d" % i for i in range(1, 9)]
FRESH_SITE = "E2E_FRESH"
TOTALS_SITE = "E2E_TOTALS"


def log(msg: str, *args) -> None:
    sys.stderr.write("[e2e %s] %s\n" % (time.strftime("%H:%M:%S"), msg % args))
    sys.stderr.flush()


# -- plumbing --------------------------------------------------------------------------


class ByteProxy:
    """A TCP proxy to the broker that counts the bytes each way (all connections)."""

    def __init__(self, upstream_port: int):
        self.upstream = upstream_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.up = 0  # client -> broker
        self.down = 0  # broker -> client
        self.closed = False
        threading.Thread(target=self._accept, daemon=True).start()

    def total(self) -> int:
        with self.lock:
            return self.up + self.down

    def _accept(self) -> None:
        while not self.closed:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            try:
                server = socket.create_connection(("127.0.0.1", self.upstream))
            except OSError:
                client.close()
                continue
            threading.Thread(target=self._pump, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pump, args=(server, client, "down"), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                with self.lock:
                    if direction == "up":
                        self.up += len(data)
                    else:
                        self.down += len(data)
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
                s.close()

    def close(self) -> None:
        self.closed = True
        self.listener.close()


def clean_env(**values: str) -> dict:
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("HEATMAP_") and k not in ("NOTIFY_SOCKET", "WATCHDOG_USEC", "WATCHDOG_PID")}
    env.update({"HEATMAP_" + k.upper(): v for k, v in values.items()})
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(args: list, env: dict, log_path: Path) -> subprocess.Popen:
    out = open(log_path, "ab")
    return subprocess.Popen([sys.executable, "-m", *args], cwd=ROOT, env=env, stdout=out,
                            stderr=subprocess.STDOUT, start_new_session=True)


def stop(proc: subprocess.Popen, timeout: float = 15) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def get_json(url: str, timeout: float = 5):
    with urllib.request.urlopen(url, timeout=timeout) as resp:
        return json.loads(resp.read())


def wait_http(url: str, proc: subprocess.Popen, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            get_json(url)
            return
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            raise SystemExit("central did not come up:\n" + log_path.read_text()[-3000:])
        time.sleep(0.2)


def udp_bound(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


class Agent:
    def __init__(self, work: Path, site: str, device: str, mqtt_url: str, interval: float):
        self.udp = free_port()
        while udp_bound(self.udp):
            self.udp = free_port()
        self.log_path = work / ("agent-%s.log" % site)
        env = clean_env(site=site, device_id=device, mqtt_url=mqtt_url, state_dir=str(work / ("edge-" + site)),
                        udp_addr="127.0.0.1:%d" % self.udp, publish_interval="%g" % interval,
                        commit_interval="%g" % min(1.0, interval), retention_days="4")
        self.proc = spawn(["edge", "run"], env, self.log_path)
        deadline = time.monotonic() + 30
        while not udp_bound(self.udp):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("agent did not start:\n" + self.log_path.read_text()[-3000:])
            time.sleep(0.05)
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def send(self, lines: list) -> None:
        self.sock.sendto(b"\n".join(lines), ("127.0.0.1", self.udp))

    def stop(self) -> None:
        self.sock.close()
        stop(self.proc)


def event_line(camera: str, people: int, ts: float, site: str | None = None) -> bytes:
    obj = {"camera": camera, "people_count": people, "timestamp": round(ts, 3), "triggers": []}
    if site:
        obj["site"] = site
    return json.dumps(obj, separators=(",", ":")).encode()


# -- phases -----------------------------------------------------------------------------


def comparable(day: dict) -> dict:
    return {
        "zones": {z: (v["peak"], v["events"]) for z, v in day["zones"].items()},
        "hourly": [(h["hour"], h["count"]) for h in day["hourly"]],
        "critical_events": dict(day["critical_events"]),
    }


def two_working_days_end() -> int:
    """The latest Wednesday to Saturday 00:00 UTC: the two days before it are working days
    whatever today is (so every run sends a similar load), at most 6 days back, inside the
    agent's 7-day window."""
    return max(recent_utc_weekday(day) for day in (2, 3, 4, 5))


def phase_totals(work: Path, base: str, broker_url: str, timeout: float) -> dict:
    agent = Agent(work, TOTALS_SITE, "jetson-totals", broker_url, 1.0)
    truth_path = work / "truth.json"
    try:
        started = time.monotonic()
        res = subprocess.run(
            [sys.executable, "-m", "edge", "simulate", "--site", TOTALS_SITE, "--cameras",
             "EMPLOYEE_AREA:10,RECEPTION_AREA:5,CAFETERIA:12,BOSS_CABIN:3:restricted,SERVER_ROOM:2:restricted",
             "--utc-offset", "+05:30", "--end", str(two_working_days_end()), "--days", "2", "--seed", "7",
             "--to-agent",
             "udp://127.0.0.1:%d" % agent.udp, "--to-central", base, "--truth", str(truth_path)],
            cwd=ROOT, env=clean_env(), capture_output=True, text=True, timeout=300,
        )
        if res.returncode != 0:
            raise SystemExit("simulate failed:\n" + res.stderr[-3000:])
        truth = json.loads(truth_path.read_text())
        sent_s = time.monotonic() - started
        log("totals: %d events sent in %.1f s; waiting for the dashboard", truth["events"], sent_s)
        deadline = time.monotonic() + timeout
        while True:
            equal, sources, mismatch = True, {}, None
            for date, want in sorted(truth["days"].items()):
                got = get_json("%s/api/v1/dashboard/%s?date=%s" % (base, TOTALS_SITE, date))
                sources[date] = got["meta"]["source"]
                if comparable(got) != comparable(want):
                    equal, mismatch = False, date
            all_edge = all(s == "edge" for s in sources.values())
            if (equal and all_edge) or time.monotonic() > deadline:
                break
            time.sleep(0.5)
        return {
            "totals_equal": equal,
            "totals_events": truth["events"],
            "totals_days": len(truth["days"]),
            "totals_all_edge": all_edge,
            "totals_sources": sorted(set(sources.values())),
            "totals_mismatch_day": mismatch,
            "totals_settle_s": round(time.monotonic() - started - sent_s, 2),
        }
    finally:
        agent.stop()


class Load:
    """1 event/s per camera into the agent's UDP input and, for comparison, each event
    forwarded raw as its own QoS 1 MQTT message through a second counting proxy."""

    def __init__(self, agent: Agent, raw_proxy: ByteProxy):
        self.agent = agent
        self.raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="raw-forwarder",
                               protocol=mqtt.MQTTv311)
        self.raw.connect("127.0.0.1", raw_proxy.port, keepalive=60)
        self.raw.loop_start()
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        n = 0
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            now = time.time()
            lines = [event_line(cam, 1 + (n + i) % 5, now) for i, cam in enumerate(CAMERAS)]
            self.agent.send(lines)
            for cam, line in zip(CAMERAS, lines):
                # The baseline: what forwarding every raw event to central would cost.
                self.raw.publish("bench/raw/%s/%s" % (FRESH_SITE, cam), line, qos=1)
            n += 1
            next_at += 1.0
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(5)
        self.raw.disconnect()
        self.raw.loop_stop()


def phase_freshness(base: str, agent: Agent, probes: int) -> list:
    def probe_events(ts: float) -> int:
        """PROBE events on the (UTC) day of ``ts``: a run across midnight reads the right day."""
        date = datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d")
        zone = get_json("%s/api/v1/dashboard/%s?date=%s" % (base, FRESH_SITE, date))["zones"].get("PROBE")
        return zone["events"] if zone else 0

    latencies = []
    for i in range(probes):
        # Spread probes over the publish cycle, not in step with it.
        time.sleep(0.37 + (i % 7) * 0.11)
        sent = time.time()
        seen = probe_events(sent)
        agent.send([event_line("PROBE", 1, sent)])
        deadline = time.monotonic() + 15
        while probe_events(sent) <= seen:
            if time.monotonic() > deadline:
                break
            time.sleep(0.02)
        latencies.append(time.time() - sent)
    return latencies


def pct(values: list, q: float) -> float:
    ordered = sorted(values)
    idx = min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))
    return ordered[idx]


def measure_bytes(agg: ByteProxy, raw: ByteProxy, seconds: float) -> tuple:
    """Bytes per camera per day: aggregates both ways, of which agent -> broker, and raw."""
    with agg.lock:
        up0 = agg.up
    a0, r0, t0 = agg.total(), raw.total(), time.monotonic()
    time.sleep(seconds)
    a1, r1, t1 = agg.total(), raw.total(), time.monotonic()
    with agg.lock:
        up1 = agg.up
    per_day = 86400.0 / (t1 - t0) / len(CAMERAS)
    return (a1 - a0) * per_day, (up1 - up0) * per_day, (r1 - r0) * per_day


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=40, help="freshness probes (default 40)")
    parser.add_argument("--intervals", default="1,10,60",
                        help="publish intervals (s) to measure bandwidth at (default 1,10,60)")
    parser.add_argument("--cycles", type=int, default=3, help="publish cycles measured per interval")
    parser.add_argument("--min-window", type=float, default=30.0, help="shortest bandwidth window (s)")
    args = parser.parse_args()
    intervals = [float(x) for x in args.intervals.split(",")]
    results: dict = {"cameras": len(CAMERAS), "raw_rate_per_camera": 1.0}
    with tempfile.TemporaryDirectory(prefix="heatmap-e2e-") as tmp:
        work = Path(tmp)
        broker = Mosquitto(work / "mosquitto").start()
        agg_proxy, raw_proxy = ByteProxy(broker.port), ByteProxy(broker.port)
        http_port = free_port()
        base = "http://127.0.0.1:%d" % http_port
        sites = work / "sites.toml"
        sites.write_text('[defaults]\ntimezone = "UTC"\n\n[sites.%s]\ntimezone = "Asia/Kolkata"\n\n'
                         '[sites.%s]\ntimezone = "UTC"\n' % (TOTALS_SITE, FRESH_SITE))
        central_log = work / "central.log"
        central = spawn(["central", "serve"], clean_env(
            data_dir=str(work / "central"), http_addr="127.0.0.1:%d" % http_port,
            mqtt_url=broker.url, sites_file=str(sites)), central_log)
        agent = None
        try:
            wait_http(base + "/healthz", central, 120, central_log)
            log("central up on %s; broker on %d", base, broker.port)
            results.update(phase_totals(work, base, broker.url, 120))
            log("totals: %s", {k: v for k, v in results.items() if k.startswith("totals")})

            proxied = "mqtt://127.0.0.1:%d" % agg_proxy.port
            for n, interval in enumerate(intervals):
                if agent is not None:
                    agent.stop()
                agent = Agent(work, FRESH_SITE, "jetson-fresh", proxied, interval)
                load = Load(agent, raw_proxy)
                try:
                    # Let the agent connect, republish its outbox and settle into its cycle.
                    time.sleep(max(3.0, interval + 1.0))
                    if n == 0 and interval == 1.0:
                        lat = phase_freshness(base, agent, args.probes)
                        results.update({
                            "freshness_publish_interval_s": interval,
                            "freshness_probes": len(lat),
                            "freshness_p50_s": round(pct(lat, 0.5), 3),
                            "freshness_p99_s": round(pct(lat, 0.99), 3),
                            "freshness_max_s": round(max(lat), 3),
                        })
                        log("freshness p50 %.3f s p99 %.3f s", results["freshness_p50_s"], results["freshness_p99_s"])
                    window = max(args.min_window, args.cycles * interval)
                    agg, agg_up, raw = measure_bytes(agg_proxy, raw_proxy, window)
                finally:
                    load.close()
                key = "%gs" % interval
                results["agg_bytes_per_camera_day_%s" % key] = int(agg)
                results["agg_up_bytes_per_camera_day_%s" % key] = int(agg_up)
                results["agg_pct_of_raw_%s" % key] = round(100.0 * agg / raw, 3)
                results.setdefault("raw_bytes_per_camera_day", int(raw))
                log("interval %s: aggregates %d B/camera/day, raw %d B/camera/day (%.2f%%)",
                    key, agg, raw, 100.0 * agg / raw)
        finally:
            if agent is not None:
                agent.stop()
            stop(central, 30)
            agg_proxy.close()
            raw_proxy.close()
            broker.stop()
    print(json.dumps(results, sort_keys=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
