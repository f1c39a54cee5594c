"""The derived tables as one: the entry point of ``serve``, ``migrate`` and ``reconcile``.

Central computes some tables from the sources (``slot_states``, ``camera_events``,
``slot_repairs``): the raw rollup (:mod:`.rollup`), the kept slot answers and the notes of
other writers (:mod:`.answers`), the kept site-days (:mod:`.days`), with their materialized
views and their ``derived`` steps of :data:`.schema.MIGRATIONS`. Their names and their
building are known inside this package only (checked by ``tests/test_imports.py``):
:func:`open_derived` uses them where complete and builds them where asked, the rollup first
(the answers are kept only where it is); :func:`derived_status` says what exists without any
DDL; :meth:`Derived.slot_store` is the slot store that reads through them; :func:`ddl` is
every migration as ``migrate`` runs it (``--print-ddl``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ..sites import Sites
from . import answers, days, rollup, schema
from .answers import AnswersStatus
from .rollup import RollupStatus
from .slots import SlotStore
from .store import Storage

__all__ = ["NAMES", "AnswersStatus", "Derived", "Progress", "RollupStatus", "ddl", "derived_status", "open_derived"]

#: The derived tables and their materialized views: no module outside this package names one.
NAMES = (*(name for _, _, tables, derived in schema.MIGRATIONS if derived for name in tables),
         rollup.VIEW, answers.VIEW, answers.REPAIRS_VIEW, days.BY_DAY_VIEW)

#: progress(done, total, reached): one line per chunk of a build (``reached``: Unix seconds).
Progress = Callable[[int, int, int], None]

#: The builds, by the name their progress line carries.
ROLLUP_BUILD = "raw rollup backfill"
ANSWERS_BUILD = "kept answers build"


@dataclass(frozen=True)
class Derived:
    """What exists of the derived tables: whether readers may use the raw rollup and the
    kept answers, and why not (``/healthz``: ``raw_rollup``, ``slot_answers``)."""

    store: Storage
    raw_time: schema.RawTime
    rollup: RollupStatus
    answers: AnswersStatus

    def slot_store(self) -> SlotStore:
        """The slot store that reads the derived tables where they are kept."""
        return SlotStore(self.store, self.raw_time, rollup=self.rollup.available, answers=self.answers.available)

    def days_built_from(self) -> int:
        """When the last build of the site-days began (Unix nanoseconds, as slot versions; 0
        if never): where the start-up catch-up of the days begins (:meth:`.keeper.Keeper.catch_up`)."""
        return answers.days_built_from(self.store)


def open_derived(store: Storage, raw_time: schema.RawTime, cluster: str | None, sites: Sites, *,
                 build_it: bool, progress: Callable[[str], Progress] | None = None) -> Derived:
    """Use the derived tables where complete, else build them when ``build_it`` (blocking;
    run after :func:`.schema.migrate`). ``progress(name)`` gives each build its progress
    line (none: the log says it). Never raises for tables central may not build (the
    statuses say why, and readers compute from the sources); raises StorageUnavailable."""
    built = rollup.ensure(store, raw_time, cluster, build_it=build_it,
                          progress=progress(ROLLUP_BUILD) if progress is not None else None)
    kept = answers.ensure(store, raw_time, built, cluster, build_it=build_it, sites=sites,
                          progress=progress(ANSWERS_BUILD) if progress is not None else None)
    return Derived(store, raw_time, built, kept)


def derived_status(store: Storage, raw_time: schema.RawTime) -> Derived:
    """What exists of the derived tables, without any DDL (another process keeps them)."""
    built = rollup.status(store)
    return Derived(store, raw_time, built, answers.status(store, built))


def ddl(cluster: str | None) -> str:
    """Every migration of the one list, tables and views, as ``migrate`` would run them.
    The views on camera_events depend on its event_timestamp type (read at start): they are
    shown for a ``DateTime`` column."""
    raw = schema.RawTime("DateTime", "datetime")
    source = "camera_events_local" if cluster else "camera_events"
    views = {
        schema.ROLLUP_VERSION: [rollup.view_ddl(raw, source, cluster)],
        schema.ANSWERS_VERSION: [answers.dirty_view_ddl(raw, source, cluster), answers.repairs_view_ddl(cluster)],
        schema.DAYS_VERSION: [days.by_day_view_ddl(cluster)],
    }
    out = []
    for version, description, tables, derived in schema.MIGRATIONS:
        out.append("-- migration %d: %s%s\n" % (version, description,
                                                 " (derived: built from the sources, then recorded)" if derived else ""))
        for name in tables:
            for stmt in schema.table_ddl(schema.TABLES[name], cluster):
                out.append(stmt + ";\n\n")
        for stmt in views.get(version, []):
            out.append(stmt + ";\n\n")
    return "".join(out)
