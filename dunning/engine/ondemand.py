"""The collector's actions that start a run now rather than waiting for the schedule:
"send the next step now" (the workbench and the API, see dunning.engine.manual) and
:class:`CustomerRun`, which runs the engine now over the cases of chosen customers (the
payment events of the API: a paid invoice resolves its case at once, a failed payment opens
or advances it at once) by the normal rules of a scheduled run.

Split from :mod:`dunning.engine.actions` (the case actions the run itself uses, such as a
write-off step) so that the run imports the actions and these import the run, never both
ways."""

from __future__ import annotations

from dataclasses import dataclass, field

from django.db import DEFAULT_DB_ALIAS
from django.utils.translation import gettext_lazy

from ..models import Case, CaseStep, Run
from . import manual
from .run import DunningRun

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
