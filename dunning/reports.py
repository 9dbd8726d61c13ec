"""Figures for the collections dashboard, from set-based queries.

Plain functions returning dicts and lists (amounts as Decimal), so that the admin
dashboard and, later, an API can share them. Each function runs a fixed number of
queries, however many cases and invoices there are.
"""

import datetime
from decimal import Decimal

from django.db.models import Case as CaseWhen
from django.db.models import Count, IntegerField, Min, Q, Subquery, Sum, Value, When
from django.utils import timezone

from .hosts import ANNOTATION_PREFIX, _to_decimal, get_adapter
from .models import Case, CaseStep, Step

AGING_BUCKETS = ["1-30", "31-60", "61-90", "90+"]
RECOVERY_WINDOWS = (30, 90)
#: A step counts as effective when the case was resolved at most this many days after it.
EFFECTIVE_WITHIN_DAYS = 7
#: The thank-you message is not a dunning step.
PAYMENT_RECEIVED = "payment-received"


def _today(today):
    return today or timezone.localdate()


def _currency(value):
    return (value or "").strip().upper()


def _open_case_invoices(today):
    """The host's overdue invoices of customers that have an open case."""
    adapter = get_adapter()
    open_customers = Case.objects.filter(status=Case.Status.OPEN).values("customer_id")
    return adapter.overdue_invoices(today).filter(
        **{adapter.customer_annotation + "__in": Subquery(open_customers)}
    )


def open_cases(today=None):
    """Open cases and the amount overdue per currency (two queries).

    ``{"count": int, "amounts": [{"currency": str, "amount": Decimal, "invoices": int}]}``
    """
    today = _today(today)
    p = ANNOTATION_PREFIX
    count = Case.objects.filter(status=Case.Status.OPEN).count()
    rows = (
        _open_case_invoices(today)
        .order_by()
        .values(p + "currency")
        .annotate(total=Sum(p + "amount_due"), n=Count("pk"))
    )
    amounts = {}
    for row in rows:
        cur = _currency(row[p + "currency"])
        entry = amounts.setdefault(cur, {"currency": cur, "amount": Decimal(0), "invoices": 0})
        entry["amount"] += _to_decimal(row["total"])
        entry["invoices"] += row["n"]
    return {"count": count, "amounts": [amounts[c] for c in sorted(amounts)]}


def recovery(today=None, windows=RECOVERY_WINDOWS):
    """Cases resolved and recovery rate over the last ``windows`` days (one query).

    A case counts in a window of N days when it was closed on one of the N days ending
    ``today``. Rate = resolved / closed (any status but open), None when none closed.
    ``{30: {"days": 30, "closed": int, "resolved": int, "rate": Decimal | None}, ...}``
    """
    today = _today(today)
    aggregates = {}
    for days in windows:
        in_window = Q(closed_on__gt=today - datetime.timedelta(days=days), closed_on__lte=today)
        aggregates[f"closed_{days}"] = Count("pk", filter=in_window)
        aggregates[f"resolved_{days}"] = Count(
            "pk", filter=in_window & Q(status=Case.Status.RESOLVED)
        )
    totals = Case.objects.exclude(status=Case.Status.OPEN).aggregate(**aggregates)
    result = {}
    for days in windows:
        closed, resolved = totals[f"closed_{days}"], totals[f"resolved_{days}"]
        rate = (Decimal(resolved) / Decimal(closed)).quantize(Decimal("0.0001")) if closed else None
        result[days] = {"days": days, "closed": closed, "resolved": resolved, "rate": rate}
    return result


def average_days_to_collect():
    """Mean of closed_on - opened_on over resolved cases, in days (one query).

    ``{"cases": int, "days": Decimal | None}`` (days rounded to one decimal).
    """
    pairs = Case.objects.filter(status=Case.Status.RESOLVED, closed_on__isnull=False).values_list(
        "opened_on", "closed_on"
    )
    spans = [(closed - opened).days for opened, closed in pairs]
    if not spans:
        return {"cases": 0, "days": None}
    days = (Decimal(sum(spans)) / Decimal(len(spans))).quantize(Decimal("0.1"))
    return {"cases": len(spans), "days": days}


def aging(today=None):
    """Open overdue invoices (of customers with an open case) by days overdue (one query).

    ``[{"bucket": "1-30", "currencies": [{"currency", "count", "amount"}], "count": int}]``
    in the order of AGING_BUCKETS, every bucket present.
    """
    today = _today(today)
    p = ANNOTATION_PREFIX

    def before(days):
        return today - datetime.timedelta(days=days)

    bucket = CaseWhen(
        When(**{p + "due_date__gte": before(30)}, then=Value(0)),
        When(**{p + "due_date__gte": before(60)}, then=Value(1)),
        When(**{p + "due_date__gte": before(90)}, then=Value(2)),
        default=Value(3),
        output_field=IntegerField(),
    )
    rows = (
        _open_case_invoices(today)
        .annotate(dunning_bucket=bucket)
        .order_by()
        .values("dunning_bucket", p + "currency")
        .annotate(total=Sum(p + "amount_due"), n=Count("pk"))
    )
    buckets = [{"bucket": name, "count": 0, "currencies": {}} for name in AGING_BUCKETS]
    for row in rows:
        entry = buckets[row["dunning_bucket"]]
        cur = _currency(row[p + "currency"])
        per = entry["currencies"].setdefault(cur, {"currency": cur, "count": 0, "amount": Decimal(0)})
        per["count"] += row["n"]
        per["amount"] += _to_decimal(row["total"])
        entry["count"] += row["n"]
    for entry in buckets:
        entry["currencies"] = [entry["currencies"][c] for c in sorted(entry["currencies"])]
    return buckets


def step_effectiveness(within_days=EFFECTIVE_WITHIN_DAYS):
    """For each step key, the share of sent steps after which the case was resolved
    within ``within_days`` days (two queries: the steps, and the policies' step order).

    ``[{"step_key": str, "sent": int, "paid": int, "rate": Decimal | None}]``, in the
    order of the policies' offsets.
    """
    rows = (
        CaseStep.objects.filter(status=CaseStep.Status.SENT)
        .exclude(step_key=PAYMENT_RECEIVED)
        .values_list("step_key", "executed_on", "case__status", "case__closed_on")
    )
    window = datetime.timedelta(days=within_days)
    stats = {}
    for key, executed_on, status, closed_on in rows:
        entry = stats.setdefault(key, {"step_key": key, "sent": 0, "paid": 0, "rate": None})
        entry["sent"] += 1
        if (
            status == Case.Status.RESOLVED
            and closed_on is not None
            and executed_on <= closed_on <= executed_on + window
        ):
            entry["paid"] += 1
    order = dict(
        Step.objects.filter(key__in=list(stats))
        .values("key")
        .annotate(offset=Min("offset_days"))
        .values_list("key", "offset")
    )
    result = sorted(stats.values(), key=lambda e: (order.get(e["step_key"], 10**6), e["step_key"]))
    for entry in result:
        entry["rate"] = (Decimal(entry["paid"]) / Decimal(entry["sent"])).quantize(Decimal("0.0001"))
    return result


def dashboard(today=None):
    """Every figure of the dashboard (a constant number of queries)."""
    today = _today(today)
    return {
        "today": today,
        "open": open_cases(today),
        "recovery": recovery(today),
        "days_to_collect": average_days_to_collect(),
        "aging": aging(today),
        "steps": step_effectiveness(),
    }
