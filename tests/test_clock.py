"""The suite runs at a pinned instant (tests/conftest.py), whatever the wall clock says.

Before the pin, tests of steps on the call channel failed every night between 21:00 and
08:00 in Berlin (the channel's quiet hours held the step). CI runs the suites with the test
processes' clock at 00:30 and at 11:00 Berlin (.ci/run, .ci/at, tests/clock.py); these tests
fail there if the pin is lost.
"""

import datetime
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.utils import timezone

from tests.conftest import PINNED_NOW

REPO = Path(__file__).resolve().parent.parent


def test_every_test_runs_at_the_pinned_instant():
    local = timezone.localtime()
    assert abs(timezone.now() - PINNED_NOW) < datetime.timedelta(minutes=5)
    assert (local.date(), local.hour) == (datetime.date(2026, 12, 7), 11)
    assert timezone.localdate() == datetime.date(2026, 12, 7)


def test_the_clock_ticks_on_from_the_pin():
    first = timezone.now()
    assert timezone.now() >= first


def test_a_test_moves_the_clock_with_time_machine(time_machine):
    night = datetime.datetime(2026, 12, 7, 23, 30, tzinfo=PINNED_NOW.tzinfo)
    time_machine.move_to(night, tick=False)
    assert timezone.localtime().hour == 23
    assert timezone.localdate() == datetime.date(2026, 12, 7)


def child_clock():
    """time.time() in a child process that loads the test settings, as the concurrency,
    kill -9 and cluster tests' child processes do."""
    code = "import tests.settings, time; print(time.time())"
    done = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True,
                          text=True, check=True, timeout=60)
    return float(done.stdout)


@pytest.mark.real_clock
def test_a_real_clock_test_reads_the_clock_its_child_processes_read():
    assert abs(time.time() - child_clock()) < 60


def test_a_pinned_test_does_not_read_the_clock_of_child_processes():
    assert abs(time.time() - PINNED_NOW.timestamp()) < 300
    assert abs(time.time() - child_clock()) > 300  # unless the machine's clock reads the pin
