"""Money paths on Stripe (issue 13, part 5): a PaymentIntent still ``processing`` (SEPA
Direct Debit, ACH) is pending, never a decline, never charged again while pending, and
settles from Stripe's signed webhook or a poll; ``requires_action`` /
``authentication_required`` is not retried off-session, the customer is asked to
authenticate through their self-service link. Stripe answers from recorded responses."""

import hashlib
import hmac
import json
import types
from decimal import Decimal

import pytest
from django.core import checks

from dunning.models import Case, CaseEvent, CaseStep, PaymentAttempt, PreDunningNotice
from dunning.payments import declines, scheduler
from dunning.payments.retries import record_failure, run_due_retries
from dunning.payments.stripe_backend import result_of_intent
from dunning.testing import override_dunning_settings

from .conftest import day
from .test_payments import FIXTURES, RecordedHTTPClient, at, invoice_numbers, stripe_backend

SECRET = "whsec_test_recorded_0123456789"
WEBHOOK = "/dunning/payments/stripe/webhook/"
SEPA = "pm_1QbXcc2eZvKYlo2CsepaDE"
CARD = "pm_1QbXaa2eZvKYlo2CvisaOK"
PI = "pi_3QcSepa2eZvKYlo2C5e6f7g8"
#: The instant of the recorded events: 2026-03-04 12:00 in Berlin (day 2).
EVENT_TIME = 1772622000


@pytest.fixture
def stripe_site(settings):
    """Stripe as the payment backend, answering from the recorded responses it is given;
    the webhook's secret set; the self-service page's links on."""
    overrides = []

    def use(*responses, **extra):
        http = RecordedHTTPClient(*responses)
        override = override_dunning_settings(
            PAYMENT_BACKEND="dunning.payments.stripe_backend.StripeBackend",
            PAYMENT_BACKEND_OPTIONS={"api_key": "sk_test_recorded", "http_client": http,
                                     "max_network_retries": 0},
            STRIPE_WEBHOOK_SECRET=SECRET,
            PORTAL_BASE_URL="https://shop.example/dunning/",
            **extra)
        override.enable()
        overrides.append(override)
        return http

    yield use
    for override in reversed(overrides):
        override.disable()


@pytest.fixture
def stripe_clock(monkeypatch):
    """Stripe's signature check compares the signed timestamp with the clock: pin it."""
    monkeypatch.setattr("stripe._webhook.time", types.SimpleNamespace(time=lambda: EVENT_TIME + 5))


