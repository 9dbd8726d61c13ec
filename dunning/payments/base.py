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

Optional, for pre-dunning (dunning.payments.predunning; the defaults report nothing)::

    expiring_cards(start, end) -> iterable of (customer pk, StoredMethod)
        Stored cards whose last valid day (the end of their expiry month) lies between
        the dates ``start`` and ``end``; ``StoredMethod.expires`` must be set.

    upcoming_renewals(start, end) -> iterable of Renewal
        Renewal charges planned between ``start`` and ``end`` with the method they will
        be charged to.

    supports_account_updater = True, and refresh_method(customer, method) -> StoredMethod | None
        The card networks' account updater: the method's refreshed details (possibly a
        new id), or None when nothing changed. Called before a payment retry for
        customers who agreed to it on the self-service page.

Optional, for charges that settle later (a SEPA or ACH debit: ``charge`` returned
``ChargeResult(pending=True)``)::

    payment_status(transaction_id) -> ChargeResult | None
        The outcome now (``pending=True`` while still processing), or None when the
        backend cannot tell; polled by every run until the charge settles.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field
from decimal import Decimal

from ..plugins import Plugin, Result


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
class ChargeResult(Result):
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
    #: True when the processor accepted the charge but has not settled it yet (a SEPA
    #: or ACH debit "processing" for days): neither a success nor a decline. Never
    #: charged again while pending; settled by :meth:`PaymentBackend.payment_status` or
    #: the processor's webhook.
    pending: bool = False

    @property
    def reason(self):
        """The shared name of :attr:`message` (dunning.plugins.Result)."""
        return self.message

    @property
    def transient(self):
        """A technical failure (:attr:`error`): nobody declined, try again later."""
        return bool(self.error and not self.ok)


@dataclass(frozen=True)
class Renewal:
    customer_pk: object
    #: The date the renewal will be charged.
    on: datetime.date
    amount: Decimal
    currency: str
    method: StoredMethod


class PaymentBackend(Plugin):
    """Base class of payment backends (see the module's documentation): a subclass
    implements :meth:`stored_methods` and :meth:`charge`."""

    #: Shown in the admin and on the timeline.
    name = "payment backend"
    required = ("stored_methods", "charge")

    def stored_methods(self, customer) -> list[StoredMethod]:
        """The customer's stored payment methods, preferred first."""
        raise self.not_implemented("stored_methods")

    def charge(self, customer, amount: Decimal, currency: str, method: str, *,
               invoices=(), idempotency_key: str = "") -> ChargeResult:
        """Charge ``amount`` ``currency`` to the stored ``method``; never raises for a
        decline or a failure (see the module's documentation)."""
        raise self.not_implemented("charge")

    #: True when the backend can fetch refreshed card details (see refresh_method).
    supports_account_updater = False

    def expiring_cards(self, start, end):
        """(customer pk, StoredMethod) of the cards expiring between ``start`` and ``end``
        (dates); a backend that cannot tell reports none."""
        return []

    def upcoming_renewals(self, start, end):
        """The :class:`Renewal` charges planned between ``start`` and ``end``."""
        return []

    def refresh_method(self, customer, method):
        """The refreshed details of ``method`` from the account updater, or None."""
        return None

    def payment_status(self, transaction_id):
        """The outcome of a pending charge (a :class:`ChargeResult`, ``pending=True``
        while it is still processing), or None when the backend cannot tell (then it
        waits for the processor's webhook)."""
        return None
