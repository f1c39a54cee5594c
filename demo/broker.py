"""The embedded MQTT broker of the one-box demo: amqtt, run as its own process.

``python -m demo.broker --port N`` serves MQTT 3.1.1 on 127.0.0.1 until SIGTERM. What amqtt
0.12 does and does not do (checked by ``tests/demo/test_broker.py``):

* QoS 1, retained messages and last wills work;
* persistent sessions (clean_session off) work only for clients that give a user name
  (amqtt drops anonymous sessions on disconnect), so the broker requires one (any name,
  no password) and the demo gives every client a user name; sessions live in memory only;
* a QoS 1 message delivered but not acknowledged when the connection drops is not
  redelivered on reconnect; the agent's application-level resend covers it (a delay of
  the ack timeout, never a loss);
* no ``$share/`` shared subscriptions and no MQTT 5: central subscribes without a share
  group in this mode. Production uses mosquitto or EMQX.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import signal

__all__ = ["broker_config", "main"]

log = logging.getLogger(__name__)


def broker_config(host: str, port: int) -> dict:
    return {
        "listeners": {"default": {"type": "tcp", "bind": "%s:%d" % (host, port)}},
        "plugins": {
            # Not anonymous: amqtt keeps persistent sessions only for named clients.
            "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": False},
        },
    }


async def _serve(host: str, port: int) -> None:
    from amqtt.broker import Broker

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    broker = Broker(broker_config(host, port))
    await broker.start()
    log.info("amqtt broker on %s:%d", host, port)
    await stop.wait()
    await broker.shutdown()
    log.info("amqtt broker stopped")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m demo.broker", description="embedded MQTT broker (amqtt)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    for name in ("amqtt", "transitions"):
        logging.getLogger(name).setLevel(logging.WARNING)
    asyncio.run(_serve(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
