"""Issue 14, part 4: the self-service page cannot be used to stall collection.

Measured before: six broken promises of EUR 1 stretched the 45-day schedule to 203 days;
disputing one EUR 1 invoice paused a EUR 9,000 debt indefinitely. A dispute now holds
only its invoice (and goes to staff after DISPUTE_ESCALATE_AFTER_DAYS); promises are
limited by PORTAL_PROMISE_MAX_BROKEN and PORTAL_PROMISE_MIN_SHARE."""

import datetime
import html
import zoneinfo
from decimal import Decimal

import pytest
from django.core.checks import run_checks
from django.utils import timezone

from dunning import checks
from dunning.engine import holds
from dunning.engine.schedule import (
    ALL_DISPUTED,
    CaseFacts,
    Kind,
    PolicySpec,
    StepSpec,
    decide,
    may_promise,
    minimum_promise,
    promise_broken,
)
from dunning.models import Case, CaseEvent, CaseStep, Dispute, PaymentAttempt
from dunning.payments.retries import open_balance
from dunning.portal import services as portal_services
from dunning.portal.tokens import make_token
from dunning.testing import PortalClient, override_dunning_settings

from .conftest import DAY0, day

ONE_DAY = datetime.timedelta(days=1)
BERLIN = zoneinfo.ZoneInfo("Europe/Berlin")
STANDARD_DAYS = 45  # the shipped policy terminates on day 45
GRACE = holds.PROMISE_GRACE_DAYS


@pytest.fixture
def client():
    return PortalClient()  # sends each form from the page loaded just before, as a browser


def page(response):
    return html.unescape(response.content.decode())


def url(customer):
    return f"/dunning/portal/{make_token(customer.pk)}/"


def steps(case):
    return list(CaseStep.objects.filter(case=case).order_by("executed_on", "pk"))


def kinds(case):
    return list(CaseEvent.objects.filter(case=case).values_list("kind", flat=True))


def at(time_machine, date):
    """Move the clock to 11:00 in Berlin on ``date`` (the page's "today")."""
    time_machine.move_to(datetime.datetime.combine(date, datetime.time(11), tzinfo=BERLIN))


# -- the pure rules ---------------------------------------------------------------------------
POLICY = PolicySpec(steps=(StepSpec("a", 1), StepSpec("b", 4)))


@pytest.mark.parametrize(("oldest_due", "disputed", "kind"), [
    (None, False, Kind.RESOLVE),  # nothing owed: resolved
    (None, True, Kind.WAIT),  # only disputed invoices left: waits, never resolved
    (DAY0, True, Kind.EXECUTE),  # undisputed debt left: dunned as before
    (DAY0, False, Kind.EXECUTE),
])
def test_a_case_whose_every_invoice_is_disputed_waits(oldest_due, disputed, kind):
    decision = decide(POLICY, CaseFacts(oldest_due=oldest_due, disputed=disputed), day(2))
    assert decision.kind is kind
    if kind is Kind.WAIT:
        assert decision.reason == ALL_DISPUTED and decision.next_check == day(3)


@pytest.mark.parametrize(("balance", "share", "least"), [
    ("9000.00", "0.25", "2250.00"),
    ("100.01", "0.25", "25.01"),  # rounded up to the cent
    ("0.02", "0.25", "0.01"),  # never less than a cent
    ("100.00", "0", "0"),  # no minimum
    ("100.00", "1", "100.00"),
    ("0", "0.5", "0"),
])
def test_the_least_promise_is_a_share_of_the_balance(balance, share, least):
    assert minimum_promise(Decimal(balance), Decimal(share)) == Decimal(least)


@pytest.mark.parametrize(("promised", "as_of", "broken"), [
    (None, day(10), False), (day(5), day(8), False), (day(5), day(9), True),
])
def test_a_promise_lapses_after_its_grace(promised, as_of, broken):
    assert promise_broken(promised, as_of, 3) is broken


def test_may_promise_until_the_limit():
    assert [may_promise(n, 2) for n in range(4)] == [True, True, False, False]


