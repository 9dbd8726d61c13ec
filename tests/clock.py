"""The test processes' clock, shifted by ``DUNNING_TEST_CLOCK_OFFSET`` seconds.

``bash .ci/at HH:MM command`` sets the variable to the seconds from now to the next HH:MM in
Berlin; every process that loads the test settings (the pytest process and the child
processes the concurrency, kill -9 and cluster tests start) then runs with its clock moved
by that constant offset, ticking, through time-machine. So all of them read the same shifted
clock, whenever each started. Not Debian's libfaketime: under it Python's timed waits
(``Event.wait(0.25)``, ``Future.result(timeout=…)``) never return, and with its monotonic
clock left alone ``time.sleep`` fails with EINVAL (libfaketime 0.9.10).

Tests that do not read the real clock are pinned anyway (tests/conftest.py): the shift
matters to the ``real_clock`` ones and to the child processes.
"""

import os

import time_machine

_traveller = None


def shift_from_environment():
    """Move this process's clock by ``DUNNING_TEST_CLOCK_OFFSET`` seconds (once)."""
    global _traveller
    offset = os.environ.get("DUNNING_TEST_CLOCK_OFFSET")
    if not offset or _traveller is not None:
        return
    import time

    _traveller = time_machine.travel(time.time() + float(offset), tick=True)
    _traveller.start()
