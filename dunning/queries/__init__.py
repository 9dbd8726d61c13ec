"""Case queries shared by the admin's case list and the REST API: what a case owes, how
long it is overdue, the days-overdue and amount bands, the currency filter, search by
customer and invoice number, and totals of what is listed.

The amounts live in the host's invoices, not on the case, so :func:`annotate_owing`
annotates each case with correlated subqueries over the adapter's overdue invoices
(``dunning_amount``, the sum owed; ``dunning_oldest_due``, the oldest open due date;
``dunning_currency_min`` / ``_max``, to tell a single-currency case from a mixed one). The
database evaluates them for the rows being shown (and for the rows a band filter looks
at); nothing is fetched per case in Python. Totals are one grouped query over the
invoices of the listed cases.
"""

import datetime
from dataclasses import dataclass
from decimal import Decimal

from django.conf import settings
from django.db.models import Case as CaseWhen
from django.db.models import Count, Exists, Max, Min, OuterRef, Q, Subquery, Sum, When
from django.utils import timezone, translation
from django.utils.translation import gettext_lazy

from ..engine.actions import CALL_CONVERSATION_OUTCOMES
from ..formatting import babel_locale, format_money
from ..hosts import ANNOTATION_PREFIX, _to_decimal, customer_contains, get_adapter
from ..inputs import parse_id, without_nul
from ..models import Case, CaseEvent, Dispute
from ..rules.compliance import REGF_REASON_TEXT, RegF, as_utc, zone_for
from ..rules.schedule import PROMISE_GRACE_DAYS

P = ANNOTATION_PREFIX
AMOUNT = "dunning_amount"
OLDEST_DUE = "dunning_oldest_due"
CURRENCY_MIN = "dunning_currency_min"
CURRENCY_MAX = "dunning_currency_max"

#: Days-overdue bands: (parameter value, label, first day, last day or None).
DAYS_BANDS = [
    ("1-30", gettext_lazy("1-30 days"), 1, 30),
    ("31-60", gettext_lazy("31-60 days"), 31, 60),
    ("61-90", gettext_lazy("61-90 days"), 61, 90),
    ("90+", gettext_lazy("more than 90 days"), 91, None),
]

#: Amount bands (in the case's currency units): (value, label, from, below or None).
AMOUNT_BANDS = [
    ("0-100", gettext_lazy("under 100"), Decimal(0), Decimal(100)),
    ("100-1000", gettext_lazy("100 to 1,000"), Decimal(100), Decimal(1000)),
    ("1000-10000", gettext_lazy("1,000 to 10,000"), Decimal(1000), Decimal(10000)),
    ("10000+", gettext_lazy("10,000 and more"), Decimal(10000), None),
]


def _today():
    return timezone.localdate()


def _locale():
    """Amounts in the staff user's language."""
    return babel_locale(translation.get_language() or "")


def _customer_invoices(today):
    """The adapter's overdue invoices of the case's customer (for correlated subqueries)."""
    adapter = get_adapter()
    return adapter.overdue_invoices(today).filter(
        **{adapter.customer_annotation: OuterRef("customer_id")}
    ).order_by().values(adapter.customer_annotation)


def annotate_owing(queryset, today=None):
    """``queryset`` of cases with what each customer owes today (see the module). Only
    open cases owe: a closed case's customer may owe again, but in a newer case."""
    invoices = _customer_invoices(today or _today())

    def per_customer(aggregate):
        return CaseWhen(
            When(status=Case.Status.OPEN,
                 then=Subquery(invoices.annotate(value=aggregate).values("value")[:1])),
            default=None,
        )

    return queryset.annotate(**{
        AMOUNT: per_customer(Sum(P + "amount_due")),
        OLDEST_DUE: per_customer(Min(P + "due_date")),
        CURRENCY_MIN: per_customer(Min(P + "currency")),
        CURRENCY_MAX: per_customer(Max(P + "currency")),
    })


def days_overdue(case, today=None):
    oldest = getattr(case, OLDEST_DUE, None)
    if oldest is None:
        return None
    if isinstance(oldest, datetime.datetime):
        oldest = oldest.date()
    return ((today or _today()) - oldest).days


def owing_currency(case):
    """The one currency an annotated case owes in, "" when it owes nothing, None when it
    owes in several."""
    low, high = getattr(case, CURRENCY_MIN, None), getattr(case, CURRENCY_MAX, None)
    low, high = (low or "").strip().upper(), (high or "").strip().upper()
    return low if low == high else None


# -- filters ---------------------------------------------------------------------------
def filter_days_band(queryset, value, today=None):
    """Annotated cases in the days-overdue band ``value`` (a DAYS_BANDS value); the
    queryset unchanged for any other value."""
    for band, _label, first, last in DAYS_BANDS:
        if value == band:
            today = today or _today()
            q = Q(**{OLDEST_DUE + "__lte": today - datetime.timedelta(days=first)})
            if last is not None:
                q &= Q(**{OLDEST_DUE + "__gte": today - datetime.timedelta(days=last)})
            return queryset.filter(q)
    return queryset