# -- the settings -------------------------------------------------------------------------------
@pytest.mark.parametrize(("key", "value", "error_id"), [
    ("PORTAL_PROMISE_MAX_BROKEN", 0, "dunning.E100"),
    ("PORTAL_PROMISE_MAX_BROKEN", "2", "dunning.E100"),
    ("PORTAL_PROMISE_MAX_BROKEN", True, "dunning.E100"),
    ("DISPUTE_ESCALATE_AFTER_DAYS", 0, "dunning.E100"),
    ("DISPUTE_ESCALATE_AFTER_DAYS", 10_000, "dunning.E100"),
    ("DISPUTE_ESCALATE_AFTER_DAYS", 7.5, "dunning.E100"),
    ("PORTAL_PROMISE_MIN_SHARE", 0.25, "dunning.E101"),  # a float: write "0.25"
    ("PORTAL_PROMISE_MIN_SHARE", "1.5", "dunning.E101"),
    ("PORTAL_PROMISE_MIN_SHARE", "-0.1", "dunning.E101"),
    ("PORTAL_PROMISE_MIN_SHARE", "a quarter", "dunning.E101"),
    ("PORTAL_PROMISE_MIN_SHARE", "NaN", "dunning.E101"),
    ("PORTAL_PROMISE_MIN_SHARE", None, "dunning.E101"),
])
def test_nonsense_in_the_stalling_settings_stops_the_site_at_check(key, value, error_id):
    with override_dunning_settings(**{key: value}):
        errors = checks.check_stalling_settings()
        assert [e.id for e in errors] == [error_id]
        assert key in errors[0].msg and errors[0].hint
        assert error_id in {e.id for e in run_checks(tags=["dunning"])}


@pytest.mark.parametrize(("key", "value"), [
    ("PORTAL_PROMISE_MAX_BROKEN", 1), ("DISPUTE_ESCALATE_AFTER_DAYS", 365),
    ("PORTAL_PROMISE_MIN_SHARE", "0"), ("PORTAL_PROMISE_MIN_SHARE", Decimal("1")),
    ("PORTAL_PROMISE_MIN_SHARE", 0),
])
def test_sane_stalling_settings_pass(key, value):
    with override_dunning_settings(**{key: value}):
        assert checks.check_stalling_settings() == []


def test_the_defaults_pass():
    assert checks.check_stalling_settings() == []


# -- disputes ------------------------------------------------------------------------------------
@pytest.fixture
def big_debt(make_customer, make_invoice):
    """EUR 9,000 overdue since DAY0: a EUR 1 invoice and a EUR 8,999 one."""
    customer = make_customer(name="Grace")
    small = make_invoice(customer, number="SMALL-1", amount_due="1.00", due_date=DAY0)
    big = make_invoice(customer, number="BIG-8999", amount_due="8999.00", due_date=DAY0)
    return customer, small, big


def test_disputing_one_euro_keeps_the_rest_of_a_9000_debt_on_schedule(
    big_debt, run, mailoutbox
):
    customer, small, big = big_debt
    run(1)
    case = Case.objects.get(customer=customer)
    assert sorted(i["number"] for i in steps(case)[0].invoices) == ["BIG-8999", "SMALL-1"]
    portal_services.dispute(case, "SMALL-1", "I never ordered this.")

    run(4)  # the gentle reminder is due on day 4: it still goes out

    case.refresh_from_db()
    assert case.paused_until is None
    reminder = steps(case)[-1]
    assert (reminder.step_key, reminder.executed_on) == ("gentle-reminder", day(4))
    # Only the undisputed invoice is listed and demanded.
    assert [i["number"] for i in reminder.invoices] == ["BIG-8999"]
    body = mailoutbox[-1].body
    assert "BIG-8999" in body and "SMALL-1" not in body
    # And the whole schedule runs on for the EUR 8,999.
    for n in range(5, STANDARD_DAYS + 1):
        run(n)
    case.refresh_from_db()
    assert case.last_step_key == "termination" and case.closed_on == day(STANDARD_DAYS)


