"""Payment plans from the self-service page, as pure rules: no ORM, no clock, no I/O.

A plan splits what a case owes into instalments (``{"due": ISO date, "amounts":
{currency: amount as text}}``, in order). What has been paid towards the plan, per
currency, decides its state on a day: the first instalment not covered by the payments is
the pending one; a plan with none pending is paid in full (completed); a pending
instalment whose date plus the grace days has passed breaks the plan (dunning resumes);
otherwise the case is paused until the pending instalment's date plus the grace days.
The shell (``dunning.portal.services.check_payment_plans``) reads the plans and their
invoices in bulk and records what these rules say.
"""

from __future__ import annotations

import datetime
from decimal import Decimal


def pending_instalment(instalments, totals, paid):
    """The first of ``instalments`` that ``paid`` ({currency: Decimal} paid so far)
    does not cover, counting the instalments before it; None when the plan is paid in
    full. ``totals``: {currency: amount} of the plan (the currencies counted)."""
    expected = {currency: Decimal(0) for currency in totals}
    for instalment in instalments:
        for currency, amount in instalment["amounts"].items():
            expected[currency] += Decimal(amount)
        if any(paid[c] < expected[c] for c in expected):
            return instalment
    return None


def instalment_due(instalment) -> datetime.date:
    return datetime.date.fromisoformat(instalment["due"])


def pause_until(instalment, grace_days: int) -> datetime.date:
    """The day dunning waits for while ``instalment`` is pending: its date plus the grace
    days."""
    return instalment_due(instalment) + datetime.timedelta(days=grace_days)


def instalment_missed(instalment, as_of: datetime.date, grace_days: int) -> bool:
    """True when the pending ``instalment``'s date plus the grace days has passed on
    ``as_of``: the plan is broken."""
    return pause_until(instalment, grace_days) < as_of
