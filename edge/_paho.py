"""The one place the agent builds paho clients: the central link's and the local MQTT input's.

Both are persistent MQTT 3.1.1 sessions (fixed client id, clean_session off) that reconnect
in the background; :func:`make_client` sets that up, with credentials and TLS from a
:class:`MqttTarget`, and :func:`start_client` connects and starts paho's thread. paho and OS
errors become the caller's own :class:`EdgeError` here.

paho's log goes through :func:`paho_logger`, without paho 2's false alarm while it waits to
reconnect: paho 2.2 logs "Client is not connected" at ERROR on every pass of its network
loop between a lost connection and the next attempt, and once on a clean stop. The link
already logs the loss (warning) and the reconnect (info), so that line is dropped;
everything else paho says passes through unchanged.
"""

from __future__ import annotations

import logging
import ssl
from typing import Type

import paho.mqtt.client as mqtt

from shared.settings import MqttTarget

from .exceptions import EdgeError

__all__ = ["make_client", "paho_logger", "start_client"]


class _DropNotConnected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_FILTER = _DropNotConnected()


def paho_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name + ".paho")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger


def make_client(target: MqttTarget, client_id: str, logger: str, error: Type[EdgeError], what: str,
                manual_ack: bool = False) -> mqtt.Client:
    """A persistent-session client for ``target``; ``error`` (naming ``what``) if TLS fails."""
    client = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=False,
        protocol=mqtt.MQTTv311,
        manual_ack=manual_ack,
    )
    client.enable_logger(paho_logger(logger))
    client.reconnect_delay_set(min_delay=1, max_delay=30)
    if target.username is not None:
        client.username_pw_set(target.username, target.password)
    if target.tls:
        try:
            client.tls_set(ca_certs=target.ca_file, certfile=target.cert_file, keyfile=target.key_file,
                           cert_reqs=ssl.CERT_REQUIRED)
        except (OSError, ssl.SSLError, ValueError) as exc:
            raise error("TLS setup for %s failed: %s" % (what, exc)) from None
    return client


def start_client(client: mqtt.Client, target: MqttTarget, keepalive: int, error: Type[EdgeError],
                 what: str) -> None:
    """Connect in the background and start paho's thread; ``error`` if the address is bad."""
    try:
        client.connect_async(target.host, target.port, keepalive=keepalive)
    except (OSError, ValueError) as exc:
        raise error("cannot connect to %s: %s" % (what, exc)) from None
    client.loop_start()
