"""Command line of central: ``python -m central {serve,migrate,reconcile} ...``."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
import time

from .config import Config, add_arguments
from .exceptions import CentralError, ConfigError

__all__ = ["main", "EXIT_OK", "EXIT_CONFIG", "EXIT_STORAGE"]

EXIT_OK = 0
EXIT_STORAGE = 1
EXIT_CONFIG = 2


_RECONCILE = "central.reconcile"


def _reconcile_module():
    """``central.reconcile``, or None where an install left it out. Only that module missing
    counts as "not installed": an import error inside it (a bug, a missing module of its
    own) is raised with its traceback."""
    try:
        return importlib.import_module(_RECONCILE)
    except ModuleNotFoundError as exc:
        if exc.name != _RECONCILE:
            raise
        return None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m central",
        description="Heatmap central service: stores edge aggregates in ClickHouse and serves "
        "the dashboard API and page.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    serve = sub.add_parser("serve", help="run the HTTP API, the page and (with HEATMAP_MQTT_URL) the MQTT consumer")
    add_arguments(serve)
    migrate = sub.add_parser("migrate", help="create or upgrade the ClickHouse schema (idempotent)")
    add_arguments(migrate)
    migrate.add_argument("--print-ddl", action="store_true", help="print the DDL instead of running it")
    reconcile = _reconcile_module()
    if reconcile is not None:
        rec = sub.add_parser("reconcile", help="compare edge aggregates with raw events; report or repair")
        reconcile.add_arguments(rec)
    else:
        sub.add_parser("reconcile", help="compare edge aggregates with raw events (not installed)")
    return parser


def _setup_logging(level: str) -> None:
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _progress_of(what: str):
    def progress(done: int, total: int, reached: int) -> None:
        when = time.strftime("%Y-%m-%d %H:%M", time.gmtime(reached))
        sys.stderr.write("\r%s: %d/%d chunks (to %s)%s" % (what, done, total, when, "\n" if done == total else ""))
        sys.stderr.flush()
    return progress


def _migrate(config: Config, print_ddl: bool) -> int:
    from .sites import Sites
    from .storage import schema
    from .storage.derived import ddl, open_derived
    from .storage.store import open_store

    if print_ddl:
        print(ddl(config.clickhouse_cluster), end="")
        return EXIT_OK
    store = open_store(config)
    try:
        applied = schema.migrate(store, config.clickhouse_cluster)
        raw = schema.detect_raw_time(store, config.event_timestamp_expr)
        derived = open_derived(store, raw, config.clickhouse_cluster, Sites.load(config.sites_file),
                               build_it=True, progress=_progress_of)
    finally:
        store.close()
    built, kept = derived.rollup, derived.answers
    print("schema up to date (applied now: %s); camera_events.event_timestamp: %s (%s)"
          % (", ".join(map(str, applied)) or "none", raw.column_type, raw.kind))
    print("raw rollup: %s" % (built.reason if built.available else "unavailable (%s)" % built.reason))
    print("slot answers: %s" % (kept.reason if kept.available else "unavailable (%s)" % kept.reason))
    return EXIT_OK


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_CONFIG
    if args.command == "reconcile":
        reconcile = _reconcile_module()
        if reconcile is None:
            print("python -m central reconcile: not installed", file=sys.stderr)
            return EXIT_CONFIG
        return reconcile.run(args)
    try:
        config = Config.load(args)
    except ConfigError as exc:
        print("python -m central %s: %s" % (args.command, exc), file=sys.stderr)
        return EXIT_CONFIG
    _setup_logging(config.log_level)
    try:
        if args.command == "migrate":
            return _migrate(config, args.print_ddl)
        from .server import serve

        return serve(config)
    except ConfigError as exc:
        print("python -m central %s: %s" % (args.command, exc), file=sys.stderr)
        return EXIT_CONFIG
    except CentralError as exc:
        print("python -m central %s: %s" % (args.command, exc), file=sys.stderr)
        return EXIT_STORAGE


if __name__ == "__main__":
    sys.exit(main())
