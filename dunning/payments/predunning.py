"""Pre-dunning: messages before anything is overdue (docs/payments.md).

For a payment backend that reports card expiry dates and upcoming renewals
(:meth:`~dunning.payments.base.PaymentBackend.expiring_cards`,
:meth:`~dunning.payments.base.PaymentBackend.upcoming_renewals`):

* a notice ``card-expiring-30`` / ``card-expiring-7`` when a stored card expires within 30
  / 7 days (``DUNNING["PREDUNNING_CARD_DAYS"]``; only the most urgent one that applies, each
  once per card and expiry month);
* a notice ``renewal-card-expiring`` before a renewal (``PREDUNNING_RENEWAL_DAYS`` ahead)
  that would be charged to a card expiring before it, once per renewal;
* for a backend that supports the card networks' account updater, the question
  ``account-updater-consent``, asked once per customer (of customers with an expiring card,
  a renewal on one, or a failed payment in the last 30 days) and answered on the
  self-service page; :func:`refresh_before_retry` then fetches the refreshed card details
  before each payment retry of a customer who agreed.

The messages are the default policy's templates of these keys (editable in the admin like
every step's), sent through the email channel, and logged as :class:`PreDunningNotice`
rows. Each notice is claimed by inserting its row (the unique constraint lets one worker
win) before it is handed over: at most once, like the outbox.
"""

from __future__ import annotations

import calendar
import datetime
import logging
import uuid
from collections import Counter
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..channels.base import Outgoing
from ..conf import dunning_settings, load_plugin
from ..formatting import babel_locale, format_day, format_money
from ..hosts import ANNOTATION_PREFIX, get_adapter
from ..messages.rendering import Renderer, build_context, company_context
from ..models import CaseEvent, Consent, MessageTemplate, PaymentAttempt, Policy, PreDunningNotice
from ..models.consent import ACCOUNT_UPDATER, opted_out_channels
from ..unsubscribe.links import message_link
from . import get_backend

logger = logging.getLogger(__name__)

Kind = PreDunningNotice.Kind
#: Customers with a failed payment this recently are asked about the account updater.
CONSENT_LOOKBACK = datetime.timedelta(days=30)


def card_expiry_date(expires):
    """The last day a card with ``expires`` = (month, year) can be charged."""
    month, year = expires
    return datetime.date(year, month, calendar.monthrange(year, month)[1])


def card_kind(days_left, thresholds):
    """The notice for a card expiring in ``days_left`` days: the smallest threshold that
    applies (``card-expiring-7`` rather than ``-30`` a week before), or None."""
    for days in sorted(thresholds):
        if 0 <= days_left <= days:
            return f"card-expiring-{days}"
    return None


def wanted_notices(backend, today, using=DEFAULT_DB_ALIAS):
    """[(customer pk, kind, method id, reference, data)] due today (not yet deduplicated
    against the notices already sent; the unique constraint does that)."""
    thresholds = [int(d) for d in dunning_settings.PREDUNNING_CARD_DAYS or ()]
    wanted = []
    reached = set()
    if thresholds:
        for customer_pk, method in backend.expiring_cards(
            today, today + datetime.timedelta(days=max(thresholds))
        ):
            if not method.expires:
                continue
            last_day = card_expiry_date(method.expires)
            kind = card_kind((last_day - today).days, thresholds)
            if kind:
                reached.add(customer_pk)
                wanted.append((customer_pk, kind, method.id,
                               f"{method.expires[1]:04d}-{method.expires[0]:02d}",
                               {"label": method.label, "expires": list(method.expires)}))
    ahead = int(dunning_settings.PREDUNNING_RENEWAL_DAYS or 0)
    if ahead:
        for renewal in backend.upcoming_renewals(today, today + datetime.timedelta(days=ahead)):
            method = renewal.method
            # A card that has expired already is the update-method path, not a notice.
            if method.expires and today <= card_expiry_date(method.expires) < renewal.on:
                reached.add(renewal.customer_pk)
                wanted.append((renewal.customer_pk, Kind.RENEWAL_CARD_EXPIRING, method.id,
                               renewal.on.isoformat(),
                               {"label": method.label, "expires": list(method.expires),
                                "amount": str(renewal.amount), "currency": renewal.currency,
                                "on": renewal.on.isoformat()}))
    if getattr(backend, "supports_account_updater", False):
        since = datetime.datetime.combine(today, datetime.time(), tzinfo=datetime.UTC) - (
            CONSENT_LOOKBACK)
        reached.update(PaymentAttempt.objects.using(using).filter(attempted_at__gte=since)
                       .values_list("customer_id", flat=True).distinct())
        answered = set(Consent.objects.using(using).filter(
            topic=ACCOUNT_UPDATER, customer_key__in=[str(pk) for pk in reached],
        ).values_list("customer_key", flat=True))
        wanted.extend((pk, Kind.UPDATER_CONSENT, "", "", {})
                      for pk in sorted(reached, key=str) if str(pk) not in answered)
    return wanted


