"""Payment backends and retries of failed payments (dunning.payments, docs/payments.md)."""

import datetime
import json
import types
from decimal import Decimal
from pathlib import Path

import pytest
import stripe

from dunning import signals
from dunning.models import Case, CaseEvent, CaseStep, PaymentAttempt
from dunning.payments import declines
from dunning.payments.retries import record_failure, run_due_retries
from dunning.payments.simulated import SCENARIOS, SimulatedBackend
from dunning.payments.stripe_backend import StripeBackend, minor_units
from dunning.testing import override_dunning_settings

from .conftest import day

FIXTURES = Path(__file__).parent / "fixtures" / "stripe"
UTC = datetime.UTC
SIMULATED = "dunning.payments.simulated.SimulatedBackend"


def at(date, hour, minute=0):
    return datetime.datetime.combine(date, datetime.time(hour, minute), tzinfo=UTC)


# -- the simulated backend -------------------------------------------------------------------
def test_simulated_outcomes_follow_the_configured_sequence(overdue_customer):
    customer = overdue_customer()
    backend = SimulatedBackend(outcomes={str(customer.pk): {
        "card1": [declines.INSUFFICIENT_FUNDS, "ok"], "card2": ["error"]}})
    assert [m.id for m in backend.stored_methods(customer)] == ["card1", "card2"]
    first = backend.charge(customer, Decimal("10"), "EUR", "card1", idempotency_key="k1")
    assert (first.ok, first.decline_code) == (False, declines.INSUFFICIENT_FUNDS)
    PaymentAttempt.objects.create(customer_id=customer.pk, amount=10, currency="EUR",
                                  method_id="card1", attempted_at=at(day(1), 9),
                                  status=PaymentAttempt.Status.DECLINED)
    second = backend.charge(customer, Decimal("10"), "EUR", "card1", idempotency_key="k1")
    assert second.ok and second.transaction_id.startswith("sim_")
    # The same idempotency key names the same transaction.
    assert backend.charge(customer, Decimal("10"), "EUR", "card1",
                          idempotency_key="k1").transaction_id == second.transaction_id
    error = backend.charge(customer, Decimal("10"), "EUR", "card2")
    assert (error.ok, error.error) == (False, True)


def test_simulated_scenarios_are_deterministic_per_customer(make_customer):
    backend = SimulatedBackend()
    customers = [make_customer() for _ in range(20)]
    chosen = [backend.scenario(c) for c in customers]
    assert chosen == [SimulatedBackend().scenario(c) for c in customers]
    assert len({json.dumps(s) for s in chosen}) > 1  # not everyone gets the same
    assert all(s in [sc for _name, sc in SCENARIOS] for s in chosen)


# -- the Stripe backend, against recorded responses ----------------------------------------------
class RecordedHTTPClient(stripe.HTTPClient):
    """Stripe's HTTP seam answering with recorded bodies; no network."""

    name = "recorded"

    def __init__(self, *responses):
        super().__init__()
        self.responses = list(responses)
        self.requests = []

    def request(self, method, url, headers, post_data=None, *, _usage=None):
        self.requests.append({"method": method, "url": url, "headers": dict(headers or {}),
                              "body": post_data})
        response = self.responses.pop(0)
        if isinstance(response, Exception):
            raise response
        status, name = response
        return (FIXTURES / name).read_text(), status, {"request-id": "req_recorded"}

    def close(self):
        pass


STRIPE_CUSTOMER = types.SimpleNamespace(pk=1, stripe_customer_id="cus_RkT7pQx1AbCdEf")


def stripe_backend(*responses):
    client = RecordedHTTPClient(*responses)
    return StripeBackend(api_key="sk_test_recorded", http_client=client,
                         max_network_retries=0), client


def test_stripe_success_creates_a_confirmed_off_session_payment_intent():
    backend, http = stripe_backend((200, "payment_intent_succeeded.json"))
    result = backend.charge(STRIPE_CUSTOMER, Decimal("120.50"), "EUR",
                            "pm_1QbXaa2eZvKYlo2CvisaOK", invoices=["INV-1"],
                            idempotency_key="dunning-retry-7")
    assert result.ok and result.transaction_id == "pi_3QbXyZ2eZvKYlo2C0a1b2c3d"
    [request] = http.requests
    assert request["method"] == "post"
    assert request["url"].endswith("/v1/payment_intents")
    assert request["headers"]["Idempotency-Key"] == "dunning-retry-7"
    body = request["body"]
    for part in ("amount=12050", "currency=eur", "customer=cus_RkT7pQx1AbCdEf",
                 "payment_method=pm_1QbXaa2eZvKYlo2CvisaOK", "off_session=true",
                 "confirm=true"):
        assert part in body


