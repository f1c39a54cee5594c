"""The one reader of site-days: how each requested (site, local day) is read, decided once.

Every view that reads a site's days (dashboard, history, profile, overview, export, typical,
zones, the alerts' slot values) asks :class:`SiteDays` and never picks a table itself. A day
is read

* ``kept``: from its row in ``day_answers`` (one row per site-day, kept by
  :class:`central.storage.keeper.Keeper`); a day without a row has no events;
* ``pending``: a write was acknowledged and its day is not kept yet: from the kept slot
  answers (``slot_answers``, kept before the acknowledgement);
* ``recut``: the kept row was cut in another time zone, or by an earlier version, and the
  keeper has not recomputed it yet: from the kept slot answers;
* ``behind``: the keeper's start-up catch-up has not yet checked the slot answers of that
  day against their sources (after an upgrade, a restore, a central stopped while other
  writers wrote): computed from the sources (``slot_states``, the raw rollup, the pins).
  Slower, never "no data" for data that is stored.

Without kept answers at all (no rollup, no grants) every day is computed from the sources.
:meth:`SiteDays.plan` gives the decision for a range; :meth:`SiteDays.slots_sql` the slot
statement a range must be read with; :meth:`SiteDays.cells` reads the days' (camera, local
hour) cells whichever way each day is read (:meth:`SiteDays.cells_of`: of several sites,
their kept days in one statement).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from typing import Any

from ..sites import Site, Sites, local_day
from . import fold
from .slots import Scope, SlotStore, as_counts

__all__ = ["DayCells", "Plan", "SiteDays", "KEPT", "PENDING", "RECUT", "BEHIND"]

KEPT, PENDING, RECUT, BEHIND = "kept", "pending", "recut", "behind"

_SMALL_READ = {"max_threads": 1}

# One statement for one site or many (the zones report of every site): the days each
# site's plan does not read kept are left out as (site, day) pairs.
_CELLS_KEPT = """
SELECT site_name, day, tz, cams, hours, peaks%s
FROM day_answers FINAL
WHERE site_name IN {sites:Array(String)} AND day >= {first:Date} AND day <= {last:Date}
  AND NOT has({skip:Array(Tuple(String, Date))}, (site_name, day))
  AND (empty({only:Array(Date)}) OR has({only:Array(Date)}, day))
"""
# The site-wide peak per local hour of some kept days (the busiest zone's: the keeper's
# hour arrays, by the same fold as DayCells.hour_peaks).
_HOURS_KEPT = """
SELECT site_name, day, tz, hour_keys, hour_peaks
FROM day_answers FINAL
WHERE site_name IN {sites:Array(String)} AND day >= {first:Date} AND day <= {last:Date}
  AND has({only:Array(Date)}, day) AND NOT has({skip:Array(Tuple(String, Date))}, (site_name, day))
"""
# Each site's own local day from the kept site-days, in their copy ordered by day: one row
# per site, one key range for all of them when the sites share the date (the overview).
_DAY_ROWS_KEPT = """
SELECT site_name, tz, zone_cams, zone_peaks, zone_events, hour_keys, hour_peaks, triggers, edge, raw, repaired
FROM day_answers_by_day FINAL
WHERE day IN {dayset:Array(Date)} AND site_name IN {sites:Array(String)}
  AND day = transform(site_name, {sites:Array(String)}, {days:Array(Date)}, toDate(0))
