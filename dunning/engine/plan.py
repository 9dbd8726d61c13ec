""""Who gets what tomorrow": the run of a day, decided but not done.

``DunningPlan`` is a dry ``DunningRun`` that also keeps, for every message the run would
send, the customer, step, channel, recipient, invoices and the rendered message. It reads
only: nothing is written, sent or signalled.
"""

from __future__ import annotations

import datetime
from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS
from django.utils import timezone

from ..hosts import CustomerRow
from .run import ACTION_ONLY, DunningRun, Pending, invoice_snapshot


@dataclass
class PlannedMessage:
    case_id: int | None  # None: the run opens the case
    customer_id: object
    customer: CustomerRow | None
    label: str
    step_key: str
    action: str
    channel: str
    recipient: str
    invoices: list
    problem: str = ""  # why no message would go out (no address, no template, ...)
    subject: str = ""
    text: str = ""
    html: str | None = None
    resolves: bool = False
    # The A/B variant (dunning.variants): "" without variants; None for a case the run
    # would open, whose variant is drawn once it has its pk.
    variant: str | None = ""

    @property
    def can_hold_back(self):
        return self.case_id is not None and not self.resolves


@dataclass
class Plan:
    as_of: datetime.date
    items: list = field(default_factory=list)
    failures: list = field(default_factory=list)
    customers: dict = field(default_factory=dict)  # {case key: customer label} of failures


def default_plan_date():
    """Tomorrow in the site's time zone."""
    return timezone.localdate() + datetime.timedelta(days=1)


class DunningPlan(DunningRun):
    def __init__(self, as_of=None, *, batch_size=None, using=DEFAULT_DB_ALIAS):
        super().__init__(as_of or default_plan_date(), dry_run=True, batch_size=batch_size,
                         using=using)
        self.items = []

    def build(self):
        self.execute()
        return Plan(as_of=self.as_of, items=self.items, failures=list(self.result.failures),
                    customers=dict(self.result.customers))

    def planned_failure(self, case, customer, key, action, channel, invoices, info):
        """The plan shows each message's problem on its item instead (see :meth:`item`)."""
        return ""

    def item(self, case, customer, key, action, channel, invoices, info, *, resolves=False):
        snapshot = invoice_snapshot(invoices)
        if customer is None:
            return PlannedMessage(case.pk, case.customer_id, None, f"#{case.customer_id}", key,
                                  action, channel, "", snapshot,
                                  problem=f"customer {case.customer_id} not found",
                                  resolves=resolves)
        problem = self.hand_over_failure(case, key, action)
        if problem:  # the run fails the case before anything goes out
            return PlannedMessage(case.pk, case.customer_id, customer, customer.label, key,
                                  action, channel, "", snapshot, problem=problem)
        spec = self.step_spec(case, key)
        channel, address, reason, _skipped, _note = self.reach(
            customer, channel, spec.fallback if spec else "", spec.required if spec else False)
        planned = PlannedMessage(
            case.pk, case.customer_id, customer, customer.label, key, action, channel,
            address or customer.email, snapshot, problem=reason, resolves=resolves,
        )
        if reason:
            return planned
        planned.variant, template = self.variant_template(
            case.policy_id, key, channel, customer.language, case_pk=case.pk)
        if template is None and action in ACTION_ONLY:
            return planned  # a hand-over or write-off without a message: the action alone
        template = None if template is None else template.pk
        rendered = self.render_item(Pending(
            case_id=case.pk, customer_id=case.customer_id, step_key=key, channel=channel,
            recipient=address, invoices=snapshot, customer=customer, template=template,
            step_info=info, unsubscribe_url=self.unsubscribe_url(case.customer_id, channel, info),
            history=self.history.get(case.customer_id),
        ))
        if isinstance(rendered, str):
            planned.problem = rendered
        else:
            planned.subject, planned.text, planned.html = rendered
        return planned

    def planned(self, case, customer, key, action, channel, invoices, info, *, resolves=False):
        super().planned(case, customer, key, action, channel, invoices, info, resolves=resolves)
        self.items.append(
            self.item(case, customer, key, action, channel, invoices, info, resolves=resolves)
        )


def build_plan(as_of=None, *, batch_size=None, using=DEFAULT_DB_ALIAS):
    """The plan of the run on ``as_of`` (default: tomorrow in the site's time zone)."""
    return DunningPlan(as_of, batch_size=batch_size, using=using).build()
