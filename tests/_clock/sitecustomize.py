"""The wall clock of a fixed-instant run (``make test-clock``), in every Python process.

``make test-clock`` puts this directory on ``PYTHONPATH`` and names an instant in
``TEST_CLOCK_AT`` (``2026-03-29T00:59:30Z``). Python imports ``sitecustomize`` at start-up,
so pytest and every ``python -m edge|central|demo`` child it starts read a wall clock that
began at that instant and runs at the real pace: time-machine replaces ``time.time``,
``datetime.now``, ``date.today`` and friends; monotonic time, which every timeout and wait
uses, is left alone. The first process turns the instant into ``TEST_CLOCK_OFFSET``
(seconds from the real clock) and children inherit it, so all of them agree to the
millisecond however late they start. Headless Chromium gets the same clock from the page
tests (Playwright's ``page.clock``); mosquitto and chDB keep the real one. chDB's TTLs
(ingest_batches, dead_letters) therefore run on the real clock, and central refuses events
ahead of its clock: tests on fixed dates are left out of the run (marker ``clock``), and the
instants are later than the dates the selected tests generate.

Without ``TEST_CLOCK_AT`` or ``TEST_CLOCK_OFFSET`` this does nothing.
"""

import os


def _travel() -> None:
    offset = os.environ.get("TEST_CLOCK_OFFSET")
    at = os.environ.get("TEST_CLOCK_AT")
    if not offset and not at:
        return
    import time
    from datetime import datetime

    import time_machine

    if not offset:
        instant = datetime.fromisoformat(at.replace("Z", "+00:00"))
        if instant.tzinfo is None:
            raise SystemExit("TEST_CLOCK_AT needs a time zone (Z or +hh:mm): %r" % at)
        offset = repr(instant.timestamp() - time.time())
        os.environ["TEST_CLOCK_OFFSET"] = offset
    # Started, never stopped: the process keeps the moved clock to its end.
    time_machine.travel(time.time() + float(offset), tick=True).start()
    time.time()  # the clock ticks from its first reading: make that now, not later


_travel()
