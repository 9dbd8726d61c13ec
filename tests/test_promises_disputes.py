"""Promises to pay and disputes on the collections workbench: the admin actions, their
timeline events with the acting user, the 'Broken promise' filter, the dispute inline and
their effect on the run."""

import datetime
import html
from decimal import Decimal

import pytest
from django.utils import timezone

from dunning.admin.workbench import PROMISE_GRACE_DAYS
from dunning.models import Case, CaseEvent, CaseStep, Dispute, Invoice

CHANGELIST_URL = "/admin/dunning/case/"
ONE_DAY = datetime.timedelta(days=1)


def page(response):
    return html.unescape(response.content.decode())


def act(client, action, cases, **data):
    payload = {"action": action, "_selected_action": [c.pk for c in cases], **data}
    if data:
        payload["apply"] = "yes"
    return client.post(CHANGELIST_URL, payload, follow=True)


def step_keys(case):
    return list(CaseStep.objects.filter(case=case).values_list("step_key", flat=True))


def events(case, kind):
    return list(CaseEvent.objects.filter(case=case, kind=kind))


def broken_promises(client):
    response = client.get(CHANGELIST_URL, {"broken_promise": "yes"})
    assert response.status_code == 200
    return list(response.context["cl"].result_list)


@pytest.fixture
def today():
    return timezone.localdate()


# -- promises to pay ------------------------------------------------------------------------
def test_a_broken_promise_pauses_then_dunning_resumes_by_itself(
    admin_client, boss, case, run, today, mailoutbox, monkeypatch
):
    assert step_keys(case) == ["initial-notice"]
    response = act(admin_client, "record_promise", [case])
    assert "Record a promise to pay" in page(response)

    response = act(admin_client, "record_promise", [case], date=today.isoformat(),
                   amount="100.00")

    end = today + datetime.timedelta(days=PROMISE_GRACE_DAYS)
    case.refresh_from_db()
    assert (case.promised_on, case.promised_amount) == (today, Decimal("100.00"))
    assert case.paused_until == end and case.next_due_on == end
    [event] = events(case, "promise")
    assert event.actor == boss
    assert event.data == {"date": today.isoformat(), "amount": "100.00"}
    assert f"Promise to pay 100.00 by {today.isoformat()} recorded on {case}." in page(response)
    # Not broken yet: the promised date has not passed.
    assert broken_promises(admin_client) == []

    # Nothing during the promise and its grace days, though the gentle reminder is long due.
    day = today
    while day < end:
        run(day)
        day += ONE_DAY
    assert step_keys(case) == ["initial-notice"] and len(mailoutbox) == 1

    # Once the grace after the promised date has passed, the unpaid case shows as a broken
    # promise (as the dashboard counts it), not before.
    monkeypatch.setattr(timezone, "localdate", lambda *a, **k: end)
    assert broken_promises(admin_client) == []
    monkeypatch.setattr(timezone, "localdate", lambda *a, **k: end + ONE_DAY)
    assert broken_promises(admin_client) == [case]
    monkeypatch.undo()

    run(end)
    assert step_keys(case) == ["initial-notice", "gentle-reminder"]
    assert "gentle-reminder" in mailoutbox[-1].tags


def test_paying_before_the_promised_date_resolves_the_case_with_a_thank_you(
    admin_client, case, run, today, mailoutbox
):
    promised = today + datetime.timedelta(days=5)
    act(admin_client, "record_promise", [case], date=promised.isoformat(), amount="100.00")
    Invoice.objects.filter(customer=case.customer).update(amount_due=Decimal("0.00"))

    run(today + ONE_DAY)

    case.refresh_from_db()
    assert case.status == Case.Status.RESOLVED
    assert step_keys(case) == ["initial-notice", "payment-received"]
    assert [m for m in mailoutbox if "payment-received" in m.tags]
    assert len(mailoutbox) == 2
    assert broken_promises(admin_client) == []


def test_a_promise_in_the_past_or_without_an_amount_is_refused(admin_client, case, today):
    response = act(admin_client, "record_promise", [case],
                   date=(today - ONE_DAY).isoformat(), amount="50")
    assert "The promised date must be today or later." in page(response)
    response = act(admin_client, "record_promise", [case], date=today.isoformat(), amount="0")
    assert "The promised amount must be greater than zero." in page(response)
    case.refresh_from_db()
    assert case.promised_on is None and case.paused_until is None
    assert not events(case, "promise")


