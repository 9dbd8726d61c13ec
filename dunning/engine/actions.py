"""What a collector does with a case, as plain functions: the one place of these rules.

The admin's workbench actions (``dunning.admin.workbench``) and the REST API
(``dunning.api``) both call these functions, so a case is paused, promised, disputed or
written off the same way whichever door the request came through. Each function takes the
case (a :class:`~dunning.models.Case` as loaded by the caller) and the acting user (or
None), does the database work in one transaction, records the event on the case's
timeline with the actor, and returns what it made. A refusal (the case is closed, not
paused, has no open dispute) raises a :class:`CaseActionRefused` whose message is
translated and names the case; nothing is written then.

Input rules that are not about the case (a pause ends in the future, a promise is for
today or later and for more than zero) are the ``check_*`` functions, which raise
Django's ``ValidationError`` with the message the admin's forms show.

The actions that start a run now (send the next step now, a run over chosen customers)
are in :mod:`dunning.engine.ondemand`: they build on the run, which builds on these.
"""

from __future__ import annotations

import datetime
import logging

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import signals
from ..exceptions import DunningError
from ..hosts import get_adapter
from ..models import Case, CaseEvent, CaseInvoice, Dispute
from ..rules import schedule
from . import actors, holds

logger = logging.getLogger("dunning.services")  # the name before the move (issue 15)

# "Paused without an end date", and the days after a promised payment date before dunning
# goes on by itself: rules (dunning.rules.schedule), importable from here as before.
PAUSED_INDEFINITELY = schedule.PAUSED_INDEFINITELY
PROMISE_GRACE_DAYS = schedule.PROMISE_GRACE_DAYS

#: The outcomes of a logged call (value, label).
CALL_OUTCOMES = [
    ("reached", gettext_lazy("Reached")),
    ("no-answer", gettext_lazy("No answer")),
    ("promised", gettext_lazy("Promised to pay")),
    ("refused", gettext_lazy("Refused to pay")),
]

#: The outcomes that mean a telephone conversation took place (the person was reached and
#: spoke): Regulation F 1006.14(b)(2)(i)(B) then allows no call about the case for seven
#: days. Every logged call that was not inbound is a call attempt, whatever its outcome
#: (see dunning.queries.call_history and docs/compliance.md).
CALL_CONVERSATION_OUTCOMES = frozenset({"reached", "promised", "refused"})


# -- refusals ---------------------------------------------------------------------------
class CaseActionRefused(DunningError, ValueError):
    """The action does not apply to this case; ``str(exc)`` says why (translated)."""

    def __init__(self, message, case=None):
        super().__init__(message)
        self.message = message
        self.case = case


class CaseNotOpen(CaseActionRefused):
    def __init__(self, case):
        super().__init__(_("%(case)s is not open; left unchanged.") % {"case": case}, case)


class CaseNotPaused(CaseActionRefused):
    def __init__(self, case):
        super().__init__(_("%(case)s is not paused.") % {"case": case}, case)


class NoOpenDispute(CaseActionRefused):
    def __init__(self, case):
        super().__init__(_("%(case)s has no open dispute.") % {"case": case}, case)


# -- input rules ------------------------------------------------------------------------
def check_pause_until(until):
    """``until`` (a date or None: until further notice) must lie in the future."""
    if until is not None and until <= timezone.localdate():
        raise ValidationError(_("The end of a pause must lie in the future."))
    return until


def check_promise_date(date):
    if date < timezone.localdate():
        raise ValidationError(_("The promised date must be today or later."))
    return date


def check_promise_amount(amount):
    if amount <= 0:
        raise ValidationError(_("The promised amount must be greater than zero."))
    return amount


def owners_of_open_invoice(cases, invoice_number):
    """The customer ids among ``cases``' customers who owe something on the invoice
    ``invoice_number`` (one query, however many cases)."""
    from ..hosts import ANNOTATION_PREFIX

    adapter = get_adapter()
    p = ANNOTATION_PREFIX
    try:
        return set(adapter.annotated_invoices().filter(**{
            adapter.customer_annotation + "__in": {case.customer_id for case in cases},
            p + "number": str(invoice_number).strip(), p + "amount_due__gt": 0,
        }).order_by().values_list(adapter.customer_annotation, flat=True))
    except (TypeError, ValueError, ValidationError):
        return set()  # e.g. text for a host's numeric invoice number: nobody's


def not_open_invoice(case, invoice_number):
    return ValidationError(
        _("%(number)s is not an open invoice of %(case)s; only the case's own open "
          "invoices can be disputed.") % {"number": str(invoice_number).strip(), "case": case},
        code="not_open_invoice")


