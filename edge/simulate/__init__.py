"""The simulator, ``python -m edge simulate`` (or ``python -m edge.simulate``): synthetic
detections for one site, sent like the real thing.

* ``cli.py``: the command line, its frozen configuration, fast-forward and live modes;
* ``model.py``: the detection model (cameras, profiles, local time) and the truth it keeps;
* ``sinks.py``: where events go, an agent's datagram input and/or central's raw ingest.

Kept apart from the agent's modules: nothing in ``edge/`` imports it but the CLI.
"""

from __future__ import annotations

from .cli import SimConfig, add_arguments, main, run

__all__ = ["SimConfig", "add_arguments", "main", "run"]
