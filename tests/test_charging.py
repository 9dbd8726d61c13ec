"""Reminder fees and late-payment interest charged by the run (dunning.charging): recorded
on the case, listed in the message, noted on the timeline, handed to the host once."""

import datetime
from decimal import Decimal
from zoneinfo import ZoneInfo

import pytest
from django.core.exceptions import ValidationError
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from dunning import fees, signals
from dunning.engine.outbox import drain
from dunning.engine.run import run_dunning
from dunning.models import BalanceObservation, Case, CaseCharge, CaseEvent, MessageTemplate, Policy
from dunning.testing import create_customer, create_invoice, override_dunning_settings

from .conftest import DAY0, day
from .conftest import edit_standard as standard

BERLIN = ZoneInfo("Europe/Berlin")
CHARGES_BLOCK = (
    "{% for c in charges %}CHARGE {{ c.label }}{% if c.invoice %} {{ c.invoice }}{% endif %}"
    ": {{ c.amount }}{% if c.period %} ({{ c.period }}){% endif %}\n{% endfor %}"
    "{% if charges %}TOTAL CHARGES {{ charges_total }}{% endif %}"
)


@pytest.fixture
def listed(db):
    """Every email template of the standard policy lists the charges."""
    for template in MessageTemplate.objects.filter(policy__key="standard", channel="email"):
        template.text_body = template.text_body + "\n" + CHARGES_BLOCK
        template.save()


@pytest.fixture
def handed(db):
    received = []

    def receiver(sender, case, customer, step_key, charges, **kwargs):
        received.append((case.pk, customer.pk, step_key, charges))

    signals.fees_charged.connect(receiver)
    yield received
    signals.fees_charged.disconnect(receiver)


def charge_lines(message):
    return [line for line in message.body.splitlines() if line.startswith(("CHARGE", "TOTAL"))]


def test_the_first_reminder_is_free_and_each_later_one_costs_the_fee(
        overdue_customer, mailoutbox, listed, handed):
    standard(fee_rule={"fixed": {"EUR": "5.00"}})
    ada = overdue_customer(name="Ada", amount="100.00")
    run_dunning(day(1))
    assert charge_lines(mailoutbox[0]) == []
    run_dunning(day(4))
    assert charge_lines(mailoutbox[1]) == ["CHARGE Reminder fee: €5.00", "TOTAL CHARGES €5.00"]
    case = Case.objects.get(customer=ada)
    [fee] = CaseCharge.objects.filter(case=case)
    assert (fee.kind, fee.step_key, fee.amount, fee.currency, fee.invoice_number) == (
        "fee", "gentle-reminder", Decimal("5.00"), "EUR", "")
    [(case_pk, customer_pk, step_key, charges)] = handed
    assert (case_pk, customer_pk, step_key) == (case.pk, ada.pk, "gentle-reminder")
    assert [(c["kind"], c["amount"], c["currency"]) for c in charges] == [("fee", "5.00", "EUR")]
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.CHARGED)
    assert "Reminder fee" in event.message and "5.00" in event.message
    assert event.data["step_key"] == "gentle-reminder"
    run_dunning(day(4))  # the same day again: nothing new
    assert CaseCharge.objects.count() == 1 and len(handed) == 1


def test_a_percentage_fee_is_rounded_per_currency_and_capped(overdue_customer, mailoutbox,
                                                             listed):
    standard(fee_rule={"percent": "1.5", "maximum": {"JPY": "900"}})
    overdue_customer(name="Yen", amount="70001", currency="JPY")
    overdue_customer(name="Euro", amount="10.50", currency="EUR", email="euro@example.com")
    run_dunning(day(1))
    run_dunning(day(4))
    fees_by_currency = dict(CaseCharge.objects.values_list("currency", "amount"))
    # 1.5 % of 70,001 JPY = 1,050.015, capped at 900; of 10.50 EUR = 0.1575 -> 0.16.
    assert fees_by_currency == {"JPY": Decimal("900"), "EUR": Decimal("0.16")}


def test_a_step_marked_free_of_charge_costs_nothing(overdue_customer, listed):
    policy = standard(fee_rule={"fixed": {"EUR": "5.00"}})
    policy.steps.filter(key="gentle-reminder").update(free_of_charge=True)
    overdue_customer(name="Ada")
    run_dunning(day(1))
    run_dunning(day(4))
    run_dunning(day(8))
    assert list(CaseCharge.objects.values_list("step_key", "amount")) == [
        ("formal-notice", Decimal("5.00"))]


