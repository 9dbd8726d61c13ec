"""Nobody acts as somebody else (issue 14, part 3): a template preview never carries a
working customer link nor shows a real customer's data to who may not see cases; a
self-service form replayed or sent from an old tab changes nothing; the timeline says who
did what; and an invalid form on a phone shows the customer why, in their language."""

import datetime
import html
import re

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from django.utils import timezone

from dunning.models import (
    Case,
    CaseEvent,
    Consent,
    Feedback,
    MessageTemplate,
    PaymentAttempt,
    PortalSubmission,
)
from dunning.portal import stamps
from dunning.portal.services import load_portfolio
from dunning.portal.tokens import make_token, read_token
from dunning.queries import timeline
from dunning.testing import PortalClient, override_dunning_settings, portal_stamp
from dunning.unsubscribe import unsubscribe_url

ONE_DAY = datetime.timedelta(days=1)
BASE = "https://shop.example/dunning/"


def page(response):
    return html.unescape(response.content.decode())


def portal(customer):
    return f"/dunning/portal/{make_token(customer.pk)}/"


@pytest.fixture
def today():
    return timezone.localdate()


def promise_events(case):
    return CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.PROMISE).count()


# -- the template preview ---------------------------------------------------------------------
@pytest.fixture
def template(db):
    return MessageTemplate.objects.get(policy__key="standard", step_key="initial-notice",
                                       channel="email", language="en")


def preview(client, template, **query):
    return client.get(f"/admin/dunning/messagetemplate/{template.pk}/preview/", query)


def staff_with(django_user_model, username, *codenames, email=""):
    user = django_user_model.objects.create_user(username, email, "pw", is_staff=True)
    for codename in codenames:
        user.user_permissions.add(Permission.objects.get(codename=codename))
    client = Client()
    client.force_login(user)
    return client


def links_in(text):
    return re.findall(r"https://shop\.example/dunning/[^\s\"'<>]+", text)


def test_a_preview_for_a_real_customer_carries_no_working_link(admin_client, template, case,
                                                               mailoutbox):
    """The preview and the "send me a test" mail show where the links go, but the links
    open neither the customer's page (pay, promise, dispute, opt out as them) nor their
    opt-out."""
    template.text_body += "\nUnsubscribe: {{ unsubscribe_url }}\n"
    template.save()
    with override_dunning_settings(PORTAL_BASE_URL=BASE):
        response = preview(admin_client, template, customer=case.customer.pk)
        assert response.status_code == 200
        shown = page(response)
        admin_client.post(f"/admin/dunning/messagetemplate/{template.pk}/preview/",
                          {"customer": case.customer.pk})
    links = links_in(shown) + links_in(mailoutbox[0].body)
    assert {link.split("/")[4] for link in links} == {"portal", "unsubscribe"}
    for link in links:
        assert "PREVIEW-NOT-A-WORKING-LINK" in link
        assert Client().get(link.removeprefix("https://shop.example")).status_code == 404
    assert "placeholders" in shown


def test_previewing_with_a_real_customer_needs_the_permission_to_view_cases(
        django_user_model, fast_hasher, template, case):
    name = case.customer.name
    viewer = staff_with(django_user_model, "viewer", "view_messagetemplate")
    response = preview(viewer, template, customer=case.customer.pk)
    assert response.status_code == 403
    assert "needs the permission to view cases" in page(response)
    assert name not in page(response)
    sample = preview(viewer, template)
    assert sample.status_code == 200 and "Sample Customer Ltd" in page(sample)
    assert 'name="customer"' not in page(sample)  # no field to ask for a real customer
    # "Send me a test" of a real customer's message: refused the same way.
    editor = staff_with(django_user_model, "editor", "view_messagetemplate",
                        "change_messagetemplate", email="editor@example.com")
    sent = editor.post(f"/admin/dunning/messagetemplate/{template.pk}/preview/",
                       {"customer": case.customer.pk})
    assert sent.status_code == 403

    collector = staff_with(django_user_model, "carla", "view_messagetemplate", "view_case")
    allowed = preview(collector, template, customer=case.customer.pk)
    assert allowed.status_code == 200 and name in page(allowed)


