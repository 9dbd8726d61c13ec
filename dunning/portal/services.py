"""What the customer does on the self-service page, as plain functions.

Promises and disputes go through :mod:`dunning.engine.actions`, the same functions the
workbench and the API call, so their rules (the pause, the timeline event) live in one
place; the actor is the customer (dunning.engine.actors.CUSTOMER). The request of a payment
plan and feedback are the portal's own; approving a plan and
:func:`~dunning.engine.plans.check_payment_plans` (the run-time check that breaks a plan
whose instalment was missed, dunning then resumes by itself, and completes a paid one) are
the engine's (dunning.engine.plans), re-exported here. The consent log entry is
:func:`dunning.unsubscribe.optout.log_consent`, re-exported here.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass
from decimal import ROUND_DOWN, Decimal

from django.core.exceptions import ValidationError
from django.db import transaction
from django.utils import timezone, translation
from django.utils.translation import gettext as _

from ..conf import dunning_settings, share_setting
from ..engine import actions as services
from ..engine import actors, holds
from ..engine.plans import (  # noqa: F401 (re-exported: the portal's public names)
    _pause_for_instalment,
    approve_plan,
    check_payment_plans,
    open_invoices_of,
    paid_so_far,
)
from ..formatting import babel_locale, format_day, format_money
from ..hosts import get_adapter
from ..models import Case, CaseEvent, Feedback, PaymentAttempt, PaymentPlan
from ..models.consent import ACCOUNT_UPDATER, channel_topic, current_choices
from ..rules import schedule
from ..unsubscribe.optout import channel_label, log_consent  # noqa: F401 (re-exported)
from .tokens import PortalAccess

logger = logging.getLogger("dunning.portal")

CENT = Decimal("0.01")

#: A plan in these states stands; the customer cannot ask for another one meanwhile.
LIVE_PLAN_STATUSES = (PaymentPlan.Status.REQUESTED, PaymentPlan.Status.ACTIVE)


@dataclass
class Portfolio:
    """What the page shows: the customer, their overdue invoices and their open case."""

    customer: object  # a dunning.hosts.CustomerRow
    invoices: list  # dunning.hosts.InvoiceRow, oldest first
    case: Case | None
    #: Numbers (as text) of the invoices held by an open dispute of the case.
    disputed: frozenset = frozenset()

    def demanded(self):
        """The overdue invoices that are demanded: all but the disputed ones."""
        return [i for i in self.invoices if str(i.number) not in self.disputed]

    def totals(self):
        """What is demanded, per currency (a disputed invoice is not)."""
        sums: dict[str, Decimal] = {}
        for invoice in self.demanded():
            sums[invoice.currency] = sums.get(invoice.currency, Decimal(0)) + invoice.amount_due
        return dict(sorted(sums.items()))

    def invoice(self, number):
        return next((i for i in self.invoices if i.number == number), None)


def load_portfolio(access: PortalAccess, today=None):
    """The customer's :class:`Portfolio`, or None when the customer does not exist."""
    today = today or timezone.localdate()
    adapter = get_adapter()
    try:
        rows = adapter.customer_rows([access.customer_key])
    except (ValueError, TypeError, ValidationError):
        return None
    customer = next((row for key, row in rows.items() if str(key) == access.customer_key), None)
    if customer is None:
        return None
    invoices = adapter.invoice_rows(
        adapter.overdue_invoices(today).filter(**{adapter.customer_annotation: customer.pk})
    )
    invoices.sort(key=lambda i: (i.due_date, i.number))
    case = Case.objects.filter(customer_id=customer.pk, status=Case.Status.OPEN).first()
    disputed = frozenset(holds.disputed_numbers([case.pk]).get(case.pk, ())) if case else frozenset()
    return Portfolio(customer, invoices, case, disputed)


# -- links of the host: pay now, update the payment method ---------------------------------
def host_url(setting, company_key, portfolio, token):
    """The URL of a host hook (PORTAL_PAY_URL / PORTAL_UPDATE_PAYMENT_URL): a format
    string, or the dotted path of a callable (customer, invoices, token) -> URL; falls
    back to COMPANY[company_key]. The seam for a payment backend."""
    value = getattr(dunning_settings, setting)
    if value is None:
        return str((dunning_settings.COMPANY or {}).get(company_key) or "")
    if callable(value):  # a dotted path, imported by conf (IMPORT_STRINGS)
        return value(portfolio.customer, portfolio.demanded(), token) or ""
    return value.format(customer=portfolio.customer.pk, token=token)


