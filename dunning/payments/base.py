"""The interface of a payment backend.

A backend charges a customer's stored payment method (a card, a bank mandate) and reports
the outcome in a normalized form, so that the retry rules (dunning.payments.scheduler)
never see a processor's own codes. Subclass :class:`PaymentBackend` and name the class in
``DUNNING["PAYMENT_BACKEND"]``; keyword arguments come from
``DUNNING["PAYMENT_BACKEND_OPTIONS"]``.

Two methods::

    stored_methods(customer) -> list[StoredMethod]
        The customer's stored methods, the preferred (default) one first.

    charge(customer, amount, currency, method, *, invoices, idempotency_key) -> ChargeResult
        Charge ``amount`` (a Decimal in major units, e.g. Decimal("12.50")) in
        ``currency`` (ISO 4217) to ``method`` (a StoredMethod id). ``invoices`` are the
        invoice numbers paid by it (for the processor's metadata). ``idempotency_key``
        is the same when the same attempt is made again, so that a retried request never
        charges twice. Never raises for a decline or a processor/network failure: it
        returns a ChargeResult (``ok=False``; ``error=True`` for a failure that is not
        the issuer's answer).

``customer`` is the host's customer instance.
"""

from __future__ import annotations

import abc
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class StoredMethod:
    #: The processor's id of the method (e.g. Stripe's "pm_...").
    id: str
    #: "card", "sepa_debit", ...
    kind: str = "card"
    #: Shown to people: "Visa •••• 4242".
    label: str = ""
    #: (month, year) of a card's expiry, when known.
    expires: tuple | None = None


@dataclass(frozen=True)
class ChargeResult:
    ok: bool
    #: Normalized decline code (dunning.payments.declines), "" on success.
    decline_code: str = ""
    #: The processor's own code, as it sent it ("insufficient_funds", "card_declined").
    raw_code: str = ""
    message: str = ""
    transaction_id: str = ""
    #: True when the charge failed for a technical reason (5xx, timeout, network):
    #: nobody declined it, so it is retried like a soft decline.
    error: bool = False
    amount: Decimal | None = None
    extra: dict = field(default_factory=dict)


class PaymentBackend(abc.ABC):
    """Base class of payment backends (see the module's documentation)."""

    #: Shown in the admin and on the timeline.
    name = "payment backend"

    @abc.abstractmethod
    def stored_methods(self, customer) -> list[StoredMethod]:
        """The customer's stored payment methods, preferred first."""

    @abc.abstractmethod
    def charge(self, customer, amount: Decimal, currency: str, method: str, *,
               invoices=(), idempotency_key: str = "") -> ChargeResult:
        """Charge ``amount`` ``currency`` to the stored ``method``; never raises for a
        decline or a failure (see the module's documentation)."""
