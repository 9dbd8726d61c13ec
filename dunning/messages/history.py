"""The customer's history, for message templates that tailor their wording to it.

:func:`customer_history` gives, per customer, how long they have been a customer, the
share of their paid invoices that were paid on time, and how many earlier dunning cases
they had::

    {
        "months_as_customer": 26,      # whole months since customer_since; None: unknown
        "customer_since": date(...),   # None: unknown
        "on_time_rate": 92,            # percent (0-100) of the paid invoices paid by their
                                       # due date; None: none paid, or paid_on unknown
        "invoices_paid": 24,           # invoices with a paid_on date; None: paid_on unknown
        "past_cases": 0,               # earlier closed cases (resolved, terminated,
                                       # written off) in dunning's own tables
        "first_time_late": 1,          # 1 when past_cases is 0, else 0
    }

The dates come from two optional canonical fields: ``customer_since`` of the customer and
``paid_on`` of the invoice (``DUNNING["CUSTOMER_FIELDS"]`` / ``["INVOICE_FIELDS"]``; the
shipped models have both). A host that maps neither still gets ``past_cases``.

The answer for any number of customers takes one query (the host's customers, with their
invoices and dunning's cases counted in subqueries); a figure whose field is not mapped is
not asked for. :func:`history_context` turns one
customer's history into the plain values a template sees (``history`` in
:func:`dunning.rendering.build_context`).
"""

from __future__ import annotations

import calendar
import datetime

from django.db.models import Count, DateTimeField, F, OuterRef, Q, Subquery
from django.db.models.functions import Coalesce, TruncDate
from django.utils import timezone

from ..formatting import format_day
from ..hosts import ANNOTATION_PREFIX, get_adapter, resolve_path
from ..models import Case

#: The figures of a customer's history, in the order the docs list them.
HISTORY_KEYS = (
    "months_as_customer",
    "customer_since",
    "on_time_rate",
    "invoices_paid",
    "past_cases",
    "first_time_late",
)

#: The statuses of a case that is over (counted in ``past_cases``): Case.Status
#: RESOLVED, TERMINATED and WRITTEN_OFF. (No import of the models here: dunning.rendering
#: imports this module, and the models import dunning.rendering.)
CLOSED_STATUSES = ("resolved", "terminated", "written_off")


def _as_date(value):
    """A date from a date or a datetime (an aware datetime in the site's time zone)."""
    if isinstance(value, datetime.datetime):
        if timezone.is_aware(value):
            value = timezone.localtime(value)
        return value.date()
    return value


def months_between(since, as_of):
    """Whole months from ``since`` to ``as_of`` (0 before ``since``; None for None).

    A month is complete on the same day of a later month, or on that month's last day
    when it is shorter: 31 January -> 28 February is one month, 15 January -> 14 February
    none yet.
    """
    if since is None:
        return None
    since, as_of = _as_date(since), _as_date(as_of)
    if as_of <= since:
        return 0
    months = (as_of.year - since.year) * 12 + as_of.month - since.month
    last_day = calendar.monthrange(as_of.year, as_of.month)[1]
    if as_of.day < min(since.day, last_day):
        months -= 1
    return months


def _field(adapter, kind, name):
    """The host path of an optional canonical field, or None when the host has none."""
    lookup = getattr(adapter, f"{kind}_field", None)
    if lookup is None:  # an adapter that is not a FieldMapAdapter
        return None
    return lookup(name) or None