# -- input rules -----------------------------------------------------------------------
def latest_date(today=None):
    return (today or timezone.localdate()) + datetime.timedelta(
        days=dunning_settings.PORTAL_PROMISE_MAX_DAYS
    )


def check_portal_date(date, today=None):
    """A promised or first-instalment date: today or later, at most
    PORTAL_PROMISE_MAX_DAYS away."""
    services.check_promise_date(date)
    latest = latest_date(today)
    if date > latest:
        from ..formatting import format_day

        raise ValidationError(
            _("Please choose a date no later than %(date)s.")
            % {"date": format_day(latest, page_locale())}
        )
    return date


def page_locale():
    """The Babel locale of the language the page speaks (the customer's, set by the view),
    for the dates and amounts of its messages."""
    from django.utils import translation

    from ..formatting import babel_locale

    return babel_locale(translation.get_language())


# -- the actions ---------------------------------------------------------------------------
def promise_refused(case, today=None, new_date=None):
    """Why the customer may not promise on the page ("" when they may): the case has
    PORTAL_PROMISE_MAX_BROKEN broken promises (it went to staff), or would have with a
    promise for ``new_date`` that puts the standing one off."""
    if case is None:
        return ""
    most = int(dunning_settings.PORTAL_PROMISE_MAX_BROKEN)
    if not schedule.may_promise(holds.broken_count(case, today), most):
        return _("We cannot accept another promise to pay here, because earlier promises "
                 "were not kept. Our team will contact you. You can still pay now, ask for "
                 "a payment plan or dispute an invoice.")
    if new_date is not None and not schedule.may_promise(
            holds.broken_count(case, today, new_date), most):
        return _("You promised to pay by %(date)s; that date cannot be moved later here. "
                 "Please contact us if you need more time.") % {
            "date": format_day(case.promised_on, babel_locale(translation.get_language()))}
    return ""


def least_promise(portfolio):
    """(amount, currency) a promise on the page must cover at least: PORTAL_PROMISE_MIN_SHARE
    of what is demanded in the currency of the oldest demanded invoice ((0, "") when
    nothing is demanded)."""
    demanded = portfolio.demanded()
    if not demanded:
        return Decimal(0), ""
    currency = demanded[0].currency
    balance = portfolio.totals()[currency]
    return schedule.minimum_promise(balance, share_setting("PORTAL_PROMISE_MIN_SHARE")), currency


def check_promise_share(portfolio, amount):
    """A promise must cover PORTAL_PROMISE_MIN_SHARE of what is demanded; the error is on
    the amount, the least amount formatted in the page's language."""
    least, currency = least_promise(portfolio)
    if amount < least:
        raise ValidationError({"amount": _(
            "Please promise at least %(amount)s: a promise must cover at least %(share)s%% "
            "of what is overdue.") % {
            "amount": format_money(least, currency, babel_locale(translation.get_language())),
            "share": format_percent(share_setting("PORTAL_PROMISE_MIN_SHARE"))}})
    return amount


def format_percent(share):
    """``share`` (a Decimal fraction) as a percentage without trailing zeros ("25")."""
    value = (share * 100).normalize()
    return f"{value:f}"


def promise(case, date, amount, *, portfolio=None):
    """A promise from the page: refused once the case has PORTAL_PROMISE_MAX_BROKEN broken
    promises, and for less than PORTAL_PROMISE_MIN_SHARE of what is demanded."""
    check_portal_date(date)
    refused = promise_refused(case, new_date=date)
    if refused:
        raise ValidationError(refused)
    services.check_promise_amount(amount)
    if portfolio is not None:
        check_promise_share(portfolio, amount)
    return services.record_promise(case, date, amount, actors.CUSTOMER)


def dispute(case, invoice_number, reason):
    """A dispute from the page; the same one sent again (a replayed form, a double click)
    while it is open adds nothing."""
    same = case.disputes.filter(invoice_number=invoice_number, reason=reason,
                                resolved_at__isnull=True).first()
    return same or services.open_dispute(case, invoice_number, reason, actors.CUSTOMER)


def give_feedback(case, reason, text):
    with transaction.atomic():
        feedback = Feedback.objects.create(case=case, reason=reason, text=text)
        services.record(case, CaseEvent.Kind.FEEDBACK, actors.CUSTOMER, text,
                        reason=reason, feedback=feedback.pk)
    return feedback


