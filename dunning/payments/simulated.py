"""A payment backend without a processor, for the demo and the tests.

Outcomes are deterministic per customer. Each customer has one or two stored methods and,
per method, a sequence of outcomes: the n-th charge of a method (counting the attempts
recorded in PaymentAttempt for that customer and method, the failure that started the
cycle included) gets the n-th outcome, the last one repeating. An outcome is "ok" or a
normalized decline code (dunning.payments.declines), or "error" for a processor failure.

Which scenario a customer gets:

* ``DUNNING["PAYMENT_BACKEND_OPTIONS"] = {"outcomes": {"<customer pk>": {"<method id>":
  ["insufficient_funds", "ok"], ...}}}`` names the methods and outcomes of chosen
  customers (keys are the customer's pk as a string);
* any other customer gets one of :data:`SCENARIOS`, chosen by a hash of its pk (the same
  customer always gets the same one).
"""

from __future__ import annotations

import hashlib
import uuid

from . import declines
from .base import ChargeResult, PaymentBackend, StoredMethod

OK = "ok"
ERROR = "error"

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

    def __init__(self, outcomes=None):
        self.outcomes = {str(k): v for k, v in (outcomes or {}).items()}

    def scenario(self, customer):
        """{method id: [outcome, ...]} of ``customer``."""
        pk = str(customer.pk)
        if pk in self.outcomes:
            return self.outcomes[pk]
        digest = hashlib.sha256(pk.encode()).digest()
        return SCENARIOS[digest[0] % len(SCENARIOS)][1]

    def stored_methods(self, customer):
        return [StoredMethod(id=method, kind="card", label=f"Simulated card {i}")
                for i, method in enumerate(self.scenario(customer), start=1)]

    def charges_so_far(self, customer, method):
        from ..models import PaymentAttempt

        return PaymentAttempt.objects.filter(customer_id=customer.pk, method_id=method).count()

    def charge(self, customer, amount, currency, method, *, invoices=(), idempotency_key=""):
        outcomes = self.scenario(customer).get(method)
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
        return ChargeResult(False, outcome, outcome, str(declines.label(outcome)))
