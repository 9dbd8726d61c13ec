"""The customer's self-service page (dunning.portal): the signed link, what the page
shows, and what each action does to the case, its timeline and the run."""

import datetime
import html
import re
import time
from decimal import Decimal

import pytest
from django.test import Client
from django.utils import timezone

from dunning.engine.actions import PROMISE_GRACE_DAYS
from dunning.messages.rendering import babel_locale, build_context
from dunning.models import Case, CaseEvent, CaseStep, Dispute, Feedback, Invoice, PaymentPlan
from dunning.portal import services as portal_services
from dunning.portal.tokens import make_token, portal_url, revoke_links
from dunning.testing import PortalClient, override_dunning_settings, portal_stamp

ONE_DAY = datetime.timedelta(days=1)


def page(response):
    return html.unescape(response.content.decode())


def url(customer, token=None):
    return f"/dunning/portal/{token or make_token(customer.pk)}/"


def kinds(case):
    return list(CaseEvent.objects.filter(case=case).values_list("kind", flat=True))


def snapshot(case):
    case.refresh_from_db()
    return (
        [(f.name, getattr(case, f.attname)) for f in Case._meta.concrete_fields
         if f.name != "updated_at"],
        kinds(case), Dispute.objects.count(), PaymentPlan.objects.count(), Feedback.objects.count(),
    )


@pytest.fixture
def today():
    return timezone.localdate()


@pytest.fixture
def client():
    return PortalClient()  # sends each form from the page loaded just before, as a browser


# -- the link -----------------------------------------------------------------------------
def test_the_page_shows_the_overdue_invoices_and_total_and_get_changes_nothing(
    case, client, make_invoice
):
    make_invoice(case.customer, number="INV-LATE", amount_due="20.50", due_date=datetime.date(2026, 3, 10))
    before = snapshot(case)
    for _ in range(2):  # a mail scanner and then the customer
        response = client.get(url(case.customer))
        assert response.status_code == 200
    text = page(response)
    assert "Ada" in text
    assert "INV-LATE" in text and "€20.50" in text
    assert "€120.50" in text  # the total of 100.00 + 20.50
    assert response["Cache-Control"].startswith("max-age=0")
    assert response["Referrer-Policy"] == "same-origin"
    assert snapshot(case) == before


def test_tampered_and_unknown_tokens_are_not_found(case, client):
    token = make_token(case.customer.pk)
    assert client.get(url(case.customer, token[:-2] + "xx")).status_code == 404
    assert client.get("/dunning/portal/not-a-token/").status_code == 404
    assert client.get(url(None, make_token(999999))).status_code == 404


def test_a_link_expires(case, client, monkeypatch):
    with override_dunning_settings(PORTAL_LINK_MAX_AGE=3600):
        token = make_token(case.customer.pk)
        assert client.get(url(case.customer, token)).status_code == 200
        later = time.time() + 3601
        monkeypatch.setattr("django.core.signing.time.time", lambda: later)
        assert client.get(url(case.customer, token)).status_code == 404


def test_a_revoked_link_is_not_found_and_a_new_link_works(case, client):
    old = make_token(case.customer.pk)
    revoke_links(case.customer.pk)
    assert client.get(url(case.customer, old)).status_code == 404
    assert client.post(url(case.customer, old), {"action": "feedback", "reason": "forgot"}
                       ).status_code == 404
    assert client.get(url(case.customer)).status_code == 200


def test_links_survive_a_secret_key_rotation_through_the_fallbacks(case, client, settings):
    settings.SECRET_KEY = "the-old-secret-key"
    token = make_token(case.customer.pk)
    settings.SECRET_KEY = "the-new-secret-key"
    settings.SECRET_KEY_FALLBACKS = ["the-old-secret-key"]
    assert client.get(url(case.customer, token)).status_code == 200
    settings.SECRET_KEY_FALLBACKS = []
    assert client.get(url(case.customer, token)).status_code == 404


