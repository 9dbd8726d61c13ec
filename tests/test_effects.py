"""What a decision does (dunning.rules.effects): one pure ``effects(decision, facts)`` that
the run, the dry run / tomorrow's plan, "send now" and the simulator all use, so they
agree on what happens to every case; and the rules package stays pure."""

import ast
import datetime
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from django.utils import timezone

from dunning.engine import simulate as simulator
from dunning.engine.manual import REFUSED_DONE, send_next_step_now
from dunning.engine.plan import DunningPlan
from dunning.models import Case, CaseStep, Invoice, MessageTemplate, Policy, Step
from dunning.models.policy import PAYMENT_RECEIVED
from dunning.rules.effects import (
    RESOLVED,
    TERMINATED,
    CaseState,
    Effects,
    effects,
)
from dunning.rules.schedule import (
    PAUSED,
    STEP_TODAY,
    CaseFacts,
    Decision,
    Kind,
    PolicySpec,
    StepSpec,
    decide,
    decide_now,
)
from dunning.testing import create_customer, create_invoice, override_dunning_settings

from .conftest import day

TODAY = datetime.date(2026, 3, 20)
LATER = datetime.datetime(2026, 3, 20, 14, 0, tzinfo=datetime.timezone.utc)
REMIND = StepSpec("remind", 1, "sms", fallback="email")
SUSPEND = StepSpec("cut", 21, action="suspend")
END = StepSpec("end", 45, action="terminate")
HAND = StepSpec("hand", 50, action="agency")
WRITE = StepSpec("write", 60, action="write_off")
NEXT = datetime.date(2026, 3, 23)


# -- effects(), table-driven ------------------------------------------------------------------
@pytest.mark.parametrize(("decision", "state", "expected"), [
    # Waiting: only the next check date changes.
    (Decision(Kind.WAIT, next_check=NEXT), CaseState(TODAY, True, True),
     Effects(next_due_on=NEXT)),
    # Every step has run: nothing until a payment.
    (Decision(Kind.DONE), CaseState(TODAY, True), Effects(next_due_on=None)),
    # Paid before any step: resolved and closed today, no thank-you.
    (Decision(Kind.RESOLVE), CaseState(TODAY),
     Effects(next_due_on=None, status=RESOLVED, closed_on=TODAY)),
    # Paid after steps and a suspension: the thank-you, and the service back.
    (Decision(Kind.RESOLVE), CaseState(TODAY, has_steps=True, suspended=True),
     Effects(next_due_on=None, thank_you=True, status=RESOLVED, closed_on=TODAY,
             restore=True)),
    # A reminder: recorded with its channel and fallback, fees added, next step's date.
    (Decision(Kind.EXECUTE, step=REMIND, next_check=NEXT), CaseState(TODAY),
     Effects(next_due_on=NEXT, step=REMIND, charge=True)),
    # Allowed later today by the compliance guards: queued until then.
    (Decision(Kind.EXECUTE, step=REMIND, next_check=NEXT), CaseState(TODAY, hold=LATER),
     Effects(next_due_on=NEXT, step=REMIND, send_at=LATER, charge=True)),
    # Held for another day: nothing recorded, looked at again that day.
    (Decision(Kind.EXECUTE, step=REMIND, next_check=NEXT), CaseState(TODAY, hold=NEXT),
     Effects(next_due_on=NEXT, held=True)),
    # A suspension step suspends once; a second one on a suspended service does not.
    (Decision(Kind.EXECUTE, step=SUSPEND, next_check=NEXT), CaseState(TODAY),
     Effects(next_due_on=NEXT, step=SUSPEND, charge=True, suspend=True)),
    (Decision(Kind.EXECUTE, step=SUSPEND, next_check=NEXT), CaseState(TODAY, suspended=True),
     Effects(next_due_on=NEXT, step=SUSPEND, charge=True)),
    # Termination ends the case today, with no next check.
    (Decision(Kind.EXECUTE, step=END), CaseState(TODAY, True),
     Effects(next_due_on=None, step=END, status=TERMINATED, closed_on=TODAY, charge=True)),
    # Hand-over and write-off.
    (Decision(Kind.EXECUTE, step=HAND, next_check=NEXT), CaseState(TODAY, True),
     Effects(next_due_on=NEXT, step=HAND, hand_over=True, charge=True)),
    (Decision(Kind.EXECUTE, step=WRITE), CaseState(TODAY, True),
     Effects(next_due_on=None, step=WRITE, write_off=True, charge=True)),
])
def test_effects_of_each_decision(decision, state, expected):
    assert effects(decision, state) == expected


# -- the stray rules, now in the rules package ------------------------------------------------
POLICY = PolicySpec(steps=(REMIND, StepSpec("again", 4), HAND, StepSpec("after", 55)))
DUE = datetime.date(2026, 3, 1)


