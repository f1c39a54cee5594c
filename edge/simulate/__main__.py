"""``python -m edge.simulate ...``: the same as ``python -m edge simulate ...``."""

from __future__ import annotations

import sys

from ..__main__ import main

if __name__ == "__main__":
    sys.exit(main(["simulate", *sys.argv[1:]]))