def filter_amount_band(queryset, value):
    """Annotated cases in the amount band ``value`` (an AMOUNT_BANDS value)."""
    for band, _label, low, high in AMOUNT_BANDS:
        if value == band:
            q = Q(**{AMOUNT + "__gte": low})
            if high is not None:
                q &= Q(**{AMOUNT + "__lt": high})
            return queryset.filter(q)
    return queryset


def currencies_owed(today=None):
    """The currency codes overdue invoices are in (one query), sorted."""
    adapter = get_adapter()
    currencies = (
        adapter.overdue_invoices(today or _today()).order_by()
        .values_list(P + "currency", flat=True).distinct()
    )
    return sorted({(c or "").strip().upper() for c in currencies if c})


def filter_currency(queryset, code, today=None):
    """Cases owing in currency ``code`` (any case when it is empty)."""
    code = (code or "").strip()
    if not code:
        return queryset
    owing_in = _customer_invoices(today or _today()).filter(**{P + "currency__iexact": code})
    return queryset.filter(Exists(owing_in), status=Case.Status.OPEN)


def broken_promises(queryset, today=None):
    """Open cases whose promised payment date plus the grace has passed (paid cases are
    resolved by the run, so an open case is still owing): the dashboard's "broken"."""
    grace = datetime.timedelta(days=PROMISE_GRACE_DAYS)
    return queryset.filter(status=Case.Status.OPEN, promised_on__lt=(today or _today()) - grace)


#: The bands of the "dispute" filter: value, label.
DISPUTE_BANDS = [
    ("open", gettext_lazy("Open dispute")),
    ("escalated", gettext_lazy("Open dispute gone to staff")),
]


def disputed(queryset, value):
    """Cases with an open dispute ("open"), or with one that waited longer than
    DISPUTE_ESCALATE_AFTER_DAYS and went to staff ("escalated"); any case otherwise."""
    if value not in dict(DISPUTE_BANDS):
        return queryset
    disputes = Dispute.objects.filter(case=OuterRef("pk"), resolved_at__isnull=True)
    if value == "escalated":
        disputes = disputes.filter(escalated_at__isnull=False)
    return queryset.filter(Exists(disputes))


# -- search ----------------------------------------------------------------------------
def search_cases(queryset, term):
    """Cases whose customer's name or email contains ``term``, or who have an invoice
    whose number contains it (any invoice, not only overdue ones), or whose number is
    ``term`` (ASCII digits: "³" is no case number).  NUL characters are dropped
    (PostgreSQL refuses them in text)."""
    term = without_nul(term).strip()
    if not term:
        return queryset
    adapter = get_adapter()
    q = Q()
    for name in ("name", "email"):
        match = customer_contains(adapter, name, term)
        if match is not None:
            q |= match
    # Every invoice of the host when the adapter can say (a collector searches for the
    # number a customer quotes, overdue or not), else the overdue ones.
    everything = getattr(adapter, "annotated_invoices", None)
    invoices = everything() if everything else adapter.overdue_invoices(_today())
    q |= Q(customer_id__in=invoices.filter(**{P + "number__icontains": term})
           .order_by().values(adapter.customer_annotation))
    case_id = parse_id(term)
    if case_id is not None:
        q |= Q(pk=case_id)
    return queryset.filter(q)


# -- totals ----------------------------------------------------------------------------
def totals(queryset, today=None):
    """What the listed open cases owe today, per currency (one query):
    ``[{"currency", "amount", "display", "invoices"}]``."""
    adapter = get_adapter()
    today = today or _today()
    customers = queryset.filter(status=Case.Status.OPEN).order_by().values("customer_id")
    rows = (
        adapter.overdue_invoices(today)
        .filter(**{adapter.customer_annotation + "__in": customers})
        .order_by()
        .values(P + "currency")
        .annotate(total=Sum(P + "amount_due"), n=Count("pk"))
    )
    per = {}
    for row in rows:
        code = (row[P + "currency"] or "").strip().upper()
        entry = per.setdefault(code, {"currency": code, "amount": Decimal(0), "invoices": 0})
        entry["amount"] += _to_decimal(row["total"])
        entry["invoices"] += row["n"]
    result = [per[c] for c in sorted(per)]
    for entry in result:
        entry["display"] = format_money(entry["amount"], entry["currency"], _locale())
    return result


# -- the call queue ---------------------------------------------------------------------
#: How far back the calls of a Regulation F case are read: the seven local days up to
#: today, in any zone and across a clock change, lie inside it (the rule then counts them
#: by the customer's local dates).
CALL_HISTORY_DAYS = 9


