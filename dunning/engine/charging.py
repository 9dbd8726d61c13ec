"""Reminder fees and late-payment interest in the run: the database side of
``dunning.fees`` (which calculates, and knows nothing of the database).

For the cases of a batch whose policy has a fee or interest rule, the run

1. records the balance of every invoice when it changed (:class:`BalanceObservation`;
   the first row of an invoice is dated its due date), or asks the host's ledger for
   the history (``DUNNING["BALANCE_HISTORY"]``), so interest is always recomputed from
   the whole history and a partial payment neither loses nor doubles any;
2. with each reminder it queues, computes what is new since the case's earlier charges
   (``fees.charges_for``): the step's fee, the interest not charged yet and the fixed
   compensation once per invoice; records them (:class:`CaseCharge`), lists them in the
   message (the context's ``charges`` and ``charges_total``), notes them on the timeline
   and hands them to the host through ``dunning.signals.fees_charged`` (the invoices are
   the host's).

A constant number of queries per batch, and none for a batch without such a policy.
A reminder that is not queued (the customer opted out of every channel, no address) is
charged nothing; its interest is charged with the next one that goes out.
"""

from __future__ import annotations

import logging
from collections import defaultdict
from decimal import Decimal

from django.db.models import Max, Sum
from django.utils.translation import gettext as _

from .. import fees
from ..conf import dunning_settings
from ..messages.rendering import charges_context
from ..models import BalanceObservation, CaseCharge
from ..models.policy import Action, Channel

logger = logging.getLogger("dunning.charging")

# Steps that send a reminder and may cost a fee (a call, a hand-over and a write-off
# do not).
FEE_ACTIONS = (Action.NONE, Action.SUSPEND, Action.TERMINATE)


class PolicyCharges:
    """The charge rules of one policy, parsed once per run."""

    def __init__(self, policy):
        self.fee_rule, self.interest_rule = None, None
        try:
            self.fee_rule, self.interest_rule = policy.charge_rules()
        except (ValueError, TypeError) as exc:
            # Saved around the admin's validation: charge nothing rather than guess.
            logger.error("Policy %r: bad fee or interest rule, nothing charged: %s",
                         policy.key, exc)
        self.business = policy.business_debtors
        self.free_steps = {s.key for s in policy.steps.all() if s.free_of_charge}
        # Steps with a fee of their own (Step.fee_rule) instead of the policy's.
        self.step_fees = {}
        for step in policy.steps.all():
            if step.fee_rule:
                try:
                    self.step_fees[step.key] = fees.FeeRule.from_setting(step.fee_rule)
                except (ValueError, TypeError, AttributeError) as exc:
                    logger.error("Policy %r, step %r: bad fee rule, no fee: %s",
                                 policy.key, step.key, exc)
                    self.free_steps.add(step.key)
        self.step_keys = {s.key for s in policy.steps.all()}

    @property
    def active(self):
        return (self.fee_rule is not None or self.interest_rule is not None
                or bool(self.step_fees))