def check_dispute_invoice(case, invoice_number):
    """``invoice_number`` must be one of the case's own open invoices (its customer's,
    with something still owed): a dispute about another customer's invoice, or about
    none, would pause the case for good with nothing to resolve."""
    if case.customer_id not in owners_of_open_invoice([case], invoice_number):
        raise not_open_invoice(case, invoice_number)
    return invoice_number


# -- helpers ----------------------------------------------------------------------------
def record(case, kind, actor, message="", *, using=DEFAULT_DB_ALIAS, run=None, **data):
    """A timeline event of ``case`` by ``actor``: a :class:`dunning.actors.Actor` (the
    customer, an API client), a staff user, or None for the system."""
    actor_kind, user = actors.resolve(actor)
    # One transaction with the event's outbound webhooks (dunning.webhooks): both or neither.
    with transaction.atomic(using=using):
        return CaseEvent.objects.using(using).create(
            case=case, kind=kind, created_at=timezone.now(), message=message, data=data,
            actor=user, actor_kind=actor_kind, run=run,
        )


def require_open(case):
    if case.status != Case.Status.OPEN:
        raise CaseNotOpen(case)


def recheck_from(case):
    """A next check date that lets the next run decide again for ``case``."""
    return case.last_step_on or case.opened_on


# -- the actions ------------------------------------------------------------------------
def assign(case, collector, actor):
    """Assign ``case`` to ``collector`` (a user); any case, open or closed."""
    with transaction.atomic():
        Case.objects.filter(pk=case.pk).update(assigned_to=collector)
        event = record(case, CaseEvent.Kind.ASSIGNED, actor,
                       _("Assigned to %(user)s.") % {"user": collector.get_username()},
                       user=collector.pk, username=collector.get_username())
    case.assigned_to = collector
    return event


def add_note(case, text, actor):
    return record(case, CaseEvent.Kind.NOTE, actor, text)


def log_call(case, outcome, text, actor, *, inbound=False):
    """A call with its outcome (one of CALL_OUTCOMES) and notes. ``inbound``: the
    customer called us (recorded as ``{"inbound": true}``); an inbound call is no call
    attempt under Regulation F, but a conversation still counts."""
    if outcome not in dict(CALL_OUTCOMES):
        raise ValueError(f"unknown call outcome {outcome!r}")
    extra = {"inbound": True} if inbound else {}
    return record(case, CaseEvent.Kind.CALL, actor, text, outcome=outcome, **extra)


def pause(case, reason, until, actor):
    """No dunning step until ``until`` (None: until someone resumes the case)."""
    require_open(case)
    paused_until = until or PAUSED_INDEFINITELY
    with transaction.atomic():
        next_due = recheck_from(case)
        Case.objects.filter(pk=case.pk).update(
            paused_until=paused_until, pause_reason=reason, next_due_on=next_due,
        )
        event = record(case, CaseEvent.Kind.PAUSED, actor, reason,
                       until=until.isoformat() if until else None)
    case.paused_until, case.pause_reason, case.next_due_on = paused_until, reason, next_due
    return event


def resume(case, actor):
    require_open(case)
    if case.paused_until is None:
        raise CaseNotPaused(case)
    with transaction.atomic():
        next_due = recheck_from(case)
        Case.objects.filter(pk=case.pk).update(
            paused_until=None, pause_reason="", next_due_on=next_due
        )
        event = record(case, CaseEvent.Kind.RESUMED, actor)
    case.paused_until, case.pause_reason, case.next_due_on = None, "", next_due
    return event


def escalate(case, actor):
    """Flag the case "needs a person"."""
    require_open(case)
    with transaction.atomic():
        Case.objects.filter(pk=case.pk).update(needs_person=True)
        event = record(case, CaseEvent.Kind.ESCALATED, actor)
    case.needs_person = True
    return event


def send_written_off(case, using=DEFAULT_DB_ALIAS):
    for failure in signals.send_robust(signals.case_written_off, Case, case=case,
                                       customer=case.customer):
        CaseEvent.objects.using(using).create(case=case, kind=CaseEvent.Kind.SIGNAL_ERROR,
                                              created_at=timezone.now(), message=failure)


def write_off(case, reason, actor):
    """Close the case for good: its invoices get no further dunning message, and
    ``case_written_off`` fires after commit. Returns False when another request closed
    the case meanwhile (nothing written then)."""
    require_open(case)
    return close_written_off(case, reason, actor, timezone.localdate())


