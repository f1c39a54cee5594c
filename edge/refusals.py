"""Counting refused input by reason, with logging at a limited rate.

Bad events must never stop the agent nor flood its journal: each reason is counted, and
logged at most once per ``interval`` seconds with how many were refused since the last line.
Reason names are valid protocol names, so they go into ``Stats`` as ``refused_<reason>``.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Dict

__all__ = ["Refusals", "REASONS"]

log = logging.getLogger(__name__)

#: Every reason the agent refuses an event or a datagram for.
REASONS = (
    "bad_camera",
    "bad_count",
    "bad_timestamp",
    "bad_triggers",
    "too_old",
    "future",
    "too_many_cameras",
    "too_many_triggers",
    "bad_json",
    "bad_event",
    "wrong_site",
    "too_large",
    "outbox_reset",
)


class Refusals:
    def __init__(self, interval: float = 10.0) -> None:
        self.interval = interval
        self._lock = threading.Lock()
        self.counts: Dict[str, int] = {}
        self._since: Dict[str, int] = {}
        self._logged: Dict[str, float] = {}

    def add(self, reason: str, detail: str = "", n: int = 1) -> None:
        with self._lock:
            self.counts[reason] = self.counts.get(reason, 0) + n
            self._since[reason] = self._since.get(reason, 0) + n
            now = time.monotonic()
            if now - self._logged.get(reason, -1e18) < self.interval:
                return
            count = self._since.pop(reason)
            self._logged[reason] = now
        log.warning("refused %d event(s) (%s)%s", count, reason, ": " + detail[:200] if detail else "")

    def total(self) -> int:
        with self._lock:
            return sum(self.counts.values())

    def snapshot(self) -> Dict[str, int]:
        with self._lock:
            return dict(self.counts)
