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
by dunning.payments.declines; any other Stripe error (5xx, rate limit, network, invalid
request) becomes ``error=True``: nobody declined, the cap still bounds the retries.
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
        if intent.status == "succeeded":
            return ChargeResult(True, transaction_id=intent.id, amount=Decimal(amount))
        # requires_action (3-D Secure), requires_payment_method, processing ...
        return ChargeResult(False, declines.GENERIC, intent.status,
                            f"PaymentIntent {intent.status}", transaction_id=intent.id)
