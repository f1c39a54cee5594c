"""The fixed-instant run itself (``make test-clock``, tests/_clock/sitecustomize.py): this
process and the processes it starts read the instant the run names, at the real pace."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from datetime import date, datetime, timezone

import pytest

pytestmark = pytest.mark.clock


def test_every_process_reads_the_instant_of_the_run():
    at = os.environ.get("TEST_CLOCK_AT")
    if not at:
        pytest.skip("not a fixed-instant run (make test-clock sets TEST_CLOCK_AT)")
    from time_machine import escape_hatch

    instant = datetime.fromisoformat(at.replace("Z", "+00:00")).timestamp()
    offset = float(os.environ["TEST_CLOCK_OFFSET"])
    now = time.time()
    assert abs(now - (escape_hatch.time.time() + offset)) < 1
    assert instant <= now < instant + 3600  # a run takes minutes, not hours
    assert date.today() == datetime.fromtimestamp(time.time()).date()
    assert abs(datetime.now(timezone.utc).timestamp() - time.time()) < 1
    # A child started the way the tests start agents and central (env copied) agrees.
    child = subprocess.run([sys.executable, "-c", "import time; print(time.time())"],
                           env=dict(os.environ), capture_output=True, text=True, timeout=60, check=True)
    assert abs(float(child.stdout) - time.time()) < 5
    # Waits run on real monotonic time: a 0.2 s wait takes 0.2 s.
    began = time.monotonic()
    time.sleep(0.2)
    assert 0.15 < time.monotonic() - began < 5
