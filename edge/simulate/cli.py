"""``python -m edge simulate``: synthetic detections for one site, sent like the real thing.

Owns the simulator's command line, its frozen configuration and its two modes:

* fast-forward (``--days N`` or ``--start/--end``): the history of the window is generated
  day by day and sent as fast as the sinks take it (days of history in seconds);
* live (``--live``): after any backfill, each event is sent when its second comes.

Sinks: ``--to-agent udp://HOST:PORT`` (the agent's datagram input) and ``--to-central
http://HOST:PORT`` (central's raw ingest, like the customer's pipeline); either or both, or
neither to only compute the truth. ``--truth FILE`` writes what was sent, per (camera,
slot) and per local day, so tests and benchmarks can compare totals exactly. The model is
described in :mod:`edge.simulate.model`; local time is ``--utc-offset`` plus ``--dst``.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import List, Mapping, Optional, Tuple

from shared.events import parse_time
from shared.exceptions import HeatmapError

from ..exceptions import SinkError
from .model import DAY, DST_RULES, Camera, Clock, SiteModel, Truth, parse_cameras, parse_offset
from .sinks import DatagramSink, HttpSink, Sink

__all__ = ["SimConfig", "add_arguments", "main", "run"]

log = logging.getLogger(__name__)

EXIT_OK = 0
EXIT_SINK = 1
EXIT_CONFIG = 2
MAX_EVENTS_PER_DAY = 20 * 10**6


@dataclass(frozen=True)
class SimConfig:
    site: str
    cameras: Tuple[Camera, ...]
    utc_offset: int
    dst: str
    seed: int
    rate_scale: float
    start: Optional[int]  # fast-forward window [start, end); None = no backfill
    end: int
    live: bool
    duration: Optional[float]
    to_agent: Optional[str]
    to_central: Optional[str]
    token: Optional[str]
    truth: Optional[str]
    max_rate: float
    batch: int
    retry_for: float
    tick: float

    @classmethod
    def load(cls, args: argparse.Namespace, environ: Mapping[str, str], now: float) -> SimConfig:
        """Build from parsed flags and ``HEATMAP_*``; raises ValueError with one clear line."""
        site = args.site or environ.get("HEATMAP_SITE")
        if not site:
            raise ValueError("--site (or HEATMAP_SITE) is required")
        try:
            cameras = parse_cameras(args.cameras, args.seed)
            SiteModel(site, cameras, Clock(0), rate_scale=args.rate_scale)
        except HeatmapError as exc:
            raise ValueError(str(exc)) from None
        # The model draws whole days at a time: keep a day within memory's reach.
        per_day = sum(args.rate_scale * (0.01 + 0.25 * 2.5 * c.capacity) * 1440 for c in cameras)
        if per_day > MAX_EVENTS_PER_DAY:
            raise ValueError("up to %.0f million events a day; the limit is %d million: lower "
                             "--rate-scale or the capacities" % (per_day / 1e6, MAX_EVENTS_PER_DAY // 10**6))
        offset = parse_offset(args.utc_offset)
        if args.dst not in DST_RULES:
            raise ValueError("--dst must be one of %s" % ", ".join(DST_RULES))
        current = int(now)
        end = _time_arg(args.end, "--end") if args.end else current
        if end > current:
            raise ValueError("--end is in the future: fast-forward sends history only (use --live)")
        if args.start and args.days is not None:
            raise ValueError("give --days or --start, not both")
        start: Optional[int] = None
        if args.start:
            start = _time_arg(args.start, "--start")
        elif args.days is not None:
            if not 0 < args.days <= 3660:
                raise ValueError("--days must be in (0, 3660]")
            start = end - int(args.days * DAY)
        if start is not None and start >= end:
            raise ValueError("--start must be before --end")
        if args.live and args.end:
            raise ValueError("--live continues from now; it cannot follow an --end in the past")
        if start is None and not args.live:
            raise ValueError("nothing to do: give --days, --start or --live")
        if args.duration is not None and args.duration <= 0:
            raise ValueError("--duration must be positive")
        for flag, value in (("--max-rate", args.max_rate), ("--batch", args.batch), ("--tick", args.tick)):
            if value <= 0:
                raise ValueError("%s must be positive" % flag)
        return cls(
            site=site, cameras=cameras, utc_offset=offset, dst=args.dst, seed=args.seed,
            rate_scale=args.rate_scale, start=start, end=end, live=args.live,
            duration=args.duration, to_agent=args.to_agent, to_central=args.to_central,
            token=args.token or environ.get("HEATMAP_INGEST_TOKEN") or None, truth=args.truth,
            max_rate=args.max_rate, batch=args.batch, retry_for=args.retry_for, tick=args.tick,
        )


def _time_arg(text: str, flag: str) -> int:
    try:
        value = float(text) if text.replace(".", "", 1).isdigit() else text
        return int(parse_time(value, flag))
    except HeatmapError as exc:
        raise ValueError(str(exc)) from None


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--site", help="site name (default: HEATMAP_SITE)")
    parser.add_argument("--cameras", default="6",
                        help="a count, or NAME[:CAPACITY[:PROFILE]],... with PROFILE one of "
                        "office, reception, cafeteria, restricted, or flat (a steady load) (default: 6)")
    parser.add_argument("--utc-offset", default="+00:00",
                        help="the site's standard offset from UTC: +05:30, UTC-05:00 or =-05:00 "
                        "(default: +00:00)")
    parser.add_argument("--dst", default="none", choices=DST_RULES,
                        help="daylight-saving rule: eu (last Sun Mar..last Sun Oct, 01:00 UTC), "
                        "us (2nd Sun Mar..1st Sun Nov, 02:00 local) or none (default)")
    parser.add_argument("--seed", type=int, default=0, help="random seed; same seed, same events")
    parser.add_argument("--rate-scale", type=float, default=1.0,
                        help="multiply the event rate (default 1.0: about 1,000 events per "
                        "camera on a working day)")
    parser.add_argument("--days", type=float, help="fast-forward: send the last N days of history")
    parser.add_argument("--start", help="fast-forward from this time (ISO 8601 or Unix seconds)")
    parser.add_argument("--end", help="fast-forward up to this time (default: now)")
    parser.add_argument("--live", action="store_true",
                        help="after any backfill, keep sending events in real time")
    parser.add_argument("--duration", type=float, help="stop live mode after this many seconds")
    parser.add_argument("--to-agent", metavar="URL",
                        help="the agent's datagram input: udp://HOST:PORT or unix:///PATH")
    parser.add_argument("--to-central", metavar="URL",
                        help="central's base URL; events go to POST /api/v1/events")
    parser.add_argument("--token", help="bearer token for central (default: HEATMAP_INGEST_TOKEN)")
    parser.add_argument("--truth", metavar="FILE", help="write what was sent as JSON to FILE")
    parser.add_argument("--max-rate", type=float, default=20000.0,
                        help="at most this many events/s to the agent (default 20000)")
    parser.add_argument("--batch", type=int, default=5000, help="events per POST (default 5000)")
    parser.add_argument("--retry-for", type=float, default=120.0,
                        help="give up on central after retrying this long (default 120 s)")
    parser.add_argument("--tick", type=float, default=0.25, help="live mode send interval (s)")
    parser.add_argument("--log-level", default="INFO", help="DEBUG, INFO, WARNING (default INFO)")


def main(args: argparse.Namespace) -> int:
    """Entry point of the ``simulate`` subcommand."""
    if not logging.getLogger().handlers:
        logging.basicConfig(level=getattr(logging, str(args.log_level).upper(), logging.INFO),
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        config = SimConfig.load(args, os.environ, time.time())
    except ValueError as exc:
        log.error("invalid configuration: %s", exc)
        return EXIT_CONFIG
    stop = threading.Event()

    def _stop(signum, frame):
        stop.set()

    previous = {s: signal.signal(s, _stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        return run(config, stop)
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def run(config: SimConfig, stop: Optional[threading.Event] = None) -> int:
    """Run the configured modes; returns an exit code. ``stop`` ends live mode."""
    stop = stop or threading.Event()
    model = SiteModel(config.site, config.cameras, Clock(config.utc_offset, config.dst),
                      config.seed, config.rate_scale)
    truth = Truth(model)
    sinks: List[Sink] = []
    try:
        if config.to_agent:
            sinks.append(DatagramSink(config.to_agent, config.max_rate))
        if config.to_central:
            sinks.append(HttpSink(config.to_central, config.token, config.batch, config.retry_for,
                                  sleep=stop.wait))
    except (SinkError, OSError) as exc:
        log.error("invalid configuration: %s", exc)
        return EXIT_CONFIG
    code = EXIT_OK
    try:
        if config.start is not None:
            _fast_forward(model, truth, sinks, config.start, config.end, stop)
        if config.live and not stop.is_set():
            _live(model, truth, sinks, config, stop)
    except SinkError as exc:
        log.error("%s", exc)
        code = EXIT_SINK
    finally:
        for sink in sinks:
            sink.close()
        if config.truth:
            _write_truth(config.truth, truth)
    log.info("sent %d events for %s (%s)", truth.sent, config.site,
             ", ".join("%s: %d" % (s.name, s.events) for s in sinks) or "no sinks")
    return code


def _send(sinks: List[Sink], model: SiteModel, truth: Truth, ev) -> None:
    if not len(ev):
        return
    for sink in sinks:
        sink.send(model, ev)
    # Counted once every sink has it: the truth is what all of them were given.
    truth.add(ev)


def _fast_forward(model: SiteModel, truth: Truth, sinks: List[Sink], start: int, end: int,
                  stop: threading.Event) -> None:
    began = time.monotonic()
    cursor = start
    while cursor < end and not stop.is_set():
        chunk_end = min(end, (cursor // DAY + 1) * DAY)
        _send(sinks, model, truth, model.events(cursor, chunk_end))
        cursor = chunk_end
    log.info("fast-forward %s .. %s: %d events in %.1f s", _iso(start), _iso(end), truth.sent,
             time.monotonic() - began)


def _live(model: SiteModel, truth: Truth, sinks: List[Sink], config: SimConfig,
          stop: threading.Event) -> None:
    cursor = config.end if config.start is not None else int(time.time())
    stop_at = None if config.duration is None else time.monotonic() + config.duration
    log.info("live from %s", _iso(cursor))
    while not stop.is_set():
        # An event stamped second s is sent once s has begun.
        upto = int(time.time()) + 1
        if upto > cursor:
            _send(sinks, model, truth, model.events(cursor, upto))
            cursor = upto
        if stop_at is not None and time.monotonic() >= stop_at:
            break
        stop.wait(config.tick)


def _write_truth(path: str, truth: Truth) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(truth.to_json(), fh, separators=(",", ":"))
    os.replace(tmp, path)


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