def split(totals, count, first, interval_days):
    """``count`` instalments of ``totals`` (per currency), the first on ``first``; the
    cents that do not divide evenly go to the last one."""
    instalments = []
    for index in range(count):
        due = first + datetime.timedelta(days=interval_days * index)
        amounts = {}
        for currency, total in totals.items():
            share = (total / count).quantize(CENT, rounding=ROUND_DOWN)
            amounts[currency] = str(total - share * (count - 1) if index == count - 1 else share)
        instalments.append({"due": due.isoformat(), "amounts": amounts})
    return instalments


def auto_approvable(totals, count):
    rules = dunning_settings.PORTAL_PLAN_AUTO_APPROVE or {}
    if not rules or count > int(rules.get("max_instalments", 0)):
        return False
    limits = rules.get("max_amount") or {}
    return all(
        currency in limits and total <= Decimal(str(limits[currency]))
        for currency, total in totals.items()
    )


def check_instalments(count):
    highest = dunning_settings.PORTAL_PLAN_MAX_INSTALMENTS
    if not 2 <= count <= highest:
        raise ValidationError(
            _("Choose between 2 and %(max)s instalments.") % {"max": highest}
        )
    return count


def request_plan(portfolio, count, first):
    """A payment plan over the customer's overdue balance: approved at once within
    PORTAL_PLAN_AUTO_APPROVE (dunning pauses until the first instalment's date plus
    PORTAL_PLAN_GRACE_DAYS), otherwise requested from staff (the case needs a person)."""
    case = portfolio.case
    services.require_open(case)
    if case.payment_plans.filter(status__in=LIVE_PLAN_STATUSES).exists():
        raise ValidationError(_("You already have a payment plan."))
    check_instalments(count)
    check_portal_date(first)
    totals = portfolio.totals()
    if not totals:
        raise ValidationError(_("Every overdue invoice is disputed: nothing is left to pay "
                                "in instalments until the disputes are resolved."))
    instalments = split(totals, count, first, dunning_settings.PORTAL_PLAN_INTERVAL_DAYS)
    auto = auto_approvable(totals, count)
    with transaction.atomic():
        plan = PaymentPlan.objects.create(
            case=case, instalments=instalments,
            totals={c: str(t) for c, t in totals.items()},
            invoices=[i.pk for i in portfolio.demanded()],
            status=PaymentPlan.Status.REQUESTED,
        )
        services.record(case, CaseEvent.Kind.PLAN_REQUESTED, actors.CUSTOMER,
                        _("Payment plan in %(n)s instalments requested.") % {"n": count},
                        plan=plan.pk, instalments=instalments)
        if auto:
            approve_plan(plan, None, auto=True)
        else:
            services.escalate(case, None)
    return plan


# -- contact preferences ------------------------------------------------------------------

def portal_channels():
    return list(dict.fromkeys(dunning_settings.PORTAL_CHANNELS or ()))


def preferences(customer_pk):
    """{"channels": {channel: wanted}, "updater": True/False/None} of the customer (a
    channel without an entry in the consent log is wanted)."""
    choices = current_choices([customer_pk]).get(str(customer_pk), {})
    return {
        "channels": {c: choices.get(channel_topic(c), True) for c in portal_channels()},
        "updater": choices.get(ACCOUNT_UPDATER),
    }


def set_channels(portfolio, wanted):
    """The customer chose the channels in ``wanted`` (a set) among the page's channels;
    only changes are logged. Returns the changed (channel, wanted) pairs."""
    current = preferences(portfolio.customer.pk)["channels"]
    changes = [(c, c in wanted) for c in current if current[c] != (c in wanted)]
    if changes:
        message = "; ".join(
            (_("Receives %(channel)s again") if on else _("Opted out of %(channel)s"))
            % {"channel": channel_label(c)} for c, on in changes)
        log_consent(portfolio.customer.pk, portfolio.case,
                    [(channel_topic(c), on) for c, on in changes], message)
    return changes


def set_updater_consent(portfolio, granted):
    log_consent(portfolio.customer.pk, portfolio.case, [(ACCOUNT_UPDATER, granted)],
                _("Agreed to the card account updater") if granted
                else _("Declined the card account updater"))



# -- paying with a stored payment method -------------------------------------------------------

def host_customer(portfolio):
    from ..hosts import get_customer_model

    return get_customer_model()._default_manager.get(pk=portfolio.customer.pk)


def stored_methods(portfolio):
    """The customer's stored payment methods when a payment backend is set and something
    is owed ([] otherwise, and when the backend cannot tell: the page still works)."""
    from ..payments import get_backend

    backend = get_backend()
    if backend is None or not portfolio.demanded():
        return []
    try:
        return list(backend.stored_methods(host_customer(portfolio)))
    except Exception:  # a processor outage must not break the page
        logger.exception("stored payment methods of customer %s", portfolio.customer.pk)
        return []