def claim(wanted, now, using=DEFAULT_DB_ALIAS):
    """Insert the wanted notices that were never sent; returns the rows this call
    inserted (another worker's or an earlier run's are left alone)."""
    token = uuid.uuid4().hex
    PreDunningNotice.objects.using(using).bulk_create(
        [PreDunningNotice(customer_id=pk, kind=kind, method_id=method, reference=ref,
                          data=data, status=PreDunningNotice.Status.SENDING,
                          created_at=now, claim=token)
         for pk, kind, method, ref, data in wanted],
        ignore_conflicts=True,
    )
    return list(PreDunningNotice.objects.using(using).filter(claim=token).order_by("pk"))


def templates(keys, using=DEFAULT_DB_ALIAS):
    """{step key: {language: MessageTemplate}} of the default policy."""
    found = {}
    for template in MessageTemplate.objects.using(using).filter(
        policy__in=Policy.objects.using(using).filter(key=dunning_settings.DEFAULT_POLICY),
        step_key__in=keys, channel="email",
    ):
        found.setdefault(template.step_key, {})[template.language.lower()] = template
    return found


def notice_context(notice, customer, today):
    """The template context of a notice on the run's date ``today``."""
    locale = babel_locale(customer.language)
    data = notice.data or {}
    card, renewal = {}, {}
    if data.get("expires"):
        month, year = data["expires"]
        last_day = card_expiry_date((month, year))
        card = {"label": data.get("label") or _("your card"),
                "expires": f"{month:02d}/{year}",
                "days_left": (last_day - today).days}
    if data.get("on"):
        renewal = {"date": format_day(datetime.date.fromisoformat(data["on"]), locale),
                   "amount": format_money(Decimal(data["amount"]), data["currency"], locale)}
    return build_context(
        customer=customer, invoices=list(data.get("invoices") or []),
        step={"key": notice.kind, "offset_days": 0, "action": ""},
        as_of=today, locale=locale, company=company_context(),
        card=card, renewal=renewal,
    )


def run_predunning(today=None, *, using=DEFAULT_DB_ALIAS):
    """Send today's pre-dunning notices. Returns a Counter of kind -> sent and of
    "failed" (nothing without a backend, or one that reports no cards and renewals)."""
    backend = get_backend()
    if backend is None:
        return Counter()
    today = today or timezone.localdate()
    now = timezone.now()
    with transaction.atomic(using=using):
        notices = claim(wanted_notices(backend, today, using), now, using)
    return send_notices(notices, today, using)


