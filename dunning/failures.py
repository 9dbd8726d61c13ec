"""Two chores every part that talks to the outside world shares (a foundation: no
models, no settings): saying what went wrong in one line, and how long to wait before
trying again.

``describe(exc)`` is the reason recorded for a failed message, a refused render, a
webhook delivery or a signal receiver that raised ("TimeoutError: timed out"), cut to
fit the column it is written to. ``backoff(tries, base, cap)`` is the exponential wait
of the outbox's retries, its circuit breaker and the webhook deliveries.
"""

from __future__ import annotations

import datetime

#: The longest reason kept (the reason columns are 2000 characters).
REASON_MAX = 2000


def describe(exc, limit=REASON_MAX):
    """``"TypeName: message"`` of ``exc``, at most ``limit`` characters (None: whole)."""
    text = f"{type(exc).__name__}: {exc}"
    return text if limit is None else text[:limit]


def backoff(tries, base, cap, least=0.0):
    """The wait (a timedelta) after the ``tries``-th failure in a row: ``base`` seconds
    after the first, doubled for every further one, at most ``cap`` seconds; ``base`` and
    ``cap`` count as at least ``least`` seconds (a setting of 0 or below)."""
    base = max(float(base), least)
    cap = max(float(cap), least)
    return datetime.timedelta(seconds=min(cap, base * 2.0 ** min(max(tries - 1, 0), 60)))
