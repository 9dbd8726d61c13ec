"""Retrying failed payments: recording a failure, running due retries, giving up.

Two entry points:

* :func:`record_failure` -- a payment of a customer failed (the ``payment.failed`` event
  of the API calls it): the failure is recorded as the first :class:`PaymentAttempt` of a
  retry cycle and its first retry is planned (dunning.payments.scheduler).
* :func:`run_due_retries` -- charges every retry that is due, through the configured
  backend, records the outcome on the case's timeline, plans the next retry or gives up
  (the case "needs a person" and its timeline says to ask the customer to update the
  payment method). A collected payment fires ``dunning.signals.payment_succeeded``, marks
  the invoices of the shipped Invoice model paid, and resolves the case like any payment
  (the thank-you message by the normal run over that customer).

A charge the processor accepted but has not settled (``ChargeResult.pending``: a SEPA or
ACH debit "processing" for days) is recorded as a *pending* attempt, not a decline: nothing
charges that debt again while it is pending (a retry that falls due waits a day), and
:func:`settle` records the bank's answer when it comes (the processor's webhook,
dunning.payments.stripe_webhook, or :func:`poll_pending`, which every run of the retries
does first): collected resolves the case, declined plans the next retry. A decline that
needs the customer (``authentication_required``: 3-D Secure) is never retried off-session:
the customer is sent the ``payment-authentication`` message with their self-service link.

Both do nothing (and return None / an empty summary) when no backend is configured.
"""

from __future__ import annotations

import datetime
import logging
from collections import Counter
from decimal import Decimal

from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from .. import signals
from ..conf import dunning_settings
from ..engine.holds import held_numbers_of_customer
from ..engine.ondemand import run_for_customers
from ..hosts import ANNOTATION_PREFIX, get_adapter, get_customer_model, get_invoice_model
from ..models import Case, CaseEvent, PaymentAttempt
from . import declines, get_backend, scheduler
from .predunning import refresh_before_retry

logger = logging.getLogger(__name__)

#: Due retries claimed per transaction.
CLAIM_BATCH = 200


def normalize(code):
    """A normalized decline code for ``code`` (normalized already, or Stripe's)."""
    if not code:
        return declines.GENERIC
    if code in declines.CODES:
        return code
    return declines.from_stripe(code)


def open_balance(customer_pk, numbers, using=DEFAULT_DB_ALIAS, *, held_too=False):
    """(amount, currency, numbers) still open of the invoices ``numbers`` of the customer;
    invoices in another currency than the first open one are left for another cycle, and
    an invoice held by an open dispute of the customer's case is never charged until the
    dispute is resolved (dunning.engine.holds; ``held_too``: those count as well)."""
    adapter = get_adapter()
    p = ANNOTATION_PREFIX
    held = () if held_too else held_numbers_of_customer(customer_pk, using)
    if held:
        numbers = [n for n in numbers if str(n) not in held]
    rows = list(
        adapter.annotated_invoices().using(using)
        .filter(**{p + "number__in": list(numbers), adapter.customer_annotation: customer_pk,
                   p + "amount_due__gt": 0})
        .order_by(p + "due_date", "pk")
        .values_list(p + "number", p + "amount_due", p + "currency")
    )
    if not rows:
        return Decimal(0), "", []
    currency = rows[0][2]
    chosen = [(n, Decimal(a)) for n, a, c in rows if c == currency]
    return sum((a for _n, a in chosen), Decimal(0)), currency, [n for n, _a in chosen]


def open_case(customer_pk, using=DEFAULT_DB_ALIAS):
    return (Case.objects.using(using)
            .filter(customer_id=customer_pk, status=Case.Status.OPEN).first())


def customer_timezone(customer_pk):
    row = get_adapter().customer_rows([customer_pk]).get(customer_pk)
    return row.timezone if row is not None else ""