def customer_history(customer_ids, *, as_of, using="default", adapter=None, exclude_cases=()):
    """{customer pk: history dict} for ``customer_ids`` on the day ``as_of``.

    One query, whatever the number of customers: the host's customers with their
    ``customer_since``, and counted in subqueries their invoices paid (and paid on time)
    and their closed cases; a figure whose field the host does not map is not asked for.
    ``exclude_cases``: pks of cases not to count as past ones (say, the case a thank-you
    message is about once it is resolved).
    """
    ids = list(dict.fromkeys(customer_ids))
    if not ids:
        return {}
    as_of = _as_date(as_of)
    adapter = adapter if adapter is not None else get_adapter()
    p = ANNOTATION_PREFIX
    names = {"past": p + "past_cases", "since": p + "customer_since",
             "paid": p + "invoices_paid", "on_time": p + "paid_on_time"}
    annotations = {names["past"]: _count(_past_cases(as_of, exclude_cases))}
    has_since = bool(_field(adapter, "customer", "customer_since"))
    if has_since:
        annotations[names["since"]] = adapter.customer_expression("customer_since")
    invoices = _paid_invoices(adapter, as_of)
    if invoices is not None:
        on_time = Q(**{f"{p}paid_on__lte": F(p + "due_date")})
        annotations[names["paid"]] = _count(invoices)
        annotations[names["on_time"]] = _count(invoices, on_time)
    rows = (
        adapter.customer_queryset().using(using).filter(pk__in=ids)
        .annotate(**annotations).order_by().values_list("pk", *annotations)
    )
    found = {}
    for pk, *values in rows:
        row = dict(zip(annotations, values, strict=True))
        day = _as_date(row.get(names["since"]))
        earlier = found.get(pk)
        # A path through a to-many relation gives several rows: the earliest date counts.
        if earlier is not None and (day is None or (earlier[0] is not None and earlier[0] <= day)):
            continue
        found[pk] = (day, row)
    result = {}
    for pk in ids:
        day, row = found.get(pk, (None, {}))
        if invoices is None:
            invoices_paid, rate = None, None
        else:
            invoices_paid = row.get(names["paid"]) or 0
            on_time_count = row.get(names["on_time"]) or 0
            rate = round(100 * on_time_count / invoices_paid) if invoices_paid else None
        cases = row.get(names["past"]) or 0
        result[pk] = {
            "months_as_customer": months_between(day, as_of) if has_since else None,
            "customer_since": day if has_since else None,
            "on_time_rate": rate,
            "invoices_paid": invoices_paid,
            "past_cases": cases,
            "first_time_late": 0 if cases else 1,
        }
    return result


def _count(queryset, condition=None):
    """A subquery counting the rows of ``queryset`` (already filtered to the outer
    customer, grouped by it); 0 when there are none."""
    counted = queryset.annotate(
        dunning_n=Count("pk", filter=condition) if condition is not None else Count("pk"))
    return Coalesce(Subquery(counted.values("dunning_n")[:1]), 0)


def _paid_invoices(adapter, as_of):
    """The host's invoices of the outer customer paid by ``as_of``, grouped by customer
    (for :func:`_count`), or None when the host has no paid_on."""
    computed = "paid_on" in getattr(adapter, "computed_invoice_fields", ())
    path = _field(adapter, "invoice", "paid_on")
    if not computed and not path:
        return None
    p = ANNOTATION_PREFIX
    customer = adapter.customer_annotation
    paid_on = adapter.invoice_expression("paid_on")
    if path and not computed:
        try:
            if isinstance(resolve_path(adapter.invoice_model, path), DateTimeField):
                paid_on = TruncDate(paid_on)  # the day, in the site's time zone
        except LookupError:
            pass  # the system checks report it; the query raises
    return (
        adapter.invoices()
        .annotate(**{
            customer: adapter.invoice_expression("customer"),
            p + "paid_on": paid_on,
            p + "due_date": adapter.invoice_expression("due_date"),
        })
        .filter(**{customer: OuterRef("pk"), f"{p}paid_on__isnull": False,
                   f"{p}paid_on__lte": as_of})
        .order_by().values(customer)
    )


def _past_cases(as_of, exclude_cases):
    """dunning's closed cases of the outer customer (closed by ``as_of``), grouped by
    customer (for :func:`_count`)."""
    cases = (
        Case.objects.filter(customer_id=OuterRef("pk"), status__in=CLOSED_STATUSES)
        .filter(Q(closed_on__isnull=True) | Q(closed_on__lte=as_of))
    )
    if exclude_cases:
        cases = cases.exclude(pk__in=list(exclude_cases))
    return cases.order_by().values("customer_id")


def history_context(history, locale):
    """The plain values a template sees as ``history``: ``customer_since`` as a date in
    the customer's language ("" when unknown) and the figures as whole numbers.

    An unknown figure (None) is left out: the context holds plain values only (dicts,
    lists, text, integers), a left-out variable renders as "" (never "None"), and in an
    ``{% if %}`` it is None, so ``{% if history.on_time_rate >= 90 %}`` is simply false.
    ``history`` None (not computed): every figure unknown.
    """
    history = history or {}
    since = history.get("customer_since")
    values = {"customer_since": format_day(_as_date(since), locale) if since else ""}
    for key in HISTORY_KEYS:
        if key != "customer_since" and history.get(key) is not None:
            values[key] = int(history[key])
    return values


def mentions_history(*sources):
    """True when a template source uses ``history`` (a run computes it only then)."""
    return any("history" in (source or "") for source in sources)