@pytest.mark.parametrize(("policy", "done", "kind", "step"), [
    # At an agency: no reminder, whatever is due ...
    (POLICY, {"remind", "again", "hand"}, Kind.DONE, None),
    # ... but a write-off still runs.
    (PolicySpec(steps=(REMIND, HAND, WRITE)), {"remind", "hand"}, Kind.EXECUTE, WRITE),
])
def test_the_agency_rule_is_part_of_decide(policy, done, kind, step):
    facts = CaseFacts(DUE, done_keys=frozenset(done), at_agency=True)
    decision = decide(policy, facts, DUE + datetime.timedelta(days=60))
    assert (decision.kind, decision.step) == (kind, step)
    # Not at an agency, the same case gets its step.
    assert decide(policy, CaseFacts(DUE, done_keys=frozenset(done)),
                  DUE + datetime.timedelta(days=60)).kind is Kind.EXECUTE


@pytest.mark.parametrize(("facts", "kind", "reason", "step"), [
    # Not due for days: goes out today anyway, the next one counts from today.
    (CaseFacts(DUE, done_keys=frozenset({"remind"}), last_step_on=DUE + datetime.timedelta(1)),
     Kind.EXECUTE, "", "again"),
    # A step already went out today.
    (CaseFacts(DUE, done_keys=frozenset({"remind"}), last_step_on=DUE + datetime.timedelta(2)),
     Kind.WAIT, STEP_TODAY, None),
    # Paused.
    (CaseFacts(DUE, done_keys=frozenset({"remind"}), paused_until=DUE + datetime.timedelta(9)),
     Kind.WAIT, PAUSED, None),
    # At an agency: nothing, not even by hand.
    (CaseFacts(DUE, done_keys=frozenset({"remind", "again", "hand"}), at_agency=True),
     Kind.DONE, "", None),
])
def test_decide_now(facts, kind, reason, step):
    as_of = DUE + datetime.timedelta(days=2)
    decision = decide_now(POLICY, facts, as_of)
    assert (decision.kind, decision.reason) == (kind, reason)
    assert (decision.step.key if decision.step else None) == step
    if step == "again":  # the step after it: the minimum gap from today
        assert decision.next_check == max(as_of + datetime.timedelta(days=3),
                                          DUE + datetime.timedelta(days=50))


def test_the_rules_package_imports_no_orm_clock_or_io():
    """dunning.rules imports only the standard library, itself and Django's translation
    functions (for texts shown to people)."""
    allowed_django = {"django.utils.translation"}
    folder = Path(__file__).resolve().parents[1] / "dunning" / "rules"
    stdlib = sys.stdlib_module_names
    for path in sorted(folder.glob("*.py")):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: another rules module
                    assert not (node.module or "").startswith("."), path
                    continue
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                assert top in stdlib or top == "__future__" or name in allowed_django, (
                    f"{path.name} imports {name}")


# -- the run, the dry run and the simulator agree on one fixture ----------------------------
def pay(customer, amount="0.00"):
    Invoice.objects.filter(customer=customer).update(amount_due=Decimal(amount))


class Recording(simulator.Tally):
    """A simulator tally that also keeps (case, day, step key) of every message."""

    made = []

    def __init__(self, start, end):
        super().__init__(start, end)
        self.seen = set()
        Recording.made.append(self)

    def add(self, case_id, day, key, action=""):
        super().add(case_id, day, key, action)
        if self.start <= day <= self.end:
            self.seen.add((case_id, day, key))


def test_the_run_the_dry_run_and_the_simulator_agree(db, run, monkeypatch):
    """Five customers under the shipped policy, a run every day for 50 days: A pays on
    day 10, B never pays (suspended, terminated), C pays after its suspension (service
    restored), D pays half on day 12, E falls due on day 5 and pays on day 26. Each day the
    dry run (tomorrow's plan) says beforehand exactly which steps the run then records,
    resolves and terminates; the simulator replaying the shipped policy finds the same
    steps on the same days for the same cases."""
    names = "ABCDE"
    customers = {n: create_customer(name=n) for n in names}
    for n, customer in customers.items():
        create_invoice(customer, amount_due="100.00", due_date=day(5 if n == "E" else 0))
    payments = {10: ("A", "0.00"), 12: ("D", "50.00"), 26: ("E", "0.00"),
                30: ("C", "0.00")}
    planned, recorded = set(), set()
    with override_dunning_settings(RENDER_PROCESSES=1):
        for n in range(1, 51):
            if n in payments:
                who, amount = payments[n]
                pay(customers[who], amount)
            dry = DunningPlan(day(n))
            plan = dry.build()
            result = run(n)
            assert (dry.result.executed, dry.result.resolved, dry.result.terminated,
                    dry.result.opened) == (result.executed, result.resolved,
                                           result.terminated, result.opened), n
            planned |= {(item.customer_id, day(n), item.step_key) for item in plan.items}
            recorded |= {
                (customer_id, day(n), key)
                for customer_id, key in CaseStep.objects.filter(executed_on=day(n))
                .values_list("case__customer_id", "step_key")
            }
    assert planned == recorded
    keys = {key for _c, _d, key in recorded}
    assert {"initial-notice", "suspension", "termination", PAYMENT_RECEIVED} <= keys
    ends = {"A": "resolved", "B": "terminated", "C": "resolved", "D": "terminated",
            "E": "resolved"}
    assert dict(Case.objects.values_list("customer_id", "status")) == {
        customers[n].pk: status for n, status in ends.items()}

    Recording.made = []
    monkeypatch.setattr(simulator, "Tally", Recording)
    report = simulator.simulate("standard", days=50, today=day(50))
    live, draft = Recording.made
    steps = set(CaseStep.objects.values_list("case_id", "executed_on", "step_key"))
    assert live.seen == steps
    assert draft.seen == steps
    assert report["draft"] == report["live"]


