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

:class:`CustomerRun` runs the engine now over the cases of chosen customers (the payment
events of the API: a paid invoice resolves its case at once, a failed payment opens or
advances it at once) by the normal rules of a scheduled run.
"""

from __future__ import annotations

import datetime
import logging
from dataclasses import dataclass, field

from django.core.exceptions import ValidationError
from django.db import DEFAULT_DB_ALIAS, transaction
from django.utils import timezone
from django.utils.translation import gettext as _
from django.utils.translation import gettext_lazy

from .. import signals
from ..exceptions import DunningError
from ..hosts import get_adapter
from ..models import Case, CaseEvent, CaseInvoice, CaseStep, Dispute, Run
from . import actors, holds, manual
from .run import DunningRun

logger = logging.getLogger(__name__)

#: "Paused without an end date": the engine compares dates, so a date far away will do.
PAUSED_INDEFINITELY = datetime.date(9999, 12, 31)

#: Days after a promised payment date before dunning goes on by itself.
PROMISE_GRACE_DAYS = holds.PROMISE_GRACE_DAYS

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
    for receiver, response in signals.case_written_off.send_robust(
        sender=Case, case=case, customer=case.customer
    ):
        if isinstance(response, Exception):
            logger.error("case_written_off receiver %r failed for case %s", receiver, case.pk,
                         exc_info=response)
            CaseEvent.objects.using(using).create(
                case=case, kind=CaseEvent.Kind.SIGNAL_ERROR, created_at=timezone.now(),
                message=f"case_written_off: {type(response).__name__}: {response}"[:2000],
            )


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


# -- send the next step now ---------------------------------------------------------------
#: Why "send the next step now" left a case alone (see dunning.engine.manual).
SEND_NOW_REFUSED = {
    manual.REFUSED_DONE: gettext_lazy("%(case)s has no step left to send."),
    manual.REFUSED_TODAY: gettext_lazy("%(case)s already had a step today; one a day is the most."),
    manual.REFUSED_PAUSED: gettext_lazy("%(case)s is paused; resume it first."),
    manual.REFUSED_MINIMUM: gettext_lazy("%(case)s owes less than its policy's minimum balance."),
    manual.REFUSED_DISPUTED: gettext_lazy(
        "%(case)s: every open invoice is disputed, so nothing is left to demand; resolve the "
        "disputes first."),
    manual.REFUSED_COMPLIANCE: gettext_lazy(
        "%(case)s: the policy's compliance guards (quiet hours, a holiday or weekend, a "
        "frequency cap) do not allow the step today; the next run sends it when they do."),
}


@dataclass
class SentStep:
    step: CaseStep
    #: Why it could not be sent ("" when it was).
    failure: str = ""


@dataclass
class SendNowOutcome:
    #: Cases left alone because they are not open.
    not_open: list = field(default_factory=list)
    #: case pk -> one of manual.REFUSED_*.
    refused: dict = field(default_factory=dict)
    #: The steps executed, in order.
    sent: list = field(default_factory=list)
    #: How many of the cases were paid already and are now resolved.
    resolved: int = 0

    def refusal_message(self, case):
        return SEND_NOW_REFUSED[self.refused[case.pk]] % {"case": case}


def send_now(cases, actor):
    """The policy's next step of each open case in ``cases``, today, whatever its
    schedule says (see dunning.engine.manual). Returns a :class:`SendNowOutcome`."""
    cases = {case.pk: case for case in cases}
    outcome = SendNowOutcome(
        not_open=[case for case in cases.values() if case.status != Case.Status.OPEN]
    )
    run = manual.send_next_step_now(
        [pk for pk, case in cases.items() if case.status == Case.Status.OPEN], actor=actor
    )
    outcome.refused = dict(run.refused)
    failures = dict(run.result.failures)
    for step in CaseStep.objects.filter(run=run.run, case_id__in=list(cases)).order_by(
        "created_at", "pk"
    ):
        failure = ""
        if step.case_id in failures or step.status == CaseStep.Status.FAILED:
            failure = failures.get(step.case_id) or step.reason
        outcome.sent.append(SentStep(step, failure))
    outcome.resolved = run.result.resolved
    return outcome


# -- a run over chosen customers (payment events) -------------------------------------------
#: ``Run.host`` of the runs that payment events start (the simulator leaves them out).
PAYMENT_EVENT_RUN_HOST = "payment-event"


class CustomerRun(DunningRun):
    """A dunning run, today, over the given customers only, by the normal rules: a case is
    opened for a customer with an overdue invoice, a case whose invoices are all paid is
    resolved (thank-you message, signals), and a case whose next step is due gets it.
    Nothing else: the outbox of other cases is left to the scheduled runs."""

    def __init__(self, customer_pks, *, using=DEFAULT_DB_ALIAS, host=PAYMENT_EVENT_RUN_HOST,
                 as_of=None, now=None):
        super().__init__(as_of, using=using, now=now)
        self.customer_pks = list(customer_pks)
        self.render_processes = 1  # a handful of cases: render in-process
        self.host = host

    def overdue(self):
        return super().overdue().filter(
            **{self.adapter.customer_annotation + "__in": self.customer_pks}
        )

    def open_case_set(self):
        return super().open_case_set().filter(customer_id__in=self.customer_pks)

    def drain_stale_outbox(self):
        """Left to the scheduled runs (it concerns every case, not these customers')."""

    def execute(self, stages=("open", "paid", "due"), **kwargs):
        result = super().execute(stages, **kwargs)
        if self.run is not None:
            Run.objects.using(self.using).filter(pk=self.run.pk).update(host=self.host)
        return result


def run_for_customers(customer_pks, *, stages=("open", "paid", "due"), using=DEFAULT_DB_ALIAS,
                      as_of=None, now=None):
    """Run dunning for the given customers (see :class:`CustomerRun`): the given stages
    of a run (``("paid",)``: resolve paid cases only). ``as_of`` / ``now``: the date and
    instant of the run that started it (a payment retry of a back-dated run closes the
    case on that run's date); default today and the clock. Returns the run."""
    run = CustomerRun(customer_pks, using=using, as_of=as_of, now=now)
    run.execute(stages)
    return run