def test_a_token_is_scoped_to_its_customer(case, client, overdue_customer, run):
    other = overdue_customer(name="Bob")
    other_invoice = Invoice.objects.get(customer=other)
    run(2)
    response = client.get(url(case.customer))
    assert other_invoice.number not in page(response)
    assert "Bob" not in page(response)
    response = client.post(url(case.customer), {
        "action": "dispute", "invoice": other_invoice.number, "reason": "not mine"})
    assert response.status_code == 404
    assert not Dispute.objects.exists()


def test_the_message_context_carries_an_absolute_link_that_opens_the_page(case, client):
    from dunning.hosts import get_adapter

    row = get_adapter().customer_rows([case.customer.pk])[case.customer.pk]
    context = dict(customer=row, invoices=[], step={"key": "x"}, as_of=datetime.date(2026, 3, 3),
                   locale=babel_locale("en"), company={})
    assert build_context(**context)["portal_url"] == ""  # no PORTAL_BASE_URL: no link
    with override_dunning_settings(PORTAL_BASE_URL="https://shop.example/dunning"):
        link = build_context(**context)["portal_url"]
        assert portal_url(case.customer.pk).startswith("https://shop.example/dunning/portal/")
    assert link.startswith("https://shop.example/dunning/portal/")
    assert client.get(link.removeprefix("https://shop.example")).status_code == 200


# -- CSRF and methods -----------------------------------------------------------------------
def test_actions_need_the_csrf_token(case):
    client = PortalClient(enforce_csrf_checks=True)
    target = url(case.customer)
    data = {"action": "feedback", "reason": "forgot", "text": ""}
    assert client.post(target, data).status_code == 403
    assert not Feedback.objects.exists()
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"',
                      client.get(target).content.decode()).group(1)
    response = client.post(target, {**data, "csrfmiddlewaretoken": token})
    assert response.status_code == 302
    assert Feedback.objects.count() == 1


def test_other_methods_are_refused(case, client):
    assert client.put(url(case.customer)).status_code == 405
    assert client.post(url(case.customer), {"action": "delete"}).status_code == 404


# -- the actions ------------------------------------------------------------------------------
def test_a_promise_pauses_dunning_and_shows_on_the_timeline(case, client, today):
    date = today + 5 * ONE_DAY
    response = client.post(url(case.customer), {"action": "promise", "date": date.isoformat(),
                                                "amount": "100.00"})
    assert response.status_code == 302
    assert response["Location"].endswith("?done=promise#top")
    case.refresh_from_db()
    assert case.promised_on == date and case.promised_amount == Decimal("100.00")
    assert case.paused_until == date + PROMISE_GRACE_DAYS * ONE_DAY
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.PROMISE)
    assert event.actor is None
    assert "promise to pay" in page(client.get(response["Location"]))


def test_a_promise_beyond_the_maximum_is_refused(case, client, today):
    with override_dunning_settings(PORTAL_PROMISE_MAX_DAYS=10):
        response = client.post(url(case.customer), {
            "action": "promise", "date": (today + 11 * ONE_DAY).isoformat(), "amount": "100"})
    assert response.status_code == 400
    assert "no later than" in page(response)
    case.refresh_from_db()
    assert case.promised_on is None and case.paused_until is None
    assert CaseEvent.Kind.PROMISE not in kinds(case)


def test_a_broken_promise_resumes_dunning_by_itself(case, client, run, today, mailoutbox):
    client.post(url(case.customer), {"action": "promise", "date": today.isoformat(),
                                     "amount": "100"})
    case.refresh_from_db()
    run(case.paused_until - ONE_DAY)
    assert CaseStep.objects.filter(case=case).count() == 1
    run(case.paused_until + ONE_DAY)
    assert CaseStep.objects.filter(case=case).count() == 2