def signed(body, secret=SECRET, timestamp=EVENT_TIME):
    signature = hmac.new(secret.encode(), f"{timestamp}.{body}".encode(), hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={signature}"


def post_event(client, name, *, secret=SECRET, body=None, header=None):
    body = (FIXTURES / name).read_text() if body is None else body
    extra = {"HTTP_STRIPE_SIGNATURE": header if header is not None else signed(body, secret)}
    return client.post(WEBHOOK, data=body, content_type="application/json", **extra)


def pending_sepa_debit(overdue_customer, run, stripe_site, *more_responses):
    """A customer whose failed payment was retried on day 2 by SEPA Direct Debit, which
    Stripe left ``processing``."""
    customer = overdue_customer(timezone="Europe/Berlin")
    run(1)
    http = stripe_site((200, "payment_intent_processing.json"), *more_responses)
    first = record_failure(customer.pk, invoices=invoice_numbers(customer), method_id=SEPA,
                           decline_code="insufficient_funds", failed_at=at(day(1), 11))
    assert (first.next_attempt_at, first.next_method_id) == (at(day(2), 8), SEPA)
    assert run_due_retries(now=at(day(2), 9)) == {"pending": 1}
    return customer, http


# -- the backend ----------------------------------------------------------------------------
def test_a_processing_payment_intent_is_pending_not_a_decline():
    backend, _http = stripe_backend((200, "payment_intent_processing.json"))
    result = backend.charge(types.SimpleNamespace(pk=1, stripe_customer_id="cus_x"),
                            Decimal("100"), "EUR", SEPA)
    assert (result.ok, result.pending, result.error) == (False, True, False)
    assert (result.decline_code, result.transaction_id) == ("", PI)


@pytest.mark.parametrize("response", [(402, "card_declined_authentication_required.json"),
                                      (200, "payment_intent_requires_action.json")])
def test_authentication_required_is_neither_soft_nor_hard(response):
    backend, _http = stripe_backend(response)
    result = backend.charge(types.SimpleNamespace(pk=1, stripe_customer_id="cus_x"),
                            Decimal("100"), "EUR", CARD)
    assert (result.ok, result.pending) == (False, False)
    assert result.decline_code == declines.AUTHENTICATION_REQUIRED
    assert declines.needs_customer(result.decline_code)
    assert not declines.is_hard(result.decline_code)
    # The scheduler never plans an off-session retry after it.
    decision = scheduler.next_attempt(
        [scheduler.Attempt(CARD, at(day(1), 11), declines.INSUFFICIENT_FUNDS),
         scheduler.Attempt(CARD, at(day(2), 8), result.decline_code)], [CARD, SEPA])
    assert (decision.at, decision.reason) == (None, scheduler.AUTHENTICATE)


def test_the_status_of_a_pending_intent_is_polled():
    backend, http = stripe_backend((200, "payment_intent_sepa_succeeded.json"))
    result = backend.payment_status(PI)
    assert result.ok and result.transaction_id == PI and result.amount == Decimal("100")
    assert http.requests[0]["method"] == "get"
    assert http.requests[0]["url"].endswith(f"/v1/payment_intents/{PI}")
    failed = result_of_intent(json.loads((FIXTURES / "event_payment_intent_payment_failed.json")
                                         .read_text())["data"]["object"])
    assert (failed.ok, failed.pending, failed.decline_code) == (
        False, False, declines.INSUFFICIENT_FUNDS)


# -- pending: never charged again ------------------------------------------------------------
def test_a_pending_debit_is_never_charged_again_and_settles_from_the_webhook(
        overdue_customer, run, stripe_site, stripe_clock, client, mailoutbox):
    customer, http = pending_sepa_debit(overdue_customer, run, stripe_site,
                                        (200, "payment_intent_processing.json"))
    pending = PaymentAttempt.objects.get(status=PaymentAttempt.Status.PENDING)
    assert (pending.transaction_id, pending.next_attempt_at, pending.decline_code) == (PI, None, "")
    case = Case.objects.get(customer=customer)
    assert case.status == Case.Status.OPEN and not case.needs_person
    assert case.events.filter(kind=CaseEvent.Kind.PAYMENT_PENDING).count() == 1
    assert not case.events.filter(kind=CaseEvent.Kind.PAYMENT_DECLINED, data__step="retry-1")
    # The host reports the same debt failed again meanwhile: its retry falls due, but the
    # pending debit is still processing (the poll says so): nothing is charged.
    record_failure(customer.pk, invoices=invoice_numbers(customer), method_id=SEPA,
                   decline_code="insufficient_funds", failed_at=at(day(2), 11))
    assert run_due_retries(now=at(day(3), 9)) == {"waiting": 1}
    assert [r["method"] for r in http.requests] == ["post", "get"]  # one charge, one poll
    assert not http.responses
    # Stripe's webhook: the debit succeeded.
    response = post_event(client, "event_payment_intent_succeeded.json")
    assert response.status_code == 200, response.content
    assert response.json() == {"received": "payment_intent.succeeded", "settled": True}
    pending.refresh_from_db()
    assert pending.status == PaymentAttempt.Status.SUCCEEDED
    case.refresh_from_db()
    # Settled on the event's date (day 2), not the clock's.
    assert (case.status, case.closed_on) == (Case.Status.RESOLVED, day(2))
    assert customer.invoices.get().amount_due == 0
    assert customer.invoices.get().paid_on == day(2)
    assert CaseStep.objects.filter(case=case, step_key="payment-received").count() == 1
    # A replayed event changes nothing.
    again = post_event(client, "event_payment_intent_succeeded.json")
    assert again.status_code == 200 and again.json()["settled"] is False
    assert case.events.filter(kind=CaseEvent.Kind.PAYMENT_COLLECTED).count() == 1
    assert CaseStep.objects.filter(case=case, step_key="payment-received").count() == 1
    assert [a.status for a in PaymentAttempt.objects.all()].count("succeeded") == 1
    # The waiting retry finds the debt paid: nothing is charged, ever.
    assert run_due_retries(now=at(day(10), 9)) == {"cancelled": 1}
    assert len(http.requests) == 2


def test_a_failed_debit_from_the_webhook_plans_the_next_retry(
        overdue_customer, run, stripe_site, stripe_clock, client):
    customer, _http = pending_sepa_debit(overdue_customer, run, stripe_site)
    response = post_event(client, "event_payment_intent_payment_failed.json")
    assert response.status_code == 200 and response.json()["settled"] is True
    attempt = PaymentAttempt.objects.get(transaction_id=PI)
    assert attempt.status == PaymentAttempt.Status.DECLINED
    assert attempt.decline_code == declines.INSUFFICIENT_FUNDS
    # retry-2: day 3 after the failure, at 09:00 in Berlin.
    assert (attempt.next_attempt_at, attempt.next_method_id) == (at(day(4), 8), SEPA)
    case = Case.objects.get(customer=customer)
    assert case.status == Case.Status.OPEN
    assert post_event(client, "event_payment_intent_payment_failed.json").json()["settled"] is False
    assert PaymentAttempt.objects.get(transaction_id=PI).next_attempt_at == at(day(4), 8)


def test_a_poll_settles_a_pending_debit_without_the_webhook(overdue_customer, run, stripe_site):
    customer, http = pending_sepa_debit(overdue_customer, run, stripe_site,
                                        (200, "payment_intent_sepa_succeeded.json"))
    assert run_due_retries(now=at(day(4), 11)) == {"settled-succeeded": 1}
    case = Case.objects.get(customer=customer)
    assert (case.status, case.closed_on) == (Case.Status.RESOLVED, day(4))
    assert [r["method"] for r in http.requests] == ["post", "get"]
    assert run_due_retries(now=at(day(5), 11)) == {}


# -- the webhook's edge -----------------------------------------------------------------------
def test_the_webhook_refuses_what_it_cannot_verify(db, stripe_site, stripe_clock, client):
    stripe_site()
    body = (FIXTURES / "event_payment_intent_succeeded.json").read_text()
    bad = post_event(client, "event_payment_intent_succeeded.json", secret="whsec_other")
    assert bad.status_code == 400 and "signature" in bad.json()["error"]
    assert post_event(client, "", body=body, header="").status_code == 400
    stale = post_event(client, "", body=body, header=signed(body, timestamp=EVENT_TIME - 3600))
    assert stale.status_code == 400
    garbage = "{not json"
    assert post_event(client, "", body=garbage).status_code == 400
    not_an_event = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded",
                               "data": {"object": {"object": "charge", "id": "ch_1"}}})
    assert post_event(client, "", body=not_an_event).status_code == 400
    other = json.dumps({"id": "evt_2", "object": "event", "type": "customer.created",
                        "created": EVENT_TIME, "data": {"object": {"id": "cus_1"}}})
    ignored = post_event(client, "", body=other)
    assert ignored.status_code == 200 and ignored.json()["settled"] is False
    assert client.get(WEBHOOK).status_code == 405


