"""The rules of dunning, as pure functions: no ORM, no clock, no I/O.

Given a policy, the facts of one case and the run's date, :func:`decide` returns what the
run does with that case. The shell (``engine/run.py``) gathers the facts in batches and
applies the decisions.

The rules:
* a case whose customer has no open overdue invoice left is resolved;
* a run executes at most one step per case, never two on the same day;
* steps run in order and are never skipped: after a gap (go-live over old debt, a missed
  schedule) the first step due goes out, the next one ``min_gap_days`` later, and so on;
* a step is due once the oldest open invoice is ``offset_days + grace_days`` overdue and
  ``min_gap_days`` have passed since the previous step;
* nobody is dunned while every currency's balance is below the policy's minimum, nor while
  the case is paused;
* a disputed invoice is held, not the case: the shell leaves it out of the facts (its
  amount is not demanded, its date does not count), the rest of the debt keeps its
  schedule, and a case whose every open invoice is disputed waits (nothing is left to
  demand) instead of being resolved;
* a promise to pay lapses (is broken) once its date plus the grace days has passed with
  the case still open; after a number of broken promises a case goes to staff, and a
  promise must cover a share of what is demanded (:func:`promise_broken`,
  :func:`minimum_promise`, :func:`dispute_escalates_on`);
* a case handed over to a collections agency gets nothing more but a write-off step
  (``CaseFacts.at_agency``): a payment, or the agency returning the case, moves it on;
* "send the next step now" (:func:`decide_now`, staff's action) sends the next step today
  whatever its offset and the minimum gap, but never a second step on one day, nor to a
  paused case, one owing less than the minimum, or one whose every invoice is disputed.

What a decision does to the case (the step recorded, the state changed) is
:func:`dunning.rules.effects.effects`.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import ROUND_UP, Decimal
from enum import Enum

ONE_DAY = datetime.timedelta(days=1)


@dataclass(frozen=True, slots=True)
class StepSpec:
    key: str
    offset_days: int
    channel: str = "email"
    action: str = ""
    #: A legally required notice: sent even when the customer opted out of the channel.
    required: bool = False
    #: The channel used when the customer cannot be reached on ``channel`` or opted out.
    fallback: str = ""


@dataclass(frozen=True, slots=True)
class PolicySpec:
    steps: tuple[StepSpec, ...]
    min_gap_days: int = 3
    grace_days: int = 0
    minimum_balance: dict[str, Decimal] = field(default_factory=dict)

    def __post_init__(self):
        offsets = [s.offset_days for s in self.steps]
        if offsets != sorted(offsets) or len(set(offsets)) != len(offsets):
            raise ValueError("steps must have strictly increasing offsets")

    def index_of(self, key):
        for i, step in enumerate(self.steps):
            if step.key == key:
                return i
        return None


#: The reason of a WAIT decision for a case owing less than the policy's minimum.
BELOW_MINIMUM = "below minimum balance"
#: The reason of a WAIT decision for a case whose every open invoice is disputed.
ALL_DISPUTED = "every open invoice is disputed"
#: The reasons of a WAIT decision by :func:`decide_now`: the case is paused, or it had a
#: step today already.
PAUSED = "paused"
STEP_TODAY = "a step went out today"

#: "Paused without an end date": the rules compare dates, so a date far away will do.
PAUSED_INDEFINITELY = datetime.date(9999, 12, 31)

#: Days after a promised payment date before dunning goes on by itself (and the promise
#: counts as broken).
PROMISE_GRACE_DAYS = 3

#: The step action that ends a case (terminate), and the one a case at an agency still runs.
TERMINATE = "terminate"
WRITE_OFF = "write_off"


@dataclass(frozen=True, slots=True)
class CaseFacts:
    oldest_due: datetime.date | None  # None: no open overdue invoice left
    balances: dict[str, Decimal] = field(default_factory=dict)
    done_keys: frozenset[str] = frozenset()
    last_step_on: datetime.date | None = None
    paused_until: datetime.date | None = None
    #: Open overdue invoices held by an open dispute (left out of ``oldest_due`` and
    #: ``balances``): with none left to demand, the case waits instead of resolving.
    disputed: bool = False
    #: Handed over to a collections agency: no step but a write-off runs.
    at_agency: bool = False


class Kind(Enum):
    RESOLVE = "resolve"
    EXECUTE = "execute"
    WAIT = "wait"  # nothing today; look again on ``next_check``
    DONE = "done"  # every step has run; only a payment changes anything


@dataclass(frozen=True, slots=True)
class Decision:
    kind: Kind
    step: StepSpec | None = None
    next_check: datetime.date | None = None
    reason: str = ""


def next_step_index(policy: PolicySpec, done_keys) -> int:
    """Index of the step after the furthest executed one (a step removed from the
    policy since is ignored; one added before the furthest is never sent backwards)."""
    furthest = -1
    for i, step in enumerate(policy.steps):
        if step.key in done_keys:
            furthest = i
    return furthest + 1


def step_due_on(policy: PolicySpec, step: StepSpec, facts: CaseFacts) -> datetime.date:
    due = facts.oldest_due + datetime.timedelta(days=step.offset_days + policy.grace_days)
    if facts.last_step_on is not None:
        due = max(
            due,
            facts.last_step_on + datetime.timedelta(days=max(policy.min_gap_days, 1)),
        )
    if facts.paused_until is not None:
        due = max(due, facts.paused_until)
    return due


def below_minimum(policy: PolicySpec, balances) -> bool:
    """True when a minimum is set and every currency owed is below its minimum."""
    if not policy.minimum_balance or not balances:
        return False
    return all(
        amount < policy.minimum_balance.get(currency, Decimal(0))
        for currency, amount in balances.items()
    )


def decide(policy: PolicySpec, facts: CaseFacts, as_of: datetime.date) -> Decision:
    if facts.oldest_due is None:
        if facts.disputed:
            return Decision(Kind.WAIT, next_check=as_of + ONE_DAY, reason=ALL_DISPUTED)
        return Decision(Kind.RESOLVE)
    index = next_step_index(policy, facts.done_keys)
    if index >= len(policy.steps):
        return Decision(Kind.DONE)
    if below_minimum(policy, facts.balances):
        return Decision(Kind.WAIT, next_check=as_of + ONE_DAY, reason=BELOW_MINIMUM)
    step = policy.steps[index]
    due = step_due_on(policy, step, facts)
    if facts.last_step_on is not None and facts.last_step_on >= as_of:
        due = max(due, facts.last_step_on + ONE_DAY)
    if due > as_of:
        return Decision(Kind.WAIT, next_check=due)
    return _execute(policy, index, facts, as_of)


def _execute(policy: PolicySpec, index: int, facts: CaseFacts, as_of: datetime.date):
    """The decision to run the step at ``index`` on ``as_of`` (with the date the next one
    falls due), or DONE for a case at an agency (only a write-off runs there)."""
    step = policy.steps[index]
    if facts.at_agency and step.action != WRITE_OFF:
        # At a collections agency: nothing more but a write-off step; a payment, or the
        # agency returning the case (dunning.agency), moves it on.
        return Decision(Kind.DONE)
    following = None
    if index + 1 < len(policy.steps) and step.action != TERMINATE:
        after = CaseFacts(
            oldest_due=facts.oldest_due,
            balances=facts.balances,
            done_keys=facts.done_keys | {step.key},
            last_step_on=as_of,
            paused_until=facts.paused_until,
            disputed=facts.disputed,
        )
        following = step_due_on(policy, policy.steps[index + 1], after)
    return Decision(Kind.EXECUTE, step=step, next_check=following)


def decide_now(policy: PolicySpec, facts: CaseFacts, as_of: datetime.date) -> Decision:
    """:func:`decide` for "send the next step now" (staff's action): the next step goes
    out today whatever its offset and the minimum gap. It waits (with the reason) when
    :func:`decide` waits for the minimum balance or disputes, when the case is paused
    (:data:`PAUSED`) and when it had a step today (:data:`STEP_TODAY`); a case with no
    step left, or at an agency, is DONE."""
    decision = decide(policy, facts, as_of)
    if decision.kind is not Kind.WAIT or decision.reason in (BELOW_MINIMUM, ALL_DISPUTED):
        return decision
    if facts.paused_until is not None and facts.paused_until > as_of:
        return Decision(Kind.WAIT, next_check=decision.next_check, reason=PAUSED)
    if facts.last_step_on is not None and facts.last_step_on >= as_of:
        return Decision(Kind.WAIT, next_check=decision.next_check, reason=STEP_TODAY)
    # The pause has ended by today: the step after this one counts from today alone.
    return _execute(policy, next_step_index(policy, facts.done_keys), facts, as_of)


# -- promises and disputes -------------------------------------------------------------------
CENT = Decimal("0.01")


def promise_broken(promised_on: datetime.date | None, as_of: datetime.date,
                   grace_days: int) -> bool:
    """True when a promise for ``promised_on`` has lapsed on ``as_of``: its date plus the
    grace days has passed (the caller knows the case is still open, i.e. still owing)."""
    if promised_on is None:
        return False
    return promised_on + datetime.timedelta(days=grace_days) < as_of


def may_promise(broken: int, max_broken: int) -> bool:
    """Whether a customer with ``broken`` broken promises on the case may promise again
    by themselves (the self-service page); staff decide for themselves."""
    return broken < max_broken


def minimum_promise(balance: Decimal, share: Decimal) -> Decimal:
    """The least amount a promise must cover: ``share`` of ``balance``, rounded up to
    the cent (a share of 0 asks for nothing; a positive share never asks for less than a
    cent, and never for more than the balance)."""
    if share <= 0 or balance <= 0:
        return Decimal(0)
    return min(balance, max(CENT, (balance * share).quantize(CENT, rounding=ROUND_UP)))


def dispute_escalates_on(opened_on: datetime.date, after_days: int) -> datetime.date:
    """The day an open dispute opened on ``opened_on`` goes to staff."""
    return opened_on + datetime.timedelta(days=after_days)


def policy_spec(policy) -> PolicySpec:
    """The rules' view of a policy: anything with ``steps.all()`` (key, offset_days,
    channel, action), ``min_gap_days``, ``grace_days`` and ``minimum_balance`` (a Policy
    model with its steps prefetched). Shared by the run and the simulator."""
    steps = sorted(policy.steps.all(), key=lambda s: (s.offset_days, s.pk))
    return PolicySpec(
        steps=tuple(StepSpec(s.key, s.offset_days, s.channel, s.action,
                             getattr(s, "required", False), getattr(s, "fallback_channel", ""))
                    for s in steps),
        min_gap_days=policy.min_gap_days,
        grace_days=policy.grace_days,
        minimum_balance={
            str(k).upper(): Decimal(str(v)) for k, v in (policy.minimum_balance or {}).items()
        },
    )