def test_a_disputed_invoice_is_not_charged(big_debt, run):
    customer, small, big = big_debt
    run(1)
    case = Case.objects.get(customer=customer)
    assert open_balance(customer.pk, ["SMALL-1", "BIG-8999"]) == (
        Decimal("9000.00"), "EUR", ["SMALL-1", "BIG-8999"])
    portal_services.dispute(case, "BIG-8999", "Wrong amount.")
    assert open_balance(customer.pk, ["SMALL-1", "BIG-8999"]) == (
        Decimal("1.00"), "EUR", ["SMALL-1"])
    portfolio = portal_services.load_portfolio(portal_services.PortalAccess(str(customer.pk), 0))
    assert portal_services.payable(portfolio) == (Decimal("1.00"), "EUR", ["SMALL-1"])


def test_a_retry_of_disputed_invoices_waits_instead_of_charging(big_debt, run):
    from dunning.payments.retries import retry

    customer, small, big = big_debt
    run(1)
    case = Case.objects.get(customer=customer)
    portal_services.dispute(case, "SMALL-1", "no")
    portal_services.dispute(case, "BIG-8999", "no")
    now = timezone.now()
    previous = PaymentAttempt.objects.create(
        customer_id=customer.pk, case=case, invoices=["SMALL-1", "BIG-8999"],
        amount=Decimal("9000.00"), currency="EUR", method_id="pm_1", attempted_at=now,
        status=PaymentAttempt.Status.DECLINED, next_method_id="pm_1")
    summary = {"waiting": 0, "cancelled": 0}
    retry(None, previous, now, summary)
    previous.refresh_from_db()
    assert summary == {"waiting": 1, "cancelled": 0}
    assert previous.next_attempt_at == now + ONE_DAY
    assert PaymentAttempt.objects.count() == 1  # nothing charged, nothing given up


def test_an_open_dispute_goes_to_staff_after_the_setting(big_debt, run, admin_client):
    customer, small, big = big_debt
    run(1)
    case = Case.objects.get(customer=customer)
    # Every invoice disputed: nothing is left to demand, so the case waits, but it does
    # not wait forever.
    with override_dunning_settings(DISPUTE_ESCALATE_AFTER_DAYS=10):
        for number in ("SMALL-1", "BIG-8999"):
            dispute = portal_services.dispute(case, number, "no")
            Dispute.objects.filter(pk=dispute.pk).update(
                opened_at=datetime.datetime(2026, 3, 3, 18, 0, tzinfo=BERLIN))  # day 1
        run(10)  # 9 days open
        case.refresh_from_db()
        assert not case.needs_person and "escalated" not in kinds(case)
        assert len(steps(case)) == 1  # nothing demanded meanwhile

        run(11)  # 10 days open: to staff
        case.refresh_from_db()
        assert case.needs_person and case.status == Case.Status.OPEN
        escalated = CaseEvent.objects.filter(case=case, kind="escalated")
        assert sorted(e.data["invoice_number"] for e in escalated) == ["BIG-8999", "SMALL-1"]
        assert all(e.data["reason"] == "dispute" and e.run_id for e in escalated)
        assert "open since 2026-03-03" in escalated[0].message

        run(12)  # once only
        assert CaseEvent.objects.filter(case=case, kind="escalated").count() == 2
        assert len(steps(case)) == 1

    # The case list shows it under its filter.
    listed = admin_client.get("/admin/dunning/case/", {"dispute": "escalated"})
    assert list(listed.context["cl"].result_list) == [case]
    assert list(admin_client.get("/admin/dunning/case/", {"dispute": "open"})
                .context["cl"].result_list) == [case]


def test_resolving_the_dispute_demands_the_invoice_again(big_debt, run, admin_client):
    customer, small, big = big_debt
    run(1)
    case = Case.objects.get(customer=customer)
    portal_services.dispute(case, "SMALL-1", "no")
    run(4)
    admin_client.post("/admin/dunning/case/", {
        "action": "resolve_disputes", "_selected_action": [case.pk], "apply": "yes",
        "resolution": "Delivered, proof sent."})
    run(8)
    assert sorted(i["number"] for i in steps(case)[-1].invoices) == ["BIG-8999", "SMALL-1"]