def close_written_off(case, reason, actor, day, *, using=DEFAULT_DB_ALIAS, run=None, **data):
    """The rules of a write-off, for :func:`write_off` (by hand, the API, an agency that
    reports the case uncollectable) and for a policy's write-off step (the run, inside its
    batch transaction): the open case is closed as written off on ``day``, the invoices it
    covered are linked to it, the event is on its timeline, and ``case_written_off`` fires
    after commit. Returns False when the case is not open any more (nothing written)."""
    adapter = get_adapter()
    with transaction.atomic(using=using):
        updated = Case.objects.using(using).filter(pk=case.pk, status=Case.Status.OPEN).update(
            status=Case.Status.WRITTEN_OFF, closed_on=day, next_due_on=None,
        )
        if not updated:
            return False
        # Link the invoices the case covered, as a termination does, so that they are not
        # dunned again in a new case.
        invoice_pks = adapter.overdue_invoices(day + datetime.timedelta(days=1)).using(
            using).filter(**{adapter.customer_annotation: case.customer_id}
                          ).values_list("pk", flat=True)
        CaseInvoice.objects.using(using).bulk_create(
            [CaseInvoice(case=case, invoice_id=pk) for pk in invoice_pks],
            ignore_conflicts=True,
        )
        record(case, CaseEvent.Kind.WRITTEN_OFF, actor, reason, using=using, run=run, **data)
        case.status, case.closed_on, case.next_due_on = Case.Status.WRITTEN_OFF, day, None
        transaction.on_commit(lambda: send_written_off(case, using), using=using)
    return True


def record_promise(case, date, amount, actor):
    """The customer promised to pay ``amount`` by ``date``: dunning pauses until
    PROMISE_GRACE_DAYS after it (never shortening a longer pause). The standing promise,
    when this one puts it off to a later date (or it lapsed and no run counted it yet),
    counts as broken first (dunning.engine.holds): a new promise never hides a broken one. The limits of the self-service page
    (PORTAL_PROMISE_MAX_BROKEN, PORTAL_PROMISE_MIN_SHARE) are not checked here: staff
    recording a promise they negotiated decide for themselves (docs/portal.md)."""
    require_open(case)
    until = date + datetime.timedelta(days=PROMISE_GRACE_DAYS)
    paused_until = max(until, case.paused_until) if case.paused_until else until
    with transaction.atomic():
        counts = holds.count_broken_promises(timezone.localdate(), cases=[case.pk],
                                             postponed_to=date)
        if case.pk in counts:
            case.broken_promises = counts[case.pk]
        Case.objects.filter(pk=case.pk).update(
            promised_on=date, promised_amount=amount, promise_broken=False,
            paused_until=paused_until, next_due_on=paused_until,
        )
        event = record(case, CaseEvent.Kind.PROMISE, actor,
                       _("Promised to pay %(amount)s by %(date)s.")
                       % {"amount": amount, "date": date.isoformat()},
                       date=date.isoformat(), amount=str(amount))
    case.promised_on, case.promised_amount, case.promise_broken = date, amount, False
    case.paused_until = case.next_due_on = paused_until
    return event


def open_dispute(case, invoice_number, reason, actor):
    """A dispute about one of the case's open invoices (else ValidationError, see
    check_dispute_invoice): that invoice is held (not demanded, listed, charged
    or retried) until the dispute is resolved; the rest of the case's debt keeps its
    schedule, and the next run looks at the case again. An open dispute goes to staff
    after DISPUTE_ESCALATE_AFTER_DAYS (dunning.engine.holds)."""
    require_open(case)
    check_dispute_invoice(case, invoice_number)
    with transaction.atomic():
        dispute = Dispute.objects.create(
            case=case, invoice_number=invoice_number, reason=reason,
            opened_by=actors.user_of(actor),
        )
        next_due = recheck_from(case)
        Case.objects.filter(pk=case.pk).update(next_due_on=next_due)
        record(case, CaseEvent.Kind.DISPUTE, actor, reason,
               dispute=dispute.pk, invoice_number=invoice_number)
    case.next_due_on = next_due
    return dispute


def resolve_disputes(case, resolution, actor):
    """Resolve every open dispute of ``case``: their invoices are demanded again from the
    next run on (an open case is looked at again at once). Returns how many were
    resolved."""
    with transaction.atomic():
        resolved = Dispute.objects.filter(case=case, resolved_at__isnull=True).update(
            resolved_at=timezone.now(), resolution=resolution
        )
        if not resolved:
            raise NoOpenDispute(case)
        if case.is_open:
            next_due = recheck_from(case)
            Case.objects.filter(pk=case.pk).update(next_due_on=next_due)
            case.next_due_on = next_due
        record(case, CaseEvent.Kind.DISPUTE_RESOLVED, actor, resolution, resolved=resolved)
    return resolved