class Charging:
    """The fees and interest of one run (one instance per ``DunningRun``)."""

    def __init__(self, run):
        self.run = run
        self.by_policy = {pk: PolicyCharges(loaded.policy) for pk, loaded in run.policies.items()}
        self.any = any(p.active for p in self.by_policy.values())
        self.ledger = dunning_settings.BALANCE_HISTORY or None  # imported by conf
        self.facts = {}  # case pk -> [fees.InvoiceFacts]
        self.before = {}  # case pk -> {invoice number: fees.AlreadyCharged}

    def warn_stale_rates(self):
        """Log the policies whose statutory rate table has no rate for the run's
        half-year (a run or plan does, once; not every drain of the outbox)."""
        for message in stale_rate_tables(self.run.as_of, policies=[
                loaded.policy for loaded in self.run.policies.values()]):
            logger.warning(message)

    def rules(self, case):
        rules = self.by_policy.get(case.policy_id)
        return rules if rules is not None and rules.active else None

    # -- per batch -------------------------------------------------------------------
    def prepare(self, cases, invoices):
        """Before the batch's steps are applied: the balance histories and earlier charges
        of its cases with a charging policy (a constant number of queries)."""
        self.facts, self.before = {}, {}
        cases = [c for c in cases if c.pk is not None and self.rules(c) is not None]
        if not cases:
            return
        with_interest = [c for c in cases if self.rules(c).interest_rule is not None]
        histories = self.histories(with_interest, invoices) if with_interest else {}
        for case in cases:
            current = invoices.get(case.customer_id, [])
            if case.pk in histories:
                self.facts[case.pk] = histories[case.pk]
            else:  # fees only: the balances of today are all a fee needs
                self.facts[case.pk] = [
                    fees.InvoiceFacts(i.number, i.currency, ((i.due_date, i.amount_due),))
                    for i in current if i.amount_due > 0
                ]
        self.before = self.already_charged([c.pk for c in with_interest])

    def histories(self, cases, invoices):
        """{case pk: [InvoiceFacts]}: from the host's ledger when it has one, else from
        dunning's own observations, brought up to date with this run's balances."""
        as_of = self.run.as_of
        if self.ledger is not None:
            rows = [i for c in cases for i in invoices.get(c.customer_id, [])]
            ledger = self.ledger([i.pk for i in rows]) or {}
            return {
                c.pk: [fees.InvoiceFacts(i.number, i.currency,
                                         tuple(ledger.get(i.pk) or ((i.due_date, i.amount_due),)))
                       for i in invoices.get(c.customer_id, [])]
                for c in cases
            }
        seen = defaultdict(dict)  # case pk -> number -> [currency, [(since, balance)]]
        for case_id, number, currency, since, balance in (
            BalanceObservation.objects.using(self.run.using)
            .filter(case_id__in=[c.pk for c in cases])
            .order_by("case_id", "invoice_number", "since")
            .values_list("case_id", "invoice_number", "currency", "since", "balance")
        ):
            seen[case_id].setdefault(number, [currency, []])[1].append((since, balance))
        new = []
        for case in cases:
            known = seen[case.pk]
            current = {i.number: i for i in invoices.get(case.customer_id, [])}
            for number, invoice in current.items():
                balance = max(invoice.amount_due, Decimal(0))
                if number not in known:
                    entry = (invoice.due_date, balance)
                    known[number] = [invoice.currency, [entry]]
                elif known[number][1][-1][1] != balance:
                    entry = (as_of, balance)
                    known[number][1].append(entry)
                else:
                    continue
                new.append(BalanceObservation(case_id=case.pk, invoice_number=number,
                                              currency=invoice.currency, since=entry[0],
                                              balance=entry[1]))
            for number, (currency, history) in known.items():
                if number not in current and history[-1][1] != 0:
                    # Paid (or no longer overdue): interest stops after today.
                    history.append((as_of, Decimal(0)))
                    new.append(BalanceObservation(case_id=case.pk, invoice_number=number,
                                                  currency=currency, since=as_of,
                                                  balance=Decimal(0)))
        if new:
            BalanceObservation.objects.using(self.run.using).bulk_create(
                new, update_conflicts=True, unique_fields=["case", "invoice_number", "since"],
                update_fields=["balance"],
            )
        return {
            case_id: [fees.InvoiceFacts(number, currency, tuple(history))
                      for number, (currency, history) in sorted(known.items())]
            for case_id, known in seen.items()
        }

    def already_charged(self, case_pks):
        """{case pk: {invoice number: AlreadyCharged}} (one query)."""
        before = defaultdict(dict)
        if not case_pks:
            return before
        totals = defaultdict(lambda: {"interest": Decimal(0), "until": None,
                                      "compensation": Decimal(0)})
        for case_id, number, kind, amount, until in (
            CaseCharge.objects.using(self.run.using)
            .filter(case_id__in=case_pks, kind__in=[fees.INTEREST, fees.COMPENSATION])
            .values_list("case_id", "invoice_number", "kind")
            .annotate(total=Sum("amount"), until=Max("period_end"))
            .order_by()
        ):
            entry = totals[(case_id, number)]
            if kind == fees.INTEREST:
                entry["interest"], entry["until"] = amount, until
            else:
                entry["compensation"] = amount
        for (case_id, number), entry in totals.items():
            before[case_id][number] = fees.AlreadyCharged(
                entry["interest"], entry["until"], entry["compensation"])
        return before

    # -- per step --------------------------------------------------------------------
    def charges_for_step(self, case, step, done_keys):
        """The new charges of a reminder the run queues now (a list of fees.Charge)."""
        rules = self.rules(case)
        facts = self.facts.get(case.pk)
        if rules is None or not facts:
            return []
        fee_rule = rules.step_fees.get(step.key, rules.fee_rule)
        if (step.key in rules.free_steps or step.action not in FEE_ACTIONS
                or step.channel == Channel.CALL):
            fee_rule = None
        reminders_before = sum(1 for key in done_keys if key in rules.step_keys)
        return fees.charges_for(
            facts, as_of=self.run.as_of, debtor_is_business=rules.business,
            step_index=reminders_before if fee_rule is not None else None,
            fee_rule=fee_rule, interest_rule=rules.interest_rule,
            charged=self.before.get(case.pk),
        )

    def record(self, case, step_key, charges, created_at):
        """CaseCharge rows of the charges (saved with the batch) and the values the
        message and the signal get."""
        rows = [
            CaseCharge(case_id=case.pk, run=self.run.run, step_key=step_key, kind=c.kind,
                       invoice_number=c.invoice_number or "", amount=c.amount,
                       currency=c.currency, period_start=c.period_start,
                       period_end=c.period_end, rate=c.rate,
                       details=[p.as_dict() for p in c.details], created_at=created_at)
            for c in charges
        ]
        return rows, [c.as_dict() for c in charges]

    def listed_charges(self, steps):
        """{(case pk, step key): charge values} of queued steps sent later (the outbox):
        the message lists what its step charged when it was queued (one query)."""
        listed = defaultdict(list)
        cases = {s.case_id for s in steps}
        keys = {s.step_key for s in steps}
        for charge in CaseCharge.objects.using(self.run.using).filter(
            case_id__in=cases, step_key__in=keys
        ).order_by("pk"):
            listed[(charge.case_id, charge.step_key)].append(charge.as_dict())
        return listed