"""
#: The columns after the peaks, per what the reader is asked for: everything; what the
#: dashboard folds (one row per request, and every column it reads costs it time); nothing
#: more (the zones report).
_CELLS_REST = {"full": ", events, cell_triggers, cell_edge, cell_slots, triggers, edge, raw, repaired",
               "lean": ", events, triggers, edge, raw, repaired", "peaks": ""}

# The same cells from slots (kept answers or computed from the sources), per local day, by
# the day fold (central.storage.fold).
_CELLS_SLOTS = fold.cells_sql("%s", (fold.LOCAL_DAY + " AS d", "cam_name", fold.LOCAL_HOUR + " AS h"),
                              where="has({days:Array(Date)}, d)", order=True)


@dataclass
class DayCells:
    """One local day as (camera, local hour) cells, in parallel lists, plus the day's totals.

    Hours are the local hour 0..23 as the dashboard labels them (a repeated hour merged).
    """

    day: date
    read: str = KEPT
    cams: list[str] = field(default_factory=list)
    hours: list[int] = field(default_factory=list)
    peaks: list[int] = field(default_factory=list)
    events: list[int] = field(default_factory=list)
    cell_triggers: list[dict[str, int]] = field(default_factory=list)
    cell_edge: list[int] = field(default_factory=list)
    cell_slots: list[int] = field(default_factory=list)
    triggers: dict[str, int] = field(default_factory=dict)
    edge: int = 0
    raw: int = 0
    repaired: int = 0

    def zone_hours(self) -> dict[str, dict[int, int]]:
        """zone -> local hour -> peak."""
        folded = fold.DayFold()
        for c, h, p in zip(self.cams, self.hours, self.peaks, strict=True):
            folded.add_cell(c, h, p, 0)
        return {c: {h: cell[0] for h, cell in by_hour.items()} for c, by_hour in folded.zone_hours.items()}

    def hour_peaks(self) -> dict[int, int]:
        """local hour -> the site-wide peak (the busiest zone's), as the dashboard's ``hourly``."""
        folded = fold.DayFold()
        for h, p in zip(self.hours, self.peaks, strict=True):
            folded.add_hour(h, p)
        return folded.hours

    def rows(self) -> list[tuple]:
        """The cells as the dashboard's fold takes them (:func:`central.dashboard.compute`):
        per (camera, hour), with the day's trigger counts and slots per source on the first."""
        rows = [[c, h, p, e, {}, 0, 0, 0] for c, h, p, e in zip(self.cams, self.hours, self.peaks, self.events, strict=True)]
        if rows:
            rows[0][4:] = [self.triggers, self.edge, self.raw, self.repaired]
        return [tuple(r) for r in rows]


@dataclass(frozen=True)
class Plan:
    """How each day of a range is read: ``how[day]`` for the days not read kept."""

    site: str
    first: date
    last: date
    how: dict[date, str]

    @property
    def skip(self) -> list[date]:
        """The days not read from their kept rows, sorted."""
        return sorted(self.how)

    @property
    def behind(self) -> bool:
        """Whether any day must be computed from the sources."""
        return BEHIND in self.how.values()


class SiteDays:
    """Reads site-days; ``keeper`` (:class:`central.storage.keeper.Keeper`) knows what is kept."""

    def __init__(self, slots: SlotStore, sites: Sites, keeper: Any = None):
        self.slots = slots
        self.store = slots.store
        self.sites = sites
        self.keeper = keeper
        self._cells_slots = {True: _CELLS_SLOTS % slots.merged_sql(Scope.of((), 0, 0)),
                             False: _CELLS_SLOTS % slots.computed_sql(Scope.of((), 0, 0))}
        self._cells_kept = {what: _CELLS_KEPT % rest for what, rest in _CELLS_REST.items()}

    @property
    def kept(self) -> bool:
        """Whether site-days are kept at all (else every day is computed)."""
        return self.keeper is not None and self.keeper.days is not None

    # -- the decision ---------------------------------------------------------------------

    def plan(self, site: str, first: date, last: date) -> Plan:
        """How each day of ``site``'s [first, last] is read; only days not read kept appear."""
        s = self.sites.get(site)
        how: dict[date, str] = {}
        if not self.kept:
            d = first
            while d <= last:
                how[d] = BEHIND if not self.slots.answers else RECUT
                d += timedelta(days=1)
            return Plan(site, first, last, how)
        keeper = self.keeper
        for d in keeper.days.pending_days(site):
            if first <= d <= last:
                how[d] = PENDING
        for d in keeper.recut_days(site, first, last):
            how.setdefault(d, RECUT)
        verified_from = keeper.verified_from
        if verified_from is not None:
            d = first
            while d <= last:
                if local_day(d, s.tz)[0] < verified_from:
                    how[d] = BEHIND
                d += timedelta(days=1)
        return Plan(site, first, last, how)

    def behind(self, lo: int, hi: int) -> bool:
        """Whether any slot of [lo, hi) must be computed from the sources (not checked yet)."""
        if not self.slots.answers:
            return True
        verified_from = self.keeper.verified_from if self.keeper is not None else None
        return verified_from is not None and lo < verified_from

    def slots_sql(self, lo: int, hi: int, scope: Scope | None = None) -> str:
        """The slot rule's answers for [lo, hi): kept where they are checked, else computed from
        the sources (columns and parameters as :meth:`SlotStore.merged_sql`)."""
        if self.behind(lo, hi):
            return self.slots.computed_sql(scope)
        return self.slots.merged_sql(scope)

    async def slot_values(self, site_name: str, start: int, end: int) -> dict[tuple[str, int], tuple]:
        """Per (camera, slot) in [start, end): (peak, events, triggers, source), by the slot rule."""
        scope = Scope.of([site_name], start, end)
        rows = await self.store.aquery(self.slots_sql(start, end, scope), scope.params())
        return {(r[1], int(r[2])): (int(r[3]), int(r[4]), as_counts(r[5]), r[6]) for r in rows}

    def slot_peaks(self, site_name: str, start: int, end: int) -> dict[tuple[str, int], int]:
        """Per (camera, slot) with events in [start, end): the peak by the slot rule, as the
        dashboard counts it (blocking: a store thread; the dashboard's ``now``)."""
        return {(cam, slot): peak for (_, cam, slot), peak in self.sites_slot_peaks([site_name], start, end).items()}

    def sites_slot_peaks(self, site_names: list[str], start: int, end: int) -> dict[tuple[str, str, int], int]:
        """Per (site, camera, slot) with events in [start, end), for several sites in one
        statement (blocking; the overview's ``now_peak``)."""
        scope = Scope.of(site_names, start, end)
        rows = self.store.query(self.slots_sql(start, end, scope), scope.params(), settings=_SMALL_READ)
        return {(r[0], r[1], int(r[2])): int(r[3]) for r in rows if int(r[4]) > 0}

    def data_range(self, site: str) -> tuple[int, int] | None:
        """The first and last slot of ``site``'s data in any source, or None (blocking): the
        keeper's, kept and widened by every write (:meth:`Keeper.data_range`)."""
        if self.keeper is not None:
            return self.keeper.data_range(site)
        return self.slots.data_range(site)

    # -- reading cells --------------------------------------------------------------------

    def day(self, site: str, day: date) -> DayCells:
        """One site-day (the dashboard's read: without the cells' trigger counts and sources)."""
        return self.cells(site, day, day, full=False)[0]

    def cells(self, site: str, first: date, last: date, full: bool = True) -> list[DayCells]:
        """Every local day of [first, last] of ``site``, in order (blocking: a store thread);
        without ``full``, the cells' trigger counts and slots per source are left empty
        where a day is read kept."""
        return self.cells_of([site], first, last, "full" if full else "lean")[site]

    async def acells(self, site: str, first: date, last: date, full: bool = True) -> list[DayCells]:
        return await self.store.arun(self.cells, site, first, last, full)

    def cells_of(self, sites: list[str], first: date, last: date, what: str | bool = "full",
                 only: Sequence[date] = ()) -> dict[str, list[DayCells]]:
        """:meth:`cells` of several sites, each in its own local days: the kept days of all
        of them in one statement (blocking: a store thread). ``what`` is ``full``, ``lean``
        (no per-cell trigger counts or sources) or ``peaks`` (True too: only ``cams``,
        ``hours`` and ``peaks``, for the zones report); days read otherwise carry everything.
        With ``only``, just those days of [first, last] (in order; typical's same weekdays)."""
        what = "peaks" if what is True else "full" if what is False else what
        wanted = sorted(set(only))
        plans = self._plans(sites, first, last, wanted)
        n_days = len(wanted) if wanted else (last - first).days + 1
        out: dict[str, dict[date, DayCells]] = {name: {} for name in sites}
        kept = [name for name, plan in plans.items() if self.kept and len(plan.how) < n_days]
        if kept:
            skip = [(name, d) for name in kept for d in plans[name].skip]
            rows = self.store.query(self._cells_kept[what], parameters={"sites": kept, "first": first, "last": last,
                                                            "skip": skip, "only": wanted}, settings=_SMALL_READ)
            zones = {name: self.sites.get(name).timezone for name in kept}
            for row in rows:
                name, d, tz = row[0], row[1], row[2]
                if tz != zones[name]:
                    plans[name].how[d] = RECUT  # cut in another zone by a writer that does not know ours
                    continue
                out[name][d] = (DayCells(d, KEPT, list(row[3]), list(row[4]), list(row[5])) if what == "peaks"
                                 else _kept_day(d, row[3:], what == "full"))
        result = {}
        for name, plan in plans.items():
            if plan.how:
                out[name].update(self._from_slots(self.sites.get(name), plan))
            days = []
            for d in wanted or _days(first, last):
                days.append(out[name].get(d) or DayCells(d, plan.how.get(d, KEPT)))
            result[name] = days
        return result

    def _plans(self, sites: list[str], first: date, last: date, wanted: list[date]) -> dict[str, Plan]:
        """Each site's :meth:`plan` of [first, last], narrowed to ``wanted`` days if any."""
        plans = {name: self.plan(name, first, last) for name in sites}
        if not wanted:
            return plans
        keep = set(wanted)
        return {name: replace(plan, how={d: h for d, h in plan.how.items() if d in keep})
                for name, plan in plans.items()}

    def hour_peaks_of(self, sites: list[str], days: Sequence[date]) -> dict[str, dict[date, dict[int, int]]]:
        """Per site and local day of ``days``, the site-wide peak per local hour (the busiest
        zone's, :meth:`DayCells.hour_peaks`): kept days from their hour arrays, 24 values
        rather than every (zone, hour) cell; the others from their cells (blocking)."""
        wanted = sorted(set(days))
        first, last = wanted[0], wanted[-1]
        plans = self._plans(sites, first, last, wanted)
        out: dict[str, dict[date, dict[int, int]]] = {name: {} for name in sites}
        kept = [name for name, plan in plans.items() if self.kept and len(plan.how) < len(wanted)]
        if kept:
            skip = [(name, d) for name in kept for d in plans[name].skip]
            rows = self.store.query(_HOURS_KEPT, parameters={"sites": kept, "first": first, "last": last,
                                                             "only": wanted, "skip": skip}, settings=_SMALL_READ)
            for name, d, tz, keys, peaks in rows:
                if tz != self.sites.get(name).timezone:
                    plans[name].how[d] = RECUT  # cut in another zone by a writer that does not know ours
                    continue
                out[name][d] = {int(h): int(p) for h, p in zip(keys, peaks, strict=True)}
        for name, plan in plans.items():
            if plan.how:
                for d, cells in self._from_slots(self.sites.get(name), plan).items():
                    out[name][d] = cells.hour_peaks()
        return out

    async def ahour_peaks_of(self, sites: list[str], days: Sequence[date]) -> dict[str, dict[date, dict[int, int]]]:
        return await self.store.arun(self.hour_peaks_of, sites, days)

    async def akept_day_rows(self, days: dict[str, date]) -> list[tuple]:
        """Per site, its kept row of its own day (``days``: site -> local date, each read kept
        by :meth:`plan`): site, the zone it was cut in, the zone and hour arrays, triggers and
        slots per source (the overview's, :meth:`central.storage.fold.DayFold.of_kept`)."""
        names = list(days)
        return await self.store.aquery(_DAY_ROWS_KEPT, {"sites": names, "days": [days[n] for n in names],
                                                        "dayset": sorted(set(days.values()))})

    async def acells_of(self, sites: list[str], first: date, last: date, what: str | bool = "full",
                        only: Sequence[date] = ()) -> dict[str, list[DayCells]]:
        return await self.store.arun(self.cells_of, sites, first, last, what, only)

    def _from_slots(self, site: Site, plan: Plan) -> dict[date, DayCells]:
        out: dict[date, DayCells] = {}
        for behind, days in ((False, [d for d, h in plan.how.items() if h != BEHIND]),
                             (True, [d for d, h in plan.how.items() if h == BEHIND])):
            if not days:
                continue
            days.sort()
            lo, _ = local_day(days[0], site.tz)
            _, hi = local_day(days[-1], site.tz)
            scope = Scope.of([site.name], lo, hi)
            sql = self._cells_slots[not behind and self.slots.answers]
            rows = self.store.query(sql, parameters={**scope.params(), "tz": site.timezone, "days": days},
                                    settings=_SMALL_READ)
            for d, cam, h, peak, events, triggers, edge, raw, repaired in rows:
                cells = out.get(d)
                if cells is None:
                    cells = out[d] = DayCells(d, plan.how[d])
                counts = as_counts(triggers)
                cells.cams.append(cam)
                cells.hours.append(int(h))
                cells.peaks.append(int(peak))
                cells.events.append(int(events))
                cells.cell_triggers.append(counts)
                cells.cell_edge.append(int(edge))
                cells.cell_slots.append(int(edge) + int(raw) + int(repaired))
                for name, n in counts.items():
                    cells.triggers[name] = cells.triggers.get(name, 0) + n
                cells.edge += int(edge)
                cells.raw += int(raw)
                cells.repaired += int(repaired)
        return out


def _kept_day(day: date, row: Sequence, full: bool) -> DayCells:
    if not full:
        cams, hours, peaks, events, triggers, edge, raw, repaired = row
        return DayCells(day, KEPT, list(cams), [int(h) for h in hours], [int(p) for p in peaks],
                        [int(e) for e in events], triggers=as_counts(triggers), edge=int(edge), raw=int(raw),
                        repaired=int(repaired))
    cams, hours, peaks, events, cell_triggers, cell_edge, cell_slots, triggers, edge, raw, repaired = row
    return DayCells(day, KEPT, list(cams), [int(h) for h in hours], [int(p) for p in peaks],
                    [int(e) for e in events], [as_counts(t) for t in cell_triggers], [int(x) for x in cell_edge],
                    [int(x) for x in cell_slots], as_counts(triggers), int(edge), int(raw), int(repaired))


def _days(first: date, last: date) -> list[date]:
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def local_date(ts: int, site: Site) -> date:
    return datetime.fromtimestamp(ts, site.tz).date()
