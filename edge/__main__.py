"""Command line of the edge agent: ``python -m edge {run,simulate} ...``."""

from __future__ import annotations

import argparse
import sys

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edge",
        description="Heatmap edge agent: 15-minute occupancy aggregates from YOLO detections, "
        "published to central over MQTT.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.add_parser("run", help="run the agent (not built yet)")
    sub.add_parser("simulate", help="send synthetic detections (not built yet)")
    return parser


def main(argv: list | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    print("python -m edge %s: not built yet" % args.command, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
