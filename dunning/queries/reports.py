"""Figures for the collections dashboard, from set-based queries.

Plain functions returning dicts and lists (amounts as Decimal), so that the admin
dashboard and, later, an API can share them. Each function runs a fixed number of
queries, however many cases and invoices there are, and aggregates in the database:
no function loads one row per case or per step into Python (the one exception, the
recovered amounts on databases other than PostgreSQL, loads one row per case resolved
within the window; see :func:`recovered_amounts`).

:func:`dashboard` computes everything in five queries: every figure over the cases in
one aggregate, the overdue invoices of open cases (amounts and aging) in one, the
recovered amounts in one, and the step effectiveness in two.
"""

import datetime
from decimal import Decimal, InvalidOperation

from django.db import connections, router
from django.db.models import (
    Avg,
    Count,
    DurationField,
    Exists,
    ExpressionWrapper,
    F,
    IntegerField,
    Min,
    Q,
    Subquery,
    Sum,
    Value,
    When,
)
from django.db.models import Case as CaseWhen
from django.utils import timezone

from ..hosts import ANNOTATION_PREFIX, _to_decimal, get_adapter
from ..messages import variants
from ..models import Case, CaseStep, Step
from ..rules.schedule import PROMISE_GRACE_DAYS  # the grace the workbench and the API give

AGING_BUCKETS = ["1-30", "31-60", "61-90", "90+"]
RECOVERY_WINDOWS = (30, 90)
#: A step counts as effective when the case was resolved at most this many days after it.
EFFECTIVE_WITHIN_DAYS = 7
#: The dashboard's step effectiveness counts the steps of this many days (see step_window).
STEP_WINDOW_DAYS = 90
#: Promises counted: those whose promised date is at most this many days ago (or later).
PROMISE_WINDOW_DAYS = 90
#: The thank-you message is not a dunning step.
PAYMENT_RECEIVED = "payment-received"

RATE_PLACES = Decimal("0.0001")


def _today(today):
    return today or timezone.localdate()


def _currency(value):
    return (value or "").strip().upper()


def _rate(part, whole):
    return (Decimal(part) / Decimal(whole)).quantize(RATE_PLACES) if whole else None


def _days(n):
    return datetime.timedelta(days=n)


# -- the case aggregates: one query for every figure over the cases ----------------------


def _open_count_aggregates(today):
    return {"open_count": Count("pk", filter=Q(status=Case.Status.OPEN))}


def _recovery_aggregates(today, windows=RECOVERY_WINDOWS):
    aggregates = {}
    for days in windows:
        in_window = ~Q(status=Case.Status.OPEN) & Q(
            closed_on__gt=today - _days(days), closed_on__lte=today
        )
        aggregates[f"closed_{days}"] = Count("pk", filter=in_window)
        aggregates[f"resolved_{days}"] = Count(
            "pk", filter=in_window & Q(status=Case.Status.RESOLVED)
        )
    return aggregates


def _recovery_result(totals, windows=RECOVERY_WINDOWS):
    result = {}
    for days in windows:
        closed, resolved = totals[f"closed_{days}"], totals[f"resolved_{days}"]
        result[days] = {
            "days": days, "closed": closed, "resolved": resolved, "rate": _rate(resolved, closed)
        }
    return result


def _days_to_collect_aggregates(today=None):
    resolved = Q(status=Case.Status.RESOLVED, closed_on__isnull=False)
    # date - date: an interval on PostgreSQL, microseconds on SQLite; a timedelta either way.
    span = ExpressionWrapper(F("closed_on") - F("opened_on"), output_field=DurationField())
    return {
        "collected_cases": Count("pk", filter=resolved),
        "collected_span": Avg(span, filter=resolved),
    }