def event(case, kind, message, using=DEFAULT_DB_ALIAS, **data):
    if case is None:
        return None
    return CaseEvent.objects.using(using).create(
        case=case, kind=kind, created_at=timezone.now(), message=message, data=data,
    )


def retry_steps(case, using=DEFAULT_DB_ALIAS):
    """((key, offset_days), ...) of the retry steps of the case's policy (the default
    policy without a case); a policy without retry steps uses
    ``DUNNING["PAYMENT_RETRY_OFFSETS"]`` with keys retry-1, retry-2, ..."""
    from ..models import Policy, RetryStep

    if case is not None:
        steps = RetryStep.objects.using(using).filter(policy_id=case.policy_id)
    else:
        steps = RetryStep.objects.using(using).filter(
            policy__in=Policy.objects.using(using).filter(key=dunning_settings.DEFAULT_POLICY))
    rows = tuple(steps.order_by("offset_days", "pk").values_list("key", "offset_days"))
    return rows or tuple(
        (f"retry-{n}", offset)
        for n, offset in enumerate(dunning_settings.PAYMENT_RETRY_OFFSETS, start=1)
    )


def decide(root, methods, customer_pk, now, using=DEFAULT_DB_ALIAS, steps=None):
    """The scheduler's decision for the cycle that ``root`` started, and the key of the
    retry step it carries out ("" after the steps are used up)."""
    steps = retry_steps(root.case, using) if steps is None else steps
    counted = PaymentAttempt.objects.using(using).exclude(status=PaymentAttempt.Status.CANCELLED)
    cycle = [root, *counted.filter(cycle=root).order_by("attempted_at", "pk")]
    recent = counted.filter(customer_id=customer_pk,
                            attempted_at__gt=now - scheduler.CAP_WINDOW)
    as_attempt = lambda a: scheduler.Attempt(a.method_id, a.attempted_at, a.decline_code)  # noqa: E731
    if not steps:
        return scheduler.Decision(None, reason=scheduler.EXHAUSTED), ""
    done = len(cycle) - 1
    key = steps[done][0] if done < len(steps) else ""
    return scheduler.next_attempt(
        [as_attempt(a) for a in cycle], methods,
        tz=customer_timezone(customer_pk),
        offsets=tuple(offset for _key, offset in steps),
        cap=dunning_settings.PAYMENT_MAX_ATTEMPTS_PER_METHOD_30_DAYS,
        recent=[as_attempt(a) for a in recent],
        morning=datetime.time(dunning_settings.PAYMENT_RETRY_HOUR),
    ), key


GIVE_UP_MESSAGES = {
    scheduler.UPDATE_METHOD: lambda: _(
        "Every stored payment method was declined for good: ask the customer to update "
        "the payment method."),
    scheduler.EXHAUSTED: lambda: _(
        "The payment retries are used up: ask the customer to update the payment method."),
    scheduler.CAPPED: lambda: _(
        "Every payment method reached its limit of attempts in 30 days: ask the customer "
        "to update the payment method."),
    scheduler.AUTHENTICATE: lambda: _(
        "The bank asks the customer to authenticate the payment: it is not retried "
        "without them; they are sent their self-service link to pay."),
}


def plan(attempt, root, methods, customer_pk, now, using=DEFAULT_DB_ALIAS):
    """Plan the retry after ``attempt`` (saved) or give up; returns the Decision."""
    decision, key = decide(root, methods, customer_pk, now, using)
    if decision.at is not None and decision.at < now:
        # A charge that was pending for days settled as declined: its retry is not
        # planned in the past.
        decision = scheduler.Decision(now, decision.method, decision.reason)
    case = attempt.case
    if decision.at is not None:
        PaymentAttempt.objects.using(using).filter(pk=attempt.pk).update(
            next_attempt_at=decision.at, next_method_id=decision.method, next_step_key=key)
        attempt.next_attempt_at, attempt.next_method_id = decision.at, decision.method
        attempt.next_step_key = key
    elif decision.reason == scheduler.AUTHENTICATE:
        # The customer acts (dunning.payments.predunning.request_authentication, once the
        # caller's transaction is committed); no person is needed for that.
        event(case, CaseEvent.Kind.PAYMENT_AUTHENTICATION, GIVE_UP_MESSAGES[decision.reason](),
              using, reason=decision.reason, attempt=attempt.pk)
    else:
        event(case, CaseEvent.Kind.PAYMENT_UPDATE_METHOD, GIVE_UP_MESSAGES[decision.reason](),
              using, reason=decision.reason, attempt=attempt.pk)
        if case is not None:
            Case.objects.using(using).filter(pk=case.pk).update(needs_person=True)
    return decision


