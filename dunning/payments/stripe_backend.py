"""A payment backend on Stripe, through the official ``stripe`` library.

Install the extra: ``pip install django-dunning[stripe]``. Settings::

    DUNNING = {
        "PAYMENT_BACKEND": "dunning.payments.stripe_backend.StripeBackend",
        "PAYMENT_BACKEND_OPTIONS": {
            "api_key": "sk_live_...",          # or env STRIPE_API_KEY
            "customer_id_field": "stripe_customer_id",  # attribute of the host customer
        },
    }

A charge is an off-session PaymentIntent, created and confirmed in one request with the
stored PaymentMethod and an idempotency key; the invoice numbers go into its metadata.
A ``CardError`` becomes a decline with Stripe's ``decline_code`` (or ``code``) normalized
by dunning.payments.declines (``authentication_required``: the customer must authenticate,
never retried off-session); any other Stripe error (5xx, rate limit, network, invalid
request) becomes ``error=True``: nobody declined, the cap still bounds the retries.

A PaymentIntent left ``processing`` (SEPA Direct Debit, ACH) is *pending*, not a decline:
it is never charged again while pending, and settles from Stripe's webhook
(``payment_intent.succeeded`` / ``payment_intent.payment_failed`` at
``dunning/payments/stripe/webhook/``, verified with ``DUNNING["STRIPE_WEBHOOK_SECRET"]``;
see dunning.payments.stripe_webhook) or from :meth:`StripeBackend.payment_status`, which
every run polls. One left ``requires_action`` asks the customer to authenticate.
"""

from __future__ import annotations

import os
from decimal import Decimal

from babel.numbers import get_currency_precision

from . import declines
from .base import ChargeResult, PaymentBackend, StoredMethod


def minor_units(amount, currency):
    """``amount`` (Decimal, major units) as Stripe's integer amount for ``currency``."""
    precision = get_currency_precision(currency.upper())
    return int((Decimal(amount) * (10 ** precision)).to_integral_value())


class StripeBackend(PaymentBackend):
    name = "stripe"

    def __init__(self, api_key=None, customer_id_field="stripe_customer_id", http_client=None,
                 max_network_retries=2, client=None):
        import stripe

        self.stripe = stripe
        self.customer_id_field = customer_id_field
        if client is None:
            key = api_key or os.environ.get("STRIPE_API_KEY", "")
            client = stripe.StripeClient(key, http_client=http_client,
                                         max_network_retries=max_network_retries)
        self.client = client

    def stripe_customer(self, customer):
        return getattr(customer, self.customer_id_field, "") or ""

    def stored_methods(self, customer):
        stripe_customer = self.stripe_customer(customer)
        if not stripe_customer:
            return []
        listed = self.client.v1.customers.payment_methods.list(stripe_customer)
        methods = []
        for pm in listed.data:
            card = getattr(pm, "card", None) if pm.type == "card" else None
            label, expires = pm.type, None
            if card is not None:
                label = f"{card.brand.title()} •••• {card.last4}"
                expires = (card.exp_month, card.exp_year)
            methods.append(StoredMethod(id=pm.id, kind=pm.type, label=label, expires=expires))
        return methods

    def charge(self, customer, amount, currency, method, *, invoices=(), idempotency_key=""):
        stripe = self.stripe
        params = {
            "amount": minor_units(amount, currency),
            "currency": currency.lower(),
            "customer": self.stripe_customer(customer),
            "payment_method": method,
            "off_session": True,
            "confirm": True,
            "metadata": {"invoices": ",".join(invoices)[:500], "source": "django-dunning"},
        }
        options = {"idempotency_key": idempotency_key} if idempotency_key else {}
        try:
            intent = self.client.v1.payment_intents.create(params, options)
        except stripe.CardError as exc:
            err = exc.error
            decline_code = getattr(err, "decline_code", None) or ""
            code = getattr(err, "code", None) or exc.code or ""
            intent = getattr(err, "payment_intent", None)
            return ChargeResult(
                False, declines.from_stripe(decline_code, code), decline_code or code,
                exc.user_message or str(err.message or ""),
                transaction_id=(intent.id if intent is not None else ""),
            )
        except stripe.StripeError as exc:
            code = getattr(getattr(exc, "error", None), "code", None) or exc.code or ""
            status = exc.http_status or ""
            return ChargeResult(
                False, "", code or (f"http_{status}" if status else type(exc).__name__),
                (exc.user_message or str(exc))[:1000], error=True,
            )
        return result_of_intent(intent, Decimal(amount))

    def payment_status(self, transaction_id):
        """The outcome of a pending PaymentIntent now, or None when Stripe cannot be asked
        (the next poll or the webhook settles it)."""
        if not transaction_id.startswith("pi_"):
            return None
        try:
            intent = self.client.v1.payment_intents.retrieve(transaction_id)
        except self.stripe.StripeError:
            return None
        return result_of_intent(intent)


def _get(obj, name, default=None):
    """``obj[name]`` of a Stripe object or a plain dict (a webhook's parsed body)."""
    if obj is None:
        return default
    try:
        value = obj[name]
    except (KeyError, TypeError, IndexError):
        value = getattr(obj, name, default)
    return default if value is None else value


def result_of_intent(intent, amount=None):
    """The ChargeResult of a PaymentIntent (from a create, a retrieve or a webhook):

    * ``succeeded``: collected;
    * ``processing`` (SEPA Direct Debit, ACH: days until the bank answers): pending, never
      a decline;
    * ``requires_action`` (3-D Secure / SCA asked off-session): the customer must
      authenticate, ``authentication_required``, never retried off-session;
    * ``requires_payment_method`` / ``canceled``: declined, with the last payment error's
      ``decline_code`` (or ``code``) normalized.
    """
    status = _get(intent, "status", "")
    pid = _get(intent, "id", "")
    if amount is None and _get(intent, "amount") is not None:
        amount = Decimal(_get(intent, "amount")) / (
            10 ** get_currency_precision(str(_get(intent, "currency", "eur")).upper()))
    if status == "succeeded":
        return ChargeResult(True, transaction_id=pid, amount=amount)
    if status == "processing":
        return ChargeResult(False, raw_code="processing", transaction_id=pid, amount=amount,
                            message="PaymentIntent processing", pending=True)
    if status == "requires_action":
        return ChargeResult(False, declines.AUTHENTICATION_REQUIRED, "requires_action",
                            "PaymentIntent requires_action", transaction_id=pid, amount=amount)
    error = _get(intent, "last_payment_error")
    decline_code = _get(error, "decline_code", "")
    code = _get(error, "code", "")
    message = _get(error, "message", "") or f"PaymentIntent {status}"
    return ChargeResult(False, declines.from_stripe(decline_code, code),
                        decline_code or code or status, str(message)[:1000],
                        transaction_id=pid, amount=amount)
