"""What a decision does to a case, as plain data: no ORM, no clock, no I/O.

:func:`~dunning.rules.schedule.decide` says *what* happens to a case today (execute a
step, resolve, wait, nothing more); :func:`effects` says what that means for the case:
the step to record and by which channel, the thank-you message of a paid case, the case's
next check date, its status, the service suspended or restored, the hand-over to an
agency, the write-off, the fees to add. Everyone who needs to know uses it: the run
records these effects (``DunningRun.apply``), the dry run and tomorrow's plan count and
list them, "send now" records them like the run, and the simulator replays them. So the
four cannot disagree on what a decision does (tests/test_effects.py).

What stays the shell's: whether the customer can be reached (a failed or skipped message
is recorded as such, the effects are the same), the message itself, the ids.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass

from .schedule import TERMINATE, WRITE_OFF, Decision, Kind, StepSpec

#: The case statuses the effects set (the values of ``Case.Status``).
RESOLVED = "resolved"
TERMINATED = "terminated"

#: Step actions with an effect on the case beyond the message.
SUSPEND = "suspend"
AGENCY = "agency"


# Plain (not frozen) slotted dataclasses: the run builds one of each per case, and a frozen
# dataclass's __init__ costs four times as much. Treat them as read-only values.
@dataclass(slots=True)
class CaseState:
    """The facts of a case :func:`effects` needs beyond its decision."""

    #: The run's date.
    as_of: datetime.date
    #: The case has executed steps before (a paid case then gets the thank-you message).
    has_steps: bool = False
    #: The customer's service is suspended (a paid case's service is restored).
    suspended: bool = False
    #: The compliance guards' hold on today's step: a date (it waits for that day), a
    #: datetime (it goes out later today, queued until then) or None.
    hold: datetime.date | datetime.datetime | None = None


@dataclass(slots=True)
class Effects:
    """What a decision does to a case. ``next_due_on`` is always the case's new next
    check date (None: no check until something changes); the other fields say what
    changes, and are false or empty when nothing does."""

    next_due_on: datetime.date | None
    #: The step to record today (its key, channel, fallback, action, required flag).
    step: StepSpec | None = None
    #: Record the thank-you message (``payment-received``) of a resolved case.
    thank_you: bool = False
    #: The step's message goes out later today: queued until this instant.
    send_at: datetime.datetime | None = None
    #: The compliance guards made today's due step wait until ``next_due_on``.
    held: bool = False
    #: The case's new status (:data:`RESOLVED`, :data:`TERMINATED`), "" unchanged; a new
    #: status closes the case on the run's date.
    status: str = ""
    closed_on: datetime.date | None = None
    #: The case's service is suspended / restored.
    suspend: bool = False
    restore: bool = False
    #: The case goes to a collections agency (the one the step names).
    hand_over: bool = False
    #: The case is written off (closed by the step).
    write_off: bool = False
    #: The step's charges are added (dunning.charging: its reminder fee where the fee
    #: settings charge for it, interest; only when its message is queued).
    charge: bool = False


def is_day(hold):
    """A compliance hold that makes the step wait for another day (a date, not a time)."""
    return isinstance(hold, datetime.date) and not isinstance(hold, datetime.datetime)


def effects(decision: Decision, facts: CaseState) -> Effects:
    """What ``decision`` does to a case in the state ``facts`` (see the module docstring).

    * WAIT: the case is looked at again on the decision's ``next_check``;
    * DONE: no check until something changes;
    * RESOLVE: the case is resolved and closed today; a case that had steps gets the
      thank-you message, a suspended service is restored;
    * EXECUTE: a step held by the compliance guards for another day waits (``held``);
      otherwise the step is recorded (queued until ``send_at`` when the guards allow it
      later today), fees are added, the next check is the next step's date, and the
      step's action applies: ``suspend`` suspends the service (once), ``terminate`` ends
      the case, ``agency`` hands it over, ``write_off`` writes it off.
    """
    kind = decision.kind
    if kind is Kind.WAIT:
        return Effects(next_due_on=decision.next_check)
    if kind is Kind.DONE:
        return Effects(next_due_on=None)  # no check until a payment changes something
    if kind is Kind.RESOLVE:
        return Effects(next_due_on=None, thank_you=facts.has_steps, status=RESOLVED,
                       closed_on=facts.as_of, restore=facts.suspended)
    step, hold = decision.step, facts.hold
    if hold is not None and is_day(hold):
        # Quiet hours, a holiday or a frequency cap: the step waits for that day.
        return Effects(next_due_on=hold, held=True)
    action = step.action
    if action == TERMINATE:
        return Effects(next_due_on=None, step=step, send_at=hold, status=TERMINATED,
                       closed_on=facts.as_of, charge=True)
    return Effects(
        next_due_on=decision.next_check, step=step, send_at=hold, charge=True,
        suspend=action == SUSPEND and not facts.suspended,
        hand_over=action == AGENCY, write_off=action == WRITE_OFF,
    )