def after_plan(decision, attempt, today, using=DEFAULT_DB_ALIAS):
    """What a plan leaves to do once committed: the request to authenticate."""
    if decision is not None and decision.reason == scheduler.AUTHENTICATE:
        from .predunning import request_authentication

        try:
            request_authentication(attempt, today, using)
        except Exception:  # the timeline says what happened; a person can follow up
            logger.exception("could not ask the customer of attempt %s to authenticate",
                             attempt.pk)


def with_step(attempt, message):
    """The timeline's text of an attempt: which retry step it was, then what happened."""
    if not attempt.step_key:
        return message
    return _("Payment retry %(step)s: %(message)s") % {"step": attempt.step_key,
                                                       "message": message}


def declined_message(attempt):
    if declines.needs_customer(attempt.decline_code):
        return with_step(attempt, _(
            "Payment with %(method)s declined: the bank asks the customer to authenticate "
            "it (not retried without them).") % {"method": attempt.method_id})
    if attempt.status == PaymentAttempt.Status.ERROR:
        return with_step(attempt, _("Payment with %(method)s failed: %(message)s") % {
            "method": attempt.method_id, "message": attempt.message or attempt.raw_code})
    kind = (_("hard decline, the method is not retried") if declines.is_hard(attempt.decline_code)
            else _("soft decline, retried"))
    return with_step(attempt, _("Payment with %(method)s declined: %(code)s (%(kind)s).") % {
        "method": attempt.method_id, "code": declines.label(attempt.decline_code), "kind": kind})


def record_failure(customer_pk, *, invoices, method_id="", decline_code="", raw_code="",
                   message="", failed_at=None, using=DEFAULT_DB_ALIAS):
    """A payment of ``invoices`` (invoice numbers) by the customer failed: record it and
    plan its first retry. Returns the PaymentAttempt, or None when no backend is
    configured or nothing of these invoices is open."""
    backend = get_backend()
    if backend is None:
        return None
    failed_at = failed_at or timezone.now()
    customer = get_customer_model()._default_manager.using(using).get(pk=customer_pk)
    methods = [m.id for m in backend.stored_methods(customer)]
    with transaction.atomic(using=using):
        # A cycle still running for the customer is taken over by this one.
        pending = PaymentAttempt.objects.using(using).filter(
            customer_id=customer_pk, next_attempt_at__isnull=False)
        earlier = [n for a in pending for n in a.invoices]
        pending.update(next_attempt_at=None, next_method_id="")
        amount, currency, numbers = open_balance(
            customer_pk, list(dict.fromkeys([*invoices, *earlier])), using)
        if not numbers:
            return None
        code = normalize(decline_code or raw_code)
        attempt = PaymentAttempt.objects.using(using).create(
            customer_id=customer_pk, case=open_case(customer_pk, using), invoices=numbers,
            amount=amount, currency=currency, method_id=method_id or (methods[0] if methods else ""),
            attempted_at=failed_at, status=PaymentAttempt.Status.DECLINED, decline_code=code,
            raw_code=raw_code or decline_code, message=message,
        )
        event(attempt.case, CaseEvent.Kind.PAYMENT_DECLINED, declined_message(attempt), using,
              attempt=attempt.pk, decline_code=code, method=attempt.method_id)
        decision = plan(attempt, attempt, methods, customer_pk, failed_at, using)
    after_plan(decision, attempt, timezone.localdate(failed_at), using)
    return attempt


