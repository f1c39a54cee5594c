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


_progress = _progress_of("raw rollup backfill")


def _ddl(cluster: str | None) -> str:
    """Every migration of the one list, tables and views, as ``migrate`` would run them.
    The views on camera_events depend on its event_timestamp type (read at start): they are
    shown for a DateTime column."""
    from .storage import answers, days, rollup, schema

    raw = schema.RawTime("DateTime", "datetime")
    source = "camera_events_local" if cluster else "camera_events"
    views = {
        schema.ROLLUP_VERSION: ["CREATE MATERIALIZED VIEW %s%s TO %s AS %s" % (
            rollup.VIEW, " ON CLUSTER %s" % cluster if cluster else "",
            "raw_slots_local" if cluster else "raw_slots", rollup.view_select(raw, source))],
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


def _migrate(config: Config, print_ddl: bool) -> int:
    from .sites import Sites
    from .storage import answers, rollup, schema
    from .storage.store import open_store

    if print_ddl:
        print(_ddl(config.clickhouse_cluster), end="")
        return EXIT_OK
    store = open_store(config)
    try:
        applied = schema.migrate(store, config.clickhouse_cluster)
        raw = schema.detect_raw_time(store, config.event_timestamp_expr)
        built = rollup.ensure(store, raw, config.clickhouse_cluster, build_it=True, progress=_progress)
        kept = answers.ensure(store, raw, built, config.clickhouse_cluster, build_it=True,
                              sites=Sites.load(config.sites_file), progress=_progress_of("kept answers build"))
    finally:
        store.close()
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