def test_a_dispute_holds_the_invoice_and_reaches_the_workbench(case, client, admin_client):
    invoice = Invoice.objects.get(customer=case.customer)
    response = client.post(url(case.customer), {
        "action": "dispute", "invoice": invoice.number, "reason": "Never delivered"})
    assert response.status_code == 302
    dispute = Dispute.objects.get(case=case)
    assert (dispute.invoice_number, dispute.reason, dispute.opened_by) == (
        invoice.number, "Never delivered", None)
    case.refresh_from_db()
    assert case.paused_until is None  # the invoice is held, not the case
    assert CaseEvent.Kind.DISPUTE in kinds(case)
    assert "disputed" in page(client.get(url(case.customer)))
    assert "Never delivered" in page(admin_client.get(f"/admin/dunning/case/{case.pk}/change/"))


def test_a_dispute_needs_a_reason(case, client):
    invoice = Invoice.objects.get(customer=case.customer)
    response = client.post(url(case.customer), {"action": "dispute", "invoice": invoice.number,
                                                "reason": ""})
    assert response.status_code == 400
    assert 'aria-invalid="true"' in page(response)
    assert not Dispute.objects.exists()


def test_the_customers_texts_have_a_limit_the_page_shows(case, client):
    from dunning.inputs import MAX_CUSTOMER_TEXT_LENGTH as LIMIT

    text = page(client.get(url(case.customer)))
    assert text.count(f'maxlength="{LIMIT}"') == 2  # the dispute's reason, the comment
    invoice = Invoice.objects.get(customer=case.customer)
    response = client.post(url(case.customer), {"action": "dispute", "invoice": invoice.number,
                                                "reason": "x" * (LIMIT + 1)})
    assert response.status_code == 400
    assert f"Ensure this value has at most {LIMIT} characters" in page(response)
    assert not Dispute.objects.exists()


def test_feedback_is_recorded_on_the_timeline(case, client):
    client.post(url(case.customer), {"action": "feedback", "reason": "cash-flow",
                                     "text": "Waiting for a customer"})
    feedback = Feedback.objects.get(case=case)
    assert (feedback.reason, feedback.text) == ("cash-flow", "Waiting for a customer")
    event = CaseEvent.objects.get(case=case, kind=CaseEvent.Kind.FEEDBACK)
    assert event.data["reason"] == "cash-flow"
    case.refresh_from_db()
    assert case.paused_until is None  # feedback does not pause dunning


def test_actions_on_a_closed_case_change_nothing(case, client):
    Case.objects.filter(pk=case.pk).update(status=Case.Status.RESOLVED)
    response = client.post(url(case.customer), {"action": "feedback", "reason": "forgot"})
    assert response.status_code == 400
    assert not Feedback.objects.exists()


# -- payment plans ----------------------------------------------------------------------------
AUTO = {"max_instalments": 3, "max_amount": {"EUR": "1000"}}


def ask_for_plan(client, case, count, first):
    return client.post(url(case.customer), {"action": "plan", "instalments": str(count),
                                            "first": first.isoformat()})


def test_a_plan_within_the_limits_is_approved_and_pauses_dunning(case, client, today):
    first = today + 7 * ONE_DAY
    with override_dunning_settings(PORTAL_PLAN_AUTO_APPROVE=AUTO):
        response = ask_for_plan(client, case, 3, first)
    assert response.status_code == 302
    plan = PaymentPlan.objects.get(case=case)
    assert plan.status == PaymentPlan.Status.ACTIVE and plan.auto_approved
    assert [i["amounts"]["EUR"] for i in plan.instalments] == ["33.33", "33.33", "33.34"]
    assert [i["due"] for i in plan.instalments] == [
        (first + n * 30 * ONE_DAY).isoformat() for n in range(3)]
    case.refresh_from_db()
    assert case.paused_until == first + 3 * ONE_DAY
    assert not case.needs_person
    assert {"plan-requested", "plan-approved", "paused"} <= set(kinds(case))
    assert "approved" in page(client.get(response["Location"]))