def claim_due(now, using=DEFAULT_DB_ALIAS, limit=CLAIM_BATCH):
    """Take up to ``limit`` due retries (rows locked by another worker are skipped):
    their ``next_attempt_at`` is cleared in the same transaction, so no other worker
    charges them again."""
    with transaction.atomic(using=using):
        due = list(
            PaymentAttempt.objects.using(using).select_for_update(skip_locked=True)
            .filter(next_attempt_at__lte=now).order_by("next_attempt_at", "pk")[:limit]
        )
        if due:
            PaymentAttempt.objects.using(using).filter(pk__in=[a.pk for a in due]).update(
                next_attempt_at=None)
    return due


def run_due_retries(now=None, *, as_of=None, using=DEFAULT_DB_ALIAS):
    """Charge every retry due at ``now`` (default: now). ``as_of``: the date of the run
    that charges them (default: ``now``'s date in the site's time zone): a collected
    payment marks the invoices paid and closes the case on that date. Returns a Counter
    of outcomes (succeeded, declined, error, cancelled, gave-up)."""
    summary = Counter()
    backend = get_backend()
    if backend is None:
        return summary
    now = now or timezone.now()
    as_of = as_of or timezone.localdate(now)
    poll_pending(backend, now, summary, using, as_of=as_of)
    while True:
        due = claim_due(now, using)
        for previous in due:
            try:
                retry(backend, previous, now, summary, using, as_of=as_of)
            except Exception:  # one customer's failure does not stop the others
                logger.exception("payment retry after attempt %s failed", previous.pk)
                summary["crashed"] += 1
        if len(due) < CLAIM_BATCH:
            return summary


def retry(backend, previous, now, summary, using=DEFAULT_DB_ALIAS, as_of=None):
    as_of = as_of or timezone.localdate(now)
    root_id = previous.cycle_id or previous.pk
    root = previous if previous.cycle_id is None else PaymentAttempt.objects.using(using).get(
        pk=root_id)
    customer_pk = previous.customer_id
    amount, currency, numbers = open_balance(customer_pk, previous.invoices, using)
    case = open_case(customer_pk, using) or previous.case
    fields = dict(customer_id=customer_pk, case=case, cycle_id=root_id, invoices=numbers,
                  amount=amount, currency=currency or previous.currency,
                  method_id=previous.next_method_id, step_key=previous.next_step_key,
                  attempted_at=now)
    if not numbers and open_balance(customer_pk, previous.invoices, using, held_too=True)[2]:
        # Every invoice left is held by an open dispute: not charged, but not given up
        # either; looked at again tomorrow (the dispute goes to staff meanwhile).
        PaymentAttempt.objects.using(using).filter(pk=previous.pk).update(
            next_attempt_at=now + datetime.timedelta(days=1))
        summary["waiting"] += 1
        return
    if not numbers:  # paid meanwhile
        PaymentAttempt.objects.using(using).create(
            **{**fields, "invoices": previous.invoices, "amount": Decimal(0)},
            status=PaymentAttempt.Status.CANCELLED)
        summary["cancelled"] += 1
        return
    if pending_charge(customer_pk, numbers, using) is not None:
        # A charge of this debt is still processing (a bank debit): never a second one.
        # Looked at again tomorrow; the pending charge's outcome decides before then.
        PaymentAttempt.objects.using(using).filter(pk=previous.pk).update(
            next_attempt_at=now + datetime.timedelta(days=1))
        summary["waiting"] += 1
        return
    customer = get_customer_model()._default_manager.using(using).get(pk=customer_pk)
    # Refreshed card details first, when the customer agreed to the account updater.
    fields["method_id"] = refresh_before_retry(backend, customer, previous.next_method_id,
                                               case, using)
    result = backend.charge(customer, amount, currency, fields["method_id"],
                            invoices=numbers, idempotency_key=f"dunning-retry-{previous.pk}")
    decision = None
    if result.ok:
        status = PaymentAttempt.Status.SUCCEEDED
    elif result.pending:
        status = PaymentAttempt.Status.PENDING
    elif result.error:
        status = PaymentAttempt.Status.ERROR
    else:
        status = PaymentAttempt.Status.DECLINED
    with transaction.atomic(using=using):
        attempt = PaymentAttempt.objects.using(using).create(
            **fields, status=status, decline_code=result.decline_code if not result.ok else "",
            raw_code=result.raw_code, message=result.message[:2000],
            transaction_id=result.transaction_id,
        )
        if result.ok:
            mark_shipped_invoices_paid(customer_pk, numbers, using, paid_on=as_of)
            event(case, CaseEvent.Kind.PAYMENT_COLLECTED, with_step(
                attempt, _("Payment of %(amount)s %(currency)s collected with %(method)s.")
                % {"amount": amount, "currency": currency, "method": attempt.method_id}),
                using, attempt=attempt.pk, transaction_id=result.transaction_id,
                step=attempt.step_key)
        elif result.pending:
            event(case, CaseEvent.Kind.PAYMENT_PENDING, pending_message(attempt), using,
                  attempt=attempt.pk, transaction_id=result.transaction_id,
                  step=attempt.step_key)
        else:
            decision = declined(attempt, root, case, backend, customer, now, using)
            if decision.at is None:
                summary["gave-up"] += 1
    summary[str(status.value)] += 1
    if result.ok:
        collected(case, customer, attempt, using, as_of=as_of, now=now)
    after_plan(decision, attempt, as_of, using)