# -- replays and stale forms -------------------------------------------------------------------
def test_a_replayed_feedback_form_is_stored_once_and_shows_the_same_success(case):
    client, path = PortalClient(), portal(case.customer)
    stamp = portal_stamp(client, path, "feedback")
    data = {"action": "feedback", "reason": "cash-flow", "text": "Salary on the 15th",
            "stamp": stamp}
    first = client.post(path, data)
    again = client.post(path, data)
    assert first.status_code == again.status_code == 302
    assert again["Location"] == first["Location"]
    assert "Thank you for telling us." in page(client.get(again["Location"]))
    assert Feedback.objects.filter(case=case).count() == 1
    assert CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.FEEDBACK).count() == 1


def test_a_replayed_promise_adds_no_second_timeline_entry(case, today):
    client = PortalClient()
    data = {"action": "promise", "date": (today + 5 * ONE_DAY).isoformat(), "amount": "50",
            "stamp": portal_stamp(client, portal(case.customer), "promise")}
    assert client.post(portal(case.customer), data).status_code == 302
    assert client.post(portal(case.customer), data).status_code == 302
    assert promise_events(case) == 1


def test_an_old_tabs_promise_does_not_replace_a_newer_one(case, today):
    client = PortalClient()
    old_tab = portal_stamp(client, portal(case.customer), "promise")
    newer = today + 3 * ONE_DAY
    client.post(portal(case.customer), {"action": "promise", "date": newer.isoformat(),
                                        "amount": "100"})
    response = client.post(portal(case.customer), {
        "action": "promise", "date": (today + 20 * ONE_DAY).isoformat(), "amount": "30",
        "stamp": old_tab})
    assert response.status_code == 400
    assert "A newer promise to pay was made since you opened this page" in page(response)
    case.refresh_from_db()
    assert case.promised_on == newer and promise_events(case) == 1
    # The page it answers with carries the current stamp: sending it again works.
    again = client.post(portal(case.customer), {
        "action": "promise", "date": (today + 20 * ONE_DAY).isoformat(), "amount": "30"})
    assert again.status_code == 302 and promise_events(case) == 2


def test_a_promise_recorded_by_staff_makes_the_customers_open_form_stale(case, today, boss):
    from dunning.engine import actions as services

    client = PortalClient()
    old_tab = portal_stamp(client, portal(case.customer), "promise")
    services.record_promise(case, today + 2 * ONE_DAY, "80", boss)
    response = client.post(portal(case.customer), {
        "action": "promise", "date": (today + 9 * ONE_DAY).isoformat(), "amount": "40",
        "stamp": old_tab})
    assert response.status_code == 400
    case.refresh_from_db()
    assert case.promised_on == today + 2 * ONE_DAY


def test_an_old_tab_does_not_undo_an_opt_out_made_since(overdue_customer):
    """The customer opted out of email by the link in a message; a page opened before,
    still showing the box ticked, cannot tick it again without being told."""
    ada = overdue_customer(name="Ada", email="ada@example.com")
    client = PortalClient()
    old_tab = portal_stamp(client, portal(ada), "channels")
    with override_dunning_settings(PORTAL_BASE_URL=BASE):
        link = unsubscribe_url(ada.pk).removeprefix("https://shop.example")
        assert Client().post(link, {"List-Unsubscribe": "One-Click"}).status_code == 200
    assert Consent.objects.get(customer_key=str(ada.pk)).granted is False
    response = client.post(portal(ada), {"action": "channels", "email": "on",
                                         "stamp": old_tab})
    assert response.status_code == 400
    assert "Your contact preferences changed since you opened this page" in page(response)
    assert list(Consent.objects.values_list("granted", flat=True)) == [False]


def test_an_old_pay_form_charges_nothing_once_the_balance_changed(case, make_invoice, today):
    client = PortalClient()
    with override_dunning_settings(
            PAYMENT_BACKEND="dunning.payments.simulated.SimulatedBackend",
            PAYMENT_BACKEND_OPTIONS={"outcomes": {str(case.customer.pk): {"card_b": "ok"}}}):
        old_tab = portal_stamp(client, portal(case.customer), "pay")
        assert old_tab is not None
        # Another overdue invoice since: the button said a smaller amount.
        make_invoice(case.customer, number="INV-NEW", amount_due="900.00",
                     due_date=today - 2 * ONE_DAY)
        response = client.post(portal(case.customer), {"action": "pay", "method": "card_b",
                                                       "stamp": old_tab})
    assert response.status_code == 400
    assert "The amount to pay changed since you opened this page" in page(response)
    assert not PaymentAttempt.objects.exists()


