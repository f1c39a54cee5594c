"""The error root of the edge agent.

Everything the agent raises on purpose is an :class:`EdgeError`. Errors of paho, sqlite3 and
the operating system are translated into these at the module that calls the library
(``link``, ``outbox``, ``inputs``), so the agent and the CLI catch one family.
"""

from __future__ import annotations

__all__ = ["EdgeError", "ConfigError", "OutboxError", "LinkError", "InputError", "SinkError"]


class EdgeError(Exception):
    """Root of the errors raised by ``edge``."""


class ConfigError(EdgeError):
    """An unknown or invalid setting; the message is the one line shown to the operator."""


class OutboxError(EdgeError):
    """The durable outbox cannot be read or written."""


class LinkError(EdgeError):
    """The MQTT link to central cannot be set up (bad TLS files, bad address)."""


class InputError(EdgeError):
    """An input (datagram socket, local MQTT subscription) cannot be set up."""


class SinkError(EdgeError):
    """A simulator sink that cannot deliver (bad address, refused batch, retries exhausted)."""