def test_stripe_insufficient_funds_is_a_soft_decline():
    backend, _http = stripe_backend((402, "card_declined_insufficient_funds.json"))
    result = backend.charge(STRIPE_CUSTOMER, Decimal("120.50"), "EUR", "pm_x")
    assert (result.ok, result.error) == (False, False)
    assert result.decline_code == declines.INSUFFICIENT_FUNDS
    assert result.raw_code == "insufficient_funds"
    assert result.transaction_id == "pi_3QbXz02eZvKYlo2C1a2b3c4d"
    assert declines.classify(result.decline_code) == declines.SOFT


def test_stripe_expired_card_is_a_hard_decline():
    backend, _http = stripe_backend((402, "card_declined_expired_card.json"))
    result = backend.charge(STRIPE_CUSTOMER, Decimal("120.50"), "EUR", "pm_x")
    assert (result.decline_code, result.raw_code) == (declines.EXPIRED, "expired_card")
    assert declines.is_hard(result.decline_code)


@pytest.mark.parametrize("response", [
    (500, "api_error_500.json"),
    stripe.APIConnectionError("Connection refused"),
])
def test_stripe_server_or_network_failure_is_an_error_not_a_decline(response):
    backend, _http = stripe_backend(response)
    result = backend.charge(STRIPE_CUSTOMER, Decimal("1"), "EUR", "pm_x")
    assert (result.ok, result.error, result.decline_code) == (False, True, "")


def test_stripe_stored_methods_and_minor_units():
    backend, http = stripe_backend((200, "customer_payment_methods.json"))
    methods = backend.stored_methods(STRIPE_CUSTOMER)
    assert [(m.id, m.kind) for m in methods] == [
        ("pm_1QbXaa2eZvKYlo2CvisaOK", "card"), ("pm_1QbXcc2eZvKYlo2CsepaDE", "sepa_debit")]
    assert methods[0].label == "Visa •••• 4242" and methods[0].expires == (8, 2028)
    assert http.requests[0]["url"].endswith("/v1/customers/cus_RkT7pQx1AbCdEf/payment_methods")
    assert minor_units(Decimal("1200"), "JPY") == 1200
    assert minor_units(Decimal("12.34"), "EUR") == 1234


# -- retries --------------------------------------------------------------------------------------
@pytest.fixture
def simulated():
    """Use the simulated backend with these outcomes for these customers."""
    overrides = []

    def use(outcomes, **settings):
        override = override_dunning_settings(
            PAYMENT_BACKEND=SIMULATED,
            PAYMENT_BACKEND_OPTIONS={"outcomes": {str(c.pk): o for c, o in outcomes.items()}},
            **settings)
        override.enable()
        overrides.append(override)

    yield use
    for override in reversed(overrides):
        override.disable()


@pytest.fixture
def collected():
    calls = []

    def receiver(sender, **kwargs):
        calls.append(kwargs)

    signals.payment_succeeded.connect(receiver)
    yield calls
    signals.payment_succeeded.disconnect(receiver)


def invoice_numbers(customer):
    return list(customer.invoices.values_list("number", flat=True))


def thank_yous(mailoutbox):
    return [m for m in mailoutbox if "payment-received" in m.tags]


