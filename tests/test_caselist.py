"""The collectors' case list and case page: amounts and days overdue, band and currency
filters, search by customer and invoice number, sorting, totals; the case page's single
timeline and its action buttons; "send the next step now"."""

import datetime
import html
from decimal import Decimal

import pytest
from django.utils import timezone

from dunning.models import Case, CaseEvent, CaseStep
from dunning.testing import create_customer, create_invoice

CHANGELIST_URL = "/admin/dunning/case/"


def page(response):
    return html.unescape(response.content.decode())


def listed(client, **params):
    response = client.get(CHANGELIST_URL, params)
    assert response.status_code == 200, response.content[:500]
    return response, [c.customer.name for c in response.context["cl"].result_list]


def case_of(customer):
    return Case.objects.get(customer=customer, status=Case.Status.OPEN)


@pytest.fixture
def today():
    return timezone.localdate()


@pytest.fixture
def book(db, today):
    """Four customers owing different amounts for different lengths of time, a run today."""
    from dunning.engine.run import run_dunning

    def owe(name, amount, days, currency="EUR", number=None):
        customer = create_customer(name=name, email=f"{name.lower()}@example.com")
        create_invoice(customer, amount_due=amount, currency=currency,
                       due_date=today - datetime.timedelta(days=days),
                       number=number or f"INV-{name.upper()}")
        return customer

    people = {
        "Ada": owe("Ada", "40.00", 10),
        "Bob": owe("Bob", "250.00", 45),
        "Cy": owe("Cy", "5000.00", 75, currency="USD"),
        "Dee": owe("Dee", "12000.00", 120),
    }
    run_dunning(today)
    return people


def test_the_list_shows_amount_and_days_overdue_per_case(admin_client, book):
    response, names = listed(admin_client)
    assert sorted(names) == ["Ada", "Bob", "Cy", "Dee"]
    text = page(response)
    assert "€40.00" in text and "$5,000.00" in text and "€12,000.00" in text
    rows = {c.customer.name: c for c in response.context["cl"].result_list}
    admin = response.context["cl"].model_admin
    assert admin.days_overdue(rows["Ada"]) == 10
    assert admin.days_overdue(rows["Dee"]) == 120


@pytest.mark.parametrize(("band", "expected"), [
    ("1-30", ["Ada"]), ("31-60", ["Bob"]), ("61-90", ["Cy"]), ("90+", ["Dee"]),
])
def test_filter_by_days_overdue_band(admin_client, book, band, expected):
    assert listed(admin_client, days_overdue=band)[1] == expected


@pytest.mark.parametrize(("band", "expected"), [
    ("0-100", ["Ada"]), ("100-1000", ["Bob"]), ("1000-10000", ["Cy"]), ("10000+", ["Dee"]),
])
def test_filter_by_amount_band(admin_client, book, band, expected):
    assert listed(admin_client, amount=band)[1] == expected


def test_filter_by_currency_offers_the_currencies_owed(admin_client, book):
    response, names = listed(admin_client, currency="USD")
    assert names == ["Cy"]
    cl = response.context["cl"]
    choices = [c["display"] for spec in cl.filter_specs
               if getattr(spec, "parameter_name", "") == "currency" for c in spec.choices(cl)]
    assert {"EUR", "USD"} <= set(choices)


def test_sort_by_amount_and_by_age(admin_client, book):
    response = admin_client.get(CHANGELIST_URL)
    fields = response.context["cl"].list_display
    amount_col = fields.index("amount_overdue")
    response_col = fields.index("days_overdue")
    _, by_amount = listed(admin_client, o=f"-{amount_col}")
    # Mixed currencies sort by their number; within EUR, the biggest debt first.
    eur = [n for n in by_amount if n != "Cy"]
    assert eur == ["Dee", "Bob", "Ada"]
    _, by_age = listed(admin_client, o=str(response_col))  # oldest due date first
    assert by_age == ["Dee", "Cy", "Bob", "Ada"]


@pytest.mark.parametrize(("term", "expected"), [
    ("ada", ["Ada"]),                 # customer name
    ("bob@example.com", ["Bob"]),     # email
    ("INV-CY", ["Cy"]),               # invoice number
    ("inv-d", ["Dee"]),               # part of an invoice number
    ("nobody", []),
])
def test_search_by_name_email_and_invoice_number(admin_client, book, term, expected):
    assert listed(admin_client, q=term)[1] == expected


def test_search_finds_a_paid_invoice_number_too(admin_client, book, today):
    create_invoice(book["Bob"], amount_due="0.00", currency="EUR",
                   due_date=today - datetime.timedelta(days=200), number="OLD-77")
    assert listed(admin_client, q="OLD-77")[1] == ["Bob"]


