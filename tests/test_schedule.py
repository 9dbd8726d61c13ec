"""The pure rules of dunning (dunning/engine/schedule.py): no database, no clock.

Dates are written as days past the due date of the oldest open invoice: ``d(4)`` is the
day the customer is 4 days overdue.
"""

import datetime
from decimal import Decimal

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from dunning.engine.schedule import (
    CaseFacts,
    Kind,
    PolicySpec,
    StepSpec,
    below_minimum,
    decide,
    next_step_index,
)
from dunning.shipped import STANDARD_POLICY

DUE = datetime.date(2026, 3, 2)


def d(n):
    return DUE + datetime.timedelta(days=n)


# The contract of the default policy: key, offset days past due, action.
CONTRACT = [
    ("initial-notice", 1, ""),
    ("gentle-reminder", 4, ""),
    ("formal-notice", 8, ""),
    ("suspension-warning", 14, ""),
    ("suspension", 21, "suspend"),
    ("final-notice", 30, ""),
    ("termination", 45, "terminate"),
]
KEYS = [key for key, _, _ in CONTRACT]


def policy(min_gap_days=3, grace_days=0, minimum_balance=None, steps=CONTRACT):
    return PolicySpec(
        steps=tuple(StepSpec(key, offset, "email", action) for key, offset, action in steps),
        min_gap_days=min_gap_days,
        grace_days=grace_days,
        minimum_balance=minimum_balance or {},
    )


STANDARD = policy()


def facts(done=(), last=None, oldest=DUE, balances=None, paused=None):
    return CaseFacts(
        oldest_due=oldest,
        balances={"EUR": Decimal("100.00")} if balances is None else balances,
        done_keys=frozenset(done),
        last_step_on=last,
        paused_until=paused,
    )


def simulate(spec, run_days, *, oldest=DUE, balances=None, paused=None):
    """Decide on each run day (days past ``oldest``), applying every EXECUTE as the engine
    does. Returns [(day, step key)]."""
    done, last, log = set(), None, []
    for n in sorted(run_days):
        today = oldest + datetime.timedelta(days=n)
        decision = decide(spec, facts(done, last, oldest, balances, paused), today)
        if decision.kind is Kind.EXECUTE:
            done.add(decision.step.key)
            last = today
            log.append((n, decision.step.key))
    return log


def test_shipped_standard_policy_is_the_contract():
    assert STANDARD_POLICY["key"] == "standard"
    assert STANDARD_POLICY["min_gap_days"] == 3
    assert [tuple(s) for s in STANDARD_POLICY["steps"]] == CONTRACT


# -- the standard schedule, decision by decision ------------------------------------------

# done steps, day of the last step, run day, expected kind, expected step, expected next_check
STANDARD_TABLE = [
    ((), None, 0, Kind.WAIT, None, 1),
    ((), None, 1, Kind.EXECUTE, "initial-notice", 4),
    (KEYS[:1], 1, 1, Kind.WAIT, None, 4),
    (KEYS[:1], 1, 2, Kind.WAIT, None, 4),
    (KEYS[:1], 1, 3, Kind.WAIT, None, 4),
    (KEYS[:1], 1, 4, Kind.EXECUTE, "gentle-reminder", 8),
    (KEYS[:2], 4, 7, Kind.WAIT, None, 8),
    (KEYS[:2], 4, 8, Kind.EXECUTE, "formal-notice", 14),
    (KEYS[:3], 8, 13, Kind.WAIT, None, 14),
    (KEYS[:3], 8, 14, Kind.EXECUTE, "suspension-warning", 21),
    (KEYS[:4], 14, 20, Kind.WAIT, None, 21),
    (KEYS[:4], 14, 21, Kind.EXECUTE, "suspension", 30),
    (KEYS[:5], 21, 29, Kind.WAIT, None, 30),
    (KEYS[:5], 21, 30, Kind.EXECUTE, "final-notice", 45),
    (KEYS[:6], 30, 44, Kind.WAIT, None, 45),
    (KEYS[:6], 30, 45, Kind.EXECUTE, "termination", None),
    (KEYS, 45, 46, Kind.DONE, None, None),
    (KEYS, 45, 400, Kind.DONE, None, None),
]