def payable(portfolio):
    """(amount, currency, invoice numbers) "pay now" charges: the overdue invoices in the
    currency of the oldest one (another currency is paid separately)."""
    from ..payments.retries import open_balance

    return open_balance(portfolio.customer.pk, [i.number for i in portfolio.demanded()])


def pay_amount(portfolio, locale):
    from ..formatting import format_money

    if not portfolio.demanded():
        return ""
    amount, currency, _numbers = payable(portfolio)
    return format_money(amount, currency, locale) if currency else ""


def pay_now(portfolio, method_id, today=None):
    """Charge the overdue balance (of the oldest invoice's currency) to a stored method of
    the customer's, through the payment backend; a success pays the invoices like a
    collected retry (``payment_succeeded``, the case resolved by its run). The charge's
    idempotency key is the same for the same invoices, amount and day, so a replayed form
    never charges twice. Raises ValidationError with the reason it did not work."""
    import hashlib

    from ..payments import declines, get_backend
    from ..payments.retries import collected, mark_shipped_invoices_paid, pending_charge

    backend = get_backend()
    customer = host_customer(portfolio)
    if method_id not in {m.id for m in backend.stored_methods(customer)}:
        raise ValidationError(_("Choose one of your stored payment methods."))
    amount, currency, numbers = payable(portfolio)
    if not numbers:
        raise ValidationError(_("Nothing is left to pay. Thank you!"))
    if pending_charge(customer.pk, numbers) is not None:
        # A bank debit of these invoices is still processing: never a second charge.
        raise ValidationError(_("Your bank is still processing a payment of these invoices. "
                                "Please wait for it before paying again."))
    today = today or timezone.localdate()
    key = "dunning-portal-" + hashlib.sha256(
        f"{customer.pk}|{','.join(numbers)}|{amount}|{currency}|{today}".encode()).hexdigest()[:32]
    result = backend.charge(customer, amount, currency, method_id, invoices=numbers,
                            idempotency_key=key)
    status = (PaymentAttempt.Status.SUCCEEDED if result.ok else
              PaymentAttempt.Status.PENDING if result.pending else
              PaymentAttempt.Status.ERROR if result.error else PaymentAttempt.Status.DECLINED)
    case = portfolio.case
    with transaction.atomic():
        attempt = PaymentAttempt.objects.create(
            customer_id=customer.pk, case=case, invoices=numbers, amount=amount,
            currency=currency, method_id=method_id, attempted_at=timezone.now(),
            status=status, decline_code="" if result.ok else result.decline_code,
            raw_code=result.raw_code, message=result.message[:2000],
            transaction_id=result.transaction_id,
        )
        if case is not None:
            if result.ok:
                services.record(case, CaseEvent.Kind.PAYMENT_COLLECTED, actors.CUSTOMER,
                                _("Paid %(amount)s %(currency)s on the self-service page with "
                                  "%(method)s.") % {"amount": amount, "currency": currency,
                                                    "method": method_id},
                                attempt=attempt.pk, transaction_id=result.transaction_id)
            elif result.pending:
                services.record(case, CaseEvent.Kind.PAYMENT_PENDING, actors.CUSTOMER,
                                _("Paid %(amount)s %(currency)s on the self-service page with "
                                  "%(method)s: processing, settled when the bank answers.")
                                % {"amount": amount, "currency": currency, "method": method_id},
                                attempt=attempt.pk, transaction_id=result.transaction_id)
            else:
                services.record(case, CaseEvent.Kind.PAYMENT_DECLINED, actors.CUSTOMER,
                                _("Payment on the self-service page with %(method)s declined: "
                                  "%(code)s.") % {"method": method_id,
                                                  "code": declines.label(result.decline_code)},
                                attempt=attempt.pk, decline_code=result.decline_code)
        if result.ok:
            mark_shipped_invoices_paid(customer.pk, numbers)
    if result.ok:
        collected(case, customer, attempt)
        return attempt
    if result.pending:
        return attempt  # settled by the processor's webhook or the runs' poll
    if result.error:
        raise ValidationError(_("The payment could not be made just now. Please try again "
                                "later."))
    raise ValidationError(_("Your bank declined the payment (%(reason)s). Please choose "
                            "another method or update your payment method.")
                          % {"reason": declines.label(result.decline_code)})