def test_send_now_refuses_a_case_whose_every_invoice_is_disputed(big_debt, run, admin_client):
    customer, small, big = big_debt
    run(1)
    case = Case.objects.get(customer=customer)
    portal_services.dispute(case, "SMALL-1", "no")
    portal_services.dispute(case, "BIG-8999", "no")
    response = admin_client.post("/admin/dunning/case/", {
        "action": "send_now", "_selected_action": [case.pk]}, follow=True)
    assert "every open invoice is disputed" in page(response)
    assert len(steps(case)) == 1


# -- promises ------------------------------------------------------------------------------------
def promise_on_page(client, customer, date, amount):
    return client.post(url(customer), {"action": "promise", "date": date.isoformat(),
                                       "amount": amount})


def test_six_broken_one_euro_promises_cannot_stretch_the_schedule(
    overdue_customer, run, client, time_machine
):
    """The measurement of issue 14: a customer who promises EUR 1 by the latest date the
    page allows every time dunning resumes. Before: 6 promises stretched the 45-day
    schedule to 203 days. Now: PORTAL_PROMISE_MAX_BROKEN promises at most, then the
    page refuses and the case goes to staff; the schedule ends within policy length +
    PORTAL_PROMISE_MAX_BROKEN x (PORTAL_PROMISE_MAX_DAYS + grace)."""
    customer = overdue_customer(amount="4.00", name="Stall")  # EUR 1 is a quarter of it
    accepted, refused = [], []
    n = 1
    with override_dunning_settings(PORTAL_PROMISE_MAX_DAYS=30, PORTAL_PROMISE_MAX_BROKEN=2):
        while n <= 260:
            run(n)
            case = Case.objects.get(customer=customer)
            if not case.is_open:
                break
            today = day(n)
            if len(accepted) + len(refused) < 6 and (
                    case.paused_until is None or case.paused_until <= today):
                at(time_machine, today)
                response = promise_on_page(client, customer, today + 30 * ONE_DAY, "1.00")
                (accepted if response.status_code == 302 else refused).append(today)
            n += 1
    case = Case.objects.get(customer=customer)
    assert case.status == Case.Status.TERMINATED
    bound = STANDARD_DAYS + 2 * (30 + GRACE)
    assert (case.closed_on - DAY0).days <= bound  # was 203 days
    assert len(accepted) == 2 and refused  # the third attempt was refused
    assert case.broken_promises == 2 and case.needs_person
    broken = CaseEvent.objects.filter(case=case, kind="promise-broken")
    assert [e.data["broken"] for e in broken] == [1, 2]
    assert CaseEvent.objects.filter(case=case, kind="escalated",
                                    data__reason="broken-promises").count() == 1


def test_after_the_broken_promises_the_form_gives_way_to_an_explanation(
    case, client, time_machine
):
    today = timezone.localdate()
    with override_dunning_settings(PORTAL_PROMISE_MAX_BROKEN=1):
        assert promise_on_page(client, case.customer, today + ONE_DAY, "100.00").status_code == 302
        # The promised date and its grace pass unpaid: broken, counted by the run.
        holds.count_broken_promises(today + (2 + GRACE) * ONE_DAY)
        case.refresh_from_db()
        assert (case.broken_promises, case.needs_person) == (1, True)
        at(time_machine, today + (2 + GRACE) * ONE_DAY)
        shown = page(client.get(url(case.customer)))
        assert "We cannot accept another promise to pay here" in shown
        assert 'name="action" value="promise"' not in shown
        # A hostile POST of the form anyway is refused with the same words.
        response = promise_on_page(client, case.customer, today + 9 * ONE_DAY, "100.00")
        assert response.status_code == 400
        assert "We cannot accept another promise to pay here" in page(response)
    case.refresh_from_db()
    assert case.promised_on == today + ONE_DAY