def test_totals_follow_the_filters(admin_client, book):
    response, _ = listed(admin_client)
    totals = {t["currency"]: t["amount"] for t in response.context["dunning_totals"]}
    assert totals == {"EUR": Decimal("12290.00"), "USD": Decimal("5000.00")}
    assert "4 cases listed" in page(response)
    response, _ = listed(admin_client, amount="100-1000")
    assert [(t["currency"], t["amount"]) for t in response.context["dunning_totals"]] == [
        ("EUR", Decimal("250.00"))]
    assert "1 case listed" in page(response)


def test_a_case_owing_in_two_currencies_says_so(admin_client, book, today):
    create_invoice(book["Ada"], amount_due="7.00", currency="GBP",
                   due_date=today - datetime.timedelta(days=3), number="GBP-1")
    response, _ = listed(admin_client, q="Ada")
    assert "several currencies" in page(response)


def test_the_list_query_count_does_not_grow_with_the_page(admin_client, book,
                                                          django_assert_max_num_queries, today):
    for i in range(30):
        customer = create_customer(name=f"Extra {i}", email=f"x{i}@example.com")
        create_invoice(customer, amount_due="10.00", currency="EUR",
                       due_date=today - datetime.timedelta(days=5))
    from dunning.engine.run import run_dunning
    run_dunning(today)
    with django_assert_max_num_queries(20):
        admin_client.get(CHANGELIST_URL)


# -- the case page -----------------------------------------------------------------------
def change_url(case):
    return f"/admin/dunning/case/{case.pk}/change/"


def act_url(case, action):
    return f"/admin/dunning/case/{case.pk}/act/{action}/"


def test_the_case_page_shows_one_timeline_with_messages_actions_and_people(
    admin_client, boss, case
):
    admin_client.post(act_url(case, "add_note"), {"text": "Called the bookkeeper", "apply": "yes"})
    response = admin_client.get(change_url(case))
    text = page(response)
    timeline = response.context["timeline"]
    kinds = [e["kind"] for e in timeline]
    assert kinds == ["message", "note"]  # in time order
    assert "Message initial-notice (email)" in text
    assert "Called the bookkeeper" in text
    assert timeline[0]["outcome"] == "Sent" and timeline[1]["by"] == "boss"
    assert "€100.00" in text  # what the case owes today


def test_the_case_page_offers_the_actions_the_user_may_use(admin_client, collector_client, case):
    boss_buttons = [name for name, *_ in admin_client.get(change_url(case)).context["case_buttons"]]
    carla_buttons = [name for name, *_ in
                     collector_client.get(change_url(case)).context["case_buttons"]]
    assert "write_off" in boss_buttons and "send_now" in boss_buttons
    assert "write_off" not in carla_buttons and "record_promise" in carla_buttons


def test_a_button_with_a_form_returns_to_the_case_page(admin_client, case, today):
    first = admin_client.post(act_url(case, "record_promise"))
    assert first.status_code == 200 and "Record a promise to pay" in page(first)
    done = admin_client.post(act_url(case, "record_promise"), {
        "apply": "yes", "date": (today + datetime.timedelta(days=5)).isoformat(),
        "amount": "100.00",
    })
    assert done.status_code == 302 and done["Location"] == change_url(case)
    case.refresh_from_db()
    assert case.promised_amount == Decimal("100.00")


def test_a_forged_write_off_from_the_case_page_is_refused(collector_client, case):
    response = collector_client.post(act_url(case, "write_off"), {"apply": "yes", "reason": "x"})
    assert response.status_code == 403
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN


def test_a_get_on_an_action_url_changes_nothing(admin_client, case):
    assert admin_client.get(act_url(case, "escalate")).status_code == 405
    case.refresh_from_db()
    assert not case.needs_person


# -- send the next step now ---------------------------------------------------------------
def test_send_now_sends_the_next_step_today_and_records_who(admin_client, boss, case, mailoutbox):
    mailoutbox.clear()
    response = admin_client.post(act_url(case, "send_now"), follow=True)
    assert "Step gentle-reminder sent to" in page(response)
    assert [m.tags for m in mailoutbox] == [["dunning", "gentle-reminder"]]
    assert list(CaseStep.objects.filter(case=case).values_list("step_key", flat=True)) == [
        "initial-notice", "gentle-reminder"]
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.SENT_BY_HAND)
    assert event.actor == boss and event.data == {"step_key": "gentle-reminder"}


def test_send_now_does_not_send_twice_a_day_or_to_a_paused_case(admin_client, case, mailoutbox,
                                                                 today):
    from dunning.engine.manual import send_next_step_now

    send_next_step_now([case.pk])
    mailoutbox.clear()
    response = admin_client.post(act_url(case, "send_now"), follow=True)
    assert "already had a step today" in page(response)
    assert mailoutbox == []
    Case.objects.filter(pk=case.pk).update(paused_until=today + datetime.timedelta(days=9),
                                           last_step_on=today - datetime.timedelta(days=5))
    response = admin_client.post(act_url(case, "send_now"), follow=True)
    assert "is paused; resume it first" in page(response)
    assert mailoutbox == []