def declined(attempt, root, case, backend, customer, now, using=DEFAULT_DB_ALIAS):
    """A declined charge (at once, or a pending one the bank refused later): on the
    timeline, then the next retry of the cycle ``root`` planned, or given up."""
    event(case, CaseEvent.Kind.PAYMENT_DECLINED, declined_message(attempt), using,
          attempt=attempt.pk, decline_code=attempt.decline_code,
          method=attempt.method_id, step=attempt.step_key)
    methods = [m.id for m in backend.stored_methods(customer)] if backend is not None else []
    return plan(attempt, root, methods, customer.pk, now, using)


def pending_message(attempt):
    return with_step(attempt, _(
        "Payment of %(amount)s %(currency)s with %(method)s is processing (a bank debit "
        "takes days): not charged again until the bank answers.") % {
        "amount": attempt.amount, "currency": attempt.currency, "method": attempt.method_id})


def pending_charge(customer_pk, numbers, using=DEFAULT_DB_ALIAS):
    """The customer's pending charge (a bank debit still processing) of any of the
    invoices ``numbers``, or None."""
    numbers = set(numbers)
    for attempt in PaymentAttempt.objects.using(using).filter(
            customer_id=customer_pk, status=PaymentAttempt.Status.PENDING):
        if numbers & set(attempt.invoices):
            return attempt
    return None


def poll_pending(backend, now, summary, using=DEFAULT_DB_ALIAS, *, as_of=None):
    """Ask the backend how each pending charge is doing and settle those the bank has
    answered (for sites without the processor's webhook, or when one was missed)."""
    pending = PaymentAttempt.objects.using(using).filter(
        status=PaymentAttempt.Status.PENDING, attempted_at__lte=now).exclude(transaction_id="")
    for attempt in pending.order_by("attempted_at", "pk"):
        try:
            result = backend.payment_status(attempt.transaction_id)
            if result is None or result.pending:
                continue
            settled = settle(attempt.transaction_id, result, at=now, as_of=as_of, using=using)
        except Exception:  # one customer's failure does not stop the others
            logger.exception("polling pending payment %s failed", attempt.pk)
            summary["crashed"] += 1
            continue
        if settled is not None:
            summary["settled-" + str(settled.status)] += 1


