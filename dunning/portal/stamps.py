"""The stamp every self-service form carries: which form it is, whose, a key of its own and
the state of the thing it changes as the page showed it, signed with Django's signing.

On POST the page reads the stamp back and

* a stamp that does not verify (missing, tampered, another customer's or another form's)
  is refused: the form did not come from this customer's page;
* a key already carried out (:class:`~dunning.models.PortalSubmission`) is a replay (the
  back button, a double click, a resent request): nothing changes and the page answers
  with the same success message as the first time;
* a state that is not the current one is a stale form (another tab, another device, a
  change by staff or by an unsubscribe link since): refused with a friendly message, so an
  old page never silently replaces something newer.

The state of each form, read with one small query when the page is rendered and when the
form is sent:

========== =====================================================================
promise    the case's latest promise (timeline event), by any door
plan       the case's latest payment plan
channels   the customer's latest contact preference entry for the page's channels
updater    the customer's latest account-updater answer
pay        the balance the button names (amount, currency and invoices)
dispute,   nothing: each one adds something of its own; the key makes a replay
feedback   change nothing
========== =====================================================================
"""

from __future__ import annotations

import datetime
import hashlib
import uuid
from dataclasses import dataclass

from django.core import signing
from django.db import IntegrityError, transaction
from django.utils import timezone

from ..conf import dunning_settings
from ..models import CaseEvent, Consent, PortalSubmission
from ..models.consent import ACCOUNT_UPDATER, channel_topic
from . import services

SALT = "dunning.portal.form"


@dataclass(frozen=True)
class Stamp:
    action: str
    key: str
    state: str


def _customer_key(portfolio):
    return str(portfolio.customer.pk)


def current_state(action, portfolio):
    """The version of what form ``action`` changes, as text (see the module docstring)."""
    case = portfolio.case
    if action == "promise":
        if case is None:
            return ""
        latest = (CaseEvent.objects.filter(case=case, kind=CaseEvent.Kind.PROMISE)
                  .order_by("-pk").values_list("pk", flat=True).first())
        return str(latest or 0)
    if action == "plan":
        if case is None:
            return ""
        return str(case.payment_plans.order_by("-pk").values_list("pk", flat=True).first() or 0)
    if action in ("channels", "updater"):
        topics = ([channel_topic(c) for c in services.portal_channels()] if action == "channels"
                  else [ACCOUNT_UPDATER])
        latest = (Consent.objects.filter(customer_key=_customer_key(portfolio), topic__in=topics)
                  .order_by("-pk").values_list("pk", flat=True).first())
        return str(latest or 0)
    if action == "pay":
        if not portfolio.invoices:
            return ""
        amount, currency, numbers = services.payable(portfolio)
        return hashlib.sha256(
            f"{amount}|{currency}|{','.join(numbers)}".encode()).hexdigest()[:16]
    return ""


def make(action, portfolio, state=None):
    """The signed stamp of a fresh form ``action`` of the page of ``portfolio``."""
    return signing.dumps({
        "a": action, "c": _customer_key(portfolio), "k": uuid.uuid4().hex,
        "s": current_state(action, portfolio) if state is None else state,
    }, salt=SALT, compress=False)


def read(value, action, portfolio):
    """The :class:`Stamp` of a posted form ``action``, or None when it does not verify,
    belongs to another customer or another form, or is older than a self-service link
    (PORTAL_LINK_MAX_AGE: the keys of older forms are not kept, see claim())."""
    if not value or len(value) > 1000:
        return None
    try:
        payload = signing.loads(value, salt=SALT, max_age=dunning_settings.PORTAL_LINK_MAX_AGE)
        stamp = Stamp(str(payload["a"]), str(payload["k"]), str(payload["s"]))
        customer = str(payload["c"])
    except (signing.BadSignature, KeyError, TypeError, ValueError):
        return None
    if stamp.action != action or customer != _customer_key(portfolio) or not stamp.key:
        return None
    return stamp


def seen(portfolio, stamp):
    """Whether the form with this stamp was carried out already (a replay)."""
    return PortalSubmission.objects.filter(
        customer_key=_customer_key(portfolio), key=stamp.key).exists()


def claim(portfolio, stamp):
    """Note the form as carried out; False when it already was (two requests at once: the
    unique constraint lets one through). The keys of forms older than PORTAL_LINK_MAX_AGE
    go (one indexed DELETE): read() refuses such stamps anyway, so the table holds at most
    one link lifetime of forms."""
    cutoff = timezone.now() - datetime.timedelta(seconds=dunning_settings.PORTAL_LINK_MAX_AGE)
    PortalSubmission.objects.filter(created_at__lt=cutoff).delete()
    try:
        with transaction.atomic():
            PortalSubmission.objects.create(
                customer_key=_customer_key(portfolio), key=stamp.key, action=stamp.action)
    except IntegrityError:
        return False
    return True


def release(portfolio, stamp):
    """The form was not carried out after all (refused): it may be sent again."""
    PortalSubmission.objects.filter(customer_key=_customer_key(portfolio), key=stamp.key).delete()