# -- disputes -------------------------------------------------------------------------------
def test_a_dispute_of_the_only_invoice_holds_the_case_until_it_is_resolved(
    admin_client, boss, case, run, mailoutbox, settings
):
    settings.DUNNING = {"DISPUTE_ESCALATE_AFTER_DAYS": 365}  # not the subject here
    number = Invoice.objects.get(customer=case.customer).number
    response = act(admin_client, "open_dispute", [case])
    assert "Open a dispute" in page(response)

    response = act(admin_client, "open_dispute", [case], invoice_number=number,
                   reason="Goods never arrived")
    case.refresh_from_db()
    # The invoice is held, not the case: no pause until 9999 any more.
    assert case.paused_until is None
    [dispute] = Dispute.objects.filter(case=case)
    assert (dispute.invoice_number, dispute.reason, dispute.opened_by) == (
        number, "Goods never arrived", boss)
    assert dispute.resolved_at is None
    [event] = events(case, "dispute")
    assert (event.message, event.actor, event.data["invoice_number"]) == (
        "Goods never arrived", boss, number)
    assert (f"Dispute about {number} opened on {case}; that invoice is not demanded until "
            "the dispute is resolved.") in page(response)

    # The dispute shows on the case page.
    change = admin_client.get(f"/admin/dunning/case/{case.pk}/change/")
    assert number in page(change) and "Goods never arrived" in page(change)

    # Its only invoice is disputed: nothing is left to demand, and the case is not
    # resolved either.
    for n in range(2, 40):
        run(n)
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    assert step_keys(case) == ["initial-notice"] and len(mailoutbox) == 1

    act(admin_client, "resolve_disputes", [case], resolution="Credit note issued")
    case.refresh_from_db()
    dispute.refresh_from_db()
    assert case.paused_until is None
    assert dispute.resolved_at is not None and dispute.resolution == "Credit note issued"
    [event] = events(case, "dispute-resolved")
    assert (event.message, event.actor) == ("Credit note issued", boss)

    run(40)
    assert step_keys(case) == ["initial-notice", "gentle-reminder"]
    assert len(mailoutbox) == 2


def test_resolving_a_case_without_an_open_dispute_changes_nothing(admin_client, case):
    response = act(admin_client, "resolve_disputes", [case], resolution="n/a")
    assert f"{case} has no open dispute." in page(response)
    assert not events(case, "dispute-resolved")


def test_only_the_cases_own_open_invoices_can_be_disputed_in_the_admin(
        admin_client, case, make_customer):
    """Issue 14: another customer's invoice, a paid one or a number that does not exist is
    a form error on the invoice number; nothing is paused."""
    other = make_customer(name="Bob", email="bob@example.com")
    theirs = Invoice.objects.create(customer=other, number="BOB-1", amount_due="5.00",
                                    currency="EUR", due_date=datetime.date(2026, 3, 2))
    Invoice.objects.create(customer=case.customer, number="PAID-1", amount_due="0.00",
                           currency="EUR", due_date=datetime.date(2026, 3, 2))
    for number in (theirs.number, "NOPE", "PAID-1"):
        response = act(admin_client, "open_dispute", [case], invoice_number=number,
                       reason="not ours")
        text = page(response)
        assert (f"{number} is not an open invoice of {case}; only the case's own open "
                "invoices can be disputed.") in text
        assert 'maxlength="2000"' in text  # the reason's limit, in the page
    case.refresh_from_db()
    assert case.paused_until is None
    assert not Dispute.objects.exists() and not events(case, "dispute")


@pytest.mark.parametrize("action,fields", [
    ("add_note", {"text": None}),
    ("log_call", {"outcome": "reached", "text": None}),
    ("pause", {"reason": None}),
    ("write_off", {"reason": None}),
    ("open_dispute", {"invoice_number": "{invoice}", "reason": None}),
    ("resolve_disputes", {"resolution": None}),
])
def test_the_workbench_forms_limit_free_text(admin_client, case, action, fields):
    from dunning.inputs import MAX_NOTE_LENGTH

    number = Invoice.objects.get(customer=case.customer).number
    data = {name: ("x" * (MAX_NOTE_LENGTH + 1) if value is None else
                   value.replace("{invoice}", number)) for name, value in fields.items()}
    response = act(admin_client, action, [case], **data)
    text = page(response)
    assert (f"Ensure this value has at most {MAX_NOTE_LENGTH} characters (it has "
            f"{MAX_NOTE_LENGTH + 1}).") in text
    assert f'maxlength="{MAX_NOTE_LENGTH}"' in text
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN and case.paused_until is None
    assert not CaseEvent.objects.filter(case=case).exists()