def test_interest_after_a_partial_payment_is_neither_lost_nor_doubled(
        make_customer, make_invoice, mailoutbox, listed, handed):
    """EUR 1,000 due DAY0 at 8 %; 600 paid before the run of day 8: the runs charge
    exactly the interest of the whole history, as dunning.fees computes it."""
    standard(interest_rule={"kind": "fixed", "rate": "8"})
    ada = make_customer(name="Ada", email="ada@example.com")
    invoice = make_invoice(ada, number="INV-1", amount_due="1000.00", currency="EUR", due_date=DAY0)
    run_dunning(day(1))
    run_dunning(day(4))
    type(invoice).objects.filter(pk=invoice.pk).update(amount_due=Decimal("400.00"))
    run_dunning(day(8))
    run_dunning(day(14))
    history = [(DAY0, Decimal(1000)), (day(8), Decimal(400))]
    rule = fees.InterestRule(kind="fixed", rate="8")
    expected = fees.accrued_interest(history, rule, day(14), False, currency="EUR")
    charged = CaseCharge.objects.filter(kind="interest")
    assert sum(c.amount for c in charged) == expected
    # 1 day, 3 more (on 1,000), then 4 more on 1,000 (the payment counts from the run
    # that saw it) and 6 on 400: recomputed each time, only the difference charged.
    assert [c.amount for c in charged] == [
        fees.accrued_interest(history, rule, day(n), False, currency="EUR")
        - fees.accrued_interest(history, rule, day(p), False, currency="EUR")
        for p, n in ((0, 1), (1, 4), (4, 8), (8, 14))
    ]
    assert list(BalanceObservation.objects.values_list("since", "balance")) == history
    # The interest line names the invoice and its period.
    line = charge_lines(mailoutbox[-1])[0]
    assert line.startswith("CHARGE Late-payment interest INV-1: €")
    assert "(Mar 11, 2026 – Mar 16, 2026)" in line
    # A second run on the same day charges nothing more.
    run_dunning(day(14))
    assert CaseCharge.objects.filter(kind="interest").count() == 4


def test_statutory_interest_and_the_compensation_once_per_invoice_for_businesses(
        make_customer, make_invoice, listed, handed):
    standard(interest_rule={"kind": "de-bgb-288"}, business_debtors=True)
    firm = make_customer(name="Firm GmbH", email="firm@example.com")
    make_invoice(firm, number="A", amount_due="10000.00", currency="EUR", due_date=DAY0)
    make_invoice(firm, number="B", amount_due="500.00", currency="EUR", due_date=DAY0)
    run_dunning(day(1))
    run_dunning(day(4))
    compensations = CaseCharge.objects.filter(kind="compensation")
    assert sorted(compensations.values_list("invoice_number", "amount")) == [
        ("A", Decimal("40.00")), ("B", Decimal("40.00"))]
    assert compensations.filter(step_key="initial-notice").count() == 2
    # Base rate 1.27 % + 9 points in March 2026; day 1 .. day 4 on 10,000.
    interest_a = CaseCharge.objects.filter(kind="interest", invoice_number="A")
    assert sum(c.amount for c in interest_a) == fees.round_money(
        Decimal(10000) * Decimal("10.27") / 100 * 4 / 365, "EUR")
    assert {c.rate for c in interest_a} == {Decimal("10.27")}


def test_consumers_owe_no_interest_under_the_eu_directive(overdue_customer):
    standard(interest_rule={"kind": "eu-directive"})
    overdue_customer(name="Ada")
    run_dunning(day(1))
    run_dunning(day(4))
    assert not CaseCharge.objects.exists()


def test_a_customer_who_opted_out_is_charged_nothing_for_the_skipped_reminder(
        overdue_customer, mailoutbox):
    from dunning.models import Consent
    from dunning.models.consent import channel_topic

    standard(fee_rule={"fixed": {"EUR": "5.00"}, "first_free": False})
    ada = overdue_customer(name="Ada")
    Consent.objects.create(customer_key=str(ada.pk), topic=channel_topic("email"),
                           granted=False, source="portal")
    run_dunning(day(1))
    assert mailoutbox == [] and not CaseCharge.objects.exists()