# -- "send now" has the same agency rule as the run ------------------------------------------
def test_send_now_sends_nothing_to_a_case_at_an_agency(db, run):
    """A case handed over to an agency gets nothing but a write-off step from the run;
    "send the next step now" used to send its next reminder anyway when that one was not
    due yet (it re-implemented the schedule without the agency rule)."""
    policy = Policy.objects.create(key="legacy", name="legacy", min_gap_days=3)
    for key, offset, action in [("first", 1, ""), ("handover", 10, "agency"),
                                ("last-call", 20, "")]:
        Step.objects.create(policy=policy, key=key, offset_days=offset, action=action)
        if not action:
            MessageTemplate.objects.create(policy=policy, step_key=key, language="en",
                                           subject=key, text_body="You owe us.")
    today = timezone.localdate()
    due = today - datetime.timedelta(days=11)
    with override_dunning_settings(DEFAULT_POLICY="legacy",
                                   AGENCIES={"inkasso": {"name": "Inkasso Nord"}},
                                   DEFAULT_AGENCY="inkasso"):
        ada = create_customer(name="Ada")
        create_invoice(ada, amount_due="80.00", due_date=due)
        run(due + datetime.timedelta(days=1))
        run(due + datetime.timedelta(days=10))
        case = Case.objects.get(customer=ada)
        assert case.agency == "inkasso"
        sent = send_next_step_now([case.pk])
    assert sent.refused == {case.pk: REFUSED_DONE}
    assert not CaseStep.objects.filter(case=case, step_key="last-call").exists()


# -- the payment-plan rule and the frequency-cap shortcut, moved into the rules ---------------
INSTALMENTS = [{"due": "2026-04-01", "amounts": {"EUR": "50.00"}},
               {"due": "2026-05-01", "amounts": {"EUR": "50.00"}}]


@pytest.mark.parametrize(("paid", "pending"), [
    ("0.00", 0), ("49.99", 0), ("50.00", 1), ("99.99", 1), ("100.00", None)])
def test_the_pending_instalment(paid, pending):
    from dunning.rules.plans import pending_instalment

    found = pending_instalment(INSTALMENTS, {"EUR": "100.00"}, {"EUR": Decimal(paid)})
    assert found is (None if pending is None else INSTALMENTS[pending])


@pytest.mark.parametrize(("as_of", "missed"), [
    (datetime.date(2026, 4, 4), False), (datetime.date(2026, 4, 5), True)])
def test_an_instalment_is_missed_after_its_grace_days(as_of, missed):
    from dunning.rules.plans import instalment_missed, pause_until

    assert pause_until(INSTALMENTS[0], 3) == datetime.date(2026, 4, 4)
    assert instalment_missed(INSTALMENTS[0], as_of, 3) is missed


def test_only_customers_with_history_or_two_messages_are_counted_against_caps():
    from dunning.rules.compliance import Candidate, split_uncounted

    at = datetime.datetime(2026, 3, 2, 9, tzinfo=datetime.timezone.utc)
    alone, twice_a, twice_b, known = (
        Candidate(customer=c, case=k, channel="email", at=at, tz="UTC")
        for c, k in (("1", 1), ("2", 2), ("2", 3), ("3", 4)))
    counted, free = split_uncounted([alone, twice_a, twice_b, known],
                                    {"3": [(at - datetime.timedelta(hours=30), "email")]})
    assert (counted, free) == ([twice_a, twice_b, known], [alone])


def test_the_dry_run_reports_the_hand_over_a_missing_agency_fails(db, run):
    """The run fails a hand-over step whose agency is not set up (the case goes to staff);
    the dry run and tomorrow's plan said nothing of it, so the run disagreed with them."""
    policy = Policy.objects.create(key="road-end", name="road-end", min_gap_days=3)
    for key, offset, action in [("first", 1, ""), ("handover", 10, "agency")]:
        Step.objects.create(policy=policy, key=key, offset_days=offset, action=action)
    MessageTemplate.objects.create(policy=policy, step_key="first", language="en",
                                   subject="first", text_body="You owe us.")
    with override_dunning_settings(DEFAULT_POLICY="road-end", AGENCIES={}):
        ada = create_customer(name="Ada")
        create_invoice(ada, due_date=day(0))
        run(1)
        dry = run(10, dry_run=True)
        plan = DunningPlan(day(10))
        items = plan.build().items
        real = run(10)
    assert real.failed == 1
    assert (dry.failed, [reason for _key, reason in dry.failures]) == (
        real.failed, [reason for _key, reason in real.failures])
    assert [(item.step_key, item.problem) for item in items] == [
        ("handover", real.failures[0][1])]