@pytest.mark.parametrize("stamp", ["", "forged", "other-customer", "other-form"])
def test_a_form_not_from_the_customers_page_changes_nothing(case, overdue_customer, run,
                                                             stamp):
    client = PortalClient()
    if stamp == "other-customer":
        bob = overdue_customer(name="Bob")
        run(2)
        stamp = portal_stamp(client, portal(bob), "feedback")
    elif stamp == "other-form":
        stamp = portal_stamp(client, portal(case.customer), "promise")
    response = client.post(portal(case.customer), {"action": "feedback", "reason": "forgot",
                                                   "stamp": stamp})
    assert response.status_code == 400
    assert "This form did not come from your current page" in page(response)
    assert not Feedback.objects.exists() and not PortalSubmission.objects.exists()


def test_two_requests_with_the_same_form_at_once_carry_it_out_once(case):
    """The unique constraint is the last guard: the second claim of a key fails."""
    client = PortalClient()
    value = portal_stamp(client, portal(case.customer), "feedback")
    portfolio = load_portfolio(read_token(make_token(case.customer.pk)))
    stamp = stamps.read(value, "feedback", portfolio)
    assert stamps.claim(portfolio, stamp) is True
    assert stamps.claim(portfolio, stamp) is False
    # The other request finds the key and answers with the success page, changing nothing.
    response = client.post(portal(case.customer), {"action": "feedback", "reason": "forgot",
                                                   "stamp": value})
    assert response.status_code == 302 and not Feedback.objects.exists()


def test_a_form_older_than_a_link_is_refused_and_its_key_not_kept(case, time_machine):
    """Stamps expire with the self-service link (PORTAL_LINK_MAX_AGE), so the keys of older
    forms need not be kept: the next carried-out form prunes them."""
    client, path = PortalClient(), portal(case.customer)
    old = portal_stamp(client, path, "feedback")
    assert client.post(path, {"action": "feedback", "reason": "forgot", "stamp": old}
                       ).status_code == 302
    assert PortalSubmission.objects.count() == 1
    time_machine.move_to(timezone.now() + datetime.timedelta(days=31))
    path = portal(case.customer)  # a fresh link, the old tab's form
    response = client.post(path, {"action": "feedback", "reason": "other", "stamp": old})
    assert response.status_code == 400
    assert Feedback.objects.filter(case=case).count() == 1
    # A fresh form goes through, and the month-old key is gone.
    assert client.post(path, {"action": "feedback", "reason": "other"}).status_code == 302
    assert Feedback.objects.filter(case=case).count() == 2
    assert PortalSubmission.objects.count() == 1


def test_a_refused_form_can_be_sent_again_once_corrected(case, today):
    client = PortalClient()
    value = portal_stamp(client, portal(case.customer), "promise")
    too_late = {"action": "promise", "date": (today + 400 * ONE_DAY).isoformat(),
                "amount": "40", "stamp": value}
    assert client.post(portal(case.customer), too_late).status_code == 400
    fixed = {**too_late, "date": (today + 4 * ONE_DAY).isoformat()}
    assert client.post(portal(case.customer), fixed).status_code == 302
    assert promise_events(case) == 1


# -- who did it --------------------------------------------------------------------------------
def by(case, kind):
    return [e["by"] for e in timeline.timeline(case) if e["kind"] == kind]


def test_the_timeline_says_who_did_what_through_each_door(case, today, admin_client, boss):
    from dunning.engine import actions as services

    # The customer, on their page.
    PortalClient().post(portal(case.customer), {
        "action": "promise", "date": (today + 3 * ONE_DAY).isoformat(), "amount": "40"})
    PortalClient().post(portal(case.customer), {"action": "feedback", "reason": "forgot"})
    # A staff user in the admin, and through the API.
    services.add_note(case, "In the admin", boss)
    response = admin_client.post(f"/dunning/api/v1/cases/{case.pk}/note/",
                                 {"text": "Through the API"}, content_type="application/json")
    assert response.status_code == 200
    notes = {e["text"]: e["by"] for e in timeline.timeline(case) if e["kind"] == "note"}
    assert notes == {"In the admin": "boss", "Through the API": "boss (API)"}
    assert by(case, "promise") == ["the customer (self-service page)"]
    assert by(case, "feedback") == ["the customer (self-service page)"]
    api_note = CaseEvent.objects.get(case=case, message="Through the API")
    assert (api_note.actor_kind, api_note.actor) == ("api", boss)
    # The case page shows it.
    shown = page(admin_client.get(f"/admin/dunning/case/{case.pk}/change/"))
    assert "the customer (self-service page)" in shown and "boss (API)" in shown