@pytest.mark.parametrize(("done", "last", "today", "kind", "step", "next_check"), STANDARD_TABLE)
def test_standard_schedule(done, last, today, kind, step, next_check):
    decision = decide(STANDARD, facts(done, None if last is None else d(last)), d(today))
    assert decision.kind is kind
    assert (decision.step.key if decision.step else None) == step
    assert decision.next_check == (None if next_check is None else d(next_check))


def test_daily_runs_send_every_step_on_its_day():
    assert simulate(STANDARD, range(0, 120)) == [
        (1, "initial-notice"),
        (4, "gentle-reminder"),
        (8, "formal-notice"),
        (14, "suspension-warning"),
        (21, "suspension"),
        (30, "final-notice"),
        (45, "termination"),
    ]


def test_actions_ride_on_their_steps():
    decision = decide(STANDARD, facts(KEYS[:4], d(14)), d(21))
    assert (decision.step.key, decision.step.action) == ("suspension", "suspend")
    decision = decide(STANDARD, facts(KEYS[:6], d(30)), d(45))
    assert (decision.step.key, decision.step.action) == ("termination", "terminate")


# -- min gap and never skipping -----------------------------------------------------------


def test_min_gap_holds_back_a_step_that_is_due_by_its_offset():
    # initial-notice went out late, on day 3: gentle-reminder (offset 4) waits until day 6.
    late = facts(KEYS[:1], d(3))
    assert decide(STANDARD, late, d(4)).kind is Kind.WAIT
    assert decide(STANDARD, late, d(4)).next_check == d(6)
    assert decide(STANDARD, late, d(5)).kind is Kind.WAIT
    decision = decide(STANDARD, late, d(6))
    assert (decision.kind, decision.step.key) == (Kind.EXECUTE, "gentle-reminder")


@pytest.mark.parametrize(
    ("first_run", "expected"),
    [
        (19, [19, 22, 25, 28, 31, 34, 45]),
        (40, [40, 43, 46, 49, 52, 55, 58]),
        (100, [100, 103, 106, 109, 112, 115, 118]),
    ],
)
def test_after_a_gap_steps_go_out_one_by_one(first_run, expected):
    """Go-live over old debt: the first step first, then one step per min gap."""
    assert simulate(STANDARD, range(first_run, 200)) == list(zip(expected, KEYS, strict=True))


def test_nineteen_days_overdue_gets_initial_notice_then_next_step_three_days_later():
    decision = decide(STANDARD, facts(), d(19))
    assert (decision.kind, decision.step.key, decision.next_check) == (
        Kind.EXECUTE, "initial-notice", d(22)
    )
    after = facts(KEYS[:1], d(19))
    assert decide(STANDARD, after, d(20)).kind is Kind.WAIT
    assert decide(STANDARD, after, d(21)).kind is Kind.WAIT
    decision = decide(STANDARD, after, d(22))
    assert (decision.kind, decision.step.key) == (Kind.EXECUTE, "gentle-reminder")


def test_missed_runs_never_skip_a_step():
    # Runs only on days 1, 30 and 31: the second run sends gentle-reminder, not final-notice.
    assert simulate(STANDARD, [1, 30, 31, 32, 33]) == [
        (1, "initial-notice"),
        (30, "gentle-reminder"),
        (33, "formal-notice"),
    ]


@pytest.mark.parametrize("min_gap", [0, 1, 3])
def test_never_two_steps_on_the_same_day(min_gap):
    spec = policy(min_gap_days=min_gap, steps=[("a", 1, ""), ("b", 2, ""), ("c", 3, "")])
    first = decide(spec, facts(), d(10))
    assert (first.kind, first.step.key) == (Kind.EXECUTE, "a")
    again = decide(spec, facts({"a"}, d(10)), d(10))
    assert again.kind is Kind.WAIT
    assert again.next_check == d(10 + max(min_gap, 1))