def test_a_message_sent_later_by_the_outbox_lists_what_its_step_charged(
        overdue_customer, mailoutbox, listed, monkeypatch):
    standard(fee_rule={"fixed": {"EUR": "5.00"}, "first_free": False},
             quiet_hours={"email": ["09:00", "18:00"]})
    overdue_customer(name="Ada", timezone="Europe/Berlin")
    at = datetime.datetime.combine(day(1), datetime.time(7), tzinfo=BERLIN)
    run_dunning(day(1), now=at)
    assert mailoutbox == [] and CaseCharge.objects.count() == 1
    monkeypatch.setattr(timezone, "now", lambda: at + datetime.timedelta(hours=3))
    drain()
    assert charge_lines(mailoutbox[0]) == ["CHARGE Reminder fee: €5.00", "TOTAL CHARGES €5.00"]


def test_charges_are_listed_in_the_customer_s_language(overdue_customer, mailoutbox, listed):
    standard(fee_rule={"fixed": {"EUR": "5.00"}, "first_free": False})
    overdue_customer(name="Ada", language="de")
    run_dunning(day(1))
    assert charge_lines(mailoutbox[0]) == ["CHARGE Mahngebühr: 5,00\xa0€",
                                           "TOTAL CHARGES 5,00\xa0€"]


def test_the_host_ledger_gives_the_real_payment_date(make_customer, make_invoice):
    ledger_calls = []

    def ledger(invoice_pks):
        ledger_calls.append(sorted(invoice_pks))
        return {pk: [(DAY0, Decimal(1000)), (day(2), Decimal(400))] for pk in invoice_pks}

    standard(interest_rule={"kind": "fixed", "rate": "8"})
    ada = make_customer(name="Ada", email="ada@example.com")
    invoice = make_invoice(ada, number="INV-1", amount_due="400.00", currency="EUR",
                           due_date=DAY0)
    import tests.test_charging as here

    here.LEDGER = ledger
    with override_dunning_settings(BALANCE_HISTORY="tests.test_charging.LEDGER"):
        run_dunning(day(4))
    history = [(DAY0, Decimal(1000)), (day(2), Decimal(400))]
    [charge] = CaseCharge.objects.filter(kind="interest")
    assert charge.amount == fees.accrued_interest(
        history, fees.InterestRule(kind="fixed", rate="8"), day(4), False, currency="EUR")
    assert ledger_calls == [[invoice.pk]] and not BalanceObservation.objects.exists()


LEDGER = None


def test_a_policy_without_rules_charges_nothing_and_records_no_balances(overdue_customer):
    overdue_customer(name="Ada")
    run_dunning(day(1))
    run_dunning(day(4))
    assert not CaseCharge.objects.exists() and not BalanceObservation.objects.exists()


def test_bad_rules_are_refused_with_the_entry_named(db):
    policy = Policy.objects.get(key="standard")
    policy.fee_rule = {"fixed": {"EUR": "five"}}
    policy.interest_rule = {"kind": "moon-law"}
    with pytest.raises(ValidationError) as caught:
        policy.full_clean()
    errors = caught.value.message_dict
    assert "fixed" in errors["fee_rule"][0] and "moon-law" in errors["interest_rule"][0]


def test_a_bad_rule_saved_around_the_admin_charges_nothing_and_the_run_goes_on(
        overdue_customer, mailoutbox, caplog):
    Policy.objects.filter(key="standard").update(fee_rule={"fixed": "lots"})
    overdue_customer(name="Ada")
    result = run_dunning(day(1))
    assert result.executed == {"initial-notice": 1} and len(mailoutbox) == 1
    assert not CaseCharge.objects.exists()
    assert "bad fee or interest rule" in caplog.text


def test_charging_costs_a_constant_number_of_queries_per_batch(db):
    standard(fee_rule={"fixed": {"EUR": "5.00"}}, interest_rule={"kind": "fixed", "rate": "8"})

    def customers(n, start):
        for i in range(start, start + n):
            c = create_customer(name=f"C{i}", email=f"c{i}@example.com")
            create_invoice(c, number=f"I{i}", amount_due="100.00", currency="EUR", due_date=DAY0)

    def queries(as_of):
        with CaptureQueriesContext(connection) as ctx:
            run_dunning(as_of, batch_size=1000)
        return len(ctx.captured_queries)

    customers(3, 0)
    run_dunning(day(1))
    few = queries(day(4))
    Case.objects.all().delete()
    customers(30, 100)
    run_dunning(day(1))
    many = queries(day(4))
    assert CaseCharge.objects.filter(kind="fee").count() == 33
    assert many == few