def test_the_webhook_is_off_without_a_secret(db, client, stripe_clock):
    response = post_event(client, "event_payment_intent_succeeded.json")
    assert response.status_code == 404


def test_an_unknown_payment_intent_is_acknowledged(db, stripe_site, stripe_clock, client):
    stripe_site()
    response = post_event(client, "event_payment_intent_succeeded.json")
    assert response.status_code == 200 and response.json()["settled"] is False


@pytest.mark.parametrize(("value", "check_id"), [(42, "dunning.E080"),
                                                 ("sk_live_oops", "dunning.W080")])
def test_a_bad_webhook_secret_is_reported(value, check_id):
    with override_dunning_settings(STRIPE_WEBHOOK_SECRET=value):
        found = [m.id for m in checks.run_checks(tags=["dunning"])]
    assert check_id in found
    with override_dunning_settings(STRIPE_WEBHOOK_SECRET=SECRET):
        found = [m.id for m in checks.run_checks(tags=["dunning"])]
    assert not {"dunning.E080", "dunning.W080"} & set(found)


# -- authentication required ------------------------------------------------------------------
def test_authentication_required_asks_the_customer_and_is_not_retried(
        overdue_customer, run, stripe_site, mailoutbox):
    customer = overdue_customer(timezone="Europe/Berlin", amount="100.00")
    run(1)
    http = stripe_site((402, "card_declined_authentication_required.json"))
    record_failure(customer.pk, invoices=invoice_numbers(customer), method_id=CARD,
                   decline_code="insufficient_funds", failed_at=at(day(1), 11))
    mailoutbox.clear()
    assert run_due_retries(now=at(day(2), 9)) == {"declined": 1, "gave-up": 1}
    attempt = PaymentAttempt.objects.latest("pk")
    assert (attempt.decline_code, attempt.next_attempt_at) == (
        declines.AUTHENTICATION_REQUIRED, None)
    case = Case.objects.get(customer=customer)
    assert case.events.filter(kind=CaseEvent.Kind.PAYMENT_AUTHENTICATION).count() == 1
    assert not case.needs_person  # the customer acts, not staff
    [message] = mailoutbox
    assert "payment-authentication" in message.tags
    assert "https://shop.example/dunning/portal/" in message.body
    assert "100.00" in message.body
    notice = PreDunningNotice.objects.get()
    assert (notice.kind, notice.reference, notice.status) == (
        PreDunningNotice.Kind.AUTHENTICATE_PAYMENT, str(attempt.pk), PreDunningNotice.Status.SENT)
    # Nothing is charged off-session again.
    assert run_due_retries(now=at(day(20), 9)) == {}
    assert len(http.requests) == 1


