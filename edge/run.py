"""``python -m edge run``: configuration, signals, and the agent's lifetime in one process.

Startup builds the one :class:`Config` (an invalid one is one line on stderr and exit code
2), starts the :class:`Agent` and tells systemd READY; the main thread then only waits for
SIGTERM or SIGINT (or for an input to die: then the exit code is 1, so systemd restarts it);
shutdown drains the inputs, commits, makes a last publish attempt, says "stopped" and exits
within seconds.
"""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading
from typing import Optional

from .agent import Agent
from .config import Config, add_arguments
from .exceptions import ConfigError, EdgeError

__all__ = ["EXIT_OK", "EXIT_FAILURE", "EXIT_CONFIG", "add_parser", "run"]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_CONFIG = 2

log = logging.getLogger("edge")


def add_parser(sub: argparse._SubParsersAction) -> argparse.ArgumentParser:
    parser = sub.add_parser(
        "run",
        help="run the agent",
        description="Run the edge agent. Every flag has a HEATMAP_* environment variable; "
        "the flag wins. Secrets may also come from $CREDENTIALS_DIRECTORY "
        "(mqtt_password, mqtt_ca.pem, mqtt_cert.pem, mqtt_key.pem).",
    )
    add_arguments(parser)
    return parser


def run(args: Optional[argparse.Namespace] = None) -> int:
    try:
        config = Config.load(args)
    except ConfigError as exc:
        sys.stderr.write("edge: invalid configuration: %s\n" % exc)
        return EXIT_CONFIG
    logging.basicConfig(level=config.log_level, stream=sys.stderr,
                        format="%(levelname)s %(name)s: %(message)s")
    if config.ignored_env:
        log.info("ignoring central's settings %s", ", ".join(config.ignored_env))
    if config.mqtt is None:
        log.warning("HEATMAP_MQTT_URL is not set: states are committed but not published")

    stop = threading.Event()

    def on_signal(signum: int, frame: object) -> None:
        log.info("signal %d: stopping", signum)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    agent = Agent(config)
    try:
        agent.start()
    except EdgeError as exc:
        log.error("cannot start: %s", exc)
        return EXIT_FAILURE
    log.info("agent running: site %s, device %s, state in %s",
             config.site, config.device_id, config.state_dir)
    while not stop.wait(0.5) and not agent.failed.is_set():
        pass
    agent.stop()
    if agent.failed.is_set():
        log.error("stopped: %s", agent.failure)
        return EXIT_FAILURE
    log.info("stopped")
    return EXIT_OK