def send_notices(notices, today, using=DEFAULT_DB_ALIAS):
    """Render and send claimed notices (one bad notice never stops the others) and record
    each outcome on its row. Returns a Counter of kind -> sent and of "failed"."""
    from ..messages.variants import pick_template

    summary = Counter()
    if not notices:
        return summary
    customers = get_adapter().customer_rows({n.customer_id for n in notices})
    opted_out = opted_out_channels({n.customer_id for n in notices}, using=using)
    by_key = templates({n.kind for n in notices}, using)
    channel = load_plugin("EMAIL_CHANNEL")
    renderer = Renderer()
    handed, failed = [], []
    for notice in notices:
        customer = customers.get(notice.customer_id)
        try:
            if customer is None:
                raise LookupError(_("the customer no longer exists"))
            if "email" in opted_out.get(str(customer.pk), ()):
                raise ValueError(_("The customer opted out of email."))
            address, reason = channel.recipient(customer)
            if reason:
                raise ValueError(reason)
            template = pick_template(by_key.get(notice.kind), customer.language)
            if template is None:
                raise LookupError(_("the default policy has no email template '%(key)s'")
                                  % {"key": notice.kind})
            subject, text, html = renderer.render(template, notice_context(notice, customer, today))
        except Exception as exc:  # one bad notice never stops the others
            failed.append((notice, str(exc)[:2000]))
            continue
        notice.recipient, notice.language = address, template.language
        handed.append((notice, channel.build(Outgoing(
            case_id="", customer_id=customer.pk, step_key=notice.kind, recipient=address,
            subject=subject, text=text, html=html,
            unsubscribe_url=message_link(customer.pk, "email")))))
    outcomes = channel.send([message for _n, message in handed]) if handed else []
    sent_at = timezone.now()
    for (notice, _message), outcome in zip(handed, outcomes, strict=True):
        if outcome.ok:
            notice.status, notice.sent_at = PreDunningNotice.Status.SENT, sent_at
            notice.message_id = outcome.message_id
            summary[notice.kind] += 1
        else:
            failed.append((notice, outcome.reason))
    for notice, reason in failed:
        notice.status, notice.reason = PreDunningNotice.Status.FAILED, reason
        summary["failed"] += 1
        logger.warning("pre-dunning notice %s (%s) failed: %s", notice.pk, notice.kind, reason)
    PreDunningNotice.objects.using(using).bulk_update(
        notices, ["status", "sent_at", "message_id", "recipient", "language", "reason"])
    return summary


def request_authentication(attempt, today, using=DEFAULT_DB_ALIAS):
    """Ask the customer to authenticate the payment ``attempt`` (a PaymentAttempt the bank
    declined with ``authentication_required``) through their self-service link: the
    default policy's ``payment-authentication`` message, sent once per attempt. Returns
    the Counter of :func:`send_notices`."""
    adapter = get_adapter()
    p = ANNOTATION_PREFIX
    invoices = [
        {"number": number, "amount_due": str(amount), "currency": currency,
         "due_date": due.isoformat()}
        for number, amount, currency, due in adapter.annotated_invoices().using(using).filter(
            **{p + "number__in": list(attempt.invoices),
               adapter.customer_annotation: attempt.customer_id, p + "amount_due__gt": 0})
        .order_by(p + "due_date", "pk")
        .values_list(p + "number", p + "amount_due", p + "currency", p + "due_date")
    ]
    wanted = [(attempt.customer_id, Kind.AUTHENTICATE_PAYMENT, attempt.method_id,
               str(attempt.pk), {"invoices": invoices, "transaction": attempt.transaction_id})]
    with transaction.atomic(using=using):
        notices = claim(wanted, timezone.now(), using)
    return send_notices(notices, today, using)


def refresh_before_retry(backend, customer, method_id, case, using=DEFAULT_DB_ALIAS):
    """The method to charge for a retry: refreshed through the account updater when the
    backend supports it and the customer agreed (the latest answer in the consent log),
    else ``method_id`` unchanged. A refresh that finds new details is noted on the case."""
    if not getattr(backend, "supports_account_updater", False) or not method_id:
        return method_id
    latest = (Consent.objects.using(using)
              .filter(customer_key=str(customer.pk), topic=ACCOUNT_UPDATER)
              .order_by("-created_at", "-pk").values_list("granted", flat=True).first())
    if not latest:
        return method_id
    try:
        refreshed = backend.refresh_method(customer, method_id)
    except Exception:  # the updater is a nicety: the retry goes on with the old details
        logger.exception("account updater failed for %s", method_id)
        return method_id
    if refreshed is None:
        return method_id
    if case is not None:
        CaseEvent.objects.using(using).create(
            case=case, kind=CaseEvent.Kind.CARD_REFRESHED, created_at=timezone.now(),
            message=_("The account updater refreshed %(old)s: now %(label)s.")
            % {"old": method_id, "label": refreshed.label or refreshed.id},
            data={"old": method_id, "new": refreshed.id,
                  "expires": list(refreshed.expires) if refreshed.expires else None},
        )
    return refreshed.id

