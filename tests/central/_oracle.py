"""An independent oracle for the range views (tests only): the slot rule applied to the rows
a test wrote, then bucketed with zoneinfo one instant at a time, never through central's code.
"""

from __future__ import annotations

import random
from datetime import date, datetime, timedelta

from zoneinfo import ZoneInfo

__all__ = ["World", "local_bounds"]

SLOT = 900
TRIGGERS = ("UNAUTHORIZED_STRANGER", "RESTRICTED_ACCESS", "CROWD_VIOLATION")


def local_bounds(tz: ZoneInfo, first: date, last: date) -> tuple[int, int]:
    lo = datetime(first.year, first.month, first.day, tzinfo=tz)
    nxt = last + timedelta(days=1)
    hi = datetime(nxt.year, nxt.month, nxt.day, tzinfo=tz)
    return int(lo.timestamp()), int(hi.timestamp())


class World:
    """Raw events and edge states of one site, and what every (camera, slot) should answer."""

    def __init__(self, site: str, seed: int):
        self.site = site
        self.rng = random.Random(seed)
        self.raw: list[dict] = []  # POST /api/v1/events bodies
        self.edge: dict[tuple[str, int], tuple[int, int, dict]] = {}  # (cam, slot) -> state

    def random_raw(self, lo: int, hi: int, n: int, cams=("A", "B", "C")) -> None:
        for _ in range(n):
            trig = [self.rng.choice(TRIGGERS) for _ in range(self.rng.choice([0, 0, 0, 1, 2]))]
            self.raw.append({"site": self.site, "camera": self.rng.choice(cams),
                             "timestamp": self.rng.randrange(lo, hi), "people_count": self.rng.randrange(0, 25),
                             "triggers": trig})

    def random_edge(self, lo: int, hi: int, n: int, cam: str = "A") -> None:
        for _ in range(n):
            slot = self.rng.randrange(lo // SLOT, hi // SLOT) * SLOT
            events = self.rng.choice([0, 1, 5, 20])
            trig = {"CROWD_VIOLATION": self.rng.randrange(0, events + 1)} if events else {}
            self.edge[(cam, slot)] = (self.rng.randrange(0, 30) if events else 0, events, trig)

    def slots(self) -> dict[tuple[str, int], tuple[int, int, dict]]:
        """(cam, slot) -> (peak, events, triggers): the edge where it reported, else raw."""
        out: dict[tuple[str, int], list] = {}
        for e in self.raw:
            key = (e["camera"], e["timestamp"] // SLOT * SLOT)
            acc = out.setdefault(key, [0, 0, {}])
            acc[0] = max(acc[0], e["people_count"])
            acc[1] += 1
            for t in e["triggers"]:
                acc[2][t] = acc[2].get(t, 0) + 1
        answer = {k: (v[0], v[1], v[2]) for k, v in out.items()}
        answer.update(self.edge)
        return answer

    def buckets(self, tz: ZoneInfo, first: date, last: date, kind: str) -> list[dict]:
        """Every bucket over the local days, in order: start label, peak, events, triggers,
        zone peaks (``zones``), per-zone rows (``per_zone``) and where its slots came from
        (``source``: edge, raw, mixed or none); keyed the way a person reads a clock (local hour and its offset)."""
        lo, hi = local_bounds(tz, first, last)
        order: list = []
        label: dict = {}
        for t in range(lo, hi, SLOT):
            local = datetime.fromtimestamp(t, tz)
            key = _key(local, kind)
            if key not in label:
                order.append(key)
                if kind in ("slot", "hour"):
                    label[key] = local.isoformat()
                else:
                    day = local.date() if kind == "day" else local.date() - timedelta(days=local.weekday())
                    label[key] = datetime(day.year, day.month, day.day, tzinfo=tz).isoformat()
        acc = {k: {"start": label[k], "peak": 0, "events": 0, "critical_events": {}, "zones": {}, "per_zone": {},
                   "sources": set()} for k in order}
        for (cam, slot), (peak, events, trig) in self.slots().items():
            if not lo <= slot < hi or not events:
                continue
            b = acc[_key(datetime.fromtimestamp(slot, tz), kind)]
            b["peak"] = max(b["peak"], peak)
            b["events"] += events
            b["sources"].add("edge" if (cam, slot) in self.edge else "raw")
            b["zones"][cam] = max(b["zones"].get(cam, 0), peak)
            z = b["per_zone"].setdefault(cam, {"peak": 0, "events": 0, "triggers": {}})
            z["peak"] = max(z["peak"], peak)
            z["events"] += events
            for name, n in trig.items():
                z["triggers"][name] = z["triggers"].get(name, 0) + n
            for name, n in trig.items():
                if n:
                    b["critical_events"][name] = b["critical_events"].get(name, 0) + n
        for b in acc.values():
            b["critical_events"] = dict(sorted(b["critical_events"].items()))
            found = b.pop("sources")
            b["source"] = "none" if not found else found.pop() if len(found) == 1 else "mixed"
        return [acc[k] for k in order]


def _key(local: datetime, kind: str):
    if kind == "slot":  # not the datetime itself: within one zone, 01:15 BST == 01:15 GMT
        return (local.date(), local.hour, local.minute, local.utcoffset())
    if kind == "hour":
        return (local.date(), local.hour, local.utcoffset())
    if kind == "day":
        return local.date()
    return local.date().isocalendar()[:2]
