"""Which policy a new case gets: policy rules evaluated in priority order.

A rule (:class:`dunning.models.PolicyRule`) matches a customer when every condition it sets
holds: the overdue balance in its currency lies in its amount band, the customer's segment
(the optional canonical customer field ``segment``) is one of its segments, the payment
history fits (first time late: no earlier case; late before: one or more; chronic:
``DUNNING["CHRONIC_AFTER"]`` earlier cases or more), and the risk score from the host's
hook ``DUNNING["RISK_SCORE"]`` (a dotted path to ``f(customer_row, balances) -> number or
None``) lies in its band. The first matching active rule gives the policy (and, if set,
the collector the case is assigned to at once); no match: the default policy.

:func:`choose` is pure. :func:`assign_new_cases` applies the rules to the cases a run has
just opened, set-based: per batch one query for the customers, one for their balances,
one for their earlier cases, then one UPDATE per (policy, collector) group.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from decimal import Decimal

from django.db.models import Count, Sum
from django.utils.translation import gettext as _

from .. import webhooks
from ..conf import dunning_settings
from ..hosts import ANNOTATION_PREFIX
from ..models import Case, CaseEvent, PolicyRule


@dataclass(frozen=True)
class Facts:
    """What the rules look at for one customer."""

    balances: dict  # currency -> Decimal owed overdue
    segment: str = ""
    earlier_cases: int = 0
    risk: Decimal | None = None


def matches(rule, facts, chronic_after=3):
    if rule.currency:
        owed = facts.balances.get(rule.currency)
        if owed is None:
            return False
        if rule.min_amount is not None and owed < rule.min_amount:
            return False
        if rule.max_amount is not None and owed >= rule.max_amount:
            return False
    if rule.segments and facts.segment not in rule.segments:
        return False
    history = rule.history
    if history == PolicyRule.History.FIRST_TIME and facts.earlier_cases:
        return False
    if history == PolicyRule.History.REPEAT and not facts.earlier_cases:
        return False
    if history == PolicyRule.History.CHRONIC and facts.earlier_cases < chronic_after:
        return False
    if rule.min_risk is not None or rule.max_risk is not None:
        if facts.risk is None:
            return False
        if rule.min_risk is not None and facts.risk < rule.min_risk:
            return False
        if rule.max_risk is not None and facts.risk >= rule.max_risk:
            return False
    return True


def choose(rules, facts, chronic_after=3):
    """The first rule of ``rules`` (already in priority order) that matches, or None."""
    return next((rule for rule in rules if matches(rule, facts, chronic_after)), None)


def active_rules(using="default"):
    return list(PolicyRule.objects.using(using).filter(is_active=True, policy__is_active=True)
                .select_related("policy").order_by("priority", "pk"))


def risk_hook():
    return dunning_settings.RISK_SCORE or None  # imported by conf (IMPORT_STRINGS)


def gather_facts(run, customer_ids, case_pks):
    """{customer pk: Facts} for a batch of new cases (three queries)."""
    adapter = run.adapter
    p = adapter.customer_annotation
    customers = adapter.customer_rows(customer_ids)
    balances = defaultdict(dict)
    for customer_id, currency, owed in (
        run.overdue().filter(**{f"{p}__in": customer_ids}).order_by()
        .values_list(p, ANNOTATION_PREFIX + "currency")
        .annotate(owed=Sum(ANNOTATION_PREFIX + "amount_due"))
    ):
        balances[customer_id][currency] = Decimal(owed)
    earlier = dict(
        Case.objects.using(run.using).filter(customer_id__in=customer_ids)
        .exclude(pk__in=case_pks).order_by().values_list("customer_id")
        .annotate(n=Count("pk")).values_list("customer_id", "n")
    )
    hook = risk_hook()
    facts = {}
    for customer_id in customer_ids:
        row = customers.get(customer_id)
        owed = balances.get(customer_id, {})
        risk = hook(row, owed) if hook is not None and row is not None else None
        facts[customer_id] = Facts(
            balances=owed, segment=row.segment if row is not None else "",
            earlier_cases=earlier.get(customer_id, 0),
            risk=None if risk is None else Decimal(str(risk)),
        )
    return facts


def assign_new_cases(run, rules=None):
    """Give the cases ``run`` opened the policy of their first matching rule. Returns the
    number of cases that got another policy than the default."""
    rules = active_rules(run.using) if rules is None else rules
    if not rules:
        return 0
    chronic_after = int(dunning_settings.CHRONIC_AFTER)
    new_cases = Case.objects.using(run.using).filter(opened_in=run.run, status=Case.Status.OPEN)
    last, moved = 0, 0
    while True:
        batch = list(new_cases.filter(pk__gt=last).order_by("pk")
                     .values_list("pk", "customer_id")[: run.batch_size])
        if not batch:
            return moved
        last = batch[-1][0]
        facts = gather_facts(run, [c for _pk, c in batch], [pk for pk, _c in batch])
        groups, events = defaultdict(list), []
        for pk, customer_id in batch:
            rule = choose(rules, facts[customer_id], chronic_after)
            if rule is None:
                continue
            groups[(rule.policy_id, rule.assign_to_id)].append(pk)
            events.append(CaseEvent(
                case_id=pk, run=run.run, kind=CaseEvent.Kind.POLICY_RULE, created_at=run.now,
                message=_("Policy %(policy)s chosen by the rule “%(rule)s”.") % {
                    "policy": rule.policy.key, "rule": rule.name},
                data={"rule": rule.pk, "policy": rule.policy_id},
            ))
        for (policy_id, collector_id), pks in groups.items():
            update = {"policy_id": policy_id}
            if collector_id is not None:
                update.update(assigned_to_id=collector_id, needs_person=True)
            Case.objects.using(run.using).filter(pk__in=pks).update(**update)
            moved += len(pks)
        if events:
            created = CaseEvent.objects.using(run.using).bulk_create(events)
            webhooks.events_created(created, run.using, run=run)
