"""``python -m central reconcile``: edge aggregates versus raw ``camera_events``, report and repair.

:mod:`.cli` owns the command line, :mod:`.query` the comparison and the repair, :mod:`.report`
the table and JSON output.
"""

from .cli import EXIT_CONSISTENT, EXIT_DRIFT, EXIT_ERROR, add_arguments, run

__all__ = ["EXIT_CONSISTENT", "EXIT_DRIFT", "EXIT_ERROR", "add_arguments", "run"]
