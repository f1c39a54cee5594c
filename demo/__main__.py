"""``python -m demo`` (``make demo``): the one-box demo; see :mod:`demo.run`."""

from __future__ import annotations

import logging
import os
import sys

from .config import ConfigError, DemoConfig
from .run import Demo

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    try:
        config = DemoConfig.load(argv, os.environ)
    except ConfigError as exc:
        print("python -m demo: %s" % exc, file=sys.stderr)
        return 2
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    return Demo(config, announce=lambda line: print(line, flush=True)).run()


if __name__ == "__main__":
    sys.exit(main())
