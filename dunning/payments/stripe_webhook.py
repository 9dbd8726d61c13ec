"""Stripe's webhook: pending bank debits settle here (docs/payments.md).

Include ``dunning.urls`` and point a Stripe webhook endpoint at
``<where dunning.urls is included>payments/stripe/webhook/`` with the events
``payment_intent.succeeded`` and ``payment_intent.payment_failed``; put the endpoint's
signing secret into ``DUNNING["STRIPE_WEBHOOK_SECRET"]``.

Every request is verified by the official ``stripe`` library
(``stripe.Webhook.construct_event`` with the signing secret). The answers:

* 200 -- the event was taken (settled a pending charge), or it needs nothing from us (an
  event of another type, a PaymentIntent we did not create or settled already: Stripe
  delivers at least once, so a replayed event changes nothing);
* 400 -- a missing or bad signature, a timestamp outside Stripe's tolerance, or a body
  that is not a Stripe event (Stripe retries, and shows the reason in its dashboard);
* 404 -- no ``STRIPE_WEBHOOK_SECRET`` is set (the endpoint is off);
* 405 -- not a POST.

Never a 500 for what Stripe sends: a failure while settling is logged and answered 503,
so that Stripe delivers the event again later.
"""

from __future__ import annotations

import datetime
import logging

from django.http import JsonResponse
from django.utils.translation import gettext as _
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_POST

from ..conf import dunning_settings

logger = logging.getLogger(__name__)

#: The events that settle a pending charge; others are answered 200 and ignored.
SETTLING_EVENTS = ("payment_intent.succeeded", "payment_intent.payment_failed")


def refuse(status, message):
    return JsonResponse({"error": message}, status=status)


@csrf_exempt
@require_POST
def stripe_webhook(request):
    import stripe

    from .retries import settle
    from .stripe_backend import result_of_intent

    secret = dunning_settings.STRIPE_WEBHOOK_SECRET
    if not secret or not isinstance(secret, str):
        return refuse(404, _("The Stripe webhook is not set up (DUNNING['STRIPE_WEBHOOK_SECRET'])."))
    signature = request.headers.get("Stripe-Signature", "")
    if not signature:
        return refuse(400, _("The Stripe-Signature header is missing."))
    try:
        event = stripe.Webhook.construct_event(request.body, signature, secret)
    except stripe.SignatureVerificationError:
        return refuse(400, _("The Stripe signature does not match this endpoint's secret "
                             "(or is too old)."))
    except (ValueError, TypeError, KeyError, IndexError, UnicodeDecodeError):
        return refuse(400, _("The body is not a Stripe event."))
    try:
        event = event.to_dict()  # plain dicts and lists from here on
        kind = str(event["type"])
        intent = event["data"]["object"]
        created = int(event.get("created") or 0)
    except (AttributeError, KeyError, TypeError, ValueError):
        return refuse(400, _("The body is not a Stripe event."))
    if kind not in SETTLING_EVENTS:
        return JsonResponse({"received": kind, "settled": False})
    if (not isinstance(intent, dict) or intent.get("object") != "payment_intent"
            or not isinstance(intent.get("id"), str) or not intent["id"]):
        return refuse(400, _("The event does not carry a PaymentIntent."))
    result = result_of_intent(intent)
    if kind == "payment_intent.payment_failed" and result.ok:
        return refuse(400, _("A payment_failed event with a succeeded PaymentIntent."))
    at = datetime.datetime.fromtimestamp(created, tz=datetime.UTC) if created else None
    try:
        attempt = settle(intent["id"], result, at=at)
    except Exception:
        logger.exception("settling %s from Stripe's event %s failed", intent.get("id"),
                         event.get("id"))
        return refuse(503, _("The payment could not be recorded now; Stripe will retry."))
    return JsonResponse({"received": kind, "settled": attempt is not None})