def test_same_day_decision_after_executing_gives_no_second_step():
    for n, key in simulate(STANDARD, range(0, 60)):
        done = set(KEYS[: KEYS.index(key) + 1])
        decision = decide(STANDARD, facts(done, d(n)), d(n))
        assert decision.kind is not Kind.EXECUTE, key


def test_a_step_recorded_for_a_later_day_blocks_earlier_days_too():
    # A clock that went backwards (last step "tomorrow") must not cause a second step today.
    decision = decide(STANDARD, facts(KEYS[:1], d(20)), d(19))
    assert decision.kind is Kind.WAIT
    assert decision.next_check == d(23)


# -- pause, minimum balance, grace --------------------------------------------------------


def test_pause_holds_every_step_until_its_end():
    paused = facts(KEYS[:1], d(1), paused=d(10))
    for n in range(4, 10):
        decision = decide(STANDARD, paused, d(n))
        assert decision.kind is Kind.WAIT
        assert decision.next_check == d(10)
    decision = decide(STANDARD, paused, d(10))
    assert (decision.kind, decision.step.key) == (Kind.EXECUTE, "gentle-reminder")


def test_pause_in_the_past_changes_nothing():
    decision = decide(STANDARD, facts(paused=d(-5)), d(1))
    assert (decision.kind, decision.step.key) == (Kind.EXECUTE, "initial-notice")


def test_pause_before_the_first_step():
    assert simulate(STANDARD, range(0, 30), paused=d(12))[:2] == [
        (12, "initial-notice"),
        (15, "gentle-reminder"),
    ]


@pytest.mark.parametrize(
    ("minimum", "balances", "dunned"),
    [
        ({"EUR": "5.00"}, {"EUR": "4.99"}, False),
        ({"EUR": "5.00"}, {"EUR": "5.00"}, True),
        ({"EUR": "5.00"}, {"EUR": "5.01"}, True),
        ({"EUR": "5.00", "USD": "5.00"}, {"EUR": "1.00", "USD": "1.00"}, False),
        # one currency at or above its minimum is enough to dun
        ({"EUR": "5.00", "USD": "5.00"}, {"EUR": "1.00", "USD": "9.00"}, True),
        # a currency without a minimum is always dunned
        ({"EUR": "5.00"}, {"EUR": "1.00", "GBP": "0.50"}, True),
        ({}, {"EUR": "0.01"}, True),
        ({"EUR": "5.00"}, {}, True),
    ],
)
def test_minimum_balance(minimum, balances, dunned):
    spec = policy(minimum_balance={k: Decimal(v) for k, v in minimum.items()})
    money = {k: Decimal(v) for k, v in balances.items()}
    assert below_minimum(spec, money) is not dunned
    decision = decide(spec, facts(balances=money), d(5))
    if dunned:
        assert (decision.kind, decision.step.key) == (Kind.EXECUTE, "initial-notice")
    else:
        assert decision.kind is Kind.WAIT
        assert decision.next_check == d(6)  # looked at again tomorrow
        assert decision.reason


def test_reaching_the_minimum_later_starts_with_the_first_step():
    spec = policy(minimum_balance={"EUR": Decimal("5.00")})
    assert decide(spec, facts(balances={"EUR": Decimal("3")}), d(20)).kind is Kind.WAIT
    decision = decide(spec, facts(balances={"EUR": Decimal("8")}), d(21))
    assert (decision.kind, decision.step.key) == (Kind.EXECUTE, "initial-notice")


@pytest.mark.parametrize("grace", [1, 2, 7])
def test_grace_days_are_added_to_every_offset(grace):
    spec = policy(grace_days=grace)
    assert decide(spec, facts(), d(grace)).kind is Kind.WAIT
    assert decide(spec, facts(), d(grace)).next_check == d(1 + grace)
    expected = [(offset + grace, key) for key, offset, _ in CONTRACT]
    assert simulate(spec, range(0, 120)) == expected


