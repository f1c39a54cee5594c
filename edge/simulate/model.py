"""The detection model behind ``python -m edge simulate``, and the truth it keeps.

A site is a list of cameras, each with a capacity and a profile (office, reception,
cafeteria, restricted) that shapes its daily occupancy curve in the site's *local* time,
with a weekday/weekend difference and a few random bursts a day. Events arrive as a
Poisson process whose rate follows the occupancy; each event carries a people count drawn
around the expected occupancy and triggers at plausible rates.

The timeline is a pure function of (seed, site, camera, UTC day): any time window is a
slice of it, so a backfill followed by a live run neither overlaps nor leaves a gap, and a
rerun with the same seed sends the same events (with the same numpy version: numpy does not
promise the same random streams across versions). Timestamps are whole seconds, which is what
``camera_events.event_timestamp`` keeps, so raw and edge totals agree exactly.

Local time without zoneinfo (Python 3.8 on the Jetson): a fixed UTC offset plus an
optional daylight-saving rule, ``eu`` (last Sunday of March to last Sunday of October,
01:00 UTC) or ``us`` (second Sunday of March to first Sunday of November, 02:00 local).
Southern-hemisphere rules are not modelled.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from shared.names import check_name, check_trigger
from shared.slots import SLOT_SECONDS

__all__ = [
    "DAY",
    "DST_RULES",
    "PROFILES",
    "TRIGGERS",
    "Camera",
    "Clock",
    "Events",
    "SiteModel",
    "Truth",
    "parse_cameras",
    "parse_offset",
]

DAY = 86400
DST_RULES = ("none", "eu", "us")

#: Expected share of capacity present at each local hour (0..23), interpolated per minute.
_CURVES = {
    "office": [0.02, 0.02, 0.02, 0.02, 0.02, 0.03, 0.05, 0.12, 0.35, 0.7, 0.9, 0.95,
               0.6, 0.55, 0.85, 0.9, 0.8, 0.5, 0.25, 0.1, 0.05, 0.03, 0.02, 0.02],
    "reception": [0.01, 0.01, 0.01, 0.01, 0.01, 0.02, 0.05, 0.3, 0.75, 0.9, 0.6, 0.45,
                  0.55, 0.6, 0.45, 0.4, 0.55, 0.8, 0.7, 0.3, 0.1, 0.05, 0.02, 0.01],
    "cafeteria": [0.0, 0.0, 0.0, 0.0, 0.0, 0.01, 0.05, 0.2, 0.35, 0.2, 0.1, 0.3,
                  0.95, 1.0, 0.5, 0.3, 0.4, 0.2, 0.1, 0.05, 0.02, 0.01, 0.0, 0.0],
    "restricted": [0.03, 0.03, 0.03, 0.03, 0.03, 0.03, 0.05, 0.1, 0.2, 0.3, 0.3, 0.3,
                   0.2, 0.25, 0.3, 0.3, 0.25, 0.15, 0.08, 0.05, 0.04, 0.03, 0.03, 0.03],
    # Half full around the clock, every day: a steady load for tests and benchmarks.
    "flat": [0.5] * 24,
}
#: Weekend occupancy as a share of a weekday's.
_WEEKEND = {"office": 0.1, "reception": 0.2, "cafeteria": 0.15, "restricted": 0.4, "flat": 1.0}
PROFILES = tuple(_CURVES)
_KEYWORDS = (
    ("cafeteria", ("CAFE", "CANTEEN", "KITCHEN", "PANTRY", "FOOD")),
    ("reception", ("RECEPTION", "LOBBY", "ENTRANCE", "GATE", "DOOR")),
    ("restricted", ("RESTRICTED", "SERVER", "VAULT", "CABIN", "STORE", "LAB")),
)

TRIGGERS = ("UNAUTHORIZED_STRANGER", "RESTRICTED_ACCESS", "CROWD_VIOLATION")
#: Events per minute: a trickle plus this many per expected person.
_BASE_RATE = 0.01
_RATE_PER_PERSON = 0.25


@dataclass(frozen=True)
class Camera:
    name: str
    capacity: int
    profile: str


def parse_cameras(spec: str, seed: int) -> Tuple[Camera, ...]:
    """``"N"`` or ``"NAME[:CAPACITY[:PROFILE]],..."``; missing parts are chosen from the seed."""
    spec = spec.strip()
    rng = np.random.default_rng([seed, 7])
    if spec.isdigit():
        count = int(spec)
        if not 1 <= count <= 256:
            raise ValueError("--cameras: a count must be 1..256")
        names = ["CAM_%02d" % (i + 1) for i in range(count)]
        parts: List[List[str]] = [[n] for n in names]
    else:
        parts = [p.strip().split(":") for p in spec.split(",") if p.strip()]
        if not parts:
            raise ValueError("--cameras: give a count or NAME[:CAPACITY[:PROFILE]],...")
    cams = []
    for i, bits in enumerate(parts):
        if len(bits) > 3:
            raise ValueError("--cameras: %r has too many ':' parts" % ":".join(bits))
        name = check_name(bits[0], "--cameras")
        capacity = int(rng.integers(3, 13))
        if len(bits) > 1 and bits[1]:
            if not bits[1].isdigit() or not 1 <= int(bits[1]) <= 1000:
                raise ValueError("--cameras: capacity of %s must be 1..1000" % name)
            capacity = int(bits[1])
        profile = bits[2] if len(bits) > 2 else _profile_for(name, i)
        if profile not in _CURVES:
            raise ValueError("--cameras: profile of %s must be one of %s" % (name, ", ".join(PROFILES)))
        cams.append(Camera(name, capacity, profile))
    if len({c.name for c in cams}) != len(cams):
        raise ValueError("--cameras: a camera name is given twice")
    return tuple(cams)


def _profile_for(name: str, index: int) -> str:
    upper = name.upper()
    for profile, words in _KEYWORDS:
        if any(w in upper for w in words):
            return profile
    return "office"


_OFFSET_RE = re.compile(r"([+-])(\d{1,2})(?::?(\d{2}))?\Z")


def parse_offset(text: str) -> int:
    """``+05:30`` / ``-0500`` / ``UTC-5`` -> seconds east of UTC, a multiple of 15 minutes.

    The ``UTC`` prefix lets a negative offset stand as its own command-line word
    (``--utc-offset UTC-05:00``; ``--utc-offset=-05:00`` works too).
    """
    text = text.strip()
    if text[:3].upper() == "UTC":
        text = text[3:] or "+00:00"
    m = _OFFSET_RE.match(text)
    if m is None:
        raise ValueError("--utc-offset must look like +05:30 or -05:00, not %r" % text)
    seconds = int(m.group(2)) * 3600 + int(m.group(3) or 0) * 60
    if seconds > 14 * 3600 or seconds % SLOT_SECONDS:
        raise ValueError("--utc-offset must be within 14 h and a multiple of 15 minutes")
    return -seconds if m.group(1) == "-" else seconds


class Clock:
    """Local time of a site: a standard UTC offset plus an optional DST rule."""

    def __init__(self, offset: int, dst: str = "none"):
        if dst not in DST_RULES:
            raise ValueError("--dst must be one of %s" % ", ".join(DST_RULES))
        self.offset = offset
        self.dst = dst
        self._years: Dict[int, Tuple[int, int]] = {}

    def _transitions(self, year: int) -> Tuple[int, int]:
        """UTC Unix seconds at which summer time starts and ends in ``year``."""
        if year not in self._years:
            if self.dst == "eu":
                start = _nth_sunday(year, 3, -1) + 3600
                end = _nth_sunday(year, 10, -1) + 3600
            else:  # us: 02:00 local standard, 02:00 local summer time
                start = _nth_sunday(year, 3, 2) + 7200 - self.offset
                end = _nth_sunday(year, 11, 1) + 7200 - self.offset - 3600
            self._years[year] = (start, end)
        return self._years[year]

    def offsets(self, ts: np.ndarray) -> np.ndarray:
        """Seconds east of UTC at each UTC time in ``ts`` (int64 array)."""
        out = np.full(ts.shape, self.offset, dtype=np.int64)
        if self.dst == "none" or ts.size == 0:
            return out
        years = range(_year(int(ts.min())), _year(int(ts.max())) + 1)
        for year in years:
            start, end = self._transitions(year)
            out[(ts >= start) & (ts < end)] += 3600
        return out

    def local(self, ts: np.ndarray) -> np.ndarray:
        return ts + self.offsets(ts)


def _year(ts: int) -> int:
    return datetime.fromtimestamp(ts, timezone.utc).year


def _nth_sunday(year: int, month: int, n: int) -> int:
    """UTC midnight (Unix seconds) of the n-th Sunday of the month; n=-1 for the last."""
    if n > 0:
        first = datetime(year, month, 1, tzinfo=timezone.utc)
        day = first + timedelta(days=(6 - first.weekday()) % 7 + 7 * (n - 1))
    else:
        nxt = datetime(year + (month == 12), month % 12 + 1, 1, tzinfo=timezone.utc)
        last = nxt - timedelta(days=1)
        day = last - timedelta(days=(last.weekday() - 6) % 7)
    return int(day.timestamp())


class Events:
    """A batch of events as columns: camera index, UTC seconds, people, trigger flags."""

    def __init__(self, cam: np.ndarray, ts: np.ndarray, people: np.ndarray, flags: np.ndarray):
        self.cam = cam
        self.ts = ts
        self.people = people
        self.flags = flags  # bool, shape (n, len(TRIGGERS))

    def __len__(self) -> int:
        return int(self.ts.size)

    @classmethod
    def empty(cls) -> Events:
        return cls(np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.int64),
                   np.zeros((0, len(TRIGGERS)), bool))

    @classmethod
    def concat(cls, parts: Sequence[Events]) -> Events:
        parts = [p for p in parts if len(p)]
        if not parts:
            return cls.empty()
        ev = cls(*(np.concatenate([getattr(p, f) for p in parts]) for f in ("cam", "ts", "people", "flags")))
        order = np.argsort(ev.ts, kind="stable")
        return ev.take(order)

    def take(self, index: np.ndarray) -> Events:
        return Events(self.cam[index], self.ts[index], self.people[index], self.flags[index])

    def window(self, start: int, end: int) -> Events:
        """Events with start <= ts < end (self must be sorted by ts)."""
        lo, hi = np.searchsorted(self.ts, [start, end], side="left")
        return self.take(slice(int(lo), int(hi)))  # type: ignore[arg-type]

    def triggers_of(self, i: int) -> List[str]:
        return [TRIGGERS[j] for j in np.flatnonzero(self.flags[i])]


class SiteModel:
    """Generates the deterministic event timeline of one site."""

    def __init__(self, site: str, cameras: Sequence[Camera], clock: Clock, seed: int = 0,
                 rate_scale: float = 1.0):
        check_name(site, "--site")
        for t in TRIGGERS:
            check_trigger(t, "trigger")
        if not 0 < rate_scale <= 1000:
            raise ValueError("--rate-scale must be in (0, 1000]")
        self.site = site
        self.cameras = tuple(cameras)
        self.clock = clock
        self.seed = seed
        self.rate_scale = rate_scale
        self._site_key = int.from_bytes(hashlib.sha256(site.encode()).digest()[:4], "big")
        self._cache: Dict[int, Events] = {}

    def events(self, start: int, end: int) -> Events:
        """All events with start <= ts < end, sorted by time."""
        if end <= start:
            return Events.empty()
        days = range(start // DAY, (end - 1) // DAY + 1)
        return Events.concat([self._day(d).window(start, end) for d in days])

    def _day(self, day: int) -> Events:
        if day not in self._cache:
            if len(self._cache) > 4:
                self._cache.pop(min(self._cache))
            self._cache[day] = Events.concat(
                [self._camera_day(i, cam, day) for i, cam in enumerate(self.cameras)]
            )
        return self._cache[day]

    def _camera_day(self, index: int, cam: Camera, day: int) -> Events:
        key = int.from_bytes(hashlib.sha256(cam.name.encode()).digest()[:4], "big")
        rng = np.random.default_rng([self.seed, self._site_key, key, day])
        minutes = day * DAY + 60 * np.arange(1440, dtype=np.int64)
        local = self.clock.local(minutes)
        hour = (local % DAY) / 3600.0
        minute_of_day = (local % DAY) // 60
        curve = np.asarray(_CURVES[cam.profile] + _CURVES[cam.profile][:1])
        share = np.interp(hour, np.arange(25), curve)
        weekday = ((local // DAY) + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
        share = np.where(weekday >= 5, share * _WEEKEND[cam.profile], share)
        # Bursts: a meeting, a delivery, a crowd at the door; during the working day.
        burst = np.ones(1440)
        for _ in range(rng.poisson(0.6)):
            begin = int(rng.integers(8 * 60, 19 * 60))
            length = int(rng.integers(5, 26))
            at = (minute_of_day >= begin) & (minute_of_day < begin + length)
            burst[at] *= rng.uniform(1.6, 2.5)
        occupancy = cam.capacity * share * burst
        rate = self.rate_scale * (_BASE_RATE + _RATE_PER_PERSON * occupancy)
        counts = rng.poisson(rate)
        n = int(counts.sum())
        occ = np.repeat(occupancy, counts)
        ts = np.repeat(minutes, counts) + rng.integers(0, 60, n)
        # A room holds only so many: the count saturates at half again its capacity.
        ceiling = min(65535, max(2, (cam.capacity * 3 + 1) // 2))
        people = np.minimum(np.maximum(1, rng.poisson(occ)), ceiling).astype(np.int64)
        night = np.repeat((hour < 6) | (hour >= 21), counts)
        flags = np.zeros((n, len(TRIGGERS)), bool)
        flags[:, 0] = rng.random(n) < np.where(night, 0.03, 0.005)
        flags[:, 1] = rng.random(n) < (0.04 if cam.profile == "restricted" else 0.002)
        # Over capacity (mostly in bursts), the crowd rule fires for about half the frames.
        flags[:, 2] = (people > cam.capacity) & (rng.random(n) < 0.5)
        order = np.argsort(ts, kind="stable")
        cams = np.full(n, index, dtype=np.int64)
        return Events(cams, ts, people, flags).take(order)


class Truth:
    """What was sent, per (camera, slot) and per local day, to compare totals exactly."""

    def __init__(self, model: SiteModel):
        self.model = model
        self.slots: Dict[Tuple[int, int], List] = {}  # (cam, slot) -> [peak, events, trig counts]
        self.sent = 0
        self.first: Optional[int] = None
        self.last: Optional[int] = None

    def add(self, ev: Events) -> None:
        if not len(ev):
            return
        self.sent += len(ev)
        lo, hi = int(ev.ts.min()), int(ev.ts.max())
        self.first = lo if self.first is None else min(self.first, lo)
        self.last = hi if self.last is None else max(self.last, hi)
        slot = ev.ts - ev.ts % SLOT_SECONDS
        keys = np.stack([ev.cam, slot], axis=1)
        uniq, inverse = np.unique(keys, axis=0, return_inverse=True)
        inverse = inverse.reshape(-1)
        peak = np.zeros(len(uniq), np.int64)
        np.maximum.at(peak, inverse, ev.people)
        count = np.bincount(inverse, minlength=len(uniq))
        trig = np.zeros((len(uniq), len(TRIGGERS)), np.int64)
        np.add.at(trig, inverse, ev.flags.astype(np.int64))
        for j, (c, s) in enumerate(uniq.tolist()):
            cur = self.slots.get((c, s))
            if cur is None:
                self.slots[(c, s)] = [int(peak[j]), int(count[j]), trig[j].tolist()]
            else:
                cur[0] = max(cur[0], int(peak[j]))
                cur[1] += int(count[j])
                cur[2] = [a + b for a, b in zip(cur[2], trig[j].tolist())]

    def to_json(self) -> Dict:
        model = self.model
        slots = []
        days: Dict[str, Dict] = {}
        for (c, s), (peak, events, trig) in sorted(self.slots.items(), key=lambda kv: (kv[0][1], kv[0][0])):
            name = model.cameras[c].name
            triggers = {TRIGGERS[j]: n for j, n in enumerate(trig) if n}
            slots.append({"camera": name, "slot": s, "peak": peak, "events": events, "triggers": triggers})
            local = int(model.clock.local(np.array([s], np.int64))[0])
            date = datetime.fromtimestamp(local - local % DAY, timezone.utc).strftime("%Y-%m-%d")
            hour = (local % DAY) // 3600
            day = days.setdefault(date, {"zones": {}, "hourly": {}, "critical_events": {"total_events": 0}})
            zone = day["zones"].setdefault(name, {"peak": 0, "events": 0})
            zone["peak"] = max(zone["peak"], peak)
            zone["events"] += events
            day["hourly"][hour] = max(day["hourly"].get(hour, 0), peak)
            crit = day["critical_events"]
            crit["total_events"] += events
            for t, n in triggers.items():
                crit[t] = crit.get(t, 0) + n
        for day in days.values():
            day["hourly"] = [{"hour": h, "count": n} for h, n in sorted(day["hourly"].items())]
        return {
            "site": model.site,
            "seed": model.seed,
            "utc_offset": model.clock.offset,
            "dst": model.clock.dst,
            "cameras": [{"name": c.name, "capacity": c.capacity, "profile": c.profile} for c in model.cameras],
            "events": self.sent,
            "first_timestamp": self.first,
            "last_timestamp": self.last,
            "slots": slots,
            "days": days,
        }