def test_a_stale_statutory_rate_table_is_reported_and_a_current_one_is_not(db, caplog):
    from django.core.management import call_command
    from django.core.management.base import SystemCheckError

    from dunning.checks import check_interest_rates, check_interest_rates_current

    standard(interest_rule={"kind": "de-bgb-288"})
    with override_dunning_settings(INTEREST_RATES={"de-bgb-288": {"2026-01-01": "1.27"}}):
        [warning] = [w for w in check_interest_rates_current(databases=["default"])
                     if w.id == "dunning.W042"]
        assert "'standard'" in warning.msg and "2026-01-01" in warning.msg
        run_dunning(datetime.date(2026, 7, 2))
        assert "the de-bgb-288 rate table ends on 2026-01-01" in caplog.text
    with override_dunning_settings(INTEREST_RATES={"de-bgb-288": {
            "2026-01-01": "1.27", "2026-07-01": "1.27", "2027-01-01": "1.27",
            "2027-07-01": "1.27"}}):
        assert check_interest_rates_current(databases=["default"]) == []
    with override_dunning_settings(INTEREST_RATES={"de-bgb-288": {"soon": "1"}, "fixed": {}}):
        assert [e.id for e in check_interest_rates()] == ["dunning.E041", "dunning.E041"]
        with pytest.raises(SystemCheckError):
            call_command("check")


def test_the_rate_table_setting_replaces_the_shipped_one(make_customer, make_invoice):
    standard(interest_rule={"kind": "de-bgb-288"}, business_debtors=True)
    firm = make_customer(name="Firm", email="firm@example.com")
    make_invoice(firm, number="A", amount_due="36500.00", currency="EUR", due_date=DAY0)
    with override_dunning_settings(INTEREST_RATES={"de-bgb-288": {"2026-01-01": "1.00"}}):
        run_dunning(day(1))
    [interest] = CaseCharge.objects.filter(kind="interest")
    assert (interest.rate, interest.amount) == (Decimal("10.00"), Decimal("10.00"))


def test_staff_see_the_charges_on_the_case_and_in_the_api(overdue_customer, admin_client):
    standard(fee_rule={"fixed": {"EUR": "5.00"}, "first_free": False})
    ada = overdue_customer(name="Ada")
    run_dunning(day(1))
    case = Case.objects.get(customer=ada)
    page = admin_client.get(f"/admin/dunning/case/{case.pk}/change/").content.decode()
    assert "Reminder fee" in page and "initial-notice" in page
    detail = admin_client.get(f"/dunning/api/v1/cases/{case.pk}/").json()
    assert [(c["kind"], c["amount"], c["currency"], c["step_key"]) for c in detail["charges"]] == [
        ("fee", "5.00", "EUR", "initial-notice")]


def test_the_policy_form_and_the_api_refuse_a_bad_rule(admin_client):
    policy = Policy.objects.get(key="standard")
    response = admin_client.patch(f"/dunning/api/v1/policies/{policy.pk}/",
                                  {"interest_rule": {"kind": "fixed"}},
                                  content_type="application/json")
    assert response.status_code == 400
    assert "rate" in str(response.json()["interest_rule"])
    response = admin_client.patch(f"/dunning/api/v1/policies/{policy.pk}/",
                                  {"fee_rule": {"fixed": {"EUR": "2.50"}}},
                                  content_type="application/json")
    assert response.status_code == 200 and response.json()["fee_rule"] == {"fixed": {"EUR": "2.50"}}


def test_a_step_can_have_a_fee_of_its_own(overdue_customer, listed):
    policy = standard(fee_rule={"fixed": {"EUR": "5.00"}})
    policy.steps.filter(key="formal-notice").update(fee_rule={"fixed": {"EUR": "12.50"}})
    # The first reminder with a rule of its own that charges from the first reminder on.
    policy.steps.filter(key="initial-notice").update(
        fee_rule={"fixed": {"EUR": "1.00"}, "first_free": False})
    overdue_customer(name="Ada")
    for n in (1, 4, 8):
        run_dunning(day(n))
    assert list(CaseCharge.objects.order_by("pk").values_list("step_key", "amount")) == [
        ("initial-notice", Decimal("1.00")), ("gentle-reminder", Decimal("5.00")),
        ("formal-notice", Decimal("12.50"))]


def test_a_bad_step_fee_is_refused(db):
    step = Policy.objects.get(key="standard").steps.get(key="formal-notice")
    step.fee_rule = {"fixed": {"EUR": "ten"}}
    with pytest.raises(ValidationError) as caught:
        step.full_clean()
    assert "fixed" in caught.value.message_dict["fee_rule"][0]