# -- resolve and done ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "case",
    [
        facts(oldest=None),
        facts(KEYS[:3], d(8), oldest=None),
        facts(KEYS, d(45), oldest=None),
        facts(KEYS[:1], d(1), oldest=None, paused=d(30)),
        facts(oldest=None, balances={}),
    ],
)
def test_resolve_when_no_open_overdue_invoice_is_left(case):
    assert decide(STANDARD, case, d(5)).kind is Kind.RESOLVE
    assert decide(policy(minimum_balance={"EUR": Decimal(1000)}), case, d(5)).kind is Kind.RESOLVE


def test_done_after_the_last_step():
    spec = policy(steps=[("a", 1, ""), ("b", 5, "")])
    last = decide(spec, facts({"a"}, d(1)), d(5))
    assert (last.kind, last.step.key, last.next_check) == (Kind.EXECUTE, "b", None)
    for n in (5, 6, 100):
        assert decide(spec, facts({"a", "b"}, d(5)), d(n)).kind is Kind.DONE


def test_terminate_step_has_no_next_check_even_with_steps_after_it():
    spec = policy(steps=[("a", 1, ""), ("end", 5, "terminate"), ("after", 9, "")])
    decision = decide(spec, facts({"a"}, d(1)), d(5))
    assert (decision.kind, decision.step.key, decision.next_check) == (Kind.EXECUTE, "end", None)


# -- next_step_index when the policy changed ----------------------------------------------


@pytest.mark.parametrize(
    ("done", "expected"),
    [
        (set(), 0),
        ({"initial-notice"}, 1),
        ({"initial-notice", "gentle-reminder"}, 2),
        # a step removed from the policy since is ignored
        ({"initial-notice", "old-reminder"}, 1),
        ({"old-reminder"}, 0),
        ({"initial-notice", "gentle-reminder", "old-reminder"}, 2),
        # a step added before the furthest executed one is never sent backwards
        ({"initial-notice", "formal-notice"}, 3),
        ({"suspension"}, 5),
        (set(KEYS), 7),
        (set(KEYS) | {"old-reminder"}, 7),
    ],
)
def test_next_step_index(done, expected):
    assert next_step_index(STANDARD, done) == expected


def test_a_removed_step_does_not_block_the_schedule():
    decision = decide(STANDARD, facts({"initial-notice", "old-reminder"}, d(1)), d(4))
    assert (decision.kind, decision.step.key) == (Kind.EXECUTE, "gentle-reminder")


@pytest.mark.parametrize(
    "offsets", [(1, 1), (4, 1), (1, 4, 4), (5, 3, 8)]
)
def test_policy_rejects_offsets_that_do_not_increase(offsets):
    with pytest.raises(ValueError, match="increasing"):
        PolicySpec(steps=tuple(StepSpec(f"s{i}", o) for i, o in enumerate(offsets)))


# -- properties ---------------------------------------------------------------------------


@st.composite
def policies(draw):
    offsets = sorted(draw(st.sets(st.integers(0, 60), min_size=1, max_size=8)))
    terminate_last = draw(st.booleans())
    steps = [
        StepSpec(f"step-{i}", o, "email",
                 "terminate" if terminate_last and i == len(offsets) - 1 else "")
        for i, o in enumerate(offsets)
    ]
    return PolicySpec(
        steps=tuple(steps),
        min_gap_days=draw(st.integers(0, 7)),
        grace_days=draw(st.integers(0, 5)),
    )


run_days_strategy = st.sets(st.integers(0, 150), max_size=80)
pause_strategy = st.one_of(st.none(), st.integers(-5, 90))


