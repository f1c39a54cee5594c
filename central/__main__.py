"""Command line of central: ``python -m central {serve,migrate,reconcile} ...``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m central",
        description="Heatmap central service: stores edge aggregates in ClickHouse and serves "
        "the dashboard API and page.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("serve", help="run the HTTP service and MQTT consumer (not built yet)")
    sub.add_parser("migrate", help="create or upgrade the ClickHouse schema (not built yet)")
    sub.add_parser("reconcile", help="compare edge aggregates with raw events (not built yet)")
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    print("python -m central %s: not built yet" % args.command, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