def _days_to_collect_result(totals):
    cases, span = totals["collected_cases"], totals["collected_span"]
    if not cases or span is None:
        return {"cases": cases or 0, "days": None}
    micro = (span.days * 86400 + span.seconds) * 1_000_000 + span.microseconds
    return {"cases": cases, "days": (Decimal(micro) / Decimal(86_400_000_000)).quantize(Decimal("0.1"))}


def _promise_aggregates(today, days=PROMISE_WINDOW_DAYS):
    counted = Q(promised_on__isnull=False, promised_on__gt=today - _days(days))
    kept = Q(
        status=Case.Status.RESOLVED,
        closed_on__lte=F("promised_on") + _days(PROMISE_GRACE_DAYS),
    )
    # promised_on + grace >= today, written without arithmetic on the column.
    pending = Q(status=Case.Status.OPEN, promised_on__gte=today - _days(PROMISE_GRACE_DAYS))
    return {
        "promises": Count("pk", filter=counted),
        "promises_kept": Count("pk", filter=counted & kept),
        "promises_pending": Count("pk", filter=counted & pending),
    }


def _variant_aggregates():
    # Whether any step recorded an A/B variant (dunning.variants): an uncorrelated EXISTS
    # the database evaluates once, on the small partial index of variant steps. Every step
    # has a case, so the count is 0 exactly when there is no variant step.
    return {"variant_flag": Count("pk", filter=Exists(CaseStep.objects.exclude(variant="")))}


def _promise_result(totals, days=PROMISE_WINDOW_DAYS):
    total, kept, pending = totals["promises"], totals["promises_kept"], totals["promises_pending"]
    broken = total - kept - pending
    return {
        "days": days,
        "grace_days": PROMISE_GRACE_DAYS,
        "promises": total,
        "kept": kept,
        "broken": broken,
        "pending": pending,
        "rate": _rate(kept, kept + broken),
    }


def open_cases(today=None):
    """Open cases and the amount overdue per currency (two queries).

    ``{"count": int, "amounts": [{"currency": str, "amount": Decimal, "invoices": int}]}``
    """
    today = _today(today)
    count = Case.objects.aggregate(**_open_count_aggregates(today))["open_count"]
    return {"count": count, "amounts": _open_amounts(_overdue_rows(today))}


def recovery(today=None, windows=RECOVERY_WINDOWS):
    """Cases resolved and recovery rate over the last ``windows`` days (one query).

    A case counts in a window of N days when it was closed on one of the N days ending
    ``today``. Rate = resolved / closed (any status but open), None when none closed.
    ``{30: {"days": 30, "closed": int, "resolved": int, "rate": Decimal | None}, ...}``
    The amounts recovered are :func:`recovered_amounts`.
    """
    today = _today(today)
    return _recovery_result(Case.objects.aggregate(**_recovery_aggregates(today, windows)), windows)


def average_days_to_collect():
    """Mean of closed_on - opened_on over resolved cases, in days (one query, AVG in
    the database).

    ``{"cases": int, "days": Decimal | None}`` (days rounded to one decimal).
    """
    return _days_to_collect_result(Case.objects.aggregate(**_days_to_collect_aggregates()))


def promises(today=None, days=PROMISE_WINDOW_DAYS):
    """Promises to pay kept and broken (one query).

    Counts the cases with a promise (``Case.promised_on``; a case keeps only its latest
    promise) whose promised date is less than ``days`` days before ``today``, or later.
    With the grace the workbench and the API give a promise, PROMISE_GRACE_DAYS of
    dunning.services (dunning pauses until then):

    * kept: the case was resolved (paid) at most the grace after the promised date;
    * pending: the case is open and the promised date plus the grace is today or later;
    * broken: every other promise: the case is still open after the date plus the grace,
      was resolved later than that, or was closed without payment (terminated, written off).

    ``{"days", "grace_days", "promises", "kept", "broken", "pending": int,
    "rate": Decimal | None}`` with rate = kept / (kept + broken), None when none is due.
    """
    today = _today(today)
    return _promise_result(Case.objects.aggregate(**_promise_aggregates(today, days)), days)


