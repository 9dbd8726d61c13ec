"""When to retry a failed payment, and with which method: pure rules, no database.

The rules (docs/payments.md):

* Retries are numbered. Retry *n* (1-based) is planned ``offsets[n-1]`` days after the
  local date of the failure that started the cycle (default offsets 1, 3, 5, 7).
* **Paydays.** When a payday (the 1st or the 15th of a month) falls on or after that
  date and before the date of the next offset, the retry moves to the first such payday
  (so the schedule never skips or reorders retries). The last offset does not move.
* **Morning.** The retry happens at ``morning`` (09:00) in the customer's time zone
  (unknown or empty: UTC), and never on the same local day as the previous attempt.
* **Soft declines and errors** keep the method. **Hard declines** drop the method for
  good; the next retry uses the next stored method that has not hard-declined.
* When the offsets are used up, each stored method not yet tried in this cycle gets one
  attempt, the morning after the last attempt. Then the cycle gives up.
* **Cap.** A method is never charged more than ``cap`` times within any 30 days (all
  attempts, the failure that started the cycle included). Visa allows 15 and Mastercard
  10 retries of one transaction in 30 days; the default cap of 8 stays below both. A
  method at its cap is skipped; when every method is skipped, the cycle gives up.

:func:`next_attempt` returns a :class:`Decision`: ``at`` and ``method`` of the next
attempt, or ``at=None`` with ``reason`` UPDATE_METHOD (every method hard-declined: ask the
customer to update it), EXHAUSTED (the schedule is used up), CAPPED or AUTHENTICATE (the
bank asks the customer to authenticate the payment: never retried off-session).
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from . import declines

DEFAULT_OFFSETS = (1, 3, 5, 7)
DEFAULT_CAP = 8
CAP_WINDOW = datetime.timedelta(days=30)
PAYDAYS = (1, 15)
MORNING = datetime.time(9, 0)

UPDATE_METHOD = "update-method"
EXHAUSTED = "exhausted"
CAPPED = "capped"
AUTHENTICATE = "authenticate"


@dataclass(frozen=True)
class Attempt:
    method: str
    at: datetime.datetime
    #: Normalized decline code; "" for a success or a technical error.
    decline_code: str = ""


@dataclass(frozen=True)
class Decision:
    at: datetime.datetime | None
    method: str = ""
    reason: str = ""


def customer_zone(name):
    try:
        return ZoneInfo(name) if name else datetime.UTC
    except (ZoneInfoNotFoundError, ValueError):
        return datetime.UTC


def payday_in(start, end, paydays=PAYDAYS):
    """The first payday on or after ``start`` and before ``end`` (dates), or None."""
    day = start
    while day < end:
        if day.day in paydays:
            return day
        day += datetime.timedelta(days=1)
    return None


def planned_date(failed_on, n, offsets=DEFAULT_OFFSETS, paydays=PAYDAYS):
    """The local date of retry ``n`` (0-based) of a cycle that failed on ``failed_on``."""
    nominal = failed_on + datetime.timedelta(days=offsets[n])
    if n + 1 < len(offsets):
        window_end = failed_on + datetime.timedelta(days=offsets[n + 1])
        return payday_in(nominal, window_end, paydays) or nominal
    return nominal


def attempts_within(recent, method, at):
    """How many attempts of ``method`` lie in the 30 days before ``at``."""
    return sum(1 for a in recent if a.method == method and at - CAP_WINDOW < a.at <= at)


def next_attempt(attempts, methods, *, tz="", offsets=DEFAULT_OFFSETS, cap=DEFAULT_CAP,
                 recent=None, morning=MORNING, paydays=PAYDAYS):
    """The next attempt of a cycle.

    ``attempts``: the cycle's attempts, oldest first (the first is the failure that
    started it). ``methods``: ids of the customer's stored methods, preferred first.
    ``recent``: every attempt of the customer's methods in the last 30 days or more, for
    the cap (default: ``attempts``). ``tz``: the customer's IANA time zone.
    """
    if not attempts:
        raise ValueError("a retry cycle starts with a failed attempt")
    recent = attempts if recent is None else recent
    zone = customer_zone(tz)
    first, last = attempts[0], attempts[-1]
    if last.decline_code and declines.needs_customer(last.decline_code):
        # The bank wants the customer there (3-D Secure): an off-session retry would be
        # declined the same way.
        return Decision(None, reason=AUTHENTICATE)
    failed_on = first.at.astimezone(zone).date()
    last_on = last.at.astimezone(zone).date()
    hard = {a.method for a in attempts if a.decline_code and declines.is_hard(a.decline_code)}
    usable = [m for m in methods if m not in hard]
    if last.method not in hard and last.method not in usable:
        usable.insert(0, last.method)  # the method that failed, though no longer listed
    if not usable:
        return Decision(None, reason=UPDATE_METHOD)

    n = len(attempts) - 1  # retries made so far
    if n < len(offsets):
        on = max(planned_date(failed_on, n, offsets, paydays),
                 last_on + datetime.timedelta(days=1))
        # The current method first, then the others in their order.
        order = ([last.method] if last.method in usable else []) + [
            m for m in usable if m != last.method
        ]
    else:
        tried = {a.method for a in attempts}
        order = [m for m in usable if m not in tried]
        if not order:
            return Decision(None, reason=EXHAUSTED)
        on = last_on + datetime.timedelta(days=1)

    at = datetime.datetime.combine(on, morning, tzinfo=zone).astimezone(datetime.UTC)
    for method in order:
        if attempts_within(recent, method, at) < cap:
            return Decision(at, method)
    return Decision(None, reason=CAPPED)