def test_what_the_run_does_reads_as_the_run(case, run):
    Case.objects.filter(pk=case.pk).update(status=Case.Status.OPEN)
    event = CaseEvent.objects.create(case=case, kind=CaseEvent.Kind.ERROR,
                                     created_at=timezone.now(), run=case_run(case))
    assert timeline.actor_label(event) == "dunning run"
    webhook = CaseEvent.objects.create(case=case, kind=CaseEvent.Kind.PAYMENT_COLLECTED,
                                       created_at=timezone.now())
    assert timeline.actor_label(webhook) == "system"


def case_run(case):
    from dunning.models import CaseStep

    return CaseStep.objects.filter(case=case).first().run


def test_a_dispute_from_the_page_is_the_customers(case):
    from dunning.models import Invoice

    invoice = Invoice.objects.filter(customer=case.customer).first()
    PortalClient().post(portal(case.customer), {"action": "dispute", "invoice": invoice.number,
                                                "reason": "Never delivered"})
    assert by(case, "dispute") == ["the customer (self-service page)"]


# -- the customer sees why, in their language ---------------------------------------------------
def test_an_invalid_form_shows_an_error_summary_that_takes_the_focus(case, today):
    client = PortalClient()
    response = client.post(portal(case.customer), {
        "action": "promise", "date": (today + 400 * ONE_DAY).isoformat(), "amount": "0"})
    assert response.status_code == 400
    content = page(response)
    summary = re.search(r'<div class="notice error" id="errors"([^>]*)>(.*?)</div>', content,
                        re.S)
    assert summary, "no error summary"
    assert 'tabindex="-1"' in summary.group(1) and "autofocus" in summary.group(1)
    # At the top of the page, before any form, and each error links to its field.
    assert content.index('id="errors"') < content.index("<form")
    assert '<a href="#promise_date">' in summary.group(2)
    assert '<a href="#promise_amount">' in summary.group(2)
    # Every form brings the customer back to the summary when the page answers.
    assert all('action="#errors"' in tag for tag in re.findall(r"<form[^>]*>", content))


def test_a_valid_page_has_no_error_summary(case):
    assert 'id="errors"' not in page(PortalClient().get(portal(case.customer)))


def test_dates_and_amounts_in_errors_speak_the_customers_language(overdue_customer, run):
    ada = overdue_customer(name="Ada", language="de")
    run(1)
    today = timezone.localdate()
    client = PortalClient()
    with override_dunning_settings(PORTAL_PROMISE_MAX_DAYS=30):
        response = client.post(portal(ada), {
            "action": "promise", "date": (today + 40 * ONE_DAY).isoformat(), "amount": "0"})
    errors = " ".join(re.findall(r'<span class="error"[^>]*>([^<]*)</span>', page(response)))
    latest = today + 30 * ONE_DAY  # 2027-01-06: "06.01.2027" in German
    assert latest.strftime("%d.%m.%Y") in errors
    assert latest.isoformat() not in errors
    assert "0,01" in errors and "0.01" not in errors


def test_the_migration_tells_the_customers_old_events_from_the_runs(case, boss):
    """Events recorded before actor_kind: a user's were staff's, the page's own kinds and a
    promise, dispute or consent change outside any run were the customer's."""
    import importlib
    from types import SimpleNamespace

    from django.apps import apps
    from django.db import connection

    migration = importlib.import_module(
        "dunning.migrations.0024_actor_kind_portal_submissions")
    now = timezone.now()
    made = {
        "feedback": CaseEvent.objects.create(case=case, kind="feedback", created_at=now),
        "promise": CaseEvent.objects.create(case=case, kind="promise", created_at=now),
        "note": CaseEvent.objects.create(case=case, kind="note", created_at=now, actor=boss),
        "error": CaseEvent.objects.create(case=case, kind="error", created_at=now,
                                          run=case_run(case)),
    }
    migration.backfill(apps, SimpleNamespace(connection=connection))
    kinds = {name: CaseEvent.objects.get(pk=e.pk).actor_kind for name, e in made.items()}
    assert kinds == {"feedback": "customer", "promise": "customer", "note": "staff",
                     "error": "system"}
