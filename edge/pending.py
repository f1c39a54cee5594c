"""Committed states that central has not acknowledged yet, and when to (re)send them.

One small entry per (camera, slot): the latest committed revision (the state itself stays
in the outbox and is read back when sent, so a long outage costs little memory). A new commit of the slot replaces
the entry and makes it due at once. A sent entry is *in flight* until its timeout
(``ack_timeout`` doubling per attempt up to ``max_backoff``); then it is due again. An ack
of revision ``r`` retires the entry if its revision is ``<= r``. A version 2 ack names
revisions only: an index from each entry's current revision back to its (camera, slot)
retires exactly the entries whose current revision it covers; an ack of a revision that
was replaced since, acked already or never sent is ignored, so duplicates and reordering
are harmless. Memory is bounded by the retention window: :meth:`expire` drops entries of
slots that have left it.
"""

from __future__ import annotations

import time
from typing import Dict, Iterable, List, Optional, Tuple

__all__ = ["Pending"]

Key = Tuple[str, int]
#: (camera, slot, rev)
Item = Tuple[str, int, int]


class _Entry:
    __slots__ = ("attempts", "committed_at", "rev", "sent_at")

    def __init__(self, rev: int, committed_at: float) -> None:
        self.rev = rev
        self.committed_at = committed_at  # wall clock, for "oldest unacked age"
        self.sent_at: Optional[float] = None  # monotonic
        self.attempts = 0


class Pending:
    def __init__(self, ack_timeout: float = 30.0, max_backoff: float = 600.0,
                 max_inflight: int = 20000) -> None:
        self.ack_timeout = ack_timeout
        self.max_backoff = max_backoff
        self.max_inflight = max_inflight
        self._entries: Dict[Key, _Entry] = {}
        self._by_rev: Dict[int, Key] = {}  # current revision of each entry -> its key
        self.resent = 0
        #: True when the last due() held states back for the in-flight bound.
        self.throttled = False

    def __len__(self) -> int:
        return len(self._entries)

    def add(self, items: List[Item], committed_at: float) -> None:
        for camera, slot, rev in items:
            old = self._entries.get((camera, slot))
            if old is None or old.rev < rev:
                if old is not None:
                    self._by_rev.pop(old.rev, None)
                self._entries[(camera, slot)] = _Entry(rev, committed_at)
                self._by_rev[rev] = (camera, slot)

    def _timeout(self, attempts: int) -> float:
        return min(self.ack_timeout * (2 ** min(attempts - 1, 30)), self.max_backoff)

    def due(self, now: Optional[float] = None, bounded: bool = True) -> List[Item]:
        """(camera, slot, rev) to send now, oldest revision first, within the in-flight bound
        (``bounded``; the last publish of a stop takes everything)."""
        now = time.monotonic() if now is None else now
        inflight = 0
        ready = []
        for key, e in self._entries.items():
            if e.sent_at is None or now - e.sent_at >= self._timeout(e.attempts):
                ready.append((e.rev, key))
            else:
                inflight += 1
        room = max(self.max_inflight - inflight, 0) if bounded else len(ready)
        self.throttled = len(ready) > room
        ready.sort()
        return [(key[0], key[1], rev) for rev, key in ready[:room]]

    def unsent(self, keys: List[Key]) -> List[Item]:
        """(camera, slot, rev) of those ``keys`` committed and not sent yet (priority publishing)."""
        out = []
        for key in keys:
            e = self._entries.get(key)
            if e is not None and e.sent_at is None:
                out.append((key[0], key[1], e.rev))
        return out

    def mark_sent(self, items: List[Item], now: Optional[float] = None) -> None:
        now = time.monotonic() if now is None else now
        for camera, slot, rev in items:
            e = self._entries.get((camera, slot))
            if e is not None and e.rev == rev:
                if e.attempts:
                    self.resent += 1
                e.attempts += 1
                e.sent_at = now

    def resend_all(self) -> None:
        """After a reconnect: whatever was in flight may be lost with the old connection."""
        for e in self._entries.values():
            e.sent_at = None

    def ack(self, camera: str, slot: int, rev: int, now: Optional[float] = None) -> Optional[float]:
        """Retire (camera, slot) if its revision is <= ``rev``; returns the ack lag in seconds."""
        e = self._entries.get((camera, slot))
        if e is None or e.rev > rev:
            return None
        del self._entries[(camera, slot)]
        self._by_rev.pop(e.rev, None)
        if e.sent_at is None:
            return None
        return (time.monotonic() if now is None else now) - e.sent_at

    def ack_revs(self, ranges: Iterable[Tuple[int, int]],
                 now: Optional[float] = None) -> Tuple[List[Item], Optional[float]]:
        """Retire the entries whose current revision is in one of the inclusive ``ranges``;
        returns the retired (camera, slot, rev) and the ack lag of the last one sent."""
        now = time.monotonic() if now is None else now
        retired: List[Item] = []
        lag = None
        for first, last in ranges:
            if last - first < len(self._by_rev):
                hits = [r for r in range(first, last + 1) if r in self._by_rev]
            else:  # a wide range: walk the entries instead of the range
                hits = [r for r in self._by_rev if first <= r <= last]
            for rev in hits:
                camera, slot = self._by_rev[rev]
                one = self.ack(camera, slot, rev, now)
                lag = one if one is not None else lag
                retired.append((camera, slot, rev))
        return retired, lag

    def expire(self, lower_slot: int) -> int:
        """Drop entries of slots before ``lower_slot``; returns how many (never acked)."""
        gone = [k for k in self._entries if k[1] < lower_slot]
        for k in gone:
            self._by_rev.pop(self._entries.pop(k).rev, None)
        return len(gone)

    def oldest_age(self, wall_now: Optional[float] = None) -> float:
        if not self._entries:
            return 0.0
        now = time.time() if wall_now is None else wall_now
        # list() copies in one step, so another thread may ask while the loop mutates.
        entries = list(self._entries.values())
        if not entries:
            return 0.0
        return max(0.0, now - min(e.committed_at for e in entries))
