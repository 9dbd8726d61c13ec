"""Sending the next step of chosen cases now, by hand (the workbench's "send the next step
now" action).

A collector who has spoken to a customer may want the next reminder to go today instead
of in three days. :class:`SendNowRun` is a dunning run over the chosen cases only whose
decision ignores the step's offset, the minimum gap and a pause: the policy's next step
goes out today. Everything else is the run's: the claim (a case another run holds is
skipped), the step recorded once (the unique constraint), the message sent after commit,
the signals (a suspension step suspends), the timeline.

Refused, with the reason shown to staff: a case with no step left, a case that already
had a step today (one step per case per day, as for a scheduled run), a case owing less
than the policy's minimum balance, a case whose every open invoice is disputed (nothing is
left to demand: resolve the disputes first), a paused case (a promise or a pause by hand:
resume it first), and a step the policy's compliance guards hold today (quiet hours until
tomorrow, a holiday, a frequency cap). A step allowed later today is queued until then.
"""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS

from ..models import CaseEvent, Run
from ..rules.schedule import (
    ALL_DISPUTED,
    BELOW_MINIMUM,
    PAUSED,
    STEP_TODAY,
    Kind,
    decide_now,
)
from . import actors
from .run import DunningRun, case_key, is_day

#: The ``Run.host`` of a run by hand (the simulator does not take its day for a run day).
SEND_NOW_RUN_HOST = "send-now"

#: Why a case was left alone (keys of SendNowRun.refused).
REFUSED_DONE = "done"
REFUSED_TODAY = "today"
REFUSED_PAUSED = "paused"
REFUSED_MINIMUM = "minimum"
#: Every open invoice of the case is disputed: nothing is left to demand.
REFUSED_DISPUTED = "disputed"
#: The policy's compliance guards do not allow the step today (quiet hours until
#: tomorrow, a holiday or weekend, a frequency cap): it goes out when they do.
REFUSED_COMPLIANCE = "compliance"

#: Why decide_now() made a case wait, as a refusal.
REFUSED_BY_REASON = {
    BELOW_MINIMUM: REFUSED_MINIMUM,
    ALL_DISPUTED: REFUSED_DISPUTED,
    PAUSED: REFUSED_PAUSED,
    STEP_TODAY: REFUSED_TODAY,
}


class SendNowRun(DunningRun):
    """A run that sends the next step of ``case_pks`` today (see the module docstring)."""

    def __init__(self, case_pks, *, actor=None, using=DEFAULT_DB_ALIAS):
        super().__init__(None, using=using)
        self.case_pks = list(case_pks)
        self.actor = actor
        # A staff user, an API client (dunning.actors.Actor) or None (the system).
        self.actor_kind, self.actor_user = actors.resolve(actor)
        self.render_processes = 1  # a handful of cases: render in-process
        #: case pk -> why it was left alone (REFUSED_*), for the staff's message.
        self.refused = {}
        self._claimed = set()

    def execute(self):
        self.load_policies()
        self.run = Run.objects.using(self.using).create(
            as_of=self.as_of, started_at=self.now, host=SEND_NOW_RUN_HOST
        )
        self.result.run_id = self.run.pk
        try:
            queryset = self.open_case_set().filter(pk__in=self.case_pks)
            while self.advance_batch(queryset.exclude(pk__in=self.handled()), deliver=True):
                pass
        except BaseException:
            Run.objects.using(self.using).filter(pk=self.run.pk).update(
                status=Run.Status.FAILED
            )
            raise
        Run.objects.using(self.using).filter(pk=self.run.pk).update(
            status=Run.Status.COMPLETED, summary=self.result.as_dict()
        )
        return self.result

    def handled(self):
        return self._claimed | self._skip

    def claim(self, queryset):
        claimed = super().claim(queryset)
        self._claimed.update(c.pk for c in claimed)
        return claimed

    #: Today whatever the offset, the minimum gap or a pause that has ended
    #: (schedule.decide_now).
    decide_rule = staticmethod(decide_now)

    def decide(self, case, invoices, done):
        decision = super().decide(case, invoices, done)
        if decision.kind is Kind.WAIT and decision.reason in REFUSED_BY_REASON:
            self.refused[case.pk] = REFUSED_BY_REASON[decision.reason]
        return decision

    def apply(self, case, decision, invoices, customer, done_keys, batch, steps, events, links):
        if decision.kind is Kind.DONE:
            self.refused[case.pk] = REFUSED_DONE
        elif decision.kind is Kind.WAIT:
            self.refused.setdefault(case.pk, REFUSED_TODAY)
        elif decision.kind is Kind.EXECUTE and is_day(self.hold.get(case_key(case))):
            self.refused[case.pk] = REFUSED_COMPLIANCE
        super().apply(case, decision, invoices, customer, done_keys, batch, steps, events, links)
        if decision.kind is Kind.EXECUTE and case.pk not in self.refused:
            events.append(CaseEvent(
                case=case, run=self.run, kind=CaseEvent.Kind.SENT_BY_HAND,
                created_at=self.batch_now, actor=self.actor_user, actor_kind=self.actor_kind,
                data={"step_key": decision.step.key},
            ))


def send_next_step_now(case_pks, *, actor=None, using=DEFAULT_DB_ALIAS):
    """Send the next step of each open case in ``case_pks`` today. Returns the run (its
    ``result`` and ``refused``)."""
    run = SendNowRun(case_pks, actor=actor, using=using)
    run.execute()
    return run