def case_figures(today=None, windows=RECOVERY_WINDOWS):
    """Open count, recovery, days to collect, promises and whether there are A/B
    variants in ONE aggregate query."""
    today = _today(today)
    totals = Case.objects.aggregate(
        **_open_count_aggregates(today),
        **_recovery_aggregates(today, windows),
        **_days_to_collect_aggregates(),
        **_promise_aggregates(today),
        **_variant_aggregates(),
    )
    return {
        "open_count": totals["open_count"],
        "recovery": _recovery_result(totals, windows),
        "days_to_collect": _days_to_collect_result(totals),
        "promises": _promise_result(totals),
        "has_variants": bool(totals["variant_flag"]),
    }


# -- overdue invoices of open cases: amounts and aging in one query ----------------------


def _open_case_invoices(today):
    """The host's overdue invoices of customers that have an open case."""
    adapter = get_adapter()
    # No ORDER BY inside IN (...): the Case's default ordering would sort every open case.
    open_customers = Case.objects.filter(status=Case.Status.OPEN).order_by().values("customer_id")
    return adapter.overdue_invoices(today).filter(
        **{adapter.customer_annotation + "__in": Subquery(open_customers)}
    )


def _overdue_rows(today):
    """(bucket index, currency, count, amount) of the overdue invoices of open cases,
    grouped by aging bucket and currency (one query)."""
    p = ANNOTATION_PREFIX

    def before(days):
        return today - _days(days)

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
        .values_list("dunning_bucket", p + "currency", "n", "total")
    )
    return [(index, _currency(cur), n, _to_decimal(total)) for index, cur, n, total in rows]


def _open_amounts(rows):
    amounts = {}
    for _index, cur, n, total in rows:
        entry = amounts.setdefault(cur, {"currency": cur, "amount": Decimal(0), "invoices": 0})
        entry["amount"] += total
        entry["invoices"] += n
    return [amounts[c] for c in sorted(amounts)]


def _aging_buckets(rows):
    buckets = [{"bucket": name, "count": 0, "currencies": {}} for name in AGING_BUCKETS]
    for index, cur, n, total in rows:
        entry = buckets[index]
        per = entry["currencies"].setdefault(cur, {"currency": cur, "count": 0, "amount": Decimal(0)})
        per["count"] += n
        per["amount"] += total
        entry["count"] += n
    for entry in buckets:
        entry["currencies"] = [entry["currencies"][c] for c in sorted(entry["currencies"])]
    return buckets


def aging(today=None):
    """Open overdue invoices (of customers with an open case) by days overdue (one query).

    ``[{"bucket": "1-30", "currencies": [{"currency", "count", "amount"}], "count": int}]``
    in the order of AGING_BUCKETS, every bucket present.
    """
    return _aging_buckets(_overdue_rows(_today(today)))


# -- recovered amounts ------------------------------------------------------------------


def _amount(value):
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError, TypeError):
        return None


