"""Payment plans once approved: the pause until each instalment, and the run-time check
that breaks a plan whose instalment is late, moves the pause on when one is paid and
completes a plan paid in full (docs/portal.md). The customer's request of a plan is the
self-service page's (dunning.portal.services); approving and checking it are the engine's,
so the run needs nothing from the portal."""

from __future__ import annotations

from decimal import Decimal

from django.db import transaction
from django.utils import timezone
from django.utils.translation import gettext as _

from ..conf import dunning_settings
from ..hosts import get_adapter
from ..models import CaseEvent, PaymentPlan
from ..rules import plans as plan_rules
from . import actions as services


def _pause_for_instalment(case, plan, instalment):
    """Pause the case until an instalment's date plus the grace days (never shortening a
    longer pause, e.g. one by hand)."""
    until = plan_rules.pause_until(instalment, dunning_settings.PORTAL_PLAN_GRACE_DAYS)
    if case.paused_until is not None and case.paused_until >= until:
        return
    number = plan.instalments.index(instalment) + 1
    services.pause(case, _("Payment plan: instalment %(n)s of %(count)s due on %(date)s.") % {
        "n": number, "count": len(plan.instalments), "date": instalment["due"],
    }, until, None)


def approve_plan(plan, actor, *, auto=False):
    """Staff (``actor``) or the auto-approval accept a requested plan."""
    case = plan.case
    services.require_open(case)
    with transaction.atomic():
        PaymentPlan.objects.filter(pk=plan.pk).update(
            status=PaymentPlan.Status.ACTIVE, decided_at=timezone.now(), auto_approved=auto
        )
        plan.status, plan.auto_approved = PaymentPlan.Status.ACTIVE, auto
        services.record(case, CaseEvent.Kind.PLAN_APPROVED, actor,
                        _("Payment plan approved automatically.") if auto
                        else _("Payment plan approved."), plan=plan.pk)
        _pause_for_instalment(case, plan, plan.instalments[0])
    return plan


def open_invoices_of(plans):
    """{str(invoice pk): InvoiceRow} of the invoices of ``plans`` (one query for all;
    keyed by text because the plan keeps the pks as JSON)."""
    adapter = get_adapter()
    pks = {pk for plan in plans for pk in plan.invoices}
    if not pks:
        return {}
    rows = adapter.invoice_rows(adapter.annotated_invoices().filter(pk__in=pks))
    return {str(row.pk): row for row in rows}


def paid_so_far(plan, invoices=None):
    """How much of the plan's invoices has been paid since, per currency (``invoices``:
    :func:`open_invoices_of` of a batch of plans; read for this plan alone otherwise)."""
    invoices = open_invoices_of([plan]) if invoices is None else invoices
    still_open = {currency: Decimal(0) for currency in plan.totals}
    for pk in plan.invoices:
        row = invoices.get(str(pk))
        if row is not None and row.currency in still_open and row.amount_due > 0:
            still_open[row.currency] += row.amount_due
    return {c: Decimal(t) - still_open[c] for c, t in plan.totals.items()}


def check_payment_plans(as_of=None):
    """The run-time check of active plans: an instalment whose date plus
    PORTAL_PLAN_GRACE_DAYS has passed without its money breaks the plan and ends the
    pause (dunning resumes by itself); a paid instalment moves the pause on to the next;
    a plan paid in full is completed. Returns {"broken": n, "completed": n}.

    Two queries read every active plan and its invoices; only plans whose state changes
    write (a pause already long enough is left alone without a query)."""
    as_of = as_of or timezone.localdate()
    grace_days = dunning_settings.PORTAL_PLAN_GRACE_DAYS
    counts = {"broken": 0, "completed": 0}
    plans = list(PaymentPlan.objects.filter(status=PaymentPlan.Status.ACTIVE)
                 .select_related("case"))
    invoices = open_invoices_of(plans)  # one query for every plan's invoices
    for plan in plans:
        case = plan.case
        paid = paid_so_far(plan, invoices)
        pending = plan_rules.pending_instalment(plan.instalments, plan.totals, paid)
        if pending is None:
            with transaction.atomic():
                plan.status = PaymentPlan.Status.COMPLETED
                plan.save(update_fields=["status"])
                services.record(case, CaseEvent.Kind.PLAN_COMPLETED, None, plan=plan.pk)
            counts["completed"] += 1
        elif plan_rules.instalment_missed(pending, as_of, grace_days):
            with transaction.atomic():
                plan.status = PaymentPlan.Status.BROKEN
                plan.save(update_fields=["status"])
                services.record(case, CaseEvent.Kind.PLAN_BROKEN, None,
                                _("Instalment due on %(date)s was not paid.")
                                % {"date": pending["due"]}, plan=plan.pk)
                if case.is_open and case.paused_until is not None:
                    # A dispute holds its invoice, not the case: nothing else to wait for.
                    services.resume(case, None)
            counts["broken"] += 1
        elif case.is_open:
            _pause_for_instalment(case, plan, pending)  # no query when paused long enough
    return counts
