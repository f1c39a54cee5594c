"""The day fold, defined once: how a site-day's slot answers become its numbers.

From the slot rule's answer per (camera, 15-minute slot) (the columns of
:meth:`central.storage.slots.SlotStore.merged_sql`: ``peak``, ``events``, ``triggers``,
``source``), a site's local day folds into

* cells, per (camera, local hour): the peak (max), the events (sum), the trigger counts (sum
  per name), the slots per source (edge, raw, repaired);
* per zone: the highest peak of its slots, the sum of their events;
* per local hour, site-wide: the busiest zone's peak (the max over zones, never a sum, as the
  handoff's ``max(people_count)`` over the site), the sum of the events;
* the day: trigger counts and slots per source summed; utilisation is the busiest zone's
  share of its capacity (peak / capacity, over zones with a capacity above 0).

Slots with no events count for nothing (the handoff counts events); a day without such slots
has no zones, no hours and no sources (``none``).

The rule has three forms, all here: SQL aggregates over slot answers (:data:`PEAK`,
:data:`EVENTS`, ...; the cells: :func:`cells_sql`), SQL over a kept day's arrays
(:func:`per_key`, :func:`array_peak`, :func:`array_share`: ``day_answers`` holds the folded
cells, zones and hours, and reading them is what keeps history and the overview one short
statement), and Python (:class:`DayFold`) for rows already grouped by ClickHouse. Each array
form folds with the same function as its aggregate (max, sum, sumMap), so the forms agree to
the number; ``tests/central/test_answers.py`` and ``test_seams.py`` check them against each
other. Fragments hold no values: parameters stay server-side (``{tz:String}``).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from ..sites import utilisation
from .slots import as_counts, source_label

__all__ = ["ARRAY_COUNTS", "ARRAY_PEAK", "ARRAY_SUM", "CELL", "COUNTED", "DayFold", "EDGE", "EVENTS", "LOCAL_DAY", "LOCAL_HOUR", "PEAK", "RAW", "REPAIRED",
           "SLOTS", "TRIGGERS", "array_peak", "array_share", "cells_sql", "counts_of", "peak_of", "per_key", "share",
           "share_sql", "sum_of"]

# -- SQL over slot answers (or over cells ARRAY JOINed) ---------------------------------

#: The slot answers a fold counts.
COUNTED = "events > 0"
#: A slot's local day and hour in the zone of parameter ``tz`` (a repeated hour is merged,
#: a skipped one absent). Statements over sites of several zones bucket by offsets instead
#: (:mod:`central.buckets`): ``toDateTime`` takes one zone per statement.
LOCAL_DAY = "toDate(toDateTime(slot, {tz:String}))"
LOCAL_HOUR = "toUInt8(toHour(toDateTime(slot, {tz:String})))"



def peak_of(column: str) -> str:
    """A group's peak: the highest of its rows' (a site-wide hour's is its busiest zone's)."""
    return "max(%s)" % column


def sum_of(column: str) -> str:
    """A group's events, or slots: the sum of its rows'."""
    return "sum(%s)" % column


def counts_of(column: str) -> str:
    """A group's trigger counts: its rows' maps summed per name."""
    return "CAST(sumMap(%s), 'Map(String, UInt64)')" % column


#: Per group of slot answers (a cell, a zone, a local hour, a bucket); a group of folded
#: rows (cells, days) folds again with the same functions over their columns.
PEAK = peak_of("peak")
EVENTS = sum_of("events")
TRIGGERS = counts_of("triggers")
EDGE = "countIf(source = 'edge')"
RAW = "countIf(source = 'raw')"
REPAIRED = "countIf(source = 'repaired')"
#: Every answer is edge, raw or repaired: SLOTS = EDGE + RAW + REPAIRED.
SLOTS = "count()"

#: The cell columns ``pk, ev, tr, ce, cr, cp`` (peak, events, trigger counts, slots from
#: edge, raw, repaired), as ``day_answers`` keeps them.
CELL = ("toUInt32(%s) AS pk, %s AS ev, %s AS tr, toUInt32(%s) AS ce, toUInt32(%s) AS cr, toUInt32(%s) AS cp"
        % (PEAK, EVENTS, TRIGGERS, EDGE, RAW, REPAIRED))


def share_sql(peak: str = "peak", cap: str = "cap") -> str:
    """Over a group of rows: the busiest zone's share of its capacity; ``cap`` is the row's
    zone's capacity, 0 without one (0 where no row has one)."""
    return "maxIf(%s / %s, %s > 0)" % (peak, cap, cap)


def cells_sql(slots: str, keys: Iterable[str], where: str = "", order: bool = False) -> str:
    """The cells of the slot answers ``slots`` (a subquery): per ``keys`` (expressions, each
    ``... AS alias`` or a column), the key columns then :data:`CELL`; ``where`` narrows the
    counted answers further (a parameterised condition)."""
    keys = list(keys)
    names = ", ".join(k.rsplit(" AS ", 1)[-1] for k in keys)
    return "SELECT %s, %s\nFROM (%s)\nWHERE %s%s\nGROUP BY %s%s" % (
        ", ".join(keys), CELL, slots, COUNTED, " AND " + where if where else "", names,
        "\nORDER BY " + names if order else "")


# -- SQL over a kept day's arrays (day_answers) -----------------------------------------