def play(spec, run_days, paused, *, only_when_due):
    """Run a case through ``run_days`` as the engine does. With ``only_when_due`` the case
    is looked at only from its ``next_check`` on (the engine's ``next_due_on``).

    Returns the executed (day, key) pairs; asserts idempotence on the way."""
    pause = None if paused is None else d(paused)
    done, last, log = set(), None, []
    next_due = None
    for n in sorted(run_days):
        today = d(n)
        if only_when_due and next_due is not None and today < next_due:
            continue
        current = facts(done, last, paused=pause)
        decision = decide(spec, current, today)
        if decision.kind is Kind.EXECUTE:
            done.add(decision.step.key)
            last = today
            log.append((n, decision.step.key))
            # idempotent: deciding again the same day after executing sends nothing
            again = decide(spec, facts(done, last, paused=pause), today)
            assert again.kind is not Kind.EXECUTE
            # and deciding again before executing gives the very same step
            assert decide(spec, current, today) == decision
        if decision.kind is Kind.DONE:
            next_due = datetime.date.max
        elif decision.next_check is not None:
            assert decision.next_check > today
            next_due = decision.next_check
        elif decision.kind is Kind.EXECUTE:
            next_due = datetime.date.max  # the last step (or a terminate): nothing follows
    return log


@settings(max_examples=300, deadline=None)
@given(spec=policies(), run_days=run_days_strategy, paused=pause_strategy)
def test_property_order_gaps_and_idempotence(spec, run_days, paused):
    log = play(spec, run_days, paused, only_when_due=False)
    keys = [key for _, key in log]
    days = [n for n, _ in log]
    # in policy order, never skipped: the executed steps are a prefix of the policy
    assert keys == [s.key for s in spec.steps[: len(keys)]]
    # never two on one day, and at least the min gap between two steps
    for earlier, later in zip(days, days[1:], strict=False):
        assert later - earlier >= max(spec.min_gap_days, 1)
    # none before its offset (plus grace) or during a pause
    for n, key in log:
        step = spec.steps[spec.index_of(key)]
        assert n >= step.offset_days + spec.grace_days
        if paused is not None:
            assert n >= paused
    # nothing after a terminate step
    for n, key in log:
        if spec.steps[spec.index_of(key)].action == "terminate":
            assert (n, key) == log[-1]


@settings(max_examples=300, deadline=None)
@given(spec=policies(), run_days=run_days_strategy, paused=pause_strategy)
def test_property_each_step_goes_out_on_the_first_run_day_it_is_due(spec, run_days, paused):
    """A model of the rules: step i is due on the first run day that is at least its
    offset + grace past due, min gap after step i-1, and not before the pause ends."""
    expected, last = [], None
    steps = list(spec.steps)
    for n in sorted(run_days):
        if len(expected) == len(steps):
            break
        if expected and steps[len(expected) - 1].action == "terminate":
            break
        step = steps[len(expected)]
        earliest = step.offset_days + spec.grace_days
        if last is not None:
            earliest = max(earliest, last + max(spec.min_gap_days, 1))
        if paused is not None:
            earliest = max(earliest, paused)
        if n >= earliest:
            expected.append((n, step.key))
            last = n
    assert play(spec, run_days, paused, only_when_due=False) == expected


@settings(max_examples=300, deadline=None)
@given(spec=policies(), run_days=run_days_strategy, paused=pause_strategy)
def test_property_next_check_never_delays_or_loses_a_step(spec, run_days, paused):
    """The engine looks at a case again only on its next_check; that must give the same
    steps on the same days as looking at it on every run."""
    assert play(spec, run_days, paused, only_when_due=True) == play(
        spec, run_days, paused, only_when_due=False
    )


@settings(max_examples=200, deadline=None)
@given(spec=policies(), start=st.integers(0, 100))
def test_property_daily_runs_finish_every_policy(spec, start):
    log = play(spec, range(start, start + 400), None, only_when_due=True)
    terminate_at = next(
        (i for i, s in enumerate(spec.steps) if s.action == "terminate"), len(spec.steps) - 1
    )
    assert [k for _, k in log] == [s.key for s in spec.steps[: terminate_at + 1]]
