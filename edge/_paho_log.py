"""The logger handed to paho, without paho 2's false alarm while it waits to reconnect.

paho 2.2 logs "Client is not connected" at ERROR on every pass of its network loop between
a lost connection and the next attempt, and once on a clean stop. The link already logs the
loss (warning) and the reconnect (info), so that line is dropped; everything else paho says
passes through unchanged.
"""

from __future__ import annotations

import logging

__all__ = ["paho_logger"]


class _DropNotConnected(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        return not str(record.msg).startswith("Client is not connected")


_FILTER = _DropNotConnected()


def paho_logger(name: str) -> logging.Logger:
    logger = logging.getLogger(name + ".paho")
    if _FILTER not in logger.filters:
        logger.addFilter(_FILTER)
    return logger
