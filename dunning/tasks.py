"""Entry points for a task queue (django-q2): primitive arguments in, a plain dict out.

``python manage.py dunning schedule`` points a django-q2 ``Schedule`` at :func:`run`.
Running a task twice, or two at once, is safe: the engine sends a step to a case at most
once (a unique constraint on the executed steps), so a retried or duplicated task only
finishes what the first left undone.
"""

from __future__ import annotations

import datetime

# The django-q2 schedule `manage.py dunning schedule` creates, updates and removes.
SCHEDULE_NAME = "dunning-run"


def run(as_of: str | None = None) -> dict:
    """One dunning run (``as_of``: an ISO date; default today in the site's time zone).
    Returns the run's summary."""
    from .engine.run import run_dunning

    date = datetime.date.fromisoformat(as_of) if as_of else None
    return run_dunning(date).as_dict()