def test_send_now_needs_the_send_by_hand_permission(staff_client, django_user_model, case,
                                                    mailoutbox):
    from django.contrib.auth.models import Permission

    user = django_user_model.objects.get(username="staff")
    user.user_permissions.add(*Permission.objects.filter(codename__in=["view_case", "change_case"]))
    mailoutbox.clear()
    response = staff_client.post(CHANGELIST_URL, {"action": "send_now",
                                                  "_selected_action": [case.pk]})
    assert mailoutbox == [] and response.status_code in (200, 302)
    assert not CaseStep.objects.filter(case=case, step_key="gentle-reminder").exists()
    assert staff_client.post(act_url(case, "send_now")).status_code == 403


def test_send_now_in_bulk_keeps_the_schedule_after_it(admin_client, run, overdue_customer,
                                                      mailoutbox):
    a, b = overdue_customer(name="A"), overdue_customer(name="B")
    run(1)
    cases = [case_of(a), case_of(b)]
    mailoutbox.clear()
    admin_client.post(CHANGELIST_URL, {"action": "send_now",
                                       "_selected_action": [c.pk for c in cases]})
    assert sorted(m.to[0] for m in mailoutbox) == sorted([a.email, b.email])
    for c in cases:
        c.refresh_from_db()
        # formal-notice (offset 8) is next: not before the minimum gap after today.
        assert c.last_step_key == "gentle-reminder"
        assert c.next_due_on >= timezone.localdate() + datetime.timedelta(days=3)


def test_the_case_form_cannot_change_the_state_of_a_case(admin_client, case):
    """State changes go through the run and the actions (rules, permission, timeline,
    signals); a forged form post that sets a status is ignored."""
    from dunning.models import Policy

    draft = Policy.objects.create(key="gentle", name="Gentle", is_active=True)
    response = admin_client.post(change_url(case), {
        "status": "written_off", "suspended": "on", "policy": draft.pk,
        "customer": case.customer_id, "disputes-TOTAL_FORMS": "0",
        "disputes-INITIAL_FORMS": "0", "charges-TOTAL_FORMS": "0",
        "charges-INITIAL_FORMS": "0", "_save": "Save",
    })
    assert response.status_code == 302, page(response)[:2000]
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN and not case.suspended
    assert case.policy == draft  # what the form may change
    note = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.NOTE)
    assert note.message == "Policy changed to Gentle." and note.data == {"policy": "gentle"}
    assert admin_client.get("/admin/dunning/case/add/").status_code == 403


def test_a_closed_case_owes_nothing_in_the_list(admin_client, book, today):
    ada = case_of(book["Ada"])
    Case.objects.filter(pk=ada.pk).update(status=Case.Status.RESOLVED, closed_on=today)
    response, names = listed(admin_client, status="resolved")
    assert names == ["Ada"]
    assert response.context["cl"].model_admin.amount_overdue(
        response.context["cl"].result_list[0]) == "-"
    assert response.context["dunning_totals"] == []
    assert "Ada" not in listed(admin_client, amount="0-100")[1]


def test_send_now_says_when_the_email_service_failed_for_now(admin_client, case, mailoutbox,
                                                            settings):
    settings.EMAIL_BACKEND = "tests.test_caselist.TransientFailureBackend"
    response = admin_client.post(act_url(case, "send_now"), follow=True)
    assert "is queued: the email service failed for now" in page(response)
    step = CaseStep.objects.get(case=case, step_key="gentle-reminder")
    assert step.status == CaseStep.Status.QUEUED and step.attempts == 1


class TransientFailureBackend:
    """An email backend whose service is down (a timeout: transient)."""

    def __init__(self, *args, **kwargs):
        pass

    def open(self):
        return True

    def close(self):
        pass

    def send_messages(self, messages):
        raise TimeoutError("the ESP did not answer")


# -- input the database or the date arithmetic cannot take (issue 14) -----------------------
@pytest.mark.parametrize("term", ["³", "①", "٣"])
def test_search_with_digits_that_are_no_case_number(admin_client, book, term):
    assert listed(admin_client, q=term)[1] == []


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31"])
def test_the_dashboard_shows_today_for_a_date_out_of_range(admin_client, db, as_of):
    response = admin_client.get(f"{CHANGELIST_URL}dashboard/", {"as_of": as_of})
    assert response.status_code == 200
    assert "Enter a date between 1900-01-01 and 9000-12-31. Showing today." in page(response)


@pytest.mark.parametrize("as_of", ["0001-01-01", "9999-12-31"])
def test_the_plan_shows_tomorrow_for_a_date_out_of_range(admin_client, db, as_of):
    response = admin_client.get(f"{CHANGELIST_URL}tomorrow/", {"as_of": as_of})
    assert response.status_code == 200
    assert "Enter a date between 1900-01-01 and 9000-12-31. Showing tomorrow." in page(response)