@pytest.mark.parametrize("count, limit", [(4, "1000"), (3, "50")])
def test_a_plan_beyond_the_limits_goes_to_staff(case, client, today, count, limit):
    with override_dunning_settings(PORTAL_PLAN_AUTO_APPROVE={"max_instalments": 3,
                                                             "max_amount": {"EUR": limit}}):
        ask_for_plan(client, case, count, today + ONE_DAY)
    plan = PaymentPlan.objects.get(case=case)
    assert plan.status == PaymentPlan.Status.REQUESTED
    case.refresh_from_db()
    assert case.needs_person and case.paused_until is None
    assert {"plan-requested", "escalated"} <= set(kinds(case))
    assert "plan-approved" not in kinds(case)


def test_more_instalments_than_allowed_are_refused(case, client, today):
    with override_dunning_settings(PORTAL_PLAN_MAX_INSTALMENTS=4):
        response = ask_for_plan(client, case, 5, today + ONE_DAY)
    assert response.status_code == 400
    assert not PaymentPlan.objects.exists()


def test_staff_approve_a_requested_plan(case, client, today, boss):
    ask_for_plan(client, case, 2, today + ONE_DAY)
    plan = PaymentPlan.objects.get(case=case)
    portal_services.approve_plan(plan, boss)
    plan.refresh_from_db()
    assert plan.status == PaymentPlan.Status.ACTIVE and not plan.auto_approved
    assert CaseEvent.objects.get(case=case, kind="plan-approved").actor == boss


def test_a_missed_instalment_breaks_the_plan_and_dunning_resumes(case, client, today, run):
    first = today + ONE_DAY
    with override_dunning_settings(PORTAL_PLAN_AUTO_APPROVE=AUTO):
        ask_for_plan(client, case, 2, first)
    assert portal_services.check_payment_plans(first + 3 * ONE_DAY) == {"broken": 0, "completed": 0}
    assert portal_services.check_payment_plans(first + 4 * ONE_DAY) == {"broken": 1, "completed": 0}
    assert PaymentPlan.objects.get(case=case).status == PaymentPlan.Status.BROKEN
    case.refresh_from_db()
    assert case.paused_until is None
    assert {"plan-broken", "resumed"} <= set(kinds(case))
    run(first + 5 * ONE_DAY)
    assert CaseStep.objects.filter(case=case).count() == 2


def test_a_paid_instalment_moves_the_pause_to_the_next_and_a_paid_plan_completes(
    case, client, today
):
    first = today + ONE_DAY
    with override_dunning_settings(PORTAL_PLAN_AUTO_APPROVE=AUTO):
        ask_for_plan(client, case, 2, first)
    invoice = Invoice.objects.get(customer=case.customer)
    Invoice.objects.filter(pk=invoice.pk).update(amount_due=Decimal("50.00"))
    assert portal_services.check_payment_plans(first + 10 * ONE_DAY) == {"broken": 0, "completed": 0}
    case.refresh_from_db()
    assert case.paused_until == first + 33 * ONE_DAY
    Invoice.objects.filter(pk=invoice.pk).update(amount_due=Decimal("0"))
    assert portal_services.check_payment_plans(first + 31 * ONE_DAY) == {"broken": 0, "completed": 1}
    assert "plan-completed" in kinds(case)


def test_no_plan_over_disputed_invoices_only(case, client, today):
    """A plan covers what is demanded; with the only invoice disputed there is nothing to
    split (before, the plan split the disputed amount and its pause hid the dispute)."""
    invoice = Invoice.objects.get(customer=case.customer)
    client.post(url(case.customer), {"action": "dispute", "invoice": invoice.number,
                                     "reason": "wrong"})
    with override_dunning_settings(PORTAL_PLAN_AUTO_APPROVE=AUTO):
        response = client.post(url(case.customer), {
            "action": "plan", "instalments": "2", "first": (today + ONE_DAY).isoformat()})
    assert response.status_code == 400
    assert "Every overdue invoice is disputed" in page(response)
    assert not case.payment_plans.exists()
    case.refresh_from_db()
    assert case.paused_until is None


