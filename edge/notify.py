"""systemd's notify protocol over ``$NOTIFY_SOCKET`` with the standard library only.

``READY=1`` once the agent is up, ``WATCHDOG=1`` from the main loop (so a stuck loop gets
the service restarted), ``STOPPING=1`` on the way out, and a ``STATUS=`` line for
``systemctl status``. Without a socket every call is a no-op; a send that fails is logged
once and never stops the agent.
"""

from __future__ import annotations

import logging
import socket
from typing import Optional

__all__ = ["Notifier"]

log = logging.getLogger(__name__)


class Notifier:
    def __init__(self, address: Optional[str]) -> None:
        self.address: Optional[str] = None
        if address:
            # A leading '@' names a socket in the abstract namespace.
            self.address = "\0" + address[1:] if address.startswith("@") else address
        self._sock: Optional[socket.socket] = None
        self._warned = False

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *lines: str) -> bool:
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            self._sock.sendto("\n".join(lines).encode(), self.address)
            return True
        except OSError as exc:
            if not self._warned:
                log.warning("cannot notify systemd at %r: %s", self.address, exc)
                self._warned = True
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *(("STATUS=" + status,) if status else ()))

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def status(self, text: str) -> bool:
        return self.send("STATUS=" + text)

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None