def stale_rate_tables(as_of=None, *, policies=None, using="default"):
    """Messages for the active policies whose statutory interest rule has no rate for the
    half-year of ``as_of`` (default: today) in its table."""
    from django.utils import timezone

    from ..models import Policy

    as_of = as_of or timezone.localdate()
    if policies is None:
        policies = Policy.objects.using(using).exclude(interest_rule={})
    messages = []
    for policy in policies:
        if not policy.is_active or not policy.interest_rule:
            continue
        try:
            _fee, rule = policy.charge_rules()
        except (ValueError, TypeError):
            continue
        if rule is not None and rule.rates and not fees.rate_table_is_current(rule.rates, as_of):
            messages.append(
                f"Policy {policy.key!r}: the {rule.kind} rate table ends on "
                f"{rule.rates[-1][0].isoformat()}, before the half-year from "
                f"{fees.half_year_start(as_of).isoformat()}; its last rate is used.")
    return messages


def summary(charges, locale):
    """"Reminder fee: €5.00; Late-payment interest INV-1: €3.95" for the timeline, from
    the rows a message lists (rendering.charges_context)."""
    parts = [f"{row['label']}{' ' + row['invoice'] if row['invoice'] else ''}: {row['amount']}"
             for row in charges_context(charges, locale)["charges"]]
    return _("Charged: %(charges)s") % {"charges": "; ".join(parts)}
