"""Policy rules: which policy a new case gets (amount band per currency, the customer's
segment, payment history, a risk score), evaluated in priority order when cases open."""

from decimal import Decimal

import pytest
from django.core.exceptions import ValidationError

from dunning.engine.plan import build_plan
from dunning.engine.segments import Facts, choose
from dunning.models import Case, CaseEvent, Policy, PolicyRule, Step
from dunning.testing import override_dunning_settings

from .conftest import day


def rule(**fields):
    fields.setdefault("name", "rule")
    fields.setdefault("policy", Policy(key="p", name="P"))
    return PolicyRule(**fields)


@pytest.mark.parametrize("conditions, facts, matched", [
    ({}, Facts({"EUR": Decimal("5")}), True),
    ({"currency": "EUR", "min_amount": Decimal("1000")}, Facts({"EUR": Decimal("999.99")}), False),
    ({"currency": "EUR", "min_amount": Decimal("1000")}, Facts({"EUR": Decimal("1000")}), True),
    ({"currency": "EUR", "max_amount": Decimal("50")}, Facts({"EUR": Decimal("50")}), False),
    ({"currency": "USD", "min_amount": Decimal("1")}, Facts({"EUR": Decimal("5000")}), False),
    ({"segments": ["vip"]}, Facts({}, segment="vip"), True),
    ({"segments": ["vip"]}, Facts({}, segment="retail"), False),
    ({"history": "first-time"}, Facts({}, earlier_cases=0), True),
    ({"history": "first-time"}, Facts({}, earlier_cases=1), False),
    ({"history": "repeat"}, Facts({}, earlier_cases=1), True),
    ({"history": "chronic"}, Facts({}, earlier_cases=2), False),
    ({"history": "chronic"}, Facts({}, earlier_cases=3), True),
    ({"min_risk": Decimal("70")}, Facts({}, risk=None), False),
    ({"min_risk": Decimal("70")}, Facts({}, risk=Decimal("70")), True),
    ({"max_risk": Decimal("30")}, Facts({}, risk=Decimal("30")), False),
])
def test_a_rule_matches_when_every_condition_holds(conditions, facts, matched):
    assert (choose([rule(**conditions)], facts) is not None) is matched


def test_the_first_matching_rule_by_priority_wins():
    rules = [rule(name="vip", segments=["vip"]), rule(name="big", currency="EUR",
                                                      min_amount=Decimal("100"))]
    assert choose(rules, Facts({"EUR": Decimal("500")}, segment="vip")).name == "vip"
    assert choose(rules, Facts({"EUR": Decimal("500")})).name == "big"
    assert choose(rules, Facts({"EUR": Decimal("5")})) is None


@pytest.mark.parametrize("fields, field", [
    ({"min_amount": Decimal("5")}, "currency"),
    ({"currency": "EURO"}, "currency"),
    ({"currency": "EUR", "min_amount": Decimal("9"), "max_amount": Decimal("9")}, "max_amount"),
    ({"segments": "vip"}, "segments"),
])
def test_bad_rules_are_refused_with_their_field(db, fields, field):
    with pytest.raises(ValidationError) as caught:
        rule(policy=Policy.objects.get(key="standard"), **fields).full_clean()
    assert field in caught.value.message_dict


@pytest.fixture
def personal(db, boss):
    """A 'personal' policy (a call first) for big or VIP debts, assigned to a collector."""
    policy = Policy.objects.create(key="personal", name="Personal")
    Step.objects.create(policy=policy, key="call-first", offset_days=1, channel="call")
    PolicyRule.objects.create(name="Big debts", priority=10, policy=policy, currency="EUR",
                              min_amount=Decimal("5000"), assign_to=boss)
    return policy


def test_cases_open_on_the_policy_of_their_rule(overdue_customer, run, personal, boss):
    big = overdue_customer(name="Big", amount="7500.00")
    small = overdue_customer(name="Small", amount="20.00")
    usd = overdue_customer(name="Dollar", amount="9000.00", currency="USD")
    run(1)
    cases = {c.customer_id: c for c in Case.objects.all()}
    assert cases[big.pk].policy == personal
    assert cases[big.pk].assigned_to == boss and cases[big.pk].needs_person
    assert cases[small.pk].policy.key == cases[usd.pk].policy.key == "standard"
    event = CaseEvent.objects.get(case=cases[big.pk], kind=CaseEvent.Kind.POLICY_RULE)
    assert event.message == "Policy personal chosen by the rule \u201cBig debts\u201d."
    # The personal path starts with a call (the call queue), not an automated email.
    assert list(cases[big.pk].steps.values_list("step_key", "channel")) == [("call-first",
                                                                             "call")]


def test_segments_come_from_the_host_s_field_mapping(overdue_customer, run, personal):
    PolicyRule.objects.create(name="VIP", priority=5, policy=personal, segments=["vip"])
    vip = overdue_customer(name="VIP", email="vip@example.com")
    with override_dunning_settings(CUSTOMER_FIELDS={"segment": "email"}):  # a stand-in field
        PolicyRule.objects.filter(name="VIP").update(segments=["vip@example.com"])
        run(1)
    assert Case.objects.get(customer=vip).policy == personal


def test_chronic_payers_and_a_risk_hook(overdue_customer, run, make_invoice):
    strict = Policy.objects.create(key="strict", name="Strict")
    Step.objects.create(policy=strict, key="firm", offset_days=1)
    PolicyRule.objects.create(name="Chronic", priority=1, policy=strict, history="repeat")
    ada = overdue_customer(name="Ada")
    run(1)
    assert Case.objects.get(customer=ada).policy.key == "standard"  # first time late
    ada.invoices.update(amount_due=0)
    run(2)  # resolved
    make_invoice(ada, amount_due="50.00", due_date=day(10))
    run(11)
    assert Case.objects.get(customer=ada, status="open").policy == strict


def risky(customer, balances):
    return 90 if customer.name.startswith("Risky") else 10


def test_the_risk_score_hook(overdue_customer, run):
    strict = Policy.objects.create(key="strict", name="Strict")
    Step.objects.create(policy=strict, key="firm", offset_days=1)
    PolicyRule.objects.create(name="Risky", policy=strict, min_risk=Decimal("80"))
    risky_one, safe = overdue_customer(name="Risky Ltd"), overdue_customer(name="Safe Ltd")
    with override_dunning_settings(RISK_SCORE="tests.test_segments.risky"):
        run(1)
    assert Case.objects.get(customer=risky_one).policy == strict
    assert Case.objects.get(customer=safe).policy.key == "standard"


def test_the_plan_shows_the_rule_s_policy(overdue_customer, personal):
    overdue_customer(name="Big", amount="7500.00")
    overdue_customer(name="Small", amount="20.00")
    planned = {i.label: i.step_key for i in build_plan(day(1)).items}
    assert planned == {"Big": "call-first", "Small": "initial-notice"}


def test_rules_cost_a_constant_number_of_queries(overdue_customer, run, personal,
                                                 django_assert_max_num_queries):
    from dunning.engine.segments import assign_new_cases

    for n in range(30):
        overdue_customer(name=f"C{n}", amount="9000.00" if n % 2 else "10.00")
    result = run(1, dry_run=False)
    assert result.opened == 30
    assert Case.objects.filter(policy=personal).count() == 15
    # Re-applying to the same run's cases: reads and one UPDATE per group, whatever the count.
    from dunning.engine.run import DunningRun

    again = DunningRun(day(1))
    again.load_policies()
    again.run = Case.objects.first().opened_in
    with django_assert_max_num_queries(8):
        assert assign_new_cases(again) == 15