def _queued_for_a_call(queryset):
    queued_at = Subquery(
        CaseEvent.objects.filter(case=OuterRef("pk"), kind=CaseEvent.Kind.CALL_QUEUED)
        .order_by("-created_at", "-pk").values("created_at")[:1]
    )
    called = CaseEvent.objects.filter(case=OuterRef("pk"), kind=CaseEvent.Kind.CALL,
                                      created_at__gte=OuterRef("call_queued_at"))
    return (queryset.filter(status=Case.Status.OPEN)
            .annotate(call_queued_at=queued_at)
            .filter(call_queued_at__isnull=False)
            .exclude(Exists(called)))


def in_call_queue(queryset, now=None):
    """The open cases a call step queued (dunning.channels.call) and nobody has logged a
    call for since, the longest waiting first. A case whose policy has Regulation F on is
    left out while it may not be called at ``now`` (default: the current time; see
    :func:`call_blocks`): a fixed number of queries, whatever the number of cases."""
    queue = _queued_for_a_call(queryset)
    blocked = queue_call_blocks(queryset, now)
    if blocked:
        queue = queue.exclude(pk__in=sorted(blocked))
    return queue.order_by("call_queued_at", "pk")


@dataclass(frozen=True)
class CallBlock:
    """Why a case may not be called now under Regulation F, and from when it may."""

    #: A reason code of dunning.engine.compliance (``regf-call-frequency``, ...).
    reason: str
    #: The first instant (UTC) at which a call is allowed.
    allowed_from: datetime.datetime
    #: The customer's zone the days were counted in.
    tz: datetime.tzinfo

    @property
    def text(self):
        """The reason for people, translated."""
        return str(REGF_REASON_TEXT.get(self.reason, self.reason))

    @property
    def local_allowed_from(self):
        return self.allowed_from.astimezone(self.tz)


def call_history(cases, since, until):
    """``{case pk: (attempts, last conversation or None)}`` from the calls logged on
    ``cases`` (a queryset of cases) between ``since`` and ``until``, in one query. Every
    logged call is an attempt unless the customer called us (``inbound``); a call whose
    outcome is a conversation (services.CALL_CONVERSATION_OUTCOMES) is a conversation,
    inbound or not. The case is the debt: a call about it is about all its invoices."""
    history = {}
    events = CaseEvent.objects.filter(
        case__in=cases.order_by().values("pk"), kind=CaseEvent.Kind.CALL,
        created_at__gte=since, created_at__lte=until,
    ).order_by("created_at", "pk").values_list("case_id", "created_at", "data")
    for case_id, created_at, data in events:
        data = data if isinstance(data, dict) else {}
        attempts, talked = history.get(case_id, ([], None))
        if data.get("inbound") is not True:
            attempts.append(created_at)
        if data.get("outcome") in CALL_CONVERSATION_OUTCOMES:
            talked = created_at
        history[case_id] = (attempts, talked)
    return history


def call_blocks(cases, now=None):
    """``{case pk: CallBlock}`` for the cases of ``cases`` (a queryset) that Regulation F
    does not let a collector call at ``now``: seven call attempts within seven local days,
    a conversation within the last seven local days (the conversation day being day 1), or
    outside 08:00-21:00 (dunning.engine.compliance.RegF). Days are the customer's local
    dates (their ``timezone`` through the adapter, else ``settings.TIME_ZONE``). Three
    queries (the cases, their calls, their customers' zones), whatever their number; the
    caller decides which cases the rule applies to (the queue: policies with
    ``regulation_f``)."""
    now = as_utc(now or timezone.now())
    rows = list(cases.order_by().values_list("pk", "customer_id"))
    if not rows:
        return {}
    history = call_history(cases, now - datetime.timedelta(days=CALL_HISTORY_DAYS), now)
    customers = get_adapter().customer_rows({customer_id for _pk, customer_id in rows})
    rule, default_tz, blocks = RegF(), settings.TIME_ZONE, {}
    for pk, customer_id in rows:
        zone = zone_for(getattr(customers.get(customer_id), "timezone", ""), default_tz)
        attempts, talked = history.get(pk, ((), None))
        reason = rule.call_reason(attempts, talked, now, zone)
        if reason:
            blocks[pk] = CallBlock(reason, rule.next_call_time(attempts, talked, now, zone), zone)
    return blocks


def queue_call_blocks(queryset, now=None):
    """:func:`call_blocks` of the cases of ``queryset`` that wait in the call queue and
    whose policy has Regulation F on."""
    return call_blocks(_queued_for_a_call(queryset.filter(policy__regulation_f=True)), now)


def call_block(case, now=None):
    """The :class:`CallBlock` of ``case`` if it waits in the call queue, its policy has
    Regulation F on and it may not be called at ``now``; else None."""
    return queue_call_blocks(Case.objects.filter(pk=case.pk), now).get(case.pk)
