"""``python -m central reconcile``: edge aggregates versus raw ``camera_events``, report and repair.

This module owns the command line: its flags, the one frozen :class:`Options` built from
them, the plan of each site's window (local dates in the site's time zone), the progress
line and the exit codes. The comparison itself is :mod:`central.reconcile.query`; the
table and JSON output are :mod:`central.reconcile.report`. ``docs/reconcile.md`` is the
operator's page.

Exit codes: 0 consistent, 1 drift found (also when ``--repair`` pinned it: the next run
then finds nothing), 2 error (bad arguments, bad configuration, storage unreachable), each
error as one line on stderr.
"""

from __future__ import annotations

import argparse
import logging
import os
import pwd
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import date, datetime, timedelta, timezone
from typing import NoReturn, TextIO
from zoneinfo import ZoneInfo

from shared.names import is_valid_name
from shared.slots import SLOT_SECONDS

from ..config import Config
from ..config import add_arguments as add_config_arguments
from ..exceptions import CentralError, StorageError
from ..sites import Sites, local_day
from ..storage import schema
from ..storage.derived import derived_status
from ..storage.keeper import Keeper
from ..storage.store import Storage, open_store
from .query import Comparison, SiteWindow, compare, known_in_data, repair, seen_sites
from .report import render_json, render_table

__all__ = [
    "EXIT_CONSISTENT",
    "EXIT_DRIFT",
    "EXIT_ERROR",
    "Options",
    "add_arguments",
    "plan_windows",
    "run",
    "main",
]

logger = logging.getLogger(__name__)

EXIT_CONSISTENT = 0
EXIT_DRIFT = 1
EXIT_ERROR = 2

_MAX_DAYS = 3660
#: Local dates the store can hold (slots are 2000-01-01..2099-12-31 UTC, shared.slots).
_FIRST_DATE = date(2000, 1, 1)
_LAST_DATE = date(2099, 12, 31)


class UsageError(CentralError):
    """A bad combination or value of reconcile's own flags."""


@dataclass(frozen=True)
class Options:
    """Reconcile's own settings (flags only; the storage settings are in :class:`Config`)."""

    sites: tuple[str, ...] = ()
    all_sites: bool = False
    from_date: date | None = None
    to_date: date | None = None
    days: int = 2
    repair: bool = False
    json: bool = False
    grace: float = 7200.0
    repaired_by: str = ""
    limit: int = 20
    progress: bool | None = None  # None: only when stderr is a terminal
    chunk_days: int = 7

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> Options:
        sites = tuple(args.site or ())
        for name in sites:
            if not is_valid_name(name):
                raise UsageError("--site %r is not a valid site name" % name)
        if bool(sites) == bool(args.all_sites):
            raise UsageError("give --site SITE (repeatable) or --all-sites")
        from_date = _date(args.from_date, "--from")
        to_date = _date(args.to_date, "--to")
        if args.days is not None and from_date is not None:
            raise UsageError("--days and --from exclude each other")
        days = 2 if args.days is None else args.days
        if not 1 <= days <= _MAX_DAYS:
            raise UsageError("--days must be in 1..%d" % _MAX_DAYS)
        if from_date and to_date:
            if from_date > to_date:
                raise UsageError("--from %s is after --to %s" % (from_date, to_date))
            if (to_date - from_date).days >= _MAX_DAYS:
                raise UsageError("--from..--to spans more than %d days" % _MAX_DAYS)
        if not 0 <= args.grace <= 30 * 86400:
            raise UsageError("--grace must be 0..2592000 seconds")
        if args.limit < 0:
            raise UsageError("--limit must not be negative")
        by = args.by or _os_user()
        if not by.strip() or len(by) > 200:
            raise UsageError("--by must be 1-200 characters")
        return cls(
            sites=tuple(dict.fromkeys(sites)), all_sites=bool(args.all_sites),
            from_date=from_date, to_date=to_date, days=days, repair=bool(args.repair),
            json=bool(args.json), grace=float(args.grace), repaired_by=by, limit=args.limit,
            progress=args.progress, chunk_days=7,
        )


def _date(value: str | None, flag: str) -> date | None:
    if value is None:
        return None
    try:
        day = date.fromisoformat(value)
    except ValueError:
        raise UsageError("%s %r is not a date (YYYY-MM-DD)" % (flag, value)) from None
    if not _FIRST_DATE <= day <= _LAST_DATE:
        raise UsageError("%s %s is outside %s..%s" % (flag, day, _FIRST_DATE, _LAST_DATE))
    return day