def _recovered_sql(connection, today, windows):
    """Per currency, the sums per window, aggregated by PostgreSQL over the jsonb."""
    qn = connection.ops.quote_name
    case_t, step_t = qn(Case._meta.db_table), qn(CaseStep._meta.db_table)

    def col(model, name):
        return qn(model._meta.get_field(name).column)

    closed, status, last = col(Case, "closed_on"), col(Case, "status"), col(Case, "last_step_key")
    step_case, step_key, invoices = (
        col(CaseStep, "case"), col(CaseStep, "step_key"), col(CaseStep, "invoices")
    )
    # The snapshots hold str(Decimal) amounts (written by the run, read-only in the
    # admin), which numeric accepts, NaN and exponents included.
    sums = ", ".join(f"SUM(e.amount_due) FILTER (WHERE c.{closed} > %s)" for _ in windows)
    # The LATERAL ... LIMIT 1 (one row anyway: CaseStep is unique on case and step key)
    # makes PostgreSQL look each window case's step up in that unique index, rather than
    # hash-join the whole step history: the work grows with the window's cases only.
    sql = (
        f"SELECT UPPER(TRIM(COALESCE(e.currency, ''))), {sums} "
        f"FROM {case_t} c CROSS JOIN LATERAL (SELECT {invoices} AS invoices FROM {step_t} "
        f"WHERE {step_case} = c.{qn(Case._meta.pk.column)} AND {step_key} = c.{last} "
        f"LIMIT 1) s "
        f"CROSS JOIN LATERAL jsonb_to_recordset(CASE WHEN jsonb_typeof(s.invoices) = "
        f"'array' THEN s.invoices ELSE '[]'::jsonb END) AS e(amount_due numeric, currency text) "
        f"WHERE c.{status} = %s AND c.{closed} > %s AND c.{closed} <= %s GROUP BY 1"
    )
    params = [today - _days(days) for days in windows]
    params += [Case.Status.RESOLVED, today - _days(max(windows)), today]
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return [(cur, list(values)) for cur, *values in cursor.fetchall()]


def _recovered_python(today, windows):
    """The same sums from one query over the last step rows of the cases resolved within
    the longest window (not all history)."""
    rows = CaseStep.objects.filter(
        case__status=Case.Status.RESOLVED,
        case__closed_on__gt=today - _days(max(windows)),
        case__closed_on__lte=today,
        step_key=F("case__last_step_key"),
    ).order_by().values_list("case__closed_on", "invoices")
    sums = {}
    for closed_on, invoices in rows:
        for invoice in invoices if isinstance(invoices, list) else []:
            if not isinstance(invoice, dict):
                continue
            amount = _amount(invoice.get("amount_due"))
            if amount is None:
                continue
            per = sums.setdefault(_currency(invoice.get("currency")), [None] * len(windows))
            for i, days in enumerate(windows):
                if closed_on > today - _days(days):
                    per[i] = (per[i] or Decimal(0)) + amount
    return list(sums.items())


def recovered_amounts(today=None, windows=RECOVERY_WINDOWS):
    """The amount recovered per currency over the last ``windows`` days (one query).

    A resolved case recovered what its last dunning message listed: the invoice
    snapshot (``CaseStep.invoices``) of the step named by ``Case.last_step_key`` (the
    thank-you message lists nothing). Partial payments made before that message are
    therefore not counted, and invoices that fell due after it are not either. A case
    counts in a window of N days as in :func:`recovery` (closed on one of the N days
    ending ``today``).

    On PostgreSQL the database sums the snapshots (``jsonb_array_elements``); on other
    databases one query loads the snapshot of each case resolved within the longest
    window (bounded by that window's cases, not all history) and Python sums them.

    ``{30: [{"currency": str, "amount": Decimal}], 90: [...]}``, currencies sorted,
    only those with an amount in the window.
    """
    today = _today(today)
    connection = connections[router.db_for_read(CaseStep)]
    if connection.vendor == "postgresql":
        rows = _recovered_sql(connection, today, windows)
    else:
        rows = _recovered_python(today, windows)
    result = {days: [] for days in windows}
    for cur, values in sorted(rows, key=lambda row: _currency(row[0])):
        for days, value in zip(windows, values, strict=True):
            if value is not None:
                result[days].append({"currency": _currency(cur), "amount": _to_decimal(value)})
    return result


# -- step effectiveness -----------------------------------------------------------------


def step_window(today, days=STEP_WINDOW_DAYS, within_days=EFFECTIVE_WITHIN_DAYS):
    """(first, last) day of the steps the dashboard's step effectiveness counts: the
    ``days`` days ending ``within_days`` days before ``today``, so that every step
    counted has had its full ``within_days`` days to be paid."""
    last = today - _days(within_days)
    return last - _days(days - 1), last


