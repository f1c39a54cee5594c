"""The demo's three steps: start everything, wait for Ctrl-C, stop everything.

Start-up order: state directories, the webhook receiver (:mod:`demo.receiver`, on a free
loopback port) and the sites file whose alert rules post to it, the broker (embedded
unless a URL is configured), central (``python -m central serve`` on embedded chDB, waited
for on ``/healthz``), one agent per site (``python -m edge run``, waited for on its UDP
port), then one simulator per site that backfills the history to the agent AND to
central's raw ingest (as the customer's pipeline would) and goes on live. In live mode the
main loop stops one agent (SIGSTOP, then SIGCONT) for ``--outage-minutes`` a minute after
start-up and every hour after, so that the device-offline alert fires. Shutdown runs in
reverse.
"""

from __future__ import annotations

import logging
import os
import secrets
import shutil
import signal
import socket
import threading
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

from .config import DemoConfig
from .procs import Child, ChildFailed, Supervisor
from .sites import OFFLINE_MINUTES, OUTAGE_SITE, SITES, DemoSite, write_sites_file

__all__ = ["Demo", "EXIT_OK", "EXIT_FAILED", "free_port"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_FAILED = 1
#: The first outage starts this long after start-up, the next ones every OUTAGE_EVERY.
OUTAGE_FIRST = 60.0
OUTAGE_EVERY = 3600.0
ROOT = Path(__file__).resolve().parents[1]
_MARKER = ".heatmap-demo"


def free_port(kind: int = socket.SOCK_STREAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _port_open(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return True
    except OSError:
        return False


def _udp_bound(port: int) -> bool:
    """True once someone (the agent) has bound the UDP port."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return True
        return False


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as resp:  # noqa: S310 (our own http URL)
            return resp.status == 200
    except OSError:
        return False


def _with_user(url: str, user: str) -> str:
    """The broker URL with ``user`` as user name unless it already names one."""
    parts = urlsplit(url)
    if parts.username:
        return url
    return urlunsplit(parts._replace(netloc="%s@%s" % (quote(user, safe=""), parts.netloc)))


class Demo:
    def __init__(self, config: DemoConfig, announce: Callable[[str], None]):
        self.config = config
        self.announce = announce
        self.stop_event = threading.Event()
        self.sup = Supervisor(config.dir / "logs", ROOT)
        self.mqtt_url = ""
        self._embedded_amqtt = False
        self.agents: dict[str, Child] = {}  # site -> its agent
        self._paused: Child | None = None  # the agent stopped for an outage, if any

    # -- lifecycle ------------------------------------------------------------------------

    def run(self) -> int:
        previous = {s: signal.signal(s, lambda *_: self.stop_event.set()) for s in (signal.SIGINT, signal.SIGTERM)}
        try:
            try:
                self.startup()
            except ChildFailed as exc:
                log.error("start-up failed: %s", exc)
                return EXIT_FAILED
            if self.stop_event.is_set():
                return EXIT_OK
            return self.main_loop()
        finally:
            self.announce("stopping ...")
            self._resume()  # a stopped process would sit on its SIGTERM until killed
            self.sup.stop_all()
            self.announce("stopped; logs and data in %s" % self.config.dir)
            for s, handler in previous.items():
                signal.signal(s, handler)

    def main_loop(self) -> int:
        outages = self.config.live and self.config.outage_minutes > 0 and OUTAGE_SITE in self.agents
        next_outage = time.monotonic() + OUTAGE_FIRST
        resume_at = 0.0
        while not self.stop_event.wait(0.5):
            try:
                self.sup.check()
            except ChildFailed as exc:
                log.error("%s", exc)
                return EXIT_FAILED
            now = time.monotonic()
            if outages and self._paused is None and now >= next_outage:
                self._pause(OUTAGE_SITE)
                resume_at = now + self.config.outage_minutes * 60
                next_outage += OUTAGE_EVERY
            elif self._paused is not None and now >= resume_at:
                self._resume()
        return EXIT_OK

    def _pause(self, site: str) -> None:
        """Stop the site's agent (SIGSTOP): its device falls silent as a powered-off Jetson."""
        child = self.agents[site]
        self.sup.signal(child, signal.SIGSTOP)
        self._paused = child
        self.announce("outage: agent %s stopped for %g minutes; the device-offline alert fires after %d minutes "
                      "without contact" % (child.name, self.config.outage_minutes, OFFLINE_MINUTES))

    def _resume(self) -> None:
        if self._paused is not None:
            self.sup.signal(self._paused, signal.SIGCONT)
            self.announce("outage over: agent %s running again" % self._paused.name)
            self._paused = None

    def startup(self) -> None:
        cfg = self.config
        fresh = self._prepare_dir()
        webhook, secret = self._receiver()
        sites_file = write_sites_file(cfg.dir / "sites.toml", webhook=webhook)
        self._start_broker()
        if self.stop_event.is_set():
            return
        base = self._central(sites_file, secret)
        backfill = fresh
        sims = []
        for site in SITES:
            if self.stop_event.is_set():
                return
            udp = self._agent(site)
            if self.stop_event.is_set():
                return
            sims.append(self._simulator(site, udp, base, backfill))
        what = "%g days of history backfilled" % cfg.days if backfill else "history kept from the last run"
        self._wait("the simulators' backfill", lambda: all(self._sim_done(c) for c in sims),
                   cfg.ready_timeout, interval=0.25)
        if self.stop_event.is_set():
            return
        self.announce("")
        self.announce("Heatmap demo is running (%s, %s)." % (what, "live traffic on" if cfg.live else "no live traffic"))
        self.announce("  page:      %s" % cfg.page_url)
        for site in SITES:
            self.announce("  %-14s %s?site=%s   (%s)" % (site.name, cfg.page_url, site.name, site.timezone))
        self.announce("  API:       %sapi/v1/dashboard/HEAD_OFFICE" % cfg.page_url)
        self.announce("  alerts:    %sapi/v1/alerts    webhook receiver: %s (log: %s)"
                      % (cfg.page_url, webhook, cfg.dir / "logs" / "webhook.log"))
        self.announce("  metrics:   %smetrics    logs: %s" % (cfg.page_url, cfg.dir / "logs"))
        self.announce("Press Ctrl-C to stop.")

    # -- steps ----------------------------------------------------------------------------

    def _wait(self, what: str, ready: Callable[[], bool], timeout: float, interval: float = 0.1) -> None:
        """Wait for ``ready``; Ctrl-C ends the wait (startup then returns early)."""
        self.sup.wait_for(what, lambda: self.stop_event.is_set() or ready(), timeout, interval)

    def _prepare_dir(self) -> bool:
        """Create the state directory; wipe it unless --keep. True if it starts empty."""
        d = self.config.dir
        if d.exists() and any(d.iterdir()):
            if not (d / _MARKER).exists():
                raise ChildFailed("%s exists and is not a demo directory; refusing to wipe it" % d)
            if self.config.keep:
                (d / "logs").mkdir(exist_ok=True)
                return not (d / "truth").exists()
            shutil.rmtree(d)
        for sub in ("logs", "central", "edge", "truth"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        (d / _MARKER).write_text("state of python -m demo; wiped at its next start\n")
        return True

    def _env(self, **values: str) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("HEATMAP_")}
        env["PYTHONUNBUFFERED"] = "1"
        # Not a setting (the programs refuse unknown HEATMAP_* names): it marks every
        # process of this demo, so that one can be found in /proc/*/environ.
        env["DEMO_DIR"] = str(self.config.dir)
        env.update({"HEATMAP_" + k.upper(): v for k, v in values.items()})
        return env

    def _start_broker(self) -> None:
        cfg = self.config
        if cfg.mqtt_url:
            self.mqtt_url = cfg.mqtt_url
            log.info("using the broker at %s", urlsplit(cfg.mqtt_url).hostname)
            return
        port = free_port()
        if cfg.broker == "amqtt":
            self._embedded_amqtt = True
            broker = self.sup.python("broker", ["demo.broker", "--port", str(port)], self._env(), stop_timeout=5)
            # Its own log line, not a port probe: amqtt logs a bare TCP probe as an error.
            self._wait("the amqtt broker", lambda: broker.log_contains("amqtt broker on"), 30)
        else:
            binary = shutil.which("mosquitto") or "/usr/sbin/mosquitto"
            conf = cfg.dir / "mosquitto.conf"
            (cfg.dir / "mosquitto").mkdir(exist_ok=True)
            lines = ["listener %d 127.0.0.1" % port, "allow_anonymous true", "persistence true",
                     "persistence_location %s/" % (cfg.dir / "mosquitto"), "log_dest stdout"]
            if os.geteuid() == 0:
                lines.append("user root")  # else it switches to 'mosquitto', who cannot write here
            conf.write_text("\n".join(lines) + "\n")
            self.sup.start("broker", [binary, "-c", str(conf)], self._env(), stop_timeout=5)
        if cfg.broker != "amqtt":
            self._wait("the %s broker on port %d" % (cfg.broker, port), lambda: _port_open(port), 30)
        self.mqtt_url = "mqtt://127.0.0.1:%d" % port

    def _receiver(self) -> tuple[str, str]:
        """Start the webhook receiver; its URL and the signing secret it checks."""
        port = free_port()
        secret = secrets.token_hex(16)
        path = self.config.dir / "webhook.secret"
        path.touch(mode=0o600)
        path.write_text(secret + "\n")
        self.sup.python("webhook", ["demo.receiver", "--port", str(port), "--secret-file", str(path)], self._env(),
                        stop_timeout=5)
        self._wait("the webhook receiver on port %d" % port, lambda: _port_open(port), 30)
        # Loopback: central's webhook checks refuse link-local addresses, never 127.0.0.1.
        return "http://127.0.0.1:%d/alerts" % port, secret

    def _central(self, sites_file: Path, webhook_secret: str) -> str:
        cfg = self.config
        self.sup.python(
            "central", ["central", "serve"],
            self._env(data_dir=str(cfg.dir / "central"), http_addr="%s:%d" % (cfg.http_host, cfg.http_port),
                      sites_file=str(sites_file), mqtt_url=_with_user(self.mqtt_url, "heatmap-central"),
                      webhook_secret=webhook_secret,
                      # amqtt speaks MQTT 3.1.1 only.
                      **({"mqtt_protocol": "3.1.1"} if self._embedded_amqtt else {})),
            stop_timeout=cfg.stop_timeout,
        )
        base = cfg.page_url
        self._wait("central on %s" % base, lambda: _http_ok(base + "healthz"), cfg.ready_timeout)
        return base.rstrip("/")

    def _agent(self, site: DemoSite) -> int:
        cfg = self.config
        udp = free_port(socket.SOCK_DGRAM)
        state = cfg.dir / "edge" / site.name
        state.mkdir(parents=True, exist_ok=True)
        self.agents[site.name] = self.sup.python(
            "edge-%s" % site.name, ["edge", "run"],
            self._env(site=site.name, device_id=site.device, state_dir=str(state),
                      mqtt_url=_with_user(self.mqtt_url, site.device), udp_addr="127.0.0.1:%d" % udp,
                      # The whole backfill goes through the agent, not only its default week.
                      retention_days="%g" % (max(cfg.days, 6) + 1.5),
                      publish_interval="%g" % cfg.publish_interval, ack_timeout="10",
                      # A message every 30 s even at night: silence then means the device
                      # is down, and the device-offline rule's 2 minutes hold.
                      stats_interval="30"),
            stop_timeout=cfg.stop_timeout,
        )
        self._wait("agent %s on udp %d" % (site.name, udp), lambda: _udp_bound(udp), cfg.ready_timeout)
        return udp

    def _simulator(self, site: DemoSite, udp: int, base: str, backfill: bool):
        cfg = self.config
        args = ["edge", "simulate", "--site", site.name, "--cameras", site.camera_spec(),
                "--utc-offset", site.utc_offset, "--dst", site.dst, "--seed", str(cfg.seed),
                "--to-agent", "udp://127.0.0.1:%d" % udp, "--to-central", base,
                "--truth", str(cfg.dir / "truth" / ("%s.json" % site.name))]
        if backfill:
            args += ["--days", "%g" % cfg.days]
        if cfg.live:
            args.append("--live")
        if not backfill and not cfg.live:
            return None
        return self.sup.python("sim-%s" % site.name, args, self._env(), stop_timeout=cfg.stop_timeout,
                               expect_exit=not cfg.live)

    @staticmethod
    def _sim_done(child) -> bool:
        if child is None:
            return True
        if child.expect_exit:
            return child.proc.poll() == 0
        return child.log_contains("live from")
