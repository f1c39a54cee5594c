"""Command line of the edge agent: ``python -m edge {run,simulate} ...``."""

from __future__ import annotations

import argparse
import sys

from . import run

__all__ = ["main"]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m edge",
        description="Heatmap edge agent: 15-minute occupancy aggregates from YOLO detections, "
        "published to central over MQTT.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    run.add_parser(sub)
    simulate = sub.add_parser(
        "simulate",
        help="send synthetic detections to an agent and/or central",
        description="Synthetic detections for one site: fast-forward history (--days) and/or "
        "live traffic (--live), to an agent's datagram input and/or central's raw ingest.",
    )
    from .simulate import add_arguments as add_simulate_arguments

    add_simulate_arguments(simulate)
    return parser


def main(argv: list | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command == "simulate":
        from .simulate import main as simulate_main

        return simulate_main(args)
    if args.command == "run":
        return run.run(args)
    print("python -m edge %s: not built yet" % args.command, file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