def step_effectiveness(within_days=EFFECTIVE_WITHIN_DAYS, today=None, days=None):
    """For each step key, the share of sent steps after which the case was resolved
    within ``within_days`` days (two queries: the counts per step key, aggregated by
    the database, and the policies' step order).

    With ``days``, only the steps executed in the window :func:`step_window` gives
    (``days`` days ending ``within_days`` days before ``today``); without, every step
    ever sent.

    ``[{"step_key": str, "sent": int, "paid": int, "rate": Decimal | None}]``, in the
    order of the policies' offsets.
    """
    paid = Q(
        case__status=Case.Status.RESOLVED,
        case__closed_on__gte=F("executed_on"),
        case__closed_on__lte=F("executed_on") + _days(within_days),
    )
    steps = CaseStep.objects.filter(status=CaseStep.Status.SENT)
    if days is not None:
        first, last = step_window(_today(today), days, within_days)
        steps = steps.filter(executed_on__gte=first, executed_on__lte=last)
    rows = list(
        steps.exclude(step_key=PAYMENT_RECEIVED)
        .order_by()
        .values("step_key")
        .annotate(sent=Count("pk"), paid=Count("pk", filter=paid))
        .values_list("step_key", "sent", "paid")
    )
    order = dict(
        Step.objects.filter(key__in=[key for key, _sent, _paid in rows])
        .order_by()
        .values("key")
        .annotate(offset=Min("offset_days"))
        .values_list("key", "offset")
    )
    rows.sort(key=lambda row: (order.get(row[0], 10**6), row[0]))
    return [
        {"step_key": key, "sent": sent, "paid": paid, "rate": _rate(paid, sent)}
        for key, sent, paid in rows
    ]


#: Late-payment feedback from the self-service page counts over this many days.
FEEDBACK_DAYS = 90


def late_reasons(today=None, days=FEEDBACK_DAYS):
    """Why customers said they paid late (the self-service page's feedback) over the
    ``days`` days ending ``today``, one query: ``{"days", "total", "reasons": [{"reason",
    "label", "count"}]}``, every reason present, most frequent first."""
    from ..models import Feedback

    today = _today(today)
    counts = dict(
        Feedback.objects.filter(created_at__date__gt=today - datetime.timedelta(days=days),
                                created_at__date__lte=today)
        .order_by().values_list("reason").annotate(n=Count("pk"))
    )
    reasons = [{"reason": value, "label": str(label), "count": counts.get(value, 0)}
               for value, label in Feedback.Reason.choices]
    reasons.sort(key=lambda r: -r["count"])
    return {"days": days, "total": sum(counts.values()), "reasons": reasons}


def variants_until(today):
    """The last day of the steps the dashboard's A/B table counts: each has had its
    ``variants.RECOVERY_DAYS`` days to be paid."""
    return today - _days(variants.RECOVERY_DAYS)


def dashboard(today=None):
    """Every figure of the dashboard (six queries, whatever the number of cases; seven
    when steps recorded A/B variants: :func:`dunning.variants.variant_report`)."""
    today = _today(today)
    cases = case_figures(today)
    overdue = _overdue_rows(today)
    ab_until = variants_until(today)
    return {
        # None: no A/B test (the dashboard shows no table); else the report's rows.
        "variants": variants.variant_report(until=ab_until) if cases["has_variants"] else None,
        "variants_until": ab_until,
        "today": today,
        "open": {"count": cases["open_count"], "amounts": _open_amounts(overdue)},
        "recovery": cases["recovery"],
        "recovered": recovered_amounts(today),
        "days_to_collect": cases["days_to_collect"],
        "promises": cases["promises"],
        "aging": _aging_buckets(overdue),
        "steps": step_effectiveness(today=today, days=STEP_WINDOW_DAYS),
        "steps_window": step_window(today),
        "late_reasons": late_reasons(today),
    }
