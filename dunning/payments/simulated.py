"""A payment backend without a processor, for the demo and the tests.

Outcomes are deterministic per customer. Each customer has one or two stored methods and,
per method, a sequence of outcomes: the n-th charge of a method (counting the attempts
recorded in PaymentAttempt for that customer and method, the failure that started the
cycle included) gets the n-th outcome, the last one repeating. An outcome is "ok" or a
normalized decline code (dunning.payments.declines), "error" for a processor failure, or
"processing" for a bank debit left pending (``payment_status`` settles it with the outcome
after it in the sequence; a last "processing" stays pending).

Which scenario a customer gets:

* ``DUNNING["PAYMENT_BACKEND_OPTIONS"] = {"outcomes": {"<customer pk>": {"<method id>":
  ["insufficient_funds", "ok"], ...}}}`` names the methods and outcomes of chosen
  customers (keys are the customer's pk as a string);
* any other customer gets one of :data:`SCENARIOS`, chosen by a hash of its pk (the same
  customer always gets the same one).

Pre-dunning (dunning.payments.predunning):

* every card has an expiry month: ``"cards": {"<customer pk>": {"<method id>": [month,
  year]}}`` names it, else it is derived from the hash of the customer's pk (one of the
  36 months from January 2025, so a few customers' cards expire in any month);
* ``"monthly_renewal": {"amount": "29.00", "currency": "EUR"}`` gives every customer a
  monthly renewal on a day of the month derived from the hash (none by default);
* ``"account_updater": True`` turns on the account updater: a card with an expiry
  decline in its scenario is refreshed to ``<id>-renewed``, which always succeeds.
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from decimal import Decimal

from . import declines
from .base import ChargeResult, PaymentBackend, Renewal, StoredMethod

OK = "ok"
ERROR = "error"
#: A bank debit the processor accepted and has not settled (pending, never a decline).
PROCESSING = "processing"
RENEWED = "-renewed"
EXPIRY_EPOCH = (2025, 1)

SCENARIOS = [
    # name, {method: outcomes}
    ("pays-on-retry", {"sim_card_1": [declines.INSUFFICIENT_FUNDS, OK]}),
    ("pays-on-payday", {"sim_card_1": [declines.INSUFFICIENT_FUNDS,
                                       declines.INSUFFICIENT_FUNDS, OK]}),
    ("expired-then-second-card", {"sim_card_1": [declines.EXPIRED],
                                  "sim_card_2": [OK]}),
    ("always-soft", {"sim_card_1": [declines.DO_NOT_HONOR]}),
    ("lost-card", {"sim_card_1": [declines.LOST_OR_STOLEN]}),
]


class SimulatedBackend(PaymentBackend):
    name = "simulated"

    def __init__(self, outcomes=None, cards=None, monthly_renewal=None, account_updater=False):
        self.outcomes = {str(k): v for k, v in (outcomes or {}).items()}
        self.cards = {str(k): v for k, v in (cards or {}).items()}
        self.monthly_renewal = monthly_renewal
        self.supports_account_updater = bool(account_updater)

    @staticmethod
    def digest(pk):
        return hashlib.sha256(str(pk).encode()).digest()

    def scenario(self, customer):
        """{method id: [outcome, ...]} of ``customer``."""
        return self.scenario_of(customer.pk)

    def scenario_of(self, pk):
        if str(pk) in self.outcomes:
            return self.outcomes[str(pk)]
        return SCENARIOS[self.digest(pk)[0] % len(SCENARIOS)][1]

    def expiry(self, pk, method):
        """(month, year) of a card."""
        named = self.cards.get(str(pk), {}).get(method)
        if named:
            return tuple(named)
        months = EXPIRY_EPOCH[1] - 1 + self.digest(f"{pk}:{method}")[1] % 36
        return (months % 12 + 1, EXPIRY_EPOCH[0] + months // 12)

    def methods_of(self, pk):
        return [StoredMethod(id=method, kind="card", label=f"Simulated card {i}",
                             expires=self.expiry(pk, method))
                for i, method in enumerate(self.scenario_of(pk), start=1)]

    def stored_methods(self, customer):
        return self.methods_of(customer.pk)

    def customer_pks(self):
        from ..hosts import get_customer_model

        return get_customer_model()._default_manager.values_list("pk", flat=True).iterator()

    def expiring_cards(self, start, end):
        from .predunning import card_expiry_date

        for pk in self.customer_pks():
            for method in self.methods_of(pk):
                if start <= card_expiry_date(method.expires) <= end:
                    yield pk, method

    def upcoming_renewals(self, start, end):
        if not self.monthly_renewal:
            return
        amount = Decimal(str(self.monthly_renewal.get("amount", "29.00")))
        currency = self.monthly_renewal.get("currency", "EUR")
        for pk in self.customer_pks():
            day = self.digest(pk)[2] % 28 + 1
            methods = self.methods_of(pk)
            month = start.replace(day=1)
            while methods and month <= end:
                on = month.replace(day=day)
                if start <= on <= end:
                    yield Renewal(pk, on, amount, currency, methods[0])
                month = (month + datetime.timedelta(days=32)).replace(day=1)

    def refresh_method(self, customer, method):
        outcomes = self.scenario(customer).get(method) or []
        if self.supports_account_updater and declines.EXPIRED in outcomes:
            month, year = self.expiry(customer.pk, method)
            return StoredMethod(id=method + RENEWED, kind="card", label="Simulated card (renewed)",
                                expires=(month, year + 3))
        return None

    def charges_so_far(self, customer, method):
        from ..models import PaymentAttempt

        return PaymentAttempt.objects.filter(customer_id=customer.pk, method_id=method).count()

    def charge(self, customer, amount, currency, method, *, invoices=(), idempotency_key=""):
        outcomes = [OK] if method.endswith(RENEWED) else self.scenario(customer).get(method)
        if not outcomes:
            return ChargeResult(False, declines.INVALID_ACCOUNT, "no_such_method",
                                f"No stored method {method!r}.")
        n = self.charges_so_far(customer, method)
        outcome = outcomes[min(n, len(outcomes) - 1)]
        if outcome == OK:
            key = idempotency_key or uuid.uuid4().hex
            return ChargeResult(True, transaction_id="sim_" + hashlib.sha256(
                key.encode()).hexdigest()[:16], amount=amount)
        if outcome == ERROR:
            return ChargeResult(False, "", "error", "Simulated processor failure.", error=True)
        if outcome == PROCESSING:
            key = idempotency_key or uuid.uuid4().hex
            return ChargeResult(False, raw_code=PROCESSING, message="Simulated bank debit.",
                                transaction_id="sim_" + hashlib.sha256(key.encode()).hexdigest()[:16],
                                amount=amount, pending=True)
        return ChargeResult(False, outcome, outcome, str(declines.label(outcome)))

    def payment_status(self, transaction_id):
        """A pending simulated debit settles with the outcome after it in its method's
        sequence (it stays pending when it is the last)."""
        from ..models import PaymentAttempt

        attempt = PaymentAttempt.objects.filter(transaction_id=transaction_id).first()
        if attempt is None:
            return None
        outcomes = self.scenario_of(attempt.customer_id).get(attempt.method_id) or [OK]
        # The pending charge was the n-th: it settles with the (n+1)-th outcome.
        n = self.charges_so_far(attempt.customer, attempt.method_id)
        outcome = outcomes[min(n, len(outcomes) - 1)]
        if outcome == PROCESSING:
            return ChargeResult(False, raw_code=PROCESSING, transaction_id=transaction_id,
                                pending=True)
        if outcome == OK:
            return ChargeResult(True, transaction_id=transaction_id, amount=attempt.amount)
        if outcome == ERROR:
            return ChargeResult(False, "", "error", "Simulated processor failure.",
                                transaction_id=transaction_id, error=True)
        return ChargeResult(False, outcome, outcome, str(declines.label(outcome)),
                            transaction_id=transaction_id)
