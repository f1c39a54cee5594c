"""End-to-end benchmark: real mosquitto, real agents (``python -m edge run``), central
(``python -m central serve``) on embedded chDB, in one run.

* totals: ``python -m edge simulate`` backfills two days of a Kolkata site to an agent AND
  to central's raw ingest; every local day's dashboard must equal the simulator's truth
  exactly (zones, hourly, critical events), served from edge aggregates;
* bandwidth: a realistic load, 1 event/s per camera into the agent's UDP input (the
  simulator's zone names, capacities and trigger rates: about 2% of events carry a
  trigger); every byte of the agent's connection both ways (states, acks, stats, status,
  PUBACKs, pings), counted by a TCP proxy in front of the broker that also splits them by
  MQTT packet, per camera per day, versus forwarding every raw event as its own QoS 1
  MQTT message through a second proxy in the same run; at the DEFAULT publish interval
  (and at any others given; target: aggregates <= 2% of raw);
* freshness, at the same default interval under the same load: one probe event carrying a
  trigger at a time, each the first trigger of its (camera, slot) as priority publishing
  promises (a repeat in the same slot rides the publish interval), from the agent's UDP
  input until the dashboard JSON counts it, p50/p99 (target p99 <= 2 s).

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

import numpy as np  # noqa: E402
import paho.mqtt.client as mqtt  # noqa: E402

from edge.config import Config  # noqa: E402
from edge.simulate.model import parse_cameras  # noqa: E402
from shared.paho_close import stop_client  # noqa: E402
from tests.harness import Mosquitto, free_port, recent_utc_weekday  # noqa: E402

#: The simulator's kind of site: zone names give the profile (restricted rooms by name).
CAMERA_SPEC = ("EMPLOYEE_AREA:10,RECEPTION_AREA:6,CAFETERIA:12,BOSS_CABIN:3,SERVER_ROOM:2,"
               "MEETING_ROOM:8,LOBBY:6,WAREHOUSE:10")
CAMERAS = [c.name for c in parse_cameras(CAMERA_SPEC, 0)]
DEFAULT_INTERVAL = Config.publish_interval
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
        self.kinds: dict = {}  # "state", "ack", ..., "puback", "ping", "session" -> bytes
        self.counts: dict = {}  # the same kinds -> packets
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

    def by_kind(self) -> tuple:
        with self.lock:
            return dict(self.kinds), dict(self.counts)

    def _pump(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        pending = b""
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                pending += data
                packets, pending = split_mqtt(pending)
                with self.lock:
                    if direction == "up":
                        self.up += len(data)
                    else:
                        self.down += len(data)
                    for kind, size in packets:
                        self.kinds[kind] = self.kinds.get(kind, 0) + size
                        self.counts[kind] = self.counts.get(kind, 0) + 1
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


_PACKET_KINDS = {4: "puback", 12: "ping", 13: "ping"}


def split_mqtt(buf: bytes) -> tuple:
    """Whole MQTT packets at the start of ``buf`` as (kind, bytes), and the rest. A PUBLISH is
    named by its topic's last level (state, ack, stats, status); PUBACK and pings by type;
    the rest (CONNECT, SUBSCRIBE and their answers) is "session"."""
    out = []
    while len(buf) >= 2:
        rem, mult, i = 0, 1, 1
        while True:
            if i >= len(buf):
                return out, buf
            byte = buf[i]
            rem += (byte & 0x7F) * mult
            mult *= 128
            i += 1
            if not byte & 0x80:
                break
        size = i + rem
        if len(buf) < size:
            return out, buf
        ptype = buf[0] >> 4
        if ptype == 3:
            tlen = int.from_bytes(buf[i:i + 2], "big")
            kind = buf[i + 2:i + 2 + tlen].decode("utf-8", "replace").rsplit("/", 1)[-1]
        else:
            kind = _PACKET_KINDS.get(ptype, "session")
        out.append((kind, size))
        buf = buf[size:]
    return out, buf


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
    def __init__(self, work: Path, site: str, device: str, mqtt_url: str, interval: float, **settings: str):
        self.udp = free_port()
        while udp_bound(self.udp):
            self.udp = free_port()
        self.log_path = work / ("agent-%s.log" % site)
        env = clean_env(site=site, device_id=device, mqtt_url=mqtt_url, state_dir=str(work / ("edge-" + site)),
                        udp_addr="127.0.0.1:%d" % self.udp, publish_interval="%g" % interval,
                        commit_interval="%g" % min(1.0, interval), retention_days="4", **settings)
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


def event_line(camera: str, people: int, ts: float, site: str | None = None, triggers: list = ()) -> bytes:
    obj = {"camera": camera, "people_count": people, "timestamp": round(ts, 3), "triggers": list(triggers)}
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


class Workload:
    """Events like the simulator's: people around 35% of each zone's capacity (at most half
    again the capacity), UNAUTHORIZED_STRANGER on 0.5% of events, RESTRICTED_ACCESS on 4% in
    restricted rooms and 0.2% elsewhere, CROWD_VIOLATION on half the events over capacity."""

    def __init__(self, seed: int = 11):
        self.cams = parse_cameras(CAMERA_SPEC, 0)
        self.rng = np.random.default_rng(seed)
        self.events = 0
        self.with_trigger = 0

    def second(self) -> list:
        out = []
        for cam in self.cams:
            people = int(min(max(1, self.rng.poisson(0.35 * cam.capacity)), (cam.capacity * 3 + 1) // 2))
            trig = []
            if self.rng.random() < 0.005:
                trig.append("UNAUTHORIZED_STRANGER")
            if self.rng.random() < (0.04 if cam.profile == "restricted" else 0.002):
                trig.append("RESTRICTED_ACCESS")
            if people > cam.capacity and self.rng.random() < 0.5:
                trig.append("CROWD_VIOLATION")
            self.events += 1
            self.with_trigger += bool(trig)
            out.append((cam.name, people, trig))
        return out


class Load:
    """1 event/s per camera into the agent's UDP input and, for comparison, each event
    forwarded raw as its own QoS 1 MQTT message through a second counting proxy."""

    def __init__(self, agent: Agent, raw_proxy: ByteProxy, workload: Workload):
        self.agent = agent
        self.workload = workload
        self.raw = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="raw-forwarder",
                               protocol=mqtt.MQTTv311)
        try:
            self.raw.connect("127.0.0.1", raw_proxy.port, keepalive=60)
            self.raw.loop_start()
        except BaseException:
            stop_client(self.raw)
            raise
        self.stop_event = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)
        self.thread.start()

    def _run(self) -> None:
        next_at = time.monotonic()
        while not self.stop_event.is_set():
            now = time.time()
            events = self.workload.second()
            lines = [event_line(cam, people, now, triggers=trig) for cam, people, trig in events]
            self.agent.send(lines)
            for (cam, _, _), line in zip(events, lines):
                # The baseline: what forwarding every raw event to central would cost.
                self.raw.publish("bench/raw/%s/%s" % (FRESH_SITE, cam), line, qos=1)
            next_at += 1.0
            self.stop_event.wait(max(0.0, next_at - time.monotonic()))

    def close(self) -> None:
        self.stop_event.set()
        self.thread.join(5)
        stop_client(self.raw)


def phase_freshness(base: str, agent: Agent, probes: int, timeout: float) -> list:
    """Latencies of trigger probes, each on its own zone (PROBE_01, ...), so each is the first
    trigger of its (camera, slot): what priority publishing sends at once."""
    latencies = []
    for i in range(probes):
        # Spread probes over the publish cycle, not in step with it.
        time.sleep(0.37 + (i % 7) * 0.11)
        zone = "PROBE_%02d" % (i + 1)
        sent = time.time()
        date = datetime.fromtimestamp(sent, timezone.utc).strftime("%Y-%m-%d")
        url = "%s/api/v1/dashboard/%s?date=%s" % (base, FRESH_SITE, date)
        agent.send([event_line(zone, 1, sent, triggers=["UNAUTHORIZED_STRANGER"])])
        deadline = time.monotonic() + timeout
        while zone not in get_json(url)["zones"]:
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
    """Bytes per camera per day: aggregates both ways, of which agent -> broker, raw, and
    the aggregates by MQTT packet kind."""
    with agg.lock:
        up0 = agg.up
    k0, c0 = agg.by_kind()
    a0, r0, t0 = agg.total(), raw.total(), time.monotonic()
    time.sleep(seconds)
    a1, r1, t1 = agg.total(), raw.total(), time.monotonic()
    with agg.lock:
        up1 = agg.up
    k1, c1 = agg.by_kind()
    per_day = 86400.0 / (t1 - t0) / len(CAMERAS)
    kinds = {k: (k1.get(k, 0) - k0.get(k, 0)) * per_day for k in k1}
    per_hour = {k: round((c1.get(k, 0) - c0.get(k, 0)) * 3600.0 / (t1 - t0), 1) for k in c1}
    return (a1 - a0) * per_day, (up1 - up0) * per_day, (r1 - r0) * per_day, kinds, per_hour


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--probes", type=int, default=40, help="freshness probes (default 40)")
    parser.add_argument("--intervals", default="%g" % DEFAULT_INTERVAL,
                        help="publish intervals (s) to measure bandwidth at, the first also for "
                             "freshness (default: the agent's default, %g)" % DEFAULT_INTERVAL)
    parser.add_argument("--window", type=float, default=180.0, help="bandwidth window (s) per interval")
    args = parser.parse_args()
    intervals = [float(x) for x in args.intervals.split(",")]
    results: dict = {"cameras": len(CAMERAS), "raw_rate_per_camera": 1.0,
                     "default_publish_interval_s": DEFAULT_INTERVAL}
    workload = Workload()
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
                agent = Agent(work, FRESH_SITE, "jetson-fresh-%d" % n, proxied, interval)
                load = Load(agent, raw_proxy, workload)
                try:
                    # Let the agent connect and settle into its cycle.
                    time.sleep(max(3.0, interval + 1.0))
                    agg, agg_up, raw, kinds, per_hour = measure_bytes(agg_proxy, raw_proxy, args.window)
                    if n == 0:
                        lat = phase_freshness(base, agent, args.probes, 3 * interval + 10)
                        results.update({
                            "freshness_publish_interval_s": interval,
                            "freshness_probes": len(lat),
                            "freshness_p50_s": round(pct(lat, 0.5), 3),
                            "freshness_p99_s": round(pct(lat, 0.99), 3),
                            "freshness_max_s": round(max(lat), 3),
                        })
                        log("freshness p50 %.3f s p99 %.3f s", results["freshness_p50_s"], results["freshness_p99_s"])
                finally:
                    load.close()
                key = "%gs" % interval
                results["agg_bytes_per_camera_day_%s" % key] = int(agg)
                results["agg_up_bytes_per_camera_day_%s" % key] = int(agg_up)
                results["agg_pct_of_raw_%s" % key] = round(100.0 * agg / raw, 3)
                for kind, value in sorted(kinds.items()):
                    results["agg_pct_%s_%s" % (kind, key)] = round(100.0 * value / raw, 3)
                    results["agg_packets_per_hour_%s_%s" % (kind, key)] = per_hour.get(kind, 0)
                results.setdefault("raw_bytes_per_camera_day", int(raw))
                log("interval %s: aggregates %d B/camera/day, raw %d B/camera/day (%.2f%%); by kind %s",
                    key, agg, raw, 100.0 * agg / raw,
                    {k: "%.3f%%" % (100.0 * v / raw) for k, v in sorted(kinds.items())})
            results["trigger_share_pct"] = round(100.0 * workload.with_trigger / max(workload.events, 1), 2)
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