def _os_user() -> str:
    # From the password database, not $USER/$LOGNAME: Config is the only reader of the
    # environment, and the audit should name the account that really ran the repair.
    uid = os.getuid()
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:  # no passwd entry (containers with an arbitrary uid)
        return "uid-%d" % uid


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Reconcile's flags plus the storage settings shared with ``serve``."""
    parser.description = (
        "Compare, per (site, camera, 15-minute slot), the edge aggregates with raw "
        "camera_events; report drift, and with --repair pin drifted closed slots to raw. "
        "Exit 0 consistent, 1 drift found, 2 error."
    )
    what = parser.add_argument_group("what to check")
    what.add_argument("--site", action="append", metavar="SITE",
                      help="site to check (repeatable)")
    what.add_argument("--all-sites", action="store_true",
                      help="every configured site and every site seen in data in the range")
    what.add_argument("--from", dest="from_date", metavar="YYYY-MM-DD",
                      help="first local date, in each site's time zone")
    what.add_argument("--to", dest="to_date", metavar="YYYY-MM-DD",
                      help="last local date (inclusive); default today in each site's zone")
    what.add_argument("--days", type=int, metavar="N",
                      help="without --from: the N local days ending with --to (default 2)")
    what.add_argument("--grace", type=float, default=7200.0, metavar="SECONDS",
                      help="a slot is closed this long after its end; differences in open "
                           "slots are reported as 'open', not drift (default 7200)")
    act = parser.add_argument_group("output and repair")
    act.add_argument("--repair", action="store_true",
                     help="pin drifted closed slots to raw (audit rows in slot_repairs)")
    act.add_argument("--by", metavar="WHO",
                     help="who is repairing, for the audit (default: the OS user)")
    act.add_argument("--json", action="store_true", help="print one JSON document")
    act.add_argument("--limit", type=int, default=20, metavar="N",
                     help="worst differences to list (default 20)")
    act.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                     help="progress on stderr (default: only when stderr is a terminal)")
    add_config_arguments(parser)

    def error(message: str) -> NoReturn:
        # argparse prints its usage too; the contract is one line and exit 2.
        parser.exit(EXIT_ERROR, "python -m central reconcile: %s (see --help)\n" % message)

    parser.error = error  # type: ignore[method-assign]


def _window(name: str, zone: str, opts: Options, now: float) -> SiteWindow:
    tz = ZoneInfo(zone)
    last = opts.to_date or datetime.fromtimestamp(now, tz).date()
    if not _FIRST_DATE <= last <= _LAST_DATE:
        raise UsageError("--to %s is outside %s..%s" % (last, _FIRST_DATE, _LAST_DATE))
    first = opts.from_date or last - timedelta(days=opts.days - 1)
    if first > last:
        raise UsageError("--from %s is after %s's today %s" % (first, name, last))
    if first < _FIRST_DATE:
        raise UsageError("the window starts on %s, before %s" % (first, _FIRST_DATE))
    return SiteWindow(name, zone, first.isoformat(), last.isoformat(),
                      local_day(first, tz)[0], local_day(last, tz)[1])


def plan_windows(sites: Sites, names: list[str], opts: Options, now: float) -> list[SiteWindow]:
    """Each site's [start, end) from its local dates; ``--to`` defaults to its own today."""
    return [_window(name, sites.get(name).timezone, opts, now) for name in names]


def _candidate_window(sites: Sites, opts: Options, now: float) -> tuple[int, int]:
    """The UTC span any site could have: every configured zone plus the default one (the
    zone of sites seen only in data)."""
    zones = {s.timezone for s in sites.configured.values()} | {sites.default_timezone}
    windows = [_window("*", zone, opts, now) for zone in sorted(zones)]
    return min(w.start for w in windows), max(w.end for w in windows)