# -- pay now, language ------------------------------------------------------------------------
def test_pay_now_and_update_payment_links_come_from_the_host(case, client):
    with override_dunning_settings(PORTAL_PAY_URL="https://pay.example/{customer}",
                                   PORTAL_UPDATE_PAYMENT_URL="https://pay.example/card"):
        text = page(client.get(url(case.customer)))
    assert f'href="https://pay.example/{case.customer.pk}"' in text
    assert 'href="https://pay.example/card"' in text
    with override_dunning_settings(COMPANY={}):
        assert "Pay now" not in page(client.get(url(case.customer)))  # no hook, no button
    with override_dunning_settings(COMPANY={"payment_url": "https://shop.example/pay"}):
        assert 'href="https://shop.example/pay"' in page(client.get(url(case.customer)))


def test_the_page_speaks_the_customers_language(overdue_customer, run, client):
    customer = overdue_customer(name="Grete", language="de")
    run(1)
    text = page(client.get(url(customer)))
    assert '<html lang="de">' in text
    assert "Ihre offenen Rechnungen" in text
    assert "100,00\xa0€" in text


def test_the_page_follows_the_browser_without_a_customer_language(case, client):
    text = page(client.get(url(case.customer), HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9"))
    assert "Ihre offenen Rechnungen" in text
    assert "Your open invoices" in page(client.get(url(case.customer)))


@pytest.mark.parametrize("language, words", [("en", "dispute an invoice online"),
                                             ("de", "Rechnung beanstanden")])
def test_a_sent_message_carries_the_link_to_the_customers_page(
    overdue_customer, run, client, mailoutbox, language, words
):
    customer = overdue_customer(name="Eve", language=language)
    with override_dunning_settings(PORTAL_BASE_URL="https://shop.example/dunning/"):
        run(1)
    message = mailoutbox[0]
    links = re.findall(r"https://shop\.example(/dunning/portal/[^/\s]+/)", message.body)
    assert len(links) == 1 and words in message.body
    html_body = message.alternatives[0][0]
    assert f'href="https://shop.example{links[0]}"' in html_body
    response = client.get(links[0])
    assert response.status_code == 200 and "Eve" in page(response)
    assert Invoice.objects.get(customer=customer).number in page(response)


def test_without_a_base_url_messages_have_no_portal_line(overdue_customer, run, mailoutbox):
    overdue_customer(name="Fay")
    run(1)
    assert "/portal/" not in mailoutbox[0].body
    assert "dispute an invoice online" not in mailoutbox[0].body


def test_a_customer_with_a_plan_cannot_ask_for_another(case, client, today):
    old_tab = portal_stamp(client, url(case.customer), "plan")
    ask_for_plan(client, case, 2, today + ONE_DAY)
    assert "Ask for a payment plan" not in page(client.get(url(case.customer)))
    # The form of a page opened before the plan was asked for (another tab).
    response = client.post(url(case.customer), {
        "action": "plan", "instalments": "3", "first": (today + ONE_DAY).isoformat(),
        "stamp": old_tab})
    assert response.status_code == 400
    assert "Your payment plan changed since you opened this page" in page(response)
    assert PaymentPlan.objects.count() == 1


def test_checking_plans_reads_all_of_them_with_a_constant_number_of_queries(
        overdue_customer, run, client, today, django_assert_max_num_queries):
    customers = [overdue_customer(name=f"Plan {n}") for n in range(12)]
    run(1)
    first = today + 10 * ONE_DAY
    with override_dunning_settings(PORTAL_PLAN_AUTO_APPROVE=AUTO):
        for customer in customers:
            ask_for_plan(client, Case.objects.get(customer=customer), 2, first)
    assert PaymentPlan.objects.filter(status="active").count() == 12
    # Nobody is late and nothing changed: the plans and their invoices, two queries.
    with django_assert_max_num_queries(2):
        assert portal_services.check_payment_plans(today) == {"broken": 0, "completed": 0}
    # One customer paid the first instalment: only that case's pause moves on.
    Invoice.objects.filter(customer=customers[0]).update(amount_due=Decimal("50.00"))
    with django_assert_max_num_queries(8):  # the reads, the pause and its event
        assert portal_services.check_payment_plans(today) == {"broken": 0, "completed": 0}
    assert Case.objects.get(customer=customers[0]).paused_until == first + 33 * ONE_DAY
    # Paid in full: completed (writes only for the plan that changed).
    Invoice.objects.filter(customer=customers[0]).update(amount_due=0)
    assert portal_services.check_payment_plans(today) == {"broken": 0, "completed": 1}


# -- a link that does not work: a fresh one by email ---------------------------------------
GENERIC = "If this link belongs to an account, we have sent a new link"


@pytest.fixture
def fresh_cache():
    from django.core.cache import cache

    cache.clear()
    yield
    cache.clear()


def ask_for_a_new_link(client, token):
    return client.post(f"/dunning/portal/{token}/", {"action": "resend"})


def test_an_expired_link_offers_a_fresh_one_by_email_that_works(case, client, monkeypatch,
                                                                mailoutbox, fresh_cache):
    with override_dunning_settings(PORTAL_LINK_MAX_AGE=3600):
        token = make_token(case.customer.pk)
        later = time.time() + 3601
        monkeypatch.setattr("django.core.signing.time.time", lambda: later)
        response = client.get(url(case.customer, token))
        assert response.status_code == 404
        assert "Email me a new link" in page(response) and "Ada" not in page(response)
        sent_before = len(mailoutbox)
        response = ask_for_a_new_link(client, token)
        assert response.status_code == 200 and GENERIC in page(response)
        [mail] = mailoutbox[sent_before:]
        assert mail.to == [case.customer.email] and mail.subject == "Your new link"
        link = re.search(r"http://testserver(/dunning/portal/\S+/)", mail.body).group(1)
        assert client.get(link).status_code == 200  # issued now: valid


def test_a_tampered_or_unknown_link_answers_the_same_and_sends_nothing(case, client, mailoutbox,
                                                                       fresh_cache):
    sent_before = len(mailoutbox)
    token = make_token(case.customer.pk)
    for bad in (token[:-2] + "xx", "not-a-token", make_token(999999)):
        response = ask_for_a_new_link(client, bad)
        assert response.status_code == 200 and GENERIC in page(response)
    assert len(mailoutbox) == sent_before


def test_fresh_links_are_rate_limited_without_saying_so(case, client, mailoutbox, fresh_cache):
    revoke_links(case.customer.pk)
    token = make_token(case.customer.pk, issued=time.time() - 60)  # revoked
    sent_before = len(mailoutbox)
    with override_dunning_settings(PORTAL_RESEND_PER_HOUR=2):
        answers = [page(ask_for_a_new_link(client, token)) for _ in range(4)]
    assert all(GENERIC in answer for answer in answers)
    assert len(mailoutbox) - sent_before == 2


def test_asking_for_a_new_link_needs_the_csrf_token(case, fresh_cache, mailoutbox):
    strict = Client(enforce_csrf_checks=True)
    token = make_token(case.customer.pk)[:-2] + "xx"
    assert strict.post(f"/dunning/portal/{token}/", {"action": "resend"}).status_code == 403


def test_a_replayed_form_changes_nothing_more(case, client, today, make_invoice):
    """The same POST sent again (a replay, a double click, the back button) with the same
    link: one dispute, one plan request, the same promise."""
    # A second invoice to dispute: the plan and the promise are about the undisputed one.
    invoice = make_invoice(case.customer, amount_due="10.00", due_date=today - ONE_DAY).number
    dispute = {"action": "dispute", "invoice": invoice, "reason": "Never delivered."}
    plan = {"action": "plan", "instalments": "4", "first": (today + ONE_DAY).isoformat()}
    promise = {"action": "promise", "date": (today + 3 * ONE_DAY).isoformat(), "amount": "40"}
    for data in (dispute, plan, promise):
        first = client.post(url(case.customer), data)
        assert first.status_code == 302
        client.post(url(case.customer), data)
    assert Dispute.objects.filter(case=case).count() == 1
    assert PaymentPlan.objects.filter(case=case).count() == 1
    assert kinds(case).count("dispute") == 1 and kinds(case).count("plan-requested") == 1
    case.refresh_from_db()
    assert case.promised_on == today + 3 * ONE_DAY


# -- paying with a stored method ------------------------------------------------------------
@pytest.fixture
def simulated_backend():
    def use(customer, outcomes):
        return override_dunning_settings(
            PAYMENT_BACKEND="dunning.payments.simulated.SimulatedBackend",
            PAYMENT_BACKEND_OPTIONS={"outcomes": {str(customer.pk): outcomes}})
    return use


def test_paying_with_a_stored_method_pays_and_resolves_the_case(case, client, simulated_backend,
                                                                mailoutbox):
    from dunning.models import PaymentAttempt

    with simulated_backend(case.customer, {"card_a": ["ok"], "card_b": ["ok"]}):
        body = page(client.get(url(case.customer)))
        assert "Pay €100.00 now" in body and "Simulated card 2" in body
        response = client.post(url(case.customer), {"action": "pay", "method": "card_b"})
        assert response.status_code == 302 and response["Location"].endswith("?done=pay#top")
        # Sent again (a replay): nothing is owed any more, nothing is charged.
        again = client.post(url(case.customer), {"action": "pay", "method": "card_b"})
        assert again.status_code == 400
    [attempt] = PaymentAttempt.objects.all()
    assert (attempt.status, attempt.method_id, attempt.amount) == ("succeeded", "card_b",
                                                                   Decimal("100.00"))
    case.refresh_from_db()
    assert case.status == Case.Status.RESOLVED
    assert "payment-collected" in kinds(case)
    assert "payment-received" in mailoutbox[-1].tags  # the usual thank-you


def test_a_declined_payment_says_why_and_changes_nothing(case, client, simulated_backend):
    with simulated_backend(case.customer, {"card_a": ["insufficient_funds"]}):
        response = client.post(url(case.customer), {"action": "pay", "method": "card_a"})
        assert response.status_code == 400
        assert "Your bank declined the payment" in page(response)
        # Another customer's or an unknown method is refused before anything is charged.
        response = client.post(url(case.customer), {"action": "pay", "method": "card_x"})
        assert response.status_code == 400
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    assert kinds(case).count("payment-declined") == 1


def test_without_a_backend_there_is_no_pay_form(case, client):
    assert "Pay now with a stored payment method" not in page(client.get(url(case.customer)))


def test_a_bank_debit_from_the_page_is_pending_and_never_paid_twice(case, client,
                                                                     simulated_backend):
    """Paying by SEPA debit on the self-service page: the debit is pending (the case stays
    open, no decline); paying again while the bank processes it charges nothing."""
    from dunning.models import PaymentAttempt

    with simulated_backend(case.customer, {"sepa_a": ["processing"]}):
        response = client.post(url(case.customer), {"action": "pay", "method": "sepa_a"})
        assert response.status_code == 302
        again = client.post(url(case.customer), {"action": "pay", "method": "sepa_a"})
        assert again.status_code == 400
        assert "still processing" in page(again)
    [attempt] = PaymentAttempt.objects.all()
    assert attempt.status == "pending" and attempt.transaction_id.startswith("sim_")
    case.refresh_from_db()
    assert case.status == Case.Status.OPEN
    assert "payment-pending" in kinds(case) and "payment-declined" not in kinds(case)