def test_putting_a_promise_off_counts_as_broken(case, client):
    """Moving a standing promise to a later date before it lapses is no way around the
    limit: the put-off promise counts as broken."""
    today = timezone.localdate()
    with override_dunning_settings(PORTAL_PROMISE_MAX_BROKEN=2):
        assert promise_on_page(client, case.customer, today + 5 * ONE_DAY, "100").status_code == 302
        # Same date again, or earlier: nothing broken.
        assert promise_on_page(client, case.customer, today + 4 * ONE_DAY, "100").status_code == 302
        case.refresh_from_db()
        assert case.broken_promises == 0
        assert promise_on_page(client, case.customer, today + 20 * ONE_DAY, "100").status_code == 302
        case.refresh_from_db()
        assert case.broken_promises == 1 and not case.needs_person
        # A second put-off would reach the limit: refused, the promise stands.
        response = promise_on_page(client, case.customer, today + 30 * ONE_DAY, "100")
        assert response.status_code == 400
        expected = (today + 20 * ONE_DAY).strftime("%b %-d, %Y")
        assert f"You promised to pay by {expected}; that date cannot be moved later" in page(
            response)
    case.refresh_from_db()
    assert case.promised_on == today + 20 * ONE_DAY and case.broken_promises == 1


@pytest.mark.parametrize(("language", "least"), [("en", "€25.00"), ("de", "25,00\xa0€")])
def test_a_promise_below_the_share_is_refused_in_the_customers_language(
    run, overdue_customer, client, language, least
):
    customer = overdue_customer(amount="100.00", language=language)
    run(1)
    case = Case.objects.get(customer=customer)
    today = timezone.localdate()
    response = client.post(url(customer), {"action": "promise", "date": today.isoformat(),
                                            "amount": "1.00"})
    assert response.status_code == 400
    assert least in page(response)
    assert response.context["promise_form"].errors["amount"]
    case.refresh_from_db()
    assert case.promised_on is None and "promise" not in kinds(case)
    # A quarter is enough.
    assert promise_on_page(client, customer, today, "25.00").status_code == 302


def test_the_share_is_of_what_is_demanded_not_of_disputed_invoices(big_debt, run, client):
    customer, small, big = big_debt
    run(1)
    case = Case.objects.get(customer=customer)
    portal_services.dispute(case, "BIG-8999", "Wrong amount.")
    # EUR 1 is all that is demanded now: a quarter of it will do.
    assert promise_on_page(client, customer, timezone.localdate(), "0.25").status_code == 302


def test_staff_may_still_record_a_promise_after_the_limit(case, admin_client):
    """The limits are the self-service page's; staff decide (docs/portal.md). The broken
    promises are still counted."""
    today = timezone.localdate()
    with override_dunning_settings(PORTAL_PROMISE_MAX_BROKEN=1):
        Case.objects.filter(pk=case.pk).update(broken_promises=1, promise_broken=True,
                                               promised_on=today - 10 * ONE_DAY)
        response = admin_client.post("/admin/dunning/case/", {
            "action": "record_promise", "_selected_action": [case.pk], "apply": "yes",
            "date": (today + ONE_DAY).isoformat(), "amount": "1.00"}, follow=True)
        assert response.status_code == 200
    case.refresh_from_db()
    assert case.promised_on == today + ONE_DAY and case.promised_amount == Decimal("1.00")
    assert case.broken_promises == 1 and not case.promise_broken


def test_the_simulator_replays_a_dispute_as_a_hold_of_its_invoice(big_debt, run, time_machine):
    """Sibling: the simulator replayed a dispute as a pause of the whole case until
    9999-12-31; with the live rule it would have shown no step after the dispute."""
    from collections import Counter

    from dunning.engine.simulate import simulate

    customer, small, big = big_debt
    with override_dunning_settings(RENDER_PROCESSES=1, DISPUTE_ESCALATE_AFTER_DAYS=365):
        for n in range(1, 50):
            at(time_machine, day(n))
            run(n)
            if n == 2:
                case = Case.objects.get(customer=customer)
                portal_services.dispute(case, "SMALL-1", "no")
    recorded = Counter(CaseStep.objects.values_list("step_key", flat=True))
    assert recorded["termination"] == 1
    # The disputed invoice was closed with the terminated case: no second case dunns it
    # without its dispute.
    assert Case.objects.count() == 1 and CaseStep.objects.count() == 7
    result = simulate("standard", days=60, today=day(49))
    assert result["draft"]["steps"] == dict(recorded)
    assert result["draft"] == result["live"]