def test_soft_decline_is_retried_on_schedule_and_success_resolves_the_case(
        overdue_customer, run, simulated, collected, mailoutbox):
    customer = overdue_customer(amount="120.50", timezone="Europe/Berlin")
    run(1)  # the case opens
    case = Case.objects.get(customer=customer)
    simulated({customer: {"card1": [declines.INSUFFICIENT_FUNDS, declines.INSUFFICIENT_FUNDS,
                                    "ok"]}})
    first = record_failure(customer.pk, invoices=invoice_numbers(customer),
                           decline_code="insufficient_funds", failed_at=at(day(1), 14))
    assert first.case == case and first.amount == Decimal("120.50")
    # Day 1 after the failure at 09:00 in Berlin (08:00 UTC in March).
    assert (first.next_attempt_at, first.next_method_id) == (at(day(2), 8), "card1")
    assert run_due_retries(now=at(day(2), 7, 59)) == {}
    assert run_due_retries(now=at(day(2), 8)) == {"declined": 1}
    second = PaymentAttempt.objects.latest("pk")
    assert second.next_attempt_at == at(day(4), 8)  # day 3 after the failure
    assert not thank_yous(mailoutbox) and not collected
    assert run_due_retries(now=at(day(4), 8)) == {"succeeded": 1}
    # Paid, resolved, thanked once, the host told once.
    customer.invoices.get().refresh_from_db()
    assert customer.invoices.get().amount_due == 0
    case.refresh_from_db()
    assert case.status == Case.Status.RESOLVED
    assert len(thank_yous(mailoutbox)) == 1
    assert CaseStep.objects.filter(case=case, step_key="payment-received").count() == 1
    [call] = collected
    assert call["case"] == case and call["customer"] == customer
    assert (call["amount"], call["currency"]) == (Decimal("120.50"), "EUR")
    assert call["invoices"] == invoice_numbers(customer)
    assert call["transaction_id"].startswith("sim_")
    kinds = list(case.events.values_list("kind", flat=True))
    assert kinds.count(CaseEvent.Kind.PAYMENT_DECLINED) == 2
    assert kinds.count(CaseEvent.Kind.PAYMENT_COLLECTED) == 1
    # Nothing is left to retry; later runs charge nothing and thank nobody again.
    assert run_due_retries(now=at(day(30), 12)) == {}
    run(31)
    assert len(thank_yous(mailoutbox)) == 1


def test_hard_decline_switches_to_the_next_method(overdue_customer, run, simulated, collected):
    customer = overdue_customer()
    run(1)
    simulated({customer: {"card1": [declines.EXPIRED], "card2": ["ok"]}})
    first = record_failure(customer.pk, invoices=invoice_numbers(customer),
                           method_id="card1", decline_code="expired_card",
                           failed_at=at(day(1), 14))
    assert first.decline_code == declines.EXPIRED
    assert (first.next_attempt_at, first.next_method_id) == (at(day(2), 9), "card2")
    assert run_due_retries(now=at(day(2), 9)) == {"succeeded": 1}
    assert PaymentAttempt.objects.filter(method_id="card1").count() == 1  # never retried
    assert Case.objects.get(customer=customer).status == Case.Status.RESOLVED
    assert len(collected) == 1


def test_hard_decline_of_the_only_method_asks_for_an_update(overdue_customer, run, simulated):
    customer = overdue_customer()
    run(1)
    simulated({customer: {"card1": [declines.LOST_OR_STOLEN]}})
    first = record_failure(customer.pk, invoices=invoice_numbers(customer),
                           decline_code="lost_card", failed_at=at(day(1), 14))
    assert first.next_attempt_at is None
    case = Case.objects.get(customer=customer)
    assert case.needs_person and case.status == Case.Status.OPEN
    assert case.events.filter(kind=CaseEvent.Kind.PAYMENT_UPDATE_METHOD).count() == 1
    assert run_due_retries(now=at(day(20), 9)) == {}
    assert PaymentAttempt.objects.count() == 1


def test_a_payment_made_meanwhile_cancels_the_retry(overdue_customer, run, simulated):
    customer = overdue_customer()
    run(1)
    simulated({customer: {"card1": [declines.INSUFFICIENT_FUNDS, "ok"]}})
    record_failure(customer.pk, invoices=invoice_numbers(customer), failed_at=at(day(1), 14))
    customer.invoices.update(amount_due=0)
    assert run_due_retries(now=at(day(2), 9)) == {"cancelled": 1}
    assert not PaymentAttempt.objects.filter(status=PaymentAttempt.Status.SUCCEEDED).exists()


def test_without_a_backend_nothing_is_retried(overdue_customer):
    customer = overdue_customer()
    assert record_failure(customer.pk, invoices=invoice_numbers(customer)) is None
    assert run_due_retries() == {}
    assert not PaymentAttempt.objects.exists()