def test_the_authentication_message_is_translated(db):
    from dunning.shipped import shipped_message

    assert "bestätigen" in shipped_message("de", "payment-authentication")[0]
    assert "{{ portal_url }}" in shipped_message("en", "payment-authentication")[1]



def test_the_simulated_backend_has_pending_debits_too(overdue_customer, run):
    customer = overdue_customer(timezone="Europe/Berlin")
    other = overdue_customer(timezone="Europe/Berlin")
    run(1)
    with override_dunning_settings(
            PAYMENT_BACKEND="dunning.payments.simulated.SimulatedBackend",
            PAYMENT_BACKEND_OPTIONS={"outcomes": {
                str(customer.pk): {"sepa": [declines.INSUFFICIENT_FUNDS, "processing", "ok"]},
                str(other.pk): {"sepa": [declines.INSUFFICIENT_FUNDS, "processing"]}}}):
        for c in (customer, other):
            record_failure(c.pk, invoices=invoice_numbers(c), failed_at=at(day(1), 11))
        assert run_due_retries(now=at(day(2), 9)) == {"pending": 2}
        # The next run's poll: one debit went through, the other is still processing.
        assert run_due_retries(now=at(day(3), 11)) == {"settled-succeeded": 1}
    assert Case.objects.get(customer=customer).closed_on == day(3)
    assert Case.objects.get(customer=other).status == Case.Status.OPEN
    assert PaymentAttempt.objects.filter(customer_id=other.pk, status="pending").count() == 1