def settle(transaction_id, result, *, at=None, as_of=None, using=DEFAULT_DB_ALIAS):
    """The bank answered a pending charge (the processor's webhook, or a poll): record
    the outcome on the pending attempt of ``transaction_id``. Collected: the invoices are
    paid and the case resolves on ``as_of`` (default: ``at``'s date). Declined: the
    next retry is planned from ``at``. Idempotent: an attempt that is not pending (unknown,
    settled already by a replayed or earlier event) is left alone; returns the settled
    PaymentAttempt, or None when nothing was settled."""
    if not transaction_id or result is None or result.pending:
        return None
    at = at or timezone.now()
    as_of = as_of or timezone.localdate(at)
    backend = get_backend()
    decision = None
    with transaction.atomic(using=using):
        attempt = (PaymentAttempt.objects.using(using).select_for_update()
                   .filter(transaction_id=transaction_id, status=PaymentAttempt.Status.PENDING)
                   .order_by("pk").first())
        if attempt is None:
            return None
        customer_pk = attempt.customer_id
        case = open_case(customer_pk, using) or attempt.case
        if result.ok:
            attempt.status = PaymentAttempt.Status.SUCCEEDED
        else:
            attempt.status = (PaymentAttempt.Status.ERROR if result.error
                              else PaymentAttempt.Status.DECLINED)
            attempt.decline_code = "" if result.error else (result.decline_code or declines.GENERIC)
        attempt.raw_code = (result.raw_code or attempt.raw_code)[:64]
        attempt.message = (result.message or "")[:2000]
        attempt.save(update_fields=["status", "decline_code", "raw_code", "message"])
        if result.ok:
            mark_shipped_invoices_paid(customer_pk, attempt.invoices, using, paid_on=as_of)
            event(case, CaseEvent.Kind.PAYMENT_COLLECTED, with_step(
                attempt, _("Payment of %(amount)s %(currency)s with %(method)s settled: "
                           "collected.") % {"amount": attempt.amount,
                                            "currency": attempt.currency,
                                            "method": attempt.method_id}),
                using, attempt=attempt.pk, transaction_id=transaction_id,
                step=attempt.step_key)
        else:
            root = attempt if attempt.cycle_id is None else PaymentAttempt.objects.using(
                using).get(pk=attempt.cycle_id)
            customer = get_customer_model()._default_manager.using(using).get(pk=customer_pk)
            decision = declined(attempt, root, case, backend, customer, at, using)
    if result.ok:
        customer = get_customer_model()._default_manager.using(using).get(pk=customer_pk)
        collected(case, customer, attempt, using, as_of=as_of, now=at)
    after_plan(decision, attempt, as_of, using)
    return attempt


def mark_shipped_invoices_paid(customer_pk, numbers, using=DEFAULT_DB_ALIAS, paid_on=None):
    from django.db.models import Value
    from django.db.models.functions import Coalesce

    from ..models import Invoice

    if get_invoice_model() is Invoice:
        # paid_on (dunning.history): the day of the payment (default today), unless the
        # invoice was paid before.
        day = paid_on or timezone.localdate()
        Invoice.objects.using(using).filter(customer_id=customer_pk, number__in=numbers).update(
            amount_due=Decimal(0), paid_on=Coalesce("paid_on", Value(day)))


def collected(case, customer, attempt, using=DEFAULT_DB_ALIAS, *, as_of=None, now=None):
    """After the commit of a collected payment: the host's signal, then the run over the
    customer that resolves the case (thank-you message, case_resolved) on ``as_of``, the
    date of the run that collected it (default today), at ``now``."""
    for failure in signals.send_robust(
        signals.payment_succeeded, PaymentAttempt, case=case, customer=customer,
        amount=attempt.amount, currency=attempt.currency, invoices=list(attempt.invoices),
        transaction_id=attempt.transaction_id,
    ):
        event(case, CaseEvent.Kind.SIGNAL_ERROR, failure, using)
    run_for_customers([customer.pk], stages=("paid",), using=using, as_of=as_of, now=now)
