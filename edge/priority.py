"""Priority publishing: which cameras' current-slot states cannot wait for the publish
interval.

The agent asks :meth:`Priority.scan` every :data:`TICK` seconds with a view of the current
slot (``SlotBuffers.view``); it answers the cameras whose state is urgent since the
previous scan, so everything found in one tick goes out in one message:

* a trigger: with mode ``new`` (the default) a trigger name counted for the first time in
  the camera's slot, with ``all`` every event carrying a trigger (each then costs about
  what forwarding that raw event would, so ``all`` only suits rare triggers);
* a rise of the zone's intensity class (low < medium < high, by ``intensity_medium`` and
  ``intensity_high``) above both the class reached earlier in this slot and the class the
  camera's previous slot ended in. A slot's peak only grows, so a fall shows only when
  the slot closes: it travels at the publish interval.

The first scan only learns what is there (after a restart nothing is "new" at once).
"""

from __future__ import annotations

from typing import Dict, Iterable, List, Optional, Tuple

__all__ = ["Priority", "TICK"]

#: Least seconds between scans: the coalescing window. The agent's loop scans as soon as
#: the buffers note a change worth a look (``SlotBuffers.on_watch``), at most every TICK.
TICK = 0.1

#: (camera, peak, previous slot's peak, {trigger: count})
View = Tuple[str, int, int, Dict[str, int]]


class Priority:
    def __init__(self, mode: str = "new", medium: int = 4, high: int = 7) -> None:
        if mode not in ("new", "all", "off"):
            raise ValueError("mode must be new, all or off")
        if not 0 < medium < high:
            raise ValueError("thresholds must satisfy 0 < medium < high")
        self.mode = mode
        self.medium = medium
        self.high = high
        self.scans = 0
        self._slot: Optional[int] = None
        self._seen: Dict[str, Tuple[int, Dict[str, int]]] = {}  # camera -> (class, trigger counts)

    @property
    def enabled(self) -> bool:
        return self.mode != "off"

    def level(self, peak: int) -> int:
        """0 low, 1 medium, 2 high."""
        return 2 if peak >= self.high else 1 if peak >= self.medium else 0

    def scan(self, slot: int, view: Iterable[View]) -> List[str]:
        """Cameras urgent since the last scan of ``slot`` (a new slot starts from nothing)."""
        self.scans += 1
        priming = self._slot is None
        if slot != self._slot:
            self._slot = slot
            self._seen = {}
        urgent = []
        for camera, peak, prev_peak, counts in view:
            level = self.level(peak)
            before = self._seen.get(camera)
            self._seen[camera] = (level, dict(counts))
            if priming or not self.enabled:
                continue
            old_level, old_counts = before if before is not None else (0, {})
            if level > old_level and level > self.level(prev_peak):
                urgent.append(camera)
            elif self.mode == "all":
                if any(n > old_counts.get(name, 0) for name, n in counts.items()):
                    urgent.append(camera)
            elif any(name not in old_counts for name in counts):
                urgent.append(camera)
        return urgent
