"""A fresh link for a customer whose link expired or was revoked.

The page a broken link shows is the same whatever is wrong with it (tampered, expired,
revoked, a customer that no longer exists), and so is the answer to its "email me a new
link" button: nobody learns from it whether an account exists. Only a link whose signature
is good names a customer; that customer gets the new link at the email address on file, at
most ``PORTAL_RESEND_PER_HOUR`` times an hour.
"""

from __future__ import annotations

import logging

from django.conf import settings
from django.core.cache import cache
from django.urls import reverse
from django.utils import translation
from django.utils.translation import gettext as _

from ..channels.email import EmailChannel
from ..conf import dunning_settings
from ..hosts import get_adapter
from .tokens import make_token, portal_url, token_customer

logger = logging.getLogger("dunning.portal")

WINDOW = 60 * 60


def allowed(customer_key):
    """Count a resend for the customer; False once the hourly limit is reached."""
    key = f"dunning:portal-resend:{customer_key}"
    cache.add(key, 0, WINDOW)
    try:
        count = cache.incr(key)
    except ValueError:  # expired between add and incr
        cache.set(key, 1, WINDOW)
        count = 1
    return count <= int(dunning_settings.PORTAL_RESEND_PER_HOUR)


def fresh_link(request, customer_pk):
    return portal_url(customer_pk) or request.build_absolute_uri(
        reverse("dunning:portal", kwargs={"token": make_token(customer_pk)}))


def resend(request, token):
    """Email a fresh link for ``token`` when it names a customer with an email address and
    the limit allows; returns whether a message went out (never shown to the visitor)."""
    customer_key = token_customer(token)
    if customer_key is None:
        return False
    try:
        rows = get_adapter().customer_rows([customer_key])
    except (ValueError, TypeError):
        return False
    customer = next((row for pk, row in rows.items() if str(pk) == customer_key), None)
    if customer is None:
        return False
    address, problem = EmailChannel().recipient(customer)
    if problem or not allowed(customer_key):
        return False
    from django.core.mail import EmailMessage

    with translation.override(customer.language or settings.LANGUAGE_CODE):
        message = EmailMessage(
            subject=_("Your new link"),
            body=_("Hello %(name)s,\n\nhere is your new link to your open invoices, where you "
                   "can pay, promise a date, ask for a payment plan or dispute an invoice:\n\n"
                   "%(link)s\n\nIf you did not ask for it, you can ignore this message.\n") % {
                "name": customer.name or customer.email, "link": fresh_link(request, customer.pk)},
            from_email=dunning_settings.FROM_EMAIL or settings.DEFAULT_FROM_EMAIL,
            to=[address],
        )
    message.send()
    logger.info("Sent a fresh portal link to customer %s", customer_key)
    return True