class _Progress:
    """A one-line progress indication on stderr (rewritten in place on a terminal)."""

    def __init__(self, stream: TextIO, enabled: bool):
        self.stream = stream
        self.enabled = enabled
        self.tty = bool(getattr(stream, "isatty", lambda: False)())
        self.t0 = time.monotonic()

    def __call__(self, done: int, total: int, reached: int) -> None:
        if not self.enabled:
            return
        width = 30
        filled = width * done // max(1, total)
        line = "reconcile [%s%s] %d/%d chunks, up to %s, %.1f s" % (
            "#" * filled, "." * (width - filled), done, total,
            datetime.fromtimestamp(reached, timezone.utc).strftime("%Y-%m-%d %H:%MZ"),
            time.monotonic() - self.t0,
        )
        if self.tty:
            self.stream.write("\r" + line + ("\n" if done == total else ""))
        else:
            self.stream.write(line + "\n")
        self.stream.flush()


def reconcile(
    store: Storage,
    config: Config,
    opts: Options,
    now: float | None = None,
    progress: _Progress | None = None,
) -> tuple[Comparison, list[SiteWindow], str]:
    """Plan, compare and (with ``--repair``) pin; returns the comparison, windows and run id."""
    now = time.time() if now is None else now
    sites = Sites.load(config.sites_file)
    raw_time = schema.detect_raw_time(store, config.event_timestamp_expr)
    if opts.all_sites:
        lo, hi = _candidate_window(sites, opts, now)
        names = sorted(set(sites.configured) | set(seen_sites(store, raw_time, lo, hi)))
    else:
        names = list(opts.sites)
        unknown = [n for n in names if n not in sites.configured]
        if unknown:
            missing = sorted(set(unknown) - known_in_data(store, unknown))
            if missing:
                raise UsageError("unknown site %s (not in the sites file, no data)" % missing[0])
    windows = plan_windows(sites, names, opts, now)
    # A slot is closed once its end plus the grace period has passed.
    closed_before = int(now - opts.grace) - SLOT_SECONDS
    slots = derived_status(store, raw_time).slot_store()
    # Repairs go through the keeper (slot answers and site-days); a running serve hears of
    # them through its follower of other writers and drops its cached answers.
    Keeper(slots, sites)
    comparison = compare(slots, windows, closed_before,
                         chunk_seconds=opts.chunk_days * 86400, progress=progress)
    run_id = uuid.uuid4().hex
    if opts.repair and comparison.diffs:
        repair(slots, comparison, opts.repaired_by, run_id=run_id, now=now)
    return comparison, windows, run_id


def run(
    args: argparse.Namespace,
    *,
    now: float | None = None,
    stdout: TextIO | None = None,
    stderr: TextIO | None = None,
    environ: dict[str, str] | None = None,
) -> int:
    """Entry point after argument parsing (``python -m central reconcile``); returns the exit code."""
    out = stdout or sys.stdout
    err = stderr or sys.stderr
    started = time.monotonic()
    try:
        opts = Options.from_args(args)
        config = Config.load(args, environ)
    except CentralError as exc:
        print("python -m central reconcile: %s" % exc, file=err)
        return EXIT_ERROR
    if not logging.getLogger().handlers:
        logging.basicConfig(level=config.log_level, stream=err,
                            format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    enabled = opts.progress if opts.progress is not None else bool(
        getattr(err, "isatty", lambda: False)())
    store = open_store(config)
    try:
        comparison, windows, run_id = reconcile(store, config, opts, now, _Progress(err, enabled))
    except CentralError as exc:
        print("python -m central reconcile: %s" % exc, file=err)
        return EXIT_ERROR
    except Exception as exc:  # exit 1 means drift: a failure must never look like it
        logger.debug("reconcile failed", exc_info=True)
        print("python -m central reconcile: internal error: %s: %s" % (
            type(exc).__name__, " ".join(str(exc).split())[:300]), file=err)
        return EXIT_ERROR
    finally:
        try:
            store.close()
        except StorageError as exc:  # pragma: no cover - closing a broken client
            logger.warning("closing the store: %s", exc)
    seconds = time.monotonic() - started
    code = EXIT_DRIFT if comparison.inconsistent else EXIT_CONSISTENT
    if opts.json:
        out.write(render_json(comparison, windows, opts, run_id, seconds, code) + "\n")
    else:
        out.write(render_table(comparison, windows, opts, run_id, seconds))
    out.flush()
    return code


def main(argv: list[str] | None = None) -> int:
    """``python -m central.reconcile`` (the same as ``python -m central reconcile``)."""
    parser = argparse.ArgumentParser(prog="python -m central reconcile")
    add_arguments(parser)
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