def test_the_cap_per_method_is_never_exceeded(overdue_customer, run, simulated):
    """Failures every 9 days, always declined, retries every morning for 90 days: no
    retry is ever made on a method that had the cap's number of attempts in 30 days."""
    customer = overdue_customer()
    run(1)
    cap = 3
    simulated({customer: {"card1": [declines.DO_NOT_HONOR], "card2": [declines.TRY_AGAIN_LATER]}},
              PAYMENT_MAX_ATTEMPTS_PER_METHOD_30_DAYS=cap)
    for n in range(1, 91):
        if n % 9 == 1:
            record_failure(customer.pk, invoices=invoice_numbers(customer), method_id="card1",
                           decline_code="do_not_honor", failed_at=at(day(n), 7))
        run_due_retries(now=at(day(n), 10))
    attempts = list(PaymentAttempt.objects.order_by("attempted_at", "pk"))
    retries = [a for a in attempts if a.cycle_id is not None]
    assert len(retries) > 10 and {a.method_id for a in retries} == {"card1", "card2"}
    for retry in retries:
        window = [a for a in attempts if a.method_id == retry.method_id
                  and retry.attempted_at - datetime.timedelta(days=30) < a.attempted_at
                  <= retry.attempted_at and a.pk <= retry.pk]
        assert len(window) <= cap, retry


def test_payment_failed_event_plans_retries(overdue_customer, boss, admin_client, simulated):
    customer = overdue_customer()
    simulated({customer: {"card1": [declines.INSUFFICIENT_FUNDS, "ok"]}})
    [number] = invoice_numbers(customer)
    response = admin_client.post("/dunning/api/v1/payment-events/",
                                 {"type": "payment.failed", "invoice": number},
                                 content_type="application/json")
    assert response.status_code == 200, response.content
    attempt = PaymentAttempt.objects.get()
    assert attempt.invoices == [number] and attempt.next_method_id == "card1"
    assert attempt.next_attempt_at is not None


def test_the_admin_lists_attempts_read_only(overdue_customer, run, simulated, admin_client):
    customer = overdue_customer()
    run(1)
    simulated({customer: {"card1": [declines.INSUFFICIENT_FUNDS]}})
    record_failure(customer.pk, invoices=invoice_numbers(customer),
                   decline_code="insufficient_funds", failed_at=at(day(1), 14))
    page = admin_client.get("/admin/dunning/paymentattempt/")
    assert page.status_code == 200
    assert b"insufficient_funds" in page.content
    assert admin_client.get("/admin/dunning/paymentattempt/add/").status_code == 403


def test_a_payment_failed_event_carries_its_decline_code_and_method(overdue_customer, boss,
                                                                    admin_client, simulated):
    """An expired card reported by the host is a hard decline of that method: the retry
    goes to the customer's other stored method, never to the expired one."""
    customer = overdue_customer()
    simulated({customer: {"card1": ["ok"], "card2": ["ok"]}})
    [number] = invoice_numbers(customer)
    response = admin_client.post("/dunning/api/v1/payment-events/", {
        "type": "payment.failed", "invoice": number, "decline_code": "expired_card",
        "payment_method": "card1",
    }, content_type="application/json")
    assert response.status_code == 200, response.content
    attempt = PaymentAttempt.objects.get()
    assert (attempt.method_id, attempt.decline_code) == ("card1", declines.EXPIRED)
    assert attempt.next_method_id == "card2"


def test_a_retry_collected_by_a_back_dated_run_closes_the_case_on_that_runs_date(
        overdue_customer, run, simulated, mailoutbox):
    """The case is resolved, its thank-you dated and the invoice paid on the date of the
    run that charged the retry (a back-dated run, the demo), never on the clock's date."""
    customer = overdue_customer(timezone="Europe/Berlin")
    run(1)
    simulated({customer: {"card1": [declines.INSUFFICIENT_FUNDS, "ok"]}})
    record_failure(customer.pk, invoices=invoice_numbers(customer),
                   decline_code="insufficient_funds", failed_at=at(day(1), 11))
    noon = at(day(2), 11)  # 12:00 in Berlin
    assert run_due_retries(now=noon) == {"succeeded": 1}
    case = Case.objects.get(customer=customer)
    assert (case.status, case.closed_on) == (Case.Status.RESOLVED, day(2))
    thanks = CaseStep.objects.get(case=case, step_key="payment-received")
    assert thanks.executed_on == day(2)
    assert customer.invoices.get().paid_on == day(2)
    # An explicit run date wins over the instant's.
    other = overdue_customer(timezone="Europe/Berlin")
    run(1)
    simulated({other: {"card1": [declines.INSUFFICIENT_FUNDS, "ok"]}})
    record_failure(other.pk, invoices=invoice_numbers(other), failed_at=at(day(1), 11))
    assert run_due_retries(now=at(day(3), 11), as_of=day(3)) == {"succeeded": 1}
    assert Case.objects.get(customer=other).closed_on == day(3)