#: :func:`peak_of`, :func:`sum_of` and :func:`counts_of` over an array (templates).
ARRAY_PEAK = "arrayMax(%s)"
ARRAY_SUM = "arraySum(%s)"
ARRAY_COUNTS = "CAST(arrayReduce('sumMap', %s), 'Map(String, UInt64)')"


def per_key(fold: str, values: str, keys: str, distinct: str) -> str:
    """Per key of the array ``distinct`` (each found in ``keys``): ``fold`` (a template,
    :data:`ARRAY_PEAK`...) of the ``values`` whose key it is."""
    return "arrayMap(k -> %s, %s)" % (fold % ("arrayFilter((x, y) -> y = k, %s, %s)" % (values, keys)), distinct)


def array_peak(peaks: str) -> str:
    """The highest of a day's ``peaks`` (its zones' or hours'): the busiest zone's; 0 for a
    day without events."""
    return ARRAY_PEAK % ("arrayPushBack(%s, 0)" % peaks)


def array_share(cams: str, peaks: str, cap: str) -> str:
    """:func:`share_sql` over a day's zones; ``cap`` an expression of the zone ``c``."""
    return "arrayMax(arrayPushBack(arrayMap((c, p) -> if(%s > 0, p / %s, 0.), %s, %s), 0.))" % (cap, cap, cams, peaks)


# -- Python, over rows ClickHouse grouped ------------------------------------------------

def share(peak: int, capacity: int | None) -> float | None:
    """One zone's peak as a share of its capacity; None without one (capacity 0 too). The
    busiest zone's of a day: :meth:`DayFold.utilisation`."""
    return peak / capacity if capacity else None


@dataclass
class DayFold:
    """One site-day folded: per zone, per local hour, the day's counts.

    Fed cells (:meth:`add_cell`: per (camera, local hour)) or rows already folded per zone
    and per hour (:meth:`add_zone`, :meth:`add_hour`); the day's trigger counts and slots per
    source come with :meth:`add_counts`.
    """

    zones: dict[str, int] = field(default_factory=dict)  # zone -> peak
    zone_events: dict[str, int] = field(default_factory=dict)
    hours: dict[int, int] = field(default_factory=dict)  # local hour -> site-wide peak (the busiest zone's)
    zone_hours: dict[str, dict[int, list[int]]] = field(default_factory=dict)  # zone -> hour -> [peak, events]
    triggers: dict[str, int] = field(default_factory=dict)
    events: int = 0
    edge: int = 0
    raw: int = 0
    repaired: int = 0

    @classmethod
    def of_cells(cls, rows: Iterable) -> DayFold:
        """Rows ``(camera, hour, peak, events, triggers, edge, raw, repaired)``, as
        :meth:`central.storage.sitedays.DayCells.rows` gives them."""
        fold = cls()
        for cam, hour, peak, events, triggers, edge, raw, repaired in sorted(rows):
            fold.add_cell(cam, int(hour), int(peak), int(events))
            fold.add_counts(triggers, edge, raw, repaired)
        return fold

    @classmethod
    def of_kept(cls, cams: Iterable[str], peaks: Iterable, events: Iterable, hour_keys: Iterable,
                hour_peaks: Iterable, triggers: Any, edge: int, raw: int, repaired: int) -> DayFold:
        """A kept day's zones and hours (``day_answers``' ``zone_*`` and ``hour_*``)."""
        fold = cls()
        for cam, peak, n in zip(cams, peaks, events, strict=True):
            fold.add_zone(cam, int(peak), int(n))
        for hour, peak in zip(hour_keys, hour_peaks, strict=True):
            fold.add_hour(int(hour), int(peak))
        fold.add_counts(triggers, edge, raw, repaired)
        return fold

    def add_cell(self, cam: str, hour: int, peak: int, events: int) -> None:
        self.add_zone(cam, peak, events)
        self.add_hour(hour, peak)
        cell = self.zone_hours.setdefault(cam, {}).setdefault(hour, [0, 0])
        cell[0] = max(cell[0], peak)
        cell[1] += events

    def add_zone(self, cam: str, peak: int, events: int) -> None:
        self.zones[cam] = max(self.zones.get(cam, 0), peak)
        self.zone_events[cam] = self.zone_events.get(cam, 0) + events
        self.events += events

    def add_hour(self, hour: int, peak: int) -> None:
        self.hours[hour] = max(self.hours.get(hour, 0), peak)

    def add_counts(self, triggers: Any, edge: int, raw: int, repaired: int) -> None:
        for name, n in as_counts(triggers).items():
            self.triggers[name] = self.triggers.get(name, 0) + n
        self.edge += int(edge)
        self.raw += int(raw)
        self.repaired += int(repaired)

    @property
    def slots(self) -> int:
        """The slots with events, from any source."""
        return self.edge + self.raw + self.repaired

    @property
    def source(self) -> str:
        return source_label(self.edge, self.slots)

    @property
    def peak(self) -> int:
        """The day's site-wide peak: the busiest zone's."""
        return max(self.zones.values(), default=0)

    def utilisation(self, capacities: dict[str, int]) -> float | None:
        """The busiest zone's share of its capacity (:func:`central.sites.utilisation`: over
        the zones with one, 0 for those without events; None where none has one)."""
        return utilisation(self.zones, capacities)
